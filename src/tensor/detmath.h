/*
 * detmath.h — the arithmetic profile's own elementary functions.
 *
 * Part of profile det-f32-v1 (docs/DETERMINISM.md): exp, log, sin and cos in
 * float built only from + - * /, sqrt and fmaf, each operation correctly
 * rounded by IEEE 754, so every machine computes the same bits. No libm
 * transcendental is called anywhere in the coding path. Accuracy: within
 * 2 ulp of the true value over the ranges the engine uses (tests compare
 * against double precision).
 */
#ifndef LMZ_DETMATH_H
#define LMZ_DETMATH_H

#include <stdint.h>
#include <string.h>

/* fmaf(a, b, c), correctly rounded, from double arithmetic alone: no libm
 * call (which is a slow software routine on CPUs without an FMA unit).
 * The product of two floats is exact in double (48 bits); s = p + c rounds
 * to 53 bits and e (Knuth's two-sum) is what that rounding lost, exactly.
 * Rounding s to odd (an inexact s with an even last bit steps one unit
 * toward p + c) keeps 29 more bits than float needs, so rounding it to
 * float gives the correctly rounded p + c (Boldo and Melquiond, "Emulation
 * of FMA and correctly rounded sums: proved algorithms using rounding to
 * odd", 2008): the same bits as an FMA instruction (infinities included;
 * a NaN result is a NaN, its payload aside). Needs double arithmetic in double (FLT_EVAL_METHOD 0, as on
 * x86-64 and AArch64). */
static inline float lmz_fma_exact(float a, float b, float c)
{
    double p = (double)a * (double)b, cd = (double)c;
    double s = p + cd;
    double bp = s - p;
    double e = (p - (s - bp)) + (cd - bp);
    uint64_t u;
    memcpy(&u, &s, 8);
    uint64_t step = (e > 0) == (s > 0) ? 1u : UINT64_MAX; /* toward p + c */
    u += ((e < 0 || e > 0) && !(u & 1)) ? step : 0; /* e is NaN when s is infinite: left as it is */
    memcpy(&s, &u, 8);
    return (float)s;
}

/* e^x; 0 below -87.3, +inf above 88.72 */
float lmz_expf(float x);
/* natural log for x > 0 (x <= 0 gives -inf / NaN as log does) */
float lmz_logf(float x);
/* sin and cos of x, |x| up to 2^20 (RoPE angles are far below) */
void lmz_sincosf(float x, float *s, float *c);
/* x^y = exp(y log x) for x > 0 */
float lmz_powf(float x, float y);
/* sin and cos of the RoPE angle pos * freq: the product in double, reduced
 * to [-pi, pi] there, so long streams keep their precision */
void lmz_rope_sincos(uint64_t pos, float freq, float *s, float *c);

#endif
