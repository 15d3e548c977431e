/*
 * qmat.h — exact integer matrix products (profile det-i8-v1,
 * docs/DETERMINISM.md).
 *
 * A weight matrix (rows x n) is quantized once, at load, row by row:
 *   amax_r = max |w_rk| over the row (the weights as exact floats);
 *   s_r    = amax_r / 127             (one binary32 division; 0 when amax_r is 0);
 *   q_rk   = rne(w_rk * (127 / amax_r)), clamped to [-127, 127]
 * where 127 / amax_r is one binary32 division, the product one binary32
 * multiplication and rne rounds to the nearest integer, ties to even (a
 * NaN becomes 0). Activations x (T tokens x n) are quantized the same way,
 * token by token (a scale x_t, integers p_tk), each time a product runs.
 *
 * Then y[t][r] = ((float)S * s_r) * x_t, with S = sum over k of q_rk * p_tk:
 * an int32 sum, exact (|S| <= 127 * 127 * n < 2^31 for n <= 2^16), so its
 * order does not matter and every path below gives the same S; (float)S
 * rounds to nearest even, then two binary32 multiplications in that order.
 * Matrices with n > 2^16 are refused (lmz_qmat_init).
 *
 * Layout, made for the vector units: rows go in blocks of 16, the input in
 * groups of 4; block b, group g holds 64 bytes, row i's four values at
 * 4 i .. 4 i + 3 (one AVX512-VNNI vpdpbusd, four NEON sdot lanes, two AVX2
 * registers). Rows past the end and the input past n are zeros.
 *
 * Paths (chosen with the float kernels' path, kernels.h): scalar (the
 * reference: plain int32 sums); avx2 (vpsignb to make the activations'
 * magnitudes unsigned, vpmaddubsw whose pair sums reach at most
 * 2 * 127 * 127 < 2^15, so never saturate, vpmaddwd to int32); avx512
 * (vpdpbusd where the CPU has AVX512-VNNI, with the activations offset by
 * 128 to make them unsigned and 128 times the row's sum taken off after;
 * else the avx2 kernel); neon (sdot where the CPU has the dot product
 * instructions, else the scalar loop).
 */
#ifndef LMZ_QMAT_H
#define LMZ_QMAT_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

#define LMZ_QMAT_MAX_N (1u << 16)

typedef struct {
    size_t n, rows;   /* input length, output rows */
    size_t groups;    /* ceil(n / 4) */
    size_t blocks;    /* ceil(rows / 16) */
    int8_t *q;        /* (blocks, groups, 16, 4) */
    float *scale;     /* (blocks * 16): s_r, 0 past rows */
    int32_t *rowsum;  /* (blocks * 16): sum of q_rk over k (the VNNI offset's correction) */
} lmz_qmat;

/* Quantize a matrix given row by row: row(ctx, r, out) writes row r's n
 * floats (exactly as the model has them); scratch holds n floats. The
 * reference, scalar. @return 0, or -1 (out of memory, or n beyond
 * LMZ_QMAT_MAX_N). */
int lmz_qmat_init(lmz_qmat *w, size_t rows, size_t n, void (*row)(void *ctx, size_t r, float *out), void *ctx,
                  float *scratch);

/* The same in parts, for threads: lmz_qmat_alloc (zeroed; @return 0 or -1,
 * as above), then lmz_qmat_rows for disjoint ranges of rows, each with its
 * own scratch of n floats and n bytes (5 n bytes, float-aligned), on path kp
 * (the scale and the rounding vectorised: the same bytes as lmz_qmat_init). */
int lmz_qmat_alloc(lmz_qmat *w, size_t rows, size_t n);
void lmz_qmat_rows(lmz_kpath kp, lmz_qmat *w, size_t r0, size_t r1, void (*row)(void *ctx, size_t r, float *out),
                   void *ctx, void *scratch);
void lmz_qmat_free(lmz_qmat *w);

/* Row r (< w->rows) from its n integers q, already quantized, and its
 * scale s: into the blocked layout above, with its sum. */
void lmz_qmat_set_row(lmz_qmat *w, size_t r, const int8_t *q, float s);

/* The rounding rule above: rne(v * inv) clamped to [-127, 127], NaN -> 0. */
int8_t lmz_q8_round(float v, float inv);

/* Quantize activations: x (T x n floats) -> p (T x 4 * groups int8, zero
 * padded), xs (T scales); the same bits on every path. */
void lmz_qact(lmz_kpath kp, const float *x, size_t T, size_t n, size_t groups, int8_t *p, float *xs);

/* y[t * ldy + r] for the rows of blocks [b0, b1) (rows past w->rows are
 * not written) and every token t < T: the product above. p and xs as
 * lmz_qact made them. */
void lmz_qmm(lmz_kpath kp, const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, const float *xs, size_t T,
             float *y, size_t ldy);

/* the name of the integer kernel kp runs on this CPU (scalar, avx2,
 * avx512-vnni, neon-dot) */
const char *lmz_qmm_name(lmz_kpath kp);

/* path implementations (qmat_x86.c, qmat_neon.c); each returns 0 when the
 * CPU lacks what it needs */
/* one token's quantization, x (n) -> p (n) with the given 127 / amax, and
 * amax itself (NaN ignored); the vector paths of both, 0 if the CPU lacks it */
int lmz_qact_amax_x86(const float *x, size_t n, float *amax);
int lmz_qact_round_x86(const float *x, size_t n, float inv, int8_t *p);
int lmz_qmm_avx2(const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, const float *xs, size_t T, float *y,
                 size_t ldy);
int lmz_qmm_vnni(const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, const float *xs, size_t T, float *y,
                 size_t ldy);
int lmz_qmm_vnni_ok(void);
/* AMX-INT8 tiles (tdpbssd), where the CPU has them and Linux grants the
 * process the tile state (asked for once, by lmz_qmm_amx_ok) */
int lmz_qmm_amx(const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, const float *xs, size_t T, float *y,
                size_t ldy);
int lmz_qmm_amx_ok(void);
int lmz_qmm_sdot(const lmz_qmat *w, size_t b0, size_t b1, const int8_t *p, const float *xs, size_t T, float *y,
                 size_t ldy);
int lmz_qmm_sdot_ok(void);

#endif
