/*
 * net.h — the DSRN network for training: parameters, forward, backward.
 *
 * The same architecture as src/model/dsrn.c (the inference engine), written
 * for batches of Bt streams x T tokens with matrix products through BLAS.
 * Built in float for training; the gradient check builds this file again
 * with -DDSRN_F64 (real = double) and compares the backward pass with
 * central finite differences.
 *
 * Rows of every activation are (stream b, time t) -> b * T + t. A chunk's
 * input is T tokens of each stream and its targets the T tokens that follow;
 * state carries from chunk to chunk (dsrn_carry): the fast and slow states
 * and the last W keys and values of every layer, as constants (truncated
 * backpropagation through time).
 */
#ifndef LMZ_TRAIN_NET_H
#define LMZ_TRAIN_NET_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "model/gguf.h"
#include "mm.h"

#ifdef DSRN_F64
typedef double real;
#else
typedef float real;
#endif

typedef struct {
    uint32_t vocab;     /* tokens */
    uint32_t D;         /* width */
    uint32_t L;         /* blocks */
    uint32_t F;         /* MLP hidden width (SwiGLU) */
    uint32_t H;         /* slow state heads: c has H * D values */
    uint32_t A;         /* attention heads of D / A */
    uint32_t W;         /* attention window in tokens */
    int layer_norm;     /* 0: RMSNorm, 1: LayerNorm (weight and bias) */
    int tied;           /* output head = token embedding */
    float eps, clip, rope_base;
    int32_t eod;        /* end-of-document token, -1: none */
    int biases;         /* the biases b_z, b_n, b_g, b_m of DSRN.md (0: none, as older models) */
    float gate_bias;    /* b_g's initial value */
} dsrn_config;

/* per-block parameter tensors, in file order */
enum {
    P_NORM_IN_W, P_NORM_IN_B, P_WZ, P_WN, P_WP, P_WG, P_WM, P_LAMBDA, P_WREAD,
    P_WQ, P_WK, P_WV, P_WO, P_NORM_MLP_W, P_NORM_MLP_B, P_GATE, P_UP, P_DOWN,
    P_BZ, P_BN, P_BG, P_BM, P_COUNT
};

typedef struct {
    char name[48];
    uint32_t rows, cols;   /* (rows, cols) row-major; a vector: rows = 1 */
    size_t off;            /* into the parameter array */
    int decay;             /* weight decay applies (matrices) */
} dsrn_tensor;

typedef struct {
    int Bt;
    real *h, *c;           /* (L, Bt, D), (L, Bt, H * D) */
    real *kc, *vc;         /* (L, Bt, W + T, D): rows [0, W) hold the W tokens
                              before the chunk, [W, W + T) the chunk's */
    uint32_t *valid;       /* (Bt) tokens before the chunk the cache holds (<= W) */
    uint64_t *pos;         /* (Bt) stream position of the chunk's first token */
} dsrn_carry;

typedef struct dsrn_net dsrn_net;

/* The tensors of a configuration (n_params: total values). */
size_t dsrn_tensors(const dsrn_config *cfg, dsrn_tensor *out, size_t cap, size_t *n_params);
int dsrn_config_check(const dsrn_config *cfg, char *err, size_t errlen);

/* A network for chunks of Bt x T: parameters, gradients and the two AdamW
 * moments in one allocation; activations in another. NULL out of memory. */
dsrn_net *dsrn_net_new(const dsrn_config *cfg, int Bt, int T);
void dsrn_net_free(dsrn_net *n);
const dsrn_config *dsrn_net_config(const dsrn_net *n);
/* The matrix products: DSRN_MM_F32 (the default; OpenBLAS) or DSRN_MM_BF16
 * (mm.h). The float64 build (the gradient check) always uses f64. */
void dsrn_net_set_matmul(dsrn_net *n, dsrn_mm_kind kind);
size_t dsrn_net_n_params(const dsrn_net *n);
const dsrn_tensor *dsrn_net_tensors(const dsrn_net *n, size_t *count);
real *dsrn_net_params(dsrn_net *n);  /* (n_params) */
real *dsrn_net_grads(dsrn_net *n);   /* (n_params) */
real *dsrn_net_moments(dsrn_net *n); /* (2, n_params): AdamW m, then v */

/* Initialise the parameters (DSRN.md: W_p orthogonal with gain 0.1, the
 * MLP down-projection and W_read zero, lambda zero). */
void dsrn_net_init(dsrn_net *n, uint64_t seed, double init_std);

dsrn_carry *dsrn_carry_new(const dsrn_net *n, int Bt);
void dsrn_carry_free(dsrn_carry *c);
void dsrn_carry_reset(const dsrn_net *n, dsrn_carry *c);

/* Forward c->Bt x T tokens (tokens[b * T + t]) predicting targets (same shape),
 * from the carried state; updates the carried h and c. @return the summed
 * cross-entropy in nats; per-token losses into tok_loss (NULL: not kept). */
double dsrn_forward(dsrn_net *n, dsrn_carry *c, const int32_t *tokens, const int32_t *targets, double *tok_loss);
/* Add the gradient of (scale x the forward's summed loss) to the gradients. */
void dsrn_backward(dsrn_net *n, dsrn_carry *c, const int32_t *tokens, const int32_t *targets, real scale);
/* After a forward (and backward): the chunk's last W keys and values become
 * the cache before the next chunk. */
void dsrn_carry_advance(const dsrn_net *n, dsrn_carry *c);

/* Time shares of a step: seconds spent in each part of the forward and
 * backward passes (and in the optimizer, dsrn_adamw) since the last reset,
 * summed only when the environment has LMZ_TRAIN_PROFILE=1 (a clock read per
 * part; bench/bench_train prints them). */
enum {
    DSRN_PROF_PRODUCTS,    /* the matrix products (bf16: with the conversions) */
    DSRN_PROF_ATTENTION,   /* scores, softmax and sums over the window, RoPE */
    DSRN_PROF_SCANS,       /* the fast and slow recurrences */
    DSRN_PROF_NORMS,
    DSRN_PROF_HEAD,        /* softmax and cross-entropy over the vocabulary */
    DSRN_PROF_ELEMENTWISE, /* gates, MLP activation, surprise, residuals, embedding */
    DSRN_PROF_OPTIMIZER,
    DSRN_PROF_DATA,        /* the batch from the token stream (dsrn train) */
    DSRN_PROF_COUNT
};
int dsrn_prof_enabled(void);
double dsrn_prof_start(void);
void dsrn_prof_stop(int part, double t0);
void dsrn_prof_get(double out[DSRN_PROF_COUNT]);
void dsrn_prof_reset(void);
void dsrn_prof_set(const double in[DSRN_PROF_COUNT]); /* back to a dsrn_prof_get (leaving work out) */
const char *dsrn_prof_name(int part);

/* GGUF: the model's metadata and its tensors as F32 (the parameters are
 * converted into buf, n_params floats, which must stay valid until written) */
void dsrn_net_write_gguf(const dsrn_net *n, lmz_gguf_writer *w, float *buf);
/* Load parameters from a GGUF written by dsrn_net_write_gguf (F32 tensors of
 * the same configuration) or a shipped model (F16, BF16, Q8_0). The file holds
 * blocks [0, blocks); later blocks' tensors are left as they are (--grow).
 * @return 0 or -1 with a message. */
int dsrn_net_read_gguf(dsrn_net *n, const lmz_gguf *g, uint32_t blocks, char *err, size_t errlen);
/* Make blocks [from, L) the identity: their attention output, W_read and MLP
 * down-projection zero, so that they add nothing to the residual stream
 * (dsrn train --grow); their other weights stay as initialised. */
void dsrn_net_identity_blocks(dsrn_net *n, uint32_t from);
/* The configuration a GGUF describes. @return 0 or -1 with a message. */
int dsrn_config_from_gguf(const lmz_gguf *g, dsrn_config *cfg, char *err, size_t errlen);

#endif
