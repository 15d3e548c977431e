/* kernels_avx512.c — the det-f32-v1 dot product with AVX-512: the 16 lanes
 * of kernels.h in one register; tails through masked loads. */
#include "kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "model/gguf.h"

#define T_512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

static T_512 float reduce(__m512 l)
{
    __m256 h = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(l), 1));
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(l), h);
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    __m128 d = _mm_add_ss(c, _mm_shuffle_ps(c, c, 1));
    return _mm_cvtss_f32(d);
}

static T_512 __m512 load_w16(const uint8_t *w, uint32_t type, size_t k, __mmask16 m)
{
    if (type == LMZ_GGML_F32) return _mm512_maskz_loadu_ps(m, w + 4 * k);
    __m256i h = _mm256_maskz_loadu_epi16(m, w + 2 * k);
    if (type == LMZ_GGML_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

float T_512 lmz_dot_avx512(const void *wrow, uint32_t type, const float *x, size_t n)
{
    const uint8_t *w = wrow;
    __m512 l = _mm512_setzero_ps();
    if (type == LMZ_GGML_Q8_0) {
        for (size_t b = 0; b < n / 32; b++) {
            const uint8_t *blk = w + 34 * b;
            uint16_t dh;
            memcpy(&dh, blk, 2);
            __m512 d = _mm512_set1_ps(_mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(dh))));
            for (int g = 0; g < 2; g++) {
                __m128i q8 = _mm_loadu_si128((const __m128i *)(const void *)(blk + 2 + 16 * g));
                __m512 v = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q8)));
                l = _mm512_fmadd_ps(v, _mm512_loadu_ps(x + 32 * b + 16 * g), l);
            }
        }
        return reduce(l);
    }
    if (type != LMZ_GGML_F32 && type != LMZ_GGML_F16 && type != LMZ_GGML_BF16) return NAN;
    size_t k = 0;
    for (; k + 16 <= n; k += 16) l = _mm512_fmadd_ps(load_w16(w, type, k, 0xFFFF), _mm512_loadu_ps(x + k), l);
    if (k < n) {
        __mmask16 m = (__mmask16)((1u << (n - k)) - 1);
        l = _mm512_fmadd_ps(load_w16(w, type, k, m), _mm512_maskz_loadu_ps(m, x + k), l);
    }
    return reduce(l);
}

void T_512 lmz_dot4_avx512(const float *w, const float *const x[4], size_t n, float out[4])
{
    __m512 l0 = _mm512_setzero_ps(), l1 = l0, l2 = l0, l3 = l0;
    size_t k = 0;
    for (; k + 16 <= n; k += 16) {
        __m512 wv = _mm512_loadu_ps(w + k);
        l0 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x[0] + k), l0);
        l1 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x[1] + k), l1);
        l2 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x[2] + k), l2);
        l3 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x[3] + k), l3);
    }
    if (k < n) {
        __mmask16 m = (__mmask16)((1u << (n - k)) - 1);
        __m512 wv = _mm512_maskz_loadu_ps(m, w + k);
        l0 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x[0] + k), l0);
        l1 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x[1] + k), l1);
        l2 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x[2] + k), l2);
        l3 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x[3] + k), l3);
    }
    out[0] = reduce(l0);
    out[1] = reduce(l1);
    out[2] = reduce(l2);
    out[3] = reduce(l3);
}

/* lmz_expf (detmath.c) sixteen lanes at a time: the same IEEE operations in
 * the same order, so the same bits; the special cases are blended in. */
void T_512 lmz_exp_array_avx512(const float *x, float *y, size_t n)
{
    const __m512 log2e = _mm512_set1_ps(1.44269502925872802734375f), magic = _mm512_set1_ps(12582912.0f);
    const __m512 hi = _mm512_set1_ps(0.693145751953125f), lo = _mm512_set1_ps(1.428606765330187e-06f);
    const __m512 c7 = _mm512_set1_ps(1.0f / 5040.0f), c6 = _mm512_set1_ps(1.0f / 720.0f);
    const __m512 c5 = _mm512_set1_ps(1.0f / 120.0f), c4 = _mm512_set1_ps(1.0f / 24.0f);
    const __m512 c3 = _mm512_set1_ps(1.0f / 6.0f), c2 = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
    const __m512 big = _mm512_set1_ps(88.72283935546875f), small = _mm512_set1_ps(-87.33654022216797f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m512 k = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(v, log2e), magic), magic);
        __m512 r = _mm512_fnmadd_ps(k, hi, v);
        r = _mm512_fnmadd_ps(k, lo, r);
        __m512 p = _mm512_fmadd_ps(c7, r, c6);
        p = _mm512_fmadd_ps(p, r, c5);
        p = _mm512_fmadd_ps(p, r, c4);
        p = _mm512_fmadd_ps(p, r, c3);
        p = _mm512_fmadd_ps(p, r, c2);
        p = _mm512_fmadd_ps(p, r, one);
        p = _mm512_fmadd_ps(p, r, one);
        __m512i ki = _mm512_cvttps_epi32(k);
        __mmask16 over = _mm512_cmpgt_epi32_mask(ki, _mm512_set1_epi32(127));
        __m512i e = _mm512_min_epi32(_mm512_max_epi32(ki, _mm512_set1_epi32(-127)), _mm512_set1_epi32(127));
        __m512 scale = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(e, _mm512_set1_epi32(127)), 23));
        p = _mm512_mask_mul_ps(p, over, p, _mm512_set1_ps(2.0f)); /* k = 128: (p * 2) * 2^127 */
        __m512 res = _mm512_mul_ps(p, scale);
        res = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, big, _CMP_GT_OQ), res, _mm512_set1_ps(INFINITY));
        res = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, small, _CMP_LT_OQ), res, _mm512_setzero_ps());
        res = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), res, v);
        _mm512_mask_storeu_ps(y + i, m, res);
    }
}

/* The reference tree for four accumulators at once: every lane sum is the
 * same addition as in reduce(), four outputs share the shuffles. */
static T_512 void reduce4(__m512 a, __m512 b, __m512 c, __m512 d, float *oa, float *ob, float *oc, float *od)
{
#define HALVES(z) _mm256_add_ps(_mm512_castps512_ps256(z), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(z), 1)))
    __m256 A = HALVES(a), B = HALVES(b), C = HALVES(c), D = HALVES(d); /* [j] + [j+8] */
#undef HALVES
    __m256 AB = _mm256_add_ps(_mm256_permute2f128_ps(A, B, 0x20), _mm256_permute2f128_ps(A, B, 0x31));
    __m256 CD = _mm256_add_ps(_mm256_permute2f128_ps(C, D, 0x20), _mm256_permute2f128_ps(C, D, 0x31));
    /* per 128-bit half: [x0 x1 x2 x3] of AB and of CD -> x0 + x2, x1 + x3 */
    __m256 S = _mm256_add_ps(_mm256_shuffle_ps(AB, CD, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(AB, CD, _MM_SHUFFLE(3, 2, 3, 2)));
    /* [0] + [1] */
    __m256 F = _mm256_add_ps(_mm256_shuffle_ps(S, S, _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm256_shuffle_ps(S, S, _MM_SHUFFLE(3, 1, 3, 1)));
    float f[8];
    _mm256_storeu_ps(f, F);
    *oa = f[0];
    *oc = f[1];
    *ob = f[4];
    *od = f[5];
}

/* accumulators stay in registers for heads of up to 128 (16 per register);
 * @return 0 when n does not fit, for the caller's general loop */
int T_512 lmz_weighted_sum_avx512(const float *w, const float *const *v, size_t count, size_t n, float *o)
{
    if (n % 16 || n > 128) return 0;
    size_t r = n / 16;
    __m512 acc[8];
    for (size_t i = 0; i < 8; i++) acc[i] = _mm512_setzero_ps();
    for (size_t j = 0; j < count; j++) {
        __m512 pj = _mm512_set1_ps(w[j]);
        for (size_t i = 0; i < r; i++) acc[i] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(v[j] + 16 * i), acc[i]);
    }
    for (size_t i = 0; i < r; i++) _mm512_storeu_ps(o + 16 * i, acc[i]);
    return 1;
}

void T_512 lmz_dot4x4_avx512(const float *const w[4], const float *const x[4], size_t n, float out[16])
{
    __m512 a[16];
    for (int i = 0; i < 16; i++) a[i] = _mm512_setzero_ps();
    size_t k = 0;
    for (; k + 16 <= n; k += 16) {
        __m512 x0 = _mm512_loadu_ps(x[0] + k), x1 = _mm512_loadu_ps(x[1] + k);
        __m512 x2 = _mm512_loadu_ps(x[2] + k), x3 = _mm512_loadu_ps(x[3] + k);
        for (int r = 0; r < 4; r++) {
            __m512 wv = _mm512_loadu_ps(w[r] + k);
            a[4 * r] = _mm512_fmadd_ps(wv, x0, a[4 * r]);
            a[4 * r + 1] = _mm512_fmadd_ps(wv, x1, a[4 * r + 1]);
            a[4 * r + 2] = _mm512_fmadd_ps(wv, x2, a[4 * r + 2]);
            a[4 * r + 3] = _mm512_fmadd_ps(wv, x3, a[4 * r + 3]);
        }
    }
    if (k < n) {
        __mmask16 m = (__mmask16)((1u << (n - k)) - 1);
        __m512 xv[4];
        for (int t = 0; t < 4; t++) xv[t] = _mm512_maskz_loadu_ps(m, x[t] + k);
        for (int r = 0; r < 4; r++) {
            __m512 wv = _mm512_maskz_loadu_ps(m, w[r] + k);
            for (int t = 0; t < 4; t++) a[4 * r + t] = _mm512_fmadd_ps(wv, xv[t], a[4 * r + t]);
        }
    }
    for (int r = 0; r < 4; r++)
        reduce4(a[4 * r], a[4 * r + 1], a[4 * r + 2], a[4 * r + 3], &out[4 * r], &out[4 * r + 1],
                &out[4 * r + 2], &out[4 * r + 3]);
}
#endif
