/* Unit tests for the name-matching corpus generator: PRNG, token edits,
 * distance, part matching, list loading errors and CSV determinism. */
#include <ctype.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "task/namegen.h"
#include "tl_test.h"

static int diff_positions(const char *a, const char *b, size_t *first) {
    int n = 0;
    for (size_t i = 0; a[i] && b[i]; i++)
        if (a[i] != b[i]) {
            if (n == 0) *first = i;
            n++;
        }
    return n;
}

TEST(rng_same_seed_same_stream) {
    namegen_rng_t a, b, c;
    namegen_rng_seed(&a, 42);
    namegen_rng_seed(&b, 42);
    namegen_rng_seed(&c, 43);
    int same_c = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = namegen_rng_next(&a), y = namegen_rng_next(&b), z = namegen_rng_next(&c);
        CHECK(x == y);
        same_c += x == z;
    }
    CHECK(same_c < 2);
}

TEST(rng_below_in_range_and_covers) {
    namegen_rng_t r;
    namegen_rng_seed(&r, 7);
    int seen[7] = {0};
    for (int i = 0; i < 7000; i++) {
        uint32_t v = namegen_rng_below(&r, 7);
        CHECK(v < 7);
        if (v < 7) seen[v]++;
    }
    for (int i = 0; i < 7; i++) CHECK(seen[i] > 800 && seen[i] < 1200); /* ~1000 each */
    for (int i = 0; i < 1000; i++) {
        double u = namegen_rng_unit(&r);
        CHECK(u >= 0.0 && u < 1.0);
    }
    CHECK_EQ_INT(namegen_rng_below(&r, 1), 0);
}

TEST(keyboard_adjacency) {
    CHECK(namegen_keys_adjacent('a', 's'));
    CHECK(namegen_keys_adjacent('A', 'q'));
    CHECK(namegen_keys_adjacent('g', 'y'));
    CHECK(namegen_keys_adjacent('m', 'n'));
    CHECK(!namegen_keys_adjacent('a', 'p'));
    CHECK(!namegen_keys_adjacent('a', 'a'));
    CHECK(!namegen_keys_adjacent('q', 'm'));
}

TEST(typo_transpose_swaps_two_adjacent) {
    namegen_rng_t r;
    namegen_rng_seed(&r, 1);
    const char *in = "Ramesh";
    for (int t = 0; t < 200; t++) {
        char out[32];
        CHECK_EQ_INT(namegen_typo_transpose(&r, in, out, sizeof out), 0);
        size_t i = 0;
        CHECK_EQ_INT(strlen(out), strlen(in));
        CHECK_EQ_INT(diff_positions(in, out, &i), 2);
        CHECK(i >= 1);
        CHECK(out[i] == in[i + 1] && out[i + 1] == in[i]);
    }
    char out[32];
    CHECK_EQ_INT(namegen_typo_transpose(&r, "Anna", out, sizeof out), 0);
    CHECK_STR(out, "Anan");                                   /* only n<->a at 2..3 differs */
    CHECK_EQ_INT(namegen_typo_transpose(&r, "Raaa", out, sizeof out), -1); /* nothing to swap */
}

TEST(typo_sub_one_adjacent_key) {
    namegen_rng_t r;
    namegen_rng_seed(&r, 2);
    for (int t = 0; t < 200; t++) {
        char out[32];
        size_t i = 0;
        CHECK_EQ_INT(namegen_typo_sub(&r, "Gupta", out, sizeof out), 0);
        CHECK_EQ_INT(strlen(out), 5);
        CHECK_EQ_INT(diff_positions("Gupta", out, &i), 1);
        CHECK(i >= 1 && namegen_keys_adjacent("Gupta"[i], out[i]));
        CHECK(islower((unsigned char)out[i]));
    }
}

TEST(typo_del_and_ins_change_length_by_one) {
    namegen_rng_t r;
    namegen_rng_seed(&r, 3);
    for (int t = 0; t < 200; t++) {
        char d[32], s[32];
        CHECK_EQ_INT(namegen_typo_del(&r, "Sharma", d, sizeof d), 0);
        CHECK_EQ_INT(strlen(d), 5);
        CHECK(d[0] == 'S');
        CHECK_EQ_INT(namegen_edit_distance("Sharma", d), 1);
        CHECK_EQ_INT(namegen_typo_ins(&r, "Sharma", s, sizeof s), 0);
        CHECK_EQ_INT(strlen(s), 7);
        CHECK(s[0] == 'S');
        CHECK_EQ_INT(namegen_edit_distance("Sharma", s), 1);
    }
}

TEST(typos_refuse_short_or_non_ascii) {
    namegen_rng_t r;
    namegen_rng_seed(&r, 4);
    char out[32];
    CHECK_EQ_INT(namegen_typo_sub(&r, "Ali", out, sizeof out), -1);
    CHECK_EQ_INT(namegen_typo_del(&r, "Li", out, sizeof out), -1);
    CHECK_EQ_INT(namegen_typo_ins(&r, "D'Souza", out, sizeof out), -1);
    CHECK_EQ_INT(namegen_typo_transpose(&r, "Jos\xc3\xa9", out, sizeof out), -1);
    CHECK_EQ_INT(namegen_typo_ins(&r, "Ramesh", out, 7), -1); /* no room for 8 bytes */
}

TEST(initials) {
    char out[8];
    CHECK_EQ_INT(namegen_make_initial("Ravi", 1, out, sizeof out), 0);
    CHECK_STR(out, "R.");
    CHECK_EQ_INT(namegen_make_initial("shankar", 0, out, sizeof out), 0);
    CHECK_STR(out, "S");
    CHECK_EQ_INT(namegen_make_initial("\xe0\xa4\xb0", 1, out, sizeof out), -1);
    CHECK_EQ_INT(namegen_make_initial("", 1, out, sizeof out), -1);
}

TEST(edit_distance_fixed_pairs) {
    CHECK_EQ_INT(namegen_edit_distance("Monish", "Mahesh"), 3);
    CHECK_EQ_INT(namegen_edit_distance("Ravi", "Rvai"), 1); /* transposition */
    CHECK_EQ_INT(namegen_edit_distance("kumar", "KUMAR"), 0);
    CHECK_EQ_INT(namegen_edit_distance("", "abc"), 3);
    CHECK_EQ_INT(namegen_edit_distance("Laxmi", "Lakshmi"), 3);
}

TEST(csv_field_quoting) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    namegen_csv_field(f, "Kumar, Ravi");
    fputc('|', f);
    namegen_csv_field(f, "O\"Brien");
    fputc('|', f);
    namegen_csv_field(f, "Plain Name");
    fclose(f);
    CHECK_STR(buf, "\"Kumar, Ravi\"|\"O\"\"Brien\"|Plain Name");
    free(buf);
}

/* A tiny task folder: every person region has 3 given names and 3 surnames. */
static const char *REGIONS[] = {"in_north", "in_south", "in_east", "in_west", "in_muslim", "in_sikh",
                                "in_christian", "arabic", "western", "african", "east_asian", "se_asian"};

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void make_task(const char *dir, int broken) {
    char p[512];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/lists", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/lists/names.tsv", dir);
    FILE *f = fopen(p, "w");
    if (!f) return;
    fputs("# test\n", f);
    static const char *given[] = {"Ravi", "Mahesh", "Sunita", "Anil", "Deepak", "Kavita"};
    static const char *sur[] = {"Sharma", "Gupta", "Verma", "Yadav", "Iyer", "Reddy"};
    for (size_t r = 0; r < sizeof REGIONS / sizeof REGIONS[0]; r++)
        for (int i = 0; i < 6; i++) {
            fprintf(f, "given\t%s\t%c\t%s\tcurated\n", REGIONS[r], i < 2 || i == 3 || i == 4 ? 'm' : 'f', given[i]);
            fprintf(f, "surname\t%s\t-\t%s\tcurated\n", REGIONS[r], sur[i]);
        }
    fputs("middle\tin_north\tm\tKumar\tcurated\n", f);
    if (broken) fputs("given\tatlantis\tm\tZed\tcurated\n", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/lists/variants.tsv", dir);
    write_file(p, "translit\tcurated\tDeepak\tDipak\nnickname\tcarltonnorthern\tRobert\tBob\n"
                  "variant\thmni\tRavindra\tRavi\ntranslit\tcurated\tLakshmi\tLaxmi\tLakshmy\n");
    snprintf(p, sizeof p, "%s/lists/devanagari.tsv", dir);
    write_file(p, "Ravi\t\xe0\xa4\xb0\xe0\xa4\xb5\xe0\xa4\xbf\tparlikar\nSharma\t\xe0\xa4\xb6\xe0\xa4\xb0\xe0\xa5\x8d\xe0\xa4\xae\xe0\xa4\xbe\tcurated\n");
}

TEST(part_match_rule) {
    char dir[] = "/tmp/tl_namegen_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    make_task(dir, 0);
    namegen_lists_t *l = NULL;
    tl_err_t err = {{0}};
    CHECK_EQ_INT(namegen_lists_load(&l, dir, &err), 0);
    if (!l) return;
    CHECK(namegen_part_match(l, "ravi", "RAVI"));
    CHECK(namegen_part_match(l, "Laxmi", "Lakshmy"));                          /* one group */
    CHECK(namegen_part_match(l, "Bob", "robert"));                             /* nickname */
    CHECK(namegen_part_match(l, "Ravi", "Ravindra"));                          /* listed variant */
    CHECK(namegen_part_match(l, "Ravi", "\xe0\xa4\xb0\xe0\xa4\xb5\xe0\xa4\xbf")); /* Devanagari */
    CHECK(namegen_part_match(l, "R.", "Ravi"));                                /* initial */
    CHECK(namegen_part_match(l, "Gupta", "Gutpa"));                            /* one typo, 4+ letters */
    CHECK(!namegen_part_match(l, "Ali", "Alu"));                               /* too short for typo */
    CHECK(!namegen_part_match(l, "Monish", "Mahesh"));
    CHECK(!namegen_part_match(l, "R.", "Suresh"));
    CHECK(!namegen_part_match(l, "Deepak", "Dinesh"));
    namegen_lists_free(l);
}

TEST(lists_errors_name_the_file) {
    char dir[] = "/tmp/tl_namegen_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    namegen_lists_t *l = NULL;
    tl_err_t err = {{0}};
    CHECK_EQ_INT(namegen_lists_load(&l, dir, &err), -1);
    CHECK(l == NULL);
    CHECK_CONTAINS(err.msg, "lists/names.tsv: cannot open");
    make_task(dir, 1);
    CHECK_EQ_INT(namegen_lists_load(&l, dir, &err), -1);
    CHECK_CONTAINS(err.msg, "names.tsv:");
    CHECK_CONTAINS(err.msg, "unknown region 'atlantis'");
}

static char *gen(const namegen_lists_t *l, uint64_t seed, size_t rows, namegen_stats_t *st) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    namegen_opts_t o = {.rows = rows, .seed = seed, .mix = {0.60, 0.27, 0.13}};
    tl_err_t err = {{0}};
    int rc = namegen_write_csv(l, &o, f, st, &err);
    fclose(f);
    if (rc) {
        printf("  generate failed: %s\n", err.msg);
        free(buf);
        return NULL;
    }
    return buf;
}

TEST(csv_deterministic_and_clean) {
    char dir[] = "/tmp/tl_namegen_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    make_task(dir, 0);
    namegen_lists_t *l = NULL;
    tl_err_t err = {{0}};
    CHECK_EQ_INT(namegen_lists_load(&l, dir, &err), 0);
    if (!l) return;
    namegen_stats_t s1, s2;
    char *a = gen(l, 11, 200, &s1), *b = gen(l, 11, 200, &s2), *c = gen(l, 12, 200, &s2);
    CHECK(a && b && c);
    if (a && b && c) {
        CHECK_STR(a, b);
        CHECK(strcmp(a, c) != 0);
        CHECK_EQ_INT(s1.yes, 120);
        CHECK_EQ_INT(s1.partial, 26);
        CHECK_EQ_INT(s1.no, 54);
        CHECK(strncmp(a, "elected_name,partner_name,labeled_result,category,region\n", 57) == 0);
        /* every row: two different non-empty names, label matching the category prefix */
        int rows = 0;
        char *save = NULL;
        for (char *line = strtok_r(a + 57, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            rows++;
            if (line[0] == '"') continue; /* quoted name: skip the simple split */
            char *f1 = line, *f2 = strchr(f1, ',');
            CHECK(f2 != NULL);
            if (!f2 || f2[1] == '"') continue;
            *f2++ = '\0';
            char *f3 = strchr(f2, ',');
            CHECK(f3 != NULL);
            if (!f3) continue;
            *f3++ = '\0';
            CHECK(f1[0] && f2[0]);
            CHECK(strcmp(f1, f2) != 0);
            char *f4 = strchr(f3, ',');
            CHECK(f4 != NULL);
            if (!f4) continue;
            *f4++ = '\0';
            CHECK(strncmp(f4, f3, strlen(f3)) == 0 && f4[strlen(f3)] == ':');
        }
        CHECK_EQ_INT(rows, 200);
    }
    free(a);
    free(b);
    free(c);
    namegen_opts_t bad = {.rows = 10, .seed = 1, .mix = {0.5, 0.2, 0.2}};
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    CHECK_EQ_INT(namegen_write_csv(l, &bad, f, NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "summing to 1");
    fclose(f);
    free(buf);
    namegen_lists_free(l);
}

int main(void) {
    RUN(rng_same_seed_same_stream);
    RUN(rng_below_in_range_and_covers);
    RUN(keyboard_adjacency);
    RUN(typo_transpose_swaps_two_adjacent);
    RUN(typo_sub_one_adjacent_key);
    RUN(typo_del_and_ins_change_length_by_one);
    RUN(typos_refuse_short_or_non_ascii);
    RUN(initials);
    RUN(edit_distance_fixed_pairs);
    RUN(csv_field_quoting);
    RUN(part_match_rule);
    RUN(lists_errors_name_the_file);
    RUN(csv_deterministic_and_clean);
    return tl_test_summary("test_namegen");
}
