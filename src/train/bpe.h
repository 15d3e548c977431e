/*
 * bpe.h — train a byte-level BPE tokenizer (GPT-2 style) on a corpus.
 *
 * The corpus is cut into words by GPT-2's pre-tokeniser; every word starts
 * as its bytes (256 byte tokens, so any byte string has a tokenisation);
 * then, until the vocabulary is full, the most frequent adjacent pair of
 * tokens over all words (ties: the pair of lower ids) is merged into a new
 * token. A pair whose bytes already make a token reuses it. The vocabulary
 * ends with one control token, "<|endoftext|>", the end-of-document mark
 * (BOS and EOS). Written as GGUF tokenizer metadata (tokenizer.ggml.model
 * "gpt2", pre "gpt2"), which lmz_tokenizer_load reads.
 */
#ifndef LMZ_BPE_H
#define LMZ_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "model/gguf.h"
#include "train/corpus.h"

#define LMZ_BPE_MIN_VOCAB 258u
#define LMZ_BPE_MAX_VOCAB (1u << 20)

typedef struct {
    uint32_t vocab;   /* tokens in all, LMZ_BPE_MIN_VOCAB..LMZ_BPE_MAX_VOCAB */
    int verbose;      /* progress on stderr */
} lmz_bpe_opts;

typedef struct {
    uint32_t n_tokens, n_merges;
    uint64_t n_words, n_unique_words;
} lmz_bpe_stats;

/* Train on every document of c and add the tokenizer.* keys to w.
 * @return 0, or -1 with a message. The vocabulary may come out smaller than
 * asked when no pair occurs twice any more (stats says). */
int lmz_bpe_train(const lmz_corpus *c, const lmz_bpe_opts *o, lmz_gguf_writer *w, lmz_bpe_stats *stats,
                  char *err, size_t errlen);

#endif
