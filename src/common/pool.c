/* pool.c — see pool.h.
 *
 * Jobs come thousands of times a second during inference (one per matrix
 * product), and waking a sleeping thread costs tens of microseconds on a
 * busy machine; so workers first spin on the job counter for a while, and
 * only then sleep on the condition variable. */
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define SPIN 20000 /* polls before sleeping (tens of microseconds) */

struct lmz_pool {
    unsigned n;                /* threads in all, the caller included */
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    atomic_ulong gen;          /* job number */
    atomic_uint pending;       /* workers still busy with the job */
    atomic_int quit;
    lmz_pool_fn fn;
    void *ctx;
    size_t len;
};

typedef struct {
    lmz_pool *p;
    unsigned idx;
} worker_arg;

static void part(const lmz_pool *p, unsigned i, size_t *b, size_t *e)
{
    *b = p->len * i / p->n;
    *e = p->len * (i + 1) / p->n;
}

static void *worker(void *a)
{
    worker_arg *w = a;
    lmz_pool *p = w->p;
    unsigned idx = w->idx;
    free(w);
    unsigned long seen = 0;
    for (;;) {
        unsigned long g = seen;
        for (int i = 0; i < SPIN && (g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen &&
                        !atomic_load_explicit(&p->quit, memory_order_relaxed);
             i++)
            CPU_RELAX();
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->quit)) pthread_cond_wait(&p->go, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) return NULL;
        seen = g;
        size_t b, e;
        part(p, idx, &b, &e);
        if (b < e) p->fn(p->ctx, b, e, idx);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu); /* the caller may be asleep */
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

lmz_pool *lmz_pool_new(unsigned threads)
{
    lmz_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = threads ? threads : 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->quit, 0);
    if (p->n > 1) {
        p->th = calloc(p->n - 1, sizeof *p->th);
        if (!p->th) {
            free(p);
            return NULL;
        }
        for (unsigned i = 1; i < p->n; i++) {
            worker_arg *w = malloc(sizeof *w);
            if (w) {
                w->p = p;
                w->idx = i;
            }
            if (!w || pthread_create(&p->th[i - 1], NULL, worker, w) != 0) {
                free(w);
                p->n = i; /* keep the workers that started */
                break;
            }
        }
    }
    return p;
}

unsigned lmz_pool_threads(const lmz_pool *p) { return p ? p->n : 1; }

void lmz_pool_free(lmz_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 1; i < p->n; i++) pthread_join(p->th[i - 1], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->th);
    free(p);
}

void lmz_pool_for_work(lmz_pool *p, size_t n, double work, lmz_pool_fn fn, void *ctx)
{
    if (work < LMZ_POOL_MIN_WORK) { /* waking the workers would cost more */
        if (n) fn(ctx, 0, n, 0);
        return;
    }
    lmz_pool_for(p, n, fn, ctx);
}

void lmz_pool_for(lmz_pool *p, size_t n, lmz_pool_fn fn, void *ctx)
{
    if (!p || p->n == 1 || n < 2) {
        if (n) fn(ctx, 0, n, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->len = n;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release); /* publishes fn, ctx, len */
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    size_t b, e;
    part(p, 0, &b, &e);
    if (b < e) fn(ctx, b, e, 0);
    for (int i = 0; i < SPIN && atomic_load_explicit(&p->pending, memory_order_acquire); i++) CPU_RELAX();
    if (atomic_load_explicit(&p->pending, memory_order_acquire)) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->pending)) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}
