/* model_capture_eval: the forward pass of forward.c with a callback on the
 * input of each weight matrix (see capture.h). */
#include "model/capture.h"

#include <math.h>
#include <string.h>

#include "model/kernels.h"
#include "model/model_internal.h"
#include "quant/types.h"

int capture_slot_tensors(capture_slot_t slot, const char *names[3]) {
    switch (slot) {
    case CAPTURE_ATTN_IN: names[0] = "attn_q"; names[1] = "attn_k"; names[2] = "attn_v"; return 3;
    case CAPTURE_ATTN_OUT: names[0] = "attn_output"; return 1;
    case CAPTURE_FFN_IN: names[0] = "ffn_gate"; names[1] = "ffn_up"; return 2;
    case CAPTURE_FFN_DOWN: names[0] = "ffn_down"; return 1;
    default: return 0;
    }
}

typedef struct {
    model_ctx_t *c;
    int layer, n, pos0;
} cap_attn_job_t;

static void cap_attention_job(void *arg, int ith, int nth) {
    cap_attn_job_t *j = arg;
    model_ctx_t *c = j->c;
    const model_config_t *cf = &c->m->cfg;
    int H = (int)cf->n_head, hd = (int)cf->head_dim, group = (int)(cf->n_head / cf->n_head_kv);
    long KV = (long)cf->n_head_kv * hd, Q = (long)H * hd;
    const float *kc = c->k_cache + (size_t)j->layer * c->n_ctx * KV;
    const float *vc = c->v_cache + (size_t)j->layer * c->n_ctx * KV;
    float scale = 1.0f / sqrtf((float)hd);
    float *scores = c->scores + (size_t)ith * c->n_ctx;
    long i0, i1;
    threadpool_split((long)j->n * H, ith, nth, &i0, &i1);
    for (long i = i0; i < i1; i++) {
        int t = (int)(i / H), h = (int)(i % H), kvh = h / group;
        attention_forward(c->att + t * Q + (long)h * hd, c->q + t * Q + (long)h * hd, kc + (long)kvh * hd,
                          vc + (long)kvh * hd, j->pos0 + t + 1, hd, KV, scale, scores, 1, c->m->level);
    }
}

static void cap_round_fp16(float *x, long n) {
    for (long i = 0; i < n; i++) x[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
}

static void cap_add_bias(float *x, const float *b, int n_tokens, long dim) {
    if (!b) return;
    for (int t = 0; t < n_tokens; t++)
        for (long i = 0; i < dim; i++) x[t * dim + i] += b[i];
}

static int stop(tl_err_t *err, int layer) { return tl_fail(err, "activation capture stopped at layer %d", layer); }

static int capture_chunk(model_ctx_t *c, const int32_t *tokens, int n, capture_fn fn, void *ud, tl_err_t *err) {
    const model_t *m = c->m;
    const model_config_t *cf = &m->cfg;
    long E = cf->n_embd, Q = (long)cf->n_head * cf->head_dim, KV = (long)cf->n_head_kv * cf->head_dim, F = cf->n_ff;
    int pos0 = c->n_pos;
    mm_env_t env = {.pool = m->pool, .level = m->level, .scratch = c->mm_scratch, .scratch_bytes = c->mm_scratch_bytes};
    for (int t = 0; t < n; t++) {
        const void *row = (const char *)m->tok_embd->data + (size_t)tokens[t] * m->tok_embd_row_bytes;
        if (m->tok_embd->type == GGML_TYPE_F32) memcpy(c->x + t * E, row, sizeof(float) * (size_t)E);
        else if (dequantize_row(m->tok_embd->type, row, c->x + t * E, E, err))
            return tl_fail_prefix(err, "tensor token_embd.weight");
        rope_table(c->rope + (long)t * cf->n_rot, pos0 + t, (int)cf->n_rot, cf->rope_freq_base);
    }
    for (uint32_t l = 0; l < cf->n_layer; l++) {
        const layer_t *L = &m->layers[l];
        float *kc = c->k_cache + ((size_t)l * c->n_ctx + pos0) * KV;
        float *vc = c->v_cache + ((size_t)l * c->n_ctx + pos0) * KV;
        for (int t = 0; t < n; t++) rmsnorm_forward(c->xn + t * E, c->x + t * E, L->attn_norm, (int)E, cf->rms_eps);
        if (fn(ud, (int)l, CAPTURE_ATTN_IN, c->xn, n, (int)E)) return stop(err, (int)l);
        if (matmul_forward(c->q, c->xn, &L->wq, n, &env, err) || matmul_forward(c->k, c->xn, &L->wk, n, &env, err) ||
            matmul_forward(c->v, c->xn, &L->wv, n, &env, err))
            return -1;
        cap_add_bias(c->q, L->bq, n, Q);
        cap_add_bias(c->k, L->bk, n, KV);
        cap_add_bias(c->v, L->bv, n, KV);
        for (int t = 0; t < n; t++) {
            const float *cs = c->rope + (long)t * cf->n_rot;
            rope_forward(c->q + t * Q, (int)cf->n_head, (int)cf->head_dim, (int)cf->n_rot, cs, 0);
            rope_forward(c->k + t * KV, (int)cf->n_head_kv, (int)cf->head_dim, (int)cf->n_rot, cs, 0);
        }
        cap_round_fp16(c->q, n * Q);
        cap_round_fp16(c->k, n * KV);
        cap_round_fp16(c->v, n * KV);
        memcpy(kc, c->k, sizeof(float) * (size_t)(n * KV));
        memcpy(vc, c->v, sizeof(float) * (size_t)(n * KV));
        cap_attn_job_t aj = {.c = c, .layer = (int)l, .n = n, .pos0 = pos0};
        threadpool_run(m->pool, cap_attention_job, &aj);
        if (fn(ud, (int)l, CAPTURE_ATTN_OUT, c->att, n, (int)Q)) return stop(err, (int)l);
        if (matmul_forward(c->o, c->att, &L->wo, n, &env, err)) return -1;
        for (long i = 0; i < n * E; i++) c->x[i] += c->o[i];
        for (int t = 0; t < n; t++) rmsnorm_forward(c->xn + t * E, c->x + t * E, L->ffn_norm, (int)E, cf->rms_eps);
        if (fn(ud, (int)l, CAPTURE_FFN_IN, c->xn, n, (int)E)) return stop(err, (int)l);
        if (matmul_forward(c->g, c->xn, &L->w_gate, n, &env, err) || matmul_forward(c->u, c->xn, &L->w_up, n, &env, err))
            return -1;
        swiglu_forward(c->g, c->u, (int)(n * F));
        if (fn(ud, (int)l, CAPTURE_FFN_DOWN, c->g, n, (int)F)) return stop(err, (int)l);
        if (matmul_forward(c->o, c->g, &L->w_down, n, &env, err)) return -1;
        for (long i = 0; i < n * E; i++) c->x[i] += c->o[i];
    }
    memcpy(c->tokens + pos0, tokens, sizeof(int32_t) * (size_t)n);
    c->n_pos = pos0 + n;
    return 0;
}

int model_capture_eval(model_ctx_t *c, const int32_t *tokens, int n, capture_fn fn, void *ud, tl_err_t *err) {
    const model_config_t *cf = &c->m->cfg;
    if (n <= 0) return tl_fail(err, "model_capture_eval: no tokens");
    if (n > c->n_ctx - c->n_pos)
        return tl_fail(err, "%d tokens do not fit in the context: %d of %d positions are used", n, c->n_pos, c->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= cf->n_vocab)
            return tl_fail(err, "token %d (id %d): out of range for a vocabulary of %u", i, tokens[i], cf->n_vocab);
    int start_pos = c->n_pos;
    for (int done = 0; done < n;) {
        int k = n - done < c->n_ub ? n - done : c->n_ub;
        if (capture_chunk(c, tokens + done, k, fn, ud, err)) {
            c->n_pos = start_pos;
            return -1;
        }
        done += k;
    }
    return 0;
}
