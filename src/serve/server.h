/* The HTTP server (libmicrohttpd, a thread per connection, keep-alive) in
 * front of the engine: a worker thread loads the model, then takes batches of
 * inputs from the request queue and classifies them. Routes: POST
 * /v1/classify, GET /v1/models, /health, /ready, /metrics. See docs/SERVING.md. */
#ifndef TL_SERVE_SERVER_H
#define TL_SERVE_SERVER_H

#include <stddef.h>
#include <stdio.h>

#include "core/err.h"
#include "serve/metrics.h"
#include "task/task.h"

typedef struct {
    const char *model_path;
    const task_t *task;
    const char *host;        /* numeric IPv4 or IPv6 address */
    int port;                /* 0: any free port (see serve_server_port) */
    int threads;             /* model threads; <= 0: one per core */
    int max_batch;           /* inputs per engine batch */
    int max_wait_ms;         /* how long a batch waits to fill after its first input */
    int max_batch_tokens;    /* tokens per engine pass (0: the engine's default) */
    int amx;                 /* serve_engine_opts_t.amx */
    size_t queue_size;       /* inputs waiting at most; more gets 503 */
    size_t max_body_bytes;   /* larger bodies get 413 */
    size_t max_name_bytes;   /* longer field values get 400 */
    const char *api_key;     /* NULL: no authentication */
    int max_connections;
} serve_opts_t;

typedef struct serve_server serve_server_t;

/* Binds and starts accepting; the model loads in the background (/ready says
 * when it is done). */
int serve_server_start(serve_server_t **out, const serve_opts_t *o, tl_err_t *err);
/* 0 while loading, 1 ready, -1 the model failed to load (message in err). */
int serve_server_state(serve_server_t *s, tl_err_t *err);
int serve_server_port(const serve_server_t *s);
const serve_metrics_t *serve_server_metrics(const serve_server_t *s);
/* Stops accepting connections, lets in-flight requests finish (up to
 * drain_timeout_s), then stops the worker and frees everything. */
void serve_server_stop(serve_server_t *s, double drain_timeout_s);

#endif
