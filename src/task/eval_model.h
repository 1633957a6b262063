/* Model evaluation on a task: render each row's prompt, score every label
 * continuation (model/score.h), predict the argmax. The template's constant
 * prefix is evaluated once and kept in the KV cache; each row truncates back
 * to it and appends only the rest of its prompt. */
#ifndef TL_TASK_EVAL_MODEL_H
#define TL_TASK_EVAL_MODEL_H

#include <stdbool.h>
#include <stdio.h>

#include "core/err.h"
#include "model/model.h"
#include "task/metrics.h"
#include "task/task.h"

typedef struct {
    const char *model_path;
    const char *data_path;
    const char *predictions_out; /* NULL: none */
    long limit;                  /* < 0: all rows */
    int threads;                 /* <= 0: one per core */
    /* Optional: called once on the loaded model before scoring (e.g. to fold
     * in a LoRA adapter); a failure ends the run with its message. */
    int (*model_hook)(model_t *m, void *ctx, tl_err_t *err);
    void *hook_ctx;
    /* Optional: called after each scored row with (rows done, rows in all);
     * when set, no progress lines are printed to the progress stream. */
    void (*on_row)(void *ctx, size_t done, size_t total);
    void *row_ctx;
    /* Label-prior bias (task/calib.h) added to the label log-probabilities:
     * NULL: the tasklm.label_bias of bias_file when it has one, else of the
     * model; "none": raw scores; otherwise a "label=value,..." spec. */
    const char *label_bias;
    const char *bias_file; /* e.g. the adapter folded in by model_hook; NULL: none */
} eval_model_opts_t;

typedef struct {
    metrics_t metrics;
    int *gold, *pred;       /* metrics.n items */
    char **categories;      /* metrics.n items when has_category */
    bool has_category;
    double mean_loss;       /* mean -log p(gold label | prompt), over the full vocabulary */
    double rows_per_s;
    bool has_label_bias;    /* a non-zero bias was applied */
    double label_bias[TASK_MAX_LABELS];
} eval_model_result_t;

/* progress: where to print skipped-row notes and (without on_row) a progress
 * line every 2 s (NULL: quiet). */
int eval_model_run(const task_t *task, const eval_model_opts_t *o, FILE *progress, eval_model_result_t *res, tl_err_t *err);
void eval_model_result_free(eval_model_result_t *res);

#endif
