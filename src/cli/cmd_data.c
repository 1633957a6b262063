/* tasklm data: `generate` (synthetic corpus, in cmd_data_generate.c),
 * `prepare` (clean, dedupe, split, oversample train only, folds) and `render`
 * (each row's prompt, as the model sees it). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "task/prepare.h"
#include "task/task.h"

/* Defined in cmd_data_generate.c; weak so the tree links before it lands. */
int cmd_data_generate(int argc, char **argv) __attribute__((weak));

static void prepare_usage(FILE *out) {
    fprintf(out,
            "usage: tasklm data prepare --in RAW.csv --out-dir DIR [options]\n\n"
            "Cleans a labelled task CSV and writes DIR/train.csv, DIR/test.csv and\n"
            "DIR/summary.json. Rows with an empty or over-long field, an unknown label,\n"
            "a CSV error or invalid UTF-8 are reported (line numbers) and dropped; exact\n"
            "duplicate pairs are dropped before the split (a pair seen with different\n"
            "labels is dropped entirely). The split is stratified and made FIRST; only\n"
            "the training part is oversampled (with replacement, to the majority count).\n\n"
            "options:\n"
            "  --in PATH          input CSV (header row; task field and label columns)\n"
            "  --out-dir DIR      output folder (created if missing)\n"
            "  --split F          train fraction, 0 < F < 1 (default 0.9)\n"
            "  --seed N           random seed (default 42)\n"
            "  --folds K          also write stratified K-fold files fold-I-{train,test}.csv\n"
            "                     over all clean rows (train oversampled inside each fold)\n"
            "  --swap             add the reversed copy (name2, name1) of every training pair\n"
            "                     before oversampling; test rows stay as read. Only for a\n"
            "                     task marked \"symmetric\" (its two fields interchangeable;\n"
            "                     such a task also deduplicates (a, b) against (b, a))\n"
            "  --task-dir DIR     task folder (default tasks/namematch)\n"
            "  --quiet            do not list dropped rows on stderr\n"
            "  --json             print summary.json on stdout\n"
            "  -h, --help         this help\n");
}

static int cmd_data_prepare(int argc, char **argv) {
    static const struct option opts[] = {
        {"in", required_argument, 0, 'i'},       {"out-dir", required_argument, 0, 'o'},
        {"split", required_argument, 0, 's'},    {"seed", required_argument, 0, 'S'},
        {"folds", required_argument, 0, 'k'},    {"task-dir", required_argument, 0, 't'},
        {"quiet", no_argument, 0, 'q'},          {"json", no_argument, 0, 'j'},
        {"swap", no_argument, 0, 'w'},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *cmd = "data prepare";
    prepare_opts_t o = {.split = 0.9, .seed = 42, .folds = 0, .log = stderr};
    const char *task_dir = "tasks/namematch";
    int json = 0;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'i': o.in_path = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case 's':
            o.split = strtod(optarg, &end);
            if (*end || end == optarg || !(o.split > 0 && o.split < 1))
                return cli_usage_error(cmd, "--split '%s' must be a number between 0 and 1 (exclusive)", optarg);
            break;
        case 'S':
            o.seed = strtoull(optarg, &end, 10);
            if (*end || end == optarg || optarg[0] == '-') return cli_usage_error(cmd, "--seed '%s' must be a non-negative integer", optarg);
            break;
        case 'k': {
            long k = strtol(optarg, &end, 10);
            if (*end || end == optarg || k < 2 || k > 1000) return cli_usage_error(cmd, "--folds '%s' must be an integer in 2..1000", optarg);
            o.folds = (int)k;
            break;
        }
        case 't': task_dir = optarg; break;
        case 'q': o.log = NULL; break;
        case 'j': json = 1; break;
        case 'w': o.swap = true; break;
        case 'h': prepare_usage(stdout); return CLI_OK;
        case ':': return cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!o.in_path) return cli_usage_error(cmd, "--in is required");
    if (!o.out_dir) return cli_usage_error(cmd, "--out-dir is required");
    tl_err_t err = {{0}};
    task_t *task;
    if (task_load(&task, task_dir, &err)) return cli_fail(cmd, "%s", err.msg);
    char *summary;
    int rc = prepare_run(task, &o, &summary, &err);
    task_free(task);
    if (rc) return cli_fail(cmd, "%s", err.msg);
    if (json) fputs(summary, stdout);
    else printf("wrote %s/train.csv, %s/test.csv%s and %s/summary.json\n", o.out_dir, o.out_dir,
                o.folds ? " and fold files" : "", o.out_dir);
    free(summary);
    return CLI_OK;
}

static void render_usage(FILE *out) {
    fprintf(out,
            "usage: tasklm data render --in FILE.csv [options]\n\n"
            "Prints the prompt the model sees for each usable row of a labelled task CSV\n"
            "(rows are read and cleaned as tasklm eval reads them), one JSON object per\n"
            "line: {\"line\":N,\"prompt\":\"...\",\"label\":\"...\"}.\n\n"
            "options:\n"
            "  --in PATH          input CSV (task schema)\n"
            "  --task-dir DIR     task folder (default tasks/namematch)\n"
            "  --limit N          only the first N usable rows\n"
            "  -h, --help         this help\n");
}

static int cmd_data_render(int argc, char **argv) {
    static const struct option opts[] = {
        {"in", required_argument, 0, 'i'},
        {"task-dir", required_argument, 0, 't'},
        {"limit", required_argument, 0, 'l'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *cmd = "data render", *in = NULL, *task_dir = "tasks/namematch";
    long limit = -1;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'i': in = optarg; break;
        case 't': task_dir = optarg; break;
        case 'l':
            limit = strtol(optarg, &end, 10);
            if (*end || end == optarg || limit < 1) return cli_usage_error(cmd, "--limit '%s' must be a positive integer", optarg);
            break;
        case 'h': render_usage(stdout); return CLI_OK;
        case ':': return cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!in) return cli_usage_error(cmd, "--in is required");
    tl_err_t err = {{0}};
    task_t *task;
    if (task_load(&task, task_dir, &err)) return cli_fail(cmd, "%s", err.msg);
    prep_data_t d;
    if (prep_load_ex(task, in, false, &d, &err)) {
        task_free(task);
        return cli_fail(cmd, "%s", err.msg);
    }
    for (size_t i = 0; i < d.n_drops; i++) fprintf(stderr, "%s:%zu: skipped: %s\n", in, d.drops[i].line, d.drops[i].reason);
    int rc = CLI_OK;
    for (size_t i = 0; i < d.n_rows && (limit < 0 || (long)i < limit); i++) {
        const char *fv[TASK_MAX_FIELDS];
        for (size_t k = 0; k < task->n_fields; k++) fv[k] = d.rows[i].fields[k];
        char *text = NULL, *line = NULL;
        cJSON *o = NULL;
        if (task_render_prompt(task, fv, &text, &err)) {
            rc = cli_fail(cmd, "%s", err.msg);
            break;
        }
        o = cJSON_CreateObject();
        if (o && cJSON_AddNumberToObject(o, "line", (double)d.rows[i].line) && cJSON_AddStringToObject(o, "prompt", text) &&
            cJSON_AddStringToObject(o, "label", task->labels[d.rows[i].label]))
            line = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        free(text);
        if (!line) {
            rc = cli_fail(cmd, "out of memory");
            break;
        }
        puts(line);
        free(line);
    }
    if (rc == CLI_OK && (fflush(stdout) || ferror(stdout))) rc = cli_fail(cmd, "writing standard output failed");
    prep_data_free(&d);
    task_free(task);
    return rc;
}

static void data_usage(FILE *out) {
    fprintf(out,
            "usage: tasklm data <generate|prepare|render> [options]\n\n"
            "  generate   build a synthetic labelled corpus\n"
            "  prepare    clean, dedupe, split (stratified), oversample train only, folds\n"
            "  render     print the prompt of each row, as the model sees it\n"
            "(tasklm data <sub> --help for details)\n");
}

int cmd_data(int argc, char **argv) {
    if (argc < 2) {
        data_usage(stderr);
        return CLI_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        data_usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(argv[1], "prepare")) return cmd_data_prepare(argc - 1, argv + 1);
    if (!strcmp(argv[1], "render")) return cmd_data_render(argc - 1, argv + 1);
    if (!strcmp(argv[1], "generate")) {
        if (!cmd_data_generate) return cli_fail("data generate", "not built into this binary yet");
        return cmd_data_generate(argc - 1, argv + 1);
    }
    return cli_usage_error("data", "unknown subcommand '%s' (expected generate, prepare or render)", argv[1]);
}
