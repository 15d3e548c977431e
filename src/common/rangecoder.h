/*
 * rangecoder.h — multi-symbol range coder with a wide (48-bit) range.
 *
 * The coder keeps `range` in [2^40, 2^48) between symbols, so that for any
 * frequency total up to 2^24 the quotient r = range / total is at least 2^16
 * and the rounding loss per symbol is below 2^-16 of the range: the measured
 * overhead over the ideal code length is far below 0.01 % (tests/unit and
 * bench/rc check it). `low` carries 48 bits plus one carry bit; carries are
 * propagated through a cached byte and a count of pending 0xFF bytes, so the
 * output is a plain byte string with no escape codes.
 *
 * Stream layout: the first byte is always 0 (the initial cache), followed by
 * the bytes shifted out of `low`; a flush writes the last 7 bytes. The decoder
 * reads past the end of its buffer as zeros and records that it did, so a
 * truncated stream is detected, never read out of bounds.
 */
#ifndef LMZ_RANGECODER_H
#define LMZ_RANGECODER_H

#include <stddef.h>
#include <stdint.h>

#define LMZ_RC_TOTAL_BITS_MAX 24            /* frequency totals up to 2^24 */
#define LMZ_RC_RANGE_BITS     48
#define LMZ_RC_BOTTOM         (1ull << 40)  /* renormalise below this */
#define LMZ_RC_MASK           ((1ull << LMZ_RC_RANGE_BITS) - 1)

/* ---- encoder ------------------------------------------------------------ */

typedef struct {
    uint64_t low;        /* < 2^49: 48 bits + carry */
    uint64_t range;      /* (0, 2^48) */
    uint64_t pending;    /* bytes held back: the cache byte + pending 0xFF */
    uint8_t  cache;
    uint8_t *buf;        /* caller-owned output buffer */
    size_t   pos, cap;   /* bytes written; capacity */
    int      overflow;   /* set when more than cap bytes were produced */
} lmz_rc_enc;

/* Start encoding into buf[0..cap). Writing never passes cap; on overflow the
 * coder keeps running (cheaply) and sets `overflow`, so callers can fall back
 * to storing the input. */
void lmz_rc_enc_init(lmz_rc_enc *e, uint8_t *buf, size_t cap);

/* Flush the final bytes. @return bytes written, or 0 when cap overflowed. */
size_t lmz_rc_enc_finish(lmz_rc_enc *e);

/* The short stream of the language-model frames (profile det-f32-v2): the
 * flush writes only as many bytes as pin a value inside the final range,
 * the leading 0 byte is dropped and so are trailing zeros (at least one byte
 * stays), for a decoder started with lmz_rc_dec_init_short, which reads
 * zeros past the end. Some 6 bytes less per stream than lmz_rc_enc_finish.
 * @return bytes written (>= 1), or 0 when cap overflowed. */
size_t lmz_rc_enc_finish_short(lmz_rc_enc *e);

static inline void lmz_rc__put(lmz_rc_enc *e, uint8_t b)
{
    if (e->pos < e->cap) e->buf[e->pos++] = b;
    else e->overflow = 1;
}

static inline void lmz_rc__shift_low(lmz_rc_enc *e)
{
    if (e->low < (0xFFull << 40) || e->low > LMZ_RC_MASK) {
        uint8_t carry = (uint8_t)(e->low >> LMZ_RC_RANGE_BITS);
        uint8_t b = e->cache;
        do {
            lmz_rc__put(e, (uint8_t)(b + carry));
            b = 0xFF;
        } while (--e->pending != 0);
        e->cache = (uint8_t)(e->low >> 40);
    }
    e->pending++;
    e->low = (e->low << 8) & LMZ_RC_MASK;
}

static inline void lmz_rc__enc_norm(lmz_rc_enc *e)
{
    while (e->range < LMZ_RC_BOTTOM) {
        lmz_rc__shift_low(e);
        e->range <<= 8;
    }
}

/* Encode the symbol occupying [cum, cum+freq) of a table summing to total.
 * Preconditions (programmer errors, asserted in debug builds):
 * freq >= 1, cum + freq <= total, total <= 2^24. */
static inline void lmz_rc_encode(lmz_rc_enc *e, uint32_t cum, uint32_t freq,
                                 uint32_t total)
{
    uint64_t r = e->range / total;
    e->low += r * cum;
    e->range = r * freq;
    lmz_rc__enc_norm(e);
}

/* Encode one binary decision; p1 is P(bit = 1) in units of 2^-16, 1..65535. */
static inline void lmz_rc_encode_bit(lmz_rc_enc *e, uint32_t p1, int bit)
{
    uint64_t split = (e->range >> 16) * p1;
    if (bit) {
        e->range = split;
    } else {
        e->low += split;
        e->range -= split;
    }
    lmz_rc__enc_norm(e);
}

/* ---- decoder ------------------------------------------------------------ */

typedef struct {
    uint64_t code;       /* offset of the coded value above low */
    uint64_t range;
    const uint8_t *buf;
    size_t pos, len;
    int overrun;         /* read past the end (truncated or corrupt input) */
    int corrupt;         /* impossible state reached */
    int pad;             /* a short stream: zeros past the end are part of it */
} lmz_rc_dec;

void lmz_rc_dec_init(lmz_rc_dec *d, const uint8_t *buf, size_t len);
/* For a stream of lmz_rc_enc_finish_short. Truncation is not detected here
 * (the frame checksum does that), nor a byte or two appended where the
 * decoder looks ahead (they change no symbol); a longer tail is. */
void lmz_rc_dec_init_short(lmz_rc_dec *d, const uint8_t *buf, size_t len);

static inline uint8_t lmz_rc__get(lmz_rc_dec *d)
{
    if (d->pos < d->len) return d->buf[d->pos++];
    if (!d->pad) d->overrun = 1;
    return 0;
}

static inline void lmz_rc__dec_norm(lmz_rc_dec *d)
{
    while (d->range < LMZ_RC_BOTTOM) {
        d->code = (d->code << 8) | lmz_rc__get(d);
        d->range <<= 8;
    }
    if (d->code >= d->range) { /* only reachable on damaged input */
        d->corrupt = 1;
        d->code = d->range - 1;
    }
}

/* First half of decoding a symbol: the value in [0, total) that selects it.
 * Then find the symbol whose [cum, cum+freq) holds it and call
 * lmz_rc_decode_update with the same total. */
static inline uint32_t lmz_rc_decode_target(lmz_rc_dec *d, uint32_t total)
{
    uint64_t r = d->range / total;
    uint64_t v = d->code / r;
    return v >= total ? total - 1 : (uint32_t)v;
}

static inline void lmz_rc_decode_update(lmz_rc_dec *d, uint32_t cum,
                                        uint32_t freq, uint32_t total)
{
    uint64_t r = d->range / total;
    d->code -= r * cum;
    d->range = r * freq;
    lmz_rc__dec_norm(d);
}

static inline int lmz_rc_decode_bit(lmz_rc_dec *d, uint32_t p1)
{
    uint64_t split = (d->range >> 16) * p1;
    int bit;
    if (d->code < split) {
        d->range = split;
        bit = 1;
    } else {
        d->code -= split;
        d->range -= split;
        bit = 0;
    }
    lmz_rc__dec_norm(d);
    return bit;
}

/* After the last symbol: 1 if the stream was consumed exactly and ends the
 * way the encoder's flush ends it (the window then equals the final `low`,
 * so `code` is 0). Any change to the flushed tail makes this 0. */
static inline int lmz_rc_dec_finished_cleanly(const lmz_rc_dec *d)
{
    if (d->pad) return !d->corrupt && d->pos == d->len; /* every byte used */
    return !d->overrun && !d->corrupt && d->pos == d->len && d->code == 0;
}

#endif
