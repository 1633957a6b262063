/* Workers wait for a new generation number: they spin briefly (a decode step
 * issues a few hundred short jobs, and a condition-variable wake-up per job
 * would cost more than the job), then sleep on a condition variable.
 *
 * threadpool_for jobs hand out chunks from a shared counter. A worker joins
 * such a job (active + 1, then checks that the job is still the current one
 * and not closed) before it reads the job; the caller closes the job once
 * every chunk is taken and waits only for the workers that joined. A worker
 * that is asleep or descheduled (a shared machine) therefore never holds the
 * caller up: the running threads take its chunks. */
#include "core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/cpu.h"

#define SPIN_ITERS 20000

typedef struct {
    threadpool_t *pool;
    int ith;
} worker_arg_t;

struct threadpool {
    int n_threads;
    pthread_t *threads;
    worker_arg_t *args;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;      /* incremented per job */
    atomic_int pending;   /* workers still running the current job */
    atomic_int sleepers;  /* workers blocked (or about to block) on cv */
    atomic_int stop;
    threadpool_fn fn;
    void *ctx;
    /* threadpool_for */
    int dynamic;            /* the current job is a threadpool_for job */
    atomic_int active;      /* workers inside a threadpool_for job */
    atomic_uint closed;     /* generation of the last closed threadpool_for job */
    threadpool_range_fn rfn;
    long n, grain;
    atomic_long next;       /* first item not yet handed out */
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void take_chunks(threadpool_t *p, int ith) {
    for (;;) {
        long i0 = atomic_fetch_add_explicit(&p->next, p->grain, memory_order_relaxed);
        if (i0 >= p->n) return;
        long i1 = i0 + p->grain < p->n ? i0 + p->grain : p->n;
        p->rfn(p->ctx, ith, i0, i1);
    }
}

/* Runs generation g if it is still current and, for threadpool_for, still
 * open. The job's fields are read only after both checks: then the caller is
 * waiting for this worker (pending for threadpool_run, active for
 * threadpool_for), so they cannot change underneath it. */
static void worker_job(threadpool_t *p, int ith, unsigned g) {
    atomic_fetch_add(&p->active, 1); /* seq_cst: pairs with the close in threadpool_for */
    if (atomic_load(&p->gen) != g || atomic_load(&p->closed) == g) {
        atomic_fetch_sub(&p->active, 1);
        return;
    }
    if (p->dynamic) {
        take_chunks(p, ith);
        atomic_fetch_sub_explicit(&p->active, 1, memory_order_release);
        return;
    }
    atomic_fetch_sub(&p->active, 1);
    p->fn(p->ctx, ith, p->n_threads);
    atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel);
}

static void *worker_main(void *p_) {
    worker_arg_t *a = p_;
    threadpool_t *p = a->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen) {
            if (++spins < SPIN_ITERS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
            spins = 0;
            if (atomic_load(&p->stop)) return NULL;
        }
        if (atomic_load(&p->stop)) return NULL;
        worker_job(p, a->ith, g);
        /* a static job g (threadpool_run) cannot be skipped: the caller waits
         * for it, so gen stays g until this worker has run it */
        seen = g;
    }
}

int threadpool_new(threadpool_t **out, int n_threads, tl_err_t *err) {
    *out = NULL;
    if (n_threads <= 0) n_threads = cpu_n_cores();
    if (n_threads > 1024) return tl_fail(err, "thread pool: %d threads is too many (max 1024)", n_threads);
    threadpool_t *p = calloc(1, sizeof *p);
    if (!p) return tl_fail(err, "thread pool: out of memory");
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->active, 0);
    atomic_init(&p->closed, 0);
    atomic_init(&p->next, 0);
    if (n_threads > 1) {
        p->threads = calloc((size_t)n_threads, sizeof *p->threads);
        p->args = calloc((size_t)n_threads, sizeof *p->args);
        if (!p->threads || !p->args) {
            free(p->threads);
            free(p->args);
            free(p);
            return tl_fail(err, "thread pool: out of memory");
        }
        for (int i = 1; i < n_threads; i++) {
            p->args[i].pool = p;
            p->args[i].ith = i;
            if (pthread_create(&p->threads[i], NULL, worker_main, &p->args[i]) != 0) {
                p->n_threads = i; /* join the ones started */
                threadpool_free(p);
                return tl_fail(err, "thread pool: cannot start thread %d of %d", i, n_threads);
            }
        }
    }
    *out = p;
    return 0;
}

void threadpool_free(threadpool_t *p) {
    if (!p) return;
    if (p->n_threads > 1) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->stop, 1);
        atomic_fetch_add(&p->gen, 1);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        for (int i = 1; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p->args);
    free(p);
}

int threadpool_n_threads(const threadpool_t *p) { return p ? p->n_threads : 1; }

/* Starts the job whose fields are set; returns its generation. */
static unsigned publish(threadpool_t *p) {
    unsigned g = atomic_fetch_add(&p->gen, 1) + 1; /* seq_cst: pairs with the sleepers check in worker_main */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    return g;
}

void threadpool_run(threadpool_t *p, threadpool_fn fn, void *ctx) {
    if (!p || p->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->dynamic = 0;
    atomic_store_explicit(&p->pending, p->n_threads - 1, memory_order_relaxed);
    publish(p);
    fn(ctx, 0, p->n_threads);
    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        if (++spins < SPIN_ITERS) cpu_relax();
        else sched_yield();
    }
}

void threadpool_for(threadpool_t *p, long n, long grain, threadpool_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (!p || p->n_threads == 1 || n <= grain) {
        fn(ctx, 0, 0, n);
        return;
    }
    p->rfn = fn;
    p->ctx = ctx;
    p->n = n;
    p->grain = grain;
    p->dynamic = 1;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    unsigned g = publish(p);
    take_chunks(p, 0);
    atomic_store(&p->closed, g); /* seq_cst: a worker that joins after this sees it and leaves */
    int spins = 0;
    while (atomic_load_explicit(&p->active, memory_order_acquire) > 0) {
        if (++spins < SPIN_ITERS) cpu_relax();
        else sched_yield();
    }
}
