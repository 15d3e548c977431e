/*
 * lmzip.c — the command-line program. Argument parsing, files and messages;
 * all compression is in the library (include/lmzip.h).
 *
 * Conventions follow zstd: `lmzip FILE` writes FILE.lmz and keeps FILE,
 * `-d` decompresses, no file or `-` means stdin to stdout. Output is written
 * to a temporary file beside the target and renamed only when complete, so
 * no partial output is ever left behind. Exit status 0 on success, 1 on error.
 */
#define _POSIX_C_SOURCE 200809L
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

#include "lmzip.h"

#define SUFFIX ".lmz"

typedef enum { MODE_COMPRESS, MODE_DECOMPRESS, MODE_TEST, MODE_LIST } mode_t_;

typedef struct {
    mode_t_ mode;
    int to_stdout, force, remove_input, verbose, quiet;
    int frame_set;          /* -B given */
    int group_set;          /* --group given */
    const char *out_path;
    const char *model_arg;  /* -m as given; NULL: the default */
    char model_path[PATH_MAX];
    lmz_params params;
} options;

#ifndef LMZIP_MODELS_DIR
#define LMZIP_MODELS_DIR "/usr/local/share/lmzip/models"
#endif
/* With a model and no -B, a file is cut into LM_FRAMES_WANTED frames (decoded
 * side by side, so decompression has that many streams to batch), each of
 * LM_FRAME_MIN .. LM_FRAME_MAX bytes in steps of 4K; input of unknown size
 * takes LM_FRAME_MAX. The frames of a group share their statistics, so
 * smaller frames cost less ratio than they would alone (docs/BENCHMARKS.md). */
#define LM_FRAMES_WANTED 16
#define LM_FRAME_MIN (16u << 10)
#define LM_FRAME_MAX (256u << 10)
#define LM_GROUP_DEFAULT 64

static void lm_frames(lmz_params *p)
{
    uint64_t f = LM_FRAME_MAX;
    if (p->size_hint != LMZ_SIZE_UNKNOWN) {
        f = (p->size_hint / LM_FRAMES_WANTED + 4095) / 4096 * 4096;
        f = f < LM_FRAME_MIN ? LM_FRAME_MIN : f > LM_FRAME_MAX ? LM_FRAME_MAX : f;
    }
    p->frame_size = (uint32_t)f; /* the group main() chose for 256K frames still fits */
}

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

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: lmzip [OPTION]... [FILE]...\n"
            "Compress or decompress FILEs with a model-driven range coder (.lmz).\n"
            "With no FILE, or when FILE is -, read standard input.\n\n"
            "  -z, --compress        compress (default)\n"
            "  -d, --decompress      decompress\n"
            "  -t, --test            test the integrity of compressed files\n"
            "  -l, --list            list frames, sizes, ratio and bits per byte\n"
            "  -c, --stdout          write to standard output, keep input files\n"
            "  -o FILE               write the (single) result to FILE\n"
            "  -k, --keep            keep input files (default)\n"
            "      --rm              remove input files after success\n"
            "  -f, --force           overwrite existing output, write to a terminal\n"
            "  -T N, --threads=N     worker threads, 0 = all cores (default 1)\n"
            "  -m MODEL, --model=MODEL  a GGUF model file (llama or dsrn), a model name\n"
            "                        found in the models folders, or 'none' (the built-in\n"
            "                        byte model); default: the folders' 'default' model,\n"
            "                        else none. Decompression finds the model a file\n"
            "                        names in the folders unless -m is given\n"
            "  -B SIZE, --frame-size=SIZE  bytes per independent frame, with K/M/G\n"
            "                        suffixes (default 4M; with a model a sixteenth of\n"
            "                        the file, 16K..256K; 1K..1G, with a model at most 64M)\n"
            "Language-model settings (recorded in the file):\n"
            "      --parts=LIST      ensemble parts: model,ngram,bias,match or all\n"
            "      --mixer=prob|log  mixing in probability space or log domain (default log)\n"
            "      --ngram-bits=N    n-gram memory: 2^N 32-byte buckets per order at most\n"
            "                        (8..24, default 20)\n"
            "      --cdf-bits=N      frequency total 2^N (16..24, default 24)\n"
            "      --text-min=N      shortest text segment in bytes (default 64)\n"
            "      --window=N        llama KV window in tokens (default the model's)\n"
            "      --bias-lr=X, --mix-lr=X  learning rates (default 0.3, 0.00025)\n"
            "      --profile=NAME    det-f32-v4 (default), or det-f32-v3 for older lmzip\n"
            "      --group=N         frames whose text shares one ensemble, decoded side\n"
            "                        by side (1..64, at most 64M of frames; default 64)\n"
            "      --skip=BITS       code a token without the model when the n-gram and\n"
            "                        match blend's entropy is below BITS (default 0: never)\n"
            "      --table-bits=N    byte model memory: 2^N 16-byte slots (12..24,\n"
            "                        default 22 = 64 MiB per thread at most)\n"
            "  -v, --verbose         more messages (-l: every frame)\n"
            "  -q, --quiet           no messages but errors\n"
            "  -h, --help            this help\n"
            "  -V, --version         version\n\n"
            "Models folders: $LMZIP_MODELS (':'-separated), then models/ beside or\n"
            "above the program, then " LMZIP_MODELS_DIR ".\n"
            "Exit status: 0 on success, 1 on any error.\n");
}

/* ======================================================================== */
/* I/O callbacks over stdio                                                  */
/* ======================================================================== */

typedef struct {
    FILE *in, *out;
    const options *opt;
    const char *name;
    int show_progress;
    double t0;
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

static void cb_progress(void *o, uint64_t in, uint64_t out)
{
    io_ctx *c = o;
    c->in_done = in;
    c->out_done = out;
    if (!c->show_progress) return;
    double dt = now_s() - c->t0;
    int compressing = c->opt->mode == MODE_COMPRESS;
    uint64_t raw = compressing ? in : out, packed = compressing ? out : in;
    double rate = dt > 0 ? (double)raw / dt / 1e6 : 0;
    fprintf(stderr, "\r%s: %.1f MB -> %.1f MB  %.2f MB/s  %.3f bpb", c->name, raw / 1e6,
            packed / 1e6, rate, raw ? 8.0 * (double)packed / (double)raw : 0.0);
    if (c->in_size && in < c->in_size && in > 0) {
        double eta = dt * (double)(c->in_size - in) / (double)in;
        fprintf(stderr, "  ETA %.0fs", eta);
    }
    fprintf(stderr, "   ");
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

/* Open a temporary file beside `target`. @return FILE or NULL (errno set). */
static FILE *open_temp(const char *target, char **tmp_path)
{
    size_t n = strlen(target);
    char *t = malloc(n + 16);
    if (!t) return NULL;
    memcpy(t, target, n);
    memcpy(t + n, ".tmp-XXXXXX", 12);
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

/* ======================================================================== */
/* finding models                                                            */
/* ======================================================================== */

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* NAME.gguf in folder dir, into out */
static int try_dir(const char *dir, size_t dlen, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%.*s/%s.gguf", (int)dlen, dir, name);
    return n > 0 && (size_t)n < cap && is_file(out);
}

/* The models folders in order: $LMZIP_MODELS, models/ beside and above the
 * program, the installed folder. @return 1 with the path of NAME.gguf. */
static int find_in_folders(const char *name, char *out, size_t cap)
{
    if (!name[0] || strchr(name, '/')) return 0;
    const char *env = getenv("LMZIP_MODELS");
    while (env && *env) {
        const char *c = strchr(env, ':');
        size_t len = c ? (size_t)(c - env) : strlen(env);
        if (len && try_dir(env, len, name, out, cap)) return 1;
        env = c ? c + 1 : NULL;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            char dir[PATH_MAX + 16];
            snprintf(dir, sizeof dir, "%s/models", exe);
            if (try_dir(dir, strlen(dir), name, out, cap)) return 1;
            snprintf(dir, sizeof dir, "%s/../models", exe);
            if (try_dir(dir, strlen(dir), name, out, cap)) return 1;
        }
    }
    return try_dir(LMZIP_MODELS_DIR, strlen(LMZIP_MODELS_DIR), name, out, cap);
}

static char found_model[PATH_MAX];

static const char *find_model_cb(void *opaque, const char *name)
{
    (void)opaque;
    return find_in_folders(name, found_model, sizeof found_model) ? found_model : NULL;
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
    if (is_file(m) || find_in_folders(m, o->model_path, sizeof o->model_path)) {
        if (is_file(m)) snprintf(o->model_path, sizeof o->model_path, "%s", m);
        o->params.model = o->model_path;
        return 0;
    }
    fprintf(stderr, "%s: model '%s' not found: not a file, and no %s.gguf in the models folders "
                    "($LMZIP_MODELS, models/ beside the program, %s)\n",
            prog, m, m, LMZIP_MODELS_DIR);
    return -1;
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
        if (e == LMZ_ERROR_MODEL) {
            char id[17];
            for (int i = 0; i < 8; i++) snprintf(id + 2 * i, 3, "%02x", si.model_hash[i]);
            if (given)
                fail(name, "needs model '%s' (identity %s...), and %s is another model (or cannot be read)",
                     si.model, id, given);
            else
                fail(name, "needs model '%s' (identity %s...): give its file with -m, or put %s.gguf in a "
                           "models folder",
                     si.model, id, si.model);
        } else if (e == LMZ_ERROR_PROFILE)
            fail(name, "needs arithmetic profile '%s', which this build does not have", si.profile);
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
    char model[64];
} list_ctx;

static void li_stream(void *o, const lmz_stream_info *s)
{
    list_ctx *l = o;
    snprintf(l->model, sizeof l->model, "%s", s->model);
    if (l->opt->verbose)
        printf("%s: stream %u: format %u, profile %s, model %s, frame size %u, group %u, table bits %u\n",
               l->name, s->stream_index, s->format_version, s->profile, s->model, s->frame_size,
               s->group, s->table_bits);
}

static void li_frame(void *o, const lmz_frame_info *f)
{
    list_ctx *l = o;
    static const char *const how[3] = {"stored", "bytes", "lm"}; /* the frame's method */
    if (l->opt->verbose)
        printf("  frame %4llu  %-7s %12llu -> %12llu  %.4f bpb  xxh64 %016llx\n",
               (unsigned long long)f->frame_index, f->method < 3 ? how[f->method] : "?",
               (unsigned long long)f->orig_size, (unsigned long long)f->comp_size,
               8.0 * (double)f->comp_size / (double)f->orig_size, (unsigned long long)f->checksum);
}

static void li_end(void *o, unsigned si, uint64_t frames, uint64_t orig, uint64_t comp)
{
    list_ctx *l = o;
    (void)si;
    l->frames += frames;
    l->orig += orig;
    l->comp += comp;
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

    /* choose the output */
    char *out_path = NULL, *tmp_path = NULL;
    FILE *out = NULL;
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
            if (!o->force) {
                fail(out_path, "already exists (use -f to overwrite)");
                goto done;
            }
            if (S_ISDIR(ost.st_mode)) {
                fail(out_path, "is a directory");
                goto done;
            }
        }
        out = open_temp(out_path, &tmp_path);
        pending_tmp = tmp_path;
        if (!out) {
            fail(out_path, "cannot create: %s", strerror(errno));
            goto done;
        }
    }
    c.out = out;
    c.show_progress = !o->quiet && isatty(STDERR_FILENO);

    lmz_io io = {&c, cb_read, cb_write, cb_progress};
    int e;
    lmz_stats stats;
    memset(&stats, 0, sizeof stats);
    if (o->mode == MODE_COMPRESS) {
        lmz_params p = o->params;
        if (o->verbose) p.stats = &stats; /* the statistics cost a little time */
        p.size_hint = c.in_size ? c.in_size : (from_stdin ? LMZ_SIZE_UNKNOWN : 0);
        if (!from_stdin && !S_ISREG(st.st_mode)) p.size_hint = LMZ_SIZE_UNKNOWN;
        if (strcmp(p.model, "none") != 0 && !o->frame_set) lm_frames(&p);
        e = lmz_compress_stream(&p, &io);
    } else {
        /* -m names the model; else the folders are searched for the one a
         * stream names */
        int given = o->model_arg && strcmp(o->params.model, "none") != 0;
        lmz_dparams dp = {o->params.threads, given ? o->params.model : NULL, given ? NULL : find_model_cb, NULL};
        e = lmz_decompress_stream_ex(&dp, &io);
    }
    if (c.show_progress) fprintf(stderr, "\r%*s\r", 79, "");
    if (!e && ferror(in)) e = LMZ_ERROR_READ;
    if (e) {
        if (e == LMZ_ERROR_READ)
            fail(name, "read error: %s", strerror(errno));
        else if (e == LMZ_ERROR_WRITE)
            fail(out_path ? out_path : "(stdout)", "write error: %s", strerror(errno));
        else if (e == LMZ_ERROR_MODEL || e == LMZ_ERROR_PROFILE || e == LMZ_ERROR_SETTING)
            explain_unsupported(name, from_stdin ? NULL : path, e,
                                o->model_arg && strcmp(o->params.model, "none") ? o->params.model : NULL);
        else
            fail(name, "%s", lmz_error_name(e));
        goto done;
    }
    if (out && out != stdout) {
        if (!from_stdin) fchmod(fileno(out), st.st_mode & 07777);
        if (fflush(out) != 0 || fsync(fileno(out)) != 0) {
            fail(out_path, "write error: %s", strerror(errno));
            goto done;
        }
        int ce = fclose(out);
        out = NULL;
        if (ce != 0) {
            fail(out_path, "write error: %s", strerror(errno));
            goto done;
        }
        if (!from_stdin) {
            struct timespec times[2] = {st.st_atim, st.st_mtim};
            utimensat(AT_FDCWD, tmp_path, times, 0);
        }
        if (rename(tmp_path, out_path) != 0) {
            fail(out_path, "cannot rename temporary file: %s", strerror(errno));
            goto done;
        }
        pending_tmp = NULL;
        free(tmp_path);
        tmp_path = NULL;
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
    if (o->mode == MODE_TEST) {
        if (o->verbose) msg(o, "%s: OK (%llu bytes, %.4f bpb)\n", name, (unsigned long long)raw, bpb);
    } else if (o->verbose || (!o->quiet && isatty(STDERR_FILENO))) {
        double dt = now_s() - c.t0;
        msg(o, "%s: %llu -> %llu bytes, %.4f bpb, %.2f MB/s%s%s\n", name,
            (unsigned long long)(compressing ? raw : packed),
            (unsigned long long)(compressing ? packed : raw), bpb,
            dt > 0 ? (double)raw / dt / 1e6 : 0.0, out_path ? " -> " : "", out_path ? out_path : "");
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
        if (unlink(path) != 0) fail(name, "cannot remove input: %s", strerror(errno));
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

/* a number in [0, max] */
static int parse_real(const char *s, double max, double *x)
{
    char *end;
    errno = 0;
    *x = strtod(s, &end);
    return errno || end == s || *end || !(*x >= 0 && *x <= max) ? -1 : 0;
}

/* "model,ngram,bias,match" or "all" into LMZ_PART_* bits */
static int parse_parts(const char *s, unsigned *out)
{
    if (!strcmp(s, "all")) {
        *out = LMZ_PART_MODEL | LMZ_PART_NGRAM | LMZ_PART_BIAS | LMZ_PART_MATCH;
        return 0;
    }
    static const char *const names[4] = {"model", "ngram", "bias", "match"};
    unsigned bits = 0;
    while (*s) {
        size_t n = strcspn(s, ",");
        int k = -1;
        for (int i = 0; i < 4; i++)
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

int main(int argc, char **argv)
{
    options o;
    memset(&o, 0, sizeof o);
    lmz_params_default(&o.params);
    /* file operands are gathered at the front of argv: never past the
     * argument being read, so no allocation is needed */
    char **files = argv + 1;
    int nfiles = 0, only_files = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_files || a[0] != '-' || a[1] == 0) {
            files[nfiles++] = argv[i];
            continue;
        }
        if (a[1] == '-') {
            const char *val = strchr(a, '=');
            size_t klen = val ? (size_t)(val - a) : strlen(a);
#define LONG(name) (klen == strlen(name) && strncmp(a, name, klen) == 0)
#define VALUE()                                                                   \
    (val ? val + 1 : (i + 1 < argc ? argv[++i] : (fprintf(stderr, "%s: option %s needs a value\n", prog, a), exit(1), "")))
            if (a[2] == 0) only_files = 1;
            else if (LONG("--compress")) o.mode = MODE_COMPRESS;
            else if (LONG("--decompress") || LONG("--uncompress")) o.mode = MODE_DECOMPRESS;
            else if (LONG("--test")) o.mode = MODE_TEST;
            else if (LONG("--list")) o.mode = MODE_LIST;
            else if (LONG("--stdout")) o.to_stdout = 1;
            else if (LONG("--keep")) o.remove_input = 0;
            else if (LONG("--rm")) o.remove_input = 1;
            else if (LONG("--force")) o.force = 1;
            else if (LONG("--verbose")) o.verbose++;
            else if (LONG("--quiet")) o.quiet = 1;
            else if (LONG("--help")) { usage(stdout); return 0; }
            else if (LONG("--version")) {
                printf("lmzip %s (format %d, profiles int-v1 det-f32-v1 det-f32-v2 det-f32-v3 det-f32-v4)\n", LMZ_VERSION_STRING, 1);
                return 0;
            } else if (LONG("--threads")) {
                if (parse_uint(VALUE(), 256, &o.params.threads)) {
                    fprintf(stderr, "%s: bad thread count (0..256)\n", prog);
                    return 1;
                }
            } else if (LONG("--model")) {
                o.model_arg = VALUE();
            } else if (LONG("--parts")) {
                if (parse_parts(VALUE(), &o.params.parts)) {
                    fprintf(stderr, "%s: bad --parts (a list of model,ngram,bias,match, or all)\n", prog);
                    return 1;
                }
            } else if (LONG("--mixer")) {
                const char *v = VALUE();
                if (!strcmp(v, "prob")) o.params.mixer = 0;
                else if (!strcmp(v, "log")) o.params.mixer = 1;
                else {
                    fprintf(stderr, "%s: bad --mixer (prob or log)\n", prog);
                    return 1;
                }
            } else if (LONG("--ngram-bits")) {
                if (parse_uint(VALUE(), 24, &o.params.ngram_bits) || o.params.ngram_bits < 8) {
                    fprintf(stderr, "%s: bad n-gram bits (8..24)\n", prog);
                    return 1;
                }
            } else if (LONG("--cdf-bits")) {
                if (parse_uint(VALUE(), 24, &o.params.cdf_bits) || o.params.cdf_bits < 16) {
                    fprintf(stderr, "%s: bad CDF bits (16..24)\n", prog);
                    return 1;
                }
            } else if (LONG("--text-min")) {
                if (parse_uint(VALUE(), 65536, &o.params.text_min) || o.params.text_min < 1) {
                    fprintf(stderr, "%s: bad --text-min (1..65536)\n", prog);
                    return 1;
                }
            } else if (LONG("--window")) {
                unsigned w;
                if (parse_uint(VALUE(), 1u << 20, &w) || w < 1) {
                    fprintf(stderr, "%s: bad --window (1..1048576 tokens)\n", prog);
                    return 1;
                }
                o.params.window = w;
            } else if (LONG("--profile")) {
                const char *v = VALUE();
                unsigned pv = !strcmp(v, "det-f32-v3") ? 3 : !strcmp(v, "det-f32-v4") ? 4 : 0;
                if (pv != 3 && pv != 4) {
                    fprintf(stderr, "%s: bad --profile (det-f32-v4, the default, or det-f32-v3)\n", prog);
                    return 1;
                }
                o.params.lm_profile = pv;
            } else if (LONG("--group")) {
                if (parse_uint(VALUE(), 64, &o.params.group) || o.params.group < 1) {
                    fprintf(stderr, "%s: bad --group (1..64 frames)\n", prog);
                    return 1;
                }
                o.group_set = 1;
            } else if (LONG("--skip")) {
                double x;
                if (parse_real(VALUE(), 16, &x)) {
                    fprintf(stderr, "%s: bad --skip (entropy in bits, 0..16)\n", prog);
                    return 1;
                }
                o.params.skip_mbits = (uint32_t)(x * 1000.0 + 0.5);
            } else if (LONG("--bias-lr") || LONG("--mix-lr")) {
                int bias = LONG("--bias-lr");
                double x;
                if (parse_real(VALUE(), 1, &x)) {
                    fprintf(stderr, "%s: bad learning rate (0..1)\n", prog);
                    return 1;
                }
                if (bias) o.params.bias_lr = (float)x;
                else o.params.mix_lr = (float)x;
            } else if (LONG("--frame-size")) {
                uint64_t v;
                if (parse_size(VALUE(), &v) || v < LMZ_FRAME_SIZE_MIN || v > LMZ_FRAME_SIZE_MAX) {
                    fprintf(stderr, "%s: bad frame size (1K..1G)\n", prog);
                    return 1;
                }
                o.params.frame_size = (uint32_t)v;
                o.frame_set = 1;
            } else if (LONG("--table-bits")) {
                if (parse_uint(VALUE(), 24, &o.params.table_bits) || o.params.table_bits < 12) {
                    fprintf(stderr, "%s: bad table bits (12..24)\n", prog);
                    return 1;
                }
            } else {
                fprintf(stderr, "%s: unknown option %s (see --help)\n", prog, a);
                return 1;
            }
#undef LONG
#undef VALUE
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
            case 'c': o.to_stdout = 1; break;
            case 'k': o.remove_input = 0; break;
            case 'f': o.force = 1; break;
            case 'v': o.verbose++; break;
            case 'q': o.quiet = 1; break;
            case 'h': usage(stdout); return 0;
            case 'V': printf("lmzip %s (format %d, profiles int-v1 det-f32-v1 det-f32-v2 det-f32-v3 det-f32-v4)\n", LMZ_VERSION_STRING, 1); return 0;
            case 'T':
                if (parse_uint(val, 256, &o.params.threads)) {
                    fprintf(stderr, "%s: bad thread count (0..256)\n", prog);
                    return 1;
                }
                break;
            case 'o': o.out_path = val; break;
            case 'm': o.model_arg = val; break;
            case 'B': {
                uint64_t v;
                if (parse_size(val, &v) || v < LMZ_FRAME_SIZE_MIN || v > LMZ_FRAME_SIZE_MAX) {
                    fprintf(stderr, "%s: bad frame size (1K..1G)\n", prog);
                    return 1;
                }
                o.params.frame_size = (uint32_t)v;
                o.frame_set = 1;
                break;
            }
            default:
                fprintf(stderr, "%s: unknown option -%c (see --help)\n", prog, *p);
                return 1;
            }
            if (val) break;
        }
    }

    if (resolve_model(&o) != 0) return 1;
    if (strcmp(o.params.model, "none") != 0 && o.mode == MODE_COMPRESS) {
        char err[512];
        if (lmz_model_check(o.params.model, err, sizeof err) != LMZ_OK) {
            fprintf(stderr, "%s: %s\n", prog, err);
            return 1;
        }
        if (!o.frame_set) o.params.frame_size = LM_FRAME_MAX; /* per file: lm_frames */
        if (o.params.frame_size > (64u << 20)) {
            fprintf(stderr, "%s: with a model, frames are at most 64M\n", prog);
            return 1;
        }
        uint32_t fit = (64u << 20) / o.params.frame_size; /* frames of a group: 64M at most */
        if (!o.group_set) o.params.group = fit < LM_GROUP_DEFAULT ? fit : LM_GROUP_DEFAULT;
        if (o.params.group > 1 && o.params.group > fit) {
            fprintf(stderr, "%s: --group x --frame-size is at most 64M\n", prog);
            return 1;
        }
    }

    if (o.out_path && nfiles > 1) {
        fprintf(stderr, "%s: -o takes a single input file\n", prog);
        return 1;
    }
    if (o.to_stdout && o.remove_input) o.remove_input = 0;

    catch_signals();
    int status = 0, listed = 0;
    if (nfiles == 0) status = process(&o, "-", &listed);
    for (int i = 0; i < nfiles; i++) status |= process(&o, files[i], &listed);
    return status ? 1 : 0;
}
