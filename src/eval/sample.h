/*
 * sample.h — choosing the next token from a model's logits, as `dsrn
 * generate` does: a repetition penalty, then top-k, top-p (nucleus) and
 * min-p cuts, then the temperature and a draw; the stages and their order are
 * llama.cpp's sampler chain (penalties, top_k, top_p, min_p, temperature,
 * dist), each off at its neutral value.
 *
 * - repeat_penalty r over the last repeat_last_n tokens: each distinct
 *   token among them has its logit divided by r when positive, multiplied
 *   by r otherwise (1: off).
 * - top_k: keep the k most likely tokens (0: all).
 * - top_p: keep the fewest most likely tokens whose probabilities (softmax
 *   of the logits kept so far) sum to at least p (1: all).
 * - min_p: keep the tokens at least min_p times as likely as the most
 *   likely one (0: all).
 * - temp: draw from the softmax of the kept logits over temp; temp 0 takes
 *   the most likely token of all after the penalty (the lowest id of ties),
 *   and the cuts do not matter.
 *
 * Ties in likelihood order by token id, and every sum runs in the same
 * order, so a seed gives the same tokens on every machine.
 */
#ifndef LMZ_EVAL_SAMPLE_H
#define LMZ_EVAL_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double temp;           /* >= 0 */
    uint32_t top_k;        /* 0: off */
    double top_p;          /* (0, 1]; 1: off */
    double min_p;          /* [0, 1]; 0: off */
    double repeat_penalty; /* > 0; 1: off */
    uint32_t repeat_last_n;
} lmz_sample_params;

/* llama.cpp's defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05, no
 * repetition penalty (over 64 tokens when one is set) */
void lmz_sample_defaults(lmz_sample_params *p);

/* @return a message for the first setting out of its range, or NULL */
const char *lmz_sample_check(const lmz_sample_params *p);

/* The next token from logits (V of them; the penalty rewrites them) given
 * the tokens so far (recent, n of them: the last repeat_last_n count) and
 * the generator's state *rng (advanced by one draw when temp > 0). scratch
 * holds V uint32 and V floats (lmz_sample_scratch_bytes). */
size_t lmz_sample_scratch_bytes(uint32_t V);
int32_t lmz_sample(const lmz_sample_params *p, float *logits, uint32_t V, const int32_t *recent, size_t n,
                   uint64_t *rng, void *scratch);

#endif
