/* Request bodies and response documents of the classification API (JSON via
 * cJSON): validation of the three request forms, the single error shape
 * {"error":{"message","type"}}, and the result documents. No model needed. */
#ifndef TL_SERVE_REQUEST_H
#define TL_SERVE_REQUEST_H

#include <stddef.h>

#include "core/err.h"
#include "task/task.h"

/* A parse failure: HTTP status, error type ("invalid_request_error", ...) and message. */
typedef struct {
    int status;
    char type[48];
    char message[sizeof(tl_err_t)]; /* as long as an engine error, which a 500 carries */
} serve_error_t;

/* One input: the task's field values, in template order (trimmed copies). */
typedef struct {
    char *fields[TASK_MAX_FIELDS];
} serve_input_t;

typedef struct {
    serve_input_t *inputs;
    size_t n_inputs;
    int is_batch;       /* the "pairs" form: the answer is {"results":[...]} */
    char *storage;      /* backing store of every field string */
} serve_request_t;

typedef struct {
    const task_t *task;
    size_t max_name_bytes; /* longest field value accepted (bytes, after trimming) */
    size_t max_items;      /* most pairs in one batch request */
} serve_limits_t;

/* Parses a /v1/classify body. Forms: {"name1":..,"name2":..} (the task's first
 * and second fields), {"pairs":[[a,b],...]}, {"inputs":{"<column>":..,...}}.
 * Values are trimmed of spaces and tabs; empty, over-long, non-UTF-8 values or
 * ones holding control characters are rejected. On failure fills e (status
 * 400) and returns -1; out needs serve_request_free either way. */
int serve_request_parse(const char *body, size_t len, const serve_limits_t *lim, serve_request_t *out, serve_error_t *e);
void serve_request_free(serve_request_t *r);

/* Trims spaces and tabs off s in place and checks the value as a request
 * field: non-empty, well-formed UTF-8, at most max_bytes, no control
 * characters. Returns the trimmed start, or NULL with the reason in why. */
char *serve_value_check(char *s, size_t max_bytes, char *why, size_t cap);

/* Fills e and returns -1. */
int serve_error_set(serve_error_t *e, int status, const char *type, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* {"error":{"message":..,"type":..}} (malloc'd). */
char *serve_error_json(const serve_error_t *e);

/* One result: label index and the probabilities over the task's labels. */
typedef struct {
    int label;
    double probs[TASK_MAX_LABELS];
} serve_result_t;

/* {"label":..,"scores":{..},"model":..,"latency_ms":..} for one result, or
 * {"results":[{"label","scores"},..],"model":..,"latency_ms":..} when is_batch. */
char *serve_result_json(const task_t *t, const serve_result_t *res, size_t n, int is_batch, const char *model,
                        double latency_ms);

#endif
