/* Packed weights (quant/matmul_pack.h): matmul_forward over the packed copy
 * of Q8_0, Q4_0, IQ4_NL, Q4_1 and Q5_0 weights, at every SIMD level the CPU has, and over
 * the plain rows (no pack), equals the scalar definition (mm_pack_dot_ref,
 * mm_ext_dot at the scalar level) bit for bit, for token counts around
 * the tile sizes, row counts that are not a multiple of 16, one-block rows,
 * random weight bytes (including -128) and 1-3 threads. The definition itself
 * is checked against exact integer block sums accumulated in double. */
#include <stdlib.h>

#include "core/threadpool.h"
#include "quant/matmul.h"
#include "quant/matmul_ext.h"
#include "quant/matmul_pack.h"
#include "quant/types.h"
#include "tl_test.h"

TL_TEST_RNG(77u)

static void fill_q8_0(uint8_t *w, int64_t n_rows, int64_t n_in) {
    size_t nb = (size_t)(n_rows * (n_in / MM_QK));
    mm_block_q8_0_t *b = (mm_block_q8_0_t *)w;
    for (size_t i = 0; i < nb; i++) {
        b[i].d = fp32_to_fp16(0.001f + 0.05f * (rng_uniform() + 1.0f));
        for (int j = 0; j < MM_QK; j++) b[i].qs[j] = (int8_t)rng_next();
    }
    if (nb) b[0].qs[0] = -128, b[0].qs[1] = 127;
}

/* Random bytes, then a sane fp16 scale at the start of every block. */
static void fill_any(uint32_t type, uint8_t *w, int64_t n_rows, int64_t n_in) {
    if (type == GGML_TYPE_Q8_0) {
        fill_q8_0(w, n_rows, n_in);
        return;
    }
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

static float def_dot(uint32_t type, int64_t n_in, const void *w, const void *a) {
    if (type == GGML_TYPE_Q8_0) return mm_pack_dot_ref(n_in, w, a);
    if (type == GGML_TYPE_Q4_1) return matmul_dot_q4_1_q8_1(n_in, w, a, CPU_LEVEL_SCALAR);
    return mm_ext_dot(type, n_in, w, a, CPU_LEVEL_SCALAR);
}

static int check_case(uint32_t type, int64_t n_in, int64_t n_out, int n_tok, threadpool_t **pools) {
    tl_err_t err = {0};
    int64_t nb = n_in / MM_QK;
    size_t rb = (size_t)nb * ggml_type_block_bytes(type);
    size_t arow = (size_t)nb * (type == GGML_TYPE_Q4_1 ? sizeof(mm_block_q8_1_t) : sizeof(mm_block_q8_0_t));
    uint8_t *wq = malloc(rb * (size_t)n_out);
    float *x = malloc(sizeof(float) * (size_t)(n_in * n_tok));
    float *out = malloc(sizeof(float) * (size_t)(n_out * n_tok));
    char *act = malloc(arow * (size_t)n_tok);
    size_t sb = matmul_scratch_bytes(n_in, n_tok);
    void *scratch = aligned_alloc(64, (sb + 63) & ~(size_t)63);
    fill_any(type, wq, n_out, n_in);
    for (int64_t i = 0; i < n_in * n_tok; i++) x[i] = rng_uniform() * (i % 5 == 0 ? 8.0f : 1.0f);
    for (int t = 0; t < n_tok; t++) {
        if (type == GGML_TYPE_Q4_1) matmul_quantize_q8_1(x + t * n_in, (mm_block_q8_1_t *)(act + t * arow), n_in);
        else matmul_quantize_q8_0(x + t * n_in, (mm_block_q8_0_t *)(act + t * arow), n_in);
    }
    mm_weight_t w;
    CHECK(matmul_weight_init(&w, "blk.0.attn_q.weight", type, n_in, n_out, wq, &err) == 0);
    CHECK(w.pack == NULL);
    void *pk = mm_pack_alloc(&w);
    CHECK(pk != NULL);
    int bad = 0;
    for (int packed = 0; packed < 2; packed++) {
        w.pack = packed ? pk : NULL;
        for (int lv = 0; lv <= (int)cpu_detect_level(); lv++)
            for (int p = 0; p < 3; p++) {
                mm_env_t env = {.pool = pools[p], .level = (cpu_level_t)lv, .scratch = scratch, .scratch_bytes = sb};
                memset(out, 0xff, sizeof(float) * (size_t)(n_out * n_tok));
                CHECK(matmul_forward(out, x, &w, n_tok, &env, &err) == 0);
                for (int t = 0; t < n_tok; t++)
                    for (int64_t r = 0; r < n_out; r++) {
                        float want = def_dot(type, n_in, wq + r * rb, act + t * arow);
                        if (memcmp(&out[t * n_out + r], &want, sizeof want) && bad++ < 3)
                            printf("  %s %s %s n_in %lld n_out %lld tokens %d threads %d: out[%d][%lld] %.9g != %.9g\n",
                                   ggml_type_name(type), packed ? "packed" : "plain", cpu_level_name((cpu_level_t)lv), (long long)n_in,
                                   (long long)n_out, n_tok, p + 1, t, (long long)r, out[t * n_out + r], want);
                    }
            }
    }
    free(pk);
    free(wq);
    free(x);
    free(out);
    free(act);
    free(scratch);
    return bad;
}

TEST(packed_and_plain_equal_definition_at_every_level) {
    threadpool_t *pools[3] = {0};
    tl_err_t err = {0};
    for (int p = 0; p < 3; p++) CHECK(threadpool_new(&pools[p], p + 1, &err) == 0);
    const int64_t n_ins[4] = {32, 96, 576, 1536};
    const int64_t n_outs[5] = {1, 16, 17, 40, 192};
    const int toks[9] = {1, 2, 3, 5, 7, 8, 9, 17, 21};
    const uint32_t types[5] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_IQ4_NL, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0};
    int bad = 0;
    for (int ty = 0; ty < 5; ty++) {
        for (int a = 0; a < 4; a++)
            for (int o = 0; o < 5; o++)
                for (int k = 0; k < 9; k++) {
                    if (n_ins[a] == 1536 && n_outs[o] == 192 && toks[k] > 3) continue; /* keep the test quick */
                    bad += check_case(types[ty], n_ins[a], n_outs[o], toks[k], pools);
                }
        bad += check_case(types[ty], 576, 48, 64, pools);
    }
    CHECK_EQ_INT(bad, 0);
    for (int p = 0; p < 3; p++) threadpool_free(pools[p]);
}

/* acc = fmaf(d_w * d_a, isum, acc) per block: isum exact, so each step
 * matches the same step done in double and rounded to fp32 once per fma. */
TEST(definition_is_exact_block_sums) {
    int bad = 0;
    for (int rep = 0; rep < 200; rep++) {
        int64_t nb = 1 + rep % 20, n_in = nb * MM_QK;
        mm_block_q8_0_t w[20], a[20];
        fill_q8_0((uint8_t *)w, 1, n_in);
        fill_q8_0((uint8_t *)a, 1, n_in);
        float acc = 0.0f;
        for (int64_t b = 0; b < nb; b++) {
            long isum = 0;
            for (int j = 0; j < MM_QK; j++) isum += (long)w[b].qs[j] * a[b].qs[j];
            float d = fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d);
            acc = (float)((double)d * (double)isum + (double)acc); /* exact product, one rounding */
        }
        float got = mm_pack_dot_ref(n_in, w, a);
        if (memcmp(&got, &acc, sizeof acc) && bad++ < 3) printf("  nb %lld: %.9g != %.9g\n", (long long)nb, got, acc);
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(pack_layout_and_rules) {
    tl_err_t err = {0};
    enum { NIN = 64, NOUT = 18 };
    static uint8_t wq[NOUT * (NIN / MM_QK) * sizeof(mm_block_q8_0_t)];
    fill_q8_0(wq, NOUT, NIN);
    mm_weight_t w;
    CHECK(matmul_weight_init(&w, "t", GGML_TYPE_Q8_0, NIN, NOUT, wq, &err) == 0);
    CHECK(mm_pack_supports(&w));
    CHECK_EQ_INT(mm_pack_bytes(&w), 2 * 2 * MM_PACK_BLOCK_BYTES); /* 2 groups (18 rows) x 2 blocks */
    uint8_t *pk = mm_pack_alloc(&w);
    CHECK(pk != NULL);
    if (pk) {
        /* group 1, block 1, row 17 (i = 1): scale and element 4k + j at chunk k, bytes 4i + j, as w + 128 */
        const mm_block_q8_0_t *src = (const mm_block_q8_0_t *)(wq + 17 * w.row_bytes) + 1;
        const uint8_t *blk = pk + (1 * 2 + 1) * MM_PACK_BLOCK_BYTES;
        float d;
        memcpy(&d, blk + 4 * 1, 4);
        CHECK(d == fp16_to_fp32(src->d));
        CHECK_EQ_INT(blk[64 + 64 * 3 + 4 * 1 + 2], (uint8_t)(src->qs[4 * 3 + 2] + 128));
        /* rows past n_out: scale 0, value 0 (+ 128) */
        memcpy(&d, blk + 4 * 5, 4);
        CHECK(d == 0.0f);
        CHECK_EQ_INT(blk[64 + 4 * 5], 128);
    }
    free(pk);
    /* Q4_0: chunk kk byte 4i + j = nibble of element 8kk + j | nibble of element 8kk + 4 + j << 4 */
    static uint8_t w4[NOUT * (NIN / MM_QK) * 18];
    fill_any(GGML_TYPE_Q4_0, w4, NOUT, NIN);
    mm_weight_t w4w;
    CHECK(matmul_weight_init(&w4w, "t", GGML_TYPE_Q4_0, NIN, NOUT, w4, &err) == 0);
    CHECK_EQ_INT(mm_pack_bytes(&w4w), 2 * 2 * MM_PACK_BLOCK_BYTES_4);
    CHECK_EQ_INT(mm_pack_offset(GGML_TYPE_Q4_0), 8);
    CHECK_EQ_INT(mm_pack_offset(GGML_TYPE_IQ4_NL), 128);
    CHECK_EQ_INT(mm_pack_offset(GGML_TYPE_Q4_1), 0);
    uint8_t *p4 = mm_pack_alloc(&w4w);
    CHECK(p4 != NULL);
    if (p4) {
        const uint8_t *src = w4 + 17 * w4w.row_bytes + 18 + 2; /* row 17, block 1: nibbles */
        const uint8_t *blk = p4 + (1 * 2 + 1) * MM_PACK_BLOCK_BYTES_4;
        /* kk = 2, j = 1: elements 17 (high nibble of byte 1) and 21 (high nibble of byte 5) */
        CHECK_EQ_INT(blk[64 + 64 * 2 + 4 * 1 + 1], (src[1] >> 4) | (src[5] >> 4) << 4);
        CHECK_EQ_INT(blk[64 + 64 * 2 + 4 * 5 + 1], 0x88); /* rows past n_out: value 0 */
    }
    free(p4);
    mm_weight_t f = w;
    f.type = GGML_TYPE_F32;
    CHECK(!mm_pack_supports(&f));
    CHECK(mm_pack_alloc(&f) == NULL);
}

int main(void) {
    RUN(packed_and_plain_equal_definition_at_every_level);
    RUN(definition_is_exact_block_sums);
    RUN(pack_layout_and_rules);
    return tl_test_summary("test_pack");
}
