/* format.c — (de)serialisation of the fixed parts of the .lmz format; the
 * layout is documented in format.h. */
#include "format.h"

#include <string.h>
#include <xxhash.h>

#include "lmzip.h"

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
    uint64_t set[4 + LMZ_LM_SETTINGS][2] = {{LMZ_SET_FRAME_SIZE, h->frame_size}, {LMZ_SET_TABLE_BITS, h->table_bits}};
    unsigned ns = 2;
    if (lm) {
        uint32_t blr, mlr;
        memcpy(&blr, &h->bias_lr, 4);
        memcpy(&mlr, &h->mix_lr, 4);
        uint64_t more[LMZ_LM_SETTINGS][2] = {{LMZ_SET_PARTS, h->parts},   {LMZ_SET_MIXER, h->mixer},
                                             {LMZ_SET_NGRAM_BITS, h->ngram_bits}, {LMZ_SET_CDF_BITS, h->cdf_bits},
                                             {LMZ_SET_BIAS_LR, blr},      {LMZ_SET_MIX_LR, mlr},
                                             {LMZ_SET_TEXT_MIN, h->text_min}, {LMZ_SET_WINDOW, h->window}};
        memcpy(set[2], more, sizeof more);
        ns += LMZ_LM_SETTINGS;
        if (h->skip_mbits) {
            set[ns][0] = LMZ_SET_SKIP;
            set[ns++][1] = h->skip_mbits;
        }
        if (h->group > 1) {
            set[ns][0] = LMZ_SET_GROUP;
            set[ns++][1] = h->group;
        }
    }
    out[o++] = (uint8_t)ns;
    for (unsigned i = 0; i < ns; i++) {
        out[o++] = (uint8_t)set[i][0];
        lmz_put_u64(out + o, set[i][1]);
        o += 8;
    }
    lmz_put_u64(out + o, h->size_hint);
    o += 8;
    lmz_put_u32(out + o, check32(out, o));
    return o + 4;
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
    if (f->method != LMZ_METHOD_STORED && f->method != LMZ_METHOD_BYTEMODEL && !(lm && f->method == LMZ_METHOD_LM) &&
        !(!lm && f->method == LMZ_METHOD_RUNS))
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
                                          LMZ_PROFILE_DET_F32_V4};

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
