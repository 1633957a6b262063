/* Bounded FIFO with batch hand-out. */
#include "serve/queue.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

int serve_queue_init(serve_queue_t *q, size_t capacity, tl_err_t *err) {
    q->ring = NULL;
    q->cap = capacity;
    q->head = q->count = 0;
    q->closed = 0;
    q->last = 0;
    if (!capacity) return tl_fail(err, "queue: capacity must be positive");
    q->ring = calloc(capacity, sizeof *q->ring);
    if (!q->ring) return tl_fail(err, "queue: out of memory for %zu items", capacity);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, &ca);
    pthread_condattr_destroy(&ca);
    return 0;
}

void serve_queue_destroy(serve_queue_t *q) {
    if (!q->ring) return;
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q->ring);
    q->ring = NULL;
}

int serve_queue_push(serve_queue_t *q, void *const *items, size_t n) {
    pthread_mutex_lock(&q->mu);
    if (q->closed || n > q->cap - q->count) {
        pthread_mutex_unlock(&q->mu);
        return -1;
    }
    for (size_t i = 0; i < n; i++) q->ring[(q->head + q->count + i) % q->cap] = items[i];
    q->count += n;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

size_t serve_queue_pop_batch(serve_queue_t *q, void **out, size_t max_batch, int max_wait_ms) {
    pthread_mutex_lock(&q->mu);
    while (!q->count && !q->closed) pthread_cond_wait(&q->cv, &q->mu);
    /* wait for company only under load (the previous hand-out had company too):
     * a lone request on an idle server starts at once */
    if (q->count && q->count < max_batch && max_wait_ms > 0 && !q->closed && q->last > 1) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        long ns = dl.tv_nsec + (long)max_wait_ms * 1000000L;
        dl.tv_sec += ns / 1000000000L;
        dl.tv_nsec = ns % 1000000000L;
        while (q->count < max_batch && !q->closed)
            if (pthread_cond_timedwait(&q->cv, &q->mu, &dl) == ETIMEDOUT) break;
    }
    size_t n = q->count < max_batch ? q->count : max_batch;
    for (size_t i = 0; i < n; i++) out[i] = q->ring[(q->head + i) % q->cap];
    q->head = (q->head + n) % q->cap;
    q->count -= n;
    q->last = n;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void serve_queue_close(serve_queue_t *q) {
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

size_t serve_queue_depth(serve_queue_t *q) {
    pthread_mutex_lock(&q->mu);
    size_t n = q->count;
    pthread_mutex_unlock(&q->mu);
    return n;
}
