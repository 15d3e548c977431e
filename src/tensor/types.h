/*
 * types.h — the element types of weight rows (ggml's numbering, as GGUF
 * files store them) and their exact conversions to float. The tensor
 * kernels compute with these; the GGUF reader (model/gguf.h) names and
 * sizes them.
 */
#ifndef LMZ_TENSOR_TYPES_H
#define LMZ_TENSOR_TYPES_H

#include <stddef.h>
#include <stdint.h>

/* ggml tensor types this project computes with (others are listed by
 * `dsrn info` but refused by the engine). F32; F16 (IEEE half); BF16 (the
 * top half of an F32); Q8_0: blocks of 32 elements, an F16 scale d then 32
 * int8 q, element = d * q (34 bytes a block). */
enum { LMZ_GGML_F32 = 0, LMZ_GGML_F16 = 1, LMZ_GGML_Q8_0 = 8, LMZ_GGML_BF16 = 30 };

/* exact conversions to float */
float lmz_f16_to_f32(uint16_t h);
float lmz_bf16_to_f32(uint16_t h);

/* the other way, for writing model files: to the nearest half (ties to
 * even; beyond the largest half, infinity; NaN stays NaN) */
uint16_t lmz_f32_to_f16(float f);
/* n floats (n a multiple of 32) as Q8_0 blocks: per block d = max|x| / 127
 * rounded to a half, q = x / d rounded to the nearest integer (ties away
 * from zero); out holds n / 32 * 34 bytes */
void lmz_quantize_q8_0(const float *x, size_t n, uint8_t *out);

#endif
