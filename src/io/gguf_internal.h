/* Private to the GGUF reader and writer: the parsed-file structure and the
 * name index used for O(1) key and tensor lookup and duplicate detection. */
#ifndef TL_IO_GGUF_INTERNAL_H
#define TL_IO_GGUF_INTERNAL_H

#include "io/gguf.h"

/* Open-addressing hash from a byte string to an index (slot value UINT64_MAX = empty). */
typedef struct {
    uint64_t *slots;
    uint64_t mask;
} gguf_index_t;

typedef const char *(*gguf_index_name_fn)(const void *ctx, uint64_t i, uint64_t *len);

int gguf_index_init(gguf_index_t *ix, uint64_t n);
void gguf_index_free(gguf_index_t *ix);
/* Inserts entry i; returns the index of an existing entry with the same name, or UINT64_MAX if inserted. */
uint64_t gguf_index_insert(gguf_index_t *ix, uint64_t i, gguf_index_name_fn name, const void *ctx);
/* Looks a name up; UINT64_MAX if absent. */
uint64_t gguf_index_find(const gguf_index_t *ix, const char *s, uint64_t len, gguf_index_name_fn name,
                         const void *ctx);

struct gguf_file {
    char *path;
    const uint8_t *base;
    uint64_t size;
    int mapped; /* base is an mmap we own */
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset;
    uint64_t n_kv;
    gguf_kv_t *kv;
    uint64_t n_tensors;
    gguf_tensor_t *tensors;
    gguf_index_t kv_index;
    gguf_index_t tensor_index;
};

/* Encoded size of one scalar element of the given type; 0 for STRING/ARRAY/unknown. */
size_t gguf_scalar_size(uint32_t type);
/* Frees element tables decoded for a value (recursively). */
void gguf_value_free_elems(gguf_value_t *v);

#endif
