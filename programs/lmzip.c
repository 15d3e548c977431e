/*
 * lmzip.c — the command-line program. Argument parsing, files and messages;
 * all compression is in the library (include/lmzip.h).
 *
 * Conventions follow zstd: `lmzip FILE` writes FILE.lmz and keeps FILE,
 * `-d` decompresses, no file or `-` means stdin to stdout. Output is written
 * to a temporary file beside the target and renamed only when complete, so
 * no partial output is ever left behind. Exit status 0 on success, 1 on error.
 */
#define _GNU_SOURCE /* renameat2 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "explain.h"
#include "lmzip.h"

#define SUFFIX ".lmz"

typedef enum { MODE_COMPRESS, MODE_DECOMPRESS, MODE_TEST, MODE_LIST, MODE_BENCH, MODE_EXPLAIN } mode_t_;

typedef struct {
    mode_t_ mode;
    int to_stdout, force, remove_input, verbose, quiet;
    const char *lm_opt;     /* the first option given that only a model stream uses (no dashes) */
    const char *comp_opt;   /* the first option given that only compression uses (no dashes) */
    const char *out_path;
    const char *model_arg;  /* -m as given; NULL: the default */
    char model_path[PATH_MAX];
    lmz_params params;
    lmz_model_ref *ref;     /* the model, loaded once for the whole run */
    uint64_t memlimit;      /* --memlimit; 0: the library's default */
    int level;              /* -1 .. -9; 0: none given (the default level, 6) */
    int bench_lo, bench_hi; /* -b#, -e#: the levels -b runs (0: -N's, or 6) */
    int explain_tsv;        /* --explain=tsv (else the page) */
    uint64_t explain_max;   /* --explain-max: bytes of text the page shows */
    uint64_t given;         /* the table's settings given on the command line (bit: header id) */
    mode_t umask_bits;
} options;

static const char *prog = "lmzip";

static void msg(const options *o, const char *fmt, ...)
{
    if (o->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

/* One-line error naming the file and the problem. */
static void fail(const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: %s: ", prog, name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* s with every byte outside printable ASCII (and the backslash) as \xHH,
 * so a name read from a file cannot reach the terminal raw. */
static const char *esc(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 5 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c < 0x7F && c != '\\') out[o++] = (char)c;
        else o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    out[o] = 0;
    return out;
}

/* Standard output flushed and closed: a write error (a full disk, a closed
 * pipe) is an error of the run. @return the exit status. */
static int close_stdout(int status)
{
    if (fflush(stdout) != 0 || ferror(stdout) || fclose(stdout) != 0) {
        fprintf(stderr, "%s: (stdout): write error: %s\n", prog, strerror(errno));
        return 1;
    }
    return status;
}

/* a setting's bounds as -h and the messages write them */
static const char *bounds(const lmz_setting *st, char *buf, size_t cap)
{
    if (!strcmp(st->name, "frame-size")) snprintf(buf, cap, "1K..1G");
    else snprintf(buf, cap, "%.15g..%.15g", st->min, st->max);
    return buf;
}

/* text wrapped to the right of column 24 */
static void wrapped(FILE *f, const char *text)
{
    size_t col = 24;
    while (*text) {
        size_t n = strcspn(text, " ");
        if (col + n + 1 > 79 && col > 24) {
            fprintf(f, "\n%24s", "");
            col = 24;
        }
        fprintf(f, "%s%.*s", col > 24 ? " " : "", (int)n, text);
        col += n + (col > 24);
        text += n;
        while (*text == ' ') text++;
    }
    fputc('\n', f);
}

/* the settings a stream records, from the library's table */
static void settings_help(FILE *f)
{
    size_t n;
    const lmz_setting *t = lmz_settings(&n);
    fprintf(f, "Settings recorded in the file (-B is --frame-size; the others after\n"
               "--table-bits are for language-model streams):\n");
    for (size_t i = 0; i < n; i++) {
        char opt[40], b[64], text[512];
        snprintf(opt, sizeof opt, "--%s=%s", t[i].name,
                 !strcmp(t[i].name, "parts") ? "LIST" : !strcmp(t[i].name, "mixer") ? "prob|log" : "N");
        if (!strcmp(t[i].name, "frame-size") || !strcmp(t[i].name, "group") || !strcmp(t[i].name, "parts") ||
            !strcmp(t[i].name, "mixer"))
            snprintf(text, sizeof text, "%s", t[i].help);
        else
            snprintf(text, sizeof text, "%s (%s, default %.15g)", t[i].help, bounds(&t[i], b, sizeof b), t[i].def);
        fprintf(f, "      %-17s", opt);
        if (strlen(opt) > 17) fprintf(f, "\n%24s", "");
        else fputc(' ', f);
        wrapped(f, text);
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: lmzip [OPTION]... [FILE]...\n"
            "Compress or decompress FILEs with a model-driven range coder (.lmz).\n"
            "With no FILE, or when FILE is -, read standard input.\n\n"
            "  -z, --compress        compress (default)\n"
            "  -1 .. -9              speed against ratio (see the table below); -6 is\n"
            "                        the default; --fast = -1, --best = -9\n"
            "  -d, --decompress      decompress\n"
            "  -t, --test            test the integrity of compressed files\n"
            "  -l, --list            list frames, sizes, ratio and bits per byte\n"
            "      --explain[=tsv]   where the bits go: compress each FILE in memory and\n"
            "                        write FILE.html (or -o), a page with every token\n"
            "                        coloured by its cost, its figures on hover, a summary\n"
            "                        and a plot of bits per byte; tsv: the same pieces as a\n"
            "                        table on standard output\n"
            "      --explain-max=SIZE  text the page shows in full (default 256K)\n"
            "  -b, -b#  [-e#]        benchmark: compress each FILE in memory, decompress,\n"
            "                        check; size, ratio, bpb and speeds (best of the runs\n"
            "                        that fit in a second) at the level given, or levels\n"
            "                        # to -e# (one line each, and a total)\n"
            "  -c, --stdout          write to standard output, keep input files\n"
            "  -o FILE               write the (single) result to FILE\n"
            "  -k, --keep            keep input files (default)\n"
            "      --rm              remove input files after success\n"
            "  -f, --force           overwrite existing output, write to a terminal\n"
            "  -T N, --threads=N     worker threads, 0 = all available cores (default 1);\n"
            "                        at most the cores this process may use\n"
            "      --force-threads   use -T's count even beyond the available cores\n"
            "      --memlimit=SIZE   memory decompression may use (K/M/G suffixes;\n"
            "                        default half the memory available, 0 = that\n"
            "                        default, max = no limit)\n"
            "  -m MODEL, --model=MODEL  a GGUF model file (llama or dsrn), a model name\n"
            "                        found in the models folders, or 'none' (the built-in\n"
            "                        byte model); default: the folders' 'default' model,\n"
            "                        else none. Decompression finds the model a file\n"
            "                        names in the folders unless -m is given\n"
            "      --profile=NAME    det-f32-v4 (default), det-i8-v1 (integer products), or det-f32-v3\n"
            "      --model-always    keep the model's coding of text even where the byte\n"
            "                        model alone codes a group smaller (to measure a model)\n"
            "      --format-version=N  2 (default): the short form; 1: the form lmzip\n"
            "                        0.1 to 0.3 read (about 100 bytes more a stream)\n");
    settings_help(f);
    fprintf(f,
            "  -v, --verbose         more messages (-l: every frame)\n"
            "  -q, --quiet           no messages but errors\n"
            "  -h, --help            this help\n"
            "  -V, --version         version\n\n"
            "Levels: -1 -2 -3 the byte model alone (MB/s; 2^18, 2^20, 2^22 table\n"
            "slots), -4 -5 the default model skipping it where the n-gram and match\n"
            "models are sure (--skip 3, 1.5), -6 the default model, -7 -8 with\n"
            "frames of 1M and 4M, -9 the 'max' model (else 'default') with 4M frames.\n"
            "-m and the settings above win over a level's choices. $LMZIP_LEVEL sets\n"
            "the level when no option does.\n\n"
            "Models folders: $LMZIP_MODELS (':'-separated), then models/ beside or\n"
            "above the program, then %s.\n"
            "Exit status: 0 on success, 1 on any error.\n",
            lmz_models_dir());
}

/* ======================================================================== */
/* I/O callbacks over stdio                                                  */
/* ======================================================================== */

typedef struct {
    FILE *in, *out;
    const options *opt;
    const char *name;
    int show_progress; /* 1: a line redrawn on the terminal, 2: lines (-v, not a terminal) */
    int shown;         /* a line was drawn */
    double t0, t_shown;
    uint64_t in_size; /* for ETA; 0 if unknown */
    uint64_t in_done, out_done;   /* as last reported by the library */
    uint64_t bytes_read, bytes_written;
} io_ctx;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long cb_read(void *o, void *buf, size_t n)
{
    io_ctx *c = o;
    size_t k = fread(buf, 1, n, c->in);
    if (k == 0 && ferror(c->in)) return -1;
    c->bytes_read += k;
    return (long)k;
}

static int cb_write(void *o, const void *buf, size_t n)
{
    io_ctx *c = o;
    c->bytes_written += n;
    if (!c->out) return 0; /* -t: decode and discard */
    return fwrite(buf, 1, n, c->out) == n ? 0 : -1;
}

/* sizes and speeds as people read them: 812 B, 45.3 KB, 1.21 MB, 3.40 GB */
static const char *size_str(double b, char *buf, size_t n)
{
    if (b < 1000) snprintf(buf, n, "%.0f B", b);
    else if (b < 1e6) snprintf(buf, n, "%.1f KB", b / 1e3);
    else if (b < 1e9) snprintf(buf, n, "%.2f MB", b / 1e6);
    else snprintf(buf, n, "%.2f GB", b / 1e9);
    return buf;
}

/* The progress line: on a terminal (stderr), redrawn in place at most five
 * times a second once a file has taken a second; with -v and stderr not a
 * terminal, a line every five seconds. Bytes done, the size so far and its
 * bits per byte, speed, and the time left when the input's size is known. */
static void cb_progress(void *o, uint64_t in, uint64_t out)
{
    io_ctx *c = o;
    c->in_done = in;
    c->out_done = out;
    if (!c->show_progress) return;
    double t = now_s(), dt = t - c->t0;
    if (dt < 1.0 || t - c->t_shown < (c->show_progress == 1 ? 0.2 : 5.0)) return;
    c->t_shown = t;
    int compressing = c->opt->mode == MODE_COMPRESS;
    uint64_t raw = compressing ? in : out, packed = compressing ? out : in;
    char a[32], b[32], r[32], line[256];
    int len = snprintf(line, sizeof line, "%s: ", c->name);
    if (c->in_size && in <= c->in_size)
        len += snprintf(line + len, sizeof line - (size_t)len, "%3.0f%% ", 100.0 * (double)in / (double)c->in_size);
    len += snprintf(line + len, sizeof line - (size_t)len, "%s %s %s", size_str((double)raw, a, sizeof a),
                    compressing ? "->" : "<-", size_str((double)packed, b, sizeof b));
    if (raw) len += snprintf(line + len, sizeof line - (size_t)len, " (%.3f bpb)", 8.0 * (double)packed / (double)raw);
    len += snprintf(line + len, sizeof line - (size_t)len, "  %s/s", size_str((double)raw / dt, r, sizeof r));
    if (c->in_size && in > 0 && in < c->in_size) {
        double left = dt * (double)(c->in_size - in) / (double)in;
        if (left < 3600) snprintf(line + len, sizeof line - (size_t)len, "  %d:%02d left", (int)left / 60, (int)left % 60);
        else snprintf(line + len, sizeof line - (size_t)len, "  %dh%02d left", (int)(left / 3600), (int)left / 60 % 60);
    }
    if (c->show_progress == 1) fprintf(stderr, "\r%-79.79s", line);
    else fprintf(stderr, "%s\n", line);
    c->shown = 1;
    fflush(stderr);
}

/* ======================================================================== */
/* one file                                                                  */
/* ======================================================================== */

static int has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);
    return n > k && strcmp(s + n - k, suf) == 0;
}

/* The temporary output being written, removed if a signal stops us. */
static char *volatile pending_tmp;

static void on_signal(int sig)
{
    char *p = pending_tmp;
    if (p) unlink(p); /* async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void catch_signals(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaction(sigs[i], &sa, NULL);
}

/* Open a temporary file beside `target`: TARGET.tmp-XXXXXX, the name's last
 * part cut short so that it fits NAME_MAX. @return FILE or NULL (errno set). */
static FILE *open_temp(const char *target, char **tmp_path)
{
    size_t n = strlen(target);
    const char *slash = strrchr(target, '/');
    size_t dir = slash ? (size_t)(slash - target) + 1 : 0, base = n - dir;
    if (base + 11 > NAME_MAX) base = NAME_MAX - 11;
    char *t = malloc(dir + base + 12);
    if (!t) return NULL;
    memcpy(t, target, dir + base);
    memcpy(t + dir + base, ".tmp-XXXXXX", 12);
    int fd = mkstemp(t);
    if (fd < 0) {
        free(t);
        return NULL;
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(t);
        free(t);
        return NULL;
    }
    *tmp_path = t;
    return f;
}

/* Move the finished temporary file to target. Without force, a file that
 * appeared at target meanwhile is never replaced (RENAME_NOREPLACE, or a
 * hard link where the file system lacks it). @return 0, or -1 (errno). */
static int install(const char *tmp, const char *target, int force)
{
    if (force) return rename(tmp, target);
#ifdef RENAME_NOREPLACE
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, target, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) return -1;
#endif
    if (link(tmp, target) == 0) return unlink(tmp), 0;
    if (errno == EEXIST) return -1;
    struct stat st; /* no hard links either (FAT): the best there is */
    if (lstat(target, &st) == 0) {
        errno = EEXIST;
        return -1;
    }
    return rename(tmp, target);
}

/* ======================================================================== */
/* finding models                                                            */
/* ======================================================================== */

static int find_in_folders(const char *name, char *out, size_t cap)
{
    return lmz_model_find(name, out, cap) == LMZ_OK;
}

/* Models that decompression found in the folders, each loaded once a run. */
#define MAX_FOUND 8
static struct {
    char name[64];
    lmz_model_ref *ref; /* NULL: found but cannot be loaded (said once) */
} found[MAX_FOUND];
static int n_found;

static const lmz_model_ref *find_ref_cb(void *opaque, const char *name)
{
    (void)opaque;
    for (int i = 0; i < n_found; i++)
        if (!strcmp(found[i].name, name)) return found[i].ref;
    char path[PATH_MAX], err[512], e2[1100];
    if (!find_in_folders(name, path, sizeof path)) return NULL;
    lmz_model_ref *r = NULL;
    if (lmz_model_load(path, &r, err, sizeof err) != LMZ_OK)
        fprintf(stderr, "%s: %s\n", prog, esc(err, e2, sizeof e2));
    if (n_found == MAX_FOUND) { /* forget the oldest */
        lmz_model_unload(found[0].ref);
        memmove(found, found + 1, sizeof found[0] * (MAX_FOUND - 1));
        n_found--;
    }
    snprintf(found[n_found].name, sizeof found[n_found].name, "%s", name);
    found[n_found++].ref = r;
    return r;
}

/* -m as given: none, a file, or a name in the folders; no -m: the folders'
 * default model, else none. @return 0, or -1 after a message. */
static int resolve_model(options *o)
{
    const char *m = o->model_arg;
    if (!m) {
        o->params.model = find_in_folders("default", o->model_path, sizeof o->model_path) ? o->model_path : "none";
        return 0;
    }
    if (!strcmp(m, "none")) {
        o->params.model = "none";
        return 0;
    }
    char e[PATH_MAX * 4 + 16];
    struct stat st;
    int pathlike = strchr(m, '/') || has_suffix(m, ".gguf"); /* a file, never a name to look up */
    esc(m, e, sizeof e);
    if (stat(m, &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
            fprintf(stderr, "%s: %s: the model is not a regular file\n", prog, e);
            return -1;
        }
        snprintf(o->model_path, sizeof o->model_path, "%s", m);
    } else if (pathlike || !find_in_folders(m, o->model_path, sizeof o->model_path)) {
        if (pathlike)
            fprintf(stderr, "%s: %s: %s\n", prog, e, strerror(ENOENT));
        else
            fprintf(stderr, "%s: model '%s' not found: not a file, and no %s.gguf in the models folders "
                            "($LMZIP_MODELS, models/ beside the program, %s)\n",
                    prog, e, e, lmz_models_dir());
        return -1;
    }
    o->params.model = o->model_path;
    return 0;
}

/* A stream needs what this build lacks: name it (the header is read again
 * from the file; for stdin only the code is known). */
static void explain_unsupported(const char *name, const char *path, int e, const char *given)
{
    uint8_t head[512];
    size_t n = 0;
    lmz_stream_info si;
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (f) {
        n = fread(head, 1, sizeof head, f);
        fclose(f);
    }
    if (n && lmz_peek_header(head, n, &si) == LMZ_OK) {
        char em[300], ep[300], eg[PATH_MAX * 4 + 16];
        esc(si.model, em, sizeof em);
        esc(si.profile, ep, sizeof ep);
        if (e == LMZ_ERROR_MODEL) {
            char id[17];
            for (int i = 0; i < 8; i++) snprintf(id + 2 * i, 3, "%02x", si.model_hash[i]);
            if (given)
                fail(name, "needs model '%s' (identity %s...), and %s is another model", em, id,
                     esc(given, eg, sizeof eg));
            else
                fail(name, "needs model '%s' (identity %s...): give its file with -m, or put %s.gguf in a "
                           "models folder",
                     em, id, em);
        } else if (e == LMZ_ERROR_PROFILE)
            fail(name, "needs arithmetic profile '%s', which this build does not have", ep);
        else
            fail(name, "uses a setting this version of lmzip does not know (made by a newer version?)");
        return;
    }
    fail(name, "%s", lmz_error_name(e));
}

/* list-mode callbacks */
typedef struct {
    const options *opt;
    const char *name;
    uint64_t frames, orig, comp;
    unsigned format; /* the stream's format version: its frames' checksums are 64 or 32 bits */
    char model[300]; /* escaped */
} list_ctx;

static void li_stream(void *o, const lmz_stream_info *s)
{
    list_ctx *l = o;
    char ep[300];
    esc(s->model, l->model, sizeof l->model);
    l->format = s->format_version;
    if (l->opt->verbose)
        printf("%s: stream %u: format %u, profile %s, model %s, frame size %u, group %u, table bits %u\n",
               l->name, s->stream_index, s->format_version, esc(s->profile, ep, sizeof ep), l->model,
               s->frame_size, s->group, s->table_bits);
}

static void li_frame(void *o, const lmz_frame_info *f)
{
    list_ctx *l = o;
    static const char *const how[5] = {"stored", "bytes", "lm", "runs", "lzma"}; /* the frame's method */
    if (l->opt->verbose)
        printf("  frame %4llu  %-7s %12llu -> %12llu  %.4f bpb  xxh64 %0*llx\n",
               (unsigned long long)f->frame_index, f->method < 5 ? how[f->method] : "?",
               (unsigned long long)f->orig_size, (unsigned long long)f->comp_size,
               8.0 * (double)f->comp_size / (double)f->orig_size, l->format == 1 ? 16 : 8,
               (unsigned long long)f->checksum);
}

static void li_end(void *o, unsigned si, uint64_t frames, uint64_t orig, uint64_t comp)
{
    list_ctx *l = o;
    (void)si;
    l->frames += frames;
    l->orig += orig;
    l->comp += comp;
}

/* "1.5 GiB" and the like, for messages */
static const char *human(uint64_t v, char *buf, size_t cap)
{
    static const char *const unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double x = (double)v;
    int u = 0;
    while (x >= 1024 && u < 4) x /= 1024, u++;
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", x, unit[u]);
    return buf;
}

static int process(const options *o, const char *path, int *listed_header)
{
    int from_stdin = strcmp(path, "-") == 0;
    const char *name = from_stdin ? "(stdin)" : path;
    struct stat st;
    FILE *in = stdin;
    int rc = 1;

    if (!from_stdin) {
        if (stat(path, &st) != 0) {
            fail(name, "%s", strerror(errno));
            return 1;
        }
        if (S_ISDIR(st.st_mode)) {
            fail(name, "is a directory");
            return 1;
        }
        if (!S_ISREG(st.st_mode) && !o->force) { /* as gzip: devices and FIFOs only when asked */
            fail(name, "is not a regular file -- ignored (use -f to read it)");
            return 1;
        }
        in = fopen(path, "rb");
        if (!in) {
            fail(name, "cannot open: %s", strerror(errno));
            return 1;
        }
    }

    io_ctx c;
    memset(&c, 0, sizeof c);
    c.in = in;
    c.opt = o;
    c.name = name;
    c.t0 = now_s();
    if (!from_stdin && S_ISREG(st.st_mode)) c.in_size = (uint64_t)st.st_size;

    if (o->mode == MODE_LIST) {
        list_ctx l;
        memset(&l, 0, sizeof l);
        l.opt = o;
        l.name = name;
        lmz_io io = {&c, cb_read, NULL, NULL};
        lmz_list_callbacks cb = {li_stream, li_frame, li_end, &l};
        int e = lmz_list_stream(&io, &cb);
        if (e) {
            fail(name, "%s", lmz_error_name(e));
        } else {
            if (!*listed_header) {
                printf("%8s %14s %14s %8s %8s  %-8s %s\n", "Frames", "Compressed", "Uncompressed",
                       "Ratio", "bpb", "Model", "Filename");
                *listed_header = 1;
            }
            printf("%8llu %14llu %14llu %8.3f %8.4f  %-8s %s\n", (unsigned long long)l.frames,
                   (unsigned long long)l.comp, (unsigned long long)l.orig,
                   l.comp ? (double)l.orig / (double)l.comp : 0.0,
                   l.orig ? 8.0 * (double)l.comp / (double)l.orig : 0.0, l.model, name);
            rc = 0;
        }
        if (!from_stdin) fclose(in);
        return rc;
    }

    /* choose the output: stdout, a special file written in place (a device,
     * a FIFO: never renamed over), or a temporary file renamed when done */
    char *out_path = NULL, *tmp_path = NULL;
    FILE *out = NULL;
    int special = 0;
    int use_stdout = o->to_stdout || (from_stdin && !o->out_path);
    if (o->mode == MODE_TEST) {
        out = NULL;
    } else if (use_stdout) {
        if (o->mode == MODE_COMPRESS && isatty(STDOUT_FILENO) && !o->force) {
            fail(name, "will not write compressed data to a terminal (use -f to force)");
            goto done;
        }
        out = stdout;
    } else {
        if (o->out_path) {
            out_path = strdup(o->out_path);
        } else if (o->mode == MODE_COMPRESS) {
            if (has_suffix(path, SUFFIX)) {
                fail(name, "already has %s suffix -- unchanged", SUFFIX);
                goto done;
            }
            out_path = malloc(strlen(path) + sizeof SUFFIX);
            if (out_path) sprintf(out_path, "%s%s", path, SUFFIX);
        } else {
            if (!has_suffix(path, SUFFIX)) {
                fail(name, "unknown suffix (expected %s); use -o or -c", SUFFIX);
                goto done;
            }
            out_path = strdup(path);
            if (out_path) out_path[strlen(out_path) - strlen(SUFFIX)] = 0;
        }
        if (!out_path) {
            fail(name, "out of memory");
            goto done;
        }
        struct stat ost;
        if (stat(out_path, &ost) == 0) {
            if (!from_stdin && ost.st_dev == st.st_dev && ost.st_ino == st.st_ino) {
                fail(name, "input and output are the same file");
                goto done;
            }
            if (S_ISDIR(ost.st_mode)) {
                fail(out_path, "is a directory");
                goto done;
            }
            if (S_ISREG(ost.st_mode) && !o->force) {
                fail(out_path, "already exists (use -f to overwrite)");
                goto done;
            }
            if (S_ISBLK(ost.st_mode) && !o->force) {
                fail(out_path, "is a block device (use -f to write into it)");
                goto done;
            }
            special = !S_ISREG(ost.st_mode);
        }
        if (special) { /* /dev/null, a FIFO, a terminal: written as it is */
            int fd = open(out_path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
            out = fd >= 0 ? fdopen(fd, "wb") : NULL;
            if (!out) {
                if (fd >= 0) close(fd);
                fail(out_path, "cannot open: %s", strerror(errno));
                goto done;
            }
        } else {
            out = open_temp(out_path, &tmp_path);
            pending_tmp = tmp_path;
            if (!out) {
                fail(out_path, "cannot create: %s", strerror(errno));
                goto done;
            }
        }
    }
    c.out = out;
    c.show_progress = o->quiet ? 0 : isatty(STDERR_FILENO) ? 1 : o->verbose ? 2 : 0;

    lmz_io io = {&c, cb_read, cb_write, cb_progress};
    int e;
    uint64_t needed = 0;
    unsigned at_once = 0;
    lmz_stats stats;
    memset(&stats, 0, sizeof stats);
    if (o->mode == MODE_COMPRESS) {
        lmz_params p = o->params;
        if (o->verbose) p.stats = &stats; /* the statistics cost a little time */
        p.size_hint = c.in_size ? c.in_size : (from_stdin ? LMZ_SIZE_UNKNOWN : 0);
        if (!from_stdin && !S_ISREG(st.st_mode)) p.size_hint = LMZ_SIZE_UNKNOWN;
        p.model_ref = o->ref;
        e = lmz_compress_stream(&p, &io);
    } else {
        /* -m names the model; else the folders are searched for the one a
         * stream names */
        lmz_dparams dp;
        memset(&dp, 0, sizeof dp);
        dp.threads = o->params.threads;
        dp.force_threads = o->params.force_threads;
        dp.model_ref = o->ref;
        if (!o->ref) dp.find_ref = find_ref_cb;
        dp.memlimit = o->memlimit;
        dp.mem_needed = &needed;
        dp.frames_at_once = &at_once;
        e = lmz_decompress_stream_ex(&dp, &io);
    }
    if (c.show_progress == 1 && c.shown) fprintf(stderr, "\r%*s\r", 79, "");
    if (!e && ferror(in)) e = LMZ_ERROR_READ;
    if (e) {
        if (e == LMZ_ERROR_READ)
            fail(name, "read error: %s", strerror(errno));
        else if (e == LMZ_ERROR_WRITE)
            fail(out_path ? out_path : "(stdout)", "write error: %s", strerror(errno));
        else if (e == LMZ_ERROR_MEMLIMIT) {
            char h1[32], h2[32];
            fail(name, "decoding needs %s of memory, more than the limit of %s (--memlimit=SIZE raises it)",
                 human(needed, h1, sizeof h1), human(o->memlimit ? o->memlimit : lmz_memlimit_default(), h2, sizeof h2));
        } else if (e == LMZ_ERROR_MODEL || e == LMZ_ERROR_PROFILE || e == LMZ_ERROR_SETTING)
            explain_unsupported(name, from_stdin ? NULL : path, e, o->ref ? o->params.model : NULL);
        else
            fail(name, "%s", lmz_error_name(e));
        goto done;
    }
    if (out && out != stdout) {
        if (tmp_path) {
            if (!from_stdin) fchmod(fileno(out), st.st_mode & 07777);
            else fchmod(fileno(out), 0666 & ~o->umask_bits);
        }
        if (fflush(out) != 0 || (tmp_path && fsync(fileno(out)) != 0)) {
            fail(out_path, "write error: %s", strerror(errno));
            goto done;
        }
        int ce = fclose(out);
        out = NULL;
        if (ce != 0) {
            fail(out_path, "write error: %s", strerror(errno));
            goto done;
        }
        if (tmp_path) {
            if (!from_stdin) {
                struct timespec times[2] = {st.st_atim, st.st_mtim};
                utimensat(AT_FDCWD, tmp_path, times, 0);
            }
            if (install(tmp_path, out_path, o->force) != 0) {
                if (errno == EEXIST)
                    fail(out_path, "appeared while lmzip ran: not replaced (use -f to overwrite)");
                else
                    fail(out_path, "cannot rename temporary file: %s", strerror(errno));
                goto done;
            }
            pending_tmp = NULL;
            free(tmp_path);
            tmp_path = NULL;
        }
    } else if (out == stdout) {
        if (fflush(stdout) != 0) {
            fail("(stdout)", "write error: %s", strerror(errno));
            goto done;
        }
    }
    rc = 0;

    int compressing = o->mode == MODE_COMPRESS;
    uint64_t raw = compressing ? c.bytes_read : c.bytes_written;
    uint64_t packed = compressing ? c.bytes_written : c.bytes_read;
    double bpb = raw ? 8.0 * (double)packed / (double)raw : 0.0;
    if (!compressing && o->verbose > 1) msg(o, "%s: up to %u frames decoded side by side\n", name, at_once);
    if (o->mode == MODE_TEST) {
        if (o->verbose) msg(o, "%s: OK (%llu bytes, %.4f bpb)\n", name, (unsigned long long)raw, bpb);
    } else if (o->verbose || (!o->quiet && isatty(STDERR_FILENO))) {
        double dt = now_s() - c.t0;
        char sp[32];
        msg(o, "%s: %llu -> %llu bytes, %.4f bpb, %s/s%s%s\n", name,
            (unsigned long long)(compressing ? raw : packed),
            (unsigned long long)(compressing ? packed : raw), bpb,
            size_str(dt > 0 ? (double)raw / dt : 0.0, sp, sizeof sp), out_path ? " -> " : "", out_path ? out_path : "");
        if (compressing && o->verbose && stats.tokens)
            msg(o,
                "%s: text %llu bytes, %llu tokens (%llu without the model), %.4f bits/token, %.4f bpb (coded %llu "
                "bytes, %+.4f %% over the ensemble's cross-entropy); binary %llu -> %llu bytes\n",
                name, (unsigned long long)stats.text_bytes, (unsigned long long)stats.tokens,
                (unsigned long long)stats.skipped,
                stats.text_bits / (double)stats.tokens,
                stats.text_bytes ? stats.text_bits / (double)stats.text_bytes : 0.0,
                (unsigned long long)stats.text_coded,
                stats.ideal_bits > 0 ? 100.0 * (8.0 * (double)stats.text_coded / stats.ideal_bits - 1.0) : 0.0,
                (unsigned long long)stats.binary_bytes, (unsigned long long)stats.binary_coded);
    }
    if (o->remove_input && !from_stdin && o->mode != MODE_TEST && out_path) {
        if (special) {
            msg(o, "%s: kept: the output %s is not a regular file\n", name, out_path);
        } else if (unlink(path) != 0) {
            fail(name, "cannot remove input: %s", strerror(errno));
            rc = 1;
        }
    }

done:
    if (out && out != stdout) fclose(out);
    if (tmp_path) {
        unlink(tmp_path);
        pending_tmp = NULL;
        free(tmp_path);
    }
    free(out_path);
    if (!from_stdin) fclose(in);
    return rc;
}

/* ======================================================================== */
/* arguments                                                                 */
/* ======================================================================== */

static int parse_size(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s) return -1;
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1024, end++;
    else if (*end == 'M' || *end == 'm') mul = 1024 * 1024, end++;
    else if (*end == 'G' || *end == 'g') mul = 1024 * 1024 * 1024, end++;
    if (*end == 'i' && mul > 1) end++;
    if (*end == 'B' && mul > 1) end++;
    if (*end) return -1;
    if (x > UINT64_MAX / mul) return -1;
    *v = x * mul;
    return 0;
}

static int parse_uint(const char *s, unsigned max, unsigned *v)
{
    char *end;
    errno = 0;
    unsigned long x = strtoul(s, &end, 10);
    if (errno || end == s || *end || x > max || s[0] == '-') return -1;
    *v = (unsigned)x;
    return 0;
}

/* "model,ngram,bias,match,head,ngtop,refine,cache" or "all" into LMZ_PART_* bits */
static int parse_parts(const char *s, unsigned *out)
{
    if (!strcmp(s, "all")) {
        *out = LMZ_PART_MODEL | LMZ_PART_NGRAM | LMZ_PART_BIAS | LMZ_PART_MATCH | LMZ_PART_HEAD | LMZ_PART_NGTOP |
               LMZ_PART_REFINE | LMZ_PART_CACHE;
        return 0;
    }
    static const char *const names[8] = {"model", "ngram", "bias", "match", "head", "ngtop", "refine", "cache"};
    unsigned bits = 0;
    while (*s) {
        size_t n = strcspn(s, ",");
        int k = -1;
        for (int i = 0; i < 8; i++)
            if (strlen(names[i]) == n && !strncmp(s, names[i], n)) k = i;
        if (k < 0) return -1;
        bits |= 1u << k;
        s += n;
        if (*s == ',') s++;
    }
    if (!bits) return -1;
    *out = bits;
    return 0;
}

/* -V: @return the exit status */
static int version(void)
{
    printf("lmzip %s (formats 1 and 2, profiles int-v1 det-f32-v1 det-f32-v2 det-f32-v3 det-f32-v4 det-i8-v1)\n",
           LMZ_VERSION_STRING);
    return close_stdout(0);
}

/* a finite number, the whole string */
static int parse_number(const char *s, double *x)
{
    char *end;
    errno = 0;
    *x = strtod(s, &end);
    return errno || end == s || *end || !(*x - *x == 0) ? -1 : 0;
}

/* the setting called name[0..len) in the library's table, or NULL */
static const lmz_setting *setting_named(const char *name, size_t len)
{
    size_t n;
    const lmz_setting *t = lmz_settings(&n);
    for (size_t i = 0; i < n; i++)
        if (strlen(t[i].name) == len && !strncmp(t[i].name, name, len)) return &t[i];
    return NULL;
}

/* --NAME=v for a setting of the table: parsed (a size with K/M/G for
 * frame-size, a number otherwise), checked against the table's bounds by
 * the library. @return 0, or -1 after a message. */
static int set_option(options *o, const lmz_setting *st, const char *v)
{
    double x = 0;
    uint64_t sz;
    int ok = !strcmp(st->name, "frame-size") ? parse_size(v, &sz) == 0 && (x = (double)sz) > 0 : parse_number(v, &x) == 0;
    if (ok && !strcmp(st->name, "group") && x == 0) ok = 0; /* automatic: leave it out */
    if (!ok || lmz_params_set(&o->params, st->name, x) != LMZ_OK) {
        char b[64];
        fprintf(stderr, "%s: bad --%s (%s)\n", prog, st->name, bounds(st, b, sizeof b));
        return -1;
    }
    if (!o->comp_opt) o->comp_opt = st->name;
    if (st->model_only && !o->lm_opt) o->lm_opt = st->name;
    if (st->id < 64) o->given |= 1ull << st->id;
    return 0;
}

/* A level's model, unless -m was given (before the model is resolved). */
static void level_model(options *o)
{
    const char *model = "default";
    char path[PATH_MAX];
    if (o->model_arg) return;
    lmz_level(o->level, &model, NULL, NULL);
    if (!strcmp(model, "max") && find_in_folders("max", path, sizeof path)) o->model_arg = "max";
    else if (!strcmp(model, "none")) o->model_arg = "none";
    /* "default": left to resolve_model (the default model, else none) */
}

/* A level's setting, unless given on the command line, and a model setting
 * only with a model (after the model is resolved). */
static void level_setting(options *o, int with_model)
{
    const char *name = NULL;
    double value = 0;
    lmz_level(o->level, NULL, &name, &value);
    const lmz_setting *st = name ? setting_named(name, strlen(name)) : NULL;
    if (!st || (st->id < 64 && (o->given >> st->id & 1)) || (st->model_only && !with_model)) return;
    lmz_params_set(&o->params, st->name, value);
}

/* ======================================================================== */
/* benchmark mode (-b)                                                       */
/* ======================================================================== */

/* all of path ("-": standard input) into *out (malloc'd). @return 0, or -1 (errno) */
static int read_whole(const char *path, uint8_t **out, size_t *n)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return -1;
    uint8_t *d = NULL;
    size_t len = 0, cap = 0, k;
    int err = 0;
    do {
        if (cap - len < 65536) {
            uint8_t *g = realloc(d, cap = cap ? cap * 2 : 65536);
            if (!g) {
                err = -1;
                break;
            }
            d = g;
        }
        len += k = fread(d + len, 1, cap - len, f);
    } while (k > 0);
    if (ferror(f)) err = -1;
    if (f != stdin) fclose(f);
    if (err) free(d);
    *out = err ? NULL : d;
    *n = len;
    return err;
}

/* the best of as many runs as fit in a second (one at least) */
#define BENCH_SECONDS 1.0

/* one run of -b: compression (p set) or decompression (d set), in[0..n) into out[0..cap) */
typedef struct {
    const lmz_params *p;
    const lmz_dparams *d;
    const uint8_t *in;
    size_t n;
    uint8_t *out;
    size_t cap, len;
} bench_run;

static int bench_once(bench_run *r)
{
    return r->p ? lmz_compress_buffer(r->p, r->in, r->n, r->out, r->cap, &r->len)
                : lmz_decompress_buffer_ex(r->d, r->in, r->n, r->out, r->cap, &r->len);
}

/* @return the fastest run's seconds, *err its code (runs stop at an error) */
static double bench_best(bench_run *r, int *err)
{
    double best = 0;
    for (double spent = 0; best == 0 || spent < BENCH_SECONDS;) {
        double t0 = now_s();
        *err = bench_once(r);
        double t = now_s() - t0;
        if (*err) return 0;
        spent += t;
        if (best == 0 || t < best) best = t > 1e-9 ? t : 1e-9;
    }
    return best;
}

/* One level over every file: compress in memory, decompress, compare.
 * @return 0, or 1 after a message. Totals are added to *in, *out, *ct, *dt. */
static int bench_file(const options *o, const char *path, int level, const char *model_name, uint64_t *in,
                      uint64_t *out, double *ct, double *dt)
{
    char e[PATH_MAX * 4 + 16];
    esc(path, e, sizeof e);
    uint8_t *src = NULL;
    size_t n = 0;
    if (read_whole(path, &src, &n) != 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, e, strerror(errno ? errno : EIO));
        return 1;
    }
    lmz_params p = o->params;
    p.size_hint = n;
    p.model_ref = o->ref;
    lmz_dparams d;
    memset(&d, 0, sizeof d);
    d.threads = o->params.threads;
    d.force_threads = o->params.force_threads;
    d.model_ref = o->ref;
    d.memlimit = o->memlimit;
    size_t cap = lmz_compress_bound(n, 0);
    uint8_t *packed = malloc(cap), *back = malloc(n ? n : 1);
    int r = packed && back ? LMZ_OK : LMZ_ERROR_NOMEM;
    bench_run rc = {&p, NULL, src, n, packed, cap, 0}, rd = {NULL, &d, packed, 0, back, n, 0};
    double best_c = r ? 0 : bench_best(&rc, &r);
    rd.n = rc.len;
    double best_d = r ? 0 : bench_best(&rd, &r);
    if (r == LMZ_OK && (rd.len != n || memcmp(back, src, n) != 0)) {
        fprintf(stderr, "%s: %s: level %d: the decompressed data differ from the input\n", prog, e, level);
        r = -1;
    }
    if (r > 0) fprintf(stderr, "%s: %s: level %d: %s\n", prog, e, level, lmz_error_name(r));
    if (r == LMZ_OK) {
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        printf("%d#%-24s :%11zu ->%11zu (x%.3f, %.4f bpb), %9.1f KB/s, %9.1f KB/s  %s\n", level, base, n, rc.len,
               rc.len ? (double)n / (double)rc.len : 0.0, n ? 8.0 * (double)rc.len / (double)n : 0.0,
               (double)n / 1024.0 / best_c, (double)n / 1024.0 / best_d, model_name);
        *in += n;
        *out += rc.len;
        *ct += best_c;
        *dt += best_d;
    }
    free(packed);
    free(back);
    free(src);
    return r == LMZ_OK ? 0 : 1;
}

/* lmzip -b: every level of -b#..-e# (or the one level given) over every file */
static int bench(const options *o0, char **files, int nfiles)
{
    int lo = o0->bench_lo ? o0->bench_lo : o0->level ? o0->level : 6;
    int hi = o0->bench_hi ? o0->bench_hi : lo;
    if (hi < lo) hi = lo;
    if (nfiles == 0) {
        fprintf(stderr, "%s: -b needs files (it reads each into memory)\n", prog);
        return 1;
    }
    int status = 0;
    lmz_model_ref *ref = NULL;
    char ref_path[PATH_MAX] = "";
    for (int level = lo; level <= hi; level++) {
        options o = *o0;
        o.level = level;
        level_model(&o);
        if (resolve_model(&o) != 0) return 1;
        int with_model = strcmp(o.params.model, "none") != 0;
        level_setting(&o, with_model);
        if (with_model && strcmp(ref_path, o.params.model) != 0) { /* each model loaded once */
            char err[PATH_MAX + 512], e2[sizeof err * 4];
            lmz_model_unload(ref);
            ref = NULL;
            if (lmz_model_load(o.params.model, &ref, err, sizeof err) != LMZ_OK) {
                fprintf(stderr, "%s: %s\n", prog, esc(err, e2, sizeof e2));
                return 1;
            }
            snprintf(ref_path, sizeof ref_path, "%s", o.params.model);
        }
        o.ref = with_model ? ref : NULL;
        const char *name = with_model && ref ? lmz_model_ref_name(ref) : "none";
        uint64_t in = 0, out = 0;
        double ct = 0, dt = 0;
        int ok = 0;
        for (int i = 0; i < nfiles; i++) {
            int st = bench_file(&o, files[i], level, name, &in, &out, &ct, &dt);
            status |= st;
            ok += !st;
        }
        if (ok > 1)
            printf("%d#%-24s :%11llu ->%11llu (x%.3f, %.4f bpb), %9.1f KB/s, %9.1f KB/s  %s\n", level, "(total)",
                   (unsigned long long)in, (unsigned long long)out, out ? (double)in / (double)out : 0.0,
                   in ? 8.0 * (double)out / (double)in : 0.0, (double)in / 1024.0 / ct, (double)in / 1024.0 / dt,
                   name);
        fflush(stdout);
    }
    lmz_model_unload(ref);
    return status;
}

/* ======================================================================== */
/* --explain                                                                 */
/* ======================================================================== */

/* Compress path in memory with every piece kept, then write the page (to
 * -o, else PATH.html) or the table (to -o, else standard output).
 * @return 0, or 1 after a message. */
static int explain_one(const options *o, const char *path)
{
    char e[PATH_MAX * 4 + 16], target[PATH_MAX + 16];
    esc(path, e, sizeof e);
    uint8_t *src = NULL, *packed = NULL;
    size_t n = 0, len = 0;
    if (read_whole(path, &src, &n) != 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, e, strerror(errno ? errno : EIO));
        return 1;
    }
    explain_pieces ps = {0};
    lmz_params p = o->params;
    p.size_hint = n;
    p.model_ref = o->ref;
    p.explain = explain_collect;
    p.explain_opaque = &ps;
    size_t cap = lmz_compress_bound(n, 0);
    int r = (packed = malloc(cap)) ? LMZ_OK : LMZ_ERROR_NOMEM;
    double t0 = now_s();
    if (r == LMZ_OK) r = lmz_compress_buffer(&p, src, n, packed, cap, &len);
    double secs = now_s() - t0;
    if (r == LMZ_OK && ps.oom) r = LMZ_ERROR_NOMEM;
    if (r != LMZ_OK) fprintf(stderr, "%s: %s: %s\n", prog, e, lmz_error_name(r));
    const char *out = o->out_path;
    if (!r && !out && !o->explain_tsv) {
        if (!strcmp(path, "-")) out = "-";
        else {
            snprintf(target, sizeof target, "%s.html", path);
            out = target;
        }
    }
    struct stat st;
    if (!r && out && strcmp(out, "-") && !o->force && stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
        fprintf(stderr, "%s: %s: already exists (-f to overwrite)\n", prog, esc(out, e, sizeof e));
        r = -1;
    }
    if (!r) {
        const char *slash = strrchr(path, '/');
        explain_meta m = {strcmp(path, "-") ? (slash ? slash + 1 : path) : "(stdin)",
                          o->ref ? lmz_model_ref_name(o->ref) : "none", n, len, secs};
        char *tmp = NULL;
        FILE *f = !out || !strcmp(out, "-") ? stdout : open_temp(out, &tmp);
        if (f && f != stdout) fchmod(fileno(f), 0666 & ~o->umask_bits);
        if (!f) {
            fprintf(stderr, "%s: %s: %s\n", prog, esc(out, e, sizeof e), strerror(errno));
            r = -1;
        } else {
            int w = o->explain_tsv ? explain_tsv(f, src, n, &ps)
                                   : explain_html(f, src, n, &ps, &m, o->explain_max ? o->explain_max : 256u << 10);
            if (f != stdout) {
                w |= fclose(f) ? -1 : 0;
                if (w || install(tmp, out, o->force)) {
                    fprintf(stderr, "%s: %s: %s\n", prog, esc(out, e, sizeof e), strerror(errno ? errno : EIO));
                    unlink(tmp);
                    r = -1;
                } else {
                    msg(o, "%s: %zu -> %zu bytes, %zu pieces: %s\n", e, n, len, ps.n, esc(out, target, sizeof target));
                }
                free(tmp);
            } else if (w) {
                r = -1;
            }
        }
    }
    free(ps.p);
    free(packed);
    free(src);
    return r ? 1 : 0;
}

int main(int argc, char **argv)
{
    options o;
    memset(&o, 0, sizeof o);
    lmz_params_default(&o.params);
    /* file operands are gathered at the front of argv: never past the
     * argument being read, so no allocation is needed */
    char **files = argv + 1;
    int nfiles = 0, only_files = 0;
    {
        /* the level when none is given, as zstd's ZSTD_CLEVEL */
        const char *lv = getenv("LMZIP_LEVEL");
        if (lv && lv[0] >= '1' && lv[0] <= '9' && !lv[1]) o.level = lv[0] - '0';
        else if (lv && *lv) fprintf(stderr, "%s: LMZIP_LEVEL=%s ignored (a level 1..9)\n", prog, lv);
    }

    {
        mode_t um = umask(0);
        umask(um);
        o.umask_bits = um;
    }

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_files || a[0] != '-' || a[1] == 0) {
            files[nfiles++] = argv[i];
            continue;
        }
        if (a[1] == '-') {
            const lmz_setting *st;
            const char *val = strchr(a, '=');
            size_t klen = val ? (size_t)(val - a) : strlen(a);
#define LONG(name) (klen == strlen(name) && strncmp(a, name, klen) == 0)
#define VALUE()                                                                   \
    (val ? val + 1 : (i + 1 < argc ? argv[++i] : (fprintf(stderr, "%s: option %s needs a value\n", prog, a), exit(1), "")))
/* a flag: --name=VALUE is refused, not ignored */
#define FLAG(name) (LONG(name) && (!val || (fprintf(stderr, "%s: option %s takes no value\n", prog, name), exit(1), 0)))
/* an option of language-model streams only, or of compression only */
#define LMOPT(name) (LONG(name) && (o.lm_opt = o.lm_opt ? o.lm_opt : name + 2, o.comp_opt = o.comp_opt ? o.comp_opt : name + 2, 1))
            if (a[2] == 0) only_files = 1;
            else if (FLAG("--compress")) o.mode = MODE_COMPRESS;
            else if (FLAG("--decompress") || FLAG("--uncompress")) o.mode = MODE_DECOMPRESS;
            else if (FLAG("--test")) o.mode = MODE_TEST;
            else if (FLAG("--list")) o.mode = MODE_LIST;
            else if (FLAG("--stdout")) o.to_stdout = 1;
            else if (FLAG("--keep")) o.remove_input = 0;
            else if (FLAG("--rm")) o.remove_input = 1;
            else if (FLAG("--force")) o.force = 1;
            else if (FLAG("--force-threads")) o.params.force_threads = 1;
            else if (FLAG("--verbose")) o.verbose++;
            else if (FLAG("--quiet")) o.quiet = 1;
            else if (FLAG("--fast")) o.level = 1;
            else if (FLAG("--best")) o.level = 9;
            else if (FLAG("--help")) { usage(stdout); return close_stdout(0); }
            else if (FLAG("--version")) return version(); else if (LONG("--memlimit")) {
                const char *v = VALUE();
                uint64_t m;
                if (!strcmp(v, "max")) o.memlimit = UINT64_MAX;
                else if (parse_size(v, &m) == 0) o.memlimit = m;
                else {
                    fprintf(stderr, "%s: bad --memlimit (a size with K/M/G, 0 for the default, or max)\n", prog);
                    return 1;
                }
            } else if (LONG("--threads")) {
                if (parse_uint(VALUE(), 256, &o.params.threads)) {
                    fprintf(stderr, "%s: bad thread count (0..256)\n", prog);
                    return 1;
                }
            } else if (LONG("--model")) {
                o.model_arg = VALUE();
            } else if (LMOPT("--parts")) {
                if (parse_parts(VALUE(), &o.params.parts)) {
                    fprintf(stderr, "%s: bad --parts (a list of model,ngram,bias,match,head,ngtop,refine,cache, or all)\n", prog);
                    return 1;
                }
            } else if (LMOPT("--mixer")) {
                const char *v = VALUE();
                if (!strcmp(v, "prob")) o.params.mixer = 0;
                else if (!strcmp(v, "log")) o.params.mixer = 1;
                else {
                    fprintf(stderr, "%s: bad --mixer (prob or log)\n", prog);
                    return 1;
                }
            } else if (LONG("--explain")) {
                o.mode = MODE_EXPLAIN;
                if (val && strcmp(val + 1, "html") && strcmp(val + 1, "tsv")) {
                    fprintf(stderr, "%s: bad --explain (html or tsv)\n", prog);
                    return 1;
                }
                o.explain_tsv = val && !strcmp(val + 1, "tsv");
            } else if (LONG("--explain-max")) {
                if (parse_size(VALUE(), &o.explain_max) != 0 || o.explain_max == 0) {
                    fprintf(stderr, "%s: bad --explain-max (a size: 64K, 1M, ...)\n", prog);
                    return 1;
                }
            } else if (LONG("--format-version")) {
                const char *v = VALUE();
                if (strcmp(v, "1") != 0 && strcmp(v, "2") != 0) {
                    fprintf(stderr, "%s: bad --format-version (2, the default, or 1 for lmzip 0.1 to 0.3)\n", prog);
                    return 1;
                }
                o.params.format_version = (unsigned)(v[0] - '0');
                o.comp_opt = o.comp_opt ? o.comp_opt : "format-version";
            } else if (FLAG("--model-always")) { /* compression only; nothing to keep with -m none */
                o.params.model_always = 1;
                o.comp_opt = o.comp_opt ? o.comp_opt : "model-always";
            } else if (LMOPT("--profile")) {
                const char *v = VALUE();
                unsigned pv = !strcmp(v, "det-f32-v3")   ? 3
                              : !strcmp(v, "det-f32-v4") ? 4
                              : !strcmp(v, "det-i8-v1")  ? 5
                                                         : 0;
                if (pv < 3) {
                    fprintf(stderr, "%s: bad --profile (det-f32-v4, the default, det-i8-v1 or det-f32-v3)\n", prog);
                    return 1;
                }
                o.params.lm_profile = pv;
            } else if (klen > 2 && (st = setting_named(a + 2, klen - 2)) != NULL) { /* the table's settings */
                if (set_option(&o, st, VALUE()) != 0) return 1;
            } else {
                fprintf(stderr, "%s: unknown option %s (see --help)\n", prog, a);
                return 1;
            }
#undef LONG
#undef VALUE
#undef FLAG
#undef LMOPT
            continue;
        }
        /* bundled short options: -dc, -T2, -T 2, -o out */
        for (const char *p = a + 1; *p; p++) {
            const char *val = NULL;
            if (strchr("ToBm", *p)) {
                if (p[1]) val = p + 1;
                else if (i + 1 < argc) val = argv[++i];
                else {
                    fprintf(stderr, "%s: option -%c needs a value\n", prog, *p);
                    return 1;
                }
            }
            switch (*p) {
            case 'z': o.mode = MODE_COMPRESS; break;
            case 'd': o.mode = MODE_DECOMPRESS; break;
            case 't': o.mode = MODE_TEST; break;
            case 'l': o.mode = MODE_LIST; break;
            case 'b': /* -b, -b#: benchmark (from level #) */
                o.mode = MODE_BENCH;
                if (p[1] >= '1' && p[1] <= '9') o.bench_lo = *++p - '0';
                break;
            case 'e': /* -e#: the last level -b runs */
                if (p[1] < '1' || p[1] > '9') {
                    fprintf(stderr, "%s: -e needs a level (-e1 .. -e9)\n", prog);
                    return 1;
                }
                o.bench_hi = *++p - '0';
                break;
            case 'c': o.to_stdout = 1; break;
            case 'k': o.remove_input = 0; break;
            case 'f': o.force = 1; break;
            case 'v': o.verbose++; break;
            case 'q': o.quiet = 1; break;
            case '1': case '2': case '3': case '4': case '5': case '6': case '7': case '8': case '9':
                o.level = *p - '0';
                break;
            case 'h': usage(stdout); return close_stdout(0);
            case 'V': return version();
            case 'T':
                if (parse_uint(val, 256, &o.params.threads)) {
                    fprintf(stderr, "%s: bad thread count (0..256)\n", prog);
                    return 1;
                }
                break;
            case 'o': o.out_path = val; break;
            case 'm': o.model_arg = val; break;
            case 'B':
                if (set_option(&o, setting_named("frame-size", 10), val) != 0) return 1;
                break;
            default:
                fprintf(stderr, "%s: unknown option -%c (see --help)\n", prog, *p);
                return 1;
            }
            if (val) break;
        }
    }

    if (o.mode == MODE_BENCH) {
        if (o.comp_opt && o.lm_opt && o.model_arg && !strcmp(o.model_arg, "none")) {
            fprintf(stderr, "%s: --%s applies to language-model streams, and the model is 'none'\n", prog, o.lm_opt);
            return 1;
        }
        catch_signals();
        int st = bench(&o, files, nfiles);
        for (int i = 0; i < n_found; i++) lmz_model_unload(found[i].ref);
        return close_stdout(st ? 1 : 0);
    }
    /* --explain compresses, writing the pieces instead of the stream */
    const int compressing = o.mode == MODE_COMPRESS || o.mode == MODE_EXPLAIN;
    if (o.level && compressing) level_model(&o);
    if (resolve_model(&o) != 0) return 1;
    int with_model = strcmp(o.params.model, "none") != 0;
    if (o.level && compressing) level_setting(&o, with_model);
    if (compressing && !with_model && o.lm_opt) {
        fprintf(stderr, "%s: --%s applies to language-model streams, and the model is 'none' (give one with -m)\n", prog,
                o.lm_opt);
        return 1;
    }
    if (!compressing && o.comp_opt)
        fprintf(stderr, "%s: --%s is ignored: a compressed stream records its own settings\n", prog, o.comp_opt);
    if (with_model && (compressing || (o.model_arg && (o.mode == MODE_DECOMPRESS || o.mode == MODE_TEST)))) {
        char err[PATH_MAX + 512], e2[sizeof err * 4];
        if (lmz_model_load(o.params.model, &o.ref, err, sizeof err) != LMZ_OK) {
            fprintf(stderr, "%s: %s\n", prog, esc(err, e2, sizeof e2));
            return 1;
        }
    }
    /* frames and groups left at 0 are the library's choice (lmz_params);
     * what the library would refuse gets its own message here */
    if (with_model && compressing) {
        if (o.params.frame_size > LMZ_LM_FRAME_SIZE_MAX) {
            fprintf(stderr, "%s: with a model, frames are at most 64M\n", prog);
            return 1;
        }
        if (o.params.frame_size && o.params.group > 1 &&
            (uint64_t)o.params.group * o.params.frame_size > (64u << 20)) {
            fprintf(stderr, "%s: --group x --frame-size is at most 64M\n", prog);
            return 1;
        }
    }

    {
        unsigned cores = lmz_cores_available(), t = o.params.threads;
        if (o.verbose && o.mode != MODE_LIST && !o.params.force_threads && t > cores)
            fprintf(stderr, "%s: -T %u: %u core%s available, using %u thread%s (--force-threads for more)\n", prog,
                    t, cores, cores == 1 ? "" : "s", cores, cores == 1 ? "" : "s");
    }
    if (o.out_path && nfiles > 1) {
        fprintf(stderr, "%s: -o takes a single input file\n", prog);
        return 1;
    }
    if (o.to_stdout && o.remove_input) o.remove_input = 0;

    catch_signals();
    if (o.mode == MODE_EXPLAIN) {
        int st = nfiles ? 0 : explain_one(&o, "-");
        for (int i = 0; i < nfiles; i++) st |= explain_one(&o, files[i]);
        lmz_model_unload(o.ref);
        return close_stdout(st ? 1 : 0);
    }
    int status = 0, listed = 0;
    if (nfiles == 0) status = process(&o, "-", &listed);
    for (int i = 0; i < nfiles; i++) status |= process(&o, files[i], &listed);
    lmz_model_unload(o.ref);
    for (int i = 0; i < n_found; i++) lmz_model_unload(found[i].ref);
    return close_stdout(status ? 1 : 0);
}
