/*
 * dsrn.c — the DSRN architecture (../shared/DSRN.md, docs/DSRN.md) on the
 * deterministic kernels.
 *
 *   x = E[tok]                                          E: (n_vocab, D)
 *   per block (x: the block input, x̂ = norm_in(x), h, c: the stream's state):
 *     z = σ(Wz x̂ + bz)   n = tanh(Wn x̂ + bn)           Wz, Wn: (D, D)
 *     e = mean_d min((x − Wp h_prev)², clip)            Wp: (D, D), a scalar
 *     h = (1 − z) h_prev + z n                          end of document: z = 1
 *     g = σ(Wg h + bg + e softplus(λ))   m = tanh(Wm h + bm)
 *                                                       Wg, Wm: (H·D, D), λ: (H·D)
 *     (the four biases are optional tensors: absent in older files, zero)
 *     c = (1 − g) c_prev + g m                          end of document: g = 0
 *     a = Wo SWA(x̂)     causal softmax attention over the last W tokens,
 *                       RoPE on q and k, A heads of D / A
 *     f = down(silu(gate u) up u),  u = norm_mlp(h)     gate, up: (F, D), down: (D, F)
 *     x ← ((x + f) + Wread c) + a                       Wread: (D, H·D)
 *   logits = Wout norm_out(x)                           tied: Wout = E
 * Norms are RMSNorm (weight) or LayerNorm (weight, bias), as dsrn.norm says.
 * The end-of-document token (dsrn.eod_token_id) resets the fast state and
 * leaves the slow state as it was.
 *
 * A batch is B tokens, each of its own state at its own position (prefill:
 * one state, consecutive positions; step: k states). Matrix products run
 * over the batch; the scans go through the rows in order, reading and
 * writing each row's state, so a prefill chunk and the same tokens one step
 * at a time compute every number the same way.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pool.h"
#include "model_impl.h"
#include "tensor/detmath.h"
#include "tensor/kernels.h"

typedef struct {
    float *w, *b; /* (D) weight; bias for LayerNorm (NULL for RMSNorm) */
} norm;

typedef struct {
    norm in, mlp;
    const lmz_gguf_tensor *wz, *wn, *wp;       /* (D) -> (D) */
    const lmz_gguf_tensor *wg, *wm;            /* (D) -> (H·D) */
    const lmz_gguf_tensor *wread;              /* (H·D) -> (D) */
    const lmz_gguf_tensor *wq, *wk, *wv, *wo;  /* (D) -> (D) */
    const lmz_gguf_tensor *gate, *up, *down;   /* (D) -> (F), (F) -> (D) */
    float *sp;                                 /* (H·D) softplus(λ) */
    float *bz, *bn, *bg, *bm;                  /* the gate biases: (D), (D), (H·D), (H·D); NULL
                                                  where the file has none (older models) */
} block;

typedef struct dsrn_state dsrn_state;

typedef struct {
    lmz_model base;
    uint32_t D, L, F, H, A, hd, W;
    int layer_norm;          /* 0: RMSNorm */
    float eps, clip;
    int32_t eod;             /* -1: none */
    float *rope_freq;        /* (hd / 2) */
    const lmz_gguf_tensor *embd, *output;
    norm out_norm;
    block *blocks;
    lmz_pool *pool;
    unsigned n_threads;
    uint32_t cap;            /* KV ring slots per layer: W + CHUNK, a multiple of 16 */
    float *wrows;            /* (threads, 4, max(D, F, H·D)) weight rows widened to F32 */
    float *scores;           /* (threads, A, W) */
    float *raw;              /* (threads, cap) one head's scores by ring slot */
    const float **vrows;     /* (threads, W) */
    /* scratch for a batch of up to cap_b tokens */
    size_t cap_b;
    /* (cap_b, width): x, x̂ (or the next norm), z, n, h_prev, h, Wp h_prev, e (width 1),
     * g, m (then c), Wread c, q, k, v, attention, Wo attention, u (then the MLP's
     * output), gate, up, exp scratch (width F), RoPE cos/sin (width hd) */
    float *x, *xn, *z, *n, *hp, *hc, *p, *e, *g, *m, *r, *q, *k, *v, *att, *o, *u, *gb, *ub, *ex, *rot;
    uint64_t *pos;           /* (cap_b) */
    const int32_t *tokens;   /* (nb) of the running batch */
    size_t nb;               /* rows in the running batch */
    dsrn_state **rows;       /* (cap_b) */
} dsrn_model;

struct dsrn_state {
    lmz_state base;
    float *h;   /* (L, D) fast state */
    float *c;   /* (L, H·D) slow state */
    float *kc;  /* (L, cap / 16, D, 16) keys after RoPE, ring by position, in blocks of 16
                   slots stored transposed (element d of slot t at [t / 16][d][t % 16]) */
    float *vc;  /* (L, cap, D) */
};

/* prefill runs in chunks of this many tokens */
#define CHUNK 64
#define HEADS_BELOW 16 /* steps of fewer tokens split attention by heads (attend_heads) */

/* ======================================================================== */
/* loading                                                                   */
/* ======================================================================== */

static void dsrn_free(lmz_model *mb)
{
    dsrn_model *m = (dsrn_model *)mb;
    if (!m) return;
    if (m->blocks)
        for (uint32_t l = 0; l < m->L; l++) {
            block *B = &m->blocks[l];
            free(B->in.w), free(B->in.b), free(B->mlp.w), free(B->mlp.b), free(B->sp), free(B->bz), free(B->bn),
                free(B->bg), free(B->bm);
        }
    free(m->blocks);
    lmz_model_qscratch_free(&m->base);
    free(m->out_norm.w);
    free(m->out_norm.b);
    free(m->rope_freq);
    free(m->wrows);
    free(m->scores);
    free(m->raw);
    free(m->vrows);
    float *bufs[] = {m->x, m->xn, m->z, m->n, m->hp, m->hc, m->p, m->e, m->g, m->m, m->r,
                     m->q, m->k, m->v, m->att, m->o, m->u, m->gb, m->ub, m->ex, m->rot};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(m->pos);
    free(m->rows);
    lmz_pool_free(m->pool);
    free(m);
}

static int reserve(dsrn_model *m, size_t b)
{
    if (b <= m->cap_b) return 0;
    size_t D = m->D, HD = (size_t)m->H * m->D;
    float **bufs[] = {&m->x, &m->xn, &m->z, &m->n, &m->hp, &m->hc, &m->p, &m->e, &m->g, &m->m, &m->r,
                      &m->q, &m->k, &m->v, &m->att, &m->o, &m->u, &m->gb, &m->ub, &m->ex, &m->rot};
    size_t widths[] = {D, D, D, D, D, D, D, 1, HD, HD, D, D, D, D, D, D, D, m->F, m->F, m->F, m->hd};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
        float *p = lmz_model_scratch(*bufs[i], b * widths[i]); /* scratch of each pass */
        if (!p) return -1;
        *bufs[i] = p;
    }
    uint64_t *pos = realloc(m->pos, b * sizeof *pos);
    if (!pos) return -1;
    m->pos = pos;
    dsrn_state **rows = realloc(m->rows, b * sizeof *rows);
    if (!rows) return -1;
    m->rows = rows;
    if (lmz_model_qreserve(&m->base, b) != 0) return -1;
    m->cap_b = b;
    return 0;
}

static int load_norm(dsrn_model *m, const char *prefix, norm *nm, char *err, size_t errlen)
{
    char name[128];
    snprintf(name, sizeof name, "%s.weight", prefix);
    if (!(nm->w = lmz_model_vec(&m->base, name, m->D, err, errlen))) return -1;
    if (!m->layer_norm) return 0;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return (nm->b = lmz_model_vec(&m->base, name, m->D, err, errlen)) ? 0 : -1;
}

static int load_block(dsrn_model *m, uint32_t l, char *err, size_t errlen)
{
    block *B = &m->blocks[l];
    const lmz_model *b = &m->base;
    uint32_t D = m->D, HD = m->H * m->D, F = m->F;
    char nm[64];
#define NAME(s) (snprintf(nm, sizeof nm, "blk.%u." s, l), nm)
    if (load_norm(m, NAME("norm_in"), &B->in, err, errlen) != 0 ||
        load_norm(m, NAME("norm_mlp"), &B->mlp, err, errlen) != 0)
        return -1;
    if (!(B->wz = lmz_model_mat(b, NAME("gru_z.weight"), D, D, err, errlen)) ||
        !(B->wn = lmz_model_mat(b, NAME("gru_n.weight"), D, D, err, errlen)) ||
        !(B->wp = lmz_model_mat(b, NAME("surprise.weight"), D, D, err, errlen)) ||
        !(B->wg = lmz_model_mat(b, NAME("slow_g.weight"), D, HD, err, errlen)) ||
        !(B->wm = lmz_model_mat(b, NAME("slow_m.weight"), D, HD, err, errlen)) ||
        !(B->wread = lmz_model_mat(b, NAME("slow_read.weight"), HD, D, err, errlen)) ||
        !(B->wq = lmz_model_mat(b, NAME("attn_q.weight"), D, D, err, errlen)) ||
        !(B->wk = lmz_model_mat(b, NAME("attn_k.weight"), D, D, err, errlen)) ||
        !(B->wv = lmz_model_mat(b, NAME("attn_v.weight"), D, D, err, errlen)) ||
        !(B->wo = lmz_model_mat(b, NAME("attn_output.weight"), D, D, err, errlen)) ||
        !(B->gate = lmz_model_mat(b, NAME("ffn_gate.weight"), D, F, err, errlen)) ||
        !(B->up = lmz_model_mat(b, NAME("ffn_up.weight"), D, F, err, errlen)) ||
        !(B->down = lmz_model_mat(b, NAME("ffn_down.weight"), F, D, err, errlen)))
        return -1;
    const lmz_gguf_tensor *mats[] = {B->wz, B->wn, B->wp, B->wg, B->wm, B->wread, B->wq,
                                     B->wk, B->wv, B->wo, B->gate, B->up, B->down};
    for (size_t i = 0; i < sizeof mats / sizeof *mats; i++)
        if (lmz_model_qprep(&m->base, mats[i], err, errlen) != 0) return -1;
    if (!(B->sp = lmz_model_vec(b, NAME("slow_lambda"), HD, err, errlen))) return -1;
    /* the gate biases, each optional: a file without one adds nothing there */
    float **bias[4] = {&B->bz, &B->bn, &B->bg, &B->bm};
    const char *bname[4] = {"gru_z.bias", "gru_n.bias", "slow_g.bias", "slow_m.bias"};
    for (int k = 0; k < 4; k++) {
        snprintf(nm, sizeof nm, "blk.%u.%s", l, bname[k]);
        if (lmz_gguf_tensor_find(&b->g, nm) && !(*bias[k] = lmz_model_vec(b, nm, k < 2 ? D : HD, err, errlen)))
            return -1;
    }
#undef NAME
    for (uint32_t i = 0; i < HD; i++) { /* softplus, once */
        float x = B->sp[i];
        B->sp[i] = x > 20.0f ? x : lmz_logf(1.0f + lmz_expf(x));
    }
    return 0;
}

static const lmz_model_ops dsrn_ops;

int lmz_dsrn_open(const lmz_model *base, const lmz_model_opts *opts, lmz_model **out, char *err, size_t errlen)
{
    dsrn_model *m = calloc(1, sizeof *m);
    if (!m) return lmz_model_errf(err, errlen, "%s", "out of memory");
    m->base = *base;
    m->base.ops = &dsrn_ops;
    const lmz_gguf *g = &m->base.g;
    if (lmz_model_u32(g, "dsrn.embedding_length", &m->D, err, errlen) ||
        lmz_model_u32(g, "dsrn.block_count", &m->L, err, errlen) ||
        lmz_model_u32(g, "dsrn.feed_forward_length", &m->F, err, errlen) ||
        lmz_model_u32(g, "dsrn.slow_head_count", &m->H, err, errlen) ||
        lmz_model_u32(g, "dsrn.attention.head_count", &m->A, err, errlen) ||
        lmz_model_u32(g, "dsrn.attention.window", &m->W, err, errlen))
        goto fail;
    if (m->D % m->A || (m->D / m->A) % 2) {
        lmz_model_errf(err, errlen, "%s", "dsrn: the attention heads do not divide the width into even sizes");
        goto fail;
    }
    /* a block has 16 tensors at least */
    if ((uint64_t)m->H * m->D > (1u << 30) || m->W > LMZ_MAX_WINDOW || m->L > g->n_tensors / 16) {
        lmz_model_errf(err, errlen, "%s", "dsrn: sizes out of range for the file");
        goto fail;
    }
    if (opts && opts->window && opts->window != m->W) {
        lmz_model_errf(err, errlen, "dsrn: the attention window is %u tokens, fixed by the model", m->W);
        goto fail;
    }
    m->hd = m->D / m->A;
    lmz_str nt;
    m->layer_norm = lmz_gguf_get_str(g, "dsrn.norm", &nt) == 0 && lmz_str_eq(nt, "layer");
    if (lmz_gguf_get_str(g, "dsrn.norm", &nt) == 0 && !m->layer_norm && !lmz_str_eq(nt, "rms")) {
        lmz_model_errf(err, errlen, "%s", "dsrn.norm is neither 'rms' nor 'layer'");
        goto fail;
    }
    if (lmz_gguf_get_f32(g, "dsrn.norm_epsilon", &m->eps) != 0) m->eps = 1e-5f;
    if (lmz_gguf_get_f32(g, "dsrn.surprise_clip", &m->clip) != 0) m->clip = 10.0f;
    float rope_base = 10000.0f;
    lmz_gguf_get_f32(g, "dsrn.rope.freq_base", &rope_base);
    if (!(m->eps > 0.0f && m->eps < 1.0f) || !(m->clip > 0.0f) || !(rope_base > 1.0f && rope_base < 1e9f)) {
        lmz_model_errf(err, errlen, "%s", "dsrn: norm epsilon, surprise clip or RoPE base out of range");
        goto fail;
    }
    uint64_t v;
    m->eod = lmz_gguf_get_u64(g, "dsrn.eod_token_id", &v) == 0 && v < m->base.n_vocab ? (int32_t)v : -1;
    m->base.window = m->W;
    /* the threads, before det-i8-v1's quantization, which they share */
    m->pool = lmz_pool_new(opts && opts->threads ? opts->threads : 1);
    if (!m->pool) goto oom;
    m->base.pool = m->pool;
    m->embd = lmz_model_mat(&m->base, "token_embd.weight", m->D, m->base.n_vocab, err, errlen);
    if (!m->embd) goto fail;
    m->base.dim = m->D;
    m->output = lmz_gguf_tensor_find(g, "output.weight")
                    ? lmz_model_mat(&m->base, "output.weight", m->D, m->base.n_vocab, err, errlen)
                    : m->embd;
    if (!m->output || load_norm(m, "output_norm", &m->out_norm, err, errlen) != 0 ||
        lmz_model_qprep(&m->base, m->output, err, errlen) != 0)
        goto fail;
    if (!(m->blocks = calloc(m->L, sizeof *m->blocks))) goto oom;
    for (uint32_t l = 0; l < m->L; l++)
        if (load_block(m, l, err, errlen) != 0) goto fail;
    uint32_t half = m->hd / 2;
    if (!(m->rope_freq = malloc(half * sizeof *m->rope_freq))) goto oom;
    for (uint32_t i = 0; i < half; i++) m->rope_freq[i] = lmz_powf(rope_base, -(float)(2 * i) / (float)m->hd);
    m->n_threads = lmz_pool_threads(m->pool);
    m->cap = (m->W + CHUNK + 15) / 16 * 16;
    size_t wmax = m->D > m->F ? m->D : m->F;
    if ((size_t)m->H * m->D > wmax) wmax = (size_t)m->H * m->D;
    m->wrows = lmz_model_scratch(NULL, (size_t)m->n_threads * 4 * wmax);
    m->scores = lmz_model_scratch(NULL, (size_t)m->n_threads * m->A * m->W);
    m->vrows = malloc((size_t)m->n_threads * m->W * sizeof *m->vrows);
    m->raw = lmz_model_scratch(NULL, (size_t)m->n_threads * m->cap);
    if (!m->wrows || !m->scores || !m->vrows || !m->raw || reserve(m, CHUNK) != 0) goto oom;
    *out = &m->base;
    return 0;
oom:
    lmz_model_errf(err, errlen, "%s", "out of memory");
fail:
    dsrn_free(&m->base);
    return -1;
}

/* ======================================================================== */
/* state                                                                     */
/* ======================================================================== */

static void dsrn_state_free(lmz_state *sb)
{
    dsrn_state *s = (dsrn_state *)sb;
    free(s->h);
    free(s->c);
    free(s->kc);
    free(s->vc);
    free(s);
}

static void dsrn_state_reset(lmz_state *sb)
{
    dsrn_state *s = (dsrn_state *)sb;
    const dsrn_model *m = (const dsrn_model *)sb->m;
    memset(s->h, 0, (size_t)m->L * m->D * sizeof(float));
    memset(s->c, 0, (size_t)m->L * m->H * m->D * sizeof(float));
}

/* the whole ring: slots past the history are never read */
static void dsrn_state_copy(lmz_state *db, const lmz_state *sb)
{
    dsrn_state *d = (dsrn_state *)db;
    const dsrn_state *s = (const dsrn_state *)sb;
    const dsrn_model *m = (const dsrn_model *)sb->m;
    size_t ring = (size_t)m->L * m->cap * m->D;
    memcpy(d->h, s->h, (size_t)m->L * m->D * sizeof(float));
    memcpy(d->c, s->c, (size_t)m->L * m->H * m->D * sizeof(float));
    memcpy(d->kc, s->kc, ring * sizeof(float));
    memcpy(d->vc, s->vc, ring * sizeof(float));
}

static lmz_state *dsrn_state_new(const lmz_model *mb)
{
    const dsrn_model *m = (const dsrn_model *)mb;
    dsrn_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->base.m = mb;
    s->h = calloc((size_t)m->L * m->D, sizeof(float));
    s->c = calloc((size_t)m->L * m->H * m->D, sizeof(float));
    s->kc = calloc((size_t)m->L * m->cap * m->D, sizeof(float));
    s->vc = calloc((size_t)m->L * m->cap * m->D, sizeof(float));
    if (!s->h || !s->c || !s->kc || !s->vc) {
        dsrn_state_free(&s->base);
        return NULL;
    }
    return &s->base;
}

/* ======================================================================== */
/* forward                                                                   */
/* ======================================================================== */

/* products of one input in one split over the threads (lmz_model_matmul_many) */
static void matmul_many(const dsrn_model *m, const lmz_gguf_tensor *const *t, float *const *y, size_t k,
                        const float *x, size_t T)
{
    size_t wmax = m->D > m->F ? m->D : m->F;
    if ((size_t)m->H * m->D > wmax) wmax = (size_t)m->H * m->D;
    lmz_model_matmul_many(&m->base, m->pool, m->wrows, wmax, t, y, k, x, T);
}

static void matmul(const dsrn_model *m, const lmz_gguf_tensor *t, const float *x, size_t T, float *y)
{
    matmul_many(m, &t, &y, 1, x, T);
}

static void apply_norm(const dsrn_model *m, const norm *nm, const float *x, float *out)
{
    uint32_t D = m->D;
    if (m->layer_norm) {
        float mean = 0.0f, var = 0.0f;
        for (uint32_t i = 0; i < D; i++) mean += x[i];
        mean /= (float)D;
        for (uint32_t i = 0; i < D; i++) var += (x[i] - mean) * (x[i] - mean);
        float inv = 1.0f / sqrtf(var / (float)D + m->eps);
        for (uint32_t i = 0; i < D; i++) out[i] = (x[i] - mean) * inv * nm->w[i] + nm->b[i];
    } else {
        float ss = 0.0f;
        for (uint32_t i = 0; i < D; i++) ss += x[i] * x[i];
        float inv = 1.0f / sqrtf(ss / (float)D + m->eps);
        for (uint32_t i = 0; i < D; i++) out[i] = x[i] * inv * nm->w[i];
    }
}

/* σ(x) and tanh(x) of n values in place, through the deterministic exp */
static void sigmoid_array(const dsrn_model *m, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = -x[i];
    lmz_exp_array(m->base.kp, x, x, n);
    for (size_t i = 0; i < n; i++) x[i] = 1.0f / (1.0f + x[i]);
}

static void tanh_array(const dsrn_model *m, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = 2.0f * x[i];
    lmz_exp_array(m->base.kp, x, x, n);
    for (size_t i = 0; i < n; i++) x[i] = 1.0f - 2.0f / (x[i] + 1.0f);
}

static void rope_angles(const dsrn_model *m, uint64_t pos, float *cs)
{
    for (uint32_t i = 0; i < m->hd / 2; i++) lmz_rope_sincos(pos, m->rope_freq[i], &cs[2 * i + 1], &cs[2 * i]);
}

static void rope(const dsrn_model *m, float *v, const float *cs)
{
    for (uint32_t h = 0; h < m->A; h++)
        for (uint32_t i = 0; i < m->hd / 2; i++) {
            float c = cs[2 * i], s = cs[2 * i + 1];
            float *p = v + (size_t)h * m->hd + 2 * i;
            float x0 = p[0], x1 = p[1];
            p[0] = x0 * c - x1 * s;
            p[1] = x0 * s + x1 * c;
        }
}

/* the per-token phases between the matrix products */
enum { TOK_EMBED, TOK_GATES, TOK_SURPRISE, TOK_SLOW, TOK_ATTN, TOK_ATTEND, TOK_SWIGLU, TOK_OUT };

typedef struct {
    dsrn_model *m;
    uint32_t l;
    int phase;
    int last;   /* TOK_OUT: after the last block, apply the output norm */
} tok_job;

/* token b's attention in heads h0 .. h1 - 1: each head's sums are its own
 * (lmz_weighted_sum_heads), whichever heads go together */
static void attend(dsrn_model *m, size_t b, uint32_t l, uint32_t h0, uint32_t h1, unsigned thread)
{
    const uint32_t D = m->D, hd = m->hd, cap = m->cap;
    const dsrn_state *s = m->rows[b];
    uint64_t pos = m->pos[b];
    uint32_t n_ctx = pos + 1 < m->W ? (uint32_t)pos + 1 : m->W;
    float *scores = m->scores + (size_t)thread * m->A * m->W, *raw = m->raw + (size_t)thread * cap;
    const float **vrows = m->vrows + (size_t)thread * m->W;
    const float *kc = s->kc + (size_t)l * cap * D, *vc = s->vc + (size_t)l * cap * D + (size_t)h0 * hd;
    const float inv_sqrt = 1.0f / sqrtf((float)hd);
    /* the window's ring slots, oldest first, and the blocks that hold them
     * (n_ctx <= cap - CHUNK: on a wrap the first and last block differ) */
    const uint32_t first = (uint32_t)((pos + 1 - n_ctx) % cap), last = (uint32_t)(pos % cap);
    for (uint32_t j = 0, t = first; j < n_ctx; j++, t = t + 1 == cap ? 0 : t + 1)
        vrows[j] = vc + (size_t)t * D; /* the heads' values side by side */
    for (uint32_t h = h0; h < h1; h++) {
        lmz_window_scores(m->base.kp, kc + (size_t)h * hd * 16, D, m->q + b * D + (size_t)h * hd, 1, hd, first, last,
                          cap, raw);
        lmz_window_softmax(m->base.kp, raw, first, n_ctx, cap, inv_sqrt, scores + (size_t)h * m->W);
    }
    lmz_weighted_sum_heads(m->base.kp, scores + (size_t)h0 * m->W, m->W, h1 - h0, vrows, n_ctx, hd,
                           m->att + b * D + (size_t)h0 * hd);
}

static void tok_rows(void *ctx, size_t b0, size_t b1, unsigned thread)
{
    const tok_job *j = ctx;
    dsrn_model *m = j->m;
    const uint32_t D = m->D, F = m->F, HD = m->H * m->D;
    const block *B = &m->blocks[j->l];
    for (size_t b = b0; b < b1; b++) {
        float *x = m->x + b * D;
        switch (j->phase) {
        case TOK_EMBED:
            lmz_model_row(&m->base, m->embd, (uint64_t)m->tokens[b], x);
            rope_angles(m, m->pos[b], m->rot + b * m->hd);
            break;
        case TOK_GATES: /* after norm_in: x̂; after Wz, Wn: z, n (plus the biases) */
            if (B->bz)
                for (uint32_t i = 0; i < D; i++) m->z[b * D + i] += B->bz[i];
            if (B->bn)
                for (uint32_t i = 0; i < D; i++) m->n[b * D + i] += B->bn[i];
            sigmoid_array(m, m->z + b * D, D);
            tanh_array(m, m->n + b * D, D);
            break;
        case TOK_SURPRISE: { /* p = Wp h_prev is in m->p */
            const float *p = m->p + b * D;
            float sum = 0.0f;
            for (uint32_t i = 0; i < D; i++) {
                float d = (x[i] - p[i]) * (x[i] - p[i]);
                sum += d < m->clip ? d : m->clip;
            }
            m->e[b] = sum / (float)D;
            break;
        }
        case TOK_SLOW: { /* g, m from Wg h, Wm h */
            float *g = m->g + b * HD;
            if (B->bg)
                for (uint32_t i = 0; i < HD; i++) g[i] += B->bg[i];
            if (B->bm)
                for (uint32_t i = 0; i < HD; i++) m->m[b * HD + i] += B->bm[i];
            for (uint32_t i = 0; i < HD; i++) g[i] = g[i] + m->e[b] * B->sp[i];
            sigmoid_array(m, g, HD);
            tanh_array(m, m->m + b * HD, HD);
            if (m->tokens[b] == m->eod) memset(g, 0, HD * sizeof(float));
            break;
        }
        case TOK_ATTN: { /* rotate q and k, store k and v; the MLP's norm of h */
            dsrn_state *s = m->rows[b];
            rope(m, m->q + b * D, m->rot + b * m->hd);
            rope(m, m->k + b * D, m->rot + b * m->hd);
            size_t slot = (size_t)(m->pos[b] % m->cap);
            float *kt = s->kc + ((size_t)j->l * m->cap + slot / 16 * 16) * D + slot % 16;
            for (uint32_t d = 0; d < D; d++) kt[16 * (size_t)d] = m->k[b * D + d];
            memcpy(s->vc + ((size_t)j->l * m->cap + slot) * D, m->v + b * D, D * sizeof(float));
            apply_norm(m, &B->mlp, m->hc + b * D, m->u + b * D);
            break;
        }
        case TOK_ATTEND:
            attend(m, b, j->l, 0, m->A, thread);
            break;
        case TOK_SWIGLU: { /* g / (1 + exp(-g)) * u */
            float *g = m->gb + b * F, *u = m->ub + b * F, *ex = m->ex + b * F;
            for (uint32_t i = 0; i < F; i++) ex[i] = -g[i];
            lmz_exp_array(m->base.kp, ex, ex, F);
            for (uint32_t i = 0; i < F; i++) g[i] = g[i] / (1.0f + ex[i]) * u[i];
            break;
        }
        case TOK_OUT: { /* x += f + Wread c + a; then the next norm */
            const float *f = m->u + b * D, *r = m->r + b * D, *a = m->o + b * D;
            for (uint32_t i = 0; i < D; i++) x[i] = ((x[i] + f[i]) + r[i]) + a[i];
            break;
        }
        }
        if (j->phase == TOK_EMBED || j->phase == TOK_OUT) {
            if (j->last) apply_norm(m, &m->out_norm, x, m->xn + b * D);
            else apply_norm(m, &m->blocks[j->phase == TOK_EMBED ? 0 : j->l + 1].in, x, m->xn + b * D);
        }
    }
}

/* the two scans, split over the width (elementwise: the same bits however
 * it is split); rows go in order, each reading and writing its state */
typedef struct {
    dsrn_model *m;
    uint32_t l;
    int slow;
} scan_job;

static void scan_cols(void *ctx, size_t i0, size_t i1, unsigned thread)
{
    (void)thread;
    const scan_job *j = ctx;
    dsrn_model *m = j->m;
    const size_t D = m->D, HD = (size_t)m->H * m->D;
    for (size_t b = 0; b < m->nb; b++) {
        dsrn_state *s = m->rows[b];
        int eod = m->tokens[b] == m->eod;
        if (!j->slow) { /* h: hp gets h_prev, hc the new h */
            float *h = s->h + j->l * D;
            const float *z = m->z + b * D, *n = m->n + b * D;
            float *hp = m->hp + b * D, *hc = m->hc + b * D;
            for (size_t i = i0; i < i1; i++) {
                hp[i] = h[i];
                h[i] = eod ? n[i] : (1.0f - z[i]) * h[i] + z[i] * n[i];
                hc[i] = h[i];
            }
        } else { /* c: the new c goes over m (read first, same index) */
            float *c = s->c + j->l * HD, *mc = m->m + b * HD;
            const float *g = m->g + b * HD;
            for (size_t i = i0; i < i1; i++) {
                c[i] = (1.0f - g[i]) * c[i] + g[i] * mc[i];
                mc[i] = c[i];
            }
        }
    }
}

/* a phase's work per token, in multiply-adds or the like (an exp, tanh or
 * sigmoid about 16): whether its tokens are worth the worker threads */
static double phase_work(const dsrn_model *m, int phase)
{
    const double D = m->D, HD = (double)m->H * m->D;
    switch (phase) {
    case TOK_GATES: return 32.0 * D;
    case TOK_SLOW: return 32.0 * HD;
    case TOK_ATTN: return 16.0 * D;
    case TOK_ATTEND: return 3.0 * D * (double)m->W; /* the window's scores and sums */
    case TOK_SWIGLU: return 16.0 * (double)m->F;
    default: return 8.0 * D;
    }
}

/* attention in units of one token's head: with several threads, a step of
 * a few streams (7 tokens on 2 threads split 4 : 3 by tokens) shares it
 * evenly */
static void attend_heads(void *ctx, size_t u0, size_t u1, unsigned thread)
{
    const tok_job *j = ctx;
    for (size_t u = u0; u < u1; u++)
        attend(j->m, u / j->m->A, j->l, (uint32_t)(u % j->m->A), (uint32_t)(u % j->m->A) + 1, thread);
}

static void per_token(dsrn_model *m, uint32_t l, int phase, int last)
{
    tok_job j = {m, l, phase, last};
    const double work = (double)m->nb * phase_work(m, phase);
    if (phase == TOK_ATTEND && m->nb < HEADS_BELOW && lmz_pool_threads(m->pool) > 1)
        lmz_pool_for_work(m->pool, m->nb * m->A, work, attend_heads, &j);
    else lmz_pool_for_work(m->pool, m->nb, work, tok_rows, &j);
}

/* B tokens through the network: token b belongs to state m->rows[b] at
 * position m->pos[b]. */
static void forward(dsrn_model *m, const int32_t *tokens, size_t B, float *logits, const uint8_t *need, float *hidden)
{
    const size_t D = m->D, HD = (size_t)m->H * m->D;
    m->tokens = tokens;
    m->nb = B;
    per_token(m, 0, TOK_EMBED, 0);
    for (uint32_t l = 0; l < m->L; l++) {
        const block *K = &m->blocks[l];
        /* x̂ stays until the block's end: its five products at once (q, k and v
         * wait in their buffers for TOK_ATTN) */
        const lmz_gguf_tensor *xt[] = {K->wz, K->wn, K->wq, K->wk, K->wv};
        float *const xy[] = {m->z, m->n, m->q, m->k, m->v};
        matmul_many(m, xt, xy, 5, m->xn, B);
        per_token(m, l, TOK_GATES, 0);
        scan_job sj = {m, l, 0};
        lmz_pool_for_work(m->pool, D, 8.0 * (double)D * (double)B, scan_cols, &sj);
        matmul(m, K->wp, m->hp, B, m->p);
        per_token(m, l, TOK_SURPRISE, 0);
        const lmz_gguf_tensor *ht[] = {K->wg, K->wm};
        float *const hy[] = {m->g, m->m};
        matmul_many(m, ht, hy, 2, m->hc, B);
        per_token(m, l, TOK_SLOW, 0);
        sj.slow = 1;
        lmz_pool_for_work(m->pool, HD, 8.0 * (double)HD * (double)B, scan_cols, &sj);
        matmul(m, K->wread, m->m, B, m->r);
        per_token(m, l, TOK_ATTN, 0);
        per_token(m, l, TOK_ATTEND, 0);
        matmul(m, K->wo, m->att, B, m->o);
        const lmz_gguf_tensor *ut[] = {K->gate, K->up};
        float *const uy[] = {m->gb, m->ub};
        matmul_many(m, ut, uy, 2, m->u, B);
        per_token(m, l, TOK_SWIGLU, 0);
        matmul(m, K->down, m->gb, B, m->u);
        per_token(m, l, TOK_OUT, l + 1 == m->L);
    }
    if (!logits) return;
    size_t c = lmz_model_keep_rows(m->xn, m->D, B, need);
    if (c) matmul(m, m->output, m->xn, c, logits);
    if (c && hidden) memcpy(hidden, m->xn, c * m->D * sizeof *hidden);
}

static int dsrn_prefill(lmz_model *mb, lmz_state *sb, const int32_t *tokens, size_t n, float *logits, float *hidden)
{
    dsrn_model *m = (dsrn_model *)mb;
    dsrn_state *s = (dsrn_state *)sb;
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t B = n - i < CHUNK ? n - i : CHUNK;
        for (size_t b = 0; b < B; b++) {
            m->rows[b] = s;
            m->pos[b] = s->base.pos + b;
        }
        forward(m, tokens + i, B, logits ? logits + i * m->base.n_vocab : NULL, NULL, hidden ? hidden + i * m->D : NULL);
        s->base.pos += B;
    }
    return 0;
}

static int dsrn_step(lmz_model *mb, lmz_state **states, const int32_t *tokens, size_t k, float *logits,
                     const uint8_t *need, float *hidden)
{
    dsrn_model *m = (dsrn_model *)mb;
    if (reserve(m, k) != 0) return -1;
    for (size_t b = 0; b < k; b++) {
        m->rows[b] = (dsrn_state *)states[b];
        m->pos[b] = states[b]->pos;
    }
    forward(m, tokens, k, logits, need, hidden);
    for (size_t b = 0; b < k; b++) states[b]->pos++;
    return 0;
}

/* lmz_model_prefill_many's passes: rows of several states through forward */
static int pass_reserve(lmz_model *mb, size_t B) { return reserve((dsrn_model *)mb, B); }

static void pass_row(lmz_model *mb, size_t b, lmz_state *s, uint64_t pos)
{
    dsrn_model *m = (dsrn_model *)mb;
    m->rows[b] = (dsrn_state *)s;
    m->pos[b] = pos;
}

static void pass_run(lmz_model *mb, const int32_t *tokens, size_t B, float *logits, float *hidden)
{
    forward((dsrn_model *)mb, tokens, B, logits, NULL, hidden);
}

static const lmz_model_ops dsrn_ops = {"dsrn", dsrn_free, dsrn_state_new, dsrn_state_free, dsrn_state_reset,
                                       dsrn_state_copy,
                                       dsrn_prefill, dsrn_step, pass_reserve, pass_row, pass_run, CHUNK};
