/* Classification metrics with scikit-learn's conventions (zero_division=0):
 * accuracy, per-class precision/recall/F1/support, macro-F1 over all task
 * labels (absent classes count as 0), confusion matrix (rows gold, columns
 * predicted, in label order). */
#ifndef TL_TASK_METRICS_H
#define TL_TASK_METRICS_H

#include <stddef.h>
#include <stdio.h>

#include "core/err.h"

enum { METRICS_MAX_LABELS = 16 };

typedef struct {
    size_t n_labels, n;
    size_t confusion[METRICS_MAX_LABELS][METRICS_MAX_LABELS]; /* [gold][pred] */
    double precision[METRICS_MAX_LABELS], recall[METRICS_MAX_LABELS], f1[METRICS_MAX_LABELS];
    size_t support[METRICS_MAX_LABELS];
    double accuracy, macro_f1;
} metrics_t;

/* gold[i], pred[i] in [0, n_labels). n may be 0 (all metrics 0). */
int metrics_compute(const int *gold, const int *pred, size_t n, size_t n_labels, metrics_t *m, tl_err_t *err);
/* Mean of -logprob over n values (the answer-token loss); 0 when n == 0. */
double metrics_mean_loss(const double *gold_logprob, size_t n);


/* ---- reports shared by `tasklm eval` and `tasklm baseline` ---- */

typedef struct {
    const char *const *labels;      /* n_labels names */
    const int *gold, *pred;         /* n items */
    const char *const *categories;  /* n items, or NULL: no per-category block */
    double mean_loss;               /* NAN: reported as null */
    const char *source;             /* "model", "baseline", "predictions" (the "source" key) */
} metrics_report_t;

/* One JSON object (malloc'd, no trailing newline): macro_f1, accuracy,
 * per_class{label:{precision,recall,f1,support}}, confusion, labels, n,
 * mean_loss, per_category{cat:{n,accuracy}} (when categories are given), source. */
char *metrics_report_json(const metrics_t *m, const metrics_report_t *r);
/* Human tables: the seed's accuracy / macro-F1 / F1-per-class row, then the
 * confusion matrix and per-category accuracy. */
void metrics_report_text(FILE *f, const metrics_t *m, const metrics_report_t *r);

#endif
