/* Minimal unit-test harness. A test file defines TEST(name) functions, lists
 * them in main with RUN(name), and ends with `return tl_test_summary("file");`.
 * The last line a test binary prints is "RESULT passed=N failed=M", which
 * scripts/run-tests.sh adds up. */
#ifndef TL_TEST_H
#define TL_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int tl_test_passed, tl_test_failed, tl_test_cur_failed;
static const char *tl_test_cur;

#define TEST(name) static void name(void)

#define RUN(name)                                                       \
    do {                                                                \
        tl_test_cur = #name;                                            \
        tl_test_cur_failed = 0;                                         \
        name();                                                         \
        if (tl_test_cur_failed) {                                       \
            tl_test_failed++;                                           \
            printf("FAIL %s\n", #name);                                 \
        } else {                                                        \
            tl_test_passed++;                                           \
            printf("ok   %s\n", #name);                                 \
        }                                                               \
        fflush(stdout);                                                 \
    } while (0)

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            printf("  %s:%d: %s: check failed: %s\n", __FILE__, __LINE__,        \
                   tl_test_cur, #cond);                                          \
            tl_test_cur_failed = 1;                                              \
        }                                                                        \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                               \
    do {                                                                                 \
        long long tl_a_ = (long long)(a), tl_b_ = (long long)(b);                        \
        if (tl_a_ != tl_b_) {                                                            \
            printf("  %s:%d: %s: %s == %s failed: %lld vs %lld\n", __FILE__, __LINE__,   \
                   tl_test_cur, #a, #b, tl_a_, tl_b_);                                   \
            tl_test_cur_failed = 1;                                                      \
        }                                                                                \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                            \
    do {                                                                                 \
        double tl_a_ = (double)(a), tl_b_ = (double)(b);                                 \
        if (!(fabs(tl_a_ - tl_b_) <= (tol))) {                                           \
            printf("  %s:%d: %s: |%s - %s| <= %g failed: %.9g vs %.9g\n", __FILE__,      \
                   __LINE__, tl_test_cur, #a, #b, (double)(tol), tl_a_, tl_b_);          \
            tl_test_cur_failed = 1;                                                      \
        }                                                                                \
    } while (0)

#define CHECK_STR(a, b)                                                                  \
    do {                                                                                 \
        const char *tl_a_ = (a), *tl_b_ = (b);                                           \
        if (!tl_a_ || !tl_b_ || strcmp(tl_a_, tl_b_) != 0) {                             \
            printf("  %s:%d: %s: %s == %s failed: \"%s\" vs \"%s\"\n", __FILE__,         \
                   __LINE__, tl_test_cur, #a, #b, tl_a_ ? tl_a_ : "(null)",              \
                   tl_b_ ? tl_b_ : "(null)");                                            \
            tl_test_cur_failed = 1;                                                      \
        }                                                                                \
    } while (0)

/* The message contains the substring. */
#define CHECK_CONTAINS(hay, needle)                                                      \
    do {                                                                                 \
        const char *tl_h_ = (hay), *tl_n_ = (needle);                                    \
        if (!tl_h_ || !strstr(tl_h_, tl_n_)) {                                           \
            printf("  %s:%d: %s: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__,  \
                   tl_test_cur, tl_h_ ? tl_h_ : "(null)", tl_n_);                        \
            tl_test_cur_failed = 1;                                                      \
        }                                                                                \
    } while (0)

static inline int tl_test_summary(const char *file) {
    printf("%s: %d passed, %d failed\n", file, tl_test_passed, tl_test_failed);
    printf("RESULT passed=%d failed=%d\n", tl_test_passed, tl_test_failed);
    return tl_test_failed ? 1 : 0;
}


/* A per-file xorshift32 generator for test data: TL_TEST_RNG(seed) defines
 * rng_state, rng_next() and rng_uniform() (uniform in [-1, 1)). */
#define TL_TEST_RNG(seed)                                                                     \
    static uint32_t rng_state = (seed);                                                       \
    static inline uint32_t rng_next(void) {                                                   \
        rng_state ^= rng_state << 13;                                                         \
        rng_state ^= rng_state >> 17;                                                         \
        rng_state ^= rng_state << 5;                                                          \
        return rng_state;                                                                     \
    }                                                                                         \
    static inline float rng_uniform(void) { return (float)(rng_next() >> 8) / 16777216.0f * 2.0f - 1.0f; }

#endif
