/* The forward pass: a context (KV cache and scratch) and model_eval. A call
 * processes its tokens in chunks of at most MODEL_UBATCH, each in one batched
 * pass (matrix-matrix products); a single token is a matrix-vector pass. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels.h"
#include "model/model_internal.h"
#include "quant/types.h"

static void *alloc_floats(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p) memset(p, 0, bytes ? bytes : 64);
    return p;
}

int model_ctx_new(model_ctx_t **out, const model_t *m, int n_ctx, tl_err_t *err) {
    *out = NULL;
    const model_config_t *cf = &m->cfg;
    if (n_ctx <= 0) return tl_fail(err, "context size %d: must be positive", n_ctx);
    model_ctx_t *c = calloc(1, sizeof *c);
    if (!c) return tl_fail(err, "context: out of memory");
    c->m = m;
    c->n_ctx = n_ctx;
    c->n_ub = n_ctx < MODEL_UBATCH ? n_ctx : MODEL_UBATCH;
    size_t E = cf->n_embd, Q = (size_t)cf->n_head * cf->head_dim, KV = (size_t)cf->n_head_kv * cf->head_dim;
    size_t ub = (size_t)c->n_ub, F = cf->n_ff;
    size_t nth = (size_t)threadpool_n_threads(m->pool);
    size_t kv_floats = (size_t)cf->n_layer * (size_t)n_ctx * KV;
    size_t max_in = E > F ? E : F;
    if (Q > max_in) max_in = Q;
    c->mm_scratch_bytes = matmul_scratch_bytes((int64_t)max_in, c->n_ub);
    c->tokens = calloc((size_t)n_ctx, sizeof *c->tokens);
    c->k_cache = alloc_floats(kv_floats);
    c->v_cache = alloc_floats(kv_floats);
    c->x = alloc_floats(ub * E);
    c->xn = alloc_floats(ub * E);
    c->q = alloc_floats(ub * Q);
    c->k = alloc_floats(ub * KV);
    c->v = alloc_floats(ub * KV);
    c->att = alloc_floats(ub * Q);
    c->o = alloc_floats(ub * E);
    c->g = alloc_floats(ub * F);
    c->u = alloc_floats(ub * F);
    c->rope = alloc_floats(ub * cf->n_rot);
    c->scores = alloc_floats(nth * (size_t)n_ctx);
    c->mm_scratch = aligned_alloc(64, (c->mm_scratch_bytes + 63) & ~(size_t)63);
    if (!c->tokens || !c->k_cache || !c->v_cache || !c->x || !c->xn || !c->q || !c->k || !c->v || !c->att ||
        !c->o || !c->g || !c->u || !c->rope || !c->scores || !c->mm_scratch) {
        model_ctx_free(c);
        return tl_fail(err, "context of %d tokens: out of memory (KV cache %zu MiB)", n_ctx,
                       2 * kv_floats * sizeof(float) >> 20);
    }
    *out = c;
    return 0;
}

void model_ctx_free(model_ctx_t *c) {
    if (!c) return;
    free(c->tokens);
    free(c->k_cache);
    free(c->v_cache);
    free(c->x);
    free(c->xn);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->att);
    free(c->o);
    free(c->g);
    free(c->u);
    free(c->rope);
    free(c->scores);
    free(c->mm_scratch);
    free(c);
}

int model_ctx_pos(const model_ctx_t *c) { return c->n_pos; }
int model_ctx_size(const model_ctx_t *c) { return c->n_ctx; }
const model_t *model_ctx_model(const model_ctx_t *c) { return c->m; }
const int32_t *model_ctx_tokens(const model_ctx_t *c) { return c->tokens; }

void model_ctx_truncate(model_ctx_t *c, int n_pos) {
    if (n_pos < 0) n_pos = 0;
    if (n_pos < c->n_pos) c->n_pos = n_pos;
}

typedef struct {
    model_ctx_t *c;
    int layer, n, pos0;
} attn_job_t;

static void attention_job(void *arg, int ith, long i0, long i1) {
    attn_job_t *j = arg;
    model_ctx_t *c = j->c;
    const model_config_t *cf = &c->m->cfg;
    int H = (int)cf->n_head, hd = (int)cf->head_dim, group = (int)(cf->n_head / cf->n_head_kv);
    long KV = (long)cf->n_head_kv * hd, Q = (long)H * hd;
    const float *kc = c->k_cache + (size_t)j->layer * c->n_ctx * KV;
    const float *vc = c->v_cache + (size_t)j->layer * c->n_ctx * KV;
    float scale = 1.0f / sqrtf((float)hd);
    float *scores = c->scores + (size_t)ith * c->n_ctx;
    for (long i = i0; i < i1; i++) {
        int t = (int)(i / H), h = (int)(i % H), kvh = h / group;
        attention_forward(c->att + t * Q + (long)h * hd, c->q + t * Q + (long)h * hd, kc + (long)kvh * hd,
                          vc + (long)kvh * hd, j->pos0 + t + 1, hd, KV, scale, scores, 1, c->m->level);
    }
}


static void add_bias(float *x, const float *b, int n_tokens, long dim) {
    if (!b) return;
    for (int t = 0; t < n_tokens; t++)
        for (long i = 0; i < dim; i++) x[t * dim + i] += b[i];
}

/* One chunk of n <= n_ub tokens at c->n_pos. logits: NULL, n rows (all) or 1 row (last). */
static int eval_chunk(model_ctx_t *c, const int32_t *tokens, int n, float *logits, bool all, tl_err_t *err) {
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
    if (c->trace) memcpy(c->trace, c->x, sizeof(float) * (size_t)(n * E));
    for (uint32_t l = 0; l < cf->n_layer; l++) {
        const layer_t *L = &m->layers[l];
        float *kc = c->k_cache + ((size_t)l * c->n_ctx + pos0) * KV;
        float *vc = c->v_cache + ((size_t)l * c->n_ctx + pos0) * KV;
        for (int t = 0; t < n; t++) rmsnorm_forward(c->xn + t * E, c->x + t * E, L->attn_norm, (int)E, cf->rms_eps);
        float *qkv[3] = {c->q, c->k, c->v};
        const mm_weight_t *wqkv[3] = {&L->wq, &L->wk, &L->wv};
        if (matmul_forward_n(qkv, c->xn, wqkv, 3, n, &env, err)) return -1;
        add_bias(c->q, L->bq, n, Q);
        add_bias(c->k, L->bk, n, KV);
        add_bias(c->v, L->bv, n, KV);
        for (int t = 0; t < n; t++) {
            const float *cs = c->rope + (long)t * cf->n_rot;
            rope_forward(c->q + t * Q, (int)cf->n_head, (int)cf->head_dim, (int)cf->n_rot, cs, 0);
            rope_forward(c->k + t * KV, (int)cf->n_head_kv, (int)cf->head_dim, (int)cf->n_rot, cs, 0);
        }
        /* The cache holds fp16-precision values, like llama.cpp's default F16
         * cache (which also rounds q for the K dot product); matching that
         * rounding keeps greedy decisions aligned with it. */
        round_fp16_forward(c->q, n * Q, m->level);
        round_fp16_forward(c->k, n * KV, m->level);
        round_fp16_forward(c->v, n * KV, m->level);
        memcpy(kc, c->k, sizeof(float) * (size_t)(n * KV));
        memcpy(vc, c->v, sizeof(float) * (size_t)(n * KV));
        attn_job_t aj = {.c = c, .layer = (int)l, .n = n, .pos0 = pos0};
        threadpool_for(m->pool, (long)n * cf->n_head, attn_grain(n * (long)cf->n_head, m->pool), attention_job, &aj);
        if (matmul_forward(c->o, c->att, &L->wo, n, &env, err)) return -1;
        for (long i = 0; i < n * E; i++) c->x[i] += c->o[i];
        for (int t = 0; t < n; t++) rmsnorm_forward(c->xn + t * E, c->x + t * E, L->ffn_norm, (int)E, cf->rms_eps);
        float *gu[2] = {c->g, c->u};
        const mm_weight_t *wgu[2] = {&L->w_gate, &L->w_up};
        if (matmul_forward_n(gu, c->xn, wgu, 2, n, &env, err)) return -1;
        swiglu_forward(c->g, c->u, (int)(n * F));
        if (matmul_forward(c->o, c->g, &L->w_down, n, &env, err)) return -1;
        for (long i = 0; i < n * E; i++) c->x[i] += c->o[i];
        if (c->trace) memcpy(c->trace + (size_t)(l + 1) * (size_t)(n * E), c->x, sizeof(float) * (size_t)(n * E));
    }
    memcpy(c->tokens + pos0, tokens, sizeof(int32_t) * (size_t)n);
    c->n_pos = pos0 + n;
    if (!logits) return 0;
    int first = all ? 0 : n - 1, rows = all ? n : 1;
    for (int t = first; t < n; t++)
        rmsnorm_forward(c->xn + (t - first) * E, c->x + t * E, m->output_norm, (int)E, cf->rms_eps);
    return matmul_forward(logits, c->xn, model_output_weight(m), rows, &env, err);
}

int model_eval(model_ctx_t *c, const int32_t *tokens, int n, float *logits, bool all_logits, tl_err_t *err) {
    const model_config_t *cf = &c->m->cfg;
    if (n <= 0) return tl_fail(err, "model_eval: no tokens");
    if (n > c->n_ctx - c->n_pos)
        return tl_fail(err, "%d tokens do not fit in the context: %d of %d positions are used", n, c->n_pos, c->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= cf->n_vocab)
            return tl_fail(err, "token %d (id %d): out of range for a vocabulary of %u", i, tokens[i], cf->n_vocab);
    int start_pos = c->n_pos;
    for (int done = 0; done < n;) {
        int k = n - done < c->n_ub ? n - done : c->n_ub;
        bool last = done + k == n;
        float *lg = NULL;
        if (logits && all_logits) lg = logits + (size_t)done * cf->n_vocab;
        else if (logits && last) lg = logits;
        if (eval_chunk(c, tokens + done, k, lg, all_logits, err)) {
            c->n_pos = start_pos; /* the cache beyond start_pos is not trusted */
            return -1;
        }
        done += k;
    }
    return 0;
}
