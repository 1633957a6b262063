/* Block importance on calibration prompts, for structured pruning:
 *  - cosine: 1 - cos(h_in, h_out), the change a block makes to the residual
 *    stream, averaged over every token of every prompt;
 *  - loss: mean -log p(gold label | prompt) with the block skipped, minus the
 *    same with every block present (the loss increase when it is removed). */
#ifndef TL_MODEL_PRUNE_SCORE_H
#define TL_MODEL_PRUNE_SCORE_H

#include "model/model.h"

typedef struct {
    const int32_t *const *prompts; /* n_prompts token arrays (BOS included if wanted) */
    const int *prompt_lens;
    const int *gold;               /* gold label index per prompt */
    int n_prompts;
    const int32_t *const *labels;  /* n_labels label continuations */
    const int *label_lens;
    int n_labels;
    int skip_loss;                 /* score by cosine only: loss_increase is left NaN */
    /* Optional: called after each forward pass with (passes done, passes in all):
     * n_prompts traced passes, then (n_layer + 1) * n_prompts scoring passes
     * unless skip_loss. */
    void (*progress)(void *ctx, long done, long total);
    void *progress_ctx;
} prune_calib_t;

typedef struct {
    double cosine;        /* 1 - mean cosine(h_in, h_out) */
    double loss_increase; /* mean loss without the block - base loss */
} prune_score_t;

/* scores: n_layer entries. *base_loss: mean loss of the full model (NaN when
 * cal->skip_loss). */
int prune_score_blocks(const model_t *m, const prune_calib_t *cal, prune_score_t *scores, double *base_loss,
                       tl_err_t *err);

/* order[0..n_layer): block indices sorted by ascending importance (by cosine
 * when by_loss is false), ties broken by index; the first K are removed. */
void prune_rank_blocks(const prune_score_t *scores, int n_layer, int by_loss, int *order);

#endif
