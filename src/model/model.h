/*
 * model.h — the interface the codec drives, whatever the architecture.
 *
 * A model owns its mapped, read-only GGUF weights and its tokenizer. A state
 * is one stream's memory (for llama: the KV cache). Two ways to advance:
 *   prefill(state, tokens[n])          a known sequence (compression);
 *   step(states[k], tokens[k])         k independent streams, one token each,
 *                                      in lockstep (decompression).
 * Both compute every number in the same order (profile det-f32-v1, or
 * det-i8-v1 with lmz_model_opts.int8), so the
 * same history gives the same bits of logits either way, with any thread
 * count and any kernel path.
 */
#ifndef LMZ_MODEL_H
#define LMZ_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "tokenizer.h"

typedef struct lmz_model lmz_model;
typedef struct lmz_state lmz_state;

/* the longest KV window (tokens); a model with a longer context gets this */
#define LMZ_MAX_WINDOW (1u << 20)

typedef struct {
    unsigned threads;   /* worker threads for the matrix products (1 = none) */
    uint32_t window;    /* KV window in tokens, 1..LMZ_MAX_WINDOW (0 = the model's
                           context length, at most LMZ_MAX_WINDOW) */
    int int8;           /* 1: profile det-i8-v1, every matrix product as exact
                           int8 x int8 sums (tensor/qmat.h), the weights
                           quantized at open; 0: det-f32 */
} lmz_model_opts;

/* Open a GGUF model (general.architecture llama or dsrn). @return 0, or -1 with a
 * message in err. */
int lmz_model_open(const char *path, const lmz_model_opts *opts, lmz_model **out, char *err,
                   size_t errlen);
/* The same from a file already in memory (not copied; must outlive the
 * model): tests and the fuzz target. */
int lmz_model_open_buffer(const void *buf, size_t size, const lmz_model_opts *opts, lmz_model **out,
                          char *err, size_t errlen);
void lmz_model_free(lmz_model *m);

uint32_t lmz_model_vocab(const lmz_model *m);
const char *lmz_model_arch(const lmz_model *m);
/* NULL when the file's tokenizer is of a kind not implemented: the model
 * still runs on token ids, and lmz_model_tokenizer_note says why. */
const lmz_tokenizer *lmz_model_tokenizer(const lmz_model *m);
const char *lmz_model_tokenizer_note(const lmz_model *m);
uint32_t lmz_model_window(const lmz_model *m);
/* The model's worker threads, for the caller's own independent work between
 * model calls (never during one). NULL for one thread. */
struct lmz_pool *lmz_model_pool(const lmz_model *m);
/* the model's file (metadata and tensors), valid while the model is open */
const lmz_gguf *lmz_model_gguf(const lmz_model *m);

lmz_state *lmz_state_new(const lmz_model *m);
void lmz_state_free(lmz_state *s);
void lmz_state_reset(lmz_state *s);
uint64_t lmz_state_pos(const lmz_state *s); /* tokens seen */
/* dst, a state of the same model, takes src's history: what follows gives
 * the same bits in either (branching a shared prefix, as the zero-shot
 * evaluation does). @return 0, or -1 when the states' models differ. */
int lmz_state_copy(lmz_state *dst, const lmz_state *src);

/* Feed tokens[0..n) after the state's history; logits (n x vocab) receives
 * the prediction after each token (NULL: none are kept). @return 0 or -1
 * (a token id out of range). */
int lmz_model_prefill(lmz_model *m, lmz_state *s, const int32_t *tokens, size_t n, float *logits);

/* Advance k streams by one token each; logits is k x vocab. */
int lmz_model_step(lmz_model *m, lmz_state **states, const int32_t *tokens, size_t k,
                   float *logits);

/* The same, computing logits only for the streams with need[i] != 0 (every
 * stream still reads its token): logits holds their rows, in stream order,
 * the same bits as lmz_model_step gives them. For callers that know they
 * will not use some streams' predictions (the codec's confidence skip). */
int lmz_model_step_some(lmz_model *m, lmz_state **states, const int32_t *tokens, size_t k, float *logits,
                        const uint8_t *need);

/* The width of the vector the output product multiplies (the last norm's
 * result): what the _hidden calls below give beside each row of logits. */
uint32_t lmz_model_dim(const lmz_model *m);
/* lmz_model_prefill and lmz_model_step_some that also write that vector of
 * each row of logits to hidden (rows x lmz_model_dim floats, the rows of
 * logits in the same order); hidden needs logits. The same bits as the
 * model's own output product reads. */
int lmz_model_prefill_hidden(lmz_model *m, lmz_state *s, const int32_t *tokens, size_t n, float *logits,
                             float *hidden);
int lmz_model_step_hidden(lmz_model *m, lmz_state **states, const int32_t *tokens, size_t k, float *logits,
                          const uint8_t *need, float *hidden);

/* k prefills at once: state i (k distinct states) reads its n[i] tokens,
 * which follow the previous states' in tokens; logits and hidden (NULL: not
 * wanted; hidden needs logits) receive the rows in that same order. The
 * same bits as k calls of lmz_model_prefill_hidden, but the engine runs the
 * states' tokens through its matrix products together, so each weight is
 * read once for all of them (many short frames of a large model). */
int lmz_model_prefill_many(lmz_model *m, lmz_state **states, const int32_t *tokens, const size_t *n, size_t k,
                           float *logits, float *hidden);

#endif
