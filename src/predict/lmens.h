/*
 * lmens.h — the token-level ensemble of the LM codec (profiles det-f32-v1,
 * det-f32-v2 and det-f32-v3).
 *
 * For each token of a stream it turns the model's logits into the integer
 * frequency table the range coder uses, from:
 *   - the model: softmax(logits + bias), where the bias is the adaptive
 *     log-space head, one gradient step of -log p per token (rate bias_lr);
 *     in profile 2 plus a context bias, a row of such biases per previous
 *     token (mod 16..1024 rows, 1/64 of the tokens), learnt the same way at
 *     twice the rate: it corrects the model where it is wrong in context;
 *   - a token n-gram of orders 1..4 over hashed contexts (buckets of seven
 *     (token, count) pairs), blended from low to high order with weight
 *     n/(n+5) (n = the context's count) over a uniform order 0;
 *   - a match model: the token that followed the last occurrence of the
 *     current 4-token context, with a hit rate learned per match length;
 *   - in profile 3 a second match model per stream, over the stream's own
 *     history only and 2-token contexts: the recent text of the same frame,
 *     which the shared table (whichever frame wrote a context last) misses;
 *   - a mixer learned online: LMZ_MIX_PROB, exponential weights in
 *     probability space (rate 0.5, start 0.85 model / 0.15 n-gram, the model
 *     alone for the first 100 tokens, as Nacrith); or LMZ_MIX_LOG, a weighted
 *     sum of the experts' log-probabilities, renormalised, the weights moved
 *     by the gradient of the code length, with offsets per context (n-gram
 *     order found, match length, from profile 2 the model's confidence, in
 *     profile 3 whether the stream's own match model predicts);
 *   - with part LMZ_ENS_HEAD, an adaptive output head: a matrix dW (vocab x
 *     the model's width) added to the model's output product, logits +
 *     dW h where h is the vector the model's own output product reads
 *     (lmz_model_prefill_hidden); after each token one gradient step of
 *     -log p on dW, normalised by |h|^2 (row v moves by rate (y_v - p_v) h /
 *     |h|^2, so the same h would see its logit v move by rate (y_v - p_v),
 *     as the bias head's), rate 0.3, on the rows of tokens that have come
 *     (in any stream of the ensemble) where their probability is at least
 *     1e-3, and on the token's own row; the rows of tokens that have not
 *     come stay zeros and correct nothing (nor cost time). Dynamic
 *     evaluation of the model's last layer, learnt online as the decoder
 *     can;
 *   - with part LMZ_ENS_NGTOP and the log mixer, the n-gram's highest order
 *     found as an expert of its own beside the blend (its counts with weight
 *     tot / (tot + 1) over a uniform rest), and the mixer's weight set chosen
 *     also by that order's determinism (several tokens in its bucket, one
 *     token seen once or twice, one seen three times or more): the blend
 *     cannot tell a context that always gave one token from one that gave
 *     several;
 *   - in profile 3, after the log mixer, an adaptive probability map on the
 *     most probable token (its probability by stretch bucket, in contexts of
 *     the match models' agreement and the model's confidence);
 *   - with part LMZ_ENS_CACHE (profile 4, with the head), a cache of the
 *     model's vectors: the vector h of each token learnt (in any stream of
 *     the ensemble, the last cache_rows of them) is kept, quantized
 *     to int8 as the integer products quantize activations (qmat.h), with
 *     the token that came after it. A prediction scores its own h against
 *     every kept one (exact int32 sums, times the scales and 1 / |h|: the
 *     cosine), and the kept tokens whose score is within 0.4 of the best
 *     share a distribution by exp(25 (score - best)); it is mixed into the
 *     final table with a weight learnt online per bucket of the best score
 *     (the gradient of the code length). What the model's state says
 *     resembles an earlier place in the text predicts what came there: a
 *     neural cache, which finds repeats that no exact context does.
 * Every number is float or double arithmetic in a fixed order with the
 * project's own exp and log, so encoder and decoder, on any machine, with
 * any kernel path, compute the same table. Any change to a probability needs
 * a new profile id.
 */
#ifndef LMZ_LMENS_H
#define LMZ_LMENS_H

#include <stddef.h>
#include <stdint.h>

/* parts (bits of lmz_ens_params.parts) */
#define LMZ_ENS_MODEL 1u
#define LMZ_ENS_NGRAM 2u
#define LMZ_ENS_BIAS  4u
#define LMZ_ENS_MATCH 8u
#define LMZ_ENS_HEAD  16u /* the adaptive output head (lmz_ens_set_dim) */
#define LMZ_ENS_NGTOP 32u /* the n-gram's top order as an expert of its own (log mixer) */
#define LMZ_ENS_REFINE 64u /* not the ensemble's: the bit coder's maps (det-f32-v4, det-i8-v1; src/codec/tokbits.h) */
#define LMZ_ENS_CACHE 128u /* the cache: the model's vectors of past tokens, the tokens that followed
                             the most similar (with the head; lmz_ens_set_dim) */
#define LMZ_ENS_ALL   255u
/* the cache's rows: vectors kept (a multiple of 16; lmz_ens_params.cache_rows) */
#define LMZ_ENS_CACHE_ROWS 65536u     /* the default */
#define LMZ_ENS_CACHE_ROWS_V07 32768u /* lmzip 0.7's (a stream that does not say) */
#define LMZ_ENS_CACHE_ROWS_MAX (1u << 20)
/* the adaptive head's learning rate (lmz_ens_params.head_lr; a stream that
 * does not say means this, the rate of lmzip 0.5 to 0.7) */
#define LMZ_ENS_HEAD_LR 0.3f

/* mixers */
#define LMZ_MIX_PROB 0u
#define LMZ_MIX_LOG  1u

#define LMZ_ENS_NGRAM_BITS_MIN 8
#define LMZ_ENS_NGRAM_BITS_MAX 24

/* arithmetic profiles (docs/DETERMINISM.md) */
#define LMZ_ENS_V1 1u /* det-f32-v1: sums over the vocabulary in index order */
#define LMZ_ENS_V2 2u /* det-f32-v2: the same sums in 8 interleaved partial sums */
#define LMZ_ENS_V3 3u /* det-f32-v3: v2 + each stream's own match model */
#define LMZ_ENS_V4 4u /* det-f32-v4: v3's tables, each token coded bit by bit with the
                         byte model (src/codec/tokbits.h); the ensemble is v3's */

typedef struct {
    unsigned profile;    /* LMZ_ENS_V1 .. LMZ_ENS_V4 */
    unsigned parts;      /* LMZ_ENS_* */
    unsigned mixer;      /* LMZ_MIX_* */
    unsigned ngram_bits; /* buckets per order at most 2^ngram_bits (32 bytes each) */
    unsigned cdf_bits;   /* frequency total 2^cdf_bits, 16..24 */
    float bias_lr;       /* learning rate of the bias head */
    float mix_lr;        /* learning rate of the log mixer */
    uint32_t skip_mbits; /* confidence skip: when the n-gram and match model's
                            blend has an entropy below skip_mbits / 1000
                            bits, the token is coded without the model
                            (0: never; at most 16000) */
    uint32_t cache_rows; /* the cache's rows (16 .. LMZ_ENS_CACHE_ROWS_MAX, a multiple of 16) */
    float head_lr;       /* learning rate of the adaptive head (0 .. 4) */
} lmz_ens_params;

/* Defaults: profile 4, all parts, log mixer, 2^20 buckets, 24-bit tables, rates. */
void lmz_ens_params_default(lmz_ens_params *p);
/* @return 0 when every field is in range */
int lmz_ens_params_check(const lmz_ens_params *p, uint32_t vocab);

/* An ensemble codes one or more streams (the frames of a group) with shared
 * statistics: one bias head, one mixer, one set of n-gram tables and one
 * match table, which points into every stream's history. The order of the
 * calls is part of the format: with several streams, the coder predicts
 * the next token of every active stream from the same state, then learns
 * them in stream order (what the lockstep decoder can do). With one stream
 * it is the plain predict, update, predict... of one frame alone. */
typedef struct lmz_ens lmz_ens;

#define LMZ_ENS_STREAMS_MAX 64

/* `streams` streams (1 .. LMZ_ENS_STREAMS_MAX), stream i of at most
 * max_tokens[i] tokens, over a vocabulary of `vocab`. Tables are sized for
 * all the tokens together (never above ngram_bits). NULL when memory is
 * short or a value is out of range. */
lmz_ens *lmz_ens_new(const lmz_ens_params *p, uint32_t vocab, size_t streams, const size_t *max_tokens);
void lmz_ens_free(lmz_ens *e);

/* For tests: 0 makes lmz_ens_predict take its passes over the vocabulary one
 * by one, as profile 1 does, instead of fused (the default); the bits are
 * the same either way. */
void lmz_ens_set_fused(lmz_ens *e, int on);
/* Whether lmz_ens_predict takes the fused passes here (the profile, the
 * mixer and the machine's kernels allow them, and they are on). */
int lmz_ens_fused(const lmz_ens *e);

/* The adaptive head (part LMZ_ENS_HEAD) needs the model's width: called
 * once after lmz_ens_new by every ensemble whose parts hold it (the head is
 * absent without, and then the part changes nothing). @return 0, or -1 when
 * memory is short. */
int lmz_ens_set_dim(lmz_ens *e, uint32_t dim);

/* Does an ensemble of these parameters keep the cache: part LMZ_ENS_CACHE
 * with the adaptive head (which needs the model), profile 4? */
int lmz_ens_cache_on(const lmz_ens_params *p);

/* Whether stream s's next table will use the model's logits: 0 when the
 * confidence skip applies (decided from the past alone, so the decoder
 * decides the same), 1 otherwise. Optional before lmz_ens_predict. */
int lmz_ens_wants_model(lmz_ens *e, size_t s);
/* Tokens coded so far without the model, all streams. */
uint64_t lmz_ens_skipped(const lmz_ens *e);

/* The table for stream s's next token: cum[0..vocab] (cum[vocab] =
 * 2^cdf_bits). logits (vocab floats) may be NULL when the parts have no
 * model or lmz_ens_wants_model said 0 (they are ignored then). The pointer
 * stays valid until the stream's next call. lmz_ens_wants_model and
 * lmz_ens_predict of different streams may run at the same time (they
 * write only their stream's scratch); not at the same time as an update. */
const uint32_t *lmz_ens_predict(lmz_ens *e, size_t s, const float *logits);
/* The same with the model's vector behind the logits (lmz_model_dim floats;
 * NULL: none, and the head leaves this token alone), which the adaptive
 * head needs. */
const uint32_t *lmz_ens_predict_hidden(lmz_ens *e, size_t s, const float *logits, const float *hidden);

/* The masses of stream s's last table: freq[t] = cum[t + 1] - cum[t] of the
 * table lmz_ens_predict returned, valid as long as it is. */
const uint32_t *lmz_ens_freq(const lmz_ens *e, size_t s);

/* The adaptive head's part of a prediction, shared among threads (callers
 * with several streams: the head reads every row it has for each stream, and
 * this reads each row once for several). lmz_ens_head_begin(e, s, logits,
 * hidden) for each stream (different streams at the same time, as
 * lmz_ens_predict), then lmz_ens_head_rows for streams st[0..k) on
 * vocabulary entries [v0, v1) (disjoint ranges at the same time), which
 * rewrites the logits in place with the head's (no copy), then
 * lmz_ens_predict_hidden with the same pointers: the same table as without
 * these calls. Not at the same time as an update. */
void lmz_ens_head_begin(lmz_ens *e, size_t s, float *logits, const float *hidden);
void lmz_ens_head_rows(lmz_ens *e, const size_t *st, size_t k, uint32_t v0, uint32_t v1);
/* The head's work is in the rows of the tokens that have come: their count
 * in each block of LMZ_ENS_HEAD_BLOCK entries (the last block short), for
 * splitting lmz_ens_head_rows' work evenly (the commonest tokens have the
 * lowest numbers: contiguous halves of the vocabulary took 2 : 1 of the
 * time on alice29.txt); NULL without the head. Changed only by updates. */
#define LMZ_ENS_HEAD_BLOCK 64
const uint32_t *lmz_ens_head_come(const lmz_ens *e);
/* With the cache (part LMZ_ENS_CACHE), also lmz_ens_cache_rows for the
 * same streams on blocks [b0, b1) of the cache's rows (disjoint ranges at
 * the same time, together every block of lmz_ens_cache_blocks), after the
 * streams' lmz_ens_head_begin and before their lmz_ens_predict_hidden: the
 * similarities of each stream's vector to every row, read once for all. */
size_t lmz_ens_cache_blocks(const lmz_ens *e);
void lmz_ens_cache_rows(lmz_ens *e, const size_t *st, size_t k, size_t b0, size_t b1);

/* Compressing, where the model's vectors of several positions are known
 * before their tokens are coded, the same similarities with each row read
 * once for the queries of all those positions (the same bits):
 * lmz_ens_cache_ahead(e, hs, n) takes the queries of n vectors (hs[i] the
 * one the stream will give lmz_ens_head_begin, or NULL; n at most
 * lmz_ens_cache_ahead_max) and notes the rows the cache has; then
 * lmz_ens_cache_ahead_rows on blocks [b0, b1) of lmz_ens_cache_blocks
 * (disjoint ranges at the same time); then, at each position, after stream
 * s's lmz_ens_head_begin with vector hs[i], lmz_ens_cache_ahead_take(e, s,
 * i) instead of lmz_ens_cache_rows: query i's similarities, brought up to
 * date for the rows the cache has taken since. @return of
 * lmz_ens_cache_ahead_max: the queries the ensemble holds room for (0: no
 * cache). */
size_t lmz_ens_cache_ahead_max(lmz_ens *e);
void lmz_ens_cache_ahead(lmz_ens *e, const float *const *hs, size_t n);
void lmz_ens_cache_ahead_rows(lmz_ens *e, size_t b0, size_t b1);
void lmz_ens_cache_ahead_take(lmz_ens *e, size_t s, size_t i);

/* Learn the token that came in stream s (after its lmz_ens_predict); one
 * update at a time. @return 0, or -1 when the stream already holds its
 * max_tokens tokens. */
int lmz_ens_update(lmz_ens *e, size_t s, int32_t tok);

/* The same in two parts, for callers that share the vocabulary-wide part
 * among threads: lmz_ens_update_rows does the bias head's steps of streams
 * st[0..k) (tokens tok[0..k), in that order) on the vocabulary entries
 * [v0, v1) alone; calls on disjoint ranges may run at the same time. Once
 * every range is done, lmz_ens_update_rest(e, st[i], tok[i]) for i = 0..k-1
 * in order finishes each update. Each entry sees the same steps in the same
 * order as with lmz_ens_update: the same bits. */
void lmz_ens_update_rows(lmz_ens *e, const size_t *st, const int32_t *tok, size_t k, uint32_t v0, uint32_t v1);
int lmz_ens_update_rest(lmz_ens *e, size_t s, int32_t tok);

/* For explaining a coding (lmzip --explain), after lmz_ens_predict and
 * before the update: q[0..3] the probability each expert gave tok (model
 * with its bias head, n-gram, match model, the stream's own match model;
 * -1 where it took no part), and the table's three most probable tokens
 * with their probabilities, most probable first. */
void lmz_ens_explain(const lmz_ens *e, size_t s, int32_t tok, float q[4], int32_t top[3], float top_p[3]);

/* -log2 of the coded token's probability under stream s's last table (for
 * statistics and the overhead measurement). */
double lmz_ens_cost(const lmz_ens *e, size_t s, int32_t tok);
/* The same under the mixed probabilities before they became integers: the
 * ensemble's own cross-entropy, against which the coding overhead (table
 * rounding plus the range coder) is measured. */
double lmz_ens_cost_ideal(const lmz_ens *e, size_t s, int32_t tok);

#endif
