/* Parsing and validation of classification requests; result and error documents. */
#include "serve/request.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

int serve_error_set(serve_error_t *e, int status, const char *type, const char *fmt, ...) {
    e->status = status;
    snprintf(e->type, sizeof e->type, "%s", type);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

char *serve_error_json(const serve_error_t *e) {
    cJSON *root = cJSON_CreateObject(), *inner = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(inner, "message", e->message);
    cJSON_AddStringToObject(inner, "type", e->type);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

void serve_request_free(serve_request_t *r) {
    free(r->inputs);
    free(r->storage);
    memset(r, 0, sizeof *r);
}

char *serve_value_check(char *s, size_t max_bytes, char *why, size_t cap) {
    size_t n = strlen(s);
    if (tokenizer_utf8_check(s, n) != n) {
        snprintf(why, cap, "is not valid UTF-8");
        return NULL;
    }
    while (*s == ' ' || *s == '\t') s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
    if (!n) {
        snprintf(why, cap, "is empty");
        return NULL;
    }
    if (n > max_bytes) {
        snprintf(why, cap, "is %zu bytes, over the limit of %zu", n, max_bytes);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            snprintf(why, cap, "contains a control character");
            return NULL;
        }
    return s;
}

static int bad(serve_error_t *e, const char *fmt, const char *what, const char *extra) {
    return serve_error_set(e, 400, "invalid_request_error", fmt, what, extra);
}

/* Validates one value and appends its trimmed copy to the storage. */
static int take_value(const cJSON *v, const char *what, const serve_limits_t *lim, char **dst, char **cursor,
                      serve_error_t *e) {
    if (!v) return bad(e, "missing field '%s'%s", what, "");
    if (!cJSON_IsString(v) || !v->valuestring) return bad(e, "field '%s' must be a string%s", what, "");
    const char *s = v->valuestring;
    size_t n = strlen(s);
    if (tokenizer_utf8_check(s, n) != n) return bad(e, "field '%s' is not valid UTF-8%s", what, "");
    while (*s == ' ' || *s == '\t') s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (!n) return bad(e, "field '%s' is empty%s", what, "");
    if (n > lim->max_name_bytes)
        return serve_error_set(e, 400, "invalid_request_error", "field '%s' is %zu bytes, over the limit of %zu", what, n,
                               lim->max_name_bytes);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return bad(e, "field '%s' contains a control character%s", what, "");
    memcpy(*cursor, s, n);
    (*cursor)[n] = '\0';
    *dst = *cursor;
    *cursor += n + 1;
    return 0;
}

int serve_request_parse(const char *body, size_t len, const serve_limits_t *lim, serve_request_t *out, serve_error_t *e) {
    memset(out, 0, sizeof *out);
    const task_t *t = lim->task;
    if (t->n_fields < 1) return serve_error_set(e, 500, "server_error", "task %s has no fields", t->name);
    if (!len) return serve_error_set(e, 400, "invalid_request_error", "empty body: expected a JSON object");
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) return serve_error_set(e, 400, "invalid_request_error", "malformed JSON body");
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        serve_error_set(e, 400, "invalid_request_error", "the body must be a JSON object");
        goto done;
    }
    const cJSON *pairs = cJSON_GetObjectItemCaseSensitive(root, "pairs");
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    const cJSON *n1 = cJSON_GetObjectItemCaseSensitive(root, "name1");
    const cJSON *n2 = cJSON_GetObjectItemCaseSensitive(root, "name2");
    int forms = (pairs != NULL) + (inputs != NULL) + (n1 || n2);
    if (forms != 1) {
        serve_error_set(e, 400, "invalid_request_error",
                        forms ? "give exactly one of name1/name2, pairs or inputs"
                              : "missing input: expected name1 and name2, pairs, or inputs");
        goto done;
    }
    size_t n_items = 1;
    if (pairs) {
        if (!cJSON_IsArray(pairs)) {
            serve_error_set(e, 400, "invalid_request_error", "field 'pairs' must be an array of [name1, name2] arrays");
            goto done;
        }
        n_items = (size_t)cJSON_GetArraySize(pairs);
        if (!n_items) {
            serve_error_set(e, 400, "invalid_request_error", "field 'pairs' is empty");
            goto done;
        }
        if (n_items > lim->max_items) {
            serve_error_set(e, 400, "invalid_request_error", "field 'pairs' has %zu items, over the limit of %zu", n_items,
                            lim->max_items);
            goto done;
        }
        out->is_batch = 1;
    } else if (inputs && !cJSON_IsObject(inputs)) {
        serve_error_set(e, 400, "invalid_request_error", "field 'inputs' must be an object of the task's fields");
        goto done;
    } else if (!inputs && t->n_fields != 2) {
        serve_error_set(e, 400, "invalid_request_error", "task %s has %zu fields: use the inputs form", t->name, t->n_fields);
        goto done;
    }
    out->inputs = calloc(n_items, sizeof *out->inputs);
    out->storage = malloc(len + n_items * TASK_MAX_FIELDS + 1); /* values are no longer than the body */
    if (!out->inputs || !out->storage) {
        serve_error_set(e, 500, "server_error", "out of memory");
        goto done;
    }
    out->n_inputs = n_items;
    char *cur = out->storage;
    if (pairs) {
        size_t i = 0;
        const cJSON *p;
        cJSON_ArrayForEach(p, pairs) {
            char what[64];
            if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) != (int)t->n_fields) {
                serve_error_set(e, 400, "invalid_request_error", "pairs[%zu] must be an array of %zu strings", i, t->n_fields);
                goto done;
            }
            for (size_t k = 0; k < t->n_fields; k++) {
                snprintf(what, sizeof what, "pairs[%zu][%zu]", i, k);
                if (take_value(cJSON_GetArrayItem(p, (int)k), what, lim, &out->inputs[i].fields[k], &cur, e)) goto done;
            }
            i++;
        }
    } else if (inputs) {
        const cJSON *it;
        cJSON_ArrayForEach(it, inputs) {
            size_t k = 0;
            while (k < t->n_fields && strcmp(it->string, t->field_columns[k])) k++;
            if (k == t->n_fields) {
                serve_error_set(e, 400, "invalid_request_error", "inputs: unknown field '%.64s' for task %s", it->string, t->name);
                goto done;
            }
        }
        for (size_t k = 0; k < t->n_fields; k++) {
            char what[TASK_NAME_MAX + 8];
            snprintf(what, sizeof what, "inputs.%s", t->field_columns[k]);
            if (take_value(cJSON_GetObjectItemCaseSensitive(inputs, t->field_columns[k]), what, lim,
                           &out->inputs[0].fields[k], &cur, e))
                goto done;
        }
    } else {
        if (take_value(n1, "name1", lim, &out->inputs[0].fields[0], &cur, e) ||
            take_value(n2, "name2", lim, &out->inputs[0].fields[1], &cur, e))
            goto done;
    }
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

static cJSON *result_object(const task_t *t, const serve_result_t *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "label", t->labels[r->label]);
    cJSON *s = cJSON_AddObjectToObject(o, "scores");
    for (size_t k = 0; k < t->n_labels; k++) cJSON_AddNumberToObject(s, t->labels[k], r->probs[k]);
    return o;
}

char *serve_result_json(const task_t *t, const serve_result_t *res, size_t n, int is_batch, const char *model,
                        double latency_ms) {
    cJSON *root;
    if (is_batch) {
        root = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(root, "results");
        for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, result_object(t, &res[i]));
    } else {
        root = result_object(t, &res[0]);
    }
    cJSON_AddStringToObject(root, "model", model);
    cJSON_AddNumberToObject(root, "latency_ms", latency_ms);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}
