/*
 * format.h — the .lmz file format: version 2 is written, version 1 (below)
 * is written on request and read. docs/FORMAT.md describes both in full.
 *
 * Version 2 (the short form) keeps version 1's streams, frames, methods,
 * payloads and settings, and spends fewer bytes around them:
 *   8   magic (as version 1), 1 version = 2,
 *   1   flags: 1 model name follows (else "default"), 2 settings follow,
 *          4 original size follows (else unknown), 8 one frame (the stream
 *          is one frame block without an end block; needs 4); others 0
 *   1   profile code: 0 int-v1, 1..5 det-f32-v1..v4, det-i8-v1
 *   [1 + n model name] [8 model identity: language-model profiles]
 *   [varint k, then k times varint id, varint value: the settings that
 *    differ from version 2's defaults (settings.c), in id order]
 *   [varint original size]
 *   4   header check: low 32 bits of XXH64 of the bytes above
 * Frame block: 1 byte method (0..4), varint original size (absent in a
 * one-frame stream: the header's size), varint payload size, 4 bytes low
 * 32 bits of XXH64 of the frame's original bytes, payload.
 * End block (not in one-frame streams): 0xFF, varint total size, 4 bytes
 * low 32 bits of XXH64 of the stream's whole content.
 *
 * Version 1:
 *
 * All integers are little-endian. A file is one or more streams; streams
 * simply follow each other (so `cat a.lmz b.lmz` decompresses to the
 * concatenation of both contents).
 *
 * Stream header
 *   8   magic            89 4C 4D 5A 0D 0A 1A 0A   ("\x89LMZ\r\n\x1a\n")
 *   1   format version   1
 *   1   flags            0 (any other value: unsupported)
 *   1   n = profile length (1..63), then n bytes: arithmetic profile id
 *       ("int-v1": integer byte model; "det-f32-v1" .. "det-f32-v4" for
 *       language models: v4 written, v3 on request, v1 and v2 read only)
 *   1   n = model name length (1..63), then n bytes: model name ("none"
 *       for int-v1; a model stream naming "none" is damaged)
 *   32  model identity   hash of weights + tokenizer; zeros for "none"
 *   1   n = number of settings (0..32), then n times:
 *         1  setting id
 *         8  value
 *       Every setting that changes probabilities is here, in id order;
 *       src/codec/settings.c is their one table (ids, bounds, defaults). A
 *       decoder refuses ids it does not know. Version 1 ids:
 *         1  frame_size   bytes per frame (1 KiB .. 1 GiB)
 *         2  table_bits   byte model hash table: 2^table_bits_max 16-byte
 *                         slots at most (12..24); a frame of L bytes uses
 *                         the smallest b >= 12 with 2^b >= L, capped
 *       3..10: the language-model settings, see the LMZ_SET_ list below;
 *       present in every det-f32 stream, in no other; 11 and 12 are
 *       optional language-model settings.
 *   8   original size    total bytes of the stream, or 2^64-1 if unknown
 *                         when the header was written (streaming input)
 *   4   header check     low 32 bits of XXH64(seed 0) of all bytes above
 *
 * Then blocks, each starting with a type byte:
 *
 * Frame block (type 0x01)
 *   1   type 0x01
 *   1   method   0 = stored (payload is the original bytes)
 *                1 = byte model ("none") + range coder
 *                2 = language model: segments (src/codec/lmcodec.h)
 *                3 = runs + byte model (since lmzip 0.2; int-v1 streams):
 *                    varint  number of runs R (>= 1)
 *                    R times: varint gap (literal bytes since the end of
 *                             the previous run, or the frame start),
 *                             varint run length - LMZ_RUN_MIN, 1 byte value
 *                    then the byte model + range coder stream of the
 *                    literal bytes (the frame without its runs, in order;
 *                    absent when there are none). Varints are LEB128.
 *                    Also in det-f32 streams with the binary setting.
 *                4 = raw LZMA2 (det-f32 streams with the binary setting)
 *                With the binary setting, the byte model of methods 1 and
 *                3 is the group's chain (docs/FORMAT.md, "The binary chain").
 *   4   original size    1 .. frame_size
 *   4   payload size     1 .. original size (a frame never expands:
 *                        it is stored instead); for method 1, at least
 *                        original size / 4096 - 16 (the byte model codes a
 *                        bit in no less than -log2(4095/4096) bits, so no
 *                        real frame is smaller: a decoder rejects it
 *                        before allocating anything)
 *   8   XXH64(seed 0) of the original bytes of this frame
 *   4   block check      low 32 bits of XXH64 of the 18 bytes above
 *   payload
 *
 * End block (type 0xFF)
 *   1   type 0xFF
 *   8   total original size of the stream
 *   8   number of frames
 *   8   XXH64(seed 0) of the whole original content of the stream
 *   4   block check      low 32 bits of XXH64 of the 25 bytes above
 *
 * Frames are independent: each starts with a fresh model and range coder,
 * so they are compressed in parallel, decoded in parallel, and damage stays
 * inside one frame. Language-model streams with a group setting G > 1 are
 * the exception: frames 0..G-1, G..2G-1, ... of the stream form groups whose
 * text is coded with one shared ensemble (lmcodec.h); damage stays inside
 * one group. The range coder stream of a method-1 payload is described
 * in src/codec/rangecoder.h.
 */
#ifndef LMZ_FORMAT_H
#define LMZ_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "../common/endian.h"

#define LMZ_MAGIC_LEN 8
extern const uint8_t lmz_magic[LMZ_MAGIC_LEN];

#define LMZ_FORMAT_VERSION 2 /* written by default */
#define LMZ_FORMAT_V1 1      /* read, written on request (lmz_params.format_version) */
/* version 2's header flags */
#define LMZ_F2_NAME 1        /* the model name follows; absent: "default" */
#define LMZ_F2_SETTINGS 2    /* settings that differ from the defaults follow */
#define LMZ_F2_SIZE 4        /* the original size follows; absent: unknown */
#define LMZ_F2_ONE_FRAME 8   /* one frame block, no end block (needs the size) */
#define LMZ_F2_ALL 15
#define LMZ_V2_LM_FRAME (256u << 10) /* a model stream's frame size when the header omits it */
#define LMZ_V2_HASH_LEN 8    /* version 2 keeps the first 8 bytes of the model identity */
#define LMZ_V2_FRAME_HEADER_MAX (1 + 10 + 10 + 4)
#define LMZ_V2_END_BLOCK_MAX (1 + 10 + 4)
#define LMZ_PROFILE_INT_V1 "int-v1"
#define LMZ_PROFILE_DET_F32_V1 "det-f32-v1" /* read only: the first language-model files */
#define LMZ_PROFILE_DET_F32_V2 "det-f32-v2" /* read only: before the streams' own match models and the probability map */
#define LMZ_PROFILE_DET_F32_V3 "det-f32-v3" /* written on request (lmz_params.lm_profile 3) */
#define LMZ_PROFILE_DET_F32_V4 "det-f32-v4" /* tokens bit by bit with the byte model */
#define LMZ_PROFILE_DET_I8_V1 "det-i8-v1"   /* det-f32-v4's ensemble, the engine's matrix products in exact int8 sums */
#define LMZ_LM_PROFILE_NEWEST 4
#define LMZ_LM_PROFILE_I8_V1 5 /* lmz_params.lm_profile of det-i8-v1 */
/* 1 for the language-model profiles (all carry the same settings) */
int lmz_profile_is_lm(const char *profile);
/* det-f32-vN -> N (the ensemble's LMZ_ENS_VN), det-i8-v1 -> 5, 0 for any other name; and back (NULL out of range) */
unsigned lmz_profile_lm_version(const char *profile);
const char *lmz_profile_lm_name(unsigned version);
#define LMZ_NAME_MAX 63
#define LMZ_SETTINGS_MAX 32

#define LMZ_SET_FRAME_SIZE 1
#define LMZ_SET_TABLE_BITS 2
/* language-model streams (profiles det-f32-*) carry these too */
#define LMZ_SET_PARTS      3  /* ensemble parts, bits of LMZ_ENS_* (1..15) */
#define LMZ_SET_MIXER      4  /* 0 probability-space weights, 1 log domain */
#define LMZ_SET_NGRAM_BITS 5  /* n-gram buckets per order at most 2^v (8..24) */
#define LMZ_SET_CDF_BITS   6  /* frequency total 2^v (16..24) */
#define LMZ_SET_BIAS_LR    7  /* bias head rate: IEEE-754 binary32 bits */
#define LMZ_SET_MIX_LR     8  /* log mixer rate: IEEE-754 binary32 bits */
#define LMZ_SET_TEXT_MIN   9  /* shortest text segment in bytes (1..65536) */
#define LMZ_SET_WINDOW     10 /* llama KV window in tokens (1..2^20); 0 for dsrn */
/* (ids 3..10: present in every det-f32 stream; src/codec/settings.c is the table) */
#define LMZ_SET_SKIP       11 /* optional (absent = 0): confidence skip threshold in
                                 thousandths of a bit (0..16000) */
#define LMZ_SET_GROUP      12 /* optional (absent = 1): frames per group, whose text
                                 shares one ensemble (1..64; group x frame_size
                                 at most LMZ_GROUP_BYTES_MAX) */
#define LMZ_SET_BINARY     13 /* optional (absent = 0): 1 = the frames of a group
                                 that the model does not code (methods 0 and 1)
                                 form one byte-model chain, in frame order */
#define LMZ_SET_CACHE_ROWS 14 /* optional (absent = 32768, lmzip 0.7's): the cache's
                                 rows (16..2^20, a multiple of 16) */
#define LMZ_SET_HEAD_LR    15 /* optional (absent = 0.3, lmzip 0.5-0.7's): the adaptive
                                 head's rate, IEEE-754 binary32 bits (0..4) */
#define LMZ_GROUP_MAX 64
#define LMZ_GROUP_BYTES_MAX (64u << 20)

#define LMZ_BLOCK_FRAME 0x01
#define LMZ_BLOCK_END   0xFF

#define LMZ_METHOD_STORED 0
#define LMZ_METHOD_BYTEMODEL 1
#define LMZ_METHOD_LM 2 /* segments: text by the model, binary alone (lmcodec.h) */
#define LMZ_METHOD_RUNS 3 /* runs of one byte cut out, the rest by the byte model */
#define LMZ_METHOD_LZMA 4 /* raw LZMA2 (det-f32 streams with the binary setting) */
#define LMZ_RUN_MIN 512  /* shortest run method 3 cuts out */
/* most original bytes a method-1 payload of comp bytes can hold */
#define LMZ_BM_MAX_RATIO 4096u

#define LMZ_FRAME_HEADER_SIZE 22
#define LMZ_END_BLOCK_SIZE 29
#define LMZ_STREAM_HEADER_MAX (8 + 2 + 1 + 63 + 1 + 63 + 32 + 1 + 9 * 32 + 8 + 4)

typedef struct {
    unsigned version;
    char profile[LMZ_NAME_MAX + 1];
    char model[LMZ_NAME_MAX + 1];
    uint8_t model_hash[32];
    uint32_t frame_size;
    unsigned table_bits;
    uint64_t size_hint;
    /* language-model streams only (profiles det-f32-*) */
    unsigned parts, mixer, ngram_bits, cdf_bits, text_min;
    uint32_t window;
    float bias_lr, mix_lr;
    uint32_t skip_mbits;
    unsigned group; /* 1 when absent */
    unsigned binary; /* 0 when absent */
    uint32_t cache_rows; /* 32768 when absent */
    float head_lr;       /* 0.3 when absent */
    unsigned one_frame; /* version 2: the stream is one frame, without an end block */
} lmz_header;

typedef struct {
    unsigned method;
    uint32_t orig_size;
    uint32_t comp_size;
    uint64_t checksum; /* XXH64 of the content; version 2: its low 32 bits */
    unsigned check32;  /* 1: the checksum is the low 32 bits (version 2) */
    unsigned head_len; /* bytes of the frame block before the payload */
} lmz_frame_header;

/* Does the frame's content (orig_size bytes) match its checksum? */
int lmz_frame_check(const lmz_frame_header *f, const void *content);

/* Serialise a header into out (LMZ_STREAM_HEADER_MAX bytes) in h->version's
 * layout. @return size. */
size_t lmz_header_write(const lmz_header *h, uint8_t *out);

/* Read and check one stream header whose magic was read already, its
 * bytes fetched from get (exactly n bytes into dst, or an lmz_error such as
 * LMZ_ERROR_TRUNCATED). With check_support 0, a well-formed header of a
 * model, profile or setting this build lacks is LMZ_OK (for naming what is
 * missing). @return LMZ_OK or an lmz_error. */
typedef int (*lmz_fetch_fn)(void *ctx, uint8_t *dst, size_t n);
int lmz_header_read(lmz_fetch_fn get, void *ctx, lmz_header *h, int check_support);

/* Version 2's identity bytes (LMZ_V2_HASH_LEN) or version 1's (32). */
size_t lmz_header_hash_len(const lmz_header *h);

/* Version 2: the frame size a stream of this profile has when the header
 * does not say (4 MiB without a model, 256 KiB with one), and the group
 * it then has (64, or as many frames as fit in LMZ_GROUP_BYTES_MAX). */
uint32_t lmz_v2_frame_size(int lm);
unsigned lmz_v2_group(uint32_t frame_size);

/* Version 2 blocks. Write a frame block's header (LMZ_V2_FRAME_HEADER_MAX
 * bytes of room; without the original size in a one-frame stream) or an
 * end block (LMZ_V2_END_BLOCK_MAX). @return bytes written. */
size_t lmz_frame_header_write_v2(const lmz_frame_header *f, int one_frame, uint8_t *out);
size_t lmz_end_block_write_v2(uint64_t total, uint64_t hash, uint8_t *out);

/* Read the rest of a version-2 block whose first byte is type (a method, or
 * LMZ_BLOCK_END): a frame header into f (*end 0), or an end block's total
 * and check (*end 1). @return LMZ_OK or an lmz_error. */
int lmz_block_read_v2(lmz_fetch_fn get, void *ctx, const lmz_header *h, uint8_t type, lmz_frame_header *f,
                      int *end, uint64_t *total, uint64_t *check);

/* Serialise a frame header (LMZ_FRAME_HEADER_SIZE bytes, type byte first). */
void lmz_frame_header_write(const lmz_frame_header *f, uint8_t *out);

/* Parse the 21 bytes that follow the type byte. The header h bounds the
 * sizes. @return LMZ_OK or an lmz_error. */
int lmz_frame_header_parse(const uint8_t *in, const lmz_header *h,
                           lmz_frame_header *f);

void lmz_end_block_write(uint64_t total, uint64_t frames, uint64_t hash,
                         uint8_t *out);

#endif
