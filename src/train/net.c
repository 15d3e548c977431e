/*
 * net.c — DSRN forward and backward for training (net.h).
 *
 * Forward, per block (x: block input, rows r = b * T + t):
 *   x̂ = norm_in(x); z = σ(Wz x̂); n = tanh(Wn x̂)           (eod: z = 1)
 *   h_t = (1 - z) h_{t-1} + z n                              hp: h_{t-1}
 *   p = Wp hp; e = mean min((x - p)², clip)
 *   g = σ(Wg h + e softplus(λ)) (eod: g = 0); m = tanh(Wm h)
 *   c_t = (1 - g) c_{t-1} + g m                              cp: c_{t-1}
 *   a = Wo attn(rope(Wq x̂), rope(Wk x̂), Wv x̂) over the last W tokens
 *   u = norm_mlp(h); f = Wdown (silu(Wgate u) * (Wup u))
 *   x' = ((x + f) + Wread c) + a
 * Backward runs the blocks in reverse; inside a block: the MLP, attention
 * and read-out first (they need only the block output's gradient), then the
 * slow scan in reverse time, the surprise, the fast scan in reverse time,
 * and the input norm. Gradients through the carried state stop at the chunk
 * start.
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rng.h"
#include "mm.h"
#include "net.h"
#include "tensor/kernels.h"

#ifdef DSRN_F64
#define GEMM cblas_dgemm
#define EXP exp
#define TANH tanh
#define LOG log
#define SQRT sqrt
#else
#define GEMM cblas_sgemm
#define EXP expf
#define TANH tanhf
#define LOG logf
#define SQRT sqrtf
#endif

/* y = exp(x) over n values: the engine's vector exp (within 1 ulp) in float,
 * libm in double */
static void exp_array(real *x, size_t n)
{
#ifdef DSRN_F64
    for (size_t i = 0; i < n; i++) x[i] = exp(x[i]);
#else
    static lmz_kpath kp = LMZ_KPATH_COUNT;
    if (kp == LMZ_KPATH_COUNT) {
        char err[64];
        lmz_kpath k;
        kp = lmz_kernels_select(&k, err, sizeof err) == 0 ? k : LMZ_KPATH_SCALAR;
    }
    lmz_exp_array(kp, x, x, n);
#endif
}

/* ======================================================================== */
/* time shares (LMZ_TRAIN_PROFILE=1)                                         */
/* ======================================================================== */

static double prof_sec[DSRN_PROF_COUNT];
static int prof_on = -1;

int dsrn_prof_enabled(void)
{
    if (prof_on < 0) {
        const char *e = getenv("LMZ_TRAIN_PROFILE");
        prof_on = e && *e && strcmp(e, "0") != 0;
    }
    return prof_on;
}

double dsrn_prof_start(void)
{
    if (!dsrn_prof_enabled()) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void dsrn_prof_stop(int part, double t0)
{
    if (prof_on > 0 && part >= 0 && part < DSRN_PROF_COUNT) prof_sec[part] += dsrn_prof_start() - t0;
}

void dsrn_prof_get(double out[DSRN_PROF_COUNT]) { memcpy(out, prof_sec, sizeof prof_sec); }
void dsrn_prof_reset(void) { memset(prof_sec, 0, sizeof prof_sec); }
void dsrn_prof_set(const double in[DSRN_PROF_COUNT]) { memcpy(prof_sec, in, sizeof prof_sec); }

const char *dsrn_prof_name(int part)
{
    static const char *const names[DSRN_PROF_COUNT] = {"products", "attention", "scans", "norms", "head",
                                                       "elementwise", "optimizer", "data"};
    return part >= 0 && part < DSRN_PROF_COUNT ? names[part] : "?";
}

/* activations of one block, each (N, width) */
enum {
    A_X, A_XN, A_MU_IN, A_RS_IN, A_Z, A_N, A_HP, A_H, A_P, A_E, A_G, A_M, A_CP, A_C, A_Q, A_ATT, A_PROB,
    A_U, A_MU_MLP, A_RS_MLP, A_GA, A_UP, A_ACT, A_COUNT
};

struct dsrn_net {
    dsrn_config cfg;
    dsrn_mm_kind mm;             /* the matrix products: f32 (OpenBLAS) or bf16 (oneDNN) */
    int Bt, T;
    size_t N;                    /* Bt * T rows */
    dsrn_tensor *t;              /* the parameter tensors */
    size_t n_t, n_params;
    size_t *loff;                /* (L, P_COUNT) offset of each block tensor, SIZE_MAX: absent */
    size_t off_embd, off_out_w, off_out_b, off_out; /* off_out: the head (embd when tied) */
    real *mem;                   /* params | grads | m | v */
    size_t aw[A_COUNT], ao[A_COUNT], a_layer; /* activation widths, offsets in a block, block stride */
    real *acts;                  /* (L, a_layer) */
    real *xf, *xnf, *mu_f, *rs_f; /* final x (N, D), its norm, stats */
    real *logits, *lse;          /* (N, vocab), (N) */
    real *rot;                   /* (N, D / A): cos, sin of each pair */
    real *r_buf, *o_buf, *f_buf; /* forward outputs (N, D) */
    /* backward scratch */
    real *dx, *dxn, *dh, *dhp, *dt1, *dq, *dk, *dv, *datt; /* (N, D); dk, dv: (N, D) chunk rows */
    real *dkc, *dvc;             /* (Bt, W + T, D) key/value gradients, cache rows included */
    real *dhd1, *dhd2;           /* (N, H * D) */
    real *df1, *df2;             /* (N, F) */
    real *de;                    /* (N) */
    real *etmp;                  /* (threads, etmp_n): tanh_array's scratch */
    size_t etmp_n;               /* max(D, H * D) */
    real *sp;                    /* (H * D) softplus(λ) of the block at hand */
    double *inv_freq;            /* (D / A / 2) RoPE: base^(-2i / head size) */
    real *att_buf;               /* (threads, 2, T, W + T) attention's dense scores */
    real *vtmp;                  /* (threads, vocab) */
};

/* ======================================================================== */
/* small helpers                                                             */
/* ======================================================================== */

/* C (M, N) = alpha op(A) op(B) + beta C, row-major: in bf16 through oneDNN
 * (mm.c) when the net is set so, else OpenBLAS. OpenBLAS runs single-
 * threaded (dsrn_net_new); the product is split here over the OpenMP
 * threads along its larger side, so one team of threads does all the work
 * (two pools, OpenBLAS's and OpenMP's, spinning against each other on two
 * cores spent most of the time in sched_yield). */
static void gemm_run(const dsrn_net *n, int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda,
                     const real *B, int ldb, real beta, real *C, int ldc)
{
#ifndef DSRN_F64
    if (n->mm == DSRN_MM_BF16 && alpha == 1 && (beta == 0 || beta == 1)) {
        dsrn_mm_bf16(ta, tb, M, N, K, A, lda, B, ldb, beta == 1, C, ldc);
        return;
    }
#else
    (void)n;
#endif
    const enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nt < 2 || (double)M * N * K < 1e6) {
        GEMM(CblasRowMajor, TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int by_rows = M >= N;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int i = 0; i < nt; i++) {
        int len = by_rows ? M : N, a = (int)((long)len * i / nt), b = (int)((long)len * (i + 1) / nt);
        if (a == b) continue;
        if (by_rows)
            GEMM(CblasRowMajor, TA, TB, b - a, N, K, alpha, ta ? A + a : A + (size_t)a * lda, lda, B, ldb, beta,
                 C + (size_t)a * ldc, ldc);
        else
            GEMM(CblasRowMajor, TA, TB, M, b - a, K, alpha, A, lda, tb ? B + (size_t)a * ldb : B + a, ldb, beta,
                 C + a, ldc);
    }
}

static void gemm(const dsrn_net *n, int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda,
                 const real *B, int ldb, real beta, real *C, int ldc)
{
    double t0 = dsrn_prof_start();
    gemm_run(n, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    dsrn_prof_stop(DSRN_PROF_PRODUCTS, t0);
}

/* Y (N, out) = X (N, in) W^T, W: (out, in) */
static void lin(const dsrn_net *n, const real *X, size_t N, size_t in, const real *W, size_t out, real *Y)
{
    gemm(n, 0, 1, (int)N, (int)out, (int)in, 1, X, (int)in, W, (int)in, 0, Y, (int)out);
}

/* dX (N, in) (= or +=) dY (N, out) W */
static void lin_dx(const dsrn_net *n, const real *dY, size_t N, size_t out, const real *W, size_t in, real *dX, int add)
{
    gemm(n, 0, 0, (int)N, (int)in, (int)out, 1, dY, (int)out, W, (int)in, add ? 1 : 0, dX, (int)in);
}

/* dW (out, in) += dY^T X */
static void lin_dw(const dsrn_net *n, const real *dY, size_t N, size_t out, const real *X, size_t in, real *dW)
{
    gemm(n, 1, 0, (int)out, (int)in, (int)N, 1, dY, (int)out, X, (int)in, 1, dW, (int)in);
}

static real sigm(real x) { return 1 / (1 + EXP(-x)); }
static real softplus(real x) { return x > 20 ? x : LOG(1 + EXP(x)); }

/* x = σ(x) over n values, through the vectorised exp */
static void sigm_array(real *x, size_t n)
{
#ifdef DSRN_F64
    for (size_t i = 0; i < n; i++) x[i] = sigm(x[i]);
#else
    for (size_t i = 0; i < n; i++) x[i] = -x[i];
    exp_array(x, n);
    for (size_t i = 0; i < n; i++) x[i] = 1 / (1 + x[i]);
#endif
}

/* x = tanh(x) over n values: sign(x) (1 - t) / (1 + t), t = exp(-2|x|) by
 * the vectorised exp into tmp (n values) */
static void tanh_array(real *x, real *tmp, size_t n)
{
#ifdef DSRN_F64
    (void)tmp;
    for (size_t i = 0; i < n; i++) x[i] = TANH(x[i]);
#else
    for (size_t i = 0; i < n; i++) tmp[i] = -2 * fabsf(x[i]);
    exp_array(tmp, n);
    for (size_t i = 0; i < n; i++) {
        real y = (1 - tmp[i]) / (1 + tmp[i]);
        x[i] = x[i] < 0 ? -y : y;
    }
#endif
}

static double gauss(uint64_t *s)
{
    double u1 = ((double)(lmz_splitmix64(s) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = lmz_uniform53(s);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ======================================================================== */
/* configuration and parameters                                              */
/* ======================================================================== */

int dsrn_config_check(const dsrn_config *c, char *err, size_t errlen)
{
    const char *why = NULL;
    if (c->vocab < 2 || c->vocab > (1u << 24)) why = "vocabulary size out of range";
    else if (!c->D || !c->L || !c->F || !c->H || !c->A || !c->W) why = "a size is zero";
    else if (c->D > 16384 || c->F > 65536 || c->H > 64 || c->L > 256 || c->W > 65536) why = "a size is too large";
    else if (c->D % c->A || (c->D / c->A) % 2) why = "attention heads must divide the width into even sizes";
    else if (!(c->eps > 0 && c->eps < 1) || !(c->clip > 0) || !(c->rope_base > 1)) why = "eps, clip or RoPE base out of range";
    else if (c->eod >= (int32_t)c->vocab) why = "end-of-document token out of range";
    if (why) snprintf(err, errlen, "%s", why);
    return why ? -1 : 0;
}

static const char *const block_names[P_COUNT] = {
    "norm_in.weight", "norm_in.bias", "gru_z.weight", "gru_n.weight", "surprise.weight", "slow_g.weight",
    "slow_m.weight", "slow_lambda", "slow_read.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight",
    "attn_output.weight", "norm_mlp.weight", "norm_mlp.bias", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight",
    "gru_z.bias", "gru_n.bias", "slow_g.bias", "slow_m.bias"};

static void block_shape(const dsrn_config *c, int k, uint32_t *rows, uint32_t *cols)
{
    uint32_t D = c->D, HD = c->H * c->D, F = c->F;
    static const int vec[P_COUNT] = {[P_NORM_IN_W] = 1, [P_NORM_IN_B] = 1, [P_LAMBDA] = 1, [P_NORM_MLP_W] = 1,
                                     [P_NORM_MLP_B] = 1, [P_BZ] = 1, [P_BN] = 1, [P_BG] = 1, [P_BM] = 1};
    *rows = vec[k] ? 1 : D;
    *cols = k == P_LAMBDA || k == P_BG || k == P_BM ? HD : D;
    if (k == P_WG || k == P_WM) *rows = HD;
    if (k == P_WREAD) *cols = HD;
    if (k == P_GATE || k == P_UP) *rows = F;
    if (k == P_DOWN) *cols = F;
}

static size_t add_tensor(dsrn_tensor *out, size_t cap, size_t *n, size_t *total, const char *name, uint32_t rows,
                         uint32_t cols)
{
    size_t off = *total;
    if (*n < cap) {
        dsrn_tensor *t = &out[*n];
        snprintf(t->name, sizeof t->name, "%s", name);
        t->rows = rows;
        t->cols = cols;
        t->off = off;
        t->decay = rows > 1;
    }
    (*n)++;
    *total += (size_t)rows * cols;
    return off;
}

size_t dsrn_tensors(const dsrn_config *c, dsrn_tensor *out, size_t cap, size_t *n_params)
{
    size_t n = 0, total = 0;
    add_tensor(out, cap, &n, &total, "token_embd.weight", c->vocab, c->D);
    for (uint32_t l = 0; l < c->L; l++)
        for (int k = 0; k < P_COUNT; k++) {
            if ((k == P_NORM_IN_B || k == P_NORM_MLP_B) && !c->layer_norm) continue;
            if (k >= P_BZ && k <= P_BM && !c->biases) continue;
            char name[48];
            uint32_t rows, cols;
            snprintf(name, sizeof name, "blk.%u.%s", l, block_names[k]);
            block_shape(c, k, &rows, &cols);
            add_tensor(out, cap, &n, &total, name, rows, cols);
        }
    add_tensor(out, cap, &n, &total, "output_norm.weight", 1, c->D);
    if (c->layer_norm) add_tensor(out, cap, &n, &total, "output_norm.bias", 1, c->D);
    if (!c->tied) add_tensor(out, cap, &n, &total, "output.weight", c->vocab, c->D);
    *n_params = total;
    return n;
}

static size_t find_off(const dsrn_net *n, const char *name)
{
    for (size_t i = 0; i < n->n_t; i++)
        if (!strcmp(n->t[i].name, name)) return n->t[i].off;
    return SIZE_MAX;
}

void dsrn_net_free(dsrn_net *n)
{
    if (!n) return;
    free(n->t);
    free(n->loff);
    free(n->mem);
    free(n->acts);
    free(n->inv_freq);
    real *bufs[] = {n->xf, n->xnf, n->mu_f, n->rs_f, n->logits, n->lse, n->rot, n->r_buf, n->o_buf, n->f_buf,
                    n->dx, n->dxn, n->dh, n->dhp, n->dt1, n->dq, n->dk, n->dv, n->datt, n->dkc, n->dvc,
                    n->dhd1, n->dhd2, n->df1, n->df2, n->de, n->vtmp, n->etmp, n->sp, n->att_buf};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(n);
}

dsrn_net *dsrn_net_new(const dsrn_config *cfg, int Bt, int T)
{
    char err[128];
    if (Bt < 1 || T < 1 || dsrn_config_check(cfg, err, sizeof err) != 0) return NULL;
    dsrn_net *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    openblas_set_num_threads(1); /* the threads are OpenMP's: see gemm() */
    n->cfg = *cfg;
    n->Bt = Bt;
    n->T = T;
    n->N = (size_t)Bt * T;
    const size_t N = n->N, D = cfg->D, HD = (size_t)cfg->H * cfg->D, F = cfg->F, V = cfg->vocab, L = cfg->L;
    n->n_t = dsrn_tensors(cfg, NULL, 0, &n->n_params);
    n->t = calloc(n->n_t, sizeof *n->t);
    n->loff = malloc(L * P_COUNT * sizeof *n->loff);
    if (!n->t || !n->loff) goto fail;
    dsrn_tensors(cfg, n->t, n->n_t, &n->n_params);
    for (uint32_t l = 0; l < L; l++)
        for (int k = 0; k < P_COUNT; k++) {
            char name[48];
            snprintf(name, sizeof name, "blk.%u.%s", l, block_names[k]);
            n->loff[l * P_COUNT + k] = find_off(n, name);
        }
    n->off_embd = find_off(n, "token_embd.weight");
    n->off_out_w = find_off(n, "output_norm.weight");
    n->off_out_b = find_off(n, "output_norm.bias");
    n->off_out = cfg->tied ? n->off_embd : find_off(n, "output.weight");
    n->mem = calloc(4 * n->n_params, sizeof(real));
    if (!n->mem) goto fail;
    size_t widths[A_COUNT] = {D, D, 1, 1, D, D, D, D, D, 1, HD, HD, HD, HD, D, D, (size_t)cfg->A * cfg->W,
                              D, 1, 1, F, F, F};
    n->a_layer = 0;
    for (int a = 0; a < A_COUNT; a++) {
        n->aw[a] = widths[a];
        n->ao[a] = n->a_layer;
        n->a_layer += N * widths[a];
    }
    n->acts = malloc(L * n->a_layer * sizeof(real));
    size_t KT = (size_t)Bt * (cfg->W + T) * D;
    real **bufs[] = {&n->xf, &n->xnf, &n->mu_f, &n->rs_f, &n->logits, &n->lse, &n->rot, &n->r_buf, &n->o_buf,
                     &n->f_buf, &n->dx, &n->dxn, &n->dh, &n->dhp, &n->dt1, &n->dq, &n->dk, &n->dv, &n->datt,
                     &n->dkc, &n->dvc, &n->dhd1, &n->dhd2, &n->df1, &n->df2, &n->de};
    size_t sizes[] = {N * D, N * D, N, N, N * V, N, N * (D / cfg->A), N * D, N * D, N * D, N * D, N * D, N * D,
                      N * D, N * D, N * D, N * D, N * D, N * D, KT, KT, N * HD, N * HD, N * F, N * F, N};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (!(*bufs[i] = malloc(sizes[i] * sizeof(real)))) goto fail;
    n->etmp_n = HD > D ? HD : D;
    if (!n->acts || !(n->etmp = malloc((size_t)omp_get_max_threads() * n->etmp_n * sizeof(real))) ||
        !(n->sp = malloc(HD * sizeof(real))) ||
        !(n->att_buf = malloc((size_t)omp_get_max_threads() * 2 * T * (cfg->W + T) * sizeof(real))) || !(n->inv_freq = malloc(D / cfg->A / 2 * sizeof(double))) ||
        !(n->vtmp = malloc((size_t)omp_get_max_threads() * V * sizeof(real))))
        goto fail;
    for (size_t i = 0; i < D / cfg->A / 2; i++)
        n->inv_freq[i] = pow((double)cfg->rope_base, -(double)(2 * i) / (double)(D / cfg->A));
    return n;
fail:
    dsrn_net_free(n);
    return NULL;
}

const dsrn_config *dsrn_net_config(const dsrn_net *n) { return &n->cfg; }
void dsrn_net_set_matmul(dsrn_net *n, dsrn_mm_kind kind) { n->mm = kind; }
size_t dsrn_net_n_params(const dsrn_net *n) { return n->n_params; }
const dsrn_tensor *dsrn_net_tensors(const dsrn_net *n, size_t *count)
{
    *count = n->n_t;
    return n->t;
}
real *dsrn_net_params(dsrn_net *n) { return n->mem; }
real *dsrn_net_grads(dsrn_net *n) { return n->mem + n->n_params; }
real *dsrn_net_moments(dsrn_net *n) { return n->mem + 2 * n->n_params; }

/* rows x rows orthogonal (Gram-Schmidt on Gaussian rows, twice), times gain */
static void orthogonal(real *w, size_t d, double gain, uint64_t *s)
{
    double *q = malloc(d * d * sizeof *q);
    if (!q) return;
    for (size_t i = 0; i < d * d; i++) q[i] = gauss(s);
    for (size_t i = 0; i < d; i++) {
        double *r = q + i * d;
        for (int pass = 0; pass < 2; pass++)
            for (size_t j = 0; j < i; j++) {
                const double *o = q + j * d;
                double dot = 0;
                for (size_t k = 0; k < d; k++) dot += r[k] * o[k];
                for (size_t k = 0; k < d; k++) r[k] -= dot * o[k];
            }
        double nn = 0;
        for (size_t k = 0; k < d; k++) nn += r[k] * r[k];
        nn = 1.0 / sqrt(nn);
        for (size_t k = 0; k < d; k++) r[k] *= nn;
    }
    for (size_t i = 0; i < d * d; i++) w[i] = (real)(gain * q[i]);
    free(q);
}

/* A tensor's name within its block ("ffn_down.weight" of "blk.3.ffn_down.weight"),
 * the whole name for the others. */
static const char *tensor_role(const dsrn_tensor *t)
{
    const char *dot = strchr(t->name, '.');
    return !strncmp(t->name, "blk.", 4) && dot ? strchr(dot + 1, '.') + 1 : t->name;
}

/* The block a tensor belongs to ("blk.N."), or UINT32_MAX for the others. */
static uint32_t tensor_block(const dsrn_tensor *t)
{
    if (strncmp(t->name, "blk.", 4)) return UINT32_MAX;
    return (uint32_t)strtoul(t->name + 4, NULL, 10);
}

void dsrn_net_init(dsrn_net *n, uint64_t seed, double init_std)
{
    const dsrn_config *c = &n->cfg;
    real *p = n->mem;
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n->n_t; i++) {
        const dsrn_tensor *t = &n->t[i];
        real *w = p + t->off;
        size_t cnt = (size_t)t->rows * t->cols;
        const char *nm = tensor_role(t);
        double std = 1.0 / sqrt((double)t->cols);
        if (strstr(nm, "norm") && strstr(nm, ".weight")) {
            for (size_t k = 0; k < cnt; k++) w[k] = 1;
        } else if (!strcmp(nm, "slow_g.bias")) {
            for (size_t k = 0; k < cnt; k++) w[k] = (real)c->gate_bias;
        } else if (t->rows == 1 || !strcmp(nm, "ffn_down.weight") || (init_std <= 0 && !strcmp(nm, "slow_read.weight"))) {
            memset(w, 0, cnt * sizeof *w); /* biases, λ, and the two zero-started projections */
        } else if (!strcmp(nm, "surprise.weight")) {
            orthogonal(w, t->rows, 0.1, &s);
        } else {
            if (init_std > 0) {
                std = init_std; /* the reference: every linear layer N(0, 0.02) */
            } else {
                if (!strcmp(nm, "token_embd.weight") || !strcmp(nm, "output.weight")) std = 0.02;
                if (!strcmp(nm, "attn_output.weight")) std /= sqrt(2.0 * c->L);
            }
            for (size_t k = 0; k < cnt; k++) w[k] = (real)(std * gauss(&s));
        }
    }
}

/* ======================================================================== */
/* carried state                                                             */
/* ======================================================================== */

void dsrn_carry_free(dsrn_carry *c)
{
    if (!c) return;
    free(c->h);
    free(c->c);
    free(c->kc);
    free(c->vc);
    free(c->valid);
    free(c->pos);
    free(c);
}

dsrn_carry *dsrn_carry_new(const dsrn_net *n, int Bt)
{
    const dsrn_config *cf = &n->cfg;
    dsrn_carry *c = calloc(1, sizeof *c);
    if (!c || Bt < 1 || Bt > n->Bt) {
        free(c);
        return NULL;
    }
    c->Bt = Bt;
    size_t L = cf->L, D = cf->D;
    c->h = calloc(L * Bt * D, sizeof(real));
    c->c = calloc(L * Bt * cf->H * D, sizeof(real));
    c->kc = calloc(L * Bt * (cf->W + n->T) * D, sizeof(real));
    c->vc = calloc(L * Bt * (cf->W + n->T) * D, sizeof(real));
    c->valid = calloc((size_t)Bt, sizeof *c->valid);
    c->pos = calloc((size_t)Bt, sizeof *c->pos);
    if (!c->h || !c->c || !c->kc || !c->vc || !c->valid || !c->pos) {
        dsrn_carry_free(c);
        return NULL;
    }
    return c;
}

void dsrn_carry_reset(const dsrn_net *n, dsrn_carry *c)
{
    const dsrn_config *cf = &n->cfg;
    size_t L = cf->L, D = cf->D, Bt = (size_t)c->Bt;
    memset(c->h, 0, L * Bt * D * sizeof(real));
    memset(c->c, 0, L * Bt * cf->H * D * sizeof(real));
    memset(c->valid, 0, Bt * sizeof *c->valid);
    memset(c->pos, 0, Bt * sizeof *c->pos);
}

void dsrn_carry_advance(const dsrn_net *n, dsrn_carry *c)
{
    const int Bt = c->Bt;
    const size_t W = n->cfg.W, T = (size_t)n->T, D = n->cfg.D, S = W + T;
    for (size_t l = 0; l < n->cfg.L; l++)
        for (size_t b = 0; b < (size_t)Bt; b++) {
            real *k = c->kc + (l * (size_t)c->Bt + b) * S * D, *v = c->vc + (l * (size_t)c->Bt + b) * S * D;
            memmove(k, k + T * D, W * D * sizeof(real));
            memmove(v, v + T * D, W * D * sizeof(real));
        }
    for (int b = 0; b < Bt; b++) {
        c->valid[b] = c->valid[b] + T < W ? (uint32_t)(c->valid[b] + T) : (uint32_t)W;
        c->pos[b] += T;
    }
}

/* ======================================================================== */
/* forward                                                                   */
/* ======================================================================== */

#define ACT(n, l, a) ((n)->acts + (size_t)(l) * (n)->a_layer + (n)->ao[a])
#define PRM(n, l, k) ((n)->mem + (n)->loff[(size_t)(l) * P_COUNT + (k)])
#define GRD(n, l, k) ((n)->mem + (n)->n_params + (n)->loff[(size_t)(l) * P_COUNT + (k)])

static void norm_fwd(const dsrn_net *n, const real *x, size_t N, const real *w, const real *bias, real *y, real *mu,
                     real *rs)
{
    const size_t D = n->cfg.D;
    const int ln = n->cfg.layer_norm;
    const real eps = (real)n->cfg.eps;
    double t0 = dsrn_prof_start();
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < N; r++) {
        const real *xr = x + r * D;
        real *yr = y + r * D;
        real m = 0, v = 0;
        if (ln) {
            for (size_t i = 0; i < D; i++) m += xr[i];
            m /= (real)D;
        }
        for (size_t i = 0; i < D; i++) v += (xr[i] - m) * (xr[i] - m);
        real s = 1 / SQRT(v / (real)D + eps);
        for (size_t i = 0; i < D; i++) yr[i] = (xr[i] - m) * s * w[i] + (ln ? bias[i] : 0);
        mu[r] = m;
        rs[r] = s;
    }
    dsrn_prof_stop(DSRN_PROF_NORMS, t0);
}

/* dx += the input gradient of a norm; dw, db += its parameter gradients */
static void norm_bwd(const dsrn_net *n, const real *dy, const real *x, size_t N, const real *w, const real *mu,
                     const real *rs, real *dx, real *dw, real *db)
{
    const size_t D = n->cfg.D;
    const int ln = n->cfg.layer_norm;
    double t0 = dsrn_prof_start();
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < N; r++) {
        const real *dyr = dy + r * D, *xr = x + r * D;
        real *dxr = dx + r * D;
        real s = rs[r], m = mu[r], sa = 0, sax = 0;
        for (size_t i = 0; i < D; i++) {
            real a = w[i] * dyr[i], xh = (xr[i] - m) * s;
            sa += a;
            sax += a * xh;
        }
        sa /= (real)D;
        sax /= (real)D;
        for (size_t i = 0; i < D; i++) {
            real a = w[i] * dyr[i], xh = (xr[i] - m) * s;
            dxr[i] += s * (a - (ln ? sa : 0) - xh * sax);
        }
    }
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < D; i++) {
        real gw = 0, gb = 0;
        for (size_t r = 0; r < N; r++) {
            gw += dy[r * D + i] * (x[r * D + i] - mu[r]) * rs[r];
            gb += dy[r * D + i];
        }
        dw[i] += gw;
        if (ln) db[i] += gb;
    }
    dsrn_prof_stop(DSRN_PROF_NORMS, t0);
}

static void rope_rows(const dsrn_net *n, real *x, size_t stride, size_t rows, const real *rot, int inverse)
{
    const size_t hd = n->cfg.D / n->cfg.A, A = n->cfg.A;
    for (size_t r = 0; r < rows; r++) {
        real *v = x + r * stride;
        const real *cs = rot + r * hd;
        for (size_t h = 0; h < A; h++)
            for (size_t i = 0; i < hd / 2; i++) {
                real c = cs[2 * i], s = inverse ? -cs[2 * i + 1] : cs[2 * i + 1];
                real *p = v + h * hd + 2 * i, x0 = p[0], x1 = p[1];
                p[0] = x0 * c - x1 * s;
                p[1] = x0 * s + x1 * c;
            }
    }
}

/* the keys and values (cache rows included) of layer l, stream b */
static real *kv_rows(const dsrn_net *n, real *base, const dsrn_carry *c, size_t l, size_t b)
{
    return base + (l * (size_t)c->Bt + b) * (n->cfg.W + (size_t)n->T) * n->cfg.D;
}

/* s_t = (1 - a_t) s_{t-1} + a_t v_t for T steps of Bt streams of w values
 * (rows b * T + t): prev gets s_{t-1}, out s_t; state (Bt, w) carries in and
 * out. Time in the outer loop, the width inner (it vectorises). */
static void scan_fwd(real *state, const real *a, const real *v, real *prev, real *out, size_t Bt, size_t T,
                     size_t w)
{
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < Bt; b++) {
        real *s = state + b * w;
        for (size_t t = 0; t < T; t++) {
            size_t r = (b * T + t) * w;
            const real *ar = a + r, *vr = v + r;
            real *pr = prev + r, *o = out + r;
            for (size_t i = 0; i < w; i++) {
                pr[i] = s[i];
                s[i] = (1 - ar[i]) * s[i] + ar[i] * vr[i];
                o[i] = s[i];
            }
        }
    }
}

static void block_fwd(dsrn_net *n, dsrn_carry *cr, size_t l, const int32_t *tok, int Bt, real *xout)
{
    const dsrn_config *cf = &n->cfg;
    const size_t T = (size_t)n->T, N = (size_t)Bt * T, D = cf->D, HD = (size_t)cf->H * D, F = cf->F;
    const size_t W = cf->W, A = cf->A, hd = D / A;
    real *X = ACT(n, l, A_X), *XN = ACT(n, l, A_XN), *Z = ACT(n, l, A_Z), *NN = ACT(n, l, A_N);
    real *HP = ACT(n, l, A_HP), *H = ACT(n, l, A_H), *P = ACT(n, l, A_P), *E = ACT(n, l, A_E);
    real *G = ACT(n, l, A_G), *M = ACT(n, l, A_M), *CP = ACT(n, l, A_CP), *C = ACT(n, l, A_C);
    real *Q = ACT(n, l, A_Q), *ATT = ACT(n, l, A_ATT), *PROB = ACT(n, l, A_PROB), *U = ACT(n, l, A_U);
    real *GA = ACT(n, l, A_GA), *UP = ACT(n, l, A_UP), *ACTV = ACT(n, l, A_ACT);
    const int32_t eod = cf->eod;

    norm_fwd(n, X, N, PRM(n, l, P_NORM_IN_W), cf->layer_norm ? PRM(n, l, P_NORM_IN_B) : NULL, XN, ACT(n, l, A_MU_IN),
             ACT(n, l, A_RS_IN));
    lin(n, XN, N, D, PRM(n, l, P_WZ), D, Z);
    lin(n, XN, N, D, PRM(n, l, P_WN), D, NN);
    double t_gates = dsrn_prof_start();
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < N; r++) {
        real *z = Z + r * D, *nn = NN + r * D;
        if (cf->biases) {
            const real *bz = PRM(n, l, P_BZ), *bn = PRM(n, l, P_BN);
            for (size_t i = 0; i < D; i++) z[i] += bz[i];
            for (size_t i = 0; i < D; i++) nn[i] += bn[i];
        }
        sigm_array(z, D);
        if (tok[r] == eod)
            for (size_t i = 0; i < D; i++) z[i] = 1;
        tanh_array(nn, n->etmp + (size_t)omp_get_thread_num() * n->etmp_n, D);
    }
    dsrn_prof_stop(DSRN_PROF_ELEMENTWISE, t_gates);
    /* fast scan */
    double t_fast = dsrn_prof_start();
    scan_fwd(cr->h + l * (size_t)cr->Bt * D, Z, NN, HP, H, (size_t)Bt, T, D);
    dsrn_prof_stop(DSRN_PROF_SCANS, t_fast);
    /* surprise */
    lin(n, HP, N, D, PRM(n, l, P_WP), D, P);
    const real clip = (real)cf->clip;
    double t_surprise = dsrn_prof_start();
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < N; r++) {
        real s = 0;
        for (size_t i = 0; i < D; i++) {
            real d = X[r * D + i] - P[r * D + i];
            s += d * d < clip ? d * d : clip;
        }
        E[r] = s / (real)D;
    }
    dsrn_prof_stop(DSRN_PROF_ELEMENTWISE, t_surprise);
    /* slow gate and scan */
    lin(n, H, N, D, PRM(n, l, P_WG), HD, G);
    lin(n, H, N, D, PRM(n, l, P_WM), HD, M);
    const real *lam = PRM(n, l, P_LAMBDA);
    double t_slow_gates = dsrn_prof_start();
    for (size_t i = 0; i < HD; i++) n->sp[i] = softplus(lam[i]);
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < N; r++) {
        real *g = G + r * HD;
        if (cf->biases) {
            const real *bg = PRM(n, l, P_BG), *bm = PRM(n, l, P_BM);
            for (size_t i = 0; i < HD; i++) g[i] += bg[i];
            for (size_t i = 0; i < HD; i++) M[r * HD + i] += bm[i];
        }
        for (size_t i = 0; i < HD; i++) g[i] += E[r] * n->sp[i];
        sigm_array(g, HD);
        if (tok[r] == eod)
            for (size_t i = 0; i < HD; i++) g[i] = 0;
        tanh_array(M + r * HD, n->etmp + (size_t)omp_get_thread_num() * n->etmp_n, HD);
    }
    dsrn_prof_stop(DSRN_PROF_ELEMENTWISE, t_slow_gates);
    double t_slow = dsrn_prof_start();
    scan_fwd(cr->c + l * (size_t)cr->Bt * HD, G, M, CP, C, (size_t)Bt, T, HD);
    dsrn_prof_stop(DSRN_PROF_SCANS, t_slow);
    lin(n, C, N, HD, PRM(n, l, P_WREAD), D, n->r_buf);
    /* attention: q, k, v; k and v into the chunk rows of the cache */
    lin(n, XN, N, D, PRM(n, l, P_WQ), D, Q);
    lin(n, XN, N, D, PRM(n, l, P_WK), D, n->dk); /* dk, dv: scratch until the backward */
    lin(n, XN, N, D, PRM(n, l, P_WV), D, n->dv);
    double t_att = dsrn_prof_start();
    rope_rows(n, Q, D, N, n->rot, 0);
    rope_rows(n, n->dk, D, N, n->rot, 0);
    for (size_t b = 0; b < (size_t)Bt; b++) {
        memcpy(kv_rows(n, cr->kc, cr, l, b) + W * D, n->dk + b * T * D, T * D * sizeof(real));
        memcpy(kv_rows(n, cr->vc, cr, l, b) + W * D, n->dv + b * T * D, T * D * sizeof(real));
    }
    /* per stream and head: the scores of all T queries against the W + T
     * keys of the cache and the chunk in one product, each query's keys
     * outside its window [lo, W + t] then masked, the softmax, and the
     * output as a second product */
    const real scale = 1 / SQRT((real)hd);
    const size_t S = W + T;
#pragma omp parallel for schedule(dynamic)
    for (size_t bh = 0; bh < (size_t)Bt * A; bh++) {
        size_t b = bh / A, h = bh % A, lo0 = W - cr->valid[b];
        const real *K = kv_rows(n, cr->kc, cr, l, b), *V = kv_rows(n, cr->vc, cr, l, b);
        real *Pd = n->att_buf + (size_t)omp_get_thread_num() * 2 * T * S; /* (T, S) */
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)S, (int)hd, scale, Q + b * T * D + h * hd, (int)D,
             K + h * hd, (int)D, 0, Pd, (int)S);
        for (size_t t = 0; t < T; t++) {
            size_t r = b * T + t, lo = t + 1 > lo0 ? t + 1 : lo0, hi = W + t; /* keys [lo, hi] */
            real *p = Pd + t * S, mx = -INFINITY, sum = 0;
            for (size_t j = lo; j <= hi; j++) mx = p[j] > mx ? p[j] : mx;
            for (size_t j = lo; j <= hi; j++) p[j] -= mx;
            exp_array(p + lo, hi + 1 - lo);
            for (size_t j = lo; j <= hi; j++) sum += p[j];
            for (size_t j = lo; j <= hi; j++) p[j] /= sum;
            for (size_t j = 0; j < lo; j++) p[j] = 0;
            for (size_t j = hi + 1; j < S; j++) p[j] = 0;
            memcpy(PROB + (r * A + h) * W, p + t + 1, W * sizeof(real)); /* keys t + 1 .. W + t */
        }
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)S, 1, Pd, (int)S, V + h * hd, (int)D, 0,
             ATT + b * T * D + h * hd, (int)D);
    }
    dsrn_prof_stop(DSRN_PROF_ATTENTION, t_att);
    lin(n, ATT, N, D, PRM(n, l, P_WO), D, n->o_buf);
    /* MLP */
    norm_fwd(n, H, N, PRM(n, l, P_NORM_MLP_W), cf->layer_norm ? PRM(n, l, P_NORM_MLP_B) : NULL, U, ACT(n, l, A_MU_MLP),
             ACT(n, l, A_RS_MLP));
    lin(n, U, N, D, PRM(n, l, P_GATE), F, GA);
    lin(n, U, N, D, PRM(n, l, P_UP), F, UP);
    double t_mlp = dsrn_prof_start();
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < N; r++) {
        real *a = ACTV + r * F;
        const real *ga = GA + r * F, *up = UP + r * F;
        memcpy(a, ga, F * sizeof *a);
        sigm_array(a, F);
        for (size_t i = 0; i < F; i++) a[i] = ga[i] * a[i] * up[i];
    }
    dsrn_prof_stop(DSRN_PROF_ELEMENTWISE, t_mlp);
    lin(n, ACTV, N, F, PRM(n, l, P_DOWN), D, n->f_buf);
    double t_residual = dsrn_prof_start();
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < N * D; r++) xout[r] = ((X[r] + n->f_buf[r]) + n->r_buf[r]) + n->o_buf[r];
    dsrn_prof_stop(DSRN_PROF_ELEMENTWISE, t_residual);
}

double dsrn_forward(dsrn_net *n, dsrn_carry *cr, const int32_t *tok, const int32_t *tgt, double *tok_loss)
{
    const int Bt = cr->Bt;
    const dsrn_config *cf = &n->cfg;
    const size_t T = (size_t)n->T, N = (size_t)Bt * T, D = cf->D, V = cf->vocab, hd = D / cf->A;
    /* RoPE angles of each row's position (in double, then rounded) */
    double t_rope = dsrn_prof_start();
    for (size_t r = 0; r < N; r++) {
        double pos = (double)(cr->pos[r / T] + r % T);
        for (size_t i = 0; i < hd / 2; i++) {
            double a = pos * n->inv_freq[i];
            n->rot[r * hd + 2 * i] = (real)cos(a);
            n->rot[r * hd + 2 * i + 1] = (real)sin(a);
        }
    }
    dsrn_prof_stop(DSRN_PROF_ATTENTION, t_rope);
    const real *E = n->mem + n->off_embd;
    real *X0 = ACT(n, 0, A_X);
    double t_embd = dsrn_prof_start();
    for (size_t r = 0; r < N; r++) memcpy(X0 + r * D, E + (size_t)tok[r] * D, D * sizeof(real));
    dsrn_prof_stop(DSRN_PROF_ELEMENTWISE, t_embd);
    for (size_t l = 0; l < cf->L; l++) block_fwd(n, cr, l, tok, Bt, l + 1 < cf->L ? ACT(n, l + 1, A_X) : n->xf);
    norm_fwd(n, n->xf, N, n->mem + n->off_out_w, cf->layer_norm ? n->mem + n->off_out_b : NULL, n->xnf, n->mu_f,
             n->rs_f);
    lin(n, n->xnf, N, D, n->mem + n->off_out, V, n->logits);
    double total = 0;
    double t_head = dsrn_prof_start();
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (size_t r = 0; r < N; r++) {
        const real *z = n->logits + r * V;
        real *e = n->vtmp + (size_t)omp_get_thread_num() * V, m8[8], mx = z[0];
        double s8[8] = {0}, s = 0;
        size_t v = 0;
        for (int k = 0; k < 8; k++) m8[k] = z[0];
        for (; v + 8 <= V; v += 8) /* eight running maxima and sums: independent chains */
            for (int k = 0; k < 8; k++) m8[k] = z[v + k] > m8[k] ? z[v + k] : m8[k];
        for (; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        for (int k = 0; k < 8; k++) mx = m8[k] > mx ? m8[k] : mx;
        for (v = 0; v < V; v++) e[v] = z[v] - mx;
        exp_array(e, V);
        for (v = 0; v + 8 <= V; v += 8)
            for (int k = 0; k < 8; k++) s8[k] += e[v + k];
        for (; v < V; v++) s += e[v];
        for (int k = 0; k < 8; k++) s += s8[k];
        n->lse[r] = mx + (real)log(s);
        double loss = (double)n->lse[r] - (double)z[tgt[r]];
        if (tok_loss) tok_loss[r] = loss;
        total += loss;
    }
    dsrn_prof_stop(DSRN_PROF_HEAD, t_head);
    return total;
}

/* ======================================================================== */
/* backward                                                                  */
/* ======================================================================== */

/* g += the column sums of d (N rows of w): a bias's gradient, from the
 * gradient of the sum it is added into */
static void bias_grad(const real *d, size_t N, size_t w, real *g)
{
    double t_bias = dsrn_prof_start();
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < w; i++) {
        real s = 0;
        for (size_t r = 0; r < N; r++) s += d[r * w + i];
        g[i] += s;
    }
    dsrn_prof_stop(DSRN_PROF_ELEMENTWISE, t_bias);
}

/* The backward of two gates read from the same input X (N rows of D, N =
 * the chunk's streams x T, which may be fewer than the net was made for):
 * pre-activation gradients d1, d2 (N rows of w) of the matrices k1, k2 (and
 * their biases b1, b2 when the model has them); dX += d1 W1 + d2 W2. */
static void gates_bwd(dsrn_net *n, size_t l, size_t N, const real *d1, const real *d2, size_t w, const real *X, int k1,
                      int k2, int b1, int b2, real *dX)
{
    const size_t D = n->cfg.D;
    if (n->cfg.biases) {
        bias_grad(d1, N, w, GRD(n, l, b1));
        bias_grad(d2, N, w, GRD(n, l, b2));
    }
    lin_dw(n, d1, N, w, X, D, GRD(n, l, k1));
    lin_dw(n, d2, N, w, X, D, GRD(n, l, k2));
    lin_dx(n, d1, N, w, PRM(n, l, k1), D, dX, 1);
    lin_dx(n, d2, N, w, PRM(n, l, k2), D, dX, 1);
}

static void block_bwd(dsrn_net *n, dsrn_carry *cr, size_t l, const int32_t *tok, int Bt)
{
    const dsrn_config *cf = &n->cfg;
    const size_t T = (size_t)n->T, N = (size_t)Bt * T, D = cf->D, HD = (size_t)cf->H * D, F = cf->F;
    const size_t W = cf->W, A = cf->A, hd = D / A, S = W + T;
    real *X = ACT(n, l, A_X), *XN = ACT(n, l, A_XN), *Z = ACT(n, l, A_Z), *NN = ACT(n, l, A_N);
    real *HP = ACT(n, l, A_HP), *H = ACT(n, l, A_H), *P = ACT(n, l, A_P), *E = ACT(n, l, A_E);
    real *G = ACT(n, l, A_G), *M = ACT(n, l, A_M), *CP = ACT(n, l, A_CP), *C = ACT(n, l, A_C);
    real *Q = ACT(n, l, A_Q), *ATT = ACT(n, l, A_ATT), *PROB = ACT(n, l, A_PROB), *U = ACT(n, l, A_U);
    real *GA = ACT(n, l, A_GA), *UP = ACT(n, l, A_UP), *ACTV = ACT(n, l, A_ACT);
    real *dx = n->dx; /* the gradient of the block's output; becomes that of its input */
    const int32_t eod = cf->eod;

    /* MLP: f = Wdown act */
    lin_dw(n, dx, N, D, ACTV, F, GRD(n, l, P_DOWN));
    lin_dx(n, dx, N, D, PRM(n, l, P_DOWN), F, n->df1, 0);
    double t_mlp = dsrn_prof_start();
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < N; r++) {
        real *d1 = n->df1 + r * F, *d2 = n->df2 + r * F;
        const real *ga = GA + r * F, *up = UP + r * F;
        memcpy(d2, ga, F * sizeof *d2);
        sigm_array(d2, F);
        for (size_t i = 0; i < F; i++) {
            real s = d2[i], d = d1[i];
            d1[i] = d * up[i] * s * (1 + ga[i] * (1 - s)); /* d gate */
            d2[i] = d * ga[i] * s;                         /* d up */
        }
    }
    dsrn_prof_stop(DSRN_PROF_ELEMENTWISE, t_mlp);
    lin_dw(n, n->df1, N, F, U, D, GRD(n, l, P_GATE));
    lin_dw(n, n->df2, N, F, U, D, GRD(n, l, P_UP));
    lin_dx(n, n->df1, N, F, PRM(n, l, P_GATE), D, n->dt1, 0);
    lin_dx(n, n->df2, N, F, PRM(n, l, P_UP), D, n->dt1, 1);
    memset(n->dh, 0, N * D * sizeof(real));
    norm_bwd(n, n->dt1, H, N, PRM(n, l, P_NORM_MLP_W), ACT(n, l, A_MU_MLP), ACT(n, l, A_RS_MLP), n->dh,
             GRD(n, l, P_NORM_MLP_W), cf->layer_norm ? GRD(n, l, P_NORM_MLP_B) : NULL);

    /* attention: a = Wo att */
    lin_dw(n, dx, N, D, ATT, D, GRD(n, l, P_WO));
    lin_dx(n, dx, N, D, PRM(n, l, P_WO), D, n->datt, 0);
    double t_att = dsrn_prof_start();
    memset(n->dkc, 0, (size_t)Bt * S * D * sizeof(real));
    memset(n->dvc, 0, (size_t)Bt * S * D * sizeof(real));
    /* per stream and head, as products: dP = dA V^T; dS = P (dP - rowsum(P dP))
     * scale; dQ = dS K; and for the chunk's keys (the cache's are constants)
     * dK = dS^T Q, dV = P^T dA */
    const real scale = 1 / SQRT((real)hd);
#pragma omp parallel for schedule(dynamic)
    for (size_t bh = 0; bh < (size_t)Bt * A; bh++) {
        size_t b = bh / A, h = bh % A;
        const real *K = kv_rows(n, cr->kc, cr, l, b), *V = kv_rows(n, cr->vc, cr, l, b);
        real *dK = n->dkc + b * S * D, *dV = n->dvc + b * S * D;
        real *Pd = n->att_buf + (size_t)omp_get_thread_num() * 2 * T * S, *dP = Pd + T * S; /* (T, S) each */
        const real *Qb = Q + b * T * D + h * hd, *dA = n->datt + b * T * D + h * hd;
        for (size_t t = 0; t < T; t++) {
            real *p = Pd + t * S;
            memset(p, 0, S * sizeof *p);
            memcpy(p + t + 1, PROB + ((b * T + t) * A + h) * W, W * sizeof(real));
        }
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)S, (int)hd, 1, dA, (int)D, V + h * hd, (int)D, 0, dP,
             (int)S);
        for (size_t t = 0; t < T; t++) {
            const real *p = Pd + t * S;
            real *dp = dP + t * S, sdp = 0;
            for (size_t j = t + 1; j <= W + t; j++) sdp += p[j] * dp[j];
            for (size_t j = 0; j < S; j++) dp[j] = p[j] * (dp[j] - sdp) * scale;
        }
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)S, 1, dP, (int)S, K + h * hd, (int)D, 0,
             n->dq + b * T * D + h * hd, (int)D);
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1, dP + W, (int)S, Qb, (int)D, 1,
             dK + W * D + h * hd, (int)D);
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1, Pd + W, (int)S, dA, (int)D, 1,
             dV + W * D + h * hd, (int)D);
    }
    for (size_t b = 0; b < (size_t)Bt; b++) { /* the chunk's rows; the cache's are constants */
        memcpy(n->dk + b * T * D, n->dkc + (b * S + W) * D, T * D * sizeof(real));
        memcpy(n->dv + b * T * D, n->dvc + (b * S + W) * D, T * D * sizeof(real));
    }
    rope_rows(n, n->dq, D, N, n->rot, 1);
    rope_rows(n, n->dk, D, N, n->rot, 1);
    dsrn_prof_stop(DSRN_PROF_ATTENTION, t_att);
    lin_dw(n, n->dq, N, D, XN, D, GRD(n, l, P_WQ));
    lin_dw(n, n->dk, N, D, XN, D, GRD(n, l, P_WK));
    lin_dw(n, n->dv, N, D, XN, D, GRD(n, l, P_WV));
    lin_dx(n, n->dq, N, D, PRM(n, l, P_WQ), D, n->dxn, 0);
    lin_dx(n, n->dk, N, D, PRM(n, l, P_WK), D, n->dxn, 1);
    lin_dx(n, n->dv, N, D, PRM(n, l, P_WV), D, n->dxn, 1);

    /* read-out: Wread c, then the slow scan backwards */
    lin_dw(n, dx, N, D, C, HD, GRD(n, l, P_WREAD));
    lin_dx(n, dx, N, D, PRM(n, l, P_WREAD), HD, n->dhd1, 0);
    double t_slow = dsrn_prof_start();
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < (size_t)Bt; b++) { /* time in reverse, the width in the inner loop */
        real *carry = n->etmp + (size_t)omp_get_thread_num() * n->etmp_n;
        memset(carry, 0, HD * sizeof *carry);
        for (size_t t = T; t-- > 0;) {
            size_t r = (b * T + t) * HD;
            const real *g = G + r, *m = M + r, *cp = CP + r;
            real *d1 = n->dhd1 + r, *d2 = n->dhd2 + r;
            int e = tok[b * T + t] == eod;
            for (size_t i = 0; i < HD; i++) {
                real dc = d1[i] + carry[i];
                real dg = dc * (m[i] - cp[i]), dm = dc * g[i];
                d1[i] = dm * (1 - m[i] * m[i]);                   /* d (Wm h) */
                d2[i] = e ? 0 : dg * g[i] * (1 - g[i]);           /* d (Wg h + e sp) */
                carry[i] = dc * (1 - g[i]);
            }
        }
    }
    dsrn_prof_stop(DSRN_PROF_SCANS, t_slow);
    gates_bwd(n, l, N, n->dhd1, n->dhd2, HD, H, P_WM, P_WG, P_BM, P_BG, n->dh);
    const real *lam = PRM(n, l, P_LAMBDA);
    real *glam = GRD(n, l, P_LAMBDA);
    double t_lambda = dsrn_prof_start();
    for (size_t i = 0; i < HD; i++) n->sp[i] = softplus(lam[i]);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < HD; i++) {
        real s = 0;
        for (size_t r = 0; r < N; r++) s += n->dhd2[r * HD + i] * E[r];
        glam[i] += s * sigm(lam[i]);
    }
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < N; r++) {
        real s = 0;
        for (size_t i = 0; i < HD; i++) s += n->dhd2[r * HD + i] * n->sp[i];
        n->de[r] = s;
    }
    dsrn_prof_stop(DSRN_PROF_ELEMENTWISE, t_lambda);
    /* surprise: e = mean min((x - p)², clip), p = Wp hp */
    const real clip = (real)cf->clip;
    double t_surprise = dsrn_prof_start();
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < N; r++)
        for (size_t i = 0; i < D; i++) {
            real d = X[r * D + i] - P[r * D + i];
            real g = d * d < clip ? n->de[r] / (real)D * 2 * d : 0;
            dx[r * D + i] += g;  /* x feeds the block output too: dx already holds that */
            n->dt1[r * D + i] = -g; /* d p */
        }
    dsrn_prof_stop(DSRN_PROF_ELEMENTWISE, t_surprise);
    lin_dw(n, n->dt1, N, D, HP, D, GRD(n, l, P_WP));
    lin_dx(n, n->dt1, N, D, PRM(n, l, P_WP), D, n->dhp, 0);
    /* the fast scan backwards: dh of row t also gets dhp of row t + 1 */
    double t_fast = dsrn_prof_start();
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < (size_t)Bt; b++) {
        real *carry = n->etmp + (size_t)omp_get_thread_num() * n->etmp_n;
        memset(carry, 0, D * sizeof *carry);
        for (size_t t = T; t-- > 0;) {
            size_t r = (b * T + t) * D;
            const real *z = Z + r, *nn = NN + r, *hp = HP + r, *next = t + 1 < T ? n->dhp + r + D : NULL;
            real *dhr = n->dh + r, *d1 = n->dt1 + r;
            int e = tok[b * T + t] == eod;
            for (size_t i = 0; i < D; i++) {
                real dh = dhr[i] + carry[i] + (next ? next[i] : 0);
                dhr[i] = e ? 0 : dh * (nn[i] - hp[i]) * z[i] * (1 - z[i]); /* d (Wz x̂) */
                d1[i] = dh * z[i] * (1 - nn[i] * nn[i]);                   /* d (Wn x̂) */
                carry[i] = e ? 0 : dh * (1 - z[i]);
            }
        }
    }
    dsrn_prof_stop(DSRN_PROF_SCANS, t_fast);
    gates_bwd(n, l, N, n->dh, n->dt1, D, XN, P_WZ, P_WN, P_BZ, P_BN, n->dxn);
    norm_bwd(n, n->dxn, X, N, PRM(n, l, P_NORM_IN_W), ACT(n, l, A_MU_IN), ACT(n, l, A_RS_IN), dx,
             GRD(n, l, P_NORM_IN_W), cf->layer_norm ? GRD(n, l, P_NORM_IN_B) : NULL);
}

void dsrn_backward(dsrn_net *n, dsrn_carry *cr, const int32_t *tok, const int32_t *tgt, real scale)
{
    const dsrn_config *cf = &n->cfg;
    const int Bt = cr->Bt;
    const size_t T = (size_t)n->T, N = (size_t)Bt * T, D = cf->D, V = cf->vocab;
    real *grad = n->mem + n->n_params;
    double t_head = dsrn_prof_start();
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < N; r++) {
        real *z = n->logits + r * V;
        for (size_t v = 0; v < V; v++) z[v] -= n->lse[r];
        exp_array(z, V); /* the softmax */
        for (size_t v = 0; v < V; v++) z[v] *= scale;
        z[tgt[r]] -= scale;
    }
    dsrn_prof_stop(DSRN_PROF_HEAD, t_head);
    lin_dw(n, n->logits, N, V, n->xnf, D, grad + n->off_out);
    lin_dx(n, n->logits, N, V, n->mem + n->off_out, D, n->dxn, 0);
    memset(n->dx, 0, N * D * sizeof(real));
    norm_bwd(n, n->dxn, n->xf, N, n->mem + n->off_out_w, n->mu_f, n->rs_f, n->dx, grad + n->off_out_w,
             cf->layer_norm ? grad + n->off_out_b : NULL);
    for (size_t l = cf->L; l-- > 0;) block_bwd(n, cr, l, tok, Bt);
    real *gE = grad + n->off_embd;
    double t_embd = dsrn_prof_start();
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < D; i++)
        for (size_t r = 0; r < N; r++) gE[(size_t)tok[r] * D + i] += n->dx[r * D + i];
    dsrn_prof_stop(DSRN_PROF_ELEMENTWISE, t_embd);
}

/* ======================================================================== */
/* GGUF                                                                      */
/* ======================================================================== */

void dsrn_net_write_gguf(const dsrn_net *n, lmz_gguf_writer *w, float *buf)
{
    const dsrn_config *c = &n->cfg;
    lmz_gguf_w_str(w, "general.architecture", "dsrn");
    lmz_gguf_w_u32(w, "dsrn.embedding_length", c->D);
    lmz_gguf_w_u32(w, "dsrn.block_count", c->L);
    lmz_gguf_w_u32(w, "dsrn.feed_forward_length", c->F);
    lmz_gguf_w_u32(w, "dsrn.slow_head_count", c->H);
    lmz_gguf_w_u32(w, "dsrn.attention.head_count", c->A);
    lmz_gguf_w_u32(w, "dsrn.attention.window", c->W);
    lmz_gguf_w_f32(w, "dsrn.rope.freq_base", c->rope_base);
    lmz_gguf_w_str(w, "dsrn.norm", c->layer_norm ? "layer" : "rms");
    lmz_gguf_w_f32(w, "dsrn.norm_epsilon", c->eps);
    lmz_gguf_w_f32(w, "dsrn.surprise_clip", c->clip);
    lmz_gguf_w_u32(w, "dsrn.vocab_size", c->vocab);
    if (c->eod >= 0) lmz_gguf_w_u32(w, "dsrn.eod_token_id", (uint32_t)c->eod);
    for (size_t i = 0; i < n->n_params; i++) buf[i] = (float)n->mem[i];
    for (size_t i = 0; i < n->n_t; i++) {
        const dsrn_tensor *t = &n->t[i];
        uint64_t ne[2] = {t->cols, t->rows};
        lmz_gguf_w_tensor(w, t->name, LMZ_GGML_F32, t->rows > 1 ? 2 : 1, ne, buf + t->off);
    }
}

int dsrn_config_from_gguf(const lmz_gguf *g, dsrn_config *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    lmz_str s;
    if (lmz_gguf_get_str(g, "general.architecture", &s) != 0 || !lmz_str_eq(s, "dsrn")) {
        snprintf(err, errlen, "%s", "not a DSRN model (general.architecture)");
        return -1;
    }
    const char *keys[] = {"dsrn.embedding_length", "dsrn.block_count", "dsrn.feed_forward_length",
                          "dsrn.slow_head_count", "dsrn.attention.head_count", "dsrn.attention.window"};
    uint32_t *vals[] = {&c->D, &c->L, &c->F, &c->H, &c->A, &c->W};
    for (size_t i = 0; i < 6; i++) {
        uint64_t v;
        if (lmz_gguf_get_u64(g, keys[i], &v) != 0 || v == 0 || v > (1u << 24)) {
            snprintf(err, errlen, "metadata '%s' is missing or out of range", keys[i]);
            return -1;
        }
        *vals[i] = (uint32_t)v;
    }
    const lmz_gguf_tensor *te = lmz_gguf_tensor_find(g, "token_embd.weight");
    if (!te || te->n_dims != 2) {
        snprintf(err, errlen, "%s", "token_embd.weight is missing");
        return -1;
    }
    c->vocab = (uint32_t)te->ne[1];
    c->tied = lmz_gguf_tensor_find(g, "output.weight") == NULL;
    c->biases = lmz_gguf_tensor_find(g, "blk.0.gru_z.bias") != NULL;
    c->layer_norm = lmz_gguf_get_str(g, "dsrn.norm", &s) == 0 && lmz_str_eq(s, "layer");
    c->eps = 1e-5f;
    c->clip = 10.0f;
    c->rope_base = 10000.0f;
    lmz_gguf_get_f32(g, "dsrn.norm_epsilon", &c->eps);
    lmz_gguf_get_f32(g, "dsrn.surprise_clip", &c->clip);
    lmz_gguf_get_f32(g, "dsrn.rope.freq_base", &c->rope_base);
    uint64_t v;
    c->eod = lmz_gguf_get_u64(g, "dsrn.eod_token_id", &v) == 0 && v < c->vocab ? (int32_t)v : -1;
    return dsrn_config_check(c, err, errlen);
}

void dsrn_net_identity_blocks(dsrn_net *n, uint32_t from)
{
    for (size_t i = 0; i < n->n_t; i++) {
        const dsrn_tensor *t = &n->t[i];
        uint32_t b = tensor_block(t);
        if (b == UINT32_MAX || b < from) continue;
        const char *nm = tensor_role(t);
        if (!strcmp(nm, "attn_output.weight") || !strcmp(nm, "slow_read.weight") || !strcmp(nm, "ffn_down.weight"))
            memset(n->mem + t->off, 0, (size_t)t->rows * t->cols * sizeof *n->mem);
    }
}

int dsrn_net_read_gguf(dsrn_net *n, const lmz_gguf *g, uint32_t blocks, char *err, size_t errlen)
{
    for (size_t i = 0; i < n->n_t; i++) {
        const dsrn_tensor *t = &n->t[i];
        uint32_t b = tensor_block(t);
        if (b != UINT32_MAX && b >= blocks) continue;
        const lmz_gguf_tensor *gt = lmz_gguf_tensor_find(g, t->name);
        if (!gt || gt->ne[0] != t->cols || gt->n_elements != (uint64_t)t->rows * t->cols) {
            snprintf(err, errlen, "tensor '%s' is missing or not of the configured shape", t->name);
            return -1;
        }
        const uint8_t *src = gt->data;
        if (gt->type == LMZ_GGML_F32) {
            for (size_t k = 0; k < (size_t)t->rows * t->cols; k++) {
                float f;
                memcpy(&f, src + 4 * k, 4);
                n->mem[t->off + k] = f;
            }
            continue;
        }
        /* a shipped model (F16, BF16, Q8_0): its rows widened to float, as the engine reads them */
        size_t rb = (size_t)lmz_ggml_row_bytes(gt->type, t->cols);
        float *row = rb ? malloc((size_t)t->cols * sizeof *row) : NULL;
        if (!row) {
            snprintf(err, errlen, "tensor '%s': type %u cannot be read for training", t->name, (unsigned)gt->type);
            return -1;
        }
        for (size_t r = 0; r < t->rows; r++) {
            lmz_row_to_f32(LMZ_KPATH_SCALAR, src + r * rb, gt->type, t->cols, row);
            for (size_t k = 0; k < t->cols; k++) n->mem[t->off + r * t->cols + k] = row[k];
        }
        free(row);
    }
    return 0;
}
