/*
 * segment.h — the segmenter: a frame cut into text-like runs (printable
 * ASCII, tab, newlines and valid UTF-8 of any script, at least text_min
 * bytes long, binary gaps under 8 bytes absorbed) and binary runs. The
 * language-model codec (lmcodec.h) codes text segments with the model and
 * binary ones alone; the cut is part of the format, so both directions
 * compute it the same way.
 */
#ifndef LMZ_SEGMENT_H
#define LMZ_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

/* segment kinds as the method-2 payload records them */
enum { LMZ_SEG_TEXT = 0, LMZ_SEG_BYTEMODEL = 1, LMZ_SEG_LZMA = 2, LMZ_SEG_STORED = 3, LMZ_SEG_CHAIN = 4 };

/* Segments of src[0..n): kinds (LMZ_SEG_TEXT or LMZ_SEG_BYTEMODEL for
 * binary) and lengths into the caller's arrays of n entries at most.
 * @return the number of segments. */
size_t lmz_segment(const uint8_t *src, size_t n, unsigned text_min, uint8_t *kind, size_t *len);

#endif
