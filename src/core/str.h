/* Small string helpers. */
#ifndef TL_CORE_STR_H
#define TL_CORE_STR_H
#include <stddef.h>

/* Copies src into dst (capacity n > 0), always NUL-terminated; returns 1 if src fit
 * whole, 0 if it was cut. Unlike snprintf("%s") it gives the compiler no
 * format-truncation case to warn about. */
int tl_strlcpy(char *dst, size_t n, const char *src);

#endif
