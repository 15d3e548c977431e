/*
 * bench_train.c — training throughput of the DSRN trainer against the
 * machine's own matrix-product speed.
 *
 *   bench_train [--threads 1,2] [--presets tiny,small,base,d384] [--steps N] [--vocab V]
 *               [--matmul f32|bf16] [--reps N]
 *
 * First the GEMM rate: C (2048 x 2048) += A B^T in float through the
 * trainer's product (OpenBLAS, split over the OpenMP threads), the best of 5.
 * Then, per preset and thread count, full training steps (forward, backward,
 * AdamW) of batch 16 x 128 tokens on random tokens, after 2 warm-up steps:
 * tokens/s, and the FLOP/s they stand for (6 per matrix parameter per token,
 * plus attention's 12 x window x width per block) as a share of the GEMM rate;
 * with --reps, the median of that many timed runs. The preset d384 is a
 * larger model for the table (D 384, 6 blocks: about 24M parameters).
 * --matmul picks the trainer's products (f32: OpenBLAS; bf16: oneDNN). With
 * LMZ_TRAIN_PROFILE=1 the time shares of the step's parts go to stderr.
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "train/net.h"
#include "train/train.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* the GEMM rate with t threads: products split as the trainer splits them */
static double gemm_rate(int t)
{
    const int n = 2048;
    float *a = malloc((size_t)n * n * sizeof *a), *b = malloc((size_t)n * n * sizeof *b),
          *c = calloc((size_t)n * n, sizeof *c);
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = (float)(i % 17) * 0.01f, b[i] = (float)(i % 13) * 0.01f;
    openblas_set_num_threads(1);
    double best = 1e30;
    for (int rep = 0; rep < 6; rep++) {
        double t0 = now();
#pragma omp parallel for num_threads(t) schedule(static)
        for (int i = 0; i < t; i++) {
            int r0 = n * i / t, r1 = n * (i + 1) / t;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, n, n, 1.0f, a + (size_t)r0 * n, n, b, n, 1.0f,
                        c + (size_t)r0 * n, n);
        }
        double dt = now() - t0;
        if (rep > 0 && dt < best) best = dt; /* the first is a warm-up */
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * n * (double)n / best;
}

static double flops_per_token(const dsrn_net *n)
{
    size_t nt;
    const dsrn_tensor *t = dsrn_net_tensors(n, &nt);
    const dsrn_config *c = dsrn_net_config(n);
    double f = 0;
    for (size_t i = 0; i < nt; i++) {
        if (t[i].rows == 1) continue;
        /* the embedding is a lookup, unless it is also the head */
        if (!strcmp(t[i].name, "token_embd.weight") && !c->tied) continue;
        f += 6.0 * t[i].rows * t[i].cols;
    }
    return f + 12.0 * c->W * c->D * c->L;
}

int main(int argc, char **argv)
{
    const char *threads = "1,2", *presets = "tiny,small,base";
    int steps = 8, reps = 1;
    uint32_t vocab = 8192;
    const char *matmul = "f32";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = argv[i + 1];
        else if (!strcmp(argv[i], "--presets")) presets = argv[i + 1];
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--vocab")) vocab = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--matmul")) matmul = argv[i + 1];
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_train [--threads 1,2] [--presets tiny,small,base,d384] [--steps N] [--vocab V]"
                            " [--matmul f32|bf16] [--reps N]\n");
            return 1;
        }
    }
    dsrn_mm_kind mm;
    char err[160];
    if (reps < 1 || reps > 15 || dsrn_mm_choose(matmul, &mm, err, sizeof err) != 0) {
        fprintf(stderr, "bench_train: %s\n", reps < 1 || reps > 15 ? "--reps: 1 to 15" : err);
        return 1;
    }
    printf("matrix products: %s\n", dsrn_mm_describe(mm));
    int tl[8], ntl = 0;
    for (const char *p = threads; *p && ntl < 8;) {
        tl[ntl++] = atoi(p);
        p = strchr(p, ',');
        if (!p) break;
        p++;
    }
    double rate[8];
    for (int k = 0; k < ntl; k++) {
        rate[k] = gemm_rate(tl[k]);
        printf("GEMM 2048^3 (float), %d thread%s: %.1f GFLOP/s\n", tl[k], tl[k] > 1 ? "s" : "", rate[k] / 1e9);
    }
    printf("\n| preset | parameters | threads | tokens/s | GFLOP/s | of GEMM |\n|---|---|---|---|---|---|\n");
    char list[256];
    snprintf(list, sizeof list, "%s", presets);
    for (char *name = strtok(list, ","); name; name = strtok(NULL, ",")) {
        dsrn_train_opts o;
        dsrn_train_defaults(&o);
        if (!strcmp(name, "d384")) { /* the larger model of the table */
            dsrn_train_preset(&o, "base");
            o.cfg.L = 6;
        } else if (dsrn_train_preset(&o, name) != 0) {
            fprintf(stderr, "unknown preset %s\n", name);
            return 1;
        }
        o.cfg.vocab = vocab;
        o.cfg.eod = (int32_t)vocab - 1;
        const int B = 16, T = 128;
        dsrn_net *n = dsrn_net_new(&o.cfg, B, T);
        dsrn_carry *c = n ? dsrn_carry_new(n, B) : NULL;
        if (!c) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        dsrn_net_init(n, 1, 0);
        dsrn_net_set_matmul(n, mm);
        int32_t *tok = malloc((size_t)B * T * sizeof *tok), *tgt = malloc((size_t)B * T * sizeof *tgt);
        uint64_t s = 1;
        for (int i = 0; i < B * T; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            tok[i] = (int32_t)((s >> 33) % vocab);
            tgt[i] = (int32_t)((s >> 13) % vocab);
        }
        size_t np = dsrn_net_n_params(n);
        for (int k = 0; k < ntl; k++) {
            omp_set_num_threads(tl[k]);
            double sec[15];
            for (int rep = 0; rep < reps; rep++) {
                double t0 = 0;
                for (int st = 0; st < steps + 2; st++) {
                    if (st == 2) {
                        t0 = now();
                        dsrn_prof_reset();
                    }
                    memset(dsrn_net_grads(n), 0, np * sizeof(real));
                    dsrn_forward(n, c, tok, tgt, NULL);
                    dsrn_backward(n, c, tok, tgt, (real)(1.0 / (B * T)));
                    dsrn_carry_advance(n, c);
                    double gn;
                    dsrn_adamw(n, &o, 1e-3, (uint64_t)st + 1, &gn);
                }
                sec[rep] = now() - t0;
            }
            if (dsrn_prof_enabled()) { /* the last run's shares */
                double part[DSRN_PROF_COUNT], sum = 0;
                dsrn_prof_get(part);
                fprintf(stderr, "%s, %d thread%s, time shares:", name, tl[k], tl[k] > 1 ? "s" : "");
                for (int i = 0; i < DSRN_PROF_COUNT; i++) {
                    fprintf(stderr, " %s %.1f %%,", dsrn_prof_name(i), 100 * part[i] / sec[reps - 1]);
                    sum += part[i];
                }
                fprintf(stderr, " other %.1f %%\n", 100 * (1 - sum / sec[reps - 1]));
            }
            for (int a = 0; a < reps; a++) /* sorted: the median */
                for (int b = a + 1; b < reps; b++)
                    if (sec[b] < sec[a]) {
                        double x = sec[a];
                        sec[a] = sec[b];
                        sec[b] = x;
                    }
            double tps = (double)steps * B * T / sec[reps / 2], fl = tps * flops_per_token(n);
            printf("| %s | %.2fM | %d | %.0f | %.1f | %.0f %% |\n", name, (double)np / 1e6, tl[k], tps, fl / 1e9,
                   100.0 * fl / rate[k]);
            fflush(stdout);
        }
        free(tok);
        free(tgt);
        dsrn_carry_free(c);
        dsrn_net_free(n);
    }
    dsrn_mm_release();
    return 0;
}
