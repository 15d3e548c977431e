/*
 * fuzz_gguf.c — libFuzzer target for the GGUF reader, the tokenizer loader
 * and the llama model loader: any bytes parse or fail with a message, never
 * crash; a file that parses and carries a tokenizer encodes and decodes a
 * sample text exactly; a file that opens as a model runs a few tokens
 * through prefill and a step (the values do not matter, only that every
 * shape the loader accepted is safe to compute with).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "model/model.h"
#include "model/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lmz_gguf g;
    char err[256];
    /* a private, exactly sized copy so reads past the end are caught */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    if (lmz_gguf_parse(copy, size, &g, err, sizeof err) == 0) {
        for (uint64_t i = 0; i < g.n_tensors; i++) {
            const uint8_t *p = g.tensors[i].data;
            volatile uint8_t sink = 0;
            if (g.tensors[i].n_bytes) sink ^= p[0] ^ p[g.tensors[i].n_bytes - 1];
            (void)sink;
        }
        lmz_tokenizer *t;
        if (lmz_tokenizer_load(&g, &t, err, sizeof err) == 0) {
            static const uint8_t text[] = "Hello, world! It's 2026.\n\x04\xff caf\xc3\xa9";
            int32_t ids[256];
            uint8_t back[sizeof text];
            long k = lmz_tokenizer_encode(t, text, sizeof text - 1, ids, 256);
            if (k > 0 && k <= 256) {
                long m = lmz_tokenizer_decode(t, ids, (size_t)k, back, sizeof back);
                if (m != (long)sizeof text - 1 || memcmp(back, text, sizeof text - 1)) abort();
            }
            lmz_tokenizer_free(t);
        }
        lmz_gguf_close(&g);
        lmz_model_opts o = {1, 16, 0};
        lmz_model *m;
        err[0] = 0;
        if (lmz_model_open_buffer(copy, size, &o, &m, err, sizeof err) == 0) {
            uint32_t V = lmz_model_vocab(m);
            int32_t ids[3] = {0, (int32_t)(1 % V), (int32_t)(V - 1)};
            float *lg = malloc(3 * (size_t)V * sizeof *lg);
            lmz_state *s = lmz_state_new(m);
            if (lg && s) {
                lmz_model_prefill(m, s, ids, 2, lg);
                lmz_model_step(m, &s, ids + 2, 1, lg + 2 * (size_t)V);
            }
            lmz_state_free(s);
            free(lg);
            lmz_model_free(m);
        } else if (!err[0]) {
            abort();
        }
    } else if (!err[0]) {
        abort(); /* a failure must say why */
    }
    free(copy);
    return 0;
}
