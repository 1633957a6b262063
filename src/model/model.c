/* Llama-family model: configuration and weights from a GGUF file. The forward
 * pass is in forward.c. */
#include "model/model_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/matmul_pack.h"
#include "quant/types.h"

static int key_name(char *buf, size_t cap, const char *arch, const char *suffix) {
    int n = snprintf(buf, cap, "%s.%s", arch, suffix);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

static int get_u32_req(const gguf_file_t *f, const char *arch, const char *suffix, uint32_t *out, tl_err_t *err) {
    char key[160];
    if (key_name(key, sizeof key, arch, suffix)) return tl_fail(err, "metadata key %s.%s is too long", arch, suffix);
    if (gguf_get_u32(f, key, out, err)) return -1;
    if (*out == 0) return tl_fail(err, "metadata %s: must be positive", key);
    return 0;
}

static int read_config(model_config_t *c, const gguf_file_t *f, const char *path, tl_err_t *err) {
    gguf_str_t arch;
    if (gguf_get_str(f, "general.architecture", &arch, err)) return -1;
    if (arch.len == 0 || arch.len >= sizeof c->arch) return tl_fail(err, "%s: bad general.architecture", path);
    memcpy(c->arch, arch.ptr, arch.len);
    c->arch[arch.len] = '\0';
    if (strcmp(c->arch, "llama") != 0)
        return tl_fail(err, "%s: unsupported architecture '%s' (supported: llama)", path, c->arch);
    const char *a = c->arch;
    if (get_u32_req(f, a, "block_count", &c->n_layer, err) || get_u32_req(f, a, "embedding_length", &c->n_embd, err) ||
        get_u32_req(f, a, "feed_forward_length", &c->n_ff, err) ||
        get_u32_req(f, a, "attention.head_count", &c->n_head, err))
        return -1;
    char key[160];
    key_name(key, sizeof key, a, "attention.head_count_kv");
    c->n_head_kv = gguf_get_u32_or(f, key, c->n_head);
    if (c->n_head_kv == 0 || c->n_head % c->n_head_kv != 0)
        return tl_fail(err, "metadata %s: %u does not divide the head count %u", key, c->n_head_kv, c->n_head);
    key_name(key, sizeof key, a, "attention.key_length");
    uint32_t dflt_hd = c->n_embd / c->n_head;
    c->head_dim = gguf_get_u32_or(f, key, dflt_hd);
    if (c->head_dim == 0 || c->head_dim % 2) return tl_fail(err, "metadata %s: bad head size %u", key, c->head_dim);
    key_name(key, sizeof key, a, "attention.value_length");
    if (gguf_get_u32_or(f, key, c->head_dim) != c->head_dim)
        return tl_fail(err, "metadata %s: value head size differs from key head size (unsupported)", key);
    key_name(key, sizeof key, a, "rope.dimension_count");
    c->n_rot = gguf_get_u32_or(f, key, c->head_dim);
    if (c->n_rot == 0 || c->n_rot > c->head_dim || c->n_rot % 2)
        return tl_fail(err, "metadata %s: bad rope dimension %u for head size %u", key, c->n_rot, c->head_dim);
    key_name(key, sizeof key, a, "rope.freq_base");
    c->rope_freq_base = gguf_get_f32_or(f, key, 10000.0f);
    if (!(c->rope_freq_base > 0.0f)) return tl_fail(err, "metadata %s: must be positive", key);
    key_name(key, sizeof key, a, "attention.layer_norm_rms_epsilon");
    if (gguf_get_f32(f, key, &c->rms_eps, err)) return -1;
    if (!(c->rms_eps >= 0.0f)) return tl_fail(err, "metadata %s: must be non-negative", key);
    key_name(key, sizeof key, a, "context_length");
    c->n_ctx_train = gguf_get_u32_or(f, key, 2048);
    key_name(key, sizeof key, a, "vocab_size");
    c->n_vocab = gguf_get_u32_or(f, key, 0);
    if (c->n_vocab == 0) {
        const gguf_kv_t *kv = gguf_find_kv(f, "tokenizer.ggml.tokens");
        if (!kv || kv->value.type != GGUF_TYPE_ARRAY || kv->value.v.arr.n == 0 || kv->value.v.arr.n > INT32_MAX)
            return tl_fail(err, "%s: no %s and no tokenizer.ggml.tokens array to size the vocabulary", path, key);
        c->n_vocab = (uint32_t)kv->value.v.arr.n;
    }
    return 0;
}

/* Finds a tensor and checks its shape: ne0 x ne1 (ne1 = 0 means a vector). */
static int find_tensor(const gguf_tensor_t **out, const gguf_file_t *f, const char *name, int64_t ne0, int64_t ne1,
                       bool optional, tl_err_t *err) {
    const gguf_tensor_t *t = gguf_find_tensor(f, name);
    *out = t;
    if (!t) return optional ? 0 : tl_fail(err, "tensor %s: missing", name);
    int64_t want1 = ne1 ? ne1 : 1;
    if (t->ne[0] != ne0 || t->ne[1] != want1 || t->ne[2] != 1 || t->ne[3] != 1)
        return tl_fail(err, "tensor %s: shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", name,
                       (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                       (long long)ne0, (long long)want1);
    size_t rb;
    if (ggml_row_bytes(t->type, ne0, &rb, err)) return tl_fail_prefix(err, "tensor %s", name);
    if (!t->data || t->nbytes < rb * (uint64_t)want1)
        return tl_fail(err, "tensor %s: %llu bytes of data, %zu expected", name, (unsigned long long)t->nbytes,
                       rb * (size_t)want1);
    return 0;
}

/* A vector (norm weight or bias) as fp32, owned. */
static int load_vector(float **out, const gguf_file_t *f, const char *name, int64_t n, bool optional, tl_err_t *err) {
    const gguf_tensor_t *t;
    *out = NULL;
    if (find_tensor(&t, f, name, n, 0, optional, err)) return -1;
    if (!t) return 0;
    float *v = malloc(sizeof(float) * (size_t)n);
    if (!v) return tl_fail(err, "tensor %s: out of memory", name);
    if (t->type == GGML_TYPE_F32) {
        memcpy(v, t->data, sizeof(float) * (size_t)n);
    } else if (!ggml_type_can_dequantize(t->type) || dequantize_row(t->type, t->data, v, n, err)) {
        free(v);
        return tl_fail(err, "tensor %s: cannot read type %s", name,
                       ggml_type_name(t->type) ? ggml_type_name(t->type) : "unknown");
    }
    *out = v;
    return 0;
}

/* A matmul weight: kept as stored when the matmul handles its type, else dequantized to fp32. */
static int load_matrix(mm_weight_t *w, float **owned, const gguf_file_t *f, const char *name, int64_t n_in,
                       int64_t n_out, tl_err_t *err) {
    const gguf_tensor_t *t;
    *owned = NULL;
    if (find_tensor(&t, f, name, n_in, n_out, false, err)) return -1;
    if (matmul_supports_type(t->type)) return matmul_weight_init(w, name, t->type, n_in, n_out, t->data, err);
    if (!ggml_type_can_dequantize(t->type))
        return tl_fail(err, "tensor %s: unsupported type %s", name,
                       ggml_type_name(t->type) ? ggml_type_name(t->type) : "unknown");
    float *v = malloc(sizeof(float) * (size_t)n_in * (size_t)n_out);
    if (!v) return tl_fail(err, "tensor %s: out of memory", name);
    size_t rb;
    if (ggml_row_bytes(t->type, n_in, &rb, err)) {
        free(v);
        return tl_fail_prefix(err, "tensor %s", name);
    }
    for (int64_t r = 0; r < n_out; r++)
        if (dequantize_row(t->type, (const char *)t->data + (size_t)r * rb, v + r * n_in, n_in, err)) {
            free(v);
            return tl_fail_prefix(err, "tensor %s", name);
        }
    *owned = v;
    return matmul_weight_init(w, name, GGML_TYPE_F32, n_in, n_out, v, err);
}

static int load_weights(model_t *m, tl_err_t *err) {
    const gguf_file_t *f = m->gguf;
    const model_config_t *c = &m->cfg;
    int64_t E = c->n_embd, Q = (int64_t)c->n_head * c->head_dim, KV = (int64_t)c->n_head_kv * c->head_dim;
    const gguf_tensor_t *t;
    if (find_tensor(&t, f, "token_embd.weight", E, c->n_vocab, false, err)) return -1;
    if (!ggml_type_can_dequantize(t->type) && t->type != GGML_TYPE_F32)
        return tl_fail(err, "tensor token_embd.weight: unsupported type %s",
                       ggml_type_name(t->type) ? ggml_type_name(t->type) : "unknown");
    m->tok_embd = t;
    if (ggml_row_bytes(t->type, E, &m->tok_embd_row_bytes, err)) return -1;
    if (load_vector(&m->output_norm, f, "output_norm.weight", E, false, err)) return -1;
    const gguf_tensor_t *out;
    if (find_tensor(&out, f, "output.weight", E, c->n_vocab, true, err)) return -1;
    m->cfg.tied_output = out == NULL;
    if (load_matrix(&m->output, &m->owned[0], f, out ? "output.weight" : "token_embd.weight", E, c->n_vocab, err))
        return -1;
    m->layers = calloc(c->n_layer, sizeof *m->layers);
    if (!m->layers) return tl_fail(err, "out of memory for %u layers", c->n_layer);
    uint64_t n_params = (uint64_t)E * c->n_vocab * (m->cfg.tied_output ? 1 : 2) + (uint64_t)E;
    for (uint32_t l = 0; l < c->n_layer; l++) {
        layer_t *L = &m->layers[l];
        char name[96];
#define NAME(s) (snprintf(name, sizeof name, "blk.%u.%s", l, s), name)
        if (load_vector(&L->attn_norm, f, NAME("attn_norm.weight"), E, false, err) ||
            load_vector(&L->ffn_norm, f, NAME("ffn_norm.weight"), E, false, err) ||
            load_matrix(&L->wq, &L->owned[0], f, NAME("attn_q.weight"), E, Q, err) ||
            load_matrix(&L->wk, &L->owned[1], f, NAME("attn_k.weight"), E, KV, err) ||
            load_matrix(&L->wv, &L->owned[2], f, NAME("attn_v.weight"), E, KV, err) ||
            load_matrix(&L->wo, &L->owned[3], f, NAME("attn_output.weight"), Q, E, err) ||
            load_matrix(&L->w_gate, &L->owned[4], f, NAME("ffn_gate.weight"), E, c->n_ff, err) ||
            load_matrix(&L->w_up, &L->owned[5], f, NAME("ffn_up.weight"), E, c->n_ff, err) ||
            load_matrix(&L->w_down, &L->owned[6], f, NAME("ffn_down.weight"), c->n_ff, E, err) ||
            load_vector(&L->bq, f, NAME("attn_q.bias"), Q, true, err) ||
            load_vector(&L->bk, f, NAME("attn_k.bias"), KV, true, err) ||
            load_vector(&L->bv, f, NAME("attn_v.bias"), KV, true, err))
            return -1;
#undef NAME
        n_params += (uint64_t)E * (2 + 2 * Q + 2 * KV + 3 * (uint64_t)c->n_ff);
        if (L->bq) n_params += Q;
        if (L->bk) n_params += KV;
        if (L->bv) n_params += KV;
    }
    m->cfg.n_params = n_params;
    return 0;
}

typedef struct {
    const mm_weight_t *w;
    void *dst;
    const gguf_file_t *drop; /* non-NULL: release each packed range's file pages at once */
} pack_job_t;

static void pack_range(void *ctx, int ith, long g0, long g1) {
    (void)ith;
    const pack_job_t *j = ctx;
    if (!j->drop) {
        mm_pack_groups(j->w, j->dst, g0, g1);
        return;
    }
    for (long a = g0; a < g1; a += 64) { /* ~0.6 MiB of Q8_0 rows at a time */
        long b = a + 64 < g1 ? a + 64 : g1;
        mm_pack_groups(j->w, j->dst, a, b);
        int64_t r0 = a * MM_PACK_ROWS, r1 = b * MM_PACK_ROWS < j->w->n_out ? b * MM_PACK_ROWS : j->w->n_out;
        gguf_drop_pages(j->drop, (const char *)j->w->data + (size_t)r0 * j->w->row_bytes, (size_t)(r1 - r0) * j->w->row_bytes);
    }
}

/* Repacks every Q8_0 matrix of the blocks into row groups of 16
 * (matmul_pack.h) on the thread pool (the output matrix: on first use, in
 * model_output_weight); the file's pages of a packed matrix are then released (they
 * are read again only where something reads the original rows: token
 * lookups in a tied token_embd, training's dequantized products). */
static int pack_weights(model_t *m, tl_err_t *err) {
    size_t cap = 7 * (size_t)m->cfg.n_layer;
    mm_weight_t **ws = malloc(cap * sizeof *ws);
    m->packs = calloc(cap, sizeof *m->packs);
    if (!ws || !m->packs) {
        free(ws);
        return tl_fail(err, "out of memory for packed weights");
    }
    int n = 0;
    for (uint32_t l = 0; l < m->cfg.n_layer; l++) {
        layer_t *L = &m->layers[l];
        mm_weight_t *lw[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 7; i++) ws[n++] = lw[i];
    }
    for (int i = 0; i < n; i++) {
        mm_weight_t *w = ws[i];
        if (!mm_pack_supports(w)) continue;
        size_t bytes = mm_pack_bytes(w);
        void *dst = NULL;
        if (posix_memalign(&dst, 64, bytes) != 0) {
            free(ws);
            return tl_fail(err, "out of memory packing a %zu-byte weight", bytes);
        }
        m->packs[m->n_packs++] = dst;
        pack_job_t j = {.w = w, .dst = dst};
        threadpool_for(m->pool, (long)((w->n_out + MM_PACK_ROWS - 1) / MM_PACK_ROWS), 16, pack_range, &j);
        w->pack = dst;
        gguf_drop_pages(m->gguf, w->data, (size_t)w->n_out * w->row_bytes);
    }
    free(ws);
    return 0;
}

const mm_weight_t *model_output_weight(const model_t *cm) {
    model_t *m = (model_t *)cm; /* the lazily built pack is a cache; the lock serialises it */
    pthread_mutex_lock(&m->output_lock);
    const mm_weight_t *w = &m->output;
    if (!m->output_packed.pack && mm_pack_supports(w)) {
        void *dst = NULL;
        /* out of memory: the unpacked kernels give the same bits, only slower */
        if (posix_memalign(&dst, 64, mm_pack_bytes(w)) == 0) {
            /* pages dropped range by range: the file's rows and their packed copy are not both resident */
            pack_job_t j = {.w = w, .dst = dst, .drop = m->gguf};
            threadpool_for(m->pool, (long)((w->n_out + MM_PACK_ROWS - 1) / MM_PACK_ROWS), 16, pack_range, &j);
            m->output_packed = m->output;
            m->output_packed.pack = dst;
            gguf_drop_pages(m->gguf, w->data, (size_t)w->n_out * w->row_bytes); /* the chunks' boundary pages */
        }
    }
    if (m->output_packed.pack) w = &m->output_packed;
    pthread_mutex_unlock(&m->output_lock);
    return w;
}

int model_load(model_t **out, const char *path, int n_threads, tl_err_t *err) {
    *out = NULL;
    model_t *m = calloc(1, sizeof *m);
    if (!m) return tl_fail(err, "%s: out of memory", path);
    m->level = cpu_detect_level();
    pthread_mutex_init(&m->output_lock, NULL);
    if (gguf_open(&m->gguf, path, err) || read_config(&m->cfg, m->gguf, path, err) || load_weights(m, err)) {
        model_free(m);
        return -1;
    }
    if (tokenizer_load(&m->tok, m->gguf, err)) {
        tl_fail_prefix(err, "%s: tokenizer", path);
        model_free(m);
        return -1;
    }
    if (threadpool_new(&m->pool, n_threads, err) || pack_weights(m, err)) {
        model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void model_free(model_t *m) {
    if (!m) return;
    if (m->layers) {
        for (uint32_t l = 0; l < m->cfg.n_layer; l++) {
            layer_t *L = &m->layers[l];
            free(L->attn_norm);
            free(L->ffn_norm);
            free(L->bq);
            free(L->bk);
            free(L->bv);
            for (int i = 0; i < 7; i++) free(L->owned[i]);
        }
        free(m->layers);
    }
    free(m->output_norm);
    free(m->owned[0]);
    for (int i = 0; i < m->n_packs; i++) free(m->packs[i]);
    free(m->packs);
    free((void *)m->output_packed.pack);
    pthread_mutex_destroy(&m->output_lock);
    threadpool_free(m->pool);
    tokenizer_free(m->tok);
    gguf_close(m->gguf);
    free(m);
}

const model_config_t *model_config(const model_t *m) { return &m->cfg; }
const tokenizer_t *model_tokenizer(const model_t *m) { return m->tok; }
const gguf_file_t *model_gguf(const model_t *m) { return m->gguf; }

void model_set_cpu_level(model_t *m, cpu_level_t level) {
    cpu_level_t have = cpu_detect_level();
    m->level = level < have ? level : have;
}
cpu_level_t model_cpu_level(const model_t *m) { return m->level; }
int model_n_threads(const model_t *m) { return threadpool_n_threads(m->pool); }
