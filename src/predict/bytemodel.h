/*
 * bytemodel.h — the byte-level context-mixing model (model "none", profile
 * "int-v1").
 *
 * Predicts one bit at a time, most significant bit first, from:
 *   - orders 0 and 1: direct adaptive counters (bits so far of the byte;
 *     previous byte + bits so far);
 *   - orders 2, 3, 4, 6, the current word and the current + previous word:
 *     8-bit bit-history states in a hashed table of 16-byte slots (a check
 *     byte + the 15 nodes of a nibble's bit tree, four slots per cache line),
 *     each history mapped to a probability by an adaptive state map;
 *   - a match model: the byte that followed the last occurrence of the
 *     current 6-byte context, with a confidence learned per match length;
 *   - three logistic mixers (weight sets chosen by the partial byte, by the
 *     match state and bit position, by the previous byte and bit position)
 *     and a final mixer over their outputs;
 *   - two adaptive probability maps (partial byte; previous byte + partial
 *     byte), averaged with the mixer output.
 * Everything is integer arithmetic, so the same input gives the same bits on
 * every machine and compiler; an AVX2 clone of the coding loops is chosen at
 * run time and computes the same integers. The only setting that changes
 * probabilities is the hash table size, derived from the frame length and
 * the header's table_bits by lmz_bytemodel_table_bits(). Any change that
 * alters one probability needs a new profile id (docs/FORMAT.md).
 */
#ifndef LMZ_BYTEMODEL_H
#define LMZ_BYTEMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "../codec/rangecoder.h"

#define LMZ_BM_TABLE_BITS_MIN     12
#define LMZ_BM_TABLE_BITS_MAX     24   /* 2^24 slots of 16 bytes = 256 MiB */
#define LMZ_BM_TABLE_BITS_DEFAULT 22   /* 64 MiB for frames of 2 MiB and more */

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

#endif
