/*
 * corpus.h — training text: files and folders read into clean documents.
 *
 * What a document is, by file kind:
 *   WikiExtractor output   each <doc id=... title=...> ... </doc> is one
 *                          document, the tag lines dropped (the title line
 *                          that opens the body stays: it is text);
 *   Project Gutenberg      the text between the header and the licence
 *                          footer: after "*** START OF THE/THIS PROJECT
 *                          GUTENBERG ..." (or, in old etexts, the "*END*THE
 *                          SMALL PRINT!..." line), up to "*** END OF ..." or
 *                          "End of (the) Project Gutenberg ...";
 *   anything else          the whole file.
 * Text that is not valid UTF-8, and every file a MANIFEST.tsv beside it marks
 * "latin-1", is read as Latin-1 and stored as UTF-8. Long documents are cut
 * at paragraph ends into sections of about LMZ_CORPUS_SECTION bytes, so that
 * shuffling and the validation split work on pieces of books, not books.
 * Folders are walked in name order (files ending ".txt"), so the same paths
 * give the same corpus on any machine.
 */
#ifndef LMZ_CORPUS_H
#define LMZ_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#define LMZ_CORPUS_SECTION (64u << 10)

typedef struct {
    uint8_t *text;     /* every document's UTF-8 bytes, one after another */
    size_t len, cap;
    size_t *off;       /* (n_docs + 1): document i is text[off[i] .. off[i + 1]) */
    size_t n_docs, cap_docs;
    size_t n_files, n_latin1;
} lmz_corpus;

/* Read paths[0..n) (files or folders). @return 0, or -1 with a message. */
int lmz_corpus_load(const char *const *paths, size_t n, lmz_corpus *c, char *err, size_t errlen);
void lmz_corpus_free(lmz_corpus *c);

/* One file's bytes into documents (the cleaning above); latin1 forces
 * Latin-1 decoding. @return 0, or -1 out of memory. */
int lmz_corpus_add(lmz_corpus *c, const uint8_t *data, size_t n, int latin1);

#endif
