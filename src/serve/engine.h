/* The classification engine: a model, a task, and a KV cache holding the
 * template's constant prefix, evaluated once at load. Each input renders its
 * prompt and only the tokens after the cached prefix are evaluated; the
 * task's labels are scored as continuations and the answer is the softmax
 * over the labels' log-probabilities. A batch of inputs runs as one forward
 * pass over all their suffix tokens (model/batch.h): every matmul sees all
 * the batch's tokens, each input attends to the shared prefix and its own
 * tokens. At the last prompt position only the labels' first tokens get
 * logits (the log-sum-exp cancels in the label softmax); labels longer than
 * one token share their common prefix and get full logits inside. Scratch
 * for the largest batch is sized at load. One engine serves one thread at a
 * time (the model's thread pool parallelises each pass). */
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
    int max_batch;          /* inputs per pass (0: 16) */
    int max_batch_tokens;   /* tokens per pass (0: 1024; raised to fit the longest single input) */
    int amx;                /* 1: Q8_0 matmuls on the AMX-INT8 tiles where the CPU has them
                               (model_batch_use_amx); answers then differ from tasklm eval's */
    const char *label_bias; /* NULL: the adapter's, else the model's tasklm.label_bias (task/calib.h);
                               "none": raw; or a "label=value,..." spec */
    const char *lora_path;  /* NULL: none; else a LoRA adapter folded into fp32 copies of the adapted
                               weights at load (as tasklm eval --lora) */
} serve_engine_opts_t;

/* What one classification cost. */
typedef struct {
    int n_prompt;       /* prompt tokens (BOS included) */
    int n_evaluated;    /* tokens run through the model (prompt suffix + label tokens) */
    int prefix_fallback;/* 1: the prompt's tokens did not start with the cached prefix */
} serve_cost_t;

/* One input of a batch: fields in, the rest out. */
typedef struct {
    const char *const *fields;          /* the task's n_fields values */
    double probs[TASK_MAX_LABELS];      /* softmax over the labels (label-prior bias included) */
    double logprob[TASK_MAX_LABELS];    /* with want_logprob: log-probabilities over the full vocabulary */
    int label;                          /* argmax (label-prior bias included) */
    serve_cost_t cost;
    int rc;                             /* 0, or -1 with err */
    tl_err_t err;
} serve_item_t;

int serve_engine_new(serve_engine_t **out, const serve_engine_opts_t *o, tl_err_t *err);
void serve_engine_free(serve_engine_t *e);

/* Classifies n inputs, in passes of at most max_batch inputs and
 * max_batch_tokens tokens. Every item gets rc (and err on failure); returns
 * the number of failed items. want_logprob: also the full-vocabulary
 * log-probabilities (costs the full output head at the last position). */
int serve_engine_classify_many(serve_engine_t *e, serve_item_t *items, int n, int want_logprob);

/* One input: probs receives n_labels probabilities (summing to 1), logprob
 * (optional) the labels' log-probabilities over the full vocabulary; *label
 * the argmax. */
int serve_engine_classify(serve_engine_t *e, const char *const *fields, double *probs, double *logprob, int *label,
                          serve_cost_t *cost, tl_err_t *err);

const task_t *serve_engine_task(const serve_engine_t *e);
const char *serve_engine_model_name(const serve_engine_t *e); /* file name of the model */
int serve_engine_prefix_tokens(const serve_engine_t *e);      /* tokens in the cached prefix */
int serve_engine_threads(const serve_engine_t *e);
int serve_engine_max_batch(const serve_engine_t *e);

#endif
