/*
 * train.c — `dsrn train` (train.h).
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <xxhash.h>

#include "common/rng.h"
#include "model/gguf.h"
#include "model/tokenizer.h"
#include "train/bpe.h"
#include "train/corpus.h"
#include "train/train.h"

__attribute__((format(printf, 3, 4))) static int errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ======================================================================== */
/* settings                                                                  */
/* ======================================================================== */

void dsrn_train_defaults(dsrn_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->vocab = 8192;
    dsrn_config c = {0, 64, 3, 256, 2, 2, 64, 0, 1, 1e-5f, 10.0f, 10000.0f, -1, 0, 0.0f};
    o->cfg = c;
    o->batch = 16;
    o->bptt = 128;
    o->lr = 3e-3;
    o->min_lr = 3e-4;
    o->warmup = 100;
    o->wd = 0.1;
    o->beta1 = 0.9;
    o->beta2 = 0.95;
    o->adam_eps = 1e-8;
    o->grad_clip = 1.0;
    o->wsd_decay = 0.2;
    o->val_frac = 0.005;
    o->val_tokens = 262144;
    o->eval_every = 500;
    o->save_every = 1000;
    o->log_every = 10;
    o->seed = 1;
    o->threads = 0;
    o->matmul = "auto";
}

int dsrn_train_preset(dsrn_train_opts *o, const char *name)
{
    /* D, L, F, H, A, W; parameters with an 8192-token vocabulary, tied head */
    if (!strcmp(name, "tiny")) { /* 0.83M */
        o->cfg.D = 64, o->cfg.L = 3, o->cfg.F = 256, o->cfg.H = 2, o->cfg.A = 2, o->cfg.W = 64;
    } else if (!strcmp(name, "small")) { /* 5.26M */
        o->cfg.D = 192, o->cfg.L = 4, o->cfg.F = 768, o->cfg.H = 2, o->cfg.A = 4, o->cfg.W = 128;
    } else if (!strcmp(name, "base")) { /* 21.6M */
        o->cfg.D = 384, o->cfg.L = 5, o->cfg.F = 1536, o->cfg.H = 2, o->cfg.A = 6, o->cfg.W = 128;
    } else {
        return -1;
    }
    return 0;
}

/* strings from configuration files live until exit */
static char *keep(const char *s)
{
    static char **kept;
    static size_t n, cap;
    if (n == cap) {
        size_t c = cap ? 2 * cap : 16;
        char **p = realloc(kept, c * sizeof *p);
        if (!p) return NULL;
        kept = p;
        cap = c;
    }
    return kept[n++] = strdup(s);
}

typedef enum { K_U32, K_INT, K_U64, K_DBL, K_FLT, K_SFLT, K_STR } kind; /* K_SFLT: a float of either sign */

typedef struct {
    const char *key, *help;
    kind k;
    size_t off;
} setting;

#define O(f) offsetof(dsrn_train_opts, f)
static const setting settings[] = {
    {"tokenizer", "TOK.gguf (default: train one of --vocab tokens on the data)", K_STR, O(tokenizer)},
    {"vocab", "tokens of a tokenizer trained here [8192]", K_U32, O(vocab)},
    {"cache", "folder for tokenised corpora [$DSRN_CACHE, ~/.cache/dsrn]", K_STR, O(cache)},
    {"dim", "model width D", K_U32, O(cfg.D)},
    {"layers", "blocks L", K_U32, O(cfg.L)},
    {"ffn", "MLP hidden width (SwiGLU)", K_U32, O(cfg.F)},
    {"slow-heads", "slow state heads H (c has H x D values)", K_U32, O(cfg.H)},
    {"heads", "attention heads", K_U32, O(cfg.A)},
    {"window", "attention window in tokens", K_U32, O(cfg.W)},
    {"tied", "1: output head tied to the embedding, 0: separate", K_INT, O(cfg.tied)},
    {"layernorm", "1: LayerNorm, 0: RMSNorm", K_INT, O(cfg.layer_norm)},
    {"biases", "1: the gate biases b_z, b_n, b_g, b_m (DSRN.md); 0: none", K_INT, O(cfg.biases)},
    {"gate-bias", "the slow gate's bias b_g at the start (with --biases 1)", K_SFLT, O(cfg.gate_bias)},
    {"norm-eps", "norm epsilon", K_FLT, O(cfg.eps)},
    {"surprise-clip", "surprise clip", K_FLT, O(cfg.clip)},
    {"rope-base", "RoPE base", K_FLT, O(cfg.rope_base)},
    {"batch", "streams per step", K_INT, O(batch)},
    {"bptt", "tokens per chunk (truncated backpropagation)", K_INT, O(bptt)},
    {"steps", "optimiser steps", K_U64, O(steps)},
    {"tokens", "training tokens (instead of --steps)", K_U64, O(tokens)},
    {"time", "minutes of training (instead of --steps)", K_DBL, O(minutes)},
    {"lr", "peak learning rate", K_DBL, O(lr)},
    {"min-lr", "final learning rate", K_DBL, O(min_lr)},
    {"warmup", "warm-up steps", K_DBL, O(warmup)},
    {"wd", "AdamW weight decay (matrices)", K_DBL, O(wd)},
    {"beta1", "AdamW beta1", K_DBL, O(beta1)},
    {"beta2", "AdamW beta2", K_DBL, O(beta2)},
    {"adam-eps", "AdamW epsilon", K_DBL, O(adam_eps)},
    {"grad-clip", "clip the gradient's global norm to this (0: off)", K_DBL, O(grad_clip)},
    {"wsd", "1: warm-up, stable, decay; 0: warm-up then cosine", K_INT, O(wsd)},
    {"wsd-decay", "WSD: fraction of the run spent decaying", K_DBL, O(wsd_decay)},
    {"val-frac", "fraction of the tokens held out for validation", K_DBL, O(val_frac)},
    {"val-tokens", "tokens per validation (0: all held out)", K_U64, O(val_tokens)},
    {"eval-every", "steps between validations", K_U64, O(eval_every)},
    {"save-every", "steps between checkpoints", K_U64, O(save_every)},
    {"log-every", "steps between progress lines", K_U64, O(log_every)},
    {"seed", "seed of the initialisation and the shuffles", K_U64, O(seed)},
    {"copy-frac", "fraction of the chunks that repeat a span of their own text further on (0: none)", K_DBL,
     O(copy_frac)},
    {"grow", "with --init: blocks added after the model's own, each starting as the identity (its attention output, W_read and MLP down-projection zero)", K_U32, O(grow)},
    {"init-std", "0: matrices N(0, 1/fan-in), W_read zero; S > 0: every matrix N(0, S), W_read too (the reference's 0.02)", K_DBL, O(init_std)},
    {"threads", "threads (0: all cores)", K_INT, O(threads)},
    {"matmul", "matrix products: auto (bf16 where the CPU has AMX or AVX512-BF16), bf16, f32", K_STR, O(matmul)},
};
#undef O

const char *dsrn_train_help(void)
{
    static char buf[4096];
    if (buf[0]) return buf;
    size_t o = 0;
    for (size_t i = 0; i < sizeof settings / sizeof *settings && o < sizeof buf; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "    --%-14s %s\n", settings[i].key, settings[i].help);
    return buf;
}

int dsrn_train_set(dsrn_train_opts *o, const char *key, const char *value, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof settings / sizeof *settings; i++) {
        const setting *s = &settings[i];
        if (strcmp(s->key, key)) continue;
        char *end;
        void *p = (char *)o + s->off;
        errno = 0;
        if (s->k == K_STR) {
            if (!(*(const char **)p = keep(value))) return errf(err, errlen, "%s", "out of memory");
            return 0;
        }
        if (s->k == K_SFLT) {
            double d = strtod(value, &end);
            if (end == value || *end || errno || !isfinite(d) || fabs(d) > 1e6)
                return errf(err, errlen, "--%s: '%s' is not a number", key, value);
            *(float *)p = (float)d;
            return 0;
        }
        if (s->k == K_DBL || s->k == K_FLT) {
            double d = strtod(value, &end);
            if (end == value || *end || errno || !isfinite(d) || d < 0)
                return errf(err, errlen, "--%s: '%s' is not a number >= 0", key, value);
            if (s->k == K_DBL) *(double *)p = d;
            else *(float *)p = (float)d;
            return 0;
        }
        unsigned long long v = strtoull(value, &end, 10);
        if (end == value || *end || errno || value[0] == '-')
            return errf(err, errlen, "--%s: '%s' is not a whole number >= 0", key, value);
        if (s->k == K_U64) *(uint64_t *)p = v;
        else if (v > (s->k == K_INT ? 0x7fffffffull : 0xffffffffull))
            return errf(err, errlen, "--%s: %s is too large", key, value);
        else if (s->k == K_INT) *(int *)p = (int)v;
        else *(uint32_t *)p = (uint32_t)v;
        return 0;
    }
    return errf(err, errlen, "unknown setting '%s'", key);
}

int dsrn_train_config_file(dsrn_train_opts *o, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) return errf(err, errlen, "%s: %s", path, strerror(errno));
    char line[1024];
    int rc = 0, ln = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        ln++;
        char *h = strchr(line, '#');
        if (h) *h = 0;
        char *k = line;
        while (*k == ' ' || *k == '\t') k++;
        if (!*k || *k == '\n' || *k == '\r') continue;
        char *eq = strchr(k, '=');
        if (!eq) {
            rc = errf(err, errlen, "%s:%d: expected 'key = value'", path, ln);
            break;
        }
        char *ke = eq;
        while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
        *ke = 0;
        char *v = eq + 1;
        while (*v == ' ' || *v == '\t') v++;
        size_t vl = strlen(v);
        while (vl && (v[vl - 1] == '\n' || v[vl - 1] == '\r' || v[vl - 1] == ' ' || v[vl - 1] == '\t')) v[--vl] = 0;
        char sub[512];
        if (!strcmp(k, "preset")) {
            if (dsrn_train_preset(o, v) != 0) rc = errf(err, errlen, "%s:%d: unknown preset '%s'", path, ln, v);
        } else if (dsrn_train_set(o, k, v, sub, sizeof sub) != 0) {
            rc = errf(err, errlen, "%s:%d: %s", path, ln, sub);
        }
    }
    fclose(f);
    return rc;
}

/* ======================================================================== */
/* tokenizer and the tokenised corpus                                        */
/* ======================================================================== */

typedef struct {
    lmz_gguf g;                /* the tokenizer's file (its keys go into checkpoints) */
    uint8_t *owned;            /* a tokenizer trained here: the file's bytes */
    lmz_tokenizer *tok;
    uint32_t *tok_bytes;       /* (vocab) bytes each token stands for */
    uint64_t hash;             /* of tokens and merges */
} tokenizer;

static void tokenizer_free(tokenizer *t)
{
    lmz_tokenizer_free(t->tok);
    lmz_gguf_close(&t->g);
    free(t->owned);
    free(t->tok_bytes);
}

static int tokenizer_finish(tokenizer *t, char *err, size_t errlen)
{
    if (lmz_tokenizer_load(&t->g, &t->tok, err, errlen) != 0) return -1;
    uint32_t V = lmz_tokenizer_vocab_size(t->tok);
    if (!(t->tok_bytes = malloc(V * sizeof *t->tok_bytes))) return errf(err, errlen, "%s", "out of memory");
    XXH3_state_t *h = XXH3_createState();
    XXH3_64bits_reset(h);
    for (uint32_t i = 0; i < V; i++) {
        size_t n;
        const uint8_t *b = lmz_tokenizer_token_bytes(t->tok, (int32_t)i, &n);
        t->tok_bytes[i] = (uint32_t)n;
        XXH3_64bits_update(h, &n, sizeof n);
        XXH3_64bits_update(h, b, n);
    }
    const lmz_gguf_kv *mg = lmz_gguf_find(&t->g, "tokenizer.ggml.merges");
    for (uint64_t i = 0; mg && i < mg->count; i++) {
        lmz_str s = lmz_gguf_arr_str(mg, i);
        XXH3_64bits_update(h, s.ptr, s.len);
        XXH3_64bits_update(h, "\n", 1);
    }
    lmz_str pre;
    if (lmz_gguf_get_str(&t->g, "tokenizer.ggml.pre", &pre) == 0) XXH3_64bits_update(h, pre.ptr, pre.len);
    t->hash = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    if (lmz_tokenizer_eos(t->tok) < 0)
        return errf(err, errlen, "%s", "the tokenizer has no end-of-text token (tokenizer.ggml.eos_token_id)");
    return 0;
}

static int tokenizer_open(const char *path, tokenizer *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    if (lmz_gguf_open(path, &t->g, err, errlen) != 0) return -1;
    return tokenizer_finish(t, err, errlen);
}

static int tokenizer_train(const lmz_corpus *c, uint32_t vocab, tokenizer *t, int quiet, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    lmz_gguf_writer *w = lmz_gguf_writer_new();
    lmz_bpe_opts bo = {vocab, !quiet};
    lmz_bpe_stats st;
    if (!w || lmz_bpe_train(c, &bo, w, &st, err, errlen) != 0) {
        lmz_gguf_writer_free(w);
        return w ? -1 : errf(err, errlen, "%s", "out of memory");
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int rc = f ? lmz_gguf_writer_write(w, f) : -1;
    if (f) fclose(f);
    lmz_gguf_writer_free(w);
    if (rc != 0) {
        free(buf);
        return errf(err, errlen, "%s", "out of memory");
    }
    t->owned = (uint8_t *)buf;
    if (lmz_gguf_parse(buf, len, &t->g, err, errlen) != 0) return -1;
    return tokenizer_finish(t, err, errlen);
}

typedef struct {
    int32_t *tok;      /* every document's tokens, one after another */
    size_t n_tok;
    size_t *off;       /* (n_docs + 1) */
    size_t n_docs;
} token_corpus;

static void token_corpus_free(token_corpus *tc)
{
    free(tc->tok);
    free(tc->off);
}

static int tokenize_all(const lmz_corpus *c, const lmz_tokenizer *tk, token_corpus *tc, char *err, size_t errlen)
{
    size_t nd = c->n_docs;
    int32_t **per = calloc(nd, sizeof *per);
    size_t *cnt = calloc(nd + 1, sizeof *cnt);
    int bad = 0;
    if (!per || !cnt) bad = 1;
#pragma omp parallel for schedule(dynamic, 4)
    for (size_t d = 0; d < nd; d++) {
        if (bad) continue;
        size_t n = c->off[d + 1] - c->off[d];
        int32_t *ids = malloc((n + 1) * sizeof *ids);
        long k = ids ? lmz_tokenizer_encode(tk, c->text + c->off[d], n, ids, n + 1) : -1;
        if (k < 0 || (size_t)k > n + 1) {
            bad = 1;
            free(ids);
            continue;
        }
        per[d] = ids;
        cnt[d] = (size_t)k;
    }
    if (!bad) {
        tc->n_docs = nd;
        tc->off = malloc((nd + 1) * sizeof *tc->off);
        size_t total = 0;
        for (size_t d = 0; d < nd; d++) total += cnt[d];
        tc->tok = malloc((total ? total : 1) * sizeof *tc->tok);
        if (!tc->off || !tc->tok) bad = 1;
        else {
            tc->n_tok = 0;
            for (size_t d = 0; d < nd; d++) {
                tc->off[d] = tc->n_tok;
                memcpy(tc->tok + tc->n_tok, per[d], cnt[d] * sizeof *tc->tok);
                tc->n_tok += cnt[d];
            }
            tc->off[nd] = tc->n_tok;
        }
    }
    for (size_t d = 0; per && d < nd; d++) free(per[d]);
    free(per);
    free(cnt);
    if (bad) {
        token_corpus_free(tc);
        memset(tc, 0, sizeof *tc);
        return errf(err, errlen, "%s", "tokenising the corpus failed (out of memory)");
    }
    return 0;
}

static const char CACHE_MAGIC[8] = {'D', 'S', 'R', 'N', 'T', 'O', 'K', '1'};

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void cache_dir(const dsrn_train_opts *o, char *out, size_t n)
{
    const char *env = getenv("DSRN_CACHE"), *home = getenv("HOME"), *xdg = getenv("XDG_CACHE_HOME");
    if (o->cache) snprintf(out, n, "%s", o->cache);
    else if (env && *env) snprintf(out, n, "%s", env);
    else if (xdg && *xdg) snprintf(out, n, "%s/dsrn", xdg);
    else snprintf(out, n, "%s/.cache/dsrn", home && *home ? home : ".");
}

static void mkdirs(const char *path)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    mkdir(p, 0755);
}

/* the cached tokens of (corpus, tokenizer), or tokenise and cache them */
static int load_tokens(const dsrn_train_opts *o, const lmz_corpus *c, const tokenizer *t, token_corpus *tc,
                       uint64_t *key_out, char *err, size_t errlen)
{
    uint64_t key = XXH3_64bits(c->text, c->len) ^ XXH3_64bits(c->off, (c->n_docs + 1) * sizeof *c->off) * 3 ^
                   t->hash * 7;
    *key_out = key;
    char dir[4096], path[4200];
    cache_dir(o, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/tokens-%016llx.bin", dir, (unsigned long long)key);
    memset(tc, 0, sizeof *tc);
    FILE *f = fopen(path, "rb");
    if (f) {
        uint8_t head[32];
        int ok = fread(head, 1, 32, f) == 32 && !memcmp(head, CACHE_MAGIC, 8) && get_u64(head + 8) == key;
        uint64_t nd = ok ? get_u64(head + 16) : 0, nt = ok ? get_u64(head + 24) : 0;
        ok = ok && nd == c->n_docs && nt < (1ull << 40);
        if (ok) {
            tc->n_docs = (size_t)nd;
            tc->n_tok = (size_t)nt;
            tc->off = malloc((nd + 1) * sizeof *tc->off);
            tc->tok = malloc((nt ? nt : 1) * sizeof *tc->tok);
            uint8_t *raw = malloc((nd + 1) * 8);
            ok = tc->off && tc->tok && raw && fread(raw, 8, nd + 1, f) == nd + 1 &&
                 fread(tc->tok, sizeof *tc->tok, nt, f) == nt;
            for (size_t d = 0; ok && d <= nd; d++) tc->off[d] = (size_t)get_u64(raw + 8 * d);
            ok = ok && tc->off[nd] == nt;
            uint32_t V = lmz_tokenizer_vocab_size(t->tok);
            for (size_t i = 0; ok && i < nt; i++) ok = tc->tok[i] >= 0 && (uint32_t)tc->tok[i] < V;
            free(raw);
        }
        fclose(f);
        if (ok) {
            if (!o->quiet) fprintf(stderr, "dsrn train: %zu tokens from the cache %s\n", tc->n_tok, path);
            return 0;
        }
        token_corpus_free(tc);
        memset(tc, 0, sizeof *tc);
        if (!o->quiet) fprintf(stderr, "dsrn train: ignoring a damaged cache file %s\n", path);
    }
    double t0 = now();
    if (tokenize_all(c, t->tok, tc, err, errlen) != 0) return -1;
    if (!o->quiet)
        fprintf(stderr, "dsrn train: tokenised %zu bytes into %zu tokens in %.1f s\n", c->len, tc->n_tok, now() - t0);
    mkdirs(dir);
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "wb");
    int ok = f != NULL;
    if (ok) {
        uint8_t head[32];
        memcpy(head, CACHE_MAGIC, 8);
        put_u64(head + 8, key);
        put_u64(head + 16, tc->n_docs);
        put_u64(head + 24, tc->n_tok);
        ok = fwrite(head, 1, 32, f) == 32;
        for (size_t d = 0; ok && d <= tc->n_docs; d++) {
            uint8_t b[8];
            put_u64(b, tc->off[d]);
            ok = fwrite(b, 1, 8, f) == 8;
        }
        ok = ok && fwrite(tc->tok, sizeof *tc->tok, tc->n_tok, f) == tc->n_tok;
        ok = (fclose(f) == 0) && ok;
        ok = ok && rename(tmp, path) == 0;
        if (!ok) remove(tmp);
    }
    if (!ok && !o->quiet) fprintf(stderr, "dsrn train: could not write the cache %s (going on without)\n", path);
    return 0;
}

/* ======================================================================== */
/* streams                                                                   */
/* ======================================================================== */

/* Copy practice: a chunk of n tokens whose span [a, a + len) is written
 * again at d (a + len <= d, d + len <= n), so the model sees text that its
 * window already holds and learns to copy it (induction); the targets are
 * the tokens that follow, the last one the stream's own next token. The
 * span and its place come from the seed, the step and the row. */
static void copy_span(int32_t *tok, int32_t *tgt, int n, uint64_t seed)
{
    uint64_t s = seed;
    int len = 8 + (int)(lmz_splitmix64(&s) % (uint64_t)(n / 3 - 7)); /* 8 .. n/3 */
    int a = (int)(lmz_splitmix64(&s) % (uint64_t)(n - 2 * len + 1));
    int d = a + len + (int)(lmz_splitmix64(&s) % (uint64_t)(n - a - 2 * len + 1));
    memmove(tok + d, tok + a, (size_t)len * sizeof *tok);
    for (int t = 0; t + 1 < n; t++) tgt[t] = tok[t + 1];
}

static void shuffle(size_t *v, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(lmz_splitmix64(&s) % i);
        size_t x = v[i - 1];
        v[i - 1] = v[j];
        v[j] = x;
    }
}

typedef struct {
    int32_t *tok;   /* [eod, doc..., eod, doc..., ...] */
    size_t len;
    size_t row_len; /* tokens per row */
} stream;

/* the documents order[0..n) as one stream for rows rows */
static int make_stream(const token_corpus *tc, const size_t *order, size_t n, int32_t eod, int rows, stream *s)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += 1 + tc->off[order[i] + 1] - tc->off[order[i]];
    free(s->tok);
    s->tok = malloc((len ? len : 1) * sizeof *s->tok);
    if (!s->tok) return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t a = tc->off[order[i]], b = tc->off[order[i] + 1];
        s->tok[o++] = eod;
        memcpy(s->tok + o, tc->tok + a, (b - a) * sizeof *s->tok);
        o += b - a;
    }
    s->len = len;
    s->row_len = len / (size_t)rows;
    return 0;
}

/* ======================================================================== */
/* checkpoints                                                               */
/* ======================================================================== */

typedef struct {
    uint64_t step, tokens_seen, epoch, data_key;
    uint64_t base_tokens, base_steps; /* the training of the --init model before this run */
    double elapsed;            /* seconds of training before this run */
    uint32_t *row_pos;         /* (batch) */
    const char *matmul;        /* what the products run on (dsrn_mm_describe) */
} progress;

/* through a temporary file renamed into place: never a partial file */
static int write_file(lmz_gguf_writer *w, const char *path)
{
    size_t n = strlen(path) + 8;
    char *tmp = malloc(n);
    if (!tmp) return -1;
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int rc = f ? lmz_gguf_writer_write(w, f) : -1;
    if (f && fclose(f) != 0) rc = -1;
    if (rc == 0 && rename(tmp, path) != 0) rc = -1;
    if (rc != 0) remove(tmp);
    free(tmp);
    return rc;
}

static void opt_path(const char *out, char *buf, size_t n)
{
    size_t l = strlen(out);
    if (l > 5 && !strcmp(out + l - 5, ".gguf")) snprintf(buf, n, "%.*s.opt.gguf", (int)(l - 5), out);
    else snprintf(buf, n, "%s.opt.gguf", out);
}

static int save_checkpoint(const dsrn_train_opts *o, dsrn_net *net, const tokenizer *tk, const progress *pg,
                           const char *path, char *err, size_t errlen)
{
    size_t np = dsrn_net_n_params(net);
    float *buf = malloc(2 * np * sizeof *buf);
    lmz_gguf_writer *w = lmz_gguf_writer_new();
    if (!buf || !w) {
        free(buf);
        lmz_gguf_writer_free(w);
        return errf(err, errlen, "%s", "out of memory");
    }
    char name[128];
    const dsrn_config *c = dsrn_net_config(net);
    snprintf(name, sizeof name, "dsrn-%ud-%ul-%.1fM", c->D, c->L, (double)np / 1e6);
    lmz_gguf_w_str(w, "general.name", name);
    lmz_gguf_w_u64(w, "dsrn.train.tokens", pg->base_tokens + pg->tokens_seen);
    lmz_gguf_w_u64(w, "dsrn.train.steps", pg->base_steps + pg->step);
    if (pg->matmul) lmz_gguf_w_str(w, "dsrn.train.matmul", pg->matmul);
    for (uint64_t i = 0; i < tk->g.n_kv; i++) {
        const lmz_gguf_kv *kv = &tk->g.kv[i];
        if (kv->key.len > 10 && !memcmp(kv->key.ptr, "tokenizer.", 10)) lmz_gguf_w_copy(w, kv);
    }
    dsrn_net_write_gguf(net, w, buf);
    int rc = write_file(w, path);
    lmz_gguf_writer_free(w);
    if (rc != 0) {
        free(buf);
        return errf(err, errlen, "cannot write %s", path);
    }
    /* the optimiser's state */
    w = lmz_gguf_writer_new();
    if (!w) {
        free(buf);
        return errf(err, errlen, "%s", "out of memory");
    }
    lmz_gguf_w_str(w, "general.architecture", "dsrn-optimizer");
    lmz_gguf_w_u64(w, "train.step", pg->step);
    lmz_gguf_w_u64(w, "train.tokens", pg->tokens_seen);
    lmz_gguf_w_u64(w, "train.epoch", pg->epoch);
    lmz_gguf_w_u64(w, "train.base_tokens", pg->base_tokens);
    lmz_gguf_w_u64(w, "train.base_steps", pg->base_steps);
    lmz_gguf_w_u64(w, "train.data_key", pg->data_key);
    lmz_gguf_w_f32(w, "train.elapsed_minutes", (float)(pg->elapsed / 60.0));
    lmz_gguf_w_u64(w, "train.seed", o->seed);
    lmz_gguf_w_u32(w, "train.batch", (uint32_t)o->batch);
    lmz_gguf_w_u32(w, "train.bptt", (uint32_t)o->bptt);
    lmz_gguf_w_arr_i32(w, "train.row_pos", (const int32_t *)pg->row_pos, (size_t)o->batch);
    const real *mom = dsrn_net_moments(net);
    for (size_t i = 0; i < 2 * np; i++) buf[i] = (float)mom[i];
    size_t nt;
    const dsrn_tensor *t = dsrn_net_tensors(net, &nt);
    char tn[64];
    for (size_t k = 0; k < 2; k++)
        for (size_t i = 0; i < nt; i++) {
            uint64_t ne[1] = {(uint64_t)t[i].rows * t[i].cols};
            snprintf(tn, sizeof tn, "adam.%c.%u", k ? 'v' : 'm', (unsigned)i);
            lmz_gguf_w_tensor(w, tn, LMZ_GGML_F32, 1, ne, buf + k * np + t[i].off);
        }
    char op[4200];
    opt_path(path, op, sizeof op);
    rc = write_file(w, op);
    lmz_gguf_writer_free(w);
    free(buf);
    return rc ? errf(err, errlen, "cannot write %s", op) : 0;
}

/* the optimiser state of a checkpoint (model parameters: read by the caller) */
static int load_optimizer(const char *model_path, dsrn_net *net, const dsrn_train_opts *o, progress *pg, char *err,
                          size_t errlen)
{
    char op[4200];
    opt_path(model_path, op, sizeof op);
    lmz_gguf g;
    if (lmz_gguf_open(op, &g, err, errlen) != 0) return -1;
    int rc = -1;
    uint64_t v, batch = 0;
    float minutes = 0;
    lmz_str arch;
    if (lmz_gguf_get_str(&g, "general.architecture", &arch) != 0 || !lmz_str_eq(arch, "dsrn-optimizer")) {
        errf(err, errlen, "%s is not a dsrn optimiser state", op);
        goto out;
    }
    lmz_gguf_get_u64(&g, "train.batch", &batch);
    if (batch != (uint64_t)o->batch) {
        errf(err, errlen, "%s was trained with --batch %llu (now %d)", op, (unsigned long long)batch, o->batch);
        goto out;
    }
    if (lmz_gguf_get_u64(&g, "train.step", &pg->step) || lmz_gguf_get_u64(&g, "train.tokens", &pg->tokens_seen) ||
        lmz_gguf_get_u64(&g, "train.epoch", &pg->epoch) || lmz_gguf_get_u64(&g, "train.data_key", &v) ||
        lmz_gguf_get_f32(&g, "train.elapsed_minutes", &minutes)) {
        errf(err, errlen, "%s: training progress is missing", op);
        goto out;
    }
    pg->elapsed = (double)minutes * 60.0;
    pg->base_tokens = pg->base_steps = 0; /* absent: the run started from scratch */
    lmz_gguf_get_u64(&g, "train.base_tokens", &pg->base_tokens);
    lmz_gguf_get_u64(&g, "train.base_steps", &pg->base_steps);
    if (v != pg->data_key) {
        if (!o->quiet) fprintf(stderr, "dsrn train: the data differ from the checkpoint's: reading from the start\n");
        memset(pg->row_pos, 0, (size_t)o->batch * sizeof *pg->row_pos);
        pg->epoch = 0;
    } else {
        const lmz_gguf_kv *rp = lmz_gguf_find(&g, "train.row_pos");
        if (!rp || rp->count != (uint64_t)o->batch) {
            errf(err, errlen, "%s: data positions are missing", op);
            goto out;
        }
        memcpy(pg->row_pos, rp->data, (size_t)o->batch * 4);
    }
    size_t nt, np = dsrn_net_n_params(net);
    const dsrn_tensor *t = dsrn_net_tensors(net, &nt);
    real *mom = dsrn_net_moments(net);
    char tn[64];
    for (size_t k = 0; k < 2; k++)
        for (size_t i = 0; i < nt; i++) {
            snprintf(tn, sizeof tn, "adam.%c.%u", k ? 'v' : 'm', (unsigned)i);
            const lmz_gguf_tensor *gt = lmz_gguf_tensor_find(&g, tn);
            size_t cnt = (size_t)t[i].rows * t[i].cols;
            if (!gt || gt->type != LMZ_GGML_F32 || gt->n_elements != cnt) {
                errf(err, errlen, "%s: tensor %s is missing or of another shape", op, tn);
                goto out;
            }
            for (size_t j = 0; j < cnt; j++) {
                float f;
                memcpy(&f, (const uint8_t *)gt->data + 4 * j, 4);
                mom[k * np + t[i].off + j] = f;
            }
        }
    rc = 0;
out:
    lmz_gguf_close(&g);
    return rc;
}

/* ======================================================================== */
/* training                                                                  */
/* ======================================================================== */

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

/* validation: mean nats per token and bits per byte of the held-out stream */
static void validate(dsrn_net *net, dsrn_carry *vc, const stream *vs, const tokenizer *tk, const dsrn_train_opts *o,
                     int32_t *tok, int32_t *tgt, double *nats_per_tok, double *bpb)
{
    const int Bt = o->batch, T = o->bptt;
    dsrn_carry_reset(net, vc);
    size_t chunks = vs->row_len > 0 ? (vs->row_len - 1) / (size_t)T : 0;
    if (o->val_tokens) {
        size_t want = (size_t)(o->val_tokens / ((uint64_t)Bt * (uint64_t)T));
        if (want < 1) want = 1;
        if (chunks > want) chunks = want;
    }
    double nats = 0, bytes = 0, n = 0;
    for (size_t ch = 0; ch < chunks; ch++) {
        for (int b = 0; b < Bt; b++)
            for (int t = 0; t < T; t++) {
                size_t p = (size_t)b * vs->row_len + ch * (size_t)T + (size_t)t;
                tok[b * T + t] = vs->tok[p];
                tgt[b * T + t] = vs->tok[p + 1];
                bytes += tk->tok_bytes[vs->tok[p + 1]];
            }
        nats += dsrn_forward(net, vc, tok, tgt, NULL);
        dsrn_carry_advance(net, vc);
        n += (double)Bt * T;
    }
    *nats_per_tok = n > 0 ? nats / n : 0;
    *bpb = bytes > 0 ? nats / log(2.0) / bytes : 0;
}

/* the learning rate at a step, frac of the run done */
static double schedule_lr(const dsrn_train_opts *o, uint64_t step, double frac)
{
    if (o->warmup > 0 && (double)step < o->warmup) return o->lr * ((double)step + 1) / o->warmup;
    if (frac > 1) frac = 1;
    if (o->wsd) {
        double start = 1 - o->wsd_decay;
        if (frac <= start || o->wsd_decay <= 0) return o->lr;
        return o->lr + (o->min_lr - o->lr) * (frac - start) / o->wsd_decay;
    }
    return o->min_lr + 0.5 * (o->lr - o->min_lr) * (1 + cos(3.141592653589793 * frac));
}

void dsrn_adamw(dsrn_net *net, const dsrn_train_opts *o, double lr, uint64_t step, double *gnorm_out)
{
    double t0 = dsrn_prof_start();
    size_t np = dsrn_net_n_params(net), nt;
    real *p = dsrn_net_params(net), *g = dsrn_net_grads(net), *m = dsrn_net_moments(net), *v = m + np;
    const dsrn_tensor *t = dsrn_net_tensors(net, &nt);
    double ss = 0;
#pragma omp parallel for reduction(+ : ss) schedule(static)
    for (size_t i = 0; i < np; i++) ss += (double)g[i] * g[i];
    double gn = sqrt(ss), scale = o->grad_clip > 0 && gn > o->grad_clip ? o->grad_clip / gn : 1.0;
    *gnorm_out = gn;
    double bc1 = 1 - pow(o->beta1, (double)step), bc2 = 1 - pow(o->beta2, (double)step);
    const real b1 = (real)o->beta1, b2 = (real)o->beta2, eps = (real)o->adam_eps;
    for (size_t k = 0; k < nt; k++) {
        size_t a = t[k].off, e = a + (size_t)t[k].rows * t[k].cols;
        const real step_lr = (real)(lr / bc1), decay = (real)(t[k].decay ? lr * o->wd : 0.0);
        const real inv_bc2 = (real)(1.0 / bc2), sc = (real)scale;
#pragma omp parallel for schedule(static)
        for (size_t i = a; i < e; i++) {
            real gi = g[i] * sc;
            m[i] = b1 * m[i] + (1 - b1) * gi;
            v[i] = b2 * v[i] + (1 - b2) * gi * gi;
            p[i] -= step_lr * m[i] / (sqrtf(v[i] * inv_bc2) + eps) + decay * p[i];
        }
    }
    dsrn_prof_stop(DSRN_PROF_OPTIMIZER, t0);
}

static void fmt_time(double s, char *buf, size_t n)
{
    if (s < 0 || !isfinite(s)) s = 0;
    unsigned long t = (unsigned long)(s + 0.5);
    snprintf(buf, n, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
}

int dsrn_train(dsrn_train_opts *o, char *err, size_t errlen)
{
    if (!o->n_data) return errf(err, errlen, "%s", "no training data (--data PATH...)");
    if (!o->out) return errf(err, errlen, "%s", "no output file (-o OUT.gguf)");
    if (o->batch < 1 || o->bptt < 2) return errf(err, errlen, "%s", "--batch must be >= 1 and --bptt >= 2");
    if (!o->steps && !o->tokens && !(o->minutes > 0))
        return errf(err, errlen, "%s", "say how long to train: --steps N, --tokens N or --time MINUTES");
    if (o->threads > 0) {
        omp_set_num_threads(o->threads);
    }
    int rc = -1;
    lmz_corpus corpus;
    tokenizer tk;
    token_corpus tc;
    memset(&tk, 0, sizeof tk);
    memset(&tc, 0, sizeof tc);
    dsrn_net *net = NULL;
    dsrn_carry *carry = NULL, *vcarry = NULL;
    stream ts = {0}, vs = {0};
    size_t *order = NULL;
    int32_t *tok = NULL, *tgt = NULL;
    progress pg;
    memset(&pg, 0, sizeof pg);
    lmz_gguf resume_g;
    int have_resume = 0;

    if (lmz_corpus_load(o->data, o->n_data, &corpus, err, errlen) != 0) return -1;
    if (!o->quiet)
        fprintf(stderr, "dsrn train: %zu files (%zu read as Latin-1), %zu documents, %zu bytes\n", corpus.n_files,
                corpus.n_latin1, corpus.n_docs, corpus.len);
    if (o->resume && o->init) {
        lmz_corpus_free(&corpus);
        return errf(err, errlen, "%s", "--resume and --init exclude each other");
    }
    if (o->grow && !o->init) {
        lmz_corpus_free(&corpus);
        return errf(err, errlen, "%s", "--grow adds blocks to an --init model");
    }
    /* the tokenizer: the checkpoint's (or --init model's), else --tokenizer, else trained here */
    const char *start = o->resume ? o->resume : o->init;
    const char *tok_path = start ? start : o->tokenizer;
    if (tok_path ? tokenizer_open(tok_path, &tk, err, errlen) != 0
                 : tokenizer_train(&corpus, o->vocab, &tk, o->quiet, err, errlen) != 0)
        goto out;
    if (load_tokens(o, &corpus, &tk, &tc, &pg.data_key, err, errlen) != 0) goto out;
    lmz_corpus_free(&corpus);
    memset(&corpus, 0, sizeof corpus);

    /* the model */
    dsrn_config cfg = o->cfg;
    if (start) {
        if (lmz_gguf_open(start, &resume_g, err, errlen) != 0) goto out;
        have_resume = 1;
        if (dsrn_config_from_gguf(&resume_g, &cfg, err, errlen) != 0) goto out;
        /* --grow is refused without --init above; the grown size is checked
         * with the rest of the configuration below, once the sum cannot wrap */
        if (cfg.L + o->grow < cfg.L) {
            errf(err, errlen, "--grow %u: too many blocks", (unsigned)o->grow);
            goto out;
        }
        cfg.L += o->grow;
    } else {
        cfg.vocab = lmz_tokenizer_vocab_size(tk.tok);
        cfg.eod = lmz_tokenizer_eos(tk.tok);
    }
    if (cfg.vocab != lmz_tokenizer_vocab_size(tk.tok) || dsrn_config_check(&cfg, err, errlen) != 0) {
        if (cfg.vocab != lmz_tokenizer_vocab_size(tk.tok)) errf(err, errlen, "%s", "the model and tokenizer differ in size");
        goto out;
    }
    net = dsrn_net_new(&cfg, o->batch, o->bptt);
    carry = net ? dsrn_carry_new(net, o->batch) : NULL;
    vcarry = net ? dsrn_carry_new(net, o->batch) : NULL;
    pg.row_pos = calloc((size_t)o->batch, sizeof *pg.row_pos);
    tok = malloc((size_t)o->batch * o->bptt * sizeof *tok);
    tgt = malloc((size_t)o->batch * o->bptt * sizeof *tgt);
    order = malloc((tc.n_docs ? tc.n_docs : 1) * sizeof *order);
    if (!net || !carry || !vcarry || !pg.row_pos || !tok || !tgt || !order) {
        errf(err, errlen, "%s", "out of memory for the model and its activations");
        goto out;
    }
    size_t np = dsrn_net_n_params(net);
    dsrn_mm_kind mm;
    if (dsrn_mm_choose(o->matmul, &mm, err, errlen) != 0) goto out;
    dsrn_net_set_matmul(net, mm);
    pg.matmul = dsrn_mm_describe(mm);
    if (!o->quiet) fprintf(stderr, "dsrn train: matrix products in %s\n", pg.matmul);
    if (have_resume) {
        const uint32_t own = cfg.L - o->grow; /* the blocks the file holds */
        if (own < cfg.L) dsrn_net_init(net, o->seed, o->init_std); /* the added blocks' start */
        if (dsrn_net_read_gguf(net, &resume_g, own, err, errlen) != 0 ||
            (o->resume && load_optimizer(o->resume, net, o, &pg, err, errlen) != 0))
            goto out;
        if (o->init) { /* the model's own count goes on in the new run's metadata */
            lmz_gguf_get_u64(&resume_g, "dsrn.train.tokens", &pg.base_tokens);
            lmz_gguf_get_u64(&resume_g, "dsrn.train.steps", &pg.base_steps);
        }
        if (own < cfg.L) dsrn_net_identity_blocks(net, own);
    } else {
        dsrn_net_init(net, o->seed, o->init_std);
    }

    /* documents: shuffled with the seed; the first val_frac of the tokens held out */
    for (size_t i = 0; i < tc.n_docs; i++) order[i] = i;
    shuffle(order, tc.n_docs, o->seed * 0x632BE59BD9B4E019ull + 17);
    size_t n_val = 0, val_tok = 0;
    while (n_val + 1 < tc.n_docs && (double)val_tok < o->val_frac * (double)tc.n_tok) {
        val_tok += tc.off[order[n_val] + 1] - tc.off[order[n_val]];
        n_val++;
    }
    size_t *train_docs = order + n_val, n_train = tc.n_docs - n_val;
    /* a run from --init reads the data in the order of the epoch after the ones its model saw */
    if (o->init && tc.n_tok > val_tok) pg.epoch = pg.base_tokens / (tc.n_tok - val_tok) + 1;
    if (make_stream(&tc, order, n_val, cfg.eod, o->batch, &vs) != 0) goto oom;
    shuffle(train_docs, n_train, o->seed + pg.epoch);
    if (make_stream(&tc, train_docs, n_train, cfg.eod, o->batch, &ts) != 0) goto oom;
    if (ts.row_len < (size_t)o->bptt + 1) {
        errf(err, errlen, "too little training text: %zu tokens for %d streams of %d", ts.len, o->batch, o->bptt);
        goto out;
    }
    const uint64_t per_step = (uint64_t)o->batch * (uint64_t)o->bptt;
    uint64_t total_steps = o->steps ? o->steps : o->tokens ? (o->tokens + per_step - 1) / per_step : 0;
    if (!o->quiet) {
        fprintf(stderr,
                "dsrn train: model D %u, L %u, MLP %u, slow heads %u, attention %u x %u over %u tokens, %s, %s head: "
                "%.2fM parameters\n",
                cfg.D, cfg.L, cfg.F, cfg.H, cfg.A, cfg.D / cfg.A, cfg.W, cfg.layer_norm ? "LayerNorm" : "RMSNorm",
                cfg.tied ? "tied" : "separate", (double)np / 1e6);
        fprintf(stderr, "dsrn train: %zu training tokens (%zu documents), %zu held out (%zu documents); %d x %d "
                        "tokens per step\n",
                tc.n_tok - val_tok, n_train, val_tok, n_val, o->batch, o->bptt);
        if (o->resume) fprintf(stderr, "dsrn train: resuming at step %llu\n", (unsigned long long)pg.step);
        if (o->init)
            fprintf(stderr, "dsrn train: starting from %s (%llu tokens, %llu steps before), epoch %llu's order\n",
                    o->init, (unsigned long long)pg.base_tokens, (unsigned long long)pg.base_steps,
                    (unsigned long long)pg.epoch + 1);
        if (o->grow)
            fprintf(stderr, "dsrn train: %u blocks added after its %u, each the identity at the start\n",
                    (unsigned)o->grow, (unsigned)(cfg.L - o->grow));
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    struct sigaction old_int, old_term;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    stop_signal = 0;

    const double t_start = now(), elapsed0 = pg.elapsed;
    double t_log = t_start, loss_acc = 0, val_nats = 0, val_bpb = 0;
    uint64_t loss_n = 0, tok_log = 0;
    double step_sec = 0; /* LMZ_TRAIN_PROFILE: the steps' time, for the shares */
    int done = 0;
    while (!done) {
        double el = elapsed0 + (now() - t_start);
        double prog = total_steps ? (double)pg.step / (double)total_steps : el / (o->minutes * 60.0);
        if ((total_steps && pg.step >= total_steps) || (!total_steps && prog >= 1.0)) break;
        if (stop_signal) break;
        double t_step = dsrn_prof_start(), t_data = t_step;
        /* the next chunk of every row; at the end of the stream, a new epoch */
        if ((size_t)pg.row_pos[0] + (size_t)o->bptt + 1 > ts.row_len) {
            pg.epoch++;
            shuffle(train_docs, n_train, o->seed + pg.epoch);
            if (make_stream(&tc, train_docs, n_train, cfg.eod, o->batch, &ts) != 0) goto oom;
            memset(pg.row_pos, 0, (size_t)o->batch * sizeof *pg.row_pos);
            dsrn_carry_reset(net, carry);
            if (!o->quiet) fprintf(stderr, "dsrn train: epoch %llu\n", (unsigned long long)pg.epoch + 1);
        }
        for (int b = 0; b < o->batch; b++)
            for (int t = 0; t < o->bptt; t++) {
                size_t p = (size_t)b * ts.row_len + pg.row_pos[b] + (size_t)t;
                tok[b * o->bptt + t] = ts.tok[p];
                tgt[b * o->bptt + t] = ts.tok[p + 1];
            }
        if (o->copy_frac > 0 && o->bptt >= 32)
            for (int b = 0; b < o->batch; b++) {
                uint64_t rs = (o->seed ^ 0xC0B1E5ull) * 0x9E3779B97F4A7C15ull + pg.step * 0x632BE59BD9B4E019ull + (uint64_t)b;
                if (lmz_uniform53(&rs) < o->copy_frac)
                    copy_span(tok + b * o->bptt, tgt + b * o->bptt, o->bptt, lmz_splitmix64(&rs));
            }
        dsrn_prof_stop(DSRN_PROF_DATA, t_data);
        memset(dsrn_net_grads(net), 0, np * sizeof(real));
        double loss = dsrn_forward(net, carry, tok, tgt, NULL);
        dsrn_backward(net, carry, tok, tgt, (real)(1.0 / (double)per_step));
        dsrn_carry_advance(net, carry);
        pg.step++;
        double lr = schedule_lr(o, pg.step - 1, prog), gnorm;
        dsrn_adamw(net, o, lr, pg.step, &gnorm);
        if (dsrn_prof_enabled()) step_sec += dsrn_prof_start() - t_step;
        for (int b = 0; b < o->batch; b++) pg.row_pos[b] += (uint32_t)o->bptt;
        pg.tokens_seen += per_step;
        loss_acc += loss / (double)per_step;
        loss_n++;
        tok_log += per_step;
        el = elapsed0 + (now() - t_start);
        int last = total_steps ? pg.step >= total_steps : el >= o->minutes * 60.0;
        if (!o->quiet && (pg.step % o->log_every == 0 || last || pg.step == 1)) {
            double t = now(), rate = (double)tok_log / (t - t_log);
            double eta = total_steps ? (double)(total_steps - pg.step) * (double)per_step / rate
                                     : o->minutes * 60.0 - el;
            char e1[32], e2[32], of[32] = "";
            fmt_time(el, e1, sizeof e1);
            fmt_time(eta, e2, sizeof e2);
            if (total_steps) snprintf(of, sizeof of, "/%llu", (unsigned long long)total_steps);
            fprintf(stderr, "step %llu%s | loss %.4f | lr %.2e | grad %.2f | %.0f tok/s | %s, ETA %s\n",
                    (unsigned long long)pg.step, of, loss_acc / (double)loss_n, lr, gnorm, rate, e1, e2);
            loss_acc = 0;
            loss_n = 0;
            tok_log = 0;
            t_log = t;
        }
        if ((o->eval_every && pg.step % o->eval_every == 0) || last) {
            double kept[DSRN_PROF_COUNT]; /* the shares are the training steps' */
            dsrn_prof_get(kept);
            validate(net, vcarry, &vs, &tk, o, tok, tgt, &val_nats, &val_bpb);
            dsrn_prof_set(kept);
            if (!o->quiet)
                fprintf(stderr, "step %llu | validation: %.4f nats/token, %.4f bits/byte\n", (unsigned long long)pg.step,
                        val_nats, val_bpb);
            t_log = now();
        }
        if (o->save_every && pg.step % o->save_every == 0 && !last) {
            pg.elapsed = elapsed0 + (now() - t_start);
            if (save_checkpoint(o, net, &tk, &pg, o->out, err, errlen) != 0) goto out;
        }
        if (last) done = 1;
    }
    pg.elapsed = elapsed0 + (now() - t_start);
    if (save_checkpoint(o, net, &tk, &pg, o->out, err, errlen) != 0) goto out;
    if (!o->quiet && dsrn_prof_enabled() && step_sec > 0) {
        double part[DSRN_PROF_COUNT], sum = 0;
        dsrn_prof_get(part);
        fprintf(stderr, "dsrn train: time shares of the steps (%.1f s):", step_sec);
        for (int i = 0; i < DSRN_PROF_COUNT; i++) {
            fprintf(stderr, " %s %.1f %%,", dsrn_prof_name(i), 100 * part[i] / step_sec);
            sum += part[i];
        }
        fprintf(stderr, " other %.1f %%\n", 100 * (1 - sum / step_sec));
    }
    if (!o->quiet) {
        char op[4200];
        opt_path(o->out, op, sizeof op);
        fprintf(stderr, "dsrn train: %s after step %llu (%llu tokens): %s, optimiser state %s\n",
                stop_signal ? "stopped by a signal" : "done", (unsigned long long)pg.step,
                (unsigned long long)pg.tokens_seen, o->out, op);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    rc = 0;
    goto out;
oom:
    errf(err, errlen, "%s", "out of memory");
out:
    if (have_resume) lmz_gguf_close(&resume_g);
    lmz_corpus_free(&corpus);
    tokenizer_free(&tk);
    token_corpus_free(&tc);
    dsrn_carry_free(carry);
    dsrn_carry_free(vcarry);
    dsrn_net_free(net);
    dsrn_mm_release();
    free(ts.tok);
    free(vs.tok);
    free(order);
    free(tok);
    free(tgt);
    free(pg.row_pos);
    return rc;
}
