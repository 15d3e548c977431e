/* test_dsrn.c — the DSRN inference engine against the trainer's forward, and
 * its own determinism (prefill, steps, lockstep streams, threads, kernels). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "tensor/kernels.h"
#include "test.h"
#include "train/bpe.h"
#include "train/mm.h"
#include "train/net.h"
#include <xxhash.h>

enum { T = 16, NTOK = 96 };

/* a DSRN GGUF in memory: the trainer's network (initialised, then every
 * parameter moved a little so the zero-started ones matter) and a BPE
 * tokenizer trained on a sentence */
static uint8_t *make_model_b(dsrn_config *cf, int layer_norm, int tied, int fixed, int biases, size_t *len,
                             dsrn_net **net_out)
{
    const char *text = "the cat sat on the mat; the dog sat on the log. the end.";
    lmz_corpus c;
    memset(&c, 0, sizeof c);
    lmz_corpus_add(&c, (const uint8_t *)text, strlen(text), 0);
    lmz_gguf_writer *w = lmz_gguf_writer_new();
    lmz_bpe_opts bo = {280, 0};
    lmz_bpe_stats st;
    char err[256];
    CHECK(lmz_bpe_train(&c, &bo, w, &st, err, sizeof err) == 0);
    lmz_corpus_free(&c);
    dsrn_config cfg = {st.n_tokens, 16, 3, 24, 2, 2, 8, layer_norm, tied, 1e-5f, 10.0f, 10000.0f,
                       (int32_t)st.n_tokens - 1, biases, 0.0f};
    *cf = cfg;
    dsrn_net *n = dsrn_net_new(&cfg, 3, T);
    CHECK(n != NULL);
    dsrn_net_init(n, 3, 0);
    float *p = dsrn_net_params(n);
    unsigned long long s = 9;
    for (size_t i = 0; i < dsrn_net_n_params(n); i++) { /* integers only: the same file on every machine */
        float noise = (float)((int)(test_rand(&s) % 2001) - 1000) / 10000.0f;
        p[i] = fixed ? 3.0f * noise : p[i] + noise;
    }
    float *buf = malloc(dsrn_net_n_params(n) * sizeof *buf);
    dsrn_net_write_gguf(n, w, buf);
    FILE *f = tmpfile();
    CHECK(lmz_gguf_writer_write(w, f) == 0);
    lmz_gguf_writer_free(w);
    free(buf);
    *len = (size_t)ftell(f);
    rewind(f);
    uint8_t *file = malloc(*len);
    CHECK(fread(file, 1, *len, f) == *len);
    fclose(f);
    *net_out = n;
    return file;
}

static uint8_t *make_model(dsrn_config *cf, int layer_norm, int tied, int fixed, size_t *len, dsrn_net **net_out)
{
    return make_model_b(cf, layer_norm, tied, fixed, 0, len, net_out);
}

static void tokens(const dsrn_config *cf, int32_t *tok, size_t n, unsigned long long seed)
{
    for (size_t i = 0; i < n; i++) tok[i] = (int32_t)(test_rand(&seed) % (cf->vocab - 1));
    tok[0] = cf->eod; /* documents start with the end-of-document mark */
    tok[37] = cf->eod;
    tok[70] = cf->eod;
}

static int g_int8; /* engine_logits with det-i8-v1 */

static float *engine_logits(const uint8_t *file, size_t len, const int32_t *tok, size_t n, int stepwise,
                            unsigned threads)
{
    lmz_model_opts o = {threads, 0, g_int8};
    lmz_model *m;
    char err[256];
    if (lmz_model_open_buffer(file, len, &o, &m, err, sizeof err) != 0) {
        printf("  open: %s\n", err);
        return NULL;
    }
    uint32_t V = lmz_model_vocab(m);
    float *lg = malloc(n * V * sizeof *lg);
    lmz_state *s = lmz_state_new(m);
    int rc = 0;
    if (stepwise)
        for (size_t i = 0; i < n && rc == 0; i++) rc = lmz_model_step(m, &s, tok + i, 1, lg + i * V);
    else
        rc = lmz_model_prefill(m, s, tok, n, lg);
    CHECK(rc == 0);
    lmz_state_free(s);
    lmz_model_free(m);
    return lg;
}

TEST(dsrn_engine_equals_trainer_forward)
{
    for (int variant = 0; variant < 3; variant++) { /* 2: with the gate biases */
        dsrn_config cf;
        dsrn_net *n;
        size_t len;
        uint8_t *file = make_model_b(&cf, variant == 1, variant != 1, 0, variant == 2, &len, &n);
        int32_t tok[NTOK], tgt[NTOK];
        tokens(&cf, tok, NTOK, 17);
        for (size_t i = 0; i < NTOK; i++) tgt[i] = i + 1 < NTOK ? tok[i + 1] : 0;
        /* the trainer: one stream, chunks of T, state carried */
        dsrn_carry *c = dsrn_carry_new(n, 1);
        double loss[NTOK];
        for (size_t i = 0; i < NTOK; i += T) {
            dsrn_forward(n, c, tok + i, tgt + i, loss + i);
            dsrn_carry_advance(n, c);
        }
        float *lg = engine_logits(file, len, tok, NTOK, 0, 1);
        double worst = 0;
        for (size_t i = 0; lg && i + 1 < NTOK; i++) {
            const float *z = lg + i * cf.vocab;
            double mx = z[0], s = 0;
            for (uint32_t v = 1; v < cf.vocab; v++) mx = fmax(mx, z[v]);
            for (uint32_t v = 0; v < cf.vocab; v++) s += exp(z[v] - mx);
            double l = mx + log(s) - z[tgt[i]];
            worst = fmax(worst, fabs(l - loss[i]));
        }
        printf("  %s: engine vs trainer, worst per-token loss difference %.2g nats\n",
               variant == 1 ? "layernorm, untied" : variant ? "rmsnorm, tied, gate biases" : "rmsnorm, tied", worst);
        CHECK(lg && worst < 1e-4);
        free(lg);
        dsrn_carry_free(c);
        dsrn_net_free(n);
        free(file);
    }
}

/* every kernel path but the scalar one, prefill (2 threads) and step by
 * step (3 threads): base's bits (with g_int8's profile) */
static void check_every_path(const uint8_t *file, size_t len, const int32_t *tok, const float *base, size_t V)
{
    for (int p = 1; p < LMZ_KPATH_COUNT; p++) {
        if (!lmz_kpath_supported((lmz_kpath)p)) continue;
        setenv("LMZIP_KERNELS", lmz_kpath_name((lmz_kpath)p), 1);
        for (int stepwise = 0; stepwise < 2; stepwise++) {
            float *o = engine_logits(file, len, tok, NTOK, stepwise, stepwise ? 3 : 2);
            CHECK(o && base && memcmp(base, o, NTOK * V * sizeof(float)) == 0);
            free(o);
        }
    }
    unsetenv("LMZIP_KERNELS");
}

TEST(dsrn_prefill_steps_lockstep_threads_paths_same_bits)
{
    dsrn_config cf;
    dsrn_net *n;
    size_t len;
    uint8_t *file = make_model(&cf, 0, 1, 1, &len, &n);
    dsrn_net_free(n);
    const size_t V = cf.vocab;
    int32_t tok[3][NTOK];
    for (int k = 0; k < 3; k++) tokens(&cf, tok[k], NTOK, 100 + (unsigned long long)k);
    setenv("LMZIP_KERNELS", "scalar", 1);
    float *base = engine_logits(file, len, tok[0], NTOK, 0, 1);
    float *step = engine_logits(file, len, tok[0], NTOK, 1, 1);
    CHECK(base && step && memcmp(base, step, NTOK * V * sizeof(float)) == 0);
    /* det-f32-v1: the same bits on every machine (make arm checks AArch64) */
    uint64_t h = base ? XXH64(base, NTOK * V * sizeof(float), 0) : 0;
    if (h != 0x13c2d53d975cf305ull) printf("  logits hash %016llx\n", (unsigned long long)h);
    CHECK_EQ_U64(h, 0x13c2d53d975cf305ull);
    check_every_path(file, len, tok[0], base, V);
    float *th = engine_logits(file, len, tok[0], NTOK, 0, 3);
    CHECK(th && memcmp(base, th, NTOK * V * sizeof(float)) == 0);
    free(th);
    /* three streams in lockstep: each as it is alone */
    lmz_model_opts o = {2, 0, 0};
    lmz_model *m;
    char err[256];
    CHECK(lmz_model_open_buffer(file, len, &o, &m, err, sizeof err) == 0);
    CHECK(!strcmp(lmz_model_arch(m), "dsrn") && lmz_model_window(m) == 8);
    lmz_state *s[3] = {lmz_state_new(m), lmz_state_new(m), lmz_state_new(m)};
    float *lock = malloc(3 * NTOK * V * sizeof *lock), *row = malloc(3 * V * sizeof *row);
    for (size_t i = 0; i < NTOK; i++) {
        int32_t t3[3] = {tok[0][i], tok[1][i], tok[2][i]};
        CHECK(lmz_model_step(m, s, t3, 3, row) == 0);
        for (int k = 0; k < 3; k++) memcpy(lock + ((size_t)k * NTOK + i) * V, row + k * V, V * sizeof(float));
    }
    for (int k = 0; k < 3; k++) {
        float *alone = engine_logits(file, len, tok[k], NTOK, 0, 1);
        CHECK(alone && memcmp(alone, lock + (size_t)k * NTOK * V, NTOK * V * sizeof(float)) == 0);
        free(alone);
    }
    /* a reset state starts over */
    lmz_state_reset(s[0]);
    CHECK(lmz_state_pos(s[0]) == 0);
    CHECK(lmz_model_prefill(m, s[0], tok[0], NTOK, lock) == 0);
    CHECK(memcmp(lock, base, NTOK * V * sizeof(float)) == 0);
    int32_t bad = (int32_t)V;
    CHECK(lmz_model_prefill(m, s[0], &bad, 1, NULL) != 0);
    for (int k = 0; k < 3; k++) lmz_state_free(s[k]);
    lmz_model_free(m);
    free(lock);
    free(row);
    free(base);
    free(step);
    free(file);
}

/* det-i8-v1: the integer products give one set of bits for prefill, steps,
 * lockstep streams, threads and kernel paths (make arm: AArch64 too), and
 * stay close to det-f32's predictions. */
TEST(dsrn_int8_same_bits_everywhere)
{
    dsrn_config cf;
    dsrn_net *n;
    size_t len;
    uint8_t *file = make_model_b(&cf, 0, 1, 1, 1, &len, &n);
    dsrn_net_free(n);
    const size_t V = cf.vocab;
    int32_t tok[2][NTOK];
    for (int k = 0; k < 2; k++) tokens(&cf, tok[k], NTOK, 300 + (unsigned long long)k);
    float *f32 = engine_logits(file, len, tok[0], NTOK, 0, 1);
    g_int8 = 1;
    setenv("LMZIP_KERNELS", "scalar", 1);
    float *base = engine_logits(file, len, tok[0], NTOK, 0, 1);
    float *step = engine_logits(file, len, tok[0], NTOK, 1, 2);
    CHECK(base && step && memcmp(base, step, NTOK * V * sizeof(float)) == 0);
    uint64_t h = base ? XXH64(base, NTOK * V * sizeof(float), 0) : 0;
    if (h != 0x1c927cb39c710f8eull) printf("  det-i8-v1 logits hash %016llx\n", (unsigned long long)h);
    CHECK_EQ_U64(h, 0x1c927cb39c710f8eull);
    check_every_path(file, len, tok[0], base, V);
    /* two streams in lockstep: each as it is alone */
    lmz_model_opts o = {2, 0, 1};
    lmz_model *m;
    char err[256];
    CHECK(lmz_model_open_buffer(file, len, &o, &m, err, sizeof err) == 0);
    lmz_state *s[2] = {lmz_state_new(m), lmz_state_new(m)};
    float *lock = malloc(2 * NTOK * V * sizeof *lock), *row = malloc(2 * V * sizeof *row);
    for (size_t i = 0; i < NTOK; i++) {
        int32_t t2[2] = {tok[0][i], tok[1][i]};
        CHECK(lmz_model_step(m, s, t2, 2, row) == 0);
        for (int k = 0; k < 2; k++) memcpy(lock + ((size_t)k * NTOK + i) * V, row + k * V, V * sizeof(float));
    }
    for (int k = 0; k < 2; k++) {
        float *alone = engine_logits(file, len, tok[k], NTOK, 0, 1);
        CHECK(alone && memcmp(alone, lock + (size_t)k * NTOK * V, NTOK * V * sizeof(float)) == 0);
        free(alone);
    }
    for (int k = 0; k < 2; k++) lmz_state_free(s[k]);
    lmz_model_free(m);
    g_int8 = 0;
    /* close to det-f32: the mean cross-entropy of the next token */
    double ce[2] = {0, 0};
    for (int q = 0; q < 2 && f32 && base; q++)
        for (size_t i = 0; i + 1 < NTOK; i++) {
            const float *z = (q ? base : f32) + i * V;
            double mx = z[0], sum = 0;
            for (size_t v = 1; v < V; v++) mx = fmax(mx, z[v]);
            for (size_t v = 0; v < V; v++) sum += exp(z[v] - mx);
            ce[q] += (mx + log(sum) - z[tok[0][i + 1]]) / (NTOK - 1);
        }
    printf("  cross-entropy: det-f32 %.4f, det-i8-v1 %.4f nats\n", ce[0], ce[1]);
    CHECK(fabs(ce[1] - ce[0]) < 0.02 * ce[0]);
    free(lock), free(row), free(base), free(step), free(f32), free(file);
}

/* The bf16 products (oneDNN) against a double-precision product of the same
 * bf16-rounded inputs, every transpose, with and without accumulation, an
 * output stride wider than the product: only the float sums differ. */
TEST(dsrn_bf16_product_matches_reference)
{
    if (!dsrn_mm_bf16_native()) {
        printf("  skipped: %s\n", dsrn_mm_describe(DSRN_MM_BF16));
        return;
    }
    enum { M = 37, N = 29, K = 70, LDC = 33 };
    float a[K * M + M * K], b[K * N + N * K], c[M * LDC];
    unsigned long long s = 5;
    for (size_t i = 0; i < sizeof a / sizeof *a; i++) a[i] = (float)((int)(test_rand(&s) % 2001) - 1000) / 997.0f;
    for (size_t i = 0; i < sizeof b / sizeof *b; i++) b[i] = (float)((int)(test_rand(&s) % 2001) - 1000) / 991.0f;
    double worst = 0;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int acc = 0; acc < 2; acc++) {
                int lda = ta ? M : K, ldb = tb ? K : N;
                for (int i = 0; i < M * LDC; i++) c[i] = 0.25f * (float)(i % 7);
                dsrn_mm_bf16(ta, tb, M, N, K, a, lda, b, ldb, acc, c, LDC);
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double want = acc ? 0.25 * (double)((i * LDC + j) % 7) : 0;
                        for (int k = 0; k < K; k++) {
                            float x = ta ? a[k * lda + i] : a[i * lda + k], y = tb ? b[j * ldb + k] : b[k * ldb + j];
                            uint32_t ux = (uint32_t)dsrn_bf16(x) << 16, uy = (uint32_t)dsrn_bf16(y) << 16;
                            float fx, fy;
                            memcpy(&fx, &ux, 4);
                            memcpy(&fy, &uy, 4);
                            want += (double)fx * (double)fy;
                        }
                        worst = fmax(worst, fabs(c[i * LDC + j] - want));
                    }
                /* the columns past N are the caller's, untouched */
                for (int i = 0; i < M; i++)
                    for (int j = N; j < LDC; j++) CHECK(c[i * LDC + j] == 0.25f * (float)((i * LDC + j) % 7));
            }
    printf("  worst difference from the double sum of the bf16 inputs: %.2g\n", worst);
    CHECK(worst < 1e-4);
    /* rounding: to nearest, ties to even, NaN kept */
    CHECK(dsrn_bf16(1.0f) == 0x3f80);
    CHECK(dsrn_bf16(1.0f + 0x1p-8f) == 0x3f80);              /* a tie: to even */
    CHECK(dsrn_bf16(1.0f + 0x1p-7f + 0x1p-8f) == 0x3f82);    /* a tie: to even, upward */
    CHECK(dsrn_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81);   /* above the tie */
    CHECK((dsrn_bf16(NAN) & 0x7f80) == 0x7f80 && (dsrn_bf16(NAN) & 0x7f) != 0);
    dsrn_mm_release();
}

/* A training step in bf16 against the same step in f32 on the test model:
 * the loss within 1 % and the gradient pointing the same way (cosine above
 * 0.99, norms within 5 %). */
TEST(dsrn_bf16_step_agrees_with_f32)
{
    if (!dsrn_mm_bf16_native()) {
        printf("  skipped: %s\n", dsrn_mm_describe(DSRN_MM_BF16));
        return;
    }
    dsrn_config cf;
    dsrn_net *n;
    size_t len;
    uint8_t *file = make_model(&cf, 0, 1, 0, &len, &n);
    free(file);
    int32_t tok[NTOK], tgt[NTOK]; /* the first 3 x T: three streams of one chunk */
    tokens(&cf, tok, NTOK, 23);
    for (size_t i = 0; i < 3 * T; i++) tgt[i] = i + 1 < 3 * T ? tok[i + 1] : 0;
    size_t np = dsrn_net_n_params(n);
    float *g32 = malloc(np * sizeof *g32);
    double loss[2];
    for (int k = 0; k < 2; k++) {
        dsrn_net_set_matmul(n, k ? DSRN_MM_BF16 : DSRN_MM_F32);
        dsrn_carry *c = dsrn_carry_new(n, 3);
        memset(dsrn_net_grads(n), 0, np * sizeof(float));
        loss[k] = dsrn_forward(n, c, tok, tgt, NULL) / (3 * T);
        dsrn_backward(n, c, tok, tgt, 1.0f / (3 * T));
        if (!k) memcpy(g32, dsrn_net_grads(n), np * sizeof *g32);
        dsrn_carry_free(c);
    }
    const float *g16 = dsrn_net_grads(n);
    double dot = 0, n32 = 0, n16 = 0;
    for (size_t i = 0; i < np; i++) {
        dot += (double)g32[i] * g16[i];
        n32 += (double)g32[i] * g32[i];
        n16 += (double)g16[i] * g16[i];
    }
    double cosine = dot / sqrt(n32 * n16), ratio = sqrt(n16 / n32);
    printf("  loss %.5f (f32) vs %.5f (bf16); gradient cosine %.5f, norm ratio %.4f\n", loss[0], loss[1], cosine,
           ratio);
    CHECK(fabs(loss[1] - loss[0]) < 0.01 * loss[0]);
    CHECK(cosine > 0.99 && ratio > 0.95 && ratio < 1.05);
    free(g32);
    dsrn_net_free(n);
    dsrn_mm_release();
}

/* dsrn train --grow: a model with blocks added after its own, made the
 * identity, gives the model's losses bit for bit, and its added blocks learn
 * (their zero-started projections get a gradient) */
TEST(dsrn_grown_model_starts_as_the_model)
{
    dsrn_config cf;
    dsrn_net *n;
    size_t len;
    uint8_t *file = make_model_b(&cf, 0, 1, 0, 1, &len, &n);
    lmz_gguf g;
    char err[256];
    CHECK(lmz_gguf_parse(file, len, &g, err, sizeof err) == 0);
    dsrn_config cg = cf;
    cg.L = cf.L + 2;
    dsrn_net *big = dsrn_net_new(&cg, 1, T);
    CHECK(big != NULL);
    dsrn_net_init(big, 11, 0);
    CHECK(dsrn_net_read_gguf(big, &g, cf.L, err, sizeof err) == 0);
    dsrn_net_identity_blocks(big, cf.L);
    /* the file alone cannot fill the bigger network */
    dsrn_net *big2 = dsrn_net_new(&cg, 1, T);
    CHECK(big2 && dsrn_net_read_gguf(big2, &g, cg.L, err, sizeof err) != 0);
    dsrn_net_free(big2);
    int32_t tok[NTOK], tgt[NTOK];
    tokens(&cf, tok, NTOK, 29);
    for (size_t i = 0; i < NTOK; i++) tgt[i] = i + 1 < NTOK ? tok[i + 1] : 0;
    double la[NTOK], lb[NTOK];
    dsrn_carry *ca = dsrn_carry_new(n, 1), *cb = dsrn_carry_new(big, 1);
    for (size_t i = 0; i < NTOK; i += T) {
        dsrn_forward(n, ca, tok + i, tgt + i, la + i);
        dsrn_carry_advance(n, ca);
        dsrn_forward(big, cb, tok + i, tgt + i, lb + i);
        dsrn_carry_advance(big, cb);
    }
    CHECK(memcmp(la, lb, sizeof la) == 0);
    /* a step's gradient reaches the added blocks' output projections */
    memset(dsrn_net_grads(big), 0, dsrn_net_n_params(big) * sizeof(float));
    dsrn_carry_reset(big, cb);
    dsrn_forward(big, cb, tok, tgt, NULL);
    dsrn_backward(big, cb, tok, tgt, 1.0f / T);
    size_t nt;
    const dsrn_tensor *t = dsrn_net_tensors(big, &nt);
    int zero_start = 0, moved = 0;
    for (size_t i = 0; i < nt; i++) {
        char pre[16];
        snprintf(pre, sizeof pre, "blk.%u.", cf.L + 1);
        if (strncmp(t[i].name, pre, strlen(pre)) || (!strstr(t[i].name, "attn_output") &&
                                                    !strstr(t[i].name, "slow_read") && !strstr(t[i].name, "ffn_down")))
            continue;
        double w = 0, gr = 0;
        for (size_t k = 0; k < (size_t)t[i].rows * t[i].cols; k++) {
            w += fabs(dsrn_net_params(big)[t[i].off + k]);
            gr += fabs(dsrn_net_grads(big)[t[i].off + k]);
        }
        zero_start += w == 0;
        moved += gr > 0;
    }
    CHECK(zero_start == 3 && moved == 3);
    dsrn_carry_free(ca);
    dsrn_carry_free(cb);
    dsrn_net_free(big);
    dsrn_net_free(n);
    lmz_gguf_close(&g);
    free(file);
}
