#include "task/eval_model.h"

#include <stdlib.h>
#include <string.h>

/* Placeholder until the tokenizer and the forward pass are in the tree. */
int eval_model_run(const task_t *task, const eval_model_opts_t *o, FILE *progress, eval_model_result_t *res, tl_err_t *err) {
    (void)task;
    (void)progress;
    memset(res, 0, sizeof *res);
    return tl_fail(err, "%s: model evaluation is not available in this build yet", o->model_path);
}

void eval_model_result_free(eval_model_result_t *res) {
    free(res->gold);
    free(res->pred);
    if (res->categories)
        for (size_t i = 0; i < res->metrics.n; i++) free(res->categories[i]);
    free(res->categories);
    memset(res, 0, sizeof *res);
}
