/* HTTP front end over libmicrohttpd and the batching worker. */
#include "serve/server.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve/engine.h"
#include "serve/queue.h"
#include "serve/request.h"

/* One HTTP request's wait for its inputs. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t remaining;
} serve_job_t;

/* One input on the queue. */
typedef struct {
    const char *const *fields;
    serve_result_t *res;
    int rc;
    tl_err_t err;
    serve_job_t *job;
} serve_qitem_t;

struct serve_server {
    serve_opts_t o;
    struct MHD_Daemon *d;
    serve_queue_t q;
    serve_metrics_t m;
    serve_engine_t *engine;
    pthread_t worker;
    int worker_started;
    atomic_int state; /* 0 loading, 1 ready, -1 failed */
    atomic_int draining;
    tl_err_t load_err;
    char model_name[256];
    char auth[600];   /* "Bearer KEY" */
    int port;
};

typedef struct {
    char *body;
    size_t len, cap;
    int too_large, answered;
    double t0;
} conn_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- worker ---- */

static void job_done(serve_job_t *j) {
    pthread_mutex_lock(&j->mu);
    if (--j->remaining == 0) pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void *worker_main(void *arg) {
    serve_server_t *s = arg;
    serve_engine_opts_t eo = {.model_path = s->o.model_path, .task = s->o.task, .threads = s->o.threads,
                              .max_field_bytes = s->o.max_name_bytes, .max_batch = s->o.max_batch,
                              .max_batch_tokens = s->o.max_batch_tokens, .amx = s->o.amx};
    if (serve_engine_new(&s->engine, &eo, &s->load_err)) {
        atomic_store(&s->state, -1);
        /* answer whatever arrives until the queue is closed */
    } else {
        atomic_store(&s->state, 1);
    }
    size_t maxb = (size_t)s->o.max_batch;
    void **batch = calloc(maxb, sizeof *batch);
    serve_item_t *work = calloc(maxb, sizeof *work);
    if (!batch || !work) {
        atomic_store(&s->state, -1);
        snprintf(s->load_err.msg, sizeof s->load_err.msg, "worker: out of memory");
        serve_engine_free(s->engine);
        s->engine = NULL;
    }
    for (;;) {
        void *one[1];
        size_t n = batch ? serve_queue_pop_batch(&s->q, batch, maxb, s->o.max_wait_ms)
                         : serve_queue_pop_batch(&s->q, one, 1, 0);
        if (!n) break;
        void **items = batch ? batch : one;
        atomic_store(&s->m.queue_depth, (unsigned long)serve_queue_depth(&s->q));
        serve_metrics_batch(&s->m, n);
        if (s->engine) {
            for (size_t i = 0; i < n; i++) work[i].fields = ((serve_qitem_t *)items[i])->fields;
            serve_engine_classify_many(s->engine, work, (int)n, 0);
        }
        for (size_t i = 0; i < n; i++) {
            serve_qitem_t *it = items[i];
            if (!s->engine) {
                it->rc = -1;
                snprintf(it->err.msg, sizeof it->err.msg, "the model is not loaded");
            } else if (work[i].rc) {
                it->rc = -1;
                it->err = work[i].err;
            } else {
                it->rc = 0;
                it->res->label = work[i].label;
                memcpy(it->res->probs, work[i].probs, sizeof it->res->probs);
                atomic_fetch_add(&s->m.classifications, 1);
                atomic_fetch_add(&s->m.tokens_prompt, (unsigned long)work[i].cost.n_prompt);
                atomic_fetch_add(&s->m.tokens_evaluated, (unsigned long)work[i].cost.n_evaluated);
                if (work[i].cost.prefix_fallback) atomic_fetch_add(&s->m.prefix_fallbacks, 1);
            }
            job_done(it->job);
        }
    }
    free(batch);
    free(work);
    return NULL;
}

/* ---- responses ---- */

static enum MHD_Result respond(serve_server_t *s, struct MHD_Connection *c, conn_t *st, int status,
                               const char *ctype, char *body, const char *hname, const char *hval) {
    if (!body) {
        status = 500;
        ctype = "application/json";
        body = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\"}}");
        if (!body) return MHD_NO;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (hname) MHD_add_response_header(r, hname, hval);
    if (atomic_load(&s->draining)) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned int)status, r);
    MHD_destroy_response(r);
    st->answered = 1;
    serve_metrics_request(&s->m, status, now_s() - st->t0);
    return ret;
}

static enum MHD_Result respond_error(serve_server_t *s, struct MHD_Connection *c, conn_t *st, const serve_error_t *e,
                                     const char *hname, const char *hval) {
    return respond(s, c, st, e->status, "application/json", serve_error_json(e), hname, hval);
}

static enum MHD_Result fail(serve_server_t *s, struct MHD_Connection *c, conn_t *st, int status, const char *type,
                            const char *msg) {
    serve_error_t e;
    serve_error_set(&e, status, type, "%s", msg);
    return respond_error(s, c, st, &e, NULL, NULL);
}

static enum MHD_Result json_ok(serve_server_t *s, struct MHD_Connection *c, conn_t *st, int status, cJSON *doc) {
    char *txt = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    return respond(s, c, st, status, "application/json", txt, NULL, NULL);
}

/* ---- routes ---- */

static enum MHD_Result route_classify(serve_server_t *s, struct MHD_Connection *c, conn_t *st) {
    int state = atomic_load(&s->state);
    if (state != 1)
        return fail(s, c, st, 503, "unavailable_error", state == 0 ? "the model is still loading" : "the model failed to load");
    serve_limits_t lim = {.task = s->o.task, .max_name_bytes = s->o.max_name_bytes, .max_items = s->o.queue_size};
    serve_request_t req;
    serve_error_t e;
    if (serve_request_parse(st->body ? st->body : "", st->len, &lim, &req, &e)) {
        serve_request_free(&req);
        return respond_error(s, c, st, &e, NULL, NULL);
    }
    size_t n = req.n_inputs;
    serve_qitem_t *items = calloc(n, sizeof *items);
    serve_result_t *res = calloc(n, sizeof *res);
    void **ptrs = calloc(n, sizeof *ptrs);
    enum MHD_Result ret;
    if (!items || !res || !ptrs) {
        ret = fail(s, c, st, 500, "server_error", "out of memory");
        goto done;
    }
    serve_job_t job;
    pthread_mutex_init(&job.mu, NULL);
    pthread_cond_init(&job.cv, NULL);
    job.remaining = n;
    for (size_t i = 0; i < n; i++) {
        items[i].fields = (const char *const *)req.inputs[i].fields;
        items[i].res = &res[i];
        items[i].job = &job;
        ptrs[i] = &items[i];
    }
    if (serve_queue_push(&s->q, ptrs, n)) {
        pthread_mutex_destroy(&job.mu);
        pthread_cond_destroy(&job.cv);
        serve_error_set(&e, 503, "overloaded_error", "the request queue is full (%zu inputs); retry later", s->o.queue_size);
        ret = respond_error(s, c, st, &e, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        goto done;
    }
    atomic_store(&s->m.queue_depth, (unsigned long)serve_queue_depth(&s->q));
    pthread_mutex_lock(&job.mu);
    while (job.remaining) pthread_cond_wait(&job.cv, &job.mu);
    pthread_mutex_unlock(&job.mu);
    pthread_mutex_destroy(&job.mu);
    pthread_cond_destroy(&job.cv);
    for (size_t i = 0; i < n; i++)
        if (items[i].rc) {
            ret = fail(s, c, st, 500, "server_error", items[i].err.msg);
            goto done;
        }
    char *txt = serve_result_json(s->o.task, res, n, req.is_batch, s->model_name, (now_s() - st->t0) * 1e3);
    ret = respond(s, c, st, 200, "application/json", txt, NULL, NULL);
done:
    free(items);
    free(res);
    free(ptrs);
    serve_request_free(&req);
    return ret;
}

static enum MHD_Result route_models(serve_server_t *s, struct MHD_Connection *c, conn_t *st) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *arr = cJSON_AddArrayToObject(root, "data"), *m = cJSON_CreateObject();
    cJSON_AddItemToArray(arr, m);
    cJSON_AddStringToObject(m, "id", s->model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddStringToObject(m, "task", s->o.task->name);
    cJSON *labels = cJSON_AddArrayToObject(m, "labels"), *fields = cJSON_AddArrayToObject(m, "fields");
    for (size_t k = 0; k < s->o.task->n_labels; k++) cJSON_AddItemToArray(labels, cJSON_CreateString(s->o.task->labels[k]));
    for (size_t k = 0; k < s->o.task->n_fields; k++)
        cJSON_AddItemToArray(fields, cJSON_CreateString(s->o.task->field_columns[k]));
    cJSON_AddBoolToObject(m, "ready", atomic_load(&s->state) == 1);
    return json_ok(s, c, st, 200, root);
}

static int authorized(serve_server_t *s, struct MHD_Connection *c) {
    if (!s->o.api_key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h) return 0;
    size_t a = strlen(s->auth), b = strlen(h);
    unsigned diff = a != b;
    for (size_t i = 0; i < a; i++) diff |= (unsigned)(s->auth[i] ^ (i < b ? h[i] : 0));
    return diff == 0;
}

typedef enum { R_HEALTH, R_READY, R_METRICS, R_MODELS, R_CLASSIFY, R_NONE } route_t;

static route_t find_route(const char *url, const char **allow) {
    static const struct {
        const char *path, *method;
    } routes[] = {{"/health", "GET"}, {"/ready", "GET"}, {"/metrics", "GET"}, {"/v1/models", "GET"}, {"/v1/classify", "POST"}};
    for (int i = 0; i < (int)(sizeof routes / sizeof routes[0]); i++)
        if (!strcmp(url, routes[i].path)) {
            *allow = routes[i].method;
            return (route_t)i;
        }
    return R_NONE;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    serve_server_t *s = cls;
    conn_t *st = *con_cls;
    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st) return MHD_NO;
        st->t0 = now_s();
        *con_cls = st;
        atomic_fetch_add(&s->m.in_flight, 1);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->o.max_body_bytes) st->too_large = 1;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!st->too_large && !st->answered) {
            if (st->len + *upload_size > s->o.max_body_bytes) {
                st->too_large = 1;
            } else {
                if (st->len + *upload_size + 1 > st->cap) {
                    size_t nc = (st->len + *upload_size + 1) * 2;
                    if (nc > s->o.max_body_bytes + 1) nc = s->o.max_body_bytes + 1;
                    char *p = realloc(st->body, nc);
                    if (!p) return MHD_NO;
                    st->body = p;
                    st->cap = nc;
                }
                memcpy(st->body + st->len, upload, *upload_size);
                st->len += *upload_size;
                st->body[st->len] = '\0';
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (st->answered) return MHD_YES;
    const char *allow = NULL;
    route_t r = find_route(url, &allow);
    if (r == R_NONE) {
        char msg[160];
        snprintf(msg, sizeof msg, "no route %.100s", url);
        return fail(s, c, st, 404, "not_found_error", msg);
    }
    if (strcmp(method, allow)) {
        serve_error_t e;
        serve_error_set(&e, 405, "method_not_allowed_error", "%.16s is not allowed on %s (allowed: %s)", method, url, allow);
        return respond_error(s, c, st, &e, MHD_HTTP_HEADER_ALLOW, allow);
    }
    if (st->too_large) {
        serve_error_t e;
        serve_error_set(&e, 413, "request_too_large_error", "the body is over the limit of %zu bytes", s->o.max_body_bytes);
        return respond_error(s, c, st, &e, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    if ((r == R_METRICS || r == R_MODELS || r == R_CLASSIFY) && !authorized(s, c)) {
        serve_error_t e;
        serve_error_set(&e, 401, "authentication_error", "a valid 'Authorization: Bearer' API key is required");
        return respond_error(s, c, st, &e, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    }
    switch (r) {
    case R_HEALTH: return respond(s, c, st, 200, "application/json", strdup("{\"status\":\"ok\"}"), NULL, NULL);
    case R_READY: {
        int state = atomic_load(&s->state);
        if (state == 1) return respond(s, c, st, 200, "application/json", strdup("{\"status\":\"ready\"}"), NULL, NULL);
        return fail(s, c, st, 503, "unavailable_error", state == 0 ? "the model is still loading" : "the model failed to load");
    }
    case R_METRICS:
        return respond(s, c, st, 200, "text/plain; version=0.0.4; charset=utf-8",
                       serve_metrics_render(&s->m, atomic_load(&s->state) == 1), NULL, NULL);
    case R_MODELS: return route_models(s, c, st);
    case R_CLASSIFY: return route_classify(s, c, st);
    default: return MHD_NO;
    }
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    serve_server_t *s = cls;
    conn_t *st = *con_cls;
    if (!st) return;
    free(st->body);
    free(st);
    *con_cls = NULL;
    atomic_fetch_sub(&s->m.in_flight, 1);
}

/* ---- life cycle ---- */

int serve_server_start(serve_server_t **out, const serve_opts_t *o, tl_err_t *err) {
    *out = NULL;
    if (o->max_batch < 1 || o->max_wait_ms < 0 || !o->queue_size || !o->max_body_bytes || !o->max_name_bytes)
        return tl_fail(err, "serve: max batch, queue size and size limits must be positive");
    serve_server_t *s = calloc(1, sizeof *s);
    if (!s) return tl_fail(err, "serve: out of memory");
    s->o = *o;
    serve_metrics_init(&s->m);
    const char *b = strrchr(o->model_path, '/');
    snprintf(s->model_name, sizeof s->model_name, "%s", b ? b + 1 : o->model_path);
    if (o->api_key) snprintf(s->auth, sizeof s->auth, "Bearer %s", o->api_key);
    if (serve_queue_init(&s->q, o->queue_size, err)) {
        free(s);
        return -1;
    }
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    const struct sockaddr *sa;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (inet_pton(AF_INET, o->host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)o->port);
        sa = (const struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, o->host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)o->port);
        sa = (const struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        serve_queue_destroy(&s->q);
        free(s);
        return tl_fail(err, "serve: host '%s' is not a numeric IPv4 or IPv6 address", o->host);
    }
    if (pthread_create(&s->worker, NULL, worker_main, s)) {
        serve_queue_destroy(&s->q);
        free(s);
        return tl_fail(err, "serve: cannot start the worker thread");
    }
    s->worker_started = 1;
    s->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, sa,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned int)(o->max_connections > 0 ? o->max_connections : 256),
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1, MHD_OPTION_END);
    if (!s->d) {
        tl_fail(err, "serve: cannot listen on %s:%d (address in use or not permitted)", o->host, o->port);
        serve_server_stop(s, 0);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    *out = s;
    return 0;
}

int serve_server_state(serve_server_t *s, tl_err_t *err) {
    int st = atomic_load(&s->state);
    if (st < 0 && err) *err = s->load_err;
    return st;
}

int serve_server_port(const serve_server_t *s) { return s->port; }
const serve_metrics_t *serve_server_metrics(const serve_server_t *s) { return &s->m; }

void serve_server_stop(serve_server_t *s, double drain_timeout_s) {
    if (!s) return;
    atomic_store(&s->draining, 1);
    if (s->d) {
        MHD_socket ls = MHD_quiesce_daemon(s->d);
        if (ls != MHD_INVALID_SOCKET) close(ls);
        double t_end = now_s() + drain_timeout_s;
        while (atomic_load(&s->m.in_flight) && now_s() < t_end) usleep(5000);
    }
    /* every queued input is still answered: the worker drains the queue */
    serve_queue_close(&s->q);
    if (s->worker_started) pthread_join(s->worker, NULL);
    if (s->d) MHD_stop_daemon(s->d);
    serve_queue_destroy(&s->q);
    serve_engine_free(s->engine);
    free(s);
}
