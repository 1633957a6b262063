/* A task is data, not code: a folder holding task.json (fields, labels,
 * template file, limits) and the prompt template. Adding a task means adding
 * a folder under tasks/. */
#ifndef TL_TASK_H
#define TL_TASK_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

enum { TASK_MAX_FIELDS = 8, TASK_MAX_LABELS = 16, TASK_NAME_MAX = 64 };

typedef struct {
    char name[TASK_NAME_MAX];
    char dir[512];
    char *template_text;                             /* exact bytes of the template file */
    size_t n_fields;
    char field_columns[TASK_MAX_FIELDS][TASK_NAME_MAX];  /* CSV column of each field, in order */
    char placeholders[TASK_MAX_FIELDS][TASK_NAME_MAX];   /* text in the template it replaces ("" if none) */
    char letters[TASK_MAX_FIELDS][TASK_NAME_MAX];        /* text replaced by the value spelled out letter by
                                                            letter (task_spell_letters), "" if none */
    char label_column[TASK_NAME_MAX];
    size_t n_labels;
    char labels[TASK_MAX_LABELS][TASK_NAME_MAX];
    char label_prefix[16];        /* rendered before a label as its continuation (" ") */
    size_t max_field_bytes;       /* longest field value accepted */
    char category_column[TASK_NAME_MAX]; /* optional ("" if none) */
    bool symmetric;               /* two fields whose order does not change the label ("symmetric": true):
                                     data prepare treats (a, b) and (b, a) as one pair and can add the
                                     reversed copy of every training pair (--swap) */
} task_t;

/* Loads DIR/task.json and the template it names. Unknown keys, missing keys,
 * wrong types and placeholders absent from the template are errors. */
int task_load(task_t **out, const char *dir, tl_err_t *err);
void task_free(task_t *t);

/* Renders the template with fields[i] for placeholder i (n_fields values),
 * and fields[i] spelled out (task_spell_letters) for field i's letters
 * placeholder. *out is malloc'd; field text is inserted as is (or spelled),
 * never re-scanned. */
int task_render_prompt(const task_t *t, const char *const *fields, char **out, tl_err_t *err);
/* The letter-by-letter form of a value, as a letters placeholder renders it:
 * words (split at ASCII white space) joined by " / ", the characters of a
 * word (UTF-8 code points, a combining mark kept with the character before
 * it) joined by " ", ASCII letters lower-cased: "Ravi  Kumar" ->
 * "r a v i / k u m a r". Writes at most cap bytes including the NUL; returns
 * the length the whole form needs (so a call with cap 0 measures it). */
size_t task_spell_letters(const char *in, char *out, size_t cap);
/* Bytes of the template before the first placeholder (constant across rows). */
size_t task_prompt_prefix_len(const task_t *t);
/* Index of a label (exact match), -1 if not a label. */
int task_label_index(const task_t *t, const char *label);
/* Writes label_prefix + label into buf; returns its length, -1 if cap is too small. */
int task_render_label(const task_t *t, size_t i, char *buf, size_t cap);

#endif
