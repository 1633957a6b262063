/* Label-prior calibration.
 *
 * Training data is oversampled to balanced classes (tasklm data prepare), so a
 * fine-tuned model's label scores carry the training prior (1/3 each for
 * namematch) while deployment sees the natural one (about 60/27/13). Bayes'
 * rule says the correction is log(pi_l / tau_l) per label (pi: natural prior,
 * tau: training prior); macro-F1 is best with part of it. The trainer fits
 * one strength lambda in [0, 1] on the validation set (natural prior, never
 * oversampled), bias_l = lambda * log(pi_l / tau_l), and writes the biases into
 * the adapter as the metadata string
 *     tasklm.label_bias = "yes=0.291,no=-0.106,partial=-0.472"
 * (natural-log offsets added to each label's log-probability before the argmax
 * and the normalisation of the probabilities). merge, quantize and prune carry
 * the key, and every scorer (eval, classify, serve, bench) applies it; a
 * model without the key scores raw. */
#ifndef TL_TASK_CALIB_H
#define TL_TASK_CALIB_H

#include <stddef.h>

#include "core/err.h"
#include "io/gguf.h"
#include "task/task.h"

#define LABEL_BIAS_KEY "tasklm.label_bias"

/* Parses "label=value,..." (labels of the task, each at most once, values
 * finite); unnamed labels get 0. "none" or "" gives all zeros. */
int label_bias_parse(const task_t *t, const char *s, double *bias, tl_err_t *err);
/* Checks the "label=value,..." syntax without a task (label names are
 * checked where the model is used with its task). */
int label_bias_check(const char *s, tl_err_t *err);
/* Writes "label=value,..." with 6 significant digits (every label). */
void label_bias_format(const task_t *t, const double *bias, char *buf, size_t n);
/* Reads the key from a model or adapter file: 1 and the biases when present,
 * 0 and zeros when absent, -1 on a malformed value (error names the file). */
int label_bias_from_gguf(const gguf_file_t *f, const task_t *t, double *bias, tl_err_t *err);

/* The bias a scorer applies: spec when given ("none": zeros); else the key of
 * adapter_path when that file has one; else the model's (zeros if absent). */
int label_bias_resolve(const task_t *t, const char *spec, const char *adapter_path, const gguf_file_t *model,
                       double *bias, tl_err_t *err);

/* argmax over labels of lp[k] + bias[k] (bias may be NULL); ties: lowest index. */
int label_bias_argmax(const double *lp, const double *bias, size_t n_labels);
/* probs[k] = softmax(lp + bias)[k]. */
void label_bias_probs(const double *lp, const double *bias, size_t n_labels, double *probs);

typedef struct {
    double lambda;                 /* chosen strength */
    double macro_f1_raw, macro_f1; /* on the fitting set, without and with the bias */
    double bias[TASK_MAX_LABELS];
} label_calib_t;

/* Fits lambda on a grid (0, 1/8, ..., 1) maximising macro-F1 of
 * argmax(lp + lambda * log(pi / tau)) over n rows (lp: n x n_labels, gold:
 * n); ties go to the lambda nearest 1/2. train_counts (tau) and eval_counts
 * (pi) are label counts; a label absent from either gets no bias. */
int label_calib_fit(const double *lp, const int *gold, size_t n, size_t n_labels, const size_t *train_counts,
                    const size_t *eval_counts, label_calib_t *out, tl_err_t *err);

#endif
