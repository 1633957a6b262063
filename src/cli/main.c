#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
    const char *name;
    cli_cmd_fn fn;
    const char *summary;
} commands[] = {
    {"info", cmd_info, "print a model's architecture, hyper-parameters and tensor types"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"generate", cmd_generate, "greedy or sampled text generation"},
    {"score", cmd_score, "log-probability of each label continuation after a prompt"},
    {"data", cmd_data, "task data: generate a corpus, prepare splits and folds"},
    {"eval", cmd_eval, "evaluate a model on a task's labelled data"},
    {"baseline", cmd_baseline, "classical string-similarity matcher: tune and evaluate"},
    {"train", cmd_train, "LoRA fine-tuning with completion-only loss; llama.cpp adapter GGUF"},
    {"cv", cmd_cv, "k-fold cross-validation of LoRA training over prepared folds"},
    {"serve", cmd_serve, "HTTP server: label classification with a prefix cache and dynamic batching"},
    {"classify", cmd_classify, "offline batch classification of a CSV in the task schema"},
    {"bench", cmd_bench, "serving load test: throughput, latency percentiles, cost at a QPS target"},
    {"quantize", cmd_quantize, "re-encode a model's weights in another type (q8_0, q4_k, ...)"},
    {"prune", cmd_prune, "score blocks on calibration rows and remove the K least important"},
    {"report", cmd_report, "HTML/Markdown report of a pipeline run folder: tables, figures, cost"},
    {"merge", cmd_merge, "fold a LoRA adapter into the base weights, optionally re-quantize"},
    {"pipeline", cmd_pipeline, "run a recipe: prepare, train, quantize, evaluate, export, report (resumable)"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: tasklm <command> [options]   (tasklm <command> --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tasklm %s: error: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tasklm %s: error: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'tasklm %s --help')\n", cmd);
    va_end(ap);
    return CLI_USAGE;
}

const char *cli_task_dir(const char *cmd, const char *task_name, const char *task_dir, char *buf, size_t cap) {
    if (task_dir) return task_dir;
    if (!task_name[0] || strchr(task_name, '/')) {
        cli_usage_error(cmd, "--task '%s' must be a task name (use --task-dir for a path)", task_name);
        return NULL;
    }
    if ((size_t)snprintf(buf, cap, "tasks/%s", task_name) >= cap) {
        cli_usage_error(cmd, "--task '%s' is too long", task_name);
        return NULL;
    }
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "tasklm: error: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CLI_USAGE;
}
