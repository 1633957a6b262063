/* Name-matching corpus generator: builds labelled pairs of person names
 * (yes / no / partial, rules in tasks/namematch/LABELS.md) from the name lists
 * of a task folder (tasks/namematch/lists/). Deterministic for a given seed
 * and lists: its own PRNG (xoshiro256** seeded by splitmix64), no rand(). */
#ifndef TL_TASK_NAMEGEN_H
#define TL_TASK_NAMEGEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"

/* ---- PRNG ---- */
typedef struct {
    uint64_t s[4];
} namegen_rng_t;

void namegen_rng_seed(namegen_rng_t *r, uint64_t seed);
uint64_t namegen_rng_next(namegen_rng_t *r);
/* Uniform in [0, n); n > 0. */
uint32_t namegen_rng_below(namegen_rng_t *r, uint32_t n);
/* Uniform in [0, 1). */
double namegen_rng_unit(namegen_rng_t *r);

/* ---- token edits (ASCII letters; the first letter is never touched) ----
 * Each writes a NUL-terminated result into out (cap bytes) and returns 0, or
 * returns -1 when the edit does not apply (token shorter than 4 letters, not
 * ASCII letters, no room). */
int namegen_typo_sub(namegen_rng_t *r, const char *in, char *out, size_t cap);       /* keyboard-adjacent substitution */
int namegen_typo_del(namegen_rng_t *r, const char *in, char *out, size_t cap);       /* one letter dropped */
int namegen_typo_ins(namegen_rng_t *r, const char *in, char *out, size_t cap);       /* one letter added */
int namegen_typo_transpose(namegen_rng_t *r, const char *in, char *out, size_t cap); /* two adjacent letters swapped */
/* "Ravi" -> "R." (dot != 0) or "R". Returns -1 if in does not start with an ASCII letter. */
int namegen_make_initial(const char *in, int dot, char *out, size_t cap);
/* 1 if letters a and b are neighbours on a QWERTY keyboard (case-insensitive). */
int namegen_keys_adjacent(char a, char b);
/* Optimal-string-alignment distance (adjacent transposition = 1 edit), ASCII
 * case-insensitive; strings longer than 63 bytes count as distance 64. */
int namegen_edit_distance(const char *a, const char *b);

/* ---- lists ---- */
typedef struct namegen_lists namegen_lists_t;

/* Loads TASK_DIR/lists/{names,variants,devanagari}.tsv. */
int namegen_lists_load(namegen_lists_t **out, const char *task_dir, tl_err_t *err);
void namegen_lists_free(namegen_lists_t *l);
/* 1 if a and b are listed spellings of one name (transliteration, nickname or
 * variant group, or Latin/Devanagari pair). */
int namegen_are_variants(const namegen_lists_t *l, const char *a, const char *b);
/* The part-match rule of LABELS.md: equal ignoring case, listed variants, an
 * initial of the other, or one typo apart when both have 4+ letters. */
int namegen_part_match(const namegen_lists_t *l, const char *a, const char *b);

/* ---- corpus ---- */
typedef struct {
    double yes, no, partial; /* shares, summing to 1 */
} namegen_mix_t;

typedef struct {
    size_t rows;
    uint64_t seed;
    namegen_mix_t mix;
} namegen_opts_t;

typedef struct {
    size_t yes, no, partial, indian;
} namegen_stats_t;

/* Writes the header and opts->rows CSV rows
 * (elected_name,partner_name,labeled_result,category,region) to out. */
int namegen_write_csv(const namegen_lists_t *l, const namegen_opts_t *opts, FILE *out,
                      namegen_stats_t *stats, tl_err_t *err);

/* Writes one CSV field with RFC 4180 quoting when needed. */
void namegen_csv_field(FILE *out, const char *s);

#endif
