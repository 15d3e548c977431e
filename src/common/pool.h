/*
 * pool.h — a small pool of worker threads for "parallel for" over
 * independent outputs (rows of a matrix product). The caller's thread takes
 * part too. Work is split into contiguous ranges; since every output is
 * computed the same way whatever range it falls in, results never depend on
 * the thread count.
 */
#ifndef LMZ_POOL_H
#define LMZ_POOL_H

#include <stddef.h>

typedef struct lmz_pool lmz_pool;

/* threads: total threads including the caller's (1 = no workers).
 * @return NULL when threads could not be started. */
lmz_pool *lmz_pool_new(unsigned threads);
void lmz_pool_free(lmz_pool *p);
unsigned lmz_pool_threads(const lmz_pool *p);

/* Call fn(ctx, begin, end, thread) on disjoint ranges covering [0, n);
 * thread (0 .. threads-1) tells which scratch a call may use. Returns when
 * all are done. p may be NULL (runs fn(ctx, 0, n, 0) here). */
typedef void (*lmz_pool_fn)(void *ctx, size_t begin, size_t end, unsigned thread);
void lmz_pool_for(lmz_pool *p, size_t n, lmz_pool_fn fn, void *ctx);

/* The same, but on the calling thread alone when `work` (multiply-adds, or
 * the like) is below LMZ_POOL_MIN_WORK: small jobs cost less than waking the
 * workers, above all on a busy machine. The split never changes results. */
#define LMZ_POOL_MIN_WORK 262144.0
void lmz_pool_for_work(lmz_pool *p, size_t n, double work, lmz_pool_fn fn, void *ctx);
/* One poll of a loop that waits for another thread: a pause (x86) for the
 * first polls, then the processor given up (sched_yield), so that on a busy
 * machine the thread waited for gets to run. polls: the polls so far. */
void lmz_pool_relax(unsigned polls);

#endif
