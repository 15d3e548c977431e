/* segment.c — see segment.h. */
#include "segment.h"

#define BINARY_GAP 8 /* binary runs shorter than this inside text are text */

static int cont(uint8_t b) { return (b & 0xC0) == 0x80; }

/* length of the text character at s (printable ASCII, tab, newlines, form
 * feed, or a valid UTF-8 sequence that is not a C1 control), or 0 */
static size_t text_char(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    if ((c >= 0x20 && c < 0x7F) || c == '\t' || c == '\n' || c == '\r' || c == '\f') return 1;
    if (c < 0xC2 || c > 0xF4) return 0;
    if (c < 0xE0) return n >= 2 && cont(s[1]) && (((c & 0x1Fu) << 6) | (s[1] & 0x3Fu)) >= 0xA0 ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || !cont(s[1]) || !cont(s[2])) return 0;
        uint32_t cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        return cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF) ? 3 : 0;
    }
    if (n < 4 || !cont(s[1]) || !cont(s[2]) || !cont(s[3])) return 0;
    uint32_t cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
    return cp >= 0x10000 && cp <= 0x10FFFF ? 4 : 0;
}

/* join neighbours of the same kind */
static size_t merge(uint8_t *kind, size_t *len, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o && kind[o - 1] == kind[i]) {
            len[o - 1] += len[i];
        } else {
            kind[o] = kind[i];
            len[o++] = len[i];
        }
    }
    return o;
}

size_t lmz_segment(const uint8_t *src, size_t n, unsigned text_min, uint8_t *kind, size_t *len)
{
    size_t ns = 0;
    for (size_t i = 0; i < n;) {
        size_t t = text_char(src + i, n - i);
        uint8_t k = t ? LMZ_SEG_TEXT : LMZ_SEG_BYTEMODEL;
        if (!t) t = 1;
        if (ns && kind[ns - 1] == k) {
            len[ns - 1] += t;
        } else {
            kind[ns] = k;
            len[ns++] = t;
        }
        i += t;
    }
    for (size_t i = 1; i + 1 < ns; i++) /* short binary gaps inside text */
        if (kind[i] != LMZ_SEG_TEXT && len[i] < BINARY_GAP && kind[i - 1] == LMZ_SEG_TEXT &&
            kind[i + 1] == LMZ_SEG_TEXT)
            kind[i] = LMZ_SEG_TEXT;
    ns = merge(kind, len, ns);
    for (size_t i = 0; i < ns; i++)
        if (kind[i] == LMZ_SEG_TEXT && len[i] < text_min) kind[i] = LMZ_SEG_BYTEMODEL;
    return merge(kind, len, ns);
}

