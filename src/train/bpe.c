/*
 * bpe.c — byte-level BPE training (bpe.h).
 *
 * Words are counted once; training works on the unique words, each with its
 * count. Pair counts live in a hash table; a max-heap holds (count, pair)
 * entries, updated lazily: an entry is pushed only when a pair's count rises
 * above the count last pushed for it, and a popped entry whose count is out
 * of date is pushed again with the current count. Each pair keeps the list
 * of words it occurs in, so a merge touches only those words: their old
 * pairs are taken out, the merge done, their new pairs put in.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "bpe.h"
#include "model/tokenizer.h"

__attribute__((format(printf, 3, 4))) static int errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

#define GROW(p, n, cap, init)                                                  \
    ((n) < (cap) ? 0 : grow_array((void **)&(p), &(cap), sizeof *(p), (init)))

static int grow_array(void **p, size_t *cap, size_t elem, size_t init)
{
    size_t c = *cap ? *cap * 2 : init;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* ======================================================================== */
/* byte strings -> index (words, token texts)                                */
/* ======================================================================== */

typedef struct {
    uint8_t *bytes;     /* every string, one after another */
    size_t len, cap;
    size_t *off;        /* (n + 1) */
    size_t n, cap_n;
    uint32_t *slot;     /* index + 1, 0 = empty */
    size_t mask;
} strset;

static uint64_t hash_bytes(const uint8_t *s, size_t n) { return XXH3_64bits(s, n); }

static void strset_free(strset *s)
{
    free(s->bytes);
    free(s->off);
    free(s->slot);
}

static int strset_rehash(strset *s, size_t size)
{
    uint32_t *slot = calloc(size, sizeof *slot);
    if (!slot) return -1;
    for (size_t i = 0; i < s->n; i++) {
        size_t h = (size_t)hash_bytes(s->bytes + s->off[i], s->off[i + 1] - s->off[i]) & (size_t)(size - 1);
        while (slot[h]) h = (h + 1) & (size - 1);
        slot[h] = (uint32_t)i + 1;
    }
    free(s->slot);
    s->slot = slot;
    s->mask = size - 1;
    return 0;
}

/* the index of str, added if new (*added = 1); -1 out of memory */
static long strset_put(strset *s, const uint8_t *str, size_t n, int *added)
{
    if (!s->slot && strset_rehash(s, 1 << 16) != 0) return -1;
    size_t h = (size_t)hash_bytes(str, n) & s->mask;
    for (; s->slot[h]; h = (h + 1) & s->mask) {
        size_t i = s->slot[h] - 1;
        if (s->off[i + 1] - s->off[i] == n && memcmp(s->bytes + s->off[i], str, n) == 0) {
            *added = 0;
            return (long)i;
        }
    }
    if (s->n >= UINT32_MAX - 1) return -1;
    if (s->len + n > s->cap) {
        size_t c = s->cap ? s->cap : 1 << 20;
        while (c < s->len + n) c *= 2;
        uint8_t *b = realloc(s->bytes, c);
        if (!b) return -1;
        s->bytes = b;
        s->cap = c;
    }
    if (s->n + 2 > s->cap_n && grow_array((void **)&s->off, &s->cap_n, sizeof *s->off, 1 << 12) != 0) return -1;
    if (s->n == 0) s->off[0] = 0;
    memcpy(s->bytes + s->len, str, n);
    s->len += n;
    s->off[++s->n] = s->len;
    s->slot[h] = (uint32_t)s->n;
    *added = 1;
    if (2 * s->n > s->mask && strset_rehash(s, 2 * (s->mask + 1)) != 0) return -1;
    return (long)(s->n - 1);
}

/* ======================================================================== */
/* pairs                                                                     */
/* ======================================================================== */

typedef struct {
    int64_t count, pushed;  /* occurrences now; the count of its newest heap entry */
    uint32_t *occ;          /* words it occurs in (may hold words it left since) */
    size_t n_occ, cap_occ;
    uint32_t a, b;
} pair;

typedef struct {
    int64_t count;
    uint32_t a, b;
} heap_ent;

typedef struct {
    pair *p;
    size_t n, cap;
    uint32_t *slot;    /* pair index + 1 */
    size_t mask;
    heap_ent *heap;
    size_t hn, hcap;
    int oom;
} pairs;

static uint64_t pair_hash(uint32_t a, uint32_t b) { return ((uint64_t)a << 32 | b) * 0x9E3779B97F4A7C15ull; }

static int pairs_rehash(pairs *ps, size_t size)
{
    uint32_t *slot = calloc(size, sizeof *slot);
    if (!slot) return -1;
    for (size_t i = 0; i < ps->n; i++) {
        size_t h = (size_t)(pair_hash(ps->p[i].a, ps->p[i].b) >> 20) & (size - 1);
        while (slot[h]) h = (h + 1) & (size - 1);
        slot[h] = (uint32_t)i + 1;
    }
    free(ps->slot);
    ps->slot = slot;
    ps->mask = size - 1;
    return 0;
}

static pair *pair_get(pairs *ps, uint32_t a, uint32_t b, int create)
{
    size_t h = (size_t)(pair_hash(a, b) >> 20) & ps->mask;
    for (; ps->slot[h]; h = (h + 1) & ps->mask) {
        pair *p = &ps->p[ps->slot[h] - 1];
        if (p->a == a && p->b == b) return p;
    }
    if (!create) return NULL;
    if (GROW(ps->p, ps->n, ps->cap, 1 << 16) != 0) return NULL;
    pair *p = &ps->p[ps->n++];
    memset(p, 0, sizeof *p);
    p->a = a;
    p->b = b;
    ps->slot[h] = (uint32_t)ps->n;
    if (2 * ps->n > ps->mask) {
        if (pairs_rehash(ps, 2 * (ps->mask + 1)) != 0) return NULL;
    }
    return &ps->p[ps->n - 1];
}

static int heap_before(const heap_ent *x, const heap_ent *y)
{
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

static void heap_push(pairs *ps, pair *p)
{
    if (GROW(ps->heap, ps->hn, ps->hcap, 1 << 16) != 0) {
        ps->oom = 1;
        return;
    }
    heap_ent e = {p->count, p->a, p->b};
    p->pushed = p->count;
    size_t i = ps->hn++;
    while (i > 0 && heap_before(&e, &ps->heap[(i - 1) / 2])) {
        ps->heap[i] = ps->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    ps->heap[i] = e;
}

static heap_ent heap_pop(pairs *ps)
{
    heap_ent top = ps->heap[0], last = ps->heap[--ps->hn];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= ps->hn) break;
        if (c + 1 < ps->hn && heap_before(&ps->heap[c + 1], &ps->heap[c])) c++;
        if (!heap_before(&ps->heap[c], &last)) break;
        ps->heap[i] = ps->heap[c];
        i = c;
    }
    if (ps->hn) ps->heap[i] = last;
    return top;
}

/* count += delta for pair (a, b) of word w; push when it rises above its
 * newest heap entry (push: not while the counts are first built) */
static void pair_add(pairs *ps, uint32_t a, uint32_t b, int64_t delta, uint32_t w, int push)
{
    pair *p = pair_get(ps, a, b, delta > 0);
    if (!p) {
        if (delta > 0) ps->oom = 1;
        return;
    }
    p->count += delta;
    if (delta <= 0) return;
    if (!(p->n_occ && p->occ[p->n_occ - 1] == w)) {
        if (GROW(p->occ, p->n_occ, p->cap_occ, 4) != 0) {
            ps->oom = 1;
            return;
        }
        p->occ[p->n_occ++] = w;
    }
    if (push && p->count > p->pushed) heap_push(ps, p);
}

/* ======================================================================== */
/* training                                                                  */
/* ======================================================================== */

typedef struct {
    strset words;        /* unique pre-tokenised words */
    uint64_t *wcount;    /* (words.n) occurrences */
    size_t cap_wcount;
    int32_t *sym;        /* every word's tokens, at the word's byte offset */
    uint32_t *slen;      /* (words.n) tokens in the word now */
    uint32_t *stamp;     /* (words.n) the last merge that touched the word */
    strset tokens;       /* token id -> bytes */
    struct { uint32_t a, b; } *merge; /* (n_merges) in the order made */
    size_t n_merges, cap_merges;
    pairs ps;
} bpe;

static void bpe_free(bpe *t)
{
    strset_free(&t->words);
    free(t->wcount);
    free(t->sym);
    free(t->slen);
    free(t->stamp);
    strset_free(&t->tokens);
    free(t->merge);
    for (size_t i = 0; i < t->ps.n; i++) free(t->ps.p[i].occ);
    free(t->ps.p);
    free(t->ps.slot);
    free(t->ps.heap);
}

static int count_words(bpe *t, const lmz_corpus *c, uint64_t *n_words)
{
    size_t *ends = NULL, cap = 0;
    int rc = 0;
    for (size_t d = 0; d < c->n_docs && rc == 0; d++) {
        const uint8_t *s = c->text + c->off[d];
        size_t n = c->off[d + 1] - c->off[d];
        if (n + 1 > cap) {
            free(ends);
            cap = n + 1;
            if (!(ends = malloc(cap * sizeof *ends))) return -1;
        }
        long k = lmz_pretokenize_gpt2(s, n, ends, cap);
        if (k < 0) {
            rc = -1;
            break;
        }
        size_t a = 0;
        for (long i = 0; i < k; i++) {
            int added;
            long w = strset_put(&t->words, s + a, ends[i] - a, &added);
            if (w < 0 || (added && GROW(t->wcount, (size_t)w, t->cap_wcount, 1 << 12) != 0)) {
                rc = -1;
                break;
            }
            if (added) t->wcount[w] = 0;
            t->wcount[w]++;
            a = ends[i];
        }
        *n_words += (uint64_t)k;
    }
    free(ends);
    return rc;
}

/* replace every (a, b) in word w (left to right) by tok, moving its pairs */
static void merge_word(bpe *t, uint32_t w, uint32_t a, uint32_t b, uint32_t tok)
{
    int32_t *s = t->sym + t->words.off[w];
    uint32_t n = t->slen[w];
    int64_t cw = (int64_t)t->wcount[w];
    int found = 0;
    for (uint32_t i = 0; i + 1 < n && !found; i++) found = (uint32_t)s[i] == a && (uint32_t)s[i + 1] == b;
    if (!found) return; /* the word left this pair in an earlier merge */
    for (uint32_t i = 0; i + 1 < n; i++) pair_add(&t->ps, (uint32_t)s[i], (uint32_t)s[i + 1], -cw, w, 1);
    uint32_t o = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i + 1 < n && (uint32_t)s[i] == a && (uint32_t)s[i + 1] == b) {
            s[o++] = (int32_t)tok;
            i++;
        } else {
            s[o++] = s[i];
        }
    }
    t->slen[w] = o;
    for (uint32_t i = 0; i + 1 < o; i++) pair_add(&t->ps, (uint32_t)s[i], (uint32_t)s[i + 1], cw, w, 1);
}

static int run_merges(bpe *t, uint32_t target, int verbose)
{
    pairs *ps = &t->ps;
    while (ps->hn && t->tokens.n < target && !ps->oom) {
        heap_ent e = heap_pop(ps);
        pair *p = pair_get(ps, e.a, e.b, 0);
        if (!p) continue;
        if (p->count != e.count) {
            if (e.count == p->pushed) {  /* the newest entry was out of date */
                if (p->count >= 2) heap_push(ps, p);
                else p->pushed = p->count;
            }
            continue;
        }
        if (p->count < 2) break;
        /* the new token (or the one these bytes already make) */
        uint8_t buf[4096];
        size_t la = t->tokens.off[e.a + 1] - t->tokens.off[e.a], lb = t->tokens.off[e.b + 1] - t->tokens.off[e.b];
        uint8_t *cat = la + lb <= sizeof buf ? buf : malloc(la + lb);
        if (!cat) return -1;
        memcpy(cat, t->tokens.bytes + t->tokens.off[e.a], la);
        memcpy(cat + la, t->tokens.bytes + t->tokens.off[e.b], lb);
        int added;
        long tok = strset_put(&t->tokens, cat, la + lb, &added);
        if (cat != buf) free(cat);
        if (tok < 0) return -1;
        if (GROW(t->merge, t->n_merges, t->cap_merges, 1024) != 0) return -1;
        t->merge[t->n_merges].a = e.a;
        t->merge[t->n_merges].b = e.b;
        t->n_merges++;
        /* the words: take the list (the pair cannot come back: its parts
         * only ever merge into new tokens) */
        uint32_t *occ = p->occ;
        size_t n_occ = p->n_occ;
        p->occ = NULL;
        p->n_occ = p->cap_occ = 0;
        uint32_t stamp = (uint32_t)t->n_merges;
        for (size_t i = 0; i < n_occ; i++) {
            uint32_t w = occ[i];
            if (t->stamp[w] == stamp) continue;
            t->stamp[w] = stamp;
            merge_word(t, w, e.a, e.b, (uint32_t)tok);
        }
        free(occ);
        if (verbose && t->n_merges % 1000 == 0)
            fprintf(stderr, "\rdsrn tokenizer: %zu merges, %zu tokens", t->n_merges, t->tokens.n);
    }
    if (verbose) fprintf(stderr, "\n");
    return ps->oom ? -1 : 0;
}

/* the token's bytes in GPT-2's printable byte characters (UTF-8) */
static size_t mapped_text(const uint8_t *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b = s[i], u = b;
        if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
            uint32_t k = 0; /* the non-printable bytes map to 256 + their rank */
            for (uint32_t x = 0; x < b; x++)
                if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) k++;
            u = 256 + k;
        }
        if (u < 0x80) {
            out[o++] = (char)u;
        } else {
            out[o++] = (char)(0xC0 | u >> 6);
            out[o++] = (char)(0x80 | (u & 0x3F));
        }
    }
    return o;
}

static int write_tokenizer(const bpe *t, lmz_gguf_writer *w)
{
    size_t n = t->tokens.n + 1; /* + <|endoftext|> */
    char **text = calloc(n, sizeof *text);
    size_t *len = calloc(n, sizeof *len);
    int32_t *type = malloc(n * sizeof *type);
    char **merges = calloc(t->n_merges ? t->n_merges : 1, sizeof *merges);
    size_t *mlen = calloc(t->n_merges ? t->n_merges : 1, sizeof *mlen);
    int rc = text && len && type && merges && mlen ? 0 : -1;
    for (size_t i = 0; i < t->tokens.n && rc == 0; i++) {
        size_t bl = t->tokens.off[i + 1] - t->tokens.off[i];
        if (!(text[i] = malloc(2 * bl + 1))) rc = -1;
        else len[i] = mapped_text(t->tokens.bytes + t->tokens.off[i], bl, text[i]);
        type[i] = 1;
    }
    if (rc == 0) {
        text[n - 1] = (char *)"<|endoftext|>";
        len[n - 1] = strlen(text[n - 1]);
        type[n - 1] = 3;
    }
    for (size_t i = 0; i < t->n_merges && rc == 0; i++) {
        uint32_t a = t->merge[i].a, b = t->merge[i].b;
        size_t la = len[a], lb = len[b];
        if (!(merges[i] = malloc(la + lb + 1))) {
            rc = -1;
            break;
        }
        memcpy(merges[i], text[a], la);
        merges[i][la] = ' ';
        memcpy(merges[i] + la + 1, text[b], lb);
        mlen[i] = la + lb + 1;
    }
    if (rc == 0) {
        lmz_gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
        lmz_gguf_w_str(w, "tokenizer.ggml.pre", "gpt2");
        lmz_gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)text, n, len);
        lmz_gguf_w_arr_i32(w, "tokenizer.ggml.token_type", type, n);
        lmz_gguf_w_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges, t->n_merges, mlen);
        lmz_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)(n - 1));
        lmz_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(n - 1));
    }
    if (text)
        for (size_t i = 0; i + 1 < n; i++) free(text[i]);
    if (merges)
        for (size_t i = 0; i < t->n_merges; i++) free(merges[i]);
    free(text);
    free(len);
    free(type);
    free(merges);
    free(mlen);
    return rc;
}

int lmz_bpe_train(const lmz_corpus *c, const lmz_bpe_opts *o, lmz_gguf_writer *w, lmz_bpe_stats *stats,
                  char *err, size_t errlen)
{
    if (o->vocab < LMZ_BPE_MIN_VOCAB || o->vocab > LMZ_BPE_MAX_VOCAB)
        return errf(err, errlen, "vocabulary size %u is not %u..%u", o->vocab, LMZ_BPE_MIN_VOCAB, LMZ_BPE_MAX_VOCAB);
    bpe t;
    memset(&t, 0, sizeof t);
    memset(stats, 0, sizeof *stats);
    int rc = -1;
    if (count_words(&t, c, &stats->n_words) != 0) goto out;
    size_t nw = t.words.n;
    stats->n_unique_words = nw;
    if (o->verbose)
        fprintf(stderr, "dsrn tokenizer: %llu words, %zu distinct\n", (unsigned long long)stats->n_words, nw);
    t.sym = malloc((t.words.len ? t.words.len : 1) * sizeof *t.sym);
    t.slen = malloc((nw ? nw : 1) * sizeof *t.slen);
    t.stamp = calloc(nw ? nw : 1, sizeof *t.stamp);
    if (!t.sym || !t.slen || !t.stamp || pairs_rehash(&t.ps, 1 << 16) != 0) goto out;
    for (uint32_t b = 0; b < 256; b++) {
        uint8_t byte = (uint8_t)b;
        int added;
        if (strset_put(&t.tokens, &byte, 1, &added) != (long)b) goto out;
    }
    for (size_t i = 0; i < nw; i++) {
        size_t a = t.words.off[i], n = t.words.off[i + 1] - a;
        for (size_t k = 0; k < n; k++) t.sym[a + k] = t.words.bytes[a + k];
        t.slen[i] = (uint32_t)n;
        for (size_t k = 0; k + 1 < n; k++)
            pair_add(&t.ps, t.words.bytes[a + k], t.words.bytes[a + k + 1], (int64_t)t.wcount[i], (uint32_t)i, 0);
    }
    for (size_t i = 0; i < t.ps.n; i++)
        if (t.ps.p[i].count >= 2) heap_push(&t.ps, &t.ps.p[i]);
    if (t.ps.oom || run_merges(&t, o->vocab - 1, o->verbose) != 0) goto out;
    if (write_tokenizer(&t, w) != 0) goto out;
    stats->n_tokens = (uint32_t)t.tokens.n + 1;
    stats->n_merges = (uint32_t)t.n_merges;
    rc = 0;
out:
    bpe_free(&t);
    if (rc) errf(err, errlen, "%s", "out of memory");
    return rc;
}
