/* tasklm classify: offline batch classification of a CSV in the task schema
 * with the serving engine (prefix cache, label scoring). Rows stream through;
 * the output CSV is written atomically; with a label column, metrics too. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "io/csv.h"
#include "serve/engine.h"
#include "serve/request.h"
#include "task/metrics.h"
#include "task/task.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tasklm classify -m MODEL [--task NAME] --in FILE.csv --out PRED.csv [options]\n\n"
            "Classifies every row of a CSV in the task schema (the task's field columns;\n"
            "the label column is optional). Writes the fields, the predicted label and one\n"
            "p_<label> probability column per label (plus gold when the input has labels).\n"
            "Rows with a bad CSV record or an empty, over-long or control-character field\n"
            "are reported on stderr (FILE:LINE: reason) and skipped. With labels, prints\n"
            "accuracy, macro-F1, per-class metrics and the confusion matrix.\n\n"
            "options:\n"
            "  -m, --model PATH     GGUF model\n"
            "  --task NAME          task folder under tasks/ (default namematch)\n"
            "  --task-dir DIR       task folder path (overrides --task)\n"
            "  --in FILE.csv        input rows\n"
            "  --out FILE.csv       predictions (written to a temporary name, then renamed)\n"
            "  --threads N          model threads (default: one per core)\n"
            "  --limit N            only the first N usable rows\n"
            "  --lora ADAPTER.gguf  fold a LoRA adapter (e.g. from tasklm train) into fp32 copies of\n"
            "                       the adapted weights in memory: scores as the merged model\n"
            "  --label-bias SPEC    label-prior bias added to the label log-probabilities,\n"
            "                       \"yes=0.3,no=-0.1\" or none (default: the adapter's or the\n"
            "                       model's tasklm.label_bias)\n"
            "  --json               print a JSON summary (rows, skipped, rows_per_s, metrics)\n"
            "  -q, --quiet          no progress lines\n"
            "  -h, --help           this help\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int push_int(int **a, size_t *cap, size_t n, int v) {
    if (n == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        int *p = realloc(*a, nc * sizeof *p);
        if (!p) return -1;
        *a = p;
        *cap = nc;
    }
    (*a)[n] = v;
    return 0;
}

int cmd_classify(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"task", required_argument, 0, 't'},
        {"task-dir", required_argument, 0, 'T'}, {"in", required_argument, 0, 'i'},
        {"out", required_argument, 0, 'o'},   {"threads", required_argument, 0, 'j'},
        {"limit", required_argument, 0, 'l'}, {"json", no_argument, 0, 'J'},
        {"quiet", no_argument, 0, 'q'},       {"help", no_argument, 0, 'h'},
        {"lora", required_argument, 0, 'L'},  {"label-bias", required_argument, 0, 'B'},
        {0, 0, 0, 0},
    };
    const char *cmd = "classify";
    const char *model = NULL, *task_name = "namematch", *task_dir = NULL, *in = NULL, *outp = NULL;
    const char *lora = NULL, *bias = NULL;
    int threads = 0, json = 0, quiet = 0;
    long limit = -1;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":m:qh", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'm': model = optarg; break;
        case 't': task_name = optarg; break;
        case 'T': task_dir = optarg; break;
        case 'i': in = optarg; break;
        case 'o': outp = optarg; break;
        case 'j': {
            long v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 1 || v > 1024) return cli_usage_error(cmd, "--threads '%s' must be an integer in 1..1024", optarg);
            threads = (int)v;
            break;
        }
        case 'l': {
            long v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 1) return cli_usage_error(cmd, "--limit '%s' must be a positive integer", optarg);
            limit = v;
            break;
        }
        case 'J': json = 1; break;
        case 'q': quiet = 1; break;
        case 'L': lora = optarg; break;
        case 'B': bias = optarg; break;
        case 'h': usage(stdout); return CLI_OK;
        case ':': return cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!model) return cli_usage_error(cmd, "-m/--model is required");
    if (!in) return cli_usage_error(cmd, "--in is required");
    if (!outp) return cli_usage_error(cmd, "--out is required");
    char dirbuf[512];
    if (!(task_dir = cli_task_dir(cmd, task_name, task_dir, dirbuf, sizeof dirbuf))) return CLI_USAGE;
    tl_err_t err = {{0}};
    task_t *task = NULL;
    csv_reader_t *r = NULL;
    csv_writer_t *w = NULL;
    serve_engine_t *eng = NULL;
    int *gold = NULL, *pred = NULL;
    size_t gcap = 0, pcap = 0, n = 0, skipped = 0;
    int rc = CLI_FAIL;
    if (task_load(&task, task_dir, &err)) return cli_fail(cmd, "%s", err.msg);
    if (csv_open(&r, in, &err)) {
        cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    int col[TASK_MAX_FIELDS];
    for (size_t k = 0; k < task->n_fields; k++)
        if ((col[k] = csv_column_index(r, task->field_columns[k])) < 0) {
            cli_fail(cmd, "%s: missing column '%s'", in, task->field_columns[k]);
            goto done;
        }
    int lcol = csv_column_index(r, task->label_column);
    serve_engine_opts_t eo = {.model_path = model, .task = task, .threads = threads, .lora_path = lora,
                              .label_bias = bias};
    if (serve_engine_new(&eng, &eo, &err)) {
        cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    if (csv_writer_open(&w, outp, &err)) {
        cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    const char *hdr[TASK_MAX_FIELDS + TASK_MAX_LABELS + 2];
    char pnames[TASK_MAX_LABELS][TASK_NAME_MAX + 3];
    size_t nh = 0;
    for (size_t k = 0; k < task->n_fields; k++) hdr[nh++] = task->field_columns[k];
    hdr[nh++] = "predicted";
    for (size_t k = 0; k < task->n_labels; k++) {
        snprintf(pnames[k], sizeof pnames[k], "p_%s", task->labels[k]);
        hdr[nh++] = pnames[k];
    }
    if (lcol >= 0) hdr[nh++] = "gold";
    if (csv_write_row(w, hdr, nh, &err)) {
        cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    double t0 = now_s(), last = t0;
    for (;;) {
        if (limit >= 0 && n >= (size_t)limit) break;
        csv_row_t row;
        int st = csv_next(r, &row, &err);
        if (st == CSV_EOF) break;
        if (st == CSV_BAD_ROW) {
            fprintf(stderr, "%s: skipped\n", err.msg);
            skipped++;
            continue;
        }
        if (st != CSV_ROW) {
            cli_fail(cmd, "%s", err.msg);
            goto done;
        }
        const char *fv[TASK_MAX_FIELDS];
        char why[128];
        int bad = 0;
        for (size_t k = 0; k < task->n_fields && !bad; k++) {
            char *v = serve_value_check(row.fields[col[k]], task->max_field_bytes, why, sizeof why);
            if (!v) {
                fprintf(stderr, "%s:%zu: %s %s: skipped\n", in, row.line, task->field_columns[k], why);
                bad = 1;
            }
            fv[k] = v;
        }
        int g = -1;
        if (!bad && lcol >= 0) {
            char *lab = row.fields[lcol];
            while (*lab == ' ' || *lab == '\t') lab++;
            size_t ln = strlen(lab);
            while (ln && (lab[ln - 1] == ' ' || lab[ln - 1] == '\t')) lab[--ln] = '\0';
            for (char *q = lab; *q; q++) *q = (char)tolower((unsigned char)*q);
            if ((g = task_label_index(task, lab)) < 0) {
                fprintf(stderr, "%s:%zu: %s '%.40s' is not one of the task's labels: skipped\n", in, row.line,
                        task->label_column, lab);
                bad = 1;
            }
        }
        if (bad) {
            skipped++;
            continue;
        }
        double probs[TASK_MAX_LABELS];
        int best;
        if (serve_engine_classify(eng, fv, probs, NULL, &best, NULL, &err)) {
            cli_fail(cmd, "%s:%zu: %s", in, row.line, err.msg);
            goto done;
        }
        const char *v[TASK_MAX_FIELDS + TASK_MAX_LABELS + 2];
        char nums[TASK_MAX_LABELS][32];
        size_t m = 0;
        for (size_t k = 0; k < task->n_fields; k++) v[m++] = fv[k];
        v[m++] = task->labels[best];
        for (size_t k = 0; k < task->n_labels; k++) {
            snprintf(nums[k], sizeof nums[k], "%.6f", probs[k]);
            v[m++] = nums[k];
        }
        if (lcol >= 0) v[m++] = task->labels[g];
        if (csv_write_row(w, v, m, &err)) {
            cli_fail(cmd, "%s", err.msg);
            goto done;
        }
        if (push_int(&pred, &pcap, n, best) || (lcol >= 0 && push_int(&gold, &gcap, n, g))) {
            cli_fail(cmd, "out of memory");
            goto done;
        }
        n++;
        double t = now_s();
        if (!quiet && t - last > 2.0) {
            fprintf(stderr, "classify: %zu rows, %.1f rows/s\n", n, (double)n / (t - t0));
            last = t;
        }
    }
    double dt = now_s() - t0;
    int e = csv_writer_commit(w, &err);
    w = NULL;
    if (e) {
        cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    if (!quiet) fprintf(stderr, "classify: %zu rows, %zu skipped, %.1f rows/s -> %s\n", n, skipped, dt > 0 ? (double)n / dt : 0.0, outp);
    metrics_t mt;
    const char *labels[TASK_MAX_LABELS];
    for (size_t k = 0; k < task->n_labels; k++) labels[k] = task->labels[k];
    metrics_report_t rep = {labels, gold, pred, NULL, NAN, "model"};
    int have_metrics = lcol >= 0 && n > 0;
    if (have_metrics && metrics_compute(gold, pred, n, task->n_labels, &mt, &err)) {
        cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    if (json) {
        char *ms = have_metrics ? metrics_report_json(&mt, &rep) : NULL;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "rows", (double)n);
        cJSON_AddNumberToObject(o, "skipped", (double)skipped);
        cJSON_AddNumberToObject(o, "rows_per_s", dt > 0 ? (double)n / dt : 0.0);
        cJSON_AddStringToObject(o, "output", outp);
        cJSON_AddStringToObject(o, "model", serve_engine_model_name(eng));
        cJSON *mj = ms ? cJSON_Parse(ms) : NULL;
        cJSON_AddItemToObject(o, "metrics", mj ? mj : cJSON_CreateNull());
        char *txt = cJSON_PrintUnformatted(o);
        if (txt) printf("%s\n", txt);
        free(txt);
        cJSON_Delete(o);
        free(ms);
    } else {
        printf("classified %zu rows (%zu skipped) -> %s\n", n, skipped, outp);
        if (have_metrics) metrics_report_text(stdout, &mt, &rep);
    }
    rc = CLI_OK;
done:
    if (w) csv_writer_abort(w);
    serve_engine_free(eng);
    csv_close(r);
    task_free(task);
    free(gold);
    free(pred);
    return rc;
}
