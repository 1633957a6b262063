/* GGUF reader (memory-mapped) and writer, byte-compatible with llama.cpp.
 * Every offset, count and size read from a file is bounds-checked; a hostile
 * or truncated file yields a one-line error, never an out-of-bounds read. */
#ifndef TL_IO_GGUF_H
#define TL_IO_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
} gguf_vtype_t;

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

/* A string inside the mapping: not NUL-terminated. */
typedef struct {
    const char *ptr;
    uint64_t len;
} gguf_str_t;

/* One metadata value. Scalars are decoded; arrays keep their element type,
 * count and a pointer to the raw bytes in the mapping; string and nested
 * array elements are reached through gguf_value_elem(). */
typedef struct gguf_value {
    uint32_t type; /* gguf_vtype_t */
    union {
        uint64_t u64; /* UINT8..UINT64 (zero-extended), BOOL (0/1) */
        int64_t i64;  /* INT8..INT64 (sign-extended) */
        double f64;   /* FLOAT32, FLOAT64 */
        gguf_str_t str;
        struct {
            uint32_t elem_type;
            uint64_t n;
            const uint8_t *data; /* raw element bytes in the mapping */
            uint64_t nbytes;     /* total encoded size of the elements */
            const struct gguf_value *elems; /* decoded elements, for STRING and ARRAY element types; NULL otherwise */
        } arr;
    } v;
} gguf_value_t;

typedef struct {
    gguf_str_t key;
    gguf_value_t value;
} gguf_kv_t;

typedef struct {
    char name[128];        /* NUL-terminated copy (names longer than 127 bytes are rejected) */
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) dimension; unused dims are 1 */
    uint32_t type;         /* ggml tensor type, see quant/types.h */
    uint64_t offset;       /* relative to the start of the data section */
    const void *data;      /* inside the mapping */
    uint64_t nbytes;
} gguf_tensor_t;

typedef struct gguf_file gguf_file_t;

/* Opens and validates a file (mmap, read-only). */
int gguf_open(gguf_file_t **out, const char *path, tl_err_t *err);
/* Parses a buffer the caller keeps alive (tests, fuzzing). `label` names it in errors. */
int gguf_open_buffer(gguf_file_t **out, const void *buf, size_t len, const char *label, tl_err_t *err);
void gguf_close(gguf_file_t *f);
/* Tells the kernel that the whole pages inside [p, p + n) of a memory-mapped
 * file are not needed now (they are read again from the file if touched);
 * nothing for a file opened from a buffer. */
void gguf_drop_pages(const gguf_file_t *f, const void *p, size_t n);

const char *gguf_path(const gguf_file_t *f);
uint32_t gguf_version(const gguf_file_t *f);
uint64_t gguf_alignment(const gguf_file_t *f);
uint64_t gguf_data_offset(const gguf_file_t *f); /* start of the tensor data section in the file */
uint64_t gguf_file_size(const gguf_file_t *f);

uint64_t gguf_n_kv(const gguf_file_t *f);
const gguf_kv_t *gguf_kv(const gguf_file_t *f, uint64_t i);
const gguf_kv_t *gguf_find_kv(const gguf_file_t *f, const char *key); /* NULL if absent */
/* Element i of an array value (any element type, nested arrays included). */
int gguf_value_elem(const gguf_value_t *arr, uint64_t i, gguf_value_t *out);

/* Typed getters. Return 0 and fill *out; -1 with a message naming the key when
 * the key is absent or the value does not fit the requested type. Integer getters
 * accept any integer type whose value is in range. */
int gguf_get_u32(const gguf_file_t *f, const char *key, uint32_t *out, tl_err_t *err);
int gguf_get_i64(const gguf_file_t *f, const char *key, int64_t *out, tl_err_t *err);
int gguf_get_f32(const gguf_file_t *f, const char *key, float *out, tl_err_t *err);
int gguf_get_bool(const gguf_file_t *f, const char *key, bool *out, tl_err_t *err);
int gguf_get_str(const gguf_file_t *f, const char *key, gguf_str_t *out, tl_err_t *err);
/* Array of strings: *n elements, each reachable with gguf_value_elem. */
int gguf_get_arr(const gguf_file_t *f, const char *key, const gguf_value_t **out, tl_err_t *err);
/* The same, returning `dflt` (and 0) when the key is absent. */
uint32_t gguf_get_u32_or(const gguf_file_t *f, const char *key, uint32_t dflt);
float gguf_get_f32_or(const gguf_file_t *f, const char *key, float dflt);
bool gguf_get_bool_or(const gguf_file_t *f, const char *key, bool dflt);

uint64_t gguf_n_tensors(const gguf_file_t *f);
const gguf_tensor_t *gguf_tensor(const gguf_file_t *f, uint64_t i);
const gguf_tensor_t *gguf_find_tensor(const gguf_file_t *f, const char *name); /* NULL if absent */

/* ---- writer ----
 * Builds a file in memory (metadata and tensor list), then writes it atomically
 * (temporary name, fsync, rename). Tensor data is copied at write time from the
 * pointer given, which must stay valid until gguf_writer_write returns. */
typedef struct gguf_writer gguf_writer_t;

gguf_writer_t *gguf_writer_new(void);
void gguf_writer_free(gguf_writer_t *w);
int gguf_writer_set_alignment(gguf_writer_t *w, uint64_t alignment, tl_err_t *err);
/* Adds or replaces a key. The value (including strings and array bytes) is deep-copied. */
int gguf_writer_set(gguf_writer_t *w, const char *key, const gguf_value_t *value, tl_err_t *err);
int gguf_writer_set_u32(gguf_writer_t *w, const char *key, uint32_t v, tl_err_t *err);
int gguf_writer_set_f32(gguf_writer_t *w, const char *key, float v, tl_err_t *err);
int gguf_writer_set_bool(gguf_writer_t *w, const char *key, bool v, tl_err_t *err);
int gguf_writer_set_str(gguf_writer_t *w, const char *key, const char *v, tl_err_t *err);
int gguf_writer_remove(gguf_writer_t *w, const char *key);
/* Copies every key of `src` (in order). */
int gguf_writer_copy_kv(gguf_writer_t *w, const gguf_file_t *src, tl_err_t *err);
int gguf_writer_add_tensor(gguf_writer_t *w, const char *name, uint32_t type, uint32_t n_dims,
                           const int64_t *ne, const void *data, uint64_t nbytes, tl_err_t *err);
int gguf_writer_write(gguf_writer_t *w, const char *path, tl_err_t *err);

#endif
