/* Q4_K / Q6_K x Q8_K kernels: the Q8_K quantizer against llama.cpp's
 * definition, the scalar references against a double-precision oracle built
 * from dequantize_row, every SIMD level against its scalar twin bit for bit
 * (the integer sums are exact and the fp32 steps identical), and matmul_forward
 * on these types across thread counts. */
#include <stdlib.h>

#include "core/threadpool.h"
#include "quant/matmul.h"
#include "quant/matmul_k.h"
#include "quant/quantize.h"
#include "quant/types.h"
#include "tl_test.h"

static const uint32_t kTypes[] = {GGML_TYPE_Q4_K, GGML_TYPE_Q6_K};

TL_TEST_RNG(777u)
static int n_levels(void) { return (int)cpu_detect_level() + 1; }

/* Random bytes, then sane fp16 scales (d, dmin for q4_K; d for q6_K). */
static void fill_weight(uint32_t type, uint8_t *w, int64_t nb) {
    size_t bb = ggml_type_block_bytes(type);
    for (size_t i = 0; i < (size_t)nb * bb; i++) w[i] = (uint8_t)rng_next();
    for (int64_t b = 0; b < nb; b++) {
        uint16_t d = fp32_to_fp16(0.001f + 0.01f * (rng_uniform() + 1.0f));
        uint16_t dm = fp32_to_fp16(0.001f + 0.01f * (rng_uniform() + 1.0f));
        uint8_t *blk = w + (size_t)b * bb;
        if (type == GGML_TYPE_Q4_K) {
            memcpy(blk, &d, 2);
            memcpy(blk + 2, &dm, 2);
        } else {
            memcpy(blk + bb - 2, &d, 2);
        }
    }
}

/* sum_i W[i] * a[i] in double from the dequantized row, and sum |W[i] a[i]|. */
static double oracle_dot(uint32_t type, const uint8_t *w, const mm_block_q8_k_t *a, int64_t n, double *abs_sum) {
    float *wf = malloc(sizeof(float) * (size_t)n);
    tl_err_t err = {0};
    double s = 0.0, as = 0.0;
    CHECK(wf && dequantize_row(type, w, wf, n, &err) == 0);
    for (int64_t i = 0; i < n; i++) {
        double ai = (double)a[i / MM_QK_K].d * a[i / MM_QK_K].qs[i % MM_QK_K];
        s += (double)wf[i] * ai;
        as += fabs((double)wf[i] * ai);
    }
    free(wf);
    *abs_sum = as;
    return s;
}

TEST(block_sizes_match_type_table) {
    CHECK_EQ_INT(sizeof(mm_block_q4_k_t), ggml_type_block_bytes(GGML_TYPE_Q4_K));
    CHECK_EQ_INT(sizeof(mm_block_q6_k_t), ggml_type_block_bytes(GGML_TYPE_Q6_K));
    CHECK_EQ_INT(sizeof(mm_block_q8_k_t), 292);
    for (size_t k = 0; k < 2; k++) {
        CHECK(matmul_supports_type(kTypes[k]));
        CHECK_EQ_INT(mm_k_row_bytes(kTypes[k], 1536), 6 * ggml_type_block_bytes(kTypes[k]));
    }
}

/* llama.cpp's rule: the element of largest magnitude maps to -127, clamp at 127, per-16 sums. */
TEST(quantize_q8_k_rule) {
    float x[512];
    for (int i = 0; i < 512; i++) x[i] = rng_uniform() * 4.0f;
    x[37] = 9.0f;   /* positive maximum in block 0 */
    x[300] = -7.5f; /* negative maximum in block 1 */
    mm_block_q8_k_t y[2];
    matmul_quantize_q8_k(x, y, 512);
    CHECK_EQ_INT(y[0].qs[37], -127);
    CHECK_EQ_INT(y[1].qs[300 - 256], -127);
    CHECK(y[0].d == 1.0f / (-127.0f / 9.0f));
    CHECK(y[1].d == 1.0f / (-127.0f / -7.5f));
    for (int b = 0; b < 2; b++)
        for (int j = 0; j < 16; j++) {
            int s = 0;
            for (int i = 0; i < 16; i++) s += y[b].qs[16 * j + i];
            CHECK_EQ_INT(y[b].bsums[j], s);
        }
    for (int i = 0; i < 512; i++) CHECK_NEAR(y[i / 256].d * y[i / 256].qs[i % 256], x[i], fabsf(y[i / 256].d) * 0.5f + 1e-6);
    float z[256] = {0};
    matmul_quantize_q8_k(z, y, 256);
    CHECK(y[0].d == 0.0f && y[0].qs[5] == 0 && y[0].bsums[3] == 0);
}

/* Scalar references equal the dequantize_row oracle within fp32 rounding; SIMD levels equal the reference exactly. */
TEST(reference_and_simd_vs_oracle) {
    for (size_t k = 0; k < 2; k++) {
        for (int64_t nb = 1; nb <= 7; nb += 3) {
            int64_t n = nb * MM_QK_K;
            uint8_t *w = malloc((size_t)nb * ggml_type_block_bytes(kTypes[k]));
            float *x = malloc(sizeof(float) * (size_t)n);
            mm_block_q8_k_t *a = malloc(sizeof *a * (size_t)nb);
            for (int rep = 0; rep < 10; rep++) {
                fill_weight(kTypes[k], w, nb);
                for (int64_t i = 0; i < n; i++) x[i] = rng_uniform() * (rep + 1);
                matmul_quantize_q8_k(x, a, n);
                double as, want = oracle_dot(kTypes[k], w, a, n, &as);
                float ref = mm_k_dot(kTypes[k], n, w, a, CPU_LEVEL_SCALAR);
                CHECK_NEAR(ref, want, 1e-5 * as + 1e-9);
                for (int lv = 1; lv < n_levels(); lv++) {
                    float got = mm_k_dot(kTypes[k], n, w, a, (cpu_level_t)lv);
                    if (got != ref) {
                        printf("  %s nb %lld level %d: %.9g vs %.9g\n", ggml_type_name(kTypes[k]), (long long)nb, lv, got, ref);
                        CHECK(got == ref);
                    }
                }
            }
            free(w);
            free(x);
            free(a);
        }
    }
}

/* matmul_forward over quantize_row-made weights equals the per-row dot on Q8_K activations, 1 and 3 threads. */
TEST(matmul_forward_on_k_types) {
    enum { N_IN = 512, N_OUT = 19, N_TOK = 6 };
    float *wf = malloc(sizeof(float) * N_OUT * N_IN), x[N_TOK * N_IN], out[N_TOK * N_OUT];
    for (int i = 0; i < N_OUT * N_IN; i++) wf[i] = rng_uniform();
    for (int i = 0; i < N_TOK * N_IN; i++) x[i] = rng_uniform() * 3.0f;
    mm_block_q8_k_t act[N_TOK][N_IN / MM_QK_K];
    for (int t = 0; t < N_TOK; t++) matmul_quantize_q8_k(x + t * N_IN, act[t], N_IN);
    size_t scratch_bytes = matmul_scratch_bytes(N_IN, N_TOK);
    CHECK(scratch_bytes >= sizeof act);
    void *scratch = aligned_alloc(64, (scratch_bytes + 63) & ~(size_t)63);
    for (size_t k = 0; k < 2; k++) {
        tl_err_t err = {0};
        size_t rb = mm_k_row_bytes(kTypes[k], N_IN);
        uint8_t *wq = malloc(rb * N_OUT);
        for (int r = 0; r < N_OUT; r++) CHECK(quantize_row(kTypes[k], wf + r * N_IN, wq + r * rb, N_IN, NULL, &err) == 0);
        mm_weight_t w;
        CHECK(matmul_weight_init(&w, "blk.0.ffn_down.weight", kTypes[k], N_IN, N_OUT, wq, &err) == 0);
        CHECK_EQ_INT(w.row_bytes, rb);
        for (int nt = 1; nt <= 3; nt += 2) {
            threadpool_t *pool = NULL;
            CHECK(threadpool_new(&pool, nt, &err) == 0);
            for (int lv = 0; lv < n_levels(); lv++) {
                mm_env_t env = {.pool = pool, .level = (cpu_level_t)lv, .scratch = scratch, .scratch_bytes = scratch_bytes};
                CHECK(matmul_forward(out, x, &w, N_TOK, &env, &err) == 0);
                for (int t = 0; t < N_TOK; t++)
                    for (int r = 0; r < N_OUT; r++) {
                        float want = mm_k_dot(kTypes[k], N_IN, wq + r * rb, act[t], CPU_LEVEL_SCALAR);
                        if (out[t * N_OUT + r] != want) CHECK(out[t * N_OUT + r] == want);
                    }
                /* and close to the fp32 product with the dequantized weights */
                float *row = malloc(sizeof(float) * N_IN);
                dequantize_row(kTypes[k], wq, row, N_IN, &err);
                double s = 0, as = 0;
                for (int i = 0; i < N_IN; i++) {
                    s += (double)row[i] * x[i];
                    as += fabs((double)row[i] * x[i]);
                }
                CHECK_NEAR(out[0], s, 0.02 * as / sqrt(N_IN) + 1e-4);
                free(row);
            }
            threadpool_free(pool);
        }
        free(wq);
    }
    free(scratch);
    free(wf);
}

int main(void) {
    RUN(block_sizes_match_type_table);
    RUN(quantize_q8_k_rule);
    RUN(reference_and_simd_vs_oracle);
    RUN(matmul_forward_on_k_types);
    return tl_test_summary("test_kernels_k");
}
