/*
 * bytemodel.h — the byte-level context-mixing model (model "none").
 *
 * Predicts one bit at a time (most significant bit first) from:
 *   order-0 and order-1 direct counters; orders 2, 3, 4, 5, 6, 8 and two word
 *   contexts through one hashed table of 64-byte slots (a slot holds the 15
 *   counters of one nibble's bit tree); a match model for long repeats;
 *   three logistic mixers with different weight-set selectors and a final
 *   mixer over them; two adaptive probability maps (APM/SSE).
 * Everything is integer arithmetic, so the same input gives the same bits on
 * every machine and compiler. The only setting that changes probabilities is
 * the hash table size, derived from the frame length and the header's
 * `table_bits_max` by lmz_bytemodel_table_bits().
 */
#ifndef LMZ_BYTEMODEL_H
#define LMZ_BYTEMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "../codec/rangecoder.h"

#define LMZ_BM_TABLE_BITS_MIN     12
#define LMZ_BM_TABLE_BITS_MAX     24   /* 2^24 slots of 64 bytes = 1 GiB */
#define LMZ_BM_TABLE_BITS_DEFAULT 22   /* 256 MiB for frames of 1 MiB and more */

typedef struct lmz_bytemodel lmz_bytemodel;

/* log2 of the slot count used for a frame of `len` bytes. */
unsigned lmz_bytemodel_table_bits(size_t len, unsigned table_bits_max);

/* Bytes of memory a model with that table size allocates. */
size_t lmz_bytemodel_mem(unsigned table_bits);

/* @return a fresh model, or NULL when memory is short. Owned by the caller. */
lmz_bytemodel *lmz_bytemodel_create(unsigned table_bits);
void lmz_bytemodel_free(lmz_bytemodel *m);

/* Code src[0..n) with the model. The model must be fresh. */
void lmz_bytemodel_encode(lmz_bytemodel *m, lmz_rc_enc *rc,
                          const uint8_t *src, size_t n);

/* Decode n bytes into dst[0..n); never writes outside it, whatever the input.
 * Damage shows up in the decoder's flags and in the frame checksum. */
void lmz_bytemodel_decode(lmz_bytemodel *m, lmz_rc_dec *rc, uint8_t *dst,
                          size_t n);

/* For experiments and the ablation benchmark: total cost in bits of coding
 * src with the model (no output). */
double lmz_bytemodel_cost(lmz_bytemodel *m, const uint8_t *src, size_t n);

#endif
