/* format.c — (de)serialisation of the fixed parts of the .lmz format; the
 * layout is documented in format.h. */
#include "format.h"

#include <string.h>
#include <xxhash.h>

#include "lmcodec.h"
#include "lmzip.h"
#include "settings.h"

const uint8_t lmz_magic[LMZ_MAGIC_LEN] = {0x89, 'L', 'M', 'Z', 0x0D, 0x0A, 0x1A, 0x0A};

static uint32_t check32(const uint8_t *p, size_t n) { return (uint32_t)XXH64(p, n, 0); }

size_t lmz_header_write(const lmz_header *h, uint8_t *out)
{
    size_t o = 0;
    memcpy(out, lmz_magic, LMZ_MAGIC_LEN);
    o += LMZ_MAGIC_LEN;
    out[o++] = LMZ_FORMAT_VERSION;
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

int lmz_header_read(lmz_fetch_fn get, void *ctx, lmz_header *h, int check_support)
{
    uint8_t b[LMZ_STREAM_HEADER_MAX];
    size_t o = LMZ_MAGIC_LEN;
    int e;
    memcpy(b, lmz_magic, LMZ_MAGIC_LEN);
    memset(h, 0, sizeof *h);
    h->group = 1;
#define NEED(n)                                                              \
    do {                                                                     \
        if ((e = get(ctx, b + o, (n))) != LMZ_OK) return e;                  \
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
