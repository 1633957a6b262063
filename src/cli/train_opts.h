/* Options and progress display shared by tasklm train and tasklm cv (both
 * train adapters with the same flags). */
#ifndef TL_CLI_TRAIN_OPTS_H
#define TL_CLI_TRAIN_OPTS_H

#include <getopt.h>
#include <stdio.h>

#include "cli/progress.h"
#include "train/trainer.h"

/* First option code of the caller's own long options (shared ones are below it). */
#define TRAIN_OPT_USER 1000

/* Copies the shared long options (model, task, LoRA, optimizer, batch,
 * evaluation, seed, threads, log-every, json) into dst; returns how many. */
int train_opts_table(struct option *dst, int cap);
/* Applies option c (from the shared table). Returns 1 when handled, 0 when c
 * is not a shared option, -1 on a bad value (message in err). */
int train_opts_apply(int c, const char *arg, trainer_opts_t *o, const char **task_name, int *json, tl_err_t *err);
/* Help text of the shared options. */
void train_opts_usage(FILE *out);

/* Progress glue: a bar on a terminal, plain lines every log_every steps otherwise. */
typedef struct {
    progress_t p;
    FILE *out;
    const char *label;
    int log_every, started;
} train_progress_t;

void train_progress_init(train_progress_t *tp, FILE *out, const char *label, int log_every);
/* Sets o's hooks to tp. */
void train_progress_attach(train_progress_t *tp, trainer_opts_t *o);
void train_progress_finish(train_progress_t *tp);

#endif
