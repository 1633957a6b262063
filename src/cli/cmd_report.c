/* tasklm report: the run report of a pipeline run folder (see pipeline/report.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "pipeline/report.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tasklm report RUN_DIR [options]\n\n"
            "Writes RUN_DIR/report/index.html and RUN_DIR/report/report.md from the run's\n"
            "files (run.json, NN-<stage>/manifest.json, eval.json, baseline.json,\n"
            "metrics.jsonl, cv.json, importance.json, bench.json, summary.json): hardware,\n"
            "data summary, per-fold CV (Table 2.2), accuracy per variant beside the seed's\n"
            "figures (Tables 2.3/2.4/4.1), confusion matrices, training curves, per-layer\n"
            "importance, latency/QPS/size (Table 5.1) and instances and monthly cost at a\n"
            "QPS target under a latency SLA (Table 5.4). Figures are SVG files drawn by\n"
            "gnuplot beside the pages. Missing stages appear as \"not run\".\n\n"
            "options:\n"
            "  --price-per-hour X   $ per instance-hour (default 0.42)\n"
            "  --qps Q              target QPS (default 100)\n"
            "  --sla-ms MS          p99 latency bound (default 800)\n"
            "  --gnuplot PATH       gnuplot executable (default gnuplot)\n"
            "  -h, --help           this help\n");
}

static int pos_num(const char *cmd, const char *flag, const char *s, double *out) {
    char *end;
    *out = strtod(s, &end);
    if (*end || end == s || !(*out > 0)) return cli_usage_error(cmd, "%s '%s': expected a positive number", flag, s);
    return 0;
}

int cmd_report(int argc, char **argv) {
    const char *cmd = "report";
    report_opts_t o = {.price_per_hour = 0.42, .target_qps = 100, .sla_ms = 800, .gnuplot = "gnuplot"};
    static const struct option opts[] = {{"price-per-hour", required_argument, 0, 'p'},
                                         {"qps", required_argument, 0, 'q'},
                                         {"sla-ms", required_argument, 0, 's'},
                                         {"gnuplot", required_argument, 0, 'g'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'p':
            if (pos_num(cmd, "--price-per-hour", optarg, &o.price_per_hour)) return CLI_USAGE;
            break;
        case 'q':
            if (pos_num(cmd, "--qps", optarg, &o.target_qps)) return CLI_USAGE;
            break;
        case 's':
            if (pos_num(cmd, "--sla-ms", optarg, &o.sla_ms)) return CLI_USAGE;
            break;
        case 'g': o.gnuplot = optarg; break;
        case 'h': usage(stdout); return CLI_OK;
        default: return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) return cli_usage_error(cmd, "expected one RUN_DIR");
    tl_err_t err = {{0}};
    if (report_write(argv[optind], &o, &err)) return cli_fail(cmd, "%s", err.msg);
    printf("wrote %s/report/index.html and report.md\n", argv[optind]);
    return CLI_OK;
}
