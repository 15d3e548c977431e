/* lmens.c — see lmens.h for the contract. */
#include "lmens.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/align.h"
#include "../common/multiversion.h"
#include "cdf.h"
#include "../tensor/detmath.h"
#include "../tensor/kernels.h"
#include "../tensor/qmat.h"

#define NG_ORDERS 4
#define NG_SLOTS 7
#define NG_COUNT_MAX 255u
#define MATCH_MIN 4
#define MATCH_LENS 16
#define APM_CTX 16      /* profile 3: the map's contexts (match models agree x model confidence) */
#define APM_BUCKETS 33  /* ... and its buckets over the stretch -8..8 */
#define APM_RATE 0.02f
#define LOCAL_MIN 2 /* profile 3: the stream's own match model follows 2-token contexts */
#define MATCH_NONE SIZE_MAX
#define PROB_WARMUP 100   /* the probability mixer uses the model alone first */
#define EXPERTS 5         /* profile 3: + the stream's own match model; part NGTOP: + the top order */
#define MIX_DET 3         /* part NGTOP: the top order's bucket holds several tokens, one seen once or twice, one
                             seen three times or more */
#define MIX_CHEAP ((NG_ORDERS + 1) * 4 * MIX_DET) /* log mixer: weight offsets per (n-gram order found, match
                                                     length, the top order's determinism) */
#define MIX_CONF 4                      /* ... and in profile 2 per the model's confidence */
#define MIX_LOCAL 2                     /* ... and in profile 3 by the stream's own match model */
#define MIX_SETS (MIX_CHEAP * MIX_CONF * MIX_LOCAL)
/* the cache (part LMZ_ENS_CACHE) */
#define CACHE_THETA 25.0f   /* a key's weight: exp(25 (similarity - the best similarity)) ... */
#define CACHE_DELTA 0.4f    /* ... for keys within 0.4 of the best (weights down to e^-10) */
#define CACHE_BUCKETS 8     /* the cache's weight in the mixture, by the best similarity */
#define CACHE_LAMBDA0 0.15f /* its start */
#define CACHE_RATE 0.001f   /* its learning rate */
#define CACHE_LMIN 0.001f
#define CACHE_LMAX 0.95f
#define CACHE_FIND 1024 /* rows searched at a time */
static const float cache_edges[CACHE_BUCKETS - 1] = {0.3f, 0.45f, 0.6f, 0.7f, 0.8f, 0.88f, 0.94f};
enum { X_MODEL, X_NGRAM, X_MATCH, X_LOCAL, X_NGTOP };

/* one context of one order: a check value (0 = empty bucket) and up to seven
 * next tokens, each token << 8 | count (0 = empty slot) */
typedef struct {
    uint32_t check;
    uint32_t slot[NG_SLOTS];
} ng_bucket;

/* one stream: its history, the match pointer, and the scratch of its
 * prediction (kept for its update) */
typedef struct {
    size_t max, n;
    int32_t *hist;                      /* (max) the stream's tokens */
    float *u, *l, *pm, *pmix, *ngadd;  /* (V) each */
    uint8_t *inlist;                    /* (V) */
    uint32_t *freq, *cum;               /* (V), (V + 1) */
    /* the match model: the next token is hist of stream msrc at mptr */
    size_t mptr, msrc;
    unsigned mlen;
    float weff[EXPERTS]; /* log mixer: weights in use, wglob + the set's offsets */
    const float *w;      /* the weights in use: the shared wglob (probability mixer) or weff */
    unsigned wset;
    unsigned ngorder; /* the highest n-gram order whose context was seen */
    unsigned ngdet;   /* part NGTOP: that order's determinism, 0 .. MIX_DET - 1 */
    /* part NGTOP: that order alone, tq[i] for token ttok[i], tbg for any other */
    int32_t ttok[NG_SLOTS];
    float tq[NG_SLOTS], tbg;
    unsigned nt;
    /* the last prediction, for the update */
    int act[EXPERTS];
    int32_t list[NG_ORDERS * NG_SLOTS];
    unsigned nlist;
    size_t ngidx[NG_ORDERS];
    uint32_t ngchk[NG_ORDERS];
    unsigned ngk;    /* orders whose context exists */
    float ng_s;      /* the n-gram's probability of a token with no count */
    int32_t mpred;
    float mconf, mbg;
    float elog[EXPERTS]; /* log mixer: expectation of each expert's log q */
    /* profile 3: the stream's own match model (a table of its history:
     * position + 1 of the token that followed each context, 0 = none) */
    uint32_t *lt;      /* (lmask + 1) */
    size_t lmask, lptr;
    unsigned llen;
    int32_t lpred;
    float lconf, lbg;
    /* profile 3: the probability map's last use: the most probable token,
     * the map's context, bucket and the weight of the bucket above */
    int32_t atok;
    unsigned actx, abkt;
    float aw;
    int aon;
    /* the adaptive head: the logits it corrected, h / |h|^2 of the token */
    float *hl;           /* (V) */
    float *hc;           /* (hd) */
    int hon;             /* the head took part in the last prediction */
    int hpend;           /* lmz_ens_head_begin was called: lmz_ens_head_rows fills hout */
    const float *hlog, *hh; /* the head's logits from these logits and this vector ... */
    float *hout;            /* ... into hl, or over the caller's logits (lmz_ens_head_begin) */
    /* the cache (part LMZ_ENS_CACHE): this token's query, h quantized as
     * the integer products quantize activations, its scale over |h|; the
     * row of similarities it got; the cache's distribution, kept sparse */
    int cqon;            /* a query was made for this prediction (e->cq, e->cqs) */
    int cpend;           /* lmz_ens_cache_rows computes its similarities (lmz_ens_head_begin) */
    float *cyp;          /* its similarities, if not e->cy's row of the stream: an ahead query's row */
    float *cw;           /* (V) weights summed per token, zeros outside clist */
    int32_t *clist;      /* tokens with a weight, in the order they came */
    float *cpold;        /* (V) their probabilities before the cache's */
    uint32_t ncl;
    double csum, cwsum;  /* the table's sum before the cache, the weights' sum */
    unsigned cbkt;       /* the weight of the cache used: e->clam[cbkt] */
    int con;             /* the cache took part in the last prediction */
    int prepared;        /* the cheap parts of the next prediction are done */
    int want;            /* ... and the model is wanted */
    uint64_t skipped;
} ens_stream;

/* what the streams share: every table that learns */
struct lmz_ens {
    lmz_ens_params p;
    uint32_t V;
    lmz_kpath kp;
    size_t ns;          /* streams */
    ens_stream *s;      /* (ns) */
    uint64_t n;         /* tokens learnt, all streams */
    float *bias;        /* (V) the bias head */
    float *hw;          /* (V, hd) the adaptive head (part LMZ_ENS_HEAD), NULL without */
    uint8_t *hrow;      /* (V) token v has come (in any stream): its row of hw learns; the
                           other rows stay zeros and correct nothing */
    uint32_t *hcome;    /* (V / LMZ_ENS_HEAD_BLOCK rounded up) the rows that have come in each block */
    uint32_t hd;        /* its width, the model's */
    float *cbias;       /* (cb, V) profile 2: the context bias, a row per previous token mod cb */
    uint32_t cb;        /* its rows (a power of two), 0 in profile 1 */
    ng_bucket *ng[NG_ORDERS];
    uint64_t *mt;       /* match table: stream << 32 | position of the token that followed
                           the context, 0 = empty */
    size_t mask;        /* buckets per order - 1, also the match table's */
    uint32_t mhit[MATCH_LENS], mtot[MATCH_LENS];
    uint32_t lhit[MATCH_LENS], ltot[MATCH_LENS]; /* profile 3: the streams' own match models */
    float apm[APM_CTX][APM_BUCKETS];
    float wglob[EXPERTS];           /* the mixer's weights */
    float wsets[MIX_SETS][EXPERTS]; /* log mixer: offsets per context, learnt beside them */
    int fused;                      /* predict_fused where the profile allows (the default) */
    /* the cache (part LMZ_ENS_CACHE, with the head): the last ccap queries
     * of every stream, in the order they were learnt, as the rows of an
     * integer matrix (a ring: row cn % ccap is the next), and the token
     * that followed each */
    lmz_qmat ck;
    int32_t *ctok;                  /* (ccap) */
    size_t ccap, cn;                /* rows, queries learnt in all */
    int8_t *cq;                     /* (ns, 4 * groups) each stream's query ... */
    float *cqs;                     /* (ns) ... and its scale */
    float *cy;                      /* (cyr, ccap) each stream's similarities to the rows, or each ahead
                                       query's (lmz_ens_cache_ahead) */
    size_t cyr;                     /* rows of cy: ns, more once lmz_ens_cache_ahead_max grew it */
    int8_t *aq;                     /* (cyr, 4 * groups) ahead queries ... */
    float *aqs;                     /* (cyr) ... their scales ... */
    uint8_t *aon;                   /* (cyr) ... whether each was made */
    size_t an, acn, anb;            /* ahead queries, and cn and the blocks in use when they were made */
    float clam[CACHE_BUCKETS];      /* the cache's weight in the mixture, by the best similarity */
};

void lmz_ens_params_default(lmz_ens_params *p)
{
    p->profile = LMZ_ENS_V4;
    p->parts = LMZ_ENS_ALL;
    p->mixer = LMZ_MIX_LOG;
    p->ngram_bits = 20;
    p->cdf_bits = 24;
    p->bias_lr = 0.3f; /* Nacrith: 0.001 with SmolLM2; our small models gain far more from a fast head */
    p->mix_lr = 0.00025f; /* measured on alice29, enwik6 and bible.txt slices: 0.002 -> 0.00025 saves 0.3-1.3 % */
    p->skip_mbits = 0;
    p->cache_rows = LMZ_ENS_CACHE_ROWS;
    p->head_lr = LMZ_ENS_HEAD_LR;
}

int lmz_ens_params_check(const lmz_ens_params *p, uint32_t vocab)
{
    if (p->profile < LMZ_ENS_V1 || p->profile > LMZ_ENS_V4) return -1;
    if (p->parts == 0 || p->parts > LMZ_ENS_ALL || p->mixer > LMZ_MIX_LOG) return -1;
    if (p->ngram_bits < LMZ_ENS_NGRAM_BITS_MIN || p->ngram_bits > LMZ_ENS_NGRAM_BITS_MAX) return -1;
    if (p->cdf_bits < 16 || p->cdf_bits > LMZ_CDF_BITS || vocab < 2 || vocab >= (1u << p->cdf_bits)) return -1;
    if (!(p->bias_lr >= 0 && p->bias_lr <= 1) || !(p->mix_lr >= 0 && p->mix_lr <= 1)) return -1;
    if (p->skip_mbits > 16000) return -1;
    if (p->cache_rows < 16 || p->cache_rows > LMZ_ENS_CACHE_ROWS_MAX || p->cache_rows % 16) return -1;
    if (!(p->head_lr >= 0 && p->head_lr <= 4)) return -1;
    return 0;
}

/* Rows of the context bias: the smallest power of two at least 1/64 of the
 * tokens, from 16 to 1024 and at most 2^23 / vocab (32 MiB of floats). */
static uint32_t context_bias_rows(uint32_t vocab, size_t tokens)
{
    uint32_t most = 1024;
    while (most > 16 && (size_t)most * vocab > ((size_t)1 << 23)) most >>= 1;
    uint32_t r = 16;
    while (r < most && r < tokens / 64) r <<= 1;
    return r;
}

static size_t buckets_for(const lmz_ens_params *p, size_t max_tokens)
{
    size_t nb = (size_t)1 << LMZ_ENS_NGRAM_BITS_MIN;
    while (nb < max_tokens && nb < ((size_t)1 << p->ngram_bits)) nb <<= 1;
    return nb;
}

static void stream_free(ens_stream *x)
{
    free(x->cw);
    free(x->clist);
    free(x->cpold);
    free(x->hl);
    free(x->hc);
    free(x->hist);
    free(x->u);
    free(x->l);
    free(x->pm);
    free(x->pmix);
    free(x->ngadd);
    free(x->inlist);
    free(x->freq);
    free(x->cum);
    free(x->lt);
}

void lmz_ens_free(lmz_ens *e)
{
    if (!e) return;
    if (e->s)
        for (size_t i = 0; i < e->ns; i++) stream_free(&e->s[i]);
    free(e->s);
    free(e->bias);
    free(e->hw);
    free(e->hrow);
    free(e->hcome);
    lmz_qmat_free(&e->ck);
    free(e->ctok);
    free(e->cq);
    free(e->cqs);
    free(e->cy);
    free(e->aq);
    free(e->aqs);
    free(e->aon);
    free(e->cbias);
    for (int k = 0; k < NG_ORDERS; k++) free(e->ng[k]);
    free(e->mt);
    free(e);
}

static int stream_init(lmz_ens *e, ens_stream *x, size_t max_tokens)
{
    const uint32_t V = e->V;
    x->max = max_tokens;
    x->hist = malloc((max_tokens ? max_tokens : 1) * sizeof *x->hist);
    x->u = malloc(V * sizeof *x->u);
    x->l = malloc(V * sizeof *x->l);
    x->pm = malloc(V * sizeof *x->pm);
    x->pmix = malloc(V * sizeof *x->pmix);
    x->ngadd = calloc(V, sizeof *x->ngadd);
    x->inlist = calloc(V, 1);
    x->freq = malloc(V * sizeof *x->freq);
    x->cum = malloc((V + 1) * sizeof *x->cum);
    x->mptr = MATCH_NONE;
    x->lptr = MATCH_NONE;
    x->w = e->p.mixer == LMZ_MIX_PROB ? e->wglob : x->weff;
    if (e->p.profile >= LMZ_ENS_V3) { /* the stream's own match table: a slot per token, 2^8 .. 2^22 */
        size_t n = 256;
        while (n < max_tokens && n < ((size_t)1 << 22)) n <<= 1;
        x->lmask = n - 1;
        if (!(x->lt = calloc(n, sizeof *x->lt))) return -1;
    }
    return x->hist && x->u && x->l && x->pm && x->pmix && x->ngadd && x->inlist && x->freq && x->cum ? 0 : -1;
}

/* n zeroed objects of size sz, written now: calloc's fresh pages are the
 * shared zero page until first written, and with worker threads each such
 * write (the tables are read before they are written) costs a copy and a
 * TLB shootdown across the cores, measured at 7 % of compression time */
static void *zeroed(size_t n, size_t sz)
{
    if (sz && n > SIZE_MAX / sz) return NULL;
    size_t bytes = n * sz;
    void *p = malloc(bytes > 0 ? bytes : 1);
    if (p) memset(p, 0, bytes);
    return p;
}

lmz_ens *lmz_ens_new(const lmz_ens_params *p, uint32_t vocab, size_t streams, const size_t *max_tokens)
{
    if (lmz_ens_params_check(p, vocab) != 0 || streams == 0 || streams > LMZ_ENS_STREAMS_MAX) return NULL;
    lmz_ens *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->p = *p;
    e->V = vocab;
    e->ns = streams;
    e->fused = 1;
    size_t total = 0;
    for (size_t i = 0; i < streams; i++) total += max_tokens[i];
    size_t nb = buckets_for(p, total);
    e->mask = nb - 1;
    e->bias = calloc(vocab, sizeof *e->bias);
    if (p->profile != LMZ_ENS_V1) {
        e->cb = context_bias_rows(vocab, total);
        e->cbias = zeroed((size_t)e->cb * vocab, sizeof *e->cbias);
    }
    e->s = calloc(streams, sizeof *e->s);
    int ok = e->bias && e->s && (!e->cb || e->cbias);
    for (size_t i = 0; i < streams && ok; i++) ok = stream_init(e, &e->s[i], max_tokens[i]) == 0;
    for (int k = 0; k < NG_ORDERS && ok; k++) ok = (e->ng[k] = zeroed(nb, sizeof(ng_bucket))) != NULL;
    if (ok) ok = (e->mt = zeroed(nb, sizeof *e->mt)) != NULL;
    if (!ok) {
        lmz_ens_free(e);
        return NULL;
    }
    char err[64];
    if (lmz_kernels_select(&e->kp, err, sizeof err) != 0) e->kp = LMZ_KPATH_SCALAR;
    float *w = e->wglob;
    if (p->mixer == LMZ_MIX_PROB) {
        w[X_MODEL] = 0.85f;
        w[X_NGRAM] = 0.15f;
        w[X_MATCH] = 0.15f;
    } else {
        w[X_MODEL] = 1.0f;
        w[X_NGRAM] = 0.3f;
        w[X_MATCH] = 0.3f;
        if (p->profile >= LMZ_ENS_V3) {
            w[X_LOCAL] = 0.3f;
            w[X_NGTOP] = 0.1f;
            for (int c = 0; c < APM_CTX; c++)
                for (int b = 0; b < APM_BUCKETS; b++)
                    e->apm[c][b] = 1.0f / (1.0f + lmz_expf(-((float)b - 16.0f) * 0.5f));
        }
    }
    return e;
}

/* hashes of the contexts of orders 1..NG_ORDERS ending at the last token */
static void context_hashes(const lmz_ens *e, ens_stream *x)
{
    uint64_t h = 0;
    x->ngk = x->n < NG_ORDERS ? (unsigned)x->n : NG_ORDERS;
    for (unsigned k = 0; k < x->ngk; k++) {
        h = (h + (uint64_t)(uint32_t)x->hist[x->n - 1 - k] + 1) * 0x9E3779B97F4A7C15ull;
        uint64_t y = (h ^ (h >> 29) ^ (uint64_t)(k + 1) * 0xBF58476D1CE4E5B9ull) * 0x94D049BB133111EBull;
        y ^= y >> 31;
        x->ngidx[k] = (size_t)(y & e->mask);
        x->ngchk[k] = (uint32_t)(y >> 32) | 1u;
    }
}

/* part NGTOP: the highest order found as an expert of its own, its
 * counts with weight tot / (tot + 1) over a uniform rest, and how sure it is:
 * several tokens, one seen once or twice, one seen three times or more */
static void top_order(const lmz_ens *e, ens_stream *x, const ng_bucket *b, uint32_t tot)
{
    float w = (float)tot / ((float)tot + 1.0f), unit = w / (float)tot;
    x->tbg = (1.0f - w) / (float)e->V;
    x->nt = 0;
    for (int j = 0; j < NG_SLOTS; j++) {
        uint32_t v = b->slot[j];
        if (!v) continue;
        x->ttok[x->nt] = (int32_t)(v >> 8);
        x->tq[x->nt++] = x->tbg + unit * (float)(v & 0xFF);
    }
    x->ngdet = x->nt != 1 ? 0u : tot >= 3 ? 2u : 1u;
}

/* the n-gram's blend: ng_s for any token, plus ngadd[t] for the tokens of list */
static void ngram_predict(const lmz_ens *e, ens_stream *x)
{
    float s = 1.0f;
    const ng_bucket *top = NULL; /* the highest order's bucket found, and its count */
    uint32_t top_tot = 0;
    x->nlist = 0;
    for (unsigned k = 0; k < x->ngk; k++) {
        const ng_bucket *b = &e->ng[k][x->ngidx[k]];
        if (b->check != x->ngchk[k]) continue;
        uint32_t tot = 0;
        for (int j = 0; j < NG_SLOTS; j++) tot += b->slot[j] & 0xFF;
        if (tot == 0) continue;
        x->ngorder = k + 1;
        top = b;
        top_tot = tot;
        float w = (float)tot / ((float)tot + 5.0f), keep = 1.0f - w, unit = w / (float)tot;
        s *= keep;
        for (unsigned i = 0; i < x->nlist; i++) x->ngadd[x->list[i]] *= keep;
        for (int j = 0; j < NG_SLOTS; j++) {
            uint32_t v = b->slot[j];
            if (!v) continue;
            int32_t t = (int32_t)(v >> 8);
            if (!x->inlist[t]) {
                x->inlist[t] = 1;
                x->list[x->nlist++] = t;
            }
            x->ngadd[t] += unit * (float)(v & 0xFF);
        }
    }
    x->ng_s = s / (float)e->V;
    if (top && (e->p.parts & LMZ_ENS_NGTOP)) top_order(e, x, top, top_tot);
}

/* A match model's rates at match length len: the predicted token's
 * probability from the hit counts of that length, the others' share */
static void match_rates(const uint32_t *hit, const uint32_t *tot, unsigned len, uint32_t V, float *conf, float *bg)
{
    unsigned lb = len < MATCH_LENS ? len : MATCH_LENS - 1;
    *conf = ((float)hit[lb] + 0.5f) / ((float)tot[lb] + 1.0f);
    *bg = (1.0f - *conf) / (float)(V - 1);
}

/* A running match model learns whether it was right (counts per length,
 * halved at 1024) and follows its pointer on, or drops it. */
static void match_follow(uint32_t *hit, uint32_t *tot, size_t *ptr, unsigned *len, int right)
{
    unsigned lb = *len < MATCH_LENS ? *len : MATCH_LENS - 1;
    tot[lb]++;
    hit[lb] += (uint32_t)right;
    if (tot[lb] >= 1024) {
        tot[lb] >>= 1;
        hit[lb] >>= 1;
    }
    if (right) {
        (*ptr)++;
        (*len)++;
    } else {
        *ptr = MATCH_NONE;
        *len = 0;
    }
}

/* the stream's own match table slot for the LOCAL_MIN tokens before end */
static size_t local_slot(const ens_stream *x, size_t end)
{
    uint64_t h = 0;
    for (size_t k = 1; k <= LOCAL_MIN; k++) h = (h + (uint64_t)(uint32_t)x->hist[end - k] + 1) * 0x9FB21C651E98DF25ull;
    return (size_t)((h ^ (h >> 29)) & x->lmask);
}

/* Sums over the vocabulary in binary64. Profile 1: in index order.
 * Profile 2: entry v goes to partial sum v % LANES, each in index order,
 * and the partial sums are added as ((0+1)+(2+3))+((4+5)+(6+7)): no longer
 * one chain of dependent additions (several times faster, vectorised by
 * the compiler with the same bits on every machine). */
#define LANES 8
_Static_assert(LANES == 8, "lmz_lanes8_total adds eight lanes");

/* sum of p[0..n) */
LMZ_CLONES_FLOAT
static double sum_p(unsigned profile, const float *p, uint32_t n)
{
    if (profile == LMZ_ENS_V1) {
        double s = 0;
        for (uint32_t v = 0; v < n; v++) s += (double)p[v];
        return s;
    }
    double a[LANES] = {0};
    uint32_t v = 0;
    for (; v + LANES <= n; v += LANES)
        for (uint32_t j = 0; j < LANES; j++) a[j] += (double)p[v + j];
    for (uint32_t j = 0; v + j < n; j++) a[j] += (double)p[v + j];
    return lmz_lanes8_total(a);
}

/* sum of p[v] (u[v] - c) over v < n: E_p[log q] when log q = u - c */
LMZ_CLONES_FLOAT
static double sum_pu(unsigned profile, const float *p, const float *u, float c, uint32_t n)
{
    if (profile == LMZ_ENS_V1) {
        double s = 0;
        for (uint32_t v = 0; v < n; v++) s += (double)p[v] * (double)(u[v] - c);
        return s;
    }
    double a[LANES] = {0};
    uint32_t v = 0;
    for (; v + LANES <= n; v += LANES)
        for (uint32_t j = 0; j < LANES; j++) a[j] += (double)p[v + j] * (double)(u[v + j] - c);
    for (uint32_t j = 0; v + j < n; j++) a[j] += (double)p[v + j] * (double)(u[v + j] - c);
    return lmz_lanes8_total(a);
}

/* largest of x[0..n) (n >= L) in L lanes a[0..L) (x[v] in lane v % L),
 * then x[0] and the lanes in order; inlined with L constant, so the lanes
 * are vector registers */
static inline __attribute__((always_inline)) float lanes_max(const float *x, size_t n, float *a, size_t L)
{
    memcpy(a, x, L * sizeof *a);
    size_t v = L;
    for (; v + L <= n; v += L)
        for (size_t j = 0; j < L; j++) a[j] = x[v + j] > a[j] ? x[v + j] : a[j];
    for (size_t j = 0; v + j < n; j++) a[j] = x[v + j] > a[j] ? x[v + j] : a[j];
    float mx = x[0];
    for (size_t j = 0; j < L; j++) mx = a[j] > mx ? a[j] : mx;
    return mx;
}

/* largest of x[0..n): the same value in any order (no NaN here) */
LMZ_CLONES_FLOAT
static float max_x(unsigned profile, const float *x, uint32_t n)
{
    if (profile == LMZ_ENS_V1 || n < LANES) {
        float mx = x[0];
        for (uint32_t v = 1; v < n; v++)
            if (x[v] > mx) mx = x[v];
        return mx;
    }
    float a[LANES];
    return lanes_max(x, n, a, LANES);
}

/* the context bias row of x's next token: its previous token mod cb (row 0
 * for the first) */
static float *context_row(const lmz_ens *e, const ens_stream *x)
{
    uint32_t prev = x->n ? (uint32_t)x->hist[x->n - 1] : 0;
    return e->cbias + (size_t)(prev & (e->cb - 1)) * e->V;
}

/* p[0..V) = exp(x - max) / sum, x shifted in place by its maximum;
 * @return log(sum) */
LMZ_CLONES_FLOAT
static float softmax(const lmz_ens *e, float *x, float *p)
{
    uint32_t V = e->V;
    float mx = max_x(e->p.profile, x, V);
    for (uint32_t v = 0; v < V; v++) x[v] -= mx;
    lmz_exp_array(e->kp, x, p, V);
    double sum = sum_p(e->p.profile, p, V);
    float inv = (float)(1.0 / sum);
    for (uint32_t v = 0; v < V; v++) p[v] *= inv;
    return lmz_logf((float)sum);
}

/* Profiles 2 and up fuse the passes over the vocabulary on AVX-512 (the
 * other paths take them one by one, predict_passes): each loop below
 * computes what the separate passes compute, value by value with the same
 * operations, and the sums and maxima on the way (a sum in the LANES
 * partial sums of sum_p, lane j of 8 taking entries j, j + 8, ... in order;
 * a maximum in any order: it is exact), so the bits are those of the passes
 * one by one. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LMZ_FUSED 1
#define T_FUSED __attribute__((target("avx512f,avx512vl,avx2,fma")))

static inline T_FUSED __m256 hi8(__m512 x) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)); }

static inline T_FUSED __mmask16 tail16(uint32_t V, uint32_t v)
{
    return V - v >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (V - v)) - 1);
}

/* 16 floats into the 8 binary64 lanes: the low half, then the high half */
static inline T_FUSED __m512d add_halves(__m512d a, __m512d lo, __m512d hi) { return _mm512_add_pd(_mm512_add_pd(a, lo), hi); }

static inline T_FUSED double lanes_total512(__m512d a)
{
    double l[LANES];
    _mm512_storeu_pd(l, a);
    return lmz_lanes8_total(l);
}

/* u = logits + bias (+ c), a non-finite value replaced by -1e30 (x - x is 0
 * exactly for finite x); @return max u */
static T_FUSED float scores_max(const float *logits, const float *bias, const float *c, float *u, uint32_t V)
{
    __m512 mx = _mm512_set1_ps(-INFINITY);
    const __m512 broken = _mm512_set1_ps(-1e30f), zero = _mm512_setzero_ps();
    for (uint32_t v = 0; v < V; v += 16) {
        __mmask16 m = tail16(V, v);
        __m512 x = _mm512_maskz_loadu_ps(m, logits + v);
        if (bias) {
            x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, bias + v));
            if (c) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, c + v));
        }
        __mmask16 fin = _mm512_cmp_ps_mask(_mm512_sub_ps(x, x), zero, _CMP_EQ_OQ);
        x = _mm512_mask_blend_ps(fin, broken, x);
        _mm512_mask_storeu_ps(u + v, m, x);
        mx = _mm512_mask_max_ps(mx, m, mx, x);
    }
    return _mm512_reduce_max_ps(mx);
}

/* pm *= inv, l = wm u; @return max l */
static T_FUSED float scale_and_weigh(float *pm, float inv, const float *u, float wm, float *l, uint32_t V)
{
    __m512 mx = _mm512_set1_ps(-INFINITY);
    const __m512 vi = _mm512_set1_ps(inv), vw = _mm512_set1_ps(wm);
    for (uint32_t v = 0; v < V; v += 16) {
        __mmask16 m = tail16(V, v);
        _mm512_mask_storeu_ps(pm + v, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, pm + v), vi));
        __m512 x = _mm512_mul_ps(vw, _mm512_maskz_loadu_ps(m, u + v));
        _mm512_mask_storeu_ps(l + v, m, x);
        mx = _mm512_mask_max_ps(mx, m, mx, x);
    }
    return _mm512_reduce_max_ps(mx);
}

/* p *= inv and, with u, *pu = sum_pu(p, u, c); @return max p */
static T_FUSED float scale_and_expect(float *p, float inv, const float *u, float c, double *pu, uint32_t V)
{
    __m512 mx = _mm512_set1_ps(-INFINITY);
    __m512d s = _mm512_setzero_pd();
    const __m512 vi = _mm512_set1_ps(inv), vc = _mm512_set1_ps(c);
    for (uint32_t v = 0; v < V; v += 16) {
        __mmask16 m = tail16(V, v);
        __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p + v), vi);
        _mm512_mask_storeu_ps(p + v, m, x);
        mx = _mm512_mask_max_ps(mx, m, mx, x);
        if (u) { /* (double)x * (double)(u - c): a product, then the sum (no fused operation) */
            __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, u + v), vc);
            __m512d lo = _mm512_maskz_mul_pd((__mmask8)m, _mm512_cvtps_pd(_mm512_castps512_ps256(x)),
                                             _mm512_cvtps_pd(_mm512_castps512_ps256(d)));
            __m512d hi = _mm512_maskz_mul_pd((__mmask8)(m >> 8), _mm512_cvtps_pd(hi8(x)),
                                             _mm512_cvtps_pd(hi8(d)));
            s = add_halves(s, lo, hi);
        }
    }
    if (u) *pu = lanes_total512(s);
    return _mm512_reduce_max_ps(mx);
}

/* p[v] *= r, p[at] = pn; @return the sum lmz_cdf_build_lanes takes of p
 * (its finite positive entries, in its lanes) */
static T_FUSED double rescale_sum(float *p, float r, uint32_t at, float pn, uint32_t V)
{
    _Static_assert(LMZ_CDF_LANES == LANES, "the table's sum has the ensemble's lanes");
    __m512d s = _mm512_setzero_pd();
    const __m512 vr = _mm512_set1_ps(r), zero = _mm512_setzero_ps();
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (uint32_t v = 0; v < V; v += 16) {
        __mmask16 m = tail16(V, v);
        __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p + v), vr);
        __mmask16 here = _mm512_cmpeq_epi32_mask(_mm512_add_epi32(iota, _mm512_set1_epi32((int)v)),
                                                 _mm512_set1_epi32((int)at));
        x = _mm512_mask_blend_ps(here, x, _mm512_set1_ps(pn));
        _mm512_mask_storeu_ps(p + v, m, x);
        __mmask16 ok = m & _mm512_cmp_ps_mask(x, zero, _CMP_GT_OQ) &
                       _mm512_cmp_ps_mask(_mm512_sub_ps(x, x), zero, _CMP_EQ_OQ);
        __m512 y = _mm512_maskz_mov_ps(ok, x);
        s = add_halves(s, _mm512_cvtps_pd(_mm512_castps512_ps256(y)), _mm512_cvtps_pd(hi8(y)));
    }
    return lanes_total512(s);
}
#endif

/* Whether the match pointer of x names a token already learnt (another
 * stream's may still be ahead of it). */
static int match_known(const lmz_ens *e, const ens_stream *x)
{
    return x->mptr != MATCH_NONE && x->mptr < e->s[x->msrc].n;
}

/* the n-gram and the match model for the next token, and the skip rule:
 * the entropy of their even blend (the n-gram alone without a match) */
static void prepare(const lmz_ens *e, ens_stream *x)
{
    const uint32_t V = e->V;
    const unsigned parts = e->p.parts;
    x->act[X_NGRAM] = (parts & LMZ_ENS_NGRAM) != 0;
    x->act[X_MATCH] = (parts & LMZ_ENS_MATCH) && match_known(e, x);
    context_hashes(e, x);
    x->ngorder = 0;
    x->ngdet = 0;
    x->nt = 0;
    if (x->act[X_NGRAM]) ngram_predict(e, x);
    x->act[X_NGTOP] = (parts & LMZ_ENS_NGTOP) && e->p.mixer == LMZ_MIX_LOG && x->nt > 0;
    if (x->act[X_MATCH]) {
        x->mpred = e->s[x->msrc].hist[x->mptr];
        match_rates(e->mhit, e->mtot, x->mlen, V, &x->mconf, &x->mbg);
    }
    if (e->p.profile >= LMZ_ENS_V3 && e->p.mixer == LMZ_MIX_LOG) {
        x->act[X_LOCAL] = (parts & LMZ_ENS_MATCH) && x->lptr != MATCH_NONE;
        if (x->act[X_LOCAL]) {
            x->lpred = x->hist[x->lptr];
            match_rates(e->lhit, e->ltot, x->llen, V, &x->lconf, &x->lbg);
        }
    }
    if (e->p.mixer == LMZ_MIX_LOG) { /* the weight set: how much the cheap models know here */
        unsigned mb = !x->act[X_MATCH] ? 0 : x->mlen < 8 ? 1 : x->mlen < 16 ? 2 : 3;
        x->wset = (x->ngorder * 4 + mb) * MIX_DET + x->ngdet;
    }
    x->prepared = 1;
    x->want = (parts & LMZ_ENS_MODEL) != 0;
    if (!x->want || e->p.skip_mbits == 0 || !(x->act[X_NGRAM] || x->act[X_MATCH])) return;
    float a = x->act[X_NGRAM] ? (x->act[X_MATCH] ? 0.5f : 1.0f) : 0.0f, b = 1.0f - a;
    float bg = a * (x->act[X_NGRAM] ? x->ng_s : 0) + b * (x->act[X_MATCH] ? x->mbg : 0);
    double h = 0;
    unsigned special = 0;
    for (unsigned i = 0; i < x->nlist; i++) {
        int32_t t = x->list[i];
        float q = a * (x->ng_s + x->ngadd[t]) + b * (x->act[X_MATCH] ? (t == x->mpred ? x->mconf : x->mbg) : 0);
        if (q > 0) h -= (double)q * (double)lmz_logf(q);
        special++;
    }
    if (x->act[X_MATCH] && !(x->act[X_NGRAM] && x->inlist[x->mpred])) {
        float q = b * x->mconf + a * (x->act[X_NGRAM] ? x->ng_s : 0);
        if (q > 0) h -= (double)q * (double)lmz_logf(q);
        special++;
    }
    if (bg > 0) h -= (double)(V - special) * (double)bg * (double)lmz_logf(bg);
    /* h is in nats; the threshold in thousandths of a bit */
    x->want = h * 1.4426950408889634 * 1000.0 >= (double)e->p.skip_mbits;
}

int lmz_ens_wants_model(lmz_ens *e, size_t s)
{
    ens_stream *x = &e->s[s];
    if (!x->prepared) prepare(e, x);
    return x->want;
}

uint64_t lmz_ens_skipped(const lmz_ens *e)
{
    uint64_t n = 0;
    for (size_t i = 0; i < e->ns; i++) n += e->s[i].skipped;
    return n;
}

/* profile 3: an adaptive probability map refines the most probable token's
 * probability p: its stretch ln(p / (1 - p)) in -8..8, interpolated between
 * 33 buckets in a context of whether the shared and the stream's own match
 * models predict that token and of the model's confidence (the log mixer's
 * weight set); the result is 1/4 p + 3/4 the map's, the other tokens share
 * the rest in proportion. Each bucket starts at the identity and moves by
 * APM_RATE toward 1 or 0 (whether the token came), by its interpolation
 * weight.
 *
 * apm_point: the map at the most probable token, whose value pa (the largest
 * of p, exact in any order; p holds no NaN) the caller found; @return 0 when
 * the map stays out, else 1 with *at its first place, *pn its new
 * probability and *r the others' factor. */
static int apm_point(lmz_ens *e, ens_stream *x, const float *p, float pa, uint32_t *at, float *pn, float *r)
{
    uint32_t a = 0;
    while (p[a] != pa) a++;
    if (!(pa > 0 && pa < 1)) return 0;
    float st = lmz_logf(pa / (1.0f - pa));
    st = st < -7.999f ? -7.999f : st > 7.999f ? 7.999f : st;
    float pos = (st + 8.0f) * 2.0f;
    unsigned b = (unsigned)pos;
    float w = pos - (float)b;
    unsigned c = (x->act[X_MATCH] && x->mpred == (int32_t)a) + 2u * (x->act[X_LOCAL] && x->lpred == (int32_t)a);
    c += 4u * (x->wset / MIX_CHEAP % MIX_CONF);
    float q = e->apm[c][b] * (1.0f - w) + e->apm[c][b + 1] * w;
    *pn = 0.25f * pa + 0.75f * q;
    *r = (1.0f - *pn) / (1.0f - pa);
    *at = a;
    x->atok = (int32_t)a;
    x->actx = c;
    x->abkt = b;
    x->aw = w;
    x->aon = 1;
    return 1;
}

LMZ_CLONES_FLOAT
static void apm_apply(lmz_ens *e, ens_stream *x, float *p)
{
    const uint32_t V = e->V;
    uint32_t a;
    float pn, r;
    if (!apm_point(e, x, p, max_x(LMZ_ENS_V2, p, V), &a, &pn, &r)) return;
    for (uint32_t v = 0; v < V; v++) p[v] *= r;
    p[a] = pn;
}

/* The log mixer's weights in use: the set's offsets on the global ones;
 * profile 2 picks the set also by the model's confidence, its largest
 * probability 1 / e^logz: above 0.9, 0.5, 0.2 or not */
static void mixer_weights(lmz_ens *e, ens_stream *x, float logz)
{
    if (e->p.profile != LMZ_ENS_V1 && x->act[X_MODEL])
        x->wset += MIX_CHEAP * (logz < 0.105f ? 3u : logz < 0.693f ? 2u : logz < 1.609f ? 1u : 0u);
    if (x->act[X_LOCAL]) x->wset += MIX_CHEAP * MIX_CONF;
    for (int i = 0; i < EXPERTS; i++) {
        float w = e->wglob[i] + e->wsets[x->wset][i];
        x->weff[i] = w < 0 ? 0 : w > 8 ? 8 : w;
    }
}

/* The cheap experts' terms of l(v) = sum_i w_i log q_i(v): they differ from
 * their constants base[] (n-gram, match model, own match model, the top
 * n-gram order) only at a few tokens, dlog[i] the n-gram's at its list.
 * @return whether a term lowered some l(t). */
static int cheap_terms(const ens_stream *x, float *l, float base[4], float *dlog)
{
    int lowered = 0;
    base[0] = base[1] = base[2] = base[3] = 0;
    if (x->act[X_NGRAM]) {
        base[0] = lmz_logf(x->ng_s);
        for (unsigned i = 0; i < x->nlist; i++) {
            int32_t t = x->list[i];
            dlog[i] = lmz_logf(x->ng_s + x->ngadd[t]) - base[0];
            float d = x->w[X_NGRAM] * dlog[i];
            l[t] += d;
            lowered |= d < 0;
        }
    }
    if (x->act[X_MATCH]) {
        base[1] = lmz_logf(x->mbg);
        float d = x->w[X_MATCH] * (lmz_logf(x->mconf) - base[1]);
        l[x->mpred] += d;
        lowered |= d < 0;
    }
    if (x->act[X_LOCAL]) {
        base[2] = lmz_logf(x->lbg);
        float d = x->w[X_LOCAL] * (lmz_logf(x->lconf) - base[2]);
        l[x->lpred] += d;
        lowered |= d < 0;
    }
    if (x->act[X_NGTOP]) { /* its tokens are in the n-gram's list */
        base[3] = lmz_logf(x->tbg);
        for (unsigned i = 0; i < x->nt; i++) {
            float d = x->w[X_NGTOP] * (lmz_logf(x->tq[i]) - base[3]);
            l[x->ttok[i]] += d;
            lowered |= d < 0;
        }
    }
    return lowered;
}

/* the cheap experts' E_p[log q] under the mixture p, for their update */
static void cheap_expectations(ens_stream *x, const float *p, const float base[4], const float *dlog)
{
    if (x->act[X_LOCAL]) x->elog[X_LOCAL] = base[2] + p[x->lpred] * (lmz_logf(x->lconf) - base[2]);
    if (x->act[X_NGRAM]) {
        double en = base[0];
        for (unsigned i = 0; i < x->nlist; i++) en += (double)p[x->list[i]] * (double)dlog[i];
        x->elog[X_NGRAM] = (float)en;
    }
    if (x->act[X_MATCH]) x->elog[X_MATCH] = base[1] + p[x->mpred] * (lmz_logf(x->mconf) - base[1]);
    if (x->act[X_NGTOP]) {
        double et = base[3];
        for (unsigned i = 0; i < x->nt; i++) et += (double)p[x->ttok[i]] * (double)(lmz_logf(x->tq[i]) - base[3]);
        x->elog[X_NGTOP] = (float)et;
    }
}

/* rows of the cache in use (lmz_ens_cache_blocks: their blocks of 16) */
static size_t cache_used(const lmz_ens *e) { return e->cn < e->ccap ? e->cn : e->ccap; }

/* the largest of n similarities, in any order: they are never NaN (integer
 * sums times finite scales), and the only equal values with other bits, +0
 * and -0 (a zero sum times a zero scale could give either), give cache_mix
 * the same threshold and weights (exp(+-0) = 1); 64 lanes keep the vector
 * unit's latency out of the way (max_x's 8 lanes wait on it: 7 % of a
 * compression's time went there) */
#define SIM_LANES 64
LMZ_CLONES_FLOAT
static float sim_max(const float *x, size_t n)
{
    if (n < SIM_LANES) return max_x(LMZ_ENS_V2, x, (uint32_t)n);
    float a[SIM_LANES];
    return lanes_max(x, n, a, SIM_LANES);
}

/* The cache's part of stream x's table p (sum s in the table's lanes, the
 * rule lmz_cdf_build_lanes sums by): the stream's similarities y to the
 * cache's rows (from lmz_ens_cache_rows, or now), the best m; each row
 * within CACHE_DELTA of it weighs exp(CACHE_THETA (y - m)) for the token
 * that followed it (rows in index order); the weights c(t) summed per
 * token, W in all; then p(t) += kappa c(t), kappa = s lambda / (1 - lambda)
 * / W, so that the table is (1 - lambda) p / s + lambda c / W (lambda by the
 * best similarity's bucket, learnt in the update). @return the new sum:
 * s plus each entry's change, in the order the tokens came. */
static double cache_mix(lmz_ens *e, ens_stream *x, float *p, double s)
{
    x->con = 0;
    const size_t rows = cache_used(e), si = (size_t)(x - e->s);
    if (!x->cqon || rows == 0 || !(s > 0) || !isfinite(s)) return s;
    float *y = x->cyp ? x->cyp : e->cy + si * e->ccap;
    if (!x->cpend)
        lmz_qmm(e->kp, &e->ck, 0, (rows + 15) / 16, e->cq + si * 4 * e->ck.groups, e->cqs + si, 1, y, e->ccap);
    const float mx = sim_max(y, rows); /* finite: integer sums times finite scales */
    const float thr = mx - CACHE_DELTA;
    double W = 0;
    uint32_t n = 0, idx[CACHE_FIND];
    float ex[CACHE_FIND];
    for (size_t c = 0; c < rows; c += CACHE_FIND) {
        size_t len = rows - c < CACHE_FIND ? rows - c : CACHE_FIND;
        size_t k = lmz_find_ge(e->kp, y + c, len, thr, idx);
        for (size_t i = 0; i < k; i++) ex[i] = CACHE_THETA * (y[c + idx[i]] - mx);
        lmz_exp_array(e->kp, ex, ex, k); /* lmz_expf of each, vectorised */
        for (size_t i = 0; i < k; i++) { /* rows in index order */
            size_t r = c + idx[i];
            float w = ex[i];
            int32_t t = e->ctok[r];
            if (x->cw[t] == 0.0f) x->clist[n++] = t;
            x->cw[t] += w;
            W += (double)w;
        }
    }
    if (!(W > 0)) { /* not reached: the best row weighs 1 */
        for (uint32_t j = 0; j < n; j++) x->cw[x->clist[j]] = 0.0f;
        return s;
    }
    unsigned b = 0;
    while (b < CACHE_BUCKETS - 1 && mx >= cache_edges[b]) b++;
    const double lam = (double)e->clam[b], kappa = s * lam / (1.0 - lam) / W;
    double s2 = s;
    for (uint32_t j = 0; j < n; j++) {
        int32_t t = x->clist[j];
        float old = p[t], now = old + (float)(kappa * (double)x->cw[t]);
        x->cpold[t] = old;
        p[t] = now;
        s2 += (double)now - (double)old;
    }
    x->ncl = n;
    x->csum = s;
    x->cwsum = W;
    x->cbkt = b;
    x->con = 1;
    return s2;
}

/* The table from p after the probability map: with the cache, its sum
 * (as lmz_cdf_build_lanes takes it, given when the map's rescaling took it
 * already: s >= 0) then the cache's part, else p as it is. */
static void build_table(lmz_ens *e, ens_stream *x, float *p, double s)
{
    const uint32_t V = e->V;
    if (x->cqon && cache_used(e)) {
        if (s < 0) s = sum_p(e->p.profile, p, V);
        lmz_cdf_build_lanes_sum(p, V, e->p.cdf_bits, cache_mix(e, x, p, s), x->freq, x->cum);
    } else if (s >= 0) {
        lmz_cdf_build_lanes_sum(p, V, e->p.cdf_bits, s, x->freq, x->cum);
    } else {
        lmz_cdf_build_lanes(p, V, e->p.cdf_bits, x->freq, x->cum);
    }
}

#ifdef LMZ_FUSED
/* lmz_ens_predict for profiles 2 and up with the log mixer on AVX-512: the
 * passes over the vocabulary fused (see scores_max), the same bits as
 * predict_passes. */
static T_FUSED const uint32_t *predict_fused(lmz_ens *e, ens_stream *x, const float *logits)
{
    const uint32_t V = e->V;
    const unsigned parts = e->p.parts;
    float *p = x->pmix, *l = x->l;
    float logz = 0, inv_m = 0, mx;
    if (x->act[X_MODEL]) { /* pm = softmax(u), log pm = u - logz; pm scaled below */
        const float *bias = (parts & LMZ_ENS_BIAS) ? e->bias : NULL;
        const float *c = bias && e->cb ? context_row(e, x) : NULL;
        mx = scores_max(logits, bias, c, x->u, V);
        double sum = lmz_exp_shift_sum(e->kp, x->u, mx, x->pm, V);
        inv_m = (float)(1.0 / sum);
        logz = lmz_logf((float)sum);
    }
    mixer_weights(e, x, logz);
    if (x->act[X_MODEL]) {
        mx = scale_and_weigh(x->pm, inv_m, x->u, x->w[X_MODEL], l, V);
    } else {
        memset(l, 0, V * sizeof *l);
        mx = 0;
    }
    /* the maximum follows the cheap terms while they only raise l */
    float base[4], dlog[NG_ORDERS * NG_SLOTS];
    if (cheap_terms(x, l, base, dlog)) {
        mx = max_x(LMZ_ENS_V2, l, V);
    } else {
        if (x->act[X_NGRAM])
            for (unsigned i = 0; i < x->nlist; i++) mx = l[x->list[i]] > mx ? l[x->list[i]] : mx;
        if (x->act[X_MATCH]) mx = l[x->mpred] > mx ? l[x->mpred] : mx;
        if (x->act[X_LOCAL]) mx = l[x->lpred] > mx ? l[x->lpred] : mx;
    }
    double sum = lmz_exp_shift_sum(e->kp, l, mx, p, V), pu = 0;
    float pa = scale_and_expect(p, (float)(1.0 / sum), x->act[X_MODEL] ? x->u : NULL, logz, &pu, V);
    if (x->act[X_MODEL]) x->elog[X_MODEL] = (float)pu; /* E_p[log pm] */
    cheap_expectations(x, p, base, dlog);
    x->aon = 0;
    uint32_t at;
    float pn, r;
    if (e->p.profile >= LMZ_ENS_V3 && apm_point(e, x, p, pa, &at, &pn, &r))
        build_table(e, x, p, rescale_sum(p, r, at, pn, V));
    else
        build_table(e, x, p, -1.0);
    return x->cum;
}
#endif

/* lmz_ens_predict pass by pass: profile 1, the probability mixer, and the
 * reference the tests hold predict_fused to */
LMZ_CLONES_FLOAT
static const uint32_t *predict_passes(lmz_ens *e, ens_stream *x, const float *logits)
{
    const uint32_t V = e->V;
    const unsigned parts = e->p.parts;
    float *p = x->pmix;

    float logz = 0;
    if (x->act[X_MODEL]) {
        if (parts & LMZ_ENS_BIAS) {
            for (uint32_t v = 0; v < V; v++) x->u[v] = logits[v] + e->bias[v];
            if (e->cb) {
                const float *c = context_row(e, x);
                for (uint32_t v = 0; v < V; v++) x->u[v] += c[v];
            }
        } else {
            memcpy(x->u, logits, V * sizeof *x->u);
        }
        for (uint32_t v = 0; v < V; v++) /* a broken logit counts as very unlikely */
            if (!isfinite(x->u[v])) x->u[v] = -1e30f;
        logz = softmax(e, x->u, x->pm); /* log pm(v) = u[v] - logz */
    }

    if (e->p.mixer == LMZ_MIX_PROB) {
        float w[EXPERTS], ws = 0;
        int alone = x->act[X_MODEL] && e->n < PROB_WARMUP;
        for (int i = 0; i < EXPERTS; i++) {
            w[i] = x->act[i] && (!alone || i == X_MODEL) ? x->w[i] : 0.0f;
            ws += w[i];
        }
        if (!(ws > 0)) { /* nothing active: uniform */
            for (uint32_t v = 0; v < V; v++) p[v] = 1.0f;
        } else {
            for (int i = 0; i < EXPERTS; i++) w[i] /= ws;
            float base = w[X_NGRAM] * (x->act[X_NGRAM] ? x->ng_s : 0) + w[X_MATCH] * (x->act[X_MATCH] ? x->mbg : 0);
            if (w[X_MODEL] > 0)
                for (uint32_t v = 0; v < V; v++) p[v] = w[X_MODEL] * x->pm[v] + base;
            else
                for (uint32_t v = 0; v < V; v++) p[v] = base;
            if (w[X_NGRAM] > 0)
                for (unsigned i = 0; i < x->nlist; i++) p[x->list[i]] += w[X_NGRAM] * x->ngadd[x->list[i]];
            if (w[X_MATCH] > 0) p[x->mpred] += w[X_MATCH] * (x->mconf - x->mbg);
        }
    } else {
        mixer_weights(e, x, logz);
        /* l(v) = sum_i w_i log q_i(v), up to a constant */
        float *l = x->l;
        if (x->act[X_MODEL]) {
            float wm = x->w[X_MODEL];
            for (uint32_t v = 0; v < V; v++) l[v] = wm * x->u[v];
        } else {
            memset(l, 0, V * sizeof *l);
        }
        float base[4], dlog[NG_ORDERS * NG_SLOTS];
        (void)cheap_terms(x, l, base, dlog);
        (void)softmax(e, l, p);
        if (x->act[X_MODEL]) /* E_p[log pm], log pm(v) = u(v) - logz */
            x->elog[X_MODEL] = (float)sum_pu(e->p.profile, p, x->u, logz, V);
        cheap_expectations(x, p, base, dlog);
    }
    x->aon = 0;
    if (e->p.profile >= LMZ_ENS_V3 && e->p.mixer == LMZ_MIX_LOG) apm_apply(e, x, p);
    if (e->p.profile == LMZ_ENS_V1) lmz_cdf_build_bits(p, V, e->p.cdf_bits, x->freq, x->cum);
    else build_table(e, x, p, -1.0);
    return x->cum;
}

int lmz_ens_cache_on(const lmz_ens_params *p)
{
    const unsigned need = LMZ_ENS_CACHE | LMZ_ENS_HEAD | LMZ_ENS_MODEL;
    return (p->parts & need) == need && p->profile >= LMZ_ENS_V4;
}

int lmz_ens_set_dim(lmz_ens *e, uint32_t dim)
{
    if (!(e->p.parts & LMZ_ENS_HEAD) || !(e->p.parts & LMZ_ENS_MODEL) || e->hw || dim == 0) return 0;
    e->hw = lmz_zalloc64((size_t)e->V * dim * sizeof *e->hw); /* rows on cache lines (common/align.h) */
    e->hrow = calloc(e->V, 1);
    e->hcome = calloc(e->V / LMZ_ENS_HEAD_BLOCK + 1, sizeof *e->hcome);
    if (!e->hw || !e->hrow || !e->hcome) return -1;
    e->hd = dim;
    for (size_t i = 0; i < e->ns; i++)
        if (!(e->s[i].hl = lmz_zalloc64((size_t)e->V * sizeof(float))) ||
            !(e->s[i].hc = lmz_zalloc64((size_t)dim * sizeof(float))))
            return -1;
    if (!lmz_ens_cache_on(&e->p)) return 0;
    size_t total = 0; /* rows: as many as the streams have tokens, at most cache_rows */
    for (size_t i = 0; i < e->ns; i++) total += e->s[i].max;
    e->ccap = total < e->p.cache_rows ? (total + 15) / 16 * 16 : e->p.cache_rows;
    if (e->ccap == 0) e->ccap = 16;
    if (lmz_qmat_alloc(&e->ck, e->ccap, dim) != 0) return -1;
    e->ctok = calloc(e->ccap, sizeof *e->ctok);
    e->cq = lmz_zalloc64(e->ns * 4 * e->ck.groups);
    e->cqs = calloc(e->ns, sizeof *e->cqs);
    e->cy = lmz_zalloc64(e->ns * e->ccap * sizeof *e->cy);
    e->cyr = e->ns;
    if (!e->ctok || !e->cq || !e->cqs || !e->cy) return -1;
    for (size_t i = 0; i < e->ns; i++) {
        ens_stream *x = &e->s[i];
        if (!(x->cw = calloc(e->V, sizeof *x->cw)) || !(x->clist = malloc(e->V * sizeof *x->clist)) ||
            !(x->cpold = malloc(e->V * sizeof *x->cpold)))
            return -1;
    }
    for (int b = 0; b < CACHE_BUCKETS; b++) e->clam[b] = CACHE_LAMBDA0;
    return 0;
}

/* the cache's query of vector h (|h|^2 = n2): h quantized, its scale over
 * |h|, into q and *qs. @return 1, or 0 where n2 is not a positive finite
 * number (no query) */
static int cache_query(const lmz_ens *e, const float *h, float n2, int8_t *q, float *qs)
{
    if (!(n2 > 0.0f && isfinite(n2))) return 0;
    float xs;
    lmz_qact(e->kp, h, 1, e->hd, e->ck.groups, q, &xs);
    *qs = xs * (1.0f / sqrtf(n2));
    return 1;
}

/* the adaptive head's input for stream x: h / |h|^2 kept for the update
 * (zeros where |h|^2 is not a positive finite number: that token teaches the
 * head nothing) */
static void head_input(lmz_ens *e, ens_stream *x, const float *logits, const float *h, float *out)
{
    const uint32_t D = e->hd;
    float n2 = lmz_dot(e->kp, h, LMZ_GGML_F32, h, D);
    if (n2 > 0.0f && isfinite(n2)) {
        float inv = 1.0f / n2;
        for (uint32_t i = 0; i < D; i++) x->hc[i] = h[i] * inv;
    } else {
        memset(x->hc, 0, D * sizeof *x->hc);
    }
    x->cqon = x->cpend = 0;
    x->cyp = NULL;
    if (e->ck.q) {
        size_t s = (size_t)(x - e->s);
        x->cqon = cache_query(e, h, n2, e->cq + s * 4 * e->ck.groups, &e->cqs[s]);
    }
    x->hlog = logits;
    x->hh = h;
    x->hout = out;
}

#define HEAD_ROWS 64 /* rows gathered for one lmz_dot_many_f32 */
#define HEAD_VECS 8  /* ... against this many streams' vectors */

/* hout = hlog + hw h of streams xs[0..k) on the n rows w (tokens at) */
static void head_dots(const lmz_ens *e, ens_stream *const *xs, size_t k, const float *const *w, const uint32_t *at,
                      uint32_t n)
{
    const float *hv[HEAD_VECS];
    float y[HEAD_VECS * HEAD_ROWS];
    for (size_t t0 = 0; t0 < k; t0 += HEAD_VECS) {
        size_t nx = k - t0 < HEAD_VECS ? k - t0 : HEAD_VECS;
        for (size_t t = 0; t < nx; t++) hv[t] = xs[t0 + t]->hh;
        lmz_dot_many_f32(e->kp, w, n, hv, nx, e->hd, y, HEAD_ROWS);
        for (size_t t = 0; t < nx; t++) {
            ens_stream *x = xs[t0 + t];
            for (uint32_t i = 0; i < n; i++) x->hout[at[i]] = x->hlog[at[i]] + y[t * HEAD_ROWS + i];
        }
    }
}

/* the adaptive head's logits of streams xs[0..k) (head_input done) on the
 * vocabulary entries [v0, v1): logits + hw h for the rows of tokens that
 * have come, the logits alone for the others */
static void head_fill(const lmz_ens *e, ens_stream *const *xs, size_t k, uint32_t v0, uint32_t v1)
{
    const uint8_t *r = e->hrow;
    const float *w[HEAD_ROWS];
    uint32_t at[HEAD_ROWS], n = 0;
    for (size_t t = 0; t < k; t++)
        if (xs[t]->hout != xs[t]->hlog)
            memcpy(xs[t]->hout + v0, xs[t]->hlog + v0, (size_t)(v1 - v0) * sizeof(float));
    for (uint32_t v = v0; v < v1; v++) {
        if (!((v - v0) & 7) && v + 8 <= v1) { /* eight tokens none of which has come */
            uint64_t any;
            memcpy(&any, r + v, 8);
            if (!any) {
                v += 7;
                continue;
            }
        }
        if (!r[v]) continue;
        w[n] = e->hw + (size_t)v * e->hd;
        at[n++] = v;
        if (n == HEAD_ROWS) {
            head_dots(e, xs, k, w, at, n);
            n = 0;
        }
    }
    if (n) head_dots(e, xs, k, w, at, n);
}

/* the adaptive head's logits for stream x on its own */
static const float *head_logits(lmz_ens *e, ens_stream *x, const float *logits, const float *h)
{
    head_input(e, x, logits, h, x->hl);
    head_fill(e, &x, 1, 0, e->V);
    x->hon = 1;
    return x->hl;
}

void lmz_ens_head_begin(lmz_ens *e, size_t s, float *logits, const float *hidden)
{
    ens_stream *x = &e->s[s];
    if (!x->prepared) prepare(e, x);
    x->hpend = e->hw && x->want && logits && hidden;
    x->cqon = x->cpend = 0;
    x->cyp = NULL;
    if (x->hpend) {
        head_input(e, x, logits, hidden, logits);
        x->cpend = x->cqon;
    }
}

size_t lmz_ens_cache_blocks(const lmz_ens *e) { return (cache_used(e) + 15) / 16; }

void lmz_ens_cache_rows(lmz_ens *e, const size_t *st, size_t k, size_t b0, size_t b1)
{
    size_t nb = lmz_ens_cache_blocks(e), G4 = 4 * e->ck.groups;
    if (b1 > nb) b1 = nb;
    if (b0 >= b1) return;
    for (size_t i = 0; i < k;) { /* runs of consecutive streams: one product each */
        size_t s = st[i], n = 1;
        if (!e->s[s].cpend) {
            i++;
            continue;
        }
        while (i + n < k && st[i + n] == s + n && e->s[s + n].cpend) n++;
        lmz_qmm(e->kp, &e->ck, b0, b1, e->cq + s * G4, e->cqs + s, n, e->cy + s * e->ccap, e->ccap);
        i += n;
    }
}

/* ahead queries: at most 16 a stream, LMZ_ENS_STREAMS_MAX in all (the
 * similarities lmz_lm_mem_group counts) and 4M similarities (16 MiB) in all;
 * at least one a stream */
#define AHEAD_SIMS ((size_t)1 << 22)
size_t lmz_ens_cache_ahead_max(lmz_ens *e)
{
    if (!e->ck.q) return 0;
    if (e->aq) return e->cyr; /* made once: the queries' room is cy's rows for good */
    size_t cap = AHEAD_SIMS / e->ccap;
    if (cap > 16 * e->ns) cap = 16 * e->ns;
    if (cap > LMZ_ENS_STREAMS_MAX) cap = LMZ_ENS_STREAMS_MAX;
    if (cap > e->cyr) { /* cy grows (its rows are scratch between predictions); else it stays */
        float *cy = lmz_zalloc64(cap * e->ccap * sizeof *cy);
        if (cy) {
            free(e->cy);
            e->cy = cy;
            e->cyr = cap;
        }
    }
    e->aq = lmz_zalloc64(e->cyr * 4 * e->ck.groups);
    e->aqs = calloc(e->cyr, sizeof *e->aqs);
    e->aon = calloc(e->cyr, 1);
    if (!e->aq || !e->aqs || !e->aon) {
        free(e->aq), free(e->aqs), free(e->aon);
        e->aq = NULL, e->aqs = NULL, e->aon = NULL;
        return 0;
    }
    return e->cyr;
}

void lmz_ens_cache_ahead(lmz_ens *e, const float *const *hs, size_t n)
{
    const size_t G4 = 4 * e->ck.groups;
    e->an = e->aq && n <= e->cyr ? n : 0;
    for (size_t i = 0; i < e->an; i++) {
        const float *h = hs[i];
        e->aon[i] = h && cache_query(e, h, lmz_dot(e->kp, h, LMZ_GGML_F32, h, e->hd), e->aq + i * G4, &e->aqs[i]);
    }
    e->acn = e->cn;
    e->anb = lmz_ens_cache_blocks(e);
}

void lmz_ens_cache_ahead_rows(lmz_ens *e, size_t b0, size_t b1)
{
    const size_t G4 = 4 * e->ck.groups;
    if (b1 > e->anb) b1 = e->anb;
    if (b0 >= b1) return;
    for (size_t i = 0; i < e->an;) { /* runs of queries made: one product each */
        size_t n = 0;
        while (i + n < e->an && e->aon[i + n]) n++;
        if (n) lmz_qmm(e->kp, &e->ck, b0, b1, e->aq + i * G4, e->aqs + i, n, e->cy + i * e->ccap, e->ccap);
        i += n ? n : 1;
    }
}

void lmz_ens_cache_ahead_take(lmz_ens *e, size_t s, size_t i)
{
    ens_stream *x = &e->s[s];
    if (!x->cqon) return;
    x->cpend = 0; /* unless served here, cache_mix computes them */
    if (i >= e->an || !e->aon[i]) return;
    const size_t G4 = 4 * e->ck.groups, added = e->cn - e->acn;
    float *y = e->cy + i * e->ccap;
    const int8_t *q = e->cq + s * G4; /* the same bytes as ahead query i's: the same vector */
    const float *qs = e->cqs + s;
    if (added >= e->ccap - 16) { /* nearly every row is new: all of them */
        lmz_qmm(e->kp, &e->ck, 0, lmz_ens_cache_blocks(e), q, qs, 1, y, e->ccap);
    } else if (added) { /* the blocks of the rows taken since: acn .. cn - 1, a ring */
        size_t r0 = e->acn % e->ccap, r1 = r0 + added;
        if (r1 <= e->ccap) {
            lmz_qmm(e->kp, &e->ck, r0 / 16, (r1 + 15) / 16, q, qs, 1, y, e->ccap);
        } else {
            lmz_qmm(e->kp, &e->ck, r0 / 16, e->ccap / 16, q, qs, 1, y, e->ccap);
            lmz_qmm(e->kp, &e->ck, 0, (r1 - e->ccap + 15) / 16, q, qs, 1, y, e->ccap);
        }
    }
    x->cyp = y;
    x->cpend = 1;
}

void lmz_ens_head_rows(lmz_ens *e, const size_t *st, size_t k, uint32_t v0, uint32_t v1)
{
    ens_stream *xs[LMZ_ENS_STREAMS_MAX];
    size_t n = 0;
    if (v1 > e->V) v1 = e->V;
    for (size_t i = 0; i < k; i++)
        if (e->s[st[i]].hpend) xs[n++] = &e->s[st[i]];
    if (n && v0 < v1) head_fill(e, xs, n, v0, v1);
}

const uint32_t *lmz_ens_head_come(const lmz_ens *e) { return e->hcome; }

const uint32_t *lmz_ens_predict(lmz_ens *e, size_t s, const float *logits)
{
    return lmz_ens_predict_hidden(e, s, logits, NULL);
}

const uint32_t *lmz_ens_predict_hidden(lmz_ens *e, size_t s, const float *logits, const float *hidden)
{
    ens_stream *x = &e->s[s];
    if (!x->prepared) prepare(e, x);
    x->act[X_MODEL] = x->want && logits;
    if ((e->p.parts & LMZ_ENS_MODEL) && !x->want) x->skipped++;
    x->hon = 0;
    if (e->hw && x->act[X_MODEL] && hidden) {
        if (x->hpend) { /* lmz_ens_head_begin and lmz_ens_head_rows rewrote the logits */
            x->hon = 1;
            logits = x->hout;
        } else {
            logits = head_logits(e, x, logits, hidden);
        }
    } else {
        x->cqon = 0; /* no head, no query for the cache */
    }
    x->hpend = 0;
#ifdef LMZ_FUSED
    if (lmz_ens_fused(e)) return predict_fused(e, x, logits);
#endif
    return predict_passes(e, x, logits);
}

void lmz_ens_set_fused(lmz_ens *e, int on) { e->fused = on != 0; }

int lmz_ens_fused(const lmz_ens *e)
{
#ifdef LMZ_FUSED
    return e->p.profile != LMZ_ENS_V1 && e->p.mixer == LMZ_MIX_LOG && e->fused && lmz_kpath_avx512(e->kp);
#else
    (void)e;
    return 0;
#endif
}

const uint32_t *lmz_ens_freq(const lmz_ens *e, size_t s) { return e->s[s].freq; }

double lmz_ens_cost(const lmz_ens *e, size_t s, int32_t tok)
{
    if (tok < 0 || (uint32_t)tok >= e->V) return 0;
    return (double)e->p.cdf_bits - log2((double)e->s[s].freq[tok]);
}

double lmz_ens_cost_ideal(const lmz_ens *e, size_t s, int32_t tok)
{
    if (tok < 0 || (uint32_t)tok >= e->V) return 0;
    const float *p = e->s[s].pmix;
    double sum = sum_p(LMZ_ENS_V2, p, e->V); /* they need not add to 1 (statistics only: not in predict) */
    return sum > 0 ? -log2((double)p[tok] / sum) : 0;
}

/* each active expert's probability of tok */
static float expert_q(const ens_stream *x, int i, int32_t tok)
{
    switch (i) {
    case X_MODEL: return x->pm[tok];
    case X_NGRAM: return x->ng_s + x->ngadd[tok];
    case X_MATCH: return tok == x->mpred ? x->mconf : x->mbg;
    case X_NGTOP:
        for (unsigned j = 0; j < x->nt; j++)
            if (x->ttok[j] == tok) return x->tq[j];
        return x->tbg;
    default: return tok == x->lpred ? x->lconf : x->lbg;
    }
}

void lmz_ens_explain(const lmz_ens *e, size_t s, int32_t tok, float q[4], int32_t top[3], float top_p[3])
{
    const ens_stream *x = &e->s[s];
    for (int i = 0; i < 4; i++) /* the four of the report: not the top n-gram order */
        q[i] = x->act[i] && tok >= 0 && (uint32_t)tok < e->V ? expert_q(x, i, tok) : -1.0f;
    uint32_t f[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) top[k] = -1;
    for (uint32_t v = 0; v < e->V; v++) {
        uint32_t fv = x->freq[v];
        if (fv <= f[2]) continue;
        int k = fv > f[0] ? 0 : fv > f[1] ? 1 : 2;
        for (int j = 2; j > k; j--) {
            f[j] = f[j - 1];
            top[j] = top[j - 1];
        }
        f[k] = fv;
        top[k] = (int32_t)v;
    }
    for (int k = 0; k < 3; k++) top_p[k] = (float)ldexp((double)f[k], -(int)e->p.cdf_bits);
}

static void ngram_update(lmz_ens *e, const ens_stream *x, int32_t tok)
{
    uint32_t key = (uint32_t)tok << 8;
    for (unsigned k = 0; k < x->ngk; k++) {
        ng_bucket *b = &e->ng[k][x->ngidx[k]];
        if (b->check != x->ngchk[k]) { /* a new context takes the bucket */
            memset(b, 0, sizeof *b);
            b->check = x->ngchk[k];
        }
        int hit = -1, empty = -1, low = 0;
        for (int j = 0; j < NG_SLOTS; j++) {
            uint32_t v = b->slot[j];
            if (!v) {
                if (empty < 0) empty = j;
            } else if ((v & ~0xFFu) == key) {
                hit = j;
            } else if ((v & 0xFF) < (b->slot[low] & 0xFF) || !b->slot[low]) {
                low = j;
            }
        }
        if (hit >= 0) {
            if ((b->slot[hit] & 0xFF) == NG_COUNT_MAX)
                for (int j = 0; j < NG_SLOTS; j++)
                    if (b->slot[j]) b->slot[j] = (b->slot[j] & ~0xFFu) | (((b->slot[j] & 0xFF) + 1) >> 1);
            b->slot[hit]++;
        } else {
            b->slot[empty >= 0 ? empty : low] = key | 1u;
        }
    }
}

/* the match table's slot of the MATCH_MIN tokens of x before position end */
static size_t match_slot(const lmz_ens *e, const ens_stream *x, size_t end)
{
    uint64_t h = 0;
    for (size_t k = 1; k <= MATCH_MIN; k++) h = (h + (uint64_t)(uint32_t)x->hist[end - k] + 1) * 0xD6E8FEB86659FD93ull;
    return (size_t)((h ^ (h >> 32)) & e->mask);
}

static int update_ok(const lmz_ens *e, const ens_stream *x, int32_t tok)
{
    return x->n < x->max && tok >= 0 && (uint32_t)tok < e->V;
}

/* the bias head's step of one stream on entries [v0, v1): the model's
 * probabilities off, the token's entry up (the context bias on the previous
 * token's row too, twice the rate) */
LMZ_CLONES_FLOAT
static void bias_step(lmz_ens *e, const ens_stream *x, int32_t tok, uint32_t v0, uint32_t v1)
{
    if (!x->act[X_MODEL] || !(e->p.parts & LMZ_ENS_BIAS) || !(e->p.bias_lr > 0)) return;
    float lr = e->p.bias_lr, *b = e->bias;
    const float *pm = x->pm;
    int here = (uint32_t)tok >= v0 && (uint32_t)tok < v1;
    if (e->cb) {
        float *c = context_row(e, x), lc = 2.0f * lr;
        for (uint32_t v = v0; v < v1; v++) { /* both in one pass */
            b[v] -= lr * pm[v];
            c[v] -= lc * pm[v];
        }
        if (here) {
            b[tok] += lr;
            c[tok] += lc;
        }
    } else {
        for (uint32_t v = v0; v < v1; v++) b[v] -= lr * pm[v];
        if (here) b[tok] += lr;
    }
}

/* the adaptive head's step of one stream on rows [v0, v1) (lmz_ens_set_dim):
 * the token's row, and the rows of tokens that came before whose
 * probability is at least HEAD_PMIN (found by lmz_find_ge; each row's step
 * is its own, so the order of the rows changes nothing); rate head_lr */
#define HEAD_PMIN 1e-3f
#define HEAD_FIND 1024 /* rows searched at a time */
static inline void head_row(lmz_ens *e, const ens_stream *x, uint32_t v, float target)
{
    const uint32_t D = e->hd;
    float g = e->p.head_lr * (target - x->pm[v]);
    float *w = e->hw + (size_t)v * D;
    const float *hc = x->hc;
    for (uint32_t i = 0; i < D; i++) w[i] += g * hc[i];
}

LMZ_CLONES_FLOAT
static void head_step(lmz_ens *e, const ens_stream *x, int32_t tok, uint32_t v0, uint32_t v1)
{
    if (!x->hon) return;
    uint32_t idx[HEAD_FIND];
    if ((uint32_t)tok >= v0 && (uint32_t)tok < v1) {
        if (!e->hrow[tok]) e->hcome[tok / LMZ_ENS_HEAD_BLOCK]++;
        e->hrow[tok] = 1; /* the token's row joins the head */
        head_row(e, x, (uint32_t)tok, 1.0f);
    }
    for (uint32_t c = v0; c < v1; c += HEAD_FIND) {
        uint32_t len = v1 - c < HEAD_FIND ? v1 - c : HEAD_FIND;
        size_t n = lmz_find_ge(e->kp, x->pm + c, len, HEAD_PMIN, idx);
        for (size_t i = 0; i < n; i++) {
            uint32_t v = c + idx[i];
            if (e->hrow[v] && (int32_t)v != tok) head_row(e, x, v, 0.0f);
        }
    }
}

void lmz_ens_update_rows(lmz_ens *e, const size_t *st, const int32_t *tok, size_t k, uint32_t v0, uint32_t v1)
{
    if (v1 > e->V) v1 = e->V;
    for (size_t i = 0; i < k; i++) {
        const ens_stream *x = &e->s[st[i]];
        if (!update_ok(e, x, tok[i])) continue;
        bias_step(e, x, tok[i], v0, v1);
        if (e->hw) head_step(e, x, tok[i], v0, v1);
    }
}

int lmz_ens_update(lmz_ens *e, size_t s, int32_t tok)
{
    lmz_ens_update_rows(e, &s, &tok, 1, 0, e->V);
    return lmz_ens_update_rest(e, s, tok);
}

/* the cache after stream x's token tok: the weight of the cache used moves
 * by the gradient of the code length, -log((1 - l) p + l c); the query
 * joins the rows with the token (row cn % ccap, the oldest once full) */
static void cache_update(lmz_ens *e, ens_stream *x, int32_t tok)
{
    if (x->con) {
        int in = x->cw[tok] > 0.0f;
        float c = in ? (float)((double)x->cw[tok] / x->cwsum) : 0.0f;
        float py = (float)((double)(in ? x->cpold[tok] : x->pmix[tok]) / x->csum);
        float l = e->clam[x->cbkt], m = (1.0f - l) * py + l * c;
        if (m > 0.0f && isfinite(m)) {
            l += CACHE_RATE * (c - py) / m;
            e->clam[x->cbkt] = l < CACHE_LMIN ? CACHE_LMIN : l > CACHE_LMAX ? CACHE_LMAX : l;
        }
        for (uint32_t j = 0; j < x->ncl; j++) x->cw[x->clist[j]] = 0.0f;
        x->ncl = 0;
        x->con = 0;
    }
    if (x->cqon) {
        const size_t r = e->cn % e->ccap, s = (size_t)(x - e->s);
        lmz_qmat_set_row(&e->ck, r, e->cq + s * 4 * e->ck.groups, e->cqs[s]);
        e->ctok[r] = tok;
        e->cn++;
        x->cqon = x->cpend = 0;
        x->cyp = NULL;
    }
}

int lmz_ens_update_rest(lmz_ens *e, size_t s, int32_t tok)
{
    ens_stream *x = &e->s[s];
    if (!update_ok(e, x, tok)) return -1;
    x->prepared = 0;
    x->hpend = 0;
    if (x->con || x->cqon) cache_update(e, x, tok);

    if (x->aon) {
        float y = tok == x->atok ? 1.0f : 0.0f, *t = e->apm[x->actx], rate = APM_RATE;
        t[x->abkt] += rate * (1.0f - x->aw) * (y - t[x->abkt]);
        t[x->abkt + 1] += rate * x->aw * (y - t[x->abkt + 1]);
        x->aon = 0;
    }
    if (e->p.mixer == LMZ_MIX_PROB) {
        float *w = e->wglob, before = 0, after = 0;
        for (int i = 0; i < EXPERTS; i++) {
            if (!x->act[i]) continue;
            before += w[i];
            w[i] *= sqrtf(expert_q(x, i, tok)); /* rate 0.5: w q^0.5 */
            after += w[i];
        }
        if (after > 0) {
            float r = before / after;
            for (int i = 0; i < EXPERTS; i++)
                if (x->act[i]) {
                    w[i] *= r;
                    if (w[i] < 1e-3f) w[i] = 1e-3f;
                }
        }
    } else {
        float lr = e->p.mix_lr;
        for (int i = 0; i < EXPERTS; i++) {
            if (!x->act[i]) continue;
            float q = expert_q(x, i, tok);
            float g = x->elog[i] - lmz_logf(q > 0 ? q : 1e-38f);
            float w = e->wglob[i] - lr * g, d = e->wsets[x->wset][i] - lr * g;
            e->wglob[i] = w < 0 ? 0 : w > 4 ? 4 : w;
            e->wsets[x->wset][i] = d < -4 ? -4 : d > 4 ? 4 : d;
        }
    }

    for (unsigned i = 0; i < x->nlist; i++) {
        x->ngadd[x->list[i]] = 0;
        x->inlist[x->list[i]] = 0;
    }
    x->nlist = 0;
    if (e->p.parts & LMZ_ENS_NGRAM) ngram_update(e, x, tok);

    if (x->mptr != MATCH_NONE && !match_known(e, x)) { /* into another stream, not learnt yet */
        x->mptr = MATCH_NONE;
        x->mlen = 0;
    }
    if (x->mptr != MATCH_NONE)
        match_follow(e->mhit, e->mtot, &x->mptr, &x->mlen, e->s[x->msrc].hist[x->mptr] == tok);
    if (x->lt && x->lptr != MATCH_NONE) /* profile 3: the stream's own match model */
        match_follow(e->lhit, e->ltot, &x->lptr, &x->llen, x->hist[x->lptr] == tok);
    x->hist[x->n++] = tok;
    e->n++;
    if (x->lt) {
        if (x->n > LOCAL_MIN) x->lt[local_slot(x, x->n - 1)] = (uint32_t)x->n; /* position n - 1, plus 1 */
        if (x->n >= LOCAL_MIN && x->lptr == MATCH_NONE) {
            uint32_t v = x->lt[local_slot(x, x->n)];
            if (v) {
                x->lptr = v - 1;
                x->llen = 0;
            }
        }
    }
    /* the table learns the context before tok, now that tok is known (a
     * pointer never names a token still to come), then gives the current
     * context's last known successor */
    if (x->n > MATCH_MIN) e->mt[match_slot(e, x, x->n - 1)] = (uint64_t)s << 32 | (uint64_t)(x->n - 1);
    if (x->n >= MATCH_MIN) {
        uint64_t m = e->mt[match_slot(e, x, x->n)];
        if (x->mptr == MATCH_NONE && m != 0) {
            x->msrc = (size_t)(m >> 32);
            x->mptr = (size_t)(uint32_t)m;
            x->mlen = 0;
        }
    }
    return 0;
}
