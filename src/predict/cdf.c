/* cdf.c — see cdf.h for the contract. */
#include "cdf.h"

#include <math.h>

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
    return build(p, n, bits, ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])), freq, cum);
}

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
        for (uint32_t i = 0; i < n; i++) { /* no branch: the compiler vectorises it */
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
        uint32_t c = 0;
        for (uint32_t i = 0; i < n; i++) { cum[i] = c; c += freq[i]; }
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
