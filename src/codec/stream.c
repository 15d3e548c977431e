/*
 * stream.c — compress, decompress and list .lmz streams (format.h).
 *
 * Input is cut into frames of `frame_size` bytes. Up to `threads` frames are
 * held at once and coded in parallel, one thread per frame; results are
 * written in input order, so the output does not depend on the thread count.
 * Buffers grow with what is read, never with what a size field or a thread
 * count promises; decompression counts what a batch of frames needs against
 * the caller's memory limit before allocating it.
 */
#define _DEFAULT_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "lmzip.h"
#include "format.h"
#include "../common/rangecoder.h"
#include "lmcodec.h"
#include "settings.h"
#include "../common/sysinfo.h"
#include "../common/varint.h"
#include "../model/model.h"
#include "../predict/bytemodel.h"

#define MAX_THREADS 256

/* With a model and automatic frames, a file is cut into LM_FRAMES_WANTED
 * frames (decoded side by side, so decompression has that many streams to
 * batch), each of about LM_FRAME_MIN .. LM_FRAME_MAX bytes (no short last
 * frame); input of unknown size takes LM_FRAME_UNKNOWN. The frames of a
 * group share their statistics, so smaller frames cost less ratio than they
 * would alone; eight streams decode as fast as sixteen on two threads and
 * longer frames code smaller (docs/BENCHMARKS.md). */
#define LM_FRAMES_WANTED 8
#define LM_FRAME_MIN (16u << 10)
#define LM_FRAME_MAX (512u << 10)
#define LM_FRAME_UNKNOWN (256u << 10)

void lmz_params_default(lmz_params *p)
{
    memset(p, 0, sizeof *p);
    p->frame_size = 0; /* automatic */
    p->threads = 1;
    p->table_bits = LMZ_BM_TABLE_BITS_DEFAULT;
    p->model = "none";
    p->size_hint = LMZ_SIZE_UNKNOWN;
    lmz_ens_params e;
    lmz_ens_params_default(&e);
    p->parts = e.parts;
    p->mixer = e.mixer;
    p->ngram_bits = e.ngram_bits;
    p->cdf_bits = e.cdf_bits;
    p->text_min = LMZ_LM_TEXT_MIN_DEFAULT;
    p->window = 0;
    p->bias_lr = e.bias_lr;
    p->mix_lr = e.mix_lr;
    p->stats = NULL;
    p->skip_mbits = 0;
    p->cache_rows = e.cache_rows;
    p->head_lr = e.head_lr;
    p->group = 0; /* automatic */
    p->binary = 1;
    p->lm_profile = 0;
}

int lmz_model_check(const char *path, char *err, size_t errlen)
{
    lmz_model_ref *r;
    int e = lmz_model_load(path, &r, err, errlen);
    lmz_model_unload(r);
    return e == LMZ_OK ? LMZ_OK : LMZ_ERROR_MODEL;
}

unsigned lmz_cores_available(void) { return lmz_sys_cores(); }

uint64_t lmz_memlimit_default(void)
{
    uint64_t m = lmz_sys_memory() / 2;
    return m < (64u << 20) ? (64u << 20) : m;
}

/* the language-model settings of a header, as the codec takes them */
static void lm_params_from_header(const lmz_header *h, unsigned threads, lmz_lm_params *lp)
{
    memset(lp, 0, sizeof *lp);
    unsigned v = lmz_profile_lm_version(h->profile);
    lp->int8 = v == LMZ_LM_PROFILE_I8_V1;
    lp->ens.profile = lp->int8 ? LMZ_ENS_V4 : v; /* det-i8-v1: det-f32-v4's ensemble */
    lp->ens.parts = h->parts;
    lp->ens.mixer = h->mixer;
    lp->ens.ngram_bits = h->ngram_bits;
    lp->ens.cdf_bits = h->cdf_bits;
    lp->ens.bias_lr = h->bias_lr;
    lp->ens.mix_lr = h->mix_lr;
    lp->ens.skip_mbits = h->skip_mbits;
    lp->ens.cache_rows = h->cache_rows;
    lp->ens.head_lr = h->head_lr;
    lp->text_min = h->text_min;
    lp->window = h->window;
    lp->table_bits = h->table_bits;
    lp->binary = h->binary;
    lp->threads = threads;
    lp->hash_len = (unsigned)lmz_header_hash_len(h);
}

/* 0: one per available core; more than the cores only when forced */
static unsigned resolve_threads(unsigned t, unsigned force)
{
    unsigned cores = lmz_sys_cores();
    if (t == 0) t = cores;
    if (!force && t > cores) t = cores;
    return t > MAX_THREADS ? MAX_THREADS : t;
}

/* ======================================================================== */
/* buffered reader over the callback                                         */
/* ======================================================================== */

typedef struct {
    const lmz_io *io;
    uint8_t buf[1 << 16];
    size_t pos, len;
    int eof;
    uint64_t consumed;
} reader;

static int rd_fill(reader *r)
{
    if (r->pos < r->len || r->eof) return LMZ_OK;
    long n = r->io->read(r->io->opaque, r->buf, sizeof r->buf);
    if (n < 0) return LMZ_ERROR_READ;
    if (n == 0) r->eof = 1;
    r->pos = 0;
    r->len = (size_t)n;
    return LMZ_OK;
}

/* Read exactly n bytes; a short read is LMZ_ERROR_TRUNCATED. */
static int rd_exact(reader *r, void *dst, size_t n)
{
    uint8_t *d = dst;
    while (n) {
        int e = rd_fill(r);
        if (e) return e;
        if (r->pos == r->len) return LMZ_ERROR_TRUNCATED;
        size_t k = r->len - r->pos < n ? r->len - r->pos : n;
        if (d) {
            memcpy(d, r->buf + r->pos, k);
            d += k;
        }
        r->pos += k;
        r->consumed += k;
        n -= k;
    }
    return LMZ_OK;
}

/* @return 1 at end of input, 0 if more bytes follow, or -error. */
static int rd_at_end(reader *r)
{
    int e = rd_fill(r);
    if (e) return -e;
    return r->pos == r->len;
}

/* Grow *buf (of *cap bytes) to hold at least `need` bytes, doubling from
 * 64K and never past `most`. */
static int grow(uint8_t **buf, size_t *cap, size_t need, size_t most)
{
    if (need <= *cap) return LMZ_OK;
    size_t nc = *cap ? *cap : (size_t)1 << 16;
    while (nc < need) nc *= 2;
    if (nc > most) nc = most;
    if (nc < need) nc = need;
    uint8_t *nb = realloc(*buf, nc);
    if (!nb) return LMZ_ERROR_NOMEM;
    *buf = nb;
    *cap = nc;
    return LMZ_OK;
}

/* Read up to n bytes (fewer only at end of input) straight from the
 * callback into *buf, which grows as bytes arrive. */
static int read_frame(const lmz_io *io, uint8_t **buf, size_t *cap, size_t n, size_t *got)
{
    size_t k = 0;
    while (k < n) {
        size_t want = n - k < ((size_t)1 << 20) ? n - k : (size_t)1 << 20;
        int e = grow(buf, cap, k + want, n);
        if (e) return e;
        long r = io->read(io->opaque, *buf + k, want);
        if (r < 0) return LMZ_ERROR_READ;
        if (r == 0) break;
        k += (size_t)r;
    }
    *got = k;
    return LMZ_OK;
}

/* ======================================================================== */
/* runs of one byte (method 3)                                               */
/* ======================================================================== */

/* Length of the run of src[i] starting at i (at most n - i). */
static size_t run_at(const uint8_t *src, size_t i, size_t n)
{
    size_t j = i + 1;
    uint8_t c = src[i];
    if (n - i >= 16) { /* whole words where the run is long */
        uint64_t w;
        memset(&w, c, 8);
        while (j + 8 <= n) {
            uint64_t x;
            memcpy(&x, src + j, 8);
            if (x != w) break;
            j += 8;
        }
    }
    while (j < n && src[j] == c) j++;
    return j - i;
}

/* The runs of at least LMZ_RUN_MIN bytes in src[0..n): their table into
 * out (varints, at most cap bytes) and the other bytes, in order, into lit.
 * @return the table's size, 0 when there is no run or the table does not
 * fit; *nlit = literal bytes. */
static size_t runs_split(const uint8_t *src, size_t n, uint8_t *out, size_t cap, uint8_t *lit, size_t *nlit)
{
    uint8_t tmp[10];
    size_t nr = 0, o = 10, l = 0, last = 0; /* room for the count in front */
    size_t i = 0;
    while (i < n) {
        /* a run can only start where 8 bytes ahead holds the same byte */
        if (i + LMZ_RUN_MIN <= n && src[i] == src[i + LMZ_RUN_MIN - 1]) {
            size_t r = run_at(src, i, n);
            if (r >= LMZ_RUN_MIN) {
                if (o + 21 > cap) return 0;
                o += lmz_put_varint(out + o, i - last);
                o += lmz_put_varint(out + o, r - LMZ_RUN_MIN);
                out[o++] = src[i];
                nr++;
                i += r;
                last = i;
                continue;
            }
        }
        lit[l++] = src[i++];
    }
    if (!nr) return 0;
    size_t cn = lmz_put_varint(tmp, nr);
    memmove(out + cn, out + 10, o - 10); /* the count goes in front */
    memcpy(out, tmp, cn);
    *nlit = l;
    return cn + o - 10;
}

/* The next run of a method-3 table at in[*o]: its gap, length and byte.
 * @return 0, or -1 when the table is damaged (runs past len). */
static int next_run(const uint8_t *in, size_t len, size_t *o, uint64_t *gap, uint64_t *run, uint8_t *c)
{
    if (lmz_get_varint(in, len, o, gap) || lmz_get_varint(in, len, o, run) || *o >= len) return -1;
    *run += LMZ_RUN_MIN;
    *c = in[(*o)++];
    return 0;
}

/* Decode n bytes of the chain from in[0..len) into dst: @return LMZ_OK,
 * LMZ_ERROR_NOMEM or LMZ_ERROR_CORRUPT (the stream not used exactly). */
static int chain_decode(lmz_bytemodel *chain, const uint8_t *in, size_t len, uint8_t *dst, size_t n)
{
    lmz_rc_dec rc;
    lmz_rc_dec_init(&rc, in, len);
    if (lmz_bytemodel_decode_next(chain, &rc, dst, n)) return LMZ_ERROR_NOMEM;
    return lmz_rc_dec_finished_cleanly(&rc) ? LMZ_OK : LMZ_ERROR_CORRUPT;
}

/* Expand a method-3 payload into dst[0..n), its literals with a fresh byte
 * model or, given one, the group's chain. @return LMZ_OK, LMZ_ERROR_NOMEM
 * or LMZ_ERROR_CORRUPT (never writes outside dst). */
static int runs_decode(const uint8_t *in, size_t len, uint8_t *dst, size_t n, unsigned table_bits,
                       lmz_bytemodel *chain)
{
    uint64_t nr, covered = 0, pos = 0, gap, run;
    uint8_t c;
    size_t o = 0;
    if (lmz_get_varint(in, len, &o, &nr) || nr == 0 || nr > n / LMZ_RUN_MIN) return LMZ_ERROR_CORRUPT;
    size_t table = o;
    for (uint64_t k = 0; k < nr; k++) { /* the whole table checked before any byte is written */
        if (next_run(in, len, &o, &gap, &run, &c) || gap > n || run > n || pos + gap + run > n)
            return LMZ_ERROR_CORRUPT;
        pos += gap + run;
        covered += run;
    }
    size_t nlit = n - (size_t)covered;
    if (nlit == 0) {
        if (o != len) return LMZ_ERROR_CORRUPT;
    } else {
        if (o >= len) return LMZ_ERROR_CORRUPT;
        if (chain) { /* the literals at the end */
            int e = chain_decode(chain, in + o, len - o, dst + (n - nlit), nlit);
            if (e) return e;
        } else {
            lmz_bytemodel *m = lmz_bytemodel_create(lmz_bytemodel_table_bits(nlit, table_bits));
            if (!m) return LMZ_ERROR_NOMEM;
            lmz_rc_dec rc;
            lmz_rc_dec_init(&rc, in + o, len - o);
            lmz_bytemodel_decode(m, &rc, dst + (n - nlit), nlit);
            lmz_bytemodel_free(m);
            if (!lmz_rc_dec_finished_cleanly(&rc)) return LMZ_ERROR_CORRUPT;
        }
    }
    /* move the literals forward to their places (never past their source,
     * so in increasing order nothing unread is overwritten), filling each
     * run behind them */
    size_t src = n - nlit;
    o = table;
    pos = 0;
    for (uint64_t k = 0; k < nr; k++) {
        next_run(in, len, &o, &gap, &run, &c);
        memmove(dst + pos, dst + src, (size_t)gap);
        src += (size_t)gap;
        memset(dst + pos + gap, c, (size_t)run);
        pos += gap + run;
    }
    memmove(dst + pos, dst + src, n - (size_t)pos);
    return LMZ_OK;
}

/* ======================================================================== */
/* one frame                                                                 */
/* ======================================================================== */

typedef struct {
    /* input */
    uint8_t *src;
    size_t src_cap;
    uint32_t n;
    unsigned table_bits;
    /* output */
    uint8_t *out;            /* n bytes of capacity */
    size_t out_cap;
    uint32_t out_len;
    unsigned method;
    int err;
    lmz_piece *pieces;       /* explain: a model frame's tokens and binary segments */
    size_t npieces;
} cjob;

/* progress inside a group or batch of frames coded with the model: the
 * totals before it, and its size in and out */
typedef struct {
    const lmz_io *io;
    uint64_t in0, out0, in_bytes, out_bytes;
    int compressing;
} lm_progress_ctx;

static void lm_progress(void *o, double frac, double bits)
{
    const lm_progress_ctx *p = o;
    if (p->compressing)
        p->io->progress(p->io->opaque, p->in0 + (uint64_t)(frac * (double)p->in_bytes), p->out0 + (uint64_t)(bits / 8));
    else
        p->io->progress(p->io->opaque, p->in0 + (uint64_t)(frac * (double)p->in_bytes),
                        p->out0 + (uint64_t)(frac * (double)p->out_bytes));
}

/* src[0..n) with the byte model into out[0..cap): @return the coded size,
 * 0 if it does not fit, or (size_t)-1 when memory is short. */
static size_t bm_encode(const uint8_t *src, size_t n, unsigned table_bits, uint8_t *out, size_t cap)
{
    lmz_bytemodel *m = lmz_bytemodel_create(lmz_bytemodel_table_bits(n, table_bits));
    if (!m) return (size_t)-1;
    lmz_rc_enc rc;
    lmz_rc_enc_init(&rc, out, cap);
    lmz_bytemodel_encode(m, &rc, src, n);
    size_t len = lmz_rc_enc_finish(&rc);
    lmz_bytemodel_free(m);
    return len;
}

/* The whole frame with a fresh byte model (method 1) where that shrinks it;
 * j stays as it is (stored) otherwise. */
static void frame_bm(cjob *j)
{
    size_t len = bm_encode(j->src, j->n, j->table_bits, j->out, j->n);
    if (len == (size_t)-1) j->err = LMZ_ERROR_NOMEM;
    else if (len > 0 && len < j->n) {
        j->method = LMZ_METHOD_BYTEMODEL;
        j->out_len = (uint32_t)len;
    }
}

/* The byte model of a group's frames that the model does not code
 * (setting binary = 1): one chain over them in frame order, its table sized
 * for the group's bytes as a frame of that size would have it. */
static unsigned chain_bits(const lmz_header *h)
{
    uint64_t len = (uint64_t)h->frame_size * (h->group ? h->group : 1);
    if (h->size_hint != LMZ_SIZE_UNKNOWN && h->size_hint < len) len = h->size_hint;
    if (len > LMZ_BM_CHAIN_MAX) len = LMZ_BM_CHAIN_MAX;
    return lmz_bytemodel_table_bits((size_t)len, h->table_bits);
}

/* What a group's chain learns of a frame that is not the model's: its
 * literals, the frame without its runs of one byte (runs_split), which
 * method 3 codes with the chain; the whole frame when it has none. Both
 * sides find them from the frame's bytes, whatever its method.
 * @return 0, or -1 when memory is short. */
static int chain_learn(lmz_bytemodel *chain, const uint8_t *src, size_t n)
{
    uint8_t *table = malloc(n), *lit = malloc(n);
    size_t nlit = 0, tn = table && lit ? runs_split(src, n, table, n - 1, lit, &nlit) : 0;
    int r = !table || !lit ? -1 : lmz_bytemodel_learn_next(chain, tn ? lit : src, tn ? nlit : n);
    free(table);
    free(lit);
    return r;
}

/* a frame the model would not read (binary data): the byte model (with the
 * group's chain: runs cut out first where there are any, method 3, else the
 * whole frame, method 1), or stored */
static void frame_bytemodel(cjob *j, lmz_bytemodel *chain)
{
    j->method = LMZ_METHOD_STORED;
    j->out_len = j->n;
    j->err = LMZ_OK;
    if (!chain) {
        frame_bm(j);
        return;
    }
    uint8_t *lit = malloc(j->n);
    if (!lit) {
        j->err = LMZ_ERROR_NOMEM;
        return;
    }
    size_t nlit = 0, tn = runs_split(j->src, j->n, j->out, j->n - 1, lit, &nlit);
    const uint8_t *x = tn ? lit : j->src;
    size_t nx = tn ? nlit : j->n, len = 0;
    lmz_rc_enc rc;
    lmz_rc_enc_init(&rc, j->out + tn, j->n - 1 - tn);
    if (nx && lmz_bytemodel_encode_next(chain, &rc, x, nx)) j->err = LMZ_ERROR_NOMEM;
    else if (nx) len = lmz_rc_enc_finish(&rc);
    /* stored when it does not fit: the chain has learned the same bytes as
     * the decoder's will (chain_learn) */
    if (!j->err && (len > 0 || nx == 0) && tn + len < j->n) {
        j->method = tn ? LMZ_METHOD_RUNS : LMZ_METHOD_BYTEMODEL;
        j->out_len = (uint32_t)(tn + len);
    }
    /* raw LZMA2 where it is smaller (long repeats far apart: images, tables
     * of records); the chain has learned the frame either way */
    uint8_t *alt = j->err ? NULL : malloc(j->out_len);
    size_t lz = alt && j->out_len > 1 ? lmz_lzma_encode(j->src, j->n, alt, j->out_len - 1) : 0;
    if (!j->err && !alt) j->err = LMZ_ERROR_NOMEM;
    if (lz > 0 && lz < j->out_len) {
        j->method = LMZ_METHOD_LZMA;
        j->out_len = (uint32_t)lz;
        memcpy(j->out, alt, lz);
    }
    free(alt);
    free(lit);
}

/* With the binary setting, a text frame's piece of the chain: the bytes of
 * its binary segments, bin[0..nb) (lmz_lm_frame_plan), coded with the
 * chain into *piece (malloc'd, *len bytes; none when nb is 0). @return
 * LMZ_OK, LMZ_ERROR_NOMEM, or -1: the piece outgrew the frame of n bytes
 * (the chain has learned it: the frame is stored, as the decoder's
 * chain_learn_stored will assume). */
static int chain_piece(lmz_bytemodel *chain, const uint8_t *bin, size_t nb, size_t n, uint8_t **piece, size_t *len)
{
    *piece = NULL;
    *len = 0;
    if (nb == 0) return LMZ_OK;
    uint8_t *out = malloc(n);
    if (!out) return LMZ_ERROR_NOMEM;
    lmz_rc_enc rc;
    lmz_rc_enc_init(&rc, out, n);
    int r = LMZ_OK;
    if (lmz_bytemodel_encode_next(chain, &rc, bin, nb)) r = LMZ_ERROR_NOMEM;
    else if ((*len = lmz_rc_enc_finish(&rc)) == 0) r = -1;
    if (r == LMZ_OK) *piece = out;
    else free(out);
    return r;
}

/* What the chain learns of a stored frame: of a text frame (as the model
 * would have read it), its binary segments; of another, chain_learn. */
static int chain_learn_stored(lmz_lm *lm, lmz_bytemodel *chain, const uint8_t *src, size_t n)
{
    uint8_t *bin = malloc(n ? n : 1);
    size_t nb = 0;
    int t = bin ? lmz_lm_frame_plan(lm, src, n, bin, &nb) : -1;
    int r = t < 0 ? -1 : t ? lmz_bytemodel_learn_next(chain, bin, nb) : chain_learn(chain, src, n);
    free(bin);
    return r;
}

/* The k frames of a group all through one chain, as binary frames go
 * (frame_bytemodel), into the frames' buffers when write is set, else only
 * measured: @return their coded bytes, (uint64_t)-1 when memory is short,
 * or UINT64_MAX - 1 when a text frame (text[i]) would be stored, which a
 * decoder's chain reads as text (chain_learn_stored): that way is closed. */
static uint64_t group_chain_all(const lmz_header *h, cjob *jobs, unsigned k, const uint8_t *text, int write)
{
    lmz_bytemodel *chain = lmz_bytemodel_create(chain_bits(h));
    uint8_t *tmp = write ? NULL : malloc(h->frame_size);
    uint64_t total = 0;
    if (!chain || (!write && !tmp)) total = (uint64_t)-1;
    for (unsigned i = 0; i < k && total < UINT64_MAX - 1; i++) {
        cjob x = jobs[i];
        if (!write) x.out = tmp;
        frame_bytemodel(&x, chain);
        if (x.err) total = (uint64_t)-1;
        else if (text[i] && x.method == LMZ_METHOD_STORED) total = UINT64_MAX - 1;
        else total += x.out_len;
        if (write) jobs[i] = x;
    }
    free(tmp);
    lmz_bytemodel_free(chain);
    return total;
}

/* The k frames of one group: the text frames with the model (their text
 * shares an ensemble, in frame order, as the decoder meets them), the
 * others, mostly binary, with the byte model. With the binary setting, one
 * chain runs in frame order over the binary frames and the text frames'
 * binary segments (and learns what ends up stored); without, each binary
 * frame and segment has a model of its own. */
static int group_compress(lmz_lm *lm, const lmz_header *h, cjob *jobs, unsigned k, int model_always)
{
    lmz_lm_cframe f[LMZ_GROUP_MAX];
    unsigned idx[LMZ_GROUP_MAX], nf = 0;
    int err = LMZ_OK;
    uint8_t *piece[LMZ_GROUP_MAX] = {NULL}, is_text[LMZ_GROUP_MAX] = {0};
    lmz_bytemodel *chain = h->binary ? lmz_bytemodel_create(chain_bits(h)) : NULL;
    uint8_t *bin = h->binary ? malloc(h->frame_size) : NULL; /* a text frame's binary segments */
    if (h->binary && (!chain || !bin)) err = LMZ_ERROR_NOMEM;
    for (unsigned i = 0; i < k && !err; i++) {
        cjob *j = &jobs[i];
        size_t nb, plen = 0;
        int text = lmz_lm_frame_plan(lm, j->src, j->n, bin, &nb);
        is_text[i] = text > 0;
        if (text < 0) {
            err = LMZ_ERROR_NOMEM;
            break;
        }
        if (!text) {
            frame_bytemodel(j, chain);
            err = j->err;
            continue;
        }
        if (chain) {
            int r = chain_piece(chain, bin, nb, j->n, &piece[i], &plen);
            if (r == -1) { /* stored; the chain has learned its binary segments */
                j->method = LMZ_METHOD_STORED;
                j->out_len = j->n;
                continue;
            }
            if ((err = r) != LMZ_OK) break;
        }
        idx[nf] = i;
        f[nf++] = (lmz_lm_cframe){j->src, j->n, j->out, j->n - 1, 0, piece[i], plen, NULL, 0};
    }
    if (!err && nf) {
        err = lmz_lm_compress_group(lm, f, nf);
        for (unsigned i = 0; i < nf; i++) { /* stored when it does not fit: the chain has learned */
            cjob *j = &jobs[idx[i]];           /* its binary segments, as chain_learn_stored does */
            j->method = f[i].out_len ? LMZ_METHOD_LM : LMZ_METHOD_STORED;
            j->out_len = f[i].out_len ? (uint32_t)f[i].out_len : j->n;
            j->pieces = f[i].pieces;
            j->npieces = f[i].npieces;
        }
    }
    for (unsigned i = 0; i < k; i++) free(piece[i]);
    free(bin);
    lmz_bytemodel_free(chain);
    /* With the chain: the whole group through it instead, text and all,
     * where that is smaller (text the model codes worse than the byte
     * model does: terminal sessions, languages it has not met); the byte
     * model runs at MB/s, a few percent of the model's time. */
    if (!err && h->binary && nf && !model_always) {
        uint64_t with_model = 0;
        for (unsigned i = 0; i < k; i++) with_model += jobs[i].out_len;
        uint64_t alone = group_chain_all(h, jobs, k, is_text, 0);
        if (alone == (uint64_t)-1) err = LMZ_ERROR_NOMEM;
        else if (alone < with_model) {
            if (group_chain_all(h, jobs, k, is_text, 1) == (uint64_t)-1) err = LMZ_ERROR_NOMEM;
            for (unsigned i = 0; i < k; i++) { /* whole frames now */
                free(jobs[i].pieces);
                jobs[i].pieces = NULL;
                jobs[i].npieces = 0;
            }
        }
    }
    for (unsigned i = 0; i < k; i++) jobs[i].err = err;
    return err;
}

static void frame_compress(cjob *j)
{
    j->method = LMZ_METHOD_STORED;
    j->out_len = j->n;
    j->err = LMZ_OK;
    if (j->n < 2) return;
    /* long runs of one byte are cut out first (method 3): zeros, sparse
     * files and padding go at memory speed, not through the model */
    uint8_t *lit = malloc(j->n);
    if (!lit) {
        j->err = LMZ_ERROR_NOMEM;
        return;
    }
    size_t nlit = 0, tn = runs_split(j->src, j->n, j->out, j->n - 1, lit, &nlit);
    size_t len;
    if (tn) {
        len = nlit ? bm_encode(lit, nlit, j->table_bits, j->out + tn, j->n - 1 - tn) : 0;
        if (len == (size_t)-1) j->err = LMZ_ERROR_NOMEM;
        else if (nlit == 0 || len > 0) {
            j->method = LMZ_METHOD_RUNS;
            j->out_len = (uint32_t)(tn + len);
        }
    } else {
        frame_bm(j);
    }
    free(lit);
}

typedef struct {
    lmz_frame_header fh;
    const uint8_t *payload;
    unsigned table_bits;
    uint8_t *dst;            /* fh.orig_size bytes */
    int err;
} djob;

static void frame_decompress(djob *j)
{
    j->err = LMZ_OK;
    if (j->fh.method == LMZ_METHOD_STORED) {
        memcpy(j->dst, j->payload, j->fh.orig_size);
    } else if (j->fh.method == LMZ_METHOD_RUNS) {
        if ((j->err = runs_decode(j->payload, j->fh.comp_size, j->dst, j->fh.orig_size, j->table_bits, NULL)) != LMZ_OK)
            return;
    } else {
        lmz_bytemodel *m =
            lmz_bytemodel_create(lmz_bytemodel_table_bits(j->fh.orig_size, j->table_bits));
        if (!m) {
            j->err = LMZ_ERROR_NOMEM;
            return;
        }
        lmz_rc_dec rc;
        lmz_rc_dec_init(&rc, j->payload, j->fh.comp_size);
        lmz_bytemodel_decode(m, &rc, j->dst, j->fh.orig_size);
        lmz_bytemodel_free(m);
        if (!lmz_rc_dec_finished_cleanly(&rc)) {
            j->err = LMZ_ERROR_CORRUPT;
            return;
        }
    }
    if (!lmz_frame_check(&j->fh, j->dst)) j->err = LMZ_ERROR_CHECKSUM;
}

/* Run fn over jobs[0..n): jobs 1.. on their own threads, job 0 here. */
static int run_parallel(void *(*fn)(void *), void *jobs, size_t job_size, unsigned n)
{
    pthread_t th[MAX_THREADS];
    unsigned started = 1;
    int err = LMZ_OK;
    for (unsigned i = 1; i < n; i++) {
        if (pthread_create(&th[i], NULL, fn, (char *)jobs + i * job_size) != 0) {
            err = LMZ_ERROR_THREAD;
            break;
        }
        started++;
    }
    fn(jobs);
    for (unsigned i = 1; i < started; i++) pthread_join(th[i], NULL);
    if (err) /* run what could not get a thread here, in order */
        for (unsigned i = started; i < n; i++) fn((char *)jobs + i * job_size);
    return LMZ_OK;
}

static void *cjob_thread(void *p) { frame_compress(p); return NULL; }
static void *djob_thread(void *p) { frame_decompress(p); return NULL; }

/* ======================================================================== */
/* compression                                                               */
/* ======================================================================== */

/* explain: overhead of `bits` at the input's offset `at` */
static void explain_overhead(const lmz_params *p, uint64_t at, uint64_t frame, double bits)
{
    lmz_piece x = lmz_piece_bytes(LMZ_PIECE_OVERHEAD, at, 0, bits);
    x.frame = frame;
    p->explain(p->explain_opaque, &x);
}

/* explain: frame number `frame`, which starts at the input's offset base:
 * its block's overhead (what its pieces leave of its bytes), then its
 * pieces, or the frame whole; the pieces are freed */
static void explain_frame(const lmz_params *p, cjob *j, uint64_t base, uint64_t frame, size_t head)
{
    double all = 8.0 * (double)(head + j->out_len), sum = 0;
    lmz_piece whole = lmz_piece_bytes(j->method == LMZ_METHOD_STORED ? LMZ_PIECE_STORED : LMZ_PIECE_BINARY, 0, j->n,
                                      8.0 * (double)j->out_len);
    lmz_piece *ps = j->pieces && j->method == LMZ_METHOD_LM ? j->pieces : &whole;
    size_t n = ps == &whole ? 1 : j->npieces;
    for (size_t i = 0; i < n; i++) sum += ps[i].bits;
    explain_overhead(p, base, frame, all - sum);
    for (size_t i = 0; i < n; i++) {
        ps[i].offset += base;
        ps[i].frame = frame;
        p->explain(p->explain_opaque, &ps[i]);
    }
    free(j->pieces);
    j->pieces = NULL;
    j->npieces = 0;
}

/* The frame size and group a model stream gets when p leaves them to the
 * library (0): frames of about an eighth of the input within 16K..512K
 * (up to 1/n above that for n frames; 256K for input of unknown size), as
 * many per group as fit in 64 MiB, 64 at most. */
static void lm_policy(const lmz_params *p, uint32_t *frame, unsigned *group)
{
    uint64_t f = p->frame_size;
    if (!f) {
        f = LM_FRAME_UNKNOWN;
        if (p->size_hint != LMZ_SIZE_UNKNOWN) {
            f = (p->size_hint / LM_FRAMES_WANTED + 4095) / 4096 * 4096;
            f = f < LM_FRAME_MIN ? LM_FRAME_MIN : f > LM_FRAME_MAX ? LM_FRAME_MAX : f;
            /* the input in whole frames of that size, the rest shared out
             * among them (in steps of 1K): no short frame at the end,
             * which would cost a frame's overhead and a cold start */
            uint64_t n = p->size_hint / f;
            if (n > 0) f = (p->size_hint + n - 1) / n;
            f = (f + 1023) / 1024 * 1024;
        }
    }
    *frame = (uint32_t)f;
    unsigned g = p->group;
    if (!g) {
        uint64_t fit = LMZ_GROUP_BYTES_MAX / (f ? f : 1);
        g = fit < LMZ_GROUP_MAX ? (unsigned)(fit ? fit : 1) : LMZ_GROUP_MAX;
    }
    *group = g;
}

/* Version 2, an input that ended inside the first batch (k frames): its
 * size is known now; one frame makes a one-frame stream, whose frame size
 * and group (as those of an empty stream: they then change no probability: the frame and its tables
 * are sized by its bytes, the chain by the recorded size) take the
 * format's defaults, so that the header need not say them. */
static void one_batch(lmz_header *h, const cjob *jobs, unsigned k, int lm)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < k; i++) n += jobs[i].n;
    h->size_hint = n;
    if (k > 1) return;
    h->one_frame = k == 1; /* k = 0: an empty stream, its end block alone */
    uint32_t f = lmz_v2_frame_size(lm);
    if (n <= f) {
        h->frame_size = f;
        if (lm) h->group = lmz_v2_group(f);
    }
}

/* bytes a version-2 stream with header h and the k coded frames of jobs
 * takes: header, frame blocks, payloads and end block */
static uint64_t stream_bytes_v2(const lmz_header *h, const cjob *jobs, unsigned k)
{
    uint8_t b[LMZ_STREAM_HEADER_MAX];
    uint64_t n = lmz_header_write(h, b), total = 0;
    for (unsigned i = 0; i < k; i++) {
        lmz_frame_header fh = {jobs[i].method, jobs[i].n, jobs[i].out_len, 0, 0, 0};
        n += lmz_frame_header_write_v2(&fh, (int)h->one_frame, b) + jobs[i].out_len;
        total += jobs[i].n;
    }
    return h->one_frame ? n : n + lmz_end_block_write_v2(total, 0, b);
}

/* Version 2, a model stream whose whole input is the first batch (k
 * frames, coded) and whose frames all went to the byte model (text it
 * knows less well than the byte model learns it, or binary data): one
 * frame of the byte model alone, a stream of profile int-v1 that needs no
 * model, when that is smaller (the model stream spends its header's
 * identity and settings, and a block per frame). Then h and jobs[0] are
 * that stream's and *k is 1: @return 1; else nothing changes: 0. */
static int byte_stream_instead(lmz_header *h, cjob *jobs, unsigned *k)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < *k; i++) {
        if (jobs[i].method == LMZ_METHOD_LM) return 0;
        n += jobs[i].n;
    }
    if (n > LMZ_FRAME_SIZE_DEFAULT) return 0;
    lmz_header b = *h;
    strcpy(b.profile, LMZ_PROFILE_INT_V1);
    strcpy(b.model, "none");
    memset(b.model_hash, 0, sizeof b.model_hash);
    b.frame_size = lmz_v2_frame_size(0);
    b.group = 1;
    b.one_frame = 1;
    b.size_hint = n;
    cjob x;
    memset(&x, 0, sizeof x);
    x.n = (uint32_t)n;
    x.table_bits = h->table_bits;
    x.src = malloc(n);
    x.out = malloc(n);
    if (!x.src || !x.out) {
        free(x.src);
        free(x.out);
        return 0;
    }
    x.src_cap = x.out_cap = n;
    for (unsigned i = 0, o = 0; i < *k; o += jobs[i].n, i++) memcpy(x.src + o, jobs[i].src, jobs[i].n);
    frame_compress(&x);
    if (x.err || stream_bytes_v2(&b, &x, 1) >= stream_bytes_v2(h, jobs, *k)) {
        free(x.src);
        free(x.out);
        return 0;
    }
    for (unsigned i = 0; i < *k; i++) {
        free(jobs[i].pieces);
        jobs[i].pieces = NULL;
        jobs[i].npieces = 0;
    }
    free(jobs[0].src);
    free(jobs[0].out);
    jobs[0] = x;
    *h = b;
    *k = 1;
    return 1;
}

int lmz_compress_stream(const lmz_params *p, const lmz_io *io)
{
    if (!p || !io || !io->read || !io->write) return LMZ_ERROR_PARAM;
    int with_model = p->model_ref || (p->model && strcmp(p->model, "none") != 0);
    if (!p->model_ref && !p->model) return LMZ_ERROR_MODEL;
    if (lmz_settings_check(p) != LMZ_OK) return LMZ_ERROR_PARAM; /* every setting within its bounds */
    uint32_t frame_size = p->frame_size ? p->frame_size : LMZ_FRAME_SIZE_DEFAULT;
    unsigned group = 1;
    if (with_model) lm_policy(p, &frame_size, &group); /* from settings in bounds: in bounds too */
    if (p->stats) memset(p->stats, 0, sizeof *p->stats);
    unsigned threads = resolve_threads(p->threads, p->force_threads);

    lmz_header h;
    memset(&h, 0, sizeof h);
    if (p->format_version > LMZ_FORMAT_VERSION) return LMZ_ERROR_PARAM;
    h.version = p->format_version == LMZ_FORMAT_V1 ? LMZ_FORMAT_V1 : LMZ_FORMAT_VERSION;
    strcpy(h.profile, LMZ_PROFILE_INT_V1);
    strcpy(h.model, "none");
    h.frame_size = frame_size;
    h.table_bits = p->table_bits;
    h.size_hint = p->size_hint;
    lmz_lm *lm = NULL;
    lmz_model_ref *own_ref = NULL;
    if (with_model) {
        if (frame_size > LMZ_LM_FRAME_MAX) return LMZ_ERROR_PARAM;
        lmz_settings_to_header(p, &h);
        h.frame_size = frame_size;
        h.group = group;
        const char *prof = lmz_profile_lm_name(p->lm_profile ? p->lm_profile : LMZ_LM_PROFILE_NEWEST);
        if (!prof || p->lm_profile == 1 || p->lm_profile == 2) return LMZ_ERROR_PARAM; /* v1, v2: read only */
        strcpy(h.profile, prof);
        if (group > 1 && (uint64_t)group * frame_size > LMZ_GROUP_BYTES_MAX) return LMZ_ERROR_PARAM;
        lmz_lm_params lp;
        lm_params_from_header(&h, threads, &lp);
        /* the cache's rows keep the value a header need not write (4 bytes
         * less) where they cannot matter, without the cache, and where more
         * rows than lmzip 0.7's would hardly fill: a group of at most 96 KiB
         * (prose takes 3.5 to 4 bytes a token, code 2.3 to 3: 32,768 rows
         * hold all or most of it; a group with more tokens is coded right,
         * with 32,768 rows, as the header says) */
        uint64_t gbytes = (uint64_t)group * frame_size;
        if (p->size_hint != LMZ_SIZE_UNKNOWN && p->size_hint < gbytes) gbytes = p->size_hint;
        if (!lmz_ens_cache_on(&lp.ens) ||
            (h.cache_rows > LMZ_ENS_CACHE_ROWS_V07 && gbytes <= 3 * (uint64_t)LMZ_ENS_CACHE_ROWS_V07))
            h.cache_rows = lp.ens.cache_rows = LMZ_ENS_CACHE_ROWS_V07;
        lp.ideal = p->stats != NULL;
        lp.explain = p->explain != NULL;
        if (lmz_ens_params_check(&lp.ens, 2) != 0) return LMZ_ERROR_PARAM;
        char msg[512];
        const lmz_model_ref *ref = p->model_ref;
        if (!ref) {
            if (lmz_model_load(p->model, &own_ref, msg, sizeof msg) != LMZ_OK) return LMZ_ERROR_MODEL;
            ref = own_ref;
        }
        int e = lmz_lm_open(ref, &lp, NULL, &lm, msg, sizeof msg);
        if (e != LMZ_OK) {
            lmz_model_unload(own_ref);
            return e;
        }
        strcpy(h.model, lmz_lm_name(lm));
        memcpy(h.model_hash, lmz_lm_hash(lm), 32);
        h.parts = lmz_lm_fit_parts(lm); /* no adaptive head on a model too wide for it */
        /* version 2: 0, the model's own window, unless asked for another */
        h.window = h.version == LMZ_FORMAT_V1 || p->window ? lmz_lm_window(lm) : 0;
    }

    /* with a model, a group of frames at a time, the model's products and
     * the frames' ensembles spread over the threads; without, one frame
     * per thread. Each frame's buffers grow with what is read. The header
     * waits for the first batch: in version 2, an input that ends inside it
     * has its size recorded, and one frame makes a one-frame stream. */
    unsigned nt = lm ? group : threads;
    cjob *jobs = calloc(nt, sizeof *jobs);
    XXH64_state_t *xs = XXH64_createState();
    int err = (!jobs || !xs) ? LMZ_ERROR_NOMEM : LMZ_OK;
    if (xs) XXH64_reset(xs, 0);
    uint64_t total_in = 0, total_out = 0, frames = 0;
    int done = 0, header_done = 0, switched = 0;
    while (!err && !done) {
        unsigned k = 0;
        while (k < nt) {
            size_t got;
            cjob *j = &jobs[k];
            err = read_frame(io, &j->src, &j->src_cap, frame_size, &got);
            if (err) break;
            if (got < frame_size) done = 1;
            if (got == 0) break;
            if ((err = grow(&j->out, &j->out_cap, got, got)) != LMZ_OK) break;
            j->n = (uint32_t)got;
            j->table_bits = p->table_bits;
            k++;
            if (done) break;
        }
        /* version 2, the whole input in the first batch: its size and
         * frame are known before coding, and the chain's tables are sized
         * by the size the header records, as the decoder sizes them */
        if (!err && !header_done && h.version != LMZ_FORMAT_V1 && done) one_batch(&h, jobs, k, lm != NULL);
        if (!err && k > 0) {
            if (lm) {
                lm_progress_ctx pc = {io, total_in, total_out, 0, 0, 1};
                for (unsigned i = 0; i < k; i++) pc.in_bytes += jobs[i].n;
                lmz_lm_set_progress(lm, io->progress ? lm_progress : NULL, &pc);
                group_compress(lm, &h, jobs, k, p->model_always != 0);
                lmz_lm_set_progress(lm, NULL, NULL);
            } else {
                run_parallel(cjob_thread, jobs, sizeof *jobs, k);
            }
            for (unsigned i = 0; i < k && !err; i++) err = jobs[i].err;
        }
        if (!err && !header_done) {
            if (h.version != LMZ_FORMAT_V1 && done) {
                if (lm && k > 0 && !p->model_always && byte_stream_instead(&h, jobs, &k)) {
                    switched = 1;
                    if (p->stats) memset(p->stats, 0, sizeof *p->stats); /* no text for the model */
                }
            }
            uint8_t hb[LMZ_STREAM_HEADER_MAX];
            size_t hn = lmz_header_write(&h, hb);
            if (io->write(io->opaque, hb, hn)) err = LMZ_ERROR_WRITE;
            if (p->explain) explain_overhead(p, 0, 0, 8.0 * (double)hn);
            total_out = hn;
            header_done = 1;
        }
        if (err || k == 0) break;
        for (unsigned i = 0; i < k && !err; i++) {
            cjob *j = &jobs[i];
            if (j->err) {
                err = j->err;
                break;
            }
            lmz_frame_header fh = {j->method, j->n, j->out_len, XXH64(j->src, j->n, 0), 0, 0};
            uint8_t fb[LMZ_FRAME_HEADER_SIZE];
            size_t fn = LMZ_FRAME_HEADER_SIZE;
            if (h.version == LMZ_FORMAT_V1) lmz_frame_header_write(&fh, fb);
            else fn = lmz_frame_header_write_v2(&fh, (int)h.one_frame, fb);
            const uint8_t *payload = j->method == LMZ_METHOD_STORED ? j->src : j->out;
            if (io->write(io->opaque, fb, fn) || io->write(io->opaque, payload, j->out_len)) {
                err = LMZ_ERROR_WRITE;
                break;
            }
            XXH64_update(xs, j->src, j->n);
            if (p->explain) explain_frame(p, j, total_in, frames, fn);
            total_in += j->n;
            total_out += fn + j->out_len;
            frames++;
            if (io->progress) io->progress(io->opaque, total_in, total_out);
        }
    }
    if (!err && !h.one_frame) {
        uint8_t eb[LMZ_END_BLOCK_SIZE];
        size_t en = LMZ_END_BLOCK_SIZE;
        if (h.version == LMZ_FORMAT_V1) lmz_end_block_write(total_in, frames, XXH64_digest(xs), eb);
        else en = lmz_end_block_write_v2(total_in, XXH64_digest(xs), eb);
        if (io->write(io->opaque, eb, en)) err = LMZ_ERROR_WRITE;
        if (p->explain) explain_overhead(p, total_in, frames ? frames - 1 : 0, 8.0 * (double)en);
    }
    if (xs) XXH64_freeState(xs);
    if (jobs)
        for (unsigned i = 0; i < nt; i++) {
            free(jobs[i].src);
            free(jobs[i].out);
            free(jobs[i].pieces);
        }
    free(jobs);
    if (lm && p->stats && !switched) {
        lmz_lm_stats st;
        lmz_lm_stats_get(lm, &st);
        p->stats->text_bytes = st.text_bytes;
        p->stats->tokens = st.tokens;
        p->stats->text_bits = st.text_bits;
        p->stats->ideal_bits = st.ideal_bits;
        p->stats->text_coded = st.text_coded;
        p->stats->skipped = st.skipped;
        p->stats->binary_bytes = st.binary_bytes;
        p->stats->binary_coded = st.binary_coded;
    }
    lmz_lm_free(lm);
    lmz_model_unload(own_ref);
    return err;
}

/* ======================================================================== */
/* stream header                                                             */
/* ======================================================================== */

/* the reader as the header parser's byte source (format.h) */
static int rd_fetch(void *r, uint8_t *dst, size_t n) { return rd_exact(r, dst, n); }

static int header_read(reader *r, lmz_header *h, int check_support)
{
    return lmz_header_read(rd_fetch, r, h, check_support);
}

/* Start of a stream: magic, then header. first: this is the first stream,
 * where an empty input is its own error. */
static int stream_begin(reader *r, lmz_header *h, int first)
{
    uint8_t mg[LMZ_MAGIC_LEN];
    int end = rd_at_end(r);
    if (end < 0) return -end;
    if (end) return first ? LMZ_ERROR_EMPTY : LMZ_ERROR_TRUNCATED;
    int e = rd_exact(r, mg, LMZ_MAGIC_LEN);
    if (e == LMZ_ERROR_TRUNCATED || (e == LMZ_OK && memcmp(mg, lmz_magic, LMZ_MAGIC_LEN)))
        return LMZ_ERROR_BAD_MAGIC;
    if (e) return e;
    return header_read(r, h, 1);
}

/* Read the 28 bytes after an end block's type byte and check them. */
static int end_block_read(reader *r, uint64_t *total, uint64_t *frames, uint64_t *hash)
{
    uint8_t b[LMZ_END_BLOCK_SIZE];
    b[0] = LMZ_BLOCK_END;
    int e = rd_exact(r, b + 1, LMZ_END_BLOCK_SIZE - 1);
    if (e) return e;
    if (lmz_get_u32(b + 25) != (uint32_t)XXH64(b, 25, 0)) return LMZ_ERROR_CORRUPT;
    *total = lmz_get_u64(b + 1);
    *frames = lmz_get_u64(b + 9);
    *hash = lmz_get_u64(b + 17);
    return LMZ_OK;
}

/* The next block of a stream: a frame's header into fh (*end 0), or the
 * stream's end (*end 1; the end block's fields, where it has one, are read
 * by stream_end). frames: the stream's frame blocks so far. */
static int block_next(reader *r, const lmz_header *h, uint64_t frames, lmz_frame_header *fh, int *end,
                      uint64_t *e_total, uint64_t *e_check)
{
    *end = 0;
    if (h->one_frame && frames == 1) { /* a one-frame stream has no end block */
        *end = 1;
        return LMZ_OK;
    }
    uint8_t type;
    int e = rd_exact(r, &type, 1);
    if (e) return e;
    if (h->version != LMZ_FORMAT_V1) return lmz_block_read_v2(rd_fetch, r, h, type, fh, end, e_total, e_check);
    if (type == LMZ_BLOCK_END) {
        *end = 1;
        return LMZ_OK;
    }
    if (type != LMZ_BLOCK_FRAME) return LMZ_ERROR_CORRUPT;
    uint8_t fb[LMZ_FRAME_HEADER_SIZE - 1];
    if ((e = rd_exact(r, fb, sizeof fb)) != LMZ_OK) return e;
    return lmz_frame_header_parse(fb, h, fh);
}

/* The end of a stream of `frames` frames and `total` bytes, after
 * block_next said so: version 1's end block is read and checked here;
 * hash: XXH64 of the content, or NULL when it was not decoded (listing). */
static int stream_end(reader *r, const lmz_header *h, uint64_t total, uint64_t frames, const uint64_t *hash,
                      uint64_t e_total, uint64_t e_check)
{
    if (h->one_frame) return LMZ_OK; /* its frame's checksum is the stream's */
    if (h->version != LMZ_FORMAT_V1) {
        if (e_total != total) return LMZ_ERROR_CORRUPT;
        return hash && (uint32_t)*hash != e_check ? LMZ_ERROR_CHECKSUM : LMZ_OK;
    }
    uint64_t t, f, x;
    int e = end_block_read(r, &t, &f, &x);
    if (e) return e;
    if (t != total || f != frames) return LMZ_ERROR_CORRUPT;
    return hash && *hash != x ? LMZ_ERROR_CHECKSUM : LMZ_OK;
}

/* Read a frame payload into a buffer that grows as bytes arrive, so a lying
 * size field cannot make us allocate more than the input holds. */
static int payload_read(reader *r, uint8_t **buf, size_t *cap, size_t n)
{
    size_t have = 0;
    while (have < n) {
        size_t want = n - have;
        if (want > (8u << 20)) want = 8u << 20;
        int e = grow(buf, cap, have + want, n);
        if (!e) e = rd_exact(r, *buf + have, want);
        if (e) return e;
        have += want;
    }
    return LMZ_OK;
}

/* ======================================================================== */
/* decompression                                                             */
/* ======================================================================== */

typedef struct {
    uint8_t *payload;
    size_t payload_cap;
    uint8_t *dst;
    size_t dst_cap;
} dbuf;

/* A stored, byte-model or runs frame of a group's chain (setting binary = 1). */
static void frame_decompress_chained(lmz_lm *lm, djob *j, lmz_bytemodel *chain)
{
    const size_t n = j->fh.orig_size;
    j->err = LMZ_OK;
    if (j->fh.method == LMZ_METHOD_STORED) {
        memcpy(j->dst, j->payload, n);
        if (chain_learn_stored(lm, chain, j->dst, n)) j->err = LMZ_ERROR_NOMEM;
    } else if (j->fh.method == LMZ_METHOD_LZMA) { /* a binary frame: the chain learns as it coded */
        if ((j->err = lmz_lzma_decode(j->payload, j->fh.comp_size, j->dst, n)) == LMZ_OK && chain_learn(chain, j->dst, n))
            j->err = LMZ_ERROR_NOMEM;
    } else if (j->fh.method == LMZ_METHOD_RUNS) {
        j->err = runs_decode(j->payload, j->fh.comp_size, j->dst, n, j->table_bits, chain);
    } else {
        j->err = chain_decode(chain, j->payload, j->fh.comp_size, j->dst, n);
    }
    if (!j->err && !lmz_frame_check(&j->fh, j->dst)) j->err = LMZ_ERROR_CHECKSUM;
}

/* The chain's piece of a method-2 frame into *bytes (malloc'd; NULL when
 * the frame has none). @return LMZ_OK or an lmz_error. */
static int chain_piece_decode(lmz_lm *lm, const djob *j, lmz_bytemodel *chain, uint8_t **bytes)
{
    size_t off, len, nb;
    *bytes = NULL;
    int e = lmz_lm_frame_chain(lm, j->payload, j->fh.comp_size, j->fh.orig_size, &off, &len, &nb);
    if (e || nb == 0) return e;
    if (!(*bytes = malloc(nb))) return LMZ_ERROR_NOMEM;
    return chain_decode(chain, j->payload + off, len, *bytes, nb);
}

/* Decode the k frames of jobs: with a model, its frames in lockstep and
 * the others (stored, byte model) one by one; with the binary setting,
 * first each group's chain in frame order over its binary frames and the
 * pieces of its text frames. Without a model, frames in parallel. */
static void decode_batch(lmz_lm *lm, const lmz_header *h, djob *jobs, unsigned k, unsigned nt, lmz_lm_frame *lf)
{
    if (!lm) {
        for (unsigned i = 0; i < k; i += nt) run_parallel(djob_thread, jobs + i, sizeof *jobs, k - i < nt ? k - i : nt);
        return;
    }
    const unsigned group = h->group;
    unsigned nl = 0, chain_group = 0;
    int broken = 0; /* the chain met damage: the rest of its group fails */
    lmz_bytemodel *chain = NULL;
    uint8_t **pieces = calloc(k, sizeof *pieces);
    for (unsigned i = 0; i < k; i++) {
        djob *j = &jobs[i];
        j->err = LMZ_OK;
        if (!pieces) {
            j->err = LMZ_ERROR_NOMEM;
            continue;
        }
        if (h->binary) {
            if (chain && chain_group != i / group) {
                lmz_bytemodel_free(chain);
                chain = NULL;
                broken = 0;
            }
            chain_group = i / group;
            if (!chain && !(chain = lmz_bytemodel_create(chain_bits(h)))) j->err = LMZ_ERROR_NOMEM;
            else if (broken) j->err = LMZ_ERROR_CORRUPT;
            else if (j->fh.method != LMZ_METHOD_LM) frame_decompress_chained(lm, j, chain);
            else j->err = chain_piece_decode(lm, j, chain, &pieces[i]);
            if (j->err) broken = 1;
            if (j->err || j->fh.method != LMZ_METHOD_LM) continue;
        } else if (j->fh.method != LMZ_METHOD_LM) {
            frame_decompress(j);
            continue;
        }
        lf[nl++] = (lmz_lm_frame){j->payload, j->fh.comp_size, j->dst, j->fh.orig_size, i / group, LMZ_OK, pieces[i]};
    }
    lmz_bytemodel_free(chain);
    lmz_lm_decompress_frames(lm, lf, nl);
    nl = 0;
    for (unsigned i = 0; i < k; i++) {
        djob *j = &jobs[i];
        if (j->fh.method != LMZ_METHOD_LM || j->err) continue;
        j->err = lf[nl++].err;
        if (!j->err && !lmz_frame_check(&j->fh, j->dst)) j->err = LMZ_ERROR_CHECKSUM;
    }
    if (pieces)
        for (unsigned i = 0; i < k; i++) free(pieces[i]);
    free(pieces);
}

/* The models one decompression call has loaded itself (from a path), kept
 * for the streams after the first. */
typedef struct {
    lmz_model_ref *own;
} model_cache;

static const lmz_model_ref *cache_get(model_cache *c, const char *path)
{
    if (c->own && !strcmp(lmz_model_ref_path(c->own), path)) return c->own;
    lmz_model_unload(c->own);
    c->own = NULL;
    char msg[512];
    return lmz_model_load(path, &c->own, msg, sizeof msg) == LMZ_OK ? c->own : NULL;
}

/* The model a stream needs, from the caller: LMZ_ERROR_MODEL when there is
 * none or it is another model, LMZ_ERROR_HEADER when its settings do not
 * fit the very model the stream names. */
static int stream_model(const lmz_header *h, const lmz_dparams *dp, unsigned nt, model_cache *mc, lmz_lm **out)
{
    *out = NULL;
    if (!lmz_profile_is_lm(h->profile)) return LMZ_OK;
    const lmz_model_ref *ref = dp->model_ref;
    if (!ref && dp->model) ref = cache_get(mc, dp->model);
    if (!ref && !dp->model && dp->find_ref) ref = dp->find_ref(dp->find_opaque, h->model);
    if (!ref && !dp->model && dp->find_model) {
        const char *path = dp->find_model(dp->find_opaque, h->model);
        if (path) ref = cache_get(mc, path);
    }
    if (!ref) return LMZ_ERROR_MODEL;
    lmz_lm_params lp;
    lm_params_from_header(h, nt, &lp);
    char msg[512];
    return lmz_lm_open(ref, &lp, h->model_hash, out, msg, sizeof msg);
}

/* original bytes gathered for one lockstep batch of frames apart (groups of
 * one): each has its own ensemble, up to ~40 MB for a 256K frame */
#define BATCH_BYTES (8u << 20)

/* Memory one frame takes while its batch decodes: its buffers, a byte
 * model's tables, a language model's working memory. */
static uint64_t frame_need(const lmz_frame_header *fh, unsigned table_bits, const lmz_lm *lm)
{
    uint64_t m = (uint64_t)fh->comp_size + fh->orig_size;
    if (fh->method == LMZ_METHOD_BYTEMODEL || fh->method == LMZ_METHOD_RUNS)
        m += lmz_bytemodel_mem(lmz_bytemodel_table_bits(fh->orig_size, table_bits));
    if (fh->method == LMZ_METHOD_LM && lm) m += lmz_lm_mem_frame(lm, fh->orig_size);
    if (fh->method == LMZ_METHOD_LZMA) m += 2 * (uint64_t)fh->orig_size + (1u << 20); /* dictionary and state */
    return m;
}

static int decompress_limited(const lmz_dparams *dp, const lmz_io *io, uint64_t out_limit)
{
    if (!dp || !io || !io->read || !io->write) return LMZ_ERROR_PARAM;
    unsigned nt = resolve_threads(dp->threads, dp->force_threads);
    uint64_t memlimit = dp->memlimit ? dp->memlimit : lmz_memlimit_default();
    if (dp->mem_needed) *dp->mem_needed = 0;
    if (dp->frames_at_once) *dp->frames_at_once = 0;
    unsigned nj = nt > LMZ_LM_BATCH ? nt : LMZ_LM_BATCH;
    reader *r = malloc(sizeof *r);
    djob *jobs = calloc(nj, sizeof *jobs);
    dbuf *bufs = calloc(nj, sizeof *bufs);
    lmz_lm_frame *lf = calloc(nj, sizeof *lf);
    lmz_lm *lm = NULL;
    model_cache mc = {NULL};
    XXH64_state_t *xs = XXH64_createState();
    int err = (r && jobs && bufs && lf && xs) ? LMZ_OK : LMZ_ERROR_NOMEM;
    if (r) {
        memset(r, 0, sizeof *r);
        r->io = io;
    }
    uint64_t out_total = 0;
    for (unsigned si = 0; !err; si++) {
        if (si > 0) {
            int end = rd_at_end(r);
            if (end < 0) err = -end;
            if (end) break;
        }
        lmz_header h;
        if ((err = stream_begin(r, &h, si == 0)) != LMZ_OK) break;
        lmz_lm_free(lm);
        if ((err = stream_model(&h, dp, nt, &mc, &lm)) != LMZ_OK) break;
        XXH64_reset(xs, 0);
        uint64_t total = 0, frames = 0, e_total = 0, e_check = 0;
        int stream_done = 0, carried = 0;
        lmz_frame_header next;
        /* with a model: a group, or with groups of one, a batch of frames;
         * fewer when the memory limit says so (not inside a group) */
        unsigned nb = !lm ? nt : h.group > 1 ? h.group : LMZ_LM_BATCH;
        while (!err && !stream_done) {
            unsigned k = 0;
            uint64_t batch_bytes = 0, need = 0, batch_in0 = r->consumed;
            if (lm && h.group > 1) need = lmz_lm_mem_group(lm, (uint64_t)h.frame_size * h.group);
            if (lm && h.binary) need += lmz_bytemodel_mem(chain_bits(&h)) + LMZ_BM_CHAIN_MAX;
            while (k < nb && (!lm || h.group > 1 || batch_bytes < BATCH_BYTES)) { /* gather a batch of frames */
                djob *j = &jobs[k];
                if (carried) {
                    j->fh = next;
                    carried = 0;
                } else {
                    int end;
                    if ((err = block_next(r, &h, frames + k, &j->fh, &end, &e_total, &e_check)) != LMZ_OK) break;
                    if (end) {
                        stream_done = 1;
                        break;
                    }
                }
                if (out_total + j->fh.orig_size > out_limit) {
                    err = LMZ_ERROR_DST_SIZE;
                    break;
                }
                uint64_t fneed = frame_need(&j->fh, h.table_bits, lm);
                if (lm && h.group == 1 && j->fh.method == LMZ_METHOD_LM) fneed += lmz_lm_mem_group(lm, j->fh.orig_size);
                if (need + fneed > memlimit) {
                    if (k > 0 && (!lm || h.group == 1)) { /* this frame starts the next batch */
                        next = j->fh;
                        carried = 1;
                        break;
                    }
                    if (dp->mem_needed) *dp->mem_needed = need + fneed;
                    err = LMZ_ERROR_MEMLIMIT;
                    break;
                }
                need += fneed;
                dbuf *b = &bufs[k];
                if ((err = payload_read(r, &b->payload, &b->payload_cap, j->fh.comp_size)) != LMZ_OK)
                    break;
                if (b->dst_cap < j->fh.orig_size) {
                    free(b->dst);
                    b->dst = malloc(j->fh.orig_size);
                    b->dst_cap = b->dst ? j->fh.orig_size : 0;
                    if (!b->dst) {
                        err = LMZ_ERROR_NOMEM;
                        break;
                    }
                }
                j->payload = b->payload;
                j->dst = b->dst;
                j->table_bits = h.table_bits;
                out_total += j->fh.orig_size;
                batch_bytes += j->fh.orig_size;
                k++;
            }
            if (err) break;
            if (k) {
                lm_progress_ctx pc = {io, batch_in0, out_total - batch_bytes, r->consumed - batch_in0, batch_bytes, 0};
                if (lm) lmz_lm_set_progress(lm, io->progress ? lm_progress : NULL, &pc);
                decode_batch(lm, &h, jobs, k, nt, lf);
                if (lm) lmz_lm_set_progress(lm, NULL, NULL);
            }
            unsigned side = lm || k < nt ? k : nt; /* frames decoded side by side */
            if (dp->frames_at_once && side > *dp->frames_at_once) *dp->frames_at_once = side;
            for (unsigned i = 0; i < k && !err; i++) {
                if ((err = jobs[i].err) != LMZ_OK) break;
                if (io->write(io->opaque, jobs[i].dst, jobs[i].fh.orig_size)) {
                    err = LMZ_ERROR_WRITE;
                    break;
                }
                XXH64_update(xs, jobs[i].dst, jobs[i].fh.orig_size);
                total += jobs[i].fh.orig_size;
                frames++;
                if (io->progress) io->progress(io->opaque, r->consumed, out_total);
            }
        }
        if (err) break;
        uint64_t digest = XXH64_digest(xs);
        err = stream_end(r, &h, total, frames, &digest, e_total, e_check);
    }
    lmz_lm_free(lm);
    lmz_model_unload(mc.own);
    free(lf);
    if (bufs)
        for (unsigned i = 0; i < nj; i++) {
            free(bufs[i].payload);
            free(bufs[i].dst);
        }
    if (xs) XXH64_freeState(xs);
    free(bufs);
    free(jobs);
    free(r);
    return err;
}

int lmz_decompress_stream(unsigned threads, const lmz_io *io)
{
    lmz_dparams dp;
    memset(&dp, 0, sizeof dp);
    dp.threads = threads;
    return decompress_limited(&dp, io, UINT64_MAX);
}

int lmz_decompress_stream_ex(const lmz_dparams *p, const lmz_io *io)
{
    return decompress_limited(p, io, UINT64_MAX);
}

typedef struct {
    const uint8_t *src;
    size_t src_len, src_pos;
    uint8_t *dst;
    size_t dst_cap, dst_pos;
} membuf;

static long mem_read(void *o, void *buf, size_t n);

/* ======================================================================== */
/* listing                                                                   */
/* ======================================================================== */

static void stream_info_fill(const lmz_header *h, unsigned si, lmz_stream_info *s)
{
    memset(s, 0, sizeof *s);
    s->stream_index = si;
    s->format_version = h->version;
    strcpy(s->profile, h->profile);
    strcpy(s->model, h->model);
    memcpy(s->model_hash, h->model_hash, 32);
    s->frame_size = h->frame_size;
    s->table_bits = h->table_bits;
    s->size_hint = h->size_hint;
    s->group = h->group;
}

int lmz_peek_header(const void *src, size_t n, lmz_stream_info *info)
{
    if (!src || !info) return LMZ_ERROR_PARAM;
    membuf mb = {src, n, 0, NULL, 0, 0};
    lmz_io io = {&mb, mem_read, NULL, NULL};
    reader *r = malloc(sizeof *r);
    if (!r) return LMZ_ERROR_NOMEM;
    memset(r, 0, sizeof *r);
    r->io = &io;
    uint8_t mg[LMZ_MAGIC_LEN];
    lmz_header h;
    int e = rd_exact(r, mg, LMZ_MAGIC_LEN);
    if (e == LMZ_OK && memcmp(mg, lmz_magic, LMZ_MAGIC_LEN)) e = LMZ_ERROR_BAD_MAGIC;
    if (e == LMZ_OK) e = header_read(r, &h, 0);
    if (e == LMZ_OK) stream_info_fill(&h, 0, info);
    free(r);
    return e;
}

int lmz_list_stream(const lmz_io *io, const lmz_list_callbacks *cb)
{
    if (!io || !io->read || !cb) return LMZ_ERROR_PARAM;
    reader *r = malloc(sizeof *r);
    if (!r) return LMZ_ERROR_NOMEM;
    memset(r, 0, sizeof *r);
    r->io = io;
    int err = LMZ_OK;
    for (unsigned si = 0; !err; si++) {
        if (si > 0) {
            int end = rd_at_end(r);
            if (end < 0) err = -end;
            if (end) break;
        }
        uint64_t start = r->consumed;
        lmz_header h;
        if ((err = stream_begin(r, &h, si == 0)) != LMZ_OK) break;
        if (cb->on_stream) {
            lmz_stream_info s;
            stream_info_fill(&h, si, &s);
            cb->on_stream(cb->opaque, &s);
        }
        uint64_t total = 0, frames = 0, e_total = 0, e_check = 0;
        for (;;) {
            lmz_frame_header fh;
            int end;
            if ((err = block_next(r, &h, frames, &fh, &end, &e_total, &e_check)) != LMZ_OK || end) break;
            if ((err = rd_exact(r, NULL, fh.comp_size)) != LMZ_OK) break;
            if (cb->on_frame) {
                lmz_frame_info f = {si, frames, fh.method, fh.orig_size, (uint64_t)fh.comp_size + fh.head_len,
                                    fh.checksum};
                cb->on_frame(cb->opaque, &f);
            }
            total += fh.orig_size;
            frames++;
        }
        if (err) break;
        if ((err = stream_end(r, &h, total, frames, NULL, e_total, e_check)) != LMZ_OK) break;
        if (cb->on_end) cb->on_end(cb->opaque, si, frames, total, r->consumed - start);
    }
    free(r);
    return err;
}

/* ======================================================================== */
/* one-shot buffers                                                          */
/* ======================================================================== */

size_t lmz_compress_bound(size_t n, uint32_t frame_size)
{
    if (frame_size < LMZ_FRAME_SIZE_MIN) frame_size = LMZ_FRAME_SIZE_MIN;
    size_t frames = n / frame_size + 1;
    return n + frames * LMZ_FRAME_HEADER_SIZE + LMZ_STREAM_HEADER_MAX + LMZ_END_BLOCK_SIZE;
}

static long mem_read(void *o, void *buf, size_t n)
{
    membuf *m = o;
    size_t k = m->src_len - m->src_pos < n ? m->src_len - m->src_pos : n;
    memcpy(buf, m->src + m->src_pos, k);
    m->src_pos += k;
    return (long)k;
}

static int mem_write(void *o, const void *buf, size_t n)
{
    membuf *m = o;
    if (m->dst_cap - m->dst_pos < n) return -1;
    memcpy(m->dst + m->dst_pos, buf, n);
    m->dst_pos += n;
    return 0;
}

int lmz_compress_buffer(const lmz_params *p, const void *src, size_t n, void *dst, size_t cap,
                        size_t *out_len)
{
    membuf m = {src, n, 0, dst, cap, 0};
    lmz_io io = {&m, mem_read, mem_write, NULL};
    lmz_params q;
    if (!p) return LMZ_ERROR_PARAM;
    q = *p;
    if (q.size_hint == LMZ_SIZE_UNKNOWN) q.size_hint = n; /* known here */
    int e = lmz_compress_stream(&q, &io);
    if (e == LMZ_ERROR_WRITE) e = LMZ_ERROR_DST_SIZE;
    if (out_len) *out_len = m.dst_pos;
    return e;
}

int lmz_decompress_buffer(unsigned threads, const void *src, size_t n, void *dst, size_t cap,
                          size_t *out_len)
{
    lmz_dparams dp;
    memset(&dp, 0, sizeof dp);
    dp.threads = threads;
    return lmz_decompress_buffer_ex(&dp, src, n, dst, cap, out_len);
}

int lmz_decompress_buffer_ex(const lmz_dparams *p, const void *src, size_t n, void *dst, size_t cap,
                             size_t *out_len)
{
    membuf m = {src, n, 0, dst, cap, 0};
    lmz_io io = {&m, mem_read, mem_write, NULL};
    int e = decompress_limited(p, &io, cap);
    if (out_len) *out_len = m.dst_pos;
    return e;
}

int lmz_list_buffer(const void *src, size_t n, const lmz_list_callbacks *cb)
{
    membuf m = {src, n, 0, NULL, 0, 0};
    lmz_io io = {&m, mem_read, NULL, NULL};
    return lmz_list_stream(&io, cb);
}
