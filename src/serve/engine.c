/* Prefix-cached, batched label scoring for one task. */
#include "serve/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/batch.h"
#include "model/model.h"
#include "model/model_extra.h"
#include "task/calib.h"
#include "train/lora.h"
#include "tokenizer/tokenizer.h"

enum { MAX_NODES = 64 }; /* label-trie nodes inside labels (all labels' tokens but their last) */

/* One input of the pass being assembled. */
typedef struct {
    serve_item_t *it;
    int32_t *ids;
    int n, keep, last, base; /* prompt tokens, cached ones used, batch index of its last token, of its first node */
} pass_item_t;

struct serve_engine {
    model_t *model;
    model_ctx_t *ctx;     /* the cached prefix */
    model_batch_t *batch;
    model_head_t *head;   /* the labels' distinct first tokens */
    const task_t *task;
    int flags;            /* tokenizer flags for prompts */
    int32_t *prefix;
    int n_prefix;
    int32_t *labels[TASK_MAX_LABELS];
    int label_lens[TASK_MAX_LABELS];
    int max_label, n_vocab;
    int first_col[TASK_MAX_LABELS], n_first; /* head column of each label's first token */
    int32_t node_tok[MAX_NODES];
    int node_parent[MAX_NODES];              /* -1: the prompt's last token */
    int label_node[TASK_MAX_LABELS][MAX_NODES]; /* node after the label's first j+1 tokens */
    int n_nodes;
    int max_batch, max_tokens, max_input; /* inputs and tokens per pass, tokens per input */
    model_batch_tok_t *toks;
    int *rows;
    pass_item_t *pass;
    int n_pass, pass_tokens;
    float *lg_root, *lg_full, *lg_inner;
    char name[256];
    double bias[TASK_MAX_LABELS]; /* label-prior bias added to the label log-probabilities */
};

static void set_name(serve_engine_t *e, const char *path) {
    const char *b = strrchr(path, '/');
    snprintf(e->name, sizeof e->name, "%s", b ? b + 1 : path);
}

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb) {
    int i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

/* The labels' token trie: distinct first tokens (scored through a small head)
 * and the nodes inside multi-token labels (scored with full logits). */
static int build_trie(serve_engine_t *e, tl_err_t *err) {
    const task_t *t = e->task;
    int32_t firsts[TASK_MAX_LABELS];
    for (size_t k = 0; k < t->n_labels; k++) {
        int c = 0;
        while (c < e->n_first && firsts[c] != e->labels[k][0]) c++;
        if (c == e->n_first) firsts[e->n_first++] = e->labels[k][0];
        e->first_col[k] = c;
        int parent = -1;
        for (int j = 1; j < e->label_lens[k]; j++) {
            int32_t tok = e->labels[k][j - 1];
            int node = 0;
            while (node < e->n_nodes && !(e->node_parent[node] == parent && e->node_tok[node] == tok)) node++;
            if (node == e->n_nodes) {
                if (e->n_nodes == MAX_NODES) return tl_fail(err, "task %s: the labels have too many tokens", t->name);
                e->node_tok[node] = tok;
                e->node_parent[node] = parent;
                e->n_nodes++;
            }
            e->label_node[k][j - 1] = node;
            parent = node;
        }
    }
    return model_head_new(&e->head, e->model, firsts, e->n_first, err);
}

/* Prefix tokens that every prompt shares: the template text before the first
 * placeholder can end in characters (a space) that merge with the field's
 * first token, so only the tokens that survive in sample prompts are cached. */
static int stable_prefix(serve_engine_t *e, const int32_t *pre, int np, int *n_stable, tl_err_t *err) {
    static const char *probes[] = {"Ravi Kumar", "1", "-x", "\xc3\xa9", "A"};
    const task_t *t = e->task;
    *n_stable = np;
    for (size_t p = 0; p < sizeof probes / sizeof probes[0]; p++) {
        const char *fv[TASK_MAX_FIELDS];
        for (size_t k = 0; k < t->n_fields; k++) fv[k] = probes[p];
        char *text;
        int32_t *ids;
        size_t n;
        if (task_render_prompt(t, fv, &text, err)) return -1;
        int rc = tokenizer_encode(model_tokenizer(e->model), text, strlen(text), e->flags, &ids, &n, err);
        free(text);
        if (rc) return -1;
        int c = common_prefix(pre, np, ids, (int)n);
        if (c < *n_stable) *n_stable = c;
        free(ids);
    }
    return 0;
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
    if (o->lora_path && lora_apply_file(e->model, o->lora_path, err)) goto fail;
    if (label_bias_resolve(t, o->label_bias, o->lora_path, model_gguf(e->model), e->bias, err)) goto fail;
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
    if (build_trie(e, err)) goto fail;
    size_t plen = task_prompt_prefix_len(t);
    prefix_text = strndup(t->template_text, plen);
    if (!prefix_text) {
        tl_fail(err, "engine: out of memory");
        goto fail;
    }
    size_t np = 0;
    if (tokenizer_encode(tok, prefix_text, plen, e->flags, &e->prefix, &np, err)) goto fail;
    if (stable_prefix(e, e->prefix, (int)np, &e->n_prefix, err)) goto fail;
    /* A valid UTF-8 byte never needs more than one token, so a prompt has at
     * most BOS + template bytes + field bytes tokens. */
    size_t fb = o->max_field_bytes ? o->max_field_bytes : t->max_field_bytes;
    size_t n_in = 2 + strlen(t->template_text) + t->n_fields * fb + (size_t)e->max_label + 8;
    if (n_in > (size_t)1 << 20) {
        tl_fail(err, "engine: an input of %zu tokens is too large", n_in);
        goto fail;
    }
    e->max_input = (int)n_in;
    e->max_batch = o->max_batch > 0 ? o->max_batch : 16;
    e->max_tokens = o->max_batch_tokens > 0 ? o->max_batch_tokens : 1024;
    if (e->max_tokens < e->max_input + e->n_nodes) e->max_tokens = e->max_input + e->n_nodes;
    if (model_ctx_new(&e->ctx, e->model, e->n_prefix > 0 ? e->n_prefix : 1, err)) goto fail;
    if (model_batch_new(&e->batch, e->model, e->max_tokens, e->max_input + e->n_nodes, e->n_prefix, err)) goto fail;
    model_batch_use_amx(e->batch, o->amx != 0);
    size_t mb = (size_t)e->max_batch, V = (size_t)e->n_vocab;
    e->toks = calloc((size_t)e->max_tokens, sizeof *e->toks);
    e->rows = calloc(mb * (size_t)(e->n_nodes + 1), sizeof *e->rows);
    e->pass = calloc(mb, sizeof *e->pass);
    e->lg_root = malloc(sizeof(float) * mb * (size_t)e->n_first);
    e->lg_full = malloc(sizeof(float) * mb * V);
    e->lg_inner = e->n_nodes ? malloc(sizeof(float) * mb * (size_t)e->n_nodes * V) : NULL;
    if (!e->toks || !e->rows || !e->pass || !e->lg_root || !e->lg_full || (e->n_nodes && !e->lg_inner)) {
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
    free(e->toks);
    free(e->rows);
    free(e->pass);
    free(e->lg_root);
    free(e->lg_full);
    free(e->lg_inner);
    model_head_free(e->head);
    model_batch_free(e->batch);
    model_ctx_free(e->ctx);
    model_free(e->model);
    free(e);
}

const task_t *serve_engine_task(const serve_engine_t *e) { return e->task; }
const char *serve_engine_model_name(const serve_engine_t *e) { return e->name; }
int serve_engine_prefix_tokens(const serve_engine_t *e) { return e->n_prefix; }
int serve_engine_threads(const serve_engine_t *e) { return model_n_threads(e->model); }
int serve_engine_max_batch(const serve_engine_t *e) { return e->max_batch; }

/* log(sum(exp(x))) over n floats (in double). */
static double log_sum_exp(const float *x, int n) {
    float mx = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > mx) mx = x[i];
    double s = 0.0;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    return mx + log(s);
}

static void fail_item(serve_item_t *it, const tl_err_t *err) {
    it->rc = -1;
    if (err != &it->err) it->err = *err;
}

/* Runs the assembled pass; fills every item of it. */
static void run_pass(serve_engine_t *e, int want_logprob) {
    const task_t *t = e->task;
    int n = e->pass_tokens, np = e->n_pass, nr = 0;
    tl_err_t err = {{0}};
    if (!np) return;
    for (int p = 0; p < np; p++) e->rows[p] = e->pass[p].last;
    for (int p = 0; p < np; p++)
        for (int j = 0; j < e->n_nodes; j++) e->rows[np + nr++] = e->pass[p].base + j;
    int rc = model_batch_eval_rows(e->batch, e->ctx, e->toks, n, e->rows, np + nr, &err);
    if (!rc) rc = model_batch_logits(e->batch, e->rows, np, want_logprob ? NULL : e->head,
                                     want_logprob ? e->lg_full : e->lg_root, &err);
    if (!rc && nr) rc = model_batch_logits(e->batch, e->rows + np, nr, NULL, e->lg_inner, &err);
    for (int p = 0; p < np; p++) {
        pass_item_t *pi = &e->pass[p];
        serve_item_t *it = pi->it;
        if (rc) {
            fail_item(it, &err);
        } else {
            double lp[TASK_MAX_LABELS];
            const float *full = e->lg_full + (size_t)p * e->n_vocab;
            double lse = want_logprob ? log_sum_exp(full, e->n_vocab) : 0.0;
            for (size_t k = 0; k < t->n_labels; k++) {
                lp[k] = want_logprob ? (double)full[e->labels[k][0]] - lse
                                     : (double)e->lg_root[(size_t)p * e->n_first + e->first_col[k]];
                for (int j = 1; j < e->label_lens[k]; j++) {
                    const float *row = e->lg_inner + ((size_t)p * e->n_nodes + e->label_node[k][j - 1]) * e->n_vocab;
                    lp[k] += (double)row[e->labels[k][j]] - log_sum_exp(row, e->n_vocab);
                }
            }
            label_bias_probs(lp, e->bias, t->n_labels, it->probs);
            for (size_t k = 0; k < t->n_labels; k++) it->logprob[k] = want_logprob ? lp[k] : NAN;
            it->label = label_bias_argmax(lp, e->bias, t->n_labels);
            it->rc = 0;
        }
        free(pi->ids);
        pi->ids = NULL;
    }
    e->n_pass = e->pass_tokens = 0;
}

/* Tokenizes one input and adds it to the pass (running the pass first when
 * the input does not fit). */
static void add_item(serve_engine_t *e, serve_item_t *it, int want_logprob) {
    char *text = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    it->rc = -1;
    memset(&it->cost, 0, sizeof it->cost);
    if (task_render_prompt(e->task, it->fields, &text, &it->err)) return;
    int rc = tokenizer_encode(model_tokenizer(e->model), text, strlen(text), e->flags, &ids, &n, &it->err);
    free(text);
    if (rc) return;
    if (!n) {
        free(ids);
        tl_fail(&it->err, "engine: the prompt has no tokens");
        return;
    }
    if ((int)n + e->max_label > e->max_input) {
        free(ids);
        tl_fail(&it->err, "engine: prompt of %zu tokens does not fit the context of %d", n, e->max_input);
        return;
    }
    int keep = common_prefix(e->prefix, e->n_prefix, ids, (int)n);
    it->cost.prefix_fallback = keep < e->n_prefix;
    if (keep == (int)n) keep--; /* the last token is evaluated for its logits */
    int need = (int)n - keep + e->n_nodes;
    if (e->n_pass == e->max_batch || e->pass_tokens + need > e->max_tokens) run_pass(e, want_logprob);
    pass_item_t *pi = &e->pass[e->n_pass++];
    pi->it = it;
    pi->ids = ids;
    pi->n = (int)n;
    pi->keep = keep;
    int b = e->pass_tokens;
    for (int i = keep; i < (int)n; i++, b++) {
        e->toks[b].id = ids[i];
        e->toks[b].parent = i == keep ? -1 : b - 1;
        e->toks[b].n_prefix = keep;
    }
    pi->last = b - 1;
    pi->base = b;
    for (int j = 0; j < e->n_nodes; j++, b++) {
        e->toks[b].id = e->node_tok[j];
        e->toks[b].parent = e->node_parent[j] < 0 ? pi->last : pi->base + e->node_parent[j];
        e->toks[b].n_prefix = 0;
    }
    e->pass_tokens = b;
    it->cost.n_prompt = (int)n;
    it->cost.n_evaluated = need;
}

int serve_engine_classify_many(serve_engine_t *e, serve_item_t *items, int n, int want_logprob) {
    for (int i = 0; i < n; i++) add_item(e, &items[i], want_logprob);
    run_pass(e, want_logprob);
    int failed = 0;
    for (int i = 0; i < n; i++) failed += items[i].rc != 0;
    return failed;
}

int serve_engine_classify(serve_engine_t *e, const char *const *fields, double *probs, double *logprob, int *label,
                          serve_cost_t *cost, tl_err_t *err) {
    serve_item_t it;
    memset(&it, 0, sizeof it);
    it.fields = fields;
    if (serve_engine_classify_many(e, &it, 1, logprob != NULL)) {
        *err = it.err;
        return -1;
    }
    for (size_t k = 0; k < e->task->n_labels; k++) {
        probs[k] = it.probs[k];
        if (logprob) logprob[k] = it.logprob[k];
    }
    *label = it.label;
    if (cost) *cost = it.cost;
    return 0;
}
