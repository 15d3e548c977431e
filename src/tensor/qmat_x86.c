/* qmat_x86.c — the integer products of qmat.h with AVX2, AVX512-VNNI and
 * AMX-INT8.
 *
 * AVX2 and VNNI work on tiles of NB row blocks (16 rows each) by NT tokens,
 * one accumulator per (block, token) holding the sixteen rows' int32 sums
 * (two registers on AVX2), so no sum is ever split across lanes: each lane
 * is one row's S of qmat.h, exact. AMX's tiles hold 16 tokens by 16 rows of
 * such sums (below). */
#define _GNU_SOURCE /* syscall */
#include "qmat.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define T_AVX2 __attribute__((target("avx2,fma")))
#define T_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))
#define INLINE inline __attribute__((always_inline))

static inline int32_t load4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ------------------------------------------------------------------------ */
/* activations (AVX2): the maximum is exact in any order; each value is one  */
/* multiplication, NaN to 0, a clamp and vcvtps2dq, which rounds to nearest  */
/* even as lmz_q8_round does (the default rounding mode): the same bytes     */
/* ------------------------------------------------------------------------ */

static T_AVX2 float amax_avx2(const float *x, size_t n)
{
    const __m256 abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    __m256 m = _mm256_setzero_ps();
    size_t k = 0;
    for (; k + 8 <= n; k += 8) m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + k), abs), m); /* NaN keeps m */
    float l[8], a = 0;
    _mm256_storeu_ps(l, m);
    for (int i = 0; i < 8; i++) a = l[i] > a ? l[i] : a;
    for (; k < n; k++) {
        float v = x[k] < 0 ? -x[k] : x[k];
        if (v > a) a = v;
    }
    return a;
}

static T_AVX2 __m256i round8(const float *x, __m256 inv)
{
    __m256 r = _mm256_mul_ps(_mm256_loadu_ps(x), inv);
    r = _mm256_and_ps(r, _mm256_cmp_ps(r, r, _CMP_ORD_Q)); /* NaN -> +0 */
    r = _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
    return _mm256_cvtps_epi32(r);
}

static T_AVX2 void round_avx2(const float *x, size_t n, float inv, int8_t *p)
{
    const __m256 vi = _mm256_set1_ps(inv);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    size_t k = 0;
    for (; k + 16 <= n; k += 16) {
        __m256i a = round8(x + k, vi), b = round8(x + k + 8, vi);
        __m256i h = _mm256_packs_epi32(a, b);                   /* a0-3 b0-3 | a4-7 b4-7 */
        __m256i c = _mm256_packs_epi16(h, h);                   /* bytes: a0-3 b0-3 a0-3 b0-3 | a4-7 b4-7 ... */
        c = _mm256_permutevar8x32_epi32(c, order);              /* a0-3 a4-7 b0-3 b4-7 ... */
        _mm_storeu_si128((__m128i *)(void *)(p + k), _mm256_castsi256_si128(c));
    }
    for (; k < n; k++) p[k] = lmz_q8_round(x[k], inv);
}

int lmz_qact_amax_x86(const float *x, size_t n, float *amax)
{
    if (!__builtin_cpu_supports("avx2")) return 0;
    *amax = amax_avx2(x, n);
    return 1;
}

int lmz_qact_round_x86(const float *x, size_t n, float inv, int8_t *p)
{
    if (!__builtin_cpu_supports("avx2")) return 0;
    round_avx2(x, n, inv, p);
    return 1;
}

/* ------------------------------------------------------------------------ */
/* AVX512-VNNI: vpdpbusd on (p + 128) as unsigned bytes and q as signed, then
 * 128 times the row's sum off: S exactly                                    */
/* ------------------------------------------------------------------------ */

static T_VNNI INLINE void vnni_tile(const lmz_qmat *w, size_t b, const int NB, const int8_t *p, size_t t, const int NT,
                                    const float *xs, float *y, size_t ldy)
{
    const size_t G = w->groups;
    __m512i acc[4][4];
    for (int i = 0; i < NB; i++)
        for (int j = 0; j < NT; j++) acc[i][j] = _mm512_setzero_si512();
    const int8_t *wb = w->q + b * G * 64, *pt = p + t * 4 * G;
    const __m512i off = _mm512_set1_epi8((char)0x80);
#pragma GCC unroll 1
    for (size_t g = 0; g < G; g++) {
        __m512i wv[4];
        for (int i = 0; i < NB; i++) wv[i] = _mm512_loadu_si512((const void *)(wb + ((size_t)i * G + g) * 64));
        for (int j = 0; j < NT; j++) {
            __m512i xv = _mm512_xor_si512(_mm512_set1_epi32(load4(pt + (size_t)j * 4 * G + 4 * g)), off);
            for (int i = 0; i < NB; i++) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], xv, wv[i]);
        }
    }
    for (int i = 0; i < NB; i++) {
        size_t r0 = (b + (size_t)i) * 16;
        __mmask16 m = w->rows - r0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (w->rows - r0)) - 1);
        __m512i corr = _mm512_slli_epi32(_mm512_loadu_si512((const void *)(w->rowsum + r0)), 7);
        __m512 sc = _mm512_loadu_ps(w->scale + r0);
        for (int j = 0; j < NT; j++) {
            __m512 f = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][j], corr));
            f = _mm512_mul_ps(_mm512_mul_ps(f, sc), _mm512_set1_ps(xs[t + (size_t)j]));
            _mm512_mask_storeu_ps(y + (t + (size_t)j) * ldy + r0, m, f);
        }
    }
}

#define VNNI_NT(NB)                                                                                                    \
    do {                                                                                                               \
        size_t t = 0;                                                                                                  \
        for (; t + 4 <= T; t += 4) vnni_tile(w, b, NB, p, t, 4, xs, y, ldy);                                          \
        switch (T - t) {                                                                                               \
        case 3: vnni_tile(w, b, NB, p, t, 3, xs, y, ldy); break;                                                      \
        case 2: vnni_tile(w, b, NB, p, t, 2, xs, y, ldy); break;                                                      \
        case 1: vnni_tile(w, b, NB, p, t, 1, xs, y, ldy); break;                                                      \
        default: break;                                                                                                \
        }                                                                                                              \
    } while (0)

static T_VNNI void vnni_run(const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, const float *xs, size_t T,
                            float *y, size_t ldy)
{
    size_t b = b0;
    for (; b + 4 <= b1; b += 4) VNNI_NT(4);
    for (; b < b1; b++) VNNI_NT(1);
}

int lmz_qmm_vnni_ok(void)
{
    static int ok = -1;
    if (ok < 0)
        ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
             __builtin_cpu_supports("avx2");
    return ok;
}

int lmz_qmm_vnni(const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, const float *xs, size_t T, float *y,
                 size_t ldy)
{
    if (!lmz_qmm_vnni_ok()) return 0;
    vnni_run(w, b0, b1, p, xs, T, y, ldy);
    return 1;
}

/* ------------------------------------------------------------------------ */
/* AMX-INT8: tdpbssd multiplies signed bytes by signed bytes and adds each   */
/* group of four products to an int32 sum, exactly (no saturation). A tile  */
/* of activations is 16 tokens x 64 bytes (16 groups of 4, a token's bytes  */
/* one after the other: lmz_qact's rows, stride 4 * groups); a tile of      */
/* weights is 16 groups x 64 bytes, which is the layout of qmat.h as it is  */
/* (group g holds the 16 rows' four values): 16 consecutive groups of one   */
/* block, stride 64. The product tile is 16 tokens x 16 rows of S.          */
/* ------------------------------------------------------------------------ */

#define T_AMX __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))

/* Linux hands a process the AMX tile state only on request
 * (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)); the grant holds for
 * every thread of the process. */
#define LMZ_ARCH_REQ_XCOMP_PERM 0x1023
#define LMZ_XFEATURE_XTILEDATA 18

static int amx_state = 0;

static void amx_probe(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return; /* OSXSAVE */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    if (!((d >> 24) & 1) || !((d >> 25) & 1)) return; /* AMX-TILE, AMX-INT8 */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return; /* XTILECFG, XTILEDATA enabled by the OS */
    if (syscall(SYS_arch_prctl, LMZ_ARCH_REQ_XCOMP_PERM, LMZ_XFEATURE_XTILEDATA) != 0) return; /* refused */
    amx_state = lmz_qmm_vnni_ok(); /* the tails go through the VNNI kernel */
}

int lmz_qmm_amx_ok(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, amx_probe);
    return amx_state;
}

/* the 64-byte tile configuration (palette 1) */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_config;

/* tiles 0-3: sums, m tokens x 16 rows of int32 (tile 2 i + h: token tile h,
 * block i); 4-5: activations, m tokens x 64 bytes; 6-7: weights, 16 groups x
 * 64 bytes. The whole structure is the asm's operand, so none of its stores
 * can be dropped. */
static T_AMX void amx_configure(unsigned m)
{
    amx_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 8; i++) {
        c.colsb[i] = 64;
        c.rows[i] = (uint8_t)(i < 6 ? m : 16);
    }
    __asm__ volatile("ldtilecfg %0" ::"m"(c));
}

/* NB blocks (1 or 2) of 16 rows from block b, for MT token tiles (1 or 2) of
 * m tokens from token t (the second at t + 16, m = 16). Groups past the last
 * multiple of 16 (the input's tail) are added to the stored sums with
 * vpdpbusd: |p| as unsigned bytes, q negated where p is negative, so every
 * product is p * q exactly and the sums stay exact int32. */
static T_AMX INLINE void amx_tile(const lmz_qmat *w, size_t b, const int NB, const int8_t *p, size_t t, const int MT,
                                  size_t m, const float *xs, float *y, size_t ldy)
{
    const size_t G = w->groups, GK = G / 16 * 16, ld = 4 * G;
    const int8_t *wb = w->q + b * G * 64, *pt = p + t * ld;
    _tile_zero(0);
    if (NB == 2) _tile_zero(1);
    if (MT == 2) {
        _tile_zero(2);
        if (NB == 2) _tile_zero(3);
    }
    for (size_t g = 0; g < GK; g += 16) {
        _tile_loadd(4, pt + 4 * g, ld);
        _tile_loadd(6, wb + g * 64, 64);
        if (NB == 2) _tile_loadd(7, wb + (G + g) * 64, 64);
        _tile_dpbssd(0, 4, 6);
        if (NB == 2) _tile_dpbssd(1, 4, 7);
        if (MT == 2) {
            _tile_loadd(5, pt + 16 * ld + 4 * g, ld);
            _tile_dpbssd(2, 5, 6);
            if (NB == 2) _tile_dpbssd(3, 5, 7);
        }
    }
    int32_t acc[4][16 * 16];
    _tile_stored(0, acc[0], 64);
    if (NB == 2) _tile_stored(1, acc[1], 64);
    if (MT == 2) {
        _tile_stored(2, acc[2], 64);
        if (NB == 2) _tile_stored(3, acc[3], 64);
    }
    const __m512i zero = _mm512_setzero_si512();
    for (int i = 0; i < NB; i++) {
        size_t r0 = (b + (size_t)i) * 16;
        __mmask16 mk = w->rows - r0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (w->rows - r0)) - 1);
        __m512 sc = _mm512_loadu_ps(w->scale + r0);
        const int8_t *wi = wb + (size_t)i * G * 64;
        for (int h = 0; h < MT; h++)
            for (size_t j = 0; j < m; j++) {
                size_t tt = t + 16 * (size_t)h + j;
                __m512i s = _mm512_loadu_si512((const void *)(acc[2 * h + i] + 16 * j));
                for (size_t g = GK; g < G; g++) {
                    __m512i xv = _mm512_set1_epi32(load4(p + tt * ld + 4 * g));
                    __m512i wv = _mm512_loadu_si512((const void *)(wi + g * 64));
                    wv = _mm512_mask_sub_epi8(wv, _mm512_movepi8_mask(xv), zero, wv);
                    s = _mm512_dpbusd_epi32(s, _mm512_abs_epi8(xv), wv);
                }
                __m512 f = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s), sc), _mm512_set1_ps(xs[tt]));
                _mm512_mask_storeu_ps(y + tt * ldy + r0, mk, f);
            }
    }
}

/* Tokens in tiles of 16, two at a time where there are two, over chunks of
 * AMX_CHUNK tokens (their activations stay in the near caches while every
 * block of the range passes by); blocks in pairs. The last m < 16 tokens:
 * tiles of m rows after a second configuration, or, for one token, the VNNI
 * kernel (as fast: both wait on the weights; measured, docs/BENCHMARKS.md). */
#define AMX_CHUNK 64

static T_AMX void amx_blocks(const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, size_t t0, size_t t1, size_t m,
                             const float *xs, float *y, size_t ldy)
{
    size_t b = b0;
    for (; b + 2 <= b1; b += 2) {
        size_t t = t0;
        for (; t + 32 <= t1; t += 32) amx_tile(w, b, 2, p, t, 2, 16, xs, y, ldy);
        if (t < t1) amx_tile(w, b, 2, p, t, 1, m, xs, y, ldy);
    }
    if (b < b1) {
        size_t t = t0;
        for (; t + 32 <= t1; t += 32) amx_tile(w, b, 1, p, t, 2, 16, xs, y, ldy);
        if (t < t1) amx_tile(w, b, 1, p, t, 1, m, xs, y, ldy);
    }
}

static T_AMX void amx_run(const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, const float *xs, size_t T,
                          float *y, size_t ldy)
{
    const size_t T16 = T / 16 * 16, m = T - T16;
    if (T16) {
        amx_configure(16);
        for (size_t t0 = 0; t0 < T16; t0 += AMX_CHUNK)
            amx_blocks(w, b0, b1, p, t0, t0 + AMX_CHUNK < T16 ? t0 + AMX_CHUNK : T16, 16, xs, y, ldy);
    }
    if (m > 1) {
        amx_configure((unsigned)m);
        amx_blocks(w, b0, b1, p, T16, T, m, xs, y, ldy);
    }
    if (T16 || m > 1) _tile_release();
    if (m == 1) vnni_run(w, b0, b1, p + T16 * 4 * w->groups, xs + T16, m, y + T16 * ldy, ldy);
}

int lmz_qmm_amx(const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, const float *xs, size_t T, float *y,
                size_t ldy)
{
    if (!lmz_qmm_amx_ok()) return 0;
    if (b0 < b1 && T) amx_run(w, b0, b1, p, xs, T, y, ldy);
    return 1;
}

/* ------------------------------------------------------------------------ */
/* AVX2: |p| as unsigned bytes (vpsignb), q with p's sign, vpmaddubsw (pair   */
/* sums at most 2 * 127 * 127 < 2^15: no saturation), vpmaddwd by ones      */
/* ------------------------------------------------------------------------ */

static T_AVX2 INLINE void avx2_tile(const lmz_qmat *w, size_t b, const int NB, const int8_t *p, size_t t, const int NT,
                                    const float *xs, float *y, size_t ldy)
{
    const size_t G = w->groups;
    __m256i acc[2][2][2]; /* block, token, half (rows 0-7, 8-15) */
    for (int i = 0; i < NB; i++)
        for (int j = 0; j < NT; j++) acc[i][j][0] = acc[i][j][1] = _mm256_setzero_si256();
    const int8_t *wb = w->q + b * G * 64, *pt = p + t * 4 * G;
    const __m256i ones = _mm256_set1_epi16(1);
    for (size_t g = 0; g < G; g++) {
        __m256i wv[2][2];
        for (int i = 0; i < NB; i++) {
            const int8_t *src = wb + ((size_t)i * G + g) * 64;
            wv[i][0] = _mm256_loadu_si256((const void *)src);
            wv[i][1] = _mm256_loadu_si256((const void *)(src + 32));
        }
        for (int j = 0; j < NT; j++) {
            __m256i xv = _mm256_set1_epi32(load4(pt + (size_t)j * 4 * G + 4 * g));
            __m256i ax = _mm256_sign_epi8(xv, xv);
            for (int i = 0; i < NB; i++)
                for (int h = 0; h < 2; h++) {
                    __m256i pr = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(wv[i][h], xv));
                    acc[i][j][h] = _mm256_add_epi32(acc[i][j][h], _mm256_madd_epi16(pr, ones));
                }
        }
    }
    for (int i = 0; i < NB; i++) {
        size_t r0 = (b + (size_t)i) * 16;
        for (int h = 0; h < 2; h++) {
            size_t rh = r0 + 8 * (size_t)h;
            if (rh >= w->rows) break;
            __m256 sc = _mm256_loadu_ps(w->scale + rh);
            for (int j = 0; j < NT; j++) {
                __m256 f = _mm256_cvtepi32_ps(acc[i][j][h]);
                f = _mm256_mul_ps(_mm256_mul_ps(f, sc), _mm256_set1_ps(xs[t + (size_t)j]));
                float *dst = y + (t + (size_t)j) * ldy + rh;
                if (w->rows - rh >= 8) {
                    _mm256_storeu_ps(dst, f);
                } else {
                    float tmp[8];
                    _mm256_storeu_ps(tmp, f);
                    memcpy(dst, tmp, (w->rows - rh) * sizeof *dst);
                }
            }
        }
    }
}

#define AVX2_NT(NB)                                                                                                    \
    do {                                                                                                               \
        size_t t = 0;                                                                                                  \
        for (; t + 2 <= T; t += 2) avx2_tile(w, b, NB, p, t, 2, xs, y, ldy);                                          \
        if (t < T) avx2_tile(w, b, NB, p, t, 1, xs, y, ldy);                                                          \
    } while (0)

static T_AVX2 void avx2_run(const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, const float *xs, size_t T,
                            float *y, size_t ldy)
{
    size_t b = b0;
    for (; b + 2 <= b1; b += 2) AVX2_NT(2);
    for (; b < b1; b++) AVX2_NT(1);
}

int lmz_qmm_avx2(const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, const float *xs, size_t T, float *y,
                 size_t ldy)
{
    if (!__builtin_cpu_supports("avx2")) return 0;
    avx2_run(w, b0, b1, p, xs, T, y, ldy);
    return 1;
}

#else

int lmz_qact_amax_x86(const float *x, size_t n, float *amax)
{
    (void)x, (void)n, (void)amax;
    return 0;
}
int lmz_qact_round_x86(const float *x, size_t n, float inv, int8_t *p)
{
    (void)x, (void)n, (void)inv, (void)p;
    return 0;
}
int lmz_qmm_vnni_ok(void) { return 0; }
int lmz_qmm_amx_ok(void) { return 0; }
int lmz_qmm_amx(const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, const float *xs, size_t T, float *y,
                size_t ldy)
{
    (void)w, (void)b0, (void)b1, (void)p, (void)xs, (void)T, (void)y, (void)ldy;
    return 0;
}
int lmz_qmm_vnni(const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, const float *xs, size_t T, float *y,
                 size_t ldy)
{
    (void)w, (void)b0, (void)b1, (void)p, (void)xs, (void)T, (void)y, (void)ldy;
    return 0;
}
int lmz_qmm_avx2(const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, const float *xs, size_t T, float *y,
                 size_t ldy)
{
    (void)w, (void)b0, (void)b1, (void)p, (void)xs, (void)T, (void)y, (void)ldy;
    return 0;
}

#endif
