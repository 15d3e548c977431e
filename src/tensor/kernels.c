/* kernels.c — scalar reference kernels and path selection (kernels.h). */
#include "kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "detmath.h"

const char *lmz_kpath_name(lmz_kpath p)
{
    static const char *n[LMZ_KPATH_COUNT] = {"scalar", "avx2", "avx512", "neon"};
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
        *out = lmz_kpath_supported(LMZ_KPATH_AVX512) ? LMZ_KPATH_AVX512
               : lmz_kpath_supported(LMZ_KPATH_AVX2) ? LMZ_KPATH_AVX2
               : lmz_kpath_supported(LMZ_KPATH_NEON) ? LMZ_KPATH_NEON
                                                     : LMZ_KPATH_SCALAR;
        return 0;
    }
    for (int p = 0; p < LMZ_KPATH_COUNT; p++)
        if (!strcmp(e, lmz_kpath_name((lmz_kpath)p))) {
            if (!lmz_kpath_supported((lmz_kpath)p)) {
                snprintf(err, errlen, "LMZIP_KERNELS=%s: this CPU does not have it", e);
                return -1;
            }
            *out = (lmz_kpath)p;
            return 0;
        }
    snprintf(err, errlen, "LMZIP_KERNELS=%s: unknown (scalar, avx2, avx512, neon, auto)", e);
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

static float dot_scalar(const void *wrow, uint32_t type, const float *x, size_t n)
{
    float l[16] = {0};
    const uint8_t *w = wrow;
    switch (type) {
    case LMZ_GGML_F32:
        for (size_t k = 0; k < n; k++) {
            float v;
            memcpy(&v, w + 4 * k, 4);
            l[k & 15] = fmaf(v, x[k], l[k & 15]);
        }
        break;
    case LMZ_GGML_F16:
    case LMZ_GGML_BF16:
        for (size_t k = 0; k < n; k++) {
            uint16_t h = (uint16_t)(w[2 * k] | w[2 * k + 1] << 8);
            float v = type == LMZ_GGML_F16 ? lmz_f16_to_f32(h) : lmz_bf16_to_f32(h);
            l[k & 15] = fmaf(v, x[k], l[k & 15]);
        }
        break;
    case LMZ_GGML_Q8_0:
        for (size_t b = 0; b < n / 32; b++) {
            const uint8_t *blk = w + 34 * b;
            float d = lmz_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
            for (size_t i = 0; i < 32; i++) {
                size_t k = 32 * b + i;
                float v = d * (float)(int8_t)blk[2 + i]; /* exact */
                l[k & 15] = fmaf(v, x[k], l[k & 15]);
            }
        }
        break;
    default: return NAN;
    }
    return reduce16(l);
}

float lmz_dot(lmz_kpath p, const void *wrow, uint32_t type, const float *x, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (p == LMZ_KPATH_AVX512) return lmz_dot_avx512(wrow, type, x, n);
    if (p == LMZ_KPATH_AVX2) return lmz_dot_avx2(wrow, type, x, n);
#endif
#if defined(__aarch64__) && defined(__GNUC__)
    if (p == LMZ_KPATH_NEON) return lmz_dot_neon(wrow, type, x, n);
#endif
    (void)p;
    return dot_scalar(wrow, type, x, n);
}


void lmz_dot4_f32(lmz_kpath p, const float *w, const float *const x[4], size_t n, float out[4])
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (p == LMZ_KPATH_AVX512) {
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
    for (int i = 0; i < 4; i++) out[i] = dot_scalar(w, LMZ_GGML_F32, x[i], n);
}

void lmz_row_to_f32(lmz_kpath path, const void *wrow, uint32_t type, size_t n, float *out)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (path == LMZ_KPATH_AVX512 && lmz_row_to_f32_avx512(wrow, type, n, out)) return;
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

void lmz_dot4x4_f32(lmz_kpath p, const float *const w[4], const float *const x[4], size_t n, float *y,
                    size_t ldy)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (p == LMZ_KPATH_AVX512) {
        lmz_dot4x4_avx512(w, x, n, y, ldy);
        return;
    }
#endif
    float o[4];
    for (int r = 0; r < 4; r++) {
        lmz_dot4_f32(p, w[r], x, n, o);
        for (size_t t = 0; t < 4; t++) y[t * ldy + (size_t)r] = o[t];
    }
}

void lmz_axpy(lmz_kpath p, float a, const float *x, float *y, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (p == LMZ_KPATH_AVX2 || p == LMZ_KPATH_AVX512) {
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
    for (size_t i = 0; i < n; i++) y[i] = fmaf(a, x[i], y[i]);
}

void lmz_weighted_sum(lmz_kpath p, const float *w, size_t ws, size_t nq, const float *const *v,
                      size_t count, size_t n, float *o, size_t os)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (p == LMZ_KPATH_AVX512 && lmz_weighted_sum_avx512(w, ws, nq, v, count, n, o, os)) return;
    if (p == LMZ_KPATH_AVX2 && lmz_weighted_sum_avx2(w, ws, nq, v, count, n, o, os)) return;
#endif
    for (size_t h = 0; h < nq; h++) {
        float *oh = o + h * os;
        for (size_t i = 0; i < n; i++) oh[i] = 0.0f;
        for (size_t j = 0; j < count; j++) lmz_axpy(p, w[h * ws + j], v[j], oh, n);
    }
}

void lmz_dot_keys16(lmz_kpath p, const float *kt, const float *q, size_t qs, size_t nq, size_t n,
                    float *out, size_t ldo)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (p == LMZ_KPATH_AVX512) {
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
    for (size_t h = 0; h < nq; h++)
        for (size_t j = 0; j < 16; j++) {
            float l[16] = {0};
            for (size_t k = 0; k < n; k++) l[k & 15] = fmaf(kt[16 * k + j], q[h * qs + k], l[k & 15]);
            out[h * ldo + j] = reduce16(l);
        }
}

void lmz_exp_array(lmz_kpath p, const float *x, float *y, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (p == LMZ_KPATH_AVX512) {
        lmz_exp_array_avx512(x, y, n);
        return;
    }
#endif
    (void)p;
    for (size_t i = 0; i < n; i++) y[i] = lmz_expf(x[i]);
}
