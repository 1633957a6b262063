/* Run report: reads a pipeline run folder (run.json, NN-<stage>/ folders with
 * manifest.json and the stage's result files) and writes RUN/report/index.html
 * and RUN/report/report.md with the seed's tables for this run and gnuplot
 * figures (SVG files beside them, referenced relatively). Missing stages are
 * "not run" rows; a malformed JSON file is an error naming it. */
#ifndef TL_PIPELINE_REPORT_H
#define TL_PIPELINE_REPORT_H

#include "core/err.h"

typedef struct {
    double price_per_hour; /* $ per instance-hour for the cost table */
    double target_qps;     /* 100 */
    double sla_ms;         /* 800 */
    const char *gnuplot;   /* gnuplot executable ("gnuplot") */
} report_opts_t;

int report_write(const char *run_dir, const report_opts_t *o, tl_err_t *err);

#endif
