/* GGUF accessors: header facts, metadata lookup, typed getters, tensor table. */
#include <string.h>

#include "io/gguf_internal.h"

const char *gguf_path(const gguf_file_t *f) { return f->path; }
uint32_t gguf_version(const gguf_file_t *f) { return f->version; }
uint64_t gguf_alignment(const gguf_file_t *f) { return f->alignment; }
uint64_t gguf_data_offset(const gguf_file_t *f) { return f->data_offset; }
uint64_t gguf_file_size(const gguf_file_t *f) { return f->size; }
uint64_t gguf_n_kv(const gguf_file_t *f) { return f->n_kv; }
uint64_t gguf_n_tensors(const gguf_file_t *f) { return f->n_tensors; }

const gguf_kv_t *gguf_kv(const gguf_file_t *f, uint64_t i) { return i < f->n_kv ? &f->kv[i] : NULL; }

const gguf_tensor_t *gguf_tensor(const gguf_file_t *f, uint64_t i) {
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

static const char *kv_name(const void *ctx, uint64_t i, uint64_t *len) {
    const gguf_kv_t *kv = &((const gguf_file_t *)ctx)->kv[i];
    *len = kv->key.len;
    return kv->key.ptr;
}

static const char *tensor_name(const void *ctx, uint64_t i, uint64_t *len) {
    const char *s = ((const gguf_file_t *)ctx)->tensors[i].name;
    *len = strlen(s);
    return s;
}

const gguf_kv_t *gguf_find_kv(const gguf_file_t *f, const char *key) {
    uint64_t i = gguf_index_find(&f->kv_index, key, strlen(key), kv_name, f);
    return i == UINT64_MAX ? NULL : &f->kv[i];
}

const gguf_tensor_t *gguf_find_tensor(const gguf_file_t *f, const char *name) {
    uint64_t i = gguf_index_find(&f->tensor_index, name, strlen(name), tensor_name, f);
    return i == UINT64_MAX ? NULL : &f->tensors[i];
}

int gguf_value_elem(const gguf_value_t *arr, uint64_t i, gguf_value_t *out) {
    if (arr->type != GGUF_TYPE_ARRAY || i >= arr->v.arr.n) return -1;
    if (arr->v.arr.elems) {
        *out = arr->v.arr.elems[i];
        return 0;
    }
    size_t es = gguf_scalar_size(arr->v.arr.elem_type);
    if (!es || !arr->v.arr.data) return -1;
    const uint8_t *p = arr->v.arr.data + i * es;
    memset(out, 0, sizeof *out);
    out->type = arr->v.arr.elem_type;
    switch (out->type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_BOOL: out->v.u64 = p[0]; break;
    case GGUF_TYPE_INT8: out->v.i64 = (int8_t)p[0]; break;
    case GGUF_TYPE_UINT16: { uint16_t x; memcpy(&x, p, 2); out->v.u64 = x; break; }
    case GGUF_TYPE_INT16: { int16_t x; memcpy(&x, p, 2); out->v.i64 = x; break; }
    case GGUF_TYPE_UINT32: { uint32_t x; memcpy(&x, p, 4); out->v.u64 = x; break; }
    case GGUF_TYPE_INT32: { int32_t x; memcpy(&x, p, 4); out->v.i64 = x; break; }
    case GGUF_TYPE_FLOAT32: { float x; memcpy(&x, p, 4); out->v.f64 = x; break; }
    case GGUF_TYPE_UINT64: memcpy(&out->v.u64, p, 8); break;
    case GGUF_TYPE_INT64: memcpy(&out->v.i64, p, 8); break;
    case GGUF_TYPE_FLOAT64: memcpy(&out->v.f64, p, 8); break;
    default: return -1;
    }
    return 0;
}

static const gguf_kv_t *need_kv(const gguf_file_t *f, const char *key, tl_err_t *err) {
    const gguf_kv_t *kv = gguf_find_kv(f, key);
    if (!kv) tl_fail(err, "%s: missing key '%s'", f->path, key);
    return kv;
}

static int is_unsigned(uint32_t t) {
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_UINT64;
}

static int is_signed(uint32_t t) {
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64;
}

int gguf_get_i64(const gguf_file_t *f, const char *key, int64_t *out, tl_err_t *err) {
    const gguf_kv_t *kv = need_kv(f, key, err);
    if (!kv) return -1;
    uint32_t t = kv->value.type;
    if (is_signed(t)) {
        *out = kv->value.v.i64;
        return 0;
    }
    if (is_unsigned(t) && kv->value.v.u64 <= (uint64_t)INT64_MAX) {
        *out = (int64_t)kv->value.v.u64;
        return 0;
    }
    return tl_fail(err, "%s: key '%s' is not an integer that fits in int64", f->path, key);
}

int gguf_get_u32(const gguf_file_t *f, const char *key, uint32_t *out, tl_err_t *err) {
    const gguf_kv_t *kv = need_kv(f, key, err);
    if (!kv) return -1;
    uint32_t t = kv->value.type;
    if ((is_unsigned(t) && kv->value.v.u64 <= UINT32_MAX) ||
        (is_signed(t) && kv->value.v.i64 >= 0 && kv->value.v.i64 <= (int64_t)UINT32_MAX)) {
        *out = (uint32_t)kv->value.v.u64;
        return 0;
    }
    return tl_fail(err, "%s: key '%s' is not an integer that fits in uint32", f->path, key);
}

int gguf_get_f32(const gguf_file_t *f, const char *key, float *out, tl_err_t *err) {
    const gguf_kv_t *kv = need_kv(f, key, err);
    if (!kv) return -1;
    uint32_t t = kv->value.type;
    if (t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64) *out = (float)kv->value.v.f64;
    else if (is_unsigned(t)) *out = (float)kv->value.v.u64;
    else if (is_signed(t)) *out = (float)kv->value.v.i64;
    else return tl_fail(err, "%s: key '%s' is not a number", f->path, key);
    return 0;
}

int gguf_get_bool(const gguf_file_t *f, const char *key, bool *out, tl_err_t *err) {
    const gguf_kv_t *kv = need_kv(f, key, err);
    if (!kv) return -1;
    if (kv->value.type != GGUF_TYPE_BOOL) return tl_fail(err, "%s: key '%s' is not a bool", f->path, key);
    *out = kv->value.v.u64 != 0;
    return 0;
}

int gguf_get_str(const gguf_file_t *f, const char *key, gguf_str_t *out, tl_err_t *err) {
    const gguf_kv_t *kv = need_kv(f, key, err);
    if (!kv) return -1;
    if (kv->value.type != GGUF_TYPE_STRING) return tl_fail(err, "%s: key '%s' is not a string", f->path, key);
    *out = kv->value.v.str;
    return 0;
}

int gguf_get_arr(const gguf_file_t *f, const char *key, const gguf_value_t **out, tl_err_t *err) {
    const gguf_kv_t *kv = need_kv(f, key, err);
    if (!kv) return -1;
    if (kv->value.type != GGUF_TYPE_ARRAY) return tl_fail(err, "%s: key '%s' is not an array", f->path, key);
    *out = &kv->value;
    return 0;
}

uint32_t gguf_get_u32_or(const gguf_file_t *f, const char *key, uint32_t dflt) {
    uint32_t v;
    return gguf_find_kv(f, key) && gguf_get_u32(f, key, &v, NULL) == 0 ? v : dflt;
}

float gguf_get_f32_or(const gguf_file_t *f, const char *key, float dflt) {
    float v;
    return gguf_find_kv(f, key) && gguf_get_f32(f, key, &v, NULL) == 0 ? v : dflt;
}

bool gguf_get_bool_or(const gguf_file_t *f, const char *key, bool dflt) {
    bool v;
    return gguf_find_kv(f, key) && gguf_get_bool(f, key, &v, NULL) == 0 ? v : dflt;
}
