/*
 * tokbits.h — profile det-f32-v4: a token coded as the bits of its bytes,
 * the ensemble's table mixed with the byte model bit by bit.
 *
 * The vocabulary is sorted by the tokens' bytes, so the tokens that start
 * with given bytes (and, inside a byte, given bits) are one run of that
 * order. A token is coded by walking down: at each byte, when the run holds
 * tokens that end there and tokens that go on, a "stop" decision; then the
 * byte's 8 bits, most significant first, each splitting the run in two. The
 * ensemble's table gives every decision an exact probability (the masses of
 * the two parts of the run; a decision with one empty part is not coded), so
 * coding every decision with it alone costs what coding the token with the
 * table does. Each bit is also predicted by the byte model of
 * src/predict/bytemodel.h, which sees the stream's text byte by byte, and
 * the two predictions go through a small logistic mixer (weights by the
 * table's confidence, the bit's place, the first byte of a token or not)
 * before the range coder codes the bit with 16-bit probabilities. Tokens
 * with the same bytes (byte-fallback pieces) are told apart after their
 * stop by the table alone.
 *
 * All of it is integer arithmetic (tables built once with detmath), so every
 * machine computes the same bits. One lmz_tb serves the streams of a group:
 * the byte model and the mixer are shared, each stream has its own history;
 * the streams' tokens are coded in stream order, as the ensemble learns them.
 */
#ifndef LMZ_TOKBITS_H
#define LMZ_TOKBITS_H

#include <stddef.h>
#include <stdint.h>

#include "../model/tokenizer.h"
#include "../common/rangecoder.h"

/* The model's vocabulary of n tokens in the order of their bytes (made once
 * per model; ids the tokenizer does not know count as empty). */
typedef struct lmz_tb_vocab lmz_tb_vocab;
lmz_tb_vocab *lmz_tb_vocab_new(const lmz_tokenizer *t, uint32_t n);
/* The same from n byte strings (str[i] may be NULL: empty); the strings
 * must outlive the vocabulary. */
lmz_tb_vocab *lmz_tb_vocab_from(const uint8_t *const *str, const uint32_t *len, uint32_t n);
void lmz_tb_vocab_free(lmz_tb_vocab *v);

typedef struct lmz_tb lmz_tb;

/* A coder for `streams` streams, stream i expected to hold about
 * text_bytes[i] bytes of text (sizes its tables; the header's table_bits
 * caps the byte model's). With refine (ensemble part "refine", lmzip 0.6)
 * the mixer's probability of each decision is refined by adaptive maps
 * before it is coded: a bit's by two (the previous byte and the byte's bits
 * so far; those bits, the table's confidence and the bit's place in the
 * token), half the mixer's and a quarter each map's; a stop's by one (the
 * previous byte and the depth), half and half. NULL when memory is short. */
lmz_tb *lmz_tb_new(const lmz_tb_vocab *v, unsigned table_bits, size_t streams, const size_t *text_bytes, int refine);
/* the bytes the maps of refine take (one set per coder) */
size_t lmz_tb_refine_mem(void);
void lmz_tb_free(lmz_tb *h);

/* The work of stream s's next token that needs only its table cum: its
 * masses summed in the vocabulary's byte order. Optional (lmz_tb_encode and
 * lmz_tb_decode do it when it was not done); streams' calls may run at the
 * same time, on different threads, while their tokens are coded in order. */
void lmz_tb_prepare(lmz_tb *h, size_t s, const uint32_t *cum);
/* The same from the table's masses, freq[t] = cum[t + 1] - cum[t] (one load
 * a token fewer; the same sums). */
void lmz_tb_prepare_freq(lmz_tb *h, size_t s, const uint32_t *freq);

/* Code token tok of stream s with the ensemble's table cum[0..V] (total
 * 2^24 at most, every frequency at least 1). *bits (may be NULL) gains the
 * code length in bits. @return 0, or -1 when memory is short. */
int lmz_tb_encode(lmz_tb *h, size_t s, const uint32_t *cum, int32_t tok, lmz_rc_enc *rc, double *bits);

/* Decode stream s's next token. @return it, or -1 when memory is short.
 * Damaged input gives some token; the range decoder's flags tell. */
int32_t lmz_tb_decode(lmz_tb *h, size_t s, const uint32_t *cum, lmz_rc_dec *rc);

#endif
