/* tasklm baseline: the classical string-similarity matcher. Fit on a training
 * CSV and save settings, or load settings and evaluate on labelled data with
 * the same report as tasklm eval. --similarity exposes the raw scores. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "io/csv.h"
#include "task/baseline.h"
#include "task/metrics.h"
#include "task/prepare.h"
#include "task/strsim.h"
#include "task/task.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tasklm baseline --task NAME --train train.csv --save FILE [--json]\n"
            "       tasklm baseline --task NAME --data test.csv [--settings FILE] [--json]\n"
            "       tasklm baseline --similarity A B\n"
            "       tasklm baseline --similarity-csv PAIRS.csv   (columns a,b; JSON lines out)\n\n"
            "Classical name matcher: Jaro-Winkler, Indel ratio, token-set and token-sort\n"
            "ratios, first/last token matches and initials over folded names (NFKC,\n"
            "case-folded, accents stripped). Fits a multinomial logistic regression and a\n"
            "two-threshold rule and keeps whichever has the higher training macro-F1.\n\n"
            "options:\n"
            "  --task NAME            task folder under tasks/ (default namematch)\n"
            "  --task-dir DIR         task folder path (overrides --task)\n"
            "  --train FILE           fit on this labelled CSV (duplicates kept)\n"
            "  --save FILE            where to write the fitted settings\n"
            "  --data FILE            evaluate on this labelled CSV\n"
            "  --settings FILE        settings to load (default TASK_DIR/baseline.json)\n"
            "  --predictions-out FILE per-row predictions CSV\n"
            "  --json                 one JSON object (same keys as tasklm eval)\n"
            "  -h, --help             this help\n");
}

static int print_similarity(const char *a, const char *b) {
    tl_err_t err;
    char *fa, *fb;
    if (strsim_fold(a, &fa, &err)) return -1;
    if (strsim_fold(b, &fb, &err)) {
        free(fa);
        return -1;
    }
    printf("{\"ratio\":%.17g,\"token_sort_ratio\":%.17g,\"token_set_ratio\":%.17g,\"jaro\":%.17g,\"jaro_winkler\":%.17g,"
           "\"folded_ratio\":%.17g,\"folded_jaro_winkler\":%.17g}\n",
           strsim_ratio(a, b), strsim_token_sort_ratio(a, b), strsim_token_set_ratio(a, b), strsim_jaro(a, b),
           strsim_jaro_winkler(a, b), strsim_ratio(fa, fb), strsim_jaro_winkler(fa, fb));
    free(fa);
    free(fb);
    return 0;
}

static int similarity_csv(const char *path) {
    tl_err_t err = {{0}};
    csv_reader_t *r;
    if (csv_open(&r, path, &err)) return cli_fail("baseline", "%s", err.msg);
    int ca = csv_column_index(r, "a"), cb = csv_column_index(r, "b");
    if (ca < 0 || cb < 0) {
        csv_close(r);
        return cli_fail("baseline", "%s: needs columns 'a' and 'b'", path);
    }
    int rc = CLI_OK;
    for (;;) {
        csv_row_t row;
        int st = csv_next(r, &row, &err);
        if (st == CSV_EOF) break;
        if (st != CSV_ROW) {
            rc = cli_fail("baseline", "%s", err.msg);
            break;
        }
        if (print_similarity(row.fields[ca], row.fields[cb])) {
            rc = cli_fail("baseline", "%s:%zu: cannot fold the names", path, row.line);
            break;
        }
    }
    csv_close(r);
    return rc;
}

/* Features for every row of d (n x BASELINE_N_FEATURES, malloc'd). */
static double *all_features(const prep_data_t *d, tl_err_t *err) {
    double *X = malloc((d->n_rows ? d->n_rows : 1) * BASELINE_N_FEATURES * sizeof *X);
    if (!X) {
        tl_fail(err, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < d->n_rows; i++)
        if (baseline_features(d->rows[i].fields[0], d->rows[i].fields[1], X + i * BASELINE_N_FEATURES, err)) {
            tl_fail_prefix(err, "line %zu", d->rows[i].line);
            free(X);
            return NULL;
        }
    return X;
}

static int write_predictions(const task_t *t, const baseline_t *b, const prep_data_t *d, const double *X, const int *pred,
                             const char *path, tl_err_t *err) {
    csv_writer_t *w;
    if (csv_writer_open(&w, path, err)) return -1;
    const char *hdr[TASK_MAX_FIELDS + TASK_MAX_LABELS + 4];
    char pnames[TASK_MAX_LABELS][TASK_NAME_MAX + 3];
    size_t nh = 0;
    for (size_t i = 0; i < t->n_fields; i++) hdr[nh++] = t->field_columns[i];
    hdr[nh++] = "gold";
    hdr[nh++] = "predicted";
    for (size_t k = 0; k < t->n_labels; k++) {
        snprintf(pnames[k], sizeof pnames[k], "p_%s", t->labels[k]);
        hdr[nh++] = pnames[k];
    }
    if (d->has_category) hdr[nh++] = t->category_column;
    if (csv_write_row(w, hdr, nh, err)) goto fail;
    char nums[TASK_MAX_LABELS][32];
    for (size_t i = 0; i < d->n_rows; i++) {
        const char *v[TASK_MAX_FIELDS + TASK_MAX_LABELS + 4];
        size_t m = 0;
        double p[TASK_MAX_LABELS];
        baseline_predict(b, X + i * BASELINE_N_FEATURES, p);
        for (size_t k = 0; k < t->n_fields; k++) v[m++] = d->rows[i].fields[k];
        v[m++] = t->labels[d->rows[i].label];
        v[m++] = t->labels[pred[i]];
        for (size_t k = 0; k < t->n_labels; k++) {
            snprintf(nums[k], sizeof nums[k], "%.6f", p[k]);
            v[m++] = nums[k];
        }
        if (d->has_category) v[m++] = d->rows[i].category;
        if (csv_write_row(w, v, m, err)) goto fail;
    }
    return csv_writer_commit(w, err);
fail:
    csv_writer_abort(w);
    return -1;
}

int cmd_baseline(int argc, char **argv) {
    static const struct option opts[] = {
        {"task", required_argument, 0, 't'},     {"task-dir", required_argument, 0, 'T'},
        {"train", required_argument, 0, 'r'},    {"save", required_argument, 0, 's'},
        {"data", required_argument, 0, 'd'},     {"settings", required_argument, 0, 'S'},
        {"predictions-out", required_argument, 0, 'o'}, {"similarity", no_argument, 0, 'x'},
        {"similarity-csv", required_argument, 0, 'X'}, {"json", no_argument, 0, 'J'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
    };
    const char *cmd = "baseline";
    const char *task_name = "namematch", *task_dir = NULL, *train = NULL, *save = NULL, *data = NULL, *settings = NULL,
               *pred_out = NULL, *sim_csv = NULL;
    int json = 0, sim = 0;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 't': task_name = optarg; break;
        case 'T': task_dir = optarg; break;
        case 'r': train = optarg; break;
        case 's': save = optarg; break;
        case 'd': data = optarg; break;
        case 'S': settings = optarg; break;
        case 'o': pred_out = optarg; break;
        case 'x': sim = 1; break;
        case 'X': sim_csv = optarg; break;
        case 'J': json = 1; break;
        case 'h': usage(stdout); return CLI_OK;
        case ':': return cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (sim) {
        if (argc - optind != 2) return cli_usage_error(cmd, "--similarity takes two strings");
        return print_similarity(argv[optind], argv[optind + 1]) ? cli_fail(cmd, "cannot fold the names") : CLI_OK;
    }
    if (sim_csv) return similarity_csv(sim_csv);
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!!train == !!data) return cli_usage_error(cmd, "give either --train (with --save) or --data");
    if (train && !save) return cli_usage_error(cmd, "--train needs --save FILE");
    char dirbuf[512], setbuf[600];
    if (!(task_dir = cli_task_dir(cmd, task_name, task_dir, dirbuf, sizeof dirbuf))) return CLI_USAGE;
    if (!settings) {
        snprintf(setbuf, sizeof setbuf, "%s/baseline.json", task_dir);
        settings = setbuf;
    }
    tl_err_t err = {{0}};
    task_t *task;
    if (task_load(&task, task_dir, &err)) return cli_fail(cmd, "%s", err.msg);
    if (task->n_fields != 2) {
        task_free(task);
        return cli_fail(cmd, "task %s has %zu fields; the name baseline compares exactly two", task->name, task->n_fields);
    }
    prep_data_t d;
    const char *path = train ? train : data;
    if (prep_load_ex(task, path, false, &d, &err)) {
        task_free(task);
        return cli_fail(cmd, "%s", err.msg);
    }
    for (size_t i = 0; i < d.n_drops; i++) fprintf(stderr, "%s:%zu: skipped: %s\n", path, d.drops[i].line, d.drops[i].reason);
    int rc = CLI_OK;
    double *X = all_features(&d, &err);
    int *gold = malloc((d.n_rows ? d.n_rows : 1) * sizeof *gold), *pred = malloc((d.n_rows ? d.n_rows : 1) * sizeof *pred);
    const char **cats = malloc((d.n_rows ? d.n_rows : 1) * sizeof *cats);
    baseline_t b;
    if (!X || !gold || !pred || !cats) {
        rc = cli_fail(cmd, "%s", X ? "out of memory" : err.msg);
        goto done;
    }
    for (size_t i = 0; i < d.n_rows; i++) {
        gold[i] = d.rows[i].label;
        cats[i] = d.rows[i].category;
    }
    if (train) {
        if (baseline_fit(&b, task, X, gold, d.n_rows, &err) || baseline_save(&b, save, &err)) {
            rc = cli_fail(cmd, "%s", err.msg);
            goto done;
        }
    } else if (baseline_load(&b, task, settings, &err)) {
        rc = cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    for (size_t i = 0; i < d.n_rows; i++) pred[i] = baseline_predict(&b, X + i * BASELINE_N_FEATURES, NULL);
    metrics_t m;
    if (metrics_compute(gold, pred, d.n_rows, task->n_labels, &m, &err)) {
        rc = cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    if (pred_out && write_predictions(task, &b, &d, X, pred, pred_out, &err)) {
        rc = cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    const char *labels[TASK_MAX_LABELS];
    for (size_t k = 0; k < task->n_labels; k++) labels[k] = task->labels[k];
    metrics_report_t rep = {labels, gold, pred, d.has_category ? cats : NULL, NAN, "baseline"};
    const char *method = b.method == BASELINE_LOGREG ? "logreg" : "thresholds";
    if (json) {
        char *s = metrics_report_json(&m, &rep);
        if (!s) {
            rc = cli_fail(cmd, "out of memory");
            goto done;
        }
        /* add the method before the closing brace */
        size_t n = strlen(s);
        s[n - 1] = '\0';
        printf("%s,\"method\":\"%s\",\"train_macro_f1_logreg\":%.17g,\"train_macro_f1_thresholds\":%.17g}\n", s, method,
               b.train_macro_f1_logreg, b.train_macro_f1_thresholds);
        free(s);
    } else {
        printf("baseline (%s) on %s%s\n", method, path, train ? " (training data)" : "");
        if (train)
            printf("training macro-F1: logistic regression %.4f, thresholds %.4f; kept %s; saved %s\n", b.train_macro_f1_logreg,
                   b.train_macro_f1_thresholds, method, save);
        metrics_report_text(stdout, &m, &rep);
    }
done:
    free(X);
    free(gold);
    free(pred);
    free(cats);
    prep_data_free(&d);
    task_free(task);
    return rc;
}
