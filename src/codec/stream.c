/*
 * stream.c — compress, decompress and list .lmz streams (format.h).
 *
 * Input is cut into frames of `frame_size` bytes. Up to `threads` frames are
 * held at once and coded in parallel, one thread per frame; results are
 * written in input order, so the output does not depend on the thread count.
 * Memory is bounded by threads x (2 frames + one model).
 */
#define _DEFAULT_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "lmzip.h"
#include "format.h"
#include "rangecoder.h"
#include "lmcodec.h"
#include "../model/model.h"
#include "../predict/bytemodel.h"

#define MAX_THREADS 256

void lmz_params_default(lmz_params *p)
{
    p->frame_size = LMZ_FRAME_SIZE_DEFAULT;
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
    p->group = 1;
    p->lm_profile = 0;
}

int lmz_model_check(const char *path, char *err, size_t errlen)
{
    lmz_lm_params lp;
    memset(&lp, 0, sizeof lp);
    lmz_ens_params_default(&lp.ens);
    lp.text_min = LMZ_LM_TEXT_MIN_DEFAULT;
    lp.table_bits = LMZ_BM_TABLE_BITS_DEFAULT;
    lp.threads = 1;
    lmz_lm *lm;
    if (!path || lmz_lm_open(path, &lp, &lm, err, errlen) != 0) return LMZ_ERROR_MODEL;
    lmz_lm_free(lm);
    return LMZ_OK;
}

/* the language-model settings of a header, as the codec takes them */
static void lm_params_from_header(const lmz_header *h, unsigned threads, lmz_lm_params *lp)
{
    lp->ens.profile = lmz_profile_lm_version(h->profile);
    lp->ens.parts = h->parts;
    lp->ens.mixer = h->mixer;
    lp->ens.ngram_bits = h->ngram_bits;
    lp->ens.cdf_bits = h->cdf_bits;
    lp->ens.bias_lr = h->bias_lr;
    lp->ens.mix_lr = h->mix_lr;
    lp->ens.skip_mbits = h->skip_mbits;
    lp->text_min = h->text_min;
    lp->window = h->window;
    lp->table_bits = h->table_bits;
    lp->threads = threads;
    lp->ideal = 0;
}

static unsigned resolve_threads(unsigned t)
{
    if (t == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        t = n > 0 ? (unsigned)n : 1;
    }
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

/* Read up to n bytes (fewer only at end of input) straight from the
 * callback, for frame input. */
static int read_full(const lmz_io *io, uint8_t *dst, size_t n, size_t *got)
{
    size_t k = 0;
    while (k < n) {
        long r = io->read(io->opaque, dst + k, n - k);
        if (r < 0) return LMZ_ERROR_READ;
        if (r == 0) break;
        k += (size_t)r;
    }
    *got = k;
    return LMZ_OK;
}

/* ======================================================================== */
/* one frame                                                                 */
/* ======================================================================== */

typedef struct {
    /* input */
    const uint8_t *src;
    uint32_t n;
    unsigned table_bits;
    /* output */
    uint8_t *out;            /* n bytes of capacity */
    uint32_t out_len;
    unsigned method;
    int err;
} cjob;

/* The k frames of one group with the model (their text shares an ensemble). */
static int group_compress(lmz_lm *lm, cjob *jobs, unsigned k)
{
    lmz_lm_cframe f[LMZ_GROUP_MAX];
    for (unsigned i = 0; i < k; i++) f[i] = (lmz_lm_cframe){jobs[i].src, jobs[i].n, jobs[i].out, jobs[i].n - 1, 0};
    int err = lmz_lm_compress_group(lm, f, k);
    for (unsigned i = 0; i < k; i++) {
        cjob *j = &jobs[i];
        j->err = err;
        j->method = f[i].out_len ? LMZ_METHOD_LM : LMZ_METHOD_STORED;
        j->out_len = f[i].out_len ? (uint32_t)f[i].out_len : j->n;
    }
    return err;
}

static void frame_compress(cjob *j)
{
    j->method = LMZ_METHOD_STORED;
    j->out_len = j->n;
    j->err = LMZ_OK;
    lmz_bytemodel *m = lmz_bytemodel_create(lmz_bytemodel_table_bits(j->n, j->table_bits));
    if (!m) {
        j->err = LMZ_ERROR_NOMEM;
        return;
    }
    lmz_rc_enc rc;
    lmz_rc_enc_init(&rc, j->out, j->n);
    lmz_bytemodel_encode(m, &rc, j->src, j->n);
    size_t len = lmz_rc_enc_finish(&rc);
    lmz_bytemodel_free(m);
    if (len > 0 && len < j->n) {
        j->method = LMZ_METHOD_BYTEMODEL;
        j->out_len = (uint32_t)len;
    }
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
    if (XXH64(j->dst, j->fh.orig_size, 0) != j->fh.checksum) j->err = LMZ_ERROR_CHECKSUM;
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

int lmz_compress_stream(const lmz_params *p, const lmz_io *io)
{
    if (!p || !io || !io->read || !io->write) return LMZ_ERROR_PARAM;
    if (p->frame_size < LMZ_FRAME_SIZE_MIN || p->frame_size > LMZ_FRAME_SIZE_MAX) return LMZ_ERROR_PARAM;
    if (p->table_bits < LMZ_BM_TABLE_BITS_MIN || p->table_bits > LMZ_BM_TABLE_BITS_MAX) return LMZ_ERROR_PARAM;
    if (!p->model) return LMZ_ERROR_MODEL;
    if (p->stats) memset(p->stats, 0, sizeof *p->stats);

    lmz_header h;
    memset(&h, 0, sizeof h);
    h.version = LMZ_FORMAT_VERSION;
    strcpy(h.profile, LMZ_PROFILE_INT_V1);
    strcpy(h.model, "none");
    h.frame_size = p->frame_size;
    h.table_bits = p->table_bits;
    h.size_hint = p->size_hint;
    lmz_lm *lm = NULL;
    if (strcmp(p->model, "none") != 0) {
        if (p->frame_size > LMZ_LM_FRAME_MAX || p->text_min == 0 || p->text_min > 65536) return LMZ_ERROR_PARAM;
        h.parts = p->parts;
        h.mixer = p->mixer;
        h.ngram_bits = p->ngram_bits;
        h.cdf_bits = p->cdf_bits;
        h.bias_lr = p->bias_lr;
        h.mix_lr = p->mix_lr;
        h.text_min = p->text_min;
        h.window = p->window;
        h.skip_mbits = p->skip_mbits;
        h.group = p->group;
        const char *prof = lmz_profile_lm_name(p->lm_profile ? p->lm_profile : LMZ_LM_PROFILE_NEWEST);
        if (!prof || p->lm_profile == 1 || p->lm_profile == 2) return LMZ_ERROR_PARAM; /* v1, v2: read only */
        strcpy(h.profile, prof);
        if (p->group == 0 || p->group > LMZ_GROUP_MAX ||
            (p->group > 1 && (uint64_t)p->group * p->frame_size > LMZ_GROUP_BYTES_MAX))
            return LMZ_ERROR_PARAM;
        lmz_lm_params lp;
        lm_params_from_header(&h, resolve_threads(p->threads), &lp);
        lp.ideal = p->stats != NULL;
        if (lmz_ens_params_check(&lp.ens, 2) != 0) return LMZ_ERROR_PARAM;
        char msg[256];
        if (lmz_lm_open(p->model, &lp, &lm, msg, sizeof msg) != 0) return LMZ_ERROR_MODEL;
        strcpy(h.model, lmz_lm_name(lm));
        memcpy(h.model_hash, lmz_lm_hash(lm), 32);
        h.window = lmz_lm_window(lm);
    }

    uint8_t hb[LMZ_STREAM_HEADER_MAX];
    size_t hn = lmz_header_write(&h, hb);
    if (io->write(io->opaque, hb, hn)) {
        lmz_lm_free(lm);
        return LMZ_ERROR_WRITE;
    }

    /* with a model, a group of frames at a time, the model's products and
     * the frames' ensembles spread over the threads; without, one frame
     * per thread */
    unsigned nt = lm ? p->group : resolve_threads(p->threads);
    cjob *jobs = calloc(nt, sizeof *jobs);
    uint8_t *mem = NULL;
    if (jobs) mem = malloc((size_t)nt * 2 * p->frame_size);
    if (!jobs || !mem) {
        free(jobs);
        free(mem);
        lmz_lm_free(lm);
        return LMZ_ERROR_NOMEM;
    }
    for (unsigned i = 0; i < nt; i++) {
        jobs[i].src = mem + (size_t)i * 2 * p->frame_size;
        jobs[i].out = mem + ((size_t)i * 2 + 1) * p->frame_size;
        jobs[i].table_bits = p->table_bits;
    }

    XXH64_state_t *xs = XXH64_createState();
    int err = xs ? LMZ_OK : LMZ_ERROR_NOMEM;
    if (xs) XXH64_reset(xs, 0);
    uint64_t total_in = 0, total_out = hn, frames = 0;
    int done = 0;
    while (!err && !done) {
        unsigned k = 0;
        while (k < nt) {
            size_t got;
            err = read_full(io, (uint8_t *)jobs[k].src, p->frame_size, &got);
            if (err) break;
            if (got < p->frame_size) done = 1;
            if (got == 0) break;
            jobs[k++].n = (uint32_t)got;
            if (done) break;
        }
        if (err || k == 0) break;
        if (lm) group_compress(lm, jobs, k);
        else run_parallel(cjob_thread, jobs, sizeof *jobs, k);
        for (unsigned i = 0; i < k && !err; i++) {
            cjob *j = &jobs[i];
            if (j->err) {
                err = j->err;
                break;
            }
            lmz_frame_header fh = {j->method, j->n, j->out_len, XXH64(j->src, j->n, 0)};
            uint8_t fb[LMZ_FRAME_HEADER_SIZE];
            lmz_frame_header_write(&fh, fb);
            const uint8_t *payload = j->method == LMZ_METHOD_STORED ? j->src : j->out;
            if (io->write(io->opaque, fb, sizeof fb) || io->write(io->opaque, payload, j->out_len)) {
                err = LMZ_ERROR_WRITE;
                break;
            }
            XXH64_update(xs, j->src, j->n);
            total_in += j->n;
            total_out += sizeof fb + j->out_len;
            frames++;
            if (io->progress) io->progress(io->opaque, total_in, total_out);
        }
    }
    if (!err) {
        uint8_t eb[LMZ_END_BLOCK_SIZE];
        lmz_end_block_write(total_in, frames, XXH64_digest(xs), eb);
        if (io->write(io->opaque, eb, sizeof eb)) err = LMZ_ERROR_WRITE;
    }
    XXH64_freeState(xs);
    free(mem);
    free(jobs);
    if (lm && p->stats) {
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
    return err;
}

/* ======================================================================== */
/* stream header                                                             */
/* ======================================================================== */

/* Read and check one stream header; the magic is already consumed. With
 * check_support 0, a well-formed header of a model, profile or setting this
 * build lacks is returned as LMZ_OK (for naming what is missing). */
static int header_read(reader *r, lmz_header *h, int check_support)
{
    uint8_t b[LMZ_STREAM_HEADER_MAX];
    size_t o = LMZ_MAGIC_LEN;
    int e;
    memcpy(b, lmz_magic, LMZ_MAGIC_LEN);
    memset(h, 0, sizeof *h);
    h->group = 1;
#define NEED(n)                                                              \
    do {                                                                     \
        if ((e = rd_exact(r, b + o, (n))) != LMZ_OK) return e;               \
        o += (n);                                                            \
    } while (0)
    NEED(2);
    h->version = b[8];
    if (h->version != LMZ_FORMAT_VERSION) return LMZ_ERROR_VERSION;
    if (b[9] != 0) return LMZ_ERROR_HEADER;
    char *names[2] = {h->profile, h->model};
    for (int s = 0; s < 2; s++) {
        NEED(1);
        size_t n = b[o - 1];
        if (n == 0 || n > LMZ_NAME_MAX) return LMZ_ERROR_HEADER;
        NEED(n);
        memcpy(names[s], b + o - n, n);
        names[s][n] = 0;
        if (memchr(names[s], 0, n)) return LMZ_ERROR_HEADER;
    }
    NEED(32);
    memcpy(h->model_hash, b + o - 32, 32);
    NEED(1);
    unsigned ns = b[o - 1];
    if (ns > LMZ_SETTINGS_MAX) return LMZ_ERROR_HEADER;
    int have_fs = 0, have_tb = 0, unknown = 0;
    unsigned have_lm = 0; /* bit (id - LMZ_SET_PARTS) per language-model setting */
    int have_skip = 0, have_group = 0;
    for (unsigned i = 0; i < ns; i++) {
        NEED(9);
        unsigned id = b[o - 9];
        uint64_t v = lmz_get_u64(b + o - 8);
        unsigned bit = id >= LMZ_SET_PARTS && id < LMZ_SET_PARTS + LMZ_LM_SETTINGS ? 1u << (id - LMZ_SET_PARTS) : 0;
        uint32_t v32 = (uint32_t)v;
        float f;
        memcpy(&f, &v32, 4);
        if (id == LMZ_SET_FRAME_SIZE && !have_fs) {
            if (v < LMZ_FRAME_SIZE_MIN || v > LMZ_FRAME_SIZE_MAX) return LMZ_ERROR_HEADER;
            h->frame_size = (uint32_t)v;
            have_fs = 1;
        } else if (id == LMZ_SET_TABLE_BITS && !have_tb) {
            if (v < LMZ_BM_TABLE_BITS_MIN || v > LMZ_BM_TABLE_BITS_MAX) return LMZ_ERROR_HEADER;
            h->table_bits = (unsigned)v;
            have_tb = 1;
        } else if (bit && !(have_lm & bit)) {
            have_lm |= bit;
            int bad = 0;
            switch (id) {
            case LMZ_SET_PARTS: bad = v == 0 || v > LMZ_ENS_ALL; h->parts = (unsigned)v; break;
            case LMZ_SET_MIXER: bad = v > LMZ_MIX_LOG; h->mixer = (unsigned)v; break;
            case LMZ_SET_NGRAM_BITS:
                bad = v < LMZ_ENS_NGRAM_BITS_MIN || v > LMZ_ENS_NGRAM_BITS_MAX;
                h->ngram_bits = (unsigned)v;
                break;
            case LMZ_SET_CDF_BITS: bad = v < 16 || v > 24; h->cdf_bits = (unsigned)v; break;
            case LMZ_SET_BIAS_LR: bad = v > UINT32_MAX || !(f >= 0 && f <= 1); h->bias_lr = f; break;
            case LMZ_SET_MIX_LR: bad = v > UINT32_MAX || !(f >= 0 && f <= 1); h->mix_lr = f; break;
            case LMZ_SET_TEXT_MIN: bad = v == 0 || v > 65536; h->text_min = (unsigned)v; break;
            default: bad = v > LMZ_MAX_WINDOW; h->window = (uint32_t)v; break;
            }
            if (bad) return LMZ_ERROR_HEADER;
        } else if (id == LMZ_SET_SKIP && !have_skip) {
            if (v > 16000) return LMZ_ERROR_HEADER;
            h->skip_mbits = (uint32_t)v;
            have_skip = 1;
        } else if (id == LMZ_SET_GROUP && !have_group) {
            if (v == 0 || v > LMZ_GROUP_MAX) return LMZ_ERROR_HEADER;
            h->group = (unsigned)v;
            have_group = 1;
        } else {
            unknown = 1;
        }
    }
    NEED(8);
    h->size_hint = lmz_get_u64(b + o - 8);
    uint8_t cb[4];
    if ((e = rd_exact(r, cb, 4)) != LMZ_OK) return e;
    if (lmz_get_u32(cb) != (uint32_t)XXH64(b, o, 0)) return LMZ_ERROR_HEADER;
#undef NEED
    /* the checksum holds, so the fields are what the writer meant */
    if (!check_support) return LMZ_OK;
    if (unknown) return LMZ_ERROR_SETTING;
    if (!have_fs || !have_tb) return LMZ_ERROR_HEADER;
    if (!strcmp(h->profile, LMZ_PROFILE_INT_V1)) {
        if (have_lm || have_skip || have_group) return LMZ_ERROR_HEADER;
        if (strcmp(h->model, "none") != 0) return LMZ_ERROR_MODEL;
        return LMZ_OK;
    }
    if (!lmz_profile_is_lm(h->profile)) return LMZ_ERROR_PROFILE;
    if (have_lm != (1u << LMZ_LM_SETTINGS) - 1 || h->frame_size > LMZ_LM_FRAME_MAX) return LMZ_ERROR_HEADER;
    if ((uint64_t)h->group * h->frame_size > LMZ_GROUP_BYTES_MAX && h->group > 1) return LMZ_ERROR_HEADER;
    return LMZ_OK;
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

/* Read a frame payload into a buffer that grows as bytes arrive, so a lying
 * size field cannot make us allocate more than the input holds. */
static int payload_read(reader *r, uint8_t **buf, size_t *cap, size_t n)
{
    size_t have = 0;
    while (have < n) {
        size_t want = n - have;
        if (want > (8u << 20)) want = 8u << 20;
        if (have + want > *cap) {
            size_t nc = *cap ? *cap : 1u << 16;
            while (nc < have + want) nc *= 2;
            if (nc > n) nc = n;
            uint8_t *nb = realloc(*buf, nc);
            if (!nb) return LMZ_ERROR_NOMEM;
            *buf = nb;
            *cap = nc;
        }
        int e = rd_exact(r, *buf + have, want);
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

/* Decode the k frames of jobs: with a model, its frames in lockstep and
 * the others (stored, byte model) one by one; without, in parallel. */
static void decode_batch(lmz_lm *lm, unsigned group, djob *jobs, unsigned k, unsigned nt, lmz_lm_frame *lf)
{
    if (!lm) {
        for (unsigned i = 0; i < k; i += nt) run_parallel(djob_thread, jobs + i, sizeof *jobs, k - i < nt ? k - i : nt);
        return;
    }
    unsigned nl = 0;
    for (unsigned i = 0; i < k; i++) {
        djob *j = &jobs[i];
        if (j->fh.method != LMZ_METHOD_LM) {
            frame_decompress(j);
            continue;
        }
        lf[nl++] = (lmz_lm_frame){j->payload, j->fh.comp_size, j->dst, j->fh.orig_size, i / group, LMZ_OK};
    }
    lmz_lm_decompress_frames(lm, lf, nl);
    nl = 0;
    for (unsigned i = 0; i < k; i++) {
        djob *j = &jobs[i];
        if (j->fh.method != LMZ_METHOD_LM) continue;
        j->err = lf[nl++].err;
        if (!j->err && XXH64(j->dst, j->fh.orig_size, 0) != j->fh.checksum) j->err = LMZ_ERROR_CHECKSUM;
    }
}

/* The model a stream needs, from the caller's file; LMZ_ERROR_MODEL when
 * there is none or it is another model. */
static int stream_model(const lmz_header *h, const lmz_dparams *dp, unsigned nt, lmz_lm **out)
{
    *out = NULL;
    if (!lmz_profile_is_lm(h->profile)) return LMZ_OK;
    const char *path = dp->model ? dp->model : dp->find_model ? dp->find_model(dp->find_opaque, h->model) : NULL;
    if (!path) return LMZ_ERROR_MODEL;
    lmz_lm_params lp;
    lm_params_from_header(h, nt, &lp);
    char msg[256];
    lmz_lm *lm;
    if (lmz_lm_open(path, &lp, &lm, msg, sizeof msg) != 0) return LMZ_ERROR_MODEL;
    if (memcmp(lmz_lm_hash(lm), h->model_hash, 32) != 0) {
        lmz_lm_free(lm);
        return LMZ_ERROR_MODEL;
    }
    *out = lm;
    return LMZ_OK;
}

/* original bytes gathered for one lockstep batch of frames apart (groups of
 * one): each has its own ensemble, up to ~40 MB for a 256K frame */
#define BATCH_BYTES (8u << 20)

static int decompress_limited(const lmz_dparams *dp, const lmz_io *io, uint64_t out_limit)
{
    if (!dp || !io || !io->read || !io->write) return LMZ_ERROR_PARAM;
    unsigned nt = resolve_threads(dp->threads);
    unsigned nj = nt > LMZ_LM_BATCH ? nt : LMZ_LM_BATCH;
    reader *r = malloc(sizeof *r);
    djob *jobs = calloc(nj, sizeof *jobs);
    dbuf *bufs = calloc(nj, sizeof *bufs);
    lmz_lm_frame *lf = calloc(nj, sizeof *lf);
    lmz_lm *lm = NULL;
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
        if ((err = stream_model(&h, dp, nt, &lm)) != LMZ_OK) break;
        XXH64_reset(xs, 0);
        uint64_t total = 0, frames = 0;
        int stream_done = 0;
        /* with a model: a group, or with groups of one, a batch of frames */
        unsigned nb = !lm ? nt : h.group > 1 ? h.group : LMZ_LM_BATCH;
        while (!err && !stream_done) {
            unsigned k = 0;
            uint64_t batch_bytes = 0;
            while (k < nb && (h.group > 1 || batch_bytes < BATCH_BYTES)) { /* gather a batch of frames */
                uint8_t type;
                if ((err = rd_exact(r, &type, 1)) != LMZ_OK) break;
                if (type == LMZ_BLOCK_END) {
                    stream_done = 1;
                    break;
                }
                if (type != LMZ_BLOCK_FRAME) {
                    err = LMZ_ERROR_CORRUPT;
                    break;
                }
                uint8_t fb[LMZ_FRAME_HEADER_SIZE - 1];
                djob *j = &jobs[k];
                if ((err = rd_exact(r, fb, sizeof fb)) != LMZ_OK) break;
                if ((err = lmz_frame_header_parse(fb, &h, &j->fh)) != LMZ_OK) break;
                if (out_total + j->fh.orig_size > out_limit) {
                    err = LMZ_ERROR_DST_SIZE;
                    break;
                }
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
            if (k) decode_batch(lm, h.group, jobs, k, nt, lf);
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
        uint64_t e_total, e_frames, e_hash;
        if ((err = end_block_read(r, &e_total, &e_frames, &e_hash)) != LMZ_OK) break;
        if (e_total != total || e_frames != frames) err = LMZ_ERROR_CORRUPT;
        else if (e_hash != XXH64_digest(xs)) err = LMZ_ERROR_CHECKSUM;
    }
    lmz_lm_free(lm);
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
    lmz_dparams dp = {threads, NULL, NULL, NULL};
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
        uint64_t total = 0, frames = 0;
        for (;;) {
            uint8_t type;
            if ((err = rd_exact(r, &type, 1)) != LMZ_OK) break;
            if (type == LMZ_BLOCK_END) break;
            if (type != LMZ_BLOCK_FRAME) {
                err = LMZ_ERROR_CORRUPT;
                break;
            }
            uint8_t fb[LMZ_FRAME_HEADER_SIZE - 1];
            lmz_frame_header fh;
            if ((err = rd_exact(r, fb, sizeof fb)) != LMZ_OK) break;
            if ((err = lmz_frame_header_parse(fb, &h, &fh)) != LMZ_OK) break;
            if ((err = rd_exact(r, NULL, fh.comp_size)) != LMZ_OK) break;
            if (cb->on_frame) {
                lmz_frame_info f = {si, frames, fh.method, fh.orig_size,
                                    fh.comp_size + LMZ_FRAME_HEADER_SIZE, fh.checksum};
                cb->on_frame(cb->opaque, &f);
            }
            total += fh.orig_size;
            frames++;
        }
        if (err) break;
        uint64_t e_total, e_frames, e_hash;
        if ((err = end_block_read(r, &e_total, &e_frames, &e_hash)) != LMZ_OK) break;
        if (e_total != total || e_frames != frames) {
            err = LMZ_ERROR_CORRUPT;
            break;
        }
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
    lmz_dparams dp = {threads, NULL, NULL, NULL};
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
