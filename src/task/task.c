#include "task/task.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char *read_file(const char *path, size_t *len, tl_err_t *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        tl_fail(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (!got) break;
    }
    fclose(f);
    if (!buf) {
        tl_fail(err, "%s: out of memory", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int copy_str(char *dst, size_t cap, const cJSON *item, const char *path, const char *key, tl_err_t *err) {
    if (!cJSON_IsString(item)) return tl_fail(err, "%s: key '%s' must be a string", path, key);
    size_t n = strlen(item->valuestring);
    if (n == 0) return tl_fail(err, "%s: key '%s' must not be empty", path, key);
    if (n >= cap) return tl_fail(err, "%s: key '%s' is too long (%zu bytes, max %zu)", path, key, n, cap - 1);
    memcpy(dst, item->valuestring, n + 1);
    return 0;
}

static int parse_fields(task_t *t, const cJSON *arr, const char *path, tl_err_t *err) {
    if (!cJSON_IsArray(arr)) return tl_fail(err, "%s: key 'fields' must be an array", path);
    int n = cJSON_GetArraySize(arr);
    if (n < 1 || n > TASK_MAX_FIELDS) return tl_fail(err, "%s: 'fields' must hold 1..%d entries, has %d", path, TASK_MAX_FIELDS, n);
    t->n_fields = (size_t)n;
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(arr, i);
        if (!cJSON_IsObject(e)) return tl_fail(err, "%s: fields[%d] must be an object", path, i);
        bool have_col = false, have_ph = false;
        for (const cJSON *k = e->child; k; k = k->next) {
            char key[64];
            snprintf(key, sizeof key, "fields[%d].%s", i, k->string);
            if (!strcmp(k->string, "column")) {
                if (copy_str(t->field_columns[i], TASK_NAME_MAX, k, path, key, err)) return -1;
                have_col = true;
            } else if (!strcmp(k->string, "placeholder")) {
                if (copy_str(t->placeholders[i], TASK_NAME_MAX, k, path, key, err)) return -1;
                have_ph = true;
            } else if (!strcmp(k->string, "letters")) {
                if (copy_str(t->letters[i], TASK_NAME_MAX, k, path, key, err)) return -1;
                have_ph = true;
            } else {
                return tl_fail(err, "%s: unknown key '%s' (expected column, placeholder, letters)", path, key);
            }
        }
        if (!have_col) return tl_fail(err, "%s: fields[%d] lacks 'column'", path, i);
        if (!have_ph) return tl_fail(err, "%s: fields[%d] lacks 'placeholder' (or 'letters')", path, i);
        if (t->placeholders[i][0] && !strcmp(t->placeholders[i], t->letters[i]))
            return tl_fail(err, "%s: fields[%d] uses '%s' as both placeholder and letters", path, i, t->letters[i]);
        for (int j = 0; j < i; j++) {
            if (!strcmp(t->field_columns[j], t->field_columns[i]))
                return tl_fail(err, "%s: fields[%d].column '%s' repeats fields[%d]", path, i, t->field_columns[i], j);
            const char *mine[2] = {t->placeholders[i], t->letters[i]}, *theirs[2] = {t->placeholders[j], t->letters[j]};
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++)
                    if (mine[a][0] && !strcmp(mine[a], theirs[b]))
                        return tl_fail(err, "%s: fields[%d] placeholder '%s' repeats fields[%d]", path, i, mine[a], j);
        }
    }
    return 0;
}

static int parse_labels(task_t *t, const cJSON *arr, const char *path, tl_err_t *err) {
    if (!cJSON_IsArray(arr)) return tl_fail(err, "%s: key 'labels' must be an array of strings", path);
    int n = cJSON_GetArraySize(arr);
    if (n < 2 || n > TASK_MAX_LABELS) return tl_fail(err, "%s: 'labels' must hold 2..%d entries, has %d", path, TASK_MAX_LABELS, n);
    t->n_labels = (size_t)n;
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "labels[%d]", i);
        if (copy_str(t->labels[i], TASK_NAME_MAX, cJSON_GetArrayItem(arr, i), path, key, err)) return -1;
        for (int j = 0; j < i; j++)
            if (!strcmp(t->labels[j], t->labels[i])) return tl_fail(err, "%s: label '%s' listed twice", path, t->labels[i]);
    }
    return 0;
}

static int parse_json(task_t *t, const cJSON *root, const char *path, char *template_name, size_t tn_cap, tl_err_t *err) {
    if (!cJSON_IsObject(root)) return tl_fail(err, "%s: top level must be an object", path);
    enum { K_NAME, K_TEMPLATE, K_FIELDS, K_LABEL_COL, K_LABELS, K_COUNT };
    bool seen[K_COUNT] = {0};
    static const char *const required[K_COUNT] = {"name", "template", "fields", "label_column", "labels"};
    snprintf(t->label_prefix, sizeof t->label_prefix, " ");
    t->max_field_bytes = 256;
    for (const cJSON *k = root->child; k; k = k->next) {
        const char *key = k->string;
        if (!strcmp(key, "name")) {
            if (copy_str(t->name, sizeof t->name, k, path, key, err)) return -1;
            seen[K_NAME] = true;
        } else if (!strcmp(key, "description")) {
            if (!cJSON_IsString(k)) return tl_fail(err, "%s: key 'description' must be a string", path);
        } else if (!strcmp(key, "template")) {
            if (copy_str(template_name, tn_cap, k, path, key, err)) return -1;
            if (strchr(template_name, '/') || !strcmp(template_name, ".."))
                return tl_fail(err, "%s: 'template' must be a file name inside the task folder", path);
            seen[K_TEMPLATE] = true;
        } else if (!strcmp(key, "fields")) {
            if (parse_fields(t, k, path, err)) return -1;
            seen[K_FIELDS] = true;
        } else if (!strcmp(key, "label_column")) {
            if (copy_str(t->label_column, sizeof t->label_column, k, path, key, err)) return -1;
            seen[K_LABEL_COL] = true;
        } else if (!strcmp(key, "labels")) {
            if (parse_labels(t, k, path, err)) return -1;
            seen[K_LABELS] = true;
        } else if (!strcmp(key, "label_prefix")) {
            if (!cJSON_IsString(k) || strlen(k->valuestring) >= sizeof t->label_prefix)
                return tl_fail(err, "%s: 'label_prefix' must be a string of at most %zu bytes", path, sizeof t->label_prefix - 1);
            snprintf(t->label_prefix, sizeof t->label_prefix, "%s", k->valuestring);
        } else if (!strcmp(key, "max_field_bytes")) {
            if (!cJSON_IsNumber(k) || k->valuedouble < 1 || k->valuedouble > 1e6 || k->valuedouble != (double)(long)k->valuedouble)
                return tl_fail(err, "%s: 'max_field_bytes' must be an integer in 1..1000000", path);
            t->max_field_bytes = (size_t)k->valuedouble;
        } else if (!strcmp(key, "category_column")) {
            if (copy_str(t->category_column, sizeof t->category_column, k, path, key, err)) return -1;
        } else if (!strcmp(key, "symmetric")) {
            if (!cJSON_IsBool(k)) return tl_fail(err, "%s: 'symmetric' must be true or false", path);
            t->symmetric = cJSON_IsTrue(k);
        } else {
            return tl_fail(err, "%s: unknown key '%s'", path, key);
        }
    }
    for (int i = 0; i < K_COUNT; i++)
        if (!seen[i]) return tl_fail(err, "%s: missing key '%s'", path, required[i]);
    if (t->symmetric && t->n_fields != 2)
        return tl_fail(err, "%s: 'symmetric' needs exactly 2 fields, the task has %zu", path, t->n_fields);
    for (size_t i = 0; i < t->n_fields; i++) {
        if (!strcmp(t->field_columns[i], t->label_column))
            return tl_fail(err, "%s: label_column '%s' is also a field", path, t->label_column);
        if (t->category_column[0] && !strcmp(t->field_columns[i], t->category_column))
            return tl_fail(err, "%s: category_column '%s' is also a field", path, t->category_column);
    }
    return 0;
}

int task_load(task_t **out, const char *dir, tl_err_t *err) {
    *out = NULL;
    task_t *t = calloc(1, sizeof *t);
    if (!t) return tl_fail(err, "%s: out of memory", dir);
    snprintf(t->dir, sizeof t->dir, "%s", dir);
    char path[1024], template_name[256];
    snprintf(path, sizeof path, "%s/task.json", dir);
    size_t len;
    char *text = read_file(path, &len, err);
    if (!text) {
        free(t);
        return -1;
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) {
        free(t);
        return tl_fail(err, "%s: not valid JSON", path);
    }
    int rc = parse_json(t, root, path, template_name, sizeof template_name, err);
    cJSON_Delete(root);
    if (rc) {
        free(t);
        return -1;
    }
    char tpath[1024];
    snprintf(tpath, sizeof tpath, "%s/%s", dir, template_name);
    t->template_text = read_file(tpath, &len, err);
    if (!t->template_text) {
        free(t);
        return -1;
    }
    if (strlen(t->template_text) != len) {
        task_free(t);
        return tl_fail(err, "%s: template contains a NUL byte", tpath);
    }
    for (size_t i = 0; i < t->n_fields; i++) {
        const char *ph[2] = {t->placeholders[i], t->letters[i]};
        for (int f = 0; f < 2; f++)
            if (ph[f][0] && !strstr(t->template_text, ph[f])) {
                tl_fail(err, "%s: placeholder '%s' (field '%s') does not occur in the template", tpath, ph[f],
                        t->field_columns[i]);
                task_free(t);
                return -1;
            }
    }
    *out = t;
    return 0;
}

void task_free(task_t *t) {
    if (!t) return;
    free(t->template_text);
    free(t);
}

/* Earliest placeholder at or after s (the longest where two start there);
 * sets *which to its field and *spell to whether it is the letters form. */
static const char *next_placeholder(const task_t *t, const char *s, size_t *which, int *spell) {
    const char *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < t->n_fields; i++)
        for (int f = 0; f < 2; f++) {
            const char *ph = f ? t->letters[i] : t->placeholders[i];
            if (!ph[0]) continue;
            const char *p = strstr(s, ph);
            size_t len = strlen(ph);
            if (p && (!best || p < best || (p == best && len > best_len))) {
                best = p;
                best_len = len;
                *which = i;
                *spell = f;
            }
        }
    return best;
}

/* A combining mark (kept with the character before it): the general-purpose
 * combining blocks, the zero-width (non-)joiners, and the vowel signs,
 * nuktas and viramas of the Indic blocks U+0900-U+0DFF, which share one
 * layout. */
static bool combining(uint32_t c) {
    if ((c >= 0x300 && c <= 0x36f) || (c >= 0x1ab0 && c <= 0x1aff) || (c >= 0x1dc0 && c <= 0x1dff) ||
        (c >= 0x20d0 && c <= 0x20ff) || (c >= 0xfe20 && c <= 0xfe2f) || c == 0x200c || c == 0x200d)
        return true;
    if (c >= 0x900 && c <= 0xdff) {
        uint32_t o = c & 0x7f;
        return o <= 0x03 || (o >= 0x3a && o <= 0x4f && o != 0x3d) || (o >= 0x51 && o <= 0x57) || o == 0x62 || o == 0x63;
    }
    return false;
}

/* Length of the UTF-8 sequence at s (1 for a byte that starts none, so
 * malformed text still advances) and its code point. */
static size_t utf8_next(const unsigned char *s, uint32_t *cp) {
    unsigned char b = s[0];
    size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 1;
    uint32_t c = n == 1 ? b : n == 2 ? (b & 0x1fu) : n == 3 ? (b & 0x0fu) : (b & 0x07u);
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xc0) != 0x80) {
            *cp = b;
            return 1;
        }
        c = (c << 6) | (s[k] & 0x3fu);
    }
    *cp = c;
    return n;
}

size_t task_spell_letters(const char *in, char *out, size_t cap) {
    size_t len = 0;
#define PUT(ch)                                                                                                        \
    do {                                                                                                               \
        if (len + 1 < cap) out[len] = (char)(ch);                                                                      \
        len++;                                                                                                         \
    } while (0)
    const unsigned char *s = (const unsigned char *)in;
    bool in_word = false, any = false;
    while (*s) {
        if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\f' || *s == '\v') {
            in_word = false;
            s++;
            continue;
        }
        uint32_t cp;
        size_t n = utf8_next(s, &cp);
        if (!in_word) {
            if (any) {
                PUT(' ');
                PUT('/');
                PUT(' ');
            }
            in_word = any = true;
        } else if (!combining(cp)) {
            PUT(' ');
        }
        for (size_t k = 0; k < n; k++) PUT(n == 1 && s[k] >= 'A' && s[k] <= 'Z' ? s[k] + ('a' - 'A') : s[k]);
        s += n;
    }
#undef PUT
    if (cap) out[len < cap ? len : cap - 1] = '\0';
    return len;
}

size_t task_prompt_prefix_len(const task_t *t) {
    size_t w = 0;
    int f = 0;
    const char *p = next_placeholder(t, t->template_text, &w, &f);
    return p ? (size_t)(p - t->template_text) : strlen(t->template_text);
}

int task_render_prompt(const task_t *t, const char *const *fields, char **out, tl_err_t *err) {
    *out = NULL;
    const char *s = t->template_text;
    size_t need = 1;
    for (;;) {
        size_t w = 0;
        int f = 0;
        const char *p = next_placeholder(t, s, &w, &f);
        if (!p) {
            need += strlen(s);
            break;
        }
        need += (size_t)(p - s) + (f ? task_spell_letters(fields[w], NULL, 0) : strlen(fields[w]));
        s = p + strlen(f ? t->letters[w] : t->placeholders[w]);
    }
    char *buf = malloc(need);
    if (!buf) return tl_fail(err, "task %s: out of memory rendering a prompt", t->name);
    char *o = buf;
    s = t->template_text;
    for (;;) {
        size_t w = 0;
        int f = 0;
        const char *p = next_placeholder(t, s, &w, &f);
        if (!p) {
            size_t n = strlen(s);
            memcpy(o, s, n);
            o += n;
            break;
        }
        memcpy(o, s, (size_t)(p - s));
        o += p - s;
        if (f) {
            o += task_spell_letters(fields[w], o, need - (size_t)(o - buf));
        } else {
            size_t fl = strlen(fields[w]);
            memcpy(o, fields[w], fl);
            o += fl;
        }
        s = p + strlen(f ? t->letters[w] : t->placeholders[w]);
    }
    *o = '\0';
    *out = buf;
    return 0;
}

int task_label_index(const task_t *t, const char *label) {
    for (size_t i = 0; i < t->n_labels; i++)
        if (!strcmp(t->labels[i], label)) return (int)i;
    return -1;
}

int task_render_label(const task_t *t, size_t i, char *buf, size_t cap) {
    if (i >= t->n_labels) return -1;
    int n = snprintf(buf, cap, "%s%s", t->label_prefix, t->labels[i]);
    return (n < 0 || (size_t)n >= cap) ? -1 : n;
}
