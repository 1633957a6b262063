/* tasklm cv: k-fold cross-validation of LoRA training. The stratified folds
 * come from `tasklm data prepare --folds K` (DATA/fold-I-train.csv and
 * DATA/fold-I-test.csv, I = 1..K); one adapter is trained per fold with the
 * flags of tasklm train into OUT/fold-I/, and each fold's best evaluation (the
 * one adapter.gguf was kept at: by the calibrated macro-F1 unless
 * --no-calibrate, with the figures of the calibrated argmax, the way the
 * adapter scores) is read back from its metrics.jsonl. Prints the
 * per-fold table and mean +- sample standard deviation (the seed's Table
 * 2.2) and writes OUT/cv.json (also printed with --json). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "cli/train_opts.h"
#include "io/atomic_file.h"
#include "task/eval_model.h"
#include "task/prepare.h"
#include "task/task.h"
#include "train/lora.h"

#define CMD "cv"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tasklm cv -m BASE.gguf --data-dir DIR --folds K --out OUT [train options]\n\n"
            "K-fold cross-validation: for I = 1..K trains a LoRA adapter on DIR/fold-I-train.csv,\n"
            "evaluating on DIR/fold-I-test.csv (the stratified folds written by\n"
            "`tasklm data prepare --folds K`), into OUT/fold-I/ (metrics.jsonl, adapter.gguf, ...\n"
            "as tasklm train). Reports each fold's best evaluation, the one its adapter.gguf was\n"
            "kept at (selected on the calibrated macro-F1 unless --no-calibrate): accuracy,\n"
            "macro-F1 and per-class F1 as the adapter scores (with its label-prior bias), eval\n"
            "loss, the uncalibrated macro-F1 (raw_f1) and the step; then mean +- sample standard\n"
            "deviation. The label bias is fitted on the fold's evaluation rows, as the selection\n"
            "is. OUT/cv.json holds the same numbers.\n\n"
            "With --val-split F the fold's test rows are held out entirely, as in a single run:\n"
            "F of the fold's training rows (deduplicated first) become validation rows, written\n"
            "with the rest into OUT/fold-I/data/ as tasklm data prepare would; training selects\n"
            "the adapter and fits its label bias on them, and the fold's test rows are scored\n"
            "once, after training, with that adapter. The table then reports those held-out\n"
            "scores, with the validation figure the adapter was selected on (val_f1).\n\n"
            "  -m, --model PATH        base model (GGUF)\n"
            "      --data-dir DIR      folder with fold-I-train.csv / fold-I-test.csv\n"
            "      --folds K           number of folds (2..1000; the files must exist)\n"
            "  -o, --out OUT           output folder (created)\n"
            "      --resume            continue an interrupted run: folds that finished (OUT/fold-I/\n"
            "                          cv-done, written with their settings) are not trained again,\n"
            "                          a fold with a checkpoint continues from it as tasklm train\n"
            "                          --resume; other settings than the finished folds' are refused\n"
            "      --val-split F       select on F (0 < F < 1) of each fold's training rows and score\n"
            "                          the fold's test rows once (default 0: select on the test rows)\n"
            "      --swap              with --val-split: the training part also gets every pair\n"
            "                          reversed (tasklm data prepare --swap; symmetric tasks only)\n");
    train_opts_usage(out);
    fprintf(out,
            "      --json              print cv.json on stdout\n"
            "  -h, --help              this help\n");
}

typedef struct {
    double acc, f1, loss, f1_raw; /* acc, f1, cls: as scored (calibrated when the fold calibrated) */
    double cls[TASK_MAX_LABELS];
    long step;
} fold_res_t;

/* The settings a fold's result depends on, as written into its cv-done marker. */
static void fold_settings(const trainer_opts_t *o, const char *trainp, const char *evalp, double val_split, bool swap,
                          char *buf, size_t n) {
    snprintf(buf, n,
             "model=%s train=%s eval=%s task=%s rank=%d alpha=%g dropout=%g targets=%u epochs=%d max_steps=%ld "
             "lr=%g wd=%g clip=%g warmup=%ld sched=%d batch=%d eval_every=%d eval_limit=%ld train_limit=%ld "
             "patience=%d seed=%llu end_token=%d calibrate=%d\n",
             o->model_path, trainp, evalp, o->task_dir, o->rank, (double)o->alpha, (double)o->dropout, o->targets,
             o->epochs, o->max_steps, (double)o->lr, (double)o->weight_decay, (double)o->clip, o->warmup_steps,
             (int)o->sched, o->batch, o->eval_every, o->eval_limit, o->train_limit, o->patience,
             (unsigned long long)o->seed, (int)o->end_token, (int)!o->no_calibrate);
    size_t len = strlen(buf);
    if (o->eval_delay > 0 && len > 0 && len < n) /* only when set, so markers written before the option still match */
        snprintf(buf + len - 1, n - len + 1, " eval_delay=%ld\n", o->eval_delay);
    len = strlen(buf);
    if (val_split > 0 && len > 0 && len < n)
        snprintf(buf + len - 1, n - len + 1, " val_split=%g swap=%d\n", val_split, (int)swap);
}

static int apply_lora(model_t *m, void *ctx, tl_err_t *err) { return lora_apply_file(m, ctx, err); }

/* --val-split: the fold's test rows scored once with the fold's adapter (and
 * its label bias); the figures replace the selection-time ones, the
 * validation macro-F1 the adapter was selected on moves to f1_raw's column. */
static int score_heldout(const task_t *task, const trainer_opts_t *o, const char *testp, const char *outp, fold_res_t *r,
                         tl_err_t *err) {
    char adapter[1300], predp[1300];
    snprintf(adapter, sizeof adapter, "%s/adapter.gguf", outp);
    snprintf(predp, sizeof predp, "%s/heldout-predictions.csv", outp);
    eval_model_opts_t eo = {.model_path = o->model_path, .data_path = testp, .predictions_out = predp, .limit = -1,
                            .threads = o->threads, .model_hook = apply_lora, .hook_ctx = adapter, .bias_file = adapter};
    eval_model_result_t res;
    if (eval_model_run(task, &eo, NULL, &res, err)) return -1;
    r->f1_raw = r->f1; /* the validation figure it was selected on */
    r->f1 = res.metrics.macro_f1;
    r->acc = res.metrics.accuracy;
    r->loss = res.mean_loss;
    for (size_t k = 0; k < task->n_labels; k++) r->cls[k] = res.metrics.f1[k];
    eval_model_result_free(&res);
    return 0;
}

/* The evaluation whose adapter is the fold's adapter.gguf: the last line marked
 * "best" (the trainer's choice: the calibrated macro-F1 unless --no-calibrate;
 * lines without the mark, from older runs: the highest selection_f1 or
 * macro_f1, the first at a tie). Its figures are the ones the adapter is
 * scored with: the *_calibrated ones when the line has them. */
static int read_best(const char *path, const task_t *task, fold_res_t *r, tl_err_t *err) {
    FILE *f = fopen(path, "r");
    if (!f) return tl_fail(err, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long ln = 0;
    int found = 0, rc = 0;
    double best_sel = -1.0;
    while (rc == 0 && (n = getline(&line, &cap, f)) > 0) {
        ln++;
        cJSON *o = cJSON_Parse(line);
        const cJSON *f1 = cJSON_GetObjectItemCaseSensitive(o, "macro_f1"),
                    *acc = cJSON_GetObjectItemCaseSensitive(o, "accuracy"),
                    *loss = cJSON_GetObjectItemCaseSensitive(o, "eval_loss"),
                    *st = cJSON_GetObjectItemCaseSensitive(o, "step"),
                    *pc = cJSON_GetObjectItemCaseSensitive(o, "per_class_f1"),
                    *f1c = cJSON_GetObjectItemCaseSensitive(o, "macro_f1_calibrated"),
                    *accc = cJSON_GetObjectItemCaseSensitive(o, "accuracy_calibrated"),
                    *pcc = cJSON_GetObjectItemCaseSensitive(o, "per_class_f1_calibrated"),
                    *sel = cJSON_GetObjectItemCaseSensitive(o, "selection_f1"),
                    *mark = cJSON_GetObjectItemCaseSensitive(o, "best");
        int cal = cJSON_IsNumber(f1c) && cJSON_IsNumber(accc) && cJSON_IsObject(pcc);
        if (!cJSON_IsNumber(f1) || !cJSON_IsNumber(acc) || !cJSON_IsNumber(loss) || !cJSON_IsNumber(st) ||
            !cJSON_IsObject(pc)) {
            rc = tl_fail(err, "%s:%ld: not a metrics line", path, ln);
            cJSON_Delete(o);
            break;
        }
        double sv = cJSON_IsNumber(sel) ? sel->valuedouble : f1->valuedouble;
        int take = cJSON_IsBool(mark) ? cJSON_IsTrue(mark) : (!found || sv > best_sel);
        if (take) {
            found = 1;
            best_sel = sv;
            r->f1 = cal ? f1c->valuedouble : f1->valuedouble;
            r->acc = cal ? accc->valuedouble : acc->valuedouble;
            r->f1_raw = f1->valuedouble;
            r->loss = loss->valuedouble;
            r->step = (long)st->valuedouble;
            for (size_t k = 0; k < task->n_labels; k++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(cal ? pcc : pc, task->labels[k]);
                if (!cJSON_IsNumber(v)) {
                    rc = tl_fail(err, "%s:%ld: per_class_f1%s has no '%s'", path, ln, cal ? "_calibrated" : "",
                                 task->labels[k]);
                    break;
                }
                r->cls[k] = v->valuedouble;
            }
        }
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    if (rc == 0 && !found) rc = tl_fail(err, "%s: no evaluations", path);
    return rc;
}

static void mean_sd(const double *v, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0.0;
}

/* Column c of the table: 0 accuracy, 1 macro-F1, 2.. per-class F1, then eval loss, then the uncalibrated macro-F1. */
static double col(const fold_res_t *r, int c, int n_labels) {
    if (c == 0) return r->acc;
    if (c == 1) return r->f1;
    if (c < 2 + n_labels) return r->cls[c - 2];
    if (c == 2 + n_labels) return r->loss;
    return r->f1_raw;
}

static cJSON *row_json(const task_t *t, const double *vals, int n_labels) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "accuracy", vals[0]);
    cJSON_AddNumberToObject(o, "macro_f1", vals[1]);
    cJSON *pc = cJSON_AddObjectToObject(o, "per_class_f1");
    for (int k = 0; k < n_labels; k++) cJSON_AddNumberToObject(pc, t->labels[k], vals[2 + k]);
    cJSON_AddNumberToObject(o, "eval_loss", vals[2 + n_labels]);
    cJSON_AddNumberToObject(o, "macro_f1_raw", vals[3 + n_labels]);
    return o;
}

int cmd_cv(int argc, char **argv) {
    enum { O_DATADIR = TRAIN_OPT_USER, O_FOLDS, O_RESUME, O_VALSPLIT, O_SWAP };
    struct option opts[64];
    int no = train_opts_table(opts, 56);
    const struct option own[] = {
        {"data-dir", required_argument, 0, O_DATADIR}, {"folds", required_argument, 0, O_FOLDS},
        {"out", required_argument, 0, 'o'},            {"resume", no_argument, 0, O_RESUME},
        {"val-split", required_argument, 0, O_VALSPLIT}, {"swap", no_argument, 0, O_SWAP},
        {0, 0, 0, 0},
    };
    memcpy(opts + no, own, sizeof own);
    trainer_opts_t o;
    trainer_opts_default(&o);
    const char *task_name = "namematch", *data_dir = NULL, *out_dir = NULL;
    int json = 0, folds = 0, resume = 0;
    double val_split = 0;
    bool swap = false;
    tl_err_t err = {{0}};
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:o:t:h", opts, NULL)) != -1) {
        switch (c) {
        case O_DATADIR: data_dir = optarg; continue;
        case 'o': out_dir = optarg; continue;
        case O_RESUME: resume = 1; continue;
        case O_SWAP: swap = true; continue;
        case O_VALSPLIT: {
            char *end;
            val_split = strtod(optarg, &end);
            if (end == optarg || *end || !(val_split > 0 && val_split < 1))
                return cli_usage_error(CMD, "--val-split '%s' must be a number between 0 and 1 (exclusive)", optarg);
            continue;
        }
        case O_FOLDS: {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 2 || v > 1000)
                return cli_usage_error(CMD, "--folds '%s' must be an integer in 2..1000", optarg);
            folds = (int)v;
            continue;
        }
        case 'h': usage(stdout); return CLI_OK;
        default: break;
        }
        int r = c == '?' || c == ':' ? 0 : train_opts_apply(c, optarg, &o, &task_name, &json, &err);
        if (r < 0) return cli_usage_error(CMD, "%s", err.msg);
        if (r == 0)
            return cli_usage_error(CMD, "unknown option or missing value: %s (see tasklm cv --help)", argv[optind - 1]);
    }
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!o.model_path) return cli_usage_error(CMD, "missing -m/--model");
    if (!data_dir) return cli_usage_error(CMD, "missing --data-dir (the folder of tasklm data prepare --folds)");
    if (!folds) return cli_usage_error(CMD, "missing --folds K");
    if (!out_dir) return cli_usage_error(CMD, "missing --out");
    if (swap && !(val_split > 0))
        return cli_usage_error(CMD, "--swap applies to the training part --val-split carves; without it, write the "
                                    "folds with tasklm data prepare --folds K --swap");
    if (o.micro_batch > o.batch)
        return cli_usage_error(CMD, "--micro-batch %d is larger than --batch %d", o.micro_batch, o.batch);
    char taskbuf[600];
    if (!(o.task_dir = cli_task_dir(CMD, task_name, o.task_dir, taskbuf, sizeof taskbuf))) return CLI_USAGE;
    /* every fold file must be there before hours of training start */
    char path[2600];
    for (int k = 1; k <= folds; k++)
        for (int w = 0; w < 2; w++) {
            snprintf(path, sizeof path, "%s/fold-%d-%s.csv", data_dir, k, w ? "test" : "train");
            if (access(path, R_OK))
                return cli_fail(CMD, "%s: %s (write the folds with: tasklm data prepare --folds %d)", path,
                                strerror(errno), folds);
        }
    snprintf(path, sizeof path, "%s/fold-%d-train.csv", data_dir, folds + 1);
    if (access(path, F_OK) == 0)
        fprintf(stderr, "tasklm cv: warning: %s exists: the folder holds more than %d folds\n", path, folds);
    task_t *task;
    if (task_load(&task, o.task_dir, &err)) return cli_fail(CMD, "%s", err.msg);
    if (swap && !task->symmetric) {
        cli_fail(CMD, "--swap needs a task whose two fields are interchangeable (\"symmetric\": true in %s/task.json)",
                 o.task_dir);
        task_free(task);
        return CLI_FAIL;
    }
    if (mkdir(out_dir, 0777) && errno != EEXIST) {
        task_free(task);
        return cli_fail(CMD, "%s: %s", out_dir, strerror(errno));
    }
    int nl = (int)task->n_labels, ncol = 4 + nl;
    fold_res_t *res = calloc((size_t)folds, sizeof *res);
    if (!res) {
        task_free(task);
        return cli_fail(CMD, "out of memory");
    }
    int rc = CLI_OK;
    for (int k = 1; k <= folds && rc == CLI_OK; k++) {
        char trainp[1300], evalp[1300], testp[1300], outp[1200], label[32];
        snprintf(trainp, sizeof trainp, "%s/fold-%d-train.csv", data_dir, k);
        snprintf(testp, sizeof testp, "%s/fold-%d-test.csv", data_dir, k);
        snprintf(evalp, sizeof evalp, "%s", testp);
        snprintf(outp, sizeof outp, "%s/fold-%d", out_dir, k);
        if (val_split > 0) {
            /* validation rows from the fold's training part; deterministic, so a resumed fold gets the same files */
            char ddir[1250];
            snprintf(ddir, sizeof ddir, "%s/data", outp);
            if (mkdir(outp, 0777) && errno != EEXIST) {
                rc = cli_fail(CMD, "%s: %s", outp, strerror(errno));
                break;
            }
            prepare_opts_t po = {.in_path = trainp, .out_dir = ddir, .split = 1.0 - val_split, .seed = o.seed,
                                 .swap = swap};
            char *sum = NULL;
            if (prepare_run(task, &po, &sum, &err)) {
                rc = cli_fail(CMD, "fold %d: %s", k, err.msg);
                break;
            }
            free(sum);
            snprintf(trainp, sizeof trainp, "%s/train.csv", ddir);
            snprintf(evalp, sizeof evalp, "%s/test.csv", ddir);
        }
        snprintf(label, sizeof label, "cv fold %d/%d", k, folds);
        trainer_opts_t fo = o;
        fo.train_path = trainp, fo.eval_path = evalp, fo.out_dir = outp;
        char settings[4096], marker[1300], have[4096];
        fold_settings(&fo, trainp, evalp, val_split, swap, settings, sizeof settings);
        snprintf(marker, sizeof marker, "%s/cv-done", outp);
        int bad = 0, done = 0;
        if (resume) {
            FILE *mf = fopen(marker, "r");
            if (mf) {
                size_t got = fread(have, 1, sizeof have - 1, mf);
                have[got] = '\0';
                fclose(mf);
                if (strcmp(have, settings)) {
                    rc = cli_fail(CMD, "fold %d: %s was written with other settings; rerun without --resume or with "
                                       "another --out", k, marker);
                    break;
                }
                done = 1;
                fprintf(stderr, "cv: fold %d/%d: finished before, not trained again\n", k, folds);
            } else {
                snprintf(path, sizeof path, "%s/checkpoint.bin", outp);
                fo.resume = access(path, R_OK) == 0; /* else the fold starts afresh */
            }
        }
        if (!done) {
            unlink(marker);
            train_progress_t tp;
            train_progress_init(&tp, stderr, label, o.log_every);
            train_progress_attach(&tp, &fo);
            trainer_result_t tr;
            bad = trainer_run(&fo, stderr, &tr, &err);
            train_progress_finish(&tp);
            if (!bad) bad = atomic_file_write_all(marker, settings, strlen(settings), &err);
        }
        snprintf(path, sizeof path, "%s/metrics.jsonl", outp);
        if (bad || read_best(path, task, &res[k - 1], &err) ||
            (val_split > 0 && score_heldout(task, &fo, testp, outp, &res[k - 1], &err)))
            rc = cli_fail(CMD, "fold %d: %s", k, err.msg);
        else
            fprintf(stderr, "cv: fold %d/%d: macro_f1 %.4f accuracy %.4f (step %ld)\n", k, folds, res[k - 1].f1,
                    res[k - 1].acc, res[k - 1].step);
    }
    if (rc == CLI_OK) {
        double mean[4 + TASK_MAX_LABELS], sd[4 + TASK_MAX_LABELS], *v = malloc(sizeof(double) * (size_t)folds);
        if (!v) rc = cli_fail(CMD, "out of memory");
        for (int ci = 0; v && ci < ncol; ci++) {
            for (int k = 0; k < folds; k++) v[k] = col(&res[k], ci, nl);
            mean_sd(v, folds, &mean[ci], &sd[ci]);
        }
        free(v);
        cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "folds");
        cJSON_AddNumberToObject(root, "k", folds);
        if (val_split > 0) {
            cJSON_AddNumberToObject(root, "val_split", val_split);
            if (swap) cJSON_AddBoolToObject(root, "swap", true);
            cJSON_AddStringToObject(root, "scores", "fold test rows scored once with the adapter selected on validation "
                                                    "rows from the fold's training part; macro_f1_raw: that validation "
                                                    "macro-F1 (calibrated unless --no-calibrate)");
        } else {
            cJSON_AddStringToObject(root, "scores", "the evaluation on the fold's test rows the adapter was selected at");
        }
        cJSON *labs = cJSON_AddArrayToObject(root, "labels");
        for (int l = 0; l < nl; l++) cJSON_AddItemToArray(labs, cJSON_CreateString(task->labels[l]));
        for (int k = 0; k < folds; k++) {
            double vals[4 + TASK_MAX_LABELS];
            for (int ci = 0; ci < ncol; ci++) vals[ci] = col(&res[k], ci, nl);
            cJSON *f = row_json(task, vals, nl);
            cJSON_AddNumberToObject(f, "fold", k + 1);
            cJSON_AddNumberToObject(f, "best_step", (double)res[k].step);
            snprintf(path, sizeof path, "%s/fold-%d", out_dir, k + 1);
            cJSON_AddStringToObject(f, "dir", path);
            cJSON_AddItemToArray(arr, f);
        }
        cJSON_AddItemToObject(root, "mean", row_json(task, mean, nl));
        cJSON_AddItemToObject(root, "sd", row_json(task, sd, nl));
        char *s = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        snprintf(path, sizeof path, "%s/cv.json", out_dir);
        if (!s) rc = cli_fail(CMD, "out of memory");
        else {
            size_t len = strlen(s);
            s[len] = '\n';
            if (rc == CLI_OK && atomic_file_write_all(path, s, len + 1, &err)) rc = cli_fail(CMD, "%s", err.msg);
            s[len] = '\0';
        }
        if (rc == CLI_OK && json) printf("%s\n", s);
        else if (rc == CLI_OK) {
            printf("%-11s %8s %8s", "fold", "accuracy", "macro_f1");
            for (int l = 0; l < nl; l++) {
                char h[TASK_NAME_MAX + 4];
                snprintf(h, sizeof h, "f1_%s", task->labels[l]);
                printf(" %10s", h);
            }
            printf(" %9s %8s %6s\n", val_split > 0 ? "test_loss" : "eval_loss", val_split > 0 ? "val_f1" : "raw_f1",
                   "step");
            for (int k = 0; k < folds; k++) {
                printf("%-11d %8.4f %8.4f", k + 1, res[k].acc, res[k].f1);
                for (int l = 0; l < nl; l++) printf(" %10.4f", res[k].cls[l]);
                printf(" %9.4f %8.4f %6ld\n", res[k].loss, res[k].f1_raw, res[k].step);
            }
            printf("%-11s", "mean +- sd");
            for (int ci = 0; ci < ncol; ci++)
                printf(" %.4f+-%.4f", mean[ci], sd[ci]);
            printf("\n");
        }
        free(s);
    }
    free(res);
    task_free(task);
    return rc;
}
