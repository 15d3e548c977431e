/* qmat.c — quantization and the scalar reference of the integer products
 * (qmat.h), and the choice of path. */
#include "qmat.h"

#include "common/align.h"

#include <stdlib.h>
#include <string.h>

int8_t lmz_q8_round(float v, float inv)
{
    float r = v * inv;
    if (!(r == r)) return 0;
    if (r >= 127.0f) return 127;
    if (r <= -127.0f) return -127;
    /* |r| < 2^22: adding and taking off 1.5 * 2^23 rounds to an integer,
     * ties to even (binary32, default rounding; -ffp-contract=off keeps the
     * two operations apart) */
    float t = r + 12582912.0f;
    return (int8_t)(int)(t - 12582912.0f);
}

/* max |v| over n floats (NaN ignored), its scale and inverse; the maximum
 * is exact, so any order finds it */
static void scales(lmz_kpath kp, const float *v, size_t n, float *s, float *inv)
{
    float amax = 0;
    if ((kp != LMZ_KPATH_AVX2 && !lmz_kpath_avx512(kp)) || !lmz_qact_amax_x86(v, n, &amax))
        for (size_t k = 0; k < n; k++) {
            float a = v[k] < 0 ? -v[k] : v[k];
            if (a > amax) amax = a;
        }
    if (amax > 0 && amax <= 3.4e38f) {
        *s = amax / 127.0f;
        *inv = 127.0f / amax;
    } else { /* zero, or an infinity: nothing a product can use */
        *s = 0;
        *inv = 0;
    }
}

int lmz_qmat_alloc(lmz_qmat *w, size_t rows, size_t n)
{
    memset(w, 0, sizeof *w);
    if (n == 0 || n > LMZ_QMAT_MAX_N || rows == 0) return -1;
    w->n = n;
    w->rows = rows;
    w->groups = (n + 3) / 4;
    w->blocks = (rows + 15) / 16;
    w->q = lmz_zalloc64(w->blocks * w->groups * 64); /* each group on a cache line (qmat_x86.c) */
    w->scale = calloc(w->blocks * 16, sizeof *w->scale);
    w->rowsum = calloc(w->blocks * 16, sizeof *w->rowsum);
    if (!w->q || !w->scale || !w->rowsum) {
        lmz_qmat_free(w);
        return -1;
    }
    return 0;
}

void lmz_qmat_rows(lmz_kpath kp, lmz_qmat *w, size_t r0, size_t r1, void (*row)(void *ctx, size_t r, float *out),
                   void *ctx, void *scratch)
{
    const size_t n = w->n;
    float *x = scratch;
    int8_t *q = (int8_t *)(x + n);
    for (size_t r = r0; r < r1; r++) {
        row(ctx, r, x);
        float s, inv;
        scales(kp, x, n, &s, &inv);
        if ((kp != LMZ_KPATH_AVX2 && !lmz_kpath_avx512(kp)) || !lmz_qact_round_x86(x, n, inv, q))
            for (size_t k = 0; k < n; k++) q[k] = lmz_q8_round(x[k], inv);
        lmz_qmat_set_row(w, r, q, s);
    }
}

void lmz_qmat_set_row(lmz_qmat *w, size_t r, const int8_t *q, float s)
{
    const size_t n = w->n;
    int32_t sum = 0;
    for (size_t k = 0; k < n; k++) sum += q[k];
    w->rowsum[r] = sum;
    w->scale[r] = s;
    /* row r's four values of group g at 4 (r % 16) of the group's 64 bytes */
    int8_t *blk = w->q + r / 16 * w->groups * 64 + r % 16 * 4;
    for (size_t g = 0; g < n / 4; g++) memcpy(blk + g * 64, q + 4 * g, 4);
    for (size_t k = n / 4 * 4; k < n; k++) blk[k / 4 * 64 + k % 4] = q[k];
}

int lmz_qmat_init(lmz_qmat *w, size_t rows, size_t n, void (*row)(void *ctx, size_t r, float *out), void *ctx,
                  float *scratch)
{
    if (lmz_qmat_alloc(w, rows, n) != 0) return -1;
    for (size_t r = 0; r < rows; r++) { /* the reference: scalar, element by element */
        row(ctx, r, scratch);
        float s, inv;
        scales(LMZ_KPATH_SCALAR, scratch, n, &s, &inv);
        w->scale[r] = s;
        int8_t *blk = w->q + r / 16 * w->groups * 64 + r % 16 * 4;
        int32_t sum = 0;
        for (size_t k = 0; k < n; k++) {
            int8_t q = lmz_q8_round(scratch[k], inv);
            blk[k / 4 * 64 + k % 4] = q;
            sum += q;
        }
        w->rowsum[r] = sum;
    }
    return 0;
}

void lmz_qmat_free(lmz_qmat *w)
{
    free(w->q);
    free(w->scale);
    free(w->rowsum);
    memset(w, 0, sizeof *w);
}

void lmz_qact(lmz_kpath kp, const float *x, size_t T, size_t n, size_t groups, int8_t *p, float *xs)
{
    int x86 = kp == LMZ_KPATH_AVX2 || lmz_kpath_avx512(kp);
    for (size_t t = 0; t < T; t++, x += n, p += 4 * groups) {
        float inv;
        scales(kp, x, n, &xs[t], &inv);
        if (!x86 || !lmz_qact_round_x86(x, n, inv, p))
            for (size_t k = 0; k < n; k++) p[k] = lmz_q8_round(x[k], inv);
        memset(p + n, 0, 4 * groups - n);
    }
}

/* the reference: plain int32 sums */
static void qmm_scalar(const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, const float *xs, size_t T, float *y,
                       size_t ldy)
{
    const size_t G = w->groups;
    for (size_t b = b0; b < b1; b++) {
        const int8_t *blk = w->q + b * G * 64;
        for (size_t i = 0; i < 16 && b * 16 + i < w->rows; i++) {
            size_t r = b * 16 + i;
            for (size_t t = 0; t < T; t++) {
                const int8_t *pt = p + t * 4 * G;
                int32_t S = 0;
                for (size_t g = 0; g < G; g++)
                    for (size_t j = 0; j < 4; j++) S += (int32_t)blk[g * 64 + i * 4 + j] * (int32_t)pt[4 * g + j];
                y[t * ldy + r] = ((float)S * w->scale[r]) * xs[t];
            }
        }
    }
}

void lmz_qmm(lmz_kpath kp, const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, const float *xs, size_t T,
             float *y, size_t ldy)
{
    switch (kp) {
    case LMZ_KPATH_AMX:
        if (lmz_qmm_amx(w, b0, b1, p, xs, T, y, ldy)) return;
        /* fall through */
    case LMZ_KPATH_AVX512:
        if (lmz_qmm_vnni(w, b0, b1, p, xs, T, y, ldy)) return;
        /* AVX-512 without VNNI: the AVX2 kernel */
        /* fall through */
    case LMZ_KPATH_AVX2:
        if (lmz_qmm_avx2(w, b0, b1, p, xs, T, y, ldy)) return;
        break;
    case LMZ_KPATH_NEON:
        if (lmz_qmm_sdot(w, b0, b1, p, xs, T, y, ldy)) return;
        break;
    default: break;
    }
    qmm_scalar(w, b0, b1, p, xs, T, y, ldy);
}

const char *lmz_qmm_name(lmz_kpath kp)
{
    switch (kp) {
    case LMZ_KPATH_AMX: return lmz_qmm_amx_ok() ? "amx-int8" : lmz_qmm_vnni_ok() ? "avx512-vnni" : "avx2";
    case LMZ_KPATH_AVX512: return lmz_qmm_vnni_ok() ? "avx512-vnni" : "avx2";
    case LMZ_KPATH_AVX2: return "avx2";
    case LMZ_KPATH_NEON: return lmz_qmm_sdot_ok() ? "neon-dot" : "scalar";
    default: return "scalar";
    }
}
