/* Row quantizers: error bounds on random data, exact round trips for values
 * the formats can represent, block layouts, importance weighting, bad input,
 * type names and override parsing. */
#include <stdint.h>
#include <stdlib.h>

#include "quant/quantize.h"
#include "quant/quantize_model.h"
#include "quant/types.h"
#include "tl_test.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double urand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
/* Approximately normal (sum of uniforms), with occasional outliers like real weights. */
static float nrand(void) {
    double s = 0;
    for (int i = 0; i < 4; i++) s += urand() - 0.5;
    s *= 1.7320508;
    if (urand() < 0.01) s *= 4.0;
    return (float)s;
}

#define N 1024

static double roundtrip_rel_rmse(uint32_t type, const float *x, int64_t n, const float *imp, float *y) {
    size_t rb;
    tl_err_t err;
    if (ggml_row_bytes(type, n, &rb, &err)) return 1e9;
    uint8_t *q = malloc(rb);
    double se = 0, sr = 0;
    if (quantize_row(type, x, q, n, imp, &err) || dequantize_row(type, q, y, n, &err)) {
        printf("  %s: %s\n", ggml_type_name(type), err.msg);
        free(q);
        return 1e9;
    }
    for (int64_t i = 0; i < n; i++) {
        se += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        sr += (double)x[i] * x[i];
    }
    free(q);
    return sr > 0 ? sqrt(se / sr) : sqrt(se);
}

static const struct {
    uint32_t type;
    double bound; /* relative RMS error on roughly normal data */
} bounds[] = {
    {GGML_TYPE_F32, 0.0},      {GGML_TYPE_F16, 5e-4},    {GGML_TYPE_BF16, 4e-3},   {GGML_TYPE_Q8_0, 0.008},
    {GGML_TYPE_Q6_K, 0.025},   {GGML_TYPE_Q5_0, 0.06},   {GGML_TYPE_Q5_1, 0.06},   {GGML_TYPE_Q5_K, 0.045},
    {GGML_TYPE_Q4_0, 0.12},    {GGML_TYPE_Q4_1, 0.12},   {GGML_TYPE_Q4_K, 0.09},   {GGML_TYPE_IQ4_NL, 0.095},
};
#define N_TYPES (int)(sizeof bounds / sizeof bounds[0])

TEST(error_bounds_random) {
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) x[i] = nrand() * 0.02f;
    for (int k = 0; k < N_TYPES; k++) {
        double e = roundtrip_rel_rmse(bounds[k].type, x, N, NULL, y);
        if (!(e <= bounds[k].bound)) printf("  %s: rel rmse %.5f > %.5f\n", ggml_type_name(bounds[k].type), e, bounds[k].bound);
        CHECK(e <= bounds[k].bound);
        if (bounds[k].type == GGML_TYPE_F32) CHECK(e == 0.0);
    }
    free(x);
    free(y);
}

/* More bits, less error: the orderings any correct quantizer must show. */
TEST(error_ordering) {
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) x[i] = nrand();
    double q4_0 = roundtrip_rel_rmse(GGML_TYPE_Q4_0, x, N, NULL, y), q5_0 = roundtrip_rel_rmse(GGML_TYPE_Q5_0, x, N, NULL, y);
    double q8_0 = roundtrip_rel_rmse(GGML_TYPE_Q8_0, x, N, NULL, y), q6_k = roundtrip_rel_rmse(GGML_TYPE_Q6_K, x, N, NULL, y);
    double q4_k = roundtrip_rel_rmse(GGML_TYPE_Q4_K, x, N, NULL, y), q5_k = roundtrip_rel_rmse(GGML_TYPE_Q5_K, x, N, NULL, y);
    CHECK(q5_0 < q4_0);
    CHECK(q6_k < q5_0);
    CHECK(q8_0 < q6_k);
    CHECK(q5_k < q4_k);
    CHECK(q4_k < q4_0); /* searched scales beat plain absmax rounding at the same bits */
    free(x);
    free(y);
}

/* Dequantized values are representable: quantizing them again reproduces them.
 * Q5_K's search does not always land on the exact grid of a sub-block whose
 * integers do not reach the ends of 0..31; there the second pass must move
 * values by well under one first-pass error. */
TEST(exact_roundtrip_of_representable_values) {
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float)), *z = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) x[i] = nrand() * 0.05f;
    for (int k = 0; k < N_TYPES; k++) {
        double e1 = roundtrip_rel_rmse(bounds[k].type, x, N, NULL, y);
        double e = roundtrip_rel_rmse(bounds[k].type, y, N, NULL, z);
        double maxd = 0;
        for (int i = 0; i < N; i++) maxd = fmax(maxd, fabs((double)z[i] - y[i]));
        if (bounds[k].type == GGML_TYPE_Q5_K) {
            CHECK(e < 0.25 * e1);
            continue;
        }
        if (maxd > 1e-7) printf("  %s: second round trip moved a value by %g (rel %g)\n", ggml_type_name(bounds[k].type), maxd, e);
        CHECK(maxd <= 1e-7);
    }
    free(x);
    free(y);
    free(z);
}

TEST(q4_0_layout) {
    float x[32];
    uint8_t q[18];
    tl_err_t err;
    for (int j = 0; j < 32; j++) x[j] = (float)(j % 16 - 8) * 0.5f; /* -4 .. 3.5 */
    CHECK_EQ_INT(quantize_row(GGML_TYPE_Q4_0, x, q, 32, NULL, &err), 0);
    CHECK_EQ_INT(q[0] | (q[1] << 8), 0x3800); /* d = -4 / -8 = 0.5 */
    for (int j = 0; j < 16; j++) CHECK_EQ_INT(q[2 + j], j | (j << 4));
}

TEST(q8_0_layout_and_rounding) {
    float x[32] = {0};
    uint8_t q[34];
    tl_err_t err;
    x[0] = 127.0f;
    x[1] = -2.5f; /* halves round away from zero, as llama.cpp's roundf */
    x[2] = 2.5f;
    x[3] = -127.0f;
    CHECK_EQ_INT(quantize_row(GGML_TYPE_Q8_0, x, q, 32, NULL, &err), 0);
    CHECK_EQ_INT(q[0] | (q[1] << 8), 0x3c00); /* d = 1 */
    CHECK_EQ_INT((int8_t)q[2], 127);
    CHECK_EQ_INT((int8_t)q[3], -3);
    CHECK_EQ_INT((int8_t)q[4], 3);
    CHECK_EQ_INT((int8_t)q[5], -127);
}

TEST(q6_k_layout) {
    /* one super-block whose sub-blocks all hold (-32, -28, ..., 28) / 64 */
    float x[256], y[256];
    uint8_t q[210];
    tl_err_t err;
    for (int i = 0; i < 256; i++) x[i] = (float)(4 * (i % 16) - 32) / 64.0f;
    CHECK_EQ_INT(quantize_row(GGML_TYPE_Q6_K, x, q, 256, NULL, &err), 0);
    CHECK_EQ_INT(dequantize_row(GGML_TYPE_Q6_K, q, y, 256, &err), 0);
    for (int i = 0; i < 256; i++) CHECK_NEAR(y[i], x[i], 1e-6);
    /* element 0 is stored as 0 (-32 + 32) in the low nibble of ql[0], element 1 as 4;
     * element 64 (the third quarter) in the high nibble of ql[0]; their high bits in qh[0] */
    CHECK_EQ_INT(q[0] & 0x0f, 0);
    CHECK_EQ_INT(q[1] & 0x0f, 4);
    CHECK_EQ_INT(q[0] >> 4, 0);
    CHECK_EQ_INT(q[15] & 0x0f, (4 * 15) & 0x0f);
    CHECK_EQ_INT(q[128 + 15] & 3, (4 * 15) >> 4);
    /* all 16 sub-block scales are equal */
    for (int j = 1; j < 16; j++) CHECK_EQ_INT((int8_t)q[192 + j], (int8_t)q[192]);
}

TEST(zero_and_constant_rows) {
    float x[256], y[256];
    for (int k = 0; k < N_TYPES; k++) {
        int64_t bs = ggml_type_block_size(bounds[k].type), n = bs > 32 ? 256 : 64;
        for (int i = 0; i < n; i++) x[i] = 0.0f;
        CHECK(roundtrip_rel_rmse(bounds[k].type, x, n, NULL, y) < 1e9);
        for (int i = 0; i < n; i++) CHECK(y[i] == 0.0f);
    }
}

TEST(importance_lowers_weighted_error) {
    uint32_t types[] = {GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_IQ4_NL};
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float)), *w = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) {
        x[i] = nrand();
        w[i] = (i % 7 == 0) ? 50.0f : 0.1f; /* a few columns matter far more */
    }
    for (int k = 0; k < 4; k++) {
        double ew = 0, eu = 0;
        roundtrip_rel_rmse(types[k], x, N, w, y);
        for (int i = 0; i < N; i++) ew += w[i] * ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        roundtrip_rel_rmse(types[k], x, N, NULL, y);
        for (int i = 0; i < N; i++) eu += w[i] * ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        if (!(ew < eu)) printf("  %s: weighted %g vs unweighted %g\n", ggml_type_name(types[k]), ew, eu);
        CHECK(ew < eu);
    }
    free(x);
    free(y);
    free(w);
}

TEST(bad_input) {
    float x[64] = {0};
    uint8_t q[256];
    tl_err_t err;
    CHECK_EQ_INT(quantize_row(GGML_TYPE_Q4_0, x, q, 33, NULL, &err), -1);
    CHECK(strstr(err.msg, "multiple") != NULL);
    CHECK_EQ_INT(quantize_row(GGML_TYPE_Q4_K, x, q, 64, NULL, &err), -1);
    CHECK(strstr(err.msg, "q4_K") != NULL);
    CHECK_EQ_INT(quantize_row(GGML_TYPE_Q2_K, x, q, 256, NULL, &err), -1);
    CHECK(strstr(err.msg, "q2_K") != NULL);
    x[5] = NAN;
    CHECK_EQ_INT(quantize_row(GGML_TYPE_Q8_0, x, q, 32, NULL, &err), -1);
    CHECK(strstr(err.msg, "element 5") != NULL);
}

TEST(type_names) {
    CHECK_EQ_INT(quantize_type_from_name("q4_k"), GGML_TYPE_Q4_K);
    CHECK_EQ_INT(quantize_type_from_name("Q4_K"), GGML_TYPE_Q4_K);
    CHECK_EQ_INT(quantize_type_from_name("iq4_nl"), GGML_TYPE_IQ4_NL);
    CHECK_EQ_INT(quantize_type_from_name("bf16"), GGML_TYPE_BF16);
    CHECK_EQ_INT(quantize_type_from_name("f32"), GGML_TYPE_F32);
    CHECK_EQ_INT(quantize_type_from_name("q2_k"), -1);
    CHECK_EQ_INT(quantize_type_from_name("q8_1"), -1);
    CHECK_EQ_INT(quantize_type_from_name("nonsense_type_name_too_long"), -1);
}

TEST(override_parsing) {
    quantize_override_t *ov = NULL;
    int n = 0;
    tl_err_t err;
    CHECK_EQ_INT(quantize_parse_overrides("token_embd=q8_0,blk.*.ffn_down=q6_k", &ov, &n, &err), 0);
    CHECK_EQ_INT(n, 2);
    if (n == 2) {
        CHECK(strcmp(ov[0].pattern, "token_embd") == 0);
        CHECK_EQ_INT(ov[0].type, GGML_TYPE_Q8_0);
        CHECK(strcmp(ov[1].pattern, "blk.*.ffn_down") == 0);
        CHECK_EQ_INT(ov[1].type, GGML_TYPE_Q6_K);
    }
    CHECK_EQ_INT(quantize_parse_overrides("output=zz", &ov, &n, &err), -1);
    CHECK(strstr(err.msg, "zz") != NULL);
    CHECK_EQ_INT(quantize_parse_overrides("output", &ov, &n, &err), -1);
    CHECK(strstr(err.msg, "PATTERN=TYPE") != NULL);
    CHECK_EQ_INT(quantize_parse_overrides("a=q4_0,", &ov, &n, &err), -1);
    free(ov);
    CHECK_EQ_INT(quantize_file_type(GGML_TYPE_Q4_0), 2);
    CHECK_EQ_INT(quantize_file_type(GGML_TYPE_Q8_0), 7);
    CHECK_EQ_INT(quantize_file_type(GGML_TYPE_Q4_K), 14);
}

int main(void) {
    RUN(error_bounds_random);
    RUN(error_ordering);
    RUN(exact_roundtrip_of_representable_values);
    RUN(q4_0_layout);
    RUN(q8_0_layout_and_rounding);
    RUN(q6_k_layout);
    RUN(zero_and_constant_rows);
    RUN(importance_lowers_weighted_error);
    RUN(bad_input);
    RUN(type_names);
    RUN(override_parsing);
    return tl_test_summary("test_quantize");
}
