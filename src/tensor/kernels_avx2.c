/* kernels_avx2.c — the det-f32-v1 dot product with AVX2 + FMA + F16C: the
 * 16 lanes of kernels.h in two 8-float registers (lanes 0-7, 8-15). */
#include "kernels.h"
#include "kernels_wsh.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "detmath.h"
#include "types.h"

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))

/* l[j] + l[j+8], then + [j+4], + [j+2], [0] + [1]: the reference tree */
static T_AVX2 float reduce(__m256 lo, __m256 hi)
{
    __m256 a = _mm256_add_ps(lo, hi);
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    __m128 d = _mm_add_ss(c, _mm_shuffle_ps(c, c, 1));
    return _mm_cvtss_f32(d);
}

/* mask of the first r (0..8) lanes */
static T_AVX2 __m256i first_lanes(size_t r)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), idx);
}

static T_AVX2 __m256 load_w8(const uint8_t *w, uint32_t type, size_t k)
{
    if (type == LMZ_GGML_F32) return _mm256_loadu_ps((const float *)(const void *)(w + 4 * k));
    __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(w + 2 * k));
    if (type == LMZ_GGML_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); /* BF16 */
}

/* a * b + c in the first r lanes; the others keep c as it is, like the
 * reference, which has no term there (an added +0 would turn -0 into +0) */
static T_AVX2 __m256 fma_first(__m256 a, __m256 b, __m256 c, size_t r)
{
    return _mm256_blendv_ps(c, _mm256_fmadd_ps(a, b, c), _mm256_castsi256_ps(first_lanes(r)));
}

/* tail: elements k..k+r-1 (r < 8) with the rest zero */
static T_AVX2 __m256 load_w8_tail(const uint8_t *w, uint32_t type, size_t k, size_t r)
{
    if (type == LMZ_GGML_F32) return _mm256_maskload_ps((const float *)(const void *)(w + 4 * k), first_lanes(r));
    uint16_t tmp[8] = {0};
    memcpy(tmp, w + 2 * k, 2 * r);
    __m128i h = _mm_loadu_si128((const __m128i *)(const void *)tmp);
    if (type == LMZ_GGML_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* the block scale of a Q8_0 block, broadcast */
static T_AVX2 __m256 q8_scale(const uint8_t *blk)
{
    uint16_t dh;
    memcpy(&dh, blk, 2);
    return _mm256_set1_ps(_mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(dh))));
}

/* values 8g..8g+7 of a Q8_0 block as floats: d * q, exact */
static T_AVX2 __m256 q8_values8(const uint8_t *blk, __m256 d, int g)
{
    __m128i q8 = _mm_loadl_epi64((const __m128i *)(const void *)(blk + 2 + 8 * g));
    return _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8)));
}

float T_AVX2 lmz_dot_avx2(const void *wrow, uint32_t type, const float *x, size_t n)
{
    const uint8_t *w = wrow;
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    if (type == LMZ_GGML_Q8_0) {
        for (size_t b = 0; b < n / 32; b++) {
            const uint8_t *blk = w + 34 * b;
            __m256 d = q8_scale(blk);
            const float *xb = x + 32 * b;
            for (int g = 0; g < 4; g++) {
                __m256 v = q8_values8(blk, d, g);
                if (g & 1) hi = _mm256_fmadd_ps(v, _mm256_loadu_ps(xb + 8 * g), hi);
                else lo = _mm256_fmadd_ps(v, _mm256_loadu_ps(xb + 8 * g), lo);
            }
        }
        return reduce(lo, hi);
    }
    if (type != LMZ_GGML_F32 && type != LMZ_GGML_F16 && type != LMZ_GGML_BF16) return NAN;
    size_t k = 0;
    for (; k + 16 <= n; k += 16) {
        lo = _mm256_fmadd_ps(load_w8(w, type, k), _mm256_loadu_ps(x + k), lo);
        hi = _mm256_fmadd_ps(load_w8(w, type, k + 8), _mm256_loadu_ps(x + k + 8), hi);
    }
    size_t r = n - k; /* 0..15 left, zero-filled */
    if (r) {
        size_t r0 = r < 8 ? r : 8, r1 = r - r0;
        __m256 w0 = r0 == 8 ? load_w8(w, type, k) : load_w8_tail(w, type, k, r0);
        __m256 x0 = _mm256_maskload_ps(x + k, first_lanes(r0));
        lo = fma_first(w0, x0, lo, r0);
        if (r1) {
            __m256 w1 = load_w8_tail(w, type, k + 8, r1);
            __m256 x1 = _mm256_maskload_ps(x + k + 8, first_lanes(r1));
            hi = fma_first(w1, x1, hi, r1);
        }
    }
    return reduce(lo, hi);
}

/* rows w[0..R) against tokens x[0..NT) (R, NT constants after inlining), each
 * pair's 16 lanes (lane j takes the elements k = j mod 16, in order, then the
 * reference tree): y[t * ldy + r]. At most 2 rows and 4 tokens. */
static inline T_AVX2 __attribute__((always_inline)) void tile_f32(const float *const *w, const float *const *x,
                                                                   size_t n, const int R, const int NT, float *y,
                                                                   size_t ldy)
{
    __m256 lo[2][4], hi[2][4];
    for (int i = 0; i < R; i++)
        for (int t = 0; t < NT; t++) lo[i][t] = hi[i][t] = _mm256_setzero_ps();
    size_t k = 0;
    for (; k + 16 <= n; k += 16) {
        __m256 w0[2], w1[2];
        for (int i = 0; i < R; i++) {
            w0[i] = _mm256_loadu_ps(w[i] + k);
            w1[i] = _mm256_loadu_ps(w[i] + k + 8);
        }
        for (int t = 0; t < NT; t++) {
            __m256 x0 = _mm256_loadu_ps(x[t] + k), x1 = _mm256_loadu_ps(x[t] + k + 8);
            for (int i = 0; i < R; i++) {
                lo[i][t] = _mm256_fmadd_ps(w0[i], x0, lo[i][t]);
                hi[i][t] = _mm256_fmadd_ps(w1[i], x1, hi[i][t]);
            }
        }
    }
    size_t r = n - k;
    if (r) {
        size_t r0 = r < 8 ? r : 8, r1 = r - r0;
        __m256i m0 = first_lanes(r0), m1 = first_lanes(r1);
        for (int i = 0; i < R; i++) {
            __m256 w0 = _mm256_maskload_ps(w[i] + k, m0), w1 = _mm256_maskload_ps(w[i] + k + 8, m1);
            for (int t = 0; t < NT; t++) {
                lo[i][t] = fma_first(w0, _mm256_maskload_ps(x[t] + k, m0), lo[i][t], r0);
                if (r1) hi[i][t] = fma_first(w1, _mm256_maskload_ps(x[t] + k + 8, m1), hi[i][t], r1);
            }
        }
    }
    for (int i = 0; i < R; i++)
        for (int t = 0; t < NT; t++) y[(size_t)t * ldy + (size_t)i] = reduce(lo[i][t], hi[i][t]);
}

/* one row against four tokens */
void T_AVX2 lmz_dot4_avx2(const float *w, const float *const x[4], size_t n, float out[4])
{
    tile_f32(&w, x, n, 1, 4, out, 1);
}

/* 4 rows x 4 tokens as four tiles of 2 x 2: each weight and token load
 * serves two products (lmz_dot4_avx2's tile of 1 x 4 loads ten registers
 * for eight) */
void T_AVX2 lmz_dot4x4_avx2(const float *const w[4], const float *const x[4], size_t n, float *y, size_t ldy)
{
    for (int i = 0; i < 4; i += 2)
        for (int t = 0; t < 4; t += 2) tile_f32(w + i, x + t, n, 2, 2, y + (size_t)t * ldy + (size_t)i, ldy);
}

/* One pass of lmz_dot3_avx2's tile over half the lanes (k0 = 0: lanes 0-7 of
 * the reference's 16, k0 = 8: lanes 8-15) of elements [0, k16), k16 a
 * multiple of 16: out[3 t + i] for row i, token t < NT (a constant after
 * inlining). */
static inline T_AVX2 __attribute__((always_inline)) void pass3(const float *const *w, const float *const *x,
                                                                size_t k0, size_t k16, const int NT, __m256 *out)
{
    __m256 acc[12];
#pragma GCC unroll 12
    for (int i = 0; i < 3 * NT; i++) acc[i] = _mm256_setzero_ps();
    for (size_t k = k0; k < k16; k += 16) {
        __m256 w0 = _mm256_loadu_ps(w[0] + k), w1 = _mm256_loadu_ps(w[1] + k), w2 = _mm256_loadu_ps(w[2] + k);
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            __m256 xv = _mm256_loadu_ps(x[t] + k);
            acc[3 * t] = _mm256_fmadd_ps(w0, xv, acc[3 * t]);
            acc[3 * t + 1] = _mm256_fmadd_ps(w1, xv, acc[3 * t + 1]);
            acc[3 * t + 2] = _mm256_fmadd_ps(w2, xv, acc[3 * t + 2]);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < 3 * NT; i++) out[i] = acc[i];
}

/* 3 rows x NT tokens, n a multiple of 16, in two passes over the rows:
 * lanes 0-7 first, then lanes 8-15. Each lane still takes its elements in
 * order and the reference tree adds the two halves, so the bits are
 * tile_f32's. One register a pair and a pass: the 12 sums of 3 x 4 beside
 * three weight registers and a token's, 7 loads for 12 multiply-adds, where
 * a 2 x 2 tile, two registers a pair, has 8 loads for 8. */
static inline T_AVX2 __attribute__((always_inline)) void tile3_half(const float *const *w, const float *const *x,
                                                                     size_t n, const int NT, float *y, size_t ldy)
{
    __m256 lo[12], hi[12];
    pass3(w, x, 0, n, NT, lo);
    pass3(w, x, 8, n, NT, hi);
    for (int t = 0; t < NT; t++)
        for (int i = 0; i < 3; i++) y[(size_t)t * ldy + (size_t)i] = reduce(lo[3 * t + i], hi[3 * t + i]);
}

void T_AVX2 lmz_dot3_avx2(const float *const w[3], const float *const *x, size_t nx, size_t n, float *y, size_t ldy)
{
    if (n % 16) { /* a tail: the 2 x 2 tiles, the last row and token repeated */
        const float *w4[4] = {w[0], w[1], w[2], w[2]}, *x4[4];
        float o[16];
        for (size_t t = 0; t < 4; t++) x4[t] = x[t < nx ? t : nx - 1];
        lmz_dot4x4_avx2(w4, x4, n, o, 4);
        for (size_t t = 0; t < nx; t++)
            for (size_t i = 0; i < 3; i++) y[t * ldy + i] = o[4 * t + i];
        return;
    }
    switch (nx) {
    case 1: tile3_half(w, x, n, 1, y, ldy); break;
    case 2: tile3_half(w, x, n, 2, y, ldy); break;
    case 3: tile3_half(w, x, n, 3, y, ldy); break;
    default: tile3_half(w, x, n, 4, y, ldy); break;
    }
}

void T_AVX2 lmz_axpy_avx2(float a, const float *x, float *y, size_t n)
{
    __m256 av = _mm256_set1_ps(a);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) {
        __m128 r = _mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(x[i]), _mm_set_ss(y[i]));
        y[i] = _mm_cvtss_f32(r);
    }
}

/* exact conversions, 8 at a time; @return 0 for a type left to the caller */
int T_AVX2 lmz_row_to_f32_avx2(const void *wrow, uint32_t type, size_t n, float *out)
{
    const uint8_t *w = wrow;
    if (type == LMZ_GGML_Q8_0) {
        for (size_t b = 0; b < n / 32; b++) {
            const uint8_t *blk = w + 34 * b;
            __m256 d = q8_scale(blk);
            for (int g = 0; g < 4; g++) _mm256_storeu_ps(out + 32 * b + 8 * g, q8_values8(blk, d, g));
        }
        return 1;
    }
    if ((type == LMZ_GGML_F16 || type == LMZ_GGML_BF16) && n % 8 == 0) {
        for (size_t k = 0; k < n; k += 8) _mm256_storeu_ps(out + k, load_w8(w, type, k));
        return 1;
    }
    return 0;
}

WSH_KERNEL(lmz_weighted_sum_heads_avx2, T_AVX2, __m256, 8, _mm256_set1_ps, _mm256_loadu_ps, _mm256_fmadd_ps, _mm256_storeu_ps,
           _mm256_setzero_ps)

/* one head of 64 at a time in eight registers; @return 0 for other sizes */
int T_AVX2 lmz_weighted_sum_avx2(const float *w, size_t ws, size_t nq, const float *const *v, size_t count,
                                 size_t n, float *o, size_t os)
{
    if (n != 64) return 0;
    for (size_t h = 0; h < nq; h++) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (size_t j = 0; j < count; j++) {
            __m256 p = _mm256_set1_ps(w[h * ws + j]);
            const float *r = v[j];
            a0 = _mm256_fmadd_ps(p, _mm256_loadu_ps(r), a0);
            a1 = _mm256_fmadd_ps(p, _mm256_loadu_ps(r + 8), a1);
            a2 = _mm256_fmadd_ps(p, _mm256_loadu_ps(r + 16), a2);
            a3 = _mm256_fmadd_ps(p, _mm256_loadu_ps(r + 24), a3);
            a4 = _mm256_fmadd_ps(p, _mm256_loadu_ps(r + 32), a4);
            a5 = _mm256_fmadd_ps(p, _mm256_loadu_ps(r + 40), a5);
            a6 = _mm256_fmadd_ps(p, _mm256_loadu_ps(r + 48), a6);
            a7 = _mm256_fmadd_ps(p, _mm256_loadu_ps(r + 56), a7);
        }
        float *oh = o + h * os;
        _mm256_storeu_ps(oh, a0);
        _mm256_storeu_ps(oh + 8, a1);
        _mm256_storeu_ps(oh + 16, a2);
        _mm256_storeu_ps(oh + 24, a3);
        _mm256_storeu_ps(oh + 32, a4);
        _mm256_storeu_ps(oh + 40, a5);
        _mm256_storeu_ps(oh + 48, a6);
        _mm256_storeu_ps(oh + 56, a7);
    }
    return 1;
}

/* lane l of the reference for the block's 16 keys, keys 0-7 in *lo and 8-15
 * in *hi (one key per lane of a register): each query element broadcast once
 * for both */
static inline T_AVX2 __attribute__((always_inline)) void keys_lane16(const float *kt, const float *q, size_t n,
                                                                      size_t l, __m256 *lo, __m256 *hi)
{
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
    for (size_t k = l; k < n; k += 16) {
        __m256 qk = _mm256_set1_ps(q[k]);
        a = _mm256_fmadd_ps(_mm256_loadu_ps(kt + 16 * k), qk, a);
        b = _mm256_fmadd_ps(_mm256_loadu_ps(kt + 16 * k + 8), qk, b);
    }
    *lo = a;
    *hi = b;
}

/* the tree's first level for both halves: lanes j + j+8 */
static inline T_AVX2 __attribute__((always_inline)) void keys_pair(const float *kt, const float *q, size_t n,
                                                                    size_t j, __m256 *lo, __m256 *hi)
{
    __m256 a0, a1, b0, b1;
    keys_lane16(kt, q, n, j, &a0, &a1);
    keys_lane16(kt, q, n, j + 8, &b0, &b1);
    *lo = _mm256_add_ps(a0, b0);
    *hi = _mm256_add_ps(a1, b1);
}

/* as lmz_dot_keys16_avx512, keys 0-7 and 8-15 side by side; the tree's
 * levels (j + j+8, then + j+4, + j+2, 0 + 1) taken in the order that keeps
 * few partial sums alive */
void T_AVX2 lmz_dot_keys16_avx2(const float *kt, const float *q, size_t qs, size_t nq, size_t n, float *out,
                                size_t ldo)
{
    for (size_t h = 0; h < nq; h++) {
        const float *qh = q + h * qs;
        __m256 s0[2], s4[2], s2[2], s6[2], u0[2], u1[2];
        keys_pair(kt, qh, n, 0, &s0[0], &s0[1]);
        keys_pair(kt, qh, n, 4, &s4[0], &s4[1]);
        keys_pair(kt, qh, n, 2, &s2[0], &s2[1]);
        keys_pair(kt, qh, n, 6, &s6[0], &s6[1]);
        for (int i = 0; i < 2; i++) u0[i] = _mm256_add_ps(_mm256_add_ps(s0[i], s4[i]), _mm256_add_ps(s2[i], s6[i]));
        keys_pair(kt, qh, n, 1, &s0[0], &s0[1]);
        keys_pair(kt, qh, n, 5, &s4[0], &s4[1]);
        keys_pair(kt, qh, n, 3, &s2[0], &s2[1]);
        keys_pair(kt, qh, n, 7, &s6[0], &s6[1]);
        for (int i = 0; i < 2; i++) u1[i] = _mm256_add_ps(_mm256_add_ps(s0[i], s4[i]), _mm256_add_ps(s2[i], s6[i]));
        _mm256_storeu_ps(out + h * ldo, _mm256_add_ps(u0[0], u1[0]));
        _mm256_storeu_ps(out + h * ldo + 8, _mm256_add_ps(u0[1], u1[1]));
    }
}

size_t T_AVX2 lmz_find_ge_avx2(const float *x, size_t n, float t, uint32_t *idx)
{
    const __m256 tv = _mm256_set1_ps(t);
    size_t k = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        unsigned m = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), tv, _CMP_GE_OQ));
        for (; m; m &= m - 1) idx[k++] = (uint32_t)(i + (size_t)__builtin_ctz(m));
    }
    for (; i < n; i++)
        if (x[i] >= t) idx[k++] = (uint32_t)i;
    return k;
}

/* lmz_expf (detmath.c) eight lanes at a time: the same IEEE operations in the
 * same order (fused multiply-adds where it has fmaf), so the same bits; the
 * special cases are blended in. */
static inline T_AVX2 __m256 exp8(__m256 v)
{
    const __m256 log2e = _mm256_set1_ps(1.44269502925872802734375f), magic = _mm256_set1_ps(12582912.0f);
    const __m256 hi = _mm256_set1_ps(0.693145751953125f), lo = _mm256_set1_ps(1.428606765330187e-06f);
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 big = _mm256_set1_ps(88.72283935546875f), small = _mm256_set1_ps(-87.33654022216797f);
    __m256 k = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(v, log2e), magic), magic);
    __m256 r = _mm256_fnmadd_ps(k, hi, v);
    r = _mm256_fnmadd_ps(k, lo, r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(1.0f / 5040.0f), r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, one);
    p = _mm256_fmadd_ps(p, r, one);
    __m256i ki = _mm256_cvttps_epi32(k);
    __m256 over = _mm256_castsi256_ps(_mm256_cmpgt_epi32(ki, _mm256_set1_epi32(127)));
    __m256i e = _mm256_min_epi32(_mm256_max_epi32(ki, _mm256_set1_epi32(-127)), _mm256_set1_epi32(127));
    __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23));
    p = _mm256_blendv_ps(p, _mm256_mul_ps(p, _mm256_set1_ps(2.0f)), over); /* k = 128: (p * 2) * 2^127 */
    __m256 res = _mm256_mul_ps(p, scale);
    res = _mm256_blendv_ps(res, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(v, big, _CMP_GT_OQ));
    res = _mm256_blendv_ps(res, _mm256_setzero_ps(), _mm256_cmp_ps(v, small, _CMP_LT_OQ));
    res = _mm256_blendv_ps(res, v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    return res;
}

void T_AVX2 lmz_exp_array_avx2(const float *x, float *y, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] = lmz_expf(x[i]);
}

double T_AVX2 lmz_exp_shift_sum_avx2(float *x, float mx, float *y, size_t n)
{
    /* lane j of the binary64 sums takes y[8i + j] in index order, as the
     * scalar loop's a[i % 8] */
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    const __m256 vm = _mm256_set1_ps(mx);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
        _mm256_storeu_ps(x + i, v);
        __m256 e = exp8(v);
        _mm256_storeu_ps(y + i, e);
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double a[8];
    _mm256_storeu_pd(a, a0);
    _mm256_storeu_pd(a + 4, a1);
    for (; i < n; i++) {
        x[i] -= mx;
        y[i] = lmz_expf(x[i]);
        a[i % 8] += (double)y[i];
    }
    return lmz_lanes8_total(a);
}

#endif
