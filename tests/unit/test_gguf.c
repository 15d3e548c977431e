/* GGUF reader and writer. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "test.h"


/* a small file with every value type, a string array and two tensors */
static uint8_t *make_gguf(size_t *n)
{
    lmz_gguf_writer *w = lmz_gguf_writer_new();
    lmz_gguf_w_str(w, "general.architecture", "llama");
    lmz_gguf_w_u32(w, "llama.block_count", 2);
    lmz_gguf_w_i32(w, "some.signed", -5);
    lmz_gguf_w_u64(w, "some.big", 1ull << 40);
    lmz_gguf_w_f32(w, "llama.rope.freq_base", 10000.0f);
    lmz_gguf_w_bool(w, "some.flag", 1);
    const char *toks[] = {"a", "bc", "", "d\xc3\xa9"};
    lmz_gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 4, NULL);
    int32_t types[] = {1, 1, 3, 6};
    lmz_gguf_w_arr_i32(w, "tokenizer.ggml.token_type", types, 4);
    static float m[3 * 64];
    for (int i = 0; i < 3 * 64; i++) m[i] = (float)i * 0.5f;
    uint64_t ne[2] = {64, 3};
    lmz_gguf_w_tensor(w, "m.weight", LMZ_GGML_F32, 2, ne, m);
    static uint8_t q[2 * 34];
    for (int i = 0; i < 68; i++) q[i] = (uint8_t)i;
    uint64_t ne2[1] = {64};
    lmz_gguf_w_tensor(w, "q.weight", LMZ_GGML_Q8_0, 1, ne2, q);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(lmz_gguf_writer_write(w, f) == 0);
    fclose(f);
    lmz_gguf_writer_free(w);
    *n = len;
    return (uint8_t *)buf;
}

TEST(gguf_writer_reader_round_trip)
{
    size_t n;
    uint8_t *b = make_gguf(&n);
    lmz_gguf g;
    char err[256] = "";
    CHECK(lmz_gguf_parse(b, n, &g, err, sizeof err) == 0);
    if (err[0]) printf("  %s\n", err);
    lmz_str s;
    CHECK(lmz_gguf_get_str(&g, "general.architecture", &s) == 0 && lmz_str_eq(s, "llama"));
    uint64_t v;
    CHECK(lmz_gguf_get_u64(&g, "llama.block_count", &v) == 0 && v == 2);
    CHECK(lmz_gguf_get_u64(&g, "some.big", &v) == 0 && v == 1ull << 40);
    CHECK(lmz_gguf_get_u64(&g, "some.signed", &v) == -1);
    float fv;
    CHECK(lmz_gguf_get_f32(&g, "llama.rope.freq_base", &fv) == 0 && fv == 10000.0f);
    const lmz_gguf_kv *kv = lmz_gguf_find(&g, "tokenizer.ggml.tokens");
    CHECK(kv && kv->count == 4);
    if (kv) {
        CHECK(lmz_str_eq(lmz_gguf_arr_str(kv, 1), "bc"));
        CHECK(lmz_gguf_arr_str(kv, 2).len == 0);
        CHECK(lmz_str_eq(lmz_gguf_arr_str(kv, 3), "d\xc3\xa9"));
    }
    const lmz_gguf_tensor *t = lmz_gguf_tensor_find(&g, "m.weight");
    CHECK(t && t->ne[0] == 64 && t->ne[1] == 3 && t->n_bytes == 768);
    if (t) CHECK(((const float *)t->data)[5] == 2.5f && ((const uint8_t *)t->data - b) % 32 == 0);
    t = lmz_gguf_tensor_find(&g, "q.weight");
    CHECK(t && t->n_bytes == 68 && ((const uint8_t *)t->data)[67] == 67);
    lmz_gguf_close(&g);
    free(b);
}

TEST(gguf_damage_never_crashes)
{
    size_t n;
    uint8_t *b = make_gguf(&n);
    lmz_gguf g;
    char err[256];
    int ok = 0;
    /* the padding after the last tensor may go; any cut before its end fails */
    CHECK(lmz_gguf_parse(b, n, &g, err, sizeof err) == 0);
    size_t end = (size_t)(g.data_offset + g.tensors[1].offset + g.tensors[1].n_bytes);
    lmz_gguf_close(&g);
    for (size_t k = 0; k < end; k++) {
        uint8_t *c = malloc(k + 1);
        memcpy(c, b, k);
        if (lmz_gguf_parse(c, k, &g, err, sizeof err) == 0) ok++;
        lmz_gguf_close(&g);
        free(c);
    }
    CHECK_EQ_U64(ok, 0);
    unsigned long long seed = 1;
    for (size_t i = 0; i < n * 8; i += 3) { /* bit flips: any outcome but a crash */
        b[i / 8] ^= (uint8_t)(1u << (i % 8));
        if (lmz_gguf_parse(b, n, &g, err, sizeof err) != 0) CHECK(err[0] != 0);
        lmz_gguf_close(&g);
        b[i / 8] ^= (uint8_t)(1u << (i % 8));
        (void)test_rand(&seed);
    }
    memcpy(b, "GGUF\x01\0\0\0", 8);
    CHECK(lmz_gguf_parse(b, n, &g, err, sizeof err) == -1 && strstr(err, "version 1"));
    lmz_gguf_close(&g);
    free(b);
}

TEST(gguf_reference_files)
{
    const char *p = test_ref_path("tiny-llama-f32.gguf");
    if (!p) {
        printf("  ../shared/reference not found: skipped\n");
        return;
    }
    lmz_gguf g;
    char err[256];
    CHECK(lmz_gguf_open(p, &g, err, sizeof err) == 0);
    const lmz_gguf_tensor *t = lmz_gguf_tensor_find(&g, "token_embd.weight");
    CHECK(t && t->ne[0] == 64 && t->ne[1] == 512 && t->type == LMZ_GGML_F32);
    lmz_gguf_close(&g);

    p = test_ref_path("tiny-llama-q8_0.gguf");
    CHECK(p && lmz_gguf_open(p, &g, err, sizeof err) == 0);
    t = lmz_gguf_tensor_find(&g, "blk.0.attn_q.weight");
    CHECK(t && t->type == LMZ_GGML_Q8_0);
    lmz_gguf_close(&g);

    p = test_ref_path("llama-2-tiny-random.gguf");
    CHECK(p && lmz_gguf_open(p, &g, err, sizeof err) == 0);
    const lmz_gguf_kv *kv = lmz_gguf_find(&g, "tokenizer.ggml.tokens");
    CHECK(kv && kv->count == 32000);
    lmz_gguf_close(&g);

    p = test_ref_path("smollm2-tokenizer/smollm2-tok-tiny.gguf");
    CHECK(p && lmz_gguf_open(p, &g, err, sizeof err) == 0);
    kv = lmz_gguf_find(&g, "tokenizer.ggml.merges");
    CHECK(kv && kv->count == 48900);
    kv = lmz_gguf_find(&g, "tokenizer.ggml.tokens");
    CHECK(kv && kv->count == 49152);
    lmz_gguf_close(&g);
    CHECK(lmz_gguf_open("/nonexistent.gguf", &g, err, sizeof err) == -1);
}
