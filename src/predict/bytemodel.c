/*
 * bytemodel.c — byte-level context mixing (see bytemodel.h).
 *
 * Probabilities are 12-bit (0..4095 = P(bit=1) * 4096) in the mixer domain,
 * logits ("stretch") are in units of 1/256 clamped to [-2047, 2047].
 * Direct counters (order 1, state maps, match) are 32-bit: the top 22 bits
 * are the probability, the low 10 bits count the updates seen so far (capped
 * per family), and the update rate is 1/(count + 1.5): fast for new
 * contexts, steady for old ones.
 */
#define _DEFAULT_SOURCE
#include "bytemodel.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* The per-bit work is integer only, so code compiled for AVX2 computes the
 * same bits as the baseline build; the loader picks the clone at run time. */
#include "../common/multiversion.h"

static uint32_t rate_tab[1024];   /* 65536 * 2 / (2n + 3) */

/* ======================================================================== */
/* logistic helpers                                                          */
/* ======================================================================== */

/* squash(d) = 4096 / (1 + e^(-d/256)), sampled every 128 and interpolated.
 * The table is fixed data, so no libm call can change it between machines. */
static const int16_t squash_tab[33] = {
    1,    2,    4,    6,    10,   17,   27,   45,   74,   120,  194,
    311,  488,  747,  1102, 1546, 2048, 2550, 2994, 3349, 3608, 3785,
    3902, 3976, 4022, 4051, 4069, 4079, 4086, 4090, 4092, 4094, 4095};

static int16_t squash_full[4096]; /* squash(d) for d = -2048..2047 */

static inline int squash_fast(int d)
{
    if (d > 2047) d = 2047;
    if (d < -2047) d = -2047;
    return squash_full[d + 2048];
}

static inline int squash(int d)
{
    if (d > 2047) d = 2047;
    if (d < -2047) d = -2047;
    int w = d & 127;
    int i = (d >> 7) + 16;
    return (squash_tab[i] * (128 - w) + squash_tab[i + 1] * w + 64) >> 7;
}

static int16_t stretch_tab[4096]; /* inverse of squash */

static void tables_init(void)
{
    for (int d = -2048; d < 2048; d++) squash_full[d + 2048] = (int16_t)squash(d);
    int pi = 0;
    for (int x = -2047; x <= 2047; x++) {
        int v = squash(x);
        for (int j = pi; j <= v; j++) stretch_tab[j] = (int16_t)x;
        pi = v + 1;
    }
    for (int j = pi; j < 4096; j++) stretch_tab[j] = 2047;
    for (int n = 0; n < 1024; n++) rate_tab[n] = (uint32_t)(131072 / (2 * n + 3));
}

static inline int stretch(int p) { return stretch_tab[p]; }

/* ======================================================================== */
/* counters                                                                  */
/* ======================================================================== */

#define CTR_INIT 0x80000000u /* p = 0.5, n = 0 */

static inline int ctr_p(uint32_t c) { return (int)(c >> 20); } /* 12-bit */

static inline void ctr_update(uint32_t *c, int y, uint32_t limit)
{
    uint32_t v = *c;
    uint32_t n = v & 1023;
    int32_t p = (int32_t)(v >> 10); /* 22-bit */
    int32_t target = y ? (1 << 22) - 1 : 0;
    int32_t delta = (int32_t)(((int64_t)(target - p) * rate_tab[n]) >> 16);
    p += delta;
    if (n < limit) n++;
    *c = ((uint32_t)p << 10) | n;
}

/* ======================================================================== */
/* bit histories                                                             */
/* ======================================================================== */

/* A context's history of one bit is an 8-bit state standing for a pair of
 * counts (n0, n1): a bit y adds one to n_y (at most HIST_CAP) and, when the
 * other count is above 2, roughly halves it, so old evidence fades. The
 * states reachable from (0, 0) are numbered breadth-first, 0 = empty. */
#define HIST_CAP 30
#define HIST_MAX 256

static uint8_t hist_next[HIST_MAX][2];
static uint8_t hist_n0[HIST_MAX], hist_n1[HIST_MAX];

static void hist_init(void)
{
    int n = 1;
    hist_n0[0] = hist_n1[0] = 0;
    for (int q = 0; q < n; q++) { /* q walks the breadth-first queue */
        for (int y = 0; y < 2; y++) {
            int c[2] = {hist_n0[q], hist_n1[q]};
            c[y] = c[y] < HIST_CAP ? c[y] + 1 : HIST_CAP;
            if (c[!y] > 2) c[!y] = c[!y] / 2 + 1;
            int id = -1;
            for (int k = 0; k < n; k++)
                if (hist_n0[k] == c[0] && hist_n1[k] == c[1]) { id = k; break; }
            if (id < 0) {
                id = n++;
                hist_n0[id] = (uint8_t)c[0];
                hist_n1[id] = (uint8_t)c[1];
            }
            hist_next[q][y] = (uint8_t)id;
        }
    }
    /* n is now 216: the states reachable with HIST_CAP 30 */
    (void)n;
}

/* The shared constant tables, made once whatever thread gets there first. */
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;
static void tables_and_histories_init(void)
{
    tables_init();
    hist_init();
}

/* The probability that a state's next bit is 1, learned per context family
 * (a "state map"): 32-bit counters as above, started from the counts. */
static void statemap_init(uint32_t *sm)
{
    for (int i = 0; i < HIST_MAX; i++) {
        uint32_t n0 = hist_n0[i], n1 = hist_n1[i];
        uint32_t p22 = (uint32_t)((((uint64_t)(2 * n1 + 1)) << 22) / (2 * (n0 + n1) + 2));
        sm[i] = p22 << 10;
    }
}

/* ======================================================================== */
/* mixer                                                                     */
/* ======================================================================== */

#define N_HASHED 6 /* o2 o3 o4 o6 word word+prev */
#define N_INPUTS (2 + N_HASHED + 3) /* o0, o1, hashed, match x2, bias */
#define N_INPUTS_PAD 16
#define N_MIX 3

/* Weights are 16.16 fixed point kept within +-16, so that every product and
 * the sum of 16 of them fit in 32 bits (and vectorise). */
#define W_MAX ((1 << 20) - 1)

/* Two 8-lane halves through the compiler's vector extension: AVX2 in the
 * AVX2 clone, SSE2 pairs in the baseline. Integer sums of terms below 2^27
 * cannot overflow, so the lane order does not change the result. */
typedef int32_t v8si __attribute__((vector_size(32)));

static inline int dot(const int32_t *restrict w, const int32_t *restrict x)
{
    v8si w0, w1, x0, x1;
    memcpy(&w0, w, sizeof w0);
    memcpy(&w1, w + 8, sizeof w1);
    memcpy(&x0, x, sizeof x0);
    memcpy(&x1, x + 8, sizeof x1);
    v8si s = (w0 >> 4) * x0 + (w1 >> 4) * x1;
    int32_t t = 0;
    for (int i = 0; i < 8; i++) t += s[i];
    return t >> 12;
}

static inline void train(int32_t *restrict w, const int32_t *restrict x, int err)
{
    const v8si e = {err, err, err, err, err, err, err, err};
    const v8si hi = {W_MAX, W_MAX, W_MAX, W_MAX, W_MAX, W_MAX, W_MAX, W_MAX};
    for (int h = 0; h < 16; h += 8) {
        v8si v, xv;
        memcpy(&v, w + h, sizeof v);
        memcpy(&xv, x + h, sizeof xv);
        v += (xv * e) >> 14;
        v8si over = v > hi, under = v < -hi; /* lanes of all ones where true */
        v = (v & ~over) | (hi & over);
        v = (v & ~under) | (-hi & under);
        memcpy(w + h, &v, sizeof v);
    }
}

/* ======================================================================== */
/* APM: maps (context, probability) to a refined probability                 */
/* ======================================================================== */

typedef struct {
    uint16_t *t; /* (contexts, 33) 16-bit probabilities */
    int idx;     /* entry chosen by the last prediction */
} apm;

static int apm_init(apm *a, size_t n)
{
    a->t = malloc(n * 33 * sizeof *a->t);
    if (!a->t) return -1;
    for (int j = 0; j < 33; j++) a->t[j] = (uint16_t)(squash((j - 16) * 128) * 16);
    for (size_t done = 1; done < n;) { /* copy the first row, doubling */
        size_t k = done < n - done ? done : n - done;
        memcpy(a->t + done * 33, a->t, k * 33 * sizeof *a->t);
        done += k;
    }
    a->idx = 0;
    return 0;
}

static inline int apm_p(apm *a, int pr, size_t cx)
{
    int s = stretch(pr) + 2048; /* 1..4095 */
    int lo = s >> 7, w = s & 127;
    const uint16_t *t = a->t + cx * 33;
    a->idx = (int)(cx * 33) + lo + (w >> 6);
    return (t[lo] * (128 - w) + t[lo + 1] * w) >> 11;
}

static inline void apm_update(apm *a, int y, int rate)
{
    int g = (y << 16) + (y << rate) - y - y;
    a->t[a->idx] = (uint16_t)(a->t[a->idx] + ((g - a->t[a->idx]) >> rate));
}

/* ======================================================================== */
/* the model                                                                 */
/* ======================================================================== */

#define MATCH_MIN 6
#define MATCH_VERIFY 64 /* bytes compared backwards for a new match */
#define LIMIT_LOW 250   /* count cap for orders 0-1 */
#define LIMIT_SM 1023   /* count cap for state maps */

/* What one stream of bytes has of its own: its history, its position in
 * the current byte and nibble, its contexts' slots and its match model. The
 * tables, counters, mixers and maps are the model's, shared by its streams. */
typedef struct {
    uint8_t *slot[N_HASHED];
    uint64_t ctx[N_HASHED];       /* context hashes of the current byte */
    uint64_t next_h[2][N_HASHED]; /* slot hashes for either value of the next bit */
    const uint8_t *buf;           /* bytes coded so far */
    size_t pos;
    uint32_t c0;                  /* 1 followed by the bits of the current byte */
    uint32_t nib;                 /* 1 followed by the bits of the current nibble */
    int bitpos;
    uint64_t c8;                  /* last 8 bytes, most recent in the low byte */
    uint64_t word, word1;         /* hashes of the current and the previous word */
    uint32_t *mtab;               /* match model: (1 << mbits) positions + 1, 0 = empty */
    uint32_t mmask;
    size_t mptr;                  /* predicted byte is buf[mptr] */
    uint32_t mlen;                /* 0 = no match */
} bm_ctx;

struct lmz_bytemodel {
    /* hashed contexts: (1 << bits) slots of 16 bytes: [0] check byte, [1..15]
     * the bit histories of a nibble's tree, node j = 1, 2..3, 4..7, 8..15 */
    uint8_t *table;
    size_t table_size;      /* bytes mapped */
    uint32_t slot_mask;
    uint32_t sm[N_HASHED][HIST_MAX]; /* state maps, one per context family */
    uint32_t *sm_cur[N_HASHED];

    uint32_t o0[256];       /* (c0) */
    uint32_t *o1;           /* (c1, c0) = 65536 counters */
    uint32_t *o1_cur;

    bm_ctx own;             /* the stream of lmz_bytemodel_encode / _decode */
    uint8_t *hist;          /* lmz_bytemodel_*_next: the bytes of the chain so far */
    size_t hist_cap;
    int chained;            /* own has started a chain */

    /* match model's confidence */
    int mbit;               /* predicted bit, or -1 */
    uint32_t msm[64 * 2];   /* (length bucket, predicted bit) counters */
    uint32_t *msm_cur;

    /* mixing */
    int32_t x[N_INPUTS_PAD];
    int32_t *w[N_MIX];      /* weight sets, each (sets, N_INPUTS_PAD) */
    int32_t *wsel[N_MIX];
    int32_t pm[N_MIX];      /* each mixer's output (stretch domain) */
    int32_t wf[N_MIX + 1];  /* final mixer */
    int32_t xf[N_MIX + 1];
    int pr_mix;             /* final mixer output probability */
    apm a1, a2;
    int pr;                 /* final probability of a 1 */
};

unsigned lmz_bytemodel_table_bits(size_t len, unsigned table_bits_max)
{
    unsigned b = LMZ_BM_TABLE_BITS_MIN;
    while (b < table_bits_max && ((size_t)1 << b) < len) b++;
    return b;
}

static unsigned match_bits(unsigned table_bits) { return table_bits - 2; }

/* A stream's match table, for a model of 2^table_bits slots. @return 0, or -1 */
static int match_alloc(bm_ctx *s, unsigned table_bits)
{
    size_t n = (size_t)1 << match_bits(table_bits);
    s->mtab = calloc(n, sizeof *s->mtab);
    s->mmask = (uint32_t)(n - 1);
    return s->mtab ? 0 : -1;
}

static const size_t mixer_sets[N_MIX] = {256, 64 * 8, 2048};

size_t lmz_bytemodel_mem(unsigned table_bits)
{
    size_t m = sizeof(lmz_bytemodel);
    m += ((size_t)1 << table_bits) * 16;
    m += 65536 * sizeof(uint32_t);
    m += ((size_t)1 << match_bits(table_bits)) * sizeof(uint32_t);
    for (int i = 0; i < N_MIX; i++) m += mixer_sets[i] * N_INPUTS_PAD * sizeof(int32_t);
    m += (256 + 65536) * 33 * sizeof(uint16_t);
    return m;
}

void lmz_bytemodel_free(lmz_bytemodel *m)
{
    if (!m) return;
    if (m->table) munmap(m->table, m->table_size);
    free(m->o1);
    free(m->own.mtab);
    free(m->hist);
    for (int i = 0; i < N_MIX; i++) free(m->w[i]);
    free(m->a1.t);
    free(m->a2.t);
    free(m);
}

/* The hashed table is touched at random, so it lives in anonymous memory
 * (zero pages come lazily) with transparent huge pages where the kernel offers
 * them: far fewer TLB misses. */
static uint8_t *table_alloc(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    if (bytes >= (2u << 20)) madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

/* own: the frame coder's stream (lmz_bytemodel_encode / _decode) gets its
 * match table; a model only for lmz_bm_stream's has none */
static lmz_bytemodel *model_new(unsigned table_bits, int own)
{
    if (table_bits < LMZ_BM_TABLE_BITS_MIN || table_bits > LMZ_BM_TABLE_BITS_MAX)
        return NULL;
    pthread_once(&tables_once, tables_and_histories_init);
    lmz_bytemodel *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    size_t slots = (size_t)1 << table_bits;
    m->table_size = slots * 16;
    m->table = table_alloc(m->table_size);
    m->o1 = malloc(65536 * sizeof *m->o1);
    int ok = m->table && m->o1 && (!own || match_alloc(&m->own, table_bits) == 0);
    for (int i = 0; i < N_MIX && ok; i++) {
        m->w[i] = malloc(mixer_sets[i] * N_INPUTS_PAD * sizeof(int32_t));
        ok = m->w[i] != NULL;
    }
    ok = ok && apm_init(&m->a1, 256) == 0 && apm_init(&m->a2, 65536) == 0;
    if (!ok) {
        lmz_bytemodel_free(m);
        return NULL;
    }
    m->slot_mask = (uint32_t)(slots - 1);
    for (int i = 0; i < 65536; i++) m->o1[i] = CTR_INIT;
    for (int i = 0; i < 256; i++) m->o0[i] = CTR_INIT;
    for (int i = 0; i < 128; i++) m->msm[i] = CTR_INIT;
    for (int i = 0; i < N_HASHED; i++) statemap_init(m->sm[i]);
    for (int k = 0; k < N_MIX; k++)
        for (size_t i = 0; i < mixer_sets[k] * N_INPUTS_PAD; i++)
            m->w[k][i] = (i % N_INPUTS_PAD) < N_INPUTS ? 20000 : 0;
    for (int k = 0; k < N_MIX; k++) m->wf[k] = 65536 / N_MIX;
    m->wf[N_MIX] = 0;
    m->mbit = -1;
    m->pr = 2048;
    return m;
}

lmz_bytemodel *lmz_bytemodel_create(unsigned table_bits) { return model_new(table_bits, 1); }

lmz_bytemodel *lmz_bytemodel_create_shared(unsigned table_bits) { return model_new(table_bits, 0); }

/* ---- hashing ------------------------------------------------------------ */

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ull;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dull;
    x ^= x >> 33;
    return x;
}

/* Find or claim the slot for hash h (two candidates, one cache line each). */
/* Slots are 16 bytes: a check byte and the 15 bit histories of a nibble's
 * tree (node j = 1, 2..3, 4..7, 8..15 at byte j). Four slots share a cache
 * line; a context may sit in any of them, the least used one is replaced. */
static inline uint8_t *slot_find(lmz_bytemodel *m, uint64_t h)
{
    uint8_t chk = (uint8_t)h;
    uint8_t *line = m->table + ((size_t)(h >> 32) & m->slot_mask & ~(size_t)3) * 16;
    for (int k = 0; k < 4; k++)
        if (line[k * 16] == chk && line[k * 16 + 1] != 0) return line + k * 16;
    int best = 0, best_n = 1 << 30;
    for (int k = 0; k < 4; k++) {
        uint8_t st = line[k * 16 + 1];
        int n = hist_n0[st] + hist_n1[st];
        if (n < best_n) { best_n = n; best = k; }
    }
    uint8_t *v = line + best * 16;
    memset(v, 0, 16);
    v[0] = chk;
    return v;
}

/* Hash the contexts with a salt and prefetch their slots into out[]. */
static inline void hash_prefetch(const lmz_bytemodel *m, const uint64_t *ctx, uint64_t salt,
                                 uint64_t *out)
{
    for (int i = 0; i < N_HASHED; i++) {
        /* one multiply: the high half (slot index) depends on every input
         * bit; folding it into the low half (tag) makes that depend on all */
        uint64_t x = (ctx[i] ^ salt) * 0xD6E8FEB86659FD93ull;
        out[i] = x ^ (x >> 32);
        uint32_t j = (uint32_t)(out[i] >> 32) & m->slot_mask;
        __builtin_prefetch(m->table + (size_t)(j & ~3u) * 16); /* the whole bucket */
    }
}

static inline void set_slots(lmz_bytemodel *m, bm_ctx *s, const uint64_t *h)
{
    for (int i = 0; i < N_HASHED; i++) s->slot[i] = slot_find(m, h[i]);
}

/* ---- byte boundary ------------------------------------------------------ */

static inline int is_word_byte(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 128;
}

/* match table index of the last MATCH_MIN (6) bytes */
static inline uint32_t match_hash(const bm_ctx *s, uint64_t c8)
{
    return (uint32_t)(((c8 & 0xFFFFFFFFFFFFull) * 0x9E3779B97F4A7C15ull) >> 40) & s->mmask;
}

static inline void word_step(int c, uint64_t *word, uint64_t *word1)
{
    if (is_word_byte(c)) {
        int lc = (c >= 'A' && c <= 'Z') ? c + 32 : c;
        *word = (*word + (uint64_t)lc + 1) * 0x2f0f3d7b1c4d5e69ull;
    } else if (*word) {
        *word1 = *word;
        *word = 0;
    }
}

/* the hashed contexts given the last 8 bytes and the word hashes */
static inline void contexts(uint64_t c8, uint64_t word, uint64_t word1, uint64_t *ctx)
{
    ctx[0] = (c8 & 0xFFFF) | 2ull << 56;
    ctx[1] = (c8 & 0xFFFFFF) | 3ull << 56;
    ctx[2] = (c8 & 0xFFFFFFFF) | 4ull << 56;
    ctx[3] = mix64(c8 & 0xFFFFFFFFFFFFull) + 6;
    ctx[4] = mix64(word + 7) ^ (c8 & 0xFF);
    ctx[5] = mix64(word ^ mix64(word1 + 11)) + 9;
}

/* Before the last bit of a byte: hash the contexts that follow each of the
 * two possible bytes and prefetch their slots, so the cache misses overlap
 * with the work of the last bit. */
static inline void prefetch_next_byte(lmz_bytemodel *m, bm_ctx *s)
{
    for (int y = 0; y < 2; y++) {
        int c = (int)(((s->c0 << 1) | (uint32_t)y) & 0xFF);
        uint64_t w = s->word, w1 = s->word1, ctx[N_HASHED];
        word_step(c, &w, &w1);
        uint64_t c8 = (s->c8 << 8) | (uint64_t)c;
        contexts(c8, w, w1, ctx);
        hash_prefetch(m, ctx, 0, s->next_h[y]);
        __builtin_prefetch(s->mtab + match_hash(s, c8));
    }
}

/* The same for the second nibble, one bit before it starts. */
static inline void prefetch_next_nibble(lmz_bytemodel *m, bm_ctx *s)
{
    for (int y = 0; y < 2; y++) {
        uint64_t c0 = (s->c0 << 1) | (uint32_t)y;
        hash_prefetch(m, s->ctx, c0 * 0x9E3779B97F4A7C15ull, s->next_h[y]);
    }
}

static void byte_update(bm_ctx *s, int c)
{
    s->c8 = (s->c8 << 8) | (uint64_t)c;
    s->pos++;
    word_step(c, &s->word, &s->word1);

    /* match model: extend, or look up a new candidate */
    if (s->mlen && s->buf[s->mptr] == c) {
        if (s->mlen < 65535) s->mlen++;
        s->mptr++;
    } else {
        s->mlen = 0;
    }
    if (s->pos >= MATCH_MIN) {
        uint32_t h = match_hash(s, s->c8);
        if (s->mlen == 0) {
            uint32_t cand = s->mtab[h];
            if (cand) {
                size_t p = cand; /* the byte after the earlier occurrence */
                uint32_t len = 0;
                while (len < MATCH_VERIFY && len < p && s->buf[p - 1 - len] == s->buf[s->pos - 1 - len])
                    len++;
                if (len >= MATCH_MIN) {
                    s->mlen = len;
                    s->mptr = p;
                }
            }
        }
        s->mtab[h] = (uint32_t)s->pos;
    }
    contexts(s->c8, s->word, s->word1, s->ctx);
}

static inline uint32_t match_bucket(uint32_t len)
{
    if (len < 16) return len;
    if (len < 64) return 16 + ((len - 16) >> 2);
    return len < 512 ? 28 + ((len - 64) >> 6) : 35;
}

/* ---- per bit ------------------------------------------------------------ */

static inline __attribute__((always_inline)) int predict(lmz_bytemodel *m, bm_ctx *s)
{
    int32_t *x = m->x;
    uint32_t c0 = s->c0, c1 = (uint32_t)(s->c8 & 0xFF);
    m->o1_cur = &m->o1[(c1 << 8) | c0];
    x[0] = stretch(ctr_p(*m->o1_cur));
    x[2 + N_HASHED] = stretch(ctr_p(m->o0[c0]));
    x[4 + N_HASHED] = 256;
    for (int i = 0; i < N_HASHED; i++) {
        m->sm_cur[i] = &m->sm[i][s->slot[i][s->nib]];
        x[1 + i] = stretch(ctr_p(*m->sm_cur[i]));
    }

    /* match: the expected bit, with a confidence learned per length */
    uint32_t mb = 0;
    m->mbit = -1;
    if (s->mlen) {
        int expect = s->buf[s->mptr] | 256;
        if ((uint32_t)(expect >> (8 - s->bitpos)) == c0) {
            m->mbit = (expect >> (7 - s->bitpos)) & 1;
            mb = match_bucket(s->mlen);
            m->msm_cur = &m->msm[mb * 2 + (uint32_t)m->mbit];
            int st = stretch(ctr_p(*m->msm_cur));
            x[1 + N_HASHED] = st;
            x[3 + N_HASHED] = m->mbit ? 256 : -256;
        } else {
            s->mlen = 0;
        }
    }
    if (m->mbit < 0) {
        x[1 + N_HASHED] = 0;
        x[3 + N_HASHED] = 0;
    }

    uint32_t ml = m->mbit < 0 ? 0 : (mb < 15 ? mb + 1 : 16 + (mb >> 3));
    m->wsel[0] = m->w[0] + c0 * N_INPUTS_PAD;
    m->wsel[1] = m->w[1] + ((size_t)(ml * 2 + (uint32_t)(m->mbit > 0)) * 8 + (size_t)s->bitpos) * N_INPUTS_PAD;
    m->wsel[2] = m->w[2] + ((size_t)(c1 << 3) | (size_t)s->bitpos) * N_INPUTS_PAD;
    for (int k = 0; k < N_MIX; k++) {
        int d = dot(m->wsel[k], x);
        if (d > 2047) d = 2047;
        if (d < -2047) d = -2047;
        m->pm[k] = d;
        m->xf[k] = d;
    }
    m->xf[N_MIX] = 256;
    int d = 0;
    {
        int64_t acc = 0;
        for (int k = 0; k <= N_MIX; k++) acc += (int64_t)m->wf[k] * m->xf[k];
        d = (int)(acc >> 16);
    }
    int p = squash_fast(d);
    m->pr_mix = p;

    int p1 = apm_p(&m->a1, p, c0);
    int p2 = apm_p(&m->a2, p, (size_t)(c0 | (c1 << 8)));
    p = (2 * p + p1 + p2 * 5 + 4) >> 3;
    if (p < 1) p = 1;
    if (p > 4095) p = 4095;
    m->pr = p;
    /* the next bit's APM rows and first mixer's weights, for either value of
     * this bit: their loads would otherwise stall the next prediction */
    {
        const uint16_t *r = m->a2.t + (size_t)((c0 * 2) | (c1 << 8)) * 33;
        __builtin_prefetch(r);
        __builtin_prefetch(r + 32);
        __builtin_prefetch(r + 64);
        __builtin_prefetch(m->w[0] + (size_t)(c0 * 2) * N_INPUTS_PAD);
        __builtin_prefetch(m->o1 + ((c1 << 8) | (c0 * 2)));
    }
    return p;
}

static inline __attribute__((always_inline)) void update(lmz_bytemodel *m, bm_ctx *s, int y)
{
    /* mixers */
    int err = ((y << 12) - m->pr_mix) * 2;
    for (int k = 0; k < N_MIX; k++) {
        int ek = ((y << 12) - squash_fast(m->pm[k])) * 6;
        train(m->wsel[k], m->x, ek);
    }
    for (int k = 0; k <= N_MIX; k++) m->wf[k] += (m->xf[k] * err) >> 14;
    apm_update(&m->a1, y, 7);
    apm_update(&m->a2, y, 7);

    /* counters */
    ctr_update(m->o1_cur, y, LIMIT_LOW);
    ctr_update(&m->o0[s->c0], y, LIMIT_LOW);
    for (int i = 0; i < N_HASHED; i++) {
        uint8_t *h = &s->slot[i][s->nib];
        ctr_update(m->sm_cur[i], y, LIMIT_SM);
        *h = hist_next[*h][y];
    }
    if (m->mbit >= 0) ctr_update(m->msm_cur, y, 1023);

    s->c0 = (s->c0 << 1) | (uint32_t)y;
    s->nib = (s->nib << 1) | (uint32_t)y;
    s->bitpos++;
    if (s->bitpos == 3) {
        prefetch_next_nibble(m, s);
    } else if (s->bitpos == 4) {
        s->nib = 1;
        set_slots(m, s, s->next_h[y]);
    } else if (s->bitpos == 7) {
        prefetch_next_byte(m, s);
    } else if (s->bitpos == 8) {
        byte_update(s, (int)(s->c0 & 0xFF));
        set_slots(m, s, s->next_h[y]);
        s->c0 = 1;
        s->nib = 1;
        s->bitpos = 0;
    }
}

static void start(lmz_bytemodel *m, bm_ctx *s, const uint8_t *buf)
{
    s->buf = buf;
    s->pos = 0;
    s->c0 = 1;
    s->nib = 1;
    s->bitpos = 0;
    byte_update(s, 0); /* a virtual leading zero byte gives every context a start */
    s->pos = 0;
    hash_prefetch(m, s->ctx, 0, s->next_h[0]);
    set_slots(m, s, s->next_h[0]);
}

/* the coding loop of the model's own stream (inlined into each clone) */
static inline __attribute__((always_inline)) void encode_bytes(lmz_bytemodel *m, lmz_rc_enc *rc,
                                                               const uint8_t *src, size_t n)
{
    bm_ctx *s = &m->own;
    for (size_t i = 0; i < n; i++) {
        int c = src[i];
        for (int b = 7; b >= 0; b--) {
            int y = (c >> b) & 1;
            lmz_rc_encode_bit(rc, (uint32_t)predict(m, s) << 4, y);
            update(m, s, y);
        }
    }
}

LMZ_CLONES_INT
void lmz_bytemodel_encode(lmz_bytemodel *m, lmz_rc_enc *rc, const uint8_t *src, size_t n)
{
    start(m, &m->own, src);
    encode_bytes(m, rc, src, n);
}

/* the decoding loop of the model's own stream (inlined into each clone):
 * @return 0, or -1 at the first sign of damage (decoding stops at once) */
static inline __attribute__((always_inline)) int decode_bytes(lmz_bytemodel *m, lmz_rc_dec *rc, uint8_t *dst,
                                                              size_t n)
{
    bm_ctx *s = &m->own;
    for (size_t i = 0; i < n; i++) {
        if (rc->overrun || rc->corrupt) return -1;
        for (int b = 7; b >= 0; b--) {
            int y = lmz_rc_decode_bit(rc, (uint32_t)predict(m, s) << 4);
            if (b == 0) dst[i] = (uint8_t)((s->c0 << 1) | (uint32_t)y);
            update(m, s, y);
        }
    }
    return 0;
}

LMZ_CLONES_INT
void lmz_bytemodel_decode(lmz_bytemodel *m, lmz_rc_dec *rc, uint8_t *dst, size_t n)
{
    start(m, &m->own, dst);
    decode_bytes(m, rc, dst, n); /* damaged: the caller drops dst */
}

/* ---- chains: buffers coded one after another as one ----------------------- */

/* Room for n more bytes of the chain: a chain that would pass
 * LMZ_BM_CHAIN_MAX starts again (empty history and match table; the
 * model's tables, counters, mixers and maps keep what they learned).
 * @return the place of the n bytes, or NULL when memory is short. */
static uint8_t *chain_room(lmz_bytemodel *m, size_t n)
{
    bm_ctx *s = &m->own;
    if (m->chained && (s->pos + n > LMZ_BM_CHAIN_MAX || s->pos + n < s->pos)) {
        m->chained = 0;
        memset(s->mtab, 0, ((size_t)s->mmask + 1) * sizeof *s->mtab);
        s->mlen = 0;
    }
    size_t have = m->chained ? s->pos : 0, want = have + n;
    if (want > m->hist_cap) {
        size_t cap = m->hist_cap ? m->hist_cap : 4096;
        while (cap < want) cap *= 2;
        uint8_t *h = realloc(m->hist, cap);
        if (!h) return NULL;
        m->hist = h;
        m->hist_cap = cap;
    }
    if (!m->chained) {
        start(m, s, m->hist);
        m->chained = 1;
    }
    s->buf = m->hist;
    return m->hist + have;
}

LMZ_CLONES_INT
int lmz_bytemodel_encode_next(lmz_bytemodel *m, lmz_rc_enc *rc, const uint8_t *src, size_t n)
{
    if (n == 0) return 0;
    uint8_t *h = chain_room(m, n);
    if (!h) return -1;
    memcpy(h, src, n); /* the match model reads only bytes before the one coded */
    encode_bytes(m, rc, src, n);
    return 0;
}

int lmz_bytemodel_learn_next(lmz_bytemodel *m, const uint8_t *src, size_t n)
{
    lmz_rc_enc rc;
    uint8_t none;
    lmz_rc_enc_init(&rc, &none, 0); /* writes nothing */
    return lmz_bytemodel_encode_next(m, &rc, src, n);
}

LMZ_CLONES_INT
int lmz_bytemodel_decode_next(lmz_bytemodel *m, lmz_rc_dec *rc, uint8_t *dst, size_t n)
{
    if (n == 0) return 0;
    uint8_t *h = chain_room(m, n);
    if (!h) return -1;
    if (decode_bytes(m, rc, h, n)) { /* damaged: the chain ends here */
        m->chained = 0;
        return 0;
    }
    memcpy(dst, h, n);
    return 0;
}

/* ======================================================================== */
/* streams over a shared model                                               */
/* ======================================================================== */

struct lmz_bm_stream {
    bm_ctx c;
    uint8_t *data; /* the bytes so far; c.buf points here */
    size_t cap;
};

lmz_bm_stream *lmz_bm_stream_new(lmz_bytemodel *m, size_t expect)
{
    lmz_bm_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cap = expect < 256 ? 256 : expect;
    s->data = calloc(s->cap, 1);
    if (!s->data || match_alloc(&s->c, lmz_bytemodel_table_bits(expect, LMZ_BM_TABLE_BITS_MAX)) != 0) {
        lmz_bm_stream_free(s);
        return NULL;
    }
    start(m, &s->c, s->data);
    return s;
}

void lmz_bm_stream_free(lmz_bm_stream *s)
{
    if (!s) return;
    free(s->data);
    free(s->c.mtab);
    free(s);
}

LMZ_CLONES_INT
int lmz_bm_stream_predict(lmz_bytemodel *m, lmz_bm_stream *s, int st)
{
    m->x[N_INPUTS] = st < -2047 ? -2047 : st > 2047 ? 2047 : st;
    return predict(m, &s->c);
}

LMZ_CLONES_INT
int lmz_bm_stream_update(lmz_bytemodel *m, lmz_bm_stream *s, int bit)
{
    bm_ctx *c = &s->c;
    if (c->bitpos == 7) { /* the byte completes: into the history before the match model reads it */
        if (c->pos == s->cap) {
            size_t cap = 2 * s->cap;
            uint8_t *d = realloc(s->data, cap);
            if (!d) return -1;
            s->data = d;
            s->cap = cap;
            c->buf = d;
        }
        s->data[c->pos] = (uint8_t)((c->c0 << 1) | (uint32_t)bit);
    }
    update(m, c, bit);
    return 0;
}

int lmz_bm_stretch(int p) { return stretch(p < 0 ? 0 : p > 4095 ? 4095 : p); }
