/*
 * bpb.h — bits per byte of a model alone on a text: the cost, in bits, of
 * coding every token of the text with the model's own probabilities (no
 * ensemble), over the text's bytes.
 *
 * The model starts from a fresh state fed the tokenizer's BOS token (else its
 * EOS token: for DSRN models, the end-of-document mark they were trained to
 * start documents after); a model with neither pays log2(vocab) bits for the
 * first token. Probabilities are the softmax of the logits in double.
 */
#ifndef LMZ_EVAL_BPB_H
#define LMZ_EVAL_BPB_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

typedef struct {
    uint64_t bytes, tokens;
    double bits;
} lmz_bpb;

/* @return 0, or -1 with a message (no tokenizer, out of memory). */
int lmz_eval_bpb(lmz_model *m, const uint8_t *text, size_t n, lmz_bpb *out, char *err, size_t errlen);

#endif
