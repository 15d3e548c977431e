/* format.c — (de)serialisation of the fixed parts of the .lmz format; the
 * layout is documented in format.h. */
#include "format.h"

#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "../common/varint.h"
#include "lmcodec.h"
#include "lmzip.h"
#include "settings.h"

const uint8_t lmz_magic[LMZ_MAGIC_LEN] = {0x89, 'L', 'M', 'Z', 0x0D, 0x0A, 0x1A, 0x0A};

static uint32_t check32(const uint8_t *p, size_t n) { return (uint32_t)XXH64(p, n, 0); }
static int frame_bounds(const lmz_header *h, const lmz_frame_header *f);

/* profile codes of version 2: 0 int-v1, then the language-model profiles */
static unsigned profile_code(const char *profile) { return lmz_profile_lm_version(profile); }

static size_t header_write_v2(const lmz_header *h, uint8_t *out)
{
    size_t o = 0;
    memcpy(out, lmz_magic, LMZ_MAGIC_LEN);
    o += LMZ_MAGIC_LEN;
    out[o++] = 2;
    unsigned code = profile_code(h->profile);
    int lm = code != 0;
    uint8_t set[LMZ_SETTINGS_MAX * 16];
    unsigned ns;
    size_t slen = lmz_settings_write_v2(h, lm, set, &ns);
    unsigned flags = 0;
    if (lm && strcmp(h->model, "default") != 0) flags |= LMZ_F2_NAME;
    if (ns) flags |= LMZ_F2_SETTINGS;
    if (h->size_hint != LMZ_SIZE_UNKNOWN) flags |= LMZ_F2_SIZE;
    if (h->one_frame) flags |= LMZ_F2_ONE_FRAME;
    out[o++] = (uint8_t)flags;
    out[o++] = (uint8_t)code;
    if (flags & LMZ_F2_NAME) {
        size_t n = strlen(h->model);
        out[o++] = (uint8_t)n;
        memcpy(out + o, h->model, n);
        o += n;
    }
    if (lm) {
        memcpy(out + o, h->model_hash, LMZ_V2_HASH_LEN);
        o += LMZ_V2_HASH_LEN;
    }
    if (ns) {
        o += lmz_put_varint(out + o, ns);
        memcpy(out + o, set, slen);
        o += slen;
    }
    if (flags & LMZ_F2_SIZE) o += lmz_put_varint(out + o, h->size_hint);
    lmz_put_u32(out + o, check32(out, o));
    return o + 4;
}

size_t lmz_header_write(const lmz_header *h, uint8_t *out)
{
    if (h->version != LMZ_FORMAT_V1) return header_write_v2(h, out);
    size_t o = 0;
    memcpy(out, lmz_magic, LMZ_MAGIC_LEN);
    o += LMZ_MAGIC_LEN;
    out[o++] = LMZ_FORMAT_V1;
    out[o++] = 0; /* flags */
    size_t n = strlen(h->profile);
    out[o++] = (uint8_t)n;
    memcpy(out + o, h->profile, n);
    o += n;
    n = strlen(h->model);
    out[o++] = (uint8_t)n;
    memcpy(out + o, h->model, n);
    o += n;
    memcpy(out + o, h->model_hash, 32);
    o += 32;
    int lm = strcmp(h->profile, LMZ_PROFILE_INT_V1) != 0;
    unsigned ns;
    size_t len = lmz_settings_write(h, lm, out + o + 1, &ns);
    out[o++] = (uint8_t)ns;
    o += len;
    lmz_put_u64(out + o, h->size_hint);
    o += 8;
    lmz_put_u32(out + o, check32(out, o));
    return o + 4;
}

/* A varint fetched a byte at a time, in its shortest form only (a last
 * byte 0 after the first, or more than 64 bits, is damage: `bad`); its
 * bytes go to keep[*len ...] when keep is set, *len counts them. */
static int get_varint(lmz_fetch_fn get, void *ctx, uint64_t *v, unsigned *len, uint8_t *keep, int bad)
{
    uint64_t x = 0;
    for (unsigned sh = 0; sh < 64; sh += 7) {
        uint8_t c;
        int e = get(ctx, &c, 1);
        if (e) return e;
        if (keep) keep[*len] = c;
        ++*len;
        if (sh == 63 && c > 1) return bad;
        x |= (uint64_t)(c & 0x7F) << sh;
        if (!(c & 0x80)) {
            if (c == 0 && sh > 0) return bad;
            *v = x;
            return LMZ_OK;
        }
    }
    return bad;
}

/* The rest of a version-2 header (after magic and version byte, in b[0..9)). */
static int header_read_v2(lmz_fetch_fn get, void *ctx, lmz_header *h, int check_support, uint8_t *b)
{
    size_t o = LMZ_MAGIC_LEN + 1;
    int e;
#define NEED(n)                                                              \
    do {                                                                     \
        if ((e = get(ctx, b + o, (n))) != LMZ_OK) return e;                  \
        o += (n);                                                            \
    } while (0)
/* a varint into the checked bytes */
#define VARINT(v)                                                            \
    do {                                                                     \
        unsigned l_ = 0;                                                     \
        if ((e = get_varint(get, ctx, &(v), &l_, b + o, LMZ_ERROR_HEADER)) != LMZ_OK) return e; \
        o += l_;                                                             \
    } while (0)
    NEED(2);
    unsigned flags = b[o - 2], code = b[o - 1];
    if (flags & ~(unsigned)LMZ_F2_ALL) return LMZ_ERROR_HEADER;
    if ((flags & LMZ_F2_ONE_FRAME) && !(flags & LMZ_F2_SIZE)) return LMZ_ERROR_HEADER;
    /* codes 1..127 name language-model profiles (an identity follows, even
     * for a code this build does not know), 0 and 128..255 others */
    const char *prof = code == 0 ? LMZ_PROFILE_INT_V1 : lmz_profile_lm_name(code);
    int lm = code >= 1 && code <= 127, known = prof != NULL;
    if (known) strcpy(h->profile, prof);
    else snprintf(h->profile, sizeof h->profile, "code %u", code); /* named, not run */
    if ((flags & LMZ_F2_NAME) && !lm) return LMZ_ERROR_HEADER;
    strcpy(h->model, lm ? "default" : "none");
    if (flags & LMZ_F2_NAME) {
        NEED(1);
        size_t n = b[o - 1];
        if (n == 0 || n > LMZ_NAME_MAX) return LMZ_ERROR_HEADER;
        NEED(n);
        memcpy(h->model, b + o - n, n);
        h->model[n] = 0;
        if (memchr(h->model, 0, n)) return LMZ_ERROR_HEADER;
    }
    if (lm) {
        NEED(LMZ_V2_HASH_LEN);
        memcpy(h->model_hash, b + o - LMZ_V2_HASH_LEN, LMZ_V2_HASH_LEN);
    }
    lmz_settings_defaults_v2(h, lm);
    uint64_t seen = 0;
    int unknown = 0;
    if (flags & LMZ_F2_SETTINGS) {
        uint64_t ns, last = 0;
        VARINT(ns);
        if (ns == 0 || ns > LMZ_SETTINGS_MAX) return LMZ_ERROR_HEADER;
        for (uint64_t i = 0; i < ns; i++) {
            uint64_t id, v;
            VARINT(id);
            VARINT(v);
            if (id <= last) return LMZ_ERROR_HEADER; /* in id order, each once */
            last = id;
            int r = lmz_settings_read(h, id < 64 ? (unsigned)id : 64, v, &seen);
            if (r < 0) return LMZ_ERROR_HEADER;
            if (r == 0) unknown = 1;
        }
    }
    lmz_settings_finish_v2(h, lm, seen);
    h->size_hint = LMZ_SIZE_UNKNOWN;
    if (flags & LMZ_F2_SIZE) VARINT(h->size_hint);
    h->one_frame = (flags & LMZ_F2_ONE_FRAME) != 0;
    uint8_t cb[4];
    if ((e = get(ctx, cb, 4)) != LMZ_OK) return e;
    if (lmz_get_u32(cb) != check32(b, o)) return LMZ_ERROR_HEADER;
#undef VARINT
#undef NEED
    if (!check_support) return LMZ_OK;
    if (!known) return LMZ_ERROR_PROFILE;
    if (unknown) return LMZ_ERROR_SETTING;
    if (!lmz_settings_v2_ok(seen, lm)) return LMZ_ERROR_HEADER;
    if (h->one_frame && (h->size_hint == 0 || h->size_hint > h->frame_size)) return LMZ_ERROR_HEADER;
    if (!lm) return LMZ_OK;
    if (h->frame_size > LMZ_LM_FRAME_MAX) return LMZ_ERROR_HEADER;
    if ((uint64_t)h->group * h->frame_size > LMZ_GROUP_BYTES_MAX && h->group > 1) return LMZ_ERROR_HEADER;
    return LMZ_OK;
}

size_t lmz_header_hash_len(const lmz_header *h) { return h->version == LMZ_FORMAT_V1 ? 32 : LMZ_V2_HASH_LEN; }

int lmz_header_read(lmz_fetch_fn get, void *ctx, lmz_header *h, int check_support)
{
    /* room for either version's longest header: version 2's is magic, 3
     * bytes, a name, the identity, 32 settings of two 10-byte varints and
     * the size (varints are read whole before their bounds are checked) */
    uint8_t b[LMZ_MAGIC_LEN + 3 + 1 + LMZ_NAME_MAX + LMZ_V2_HASH_LEN + 10 + LMZ_SETTINGS_MAX * 20 + 10 > LMZ_STREAM_HEADER_MAX
                  ? LMZ_MAGIC_LEN + 3 + 1 + LMZ_NAME_MAX + LMZ_V2_HASH_LEN + 10 + LMZ_SETTINGS_MAX * 20 + 10
                  : LMZ_STREAM_HEADER_MAX];
    size_t o = LMZ_MAGIC_LEN;
    int e;
    memcpy(b, lmz_magic, LMZ_MAGIC_LEN);
    memset(h, 0, sizeof *h);
    lmz_settings_absent(h);
#define NEED(n)                                                              \
    do {                                                                     \
        if ((e = get(ctx, b + o, (n))) != LMZ_OK) return e;                  \
        o += (n);                                                            \
    } while (0)
    NEED(1);
    h->version = b[8];
    if (h->version == 2) return header_read_v2(get, ctx, h, check_support, b);
    if (h->version != LMZ_FORMAT_V1) return LMZ_ERROR_VERSION;
    NEED(1);
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
    uint64_t seen = 0;
    int unknown = 0;
    for (unsigned i = 0; i < ns; i++) {
        NEED(9);
        int r = lmz_settings_read(h, b[o - 9], lmz_get_u64(b + o - 8), &seen);
        if (r < 0) return LMZ_ERROR_HEADER; /* out of bounds */
        if (r == 0) unknown = 1;            /* an id this build lacks, or one seen twice */
    }
    NEED(8);
    h->size_hint = lmz_get_u64(b + o - 8);
    uint8_t cb[4];
    if ((e = get(ctx, cb, 4)) != LMZ_OK) return e;
    if (lmz_get_u32(cb) != check32(b, o)) return LMZ_ERROR_HEADER;
#undef NEED
    /* the check holds, so the fields are what the writer meant */
    if (!check_support) return LMZ_OK;
    if (unknown) return LMZ_ERROR_SETTING;
    if (!(seen >> LMZ_SET_FRAME_SIZE & 1) || !(seen >> LMZ_SET_TABLE_BITS & 1)) return LMZ_ERROR_HEADER;
    if (!strcmp(h->profile, LMZ_PROFILE_INT_V1)) {
        if (!lmz_settings_complete(seen, 0)) return LMZ_ERROR_HEADER;
        if (strcmp(h->model, "none") != 0) return LMZ_ERROR_MODEL;
        return LMZ_OK;
    }
    if (!lmz_profile_is_lm(h->profile)) return LMZ_ERROR_PROFILE;
    if (!strcmp(h->model, "none")) return LMZ_ERROR_HEADER; /* a model stream that names no model */
    if (!lmz_settings_complete(seen, 1) || h->frame_size > LMZ_LM_FRAME_MAX) return LMZ_ERROR_HEADER;
    if ((uint64_t)h->group * h->frame_size > LMZ_GROUP_BYTES_MAX && h->group > 1) return LMZ_ERROR_HEADER;
    return LMZ_OK;
}

void lmz_frame_header_write(const lmz_frame_header *f, uint8_t *out)
{
    out[0] = LMZ_BLOCK_FRAME;
    out[1] = (uint8_t)f->method;
    lmz_put_u32(out + 2, f->orig_size);
    lmz_put_u32(out + 6, f->comp_size);
    lmz_put_u64(out + 10, f->checksum);
    lmz_put_u32(out + 18, check32(out, 18));
}

int lmz_frame_header_parse(const uint8_t *in, const lmz_header *h, lmz_frame_header *f)
{
    /* in[-1] is the type byte, already read: rebuild the checked bytes */
    uint8_t b[18];
    b[0] = LMZ_BLOCK_FRAME;
    memcpy(b + 1, in, 17);
    if (lmz_get_u32(in + 17) != check32(b, 18)) return LMZ_ERROR_CORRUPT;
    f->method = in[0];
    f->orig_size = lmz_get_u32(in + 1);
    f->comp_size = lmz_get_u32(in + 5);
    f->checksum = lmz_get_u64(in + 9);
    f->check32 = 0;
    f->head_len = LMZ_FRAME_HEADER_SIZE;
    return frame_bounds(h, f);
}

int lmz_frame_check(const lmz_frame_header *f, const void *content)
{
    uint64_t x = XXH64(content, f->orig_size, 0);
    return f->check32 ? (uint32_t)x == f->checksum : x == f->checksum;
}

/* Bounds of a frame header against its stream's header, either version. */
static int frame_bounds(const lmz_header *h, const lmz_frame_header *f)
{
    int lm = strcmp(h->profile, LMZ_PROFILE_INT_V1) != 0;
    /* runs: byte-model streams, and language-model streams with the binary
     * chain; raw LZMA2: the latter only */
    if (f->method != LMZ_METHOD_STORED && f->method != LMZ_METHOD_BYTEMODEL && !(lm && f->method == LMZ_METHOD_LM) &&
        !(f->method == LMZ_METHOD_RUNS && (!lm || h->binary)) && !(f->method == LMZ_METHOD_LZMA && lm && h->binary))
        return LMZ_ERROR_CORRUPT;
    if (f->orig_size == 0 || f->orig_size > h->frame_size) return LMZ_ERROR_SIZE;
    if (f->comp_size == 0 || f->comp_size > f->orig_size) return LMZ_ERROR_SIZE;
    if (f->method == LMZ_METHOD_STORED && f->comp_size != f->orig_size) return LMZ_ERROR_SIZE;
    /* a byte model payload this short cannot hold the frame: damage */
    if (f->method == LMZ_METHOD_BYTEMODEL && f->orig_size / LMZ_BM_MAX_RATIO > (uint64_t)f->comp_size + 16)
        return LMZ_ERROR_CORRUPT;
    return LMZ_OK;
}

size_t lmz_frame_header_write_v2(const lmz_frame_header *f, int one_frame, uint8_t *out)
{
    size_t o = 0;
    out[o++] = (uint8_t)f->method;
    if (!one_frame) o += lmz_put_varint(out + o, f->orig_size);
    o += lmz_put_varint(out + o, f->comp_size);
    lmz_put_u32(out + o, (uint32_t)f->checksum);
    return o + 4;
}

size_t lmz_end_block_write_v2(uint64_t total, uint64_t hash, uint8_t *out)
{
    size_t o = 0;
    out[o++] = LMZ_BLOCK_END;
    o += lmz_put_varint(out + o, total);
    lmz_put_u32(out + o, (uint32_t)hash);
    return o + 4;
}

int lmz_block_read_v2(lmz_fetch_fn get, void *ctx, const lmz_header *h, uint8_t type, lmz_frame_header *f,
                      int *end, uint64_t *total, uint64_t *check)
{
    uint8_t c4[4];
    unsigned len = 1;
    int e;
    *end = type == LMZ_BLOCK_END && !h->one_frame;
    if (*end) {
        if ((e = get_varint(get, ctx, total, &len, NULL, LMZ_ERROR_CORRUPT)) != LMZ_OK) return e;
        if ((e = get(ctx, c4, 4)) != LMZ_OK) return e;
        *check = lmz_get_u32(c4);
        return LMZ_OK;
    }
    if (type > LMZ_METHOD_LZMA) return LMZ_ERROR_CORRUPT;
    memset(f, 0, sizeof *f);
    f->method = type;
    uint64_t orig = h->size_hint, comp;
    if (!h->one_frame && (e = get_varint(get, ctx, &orig, &len, NULL, LMZ_ERROR_CORRUPT)) != LMZ_OK) return e;
    if ((e = get_varint(get, ctx, &comp, &len, NULL, LMZ_ERROR_CORRUPT)) != LMZ_OK) return e;
    if ((e = get(ctx, c4, 4)) != LMZ_OK) return e;
    if (orig > UINT32_MAX || comp > UINT32_MAX) return LMZ_ERROR_SIZE;
    f->orig_size = (uint32_t)orig;
    f->comp_size = (uint32_t)comp;
    f->checksum = lmz_get_u32(c4);
    f->check32 = 1;
    f->head_len = len + 4;
    return frame_bounds(h, f);
}

void lmz_end_block_write(uint64_t total, uint64_t frames, uint64_t hash, uint8_t *out)
{
    out[0] = LMZ_BLOCK_END;
    lmz_put_u64(out + 1, total);
    lmz_put_u64(out + 9, frames);
    lmz_put_u64(out + 17, hash);
    lmz_put_u32(out + 25, check32(out, 25));
}

static const char *const lm_profiles[] = {LMZ_PROFILE_DET_F32_V1, LMZ_PROFILE_DET_F32_V2, LMZ_PROFILE_DET_F32_V3,
                                          LMZ_PROFILE_DET_F32_V4, LMZ_PROFILE_DET_I8_V1};

unsigned lmz_profile_lm_version(const char *profile)
{
    for (unsigned i = 0; i < sizeof lm_profiles / sizeof *lm_profiles; i++)
        if (!strcmp(profile, lm_profiles[i])) return i + 1;
    return 0;
}

const char *lmz_profile_lm_name(unsigned version)
{
    return version >= 1 && version <= sizeof lm_profiles / sizeof *lm_profiles ? lm_profiles[version - 1] : NULL;
}

int lmz_profile_is_lm(const char *profile) { return lmz_profile_lm_version(profile) != 0; }
