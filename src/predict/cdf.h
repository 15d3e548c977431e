/*
 * cdf.h — float probabilities to an integer frequency table for the range
 * coder.
 *
 * lmz_cdf_build turns n probabilities into n integer frequencies that sum to
 * exactly LMZ_CDF_TOTAL (2^24), each at least 1, so every symbol stays
 * codable. Deterministic on every IEEE-754 machine: one pass in index order in
 * double precision (each operation correctly rounded, no contraction), then
 * the remainder left by rounding down goes to the most probable symbol (the
 * first one on ties).
 */
#ifndef LMZ_CDF_H
#define LMZ_CDF_H

#include <stdint.h>

#define LMZ_CDF_BITS  24
#define LMZ_CDF_TOTAL (1u << LMZ_CDF_BITS)
#define LMZ_CDF_MAX_SYMBOLS (1u << 20) /* 1,048,576: alphabets of any real vocabulary */

/* p[n]: probabilities (any non-negative scale; NaN, infinite or negative
 * entries count as 0; an all-zero table gives a uniform one).
 * freq[n]: output frequencies. cum[n+1]: output cumulative table, may be NULL.
 * @return 0, or -1 when n is 0 or above LMZ_CDF_MAX_SYMBOLS. */
int lmz_cdf_build(const float *p, uint32_t n, uint32_t *freq, uint32_t *cum);

/* The same with a total of 2^bits (bits <= 24; n < 2^bits). */
int lmz_cdf_build_bits(const float *p, uint32_t n, unsigned bits, uint32_t *freq, uint32_t *cum);

/* The same, the sum of p taken in LMZ_CDF_LANES binary64 partial sums (entry
 * i goes to sum i % 8, each in index order; then ((0+1)+(2+3))+((4+5)+(6+7)))
 * rather than one: as exact a rule, several times faster (profile
 * det-f32-v2). */
#define LMZ_CDF_LANES 8
int lmz_cdf_build_lanes(const float *p, uint32_t n, unsigned bits, uint32_t *freq, uint32_t *cum);

/* lmz_cdf_build_lanes with its sum s already taken by the caller, in its
 * lanes and order (a pass that computes p can sum it on the way). */
int lmz_cdf_build_lanes_sum(const float *p, uint32_t n, unsigned bits, double s, uint32_t *freq, uint32_t *cum);

/* Index of the symbol whose [cum[s], cum[s+1]) holds target (binary search).
 * cum has n+1 entries, cum[0] = 0, cum[n] = total, target < total. */
uint32_t lmz_cdf_find(const uint32_t *cum, uint32_t n, uint32_t target);

#endif
