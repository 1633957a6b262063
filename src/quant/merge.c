/* LoRA merge: validate the adapter against the base, fold scale * B . A into
 * each targeted weight (threads split the output rows), write the new file. */
#include "quant/merge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/threadpool.h"
#include "io/gguf.h"
#include "quant/quantize.h"
#include "quant/types.h"

typedef struct {
    const gguf_tensor_t *w, *a, *b; /* base weight and its adapter pair */
    void *out;                      /* merged tensor in the output type */
    size_t out_bytes;
    uint32_t out_type;
} merge_item_t;

static bool ends_with(const char *s, const char *suffix, size_t *stem_len) {
    size_t n = strlen(s), k = strlen(suffix);
    if (n <= k || strcmp(s + n - k, suffix) != 0) return false;
    *stem_len = n - k;
    return true;
}

static bool str_eq(gguf_str_t s, const char *want) { return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0; }

static int check_str_key(const gguf_file_t *f, const char *key, const char *want, const char *path, tl_err_t *err) {
    gguf_str_t s;
    if (gguf_get_str(f, key, &s, err)) return tl_fail_prefix(err, "%s", path);
    if (!str_eq(s, want)) return tl_fail(err, "%s: %s is '%.*s', expected '%s'", path, key, (int)s.len, s.ptr, want);
    return 0;
}

/* Dequantizes a whole 2-D tensor to fp32 (rows of ne[0]). */
static float *tensor_to_f32(const gguf_tensor_t *t, const char *path, tl_err_t *err) {
    size_t rb;
    if (!ggml_type_can_dequantize(t->type) && t->type != GGML_TYPE_F32) {
        tl_fail(err, "%s: tensor %s: type %s cannot be read", path, t->name, ggml_type_name(t->type) ? ggml_type_name(t->type) : "?");
        return NULL;
    }
    if (ggml_row_bytes(t->type, t->ne[0], &rb, err)) {
        tl_fail_prefix(err, "%s: tensor %s", path, t->name);
        return NULL;
    }
    float *v = malloc(sizeof(float) * (size_t)(t->ne[0] * t->ne[1]));
    if (!v) {
        tl_fail(err, "%s: tensor %s: out of memory", path, t->name);
        return NULL;
    }
    for (int64_t r = 0; r < t->ne[1]; r++) {
        const char *src = (const char *)t->data + (size_t)r * rb;
        if (t->type == GGML_TYPE_F32) memcpy(v + r * t->ne[0], src, rb);
        else if (dequantize_row(t->type, src, v + r * t->ne[0], t->ne[0], err)) {
            tl_fail_prefix(err, "%s: tensor %s", path, t->name);
            free(v);
            return NULL;
        }
    }
    return v;
}

/* ---- validation ---- */

/* Pairs every adapter tensor with its partner and base weight. Fills items (one per pair). */
static int collect_pairs(const gguf_file_t *base, const gguf_file_t *ad, const char *ad_path, merge_item_t *items,
                         int *n_items, tl_err_t *err) {
    *n_items = 0;
    for (uint64_t i = 0; i < gguf_n_tensors(ad); i++) {
        const gguf_tensor_t *t = gguf_tensor(ad, i);
        size_t stem;
        bool is_a = ends_with(t->name, ".lora_a", &stem), is_b = !is_a && ends_with(t->name, ".lora_b", &stem);
        if (!is_a && !is_b)
            return tl_fail(err, "%s: tensor %s is not a LoRA tensor (expected NAME.lora_a / NAME.lora_b)", ad_path, t->name);
        char wname[128], other[136];
        memcpy(wname, t->name, stem);
        wname[stem] = '\0';
        snprintf(other, sizeof other, "%s.%s", wname, is_a ? "lora_b" : "lora_a");
        const gguf_tensor_t *o = gguf_find_tensor(ad, other);
        if (!o) return tl_fail(err, "%s: tensor %s has no partner %s", ad_path, t->name, other);
        if (is_b) continue; /* each pair once, from its lora_a */
        const gguf_tensor_t *w = gguf_find_tensor(base, wname);
        if (!w) return tl_fail(err, "%s: tensor %s: the base model has no tensor %s", ad_path, t->name, wname);
        if (w->n_dims != 2) return tl_fail(err, "%s: tensor %s: base tensor %s is not a matrix", ad_path, t->name, wname);
        if (t->n_dims != 2 || o->n_dims != 2 || t->ne[0] != w->ne[0] || o->ne[1] != w->ne[1] || t->ne[1] != o->ne[0] ||
            t->ne[1] <= 0)
            return tl_fail(err,
                           "%s: tensors %s [%lld, %lld] and %s [%lld, %lld] do not fit base %s [%lld, %lld] "
                           "(expected lora_a [n_in, r], lora_b [r, n_out])",
                           ad_path, t->name, (long long)t->ne[0], (long long)t->ne[1], o->name, (long long)o->ne[0],
                           (long long)o->ne[1], wname, (long long)w->ne[0], (long long)w->ne[1]);
        items[*n_items].w = w;
        items[*n_items].a = t;
        items[*n_items].b = o;
        (*n_items)++;
    }
    if (*n_items == 0) return tl_fail(err, "%s: adapter has no LoRA tensors", ad_path);
    return 0;
}

static int check_adapter(const gguf_file_t *base, const gguf_file_t *ad, const char *base_path, const char *ad_path,
                         tl_err_t *err) {
    if (check_str_key(ad, "general.type", "adapter", ad_path, err) || check_str_key(ad, "adapter.type", "lora", ad_path, err))
        return -1;
    gguf_str_t arch_b, arch_a;
    if (gguf_get_str(base, "general.architecture", &arch_b, err)) return tl_fail_prefix(err, "%s", base_path);
    if (gguf_get_str(ad, "general.architecture", &arch_a, err)) return tl_fail_prefix(err, "%s", ad_path);
    if (arch_a.len != arch_b.len || memcmp(arch_a.ptr, arch_b.ptr, arch_a.len) != 0)
        return tl_fail(err, "%s: general.architecture is '%.*s' but the base model is '%.*s'", ad_path, (int)arch_a.len,
                       arch_a.ptr, (int)arch_b.len, arch_b.ptr);
    return 0;
}

/* ---- the merge of one weight ---- */

typedef struct {
    const merge_item_t *it;
    const float *a, *b; /* A: r rows of n_in; B: n_out rows of r */
    float scale;
    int64_t n_in, n_out, r;
    size_t in_rb, out_rb;
    tl_err_t *errs; /* one per thread */
    int *failed;
} merge_job_t;

static void merge_rows(void *ctx, int ith, int nth) {
    merge_job_t *j = ctx;
    long r0, r1;
    threadpool_split(j->n_out, ith, nth, &r0, &r1);
    if (r0 >= r1) return;
    tl_err_t *e = &j->errs[ith];
    float *row = malloc(sizeof(float) * (size_t)j->n_in);
    if (!row) {
        tl_fail(e, "tensor %s: out of memory", j->it->w->name);
        j->failed[ith] = 1;
        return;
    }
    for (long o = r0; o < r1; o++) {
        const char *src = (const char *)j->it->w->data + (size_t)o * j->in_rb;
        char *dst = (char *)j->it->out + (size_t)o * j->out_rb;
        int rc = 0;
        if (j->it->w->type == GGML_TYPE_F32) memcpy(row, src, j->in_rb);
        else rc = dequantize_row(j->it->w->type, src, row, j->n_in, e);
        for (int64_t k = 0; !rc && k < j->r; k++) {
            float c = j->scale * j->b[o * j->r + k];
            const float *ak = j->a + k * j->n_in;
            for (int64_t i = 0; i < j->n_in; i++) row[i] += c * ak[i];
        }
        if (!rc && j->it->out_type == GGML_TYPE_F32) memcpy(dst, row, j->out_rb);
        else if (!rc) rc = quantize_row(j->it->out_type, row, dst, j->n_in, NULL, e);
        if (rc) {
            tl_fail_prefix(e, "tensor %s row %ld", j->it->w->name, o);
            j->failed[ith] = 1;
            break;
        }
    }
    free(row);
}

static int merge_one(merge_item_t *it, float scale, uint32_t want_type, threadpool_t *pool, const char *ad_path,
                     tl_err_t *err) {
    const gguf_tensor_t *w = it->w;
    it->out_type = want_type == MERGE_TYPE_SAME ? w->type : want_type;
    if (it->out_type != GGML_TYPE_F32 && !quantize_type_supported(it->out_type))
        return tl_fail(err, "tensor %s: cannot write type %s", w->name,
                       ggml_type_name(it->out_type) ? ggml_type_name(it->out_type) : "?");
    size_t in_rb, out_rb;
    if (ggml_row_bytes(w->type, w->ne[0], &in_rb, err) || ggml_row_bytes(it->out_type, w->ne[0], &out_rb, err))
        return tl_fail_prefix(err, "tensor %s", w->name);
    if (!ggml_type_can_dequantize(w->type) && w->type != GGML_TYPE_F32)
        return tl_fail(err, "tensor %s: base type %s cannot be read", w->name, ggml_type_name(w->type) ? ggml_type_name(w->type) : "?");
    int nth = threadpool_n_threads(pool);
    merge_job_t j = {.it = it, .scale = scale, .n_in = w->ne[0], .n_out = w->ne[1], .r = it->a->ne[1],
                     .in_rb = in_rb, .out_rb = out_rb};
    float *a = tensor_to_f32(it->a, ad_path, err), *b = a ? tensor_to_f32(it->b, ad_path, err) : NULL;
    it->out_bytes = out_rb * (size_t)w->ne[1];
    it->out = malloc(it->out_bytes);
    j.errs = calloc((size_t)nth, sizeof(tl_err_t));
    j.failed = calloc((size_t)nth, sizeof(int));
    int rc = -1;
    if (!a || !b) goto done;
    if (!it->out || !j.errs || !j.failed) {
        tl_fail(err, "tensor %s: out of memory", w->name);
        goto done;
    }
    j.a = a;
    j.b = b;
    threadpool_run(pool, merge_rows, &j);
    rc = 0;
    for (int t = 0; t < nth; t++)
        if (j.failed[t]) {
            *err = j.errs[t];
            rc = -1;
            break;
        }
done:
    free(a);
    free(b);
    free(j.errs);
    free(j.failed);
    return rc;
}

/* ---- the file ---- */

int merge_lora_file(const char *base_path, const char *adapter_path, const char *out_path, const merge_opts_t *opts,
                    merge_report_t *report, tl_err_t *err) {
    memset(report, 0, sizeof *report);
    gguf_file_t *base = NULL, *ad = NULL;
    threadpool_t *pool = NULL;
    gguf_writer_t *wr = NULL;
    merge_item_t *items = NULL;
    int n_items = 0, rc = -1;
    if (gguf_open(&base, base_path, err) || gguf_open(&ad, adapter_path, err)) goto done;
    if (check_adapter(base, ad, base_path, adapter_path, err)) goto done;
    items = calloc(gguf_n_tensors(ad) + 1, sizeof *items);
    if (!items) {
        tl_fail(err, "%s: out of memory", adapter_path);
        goto done;
    }
    if (collect_pairs(base, ad, adapter_path, items, &n_items, err)) goto done;
    float alpha = gguf_get_f32_or(ad, "adapter.lora.alpha", 0.0f);
    if (threadpool_new(&pool, opts->n_threads > 0 ? opts->n_threads : cpu_n_cores(), err)) goto done;
    report->alpha = alpha;
    for (int k = 0; k < n_items; k++) {
        int64_t r = items[k].a->ne[1];
        float scale = alpha != 0.0f ? alpha / (float)r : 1.0f;
        if (r > report->rank) report->rank = (int)r;
        report->scale = scale;
        if (merge_one(&items[k], scale, opts->adapted_set ? opts->adapted_type : opts->out_type, pool, adapter_path,
                      err))
            goto done;
    }
    wr = gguf_writer_new();
    if (!wr) {
        tl_fail(err, "%s: out of memory", out_path);
        goto done;
    }
    if (gguf_writer_copy_kv(wr, base, err)) goto done;
    {
        /* the adapter's label-prior bias (task/calib.h) replaces the base's */
        const gguf_kv_t *kv = gguf_find_kv(ad, "tasklm.label_bias");
        if (opts->label_bias && !strcmp(opts->label_bias, "none")) gguf_writer_remove(wr, "tasklm.label_bias");
        else if (opts->label_bias) {
            if (gguf_writer_set_str(wr, "tasklm.label_bias", opts->label_bias, err)) goto done;
        } else if (kv && gguf_writer_set(wr, "tasklm.label_bias", &kv->value, err)) goto done;
    }
    if (gguf_alignment(base) != GGUF_DEFAULT_ALIGNMENT && gguf_writer_set_alignment(wr, gguf_alignment(base), err))
        goto done;
    for (uint64_t i = 0; i < gguf_n_tensors(base); i++) {
        const gguf_tensor_t *t = gguf_tensor(base, i);
        const merge_item_t *it = NULL;
        for (int k = 0; k < n_items && !it; k++)
            if (items[k].w == t) it = &items[k];
        int ok = it ? gguf_writer_add_tensor(wr, t->name, it->out_type, t->n_dims, t->ne, it->out, it->out_bytes, err)
                    : gguf_writer_add_tensor(wr, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes, err);
        if (ok) goto done;
    }
    if (gguf_writer_write(wr, out_path, err)) goto done;
    report->n_tensors = (int)gguf_n_tensors(base);
    report->n_merged = n_items;
    gguf_file_t *check = NULL;
    if (gguf_open(&check, out_path, err) == 0) {
        report->out_bytes = gguf_file_size(check);
        gguf_close(check);
    }
    rc = 0;
done:
    for (int k = 0; items && k < n_items; k++) free(items[k].out);
    free(items);
    gguf_writer_free(wr);
    threadpool_free(pool);
    gguf_close(ad);
    gguf_close(base);
    return rc;
}
