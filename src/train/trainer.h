/* The LoRA trainer: task data to token sequences (prompt + label
 * continuation, loss on the label tokens only), shuffled mini-batches with
 * gradient accumulation, AdamW with warm-up and decay, periodic evaluation by
 * label scoring (argmax of the label log-probabilities) with metrics appended
 * to OUT/metrics.jsonl, the best adapter by macro-F1 (OUT/adapter.gguf; the
 * macro-F1 after the label-prior calibration fitted at that evaluation, the
 * figure the adapter is scored with, unless no_calibrate), the
 * last one (OUT/adapter-last.gguf), early stopping and a resumable checkpoint
 * (OUT/checkpoint.bin). */
#ifndef TL_TRAIN_TRAINER_H
#define TL_TRAIN_TRAINER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "train/adamw.h"

/* One progress report: sent once before the first step (step = the step the
 * run starts from, loss = NaN) and after every optimizer step. */
typedef struct {
    long step, total;
    double epoch, loss, lr, tokens_per_s, s_per_step;
} trainer_step_t;

typedef struct {
    const char *model_path, *task_dir, *train_path, *eval_path, *out_dir;
    int rank;
    float alpha, dropout;
    unsigned targets;
    int epochs;
    long max_steps;      /* <= 0: epochs decide */
    float lr, weight_decay, clip;
    long warmup_steps;   /* < 0: 10% of the steps */
    sched_kind_t sched;
    int batch, micro_batch;
    int eval_every;      /* steps; <= 0: only at the end */
    long eval_delay;     /* no evaluation (so no selection, no early stop) before this step; the
                          * last step is always evaluated */
    long eval_limit;     /* < 0: all eval rows */
    long train_limit;    /* < 0: all train rows */
    int patience;        /* evaluations without a better selection macro-F1 (calibrated unless
                          * no_calibrate) before stopping; <= 0: never */
    uint64_t seed;
    int threads;
    bool end_token;      /* append EOS to the answer */
    bool no_calibrate;   /* do not fit the label-prior bias (task/calib.h) into the adapters */
    bool resume;
    int log_every;
    long stop_after;     /* > 0: stop after this step (tests of --resume) */
    /* Optional progress hooks (the CLI's progress display). on_step replaces
     * the plain step lines; on_log receives every other line (evaluations,
     * resume, early stop) instead of the progress stream. */
    void (*on_step)(void *ctx, const trainer_step_t *st);
    void (*on_log)(void *ctx, const char *line);
    void *hook_ctx;
} trainer_opts_t;

void trainer_opts_default(trainer_opts_t *o);

/* best_macro_f1 / last_macro_f1 are the selection figure (the calibrated
 * macro-F1 on the eval rows unless no_calibrate); *_raw the uncalibrated one
 * of the same evaluations. */
typedef struct {
    long steps;
    long best_step;
    double best_macro_f1, last_macro_f1, first_loss, last_loss;
    double best_macro_f1_raw, last_macro_f1_raw;
    double tokens_per_s, s_per_step;
} trainer_result_t;

/* progress: one line per logging step and per evaluation (NULL: quiet). */
int trainer_run(const trainer_opts_t *o, FILE *progress, trainer_result_t *res, tl_err_t *err);

#endif
