/* matmul_forward for n_tokens > 1 over plain (unpacked) rows and the K-type
 * tiles: every output equals the single-row dot product of the same level
 * (matmul_dot_* / mm_ext_dot / mm_k_dot) bit for bit, for odd token counts, row
 * counts that are not a multiple of the tile, odd block counts (the AVX2 tail
 * block), random weight bytes (extreme values such as Q8_0 -128), and any
 * thread count. The single-row SIMD kernels are themselves checked against
 * their scalar twins in test_kernels.c / test_kernels_quant.c; here the SIMD
 * result is also kept within a bound of the scalar level's matmul_forward. */
#include <stdlib.h>

#include "core/threadpool.h"
#include "quant/matmul.h"
#include "quant/matmul_amx.h"
#include "quant/matmul_ext.h"
#include "quant/matmul_k.h"
#include "quant/matmul_pack.h"
#include "quant/quantize.h"
#include "quant/types.h"
#include "tl_test.h"

static const uint32_t kTypes[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_1, GGML_TYPE_Q4_0, GGML_TYPE_Q5_0, GGML_TYPE_IQ4_NL};

TL_TEST_RNG(2026u)

/* Random bytes in every block, then sane fp16 scales (and Q4_1 mins) so sums stay finite. */
static void fill_weight(uint32_t type, uint8_t *w, int64_t n_rows, int64_t n_in) {
    size_t bb = ggml_type_block_bytes(type), nb = (size_t)(n_rows * (n_in / MM_QK));
    for (size_t i = 0; i < nb * bb; i++) w[i] = (uint8_t)rng_next();
    for (size_t b = 0; b < nb; b++) {
        uint16_t d = fp32_to_fp16(0.001f + 0.05f * (rng_uniform() + 1.0f));
        memcpy(w + b * bb, &d, 2);
        if (type == GGML_TYPE_Q4_1) {
            uint16_t m = fp32_to_fp16(0.1f * rng_uniform());
            memcpy(w + b * bb + 2, &m, 2);
        }
    }
}

static void check_shape_at(uint32_t type, int64_t n_in, int64_t n_out, int n_tok, threadpool_t **pools, cpu_level_t best);

static float dot_ref(uint32_t type, int64_t n, const void *w, const void *a, cpu_level_t lv) {
    if (type == GGML_TYPE_Q4_1) return matmul_dot_q4_1_q8_1(n, w, a, lv);
    if (type == GGML_TYPE_Q8_0) return matmul_dot_q8_0_q8_0(n, w, a, lv);
    return mm_ext_dot(type, n, w, a, lv);
}

/* One type and shape: matmul_forward at each SIMD level vs per-row dots of that level, for 1, 2 and 3 threads. */
static void check_shape(uint32_t type, int64_t n_in, int64_t n_out, int n_tok, threadpool_t **pools) {
    for (int lv = CPU_LEVEL_AVX2; lv <= (int)cpu_detect_level(); lv++)
        check_shape_at(type, n_in, n_out, n_tok, pools, (cpu_level_t)lv);
}

static void check_shape_at(uint32_t type, int64_t n_in, int64_t n_out, int n_tok, threadpool_t **pools, cpu_level_t best) {
    tl_err_t err = {0};
    size_t rb = (size_t)(n_in / MM_QK) * ggml_type_block_bytes(type);
    uint8_t *wq = malloc(rb * (size_t)n_out);
    float *x = malloc(sizeof(float) * (size_t)(n_in * n_tok));
    float *out = malloc(sizeof(float) * (size_t)(n_out * n_tok)), *ref = malloc(sizeof(float) * (size_t)(n_out * n_tok));
    size_t arow = (size_t)(n_in / MM_QK) * (type == GGML_TYPE_Q4_1 ? sizeof(mm_block_q8_1_t) : sizeof(mm_block_q8_0_t));
    char *act = malloc(arow * (size_t)n_tok);
    size_t sb = matmul_scratch_bytes(n_in, n_tok);
    void *scratch = aligned_alloc(64, (sb + 63) & ~(size_t)63);
    fill_weight(type, wq, n_out, n_in);
    for (int64_t i = 0; i < n_in * n_tok; i++) x[i] = rng_uniform() * (i % 7 == 0 ? 4.0f : 1.0f);
    for (int t = 0; t < n_tok; t++) {
        if (type == GGML_TYPE_Q4_1) matmul_quantize_q8_1(x + t * n_in, (mm_block_q8_1_t *)(act + t * arow), n_in);
        else matmul_quantize_q8_0(x + t * n_in, (mm_block_q8_0_t *)(act + t * arow), n_in);
    }
    mm_weight_t w;
    CHECK(matmul_weight_init(&w, "blk.0.attn_q.weight", type, n_in, n_out, wq, &err) == 0);
    int bad = 0;
    for (int p = 0; p < 3; p++) {
        mm_env_t env = {.pool = pools[p], .level = best, .scratch = scratch, .scratch_bytes = sb};
        CHECK(matmul_forward(out, x, &w, n_tok, &env, &err) == 0);
        for (int t = 0; t < n_tok; t++)
            for (int64_t r = 0; r < n_out; r++) {
                float want = dot_ref(type, n_in, wq + r * rb, act + t * arow, best);
                if (memcmp(&out[t * n_out + r], &want, sizeof want) && bad++ < 3)
                    printf("  %s %s n_in %lld n_out %lld tokens %d threads %d: out[%d][%lld] %.9g != %.9g\n",
                           cpu_level_name(best), ggml_type_name(type), (long long)n_in, (long long)n_out, n_tok, p + 1, t, (long long)r,
                           out[t * n_out + r], want);
            }
    }
    CHECK(bad == 0);
    /* against the scalar level: only the fp32 summation order differs */
    mm_env_t senv = {.pool = pools[0], .level = CPU_LEVEL_SCALAR, .scratch = scratch, .scratch_bytes = sb};
    CHECK(matmul_forward(ref, x, &w, n_tok, &senv, &err) == 0);
    double amax = 0;
    for (int64_t i = 0; i < n_out * n_tok; i++) amax = fabs(ref[i]) > amax ? fabs(ref[i]) : amax;
    for (int64_t i = 0; i < n_out * n_tok; i++)
        if (fabs((double)out[i] - ref[i]) > 1e-4 * (amax + 1.0)) {
            CHECK_NEAR(out[i], ref[i], 1e-4 * (amax + 1.0));
            break;
        }
    free(wq);
    free(x);
    free(out);
    free(ref);
    free(act);
    free(scratch);
}

TEST(gemm_equals_single_row_kernels) {
    static const int tokens[] = {1, 2, 3, 5, 17, 64};
    static const int64_t n_ins[] = {64, 96, 576};
    static const int64_t n_outs[] = {1, 6, 37};
    threadpool_t *pools[3] = {0};
    tl_err_t err = {0};
    for (int p = 0; p < 3; p++) CHECK(threadpool_new(&pools[p], p + 1, &err) == 0);
    for (size_t k = 0; k < sizeof kTypes / sizeof kTypes[0]; k++)
        for (size_t a = 0; a < sizeof n_ins / sizeof n_ins[0]; a++)
            for (size_t b = 0; b < sizeof n_outs / sizeof n_outs[0]; b++)
                for (size_t c = 0; c < sizeof tokens / sizeof tokens[0]; c++)
                    check_shape(kTypes[k], n_ins[a], n_outs[b], tokens[c], pools);
    for (int p = 0; p < 3; p++) threadpool_free(pools[p]);
}

/* The model's shapes once, at a full tile of tokens. */
TEST(gemm_model_shapes) {
    threadpool_t *pools[3] = {0};
    tl_err_t err = {0};
    for (int p = 0; p < 3; p++) CHECK(threadpool_new(&pools[p], p + 1, &err) == 0);
    for (size_t k = 0; k < sizeof kTypes / sizeof kTypes[0]; k++) {
        check_shape(kTypes[k], 1536, 576 + 3, 24, pools);
        check_shape(kTypes[k], 576, 192, 9, pools);
    }
    for (int p = 0; p < 3; p++) threadpool_free(pools[p]);
}

/* Q4_K / Q6_K: matmul_forward (eight tokens per unpacked super-block, then
 * single tokens) equals mm_k_dot at each level bit for bit. Weights from
 * quantize_row over random floats, with some scale bytes randomised. */
static void check_k_shape(uint32_t type, int64_t n_in, int64_t n_out, int n_tok, threadpool_t **pools) {
    tl_err_t err = {0};
    size_t rb = mm_k_row_bytes(type, n_in);
    uint8_t *wq = malloc(rb * (size_t)n_out);
    float *wf = malloc(sizeof(float) * (size_t)n_in), *x = malloc(sizeof(float) * (size_t)(n_in * n_tok));
    float *out = malloc(sizeof(float) * (size_t)(n_out * n_tok));
    size_t arow = (size_t)(n_in / MM_QK_K) * sizeof(mm_block_q8_k_t);
    char *act = malloc(arow * (size_t)n_tok);
    size_t sb = matmul_scratch_bytes(n_in, n_tok);
    void *scratch = aligned_alloc(64, (sb + 63) & ~(size_t)63);
    for (int64_t r = 0; r < n_out; r++) {
        for (int64_t i = 0; i < n_in; i++) wf[i] = rng_uniform() * (i % 13 == 0 ? 3.0f : 1.0f);
        CHECK(quantize_row(type, wf, wq + (size_t)r * rb, n_in, NULL, &err) == 0);
    }
    for (int64_t i = 0; i < n_in * n_tok; i++) x[i] = rng_uniform() * (i % 7 == 0 ? 4.0f : 1.0f);
    for (int t = 0; t < n_tok; t++) matmul_quantize_q8_k(x + t * n_in, (mm_block_q8_k_t *)(act + t * arow), n_in);
    mm_weight_t w;
    CHECK(matmul_weight_init(&w, "blk.0.ffn_down.weight", type, n_in, n_out, wq, &err) == 0);
    int bad = 0;
    for (int lv = CPU_LEVEL_AVX2; lv <= (int)cpu_detect_level(); lv++)
        for (int p = 0; p < 3; p++) {
            mm_env_t env = {.pool = pools[p], .level = (cpu_level_t)lv, .scratch = scratch, .scratch_bytes = sb};
            CHECK(matmul_forward(out, x, &w, n_tok, &env, &err) == 0);
            for (int t = 0; t < n_tok; t++)
                for (int64_t r = 0; r < n_out; r++) {
                    float want = mm_k_dot(type, n_in, wq + r * rb, (const mm_block_q8_k_t *)(act + t * arow), (cpu_level_t)lv);
                    if (memcmp(&out[t * n_out + r], &want, sizeof want) && bad++ < 3)
                        printf("  %s %s n_in %lld tokens %d threads %d: out[%d][%lld] %.9g != %.9g\n",
                               cpu_level_name((cpu_level_t)lv), ggml_type_name(type), (long long)n_in, n_tok, p + 1, t,
                               (long long)r, out[t * n_out + r], want);
                }
        }
    CHECK(bad == 0);
    free(wq);
    free(wf);
    free(x);
    free(out);
    free(act);
    free(scratch);
}

TEST(gemm_k_types_equal_single_row_kernels) {
    static const int tokens[] = {1, 2, 3, 5, 17, 64};
    static const int64_t n_ins[] = {256, 768};
    threadpool_t *pools[3] = {0};
    tl_err_t err = {0};
    for (int p = 0; p < 3; p++) CHECK(threadpool_new(&pools[p], p + 1, &err) == 0);
    for (int k = 0; k < 2; k++)
        for (size_t a = 0; a < sizeof n_ins / sizeof n_ins[0]; a++)
            for (size_t c = 0; c < sizeof tokens / sizeof tokens[0]; c++)
                check_k_shape(k ? GGML_TYPE_Q6_K : GGML_TYPE_Q4_K, n_ins[a], 7, tokens[c], pools);
    for (int p = 0; p < 3; p++) threadpool_free(pools[p]);
}

/* The SIMD activation quantizers write the scalar ones' bytes: random blocks,
 * zero blocks, exact halves (round half to even), tiny and huge magnitudes. */
TEST(quantizers_simd_bytes_equal_scalar) {
    enum { N = 32 * 40 };
    static float x[N];
    static mm_block_q8_0_t a0[N / 32], b0[N / 32];
    static mm_block_q8_1_t a1[N / 32], b1[N / 32];
    for (int rep = 0; rep < 20; rep++) {
        for (int i = 0; i < N; i++) {
            int blk = i / 32;
            float scale = blk % 5 == 0 ? 1e-6f : blk % 5 == 1 ? 3e4f : 1.0f;
            x[i] = rng_uniform() * scale;
            if (blk % 7 == 3) x[i] = 0.0f;
            if (blk % 7 == 4) x[i] = (float)((int)(rng_next() % 255) - 127) * 0.5f; /* halves after scaling by 1 */
        }
        x[128] = 127.0f; /* block 4: amax 127, id = 1, so its .5 values tie */
        for (int lv = 1; lv < (int)cpu_detect_level() + 1; lv++) {
            matmul_quantize_q8_0(x, a0, N);
            matmul_quantize_q8_0_at(x, b0, N, (cpu_level_t)lv);
            matmul_quantize_q8_1(x, a1, N);
            matmul_quantize_q8_1_at(x, b1, N, (cpu_level_t)lv);
            CHECK(memcmp(a0, b0, sizeof a0) == 0);
            CHECK(memcmp(a1, b1, sizeof a1) == 0);
        }
    }
}

/* The packed kernels' AVX-512 quantizer (sixteen blocks at a time, side rows alongside) writes the scalar
 * quantizer's bytes and mm_pack_side's rows; with a NaN or an infinity in a group of sixteen blocks it writes
 * what block-by-block calls write. 40 blocks: two groups of sixteen and eight single blocks. */
TEST(quantizer_side_avx512_sixteen_blocks) {
    if (cpu_detect_level() < CPU_LEVEL_AVX512) return;
    enum { N = 32 * 40, NB = N / 32 };
    static float x[N];
    static mm_block_q8_0_t ref[NB], got[NB], one[NB];
    static mm_pack_side_t sref[NB], sgot[NB], sone[NB];
    for (int rep = 0; rep < 24; rep++) {
        for (int i = 0; i < N; i++) {
            int blk = i / 32;
            float scale = blk % 5 == 0 ? 1e-6f : blk % 5 == 1 ? 3e4f : blk % 5 == 2 ? 1e-30f : 1.0f;
            x[i] = rng_uniform() * scale;
            if (blk % 7 == 3) x[i] = 0.0f;
            if (blk % 7 == 4) x[i] = (float)((int)(rng_next() % 255) - 127) * 0.5f;
        }
        x[128] = 127.0f;
        bool finite = rep < 16;
        if (!finite) x[(rng_next() % N)] = rep % 2 ? NAN : (rep % 4 == 0 ? INFINITY : -INFINITY);
        for (int32_t off = 128; off >= 8; off -= 120) {
            memset(got, 0x55, sizeof got), memset(sgot, 0x55, sizeof sgot);
            mm_quantize_q8_0_side_avx512(x, got, N, off, sgot);
            for (int b = 0; b < NB; b++) mm_quantize_q8_0_side_avx512(x + 32 * b, one + b, 32, off, sone + b);
            CHECK(memcmp(got, one, sizeof got) == 0);
            CHECK(memcmp(sgot, sone, sizeof sgot) == 0);
            if (finite) {
                matmul_quantize_q8_0(x, ref, N);
                mm_pack_side(ref, NB, off, sref);
                CHECK(memcmp(got, ref, sizeof got) == 0);
                CHECK(memcmp(sgot, sref, sizeof sgot) == 0);
            }
        }
    }
}

TEST(gemm_dispatch_rules) {
    /* the 32-element types have packed kernels (matmul_pack.h, test_pack.c); F32 and the K types do not */
    const uint32_t packed[5] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_IQ4_NL, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0};
    for (int i = 0; i < 5; i++) {
        mm_weight_t w = {.type = packed[i], .n_in = 576, .n_out = 20};
        CHECK(mm_pack_supports(&w));
    }
    mm_weight_t f = {.type = GGML_TYPE_F32, .n_in = 576, .n_out = 20}, k = {.type = GGML_TYPE_Q4_K, .n_in = 512, .n_out = 20};
    CHECK(!mm_pack_supports(&f));
    CHECK(!mm_pack_supports(&k));
    CHECK(matmul_scratch_bytes(576, 64) >= 64 * 18 * sizeof(mm_block_q8_1_t) + 64 * 18 * sizeof(mm_pack_side_t));
}


/* matmul_forward_n (q/k/v, gate/up: one quantization, one dispatch) equals
 * one matmul_forward per weight bit for bit, for 1, 16 and 21 tokens, every
 * level and 1-3 threads; weights of mixed types fall back to one call each. */
TEST(matmul_forward_n_equals_single_calls) {
    threadpool_t *pools[3] = {0};
    tl_err_t err = {0};
    for (int p = 0; p < 3; p++) CHECK(threadpool_new(&pools[p], p + 1, &err) == 0);
    const int64_t n_in = 576, outs_n[3] = {576, 192, 196};
    const uint32_t types[2] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_1};
    const int toks[3] = {1, 16, 21};
    for (int ti = 0; ti < 2; ti++) {
        uint8_t *wq[3];
        mm_weight_t w[3];
        size_t rb = (size_t)(n_in / MM_QK) * ggml_type_block_bytes(types[ti]);
        for (int k = 0; k < 3; k++) {
            /* the third weight is Q8_0 for the Q4_1 pass: mixed types */
            uint32_t ty = ti == 1 && k == 2 ? GGML_TYPE_Q8_0 : types[ti];
            size_t rbk = (size_t)(n_in / MM_QK) * ggml_type_block_bytes(ty);
            wq[k] = malloc(rbk * (size_t)outs_n[k]);
            fill_weight(ty, wq[k], outs_n[k], n_in);
            CHECK(matmul_weight_init(&w[k], "blk.0.attn_q.weight", ty, n_in, outs_n[k], wq[k], &err) == 0);
        }
        (void)rb;
        for (int tk = 0; tk < 3; tk++) {
            int n_tok = toks[tk];
            float *x = malloc(sizeof(float) * (size_t)(n_in * n_tok));
            for (int64_t i = 0; i < n_in * n_tok; i++) x[i] = rng_uniform() * (i % 7 == 0 ? 4.0f : 1.0f);
            size_t sb = matmul_scratch_bytes(n_in, n_tok);
            void *scratch = aligned_alloc(64, (sb + 63) & ~(size_t)63);
            float *got[3], *want[3];
            for (int k = 0; k < 3; k++) {
                got[k] = malloc(sizeof(float) * (size_t)(outs_n[k] * n_tok));
                want[k] = malloc(sizeof(float) * (size_t)(outs_n[k] * n_tok));
            }
            const mm_weight_t *ws[3] = {&w[0], &w[1], &w[2]};
            for (int lv = CPU_LEVEL_SCALAR; lv <= (int)cpu_detect_level(); lv++)
                for (int p = 0; p < 3; p++) {
                    mm_env_t env = {.pool = pools[p], .level = (cpu_level_t)lv, .scratch = scratch, .scratch_bytes = sb};
                    for (int k = 0; k < 3; k++) CHECK(matmul_forward(want[k], x, &w[k], n_tok, &env, &err) == 0);
                    for (int nw = 2; nw <= 3; nw++) {
                        CHECK(matmul_forward_n(got, x, ws, nw, n_tok, &env, &err) == 0);
                        for (int k = 0; k < nw; k++)
                            CHECK(!memcmp(got[k], want[k], sizeof(float) * (size_t)(outs_n[k] * n_tok)));
                    }
                }
            for (int k = 0; k < 3; k++) {
                free(got[k]);
                free(want[k]);
            }
            free(scratch);
            free(x);
        }
        for (int k = 0; k < 3; k++) free(wq[k]);
    }
    CHECK(matmul_forward_n(NULL, NULL, NULL, MM_MAX_MULTI + 1, 1, NULL, &err) == -1);
    for (int p = 0; p < 3; p++) threadpool_free(pools[p]);
}

/* The AMX path (mm_env_t.amx, Q8_0, n_out a multiple of 16) equals the Q8_0
 * definition mm_pack_dot_ref (the default kernels' numerics) bit for bit for every token count and thread
 * count; weights it does not take (n_out 20) keep the default kernels. */
TEST(amx_equals_definition) {
    if (!mm_amx_available()) {
        printf("  (no AMX-INT8 on this CPU: skipped)\n");
        return;
    }
    threadpool_t *pools[3] = {0};
    tl_err_t err = {0};
    for (int p = 0; p < 3; p++) CHECK(threadpool_new(&pools[p], p + 1, &err) == 0);
    const int64_t n_ins[3] = {64, 576, 1536 + 32 * 2}, n_out = 48;
    const int toks[6] = {1, 5, 16, 17, 21, 40};
    int bad = 0;
    for (int a = 0; a < 3; a++) {
        int64_t n_in = n_ins[a];
        size_t rb = (size_t)(n_in / MM_QK) * sizeof(mm_block_q8_0_t);
        uint8_t *wq = malloc(rb * (size_t)n_out);
        fill_weight(GGML_TYPE_Q8_0, wq, n_out, n_in);
        mm_weight_t w;
        CHECK(matmul_weight_init(&w, "blk.0.ffn_up.weight", GGML_TYPE_Q8_0, n_in, n_out, wq, &err) == 0);
        CHECK(mm_amx_supports(&w));
        for (int tk = 0; tk < 6; tk++) {
            int n_tok = toks[tk];
            float *x = malloc(sizeof(float) * (size_t)(n_in * n_tok)), *out = malloc(sizeof(float) * (size_t)(n_out * n_tok));
            for (int64_t i = 0; i < n_in * n_tok; i++) x[i] = rng_uniform() * (i % 7 == 0 ? 4.0f : 1.0f);
            mm_block_q8_0_t *act = malloc(rb * (size_t)n_tok);
            for (int t = 0; t < n_tok; t++) matmul_quantize_q8_0_at(x + t * n_in, act + t * (n_in / MM_QK), n_in, CPU_LEVEL_SCALAR);
            size_t sb = matmul_scratch_bytes(n_in, n_tok);
            void *scratch = aligned_alloc(64, (sb + 63) & ~(size_t)63);
            for (int p = 0; p < 3; p++) {
                mm_env_t env = {.pool = pools[p], .level = CPU_LEVEL_AVX512, .scratch = scratch, .scratch_bytes = sb, .amx = true};
                CHECK(matmul_forward(out, x, &w, n_tok, &env, &err) == 0);
                for (int t = 0; t < n_tok; t++)
                    for (int64_t r = 0; r < n_out; r++) {
                        float want = mm_pack_dot_ref(n_in, (const mm_block_q8_0_t *)(wq + r * rb), act + t * (n_in / MM_QK));
                        if (memcmp(&out[t * n_out + r], &want, sizeof want) && bad++ < 3)
                            printf("  amx n_in %lld tokens %d threads %d: out[%d][%lld] %.9g != %.9g\n", (long long)n_in,
                                   n_tok, p + 1, t, (long long)r, out[t * n_out + r], want);
                    }
            }
            free(x);
            free(out);
            free(act);
            free(scratch);
        }
        free(wq);
    }
    CHECK_EQ_INT(bad, 0);
    mm_weight_t odd = {.type = GGML_TYPE_Q8_0, .n_in = 576, .n_out = 20};
    CHECK(!mm_amx_supports(&odd));
    for (int p = 0; p < 3; p++) threadpool_free(pools[p]);
}

int main(void) {
    RUN(gemm_equals_single_row_kernels);
    RUN(gemm_model_shapes);
    RUN(gemm_k_types_equal_single_row_kernels);
    RUN(quantizers_simd_bytes_equal_scalar);
    RUN(quantizer_side_avx512_sixteen_blocks);
    RUN(gemm_dispatch_rules);
    RUN(matmul_forward_n_equals_single_calls);
    RUN(amx_equals_definition);
    return tl_test_summary("test_gemm");
}
