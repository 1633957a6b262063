#include "task/metrics.h"
#include "tl_test.h"

/* Hand-computed: labels yes=0 no=1 partial=2.
 * gold: y y y n n p ; pred: y y n n p y
 * yes: tp2 fp1 fn1 -> P 2/3 R 2/3 F 2/3; no: tp1 fp1 fn1 -> 1/2 1/2 1/2;
 * partial: tp0 fp1 fn1 -> 0 0 0; macro (2/3+1/2+0)/3 = 7/18; acc 3/6 */
TEST(hand_computed_three_class) {
    int g[] = {0, 0, 0, 1, 1, 2}, p[] = {0, 0, 1, 1, 2, 0};
    metrics_t m;
    tl_err_t err;
    CHECK_EQ_INT(metrics_compute(g, p, 6, 3, &m, &err), 0);
    CHECK_NEAR(m.accuracy, 0.5, 1e-12);
    CHECK_NEAR(m.precision[0], 2.0 / 3, 1e-12);
    CHECK_NEAR(m.recall[0], 2.0 / 3, 1e-12);
    CHECK_NEAR(m.f1[1], 0.5, 1e-12);
    CHECK_NEAR(m.f1[2], 0.0, 1e-12);
    CHECK_NEAR(m.macro_f1, 7.0 / 18, 1e-12);
    CHECK_EQ_INT(m.support[0], 3);
    CHECK_EQ_INT(m.support[2], 1);
    CHECK_EQ_INT(m.confusion[0][1], 1); /* a gold yes predicted no */
    CHECK_EQ_INT(m.confusion[1][2], 1);
    CHECK_EQ_INT(m.confusion[2][0], 1);
    CHECK_EQ_INT(m.confusion[0][0], 2);
}

/* A class never predicted and never present: zero_division=0 gives 0 and it
 * still counts in the macro average (labels fixed by the task). */
TEST(absent_class_counts_zero) {
    int g[] = {0, 1, 0, 1}, p[] = {0, 1, 0, 0};
    metrics_t m;
    tl_err_t err;
    CHECK_EQ_INT(metrics_compute(g, p, 4, 3, &m, &err), 0);
    /* yes: P 2/3 R 1 F 0.8; no: P 1 R 1/2 F 2/3; partial 0 */
    CHECK_NEAR(m.f1[0], 0.8, 1e-12);
    CHECK_NEAR(m.f1[1], 2.0 / 3, 1e-12);
    CHECK_NEAR(m.precision[2], 0.0, 0);
    CHECK_NEAR(m.macro_f1, (0.8 + 2.0 / 3) / 3, 1e-12);
    CHECK_NEAR(m.accuracy, 0.75, 1e-12);
}

TEST(perfect_and_empty) {
    int g[] = {2, 1, 0}, p[] = {2, 1, 0};
    metrics_t m;
    tl_err_t err;
    CHECK_EQ_INT(metrics_compute(g, p, 3, 3, &m, &err), 0);
    CHECK_NEAR(m.macro_f1, 1.0, 1e-12);
    CHECK_EQ_INT(metrics_compute(g, p, 0, 3, &m, &err), 0);
    CHECK_NEAR(m.macro_f1, 0.0, 0);
    CHECK_NEAR(m.accuracy, 0.0, 0);
}

TEST(rejects_out_of_range) {
    int g[] = {0, 3}, p[] = {0, 1};
    metrics_t m;
    tl_err_t err;
    CHECK_EQ_INT(metrics_compute(g, p, 2, 3, &m, &err), -1);
    CHECK_CONTAINS(err.msg, "item 1: gold label 3");
    CHECK_EQ_INT(metrics_compute(g, p, 2, 0, &m, &err), -1);
}

TEST(mean_loss) {
    double lp[] = {-0.5, -1.5, -1.0};
    CHECK_NEAR(metrics_mean_loss(lp, 3), 1.0, 1e-12);
    CHECK_NEAR(metrics_mean_loss(lp, 0), 0.0, 0);
}

int main(void) {
    RUN(hand_computed_three_class);
    RUN(absent_class_counts_zero);
    RUN(perfect_and_empty);
    RUN(rejects_out_of_range);
    RUN(mean_loss);
    return tl_test_summary("test_metrics");
}
