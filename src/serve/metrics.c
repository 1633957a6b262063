/* Metric counters and Prometheus exposition. */
#include "serve/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const int serve_metrics_codes[SERVE_N_CODES] = {200, 400, 401, 404, 405, 413, 415, 500, 503, 504};
const double serve_metrics_lat_bounds_s[SERVE_N_LAT_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                                0.25,  0.5,    1.0,   2.5,  5.0,   10.0, 30.0};
const double serve_metrics_batch_bounds[SERVE_N_BATCH_BUCKETS] = {1, 2, 4, 8, 16, 32, 64};

void serve_metrics_init(serve_metrics_t *m) {
    memset(m, 0, sizeof *m);
}

void serve_metrics_request(serve_metrics_t *m, int status, double latency_s) {
    int i = 0;
    while (i < SERVE_N_CODES && serve_metrics_codes[i] != status) i++;
    atomic_fetch_add(&m->requests[i], 1);
    int b = 0;
    while (b < SERVE_N_LAT_BUCKETS && latency_s > serve_metrics_lat_bounds_s[b]) b++;
    atomic_fetch_add(&m->lat_bucket[b], 1);
    atomic_fetch_add(&m->lat_sum_us, (unsigned long)(latency_s * 1e6 + 0.5));
    atomic_fetch_add(&m->lat_count, 1);
}

void serve_metrics_batch(serve_metrics_t *m, size_t batch_size) {
    int b = 0;
    while (b < SERVE_N_BATCH_BUCKETS && (double)batch_size > serve_metrics_batch_bounds[b]) b++;
    atomic_fetch_add(&m->batch_bucket[b], 1);
    atomic_fetch_add(&m->batch_sum, batch_size);
    atomic_fetch_add(&m->batch_count, 1);
}

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} sbuf_t;

static void put(sbuf_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf_t *s, const char *fmt, ...) {
    if (s->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(s->buf + s->len, s->cap - s->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            s->oom = 1;
            return;
        }
        if ((size_t)n < s->cap - s->len) {
            s->len += (size_t)n;
            return;
        }
        size_t nc = s->cap * 2 + (size_t)n;
        char *p = realloc(s->buf, nc);
        if (!p) {
            s->oom = 1;
            return;
        }
        s->buf = p;
        s->cap = nc;
    }
}

static unsigned long ld(const atomic_ulong *a) {
    return atomic_load((atomic_ulong *)a);
}

static void counter(sbuf_t *s, const char *name, const char *help, unsigned long v) {
    put(s, "# HELP %s %s\n# TYPE %s counter\n%s %lu\n", name, help, name, name, v);
}

static void gauge(sbuf_t *s, const char *name, const char *help, unsigned long v) {
    put(s, "# HELP %s %s\n# TYPE %s gauge\n%s %lu\n", name, help, name, name, v);
}

char *serve_metrics_render(const serve_metrics_t *m, int ready) {
    sbuf_t s = {malloc(4096), 0, 4096, 0};
    if (!s.buf) return NULL;
    s.buf[0] = '\0';
    put(&s, "# HELP tasklm_http_requests_total HTTP requests answered, by status code.\n"
            "# TYPE tasklm_http_requests_total counter\n");
    for (int i = 0; i < SERVE_N_CODES; i++)
        put(&s, "tasklm_http_requests_total{code=\"%d\"} %lu\n", serve_metrics_codes[i], ld(&m->requests[i]));
    put(&s, "tasklm_http_requests_total{code=\"other\"} %lu\n", ld(&m->requests[SERVE_N_CODES]));
    put(&s, "# HELP tasklm_request_duration_seconds Time from a request's arrival to its response.\n"
            "# TYPE tasklm_request_duration_seconds histogram\n");
    unsigned long cum = 0;
    for (int b = 0; b < SERVE_N_LAT_BUCKETS; b++) {
        cum += ld(&m->lat_bucket[b]);
        put(&s, "tasklm_request_duration_seconds_bucket{le=\"%g\"} %lu\n", serve_metrics_lat_bounds_s[b], cum);
    }
    cum += ld(&m->lat_bucket[SERVE_N_LAT_BUCKETS]);
    put(&s, "tasklm_request_duration_seconds_bucket{le=\"+Inf\"} %lu\n", cum);
    put(&s, "tasklm_request_duration_seconds_sum %.6f\n", (double)ld(&m->lat_sum_us) * 1e-6);
    put(&s, "tasklm_request_duration_seconds_count %lu\n", ld(&m->lat_count));
    put(&s, "# HELP tasklm_batch_size Inputs per batch taken by the engine.\n# TYPE tasklm_batch_size histogram\n");
    cum = 0;
    for (int b = 0; b < SERVE_N_BATCH_BUCKETS; b++) {
        cum += ld(&m->batch_bucket[b]);
        put(&s, "tasklm_batch_size_bucket{le=\"%g\"} %lu\n", serve_metrics_batch_bounds[b], cum);
    }
    cum += ld(&m->batch_bucket[SERVE_N_BATCH_BUCKETS]);
    put(&s, "tasklm_batch_size_bucket{le=\"+Inf\"} %lu\n", cum);
    put(&s, "tasklm_batch_size_sum %lu\n", ld(&m->batch_sum));
    put(&s, "tasklm_batch_size_count %lu\n", ld(&m->batch_count));
    gauge(&s, "tasklm_queue_depth", "Inputs waiting for the engine.", ld(&m->queue_depth));
    gauge(&s, "tasklm_requests_in_flight", "HTTP requests being handled.", ld(&m->in_flight));
    counter(&s, "tasklm_classifications_total", "Inputs classified.", ld(&m->classifications));
    counter(&s, "tasklm_prompt_tokens_total", "Prompt tokens of the inputs classified (cached prefix included).",
            ld(&m->tokens_prompt));
    counter(&s, "tasklm_tokens_processed_total", "Tokens run through the model (prompt suffixes and label tokens).",
            ld(&m->tokens_evaluated));
    counter(&s, "tasklm_prefix_cache_fallbacks_total",
            "Inputs whose tokens did not start with the cached template prefix (fuller prefill).", ld(&m->prefix_fallbacks));
    gauge(&s, "tasklm_ready", "1 when the model is loaded.", ready ? 1ul : 0ul);
    if (s.oom) {
        free(s.buf);
        return NULL;
    }
    return s.buf;
}
