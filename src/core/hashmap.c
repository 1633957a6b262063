#include "core/hashmap.h"

#include <stdlib.h>
#include <string.h>

uint32_t hashmap_hash(const char *key, size_t len) {
    /* FNV-1a, then a final avalanche so that the low bits are well mixed. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)key[i];
        h *= 16777619u;
    }
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    return h;
}

int hashmap_init(hashmap_t *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap <<= 1;
    m->slots = calloc(cap, sizeof *m->slots);
    m->cap = m->slots ? cap : 0;
    m->n = 0;
    return m->slots ? 0 : -1;
}

void hashmap_free(hashmap_t *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}

static hashmap_slot_t *find_slot(hashmap_slot_t *slots, size_t cap, const char *key, size_t len, uint32_t h) {
    size_t mask = cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        hashmap_slot_t *s = &slots[i];
        if (!s->key) return s;
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) return s;
    }
}

static int grow(hashmap_t *m) {
    size_t cap = m->cap * 2;
    hashmap_slot_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        hashmap_slot_t *s = &m->slots[i];
        if (s->key) *find_slot(slots, cap, s->key, s->len, s->hash) = *s;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int hashmap_put(hashmap_t *m, const char *key, size_t len, int32_t value, bool replace) {
    if (len > UINT32_MAX) return -1;
    if (!m->slots && hashmap_init(m, 8) != 0) return -1;
    if ((m->n + 1) * 4 > m->cap * 3 && grow(m) != 0) return -1;
    uint32_t h = hashmap_hash(key, len);
    hashmap_slot_t *s = find_slot(m->slots, m->cap, key ? key : "", len, h);
    if (s->key) {
        if (replace) s->value = value;
        return 0;
    }
    s->key = key ? key : "";
    s->len = (uint32_t)len;
    s->hash = h;
    s->value = value;
    m->n++;
    return 0;
}

int32_t hashmap_get(const hashmap_t *m, const char *key, size_t len) {
    if (!m->slots || len > UINT32_MAX) return -1;
    hashmap_slot_t *s = find_slot(m->slots, m->cap, key ? key : "", len, hashmap_hash(key, len));
    return s->key ? s->value : -1;
}
