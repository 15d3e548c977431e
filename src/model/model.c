/*
 * model.c — opening a GGUF model whatever its architecture, and the calls of
 * model.h passed on to it (model_impl.h).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/align.h"
#include "common/pool.h"
#include "model_impl.h"

int lmz_model_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

const lmz_gguf_tensor *lmz_model_mat(const lmz_model *m, const char *name, uint64_t ne0, uint64_t ne1, char *err,
                                     size_t errlen)
{
    const lmz_gguf_tensor *t = lmz_gguf_tensor_find(&m->g, name);
    if (!t) {
        lmz_model_errf(err, errlen, "tensor '%s' is missing", name);
        return NULL;
    }
    if (t->n_dims != 2 || t->ne[0] != ne0 || t->ne[1] != ne1) {
        lmz_model_errf(err, errlen, "tensor '%s' is %llu x %llu, expected %llu x %llu", name,
                       (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (unsigned long long)ne0,
                       (unsigned long long)ne1);
        return NULL;
    }
    if (!lmz_kernels_type_ok(t->type)) {
        lmz_model_errf(err, errlen, "tensor '%s' has type %s (F32, F16, BF16, Q8_0 are computed)", name,
                       lmz_gguf_type_name(t->type));
        return NULL;
    }
    if (m->tiny) { /* the portable path: one scan now for the test its tiles would repeat */
        size_t n = (size_t)ne0;
        float *row = malloc(n * sizeof *row);
        int tiny = !row;
        for (uint64_t r = 0; r < ne1 && !tiny; r++) {
            lmz_model_row(m, t, r, row);
            tiny = lmz_f32_has_tiny(row, n);
        }
        free(row);
        m->tiny[t - m->g.tensors] = (uint8_t)tiny;
    }
    return t;
}

void lmz_model_row(const lmz_model *m, const lmz_gguf_tensor *t, uint64_t r, float *out)
{
    size_t n = (size_t)t->ne[0];
    lmz_row_to_f32(m->kp, (const uint8_t *)t->data + r * lmz_ggml_row_bytes(t->type, n), t->type, n, out);
}

float *lmz_model_vec(const lmz_model *m, const char *name, uint64_t n, char *err, size_t errlen)
{
    const lmz_gguf_tensor *t = lmz_gguf_tensor_find(&m->g, name);
    if (!t || t->n_dims != 1 || t->ne[0] != n || !lmz_kernels_type_ok(t->type) || t->type == LMZ_GGML_Q8_0) {
        lmz_model_errf(err, errlen, "tensor '%s' is missing or not a float vector of the model's width", name);
        return NULL;
    }
    float *v = malloc(n * sizeof *v);
    if (v) lmz_model_row(m, t, 0, v);
    else lmz_model_errf(err, errlen, "%s", "out of memory");
    return v;
}

int lmz_model_u32(const lmz_gguf *g, const char *key, uint32_t *v, char *err, size_t errlen)
{
    uint64_t x;
    if (lmz_gguf_get_u64(g, key, &x) != 0 || x == 0 || x > (1u << 30))
        return lmz_model_errf(err, errlen, "metadata '%s' is missing or out of range", key);
    *v = (uint32_t)x;
    return 0;
}

/* ======================================================================== */
/* matrix products                                                           */
/* ======================================================================== */

typedef struct {
    const lmz_model *m;
    float *wrows;                /* (threads, 4, wmax) */
    size_t wmax;
    const lmz_gguf_tensor *t;
    const float *x;
    size_t T;
    float *y;
    int plain;                   /* the portable path: no tiny value in t or x (lmz_dot4x4_f32) */
} mm_job;

/* weights asked for ahead go to L2 (prefetcht1 on x86), not L1: with F32
 * weights, prefetches into L1 stalled on its miss buffers (32-stream
 * decoding 12 % faster this way, prefill unchanged) */
#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p, 0, 2)
#else
#define PREFETCH(p) ((void)(p))
#endif

static void mm_rows(void *ctx, size_t r0, size_t r1, unsigned thread)
{
    const mm_job *j = ctx;
    const lmz_kpath kp = j->m->kp;
    size_t rb = (size_t)lmz_ggml_row_bytes(j->t->type, j->t->ne[0]), n = (size_t)j->t->ne[0], rows = (size_t)j->t->ne[1], T = j->T;
    const uint8_t *w = j->t->data;
    const int portable = kp == LMZ_KPATH_SCALAR, plain = j->plain;
    if (T == 1 && !portable) {
        for (size_t r = r0; r < r1; r++) j->y[r] = lmz_dot(kp, w + r * rb, j->t->type, j->x, n);
        return;
    }
    /* a tile's rows (lmz_f32_tile_rows: 4, or 3 with AVX2) as floats once
     * (exact, so the same bits as the typed dot), then tiles of those rows x
     * 4 tokens (groups of 8 rows sharing each tile's tokens measured no
     * faster) */
    int convert = j->t->type != LMZ_GGML_F32;
    const size_t G = lmz_f32_tile_rows(kp);
    float *tmp = j->wrows + (size_t)thread * 4 * j->wmax;
    for (size_t r = r0; r < r1; r += G) {
        size_t R = r1 - r < G ? r1 - r : G;
        const float *wf[4];
        for (size_t i = 0; i < R; i++) {
            wf[i] = (const float *)(const void *)(w + (r + i) * rb);
            if (convert) {
                lmz_row_to_f32(kp, w + (r + i) * rb, j->t->type, n, tmp + i * n);
                wf[i] = tmp + i * n;
            }
        }
        size_t t = 0;
        if (T == 1 && R == 4) { /* the portable path, one token: four rows against it at
                                 * once, the token widened once for the four (a dot
                                 * product is the same bits either way round) */
            lmz_dot4_f32(kp, j->x, wf, n, j->y + r, plain);
            continue;
        }
        if (R == G) {
            /* the next group's weights come from memory while this group's
             * tiles run: each tile asks for a slice of them */
            size_t ahead = r + G < r1 ? (r1 - r - G < G ? r1 - r - G : G) * rb : 0;
            size_t tiles = (T + 3) / 4, slice = tiles ? (ahead / tiles + 63) / 64 * 64 : 0;
            const uint8_t *next = w + (r + G) * rb;
            for (; t < T; t += 4) {
                for (size_t o = t / 4 * slice; o < (t / 4 + 1) * slice && o < ahead; o += 64) PREFETCH(next + o);
                size_t nx = T - t < 4 ? T - t : 4;
                const float *xs[4];
                for (size_t i = 0; i < nx; i++) xs[i] = j->x + (t + i) * n;
                lmz_dot_tile_f32(kp, wf, xs, nx, n, j->y + t * rows + r, rows, plain);
            }
        }
        for (size_t i = 0; i < R && t < T; i++) { /* fewer rows: row by row */
            size_t u = t;
            for (; u + 4 <= T; u += 4) {
                const float *xs[4] = {j->x + u * n, j->x + (u + 1) * n, j->x + (u + 2) * n, j->x + (u + 3) * n};
                float o[4];
                lmz_dot4_f32(kp, wf[i], xs, n, o, plain);
                for (int b = 0; b < 4; b++) j->y[(u + (size_t)b) * rows + r + i] = o[b];
            }
            for (; u < T; u++) j->y[u * rows + r + i] = lmz_dot(kp, wf[i], LMZ_GGML_F32, j->x + u * n, n);
        }
    }
}

/* det-i8-v1: the activations quantized token by token, then blocks of 16
 * rows split over the threads (qmat.h) */
typedef struct {
    const lmz_model *m;
    const lmz_qmat *w;
    const float *x;
    size_t T;
    float *y;
} qmm_job;

static void qact_rows(void *ctx, size_t t0, size_t t1, unsigned thread)
{
    const qmm_job *j = ctx;
    (void)thread;
    size_t n = j->w->n, G = j->w->groups;
    lmz_qact(j->m->kp, j->x + t0 * n, t1 - t0, n, G, j->m->qx + t0 * 4 * G, j->m->qxs + t0);
}

static void qmm_blocks(void *ctx, size_t b0, size_t b1, unsigned thread)
{
    const qmm_job *j = ctx;
    (void)thread;
    lmz_qmm(j->m->kp, j->w, b0, b1, j->m->qx, j->m->qxs, j->T, j->y, j->w->rows);
}

static void qrow(void *ctx, size_t r, float *out)
{
    const lmz_model *m = ((const void *const *)ctx)[0];
    const lmz_gguf_tensor *t = ((const void *const *)ctx)[1];
    lmz_model_row(m, t, r, out);
}

/* quantizing a matrix's rows at open, the rows split over the threads */
typedef struct {
    lmz_model *m;
    lmz_qmat *w;
    const void *ctx[2]; /* qrow's */
    uint8_t *scratch;   /* per thread: n floats and n bytes */
    size_t per;
} qprep_job;

static void qprep_rows(void *ctx, size_t r0, size_t r1, unsigned thread)
{
    qprep_job *j = ctx;
    lmz_qmat_rows(j->m->kp, j->w, r0, r1, qrow, (void *)j->ctx, j->scratch + thread * j->per);
}

int lmz_model_qprep(lmz_model *m, const lmz_gguf_tensor *t, char *err, size_t errlen)
{
    if (!m->qm) return 0;
    lmz_qmat *w = &m->qm[t - m->g.tensors];
    if (w->q) return 0;
    size_t n = (size_t)t->ne[0];
    if (n > LMZ_QMAT_MAX_N)
        return lmz_model_errf(err, errlen, "tensor '%.*s': rows of %zu values are too long for det-i8-v1 (at most %u)",
                              (int)(t->name.len > 60 ? 60 : t->name.len), t->name.ptr, n, LMZ_QMAT_MAX_N);
    size_t rows = (size_t)t->ne[1], nth = lmz_pool_threads(m->pool);
    size_t per = (n * 5 + 63) / 64 * 64;
    qprep_job j = {m, w, {m, t}, malloc(nth * per), per};
    int rc = j.scratch ? lmz_qmat_alloc(w, rows, n) : -1;
    if (rc == 0) lmz_pool_for_work(m->pool, rows, (double)rows * (double)n, qprep_rows, &j);
    free(j.scratch);
    if (rc != 0) return lmz_model_errf(err, errlen, "%s", "out of memory");
    if (4 * w->groups > m->q_width) m->q_width = 4 * w->groups;
    return 0;
}

float *lmz_model_scratch(float *old, size_t n)
{
    float *p = lmz_alloc64(n * sizeof(float));
    if (p) free(old); /* on failure the old block stays, as realloc leaves it */
    return p;
}

int lmz_model_qreserve(lmz_model *m, size_t T)
{
    if (!m->qm || T <= m->qx_cap) return 0;
    /* 64-byte aligned: rows of 4 * groups bytes (a multiple of 64 for widths
     * that are multiples of 64) then start on cache lines, where a vector or
     * tile load of a row reads one line, not two (AMX: half the time) */
    int8_t *qx = lmz_alloc64(T * (m->q_width ? m->q_width : 4));
    if (!qx) return -1;
    free(m->qx);
    m->qx = qx;
    float *qxs = realloc(m->qxs, T * sizeof *qxs);
    if (!qxs) return -1;
    m->qxs = qxs;
    m->qx_cap = T;
    return 0;
}

void lmz_model_qscratch_free(lmz_model *m)
{
    free(m->qx);
    free(m->qxs);
    m->qx = NULL;
    m->qxs = NULL;
    m->qx_cap = 0;
}

/* Y (T x rows) = X (T x n) times the matrix's rows, rows split over threads */

/* A product's work for lmz_pool_for_work: its multiply-adds, and each weight's
 * read counted as MM_READ_WORK of them. A step of one or a few streams reads
 * every weight for a few multiply-adds and waits on memory: split over the
 * threads, two cores wait on it side by side (a 5M-parameter model's
 * single-stream decompression of a 16 KB file, 2 threads: -12 % wall time
 * with det-i8-v1, -20 % with det-f32-v4). */
#define MM_READ_WORK 8

/* Products of one input, one split over the threads: product i's units
 * (rows, or det-i8-v1's blocks of 16 rows) are off[i] .. off[i + 1] of the
 * split. Each row's result depends on its row and the input alone, so any
 * split gives the same bits. */
#define MM_MANY 8
typedef struct {
    mm_job f[MM_MANY];
    qmm_job q[MM_MANY];
    size_t off[MM_MANY + 1];
    size_t k;
    int quant;
} mm_many_job;

static void mm_many_units(void *ctx, size_t u0, size_t u1, unsigned thread)
{
    mm_many_job *j = ctx;
    for (size_t i = 0; i < j->k; i++) {
        size_t b = u0 > j->off[i] ? u0 : j->off[i], e = u1 < j->off[i + 1] ? u1 : j->off[i + 1];
        if (b >= e) continue;
        if (j->quant) qmm_blocks(&j->q[i], b - j->off[i], e - j->off[i], thread);
        else mm_rows(&j->f[i], b - j->off[i], e - j->off[i], thread);
    }
}

void lmz_model_matmul_many(const lmz_model *m, lmz_pool *pool, float *wrows, size_t wmax,
                           const lmz_gguf_tensor *const *t, float *const *y, size_t k, const float *x, size_t T)
{
    for (; k > MM_MANY; k -= MM_MANY, t += MM_MANY, y += MM_MANY)
        lmz_model_matmul_many(m, pool, wrows, wmax, t, y, MM_MANY, x, T);
    if (!k) return;
    for (size_t i = 1; i < k; i++)
        if (t[i]->ne[0] != t[0]->ne[0]) { /* not one input: each apart */
            for (size_t p = 0; p < k; p++) lmz_model_matmul_many(m, pool, wrows, wmax, &t[p], &y[p], 1, x, T);
            return;
        }
    mm_many_job j;
    j.k = k;
    j.quant = m->qm != NULL;
    j.off[0] = 0;
    double work = 0;
    const size_t n = (size_t)t[0]->ne[0];
    /* The portable path's tiles test their inputs for tiny values
     * (lmz_f32_has_tiny): done once per matrix (lmz_model_mat) and here once
     * per call for the tokens, not once per tile. */
    const int tiny_x = !j.quant && m->kp == LMZ_KPATH_SCALAR && lmz_f32_has_tiny(x, T * n);
    for (size_t i = 0; i < k; i++) {
        size_t rows = (size_t)t[i]->ne[1];
        if (j.quant) {
            const lmz_qmat *w = &m->qm[t[i] - m->g.tensors];
            j.q[i] = (qmm_job){m, w, x, T, y[i]};
            j.off[i + 1] = j.off[i] + w->blocks;
        } else {
            int plain = m->kp == LMZ_KPATH_SCALAR && !m->tiny[t[i] - m->g.tensors] && !tiny_x;
            j.f[i] = (mm_job){m, wrows, wmax, t[i], x, T, y[i], plain};
            j.off[i + 1] = j.off[i] + rows;
        }
        work += (double)n * (double)rows * (double)(T + MM_READ_WORK);
    }
    if (j.quant) /* the input quantized once for all of them (their n, so their groups, agree) */
        lmz_pool_for_work(pool, T, 4.0 * (double)T * (double)n, qact_rows, &j.q[0]);
    lmz_pool_for_work(pool, j.off[k], work, mm_many_units, &j);
}

void lmz_model_matmul(const lmz_model *m, lmz_pool *pool, float *wrows, size_t wmax, const lmz_gguf_tensor *t,
                      const float *x, size_t T, float *y)
{
    lmz_model_matmul_many(m, pool, wrows, wmax, &t, &y, 1, x, T);
}

/* ======================================================================== */
/* opening                                                                   */
/* ======================================================================== */

static void qm_free(lmz_qmat *qm, uint64_t n)
{
    if (!qm) return;
    for (uint64_t i = 0; i < n; i++) lmz_qmat_free(&qm[i]);
    free(qm);
}

/* the parsed file in base.g: the tokenizer, the vocabulary, then the architecture */
static int finish_open(lmz_model *base, const lmz_model_opts *opts, lmz_model **out, char *err, size_t errlen)
{
    lmz_str arch;
    int rc = -1;
    if (lmz_gguf_get_str(&base->g, "general.architecture", &arch) != 0) {
        lmz_model_errf(err, errlen, "%s", "general.architecture is missing");
        goto fail;
    }
    int llama = lmz_str_eq(arch, "llama") || lmz_str_eq(arch, "qwen2") || lmz_str_eq(arch, "qwen3") ||
                lmz_str_eq(arch, "gemma3"),
        dsrn = lmz_str_eq(arch, "dsrn");
    if (!llama && !dsrn) {
        lmz_model_errf(err, errlen, "architecture '%.*s' is not supported (llama, qwen2, qwen3, gemma3, dsrn)",
                       (int)(arch.len > 40 ? 40 : arch.len), arch.ptr);
        goto fail;
    }
    if (opts && opts->int8) {
        base->qm = calloc(base->g.n_tensors ? (size_t)base->g.n_tensors : 1, sizeof *base->qm);
        if (!base->qm) {
            lmz_model_errf(err, errlen, "%s", "out of memory");
            goto fail;
        }
    } else if (base->kp == LMZ_KPATH_SCALAR) {
        base->tiny = malloc(base->g.n_tensors ? (size_t)base->g.n_tensors : 1);
        if (!base->tiny) {
            lmz_model_errf(err, errlen, "%s", "out of memory");
            goto fail;
        }
        memset(base->tiny, 1, base->g.n_tensors ? (size_t)base->g.n_tensors : 1);
    }
    int trc = lmz_tokenizer_load(&base->g, &base->tok, base->tok_note, sizeof base->tok_note);
    const lmz_gguf_tensor *te = lmz_gguf_tensor_find(&base->g, "token_embd.weight");
    if (trc == LMZ_TOKENIZER_UNSUPPORTED && te && te->n_dims == 2 && te->ne[1] > 0 && te->ne[1] <= (1u << 24)) {
        base->n_vocab = (uint32_t)te->ne[1]; /* runs on token ids alone */
    } else if (trc != 0) {
        snprintf(err, errlen, "%s", base->tok_note);
        goto fail;
    } else {
        base->n_vocab = lmz_tokenizer_vocab_size(base->tok);
    }
    rc = llama ? lmz_llama_open(base, opts, out, err, errlen) : lmz_dsrn_open(base, opts, out, err, errlen);
    if (rc == 0) return 0;
fail:
    qm_free(base->qm, base->g.n_tensors);
    free(base->tiny);
    lmz_tokenizer_free(base->tok);
    lmz_gguf_close(&base->g);
    *out = NULL;
    return -1;
}

int lmz_model_open(const char *path, const lmz_model_opts *opts, lmz_model **out, char *err, size_t errlen)
{
    lmz_model base;
    memset(&base, 0, sizeof base);
    *out = NULL;
    if (lmz_kernels_select(&base.kp, err, errlen) != 0 || lmz_gguf_open(path, &base.g, err, errlen) != 0) return -1;
    return finish_open(&base, opts, out, err, errlen);
}

int lmz_model_open_buffer(const void *buf, size_t size, const lmz_model_opts *opts, lmz_model **out, char *err,
                          size_t errlen)
{
    lmz_model base;
    memset(&base, 0, sizeof base);
    *out = NULL;
    if (lmz_kernels_select(&base.kp, err, errlen) != 0 || lmz_gguf_parse(buf, size, &base.g, err, errlen) != 0)
        return -1;
    return finish_open(&base, opts, out, err, errlen);
}

void lmz_model_free(lmz_model *m)
{
    if (!m) return;
    lmz_tokenizer_free(m->tok);
    lmz_gguf g = m->g;
    uint8_t *tiny = m->tiny;
    lmz_qmat *qm = m->qm;
    m->ops->free(m);
    free(tiny);
    qm_free(qm, g.n_tensors);
    lmz_gguf_close(&g);
}

uint32_t lmz_model_vocab(const lmz_model *m) { return m->n_vocab; }
const char *lmz_model_arch(const lmz_model *m) { return m->ops->arch; }
const lmz_tokenizer *lmz_model_tokenizer(const lmz_model *m) { return m->tok; }
const char *lmz_model_tokenizer_note(const lmz_model *m) { return m->tok ? "" : m->tok_note; }
uint32_t lmz_model_window(const lmz_model *m) { return m->window; }
const lmz_gguf *lmz_model_gguf(const lmz_model *m) { return &m->g; }

lmz_state *lmz_state_new(const lmz_model *m) { return m->ops->state_new(m); }
void lmz_state_free(lmz_state *s)
{
    if (s) s->m->ops->state_free(s);
}
void lmz_state_reset(lmz_state *s)
{
    s->m->ops->state_reset(s);
    s->pos = 0;
}
uint64_t lmz_state_pos(const lmz_state *s) { return s->pos; }
int lmz_state_copy(lmz_state *dst, const lmz_state *src)
{
    if (dst->m != src->m) return -1;
    if (dst != src) {
        dst->m->ops->state_copy(dst, src);
        dst->pos = src->pos;
    }
    return 0;
}

int lmz_model_prefill(lmz_model *m, lmz_state *s, const int32_t *tokens, size_t n, float *logits)
{
    return lmz_model_prefill_hidden(m, s, tokens, n, logits, NULL);
}

int lmz_model_prefill_hidden(lmz_model *m, lmz_state *s, const int32_t *tokens, size_t n, float *logits,
                             float *hidden)
{
    if (s->m != m || (hidden && !logits)) return -1;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= m->n_vocab) return -1;
    return m->ops->prefill(m, s, tokens, n, logits, hidden);
}

/* passes of at most PASS_ROWS rows of several states for prefill_many */
#define PASS_ROWS 512

/* The passes of k states' runs, rows in the runs' order, at most `per` rows
 * of one state a pass: each state's position advances after its pass. */
static void prefill_passes(lmz_model *m, lmz_state **states, const int32_t *tokens, const size_t *n, size_t k,
                           float *logits, float *hidden)
{
    const size_t per = m->ops->pass_per, V = m->n_vocab, D = m->dim;
    size_t i = 0, off = 0, row = 0; /* the next token: state i's token off, row `row` of all */
    while (i < k) {
        if (off == n[i]) {
            i++, off = 0;
            continue;
        }
        size_t B = 0, i1 = i, off1 = off; /* one pass: from state i's token off on */
        while (i1 < k && B < PASS_ROWS) {
            size_t t = n[i1] - off1;
            if (t > per) t = per;
            if (t > PASS_ROWS - B) t = PASS_ROWS - B;
            for (size_t b = 0; b < t; b++) m->ops->pass_row(m, B + b, states[i1], states[i1]->pos + b);
            B += t;
            off1 += t;
            if (off1 < n[i1]) break; /* the state's next tokens: the next pass */
            i1++, off1 = 0;
        }
        m->ops->pass_run(m, tokens + row, B, logits ? logits + row * V : NULL, hidden ? hidden + row * D : NULL);
        for (size_t j = i, o = off; j <= i1 && j < k; j++, o = 0) /* the positions, now that the pass read them */
            states[j]->pos += (j == i1 ? off1 : n[j]) - o;
        row += B;
        i = i1, off = off1;
    }
}

int lmz_model_prefill_many(lmz_model *m, lmz_state **states, const int32_t *tokens, const size_t *n, size_t k,
                           float *logits, float *hidden)
{
    if (hidden && !logits) return -1;
    size_t all = 0;
    for (size_t i = 0; i < k; i++) {
        if (states[i]->m != m) return -1;
        for (size_t j = 0; j < i; j++)
            if (states[j] == states[i]) return -1;
        all += n[i];
    }
    for (size_t t = 0; t < all; t++)
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= m->n_vocab) return -1;
    if (m->ops->pass_run) {
        if (m->ops->pass_reserve(m, PASS_ROWS) != 0) return -1;
        prefill_passes(m, states, tokens, n, k, logits, hidden);
        return 0;
    }
    for (size_t i = 0, row = 0; i < k; row += n[i++])
        if (m->ops->prefill(m, states[i], tokens + row, n[i], logits ? logits + row * m->n_vocab : NULL,
                            hidden ? hidden + row * m->dim : NULL) != 0)
            return -1;
    return 0;
}

uint32_t lmz_model_dim(const lmz_model *m) { return m->dim; }

size_t lmz_model_keep_rows(float *x, size_t dim, size_t B, const uint8_t *need)
{
    if (!need) return B;
    size_t c = 0;
    for (size_t b = 0; b < B; b++)
        if (need[b]) {
            if (c != b) memmove(x + c * dim, x + b * dim, dim * sizeof *x);
            c++;
        }
    return c;
}

struct lmz_pool *lmz_model_pool(const lmz_model *m) { return m->pool; }

int lmz_model_step(lmz_model *m, lmz_state **states, const int32_t *tokens, size_t k, float *logits)
{
    return lmz_model_step_some(m, states, tokens, k, logits, NULL);
}

int lmz_model_step_some(lmz_model *m, lmz_state **states, const int32_t *tokens, size_t k, float *logits,
                        const uint8_t *need)
{
    return lmz_model_step_hidden(m, states, tokens, k, logits, need, NULL);
}

int lmz_model_step_hidden(lmz_model *m, lmz_state **states, const int32_t *tokens, size_t k, float *logits,
                          const uint8_t *need, float *hidden)
{
    if (hidden && !logits) return -1;
    for (size_t i = 0; i < k; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= m->n_vocab || states[i]->m != m) return -1;
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < i; j++)
            if (states[i] == states[j]) return -1; /* one token per stream */
    return m->ops->step(m, states, tokens, k, logits, need, hidden);
}

void lmz_window_scores(lmz_kpath kp, const float *kt, size_t width, const float *q, size_t nq, size_t hd,
                       uint32_t first, uint32_t last, uint32_t cap, float *raw)
{
    const uint32_t nblk = cap / 16;
    for (uint32_t blk = first / 16;; blk = blk + 1 == nblk ? 0 : blk + 1) {
        lmz_dot_keys16(kp, kt + (size_t)blk * width * 16, q, hd, nq, hd, raw + 16 * (size_t)blk, cap);
        if (blk == last / 16) break;
    }
}


/* C heads (1 to 4, a constant: their maxima and sums stay in registers) */
static inline __attribute__((always_inline)) void softmax_c(lmz_kpath kp, const float *r, const int C, uint32_t first,
                                                            uint32_t n_ctx, uint32_t cap, float scale, float *o,
                                                            size_t lds)
{
    float mx[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY}, sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (uint32_t j = 0, t = first; j < n_ctx; j++, t = t + 1 == cap ? 0 : t + 1)
        for (int h = 0; h < C; h++) {
            float v = r[(size_t)h * cap + t] * scale;
            o[(size_t)h * lds + j] = v;
            if (v > mx[h]) mx[h] = v;
        }
    for (int h = 0; h < C; h++) {
        for (uint32_t j = 0; j < n_ctx; j++) o[(size_t)h * lds + j] -= mx[h];
        lmz_exp_array(kp, o + (size_t)h * lds, o + (size_t)h * lds, n_ctx);
    }
    for (uint32_t j = 0; j < n_ctx; j++)
        for (int h = 0; h < C; h++) sum[h] += o[(size_t)h * lds + j];
    for (int h = 0; h < C; h++) {
        float inv = 1.0f / sum[h];
        for (uint32_t j = 0; j < n_ctx; j++) o[(size_t)h * lds + j] *= inv;
    }
}

void lmz_window_softmax(lmz_kpath kp, const float *raw, uint32_t first, uint32_t n_ctx, uint32_t cap, float scale,
                        float *sc)
{
    softmax_c(kp, raw, 1, first, n_ctx, cap, scale, sc, 0);
}

void lmz_window_softmax_heads(lmz_kpath kp, const float *raw, size_t nh, uint32_t first, uint32_t n_ctx, uint32_t cap,
                              float scale, float *sc, size_t lds)
{
    size_t h = 0;
    for (; h + 4 <= nh; h += 4) softmax_c(kp, raw + h * cap, 4, first, n_ctx, cap, scale, sc + h * lds, lds);
    switch (nh - h) {
    case 3: softmax_c(kp, raw + h * cap, 3, first, n_ctx, cap, scale, sc + h * lds, lds); break;
    case 2: softmax_c(kp, raw + h * cap, 2, first, n_ctx, cap, scale, sc + h * lds, lds); break;
    case 1: softmax_c(kp, raw + h * cap, 1, first, n_ctx, cap, scale, sc + h * lds, lds); break;
    default: break;
    }
}
