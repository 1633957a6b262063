/* Label-prior calibration (src/task/calib.c): the "label=value" spec parser
 * and its errors, formatting, argmax and probabilities with a bias, and the
 * lambda fit on rows where the answer is known. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "task/calib.h"
#include "tl_test.h"

static task_t T = {.name = "t", .n_labels = 3, .labels = {"yes", "no", "partial"}};

TEST(parse_and_format) {
    tl_err_t err = {{0}};
    double b[TASK_MAX_LABELS];
    CHECK(label_bias_parse(&T, "no=-0.5,yes=0.25", b, &err) == 0);
    CHECK(b[0] == 0.25 && b[1] == -0.5 && b[2] == 0.0);
    char s[128];
    label_bias_format(&T, b, s, sizeof s);
    CHECK(!strcmp(s, "yes=0.25,no=-0.5,partial=0"));
    double c[TASK_MAX_LABELS];
    CHECK(label_bias_parse(&T, s, c, &err) == 0 && !memcmp(b, c, 3 * sizeof(double)));
    CHECK(label_bias_parse(&T, "none", b, &err) == 0 && b[0] == 0 && b[1] == 0 && b[2] == 0);
    CHECK(label_bias_parse(&T, "", b, &err) == 0 && b[0] == 0);
}

TEST(parse_errors_name_the_problem) {
    tl_err_t err = {{0}};
    double b[TASK_MAX_LABELS];
    CHECK(label_bias_parse(&T, "maybe=1", b, &err) < 0 && strstr(err.msg, "'maybe' is not a label of task t"));
    CHECK(label_bias_parse(&T, "yes=1,yes=2", b, &err) < 0 && strstr(err.msg, "'yes' given twice"));
    CHECK(label_bias_parse(&T, "yes=abc", b, &err) < 0 && strstr(err.msg, "bad value 'abc'"));
    CHECK(label_bias_parse(&T, "yes=inf", b, &err) < 0 && strstr(err.msg, "bad value"));
    CHECK(label_bias_parse(&T, "yes", b, &err) < 0 && strstr(err.msg, "expected label=value"));
    CHECK(label_bias_parse(&T, "yes=", b, &err) < 0 && strstr(err.msg, "bad value for 'yes'"));
    CHECK(label_bias_parse(&T, "=1", b, &err) < 0 && strstr(err.msg, "bad label name"));
}

TEST(argmax_and_probs_with_bias) {
    double lp[3] = {log(0.3), log(0.5), log(0.2)}, b[3] = {1.0, 0.0, 0.0}, p[3];
    CHECK(label_bias_argmax(lp, NULL, 3) == 1);
    CHECK(label_bias_argmax(lp, b, 3) == 0);
    label_bias_probs(lp, b, 3, p);
    double z = 0.3 * exp(1.0) + 0.5 + 0.2;
    CHECK(fabs(p[0] - 0.3 * exp(1.0) / z) < 1e-12 && fabs(p[1] - 0.5 / z) < 1e-12 && fabs(p[2] - 0.2 / z) < 1e-12);
    label_bias_probs(lp, NULL, 3, p);
    CHECK(fabs(p[0] - 0.3) < 1e-12 && fabs(p[1] - 0.5) < 1e-12);
    double tie[3] = {0.0, 0.0, -1.0};
    CHECK(label_bias_argmax(tie, NULL, 3) == 0); /* ties: lowest index */
}

/* Scores from a "balanced" model: every row's gold label gets margin m over
 * the others except a band of yes rows that look partial. With a natural
 * prior of 6:3:1 vs 1:1:1 in training, the full correction (lambda = 1) wins. */
TEST(fit_picks_the_best_lambda) {
    tl_err_t err = {{0}};
    enum { N = 100 };
    int gold[N];
    double lp[N * 3];
    size_t ec[3] = {0}, tc[3] = {100, 100, 100};
    for (int i = 0; i < N; i++) {
        gold[i] = i < 60 ? 0 : i < 90 ? 1 : 2;
        ec[gold[i]]++;
        for (int k = 0; k < 3; k++) lp[i * 3 + k] = k == gold[i] ? -0.2 : -3.0;
        if (i < 20) lp[i * 3 + 0] = -1.0, lp[i * 3 + 2] = -0.5; /* yes rows leaning partial by 0.5 */
    }
    label_calib_t cal;
    CHECK(label_calib_fit(lp, gold, N, 3, tc, ec, &cal, &err) == 0);
    /* log(0.6/(1/3)) - log(0.1/(1/3)) = log 6 = 1.79: lambda >= 0.5/1.79 = 0.28 fixes the 20 rows */
    CHECK(cal.macro_f1_raw < 0.9 && cal.macro_f1 == 1.0);
    CHECK(fabs(cal.lambda - 0.5) < 1e-12); /* all of 0.375 .. 1 are perfect: the one nearest 1/2 */
    CHECK(fabs(cal.bias[0] - 0.5 * log(0.6 / (1.0 / 3))) < 1e-12);
    CHECK(fabs(cal.bias[2] - 0.5 * log(0.1 / (1.0 / 3))) < 1e-12);
    /* no prior shift: no bias, lambda 1/2 by the tie rule, raw F1 */
    size_t same[3] = {60, 30, 10};
    CHECK(label_calib_fit(lp, gold, N, 3, same, ec, &cal, &err) == 0);
    CHECK(cal.bias[0] == 0.0 && cal.bias[1] == 0.0 && cal.macro_f1 == cal.macro_f1_raw);
}

int main(void) {
    RUN(parse_and_format);
    RUN(parse_errors_name_the_problem);
    RUN(argmax_and_probs_with_bias);
    RUN(fit_picks_the_best_lambda);
    return tl_test_summary("test_label_calib");
}
