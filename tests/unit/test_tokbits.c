/* test_tokbits.c — tokens coded bit by bit with the byte model
 * (src/codec/tokbits.c, profile det-f32-v4) and the byte model's streams
 * over a shared model (src/predict/bytemodel.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/rangecoder.h"
#include "codec/tokbits.h"
#include "predict/bytemodel.h"
#include "test.h"

/* A vocabulary with what real ones have and worse: all 256 single bytes,
 * tokens that are prefixes of others, two empty tokens (control tokens),
 * byte strings twice (byte-fallback pieces), NUL and 0xFF bytes, a long
 * token. */
#define NV 300
static uint8_t vbuf[NV][24];
static const uint8_t *vstr[NV];
static uint32_t vlen[NV];

static lmz_tb_vocab *make_vocab(void)
{
    static const char *words[] = {"the", " the", " th", "th", "he", " and", " a", "an", "and", "ing", " wor",
                                  " world", " wo", "\n\n", "  ", "   ", "ab", "abc", "abcd", "abcde"};
    uint32_t n = 0;
    for (int b = 0; b < 256; b++) {
        vbuf[n][0] = (uint8_t)b;
        vlen[n++] = 1;
    }
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        vlen[n] = (uint32_t)strlen(words[i]);
        memcpy(vbuf[n++], words[i], strlen(words[i]));
    }
    vlen[n++] = 0;                       /* control tokens */
    vlen[n++] = 0;
    memcpy(vbuf[n], "the", 3), vlen[n++] = 3; /* the same bytes twice */
    vbuf[n][0] = 'A', vlen[n++] = 1;
    memcpy(vbuf[n], "\0\0\xff", 3), vlen[n++] = 3;
    memcpy(vbuf[n], "\xff\xff", 2), vlen[n++] = 2;
    memcpy(vbuf[n], "a rather long token here", 24), vlen[n++] = 24;
    while (n < NV) { /* the rest: two-byte tokens */
        vbuf[n][0] = (uint8_t)('a' + n % 26);
        vbuf[n][1] = (uint8_t)('a' + (n / 26) % 26);
        vlen[n++] = 2;
    }
    for (uint32_t i = 0; i < NV; i++) vstr[i] = vlen[i] ? vbuf[i] : NULL;
    return lmz_tb_vocab_from(vstr, vlen, NV);
}

/* a table of 2^24 with every frequency >= 1; skewed toward `hot` */
static void make_table(uint32_t *cum, int32_t hot, unsigned long long *s)
{
    uint32_t f[NV], tot = 0;
    for (int i = 0; i < NV; i++) tot += f[i] = 1 + (uint32_t)(test_rand(s) % 2000);
    if (hot >= 0) tot += f[hot] = 1 + (uint32_t)(test_rand(s) % 4) * 200000;
    uint32_t left = (1u << 24) - tot;
    cum[0] = 0;
    for (int i = 0; i < NV; i++) {
        uint32_t add = i == NV - 1 ? left : (uint32_t)((uint64_t)left * f[i] / tot);
        if (i < NV - 1) left -= add;
        cum[i + 1] = cum[i] + f[i] + add;
    }
}

/* two streams of tokens coded in turn and decoded (the decoder's sums
 * prepared from the table, from its masses, or by the decoder itself);
 * @return the code length */
static double round_trip_two_streams(int refine)
{
    lmz_tb_vocab *v = make_vocab();
    CHECK(v != NULL);
    enum { N = 3000 };
    int32_t *tok = malloc(2 * N * sizeof *tok);
    uint32_t *cum = malloc(2 * N * (NV + 1) * sizeof *cum);
    unsigned long long s = 7;
    for (int i = 0; i < 2 * N; i++) { /* every token, often a right guess of the table */
        tok[i] = i < NV ? i : (int32_t)(test_rand(&s) % NV);
        make_table(cum + (size_t)i * (NV + 1), test_rand(&s) % 3 ? tok[i] : -1, &s);
    }
    size_t text[2] = {N * 2, N * 2}, cap = 16 * N;
    uint8_t *buf[2] = {malloc(cap), malloc(cap)};
    size_t len[2];
    double bits = 0;
    lmz_tb *h = lmz_tb_new(v, 16, 2, text, refine);
    CHECK(h != NULL);
    lmz_rc_enc e[2];
    for (int k = 0; k < 2; k++) lmz_rc_enc_init(&e[k], buf[k], cap);
    for (int i = 0; i < N; i++) /* the streams in turn, as a group's frames */
        for (int k = 0; k < 2; k++)
            CHECK(lmz_tb_encode(h, (size_t)k, cum + (size_t)(2 * i + k) * (NV + 1), tok[2 * i + k], &e[k], &bits) == 0);
    for (int k = 0; k < 2; k++) len[k] = lmz_rc_enc_finish_short(&e[k]);
    lmz_tb_free(h);
    CHECK(len[0] > 0 && len[1] > 0);
    CHECK(fabs((double)(len[0] + len[1]) * 8 - bits) < 64);

    h = lmz_tb_new(v, 16, 2, text, refine);
    lmz_rc_dec d[2];
    for (int k = 0; k < 2; k++) lmz_rc_dec_init_short(&d[k], buf[k], len[k]);
    int same = 1;
    uint32_t freq[NV];
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 2; k++) {
            const uint32_t *c = cum + (size_t)(2 * i + k) * (NV + 1);
            if (i % 3 == 1) { /* prepared from the masses: the same sums */
                for (int t = 0; t < NV; t++) freq[t] = c[t + 1] - c[t];
                lmz_tb_prepare_freq(h, (size_t)k, freq);
            } else if (i % 3 == 2) {
                lmz_tb_prepare(h, (size_t)k, c);
            }
            same &= lmz_tb_decode(h, (size_t)k, c, &d[k]) == tok[2 * i + k];
        }
    CHECK(same);
    for (int k = 0; k < 2; k++) CHECK(lmz_rc_dec_finished_cleanly(&d[k]));
    lmz_tb_free(h);
    free(buf[0]);
    free(buf[1]);
    free(tok);
    free(cum);
    lmz_tb_vocab_free(v);
    return bits;
}

TEST(tokbits_round_trip_two_streams)
{
    round_trip_two_streams(0);
    round_trip_two_streams(1); /* with the maps (part refine) */
}

/* Part refine: text whose bytes follow a rule the table does not know (the
 * table's guess is right a third of the time; the tokens are words in a
 * fixed cycle with a random one now and then): the maps in the context of
 * the previous byte learn it beside the byte model, and the walk costs fewer
 * bits than without them. */
static double code_cycle(int refine)
{
    lmz_tb_vocab *v = make_vocab();
    enum { N = 4000 };
    static const int32_t cycle[] = {256 + 1, 256 + 5, 256 + 10, 256 + 13, 256 + 2, 256 + 9, 'x', 256 + 17};
    uint32_t *cum = malloc((NV + 1) * sizeof *cum);
    uint8_t *buf = malloc(16 * N);
    unsigned long long s = 9;
    size_t text = 4 * N;
    double bits = 0;
    lmz_tb *h = lmz_tb_new(v, 16, 1, &text, refine);
    CHECK(v && cum && buf && h);
    lmz_rc_enc e;
    lmz_rc_enc_init(&e, buf, 16 * N);
    for (int i = 0; h && i < N; i++) {
        int32_t t = test_rand(&s) % 10 ? cycle[i % 8] : (int32_t)(test_rand(&s) % NV);
        make_table(cum, test_rand(&s) % 3 ? -1 : t, &s);
        CHECK(lmz_tb_encode(h, 0, cum, t, &e, &bits) == 0);
    }
    lmz_tb_free(h);
    free(cum);
    free(buf);
    lmz_tb_vocab_free(v);
    return bits;
}

TEST(tokbits_refine_learns_what_the_table_misses)
{
    double off = code_cycle(0), on = code_cycle(1);
    printf("  %.0f bits without the maps, %.0f with\n", off, on);
    CHECK(on < off);
}

/* Before the mixer has learnt anything, coding a token costs what the table
 * says (every decision is the table's ratio, up to 16-bit probabilities). */
TEST(tokbits_first_token_costs_the_table)
{
    lmz_tb_vocab *v = make_vocab();
    CHECK(v != NULL);
    uint32_t cum[NV + 1];
    unsigned long long s = 3;
    size_t text = 100;
    uint8_t buf[256];
    const int32_t cases[] = {256 + 1, 256 + 20, 'x', 0, 255, 256 + 22 /* "the" again */, 256 + 26};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int32_t t = cases[c];
        make_table(cum, c % 2 ? t : -1, &s);
        lmz_tb *h = lmz_tb_new(v, 12, 1, &text, 0);
        lmz_rc_enc e;
        lmz_rc_enc_init(&e, buf, sizeof buf);
        double bits = 0;
        CHECK(lmz_tb_encode(h, 0, cum, t, &e, &bits) == 0);
        double want = -log2((double)(cum[t + 1] - cum[t]) / (1 << 24));
        if (fabs(bits - want) > 0.01 + want * 0.001) {
            fprintf(stderr, "  token %d: %.5f bits, the table says %.5f\n", t, bits, want);
            test_failures++;
        }
        lmz_tb_free(h);
    }
    lmz_tb_vocab_free(v);
}

TEST(tokbits_damaged_input_decodes_some_tokens)
{
    lmz_tb_vocab *v = make_vocab();
    CHECK(v != NULL);
    uint32_t cum[NV + 1];
    unsigned long long s = 11;
    uint8_t junk[512];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)test_rand(&s);
    size_t text = 1000;
    lmz_tb *h = lmz_tb_new(v, 12, 1, &text, 1);
    lmz_rc_dec d;
    lmz_rc_dec_init(&d, junk, sizeof junk);
    int ok = 1;
    for (int i = 0; i < 2000; i++) {
        make_table(cum, -1, &s);
        int32_t t = lmz_tb_decode(h, 0, cum, &d);
        ok &= t >= 0 && t < NV;
    }
    CHECK(ok);
    lmz_tb_free(h);
    lmz_tb_vocab_free(v);
}

/* One stream over a shared model predicts what the model's own coder does:
 * the same bytes come out. */
TEST(bytemodel_stream_equals_the_frame_coder)
{
    size_t n = 20000;
    uint8_t *src = malloc(n);
    unsigned long long s = 5;
    static const char *w[] = {"alpha ", "beta ", "gamma\n", "delta, ", "epsilon. "};
    for (size_t i = 0; i < n;) {
        const char *x = w[test_rand(&s) % 5];
        for (size_t k = 0; x[k] && i < n; k++) src[i++] = (uint8_t)x[k];
        if (test_rand(&s) % 7 == 0 && i < n) src[i++] = (uint8_t)test_rand(&s);
    }
    uint8_t *a = malloc(n), *b = malloc(n);
    lmz_bytemodel *m = lmz_bytemodel_create(14);
    lmz_rc_enc e;
    lmz_rc_enc_init(&e, a, n);
    lmz_bytemodel_encode(m, &e, src, n);
    size_t la = lmz_rc_enc_finish(&e);
    lmz_bytemodel_free(m);

    m = lmz_bytemodel_create_shared(14); /* no match table of its own */
    lmz_bm_stream *st = lmz_bm_stream_new(m, 16384); /* the same match table; the history grows */
    CHECK(st != NULL);
    lmz_rc_enc_init(&e, b, n);
    for (size_t i = 0; i < n; i++)
        for (int k = 7; k >= 0; k--) {
            int y = (src[i] >> k) & 1;
            lmz_rc_encode_bit(&e, (uint32_t)lmz_bm_stream_predict(m, st, 0) << 4, y);
            CHECK(lmz_bm_stream_update(m, st, y) == 0);
        }
    size_t lb = lmz_rc_enc_finish(&e);
    lmz_bm_stream_free(st);
    lmz_bytemodel_free(m);
    CHECK(la > 0 && la == lb && memcmp(a, b, la) == 0);
    free(src);
    free(a);
    free(b);
}
