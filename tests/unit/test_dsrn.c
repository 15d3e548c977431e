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
#include "train/net.h"
#include <xxhash.h>

enum { T = 16, NTOK = 96 };

/* a DSRN GGUF in memory: the trainer's network (initialised, then every
 * parameter moved a little so the zero-started ones matter) and a BPE
 * tokenizer trained on a sentence */
static uint8_t *make_model(dsrn_config *cf, int layer_norm, int tied, int fixed, size_t *len, dsrn_net **net_out)
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
                       (int32_t)st.n_tokens - 1};
    *cf = cfg;
    dsrn_net *n = dsrn_net_new(&cfg, 3, T);
    CHECK(n != NULL);
    dsrn_net_init(n, 3);
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

static void tokens(const dsrn_config *cf, int32_t *tok, size_t n, unsigned long long seed)
{
    for (size_t i = 0; i < n; i++) tok[i] = (int32_t)(test_rand(&seed) % (cf->vocab - 1));
    tok[0] = cf->eod; /* documents start with the end-of-document mark */
    tok[37] = cf->eod;
    tok[70] = cf->eod;
}

static float *engine_logits(const uint8_t *file, size_t len, const int32_t *tok, size_t n, int stepwise,
                            unsigned threads)
{
    lmz_model_opts o = {threads, 0};
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
    for (int variant = 0; variant < 2; variant++) {
        dsrn_config cf;
        dsrn_net *n;
        size_t len;
        uint8_t *file = make_model(&cf, variant, !variant, 0, &len, &n);
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
               variant ? "layernorm, untied" : "rmsnorm, tied", worst);
        CHECK(lg && worst < 1e-4);
        free(lg);
        dsrn_carry_free(c);
        dsrn_net_free(n);
        free(file);
    }
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
    for (int p = 1; p < LMZ_KPATH_COUNT; p++) {
        if (!lmz_kpath_supported((lmz_kpath)p)) continue;
        setenv("LMZIP_KERNELS", lmz_kpath_name((lmz_kpath)p), 1);
        float *o = engine_logits(file, len, tok[0], NTOK, p == 1, p == 2 ? 2 : 1);
        CHECK(o && memcmp(base, o, NTOK * V * sizeof(float)) == 0);
        free(o);
    }
    unsetenv("LMZIP_KERNELS");
    float *th = engine_logits(file, len, tok[0], NTOK, 0, 3);
    CHECK(th && memcmp(base, th, NTOK * V * sizeof(float)) == 0);
    free(th);
    /* three streams in lockstep: each as it is alone */
    lmz_model_opts o = {2, 0};
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
