/*
 * lmcodec.h — frames coded with a language model (method 2, profile
 * det-f32-v4, or det-f32-v3 on request; det-f32-v1 and det-f32-v2 are read).
 *
 * A frame is cut into segments by the segmenter (segment.h): text-like runs (printable
 * ASCII, tab, newlines and valid UTF-8 of any script, at least text_min
 * bytes long, binary gaps under 8 bytes absorbed) and binary runs. Text
 * segments are tokenised by the model's tokenizer and coded token by token
 * with the ensemble of src/predict/lmens.h over the model's logits (from
 * det-f32-v4 on, each token as the bits of its bytes, mixed with a byte
 * model that reads the text: src/codec/tokbits.h); the model
 * reads the start token, then every token of the frame's text segments in
 * order. Printable runs the tokenizer spells nearly byte by byte are binary.
 * Binary segments are coded alone with the byte model, or with raw LZMA2, or
 * stored: whichever is smallest; in streams with the binary setting, all of
 * a frame's binary segments instead go, as one piece, through the byte-model
 * chain of the group (stream.c: the chain runs over the group's binary
 * frames and these pieces in frame order).
 *
 * Payload of a method-2 frame:
 *   varint  number of segments (1 .. frame size)
 *   per segment:
 *     1       kind: 0 text, 1 byte model, 2 LZMA2, 3 stored, 4 the chain
 *             (binary setting only)
 *     varint  original bytes (>= 1)
 *     varint  text: tokens; kinds 1-3: coded bytes; kind 4: 0
 *   with kind-4 segments: varint L, then the chain's L coded bytes of them
 *   the binary segments' coded bytes, in order
 *   the range coder stream of all text tokens (the rest of the payload; from
 *   det-f32-v2 on the short form of rangecoder.h, lmz_rc_enc_finish_short)
 * Varints are LEB128 (7 bits a byte, low first, at most 10 bytes).
 *
 * Frames form groups (the stream header's group setting: that many
 * consecutive frames; 1 in files without it). The text of
 * a group's frames is coded with one ensemble, position by position across
 * the frames, so they learn from each other while the decoder still runs
 * them side by side. Compression evaluates each frame's model with prefill;
 * decompression advances every frame of a batch in lockstep with step, so
 * both see the same logits.
 */
#ifndef LMZ_LMCODEC_H
#define LMZ_LMCODEC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lmzip.h"
#include "../predict/lmens.h"
#include "format.h"

#define LMZ_LM_TEXT_MIN_DEFAULT 64
#define LMZ_LM_FRAME_MAX (64u << 20) /* tokens stay below 2^32 */
#define LMZ_LM_BATCH 64              /* frames decoded in lockstep at most */

#include "segment.h"

typedef struct {
    lmz_ens_params ens;
    unsigned text_min;   /* shortest text segment, 1 .. 65536 */
    uint32_t window;     /* llama KV window in tokens (0 = the model's) */
    unsigned table_bits; /* byte model of binary segments */
    unsigned binary;     /* the binary setting: binary segments through the group's chain (kind 4) */
    int int8;            /* det-i8-v1: the model's products in int8 (lmz_model_opts.int8) */
    unsigned threads;    /* the model's matrix-product threads */
    unsigned hash_len;   /* bytes of want_hash lmz_lm_open compares (0: all 32; format version 2: 8) */
    int ideal;           /* compression sums lmz_lm_stats.ideal_bits (a pass over the vocabulary a token) */
    int explain;         /* compression fills lmz_lm_cframe.pieces (lmzip.h: lmz_piece) */
} lmz_lm_params;

typedef struct lmz_lm lmz_lm;

/* The path a model was loaded from (lmzip.h: lmz_model_load). */
const char *lmz_model_ref_path(const lmz_model_ref *r);

/* A codec over the loaded model ref with the settings p (the model's own
 * instance: threads and window as p says; ref must outlive it). want_hash
 * (32 bytes, or NULL for any model) is the identity a stream names.
 * @return LMZ_OK, or with a message naming the file in err: LMZ_ERROR_MODEL
 * (another model than want_hash), LMZ_ERROR_HEADER (when decoding: the
 * settings do not fit the very model the stream names, so the header is
 * damaged), LMZ_ERROR_PARAM (when encoding: settings that do not fit the
 * model), LMZ_ERROR_NOMEM. */
int lmz_lm_open(const lmz_model_ref *ref, const lmz_lm_params *p, const uint8_t *want_hash, lmz_lm **out,
                char *err, size_t errlen);
void lmz_lm_free(lmz_lm *lm);

/* Working memory decoding needs, an estimate that errs high (the model's
 * mapped weights not counted): for one frame of orig bytes beside its
 * buffers, and once for a group whose frames hold `bytes` in all. */
uint64_t lmz_lm_mem_frame(const lmz_lm *lm, uint64_t orig);
uint64_t lmz_lm_mem_group(const lmz_lm *lm, uint64_t bytes);

/* Readable name (the file name without .gguf, at most 63 bytes) and
 * identity (XXH3-128 of the whole file with seeds 0 and 1: weights and
 * tokenizer). */
const char *lmz_lm_name(const lmz_lm *lm);
const uint8_t *lmz_lm_hash(const lmz_lm *lm);
/* The model's window as the header records it. */
uint32_t lmz_lm_window(const lmz_lm *lm);
/* The adaptive head (LMZ_ENS_HEAD) only where vocabulary x width <= LMZ_LM_HEAD_MAX
 * (64 MiB of floats a group): the compressor drops it for wider models before
 * writing the header. @return the parts the stream is coded with. */
#define LMZ_LM_HEAD_MAX (1u << 24)
unsigned lmz_lm_fit_parts(lmz_lm *lm);


/* An explain piece that is not a token (lmzip.h: lmz_piece). */
static inline lmz_piece lmz_piece_bytes(unsigned kind, uint64_t offset, uint32_t length, double bits)
{
    lmz_piece p;
    memset(&p, 0, sizeof p);
    p.offset = offset;
    p.length = length;
    p.kind = kind;
    p.bits = bits;
    p.token = -1;
    p.carrier = LMZ_CARRIER_NONE;
    return p;
}

/* One frame to compress: src[0..n) into out[0..cap). */
typedef struct {
    const uint8_t *src;
    size_t n;
    uint8_t *out;
    size_t cap;
    size_t out_len; /* out: the payload's size, or 0: it does not fit in cap, store the frame */
    const uint8_t *chain; /* binary setting: the chain's coding of the frame's */
    size_t chain_len;     /* binary segments (lmz_lm_frame_plan), 0 if none */
    /* with lmz_lm_params.explain, out: the frame's tokens and binary
     * segments in input order (offsets in the frame, frame 0; overhead not
     * among them), malloc'd (the caller frees; NULL when not coded) */
    lmz_piece *pieces;
    size_t npieces;
} lmz_lm_cframe;

/* Code the k frames of one group (1 .. LMZ_ENS_STREAMS_MAX): their text
 * with one ensemble, position by position (see lmens.h), the frames'
 * binary segments and models apart. A frame whose text does not fit is
 * left out (out_len 0) and the others are coded again without it, as the
 * decoder will see them. @return LMZ_OK or an lmz_error. */
int lmz_lm_compress_group(lmz_lm *lm, lmz_lm_cframe *f, size_t k);

/* Raw LZMA2 (liblzma preset 6e, dictionary the smallest power of two of at
 * least 4 KiB holding n bytes, at most the preset's), as binary segments
 * and method-4 frames use it. encode: @return the size in out[0..cap), 0
 * when it does not fit; decode: LMZ_OK, LMZ_ERROR_CORRUPT (anything but
 * exactly c bytes making exactly n) or LMZ_ERROR_NOMEM. */
size_t lmz_lzma_encode(const uint8_t *src, size_t n, uint8_t *out, size_t cap);
int lmz_lzma_decode(const uint8_t *in, size_t c, uint8_t *dst, size_t n);

/* Whether the model should code src[0..n): at least an eighth of it is text
 * the tokenizer reads as words (not printable runs it spells byte by byte),
 * and it has two bytes or more. Frames that are not go to the byte model
 * whole, as without a model. For a text frame and a bin (n bytes of room)
 * that is not NULL, the bytes of its binary segments in order, what its
 * kind-4 segments hold, go to bin and their count to *nbin (nbin may be
 * NULL; 0 otherwise). @return 1 text, 0 not, -1 when memory is short. */
int lmz_lm_frame_plan(const lmz_lm *lm, const uint8_t *src, size_t n, uint8_t *bin, size_t *nbin);

/* Where the chain's piece of a method-2 payload lies: at payload[*off ..
 * *off + *len), coding *bytes original bytes (all 0 when the frame has no
 * kind-4 segment). @return LMZ_OK or LMZ_ERROR_CORRUPT. */
int lmz_lm_frame_chain(const lmz_lm *lm, const uint8_t *payload, size_t comp_size, size_t orig_size, size_t *off,
                       size_t *len, size_t *bytes);

typedef struct {
    const uint8_t *payload;
    size_t comp_size;
    uint8_t *dst;
    size_t orig_size;
    size_t group; /* frames of one group (consecutive here) share an ensemble */
    int err;      /* out: LMZ_OK, LMZ_ERROR_CORRUPT or LMZ_ERROR_NOMEM */
    const uint8_t *chain_bytes; /* binary setting: the kind-4 segments' bytes, as the chain decoded them */
} lmz_lm_frame;

/* Decode k frames, the text of all of them in lockstep. Never writes
 * outside each dst[0..orig_size). */
void lmz_lm_decompress_frames(lmz_lm *lm, lmz_lm_frame *f, size_t k);

/* Progress within one call of lmz_lm_compress_group or
 * lmz_lm_decompress_frames: fn(opaque, frac, bits), frac the share of the
 * call's tokens done (0..1), bits the code length of the text so far
 * (compression; 0 in decompression). Called on the calling thread between
 * steps, every few hundred tokens; NULL: never. */
typedef void (*lmz_lm_progress_fn)(void *opaque, double frac, double bits);
void lmz_lm_set_progress(lmz_lm *lm, lmz_lm_progress_fn fn, void *opaque);

/* Statistics of the last compressed frames (for -v and the benchmarks):
 * text bytes, tokens and their code length in bits, binary bytes and their
 * coded bytes. Reset by lmz_lm_stats_reset. */
typedef struct {
    uint64_t text_bytes, tokens, text_coded, binary_bytes, binary_coded;
    double text_bits;  /* sum of -log2 of the coded tables' frequencies */
    double ideal_bits; /* the same under the unrounded probabilities */
    uint64_t skipped;  /* tokens coded without the model */
} lmz_lm_stats;
void lmz_lm_stats_get(const lmz_lm *lm, lmz_lm_stats *s);
void lmz_lm_stats_reset(lmz_lm *lm);

#endif
