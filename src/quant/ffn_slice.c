/* FFN-channel pruning of GGUF files (see ffn_slice.h). */
#include "quant/ffn_slice.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf_prune.h"
#include "quant/quantize.h"
#include "quant/types.h"

typedef struct {
    uint32_t n_layer, n_ff, n_embd;
    char key_blocks[160], key_ff[160];
} ffn_geom_t;

static int ffn_geometry(const gguf_file_t *f, ffn_geom_t *g, tl_err_t *err) {
    gguf_str_t arch;
    char key_embd[160];
    if (gguf_get_str(f, "general.architecture", &arch, err)) return -1;
    int al = (int)(arch.len < 100 ? arch.len : 100);
    snprintf(g->key_blocks, sizeof g->key_blocks, "%.*s.block_count", al, arch.ptr);
    snprintf(g->key_ff, sizeof g->key_ff, "%.*s.feed_forward_length", al, arch.ptr);
    snprintf(key_embd, sizeof key_embd, "%.*s.embedding_length", al, arch.ptr);
    if (gguf_get_u32(f, g->key_blocks, &g->n_layer, err) || gguf_get_u32(f, g->key_ff, &g->n_ff, err) ||
        gguf_get_u32(f, key_embd, &g->n_embd, err))
        return tl_fail_prefix(err, "%s", gguf_path(f));
    if (!g->n_layer || !g->n_ff || !g->n_embd) return tl_fail(err, "%s: zero block count, FFN or embedding size", gguf_path(f));
    return 0;
}

static const char *type_name(uint32_t t) { return ggml_type_name(t) ? ggml_type_name(t) : "unknown"; }

/* ffn_down columns can be cut exactly for plain float types */
static bool plain_float(uint32_t t) { return t == GGML_TYPE_F32 || t == GGML_TYPE_F16 || t == GGML_TYPE_BF16; }

static int matrix(const gguf_file_t *f, uint32_t l, const char *what, int64_t ne0, int64_t ne1,
                  const gguf_tensor_t **out, tl_err_t *err) {
    char name[96];
    snprintf(name, sizeof name, "blk.%u.%s.weight", l, what);
    const gguf_tensor_t *t = gguf_find_tensor(f, name);
    if (!t) return tl_fail(err, "%s: no tensor %s", gguf_path(f), name);
    if (t->n_dims != 2 || t->ne[0] != ne0 || t->ne[1] != ne1)
        return tl_fail(err, "%s: tensor %s is [%lld, %lld], expected [%lld, %lld]", gguf_path(f), name,
                       (long long)t->ne[0], (long long)t->ne[1], (long long)ne0, (long long)ne1);
    size_t rb;
    if (ggml_row_bytes(t->type, ne0, &rb, err)) return tl_fail_prefix(err, "%s: tensor %s", gguf_path(f), name);
    if ((uint64_t)rb * (uint64_t)ne1 > t->nbytes) return tl_fail(err, "%s: tensor %s: data shorter than its shape", gguf_path(f), name);
    *out = t;
    return 0;
}

int ffn_slice_check(const gguf_file_t *f, long n_keep, int down_type, tl_err_t *err) {
    ffn_geom_t g;
    if (ffn_geometry(f, &g, err)) return -1;
    if (n_keep <= 0 || n_keep > (long)g.n_ff) {
        tl_fail(err, "cannot keep %ld FFN channels: %s is %u, the count must be in 1..%u", n_keep, g.key_ff, g.n_ff, g.n_ff);
        return -2;
    }
    for (uint32_t l = 0; l < g.n_layer; l++) {
        const gguf_tensor_t *gate, *up, *down;
        if (matrix(f, l, "ffn_gate", g.n_embd, g.n_ff, &gate, err) || matrix(f, l, "ffn_up", g.n_embd, g.n_ff, &up, err) ||
            matrix(f, l, "ffn_down", g.n_ff, g.n_embd, &down, err))
            return -1;
        uint32_t out_type = down_type == FFN_SLICE_SAME_TYPE ? down->type : (uint32_t)down_type;
        int64_t bs = ggml_type_block_size(out_type);
        if (bs > 1 && n_keep % bs) {
            tl_fail(err, "cannot keep %ld FFN channels: %s %s %s, whose blocks hold %lld values along n_ff; the count must "
                    "be a multiple of %lld", n_keep, down->name, out_type == down->type ? "is" : "would be written as",
                    type_name(out_type), (long long)bs, (long long)bs);
            return -2;
        }
        bool requant = out_type != down->type || (n_keep < (long)g.n_ff && !plain_float(down->type));
        if (requant && (!quantize_type_supported(out_type) ||
                        (down->type != GGML_TYPE_F32 && !ggml_type_can_dequantize(down->type))))
            return tl_fail(err, "%s: tensor %s is %s, which cannot be written as %s after its columns are cut",
                           gguf_path(f), down->name, type_name(down->type), type_name(out_type));
    }
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor_t *t = gguf_tensor(f, i);
        size_t rest = 0;
        long b = gguf_prune_block_of(t->name, &rest);
        if (b < 0) continue;
        if ((uint64_t)b >= g.n_layer)
            return tl_fail(err, "%s: tensor %s: block %ld beyond %s = %u", gguf_path(f), t->name, b, g.key_blocks, g.n_layer);
        const char *r = t->name + rest;
        if (!strncmp(r, "ffn_", 4) && strcmp(r, "ffn_norm.weight") && strcmp(r, "ffn_gate.weight") &&
            strcmp(r, "ffn_up.weight") && strcmp(r, "ffn_down.weight"))
            return tl_fail(err, "%s: tensor %s: FFN-channel pruning handles ffn_gate, ffn_up and ffn_down weights only",
                           gguf_path(f), t->name);
    }
    return 0;
}

/* Rows kept[0..n_keep) of a [n_embd, n_ff] matrix, quantized rows copied whole. */
static void *slice_rows(const gguf_tensor_t *t, const int *kept, int n_keep, uint64_t *nbytes) {
    size_t rb;
    if (ggml_row_bytes(t->type, t->ne[0], &rb, NULL)) return NULL;
    char *out = malloc(rb * (size_t)n_keep);
    if (!out) return NULL;
    for (int i = 0; i < n_keep; i++) memcpy(out + (size_t)i * rb, (const char *)t->data + (size_t)kept[i] * rb, rb);
    *nbytes = (uint64_t)rb * (uint64_t)n_keep;
    return out;
}

/* Columns kept[0..n_keep) of a [n_ff, n_embd] matrix: exact for float types,
 * dequantize - gather - re-quantize to the same type otherwise. */
static void *slice_cols(const gguf_tensor_t *t, const int *kept, int n_keep, const float *act_sq, uint32_t out_type,
                        uint64_t *nbytes, tl_err_t *err) {
    int64_t F = t->ne[0], E = t->ne[1];
    size_t rb_in, rb_out;
    if (ggml_row_bytes(t->type, F, &rb_in, err) || ggml_row_bytes(out_type, n_keep, &rb_out, err)) {
        tl_fail_prefix(err, "tensor %s", t->name);
        return NULL;
    }
    char *out = malloc(rb_out * (size_t)E);
    float *row = malloc(sizeof(float) * (size_t)F), *cut = malloc(sizeof(float) * (size_t)n_keep);
    float *imp = NULL;
    bool ok = out && row && cut;
    if (ok && act_sq && quantize_type_uses_importance(out_type)) {
        /* a small floor keeps channels that never fired from having zero weight */
        double mean = 0;
        for (int i = 0; i < n_keep; i++) mean += act_sq[kept[i]];
        mean /= n_keep;
        imp = malloc(sizeof(float) * (size_t)n_keep);
        ok = imp != NULL;
        for (int i = 0; ok && i < n_keep; i++) imp[i] = act_sq[kept[i]] + (float)(1e-3 * mean) + 1e-20f;
    }
    if (!ok) tl_fail(err, "tensor %s: out of memory", t->name);
    size_t es = t->type == GGML_TYPE_F32 ? 4 : 2;
    for (int64_t r = 0; ok && r < E; r++) {
        const char *src = (const char *)t->data + (size_t)r * rb_in;
        char *dst = out + (size_t)r * rb_out;
        if (plain_float(t->type) && out_type == t->type) {
            for (int i = 0; i < n_keep; i++) memcpy(dst + (size_t)i * es, src + (size_t)kept[i] * es, es);
            continue;
        }
        if (t->type == GGML_TYPE_F32) memcpy(row, src, sizeof(float) * (size_t)F);
        else if (dequantize_row(t->type, src, row, F, err)) {
            tl_fail_prefix(err, "tensor %s", t->name);
            ok = false;
            break;
        }
        for (int i = 0; i < n_keep; i++) cut[i] = row[kept[i]];
        if (quantize_row(out_type, cut, dst, n_keep, imp, err)) {
            tl_fail_prefix(err, "tensor %s: row %lld", t->name, (long long)r);
            ok = false;
        }
    }
    free(row);
    free(cut);
    free(imp);
    if (!ok) {
        free(out);
        return NULL;
    }
    *nbytes = (uint64_t)rb_out * (uint64_t)E;
    return out;
}

int ffn_slice_write(const gguf_file_t *src, const bool *keep_block, const int *kept, int n_keep, const float *act_sq,
                    int down_type, const char *out_path, tl_err_t *err) {
    int ck = ffn_slice_check(src, n_keep, down_type, err);
    if (ck) return -1;
    ffn_geom_t g;
    if (ffn_geometry(src, &g, err)) return -1;
    for (uint32_t l = 0; l < g.n_layer; l++)
        for (int i = 0; i < n_keep; i++) {
            int j = kept[(size_t)l * (size_t)n_keep + (size_t)i];
            if (j < 0 || (uint32_t)j >= g.n_ff || (i && j <= kept[(size_t)l * (size_t)n_keep + (size_t)i - 1]))
                return tl_fail(err, "prune: block %u: FFN channel list not ascending in [0, %u)", l, g.n_ff);
        }
    int *new_index = malloc(sizeof(int) * g.n_layer);
    void **bufs = calloc(3 * (size_t)g.n_layer, sizeof(void *));
    size_t n_bufs = 0;
    gguf_writer_t *w = gguf_writer_new();
    int rc = 0;
    if (!new_index || !bufs || !w) rc = tl_fail(err, "prune: out of memory");
    uint32_t n_kept_blocks = 0;
    for (uint32_t l = 0; !rc && l < g.n_layer; l++)
        new_index[l] = !keep_block || keep_block[l] ? (int)n_kept_blocks++ : -1;
    if (!rc && !n_kept_blocks) rc = tl_fail(err, "prune: every block would be removed");
    bool all = n_keep == (int)g.n_ff;
    if (!rc && gguf_find_kv(src, "general.alignment")) rc = gguf_writer_set_alignment(w, gguf_alignment(src), err);
    if (!rc) rc = gguf_writer_copy_kv(w, src, err);
    if (!rc && keep_block) rc = gguf_writer_set_u32(w, g.key_blocks, n_kept_blocks, err);
    if (!rc) rc = gguf_writer_set_u32(w, g.key_ff, (uint32_t)n_keep, err);
    for (uint64_t i = 0; i < gguf_n_tensors(src) && !rc; i++) {
        const gguf_tensor_t *t = gguf_tensor(src, i);
        size_t rest = 0;
        long b = gguf_prune_block_of(t->name, &rest);
        if (b < 0) {
            rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes, err);
            continue;
        }
        if (new_index[b] < 0) continue;
        char name[160];
        snprintf(name, sizeof name, "blk.%d.%s", new_index[b], t->name + rest);
        const char *r = t->name + rest;
        const int *kb = kept + (size_t)b * (size_t)n_keep;
        bool rows = !strcmp(r, "ffn_gate.weight") || !strcmp(r, "ffn_up.weight"), cols = !strcmp(r, "ffn_down.weight");
        uint32_t out_type = cols && down_type != FFN_SLICE_SAME_TYPE ? (uint32_t)down_type : t->type;
        if ((all && out_type == t->type) || (!rows && !cols)) {
            rc = gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->nbytes, err);
            continue;
        }
        uint64_t nb = 0;
        int64_t ne[GGUF_MAX_DIMS] = {t->ne[0], t->ne[1], 1, 1};
        void *buf;
        if (rows) {
            buf = slice_rows(t, kb, n_keep, &nb);
            ne[1] = n_keep;
            if (!buf) rc = tl_fail(err, "tensor %s: out of memory", t->name);
        } else {
            buf = slice_cols(t, kb, n_keep, act_sq ? act_sq + (size_t)b * g.n_ff : NULL, out_type, &nb, err);
            ne[0] = n_keep;
            if (!buf) rc = -1;
        }
        if (!rc) {
            bufs[n_bufs++] = buf;
            rc = gguf_writer_add_tensor(w, name, out_type, 2, ne, buf, nb, err);
        }
    }
    if (!rc) rc = gguf_writer_write(w, out_path, err);
    gguf_writer_free(w);
    for (size_t i = 0; i < n_bufs; i++) free(bufs[i]);
    free(bufs);
    free(new_index);
    return rc;
}
