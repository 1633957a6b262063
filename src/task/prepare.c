#include "task/prepare.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/csv.h"

/* ---- PRNG ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void prep_rng_seed(prep_rng_t *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t prep_rng_next(prep_rng_t *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

uint64_t prep_rng_below(prep_rng_t *r, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n; /* reject the biased tail */
    for (;;) {
        uint64_t x = prep_rng_next(r);
        if (x < limit) return x % n;
    }
}

void prep_rng_shuffle(prep_rng_t *r, size_t *idx, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)prep_rng_below(r, i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

/* ---- index-level steps ---- */

/* Indices of class c in order; returns count. */
static size_t class_members(const int *labels, const size_t *idx, size_t n, int c, size_t *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = idx ? idx[i] : i;
        if (labels[j] == c) out[k++] = j;
    }
    return k;
}

static int check_labels(const int *labels, const size_t *idx, size_t n, size_t n_labels, tl_err_t *err) {
    for (size_t i = 0; i < n; i++) {
        int l = labels[idx ? idx[i] : i];
        if (l < 0 || (size_t)l >= n_labels) return tl_fail(err, "item %zu: label index %d out of range", i, l);
    }
    return 0;
}

int prep_split_stratified(const int *labels, size_t n, size_t n_labels, double train_frac, prep_rng_t *rng,
                          size_t **train, size_t *n_train, size_t **test, size_t *n_test, tl_err_t *err) {
    *train = *test = NULL;
    *n_train = *n_test = 0;
    if (!(train_frac > 0 && train_frac < 1)) return tl_fail(err, "split fraction %g is not in (0, 1)", train_frac);
    if (check_labels(labels, NULL, n, n_labels, err)) return -1;
    size_t *tr = malloc((n ? n : 1) * sizeof *tr), *te = malloc((n ? n : 1) * sizeof *te);
    size_t *cls = malloc((n ? n : 1) * sizeof *cls);
    if (!tr || !te || !cls) {
        free(tr);
        free(te);
        free(cls);
        return tl_fail(err, "out of memory splitting %zu rows", n);
    }
    size_t ntr = 0, nte = 0;
    for (size_t c = 0; c < n_labels; c++) {
        size_t m = class_members(labels, NULL, n, (int)c, cls);
        prep_rng_shuffle(rng, cls, m);
        size_t k = (size_t)floor((double)m * (1.0 - train_frac) + 0.5);
        if (k > m) k = m;
        for (size_t i = 0; i < m; i++) {
            if (i < k) te[nte++] = cls[i];
            else tr[ntr++] = cls[i];
        }
    }
    free(cls);
    prep_rng_shuffle(rng, tr, ntr);
    prep_rng_shuffle(rng, te, nte);
    *train = tr;
    *n_train = ntr;
    *test = te;
    *n_test = nte;
    return 0;
}

int prep_oversample(const int *labels, const size_t *idx, size_t n, size_t n_labels, prep_rng_t *rng,
                    size_t **out, size_t *n_out, tl_err_t *err) {
    *out = NULL;
    *n_out = 0;
    if (check_labels(labels, idx, n, n_labels, err)) return -1;
    size_t counts[TASK_MAX_LABELS] = {0}, max = 0;
    if (n_labels > TASK_MAX_LABELS) return tl_fail(err, "too many labels (%zu)", n_labels);
    for (size_t i = 0; i < n; i++) counts[labels[idx[i]]]++;
    size_t total = 0;
    for (size_t c = 0; c < n_labels; c++)
        if (counts[c] > max) max = counts[c];
    for (size_t c = 0; c < n_labels; c++)
        if (counts[c]) total += max;
    size_t *o = malloc((total ? total : 1) * sizeof *o), *cls = malloc((n ? n : 1) * sizeof *cls);
    if (!o || !cls) {
        free(o);
        free(cls);
        return tl_fail(err, "out of memory oversampling %zu rows", n);
    }
    size_t k = 0;
    for (size_t c = 0; c < n_labels; c++) {
        size_t m = class_members(labels, idx, n, (int)c, cls);
        if (!m) continue;
        for (size_t i = 0; i < m; i++) o[k++] = cls[i];
        for (size_t i = m; i < max; i++) o[k++] = cls[prep_rng_below(rng, m)];
    }
    free(cls);
    prep_rng_shuffle(rng, o, k);
    *out = o;
    *n_out = k;
    return 0;
}

int prep_kfold(const int *labels, size_t n, size_t n_labels, int k, prep_rng_t *rng, int *fold_of, tl_err_t *err) {
    if (k < 2) return tl_fail(err, "folds must be >= 2, got %d", k);
    if ((size_t)k > n) return tl_fail(err, "cannot make %d folds from %zu rows", k, n);
    if (check_labels(labels, NULL, n, n_labels, err)) return -1;
    size_t *cls = malloc((n ? n : 1) * sizeof *cls);
    if (!cls) return tl_fail(err, "out of memory");
    size_t next = 0; /* continue the deal across classes so fold totals stay balanced */
    for (size_t c = 0; c < n_labels; c++) {
        size_t m = class_members(labels, NULL, n, (int)c, cls);
        prep_rng_shuffle(rng, cls, m);
        for (size_t i = 0; i < m; i++) fold_of[cls[i]] = (int)(next++ % (size_t)k);
    }
    free(cls);
    return 0;
}

/* ---- loading ---- */

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
    return s;
}

static int add_drop(prep_data_t *d, size_t *cap, size_t line, const char *reason, tl_err_t *err) {
    if (d->n_drops == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        prep_drop_t *p = realloc(d->drops, nc * sizeof *p);
        if (!p) return tl_fail(err, "out of memory");
        d->drops = p;
        *cap = nc;
    }
    d->drops[d->n_drops].line = line;
    snprintf(d->drops[d->n_drops].reason, sizeof d->drops[d->n_drops].reason, "%s", reason);
    d->n_drops++;
    return 0;
}

static bool has_control(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return true;
    return false;
}

static void row_free(prep_row_t *r, size_t n_fields) {
    for (size_t i = 0; i < n_fields; i++) free(r->fields[i]);
    free(r->category);
}

/* Sort key for duplicate detection: the field tuple, then the line. */
typedef struct {
    const task_t *task;
    const prep_row_t *rows;
} dup_ctx_t;

static bool same_order(const prep_row_t *a, const prep_row_t *b, size_t n_fields) {
    for (size_t i = 0; i < n_fields; i++)
        if (strcmp(a->fields[i], b->fields[i])) return false;
    return true;
}

/* A symmetric task's pair is compared in canonical order (smaller field
 * first), so (a, b) and (b, a) are one pair. */
static int cmp_rows_t(const task_t *task, const prep_row_t *a, const prep_row_t *b) {
    if (task->symmetric) {
        int sa = strcmp(a->fields[0], a->fields[1]) > 0, sb = strcmp(b->fields[0], b->fields[1]) > 0;
        for (int i = 0; i < 2; i++) {
            int c = strcmp(a->fields[i ^ sa], b->fields[i ^ sb]);
            if (c) return c;
        }
        return 0;
    }
    for (size_t i = 0; i < task->n_fields; i++) {
        int c = strcmp(a->fields[i], b->fields[i]);
        if (c) return c;
    }
    return 0;
}

static int cmp_idx(const void *pa, const void *pb, void *vctx) {
    const dup_ctx_t *ctx = vctx;
    const prep_row_t *a = &ctx->rows[*(const size_t *)pa], *b = &ctx->rows[*(const size_t *)pb];
    int c = cmp_rows_t(ctx->task, a, b);
    if (c) return c;
    return a->line < b->line ? -1 : a->line > b->line;
}

/* Drops exact duplicate field tuples; conflicting labels drop the whole group. */
static int dedupe(const task_t *task, prep_data_t *d, size_t *drop_cap, tl_err_t *err) {
    size_t n = d->n_rows;
    if (n < 2) return 0;
    size_t *idx = malloc(n * sizeof *idx);
    bool *keep = malloc(n * sizeof *keep);
    if (!idx || !keep) {
        free(idx);
        free(keep);
        return tl_fail(err, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        idx[i] = i;
        keep[i] = true;
    }
    dup_ctx_t ctx = {task, d->rows};
    qsort_r(idx, n, sizeof *idx, cmp_idx, &ctx);
    int rc = 0;
    for (size_t g = 0; g < n && !rc;) {
        size_t e = g + 1;
        while (e < n && !cmp_rows_t(task, &d->rows[idx[g]], &d->rows[idx[e]])) e++;
        if (e - g > 1) {
            bool conflict = false;
            for (size_t i = g + 1; i < e; i++)
                if (d->rows[idx[i]].label != d->rows[idx[g]].label) conflict = true;
            const prep_row_t *first = &d->rows[idx[g]];
            for (size_t i = conflict ? g : g + 1; i < e && !rc; i++) {
                const prep_row_t *r = &d->rows[idx[i]];
                char why[240];
                if (conflict)
                    snprintf(why, sizeof why, "pair also at line %zu with a different label ('%s' here): ambiguous, all copies dropped",
                             r == first ? d->rows[idx[g + 1]].line : first->line, task->labels[r->label]);
                else
                    snprintf(why, sizeof why, "%s of the pair at line %zu",
                             same_order(r, first, task->n_fields) ? "exact duplicate" : "reversed duplicate",
                             first->line);
                keep[idx[i]] = false;
                d->n_duplicates++;
                rc = add_drop(d, drop_cap, r->line, why, err);
            }
        }
        g = e;
    }
    if (!rc) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (keep[i]) d->rows[k++] = d->rows[i];
            else row_free(&d->rows[i], task->n_fields);
        }
        d->n_rows = k;
    }
    free(idx);
    free(keep);
    return rc;
}

static int cmp_drop(const void *a, const void *b) {
    const prep_drop_t *x = a, *y = b;
    return x->line < y->line ? -1 : x->line > y->line;
}

int prep_load(const task_t *task, const char *path, prep_data_t *d, tl_err_t *err) {
    return prep_load_ex(task, path, true, d, err);
}

int prep_load_ex(const task_t *task, const char *path, bool drop_duplicates, prep_data_t *d, tl_err_t *err) {
    memset(d, 0, sizeof *d);
    csv_reader_t *r;
    if (csv_open(&r, path, err)) return -1;
    size_t dlen;
    const unsigned char *bytes = csv_data(r, &dlen);
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < dlen; i++) h = (h ^ bytes[i]) * 0x100000001b3ull;
    d->input_hash = h;
    int col[TASK_MAX_FIELDS];
    for (size_t i = 0; i < task->n_fields; i++) {
        col[i] = csv_column_index(r, task->field_columns[i]);
        if (col[i] < 0) {
            csv_close(r);
            return tl_fail(err, "%s: missing column '%s' (task %s)", path, task->field_columns[i], task->name);
        }
    }
    int lcol = csv_column_index(r, task->label_column);
    if (lcol < 0) {
        csv_close(r);
        return tl_fail(err, "%s: missing column '%s' (task %s)", path, task->label_column, task->name);
    }
    int ccol = task->category_column[0] ? csv_column_index(r, task->category_column) : -1;
    d->has_category = ccol >= 0;
    size_t row_cap = 0, drop_cap = 0;
    int rc = 0;
    for (;;) {
        csv_row_t row;
        tl_err_t rerr;
        int st = csv_next(r, &row, &rerr);
        if (st == CSV_EOF) break;
        if (st == CSV_FATAL) {
            rc = tl_fail(err, "%s", rerr.msg);
            break;
        }
        d->n_read++;
        if (st == CSV_BAD_ROW) {
            /* message is "path:line: reason"; keep the reason, the line separately */
            const char *p = rerr.msg + strlen(path);
            size_t line = 0;
            if (*p == ':') line = strtoul(p + 1, (char **)&p, 10);
            if (*p == ':') p++;
            while (*p == ' ') p++;
            if ((rc = add_drop(d, &drop_cap, line, p, err))) break;
            continue;
        }
        char why[240] = "";
        char *vals[TASK_MAX_FIELDS];
        for (size_t i = 0; i < task->n_fields && !why[0]; i++) {
            vals[i] = trim(row.fields[col[i]]);
            if (!vals[i][0]) snprintf(why, sizeof why, "empty %s", task->field_columns[i]);
            else if (strlen(vals[i]) > task->max_field_bytes)
                snprintf(why, sizeof why, "%s is %zu bytes, over the task limit of %zu", task->field_columns[i], strlen(vals[i]), task->max_field_bytes);
            else if (has_control(vals[i])) snprintf(why, sizeof why, "%s contains a control character", task->field_columns[i]);
        }
        int label = -1;
        if (!why[0]) {
            char *lab = trim(row.fields[lcol]);
            for (char *q = lab; *q; q++) *q = (char)tolower((unsigned char)*q);
            if (!lab[0]) snprintf(why, sizeof why, "empty %s", task->label_column);
            else if ((label = task_label_index(task, lab)) < 0) {
                char shown[64];
                snprintf(shown, sizeof shown, "%s", lab);
                snprintf(why, sizeof why, "%s '%s' is not one of the task's labels", task->label_column, shown);
            }
        }
        if (why[0]) {
            if ((rc = add_drop(d, &drop_cap, row.line, why, err))) break;
            continue;
        }
        if (d->n_rows == row_cap) {
            size_t nc = row_cap ? row_cap * 2 : 256;
            prep_row_t *p = realloc(d->rows, nc * sizeof *p);
            if (!p) {
                rc = tl_fail(err, "out of memory");
                break;
            }
            d->rows = p;
            row_cap = nc;
        }
        prep_row_t *pr = &d->rows[d->n_rows];
        memset(pr, 0, sizeof *pr);
        bool oom = false;
        for (size_t i = 0; i < task->n_fields; i++) oom |= !(pr->fields[i] = strdup(vals[i]));
        if (ccol >= 0) oom |= !(pr->category = strdup(trim(row.fields[ccol])));
        pr->label = label;
        pr->line = row.line;
        d->n_rows++;
        if (oom) {
            rc = tl_fail(err, "out of memory");
            break;
        }
    }
    csv_close(r);
    if (!rc && drop_duplicates) rc = dedupe(task, d, &drop_cap, err);
    if (rc) {
        prep_data_free(d);
        return -1;
    }
    if (d->n_drops > 1) qsort(d->drops, d->n_drops, sizeof *d->drops, cmp_drop);
    return 0;
}

void prep_data_free(prep_data_t *d) {
    for (size_t i = 0; i < d->n_rows; i++)
        for (size_t j = 0; j < TASK_MAX_FIELDS; j++) free(d->rows[i].fields[j]);
    for (size_t i = 0; i < d->n_rows; i++) free(d->rows[i].category);
    free(d->rows);
    free(d->drops);
    memset(d, 0, sizeof *d);
}

/* ---- whole job ---- */

static int write_split(const task_t *task, const prep_data_t *d, const char *path, const size_t *idx, size_t n, tl_err_t *err) {
    csv_writer_t *w;
    if (csv_writer_open(&w, path, err)) return -1;
    const char *hdr[TASK_MAX_FIELDS + 2];
    size_t nf = 0;
    for (size_t i = 0; i < task->n_fields; i++) hdr[nf++] = task->field_columns[i];
    hdr[nf++] = task->label_column;
    if (d->has_category) hdr[nf++] = task->category_column;
    if (csv_write_row(w, hdr, nf, err)) goto fail;
    for (size_t k = 0; k < n; k++) {
        /* an index past the rows is the reversed copy of row idx - n_rows (--swap) */
        bool rev = idx[k] >= d->n_rows;
        const prep_row_t *r = &d->rows[rev ? idx[k] - d->n_rows : idx[k]];
        const char *v[TASK_MAX_FIELDS + 2];
        size_t m = 0;
        for (size_t i = 0; i < task->n_fields; i++) v[m++] = r->fields[rev ? task->n_fields - 1 - i : i];
        v[m++] = task->labels[r->label];
        if (d->has_category) v[m++] = r->category;
        if (csv_write_row(w, v, m, err)) goto fail;
    }
    return csv_writer_commit(w, err);
fail:
    csv_writer_abort(w);
    return -1;
}

static cJSON *class_counts(const task_t *task, const int *labels, const size_t *idx, size_t n) {
    size_t c[TASK_MAX_LABELS] = {0};
    for (size_t i = 0; i < n; i++) c[labels[idx ? idx[i] : i]]++;
    cJSON *o = cJSON_CreateObject();
    for (size_t l = 0; l < task->n_labels; l++) cJSON_AddNumberToObject(o, task->labels[l], (double)c[l]);
    cJSON_AddNumberToObject(o, "total", (double)n);
    return o;
}

static cJSON *file_entry(const task_t *task, const int *labels, const char *name, const size_t *before, size_t n_before,
                         const size_t *after, size_t n_after, bool oversampled, bool swapped) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", name);
    cJSON_AddBoolToObject(o, "oversampled", oversampled);
    if (swapped) cJSON_AddBoolToObject(o, "swapped", true);
    cJSON_AddItemToObject(o, "before", class_counts(task, labels, before, n_before));
    cJSON_AddItemToObject(o, "after", class_counts(task, labels, after, n_after));
    return o;
}

static int ensure_dir(const char *dir, tl_err_t *err) {
    struct stat st;
    if (!stat(dir, &st)) return S_ISDIR(st.st_mode) ? 0 : tl_fail(err, "%s: exists and is not a directory", dir);
    if (mkdir(dir, 0777)) return tl_fail(err, "%s: cannot create directory: %s", dir, strerror(errno));
    return 0;
}

/* With --swap: idx[0..n) (room for 2n) gets, after the originals, the reversed
 * copy (index i + n_rows) of every pair whose two fields differ. */
static size_t add_reversed(const prep_data_t *d, size_t *idx, size_t n) {
    size_t m = n;
    for (size_t k = 0; k < n; k++)
        if (strcmp(d->rows[idx[k]].fields[0], d->rows[idx[k]].fields[1])) idx[m++] = idx[k] + d->n_rows;
    return m;
}

int prepare_run(const task_t *task, const prepare_opts_t *o, char **summary_json, tl_err_t *err) {
    *summary_json = NULL;
    if (!(o->split > 0 && o->split < 1)) return tl_fail(err, "--split %g is not in (0, 1)", o->split);
    if (o->folds == 1 || o->folds < 0) return tl_fail(err, "--folds must be 0 or >= 2, got %d", o->folds);
    if (o->swap && !task->symmetric)
        return tl_fail(err, "--swap needs a task whose two fields are interchangeable (\"symmetric\": true in %s/task.json)",
                       task->dir);
    if (ensure_dir(o->out_dir, err)) return -1;
    prep_data_t d;
    if (prep_load(task, o->in_path, &d, err)) return -1;
    if (o->log)
        for (size_t i = 0; i < d.n_drops; i++) fprintf(o->log, "%s:%zu: dropped: %s\n", o->in_path, d.drops[i].line, d.drops[i].reason);
    int rc = -1;
    int *labels = malloc((d.n_rows ? 2 * d.n_rows : 1) * sizeof *labels); /* [n, 2n): reversed copies */
    int *fold_of = NULL;
    size_t *tr = NULL, *te = NULL, *tr_os = NULL, *ftr = NULL, *fte = NULL, *ftr_os = NULL;
    size_t ntr = 0, nte = 0, ntr_os = 0;
    cJSON *sum = cJSON_CreateObject();
    if (!labels || !sum) {
        tl_fail(err, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < d.n_rows; i++) labels[i] = labels[i + d.n_rows] = d.rows[i].label;
    if (d.n_rows == 0) {
        tl_fail(err, "%s: no usable rows (%zu dropped)", o->in_path, d.n_drops);
        goto done;
    }
    prep_rng_t rng;
    prep_rng_seed(&rng, o->seed);
    if (prep_split_stratified(labels, d.n_rows, task->n_labels, o->split, &rng, &tr, &ntr, &te, &nte, err)) goto done;
    if (o->swap) {
        size_t *t2 = realloc(tr, (2 * ntr + 1) * sizeof *tr);
        if (!t2) {
            tl_fail(err, "out of memory");
            goto done;
        }
        tr = t2;
        ntr = add_reversed(&d, tr, ntr);
    }
    if (prep_oversample(labels, tr, ntr, task->n_labels, &rng, &tr_os, &ntr_os, err)) goto done;
    char path[1024];
    snprintf(path, sizeof path, "%s/train.csv", o->out_dir);
    if (write_split(task, &d, path, tr_os, ntr_os, err)) goto done;
    snprintf(path, sizeof path, "%s/test.csv", o->out_dir);
    if (write_split(task, &d, path, te, nte, err)) goto done;

    char hash[32];
    snprintf(hash, sizeof hash, "fnv1a64:%016llx", (unsigned long long)d.input_hash);
    cJSON_AddStringToObject(sum, "task", task->name);
    cJSON_AddStringToObject(sum, "input", o->in_path);
    cJSON_AddStringToObject(sum, "input_hash", hash);
    cJSON_AddNumberToObject(sum, "seed", (double)o->seed);
    cJSON_AddNumberToObject(sum, "split", o->split);
    cJSON_AddNumberToObject(sum, "folds", o->folds);
    if (o->swap) cJSON_AddBoolToObject(sum, "swap", true);
    cJSON_AddStringToObject(sum, "method",
                            "drop bad rows; drop exact duplicate pairs (conflicting labels: all copies); "
                            "stratified split first; oversample train only (all originals kept, shortfall drawn "
                            "with replacement); test never oversampled");
    if (task->symmetric)
        cJSON_AddStringToObject(sum, "symmetric",
                                o->swap ? "(a, b) and (b, a) are one pair when deduplicating; every training pair also "
                                          "reversed before oversampling (test rows as read)"
                                        : "(a, b) and (b, a) are one pair when deduplicating");
    cJSON_AddNumberToObject(sum, "rows_read", (double)d.n_read);
    cJSON_AddNumberToObject(sum, "rows_kept", (double)d.n_rows);
    cJSON_AddNumberToObject(sum, "rows_dropped", (double)d.n_drops);
    cJSON_AddNumberToObject(sum, "duplicates_dropped", (double)d.n_duplicates);
    cJSON_AddItemToObject(sum, "clean", class_counts(task, labels, NULL, d.n_rows));
    cJSON *files = cJSON_AddArrayToObject(sum, "files");
    cJSON_AddItemToArray(files, file_entry(task, labels, "train.csv", tr, ntr, tr_os, ntr_os, true, o->swap));
    cJSON_AddItemToArray(files, file_entry(task, labels, "test.csv", te, nte, te, nte, false, false));

    if (o->folds >= 2) {
        fold_of = malloc(d.n_rows * sizeof *fold_of);
        ftr = malloc(2 * d.n_rows * sizeof *ftr);
        fte = malloc(d.n_rows * sizeof *fte);
        if (!fold_of || !ftr || !fte) {
            tl_fail(err, "out of memory");
            goto done;
        }
        if (prep_kfold(labels, d.n_rows, task->n_labels, o->folds, &rng, fold_of, err)) goto done;
        for (int k = 0; k < o->folds; k++) {
            size_t a = 0, b = 0, nos = 0;
            for (size_t i = 0; i < d.n_rows; i++) {
                if (fold_of[i] == k) fte[b++] = i;
                else ftr[a++] = i;
            }
            prep_rng_shuffle(&rng, fte, b);
            if (o->swap) a = add_reversed(&d, ftr, a);
            if (prep_oversample(labels, ftr, a, task->n_labels, &rng, &ftr_os, &nos, err)) goto done;
            char name[64];
            snprintf(name, sizeof name, "fold-%d-train.csv", k + 1);
            snprintf(path, sizeof path, "%s/%s", o->out_dir, name);
            if (write_split(task, &d, path, ftr_os, nos, err)) goto done;
            cJSON_AddItemToArray(files, file_entry(task, labels, name, ftr, a, ftr_os, nos, true, o->swap));
            snprintf(name, sizeof name, "fold-%d-test.csv", k + 1);
            snprintf(path, sizeof path, "%s/%s", o->out_dir, name);
            if (write_split(task, &d, path, fte, b, err)) goto done;
            cJSON_AddItemToArray(files, file_entry(task, labels, name, fte, b, fte, b, false, false));
            free(ftr_os);
            ftr_os = NULL;
        }
    }
    cJSON *drops = cJSON_AddArrayToObject(sum, "dropped");
    for (size_t i = 0; i < d.n_drops; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "line", (double)d.drops[i].line);
        cJSON_AddStringToObject(e, "reason", d.drops[i].reason);
        cJSON_AddItemToArray(drops, e);
    }
    char *text = cJSON_Print(sum);
    if (!text) {
        tl_fail(err, "out of memory");
        goto done;
    }
    size_t tl = strlen(text);
    char *withnl = realloc(text, tl + 2);
    if (!withnl) {
        free(text);
        tl_fail(err, "out of memory");
        goto done;
    }
    withnl[tl] = '\n';
    withnl[tl + 1] = '\0';
    snprintf(path, sizeof path, "%s/summary.json", o->out_dir);
    if (csv_write_file_atomic(path, withnl, tl + 1, err)) {
        free(withnl);
        goto done;
    }
    *summary_json = withnl;
    rc = 0;
done:
    cJSON_Delete(sum);
    free(labels);
    free(fold_of);
    free(tr);
    free(te);
    free(tr_os);
    free(ftr);
    free(fte);
    free(ftr_os);
    prep_data_free(&d);
    return rc;
}
