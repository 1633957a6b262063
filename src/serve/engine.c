/* Prefix-cached label scoring for one task. */
#include "serve/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/model_extra.h"
#include "tokenizer/tokenizer.h"

struct serve_engine {
    model_t *model;
    model_ctx_t *ctx;
    const task_t *task;
    int flags; /* tokenizer flags for prompts */
    int32_t *prefix;
    int n_prefix;
    int32_t *labels[TASK_MAX_LABELS];
    int label_lens[TASK_MAX_LABELS];
    int max_label;
    int n_vocab;
    float *last;  /* n_vocab: logits after the prompt */
    float *rows;  /* (max_label - 1) * n_vocab: logits inside multi-token labels */
    char name[256];
};

static void set_name(serve_engine_t *e, const char *path) {
    const char *b = strrchr(path, '/');
    snprintf(e->name, sizeof e->name, "%s", b ? b + 1 : path);
}

int serve_engine_new(serve_engine_t **out, const serve_engine_opts_t *o, tl_err_t *err) {
    *out = NULL;
    const task_t *t = o->task;
    serve_engine_t *e = calloc(1, sizeof *e);
    if (!e) return tl_fail(err, "engine: out of memory");
    e->task = t;
    set_name(e, o->model_path);
    char *prefix_text = NULL;
    if (model_load(&e->model, o->model_path, o->threads, err)) goto fail;
    const tokenizer_t *tok = model_tokenizer(e->model);
    e->flags = tokenizer_wants_bos(tok) ? TOK_ADD_BOS : 0;
    e->n_vocab = (int)model_config(e->model)->n_vocab;
    for (size_t k = 0; k < t->n_labels; k++) {
        char lab[TASK_NAME_MAX + 16];
        if (task_render_label(t, k, lab, sizeof lab) < 0) {
            tl_fail(err, "task %s: label %zu is too long", t->name, k);
            goto fail;
        }
        size_t n = 0;
        if (tokenizer_encode(tok, lab, strlen(lab), 0, &e->labels[k], &n, err)) goto fail;
        if (!n) {
            tl_fail(err, "task %s: label '%s' encodes to no tokens", t->name, t->labels[k]);
            goto fail;
        }
        e->label_lens[k] = (int)n;
        if ((int)n > e->max_label) e->max_label = (int)n;
    }
    size_t plen = task_prompt_prefix_len(t);
    prefix_text = strndup(t->template_text, plen);
    if (!prefix_text) {
        tl_fail(err, "engine: out of memory");
        goto fail;
    }
    size_t np = 0;
    if (tokenizer_encode(tok, prefix_text, plen, e->flags, &e->prefix, &np, err)) goto fail;
    e->n_prefix = (int)np;
    /* A valid UTF-8 byte never needs more than one token, so a prompt has at
     * most BOS + template bytes + field bytes tokens. */
    size_t fb = o->max_field_bytes ? o->max_field_bytes : t->max_field_bytes;
    size_t n_ctx = 2 + strlen(t->template_text) + t->n_fields * fb + (size_t)e->max_label + 8;
    if (n_ctx > (size_t)1 << 20) {
        tl_fail(err, "engine: a context of %zu tokens is too large", n_ctx);
        goto fail;
    }
    if (model_ctx_new(&e->ctx, e->model, (int)n_ctx, err)) goto fail;
    e->last = malloc(sizeof(float) * (size_t)e->n_vocab);
    e->rows = e->max_label > 1 ? malloc(sizeof(float) * (size_t)e->n_vocab * (size_t)(e->max_label - 1)) : NULL;
    if (!e->last || (e->max_label > 1 && !e->rows)) {
        tl_fail(err, "engine: out of memory");
        goto fail;
    }
    if (e->n_prefix && model_eval(e->ctx, e->prefix, e->n_prefix, NULL, false, err)) {
        tl_fail_prefix(err, "engine: template prefix");
        goto fail;
    }
    free(prefix_text);
    *out = e;
    return 0;
fail:
    free(prefix_text);
    serve_engine_free(e);
    return -1;
}

void serve_engine_free(serve_engine_t *e) {
    if (!e) return;
    for (size_t k = 0; k < TASK_MAX_LABELS; k++) free(e->labels[k]);
    free(e->prefix);
    free(e->last);
    free(e->rows);
    model_ctx_free(e->ctx);
    model_free(e->model);
    free(e);
}

const task_t *serve_engine_task(const serve_engine_t *e) { return e->task; }
const char *serve_engine_model_name(const serve_engine_t *e) { return e->name; }
int serve_engine_prefix_tokens(const serve_engine_t *e) { return e->n_prefix; }
int serve_engine_threads(const serve_engine_t *e) { return model_n_threads(e->model); }

/* log(sum(exp(x))) over n floats (in double). */
static double log_sum_exp(const float *x, int n) {
    float mx = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > mx) mx = x[i];
    double s = 0.0;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    return mx + log(s);
}

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb) {
    int i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

/* Brings the context to hold exactly the prompt, keeping at most the cached
 * template prefix (so a result never depends on earlier requests), and leaves
 * the last position's logits in e->last. Returns tokens evaluated or -1. */
static int prefill(serve_engine_t *e, const int32_t *ids, int n, int *fallback, tl_err_t *err) {
    int bound = common_prefix(e->prefix, e->n_prefix, ids, n);
    *fallback = bound < e->n_prefix;
    int keep = common_prefix(model_ctx_tokens(e->ctx), model_ctx_pos(e->ctx), ids, n);
    if (keep > bound) keep = bound;
    if (keep == n) keep--; /* the last token is re-evaluated for its logits */
    model_ctx_truncate(e->ctx, keep);
    if (model_eval(e->ctx, ids + keep, n - keep, e->last, false, err)) return -1;
    return n - keep;
}

int serve_engine_classify(serve_engine_t *e, const char *const *fields, double *probs, double *logprob, int *label,
                          serve_cost_t *cost, tl_err_t *err) {
    const task_t *t = e->task;
    char *text = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = -1;
    serve_cost_t c = {0, 0, 0};
    if (task_render_prompt(t, fields, &text, err)) return -1;
    if (tokenizer_encode(model_tokenizer(e->model), text, strlen(text), e->flags, &ids, &n, err)) goto done;
    if (!n) {
        tl_fail(err, "engine: the prompt has no tokens");
        goto done;
    }
    if ((int)n + e->max_label > model_ctx_size(e->ctx)) {
        tl_fail(err, "engine: prompt of %zu tokens does not fit the context of %d", n, model_ctx_size(e->ctx));
        goto done;
    }
    c.n_prompt = (int)n;
    int ev = prefill(e, ids, (int)n, &c.prefix_fallback, err);
    if (ev < 0) goto done;
    c.n_evaluated = ev;
    double lse = log_sum_exp(e->last, e->n_vocab), lp[TASK_MAX_LABELS];
    for (size_t k = 0; k < t->n_labels; k++) {
        const int32_t *lab = e->labels[k];
        lp[k] = (double)e->last[lab[0]] - lse;
        int len = e->label_lens[k];
        if (len > 1) {
            model_ctx_truncate(e->ctx, (int)n);
            if (model_eval(e->ctx, lab, len - 1, e->rows, true, err)) goto done;
            c.n_evaluated += len - 1;
            for (int j = 1; j < len; j++) {
                const float *row = e->rows + (size_t)(j - 1) * (size_t)e->n_vocab;
                lp[k] += (double)row[lab[j]] - log_sum_exp(row, e->n_vocab);
            }
        }
    }
    model_ctx_truncate(e->ctx, (int)n);
    double mx = lp[0], sum = 0.0;
    int best = 0;
    for (size_t k = 1; k < t->n_labels; k++)
        if (lp[k] > mx) mx = lp[k], best = (int)k;
    for (size_t k = 0; k < t->n_labels; k++) sum += exp(lp[k] - mx);
    for (size_t k = 0; k < t->n_labels; k++) {
        probs[k] = exp(lp[k] - mx) / sum;
        if (logprob) logprob[k] = lp[k];
    }
    *label = best;
    if (cost) *cost = c;
    rc = 0;
done:
    free(text);
    free(ids);
    return rc;
}
