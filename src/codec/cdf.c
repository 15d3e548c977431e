/* cdf.c — see cdf.h for the contract. */
#include "cdf.h"

#include <math.h>

int lmz_cdf_build(const float *p, uint32_t n, uint32_t *freq, uint32_t *cum)
{
    return lmz_cdf_build_bits(p, n, LMZ_CDF_BITS, freq, cum);
}

int lmz_cdf_build_bits(const float *p, uint32_t n, unsigned bits, uint32_t *freq, uint32_t *cum)
{
    if (n == 0 || n > LMZ_CDF_MAX_SYMBOLS || bits > LMZ_CDF_BITS || n >= (1u << bits)) return -1;
    const uint32_t budget = (1u << bits) - n; /* what is left after the 1s */

    double s = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        float v = p[i];
        if (isfinite(v) && v > 0.0f) s += (double)v;
    }

    uint64_t used = 0;
    uint32_t best = 0, best_q = 0;
    if (!(s > 0.0) || !isfinite(s)) {
        for (uint32_t i = 0; i < n; i++) freq[i] = 1 + budget / n;
        used = (uint64_t)(budget / n) * n;
        best = 0;
    } else {
        const double scale = (double)budget / s;
        for (uint32_t i = 0; i < n; i++) {
            float v = p[i];
            uint32_t q = 0;
            if (isfinite(v) && v > 0.0f) {
                double x = (double)v * scale;
                q = x >= (double)budget ? budget : (uint32_t)x;
            }
            freq[i] = 1 + q;
            used += q;
            if (q > best_q) { best_q = q; best = i; }
        }
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
