/* SHA-256 (FIPS 180-4) of a buffer or a file, as 64 lowercase hex digits. */
#ifndef TL_PIPELINE_SHA256_H
#define TL_PIPELINE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t n;
} sha256_t;

void sha256_init(sha256_t *s);
void sha256_update(sha256_t *s, const void *data, size_t n);
void sha256_final(sha256_t *s, char hex[65]);
int sha256_file(const char *path, char hex[65], tl_err_t *err);

#endif
