/* Task data preparation: clean a labelled CSV, drop exact duplicate pairs,
 * split stratified FIRST, then oversample the training part only (the test
 * part is never oversampled, so no copy of a test row can sit in train).
 * Optional stratified K-fold with oversampling inside each training fold.
 * Deterministic for a seed (xoshiro256** seeded through splitmix64). */
#ifndef TL_TASK_PREPARE_H
#define TL_TASK_PREPARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "task/task.h"

/* ---- PRNG ---- */
typedef struct {
    uint64_t s[4];
} prep_rng_t;
void prep_rng_seed(prep_rng_t *r, uint64_t seed);
uint64_t prep_rng_next(prep_rng_t *r);
uint64_t prep_rng_below(prep_rng_t *r, uint64_t n); /* uniform in [0, n), n > 0 */
void prep_rng_shuffle(prep_rng_t *r, size_t *idx, size_t n);

/* ---- index-level steps (labels[i] in [0, n_labels)) ---- */
/* Stratified split of the n items: per class, shuffle, then
 * round(n_c * (1 - train_frac)) go to test. Outputs are malloc'd, shuffled. */
int prep_split_stratified(const int *labels, size_t n, size_t n_labels, double train_frac, prep_rng_t *rng,
                          size_t **train, size_t *n_train, size_t **test, size_t *n_test, tl_err_t *err);
/* Oversamples idx[0..n) so every class present reaches the majority count:
 * all originals kept, the shortfall drawn with replacement from the class.
 * Output malloc'd and shuffled. */
int prep_oversample(const int *labels, const size_t *idx, size_t n, size_t n_labels, prep_rng_t *rng,
                    size_t **out, size_t *n_out, tl_err_t *err);
/* Stratified K-fold: fold_of[i] in [0, k); each class is dealt round-robin
 * over the folds after a shuffle, so fold sizes per class differ by <= 1. */
int prep_kfold(const int *labels, size_t n, size_t n_labels, int k, prep_rng_t *rng, int *fold_of, tl_err_t *err);

/* ---- loading ---- */
typedef struct {
    char *fields[TASK_MAX_FIELDS]; /* trimmed */
    int label;                     /* index into task labels */
    char *category;                /* NULL when the input has no category column */
    size_t line;                   /* line the record starts on in the input */
} prep_row_t;

typedef struct {
    size_t line;
    char reason[240];
} prep_drop_t;

typedef struct {
    prep_row_t *rows;
    size_t n_rows;
    prep_drop_t *drops;
    size_t n_drops;
    bool has_category;
    size_t n_read;       /* records read (good or bad), header excluded */
    size_t n_duplicates; /* of the drops, how many were duplicates */
    uint64_t input_hash; /* FNV-1a 64 of the input bytes */
} prep_data_t;

/* Reads and cleans a task CSV: trims fields, lowercases and trims labels,
 * drops (and records, with line numbers) bad CSV records, empty or over-long
 * or control-character fields, unknown labels, and exact duplicate pairs
 * (first kept; a pair seen with different labels is dropped entirely). */
int prep_load(const task_t *task, const char *path, prep_data_t *out, tl_err_t *err);
/* Same, choosing whether exact duplicates are dropped (an oversampled training
 * file holds them on purpose; evaluation keeps every row it is given). */
int prep_load_ex(const task_t *task, const char *path, bool drop_duplicates, prep_data_t *out, tl_err_t *err);
void prep_data_free(prep_data_t *d);

/* ---- whole job ---- */
typedef struct {
    const char *in_path;
    const char *out_dir;
    double split;     /* train fraction, 0 < split < 1 */
    uint64_t seed;
    int folds;        /* 0: none; else >= 2 */
    bool swap;        /* symmetric task: training parts get every pair in both orders */
    FILE *log;        /* per-row drop messages (NULL: silent) */
} prepare_opts_t;

/* Writes OUT/train.csv, OUT/test.csv, OUT/fold-K-{train,test}.csv (with folds)
 * and OUT/summary.json. *summary_json (malloc'd) receives the summary text. */
int prepare_run(const task_t *task, const prepare_opts_t *o, char **summary_json, tl_err_t *err);

#endif
