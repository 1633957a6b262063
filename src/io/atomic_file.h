/* Atomic file writes: data goes to "<path>.tmp.<pid>", is flushed and fsynced,
 * then renamed over <path> and the directory is fsynced. A reader sees either
 * the old file or the complete new one, never a partial write. */
#ifndef TL_IO_ATOMIC_FILE_H
#define TL_IO_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "core/err.h"

typedef struct {
    FILE *fp;
    char *path;
    char *tmp;
} atomic_file_t;

/* Creates the temporary file next to `path`. */
int atomic_file_open(atomic_file_t *af, const char *path, tl_err_t *err);
int atomic_file_write(atomic_file_t *af, const void *buf, size_t n, tl_err_t *err);
/* Writes n zero bytes. */
int atomic_file_pad(atomic_file_t *af, size_t n, tl_err_t *err);
/* Flushes, fsyncs, renames over the target and fsyncs the directory; frees af. */
int atomic_file_commit(atomic_file_t *af, tl_err_t *err);
/* Discards the temporary file; frees af. Safe after a failed open or commit. */
void atomic_file_abort(atomic_file_t *af);
/* One-shot: writes a whole buffer to path atomically. */
int atomic_file_write_all(const char *path, const void *buf, size_t n, tl_err_t *err);

#endif
