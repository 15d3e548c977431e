/*
 * kernels_wsh.h — lmz_weighted_sum_heads for a vector unit, written once
 * for kernels_avx2.c and kernels_avx512.c: the heads' columns in blocks of
 * VL floats, up to 12 blocks' sums in registers at a time, each a chain of
 * fused multiply-adds over the rows in order (the bits of kernels.h).
 *
 * WSH_KERNEL(NAME, T, VEC, VL, SET1, LOAD, FMA, STORE, ZERO) defines
 * int NAME(w, ws, nh, v, count, n, o), 0 when n is not a multiple of VL.
 */
#ifndef LMZ_KERNELS_WSH_H
#define LMZ_KERNELS_WSH_H

#define WSH_KERNEL(NAME, T, VEC, VL, SET1, LOAD, FMA, STORE, ZERO) \
    static inline T __attribute__((always_inline)) void NAME##_blocks(const float *const *wb, const float *const *v, \
                                                                       size_t count, size_t c0, size_t K, float *o) \
    { \
        VEC acc[12]; \
        for (size_t b = 0; b < K; b++) acc[b] = ZERO(); \
        for (size_t j = 0; j < count; j++) { \
            const float *r = v[j] + c0 * (VL); \
            for (size_t b = 0; b < K; b++) acc[b] = FMA(SET1(wb[b][j]), LOAD(r + (VL) * b), acc[b]); \
        } \
        for (size_t b = 0; b < K; b++) STORE(o + (c0 + b) * (VL), acc[b]); \
    } \
    int T NAME(const float *w, size_t ws, size_t nh, const float *const *v, size_t count, size_t n, float *o) \
    { \
        if (n % (VL) || n == 0) return 0; \
        const size_t per = n / (VL), nb = nh * per; \
        for (size_t c0 = 0; c0 < nb; c0 += 12) { \
            size_t K = nb - c0 < 12 ? nb - c0 : 12; \
            const float *wb[12]; \
            for (size_t b = 0; b < K; b++) wb[b] = w + ((c0 + b) / per) * ws; \
            switch (K) { /* a constant count: the accumulators stay in registers */ \
            case 12: NAME##_blocks(wb, v, count, c0, 12, o); break; \
            case 9: NAME##_blocks(wb, v, count, c0, 9, o); break; \
            case 8: NAME##_blocks(wb, v, count, c0, 8, o); break; \
            case 6: NAME##_blocks(wb, v, count, c0, 6, o); break; \
            case 4: NAME##_blocks(wb, v, count, c0, 4, o); break; \
            case 3: NAME##_blocks(wb, v, count, c0, 3, o); break; \
            default: NAME##_blocks(wb, v, count, c0, K, o); break; \
            } \
        } \
        return 1; \
    }

#endif
