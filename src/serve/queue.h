/* The request queue of the batcher: a bounded FIFO of pointers. Producers add
 * all the items of one request at once (or none, when the queue lacks room);
 * the worker takes up to max_batch items, waiting at most max_wait_ms after
 * the first arrives for more to join, but only under load: when the previous
 * hand-out was a single item, a lone item goes at once (at concurrency 1 the
 * wait would only add to every request's latency). The storage is sized once. */
#ifndef TL_SERVE_QUEUE_H
#define TL_SERVE_QUEUE_H

#include <pthread.h>
#include <stddef.h>

#include "core/err.h"

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void **ring;
    size_t cap, head, count;
    size_t last; /* items in the previous hand-out */
    int closed;
} serve_queue_t;

int serve_queue_init(serve_queue_t *q, size_t capacity, tl_err_t *err);
void serve_queue_destroy(serve_queue_t *q);
/* Adds n items in order. Returns 0, or -1 (nothing added) when the queue lacks
 * room for all n or is closed. */
int serve_queue_push(serve_queue_t *q, void *const *items, size_t n);
/* Blocks until an item is queued (or the queue is closed), then, if the
 * previous call handed out more than one item, waits up to max_wait_ms more
 * while fewer than max_batch are queued. Moves up to
 * max_batch items into out and returns how many; 0 means closed and empty. */
size_t serve_queue_pop_batch(serve_queue_t *q, void **out, size_t max_batch, int max_wait_ms);
/* Wakes the worker; later pushes fail, queued items are still handed out. */
void serve_queue_close(serve_queue_t *q);
size_t serve_queue_depth(serve_queue_t *q);

#endif
