/* FFN channel importance and selection (see prune_ffn.h). */
#include "model/prune_ffn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/capture.h"
#include "quant/types.h"

typedef struct {
    int n_layer, n_ff;
    double *sum_abs, *sum_sq; /* n_layer * n_ff */
} ffn_acc_t;

static int ffn_accumulate(void *ud, int layer, capture_slot_t slot, const float *x, int n, int dim) {
    ffn_acc_t *a = ud;
    if (slot != CAPTURE_FFN_DOWN) return 0;
    if (dim != a->n_ff || layer < 0 || layer >= a->n_layer) return 1;
    double *sa = a->sum_abs + (size_t)layer * (size_t)dim, *sq = a->sum_sq + (size_t)layer * (size_t)dim;
    for (int t = 0; t < n; t++) {
        const float *h = x + (size_t)t * (size_t)dim;
        for (int j = 0; j < dim; j++) {
            sa[j] += fabs((double)h[j]);
            sq[j] += (double)h[j] * h[j];
        }
    }
    return 0;
}

int prune_ffn_down_norms(const gguf_tensor_t *down, double *norms, tl_err_t *err) {
    int64_t F = down->ne[0], E = down->ne[1];
    if (down->n_dims != 2 || F <= 0 || E <= 0) return tl_fail(err, "tensor %s: expected a 2-D matrix", down->name);
    if (down->type != GGML_TYPE_F32 && !ggml_type_can_dequantize(down->type))
        return tl_fail(err, "tensor %s: cannot read type %s", down->name,
                       ggml_type_name(down->type) ? ggml_type_name(down->type) : "unknown");
    size_t rb;
    if (ggml_row_bytes(down->type, F, &rb, err)) return tl_fail_prefix(err, "tensor %s", down->name);
    if ((uint64_t)rb * (uint64_t)E > down->nbytes) return tl_fail(err, "tensor %s: data shorter than its shape", down->name);
    float *row = malloc(sizeof(float) * (size_t)F);
    if (!row) return tl_fail(err, "tensor %s: out of memory", down->name);
    for (int64_t j = 0; j < F; j++) norms[j] = 0;
    for (int64_t r = 0; r < E; r++) {
        const char *src = (const char *)down->data + (size_t)r * rb;
        if (down->type == GGML_TYPE_F32) memcpy(row, src, sizeof(float) * (size_t)F);
        else if (dequantize_row(down->type, src, row, F, err)) {
            free(row);
            return tl_fail_prefix(err, "tensor %s", down->name);
        }
        for (int64_t j = 0; j < F; j++) norms[j] += (double)row[j] * row[j];
    }
    for (int64_t j = 0; j < F; j++) norms[j] = sqrt(norms[j]);
    free(row);
    return 0;
}

int prune_ffn_score(const model_t *m, const prune_calib_t *cal, double *score, float *act_sq, tl_err_t *err) {
    const model_config_t *cf = model_config(m);
    int L = (int)cf->n_layer, F = (int)cf->n_ff;
    if (cal->n_prompts <= 0) return tl_fail(err, "prune: no calibration prompts");
    size_t nn = (size_t)L * (size_t)F;
    ffn_acc_t a = {.n_layer = L, .n_ff = F, .sum_abs = calloc(nn, sizeof(double)), .sum_sq = calloc(nn, sizeof(double))};
    double *norms = malloc(sizeof(double) * (size_t)F);
    int n_max = 0, rc = 0;
    for (int i = 0; i < cal->n_prompts; i++)
        if (cal->prompt_lens[i] > n_max) n_max = cal->prompt_lens[i];
    model_ctx_t *c = NULL;
    if (!a.sum_abs || !a.sum_sq || !norms) rc = tl_fail(err, "prune: out of memory");
    if (!rc) rc = model_ctx_new(&c, m, n_max, err);
    long n_tok = 0;
    for (int i = 0; i < cal->n_prompts && !rc; i++) {
        model_ctx_truncate(c, 0);
        rc = model_capture_eval(c, cal->prompts[i], cal->prompt_lens[i], ffn_accumulate, &a, err);
        n_tok += cal->prompt_lens[i];
        if (!rc && cal->progress) cal->progress(cal->progress_ctx, i + 1, cal->n_prompts);
    }
    model_ctx_free(c);
    for (int l = 0; l < L && !rc; l++) {
        char name[96];
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
        const gguf_tensor_t *t = gguf_find_tensor(model_gguf(m), name);
        if (!t) {
            rc = tl_fail(err, "%s: no tensor %s", gguf_path(model_gguf(m)), name);
            break;
        }
        if (t->ne[0] != F) {
            rc = tl_fail(err, "tensor %s: %lld columns, expected n_ff = %d", name, (long long)t->ne[0], F);
            break;
        }
        rc = prune_ffn_down_norms(t, norms, err);
        for (int j = 0; j < F && !rc; j++) {
            size_t k = (size_t)l * (size_t)F + (size_t)j;
            score[k] = a.sum_abs[k] / (double)n_tok * norms[j];
            if (act_sq) act_sq[k] = (float)(a.sum_sq[k] / (double)n_tok);
        }
    }
    free(a.sum_abs);
    free(a.sum_sq);
    free(norms);
    return rc;
}

typedef struct {
    double s;
    int j;
} ranked_t;

/* higher score first; ties: lower index first */
static int by_score_desc(const void *pa, const void *pb) {
    const ranked_t *a = pa, *b = pb;
    if (a->s != b->s) return a->s > b->s ? -1 : 1;
    return (a->j > b->j) - (a->j < b->j);
}

static int by_int(const void *pa, const void *pb) {
    int a = *(const int *)pa, b = *(const int *)pb;
    return (a > b) - (a < b);
}

int prune_ffn_select(const double *score, int n_ff, int n_keep, int *kept, tl_err_t *err) {
    if (n_ff <= 0 || n_keep <= 0 || n_keep > n_ff)
        return tl_fail(err, "prune: cannot keep %d of %d FFN channels", n_keep, n_ff);
    ranked_t *r = malloc(sizeof *r * (size_t)n_ff);
    if (!r) return tl_fail(err, "prune: out of memory");
    for (int j = 0; j < n_ff; j++) {
        if (!isfinite(score[j])) {
            free(r);
            return tl_fail(err, "prune: FFN channel %d has a non-finite importance", j);
        }
        r[j] = (ranked_t){score[j], j};
    }
    qsort(r, (size_t)n_ff, sizeof *r, by_score_desc);
    for (int i = 0; i < n_keep; i++) kept[i] = r[i].j;
    free(r);
    qsort(kept, (size_t)n_keep, sizeof *kept, by_int);
    return 0;
}
