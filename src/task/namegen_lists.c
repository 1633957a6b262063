/* Loading the name lists of a task folder and answering variant look-ups. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "task/namegen_internal.h"

const char *const ng_region_names[NG_REGIONS] = {
    "in_north", "in_south", "in_east", "in_west", "in_muslim", "in_sikh", "in_christian",
    "arabic", "western", "african", "east_asian", "se_asian", "in_hindu",
};

static const char *const kind_names[NG_KINDS] = {"translit", "nickname", "variant"};

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 64;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, nc * elem);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

static char *own(namegen_lists_t *l, const char *s) {
    if (grow((void **)&l->strs, &l->scap, l->nstrs + 1, sizeof *l->strs)) return NULL;
    char *d = strdup(s);
    if (d) l->strs[l->nstrs++] = d;
    return d;
}

static uint64_t hash_lower(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint64_t)(unsigned char)tolower((unsigned char)*s)) * 1099511628211ull;
    return h;
}

static int eq_lower(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

const ng_entry_t *ng_lookup(const namegen_lists_t *l, const char *name) {
    if (!l->tabcap) return NULL;
    size_t mask = l->tabcap - 1, i = (size_t)hash_lower(name) & mask;
    while (l->tab[i].key) {
        if (eq_lower(l->tab[i].key, name)) return &l->tab[i];
        i = (i + 1) & mask;
    }
    return NULL;
}

static int rehash(namegen_lists_t *l) {
    size_t nc = l->tabcap ? l->tabcap * 2 : 1024;
    ng_entry_t *nt = calloc(nc, sizeof *nt);
    if (!nt) return -1;
    for (size_t i = 0; i < l->tabcap; i++) {
        if (!l->tab[i].key) continue;
        size_t j = (size_t)hash_lower(l->tab[i].key) & (nc - 1);
        while (nt[j].key) j = (j + 1) & (nc - 1);
        nt[j] = l->tab[i];
    }
    free(l->tab);
    l->tab = nt;
    l->tabcap = nc;
    return 0;
}

static ng_entry_t *entry_get(namegen_lists_t *l, const char *name) {
    ng_entry_t *e = (ng_entry_t *)ng_lookup(l, name);
    if (e) return e;
    if ((l->tabn + 1) * 2 > l->tabcap && rehash(l)) return NULL;
    size_t mask = l->tabcap - 1, i = (size_t)hash_lower(name) & mask;
    while (l->tab[i].key) i = (i + 1) & mask;
    char *k = strdup(name);
    if (!k) return NULL;
    for (char *p = k; *p; p++) *p = (char)tolower((unsigned char)*p);
    l->tab[i].key = k;
    l->tabn++;
    return &l->tab[i];
}

static int entry_add_group(ng_entry_t *e, int g) {
    for (int i = 0; i < e->ng; i++)
        if (e->groups[i] == g) return 0;
    if (e->ng == e->gcap) {
        int nc = e->gcap ? e->gcap * 2 : 2;
        int *q = realloc(e->groups, (size_t)nc * sizeof *q);
        if (!q) return -1;
        e->groups = q;
        e->gcap = nc;
    }
    e->groups[e->ng++] = g;
    return 0;
}

/* Splits line (modified in place) at tabs; returns the field count. */
static size_t split_tabs(char *line, char **f, size_t maxf) {
    size_t n = 0;
    char *p = line;
    while (n < maxf) {
        f[n++] = p;
        char *t = strchr(p, '\t');
        if (!t) break;
        *t = '\0';
        p = t + 1;
    }
    return n;
}

typedef int (*line_fn)(namegen_lists_t *l, char **f, size_t nf, const char *path, size_t row, tl_err_t *err);

static int read_lines(namegen_lists_t *l, const char *path, line_fn fn, tl_err_t *err) {
    FILE *fp = fopen(path, "r");
    if (!fp) return tl_fail(err, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, row = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, fp)) >= 0) {
        row++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0 || line[0] == '#') continue;
        char *f[32];
        size_t nf = split_tabs(line, f, 32);
        rc = fn(l, f, nf, path, row, err);
    }
    if (rc == 0 && ferror(fp)) rc = tl_fail(err, "%s: read error", path);
    free(line);
    fclose(fp);
    return rc;
}

static int region_index(const char *s) {
    for (int i = 0; i < NG_REGIONS; i++)
        if (!strcmp(s, ng_region_names[i])) return i;
    return -1;
}

static int vec_push(ng_vec_t *v, const char *name, char g) {
    if (grow((void **)&v->v, &v->cap, v->n + 1, sizeof *v->v)) return -1;
    v->v[v->n].name = name;
    v->v[v->n].gender = g;
    v->n++;
    return 0;
}

static int on_name(namegen_lists_t *l, char **f, size_t nf, const char *path, size_t row, tl_err_t *err) {
    if (nf < 4) return tl_fail(err, "%s:%zu: expected kind, region, gender, name", path, row);
    int r = region_index(f[1]);
    if (r < 0) return tl_fail(err, "%s:%zu: unknown region '%s'", path, row, f[1]);
    if (strcmp(f[2], "m") && strcmp(f[2], "f") && strcmp(f[2], "-"))
        return tl_fail(err, "%s:%zu: gender must be m, f or -, not '%s'", path, row, f[2]);
    size_t n = strlen(f[3]);
    if (n == 0 || n > 40 || strchr(f[3], ' ') || strchr(f[3], ','))
        return tl_fail(err, "%s:%zu: name field must be 1-40 bytes without spaces or commas", path, row);
    ng_vec_t *v;
    if (!strcmp(f[0], "given")) v = &l->given[r];
    else if (!strcmp(f[0], "middle")) v = &l->middle[r];
    else if (!strcmp(f[0], "surname")) v = &l->surname[r];
    else return tl_fail(err, "%s:%zu: unknown kind '%s'", path, row, f[0]);
    const char *s = own(l, f[3]);
    if (!s || vec_push(v, s, f[2][0])) return tl_fail(err, "%s:%zu: out of memory", path, row);
    return 0;
}

static int on_variant(namegen_lists_t *l, char **f, size_t nf, const char *path, size_t row, tl_err_t *err) {
    if (nf < 4) return tl_fail(err, "%s:%zu: expected kind, source and 2+ names", path, row);
    int kind = -1;
    for (int k = 0; k < NG_KINDS; k++)
        if (!strcmp(f[0], kind_names[k])) kind = k;
    if (kind < 0) return tl_fail(err, "%s:%zu: unknown variant kind '%s'", path, row, f[0]);
    if (grow((void **)&l->groups, &l->gcap, l->ngroups + 1, sizeof *l->groups))
        return tl_fail(err, "%s:%zu: out of memory", path, row);
    ng_group_t *g = &l->groups[l->ngroups];
    g->kind = kind;
    g->n = nf - 2;
    g->names = calloc(g->n, sizeof *g->names);
    if (!g->names) return tl_fail(err, "%s:%zu: out of memory", path, row);
    l->ngroups++;
    for (size_t i = 0; i < g->n; i++) {
        if (!f[i + 2][0]) return tl_fail(err, "%s:%zu: empty name in field %zu", path, row, i + 3);
        g->names[i] = own(l, f[i + 2]);
        ng_entry_t *e = g->names[i] ? entry_get(l, f[i + 2]) : NULL;
        if (!e || entry_add_group(e, (int)(l->ngroups - 1))) return tl_fail(err, "%s:%zu: out of memory", path, row);
    }
    return 0;
}

static int on_deva(namegen_lists_t *l, char **f, size_t nf, const char *path, size_t row, tl_err_t *err) {
    if (nf < 2 || !f[0][0] || !f[1][0]) return tl_fail(err, "%s:%zu: expected latin and devanagari", path, row);
    ng_entry_t *e = entry_get(l, f[0]);
    if (!e) return tl_fail(err, "%s:%zu: out of memory", path, row);
    if (!e->deva && !(e->deva = own(l, f[1]))) return tl_fail(err, "%s:%zu: out of memory", path, row);
    return 0;
}

int namegen_lists_load(namegen_lists_t **out, const char *task_dir, tl_err_t *err) {
    *out = NULL;
    namegen_lists_t *l = calloc(1, sizeof *l);
    if (!l) return tl_fail(err, "out of memory");
    static const struct {
        const char *file;
        line_fn fn;
    } files[] = {{"names.tsv", on_name}, {"variants.tsv", on_variant}, {"devanagari.tsv", on_deva}};
    char path[4096];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/lists/%s", task_dir, files[i].file);
        if (read_lines(l, path, files[i].fn, err)) {
            namegen_lists_free(l);
            return -1;
        }
    }
    for (int r = 0; r < NG_PERSON_REGIONS; r++) {
        if (l->given[r].n == 0 || l->surname[r].n < 2) {
            tl_fail(err, "%s/lists/names.tsv: region '%s' needs given names and 2+ surnames", task_dir,
                    ng_region_names[r]);
            namegen_lists_free(l);
            return -1;
        }
    }
    *out = l;
    return 0;
}

void namegen_lists_free(namegen_lists_t *l) {
    if (!l) return;
    for (int r = 0; r < NG_REGIONS; r++) {
        free(l->given[r].v);
        free(l->middle[r].v);
        free(l->surname[r].v);
    }
    for (size_t i = 0; i < l->ngroups; i++) free(l->groups[i].names);
    free(l->groups);
    for (size_t i = 0; i < l->tabcap; i++) {
        free(l->tab[i].key);
        free(l->tab[i].groups);
    }
    free(l->tab);
    for (size_t i = 0; i < l->nstrs; i++) free(l->strs[i]);
    free(l->strs);
    free(l);
}

int namegen_are_variants(const namegen_lists_t *l, const char *a, const char *b) {
    const ng_entry_t *ea = ng_lookup(l, a), *eb = ng_lookup(l, b);
    if (ea && ea->deva && !strcmp(ea->deva, b)) return 1;
    if (eb && eb->deva && !strcmp(eb->deva, a)) return 1;
    if (!ea || !eb) return 0;
    for (int i = 0; i < ea->ng; i++)
        for (int j = 0; j < eb->ng; j++)
            if (ea->groups[i] == eb->groups[j]) return 1;
    return 0;
}

static int is_initial(const char *s) {
    return isalpha((unsigned char)s[0]) && (s[1] == '\0' || (s[1] == '.' && s[2] == '\0'));
}

int namegen_part_match(const namegen_lists_t *l, const char *a, const char *b) {
    if (eq_lower(a, b)) return 1;
    if (l && namegen_are_variants(l, a, b)) return 1;
    if (is_initial(a) || is_initial(b)) return tolower((unsigned char)a[0]) == tolower((unsigned char)b[0]);
    if (strlen(a) >= 4 && strlen(b) >= 4 && namegen_edit_distance(a, b) <= 1) return 1;
    return 0;
}
