/* Integer products (det-i8-v1, tensor/qmat.h): the rounding rule, the
 * activations' quantization on every path, and every path's products
 * against a plain int64 reference, on odd shapes and tails. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/qmat.h"
#include "test.h"

static float rnd(unsigned long long *s) { return (float)((double)(test_rand(s) % 2000001) / 1e6 - 1.0); }

TEST(qmat_rounding_rule)
{
    /* v * inv rounded to nearest, ties to even, clamped, NaN to 0 */
    struct {
        float v, inv;
        int q;
    } c[] = {{0.5f, 1, 0},      {1.5f, 1, 2},     {2.5f, 1, 2},          {-0.5f, 1, 0},    {-1.5f, 1, -2},
             {126.5f, 1, 126},  {125.5f, 1, 126}, {127.4f, 1, 127},      {127.6f, 1, 127}, {1e30f, 1, 127},
             {-1e30f, 1, -127}, {-128.0f, 1, -127}, {NAN, 1, 0},         {INFINITY, 1, 127}, {0.3f, 10, 3},
             {1.0f, 0, 0},      {-0.0f, 1, 0},    {0.49999997f, 1, 0},   {63.5f, 2, 127},  {-2.5f, 1, -2}};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        int q = lmz_q8_round(c[i].v, c[i].inv);
        if (q != c[i].q) fprintf(stderr, "  case %zu: %g * %g -> %d, expected %d\n", i, c[i].v, c[i].inv, q, c[i].q);
        CHECK(q == c[i].q);
    }
}

/* activations with specials and every tail length: the same bytes and
 * scales on every path */
TEST(qmat_activations_same_bits)
{
    unsigned long long seed = 11;
    int compared = 0;
    for (size_t n = 1; n <= 70; n++) {
        size_t G = (n + 3) / 4, T = 3;
        float *x = malloc(T * n * sizeof *x);
        for (size_t k = 0; k < T * n; k++) x[k] = rnd(&seed) * (float)(1 + test_rand(&seed) % 100);
        x[n / 2] = NAN;            /* token 0: a NaN is ignored, its value 0 */
        for (size_t k = 0; k < n; k++) x[2 * n + k] = 0; /* token 2: zeros */
        int8_t *ref = malloc(T * 4 * G), *got = malloc(T * 4 * G);
        float rs[3], gs[3];
        lmz_qact(LMZ_KPATH_SCALAR, x, T, n, G, ref, rs);
        CHECK(ref[n / 2] == 0);
        CHECK(rs[2] == 0);
        for (int p = 0; p < LMZ_KPATH_COUNT; p++) {
            if (!lmz_kpath_supported((lmz_kpath)p)) continue;
            memset(got, 0x55, T * 4 * G);
            lmz_qact((lmz_kpath)p, x, T, n, G, got, gs);
            CHECK(memcmp(ref, got, T * 4 * G) == 0);
            CHECK(memcmp(rs, gs, sizeof rs) == 0);
            compared++;
        }
        free(x), free(ref), free(got);
    }
    CHECK(compared >= 70);
}

static const float *g_w; /* rows x n, for row() */
static size_t g_n;
static void row(void *ctx, size_t r, float *out)
{
    (void)ctx;
    memcpy(out, g_w + r * g_n, g_n * sizeof *out);
}

TEST(qmat_every_path_matches_int64_reference)
{
    unsigned long long seed = 3;
    size_t rows_s[] = {1, 5, 16, 17, 33, 64, 100};
    size_t n_s[] = {1, 3, 4, 5, 31, 64, 65, 192, 577};
    size_t T_s[] = {1, 2, 3, 4, 5, 9, 16, 17, 40}; /* AMX: tiles of 16 tokens, pairs, a tail */
    int cases = 0, bad = 0;
    for (size_t ri = 0; ri < sizeof rows_s / sizeof *rows_s; ri++)
        for (size_t ni = 0; ni < sizeof n_s / sizeof *n_s; ni++) {
            size_t rows = rows_s[ri], n = n_s[ni];
            float *w = malloc(rows * n * sizeof *w), *scratch = malloc(n * sizeof *scratch);
            for (size_t k = 0; k < rows * n; k++) w[k] = rnd(&seed) * 0.1f;
            if (rows > 2) memset(w + n, 0, n * sizeof *w); /* a zero row */
            g_w = w, g_n = n;
            lmz_qmat q;
            CHECK(lmz_qmat_init(&q, rows, n, row, NULL, scratch) == 0);
            for (size_t ti = 0; ti < sizeof T_s / sizeof *T_s; ti++) {
                size_t T = T_s[ti], G = q.groups;
                float *x = malloc(T * n * sizeof *x), *xs = malloc(T * sizeof *xs);
                for (size_t k = 0; k < T * n; k++) x[k] = rnd(&seed) * 3.0f;
                int8_t *p = malloc(T * 4 * G);
                lmz_qact(LMZ_KPATH_SCALAR, x, T, n, G, p, xs);
                /* the reference, from the definition */
                float *want = malloc(T * rows * sizeof *want), *got = malloc(T * rows * sizeof *got);
                for (size_t t = 0; t < T; t++)
                    for (size_t r = 0; r < rows; r++) {
                        long long S = 0;
                        for (size_t k = 0; k < n; k++)
                            S += (long long)q.q[r / 16 * G * 64 + k / 4 * 64 + r % 16 * 4 + k % 4] * p[t * 4 * G + k];
                        want[t * rows + r] = ((float)S * q.scale[r]) * xs[t];
                        /* and near the float product */
                        double f = 0, aw = 0, ax = 0;
                        for (size_t k = 0; k < n; k++) {
                            f += (double)w[r * n + k] * x[t * n + k];
                            aw = fmax(aw, fabs(w[r * n + k]));
                            ax = fmax(ax, fabs(x[t * n + k]));
                        }
                        /* each value is off by at most half a step, amax / 254 */
                        double mag = (double)n * aw * ax / 125.0;
                        if (fabs(want[t * rows + r] - f) > mag + 1e-6 && bad++ < 3)
                            fprintf(stderr, "  rows %zu n %zu T %zu: %g against %g (bound %g)\n", rows, n, T,
                                    want[t * rows + r], f, mag);
                    }
                for (int path = 0; path < LMZ_KPATH_COUNT; path++) {
                    if (!lmz_kpath_supported((lmz_kpath)path)) continue;
                    memset(got, 0xFF, T * rows * sizeof *got);
                    /* in two calls, as threads split the blocks */
                    size_t mid = q.blocks / 2;
                    lmz_qmm((lmz_kpath)path, &q, 0, mid, p, xs, T, got, rows);
                    lmz_qmm((lmz_kpath)path, &q, mid, q.blocks, p, xs, T, got, rows);
                    if (memcmp(want, got, T * rows * sizeof *got) != 0) {
                        fprintf(stderr, "  path %s (%s): rows %zu n %zu T %zu differ\n",
                                lmz_kpath_name((lmz_kpath)path), lmz_qmm_name((lmz_kpath)path), rows, n, T);
                        test_failures++;
                    }
                    cases++;
                }
                free(x), free(xs), free(p), free(want), free(got);
            }
            lmz_qmat_free(&q);
            free(w), free(scratch);
        }
    CHECK(bad == 0);
    CHECK(cases >= 7 * 9 * 6);
    for (int path = 0; path < LMZ_KPATH_COUNT; path++)
        if (lmz_kpath_supported((lmz_kpath)path))
            printf("  %s: integer kernel %s\n", lmz_kpath_name((lmz_kpath)path), lmz_qmm_name((lmz_kpath)path));
}

/* the largest sums the format allows do not overflow: n = 2^16 of 127 * 127
 * on the VNNI path's offset form as well */
TEST(qmat_extreme_sums)
{
    size_t n = LMZ_QMAT_MAX_N, rows = 2;
    float *w = malloc(rows * n * sizeof *w), *scratch = malloc(n * sizeof *scratch);
    for (size_t k = 0; k < n; k++) w[k] = 1.0f, w[n + k] = -1.0f;
    g_w = w, g_n = n;
    lmz_qmat q;
    CHECK(lmz_qmat_init(&q, rows, n, row, NULL, scratch) == 0);
    float *x = malloc(2 * n * sizeof *x), xs[2], y[4];
    for (size_t k = 0; k < n; k++) x[k] = 2.0f, x[n + k] = -2.0f;
    int8_t *p = malloc(2 * 4 * q.groups);
    lmz_qact(LMZ_KPATH_SCALAR, x, 2, n, q.groups, p, xs);
    for (int path = 0; path < LMZ_KPATH_COUNT; path++) {
        if (!lmz_kpath_supported((lmz_kpath)path)) continue;
        lmz_qmm((lmz_kpath)path, &q, 0, q.blocks, p, xs, 2, y, rows);
        /* S = +-65536 * 127 * 127, scaled by 1/127 and 2/127: +-131072 up to rounding */
        CHECK(fabsf(y[0] - 131072.0f) < 1.0f && fabsf(y[1] + 131072.0f) < 1.0f);
        CHECK(fabsf(y[2] + 131072.0f) < 1.0f && fabsf(y[3] - 131072.0f) < 1.0f);
    }
    lmz_qmat_free(&q);
    CHECK(lmz_qmat_init(&q, rows, n + 1, row, NULL, scratch) == -1); /* too long */
    free(w), free(scratch), free(x), free(p);
}

/* the weights quantized in parts (lmz_qmat_alloc, then lmz_qmat_rows over
 * ranges as threads take them) on every path: the same bytes, scales and
 * row sums as the scalar lmz_qmat_init, with specials and every tail */
TEST(qmat_rows_in_parts_same_bytes)
{
    unsigned long long seed = 5;
    int compared = 0;
    size_t n_s[] = {1, 3, 4, 17, 64, 70, 577};
    for (size_t ni = 0; ni < sizeof n_s / sizeof *n_s; ni++) {
        size_t n = n_s[ni], rows = 37;
        float *w = malloc(rows * n * sizeof *w), *scratch = malloc(n * sizeof *scratch);
        for (size_t k = 0; k < rows * n; k++) w[k] = rnd(&seed) * (float)(1 + test_rand(&seed) % 50);
        w[n / 2] = NAN;                                           /* row 0 */
        for (size_t k = 0; k < n; k++) w[n + k] = 0;              /* row 1: zeros */
        w[2 * n] = INFINITY;                                      /* row 2: no usable scale */
        g_w = w, g_n = n;
        lmz_qmat ref;
        CHECK(lmz_qmat_init(&ref, rows, n, row, NULL, scratch) == 0);
        void *s5 = malloc((n * 5 + 63) / 64 * 64);
        for (int p = 0; p < LMZ_KPATH_COUNT; p++) {
            if (!lmz_kpath_supported((lmz_kpath)p)) continue;
            lmz_qmat got;
            CHECK(lmz_qmat_alloc(&got, rows, n) == 0);
            CHECK((size_t)got.q % 64 == 0);
            lmz_qmat_rows((lmz_kpath)p, &got, 20, rows, row, NULL, s5); /* out of order, as threads finish */
            lmz_qmat_rows((lmz_kpath)p, &got, 0, 7, row, NULL, s5);
            lmz_qmat_rows((lmz_kpath)p, &got, 7, 20, row, NULL, s5);
            CHECK(memcmp(ref.q, got.q, ref.blocks * ref.groups * 64) == 0);
            CHECK(memcmp(ref.scale, got.scale, ref.blocks * 16 * sizeof *ref.scale) == 0);
            CHECK(memcmp(ref.rowsum, got.rowsum, ref.blocks * 16 * sizeof *ref.rowsum) == 0);
            lmz_qmat_free(&got);
            compared++;
        }
        lmz_qmat_free(&ref);
        free(w), free(scratch), free(s5);
    }
    CHECK(compared >= 7);
}
