/* Calibration statistics (see awq_calib.h): prompts from a task CSV run
 * through model_capture_eval; per layer and input slot, the sum of squared
 * activations of every column. */
#include "quant/awq_calib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/csv.h"
#include "model/capture.h"
#include "model/model.h"
#include "task/task.h"

struct calib {
    int n_prompts;
    long n_tokens;
    int n_layer;
    int dim[CAPTURE_N_SLOTS];
    double *sum[CAPTURE_N_SLOTS];  /* n_layer * dim */
    float *mean[CAPTURE_N_SLOTS];  /* sum / n_tokens, filled at the end */
};

static int calib_accumulate(void *ud, int layer, capture_slot_t slot, const float *x, int n, int dim) {
    calib_t *c = ud;
    if (slot >= CAPTURE_N_SLOTS || dim != c->dim[slot] || layer >= c->n_layer) return 1;
    double *s = c->sum[slot] + (size_t)layer * (size_t)dim;
    for (int t = 0; t < n; t++)
        for (int i = 0; i < dim; i++) s[i] += (double)x[(size_t)t * dim + i] * x[(size_t)t * dim + i];
    return 0;
}

static char *read_text(const char *path, tl_err_t *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        tl_fail(err, "%s: cannot open the template", path);
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                tl_fail(err, "%s: out of memory", path);
                return NULL;
            }
            buf = nb;
        }
        size_t k = fread(buf + len, 1, 4096, f);
        len += k;
        if (k < 4096) break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static int calib_alloc(calib_t *c, const model_config_t *cf, tl_err_t *err) {
    c->n_layer = (int)cf->n_layer;
    c->dim[CAPTURE_ATTN_IN] = (int)cf->n_embd;
    c->dim[CAPTURE_ATTN_OUT] = (int)(cf->n_head * cf->head_dim);
    c->dim[CAPTURE_FFN_IN] = (int)cf->n_embd;
    c->dim[CAPTURE_FFN_DOWN] = (int)cf->n_ff;
    for (int s = 0; s < CAPTURE_N_SLOTS; s++) {
        c->sum[s] = calloc((size_t)c->n_layer * (size_t)c->dim[s], sizeof(double));
        if (!c->sum[s]) return tl_fail(err, "calibration: out of memory");
    }
    return 0;
}

static int calib_finish(calib_t *c, tl_err_t *err) {
    for (int s = 0; s < CAPTURE_N_SLOTS; s++) {
        size_t n = (size_t)c->n_layer * (size_t)c->dim[s];
        c->mean[s] = malloc(n * sizeof(float));
        if (!c->mean[s]) return tl_fail(err, "calibration: out of memory");
        for (size_t i = 0; i < n; i++) c->mean[s][i] = (float)(c->sum[s][i] / (double)c->n_tokens);
    }
    return 0;
}

int calib_collect(calib_t **out, const calib_opts_t *o, tl_err_t *err) {
    *out = NULL;
    task_t *task = NULL;
    model_t *m = NULL;
    model_ctx_t *ctx = NULL;
    csv_reader_t *r = NULL;
    int32_t *ids = NULL;
    int rc = -1;
    calib_t *c = calloc(1, sizeof *c);
    if (!c) return tl_fail(err, "calibration: out of memory");
    if (task_load(&task, o->task_dir ? o->task_dir : "tasks/namematch", err)) goto done;
    if (o->template_path) {
        char *t = read_text(o->template_path, err);
        if (!t) goto done;
        free(task->template_text);
        task->template_text = t;
    }
    if (csv_open(&r, o->csv_path, err)) goto done;
    int col[TASK_MAX_FIELDS];
    for (size_t i = 0; i < task->n_fields; i++) {
        col[i] = csv_column_index(r, task->field_columns[i]);
        if (col[i] < 0) {
            tl_fail(err, "%s: no column '%s'", o->csv_path, task->field_columns[i]);
            goto done;
        }
    }
    if (model_load(&m, o->model_path, o->n_threads, err)) goto done;
    const model_config_t *cf = model_config(m);
    if (calib_alloc(c, cf, err)) goto done;
    int n_ctx = 512;
    if (model_ctx_new(&ctx, m, n_ctx, err)) goto done;
    const tokenizer_t *tok = model_tokenizer(m);
    int flags = tokenizer_wants_bos(tok) ? TOK_ADD_BOS : 0;
    csv_row_t row;
    while (c->n_prompts < o->n_rows) {
        int st = csv_next(r, &row, err);
        if (st == CSV_EOF) break;
        if (st == CSV_FATAL) goto done;
        if (st == CSV_BAD_ROW) continue;
        const char *fields[TASK_MAX_FIELDS];
        for (size_t i = 0; i < task->n_fields; i++) {
            if ((size_t)col[i] >= row.n_fields) {
                tl_fail(err, "%s: line %zu: missing column '%s'", o->csv_path, row.line, task->field_columns[i]);
                goto done;
            }
            fields[i] = row.fields[col[i]];
        }
        char *prompt = NULL;
        size_t n_ids = 0;
        if (task_render_prompt(task, fields, &prompt, err)) {
            tl_fail_prefix(err, "%s: line %zu", o->csv_path, row.line);
            goto done;
        }
        free(ids);
        ids = NULL;
        int erc = tokenizer_encode(tok, prompt, strlen(prompt), flags, &ids, &n_ids, err);
        free(prompt);
        if (erc) goto done;
        if (n_ids == 0) continue;
        if (n_ids > (size_t)n_ctx) n_ids = (size_t)n_ctx;
        model_ctx_truncate(ctx, 0);
        if (model_capture_eval(ctx, ids, (int)n_ids, calib_accumulate, c, err)) goto done;
        c->n_prompts++;
        c->n_tokens += (long)n_ids;
    }
    if (c->n_prompts == 0) {
        tl_fail(err, "%s: no usable calibration rows", o->csv_path);
        goto done;
    }
    if (calib_finish(c, err)) goto done;
    *out = c;
    c = NULL;
    rc = 0;
done:
    free(ids);
    model_ctx_free(ctx);
    model_free(m);
    csv_close(r);
    task_free(task);
    calib_free(c);
    return rc;
}

int calib_from_stats(calib_t **out, int n_layer, const int dim[4], tl_err_t *err) {
    *out = NULL;
    calib_t *c = calloc(1, sizeof *c);
    if (!c) return tl_fail(err, "calibration: out of memory");
    c->n_layer = n_layer;
    for (int s = 0; s < CAPTURE_N_SLOTS; s++) {
        c->dim[s] = dim[s];
        c->sum[s] = calloc((size_t)n_layer * (size_t)dim[s], sizeof(double));
        c->mean[s] = calloc((size_t)n_layer * (size_t)dim[s], sizeof(float));
        if (!c->sum[s] || !c->mean[s]) {
            calib_free(c);
            return tl_fail(err, "calibration: out of memory");
        }
    }
    *out = c;
    return 0;
}

float *calib_stats(calib_t *c, int layer, int slot) {
    if (!c || slot < 0 || slot >= CAPTURE_N_SLOTS || layer < 0 || layer >= c->n_layer || !c->mean[slot]) return NULL;
    return c->mean[slot] + (size_t)layer * (size_t)c->dim[slot];
}

const float *calib_importance(void *calib, const char *tensor_name, int64_t n_in) {
    calib_t *c = calib;
    int layer, len = 0;
    char rest[64];
    if (!c || sscanf(tensor_name, "blk.%d.%63[^.].weight%n", &layer, rest, &len) != 2 || tensor_name[len] != '\0')
        return NULL;
    for (int s = 0; s < CAPTURE_N_SLOTS; s++) {
        const char *names[3];
        int k = capture_slot_tensors((capture_slot_t)s, names);
        for (int i = 0; i < k; i++)
            if (strcmp(rest, names[i]) == 0) {
                if (n_in != c->dim[s]) return NULL;
                return calib_stats(c, layer, s);
            }
    }
    return NULL;
}

int calib_n_prompts(const calib_t *c) { return c ? c->n_prompts : 0; }
long calib_n_tokens(const calib_t *c) { return c ? c->n_tokens : 0; }

void calib_free(calib_t *c) {
    if (!c) return;
    for (int s = 0; s < CAPTURE_N_SLOTS; s++) {
        free(c->sum[s]);
        free(c->mean[s]);
    }
    free(c);
}
