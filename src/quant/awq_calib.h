/* Activation statistics for calibrated quantization.
 *
 * Runs the model over prompts built from a task CSV and records, for every
 * weight matrix, the mean squared value of each input column (the activation
 * that multiplies that column). quantize_row uses these as per-element
 * importance weights, so that the scale search minimises the expected error
 * of the matrix's output, sum_i E[a_i^2] (w_i - q_i)^2, rather than the plain
 * weight error: the activation-aware criterion of AWQ / llama.cpp's imatrix. */
#ifndef TL_QUANT_AWQ_CALIB_H
#define TL_QUANT_AWQ_CALIB_H

#include <stdint.h>

#include "core/err.h"

typedef struct calib calib_t;

typedef struct {
    const char *model_path;
    const char *csv_path;      /* rows with the task's field columns */
    const char *task_dir;      /* task folder whose template renders the prompts; NULL: tasks/namematch */
    const char *template_path; /* NULL: the task's own template.txt */
    int n_rows;                /* first n data rows */
    int n_threads;
} calib_opts_t;

int calib_collect(calib_t **out, const calib_opts_t *o, tl_err_t *err);
/* Importance for a tensor (quantize_importance_fn); NULL if none was recorded
 * or the column count differs. */
const float *calib_importance(void *calib, const char *tensor_name, int64_t n_in);
/* An empty statistics object (all zeros) for n_layer layers whose four input
 * slots (capture_slot_t order) have dim[s] columns; tests fill it through
 * calib_stats. */
int calib_from_stats(calib_t **out, int n_layer, const int dim[4], tl_err_t *err);
/* The mean squared activation of each column of (layer, slot); NULL if out of range. */
float *calib_stats(calib_t *c, int layer, int slot);
/* Number of prompts and tokens seen. */
int calib_n_prompts(const calib_t *c);
long calib_n_tokens(const calib_t *c);
void calib_free(calib_t *c);

#endif
