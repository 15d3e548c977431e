/*
 * bench_qmm.c — det-i8-v1's integer matrix products (tensor/qmat.h) on every
 * integer kernel this CPU has, side by side: SmolLM2-135M's shapes (576 x 576
 * attention, 1536 x 576 and 576 x 1536 MLP, 49,152 x 576 output head) and the
 * default model's (192 x 192, 768 x 192, 8192 x 192), for 1 to 512 tokens.
 * One thread; each figure the best of 5 timings of enough products to fill
 * 20 ms; the activations quantized beforehand (the product alone), the
 * weights and activations 64-byte aligned as the engine keeps them.
 * Prints microseconds per product and GOP/s (2 operations a multiply-add);
 * every path's output is compared with the scalar kernel's bits.
 *   build/bench_qmm [TOKENS ...]
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/align.h"
#include "tensor/qmat.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t g_n;
static void row(void *ctx, size_t r, float *out) /* a deterministic pseudo-random matrix */
{
    (void)ctx;
    for (size_t k = 0; k < g_n; k++) out[k] = (float)((r * 2654435761u + k * 40503u) % 2001) / 1000.0f - 1.0f;
}

int main(int argc, char **argv)
{
    static const size_t shapes[][2] = {{576, 576}, {1536, 576}, {576, 1536}, {49152, 576},
                                       {192, 192}, {768, 192},  {8192, 192}};
    size_t toks[16] = {1, 2, 4, 8, 16, 32, 64, 512}, nt = 8;
    if (argc > 1) {
        nt = 0;
        for (int i = 1; i < argc && nt < 16; i++) toks[nt++] = strtoul(argv[i], NULL, 10);
    }
    lmz_kpath paths[LMZ_KPATH_COUNT];
    size_t np = 0;
    for (int p = LMZ_KPATH_AVX2; p < LMZ_KPATH_COUNT; p++)
        if (lmz_kpath_supported((lmz_kpath)p)) paths[np++] = (lmz_kpath)p;
    printf("| rows x n | tokens |");
    for (size_t p = 0; p < np; p++) printf(" %s µs | GOP/s |", lmz_qmm_name(paths[p]));
    printf("\n|---|---:|");
    for (size_t p = 0; p < np; p++) printf("---:|---:|");
    printf("\n");
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        size_t rows = shapes[s][0], n = shapes[s][1];
        g_n = n;
        float *scratch = malloc(n * sizeof *scratch);
        lmz_qmat w;
        if (!scratch || lmz_qmat_init(&w, rows, n, row, NULL, scratch) != 0) return 1;
        for (size_t ti = 0; ti < nt; ti++) {
            size_t T = toks[ti];
            float *x = malloc(T * n * sizeof *x), *xs = malloc(T * sizeof *xs);
            float *y = lmz_alloc64(T * rows * sizeof(float));
            float *ref = malloc(T * rows * sizeof *ref);
            int8_t *p8 = lmz_alloc64(T * 4 * w.groups);
            if (!x || !xs || !y || !ref || !p8) return 1;
            for (size_t k = 0; k < T * n; k++) x[k] = (float)((k * 7919u) % 1001) / 500.0f - 1.0f;
            lmz_qact(LMZ_KPATH_SCALAR, x, T, n, w.groups, p8, xs);
            lmz_qmm(LMZ_KPATH_SCALAR, &w, 0, w.blocks, p8, xs, T, ref, rows);
            printf("| %zu x %zu | %zu |", rows, n, T);
            for (size_t p = 0; p < np; p++) {
                double best = 1e30;
                for (int r = 0; r < 5; r++) {
                    size_t it = 0;
                    double t0 = now(), t;
                    do {
                        lmz_qmm(paths[p], &w, 0, w.blocks, p8, xs, T, y, rows);
                        it++;
                    } while ((t = now() - t0) < 0.02);
                    if (t / (double)it < best) best = t / (double)it;
                }
                if (memcmp(y, ref, T * rows * sizeof *y) != 0) {
                    fprintf(stderr, "bench_qmm: %s differs from the scalar kernel\n", lmz_qmm_name(paths[p]));
                    return 1;
                }
                printf(" %.1f | %.0f |", best * 1e6, 2.0 * (double)rows * (double)n * (double)T / best * 1e-9);
            }
            printf("\n");
            free(x), free(xs), free(y), free(ref), free(p8);
        }
        lmz_qmat_free(&w);
        free(scratch);
    }
    return 0;
}
