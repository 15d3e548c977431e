/*
 * model_impl.h — what every architecture shares behind model.h.
 *
 * An architecture's model struct begins with a struct lmz_model (its ops,
 * the parsed file, the tokenizer, the kernel path), its state struct with a
 * struct lmz_state; model.c parses the file (opened and mapped there, or a
 * caller's mapping: the codec's loaded model, lmz_model_load), loads the
 * tokenizer, and hands over to the architecture named by
 * general.architecture.
 */
#ifndef LMZ_MODEL_IMPL_H
#define LMZ_MODEL_IMPL_H

#include "model.h"
#include "tensor/kernels.h"
#include "tensor/qmat.h"

typedef struct {
    const char *arch;
    void (*free)(lmz_model *m);
    lmz_state *(*state_new)(const lmz_model *m);
    void (*state_free)(lmz_state *s);
    void (*state_reset)(lmz_state *s);
    /* dst (a state of the same model) becomes src: the same history */
    void (*state_copy)(lmz_state *dst, const lmz_state *src);
    /* tokens are checked against the vocabulary before these run */
    int (*prefill)(lmz_model *m, lmz_state *s, const int32_t *tokens, size_t n, float *logits, float *hidden);
    /* need: NULL, or which streams want logits (the others' rows are left
     * out of the output product, and logits holds the wanted rows in order) */
    int (*step)(lmz_model *m, lmz_state **states, const int32_t *tokens, size_t k, float *logits,
                const uint8_t *need, float *hidden);
    /* hidden (NULL: not wanted): the output norm's result, the output
     * product's input, a row of `dim` floats beside each row of logits */
    /* passes over rows of several states, for lmz_model_prefill_many (NULL:
     * one prefill after the other): pass_reserve makes room for B rows,
     * pass_row names row b's state and position, pass_run computes rows
     * 0 .. B-1 (tokens, then logits and hidden as prefill writes them),
     * each exactly as in the state's own prefill; at most pass_per rows of
     * one state a pass (what its KV ring allows) */
    int (*pass_reserve)(lmz_model *m, size_t B);
    void (*pass_row)(lmz_model *m, size_t b, lmz_state *s, uint64_t pos);
    void (*pass_run)(lmz_model *m, const int32_t *tokens, size_t B, float *logits, float *hidden);
    size_t pass_per;
} lmz_model_ops;


struct lmz_model {
    const lmz_model_ops *ops;
    lmz_gguf g;
    lmz_tokenizer *tok;          /* NULL: not a kind we implement (tok_note says) */
    char tok_note[160];
    lmz_kpath kp;
    uint32_t n_vocab;
    uint32_t dim;                /* width of the output product's input (lmz_model_dim) */
    uint32_t window;             /* llama: the KV window in tokens; dsrn: its attention window */
    struct lmz_pool *pool;       /* the architecture's threads (owned by it) */
    uint8_t *tiny;               /* portable kernels only (else NULL): per tensor of g, 0
                                    where lmz_model_mat found no tiny value in the matrix
                                    (lmz_f32_has_tiny), so its tiles skip that test */
    lmz_qmat *qm;                /* det-i8-v1 only (else NULL): per tensor of g, the
                                    quantized matrix of each one lmz_model_qprep was
                                    given (the others empty) */
    size_t q_width;              /* the widest input of those, in bytes (4 * groups) */
    int8_t *qx;                  /* (qx_cap, q_width): a product's quantized activations */
    float *qxs;                  /* (qx_cap): their scales */
    size_t qx_cap;
};

struct lmz_state {
    const lmz_model *m;
    uint64_t pos;                /* tokens seen */
};

/* Each architecture: check the file and finish the model (base already has
 * g, tok, kp and n_vocab); on failure free everything but base's members
 * and return -1 with a message. *out is the architecture's struct, whose
 * first member is base's copy. */
int lmz_llama_open(const lmz_model *base, const lmz_model_opts *opts, lmz_model **out, char *err, size_t errlen);
int lmz_dsrn_open(const lmz_model *base, const lmz_model_opts *opts, lmz_model **out, char *err, size_t errlen);

/* helpers shared by the architectures (model.c) */
__attribute__((format(printf, 3, 4))) int lmz_model_errf(char *err, size_t errlen, const char *fmt, ...);
/* a (ne0 x ne1) matrix of a computable type, or NULL with a message */
const lmz_gguf_tensor *lmz_model_mat(const lmz_model *m, const char *name, uint64_t ne0, uint64_t ne1, char *err,
                                     size_t errlen);
/* det-i8-v1: quantize matrix t (one the architecture multiplies by) now, at
 * open; nothing without the profile. @return 0, or -1 with a message. */
int lmz_model_qprep(lmz_model *m, const lmz_gguf_tensor *t, char *err, size_t errlen);
/* det-i8-v1: room for the activations of products of up to T tokens (the
 * architectures' reserve); 0 without the profile. @return 0 or -1. */
int lmz_model_qreserve(lmz_model *m, size_t T);
/* frees what lmz_model_qreserve took (the architectures' free) */
void lmz_model_qscratch_free(lmz_model *m);
/* a float vector of n as a malloc'd F32 copy, or NULL with a message */
float *lmz_model_vec(const lmz_model *m, const char *name, uint64_t n, char *err, size_t errlen);
/* row r of a matrix as floats (exact) */
void lmz_model_row(const lmz_model *m, const lmz_gguf_tensor *t, uint64_t r, float *out);
/* Y (T x rows) = X (T x n) times the rows of matrix t (n x rows, any
 * computable type), rows split over the pool's threads; wrows: (threads, 4,
 * wmax) scratch for rows widened to F32, wmax >= n. T = 1 takes each row's
 * typed dot product; more tokens go in tiles of 4 rows x 4 tokens: the same
 * sums in the same order either way (det-f32-v1). With det-i8-v1 (m->qm),
 * the activations are quantized and the product is qmat.h's, the same bits
 * for any T, thread count and path. */
struct lmz_pool;
/* Move the rows b of x (B rows of dim floats) with need[b] != 0 to the
 * front, in order (need NULL: all). @return how many. For the output product
 * of lmz_model_step_some. */
size_t lmz_model_keep_rows(float *x, size_t dim, size_t B, const uint8_t *need);

/* Attention over a ring of cap slots (a multiple of 16) whose keys lie
 * transposed in blocks of 16 (element d of slot t at kt[(t / 16) * width * 16
 * + 16 d + t % 16], kt already at the head's first element): raw[h * cap + t]
 * = dot(key t, q + h * hd) for the nq queries and every slot of the blocks
 * from first's to last's (lmz_dot's bits, lmz_dot_keys16). */
void lmz_window_scores(lmz_kpath kp, const float *kt, size_t width, const float *q, size_t nq, size_t hd,
                       uint32_t first, uint32_t last, uint32_t cap, float *raw);
/* sc[j] = softmax of raw[t] * scale over the window's n_ctx slots t = first,
 * first + 1, ... (mod cap), oldest first: maximum, shift, exp, the sum in
 * order, times 1 / sum. */
void lmz_window_softmax(lmz_kpath kp, const float *raw, uint32_t first, uint32_t n_ctx, uint32_t cap, float scale,
                        float *sc);
/* lmz_window_softmax for nh heads (raw + h * cap into sc + h * lds), the
 * same bits head by head: up to four heads' maximum and sum chains side by
 * side, so one head's additions wait on its own only. */
void lmz_window_softmax_heads(lmz_kpath kp, const float *raw, size_t nh, uint32_t first, uint32_t n_ctx, uint32_t cap,
                              float scale, float *sc, size_t lds);
/* Scratch of n floats on a cache line, replacing old (freed, its contents not
 * kept): rows whose width is a multiple of 16 floats then start on cache
 * lines, where a vector load of a row never spans two. NULL: out of memory,
 * old untouched. */
float *lmz_model_scratch(float *old, size_t n);
void lmz_model_matmul(const lmz_model *m, struct lmz_pool *pool, float *wrows, size_t wmax, const lmz_gguf_tensor *t,
                      const float *x, size_t T, float *y);
/* y[i] (T x rows of t[i]) = x times the rows of t[i], for k matrices that
 * read the same input x (T x n, n = each t[i]'s row length): one split of
 * all their rows over the threads (and with det-i8-v1 the input quantized
 * once), the same bits as k lmz_model_matmul calls. */
void lmz_model_matmul_many(const lmz_model *m, struct lmz_pool *pool, float *wrows, size_t wmax,
                           const lmz_gguf_tensor *const *t, float *const *y, size_t k, const float *x, size_t T);
/* a metadata integer 1..2^30, or -1 with a message */
int lmz_model_u32(const lmz_gguf *g, const char *key, uint32_t *v, char *err, size_t errlen);

#endif
