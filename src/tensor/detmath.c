/* detmath.c — see detmath.h. Only + - * /, sqrt and fmaf: every step is one
 * correctly rounded IEEE operation, so the results are the same everywhere
 * (the build uses -ffp-contract=off, so no other fusing happens). */
#include "detmath.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* On x86-64 a clone of each function is built for CPUs with FMA, where fmaf
 * becomes one instruction instead of a library call: the same correctly
 * rounded operation, so the same bits, only faster. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(LMZ_NO_MULTIVERSION)
#define FMA_CLONES __attribute__((target_clones("fma", "default")))
#else
#define FMA_CLONES
#endif

static inline uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float bitsf(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* round to the nearest integer (ties to even) for |x| < 2^22 */
static inline float round_int(float x)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    float t = x + magic;
    return t - magic;
}

FMA_CLONES float lmz_expf(float x)
{
    if (x != x) return x;
    if (x > 88.72283935546875f) return INFINITY;
    if (x < -87.33654022216797f) return 0.0f; /* below the smallest normal */
    const float log2e = 1.44269502925872802734375f;
    const float ln2_hi = 0.693145751953125f;        /* 16 significant bits */
    const float ln2_lo = 1.428606765330187e-06f;
    float k = round_int(x * log2e);
    float r = fmaf(-k, ln2_hi, x); /* exact: k * ln2_hi has few bits */
    r = fmaf(-k, ln2_lo, r);       /* |r| <= 0.3466 */
    /* Taylor series to r^7: truncation below 4e-9 relative */
    float p = 1.0f / 5040.0f;
    p = fmaf(p, r, 1.0f / 720.0f);
    p = fmaf(p, r, 1.0f / 120.0f);
    p = fmaf(p, r, 1.0f / 24.0f);
    p = fmaf(p, r, 1.0f / 6.0f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    int ki = (int)k; /* -126 .. 128 */
    if (ki > 127) return p * 2.0f * bitsf((uint32_t)(127 + 127) << 23);
    return p * bitsf((uint32_t)(ki + 127) << 23);
}

FMA_CLONES float lmz_logf(float x)
{
    if (x != x) return x;
    if (x < 0.0f) return NAN;
    if (x == 0.0f) return -INFINITY;
    if (x == INFINITY) return x;
    int e = 0;
    if (x < 1.17549435e-38f) { /* subnormal: scale into the normal range */
        x *= 8388608.0f;
        e = -23;
    }
    uint32_t b = fbits(x);
    e += (int)((b >> 23) & 0xFF) - 127;
    float m = bitsf((b & 0x7FFFFFu) | 0x3F800000u); /* [1, 2) */
    if (m > 1.41421356f) {
        m *= 0.5f;
        e++;
    }
    /* log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716 */
    float s = (m - 1.0f) / (m + 1.0f);
    float z = s * s;
    float p = 1.0f / 11.0f;
    p = fmaf(p, z, 1.0f / 9.0f);
    p = fmaf(p, z, 1.0f / 7.0f);
    p = fmaf(p, z, 1.0f / 5.0f);
    p = fmaf(p, z, 1.0f / 3.0f);
    float lm = 2.0f * s + 2.0f * s * z * p;
    const float ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187e-06f;
    float fe = (float)e;
    return fmaf(fe, ln2_hi, fmaf(fe, ln2_lo, lm));
}

FMA_CLONES void lmz_sincosf(float x, float *sn, float *cs)
{
    if (x != x || x == INFINITY || x == -INFINITY) {
        *sn = *cs = NAN;
        return;
    }
    const float two_over_pi = 0.636619746685028076171875f;
    const float p1 = 1.5707963705062866f, p2 = -4.371138828673793e-08f, p3 = -1.7763568394002505e-15f;
    float k = round_int(x * two_over_pi);
    float r = fmaf(-k, p1, x);
    r = fmaf(-k, p2, r);
    r = fmaf(-k, p3, r); /* |r| <= pi/4 (plus rounding) */
    float z = r * r;
    float ps = -1.0f / 39916800.0f;
    ps = fmaf(ps, z, 1.0f / 362880.0f);
    ps = fmaf(ps, z, -1.0f / 5040.0f);
    ps = fmaf(ps, z, 1.0f / 120.0f);
    ps = fmaf(ps, z, -1.0f / 6.0f);
    float s = fmaf(r * z, ps, r);
    float pc = 1.0f / 479001600.0f;
    pc = fmaf(pc, z, -1.0f / 3628800.0f);
    pc = fmaf(pc, z, 1.0f / 40320.0f);
    pc = fmaf(pc, z, -1.0f / 720.0f);
    pc = fmaf(pc, z, 1.0f / 24.0f);
    pc = fmaf(pc, z, -0.5f);
    float c = fmaf(z, pc, 1.0f);
    switch ((unsigned)(int)k & 3u) {
    case 0: *sn = s; *cs = c; break;
    case 1: *sn = c; *cs = -s; break;
    case 2: *sn = -s; *cs = -c; break;
    default: *sn = -c; *cs = s; break;
    }
}

float lmz_powf(float x, float y) { return lmz_expf(y * lmz_logf(x)); }

void lmz_rope_sincos(uint64_t pos, float freq, float *s, float *c)
{
    const double two_pi_hi = 6.28318530717958623200, two_pi_lo = 2.44929359829470635e-16;
    double a = (double)pos * (double)freq;
    double k = (a * 0.15915494309189535 + 6755399441055744.0) - 6755399441055744.0;
    double r = fma(-k, two_pi_hi, a);
    r = fma(-k, two_pi_lo, r);
    lmz_sincosf((float)r, s, c);
}
