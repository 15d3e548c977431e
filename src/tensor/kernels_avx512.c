/* kernels_avx512.c — the det-f32-v1 dot product with AVX-512: the 16 lanes
 * of kernels.h in one register; tails through masked loads. */
#include "kernels.h"
#include "kernels_wsh.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "types.h"

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

/* values 16g .. 16g+15 of a Q8_0 block as floats: d * q, exact */
static T_512 __m512 q8_values16(const uint8_t *blk, int g)
{
    uint16_t dh;
    memcpy(&dh, blk, 2);
    __m512 d = _mm512_set1_ps(_mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(dh))));
    __m128i q8 = _mm_loadu_si128((const __m128i *)(const void *)(blk + 2 + 16 * g));
    return _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q8)));
}

float T_512 lmz_dot_avx512(const void *wrow, uint32_t type, const float *x, size_t n)
{
    const uint8_t *w = wrow;
    __m512 l = _mm512_setzero_ps();
    if (type == LMZ_GGML_Q8_0) {
        for (size_t b = 0; b < n / 32; b++)
            for (int g = 0; g < 2; g++)
                l = _mm512_fmadd_ps(q8_values16(w + 34 * b, g), _mm512_loadu_ps(x + 32 * b + 16 * g), l);
        return reduce(l);
    }
    if (type != LMZ_GGML_F32 && type != LMZ_GGML_F16 && type != LMZ_GGML_BF16) return NAN;
    size_t k = 0;
    for (; k + 16 <= n; k += 16) l = _mm512_fmadd_ps(load_w16(w, type, k, 0xFFFF), _mm512_loadu_ps(x + k), l);
    if (k < n) {
        __mmask16 m = (__mmask16)((1u << (n - k)) - 1);
        l = _mm512_mask3_fmadd_ps(load_w16(w, type, k, m), _mm512_maskz_loadu_ps(m, x + k), l, m);
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
        l0 = _mm512_mask3_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x[0] + k), l0, m);
        l1 = _mm512_mask3_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x[1] + k), l1, m);
        l2 = _mm512_mask3_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x[2] + k), l2, m);
        l3 = _mm512_mask3_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x[3] + k), l3, m);
    }
    out[0] = reduce(l0);
    out[1] = reduce(l1);
    out[2] = reduce(l2);
    out[3] = reduce(l3);
}

size_t T_512 lmz_find_ge_avx512(const float *x, size_t n, float t, uint32_t *idx)
{
    const __m512 tv = _mm512_set1_ps(t);
    const __m512i sixteen = _mm512_set1_epi32(16);
    __m512i at = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    size_t k = 0, i = 0;
    for (; i + 16 <= n; i += 16) {
        __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), tv, _CMP_GE_OQ);
        if (m) { /* compressed in a register (a compressing store is slow on some cores), stored masked */
            unsigned c = (unsigned)__builtin_popcount(m);
            _mm512_mask_storeu_epi32(idx + k, (__mmask16)((1u << c) - 1), _mm512_maskz_compress_epi32(m, at));
            k += c;
        }
        at = _mm512_add_epi32(at, sixteen);
    }
    for (; i < n; i++)
        if (x[i] >= t) idx[k++] = (uint32_t)i;
    return k;
}

/* lmz_expf (detmath.c) sixteen lanes at a time: the same IEEE operations in
 * the same order, so the same bits; the special cases are blended in. */
static inline T_512 __m512 exp16(__m512 v)
{
    const __m512 log2e = _mm512_set1_ps(1.44269502925872802734375f), magic = _mm512_set1_ps(12582912.0f);
    const __m512 hi = _mm512_set1_ps(0.693145751953125f), lo = _mm512_set1_ps(1.428606765330187e-06f);
    const __m512 c7 = _mm512_set1_ps(1.0f / 5040.0f), c6 = _mm512_set1_ps(1.0f / 720.0f);
    const __m512 c5 = _mm512_set1_ps(1.0f / 120.0f), c4 = _mm512_set1_ps(1.0f / 24.0f);
    const __m512 c3 = _mm512_set1_ps(1.0f / 6.0f), c2 = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
    const __m512 big = _mm512_set1_ps(88.72283935546875f), small = _mm512_set1_ps(-87.33654022216797f);
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
    return res;
}

void T_512 lmz_exp_array_avx512(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

double T_512 lmz_exp_shift_sum_avx512(float *x, float mx, float *y, size_t n)
{
    /* lane j of the binary64 sums takes y[8i + j] in index order: the low
     * and then the high half of each register */
    __m512d a = _mm512_setzero_pd();
    const __m512 vm = _mm512_set1_ps(mx);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm);
        _mm512_mask_storeu_ps(x + i, m, v);
        __m512 e = _mm512_maskz_mov_ps(m, exp16(v)); /* + 0.0 past the end changes no sum of values >= 0 */
        _mm512_mask_storeu_ps(y + i, m, e);
        a = _mm512_add_pd(a, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        a = _mm512_add_pd(a, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    double l[8];
    _mm512_storeu_pd(l, a);
    return lmz_lanes8_total(l);
}

/* Weighted sums for heads of 64 (four registers each), up to four heads
 * sharing every row load; the accumulators are named registers. */
#define WS_DECL(h) __m512 a##h##0 = _mm512_setzero_ps(), a##h##1 = a##h##0, a##h##2 = a##h##0, a##h##3 = a##h##0;
#define WS_STEP(h) \
    { \
        __m512 p = _mm512_set1_ps(w[(h) * ws + j]); \
        a##h##0 = _mm512_fmadd_ps(p, v0, a##h##0); \
        a##h##1 = _mm512_fmadd_ps(p, v1, a##h##1); \
        a##h##2 = _mm512_fmadd_ps(p, v2, a##h##2); \
        a##h##3 = _mm512_fmadd_ps(p, v3, a##h##3); \
    }
#define WS_STORE(h) \
    _mm512_storeu_ps(o + (h) * os, a##h##0); \
    _mm512_storeu_ps(o + (h) * os + 16, a##h##1); \
    _mm512_storeu_ps(o + (h) * os + 32, a##h##2); \
    _mm512_storeu_ps(o + (h) * os + 48, a##h##3);
#define WS_FUNC(name, HEADS) \
    static T_512 void name(const float *w, size_t ws, const float *const *v, size_t count, float *o, size_t os) \
    { \
        HEADS(WS_DECL) \
        for (size_t j = 0; j < count; j++) { \
            __m512 v0 = _mm512_loadu_ps(v[j]), v1 = _mm512_loadu_ps(v[j] + 16); \
            __m512 v2 = _mm512_loadu_ps(v[j] + 32), v3 = _mm512_loadu_ps(v[j] + 48); \
            HEADS(WS_STEP) \
        } \
        HEADS(WS_STORE) \
    }
#define H1(X) X(0)
#define H2(X) X(0) X(1)
#define H3(X) X(0) X(1) X(2)
#define H4(X) X(0) X(1) X(2) X(3)
WS_FUNC(wsum64_1, H1)
WS_FUNC(wsum64_2, H2)
WS_FUNC(wsum64_3, H3)
WS_FUNC(wsum64_4, H4)
#undef H1
#undef H2
#undef H3
#undef H4
#undef WS_FUNC
#undef WS_STORE
#undef WS_STEP
#undef WS_DECL

/* @return 0 for a head size left to the caller's general loop */
int T_512 lmz_weighted_sum_avx512(const float *w, size_t ws, size_t nq, const float *const *v, size_t count,
                                  size_t n, float *o, size_t os)
{
    if (n == 64) {
        size_t h = 0;
        for (; h + 4 <= nq; h += 4) wsum64_4(w + h * ws, ws, v, count, o + h * os, os);
        if (nq - h == 3) wsum64_3(w + h * ws, ws, v, count, o + h * os, os);
        else if (nq - h == 2) wsum64_2(w + h * ws, ws, v, count, o + h * os, os);
        else if (nq - h == 1) wsum64_1(w + h * ws, ws, v, count, o + h * os, os);
        return 1;
    }
    if (n % 16 || n > 128) return 0;
    size_t r = n / 16;
    for (size_t h = 0; h < nq; h++) {
        __m512 acc[8];
        for (size_t i = 0; i < 8; i++) acc[i] = _mm512_setzero_ps();
        for (size_t j = 0; j < count; j++) {
            __m512 pj = _mm512_set1_ps(w[h * ws + j]);
            for (size_t i = 0; i < r; i++) acc[i] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(v[j] + 16 * i), acc[i]);
        }
        for (size_t i = 0; i < r; i++) _mm512_storeu_ps(o + h * os + 16 * i, acc[i]);
    }
    return 1;
}

WSH_KERNEL(lmz_weighted_sum_heads_avx512, T_512, __m512, 16, _mm512_set1_ps, _mm512_loadu_ps, _mm512_fmadd_ps,
           _mm512_storeu_ps, _mm512_setzero_ps)

/* lane l of the reference (the products of elements l, l+16, ... in order,
 * for sixteen keys at once, one key per lane of the register) for NQ queries
 * at once: each key register is loaded once for all of them */
static inline T_512 void keys_lane_q(const float *kt, const float *q, size_t qs, const int NQ, size_t n, size_t l,
                                     __m512 *a)
{
    for (int h = 0; h < NQ; h++) a[h] = _mm512_setzero_ps();
    for (size_t k = l; k < n; k += 16) {
        __m512 key = _mm512_loadu_ps(kt + 16 * k);
        for (int h = 0; h < NQ; h++) a[h] = _mm512_fmadd_ps(key, _mm512_set1_ps(q[(size_t)h * qs + k]), a[h]);
    }
}

/* the reference tree, lanes as registers: s_j = l_j + l_j+8, t_j = s_j + s_j+4,
 * u_j = t_j + t_j+2, u_0 + u_1; computed in an order that keeps few live:
 * u_0 = (s_0 + s_4) + (s_2 + s_6), u_1 = (s_1 + s_5) + (s_3 + s_7); NQ (1 to 4)
 * queries side by side, each query's operations those of one */
static inline T_512 void keys16_q(const float *kt, const float *q, size_t qs, const int NQ, size_t n, float *out,
                                  size_t ldo)
{
    static const int order[2][4] = {{0, 4, 2, 6}, {1, 5, 3, 7}};
    __m512 u[2][4];
    for (int half = 0; half < 2; half++) {
        __m512 sj[4][4];
        for (int i = 0; i < 4; i++) {
            __m512 a[4], b[4];
            keys_lane_q(kt, q, qs, NQ, n, (size_t)order[half][i], a);
            keys_lane_q(kt, q, qs, NQ, n, (size_t)order[half][i] + 8, b);
            for (int h = 0; h < NQ; h++) sj[i][h] = _mm512_add_ps(a[h], b[h]);
        }
        for (int h = 0; h < NQ; h++)
            u[half][h] = _mm512_add_ps(_mm512_add_ps(sj[0][h], sj[1][h]), _mm512_add_ps(sj[2][h], sj[3][h]));
    }
    for (int h = 0; h < NQ; h++) _mm512_storeu_ps(out + (size_t)h * ldo, _mm512_add_ps(u[0][h], u[1][h]));
}

void T_512 lmz_dot_keys16_avx512(const float *kt, const float *q, size_t qs, size_t nq, size_t n, float *out,
                                 size_t ldo)
{
    size_t h = 0;
    for (; h + 4 <= nq; h += 4) keys16_q(kt, q + h * qs, qs, 4, n, out + h * ldo, ldo);
    switch (nq - h) {
    case 3: keys16_q(kt, q + h * qs, qs, 3, n, out + h * ldo, ldo); break;
    case 2: keys16_q(kt, q + h * qs, qs, 2, n, out + h * ldo, ldo); break;
    case 1: keys16_q(kt, q + h * qs, qs, 1, n, out + h * ldo, ldo); break;
    default: break;
    }
}

/* The reference tree of reduce() for sixteen accumulators at once, with
 * whole-register operations: each level adds the lower half of every
 * accumulator's remaining lanes to the upper half (lanes j + j+8, j + j+4,
 * j + j+2, j + j+1), two accumulators per instruction at the first level and
 * four at the last. Returns lane 4m + q = sum of accumulator 4q + m. */
static inline T_512 __m512 pair8(__m512 a, __m512 b) /* [a.b0 + a.b2, a.b1 + a.b3, b.b0 + b.b2, b.b1 + b.b3] */
{
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
}
static inline T_512 __m512 pair4(__m512 c, __m512 d) /* block m: lanes j + j+4 of accumulator m */
{
    return _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0x88), _mm512_shuffle_f32x4(c, d, 0xDD));
}
static inline T_512 __m512 pair2(__m512 e, __m512 f) /* per block: lanes 0 + 2, 1 + 3 of two */
{
    return _mm512_add_ps(_mm512_shuffle_ps(e, f, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(e, f, _MM_SHUFFLE(3, 2, 3, 2)));
}
static inline T_512 __m512 pair1(__m512 g, __m512 h) /* per block: lane 0 + 1 of four */
{
    return _mm512_add_ps(_mm512_shuffle_ps(g, h, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_ps(g, h, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* accumulators as sixteen named registers (an array would live on the stack) */
#define ACC16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)

/* sixteen rows of lmz_dot_avx512 (F32, n a multiple of 16) against one x:
 * each load of x serves all sixteen, and their sums meet in the tree above
 * (lane 4m + q holds row 4q + m), put in row order by a permute */
void T_512 lmz_dot16_rows_avx512(const float *const w[16], const float *x, size_t n, float out[16])
{
#define DECL(i) __m512 a##i = _mm512_setzero_ps();
    ACC16(DECL)
#undef DECL
    for (size_t k = 0; k < n; k += 16) {
        __m512 xv = _mm512_loadu_ps(x + k);
#define ROW(i) a##i = _mm512_fmadd_ps(_mm512_loadu_ps(w[i] + k), xv, a##i);
        ACC16(ROW)
#undef ROW
    }
    __m512 g0 = pair2(pair4(pair8(a0, a1), pair8(a2, a3)), pair4(pair8(a4, a5), pair8(a6, a7)));
    __m512 g1 = pair2(pair4(pair8(a8, a9), pair8(a10, a11)), pair4(pair8(a12, a13), pair8(a14, a15)));
    __m512 res = pair1(g0, g1);
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _mm512_storeu_ps(out, _mm512_permutexvar_ps(order, res));
}


void T_512 lmz_dot4x4_avx512(const float *const w[4], const float *const x[4], size_t n, float *y, size_t ldy)
{
    /* a<4r + t>: row r, token t */
#define DECL(i) __m512 a##i = _mm512_setzero_ps();
    ACC16(DECL)
#undef DECL
    const float *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
    const float *p0 = x[0], *p1 = x[1], *p2 = x[2], *p3 = x[3];
#define ROW(r, wv, x0, x1, x2, x3, A, B, C, D) \
    A = FMA(wv, x0, A); \
    B = FMA(wv, x1, B); \
    C = FMA(wv, x2, C); \
    D = FMA(wv, x3, D);
#define STEP(LOADW, LOADX) \
    { \
        __m512 x0 = LOADX(p0), x1 = LOADX(p1), x2 = LOADX(p2), x3 = LOADX(p3); \
        __m512 v0 = LOADW(w0); \
        ROW(0, v0, x0, x1, x2, x3, a0, a1, a2, a3) \
        __m512 v1 = LOADW(w1); \
        ROW(1, v1, x0, x1, x2, x3, a4, a5, a6, a7) \
        __m512 v2 = LOADW(w2); \
        ROW(2, v2, x0, x1, x2, x3, a8, a9, a10, a11) \
        __m512 v3 = LOADW(w3); \
        ROW(3, v3, x0, x1, x2, x3, a12, a13, a14, a15) \
    }
    size_t k = 0;
#define FULL(p) _mm512_loadu_ps((p) + k)
#define FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
    for (; k + 16 <= n; k += 16) STEP(FULL, FULL)
#undef FMA
#undef FULL
    if (k < n) { /* lanes past the end are left as they are, like the reference */
        __mmask16 m = (__mmask16)((1u << (n - k)) - 1);
#define PART(p) _mm512_maskz_loadu_ps(m, (p) + k)
#define FMA(a, b, c) _mm512_mask3_fmadd_ps(a, b, c, m)
        STEP(PART, PART)
#undef FMA
#undef PART
    }
#undef STEP
#undef ROW
    __m512 g0 = pair2(pair4(pair8(a0, a1), pair8(a2, a3)), pair4(pair8(a4, a5), pair8(a6, a7)));
    __m512 g1 = pair2(pair4(pair8(a8, a9), pair8(a10, a11)), pair4(pair8(a12, a13), pair8(a14, a15)));
    __m512 res = pair1(g0, g1); /* lane 4t + r */
    _mm_storeu_ps(y, _mm512_castps512_ps128(res));
    _mm_storeu_ps(y + ldy, _mm512_extractf32x4_ps(res, 1));
    _mm_storeu_ps(y + 2 * ldy, _mm512_extractf32x4_ps(res, 2));
    _mm_storeu_ps(y + 3 * ldy, _mm512_extractf32x4_ps(res, 3));
}
#undef ACC16

/* exact conversions, 16 at a time; @return 0 for a type left to the caller */
int T_512 lmz_row_to_f32_avx512(const void *wrow, uint32_t type, size_t n, float *out)
{
    const uint8_t *w = wrow;
    if (type == LMZ_GGML_Q8_0) {
        for (size_t b = 0; b < n / 32; b++)
            for (int g = 0; g < 2; g++) _mm512_storeu_ps(out + 32 * b + 16 * g, q8_values16(w + 34 * b, g));
        return 1;
    }
    if (type == LMZ_GGML_F16 || type == LMZ_GGML_BF16) {
        size_t k = 0;
        for (; k + 16 <= n; k += 16) _mm512_storeu_ps(out + k, load_w16(w, type, k, 0xFFFF));
        if (k < n) {
            __mmask16 m = (__mmask16)((1u << (n - k)) - 1);
            _mm512_mask_storeu_ps(out + k, m, load_w16(w, type, k, m));
        }
        return 1;
    }
    return 0;
}
#endif
