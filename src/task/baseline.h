/* Classical name-matching baseline: string-similarity features over folded
 * names, and either a multinomial logistic regression or two tuned thresholds
 * on one similarity score (whichever scores the higher macro-F1 on the
 * training data is kept). Settings are saved as JSON in the task folder. */
#ifndef TL_TASK_BASELINE_H
#define TL_TASK_BASELINE_H

#include <stddef.h>

#include "core/err.h"
#include "task/task.h"

enum { BASELINE_N_FEATURES = 12 };

extern const char *const baseline_feature_names[BASELINE_N_FEATURES];

/* Features of a name pair (raw UTF-8; folded inside). */
int baseline_features(const char *a, const char *b, double *feat, tl_err_t *err);

typedef enum { BASELINE_LOGREG = 0, BASELINE_THRESHOLDS = 1 } baseline_method_t;

typedef struct {
    baseline_method_t method;
    size_t n_labels;
    char labels[TASK_MAX_LABELS][TASK_NAME_MAX];
    /* logistic regression over standardised features */
    double mean[BASELINE_N_FEATURES], scale[BASELINE_N_FEATURES];
    double w[TASK_MAX_LABELS][BASELINE_N_FEATURES + 1]; /* last: bias */
    /* thresholds: feature index; score >= hi -> label_hi, >= lo -> label_mid, else label_lo */
    int thr_feature;
    double thr_lo, thr_hi;
    int label_hi, label_mid, label_lo;
    double train_macro_f1_logreg, train_macro_f1_thresholds;
    size_t n_train;
} baseline_t;

/* Fits both methods on feats (n x BASELINE_N_FEATURES) and gold labels;
 * keeps the better one. The task's labels must include yes/no/partial for the
 * threshold rule (otherwise only logistic regression is fitted). */
int baseline_fit(baseline_t *b, const task_t *task, const double *feats, const int *gold, size_t n, tl_err_t *err);
int baseline_predict(const baseline_t *b, const double *feat, double *probs /* n_labels, may be NULL */);

int baseline_save(const baseline_t *b, const char *path, tl_err_t *err);
int baseline_load(baseline_t *b, const task_t *task, const char *path, tl_err_t *err);

#endif
