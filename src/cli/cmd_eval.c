/* tasklm eval: score a task's labels with a model on labelled rows and report
 * accuracy, macro-F1, per-class metrics and the confusion matrix; or
 * (--predictions) compute the same report from a CSV of gold/predicted. */
#include <ctype.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "io/csv.h"
#include "task/eval_model.h"
#include "task/metrics.h"
#include "task/task.h"
#include "task/calib.h"
#include "train/lora.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tasklm eval -m MODEL --task NAME --data FILE.csv [options]\n"
            "       tasklm eval --predictions FILE.csv [--task NAME] [--json]\n\n"
            "Renders each row with the task's prompt template, scores every label as a\n"
            "continuation (log-probability), predicts the argmax, and reports accuracy,\n"
            "macro-F1, per-class precision/recall/F1/support, the confusion matrix (rows\n"
            "gold, columns predicted), mean answer loss and per-category accuracy.\n\n"
            "options:\n"
            "  -m, --model PATH        GGUF model\n"
            "  --task NAME             task folder under tasks/ (default namematch)\n"
            "  --task-dir DIR          task folder path (overrides --task)\n"
            "  --data FILE.csv         labelled rows (task schema)\n"
            "  --limit N               only the first N usable rows\n"
            "  --threads T             worker threads (default: one per core)\n"
            "  --predictions-out FILE  per-row predictions CSV (names, gold, predicted,\n"
            "                          per-label probabilities, category)\n"
            "  --predictions FILE      no model: metrics from FILE's gold,predicted columns\n"
            "  --lora ADAPTER.gguf     apply a LoRA adapter (llama.cpp convention, e.g. from\n"
            "                          tasklm train) by folding it into fp32 copies of the\n"
            "                          adapted weights in memory; scores as the merged model\n"
            "  --label-bias SPEC       label-prior bias added to the label log-probabilities:\n"
            "                          \"yes=0.3,no=-0.1\" or none (default: the adapter's or the\n"
            "                          model's tasklm.label_bias, written by tasklm train)\n"
            "  --json                  print one JSON object\n"
            "  -h, --help              this help\n\n"
            "Scoring shows progress on stderr (also with --json): a bar with ETA on a\n"
            "terminal, a plain line every few seconds otherwise.\n");
}

static int norm_label(const task_t *t, char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
    for (char *q = s; *q; q++) *q = (char)tolower((unsigned char)*q);
    return task_label_index(t, s);
}

/* Metrics from a CSV with gold and predicted columns (category optional). */
static int eval_predictions(const task_t *t, const char *path, int json) {
    const char *cmd = "eval";
    tl_err_t err = {{0}};
    csv_reader_t *r;
    if (csv_open(&r, path, &err)) return cli_fail(cmd, "%s", err.msg);
    int gc = csv_column_index(r, "gold"), pc = csv_column_index(r, "predicted");
    int cc = t->category_column[0] ? csv_column_index(r, t->category_column) : -1;
    if (cc < 0) cc = csv_column_index(r, "category");
    if (gc < 0 || pc < 0) {
        csv_close(r);
        return cli_fail(cmd, "%s: needs columns 'gold' and 'predicted'", path);
    }
    size_t n = 0, cap = 0;
    int *gold = NULL, *pred = NULL;
    char **cats = NULL;
    int rc = CLI_OK;
    for (;;) {
        csv_row_t row;
        int st = csv_next(r, &row, &err);
        if (st == CSV_EOF) break;
        if (st != CSV_ROW) {
            rc = cli_fail(cmd, "%s", err.msg);
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            int *g2 = realloc(gold, cap * sizeof *g2);
            if (g2) gold = g2;
            int *p2 = realloc(pred, cap * sizeof *p2);
            if (p2) pred = p2;
            char **c2 = realloc(cats, cap * sizeof *c2);
            if (c2) cats = c2;
            if (!g2 || !p2 || !c2) {
                rc = cli_fail(cmd, "out of memory");
                break;
            }
        }
        int g = norm_label(t, row.fields[gc]), p = norm_label(t, row.fields[pc]);
        if (g < 0 || p < 0) {
            rc = cli_fail(cmd, "%s:%zu: '%s' is not a label of task %s", path, row.line, g < 0 ? row.fields[gc] : row.fields[pc], t->name);
            break;
        }
        gold[n] = g;
        pred[n] = p;
        cats[n] = cc >= 0 ? strdup(row.fields[cc]) : NULL;
        n++;
    }
    csv_close(r);
    if (rc == CLI_OK) {
        metrics_t m;
        const char *labels[TASK_MAX_LABELS];
        for (size_t i = 0; i < t->n_labels; i++) labels[i] = t->labels[i];
        if (metrics_compute(gold, pred, n, t->n_labels, &m, &err)) rc = cli_fail(cmd, "%s", err.msg);
        else {
            metrics_report_t rep = {labels, gold, pred, cc >= 0 ? (const char *const *)cats : NULL, NAN, "predictions"};
            if (json) {
                char *s = metrics_report_json(&m, &rep);
                if (!s) rc = cli_fail(cmd, "out of memory");
                else {
                    printf("%s\n", s);
                    free(s);
                }
            } else {
                metrics_report_text(stdout, &m, &rep);
            }
        }
    }
    for (size_t i = 0; i < n; i++) free(cats[i]);
    free(cats);
    free(gold);
    free(pred);
    return rc;
}

typedef struct {
    progress_t p;
    double t0, last; /* plain mode: start and time of the last line */
} row_prog_t;

static void row_progress(void *ctx, size_t done, size_t total) {
    row_prog_t *rp = ctx;
    double now = rp->p.clock();
    if (!rp->p.tty && done != total && now - rp->last < 2.0) return;
    rp->last = now;
    rp->p.total = (long)total; /* known once the data is loaded */
    progress_update(&rp->p, (long)done, "%.1f rows/s", (double)done / (now - rp->t0 > 1e-9 ? now - rp->t0 : 1e-9));
}

static int apply_lora(model_t *m, void *ctx, tl_err_t *err) { return lora_apply_file(m, ctx, err); }

int cmd_eval(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"task", required_argument, 0, 't'},
        {"task-dir", required_argument, 0, 'T'}, {"data", required_argument, 0, 'd'},
        {"limit", required_argument, 0, 'l'},   {"threads", required_argument, 0, 'j'},
        {"predictions-out", required_argument, 0, 'o'}, {"predictions", required_argument, 0, 'P'},
        {"lora", required_argument, 0, 'L'},    {"json", no_argument, 0, 'J'},
        {"label-bias", required_argument, 0, 'B'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
    };
    const char *cmd = "eval";
    eval_model_opts_t o = {.limit = -1, .threads = 0};
    const char *task_name = "namematch", *task_dir = NULL, *predictions = NULL, *lora = NULL;
    int json = 0;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":m:h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'm': o.model_path = optarg; break;
        case 't': task_name = optarg; break;
        case 'T': task_dir = optarg; break;
        case 'd': o.data_path = optarg; break;
        case 'l': {
            long v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 1) return cli_usage_error(cmd, "--limit '%s' must be a positive integer", optarg);
            o.limit = v;
            break;
        }
        case 'j': {
            long v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 1 || v > 1024) return cli_usage_error(cmd, "--threads '%s' must be an integer in 1..1024", optarg);
            o.threads = (int)v;
            break;
        }
        case 'o': o.predictions_out = optarg; break;
        case 'P': predictions = optarg; break;
        case 'L': lora = optarg; break;
        case 'B': o.label_bias = optarg; break;
        case 'J': json = 1; break;
        case 'h': usage(stdout); return CLI_OK;
        case ':': return cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (lora && predictions) return cli_usage_error(cmd, "--lora needs a model; it does not apply to --predictions");
    if (lora) {
        o.model_hook = apply_lora;
        o.hook_ctx = (void *)lora;
        o.bias_file = lora;
    }
    if (o.label_bias && predictions) return cli_usage_error(cmd, "--label-bias needs a model; it does not apply to --predictions");
    char dirbuf[512];
    if (!(task_dir = cli_task_dir(cmd, task_name, task_dir, dirbuf, sizeof dirbuf))) return CLI_USAGE;
    if (!predictions) {
        if (!o.model_path) return cli_usage_error(cmd, "-m/--model is required (or --predictions FILE)");
        if (!o.data_path) return cli_usage_error(cmd, "--data is required");
    } else if (o.model_path || o.data_path) {
        return cli_usage_error(cmd, "--predictions computes metrics without a model; drop -m/--data");
    }
    tl_err_t err = {{0}};
    task_t *task;
    if (task_load(&task, task_dir, &err)) return cli_fail(cmd, "%s", err.msg);
    int rc;
    if (predictions) {
        rc = eval_predictions(task, predictions, json);
    } else {
        eval_model_result_t res;
        row_prog_t rp;
        progress_init(&rp.p, stderr, "eval", "row", 0, PROGRESS_AUTO);
        rp.t0 = rp.last = rp.p.clock();
        o.on_row = row_progress;
        o.row_ctx = &rp;
        int er = eval_model_run(task, &o, json ? NULL : stderr, &res, &err);
        progress_finish(&rp.p);
        if (er) {
            rc = cli_fail(cmd, "%s", err.msg);
        } else {
            const char *labels[TASK_MAX_LABELS];
            for (size_t i = 0; i < task->n_labels; i++) labels[i] = task->labels[i];
            metrics_report_t rep = {labels, res.gold, res.pred, res.has_category ? (const char *const *)res.categories : NULL,
                                    res.mean_loss, "model"};
            rc = CLI_OK;
            if (json) {
                char *s = metrics_report_json(&res.metrics, &rep);
                size_t sl = s ? strlen(s) : 0;
                if (!s || !sl) rc = cli_fail(cmd, "out of memory");
                else if (res.has_label_bias) { /* "label_bias": the spec applied, as the last key */
                    char b[1024];
                    label_bias_format(task, res.label_bias, b, sizeof b);
                    printf("%.*s,\"label_bias\":\"%s\"}\n", (int)(sl - 1), s, b);
                } else printf("%s\n", s);
                free(s);
            } else {
                printf("model: %s\ndata:  %s (%zu rows, %.1f rows/s)\n", o.model_path, o.data_path, res.metrics.n, res.rows_per_s);
                if (lora) printf("lora:  %s\n", lora);
                if (res.has_label_bias) {
                    char b[1024];
                    label_bias_format(task, res.label_bias, b, sizeof b);
                    printf("label bias: %s (added to the label log-probabilities)\n", b);
                }
                metrics_report_text(stdout, &res.metrics, &rep);
            }
            eval_model_result_free(&res);
        }
    }
    task_free(task);
    return rc;
}
