/* Block importance scores (see prune_score.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/layerwise.h"
#include "model/prune_score.h"
#include "model/score.h"

static int max_prompt_len(const prune_calib_t *cal) {
    int mx = 0;
    for (int i = 0; i < cal->n_prompts; i++)
        if (cal->prompt_lens[i] > mx) mx = cal->prompt_lens[i];
    return mx;
}

/* Mean -log p(gold | prompt) over the calibration prompts. */
static int mean_loss(const model_t *m, const prune_calib_t *cal, int n_ctx, long *done, long total, double *out,
                     tl_err_t *err) {
    model_ctx_t *c;
    if (model_ctx_new(&c, m, n_ctx, err)) return -1;
    double *lp = malloc(sizeof(double) * (size_t)cal->n_labels), sum = 0;
    if (!lp) {
        model_ctx_free(c);
        return tl_fail(err, "prune: out of memory");
    }
    int rc = 0;
    for (int i = 0; i < cal->n_prompts && !rc; i++) {
        model_ctx_truncate(c, 0);
        rc = score_labels(c, cal->prompts[i], cal->prompt_lens[i], cal->labels, cal->label_lens, cal->n_labels, lp, err);
        if (!rc) sum += -lp[cal->gold[i]];
        if (!rc && cal->progress) cal->progress(cal->progress_ctx, ++*done, total);
    }
    free(lp);
    model_ctx_free(c);
    if (!rc) *out = sum / cal->n_prompts;
    return rc;
}

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 1.0;
}

int prune_score_blocks(const model_t *m, const prune_calib_t *cal, prune_score_t *scores, double *base_loss,
                       tl_err_t *err) {
    const model_config_t *cf = model_config(m);
    int L = (int)cf->n_layer, E = (int)cf->n_embd;
    if (cal->n_prompts <= 0) return tl_fail(err, "prune: no calibration prompts");
    int n_max = max_prompt_len(cal), lab_max = 0;
    for (int i = 0; i < cal->n_labels; i++)
        if (cal->label_lens[i] > lab_max) lab_max = cal->label_lens[i];
    int n_ctx = n_max + lab_max + 1;
    memset(scores, 0, sizeof *scores * (size_t)L);
    /* cosine: hidden states at every block boundary in one traced pass per prompt */
    float *tr = malloc(sizeof(float) * (size_t)(L + 1) * (size_t)n_max * E);
    bool *keep = malloc(sizeof(bool) * (size_t)(L ? L : 1));
    model_ctx_t *c = NULL;
    int rc = 0;
    if (!tr || !keep) rc = tl_fail(err, "prune: out of memory");
    if (!rc) rc = model_ctx_new(&c, m, n_max, err);
    long n_tok = 0, done = 0;
    long total = (long)cal->n_prompts * (cal->skip_loss ? 1 : L + 2);
    for (int i = 0; i < cal->n_prompts && !rc; i++) {
        int n = cal->prompt_lens[i];
        model_ctx_truncate(c, 0);
        rc = model_eval_trace(c, cal->prompts[i], n, tr, err);
        for (int l = 0; l < L && !rc; l++) {
            const float *h0 = tr + (size_t)l * n * E, *h1 = tr + (size_t)(l + 1) * n * E;
            for (int t = 0; t < n; t++) scores[l].cosine += 1.0 - cosine(h0 + (size_t)t * E, h1 + (size_t)t * E, E);
        }
        n_tok += n;
        if (!rc && cal->progress) cal->progress(cal->progress_ctx, ++done, total);
    }
    model_ctx_free(c);
    free(tr);
    for (int l = 0; l < L && !rc; l++) scores[l].cosine /= (double)n_tok;
    if (cal->skip_loss) {
        for (int l = 0; l < L; l++) scores[l].loss_increase = NAN;
        if (!rc && base_loss) *base_loss = NAN;
        free(keep);
        return rc;
    }
    /* loss increase when each block is skipped */
    double base = 0;
    if (!rc) rc = mean_loss(m, cal, n_ctx, &done, total, &base, err);
    for (int l = 0; l < L && !rc; l++) {
        for (int k = 0; k < L; k++) keep[k] = k != l;
        model_t *v = NULL;
        double lo = 0;
        rc = model_view_new(&v, m, keep, err);
        if (!rc) rc = mean_loss(v, cal, n_ctx, &done, total, &lo, err);
        model_view_free(v);
        scores[l].loss_increase = lo - base;
    }
    if (!rc && base_loss) *base_loss = base;
    free(keep);
    return rc;
}

void prune_rank_blocks(const prune_score_t *scores, int n_layer, int by_loss, int *order) {
    for (int i = 0; i < n_layer; i++) order[i] = i;
    /* insertion sort: n_layer is small; ties keep the lower index first */
    for (int i = 1; i < n_layer; i++) {
        int x = order[i], j = i - 1;
        double sx = by_loss ? scores[x].loss_increase : scores[x].cosine;
        while (j >= 0) {
            double sj = by_loss ? scores[order[j]].loss_increase : scores[order[j]].cosine;
            if (sj < sx || (sj == sx && order[j] < x)) break;
            order[j + 1] = order[j];
            j--;
        }
        order[j + 1] = x;
    }
}
