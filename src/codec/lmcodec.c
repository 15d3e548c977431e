/* lmcodec.c — see lmcodec.h for the contract and the payload layout. */
#include "lmcodec.h"

#include <lzma.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <xxhash.h>

#include "../predict/cdf.h"
#include "lmzip.h"
#include "../common/align.h"
#include "../common/rangecoder.h"
#include "segment.h"
#include "tokbits.h"
#include "../common/pool.h"
#include "../common/varint.h"
#include "../model/model.h"
#include "../predict/bytemodel.h"

#define PREFILL_CHUNK 64
#define TOKENS_PER_BYTE 3  /* an escaped byte takes three tokens */

struct lmz_lm {
    lmz_model *m;
    const lmz_tokenizer *tok;
    uint32_t V;
    int32_t start;
    lmz_lm_params p;
    const struct lmz_model_ref *ref; /* the loaded model: its name and identity */
    lmz_lm_stats st;
    lmz_pool *pool; /* the model's threads, also for the frames' ensembles */
    lmz_tb_vocab *tbv; /* det-f32-v4: the vocabulary in byte order */
    lmz_lm_progress_fn progress;
    void *progress_opaque;
    /* kept from one group to the next: the model's states (reset before use,
     * which gives a new state's predictions) and the compressor's logits, so a
     * large model's pages are not given back and faulted in, zeroed, again at
     * every group (SmolLM2-sized: a tenth of the time, docs/BENCHMARKS.md) */
    lmz_state *spare[LMZ_ENS_STREAMS_MAX];
    size_t nspare;
    float *logits;
    size_t logits_cap;
};

/* a state with no history: a kept one, reset, or a new one */
static lmz_state *state_get(lmz_lm *lm)
{
    if (lm->nspare == 0) return lmz_state_new(lm->m);
    lmz_state *s = lm->spare[--lm->nspare];
    lmz_state_reset(s);
    return s;
}

static void state_put(lmz_lm *lm, lmz_state *s)
{
    if (!s) return;
    if (lm->nspare < LMZ_ENS_STREAMS_MAX) lm->spare[lm->nspare++] = s;
    else lmz_state_free(s);
}

/* the compressor's logits, n floats (grown, never shrunk) */
static float *logits_get(lmz_lm *lm, size_t n)
{
    if (n > lm->logits_cap) {
        free(lm->logits);
        lm->logits_cap = 0;
        if (!(lm->logits = malloc(n * sizeof *lm->logits))) return NULL;
        lm->logits_cap = n;
    }
    return lm->logits;
}

void lmz_lm_set_progress(lmz_lm *lm, lmz_lm_progress_fn fn, void *opaque)
{
    lm->progress = fn;
    lm->progress_opaque = opaque;
}

/* ------------------------------------------------------------------------ */
/* the model                                                                 */
/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* a loaded model: the file mapped, checked and hashed once                  */
/* ------------------------------------------------------------------------ */

struct lmz_model_ref {
    lmz_gguf g;                    /* the mapped file; every lmz_lm reads it */
    uint8_t hash[32];
    char name[LMZ_NAME_MAX + 1];
    char path[];
};

int lmz_model_load(const char *path, lmz_model_ref **out, char *err, size_t errlen)
{
    char scratch[8];
    if (!err) err = scratch, errlen = sizeof scratch;
    if (!out) return LMZ_ERROR_PARAM;
    *out = NULL;
    if (!path) {
        snprintf(err, errlen, "no model path");
        return LMZ_ERROR_PARAM;
    }
    size_t plen = strlen(path);
    lmz_model_ref *r = calloc(1, sizeof *r + plen + 1);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return LMZ_ERROR_NOMEM;
    }
    memcpy(r->path, path, plen + 1);
    char why[256];
    if (lmz_gguf_open(path, &r->g, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        free(r);
        return LMZ_ERROR_MODEL;
    }
    for (int s = 0; s < 2; s++) {
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits_withSeed(r->g.base, r->g.size, (XXH64_hash_t)s));
        memcpy(r->hash + 16 * s, c.digest, 16);
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 5 && !strcmp(base + n - 5, ".gguf")) n -= 5;
    if (n > LMZ_NAME_MAX) n = LMZ_NAME_MAX;
    if (n == 0) memcpy(r->name, "model", (n = 5));
    for (size_t i = 0; i < n; i++) r->name[i] = base[i] > 0x20 && base[i] < 0x7F ? base[i] : '_';
    r->name[n] = 0;
    /* that it runs: an architecture and a tokenizer this build has */
    lmz_model *m;
    lmz_model_opts mo = {1, 0, 0};
    if (lmz_model_open_buffer(r->g.base, r->g.size, &mo, &m, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        lmz_model_unload(r);
        return LMZ_ERROR_MODEL;
    }
    int tok_ok = lmz_model_tokenizer(m) != NULL;
    if (!tok_ok) snprintf(err, errlen, "%s: the model's tokenizer cannot be used: %s", path, lmz_model_tokenizer_note(m));
    lmz_model_free(m);
    if (!tok_ok) {
        lmz_model_unload(r);
        return LMZ_ERROR_MODEL;
    }
    *out = r;
    return LMZ_OK;
}

void lmz_model_unload(lmz_model_ref *r)
{
    if (!r) return;
    lmz_gguf_close(&r->g);
    free(r);
}

const char *lmz_model_ref_name(const lmz_model_ref *r) { return r ? r->name : ""; }
const char *lmz_model_ref_path(const lmz_model_ref *r) { return r ? r->path : ""; }

int lmz_lm_open(const lmz_model_ref *ref, const lmz_lm_params *p, const uint8_t *want_hash, lmz_lm **out,
                char *err, size_t errlen)
{
    *out = NULL;
    if (want_hash && memcmp(want_hash, ref->hash, p->hash_len && p->hash_len < 32 ? p->hash_len : 32) != 0) {
        snprintf(err, errlen, "%s: another model than the one the stream was made with", ref->path);
        return LMZ_ERROR_MODEL;
    }
    lmz_lm *lm = calloc(1, sizeof *lm);
    if (!lm) {
        snprintf(err, errlen, "out of memory");
        return LMZ_ERROR_NOMEM;
    }
    lm->p = *p;
    lm->ref = ref;
    lmz_model_opts mo = {p->threads ? p->threads : 1, p->window, p->int8};
    char why[256];
    if (lmz_model_open_buffer(ref->g.base, ref->g.size, &mo, &lm->m, why, sizeof why) != 0) {
        /* lmz_model_load ran this file: what fails now is the settings */
        snprintf(err, errlen, "%s: %s", ref->path, why);
        free(lm);
        return want_hash ? LMZ_ERROR_HEADER : LMZ_ERROR_PARAM;
    }
    lm->tok = lmz_model_tokenizer(lm->m);
    lm->V = lmz_model_vocab(lm->m);
    lm->pool = lmz_model_pool(lm->m); /* one set of threads: no idle ones spinning */
    if (!lm->tok || lmz_ens_params_check(&p->ens, lm->V) != 0) {
        snprintf(err, errlen, "%s: settings out of range for a vocabulary of %u", ref->path, lm->V);
        lmz_lm_free(lm);
        return want_hash ? LMZ_ERROR_HEADER : LMZ_ERROR_PARAM;
    }
    if (p->ens.profile >= LMZ_ENS_V4 && !(lm->tbv = lmz_tb_vocab_new(lm->tok, lm->V))) {
        snprintf(err, errlen, "out of memory");
        lmz_lm_free(lm);
        return LMZ_ERROR_NOMEM;
    }
    int32_t bos = lmz_tokenizer_bos(lm->tok), eos = lmz_tokenizer_eos(lm->tok);
    lm->start = bos >= 0 && (uint32_t)bos < lm->V ? bos : eos >= 0 && (uint32_t)eos < lm->V ? eos : 0;
    *out = lm;
    return LMZ_OK;
}

uint64_t lmz_lm_mem_frame(const lmz_lm *lm, uint64_t orig)
{
    /* tokens (at most 3 a byte, 4 bytes each) and segment tables, the
     * frame's logits and states: an estimate that errs high */
    return 16 * orig + 8 * (uint64_t)lm->V + (1u << 20);
}

uint64_t lmz_lm_mem_group(const lmz_lm *lm, uint64_t bytes)
{
    uint64_t buckets = (uint64_t)1 << lm->p.ens.ngram_bits, pow2 = 1024;
    while (pow2 < bytes && pow2 < buckets) pow2 <<= 1; /* the tables scale with the tokens */
    uint64_t bias = 1024 * 4 * (uint64_t)lm->V;
    if (bias > (32u << 20)) bias = 32u << 20;
    if (lm->p.ens.parts & LMZ_ENS_HEAD) bias += 4 * (uint64_t)lm->V * lmz_model_dim(lm->m);
    if (lm->p.ens.parts & LMZ_ENS_REFINE) bias += lmz_tb_refine_mem();
    if ((lm->p.ens.parts & LMZ_ENS_CACHE) && (lm->p.ens.parts & LMZ_ENS_HEAD)) { /* rows, similarities, sparse tables */
        uint64_t rows = bytes + 16 < lm->p.ens.cache_rows ? bytes + 16 : lm->p.ens.cache_rows; /* a token a byte at most */
        bias += rows * (lmz_model_dim(lm->m) + 16 + 4 * LMZ_ENS_STREAMS_MAX) + 12 * (uint64_t)lm->V * LMZ_ENS_STREAMS_MAX;
    }
    return 4 * 32 * pow2 + bias + lmz_bytemodel_mem(lmz_bytemodel_table_bits((size_t)bytes, lm->p.table_bits));
}

void lmz_lm_free(lmz_lm *lm)
{
    if (!lm) return;
    while (lm->nspare) lmz_state_free(lm->spare[--lm->nspare]);
    free(lm->logits);
    lmz_model_free(lm->m);
    lmz_tb_vocab_free(lm->tbv);
    free(lm);
}

const char *lmz_lm_name(const lmz_lm *lm) { return lm->ref->name; }
const uint8_t *lmz_lm_hash(const lmz_lm *lm) { return lm->ref->hash; }
uint32_t lmz_lm_window(const lmz_lm *lm) { return lmz_model_window(lm->m); }

/* the streams carry the adaptive head: the model's vectors go beside its logits */
static int head_on(const lmz_lm *lm)
{
    return (lm->p.ens.parts & LMZ_ENS_MODEL) && (lm->p.ens.parts & LMZ_ENS_HEAD);
}

/* the bit coder (det-f32-v4, det-i8-v1) refines its probabilities with maps */
static int refine_on(const lmz_lm *lm) { return (lm->p.ens.parts & LMZ_ENS_REFINE) != 0; }

unsigned lmz_lm_fit_parts(lmz_lm *lm)
{
    if ((uint64_t)lm->V * lmz_model_dim(lm->m) > LMZ_LM_HEAD_MAX) lm->p.ens.parts &= ~(LMZ_ENS_HEAD | LMZ_ENS_CACHE);
    return lm->p.ens.parts;
}
void lmz_lm_stats_get(const lmz_lm *lm, lmz_lm_stats *s) { *s = lm->st; }
void lmz_lm_stats_reset(lmz_lm *lm) { memset(&lm->st, 0, sizeof lm->st); }


/* ------------------------------------------------------------------------ */
/* binary segments                                                           */
/* ------------------------------------------------------------------------ */

static void lzma_opts(lzma_options_lzma *o, size_t len)
{
    lzma_lzma_preset(o, 6 | LZMA_PRESET_EXTREME);
    uint32_t d = 4096;
    while (d < len && d < o->dict_size) d <<= 1;
    o->dict_size = d;
}

size_t lmz_lzma_encode(const uint8_t *src, size_t n, uint8_t *out, size_t cap)
{
    lzma_options_lzma o;
    lzma_opts(&o, n);
    lzma_filter f[2] = {{LZMA_FILTER_LZMA2, &o}, {LZMA_VLI_UNKNOWN, NULL}};
    size_t pos = 0;
    return lzma_raw_buffer_encode(f, NULL, src, n, out, &pos, cap) == LZMA_OK ? pos : 0;
}

int lmz_lzma_decode(const uint8_t *in, size_t c, uint8_t *dst, size_t n)
{
    lzma_options_lzma o;
    lzma_opts(&o, n);
    lzma_filter f[2] = {{LZMA_FILTER_LZMA2, &o}, {LZMA_VLI_UNKNOWN, NULL}};
    size_t ip = 0, op = 0;
    lzma_ret r = lzma_raw_buffer_decode(f, NULL, in, &ip, c, dst, &op, n);
    if (r == LZMA_MEM_ERROR) return LMZ_ERROR_NOMEM;
    return r == LZMA_OK && ip == c && op == n ? LMZ_OK : LMZ_ERROR_CORRUPT;
}

/* the smallest coding of src[0..n) into out[0..n): @return its kind and size */
static uint8_t binary_encode(const lmz_lm *lm, const uint8_t *src, size_t n, uint8_t *out, uint8_t *tmp,
                             size_t *size)
{
    uint8_t kind = LMZ_SEG_STORED;
    *size = n;
    lmz_bytemodel *bm = lmz_bytemodel_create(lmz_bytemodel_table_bits(n, lm->p.table_bits));
    if (bm) {
        lmz_rc_enc rc;
        lmz_rc_enc_init(&rc, out, n);
        lmz_bytemodel_encode(bm, &rc, src, n);
        size_t c = lmz_rc_enc_finish(&rc);
        lmz_bytemodel_free(bm);
        if (c > 0 && c < *size) {
            kind = LMZ_SEG_BYTEMODEL;
            *size = c;
        }
    }
    size_t pos = lmz_lzma_encode(src, n, tmp, n);
    if (pos > 0 && pos < *size) {
        kind = LMZ_SEG_LZMA;
        *size = pos;
        memcpy(out, tmp, pos);
    }
    if (kind == LMZ_SEG_STORED) memcpy(out, src, n);
    return kind;
}

static int binary_decode(const lmz_lm *lm, uint8_t kind, const uint8_t *in, size_t c, uint8_t *dst, size_t n)
{
    if (kind == LMZ_SEG_STORED) {
        if (c != n) return LMZ_ERROR_CORRUPT;
        memcpy(dst, in, n);
        return LMZ_OK;
    }
    if (kind == LMZ_SEG_BYTEMODEL) {
        lmz_bytemodel *bm = lmz_bytemodel_create(lmz_bytemodel_table_bits(n, lm->p.table_bits));
        if (!bm) return LMZ_ERROR_NOMEM;
        lmz_rc_dec rc;
        lmz_rc_dec_init(&rc, in, c);
        lmz_bytemodel_decode(bm, &rc, dst, n);
        lmz_bytemodel_free(bm);
        return lmz_rc_dec_finished_cleanly(&rc) ? LMZ_OK : LMZ_ERROR_CORRUPT;
    }
    return lmz_lzma_decode(in, c, dst, n);
}

/* ------------------------------------------------------------------------ */
/* compression                                                               */
/* ------------------------------------------------------------------------ */

typedef struct {
    uint8_t kind;
    size_t len;    /* original bytes */
    size_t count;  /* text: tokens; binary: coded bytes */
    size_t off;    /* text: first token; binary: offset in the binary buffer */
} segment;

/* one frame of a group being compressed */
typedef struct {
    lmz_lm_cframe *f;
    int32_t *toks; /* (ntok) the text segments' tokens */
    size_t ntok;
    size_t head;   /* bytes of out taken by the segment table and the binary segments */
    int err;
    lmz_lm_stats st;
    /* the text, for one attempt */
    int in;        /* coded in this attempt */
    size_t sidx;   /* its stream in the ensemble */
    const uint32_t *cum; /* det-f32-v4: its table for the token at hand */
    lmz_state *state;
    lmz_rc_enc rc;
    /* explain: each token's offset in the frame (ntok + 1), the binary
     * segments (offset, length, coded bytes; chained: the chain's), and
     * the pieces of this attempt */
    uint32_t *tok_off, *tok_len;
    size_t (*bseg)[3], nbseg;
    lmz_piece *pc;
    size_t npc;
} cframe;

/* Tokens per byte above which a printable run is not text the model reads:
 * a tokenizer with merges spells such runs (bytes of code, tables of
 * numbers, compressed data that happens to be printable) nearly one token
 * a byte, where prose, code and markup take 0.3-0.6 (docs/BENCHMARKS.md).
 * The byte model codes them better and far faster. Vocabularies of fewer
 * than SPELL_VOCAB_MIN tokens spell everything and are not judged. */
#define SPELL_NUM 4
#define SPELL_DEN 5
#define SPELL_VOCAB_MIN 1024

/* A frame goes to the model when at least 1/TEXT_FRAME_DEN of it is text:
 * the model gains on its text, the binary rest goes to the byte model all
 * the same (the binary setting's chain), and the group's other frames
 * learn from its text (docs/BENCHMARKS.md: the Calgary and Canterbury tars
 * measured with 1/2, 1/8 and 1/32). Part of the format with the binary
 * setting: a stored frame's chain bytes depend on it. */
#define TEXT_FRAME_DEN 8

/* The segments of src[0..n) as the codec codes them: kinds, lengths and,
 * for text, token counts in seg[]; @return their number, *ntok the tokens
 * of all text segments. kinds and lens: scratch of n entries. */
static size_t plan_segments(const lmz_lm *lm, const uint8_t *src, size_t n, uint8_t *kinds, size_t *lens,
                            segment *seg, size_t *ntok)
{
    const int judge = lmz_tokenizer_vocab_size(lm->tok) >= SPELL_VOCAB_MIN;
    size_t ns = lmz_segment(src, n, lm->p.text_min, kinds, lens), pos = 0, o = 0;
    *ntok = 0;
    for (size_t i = 0; i < ns; i++) { /* token counts; a text the vocabulary cannot say is binary */
        uint8_t kind = kinds[i];
        size_t count = 0;
        if (kind == LMZ_SEG_TEXT) {
            long k = lmz_tokenizer_encode(lm->tok, src + pos, lens[i], NULL, 0);
            if (k <= 0 || (size_t)k > lens[i] * TOKENS_PER_BYTE ||
                (judge && (size_t)k * SPELL_DEN > lens[i] * SPELL_NUM))
                kind = LMZ_SEG_BYTEMODEL;
            else
                count = (size_t)k;
        }
        if (o && kind != LMZ_SEG_TEXT && seg[o - 1].kind == kind) { /* binary beside binary: one segment */
            seg[o - 1].len += lens[i];
        } else {
            seg[o++] = (segment){kind, lens[i], count, pos};
            *ntok += count;
        }
        pos += lens[i];
    }
    return o;
}

int lmz_lm_frame_plan(const lmz_lm *lm, const uint8_t *src, size_t n, uint8_t *bin, size_t *nbin)
{
    if (nbin) *nbin = 0;
    if (n < 2) return 0;
    uint8_t *kinds = malloc(n);
    size_t *lens = malloc(n * sizeof *lens);
    segment *seg = malloc(n * sizeof *seg);
    int text = -1;
    if (kinds && lens && seg) {
        size_t ntok, nt = 0, nb = 0, ns = plan_segments(lm, src, n, kinds, lens, seg, &ntok);
        for (size_t i = 0; i < ns; i++)
            if (seg[i].kind == LMZ_SEG_TEXT) nt += seg[i].len;
        text = nt * TEXT_FRAME_DEN >= n;
        for (size_t i = 0; text && bin && i < ns; i++)
            if (seg[i].kind != LMZ_SEG_TEXT) {
                memcpy(bin + nb, src + seg[i].off, seg[i].len);
                nb += seg[i].len;
            }
        if (nbin) *nbin = nb;
    }
    free(kinds);
    free(lens);
    free(seg);
    return text;
}

/* Segment table and binary segments of one frame into out; its tokens. */
static void frame_head(lmz_lm *lm, cframe *c)
{
    const uint8_t *src = c->f->src;
    const size_t n = c->f->n, cap = c->f->cap;
    uint8_t *out = c->f->out;
    uint8_t *kinds = malloc(n), *bin = malloc(n), *tmp = malloc(n);
    size_t *lens = malloc(n * sizeof *lens);
    segment *seg = malloc(n * sizeof *seg);
    c->err = LMZ_OK;
    c->head = SIZE_MAX; /* does not fit until written */
    if (!kinds || !bin || !tmp || !lens || !seg) {
        c->err = LMZ_ERROR_NOMEM;
        goto out;
    }
    size_t ntok, nbin = 0, ns = plan_segments(lm, src, n, kinds, lens, seg, &ntok);
    if (ntok && !(c->toks = malloc(ntok * sizeof *c->toks))) {
        c->err = LMZ_ERROR_NOMEM;
        goto out;
    }
    c->ntok = ntok;
    if (lm->p.explain && (!(c->tok_off = malloc((ntok + 1) * sizeof *c->tok_off)) ||
                          !(c->tok_len = malloc((ntok + 1) * sizeof *c->tok_len)) ||
                          !(c->bseg = malloc((ns ? ns : 1) * sizeof *c->bseg)) ||
                          !(c->pc = malloc((ntok + ns + 1) * sizeof *c->pc)))) {
        c->err = LMZ_ERROR_NOMEM;
        goto out;
    }
    /* tokens of the text segments; binary segments coded into bin */
    size_t t = 0;
    for (size_t i = 0; i < ns; i++) {
        const uint8_t *x = src + seg[i].off;
        size_t at = seg[i].off;
        if (seg[i].kind == LMZ_SEG_TEXT) {
            lmz_tokenizer_encode(lm->tok, x, seg[i].len, c->toks + t, seg[i].count);
            if (c->tok_off) { /* where each token starts, its bytes (lmz_tokenizer_spans) */
                if (lmz_tokenizer_spans(lm->tok, c->toks + t, seg[i].count, c->tok_len + t) != 0) {
                    c->err = LMZ_ERROR_PARAM;
                    goto out;
                }
                for (size_t j = 0; j < seg[i].count; j++) {
                    c->tok_off[t + j] = (uint32_t)at;
                    at += c->tok_len[t + j];
                }
            }
            seg[i].off = t;
            t += seg[i].count;
            c->st.text_bytes += seg[i].len;
        } else if (lm->p.binary) { /* in the chain's piece (the caller's) */
            if (c->bseg) {
                c->bseg[c->nbseg][0] = at;
                c->bseg[c->nbseg][1] = seg[i].len;
                c->bseg[c->nbseg++][2] = SIZE_MAX; /* the chain's */
            }
            seg[i].kind = LMZ_SEG_CHAIN;
            seg[i].count = 0;
            c->st.binary_bytes += seg[i].len;
        } else {
            size_t k;
            seg[i].kind = binary_encode(lm, x, seg[i].len, bin + nbin, tmp, &k);
            if (c->bseg) {
                c->bseg[c->nbseg][0] = at;
                c->bseg[c->nbseg][1] = seg[i].len;
                c->bseg[c->nbseg++][2] = k;
            }
            seg[i].off = nbin;
            seg[i].count = k;
            nbin += k;
            c->st.binary_bytes += seg[i].len;
            c->st.binary_coded += k;
        }
    }
    int chained = 0;
    for (size_t i = 0; i < ns; i++) chained |= seg[i].kind == LMZ_SEG_CHAIN;
    if (chained != (c->f->chain_len > 0)) { /* the caller's piece is not of this plan */
        c->err = LMZ_ERROR_PARAM;
        goto out;
    }
    /* the segment table, then the binary bytes */
    uint8_t vb[32];
    size_t o = 0;
#define EMIT(p, k)                                                           \
    do {                                                                     \
        if (o + (k) > cap) goto out; /* does not fit: the caller stores */   \
        memcpy(out + o, (p), (k));                                           \
        o += (k);                                                            \
    } while (0)
    size_t vn = lmz_put_varint(vb, ns);
    EMIT(vb, vn);
    for (size_t i = 0; i < ns; i++) {
        vb[0] = seg[i].kind;
        vn = 1 + lmz_put_varint(vb + 1, seg[i].len);
        vn += lmz_put_varint(vb + vn, seg[i].count);
        EMIT(vb, vn);
    }
    if (chained) {
        vn = lmz_put_varint(vb, c->f->chain_len);
        EMIT(vb, vn);
        EMIT(c->f->chain, c->f->chain_len);
        c->st.binary_coded += vn + c->f->chain_len;
    }
    EMIT(bin, nbin);
#undef EMIT
    c->head = o;
out:
    free(kinds);
    free(bin);
    free(tmp);
    free(lens);
    free(seg);
}

typedef struct {
    lmz_lm *lm;
    cframe *c;
} head_job;

static void heads(void *ctx, size_t b, size_t e, unsigned th)
{
    (void)th;
    head_job *j = ctx;
    for (size_t i = b; i < e; i++) frame_head(j->lm, &j->c[i]);
}

/* explain: the piece of frame c's token `at`, which cost bits (before the
 * ensemble's update) */
static void explain_token(const lmz_lm *lm, const lmz_ens *ens, cframe *c, size_t at, double bits)
{
    if (!c->pc) return;
    int32_t tok = c->toks[at], top[3];
    lmz_piece *p = &c->pc[c->npc++];
    memset(p, 0, sizeof *p);
    p->offset = c->tok_off[at];
    p->length = c->tok_len[at];
    p->kind = LMZ_PIECE_TOKEN;
    p->bits = bits;
    p->token = tok;
    lmz_ens_explain(ens, c->sidx, tok, p->q, top, p->top_p);
    p->table_bits = (float)lmz_ens_cost(ens, c->sidx, tok);
    float best = -1;
    p->carrier = LMZ_CARRIER_NONE;
    for (unsigned i = 0; i < 4; i++)
        if (p->q[i] > best) {
            best = p->q[i];
            p->carrier = i;
        }
    /* mixed bit by bit with the byte model, the token cost a bit or more
     * less than the ensemble's table gave it */
    if (lm->p.ens.profile >= LMZ_ENS_V4 && bits <= (double)p->table_bits - 1.0) p->carrier = LMZ_CARRIER_BYTES;
    for (int k = 0; k < 3; k++) {
        size_t len = 0;
        const uint8_t *b = top[k] >= 0 ? lmz_tokenizer_token_bytes(lm->tok, top[k], &len) : NULL;
        if (!b) len = 0;
        p->top_len[k] = (uint8_t)(len < sizeof p->top[k] ? len : sizeof p->top[k]);
        if (p->top_len[k]) memcpy(p->top[k], b, p->top_len[k]);
    }
}

/* explain: frame c's binary segments joined to its tokens, in input order,
 * into f's pieces. Segments of the chain share its bytes by length. */
static void explain_finish(cframe *c, lmz_lm_cframe *f)
{
    if (!c->pc) return;
    uint8_t vb[16];
    size_t chained = 0, chain_bytes = f->chain_len ? f->chain_len + lmz_put_varint(vb, f->chain_len) : 0;
    for (size_t i = 0; i < c->nbseg; i++)
        if (c->bseg[i][2] == SIZE_MAX) chained += c->bseg[i][1];
    lmz_piece *out = malloc((c->npc + c->nbseg + 1) * sizeof *out);
    if (!out) return; /* the caller explains the frame as a whole */
    size_t n = 0, t = 0;
    for (size_t i = 0; i <= c->nbseg; i++) {
        size_t end = i < c->nbseg ? c->bseg[i][0] : SIZE_MAX;
        while (t < c->npc && c->pc[t].offset < end) out[n++] = c->pc[t++];
        if (i == c->nbseg) break;
        out[n++] = lmz_piece_bytes(LMZ_PIECE_BINARY, c->bseg[i][0], (uint32_t)c->bseg[i][1],
                                   c->bseg[i][2] == SIZE_MAX
                                       ? 8.0 * (double)chain_bytes * (double)c->bseg[i][1] / (double)chained
                                       : 8.0 * (double)c->bseg[i][2]);
    }
    f->pieces = out;
    f->npieces = n;
}

/* The ensembles' updates after a position's tokens: the bias head's steps
 * over the vocabulary shared among the threads by ranges of entries (each
 * entry sees the streams' steps in stream order, as on one thread: the same
 * bits), then the rest of each update in stream order. Group g's streams
 * are st[run[g] .. run[g + 1]), with the ensemble ens[g]. */
typedef struct {
    lmz_ens *const *ens;
    const size_t *run, *st;
    const int32_t *tok;
    size_t groups;
} rows_job;

#define ROWS_UNIT 64 /* vocabulary entries per unit of the split: whole cache lines */

static void update_rows(void *ctx, size_t b, size_t e, unsigned th)
{
    (void)th;
    const rows_job *j = ctx;
    for (size_t g = 0; g < j->groups; g++)
        lmz_ens_update_rows(j->ens[g], j->st + j->run[g], j->tok + j->run[g], j->run[g + 1] - j->run[g],
                            (uint32_t)(b * ROWS_UNIT), (uint32_t)(e * ROWS_UNIT));
}

/* the rest of the updates: in stream order within a group, the groups apart */
static void update_rest(void *ctx, size_t b, size_t e, unsigned th)
{
    (void)th;
    const rows_job *j = ctx;
    for (size_t g = b; g < e; g++)
        for (size_t i = j->run[g]; i < j->run[g + 1]; i++) lmz_ens_update_rest(j->ens[g], j->st[i], j->tok[i]);
}

/* the rest of the updates, after every range of update_rows */
static void update_rest_all(lmz_lm *lm, lmz_ens *const *ens, const size_t *run, size_t groups, const size_t *st,
                            const int32_t *tok)
{
    rows_job j = {ens, run, st, tok, groups};
    /* a few tables' buckets a stream: worth the threads only for many groups' streams */
    lmz_pool_for_work(lm->pool, groups, 4096.0 * (double)run[groups], update_rest, &j);
}

static void update_ensembles(lmz_lm *lm, lmz_ens *const *ens, const size_t *run, size_t groups, const size_t *st,
                             const int32_t *tok)
{
    rows_job j = {ens, run, st, tok, groups};
    size_t k = run[groups];
    lmz_pool_for_work(lm->pool, (lm->V + ROWS_UNIT - 1) / ROWS_UNIT, 4.0 * (double)k * (double)lm->V, update_rows, &j);
    update_rest_all(lm, ens, run, groups, st, tok);
}

/* the adaptive head of every stream of each group on a range of the
 * vocabulary (lmz_ens_head_rows), after each stream's lmz_ens_head_begin:
 * unit u is blocks bound[u] .. bound[u + 1] - 1 of LMZ_ENS_HEAD_BLOCK
 * entries, the units alike in work (run_head_rows) */
#define HEAD_UNITS 64
_Static_assert(ROWS_UNIT % LMZ_ENS_HEAD_BLOCK == 0, "update_rows' ranges keep each block's count on one thread");

typedef struct {
    rows_job r;
    uint32_t bound[HEAD_UNITS + 1];
} head_rows_job;

static void head_rows(void *ctx, size_t b, size_t e, unsigned th)
{
    (void)th;
    const head_rows_job *j = ctx;
    const uint32_t v0 = j->bound[b] * LMZ_ENS_HEAD_BLOCK, v1 = j->bound[e] * LMZ_ENS_HEAD_BLOCK;
    for (size_t g = 0; g < j->r.groups; g++)
        lmz_ens_head_rows(j->r.ens[g], j->r.st + j->r.run[g], j->r.run[g + 1] - j->r.run[g], v0, v1);
}

/* a block's work: its rows that have come (a product with each stream's
 * vector), and about one row's more for the whole block (copied, scanned) */
static double block_work(lmz_ens *const *ens, const size_t *run, size_t groups, uint32_t b)
{
    double w = 0;
    for (size_t g = 0; g < groups; g++) {
        const uint32_t *come = lmz_ens_head_come(ens[g]);
        w += (double)(run[g + 1] - run[g]) * ((come ? come[b] : 0) + 1.0);
    }
    return w;
}

/* The units' bounds, the units alike in work: the commonest tokens have the
 * lowest numbers, and equal ranges of the vocabulary took 2 : 1 of the
 * time on alice29.txt. Any split gives the same logits. */
static void run_head_rows(lmz_lm *lm, lmz_ens *const *ens, const size_t *run, size_t groups, const size_t *st,
                          size_t dim)
{
    const uint32_t nb = (lm->V + LMZ_ENS_HEAD_BLOCK - 1) / LMZ_ENS_HEAD_BLOCK;
    const size_t units = nb < HEAD_UNITS ? nb : HEAD_UNITS;
    head_rows_job j = {{ens, run, st, NULL, groups}, {0}};
    double total = 0, acc = 0;
    for (uint32_t b = 0; b < nb; b++) total += block_work(ens, run, groups, b);
    size_t u = 1;
    for (uint32_t b = 0; b < nb && u < units; b++) {
        acc += block_work(ens, run, groups, b);
        while (u < units && acc >= total * (double)u / (double)units) j.bound[u++] = b + 1;
    }
    for (; u <= units; u++) j.bound[u] = nb;
    lmz_pool_for_work(lm->pool, units, (double)run[groups] * (double)lm->V * (double)dim, head_rows, &j);
}

/* the cache's similarities of every stream of each group to blocks of its
 * rows (lmz_ens_cache_rows), after each stream's lmz_ens_head_begin */
#define CACHE_UNIT 16 /* blocks of 16 rows per unit of the split */
static void cache_rows(void *ctx, size_t b, size_t e, unsigned th)
{
    (void)th;
    const rows_job *j = ctx;
    for (size_t g = 0; g < j->groups; g++)
        lmz_ens_cache_rows(j->ens[g], j->st + j->run[g], j->run[g + 1] - j->run[g], b * CACHE_UNIT, e * CACHE_UNIT);
}

static void run_cache_rows(lmz_lm *lm, lmz_ens *const *ens, const size_t *run, size_t groups, const size_t *st,
                           size_t dim)
{
    size_t nb = 0;
    for (size_t g = 0; g < groups; g++) {
        size_t b = lmz_ens_cache_blocks(ens[g]);
        nb = b > nb ? b : nb;
    }
    if (!nb) return;
    rows_job j = {ens, run, st, NULL, groups};
    lmz_pool_for_work(lm->pool, (nb + CACHE_UNIT - 1) / CACHE_UNIT, (double)run[groups] * (double)nb * 16.0 * (double)dim,
                      cache_rows, &j);
}

/* the cache's similarities of the ahead queries (lmz_ens_cache_ahead) to
 * blocks of its rows */
static void ahead_rows(void *ctx, size_t b, size_t e, unsigned th)
{
    (void)th;
    lmz_ens_cache_ahead_rows(ctx, b * CACHE_UNIT, e * CACHE_UNIT);
}

/* one token of each active frame, from the same ensemble state */
typedef struct {
    lmz_lm *lm;
    lmz_ens *ens;
    cframe *c;
    const size_t *act;   /* frames */
    float *logits;       /* frame i's token at logits + row[i] * V (the adaptive head rewrites them) */
    const size_t *row;
    size_t at;           /* the tokens' position */
    lmz_tb *tb;          /* det-f32-v4: the group's bit coder */
    const float *hidden; /* the adaptive head's: frame i's at hidden + row[i] * dim, or NULL */
    size_t dim;
    size_t ahead; /* 1 + the first ahead query of this position (stream s's: that + s), or 0 */
} enc_job;

static void encode_heads(void *ctx, size_t b, size_t e, unsigned th)
{
    (void)th;
    enc_job *j = ctx;
    for (size_t i = b; i < e; i++) {
        cframe *c = &j->c[j->act[i]];
        float *lg = j->row[i] == SIZE_MAX ? NULL : j->logits + j->row[i] * j->lm->V;
        lmz_ens_head_begin(j->ens, c->sidx, lg, lg ? j->hidden + j->row[i] * j->dim : NULL);
        if (j->ahead) lmz_ens_cache_ahead_take(j->ens, c->sidx, j->ahead - 1 + c->sidx);
    }
}

static void encode_tokens(void *ctx, size_t b, size_t e, unsigned th)
{
    (void)th;
    enc_job *j = ctx;
    const unsigned bits = j->lm->p.ens.cdf_bits;
    for (size_t i = b; i < e; i++) {
        cframe *c = &j->c[j->act[i]];
        const float *lg = j->row[i] == SIZE_MAX ? NULL : j->logits + j->row[i] * j->lm->V;
        const float *h = lg && j->hidden ? j->hidden + j->row[i] * j->dim : NULL;
        const uint32_t *cum = lmz_ens_predict_hidden(j->ens, c->sidx, lg, h);
        if (j->lm->p.ens.profile >= LMZ_ENS_V4) { /* coded after, in stream order */
            c->cum = cum;
            lmz_tb_prepare_freq(j->tb, c->sidx, lmz_ens_freq(j->ens, c->sidx));
            continue;
        }
        int32_t x = c->toks[j->at];
        lmz_rc_encode(&c->rc, cum[x], cum[x + 1] - cum[x], 1u << bits);
        double cost = lmz_ens_cost(j->ens, c->sidx, x);
        c->st.text_bits += cost;
        explain_token(j->lm, j->ens, c, j->at, cost);
        if (j->lm->p.ideal) c->st.ideal_bits += lmz_ens_cost_ideal(j->ens, c->sidx, x);
    }
}

/* Compressing, the tokens are known before the bit coder's walks, and the
 * walks (one after another, in frame order: the bit coder learns) touch
 * nothing the update's vocabulary part (lmz_ens_update_rows) touches: range
 * 0 of this job walks, then every range takes the vocabulary's units a few
 * at a time until none are left (disjoint ranges of rows: any split gives
 * the same bits), so with two threads one walks while the other updates. */
#define WALK_UNITS 8 /* units of ROWS_UNIT taken at a time */
typedef struct {
    enc_job *ej;
    size_t na;
    rows_job rows;
    atomic_size_t next; /* the first unit not yet taken */
    int err;
} walks_job;

static void walks_and_rows(void *ctx, size_t b, size_t e, unsigned th)
{
    (void)e; /* range b = 0 walks; every range updates */
    walks_job *w = ctx;
    const enc_job *j = w->ej;
    const size_t units = (j->lm->V + ROWS_UNIT - 1) / ROWS_UNIT;
    for (size_t i = 0; b == 0 && i < w->na && !w->err; i++) {
        cframe *x = &j->c[j->act[i]];
        double bits = 0;
        if (lmz_tb_encode(j->tb, x->sidx, x->cum, x->toks[j->at], &x->rc, &bits) != 0) w->err = LMZ_ERROR_NOMEM;
        x->st.text_bits += bits;
        x->st.ideal_bits += bits;
        explain_token(j->lm, j->ens, x, j->at, bits);
    }
    for (;;) {
        size_t u = atomic_fetch_add(&w->next, WALK_UNITS);
        if (u >= units) break;
        update_rows(&w->rows, u, u + WALK_UNITS < units ? u + WALK_UNITS : units, th);
    }
}

/* The text of the group's frames that are `in`, with one ensemble: every
 * frame's model over chunks of its tokens (prefill), then position by
 * position the tables of all frames from one state, then the updates in
 * frame order. @return LMZ_OK (a frame whose coding overflowed has rc
 * overrun) or an error. */
static int code_texts(lmz_lm *lm, cframe *c, size_t k)
{
    const uint32_t V = lm->V;
    const int need_model = (lm->p.ens.parts & LMZ_ENS_MODEL) != 0;
    size_t m = 0, longest = 0, all_tokens = 0, max_tokens[LMZ_ENS_STREAMS_MAX];
    size_t act[LMZ_ENS_STREAMS_MAX], row[LMZ_ENS_STREAMS_MAX], who[LMZ_ENS_STREAMS_MAX], sidx[LMZ_ENS_STREAMS_MAX];
    size_t first[LMZ_ENS_STREAMS_MAX]; /* the chunk's first row of logits of each frame */
    int32_t toks[LMZ_ENS_STREAMS_MAX];
    for (size_t i = 0; i < k; i++)
        if (c[i].in && c[i].ntok) {
            c[i].sidx = m;
            who[m] = i;
            max_tokens[m++] = c[i].ntok;
            all_tokens += c[i].ntok;
            if (c[i].ntok > longest) longest = c[i].ntok;
        }
    if (m == 0) return LMZ_OK;
    /* chunks: up to 64 tokens a frame, logits of at most about 64 MiB */
    size_t budget = ((size_t)64 << 20) / ((size_t)V * sizeof(float)), chunk = budget / m;
    if (chunk > PREFILL_CHUNK) chunk = PREFILL_CHUNK;
    if (chunk < 4) chunk = 4;
    int err = LMZ_OK;
    lmz_ens *ens = lmz_ens_new(&lm->p.ens, V, m, max_tokens);
    lmz_tb *tb = NULL;
    if (lm->p.ens.profile >= LMZ_ENS_V4) {
        size_t text_bytes[LMZ_ENS_STREAMS_MAX];
        for (size_t s = 0; s < m; s++) text_bytes[s] = c[who[s]].st.text_bytes;
        if (!(tb = lmz_tb_new(lm->tbv, lm->p.table_bits, m, text_bytes, refine_on(lm)))) err = LMZ_ERROR_NOMEM;
    }
    float *logits = need_model ? logits_get(lm, m * chunk * V) : NULL;
    int32_t *in = malloc(m * chunk * sizeof *in);
    if (!ens || (need_model && !logits) || !in) err = LMZ_ERROR_NOMEM;
    const size_t D = lmz_model_dim(lm->m);
    float *hidden = NULL; /* the adaptive head's input, beside the logits */
    if (!err && head_on(lm) &&
        (lmz_ens_set_dim(ens, (uint32_t)D) != 0 || !(hidden = lmz_alloc64(m * chunk * D * sizeof *hidden))))
        err = LMZ_ERROR_NOMEM;
    /* the cache's similarities for `span` positions at a time (each row read
     * once for all their queries), as many as its room for queries allows */
    size_t span = 0, amax = hidden ? lmz_ens_cache_ahead_max(ens) : 0;
    const float **hs = NULL;
    if (amax >= m) {
        span = amax / m < 16 ? amax / m : 16;
        if (!(hs = malloc(span * m * sizeof *hs))) err = LMZ_ERROR_NOMEM;
    }
    for (size_t s = 0; s < m && !err; s++) {
        cframe *x = &c[who[s]];
        if (need_model && !(x->state = state_get(lm))) err = LMZ_ERROR_NOMEM;
        lmz_rc_enc_init(&x->rc, x->f->out + x->head, x->f->cap - x->head);
        x->st.text_bits = x->st.ideal_bits = 0;
        x->npc = 0;
    }
    for (size_t at = 0; at < longest && !err; at += chunk) {
        if (need_model) { /* every frame's next tokens in one prefill: each weight read once for all */
            size_t all = 0, np = 0, plen[LMZ_ENS_STREAMS_MAX];
            lmz_state *pst[LMZ_ENS_STREAMS_MAX];
            for (size_t s = 0; s < m; s++) {
                cframe *x = &c[who[s]];
                first[s] = all; /* frame s's rows of logits, packed */
                if (x->ntok <= at) continue;
                size_t len = x->ntok - at < chunk ? x->ntok - at : chunk;
                for (size_t i = 0; i < len; i++) in[all + i] = at + i == 0 ? lm->start : x->toks[at + i - 1];
                pst[np] = x->state;
                plen[np++] = len;
                all += len;
            }
            if (lmz_model_prefill_many(lm->m, pst, in, plen, np, logits, hidden) != 0) err = LMZ_ERROR_CORRUPT;
        }
        for (size_t i = 0; i < chunk && at + i < longest && !err; i++) {
            size_t na = 0;
            for (size_t s = 0; s < m; s++)
                if (c[who[s]].ntok > at + i) {
                    act[na] = who[s];
                    row[na++] = need_model ? first[s] + i : SIZE_MAX;
                }
            if (span && i % span == 0) { /* the next span positions' queries: hs[(p - i) m + s] */
                size_t np = chunk - i < span ? chunk - i : span;
                for (size_t p = 0; p < np; p++)
                    for (size_t s = 0; s < m; s++)
                        hs[p * m + s] = c[who[s]].ntok > at + i + p ? hidden + (first[s] + i + p) * D : NULL;
                lmz_ens_cache_ahead(ens, hs, np * m);
                size_t nb = lmz_ens_cache_blocks(ens);
                lmz_pool_for_work(lm->pool, (nb + CACHE_UNIT - 1) / CACHE_UNIT,
                                  (double)(np * m) * (double)nb * 16.0 * (double)D, ahead_rows, ens);
            }
            enc_job ej = {lm, ens, c, act, logits, row, at + i, tb, hidden, D, span ? 1 + i % span * m : 0};
            size_t run[2] = {0, na}; /* one group: the ensemble's */
            for (size_t j = 0; j < na; j++) {
                sidx[j] = c[act[j]].sidx;
                toks[j] = c[act[j]].toks[at + i];
            }
            if (hidden) { /* the adaptive head reads each of its rows once for all streams */
                lmz_pool_for_work(lm->pool, na, (double)na * V, encode_heads, &ej);
                run_head_rows(lm, &ens, run, 1, sidx, D);
                if (!span) run_cache_rows(lm, &ens, run, 1, sidx, D);
            }
            lmz_pool_for_work(lm->pool, na, (double)na * V * 8.0, encode_tokens, &ej);
            if (tb) { /* the bit coder's walks beside the update's vocabulary part */
                walks_job wj = {&ej, na, {&ens, run, sidx, toks, 1}, 0, LMZ_OK};
                atomic_init(&wj.next, 0);
                lmz_pool_for(lm->pool, lmz_pool_threads(lm->pool), walks_and_rows, &wj);
                err = wj.err;
                if (!err) update_rest_all(lm, &ens, run, 1, sidx, toks);
            } else {
                update_ensembles(lm, &ens, run, 1, sidx, toks);
            }
        }
        if (lm->progress && !err) {
            size_t done = 0;
            double bits = 0;
            for (size_t s = 0; s < m; s++) {
                const cframe *x = &c[who[s]];
                done += x->ntok < at + chunk ? x->ntok : at + chunk;
                bits += x->st.text_bits;
            }
            lm->progress(lm->progress_opaque, (double)done / (double)all_tokens, bits);
        }
    }
    if (ens) c[who[0]].st.skipped = lmz_ens_skipped(ens); /* the group's, counted once */
    lmz_ens_free(ens);
    lmz_tb_free(tb);
    free(hidden);
    free(hs);
    free(in);
    for (size_t s = 0; s < m; s++) {
        state_put(lm, c[who[s]].state);
        c[who[s]].state = NULL;
    }
    return err;
}

int lmz_lm_compress_group(lmz_lm *lm, lmz_lm_cframe *f, size_t k)
{
    if (k == 0 || k > LMZ_ENS_STREAMS_MAX) return LMZ_ERROR_PARAM;
    for (size_t i = 0; i < k; i++) {
        f[i].out_len = 0;
        if (f[i].n == 0 || f[i].n > LMZ_LM_FRAME_MAX) return LMZ_ERROR_PARAM;
    }
    cframe *c = calloc(k, sizeof *c);
    if (!c) return LMZ_ERROR_NOMEM;
    for (size_t i = 0; i < k; i++) c[i].f = &f[i];
    head_job hj = {lm, c};
    lmz_pool_for(lm->pool, k, heads, &hj);
    int err = LMZ_OK;
    for (size_t i = 0; i < k; i++) {
        if (c[i].err && !err) err = c[i].err;
        c[i].in = c[i].head != SIZE_MAX;
    }
    /* a frame whose text overflows is stored; the others, which learnt
     * from its tokens, are coded again without it */
    for (int again = 1; again && !err;) {
        if ((err = code_texts(lm, c, k)) != LMZ_OK) break;
        again = 0;
        for (size_t i = 0; i < k; i++) {
            if (!c[i].in) continue;
            size_t t = !c[i].ntok ? 0
                       : lm->p.ens.profile == LMZ_ENS_V1 ? lmz_rc_enc_finish(&c[i].rc)
                                                        : lmz_rc_enc_finish_short(&c[i].rc);
            if (c[i].ntok && t == 0) {
                c[i].in = 0;
                again = 1;
            } else {
                f[i].out_len = c[i].head + t;
            }
        }
    }
    for (size_t i = 0; i < k; i++) {
        f[i].pieces = NULL;
        f[i].npieces = 0;
        if (!err && c[i].in) explain_finish(&c[i], &f[i]);
        free(c[i].tok_off);
        free(c[i].tok_len);
        free(c[i].bseg);
        free(c[i].pc);
        if (!err && c[i].in) {
            lmz_lm_stats *s = &lm->st, *x = &c[i].st;
            s->text_bytes += x->text_bytes;
            s->tokens += c[i].ntok;
            s->text_bits += x->text_bits;
            s->ideal_bits += x->ideal_bits;
            s->text_coded += f[i].out_len - c[i].head;
            s->skipped += x->skipped;
            s->binary_bytes += x->binary_bytes;
            s->binary_coded += x->binary_coded;
        } else {
            f[i].out_len = 0;
        }
        free(c[i].toks);
    }
    free(c);
    return err;
}

/* ------------------------------------------------------------------------ */
/* decompression                                                             */
/* ------------------------------------------------------------------------ */

typedef struct {
    segment *seg;
    size_t ns;
    int32_t *toks;
    size_t ntok, done;
    lmz_ens *ens;  /* its group's (not owned) */
    size_t sidx;   /* its stream there */
    lmz_tb *tb;    /* det-f32-v4: its group's bit coder (not owned) */
    const uint32_t *cum; /* ... and its table for the token at hand */
    size_t text_bytes;
    int nomem;
    lmz_state *st;
    lmz_rc_dec rc;
    int32_t last;
} dframe;

/* what a method-2 payload's segment table says */
typedef struct {
    size_t ns;
    uint64_t ntok, text_bytes;
    size_t chain_off, chain_len, chain_bytes; /* the chain's piece (kind 4) */
    size_t bin_off, bin_len;                  /* the coded bytes of kinds 1-3 */
    size_t text_off;                          /* the tokens' range coder stream */
} table_info;

/* Parse and check the segment table of payload p[0..len) for a frame of
 * orig bytes; the segments into seg when not NULL (room for t->ns, which
 * a first call without seg finds). @return LMZ_OK or LMZ_ERROR_CORRUPT. */
static int parse_table(const lmz_lm *lm, const uint8_t *p, size_t len, uint64_t orig, segment *seg, table_info *t)
{
    size_t pos = 0;
    uint64_t ns, a, b, total = 0, bin = 0, chained = 0;
    memset(t, 0, sizeof *t);
    /* a segment takes at least 3 bytes of the table: no large allocation on a lying count */
    if (lmz_get_varint(p, len, &pos, &ns) || ns == 0 || ns > orig || ns > len / 3) return LMZ_ERROR_CORRUPT;
    t->ns = (size_t)ns;
    for (size_t i = 0; i < ns; i++) {
        if (pos >= len) return LMZ_ERROR_CORRUPT;
        uint8_t k = p[pos++];
        if (k > LMZ_SEG_CHAIN || (k == LMZ_SEG_CHAIN && !lm->p.binary) || lmz_get_varint(p, len, &pos, &a) ||
            lmz_get_varint(p, len, &pos, &b))
            return LMZ_ERROR_CORRUPT;
        if (a == 0 || a > orig - total) return LMZ_ERROR_CORRUPT;
        segment sg = {k, (size_t)a, (size_t)b, 0};
        total += a;
        if (k == LMZ_SEG_TEXT) {
            if (b == 0 || b > a * TOKENS_PER_BYTE) return LMZ_ERROR_CORRUPT;
            t->text_bytes += a;
            sg.off = (size_t)t->ntok;
            t->ntok += b;
        } else if (k == LMZ_SEG_CHAIN) {
            if (b != 0) return LMZ_ERROR_CORRUPT;
            sg.off = (size_t)chained;
            chained += a;
        } else {
            if (b == 0 || b > len) return LMZ_ERROR_CORRUPT;
            sg.off = (size_t)bin;
            bin += b;
        }
        if (seg) seg[i] = sg;
    }
    if (total != orig) return LMZ_ERROR_CORRUPT;
    if (chained) {
        uint64_t l;
        if (lmz_get_varint(p, len, &pos, &l) || l == 0 || l > len - pos) return LMZ_ERROR_CORRUPT;
        t->chain_off = pos;
        t->chain_len = (size_t)l;
        t->chain_bytes = (size_t)chained;
        pos += (size_t)l;
    }
    if (bin > len - pos) return LMZ_ERROR_CORRUPT;
    t->bin_off = pos;
    t->bin_len = (size_t)bin;
    t->text_off = pos + (size_t)bin;
    return LMZ_OK;
}

int lmz_lm_frame_chain(const lmz_lm *lm, const uint8_t *payload, size_t comp_size, size_t orig_size, size_t *off,
                       size_t *len, size_t *bytes)
{
    table_info t;
    *off = *len = *bytes = 0;
    int e = parse_table(lm, payload, comp_size, orig_size, NULL, &t);
    if (e) return e;
    *off = t.chain_off;
    *len = t.chain_len;
    *bytes = t.chain_bytes;
    return LMZ_OK;
}

/* Parse the segment table, decode the binary segments, set up the text. */
static int frame_open(lmz_lm *lm, lmz_lm_frame *f, dframe *d)
{
    const uint8_t *p = f->payload;
    const size_t len = f->comp_size;
    table_info t;
    int e = parse_table(lm, p, len, f->orig_size, NULL, &t);
    if (e) return e;
    if (!(d->seg = calloc(t.ns, sizeof *d->seg))) return LMZ_ERROR_NOMEM;
    d->ns = t.ns;
    parse_table(lm, p, len, f->orig_size, d->seg, &t);
    if (t.chain_bytes && !f->chain_bytes) return LMZ_ERROR_CORRUPT; /* the caller has not decoded the piece */
    d->text_bytes = (size_t)t.text_bytes;
    size_t at = 0;
    for (size_t i = 0; i < t.ns; i++) {
        const segment *sg = &d->seg[i];
        if (sg->kind == LMZ_SEG_CHAIN) {
            memcpy(f->dst + at, f->chain_bytes + sg->off, sg->len);
        } else if (sg->kind != LMZ_SEG_TEXT) {
            e = binary_decode(lm, sg->kind, p + t.bin_off + sg->off, sg->count, f->dst + at, sg->len);
            if (e) return e;
        }
        at += sg->len;
    }
    size_t pos = t.text_off;
    d->ntok = (size_t)t.ntok;
    if (d->ntok == 0) return pos == len ? LMZ_OK : LMZ_ERROR_CORRUPT;
    d->toks = malloc(d->ntok * sizeof *d->toks);
    d->st = state_get(lm);
    if (!d->toks || !d->st) return LMZ_ERROR_NOMEM;
    if (lm->p.ens.profile == LMZ_ENS_V1) lmz_rc_dec_init(&d->rc, p + pos, len - pos);
    else lmz_rc_dec_init_short(&d->rc, p + pos, len - pos);
    d->last = lm->start;
    return LMZ_OK;
}

/* The text segments' bytes from the decoded tokens. */
static int frame_close(lmz_lm *lm, lmz_lm_frame *f, dframe *d)
{
    if (d->ntok && !lmz_rc_dec_finished_cleanly(&d->rc)) return LMZ_ERROR_CORRUPT;
    size_t at = 0;
    for (size_t i = 0; i < d->ns; i++) {
        if (d->seg[i].kind == LMZ_SEG_TEXT) {
            long c = lmz_tokenizer_decode(lm->tok, d->toks + d->seg[i].off, d->seg[i].count, f->dst + at,
                                          d->seg[i].len);
            if (c < 0 || (size_t)c != d->seg[i].len) return LMZ_ERROR_CORRUPT;
        }
        at += d->seg[i].len;
    }
    return LMZ_OK;
}

static void frame_free(lmz_lm *lm, dframe *d)
{
    free(d->seg);
    free(d->toks);
    state_put(lm, d->st);
    memset(d, 0, sizeof *d);
}

/* one token of each active frame after a model step, all from the same
 * ensemble states: the frames are spread over the threads */
typedef struct {
    lmz_lm *lm;
    dframe *d;
    const size_t *act;
    const size_t *row; /* each active frame's logits row, or SIZE_MAX: none */
    float *logits; /* the adaptive head rewrites them */
    const float *hidden; /* the adaptive head's, a row of dim beside each row of logits, or NULL */
    size_t dim;
} token_job;

static void decode_heads(void *ctx, size_t b, size_t e, unsigned th)
{
    (void)th;
    token_job *j = ctx;
    for (size_t i = b; i < e; i++) {
        dframe *x = &j->d[j->act[i]];
        float *lg = j->row[i] == SIZE_MAX ? NULL : j->logits + j->row[i] * j->lm->V;
        lmz_ens_head_begin(x->ens, x->sidx, lg, lg && j->hidden ? j->hidden + j->row[i] * j->dim : NULL);
    }
}

static void decode_tokens(void *ctx, size_t b, size_t e, unsigned th)
{
    (void)th;
    token_job *j = ctx;
    const uint32_t total = 1u << j->lm->p.ens.cdf_bits;
    for (size_t i = b; i < e; i++) {
        dframe *x = &j->d[j->act[i]];
        const float *lg = j->row[i] == SIZE_MAX ? NULL : j->logits + j->row[i] * j->lm->V;
        const float *h = lg && j->hidden ? j->hidden + j->row[i] * j->dim : NULL;
        const uint32_t *cum = lmz_ens_predict_hidden(x->ens, x->sidx, lg, h);
        if (x->tb) { /* decoded after, in stream order */
            x->cum = cum;
            lmz_tb_prepare_freq(x->tb, x->sidx, lmz_ens_freq(x->ens, x->sidx));
            continue;
        }
        uint32_t target = lmz_rc_decode_target(&x->rc, total);
        uint32_t s = lmz_cdf_find(cum, j->lm->V, target);
        lmz_rc_decode_update(&x->rc, cum[s], cum[s + 1] - cum[s], total);
        x->toks[x->done++] = x->last = (int32_t)s;
    }
}

/* then the tokens of the bit coder: in frame order within a group, the
 * groups apart */
typedef struct {
    dframe *d;
    const size_t *act;
    const size_t *run; /* group r is act[run[r] .. run[r + 1]) */
} walk_job;

/* a stream's token from the bit coder (none there: decode_tokens has it) */
static void walk_one(dframe *x)
{
    if (!x->tb) return;
    int32_t t = lmz_tb_decode(x->tb, x->sidx, x->cum, &x->rc);
    if (t < 0) {
        x->nomem = 1;
        t = 0;
    }
    x->toks[x->done++] = x->last = t;
}

static void decode_walks(void *ctx, size_t b, size_t e, unsigned th)
{
    (void)th;
    walk_job *j = ctx;
    for (size_t r = b; r < e; r++)
        for (size_t i = j->run[r]; i < j->run[r + 1]; i++) walk_one(&j->d[j->act[i]]);
}

/* With one group, a stream's token is known once the bit coder has walked
 * it, and the update's vocabulary part (lmz_ens_update_rows) of that stream
 * may start then: part 0 of this job walks the streams in frame order and
 * part 1 takes each stream's update over the whole vocabulary as soon as
 * its token is out. Each entry still sees the streams' steps in stream
 * order (the same bits as update_ensembles), and the walks touch nothing
 * those steps touch (as when compressing: walks_and_rows). One thread runs
 * part 0, then part 1. */
typedef struct {
    dframe *d;
    const size_t *act;
    size_t na;
    lmz_ens *ens;
    const size_t *sidx;
    int32_t *toks;
    uint32_t V;
    atomic_size_t walked; /* streams act[0 .. walked) have their tokens in toks */
} walk_rows_job;

static void walks_then_rows(void *ctx, size_t b, size_t e, unsigned th)
{
    (void)th;
    walk_rows_job *j = ctx;
    if (b == 0) /* part 0: the walks */
        for (size_t i = 0; i < j->na; i++) {
            walk_one(&j->d[j->act[i]]);
            j->toks[i] = j->d[j->act[i]].last;
            atomic_store_explicit(&j->walked, i + 1, memory_order_release);
        }
    if (e == 2) /* part 1: each stream's update once its token is out */
        for (size_t i = 0; i < j->na; i++) {
            for (unsigned polls = 0; atomic_load_explicit(&j->walked, memory_order_acquire) <= i; polls++)
                lmz_pool_relax(polls);
            lmz_ens_update_rows(j->ens, &j->sidx[i], &j->toks[i], 1, 0, j->V);
        }
}

/* One ensemble for each group of the opened frames with text. */
static int make_ensembles(lmz_lm *lm, lmz_lm_frame *f, dframe *d, size_t k, lmz_ens **ens, lmz_tb **tbs,
                          size_t *nens)
{
    size_t max_tokens[LMZ_ENS_STREAMS_MAX], text_bytes[LMZ_ENS_STREAMS_MAX];
    for (size_t i = 0; i < k;) {
        size_t m = 0, e = i;
        for (; e < k && f[e].group == f[i].group; e++)
            if (!f[e].err && d[e].ntok) {
                if (m == LMZ_ENS_STREAMS_MAX) return LMZ_ERROR_CORRUPT;
                d[e].sidx = m;
                text_bytes[m] = d[e].text_bytes;
                max_tokens[m++] = d[e].ntok;
            }
        if (m) {
            lmz_ens *x = lmz_ens_new(&lm->p.ens, lm->V, m, max_tokens);
            if (!x) return LMZ_ERROR_NOMEM;
            ens[*nens] = x;
            if (head_on(lm) && lmz_ens_set_dim(x, lmz_model_dim(lm->m)) != 0) {
                tbs[(*nens)++] = NULL;
                return LMZ_ERROR_NOMEM;
            }
            lmz_tb *tb = NULL;
            if (lm->p.ens.profile >= LMZ_ENS_V4 &&
                !(tb = lmz_tb_new(lm->tbv, lm->p.table_bits, m, text_bytes, refine_on(lm)))) {
                ++*nens;
                return LMZ_ERROR_NOMEM;
            }
            tbs[(*nens)++] = tb;
            for (size_t j = i; j < e; j++)
                if (!f[j].err && d[j].ntok) {
                    d[j].ens = x;
                    d[j].tb = tb;
                }
        }
        i = e;
    }
    return LMZ_OK;
}

void lmz_lm_decompress_frames(lmz_lm *lm, lmz_lm_frame *f, size_t k)
{
    size_t k1 = k ? k : 1, nens = 0;
    dframe *d = calloc(k1, sizeof *d);
    size_t *act = malloc(k1 * sizeof *act);
    lmz_state **states = malloc(k1 * sizeof *states);
    int32_t *in = malloc(k1 * sizeof *in);
    float *logits = malloc(k1 * (size_t)lm->V * sizeof *logits);
    const size_t D = lmz_model_dim(lm->m);
    const int head = head_on(lm);
    float *hidden = head ? malloc(k1 * D * sizeof *hidden) : NULL;
    uint8_t *need = malloc(k1);
    size_t *row = malloc(k1 * sizeof *row), *run = malloc((k1 + 1) * sizeof *run);
    lmz_ens **ens = calloc(k1, sizeof *ens);
    lmz_tb **tbs = calloc(k1, sizeof *tbs);
    lmz_ens **gens = malloc(k1 * sizeof *gens);
    size_t *sidx = malloc(k1 * sizeof *sidx);
    int32_t *toks = malloc(k1 * sizeof *toks);
    if (!d || !act || !states || !in || !logits || (head && !hidden) || !need || !row || !run || !ens || !tbs || !gens ||
        !sidx || !toks) {
        for (size_t i = 0; i < k; i++) f[i].err = LMZ_ERROR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < k; i++) f[i].err = frame_open(lm, &f[i], &d[i]);
    int e = make_ensembles(lm, f, d, k, ens, tbs, &nens);
    size_t na = 0;
    for (size_t i = 0; i < k; i++) {
        if (e && !f[i].err) f[i].err = e;
        if (!f[i].err && d[i].ntok) act[na++] = i;
    }
    const int need_model = (lm->p.ens.parts & LMZ_ENS_MODEL) != 0;
    size_t all_tokens = 0, steps = 0;
    for (size_t j = 0; j < na; j++) all_tokens += d[act[j]].ntok;
    while (na) {
        if (lm->progress && ++steps % 64 == 0) {
            size_t done = 0;
            for (size_t i = 0; i < k; i++) done += d[i].done;
            lm->progress(lm->progress_opaque, (double)done / (double)all_tokens, 0);
        }
        if (need_model) { /* every stream reads its token; the skipped ones get no logits */
            for (size_t j = 0; j < na; j++) {
                states[j] = d[act[j]].st;
                in[j] = d[act[j]].last;
                need[j] = (uint8_t)lmz_ens_wants_model(d[act[j]].ens, d[act[j]].sidx);
            }
            if (lmz_model_step_hidden(lm->m, states, in, na, logits, need, hidden) != 0) {
                for (size_t j = 0; j < na; j++) f[act[j]].err = LMZ_ERROR_CORRUPT;
                break;
            }
        }
        size_t r = 0, nrun = 0;
        for (size_t j = 0; j < na; j++) {
            row[j] = need_model && need[j] ? r++ : SIZE_MAX;
            if (j == 0 || d[act[j]].ens != d[act[j - 1]].ens) run[nrun++] = j;
        }
        run[nrun] = na;
        token_job tj = {lm, d, act, row, logits, hidden, D};
        for (size_t g = 0; g < nrun; g++) gens[g] = d[act[run[g]]].ens;
        for (size_t j = 0; j < na; j++) sidx[j] = d[act[j]].sidx;
        if (hidden) { /* the adaptive head reads each of its rows once for a group's streams */
            lmz_pool_for_work(lm->pool, na, (double)na * lm->V, decode_heads, &tj);
            run_head_rows(lm, gens, run, nrun, sidx, D);
            run_cache_rows(lm, gens, run, nrun, sidx, D);
        }
        lmz_pool_for_work(lm->pool, na, (double)na * lm->V * 8.0, decode_tokens, &tj);
        if (nrun == 1 && na > 1 && lmz_pool_threads(lm->pool) > 1) { /* the updates behind the walks */
            walk_rows_job wr = {d, act, na, gens[0], sidx, toks, lm->V, 0};
            atomic_init(&wr.walked, 0);
            lmz_pool_for(lm->pool, 2, walks_then_rows, &wr);
            update_rest_all(lm, gens, run, nrun, sidx, toks);
        } else {
            walk_job wj = {d, act, run};
            lmz_pool_for_work(lm->pool, nrun, (double)na * lm->V, decode_walks, &wj);
            for (size_t j = 0; j < na; j++) toks[j] = d[act[j]].last;
            update_ensembles(lm, gens, run, nrun, sidx, toks);
        }
        size_t keep = 0;
        for (size_t j = 0; j < na; j++) {
            dframe *x = &d[act[j]];
            if (x->nomem) f[act[j]].err = LMZ_ERROR_NOMEM;
            else if (x->done < x->ntok && !x->rc.overrun && !x->rc.corrupt) act[keep++] = act[j];
            else if (x->done < x->ntok) f[act[j]].err = LMZ_ERROR_CORRUPT; /* damaged or cut short */
        }
        na = keep;
    }
    for (size_t i = 0; i < k; i++)
        if (!f[i].err) f[i].err = frame_close(lm, &f[i], &d[i]);
out:
    if (d)
        for (size_t i = 0; i < k; i++) frame_free(lm, &d[i]);
    if (ens)
        for (size_t i = 0; i < nens; i++) lmz_ens_free(ens[i]);
    if (tbs)
        for (size_t i = 0; i < nens; i++) lmz_tb_free(tbs[i]);
    free(ens);
    free(tbs);
    free(d);
    free(act);
    free(states);
    free(in);
    free(logits);
    free(hidden);
    free(need);
    free(row);
    free(run);
    free(gens);
    free(sidx);
    free(toks);
}
