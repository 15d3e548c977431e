/*
 * tokbits.c — tokens coded as the bits of their bytes (see tokbits.h).
 *
 * Probabilities here are integers: the table's decisions are ratios of two
 * integer masses, taken to the logistic domain ("stretch", ln(p / (1 - p))
 * in units of 1/256, -4095..4095) through a table of logarithms; the mixer's
 * weights are 16.16 fixed point; its output goes back to a probability in
 * units of 2^-16 through a table of the logistic function. Both tables are
 * computed once with the profile's own exp and log (detmath), which give the
 * same bits on every machine.
 */
#include "tokbits.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../predict/bytemodel.h"
#include "../tensor/detmath.h"

/* ---- fixed tables -------------------------------------------------------- */

#define ST_MAX 4095 /* stretch range: p from about 1e-7 to 1 - 1e-7 */
#define LN2_Q 2839  /* ln 2 * 4096 */

static int32_t squash16[2 * ST_MAX + 1]; /* 65536 / (1 + e^(-d/256)), 1..65535 */
static int32_t ln_mant[2048];            /* ln(m) * 4096 for m = 2048..4095 */
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void tables_init(void)
{
    for (int d = -ST_MAX; d <= ST_MAX; d++) {
        float p = 65536.0f / (1.0f + lmz_expf((float)-d / 256.0f));
        int v = (int)(p + 0.5f);
        squash16[d + ST_MAX] = v < 1 ? 1 : v > 65535 ? 65535 : v;
    }
    for (int m = 2048; m < 4096; m++) ln_mant[m - 2048] = (int32_t)(lmz_logf((float)m) * 4096.0f + 0.5f);
}

/* ln(n) * 4096 for n >= 1, from its 12 leading bits */
static inline int32_t ln_q(uint32_t n)
{
    int e = 31 - __builtin_clz(n);
    uint32_t m = e >= 11 ? n >> (e - 11) : n << (11 - e);
    return ln_mant[m - 2048] + (e - 11) * LN2_Q;
}

/* stretch of the probability n1 / (n0 + n1), both >= 1 */
static inline int stretch_ratio(uint32_t n1, uint32_t n0)
{
    int v = (ln_q(n1) - ln_q(n0)) / 16;
    return v > ST_MAX ? ST_MAX : v < -ST_MAX ? -ST_MAX : v;
}

/* ---- the vocabulary in byte order ----------------------------------------- */

struct lmz_tb_vocab {
    uint32_t n;
    int32_t *ord;          /* token at each place of the order */
    uint32_t *rank;        /* place of each token */
    const uint8_t **str;   /* bytes at each place (the tokenizer's) */
    uint32_t *len;
};

typedef struct {
    const uint8_t *s;
    uint32_t len;
    int32_t id;
} entry;

static int entry_cmp(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    uint32_t k = x->len < y->len ? x->len : y->len;
    int c = k ? memcmp(x->s, y->s, k) : 0;
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1; /* a prefix comes first */
    return x->id < y->id ? -1 : x->id > y->id;
}

void lmz_tb_vocab_free(lmz_tb_vocab *v)
{
    if (!v) return;
    free(v->ord);
    free(v->rank);
    free(v->str);
    free(v->len);
    free(v);
}

lmz_tb_vocab *lmz_tb_vocab_from(const uint8_t *const *str, const uint32_t *len, uint32_t n)
{
    lmz_tb_vocab *v = calloc(1, sizeof *v);
    entry *e = malloc((size_t)(n ? n : 1) * sizeof *e);
    if (!v || !e) goto fail;
    v->n = n;
    v->ord = malloc((size_t)(n ? n : 1) * sizeof *v->ord);
    v->rank = malloc((size_t)(n ? n : 1) * sizeof *v->rank);
    v->str = malloc((size_t)(n ? n : 1) * sizeof *v->str);
    v->len = malloc((size_t)(n ? n : 1) * sizeof *v->len);
    if (!v->ord || !v->rank || !v->str || !v->len) goto fail;
    for (uint32_t i = 0; i < n; i++) {
        e[i].s = str[i];
        e[i].len = str[i] ? len[i] : 0;
        e[i].id = (int32_t)i;
    }
    qsort(e, n, sizeof *e, entry_cmp);
    for (uint32_t i = 0; i < n; i++) {
        v->ord[i] = e[i].id;
        v->rank[e[i].id] = i;
        v->str[i] = e[i].s;
        v->len[i] = e[i].len;
    }
    free(e);
    return v;
fail:
    free(e);
    lmz_tb_vocab_free(v);
    return NULL;
}

lmz_tb_vocab *lmz_tb_vocab_new(const lmz_tokenizer *t, uint32_t n)
{
    const uint8_t **str = malloc((size_t)(n ? n : 1) * sizeof *str);
    uint32_t *len = malloc((size_t)(n ? n : 1) * sizeof *len);
    lmz_tb_vocab *v = NULL;
    if (str && len) {
        for (uint32_t i = 0; i < n; i++) {
            size_t l;
            str[i] = lmz_tokenizer_token_bytes(t, (int32_t)i, &l);
            len[i] = (uint32_t)l;
        }
        v = lmz_tb_vocab_from(str, len, n);
    }
    free(str);
    free(len);
    return v;
}

/* first place in [lo, hi) whose byte d is >= c (every token there is longer than d) */
static inline uint32_t byte_bound(const lmz_tb_vocab *v, uint32_t lo, uint32_t hi, uint32_t d, uint32_t c)
{
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (v->str[mid][d] < c) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* ---- the mixer ------------------------------------------------------------ */

#define NX 4           /* inputs: the table, the byte model, a bias, 0 */
#define CONF 8         /* the table's confidence, |stretch| / 512 */
#define SETS_BIT (CONF * 8 * 2) /* x bit of the byte x first byte of the token or not */
#define SETS_STOP (CONF * 4)    /* x depth 0, 1, 2, 3 and more */
#define MIX_SHIFT 15   /* weight step: input x error (units 2^-16) >> MIX_SHIFT */
#define W_LIM (16 << 16)

/* ---- the refining maps (lmz_tb_new's refine) ------------------------------ */

/* An adaptive probability map: per context a row of MAP_B probabilities
 * (uint16, units of 2^-16) at stretches -16, -15, ..., 16; a probability
 * in is read between the two points around its stretch (linear weights in
 * units of 2^-13), and both move toward the coded bit by their weight,
 * 2^-MAP_RATE of the distance. Rows start at the logistic function, so
 * until it learns the map gives back about the probability it was given
 * (the logistic curve between its points is drawn as straight lines). */
#define MAP_B 33
#define MAP_RATE 6
#define MAP_ORDER1 (1u << 16)  /* bits: the previous byte x the byte's bits so far */
#define MAP_PLACE (1u << 13)   /* bits: the byte's bits so far x confidence x first byte x past the second */
#define MAP_STOP (1u << 12)    /* stops: the previous byte x depth (0..15) */

typedef struct {
    uint16_t *row;
    unsigned at; /* the lower point */
    int w;       /* the upper point's weight, 0..8191 */
} map_use;

static void map_init(uint16_t *t, size_t rows)
{
    for (int b = 0; b < MAP_B; b++) {
        int st = (b - 16) * 256;
        t[b] = (uint16_t)squash16[(st > ST_MAX ? ST_MAX : st < -ST_MAX ? -ST_MAX : st) + ST_MAX];
    }
    for (size_t r = 1; r < rows; r++) memcpy(t + r * MAP_B, t, MAP_B * sizeof *t);
}

/* the map's row at stretch st (-4095..4095) */
static inline int map_read(uint16_t *row, int st, map_use *u)
{
    int pos = (st + 4096) * 32; /* 32 .. 262,112: points 0..32, 2^13 apart */
    u->row = row;
    u->at = (unsigned)(pos >> 13);
    u->w = pos & 8191;
    return (row[u->at] * (8192 - u->w) + row[u->at + 1] * u->w) >> 13;
}

static inline void map_learn(const map_use *u, int y)
{
    int target = y ? 65535 : 0;
    uint16_t *r = u->row;
    int d0 = ((target - r[u->at]) * (8192 - u->w)) >> 13, d1 = ((target - r[u->at + 1]) * u->w) >> 13;
    r[u->at] = (uint16_t)(r[u->at] + (d0 >> MAP_RATE));
    r[u->at + 1] = (uint16_t)(r[u->at + 1] + (d1 >> MAP_RATE));
}

/* the stretch of p / 2^16 (1..65535) */
static inline int stretch16(int p) { return stretch_ratio((uint32_t)p, 65536u - (uint32_t)p); }

static inline int clamp16(int p) { return p < 1 ? 1 : p > 65535 ? 65535 : p; }

struct lmz_tb {
    const lmz_tb_vocab *v;
    lmz_bytemodel *bm;
    lmz_bm_stream **bs;
    size_t streams;
    uint32_t **sum;        /* (streams) x (n + 1): each stream's table, its masses summed in byte order */
    uint8_t *ready;        /* (streams) lmz_tb_prepare filled the stream's sums for its next token */
    int32_t w[(SETS_BIT + SETS_STOP) * NX];
    /* refine: the maps (one allocation) and each stream's last byte */
    uint16_t *map, *m_order1, *m_place, *m_stop;
    uint8_t *last;
};

void lmz_tb_free(lmz_tb *h)
{
    if (!h) return;
    for (size_t i = 0; h->bs && i < h->streams; i++) lmz_bm_stream_free(h->bs[i]);
    free(h->bs);
    lmz_bytemodel_free(h->bm);
    for (size_t i = 0; h->sum && i < h->streams; i++) free(h->sum[i]);
    free(h->sum);
    free(h->ready);
    free(h->map);
    free(h->last);
    free(h);
}

size_t lmz_tb_refine_mem(void) { return (size_t)(MAP_ORDER1 + MAP_PLACE + MAP_STOP) * MAP_B * sizeof(uint16_t); }

lmz_tb *lmz_tb_new(const lmz_tb_vocab *v, unsigned table_bits, size_t streams, const size_t *text_bytes, int refine)
{
    pthread_once(&tables_once, tables_init);
    lmz_tb *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->v = v;
    h->streams = streams;
    size_t total = 0;
    for (size_t i = 0; i < streams; i++) total += text_bytes[i];
    h->bm = lmz_bytemodel_create_shared(lmz_bytemodel_table_bits(total, table_bits));
    h->bs = calloc(streams, sizeof *h->bs);
    h->sum = calloc(streams, sizeof *h->sum);
    h->ready = calloc(streams, 1);
    if (!h->bm || !h->bs || !h->sum || !h->ready) goto fail;
    for (size_t i = 0; i < streams; i++)
        if (!(h->bs[i] = lmz_bm_stream_new(h->bm, text_bytes[i])) ||
            !(h->sum[i] = malloc(((size_t)v->n + 1) * sizeof *h->sum[i])))
            goto fail;
    for (size_t i = 0; i < SETS_BIT + SETS_STOP; i++) h->w[i * NX] = 1 << 16; /* the table alone at first */
    if (refine) {
        if (!(h->map = malloc(lmz_tb_refine_mem())) || !(h->last = calloc(streams, 1))) goto fail;
        map_init(h->map, MAP_ORDER1 + MAP_PLACE + MAP_STOP);
        h->m_order1 = h->map;
        h->m_place = h->m_order1 + (size_t)MAP_ORDER1 * MAP_B;
        h->m_stop = h->m_place + (size_t)MAP_PLACE * MAP_B;
    }
    return h;
fail:
    lmz_tb_free(h);
    return NULL;
}

static inline int conf_of(int st) { return (st < 0 ? -st : st) >> 9; }

static inline int mix(const int32_t *w, const int32_t *x)
{
    int64_t s = 0;
    for (int i = 0; i < NX; i++) s += (int64_t)w[i] * x[i];
    int64_t d = s >> 16;
    d = d > ST_MAX ? ST_MAX : d < -ST_MAX ? -ST_MAX : d;
    return squash16[d + ST_MAX];
}

static inline void learn(int32_t *w, const int32_t *x, int p, int y)
{
    int64_t err = ((int64_t)y << 16) - p;
    for (int i = 0; i < NX; i++) {
        int64_t v = w[i] + ((x[i] * err) >> MIX_SHIFT);
        w[i] = (int32_t)(v > W_LIM ? W_LIM : v < -W_LIM ? -W_LIM : v);
    }
}

/* one binary decision: P(1) = p1 / 2^16 */
static inline int code_bit(lmz_rc_enc *enc, lmz_rc_dec *dec, int p1, int y, double *bits)
{
    if (!enc) return lmz_rc_decode_bit(dec, (uint32_t)p1);
    lmz_rc_encode_bit(enc, (uint32_t)p1, y);
    if (bits) *bits -= log2((y ? p1 : 65536 - p1) / 65536.0);
    return y;
}

void lmz_tb_prepare(lmz_tb *h, size_t s, const uint32_t *cum)
{
    const lmz_tb_vocab *v = h->v;
    const uint32_t n = v->n;
    uint32_t *S = h->sum[s];
    S[0] = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t t = (uint32_t)v->ord[i];
        S[i + 1] = S[i] + (cum[t + 1] - cum[t]);
    }
    h->ready[s] = 1;
}

void lmz_tb_prepare_freq(lmz_tb *h, size_t s, const uint32_t *freq)
{
    const lmz_tb_vocab *v = h->v;
    const uint32_t n = v->n;
    const int32_t *ord = v->ord;
    uint32_t *S = h->sum[s];
    S[0] = 0;
    for (uint32_t i = 0; i < n; i++) S[i + 1] = S[i] + freq[ord[i]];
    h->ready[s] = 1;
}

/* Encode tok (enc) or decode a token (dec) of stream si. */
static int32_t walk(lmz_tb *h, size_t si, const uint32_t *cum, int32_t tok, lmz_rc_enc *enc, lmz_rc_dec *dec,
                    double *bits)
{
    const lmz_tb_vocab *v = h->v;
    const uint32_t n = v->n;
    if (!h->ready[si]) lmz_tb_prepare(h, si, cum);
    h->ready[si] = 0;
    const uint32_t *S = h->sum[si];
    const uint8_t *ts = NULL;
    uint32_t tl = 0, r = 0;
    if (enc) {
        r = v->rank[tok];
        ts = v->str[r];
        tl = v->len[r];
    }
    lmz_bm_stream *bs = h->bs[si];
    uint32_t lo = 0, hi = n;
    for (uint32_t d = 0;; d++) {
        /* the tokens that end here come first in the run */
        uint32_t e = lo;
        while (e < hi && v->len[e] == d) e++;
        if (e > lo) {
            int stop = 1;
            if (e < hi) {
                int32_t x[NX] = {stretch_ratio(S[e] - S[lo], S[hi] - S[e]), 0, 256, 0};
                int32_t *w = h->w + (size_t)(SETS_BIT + conf_of(x[0]) * 4 + (d < 3 ? d : 3)) * NX;
                int p = mix(w, x), pc = p;
                map_use u = {NULL, 0, 0};
                if (h->map) { /* the mixer's and the map's, evenly */
                    uint16_t *row = h->m_stop + (size_t)((unsigned)h->last[si] << 4 | (d < 15 ? d : 15)) * MAP_B;
                    pc = clamp16((p + map_read(row, stretch16(p), &u)) >> 1);
                }
                stop = code_bit(enc, dec, pc, enc ? tl == d : 0, bits);
                learn(w, x, p, stop);
                if (h->map) map_learn(&u, stop);
            }
            if (stop) {
                uint32_t tot = S[e] - S[lo];
                if (e - lo == 1) return v->ord[lo];
                /* tokens of the same bytes: by the table alone */
                if (enc) {
                    lmz_rc_encode(enc, S[r] - S[lo], S[r + 1] - S[r], tot);
                    if (bits) *bits += log2((double)tot / (S[r + 1] - S[r]));
                    return tok;
                }
                uint32_t target = lmz_rc_decode_target(dec, tot);
                uint32_t k = lo;
                while (k + 1 < e && S[k + 1] - S[lo] <= target) k++;
                lmz_rc_decode_update(dec, S[k] - S[lo], S[k + 1] - S[k], tot);
                return v->ord[k];
            }
            lo = e;
        }
        /* byte d, most significant bit first */
        uint32_t c0 = 1;
        for (int k = 0; k < 8; k++) {
            uint32_t mid = byte_bound(v, lo, hi, d, ((c0 << 1 | 1) << (7 - k)) & 0xFF);
            uint32_t n0 = S[mid] - S[lo], n1 = S[hi] - S[mid];
            /* the byte model also takes the table's prediction as an input */
            int stl = n0 && n1 ? stretch_ratio(n1, n0) : n1 ? ST_MAX : -ST_MAX;
            int pb = lmz_bm_stream_predict(h->bm, bs, stl);
            int y;
            if (n0 && n1) {
                int32_t x[NX] = {stl, lmz_bm_stretch(pb), 256, 0};
                int32_t *w = h->w + (size_t)((conf_of(x[0]) * 8 + k) * 2 + (d == 0)) * NX;
                int p = mix(w, x), pc = p;
                map_use u1 = {NULL, 0, 0}, u2 = {NULL, 0, 0};
                if (h->map) { /* half the mixer's, a quarter each map's */
                    int st = stretch16(p);
                    unsigned c1 = (unsigned)h->last[si] << 8 | c0;
                    unsigned c2 = c0 | (unsigned)conf_of(stl) << 8 | (unsigned)(d == 0) << 11 | (unsigned)(d > 1) << 12;
                    int a1 = map_read(h->m_order1 + (size_t)c1 * MAP_B, st, &u1);
                    int a2 = map_read(h->m_place + (size_t)c2 * MAP_B, st, &u2);
                    pc = clamp16((2 * p + a1 + a2) >> 2);
                }
                y = code_bit(enc, dec, pc, enc ? (ts[d] >> (7 - k)) & 1 : 0, bits);
                learn(w, x, p, y);
                if (h->map) {
                    map_learn(&u1, y);
                    map_learn(&u2, y);
                }
            } else {
                y = n1 != 0; /* one side has no token */
            }
            if (lmz_bm_stream_update(h->bm, bs, y) != 0) return -1;
            if (y) lo = mid;
            else hi = mid;
            c0 = c0 << 1 | (uint32_t)y;
        }
        if (h->last) h->last[si] = (uint8_t)c0;
    }
}

int lmz_tb_encode(lmz_tb *h, size_t s, const uint32_t *cum, int32_t tok, lmz_rc_enc *rc, double *bits)
{
    return walk(h, s, cum, tok, rc, NULL, bits) < 0 ? -1 : 0;
}

int32_t lmz_tb_decode(lmz_tb *h, size_t s, const uint32_t *cum, lmz_rc_dec *rc)
{
    return walk(h, s, cum, 0, NULL, rc, NULL);
}
