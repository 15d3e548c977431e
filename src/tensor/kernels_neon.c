/* kernels_neon.c — the det-f32-v1 kernels with Advanced SIMD (AArch64): the
 * 16 lanes of kernels.h in four 4-float registers (lanes 0-3, 4-7, 8-11,
 * 12-15); vfmaq_f32 is the same correctly rounded fused operation as fmaf.
 * Tails run lane by lane with fmaf, so lanes past the end are untouched. */
#include "kernels.h"

#if defined(__aarch64__) && defined(__GNUC__)
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "types.h"

/* l[j] + l[j+8], then + [j+4], + [j+2], [0] + [1]: the reference tree */
static float reduce(float32x4_t l0, float32x4_t l1, float32x4_t l2, float32x4_t l3)
{
    float32x4_t a0 = vaddq_f32(l0, l2), a1 = vaddq_f32(l1, l3); /* j = 0-3, 4-7 */
    float32x4_t b = vaddq_f32(a0, a1);                          /* j = 0-3 */
    float32x4_t c = vaddq_f32(b, vextq_f32(b, b, 2));           /* j = 0, 1 */
    return vgetq_lane_f32(c, 0) + vgetq_lane_f32(c, 1);
}

/* the rest of a sum from element k on, lane by lane (wt holds weights k..n-1) */
static float finish(float32x4_t l0, float32x4_t l1, float32x4_t l2, float32x4_t l3, const float *wt,
                    const float *x, size_t k, size_t n)
{
    if (k == n) return reduce(l0, l1, l2, l3);
    float l[16];
    vst1q_f32(l, l0);
    vst1q_f32(l + 4, l1);
    vst1q_f32(l + 8, l2);
    vst1q_f32(l + 12, l3);
    for (size_t i = k; i < n; i++) l[i & 15] = fmaf(wt[i - k], x[i], l[i & 15]);
    return reduce(vld1q_f32(l), vld1q_f32(l + 4), vld1q_f32(l + 8), vld1q_f32(l + 12));
}

/* four weights as floats, exactly */
static float32x4_t load_w4(const uint8_t *w, uint32_t type, size_t k)
{
    if (type == LMZ_GGML_F32) {
        float t[4];
        memcpy(t, w + 4 * k, sizeof t);
        return vld1q_f32(t);
    }
    uint16_t h[4];
    memcpy(h, w + 2 * k, sizeof h);
    uint16x4_t u = vld1_u16(h);
    if (type == LMZ_GGML_F16) return vcvt_f32_f16(vreinterpret_f16_u16(u));
    return vreinterpretq_f32_u32(vshll_n_u16(u, 16)); /* BF16 */
}

float lmz_dot_neon(const void *wrow, uint32_t type, const float *x, size_t n)
{
    const uint8_t *w = wrow;
    float32x4_t l0 = vdupq_n_f32(0.0f), l1 = l0, l2 = l0, l3 = l0;
    if (type == LMZ_GGML_Q8_0) {
        for (size_t b = 0; b < n / 32; b++) {
            const uint8_t *blk = w + 34 * b;
            float d = lmz_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
            for (int g = 0; g < 2; g++) { /* values 16g .. 16g+15 of the block: lanes 0-15 */
                int8x16_t q = vld1q_s8((const int8_t *)(const void *)(blk + 2 + 16 * g));
                int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_s8(vget_high_s8(q));
                const float *xb = x + 32 * b + 16 * g;
                l0 = vfmaq_f32(l0, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), d), vld1q_f32(xb));
                l1 = vfmaq_f32(l1, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo))), d), vld1q_f32(xb + 4));
                l2 = vfmaq_f32(l2, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), d), vld1q_f32(xb + 8));
                l3 = vfmaq_f32(l3, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi))), d), vld1q_f32(xb + 12));
            }
        }
        return reduce(l0, l1, l2, l3);
    }
    if (type != LMZ_GGML_F32 && type != LMZ_GGML_F16 && type != LMZ_GGML_BF16) return NAN;
    size_t k = 0;
    for (; k + 16 <= n; k += 16) {
        l0 = vfmaq_f32(l0, load_w4(w, type, k), vld1q_f32(x + k));
        l1 = vfmaq_f32(l1, load_w4(w, type, k + 4), vld1q_f32(x + k + 4));
        l2 = vfmaq_f32(l2, load_w4(w, type, k + 8), vld1q_f32(x + k + 8));
        l3 = vfmaq_f32(l3, load_w4(w, type, k + 12), vld1q_f32(x + k + 12));
    }
    if (k == n) return reduce(l0, l1, l2, l3);
    float wt[16];
    for (size_t i = k; i < n; i++) {
        if (type == LMZ_GGML_F32) memcpy(&wt[i - k], w + 4 * i, 4);
        else {
            uint16_t h = (uint16_t)(w[2 * i] | w[2 * i + 1] << 8);
            wt[i - k] = type == LMZ_GGML_F16 ? lmz_f16_to_f32(h) : lmz_bf16_to_f32(h);
        }
    }
    return finish(l0, l1, l2, l3, wt, x, k, n);
}

void lmz_dot4_neon(const float *w, const float *const x[4], size_t n, float out[4])
{
    float32x4_t l[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) l[i][j] = vdupq_n_f32(0.0f);
    size_t k = 0;
    for (; k + 16 <= n; k += 16)
        for (int j = 0; j < 4; j++) {
            float32x4_t wv = vld1q_f32(w + k + 4 * j);
            for (int i = 0; i < 4; i++) l[i][j] = vfmaq_f32(l[i][j], wv, vld1q_f32(x[i] + k + 4 * j));
        }
    for (int i = 0; i < 4; i++) out[i] = finish(l[i][0], l[i][1], l[i][2], l[i][3], w + k, x[i], k, n);
}

void lmz_axpy_neon(float a, const float *x, float *y, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
    for (; i < n; i++) y[i] = fmaf(a, x[i], y[i]);
}

/* lane l of the reference for four keys (one per lane of the register) */
static float32x4_t keys_lane4(const float *kt, const float *q, size_t n, size_t l)
{
    float32x4_t a = vdupq_n_f32(0.0f);
    for (size_t k = l; k < n; k += 16) a = vfmaq_n_f32(a, vld1q_f32(kt + 16 * k), q[k]);
    return a;
}

/* as lmz_dot_keys16: keys 0-3, 4-7, 8-11, 12-15 in four passes */
void lmz_dot_keys16_neon(const float *kt, const float *q, size_t qs, size_t nq, size_t n, float *out, size_t ldo)
{
    for (size_t h = 0; h < nq; h++)
        for (size_t quarter = 0; quarter < 4; quarter++) {
            const float *qh = q + h * qs, *kq = kt + 4 * quarter;
            float32x4_t s[8];
            for (size_t j = 0; j < 8; j++) s[j] = vaddq_f32(keys_lane4(kq, qh, n, j), keys_lane4(kq, qh, n, j + 8));
            float32x4_t u0 = vaddq_f32(vaddq_f32(s[0], s[4]), vaddq_f32(s[2], s[6]));
            float32x4_t u1 = vaddq_f32(vaddq_f32(s[1], s[5]), vaddq_f32(s[3], s[7]));
            vst1q_f32(out + h * ldo + 4 * quarter, vaddq_f32(u0, u1));
        }
}
#endif
