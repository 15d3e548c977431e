/* pool.c — see pool.h.
 *
 * Jobs come thousands of times a second during inference (one per matrix
 * product), and waking a sleeping thread costs tens of microseconds on a
 * busy machine; so workers first spin on the job counter for a while, and
 * only then sleep on the condition variable.
 *
 * A job's ranges are fixed (part: range i of n, as the thread count says),
 * but not who runs them: each thread claims ranges, its own first, then
 * any still unclaimed, so a worker the scheduler has not run yet (another
 * process on the core) costs nothing: the caller runs its range too, and
 * waits only for ranges a running thread has claimed. A range is claimed
 * by moving claimed[i] to the job's number, which only one thread can do;
 * a worker that wakes after its job is over finds every range claimed. */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
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
    atomic_ulong *claimed;     /* (n) the last job whose range i was claimed */
    atomic_uint busy;          /* threads claiming or running a range */
    atomic_int quit;
    _Atomic(lmz_pool_fn) fn;   /* the job (published before gen) */
    _Atomic(void *) ctx;
    atomic_size_t len;
};

typedef struct {
    lmz_pool *p;
    unsigned idx;
} worker_arg;

/* Every range of job g not yet claimed, from range `first` on. */
static void run_ranges(lmz_pool *p, unsigned long g, unsigned first)
{
    lmz_pool_fn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
    void *ctx = atomic_load_explicit(&p->ctx, memory_order_relaxed);
    size_t len = atomic_load_explicit(&p->len, memory_order_relaxed);
    for (unsigned k = 0; k < p->n; k++) {
        unsigned i = (first + k) % p->n;
        unsigned long c = atomic_load(&p->claimed[i]);
        if (c >= g) continue; /* claimed (or a later job: this one is over) */
        atomic_fetch_add(&p->busy, 1);
        if (atomic_compare_exchange_strong(&p->claimed[i], &c, g)) {
            size_t b = len * i / p->n, e = len * (i + 1) / p->n;
            if (b < e) fn(ctx, b, e, i);
        }
        if (atomic_fetch_sub(&p->busy, 1) == 1) {
            pthread_mutex_lock(&p->mu); /* the caller may be asleep */
            pthread_cond_broadcast(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
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
        run_ranges(p, g, idx);
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
    atomic_init(&p->busy, 0);
    atomic_init(&p->quit, 0);
    atomic_init(&p->fn, NULL);
    atomic_init(&p->ctx, NULL);
    atomic_init(&p->len, 0);
    if (!(p->claimed = calloc(p->n, sizeof *p->claimed))) {
        free(p);
        return NULL;
    }
    for (unsigned i = 0; i < p->n; i++) atomic_init(&p->claimed[i], 0);
    if (p->n > 1) {
        p->th = calloc(p->n - 1, sizeof *p->th);
        if (!p->th) {
            free(p->claimed);
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
    free(p->claimed);
    free(p);
}

void lmz_pool_relax(unsigned polls)
{
    if (polls < SPIN) CPU_RELAX();
    else sched_yield();
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
    atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&p->len, n, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    unsigned long g = atomic_fetch_add_explicit(&p->gen, 1, memory_order_release) + 1; /* publishes the job */
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    run_ranges(p, g, 0); /* range 0, then any a worker has not claimed */
    for (int i = 0; i < SPIN && atomic_load(&p->busy); i++) CPU_RELAX();
    if (atomic_load(&p->busy)) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->busy)) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}
