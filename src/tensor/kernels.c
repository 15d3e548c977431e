/* kernels.c — scalar reference kernels and path selection (kernels.h). */
#include "kernels.h"
#include "qmat.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "types.h"
#include "detmath.h"

const char *lmz_kpath_name(lmz_kpath p)
{
    static const char *n[LMZ_KPATH_COUNT] = {"scalar", "avx2", "avx512", "neon", "amx"};
    return p < LMZ_KPATH_COUNT ? n[p] : "?";
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
/* CPUID.1:ECX bit 29 (not every compiler's __builtin_cpu_supports knows it) */
static int has_f16c(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c >> 29) & 1;
}
#endif

int lmz_kpath_supported(lmz_kpath p)
{
    switch (p) {
    case LMZ_KPATH_SCALAR: return 1;
#if defined(__x86_64__) && defined(__GNUC__)
    case LMZ_KPATH_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
    case LMZ_KPATH_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && lmz_kpath_supported(LMZ_KPATH_AVX2);
#endif
    case LMZ_KPATH_AMX: return lmz_kpath_supported(LMZ_KPATH_AVX512) && lmz_qmm_amx_ok();
#if defined(__aarch64__) && defined(__GNUC__)
    case LMZ_KPATH_NEON: return 1; /* Advanced SIMD is part of every AArch64 CPU */
#endif
    default: return 0;
    }
}

int lmz_kernels_select(lmz_kpath *out, char *err, size_t errlen)
{
    const char *e = getenv("LMZIP_KERNELS");
    if (!e || !*e || !strcmp(e, "auto")) {
        *out = lmz_kpath_supported(LMZ_KPATH_AMX)      ? LMZ_KPATH_AMX
               : lmz_kpath_supported(LMZ_KPATH_AVX512) ? LMZ_KPATH_AVX512
               : lmz_kpath_supported(LMZ_KPATH_AVX2)   ? LMZ_KPATH_AVX2
               : lmz_kpath_supported(LMZ_KPATH_NEON)   ? LMZ_KPATH_NEON
                                                       : LMZ_KPATH_SCALAR;
        return 0;
    }
    for (int p = 0; p < LMZ_KPATH_COUNT; p++)
        if (!strcmp(e, lmz_kpath_name((lmz_kpath)p))) {
            if (!lmz_kpath_supported((lmz_kpath)p)) {
                snprintf(err, errlen, "LMZIP_KERNELS=%s: this CPU does not have it%s", e,
                         p == LMZ_KPATH_AMX ? " (AMX-INT8 and AVX512-VNNI, with the tile state granted by Linux)" : "");
                return -1;
            }
            *out = (lmz_kpath)p;
            return 0;
        }
    snprintf(err, errlen, "LMZIP_KERNELS=%s: unknown (scalar, avx2, avx512, amx, neon, auto)", e);
    return -1;
}

int lmz_kernels_type_ok(uint32_t t)
{
    return t == LMZ_GGML_F32 || t == LMZ_GGML_F16 || t == LMZ_GGML_BF16 || t == LMZ_GGML_Q8_0;
}

/* ======================================================================== */
/* exact conversions                                                         */
/* ======================================================================== */

static inline float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float lmz_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t e = (h >> 10) & 0x1F, m = h & 0x3FF;
    if (e == 0) {
        if (m == 0) return from_bits(sign);
        /* subnormal half: m * 2^-24, exact in float */
        float v = (float)m * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    if (e == 31) return from_bits(sign | 0x7F800000u | (m << 13));
    return from_bits(sign | ((e + 112) << 23) | (m << 13));
}

float lmz_bf16_to_f32(uint16_t h) { return from_bits((uint32_t)h << 16); }

uint16_t lmz_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)(u >> 16 & 0x8000);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return (uint16_t)(sign | 0x7E00 | (a >> 13 & 0x3FF)); /* NaN, kept quiet */
    if (a >= 0x477FF000u) return (uint16_t)(sign | 0x7C00); /* rounds beyond 65504, or infinity */
    if (a < 0x38800000u) { /* below 2^-14: a subnormal half, units of 2^-24 */
        float v;
        memcpy(&v, &a, 4);
        /* v * 2^24 is exact; rint rounds ties to even in the default mode */
        return (uint16_t)(sign | (uint16_t)rintf(v * 16777216.0f));
    }
    uint32_t m = a + 0xFFFu + (a >> 13 & 1); /* round the 13 dropped bits, ties to even */
    return (uint16_t)(sign | (uint16_t)((m - 0x38000000u) >> 13));
}

void lmz_quantize_q8_0(const float *x, size_t n, uint8_t *out)
{
    for (size_t b = 0; b < n / 32; b++, x += 32, out += 34) {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        uint16_t dh = lmz_f32_to_f16(amax / 127.0f);
        float d = lmz_f16_to_f32(dh);
        out[0] = (uint8_t)dh, out[1] = (uint8_t)(dh >> 8);
        for (int i = 0; i < 32; i++) {
            long q = d > 0 ? lroundf(x[i] / d) : 0;
            out[2 + i] = (uint8_t)(int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
        }
    }
}

/* ======================================================================== */
/* scalar reference                                                          */
/* ======================================================================== */

static float reduce16(const float *l)
{
    float a[8], b[4], c[2];
    for (int j = 0; j < 8; j++) a[j] = l[j] + l[j + 8];
    for (int j = 0; j < 4; j++) b[j] = a[j] + a[j + 4];
    for (int j = 0; j < 2; j++) c[j] = b[j] + b[j + 2];
    return c[0] + c[1];
}

/* Vector types of GCC/Clang's vector extensions: plain IEEE arithmetic lane
 * by lane, for the portable path where SSE2 is not there (AArch64 and
 * others); x86-64 uses SSE2 below. */
#if !defined(__GNUC__)
#error "the portable kernels use GCC/Clang vector extensions"
#endif
typedef double v4d __attribute__((vector_size(32)));
typedef double v2d __attribute__((vector_size(16)));
typedef int64_t v2l __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
typedef float v4f __attribute__((vector_size(16)));

/* The portable kernels are SSE2 code without VEX encoding. On a CPU with
 * AVX, code elsewhere (the C library, the AVX2 clones) may leave the upper
 * halves of the vector registers dirty, and every legacy SSE instruction
 * then waits on them (measured here: 3x slower). vzeroupper on entry
 * clears them; CPUs without AVX have nothing to clear (and no such
 * instruction). */
#if defined(__x86_64__) && defined(__GNUC__)
static inline void clean_upper(void)
{
    static int avx = -1;
    if (avx < 0) avx = __builtin_cpu_supports("avx") ? 1 : 0;
    if (avx) __asm__ volatile("vzeroupper" ::: "memory");
}
#else
static inline void clean_upper(void) {}
#endif

/* 16 lanes as doubles holding floats (exactly): widened weights and
 * activations, and the running sums of the portable dot products. On
 * x86-64 in SSE2 registers (part of every x86-64 CPU), elsewhere in the
 * compiler's vector extensions. */
#if defined(__SSE2__)
#include <emmintrin.h>
typedef struct {
    __m128d v[8];
} lanes16;
static void step16_exact(lanes16 *restrict acc, const lanes16 *restrict w, const lanes16 *restrict x);

static inline void widen16(const float *w, lanes16 *d)
{
    for (int j = 0; j < 4; j++) {
        __m128 f = _mm_loadu_ps(w + 4 * j);
        d->v[2 * j] = _mm_cvtps_pd(f);
        d->v[2 * j + 1] = _mm_cvtps_pd(_mm_movehl_ps(f, f));
    }
}

static inline void narrow16(const lanes16 *acc, float *l)
{
    for (int j = 0; j < 4; j++)
        _mm_storeu_ps(l + 4 * j, _mm_movelh_ps(_mm_cvtpd_ps(acc->v[2 * j]), _mm_cvtpd_ps(acc->v[2 * j + 1])));
}

/* acc = fma(w, x, acc) lane by lane, exactly. Fast path: s = w x + acc in
 * double (the product is exact), rounded to float. That is the correctly
 * rounded fma unless s sits exactly on a midpoint between two floats (its
 * low 29 bits 1000...0: the exact sum may lie on either side of it) or is
 * a nonzero sum in float's subnormal range (fewer bits kept): anywhere else
 * the exact sum lies within half a double unit of s and never across a
 * float midpoint. A block with such a lane (rare) is done again with
 * lmz_fma_exact. Only 32-bit compares (SSE2 has no 64-bit one). */
static inline void step16(lanes16 *restrict acc, const lanes16 *restrict w, const lanes16 *restrict x)
{
    const __m128i low29 = _mm_set1_epi32(0x1FFFFFFF), mid = _mm_set1_epi32(0x10000000);
    const __m128 absm = _mm_castsi128_ps(_mm_set1_epi32(INT32_MAX)), tiny = _mm_set1_ps(0x1p-126f);
    __m128 risky = _mm_setzero_ps(), small = _mm_setzero_ps();
    __m128d nv[8];
    for (int j = 0; j < 8; j += 2) {
        __m128d s0 = _mm_add_pd(_mm_mul_pd(w->v[j], x->v[j]), acc->v[j]);
        __m128d s1 = _mm_add_pd(_mm_mul_pd(w->v[j + 1], x->v[j + 1]), acc->v[j + 1]);
        /* the low 32 bits of the four sums side by side */
        __m128i lo = _mm_castps_si128(_mm_shuffle_ps(_mm_castpd_ps(s0), _mm_castpd_ps(s1), _MM_SHUFFLE(2, 0, 2, 0)));
        risky = _mm_or_ps(risky, _mm_castsi128_ps(_mm_cmpeq_epi32(_mm_and_si128(lo, low29), mid)));
        __m128 f = _mm_movelh_ps(_mm_cvtpd_ps(s0), _mm_cvtpd_ps(s1));
        small = _mm_or_ps(small, _mm_cmplt_ps(_mm_and_ps(f, absm), tiny)); /* subnormal, or zero */
        nv[j] = _mm_cvtps_pd(f);
        nv[j + 1] = _mm_cvtps_pd(_mm_movehl_ps(f, f));
    }
    if (__builtin_expect(!_mm_movemask_ps(_mm_or_ps(risky, small)), 1)) { /* the common case: one test */
        memcpy(acc->v, nv, sizeof nv);
        return;
    }
    int bad = _mm_movemask_ps(risky);
    if (_mm_movemask_ps(small)) { /* exact zeros are exact: look closer */
        const __m128d absd = _mm_castsi128_pd(_mm_set1_epi64x(INT64_MAX)), tinyd = _mm_set1_pd(0x1p-126);
        for (int j = 0; j < 8; j++) {
            __m128d a = _mm_and_pd(_mm_add_pd(_mm_mul_pd(w->v[j], x->v[j]), acc->v[j]), absd);
            bad |= _mm_movemask_pd(_mm_and_pd(_mm_cmplt_pd(a, tinyd), _mm_cmpgt_pd(a, _mm_setzero_pd())));
        }
    }
    if (!bad) {
        memcpy(acc->v, nv, sizeof nv);
        return;
    }
    step16_exact(acc, w, x);
}
#else
typedef struct {
    v4d v[4];
} lanes16;
static void step16_exact(lanes16 *restrict acc, const lanes16 *restrict w, const lanes16 *restrict x);

static inline void widen16(const float *w, lanes16 *d)
{
    for (int j = 0; j < 4; j++) {
        v4f a;
        memcpy(&a, w + 4 * j, 16);
        d->v[j] = __builtin_convertvector(a, v4d);
    }
}

static inline void narrow16(const lanes16 *acc, float *l)
{
    for (int j = 0; j < 4; j++) {
        v4f f = __builtin_convertvector(acc->v[j], v4f);
        memcpy(l + 4 * j, &f, 16);
    }
}

/* as the SSE2 step16 above, in vector extensions */
static inline void step16(lanes16 *restrict acc, const lanes16 *restrict w, const lanes16 *restrict x)
{
    const v4i low29 = {0x1FFFFFFF, 0, 0x1FFFFFFF, 0}, mid = {0x10000000, 1, 0x10000000, 1};
    const v4i absm = {INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX};
    const v4f tiny = {0x1p-126f, 0x1p-126f, 0x1p-126f, 0x1p-126f};
    v4d nv[4], sv[4];
    v4i risky = {0, 0, 0, 0}, small = {0, 0, 0, 0};
    for (int j = 0; j < 4; j++) {
        v4d sd = w->v[j] * x->v[j] + acc->v[j];
        v4i sh[2];
        memcpy(sh, &sd, sizeof sd);
        risky |= ((sh[0] & low29) == mid) | ((sh[1] & low29) == mid);
        v4f f = __builtin_convertvector(sd, v4f);
        small |= (v4f)((v4i)f & absm) < tiny; /* subnormal, or zero */
        nv[j] = __builtin_convertvector(f, v4d);
        sv[j] = sd;
    }
    if (__builtin_expect(small[0] | small[1] | small[2] | small[3], 0)) { /* exact zeros are exact: look closer */
        const v2l absd = {INT64_MAX, INT64_MAX};
        const v2d tinyd = {0x1p-126, 0x1p-126}, zero = {0, 0};
        v2l sub = {0, 0};
        v2d h[8];
        memcpy(h, sv, sizeof sv);
        for (int i = 0; i < 8; i++) {
            v2d a = (v2d)((v2l)h[i] & absd);
            sub |= (a < tinyd) & (a > zero);
        }
        risky |= (v4i)sub;
    }
    if (__builtin_expect(!(risky[0] | risky[1] | risky[2] | risky[3]), 1)) {
        memcpy(acc->v, nv, sizeof nv);
        return;
    }
    step16_exact(acc, w, x);
}
#endif

/* the slow way, lane by lane (step16's rare blocks) */
static void step16_exact(lanes16 *restrict acc, const lanes16 *restrict w, const lanes16 *restrict x)
{
    float a[16], b[16], c[16];
    narrow16(w, a);
    narrow16(x, b);
    narrow16(acc, c);
    for (int j = 0; j < 16; j++) c[j] = lmz_fma_exact(a[j], b[j], c[j]);
    widen16(c, acc);
}

/* l[j] = fma(w[j], x[j], l[j]) for the 16 lanes, exactly */
static inline void fma16(float *restrict l, const float *restrict w, const float *restrict x)
{
    lanes16 a, b, c;
    widen16(w, &a);
    widen16(x, &b);
    widen16(l, &c);
    step16(&c, &a, &b);
    narrow16(&c, l);
}

/* y[i] = fma(a, x[i], y[i]) for i < n, exactly */
static void axpy_exact(float a, const float *x, float *y, size_t n)
{
    clean_upper();
    size_t i = 0;
    lanes16 ad, xd, yd;
    float af[16];
    for (int j = 0; j < 16; j++) af[j] = a;
    widen16(af, &ad);
    for (; i + 16 <= n; i += 16) { /* 16 at a time through step16's fast path */
        widen16(x + i, &xd);
        widen16(y + i, &yd);
        step16(&yd, &ad, &xd);
        narrow16(&yd, y + i);
    }
    for (; i < n; i++) y[i] = lmz_fma_exact(a, x[i], y[i]);
}

static float dot_scalar(const void *wrow, uint32_t type, const float *x, size_t n)
{
    if (!lmz_kernels_type_ok(type)) return NAN;
    if (type == LMZ_GGML_Q8_0) n -= n % 32; /* whole blocks only */
    clean_upper();
    const uint8_t *w = wrow;
    float l[16], v[32];
    lanes16 acc, wd, xd;
    memset(&acc, 0, sizeof acc);
    size_t k = 0, m = 0;
    const float *wf = v;
    for (; k < n; k += m) { /* chunks of 32 (a Q8_0 block), the weights as floats (lmz_row_to_f32) */
        m = n - k < 32 ? n - k : 32;
        size_t at = type == LMZ_GGML_F32 ? 4 * k : type == LMZ_GGML_Q8_0 ? 34 * (k / 32) : 2 * k; /* bytes */
        if (type == LMZ_GGML_F32) wf = (const float *)(const void *)(w + at);
        else lmz_row_to_f32(LMZ_KPATH_SCALAR, w + at, type, m, v);
        for (size_t b = 0; b + 16 <= m; b += 16) {
            widen16(wf + b, &wd);
            widen16(x + k + b, &xd);
            step16(&acc, &wd, &xd);
        }
    }
    narrow16(&acc, l);
    /* the last chunk's tail, element by element: missing elements are zeros,
     * which leave a lane as it is */
    for (size_t j = m / 16 * 16; j < m; j++) l[j & 15] = lmz_fma_exact(wf[j], x[k - m + j], l[j & 15]);
    return reduce16(l);
}

float lmz_dot(lmz_kpath p, const void *wrow, uint32_t type, const float *x, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (lmz_kpath_avx512(p)) return lmz_dot_avx512(wrow, type, x, n);
    if (p == LMZ_KPATH_AVX2) return lmz_dot_avx2(wrow, type, x, n);
#endif
#if defined(__aarch64__) && defined(__GNUC__)
    if (p == LMZ_KPATH_NEON) return lmz_dot_neon(wrow, type, x, n);
#endif
    (void)p;
    return dot_scalar(wrow, type, x, n);
}


static void dot4_portable(const float *w, const float *const x[4], size_t n, float out[4], int plain);

void lmz_dot4_f32(lmz_kpath p, const float *w, const float *const x[4], size_t n, float out[4], int plain)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (lmz_kpath_avx512(p)) {
        lmz_dot4_avx512(w, x, n, out);
        return;
    }
    if (p == LMZ_KPATH_AVX2) {
        lmz_dot4_avx2(w, x, n, out);
        return;
    }
#endif
#if defined(__aarch64__) && defined(__GNUC__)
    if (p == LMZ_KPATH_NEON) {
        lmz_dot4_neon(w, x, n, out);
        return;
    }
#endif
    dot4_portable(w, x, n, out, plain);
}

void lmz_dot_many_f32(lmz_kpath p, const float *const *w, size_t rows, const float *const *x, size_t nx, size_t n,
                      float *y, size_t ldy)
{
    size_t r0 = 0;
    if (nx == 1) {
#if defined(__x86_64__) && defined(__GNUC__)
        if (lmz_kpath_avx512(p) && n % 16 == 0)
            for (; r0 + 16 <= rows; r0 += 16) lmz_dot16_rows_avx512(w + r0, x[0], n, y + r0);
#endif
        for (; r0 < rows; r0++) y[r0] = lmz_dot(p, w[r0], LMZ_GGML_F32, x[0], n);
        return;
    }
    /* the path's tiles (lmz_dot_tile_f32): a partial tile repeats its last
     * row, and on the paths of 4 x 4 tiles its last vector (AVX2's tiles take
     * 1 to 4 vectors); only the wanted sums are kept */
    const size_t R = lmz_f32_tile_rows(p);
    for (; r0 < rows; r0 += R)
        for (size_t t0 = 0; t0 < nx; t0 += 4) {
            const float *wt[4], *xt[4];
            float o[16];
            size_t nt = nx - t0 < 4 ? nx - t0 : 4;
            for (size_t i = 0; i < 4; i++) {
                wt[i] = w[r0 + i < rows ? r0 + i : rows - 1];
                xt[i] = x[t0 + (i < nt ? i : nt - 1)];
            }
            lmz_dot_tile_f32(p, wt, xt, R == 3 ? nt : 4, n, o, 4, 0);
            for (size_t t = t0; t < t0 + nt; t++)
                for (size_t r = r0; r < r0 + R && r < rows; r++) y[t * ldy + r] = o[4 * (t - t0) + (r - r0)];
        }
}

void lmz_row_to_f32(lmz_kpath path, const void *wrow, uint32_t type, size_t n, float *out)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (lmz_kpath_avx512(path) && lmz_row_to_f32_avx512(wrow, type, n, out)) return;
    if (path == LMZ_KPATH_AVX2 && lmz_row_to_f32_avx2(wrow, type, n, out)) return;
#endif
    (void)path;
    const uint8_t *p = wrow;
    switch (type) {
    case LMZ_GGML_F32: memcpy(out, p, n * 4); break;
    case LMZ_GGML_F16:
    case LMZ_GGML_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
            out[i] = type == LMZ_GGML_F16 ? lmz_f16_to_f32(h) : lmz_bf16_to_f32(h);
        }
        break;
    case LMZ_GGML_Q8_0:
        for (size_t b = 0; b < n / 32; b++) {
            float d = lmz_f16_to_f32((uint16_t)(p[34 * b] | p[34 * b + 1] << 8));
            for (size_t i = 0; i < 32; i++) out[32 * b + i] = d * (float)(int8_t)p[34 * b + 2 + i];
        }
        break;
    default:
        for (size_t i = 0; i < n; i++) out[i] = NAN;
    }
}

/* Rows without a nonzero value below 2^-66 in magnitude let the tiles
 * below skip the per-step test of sums in float's subnormal range. Floats of magnitude 2^-66 or more are
 * multiples of 2^-89, their products multiples of 2^-178, and so is every
 * partial sum (a float accumulator is a multiple of 2^-149); below 2^-126
 * such a sum has at most 52 significant bits, is exact in double and so
 * rounds to float once, correctly. */
int lmz_f32_has_tiny(const float *v, size_t n)
{
    clean_upper();
    const v4f lim = {0x1p-66f, 0x1p-66f, 0x1p-66f, 0x1p-66f}, zero = {0, 0, 0, 0};
    const v4i absm = {INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX};
    v4i t0 = {0, 0, 0, 0}, t1 = t0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { /* two independent chains */
        v4f a, b;
        memcpy(&a, v + i, 16);
        memcpy(&b, v + i + 4, 16);
        a = (v4f)((v4i)a & absm);
        b = (v4f)((v4i)b & absm);
        t0 |= (a < lim) & (a > zero);
        t1 |= (b < lim) & (b > zero);
    }
    t0 |= t1;
    int r = (t0[0] | t0[1] | t0[2] | t0[3]) != 0;
    for (; i < n; i++) r |= fabsf(v[i]) < 0x1p-66f && v[i] != 0.0f;
    return r;
}

#if defined(__SSE2__)
typedef __m128i risk4;
/* acc[0..16) = w x + acc lane by lane, the sum in double rounded to float,
 * for inputs without tiny values (lmz_f32_has_tiny): only the midpoint test of step16
 * remains, or-ed into *risky for the caller to test once per tile. The
 * accumulators stay floats in memory, widened as they are read. */
static inline void step16_tile(float *restrict acc, const lanes16 *restrict w, const lanes16 *restrict x,
                               risk4 *risky)
{
    const __m128i low29 = _mm_set1_epi32(0x1FFFFFFF), mid = _mm_set1_epi32(0x10000000);
    __m128i r = *risky;
    for (int j = 0; j < 4; j++) {
        __m128 a = _mm_loadu_ps(acc + 4 * j);
        __m128d s0 = _mm_add_pd(_mm_mul_pd(w->v[2 * j], x->v[2 * j]), _mm_cvtps_pd(a));
        __m128d s1 = _mm_add_pd(_mm_mul_pd(w->v[2 * j + 1], x->v[2 * j + 1]), _mm_cvtps_pd(_mm_movehl_ps(a, a)));
        __m128i lo = _mm_castps_si128(_mm_shuffle_ps(_mm_castpd_ps(s0), _mm_castpd_ps(s1), _MM_SHUFFLE(2, 0, 2, 0)));
        r = _mm_or_si128(r, _mm_cmpeq_epi32(_mm_and_si128(lo, low29), mid));
        _mm_storeu_ps(acc + 4 * j, _mm_movelh_ps(_mm_cvtpd_ps(s0), _mm_cvtpd_ps(s1)));
    }
    *risky = r;
}
static inline int any_risk(risk4 r) { return _mm_movemask_epi8(r) != 0; }
#else
typedef v4i risk4;
/* as the SSE2 step16_tile above, in vector extensions */
static inline void step16_tile(float *restrict acc, const lanes16 *restrict w, const lanes16 *restrict x,
                               risk4 *risky)
{
    const v4i low29 = {0x1FFFFFFF, 0, 0x1FFFFFFF, 0}, mid = {0x10000000, 1, 0x10000000, 1};
    v4i r = *risky;
    for (int j = 0; j < 4; j++) {
        v4f a;
        memcpy(&a, acc + 4 * j, 16);
        v4d sd = w->v[j] * x->v[j] + __builtin_convertvector(a, v4d);
        v4i sh[2];
        memcpy(sh, &sd, sizeof sd);
        r |= ((sh[0] & low29) == mid) | ((sh[1] & low29) == mid);
        v4f f = __builtin_convertvector(sd, v4f);
        memcpy(acc + 4 * j, &f, 16);
    }
    *risky = r;
}
static inline int any_risk(risk4 r) { return (r[0] | r[1] | r[2] | r[3]) != 0; }
#endif

/* the block of 16 at b of the R weight rows and the 4 tokens, widened */
static inline __attribute__((always_inline)) void widen_block(int R, const float *const w[], const float *const x[4],
                                                              size_t b, lanes16 wd[4], lanes16 xd[4])
{
    for (int i = 0; i < 4; i++) {
        if (i < R) widen16(w[i] + b, &wd[i]);
        widen16(x[i] + b, &xd[i]);
    }
}

/* The first k (a multiple of 16) steps of the dot products of R rows (1 or
 * 4) and 4 tokens into the lanes l[r][t], the fast way: each block of 16
 * weights and activations widened to double once for the whole tile, each
 * step one double sum rounded to float. Returns 0, leaving l to be done
 * again, when an input is tiny or a sum landed on a midpoint (both rare);
 * plain: the caller found no tiny input. */
static inline __attribute__((always_inline)) int tile_fast(int R, const float *const w[], const float *const x[4],
                                                           size_t k, float l[][4][16], int plain)
{
    memset(l, 0, (size_t)R * 4 * 16 * sizeof(float));
    for (int i = 0; i < 4 && !plain; i++)
        if ((i < R && lmz_f32_has_tiny(w[i], k)) || lmz_f32_has_tiny(x[i], k)) return 0;
    risk4 risky;
    memset(&risky, 0, sizeof risky);
    for (size_t b = 0; b < k; b += 16) {
        lanes16 wd[4], xd[4];
        widen_block(R, w, x, b, wd, xd);
        for (int r = 0; r < R; r++)
            for (int t = 0; t < 4; t++) step16_tile(l[r][t], &wd[r], &xd[t], &risky);
    }
    return !any_risk(risky);
}

/* the same steps with every block checked (step16) */
static inline __attribute__((always_inline)) void tile_checked(int R, const float *const w[], const float *const x[4],
                                                               size_t k, float l[][4][16])
{
    lanes16 acc[4][4];
    memset(acc, 0, sizeof acc);
    for (size_t b = 0; b < k; b += 16) {
        lanes16 wd[4], xd[4];
        widen_block(R, w, x, b, wd, xd);
        for (int r = 0; r < R; r++)
            for (int t = 0; t < 4; t++) step16(&acc[r][t], &wd[r], &xd[t]);
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < 4; t++) narrow16(&acc[r][t], l[r][t]);
}

/* The dot products of R rows and 4 tokens on the portable path, y[t*ldy +
 * r]: the fast tile, or where it declines the checked one; then the tails,
 * each element through the round-to-odd sum. Same bits as single dots. */
static inline __attribute__((always_inline)) void tile_portable(int R, const float *const w[], const float *const x[4],
                                                                size_t n, float *y, size_t ldy, int plain)
{
    clean_upper();
    size_t k = n / 16 * 16;
    float l[4][4][16];
    if (!tile_fast(R, w, x, k, l, plain)) tile_checked(R, w, x, k, l);
    for (int r = 0; r < R; r++)
        for (int t = 0; t < 4; t++) {
            for (size_t q = k; q < n; q++) l[r][t][q & 15] = lmz_fma_exact(w[r][q], x[t][q], l[r][t][q & 15]);
            y[(size_t)t * ldy + (size_t)r] = reduce16(l[r][t]);
        }
}

static void dot4x4_portable(const float *const w[4], const float *const x[4], size_t n, float *y, size_t ldy,
                            int plain)
{
    tile_portable(4, w, x, n, y, ldy, plain);
}

static void dot4_portable(const float *w, const float *const x[4], size_t n, float out[4], int plain)
{
    const float *const wr[1] = {w};
    tile_portable(1, wr, x, n, out, 1, plain);
}

void lmz_dot4x4_f32(lmz_kpath p, const float *const w[4], const float *const x[4], size_t n, float *y,
                    size_t ldy, int plain)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (lmz_kpath_avx512(p)) {
        lmz_dot4x4_avx512(w, x, n, y, ldy);
        return;
    }
    if (p == LMZ_KPATH_AVX2) {
        lmz_dot4x4_avx2(w, x, n, y, ldy);
        return;
    }
#endif
    if (p == LMZ_KPATH_SCALAR) {
        dot4x4_portable(w, x, n, y, ldy, plain);
        return;
    }
    float o[4];
    for (int r = 0; r < 4; r++) {
        lmz_dot4_f32(p, w[r], x, n, o, plain);
        for (size_t t = 0; t < 4; t++) y[t * ldy + (size_t)r] = o[t];
    }
}

size_t lmz_f32_tile_rows(lmz_kpath p) { return p == LMZ_KPATH_AVX2 ? 3 : 4; }

void lmz_dot_tile_f32(lmz_kpath p, const float *const *w, const float *const *x, size_t nx, size_t n, float *y,
                      size_t ldy, int plain)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (p == LMZ_KPATH_AVX2) {
        lmz_dot3_avx2(w, x, nx, n, y, ldy);
        return;
    }
#endif
    if (nx == 4) {
        lmz_dot4x4_f32(p, w, x, n, y, ldy, plain);
        return;
    }
    for (size_t t = 0; t < nx; t++) {
        float o[4];
        lmz_dot4_f32(p, x[t], w, n, o, plain);
        for (size_t r = 0; r < 4; r++) y[t * ldy + r] = o[r];
    }
}

void lmz_axpy(lmz_kpath p, float a, const float *x, float *y, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (p == LMZ_KPATH_AVX2 || lmz_kpath_avx512(p)) {
        lmz_axpy_avx2(a, x, y, n);
        return;
    }
#endif
#if defined(__aarch64__) && defined(__GNUC__)
    if (p == LMZ_KPATH_NEON) {
        lmz_axpy_neon(a, x, y, n);
        return;
    }
#endif
    (void)p;
    axpy_exact(a, x, y, n);
}

void lmz_weighted_sum(lmz_kpath p, const float *w, size_t ws, size_t nq, const float *const *v,
                      size_t count, size_t n, float *o, size_t os)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (lmz_kpath_avx512(p) && lmz_weighted_sum_avx512(w, ws, nq, v, count, n, o, os)) return;
    if (p == LMZ_KPATH_AVX2 && lmz_weighted_sum_avx2(w, ws, nq, v, count, n, o, os)) return;
#endif
    for (size_t h = 0; h < nq; h++) {
        float *oh = o + h * os;
        for (size_t i = 0; i < n; i++) oh[i] = 0.0f;
        for (size_t j = 0; j < count; j++) lmz_axpy(p, w[h * ws + j], v[j], oh, n);
    }
}

void lmz_weighted_sum_heads(lmz_kpath p, const float *w, size_t ws, size_t nh, const float *const *v,
                            size_t count, size_t n, float *o)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (lmz_kpath_avx512(p) && lmz_weighted_sum_heads_avx512(w, ws, nh, v, count, n, o)) return;
    if (p == LMZ_KPATH_AVX2 && lmz_weighted_sum_heads_avx2(w, ws, nh, v, count, n, o)) return;
#endif
    for (size_t h = 0; h < nh; h++) {
        float *oh = o + h * n;
        for (size_t i = 0; i < n; i++) oh[i] = 0.0f;
        for (size_t j = 0; j < count; j++) lmz_axpy(p, w[h * ws + j], v[j] + h * n, oh, n);
    }
}

void lmz_dot_keys16(lmz_kpath p, const float *kt, const float *q, size_t qs, size_t nq, size_t n,
                    float *out, size_t ldo)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (lmz_kpath_avx512(p)) {
        lmz_dot_keys16_avx512(kt, q, qs, nq, n, out, ldo);
        return;
    }
    if (p == LMZ_KPATH_AVX2) {
        lmz_dot_keys16_avx2(kt, q, qs, nq, n, out, ldo);
        return;
    }
#endif
#if defined(__aarch64__) && defined(__GNUC__)
    if (p == LMZ_KPATH_NEON) {
        lmz_dot_keys16_neon(kt, q, qs, nq, n, out, ldo);
        return;
    }
#endif
    clean_upper();
    for (size_t h = 0; h < nq; h++) {
        float lt[16][16] = {{0}}; /* lt[lane][key]: the keys side by side, for the compiler to vectorise */
        for (size_t k = 0; k < n; k++) {
            float qk[16];
            for (int j = 0; j < 16; j++) qk[j] = q[h * qs + k];
            fma16(lt[k & 15], kt + 16 * k, qk);
        }
        for (size_t j = 0; j < 16; j++) {
            float l[16];
            for (int i = 0; i < 16; i++) l[i] = lt[i][j];
            out[h * ldo + j] = reduce16(l);
        }
    }
}

size_t lmz_find_ge(lmz_kpath p, const float *x, size_t n, float t, uint32_t *idx)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (lmz_kpath_avx512(p)) return lmz_find_ge_avx512(x, n, t, idx);
    if (p == LMZ_KPATH_AVX2) return lmz_find_ge_avx2(x, n, t, idx);
#endif
    (void)p;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (x[i] >= t) idx[k++] = (uint32_t)i;
    return k;
}

void lmz_exp_array(lmz_kpath p, const float *x, float *y, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (lmz_kpath_avx512(p)) {
        lmz_exp_array_avx512(x, y, n);
        return;
    }
    if (p == LMZ_KPATH_AVX2) {
        lmz_exp_array_avx2(x, y, n);
        return;
    }
#endif
    (void)p;
    for (size_t i = 0; i < n; i++) y[i] = lmz_expf(x[i]);
}

double lmz_exp_shift_sum(lmz_kpath p, float *x, float mx, float *y, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (lmz_kpath_avx512(p)) return lmz_exp_shift_sum_avx512(x, mx, y, n);
    if (p == LMZ_KPATH_AVX2) return lmz_exp_shift_sum_avx2(x, mx, y, n);
#endif
    (void)p;
    double a[8] = {0};
    for (size_t i = 0; i < n; i++) {
        x[i] -= mx;
        y[i] = lmz_expf(x[i]);
        a[i % 8] += (double)y[i];
    }
    return lmz_lanes8_total(a);
}
