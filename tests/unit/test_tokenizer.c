#define _POSIX_C_SOURCE 200809L
/* Tokenizer: llama.cpp's ids for SmolLM2's tokenizer, and lossless round
 * trips of any bytes. */
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "model/tokenizer.h"
#include "test.h"

static const char *test_ref_path_tok(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "smollm2-tokenizer/%s", name);
    return test_ref_path(rel);
}


static lmz_tokenizer *smollm2(lmz_gguf *g)
{
    const char *p = test_ref_path("smollm2-tokenizer/smollm2-tok-tiny.gguf");
    char err[256];
    lmz_tokenizer *t = NULL;
    if (!p || lmz_gguf_open(p, g, err, sizeof err) != 0) return NULL;
    if (lmz_tokenizer_load(g, &t, err, sizeof err) != 0) printf("  %s\n", err);
    return t;
}

static int round_trips(const lmz_tokenizer *t, const uint8_t *s, size_t n)
{
    size_t cap = 3 * n + 8;
    int32_t *ids = malloc(cap * sizeof *ids);
    uint8_t *back = malloc(n + 1);
    long k = lmz_tokenizer_encode(t, s, n, ids, cap);
    long m = k >= 0 ? lmz_tokenizer_decode(t, ids, (size_t)k, back, n + 1) : -1;
    int ok = k >= 0 && m == (long)n && memcmp(back, s, n) == 0;
    free(ids);
    free(back);
    return ok;
}

TEST(tokenizer_matches_llamacpp_ids)
{
    lmz_gguf g;
    lmz_tokenizer *t = smollm2(&g);
    if (!t) {
        printf("  ../shared/reference not found: skipped\n");
        return;
    }
    CHECK_EQ_U64(lmz_tokenizer_vocab_size(t), 49152);
    static const char *names[] = {"alice-head.txt", "code.c", "enwik-head.xml", "mixed.txt",
                                  "unicode.txt"};
    for (size_t f = 0; f < 5; f++) {
        size_t n, rn;
        uint8_t *text = test_read_file(test_ref_path_tok(names[f]), &n);
        char idsname[64];
        snprintf(idsname, sizeof idsname, "%s.ids", names[f]);
        char *ref = (char *)test_read_file(test_ref_path_tok(idsname), &rn);
        CHECK(text && ref);
        if (!text || !ref) continue;
        int32_t *ids = malloc((n + 1) * sizeof *ids);
        long k = lmz_tokenizer_encode(t, text, n, ids, n + 1);
        long j = 0, same = 0, count = 0;
        for (size_t i = 0; i < rn;) { /* "[1, 2, 3]" */
            if (ref[i] >= '0' && ref[i] <= '9') {
                long v = strtol(ref + i, NULL, 10);
                if (j < k && ids[j] == v) same++;
                j++;
                count++;
                while (i < rn && ref[i] >= '0' && ref[i] <= '9') i++;
            } else {
                i++;
            }
        }
        printf("  %-16s %5zu bytes %5ld ids, %ld of %ld as llama.cpp\n", names[f], n, k, same, count);
        CHECK(k == count && same == count);
        CHECK(round_trips(t, text, n));
        free(ids);
        free(text);
        free(ref);
    }
    lmz_tokenizer_free(t);
    lmz_gguf_close(&g);
}

/* the ids of "[1, 2, 3]" in ref[0..rn) into out (cap): @return their count */
static long parse_ids(const char *ref, size_t rn, int32_t *out, long cap)
{
    long count = 0;
    for (size_t i = 0; i < rn;) {
        if (ref[i] >= '0' && ref[i] <= '9') {
            long v = strtol(ref + i, NULL, 10);
            if (count < cap) out[count] = (int32_t)v;
            count++;
            while (i < rn && ref[i] >= '0' && ref[i] <= '9') i++;
        } else {
            i++;
        }
    }
    return count;
}

/* The tokenizer of the reference's file rel (NULL, with a message, when the
 * reference is absent); g holds its file. */
static lmz_tokenizer *ref_tokenizer(const char *rel, lmz_gguf *g)
{
    const char *p = test_ref_path(rel);
    lmz_tokenizer *t = NULL;
    char err[256];
    if (!p || lmz_gguf_open(p, g, err, sizeof err) != 0) {
        printf("  %s not found: skipped\n", rel);
        return NULL;
    }
    CHECK(lmz_tokenizer_load(g, &t, err, sizeof err) == 0);
    if (!t) {
        printf("  %s\n", err);
        lmz_gguf_close(g);
    }
    return t;
}

/* each sample dir/NAME against llama.cpp's dir/NAME.ids, and its round trip */
static void check_samples(const lmz_tokenizer *t, const char *dir, const char *const *names, size_t count)
{
    for (size_t f = 0; f < count; f++) {
        char rel[96];
        size_t n, rn;
        snprintf(rel, sizeof rel, "%s/%s", dir, names[f]);
        uint8_t *text = test_read_file(test_ref_path(rel), &n);
        snprintf(rel, sizeof rel, "%s/%s.ids", dir, names[f]);
        char *ref = (char *)test_read_file(test_ref_path(rel), &rn);
        CHECK(text && ref);
        if (!text || !ref) continue;
        int32_t *ids = malloc((n + 1) * sizeof *ids), *want = malloc((n + 1) * sizeof *want);
        long k = lmz_tokenizer_encode(t, text, n, ids, n + 1), c = parse_ids(ref, rn, want, (long)n + 1);
        int same = k == c && memcmp(ids, want, (size_t)(k > 0 ? k : 0) * sizeof *ids) == 0;
        printf("  %-18s %5zu bytes %5ld ids, %s llama.cpp's\n", names[f], n, k, same ? "the same as" : "NOT");
        CHECK(same);
        CHECK(round_trips(t, text, n));
        free(ids);
        free(want);
        free(text);
        free(ref);
    }
}

/* random byte strings (every byte value, invalid UTF-8, runs of spaces)
 * come back exactly */
static void check_any_bytes(const lmz_tokenizer *t)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    uint8_t buf[600];
    int all = 1;
    for (int r = 0; r < 20; r++) {
        size_t n = 1 + (size_t)(r * 29 % 600);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[i] = (uint8_t)(r % 3 == 0 && (x >> 40) % 4 == 0 ? ' ' : x >> 56);
        }
        all &= round_trips(t, buf, n);
    }
    CHECK(all);
}

/* text gives exactly the n ids of want, and round-trips */
static void check_spelled(const lmz_tokenizer *t, const char *text, const int32_t *want, size_t n)
{
    int32_t ids[64];
    long k = lmz_tokenizer_encode(t, (const uint8_t *)text, strlen(text), ids, 64);
    CHECK(k == (long)n && memcmp(ids, want, n * sizeof *want) == 0);
    CHECK(round_trips(t, (const uint8_t *)text, strlen(text)));
}

/* Qwen3's real tokenizer (151,936 tokens, the "qwen2" pre-tokeniser: one
 * digit a piece, contractions any case): llama.cpp's ids on every sample.
 * Text that spells a control token (<|endoftext|>, <think>) is text to us:
 * byte-level BPE spells it, which decodes to the same bytes, as llama.cpp's
 * --no-parse-special does for the control token. */
TEST(tokenizer_qwen3_matches_llamacpp_ids)
{
    lmz_gguf g;
    lmz_tokenizer *t = ref_tokenizer("qwen/qwen3-tok.gguf", &g);
    if (!t) return;
    CHECK_EQ_U64(lmz_tokenizer_vocab_size(t), 151936);
    static const char *const names[] = {"alice-head.txt", "code.c", "enwik-head.xml", "mixed.txt",
                                        "unicode.txt", "control-bytes.txt", "nfd.txt"};
    check_samples(t, "qwen", names, sizeof names / sizeof *names);
    static const int32_t spelled[] = {64, 27, 91, 8691, 723, 427, 91, 29, 65, 13708, 766, 29};
    check_spelled(t, "a<|endoftext|>b<think>", spelled, sizeof spelled / sizeof *spelled);
    check_any_bytes(t);
    lmz_tokenizer_free(t);
    lmz_gguf_close(&g);
}

/* Gemma 3's real tokenizer (262,145 SentencePiece pieces with byte
 * fallback, no space prefix, user-defined runs of spaces and newlines and
 * HTML tags matched before the pieces, longest first): llama.cpp's ids on
 * all eight samples; its control tokens in text (<start_of_turn>) are text,
 * as with --no-parse-special */
TEST(tokenizer_gemma3_matches_llamacpp_ids)
{
    lmz_gguf g;
    lmz_tokenizer *t = ref_tokenizer("gemma3/gemma3-tok.gguf", &g);
    if (!t) return;
    CHECK_EQ_U64(lmz_tokenizer_vocab_size(t), 262145);
    static const char *const names[] = {"alice-head.txt", "code.c", "enwik-head.xml", "mixed.txt",
                                        "unicode.txt", "control-bytes.txt", "nfd.txt", "special-text.txt"};
    check_samples(t, "gemma3", names, sizeof names / sizeof *names);
    static const int32_t spelled[] = {236820, 3041, 236779, 1340, 236779, 887, 236813, 2364};
    check_spelled(t, "<start_of_turn>user", spelled, sizeof spelled / sizeof *spelled);
    check_any_bytes(t);
    lmz_tokenizer_free(t);
    lmz_gguf_close(&g);
}

TEST(tokenizer_escapes_bytes_without_tokens)
{
    lmz_gguf g;
    lmz_tokenizer *t = smollm2(&g);
    if (!t) return;
    size_t n;
    uint8_t *text = test_read_file(test_ref_path("smollm2-tokenizer/control-bytes.txt"), &n);
    CHECK(text && round_trips(t, text, n));
    int32_t ids[64];
    long k = lmz_tokenizer_encode(t, (const uint8_t *)"\x04", 1, ids, 64);
    CHECK(k == 3 && ids[0] == lmz_tokenizer_escape_id(t));
    /* every single byte, and every pair of bytes */
    uint8_t b[2];
    int bad = 0;
    for (int x = 0; x < 256; x++) {
        b[0] = (uint8_t)x;
        if (!round_trips(t, b, 1)) bad++;
        for (int y = 0; y < 256; y += 7) {
            b[1] = (uint8_t)y;
            if (!round_trips(t, b, 2)) bad++;
        }
    }
    CHECK_EQ_U64(bad, 0);
    /* a broken escape does not decode */
    int32_t broken[2] = {lmz_tokenizer_escape_id(t), ids[1]};
    uint8_t out[8];
    CHECK(lmz_tokenizer_decode(t, broken, 2, out, sizeof out) == -1);
    int32_t out_of_range = 49152;
    CHECK(lmz_tokenizer_decode(t, &out_of_range, 1, out, sizeof out) == -1);
    free(text);
    lmz_tokenizer_free(t);
    lmz_gguf_close(&g);
}

TEST(tokenizer_round_trips_any_bytes)
{
    lmz_gguf g;
    lmz_tokenizer *t = smollm2(&g);
    if (!t) return;
    unsigned long long seed = 77;
    int bad = 0;
    static const char *alphabet[] = {"a", "Z", " ", "  ", "\t", "\n", "'s", "'", "7", "\xc3\xa9",
                                     "\xe4\xb8\xad", "\xf0\x9f\x98\x80", "\xff", "\xc3", "\x80",
                                     "\x00", "\x1d", ".", "\xe2\x80\xa8", "\xc2\xa0"};
    for (int round = 0; round < 2000; round++) {
        uint8_t buf[256];
        size_t n = 0;
        size_t len = (size_t)(test_rand(&seed) % 40);
        for (size_t i = 0; i < len; i++) {
            if (test_rand(&seed) % 3 == 0) {
                buf[n++] = (uint8_t)test_rand(&seed);
            } else {
                const char *s = alphabet[test_rand(&seed) % 20];
                size_t l = strlen(s);
                if (s[0] == 0) l = 1;
                memcpy(buf + n, s, l);
                n += l;
            }
        }
        if (!round_trips(t, buf, n)) bad++;
    }
    CHECK_EQ_U64(bad, 0);
    if (!test_quick()) { /* a long file */
        const char *p = test_bench_path("canterbury/alice29.txt");
        size_t n;
        uint8_t *text = p ? test_read_file(p, &n) : NULL;
        if (text) {
            CHECK(round_trips(t, text, n));
            free(text);
        }
    }
    lmz_tokenizer_free(t);
    lmz_gguf_close(&g);
}

/* A byte-level vocabulary (GPT-2's byte map, no merges) with the given
 * pre-tokeniser, built in memory. */
static lmz_tokenizer *bytes_tokenizer(const char *pre)
{
    static char text[256][4];
    const char *toks[256];
    for (int b = 0, extra = 0; b < 256; b++) {
        int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        unsigned c = keep ? (unsigned)b : 256u + (unsigned)extra++;
        if (c < 0x80) text[b][0] = (char)c;
        else {
            text[b][0] = (char)(0xC0 | c >> 6);
            text[b][1] = (char)(0x80 | (c & 0x3F));
        }
        toks[b] = text[b];
    }
    lmz_gguf_writer *w = lmz_gguf_writer_new();
    lmz_gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
    lmz_gguf_w_str(w, "tokenizer.ggml.pre", pre);
    lmz_gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 256, NULL);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    lmz_tokenizer *t = NULL;
    lmz_gguf g;
    char err[256];
    if (f && lmz_gguf_writer_write(w, f) == 0 && fclose(f) == 0 && lmz_gguf_parse(buf, len, &g, err, sizeof err) == 0) {
        if (lmz_tokenizer_load(&g, &t, err, sizeof err) != 0) printf("  %s\n", err);
        lmz_gguf_close(&g);
    }
    lmz_gguf_writer_free(w);
    free(buf);
    return t;
}

/* the pieces of s joined with '|' */
static void pieces(const lmz_tokenizer *t, const char *s, char *out)
{
    size_t ends[64], n = strlen(s), at = 0;
    long k = lmz_tokenizer_pieces(t, (const uint8_t *)s, n, ends, 64);
    *out = 0;
    for (long i = 0; i < k && i < 64; i++) {
        if (i) strcat(out, "|");
        strncat(out, s + at, ends[i] - at);
        at = ends[i];
    }
}

/* Llama 3's pre-tokeniser ("llama-bpe"), piece by piece, worked out by hand
 * from its pattern; GPT-2's on the same texts where they differ. */
TEST(tokenizer_llama3_pieces)
{
    static const char *cases[][3] = {
        /* text, llama-bpe, gpt2 */
        {"Hello world", "Hello| world", "Hello| world"},
        {"I'M here, don't", "I|'M| here|,| don|'t", "I|'|M| here|,| don|'t"},
        {"12345 apples 42", "123|45| apples| |42", "12345| apples| 42"},
        {"x  \n\n y", "x|  \n\n| y", "x|  \n\n| y"},
        {"a...\n\nb", "a|...\n\n|b", "a|...|\n|\n|b"},
        {"\tfoo", "\tfoo", "\t|foo"},
        {"\xc3\xbc" "ber 42\xe2\x82\xac", "\xc3\xbc" "ber| |42|\xe2\x82\xac", "\xc3\xbc" "ber| 42|\xe2\x82\xac"},
        {"  !!", " | !!", " | !!"},
        {"(hi)", "(hi|)", "(|hi|)"},
        {"end   ", "end|   ", "end|   "},
    };
    lmz_tokenizer *l3 = bytes_tokenizer("llama-bpe"), *g2 = bytes_tokenizer("gpt2");
    CHECK(l3 && g2);
    if (!l3 || !g2) return;
    char got[512];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int k = 0; k < 2; k++) {
            pieces(k ? g2 : l3, cases[i][0], got);
            if (strcmp(got, cases[i][1 + k])) printf("  %s: [%s], want [%s]\n", k ? "gpt2" : "llama-bpe", got, cases[i][1 + k]);
            CHECK(!strcmp(got, cases[i][1 + k]));
        }
    static const uint8_t any[] = "x\xff\x00 y'S\r\n\r\n 1 \t\n";
    CHECK(round_trips(l3, any, sizeof any - 1));
    lmz_tokenizer_free(l3);
    lmz_tokenizer_free(g2);
}

/* SentencePiece (tokenizer model "llama") on Llama 2's vocabulary, which the
 * third-party fixture llama-2-tiny-random.gguf carries: the ids llama.cpp's
 * own tokenizer test lists for these texts, and exact round trips, also of
 * a literal U+2581, invalid UTF-8 and leading spaces. */
TEST(tokenizer_spm_llama2)
{
    const char *p = test_ref_path("llama-2-tiny-random.gguf");
    if (!p) return;
    lmz_gguf g;
    char err[256];
    lmz_tokenizer *t = NULL;
    CHECK(lmz_gguf_open(p, &g, err, sizeof err) == 0);
    CHECK(lmz_tokenizer_load(&g, &t, err, sizeof err) == 0);
    lmz_gguf_close(&g);
    if (!t) return;
    static const struct {
        const char *text;
        int32_t ids[12];
    } cases[] = {
        {"Hello world", {15043, 3186}},
        {" Hello world", {29871, 15043, 3186}},
        {"Hello World", {15043, 2787}},
        {" Hello World!", {29871, 15043, 2787, 29991}},
        {"Hello, world!", {15043, 29892, 3186, 29991}},
        {" this is \xf0\x9f\xa6\x99.cpp", {29871, 445, 338, 29871, 243, 162, 169, 156, 29889, 8223}},
        {"w048 7tuijk dsdfhu", {281, 29900, 29946, 29947, 29871, 29955, 9161, 13535, 18031, 2176, 6905}},
        {"\xd0\xbd\xd0\xb5\xd1\x89\xd0\xbe \xd0\xbd\xd0\xb0 \xd0\x91\xd1\x8a\xd0\xbb\xd0\xb3\xd0\xb0\xd1\x80\xd1\x81"
         "\xd0\xba\xd0\xb8",
         {1538, 4851, 665, 1386, 29713, 1305}},
        {" ", {259}},
        {"   ", {268}},
        {"\n", {29871, 13}},
        {"\t\n", {29871, 12, 13}},
        {"333", {29871, 29941, 29941, 29941}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int32_t ids[64];
        long k = lmz_tokenizer_encode(t, (const uint8_t *)cases[i].text, strlen(cases[i].text), ids, 64);
        size_t want = 0;
        while (want < 12 && cases[i].ids[want]) want++;
        int same = k == (long)want && !memcmp(ids, cases[i].ids, want * sizeof *ids);
        if (!same) {
            printf("  [%s]:", cases[i].text);
            for (long j = 0; j < k && j < 64; j++) printf(" %d", ids[j]);
            printf("\n");
        }
        CHECK(same);
        CHECK(round_trips(t, (const uint8_t *)cases[i].text, strlen(cases[i].text)));
    }
    static const uint8_t odd[] = "  two spaces, a literal \xe2\x96\x81 piece, \xff\xfe bad bytes,\x00 a NUL ";
    CHECK(round_trips(t, odd, sizeof odd - 1));
    static const uint8_t bar[] = "\xe2\x96\x81lead";
    CHECK(round_trips(t, bar, sizeof bar - 1));
    int32_t none[1];
    CHECK(lmz_tokenizer_encode(t, (const uint8_t *)"", 0, none, 1) == 0);
    unsigned long long seed = 5;
    int all = 1;
    for (int r = 0; r < 300; r++) { /* random bytes, biased to spaces and U+2581's bytes */
        uint8_t buf[80];
        size_t len = test_rand(&seed) % 80;
        for (size_t i = 0; i < len; i++) {
            static const uint8_t pick[] = {' ', 0xE2, 0x96, 0x81, 'a', '\n', 0xFF};
            uint64_t v = test_rand(&seed);
            buf[i] = v % 3 ? pick[v / 3 % sizeof pick] : (uint8_t)(v >> 8);
        }
        all &= round_trips(t, buf, len);
    }
    CHECK(all);
    lmz_tokenizer_free(t);
}
