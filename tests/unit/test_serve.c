/* Serving without a model: request validation (status, type, message), the
 * batch queue (max batch, max wait, full queue), Prometheus text. */
#include <stdlib.h>
#include <time.h>

#include "serve/metrics.h"
#include "serve/queue.h"
#include "serve/request.h"
#include "tl_test.h"

static task_t T;

static void init_task(void) {
    snprintf(T.name, sizeof T.name, "namematch");
    T.n_fields = 2;
    snprintf(T.field_columns[0], TASK_NAME_MAX, "elected_name");
    snprintf(T.field_columns[1], TASK_NAME_MAX, "partner_name");
    T.n_labels = 3;
    snprintf(T.labels[0], TASK_NAME_MAX, "yes");
    snprintf(T.labels[1], TASK_NAME_MAX, "no");
    snprintf(T.labels[2], TASK_NAME_MAX, "partial");
}

static int parse(const char *body, serve_request_t *r, serve_error_t *e) {
    serve_limits_t lim = {&T, 16, 4};
    memset(e, 0, sizeof *e);
    return serve_request_parse(body, strlen(body), &lim, r, e);
}

static void expect_400(const char *body, const char *msg) {
    serve_request_t r;
    serve_error_t e;
    CHECK_EQ_INT(parse(body, &r, &e), -1);
    CHECK_EQ_INT(e.status, 400);
    CHECK_STR(e.type, "invalid_request_error");
    CHECK_CONTAINS(e.message, msg);
    serve_request_free(&r);
}

TEST(forms_parse) {
    serve_request_t r;
    serve_error_t e;
    CHECK_EQ_INT(parse("{\"name1\":\" Ravi Kumar \",\"name2\":\"Rvi Kumar\\t\"}", &r, &e), 0);
    CHECK_EQ_INT(r.n_inputs, 1);
    CHECK_EQ_INT(r.is_batch, 0);
    CHECK_STR(r.inputs[0].fields[0], "Ravi Kumar");
    CHECK_STR(r.inputs[0].fields[1], "Rvi Kumar");
    serve_request_free(&r);
    CHECK_EQ_INT(parse("{\"pairs\":[[\"a\",\"b\"],[\"c\",\"d\"]]}", &r, &e), 0);
    CHECK_EQ_INT(r.n_inputs, 2);
    CHECK_EQ_INT(r.is_batch, 1);
    CHECK_STR(r.inputs[1].fields[0], "c");
    CHECK_STR(r.inputs[1].fields[1], "d");
    serve_request_free(&r);
    CHECK_EQ_INT(parse("{\"inputs\":{\"partner_name\":\"p\",\"elected_name\":\"\\u00e9\"}}", &r, &e), 0);
    CHECK_STR(r.inputs[0].fields[0], "\xc3\xa9");
    CHECK_STR(r.inputs[0].fields[1], "p");
    serve_request_free(&r);
}

TEST(errors) {
    expect_400("{\"name1\":", "malformed JSON");
    expect_400("[1]", "JSON object");
    expect_400("{\"name1\":\"a\"}", "missing field 'name2'");
    expect_400("{\"name1\":\"a\",\"name2\":3}", "'name2' must be a string");
    expect_400("{\"name1\":\"a\",\"name2\":\"  \"}", "'name2' is empty");
    expect_400("{\"name1\":\"a\",\"name2\":\"\xff\xfe\"}", "not valid UTF-8");
    expect_400("{\"name1\":\"a\",\"name2\":\"0123456789abcdefX\"}", "17 bytes, over the limit of 16");
    expect_400("{\"name1\":\"a\\u0001\",\"name2\":\"b\"}", "control character");
    expect_400("{\"pairs\":[]}", "'pairs' is empty");
    expect_400("{\"pairs\":[[\"a\",\"b\"],[\"a\"]]}", "pairs[1] must be an array of 2 strings");
    expect_400("{\"pairs\":[[\"a\",\"b\"],[\"a\",\"b\"],[\"a\",\"b\"],[\"a\",\"b\"],[\"a\",\"b\"]]}", "over the limit of 4");
    expect_400("{\"inputs\":{\"elected_name\":\"a\",\"x\":\"b\"}}", "unknown field 'x'");
    expect_400("{\"inputs\":{\"elected_name\":\"a\"}}", "missing field 'inputs.partner_name'");
    expect_400("{\"name1\":\"a\",\"name2\":\"b\",\"pairs\":[]}", "exactly one");
    expect_400("{}", "missing input");
    expect_400("", "empty body");
}

TEST(error_json_shape) {
    serve_error_t e;
    serve_error_set(&e, 404, "not_found_error", "no route %s", "/x\"y");
    char *s = serve_error_json(&e);
    CHECK_STR(s, "{\"error\":{\"message\":\"no route /x\\\"y\",\"type\":\"not_found_error\"}}");
    free(s);
}

TEST(queue_batches) {
    serve_queue_t q;
    tl_err_t err;
    CHECK_EQ_INT(serve_queue_init(&q, 5, &err), 0);
    int v[8];
    void *p[8], *out[8];
    for (int i = 0; i < 8; i++) p[i] = &v[i];
    CHECK_EQ_INT(serve_queue_push(&q, p, 3), 0);
    CHECK_EQ_INT(serve_queue_push(&q, p + 3, 3), -1); /* 6 > 5: nothing added */
    CHECK_EQ_INT(serve_queue_depth(&q), 3);
    CHECK_EQ_INT(serve_queue_push(&q, p + 3, 2), 0);
    CHECK_EQ_INT(serve_queue_pop_batch(&q, out, 4, 0), 4);
    CHECK(out[0] == p[0] && out[3] == p[3]);
    /* one left, max batch 4, 30 ms wait, the previous hand-out was 4 (load): returns after the wait with 1 */
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    CHECK_EQ_INT(serve_queue_pop_batch(&q, out, 4, 30), 1);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) * 1e-6;
    CHECK(ms >= 25 && ms < 2000);
    CHECK(out[0] == p[4]);
    /* after a single-item hand-out (no load), a lone item goes at once */
    CHECK_EQ_INT(serve_queue_push(&q, p, 1), 0);
    clock_gettime(CLOCK_MONOTONIC, &a);
    CHECK_EQ_INT(serve_queue_pop_batch(&q, out, 4, 5000), 1);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) * 1e-6;
    CHECK(ms < 1000);
    /* a full batch is handed out at once, without waiting */
    CHECK_EQ_INT(serve_queue_push(&q, p, 4), 0);
    clock_gettime(CLOCK_MONOTONIC, &a);
    CHECK_EQ_INT(serve_queue_pop_batch(&q, out, 4, 5000), 4);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) * 1e-6;
    CHECK(ms < 1000);
    /* closed: queued items still come out, then 0; pushes fail */
    CHECK_EQ_INT(serve_queue_push(&q, p, 2), 0);
    serve_queue_close(&q);
    CHECK_EQ_INT(serve_queue_push(&q, p, 1), -1);
    CHECK_EQ_INT(serve_queue_pop_batch(&q, out, 4, 100), 2);
    CHECK_EQ_INT(serve_queue_pop_batch(&q, out, 4, 100), 0);
    serve_queue_destroy(&q);
}

TEST(prometheus_text) {
    serve_metrics_t m;
    serve_metrics_init(&m);
    serve_metrics_request(&m, 200, 0.003);
    serve_metrics_request(&m, 200, 0.2);
    serve_metrics_request(&m, 418, 0.0001);
    serve_metrics_batch(&m, 3);
    char *s = serve_metrics_render(&m, 1);
    CHECK_CONTAINS(s, "# TYPE tasklm_http_requests_total counter\n");
    CHECK_CONTAINS(s, "tasklm_http_requests_total{code=\"200\"} 2\n");
    CHECK_CONTAINS(s, "tasklm_http_requests_total{code=\"other\"} 1\n");
    CHECK_CONTAINS(s, "tasklm_request_duration_seconds_bucket{le=\"0.001\"} 1\n");
    CHECK_CONTAINS(s, "tasklm_request_duration_seconds_bucket{le=\"0.005\"} 2\n");
    CHECK_CONTAINS(s, "tasklm_request_duration_seconds_bucket{le=\"+Inf\"} 3\n");
    CHECK_CONTAINS(s, "tasklm_request_duration_seconds_count 3\n");
    CHECK_CONTAINS(s, "tasklm_batch_size_bucket{le=\"2\"} 0\n");
    CHECK_CONTAINS(s, "tasklm_batch_size_bucket{le=\"4\"} 1\n");
    CHECK_CONTAINS(s, "tasklm_batch_size_sum 3\n");
    CHECK_CONTAINS(s, "tasklm_ready 1\n");
    free(s);
}

int main(void) {
    init_task();
    RUN(forms_parse);
    RUN(errors);
    RUN(error_json_shape);
    RUN(queue_batches);
    RUN(prometheus_text);
    return tl_test_summary("test_serve");
}
