/* Thread pool: every ith runs exactly once per job, splits cover the range,
 * many short jobs in a row complete (no lost wake-ups). */
#include <stdatomic.h>
#include <stdlib.h>

#include "core/threadpool.h"
#include "tl_test.h"

typedef struct {
    atomic_int calls[8];
    int nth_seen[8];
    long *sum_target;
} job_t;

static void count_job(void *arg, int ith, int nth) {
    job_t *j = arg;
    atomic_fetch_add(&j->calls[ith], 1);
    j->nth_seen[ith] = nth;
}

TEST(each_thread_runs_once) {
    for (int n = 1; n <= 4; n++) {
        threadpool_t *p;
        tl_err_t err;
        CHECK_EQ_INT(threadpool_new(&p, n, &err), 0);
        CHECK_EQ_INT(threadpool_n_threads(p), n);
        job_t j;
        memset(&j, 0, sizeof j);
        threadpool_run(p, count_job, &j);
        for (int i = 0; i < n; i++) {
            CHECK_EQ_INT(atomic_load(&j.calls[i]), 1);
            CHECK_EQ_INT(j.nth_seen[i], n);
        }
        for (int i = n; i < 8; i++) CHECK_EQ_INT(atomic_load(&j.calls[i]), 0);
        threadpool_free(p);
    }
}

TEST(split_covers_range) {
    for (long n = 0; n < 40; n++)
        for (int nth = 1; nth <= 7; nth++) {
            long expect = 0, total = 0;
            for (int ith = 0; ith < nth; ith++) {
                long b, e;
                threadpool_split(n, ith, nth, &b, &e);
                CHECK_EQ_INT(b, expect);
                CHECK(e >= b && e - b <= n / nth + 1);
                total += e - b;
                expect = e;
            }
            CHECK_EQ_INT(total, n);
        }
}

typedef struct {
    int *data;
    long n;
} fill_t;

static void fill_job(void *arg, int ith, int nth) {
    fill_t *f = arg;
    long b, e;
    threadpool_split(f->n, ith, nth, &b, &e);
    for (long i = b; i < e; i++) f->data[i] += 1;
}

TEST(many_jobs_complete) {
    threadpool_t *p;
    tl_err_t err;
    CHECK_EQ_INT(threadpool_new(&p, 3, &err), 0);
    fill_t f = {.n = 1000};
    f.data = calloc((size_t)f.n, sizeof(int));
    for (int r = 0; r < 20000; r++) threadpool_run(p, fill_job, &f);
    int bad = 0;
    for (long i = 0; i < f.n; i++) bad += f.data[i] != 20000;
    CHECK_EQ_INT(bad, 0);
    free(f.data);
    threadpool_free(p);
}


typedef struct {
    atomic_int *hits;
    atomic_int bad_ith;
    int nth;
} range_t;

static void range_job(void *arg, int ith, long i0, long i1) {
    range_t *r = arg;
    if (ith < 0 || ith >= r->nth) atomic_fetch_add(&r->bad_ith, 1);
    for (long i = i0; i < i1; i++) atomic_fetch_add(&r->hits[i], 1);
}

/* threadpool_for: every item exactly once, for any grain and size, with
 * thread ids in range, mixed with threadpool_run jobs (a worker that comes
 * late to a closed threadpool_for job must still run the next static job). */
TEST(for_covers_each_item_once) {
    for (int n_thr = 1; n_thr <= 3; n_thr++) {
        threadpool_t *p;
        tl_err_t err;
        CHECK_EQ_INT(threadpool_new(&p, n_thr, &err), 0);
        atomic_int hits[257];
        range_t r = {.hits = hits, .nth = n_thr};
        atomic_init(&r.bad_ith, 0);
        fill_t f = {.n = 100};
        f.data = calloc((size_t)f.n, sizeof(int));
        int bad = 0;
        for (int rep = 0; rep < 3000; rep++) {
            long n = rep % 257, grain = 1 + rep % 13;
            for (long i = 0; i < 257; i++) atomic_init(&hits[i], 0);
            threadpool_for(p, n, grain, range_job, &r);
            for (long i = 0; i < 257; i++) bad += atomic_load(&hits[i]) != (i < n);
            if (rep % 3 == 0) threadpool_run(p, fill_job, &f);
        }
        CHECK_EQ_INT(bad, 0);
        CHECK_EQ_INT(atomic_load(&r.bad_ith), 0);
        int wrong = 0;
        for (long i = 0; i < f.n; i++) wrong += f.data[i] != 1000;
        CHECK_EQ_INT(wrong, 0);
        free(f.data);
        threadpool_free(p);
    }
}

TEST(default_and_bad_sizes) {
    threadpool_t *p;
    tl_err_t err;
    CHECK_EQ_INT(threadpool_new(&p, 0, &err), 0);
    CHECK(threadpool_n_threads(p) >= 1);
    threadpool_free(p);
    CHECK_EQ_INT(threadpool_new(&p, 100000, &err), -1);
    CHECK_CONTAINS(err.msg, "too many");
    threadpool_run(NULL, count_job, &(job_t){0}); /* NULL pool runs inline */
}

int main(void) {
    RUN(each_thread_runs_once);
    RUN(split_covers_range);
    RUN(many_jobs_complete);
    RUN(for_covers_each_item_once);
    RUN(default_and_bad_sizes);
    return tl_test_summary("test_threadpool");
}
