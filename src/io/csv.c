#include "io/csv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct csv_reader {
    char name[256];
    unsigned char *data;
    size_t len, pos;
    size_t line; /* line of data[pos] */
    /* current record */
    char *buf;
    size_t buf_len, buf_cap;
    size_t *offs;
    size_t n_offs, offs_cap;
    char **fields;
    size_t fields_cap;
    /* header */
    char **header;
    size_t n_header;
};

bool csv_utf8_valid(const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { n = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { n = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 3; cp = c & 0x07; }
        else return false;
        if (i + n >= len) return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return false;
        if (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) return false;
        i += n + 1;
    }
    return true;
}

static int buf_push(csv_reader_t *r, char c) {
    if (r->buf_len + 1 >= r->buf_cap) {
        size_t cap = r->buf_cap ? r->buf_cap * 2 : 256;
        char *b = realloc(r->buf, cap);
        if (!b) return -1;
        r->buf = b;
        r->buf_cap = cap;
    }
    r->buf[r->buf_len++] = c;
    return 0;
}

static int field_start(csv_reader_t *r) {
    if (r->n_offs == r->offs_cap) {
        size_t cap = r->offs_cap ? r->offs_cap * 2 : 16;
        size_t *o = realloc(r->offs, cap * sizeof *o);
        if (!o) return -1;
        r->offs = o;
        r->offs_cap = cap;
    }
    r->offs[r->n_offs++] = r->buf_len;
    return 0;
}

/* Skips to just after the end of the physical line containing position p. */
static void skip_line_from(csv_reader_t *r, size_t p, size_t line) {
    while (p < r->len && r->data[p] != '\n' && r->data[p] != '\r') p++;
    if (p < r->len && r->data[p] == '\r') p++;
    if (p < r->len && r->data[p] == '\n') p++;
    r->pos = p;
    r->line = line + 1;
}

enum { PARSE_OK = 0, PARSE_EOF = 1, PARSE_BAD = 2, PARSE_OOM = 3 };

/* Parses one record into buf/offs. On PARSE_BAD, *why is set and the reader
 * has been moved past the record's first physical line. */
static int parse_record(csv_reader_t *r, size_t *start_line, const char **why) {
    r->buf_len = 0;
    r->n_offs = 0;
    /* skip blank lines */
    for (;;) {
        if (r->pos >= r->len) return PARSE_EOF;
        unsigned char c = r->data[r->pos];
        if (c == '\n') { r->pos++; r->line++; continue; }
        if (c == '\r') {
            r->pos++;
            if (r->pos < r->len && r->data[r->pos] == '\n') r->pos++;
            r->line++;
            continue;
        }
        break;
    }
    size_t p = r->pos, line = r->line, rec_start = r->pos;
    *start_line = line;
    for (;;) {
        if (field_start(r)) return PARSE_OOM;
        if (p < r->len && r->data[p] == '"') {
            p++;
            for (;;) {
                if (p >= r->len) {
                    *why = "unterminated quoted field";
                    skip_line_from(r, rec_start, *start_line);
                    return PARSE_BAD;
                }
                unsigned char c = r->data[p];
                if (c == '"') {
                    if (p + 1 < r->len && r->data[p + 1] == '"') {
                        if (buf_push(r, '"')) return PARSE_OOM;
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                if (c == '\n') line++;
                else if (c == '\r' && !(p + 1 < r->len && r->data[p + 1] == '\n')) line++;
                if (buf_push(r, (char)c)) return PARSE_OOM;
                p++;
            }
            if (p < r->len && r->data[p] != ',' && r->data[p] != '\n' && r->data[p] != '\r') {
                *why = "unexpected character after a closing quote";
                /* resume after the physical line where the junk sits */
                skip_line_from(r, p, line);
                return PARSE_BAD;
            }
        } else {
            while (p < r->len) {
                unsigned char c = r->data[p];
                if (c == ',' || c == '\n' || c == '\r') break;
                if (buf_push(r, (char)c)) return PARSE_OOM;
                p++;
            }
        }
        if (buf_push(r, '\0')) return PARSE_OOM;
        if (p < r->len && r->data[p] == ',') {
            p++;
            continue;
        }
        /* end of record */
        if (p < r->len && r->data[p] == '\r') p++;
        if (p < r->len && r->data[p] == '\n') p++;
        r->pos = p;
        r->line = line + 1;
        return PARSE_OK;
    }
}

static int build_fields(csv_reader_t *r) {
    if (r->n_offs > r->fields_cap) {
        char **f = realloc(r->fields, r->n_offs * sizeof *f);
        if (!f) return -1;
        r->fields = f;
        r->fields_cap = r->n_offs;
    }
    for (size_t i = 0; i < r->n_offs; i++) r->fields[i] = r->buf + r->offs[i];
    return 0;
}

static int check_utf8(csv_reader_t *r, size_t *bad_field) {
    for (size_t i = 0; i < r->n_offs; i++) {
        const char *f = r->buf + r->offs[i];
        if (!csv_utf8_valid(f, strlen(f))) {
            *bad_field = i;
            return -1;
        }
    }
    return 0;
}

static int reader_init(csv_reader_t *r, tl_err_t *err) {
    if (r->len >= 3 && r->data[0] == 0xEF && r->data[1] == 0xBB && r->data[2] == 0xBF) r->pos = 3;
    r->line = 1;
    size_t line;
    const char *why = NULL;
    int rc = parse_record(r, &line, &why);
    if (rc == PARSE_EOF) return tl_fail(err, "%s: empty file (no header row)", r->name);
    if (rc == PARSE_OOM) return tl_fail(err, "%s: out of memory", r->name);
    if (rc == PARSE_BAD) return tl_fail(err, "%s:%zu: bad header: %s", r->name, line, why);
    size_t bad;
    if (check_utf8(r, &bad)) return tl_fail(err, "%s:%zu: header column %zu is not valid UTF-8", r->name, line, bad + 1);
    r->header = calloc(r->n_offs, sizeof *r->header);
    if (!r->header) return tl_fail(err, "%s: out of memory", r->name);
    r->n_header = r->n_offs;
    for (size_t i = 0; i < r->n_offs; i++) {
        r->header[i] = strdup(r->buf + r->offs[i]);
        if (!r->header[i]) return tl_fail(err, "%s: out of memory", r->name);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(r->header[j], r->header[i]))
                return tl_fail(err, "%s:%zu: duplicate column name '%s'", r->name, line, r->header[i]);
    }
    return 0;
}

int csv_open_mem(csv_reader_t **out, const char *data, size_t len, const char *name, tl_err_t *err) {
    *out = NULL;
    csv_reader_t *r = calloc(1, sizeof *r);
    if (!r) return tl_fail(err, "%s: out of memory", name);
    snprintf(r->name, sizeof r->name, "%s", name);
    r->data = malloc(len ? len : 1);
    if (!r->data) {
        free(r);
        return tl_fail(err, "%s: out of memory", name);
    }
    if (len) memcpy(r->data, data, len);
    r->len = len;
    if (reader_init(r, err)) {
        csv_close(r);
        return -1;
    }
    *out = r;
    return 0;
}

int csv_open(csv_reader_t **out, const char *path, tl_err_t *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return tl_fail(err, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    unsigned char *data = malloc(cap);
    if (!data) {
        fclose(f);
        return tl_fail(err, "%s: out of memory", path);
    }
    for (;;) {
        if (len == cap) {
            unsigned char *d = realloc(data, cap * 2);
            if (!d) {
                free(data);
                fclose(f);
                return tl_fail(err, "%s: out of memory", path);
            }
            data = d;
            cap *= 2;
        }
        size_t n = fread(data + len, 1, cap - len, f);
        len += n;
        if (n == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(data);
        return tl_fail(err, "%s: read error", path);
    }
    csv_reader_t *r = calloc(1, sizeof *r);
    if (!r) {
        free(data);
        return tl_fail(err, "%s: out of memory", path);
    }
    snprintf(r->name, sizeof r->name, "%s", path);
    r->data = data;
    r->len = len;
    if (reader_init(r, err)) {
        csv_close(r);
        return -1;
    }
    *out = r;
    return 0;
}

void csv_close(csv_reader_t *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_header; i++) free(r->header[i]);
    free(r->header);
    free(r->data);
    free(r->buf);
    free(r->offs);
    free(r->fields);
    free(r);
}

size_t csv_n_columns(const csv_reader_t *r) { return r->n_header; }
const char *csv_column_name(const csv_reader_t *r, size_t i) { return i < r->n_header ? r->header[i] : NULL; }
int csv_column_index(const csv_reader_t *r, const char *name) {
    for (size_t i = 0; i < r->n_header; i++)
        if (!strcmp(r->header[i], name)) return (int)i;
    return -1;
}
const unsigned char *csv_data(const csv_reader_t *r, size_t *len) {
    *len = r->len;
    return r->data;
}

int csv_next(csv_reader_t *r, csv_row_t *row, tl_err_t *err) {
    size_t line = r->line;
    const char *why = NULL;
    int rc = parse_record(r, &line, &why);
    if (rc == PARSE_EOF) return CSV_EOF;
    if (rc == PARSE_OOM) {
        tl_fail(err, "%s: out of memory", r->name);
        return CSV_FATAL;
    }
    if (rc == PARSE_BAD) {
        tl_fail(err, "%s:%zu: %s", r->name, line, why);
        return CSV_BAD_ROW;
    }
    if (r->n_offs != r->n_header) {
        tl_fail(err, "%s:%zu: expected %zu fields, found %zu", r->name, line, r->n_header, r->n_offs);
        return CSV_BAD_ROW;
    }
    size_t bad;
    if (check_utf8(r, &bad)) {
        tl_fail(err, "%s:%zu: field '%s' is not valid UTF-8", r->name, line, r->header[bad]);
        return CSV_BAD_ROW;
    }
    if (build_fields(r)) {
        tl_fail(err, "%s: out of memory", r->name);
        return CSV_FATAL;
    }
    row->fields = r->fields;
    row->n_fields = r->n_offs;
    row->line = line;
    return CSV_ROW;
}

/* ---- writer ---- */

struct csv_writer {
    FILE *f;
    char *path, *tmp;
};

int csv_write_field(FILE *f, const char *s) {
    size_t n = strlen(s);
    bool quote = n > 0 && (s[0] == ' ' || s[n - 1] == ' ');
    for (size_t i = 0; i < n && !quote; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n') quote = true;
    if (!quote) return fputs(s, f) < 0 ? -1 : 0;
    if (fputc('"', f) == EOF) return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' && fputc('"', f) == EOF) return -1;
        if (fputc(s[i], f) == EOF) return -1;
    }
    return fputc('"', f) == EOF ? -1 : 0;
}

int csv_writer_open(csv_writer_t **out, const char *path, tl_err_t *err) {
    *out = NULL;
    csv_writer_t *w = calloc(1, sizeof *w);
    if (!w) return tl_fail(err, "%s: out of memory", path);
    w->path = strdup(path);
    size_t n = strlen(path) + 32;
    w->tmp = malloc(n);
    if (!w->path || !w->tmp) {
        csv_writer_abort(w);
        return tl_fail(err, "%s: out of memory", path);
    }
    snprintf(w->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        int e = errno;
        free(w->path);
        free(w->tmp);
        free(w);
        return tl_fail(err, "%s: cannot create: %s", path, strerror(e));
    }
    *out = w;
    return 0;
}

int csv_write_row(csv_writer_t *w, const char *const *fields, size_t n, tl_err_t *err) {
    for (size_t i = 0; i < n; i++) {
        if (i && fputc(',', w->f) == EOF) return tl_fail(err, "%s: write error", w->path);
        if (csv_write_field(w->f, fields[i] ? fields[i] : "")) return tl_fail(err, "%s: write error", w->path);
    }
    if (fputc('\n', w->f) == EOF) return tl_fail(err, "%s: write error", w->path);
    return 0;
}

void csv_writer_abort(csv_writer_t *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    if (w->tmp) unlink(w->tmp);
    free(w->path);
    free(w->tmp);
    free(w);
}

int csv_writer_commit(csv_writer_t *w, tl_err_t *err) {
    int rc = 0;
    if (fflush(w->f) || fsync(fileno(w->f))) rc = tl_fail(err, "%s: write error: %s", w->path, strerror(errno));
    if (fclose(w->f) && !rc) rc = tl_fail(err, "%s: write error: %s", w->path, strerror(errno));
    w->f = NULL;
    if (!rc && rename(w->tmp, w->path)) rc = tl_fail(err, "%s: cannot rename temp file: %s", w->path, strerror(errno));
    if (rc) unlink(w->tmp);
    free(w->path);
    free(w->tmp);
    free(w);
    return rc;
}

int csv_write_file_atomic(const char *path, const char *data, size_t len, tl_err_t *err) {
    csv_writer_t *w;
    if (csv_writer_open(&w, path, err)) return -1;
    if (len && fwrite(data, 1, len, w->f) != len) {
        csv_writer_abort(w);
        return tl_fail(err, "%s: write error", path);
    }
    return csv_writer_commit(w, err);
}
