/* Multi-sequence evaluation over a shared cached prefix (the serving batch).
 *
 * A batch is a flat list of tokens; each names its parent, the token it
 * follows (an earlier index in the batch), or -1 when it follows the first
 * n_prefix positions of the prefix context directly. Chains of parents make
 * sequences (a request's prompt suffix) and trees (label continuations that
 * share their common prefix). One pass runs every matmul over all tokens at
 * once (M = batch tokens); each token attends to its root's prefix positions
 * and to its own ancestors. Logits are computed only for the requested rows,
 * through the model's output head or through a head restricted to a few
 * vocabulary ids. The prefix context is read, never changed. All scratch is
 * sized at creation: model_batch_eval does not allocate. */
#ifndef TL_MODEL_BATCH_H
#define TL_MODEL_BATCH_H

#include "model/model.h"

typedef struct {
    int32_t id;       /* token id */
    int32_t parent;   /* index in the batch of the token it follows; -1: follows the prefix */
    int32_t n_prefix; /* for parent == -1: prefix positions it sees (<= the context's position) */
} model_batch_tok_t;

typedef struct model_batch model_batch_t;
typedef struct model_head model_head_t;

/* Scratch for up to max_tokens tokens per pass, chains at most max_depth
 * tokens deep below the prefix, and at most max_prefix prefix positions. */
int model_batch_new(model_batch_t **out, const model_t *m, int max_tokens, int max_depth, int max_prefix,
                    tl_err_t *err);
void model_batch_free(model_batch_t *b);
int model_batch_max_tokens(const model_batch_t *b);
/* Q8_0 weights (n_out a multiple of 16) on the AMX-INT8 tiles when the CPU
 * has them: exact int32 block sums, scaled once per block (quant/matmul_amx.h).
 * Results then differ from model_eval's by rounding (label log-probabilities
 * by up to ~0.1 on SmolLM2-135M, as between CPU levels) and still do not
 * depend on the batch. Off by default; returns whether it is on. */
bool model_batch_use_amx(model_batch_t *b, bool on);

/* A head over some vocabulary ids only: row k of its logits is the logit of ids[k]. */
int model_head_new(model_head_t **out, const model_t *m, const int32_t *ids, int n, tl_err_t *err);
void model_head_free(model_head_t *h);

/* Runs the batch over prefix (a context holding the shared prefix) and keeps
 * every token's final hidden state for model_batch_logits. Fails on bad ids,
 * parents or depths. */
int model_batch_eval(model_batch_t *b, const model_ctx_t *prefix, const model_batch_tok_t *toks, int n,
                     tl_err_t *err);
/* The same for a pass that needs the outputs (model_batch_logits) of only
 * n_rows tokens, rows[0..n_rows): the last block computes every token's keys
 * and values but the query, attention and feed-forward of those rows only.
 * Their hidden states equal model_batch_eval's bit for bit; logits of other
 * rows are refused. */
int model_batch_eval_rows(model_batch_t *b, const model_ctx_t *prefix, const model_batch_tok_t *toks, int n,
                          const int *rows, int n_rows, tl_err_t *err);
/* After model_batch_eval: for each k < n_rows, logits + k * width receives the
 * logits after token rows[k]; width = n_vocab with head NULL, else the
 * head's id count. */
int model_batch_logits(model_batch_t *b, const int *rows, int n_rows, const model_head_t *head, float *logits,
                       tl_err_t *err);

#endif
