/*
 * dsrn.c — the model tool: inspect GGUF files and tokenise text.
 *
 *   dsrn info MODEL.gguf
 *   dsrn tokenize -m MODEL.gguf (TEXT | -f FILE) [--ids]
 *   dsrn logits -m MODEL.gguf --ids 1,2,3 [-o OUT.f32]
 *   dsrn generate -m MODEL.gguf -p PROMPT -n N [--temp T] [--seed S] [--top-k K] [--top-p P]
 *                 [--min-p P] [--repeat-penalty R] [--repeat-last-n N]
 *   dsrn eval -m MODEL.gguf --tasks LIST [--limit N] [--json OUT] | --bpb FILE... | --copy
 *   dsrn quantize MODEL.gguf --type f16|q8_0|f32 -o OUT.gguf
 *
 * (logits, generate, train, eval and tokenizer come with the engine and the
 * DSRN issues.) Exit status 0 on success, 1 on error.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eval/bpb.h"
#include "eval/sample.h"
#include "eval/tasks.h"
#include "model/gguf.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "tensor/detmath.h"
#include "tensor/kernels.h"
#include "tensor/types.h"
#include "train/bpe.h"
#include "train/corpus.h"
#include "train/train.h"

static int usage(FILE *f)
{
    fprintf(f, "Usage:\n"
               "  dsrn info MODEL.gguf                          metadata and tensor table\n"
               "  dsrn tokenize -m MODEL.gguf TEXT|-f FILE [--ids]\n"
               "                                                token ids (--ids: [1, 2, 3] only)\n"
               "  dsrn logits -m MODEL.gguf --ids 1,2,3 [-o OUT.f32]\n"
               "                                                logits after each token (float32,\n"
               "                                                n x vocab, little-endian)\n"
               "  dsrn generate -m MODEL.gguf -p PROMPT -n N [--temp T] [--seed S] [--top-k K]\n"
               "            [--top-p P] [--min-p P] [--repeat-penalty R] [--repeat-last-n N]\n"
               "                                                sample N tokens (temp 0: greedy;\n"
               "                                                defaults 0.8, 1, 40, 0.95, 0.05, 1, 64)\n"
               "  dsrn quantize MODEL.gguf --type f16|q8_0|f32 -o OUT.gguf\n"
               "                                                the weight matrices in another type\n"
               "                                                (vectors stay F32; metadata kept)\n"
               "  dsrn tokenizer --data PATH... --vocab N -o TOK.gguf\n"
               "                                                train a byte-level BPE tokenizer\n"
               "                                                (files or folders of .txt)\n"
               "  dsrn train --data PATH... [--tokenizer TOK.gguf] [--preset tiny|small|base]\n"
               "             [--steps N | --tokens N | --time MIN] [--config FILE] [--resume CKPT.gguf]\n"
               "             [--SETTING VALUE...] -o OUT.gguf\n"
               "                                                train a DSRN model (dsrn train --help)\n"
               "  dsrn eval -m MODEL.gguf --tasks LIST|all [--limit N] [--json OUT] [--samples OUT.jsonl]\n"
               "            [--data DIR] [--batch N] [-t THREADS] [--profile det-i8-v1] [-q]\n"
               "                                                zero-shot tasks, scored as lm-eval does:\n"
               "                                                sciq piqa hellaswag winogrande arc_easy\n"
               "                                                arc_challenge lambada, or FILE.jsonl\n"
               "  dsrn eval -m MODEL.gguf --bpb FILE... [-t THREADS]\n"
               "                                                bits per byte of the model alone\n"
               "  dsrn eval -m MODEL.gguf --copy\n"
               "                                                copy probes: does the model repeat\n"
               "                                                what its window holds?\n");
    return f == stdout ? 0 : 1;
}

static void print_escaped(const uint8_t *s, size_t n, size_t max)
{
    for (size_t i = 0; i < n && i < max; i++) {
        uint8_t c = s[i];
        if (c == '\\' || c == '\'') printf("\\%c", c);
        else if (c >= 0x20 && c != 0x7F) putchar(c);
        else if (c == '\n') printf("\\n");
        else if (c == '\t') printf("\\t");
        else printf("\\x%02x", c);
    }
    if (n > max) printf("...");
}

static void print_value(const lmz_gguf_kv *kv, uint64_t i, uint32_t type, const uint8_t *p)
{
    (void)i;
    switch (type) {
    case LMZ_GGUF_UINT8: printf("%u", p[0]); break;
    case LMZ_GGUF_INT8: printf("%d", (int8_t)p[0]); break;
    case LMZ_GGUF_UINT16: printf("%u", (unsigned)(p[0] | p[1] << 8)); break;
    case LMZ_GGUF_INT16: printf("%d", (int16_t)(uint16_t)(p[0] | p[1] << 8)); break;
    case LMZ_GGUF_UINT32:
    case LMZ_GGUF_INT32: {
        uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        if (type == LMZ_GGUF_INT32) printf("%d", (int32_t)v);
        else printf("%u", v);
        break;
    }
    case LMZ_GGUF_FLOAT32: {
        uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        float f;
        memcpy(&f, &v, 4);
        printf("%g", (double)f);
        break;
    }
    case LMZ_GGUF_BOOL: printf("%s", p[0] ? "true" : "false"); break;
    case LMZ_GGUF_UINT64:
    case LMZ_GGUF_INT64:
    case LMZ_GGUF_FLOAT64: {
        uint64_t v = 0;
        for (int k = 7; k >= 0; k--) v = v << 8 | p[k];
        if (type == LMZ_GGUF_UINT64) printf("%llu", (unsigned long long)v);
        else if (type == LMZ_GGUF_INT64) printf("%lld", (long long)v);
        else {
            double d;
            memcpy(&d, &v, 8);
            printf("%g", d);
        }
        break;
    }
    case LMZ_GGUF_STRING: {
        uint64_t n = 0;
        for (int k = 7; k >= 0; k--) n = n << 8 | p[k];
        putchar('\'');
        print_escaped(p + 8, (size_t)n, 120);
        putchar('\'');
        break;
    }
    default: (void)kv; printf("?");
    }
}

static int cmd_info(int argc, char **argv)
{
    if (argc != 1) return usage(stderr);
    lmz_gguf g;
    char err[512];
    if (lmz_gguf_open(argv[0], &g, err, sizeof err) != 0) {
        fprintf(stderr, "dsrn: %s: %s\n", argv[0], err);
        return 1;
    }
    printf("%s: GGUF v%u, %llu metadata keys, %llu tensors, alignment %llu, data at %llu\n", argv[0],
           g.version, (unsigned long long)g.n_kv, (unsigned long long)g.n_tensors,
           (unsigned long long)g.alignment, (unsigned long long)g.data_offset);
    printf("\nmetadata:\n");
    for (uint64_t i = 0; i < g.n_kv; i++) {
        const lmz_gguf_kv *kv = &g.kv[i];
        printf("  %-40.*s ", (int)kv->key.len, kv->key.ptr);
        if (kv->type != LMZ_GGUF_ARRAY) {
            print_value(kv, 0, kv->type, kv->data);
        } else {
            printf("%s[%llu]", lmz_gguf_value_type_name(kv->elem_type), (unsigned long long)kv->count);
            uint64_t show = kv->count < 4 ? kv->count : 4;
            printf(" = [");
            for (uint64_t j = 0; j < show; j++) {
                if (j) printf(", ");
                if (kv->elem_type == LMZ_GGUF_STRING) {
                    lmz_str s = lmz_gguf_arr_str(kv, j);
                    putchar('\'');
                    print_escaped((const uint8_t *)s.ptr, s.len, 40);
                    putchar('\'');
                } else {
                    static const int sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
                    print_value(kv, j, kv->elem_type, kv->data + j * (uint64_t)sz[kv->elem_type]);
                }
            }
            printf("%s]", kv->count > show ? ", ..." : "");
        }
        putchar('\n');
    }
    printf("\ntensors:\n");
    uint64_t total = 0;
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const lmz_gguf_tensor *t = &g.tensors[i];
        char shape[96];
        int k = snprintf(shape, sizeof shape, "%llu", (unsigned long long)t->ne[0]);
        for (uint32_t d = 1; d < t->n_dims && k > 0 && (size_t)k < sizeof shape; d++)
            k += snprintf(shape + k, sizeof shape - (size_t)k, " x %llu", (unsigned long long)t->ne[d]);
        printf("  %-32.*s %-5s %-22s %12llu bytes at %llu\n", (int)t->name.len, t->name.ptr,
               lmz_gguf_type_name(t->type), shape, (unsigned long long)t->n_bytes,
               (unsigned long long)(g.data_offset + t->offset));
        total += t->n_elements;
    }
    printf("\n%llu parameters\n", (unsigned long long)total);
    lmz_gguf_close(&g);
    return 0;
}

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    uint8_t *b = malloc(cap);
    size_t k;
    while (b && (k = fread(b + len, 1, cap - len, f)) > 0) {
        len += k;
        if (len == cap) {
            uint8_t *nb = realloc(b, cap *= 2);
            if (!nb) { free(b); b = NULL; }
            b = nb;
        }
    }
    if (f != stdin) fclose(f);
    *n = len;
    return b;
}

/* The weight matrices (2-D float tensors) of a model in another type; every
 * other tensor and every metadata key as they are. Q8_0 needs rows of whole
 * 32-element blocks; a matrix whose rows are not stays as it is. */
static int cmd_quantize(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *type = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--type") && i + 1 < argc) type = argv[++i];
        else if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
        else if (argv[i][0] != '-' && !in) in = argv[i];
        else return usage(stderr);
    }
    if (!in || !out || !type) return usage(stderr);
    uint32_t to;
    if (!strcmp(type, "f16")) to = LMZ_GGML_F16;
    else if (!strcmp(type, "q8_0")) to = LMZ_GGML_Q8_0;
    else if (!strcmp(type, "f32")) to = LMZ_GGML_F32;
    else {
        fprintf(stderr, "dsrn quantize: unknown type '%s' (f16, q8_0 or f32)\n", type);
        return 1;
    }
    lmz_gguf g;
    char err[512];
    if (lmz_gguf_open(in, &g, err, sizeof err) != 0) {
        fprintf(stderr, "dsrn: %s: %s\n", in, err);
        return 1;
    }
    lmz_gguf_writer *w = lmz_gguf_writer_new();
    void **bufs = calloc(g.n_tensors ? g.n_tensors : 1, sizeof *bufs);
    char **names = calloc(g.n_tensors ? g.n_tensors : 1, sizeof *names);
    int rc = !w || !bufs || !names;
    for (uint64_t i = 0; i < g.n_kv && !rc; i++) lmz_gguf_w_copy(w, &g.kv[i]);
    uint64_t before = 0, after = 0;
    for (uint64_t i = 0; i < g.n_tensors && !rc; i++) {
        const lmz_gguf_tensor *t = &g.tensors[i];
        names[i] = strndup(t->name.ptr, t->name.len);
        if (!names[i]) {
            rc = 1;
            break;
        }
        uint64_t cols = t->ne[0], rows = t->n_elements / (cols ? cols : 1);
        int convert = t->n_dims == 2 && t->type != to && lmz_kernels_type_ok(t->type) &&
                      (to != LMZ_GGML_Q8_0 || cols % 32 == 0);
        before += t->n_bytes;
        if (!convert) {
            lmz_gguf_w_tensor(w, names[i], t->type, t->n_dims, t->ne, t->data);
            after += t->n_bytes;
            continue;
        }
        size_t rb = (size_t)lmz_ggml_row_bytes(to, cols);
        uint8_t *dst = malloc(rb * rows);
        float *row = malloc(cols * sizeof *row);
        if (!dst || !row) {
            free(dst);
            free(row);
            rc = 1;
            break;
        }
        size_t srb = (size_t)lmz_ggml_row_bytes(t->type, cols);
        for (uint64_t r = 0; r < rows; r++) {
            lmz_row_to_f32(LMZ_KPATH_SCALAR, (const uint8_t *)t->data + r * srb, t->type, (size_t)cols, row);
            uint8_t *o = dst + r * rb;
            if (to == LMZ_GGML_Q8_0) {
                lmz_quantize_q8_0(row, (size_t)cols, o);
            } else if (to == LMZ_GGML_F16) {
                for (uint64_t c = 0; c < cols; c++) {
                    uint16_t h = lmz_f32_to_f16(row[c]);
                    o[2 * c] = (uint8_t)h, o[2 * c + 1] = (uint8_t)(h >> 8);
                }
            } else {
                memcpy(o, row, cols * 4); /* little-endian hosts only (as the reader) */
            }
        }
        free(row);
        bufs[i] = dst;
        lmz_gguf_w_tensor(w, names[i], to, t->n_dims, t->ne, dst);
        after += rb * rows;
    }
    if (rc) {
        fprintf(stderr, "dsrn quantize: out of memory\n");
    } else {
        char *tmp = malloc(strlen(out) + 8);
        FILE *f = tmp ? (sprintf(tmp, "%s.tmp", out), fopen(tmp, "wb")) : NULL;
        if (!f || lmz_gguf_writer_write(w, f) != 0 || fclose(f) != 0 || rename(tmp, out) != 0) {
            fprintf(stderr, "dsrn quantize: %s: cannot write\n", out);
            if (tmp) remove(tmp);
            rc = 1;
        } else {
            printf("%s: %llu tensors, weights %.1f MB -> %.1f MB (%s)\n", out, (unsigned long long)g.n_tensors,
                   (double)before / 1e6, (double)after / 1e6, lmz_gguf_type_name(to));
        }
        free(tmp);
    }
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        if (bufs) free(bufs[i]);
        if (names) free(names[i]);
    }
    free(bufs);
    free(names);
    lmz_gguf_writer_free(w);
    lmz_gguf_close(&g);
    return rc;
}

static int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *file = NULL, *text = NULL;
    int only_ids = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "-f") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(argv[i], "--ids")) only_ids = 1;
        else if (argv[i][0] == '-' && argv[i][1]) return usage(stderr);
        else text = argv[i];
    }
    if (!model || (!file && !text) || (file && text)) return usage(stderr);
    lmz_gguf g;
    char err[512];
    if (lmz_gguf_open(model, &g, err, sizeof err) != 0) {
        fprintf(stderr, "dsrn: %s: %s\n", model, err);
        return 1;
    }
    lmz_tokenizer *t;
    if (lmz_tokenizer_load(&g, &t, err, sizeof err) != 0) {
        fprintf(stderr, "dsrn: %s: %s\n", model, err);
        lmz_gguf_close(&g);
        return 1;
    }
    lmz_gguf_close(&g);
    size_t n = text ? strlen(text) : 0;
    uint8_t *buf = text ? (uint8_t *)strdup(text) : read_all(file, &n);
    if (!buf) {
        fprintf(stderr, "dsrn: %s: cannot read\n", file ? file : "text");
        lmz_tokenizer_free(t);
        return 1;
    }
    size_t cap = n + 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    long k = ids ? lmz_tokenizer_encode(t, buf, n, ids, cap) : -1;
    if (k > (long)cap) { /* escapes take 3 ids a byte */
        free(ids);
        cap = (size_t)k;
        ids = malloc(cap * sizeof *ids);
        k = ids ? lmz_tokenizer_encode(t, buf, n, ids, cap) : -1;
    }
    if (k < 0) {
        fprintf(stderr, "dsrn: cannot tokenise: a byte has no token and the vocabulary no escape\n");
    } else if (only_ids) {
        putchar('[');
        for (long i = 0; i < k; i++) printf("%s%d", i ? ", " : "", ids[i]);
        printf("]\n");
    } else {
        for (long i = 0; i < k; i++) {
            size_t l;
            const uint8_t *b = lmz_tokenizer_token_bytes(t, ids[i], &l);
            printf("%6d -> '", ids[i]);
            print_escaped(b, l, 200);
            printf("'%s\n", ids[i] == lmz_tokenizer_escape_id(t) ? "  (escape)" : "");
        }
        fprintf(stderr, "%zu bytes, %ld tokens, %.3f bytes per token\n", n, k, k ? (double)n / (double)k : 0.0);
    }
    free(ids);
    free(buf);
    lmz_tokenizer_free(t);
    return k < 0;
}

static int cmd_logits(int argc, char **argv)
{
    const char *model = NULL, *ids_arg = NULL, *out_path = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--ids") && i + 1 < argc) ids_arg = argv[++i];
        else if (!strcmp(argv[i], "-o") && i + 1 < argc) out_path = argv[++i];
        else return usage(stderr);
    }
    if (!model || !ids_arg) return usage(stderr);
    size_t cap = strlen(ids_arg) / 2 + 2, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    for (const char *p = ids_arg; ids && *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 0x7FFFFFFF) {
            fprintf(stderr, "dsrn: --ids: expected numbers separated by commas\n");
            free(ids);
            return 1;
        }
        ids[n++] = (int32_t)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') {
            fprintf(stderr, "dsrn: --ids: unexpected '%c'\n", *end);
            free(ids);
            return 1;
        }
    }
    lmz_model *m;
    char err[512];
    if (!ids || lmz_model_open(model, NULL, &m, err, sizeof err) != 0) {
        fprintf(stderr, "dsrn: %s: %s\n", model, ids ? err : "out of memory");
        free(ids);
        return 1;
    }
    uint32_t V = lmz_model_vocab(m);
    float *logits = malloc(n * V * sizeof(float));
    lmz_state *s = lmz_state_new(m);
    int rc = 1;
    if (!logits || !s) {
        fprintf(stderr, "dsrn: out of memory\n");
    } else if (lmz_model_prefill(m, s, ids, n, logits) != 0) {
        fprintf(stderr, "dsrn: a token id is not below the vocabulary size %u\n", V);
    } else if (out_path) {
        FILE *f = fopen(out_path, "wb");
        int ok = f && fwrite(logits, sizeof(float), n * V, f) == n * V; /* little-endian hosts */
        if (f && fclose(f) != 0) ok = 0;
        if (!ok) fprintf(stderr, "dsrn: %s: cannot write\n", out_path);
        else rc = 0;
    } else {
        for (size_t i = 0; i < n; i++) {
            size_t best = 0;
            for (size_t j = 1; j < V; j++)
                if (logits[i * V + j] > logits[i * V + best]) best = j;
            printf("%zu: token %d -> argmax %zu (%.6f), logits[0..3] = %.6f %.6f %.6f %.6f\n", i, ids[i],
                   best, (double)logits[i * V + best], (double)logits[i * V], (double)logits[i * V + 1],
                   (double)logits[i * V + 2], (double)logits[i * V + 3]);
        }
        rc = 0;
    }
    free(logits);
    lmz_state_free(s);
    lmz_model_free(m);
    free(ids);
    return rc;
}

/* a whole number or a real, all of the argument or an error */
static int num_arg(const char *opt, const char *v, int is_real, double lo, double hi, double *out)
{
    char *end;
    double x = is_real ? strtod(v, &end) : (double)strtoll(v, &end, 10);
    if (end == v || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "dsrn generate: %s '%s': not a %s in %.15g..%.15g\n", opt, v, is_real ? "number" : "whole number", lo,
                hi);
        return -1;
    }
    *out = x;
    return 0;
}

/* a seed: any 64-bit whole number, written in decimal */
static int seed_arg(const char *v, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long x = 0;
    if (v[0] >= '0' && v[0] <= '9') x = strtoull(v, &end, 10); /* strtoull itself takes a sign or spaces */
    if (!end || *end || errno == ERANGE) {
        fprintf(stderr, "dsrn generate: --seed '%s': not a whole number in 0..18446744073709551615\n", v);
        return -1;
    }
    *out = (uint64_t)x;
    return 0;
}

static int cmd_generate(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL;
    double count = -1, v;
    uint64_t seed = 1;
    lmz_sample_params sp;
    lmz_sample_defaults(&sp);
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *a = i + 1 < argc ? argv[i + 1] : NULL;
        int r = 0;
        if (!a) {
            fprintf(stderr, "dsrn generate: %s: a value is missing\n", o);
            return 1;
        }
        if (!strcmp(o, "-m")) model = a;
        else if (!strcmp(o, "-p")) prompt = a;
        else if (!strcmp(o, "-n")) r = num_arg(o, a, 0, 0, 1e9, &count);
        else if (!strcmp(o, "--temp")) r = num_arg(o, a, 1, 0, 1e6, &sp.temp);
        else if (!strcmp(o, "--seed")) r = seed_arg(a, &seed);
        else if (!strcmp(o, "--top-k")) r = num_arg(o, a, 0, 0, 4294967295.0, &v), sp.top_k = (uint32_t)v;
        else if (!strcmp(o, "--top-p")) r = num_arg(o, a, 1, 0, 1, &sp.top_p);
        else if (!strcmp(o, "--min-p")) r = num_arg(o, a, 1, 0, 1, &sp.min_p);
        else if (!strcmp(o, "--repeat-penalty")) r = num_arg(o, a, 1, 0, 1e6, &sp.repeat_penalty);
        else if (!strcmp(o, "--repeat-last-n")) r = num_arg(o, a, 0, 0, 1e9, &v), sp.repeat_last_n = (uint32_t)v;
        else return usage(stderr);
        if (r != 0) return 1;
        i++;
    }
    if (!model || !prompt || count < 0) return usage(stderr);
    const char *bad = lmz_sample_check(&sp);
    if (bad) {
        fprintf(stderr, "dsrn generate: %s\n", bad);
        return 1;
    }
    lmz_model *m;
    char err[512];
    if (lmz_model_open(model, NULL, &m, err, sizeof err) != 0) {
        fprintf(stderr, "dsrn: %s: %s\n", model, err);
        return 1;
    }
    const lmz_tokenizer *tok = lmz_model_tokenizer(m);
    if (!tok) { /* the model runs on ids (dsrn logits --ids), not on text */
        fprintf(stderr, "dsrn: %s: %s\n", model, lmz_model_tokenizer_note(m));
        lmz_model_free(m);
        return 1;
    }
    uint32_t V = lmz_model_vocab(m);
    size_t plen = strlen(prompt), cap = 3 * plen + 2 + (size_t)count;
    int32_t *ids = malloc(cap * sizeof *ids);
    float *lg = malloc(V * sizeof *lg);
    void *scratch = malloc(lmz_sample_scratch_bytes(V));
    lmz_state *s = lmz_state_new(m);
    long k = ids ? lmz_tokenizer_encode(tok, (const uint8_t *)prompt, plen, ids, 3 * plen + 2) : -1;
    int rc = 1;
    if (!ids || !lg || !scratch || !s || k < 0) {
        fprintf(stderr, "dsrn: cannot start (memory or an untokenisable prompt)\n");
        goto out;
    }
    if (k == 0) { /* an empty prompt starts from BOS, or the first token */
        int32_t b = lmz_tokenizer_bos(tok);
        ids[k++] = b >= 0 ? b : 0;
    }
    fwrite(prompt, 1, plen, stdout);
    for (long i = 0; i + 1 < k; i++) lmz_model_prefill(m, s, &ids[i], 1, NULL);
    for (long i = 0; i < (long)count; i++) {
        lmz_model_step(m, &s, &ids[k - 1], 1, lg);
        int32_t cur = lmz_sample(&sp, lg, V, ids, (size_t)k, &seed, scratch);
        ids[k++] = cur;
        size_t l;
        const uint8_t *b = lmz_tokenizer_token_bytes(tok, cur, &l);
        fwrite(b, 1, l, stdout);
        fflush(stdout);
    }
    putchar('\n');
    rc = 0;
out:
    free(ids);
    free(lg);
    free(scratch);
    lmz_state_free(s);
    lmz_model_free(m);
    return rc;
}

/* Write a GGUF through a temporary file renamed into place: no partial
 * output is left behind on failure. */
static int write_gguf(lmz_gguf_writer *w, const char *path)
{
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp) return -1;
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int rc = f ? lmz_gguf_writer_write(w, f) : -1;
    if (f && fclose(f) != 0) rc = -1;
    if (rc == 0 && rename(tmp, path) != 0) rc = -1;
    if (rc != 0) {
        fprintf(stderr, "dsrn: cannot write %s\n", path);
        remove(tmp);
    }
    free(tmp);
    return rc;
}

static int cmd_tokenizer(int argc, char **argv)
{
    const char **paths = calloc((size_t)argc + 1, sizeof *paths), *out = NULL;
    size_t n_paths = 0;
    lmz_bpe_opts o = {8192, 1};
    int in_data = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--data")) {
            in_data = 1;
        } else if (!strcmp(argv[i], "--vocab") && i + 1 < argc) {
            o.vocab = (uint32_t)strtoul(argv[++i], NULL, 10);
            in_data = 0;
        } else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            out = argv[++i];
            in_data = 0;
        } else if (!strcmp(argv[i], "-q")) {
            o.verbose = 0;
        } else if (in_data && argv[i][0] != '-') {
            paths[n_paths++] = argv[i];
        } else {
            fprintf(stderr, "dsrn tokenizer: unexpected '%s'\n", argv[i]);
            free(paths);
            return usage(stderr);
        }
    }
    if (!n_paths || !out) {
        fprintf(stderr, "dsrn tokenizer: needs --data PATH... and -o OUT.gguf\n");
        free(paths);
        return 1;
    }
    char err[512];
    lmz_corpus c;
    if (lmz_corpus_load(paths, n_paths, &c, err, sizeof err) != 0) {
        fprintf(stderr, "dsrn tokenizer: %s\n", err);
        free(paths);
        return 1;
    }
    free(paths);
    if (o.verbose)
        fprintf(stderr, "dsrn tokenizer: %zu files (%zu read as Latin-1), %zu documents, %zu bytes\n", c.n_files,
                c.n_latin1, c.n_docs, c.len);
    lmz_gguf_writer *w = lmz_gguf_writer_new();
    lmz_bpe_stats st;
    int rc = w ? lmz_bpe_train(&c, &o, w, &st, err, sizeof err) : -1;
    lmz_corpus_free(&c);
    if (rc != 0) {
        fprintf(stderr, "dsrn tokenizer: %s\n", w ? err : "out of memory");
    } else {
        lmz_gguf_w_str(w, "general.name", "dsrn tokenizer");
        rc = write_gguf(w, out);
        if (rc == 0 && o.verbose)
            fprintf(stderr, "dsrn tokenizer: %u tokens (%u merges) written to %s\n", st.n_tokens, st.n_merges, out);
    }
    lmz_gguf_writer_free(w);
    return rc ? 1 : 0;
}

static int cmd_train(int argc, char **argv)
{
    dsrn_train_opts o;
    dsrn_train_defaults(&o);
    char err[512];
    /* a preset, then a configuration file, then the other flags */
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("dsrn train --data PATH... -o OUT.gguf [options]\n"
                   "  --preset tiny|small|base   model sizes (~1M, ~5M, ~20M parameters with 8k tokens)\n"
                   "  --config FILE              settings as 'key = value' lines (keys as below, and preset)\n"
                   "  --resume CKPT.gguf         continue a run (CKPT.opt.gguf holds the optimiser state)\n"
                   "  --init MODEL.gguf          start a new run (fresh optimiser and schedule) from a trained\n"
                   "                             model's weights (F32, F16, BF16 or Q8_0) and tokenizer\n"
                   "  -q                         no progress output\n"
                   "settings:\n%s",
                   dsrn_train_help());
            return 0;
        }
        if (!strcmp(argv[i], "--preset") && i + 1 < argc && dsrn_train_preset(&o, argv[i + 1]) != 0) {
            fprintf(stderr, "dsrn train: unknown preset '%s' (tiny, small, base)\n", argv[i + 1]);
            return 1;
        }
    }
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--config") && dsrn_train_config_file(&o, argv[i + 1], err, sizeof err) != 0) {
            fprintf(stderr, "dsrn train: %s\n", err);
            return 1;
        }
    int in_data = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--data")) {
            in_data = 1;
            continue;
        }
        if (in_data && a[0] != '-') {
            if (o.n_data == sizeof o.data / sizeof *o.data) {
                fprintf(stderr, "dsrn train: too many --data paths (give folders)\n");
                return 1;
            }
            o.data[o.n_data++] = a;
            continue;
        }
        in_data = 0;
        if (!strcmp(a, "-q")) {
            o.quiet = 1;
        } else if (i + 1 >= argc || strncmp(a, "-", 1)) {
            fprintf(stderr, "dsrn train: unexpected '%s' (dsrn train --help)\n", a);
            return 1;
        } else if (!strcmp(a, "-o")) {
            o.out = argv[++i];
        } else if (!strcmp(a, "--resume")) {
            o.resume = argv[++i];
        } else if (!strcmp(a, "--init")) {
            o.init = argv[++i];
        } else if (!strcmp(a, "--preset") || !strcmp(a, "--config")) {
            i++;
        } else if (strncmp(a, "--", 2) || dsrn_train_set(&o, a + 2, argv[i + 1], err, sizeof err) != 0) {
            fprintf(stderr, "dsrn train: %s\n", strncmp(a, "--", 2) ? "unknown option" : err);
            return 1;
        } else {
            i++;
        }
    }
    if (dsrn_train(&o, err, sizeof err) != 0) {
        fprintf(stderr, "dsrn train: %s\n", err);
        return 1;
    }
    return 0;
}

/* ---- dsrn eval --bpb ------------------------------------------------------ */

static int eval_bpb(lmz_model *m, const char **files, size_t nf)
{
    char err[512];
    int rc = 0;
    lmz_bpb sum = {0, 0, 0};
    for (size_t i = 0; i < nf; i++) {
        size_t n;
        uint8_t *text = read_all(files[i], &n);
        lmz_bpb r;
        if (!text) {
            fprintf(stderr, "dsrn eval: %s: cannot read\n", files[i]);
            rc = 1;
        } else if (lmz_eval_bpb(m, text, n, &r, err, sizeof err) != 0) {
            fprintf(stderr, "dsrn eval: %s: %s\n", files[i], err);
            rc = 1;
        } else {
            printf("%-40s %10llu bytes %9llu tokens %8.4f bits/byte\n", files[i], (unsigned long long)r.bytes,
                   (unsigned long long)r.tokens, r.bytes ? r.bits / (double)r.bytes : 0.0);
            sum.bytes += r.bytes;
            sum.tokens += r.tokens;
            sum.bits += r.bits;
        }
        free(text);
    }
    if (nf > 1 && sum.bytes)
        printf("%-40s %10llu bytes %9llu tokens %8.4f bits/byte\n", "total", (unsigned long long)sum.bytes,
               (unsigned long long)sum.tokens, sum.bits / (double)sum.bytes);
    return rc;
}

/* ---- dsrn eval --copy ----------------------------------------------------- */

/* Copy probes: a context that states something, then starts to state it
 * again; the continuation is what the window already holds. A model that
 * copies gives it a high probability (lm-eval's scoring, one request each:
 * lmz_task_score_alone). */
static const char *const copy_probes[][2] = {
    {"The cat sat on the mat. The dog sat on the mat. The bird sat on the", " mat"},
    {"My name is Zorblat Quenstrup. I said it before and I say it again: my name is Zorblat", " Quenstrup"},
    {"The password is orange-kite-42. To log in, type orange-kite", "-42"},
    {"alpha, beta, gamma, delta, epsilon. Once more: alpha, beta, gamma, delta,", " epsilon"},
    {"Order 7391 was shipped to Ms. Okonkwo in Lagos. Order 7391 was shipped to Ms.", " Okonkwo"},
    {"def frobnicate_widget(x):\n    return x\n\nprint(frobnicate_", "widget"},
};

static int eval_copy(lmz_model *m)
{
    size_t n = sizeof copy_probes / sizeof *copy_probes, copied = 0;
    double sum = 0;
    printf("%-6s %-12s %7s %6s %s\n", "probe", "p", "tokens", "greedy", "continuation");
    for (size_t i = 0; i < n; i++) {
        lmz_req_score r;
        if (lmz_task_score_alone(m, copy_probes[i][0], copy_probes[i][1], &r) != 0) {
            fprintf(stderr, "dsrn eval: the copy probes need the model's tokenizer\n");
            return 1;
        }
        double p = exp(r.ll);
        sum += p;
        copied += p > 0.5;
        printf("%-6zu %-12.4g %7u %6s \"%s\"\n", i + 1, p, r.tokens, r.greedy ? "yes" : "no", copy_probes[i][1]);
    }
    printf("copy probes: mean p %.4g, %zu of %zu above 0.5\n", sum / (double)n, copied, n);
    return 0;
}

/* ---- dsrn eval --tasks ---------------------------------------------------- */

/* the tasks of the Echo-DSRN table and lm-eval's usual zero-shot set */
static const char *const default_tasks = "sciq,piqa,hellaswag,winogrande,arc_easy,lambada";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    const char *name;
    double t0, last;
} progress;

static void show_progress(void *ctx, size_t done, size_t total)
{
    progress *p = ctx;
    double t = now_s();
    if (done < total && t - p->last < 0.25) return;
    p->last = t;
    double el = t - p->t0, eta = done ? el * (double)(total - done) / (double)done : 0;
    fprintf(stderr, "\r%-16s %7zu / %zu items %3.0f%%  %5.0f s, ETA %5.0f s ", p->name, done, total,
            100.0 * (double)done / (double)total, el, eta);
    if (done == total) fprintf(stderr, "\r%*s\r", 70, "");
    fflush(stderr);
}

/* a task name: a path (with '/' or ending in .jsonl), or NAME of DIR/NAME.jsonl */
static char *task_path(const char *dir, const char *name)
{
    size_t n = strlen(name);
    if (strchr(name, '/') || (n > 6 && !strcmp(name + n - 6, ".jsonl"))) return strdup(name);
    if (!strcmp(name, "lambada")) name = "lambada_openai";
    size_t len = strlen(dir) + strlen(name) + 8;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s/%s.jsonl", dir, name);
    return p;
}

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static void samples_write(FILE *f, const lmz_task *t, const lmz_task_result *r)
{
    for (size_t i = 0; i < t->n; i++) {
        const lmz_task_item *it = &t->items[i];
        json_t *o = json_object(), *ll = json_array(), *tk = json_array(), *g = json_array();
        for (unsigned j = 0; j < it->n; j++) {
            const lmz_req_score *s = &r->score[r->first[i] + j];
            json_array_append_new(ll, json_real(s->ll));
            json_array_append_new(tk, json_integer(s->tokens));
            json_array_append_new(g, json_boolean(s->greedy));
        }
        json_object_set_new(o, "task", json_string(t->name));
        json_object_set_new(o, "id", json_string(it->id));
        if (it->gold >= 0) json_object_set_new(o, "gold", json_integer(it->gold));
        json_object_set_new(o, "ll", ll);
        json_object_set_new(o, "tokens", tk);
        json_object_set_new(o, "greedy", g);
        json_dumpf(o, f, JSON_COMPACT | JSON_REAL_PRECISION(17));
        fputc('\n', f);
        json_decref(o);
    }
}

static uint64_t model_params(const lmz_model *m)
{
    const lmz_gguf *g = lmz_model_gguf(m);
    uint64_t n = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        uint64_t e = 1;
        for (uint32_t d = 0; d < g->tensors[i].n_dims; d++) e *= g->tensors[i].ne[d];
        n += e;
    }
    return n;
}

static void pm(double v, double se, int width)
{
    if (isfinite(v)) printf(" %*.4f ± %.4f |", width, v, se);
    else printf(" %*s |", width + 9, "");
}

static int eval_tasks(lmz_model *m, const char *model, const char *tasks, const char *dir, size_t limit,
                      unsigned batch, const char *json_out, const char *samples_out, int quiet)
{
    char err[512];
    char *list = strdup(tasks);
    json_t *root = json_object(), *jt = json_object();
    FILE *sf = NULL;
    int rc = 0;
    if (!list || !root || !jt) {
        fprintf(stderr, "dsrn eval: out of memory\n");
        free(list);
        json_decref(root);
        json_decref(jt);
        return 1;
    }
    if (samples_out && !(sf = fopen(samples_out, "w"))) {
        fprintf(stderr, "dsrn eval: %s: cannot write\n", samples_out);
        free(list);
        json_decref(root);
        json_decref(jt);
        return 1;
    }
    lmz_str name = {"", 0};
    lmz_gguf_get_str(lmz_model_gguf(m), "general.name", &name);
    uint64_t params = model_params(m);
    printf("model %s (%.*s, %s, %.2fM parameters)\n", model, (int)name.len, name.ptr, lmz_model_arch(m),
           (double)params / 1e6);
    if (limit) printf("at most %zu items per task\n", limit);
    printf("| task | items | acc | acc_norm | perplexity | seconds |\n|---|---:|---:|---:|---:|---:|\n");
    fflush(stdout);
    for (char *sv = NULL, *tn = strtok_r(list, ",", &sv); tn; tn = strtok_r(NULL, ",", &sv)) {
        if (!*tn) continue;
        char *path = task_path(dir, tn);
        lmz_task t;
        lmz_task_result r;
        if (!path || lmz_task_load(path, limit, &t, err, sizeof err) != 0) {
            fprintf(stderr, "dsrn eval: %s\n", path ? err : "out of memory");
            free(path);
            rc = 1;
            continue;
        }
        free(path);
        progress pg = {t.name, now_s(), 0};
        lmz_task_opts o = {batch, quiet ? NULL : show_progress, &pg};
        if (lmz_task_run(m, &t, &o, &r, err, sizeof err) != 0) {
            fprintf(stderr, "dsrn eval: %s: %s\n", t.name, err);
            lmz_task_free(&t);
            rc = 1;
            continue;
        }
        double secs = now_s() - pg.t0;
        printf("| %s | %zu |", t.name, t.n);
        pm(r.acc, r.acc_se, 6);
        pm(r.acc_norm, r.acc_norm_se, 6);
        pm(r.ppl, r.ppl_se, 8);
        printf(" %.1f |\n", secs);
        fflush(stdout);
        json_t *o2 = json_object();
        json_object_set_new(o2, "kind", json_string(lmz_task_kind_name(t.kind)));
        json_object_set_new(o2, "items", json_integer((json_int_t)t.n));
        json_object_set_new(o2, "acc", num(r.acc));
        json_object_set_new(o2, "acc_stderr", num(r.acc_se));
        if (t.kind == LMZ_TASK_MC) {
            json_object_set_new(o2, "acc_norm", num(r.acc_norm));
            json_object_set_new(o2, "acc_norm_stderr", num(r.acc_norm_se));
        }
        if (t.kind == LMZ_TASK_LB) {
            json_object_set_new(o2, "perplexity", num(r.ppl));
            json_object_set_new(o2, "perplexity_stderr", num(r.ppl_se));
        }
        json_object_set_new(o2, "tokens_fed", json_integer((json_int_t)r.tokens_fed));
        json_object_set_new(o2, "seconds", json_real(secs));
        json_object_set_new(jt, t.name, o2);
        if (sf) samples_write(sf, &t, &r);
        lmz_task_result_free(&r);
        lmz_task_free(&t);
    }
    json_object_set_new(root, "model", json_string(model));
    json_object_set_new(root, "name", json_stringn(name.ptr, name.len));
    json_object_set_new(root, "architecture", json_string(lmz_model_arch(m)));
    json_object_set_new(root, "parameters", json_integer((json_int_t)params));
    json_object_set_new(root, "limit", json_integer((json_int_t)limit));
    json_object_set_new(root, "tasks", jt);
    if (json_out && json_dump_file(root, json_out, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) != 0) {
        fprintf(stderr, "dsrn eval: %s: cannot write\n", json_out);
        rc = 1;
    }
    if (sf && fclose(sf) != 0) {
        fprintf(stderr, "dsrn eval: %s: cannot write\n", samples_out);
        rc = 1;
    }
    json_decref(root);
    free(list);
    return rc;
}

static int cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *tasks = NULL, *json_out = NULL, *samples_out = NULL;
    const char *dir = getenv("DSRN_EVAL_DATA") ? getenv("DSRN_EVAL_DATA") : "../shared/data/eval";
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    size_t nf = 0, limit = 0;
    unsigned threads = 1, batch = 0;
    int in_bpb = 0, quiet = 0, copy = 0, int8 = 0;
    if (!files) return 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (in_bpb && a[0] != '-') {
            files[nf++] = a;
            continue;
        }
        in_bpb = 0;
        if (!strcmp(a, "--bpb")) in_bpb = 1;
        else if (!strcmp(a, "--copy")) copy = 1;
        else if (!strcmp(a, "-q")) quiet = 1;
        else if (!v) goto bad;
        else if (!strcmp(a, "-m")) model = v, i++;
        else if (!strcmp(a, "--tasks")) tasks = !strcmp(v, "all") ? default_tasks : v, i++;
        else if (!strcmp(a, "--data")) dir = v, i++;
        else if (!strcmp(a, "--json")) json_out = v, i++;
        else if (!strcmp(a, "--samples")) samples_out = v, i++;
        else if (!strcmp(a, "--profile") && (!strcmp(v, "det-i8-v1") || !strcmp(v, "det-f32"))) /* the engine's products */
            int8 = !strcmp(v, "det-i8-v1"), i++;
        else if (!strcmp(a, "-t") || !strcmp(a, "--limit") || !strcmp(a, "--batch")) {
            unsigned long long x = strtoull(v, &end, 10);
            if (!*v || *end || v[0] == '-' || x > 1000000000ull) goto bad;
            if (!strcmp(a, "-t")) threads = (unsigned)x;
            else if (!strcmp(a, "--limit")) limit = (size_t)x;
            else batch = (unsigned)x;
            i++;
        } else goto bad;
        continue;
    bad:
        fprintf(stderr, "dsrn eval: unexpected '%s'%s\n", a, v ? "" : " (a value is missing?)");
        free(files);
        return 1;
    }
    if (!model || (nf != 0) + (tasks != NULL) + copy != 1) {
        fprintf(stderr, "dsrn eval: needs -m MODEL.gguf and one of --tasks LIST, --bpb FILE... or --copy\n");
        free(files);
        return 1;
    }
    lmz_model_opts o = {threads ? threads : 1, 0, int8};
    lmz_model *m;
    char err[512];
    if (lmz_model_open(model, &o, &m, err, sizeof err) != 0) {
        fprintf(stderr, "dsrn eval: %s: %s\n", model, err);
        free(files);
        return 1;
    }
    int rc = copy ? eval_copy(m)
             : nf ? eval_bpb(m, files, nf)
                  : eval_tasks(m, model, tasks, dir, limit, batch, json_out, samples_out, quiet || !isatty(2));
    lmz_model_free(m);
    free(files);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage(stderr);
    if (!strcmp(argv[1], "info")) return cmd_info(argc - 2, argv + 2);
    if (!strcmp(argv[1], "tokenize")) return cmd_tokenize(argc - 2, argv + 2);
    if (!strcmp(argv[1], "logits")) return cmd_logits(argc - 2, argv + 2);
    if (!strcmp(argv[1], "generate")) return cmd_generate(argc - 2, argv + 2);
    if (!strcmp(argv[1], "tokenizer")) return cmd_tokenizer(argc - 2, argv + 2);
    if (!strcmp(argv[1], "train")) return cmd_train(argc - 2, argv + 2);
    if (!strcmp(argv[1], "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(argv[1], "quantize")) return cmd_quantize(argc - 2, argv + 2);
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) return usage(stdout);
    fprintf(stderr, "dsrn: unknown command '%s'\n", argv[1]);
    return usage(stderr);
}
