/* The llama engine against llama.cpp's logits and a float64 reference, and
 * the determinism promises: prefill == lockstep steps == every kernel path. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "model/model.h"
#include "model/model_impl.h"
#include "tensor/kernels.h"
#include "test.h"


static int32_t *tokens_of(const char *rel, size_t *n)
{
    size_t len;
    char *txt = (char *)test_read_file(test_ref_path(rel), &len);
    if (!txt) return NULL;
    int32_t *ids = malloc(64 * sizeof *ids);
    *n = 0;
    char *p = txt;
    while (*n < 64 && p < txt + len) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        ids[(*n)++] = (int32_t)v;
        p = end;
    }
    free(txt);
    return ids;
}

static int32_t *tiny_tokens(size_t *n) { return tokens_of("tokens_tiny.txt", n); }

static lmz_model_opts run_opts = {1, 0, 0};

static float *run(const char *model, const int32_t *ids, size_t n, int stepwise)
{
    lmz_model *m;
    char err[256];
    if (lmz_model_open(test_ref_path(model), &run_opts, &m, err, sizeof err) != 0) {
        printf("  %s\n", err);
        return NULL;
    }
    uint32_t V = lmz_model_vocab(m);
    float *lg = malloc(n * V * sizeof *lg);
    lmz_state *s = lmz_state_new(m);
    if (!stepwise) {
        lmz_model_prefill(m, s, ids, n, lg);
    } else {
        for (size_t i = 0; i < n; i++) lmz_model_step(m, &s, ids + i, 1, lg + i * V);
    }
    lmz_state_free(s);
    lmz_model_free(m);
    return lg;
}

TEST(llama_logits_match_llamacpp)
{
    size_t n;
    int32_t *ids = test_ref_path("tokens_tiny.txt") ? tiny_tokens(&n) : NULL;
    if (!ids) {
        printf("  ../shared/reference not found: skipped\n");
        return;
    }
    CHECK_EQ_U64(n, 64);
    float *ours = run("tiny-llama-f32.gguf", ids, n, 0);
    size_t len;
    float *cpp = (float *)test_read_file(test_ref_path("tiny_f32w_f32kv_batch64.logits.f32"), &len);
    double *f64 = (double *)test_read_file(test_ref_path("tiny_ref_f64.logits.f64"), &len);
    CHECK(ours && cpp && f64);
    if (ours && cpp && f64) {
        double d1 = 0, d2 = 0;
        for (size_t i = 0; i < n * 512; i++) {
            if (fabs((double)ours[i] - cpp[i]) > d1) d1 = fabs((double)ours[i] - cpp[i]);
            if (fabs((double)ours[i] - f64[i]) > d2) d2 = fabs((double)ours[i] - f64[i]);
        }
        printf("  F32: max |ours - llama.cpp| %.3g, max |ours - float64| %.3g\n", d1, d2);
        CHECK(d1 < 1e-4);
        CHECK(d2 < 1e-4);
    }
    /* F16 and Q8_0: llama.cpp rounds activations to the weight type, we keep
     * them in F32, so only a loose agreement is expected */
    const char *q[2][2] = {{"tiny-llama-f16.gguf", "tiny_f16w_f32kv_batch64.logits.f32"},
                           {"tiny-llama-q8_0.gguf", "tiny_q8_0w_f32kv_batch64.logits.f32"}};
    for (int k = 0; k < 2; k++) {
        float *o = run(q[k][0], ids, n, 0);
        float *c = (float *)test_read_file(test_ref_path(q[k][1]), &len);
        double d = 0;
        for (size_t i = 0; o && c && i < n * 512; i++)
            if (fabs((double)o[i] - c[i]) > d) d = fabs((double)o[i] - c[i]);
        printf("  %s: max |ours - llama.cpp| %.3g\n", q[k][0], d);
        CHECK(o && c && d < 0.5);
        free(o);
        free(c);
    }
    free(ours);
    free(cpp);
    free(f64);
    free(ids);
}

/* det-f32 (the float products) and det-i8-v1 (exact int8 sums): each one
 * set of bits for prefill, steps, threads, paths and windows, pinned by a
 * hash of the logits (taken once on x86-64, checked on AArch64 by make
 * arm); det-i8-v1 also near the float64 reference's logits */
TEST(llama_prefill_step_and_paths_same_bits)
{
    size_t n;
    int32_t *ids = test_ref_path("tokens_tiny.txt") ? tiny_tokens(&n) : NULL;
    if (!ids) return;
    const char *models[] = {"tiny-llama-f32.gguf", "tiny-llama-f16.gguf", "tiny-llama-q8_0.gguf"};
    static const uint64_t golden[2][3] = {{0xbcb229a80a9e6453ull, 0xd09672c263c520e5ull, 0xf08dc2ac20509b04ull},
                                          {0xa7666f03b06c2562ull, 0xa0c3d6137976b913ull, 0xa6174868bdc30788ull}};
    const char *profile[2] = {"det-f32", "det-i8-v1"};
    size_t len;
    double *f64 = (double *)test_read_file(test_ref_path("tiny_ref_f64.logits.f64"), &len);
    for (int q = 0; q < 2; q++)
        for (int k = 0; k < 3; k++) {
            run_opts.int8 = q;
            setenv("LMZIP_KERNELS", "scalar", 1);
            float *base = run(models[k], ids, n, 0);
            float *step = run(models[k], ids, n, 1);
            CHECK(base && step && memcmp(base, step, n * 512 * sizeof(float)) == 0);
            uint64_t h = base ? XXH64(base, n * 512 * sizeof(float), 0) : 0;
            if (h != golden[q][k])
                printf("  %s, %s: logits hash %016llx\n", models[k], profile[q], (unsigned long long)h);
            CHECK_EQ_U64(h, golden[q][k]);
            for (int p = 1; p < LMZ_KPATH_COUNT; p++) {
                if (!lmz_kpath_supported((lmz_kpath)p)) continue;
                setenv("LMZIP_KERNELS", lmz_kpath_name((lmz_kpath)p), 1);
                run_opts.threads = p == 1 ? 1 : 2;
                float *o = run(models[k], ids, n, p == 1);
                CHECK(o && memcmp(base, o, n * 512 * sizeof(float)) == 0);
                free(o);
            }
            /* threads split rows only; a short window is the same in prefill
             * chunks as step by step */
            run_opts.threads = 2;
            float *th = run(models[k], ids, n, 0);
            CHECK(th && memcmp(base, th, n * 512 * sizeof(float)) == 0);
            free(th);
            run_opts.threads = 7;
            th = run(models[k], ids, n, 1);
            CHECK(th && memcmp(base, th, n * 512 * sizeof(float)) == 0);
            run_opts.threads = 1;
            run_opts.window = 8;
            float *wp = run(models[k], ids, n, 0), *ws = run(models[k], ids, n, 1);
            CHECK(wp && ws && memcmp(wp, ws, n * 512 * sizeof(float)) == 0);
            CHECK(wp && memcmp(wp, base, n * 512 * sizeof(float)) != 0); /* the window matters */
            run_opts.window = 0;
            if (q == 1 && base && f64) {
                double d = 0, mag = 0;
                for (size_t i = 0; i < n * 512; i++) {
                    d = fmax(d, fabs((double)base[i] - f64[i]));
                    mag = fmax(mag, fabs(f64[i]));
                }
                printf("  %s: det-i8-v1 max |ours - float64| %.3g (largest logit %.3g)\n", models[k], d, mag);
                CHECK(d < 0.05 * mag);
            }
            free(th);
            free(wp);
            free(ws);
            free(base);
            free(step);
        }
    run_opts.int8 = 0;
    unsetenv("LMZIP_KERNELS");
    free(f64);
    free(ids);
}

TEST(llama_lockstep_streams_and_window)
{
    size_t n;
    int32_t *ids = test_ref_path("tokens_tiny.txt") ? tiny_tokens(&n) : NULL;
    if (!ids) return;
    lmz_model *m;
    char err[256];
    lmz_model_opts o = {1, 16, 0};
    CHECK(lmz_model_open(test_ref_path("tiny-llama-f32.gguf"), &o, &m, err, sizeof err) == 0);
    CHECK_EQ_U64(lmz_model_window(m), 16);
    /* three streams with different histories, advanced together, equal
     * the same streams run one by one */
    lmz_state *s[3], *t[3];
    float *a = malloc(3 * 512 * sizeof(float)), *b = malloc(512 * sizeof(float));
    for (int i = 0; i < 3; i++) {
        s[i] = lmz_state_new(m);
        t[i] = lmz_state_new(m);
    }
    int same = 1;
    for (size_t i = 0; i + 2 < n; i++) {
        int32_t tok[3] = {ids[i], ids[i + 1], ids[i + 2]};
        lmz_model_step(m, s, tok, 3, a);
        for (int j = 0; j < 3; j++) {
            lmz_model_step(m, &t[j], &tok[j], 1, b);
            if (memcmp(a + j * 512, b, 512 * sizeof(float))) same = 0;
        }
    }
    CHECK(same);
    CHECK_EQ_U64(lmz_state_pos(s[0]), n - 2);
    int32_t bad = 512;
    CHECK(lmz_model_step(m, s, &bad, 1, a) == -1);
    for (int i = 0; i < 3; i++) {
        lmz_state_free(s[i]);
        lmz_state_free(t[i]);
    }
    free(a);
    free(b);
    lmz_model_free(m);
    free(ids);
    CHECK(lmz_model_open(test_ref_path("smollm2-tokenizer/smollm2-tok-tiny.gguf"), NULL, &m, err, sizeof err) == 0);
    if (m) lmz_model_free(m);
    /* Llama 2's SentencePiece vocabulary (a third-party file) */
    CHECK(lmz_model_open(test_ref_path("llama-2-tiny-random.gguf"), NULL, &m, err, sizeof err) == 0);
    if (m) {
        CHECK(lmz_model_tokenizer(m) != NULL);
        lmz_model_free(m);
    }
    /* a tokenizer of a kind not implemented (SentencePiece without a U+2581
     * piece): the model still runs on token ids, prefill and steps agree */
    CHECK(lmz_model_open("tests/fuzz/gguf-corpus/llama-spm-ids-only.gguf", NULL, &m, err, sizeof err) == 0);
    if (m) {
        CHECK(lmz_model_tokenizer(m) == NULL && strstr(lmz_model_tokenizer_note(m), "U+2581"));
        CHECK_EQ_U64(lmz_model_vocab(m), 40);
        int32_t sp[5] = {1, 7, 39, 0, 12};
        float *pl = malloc(5 * 40 * sizeof *pl), *sl = malloc(5 * 40 * sizeof *sl);
        lmz_state *st = lmz_state_new(m);
        CHECK(pl && sl && st && lmz_model_prefill(m, st, sp, 5, pl) == 0);
        lmz_state_reset(st);
        for (int i = 0; i < 5; i++) CHECK(lmz_model_step(m, &st, sp + i, 1, sl + (size_t)i * 40) == 0);
        CHECK(memcmp(pl, sl, 5 * 40 * sizeof *pl) == 0);
        int finite = 1;
        for (size_t i = 0; i < 5 * 40; i++) finite &= isfinite(pl[i]) != 0;
        CHECK(finite);
        lmz_state_free(st);
        free(pl);
        printf("  llama-spm-ids-only.gguf: runs on ids; %s\n", lmz_model_tokenizer_note(m));
        free(sl);
        lmz_model_free(m);
    }
}

static double max_diff_f32(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static double max_diff_f64(const float *a, const double *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* The model at rel (512-token vocabulary) on ids, det-f32 and det-i8-v1:
 * the logits' hash (golden[profile]), the same bits on every kernel path
 * (steps on the scalar one, 2 threads on the others); det-i8-v1 within 5 %
 * of the largest float64 logit r64 */
static void same_bits_everywhere(const char *name, const char *rel, const int32_t *ids, size_t n,
                                 const uint64_t golden[2], const double *r64)
{
    const size_t N = n * 512;
    for (int q = 0; q < 2; q++) {
        run_opts.int8 = q;
        setenv("LMZIP_KERNELS", "scalar", 1);
        float *base = run(rel, ids, n, 0);
        uint64_t h = base ? XXH64(base, N * sizeof(float), 0) : 0;
        if (h != golden[q]) printf("  %s, %s: logits hash %016llx\n", name, q ? "det-i8-v1" : "det-f32", (unsigned long long)h);
        CHECK_EQ_U64(h, golden[q]);
        for (int p = 1; p < LMZ_KPATH_COUNT; p++) {
            if (!lmz_kpath_supported((lmz_kpath)p)) continue;
            setenv("LMZIP_KERNELS", lmz_kpath_name((lmz_kpath)p), 1);
            run_opts.threads = p == 1 ? 1 : 2;
            float *o = run(rel, ids, n, p == 1);
            CHECK(base && o && memcmp(base, o, N * sizeof(float)) == 0);
            free(o);
        }
        run_opts.threads = 1;
        if (q == 1 && base && r64) {
            double d = max_diff_f64(base, r64, N), mag = 0;
            for (size_t i = 0; i < N; i++) mag = fmax(mag, fabs(r64[i]));
            printf("  %s: det-i8-v1 max |ours - float64| %.3g (largest logit %.3g)\n", name, d, mag);
            CHECK(d < 0.05 * mag);
        }
        free(base);
    }
    run_opts.int8 = 0;
    unsetenv("LMZIP_KERNELS");
}

/* qwen3 (head size of its own, q/k norms, NEOX RoPE, untied head) and
 * qwen2 (q/k/v biases, tied head) against llama.cpp's F32 logits, batch and
 * token by token, and the float64 references (Q8_0 weights: the reference
 * that dequantizes them, as we do); our prefill and steps, every kernel
 * path and thread count give one set of bits, pinned by hashes (make arm
 * checks them on AArch64); det-i8-v1 near the float64 reference */
TEST(qwen_logits_match_llamacpp)
{
    static const char *arch[2] = {"qwen3", "qwen2"};
    static const uint64_t golden[2][2] = {{0x12787a51b97ac31aull, 0xe38ef9f99183eaf0ull},  /* [arch][det-f32, det-i8-v1] */
                                          {0x0a986294266dcce2ull, 0x7c536157892ee13bull}};
    char rel[128], rel2[128];
    snprintf(rel, sizeof rel, "qwen/tokens_%s.txt", arch[0]);
    if (!test_ref_path(rel)) {
        printf("  ../shared/reference/qwen not found: skipped\n");
        return;
    }
    for (int a = 0; a < 2; a++) {
        size_t n, len;
        snprintf(rel, sizeof rel, "qwen/tokens_%s.txt", arch[a]);
        int32_t *ids = tokens_of(rel, &n);
        CHECK(ids && n == 64);
        if (!ids) continue;
        const size_t N = n * 512;
        snprintf(rel, sizeof rel, "qwen/%s-tiny-f32.gguf", arch[a]);
        snprintf(rel2, sizeof rel2, "qwen/%s-tiny-q8_0.gguf", arch[a]);
        unsetenv("LMZIP_KERNELS");
        float *batch = run(rel, ids, n, 0), *step = run(rel, ids, n, 1), *q8 = run(rel2, ids, n, 0);
        char f[4][128];
        snprintf(f[0], sizeof f[0], "qwen/%s_f32_batch64.logits.f32", arch[a]);
        snprintf(f[1], sizeof f[1], "qwen/%s_f32_single.logits.f32", arch[a]);
        snprintf(f[2], sizeof f[2], "qwen/%s_ref_f64.logits.f64", arch[a]);
        snprintf(f[3], sizeof f[3], "qwen/%s_q8_0w_ref_f64.logits.f64", arch[a]);
        float *cb = (float *)test_read_file(test_ref_path(f[0]), &len);
        float *cs = (float *)test_read_file(test_ref_path(f[1]), &len);
        double *r64 = (double *)test_read_file(test_ref_path(f[2]), &len);
        double *q64 = (double *)test_read_file(test_ref_path(f[3]), &len);
        CHECK(batch && step && q8 && cb && cs && r64 && q64);
        if (batch && step && q8 && cb && cs && r64 && q64) {
            double d1 = max_diff_f32(batch, cb, N), d2 = max_diff_f32(step, cs, N), d3 = max_diff_f64(batch, r64, N),
                   d4 = max_diff_f64(q8, q64, N);
            printf("  %s: max |ours - llama.cpp| %.3g batch, %.3g single; |ours - float64| %.3g; Q8_0 %.3g\n", arch[a],
                   d1, d2, d3, d4);
            CHECK(d1 < 1e-4 && d2 < 1e-4 && d3 < 1e-4 && d4 < 1e-4);
            CHECK(memcmp(batch, step, N * sizeof(float)) == 0);
        }
        same_bits_everywhere(arch[a], rel, ids, n, golden[a], r64);
        free(batch);
        free(step);
        free(q8);
        free(cb);
        free(cs);
        free(r64);
        free(q64);
        free(ids);
    }
}

/* gemma3 (embedding scale, sandwich norms, q/k norms, tanh-GELU FFN, five
 * sliding-window layers of 8 positions and a global one with their own RoPE
 * bases, linear scaling on the global layer) against the float64 reference
 * and llama.cpp built with the exact GELU (stock llama.cpp rounds GELU
 * through an fp16 table: 2.5e-3 off, see its README); Q8_0 against the
 * reference that dequantizes the weights; one set of bits everywhere */
TEST(gemma3_logits_match_reference)
{
    size_t n, len;
    if (!test_ref_path("gemma3/tokens_gemma3.txt")) {
        printf("  ../shared/reference/gemma3 not found: skipped\n");
        return;
    }
    int32_t *ids = tokens_of("gemma3/tokens_gemma3.txt", &n);
    CHECK(ids && n == 64);
    if (!ids) return;
    const size_t N = n * 512;
    const char *f32 = "gemma3/gemma3-tiny-f32.gguf";
    unsetenv("LMZIP_KERNELS");
    float *batch = run(f32, ids, n, 0), *step = run(f32, ids, n, 1), *q8 = run("gemma3/gemma3-tiny-q8_0.gguf", ids, n, 0);
    double *r64 = (double *)test_read_file(test_ref_path("gemma3/gemma3_ref_f64.logits.f64"), &len);
    double *q64 = (double *)test_read_file(test_ref_path("gemma3/gemma3_q8_0w_ref_f64.logits.f64"), &len);
    float *ex = (float *)test_read_file(test_ref_path("gemma3/gemma3_f32_exactgelu_batch64.logits.f32"), &len);
    CHECK(batch && step && q8 && r64 && q64 && ex);
    if (batch && step && q8 && r64 && q64 && ex) {
        double d1 = max_diff_f64(batch, r64, N), d2 = max_diff_f32(batch, ex, N), d3 = max_diff_f64(q8, q64, N);
        printf("  gemma3: max |ours - float64| %.3g, |ours - llama.cpp (exact GELU)| %.3g; Q8_0 %.3g\n", d1, d2, d3);
        CHECK(d1 < 1e-4 && d2 < 1e-4 && d3 < 1e-4);
        CHECK(memcmp(batch, step, N * sizeof(float)) == 0);
    }
    static const uint64_t golden[2] = {0x87c79c0e1f9148a4ull, 0x1fc161a2e64f54a6ull}; /* det-f32, det-i8-v1 */
    same_bits_everywhere("gemma3", f32, ids, n, golden, r64);
    free(batch);
    free(step);
    free(q8);
    free(r64);
    free(q64);
    free(ex);
    free(ids);
}

/* the definition, one element at a time: scale and maximum in window
 * order, shift, the profile's exp, the sum in order, times 1 / sum */
static void softmax_ref(lmz_kpath kp, const float *raw, uint32_t first, uint32_t n_ctx, uint32_t cap, float scale,
                        float *sc)
{
    float mx = -INFINITY;
    for (uint32_t j = 0, t = first; j < n_ctx; j++, t = t + 1 == cap ? 0 : t + 1) {
        sc[j] = raw[t] * scale;
        if (sc[j] > mx) mx = sc[j];
    }
    for (uint32_t j = 0; j < n_ctx; j++) sc[j] -= mx;
    lmz_exp_array(kp, sc, sc, n_ctx);
    float sum = 0.0f;
    for (uint32_t j = 0; j < n_ctx; j++) sum += sc[j];
    float inv = 1.0f / sum;
    for (uint32_t j = 0; j < n_ctx; j++) sc[j] *= inv;
}

/* the softmax of one head and of several at once: head by head the bits of
 * the definition, on every path, for 1 to 9 heads, windows that wrap the
 * ring or not, with a NaN score, signed zeros and a lone slot */
TEST(window_softmax_heads_same_bits)
{
    unsigned long long seed = 21;
    const uint32_t cap = 96, lds = 100;
    float *raw = malloc(9 * cap * sizeof *raw), *want = malloc(lds * sizeof *want);
    float *got = malloc(9 * lds * sizeof *got), *one = malloc(lds * sizeof *one);
    int compared = 0, differ = 0;
    for (size_t nh = 1; nh <= 9; nh++)
        for (int w = 0; w < 4; w++) {
            static const uint32_t first_s[4] = {0, 50, 95, 7}, n_s[4] = {80, 60, 1, 96};
            uint32_t first = first_s[w], n_ctx = n_s[w];
            for (size_t i = 0; i < 9 * cap; i++) raw[i] = (float)((double)(test_rand(&seed) % 20001) / 1000.0 - 10.0);
            raw[3] = -0.0f, raw[4] = 0.0f, raw[cap + 60] = NAN;
            for (int p = 0; p < LMZ_KPATH_COUNT; p++) {
                if (!lmz_kpath_supported((lmz_kpath)p)) continue;
                memset(got, 0x55, 9 * lds * sizeof *got);
                lmz_window_softmax_heads((lmz_kpath)p, raw, nh, first, n_ctx, cap, 0.125f, got, lds);
                for (size_t h = 0; h < nh; h++) {
                    softmax_ref((lmz_kpath)p, raw + h * cap, first, n_ctx, cap, 0.125f, want);
                    differ += memcmp(want, got + h * lds, n_ctx * sizeof *want) != 0;
                    lmz_window_softmax((lmz_kpath)p, raw + h * cap, first, n_ctx, cap, 0.125f, one);
                    differ += memcmp(want, one, n_ctx * sizeof *want) != 0;
                    compared++;
                }
            }
        }
    CHECK_EQ_U64(differ, 0);
    CHECK(compared >= 180);
    free(raw), free(want), free(got), free(one);
}
