/*
 * align.h — blocks on cache lines. A row whose width is a multiple of 64
 * bytes that starts on a line never has a 64-byte vector (or AMX tile row)
 * load span two lines; glibc's large blocks start 16 bytes past a page, so
 * malloc's would. C11's aligned_alloc wants a size that is a multiple of the
 * alignment: these round it up. Free with free().
 */
#ifndef LMZ_ALIGN_H
#define LMZ_ALIGN_H

#include <stdlib.h>
#include <string.h>

/* n bytes on a 64-byte boundary (NULL: out of memory) */
static inline void *lmz_alloc64(size_t n) { return aligned_alloc(64, (n + 63) / 64 * 64); }

/* the same, zeroed */
static inline void *lmz_zalloc64(size_t n)
{
    void *p = lmz_alloc64(n);
    if (p) memset(p, 0, n);
    return p;
}

#endif
