/* tasklm pipeline: run a recipe's stages in order, resumably (src/pipeline). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "pipeline/recipe.h"
#include "pipeline/run.h"

#define CMD "pipeline"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tasklm pipeline RECIPE.ini [--dry-run] [--from STAGE]\n\n"
            "Runs the recipe's stages in order under RUNS_DIR/NAME/NN-STAGE/ (default runs/NAME),\n"
            "each as a tasklm subcommand, each ending with a manifest.json (input SHA-256s,\n"
            "settings, version, status, times, outputs). A stage whose manifest is done with\n"
            "the same settings and input hashes is skipped; a killed run resumes (a train stage\n"
            "from its checkpoint). Ends with a summary: macro-F1 per evaluated variant, the\n"
            "final model (RUNS_DIR/NAME/final-TYPE.gguf) and the report. Recipe keys: docs/PIPELINE.md.\n\n"
            "  --dry-run       validate the recipe and print the planned stages; run nothing\n"
            "  --from STAGE    re-run from this stage (name, kind or number) even if up to date\n"
            "  -h, --help      this help\n");
}

int cmd_pipeline(int argc, char **argv) {
    static const struct option opts[] = {
        {"dry-run", no_argument, 0, 'n'}, {"from", required_argument, 0, 'f'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    pipeline_opts_t o = {.out = stdout};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'n': o.dry_run = 1; break;
        case 'f': o.from = optarg; break;
        case 'h': usage(stdout); return CLI_OK;
        case ':': return cli_usage_error(CMD, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error(CMD, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc) return cli_usage_error(CMD, "missing the recipe file");
    if (optind + 1 < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
    tl_err_t err = {{0}};
    static recipe_t r;
    if (recipe_load(&r, argv[optind], &err)) return cli_usage_error(CMD, "%s", err.msg);
    if (o.from) {
        int k = pipeline_find_stage(&r, o.from);
        if (k == -2) return cli_usage_error(CMD, "--from '%s' matches several stages; give the name or number", o.from);
        if (k < 0) return cli_usage_error(CMD, "--from '%s' is not a stage of %s", o.from, argv[optind]);
    }
    static char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return cli_fail(CMD, "cannot find the tasklm binary (/proc/self/exe)");
    exe[n] = '\0';
    o.exe = exe;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (pipeline_run(&r, &o, &err)) return cli_fail(CMD, "%s", err.msg);
    return CLI_OK;
}
