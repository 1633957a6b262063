/* PRNG, token edits and string distance for the name generator. */
#include <ctype.h>
#include <string.h>

#include "task/namegen.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void namegen_rng_seed(namegen_rng_t *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t v, int k) { return (v << k) | (v >> (64 - k)); }

uint64_t namegen_rng_next(namegen_rng_t *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t namegen_rng_below(namegen_rng_t *r, uint32_t n) {
    if (n <= 1) return 0;
    /* rejection sampling on the top 32 bits: no modulo bias */
    uint32_t limit = (uint32_t)(0x100000000ull - (0x100000000ull % n));
    for (;;) {
        uint64_t v = namegen_rng_next(r) >> 32;
        if (limit == 0 || v < limit) return (uint32_t)(v % n);
    }
}

double namegen_rng_unit(namegen_rng_t *r) { return (double)(namegen_rng_next(r) >> 11) * 0x1.0p-53; }

static const char *const kb_rows[] = {"qwertyuiop", "asdfghjkl", "zxcvbnm"};

static int kb_pos(char c, int *row, int *col) {
    c = (char)tolower((unsigned char)c);
    for (int r = 0; r < 3; r++) {
        const char *p = strchr(kb_rows[r], c);
        if (p && c) {
            *row = r;
            *col = (int)(p - kb_rows[r]);
            return 0;
        }
    }
    return -1;
}

int namegen_keys_adjacent(char a, char b) {
    int ra, ca, rb, cb;
    if (kb_pos(a, &ra, &ca) || kb_pos(b, &rb, &cb)) return 0;
    if (ra == rb) return ca - cb == 1 || cb - ca == 1;
    /* staggered rows: row r+1 is shifted half a key right of row r */
    if (rb == ra + 1) return cb == ca || cb == ca - 1;
    if (ra == rb + 1) return ca == cb || ca == cb - 1;
    return 0;
}

static int all_alpha(const char *s) {
    for (; *s; s++)
        if (!isalpha((unsigned char)*s) || (unsigned char)*s >= 0x80) return 0;
    return 1;
}

static char match_case(char model, char c) {
    return isupper((unsigned char)model) ? (char)toupper((unsigned char)c) : (char)tolower((unsigned char)c);
}

static char random_neighbour(namegen_rng_t *r, char c) {
    char cand[8];
    int n = 0;
    for (char k = 'a'; k <= 'z' && n < 8; k++)
        if (namegen_keys_adjacent(c, k)) cand[n++] = k;
    if (n == 0) return 0;
    return match_case(c, cand[namegen_rng_below(r, (uint32_t)n)]);
}

static int edit_ok(const char *in, size_t cap, size_t extra) {
    size_t n = strlen(in);
    return n >= 4 && all_alpha(in) && n + extra + 1 <= cap;
}

int namegen_typo_sub(namegen_rng_t *r, const char *in, char *out, size_t cap) {
    if (!edit_ok(in, cap, 0)) return -1;
    size_t n = strlen(in);
    memcpy(out, in, n + 1);
    size_t i = 1 + namegen_rng_below(r, (uint32_t)(n - 1));
    char c = random_neighbour(r, in[i]);
    if (!c) return -1;
    out[i] = c;
    return 0;
}

int namegen_typo_del(namegen_rng_t *r, const char *in, char *out, size_t cap) {
    if (!edit_ok(in, cap, 0)) return -1;
    size_t n = strlen(in);
    size_t i = 1 + namegen_rng_below(r, (uint32_t)(n - 1));
    memcpy(out, in, i);
    memcpy(out + i, in + i + 1, n - i);
    return 0;
}

int namegen_typo_ins(namegen_rng_t *r, const char *in, char *out, size_t cap) {
    if (!edit_ok(in, cap, 1)) return -1;
    size_t n = strlen(in);
    size_t i = 1 + namegen_rng_below(r, (uint32_t)n); /* insert before in[i] (i == n: append) */
    char prev = in[i - 1];
    char c = namegen_rng_below(r, 2) ? random_neighbour(r, prev) : 0;
    if (!c) c = (char)tolower((unsigned char)prev); /* doubled letter: "Raavi" */
    memcpy(out, in, i);
    out[i] = (char)tolower((unsigned char)c);
    memcpy(out + i + 1, in + i, n - i + 1);
    return 0;
}

int namegen_typo_transpose(namegen_rng_t *r, const char *in, char *out, size_t cap) {
    if (!edit_ok(in, cap, 0)) return -1;
    size_t n = strlen(in);
    size_t cand[64], k = 0;
    for (size_t i = 1; i + 1 < n && k < 64; i++)
        if (tolower((unsigned char)in[i]) != tolower((unsigned char)in[i + 1])) cand[k++] = i;
    if (k == 0) return -1;
    size_t i = cand[namegen_rng_below(r, (uint32_t)k)];
    memcpy(out, in, n + 1);
    out[i] = in[i + 1];
    out[i + 1] = in[i];
    return 0;
}

int namegen_make_initial(const char *in, int dot, char *out, size_t cap) {
    if (!in || !isalpha((unsigned char)in[0]) || (unsigned char)in[0] >= 0x80 || cap < 3) return -1;
    out[0] = (char)toupper((unsigned char)in[0]);
    out[1] = dot ? '.' : '\0';
    out[2] = '\0';
    return 0;
}

int namegen_edit_distance(const char *a, const char *b) {
    enum { M = 64 };
    size_t n = strlen(a), m = strlen(b);
    if (n >= M || m >= M) return M;
    int d[M][M];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            int cost = ca != cb;
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[n][m];
}

void namegen_csv_field(FILE *out, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"') fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}
