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
