/* Error reporting: functions return 0 on success and -1 on failure, filling a
 * tl_err_t with a one-line message that names the file, row, field or tensor
 * involved. Nothing below cli/ exits or aborts. */
#ifndef TL_CORE_ERR_H
#define TL_CORE_ERR_H

#include <stddef.h>

typedef struct {
    char msg[512];
} tl_err_t;

/* Formats the message into err (if non-NULL) and returns -1. */
int tl_fail(tl_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes an existing message: "prefix: old message". Returns -1. */
int tl_fail_prefix(tl_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
