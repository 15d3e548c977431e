/* test_bpe.c — the training corpus reader and the BPE tokenizer trainer. */
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "model/tokenizer.h"
#include "test.h"
#include "train/bpe.h"
#include "train/corpus.h"

static int doc_is(const lmz_corpus *c, size_t i, const char *s)
{
    return i < c->n_docs && c->off[i + 1] - c->off[i] == strlen(s) && memcmp(c->text + c->off[i], s, strlen(s)) == 0;
}

TEST(corpus_gutenberg_header_and_footer)
{
    const char *modern = "The Project Gutenberg eBook of X\r\n\r\nlicence words\r\n"
                         "*** START OF THE PROJECT GUTENBERG EBOOK X ***\r\n\r\nChapter 1.\r\nIt was.\r\n\r\n"
                         "*** END OF THE PROJECT GUTENBERG EBOOK X ***\r\nmore licence\r\n";
    const char *old = "***The Project Gutenberg Etext of Y***\nsmall print\n"
                      "*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\n\nBody text.\n\n"
                      "End of the Project Gutenberg Etext of Y\nfooter\n";
    lmz_corpus c;
    memset(&c, 0, sizeof c);
    CHECK(lmz_corpus_add(&c, (const uint8_t *)modern, strlen(modern), 0) == 0);
    CHECK(lmz_corpus_add(&c, (const uint8_t *)old, strlen(old), 0) == 0);
    CHECK_EQ_U64(c.n_docs, 2);
    CHECK(doc_is(&c, 0, "Chapter 1.\r\nIt was."));
    CHECK(doc_is(&c, 1, "Body text."));
    lmz_corpus_free(&c);
}

TEST(corpus_wiki_documents)
{
    const char *w = "<doc id=\"1\" url=\"?curid=1\" title=\"A\">\nA\n\nA is a letter.\n</doc>\n"
                    "<doc id=\"2\" url=\"?curid=2\" title=\"B\">\nB\n\n</doc>\n";
    lmz_corpus c;
    memset(&c, 0, sizeof c);
    CHECK(lmz_corpus_add(&c, (const uint8_t *)w, strlen(w), 0) == 0);
    CHECK_EQ_U64(c.n_docs, 2);
    CHECK(doc_is(&c, 0, "A\n\nA is a letter."));
    CHECK(doc_is(&c, 1, "B"));
    lmz_corpus_free(&c);
}

TEST(corpus_latin1_and_sections)
{
    const uint8_t l1[] = {'c', 'a', 'f', 0xE9, ' ', 'n', 'a', 0xEF, 'f'}; /* not UTF-8: read as Latin-1 */
    lmz_corpus c;
    memset(&c, 0, sizeof c);
    CHECK(lmz_corpus_add(&c, l1, sizeof l1, 0) == 0);
    CHECK(doc_is(&c, 0, "caf\xC3\xA9 na\xC3\xAF" "f"));
    CHECK(lmz_corpus_add(&c, (const uint8_t *)"caf\xC3\xA9", 5, 1) == 0); /* forced: MANIFEST.tsv says so */
    CHECK(doc_is(&c, 1, "caf\xC3\x83\xC2\xA9"));
    CHECK_EQ_U64(c.n_latin1, 2);
    /* a long text is cut at blank lines into sections of about 64 KiB */
    size_t n = 300000;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++) big[i] = i % 100 == 99 ? '\n' : i % 1000 == 998 ? '\n' : 'x';
    CHECK(lmz_corpus_add(&c, (const uint8_t *)big, n, 0) == 0);
    size_t total = 0;
    for (size_t d = 2; d < c.n_docs; d++) {
        size_t len = c.off[d + 1] - c.off[d];
        CHECK(len <= LMZ_CORPUS_SECTION + LMZ_CORPUS_SECTION / 2);
        total += len;
    }
    CHECK(c.n_docs >= 5);
    CHECK(total > n - 20 * (c.n_docs - 2) && total <= n);
    free(big);
    lmz_corpus_free(&c);
}

static lmz_tokenizer *train(const char *text, uint32_t vocab, lmz_bpe_stats *st, uint8_t **file, size_t *len)
{
    lmz_corpus c;
    memset(&c, 0, sizeof c);
    lmz_corpus_add(&c, (const uint8_t *)text, strlen(text), 0);
    lmz_bpe_opts o = {vocab, 0};
    lmz_gguf_writer *w = lmz_gguf_writer_new();
    char err[256];
    int rc = lmz_bpe_train(&c, &o, w, st, err, sizeof err);
    lmz_corpus_free(&c);
    CHECK(rc == 0);
    FILE *f = tmpfile();
    CHECK(lmz_gguf_writer_write(w, f) == 0);
    lmz_gguf_writer_free(w);
    *len = (size_t)ftell(f);
    rewind(f);
    *file = malloc(*len);
    CHECK(fread(*file, 1, *len, f) == *len);
    fclose(f);
    lmz_gguf g;
    lmz_tokenizer *t = NULL;
    CHECK(lmz_gguf_parse(*file, *len, &g, err, sizeof err) == 0);
    CHECK(lmz_tokenizer_load(&g, &t, err, sizeof err) == 0);
    lmz_gguf_close(&g);
    return t;
}

TEST(bpe_merges_most_frequent_pair_first)
{
    lmz_bpe_stats st;
    uint8_t *file;
    size_t len;
    lmz_tokenizer *t = train("aaabdaaabac", 260, &st, &file, &len);
    CHECK_EQ_U64(st.n_tokens, 260);
    CHECK_EQ_U64(st.n_merges, 3);
    size_t n;
    const uint8_t *b = lmz_tokenizer_token_bytes(t, 256, &n); /* first merge: "aa" (4 times) */
    CHECK(n == 2 && memcmp(b, "aa", 2) == 0);
    b = lmz_tokenizer_token_bytes(t, 257, &n); /* then "ab" (2), ahead of "aa"+"a" (2): lower ids */
    CHECK(n == 2 && memcmp(b, "ab", 2) == 0);
    b = lmz_tokenizer_token_bytes(t, 258, &n); /* then "aa"+"ab" (2) */
    CHECK(n == 4 && memcmp(b, "aaab", 4) == 0);
    CHECK_EQ_U64(lmz_tokenizer_eos(t), 259);
    int32_t ids[16];
    CHECK(lmz_tokenizer_encode(t, (const uint8_t *)"aaabdaaabac", 11, ids, 16) == 5);
    lmz_tokenizer_free(t);
    free(file);
}

TEST(bpe_lossless_and_deterministic)
{
    /* a text with repeats, then a vocabulary bigger than its pairs allow */
    size_t n = 20000;
    char *text = malloc(n + 1);
    unsigned long long s = 5;
    const char *w[] = {"the ", "cat ", "sat ", "on ", "a ", "mat, ", "caf\xC3\xA9 ", "\xE6\x97\xA5\xE6\x9C\xAC ", "42 ", "\n\n"};
    size_t o = 0;
    while (o < n) {
        const char *x = w[test_rand(&s) % 10];
        size_t l = strlen(x);
        if (o + l > n) break;
        memcpy(text + o, x, l);
        o += l;
    }
    text[o] = 0;
    lmz_bpe_stats st1, st2;
    uint8_t *f1, *f2;
    size_t l1, l2;
    lmz_tokenizer *t = train(text, 1000, &st1, &f1, &l1);
    lmz_tokenizer *t2 = train(text, 1000, &st2, &f2, &l2);
    CHECK(l1 == l2 && memcmp(f1, f2, l1) == 0); /* the same file twice */
    CHECK(st1.n_tokens < 1000);                 /* stopped: no pair occurs twice any more */
    CHECK(lmz_tokenizer_escape_id(t) < 0);      /* every byte has a token: no escape needed */
    /* any bytes round-trip */
    uint8_t bytes[3000], back[3000];
    for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (uint8_t)test_rand(&s);
    memcpy(bytes, text, 1000);
    int32_t *ids = malloc(sizeof bytes * sizeof *ids);
    long k = lmz_tokenizer_encode(t, bytes, sizeof bytes, ids, sizeof bytes);
    CHECK(k > 0 && k < (long)sizeof bytes);
    CHECK(lmz_tokenizer_decode(t, ids, (size_t)k, back, sizeof back) == (long)sizeof bytes);
    CHECK(memcmp(bytes, back, sizeof bytes) == 0);
    k = lmz_tokenizer_encode(t, (const uint8_t *)text, 200, ids, sizeof bytes);
    CHECK(k > 0 && k < 80); /* the words became tokens */
    free(ids);
    free(text);
    free(f1);
    free(f2);
    lmz_tokenizer_free(t);
    lmz_tokenizer_free(t2);
}
