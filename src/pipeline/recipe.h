/* Pipeline recipes: an INI file (parsed with libinih) naming the base model,
 * the task, the data and the ordered stages with their settings. Sections:
 * [recipe] holds the run-wide keys; every other section is a stage, written
 * [KIND] or [KIND NAME], run in file order. Every key is validated against
 * its section's kind; an unknown key, a bad value or a duplicate fails with
 * the file and line. */
#ifndef TL_PIPELINE_RECIPE_H
#define TL_PIPELINE_RECIPE_H

#include "core/err.h"

#define RECIPE_MAX_STAGES 32
#define RECIPE_MAX_KEYS 32

typedef struct {
    char key[48];
    char val[400];
    int line;
} recipe_kv_t;

typedef struct {
    char kind[24];
    char name[64];
    int line;
    recipe_kv_t kv[RECIPE_MAX_KEYS];
    int n_kv;
} recipe_stage_t;

typedef struct {
    char path[512];
    char name[64];
    char model[400], task[64], task_dir[400], data[400], runs_dir[400]; /* task_dir: tasks/TASK unless given */
    int task_line; /* line of task / task_dir (0: the default task) */
    int threads;
    long seed;
    recipe_stage_t stages[RECIPE_MAX_STAGES];
    int n_stages;
} recipe_t;

/* Parses and validates path into r. */
int recipe_load(recipe_t *r, const char *path, tl_err_t *err);
/* The value of key in stage s, or NULL. */
const char *recipe_get(const recipe_stage_t *s, const char *key);
/* Comma-separated list of the keys a section kind accepts ("" if none); NULL for an unknown kind. */
const char *recipe_kind_keys(const char *kind);

#endif
