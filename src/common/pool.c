/* pool.c — see pool.h. */
#include "pool.h"

#include <pthread.h>
#include <stdlib.h>

struct lmz_pool {
    unsigned n;                /* threads in all, the caller included */
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long gen;         /* job number */
    unsigned pending;          /* workers still busy with the job */
    int quit;
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
        pthread_mutex_lock(&p->mu);
        while (p->gen == seen && !p->quit) pthread_cond_wait(&p->go, &p->mu);
        if (p->quit) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        size_t b, e;
        part(p, idx, &b, &e);
        if (b < e) p->fn(p->ctx, b, e, idx);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
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
    p->quit = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 1; i < p->n; i++) pthread_join(p->th[i - 1], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->th);
    free(p);
}

void lmz_pool_for(lmz_pool *p, size_t n, lmz_pool_fn fn, void *ctx)
{
    if (!p || p->n == 1 || n < 2) {
        if (n) fn(ctx, 0, n, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->len = n;
    p->pending = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    size_t b, e;
    part(p, 0, &b, &e);
    if (b < e) fn(ctx, b, e, 0);
    pthread_mutex_lock(&p->mu);
    while (p->pending) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
