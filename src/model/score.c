/* Label scoring from a cached prompt. */
#include "model/score.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_extra.h"

static double log_softmax_at(const float *logits, int n_vocab, int32_t id) {
    float mx = logits[0];
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    for (int i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - mx);
    return (double)logits[id] - mx - log(sum);
}

/* Brings the context to hold exactly the prompt, reusing a cached common
 * prefix, and leaves the last prompt position's logits in `last`. */
static int eval_prompt(model_ctx_t *c, const int32_t *prompt, int n_prompt, float *last, tl_err_t *err) {
    const int32_t *have = model_ctx_tokens(c);
    int n_have = model_ctx_pos(c), keep = 0;
    while (keep < n_have && keep < n_prompt && have[keep] == prompt[keep]) keep++;
    if (keep == n_prompt) keep--; /* re-evaluate the last token for its logits */
    model_ctx_truncate(c, keep);
    return model_eval(c, prompt + keep, n_prompt - keep, last, false, err);
}

int score_labels(model_ctx_t *c, const int32_t *prompt, int n_prompt, const int32_t *const *labels,
                 const int *label_lens, int n_labels, double *logprob, tl_err_t *err) {
    if (n_prompt <= 0) return tl_fail(err, "score: the prompt has no tokens");
    int n_vocab = (int)model_config(model_ctx_model(c))->n_vocab, max_len = 0;
    for (int i = 0; i < n_labels; i++) {
        if (label_lens[i] <= 0) return tl_fail(err, "score: label %d has no tokens", i);
        if (label_lens[i] > max_len) max_len = label_lens[i];
        for (int j = 0; j < label_lens[i]; j++)
            if (labels[i][j] < 0 || labels[i][j] >= n_vocab)
                return tl_fail(err, "score: label %d token %d (id %d) is out of range for a vocabulary of %d", i, j,
                               labels[i][j], n_vocab);
    }
    if (n_prompt + max_len - 1 > model_ctx_size(c))
        return tl_fail(err, "score: prompt (%d tokens) plus the longest label (%d tokens) exceed the context of %d",
                       n_prompt, max_len, model_ctx_size(c));
    float *last = malloc(sizeof(float) * (size_t)n_vocab);
    float *rows = max_len > 1 ? malloc(sizeof(float) * (size_t)n_vocab * (size_t)(max_len - 1)) : NULL;
    if (!last || (max_len > 1 && !rows)) {
        free(last);
        free(rows);
        return tl_fail(err, "score: out of memory");
    }
    int rc = eval_prompt(c, prompt, n_prompt, last, err);
    for (int i = 0; rc == 0 && i < n_labels; i++) {
        const int32_t *lab = labels[i];
        double lp = log_softmax_at(last, n_vocab, lab[0]);
        if (label_lens[i] > 1) {
            /* logits after each label token but the last predict the next one */
            model_ctx_truncate(c, n_prompt);
            rc = model_eval(c, lab, label_lens[i] - 1, rows, true, err);
            for (int j = 1; rc == 0 && j < label_lens[i]; j++)
                lp += log_softmax_at(rows + (size_t)(j - 1) * n_vocab, n_vocab, lab[j]);
        }
        logprob[i] = lp;
    }
    model_ctx_truncate(c, n_prompt);
    free(last);
    free(rows);
    return rc;
}
