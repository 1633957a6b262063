/* Layer-wise evaluation for block importance and pruning: a "view" of a loaded
 * model that runs only a chosen subset of its blocks (sharing the weights), and
 * access to the residual-stream hidden state after an evaluation. Separate from
 * forward.c so the hot path stays untouched. */
#ifndef TL_MODEL_LAYERWISE_H
#define TL_MODEL_LAYERWISE_H

#include <stdbool.h>

#include "model/model.h"

/* A model that runs block l only where keep[l] (n_layer entries), in order;
 * weights, tokenizer and thread pool are shared with m, which must outlive the
 * view. Free it with model_view_free (never model_free). */
int model_view_new(model_t **out, const model_t *m, const bool *keep, tl_err_t *err);
void model_view_free(model_t *view);

/* Hidden states (residual stream before the output norm) of the tokens of the
 * last model_eval call on c, n_embd floats per token. Valid only when that call
 * had at most model_ctx_ubatch(c) tokens; returns NULL otherwise. */
const float *model_ctx_hidden(const model_ctx_t *c, int n_last_tokens);
int model_ctx_ubatch(const model_ctx_t *c);

/* Evaluates n tokens (n <= model_ctx_ubatch(c)) and copies the hidden state
 * before block 0 and after every block into trace: (n_layer + 1) * n * n_embd
 * floats, block boundary b at trace + b * n * n_embd. */
int model_eval_trace(model_ctx_t *c, const int32_t *tokens, int n, float *trace, tl_err_t *err);

#endif
