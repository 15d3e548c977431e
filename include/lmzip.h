/*
 * lmzip.h — the public API of the lmzip library, and nothing else public.
 *
 * lmzip is a lossless compressor whose predictor is a model (a language
 * model in a GGUF file, llama or DSRN architecture, or the built-in
 * byte-level context-mixing model "none") driving a range coder. Its .lmz format is described in docs/FORMAT.md and
 * at the top of src/codec/format.h.
 *
 * Conventions (zstd style):
 *  - functions return an lmz_error code; LMZ_OK (0) is success, and
 *    lmz_error_name() names every code;
 *  - the library never aborts on bad input and never writes outside the
 *    buffers it is given, whatever the input bytes are;
 *  - streams are read and written through caller callbacks (lmz_io), so the
 *    library does no file I/O of its own.
 */
#ifndef LMZIP_H
#define LMZIP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What liblmzip.so exports: the library is built with hidden visibility,
 * and only the declarations of this header are marked for export. */
#if defined(__GNUC__) || defined(__clang__)
#define LMZ_API __attribute__((visibility("default")))
#else
#define LMZ_API
#endif

#define LMZ_VERSION_MAJOR 0
#define LMZ_VERSION_MINOR 8
#define LMZ_VERSION_PATCH 0
#define LMZ_VERSION_STRING "0.8.0"

/* ---- errors (values are pinned: they never change meaning) -------------- */
typedef enum {
    LMZ_OK = 0,
    LMZ_ERROR_GENERIC = 1,
    LMZ_ERROR_READ = 2,          /* the read callback failed */
    LMZ_ERROR_WRITE = 3,         /* the write callback failed (disk full...) */
    LMZ_ERROR_NOMEM = 4,
    LMZ_ERROR_BAD_MAGIC = 5,     /* not an .lmz stream */
    LMZ_ERROR_VERSION = 6,       /* format version this build does not know */
    LMZ_ERROR_HEADER = 7,        /* stream header damaged */
    LMZ_ERROR_TRUNCATED = 8,     /* input ends inside a stream */
    LMZ_ERROR_CORRUPT = 9,       /* frame damaged (sizes, coder state) */
    LMZ_ERROR_CHECKSUM = 10,     /* decoded bytes differ from the original */
    LMZ_ERROR_SIZE = 11,         /* a size field out of range */
    LMZ_ERROR_PROFILE = 12,      /* arithmetic profile not supported */
    LMZ_ERROR_MODEL = 13,        /* the model the stream needs is missing */
    LMZ_ERROR_PARAM = 14,        /* invalid parameter from the caller */
    LMZ_ERROR_SETTING = 15,      /* the stream uses a setting this build lacks */
    LMZ_ERROR_THREAD = 16,       /* a thread could not be started */
    LMZ_ERROR_DST_SIZE = 17,     /* destination buffer too small */
    LMZ_ERROR_EMPTY = 18,        /* no data at all where a stream was expected */
    LMZ_ERROR_MEMLIMIT = 19,     /* decoding needs more memory than the limit allows */
    LMZ_ERROR_COUNT_
} lmz_error;

/* @return a static, human-readable name for any code (unknown codes too). */
LMZ_API const char *lmz_error_name(int code);
/* @return the library's LMZ_VERSION_STRING (the header a program was built
 * with may be older). */
LMZ_API const char *lmz_version_string(void);

/* ---- parameters --------------------------------------------------------- */
#define LMZ_SIZE_UNKNOWN UINT64_MAX
#define LMZ_FRAME_SIZE_MIN (1u << 10)
#define LMZ_FRAME_SIZE_MAX (1u << 30)
#define LMZ_FRAME_SIZE_DEFAULT (4u << 20)   /* without a model */
#define LMZ_LM_FRAME_SIZE_MAX (64u << 20)   /* with a model */

/* Statistics of a compression with a language model (optional output). */
typedef struct {
    uint64_t text_bytes;    /* bytes coded by the model */
    uint64_t tokens;        /* their tokens */
    double text_bits;       /* their code length in bits (integer tables) */
    double ideal_bits;      /* the ensemble's cross-entropy before rounding */
    uint64_t text_coded;    /* bytes of the range coder streams */
    uint64_t skipped;       /* tokens coded without the model (confidence skip) */
    uint64_t binary_bytes;  /* bytes of binary segments */
    uint64_t binary_coded;  /* their coded size */
} lmz_stats;

/* Ensemble parts of a language-model stream (lmz_params.parts). */
#define LMZ_PART_MODEL 1u
#define LMZ_PART_NGRAM 2u
#define LMZ_PART_BIAS  4u
#define LMZ_PART_MATCH 8u
#define LMZ_PART_HEAD  16u /* the adaptive output head (models of vocabulary x width <= 2^24 only) */
#define LMZ_PART_NGTOP 32u /* the n-gram's top order as an expert of its own (log mixer only) */
#define LMZ_PART_REFINE 64u /* the bit coder's adaptive maps (profiles det-f32-v4 and det-i8-v1 only) */
#define LMZ_PART_CACHE 128u /* the cache of the model's vectors (with the head; det-f32-v4 and det-i8-v1 only) */

/* ---- a loaded model ------------------------------------------------------ */

/* A GGUF model loaded once (mapped read-only, checked, its identity hashed)
 * and shared by any number of calls, streams and threads, as zstd's
 * dictionaries are: compression and decompression open their own working
 * copies from it (threads, window), never change it. */
typedef struct lmz_model_ref lmz_model_ref;

/* Load the model at path. @return LMZ_OK, or LMZ_ERROR_MODEL with the reason
 * in err naming the file (missing, not GGUF, an architecture or tokenizer
 * this build cannot run). err may be NULL. */
LMZ_API int lmz_model_load(const char *path, lmz_model_ref **out, char *err, size_t errlen);
LMZ_API void lmz_model_unload(lmz_model_ref *m);
/* The name a stream records (the file name without .gguf, at most 63 bytes). */
LMZ_API const char *lmz_model_ref_name(const lmz_model_ref *m);

/* ---- where the bits go (lmzip --explain) ------------------------------- */

/* A piece of a compression: a token the model's ensemble coded, bytes the
 * byte model, LZMA or the stored method coded, or overhead (headers, the
 * tables of a frame, the range coder's last bytes). Pieces come in input
 * order, overhead where it is written; their bits add up to 8 x the
 * compressed size exactly. A token's bits are what the coder spent on it
 * (lmz_stats.text_bits is their sum). Binary segments inside a model
 * frame that the group's byte-model chain codes together share the
 * chain's bytes in proportion to their lengths. */
#define LMZ_PIECE_TOKEN    0
#define LMZ_PIECE_BINARY   1  /* the byte model, runs or LZMA2 */
#define LMZ_PIECE_STORED   2
#define LMZ_PIECE_OVERHEAD 3  /* length 0 */

/* which predictor gave a token the most probability */
#define LMZ_CARRIER_MODEL 0   /* the language model (through its bias head) */
#define LMZ_CARRIER_NGRAM 1   /* the token n-gram */
#define LMZ_CARRIER_MATCH 2   /* the match model over the group's text */
#define LMZ_CARRIER_LOCAL 3   /* the stream's own match model */
#define LMZ_CARRIER_BYTES 4   /* the byte model mixed in bit by bit (det-f32-v4 and
                                 on) made it cost a bit or more less than the
                                 ensemble's table gave it */
#define LMZ_CARRIER_NONE  5   /* not a token */

typedef struct {
    uint64_t offset;          /* its first byte in the input */
    uint32_t length;          /* bytes of input (0: overhead) */
    unsigned kind;            /* LMZ_PIECE_* */
    double bits;              /* what it cost */
    uint64_t frame;           /* the frame it belongs to (stream header: 0) */
    /* tokens only (else token -1, carrier LMZ_CARRIER_NONE) */
    int32_t token;
    unsigned carrier;
    float q[4];               /* the probability each of the first four carriers
                                 gave the token (-1: took no part) */
    float table_bits;         /* -log2 of the ensemble's table's probability */
    float top_p[3];           /* the table's three most probable tokens */
    uint8_t top[3][16];       /* their bytes (at most 16 each) */
    uint8_t top_len[3];
} lmz_piece;

typedef void (*lmz_explain_fn)(void *opaque, const lmz_piece *piece);

typedef struct {
    uint32_t frame_size;   /* bytes of input per independent frame; 0 (the
                              default) = automatic: 4 MiB without a model;
                              with one about a sixteenth of size_hint, from
                              16K to 256K, in whole frames (the rest shared
                              out in steps of 1K), 256K when the size is
                              unknown. With a model at most 64 MiB */
    unsigned threads;      /* worker threads; 0 = one per available core;
                              capped at the available cores (the affinity
                              mask, a cgroup's quota) unless force_threads */
    unsigned table_bits;   /* byte model: log2 of its 16-byte context slots
                              (12..24); table memory per thread at most
                              16 << table_bits bytes (64 MiB at 22) */
    const char *model;     /* "none" (the byte model), or the path of a GGUF
                              model (llama or dsrn architecture); ignored
                              when model_ref is set */
    uint64_t size_hint;    /* total input size if known, else LMZ_SIZE_UNKNOWN;
                              recorded in the header for `lmzip -l` */
    /* language-model streams only; all recorded in the header */
    unsigned parts;        /* LMZ_PART_* bits (default all) */
    unsigned mixer;        /* 0 probability-space exponential weights, 1 log domain (default) */
    unsigned ngram_bits;   /* n-gram buckets per order at most 2^ngram_bits, 32 bytes each (8..24, default 20) */
    unsigned cdf_bits;     /* frequency total 2^cdf_bits (16..24, default 24) */
    unsigned text_min;     /* shortest text segment in bytes (default 64) */
    uint32_t window;       /* llama KV window in tokens (0 = the model's context) */
    float bias_lr;         /* bias head learning rate (default 0.3) */
    float mix_lr;          /* log mixer learning rate (default 0.00025) */
    uint32_t skip_mbits;   /* confidence skip: tokens whose n-gram/match blend has
                              an entropy under skip_mbits/1000 bits are coded
                              without the model (0 = never, default; at most 16000) */
    unsigned group;        /* frames per group whose text shares one ensemble:
                              they learn from each other and still decode side
                              by side (1..64, group x frame_size at most 64 MiB;
                              0, the default: 64, or as many as fit in 64 MiB) */
    unsigned binary;       /* 1 (default): the frames of a group that the model
                              does not code (binary data, stored frames) share
                              one byte model, in frame order, as one frame of
                              the byte model would; 0: each frame its own */
    lmz_stats *stats;      /* if not NULL, filled when compression ends (the
                              ensemble's own cross-entropy, ideal_bits, takes
                              one more pass over the vocabulary per token) */
    unsigned lm_profile;   /* arithmetic profile of a language-model stream:
                              0 = the default (4, det-f32-v4), 5 (det-i8-v1:
                              the model's products in exact int8 sums), or 3
                              (det-f32-v3, which older builds read) */
    const lmz_model_ref *model_ref; /* a loaded model to use instead of
                              opening `model` (NULL: open `model`) */
    unsigned force_threads; /* 1: `threads` as given, even beyond the cores */
    unsigned model_always; /* with the binary setting, a group goes whole
                              through the byte-model chain, text too, where
                              that is smaller than the model's coding (text
                              the model knows less well than the byte model
                              learns it); 1: never, the model codes all text
                              (to measure a model). Not recorded: decoders
                              read either */
    unsigned format_version; /* 0 or 2 (the default): the short form of
                              lmzip 0.4, with settings only where they differ
                              from the defaults; 1: the form that lmzip 0.1
                              to 0.3 read (docs/FORMAT.md) */
    lmz_explain_fn explain; /* if not NULL, told every piece of the
                              compression as it is written (slower: a pass
                              over the vocabulary per token more) */
    void *explain_opaque;
    /* (lmzip 0.8) language-model streams, recorded in the header: */
    uint32_t cache_rows;   /* the cache's rows: the vectors of the group's last
                              cache_rows learnt tokens (16..2^20, a multiple of
                              16; default 65536, lmzip 0.7 32768) */
    float head_lr;         /* adaptive head learning rate (0..4; default 0.3,
                              the rate of lmzip 0.5-0.7) */
} lmz_params;

/* ---- the settings a stream records (one table: lmz_settings) ------------ */
typedef struct {
    const char *name;      /* lmzip's option without the dashes: "ngram-bits" */
    unsigned id;           /* its id in a stream header (docs/FORMAT.md) */
    int model_only;        /* recorded by language-model streams only */
    double min, max;       /* bounds of the value */
    double def;            /* default (0 for frame-size and group: chosen per file) */
    const char *help;
} lmz_setting;

/* The table, in header id order. @return count entries (static storage). */
LMZ_API const lmz_setting *lmz_settings(size_t *count);

/* Set the setting `name` of p to value after checking it against its
 * bounds (zstd's ZSTD_CCtx_setParameter): frame-size, table-bits, parts,
 * mixer, ngram-bits, cdf-bits, bias-lr, mix-lr, text-min, window, skip (in
 * bits), group; 0 for frame-size and group asks for the automatic choice.
 * @return LMZ_OK or LMZ_ERROR_PARAM (unknown name, value out of bounds). */
LMZ_API int lmz_params_set(lmz_params *p, const char *name, double value);

/* Open the model at path as compression would, and close it: LMZ_OK, or
 * LMZ_ERROR_MODEL with the reason in err (a missing file, a broken GGUF,
 * an architecture or tokenizer this build cannot run). */
LMZ_API int lmz_model_check(const char *path, char *err, size_t errlen);

/* The presets of the levels 1..9 (lmzip -1 .. -9; 6 is the default): the
 * name of the model ("none", "default", or "max", which stands for
 * "default" where no max model is found) and the one setting the level
 * sets (NULL: none) with its value for lmz_params_set. An explicit model
 * or setting wins over a level's. @return LMZ_OK or LMZ_ERROR_PARAM. */
LMZ_API int lmz_level(int level, const char **model, const char **setting, double *value);

/* The path of the model NAME (a name, not a path: no '/') in the models
 * folders, in order: $LMZIP_MODELS (':'-separated), models/ beside and
 * above the running program, lmz_models_dir(). @return LMZ_OK with path
 * filled, LMZ_ERROR_MODEL (not found; path empty) or LMZ_ERROR_PARAM. */
LMZ_API int lmz_model_find(const char *name, char *path, size_t cap);
/* The installed models folder (PREFIX/share/lmzip/models). */
LMZ_API const char *lmz_models_dir(void);

/* Fill p with the defaults (automatic frames and groups, 1 thread,
 * table_bits 22, "none", the language-model settings above). */
LMZ_API void lmz_params_default(lmz_params *p);

/* ---- I/O callbacks ------------------------------------------------------ */
typedef struct {
    void *opaque;
    /* Read up to n bytes into buf. @return bytes read (0 = end), -1 = error. */
    long (*read)(void *opaque, void *buf, size_t n);
    /* Write all n bytes. @return 0, or -1 on error. */
    int (*write)(void *opaque, const void *buf, size_t n);
    /* Optional (may be NULL): called after each frame with running totals of
     * bytes consumed from read and bytes produced by write, and with a
     * language model also while frames are coded, every few hundred tokens,
     * with estimates: the input share done and, compressing, the code
     * length so far. */
    void (*progress)(void *opaque, uint64_t in_bytes, uint64_t out_bytes);
} lmz_io;

/* Compress everything read from io into one .lmz stream written to io.
 * @return LMZ_OK or an error code; on error the output is incomplete. */
LMZ_API int lmz_compress_stream(const lmz_params *p, const lmz_io *io);

/* Decompress one or more concatenated .lmz streams. Each frame is checked
 * against its XXH64 before it is written, so damaged data is never written;
 * on an error, what was written is a prefix of the content (whole frames)
 * and the caller decides whether to keep it. threads: 0 = one per core. */
LMZ_API int lmz_decompress_stream(unsigned threads, const lmz_io *io);

/* The same for streams made with a language model: model is the path of
 * the GGUF file they need (NULL: none). A stream whose model identity
 * differs from the file's gives LMZ_ERROR_MODEL; lmz_peek_header names the
 * model it needs. */
typedef struct {
    unsigned threads;      /* as lmz_params.threads (capped at the cores) */
    const char *model;
    /* Optional: when model and model_ref are NULL, asked for the path of the
     * model a stream names (its file name without .gguf); NULL return: not
     * found. Each path is loaded once per call. */
    const char *(*find_model)(void *opaque, const char *name);
    void *find_opaque;
    const lmz_model_ref *model_ref; /* a loaded model (before model) */
    /* Optional, before find_model: a loaded model for the name a stream
     * names (NULL: not found); the caller keeps it alive. */
    const lmz_model_ref *(*find_ref)(void *opaque, const char *name);
    /* Memory the decoder may use, in bytes: 0 = lmz_memlimit_default(),
     * UINT64_MAX = no limit. Frames decoded side by side are fewer when they
     * would not fit; a frame or group that alone needs more gives
     * LMZ_ERROR_MEMLIMIT, and *mem_needed (if not NULL) the bytes it needs.
     * The count covers frame buffers, byte-model tables and language-model
     * working memory, not the model's mapped weights. */
    uint64_t memlimit;
    uint64_t *mem_needed;
    unsigned force_threads;
    unsigned *frames_at_once; /* optional out: most frames decoded side by side */
} lmz_dparams;

/* The default memory limit of decompression: half of what this process may
 * use (the smaller of physical memory and its cgroup's limit), at least
 * 64 MiB. */
LMZ_API uint64_t lmz_memlimit_default(void);

/* Cores this process may run on (the affinity mask and a cgroup quota). */
LMZ_API unsigned lmz_cores_available(void);
LMZ_API int lmz_decompress_stream_ex(const lmz_dparams *p, const lmz_io *io);

/* ---- listing without decoding ------------------------------------------- */
typedef struct {
    unsigned stream_index;    /* 0 for the first of concatenated streams */
    unsigned format_version;
    char profile[64];         /* arithmetic profile id */
    char model[64];           /* model name */
    uint8_t model_hash[32];   /* model identity (zeros for "none") */
    uint32_t frame_size;
    unsigned table_bits;
    uint64_t size_hint;       /* as recorded, or LMZ_SIZE_UNKNOWN */
    unsigned group;           /* frames per group sharing an ensemble (1: apart) */
} lmz_stream_info;

typedef struct {
    unsigned stream_index;
    uint64_t frame_index;
    unsigned method;          /* 0 stored, 1 byte model, 2 language model */
    uint64_t orig_size, comp_size;   /* comp_size includes the frame header */
    uint64_t checksum;        /* XXH64 of the original bytes (format version 2:
                                 its low 32 bits) */
} lmz_frame_info;

typedef struct {
    void (*on_stream)(void *opaque, const lmz_stream_info *s);
    void (*on_frame)(void *opaque, const lmz_frame_info *f);
    /* after a stream's end record: totals of that stream */
    void (*on_end)(void *opaque, unsigned stream_index, uint64_t frames,
                   uint64_t orig_size, uint64_t comp_size);
    void *opaque;
} lmz_list_callbacks;

/* lmz_list_stream over a buffer. */
LMZ_API int lmz_list_buffer(const void *src, size_t n, const lmz_list_callbacks *cb);

/* Parse the header at the start of src[0..n) without checking that this
 * build supports it, to name the model, profile or setting a file needs.
 * @return LMZ_OK when the header is well formed (its check holds). */
LMZ_API int lmz_peek_header(const void *src, size_t n, lmz_stream_info *info);

/* Walk the streams of io, reporting headers and frame index entries; frame
 * payloads are skipped, not decoded. */
LMZ_API int lmz_list_stream(const lmz_io *io, const lmz_list_callbacks *cb);

/* ---- one-shot buffers --------------------------------------------------- */

/* Largest compressed size of n input bytes (stored frames plus headers). */
LMZ_API size_t lmz_compress_bound(size_t n, uint32_t frame_size);

/* Compress src[0..n) into dst[0..cap). *out_len = bytes written. */
LMZ_API int lmz_compress_buffer(const lmz_params *p, const void *src, size_t n,
                        void *dst, size_t cap, size_t *out_len);

/* Decompress src[0..n) into dst[0..cap). Never writes past cap: a frame that
 * would not fit gives LMZ_ERROR_DST_SIZE before it is decoded. */
LMZ_API int lmz_decompress_buffer(unsigned threads, const void *src, size_t n,
                          void *dst, size_t cap, size_t *out_len);

/* The same with a model at hand (lmz_dparams, as lmz_decompress_stream_ex). */
LMZ_API int lmz_decompress_buffer_ex(const lmz_dparams *p, const void *src, size_t n,
                             void *dst, size_t cap, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
