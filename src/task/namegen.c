/* Corpus generation: people drawn from the lists, label-specific pair builders
 * (each a named category), rendering, de-duplication and CSV output.
 * The rules the builders follow are in tasks/namematch/LABELS.md. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "task/namegen_internal.h"

enum { P_GIVEN, P_MIDDLE, P_SURNAME, P_N };
#define PART_MAX 64
#define NAME_MAX_BYTES 128

typedef struct {
    char p[P_N][PART_MAX]; /* "" = absent */
    int region;
    char gender;
    int sfirst; /* written surname first */
} nm_t;

typedef struct {
    const char *hon;
    int comma;  /* "Surname, Given" when sfirst */
    int casing; /* 0 as written, 1 upper, 2 lower */
    int dspace; /* a double space between two tokens */
    int concat; /* 1: join given with the next part ("Ravikumar"), 2: keep its capital ("RaviKumar") */
} style_t;

typedef struct {
    const namegen_lists_t *l;
    namegen_rng_t *r;
    nm_t a, b;
    style_t sb;
    int touched[P_N];
    const char *sub; /* set by builders whose category depends on the list used */
} ctx_t;

/* ---------- small helpers ---------- */

static int chance(namegen_rng_t *r, double p) { return namegen_rng_unit(r) < p; }

static const char *pick_str(namegen_rng_t *r, const char *const *v, size_t n) {
    return v[namegen_rng_below(r, (uint32_t)n)];
}
#define PICK(r, arr) pick_str((r), (arr), sizeof(arr) / sizeof((arr)[0]))

static void set_part(nm_t *n, int i, const char *s) { snprintf(n->p[i], PART_MAX, "%s", s); }

static int eq_ci(const char *a, const char *b) { return strcasecmp(a, b) == 0; }

static int is_indian(int region) { return region <= NG_IN_CHRISTIAN; }
static int is_hindu_region(int region) { return region <= NG_IN_WEST; }

static int ascii_alpha(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80 || !isalpha((unsigned char)*s)) return 0;
    return 1;
}

/* Two parts are "different" for building partial/no pairs: they fail the
 * part-match rule and neither is a prefix of the other (Krishna/Krishnan). */
static int differs(const namegen_lists_t *l, const char *a, const char *b) {
    if (namegen_part_match(l, a, b)) return 0;
    size_t na = strlen(a), nb = strlen(b), n = na < nb ? na : nb;
    if (n >= 3 && strncasecmp(a, b, n) == 0) return 0;
    return 1;
}

/* ---------- drawing people ---------- */

static const double region_weight[NG_PERSON_REGIONS] = {
    0.16, 0.12, 0.07, 0.09, 0.07, 0.05, 0.04, /* Indian: 0.60 */
    0.10, 0.12, 0.08, 0.05, 0.05,             /* others: 0.40 */
};

static int pick_region(namegen_rng_t *r) {
    double u = namegen_rng_unit(r), acc = 0;
    for (int i = 0; i < NG_PERSON_REGIONS; i++) {
        acc += region_weight[i];
        if (u < acc) return i;
    }
    return NG_PERSON_REGIONS - 1;
}

static const ng_vec_t *given_pool(const ctx_t *c, int region) {
    if (is_hindu_region(region) && c->l->given[NG_IN_HINDU].n && chance(c->r, 0.5)) return &c->l->given[NG_IN_HINDU];
    return &c->l->given[region];
}

static const char *pick_from(namegen_rng_t *r, const ng_vec_t *v, char gender) {
    if (v->n == 0) return NULL;
    for (int t = 0; t < 24; t++) {
        const ng_name_t *n = &v->v[namegen_rng_below(r, (uint32_t)v->n)];
        if (gender == '-' || n->gender == '-' || n->gender == gender) return n->name;
    }
    return v->v[namegen_rng_below(r, (uint32_t)v->n)].name;
}

static const char *pick_given(ctx_t *c, int region, char gender) { return pick_from(c->r, given_pool(c, region), gender); }

static const char *pick_surname(ctx_t *c, int region) { return pick_from(c->r, &c->l->surname[region], '-'); }

static void draw_person(ctx_t *c, int region, nm_t *n) {
    memset(n, 0, sizeof *n);
    n->region = region;
    n->gender = chance(c->r, 0.5) ? 'm' : 'f';
    set_part(n, P_GIVEN, pick_given(c, region, n->gender));
    const ng_vec_t *mid = &c->l->middle[region];
    switch (region) {
    case NG_IN_SIKH:
        if (chance(c->r, 0.55)) {
            set_part(n, P_MIDDLE, n->gender == 'm' ? "Singh" : "Kaur");
            set_part(n, P_SURNAME, pick_surname(c, region));
        } else {
            set_part(n, P_SURNAME, n->gender == 'm' ? "Singh" : "Kaur");
        }
        return;
    case NG_IN_MUSLIM:
        set_part(n, P_SURNAME, pick_surname(c, region));
        if (n->gender == 'm' && mid->n && chance(c->r, 0.25)) { /* "Mohammed Imran Khan" */
            char g[PART_MAX];
            snprintf(g, sizeof g, "%s", n->p[P_GIVEN]);
            set_part(n, P_GIVEN, pick_from(c->r, mid, 'm'));
            if (!eq_ci(g, n->p[P_GIVEN])) set_part(n, P_MIDDLE, g);
        }
        return;
    case NG_ARABIC:
        set_part(n, P_SURNAME, pick_surname(c, region));
        if (chance(c->r, 0.2)) set_part(n, P_MIDDLE, pick_from(c->r, &c->l->given[region], 'm'));
        break;
    case NG_EAST_ASIAN:
        set_part(n, P_SURNAME, pick_surname(c, region));
        n->sfirst = chance(c->r, 0.5);
        return;
    default: {
        set_part(n, P_SURNAME, pick_surname(c, region));
        double pm = region == NG_IN_NORTH ? 0.3 : region == NG_WESTERN ? 0.25 : region == NG_SE_ASIAN ? 0 : 0.1;
        if (chance(c->r, pm)) {
            /* without a middle-name list the middle name is the father's given name (Sachin Ramesh Tendulkar) */
            const char *m = mid->n ? pick_from(c->r, mid, n->gender) : pick_from(c->r, &c->l->given[region], 'm');
            if (m) set_part(n, P_MIDDLE, m);
        }
    }
    }
    if (n->p[P_MIDDLE][0] && (eq_ci(n->p[P_MIDDLE], n->p[P_GIVEN]) || eq_ci(n->p[P_MIDDLE], n->p[P_SURNAME])))
        n->p[P_MIDDLE][0] = '\0';
    for (int t = 0; t < 20 && namegen_part_match(c->l, n->p[P_GIVEN], n->p[P_SURNAME]); t++)
        set_part(n, P_GIVEN, pick_given(c, region, n->gender)); /* not "Emmanuel Emmanuel" */
}

/* ---------- honorifics ---------- */

static const char *pick_honorific(namegen_rng_t *r, int region, char g) {
    static const char *const in_m[] = {"Mr", "Mr.", "Shri", "Sri", "Shree", "Dr", "Dr."};
    static const char *const in_f[] = {"Mrs", "Ms", "Smt", "Smt.", "Kumari", "Km.", "Dr", "Ms."};
    static const char *const mu_m[] = {"Mr", "Mr.", "Janab", "Dr"};
    static const char *const mu_f[] = {"Mrs", "Ms", "Mrs.", "Dr"};
    static const char *const si_m[] = {"Mr", "Sardar", "Dr", "Shri"};
    static const char *const si_f[] = {"Mrs", "Ms", "Smt", "Sardarni"};
    static const char *const we_m[] = {"Mr", "Mr.", "Dr", "Dr.", "Prof."};
    static const char *const we_f[] = {"Mrs", "Ms", "Miss", "Mrs.", "Dr"};
    static const char *const af_m[] = {"Mr", "Mr.", "Dr", "Chief"};
    static const char *const any[] = {"Dr", "Dr.", "Prof."};
    if (g == '-') return PICK(r, any);
    int m = g == 'm';
    if (region == NG_IN_MUSLIM || region == NG_ARABIC) return m ? PICK(r, mu_m) : PICK(r, mu_f);
    if (region == NG_IN_SIKH) return m ? PICK(r, si_m) : PICK(r, si_f);
    if (is_hindu_region(region)) return m ? PICK(r, in_m) : PICK(r, in_f);
    if (region == NG_AFRICAN) return m ? PICK(r, af_m) : PICK(r, we_f);
    return m ? PICK(r, we_m) : PICK(r, we_f);
}

/* ---------- rendering ---------- */

static int render(const nm_t *n, const style_t *s, char *out, size_t cap) {
    const char *tok[P_N];
    int order[P_N], k = 0;
    if (n->sfirst) {
        order[0] = P_SURNAME, order[1] = P_GIVEN, order[2] = P_MIDDLE;
    } else {
        order[0] = P_GIVEN, order[1] = P_MIDDLE, order[2] = P_SURNAME;
    }
    int ord_part[P_N];
    for (int i = 0; i < P_N; i++)
        if (n->p[order[i]][0]) ord_part[k] = order[i], tok[k++] = n->p[order[i]];
    if (k == 0) return -1;
    size_t len = 0;
    out[0] = '\0';
#define APPEND(str)                                                     \
    do {                                                                \
        size_t l_ = strlen(str);                                        \
        if (len + l_ + 1 > cap) return -1;                              \
        memcpy(out + len, (str), l_ + 1);                               \
        len += l_;                                                      \
    } while (0)
    if (s->hon) {
        APPEND(s->hon);
        APPEND(" ");
    }
    int dspace_at = s->dspace ? s->dspace - 1 : -1;
    for (int i = 0; i < k; i++) {
        if (i > 0) {
            int join = s->concat && ord_part[i - 1] == P_GIVEN && !n->sfirst;
            if (join) {
                char t[PART_MAX];
                snprintf(t, sizeof t, "%s", tok[i]);
                if (s->concat == 1) t[0] = (char)tolower((unsigned char)t[0]);
                APPEND(t);
                continue;
            }
            if (n->sfirst && s->comma && i == 1) APPEND(",");
            APPEND(i - 1 == dspace_at ? "  " : " ");
        }
        APPEND(tok[i]);
    }
#undef APPEND
    if (s->casing)
        for (char *p = out; *p; p++)
            if ((unsigned char)*p < 0x80) *p = (char)(s->casing == 1 ? toupper((unsigned char)*p) : tolower((unsigned char)*p));
    return len <= NAME_MAX_BYTES ? 0 : -1;
}

/* ---------- yes builders: transform c->b (a copy of c->a) ---------- */

typedef int (*build_fn)(ctx_t *c);

/* A random untouched part index among those present and accepted by ok(). */
static int choose_part(ctx_t *c, int (*ok)(ctx_t *, int)) {
    int cand[P_N], k = 0;
    for (int i = 0; i < P_N; i++)
        if (c->b.p[i][0] && !c->touched[i] && ok(c, i)) cand[k++] = i;
    return k ? cand[namegen_rng_below(c->r, (uint32_t)k)] : -1;
}

static int ok_typo(ctx_t *c, int i) { return ascii_alpha(c->b.p[i]) && strlen(c->b.p[i]) >= 4; }

static int typo_with(ctx_t *c, int (*fn)(namegen_rng_t *, const char *, char *, size_t)) {
    int i = choose_part(c, ok_typo);
    if (i < 0) return -1;
    char out[PART_MAX];
    for (int t = 0; t < 4; t++) {
        if (fn(c->r, c->b.p[i], out, sizeof out) == 0 && strcmp(out, c->b.p[i]) != 0 &&
            !namegen_are_variants(c->l, out, c->b.p[i])) {
            set_part(&c->b, i, out);
            c->touched[i] = 1;
            return 0;
        }
    }
    return -1;
}
static int y_typo_sub(ctx_t *c) { return typo_with(c, namegen_typo_sub); }
static int y_typo_del(ctx_t *c) { return typo_with(c, namegen_typo_del); }
static int y_typo_ins(ctx_t *c) { return typo_with(c, namegen_typo_ins); }
static int y_typo_transpose(ctx_t *c) { return typo_with(c, namegen_typo_transpose); }

/* Other spellings of name in groups of the given kind. */
static size_t variants_of(const namegen_lists_t *l, const char *name, int kind, const char **out, size_t max) {
    const ng_entry_t *e = ng_lookup(l, name);
    size_t n = 0;
    if (!e) return 0;
    for (int g = 0; g < e->ng; g++) {
        const ng_group_t *grp = &l->groups[e->groups[g]];
        if (grp->kind != kind) continue;
        for (size_t j = 0; j < grp->n && n < max; j++) {
            if (eq_ci(grp->names[j], name)) continue;
            int dup = 0;
            for (size_t q = 0; q < n; q++) dup |= eq_ci(out[q], grp->names[j]);
            if (!dup) out[n++] = grp->names[j];
        }
    }
    return n;
}

static int swap_variant(ctx_t *c, int kind, const int *parts, int nparts) {
    int cand[P_N], k = 0;
    const char *alts[P_N][16];
    size_t nalt[P_N];
    for (int q = 0; q < nparts; q++) {
        int i = parts[q];
        if (!c->b.p[i][0] || c->touched[i]) continue;
        nalt[i] = variants_of(c->l, c->b.p[i], kind, alts[i], 16);
        if (nalt[i]) cand[k++] = i;
    }
    if (!k) return -1;
    int i = cand[namegen_rng_below(c->r, (uint32_t)k)];
    set_part(&c->b, i, alts[i][namegen_rng_below(c->r, (uint32_t)nalt[i])]);
    c->touched[i] = 1;
    return 0;
}

static int y_translit(ctx_t *c) {
    static const int parts[] = {P_GIVEN, P_MIDDLE, P_SURNAME};
    return swap_variant(c, NG_TRANSLIT, parts, 3);
}
/* A formal given name (first of its nickname pair: Robert) becomes its nickname (Bob). */
static int y_nickname(ctx_t *c) {
    const ng_entry_t *e = ng_lookup(c->l, c->b.p[P_GIVEN]);
    const char *alts[16];
    size_t n = 0;
    if (!e || c->touched[P_GIVEN]) return -1;
    for (int g = 0; g < e->ng && n < 16; g++) {
        const ng_group_t *grp = &c->l->groups[e->groups[g]];
        if (grp->kind == NG_NICKNAME && grp->n == 2 && eq_ci(grp->names[0], c->b.p[P_GIVEN])) alts[n++] = grp->names[1];
    }
    if (!n) return -1;
    set_part(&c->b, P_GIVEN, alts[namegen_rng_below(c->r, (uint32_t)n)]);
    c->touched[P_GIVEN] = 1;
    return 0;
}
static int y_name_variant(ctx_t *c) {
    static const int parts[] = {P_GIVEN};
    return swap_variant(c, NG_VARIANT, parts, 1);
}

static int y_case_space(ctx_t *c) {
    int what = (int)namegen_rng_below(c->r, 3);
    if (what == 2 && !c->b.p[P_SURNAME][0]) what = 0;
    if (what == 0) c->sb.casing = 1;
    else if (what == 1) c->sb.casing = 2;
    else c->sb.dspace = 1;
    return 0;
}

static int y_honorific(ctx_t *c) {
    if (c->sb.hon) return -1;
    c->sb.hon = pick_honorific(c->r, c->b.region, c->b.gender);
    return 0;
}

static int initial_of(ctx_t *c, int i) {
    if (!c->b.p[i][0] || c->touched[i] || !ascii_alpha(c->b.p[i]) || strlen(c->b.p[i]) < 3) return -1;
    char out[4];
    if (namegen_make_initial(c->b.p[i], chance(c->r, 0.6), out, sizeof out)) return -1;
    set_part(&c->b, i, out);
    c->touched[i] = 1;
    return 0;
}
static int y_initial_given(ctx_t *c) { return c->b.p[P_SURNAME][0] ? initial_of(c, P_GIVEN) : -1; }
static int y_initial_middle(ctx_t *c) { return initial_of(c, P_MIDDLE); }

static int y_drop_middle(ctx_t *c) {
    if (!c->b.p[P_MIDDLE][0] || c->touched[P_MIDDLE]) return -1;
    c->b.p[P_MIDDLE][0] = '\0';
    c->touched[P_MIDDLE] = 1;
    return 0;
}

static int y_reorder(ctx_t *c) {
    if (!c->b.p[P_SURNAME][0] || c->sb.concat) return -1;
    c->b.sfirst = !c->b.sfirst;
    c->sb.comma = c->b.sfirst && chance(c->r, 0.4);
    return 0;
}

static int y_concat(ctx_t *c) {
    if (c->b.sfirst || c->sb.dspace || !ascii_alpha(c->b.p[P_GIVEN])) return -1;
    int next = c->b.p[P_MIDDLE][0] ? P_MIDDLE : P_SURNAME;
    if (!ascii_alpha(c->b.p[next]) || strlen(c->b.p[P_GIVEN]) + strlen(c->b.p[next]) > 24) return -1;
    c->sb.concat = chance(c->r, 0.7) ? 1 : 2;
    c->touched[P_GIVEN] = c->touched[next] = 1;
    return 0;
}

static int y_native_script(ctx_t *c) {
    if (!is_indian(c->b.region) || c->b.region == NG_IN_CHRISTIAN || c->b.region == NG_IN_SIKH) return -1;
    nm_t d = c->b;
    for (int i = 0; i < P_N; i++) {
        if (!d.p[i][0]) continue;
        const ng_entry_t *e = ng_lookup(c->l, d.p[i]);
        if (!e || !e->deva) return -1;
        set_part(&d, i, e->deva);
    }
    c->b = d;
    for (int i = 0; i < P_N; i++) c->touched[i] = 1;
    return 0;
}

typedef struct {
    const char *name;
    build_fn fn;
    double weight;
} builder_t;

static const builder_t combo_parts[] = {
    {"case_space", y_case_space, 1},       {"honorific", y_honorific, 1.5},   {"typo_sub", y_typo_sub, 1},
    {"typo_del", y_typo_del, 0.7},         {"typo_transpose", y_typo_transpose, 0.7},
    {"translit", y_translit, 1.5},         {"initial_given", y_initial_given, 1},
    {"drop_middle", y_drop_middle, 1},     {"reorder", y_reorder, 1},         {"nickname", y_nickname, 0.7},
};

static int pick_weighted(namegen_rng_t *r, const builder_t *b, size_t n) {
    double tot = 0, acc = 0;
    for (size_t i = 0; i < n; i++) tot += b[i].weight;
    double u = namegen_rng_unit(r) * tot;
    for (size_t i = 0; i < n; i++) {
        acc += b[i].weight;
        if (u < acc) return (int)i;
    }
    return (int)n - 1;
}

static int y_combo(ctx_t *c) {
    size_t n = sizeof combo_parts / sizeof combo_parts[0];
    int first = -1, done = 0;
    for (int t = 0; t < 12 && done < 2; t++) {
        int i = pick_weighted(c->r, combo_parts, n);
        if (i == first) continue;
        if (combo_parts[i].fn(c) == 0) {
            first = i;
            done++;
        }
    }
    return done == 2 ? 0 : -1;
}

static const builder_t yes_builders[] = {
    {"case_space", y_case_space, 0.07},     {"honorific", y_honorific, 0.09},
    {"typo_sub", y_typo_sub, 0.07},         {"typo_del", y_typo_del, 0.05},
    {"typo_ins", y_typo_ins, 0.05},         {"typo_transpose", y_typo_transpose, 0.05},
    {"translit", y_translit, 0.12},         {"initial_given", y_initial_given, 0.07},
    {"initial_middle", y_initial_middle, 0.03}, {"drop_middle", y_drop_middle, 0.05},
    {"reorder", y_reorder, 0.07},           {"concat", y_concat, 0.04},
    {"nickname", y_nickname, 0.05},         {"name_variant", y_name_variant, 0.03},
    {"native_script", y_native_script, 0.04}, {"combo", y_combo, 0.12},
};

/* ---------- partial and no builders: build c->a and c->b from scratch ---------- */

static int new_given(ctx_t *c, const char *old, int region, char g, int similar, char *out) {
    for (int t = 0; t < 400; t++) {
        const char *n = pick_given(c, region, g);
        if (!n || !differs(c->l, n, old)) continue;
        if (similar) {
            if (tolower((unsigned char)n[0]) != tolower((unsigned char)old[0])) continue;
            int d = namegen_edit_distance(n, old);
            if (d < 2 || d > 3) continue;
        }
        snprintf(out, PART_MAX, "%s", n);
        return 0;
    }
    return -1;
}

static int new_surname(ctx_t *c, const char *old, int region, int same_initial, char *out) {
    for (int t = 0; t < 400; t++) {
        const char *n = pick_surname(c, region);
        if (!n || !differs(c->l, n, old)) continue;
        if (same_initial && tolower((unsigned char)n[0]) != tolower((unsigned char)old[0])) continue;
        snprintf(out, PART_MAX, "%s", n);
        return 0;
    }
    return -1;
}

static int base_pair(ctx_t *c) {
    draw_person(c, pick_region(c->r), &c->a);
    c->b = c->a;
    return 0;
}

static int p_diff_given(ctx_t *c, int similar) {
    base_pair(c);
    char g[PART_MAX];
    if (new_given(c, c->a.p[P_GIVEN], c->a.region, c->a.gender, similar, g)) return -1;
    set_part(&c->b, P_GIVEN, g);
    if (c->a.p[P_MIDDLE][0] && chance(c->r, 0.5)) c->b.p[P_MIDDLE][0] = '\0';
    return 0;
}
static int p_same_surname_diff_given(ctx_t *c) { return p_diff_given(c, 0); }
static int p_same_surname_similar_given(ctx_t *c) { return p_diff_given(c, 1); }

static int p_same_given_diff_surname(ctx_t *c) {
    base_pair(c);
    char s[PART_MAX];
    if (c->a.region == NG_IN_SIKH) return -1; /* Singh/Kaur read as surname or middle: ambiguous */
    if (new_surname(c, c->a.p[P_SURNAME], c->a.region, 0, s)) return -1;
    set_part(&c->b, P_SURNAME, s);
    return 0;
}

static int p_typo_diff_given(ctx_t *c) {
    if (p_diff_given(c, chance(c->r, 0.5))) return -1;
    c->touched[P_GIVEN] = c->touched[P_MIDDLE] = 1;
    return typo_with(c, namegen_typo_sub) == 0 || typo_with(c, namegen_typo_del) == 0 ? 0 : -1;
}

static int p_given_only(ctx_t *c) {
    base_pair(c);
    if (c->a.region == NG_EAST_ASIAN || c->a.region == NG_IN_SIKH) return -1;
    c->b.p[P_MIDDLE][0] = c->b.p[P_SURNAME][0] = '\0';
    c->b.sfirst = 0;
    return 0;
}

/* "Ravi Kumar" / "Ravi Kumar Sharma": the shorter name's surname is the longer one's middle name. */
static int p_extra_surname(ctx_t *c) {
    base_pair(c);
    if (c->a.region == NG_IN_SIKH || c->a.region == NG_EAST_ASIAN) return -1;
    char s[PART_MAX];
    if (new_surname(c, c->a.p[P_SURNAME], c->a.region, 0, s)) return -1;
    c->a.p[P_MIDDLE][0] = '\0';
    c->b = c->a;
    set_part(&c->b, P_MIDDLE, c->a.p[P_SURNAME]);
    set_part(&c->b, P_SURNAME, s);
    return 0;
}

static int p_diff_middle(ctx_t *c) {
    base_pair(c);
    if (!c->a.p[P_MIDDLE][0] || c->a.region == NG_IN_SIKH) return -1;
    const ng_vec_t *mid = &c->l->middle[c->a.region];
    for (int t = 0; t < 100; t++) {
        const char *m = mid->n && chance(c->r, 0.5) ? pick_from(c->r, mid, c->a.gender) : pick_given(c, c->a.region, c->a.gender);
        if (m && differs(c->l, m, c->a.p[P_MIDDLE]) && differs(c->l, m, c->a.p[P_GIVEN]) &&
            differs(c->l, m, c->a.p[P_SURNAME])) {
            set_part(&c->b, P_MIDDLE, m);
            return 0;
        }
    }
    return -1;
}

static const builder_t partial_builders[] = {
    {"same_surname_diff_given", p_same_surname_diff_given, 0.28},
    {"same_surname_similar_given", p_same_surname_similar_given, 0.20},
    {"same_given_diff_surname", p_same_given_diff_surname, 0.22},
    {"typo_diff_given", p_typo_diff_given, 0.10},
    {"given_only", p_given_only, 0.06},
    {"extra_surname", p_extra_surname, 0.08},
    {"diff_middle", p_diff_middle, 0.06},
};

static int other_person(ctx_t *c, int region, int same_initials) {
    for (int t = 0; t < 400; t++) {
        draw_person(c, region, &c->b);
        if (!differs(c->l, c->a.p[P_GIVEN], c->b.p[P_GIVEN]) || !differs(c->l, c->a.p[P_SURNAME], c->b.p[P_SURNAME]))
            continue;
        /* no part of one may match the given name or surname of the other in another role */
        if (!differs(c->l, c->a.p[P_GIVEN], c->b.p[P_SURNAME]) || !differs(c->l, c->a.p[P_SURNAME], c->b.p[P_GIVEN]))
            continue;
        if (same_initials && (tolower((unsigned char)c->a.p[P_GIVEN][0]) != tolower((unsigned char)c->b.p[P_GIVEN][0]) ||
                              tolower((unsigned char)c->a.p[P_SURNAME][0]) != tolower((unsigned char)c->b.p[P_SURNAME][0])))
            continue;
        return 0;
    }
    return -1;
}

static int n_unrelated(ctx_t *c) {
    draw_person(c, pick_region(c->r), &c->a);
    return other_person(c, pick_region(c->r), 0);
}
static int n_same_region(ctx_t *c) {
    draw_person(c, pick_region(c->r), &c->a);
    return other_person(c, c->a.region, 0);
}
static int n_similar_letters(ctx_t *c) {
    draw_person(c, pick_region(c->r), &c->a);
    return other_person(c, c->a.region, 1);
}
static int n_typo_unrelated(ctx_t *c) {
    if (n_same_region(c)) return -1;
    return typo_with(c, namegen_typo_sub) == 0 || typo_with(c, namegen_typo_transpose) == 0 ? 0 : -1;
}
/* "Ravi Kumar Sharma" / "Anil Kumar Verma": only a middle name is shared. */
static int n_shared_middle(ctx_t *c) {
    draw_person(c, pick_region(c->r), &c->a);
    if (!c->a.p[P_MIDDLE][0] || c->a.region == NG_IN_SIKH) return -1;
    if (other_person(c, c->a.region, 0)) return -1;
    set_part(&c->b, P_MIDDLE, c->a.p[P_MIDDLE]);
    return differs(c->l, c->b.p[P_MIDDLE], c->b.p[P_GIVEN]) && differs(c->l, c->b.p[P_MIDDLE], c->b.p[P_SURNAME]) ? 0 : -1;
}

static const builder_t no_builders[] = {
    {"unrelated", n_unrelated, 0.30},       {"same_region", n_same_region, 0.25},
    {"similar_letters", n_similar_letters, 0.25}, {"typo_unrelated", n_typo_unrelated, 0.10},
    {"shared_middle", n_shared_middle, 0.10},
};

/* ---------- de-duplication set ---------- */

typedef struct {
    char **keys;
    size_t cap, n;
} strset_t;

static uint64_t fnv(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int strset_add(strset_t *s, const char *key) { /* 1 added, 0 present, -1 oom */
    if ((s->n + 1) * 2 > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 4096;
        char **nk = calloc(nc, sizeof *nk);
        if (!nk) return -1;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->keys[i]) continue;
            size_t j = (size_t)fnv(s->keys[i]) & (nc - 1);
            while (nk[j]) j = (j + 1) & (nc - 1);
            nk[j] = s->keys[i];
        }
        free(s->keys);
        s->keys = nk;
        s->cap = nc;
    }
    size_t j = (size_t)fnv(key) & (s->cap - 1);
    while (s->keys[j]) {
        if (!strcmp(s->keys[j], key)) return 0;
        j = (j + 1) & (s->cap - 1);
    }
    if (!(s->keys[j] = strdup(key))) return -1;
    s->n++;
    return 1;
}

static void strset_free(strset_t *s) {
    for (size_t i = 0; i < s->cap; i++) free(s->keys[i]);
    free(s->keys);
}

/* ---------- rows ---------- */

enum { L_YES, L_NO, L_PARTIAL };
static const char *const label_names[] = {"yes", "no", "partial"};

typedef struct {
    char a[NAME_MAX_BYTES + 8], b[NAME_MAX_BYTES + 8];
    char category[64];
    int region;
} row_t;

static int make_row(const namegen_lists_t *l, namegen_rng_t *r, int label, row_t *row) {
    ctx_t c = {.l = l, .r = r};
    const builder_t *tab = label == L_YES ? yes_builders : label == L_NO ? no_builders : partial_builders;
    size_t ntab = label == L_YES ? sizeof yes_builders / sizeof yes_builders[0]
                  : label == L_NO ? sizeof no_builders / sizeof no_builders[0]
                                  : sizeof partial_builders / sizeof partial_builders[0];
    int bi = pick_weighted(r, tab, ntab);
    for (int t = 0; t < 200; t++) {
        memset(&c.sb, 0, sizeof c.sb);
        memset(c.touched, 0, sizeof c.touched);
        int rc;
        if (label == L_YES) {
            draw_person(&c, pick_region(r), &c.a);
            c.b = c.a;
            rc = tab[bi].fn(&c);
        } else {
            rc = tab[bi].fn(&c);
            if (rc == 0 && chance(r, 0.2)) { /* label-preserving style noise */
                if (chance(r, 0.5)) c.sb.hon = pick_honorific(r, c.b.region, c.b.gender);
                else c.sb.casing = 1 + (int)namegen_rng_below(r, 2);
            }
        }
        if (rc) continue;
        style_t sa = {0};
        if (render(&c.a, &sa, row->a, sizeof row->a) || render(&c.b, &c.sb, row->b, sizeof row->b)) continue;
        if (!strcmp(row->a, row->b)) continue;
        snprintf(row->category, sizeof row->category, "%s:%s", label_names[label], tab[bi].name);
        row->region = c.a.region;
        if (chance(r, 0.5)) { /* either side may carry the variation */
            char tmp[sizeof row->a];
            memcpy(tmp, row->a, sizeof tmp);
            memcpy(row->a, row->b, sizeof tmp);
            memcpy(row->b, tmp, sizeof tmp);
        }
        return 0;
    }
    return -1;
}

int namegen_write_csv(const namegen_lists_t *l, const namegen_opts_t *o, FILE *out, namegen_stats_t *st,
                      tl_err_t *err) {
    const namegen_mix_t *m = &o->mix;
    if (m->yes < 0 || m->no < 0 || m->partial < 0 || fabs(m->yes + m->no + m->partial - 1.0) > 0.011)
        return tl_fail(err, "label mix must be three non-negative shares summing to 1");
    size_t ny = (size_t)llround((double)o->rows * m->yes), np = (size_t)llround((double)o->rows * m->partial);
    if (ny + np > o->rows) np = o->rows - ny;
    size_t nn = o->rows - ny - np;
    int *labels = malloc((o->rows ? o->rows : 1) * sizeof *labels);
    if (!labels) return tl_fail(err, "out of memory for %zu rows", o->rows);
    for (size_t i = 0; i < o->rows; i++) labels[i] = i < ny ? L_YES : i < ny + nn ? L_NO : L_PARTIAL;
    namegen_rng_t r;
    namegen_rng_seed(&r, o->seed);
    for (size_t i = o->rows; i > 1; i--) {
        size_t j = namegen_rng_below(&r, (uint32_t)i);
        int t = labels[i - 1];
        labels[i - 1] = labels[j];
        labels[j] = t;
    }
    namegen_stats_t s = {0};
    strset_t seen = {0};
    int rc = 0;
    fputs("elected_name,partner_name,labeled_result,category,region\n", out);
    for (size_t i = 0; i < o->rows && rc == 0; i++) {
        row_t row;
        int ok = 0;
        for (int t = 0; t < 2000 && !ok; t++) {
            if (make_row(l, &r, labels[i], &row)) continue;
            char key[2 * sizeof row.a + 2];
            snprintf(key, sizeof key, "%s\t%s", row.a, row.b);
            char rkey[sizeof key];
            snprintf(rkey, sizeof rkey, "%s\t%s", row.b, row.a);
            int a1 = strset_add(&seen, key);
            if (a1 < 0) {
                rc = tl_fail(err, "out of memory at row %zu", i + 1);
                break;
            }
            if (a1 == 0) continue;
            if (strset_add(&seen, rkey) < 0) {
                rc = tl_fail(err, "out of memory at row %zu", i + 1);
                break;
            }
            ok = 1;
        }
        if (rc) break;
        if (!ok) {
            rc = tl_fail(err, "row %zu: could not build a new unique '%s' pair; the lists are too small for %zu rows",
                         i + 1, label_names[labels[i]], o->rows);
            break;
        }
        namegen_csv_field(out, row.a);
        fputc(',', out);
        namegen_csv_field(out, row.b);
        fprintf(out, ",%s,%s,%s\n", label_names[labels[i]], row.category, ng_region_names[row.region]);
        if (labels[i] == L_YES) s.yes++;
        else if (labels[i] == L_NO) s.no++;
        else s.partial++;
        if (is_indian(row.region)) s.indian++;
    }
    strset_free(&seen);
    free(labels);
    if (rc == 0 && ferror(out)) rc = tl_fail(err, "write error");
    if (st) *st = s;
    return rc;
}
