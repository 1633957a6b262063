/* Label scoring: log-probability of each candidate continuation after a prompt.
 * The prompt is evaluated once; each label continuation is evaluated from the
 * cached prompt state (labels may be several tokens long). */
#ifndef TL_MODEL_SCORE_H
#define TL_MODEL_SCORE_H

#include "model/model.h"

/* prompt: token ids (BOS included by the caller if wanted). labels[i]: label_lens[i] ids.
 * logprob[i] = sum over the label's tokens of log p(token | prompt, previous label tokens).
 * The context is left holding just the prompt. */
int score_labels(model_ctx_t *c, const int32_t *prompt, int n_prompt,
                 const int32_t *const *labels, const int *label_lens, int n_labels,
                 double *logprob, tl_err_t *err);

#endif
