#include "task/strsim.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

long strsim_decode(const char *s, uint32_t **out) {
    size_t len = strlen(s);
    uint32_t *cp = malloc((len ? len : 1) * sizeof *cp);
    *out = cp;
    if (!cp) return -1;
    long n = 0;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
        if (k < 1) {
            c = 0xFFFD;
            k = 1;
        }
        cp[n++] = (uint32_t)c;
        i += (size_t)k;
    }
    return n;
}

/* Python's str.isspace() set. */
static bool is_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

size_t strsim_lcs_cp(const uint32_t *a, size_t na, const uint32_t *b, size_t nb) {
    if (!na || !nb) return 0;
    size_t *row = calloc(nb + 1, sizeof *row);
    if (!row) return 0;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = 0; /* row[j-1] of the previous i */
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            if (a[i - 1] == b[j - 1]) row[j] = diag + 1;
            else if (row[j - 1] > row[j]) row[j] = row[j - 1];
            diag = up;
        }
    }
    size_t r = row[nb];
    free(row);
    return r;
}

static double norm_sim(size_t dist, size_t lensum) {
    return lensum ? 100.0 - 100.0 * (double)dist / (double)lensum : 100.0;
}

double strsim_ratio_cp(const uint32_t *a, size_t na, const uint32_t *b, size_t nb) {
    size_t lcs = strsim_lcs_cp(a, na, b, nb);
    return norm_sim(na + nb - 2 * lcs, na + nb);
}

double strsim_jaro_cp(const uint32_t *a, size_t na, const uint32_t *b, size_t nb) {
    if (!na && !nb) return 1.0;
    if (!na || !nb) return 0.0;
    if (na == 1 && nb == 1) return a[0] == b[0] ? 1.0 : 0.0;
    size_t mx = na > nb ? na : nb;
    long bound = (long)(mx / 2) - 1;
    if (bound < 0) bound = 0;
    bool *fa = calloc(na, 1), *fb = calloc(nb, 1);
    if (!fa || !fb) {
        free(fa);
        free(fb);
        return 0.0;
    }
    size_t common = 0;
    for (size_t i = 0; i < na; i++) {
        long lo = (long)i - bound < 0 ? 0 : (long)i - bound;
        long hi = (long)i + bound;
        if (hi > (long)nb - 1) hi = (long)nb - 1;
        for (long j = lo; j <= hi; j++) {
            if (!fb[j] && b[j] == a[i]) {
                fa[i] = fb[j] = true;
                common++;
                break;
            }
        }
    }
    double sim = 0.0;
    if (common) {
        size_t k = 0, trans = 0;
        for (size_t i = 0; i < na; i++) {
            if (!fa[i]) continue;
            while (k < nb && !fb[k]) k++;
            if (k < nb && a[i] != b[k]) trans++;
            k++;
        }
        trans /= 2;
        double m = (double)common;
        sim = (m / (double)na + m / (double)nb + (m - (double)trans) / m) / 3.0;
    }
    free(fa);
    free(fb);
    return sim;
}

double strsim_jaro_winkler_cp(const uint32_t *a, size_t na, const uint32_t *b, size_t nb) {
    size_t mn = na < nb ? na : nb, prefix = 0;
    while (prefix < mn && prefix < 4 && a[prefix] == b[prefix]) prefix++;
    double sim = strsim_jaro_cp(a, na, b, nb);
    if (sim > 0.7) {
        sim += (double)prefix * 0.1 * (1.0 - sim);
        if (sim > 1.0) sim = 1.0;
    }
    return sim;
}

#define WITH_CP(a, b, expr_on_fail, body)                                  \
    uint32_t *ca, *cb;                                                     \
    long na = strsim_decode(a, &ca), nb = strsim_decode(b, &cb);           \
    double r_;                                                             \
    if (na < 0 || nb < 0) r_ = (expr_on_fail);                             \
    else r_ = (body);                                                      \
    free(ca);                                                              \
    free(cb);                                                              \
    return r_

double strsim_ratio(const char *a, const char *b) { WITH_CP(a, b, 0.0, strsim_ratio_cp(ca, (size_t)na, cb, (size_t)nb)); }
double strsim_jaro(const char *a, const char *b) { WITH_CP(a, b, 0.0, strsim_jaro_cp(ca, (size_t)na, cb, (size_t)nb)); }
double strsim_jaro_winkler(const char *a, const char *b) {
    WITH_CP(a, b, 0.0, strsim_jaro_winkler_cp(ca, (size_t)na, cb, (size_t)nb));
}

/* ---- tokens ---- */

typedef struct {
    const uint32_t *p;
    size_t n;
} tok_t;

static size_t split_tokens(const uint32_t *s, size_t n, tok_t *out) {
    size_t k = 0, i = 0;
    while (i < n) {
        while (i < n && is_space(s[i])) i++;
        if (i >= n) break;
        size_t st = i;
        while (i < n && !is_space(s[i])) i++;
        out[k++] = (tok_t){s + st, i - st};
    }
    return k;
}

static int tok_cmp(const void *x, const void *y) {
    const tok_t *a = x, *b = y;
    size_t m = a->n < b->n ? a->n : b->n;
    for (size_t i = 0; i < m; i++)
        if (a->p[i] != b->p[i]) return a->p[i] < b->p[i] ? -1 : 1;
    return a->n < b->n ? -1 : a->n > b->n;
}

/* Sorts and removes duplicates; returns the new count. */
static size_t tok_unique(tok_t *t, size_t n) {
    qsort(t, n, sizeof *t, tok_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!k || tok_cmp(&t[k - 1], &t[i])) t[k++] = t[i];
    return k;
}

/* Joins tokens with single spaces into out; returns the length. */
static size_t tok_join(const tok_t *t, size_t n, uint32_t *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i) out[k++] = ' ';
        memcpy(out + k, t[i].p, t[i].n * sizeof *out);
        k += t[i].n;
    }
    return k;
}

static double token_sort_cp(const uint32_t *a, size_t na, const uint32_t *b, size_t nb) {
    tok_t *ta = malloc((na + 1) * sizeof *ta), *tb = malloc((nb + 1) * sizeof *tb);
    uint32_t *ja = malloc((na + 1) * sizeof *ja), *jb = malloc((nb + 1) * sizeof *jb);
    double r = 0.0;
    if (ta && tb && ja && jb) {
        size_t ka = split_tokens(a, na, ta), kb = split_tokens(b, nb, tb);
        qsort(ta, ka, sizeof *ta, tok_cmp);
        qsort(tb, kb, sizeof *tb, tok_cmp);
        size_t la = tok_join(ta, ka, ja), lb = tok_join(tb, kb, jb);
        r = strsim_ratio_cp(ja, la, jb, lb);
    }
    free(ta);
    free(tb);
    free(ja);
    free(jb);
    return r;
}

static double token_set_cp(const uint32_t *a, size_t na, const uint32_t *b, size_t nb) {
    tok_t *ta = malloc((na + 1) * sizeof *ta), *tb = malloc((nb + 1) * sizeof *tb);
    tok_t *ab = malloc((na + 1) * sizeof *ab), *ba = malloc((nb + 1) * sizeof *ba);
    uint32_t *ja = malloc((na + 1) * sizeof *ja), *jb = malloc((nb + 1) * sizeof *jb);
    double r = 0.0;
    if (!ta || !tb || !ab || !ba || !ja || !jb) goto out;
    size_t ka = tok_unique(ta, split_tokens(a, na, ta)), kb = tok_unique(tb, split_tokens(b, nb, tb));
    if (!ka || !kb) goto out;
    /* sorted merge: intersection, a-only, b-only */
    size_t i = 0, j = 0, n_ab = 0, n_ba = 0, n_sect = 0, sect_len = 0;
    while (i < ka || j < kb) {
        int c = i >= ka ? 1 : j >= kb ? -1 : tok_cmp(&ta[i], &tb[j]);
        if (c == 0) {
            sect_len += ta[i].n + (n_sect ? 1 : 0);
            n_sect++;
            i++;
            j++;
        } else if (c < 0) {
            ab[n_ab++] = ta[i++];
        } else {
            ba[n_ba++] = tb[j++];
        }
    }
    if (n_sect && (!n_ab || !n_ba)) {
        r = 100.0;
        goto out;
    }
    size_t ab_len = tok_join(ab, n_ab, ja), ba_len = tok_join(ba, n_ba, jb);
    size_t sep = sect_len ? 1 : 0;
    size_t sect_ab_len = sect_len + sep + ab_len, sect_ba_len = sect_len + sep + ba_len;
    size_t lcs = strsim_lcs_cp(ja, ab_len, jb, ba_len);
    size_t dist = ab_len + ba_len - 2 * lcs;
    r = norm_sim(dist, sect_ab_len + sect_ba_len);
    if (sect_len) {
        double r1 = norm_sim(sep + ab_len, sect_len + sect_ab_len);
        double r2 = norm_sim(sep + ba_len, sect_len + sect_ba_len);
        if (r1 > r) r = r1;
        if (r2 > r) r = r2;
    }
out:
    free(ta);
    free(tb);
    free(ab);
    free(ba);
    free(ja);
    free(jb);
    return r;
}

double strsim_token_sort_ratio(const char *a, const char *b) {
    WITH_CP(a, b, 0.0, token_sort_cp(ca, (size_t)na, cb, (size_t)nb));
}
double strsim_token_set_ratio(const char *a, const char *b) {
    WITH_CP(a, b, 0.0, token_set_cp(ca, (size_t)na, cb, (size_t)nb));
}

/* ---- folding ---- */

int strsim_fold(const char *s, char **out, tl_err_t *err) {
    *out = NULL;
    utf8proc_uint8_t *m = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, 0, &m,
                                      UTF8PROC_NULLTERM | UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE |
                                          UTF8PROC_CASEFOLD | UTF8PROC_STRIPMARK);
    if (n < 0) return tl_fail(err, "name '%.60s': %s", s, utf8proc_errmsg(n));
    char *o = malloc((size_t)n + 1);
    if (!o) {
        free(m);
        return tl_fail(err, "out of memory");
    }
    size_t k = 0, i = 0;
    bool pending_space = false;
    while (i < (size_t)n) {
        utf8proc_int32_t c;
        utf8proc_ssize_t len = utf8proc_iterate(m + i, n - (utf8proc_ssize_t)i, &c);
        if (len < 1) break;
        utf8proc_category_t cat = utf8proc_category(c);
        bool keep = cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT ||
                    cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_LO || cat == UTF8PROC_CATEGORY_ND ||
                    cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
        bool drop = c == '\'' || c == 0x2019 || c == 0x2018 || c == 0x02BC || c == '`';
        if (keep) {
            if (pending_space && k) o[k++] = ' ';
            pending_space = false;
            memcpy(o + k, m + i, (size_t)len);
            k += (size_t)len;
        } else if (!drop) {
            pending_space = true;
        }
        i += (size_t)len;
    }
    o[k] = '\0';
    free(m);
    *out = o;
    return 0;
}
