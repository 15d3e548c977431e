/*
 * gguf.h — reading and writing GGUF model files (versions 2 and 3).
 *
 * GGUF, the model format of the ggml / llama.cpp ecosystem. All integers are
 * little-endian.
 *
 *   uint32  magic        "GGUF" (47 47 55 46)
 *   uint32  version      2 or 3 (1 used 32-bit counts and is refused)
 *   uint64  tensor_count
 *   uint64  kv_count
 *   kv_count times:
 *     string  key        uint64 length + bytes (no terminating zero)
 *     uint32  value type
 *     value              scalar | string | array
 *       array: uint32 element type, uint64 count, the elements
 *   tensor_count times:
 *     string  name
 *     uint32  n_dims     1..4
 *     uint64  ne[n_dims] elements per dimension, ne[0] the fastest-moving
 *     uint32  type       ggml type (F32 0, F16 1, Q8_0 8, BF16 30, ...)
 *     uint64  offset     from the start of the data section, aligned
 *   padding to `general.alignment` (uint32 key, default 32)
 *   tensor data
 *
 * Value types: UINT8 0, INT8 1, UINT16 2, INT16 3, UINT32 4, INT32 5,
 * FLOAT32 6, BOOL 7, STRING 8, ARRAY 9, UINT64 10, INT64 11, FLOAT64 12.
 *
 * The reader maps the file read-only and points into it: tensors are used in
 * place, never copied. Every count, length, offset, type and size is checked
 * against the file before use; a malformed file gives an error message that
 * names the problem (and its byte offset), never a crash.
 */
#ifndef LMZ_GGUF_H
#define LMZ_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum {
    LMZ_GGUF_UINT8 = 0, LMZ_GGUF_INT8 = 1, LMZ_GGUF_UINT16 = 2, LMZ_GGUF_INT16 = 3,
    LMZ_GGUF_UINT32 = 4, LMZ_GGUF_INT32 = 5, LMZ_GGUF_FLOAT32 = 6, LMZ_GGUF_BOOL = 7,
    LMZ_GGUF_STRING = 8, LMZ_GGUF_ARRAY = 9, LMZ_GGUF_UINT64 = 10, LMZ_GGUF_INT64 = 11,
    LMZ_GGUF_FLOAT64 = 12, LMZ_GGUF_TYPE_COUNT
};

/* the ggml tensor types the engine computes with: LMZ_GGML_* */
#include "../tensor/types.h"

#define LMZ_GGUF_MAX_DIMS 4

typedef struct {
    const char *ptr; /* into the file: not zero-terminated */
    size_t len;
} lmz_str;

typedef struct {
    lmz_str key;
    uint32_t type;       /* value type */
    uint32_t elem_type;  /* for arrays */
    uint64_t count;      /* array length; 1 for scalars */
    const uint8_t *data; /* the value's bytes (array: the first element) */
    uint64_t *str_off;   /* string arrays: offset of each element from data */
} lmz_gguf_kv;

typedef struct {
    lmz_str name;
    uint32_t n_dims;
    uint64_t ne[LMZ_GGUF_MAX_DIMS]; /* unused dims are 1 */
    uint32_t type;
    uint64_t offset;       /* from the data section */
    uint64_t n_elements;
    uint64_t n_bytes;
    const void *data;      /* in the mapping */
} lmz_gguf_tensor;

typedef struct {
    const uint8_t *base;   /* the whole file */
    size_t size;
    int mapped;            /* base is an mmap to release */
    uint32_t version;
    uint64_t n_kv, n_tensors;
    lmz_gguf_kv *kv;
    lmz_gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_offset;
} lmz_gguf;

/* Open and check a file. @return 0, or -1 with a message in err. */
int lmz_gguf_open(const char *path, lmz_gguf *g, char *err, size_t errlen);
/* Parse a file already in memory (not copied; must outlive g). On failure
 * nothing is left allocated (lmz_gguf_close is not needed, but harmless). */
int lmz_gguf_parse(const void *buf, size_t size, lmz_gguf *g, char *err, size_t errlen);
void lmz_gguf_close(lmz_gguf *g);

const lmz_gguf_kv *lmz_gguf_find(const lmz_gguf *g, const char *key);
const lmz_gguf_tensor *lmz_gguf_tensor_find(const lmz_gguf *g, const char *name);

/* Typed getters: 0 on success, -1 when the key is missing or of another type.
 * Integer getters accept any integer type whose value fits. */
int lmz_gguf_get_u64(const lmz_gguf *g, const char *key, uint64_t *v);
int lmz_gguf_get_f32(const lmz_gguf *g, const char *key, float *v);
int lmz_gguf_get_str(const lmz_gguf *g, const char *key, lmz_str *v);
/* Element i of an array of strings. */
lmz_str lmz_gguf_arr_str(const lmz_gguf_kv *kv, uint64_t i);

int lmz_str_eq(lmz_str s, const char *c);
const char *lmz_gguf_type_name(uint32_t ggml_type);
const char *lmz_gguf_value_type_name(uint32_t t);
/* Bytes for n elements of a ggml type; 0 if the type is unknown or n is not
 * a whole number of blocks. */
uint64_t lmz_ggml_row_bytes(uint32_t ggml_type, uint64_t n);

/* ---- writer (tests, checkpoints, synthetic models) ---------------------- */

typedef struct lmz_gguf_writer lmz_gguf_writer;

lmz_gguf_writer *lmz_gguf_writer_new(void);
void lmz_gguf_writer_free(lmz_gguf_writer *w);
void lmz_gguf_w_u32(lmz_gguf_writer *w, const char *key, uint32_t v);
void lmz_gguf_w_i32(lmz_gguf_writer *w, const char *key, int32_t v);
void lmz_gguf_w_u64(lmz_gguf_writer *w, const char *key, uint64_t v);
void lmz_gguf_w_f32(lmz_gguf_writer *w, const char *key, float v);
void lmz_gguf_w_bool(lmz_gguf_writer *w, const char *key, int v);
void lmz_gguf_w_str(lmz_gguf_writer *w, const char *key, const char *v);
void lmz_gguf_w_arr_str(lmz_gguf_writer *w, const char *key, const char *const *v, size_t n,
                        const size_t *lens /* NULL: zero-terminated */);
void lmz_gguf_w_arr_i32(lmz_gguf_writer *w, const char *key, const int32_t *v, size_t n);
void lmz_gguf_w_arr_f32(lmz_gguf_writer *w, const char *key, const float *v, size_t n);
/* A key and value of a parsed file, as they are (scalars, strings, arrays of
 * scalars or strings; nested arrays are refused by the reader). */
void lmz_gguf_w_copy(lmz_gguf_writer *w, const lmz_gguf_kv *kv);
/* The data is copied when written, not now: it must stay valid until then. */
void lmz_gguf_w_tensor(lmz_gguf_writer *w, const char *name, uint32_t ggml_type,
                       uint32_t n_dims, const uint64_t *ne, const void *data);
/* @return 0, or -1 (out of memory earlier, or a write error). */
int lmz_gguf_writer_write(lmz_gguf_writer *w, FILE *f);

#endif
