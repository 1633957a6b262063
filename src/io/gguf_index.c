/* Name index for GGUF keys and tensor names: open addressing, FNV-1a hash. */
#include <stdlib.h>
#include <string.h>

#include "io/gguf_internal.h"

#define EMPTY UINT64_MAX

static uint64_t hash_bytes(const char *s, uint64_t len) {
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

int gguf_index_init(gguf_index_t *ix, uint64_t n) {
    uint64_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    ix->slots = malloc(cap * sizeof *ix->slots);
    if (!ix->slots) return -1;
    memset(ix->slots, 0xff, cap * sizeof *ix->slots);
    ix->mask = cap - 1;
    return 0;
}

void gguf_index_free(gguf_index_t *ix) {
    free(ix->slots);
    ix->slots = NULL;
}

uint64_t gguf_index_find(const gguf_index_t *ix, const char *s, uint64_t len, gguf_index_name_fn name,
                         const void *ctx) {
    if (!ix->slots) return EMPTY;
    for (uint64_t h = hash_bytes(s, len) & ix->mask;; h = (h + 1) & ix->mask) {
        uint64_t e = ix->slots[h];
        if (e == EMPTY) return EMPTY;
        uint64_t elen;
        const char *es = name(ctx, e, &elen);
        if (elen == len && (len == 0 || memcmp(es, s, len) == 0)) return e;
    }
}

uint64_t gguf_index_insert(gguf_index_t *ix, uint64_t i, gguf_index_name_fn name, const void *ctx) {
    uint64_t len;
    const char *s = name(ctx, i, &len);
    for (uint64_t h = hash_bytes(s, len) & ix->mask;; h = (h + 1) & ix->mask) {
        uint64_t e = ix->slots[h];
        if (e == EMPTY) {
            ix->slots[h] = i;
            return EMPTY;
        }
        uint64_t elen;
        const char *es = name(ctx, e, &elen);
        if (elen == len && (len == 0 || memcmp(es, s, len) == 0)) return e;
    }
}
