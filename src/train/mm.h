/*
 * mm.h — the trainer's matrix products in bf16 through oneDNN.
 *
 * The network keeps its parameters, gradients and optimizer moments in
 * float; a bf16 product rounds its two inputs to bf16 (round to nearest
 * even) as it reads them and sums in float, writing float. oneDNN picks the
 * kernel for the CPU: AMX tiles where the CPU has AMX-BF16, AVX512-BF16 dot
 * products where it has those. The float path is OpenBLAS (net.c).
 *
 * Built with oneDNN when the Makefile finds libdnnl-dev (DSRN_DNNL); without
 * it, bf16 is refused with a message.
 */
#ifndef LMZ_TRAIN_MM_H
#define LMZ_TRAIN_MM_H

#include <stddef.h>

typedef enum { DSRN_MM_F32, DSRN_MM_BF16 } dsrn_mm_kind;

/* "auto", "bf16" or "f32". auto: bf16 where the CPU has AMX-BF16 or
 * AVX512-BF16, else f32. bf16 asked for on a CPU without either is refused
 * (oneDNN would emulate it, slower than f32). @return 0, or -1 with a
 * message. */
int dsrn_mm_choose(const char *name, dsrn_mm_kind *kind, char *err, size_t errlen);

/* whether bf16 products run natively here (and oneDNN is built in) */
int dsrn_mm_bf16_native(void);

/* What the products run on, e.g. "bf16 (oneDNN 2.6.3, brg:avx512_core_bf16)"
 * or "f32 (OpenBLAS)": for the start-up line and the model's metadata. */
const char *dsrn_mm_describe(dsrn_mm_kind kind);

/* C (M, N) = op(A) op(B), or C += that when accumulate; row-major floats,
 * op(X) = X or its transpose (ta, tb); the inputs rounded to bf16, the sums
 * in float. A oneDNN failure (out of memory) ends the program with a
 * message. */
void dsrn_mm_bf16(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                  int accumulate, float *C, int ldc);

/* f to bf16, rounded to nearest even (NaN stays NaN) */
unsigned short dsrn_bf16(float f);

/* Frees the cached primitives and buffers (at exit; the next product makes
 * them again). */
void dsrn_mm_release(void);

#endif
