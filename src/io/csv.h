/* RFC 4180 CSV: reader (quoted fields, doubled quotes, commas and newlines
 * inside quotes, UTF-8 BOM, CRLF or LF) and an atomic writer.
 *
 * The reader takes the first record as the header; every later record must
 * have the header's field count. A bad record (unterminated quote, wrong field
 * count, invalid UTF-8, junk after a closing quote) is reported with the line
 * it starts on and skipped; reading continues with the next record. */
#ifndef TL_IO_CSV_H
#define TL_IO_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/err.h"

typedef struct csv_reader csv_reader_t;

typedef struct {
    char **fields;   /* NUL-terminated, owned by the reader, valid until the next call */
    size_t n_fields;
    size_t line;     /* 1-based line the record starts on */
} csv_row_t;

enum { CSV_ROW = 1, CSV_EOF = 0, CSV_BAD_ROW = -1, CSV_FATAL = -2 };

/* Opens a file (read whole) and parses its header. Fails on an unreadable
 * file or a missing/invalid header. */
int csv_open(csv_reader_t **out, const char *path, tl_err_t *err);
/* Same over a memory buffer (copied); name is used in messages. */
int csv_open_mem(csv_reader_t **out, const char *data, size_t len, const char *name, tl_err_t *err);
void csv_close(csv_reader_t *r);

size_t csv_n_columns(const csv_reader_t *r);
const char *csv_column_name(const csv_reader_t *r, size_t i);
int csv_column_index(const csv_reader_t *r, const char *name); /* -1 if absent */
/* The raw bytes read (for hashing the input). */
const unsigned char *csv_data(const csv_reader_t *r, size_t *len);

/* Reads the next record. Returns CSV_ROW, CSV_EOF, or CSV_BAD_ROW with err
 * set to "FILE:LINE: reason" (the record was skipped; call again). */
int csv_next(csv_reader_t *r, csv_row_t *row, tl_err_t *err);

/* True if s is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
bool csv_utf8_valid(const char *s, size_t len);

/* Writer: writes to PATH.tmp.PID, then csv_writer_commit flushes, fsyncs and
 * renames onto PATH. Fields are quoted when they hold a comma, quote, CR or LF,
 * or start/end with a space. Lines end with LF. */
typedef struct csv_writer csv_writer_t;
int csv_writer_open(csv_writer_t **out, const char *path, tl_err_t *err);
int csv_write_row(csv_writer_t *w, const char *const *fields, size_t n, tl_err_t *err);
int csv_writer_commit(csv_writer_t *w, tl_err_t *err); /* frees w, also on failure */
void csv_writer_abort(csv_writer_t *w);                /* removes the temp file, frees w */
/* Writes one CSV field (quoted if needed) to f. */
int csv_write_field(FILE *f, const char *s);

/* Writes len bytes to path atomically (temp name, fsync, rename). Used for the
 * JSON side files (summary, settings) too. */
int csv_write_file_atomic(const char *path, const char *data, size_t len, tl_err_t *err);

#endif
