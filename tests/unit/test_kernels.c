#define _POSIX_C_SOURCE 200809L
/* Kernels: every path gives the scalar reference's bits, on random shapes
 * with odd sizes and tails, for every weight type. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "tensor/detmath.h"
#include "tensor/kernels.h"
#include "test.h"

static uint16_t f32_to_f16_trunc(float f) /* any half will do for tests */
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t s = (u >> 16) & 0x8000, e = (u >> 23) & 0xFF, m = (u >> 13) & 0x3FF;
    if (e < 113) return (uint16_t)s;
    if (e > 142) return (uint16_t)(s | 0x7BFF);
    return (uint16_t)(s | (e - 112) << 10 | m);
}

static void fill_row(uint8_t *w, uint32_t type, size_t n, unsigned long long *seed)
{
    for (size_t k = 0; k < n; k++) {
        float v = (float)((double)(test_rand(seed) % 20001) / 10000.0 - 1.0);
        if (type == LMZ_GGML_F32) memcpy(w + 4 * k, &v, 4);
        else if (type == LMZ_GGML_F16) {
            uint16_t h = f32_to_f16_trunc(v);
            memcpy(w + 2 * k, &h, 2);
        } else if (type == LMZ_GGML_BF16) {
            uint32_t u;
            memcpy(&u, &v, 4);
            uint16_t h = (uint16_t)(u >> 16);
            memcpy(w + 2 * k, &h, 2);
        }
    }
    if (type == LMZ_GGML_Q8_0)
        for (size_t b = 0; b < n / 32; b++) {
            uint16_t d = f32_to_f16_trunc((float)(test_rand(seed) % 1000 + 1) / 50000.0f);
            memcpy(w + 34 * b, &d, 2);
            for (int i = 0; i < 32; i++) w[34 * b + 2 + i] = (uint8_t)test_rand(seed);
        }
}

TEST(kernels_every_path_same_bits)
{
    unsigned long long seed = 5;
    uint32_t types[] = {LMZ_GGML_F32, LMZ_GGML_F16, LMZ_GGML_BF16, LMZ_GGML_Q8_0};
    size_t sizes[] = {1, 7, 15, 16, 17, 31, 32, 33, 63, 64, 100, 576, 1536, 49, 1000, 4097};
    int compared = 0, differ = 0;
    for (size_t ti = 0; ti < 4; ti++)
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            size_t n = sizes[si];
            if (types[ti] == LMZ_GGML_Q8_0) n = (n + 31) / 32 * 32;
            uint8_t *w = malloc(4 * n + 64);
            float *x = malloc(n * sizeof *x);
            fill_row(w, types[ti], n, &seed);
            for (size_t k = 0; k < n; k++) x[k] = (float)((double)(test_rand(&seed) % 2000001) / 1e6 - 1.0);
            float ref = lmz_dot(LMZ_KPATH_SCALAR, w, types[ti], x, n);
            /* the reference also against float64, loosely */
            for (int p = 1; p < LMZ_KPATH_COUNT; p++) {
                if (!lmz_kpath_supported((lmz_kpath)p)) continue;
                float v = lmz_dot((lmz_kpath)p, w, types[ti], x, n);
                compared++;
                if (memcmp(&v, &ref, 4) != 0) {
                    differ++;
                    printf("  %s type %u n %zu: %.9g vs scalar %.9g\n", lmz_kpath_name((lmz_kpath)p),
                           types[ti], n, (double)v, (double)ref);
                }
            }
            free(w);
            free(x);
        }
    printf("  %d path/shape/type comparisons with the scalar reference\n", compared);
    CHECK_EQ_U64(differ, 0);
}

TEST(kernels_reference_is_accurate)
{
    unsigned long long seed = 9;
    size_t n = 1537;
    float *w = malloc(n * 4), *x = malloc(n * 4);
    double exact = 0;
    for (size_t k = 0; k < n; k++) {
        w[k] = (float)((double)(test_rand(&seed) % 2001) / 1000.0 - 1.0);
        x[k] = (float)((double)(test_rand(&seed) % 2001) / 1000.0 - 1.0);
        exact += (double)w[k] * x[k];
    }
    float v = lmz_dot(LMZ_KPATH_SCALAR, w, LMZ_GGML_F32, x, n);
    CHECK(fabs((double)v - exact) < 1e-4);
    /* f16 conversion is exact, subnormals and specials included */
    CHECK(lmz_f16_to_f32(0x3C00) == 1.0f && lmz_f16_to_f32(0xC000) == -2.0f);
    CHECK(lmz_f16_to_f32(0x0001) == 5.9604644775390625e-08f && isinf(lmz_f16_to_f32(0x7C00)));
    CHECK(lmz_bf16_to_f32(0x3F80) == 1.0f);
    free(w);
    free(x);
}

/* writing half floats and Q8_0 blocks (dsrn quantize): every half value
 * comes back to itself, midpoints go to the even neighbour, and Q8_0 blocks
 * read back within half a step */
TEST(kernels_f16_and_q8_0_writers)
{
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF)) continue; /* NaNs: checked apart */
        CHECK(lmz_f32_to_f16(lmz_f16_to_f32((uint16_t)h)) == h);
    }
    CHECK(isnan(lmz_f16_to_f32(lmz_f32_to_f16(NAN))));
    CHECK(lmz_f32_to_f16(1.0f + 0x1p-11f) == 0x3C00);          /* a tie: to even (down) */
    CHECK(lmz_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3C02);      /* a tie: to even (up) */
    CHECK(lmz_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f) == 0x3C01); /* above the tie */
    CHECK(lmz_f32_to_f16(0x1p-25f) == 0x0000 && lmz_f32_to_f16(0x1.8p-25f) == 0x0001); /* subnormal ties */
    CHECK(lmz_f32_to_f16(65519.0f) == 0x7BFF && lmz_f32_to_f16(65520.0f) == 0x7C00);
    CHECK(lmz_f32_to_f16(-0x1p-30f) == 0x8000);
    float x[64];
    uint8_t q[68];
    unsigned long long seed = 9;
    for (int i = 0; i < 64; i++) x[i] = (float)((double)(test_rand(&seed) % 2001) / 1000.0 - 1.0) * (i < 32 ? 1.0f : 0.01f);
    x[5] = 0;
    lmz_quantize_q8_0(x, 64, q);
    for (int b = 0; b < 2; b++) {
        float d = lmz_f16_to_f32((uint16_t)(q[34 * b] | q[34 * b + 1] << 8)), amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[32 * b + i]));
        CHECK(fabsf(d - amax / 127) <= amax / 127 * 0x1p-10f);
        for (int i = 0; i < 32; i++) CHECK(fabsf(d * (float)(int8_t)q[34 * b + 2 + i] - x[32 * b + i]) <= 0.5f * d * 1.01f);
    }
    CHECK(q[2 + 5] == 0);
}

TEST(kernels_select_honours_env)
{
    char err[128];
    lmz_kpath p;
    setenv("LMZIP_KERNELS", "scalar", 1);
    CHECK(lmz_kernels_select(&p, err, sizeof err) == 0 && p == LMZ_KPATH_SCALAR);
    setenv("LMZIP_KERNELS", "bogus", 1);
    CHECK(lmz_kernels_select(&p, err, sizeof err) == -1 && strstr(err, "unknown"));
    unsetenv("LMZIP_KERNELS");
    CHECK(lmz_kernels_select(&p, err, sizeof err) == 0 && lmz_kpath_supported(p));
    printf("  auto picks %s\n", lmz_kpath_name(p));
}

TEST(kernels_dot4_same_bits_as_dot)
{
    unsigned long long seed = 13;
    size_t sizes[] = {1, 15, 16, 17, 64, 100, 576, 1537};
    int differ = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t n = sizes[si];
        float *w = malloc(n * 4), *x = malloc(4 * n * 4);
        for (size_t k = 0; k < n; k++) w[k] = (float)((double)(test_rand(&seed) % 20001) / 10000.0 - 1.0);
        for (size_t k = 0; k < 4 * n; k++) x[k] = (float)((double)(test_rand(&seed) % 20001) / 10000.0 - 1.0);
        const float *xs[4] = {x, x + n, x + 2 * n, x + 3 * n};
        for (int p = 0; p < LMZ_KPATH_COUNT; p++) {
            if (!lmz_kpath_supported((lmz_kpath)p)) continue;
            float o[4], o16[16];
            lmz_dot4_f32((lmz_kpath)p, w, xs, n, o, 0);
            for (int i = 0; i < 4; i++) {
                float ref = lmz_dot(LMZ_KPATH_SCALAR, w, LMZ_GGML_F32, xs[i], n);
                if (memcmp(&ref, &o[i], 4)) differ++;
            }
            /* a 4 x 4 tile: rows w, x[0], x[3], x[1] (all different, so a
             * transposed result would show), tokens x[0..3] */
            const float *ws[4] = {w, xs[0], xs[3], xs[1]};
            lmz_dot4x4_f32((lmz_kpath)p, ws, xs, n, o16, 4, 0);
            for (int r = 0; r < 4; r++)
                for (int i = 0; i < 4; i++) {
                    float ref = lmz_dot(LMZ_KPATH_SCALAR, ws[r], LMZ_GGML_F32, xs[i], n);
                    if (memcmp(&ref, &o16[4 * i + r], 4)) differ++;
                }
            /* the path's own tile (3 or 4 rows) against 1..4 tokens */
            const float *wt[4] = {xs[2], w, xs[0], xs[3]};
            size_t R = lmz_f32_tile_rows((lmz_kpath)p);
            CHECK(R == 3 || R == 4);
            for (size_t nx = 1; nx <= 4; nx++) {
                float yt[16];
                lmz_dot_tile_f32((lmz_kpath)p, wt, xs, nx, n, yt, 4, 0);
                for (size_t r = 0; r < R; r++)
                    for (size_t i = 0; i < nx; i++) {
                        float ref = lmz_dot(LMZ_KPATH_SCALAR, wt[r], LMZ_GGML_F32, xs[i], n);
                        if (memcmp(&ref, &yt[4 * i + r], 4)) differ++;
                    }
            }
        }
        free(w);
        free(x);
    }
    CHECK_EQ_U64(differ, 0);
}

TEST(kernels_dot_many_same_bits_as_dot)
{
    unsigned long long seed = 29;
    size_t sizes[] = {1, 15, 16, 17, 64, 100, 192, 576};
    size_t counts[] = {1, 3, 15, 16, 17, 40};
    size_t vecs[] = {1, 2, 4, 5, 7, 9};
    int differ = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
        for (size_t ci = 0; ci < sizeof counts / sizeof *counts; ci++)
            for (size_t vi = 0; vi < sizeof vecs / sizeof *vecs; vi++) {
                size_t n = sizes[si], rows = counts[ci], nx = vecs[vi], stride = n + 3, ldy = rows + 2;
                float *w = malloc(rows * stride * 4), *x = malloc(nx * n * 4), *y = malloc(nx * ldy * 4);
                const float **wr = malloc(rows * sizeof *wr), **xr = malloc(nx * sizeof *xr);
                for (size_t r = 0; r < rows; r++) wr[r] = w + (r * 7 % rows) * stride; /* out of order */
                for (size_t t = 0; t < nx; t++) xr[t] = x + (nx - 1 - t) * n;
                for (size_t k = 0; k < rows * stride; k++)
                    w[k] = (float)((double)(test_rand(&seed) % 20001) / 10000.0 - 1.0);
                for (size_t k = 0; k < nx * n; k++)
                    x[k] = (float)((double)(test_rand(&seed) % 20001) / 1000.0 - 10.0);
                for (int p = 0; p < LMZ_KPATH_COUNT; p++) {
                    if (!lmz_kpath_supported((lmz_kpath)p)) continue;
                    lmz_dot_many_f32((lmz_kpath)p, wr, rows, xr, nx, n, y, ldy);
                    for (size_t t = 0; t < nx; t++)
                        for (size_t r = 0; r < rows; r++) {
                            float ref = lmz_dot(LMZ_KPATH_SCALAR, wr[r], LMZ_GGML_F32, xr[t], n);
                            if (memcmp(&ref, &y[t * ldy + r], 4)) differ++;
                        }
                }
                free(wr);
                free(xr);
                free(w);
                free(x);
                free(y);
            }
    CHECK_EQ_U64(differ, 0);
}

TEST(kernels_find_ge_same_on_every_path)
{
    unsigned long long seed = 31;
    size_t sizes[] = {0, 1, 7, 8, 15, 16, 17, 100, 1000};
    const float t = 1e-3f;
    int differ = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t n = sizes[si];
        float *x = malloc((n + 1) * sizeof *x);
        uint32_t *ref = malloc((n + 1) * sizeof *ref), *got = malloc((n + 1) * sizeof *got);
        for (size_t i = 0; i < n; i++) {
            unsigned r = (unsigned)(test_rand(&seed) % 10);
            x[i] = r == 0 ? t : r == 1 ? NAN : r == 2 ? -0.0f : r == 3 ? INFINITY : r == 4 ? nextafterf(t, 0.0f)
                 : (float)(test_rand(&seed) % 2000) / 1e5f;
        }
        size_t nr = 0;
        for (size_t i = 0; i < n; i++)
            if (x[i] >= t) ref[nr++] = (uint32_t)i;
        for (int p = 0; p < LMZ_KPATH_COUNT; p++) {
            if (!lmz_kpath_supported((lmz_kpath)p)) continue;
            size_t ng = lmz_find_ge((lmz_kpath)p, x, n, t, got);
            if (ng != nr || (nr && memcmp(ref, got, nr * sizeof *ref))) differ++;
        }
        free(x);
        free(ref);
        free(got);
    }
    CHECK_EQ_U64(differ, 0);
}

TEST(kernels_exp_array_same_bits)
{
    size_t n = 200003;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    for (size_t i = 0; i < n; i++) x[i] = -100.0f + (float)i * (200.0f / (float)n);
    x[0] = NAN;
    x[1] = INFINITY;
    x[2] = -INFINITY;
    x[3] = 88.7f;
    x[4] = 88.5f;
    x[5] = -87.3f;
    int differ = 0;
    for (int p = 0; p < LMZ_KPATH_COUNT; p++) {
        if (!lmz_kpath_supported((lmz_kpath)p)) continue;
        lmz_exp_array((lmz_kpath)p, x, y, n);
        for (size_t i = 0; i < n; i++) {
            float r = lmz_expf(x[i]);
            if (memcmp(&r, &y[i], 4) && !(r != r && y[i] != y[i])) differ++;
        }
    }
    CHECK_EQ_U64(differ, 0);
    free(x);
    free(y);
}

/* Products that underflow to -0 leave lanes at -0; a tail must not add a +0
 * term to the lanes past the end (that would give +0), on any path. */
TEST(kernels_tails_keep_negative_zero)
{
    static const size_t sizes[] = {1, 5, 17, 33, 47};
    int differ = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t n = sizes[si];
        float w[64], x[4 * 64];
        for (size_t k = 0; k < n; k++) w[k] = -1e-30f;
        for (size_t k = 0; k < 4 * n; k++) x[k] = 1e-30f;
        const float *xs[4] = {x, x + n, x + 2 * n, x + 3 * n}, *ws[4] = {w, w, w, w};
        float ref = lmz_dot(LMZ_KPATH_SCALAR, w, LMZ_GGML_F32, x, n);
        CHECK(ref == 0.0f && (n < 16 || signbit(ref))); /* -0 once every lane has a term */
        for (int p = 0; p < LMZ_KPATH_COUNT; p++) {
            if (!lmz_kpath_supported((lmz_kpath)p)) continue;
            float d = lmz_dot((lmz_kpath)p, w, LMZ_GGML_F32, x, n), o4[4], o16[16];
            differ += memcmp(&d, &ref, 4) != 0;
            lmz_dot4_f32((lmz_kpath)p, w, xs, n, o4, 0);
            for (int i = 0; i < 4; i++) differ += memcmp(&o4[i], &ref, 4) != 0;
            lmz_dot4x4_f32((lmz_kpath)p, ws, xs, n, o16, 4, 0);
            for (int i = 0; i < 16; i++) differ += memcmp(&o16[i], &ref, 4) != 0;
            for (size_t nx = 1; nx <= 4; nx++) {
                float yt[16];
                size_t R = lmz_f32_tile_rows((lmz_kpath)p);
                lmz_dot_tile_f32((lmz_kpath)p, ws, xs, nx, n, yt, 4, 0);
                for (size_t t = 0; t < nx; t++)
                    for (size_t r = 0; r < R; r++) differ += memcmp(&yt[4 * t + r], &ref, 4) != 0;
            }
        }
    }
    CHECK_EQ_U64(differ, 0);
}

/* Scores against a transposed block of 16 keys: the bits of lmz_dot on each
 * key, on every path, for several head sizes and query counts. */
TEST(kernels_dot_keys16_same_bits_as_dot)
{
    static const size_t sizes[] = {64, 1, 5, 16, 17, 48, 80, 128};
    unsigned long long seed = 7;
    int differ = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t n = sizes[si], nq = 1 + si % 5, qs = n + 3;
        float *kt = malloc(16 * n * sizeof *kt), *q = malloc(nq * qs * sizeof *q), *key = malloc(n * sizeof *key);
        float out[5 * 20];
        for (size_t i = 0; i < 16 * n; i++) kt[i] = (float)((double)(test_rand(&seed) % 20001) / 10000.0 - 1.0);
        for (size_t i = 0; i < nq * qs; i++) q[i] = (float)((double)(test_rand(&seed) % 20001) / 10000.0 - 1.0);
        for (int p = 0; p < LMZ_KPATH_COUNT; p++) {
            if (!lmz_kpath_supported((lmz_kpath)p)) continue;
            lmz_dot_keys16((lmz_kpath)p, kt, q, qs, nq, n, out, 20);
            for (size_t h = 0; h < nq; h++)
                for (size_t j = 0; j < 16; j++) {
                    for (size_t d = 0; d < n; d++) key[d] = kt[16 * d + j];
                    float ref = lmz_dot(LMZ_KPATH_SCALAR, key, LMZ_GGML_F32, q + h * qs, n);
                    differ += memcmp(&ref, &out[h * 20 + j], 4) != 0;
                }
        }
        free(kt);
        free(q);
        free(key);
    }
    CHECK_EQ_U64(differ, 0);
}

/* Weighted sums of shared rows for several heads: the bits of one axpy per
 * row in order, on every path. */
TEST(kernels_weighted_sum_same_bits)
{
    static const size_t sizes[] = {64, 48, 96, 100, 7};
    unsigned long long seed = 11;
    int differ = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
        for (size_t nq = 1; nq <= 9; nq += 2) {
            size_t n = sizes[si], count = 37 + 20 * si, ws = count + 1, os = n + 5;
            float *rows = malloc(count * n * sizeof *rows), *w = malloc(nq * ws * sizeof *w);
            float *o = malloc(nq * os * sizeof *o), *ref = malloc(n * sizeof *ref);
            const float **v = malloc(count * sizeof *v);
            for (size_t i = 0; i < count * n; i++) rows[i] = (float)((double)(test_rand(&seed) % 20001) / 10000.0 - 1.0);
            for (size_t i = 0; i < nq * ws; i++) w[i] = (float)((double)(test_rand(&seed) % 10001) / 10000.0);
            for (size_t j = 0; j < count; j++) v[j] = rows + ((j * 7) % count) * n; /* any order */
            for (int p = 0; p < LMZ_KPATH_COUNT; p++) {
                if (!lmz_kpath_supported((lmz_kpath)p)) continue;
                lmz_weighted_sum((lmz_kpath)p, w, ws, nq, v, count, n, o, os);
                for (size_t h = 0; h < nq; h++) {
                    for (size_t i = 0; i < n; i++) ref[i] = 0.0f;
                    for (size_t j = 0; j < count; j++)
                        for (size_t i = 0; i < n; i++) ref[i] = fmaf(w[h * ws + j], v[j][i], ref[i]);
                    differ += memcmp(ref, o + h * os, n * sizeof *ref) != 0;
                }
            }
            free(rows);
            free(w);
            free(o);
            free(ref);
            free(v);
        }
    CHECK_EQ_U64(differ, 0);
}

/* Weighted sums of heads side by side in each row (DSRN's attention): each
 * head's bits those of one fmaf per row in order, on every path, for head
 * sizes the vector paths take (16, 48, 64, 8, 24) and ones they leave. */
TEST(kernels_weighted_sum_heads_same_bits)
{
    static const size_t sizes[] = {48, 16, 64, 8, 24, 7};
    unsigned long long seed = 12;
    int differ = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
        for (size_t nh = 1; nh <= 8; nh++) {
            size_t n = sizes[si], D = nh * n, count = 1 + 43 * si % 130, ws = count + 3;
            float *rows = malloc(count * D * sizeof *rows), *w = malloc(nh * ws * sizeof *w);
            float *o = malloc(D * sizeof *o), *ref = malloc(n * sizeof *ref);
            const float **v = malloc(count * sizeof *v);
            for (size_t i = 0; i < count * D; i++) rows[i] = (float)((double)(test_rand(&seed) % 20001) / 10000.0 - 1.0);
            for (size_t i = 0; i < nh * ws; i++) w[i] = (float)((double)(test_rand(&seed) % 10001) / 10000.0);
            for (size_t j = 0; j < count; j++) v[j] = rows + ((j * 5) % count) * D;
            for (int p = 0; p < LMZ_KPATH_COUNT; p++) {
                if (!lmz_kpath_supported((lmz_kpath)p)) continue;
                lmz_weighted_sum_heads((lmz_kpath)p, w, ws, nh, v, count, n, o);
                for (size_t h = 0; h < nh; h++) {
                    for (size_t i = 0; i < n; i++) ref[i] = 0.0f;
                    for (size_t j = 0; j < count; j++)
                        for (size_t i = 0; i < n; i++) ref[i] = fmaf(w[h * ws + j], v[j][h * n + i], ref[i]);
                    differ += memcmp(ref, o + h * n, n * sizeof *ref) != 0;
                }
            }
            free(rows);
            free(w);
            free(o);
            free(ref);
            free(v);
        }
    CHECK_EQ_U64(differ, 0);
}

/* Exponentials shifted by a maximum and their sum in eight binary64 lanes:
 * every path the bits of the scalar loop, tails included. */
TEST(kernels_exp_shift_sum_same_bits)
{
    unsigned long long seed = 13;
    int differ = 0;
    for (size_t n = 1; n <= 70; n += 3) {
        float *x = malloc(n * sizeof *x), *x0 = malloc(n * sizeof *x0), *xr = malloc(n * sizeof *xr);
        float *y = malloc(n * sizeof *y), *yr = malloc(n * sizeof *yr);
        for (size_t i = 0; i < n; i++) x0[i] = (float)((double)(test_rand(&seed) % 40001) / 1000.0 - 30.0);
        float mx = x0[0];
        for (size_t i = 1; i < n; i++) mx = x0[i] > mx ? x0[i] : mx;
        double a[8] = {0};
        for (size_t i = 0; i < n; i++) {
            xr[i] = x0[i] - mx;
            yr[i] = lmz_expf(xr[i]);
            a[i % 8] += (double)yr[i];
        }
        double ref = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
        for (int p = 0; p < LMZ_KPATH_COUNT; p++) {
            if (!lmz_kpath_supported((lmz_kpath)p)) continue;
            memcpy(x, x0, n * sizeof *x);
            double s = lmz_exp_shift_sum((lmz_kpath)p, x, mx, y, n);
            differ += memcmp(&s, &ref, sizeof s) != 0 || memcmp(x, xr, n * sizeof *x) != 0 ||
                      memcmp(y, yr, n * sizeof *y) != 0;
        }
        free(x);
        free(x0);
        free(xr);
        free(y);
        free(yr);
    }
    CHECK_EQ_U64(differ, 0);
}

/* The portable path's fast sum (double, rounded once) is checked lane by
 * lane for the cases where it would differ from a fused multiply-add: sums
 * on a midpoint between two floats and sums in the subnormal range. Rows
 * built to hit both, every path against a plain fmaf loop in the order of
 * kernels.h. */
static float dot_ref(const float *w, const float *x, size_t n)
{
    float l[16] = {0};
    for (size_t k = 0; k < n; k++) l[k & 15] = fmaf(w[k], x[k], l[k & 15]);
    float a[8], b[4], c[2];
    for (int j = 0; j < 8; j++) a[j] = l[j] + l[j + 8];
    for (int j = 0; j < 4; j++) b[j] = a[j] + a[j + 4];
    for (int j = 0; j < 2; j++) c[j] = b[j] + b[j + 2];
    return c[0] + c[1];
}

TEST(kernels_portable_rounding_cases)
{
    unsigned long long seed = 99;
    size_t n = 64 * 16;
    float *w[4], *x[4];
    for (int i = 0; i < 4; i++) {
        w[i] = malloc(n * sizeof(float));
        x[i] = malloc(n * sizeof(float));
    }
    int bad = 0, runs = 0;
    for (int rep = 0; rep < 50; rep++) {
        for (int i = 0; i < 4; i++)
            for (size_t k = 0; k < n; k++) {
                size_t blk = k / 16, lane = k % 16;
                unsigned kind = (unsigned)((blk + (size_t)i + (size_t)rep) % 4);
                if (blk == 0) { /* lanes start at c = 1 + 2^-23 */
                    w[i][k] = 1.0f + 0x1p-23f;
                    x[i][k] = 1.0f;
                } else if (kind == 0 && (lane & 1)) {
                    /* c + (1 + 2^-23)(2^-24 - 2^-47) = c + 2^-24 - 2^-70: just below the
                     * midpoint c + 2^-24, so the fma keeps c; the double sum rounds onto
                     * the midpoint and then to the even neighbour c + 2^-23 */
                    w[i][k] = 1.0f + 0x1p-23f;
                    x[i][k] = 0x1p-24f - 0x1p-47f;
                } else if (kind == 0) { /* and the same just above: c - 2^-24 + 2^-70 */
                    w[i][k] = -(1.0f + 0x1p-23f);
                    x[i][k] = 0x1p-24f - 0x1p-47f;
                } else if (kind == 1) {
                    /* tiny products, subnormal partial sums: inputs below 2^-66 on odd
                     * repetitions (the checked tile), at 2^-66 and above on even ones
                     * (the fast tile, where such sums are exact in double) */
                    float sc = rep & 1 ? 0x1p-70f : (rep & 2 ? 0x1p-66f : 0x1p-64f);
                    w[i][k] = (float)(int)(test_rand(&seed) % 17 - 8) * sc;
                    x[i][k] = (float)(int)(test_rand(&seed) % 17 - 8) * sc * (1.0f + 0x1p-23f);
                } else if (kind == 2) { /* cancel the lane back to about 1 */
                    w[i][k] = -1.0f;
                    x[i][k] = 0.0f;
                } else {
                    w[i][k] = (float)((double)(test_rand(&seed) % 20001) / 10000.0 - 1.0);
                    x[i][k] = (float)((double)(test_rand(&seed) % 20001) / 10000.0 - 1.0);
                }
            }
        float want[4][4];
        for (int r = 0; r < 4; r++)
            for (int t = 0; t < 4; t++) want[r][t] = dot_ref(w[r], x[t], n);
        for (int p = 0; p < LMZ_KPATH_COUNT; p++) {
            if (!lmz_kpath_supported((lmz_kpath)p)) continue;
            float y[16], yp[16], o[4];
            lmz_dot4x4_f32((lmz_kpath)p, (const float *const *)w, (const float *const *)x, n, y, 4, 0);
            /* with the promise of no tiny input where it holds (even
             * repetitions): the same bits */
            int plain = 1;
            for (int i = 0; i < 4; i++) plain &= !lmz_f32_has_tiny(w[i], n) && !lmz_f32_has_tiny(x[i], n);
            CHECK(plain == !(rep & 1));
            lmz_dot4x4_f32((lmz_kpath)p, (const float *const *)w, (const float *const *)x, n, yp, 4, plain);
            bad += memcmp(y, yp, sizeof y) != 0;
            for (size_t nx = 1; nx <= 4; nx++) { /* the path's own tile */
                float yt[16];
                lmz_dot_tile_f32((lmz_kpath)p, (const float *const *)w, (const float *const *)x, nx, n, yt, 4, plain);
                for (size_t r = 0; r < lmz_f32_tile_rows((lmz_kpath)p); r++)
                    for (size_t t = 0; t < nx; t++) bad += memcmp(&yt[4 * t + r], &want[r][t], 4) != 0;
            }
            for (int r = 0; r < 4; r++) {
                lmz_dot4_f32((lmz_kpath)p, w[r], (const float *const *)x, n, o, 0);
                for (int t = 0; t < 4; t++) {
                    float d = lmz_dot((lmz_kpath)p, w[r], LMZ_GGML_F32, x[t], n);
                    bad += memcmp(&y[t * 4 + r], &want[r][t], 4) != 0;
                    bad += memcmp(&o[t], &want[r][t], 4) != 0;
                    bad += memcmp(&d, &want[r][t], 4) != 0;
                    runs += 3;
                }
            }
        }
    }
    CHECK_EQ_U64(bad, 0);
    CHECK(runs > 0);
    for (int i = 0; i < 4; i++) {
        free(w[i]);
        free(x[i]);
    }
}

/* A sum in float's subnormal range that double rounding gets wrong: the
 * lane holds (2^22 + 1) 2^-149 (an odd multiple of float's smallest step),
 * then adds 2^-150 (1 - 2^-46), just below the midpoint 2^-150. The fma
 * keeps the lane; the double sum loses the 2^-196, lands on the midpoint and
 * rounds to even, one step up. The inputs of the second product are below
 * 2^-66, which sends the portable tile to its checked steps. */
TEST(kernels_portable_subnormal_midpoint)
{
    size_t n = 64;
    float w[4][64], x[4][64];
    for (int i = 0; i < 4; i++)
        for (size_t k = 0; k < n; k++) {
            size_t blk = k / 16;
            w[i][k] = blk == 0 ? 0x1p-63f * (1.0f + 0x1p-22f) : blk == 1 ? 0x1p-75f * (1.0f + 0x1p-23f) : 0.0f;
            x[i][k] = blk == 0 ? 0x1p-64f : blk == 1 ? 0x1p-75f * (1.0f - 0x1p-23f) : 1.0f;
        }
    float lane = fmaf(w[0][16], x[0][16], w[0][0] * x[0][0]);
    float twice = (float)((double)w[0][16] * (double)x[0][16] + (double)(w[0][0] * x[0][0]));
    CHECK(lane != twice); /* the case is real */
    const float *wp[4] = {w[0], w[1], w[2], w[3]}, *xp[4] = {x[0], x[1], x[2], x[3]};
    float want = dot_ref(w[0], x[0], n);
    int bad = 0;
    for (int p = 0; p < LMZ_KPATH_COUNT; p++) {
        if (!lmz_kpath_supported((lmz_kpath)p)) continue;
        float y[16], o[4];
        lmz_dot4x4_f32((lmz_kpath)p, wp, xp, n, y, 4, 0);
        lmz_dot4_f32((lmz_kpath)p, w[0], xp, n, o, 0);
        float d = lmz_dot((lmz_kpath)p, w[0], LMZ_GGML_F32, x[0], n);
        for (int j = 0; j < 16; j++) bad += memcmp(&y[j], &want, 4) != 0;
        for (int j = 0; j < 4; j++) bad += memcmp(&o[j], &want, 4) != 0;
        bad += memcmp(&d, &want, 4) != 0;
    }
    CHECK_EQ_U64(bad, 0);
}
