/* The profile's own exp, log, sin, cos against double precision libm. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tensor/detmath.h"
#include "test.h"

static double ulp_err(float got, double want)
{
    if (want == 0.0) return got == 0.0f ? 0.0 : 1e9;
    double u = ldexp(1.0, ilogb(want) - 23); /* one float ulp at want */
    return fabs((double)got - want) / u;
}

TEST(detmath_exp_log_accuracy)
{
    double worst_e = 0, worst_l = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f + (float)i * (175.5f / 200000.0f);
        double e = ulp_err(lmz_expf(x), exp((double)x));
        if (e > worst_e) worst_e = e;
        float y = ldexpf(1.0f + (float)(i % 1000) / 1000.0f, i / 1000 - 100);
        double l = fabs((double)lmz_logf(y) - log((double)y));
        double lu = ulp_err(lmz_logf(y), log((double)y));
        if (fabs(log((double)y)) > 0.01 && lu > worst_l) worst_l = lu;
        (void)l;
    }
    printf("  exp: %.2f ulp, log: %.2f ulp at most\n", worst_e, worst_l);
    CHECK(worst_e <= 2.0);
    CHECK(worst_l <= 2.0);
    CHECK(lmz_expf(0.0f) == 1.0f && lmz_expf(-100.0f) == 0.0f && isinf(lmz_expf(100.0f)));
    CHECK(lmz_logf(1.0f) == 0.0f && isinf(lmz_logf(0.0f)) && isnan(lmz_logf(-1.0f)));
    CHECK(fabs((double)lmz_expf(88.7f) - exp((double)88.7f)) / exp((double)88.7f) < 1e-6);
}

TEST(detmath_sincos_accuracy)
{
    double worst = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = (float)i * 0.05f - 5000.0f; /* RoPE angles: position x frequency */
        float s, c;
        lmz_sincosf(x, &s, &c);
        double es = fabs((double)s - sin((double)x)), ec = fabs((double)c - cos((double)x));
        if (es > worst) worst = es;
        if (ec > worst) worst = ec;
    }
    printf("  sin/cos: %.3g absolute error at most\n", worst);
    CHECK(worst < 2e-7);
}

TEST(detmath_bits_are_fixed)
{
    /* these exact bits must come out on every machine */
    float v[4] = {lmz_expf(1.0f), lmz_logf(10.0f), 0, 0};
    lmz_sincosf(100.0f, &v[2], &v[3]);
    uint32_t u[4];
    memcpy(u, v, sizeof u);
    printf("  %08x %08x %08x %08x\n", u[0], u[1], u[2], u[3]);
    CHECK(u[0] == 0x402df854u && u[1] == 0x40135d8eu && u[2] == 0xbf01a12eu && u[3] == 0x3f5cc0eeu);
}

/* The portable exact FMA against the C library's fmaf (an FMA instruction
 * or a correctly rounded routine): random operands over every exponent,
 * cancellations, sums that land near a midpoint between two floats (where
 * rounding twice goes wrong), subnormals, overflow, signed zeros. */
static float rnd_float(unsigned long long *s, int emin, int emax)
{
    unsigned long long r = test_rand(s);
    int e = emin + (int)(r % (unsigned)(emax - emin + 1));
    uint32_t u = ((uint32_t)(r >> 8) & 0x7FFFFFu) | ((uint32_t)(e + 127) << 23) | ((r >> 40) & 1 ? 0x80000000u : 0);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int same_bits(float a, float b) { return memcmp(&a, &b, 4) == 0; }

TEST(fma_exact_matches_fmaf)
{
    unsigned long long s = 12345;
    long bad = 0;
    for (int i = 0; i < 2000000; i++) {
        float a = rnd_float(&s, -30, 30), b = rnd_float(&s, -30, 30), c;
        switch (i % 4) {
        case 0: c = rnd_float(&s, -60, 60); break;
        case 1: c = -(float)((double)a * b); break; /* cancellation: the rounding error is left */
        case 2: { /* p near half a unit of c: a midpoint of c's neighbours */
            int k = (int)(test_rand(&s) % 7) - 3;
            c = ldexpf((float)((double)a * b), 24 + k) * ((test_rand(&s) & 1) ? 1.0f : -1.0f);
            break;
        }
        default: c = rnd_float(&s, -126, -100); a = rnd_float(&s, -70, -50); b = rnd_float(&s, -70, -50); /* subnormal sums */
        }
        if (!same_bits(lmz_fma_exact(a, b, c), fmaf(a, b, c))) bad++;
    }
    CHECK_EQ_U64(bad, 0);
    /* hand-made cases: just above and below the midpoint 1 + 2^-24 */
    float one = 1.0f, up = 1.0f + ldexpf(1, -23), lo = 1.0f - ldexpf(1, -23), q = ldexpf(1, -24);
    CHECK(same_bits(lmz_fma_exact(up, q, one), fmaf(up, q, one)));
    CHECK(same_bits(lmz_fma_exact(lo, q, one), fmaf(lo, q, one)));
    CHECK(same_bits(lmz_fma_exact(up, q, one), up));
    CHECK(same_bits(lmz_fma_exact(0.0f, -1.0f, 0.0f), 0.0f));
    CHECK(same_bits(lmz_fma_exact(-0.0f, 1.0f, -0.0f), -0.0f));
    CHECK(same_bits(lmz_fma_exact(2.0f, 1.0f, -2.0f), 0.0f));
    CHECK(same_bits(lmz_fma_exact(3e38f, 10.0f, 0.0f), INFINITY));
    CHECK(same_bits(lmz_fma_exact(3e38f, 10.0f, -INFINITY), fmaf(3e38f, 10.0f, -INFINITY)));
    CHECK(same_bits(lmz_fma_exact(ldexpf(1, -75), ldexpf(1, -75), 0.0f), fmaf(ldexpf(1, -75), ldexpf(1, -75), 0.0f)));
}
