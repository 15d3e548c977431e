/*
 * bench_engine.c — speed of the llama engine on a SmolLM2-135M-shaped model
 * with random weights (vocab 49152, dim 576, 30 layers, FFN 1536, 9 heads,
 * 3 KV heads, tied embeddings): speed does not depend on the values.
 *
 *   build/bench_engine [--types f32,f16,q8_0] [--threads 1,2] [--prefill 512]
 *                      [--streams 1,8,32] [--steps 16] [--reps 5] [--dir /tmp]
 *                      [--model FILE.gguf] [--profiles f32,i8]
 *
 * --profiles: det-f32 (f32) and/or det-i8-v1 (i8: the products in exact int8
 * sums, the weights quantized when the model opens), a row each.
 * --model measures a given model (llama or DSRN) instead of the random one.
 * --tokenizer FILE gives the random model the tokenizer of FILE (a GGUF with
 * a 49152-token vocabulary, e.g. SmolLM2's), and --write-only writes the
 * models (DIR/lmzip-bench-135m-TYPE-tok.gguf) without measuring: a
 * SmolLM2-135M-shaped model that lmzip can run on text, for bench/codec.
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

enum { VOCAB = 49152, DIM = 576, LAYERS = 30, FFN = 1536, HEADS = 9, KV = 3, HD = 64 };

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

/* copy a string array key from g to w */
static int copy_strs(lmz_gguf_writer *w, const lmz_gguf *g, const char *key)
{
    const lmz_gguf_kv *kv = lmz_gguf_find(g, key);
    if (!kv) return 0;
    const char **v = malloc((size_t)kv->count * sizeof *v);
    size_t *len = malloc((size_t)kv->count * sizeof *len);
    if (!v || !len) return -1;
    for (uint64_t i = 0; i < kv->count; i++) {
        lmz_str s = lmz_gguf_arr_str(kv, i);
        v[i] = s.ptr;
        len[i] = s.len;
    }
    lmz_gguf_w_arr_str(w, key, v, (size_t)kv->count, len);
    free(v);
    free(len);
    return 0;
}

/* the tokenizer of tok_path (a 49152-token vocabulary) into w */
static int copy_tokenizer(lmz_gguf_writer *w, lmz_gguf *g)
{
    char err[256];
    if (lmz_gguf_open(tok_path, g, err, sizeof err) != 0) {
        fprintf(stderr, "bench_engine: %s\n", err);
        return -1;
    }
    const lmz_gguf_kv *t = lmz_gguf_find(g, "tokenizer.ggml.tokens");
    if (!t || t->count != VOCAB) {
        fprintf(stderr, "bench_engine: %s: not a %d-token tokenizer\n", tok_path, VOCAB);
        return -1;
    }
    static const char *const strs[] = {"tokenizer.ggml.model", "tokenizer.ggml.pre"};
    for (int i = 0; i < 2; i++) {
        lmz_str s;
        char buf[64];
        if (lmz_gguf_get_str(g, strs[i], &s) == 0 && s.len < sizeof buf) {
            memcpy(buf, s.ptr, s.len);
            buf[s.len] = 0;
            lmz_gguf_w_str(w, strs[i], buf);
        }
    }
    if (copy_strs(w, g, "tokenizer.ggml.tokens") || copy_strs(w, g, "tokenizer.ggml.merges")) return -1;
    const lmz_gguf_kv *tt = lmz_gguf_find(g, "tokenizer.ggml.token_type");
    if (tt && tt->count == VOCAB) lmz_gguf_w_arr_i32(w, "tokenizer.ggml.token_type", (const int32_t *)tt->data, VOCAB);
    static const char *const ids[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                      "tokenizer.ggml.unknown_token_id"};
    for (int i = 0; i < 3; i++) {
        uint64_t v;
        if (lmz_gguf_get_u64(g, ids[i], &v) == 0) lmz_gguf_w_u32(w, ids[i], (uint32_t)v);
    }
    return 0;
}

static int write_model(const char *path, uint32_t type)
{
    lmz_gguf tg;
    memset(&tg, 0, sizeof tg);
    lmz_gguf_writer *w = lmz_gguf_writer_new();
    lmz_gguf_w_str(w, "general.architecture", "llama");
    lmz_gguf_w_u32(w, "llama.context_length", 8192);
    lmz_gguf_w_u32(w, "llama.embedding_length", DIM);
    lmz_gguf_w_u32(w, "llama.block_count", LAYERS);
    lmz_gguf_w_u32(w, "llama.feed_forward_length", FFN);
    lmz_gguf_w_u32(w, "llama.attention.head_count", HEADS);
    lmz_gguf_w_u32(w, "llama.attention.head_count_kv", KV);
    lmz_gguf_w_f32(w, "llama.rope.freq_base", 100000.0f);
    lmz_gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    if (tok_path) {
        if (copy_tokenizer(w, &tg) != 0) {
            lmz_gguf_writer_free(w);
            lmz_gguf_close(&tg);
            return -1;
        }
    } else {
        lmz_gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
        lmz_gguf_w_str(w, "tokenizer.ggml.pre", "smollm");
        static char names[VOCAB][16];
        static const char *tok[VOCAB];
        for (int i = 0; i < VOCAB; i++) {
            snprintf(names[i], sizeof names[i], "t%d", i);
            tok[i] = names[i];
        }
        lmz_gguf_w_arr_str(w, "tokenizer.ggml.tokens", tok, VOCAB, NULL);
    }
    void *blobs[3 + LAYERS * 9];
    int nb = 0;
    uint64_t ne[2];
    float *norm = malloc(DIM * sizeof *norm);
    for (int i = 0; i < DIM; i++) norm[i] = 1.0f;
    blobs[nb++] = norm;
    ne[0] = DIM;
    lmz_gguf_w_tensor(w, "output_norm.weight", LMZ_GGML_F32, 1, ne, norm);
    ne[0] = DIM, ne[1] = VOCAB;
    blobs[nb] = matrix(type, DIM, VOCAB);
    lmz_gguf_w_tensor(w, "token_embd.weight", type, 2, ne, blobs[nb++]);
    char name[64];
    for (int l = 0; l < LAYERS; l++) {
        static const struct { const char *n; uint64_t in, out; } mats[] = {
            {"attn_q", DIM, HEADS * HD}, {"attn_k", DIM, KV * HD},   {"attn_v", DIM, KV * HD},
            {"attn_output", HEADS * HD, DIM}, {"ffn_gate", DIM, FFN}, {"ffn_up", DIM, FFN},
            {"ffn_down", FFN, DIM}};
        ne[0] = DIM;
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        lmz_gguf_w_tensor(w, name, LMZ_GGML_F32, 1, ne, norm);
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        lmz_gguf_w_tensor(w, name, LMZ_GGML_F32, 1, ne, norm);
        for (int k = 0; k < 7; k++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, mats[k].n);
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
        else {
            fprintf(stderr, "usage: bench_engine [--types f32,f16,q8_0] [--threads 1,2] [--prefill N] "
                            "[--streams 1,8,32] [--steps N] [--reps N] [--dir DIR] [--model FILE]\n"
                            "       [--tokenizer FILE --write-only] [--profiles f32,i8]\n");
            return 1;
        }
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
        snprintf(path, sizeof path, "%s/lmzip-bench-135m-%s%s.gguf", dir, all[t].name, tok_path ? "-tok" : "");
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
