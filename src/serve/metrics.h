/* Server metrics (lock-free counters) and their Prometheus text exposition:
 * requests by status code, request latency and batch-size histograms, queue
 * depth, tokens processed, prefix-cache fallbacks. */
#ifndef TL_SERVE_METRICS_H
#define TL_SERVE_METRICS_H

#include <stdatomic.h>
#include <stddef.h>

enum { SERVE_N_CODES = 10, SERVE_N_LAT_BUCKETS = 14, SERVE_N_BATCH_BUCKETS = 7 };

typedef struct {
    atomic_ulong requests[SERVE_N_CODES + 1]; /* by serve_metrics_codes[i]; last: any other code */
    atomic_ulong lat_bucket[SERVE_N_LAT_BUCKETS + 1]; /* non-cumulative; last: over the top bound */
    atomic_ulong lat_sum_us, lat_count;
    atomic_ulong batch_bucket[SERVE_N_BATCH_BUCKETS + 1];
    atomic_ulong batch_sum, batch_count;
    atomic_ulong classifications;  /* inputs classified */
    atomic_ulong tokens_prompt;    /* prompt tokens of all inputs */
    atomic_ulong tokens_evaluated; /* tokens run through the model (prompt suffixes and label tokens) */
    atomic_ulong prefix_fallbacks; /* inputs whose tokens did not start with the cached prefix */
    atomic_ulong queue_depth;      /* gauge */
    atomic_ulong in_flight;        /* gauge: HTTP requests being handled */
} serve_metrics_t;

extern const int serve_metrics_codes[SERVE_N_CODES];
extern const double serve_metrics_lat_bounds_s[SERVE_N_LAT_BUCKETS];
extern const double serve_metrics_batch_bounds[SERVE_N_BATCH_BUCKETS];

void serve_metrics_init(serve_metrics_t *m);
void serve_metrics_request(serve_metrics_t *m, int status, double latency_s);
void serve_metrics_batch(serve_metrics_t *m, size_t batch_size);
/* Prometheus text format 0.0.4 (malloc'd). ready: 1 when the model is loaded. */
char *serve_metrics_render(const serve_metrics_t *m, int ready);

#endif
