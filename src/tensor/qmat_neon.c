/* qmat_neon.c — the integer products of qmat.h with the AArch64 dot product
 * instructions (sdot, Armv8.2's DotProd, found at run time): each group of
 * 64 weight bytes is four registers of four rows, each lane one row's four
 * products added to its int32 sum, so every lane is one row's S, exact. */
#include "qmat.h"

#if defined(__aarch64__) && defined(__GNUC__)
#include <arm_neon.h>
#include <string.h>
#include <sys/auxv.h>

#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif

#define T_DOT __attribute__((target("arch=armv8.2-a+dotprod")))
#define INLINE inline __attribute__((always_inline))

int lmz_qmm_sdot_ok(void)
{
    static int ok = -1;
    if (ok < 0) ok = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
    return ok;
}

static inline int32_t load4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static T_DOT INLINE void dot_tile(const lmz_qmat *w, size_t b, const int NB, const int8_t *p, size_t t, const int NT,
                                  const float *xs, float *y, size_t ldy)
{
    const size_t G = w->groups;
    int32x4_t acc[2][2][4]; /* block, token, quarter (rows 4c .. 4c + 3) */
    for (int i = 0; i < NB; i++)
        for (int j = 0; j < NT; j++)
            for (int c = 0; c < 4; c++) acc[i][j][c] = vdupq_n_s32(0);
    const int8_t *wb = w->q + b * G * 64, *pt = p + t * 4 * G;
    for (size_t g = 0; g < G; g++) {
        int8x16_t wv[2][4];
        for (int i = 0; i < NB; i++)
            for (int c = 0; c < 4; c++) wv[i][c] = vld1q_s8(wb + ((size_t)i * G + g) * 64 + 16 * (size_t)c);
        for (int j = 0; j < NT; j++) {
            int8x16_t xv = vreinterpretq_s8_s32(vdupq_n_s32(load4(pt + (size_t)j * 4 * G + 4 * g)));
            for (int i = 0; i < NB; i++)
                for (int c = 0; c < 4; c++) acc[i][j][c] = vdotq_s32(acc[i][j][c], wv[i][c], xv);
        }
    }
    for (int i = 0; i < NB; i++)
        for (int c = 0; c < 4; c++) {
            size_t r = (b + (size_t)i) * 16 + 4 * (size_t)c;
            if (r >= w->rows) break;
            float32x4_t sc = vld1q_f32(w->scale + r);
            for (int j = 0; j < NT; j++) {
                float32x4_t f = vcvtq_f32_s32(acc[i][j][c]);
                f = vmulq_f32(vmulq_f32(f, sc), vdupq_n_f32(xs[t + (size_t)j]));
                float *dst = y + (t + (size_t)j) * ldy + r;
                if (w->rows - r >= 4) {
                    vst1q_f32(dst, f);
                } else {
                    float tmp[4];
                    vst1q_f32(tmp, f);
                    memcpy(dst, tmp, (w->rows - r) * sizeof *dst);
                }
            }
        }
}

#define DOT_NT(NB)                                                                                                     \
    do {                                                                                                               \
        size_t t = 0;                                                                                                  \
        for (; t + 2 <= T; t += 2) dot_tile(w, b, NB, p, t, 2, xs, y, ldy);                                           \
        if (t < T) dot_tile(w, b, NB, p, t, 1, xs, y, ldy);                                                           \
    } while (0)

static T_DOT void dot_run(const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, const float *xs, size_t T,
                          float *y, size_t ldy)
{
    size_t b = b0;
    for (; b + 2 <= b1; b += 2) DOT_NT(2);
    for (; b < b1; b++) DOT_NT(1);
}

int lmz_qmm_sdot(const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, const float *xs, size_t T, float *y,
                 size_t ldy)
{
    if (!lmz_qmm_sdot_ok()) return 0;
    dot_run(w, b0, b1, p, xs, T, y, ldy);
    return 1;
}

#else

int lmz_qmm_sdot_ok(void) { return 0; }
int lmz_qmm_sdot(const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, const float *xs, size_t T, float *y,
                 size_t ldy)
{
    (void)w, (void)b0, (void)b1, (void)p, (void)xs, (void)T, (void)y, (void)ldy;
    return 0;
}

#endif
