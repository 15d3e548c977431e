/*
 * mm.c — the trainer's bf16 matrix products through oneDNN (mm.h).
 *
 * One oneDNN matmul primitive per product shape (transposes, sizes, output
 * stride, accumulate or not, thread count), made on first use and kept: a
 * training step asks for the same few dozen shapes every time. Each call
 * rounds its inputs to bf16 into two reused buffers (dense, so that the
 * primitive's layout never depends on the caller's strides) and runs the
 * primitive on the OpenMP threads the trainer uses (Debian's oneDNN is built
 * on OpenMP: one team of threads, no oversubscription).
 */
#include "mm.h"

#include <cblas.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef DSRN_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

unsigned short dsrn_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40); /* NaN: kept quiet */
    u += 0x7fffu + ((u >> 16) & 1);
    return (unsigned short)(u >> 16);
}

#ifdef DSRN_DNNL

/* one row: the same rounding as dsrn_bf16, written without branches so
 * that the loop vectorises (in AVX2 where the CPU has it) */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(LMZ_NO_MULTIVERSION)
__attribute__((target_clones("avx2", "default")))
#endif
static void row_to_bf16(const float *restrict x, size_t n, uint16_t *restrict y)
{
    for (size_t c = 0; c < n; c++) {
        uint32_t u;
        memcpy(&u, x + c, 4);
        uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1)) >> 16, nan = (u >> 16) | 0x40;
        y[c] = (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
    }
}

/* rows x cols of a row-major float matrix (leading dimension ld) into a
 * dense bf16 one */
static void to_bf16(const float *x, size_t rows, size_t cols, size_t ld, uint16_t *y)
{
#pragma omp parallel for schedule(static) if (rows * cols >= 32768)
    for (size_t r = 0; r < rows; r++) row_to_bf16(x + r * ld, cols, y + r * cols);
}

typedef struct {
    int ta, tb, M, N, K, ldc, acc, nthr;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c;
} entry;

static struct {
    dnnl_engine_t eng;
    dnnl_stream_t st;
    entry *e;
    size_t n, cap;
    uint16_t *abuf, *bbuf;
    size_t acap, bcap;
    char impl[80];
} g;

static void fail(const char *what, dnnl_status_t s)
{
    fprintf(stderr, "dsrn: oneDNN: %s failed (status %d)%s\n", what, (int)s,
            s == dnnl_out_of_memory ? ": out of memory" : "");
    exit(1);
}

static void check(dnnl_status_t s, const char *what)
{
    if (s != dnnl_success) fail(what, s);
}

static void init(void)
{
    if (g.eng) return;
    check(dnnl_engine_create(&g.eng, dnnl_cpu, 0), "engine");
    check(dnnl_stream_create(&g.st, g.eng, dnnl_stream_default_flags), "stream");
}

static entry *primitive(int ta, int tb, int M, int N, int K, int ldc, int acc)
{
    int nthr = omp_in_parallel() ? 1 : omp_get_max_threads();
    for (size_t i = 0; i < g.n; i++) {
        entry *e = &g.e[i];
        if (e->ta == ta && e->tb == tb && e->M == M && e->N == N && e->K == K && e->ldc == ldc && e->acc == acc &&
            e->nthr == nthr)
            return e;
    }
    init();
    if (g.n == g.cap) {
        size_t cap = g.cap ? 2 * g.cap : 32;
        entry *p = realloc(g.e, cap * sizeof *p);
        if (!p) fail("a primitive's memory", dnnl_out_of_memory);
        g.e = p;
        g.cap = cap;
    }
    entry *e = &g.e[g.n];
    memset(e, 0, sizeof *e);
    e->ta = ta, e->tb = tb, e->M = M, e->N = N, e->K = K, e->ldc = ldc, e->acc = acc, e->nthr = nthr;
    /* A: M x K, dense, stored transposed when ta; B: K x N likewise; C: M x N, rows ldc apart */
    dnnl_dims_t ad = {M, K}, as = {ta ? 1 : K, ta ? M : 1};
    dnnl_dims_t bd = {K, N}, bs = {tb ? 1 : N, tb ? K : 1};
    dnnl_dims_t cd = {M, N}, cs = {ldc, 1};
    dnnl_memory_desc_t amd, bmd, cmd;
    check(dnnl_memory_desc_init_by_strides(&amd, 2, ad, dnnl_bf16, as), "memory descriptor");
    check(dnnl_memory_desc_init_by_strides(&bmd, 2, bd, dnnl_bf16, bs), "memory descriptor");
    check(dnnl_memory_desc_init_by_strides(&cmd, 2, cd, dnnl_f32, cs), "memory descriptor");
    dnnl_matmul_desc_t md;
    check(dnnl_matmul_desc_init(&md, &amd, &bmd, NULL, &cmd), "matmul descriptor");
    dnnl_primitive_attr_t attr;
    dnnl_post_ops_t po;
    check(dnnl_primitive_attr_create(&attr), "attributes");
    check(dnnl_post_ops_create(&po), "post-ops");
    if (acc) {
        check(dnnl_post_ops_append_sum(po, 1.0f), "sum post-op");
        check(dnnl_primitive_attr_set_post_ops(attr, po), "post-ops");
    }
    dnnl_primitive_desc_t pd;
    check(dnnl_primitive_desc_create(&pd, &md, attr, g.eng, NULL), "matmul primitive descriptor");
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl)
        snprintf(g.impl, sizeof g.impl, "%s", impl);
    check(dnnl_primitive_create(&e->prim, pd), "matmul primitive");
    check(dnnl_memory_create(&e->a, &amd, g.eng, DNNL_MEMORY_NONE), "memory");
    check(dnnl_memory_create(&e->b, &bmd, g.eng, DNNL_MEMORY_NONE), "memory");
    check(dnnl_memory_create(&e->c, &cmd, g.eng, DNNL_MEMORY_NONE), "memory");
    dnnl_primitive_desc_destroy(pd);
    dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    g.n++;
    return e;
}

static uint16_t *grow(uint16_t **buf, size_t *cap, size_t n)
{
    if (n > *cap) {
        uint16_t *p = realloc(*buf, n * sizeof *p);
        if (!p) fail("a bf16 buffer", dnnl_out_of_memory);
        *buf = p;
        *cap = n;
    }
    return *buf;
}

void dsrn_mm_bf16(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                  int accumulate, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* an empty sum */
        if (!accumulate)
            for (int i = 0; i < M; i++) memset(C + (size_t)i * ldc, 0, (size_t)N * sizeof *C);
        return;
    }
    size_t m = (size_t)M, n = (size_t)N, k = (size_t)K;
    uint16_t *a = grow(&g.abuf, &g.acap, m * k), *b = grow(&g.bbuf, &g.bcap, k * n);
    if (ta) to_bf16(A, k, m, (size_t)lda, a);
    else to_bf16(A, m, k, (size_t)lda, a);
    if (tb) to_bf16(B, n, k, (size_t)ldb, b);
    else to_bf16(B, k, n, (size_t)ldb, b);
    entry *e = primitive(ta, tb, M, N, K, ldc, accumulate);
    check(dnnl_memory_set_data_handle(e->a, a), "memory");
    check(dnnl_memory_set_data_handle(e->b, b), "memory");
    check(dnnl_memory_set_data_handle(e->c, C), "memory");
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}};
    check(dnnl_primitive_execute(e->prim, g.st, 3, args), "matmul");
    check(dnnl_stream_wait(g.st), "matmul");
}

void dsrn_mm_release(void)
{
    for (size_t i = 0; i < g.n; i++) {
        dnnl_primitive_destroy(g.e[i].prim);
        dnnl_memory_destroy(g.e[i].a);
        dnnl_memory_destroy(g.e[i].b);
        dnnl_memory_destroy(g.e[i].c);
    }
    free(g.e);
    free(g.abuf);
    free(g.bbuf);
    if (g.st) dnnl_stream_destroy(g.st);
    if (g.eng) dnnl_engine_destroy(g.eng);
    memset(&g, 0, sizeof g);
}

int dsrn_mm_bf16_native(void)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return ((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) == (unsigned)dnnl_cpu_isa_avx512_core_bf16;
}

/* the bf16 path's description into buf */
static void describe_bf16(char *buf, size_t n)
{
    if (!dsrn_mm_bf16_native()) {
        snprintf(buf, n, "%s", "bf16 (not on this CPU: neither AMX-BF16 nor AVX512-BF16)");
        return;
    }
    if (!g.impl[0]) { /* a small product names the implementation */
        float x[64 * 64] = {0}, y[64 * 64];
        dsrn_mm_bf16(0, 1, 64, 64, 64, x, 64, x, 64, 0, y, 64);
    }
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, n, "bf16 (oneDNN %d.%d.%d, %s)", v->major, v->minor, v->patch, g.impl);
}

#else /* built without oneDNN */

void dsrn_mm_bf16(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                  int accumulate, float *C, int ldc)
{
    (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)A, (void)lda, (void)B, (void)ldb, (void)accumulate,
        (void)C, (void)ldc;
    fprintf(stderr, "dsrn: bf16 products need oneDNN, which this build lacks\n");
    exit(1);
}

void dsrn_mm_release(void) {}

int dsrn_mm_bf16_native(void) { return 0; }

static void describe_bf16(char *buf, size_t n) { snprintf(buf, n, "%s", "bf16 (unavailable: built without oneDNN)"); }

#endif

const char *dsrn_mm_describe(dsrn_mm_kind kind)
{
    static char buf[160];
    if (kind == DSRN_MM_F32) snprintf(buf, sizeof buf, "f32 (OpenBLAS, %s)", openblas_get_corename());
    else describe_bf16(buf, sizeof buf);
    return buf;
}

int dsrn_mm_choose(const char *name, dsrn_mm_kind *kind, char *err, size_t errlen)
{
    if (!name || !strcmp(name, "auto")) {
        *kind = dsrn_mm_bf16_native() ? DSRN_MM_BF16 : DSRN_MM_F32;
        return 0;
    }
    if (!strcmp(name, "f32")) {
        *kind = DSRN_MM_F32;
        return 0;
    }
    if (!strcmp(name, "bf16")) {
#ifndef DSRN_DNNL
        snprintf(err, errlen, "%s", "--matmul=bf16: this build has no oneDNN (install libdnnl-dev and rebuild)");
        return -1;
#else
        if (!dsrn_mm_bf16_native()) {
            snprintf(err, errlen, "%s", "--matmul=bf16: this CPU has neither AMX-BF16 nor AVX512-BF16 (use f32)");
            return -1;
        }
        *kind = DSRN_MM_BF16;
        return 0;
#endif
    }
    snprintf(err, errlen, "--matmul: '%s' is not auto, bf16 or f32", name);
    return -1;
}
