/* Q4_0 / Q5_0 / IQ4_NL x Q8_0 matmul kernels: the scalar references against a
 * double-precision oracle built from dequantize_row, every SIMD level against
 * its scalar twin (bit-exact integer part, bounded fp32 accumulation), and
 * matmul_forward on these types across thread counts. */
#include <stdlib.h>

#include "core/threadpool.h"
#include "quant/matmul.h"
#include "quant/matmul_ext.h"
#include "quant/quantize.h"
#include "quant/types.h"
#include "tl_test.h"

static const uint32_t kTypes[] = {GGML_TYPE_Q4_0, GGML_TYPE_Q5_0, GGML_TYPE_IQ4_NL};

TL_TEST_RNG(12345u)

static size_t block_bytes(uint32_t type) { return ggml_type_block_bytes(type); }

/* Each level this CPU can run. */
static int n_levels(void) { return (int)cpu_detect_level() + 1; }

/* Random bytes everywhere, then each block's fp16 scale set to `d_bits`
 * (0 keeps a random small positive scale). */
static void fill_weight(uint32_t type, uint8_t *w, int64_t nb, uint16_t d_bits) {
    size_t bb = block_bytes(type);
    for (size_t i = 0; i < (size_t)nb * bb; i++) w[i] = (uint8_t)rng_next();
    for (int64_t b = 0; b < nb; b++) {
        uint16_t d = d_bits ? d_bits : fp32_to_fp16(0.001f + 0.05f * (rng_uniform() + 1.0f));
        memcpy(w + (size_t)b * bb, &d, 2);
    }
}

static void fill_act(mm_block_q8_0_t *a, int64_t nb, uint16_t d_bits) {
    for (int64_t b = 0; b < nb; b++) {
        a[b].d = d_bits ? d_bits : fp32_to_fp16(0.002f + 0.02f * (rng_uniform() + 1.0f));
        for (int j = 0; j < MM_QK; j++) a[b].qs[j] = (int8_t)((int)(rng_next() % 255) - 127);
    }
}

/* sum_i W[i] * a[i] in double from the dequantized row; also sum |W[i] * a[i]|. */
static double oracle_dot(uint32_t type, const uint8_t *w, const mm_block_q8_0_t *a, int64_t n, double *abs_sum) {
    float *wf = malloc(sizeof(float) * (size_t)n);
    tl_err_t err = {0};
    double s = 0.0, as = 0.0;
    if (!wf || dequantize_row(type, w, wf, n, &err)) {
        free(wf);
        *abs_sum = 0.0;
        return NAN;
    }
    for (int64_t i = 0; i < n; i++) {
        double ai = (double)fp16_to_fp32(a[i / MM_QK].d) * a[i / MM_QK].qs[i % MM_QK];
        s += (double)wf[i] * ai;
        as += fabs((double)wf[i] * ai);
    }
    free(wf);
    *abs_sum = as;
    return s;
}

TEST(block_sizes_match_type_table) {
    CHECK_EQ_INT(sizeof(mm_block_q4_0_t), ggml_type_block_bytes(GGML_TYPE_Q4_0));
    CHECK_EQ_INT(sizeof(mm_block_q5_0_t), ggml_type_block_bytes(GGML_TYPE_Q5_0));
    CHECK_EQ_INT(sizeof(mm_block_iq4_nl_t), ggml_type_block_bytes(GGML_TYPE_IQ4_NL));
    for (size_t k = 0; k < sizeof kTypes / sizeof kTypes[0]; k++) {
        CHECK(matmul_supports_type(kTypes[k]));
        CHECK_EQ_INT(mm_ext_row_bytes(kTypes[k], 576), 18 * block_bytes(kTypes[k]));
    }
    CHECK(!mm_ext_supports(GGML_TYPE_Q4_K));
}

/* The scalar references equal the dequantize_row oracle (exact integer sums, then fp32 rounding). */
TEST(reference_matches_dequant_oracle) {
    for (size_t k = 0; k < sizeof kTypes / sizeof kTypes[0]; k++) {
        for (int64_t nb = 1; nb <= 40; nb += 13) {
            int64_t n = nb * MM_QK;
            uint8_t *w = malloc((size_t)nb * block_bytes(kTypes[k]));
            mm_block_q8_0_t *a = malloc(sizeof *a * (size_t)nb);
            fill_weight(kTypes[k], w, nb, 0);
            fill_act(a, nb, 0);
            double as, want = oracle_dot(kTypes[k], w, a, n, &as);
            float got = mm_ext_dot(kTypes[k], n, w, a, CPU_LEVEL_SCALAR);
            CHECK_NEAR(got, want, 1e-5 * as + 1e-9);
            free(w);
            free(a);
        }
    }
}

/* With unit scales every fp32 step is exact, so each SIMD level must equal the reference bit for bit. */
TEST(simd_integer_part_bit_exact) {
    for (size_t k = 0; k < sizeof kTypes / sizeof kTypes[0]; k++) {
        for (int64_t nb = 1; nb <= 9; nb++) { /* odd counts exercise the AVX-512 tail */
            int64_t n = nb * MM_QK;
            uint8_t *w = malloc((size_t)nb * block_bytes(kTypes[k]));
            mm_block_q8_0_t *a = malloc(sizeof *a * (size_t)nb);
            for (int rep = 0; rep < 20; rep++) {
                fill_weight(kTypes[k], w, nb, 0x3c00);
                fill_act(a, nb, 0x3c00);
                float ref = mm_ext_dot(kTypes[k], n, w, a, CPU_LEVEL_SCALAR);
                double as, want = oracle_dot(kTypes[k], w, a, n, &as);
                CHECK(ref == (float)want);
                for (int lv = 1; lv < n_levels(); lv++) {
                    float got = mm_ext_dot(kTypes[k], n, w, a, (cpu_level_t)lv);
                    if (got != ref) {
                        printf("  type %s nb %lld level %d: %.9g vs %.9g\n", ggml_type_name(kTypes[k]), (long long)nb, lv,
                               got, ref);
                        CHECK(got == ref);
                    }
                }
            }
            free(w);
            free(a);
        }
    }
}

/* Random scales: only the fp32 accumulation order differs; bound 1e-5 * sum |w_i a_i|. */
TEST(simd_float_within_bound) {
    for (size_t k = 0; k < sizeof kTypes / sizeof kTypes[0]; k++) {
        int64_t nb = 48, n = nb * MM_QK;
        uint8_t *w = malloc((size_t)nb * block_bytes(kTypes[k]));
        mm_block_q8_0_t *a = malloc(sizeof *a * (size_t)nb);
        for (int rep = 0; rep < 10; rep++) {
            fill_weight(kTypes[k], w, nb, 0);
            fill_act(a, nb, 0);
            double as;
            oracle_dot(kTypes[k], w, a, n, &as);
            float ref = mm_ext_dot(kTypes[k], n, w, a, CPU_LEVEL_SCALAR);
            for (int lv = 1; lv < n_levels(); lv++) CHECK_NEAR(mm_ext_dot(kTypes[k], n, w, a, (cpu_level_t)lv), ref, 1e-5 * as);
        }
        free(w);
        free(a);
    }
}

/* matmul_forward over a quantize_row-made weight equals per-row reference dots on
 * Q8_0-quantized activations, for 1 and 3 threads and every level. */
TEST(matmul_forward_on_ext_types) {
    enum { N_IN = 96, N_OUT = 37, N_TOK = 5 };
    float wf[N_OUT * N_IN], x[N_TOK * N_IN], out[N_TOK * N_OUT];
    for (int i = 0; i < N_OUT * N_IN; i++) wf[i] = rng_uniform();
    for (int i = 0; i < N_TOK * N_IN; i++) x[i] = rng_uniform() * 3.0f;
    mm_block_q8_0_t act[N_TOK][N_IN / MM_QK];
    for (int t = 0; t < N_TOK; t++) matmul_quantize_q8_0(x + t * N_IN, act[t], N_IN);
    size_t scratch_bytes = matmul_scratch_bytes(N_IN, N_TOK);
    void *scratch = aligned_alloc(64, (scratch_bytes + 63) & ~(size_t)63);
    for (size_t k = 0; k < sizeof kTypes / sizeof kTypes[0]; k++) {
        tl_err_t err = {0};
        size_t rb = mm_ext_row_bytes(kTypes[k], N_IN);
        uint8_t *wq = malloc(rb * N_OUT);
        for (int r = 0; r < N_OUT; r++) CHECK(quantize_row(kTypes[k], wf + r * N_IN, wq + r * rb, N_IN, NULL, &err) == 0);
        mm_weight_t w;
        CHECK(matmul_weight_init(&w, "blk.0.ffn_up.weight", kTypes[k], N_IN, N_OUT, wq, &err) == 0);
        CHECK_EQ_INT(w.row_bytes, rb);
        for (int nt = 1; nt <= 3; nt += 2) {
            threadpool_t *pool = NULL;
            CHECK(threadpool_new(&pool, nt, &err) == 0);
            for (int lv = 0; lv < n_levels(); lv++) {
                mm_env_t env = {.pool = pool, .level = (cpu_level_t)lv, .scratch = scratch, .scratch_bytes = scratch_bytes};
                CHECK(matmul_forward(out, x, &w, N_TOK, &env, &err) == 0);
                for (int t = 0; t < N_TOK; t++)
                    for (int r = 0; r < N_OUT; r++) {
                        float want = mm_ext_dot(kTypes[k], N_IN, wq + r * rb, act[t], (cpu_level_t)lv);
                        if (out[t * N_OUT + r] != want) CHECK(out[t * N_OUT + r] == want);
                    }
            }
            threadpool_free(pool);
        }
        free(wq);
    }
    free(scratch);
}

TEST(bad_shape_names_tensor) {
    tl_err_t err = {0};
    mm_weight_t w;
    uint8_t buf[64] = {0};
    CHECK(matmul_weight_init(&w, "blk.3.attn_q.weight", GGML_TYPE_IQ4_NL, 40, 2, buf, &err) == -1);
    CHECK_CONTAINS(err.msg, "blk.3.attn_q.weight");
}

int main(void) {
    RUN(block_sizes_match_type_table);
    RUN(reference_matches_dequant_oracle);
    RUN(simd_integer_part_bit_exact);
    RUN(simd_float_within_bound);
    RUN(matmul_forward_on_ext_types);
    RUN(bad_shape_names_tensor);
    return tl_test_summary("test_kernels_quant");
}
