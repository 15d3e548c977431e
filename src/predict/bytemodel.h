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

#include "../common/rangecoder.h"

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
/* The same for streams only (lmz_bm_stream_*): it lacks the match table of
 * lmz_bytemodel_encode / _decode's stream, which must not be called on it. */
lmz_bytemodel *lmz_bytemodel_create_shared(unsigned table_bits);
void lmz_bytemodel_free(lmz_bytemodel *m);

/* Code src[0..n) with the model. The model must be fresh. */
void lmz_bytemodel_encode(lmz_bytemodel *m, lmz_rc_enc *rc,
                          const uint8_t *src, size_t n);

/* Decode n bytes into dst[0..n); never writes outside it, whatever the input.
 * Damage shows up in the decoder's flags (decoding stops at the first sign
 * of it: the rest of dst is then undefined) and in the frame checksum. */
void lmz_bytemodel_decode(lmz_bytemodel *m, lmz_rc_dec *rc, uint8_t *dst,
                          size_t n);

/* Chains: buffers coded one after another as if they were one (binary
 * frames of a language-model stream share a model this way). The first
 * call starts the chain as lmz_bytemodel_encode does; later calls go on
 * with every context and the match model over the bytes before. A chain
 * that would pass LMZ_BM_CHAIN_MAX bytes starts again before the buffer
 * (history and match table emptied, what the model learned kept), so its
 * memory stays bounded. _learn_next runs the model over bytes known to
 * both sides (no coded output). A model coded with _next must not be
 * passed to lmz_bytemodel_encode / _decode. @return 0, or -1 when memory
 * is short (the chain is then unusable). A damaged input ends decoding at
 * once, as lmz_bytemodel_decode does; the caller drops the stream. */
#define LMZ_BM_CHAIN_MAX (4u << 20)
int lmz_bytemodel_encode_next(lmz_bytemodel *m, lmz_rc_enc *rc, const uint8_t *src, size_t n);
int lmz_bytemodel_learn_next(lmz_bytemodel *m, const uint8_t *src, size_t n);
int lmz_bytemodel_decode_next(lmz_bytemodel *m, lmz_rc_dec *rc, uint8_t *dst, size_t n);

/* Streams over one shared model (profile det-f32-v4 mixes the byte model into
 * the coding of tokens, the text of a group's frames in lockstep): each
 * stream has its own history, place in the byte and match model; the hashed
 * table, counters, mixers and maps are the model's and learn from all. The
 * order of the calls across streams is part of the format. A stream starts
 * as lmz_bytemodel_encode does, with a virtual zero byte; `expect` (bytes the
 * stream will probably see) sizes its match table, and its history grows as
 * needed. A stream's predict and update alternate, one bit at a time, most
 * significant first; another stream's calls may come between them. */
typedef struct lmz_bm_stream lmz_bm_stream;
lmz_bm_stream *lmz_bm_stream_new(lmz_bytemodel *m, size_t expect);
void lmz_bm_stream_free(lmz_bm_stream *s);
/* P(next bit = 1) in units of 2^-12, 1..4095, with one more input to the
 * mixers than lmz_bytemodel_encode has: another model's stretch of the same
 * probability, st = ln(p / (1 - p)) * 256 (clamped to -2047..2047; 0: none,
 * and then the prediction is the frame coder's). Its weights start at 0. */
int lmz_bm_stream_predict(lmz_bytemodel *m, lmz_bm_stream *s, int st);
/* Learn the bit. @return 0, or -1 when memory is short. */
int lmz_bm_stream_update(lmz_bytemodel *m, lmz_bm_stream *s, int bit);
/* ln(p / (1 - p)) * 256 of a 12-bit probability, in -2047..2047 (the model's own table) */
int lmz_bm_stretch(int p12);

#endif
