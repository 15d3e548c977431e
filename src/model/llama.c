/*
 * llama.c — the llama architecture (SmolLM2, Llama-3.2, TinyLlama and any
 * llama-shaped GGUF) and its kin qwen2 (Qwen2.5) and qwen3 on the
 * deterministic kernels.
 *
 *   x = E[tok]                                       E: (n_vocab, dim)
 *   per layer:
 *     h = rms(x) * attn_norm; q = Wq h; k = Wk h; v = Wv h
 *       qwen2: + biases on q, k, v
 *       qwen3: q and k RMS-normed per head (weights of head_dim), and
 *              head_dim its own (attention.key_length), Wq n_head x head_dim rows
 *     RoPE on q and k at the token's position: llama rotates adjacent pairs
 *       (2i, 2i+1), qwen2, qwen3 and gemma3 the halves of a head (i, i + head_dim/2)
 *   gemma3 (Gemma 3): x = E[tok] * sqrt(dim); q/k norms as qwen3; the attention
 *     output and the FFN's each RMS-normed again before their residual adds
 *     (post_attention_norm, post_ffw_norm); a tanh-GELU-gated FFN; layers
 *     il % P < P - 1 (P the sliding-window pattern, 6 by default) attend to
 *     the last sliding_window positions only, with their own RoPE base
 *     (freq_base_swa) and no RoPE scaling, the others to the whole window
 *     with freq_base and the linear scaling; logits soft-capped c*tanh(l/c)
 *     where the file has final_logit_softcapping
 *     per head: softmax(q . k_t / sqrt(head_dim)) over the window, times v_t
 *     x += Wo (heads)
 *     h = rms(x) * ffn_norm; x += Wdown (silu(Wgate h) * (Wup h))
 *   logits = Wout (rms(x) * output_norm)             (tied: Wout = E)
 * Every sum has one fixed order (kernels.h; attention sums run oldest token
 * first), so prefill and lockstep steps give the same bits.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"
#include "common/pool.h"
#include "tensor/detmath.h"
#include "tensor/kernels.h"

typedef struct {
    const lmz_gguf_tensor *wq, *wk, *wv, *wo, *gate, *up, *down;
    float *attn_norm, *ffn_norm; /* (dim) */
    float *bq, *bk, *bv;         /* qwen2: biases (n_head or n_kv x head_dim), else NULL */
    float *q_norm, *k_norm;      /* qwen3, gemma3: per-head RMSNorm weights (head_dim), else NULL */
    float *post_attn, *post_ffn; /* gemma3: RMSNorms of the attention's and the FFN's outputs (dim) */
    int local;                   /* gemma3: a sliding-window layer */
} layer;

typedef struct {
    lmz_model base;              /* g, tok, kp, n_vocab, window */
    uint32_t dim, n_layer, ffn, n_head, n_kv, head_dim, ctx;
    int neox;                    /* RoPE on the halves of a head (qwen2, qwen3, gemma3), not adjacent pairs */
    int gemma;                   /* gemma3: embedding scale, post norms, GELU (see the top) */
    uint32_t swa;                /* gemma3: positions a sliding-window layer sees (itself included) */
    float emb_scale;             /* gemma3: sqrt(dim); else 1 */
    float attn_scale;            /* the scores' scale: 1/sqrt(head_dim) */
    float softcap;               /* gemma3: final logit soft-capping, 0 for none */
    float eps;
    float *rope_freq;            /* (head_dim / 2) radians per position; gemma3: then the local layers' */
    const lmz_gguf_tensor *embd, *output;
    float *out_norm;             /* (dim) */
    layer *layers;
    lmz_pool *pool;              /* threads split matrix rows */
    /* scratch for a batch of up to cap_b tokens */
    size_t cap_b;
    float *x, *h, *q, *k, *v, *att, *gbuf, *ubuf; /* (cap_b, width) */
    float *rot;                  /* (cap_b, head_dim): cos, sin of each pair at the token's position */
    unsigned n_threads;
    uint32_t cap;                /* KV ring slots per state: window + CHUNK rounded up to 16 */
    float *scores;               /* (threads, group, window) attention weights, oldest first */
    float *raw;                  /* (threads, group, cap) scores by ring slot */
    uint32_t *slots;             /* (threads, window) ring slot of each key, oldest first */
    const float **vrows;         /* (threads, window) */
    float *wrows;                /* (threads, 4, max(dim, ffn)): weight rows widened to F32 */
    uint64_t *pos;               /* (cap_b) */
    struct llama_state **rows;   /* (cap_b) */
} llama_model;

/* prefill runs in chunks of this many tokens */
#define CHUNK 64

typedef struct llama_state {
    lmz_state base;  /* m, pos */
    uint32_t cap;   /* ring slots: window + CHUNK (so a chunk's writes never
                       overwrite keys an earlier token of the chunk still needs),
                       rounded up to a multiple of 16 */
    float *kc;      /* (n_layer, cap / 16, n_kv * head_dim, 16): keys transposed in
                       blocks of 16 slots, for lmz_dot_keys16 */
    float *vc;      /* (n_layer, cap, n_kv * head_dim) */
} llama_state;


/* ======================================================================== */
/* loading                                                                   */
/* ======================================================================== */

static const lmz_gguf_tensor *mat(const llama_model *m, const char *name, uint64_t ne0, uint64_t ne1, char *err,
                                  size_t errlen)
{
    return lmz_model_mat(&m->base, name, ne0, ne1, err, errlen);
}

static float *vec(const llama_model *m, const char *name, uint64_t n, char *err, size_t errlen)
{
    return lmz_model_vec(&m->base, name, n, err, errlen);
}

static void row_to_f32(const llama_model *m, const lmz_gguf_tensor *t, uint64_t r, float *out)
{
    lmz_model_row(&m->base, t, r, out);
}

/* everything but base's file and tokenizer (model.c releases those) */
static void llama_free(lmz_model *mb)
{
    llama_model *m = (llama_model *)mb;
    if (!m) return;
    if (m->layers)
        for (uint32_t l = 0; l < m->n_layer; l++) {
            layer *L = &m->layers[l];
            float *v[] = {L->attn_norm, L->ffn_norm, L->bq, L->bk, L->bv, L->q_norm, L->k_norm, L->post_attn, L->post_ffn};
            for (size_t i = 0; i < sizeof v / sizeof *v; i++) free(v[i]);
        }
    free(m->layers);
    lmz_model_qscratch_free(&m->base);
    free(m->out_norm);
    free(m->rope_freq);
    free(m->x);
    free(m->h);
    free(m->q);
    free(m->k);
    free(m->v);
    free(m->att);
    free(m->scores);
    free(m->raw);
    free(m->slots);
    free(m->vrows);
    free(m->wrows);
    free(m->gbuf);
    free(m->ubuf);
    free(m->rot);
    free(m->pos);
    free(m->rows);
    lmz_pool_free(m->pool);
    free(m);
}

/* the longest weight row: the width, the FFN's, or the heads' (n_head x head_dim) */
static size_t wrow_max(const llama_model *m)
{
    size_t w = m->dim > m->ffn ? m->dim : m->ffn, qd = (size_t)m->n_head * m->head_dim;
    return w > qd ? w : qd;
}

/* scratch for batches of b tokens */
static int reserve(llama_model *m, size_t b)
{
    if (b <= m->cap_b) return 0;
    size_t qd = (size_t)m->n_head * m->head_dim, kd = (size_t)m->n_kv * m->head_dim;
    size_t w = m->dim > m->ffn ? m->dim : m->ffn;
    float **bufs[] = {&m->x, &m->h, &m->q, &m->k, &m->v, &m->att, &m->gbuf, &m->ubuf, &m->rot};
    size_t widths[] = {m->dim, w, qd, kd, kd, qd, m->ffn, m->ffn, 2 * (size_t)m->head_dim};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
        float *p = lmz_model_scratch(*bufs[i], b * widths[i]); /* scratch of each pass */
        if (!p) return -1;
        *bufs[i] = p;
    }
    uint64_t *pos = realloc(m->pos, b * sizeof *pos);
    if (!pos) return -1;
    m->pos = pos;
    llama_state **rows = realloc(m->rows, b * sizeof *rows);
    if (!rows) return -1;
    m->rows = rows;
    if (lmz_model_qreserve(&m->base, b) != 0) return -1;
    m->cap_b = b;
    return 0;
}

static const lmz_model_ops llama_ops;

/* an optional vector of n values: NULL when the file lacks it; *bad set
 * when it is there but not what it should be */
static float *opt_vec(const llama_model *m, const char *name, uint64_t n, int *bad, char *err, size_t errlen)
{
    if (!lmz_gguf_tensor_find(&m->base.g, name)) return NULL;
    float *v = vec(m, name, n, err, errlen);
    if (!v) *bad = 1;
    return v;
}

int lmz_llama_open(const lmz_model *base, const lmz_model_opts *opts, lmz_model **out, char *err, size_t errlen)
{
    llama_model *m = calloc(1, sizeof *m);
    if (!m) return lmz_model_errf(err, errlen, "%s", "out of memory");
    m->base = *base;
    m->base.ops = &llama_ops;
    const lmz_gguf *g = &m->base.g;
    lmz_str as;
    const char *arch = "llama";
    if (lmz_gguf_get_str(g, "general.architecture", &as) == 0)
        arch = lmz_str_eq(as, "qwen2") ? "qwen2" : lmz_str_eq(as, "qwen3") ? "qwen3" : lmz_str_eq(as, "gemma3") ? "gemma3" : arch;
    m->neox = strcmp(arch, "llama") != 0;
    m->gemma = !strcmp(arch, "gemma3");
    char key[96];
#define KEY(s) (snprintf(key, sizeof key, "%s." s, arch), key)
    if (lmz_model_u32(g, KEY("embedding_length"), &m->dim, err, errlen) ||
        lmz_model_u32(g, KEY("block_count"), &m->n_layer, err, errlen) ||
        lmz_model_u32(g, KEY("feed_forward_length"), &m->ffn, err, errlen) ||
        lmz_model_u32(g, KEY("attention.head_count"), &m->n_head, err, errlen) ||
        lmz_model_u32(g, KEY("context_length"), &m->ctx, err, errlen)) {
        llama_free(&m->base);
        return -1;
    }
    uint64_t v64, vlen;
    m->n_kv = lmz_gguf_get_u64(g, KEY("attention.head_count_kv"), &v64) == 0 ? (uint32_t)v64 : m->n_head;
    /* head_dim: attention.key_length where the file says (qwen3: n_head x
     * head_dim need not be the width), else the width over the heads */
    if (m->n_head && lmz_gguf_get_u64(g, KEY("attention.key_length"), &v64) == 0) {
        if (lmz_gguf_get_u64(g, KEY("attention.value_length"), &vlen) == 0 && vlen != v64) {
            llama_free(&m->base);
            return lmz_model_errf(err, errlen, "%s", "key and value lengths differ");
        }
        m->head_dim = v64 > 0 && v64 <= 4096 ? (uint32_t)v64 : 0;
    } else {
        m->head_dim = m->n_head && m->dim % m->n_head == 0 ? m->dim / m->n_head : 0;
    }
    if (m->n_kv == 0 || m->n_head % m->n_kv || m->head_dim == 0 || m->head_dim % 2) {
        llama_free(&m->base);
        return lmz_model_errf(err, errlen, "%s", "head counts do not divide the width");
    }
    if (m->n_layer > g->n_tensors / 9) { /* nine tensors per block */
        lmz_model_errf(err, errlen, "llama.block_count %u does not fit the file's %llu tensors", m->n_layer,
             (unsigned long long)g->n_tensors);
        llama_free(&m->base);
        return -1;
    }
    uint32_t want = opts && opts->window ? opts->window : m->ctx;
    if (want == 0 || (opts && opts->window > LMZ_MAX_WINDOW)) {
        lmz_model_errf(err, errlen, "KV window %u is not 1..%u", want, (unsigned)LMZ_MAX_WINDOW);
        llama_free(&m->base);
        return -1;
    }
    if (lmz_gguf_get_f32(g, KEY("attention.layer_norm_rms_epsilon"), &m->eps) != 0) m->eps = 1e-5f;
    float rope_base = m->gemma ? 1000000.0f : 10000.0f, scale = 1.0f, swa_base = 10000.0f;
    lmz_gguf_get_f32(g, KEY("rope.freq_base"), &rope_base);
    lmz_str st;
    if (lmz_gguf_get_str(g, KEY("rope.scaling.type"), &st) == 0 && lmz_str_eq(st, "linear"))
        lmz_gguf_get_f32(g, KEY("rope.scaling.factor"), &scale);
    uint32_t period = 6;
    m->emb_scale = 1.0f;
    m->attn_scale = 1.0f / sqrtf((float)m->head_dim);
    if (m->gemma) {
        lmz_gguf_get_f32(g, KEY("rope.freq_base_swa"), &swa_base);
        if (lmz_gguf_get_u64(g, KEY("attention.sliding_window"), &v64) != 0 || v64 == 0 || v64 > LMZ_MAX_WINDOW) {
            llama_free(&m->base);
            return lmz_model_errf(err, errlen, "%s", "gemma3.attention.sliding_window is missing or out of range");
        }
        m->swa = (uint32_t)v64;
        /* a scalar period (an array, as some files have, is ignored as llama.cpp does) */
        if (lmz_gguf_get_u64(g, KEY("attention.sliding_window_pattern"), &v64) == 0 && v64 > 0 && v64 <= 1024)
            period = (uint32_t)v64;
        m->emb_scale = sqrtf((float)m->dim);
        if (m->n_layer == 62) m->attn_scale = 1.0f / sqrtf((float)(m->dim / m->n_head)); /* Gemma 3 27B, as llama.cpp */
        if (lmz_gguf_get_f32(g, KEY("final_logit_softcapping"), &m->softcap) != 0 || !(m->softcap > 0.0f))
            m->softcap = 0.0f;
    }
#undef KEY
    if (!(scale > 0.0f)) scale = 1.0f;

    m->embd = mat(m, "token_embd.weight", m->dim, m->base.n_vocab, err, errlen);
    m->base.dim = m->dim;
    m->output = lmz_gguf_tensor_find(g, "output.weight") ? mat(m, "output.weight", m->dim, m->base.n_vocab, err, errlen)
                                                         : m->embd;
    m->out_norm = m->embd && m->output ? vec(m, "output_norm.weight", m->dim, err, errlen) : NULL;
    m->layers = calloc(m->n_layer, sizeof *m->layers);
    int ok = m->embd && m->output && m->out_norm && m->layers;
    uint32_t qd = m->n_head * m->head_dim, kd = m->n_kv * m->head_dim;
    for (uint32_t l = 0; l < m->n_layer && ok; l++) {
        char nm[96];
        layer *L = &m->layers[l];
#define NAME(s) (snprintf(nm, sizeof nm, "blk.%u." s, l), nm)
        ok = (L->attn_norm = vec(m, NAME("attn_norm.weight"), m->dim, err, errlen)) &&
             (L->ffn_norm = vec(m, NAME("ffn_norm.weight"), m->dim, err, errlen)) &&
             (L->wq = mat(m, NAME("attn_q.weight"), m->dim, qd, err, errlen)) &&
             (L->wk = mat(m, NAME("attn_k.weight"), m->dim, kd, err, errlen)) &&
             (L->wv = mat(m, NAME("attn_v.weight"), m->dim, kd, err, errlen)) &&
             (L->wo = mat(m, NAME("attn_output.weight"), qd, m->dim, err, errlen)) &&
             (L->gate = mat(m, NAME("ffn_gate.weight"), m->dim, m->ffn, err, errlen)) &&
             (L->up = mat(m, NAME("ffn_up.weight"), m->dim, m->ffn, err, errlen)) &&
             (L->down = mat(m, NAME("ffn_down.weight"), m->ffn, m->dim, err, errlen));
        int bad = 0;
        if (ok) { /* qwen2's biases, qwen3's q/k norms: where the file has them */
            L->bq = opt_vec(m, NAME("attn_q.bias"), qd, &bad, err, errlen);
            if (!bad) L->bk = opt_vec(m, NAME("attn_k.bias"), kd, &bad, err, errlen);
            if (!bad) L->bv = opt_vec(m, NAME("attn_v.bias"), kd, &bad, err, errlen);
            if (!bad) L->q_norm = opt_vec(m, NAME("attn_q_norm.weight"), m->head_dim, &bad, err, errlen);
            if (!bad) L->k_norm = opt_vec(m, NAME("attn_k_norm.weight"), m->head_dim, &bad, err, errlen);
            if (!bad && (!L->q_norm) != (!L->k_norm)) {
                lmz_model_errf(err, errlen, "blk.%u: a q norm without a k norm, or the reverse", l);
                bad = 1;
            }
            if (!bad && m->gemma) {
                ok = (L->post_attn = vec(m, NAME("post_attention_norm.weight"), m->dim, err, errlen)) &&
                     (L->post_ffn = vec(m, NAME("post_ffw_norm.weight"), m->dim, err, errlen)) && L->q_norm;
                if (ok && !L->q_norm) lmz_model_errf(err, errlen, "blk.%u: gemma3 without q/k norms", l);
                L->local = l % period < period - 1;
                bad = !ok;
            }
            ok = !bad;
        }
#undef NAME
    }
    /* the threads, before det-i8-v1's quantization, which they share */
    if (ok && !(m->pool = lmz_pool_new(opts && opts->threads ? opts->threads : 1))) {
        lmz_model_errf(err, errlen, "%s", "out of memory");
        ok = 0;
    }
    m->base.pool = m->pool;
    ok = ok && lmz_model_qprep(&m->base, m->output, err, errlen) == 0;
    for (uint32_t l = 0; l < m->n_layer && ok; l++) {
        layer *L = &m->layers[l];
        const lmz_gguf_tensor *mats[] = {L->wq, L->wk, L->wv, L->wo, L->gate, L->up, L->down};
        for (size_t i = 0; i < sizeof mats / sizeof *mats && ok; i++)
            ok = lmz_model_qprep(&m->base, mats[i], err, errlen) == 0;
    }
    if (!ok) {
        llama_free(&m->base);
        return -1;
    }
    m->base.window = want < LMZ_MAX_WINDOW ? want : LMZ_MAX_WINDOW; /* a longer context: the window is capped */
    /* RoPE frequencies: base^(-2i/head_dim) / scale, divided by
     * rope_freqs.weight where the model has one (Llama 3 scaling) */
    uint32_t half = m->head_dim / 2;
    m->rope_freq = malloc(2 * half * sizeof *m->rope_freq); /* gemma3: the local layers' after */
    const lmz_gguf_tensor *rf = lmz_gguf_tensor_find(g, "rope_freqs.weight");
    float *rfv = NULL;
    if (rf && rf->type == LMZ_GGML_F32 && rf->n_dims == 1 && rf->ne[0] == half) rfv = (float *)rf->data;
    for (uint32_t i = 0; m->rope_freq && i < half; i++) {
        float f = lmz_powf(rope_base, -(float)(2 * i) / (float)m->head_dim) / scale;
        if (rfv) {
            float d;
            memcpy(&d, rfv + i, 4);
            f = f / d;
        }
        m->rope_freq[i] = f;
        m->rope_freq[half + i] = lmz_powf(swa_base, -(float)(2 * i) / (float)m->head_dim); /* no scaling */
    }
    m->n_threads = lmz_pool_threads(m->pool);
    m->cap = (m->base.window + CHUNK + 15) / 16 * 16;
    size_t group = m->n_head / m->n_kv;
    m->scores = lmz_model_scratch(NULL, (size_t)m->n_threads * group * m->base.window);
    m->raw = lmz_model_scratch(NULL, (size_t)m->n_threads * group * m->cap);
    m->slots = malloc((size_t)m->n_threads * m->base.window * sizeof *m->slots);
    m->vrows = malloc((size_t)m->n_threads * m->base.window * sizeof *m->vrows);
    m->wrows = lmz_model_scratch(NULL, (size_t)m->n_threads * 4 * wrow_max(m));
    if (!m->rope_freq || !m->scores || !m->raw || !m->slots || !m->vrows || !m->wrows || !m->pool ||
        reserve(m, CHUNK) != 0) {
        llama_free(&m->base);
        return lmz_model_errf(err, errlen, "%s", "out of memory");
    }
    *out = &m->base;
    return 0;
}

/* ======================================================================== */
/* state                                                                     */
/* ======================================================================== */

static void llama_state_free(lmz_state *sb)
{
    llama_state *s = (llama_state *)sb;
    free(s->kc);
    free(s->vc);
    free(s);
}

static lmz_state *llama_state_new(const lmz_model *mb)
{
    const llama_model *m = (const llama_model *)mb;
    llama_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->base.m = mb;
    s->cap = m->cap;
    size_t n = (size_t)m->n_layer * s->cap * m->n_kv * m->head_dim;
    s->kc = calloc(n, sizeof(float));
    s->vc = calloc(n, sizeof(float));
    if (!s->kc || !s->vc) {
        llama_state_free(&s->base);
        return NULL;
    }
    return &s->base;
}

/* the slots the history has filled, layer by layer (keys in whole blocks of 16) */
static void llama_state_copy(lmz_state *db, const lmz_state *sb)
{
    llama_state *d = (llama_state *)db;
    const llama_state *s = (const llama_state *)sb;
    const llama_model *m = (const llama_model *)sb->m;
    size_t kd = (size_t)m->n_kv * m->head_dim, per = (size_t)s->cap * kd;
    size_t used = sb->pos < s->cap ? (size_t)sb->pos : s->cap, blocks = (used + 15) / 16;
    for (size_t l = 0; l < m->n_layer; l++) {
        memcpy(d->kc + l * per, s->kc + l * per, blocks * 16 * kd * sizeof(float));
        memcpy(d->vc + l * per, s->vc + l * per, used * kd * sizeof(float));
    }
}

/* the ring needs no clearing: keys before position 0 are never read */
static void llama_state_reset(lmz_state *s) { (void)s; }

/* ======================================================================== */
/* forward                                                                   */
/* ======================================================================== */

static void rmsnorm(const llama_model *m, const float *x, const float *w, float *out)
{
    float ss = lmz_dot(m->base.kp, x, LMZ_GGML_F32, x, m->dim);
    float inv = 1.0f / sqrtf(ss / (float)m->dim + m->eps);
    for (uint32_t i = 0; i < m->dim; i++) out[i] = x[i] * inv * w[i];
}

/* cos and sin of every RoPE pair's angle at position pos, once per token
 * for all layers: cs[2i], cs[2i + 1]; gemma3: then the local layers' */
static void rope_angles(const llama_model *m, uint64_t pos, float *cs)
{
    uint32_t n = m->gemma ? m->head_dim : m->head_dim / 2;
    for (uint32_t i = 0; i < n; i++) lmz_rope_sincos(pos, m->rope_freq[i], &cs[2 * i + 1], &cs[2 * i]);
}

/* rotate the pairs of each head by the angles of rope_angles(): adjacent
 * elements (2i, 2i + 1), or with neox element i and i + head_dim / 2 */
static void rope(const llama_model *m, float *v, uint32_t heads, const float *cs)
{
    const uint32_t half = m->head_dim / 2;
    const size_t step = m->neox ? half : 1;
    for (uint32_t i = 0; i < half; i++) {
        float c = cs[2 * i], s = cs[2 * i + 1];
        for (uint32_t h = 0; h < heads; h++) {
            float *p = v + (size_t)h * m->head_dim + (m->neox ? i : 2 * i);
            float x0 = p[0], x1 = p[step];
            p[0] = x0 * c - x1 * s;
            p[step] = x0 * s + x1 * c;
        }
    }
}

/* qwen3: each head's n values RMS-normed with the weights w (head_dim) */
static void head_norm(const llama_model *m, float *v, uint32_t heads, const float *w)
{
    const uint32_t hd = m->head_dim;
    for (uint32_t h = 0; h < heads; h++) {
        float *p = v + (size_t)h * hd;
        float ss = lmz_dot(m->base.kp, p, LMZ_GGML_F32, p, hd);
        float inv = 1.0f / sqrtf(ss / (float)hd + m->eps);
        for (uint32_t i = 0; i < hd; i++) p[i] = p[i] * inv * w[i];
    }
}

/* Y (T x rows) = X (T x n) times the matrix's rows, rows split over threads */
static void matmul(llama_model *m, const lmz_gguf_tensor *t, const float *x, size_t T, float *y)
{
    lmz_model_matmul(&m->base, m->pool, m->wrows, wrow_max(m), t, x, T, y);
}

/* Attention of one token (row b) over its state's window, all heads: per
 * key/value head, the scores of its group of query heads over blocks of 16
 * cached keys, then softmax over the window (oldest first) and the weighted
 * sum of the value rows, shared by the group. */
static void attend(llama_model *m, size_t b, uint32_t l, unsigned thread)
{
    const uint32_t hd = m->head_dim, kd = m->n_kv * hd, qd = m->n_head * hd, group = m->n_head / m->n_kv;
    const float inv_sqrt = m->attn_scale;
    const llama_state *s = m->rows[b];
    const uint32_t cap = s->cap;
    float *probs = m->scores + (size_t)thread * group * m->base.window;
    float *raw = m->raw + (size_t)thread * group * cap;
    uint32_t *slots = m->slots + (size_t)thread * m->base.window;
    const float **vrows = m->vrows + (size_t)thread * m->base.window;
    uint64_t pos = m->pos[b];
    uint32_t n_ctx = pos + 1 < m->base.window ? (uint32_t)pos + 1 : m->base.window;
    if (m->layers[l].local && n_ctx > m->swa) n_ctx = m->swa; /* gemma3's sliding-window layers */
    const float *kc = s->kc + (size_t)l * cap * kd, *vc = s->vc + (size_t)l * cap * kd;
    /* ring slots of the window, oldest first; the blocks that hold them
     * (n_ctx <= cap - CHUNK, so the first and last block differ on a wrap) */
    uint32_t first = (uint32_t)((pos + 1 - n_ctx) % cap), last = (uint32_t)(pos % cap);
    for (uint32_t j = 0, t = first; j < n_ctx; j++, t = t + 1 == cap ? 0 : t + 1) slots[j] = t;
    for (uint32_t g = 0; g < m->n_kv; g++) {
        lmz_window_scores(m->base.kp, kc + (size_t)g * hd * 16, kd, m->q + b * qd + (size_t)g * group * hd, group, hd,
                          first, last, cap, raw);
        lmz_window_softmax_heads(m->base.kp, raw, group, first, n_ctx, cap, inv_sqrt, probs, m->base.window);
        for (uint32_t j = 0; j < n_ctx; j++) vrows[j] = vc + (size_t)slots[j] * kd + (size_t)g * hd;
        lmz_weighted_sum(m->base.kp, probs, m->base.window, group, vrows, n_ctx, hd, m->att + b * qd + (size_t)g * group * hd,
                         hd);
    }
}

typedef struct {
    llama_model *m;
    uint32_t l;
} attend_job;

static void attend_rows(void *ctx, size_t b0, size_t b1, unsigned thread)
{
    attend_job *j = ctx;
    for (size_t b = b0; b < b1; b++) attend(j->m, b, j->l, thread);
}

/* The per-token work between the matrix products; tokens are independent,
 * so they are split over the threads (elementwise, the same bits). */
enum { TOK_EMBED, TOK_ROPE_KV, TOK_FFN_IN, TOK_SWIGLU, TOK_NEXT };

typedef struct {
    llama_model *m;
    const int32_t *tokens;
    uint32_t l;         /* the layer */
    int phase;
    const float *norm;  /* TOK_EMBED, TOK_NEXT: the RMSNorm to apply into h (NULL: none) */
} tok_job;

static void tok_rows(void *ctx, size_t b0, size_t b1, unsigned thread)
{
    (void)thread;
    const tok_job *j = ctx;
    llama_model *m = j->m;
    const uint32_t hd = m->head_dim, kd = m->n_kv * hd, qd = m->n_head * hd, D = m->dim, F = m->ffn;
    for (size_t b = b0; b < b1; b++) {
        float *x = m->x + b * D, *h = m->h + b * D;
        switch (j->phase) {
        case TOK_EMBED: /* embedding, the RoPE angles of the position, layer 0's norm */
            row_to_f32(m, m->embd, (uint64_t)j->tokens[b], x);
            if (m->gemma)
                for (uint32_t i = 0; i < D; i++) x[i] *= m->emb_scale;
            rope_angles(m, m->pos[b], m->rot + b * 2 * hd);
            rmsnorm(m, x, j->norm, h);
            break;
        case TOK_ROPE_KV: { /* (biases, head norms,) rotate q and k, store k (transposed) and v in the ring */
            llama_state *s = m->rows[b];
            const layer *L = &m->layers[j->l];
            float *q = m->q + b * qd, *k = m->k + b * kd, *v = m->v + b * kd;
            if (L->bq)
                for (uint32_t i = 0; i < qd; i++) q[i] += L->bq[i];
            if (L->bk)
                for (uint32_t i = 0; i < kd; i++) k[i] += L->bk[i];
            if (L->bv)
                for (uint32_t i = 0; i < kd; i++) v[i] += L->bv[i];
            if (L->q_norm) {
                head_norm(m, q, m->n_head, L->q_norm);
                head_norm(m, k, m->n_kv, L->k_norm);
            }
            const float *cs = m->rot + b * 2 * hd + (L->local ? hd : 0);
            rope(m, m->q + b * qd, m->n_head, cs);
            rope(m, m->k + b * kd, m->n_kv, cs);
            size_t slot = (size_t)(m->pos[b] % s->cap);
            float *kc = s->kc + (size_t)j->l * s->cap * kd, *vc = s->vc + (size_t)j->l * s->cap * kd;
            float *kt = kc + slot / 16 * 16 * kd + slot % 16;
            for (size_t d = 0; d < kd; d++) kt[16 * d] = m->k[b * kd + d];
            memcpy(vc + slot * kd, m->v + b * kd, kd * sizeof(float));
            break;
        }
        case TOK_FFN_IN: /* the attention's residual (gemma3: normed first), then the FFN's norm */
            if (m->gemma) rmsnorm(m, h, m->layers[j->l].post_attn, h);
            for (uint32_t i = 0; i < D; i++) x[i] += h[i];
            rmsnorm(m, x, m->layers[j->l].ffn_norm, h);
            break;
        case TOK_SWIGLU: { /* g / (1 + exp(-g)) * u, h (rows of F) as scratch */
            float *g = m->gbuf + b * F, *u = m->ubuf + b * F, *e = m->h + b * F;
            if (m->gemma) { /* 0.5 g (1 + tanh(c (g + 0.044715 g^3))) u, tanh y = 1 - 2 / (exp(2y) + 1) */
                const float c = 0.7978845608028654f; /* sqrt(2 / pi) */
                for (uint32_t i = 0; i < F; i++) e[i] = 2.0f * c * (g[i] + 0.044715f * g[i] * g[i] * g[i]);
                lmz_exp_array(m->base.kp, e, e, F);
                for (uint32_t i = 0; i < F; i++) g[i] = 0.5f * g[i] * (2.0f - 2.0f / (e[i] + 1.0f)) * u[i];
                break;
            }
            for (uint32_t i = 0; i < F; i++) e[i] = -g[i];
            lmz_exp_array(m->base.kp, e, e, F);
            for (uint32_t i = 0; i < F; i++) g[i] = g[i] / (1.0f + e[i]) * u[i];
            break;
        }
        case TOK_NEXT: /* the FFN's residual (gemma3: normed first), then the next layer's (or the output) norm */
            if (m->gemma) rmsnorm(m, h, m->layers[j->l].post_ffn, h);
            for (uint32_t i = 0; i < D; i++) x[i] += h[i];
            if (j->norm) rmsnorm(m, x, j->norm, h);
            break;
        }
    }
}

/* gemma3's final_logit_softcapping: l = c tanh(l / c), tanh y = 1 - 2 / (exp(2y) + 1) */
static void softcap(const llama_model *m, float *l, size_t n)
{
    const float c = m->softcap;
    for (size_t i = 0; i < n; i++) {
        float e = lmz_expf(2.0f * l[i] / c);
        l[i] = c * (1.0f - 2.0f / (e + 1.0f));
    }
}

/* B tokens through the network: token b belongs to state m->rows[b] at
 * position m->pos[b]. Every row is computed exactly as it would be alone. */
static void forward(llama_model *m, const int32_t *tokens, size_t B, float *logits, const uint8_t *need, float *hidden)
{
    /* rough work of the per-token phases and of attention, so that a small
     * model's steps stay on one thread (lmz_pool_for_work) */
    const double tok_work = 16.0 * (double)B * (double)(m->ffn > m->dim ? m->ffn : m->dim);
    const double att_work = 4.0 * (double)B * (double)m->base.window * (double)m->n_head * (double)m->head_dim;
    tok_job tj = {m, tokens, 0, TOK_EMBED, m->layers[0].attn_norm};
    lmz_pool_for_work(m->pool, B, tok_work, tok_rows, &tj);
    for (uint32_t l = 0; l < m->n_layer; l++) {
        const layer *L = &m->layers[l];
        tj.l = l;
        const lmz_gguf_tensor *qkv[] = {L->wq, L->wk, L->wv};
        float *const qkv_y[] = {m->q, m->k, m->v};
        lmz_model_matmul_many(&m->base, m->pool, m->wrows, wrow_max(m), qkv, qkv_y, 3, m->h, B);
        tj.phase = TOK_ROPE_KV;
        lmz_pool_for_work(m->pool, B, tok_work, tok_rows, &tj);
        attend_job aj = {m, l};
        lmz_pool_for_work(m->pool, B, att_work, attend_rows, &aj);
        matmul(m, L->wo, m->att, B, m->h);
        tj.phase = TOK_FFN_IN;
        lmz_pool_for_work(m->pool, B, tok_work, tok_rows, &tj);
        const lmz_gguf_tensor *gu[] = {L->gate, L->up};
        float *const gu_y[] = {m->gbuf, m->ubuf};
        lmz_model_matmul_many(&m->base, m->pool, m->wrows, wrow_max(m), gu, gu_y, 2, m->h, B);
        tj.phase = TOK_SWIGLU;
        lmz_pool_for_work(m->pool, B, tok_work, tok_rows, &tj);
        matmul(m, L->down, m->gbuf, B, m->h);
        tj.phase = TOK_NEXT;
        tj.norm = l + 1 < m->n_layer ? m->layers[l + 1].attn_norm : logits ? m->out_norm : NULL;
        lmz_pool_for_work(m->pool, B, tok_work, tok_rows, &tj);
    }
    if (!logits) return;
    size_t c = lmz_model_keep_rows(m->h, m->dim, B, need);
    if (c) matmul(m, m->output, m->h, c, logits);
    if (c && hidden) memcpy(hidden, m->h, c * m->dim * sizeof *hidden);
    if (c && m->softcap > 0.0f) softcap(m, logits, c * m->base.n_vocab);
}

static int llama_prefill(lmz_model *mb, lmz_state *sb, const int32_t *tokens, size_t n, float *logits, float *hidden)
{
    llama_model *m = (llama_model *)mb;
    llama_state *s = (llama_state *)sb;
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t B = n - i < CHUNK ? n - i : CHUNK;
        for (size_t b = 0; b < B; b++) {
            m->rows[b] = s;
            m->pos[b] = s->base.pos + b;
        }
        forward(m, tokens + i, B, logits ? logits + i * m->base.n_vocab : NULL, NULL, hidden ? hidden + i * m->dim : NULL);
        s->base.pos += B;
    }
    return 0;
}

static int llama_step(lmz_model *mb, lmz_state **states, const int32_t *tokens, size_t k, float *logits,
                     const uint8_t *need, float *hidden)
{
    llama_model *m = (llama_model *)mb;
    if (reserve(m, k) != 0) return -1;
    for (size_t b = 0; b < k; b++) {
        m->rows[b] = (llama_state *)states[b];
        m->pos[b] = states[b]->pos;
    }
    forward(m, tokens, k, logits, need, hidden);
    for (size_t b = 0; b < k; b++) states[b]->pos++;
    return 0;
}

/* lmz_model_prefill_many's passes: rows of several states through forward */
static int pass_reserve(lmz_model *mb, size_t B) { return reserve((llama_model *)mb, B); }

static void pass_row(lmz_model *mb, size_t b, lmz_state *s, uint64_t pos)
{
    llama_model *m = (llama_model *)mb;
    m->rows[b] = (llama_state *)s;
    m->pos[b] = pos;
}

static void pass_run(lmz_model *mb, const int32_t *tokens, size_t B, float *logits, float *hidden)
{
    forward((llama_model *)mb, tokens, B, logits, NULL, hidden);
}

static const lmz_model_ops llama_ops = {"llama", llama_free, llama_state_new, llama_state_free, llama_state_reset,
                                        llama_state_copy,
                                        llama_prefill, llama_step, pass_reserve, pass_row, pass_run, CHUNK};
