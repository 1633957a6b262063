/* GGUF reader: maps a file read-only and validates every count, length,
 * offset and size before using it. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/gguf_internal.h"
#include "quant/types.h"

#define MAX_ARRAY_DEPTH 8

typedef struct {
    const uint8_t *p;
    uint64_t len, pos;
    const char *label;
    tl_err_t *err;
} cursor_t;

static int need(cursor_t *c, uint64_t n, const char *what) {
    if (n > c->len - c->pos)
        return tl_fail(c->err, "truncated: %s needs %llu bytes at offset %llu, file has %llu", what,
                       (unsigned long long)n, (unsigned long long)c->pos, (unsigned long long)c->len);
    return 0;
}

static int rd_u32(cursor_t *c, uint32_t *v, const char *what) {
    if (need(c, 4, what)) return -1;
    memcpy(v, c->p + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int rd_u64(cursor_t *c, uint64_t *v, const char *what) {
    if (need(c, 8, what)) return -1;
    memcpy(v, c->p + c->pos, 8);
    c->pos += 8;
    return 0;
}

static int rd_str(cursor_t *c, gguf_str_t *s, const char *what) {
    uint64_t n;
    if (rd_u64(c, &n, what)) return -1;
    if (n > c->len - c->pos)
        return tl_fail(c->err, "%s: string length %llu at offset %llu runs past end of file (%llu bytes)", what, (unsigned long long)n, (unsigned long long)(c->pos - 8), (unsigned long long)c->len);
    s->ptr = (const char *)c->p + c->pos;
    s->len = n;
    c->pos += n;
    return 0;
}

size_t gguf_scalar_size(uint32_t type) {
    switch (type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

/* Decodes a scalar from raw little-endian bytes (size already checked). */
static int decode_scalar(uint32_t type, const uint8_t *p, gguf_value_t *v, cursor_t *c, const char *key) {
    v->type = type;
    switch (type) {
    case GGUF_TYPE_UINT8: v->v.u64 = p[0]; break;
    case GGUF_TYPE_INT8: v->v.i64 = (int8_t)p[0]; break;
    case GGUF_TYPE_BOOL:
        if (p[0] > 1) return tl_fail(c->err, "key '%s': bool value %u is not 0 or 1", key, p[0]);
        v->v.u64 = p[0];
        break;
    case GGUF_TYPE_UINT16: { uint16_t x; memcpy(&x, p, 2); v->v.u64 = x; break; }
    case GGUF_TYPE_INT16: { int16_t x; memcpy(&x, p, 2); v->v.i64 = x; break; }
    case GGUF_TYPE_UINT32: { uint32_t x; memcpy(&x, p, 4); v->v.u64 = x; break; }
    case GGUF_TYPE_INT32: { int32_t x; memcpy(&x, p, 4); v->v.i64 = x; break; }
    case GGUF_TYPE_FLOAT32: { float x; memcpy(&x, p, 4); v->v.f64 = x; break; }
    case GGUF_TYPE_UINT64: memcpy(&v->v.u64, p, 8); break;
    case GGUF_TYPE_INT64: memcpy(&v->v.i64, p, 8); break;
    case GGUF_TYPE_FLOAT64: memcpy(&v->v.f64, p, 8); break;
    default: return tl_fail(c->err, "key '%s': unknown value type %u", key, type);
    }
    return 0;
}

static int read_value(cursor_t *c, uint32_t type, gguf_value_t *v, const char *key, int depth);

static int read_array(cursor_t *c, gguf_value_t *v, const char *key, int depth) {
    uint32_t et;
    uint64_t n;
    if (depth >= MAX_ARRAY_DEPTH)
        return tl_fail(c->err, "key '%s': arrays nested deeper than %d levels", key, MAX_ARRAY_DEPTH);
    if (rd_u32(c, &et, "array element type") || rd_u64(c, &n, "array length")) return -1;
    v->type = GGUF_TYPE_ARRAY;
    v->v.arr.elem_type = et;
    v->v.arr.n = n;
    v->v.arr.data = c->p + c->pos;
    v->v.arr.elems = NULL;
    uint64_t start = c->pos, room = c->len - c->pos;
    size_t es = gguf_scalar_size(et);
    if (es) {
        if (n > room / es)
            return tl_fail(c->err, "key '%s': array of %llu elements of %zu bytes runs past end of file", key, (unsigned long long)n, es);
        if (et == GGUF_TYPE_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (c->p[c->pos + i] > 1)
                    return tl_fail(c->err, "key '%s': bool element %llu is not 0 or 1", key,
                                   (unsigned long long)i);
        c->pos += n * es;
    } else if (et == GGUF_TYPE_STRING || et == GGUF_TYPE_ARRAY) {
        uint64_t min = et == GGUF_TYPE_STRING ? 8 : 12; /* smallest encoded element */
        if (n > room / min)
            return tl_fail(c->err, "key '%s': array of %llu elements runs past end of file", key,
                           (unsigned long long)n);
        gguf_value_t *elems = calloc(n ? n : 1, sizeof *elems);
        if (!elems) return tl_fail(c->err, "key '%s': out of memory for %llu elements", key,
                                   (unsigned long long)n);
        v->v.arr.elems = elems;
        for (uint64_t i = 0; i < n; i++) {
            if (et == GGUF_TYPE_STRING) {
                elems[i].type = GGUF_TYPE_STRING;
                if (rd_str(c, &elems[i].v.str, "array string")) return tl_fail_prefix(c->err, "key '%s'", key);
            } else if (read_array(c, &elems[i], key, depth + 1)) {
                return -1;
            }
        }
    } else {
        return tl_fail(c->err, "key '%s': unknown array element type %u", key, et);
    }
    v->v.arr.nbytes = c->pos - start;
    return 0;
}

static int read_value(cursor_t *c, uint32_t type, gguf_value_t *v, const char *key, int depth) {
    memset(v, 0, sizeof *v);
    if (type == GGUF_TYPE_STRING) {
        v->type = type;
        if (rd_str(c, &v->v.str, "string value")) return tl_fail_prefix(c->err, "key '%s'", key);
        return 0;
    }
    if (type == GGUF_TYPE_ARRAY) return read_array(c, v, key, depth);
    size_t es = gguf_scalar_size(type);
    if (!es) return tl_fail(c->err, "key '%s': unknown value type %u", key, type);
    if (need(c, es, "value")) return tl_fail_prefix(c->err, "key '%s'", key);
    if (decode_scalar(type, c->p + c->pos, v, c, key)) return -1;
    c->pos += es;
    return 0;
}

void gguf_value_free_elems(gguf_value_t *v) {
    if (v->type != GGUF_TYPE_ARRAY || !v->v.arr.elems) return;
    gguf_value_t *e = (gguf_value_t *)v->v.arr.elems;
    if (v->v.arr.elem_type == GGUF_TYPE_ARRAY)
        for (uint64_t i = 0; i < v->v.arr.n; i++) gguf_value_free_elems(&e[i]);
    free(e);
    v->v.arr.elems = NULL;
}

/* Printable copy of a (possibly binary, possibly long) key for messages. */
static void key_label(const gguf_str_t *s, char *buf, size_t cap) {
    size_t n = s->len < cap - 1 ? (size_t)s->len : cap - 1;
    for (size_t i = 0; i < n; i++) {
        char ch = s->ptr[i];
        buf[i] = (ch >= 32 && ch < 127) ? ch : '?';
    }
    buf[n] = '\0';
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

static int read_kvs(gguf_file_t *f, cursor_t *c) {
    if (f->n_kv > (c->len - c->pos) / 13) /* key length + type + one byte of value */
        return tl_fail(c->err, "metadata count %llu cannot fit in the file", (unsigned long long)f->n_kv);
    f->kv = calloc(f->n_kv ? f->n_kv : 1, sizeof *f->kv);
    if (!f->kv || gguf_index_init(&f->kv_index, f->n_kv)) return tl_fail(c->err, "out of memory");
    for (uint64_t i = 0; i < f->n_kv; i++) {
        gguf_kv_t *kv = &f->kv[i];
        char key[96];
        uint32_t type;
        if (rd_str(c, &kv->key, "key")) return tl_fail_prefix(c->err, "metadata entry %llu", (unsigned long long)i);
        key_label(&kv->key, key, sizeof key);
        if (rd_u32(c, &type, "value type")) return tl_fail_prefix(c->err, "key '%s'", key);
        if (read_value(c, type, &kv->value, key, 0)) {
            f->n_kv = i + 1; /* free what was decoded */
            return -1;
        }
        if (gguf_index_insert(&f->kv_index, i, kv_name, f) != UINT64_MAX) {
            f->n_kv = i + 1;
            return tl_fail(c->err, "duplicate key '%s'", key);
        }
    }
    return 0;
}

static int read_alignment(gguf_file_t *f, tl_err_t *err) {
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv_t *kv = gguf_find_kv(f, "general.alignment");
    if (!kv) return 0;
    uint32_t t = kv->value.type;
    uint64_t a;
    if (t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_UINT64)
        a = kv->value.v.u64;
    else if (t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64)
        a = kv->value.v.i64 < 0 ? 0 : (uint64_t)kv->value.v.i64;
    else
        return tl_fail(err, "key 'general.alignment' is not an integer");
    if (a == 0 || (a & (a - 1)) || a > (1u << 30))
        return tl_fail(err, "key 'general.alignment' = %llu is not a power of two (1..2^30)", (unsigned long long)a);
    f->alignment = a;
    return 0;
}

static int read_tensor_info(gguf_file_t *f, cursor_t *c, uint64_t i) {
    gguf_tensor_t *t = &f->tensors[i];
    gguf_str_t name;
    if (rd_str(c, &name, "tensor name")) return tl_fail_prefix(c->err, "tensor %llu", (unsigned long long)i);
    if (name.len >= sizeof t->name)
        return tl_fail(c->err, "tensor %llu: name of %llu bytes is longer than %zu", (unsigned long long)i, (unsigned long long)name.len, sizeof t->name - 1);
    memcpy(t->name, name.ptr, name.len);
    t->name[name.len] = '\0';
    if (memchr(name.ptr, 0, name.len))
        return tl_fail(c->err, "tensor %llu: name contains a NUL byte", (unsigned long long)i);
    if (rd_u32(c, &t->n_dims, "n_dims")) return tl_fail_prefix(c->err, "tensor '%s'", t->name);
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
        return tl_fail(c->err, "tensor '%s': n_dims %u is not in 1..%d", t->name, t->n_dims,
                       GGUF_MAX_DIMS);
    uint64_t nel = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if ((uint32_t)d >= t->n_dims) continue;
        uint64_t ne;
        if (rd_u64(c, &ne, "dimension")) return tl_fail_prefix(c->err, "tensor '%s'", t->name);
        if (ne == 0 || ne > (uint64_t)INT64_MAX)
            return tl_fail(c->err, "tensor '%s': dimension %d is %lld (must be positive)", t->name, d,
                           (long long)ne);
        if (nel > (uint64_t)INT64_MAX / ne)
            return tl_fail(c->err, "tensor '%s': element count overflows", t->name);
        nel *= ne;
        t->ne[d] = (int64_t)ne;
    }
    if (rd_u32(c, &t->type, "type") || rd_u64(c, &t->offset, "data offset"))
        return tl_fail_prefix(c->err, "tensor '%s'", t->name);
    size_t row;
    if (ggml_row_bytes(t->type, t->ne[0], &row, c->err))
        return tl_fail_prefix(c->err, "tensor '%s'", t->name);
    uint64_t rows = nel / (uint64_t)t->ne[0];
    if (row && rows > UINT64_MAX / row)
        return tl_fail(c->err, "tensor '%s': byte size overflows", t->name);
    t->nbytes = rows * row;
    if (gguf_index_insert(&f->tensor_index, i, tensor_name, f) != UINT64_MAX)
        return tl_fail(c->err, "duplicate tensor name '%s'", t->name);
    return 0;
}

static int cmp_by_offset(const void *a, const void *b) {
    const gguf_tensor_t *x = *(const gguf_tensor_t *const *)a, *y = *(const gguf_tensor_t *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Checks alignment, bounds and overlap of the tensor data; sets data pointers. */
static int place_tensors(gguf_file_t *f, tl_err_t *err) {
    uint64_t room = f->size - f->data_offset;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor_t *t = &f->tensors[i];
        if (t->offset % f->alignment)
            return tl_fail(err, "tensor '%s': data offset %llu is not a multiple of the alignment %llu", t->name, (unsigned long long)t->offset, (unsigned long long)f->alignment);
        if (t->offset > room || t->nbytes > room - t->offset)
            return tl_fail(err, "tensor '%s': data [%llu, +%llu) runs past end of file (data section has %llu bytes)", t->name, (unsigned long long)t->offset, (unsigned long long)t->nbytes,
                           (unsigned long long)room);
        t->data = f->base + f->data_offset + t->offset;
    }
    if (f->n_tensors < 2) return 0;
    const gguf_tensor_t **order = malloc(f->n_tensors * sizeof *order);
    if (!order) return tl_fail(err, "out of memory");
    for (uint64_t i = 0; i < f->n_tensors; i++) order[i] = &f->tensors[i];
    qsort(order, f->n_tensors, sizeof *order, cmp_by_offset);
    int rc = 0;
    for (uint64_t i = 1; i < f->n_tensors && !rc; i++)
        if (order[i]->offset < order[i - 1]->offset + order[i - 1]->nbytes)
            rc = tl_fail(err, "tensor '%s' at offset %llu overlaps tensor '%s'", order[i]->name,
                         (unsigned long long)order[i]->offset, order[i - 1]->name);
    free(order);
    return rc;
}

static int parse(gguf_file_t *f, tl_err_t *err) {
    cursor_t c = {f->base, f->size, 0, f->path, err};
    if (f->size < 4 || memcmp(f->base, "GGUF", 4) != 0)
        return tl_fail(err, "not a GGUF file (bad magic)");
    c.pos = 4;
    if (rd_u32(&c, &f->version, "version")) return -1;
    if (f->version == 1) return tl_fail(err, "GGUF version 1 is not supported (only 2 and 3)");
    if (f->version != 2 && f->version != 3)
        return tl_fail(err, "unsupported GGUF version %u (only 2 and 3)", f->version);
    if (rd_u64(&c, &f->n_tensors, "tensor count") || rd_u64(&c, &f->n_kv, "metadata count")) return -1;
    uint64_t n_tensors = f->n_tensors;
    f->n_tensors = 0; /* nothing allocated yet */
    if (read_kvs(f, &c) || read_alignment(f, err)) return -1;
    if (n_tensors > (c.len - c.pos) / 32) /* smallest tensor info is 32 bytes */
        return tl_fail(err, "tensor count %llu cannot fit in the file", (unsigned long long)n_tensors);
    f->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *f->tensors);
    if (!f->tensors || gguf_index_init(&f->tensor_index, n_tensors)) return tl_fail(err, "out of memory");
    for (uint64_t i = 0; i < n_tensors; i++) {
        f->n_tensors = i + 1;
        if (read_tensor_info(f, &c, i)) return -1;
    }
    f->n_tensors = n_tensors;
    uint64_t pad = (f->alignment - c.pos % f->alignment) % f->alignment;
    f->data_offset = c.pos + pad;
    if (f->data_offset > f->size) {
        if (n_tensors) return tl_fail(err, "truncated: data section at offset %llu is past end of file (%llu bytes)", (unsigned long long)f->data_offset, (unsigned long long)f->size);
        f->data_offset = f->size;
    }
    return place_tensors(f, err);
}

static int finish_open(gguf_file_t **out, gguf_file_t *f, tl_err_t *err) {
    if (parse(f, err)) {
        tl_fail_prefix(err, "%s", f->path);
        gguf_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

static gguf_file_t *new_file(const char *label) {
    gguf_file_t *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->path = strdup(label ? label : "(buffer)");
    if (!f->path) {
        free(f);
        return NULL;
    }
    return f;
}

int gguf_open_buffer(gguf_file_t **out, const void *buf, size_t len, const char *label, tl_err_t *err) {
    *out = NULL;
    gguf_file_t *f = new_file(label);
    if (!f) return tl_fail(err, "%s: out of memory", label ? label : "(buffer)");
    f->base = buf;
    f->size = len;
    return finish_open(out, f, err);
}

int gguf_open(gguf_file_t **out, const char *path, tl_err_t *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return tl_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return tl_fail(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return tl_fail(err, "%s: not a regular file", path);
    }
    if (st.st_size < 4) {
        close(fd);
        return tl_fail(err, "%s: not a GGUF file (%lld bytes)", path, (long long)st.st_size);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return tl_fail(err, "%s: cannot map: %s", path, strerror(e));
    gguf_file_t *f = new_file(path);
    if (!f) {
        munmap(map, (size_t)st.st_size);
        return tl_fail(err, "%s: out of memory", path);
    }
    f->base = map;
    f->size = (uint64_t)st.st_size;
    f->mapped = 1;
    return finish_open(out, f, err);
}

void gguf_drop_pages(const gguf_file_t *f, const void *p, size_t n) {
    if (!f || !f->mapped || !p || n == 0) return;
    long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0) return;
    uintptr_t a = ((uintptr_t)p + (uintptr_t)ps - 1) & ~((uintptr_t)ps - 1), e = ((uintptr_t)p + n) & ~((uintptr_t)ps - 1);
    if (a < (uintptr_t)f->base || e > (uintptr_t)f->base + f->size || e <= a) return;
    madvise((void *)a, e - a, MADV_DONTNEED);
}

void gguf_close(gguf_file_t *f) {
    if (!f) return;
    if (f->kv)
        for (uint64_t i = 0; i < f->n_kv; i++) gguf_value_free_elems(&f->kv[i].value);
    free(f->kv);
    free(f->tensors);
    gguf_index_free(&f->kv_index);
    gguf_index_free(&f->tensor_index);
    if (f->mapped) munmap((void *)f->base, f->size);
    free(f->path);
    free(f);
}
