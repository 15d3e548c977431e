/*
 * kernels.h — deterministic dot products and matrix products (profile
 * det-f32-v1, docs/DETERMINISM.md).
 *
 * One dot product of length n between a weight row (F32, F16, BF16 or Q8_0,
 * GGUF block layout) and F32 activations is defined as:
 *   - weights are converted to float exactly (F16 and BF16 widen; a Q8_0
 *     value is its block scale times its int8, a product that is exact);
 *   - 16 partial sums: element k goes to lane k mod 16, lane by lane in
 *     increasing k, each step one fmaf (lane = fmaf(w, x, lane)), lanes
 *     start at +0;
 *   - the lanes are added as a fixed tree: l[j] + l[j+8] (j < 8), then
 *     + [j+4] (j < 4), then + [j+2] (j < 2), then [0] + [1].
 * The scalar reference does exactly that; the AVX2 path holds the 16 lanes
 * in two registers, the AVX-512 path in one; missing tail elements are
 * zeros, which leave a lane unchanged (a lane is never -0). So every path
 * gives the same bits, whatever the shape. Threads split rows or tokens,
 * never one sum.
 */
#ifndef LMZ_KERNELS_H
#define LMZ_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "types.h"

typedef enum {
    LMZ_KPATH_SCALAR = 0,
    LMZ_KPATH_AVX2 = 1,
    LMZ_KPATH_AVX512 = 2,
    LMZ_KPATH_NEON = 3,
    LMZ_KPATH_AMX = 4, /* the AVX-512 float kernels; integer products on AMX tiles (qmat.h) */
    LMZ_KPATH_COUNT
} lmz_kpath;

/* Whether p runs the AVX-512 float kernels (avx512, and amx, whose float
 * work is AVX-512's). */
static inline int lmz_kpath_avx512(lmz_kpath p) { return p == LMZ_KPATH_AVX512 || p == LMZ_KPATH_AMX; }

const char *lmz_kpath_name(lmz_kpath p);
int lmz_kpath_supported(lmz_kpath p);

/* The path to use: LMZIP_KERNELS=scalar|avx2|avx512|amx|neon|auto (default
 * auto: the widest this CPU has; amx only where the CPU has AMX-INT8 and
 * Linux grants the process its tile state). @return 0, or -1 with a message when the variable
 * names an unknown path or one this CPU lacks. */
int lmz_kernels_select(lmz_kpath *out, char *err, size_t errlen);

/* Is this weight type computed by the kernels? */
int lmz_kernels_type_ok(uint32_t ggml_type);

/* One dot product as defined above. */
float lmz_dot(lmz_kpath p, const void *wrow, uint32_t type, const float *x, size_t n);

/* out[i] = lmz_dot(p, w, F32, x[i], n) for four activation vectors at once:
 * the weight row is loaded once for all four (same bits as four dots).
 * plain as for lmz_dot4x4_f32 (w and the four x). */
void lmz_dot4_f32(lmz_kpath p, const float *w, const float *const x[4], size_t n, float out[4], int plain);

/* y[t * ldy + r] = lmz_dot(p, w[r], F32, x[t], n) for r < rows, t < nx:
 * many weight rows against a few activation vectors (the ensemble's adaptive
 * head, one vector per stream), the same bits as those dots. Up to four
 * vectors go through the path's tile together (lmz_dot_tile_f32: each row is
 * read once for them); one vector goes row by row, or with AVX-512 (n a multiple
 * of 16) sixteen rows at a time, sharing each load of x and meeting in one
 * transposing reduction. */
void lmz_dot_many_f32(lmz_kpath p, const float *const *w, size_t rows, const float *const *x, size_t nx, size_t n,
                      float *y, size_t ldy);

/* y[t*ldy + r] = dot(w[r], x[t]) for 4 F32 rows and 4 tokens (token-major,
 * as a matrix product stores them): each weight and activation vector is
 * loaded once for the whole tile (same bits as sixteen dots). plain = 1
 * promises that lmz_f32_has_tiny is false for every w and x row, so the
 * portable path skips that test (callers test each row once, not each
 * tile); 0 leaves it to the kernel. Other paths ignore it. */
void lmz_dot4x4_f32(lmz_kpath p, const float *const w[4], const float *const x[4], size_t n, float *y,
                    size_t ldy, int plain);

/* The rows one tile of lmz_dot_tile_f32 takes on path p: 3 with AVX2 (without
 * AVX-512), 4 on the other paths. */
size_t lmz_f32_tile_rows(lmz_kpath p);

/* y[t * ldy + r] = lmz_dot(p, w[r], F32, x[t], n) for r < lmz_f32_tile_rows(p)
 * and t < nx (1..4): the same bits as those dots. AVX2 has sixteen registers,
 * and the reference's 16 lanes take two of them a pair in one pass: its tile
 * is 3 rows x nx tokens in two passes of half the lanes (one register a pair);
 * the others take lmz_dot4x4_f32's tile for four tokens and lmz_dot4_f32 (four
 * rows against a token) for fewer. plain as for lmz_dot4x4_f32. */
void lmz_dot_tile_f32(lmz_kpath p, const float *const *w, const float *const *x, size_t nx, size_t n, float *y,
                      size_t ldy, int plain);

/* Whether v[0..n) holds a nonzero value below 2^-66 in magnitude (where the
 * portable path's fast sums would need a test of their own). */
int lmz_f32_has_tiny(const float *v, size_t n);

/* The indices i < n with x[i] >= t (an ordered comparison: a NaN is never
 * found), ascending, into idx: @return how many. A comparison has one answer
 * on every path. */
size_t lmz_find_ge(lmz_kpath p, const float *x, size_t n, float t, uint32_t *idx);

/* y[i] = lmz_expf(x[i]) (detmath.h), the same operations lane by lane. */
void lmz_exp_array(lmz_kpath p, const float *x, float *y, size_t n);

/* x[i] -= mx (in place), y[i] = lmz_expf(x[i]); @return the sum of y in
 * eight binary64 partial sums, y[i] going to sum i % 8 in index order, added
 * as ((0+1)+(2+3))+((4+5)+(6+7)): a softmax's exponentials and their sum in
 * one pass, the same bits on every path. For y >= 0 (x - mx <= 0, no NaN). */
double lmz_exp_shift_sum(lmz_kpath p, float *x, float mx, float *y, size_t n);

/* The total of eight binary64 lane sums, in the one order every fixed-order
 * sum over the vocabulary uses: ((0+1)+(2+3))+((4+5)+(6+7)). */
static inline double lmz_lanes8_total(const double a[8])
{
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* y[i] = fmaf(a, x[i], y[i]) for i < n (attention's weighted sums). */
void lmz_axpy(lmz_kpath p, float a, const float *x, float *y, size_t n);

/* o[h*os + d] = sum over j of w[h*ws + j] * v[j][d], as
 * o[d] = fmaf(w[j], v[j][d], o[d]) for j = 0, 1, ... from o[d] = +0 (the same
 * bits as count axpy calls), for nq weight vectors sharing the rows v (the
 * heads of one key/value group): each row is loaded once for all of them. */
void lmz_weighted_sum(lmz_kpath p, const float *w, size_t ws, size_t nq, const float *const *v,
                      size_t count, size_t n, float *o, size_t os);

/* The same for nh heads side by side in each row (head h's n values at
 * v[j] + h*n) and in o (at o + h*n), each with its weights w + h*ws: every
 * head's sums as lmz_weighted_sum computes them, the rows read once and the
 * heads' sums interleaved (independent chains of fused multiply-adds). */
void lmz_weighted_sum_heads(lmz_kpath p, const float *w, size_t ws, size_t nh, const float *const *v,
                            size_t count, size_t n, float *o);

/* out[h*ldo + j] = dot(key j, q + h*qs) over n elements, in the order of
 * lmz_dot, for 16 keys stored transposed (element d of key j at kt[16d + j])
 * and nq queries: attention scores of a block of the KV cache. */
void lmz_dot_keys16(lmz_kpath p, const float *kt, const float *q, size_t qs, size_t nq, size_t n,
                    float *out, size_t ldo);

/* A weight row as floats, exactly (F32 copies, F16/BF16 widen, Q8_0 d*q). */
void lmz_row_to_f32(lmz_kpath p, const void *wrow, uint32_t type, size_t n, float *out);


/* path implementations (kernels_avx2.c, kernels_avx512.c) */
float lmz_dot_avx2(const void *wrow, uint32_t type, const float *x, size_t n);
float lmz_dot_avx512(const void *wrow, uint32_t type, const float *x, size_t n);
void lmz_dot4_avx2(const float *w, const float *const x[4], size_t n, float out[4]);
void lmz_dot4_avx512(const float *w, const float *const x[4], size_t n, float out[4]);
void lmz_dot16_rows_avx512(const float *const w[16], const float *x, size_t n, float out[16]);
void lmz_dot4x4_avx2(const float *const w[4], const float *const x[4], size_t n, float *y, size_t ldy);
/* 3 rows x nx (1..4) tokens: lmz_dot_tile_f32's AVX2 tile */
void lmz_dot3_avx2(const float *const w[3], const float *const *x, size_t nx, size_t n, float *y, size_t ldy);
void lmz_dot4x4_avx512(const float *const w[4], const float *const x[4], size_t n, float *y, size_t ldy);
void lmz_axpy_avx2(float a, const float *x, float *y, size_t n);
void lmz_exp_array_avx512(const float *x, float *y, size_t n);
void lmz_exp_array_avx2(const float *x, float *y, size_t n);
size_t lmz_find_ge_avx512(const float *x, size_t n, float t, uint32_t *idx);
size_t lmz_find_ge_avx2(const float *x, size_t n, float t, uint32_t *idx);
double lmz_exp_shift_sum_avx512(float *x, float mx, float *y, size_t n);
double lmz_exp_shift_sum_avx2(float *x, float mx, float *y, size_t n);
int lmz_weighted_sum_avx512(const float *w, size_t ws, size_t nq, const float *const *v, size_t count, size_t n,
                            float *o, size_t os);
int lmz_weighted_sum_heads_avx512(const float *w, size_t ws, size_t nh, const float *const *v, size_t count,
                                  size_t n, float *o);
int lmz_weighted_sum_heads_avx2(const float *w, size_t ws, size_t nh, const float *const *v, size_t count,
                                size_t n, float *o);
int lmz_weighted_sum_avx2(const float *w, size_t ws, size_t nq, const float *const *v, size_t count, size_t n,
                          float *o, size_t os);
void lmz_dot_keys16_avx2(const float *kt, const float *q, size_t qs, size_t nq, size_t n, float *out, size_t ldo);
void lmz_dot_keys16_avx512(const float *kt, const float *q, size_t qs, size_t nq, size_t n, float *out, size_t ldo);
int lmz_row_to_f32_avx2(const void *wrow, uint32_t type, size_t n, float *out);
int lmz_row_to_f32_avx512(const void *wrow, uint32_t type, size_t n, float *out);
float lmz_dot_neon(const void *wrow, uint32_t type, const float *x, size_t n);
void lmz_dot4_neon(const float *w, const float *const x[4], size_t n, float out[4]);
void lmz_axpy_neon(float a, const float *x, float *y, size_t n);
void lmz_dot_keys16_neon(const float *kt, const float *q, size_t qs, size_t nq, size_t n, float *out, size_t ldo);

#endif
