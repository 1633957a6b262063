/* Training forward/backward pass (see tgraph.h). The base model's weights and
 * kernels are used read-only through model_internal.h. */
#include "train/tgraph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels.h"
#include "model/model_internal.h"
#include "quant/types.h"
#include "train/matmul_bwd.h"
#include "train/ops.h"

typedef struct {
    float *x_in, *q, *k, *v, *att, *x_mid, *g, *u;
    float *ax[LORA_N_TARGETS]; /* A x' per adapted projection, N * rank */
    float *P;                  /* attention probabilities, per sequence H * T * T */
    size_t P_cap;
} layer_act_t;

typedef struct {
    const mm_weight_t *w;
    mm_dq_t d;
} graph_dq_t;

struct train_graph {
    const model_t *m;
    lora_t *lora;
    graph_dq_t *wdq; /* the frozen weights' dequantized panels (train/matmul_bwd.h) */
    int n_wdq;
    int max_tokens, n_threads;
    long E, Q, KV, F, V, max_in;
    layer_act_t *acts;
    float *x, *xn, *tmp, *h, *rope;
    float *dx, *dxn, *dh, *dg, *du, *dq, *dk, *dv, *datt, *dax, *drop, *dtmp;
    float *att_tmp; /* n_threads * max_tokens */
    float *xnf, *logits; /* answer rows */
    int ans_cap;
    int *ans_pos;
    int32_t *ans_target;
    int *seq_off;  /* row of each sequence's first token after the shared prefix */
    int seq_cap;
    bool share;    /* evaluate a prompt prefix common to the whole batch once */
    int Pn;        /* this batch's shared prefix: tokens 0 .. Pn-1 of every sequence, rows 0 .. Pn-1 */
    float *att_kv; /* per thread: a head's keys, values and their gradients, 4 * max_tokens * head_dim */
    float *pdk, *pdv; /* per sequence: its gradient of the prefix's keys and values, n_seqs * Pn * KV */
    size_t pd_cap;
    void *mm_scratch;
    size_t mm_scratch_bytes;
    float drop_p;
    uint64_t drop_seed;
    bool infer; /* forward only: base weights through matmul_forward, as inference computes them */
};

static float *falloc(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p) memset(p, 0, bytes ? bytes : 64);
    return p;
}

void train_graph_free(train_graph_t *g) {
    if (!g) return;
    if (g->acts)
        for (uint32_t l = 0; l < g->m->cfg.n_layer; l++) {
            layer_act_t *a = &g->acts[l];
            free(a->x_in), free(a->q), free(a->k), free(a->v), free(a->att), free(a->x_mid), free(a->g), free(a->u);
            free(a->P);
            for (int t = 0; t < LORA_N_TARGETS; t++) free(a->ax[t]);
        }
    free(g->acts);
    float *bufs[] = {g->x,  g->xn, g->tmp, g->h,  g->rope, g->dx,   g->dxn,  g->dh,      g->dg,  g->du,
                     g->dq, g->dk, g->dv,  g->datt, g->dax, g->drop, g->dtmp, g->att_tmp, g->xnf, g->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(g->ans_pos);
    free(g->ans_target);
    free(g->seq_off);
    free(g->att_kv), free(g->pdk), free(g->pdv);
    free(g->mm_scratch);
    for (int i = 0; i < g->n_wdq; i++) mm_dq_free(&g->wdq[i].d);
    free(g->wdq);
    free(g);
}

/* Dequantized panels for the quantized matrices the training products read,
 * 8 bytes per weight element, up to a budget of 2 GiB (SmolLM2-135M: 1.1 GiB;
 * the matrices past the budget are dequantized on the fly, as before). */
#define DQ_BUDGET_BYTES ((size_t)2 << 30)
static int build_dq(train_graph_t *g, tl_err_t *err) {
    size_t used = 0;
    const model_t *m = g->m;
    size_t cap = 1 + 7 * (size_t)m->cfg.n_layer;
    g->wdq = calloc(cap, sizeof *g->wdq);
    if (!g->wdq) return tl_fail(err, "training graph: out of memory");
    const mm_weight_t *ws[8];
    for (uint32_t l = 0; l <= m->cfg.n_layer; l++) {
        int n = 0;
        if (l == m->cfg.n_layer) {
            ws[n++] = &m->output;
        } else {
            const layer_t *L = &m->layers[l];
            const mm_weight_t *lw[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
            for (int i = 0; i < 7; i++) ws[n++] = lw[i];
        }
        for (int i = 0; i < n; i++) {
            if (!mm_dq_wanted(ws[i])) continue;
            size_t bytes = 8 * (size_t)ws[i]->n_in * (size_t)ws[i]->n_out;
            if (used + bytes > DQ_BUDGET_BYTES) continue;
            used += bytes;
            graph_dq_t *d = &g->wdq[g->n_wdq];
            d->w = ws[i];
            if (mm_dq_build(&d->d, ws[i], m->pool, err)) return -1;
            g->n_wdq++;
        }
    }
    return 0;
}

static const mm_dq_t *dq_of(const train_graph_t *g, const mm_weight_t *w) {
    for (int i = 0; i < g->n_wdq; i++)
        if (g->wdq[i].w == w) return &g->wdq[i].d;
    return NULL;
}

int train_graph_new(train_graph_t **out, const model_t *m, lora_t *lora, int max_tokens, tl_err_t *err) {
    *out = NULL;
    const model_config_t *c = &m->cfg;
    if (max_tokens <= 0) return tl_fail(err, "training batch of %d tokens: must be positive", max_tokens);
    if (lora && (lora->n_layer != (int)c->n_layer || strcmp(lora->arch, c->arch)))
        return tl_fail(err, "LoRA adapter (%s, %d layers) does not fit the model (%s, %u layers)", lora->arch,
                       lora->n_layer, c->arch, c->n_layer);
    train_graph_t *g = calloc(1, sizeof *g);
    if (!g) return tl_fail(err, "training graph: out of memory");
    g->m = m;
    g->lora = lora;
    g->max_tokens = max_tokens;
    g->share = true;
    g->n_threads = threadpool_n_threads(m->pool);
    g->E = c->n_embd, g->Q = (long)c->n_head * c->head_dim, g->KV = (long)c->n_head_kv * c->head_dim;
    g->F = c->n_ff, g->V = c->n_vocab;
    g->max_in = g->E > g->F ? g->E : g->F;
    if (g->Q > g->max_in) g->max_in = g->Q;
    size_t N = (size_t)max_tokens;
    int r = lora ? lora->rank : 1;
    g->acts = calloc(c->n_layer, sizeof *g->acts);
    int bad = !g->acts;
    for (uint32_t l = 0; !bad && l < c->n_layer; l++) {
        layer_act_t *a = &g->acts[l];
        a->x_in = falloc(N * g->E), a->x_mid = falloc(N * g->E);
        a->q = falloc(N * g->Q), a->att = falloc(N * g->Q);
        a->k = falloc(N * g->KV), a->v = falloc(N * g->KV);
        a->g = falloc(N * g->F), a->u = falloc(N * g->F);
        bad |= !a->x_in || !a->x_mid || !a->q || !a->att || !a->k || !a->v || !a->g || !a->u;
        for (int t = 0; lora && t < LORA_N_TARGETS; t++)
            if (lora_mat(lora, (int)l, (lora_target_t)t)) bad |= !(a->ax[t] = falloc(N * (size_t)r));
    }
    if (!bad) {
        g->x = falloc(N * g->E), g->xn = falloc(N * g->E), g->tmp = falloc(N * g->E), g->h = falloc(N * g->F);
        g->rope = falloc(N * c->n_rot);
        g->dx = falloc(N * g->E), g->dxn = falloc(N * g->E);
        g->dh = falloc(N * g->F), g->dg = falloc(N * g->F), g->du = falloc(N * g->F);
        g->dq = falloc(N * g->Q), g->datt = falloc(N * g->Q), g->dk = falloc(N * g->KV), g->dv = falloc(N * g->KV);
        g->dax = falloc(N * (size_t)r), g->drop = falloc(N * g->max_in), g->dtmp = falloc(N * g->max_in);
        g->att_tmp = falloc((size_t)g->n_threads * N);
        g->att_kv = falloc((size_t)g->n_threads * 4 * N * c->head_dim);
        g->mm_scratch_bytes = matmul_scratch_bytes(g->max_in, max_tokens);
        size_t packed = sizeof(float) * tl_gemm_packed_floats(max_tokens, (int)g->max_in); /* packed activations */
        if (packed > g->mm_scratch_bytes) g->mm_scratch_bytes = packed;
        g->mm_scratch = aligned_alloc(64, (g->mm_scratch_bytes + 63) & ~(size_t)63);
        bad = !g->x || !g->xn || !g->tmp || !g->h || !g->rope || !g->dx || !g->dxn || !g->dh || !g->dg || !g->du ||
              !g->dq || !g->datt || !g->dk || !g->dv || !g->dax || !g->drop || !g->dtmp || !g->att_tmp || !g->att_kv ||
              !g->mm_scratch;
    }
    if (bad) {
        train_graph_free(g);
        return tl_fail(err, "training graph for %d tokens: out of memory", max_tokens);
    }
    if (build_dq(g, err)) {
        train_graph_free(g);
        return -1;
    }
    *out = g;
    return 0;
}

void train_graph_set_prefix_sharing(train_graph_t *g, bool on) { g->share = on; }

void train_graph_set_dropout(train_graph_t *g, float p, uint64_t seed) {
    g->drop_p = p > 0.0f && p < 1.0f ? p : 0.0f;
    g->drop_seed = seed;
}

/* Dropout scale (0 or 1/(1-p)) of element idx of one projection's input. */
static inline float drop_scale(const train_graph_t *g, int layer, int target, long idx) {
    uint64_t s = g->drop_seed ^ ((uint64_t)(layer * LORA_N_TARGETS + target) << 44) ^ (uint64_t)idx;
    float u = lora_rand_unit(&s);
    return u < g->drop_p ? 0.0f : 1.0f / (1.0f - g->drop_p);
}

/* The adapter's input: x itself, or x with dropout applied (in g->drop). */
static const float *lora_input(train_graph_t *g, const float *x, int N, int n_in, int layer, int target) {
    if (g->drop_p == 0.0f) return x;
    for (long i = 0; i < (long)N * n_in; i++) g->drop[i] = x[i] * drop_scale(g, layer, target, i);
    return g->drop;
}

static mm_env_t env_of(const train_graph_t *g) {
    mm_env_t e = {.pool = g->m->pool, .level = g->m->level, .scratch = g->mm_scratch,
                  .scratch_bytes = g->mm_scratch_bytes};
    return e;
}

/* y = W x (+ bias) + scale * B (A x'). */
static int proj_forward(train_graph_t *g, float *y, const float *x, int N, const mm_weight_t *w, const float *bias,
                        int layer, int target, float *ax, tl_err_t *err) {
    mm_env_t env = env_of(g);
    if (g->infer ? matmul_forward(y, x, w, N, &env, err) : matmul_forward_dequant_dq(y, x, w, dq_of(g, w), N, &env, err))
        return -1;
    long n_out = w->n_out;
    if (bias)
        for (int t = 0; t < N; t++)
            for (long i = 0; i < n_out; i++) y[t * n_out + i] += bias[i];
    lora_mat_t *lm = lora_mat(g->lora, layer, (lora_target_t)target);
    if (!lm) return 0;
    const float *xa = lora_input(g, x, N, lm->n_in, layer, target);
    threadpool_t *pool = g->m->pool;
    /* ax = x' A^T; y += scale * ax B^T */
    train_sgemm(pool, g->m->level, 0, 1, N, lm->rank, lm->n_in, 1.0f, xa, lm->n_in, lm->a, lm->n_in, 0.0f, ax,
                lm->rank);
    train_sgemm(pool, g->m->level, 0, 1, N, lm->n_out, lm->rank, g->lora->scale, ax, lm->rank, lm->b, lm->rank, 1.0f,
                y, lm->n_out);
    return 0;
}

/* Given dy: dx (+)= dy W + adapter term (when need_dx), and the adapter's gradients. */
static int proj_backward(train_graph_t *g, float *dx, int accumulate, int need_dx, const float *dy, const float *x,
                         int N, const mm_weight_t *w, int layer, int target, const float *ax, tl_err_t *err) {
    mm_env_t env = env_of(g);
    if (need_dx && matmul_backward_input_dq(dx, dy, w, dq_of(g, w), N, &env, accumulate, err)) return -1;
    lora_mat_t *lm = lora_mat(g->lora, layer, (lora_target_t)target);
    if (!lm) return 0;
    threadpool_t *pool = g->m->pool;
    float s = g->lora->scale;
    int r = lm->rank;
    /* dax = s dy B; gB += s dy^T ax; gA += dax^T x'; dx += (dax A) * mask */
    train_sgemm(pool, g->m->level, 0, 0, N, r, lm->n_out, s, dy, lm->n_out, lm->b, r, 0.0f, g->dax, r);
    if (lm->gb) train_sgemm(pool, g->m->level, 1, 0, lm->n_out, r, N, s, dy, lm->n_out, ax, r, 1.0f, lm->gb, r);
    const float *xa = lora_input(g, x, N, lm->n_in, layer, target);
    if (lm->ga) train_sgemm(pool, g->m->level, 1, 0, r, lm->n_in, N, 1.0f, g->dax, r, xa, lm->n_in, 1.0f, lm->ga, lm->n_in);
    if (!need_dx) return 0;
    if (g->drop_p == 0.0f) {
        train_sgemm(pool, g->m->level, 0, 0, N, lm->n_in, r, 1.0f, g->dax, r, lm->a, lm->n_in, 1.0f, dx, lm->n_in);
    } else {
        train_sgemm(pool, g->m->level, 0, 0, N, lm->n_in, r, 1.0f, g->dax, r, lm->a, lm->n_in, 0.0f, g->dtmp, lm->n_in);
        for (long i = 0; i < (long)N * lm->n_in; i++) dx[i] += g->dtmp[i] * drop_scale(g, layer, target, i);
    }
    return 0;
}

typedef struct {
    train_graph_t *g;
    layer_act_t *a;
    const train_seq_t *seqs;
    int n_seqs;
    const size_t *p_off;
} attn_job_t;

/* Copies one kv head's keys and values of sequence s (shared prefix rows, then
 * its own rows) into contiguous T x hd buffers. */
static void gather_kv(const train_graph_t *g, const layer_act_t *a, int s, int T, long kvo, float *kb, float *vb) {
    int hd = (int)g->m->cfg.head_dim;
    for (int t = 0; t < T; t++) {
        long row = t < g->Pn ? t : g->seq_off[s] + t - g->Pn;
        memcpy(kb + (long)t * hd, a->k + row * g->KV + kvo, sizeof(float) * (size_t)hd);
        memcpy(vb + (long)t * hd, a->v + row * g->KV + kvo, sizeof(float) * (size_t)hd);
    }
}

/* Work units: (shared prefix if any, then each sequence) x heads. */
static void attn_forward_job(void *arg, int ith, int nth) {
    attn_job_t *j = arg;
    train_graph_t *g = j->g;
    const model_config_t *c = &g->m->cfg;
    int H = (int)c->n_head, hd = (int)c->head_dim, group = (int)(c->n_head / c->n_head_kv), Pn = g->Pn;
    int pre = Pn > 0;
    float scale = 1.0f / sqrtf((float)hd);
    float *kb = g->att_kv + (size_t)ith * 4 * g->max_tokens * hd, *vb = kb + (size_t)g->max_tokens * hd;
    long i0, i1;
    threadpool_split((long)(j->n_seqs + pre) * H, ith, nth, &i0, &i1);
    for (long i = i0; i < i1; i++) {
        int s = (int)(i / H) - pre, h = (int)(i % H);
        long kvo = (long)(h / group) * hd;
        if (s < 0) { /* the prefix: causal attention over its own Pn tokens */
            causal_attention_forward(j->a->att + (long)h * hd, j->a->P + (size_t)h * Pn * Pn, j->a->q + (long)h * hd,
                                     j->a->k + kvo, j->a->v + kvo, Pn, hd, g->Q, g->KV, scale, g->m->level);
            continue;
        }
        int T = j->seqs[s].n_tokens, off = g->seq_off[s];
        if (!pre) {
            causal_attention_forward(j->a->att + off * g->Q + (long)h * hd, j->a->P + j->p_off[s] + (size_t)h * T * T,
                                     j->a->q + off * g->Q + (long)h * hd, j->a->k + off * g->KV + kvo,
                                     j->a->v + off * g->KV + kvo, T, hd, g->Q, g->KV, scale, g->m->level);
            continue;
        }
        /* a sequence's own tokens attend to the prefix's keys and their own */
        gather_kv(g, j->a, s, T, kvo, kb, vb);
        causal_attention_forward_from(j->a->att + off * g->Q + (long)h * hd,
                                      j->a->P + j->p_off[s] + (size_t)h * (T - Pn) * T,
                                      j->a->q + off * g->Q + (long)h * hd, kb, vb, Pn, T, hd, g->Q, hd, scale,
                                      g->m->level);
    }
}

static void attn_backward_job(void *arg, int ith, int nth) {
    attn_job_t *j = arg;
    train_graph_t *g = j->g;
    const model_config_t *c = &g->m->cfg;
    int Hkv = (int)c->n_head_kv, hd = (int)c->head_dim, group = (int)(c->n_head / c->n_head_kv), Pn = g->Pn;
    int pre = Pn > 0;
    float scale = 1.0f / sqrtf((float)hd);
    float *tmp = g->att_tmp + (size_t)ith * g->max_tokens;
    size_t M = (size_t)g->max_tokens * hd;
    float *kb = g->att_kv + (size_t)ith * 4 * M, *vb = kb + M, *dkb = vb + M, *dvb = dkb + M;
    long i0, i1;
    threadpool_split((long)(j->n_seqs + pre) * Hkv, ith, nth, &i0, &i1);
    for (long i = i0; i < i1; i++) {
        int s = (int)(i / Hkv) - pre, kh = (int)(i % Hkv);
        long kvo = (long)kh * hd;
        if (s < 0 || !pre) { /* the prefix, or a whole sequence when nothing is shared */
            int T = s < 0 ? Pn : j->seqs[s].n_tokens, off = s < 0 ? 0 : g->seq_off[s];
            size_t po = s < 0 ? 0 : j->p_off[s];
            for (int t = 0; t < T; t++) {
                memset(g->dk + (off + t) * g->KV + kvo, 0, sizeof(float) * (size_t)hd);
                memset(g->dv + (off + t) * g->KV + kvo, 0, sizeof(float) * (size_t)hd);
            }
            for (int h = kh * group; h < (kh + 1) * group; h++) {
                long qo = off * g->Q + (long)h * hd;
                causal_attention_backward(g->dq + qo, g->dk + off * g->KV + kvo, g->dv + off * g->KV + kvo,
                                          g->datt + qo, j->a->P + po + (size_t)h * T * T, j->a->q + qo,
                                          j->a->k + off * g->KV + kvo, j->a->v + off * g->KV + kvo, T, hd, g->Q,
                                          g->KV, scale, tmp, g->m->level);
            }
            continue;
        }
        int T = j->seqs[s].n_tokens, off = g->seq_off[s];
        gather_kv(g, j->a, s, T, kvo, kb, vb);
        memset(dkb, 0, sizeof(float) * (size_t)T * hd);
        memset(dvb, 0, sizeof(float) * (size_t)T * hd);
        for (int h = kh * group; h < (kh + 1) * group; h++) {
            long qo = off * g->Q + (long)h * hd;
            causal_attention_backward_from(g->dq + qo, dkb, dvb, g->datt + qo,
                                           j->a->P + j->p_off[s] + (size_t)h * (T - Pn) * T, j->a->q + qo, kb, vb, Pn,
                                           T, hd, g->Q, hd, scale, tmp, g->m->level);
        }
        /* own rows: this unit's alone; prefix rows: summed over the sequences after the job */
        for (int t = 0; t < T; t++) {
            float *dk = t < Pn ? g->pdk + ((size_t)s * Pn + t) * g->KV + kvo : g->dk + (off + t - Pn) * g->KV + kvo;
            float *dv = t < Pn ? g->pdv + ((size_t)s * Pn + t) * g->KV + kvo : g->dv + (off + t - Pn) * g->KV + kvo;
            memcpy(dk, dkb + (long)t * hd, sizeof(float) * (size_t)hd);
            memcpy(dv, dvb + (long)t * hd, sizeof(float) * (size_t)hd);
        }
    }
}

static void rmsnorm_rows(float *y, const float *x, const float *w, int N, long E, float eps) {
    for (int t = 0; t < N; t++) rmsnorm_forward(y + t * E, x + t * E, w, (int)E, eps);
}

static int grow_answers(train_graph_t *g, int n_ans) {
    if (n_ans <= g->ans_cap) return 0;
    free(g->xnf), free(g->logits), free(g->ans_pos), free(g->ans_target);
    g->xnf = falloc((size_t)n_ans * g->E);
    g->logits = falloc((size_t)n_ans * g->V);
    g->ans_pos = malloc(sizeof(int) * (size_t)n_ans);
    g->ans_target = malloc(sizeof(int32_t) * (size_t)n_ans);
    if (!g->xnf || !g->logits || !g->ans_pos || !g->ans_target) {
        g->ans_cap = 0;
        return -1;
    }
    g->ans_cap = n_ans;
    return 0;
}

int train_graph_run(train_graph_t *g, const train_seq_t *seqs, int n_seqs, bool backward, float gscale,
                    double *seq_logprob, float *first_logits, tl_err_t *err) {
    const model_t *m = g->m;
    const model_config_t *c = &m->cfg;
    long E = g->E, Q = g->Q, KV = g->KV, F = g->F, V = g->V;
    if (n_seqs <= 0) return tl_fail(err, "training batch: no sequences");
    if (n_seqs > g->seq_cap) {
        free(g->seq_off);
        g->seq_off = malloc(sizeof(int) * (size_t)n_seqs);
        if (!g->seq_off) return g->seq_cap = 0, tl_fail(err, "training batch: out of memory");
        g->seq_cap = n_seqs;
    }
    int N = 0, n_ans = 0;
    size_t p_total = 0;
    size_t *p_off = malloc(sizeof(size_t) * (size_t)n_seqs);
    if (!p_off) return tl_fail(err, "training batch: out of memory");
    for (int s = 0; s < n_seqs; s++) {
        const train_seq_t *q = &seqs[s];
        if (q->n_prompt < 1 || q->n_prompt > q->n_tokens) {
            free(p_off);
            return tl_fail(err, "sequence %d: %d prompt tokens of %d", s, q->n_prompt, q->n_tokens);
        }
        for (int i = 0; i < q->n_tokens; i++)
            if (q->tokens[i] < 0 || q->tokens[i] >= (int32_t)V) {
                free(p_off);
                return tl_fail(err, "sequence %d token %d (id %d): out of range for a vocabulary of %ld", s, i,
                               q->tokens[i], V);
            }
    }
    /* The prompt prefix every sequence shares (a task template's fixed text) is
     * evaluated once: its rows come first, each sequence's own tokens follow.
     * It stops before the last prompt token, so every sequence keeps the row
     * that predicts its first answer token. Dropout draws one mask per row, so
     * with dropout nothing is shared (each sequence keeps its own masks). */
    int Pn = 0;
    if (g->share && n_seqs > 1 && g->drop_p == 0.0f) {
        Pn = seqs[0].n_prompt - 1;
        for (int s = 1; s < n_seqs && Pn > 0; s++) {
            int lim = seqs[s].n_prompt - 1 < Pn ? seqs[s].n_prompt - 1 : Pn, i = 0;
            while (i < lim && seqs[s].tokens[i] == seqs[0].tokens[i]) i++;
            Pn = i;
        }
        if (Pn < 2) Pn = 0;
    }
    g->Pn = Pn;
    N = Pn;
    p_total = (size_t)c->n_head * Pn * Pn;
    for (int s = 0; s < n_seqs; s++) {
        const train_seq_t *q = &seqs[s];
        g->seq_off[s] = N;
        p_off[s] = p_total;
        N += q->n_tokens - Pn;
        p_total += (size_t)c->n_head * (q->n_tokens - Pn) * q->n_tokens;
        n_ans += q->n_tokens - q->n_prompt > 0 ? q->n_tokens - q->n_prompt : 1;
        if (N > g->max_tokens) {
            free(p_off);
            return tl_fail(err, "training batch: more than %d tokens (sequence %d)", g->max_tokens, s);
        }
    }
    if (Pn > 0 && backward && g->pd_cap < (size_t)n_seqs * Pn * KV) {
        size_t n = (size_t)n_seqs * Pn * KV;
        free(g->pdk), free(g->pdv);
        g->pdk = falloc(n), g->pdv = falloc(n);
        g->pd_cap = g->pdk && g->pdv ? n : 0;
        if (!g->pd_cap) {
            free(p_off);
            return tl_fail(err, "training batch: out of memory for the shared prefix");
        }
    }
    int rc = -1;
    g->infer = !backward;
    if (grow_answers(g, n_ans)) {
        tl_fail(err, "training batch: out of memory for %d answer rows", n_ans);
        goto done;
    }
    for (uint32_t l = 0; l < c->n_layer; l++) {
        layer_act_t *a = &g->acts[l];
        if (a->P_cap < p_total) {
            free(a->P);
            a->P = falloc(p_total);
            a->P_cap = a->P ? p_total : 0;
            if (!a->P) {
                tl_fail(err, "training batch: out of memory for attention probabilities");
                goto done;
            }
        }
    }
    /* embeddings and rope tables (the prefix's rows from sequence 0) */
    for (int s = 0; s < n_seqs; s++)
        for (int i = s == 0 ? 0 : Pn; i < seqs[s].n_tokens; i++) {
            int t = i < Pn ? i : g->seq_off[s] + i - Pn;
            const void *row = (const char *)m->tok_embd->data + (size_t)seqs[s].tokens[i] * m->tok_embd_row_bytes;
            if (m->tok_embd->type == GGML_TYPE_F32) memcpy(g->x + t * E, row, sizeof(float) * (size_t)E);
            else if (dequantize_row(m->tok_embd->type, row, g->x + t * E, E, err)) {
                tl_fail_prefix(err, "tensor token_embd.weight");
                goto done;
            }
            rope_table(g->rope + (long)t * c->n_rot, i, (int)c->n_rot, c->rope_freq_base);
        }
    for (uint32_t l = 0; l < c->n_layer; l++) {
        const layer_t *L = &m->layers[l];
        layer_act_t *a = &g->acts[l];
        int li = (int)l;
        memcpy(a->x_in, g->x, sizeof(float) * (size_t)N * E);
        rmsnorm_rows(g->xn, g->x, L->attn_norm, N, E, c->rms_eps);
        if (proj_forward(g, a->q, g->xn, N, &L->wq, L->bq, li, LORA_Q, a->ax[LORA_Q], err) ||
            proj_forward(g, a->k, g->xn, N, &L->wk, L->bk, li, LORA_K, a->ax[LORA_K], err) ||
            proj_forward(g, a->v, g->xn, N, &L->wv, L->bv, li, LORA_V, a->ax[LORA_V], err))
            goto done;
        for (int t = 0; t < N; t++) {
            const float *cs = g->rope + (long)t * c->n_rot;
            rope_forward(a->q + t * Q, (int)c->n_head, (int)c->head_dim, (int)c->n_rot, cs, 0);
            rope_forward(a->k + t * KV, (int)c->n_head_kv, (int)c->head_dim, (int)c->n_rot, cs, 0);
        }
        attn_job_t aj = {g, a, seqs, n_seqs, p_off};
        threadpool_run(m->pool, attn_forward_job, &aj);
        if (proj_forward(g, g->tmp, a->att, N, &L->wo, NULL, li, LORA_O, a->ax[LORA_O], err)) goto done;
        for (long i = 0; i < N * E; i++) g->x[i] += g->tmp[i];
        memcpy(a->x_mid, g->x, sizeof(float) * (size_t)N * E);
        rmsnorm_rows(g->xn, g->x, L->ffn_norm, N, E, c->rms_eps);
        if (proj_forward(g, a->g, g->xn, N, &L->w_gate, NULL, li, LORA_GATE, a->ax[LORA_GATE], err) ||
            proj_forward(g, a->u, g->xn, N, &L->w_up, NULL, li, LORA_UP, a->ax[LORA_UP], err))
            goto done;
        memcpy(g->h, a->g, sizeof(float) * (size_t)N * F);
        swiglu_forward(g->h, a->u, (int)(N * F));
        if (proj_forward(g, g->tmp, g->h, N, &L->w_down, NULL, li, LORA_DOWN, a->ax[LORA_DOWN], err)) goto done;
        for (long i = 0; i < N * E; i++) g->x[i] += g->tmp[i];
    }
    /* answer rows: position j predicts token j + 1 */
    int k = 0;
    for (int s = 0; s < n_seqs; s++) {
        const train_seq_t *q = &seqs[s];
        int last = q->n_tokens - 2 > q->n_prompt - 1 ? q->n_tokens - 2 : q->n_prompt - 1;
        for (int j = q->n_prompt - 1; j <= last; j++, k++) {
            g->ans_pos[k] = g->seq_off[s] + j - Pn;
            g->ans_target[k] = j + 1 < q->n_tokens ? q->tokens[j + 1] : -1;
            rmsnorm_forward(g->xnf + (long)k * E, g->x + (long)g->ans_pos[k] * E, m->output_norm, (int)E, c->rms_eps);
        }
    }
    {
        mm_env_t env = env_of(g);
        if (g->infer ? matmul_forward(g->logits, g->xnf, model_output_weight(m), n_ans, &env, err)
                     : matmul_forward_dequant_dq(g->logits, g->xnf, &m->output, dq_of(g, &m->output), n_ans, &env, err))
            goto done;
    }
    k = 0;
    for (int s = 0; s < n_seqs; s++) {
        const train_seq_t *q = &seqs[s];
        double lp = 0.0;
        if (first_logits) memcpy(first_logits + (size_t)s * V, g->logits + (size_t)k * V, sizeof(float) * (size_t)V);
        int rows = q->n_tokens - q->n_prompt > 0 ? q->n_tokens - q->n_prompt : 1;
        for (int j = 0; j < rows; j++, k++) {
            float *row = g->logits + (size_t)k * V;
            if (g->ans_target[k] < 0) {
                if (backward) memset(row, 0, sizeof(float) * (size_t)V);
                continue;
            }
            /* the row is overwritten in place by its gradient */
            lp += cross_entropy_forward_backward(row, (int)V, g->ans_target[k], backward ? row : NULL, gscale);
        }
        if (seq_logprob) seq_logprob[s] = lp;
    }
    if (!backward) {
        rc = 0;
        goto done;
    }
    {
        mm_env_t env = env_of(g);
        if (matmul_backward_input_dq(g->dtmp, g->logits, &m->output, dq_of(g, &m->output), n_ans, &env, 0, err))
            goto done;
        memset(g->dx, 0, sizeof(float) * (size_t)N * E);
        for (k = 0; k < n_ans; k++) {
            long p = g->ans_pos[k];
            rmsnorm_backward(g->dx + p * E, g->dtmp + (long)k * E, g->x + p * E, m->output_norm, (int)E, c->rms_eps, 1);
        }
    }
    for (int l = (int)c->n_layer - 1; l >= 0; l--) {
        const layer_t *L = &m->layers[l];
        layer_act_t *a = &g->acts[l];
        int need = l > 0; /* the embedding table is frozen: layer 0 needs no input gradient */
        /* feed-forward block: x_out = x_mid + down(swiglu(gate(xn2), up(xn2))) */
        rmsnorm_rows(g->xn, a->x_mid, L->ffn_norm, N, E, c->rms_eps);
        memcpy(g->h, a->g, sizeof(float) * (size_t)N * F);
        swiglu_forward(g->h, a->u, (int)(N * F));
        if (proj_backward(g, g->dh, 0, 1, g->dx, g->h, N, &L->w_down, l, LORA_DOWN, a->ax[LORA_DOWN], err)) goto done;
        swiglu_backward(g->dg, g->du, g->dh, a->g, a->u, (int)(N * F));
        if (proj_backward(g, g->dxn, 0, 1, g->dg, g->xn, N, &L->w_gate, l, LORA_GATE, a->ax[LORA_GATE], err) ||
            proj_backward(g, g->dxn, 1, 1, g->du, g->xn, N, &L->w_up, l, LORA_UP, a->ax[LORA_UP], err))
            goto done;
        for (int t = 0; t < N; t++)
            rmsnorm_backward(g->dx + t * E, g->dxn + t * E, a->x_mid + t * E, L->ffn_norm, (int)E, c->rms_eps, 1);
        /* attention block: x_mid = x_in + o(attention(rope(q), rope(k), v)) */
        if (proj_backward(g, g->datt, 0, 1, g->dx, a->att, N, &L->wo, l, LORA_O, a->ax[LORA_O], err)) goto done;
        attn_job_t aj = {g, a, seqs, n_seqs, p_off};
        threadpool_run(m->pool, attn_backward_job, &aj);
        for (int s = 0; s < n_seqs && Pn > 0; s++) /* the prefix's keys and values serve every sequence */
            for (long i = 0; i < (long)Pn * KV; i++) {
                g->dk[i] += g->pdk[(size_t)s * Pn * KV + i];
                g->dv[i] += g->pdv[(size_t)s * Pn * KV + i];
            }
        for (int t = 0; t < N; t++) {
            const float *cs = g->rope + (long)t * c->n_rot;
            rope_backward(g->dq + t * Q, (int)c->n_head, (int)c->head_dim, (int)c->n_rot, cs, 0);
            rope_backward(g->dk + t * KV, (int)c->n_head_kv, (int)c->head_dim, (int)c->n_rot, cs, 0);
        }
        rmsnorm_rows(g->xn, a->x_in, L->attn_norm, N, E, c->rms_eps);
        if (proj_backward(g, g->dxn, 0, need, g->dq, g->xn, N, &L->wq, l, LORA_Q, a->ax[LORA_Q], err) ||
            proj_backward(g, g->dxn, 1, need, g->dk, g->xn, N, &L->wk, l, LORA_K, a->ax[LORA_K], err) ||
            proj_backward(g, g->dxn, 1, need, g->dv, g->xn, N, &L->wv, l, LORA_V, a->ax[LORA_V], err))
            goto done;
        if (need)
            for (int t = 0; t < N; t++)
                rmsnorm_backward(g->dx + t * E, g->dxn + t * E, a->x_in + t * E, L->attn_norm, (int)E, c->rms_eps, 1);
    }
    rc = 0;
done:
    free(p_off);
    return rc;
}
