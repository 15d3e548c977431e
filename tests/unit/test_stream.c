/* Byte model, .lmz streams, buffers, threads, damage. */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "codec/format.h"
#include "codec/settings.h"
#include "common/rangecoder.h"
#include "lmzip.h"
#include "predict/bytemodel.h"
#include "test.h"

static unsigned g_format; /* lmz_params.format_version of compress_buf (0: the default) */

static uint8_t *compress_buf(const uint8_t *src, size_t n, uint32_t frame, unsigned threads,
                             size_t *clen)
{
    lmz_params p;
    lmz_params_default(&p);
    p.format_version = g_format;
    p.frame_size = frame;
    p.threads = threads;
    size_t cap = lmz_compress_bound(n, frame);
    uint8_t *c = malloc(cap);
    int e = lmz_compress_buffer(&p, src, n, c, cap, clen);
    CHECK_EQ_U64(e, LMZ_OK);
    return c;
}

/* round trip; @return compressed size */
static size_t round_trip(const uint8_t *src, size_t n, uint32_t frame, unsigned threads)
{
    size_t clen = 0, dlen = 0;
    uint8_t *c = compress_buf(src, n, frame, threads, &clen);
    uint8_t *d = malloc(n + 1);
    int e = lmz_decompress_buffer(threads, c, clen, d, n + 1, &dlen);
    CHECK_EQ_U64(e, LMZ_OK);
    CHECK_EQ_U64(dlen, n);
    CHECK(dlen == n && memcmp(d, src, n) == 0);
    free(c);
    free(d);
    return clen;
}

static uint8_t *random_bytes(size_t n, unsigned long long seed)
{
    uint8_t *b = malloc(n + 1);
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)test_rand(&seed);
    return b;
}

TEST(bytemodel_round_trip_and_determinism)
{
    const char *text = "the quick brown fox jumps over the lazy dog; the quick brown fox "
                       "jumps over the lazy dog again and again, and the dog sleeps.\n";
    size_t n = strlen(text) * 20;
    uint8_t *src = malloc(n);
    for (size_t i = 0; i < n; i++) src[i] = (uint8_t)text[i % strlen(text)];
    uint8_t *out1 = malloc(n), *out2 = malloc(n), *back = malloc(n);
    size_t len[2];
    for (int k = 0; k < 2; k++) {
        lmz_bytemodel *m = lmz_bytemodel_create(14);
        CHECK(m != NULL);
        lmz_rc_enc e;
        lmz_rc_enc_init(&e, k ? out2 : out1, n);
        lmz_bytemodel_encode(m, &e, src, n);
        len[k] = lmz_rc_enc_finish(&e);
        lmz_bytemodel_free(m);
    }
    CHECK(len[0] > 0 && len[0] == len[1] && memcmp(out1, out2, len[0]) == 0);
    CHECK(len[0] < n / 20); /* a repeated sentence costs almost nothing */
    lmz_bytemodel *m = lmz_bytemodel_create(14);
    lmz_rc_dec d;
    lmz_rc_dec_init(&d, out1, len[0]);
    lmz_bytemodel_decode(m, &d, back, n);
    lmz_bytemodel_free(m);
    CHECK(memcmp(back, src, n) == 0);
    CHECK(!d.overrun && !d.corrupt && d.pos == len[0]);
    free(src);
    free(out1);
    free(out2);
    free(back);
}

/* binary records, 4 bytes each, counting from `from` */
static void records(uint8_t *b, size_t n, unsigned from)
{
    for (size_t i = 0; i < n; i++) {
        unsigned r = from + (unsigned)(i / 4);
        b[i] = (uint8_t)(i % 4 == 0 ? r : i % 4 == 1 ? r >> 8 : i % 4 == 2 ? 2 : 1);
    }
}

/* code pieces[0..k) with one chain (the learned ones without output) and
 * decode them with another; @return the coded size of the last piece */
static size_t chain_round_trip(uint8_t **piece, const size_t *len, const int *learned, size_t k)
{
    lmz_bytemodel *e = lmz_bytemodel_create(16), *d = lmz_bytemodel_create(16);
    CHECK(e && d);
    size_t last = 0;
    for (size_t i = 0; i < k; i++) {
        if (learned[i]) {
            CHECK_EQ_U64(lmz_bytemodel_learn_next(e, piece[i], len[i]), 0);
            CHECK_EQ_U64(lmz_bytemodel_learn_next(d, piece[i], len[i]), 0);
            continue;
        }
        uint8_t *c = malloc(len[i] + 64), *back = malloc(len[i]);
        lmz_rc_enc rc;
        lmz_rc_enc_init(&rc, c, len[i] + 64);
        CHECK_EQ_U64(lmz_bytemodel_encode_next(e, &rc, piece[i], len[i]), 0);
        last = lmz_rc_enc_finish(&rc);
        CHECK(last > 0);
        lmz_rc_dec rd;
        lmz_rc_dec_init(&rd, c, last);
        CHECK_EQ_U64(lmz_bytemodel_decode_next(d, &rd, back, len[i]), 0);
        CHECK(lmz_rc_dec_finished_cleanly(&rd) && memcmp(back, piece[i], len[i]) == 0);
        free(c);
        free(back);
    }
    lmz_bytemodel_free(e);
    lmz_bytemodel_free(d);
    return last;
}

/* A chain codes buffers one after another as one: the third piece, the
 * first again after random bytes the chain only learned, costs far less
 * than it does alone (the match model reaches back over the pieces); the pieces decode with a chain of their own. A chain past
 * LMZ_BM_CHAIN_MAX starts again on both sides alike (not under
 * LMZ_TEST_QUICK: it takes a few seconds). */
TEST(bytemodel_chain)
{
    size_t len[3] = {8192, 4096, 8192};
    uint8_t *piece[3] = {malloc(len[0]), random_bytes(len[1], 5), malloc(len[2])};
    records(piece[0], len[0], 0);
    records(piece[2], len[2], 0); /* piece 0 again: the match model finds it */
    int learned[3] = {0, 1, 0};
    size_t chained = chain_round_trip(piece, len, learned, 3);
    uint8_t *c = malloc(len[2] + 64);
    lmz_bytemodel *m = lmz_bytemodel_create(16);
    lmz_rc_enc rc;
    lmz_rc_enc_init(&rc, c, len[2] + 64);
    lmz_bytemodel_encode(m, &rc, piece[2], len[2]);
    size_t alone = lmz_rc_enc_finish(&rc);
    lmz_bytemodel_free(m);
    CHECK(chained > 0 && chained * 4 < alone);
    free(c);
    for (int i = 0; i < 3; i++) free(piece[i]);
    if (getenv("LMZ_TEST_QUICK")) return;
    size_t big[3] = {1800000, 1800000, 1800000}; /* the third passes 4 MiB: a new chain */
    uint8_t *bp[3];
    for (int i = 0; i < 3; i++) {
        bp[i] = malloc(big[i]);
        records(bp[i], big[i], (unsigned)i * 7919);
    }
    int none[3] = {0, 0, 0};
    chain_round_trip(bp, big, none, 3);
    for (int i = 0; i < 3; i++) free(bp[i]);
}

TEST(bytemodel_table_bits_rule)
{
    CHECK_EQ_U64(lmz_bytemodel_table_bits(1, 22), 12);
    CHECK_EQ_U64(lmz_bytemodel_table_bits(4096, 22), 12);
    CHECK_EQ_U64(lmz_bytemodel_table_bits(4097, 22), 13);
    CHECK_EQ_U64(lmz_bytemodel_table_bits(152089, 22), 18);
    CHECK_EQ_U64(lmz_bytemodel_table_bits(4u << 20, 22), 22);
    CHECK_EQ_U64(lmz_bytemodel_table_bits(4u << 20, 16), 16);
    CHECK(lmz_bytemodel_create(11) == NULL);
    CHECK(lmz_bytemodel_create(25) == NULL);
}

TEST(stream_empty_one_byte_random)
{
    round_trip((const uint8_t *)"", 0, LMZ_FRAME_SIZE_DEFAULT, 1);
    round_trip((const uint8_t *)"x", 1, LMZ_FRAME_SIZE_DEFAULT, 1);
    for (int v = 0; v < 256; v += 51) {
        uint8_t b = (uint8_t)v;
        round_trip(&b, 1, LMZ_FRAME_SIZE_MIN, 1);
    }
    uint8_t *r = random_bytes(100000, 9);
    size_t c = round_trip(r, 100000, 8192, 2);
    /* random data is stored: tiny overhead only */
    CHECK(c < 100000 + 13 * LMZ_FRAME_HEADER_SIZE + LMZ_STREAM_HEADER_MAX + LMZ_END_BLOCK_SIZE);
    free(r);
    uint8_t *z = calloc(300000, 1);
    CHECK(round_trip(z, 300000, LMZ_FRAME_SIZE_DEFAULT, 1) < 300);
    free(z);
}

TEST(stream_output_independent_of_threads)
{
    size_t n = 200000;
    uint8_t *src = random_bytes(n, 4);
    for (size_t i = 0; i < n; i++) src[i] = (uint8_t)("abcde fghij\n"[src[i] % 12]);
    size_t l1, l2, l3;
    uint8_t *c1 = compress_buf(src, n, 16384, 1, &l1);
    uint8_t *c2 = compress_buf(src, n, 16384, 2, &l2);
    uint8_t *c3 = compress_buf(src, n, 16384, 7, &l3);
    CHECK(l1 == l2 && l2 == l3);
    CHECK(memcmp(c1, c2, l1) == 0 && memcmp(c1, c3, l1) == 0);
    /* and each decodes with any thread count */
    uint8_t *d = malloc(n);
    for (unsigned t = 1; t <= 4; t++) {
        size_t dl;
        CHECK_EQ_U64(lmz_decompress_buffer(t, c1, l1, d, n, &dl), LMZ_OK);
        CHECK(dl == n && memcmp(d, src, n) == 0);
    }
    free(d);
    free(c1);
    free(c2);
    free(c3);
    free(src);
}

TEST(stream_concatenation)
{
    size_t la, lb, dl;
    uint8_t *a = compress_buf((const uint8_t *)"hello, ", 7, LMZ_FRAME_SIZE_MIN, 1, &la);
    uint8_t *b = compress_buf((const uint8_t *)"world", 5, LMZ_FRAME_SIZE_MIN, 1, &lb);
    uint8_t *e = compress_buf((const uint8_t *)"", 0, LMZ_FRAME_SIZE_MIN, 1, &dl);
    size_t le = dl;
    uint8_t *cat = malloc(la + lb + le);
    memcpy(cat, a, la);
    memcpy(cat + la, e, le);
    memcpy(cat + la + le, b, lb);
    char out[32];
    CHECK_EQ_U64(lmz_decompress_buffer(1, cat, la + lb + le, out, sizeof out, &dl), LMZ_OK);
    CHECK(dl == 12 && memcmp(out, "hello, world", 12) == 0);
    free(a);
    free(b);
    free(e);
    free(cat);
}

TEST(stream_every_damage_is_detected)
{
    /* flip every bit of a small multi-frame file, cut it at every length:
     * decoding must fail cleanly each time (every byte is under a check,
     * or its damage shows in what it describes); both format versions,
     * and a one-frame stream of version 2 */
    const char *txt = "It was the best of times, it was the worst of times, it was the age "
                      "of wisdom, it was the age of foolishness, it was the epoch of belief. ";
    size_t n = 2500;
    uint8_t *src = malloc(n);
    for (size_t i = 0; i < n; i++) src[i] = (uint8_t)txt[(i * 7) % strlen(txt)];
    static const struct {
        unsigned format;
        uint32_t frame;
    } cases[] = {{0, 1024}, {1, 1024}, {0, 65536}};
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        size_t clen;
        g_format = cases[ci].format;
        uint8_t *c = compress_buf(src, n, cases[ci].frame, 1, &clen);
        g_format = 0;
        uint8_t *d = malloc(n);
        size_t undetected = 0, dl;
        size_t step = test_quick() ? 5 : 1;
        for (size_t i = 0; i < clen * 8; i += step) {
            c[i / 8] ^= (uint8_t)(1u << (i % 8));
            if (lmz_decompress_buffer(1, c, clen, d, n, &dl) == LMZ_OK) undetected++;
            c[i / 8] ^= (uint8_t)(1u << (i % 8));
        }
        CHECK_EQ_U64(undetected, 0);
        for (size_t k = 0; k < clen; k += step) {
            int e = lmz_decompress_buffer(1, c, k, d, n, &dl);
            if (e == LMZ_OK) undetected++;
        }
        CHECK_EQ_U64(undetected, 0);
        CHECK_EQ_U64(lmz_decompress_buffer(1, c, 0, d, n, &dl), LMZ_ERROR_EMPTY);
        CHECK_EQ_U64(lmz_decompress_buffer(1, c, clen, d, n - 1, &dl), LMZ_ERROR_DST_SIZE);
        c[3] = 'X';
        CHECK_EQ_U64(lmz_decompress_buffer(1, c, clen, d, n, &dl), LMZ_ERROR_BAD_MAGIC);
        free(c);
        free(d);
    }
    free(src);
}

/* the header check of a version-2 stream recomputed after an edit */
static void recheck_v2(uint8_t *c, size_t check_at)
{
    lmz_put_u32(c + check_at, (uint32_t)XXH64(c, check_at, 0));
}

TEST(stream_header_fields)
{
    size_t clen;
    uint8_t *c = compress_buf((const uint8_t *)"abc", 3, 65536, 1, &clen);
    uint8_t d[8];
    size_t dl;
    /* version 2, one frame of 3 bytes: magic, version, flags (size, one
     * frame), profile 0, size 3, header check; method, payload size,
     * content check, payload */
    CHECK_EQ_U64(c[8], 2);
    CHECK_EQ_U64(c[9], LMZ_F2_SIZE | LMZ_F2_ONE_FRAME);
    CHECK_EQ_U64(c[10], 0);
    CHECK_EQ_U64(c[11], 3);
    CHECK_EQ_U64(clen, 16 + 6 + (size_t)c[17]);
    /* unknown version: rejected by name even though its check would fail */
    c[8] = 3;
    CHECK_EQ_U64(lmz_decompress_buffer(1, c, clen, d, sizeof d, &dl), LMZ_ERROR_VERSION);
    c[8] = 2;
    /* any change under the header check */
    c[11] ^= 1;
    CHECK_EQ_U64(lmz_decompress_buffer(1, c, clen, d, sizeof d, &dl), LMZ_ERROR_HEADER);
    c[11] ^= 1;
    CHECK_EQ_U64(lmz_decompress_buffer(1, c, clen, d, sizeof d, &dl), LMZ_OK);
    /* well-formed headers this build refuses: a flag it does not know, a
     * profile code it does not know, one frame without a size */
    uint8_t *b = malloc(clen);
    memcpy(b, c, clen);
    b[9] |= 0x10;
    recheck_v2(b, 12);
    CHECK_EQ_U64(lmz_decompress_buffer(1, b, clen, d, sizeof d, &dl), LMZ_ERROR_HEADER);
    memcpy(b, c, clen);
    b[10] = 200; /* codes 128..255: profiles without a model, so the layout stays */
    recheck_v2(b, 12);
    CHECK_EQ_U64(lmz_decompress_buffer(1, b, clen, d, sizeof d, &dl), LMZ_ERROR_PROFILE);
    lmz_stream_info si;
    CHECK_EQ_U64(lmz_peek_header(b, clen, &si), LMZ_OK);
    CHECK(strcmp(si.profile, "code 200") == 0);
    /* a size of 3 spelled in two bytes (83 00): only the shortest form */
    uint8_t *w = malloc(clen + 1);
    memcpy(w, c, 11);
    w[11] = 0x83;
    w[12] = 0x00;
    memcpy(w + 13, c + 12, clen - 12);
    recheck_v2(w, 13);
    CHECK_EQ_U64(lmz_decompress_buffer(1, w, clen + 1, d, sizeof d, &dl), LMZ_ERROR_HEADER);
    free(w);
    free(b);
    /* trailing garbage after a complete stream is not a stream */
    uint8_t *g = malloc(clen + 3);
    memcpy(g, c, clen);
    memcpy(g + clen, "xyz", 3);
    CHECK_EQ_U64(lmz_decompress_buffer(1, g, clen + 3, d, sizeof d, &dl), LMZ_ERROR_BAD_MAGIC);
    free(g);
    free(c);
    /* version 1 as before */
    g_format = 1;
    c = compress_buf((const uint8_t *)"abc", 3, 65536, 1, &clen);
    g_format = 0;
    CHECK_EQ_U64(c[8], 1);
    c[20] ^= 1;
    CHECK_EQ_U64(lmz_decompress_buffer(1, c, clen, d, sizeof d, &dl), LMZ_ERROR_HEADER);
    c[20] ^= 1;
    CHECK_EQ_U64(lmz_decompress_buffer(1, c, clen, d, sizeof d, &dl), LMZ_OK);
    free(c);
}

TEST(stream_short_form_sizes)
{
    /* what a stream costs around its payload: version 2 writes a setting
     * only where it differs from the format's defaults */
    lmz_params p;
    lmz_params_default(&p);
    uint8_t out[4096];
    size_t ol, ol2, ol1;
    static const uint8_t zero[1] = {0};
    /* empty: header (16 bytes with the size 0) and an end block (6) */
    CHECK_EQ_U64(lmz_compress_buffer(&p, zero, 0, out, sizeof out, &ol), LMZ_OK);
    CHECK_EQ_U64(ol, 22);
    CHECK_EQ_U64(lmz_decompress_buffer(1, out, ol, NULL, 0, &ol2), LMZ_OK);
    CHECK_EQ_U64(ol2, 0);
    /* one byte: 16 + 6 + the stored byte */
    CHECK_EQ_U64(lmz_compress_buffer(&p, "x", 1, out, sizeof out, &ol), LMZ_OK);
    CHECK_EQ_U64(ol, 23);
    p.format_version = 1;
    CHECK_EQ_U64(lmz_compress_buffer(&p, "x", 1, out, sizeof out, &ol1), LMZ_OK);
    CHECK(ol1 >= ol + 100);
    /* a setting off its default: 3 bytes (count, id, value) */
    p.format_version = 0;
    p.table_bits = 20;
    CHECK_EQ_U64(lmz_compress_buffer(&p, "x", 1, out, sizeof out, &ol2), LMZ_OK);
    CHECK_EQ_U64(ol2, ol + 3);
    lmz_stream_info si;
    CHECK_EQ_U64(lmz_peek_header(out, ol2, &si), LMZ_OK);
    CHECK_EQ_U64(si.table_bits, 20);
    CHECK_EQ_U64(si.frame_size, LMZ_FRAME_SIZE_DEFAULT);
    CHECK_EQ_U64(si.size_hint, 1);
    CHECK_EQ_U64(si.format_version, 2);
    /* several frames: each block has its original size, the stream an end
     * block; the decoded content is the same */
    lmz_params_default(&p);
    p.frame_size = 1024;
    uint8_t src[3000];
    for (size_t i = 0; i < sizeof src; i++) src[i] = (uint8_t)("lorem ipsum dolor "[i % 18]);
    CHECK_EQ_U64(lmz_compress_buffer(&p, src, sizeof src, out, sizeof out, &ol), LMZ_OK);
    uint8_t back[3000];
    CHECK_EQ_U64(lmz_decompress_buffer(1, out, ol, back, sizeof back, &ol2), LMZ_OK);
    CHECK_EQ_U64(ol2, sizeof src);
    CHECK(memcmp(back, src, sizeof src) == 0);
}

TEST(stream_parameters_are_checked)
{
    lmz_params p;
    lmz_params_default(&p);
    uint8_t out[1024];
    size_t ol;
    p.frame_size = 10;
    CHECK_EQ_U64(lmz_compress_buffer(&p, "a", 1, out, sizeof out, &ol), LMZ_ERROR_PARAM);
    lmz_params_default(&p);
    p.table_bits = 30;
    CHECK_EQ_U64(lmz_compress_buffer(&p, "a", 1, out, sizeof out, &ol), LMZ_ERROR_PARAM);
    lmz_params_default(&p);
    p.model = "smollm2";
    CHECK_EQ_U64(lmz_compress_buffer(&p, "a", 1, out, sizeof out, &ol), LMZ_ERROR_MODEL);
    lmz_params_default(&p);
    CHECK_EQ_U64(lmz_compress_buffer(&p, "a", 1, out, 10, &ol), LMZ_ERROR_DST_SIZE);
    for (int i = 0; i <= LMZ_ERROR_COUNT_; i++) CHECK(lmz_error_name(i) != NULL);
    CHECK(strcmp(lmz_error_name(-5), "unknown error code") == 0);
}

/* Every file of ../shared/data/bench round-trips exactly (2 threads, 1 MiB
 * frames so that multi-frame files are covered). */
TEST(stream_bench_corpus_round_trips)
{
    static const char *files[] = {
        "canterbury/alice29.txt", "canterbury/asyoulik.txt", "canterbury/cp.html",
        "canterbury/fields.c", "canterbury/grammar.lsp", "canterbury/kennedy.xls",
        "canterbury/lcet10.txt", "canterbury/plrabn12.txt", "canterbury/ptt5",
        "canterbury/sum", "canterbury/xargs.1", "calgary/bib", "calgary/book1",
        "calgary/book2", "calgary/geo", "calgary/news", "calgary/obj1", "calgary/obj2",
        "calgary/paper1", "calgary/paper2", "calgary/paper3", "calgary/paper4",
        "calgary/paper5", "calgary/paper6", "calgary/pic", "calgary/progc", "calgary/progl",
        "calgary/progp", "calgary/trans", "canterbury-large/bible.txt",
        "canterbury-large/world192.txt", "enwik/enwik4", "enwik/enwik5", "enwik/enwik6"};
    int found = 0;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        const char *path = test_bench_path(files[i]);
        if (!path) continue;
        size_t n;
        uint8_t *src = test_read_file(path, &n);
        if (!src) continue;
        if (test_quick() && n > 60000) {
            free(src);
            continue;
        }
        found++;
        size_t c = round_trip(src, n, 1u << 20, 2);
        printf("  %-28s %9zu -> %9zu  %.3f bpb\n", files[i], n, c, 8.0 * (double)c / (double)n);
        free(src);
    }
    if (!found) printf("  ../shared/data/bench not found: skipped\n");
}

typedef struct {
    int streams, frames, ends;
    uint64_t orig;
    char model[64];
} list_seen;

static void on_s(void *o, const lmz_stream_info *s)
{
    list_seen *l = o;
    l->streams++;
    snprintf(l->model, sizeof l->model, "%s", s->model);
}
static void on_f(void *o, const lmz_frame_info *f)
{
    list_seen *l = o;
    l->frames++;
    l->orig += f->orig_size;
}
static void on_e(void *o, unsigned si, uint64_t frames, uint64_t orig, uint64_t comp)
{
    list_seen *l = o;
    (void)si;
    (void)frames;
    (void)orig;
    (void)comp;
    l->ends++;
}

TEST(stream_list_and_peek)
{
    size_t n = 5000, clen;
    uint8_t *src = random_bytes(n, 21);
    uint8_t *c = compress_buf(src, n, 1024, 1, &clen);
    uint8_t *cat = malloc(2 * clen);
    memcpy(cat, c, clen);
    memcpy(cat + clen, c, clen);
    list_seen seen;
    memset(&seen, 0, sizeof seen);
    lmz_list_callbacks cb = {on_s, on_f, on_e, &seen};
    CHECK_EQ_U64(lmz_list_buffer(cat, 2 * clen, &cb), LMZ_OK);
    CHECK_EQ_U64(seen.streams, 2);
    CHECK_EQ_U64(seen.ends, 2);
    CHECK_EQ_U64(seen.frames, 10); /* 5 frames of 1 KiB per stream */
    CHECK_EQ_U64(seen.orig, 2 * n);
    CHECK(strcmp(seen.model, "none") == 0);

    lmz_stream_info si;
    CHECK_EQ_U64(lmz_peek_header(c, clen, &si), LMZ_OK);
    CHECK(strcmp(si.profile, LMZ_PROFILE_INT_V1) == 0 && si.frame_size == 1024);
    CHECK_EQ_U64(si.size_hint, n);
    CHECK_EQ_U64(lmz_peek_header(c, 12, &si), LMZ_ERROR_TRUNCATED);
    c[0] ^= 1;
    CHECK_EQ_U64(lmz_peek_header(c, clen, &si), LMZ_ERROR_BAD_MAGIC);
    free(cat);
    free(c);
    free(src);
}

/* Method 3: runs of one byte cut out, wherever they sit in a frame. */
TEST(stream_runs_round_trip)
{
    size_t n = 200000;
    uint8_t *src = random_bytes(n, 77);
    /* a run at the start, one of exactly LMZ_RUN_MIN, one a byte short of it,
     * two touching runs of different bytes, one at the very end */
    memset(src, 0, 3000);
    memset(src + 10000, 0xAB, LMZ_RUN_MIN);
    memset(src + 20000, 0xCD, LMZ_RUN_MIN - 1);
    memset(src + 30000, 1, 5000);
    memset(src + 35000, 2, 7000);
    memset(src + n - 4000, 0, 4000);
    size_t c1 = round_trip(src, n, 64 << 10, 2);
    CHECK(c1 < n - 15000); /* the runs cost next to nothing */
    /* a frame of one byte alone: no literals at all */
    memset(src, 'z', n);
    CHECK(round_trip(src, n, 1 << 20, 1) < 200);
    CHECK(round_trip(src, 1, 1 << 20, 1) > 0);
    free(src);
}

TEST(stream_memlimit)
{
    size_t n = 300000, clen, dlen;
    uint8_t *src = random_bytes(n, 5), *d = malloc(n);
    for (size_t i = 0; i < n; i++) src[i] &= 0x1F; /* compressible: byte model frames */
    uint8_t *c = compress_buf(src, n, 64 << 10, 1, &clen);
    lmz_dparams dp;
    memset(&dp, 0, sizeof dp);
    uint64_t needed = 0;
    unsigned at_once = 0;
    dp.threads = 4;
    dp.force_threads = 1;
    dp.memlimit = 1 << 20;
    dp.mem_needed = &needed;
    dp.frames_at_once = &at_once;
    CHECK_EQ_U64(lmz_decompress_buffer_ex(&dp, c, clen, d, n, &dlen), LMZ_ERROR_MEMLIMIT);
    CHECK(needed > dp.memlimit && needed < (64u << 20));
    dp.memlimit = needed + needed / 2; /* one frame at a time fits, not two */
    CHECK_EQ_U64(lmz_decompress_buffer_ex(&dp, c, clen, d, n, &dlen), LMZ_OK);
    CHECK(dlen == n && memcmp(d, src, n) == 0);
    CHECK_EQ_U64(at_once, 1);
    dp.memlimit = UINT64_MAX; /* all four threads */
    CHECK_EQ_U64(lmz_decompress_buffer_ex(&dp, c, clen, d, n, &dlen), LMZ_OK);
    CHECK_EQ_U64(at_once, 4);
    CHECK(lmz_memlimit_default() >= (64u << 20));
    CHECK(lmz_cores_available() >= 1);
    free(src);
    free(c);
    free(d);
}

/* One loaded model serves compression and decompression; a path that is
 * not a model gives an error naming it. */
TEST(stream_model_ref)
{
    char err[512];
    lmz_model_ref *r = NULL;
    CHECK_EQ_U64(lmz_model_load("tests/models/no-such.gguf", &r, err, sizeof err), LMZ_ERROR_MODEL);
    CHECK(r == NULL && strstr(err, "tests/models/no-such.gguf: ") != NULL);
    CHECK_EQ_U64(lmz_model_load("tests/models/tiny-dsrn.gguf", &r, err, sizeof err), LMZ_OK);
    if (!r) return;
    CHECK(strcmp(lmz_model_ref_name(r), "tiny-dsrn") == 0);
    const char *text = "It was the best of times, it was the worst of times, it was the age of wisdom. ";
    size_t n = strlen(text) * 30, clen, dlen;
    uint8_t *src = malloc(n), *d = malloc(n);
    for (size_t i = 0; i < n; i++) src[i] = (uint8_t)text[i % strlen(text)];
    lmz_params p;
    lmz_params_default(&p);
    p.model_ref = r;
    size_t cap = lmz_compress_bound(n, LMZ_FRAME_SIZE_MIN);
    uint8_t *c = malloc(cap);
    CHECK_EQ_U64(lmz_compress_buffer(&p, src, n, c, cap, &clen), LMZ_OK);
    lmz_stream_info si;
    CHECK_EQ_U64(lmz_peek_header(c, clen, &si), LMZ_OK);
    /* one frame: the format's default frame size and group (version 2) */
    CHECK(strcmp(si.model, "tiny-dsrn") == 0 && si.frame_size == LMZ_V2_LM_FRAME && si.group == 64 &&
          si.size_hint == n);
    lmz_dparams dp;
    memset(&dp, 0, sizeof dp);
    dp.model_ref = r;
    CHECK_EQ_U64(lmz_decompress_buffer_ex(&dp, c, clen, d, n, &dlen), LMZ_OK);
    CHECK(dlen == n && memcmp(d, src, n) == 0);
    lmz_model_unload(r);
    free(src);
    free(c);
    free(d);
}

/* One table: lmz_params_set checks bounds by name, the header carries what
 * it set, and the header reader rejects what the table bounds. */
TEST(stream_settings_table)
{
    size_t n = 0;
    const lmz_setting *t = lmz_settings(&n);
    CHECK(n == 15 && t[0].id == 1 && strcmp(t[0].name, "frame-size") == 0);
    for (size_t i = 1; i < n; i++) CHECK(t[i].id > t[i - 1].id); /* id order: the header's order */
    lmz_params p;
    lmz_params_default(&p);
    CHECK_EQ_U64(lmz_params_set(&p, "ngram-bits", 25), LMZ_ERROR_PARAM);
    CHECK_EQ_U64(lmz_params_set(&p, "ngram-bits", 12.5), LMZ_ERROR_PARAM);
    CHECK_EQ_U64(lmz_params_set(&p, "no-such", 1), LMZ_ERROR_PARAM);
    CHECK_EQ_U64(lmz_params_set(&p, "ngram-bits", 12), LMZ_OK);
    CHECK_EQ_U64(p.ngram_bits, 12);
    CHECK_EQ_U64(lmz_params_set(&p, "skip", 2.5), LMZ_OK);
    CHECK_EQ_U64(p.skip_mbits, 2500);
    CHECK_EQ_U64(lmz_params_set(&p, "mix-lr", 0.5), LMZ_OK);
    CHECK(p.mix_lr == 0.5f);
    CHECK(p.cache_rows == 65536 && p.head_lr == 0.3f); /* (lmzip 0.8's defaults) */
    CHECK_EQ_U64(lmz_params_set(&p, "cache-rows", 1000), LMZ_ERROR_PARAM); /* a multiple of 16 */
    CHECK_EQ_U64(lmz_params_set(&p, "cache-rows", 8), LMZ_ERROR_PARAM);
    CHECK_EQ_U64(lmz_params_set(&p, "cache-rows", 2097152), LMZ_ERROR_PARAM);
    CHECK_EQ_U64(lmz_params_set(&p, "cache-rows", 1024), LMZ_OK);
    CHECK_EQ_U64(p.cache_rows, 1024);
    CHECK_EQ_U64(lmz_params_set(&p, "head-lr", 4.5), LMZ_ERROR_PARAM);
    CHECK_EQ_U64(lmz_params_set(&p, "head-lr", 0.5), LMZ_OK);
    CHECK(p.head_lr == 0.5f);
    { /* a header's cache rows: a multiple of 16 in bounds, else damage; absent: lmzip 0.7's */
        lmz_header h;
        memset(&h, 0, sizeof h);
        lmz_settings_absent(&h);
        CHECK(h.cache_rows == 32768 && h.head_lr == 0.3f && h.group == 1 && h.binary == 0 && h.skip_mbits == 0);
        uint64_t seen = 0;
        CHECK(lmz_settings_read(&h, LMZ_SET_CACHE_ROWS, 1000, &seen) == -1);
        seen = 0;
        CHECK(lmz_settings_read(&h, LMZ_SET_CACHE_ROWS, 0, &seen) == -1);
        seen = 0;
        CHECK(lmz_settings_read(&h, LMZ_SET_CACHE_ROWS, 131072, &seen) == 1 && h.cache_rows == 131072);
    }
    CHECK_EQ_U64(lmz_params_set(&p, "frame-size", 0), LMZ_OK); /* automatic */
    CHECK_EQ_U64(lmz_params_set(&p, "frame-size", 512), LMZ_ERROR_PARAM);
    CHECK_EQ_U64(lmz_params_set(&p, "table-bits", 14), LMZ_OK);
    /* a value set behind the table's back is refused by compression */
    uint8_t src[100] = {1}, dst[400];
    size_t len;
    p.cdf_bits = 30;
    CHECK_EQ_U64(lmz_compress_buffer(&p, src, sizeof src, dst, sizeof dst, &len), LMZ_ERROR_PARAM);
    p.cdf_bits = 24;
    CHECK_EQ_U64(lmz_compress_buffer(&p, src, sizeof src, dst, sizeof dst, &len), LMZ_OK);
    lmz_stream_info si;
    CHECK_EQ_U64(lmz_peek_header(dst, len, &si), LMZ_OK);
    CHECK_EQ_U64(si.table_bits, 14);
}
