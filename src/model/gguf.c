/* gguf.c — GGUF reader (mmap, checked) and writer; format in gguf.h. */
#define _DEFAULT_SOURCE
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/endian.h"

/* ======================================================================== */
/* ggml types                                                                */
/* ======================================================================== */

typedef struct {
    const char *name;
    uint32_t block;  /* elements per block */
    uint32_t bytes;  /* bytes per block */
} ggml_type_info;

static const ggml_type_info *type_info(uint32_t t)
{
    static const ggml_type_info info[] = {
        [0] = {"F32", 1, 4},      [1] = {"F16", 1, 2},      [2] = {"Q4_0", 32, 18},
        [3] = {"Q4_1", 32, 20},   [6] = {"Q5_0", 32, 22},   [7] = {"Q5_1", 32, 24},
        [8] = {"Q8_0", 32, 34},   [9] = {"Q8_1", 32, 36},   [10] = {"Q2_K", 256, 84},
        [11] = {"Q3_K", 256, 110}, [12] = {"Q4_K", 256, 144}, [13] = {"Q5_K", 256, 176},
        [14] = {"Q6_K", 256, 210}, [15] = {"Q8_K", 256, 292}, [24] = {"I8", 1, 1},
        [25] = {"I16", 1, 2},     [26] = {"I32", 1, 4},     [27] = {"I64", 1, 8},
        [28] = {"F64", 1, 8},     [30] = {"BF16", 1, 2},
    };
    if (t >= sizeof info / sizeof *info || !info[t].name) return NULL;
    return &info[t];
}

const char *lmz_gguf_type_name(uint32_t t)
{
    const ggml_type_info *i = type_info(t);
    return i ? i->name : "unknown";
}

uint64_t lmz_ggml_row_bytes(uint32_t t, uint64_t n)
{
    const ggml_type_info *i = type_info(t);
    if (!i || n % i->block) return 0;
    return n / i->block * i->bytes;
}

static const uint32_t value_size[LMZ_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *lmz_gguf_value_type_name(uint32_t t)
{
    static const char *n[LMZ_GGUF_TYPE_COUNT] = {"u8",  "i8",     "u16",   "i16", "u32",
                                                 "i32", "f32",    "bool",  "str", "arr",
                                                 "u64", "i64",    "f64"};
    return t < LMZ_GGUF_TYPE_COUNT ? n[t] : "?";
}

/* ======================================================================== */
/* reader                                                                    */
/* ======================================================================== */


typedef struct {
    const uint8_t *b;
    size_t size, pos;
    char *err;
    size_t errlen;
} cursor;

static int fail(cursor *c, const char *fmt, ...)
{
    if (c->err && c->errlen) {
        int k = snprintf(c->err, c->errlen, "offset %zu: ", c->pos);
        va_list ap;
        va_start(ap, fmt);
        if (k >= 0 && (size_t)k < c->errlen) vsnprintf(c->err + k, c->errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int need(cursor *c, uint64_t n, const char *what)
{
    if (n > c->size - c->pos)
        return fail(c, "%s (%llu bytes) runs past the end of the file (%zu bytes)", what,
                    (unsigned long long)n, c->size);
    return 0;
}

static int get32(cursor *c, uint32_t *v, const char *what)
{
    if (need(c, 4, what)) return -1;
    *v = lmz_get_u32(c->b + c->pos);
    c->pos += 4;
    return 0;
}

static int get64(cursor *c, uint64_t *v, const char *what)
{
    if (need(c, 8, what)) return -1;
    *v = lmz_get_u64(c->b + c->pos);
    c->pos += 8;
    return 0;
}

static int get_str(cursor *c, lmz_str *s, const char *what)
{
    uint64_t n;
    if (get64(c, &n, what) || need(c, n, what)) return -1;
    s->ptr = (const char *)c->b + c->pos;
    s->len = (size_t)n;
    c->pos += (size_t)n;
    return 0;
}

/* Read one value of type t (not an array) and skip it. */
static int skip_scalar(cursor *c, uint32_t t)
{
    if (t == LMZ_GGUF_STRING) {
        lmz_str s;
        return get_str(c, &s, "string value");
    }
    if (t >= LMZ_GGUF_TYPE_COUNT || t == LMZ_GGUF_ARRAY) return fail(c, "bad value type %u", t);
    if (need(c, value_size[t], "value")) return -1;
    c->pos += value_size[t];
    return 0;
}

static int parse_kv(cursor *c, lmz_gguf_kv *kv)
{
    memset(kv, 0, sizeof *kv);
    if (get_str(c, &kv->key, "metadata key")) return -1;
    if (get32(c, &kv->type, "value type")) return -1;
    if (kv->type >= LMZ_GGUF_TYPE_COUNT) return fail(c, "key '%.*s': unknown value type %u",
                                                     (int)(kv->key.len > 64 ? 64 : kv->key.len),
                                                     kv->key.ptr, kv->type);
    kv->count = 1;
    if (kv->type != LMZ_GGUF_ARRAY) {
        kv->data = c->b + c->pos;
        return skip_scalar(c, kv->type);
    }
    if (get32(c, &kv->elem_type, "array type") || get64(c, &kv->count, "array length")) return -1;
    if (kv->elem_type >= LMZ_GGUF_TYPE_COUNT || kv->elem_type == LMZ_GGUF_ARRAY)
        return fail(c, "key '%.*s': unsupported array element type %u",
                    (int)(kv->key.len > 64 ? 64 : kv->key.len), kv->key.ptr, kv->elem_type);
    kv->data = c->b + c->pos;
    if (kv->elem_type != LMZ_GGUF_STRING) {
        uint64_t es = value_size[kv->elem_type];
        if (kv->count > (c->size - c->pos) / es) return need(c, UINT64_MAX, "array");
        c->pos += (size_t)(kv->count * es);
        return 0;
    }
    /* each string is at least its 8-byte length */
    if (kv->count > (c->size - c->pos) / 8) return need(c, kv->count * 8, "string array");
    kv->str_off = malloc((size_t)(kv->count ? kv->count : 1) * sizeof *kv->str_off);
    if (!kv->str_off) return fail(c, "out of memory for a string array of %llu",
                                  (unsigned long long)kv->count);
    for (uint64_t i = 0; i < kv->count; i++) {
        kv->str_off[i] = (uint64_t)(c->pos - (size_t)(kv->data - c->b));
        lmz_str s;
        if (get_str(c, &s, "array string")) return -1;
    }
    return 0;
}

static int parse_tensor(cursor *c, lmz_gguf_tensor *t)
{
    memset(t, 0, sizeof *t);
    if (get_str(c, &t->name, "tensor name")) return -1;
    if (get32(c, &t->n_dims, "tensor dimensions")) return -1;
    if (t->n_dims < 1 || t->n_dims > LMZ_GGUF_MAX_DIMS)
        return fail(c, "tensor '%.*s': %u dimensions (1..%d)", (int)(t->name.len > 64 ? 64 : t->name.len),
                    t->name.ptr, t->n_dims, LMZ_GGUF_MAX_DIMS);
    t->n_elements = 1;
    for (uint32_t d = 0; d < LMZ_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        if (get64(c, &t->ne[d], "tensor shape")) return -1;
        if (t->ne[d] == 0 || t->ne[d] > (1ull << 40) || t->n_elements > (1ull << 48) / t->ne[d])
            return fail(c, "tensor '%.*s': absurd dimension %llu", (int)(t->name.len > 64 ? 64 : t->name.len),
                        t->name.ptr, (unsigned long long)t->ne[d]);
        t->n_elements *= t->ne[d];
    }
    if (get32(c, &t->type, "tensor type") || get64(c, &t->offset, "tensor offset")) return -1;
    const ggml_type_info *ti = type_info(t->type);
    if (!ti) return fail(c, "tensor '%.*s': unknown ggml type %u", (int)(t->name.len > 64 ? 64 : t->name.len),
                         t->name.ptr, t->type);
    if (t->ne[0] % ti->block)
        return fail(c, "tensor '%.*s': row of %llu is not a whole number of %s blocks of %u",
                    (int)(t->name.len > 64 ? 64 : t->name.len), t->name.ptr,
                    (unsigned long long)t->ne[0], ti->name, ti->block);
    t->n_bytes = t->n_elements / ti->block * ti->bytes;
    return 0;
}

void lmz_gguf_close(lmz_gguf *g)
{
    if (!g) return;
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++) free(g->kv[i].str_off);
    free(g->kv);
    free(g->tensors);
    if (g->mapped && g->base) munmap((void *)g->base, g->size);
    memset(g, 0, sizeof *g);
}

static int parse(const void *buf, size_t size, lmz_gguf *g, char *err, size_t errlen);

int lmz_gguf_parse(const void *buf, size_t size, lmz_gguf *g, char *err, size_t errlen)
{
    if (err && errlen) err[0] = 0;
    if (parse(buf, size, g, err, errlen) == 0) return 0;
    lmz_gguf_close(g); /* a failed parse leaves nothing to release */
    return -1;
}

static int parse(const void *buf, size_t size, lmz_gguf *g, char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    g->base = buf;
    g->size = size;
    cursor c = {buf, size, 0, err, errlen};
    uint32_t magic;
    if (get32(&c, &magic, "magic")) return -1;
    if (magic != 0x46554747u) {
        c.pos = 0;
        return fail(&c, "not a GGUF file (magic is not \"GGUF\")");
    }
    if (get32(&c, &g->version, "version")) return -1;
    if (g->version != 2 && g->version != 3)
        return fail(&c, "GGUF version %u is not supported (2 and 3 are)", g->version);
    if (get64(&c, &g->n_tensors, "tensor count") || get64(&c, &g->n_kv, "metadata count")) return -1;
    /* a key-value pair takes at least 13 bytes, a tensor entry at least 28 */
    if (g->n_kv > size / 13) return fail(&c, "metadata count %llu is larger than the file allows",
                                         (unsigned long long)g->n_kv);
    if (g->n_tensors > size / 28) return fail(&c, "tensor count %llu is larger than the file allows",
                                              (unsigned long long)g->n_tensors);
    g->kv = calloc((size_t)(g->n_kv ? g->n_kv : 1), sizeof *g->kv);
    g->tensors = calloc((size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *g->tensors);
    if (!g->kv || !g->tensors) return fail(&c, "out of memory");

    g->alignment = 32;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        if (parse_kv(&c, &g->kv[i])) return -1;
        const lmz_gguf_kv *kv = &g->kv[i];
        for (uint64_t j = 0; j < i; j++)
            if (g->kv[j].key.len == kv->key.len && !memcmp(g->kv[j].key.ptr, kv->key.ptr, kv->key.len))
                return fail(&c, "duplicate key '%.*s'", (int)(kv->key.len > 64 ? 64 : kv->key.len), kv->key.ptr);
        if (lmz_str_eq(kv->key, "general.alignment")) {
            if (kv->type != LMZ_GGUF_UINT32) return fail(&c, "general.alignment is not a uint32");
            uint32_t a = lmz_get_u32(kv->data);
            if (a == 0 || (a & (a - 1)) || a > (1u << 20))
                return fail(&c, "general.alignment %u is not a power of two up to 1 MiB", a);
            g->alignment = a;
        }
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        if (parse_tensor(&c, &g->tensors[i])) return -1;
        lmz_gguf_tensor *t = &g->tensors[i];
        for (uint64_t j = 0; j < i; j++)
            if (g->tensors[j].name.len == t->name.len && !memcmp(g->tensors[j].name.ptr, t->name.ptr, t->name.len))
                return fail(&c, "duplicate tensor '%.*s'", (int)(t->name.len > 64 ? 64 : t->name.len), t->name.ptr);
    }
    uint64_t data = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    if (g->n_tensors && data > size) return fail(&c, "tensor data section starts past the end of the file");
    g->data_offset = data;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        lmz_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment)
            return fail(&c, "tensor '%.*s': offset %llu is not aligned to %llu",
                        (int)(t->name.len > 64 ? 64 : t->name.len), t->name.ptr,
                        (unsigned long long)t->offset, (unsigned long long)g->alignment);
        if (t->offset > size - data || t->n_bytes > size - data - t->offset)
            return fail(&c, "tensor '%.*s': data (%llu bytes at %llu) runs past the end of the file",
                        (int)(t->name.len > 64 ? 64 : t->name.len), t->name.ptr,
                        (unsigned long long)t->n_bytes, (unsigned long long)(data + t->offset));
        t->data = g->base + data + t->offset;
    }
    return 0;
}

int lmz_gguf_open(const char *path, lmz_gguf *g, char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "not a regular file");
        close(fd);
        return -1;
    }
    if (st.st_size < 24) {
        snprintf(err, errlen, "file of %lld bytes is too short for GGUF", (long long)st.st_size);
        close(fd);
        return -1;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        snprintf(err, errlen, "cannot map: %s", strerror(errno));
        return -1;
    }
    if (lmz_gguf_parse(m, (size_t)st.st_size, g, err, errlen) != 0) {
        munmap(m, (size_t)st.st_size);
        return -1;
    }
    g->mapped = 1;
    return 0;
}

/* ---- lookups ------------------------------------------------------------ */

int lmz_str_eq(lmz_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

const lmz_gguf_kv *lmz_gguf_find(const lmz_gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (lmz_str_eq(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const lmz_gguf_tensor *lmz_gguf_tensor_find(const lmz_gguf *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (lmz_str_eq(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

int lmz_gguf_get_u64(const lmz_gguf *g, const char *key, uint64_t *v)
{
    const lmz_gguf_kv *kv = lmz_gguf_find(g, key);
    if (!kv) return -1;
    const uint8_t *d = kv->data;
    int64_t s;
    switch (kv->type) {
    case LMZ_GGUF_UINT8: *v = d[0]; return 0;
    case LMZ_GGUF_UINT16: *v = (uint64_t)d[0] | (uint64_t)d[1] << 8; return 0;
    case LMZ_GGUF_UINT32: *v = lmz_get_u32(d); return 0;
    case LMZ_GGUF_UINT64: *v = lmz_get_u64(d); return 0;
    case LMZ_GGUF_INT8: s = (int8_t)d[0]; break;
    case LMZ_GGUF_INT16: s = (int16_t)(uint16_t)((uint16_t)d[0] | (uint16_t)(d[1] << 8)); break;
    case LMZ_GGUF_INT32: s = (int32_t)lmz_get_u32(d); break;
    case LMZ_GGUF_INT64: s = (int64_t)lmz_get_u64(d); break;
    default: return -1;
    }
    if (s < 0) return -1;
    *v = (uint64_t)s;
    return 0;
}

int lmz_gguf_get_f32(const lmz_gguf *g, const char *key, float *v)
{
    const lmz_gguf_kv *kv = lmz_gguf_find(g, key);
    if (!kv) return -1;
    if (kv->type == LMZ_GGUF_FLOAT32) {
        uint32_t u = lmz_get_u32(kv->data);
        memcpy(v, &u, 4);
        return 0;
    }
    if (kv->type == LMZ_GGUF_FLOAT64) {
        uint64_t u = lmz_get_u64(kv->data);
        double d;
        memcpy(&d, &u, 8);
        *v = (float)d;
        return 0;
    }
    return -1;
}

int lmz_gguf_get_str(const lmz_gguf *g, const char *key, lmz_str *v)
{
    const lmz_gguf_kv *kv = lmz_gguf_find(g, key);
    if (!kv || kv->type != LMZ_GGUF_STRING) return -1;
    v->len = (size_t)lmz_get_u64(kv->data);
    v->ptr = (const char *)kv->data + 8;
    return 0;
}

lmz_str lmz_gguf_arr_str(const lmz_gguf_kv *kv, uint64_t i)
{
    lmz_str s = {"", 0};
    if (kv->type != LMZ_GGUF_ARRAY || kv->elem_type != LMZ_GGUF_STRING || i >= kv->count) return s;
    const uint8_t *p = kv->data + kv->str_off[i];
    s.len = (size_t)lmz_get_u64(p);
    s.ptr = (const char *)p + 8;
    return s;
}

/* ======================================================================== */
/* writer                                                                    */
/* ======================================================================== */

typedef struct {
    char *name;
    uint32_t type, n_dims;
    uint64_t ne[LMZ_GGUF_MAX_DIMS];
    const void *data;
    uint64_t n_bytes, offset;
} wtensor;

struct lmz_gguf_writer {
    uint8_t *kv;          /* serialised key-value pairs */
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    wtensor *t;
    size_t n_t, cap_t;
    int oom;
};

lmz_gguf_writer *lmz_gguf_writer_new(void) { return calloc(1, sizeof(lmz_gguf_writer)); }

void lmz_gguf_writer_free(lmz_gguf_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->t);
    free(w->kv);
    free(w);
}

static void put(lmz_gguf_writer *w, const void *p, size_t n)
{
    if (w->oom) return;
    if (w->kv_len + n > w->kv_cap) {
        size_t c = w->kv_cap ? w->kv_cap : 4096;
        while (c < w->kv_len + n) c *= 2;
        uint8_t *b = realloc(w->kv, c);
        if (!b) {
            w->oom = 1;
            return;
        }
        w->kv = b;
        w->kv_cap = c;
    }
    memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
}

static void put32(lmz_gguf_writer *w, uint32_t v)
{
    uint8_t b[4];
    lmz_put_u32(b, v);
    put(w, b, 4);
}

static void put64(lmz_gguf_writer *w, uint64_t v)
{
    put32(w, (uint32_t)v);
    put32(w, (uint32_t)(v >> 32));
}

static void put_str(lmz_gguf_writer *w, const char *s, size_t n)
{
    put64(w, n);
    put(w, s, n);
}

static void key(lmz_gguf_writer *w, const char *k, uint32_t type)
{
    put_str(w, k, strlen(k));
    put32(w, type);
    w->n_kv++;
}

void lmz_gguf_w_u32(lmz_gguf_writer *w, const char *k, uint32_t v) { key(w, k, LMZ_GGUF_UINT32); put32(w, v); }
void lmz_gguf_w_i32(lmz_gguf_writer *w, const char *k, int32_t v) { key(w, k, LMZ_GGUF_INT32); put32(w, (uint32_t)v); }
void lmz_gguf_w_u64(lmz_gguf_writer *w, const char *k, uint64_t v) { key(w, k, LMZ_GGUF_UINT64); put64(w, v); }
void lmz_gguf_w_bool(lmz_gguf_writer *w, const char *k, int v)
{
    uint8_t b = v ? 1 : 0;
    key(w, k, LMZ_GGUF_BOOL);
    put(w, &b, 1);
}
void lmz_gguf_w_f32(lmz_gguf_writer *w, const char *k, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    key(w, k, LMZ_GGUF_FLOAT32);
    put32(w, u);
}
void lmz_gguf_w_str(lmz_gguf_writer *w, const char *k, const char *v)
{
    key(w, k, LMZ_GGUF_STRING);
    put_str(w, v, strlen(v));
}

void lmz_gguf_w_arr_str(lmz_gguf_writer *w, const char *k, const char *const *v, size_t n,
                        const size_t *lens)
{
    key(w, k, LMZ_GGUF_ARRAY);
    put32(w, LMZ_GGUF_STRING);
    put64(w, n);
    for (size_t i = 0; i < n; i++) put_str(w, v[i], lens ? lens[i] : strlen(v[i]));
}

void lmz_gguf_w_arr_i32(lmz_gguf_writer *w, const char *k, const int32_t *v, size_t n)
{
    key(w, k, LMZ_GGUF_ARRAY);
    put32(w, LMZ_GGUF_INT32);
    put64(w, n);
    for (size_t i = 0; i < n; i++) put32(w, (uint32_t)v[i]);
}

void lmz_gguf_w_arr_f32(lmz_gguf_writer *w, const char *k, const float *v, size_t n)
{
    key(w, k, LMZ_GGUF_ARRAY);
    put32(w, LMZ_GGUF_FLOAT32);
    put64(w, n);
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        put32(w, u);
    }
}

static uint64_t scalar_size(uint32_t t)
{
    static const uint8_t sz[LMZ_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < LMZ_GGUF_TYPE_COUNT ? sz[t] : 0;
}

void lmz_gguf_w_copy(lmz_gguf_writer *w, const lmz_gguf_kv *kv)
{
    put_str(w, kv->key.ptr, kv->key.len);
    put32(w, kv->type);
    w->n_kv++;
    if (kv->type == LMZ_GGUF_STRING) {
        put(w, kv->data, 8 + (size_t)lmz_get_u64(kv->data));
    } else if (kv->type == LMZ_GGUF_ARRAY) {
        put32(w, kv->elem_type);
        put64(w, kv->count);
        uint64_t n = kv->count * scalar_size(kv->elem_type);
        if (kv->elem_type == LMZ_GGUF_STRING)
            n = kv->count ? kv->str_off[kv->count - 1] + 8 + lmz_get_u64(kv->data + kv->str_off[kv->count - 1]) : 0;
        put(w, kv->data, (size_t)n);
    } else {
        put(w, kv->data, (size_t)scalar_size(kv->type));
    }
}

void lmz_gguf_w_tensor(lmz_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                       const uint64_t *ne, const void *data)
{
    if (w->oom) return;
    if (w->n_t == w->cap_t) {
        size_t c = w->cap_t ? 2 * w->cap_t : 16;
        wtensor *t = realloc(w->t, c * sizeof *t);
        if (!t) {
            w->oom = 1;
            return;
        }
        w->t = t;
        w->cap_t = c;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) {
        w->oom = 1;
        return;
    }
    t->type = type;
    t->n_dims = n_dims;
    uint64_t n = 1;
    for (uint32_t d = 0; d < LMZ_GGUF_MAX_DIMS; d++) {
        t->ne[d] = d < n_dims ? ne[d] : 1;
        n *= t->ne[d];
    }
    t->n_bytes = lmz_ggml_row_bytes(type, t->ne[0]) * (n / t->ne[0]);
    t->data = data;
    w->n_t++;
}

int lmz_gguf_writer_write(lmz_gguf_writer *w, FILE *f)
{
    if (w->oom) return -1;
    const uint64_t align = 32;
    /* the header and tensor table go into the same buffer after the kvs */
    size_t kv_end = w->kv_len;
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        t->offset = off;
        off += (t->n_bytes + align - 1) / align * align;
        put_str(w, t->name, strlen(t->name));
        put32(w, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) put64(w, t->ne[d]);
        put32(w, t->type);
        put64(w, t->offset);
    }
    if (w->oom) return -1;
    uint8_t head[24];
    memcpy(head, "GGUF", 4);
    uint32_t v = 3;
    uint64_t nt = w->n_t, nk = w->n_kv;
    for (int i = 0; i < 4; i++) head[4 + i] = (uint8_t)(v >> (8 * i));
    for (int i = 0; i < 8; i++) head[8 + i] = (uint8_t)(nt >> (8 * i));
    for (int i = 0; i < 8; i++) head[16 + i] = (uint8_t)(nk >> (8 * i));
    int ok = fwrite(head, 1, 24, f) == 24 && fwrite(w->kv, 1, w->kv_len, f) == w->kv_len;
    uint64_t here = 24 + (uint64_t)w->kv_len;
    w->kv_len = kv_end; /* the writer can be written again */
    static const uint8_t zeros[32];
    uint64_t pad = (align - here % align) % align;
    ok = ok && fwrite(zeros, 1, (size_t)pad, f) == pad;
    for (size_t i = 0; i < w->n_t && ok; i++) {
        wtensor *t = &w->t[i];
        ok = fwrite(t->data, 1, (size_t)t->n_bytes, f) == t->n_bytes;
        uint64_t tp = (align - t->n_bytes % align) % align;
        ok = ok && fwrite(zeros, 1, (size_t)tp, f) == tp;
    }
    return ok ? 0 : -1;
}
