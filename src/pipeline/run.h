/* Running a recipe: each stage runs as a child process of the tasklm binary
 * (the same subcommands a user would call), in runs/NAME/NN-STAGE/, and ends
 * with a manifest.json (input SHA-256s, settings, version, status, times,
 * outputs) written atomically. A stage whose manifest says done with the same
 * version, settings and input hashes, and whose outputs exist, is skipped; a
 * train stage killed part-way resumes from its checkpoint. */
#ifndef TL_PIPELINE_RUN_H
#define TL_PIPELINE_RUN_H

#include <stdio.h>

#include "core/err.h"
#include "pipeline/recipe.h"

#define PIPELINE_VERSION "tasklm-pipeline/1"

typedef struct {
    const char *exe;  /* tasklm binary the stages run */
    const char *from; /* stage name or number: re-run from there on (NULL: none) */
    int dry_run;      /* print the plan only */
    FILE *out;        /* stage lines and the summary */
} pipeline_opts_t;

/* Index of the stage named (or numbered, 1-based) sel, or -1. */
int pipeline_find_stage(const recipe_t *r, const char *sel);
int pipeline_run(const recipe_t *r, const pipeline_opts_t *o, tl_err_t *err);

#endif
