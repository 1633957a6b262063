/* Calibration: the capture forward matches model_eval, its callbacks carry
 * the right shapes and values, tensor names map to the right statistics, and
 * importance-weighted quantization lowers the activation-weighted error. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tl_test.h"

#include "model/capture.h"
#include "model/model.h"
#include "quant/awq_calib.h"
#include "quant/quantize.h"
#include "quant/types.h"

static model_t *M;

static const char *model_path(void) {
    const char *p = getenv("TASKLM_MODEL");
    return p ? p : "models/smollm2-135m-instruct-q4_1.gguf";
}

typedef struct {
    int calls[4], bad_dim, n_tokens;
    int dim[4];
    double attn_in_ss; /* sum of squares of the layer-0 ATTN_IN rows */
} cap_log_t;

static int cap_log(void *ud, int layer, capture_slot_t slot, const float *x, int n, int dim) {
    cap_log_t *g = ud;
    g->calls[slot]++;
    if (dim != g->dim[slot] || n != g->n_tokens) g->bad_dim++;
    if (layer == 0 && slot == CAPTURE_ATTN_IN)
        for (long i = 0; i < (long)n * dim; i++) g->attn_in_ss += (double)x[i] * x[i];
    return 0;
}

static int cap_stop(void *ud, int layer, capture_slot_t slot, const float *x, int n, int dim) {
    return layer == 2 && slot == CAPTURE_FFN_IN;
}

TEST(capture_matches_forward) {
    const model_config_t *cf = model_config(M);
    int32_t toks[12] = {1, 504, 3458, 282, 4649, 314, 253, 1789, 28, 198, 5248, 42};
    model_ctx_t *a = NULL, *b = NULL;
    tl_err_t err;
    CHECK_EQ_INT(model_ctx_new(&a, M, 64, &err), 0);
    CHECK_EQ_INT(model_ctx_new(&b, M, 64, &err), 0);
    cap_log_t g = {.n_tokens = 11};
    g.dim[CAPTURE_ATTN_IN] = g.dim[CAPTURE_FFN_IN] = (int)cf->n_embd;
    g.dim[CAPTURE_ATTN_OUT] = (int)(cf->n_head * cf->head_dim);
    g.dim[CAPTURE_FFN_DOWN] = (int)cf->n_ff;
    CHECK_EQ_INT(model_capture_eval(a, toks, 11, cap_log, &g, &err), 0);
    for (int s = 0; s < 4; s++) CHECK_EQ_INT(g.calls[s], (int)cf->n_layer);
    CHECK_EQ_INT(g.bad_dim, 0);
    /* RMS-normalised rows times a norm weight: clearly non-zero */
    CHECK(g.attn_in_ss > 1.0);
    CHECK_EQ_INT(model_eval(b, toks, 11, NULL, false, &err), 0);
    float *la = malloc(sizeof(float) * cf->n_vocab), *lb = malloc(sizeof(float) * cf->n_vocab);
    CHECK_EQ_INT(model_eval(a, toks + 11, 1, la, false, &err), 0);
    CHECK_EQ_INT(model_eval(b, toks + 11, 1, lb, false, &err), 0);
    double md = 0;
    for (uint32_t i = 0; i < cf->n_vocab; i++) md = fmax(md, fabs((double)la[i] - lb[i]));
    CHECK(md == 0.0); /* same arithmetic, same thread count: bit-identical caches */
    /* a callback that stops: an error naming the layer, cache unchanged */
    model_ctx_truncate(a, 0);
    CHECK_EQ_INT(model_capture_eval(a, toks, 4, cap_stop, NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "layer 2");
    CHECK_EQ_INT(model_ctx_pos(a), 0);
    CHECK_EQ_INT(model_capture_eval(a, toks, 0, cap_log, &g, &err), -1);
    int32_t bad = (int32_t)cf->n_vocab;
    CHECK_EQ_INT(model_capture_eval(a, &bad, 1, cap_log, &g, &err), -1);
    CHECK_CONTAINS(err.msg, "out of range");
    free(la);
    free(lb);
    model_ctx_free(a);
    model_ctx_free(b);
}

TEST(importance_names) {
    int dim[4] = {8, 16, 8, 32};
    calib_t *c = NULL;
    tl_err_t err;
    CHECK_EQ_INT(calib_from_stats(&c, 3, dim, &err), 0);
    calib_stats(c, 2, 1)[5] = 7.0f;
    calib_stats(c, 1, 3)[31] = 3.0f;
    calib_stats(c, 0, 2)[0] = 2.0f;
    calib_stats(c, 0, 0)[0] = 1.0f;
    CHECK(calib_importance(c, "blk.2.attn_output.weight", 16) == calib_stats(c, 2, 1));
    CHECK(calib_importance(c, "blk.2.attn_output.weight", 16)[5] == 7.0f);
    CHECK(calib_importance(c, "blk.1.ffn_down.weight", 32)[31] == 3.0f);
    CHECK(calib_importance(c, "blk.0.ffn_up.weight", 8)[0] == 2.0f);
    CHECK(calib_importance(c, "blk.0.ffn_gate.weight", 8)[0] == 2.0f);
    CHECK(calib_importance(c, "blk.0.attn_v.weight", 8)[0] == 1.0f);
    CHECK(calib_importance(c, "blk.0.attn_q.weight", 8) == calib_importance(c, "blk.0.attn_k.weight", 8));
    CHECK(calib_importance(c, "blk.0.attn_q.weight", 16) == NULL); /* column count differs */
    CHECK(calib_importance(c, "blk.3.attn_q.weight", 8) == NULL);  /* no such layer */
    CHECK(calib_importance(c, "token_embd.weight", 8) == NULL);
    CHECK(calib_importance(c, "blk.0.attn_norm.weight", 8) == NULL);
    CHECK(calib_importance(c, "blk.0.attn_q.weight.x", 8) == NULL);
    CHECK(calib_stats(c, 3, 0) == NULL);
    CHECK(calib_stats(c, 0, 4) == NULL);
    calib_free(c);
}

/* sum_rows sum_i imp_i (w_i - q_i)^2 = E||x W^T - x Q^T||^2 for independent
 * zero-mean inputs with E[x_i^2] = imp_i: the output error calibration aims at. */
static double weighted_err(uint32_t type, const float *w, const float *imp, const float *qimp, int n, int rows) {
    size_t rb;
    tl_err_t err;
    ggml_row_bytes(type, n, &rb, &err);
    void *buf = malloc(rb);
    float *y = malloc(sizeof(float) * (size_t)n);
    double e = 0;
    for (int r = 0; r < rows; r++) {
        quantize_row(type, w + (size_t)r * n, buf, n, qimp, &err);
        dequantize_row(type, buf, y, n, &err);
        for (int i = 0; i < n; i++) {
            double d = (double)y[i] - w[(size_t)r * n + i];
            e += imp[i] * d * d;
        }
    }
    free(buf);
    free(y);
    return e;
}

TEST(importance_lowers_output_error) {
    enum { N = 512, R = 64 };
    float *w = malloc(sizeof(float) * N * R), imp[N];
    unsigned s = 12345;
    for (int i = 0; i < N * R; i++) {
        s = s * 1103515245u + 12345u;
        w[i] = ((float)((s >> 8) & 0xffff) / 65536.0f - 0.5f) * 0.2f;
    }
    /* a few outlier channels, as in real activations */
    for (int i = 0; i < N; i++) imp[i] = (i % 37 == 0) ? 100.0f : 0.5f + (float)(i % 7) * 0.1f;
    uint32_t types[] = {GGML_TYPE_IQ4_NL, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K};
    for (int t = 0; t < 3; t++) {
        double plain = weighted_err(types[t], w, imp, NULL, N, R);
        double cal = weighted_err(types[t], w, imp, imp, N, R);
        CHECK(cal < plain * 0.9);
    }
    free(w);
}

int main(void) {
    tl_err_t err;
    RUN(importance_names);
    RUN(importance_lowers_output_error);
    if (model_load(&M, model_path(), 1, &err)) {
        printf("cannot load %s: %s\n", model_path(), err.msg);
        printf("RESULT passed=0 failed=1\n");
        return 1;
    }
    RUN(capture_matches_forward);
    model_free(M);
    return tl_test_summary("test_calib");
}
