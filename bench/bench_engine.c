/*
 * bench_engine.c — speed of the llama engine on a SmolLM2-135M-shaped model
 * with random weights (vocab 49152, dim 576, 30 layers, FFN 1536, 9 heads,
 * 3 KV heads, tied embeddings): speed does not depend on the values.
 * --shape qwen3-0.6b (qwen3: vocab 151936, dim 1024, 28 layers, FFN 3072,
 * 16 heads of 128, 8 KV heads, q/k norms, tied) or gemma3-270m (gemma3:
 * vocab 262144, dim 640, 18 layers, FFN 2048, 4 heads of 256, 1 KV head,
 * q/k norms and post norms, sliding window 512 on five layers of six, tied)
 * writes and measures those shapes instead.
 *
 *   build/bench_engine [--types f32,f16,q8_0] [--threads 1,2] [--prefill 512]
 *                      [--streams 1,8,32] [--steps 16] [--reps 5] [--dir /tmp]
 *                      [--model FILE.gguf] [--profiles f32,i8] [--shape NAME]
 *
 * --profiles: det-f32 (f32) and/or det-i8-v1 (i8: the products in exact int8
 * sums, the weights quantized when the model opens), a row each.
 * --model measures a given model (llama or DSRN) instead of the random one.
 * --tokenizer FILE gives the random model the tokenizer of FILE (a GGUF whose
 * vocabulary then sets the model's: SmolLM2's, Qwen3's, Gemma 3's), and
 * --write-only writes the models (DIR/lmzip-bench-SHAPE-TYPE-tok.gguf)
 * without measuring: a model of that shape that lmzip can run on text, for
 * bench/codec.
 * For each weight type: writes the model to DIR (once), then reports prefill
 * tokens/s over PREFILL tokens and lockstep decode tokens/s (streams x steps
 * tokens over the wall time), per thread count, and the process's peak
 * resident memory after each type. Like llama-bench, every test runs once to
 * warm up (the first pass maps the weights' pages and touches fresh KV
 * memory) and then REPS times from the same starting state; the tests take
 * turns (prefill, then each stream count, REPS rounds), so a ratio between
 * columns compares runs made under the same machine load. The table gives
 * the medians, and the median over rounds of the largest stream count's
 * rate over the prefill rate. Prints a Markdown table.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "model/gguf.h"
#include "model/model.h"

typedef struct {
    const char *name, *arch;
    uint32_t vocab, dim, layers, ffn, heads, kv, hd;
    int key_length;  /* write attention.key_length (head size not dim / heads) */
    int qk_norm;     /* per-head q/k norms (qwen3, gemma3) */
    int post_norm;   /* gemma3's post-attention and post-FFN norms */
    uint32_t swa;    /* gemma3's sliding window */
    float rope_base;
} shape;

static const shape shapes[] = {
    {"135m", "llama", 49152, 576, 30, 1536, 9, 3, 64, 0, 0, 0, 0, 100000.0f},
    {"qwen3-0.6b", "qwen3", 151936, 1024, 28, 3072, 16, 8, 128, 1, 1, 0, 0, 1000000.0f},
    {"gemma3-270m", "gemma3", 262144, 640, 18, 2048, 4, 1, 256, 1, 1, 1, 512, 1000000.0f},
};
static const shape *S = &shapes[0];
static uint32_t VOCAB; /* the shape's, or its tokenizer's */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

enum { MAXREPS = 64 };

/* median of n timings (sorts them) */
static double median(double *v, long n)
{
    for (long i = 1; i < n; i++)
        for (long j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static uint16_t half_of(float f) /* for random weights any rounding will do */
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t s = (u >> 16) & 0x8000, e = (u >> 23) & 0xFF, m = (u >> 13) & 0x3FF;
    if (e < 113) return (uint16_t)s;
    return (uint16_t)(s | (e - 112) << 10 | m);
}

/* a random (rows x cols) matrix of the type, malloc'd */
static void *matrix(uint32_t type, uint64_t cols, uint64_t rows)
{
    uint64_t n = cols * rows;
    uint8_t *p = malloc((size_t)lmz_ggml_row_bytes(type, cols) * rows);
    if (!p) return NULL;
    if (type == LMZ_GGML_Q8_0) {
        for (uint64_t b = 0; b < n / 32; b++) {
            uint16_t d = half_of(0.0005f);
            memcpy(p + 34 * b, &d, 2);
            for (int i = 0; i < 32; i++) p[34 * b + 2 + i] = (uint8_t)rnd();
        }
    } else {
        for (uint64_t i = 0; i < n; i++) {
            float v = ((float)(rnd() % 2001) - 1000.0f) * 0.00005f;
            if (type == LMZ_GGML_F32) memcpy(p + 4 * i, &v, 4);
            else {
                uint16_t h = half_of(v);
                memcpy(p + 2 * i, &h, 2);
            }
        }
    }
    return p;
}

static const char *tok_path; /* --tokenizer: a GGUF whose tokenizer the random model takes */

/* every tokenizer key of tok_path into w (its vocabulary sets VOCAB) */
static int copy_tokenizer(lmz_gguf_writer *w, lmz_gguf *g)
{
    char err[256];
    if (lmz_gguf_open(tok_path, g, err, sizeof err) != 0) {
        fprintf(stderr, "bench_engine: %s\n", err);
        return -1;
    }
    const lmz_gguf_kv *t = lmz_gguf_find(g, "tokenizer.ggml.tokens");
    if (!t || t->count != VOCAB) {
        fprintf(stderr, "bench_engine: %s: not a %u-token tokenizer\n", tok_path, VOCAB);
        return -1;
    }
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key.len > 10 && !memcmp(g->kv[i].key.ptr, "tokenizer.", 10)) lmz_gguf_w_copy(w, &g->kv[i]);
    return 0;
}

/* the vocabulary of tok_path, or 0 when it has none */
static uint32_t tokenizer_vocab(void)
{
    lmz_gguf g;
    char err[256];
    if (lmz_gguf_open(tok_path, &g, err, sizeof err) != 0) return 0;
    const lmz_gguf_kv *t = lmz_gguf_find(&g, "tokenizer.ggml.tokens");
    uint32_t n = t ? (uint32_t)t->count : 0;
    lmz_gguf_close(&g);
    return n;
}

static int write_model(const char *path, uint32_t type)
{
    lmz_gguf tg;
    memset(&tg, 0, sizeof tg);
    lmz_gguf_writer *w = lmz_gguf_writer_new();
    const uint32_t DIM = S->dim, LAYERS = S->layers, FFN = S->ffn, HEADS = S->heads, KV = S->kv, HD = S->hd;
    char key[96];
#define KEY(k) (snprintf(key, sizeof key, "%s." k, S->arch), key)
    lmz_gguf_w_str(w, "general.architecture", S->arch);
    lmz_gguf_w_u32(w, KEY("context_length"), 8192);
    lmz_gguf_w_u32(w, KEY("embedding_length"), DIM);
    lmz_gguf_w_u32(w, KEY("block_count"), LAYERS);
    lmz_gguf_w_u32(w, KEY("feed_forward_length"), FFN);
    lmz_gguf_w_u32(w, KEY("attention.head_count"), HEADS);
    lmz_gguf_w_u32(w, KEY("attention.head_count_kv"), KV);
    lmz_gguf_w_f32(w, KEY("rope.freq_base"), S->rope_base);
    lmz_gguf_w_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-6f);
    if (S->key_length) {
        lmz_gguf_w_u32(w, KEY("attention.key_length"), HD);
        lmz_gguf_w_u32(w, KEY("attention.value_length"), HD);
    }
    if (S->swa) {
        lmz_gguf_w_u32(w, KEY("attention.sliding_window"), S->swa);
        lmz_gguf_w_f32(w, KEY("rope.freq_base_swa"), 10000.0f);
    }
#undef KEY
    if (tok_path) {
        if (copy_tokenizer(w, &tg) != 0) {
            lmz_gguf_writer_free(w);
            lmz_gguf_close(&tg);
            return -1;
        }
    } else {
        lmz_gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
        lmz_gguf_w_str(w, "tokenizer.ggml.pre", "smollm");
        char(*names)[16] = malloc((size_t)VOCAB * sizeof *names);
        const char **tok = malloc((size_t)VOCAB * sizeof *tok);
        if (!names || !tok) return -1;
        for (uint32_t i = 0; i < VOCAB; i++) {
            snprintf(names[i], sizeof names[i], "t%u", i);
            tok[i] = names[i];
        }
        lmz_gguf_w_arr_str(w, "tokenizer.ggml.tokens", tok, VOCAB, NULL); /* (the writer copies them) */
        free(names);
        free(tok);
    }
    void **blobs = malloc((3 + (size_t)LAYERS * 9) * sizeof *blobs);
    if (!blobs) return -1;
    int nb = 0;
    uint64_t ne[2];
    uint32_t nn = DIM > HD ? DIM : HD;
    float *norm = malloc(nn * sizeof *norm);
    for (uint32_t i = 0; i < nn; i++) norm[i] = 1.0f;
    blobs[nb++] = norm;
    ne[0] = DIM;
    lmz_gguf_w_tensor(w, "output_norm.weight", LMZ_GGML_F32, 1, ne, norm);
    ne[0] = DIM, ne[1] = VOCAB;
    blobs[nb] = matrix(type, DIM, VOCAB);
    lmz_gguf_w_tensor(w, "token_embd.weight", type, 2, ne, blobs[nb++]);
    char name[64];
    for (uint32_t l = 0; l < LAYERS; l++) {
        const struct { const char *n; uint64_t in, out; } mats[] = {
            {"attn_q", DIM, HEADS * HD}, {"attn_k", DIM, KV * HD},   {"attn_v", DIM, KV * HD},
            {"attn_output", HEADS * HD, DIM}, {"ffn_gate", DIM, FFN}, {"ffn_up", DIM, FFN},
            {"ffn_down", FFN, DIM}};
        ne[0] = DIM;
        static const char *const norms[] = {"attn_norm", "ffn_norm", "post_attention_norm", "post_ffw_norm"};
        for (int k = 0; k < (S->post_norm ? 4 : 2); k++) {
            snprintf(name, sizeof name, "blk.%u.%s.weight", l, norms[k]);
            lmz_gguf_w_tensor(w, name, LMZ_GGML_F32, 1, ne, norm);
        }
        ne[0] = HD;
        for (int k = 0; S->qk_norm && k < 2; k++) {
            snprintf(name, sizeof name, "blk.%u.%s.weight", l, k ? "attn_k_norm" : "attn_q_norm");
            lmz_gguf_w_tensor(w, name, LMZ_GGML_F32, 1, ne, norm);
        }
        for (int k = 0; k < 7; k++) {
            snprintf(name, sizeof name, "blk.%u.%s.weight", l, mats[k].n);
            ne[0] = mats[k].in, ne[1] = mats[k].out;
            blobs[nb] = matrix(type, mats[k].in, mats[k].out);
            lmz_gguf_w_tensor(w, name, type, 2, ne, blobs[nb++]);
        }
    }
    FILE *f = fopen(path, "wb");
    int rc = f && lmz_gguf_writer_write(w, f) == 0 ? 0 : -1;
    if (f && fclose(f) != 0) rc = -1;
    lmz_gguf_writer_free(w);
    lmz_gguf_close(&tg);
    for (int i = 0; i < nb; i++) free(blobs[i]);
    free(blobs);
    return rc;
}

static int parse_list(const char *s, long *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *e;
        out[n++] = strtol(s, &e, 10);
        s = *e == ',' ? e + 1 : e;
        if (e == s && *s) break;
    }
    return n;
}

int main(int argc, char **argv)
{
    const char *types = "f32,f16,q8_0", *dir = "/tmp", *model_path = NULL, *profiles = "f32";
    int write_only = 0;
    long threads[4] = {1, 2}, streams[8] = {1, 8, 32}, prefill = 512, steps = 16, reps = 5;
    int nth = 2, nst = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--types") && i + 1 < argc) types = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) nth = parse_list(argv[++i], threads, 4);
        else if (!strcmp(argv[i], "--streams") && i + 1 < argc) nst = parse_list(argv[++i], streams, 8);
        else if (!strcmp(argv[i], "--prefill") && i + 1 < argc) prefill = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) tok_path = argv[++i];
        else if (!strcmp(argv[i], "--write-only")) write_only = 1;
        else if (!strcmp(argv[i], "--profiles") && i + 1 < argc) profiles = argv[++i];
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc) {
            const char *n = argv[++i];
            S = NULL;
            for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++)
                if (!strcmp(n, shapes[k].name) || (!strcmp(n, "smollm2-135m") && k == 0)) S = &shapes[k];
            if (!S) {
                fprintf(stderr, "bench_engine: --shape smollm2-135m, qwen3-0.6b or gemma3-270m\n");
                return 1;
            }
        } else {
            fprintf(stderr, "usage: bench_engine [--types f32,f16,q8_0] [--threads 1,2] [--prefill N] "
                            "[--streams 1,8,32] [--steps N] [--reps N] [--dir DIR] [--model FILE]\n"
                            "       [--tokenizer FILE --write-only] [--profiles f32,i8] [--shape NAME]\n");
            return 1;
        }
    }
    VOCAB = S->vocab;
    if (tok_path && !(VOCAB = tokenizer_vocab())) {
        fprintf(stderr, "bench_engine: %s: no vocabulary\n", tok_path);
        return 1;
    }
    if (prefill < 1 || steps < 1 || reps < 1 || reps > MAXREPS || nst < 1 || nth < 1) {
        fprintf(stderr, "bench_engine: --prefill and --steps must be positive, --reps 1..%d, lists not empty\n",
                MAXREPS);
        return 1;
    }
    printf("| weights | profile | threads | prefill %ld tok/s |", prefill);
    for (int s = 0; s < nst; s++) printf(" %ld stream%s tok/s |", streams[s], streams[s] > 1 ? "s" : "");
    printf(" %ld streams / prefill | peak RSS |\n|---|---|---|", streams[nst - 1]);
    for (int s = 0; s < nst; s++) printf("---|");
    printf("---|---|---|\n");
    static const struct { const char *name; uint32_t type; } all[] = {
        {"f32", LMZ_GGML_F32}, {"f16", LMZ_GGML_F16}, {"q8_0", LMZ_GGML_Q8_0}, {"bf16", LMZ_GGML_BF16}};
    for (int t = 0; t < 4; t++) {
        if (model_path ? t > 0 : !strstr(types, all[t].name)) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/lmzip-bench-%s-%s%s.gguf", dir, S->name, all[t].name, tok_path ? "-tok" : "");
        if (model_path) snprintf(path, sizeof path, "%s", model_path);
        FILE *e = fopen(path, "rb");
        if (e) fclose(e);
        else if (model_path || write_model(path, all[t].type) != 0) {
            fprintf(stderr, "bench_engine: cannot write %s\n", path);
            return 1;
        }
        if (write_only) { /* a model for other benchmarks (bench/codec) */
            fprintf(stderr, "bench_engine: wrote %s\n", path);
            continue;
        }
        for (int run = 0; run < 2 * nth; run++) {
            int th = run % nth, int8 = run / nth;
            if (!strstr(profiles, int8 ? "i8" : "f32")) continue;
            lmz_model_opts o = {(unsigned)threads[th], 0, int8};
            lmz_model *m;
            char err[256];
            if (lmz_model_open(path, &o, &m, err, sizeof err) != 0) {
                fprintf(stderr, "bench_engine: %s\n", err);
                return 1;
            }
            const uint32_t vocab = lmz_model_vocab(m);
            int32_t *ids = malloc((size_t)prefill * sizeof *ids);
            for (long i = 0; i < prefill; i++) ids[i] = (int32_t)(rnd() % vocab);
            lmz_state *s = lmz_state_new(m);
            long kmax = 0;
            for (int si = 0; si < nst; si++) kmax = streams[si] > kmax ? streams[si] : kmax;
            lmz_state **st = malloc((size_t)kmax * sizeof *st);
            float *out = malloc((size_t)kmax * vocab * sizeof(float));
            int32_t *tk = malloc((size_t)kmax * sizeof *tk);
            for (long j = 0; j < kmax; j++) st[j] = lmz_state_new(m);
            /* every test once per round, rounds in turn, so prefill and the
             * streams see the same machine load; round -1 warms up */
            double rate[9][MAXREPS], ratio[MAXREPS];
            for (long r = -1; r < reps; r++) {
                lmz_state_reset(s);
                double t0 = now();
                lmz_model_prefill(m, s, ids, (size_t)prefill, NULL);
                double tp = now() - t0;
                for (int si = 0; si < nst; si++) {
                    long k = streams[si];
                    for (long j = 0; j < k; j++) {
                        lmz_state_reset(st[j]);
                        tk[j] = (int32_t)((uint32_t)(j * 40503 + 17) % vocab);
                    }
                    double t1 = now();
                    for (long i = 0; i < steps; i++) {
                        lmz_model_step(m, st, tk, (size_t)k, out);
                        for (long j = 0; j < k; j++) tk[j] = (int32_t)((tk[j] + 7919) % vocab);
                    }
                    if (r >= 0) rate[1 + si][r] = (double)(k * steps) / (now() - t1);
                }
                if (r >= 0) {
                    rate[0][r] = (double)prefill / tp;
                    ratio[r] = rate[nst][r] / rate[0][r];
                }
            }
            printf("| %s | %s | %ld |", model_path ? lmz_model_arch(m) : all[t].name, int8 ? "det-i8-v1" : "det-f32",
                   threads[th]);
            for (int c = 0; c <= nst; c++) printf(" %.1f |", median(rate[c], reps));
            printf(" %.0f %% |", 100.0 * median(ratio, reps));
            for (long j = 0; j < kmax; j++) lmz_state_free(st[j]);
            lmz_state_free(s);
            free(st);
            free(out);
            free(tk);
            struct rusage ru;
            getrusage(RUSAGE_SELF, &ru);
            printf(" %.0f MB |\n", (double)ru.ru_maxrss / 1024.0);
            free(ids);
            lmz_model_free(m);
        }
    }
    return 0;
}
