/* lmens.c — see lmens.h for the contract. */
#include "lmens.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../codec/cdf.h"
#include "../tensor/detmath.h"
#include "../tensor/kernels.h"

#define NG_ORDERS 4
#define NG_SLOTS 7
#define NG_COUNT_MAX 255u
#define MATCH_MIN 4
#define MATCH_LENS 16
#define MATCH_NONE SIZE_MAX
#define PROB_WARMUP 100   /* the probability mixer uses the model alone first */
#define EXPERTS 3         /* model, n-gram, match */
#define MIX_SETS ((NG_ORDERS + 1) * 4) /* log mixer: weight offsets per (n-gram order found, match length) */
enum { X_MODEL, X_NGRAM, X_MATCH };

/* one context of one order: a check value (0 = empty bucket) and up to seven
 * next tokens, each token << 8 | count (0 = empty slot) */
typedef struct {
    uint32_t check;
    uint32_t slot[NG_SLOTS];
} ng_bucket;

struct lmz_ens {
    lmz_ens_params p;
    uint32_t V;
    lmz_kpath kp;
    size_t max, n;
    int32_t *hist;
    float *bias, *u, *l, *pm, *pmix, *ngadd;
    uint8_t *inlist;
    uint32_t *freq, *cum;
    ng_bucket *ng[NG_ORDERS];
    uint32_t *mt;
    size_t mask; /* buckets per order - 1, also the match table's */
    /* the match model */
    size_t mptr;
    unsigned mlen;
    uint32_t mhit[MATCH_LENS], mtot[MATCH_LENS];
    float wglob[EXPERTS];           /* the mixer's weights */
    float wsets[MIX_SETS][EXPERTS]; /* log mixer: offsets per context, learnt beside them */
    float weff[EXPERTS];            /* log mixer: weights in use, wglob + the set's offsets */
    float *w;        /* the weights in use: wglob (probability mixer) or weff */
    unsigned wset;
    unsigned ngorder; /* the highest n-gram order whose context was seen */
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
    int prepared;        /* the cheap parts of the next prediction are done */
    int want;            /* ... and the model is wanted */
    uint64_t skipped;
};

void lmz_ens_params_default(lmz_ens_params *p)
{
    p->parts = LMZ_ENS_ALL;
    p->mixer = LMZ_MIX_LOG;
    p->ngram_bits = 20;
    p->cdf_bits = 24;
    p->bias_lr = 0.3f; /* Nacrith: 0.001 with SmolLM2; our small models gain far more from a fast head */
    p->mix_lr = 0.002f;
    p->skip_mbits = 0;
}

int lmz_ens_params_check(const lmz_ens_params *p, uint32_t vocab)
{
    if (p->parts == 0 || p->parts > LMZ_ENS_ALL || p->mixer > LMZ_MIX_LOG) return -1;
    if (p->ngram_bits < LMZ_ENS_NGRAM_BITS_MIN || p->ngram_bits > LMZ_ENS_NGRAM_BITS_MAX) return -1;
    if (p->cdf_bits < 16 || p->cdf_bits > LMZ_CDF_BITS || vocab < 2 || vocab >= (1u << p->cdf_bits)) return -1;
    if (!(p->bias_lr >= 0 && p->bias_lr <= 1) || !(p->mix_lr >= 0 && p->mix_lr <= 1)) return -1;
    if (p->skip_mbits > 16000) return -1;
    return 0;
}

static size_t buckets_for(const lmz_ens_params *p, size_t max_tokens)
{
    size_t nb = (size_t)1 << LMZ_ENS_NGRAM_BITS_MIN;
    while (nb < max_tokens && nb < ((size_t)1 << p->ngram_bits)) nb <<= 1;
    return nb;
}

void lmz_ens_free(lmz_ens *e)
{
    if (!e) return;
    free(e->hist);
    free(e->bias);
    free(e->u);
    free(e->l);
    free(e->pm);
    free(e->pmix);
    free(e->ngadd);
    free(e->inlist);
    free(e->freq);
    free(e->cum);
    for (int k = 0; k < NG_ORDERS; k++) free(e->ng[k]);
    free(e->mt);
    free(e);
}

lmz_ens *lmz_ens_new(const lmz_ens_params *p, uint32_t vocab, size_t max_tokens)
{
    if (lmz_ens_params_check(p, vocab) != 0) return NULL;
    lmz_ens *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->p = *p;
    e->V = vocab;
    e->max = max_tokens;
    size_t nb = buckets_for(p, max_tokens);
    e->mask = nb - 1;
    e->hist = malloc((max_tokens ? max_tokens : 1) * sizeof *e->hist);
    e->bias = calloc(vocab, sizeof *e->bias);
    e->u = malloc(vocab * sizeof *e->u);
    e->l = malloc(vocab * sizeof *e->l);
    e->pm = malloc(vocab * sizeof *e->pm);
    e->pmix = malloc(vocab * sizeof *e->pmix);
    e->ngadd = calloc(vocab, sizeof *e->ngadd);
    e->inlist = calloc(vocab, 1);
    e->freq = malloc(vocab * sizeof *e->freq);
    e->cum = malloc((vocab + 1) * sizeof *e->cum);
    int ok = e->hist && e->bias && e->u && e->l && e->pm && e->pmix && e->ngadd && e->inlist && e->freq && e->cum;
    for (int k = 0; k < NG_ORDERS && ok; k++) ok = (e->ng[k] = calloc(nb, sizeof(ng_bucket))) != NULL;
    if (ok) ok = (e->mt = calloc(nb, sizeof *e->mt)) != NULL;
    if (!ok) {
        lmz_ens_free(e);
        return NULL;
    }
    char err[64];
    if (lmz_kernels_select(&e->kp, err, sizeof err) != 0) e->kp = LMZ_KPATH_SCALAR;
    e->mptr = MATCH_NONE;
    float *w = e->wglob;
    if (p->mixer == LMZ_MIX_PROB) {
        w[X_MODEL] = 0.85f;
        w[X_NGRAM] = 0.15f;
        w[X_MATCH] = 0.15f;
    } else {
        w[X_MODEL] = 1.0f;
        w[X_NGRAM] = 0.3f;
        w[X_MATCH] = 0.3f;
    }
    e->w = p->mixer == LMZ_MIX_PROB ? e->wglob : e->weff;
    return e;
}

/* hashes of the contexts of orders 1..NG_ORDERS ending at the last token */
static void context_hashes(lmz_ens *e)
{
    uint64_t h = 0;
    e->ngk = e->n < NG_ORDERS ? (unsigned)e->n : NG_ORDERS;
    for (unsigned k = 0; k < e->ngk; k++) {
        h = (h + (uint64_t)(uint32_t)e->hist[e->n - 1 - k] + 1) * 0x9E3779B97F4A7C15ull;
        uint64_t x = (h ^ (h >> 29) ^ (uint64_t)(k + 1) * 0xBF58476D1CE4E5B9ull) * 0x94D049BB133111EBull;
        x ^= x >> 31;
        e->ngidx[k] = (size_t)(x & e->mask);
        e->ngchk[k] = (uint32_t)(x >> 32) | 1u;
    }
}

/* the n-gram's blend: ng_s for any token, plus ngadd[t] for the tokens of list */
static void ngram_predict(lmz_ens *e)
{
    float s = 1.0f;
    e->nlist = 0;
    for (unsigned k = 0; k < e->ngk; k++) {
        const ng_bucket *b = &e->ng[k][e->ngidx[k]];
        if (b->check != e->ngchk[k]) continue;
        uint32_t tot = 0;
        for (int j = 0; j < NG_SLOTS; j++) tot += b->slot[j] & 0xFF;
        if (tot == 0) continue;
        e->ngorder = k + 1;
        float w = (float)tot / ((float)tot + 5.0f), keep = 1.0f - w, unit = w / (float)tot;
        s *= keep;
        for (unsigned i = 0; i < e->nlist; i++) e->ngadd[e->list[i]] *= keep;
        for (int j = 0; j < NG_SLOTS; j++) {
            uint32_t v = b->slot[j];
            if (!v) continue;
            int32_t t = (int32_t)(v >> 8);
            if (!e->inlist[t]) {
                e->inlist[t] = 1;
                e->list[e->nlist++] = t;
            }
            e->ngadd[t] += unit * (float)(v & 0xFF);
        }
    }
    e->ng_s = s / (float)e->V;
}

/* p[0..n) = exp(x - max) / sum, in place; @return log(sum) (x already
 * shifted by its maximum) */
static float softmax(lmz_ens *e, float *x, float *p)
{
    uint32_t V = e->V;
    float mx = x[0];
    for (uint32_t v = 1; v < V; v++)
        if (x[v] > mx) mx = x[v];
    for (uint32_t v = 0; v < V; v++) x[v] -= mx;
    lmz_exp_array(e->kp, x, p, V);
    double sum = 0;
    for (uint32_t v = 0; v < V; v++) sum += (double)p[v];
    float inv = (float)(1.0 / sum);
    for (uint32_t v = 0; v < V; v++) p[v] *= inv;
    return lmz_logf((float)sum);
}

/* the n-gram and the match model for the next token, and the skip rule:
 * the entropy of their even blend (the n-gram alone without a match) */
static void prepare(lmz_ens *e)
{
    const uint32_t V = e->V;
    const unsigned parts = e->p.parts;
    e->act[X_NGRAM] = (parts & LMZ_ENS_NGRAM) != 0;
    e->act[X_MATCH] = (parts & LMZ_ENS_MATCH) && e->mptr != MATCH_NONE;
    context_hashes(e);
    e->ngorder = 0;
    if (e->act[X_NGRAM]) ngram_predict(e);
    if (e->act[X_MATCH]) {
        unsigned lb = e->mlen < MATCH_LENS ? e->mlen : MATCH_LENS - 1;
        e->mpred = e->hist[e->mptr];
        e->mconf = ((float)e->mhit[lb] + 0.5f) / ((float)e->mtot[lb] + 1.0f);
        e->mbg = (1.0f - e->mconf) / (float)(V - 1);
    }
    if (e->p.mixer == LMZ_MIX_LOG) { /* the weight set: how much the cheap models know here */
        unsigned mb = !e->act[X_MATCH] ? 0 : e->mlen < 8 ? 1 : e->mlen < 16 ? 2 : 3;
        e->wset = e->ngorder * 4 + mb;
        for (int i = 0; i < EXPERTS; i++) {
            float w = e->wglob[i] + e->wsets[e->wset][i];
            e->weff[i] = w < 0 ? 0 : w > 8 ? 8 : w;
        }
    }
    e->prepared = 1;
    e->want = (parts & LMZ_ENS_MODEL) != 0;
    if (!e->want || e->p.skip_mbits == 0 || !(e->act[X_NGRAM] || e->act[X_MATCH])) return;
    float a = e->act[X_NGRAM] ? (e->act[X_MATCH] ? 0.5f : 1.0f) : 0.0f, b = 1.0f - a;
    float bg = a * (e->act[X_NGRAM] ? e->ng_s : 0) + b * (e->act[X_MATCH] ? e->mbg : 0);
    double h = 0;
    unsigned special = 0;
    for (unsigned i = 0; i < e->nlist; i++) {
        int32_t t = e->list[i];
        float q = a * (e->ng_s + e->ngadd[t]) + b * (e->act[X_MATCH] ? (t == e->mpred ? e->mconf : e->mbg) : 0);
        if (q > 0) h -= (double)q * (double)lmz_logf(q);
        special++;
    }
    if (e->act[X_MATCH] && !(e->act[X_NGRAM] && e->inlist[e->mpred])) {
        float q = b * e->mconf + a * (e->act[X_NGRAM] ? e->ng_s : 0);
        if (q > 0) h -= (double)q * (double)lmz_logf(q);
        special++;
    }
    if (bg > 0) h -= (double)(V - special) * (double)bg * (double)lmz_logf(bg);
    /* h is in nats; the threshold in thousandths of a bit */
    e->want = h * 1.4426950408889634 * 1000.0 >= (double)e->p.skip_mbits;
}

int lmz_ens_wants_model(lmz_ens *e)
{
    if (!e->prepared) prepare(e);
    return e->want;
}

uint64_t lmz_ens_skipped(const lmz_ens *e) { return e->skipped; }

const uint32_t *lmz_ens_predict(lmz_ens *e, const float *logits)
{
    const uint32_t V = e->V;
    const unsigned parts = e->p.parts;
    float *p = e->pmix;
    if (!e->prepared) prepare(e);
    e->act[X_MODEL] = e->want && logits;
    if ((parts & LMZ_ENS_MODEL) && !e->want) e->skipped++;

    float logz = 0;
    if (e->act[X_MODEL]) {
        if (parts & LMZ_ENS_BIAS)
            for (uint32_t v = 0; v < V; v++) e->u[v] = logits[v] + e->bias[v];
        else
            memcpy(e->u, logits, V * sizeof *e->u);
        for (uint32_t v = 0; v < V; v++) /* a broken logit counts as very unlikely */
            if (!isfinite(e->u[v])) e->u[v] = -1e30f;
        logz = softmax(e, e->u, e->pm); /* log pm(v) = u[v] - logz */
    }

    if (e->p.mixer == LMZ_MIX_PROB) {
        float w[EXPERTS], ws = 0;
        int alone = e->act[X_MODEL] && e->n < PROB_WARMUP;
        for (int i = 0; i < EXPERTS; i++) {
            w[i] = e->act[i] && (!alone || i == X_MODEL) ? e->w[i] : 0.0f;
            ws += w[i];
        }
        if (!(ws > 0)) { /* nothing active: uniform */
            for (uint32_t v = 0; v < V; v++) p[v] = 1.0f;
        } else {
            for (int i = 0; i < EXPERTS; i++) w[i] /= ws;
            float base = w[X_NGRAM] * (e->act[X_NGRAM] ? e->ng_s : 0) + w[X_MATCH] * (e->act[X_MATCH] ? e->mbg : 0);
            if (w[X_MODEL] > 0)
                for (uint32_t v = 0; v < V; v++) p[v] = w[X_MODEL] * e->pm[v] + base;
            else
                for (uint32_t v = 0; v < V; v++) p[v] = base;
            if (w[X_NGRAM] > 0)
                for (unsigned i = 0; i < e->nlist; i++) p[e->list[i]] += w[X_NGRAM] * e->ngadd[e->list[i]];
            if (w[X_MATCH] > 0) p[e->mpred] += w[X_MATCH] * (e->mconf - e->mbg);
        }
    } else {
        /* l(v) = sum_i w_i log q_i(v), up to a constant; the n-gram and the
         * match model differ from their constant only at a few tokens */
        float *l = e->l;
        if (e->act[X_MODEL]) {
            float wm = e->w[X_MODEL];
            for (uint32_t v = 0; v < V; v++) l[v] = wm * e->u[v];
        } else {
            memset(l, 0, V * sizeof *l);
        }
        float lbase_n = 0, lbase_k = 0, dlog[NG_ORDERS * NG_SLOTS]; /* log q_ng(t) - lbase_n at the list */
        if (e->act[X_NGRAM]) {
            lbase_n = lmz_logf(e->ng_s);
            for (unsigned i = 0; i < e->nlist; i++) {
                int32_t t = e->list[i];
                dlog[i] = lmz_logf(e->ng_s + e->ngadd[t]) - lbase_n;
                l[t] += e->w[X_NGRAM] * dlog[i];
            }
        }
        if (e->act[X_MATCH]) {
            lbase_k = lmz_logf(e->mbg);
            l[e->mpred] += e->w[X_MATCH] * (lmz_logf(e->mconf) - lbase_k);
        }
        (void)softmax(e, l, p);
        if (e->act[X_MODEL]) { /* E_p[log pm], log pm(v) = u(v) - logz */
            double em = 0;
            for (uint32_t v = 0; v < V; v++) em += (double)p[v] * (double)(e->u[v] - logz);
            e->elog[X_MODEL] = (float)em;
        }
        if (e->act[X_NGRAM]) {
            double en = lbase_n;
            for (unsigned i = 0; i < e->nlist; i++) en += (double)p[e->list[i]] * (double)dlog[i];
            e->elog[X_NGRAM] = (float)en;
        }
        if (e->act[X_MATCH])
            e->elog[X_MATCH] = lbase_k + p[e->mpred] * (lmz_logf(e->mconf) - lbase_k);
    }
    lmz_cdf_build_bits(p, V, e->p.cdf_bits, e->freq, e->cum);
    return e->cum;
}

double lmz_ens_cost(const lmz_ens *e, int32_t tok)
{
    if (tok < 0 || (uint32_t)tok >= e->V) return 0;
    return (double)e->p.cdf_bits - log2((double)e->freq[tok]);
}

double lmz_ens_cost_ideal(const lmz_ens *e, int32_t tok)
{
    if (tok < 0 || (uint32_t)tok >= e->V) return 0;
    double sum = 0; /* the mixed probabilities need not add to 1 (statistics only: not in predict) */
    for (uint32_t v = 0; v < e->V; v++) sum += (double)e->pmix[v];
    return sum > 0 ? -log2((double)e->pmix[tok] / sum) : 0;
}

/* log of each active expert's probability of tok, and the same value */
static float expert_q(const lmz_ens *e, int i, int32_t tok)
{
    switch (i) {
    case X_MODEL: return e->pm[tok];
    case X_NGRAM: return e->ng_s + e->ngadd[tok];
    default: return tok == e->mpred ? e->mconf : e->mbg;
    }
}

static void ngram_update(lmz_ens *e, int32_t tok)
{
    uint32_t key = (uint32_t)tok << 8;
    for (unsigned k = 0; k < e->ngk; k++) {
        ng_bucket *b = &e->ng[k][e->ngidx[k]];
        if (b->check != e->ngchk[k]) { /* a new context takes the bucket */
            memset(b, 0, sizeof *b);
            b->check = e->ngchk[k];
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

int lmz_ens_update(lmz_ens *e, int32_t tok)
{
    if (e->n >= e->max || tok < 0 || (uint32_t)tok >= e->V) return -1;
    const uint32_t V = e->V;
    e->prepared = 0;

    if (e->act[X_MODEL] && (e->p.parts & LMZ_ENS_BIAS) && e->p.bias_lr > 0) {
        float lr = e->p.bias_lr;
        for (uint32_t v = 0; v < V; v++) e->bias[v] -= lr * e->pm[v];
        e->bias[tok] += lr;
    }

    if (e->p.mixer == LMZ_MIX_PROB) {
        float before = 0, after = 0;
        for (int i = 0; i < EXPERTS; i++) {
            if (!e->act[i]) continue;
            before += e->w[i];
            e->w[i] *= sqrtf(expert_q(e, i, tok)); /* rate 0.5: w q^0.5 */
            after += e->w[i];
        }
        if (after > 0) {
            float r = before / after;
            for (int i = 0; i < EXPERTS; i++)
                if (e->act[i]) {
                    e->w[i] *= r;
                    if (e->w[i] < 1e-3f) e->w[i] = 1e-3f;
                }
        }
    } else {
        float lr = e->p.mix_lr;
        for (int i = 0; i < EXPERTS; i++) {
            if (!e->act[i]) continue;
            float q = expert_q(e, i, tok);
            float g = e->elog[i] - lmz_logf(q > 0 ? q : 1e-38f);
            float w = e->wglob[i] - lr * g, d = e->wsets[e->wset][i] - lr * g;
            e->wglob[i] = w < 0 ? 0 : w > 4 ? 4 : w;
            e->wsets[e->wset][i] = d < -4 ? -4 : d > 4 ? 4 : d;
        }
    }

    for (unsigned i = 0; i < e->nlist; i++) {
        e->ngadd[e->list[i]] = 0;
        e->inlist[e->list[i]] = 0;
    }
    e->nlist = 0;
    if (e->p.parts & LMZ_ENS_NGRAM) ngram_update(e, tok);

    if (e->mptr != MATCH_NONE) {
        unsigned lb = e->mlen < MATCH_LENS ? e->mlen : MATCH_LENS - 1;
        int hit = e->hist[e->mptr] == tok;
        e->mtot[lb]++;
        e->mhit[lb] += (uint32_t)hit;
        if (e->mtot[lb] >= 1024) {
            e->mtot[lb] >>= 1;
            e->mhit[lb] >>= 1;
        }
        if (hit) {
            e->mptr++;
            e->mlen++;
        } else {
            e->mptr = MATCH_NONE;
            e->mlen = 0;
        }
    }
    e->hist[e->n++] = tok;
    if (e->n >= MATCH_MIN) {
        uint64_t h = 0;
        for (int k = 1; k <= MATCH_MIN; k++) h = (h + (uint64_t)(uint32_t)e->hist[e->n - (size_t)k] + 1) * 0xD6E8FEB86659FD93ull;
        size_t idx = (size_t)((h ^ (h >> 32)) & e->mask);
        if (e->mptr == MATCH_NONE && e->mt[idx] != 0) {
            e->mptr = e->mt[idx];
            e->mlen = 0;
        }
        e->mt[idx] = (uint32_t)e->n;
    }
    return 0;
}
