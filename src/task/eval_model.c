#include "task/eval_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/csv.h"
#include "model/model.h"
#include "model/score.h"
#include "task/calib.h"
#include "task/prepare.h"
#include "tokenizer/tokenizer.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    int32_t *ids;
    size_t n;
} toks_t;

static int encode(const tokenizer_t *tok, const char *text, int flags, toks_t *out, tl_err_t *err) {
    out->ids = NULL;
    out->n = 0;
    return tokenizer_encode(tok, text, strlen(text), flags, &out->ids, &out->n, err);
}

static int write_predictions(const task_t *t, const prep_data_t *d, size_t n, const int *pred, const double *lp,
                             const double *bias, const char *path, tl_err_t *err) {
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
    for (size_t i = 0; i < n; i++) {
        const char *v[TASK_MAX_FIELDS + TASK_MAX_LABELS + 4];
        size_t m = 0;
        double pr[TASK_MAX_LABELS];
        label_bias_probs(lp + i * t->n_labels, bias, t->n_labels, pr);
        for (size_t k = 0; k < t->n_fields; k++) v[m++] = d->rows[i].fields[k];
        v[m++] = t->labels[d->rows[i].label];
        v[m++] = t->labels[pred[i]];
        for (size_t k = 0; k < t->n_labels; k++) {
            snprintf(nums[k], sizeof nums[k], "%.6f", pr[k]);
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

int eval_model_run(const task_t *task, const eval_model_opts_t *o, FILE *progress, eval_model_result_t *res, tl_err_t *err) {
    memset(res, 0, sizeof *res);
    prep_data_t d;
    if (prep_load_ex(task, o->data_path, false, &d, err)) return -1;
    if (progress)
        for (size_t i = 0; i < d.n_drops; i++) fprintf(progress, "%s:%zu: skipped: %s\n", o->data_path, d.drops[i].line, d.drops[i].reason);
    size_t n = d.n_rows;
    if (o->limit >= 0 && (size_t)o->limit < n) n = (size_t)o->limit;
    if (!n) {
        prep_data_free(&d);
        return tl_fail(err, "%s: no usable rows", o->data_path);
    }
    model_t *model = NULL;
    model_ctx_t *ctx = NULL;
    toks_t *prompts = calloc(n, sizeof *prompts);
    toks_t labels[TASK_MAX_LABELS] = {{0}};
    double *lp = malloc(n * task->n_labels * sizeof *lp), *gold_lp = malloc(n * sizeof *gold_lp);
    int *gold = malloc(n * sizeof *gold), *pred = malloc(n * sizeof *pred);
    char **cats = d.has_category ? calloc(n, sizeof *cats) : NULL;
    int rc = -1;
    if (!prompts || !lp || !gold_lp || !gold || !pred || (d.has_category && !cats)) {
        tl_fail(err, "out of memory");
        goto done;
    }
    if (model_load(&model, o->model_path, o->threads, err)) goto done;
    if (o->model_hook && o->model_hook(model, o->hook_ctx, err)) goto done;
    double *bias = res->label_bias;
    if (label_bias_resolve(task, o->label_bias, o->bias_file, model_gguf(model), bias, err)) goto done;
    for (size_t k = 0; k < task->n_labels; k++)
        if (bias[k] != 0.0) res->has_label_bias = true;
    const tokenizer_t *tok = model_tokenizer(model);
    int flags = tokenizer_wants_bos(tok) ? TOK_ADD_BOS : 0;
    size_t max_prompt = 0, max_label = 0;
    for (size_t k = 0; k < task->n_labels; k++) {
        char lab[TASK_NAME_MAX + 16];
        if (task_render_label(task, k, lab, sizeof lab) < 0) {
            tl_fail(err, "task %s: label %zu too long", task->name, k);
            goto done;
        }
        if (encode(tok, lab, 0, &labels[k], err)) goto done;
        if (!labels[k].n) {
            tl_fail(err, "task %s: label '%s' encodes to no tokens", task->name, task->labels[k]);
            goto done;
        }
        if (labels[k].n > max_label) max_label = labels[k].n;
    }
    for (size_t i = 0; i < n; i++) {
        const char *fv[TASK_MAX_FIELDS];
        for (size_t k = 0; k < task->n_fields; k++) fv[k] = d.rows[i].fields[k];
        char *text;
        if (task_render_prompt(task, fv, &text, err)) goto done;
        int e = encode(tok, text, flags, &prompts[i], err);
        free(text);
        if (e) {
            tl_fail_prefix(err, "%s:%zu", o->data_path, d.rows[i].line);
            goto done;
        }
        if (prompts[i].n > max_prompt) max_prompt = prompts[i].n;
    }
    int n_ctx = (int)(max_prompt + max_label + 1);
    if (model_ctx_new(&ctx, model, n_ctx, err)) goto done;
    const int32_t *lab_ids[TASK_MAX_LABELS];
    int lab_lens[TASK_MAX_LABELS];
    for (size_t k = 0; k < task->n_labels; k++) {
        lab_ids[k] = labels[k].ids;
        lab_lens[k] = (int)labels[k].n;
    }
    double t0 = now_s(), last_report = t0;
    /* score_labels keeps the longest common token prefix of consecutive
     * prompts in the KV cache (the template's constant prefix and more), so
     * each row evaluates only its own tail. */
    for (size_t i = 0; i < n; i++) {
        double *l = lp + i * task->n_labels;
        if (score_labels(ctx, prompts[i].ids, (int)prompts[i].n, lab_ids, lab_lens, (int)task->n_labels, l, err)) {
            tl_fail_prefix(err, "%s:%zu", o->data_path, d.rows[i].line);
            goto done;
        }
        int best = label_bias_argmax(l, bias, task->n_labels);
        gold[i] = d.rows[i].label;
        pred[i] = best;
        gold_lp[i] = l[gold[i]];
        if (cats && !(cats[i] = strdup(d.rows[i].category))) {
            tl_fail(err, "out of memory");
            goto done;
        }
        double t = now_s();
        if (o->on_row) o->on_row(o->row_ctx, i + 1, n);
        else if (progress && (t - last_report > 2.0 || i + 1 == n)) {
            fprintf(progress, "eval: %zu/%zu rows, %.1f rows/s\n", i + 1, n, (double)(i + 1) / (t - t0));
            last_report = t;
        }
    }
    double dt = now_s() - t0;
    res->rows_per_s = dt > 0 ? (double)n / dt : 0;
    if (metrics_compute(gold, pred, n, task->n_labels, &res->metrics, err)) goto done;
    res->mean_loss = metrics_mean_loss(gold_lp, n);
    if (o->predictions_out && write_predictions(task, &d, n, pred, lp, bias, o->predictions_out, err)) goto done;
    res->gold = gold;
    res->pred = pred;
    res->categories = cats;
    res->has_category = cats != NULL;
    gold = pred = NULL;
    cats = NULL;
    rc = 0;
done:
    if (cats)
        for (size_t i = 0; i < n; i++) free(cats[i]);
    free(cats);
    if (prompts)
        for (size_t i = 0; i < n; i++) free(prompts[i].ids);
    free(prompts);
    for (size_t k = 0; k < TASK_MAX_LABELS; k++) free(labels[k].ids);
    free(lp);
    free(gold_lp);
    free(gold);
    free(pred);
    model_ctx_free(ctx);
    model_free(model);
    prep_data_free(&d);
    return rc;
}

void eval_model_result_free(eval_model_result_t *res) {
    free(res->gold);
    free(res->pred);
    if (res->categories)
        for (size_t i = 0; i < res->metrics.n; i++) free(res->categories[i]);
    free(res->categories);
    memset(res, 0, sizeof *res);
}
