/* Open-addressing hash map from byte strings to int32 values. Keys are not
 * copied: they must outlive the map (e.g. strings inside a GGUF mapping, or a
 * caller-owned arena). Lookups are read-only and safe from several threads. */
#ifndef TL_CORE_HASHMAP_H
#define TL_CORE_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *key;
    uint32_t len;
    uint32_t hash;
    int32_t value;
} hashmap_slot_t;

typedef struct {
    hashmap_slot_t *slots;
    size_t cap; /* power of two */
    size_t n;
} hashmap_t;

/* Sizes the table for about `expected` keys. Returns 0, or -1 when out of memory. */
int hashmap_init(hashmap_t *m, size_t expected);
void hashmap_free(hashmap_t *m);
uint32_t hashmap_hash(const char *key, size_t len);
/* Inserts key -> value. When the key is present: replaces the value if
 * `replace`, else keeps the old one. Returns 0, or -1 when out of memory. */
int hashmap_put(hashmap_t *m, const char *key, size_t len, int32_t value, bool replace);
/* The value for key, or -1 when absent. */
int32_t hashmap_get(const hashmap_t *m, const char *key, size_t len);

#endif
