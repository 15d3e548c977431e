/* tokenizer.c — byte-level BPE; see tokenizer.h. */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "unicode_tables.h"

/* ======================================================================== */
/* unicode classes                                                           */
/* ======================================================================== */

#define CP_INVALID 0xFFFFFFFFu /* a byte that is not part of valid UTF-8 */

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

enum { CL_OTHER = 0, CL_LETTER = 1, CL_NUMBER = 2, CL_SPACE = 3 };
enum { PRE_GPT2, PRE_SMOLLM, PRE_LLAMA3, PRE_QWEN2 };

/* Unicode White_Space, as \s in the pre-tokeniser's patterns */
static int is_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static int classify(uint32_t c)
{
    if (c == CP_INVALID) return CL_OTHER;
    if (c < 0x80) {
        if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return CL_LETTER;
        if (c >= '0' && c <= '9') return CL_NUMBER;
        return is_space(c) ? CL_SPACE : CL_OTHER;
    }
    if (is_space(c)) return CL_SPACE;
    if (in_ranges(lmz_uni_letter, sizeof lmz_uni_letter / sizeof *lmz_uni_letter, c)) return CL_LETTER;
    if (in_ranges(lmz_uni_number, sizeof lmz_uni_number / sizeof *lmz_uni_number, c)) return CL_NUMBER;
    return CL_OTHER;
}

/* Decode one code point at s[0..n); *len = bytes used (1 for invalid). */
static uint32_t utf8_next(const uint8_t *s, size_t n, size_t *len)
{
    uint32_t c = s[0];
    *len = 1;
    if (c < 0x80) return c;
    size_t k;
    uint32_t min;
    if ((c & 0xE0) == 0xC0) { k = 2; c &= 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { k = 3; c &= 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { k = 4; c &= 0x07; min = 0x10000; }
    else return CP_INVALID;
    if (k > n) return CP_INVALID;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return CP_INVALID;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return CP_INVALID;
    *len = k;
    return c;
}

static size_t utf8_put(uint32_t c, char *o)
{
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xC0 | (c >> 6)); o[1] = (char)(0x80 | (c & 0x3F)); return 2; }
    o[0] = (char)(0xE0 | (c >> 12));
    o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[2] = (char)(0x80 | (c & 0x3F));
    return 3;
}

/* ======================================================================== */
/* GPT-2 byte map: every byte is a printable character                        */
/* ======================================================================== */

static void byte_map(uint32_t b2u[256])
{
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        b2u[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
    }
}

/* ======================================================================== */
/* hash maps                                                                 */
/* ======================================================================== */

/* text -> id, open addressing over token texts */
typedef struct {
    int32_t *slot; /* id or -1 */
    uint32_t mask;
} strmap;

typedef struct {
    uint64_t key;   /* left << 32 | right, +1 so 0 means empty */
    uint32_t rank;
    int32_t result;
} merge_ent;

struct lmz_tokenizer {
    uint32_t n_vocab;
    char **text;          /* token texts as stored (mapped form) */
    size_t *text_len;
    uint8_t *bytes;       /* all tokens' decoded bytes */
    size_t *bytes_off;    /* n_vocab + 1 */
    int32_t *type;
    strmap map;
    merge_ent *merges;
    uint32_t merge_mask;
    int32_t byte_tok[256];
    int32_t hex_tok[16];
    int32_t esc, bos, eos;
    int pre;              /* PRE_GPT2, PRE_SMOLLM, PRE_LLAMA3, PRE_QWEN2 */
    int spm;              /* SentencePiece (tokenizer model "llama") */
    int add_space;        /* SPM: a space before the text (dropped again on decoding) */
    float *score;         /* SPM: merge priority of each token */
    int32_t *user;        /* SPM: the user-defined tokens, longest text first (Gemma 3's runs of
                             spaces and newlines, HTML tags), matched before the pieces */
    size_t n_user;
};

static uint64_t h64(const void *p, size_t n) { return XXH64(p, n, 0x6c6d7a); }

static int32_t map_get(const lmz_tokenizer *t, const char *s, size_t n)
{
    uint32_t i = (uint32_t)h64(s, n) & t->map.mask;
    for (;;) {
        int32_t id = t->map.slot[i];
        if (id < 0) return -1;
        if (t->text_len[id] == n && memcmp(t->text[id], s, n) == 0) return id;
        i = (i + 1) & t->map.mask;
    }
}

static const merge_ent *merge_get(const lmz_tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    uint32_t i = (uint32_t)(h64(&key, 8)) & t->merge_mask;
    for (;;) {
        const merge_ent *e = &t->merges[i];
        if (e->key == 0) return NULL;
        if (e->key == key) return e;
        i = (i + 1) & t->merge_mask;
    }
}

/* ======================================================================== */
/* loading                                                                   */
/* ======================================================================== */

void lmz_tokenizer_free(lmz_tokenizer *t)
{
    if (!t) return;
    if (t->text)
        for (uint32_t i = 0; i < t->n_vocab; i++) free(t->text[i]);
    free(t->text);
    free(t->text_len);
    free(t->bytes);
    free(t->bytes_off);
    free(t->type);
    free(t->map.slot);
    free(t->merges);
    free(t->score);
    free(t->user);
    free(t);
}

#define SPM_SPACE "\xe2\x96\x81" /* U+2581, SentencePiece's space */

static const lmz_tokenizer *user_sort_t;

/* longest decoded text first, then the lower id */
static int user_cmp(const void *a, const void *b)
{
    const lmz_tokenizer *t = user_sort_t;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    size_t lx = t->bytes_off[x + 1] - t->bytes_off[x], ly = t->bytes_off[y + 1] - t->bytes_off[y];
    if (lx != ly) return lx > ly ? -1 : 1;
    return x < y ? -1 : 1;
}

/* SPM: the user-defined tokens (type 4) with some text, longest first.
 * @return 0, or -1 when memory is short */
static int user_tokens(lmz_tokenizer *t)
{
    size_t n = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++) n += t->type[i] == 4 && t->bytes_off[i + 1] > t->bytes_off[i];
    if (!n) return 0;
    t->user = malloc(n * sizeof *t->user);
    if (!t->user) return -1;
    for (uint32_t i = 0; i < t->n_vocab; i++)
        if (t->type[i] == 4 && t->bytes_off[i + 1] > t->bytes_off[i]) t->user[t->n_user++] = (int32_t)i;
    user_sort_t = t; /* (loading is not reentrant on one tokenizer; the order is total) */
    qsort(t->user, t->n_user, sizeof *t->user, user_cmp);
    user_sort_t = NULL;
    return 0;
}

/* SPM: the id of a piece a merge may produce (normal or user-defined), or -1 */
static int32_t spm_id(const lmz_tokenizer *t, const char *s, size_t n)
{
    int32_t id = map_get(t, s, n);
    return id >= 0 && (t->type[id] == 1 || t->type[id] == 4) ? id : -1;
}

static int load_fail(lmz_tokenizer *t, char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    lmz_tokenizer_free(t);
    return -1;
}

static int32_t special_id(const lmz_gguf *g, const char *key, uint32_t n)
{
    uint64_t v;
    if (lmz_gguf_get_u64(g, key, &v) != 0 || v >= n) return -1;
    return (int32_t)v;
}

int lmz_tokenizer_load(const lmz_gguf *g, lmz_tokenizer **out, char *err, size_t errlen)
{
    *out = NULL;
    lmz_str model, pre = {"default", 7};
    if (lmz_gguf_get_str(g, "tokenizer.ggml.model", &model) != 0)
        return load_fail(NULL, err, errlen, "no tokenizer.ggml.model in the file");
    int spm = lmz_str_eq(model, "llama");
    if (!lmz_str_eq(model, "gpt2") && !spm) {
        snprintf(err, errlen,
                 "tokenizer model '%.*s' is not supported (byte-level BPE 'gpt2' and SentencePiece 'llama' are)",
                 (int)(model.len > 32 ? 32 : model.len), model.ptr);
        return LMZ_TOKENIZER_UNSUPPORTED;
    }
    lmz_gguf_get_str(g, "tokenizer.ggml.pre", &pre);
    int kind;
    if (spm) kind = PRE_GPT2; /* not used */
    else if (lmz_str_eq(pre, "smollm")) kind = PRE_SMOLLM;
    else if (lmz_str_eq(pre, "gpt2") || lmz_str_eq(pre, "default")) kind = PRE_GPT2;
    else if (lmz_str_eq(pre, "llama-bpe") || lmz_str_eq(pre, "llama3") || lmz_str_eq(pre, "llama-v3"))
        kind = PRE_LLAMA3;
    else if (lmz_str_eq(pre, "qwen2"))
        kind = PRE_QWEN2;
    else {
        snprintf(err, errlen, "pre-tokenizer '%.*s' is not supported (gpt2, default, smollm, llama-bpe, qwen2 are)",
                 (int)(pre.len > 32 ? 32 : pre.len), pre.ptr);
        return LMZ_TOKENIZER_UNSUPPORTED;
    }
    const lmz_gguf_kv *toks = lmz_gguf_find(g, "tokenizer.ggml.tokens");
    if (!toks || toks->type != LMZ_GGUF_ARRAY || toks->elem_type != LMZ_GGUF_STRING || toks->count == 0 ||
        toks->count > (1u << 24))
        return load_fail(NULL, err, errlen, "tokenizer.ggml.tokens missing or not 1..2^24 strings");
    const lmz_gguf_kv *merges = lmz_gguf_find(g, "tokenizer.ggml.merges");
    if (merges && (merges->type != LMZ_GGUF_ARRAY || merges->elem_type != LMZ_GGUF_STRING))
        return load_fail(NULL, err, errlen, "tokenizer.ggml.merges is not an array of strings");
    const lmz_gguf_kv *types = lmz_gguf_find(g, "tokenizer.ggml.token_type");
    if (types && (types->type != LMZ_GGUF_ARRAY || types->elem_type != LMZ_GGUF_INT32 ||
                  types->count != toks->count))
        return load_fail(NULL, err, errlen, "tokenizer.ggml.token_type does not match the tokens");

    const lmz_gguf_kv *scores = lmz_gguf_find(g, "tokenizer.ggml.scores");
    if (spm && scores && (scores->type != LMZ_GGUF_ARRAY || scores->elem_type != LMZ_GGUF_FLOAT32 ||
                          scores->count != toks->count))
        return load_fail(NULL, err, errlen, "tokenizer.ggml.scores does not match the tokens");

    lmz_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return load_fail(NULL, err, errlen, "out of memory");
    uint32_t n = (uint32_t)toks->count;
    t->n_vocab = n;
    t->pre = kind;
    t->spm = spm;
    if (spm) {
        const lmz_gguf_kv *asp = lmz_gguf_find(g, "tokenizer.ggml.add_space_prefix");
        t->add_space = !(asp && asp->type == LMZ_GGUF_BOOL && asp->data[0] == 0);
        t->score = calloc(n, sizeof *t->score);
        if (!t->score) return load_fail(t, err, errlen, "out of memory");
        for (uint32_t i = 0; scores && i < n; i++) { /* little-endian binary32 */
            const uint8_t *d = scores->data + 4 * (size_t)i;
            uint32_t u = d[0] | d[1] << 8 | d[2] << 16 | (uint32_t)d[3] << 24;
            memcpy(&t->score[i], &u, 4);
        }
    }
    t->text = calloc(n, sizeof *t->text);
    t->text_len = calloc(n, sizeof *t->text_len);
    t->bytes_off = calloc((size_t)n + 1, sizeof *t->bytes_off);
    t->type = calloc(n, sizeof *t->type);
    uint32_t cap = 1;
    while (cap < 2 * n) cap *= 2;
    t->map.slot = malloc((size_t)cap * sizeof *t->map.slot);
    t->map.mask = cap - 1;
    if (!t->text || !t->text_len || !t->bytes_off || !t->type || !t->map.slot)
        return load_fail(t, err, errlen, "out of memory");
    memset(t->map.slot, 0xFF, (size_t)cap * sizeof *t->map.slot);

    uint32_t b2u[256], u2b[512];
    byte_map(b2u);
    memset(u2b, 0xFF, sizeof u2b);
    for (int b = 0; b < 256; b++) u2b[b2u[b]] = (uint32_t)b;

    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        lmz_str s = lmz_gguf_arr_str(toks, i);
        t->text[i] = malloc(s.len + 1);
        if (!t->text[i]) return load_fail(t, err, errlen, "out of memory");
        memcpy(t->text[i], s.ptr, s.len);
        t->text[i][s.len] = 0;
        t->text_len[i] = s.len;
        total += s.len;
        t->type[i] = types ? (int32_t)(((const uint8_t *)types->data)[4 * i] |
                                       ((const uint8_t *)types->data)[4 * i + 1] << 8 |
                                       ((const uint8_t *)types->data)[4 * i + 2] << 16 |
                                       (uint32_t)((const uint8_t *)types->data)[4 * i + 3] << 24)
                           : 1;
        uint32_t h = (uint32_t)h64(s.ptr, s.len) & t->map.mask;
        int dup = 0;
        while (t->map.slot[h] >= 0) {
            int32_t o = t->map.slot[h];
            if (t->text_len[o] == s.len && memcmp(t->text[o], s.ptr, s.len) == 0) { dup = 1; break; }
            h = (h + 1) & t->map.mask;
        }
        if (!dup) t->map.slot[h] = (int32_t)i; /* the first id of a duplicated text wins */
    }
    /* decoded bytes: each character of the text maps back to one byte
     * (SPM: "<0xXX>" byte tokens are that byte, U+2581 is a space) */
    t->bytes = malloc(total ? total : 1);
    if (!t->bytes) return load_fail(t, err, errlen, "out of memory");
    size_t o = 0;
    for (uint32_t i = 0; i < n; i++) {
        t->bytes_off[i] = o;
        if (spm) {
            const char *s = t->text[i];
            size_t len = t->text_len[i];
            unsigned v;
            if (t->type[i] == 6 && len == 6 && sscanf(s, "<0x%2X>", &v) == 1) {
                t->bytes[o++] = (uint8_t)v;
                continue;
            }
            for (size_t k = 0; k < len;) {
                if (len - k >= 3 && !memcmp(s + k, SPM_SPACE, 3)) {
                    t->bytes[o++] = ' ';
                    k += 3;
                } else {
                    t->bytes[o++] = (uint8_t)s[k++];
                }
            }
            continue;
        }
        const uint8_t *s = (const uint8_t *)t->text[i];
        size_t len = t->text_len[i], k = 0, start = o;
        int ok = 1;
        while (k < len) {
            size_t l;
            uint32_t c = utf8_next(s + k, len - k, &l);
            if (c == CP_INVALID || c >= 512 || u2b[c] == 0xFFFFFFFFu) { ok = 0; break; }
            t->bytes[o++] = (uint8_t)u2b[c];
            k += l;
        }
        if (!ok) { /* not in byte form (e.g. some special tokens): keep the raw text */
            o = start;
            memcpy(t->bytes + o, s, len);
            o += len;
        }
    }
    t->bytes_off[n] = o;

    for (int b = 0; b < 256; b++) {
        char buf[8];
        size_t l = spm ? (size_t)snprintf(buf, sizeof buf, "<0x%02X>", b) : utf8_put(b2u[b], buf);
        t->byte_tok[b] = map_get(t, buf, l);
        if (t->byte_tok[b] >= 0 && (spm ? t->type[t->byte_tok[b]] != 6 : t->type[t->byte_tok[b]] == 3))
            t->byte_tok[b] = -1;
    }
    if (spm && spm_id(t, SPM_SPACE, 3) < 0) {
        snprintf(err, errlen, "%s", "SentencePiece vocabulary without a U+2581 token: not supported");
        lmz_tokenizer_free(t);
        return LMZ_TOKENIZER_UNSUPPORTED;
    }
    for (int d = 0; d < 16; d++) {
        t->hex_tok[d] = t->byte_tok[(uint8_t)"0123456789abcdef"[d]];
    }
    if (spm && user_tokens(t) != 0) return load_fail(t, err, errlen, "out of memory");
    t->bos = special_id(g, "tokenizer.ggml.bos_token_id", n);
    t->eos = special_id(g, "tokenizer.ggml.eos_token_id", n);
    int32_t unk = special_id(g, "tokenizer.ggml.unknown_token_id", n);
    int32_t pad = special_id(g, "tokenizer.ggml.padding_token_id", n);
    t->esc = -1;
    for (uint32_t i = n; i-- > 0;)
        if (t->type[i] == 3 && (int32_t)i != t->bos && (int32_t)i != t->eos && (int32_t)i != unk &&
            (int32_t)i != pad) {
            t->esc = (int32_t)i;
            break;
        }
    for (int d = 0; d < 16; d++)
        if (t->hex_tok[d] < 0) t->esc = -1; /* cannot spell hex digits: no escapes */

    /* merges: "A B" -> rank, id(AB) */
    uint64_t nm = merges ? merges->count : 0;
    uint32_t mcap = 1;
    while (mcap < 2 * nm + 2) mcap *= 2;
    t->merges = calloc(mcap, sizeof *t->merges);
    t->merge_mask = mcap - 1;
    if (!t->merges) return load_fail(t, err, errlen, "out of memory");
    char *cat = NULL;
    size_t cat_cap = 0;
    for (uint64_t r = 0; r < nm; r++) {
        lmz_str s = lmz_gguf_arr_str(merges, r);
        const char *sp = memchr(s.ptr, ' ', s.len);
        if (!sp || sp == s.ptr || sp + 1 == s.ptr + s.len) continue; /* "A B", neither empty */
        size_t la = (size_t)(sp - s.ptr), lb = s.len - la - 1;
        int32_t a = map_get(t, s.ptr, la), b = map_get(t, sp + 1, lb);
        if (la + lb > cat_cap) {
            cat_cap = 2 * (la + lb) + 16;
            char *nc = realloc(cat, cat_cap);
            if (!nc) { free(cat); return load_fail(t, err, errlen, "out of memory"); }
            cat = nc;
        }
        memcpy(cat, s.ptr, la);
        memcpy(cat + la, sp + 1, lb);
        int32_t res = map_get(t, cat, la + lb);
        /* a merge never makes a control token: the escape token is one, and
         * text must not come out as it (a fuzzed vocabulary did that) */
        if (a < 0 || b < 0 || res < 0 || t->type[res] == 3) continue;
        uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
        uint32_t i = (uint32_t)h64(&key, 8) & t->merge_mask;
        while (t->merges[i].key && t->merges[i].key != key) i = (i + 1) & t->merge_mask;
        if (t->merges[i].key) continue; /* the earlier (better) rank stays */
        t->merges[i].key = key;
        t->merges[i].rank = (uint32_t)r;
        t->merges[i].result = res;
    }
    free(cat);
    *out = t;
    return 0;
}

uint32_t lmz_tokenizer_vocab_size(const lmz_tokenizer *t) { return t->n_vocab; }
int32_t lmz_tokenizer_escape_id(const lmz_tokenizer *t) { return t->esc; }
int32_t lmz_tokenizer_bos(const lmz_tokenizer *t) { return t->bos; }
int32_t lmz_tokenizer_eos(const lmz_tokenizer *t) { return t->eos; }

const uint8_t *lmz_tokenizer_token_bytes(const lmz_tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || (uint32_t)id >= t->n_vocab) {
        *len = 0;
        return NULL;
    }
    *len = t->bytes_off[id + 1] - t->bytes_off[id];
    return t->bytes + t->bytes_off[id];
}

/* ======================================================================== */
/* encoding                                                                  */
/* ======================================================================== */

typedef struct {
    int32_t *ids;
    size_t cap, n; /* n counts every id, written or not */
    int failed;
    size_t *ends;  /* not NULL: record where each piece ends instead of encoding */
} out_ids;

static void emit(out_ids *o, int32_t id)
{
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

typedef struct {
    uint32_t rank;
    uint32_t pos;
    int32_t a, b;
} pair_ent;

static int pair_less(const pair_ent *x, const pair_ent *y)
{
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void heap_push(pair_ent *h, size_t *n, pair_ent e)
{
    size_t i = (*n)++;
    h[i] = e;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!pair_less(&h[i], &h[p])) break;
        pair_ent tmp = h[i];
        h[i] = h[p];
        h[p] = tmp;
        i = p;
    }
}

static pair_ent heap_pop(pair_ent *h, size_t *n)
{
    pair_ent top = h[0];
    h[0] = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && pair_less(&h[l], &h[m])) m = l;
        if (r < *n && pair_less(&h[r], &h[m])) m = r;
        if (m == i) break;
        pair_ent tmp = h[i];
        h[i] = h[m];
        h[m] = tmp;
        i = m;
    }
    return top;
}

typedef struct {
    int32_t *sym;
    int32_t *next, *prev;
    pair_ent *heap;
    size_t cap;
} bpe_work;

static int work_reserve(bpe_work *w, size_t n)
{
    if (n <= w->cap) return 0;
    size_t c = w->cap ? w->cap : 64;
    while (c < n) c *= 2;
    int32_t *s = realloc(w->sym, c * sizeof *s);
    if (s) w->sym = s;
    int32_t *nx = realloc(w->next, c * sizeof *nx);
    if (nx) w->next = nx;
    int32_t *pv = realloc(w->prev, c * sizeof *pv);
    if (pv) w->prev = pv;
    pair_ent *h = realloc(w->heap, 3 * c * sizeof *h);
    if (h) w->heap = h;
    if (!s || !nx || !pv || !h) return -1;
    w->cap = c;
    return 0;
}

static void push_pair(const lmz_tokenizer *t, bpe_work *w, size_t *hn, int32_t i)
{
    int32_t j = w->next[i];
    if (j < 0 || w->sym[i] < 0 || w->sym[j] < 0) return;
    const merge_ent *m = merge_get(t, w->sym[i], w->sym[j]);
    if (!m) return;
    pair_ent e = {m->rank, (uint32_t)i, w->sym[i], w->sym[j]};
    heap_push(w->heap, hn, e);
}

static void emit_byte(const lmz_tokenizer *t, out_ids *o, uint8_t b)
{
    if (t->byte_tok[b] >= 0) {
        emit(o, t->byte_tok[b]);
    } else if (t->esc >= 0) {
        emit(o, t->esc);
        emit(o, t->hex_tok[b >> 4]);
        emit(o, t->hex_tok[b & 15]);
    } else {
        o->failed = 1;
    }
}

/* BPE over one pre-token's bytes */
static int bpe_piece(const lmz_tokenizer *t, bpe_work *w, const uint8_t *s, size_t n, out_ids *o)
{
    if (n == 1) {
        emit_byte(t, o, s[0]);
        return 0;
    }
    if (work_reserve(w, n)) return -1;
    for (size_t i = 0; i < n; i++) {
        w->sym[i] = t->byte_tok[s[i]];
        w->next[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        w->prev[i] = (int32_t)i - 1;
    }
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(t, w, &hn, (int32_t)i);
    while (hn) {
        pair_ent e = heap_pop(w->heap, &hn);
        int32_t i = (int32_t)e.pos, j = w->next[i];
        if (w->sym[i] != e.a || j < 0 || w->sym[j] != e.b) continue; /* stale */
        const merge_ent *m = merge_get(t, e.a, e.b);
        w->sym[i] = m->result;
        w->sym[j] = -2; /* gone */
        w->next[i] = w->next[j];
        if (w->next[j] >= 0) w->prev[w->next[j]] = i;
        if (w->prev[i] >= 0) push_pair(t, w, &hn, w->prev[i]);
        push_pair(t, w, &hn, i);
    }
    for (int32_t i = 0; i >= 0; i = w->next[i]) {
        if (w->sym[i] >= 0) emit(o, w->sym[i]);
        else emit_byte(t, o, s[i]); /* a byte without a token stays alone */
    }
    return 0;
}

/* One piece of the pre-tokeniser: BPE-encoded, or only its end recorded. */
static int piece(const lmz_tokenizer *t, bpe_work *w, const uint8_t *text, size_t a, size_t b, out_ids *o)
{
    if (!o->ends) return bpe_piece(t, w, text + a, b - a, o);
    if (o->n < o->cap) o->ends[o->n] = b;
    o->n++;
    return 0;
}

/* The GPT-2 pattern over code points cp/cl[a..b) of one piece:
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * reporting each match as a byte range through pos[] (byte offset of each
 * code point, pos[b] = end). */
static int gpt2_split(const lmz_tokenizer *t, bpe_work *w, const uint8_t *text,
                      const uint32_t *cp, const uint8_t *cl, const size_t *pos, size_t a, size_t b,
                      out_ids *o)
{
    size_t i = a;
    while (i < b) {
        size_t e = i + 1;
        uint32_t c = cp[i];
        if (c == '\'' && i + 1 < b) {
            /* case-sensitive, as in GPT-2's pattern (llama.cpp agrees: "CAN'T") */
            uint32_t c1 = cp[i + 1], c2 = i + 2 < b ? cp[i + 2] : 0;
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') e = i + 2;
            else if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
                e = i + 3;
            if (e > i + 1) goto found;
        }
        {
            size_t k = i;
            if (c == ' ' && i + 1 < b && cl[i + 1] != CL_SPACE) k = i + 1;
            int want = cl[k];
            if (want == CL_LETTER || want == CL_NUMBER || want == CL_OTHER) {
                e = k + 1;
                while (e < b && cl[e] == want) e++;
                goto found;
            }
        }
        /* whitespace: a run, leaving its last character to a following
         * non-space unless the run is that one character */
        e = i + 1;
        while (e < b && cl[e] == CL_SPACE) e++;
        if (e < b && e - i > 1) e--;
    found:
        if (piece(t, w, text, pos[i], pos[e], o)) return -1;
        i = e;
    }
    return 0;
}

static int is_newline(uint32_t c) { return c == '\r' || c == '\n'; }

/* Llama 3's pattern ("llama-bpe") over code points cp/cl[a..b):
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *    ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * the alternatives tried in that order at each position; Qwen2's ("qwen2",
 * Qwen2.5 and Qwen3) is the same with \p{N} alone: one digit a piece. */
static int llama3_split(const lmz_tokenizer *t, bpe_work *w, const uint8_t *text,
                        const uint32_t *cp, const uint8_t *cl, const size_t *pos, size_t a, size_t b,
                        out_ids *o)
{
    const size_t digits = t->pre == PRE_QWEN2 ? 1 : 3;
    size_t i = a;
    while (i < b) {
        size_t e;
        uint32_t c = cp[i];
        if (c == '\'' && i + 1 < b) { /* contractions, any case */
            uint32_t c1 = cp[i + 1] | 0x20, c2 = i + 2 < b ? cp[i + 2] | 0x20 : 0;
            if (cp[i + 1] < 0x80 && (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')) {
                e = i + 2;
                goto found;
            }
            if (cp[i + 1] < 0x80 && i + 2 < b && cp[i + 2] < 0x80 &&
                ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))) {
                e = i + 3;
                goto found;
            }
        }
        /* letters, after at most one character that is no letter, digit or newline */
        if (cl[i] == CL_LETTER || (cl[i] != CL_NUMBER && !is_newline(c) && i + 1 < b && cl[i + 1] == CL_LETTER)) {
            e = i + 1;
            while (e < b && cl[e] == CL_LETTER) e++;
            goto found;
        }
        if (cl[i] == CL_NUMBER) { /* digits, three at most (qwen2: one) */
            e = i + 1;
            while (e < b && e < i + digits && cl[e] == CL_NUMBER) e++;
            goto found;
        }
        { /* an optional space, other characters, then any newlines */
            size_t k = c == ' ' && i + 1 < b && cl[i + 1] == CL_OTHER ? i + 1 : i;
            if (cl[k] == CL_OTHER) {
                e = k + 1;
                while (e < b && cl[e] == CL_OTHER) e++;
                while (e < b && is_newline(cp[e])) e++;
                goto found;
            }
        }
        /* whitespace: up to the run's last newline if it has one; else the
         * run, leaving its last character to a following non-space unless
         * the run is that one character */
        e = i + 1;
        while (e < b && cl[e] == CL_SPACE) e++;
        {
            size_t nl = e;
            while (nl > i && !is_newline(cp[nl - 1])) nl--;
            if (nl > i) e = nl;
            else if (e < b && e - i > 1) e--;
        }
    found:
        if (piece(t, w, text, pos[i], pos[e], o)) return -1;
        i = e;
    }
    return 0;
}

static long encode(const lmz_tokenizer *t, const uint8_t *text, size_t n, out_ids *o);

/* SentencePiece, as llama.cpp runs it: spaces become U+2581 (and one goes
 * in front when add_space_prefix), characters are symbols, and the adjacent
 * pair whose concatenation is the best-scored piece merges first (the
 * leftmost on a tie) until none is a piece; a symbol that is no piece goes
 * out as byte tokens. A U+2581 already in the text and invalid UTF-8 never
 * merge and go out as byte tokens, so decoding gives back those bytes. */
typedef struct {
    float score;
    uint32_t left, right, len;
} spm_bigram;

typedef struct {
    const lmz_tokenizer *t;
    const char *buf;
    size_t *start, *len;
    int64_t *prev, *next;
    uint8_t *raw;
    spm_bigram *heap;
    size_t nh, caph;
    int oom;
} spm_work;

static int spm_before(const spm_bigram *a, const spm_bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void spm_push(spm_work *w, int64_t l, int64_t r)
{
    if (l < 0 || r < 0 || w->raw[l] || w->raw[r]) return;
    size_t len = w->len[l] + w->len[r];
    int32_t id = spm_id(w->t, w->buf + w->start[l], len);
    if (id < 0) return;
    if (w->nh == w->caph) {
        size_t c = w->caph ? 2 * w->caph : 64;
        spm_bigram *h = realloc(w->heap, c * sizeof *h);
        if (!h) {
            w->oom = 1;
            return;
        }
        w->heap = h;
        w->caph = c;
    }
    spm_bigram b = {w->t->score[id], (uint32_t)l, (uint32_t)r, (uint32_t)len};
    size_t i = w->nh++;
    while (i > 0 && spm_before(&b, &w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = b;
}

static spm_bigram spm_pop(spm_work *w)
{
    spm_bigram top = w->heap[0], last = w->heap[--w->nh];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->nh) break;
        if (c + 1 < w->nh && spm_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!spm_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (w->nh) w->heap[i] = last;
    return top;
}

static int spm_encode(const lmz_tokenizer *t, const uint8_t *text, size_t n, out_ids *o, int space)
{
    if (n == 0) return 0;
    if (o->ends) { /* one piece: the whole text */
        if (o->cap) o->ends[0] = n;
        o->n = 1;
        return 0;
    }
    size_t cap = 3 * (n + 1), m = 0, at = 0;
    spm_work w = {t, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0};
    char *buf = malloc(cap);
    w.start = malloc((n + 1) * sizeof *w.start);
    w.len = malloc((n + 1) * sizeof *w.len);
    w.prev = malloc((n + 1) * sizeof *w.prev);
    w.next = malloc((n + 1) * sizeof *w.next);
    w.raw = malloc(n + 1);
    int rc = -1;
    if (!buf || !w.start || !w.len || !w.prev || !w.next || !w.raw) goto out;
    w.buf = buf;
#define SYM(nbytes, is_raw) \
    (w.start[m] = at - (nbytes), w.len[m] = (nbytes), w.raw[m] = (is_raw), w.prev[m] = (int64_t)m - 1, \
     w.next[m] = (int64_t)m + 1, m++)
    if (space) {
        memcpy(buf + at, SPM_SPACE, 3);
        at += 3;
        SYM(3, 0);
    }
    for (size_t i = 0; i < n;) {
        size_t l;
        uint32_t c = utf8_next(text + i, n - i, &l);
        if (c == ' ') {
            memcpy(buf + at, SPM_SPACE, 3);
            at += 3;
            SYM(3, 0);
        } else {
            memcpy(buf + at, text + i, l);
            at += l;
            SYM(l, c == 0x2581 || c == CP_INVALID);
        }
        i += l;
    }
#undef SYM
    w.next[m - 1] = -1;
    for (size_t i = 0; i + 1 < m; i++) spm_push(&w, (int64_t)i, (int64_t)i + 1);
    while (w.nh && !w.oom) {
        spm_bigram b = spm_pop(&w);
        if (!w.len[b.left] || !w.len[b.right] || w.len[b.left] + w.len[b.right] != b.len) continue; /* stale */
        w.len[b.left] += w.len[b.right];
        w.len[b.right] = 0;
        w.next[b.left] = w.next[b.right];
        if (w.next[b.left] >= 0) w.prev[w.next[b.left]] = b.left;
        spm_push(&w, w.prev[b.left], b.left);
        spm_push(&w, b.left, w.next[b.left]);
    }
    if (w.oom) goto out;
    for (int64_t i = 0; i >= 0; i = w.next[i]) {
        int32_t id = w.raw[i] ? -1 : spm_id(t, buf + w.start[i], w.len[i]);
        if (id >= 0) emit(o, id);
        else
            for (size_t k = 0; k < w.len[i]; k++) emit_byte(t, o, (uint8_t)buf[w.start[i] + k]);
    }
    rc = 0;
out:
    free(buf);
    free(w.start);
    free(w.len);
    free(w.prev);
    free(w.next);
    free(w.raw);
    free(w.heap);
    return rc;
}

long lmz_tokenizer_encode(const lmz_tokenizer *t, const uint8_t *text, size_t n, int32_t *ids,
                          size_t cap)
{
    out_ids o = {ids, cap, 0, 0, NULL};
    return encode(t, text, n, &o);
}

long lmz_tokenizer_pieces(const lmz_tokenizer *t, const uint8_t *text, size_t n, size_t *ends, size_t cap)
{
    out_ids o = {NULL, cap, 0, 0, ends};
    return encode(t, text, n, &o);
}

long lmz_pretokenize_gpt2(const uint8_t *text, size_t n, size_t *ends, size_t cap)
{
    lmz_tokenizer t;
    memset(&t, 0, sizeof t);
    t.pre = PRE_GPT2;
    out_ids o = {NULL, cap, 0, 0, ends};
    return encode(&t, text, n, &o);
}

/* SPM with user-defined tokens, as llama.cpp partitions the text: each
 * token, longest first, is found left to right in what no longer token has
 * taken; the rest goes to the pieces (the space prefix only on text at the
 * very start). */
static int spm_encode_user(const lmz_tokenizer *t, const uint8_t *text, size_t n, out_ids *o)
{
    if (!t->n_user || o->ends || n == 0) return spm_encode(t, text, n, o, t->add_space);
    /* fragments as a list: start, length, token (-1: text) */
    size_t cap = 2 * n + 2, nf = 1;
    size_t *fs = malloc(cap * sizeof *fs), *fl = malloc(cap * sizeof *fl);
    int32_t *fid = malloc(cap * sizeof *fid);
    int64_t *next = malloc(cap * sizeof *next);
    int rc = -1;
    if (!fs || !fl || !fid || !next) goto out;
    fs[0] = 0, fl[0] = n, fid[0] = -1, next[0] = -1;
    /* the byte pairs and bytes the text holds: a token whose first two
     * bytes (or byte) it lacks cannot occur, whatever the vocabulary's size */
    uint8_t pairs[65536 / 8] = {0}, bytes[256] = {0};
    for (size_t i = 0; i < n; i++) {
        bytes[text[i]] = 1;
        if (i + 1 < n) pairs[(text[i] << 8 | text[i + 1]) >> 3] |= (uint8_t)(1u << (text[i + 1] & 7));
    }
    for (size_t u = 0; u < t->n_user; u++) {
        int32_t id = t->user[u];
        const uint8_t *ub = t->bytes + t->bytes_off[id];
        size_t ul = t->bytes_off[id + 1] - t->bytes_off[id];
        if (ul > n || !bytes[ub[0]] || (ul > 1 && !(pairs[(ub[0] << 8 | ub[1]) >> 3] >> (ub[1] & 7) & 1))) continue;
        for (int64_t f = 0; f >= 0; f = next[f]) {
            if (fid[f] >= 0 || fl[f] < ul) continue;
            const uint8_t *a = text + fs[f], *hit = NULL;
            for (size_t k = 0; k + ul <= fl[f]; k++) {
                const uint8_t *p = memchr(a + k, ub[0], fl[f] - ul - k + 1);
                if (!p) break;
                if (!memcmp(p, ub, ul)) {
                    hit = p;
                    break;
                }
                k = (size_t)(p - a);
            }
            if (!hit) continue;
            /* f becomes the text before (if any), then the token, then the text after */
            size_t at = (size_t)(hit - text), end = fs[f] + fl[f];
            int64_t after = next[f];
            if (nf + 2 > cap) goto out; /* cannot happen: each split takes a byte */
            int64_t tok = f;
            if (at > fs[f]) {
                fl[f] = at - fs[f];
                tok = (int64_t)nf++;
                next[f] = tok;
            }
            fs[tok] = at, fl[tok] = ul, fid[tok] = id, next[tok] = after;
            if (end > at + ul) {
                int64_t r = (int64_t)nf++;
                fs[r] = at + ul, fl[r] = end - at - ul, fid[r] = -1, next[r] = after;
                next[tok] = r;
            }
            f = tok; /* the loop goes on after the token */
        }
    }
    rc = 0;
    for (int64_t f = 0; f >= 0 && rc == 0; f = next[f]) {
        if (fid[f] >= 0) emit(o, fid[f]);
        else rc = spm_encode(t, text + fs[f], fl[f], o, t->add_space && fs[f] == 0);
    }
out:
    free(fs);
    free(fl);
    free(fid);
    free(next);
    return rc;
}

static long encode(const lmz_tokenizer *t, const uint8_t *text, size_t n, out_ids *o)
{
    if (t->spm) return spm_encode_user(t, text, n, o) || o->failed ? -1 : (long)o->n;
    uint32_t *cp = malloc((n + 1) * sizeof *cp);
    uint8_t *cl = malloc(n + 1);
    size_t *pos = malloc((n + 1) * sizeof *pos);
    bpe_work w = {0};
    long ret = -1;
    if (!cp || !cl || !pos) goto out;
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        size_t l;
        cp[m] = utf8_next(text + i, n - i, &l);
        cl[m] = (uint8_t)classify(cp[m]);
        pos[m++] = i;
        i += l;
    }
    pos[m] = n;
    if (t->pre == PRE_LLAMA3 || t->pre == PRE_QWEN2) {
        if (llama3_split(t, &w, text, cp, cl, pos, 0, m, o)) goto out;
    } else { /* "smollm": every number code point is a piece of its own first */
        size_t a = 0;
        for (size_t i = 0; i <= m; i++) {
            int cut = i == m || (t->pre == PRE_SMOLLM && cl[i] == CL_NUMBER);
            if (!cut) continue;
            if (i > a && gpt2_split(t, &w, text, cp, cl, pos, a, i, o)) goto out;
            if (i < m && piece(t, &w, text, pos[i], pos[i + 1], o)) goto out;
            a = i + 1;
        }
    }
    ret = o->failed ? -1 : (long)o->n;
out:
    free(cp);
    free(cl);
    free(pos);
    free(w.sym);
    free(w.next);
    free(w.prev);
    free(w.heap);
    return ret;
}

/* ======================================================================== */
/* decoding                                                                  */
/* ======================================================================== */

static int hex_value(const lmz_tokenizer *t, int32_t id)
{
    for (int d = 0; d < 16; d++)
        if (t->hex_tok[d] == id) return d;
    return -1;
}

int lmz_tokenizer_spans(const lmz_tokenizer *t, const int32_t *ids, size_t n, uint32_t *lens)
{
    for (size_t i = 0; i < n; i++) { /* decode's walk */
        int32_t id = ids[i];
        if (id < 0 || (uint32_t)id >= t->n_vocab) return -1;
        if (id == t->esc) {
            if (i + 2 >= n) return -1;
            lens[i] = lens[i + 1] = 0;
            lens[i + 2] = 1;
            i += 2;
        } else {
            lens[i] = (uint32_t)(t->bytes_off[id + 1] - t->bytes_off[id]);
        }
    }
    /* SPM: the first token's space is not the text's */
    if (n > 0) {
        long all = lmz_tokenizer_decode(t, ids, n, NULL, 0), sum = 0;
        for (size_t i = 0; i < n; i++) sum += lens[i];
        if (all < 0 || sum - all > 1 || sum < all) return -1;
        if (sum > all) lens[0]--;
    }
    return 0;
}

long lmz_tokenizer_decode(const lmz_tokenizer *t, const int32_t *ids, size_t n, uint8_t *out,
                          size_t cap)
{
    size_t o = 0;
    /* SPM: the space put in front by the encoder goes again */
    size_t skip = t->spm && t->add_space && n > 0 && ids[0] >= 0 && (uint32_t)ids[0] < t->n_vocab &&
                  (t->type[ids[0]] == 1 || t->type[ids[0]] == 4) && t->text_len[ids[0]] >= 3 &&
                  !memcmp(t->text[ids[0]], SPM_SPACE, 3);
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || (uint32_t)id >= t->n_vocab) return -1;
        if (id == t->esc) {
            if (i + 2 >= n) return -1;
            int hi = hex_value(t, ids[i + 1]), lo = hex_value(t, ids[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            if (o < cap) out[o] = (uint8_t)(hi << 4 | lo);
            o++;
            i += 2;
            continue;
        }
        size_t len = t->bytes_off[id + 1] - t->bytes_off[id], k = 0;
        if (skip) {
            k = 1;
            skip = 0;
        }
        for (; k < len; k++, o++)
            if (o < cap) out[o] = t->bytes[t->bytes_off[id] + k];
    }
    return (long)o;
}
