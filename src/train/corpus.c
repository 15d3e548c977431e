/*
 * corpus.c — files and folders into clean documents (corpus.h).
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "corpus.h"

__attribute__((format(printf, 3, 4))) static int errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

void lmz_corpus_free(lmz_corpus *c)
{
    free(c->text);
    free(c->off);
    memset(c, 0, sizeof *c);
}

/* ======================================================================== */
/* text                                                                      */
/* ======================================================================== */

static int valid_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t len = b >= 0xF0 && b <= 0xF4 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 && b < 0xE0 ? 2 : 0;
        if (len == 0 || i + len > n) return 0;
        uint32_t cp = b & (0x7F >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp < 0xE000))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += len;
    }
    return 1;
}

/* Latin-1 bytes as UTF-8 (out holds 2n) @return the length */
static size_t latin1_to_utf8(const uint8_t *s, size_t n, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x80) {
            out[o++] = s[i];
        } else {
            out[o++] = (uint8_t)(0xC0 | s[i] >> 6);
            out[o++] = (uint8_t)(0x80 | (s[i] & 0x3F));
        }
    }
    return o;
}

static int starts_with_ci(const uint8_t *s, size_t n, const char *p)
{
    size_t k = strlen(p);
    if (n < k) return 0;
    for (size_t i = 0; i < k; i++) {
        uint8_t a = s[i], b = (uint8_t)p[i];
        if (a >= 'A' && a <= 'Z') a = (uint8_t)(a + 32);
        if (b >= 'A' && b <= 'Z') b = (uint8_t)(b + 32);
        if (a != b) return 0;
    }
    return 1;
}

/* the end of the line starting at i (the index of its '\n', or n) */
static size_t line_end(const uint8_t *s, size_t n, size_t i)
{
    const uint8_t *p = memchr(s + i, '\n', n - i);
    return p ? (size_t)(p - s) : n;
}

static size_t next_line(const uint8_t *s, size_t n, size_t i)
{
    size_t e = line_end(s, n, i);
    return e < n ? e + 1 : n;
}

static int is_gutenberg_start(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] == '*') i++;
    if (i >= 3) {
        while (i < n && s[i] == ' ') i++;
        if (starts_with_ci(s + i, n - i, "start of th")) return 1;
    }
    return starts_with_ci(s, n, "*end*the small print") || starts_with_ci(s, n, "*end the small print");
}

static int is_gutenberg_end(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] == '*') i++;
    if (i >= 3) {
        while (i < n && s[i] == ' ') i++;
        if (starts_with_ci(s + i, n - i, "end of th")) return 1;
    }
    return starts_with_ci(s, n, "end of the project gutenberg") || starts_with_ci(s, n, "end of project gutenberg");
}

/* ======================================================================== */
/* documents                                                                 */
/* ======================================================================== */

static int reserve_text(lmz_corpus *c, size_t more)
{
    if (c->len + more <= c->cap) return 0;
    size_t cap = c->cap ? c->cap : 1 << 20;
    while (cap < c->len + more) cap *= 2;
    uint8_t *p = realloc(c->text, cap);
    if (!p) return -1;
    c->text = p;
    c->cap = cap;
    return 0;
}

static int push_doc(lmz_corpus *c, const uint8_t *s, size_t n)
{
    if (c->n_docs + 2 > c->cap_docs) {
        size_t cap = c->cap_docs ? c->cap_docs * 2 : 1024;
        size_t *p = realloc(c->off, cap * sizeof *p);
        if (!p) return -1;
        c->off = p;
        c->cap_docs = cap;
    }
    if (reserve_text(c, n) != 0) return -1;
    if (c->n_docs == 0) c->off[0] = 0;
    memcpy(c->text + c->len, s, n);
    c->len += n;
    c->off[++c->n_docs] = c->len;
    return 0;
}

static int is_space(uint8_t b) { return b == ' ' || b == '\n' || b == '\r' || b == '\t'; }

/* a document, trimmed, cut into sections at paragraph ends */
static int add_doc(lmz_corpus *c, const uint8_t *s, size_t n)
{
    while (n && is_space(*s)) s++, n--;
    while (n && is_space(s[n - 1])) n--;
    while (n) {
        size_t cut = n;
        if (n > LMZ_CORPUS_SECTION + LMZ_CORPUS_SECTION / 2) {
            for (size_t i = LMZ_CORPUS_SECTION; i + 1 < n; i++) {
                if (s[i] != '\n') continue;
                size_t j = i + 1;
                if (j < n && s[j] == '\r') j++;
                if (j < n && s[j] == '\n') { /* a blank line: the section ends after it */
                    cut = j + 1;
                    break;
                }
            }
        }
        size_t len = cut;
        while (len && is_space(s[len - 1])) len--;
        if (len && push_doc(c, s, len) != 0) return -1;
        s += cut;
        n -= cut;
        while (n && is_space(*s)) s++, n--;
    }
    return 0;
}

static int add_wiki(lmz_corpus *c, const uint8_t *s, size_t n)
{
    size_t body = 0;
    int in_doc = 0;
    for (size_t i = 0; i < n; i = next_line(s, n, i)) {
        size_t e = line_end(s, n, i);
        if (starts_with_ci(s + i, e - i, "<doc ")) {
            in_doc = 1;
            body = next_line(s, n, i);
        } else if (in_doc && starts_with_ci(s + i, e - i, "</doc>")) {
            if (add_doc(c, s + body, i - body) != 0) return -1;
            in_doc = 0;
        }
    }
    if (in_doc && add_doc(c, s + body, n - body) != 0) return -1; /* a cut-off last document */
    return 0;
}

int lmz_corpus_add(lmz_corpus *c, const uint8_t *data, size_t n, int latin1)
{
    uint8_t *conv = NULL;
    if (latin1 || !valid_utf8(data, n)) {
        conv = malloc(2 * n + 1);
        if (!conv) return -1;
        n = latin1_to_utf8(data, n, conv);
        data = conv;
        c->n_latin1++;
    }
    if (n >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF) data += 3, n -= 3; /* BOM */
    c->n_files++;
    int rc;
    size_t i = 0;
    while (i < n && is_space(data[i])) i++;
    if (starts_with_ci(data + i, n - i, "<doc ")) {
        rc = add_wiki(c, data, n);
    } else {
        size_t a = 0, b = n;
        for (size_t l = 0; l < n; l = next_line(data, n, l))
            if (is_gutenberg_start(data + l, line_end(data, n, l) - l)) {
                a = next_line(data, n, l);
                break;
            }
        for (size_t l = a; l < n; l = next_line(data, n, l))
            if (is_gutenberg_end(data + l, line_end(data, n, l) - l)) {
                b = l;
                break;
            }
        rc = add_doc(c, data + a, b - a);
    }
    free(conv);
    return rc;
}

/* ======================================================================== */
/* files and folders                                                         */
/* ======================================================================== */

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        if (len == cap) {
            uint8_t *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = len;
    return buf;
}

/* is name (a file in the folder of manifest) marked Latin-1 in manifest? */
static int manifest_latin1(const char *manifest, size_t mlen, const char *rel)
{
    size_t rl = strlen(rel);
    for (size_t i = 0; i < mlen;) {
        const char *e = memchr(manifest + i, '\n', mlen - i);
        size_t le = e ? (size_t)(e - manifest) : mlen;
        const char *line = manifest + i;
        size_t ll = le - i;
        if (ll > rl && memcmp(line, rel, rl) == 0 && line[rl] == '\t') {
            for (size_t k = 0; k + 6 <= ll; k++)
                if (starts_with_ci((const uint8_t *)line + k, ll - k, "latin-1")) return 1;
            return 0;
        }
        i = le + 1;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct {
    const char *manifest; /* the MANIFEST.tsv of the folder given, or NULL */
    size_t mlen;
    size_t root_len;      /* the folder given: paths below are relative to it */
    char *err;
    size_t errlen;
} walk_ctx;

static int add_file(lmz_corpus *c, const char *path, const walk_ctx *w)
{
    size_t n;
    uint8_t *data = read_all(path, &n);
    if (!data) return errf(w->err, w->errlen, "%s: %s", path, strerror(errno ? errno : EIO));
    int latin1 = w->manifest && strlen(path) > w->root_len + 1 &&
                 manifest_latin1(w->manifest, w->mlen, path + w->root_len + 1);
    int rc = lmz_corpus_add(c, data, n, latin1);
    free(data);
    return rc ? errf(w->err, w->errlen, "%s", "out of memory") : 0;
}

static int walk(lmz_corpus *c, const char *dir, const walk_ctx *w, int depth)
{
    if (depth > 32) return errf(w->err, w->errlen, "%s: folders nested too deep", dir);
    DIR *d = opendir(dir);
    if (!d) return errf(w->err, w->errlen, "%s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) {
                rc = -1;
                break;
            }
            names = p;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        if (!(names[n] = malloc(len))) {
            rc = -1;
            break;
        }
        snprintf(names[n++], len, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (rc) errf(w->err, w->errlen, "%s", "out of memory");
    if (names) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct stat st;
        if (stat(names[i], &st) != 0) continue;
        size_t len = strlen(names[i]);
        if (S_ISDIR(st.st_mode)) rc = walk(c, names[i], w, depth + 1);
        else if (S_ISREG(st.st_mode) && len > 4 && strcmp(names[i] + len - 4, ".txt") == 0)
            rc = add_file(c, names[i], w);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

int lmz_corpus_load(const char *const *paths, size_t n, lmz_corpus *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0) {
            lmz_corpus_free(c);
            return errf(err, errlen, "%s: %s", paths[i], strerror(errno));
        }
        walk_ctx w = {NULL, 0, strlen(paths[i]), err, errlen};
        int rc;
        if (S_ISDIR(st.st_mode)) {
            char mpath[4096];
            snprintf(mpath, sizeof mpath, "%s/MANIFEST.tsv", paths[i]);
            size_t ml = 0;
            char *man = (char *)read_all(mpath, &ml);
            w.manifest = man;
            w.mlen = ml;
            rc = walk(c, paths[i], &w, 0);
            free(man);
        } else {
            rc = add_file(c, paths[i], &w);
        }
        if (rc) {
            lmz_corpus_free(c);
            return -1;
        }
    }
    if (c->n_docs == 0) {
        lmz_corpus_free(c);
        return errf(err, errlen, "%s", "no text found in the paths given");
    }
    return 0;
}
