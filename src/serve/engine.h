/* The classification engine: a model, a task, and a KV cache holding the
 * template's constant prefix, evaluated once at load. Each input renders its
 * prompt, prefills only the tokens after the cached prefix, and scores the
 * task's labels as continuations; the answer is the softmax over the labels'
 * log-probabilities. One engine serves one thread at a time (the model's own
 * thread pool parallelises each pass). */
#ifndef TL_SERVE_ENGINE_H
#define TL_SERVE_ENGINE_H

#include <stddef.h>

#include "core/err.h"
#include "task/task.h"

typedef struct serve_engine serve_engine_t;

typedef struct {
    const char *model_path;
    const task_t *task;     /* kept by pointer: must outlive the engine */
    int threads;            /* <= 0: one per core */
    size_t max_field_bytes; /* longest field value to size the context for (0: the task's limit) */
} serve_engine_opts_t;

/* What one classification cost. */
typedef struct {
    int n_prompt;       /* prompt tokens (BOS included) */
    int n_evaluated;    /* tokens run through the model (prompt suffix + label tokens) */
    int prefix_fallback;/* 1: the prompt's tokens did not start with the cached prefix */
} serve_cost_t;

int serve_engine_new(serve_engine_t **out, const serve_engine_opts_t *o, tl_err_t *err);
void serve_engine_free(serve_engine_t *e);

/* fields: the task's n_fields values. probs receives n_labels probabilities
 * (summing to 1), logprob (optional) the labels' log-probabilities over the
 * full vocabulary; *label the argmax. */
int serve_engine_classify(serve_engine_t *e, const char *const *fields, double *probs, double *logprob, int *label,
                          serve_cost_t *cost, tl_err_t *err);

const task_t *serve_engine_task(const serve_engine_t *e);
const char *serve_engine_model_name(const serve_engine_t *e); /* file name of the model */
int serve_engine_prefix_tokens(const serve_engine_t *e);      /* tokens in the cached prefix */
int serve_engine_threads(const serve_engine_t *e);

#endif
