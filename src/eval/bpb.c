/*
 * bpb.c — bits per byte of a model alone (bpb.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpb.h"

#define CHUNK 256 /* tokens per prefill (logits: CHUNK x vocab floats) */

int lmz_eval_bpb(lmz_model *m, const uint8_t *text, size_t n, lmz_bpb *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const lmz_tokenizer *tk = lmz_model_tokenizer(m);
    if (!tk) {
        snprintf(err, errlen, "the model's tokenizer is not supported: %s", lmz_model_tokenizer_note(m));
        return -1;
    }
    const uint32_t V = lmz_model_vocab(m);
    int32_t start = lmz_tokenizer_bos(tk) >= 0 ? lmz_tokenizer_bos(tk) : lmz_tokenizer_eos(tk);
    int32_t *ids = malloc((n + 2) * sizeof *ids);
    float *lg = malloc((size_t)CHUNK * V * sizeof *lg);
    lmz_state *s = lmz_state_new(m);
    int rc = -1;
    if (!ids || !lg || !s) {
        snprintf(err, errlen, "%s", "out of memory");
        goto out;
    }
    size_t off = start >= 0 ? 1 : 0;
    long k = lmz_tokenizer_encode(tk, text, n, ids + off, n + 1);
    if (k < 0 || (size_t)k > n + 1) {
        snprintf(err, errlen, "%s", "the text cannot be tokenised");
        goto out;
    }
    if (start >= 0) ids[0] = start;
    size_t total = off + (size_t)k;
    double bits = start >= 0 || total == 0 ? 0.0 : log2((double)V);
    /* token i + 1 is scored with the logits after token i */
    for (size_t i = 0; i + 1 < total; i += CHUNK) {
        size_t b = total - 1 - i < CHUNK ? total - 1 - i : CHUNK;
        if (lmz_model_prefill(m, s, ids + i, b, lg) != 0) {
            snprintf(err, errlen, "%s", "the model refused a token");
            goto out;
        }
        for (size_t j = 0; j < b; j++) {
            const float *z = lg + j * V;
            double mx = z[0], sum = 0;
            for (uint32_t v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
            for (uint32_t v = 0; v < V; v++) sum += exp((double)z[v] - mx);
            bits += (mx + log(sum) - (double)z[ids[i + j + 1]]) / log(2.0);
        }
    }
    out->bytes = n;
    out->tokens = (uint64_t)k;
    out->bits = bits;
    rc = 0;
out:
    free(ids);
    free(lg);
    lmz_state_free(s);
    return rc;
}
