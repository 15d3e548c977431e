/* explain.h — lmzip --explain: the pieces of a compression (lmzip.h:
 * lmz_piece) as a table or a self-contained HTML page. */
#ifndef LMZIP_EXPLAIN_H
#define LMZIP_EXPLAIN_H

#include <stdint.h>
#include <stdio.h>

#include "lmzip.h"

typedef struct {
    lmz_piece *p;
    size_t n, cap;
    int oom; /* a piece could not be kept */
} explain_pieces;

/* lmz_params.explain: keeps every piece (opaque: an explain_pieces) */
void explain_collect(void *opaque, const lmz_piece *piece);

typedef struct {
    const char *name;     /* the input's name as shown */
    const char *model;    /* the model's name */
    uint64_t in, out;     /* input and compressed bytes */
    double seconds;       /* compression time */
} explain_meta;

/* One line per piece, tab-separated, after a line naming the columns.
 * @return 0, or -1 when writing failed. */
int explain_tsv(FILE *f, const uint8_t *src, size_t n, const explain_pieces *ps);

/* The page: summary, a plot of bits per byte along the whole input, and the
 * first `show` bytes of the text, each token coloured by its cost, its
 * figures on hover. @return 0, or -1 when writing failed. */
int explain_html(FILE *f, const uint8_t *src, size_t n, const explain_pieces *ps, const explain_meta *m,
                 uint64_t show);

#endif
