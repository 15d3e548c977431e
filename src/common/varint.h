/*
 * varint.h — LEB128 integers (7 bits a byte, low first, at most 10 bytes),
 * as the method-2 and method-3 payloads store sizes and counts.
 */
#ifndef LMZ_VARINT_H
#define LMZ_VARINT_H

#include <stddef.h>
#include <stdint.h>

/* v into p (10 bytes of room). @return the bytes written. */
static inline size_t lmz_put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* The varint at p[*pos] (p holds len bytes) into *v, *pos moved past it.
 * @return 0, or -1 when it runs past len or past 10 bytes (damage). */
static inline int lmz_get_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned sh = 0; sh < 64; sh += 7) {
        if (*pos >= len) return -1;
        uint8_t b = p[(*pos)++];
        x |= (uint64_t)(b & 0x7F) << sh;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

#endif
