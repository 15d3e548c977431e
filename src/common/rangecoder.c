/* rangecoder.c — initialisation and flushing; the hot paths are inline in
 * rangecoder.h. */
#include "rangecoder.h"

#include <string.h>

void lmz_rc_enc_init(lmz_rc_enc *e, uint8_t *buf, size_t cap)
{
    e->low = 0;
    e->range = LMZ_RC_MASK;
    e->pending = 1;
    e->cache = 0;
    e->buf = buf;
    e->pos = 0;
    e->cap = cap;
    e->overflow = 0;
}

size_t lmz_rc_enc_finish(lmz_rc_enc *e)
{
    /* the cache byte and the 6 bytes of low */
    for (int i = 0; i < 7; i++) lmz_rc__shift_low(e);
    return e->overflow ? 0 : e->pos;
}

size_t lmz_rc_enc_finish_short(lmz_rc_enc *e)
{
    /* the value in [low, low + range) with the most trailing zero bytes
     * (2^48 itself is a carry into the bytes already out) */
    for (int s = 48; s >= 0; s -= 8) {
        uint64_t m = (1ull << s) - 1, v = (e->low + m) & ~m;
        if (v - e->low < e->range) {
            e->low = v;
            break;
        }
    }
    for (int i = 0; i < 7; i++) lmz_rc__shift_low(e);
    if (e->overflow) return 0;
    size_t n = e->pos; /* buf[0] is the initial cache byte, always 0 */
    while (n > 2 && e->buf[n - 1] == 0) n--;
    memmove(e->buf, e->buf + 1, n - 1);
    return n - 1;
}

/* Both decoders: the leading cache byte (pad 0: it must be 0; pad 1: the
 * short stream has none), then the first 6 bytes of the code value. */
static void dec_start(lmz_rc_dec *d, const uint8_t *buf, size_t len, int pad)
{
    d->buf = buf;
    d->len = len;
    d->pos = 0;
    d->overrun = 0;
    d->corrupt = 0;
    d->pad = pad;
    d->range = LMZ_RC_MASK;
    d->code = 0;
    if (!pad && lmz_rc__get(d) != 0) d->corrupt = 1; /* the initial cache byte */
    for (int i = 0; i < 6; i++) d->code = (d->code << 8) | lmz_rc__get(d);
    if (d->code >= d->range) { d->corrupt = 1; d->code = d->range - 1; }
}

void lmz_rc_dec_init_short(lmz_rc_dec *d, const uint8_t *buf, size_t len) { dec_start(d, buf, len, 1); }
void lmz_rc_dec_init(lmz_rc_dec *d, const uint8_t *buf, size_t len) { dec_start(d, buf, len, 0); }
