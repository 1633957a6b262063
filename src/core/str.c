#include "core/str.h"

#include <string.h>

int tl_strlcpy(char *dst, size_t n, const char *src) {
    size_t len = strlen(src);
    size_t k = len < n ? len : n - 1;
    memmove(dst, src, k);
    dst[k] = '\0';
    return len < n;
}
