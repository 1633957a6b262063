#include <stdlib.h>

#include "task/baseline.h"
#include "task/strsim.h"
#include "tl_test.h"

/* Textbook Jaro / Jaro-Winkler values (Winkler 1990 examples). */
TEST(jaro_winkler_known_values) {
    CHECK_NEAR(strsim_jaro("MARTHA", "MARHTA"), 17.0 / 18, 1e-12);
    CHECK_NEAR(strsim_jaro_winkler("MARTHA", "MARHTA"), 0.9611111111111111, 1e-12);
    CHECK_NEAR(strsim_jaro_winkler("DWAYNE", "DUANE"), 0.84, 1e-12);
    CHECK_NEAR(strsim_jaro_winkler("DIXON", "DICKSONX"), 0.8133333333333334, 1e-12);
    CHECK_NEAR(strsim_jaro("", ""), 1.0, 0);
    CHECK_NEAR(strsim_jaro("a", ""), 0.0, 0);
    CHECK_NEAR(strsim_jaro("abc", "xyz"), 0.0, 0);
    /* code points, not bytes: é is one character */
    CHECK_NEAR(strsim_jaro("é", "é"), 1.0, 0);
}

/* ratio = 100 * (1 - indel / (len_a + len_b)) */
TEST(indel_ratio) {
    CHECK_NEAR(strsim_ratio("abc", "abd"), 100.0 * (1 - 2.0 / 6), 1e-9);
    CHECK_NEAR(strsim_ratio("", ""), 100.0, 0);
    CHECK_NEAR(strsim_ratio("abc", ""), 0.0, 0);
    CHECK_NEAR(strsim_ratio("kitten", "sitting"), 100.0 * (1 - 5.0 / 13), 1e-9); /* LCS "ittn" = 4 */
    CHECK_NEAR(strsim_ratio("José", "Jose"), 75.0, 1e-9);
}

TEST(token_ratios) {
    CHECK_NEAR(strsim_token_sort_ratio("John Smith", "Smith  John"), 100.0, 0);
    CHECK_NEAR(strsim_token_set_ratio("fuzzy was a bear", "fuzzy fuzzy was a bear"), 100.0, 0);
    /* sect "a bear but fuzzy not was" (24), ab "dog", ba "cat": indel(dog, cat)=6
       over (24+1+3)*2 = 56 -> 89.29; sect vs sect+ab: dist 4 over 24+28 = 52 -> 92.31 */
    CHECK_NEAR(strsim_token_set_ratio("fuzzy was a bear but not a dog", "fuzzy was a bear but not a cat"), 100.0 - 400.0 / 52,
               1e-9);
    CHECK_NEAR(strsim_token_set_ratio("", "a"), 0.0, 0);
    CHECK_NEAR(strsim_token_set_ratio("ab", "cd"), 0.0, 0);
}

TEST(fold_names) {
    tl_err_t err;
    char *f;
    CHECK_EQ_INT(strsim_fold("  JOSÉ  García-O'Neil ", &f, &err), 0);
    CHECK_STR(f, "jose garcia oneil");
    free(f);
    CHECK_EQ_INT(strsim_fold("Ｊｏｈｎ\u00a0Straße", &f, &err), 0);
    CHECK_STR(f, "john strasse");
    free(f);
    CHECK_EQ_INT(strsim_fold("J.R.R. Tolkien", &f, &err), 0);
    CHECK_STR(f, "j r r tolkien");
    free(f);
}

TEST(baseline_features_of_pairs) {
    double f[BASELINE_N_FEATURES];
    tl_err_t err;
    CHECK_EQ_INT(baseline_features("José García", "jose garcia", f, &err), 0);
    CHECK_NEAR(f[0], 1.0, 0);
    CHECK_NEAR(f[4], 1.0, 0); /* first token equal */
    CHECK_NEAR(f[5], 1.0, 0); /* last token equal */
    CHECK_NEAR(f[8], 1.0, 0); /* initials compatible */
    CHECK_EQ_INT(baseline_features("J. Smith", "John Smith", f, &err), 0);
    CHECK_NEAR(f[8], 1.0, 0);
    CHECK_NEAR(f[4], 0.0, 0);
    CHECK_NEAR(f[9], 1.0 / 3, 1e-12); /* {j, smith} vs {john, smith}: 1 shared of 3 */
    CHECK_EQ_INT(baseline_features("K. Smith", "John Smith", f, &err), 0);
    CHECK_NEAR(f[8], 0.0, 0);
    CHECK_NEAR(f[11], 1.0, 0);
}

int main(void) {
    RUN(jaro_winkler_known_values);
    RUN(indel_ratio);
    RUN(token_ratios);
    RUN(fold_names);
    RUN(baseline_features_of_pairs);
    return tl_test_summary("test_strsim");
}
