/* Model views over a subset of blocks and hidden-state access (see layerwise.h). */
#include <stdlib.h>
#include <string.h>

#include "model/layerwise.h"
#include "model/model_internal.h"

int model_view_new(model_t **out, const model_t *m, const bool *keep, tl_err_t *err) {
    *out = NULL;
    model_t *v = calloc(1, sizeof *v);
    layer_t *layers = calloc(m->cfg.n_layer ? m->cfg.n_layer : 1, sizeof *layers);
    if (!v || !layers) {
        free(v);
        free(layers);
        return tl_fail(err, "model view: out of memory");
    }
    *v = *m;
    uint32_t n = 0;
    for (uint32_t l = 0; l < m->cfg.n_layer; l++)
        if (keep[l]) layers[n++] = m->layers[l];
    v->layers = layers;
    v->cfg.n_layer = n;
    v->owned[0] = NULL; /* the view owns nothing but its layer table */
    *out = v;
    return 0;
}

void model_view_free(model_t *view) {
    if (!view) return;
    free(view->layers);
    free(view);
}

int model_ctx_ubatch(const model_ctx_t *c) { return c->n_ub; }

const float *model_ctx_hidden(const model_ctx_t *c, int n_last_tokens) {
    if (n_last_tokens <= 0 || n_last_tokens > c->n_ub) return NULL;
    return c->x;
}

int model_eval_trace(model_ctx_t *c, const int32_t *tokens, int n, float *trace, tl_err_t *err) {
    if (n > c->n_ub) return tl_fail(err, "traced evaluation of %d tokens: at most %d in one pass", n, c->n_ub);
    c->trace = trace;
    int rc = model_eval(c, tokens, n, NULL, false, err);
    c->trace = NULL;
    return rc;
}
