/* Multi-sequence evaluation over a shared cached prefix (see batch.h). The
 * per-token arithmetic is the one of forward.c (same kernels, same fp16
 * rounding of q/k/v and of the attention probabilities, same summation
 * order), so a token's results do not depend on the batch it is in. */
#include "model/batch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels.h"
#include "model/model_internal.h"
#include "quant/matmul_amx.h"
#include "quant/types.h"

struct model_batch {
    const model_t *m;
    int max_tokens, max_depth, max_prefix;
    int n_last; /* tokens of the last successful model_batch_eval (hidden states in x) */
    bool amx;   /* Q8_0 matmuls on the AMX tiles (matmul_amx.h) */
    float *x, *xn, *q, *k, *v, *att, *o, *g, *u, *rope;
    float *xc;         /* last layer: the hidden states of the rows that need outputs, packed */
    int *out_rows;     /* last layer: the tokens whose outputs are computed (model_batch_eval_rows) */
    unsigned char *has_out; /* has_out[t]: token t's final hidden state is in x */
    float *scores;     /* n_threads * (max_prefix + max_depth) */
    int *anc;          /* max_tokens * max_depth: ancestors of each token, oldest first, itself last */
    int *anc_len, *n_pre;
    void *mm_scratch;
    size_t mm_scratch_bytes;
};

struct model_head {
    mm_weight_t w;
    void *data;
    int n;
};

static void *alloc_floats(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p) memset(p, 0, bytes ? bytes : 64);
    return p;
}

int model_batch_new(model_batch_t **out, const model_t *m, int max_tokens, int max_depth, int max_prefix,
                    tl_err_t *err) {
    *out = NULL;
    if (max_tokens <= 0 || max_depth <= 0 || max_prefix < 0 || max_tokens > (1 << 20) || max_depth > (1 << 20))
        return tl_fail(err, "model batch: bad sizes (%d tokens, depth %d, prefix %d)", max_tokens, max_depth, max_prefix);
    const model_config_t *cf = &m->cfg;
    model_batch_t *b = calloc(1, sizeof *b);
    if (!b) return tl_fail(err, "model batch: out of memory");
    b->m = m;
    b->max_tokens = max_tokens;
    b->max_depth = max_depth;
    b->max_prefix = max_prefix;
    size_t E = cf->n_embd, Q = (size_t)cf->n_head * cf->head_dim, KV = (size_t)cf->n_head_kv * cf->head_dim;
    size_t T = (size_t)max_tokens, F = cf->n_ff, nth = (size_t)threadpool_n_threads(m->pool);
    size_t max_in = E > F ? E : F;
    if (Q > max_in) max_in = Q;
    b->mm_scratch_bytes = matmul_scratch_bytes((int64_t)max_in, max_tokens);
    b->x = alloc_floats(T * E);
    b->xn = alloc_floats(T * E);
    b->q = alloc_floats(T * Q);
    b->k = alloc_floats(T * KV);
    b->v = alloc_floats(T * KV);
    b->att = alloc_floats(T * Q);
    b->o = alloc_floats(T * E);
    b->g = alloc_floats(T * F);
    b->u = alloc_floats(T * F);
    b->rope = alloc_floats(T * cf->n_rot);
    b->xc = alloc_floats(T * E);
    b->out_rows = calloc(T, sizeof *b->out_rows);
    b->has_out = calloc(T, 1);
    b->scores = alloc_floats(nth * (size_t)(max_prefix + max_depth));
    b->anc = calloc(T * (size_t)max_depth, sizeof *b->anc);
    b->anc_len = calloc(T, sizeof *b->anc_len);
    b->n_pre = calloc(T, sizeof *b->n_pre);
    b->mm_scratch = aligned_alloc(64, (b->mm_scratch_bytes + 63) & ~(size_t)63);
    if (!b->x || !b->xn || !b->q || !b->k || !b->v || !b->att || !b->o || !b->g || !b->u || !b->rope || !b->xc || !b->out_rows || !b->has_out || !b->scores ||
        !b->anc || !b->anc_len || !b->n_pre || !b->mm_scratch) {
        model_batch_free(b);
        return tl_fail(err, "model batch of %d tokens: out of memory", max_tokens);
    }
    *out = b;
    return 0;
}

void model_batch_free(model_batch_t *b) {
    if (!b) return;
    free(b->x);
    free(b->xn);
    free(b->q);
    free(b->k);
    free(b->v);
    free(b->att);
    free(b->o);
    free(b->g);
    free(b->u);
    free(b->rope);
    free(b->xc);
    free(b->out_rows);
    free(b->has_out);
    free(b->scores);
    free(b->anc);
    free(b->anc_len);
    free(b->n_pre);
    free(b->mm_scratch);
    free(b);
}

int model_batch_max_tokens(const model_batch_t *b) { return b->max_tokens; }

bool model_batch_use_amx(model_batch_t *b, bool on) {
    b->amx = on && mm_amx_available();
    return b->amx;
}

int model_head_new(model_head_t **out, const model_t *m, const int32_t *ids, int n, tl_err_t *err) {
    *out = NULL;
    const mm_weight_t *o = &m->output;
    if (n <= 0) return tl_fail(err, "model head: no ids");
    for (int k = 0; k < n; k++)
        if (ids[k] < 0 || ids[k] >= o->n_out)
            return tl_fail(err, "model head: id %d is out of range for a vocabulary of %lld", ids[k], (long long)o->n_out);
    model_head_t *h = calloc(1, sizeof *h);
    if (!h) return tl_fail(err, "model head: out of memory");
    h->data = aligned_alloc(64, ((size_t)n * o->row_bytes + 63) & ~(size_t)63);
    if (!h->data) {
        free(h);
        return tl_fail(err, "model head: out of memory");
    }
    for (int k = 0; k < n; k++)
        memcpy((char *)h->data + (size_t)k * o->row_bytes, (const char *)o->data + (size_t)ids[k] * o->row_bytes,
               o->row_bytes);
    h->w = *o;
    h->w.n_out = n;
    h->w.data = h->data;
    h->w.pack = NULL; /* the model's packed copy holds every row; these few go through the plain rows (same bits) */
    h->n = n;
    *out = h;
    return 0;
}

void model_head_free(model_head_t *h) {
    if (!h) return;
    free(h->data);
    free(h);
}

typedef struct {
    model_batch_t *b;
    const model_ctx_t *pc;
    int layer, n;
    const int *rows; /* NULL: item t is token t; else token rows[t], its q and output at packed index t */
} battn_job_t;

/* softmax(scale * K q) V over the token's root prefix rows, then its own
 * ancestors, in position order (the order forward.c sums in). */
static void batch_attention_job(void *arg, int ith, long i0, long i1) {
    battn_job_t *j = arg;
    model_batch_t *b = j->b;
    const model_ctx_t *pc = j->pc;
    const model_t *m = b->m;
    const model_config_t *cf = &m->cfg;
    int H = (int)cf->n_head, hd = (int)cf->head_dim, group = (int)(cf->n_head / cf->n_head_kv);
    long KV = (long)cf->n_head_kv * hd, Q = (long)H * hd;
    const float *kc = pc->k_cache + (size_t)j->layer * pc->n_ctx * KV;
    const float *vc = pc->v_cache + (size_t)j->layer * pc->n_ctx * KV;
    float scale = 1.0f / sqrtf((float)hd);
    float *scores = b->scores + (size_t)ith * (size_t)(b->max_prefix + b->max_depth);
    for (long i = i0; i < i1; i++) {
        int r = (int)(i / H), h = (int)(i % H), kvh = h / group;
        int t = j->rows ? j->rows[r] : r;
        int np = b->n_pre[t], na = b->anc_len[t];
        const int *anc = b->anc + (size_t)t * b->max_depth;
        const float *q = b->q + r * Q + (long)h * hd;
        attention_scores(scores, q, kc + (long)kvh * hd, np, KV, NULL, scale, hd, m->level);
        attention_scores(scores + np, q, b->k + (long)kvh * hd, na, KV, anc, scale, hd, m->level);
        softmax_forward(scores, np + na);
        round_fp16_forward(scores, np + na, m->level);
        float *out = b->att + r * Q + (long)h * hd;
        attention_v_sum(out, scores, np, vc + (long)kvh * hd, KV, NULL, 0, hd, m->level);
        attention_v_sum(out, scores + np, na, b->v + (long)kvh * hd, KV, anc, np > 0, hd, m->level);
    }
}


static void add_bias(float *x, const float *bias, int n_tokens, long dim) {
    if (!bias) return;
    for (int t = 0; t < n_tokens; t++)
        for (long i = 0; i < dim; i++) x[t * dim + i] += bias[i];
}

/* Ancestor lists and prefix lengths; checks ids, parents and sizes. */
static int plan(model_batch_t *b, const model_ctx_t *pc, const model_batch_tok_t *toks, int n, tl_err_t *err) {
    const model_config_t *cf = &b->m->cfg;
    for (int i = 0; i < n; i++) {
        const model_batch_tok_t *t = &toks[i];
        if (t->id < 0 || (uint32_t)t->id >= cf->n_vocab)
            return tl_fail(err, "batch token %d (id %d): out of range for a vocabulary of %u", i, t->id, cf->n_vocab);
        int *anc = b->anc + (size_t)i * b->max_depth;
        if (t->parent < 0) {
            if (t->n_prefix < 0 || t->n_prefix > pc->n_pos || t->n_prefix > b->max_prefix)
                return tl_fail(err, "batch token %d: prefix of %d positions, the context holds %d (at most %d)", i,
                               t->n_prefix, pc->n_pos, b->max_prefix);
            b->n_pre[i] = t->n_prefix;
            b->anc_len[i] = 0;
        } else {
            if (t->parent >= i) return tl_fail(err, "batch token %d: parent %d is not an earlier token", i, t->parent);
            int p = t->parent;
            if (b->anc_len[p] + 1 > b->max_depth)
                return tl_fail(err, "batch token %d: deeper than the batch's limit of %d", i, b->max_depth);
            b->n_pre[i] = b->n_pre[p];
            memcpy(anc, b->anc + (size_t)p * b->max_depth, sizeof(int) * (size_t)b->anc_len[p]);
            b->anc_len[i] = b->anc_len[p];
        }
        anc[b->anc_len[i]++] = i;
    }
    return 0;
}

/* The per-token steps between the matmuls, run over token ranges by both
 * threads (each token's operations are the same whichever thread runs them). */
enum { ST_NORM1, ST_QKV_POST, ST_O_POST, ST_SWIGLU };

typedef struct {
    model_batch_t *b;
    const layer_t *L;
    int stage, n, nq, add_prev;
    const int *rows; /* the q rows' tokens (last block), or NULL */
    float *x;        /* the residual stream of the q rows: b->x, or b->xc packed */
} stage_job_t;

static void stage_range(void *arg, int ith, long i0, long i1) {
    stage_job_t *j = arg;
    model_batch_t *b = j->b;
    const model_t *m = b->m;
    const model_config_t *cf = &m->cfg;
    const layer_t *L = j->L;
    long E = cf->n_embd, Q = (long)cf->n_head * cf->head_dim, KV = (long)cf->n_head_kv * cf->head_dim, F = cf->n_ff;
    for (long t = i0; t < i1; t++) {
        switch (j->stage) {
        case ST_NORM1: /* the previous block's FFN residual, then the attention norm */
            if (j->add_prev)
                for (long i = 0; i < E; i++) b->x[t * E + i] += b->o[t * E + i];
            rmsnorm_forward(b->xn + t * E, b->x + t * E, L->attn_norm, (int)E, cf->rms_eps);
            break;
        case ST_QKV_POST:
            if (t < j->n) {
                add_bias(b->k + t * KV, L->bk, 1, KV);
                add_bias(b->v + t * KV, L->bv, 1, KV);
                rope_forward(b->k + t * KV, (int)cf->n_head_kv, (int)cf->head_dim, (int)cf->n_rot,
                             b->rope + t * cf->n_rot, 0);
                round_fp16_forward(b->k + t * KV, KV, m->level);
                round_fp16_forward(b->v + t * KV, KV, m->level);
            }
            if (t < j->nq) {
                add_bias(b->q + t * Q, L->bq, 1, Q);
                rope_forward(b->q + t * Q, (int)cf->n_head, (int)cf->head_dim, (int)cf->n_rot,
                             b->rope + (long)(j->rows ? j->rows[t] : t) * cf->n_rot, 0);
                round_fp16_forward(b->q + t * Q, Q, m->level);
            }
            break;
        case ST_O_POST: /* the attention residual, then the FFN norm */
            for (long i = 0; i < E; i++) j->x[t * E + i] += b->o[t * E + i];
            rmsnorm_forward(b->xn + t * E, j->x + t * E, L->ffn_norm, (int)E, cf->rms_eps);
            break;
        default: swiglu_forward(b->g + t * F, b->u + t * F, (int)F); break;
        }
    }
}

/* Fewer tokens than this run a norm / rope stage on the calling thread. A dispatch costs a few microseconds,
 * about what the norms, bias and rope of a few tokens take (SwiGLU's exponentials: ~8 us a token); at 64, a
 * lone ~20-token request left the second thread idle for three stages of each block (bench_engine batch 1,
 * two threads, five interleaved rounds on Zen 5: median 8.15 -> 7.69 ms per pass at 8). */
#ifndef STAGE_MIN_ITEMS
#define STAGE_MIN_ITEMS 8
#endif
static void run_stage(stage_job_t *j, int stage, long n_items) {
    const threadpool_t *pool = j->b->m->pool;
    j->stage = stage;
    long grain = n_items / (4L * threadpool_n_threads(pool));
    if (n_items < (stage == ST_SWIGLU ? 2 : STAGE_MIN_ITEMS)) stage_range(j, 0, 0, n_items);
    else threadpool_for(j->b->m->pool, n_items, grain < 1 ? 1 : grain, stage_range, j);
}

/* One block over every token (rows NULL), or the last block restricted to
 * the outputs of n_rows tokens: all tokens' k and v (which those rows attend
 * to), but q, attention, o-proj and FFN only for the rows, packed in b->xc.
 * Per token the operations are the same either way. A block's FFN residual is
 * added at the start of the next block (add_prev), the last block's at its end. */
static int eval_layer(model_batch_t *b, const model_ctx_t *pc, uint32_t l, int n, const int *rows, int n_rows,
                      const mm_env_t *env, tl_err_t *err) {
    const model_t *m = b->m;
    const model_config_t *cf = &m->cfg;
    const layer_t *L = &m->layers[l];
    long E = cf->n_embd;
    int nq = rows ? n_rows : n;
    bool last = l + 1 == cf->n_layer;
    stage_job_t sj = {.b = b, .L = L, .n = n, .nq = nq, .add_prev = l > 0, .rows = rows, .x = b->x};
    run_stage(&sj, ST_NORM1, n);
    if (rows) {
        float *kv[2] = {b->k, b->v};
        const mm_weight_t *wkv[2] = {&L->wk, &L->wv};
        if (matmul_forward_n(kv, b->xn, wkv, 2, n, env, err)) return -1;
        for (int r = 0; r < n_rows; r++) memcpy(b->xc + r * E, b->xn + (long)rows[r] * E, sizeof(float) * (size_t)E);
        if (matmul_forward(b->q, b->xc, &L->wq, n_rows, env, err)) return -1;
    } else {
        float *qkv[3] = {b->q, b->k, b->v};
        const mm_weight_t *wqkv[3] = {&L->wq, &L->wk, &L->wv};
        if (matmul_forward_n(qkv, b->xn, wqkv, 3, n, env, err)) return -1;
    }
    run_stage(&sj, ST_QKV_POST, n);
    battn_job_t aj = {.b = b, .pc = pc, .layer = (int)l, .n = nq, .rows = rows};
    threadpool_for(m->pool, (long)nq * cf->n_head, attn_grain(nq * (long)cf->n_head, m->pool), batch_attention_job, &aj);
    /* the residual stream of the tokens that go on: all of x, or the rows packed in xc */
    if (rows) {
        sj.x = b->xc;
        for (int r = 0; r < n_rows; r++) memcpy(sj.x + r * E, b->x + (long)rows[r] * E, sizeof(float) * (size_t)E);
    }
    if (matmul_forward(b->o, b->att, &L->wo, nq, env, err)) return -1;
    run_stage(&sj, ST_O_POST, nq);
    float *gu[2] = {b->g, b->u};
    const mm_weight_t *wgu[2] = {&L->w_gate, &L->w_up};
    if (matmul_forward_n(gu, b->xn, wgu, 2, nq, env, err)) return -1;
    run_stage(&sj, ST_SWIGLU, nq);
    if (matmul_forward(b->o, b->g, &L->w_down, nq, env, err)) return -1;
    if (last) {
        for (long i = 0; i < nq * E; i++) sj.x[i] += b->o[i];
        if (rows)
            for (int r = 0; r < n_rows; r++) memcpy(b->x + (long)rows[r] * E, sj.x + r * E, sizeof(float) * (size_t)E);
    }
    return 0;
}

int model_batch_eval_rows(model_batch_t *b, const model_ctx_t *pc, const model_batch_tok_t *toks, int n,
                          const int *rows, int n_rows, tl_err_t *err) {
    const model_t *m = b->m;
    const model_config_t *cf = &m->cfg;
    if (pc->m != m) return tl_fail(err, "model batch: the prefix context belongs to another model");
    if (n <= 0) return tl_fail(err, "model batch: no tokens");
    if (n > b->max_tokens) return tl_fail(err, "model batch: %d tokens exceed the batch's %d", n, b->max_tokens);
    b->n_last = 0;
    if (plan(b, pc, toks, n, err)) return -1;
    if (rows) {
        if (n_rows < 0 || n_rows > n) return tl_fail(err, "model batch: %d output rows for %d tokens", n_rows, n);
        memset(b->has_out, 0, (size_t)n);
        int k = 0;
        for (int r = 0; r < n_rows; r++) {
            if (rows[r] < 0 || rows[r] >= n)
                return tl_fail(err, "model batch: output row %d names token %d of %d", r, rows[r], n);
            if (!b->has_out[rows[r]]) b->out_rows[k++] = rows[r]; /* each token once */
            b->has_out[rows[r]] = 1;
        }
        n_rows = k;
    } else {
        memset(b->has_out, 1, (size_t)n);
    }
    long E = cf->n_embd;
    mm_env_t env = {.pool = m->pool, .level = m->level, .scratch = b->mm_scratch, .scratch_bytes = b->mm_scratch_bytes,
                     .amx = b->amx};
    for (int t = 0; t < n; t++) {
        const void *row = (const char *)m->tok_embd->data + (size_t)toks[t].id * m->tok_embd_row_bytes;
        if (m->tok_embd->type == GGML_TYPE_F32) memcpy(b->x + t * E, row, sizeof(float) * (size_t)E);
        else if (dequantize_row(m->tok_embd->type, row, b->x + t * E, E, err))
            return tl_fail_prefix(err, "tensor token_embd.weight");
        rope_table(b->rope + (long)t * cf->n_rot, b->n_pre[t] + b->anc_len[t] - 1, (int)cf->n_rot, cf->rope_freq_base);
    }
    for (uint32_t l = 0; l < cf->n_layer; l++) {
        bool last = l + 1 == cf->n_layer && rows;
        if (eval_layer(b, pc, l, n, last ? b->out_rows : NULL, last ? n_rows : 0, &env, err)) return -1;
    }
    b->n_last = n;
    return 0;
}

int model_batch_eval(model_batch_t *b, const model_ctx_t *pc, const model_batch_tok_t *toks, int n, tl_err_t *err) {
    return model_batch_eval_rows(b, pc, toks, n, NULL, 0, err);
}

int model_batch_logits(model_batch_t *b, const int *rows, int n_rows, const model_head_t *head, float *logits,
                       tl_err_t *err) {
    const model_t *m = b->m;
    const model_config_t *cf = &m->cfg;
    long E = cf->n_embd;
    if (n_rows < 0 || n_rows > b->n_last) return tl_fail(err, "model batch: %d logit rows for %d tokens", n_rows, b->n_last);
    for (int k = 0; k < n_rows; k++)
        if (rows[k] < 0 || rows[k] >= b->n_last)
            return tl_fail(err, "model batch: logit row %d names token %d of %d", k, rows[k], b->n_last);
        else if (!b->has_out[rows[k]])
            return tl_fail(err, "model batch: logit row %d names token %d, whose output the pass did not compute", k,
                           rows[k]);
    if (!n_rows) return 0;
    mm_env_t env = {.pool = m->pool, .level = m->level, .scratch = b->mm_scratch, .scratch_bytes = b->mm_scratch_bytes,
                     .amx = b->amx};
    for (int k = 0; k < n_rows; k++)
        rmsnorm_forward(b->xn + k * E, b->x + (long)rows[k] * E, m->output_norm, (int)E, cf->rms_eps);
    return matmul_forward(logits, b->xn, head ? &head->w : model_output_weight(m), n_rows, &env, err);
}
