/* GGUF writer: metadata is encoded (deep-copied) when set; tensor data is
 * copied from the caller's pointers when the file is written atomically. */
#include <stdlib.h>
#include <string.h>

#include "io/atomic_file.h"
#include "io/gguf_internal.h"
#include "quant/types.h"

typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf_t;

typedef struct {
    char *key;
    size_t key_len;
    buf_t enc; /* value type (u32) followed by the encoded value */
} wkv_t;

typedef struct {
    char name[128];
    uint32_t type, n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    const void *data;
    uint64_t nbytes;
} wtensor_t;

struct gguf_writer {
    wkv_t *kv;
    size_t n_kv, cap_kv;
    wtensor_t *t;
    size_t n_t, cap_t;
    uint64_t alignment;
};

static int buf_put(buf_t *b, const void *src, size_t n) {
    if (n > SIZE_MAX - b->len) return -1;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

static int put_u32(buf_t *b, uint32_t v) { return buf_put(b, &v, 4); }
static int put_u64(buf_t *b, uint64_t v) { return buf_put(b, &v, 8); }
static int put_str(buf_t *b, const char *s, uint64_t n) { return put_u64(b, n) || buf_put(b, s, (size_t)n); }

/* Encodes a value's payload (no type tag). */
static int encode_payload(buf_t *b, const gguf_value_t *v, const char *key, tl_err_t *err, int depth) {
    switch (v->type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_BOOL: { uint8_t x = (uint8_t)v->v.u64; return buf_put(b, &x, 1); }
    case GGUF_TYPE_INT8: { int8_t x = (int8_t)v->v.i64; return buf_put(b, &x, 1); }
    case GGUF_TYPE_UINT16: { uint16_t x = (uint16_t)v->v.u64; return buf_put(b, &x, 2); }
    case GGUF_TYPE_INT16: { int16_t x = (int16_t)v->v.i64; return buf_put(b, &x, 2); }
    case GGUF_TYPE_UINT32: return put_u32(b, (uint32_t)v->v.u64);
    case GGUF_TYPE_INT32: { int32_t x = (int32_t)v->v.i64; return buf_put(b, &x, 4); }
    case GGUF_TYPE_FLOAT32: { float x = (float)v->v.f64; return buf_put(b, &x, 4); }
    case GGUF_TYPE_UINT64: return put_u64(b, v->v.u64);
    case GGUF_TYPE_INT64: return buf_put(b, &v->v.i64, 8);
    case GGUF_TYPE_FLOAT64: return buf_put(b, &v->v.f64, 8);
    case GGUF_TYPE_STRING: return put_str(b, v->v.str.ptr, v->v.str.len);
    case GGUF_TYPE_ARRAY: break;
    default: return tl_fail(err, "key '%s': unknown value type %u", key, v->type);
    }
    if (depth >= 8) return tl_fail(err, "key '%s': arrays nested too deeply", key);
    uint32_t et = v->v.arr.elem_type;
    uint64_t n = v->v.arr.n;
    if (put_u32(b, et) || put_u64(b, n)) return tl_fail(err, "key '%s': out of memory", key);
    size_t es = gguf_scalar_size(et);
    if (es && !v->v.arr.elems) {
        if (n > SIZE_MAX / es || (n && !v->v.arr.data))
            return tl_fail(err, "key '%s': array of %llu elements has no data", key, (unsigned long long)n);
        return buf_put(b, v->v.arr.data, (size_t)(n * es));
    }
    if (!es && et != GGUF_TYPE_STRING && et != GGUF_TYPE_ARRAY)
        return tl_fail(err, "key '%s': unknown array element type %u", key, et);
    if (n && !v->v.arr.elems) return tl_fail(err, "key '%s': array of %llu elements has no elements", key,
                                             (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) {
        const gguf_value_t *e = &v->v.arr.elems[i];
        if (e->type != et)
            return tl_fail(err, "key '%s': array element %llu has type %u, array says %u", key,
                           (unsigned long long)i, e->type, et);
        if (encode_payload(b, e, key, err, depth + 1)) return -1;
    }
    return 0;
}

gguf_writer_t *gguf_writer_new(void) {
    gguf_writer_t *w = calloc(1, sizeof *w);
    if (w) w->alignment = GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void gguf_writer_free(gguf_writer_t *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].enc.p);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

static wkv_t *find_kv(gguf_writer_t *w, const char *key, size_t len) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (w->kv[i].key_len == len && memcmp(w->kv[i].key, key, len) == 0) return &w->kv[i];
    return NULL;
}

static int set_len(gguf_writer_t *w, const char *key, size_t len, const gguf_value_t *value, tl_err_t *err) {
    char label[96];
    snprintf(label, sizeof label, "%.*s", (int)(len < 95 ? len : 95), key);
    buf_t enc = {0};
    if (put_u32(&enc, value->type) || encode_payload(&enc, value, label, err, 0)) {
        free(enc.p);
        if (err && !err->msg[0]) tl_fail(err, "key '%s': out of memory", label);
        return -1;
    }
    wkv_t *kv = find_kv(w, key, len);
    if (kv) {
        free(kv->enc.p);
        kv->enc = enc;
        return 0;
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
        wkv_t *p = realloc(w->kv, cap * sizeof *p);
        if (!p) {
            free(enc.p);
            return tl_fail(err, "key '%s': out of memory", label);
        }
        w->kv = p;
        w->cap_kv = cap;
    }
    kv = &w->kv[w->n_kv];
    kv->key = malloc(len ? len : 1);
    if (!kv->key) {
        free(enc.p);
        return tl_fail(err, "key '%s': out of memory", label);
    }
    memcpy(kv->key, key, len);
    kv->key_len = len;
    kv->enc = enc;
    w->n_kv++;
    return 0;
}

int gguf_writer_set(gguf_writer_t *w, const char *key, const gguf_value_t *value, tl_err_t *err) {
    if (err) err->msg[0] = '\0';
    return set_len(w, key, strlen(key), value, err);
}

int gguf_writer_set_u32(gguf_writer_t *w, const char *key, uint32_t v, tl_err_t *err) {
    gguf_value_t val = {.type = GGUF_TYPE_UINT32, .v.u64 = v};
    return gguf_writer_set(w, key, &val, err);
}

int gguf_writer_set_f32(gguf_writer_t *w, const char *key, float v, tl_err_t *err) {
    gguf_value_t val = {.type = GGUF_TYPE_FLOAT32, .v.f64 = v};
    return gguf_writer_set(w, key, &val, err);
}

int gguf_writer_set_bool(gguf_writer_t *w, const char *key, bool v, tl_err_t *err) {
    gguf_value_t val = {.type = GGUF_TYPE_BOOL, .v.u64 = v ? 1 : 0};
    return gguf_writer_set(w, key, &val, err);
}

int gguf_writer_set_str(gguf_writer_t *w, const char *key, const char *v, tl_err_t *err) {
    gguf_value_t val = {.type = GGUF_TYPE_STRING, .v.str = {v, strlen(v)}};
    return gguf_writer_set(w, key, &val, err);
}

int gguf_writer_remove(gguf_writer_t *w, const char *key) {
    wkv_t *kv = find_kv(w, key, strlen(key));
    if (!kv) return -1;
    free(kv->key);
    free(kv->enc.p);
    size_t i = (size_t)(kv - w->kv);
    memmove(kv, kv + 1, (w->n_kv - i - 1) * sizeof *kv);
    w->n_kv--;
    return 0;
}

int gguf_writer_set_alignment(gguf_writer_t *w, uint64_t alignment, tl_err_t *err) {
    if (alignment == 0 || (alignment & (alignment - 1)) || alignment > (1u << 30))
        return tl_fail(err, "alignment %llu is not a power of two (1..2^30)", (unsigned long long)alignment);
    w->alignment = alignment;
    return gguf_writer_set_u32(w, "general.alignment", (uint32_t)alignment, err);
}

int gguf_writer_copy_kv(gguf_writer_t *w, const gguf_file_t *src, tl_err_t *err) {
    for (uint64_t i = 0; i < gguf_n_kv(src); i++) {
        const gguf_kv_t *kv = gguf_kv(src, i);
        if (err) err->msg[0] = '\0';
        if (set_len(w, kv->key.ptr, (size_t)kv->key.len, &kv->value, err))
            return tl_fail_prefix(err, "%s", gguf_path(src));
    }
    const gguf_kv_t *al = gguf_find_kv(src, "general.alignment");
    if (al) w->alignment = gguf_alignment(src);
    return 0;
}

int gguf_writer_add_tensor(gguf_writer_t *w, const char *name, uint32_t type, uint32_t n_dims,
                           const int64_t *ne, const void *data, uint64_t nbytes, tl_err_t *err) {
    size_t len = strlen(name);
    if (len == 0 || len >= sizeof w->t[0].name)
        return tl_fail(err, "tensor '%s': name must be 1..%zu bytes", name, sizeof w->t[0].name - 1);
    if (n_dims == 0 || n_dims > GGUF_MAX_DIMS)
        return tl_fail(err, "tensor '%s': n_dims %u is not in 1..%d", name, n_dims, GGUF_MAX_DIMS);
    uint64_t nel = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0 || nel > (uint64_t)INT64_MAX / (uint64_t)ne[d])
            return tl_fail(err, "tensor '%s': dimension %u is %lld", name, d, (long long)ne[d]);
        nel *= (uint64_t)ne[d];
    }
    size_t row;
    if (ggml_row_bytes(type, ne[0], &row, err)) return tl_fail_prefix(err, "tensor '%s'", name);
    uint64_t rows = nel / (uint64_t)ne[0];
    if ((row && rows > UINT64_MAX / row) || rows * row != nbytes)
        return tl_fail(err, "tensor '%s': %llu bytes given, shape and type %s need %llu", name,
                       (unsigned long long)nbytes, ggml_type_name(type), (unsigned long long)(rows * row));
    if (nbytes && !data) return tl_fail(err, "tensor '%s': no data", name);
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return tl_fail(err, "duplicate tensor name '%s'", name);
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 64;
        wtensor_t *p = realloc(w->t, cap * sizeof *p);
        if (!p) return tl_fail(err, "tensor '%s': out of memory", name);
        w->t = p;
        w->cap_t = cap;
    }
    wtensor_t *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    memcpy(t->name, name, len + 1);
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = (uint32_t)d < n_dims ? ne[d] : 1;
    t->data = data;
    t->nbytes = nbytes;
    return 0;
}

static uint64_t pad_to(uint64_t x, uint64_t a) { return (a - x % a) % a; }

/* Header, metadata and tensor infos, with tensor offsets assigned in order. */
static int build_header(const gguf_writer_t *w, buf_t *b, uint64_t alignment) {
    if (buf_put(b, "GGUF", 4) || put_u32(b, 3) || put_u64(b, w->n_t) || put_u64(b, w->n_kv)) return -1;
    for (size_t i = 0; i < w->n_kv; i++)
        if (put_str(b, w->kv[i].key, w->kv[i].key_len) || buf_put(b, w->kv[i].enc.p, w->kv[i].enc.len)) return -1;
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor_t *t = &w->t[i];
        if (put_str(b, t->name, strlen(t->name)) || put_u32(b, t->n_dims)) return -1;
        for (uint32_t d = 0; d < t->n_dims; d++)
            if (put_u64(b, (uint64_t)t->ne[d])) return -1;
        if (put_u32(b, t->type) || put_u64(b, off)) return -1;
        off += t->nbytes + pad_to(t->nbytes, alignment);
    }
    return 0;
}

/* The alignment the file will declare: general.alignment if set, else the writer's. */
static int effective_alignment(const gguf_writer_t *w, uint64_t *out, tl_err_t *err) {
    *out = w->alignment;
    const wkv_t *kv = NULL;
    for (size_t i = 0; i < w->n_kv; i++)
        if (w->kv[i].key_len == 17 && !memcmp(w->kv[i].key, "general.alignment", 17)) kv = &w->kv[i];
    if (!kv) return 0;
    uint32_t type;
    memcpy(&type, kv->enc.p, 4);
    uint64_t a = 0;
    size_t es = gguf_scalar_size(type);
    if (type == GGUF_TYPE_UINT8 || type == GGUF_TYPE_UINT16 || type == GGUF_TYPE_UINT32 || type == GGUF_TYPE_UINT64)
        memcpy(&a, kv->enc.p + 4, es); /* little-endian: the low bytes */
    if (a == 0 || (a & (a - 1)) || a > (1u << 30))
        return tl_fail(err, "key 'general.alignment' is not an unsigned power of two");
    *out = a;
    return 0;
}

int gguf_writer_write(gguf_writer_t *w, const char *path, tl_err_t *err) {
    uint64_t alignment;
    if (effective_alignment(w, &alignment, err)) return tl_fail_prefix(err, "%s", path);
    buf_t hdr = {0};
    if (build_header(w, &hdr, alignment)) {
        free(hdr.p);
        return tl_fail(err, "%s: out of memory building the header", path);
    }
    atomic_file_t af;
    if (atomic_file_open(&af, path, err)) {
        free(hdr.p);
        return -1;
    }
    int rc = atomic_file_write(&af, hdr.p, hdr.len, err) ||
             atomic_file_pad(&af, (size_t)pad_to(hdr.len, alignment), err);
    free(hdr.p);
    for (size_t i = 0; i < w->n_t && !rc; i++)
        rc = atomic_file_write(&af, w->t[i].data, (size_t)w->t[i].nbytes, err) ||
             atomic_file_pad(&af, (size_t)pad_to(w->t[i].nbytes, alignment), err);
    if (rc) {
        atomic_file_abort(&af);
        return -1;
    }
    return atomic_file_commit(&af, err);
}
