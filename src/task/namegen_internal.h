/* Internals shared by the name generator's source files (not a public API). */
#ifndef TL_TASK_NAMEGEN_INTERNAL_H
#define TL_TASK_NAMEGEN_INTERNAL_H

#include "task/namegen.h"

enum {
    NG_IN_NORTH, NG_IN_SOUTH, NG_IN_EAST, NG_IN_WEST, NG_IN_MUSLIM, NG_IN_SIKH, NG_IN_CHRISTIAN,
    NG_ARABIC, NG_WESTERN, NG_AFRICAN, NG_EAST_ASIAN, NG_SE_ASIAN,
    NG_IN_HINDU, /* pan-Indian given-name pool, drawn on by the four Hindu-majority regions */
    NG_REGIONS
};
#define NG_PERSON_REGIONS NG_IN_HINDU /* regions a person can be drawn from */

extern const char *const ng_region_names[NG_REGIONS];

enum { NG_TRANSLIT, NG_NICKNAME, NG_VARIANT, NG_KINDS };

typedef struct {
    const char *name;
    char gender; /* 'm', 'f' or '-' (unknown) */
} ng_name_t;

typedef struct {
    ng_name_t *v;
    size_t n, cap;
} ng_vec_t;

typedef struct {
    int kind;
    size_t n;
    const char **names;
} ng_group_t;

typedef struct {
    char *key; /* lower-case name */
    int *groups;
    int ng, gcap;
    const char *deva; /* Devanagari spelling, or NULL */
} ng_entry_t;

struct namegen_lists {
    ng_vec_t given[NG_REGIONS], middle[NG_REGIONS], surname[NG_REGIONS];
    ng_group_t *groups;
    size_t ngroups, gcap;
    ng_entry_t *tab;
    size_t tabcap, tabn;
    char **strs; /* every owned string, for freeing */
    size_t nstrs, scap;
};

const ng_entry_t *ng_lookup(const namegen_lists_t *l, const char *name);

#endif
