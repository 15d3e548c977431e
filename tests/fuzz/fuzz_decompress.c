/*
 * fuzz_decompress.c — libFuzzer target for the .lmz decoder and lister.
 *
 * Any input must give LMZ_OK or an error code: no crash, no sanitizer report,
 * no write outside the destination. When the input decodes, compressing the
 * result again must decode to the same bytes (round trip). Streams made with
 * a language model are decoded with the shipped tiny DSRN
 * (tests/models/tiny-dsrn.gguf, or $LMZ_FUZZ_MODEL), so the LM decoder
 * (segments, lockstep token decoding, LZMA2 and byte-model segments) is
 * fuzzed too.
 * Built by `make fuzz` with clang; replayed without libFuzzer by
 * replay_main.c in `make test`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lmzip.h"

#define DST_CAP (1u << 18)

static void on_frame(void *o, const lmz_frame_info *f)
{
    (void)o;
    (void)f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *dst = malloc(DST_CAP);
    if (!dst) return 0;
    size_t out = 0;
    int e = lmz_decompress_buffer(1, data, size, dst, DST_CAP, &out);
    if (e < 0 || e >= LMZ_ERROR_COUNT_ || out > DST_CAP) abort();
    if (e == LMZ_OK && out <= 4096) {
        lmz_params p;
        lmz_params_default(&p);
        p.frame_size = LMZ_FRAME_SIZE_MIN;
        p.table_bits = 12;
        size_t cap = lmz_compress_bound(out, p.frame_size), clen = 0, dlen = 0;
        uint8_t *c = malloc(cap), *d = malloc(out + 1);
        if (c && d) {
            if (lmz_compress_buffer(&p, dst, out, c, cap, &clen) != LMZ_OK) abort();
            if (lmz_decompress_buffer(1, c, clen, d, out + 1, &dlen) != LMZ_OK) abort();
            if (dlen != out || memcmp(d, dst, out) != 0) abort(); /* Corruption! */
        }
        free(c);
        free(d);
    }
    /* the same input through the decoder with a model at hand */
    static lmz_model_ref *ref; /* loaded once, shared by every input */
    static int loaded;
    if (!loaded) {
        const char *model = getenv("LMZ_FUZZ_MODEL");
        lmz_model_load(model ? model : "tests/models/tiny-dsrn.gguf", &ref, NULL, 0);
        loaded = 1;
    }
    lmz_dparams dp;
    memset(&dp, 0, sizeof dp);
    dp.threads = 1;
    dp.model_ref = ref;
    dp.model = ref ? NULL : "tests/models/tiny-dsrn.gguf";
    dp.memlimit = 512u << 20;
    e = lmz_decompress_buffer_ex(&dp, data, size, dst, DST_CAP, &out);
    if (e < 0 || e >= LMZ_ERROR_COUNT_ || out > DST_CAP) abort();
    lmz_list_callbacks cb = {NULL, on_frame, NULL, NULL};
    e = lmz_list_buffer(data, size, &cb);
    if (e < 0 || e >= LMZ_ERROR_COUNT_) abort();
    free(dst);
    return 0;
}
