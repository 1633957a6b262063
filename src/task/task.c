#include "task/task.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
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
            } else {
                return tl_fail(err, "%s: unknown key '%s' (expected column, placeholder)", path, key);
            }
        }
        if (!have_col) return tl_fail(err, "%s: fields[%d] lacks 'column'", path, i);
        if (!have_ph) return tl_fail(err, "%s: fields[%d] lacks 'placeholder'", path, i);
        for (int j = 0; j < i; j++) {
            if (!strcmp(t->field_columns[j], t->field_columns[i]))
                return tl_fail(err, "%s: fields[%d].column '%s' repeats fields[%d]", path, i, t->field_columns[i], j);
            if (!strcmp(t->placeholders[j], t->placeholders[i]))
                return tl_fail(err, "%s: fields[%d].placeholder '%s' repeats fields[%d]", path, i, t->placeholders[i], j);
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
        const char *p = strstr(t->template_text, t->placeholders[i]);
        if (!p) {
            tl_fail(err, "%s: placeholder '%s' (field '%s') does not occur in the template", tpath, t->placeholders[i], t->field_columns[i]);
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

/* Earliest placeholder at or after s; sets *which. */
static const char *next_placeholder(const task_t *t, const char *s, size_t *which) {
    const char *best = NULL;
    for (size_t i = 0; i < t->n_fields; i++) {
        const char *p = strstr(s, t->placeholders[i]);
        if (p && (!best || p < best || (p == best && strlen(t->placeholders[i]) > strlen(t->placeholders[*which])))) {
            best = p;
            *which = i;
        }
    }
    return best;
}

size_t task_prompt_prefix_len(const task_t *t) {
    size_t w = 0;
    const char *p = next_placeholder(t, t->template_text, &w);
    return p ? (size_t)(p - t->template_text) : strlen(t->template_text);
}

int task_render_prompt(const task_t *t, const char *const *fields, char **out, tl_err_t *err) {
    *out = NULL;
    const char *s = t->template_text;
    size_t need = 1;
    for (;;) {
        size_t w = 0;
        const char *p = next_placeholder(t, s, &w);
        if (!p) {
            need += strlen(s);
            break;
        }
        need += (size_t)(p - s) + strlen(fields[w]);
        s = p + strlen(t->placeholders[w]);
    }
    char *buf = malloc(need);
    if (!buf) return tl_fail(err, "task %s: out of memory rendering a prompt", t->name);
    char *o = buf;
    s = t->template_text;
    for (;;) {
        size_t w = 0;
        const char *p = next_placeholder(t, s, &w);
        if (!p) {
            size_t n = strlen(s);
            memcpy(o, s, n);
            o += n;
            break;
        }
        memcpy(o, s, (size_t)(p - s));
        o += p - s;
        size_t fl = strlen(fields[w]);
        memcpy(o, fields[w], fl);
        o += fl;
        s = p + strlen(t->placeholders[w]);
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
