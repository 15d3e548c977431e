/*
 * tokenizer.h — byte-level BPE (GPT-2 style) from GGUF tokenizer metadata.
 *
 * Reads tokenizer.ggml.model ("gpt2"), .pre ("gpt2"/"default", or "smollm":
 * every digit its own piece first), .tokens, .merges, .token_type and the
 * special ids. Encoding: the GPT-2 pre-tokeniser splits the text (UTF-8;
 * invalid bytes stand alone), each piece's bytes are mapped to GPT-2's
 * byte characters and merged by rank (lowest first, leftmost on ties), as
 * llama.cpp does, so the ids are the same as llama.cpp's.
 *
 * Unlike llama.cpp, nothing is ever lost: a byte the vocabulary has no token
 * for (SmolLM2 lacks 0x04, 0x06, 0x13, 0x14, 0x16, 0x1D) is written as an
 * escape: the escape token (the vocabulary's last control token that is not
 * BOS/EOS/UNK/PAD), then the tokens of the byte's two lowercase hex digits.
 * Plain text never produces control tokens, so decode(encode(x)) == x for
 * every byte string. Special-token text in the input is treated as text.
 */
#ifndef LMZ_TOKENIZER_H
#define LMZ_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct lmz_tokenizer lmz_tokenizer;

/* Build from a GGUF's metadata (copies what it needs; g may be closed after).
 * @return 0; LMZ_TOKENIZER_UNSUPPORTED for a well-formed tokenizer of a kind
 * not implemented (SentencePiece, other pre-tokenisers); -1 for a broken
 * one; a message in err either way. */
#define LMZ_TOKENIZER_UNSUPPORTED (-2)
int lmz_tokenizer_load(const lmz_gguf *g, lmz_tokenizer **out, char *err, size_t errlen);
void lmz_tokenizer_free(lmz_tokenizer *t);

uint32_t lmz_tokenizer_vocab_size(const lmz_tokenizer *t);
int32_t lmz_tokenizer_escape_id(const lmz_tokenizer *t); /* -1 if none */
int32_t lmz_tokenizer_bos(const lmz_tokenizer *t);       /* -1 if none */
int32_t lmz_tokenizer_eos(const lmz_tokenizer *t);

/* Encode text[0..n). Writes at most cap ids. @return the number of ids the
 * text needs (call again with a bigger buffer if above cap), or -1 when a
 * byte has no token and the vocabulary has no escape token. */
long lmz_tokenizer_encode(const lmz_tokenizer *t, const uint8_t *text, size_t n, int32_t *ids,
                          size_t cap);

/* The pre-tokeniser's pieces of text[0..n): writes at most cap byte
 * offsets, each where a piece ends. @return the number of pieces, or -1. */
long lmz_tokenizer_pieces(const lmz_tokenizer *t, const uint8_t *text, size_t n, size_t *ends, size_t cap);

/* The same pieces as GPT-2's pre-tokeniser makes, with no vocabulary (the
 * BPE trainer's words). */
long lmz_pretokenize_gpt2(const uint8_t *text, size_t n, size_t *ends, size_t cap);

/* Decode ids into out[0..cap). @return the number of bytes the ids stand
 * for (may be above cap), or -1 for an id out of range or a broken escape. */
long lmz_tokenizer_decode(const lmz_tokenizer *t, const int32_t *ids, size_t n, uint8_t *out,
                          size_t cap);

/* What each of ids[0..n) adds to lmz_tokenizer_decode's bytes, into
 * lens[0..n): an escape's byte counts for its last token (the escape and
 * the first hex digit add none); SPM's leading space is not counted.
 * @return 0, or -1 where decode would fail. */
int lmz_tokenizer_spans(const lmz_tokenizer *t, const int32_t *ids, size_t n, uint32_t *lens);

/* The bytes one token stands for (its text with GPT-2's byte map undone). */
const uint8_t *lmz_tokenizer_token_bytes(const lmz_tokenizer *t, int32_t id, size_t *len);

#endif
