/* A fixed pool of worker threads. threadpool_run calls fn(ctx, ith, nth) once
 * for every ith in [0, nth) (the caller runs ith = 0) and returns when all have
 * finished. Kernels split their rows by (ith, nth) so that every output element
 * is computed by one thread in a fixed order: results do not depend on timing. */
#ifndef TL_CORE_THREADPOOL_H
#define TL_CORE_THREADPOOL_H

#include "core/err.h"

typedef struct threadpool threadpool_t;
typedef void (*threadpool_fn)(void *ctx, int ith, int nth);

/* n_threads <= 0 means one per core. */
int threadpool_new(threadpool_t **out, int n_threads, tl_err_t *err);
void threadpool_free(threadpool_t *p);
int threadpool_n_threads(const threadpool_t *p);
void threadpool_run(threadpool_t *p, threadpool_fn fn, void *ctx);

/* fn(ctx, ith, i0, i1) over [0, n) in chunks of grain items, handed out to
 * whichever threads are running (ith: the calling thread, for per-thread
 * scratch); every item is in exactly one call. Returns when all calls have
 * finished. Results must not depend on which thread runs a chunk; in return a
 * thread that the OS has descheduled does not hold the others up. */
typedef void (*threadpool_range_fn)(void *ctx, int ith, long i0, long i1);
void threadpool_for(threadpool_t *p, long n, long grain, threadpool_range_fn fn, void *ctx);

/* Contiguous share [*begin, *end) of n items for thread ith of nth. */
static inline void threadpool_split(long n, int ith, int nth, long *begin, long *end) {
    long per = n / nth, rem = n % nth;
    *begin = ith * per + (ith < rem ? ith : rem);
    *end = *begin + per + (ith < rem ? 1 : 0);
}

#endif
