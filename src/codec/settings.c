/* settings.c — see settings.h: the one table of the settings a stream records. */
#include "settings.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "../model/model.h"
#include "../predict/bytemodel.h"
#include "../predict/lmens.h"
#include "../common/varint.h"
#include "lmcodec.h"

enum { U32, REAL, MILLI }; /* how a value is kept: an integer, binary32 bits, thousandths */

typedef struct {
    lmz_setting pub;   /* name, id, model_only, bounds, default, help */
    size_t hoff;       /* its lmz_header field (32 bits) */
    size_t poff;       /* its lmz_params field (32 bits), or (size_t)-1 */
    int kind;
    int optional;      /* written only when not `absent` */
    uint32_t absent;   /* the value an optional setting has when absent */
    int auto0;         /* 0 in lmz_params: chosen by the library */
    double v2;         /* format version 2's default, frozen with the format
                          (the value a version-2 header that omits it means);
                          frame size and group: -1, see lmz_v2_frame_size */
    uint32_t step;     /* an integer setting's values are its multiples (1: any) */
} setting;

#define H(f) offsetof(lmz_header, f)
#define P(f) offsetof(lmz_params, f)
static const setting table[] = {
    {{"frame-size", LMZ_SET_FRAME_SIZE, 0, LMZ_FRAME_SIZE_MIN, LMZ_FRAME_SIZE_MAX, 0,
      "bytes per independent frame (default 4M; with a model about an eighth of the file in whole frames, 16K..512K; "
      "with a model at most 64M)"},
     H(frame_size), P(frame_size), U32, 0, 0, 1, -1, 1},
    {{"table-bits", LMZ_SET_TABLE_BITS, 0, LMZ_BM_TABLE_BITS_MIN, LMZ_BM_TABLE_BITS_MAX, LMZ_BM_TABLE_BITS_DEFAULT,
      "byte model memory: 2^N 16-byte slots per thread at most, 64 MiB at 22"},
     H(table_bits), P(table_bits), U32, 0, 0, 0, 22, 1},
    {{"parts", LMZ_SET_PARTS, 1, 1, LMZ_ENS_ALL, LMZ_ENS_ALL,
      "ensemble parts: a list of model,ngram,bias,match,head,ngtop,refine,cache, or all (bits 1,2,4,8,16,32,64,128; "
      "head and cache only for models of vocabulary x width <= 2^24)"},
     H(parts), P(parts), U32, 0, 0, 0, 15, 1},
    {{"mixer", LMZ_SET_MIXER, 1, 0, LMZ_MIX_LOG, LMZ_MIX_LOG, "prob (0) or log (1): mixing in probability space or in the log domain"},
     H(mixer), P(mixer), U32, 0, 0, 0, 1, 1},
    {{"ngram-bits", LMZ_SET_NGRAM_BITS, 1, LMZ_ENS_NGRAM_BITS_MIN, LMZ_ENS_NGRAM_BITS_MAX, 20,
      "n-gram memory: 2^N 32-byte buckets per order at most"},
     H(ngram_bits), P(ngram_bits), U32, 0, 0, 0, 20, 1},
    {{"cdf-bits", LMZ_SET_CDF_BITS, 1, 16, 24, 24, "frequency total 2^N of the coded tables"},
     H(cdf_bits), P(cdf_bits), U32, 0, 0, 0, 24, 1},
    {{"bias-lr", LMZ_SET_BIAS_LR, 1, 0, 1, 0.3, "learning rate of the bias head"},
     H(bias_lr), P(bias_lr), REAL, 0, 0, 0, 0.3, 1},
    {{"mix-lr", LMZ_SET_MIX_LR, 1, 0, 1, 0.00025, "learning rate of the log mixer"},
     H(mix_lr), P(mix_lr), REAL, 0, 0, 0, 0.00025, 1},
    {{"text-min", LMZ_SET_TEXT_MIN, 1, 1, 65536, LMZ_LM_TEXT_MIN_DEFAULT, "shortest text segment in bytes"},
     H(text_min), P(text_min), U32, 0, 0, 0, 64, 1},
    {{"window", LMZ_SET_WINDOW, 1, 0, LMZ_MAX_WINDOW, 0, "llama KV window in tokens, 0 for the model's context"},
     H(window), P(window), U32, 0, 0, 0, 0, 1},
    {{"skip", LMZ_SET_SKIP, 1, 0, 16, 0,
      "code a token without the model when the n-gram and match blend's entropy is below this many bits, "
      "0 for never"},
     H(skip_mbits), P(skip_mbits), MILLI, 1, 0, 0, 0, 1},
    {{"group", LMZ_SET_GROUP, 1, 1, LMZ_GROUP_MAX, 0,
      "frames whose text shares one ensemble, decoded side by side (group x frame size at most 64M; "
      "default 64 or as many as fit)"},
     H(group), P(group), U32, 1, 1, 1, -1, 1},
    {{"binary", LMZ_SET_BINARY, 1, 0, 1, 1,
      "1: the frames of a group the model does not code (binary data) share one byte model, in frame "
      "order; 0: each frame its own"},
     H(binary), P(binary), U32, 1, 0, 0, 1, 1},
    {{"cache-rows", LMZ_SET_CACHE_ROWS, 1, 16, LMZ_ENS_CACHE_ROWS_MAX, LMZ_ENS_CACHE_ROWS,
      "the cache's rows: the vectors of the group's last N learnt tokens (a multiple of 16; time and memory "
      "grow with it)"},
     H(cache_rows), P(cache_rows), U32, 1, LMZ_ENS_CACHE_ROWS_V07, 0, LMZ_ENS_CACHE_ROWS_V07, 16},
    {{"head-lr", LMZ_SET_HEAD_LR, 1, 0, 4, 0.3 /* LMZ_ENS_HEAD_LR */, "learning rate of the adaptive output head"},
     H(head_lr), P(head_lr), REAL, 1, 0x3e99999au /* 0.3f */, 0, 0.3, 1},
};
#undef H
#undef P
#define N_SETTINGS (sizeof table / sizeof *table)
_Static_assert(sizeof(((lmz_params *)0)->group) == 4 && sizeof(((lmz_params *)0)->binary) == 4 && sizeof(((lmz_params *)0)->bias_lr) == 4 &&
                   sizeof(((lmz_header *)0)->table_bits) == 4 && sizeof(((lmz_header *)0)->mix_lr) == 4 &&
                   sizeof(((lmz_params *)0)->cache_rows) == 4 && sizeof(((lmz_params *)0)->head_lr) == 4 &&
                   sizeof(((lmz_header *)0)->cache_rows) == 4 && sizeof(((lmz_header *)0)->head_lr) == 4,
               "the table's fields are 32 bits");

const lmz_setting *lmz_settings(size_t *count)
{
    static lmz_setting pub[N_SETTINGS];
    for (size_t i = 0; i < N_SETTINGS; i++) pub[i] = table[i].pub;
    if (count) *count = N_SETTINGS;
    return pub;
}

static uint32_t get32(const void *base, size_t off)
{
    uint32_t v;
    memcpy(&v, (const char *)base + off, 4);
    return v;
}

static void set32(void *base, size_t off, uint32_t v) { memcpy((char *)base + off, &v, 4); }

static const setting *by_id(unsigned id)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (table[i].pub.id == id) return &table[i];
    return NULL;
}

static const setting *by_name(const char *name)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (!strcmp(table[i].pub.name, name)) return &table[i];
    return NULL;
}

/* a value as the header holds it (binary32 bits, thousandths), in bounds? */
static int in_bounds(const setting *s, uint64_t v)
{
    if (v > UINT32_MAX) return 0;
    if (s->kind == REAL) {
        float f;
        uint32_t u = (uint32_t)v;
        memcpy(&f, &u, 4);
        return f >= s->pub.min && f <= s->pub.max; /* false for NaN */
    }
    double x = s->kind == MILLI ? (double)v / 1000.0 : (double)v;
    if (v % s->step) return 0;
    return x >= s->pub.min && x <= s->pub.max;
}

size_t lmz_settings_write(const lmz_header *h, int lm, uint8_t *out, unsigned *count)
{
    size_t o = 0;
    unsigned n = 0;
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting *s = &table[i];
        if (s->pub.model_only && !lm) continue;
        uint32_t v = get32(h, s->hoff); /* floats: their bits */
        if (s->optional && v == s->absent) continue;
        out[o++] = (uint8_t)s->pub.id;
        lmz_put_u64(out + o, v);
        o += 8;
        n++;
    }
    *count = n;
    return o;
}

/* a value as the header holds it: binary32 bits, thousandths, or the integer */
static uint32_t raw_of(const setting *s, double value)
{
    if (s->kind == REAL) {
        float f = (float)value;
        uint32_t u;
        memcpy(&u, &f, 4);
        return u;
    }
    return s->kind == MILLI ? (uint32_t)(value * 1000.0 + 0.5) : (uint32_t)value;
}

uint32_t lmz_v2_frame_size(int lm) { return lm ? LMZ_V2_LM_FRAME : LMZ_FRAME_SIZE_DEFAULT; }

unsigned lmz_v2_group(uint32_t frame_size)
{
    uint64_t fit = LMZ_GROUP_BYTES_MAX / (frame_size ? frame_size : 1);
    return fit < LMZ_GROUP_MAX ? (unsigned)(fit ? fit : 1) : LMZ_GROUP_MAX;
}

/* the value a version-2 header that omits s means, for a header whose
 * frame size is known already (it comes first) */
static uint32_t v2_default(const setting *s, const lmz_header *h, int lm)
{
    if (s->pub.id == LMZ_SET_FRAME_SIZE) return lmz_v2_frame_size(lm);
    if (s->pub.id == LMZ_SET_GROUP) return lm ? lmz_v2_group(h->frame_size) : 1;
    return raw_of(s, s->v2);
}

void lmz_settings_absent(lmz_header *h)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (table[i].optional) set32(h, table[i].hoff, table[i].absent);
}

void lmz_settings_defaults_v2(lmz_header *h, int lm)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (!table[i].pub.model_only || lm) set32(h, table[i].hoff, v2_default(&table[i], h, lm));
    if (!lm) h->group = 1;
}

void lmz_settings_finish_v2(lmz_header *h, int lm, uint64_t seen)
{
    if (lm && !(seen >> LMZ_SET_GROUP & 1)) h->group = lmz_v2_group(h->frame_size);
}

size_t lmz_settings_write_v2(const lmz_header *h, int lm, uint8_t *out, unsigned *count)
{
    size_t o = 0;
    unsigned n = 0;
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting *s = &table[i];
        if (s->pub.model_only && !lm) continue;
        uint32_t v = get32(h, s->hoff);
        if (v == v2_default(s, h, lm)) continue;
        o += lmz_put_varint(out + o, s->pub.id);
        o += lmz_put_varint(out + o, v);
        n++;
    }
    *count = n;
    return o;
}

int lmz_settings_v2_ok(uint64_t seen, int lm)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (!lm && table[i].pub.model_only && (seen >> table[i].pub.id & 1)) return 0;
    return 1;
}

int lmz_settings_read(lmz_header *h, unsigned id, uint64_t v, uint64_t *seen)
{
    const setting *s = id < 64 ? by_id(id) : NULL;
    if (!s || (*seen >> id & 1)) return 0;
    *seen |= 1ull << id;
    if (!in_bounds(s, v)) return -1;
    set32(h, s->hoff, (uint32_t)v);
    return 1;
}

int lmz_settings_complete(uint64_t seen, int lm)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting *s = &table[i];
        int present = (int)(seen >> s->pub.id & 1);
        if (!lm && s->pub.model_only && present) return 0; /* model settings in a byte-model stream */
        if ((lm || !s->pub.model_only) && !s->optional && !present) return 0;
    }
    return 1;
}

int lmz_settings_check(const lmz_params *p)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting *s = &table[i];
        uint64_t v = get32(p, s->poff); /* as the header holds it */
        if (s->auto0 && v == 0) continue;
        if (!in_bounds(s, v)) return LMZ_ERROR_PARAM;
    }
    return LMZ_OK;
}

void lmz_settings_to_header(const lmz_params *p, lmz_header *h)
{
    for (size_t i = 0; i < N_SETTINGS; i++) set32(h, table[i].hoff, get32(p, table[i].poff));
    if (!h->group) h->group = 1;
}

int lmz_params_set(lmz_params *p, const char *name, double value)
{
    const setting *s = p && name ? by_name(name) : NULL;
    if (!s || !(value == value)) return LMZ_ERROR_PARAM;
    if (s->auto0 && value == 0) {
        set32(p, s->poff, 0);
        return LMZ_OK;
    }
    if (value < s->pub.min || value > s->pub.max) return LMZ_ERROR_PARAM;
    if (s->kind == U32 && value != floor(value)) return LMZ_ERROR_PARAM;
    if (s->kind == U32 && (uint32_t)value % s->step) return LMZ_ERROR_PARAM;
    set32(p, s->poff, raw_of(s, value));
    return LMZ_OK;
}

/* The levels (lmzip -1 .. -9): a model and the one setting that trades
 * speed for ratio. */
static const struct {
    const char *model, *setting;
    double value;
} levels[10] = {
    [1] = {"none", "table-bits", 18},   [2] = {"none", "table-bits", 20},
    [3] = {"none", NULL, 0},            [4] = {"default", "skip", 3},
    [5] = {"default", "skip", 1.5},     [6] = {"default", NULL, 0},
    [7] = {"default", "frame-size", 1048576}, [8] = {"default", "frame-size", 4194304},
    [9] = {"max", "frame-size", 4194304},
};

int lmz_level(int level, const char **model, const char **setting_name, double *value)
{
    if (level < 1 || level > 9) return LMZ_ERROR_PARAM;
    if (model) *model = levels[level].model;
    if (setting_name) *setting_name = levels[level].setting;
    if (value) *value = levels[level].value;
    return LMZ_OK;
}
