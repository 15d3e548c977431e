/* cdf.c — see cdf.h for the contract. */
#include "cdf.h"

#include <math.h>

#include "../common/multiversion.h"
#include "../tensor/kernels.h"

int lmz_cdf_build(const float *p, uint32_t n, uint32_t *freq, uint32_t *cum)
{
    return lmz_cdf_build_bits(p, n, LMZ_CDF_BITS, freq, cum);
}

/* the table from p and s, the sum of p's finite positive entries */
static int build(const float *p, uint32_t n, unsigned bits, double s, uint32_t *freq, uint32_t *cum);

static int args_ok(uint32_t n, unsigned bits)
{
    return !(n == 0 || n > LMZ_CDF_MAX_SYMBOLS || bits > LMZ_CDF_BITS || n >= (1u << bits));
}

int lmz_cdf_build_bits(const float *p, uint32_t n, unsigned bits, uint32_t *freq, uint32_t *cum)
{
    if (!args_ok(n, bits)) return -1;
    double s = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        float v = p[i];
        if (isfinite(v) && v > 0.0f) s += (double)v;
    }
    return build(p, n, bits, s, freq, cum);
}

LMZ_CLONES_FLOAT
int lmz_cdf_build_lanes(const float *p, uint32_t n, unsigned bits, uint32_t *freq, uint32_t *cum)
{
    if (!args_ok(n, bits)) return -1;
    double a[LMZ_CDF_LANES] = {0};
    uint32_t i = 0;
    for (; i + LMZ_CDF_LANES <= n; i += LMZ_CDF_LANES)
        for (uint32_t j = 0; j < LMZ_CDF_LANES; j++) {
            float v = p[i + j];
            a[j] += isfinite(v) && v > 0.0f ? (double)v : 0.0; /* + 0.0 changes no sum */
        }
    for (uint32_t j = 0; i + j < n; j++) {
        float v = p[i + j];
        a[j] += isfinite(v) && v > 0.0f ? (double)v : 0.0;
    }
    _Static_assert(LMZ_CDF_LANES == 8, "the lanes' total adds eight");
    return build(p, n, bits, lmz_lanes8_total(a), freq, cum);
}

int lmz_cdf_build_lanes_sum(const float *p, uint32_t n, unsigned bits, double s, uint32_t *freq, uint32_t *cum)
{
    if (!args_ok(n, bits)) return -1;
    return build(p, n, bits, s, freq, cum);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(LMZ_NO_MULTIVERSION)
#include <immintrin.h>
#define T_512 __attribute__((target("avx512f,avx512vl,avx2")))
/* build()'s quantization loop eight symbols a step with AVX-512: the same
 * binary64 products, the same truncations and the same integer sums, so the
 * same table. @return i, the symbols done; *used and *best_q updated. */
static T_512 uint32_t quantize_avx512(const float *p, uint32_t n, double scale, uint32_t budget, uint32_t *freq,
                                      uint64_t *used, uint32_t *best_q)
{
    const __m512d vs = _mm512_set1_pd(scale), vb = _mm512_set1_pd((double)budget);
    const __m256 zero = _mm256_setzero_ps(), inf = _mm256_set1_ps(INFINITY);
    const __m256i one = _mm256_set1_epi32(1), vbud = _mm256_set1_epi32((int)budget);
    __m512i u = _mm512_setzero_si512();
    __m256i mx = _mm256_setzero_si256();
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(p + i);
        /* finite and > 0 (NaN is neither) */
        __mmask8 ok = _mm256_cmp_ps_mask(v, zero, _CMP_GT_OQ) & _mm256_cmp_ps_mask(v, inf, _CMP_LT_OQ);
        __m512d x = _mm512_maskz_mul_pd(ok, _mm512_cvtps_pd(v), vs);
        __m256i q = _mm512_cvttpd_epu32(x);
        q = _mm256_mask_mov_epi32(q, _mm512_cmp_pd_mask(x, vb, _CMP_GE_OQ), vbud);
        _mm256_storeu_si256((__m256i *)(void *)(freq + i), _mm256_add_epi32(q, one));
        u = _mm512_add_epi64(u, _mm512_cvtepu32_epi64(q));
        mx = _mm256_max_epu32(mx, q);
    }
    *used += (uint64_t)_mm512_reduce_add_epi64(u);
    uint32_t l[8];
    _mm256_storeu_si256((__m256i *)(void *)l, mx);
    for (int j = 0; j < 8; j++) *best_q = l[j] > *best_q ? l[j] : *best_q;
    return i;
}

/* cum[i] = freq[0] + ... + freq[i - 1] sixteen at a time: the register's
 * prefix sums (shifted by 1, 2, 4, 8 lanes) plus the running total; uint32
 * sums, so exactly the scalar loop's. @return the symbols done; *c the total. */
static T_512 uint32_t prefix_avx512(const uint32_t *freq, uint32_t n, uint32_t *cum, uint32_t *c)
{
    const __m512i zero = _mm512_setzero_si512(), last = _mm512_set1_epi32(15);
    __m512i carry = zero;
    uint32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i f = _mm512_loadu_si512((const void *)(freq + i));
        __m512i x = _mm512_alignr_epi32(f, zero, 15); /* exclusive: cum[i] leaves out freq[i] */
        x = _mm512_add_epi32(x, _mm512_alignr_epi32(x, zero, 15));
        x = _mm512_add_epi32(x, _mm512_alignr_epi32(x, zero, 14));
        x = _mm512_add_epi32(x, _mm512_alignr_epi32(x, zero, 12));
        x = _mm512_add_epi32(x, _mm512_alignr_epi32(x, zero, 8));
        x = _mm512_add_epi32(x, carry);
        _mm512_storeu_si512((void *)(cum + i), x);
        carry = _mm512_add_epi32(_mm512_permutexvar_epi32(last, x), _mm512_permutexvar_epi32(last, f));
    }
    *c = (uint32_t)_mm_cvtsi128_si32(_mm512_castsi512_si128(carry));
    return i;
}

#define T_AVX2 __attribute__((target("avx2")))
/* the same eight symbols a step with AVX2: binary64 products four at a time
 * (x >= budget clamped to budget, an integer, before the truncation: the
 * scalar loop's q; below 2^31 the signed truncation is exact) */
static T_AVX2 uint32_t quantize_avx2(const float *p, uint32_t n, double scale, uint32_t budget, uint32_t *freq,
                                     uint64_t *used, uint32_t *best_q)
{
    const __m256d vs = _mm256_set1_pd(scale), vb = _mm256_set1_pd((double)budget);
    const __m256d zero = _mm256_setzero_pd(), inf = _mm256_set1_pd(INFINITY);
    const __m256i one = _mm256_set1_epi32(1);
    __m256i u = _mm256_setzero_si256(), mx = _mm256_setzero_si256();
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i q2[2];
        for (int h = 0; h < 2; h++) {
            __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(p + i + 4 * (unsigned)h));
            /* finite and > 0 (NaN is neither): else 0 */
            __m256d ok = _mm256_and_pd(_mm256_cmp_pd(v, zero, _CMP_GT_OQ), _mm256_cmp_pd(v, inf, _CMP_LT_OQ));
            __m256d x = _mm256_min_pd(_mm256_and_pd(_mm256_mul_pd(v, vs), ok), vb);
            q2[h] = _mm256_cvttpd_epi32(x);
            u = _mm256_add_epi64(u, _mm256_cvtepu32_epi64(q2[h]));
        }
        __m256i q = _mm256_inserti128_si256(_mm256_castsi128_si256(q2[0]), q2[1], 1);
        _mm256_storeu_si256((__m256i *)(void *)(freq + i), _mm256_add_epi32(q, one));
        mx = _mm256_max_epu32(mx, q);
    }
    uint64_t l64[4];
    _mm256_storeu_si256((__m256i *)(void *)l64, u);
    *used += l64[0] + l64[1] + l64[2] + l64[3];
    uint32_t l[8];
    _mm256_storeu_si256((__m256i *)(void *)l, mx);
    for (int j = 0; j < 8; j++) *best_q = l[j] > *best_q ? l[j] : *best_q;
    return i;
}

static int have_avx2(void)
{
    static int ok = -1;
    if (ok < 0) ok = __builtin_cpu_supports("avx2");
    return ok;
}

static int have_avx512(void)
{
    static int ok = -1;
    if (ok < 0) ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
    return ok;
}
#endif

static int build(const float *p, uint32_t n, unsigned bits, double s, uint32_t *freq, uint32_t *cum)
{
    const uint32_t budget = (1u << bits) - n; /* what is left after the 1s */

    uint64_t used = 0;
    uint32_t best = 0, best_q = 0;
    if (!(s > 0.0) || !isfinite(s)) {
        for (uint32_t i = 0; i < n; i++) freq[i] = 1 + budget / n;
        used = (uint64_t)(budget / n) * n;
        best = 0;
    } else {
        const double scale = (double)budget / s;
        uint32_t i = 0;
#if defined(__x86_64__) && defined(__GNUC__) && !defined(LMZ_NO_MULTIVERSION)
        if (have_avx512()) i = quantize_avx512(p, n, scale, budget, freq, &used, &best_q);
        else if (have_avx2()) i = quantize_avx2(p, n, scale, budget, freq, &used, &best_q);
#endif
        for (; i < n; i++) {
            float v = p[i];
            double x = isfinite(v) && v > 0.0f ? (double)v * scale : 0.0;
            uint32_t q = x >= (double)budget ? budget : (uint32_t)x;
            freq[i] = 1 + q;
            used += q;
            best_q = q > best_q ? q : best_q;
        }
        while (freq[best] != 1 + best_q) best++; /* the first most probable symbol */
    }
    /* rounding down leaves 0 <= rest < n; double rounding may overshoot by a
     * few units, which the largest entry can always give back */
    if (used <= budget) {
        freq[best] += (uint32_t)(budget - used);
    } else {
        freq[best] -= (uint32_t)(used - budget);
    }
    if (cum) {
        uint32_t c = 0, i = 0;
#if defined(__x86_64__) && defined(__GNUC__) && !defined(LMZ_NO_MULTIVERSION)
        if (have_avx512()) i = prefix_avx512(freq, n, cum, &c);
#endif
        for (; i < n; i++) { cum[i] = c; c += freq[i]; }
        cum[n] = c;
    }
    return 0;
}

uint32_t lmz_cdf_find(const uint32_t *cum, uint32_t n, uint32_t target)
{
    uint32_t lo = 0, hi = n; /* invariant: cum[lo] <= target < cum[hi] */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cum[mid] <= target) lo = mid; else hi = mid;
    }
    return lo;
}
