/* LoRA adapter parameters, initialisation and the adapter GGUF file. */
#include "train/lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"
#include "quant/types.h"

static const char *const target_names[LORA_N_TARGETS] = {"q", "k", "v", "o", "gate", "up", "down"};
static const char *const target_tensors[LORA_N_TARGETS] = {"attn_q",      "attn_k",  "attn_v",  "attn_output",
                                                           "ffn_gate",    "ffn_up",  "ffn_down"};

const char *lora_target_name(lora_target_t t) { return t < LORA_N_TARGETS ? target_names[t] : "?"; }
const char *lora_target_tensor(lora_target_t t) { return t < LORA_N_TARGETS ? target_tensors[t] : "?"; }

int lora_targets_parse(const char *s, unsigned *mask, tl_err_t *err) {
    unsigned m = 0;
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int found = 0;
        if (n == 3 && !strncmp(p, "all", 3)) m |= (1u << LORA_N_TARGETS) - 1, found = 1;
        else if (n == 4 && !strncmp(p, "attn", 4)) m |= 0xfu, found = 1;
        else if (n == 3 && !strncmp(p, "mlp", 3)) m |= 0x70u, found = 1;
        for (int t = 0; !found && t < LORA_N_TARGETS; t++)
            if (strlen(target_names[t]) == n && !strncmp(p, target_names[t], n)) m |= 1u << t, found = 1;
        if (!found)
            return tl_fail(err, "LoRA target '%.*s': unknown (use q,k,v,o,gate,up,down, attn, mlp or all)", (int)n,
                           p);
        p += n;
        if (*p == ',') p++;
    }
    if (!m) return tl_fail(err, "LoRA targets '%s': empty", s);
    *mask = m;
    return 0;
}

static void target_shape(const model_config_t *c, lora_target_t t, int *n_in, int *n_out) {
    int E = (int)c->n_embd, Q = (int)(c->n_head * c->head_dim), KV = (int)(c->n_head_kv * c->head_dim),
        F = (int)c->n_ff;
    switch (t) {
    case LORA_Q: *n_in = E, *n_out = Q; break;
    case LORA_K:
    case LORA_V: *n_in = E, *n_out = KV; break;
    case LORA_O: *n_in = Q, *n_out = E; break;
    case LORA_GATE:
    case LORA_UP: *n_in = E, *n_out = F; break;
    default: *n_in = F, *n_out = E; break;
    }
}

static int lora_alloc(lora_t **out, const model_config_t *cfg, int rank, float alpha, unsigned targets,
                      bool with_grads, tl_err_t *err) {
    *out = NULL;
    if (rank <= 0) return tl_fail(err, "LoRA rank %d: must be positive", rank);
    lora_t *l = calloc(1, sizeof *l);
    if (!l) return tl_fail(err, "LoRA: out of memory");
    snprintf(l->arch, sizeof l->arch, "%s", cfg->arch);
    l->n_layer = (int)cfg->n_layer;
    l->rank = rank;
    l->alpha = alpha;
    l->scale = alpha != 0.0f ? alpha / (float)rank : 1.0f;
    l->targets = targets;
    l->mats = calloc((size_t)l->n_layer * LORA_N_TARGETS, sizeof *l->mats);
    if (!l->mats) {
        free(l);
        return tl_fail(err, "LoRA: out of memory");
    }
    for (int i = 0; i < l->n_layer; i++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            if (!(targets & (1u << t))) continue;
            lora_mat_t *mt = &l->mats[i * LORA_N_TARGETS + t];
            target_shape(cfg, (lora_target_t)t, &mt->n_in, &mt->n_out);
            mt->rank = rank;
            size_t na = (size_t)rank * mt->n_in, nb = (size_t)mt->n_out * rank;
            mt->a = calloc(na, sizeof(float));
            mt->b = calloc(nb, sizeof(float));
            if (with_grads) {
                mt->ga = calloc(na, sizeof(float));
                mt->gb = calloc(nb, sizeof(float));
            }
            if (!mt->a || !mt->b || (with_grads && (!mt->ga || !mt->gb))) {
                lora_free(l);
                return tl_fail(err, "LoRA: out of memory");
            }
        }
    *out = l;
    return 0;
}

int lora_new(lora_t **out, const model_config_t *cfg, int rank, float alpha, unsigned targets, uint64_t seed,
             bool with_grads, tl_err_t *err) {
    if (lora_alloc(out, cfg, rank, alpha, targets, with_grads, err)) return -1;
    lora_t *l = *out;
    uint64_t s = seed;
    for (int i = 0; i < l->n_layer; i++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            lora_mat_t *mt = lora_mat(l, i, (lora_target_t)t);
            if (!mt) continue;
            float bound = 1.0f / sqrtf((float)mt->n_in);
            for (size_t k = 0; k < (size_t)mt->rank * mt->n_in; k++)
                mt->a[k] = (2.0f * lora_rand_unit(&s) - 1.0f) * bound;
        }
    return 0;
}

void lora_free(lora_t *l) {
    if (!l) return;
    if (l->mats)
        for (int i = 0; i < l->n_layer * LORA_N_TARGETS; i++) {
            free(l->mats[i].a);
            free(l->mats[i].b);
            free(l->mats[i].ga);
            free(l->mats[i].gb);
        }
    free(l->mats);
    free(l);
}

lora_mat_t *lora_mat(const lora_t *l, int layer, lora_target_t t) {
    if (!l || layer < 0 || layer >= l->n_layer || t >= LORA_N_TARGETS) return NULL;
    lora_mat_t *m = &l->mats[layer * LORA_N_TARGETS + t];
    return m->a ? m : NULL;
}

size_t lora_n_params(const lora_t *l) {
    size_t n = 0;
    for (int i = 0; i < l->n_layer * LORA_N_TARGETS; i++)
        if (l->mats[i].a) n += (size_t)l->mats[i].rank * (l->mats[i].n_in + l->mats[i].n_out);
    return n;
}

void lora_visit(const lora_t *l, lora_visit_fn fn, void *ctx) {
    for (int i = 0; i < l->n_layer * LORA_N_TARGETS; i++) {
        lora_mat_t *m = &l->mats[i];
        if (!m->a) continue;
        fn(ctx, m->a, m->ga, (size_t)m->rank * m->n_in);
        fn(ctx, m->b, m->gb, (size_t)m->n_out * m->rank);
    }
}

static void zero_grad(void *ctx, float *p, float *g, size_t n) {
    (void)ctx;
    (void)p;
    if (g) memset(g, 0, n * sizeof(float));
}

void lora_zero_grads(lora_t *l) { lora_visit(l, zero_grad, NULL); }

int lora_save_gguf(const lora_t *l, const char *path, tl_err_t *err) {
    gguf_writer_t *w = gguf_writer_new();
    if (!w) return tl_fail(err, "%s: out of memory", path);
    int rc = -1;
    if (gguf_writer_set_str(w, "general.architecture", l->arch, err) ||
        gguf_writer_set_str(w, "general.type", "adapter", err) ||
        gguf_writer_set_str(w, "adapter.type", "lora", err) ||
        gguf_writer_set_f32(w, "adapter.lora.alpha", l->alpha, err) ||
        (l->label_bias[0] && gguf_writer_set_str(w, "tasklm.label_bias", l->label_bias, err)))
        goto done;
    for (int i = 0; i < l->n_layer; i++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            lora_mat_t *m = lora_mat(l, i, (lora_target_t)t);
            if (!m) continue;
            char name[128];
            int64_t ne_a[2] = {m->n_in, m->rank}, ne_b[2] = {m->rank, m->n_out};
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_a", i, target_tensors[t]);
            if (gguf_writer_add_tensor(w, name, GGML_TYPE_F32, 2, ne_a, m->a,
                                       sizeof(float) * (uint64_t)m->rank * m->n_in, err))
                goto done;
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_b", i, target_tensors[t]);
            if (gguf_writer_add_tensor(w, name, GGML_TYPE_F32, 2, ne_b, m->b,
                                       sizeof(float) * (uint64_t)m->rank * m->n_out, err))
                goto done;
        }
    rc = gguf_writer_write(w, path, err);
done:
    if (rc) tl_fail_prefix(err, "%s", path);
    gguf_writer_free(w);
    return rc;
}

static int str_is(const gguf_file_t *f, const char *key, const char *want, const char *path, tl_err_t *err) {
    gguf_str_t s;
    if (gguf_get_str(f, key, &s, err)) return tl_fail_prefix(err, "%s", path);
    if (s.len != strlen(want) || memcmp(s.ptr, want, s.len))
        return tl_fail(err, "%s: %s is '%.*s', expected '%s'", path, key, (int)s.len, s.ptr, want);
    return 0;
}

static int copy_f32(float *dst, const gguf_tensor_t *t, size_t n, const char *path, tl_err_t *err) {
    if (t->type == GGML_TYPE_F32) {
        if (t->nbytes < n * sizeof(float)) return tl_fail(err, "%s: tensor %s: truncated", path, t->name);
        memcpy(dst, t->data, n * sizeof(float));
        return 0;
    }
    size_t rb;
    if (!ggml_type_can_dequantize(t->type) || ggml_row_bytes(t->type, t->ne[0], &rb, err) ||
        t->nbytes < rb * (uint64_t)t->ne[1])
        return tl_fail(err, "%s: tensor %s: unsupported type or size", path, t->name);
    for (int64_t r = 0; r < t->ne[1]; r++)
        if (dequantize_row(t->type, (const char *)t->data + r * rb, dst + r * t->ne[0], t->ne[0], err))
            return tl_fail_prefix(err, "%s: tensor %s", path, t->name);
    return 0;
}

int lora_load(lora_t **out, const char *path, const model_t *m, tl_err_t *err) {
    *out = NULL;
    const model_config_t *cfg = model_config(m);
    gguf_file_t *f;
    if (gguf_open(&f, path, err)) return -1;
    int rc = -1;
    lora_t *l = NULL;
    if (str_is(f, "general.type", "adapter", path, err) || str_is(f, "adapter.type", "lora", path, err) ||
        str_is(f, "general.architecture", cfg->arch, path, err))
        goto done;
    float alpha = gguf_get_f32_or(f, "adapter.lora.alpha", 0.0f);
    /* first pass: targets and rank */
    unsigned targets = 0;
    int rank = 0;
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor_t *t = gguf_tensor(f, i);
        int layer, pos = 0;
        char stem[64];
        if (sscanf(t->name, "blk.%d.%63[a-z_].weight.lora_%*[ab]%n", &layer, stem, &pos) != 2 ||
            t->name[pos] != '\0' || layer < 0 || layer >= (int)cfg->n_layer) {
            tl_fail(err, "%s: tensor %s: not a LoRA tensor of this model (%u layers)", path, t->name, cfg->n_layer);
            goto done;
        }
        int tt = -1;
        for (int k = 0; k < LORA_N_TARGETS; k++)
            if (!strcmp(stem, target_tensors[k])) tt = k;
        if (tt < 0) {
            tl_fail(err, "%s: tensor %s: unsupported projection '%s'", path, t->name, stem);
            goto done;
        }
        targets |= 1u << tt;
        int r = t->name[strlen(t->name) - 1] == 'a' ? (int)t->ne[1] : (int)t->ne[0];
        if (rank && r != rank) {
            tl_fail(err, "%s: tensor %s: rank %d differs from %d (mixed ranks are unsupported)", path, t->name, r,
                    rank);
            goto done;
        }
        rank = r;
    }
    if (!targets) {
        tl_fail(err, "%s: no LoRA tensors", path);
        goto done;
    }
    if (lora_alloc(&l, cfg, rank, alpha, targets, false, err)) goto done;
    for (int i = 0; i < l->n_layer; i++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            lora_mat_t *mt = lora_mat(l, i, (lora_target_t)t);
            if (!mt) continue;
            char na[128], nb[128];
            snprintf(na, sizeof na, "blk.%d.%s.weight.lora_a", i, target_tensors[t]);
            snprintf(nb, sizeof nb, "blk.%d.%s.weight.lora_b", i, target_tensors[t]);
            const gguf_tensor_t *ta = gguf_find_tensor(f, na), *tb = gguf_find_tensor(f, nb);
            if (!ta || !tb) {
                tl_fail(err, "%s: tensor %s: missing (every layer must adapt the same projections)", path,
                        ta ? nb : na);
                goto done;
            }
            if (ta->ne[0] != mt->n_in || ta->ne[1] != rank || ta->ne[2] != 1 || tb->ne[0] != rank ||
                tb->ne[1] != mt->n_out || tb->ne[2] != 1) {
                tl_fail(err, "%s: tensor %s: shape [%lld, %lld] / [%lld, %lld], expected [%d, %d] / [%d, %d]", path,
                        na, (long long)ta->ne[0], (long long)ta->ne[1], (long long)tb->ne[0], (long long)tb->ne[1],
                        mt->n_in, rank, rank, mt->n_out);
                goto done;
            }
            if (copy_f32(mt->a, ta, (size_t)rank * mt->n_in, path, err) ||
                copy_f32(mt->b, tb, (size_t)rank * mt->n_out, path, err))
                goto done;
        }
    rc = 0;
done:
    gguf_close(f);
    if (rc) lora_free(l);
    else *out = l;
    return rc;
}

/* ---- merge into a loaded model (inference with an adapter) ---- */

typedef struct {
    const mm_weight_t *w;
    const lora_mat_t *lm;
    float scale;
    float *out;
    int failed;
} merge_job_t;

static void merge_rows_job(void *arg, int ith, int nth) {
    merge_job_t *j = arg;
    long r0, r1;
    threadpool_split(j->lm->n_out, ith, nth, &r0, &r1);
    int n_in = j->lm->n_in, r = j->lm->rank;
    for (long o = r0; o < r1; o++) {
        float *row = j->out + o * n_in;
        const char *src = (const char *)j->w->data + (size_t)o * j->w->row_bytes;
        if (j->w->type == GGML_TYPE_F32) memcpy(row, src, sizeof(float) * (size_t)n_in);
        else if (dequantize_row(j->w->type, src, row, n_in, NULL)) {
            j->failed = 1;
            return;
        }
        /* the order of quant/merge.c: one rank component at a time */
        for (int k = 0; k < r; k++) {
            float c = j->scale * j->lm->b[o * r + k];
            const float *ak = j->lm->a + (size_t)k * n_in;
            for (int i = 0; i < n_in; i++) row[i] += c * ak[i];
        }
    }
}

int lora_merge_into_model(model_t *m, const lora_t *l, tl_err_t *err) {
    const model_config_t *c = &m->cfg;
    if (l->n_layer != (int)c->n_layer || strcmp(l->arch, c->arch))
        return tl_fail(err, "LoRA adapter (%s, %d layers) does not fit the model (%s, %u layers)", l->arch,
                       l->n_layer, c->arch, c->n_layer);
    for (int i = 0; i < l->n_layer; i++) {
        layer_t *L = &m->layers[i];
        mm_weight_t *ws[LORA_N_TARGETS] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            const lora_mat_t *lm = lora_mat(l, i, (lora_target_t)t);
            if (!lm) continue;
            mm_weight_t *w = ws[t];
            if (w->n_in != lm->n_in || w->n_out != lm->n_out)
                return tl_fail(err, "tensor blk.%d.%s.weight: base [%lld, %lld], adapter [%d, %d]", i,
                               target_tensors[t], (long long)w->n_in, (long long)w->n_out, lm->n_in, lm->n_out);
            if (w->type != GGML_TYPE_F32 && !ggml_type_can_dequantize(w->type))
                return tl_fail(err, "tensor blk.%d.%s.weight: type %u cannot be dequantized", i, target_tensors[t],
                               w->type);
            float *out = malloc(sizeof(float) * (size_t)lm->n_in * (size_t)lm->n_out);
            if (!out) return tl_fail(err, "tensor blk.%d.%s.weight: out of memory", i, target_tensors[t]);
            merge_job_t j = {w, lm, l->scale, out, 0};
            threadpool_run(m->pool, merge_rows_job, &j);
            if (j.failed) {
                free(out);
                return tl_fail(err, "tensor blk.%d.%s.weight: bad block data", i, target_tensors[t]);
            }
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s.weight", i, target_tensors[t]);
            mm_weight_t nw;
            if (matmul_weight_init(&nw, name, GGML_TYPE_F32, lm->n_in, lm->n_out, out, err)) {
                free(out);
                return -1;
            }
            free(L->owned[t]);
            L->owned[t] = out;
            *w = nw;
        }
    }
    return 0;
}

int lora_apply_file(model_t *m, const char *path, tl_err_t *err) {
    lora_t *l;
    if (lora_load(&l, path, m, err)) return -1;
    int rc = lora_merge_into_model(m, l, err);
    if (rc) tl_fail_prefix(err, "%s", path);
    lora_free(l);
    return rc;
}
