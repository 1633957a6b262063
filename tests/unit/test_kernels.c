/* Matmul building blocks and forward-pass kernels against naive references
 * computed here in double precision, and every SIMD level against the scalar
 * twin. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/cpu.h"
#include "core/threadpool.h"
#include "model/kernels.h"
#include "model/vexp.h"
#include "quant/matmul.h"
#include "quant/types.h"
#include "tl_test.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double urand(void) { /* [0, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static float frand(float lo, float hi) { return lo + (hi - lo) * (float)urand(); }

static void random_q4_1(mm_block_q4_1_t *b, int nb) {
    for (int i = 0; i < nb; i++) {
        b[i].d = fp32_to_fp16(frand(0.001f, 0.05f));
        b[i].m = fp32_to_fp16(frand(-0.4f, 0.0f));
        for (int j = 0; j < 16; j++) b[i].qs[j] = (uint8_t)(urand() * 256);
    }
}
static void random_q8_0(mm_block_q8_0_t *b, int nb) {
    for (int i = 0; i < nb; i++) {
        b[i].d = fp32_to_fp16(frand(0.001f, 0.02f));
        for (int j = 0; j < 32; j++) b[i].qs[j] = (int8_t)(-127 + (int)(urand() * 255));
    }
}

static int n_levels(void) { return (int)cpu_detect_level() + 1; }

TEST(quantize_q8_1_matches_definition) {
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = frand(-3.0f, 3.0f);
    x[5] = 4.5f; /* block 0 max */
    mm_block_q8_1_t y[2];
    matmul_quantize_q8_1(x, y, 64);
    CHECK_NEAR(fp16_to_fp32(y[0].d), 4.5 / 127.0, 1e-4);
    CHECK_EQ_INT(y[0].qs[5], 127);
    for (int b = 0; b < 2; b++) {
        float d = fp16_to_fp32(y[b].d);
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            CHECK(fabs(x[b * 32 + j] - d * y[b].qs[j]) <= 0.51 * d + 1e-3);
            sum += y[b].qs[j];
        }
        CHECK_NEAR(fp16_to_fp32(y[b].s), d * sum, fabs(d * sum) * 1e-3 + 1e-3);
    }
    float z[32] = {0};
    matmul_quantize_q8_1(z, y, 32);
    CHECK_EQ_INT(y[0].d, 0);
    CHECK_EQ_INT(y[0].qs[0], 0);
}

TEST(quantize_q8_0_rounds_half_even) {
    float x[32] = {0};
    x[0] = 127.0f; /* d = 1 */
    x[1] = 2.5f;
    x[2] = -3.5f;
    x[3] = 0.5f;
    mm_block_q8_0_t y;
    matmul_quantize_q8_0(x, &y, 32);
    CHECK_NEAR(fp16_to_fp32(y.d), 1.0, 0);
    CHECK_EQ_INT(y.qs[0], 127);
    CHECK_EQ_INT(y.qs[1], 2);
    CHECK_EQ_INT(y.qs[2], -4);
    CHECK_EQ_INT(y.qs[3], 0);
}

/* Naive reference: dequantize both sides and dot in double. */
static double ref_q4_1_q8_1(int n, const mm_block_q4_1_t *w, const mm_block_q8_1_t *a) {
    float *wf = malloc(sizeof(float) * (size_t)n);
    tl_err_t err;
    dequantize_row(GGML_TYPE_Q4_1, w, wf, n, &err);
    double s = 0;
    for (int i = 0; i < n; i++) {
        const mm_block_q8_1_t *b = &a[i / 32];
        s += (double)wf[i] * fp16_to_fp32(b->d) * b->qs[i % 32];
    }
    /* the Q8_1 sum term uses the stored s rather than d * sum(q): correct for that */
    for (int b = 0; b < n / 32; b++) {
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += a[b].qs[j];
        s += fp16_to_fp32(w[b].m) * (fp16_to_fp32(a[b].s) - (double)fp16_to_fp32(a[b].d) * sum);
    }
    free(wf);
    return s;
}

TEST(dot_q4_1_q8_1_all_levels) {
    for (int nb = 1; nb <= 49; nb += 3) {
        int n = nb * 32;
        mm_block_q4_1_t *w = malloc(sizeof *w * (size_t)nb);
        mm_block_q8_1_t *a = malloc(sizeof *a * (size_t)nb);
        float *x = malloc(sizeof(float) * (size_t)n);
        random_q4_1(w, nb);
        for (int i = 0; i < n; i++) x[i] = frand(-2.0f, 2.0f);
        matmul_quantize_q8_1(x, a, n);
        double ref = ref_q4_1_q8_1(n, w, a);
        float scalar = matmul_dot_q4_1_q8_1(n, w, a, CPU_LEVEL_SCALAR);
        CHECK_NEAR(scalar, ref, 1e-4 * (fabs(ref) + nb));
        for (int lv = 1; lv < n_levels(); lv++)
            CHECK_NEAR(matmul_dot_q4_1_q8_1(n, w, a, (cpu_level_t)lv), scalar, 1e-5 * (fabs(scalar) + nb));
        free(w);
        free(a);
        free(x);
    }
}

TEST(dot_q8_0_q8_0_all_levels) {
    for (int nb = 1; nb <= 49; nb += 3) {
        int n = nb * 32;
        mm_block_q8_0_t *w = malloc(sizeof *w * (size_t)nb);
        mm_block_q8_0_t *a = malloc(sizeof *a * (size_t)nb);
        random_q8_0(w, nb);
        random_q8_0(a, nb);
        w[0].qs[0] = -127; /* the sign trick must keep extreme products */
        a[0].qs[0] = -127;
        double ref = 0;
        for (int b = 0; b < nb; b++)
            for (int j = 0; j < 32; j++)
                ref += (double)fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d) * w[b].qs[j] * a[b].qs[j];
        float scalar = matmul_dot_q8_0_q8_0(n, w, a, CPU_LEVEL_SCALAR);
        CHECK_NEAR(scalar, ref, 1e-5 * (fabs(ref) + nb));
        for (int lv = 1; lv < n_levels(); lv++)
            CHECK_NEAR(matmul_dot_q8_0_q8_0(n, w, a, (cpu_level_t)lv), scalar, 1e-5 * (fabs(scalar) + nb));
        free(w);
        free(a);
    }
}

TEST(dot_f32_all_levels) {
    for (int n = 1; n <= 200; n += 7) {
        float *w = malloc(sizeof(float) * (size_t)n), *a = malloc(sizeof(float) * (size_t)n);
        double ref = 0;
        for (int i = 0; i < n; i++) {
            w[i] = frand(-1, 1);
            a[i] = frand(-1, 1);
            ref += (double)w[i] * a[i];
        }
        for (int lv = 0; lv < n_levels(); lv++)
            CHECK_NEAR(matmul_dot_f32(n, w, a, (cpu_level_t)lv), ref, 1e-5 * n);
        free(w);
        free(a);
    }
}

/* matmul_forward: every output equals the row dot product; bit-identical with 1 and 3 threads. */
static void check_matmul(uint32_t type) {
    int n_in = 96, n_out = 37, n_tok = 9; /* 9 tokens: two four-token tiles (AVX-512) and a single */
    size_t rb = type == GGML_TYPE_Q4_1 ? 3 * sizeof(mm_block_q4_1_t)
              : type == GGML_TYPE_Q8_0 ? 3 * sizeof(mm_block_q8_0_t) : (size_t)n_in * 4;
    uint8_t *wd = malloc(rb * (size_t)n_out);
    for (int r = 0; r < n_out; r++) {
        void *row = wd + (size_t)r * rb;
        if (type == GGML_TYPE_Q4_1) random_q4_1(row, 3);
        else if (type == GGML_TYPE_Q8_0) random_q8_0(row, 3);
        else for (int i = 0; i < n_in; i++) ((float *)row)[i] = frand(-1, 1);
    }
    float *x = malloc(sizeof(float) * (size_t)(n_in * n_tok));
    for (int i = 0; i < n_in * n_tok; i++) x[i] = frand(-2, 2);
    mm_weight_t w;
    tl_err_t err;
    CHECK_EQ_INT(matmul_weight_init(&w, "t", type, n_in, n_out, wd, &err), 0);
    CHECK_EQ_INT(w.row_bytes, rb);
    size_t sb = matmul_scratch_bytes(n_in, n_tok);
    void *scratch = aligned_alloc(64, (sb + 63) & ~(size_t)63);
    float *out1 = malloc(sizeof(float) * (size_t)(n_out * n_tok)), *out3 = malloc(sizeof(float) * (size_t)(n_out * n_tok));
    threadpool_t *p3;
    threadpool_new(&p3, 3, &err);
    for (int lv = 0; lv < n_levels(); lv++) {
        mm_env_t e1 = {.pool = NULL, .level = (cpu_level_t)lv, .scratch = scratch, .scratch_bytes = sb};
        mm_env_t e3 = e1;
        e3.pool = p3;
        CHECK_EQ_INT(matmul_forward(out1, x, &w, n_tok, &e1, &err), 0);
        CHECK_EQ_INT(matmul_forward(out3, x, &w, n_tok, &e3, &err), 0);
        CHECK(memcmp(out1, out3, sizeof(float) * (size_t)(n_out * n_tok)) == 0);
        /* reference: quantize the token row and call the dot directly */
        for (int t = 0; t < n_tok; t++) {
            mm_block_q8_1_t a1[3];
            mm_block_q8_0_t a0[3];
            matmul_quantize_q8_1(x + t * n_in, a1, n_in);
            matmul_quantize_q8_0(x + t * n_in, a0, n_in);
            for (int r = 0; r < n_out; r++) {
                const void *row = wd + (size_t)r * rb;
                float want = type == GGML_TYPE_Q4_1 ? matmul_dot_q4_1_q8_1(n_in, row, a1, (cpu_level_t)lv)
                           : type == GGML_TYPE_Q8_0 ? matmul_dot_q8_0_q8_0(n_in, row, a0, (cpu_level_t)lv)
                                                    : matmul_dot_f32(n_in, row, x + t * n_in, (cpu_level_t)lv);
                CHECK(out1[t * n_out + r] == want);
            }
        }
    }
    mm_env_t small = {.pool = NULL, .level = CPU_LEVEL_SCALAR, .scratch = scratch, .scratch_bytes = 10};
    if (type != GGML_TYPE_F32) {
        CHECK_EQ_INT(matmul_forward(out1, x, &w, n_tok, &small, &err), -1);
        CHECK_CONTAINS(err.msg, "scratch");
    }
    threadpool_free(p3);
    free(wd);
    free(x);
    free(scratch);
    free(out1);
    free(out3);
}

TEST(matmul_q4_1) { check_matmul(GGML_TYPE_Q4_1); }
TEST(matmul_q8_0) { check_matmul(GGML_TYPE_Q8_0); }
TEST(matmul_f32) { check_matmul(GGML_TYPE_F32); }

TEST(matmul_rejects_bad_weights) {
    mm_weight_t w;
    tl_err_t err;
    CHECK_EQ_INT(matmul_weight_init(&w, "blk.0.attn_q.weight", GGML_TYPE_Q2_K, 256, 4, NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "blk.0.attn_q.weight");
    CHECK_EQ_INT(matmul_weight_init(&w, "blk.0.attn_k.weight", GGML_TYPE_Q4_K, 576, 4, NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "blk.0.attn_k.weight");
    CHECK_EQ_INT(matmul_weight_init(&w, "blk.1.ffn_up.weight", GGML_TYPE_Q4_1, 48, 4, NULL, &err), -1);
    CHECK_CONTAINS(err.msg, "blk.1.ffn_up.weight");
}

TEST(rmsnorm_vs_naive) {
    float x[48], w[48], y[48];
    for (int i = 0; i < 48; i++) {
        x[i] = frand(-3, 3);
        w[i] = frand(0.5f, 1.5f);
    }
    rmsnorm_forward(y, x, w, 48, 1e-5f);
    double ss = 0;
    for (int i = 0; i < 48; i++) ss += (double)x[i] * x[i];
    double sc = 1.0 / sqrt(ss / 48 + 1e-5);
    for (int i = 0; i < 48; i++) CHECK_NEAR(y[i], x[i] * sc * w[i], 1e-5);
}

TEST(rope_vs_naive) {
    int hd = 16, nh = 3, n_rot = 12;
    float base = 10000.0f;
    for (int pos = 0; pos < 70; pos += 23) {
        float x[48], y[48], cs[16];
        for (int i = 0; i < 48; i++) x[i] = y[i] = frand(-1, 1);
        rope_table(cs, pos, n_rot, base);
        rope_forward(y, nh, hd, n_rot, cs, 0);
        for (int h = 0; h < nh; h++) {
            for (int i = 0; i < n_rot / 2; i++) {
                double th = pos * pow(base, -2.0 * i / n_rot);
                double a = x[h * hd + 2 * i], b = x[h * hd + 2 * i + 1];
                CHECK_NEAR(y[h * hd + 2 * i], a * cos(th) - b * sin(th), 2e-4);
                CHECK_NEAR(y[h * hd + 2 * i + 1], a * sin(th) + b * cos(th), 2e-4);
            }
            for (int i = n_rot; i < hd; i++) CHECK(y[h * hd + i] == x[h * hd + i]); /* beyond n_rot untouched */
        }
        /* neox pairs i with i + n_rot/2 */
        for (int i = 0; i < 48; i++) y[i] = x[i];
        rope_forward(y, nh, hd, n_rot, cs, 1);
        for (int i = 0; i < n_rot / 2; i++) {
            double th = pos * pow(base, -2.0 * i / n_rot);
            CHECK_NEAR(y[i], x[i] * cos(th) - x[i + n_rot / 2] * sin(th), 2e-4);
        }
    }
}

TEST(softmax_and_swiglu) {
    float x[5] = {1, 2, 3, -1000, 0.5f}, e[5];
    double s = 0;
    for (int i = 0; i < 5; i++) s += exp(x[i]);
    for (int i = 0; i < 5; i++) e[i] = (float)(exp(x[i]) / s);
    softmax_forward(x, 5);
    for (int i = 0; i < 5; i++) CHECK_NEAR(x[i], e[i], 1e-6);
    float g[3] = {-2, 0, 3}, u[3] = {1, 5, -2};
    swiglu_forward(g, u, 3);
    CHECK_NEAR(g[0], -2 / (1 + exp(2.0)), 1e-6);
    CHECK_NEAR(g[1], 0, 0);
    CHECK_NEAR(g[2], 3 / (1 + exp(-3.0)) * -2, 1e-5);
}

static double ulp_of(float v) {
    float a = fabsf(v);
    return (double)nextafterf(a, INFINITY) - (double)a;
}

VEXP_AVX2 static void vexp_all_256(const float *x, float *y, int n) {
    for (int i = 0; i < n; i += 8) _mm256_storeu_ps(y + i, vexp_256(_mm256_loadu_ps(x + i)));
}
VEXP_AVX512 static void vexp_all_512(const float *x, float *y, int n) {
    for (int i = 0; i < n; i += 16) _mm512_storeu_ps(y + i, vexp_512(_mm512_loadu_ps(x + i)));
}

/* vexp_ref within 2 ulp of exp over the range it does not clamp; the AVX2 and
 * AVX-512 forms give its bits for ordinary and edge inputs (NaN, infinities,
 * clamped extremes, results in the subnormal range); swiglu_forward and
 * softmax_forward (which take the CPU's best level) give the scalar formula's bits. */
TEST(vexp_accuracy_and_levels_agree) {
    enum { N = 4096 };
    static float x[N], ref[N], got[N];
    double worst = 0;
    for (int i = 0; i < N; i++) {
        x[i] = (float)(-87.0 + 175.0 * urand());
        if (i < 64) x[i] = (float)(urand() * 2 - 1) * 1e-3f;
        double e = exp((double)x[i]);
        double err = fabs((double)vexp_ref(x[i]) - e) / ulp_of((float)e);
        if (err > worst) worst = err;
    }
    CHECK(worst <= 2.0);
    const float edge[16] = {NAN, INFINITY, -INFINITY, 1000.0f, -1000.0f, 88.5f, -87.5f, -87.0f,
                            88.3f, 0.0f, -0.0f, 1e-30f, -1e-30f, 0.5f, -0.34657359f, 0.34657359f};
    for (int i = 0; i < 16; i++) x[i] = edge[i];
    for (int i = 0; i < N; i++) ref[i] = vexp_ref(x[i]);
    CHECK(isnan(ref[0]) && ref[1] > 1e38f && ref[2] >= 0 && ref[2] < 1e-37f && ref[9] == 1.0f);
    if (cpu_detect_level() >= CPU_LEVEL_AVX2) {
        vexp_all_256(x, got, N);
        CHECK(memcmp(got, ref, sizeof ref) == 0);
    }
    if (cpu_detect_level() >= CPU_LEVEL_AVX512) {
        vexp_all_512(x, got, N);
        CHECK(memcmp(got, ref, sizeof ref) == 0);
    }
    /* swiglu: 37 elements (a SIMD body and a tail) */
    float g[37], u[37], want[37];
    for (int i = 0; i < 37; i++) {
        g[i] = (float)(urand() * 20 - 10), u[i] = (float)(urand() * 4 - 2);
        want[i] = g[i] / (1.0f + vexp_ref(-g[i])) * u[i];
    }
    swiglu_forward(g, u, 37);
    CHECK(memcmp(g, want, sizeof want) == 0);
    float s[37];
    double sum = 0;
    float mx = -INFINITY;
    for (int i = 0; i < 37; i++) s[i] = (float)(urand() * 30 - 15), mx = s[i] > mx ? s[i] : mx;
    for (int i = 0; i < 37; i++) want[i] = vexp_ref(s[i] - mx), sum += want[i];
    for (int i = 0; i < 37; i++) want[i] *= (float)(1.0 / sum);
    softmax_forward(s, 37);
    CHECK(memcmp(s, want, sizeof want) == 0);
}

/* rmsnorm_scale (the CPU's best level) equals its definition, 8 interleaved
 * double sums in a fixed tree, bit for bit, for lengths around the SIMD width. */
TEST(rmsnorm_scale_is_its_definition) {
    const int ns[6] = {1, 7, 8, 9, 576, 1537};
    static float x[1537];
    for (int c = 0; c < 6; c++) {
        int n = ns[c];
        for (int i = 0; i < n; i++) x[i] = (float)(urand() * 6 - 3) * (i % 11 == 0 ? 50.0f : 1.0f);
        double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int i = 0; i < n; i++) a[i % 8] += (double)x[i] * (double)x[i];
        double ss = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
        float want = 1.0f / sqrtf((float)(ss / n) + 1e-5f), got = rmsnorm_scale(x, n, 1e-5f);
        CHECK(memcmp(&want, &got, sizeof want) == 0);
    }
}

TEST(attention_vs_naive) {
    int hd = 8, n_kv = 6;
    long stride = 24; /* rows interleave three kv heads */
    float q[8], k[6 * 24], v[6 * 24], out[8], scores[6];
    for (int i = 0; i < 8; i++) q[i] = frand(-1, 1);
    for (int i = 0; i < 6 * 24; i++) {
        k[i] = frand(-1, 1);
        v[i] = frand(-1, 1);
    }
    int head = 1;
    float scale = 1.0f / sqrtf((float)hd);
    for (int lv = 0; lv < 2 * n_levels(); lv++) {
        int r16 = lv >= n_levels(); /* second round: fp16-rounded probabilities */
        attention_forward(out, q, k + head * hd, v + head * hd, n_kv, hd, stride, scale, scores, r16,
                          (cpu_level_t)(lv % n_levels()));
        double sc[6], mx = -1e30, sum = 0;
        for (int p = 0; p < n_kv; p++) {
            double d = 0;
            for (int i = 0; i < hd; i++) d += (double)q[i] * k[p * stride + head * hd + i];
            sc[p] = d * scale;
            if (sc[p] > mx) mx = sc[p];
        }
        for (int p = 0; p < n_kv; p++) sum += (sc[p] = exp(sc[p] - mx));
        for (int i = 0; i < hd; i++) {
            double o = 0;
            for (int p = 0; p < n_kv; p++) o += sc[p] / sum * v[p * stride + head * hd + i];
            CHECK_NEAR(out[i], o, r16 ? 2e-3 : 1e-5);
        }
        if (r16)
            for (int p = 0; p < n_kv; p++) CHECK(scores[p] == fp16_to_fp32(fp32_to_fp16(scores[p])));
    }
}


/* round_fp16_forward at each level equals fp16_to_fp32(fp32_to_fp16(x)) bit
 * for bit: normal, subnormal, overflowing, halfway and signed-zero values. */
TEST(round_fp16_all_levels) {
    enum { N = 4099 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) {
        float u = (float)(2.0 * urand() - 1.0);
        switch (i % 6) {
        case 0: x[i] = u; break;
        case 1: x[i] = u * 1e-6f; break;  /* fp16 subnormals */
        case 2: x[i] = u * 1e5f; break;   /* beyond fp16's range */
        case 3: x[i] = u * 1e-9f; break;  /* underflow to zero */
        case 4: x[i] = (float)(i % 2048) * (1.0f / 2048) + 1.0f / 4096; break; /* halfway between fp16 values */
        default: x[i] = i % 12 == 5 ? -0.0f : u * 65504.0f; break;
        }
    }
    for (int lv = CPU_LEVEL_SCALAR; lv <= (int)cpu_detect_level(); lv++) {
        memcpy(y, x, sizeof(float) * N);
        round_fp16_forward(y, N, (cpu_level_t)lv);
        int bad = 0;
        for (int i = 0; i < N; i++) {
            float want = fp16_to_fp32(fp32_to_fp16(x[i]));
            bad += memcmp(&want, &y[i], sizeof want) != 0;
        }
        CHECK_EQ_INT(bad, 0);
    }
    free(x);
    free(y);
}

/* attention_v_sum at each level equals the plain loop bit for bit: rows by
 * stride and by index list, from zero and accumulating, head sizes 64 and 48
 * (SIMD) and 40 (the plain loop at every level). */
TEST(attention_v_sum_all_levels) {
    const int hds[3] = {64, 48, 40};
    enum { NR = 37 };
    long stride = 3 * 64;
    float *v = malloc(sizeof(float) * NR * 3 * 64), s[NR], ref[64], got[64];
    int idx[NR];
    for (int i = 0; i < NR * 3 * 64; i++) v[i] = (float)(2.0 * urand() - 1.0);
    for (int p = 0; p < NR; p++) {
        s[p] = fp16_to_fp32(fp32_to_fp16((float)urand() / NR));
        idx[p] = (p * 7) % NR;
    }
    for (int h = 0; h < 3; h++) {
        int hd = hds[h];
        for (int mode = 0; mode < 2; mode++) {
            const int *ix = mode ? idx : NULL;
            /* reference: the plain loop over all rows; the kernel: 13 rows from zero, then 24 more accumulated */
            memset(ref, 0, sizeof ref);
            for (int p = 0; p < NR; p++) {
                const float *vp = v + 64 + (ix ? ix[p] : p) * stride;
                for (int d = 0; d < hd; d++) ref[d] += s[p] * vp[d];
            }
            for (int lv = CPU_LEVEL_SCALAR; lv <= (int)cpu_detect_level(); lv++) {
                for (int d = 0; d < 64; d++) got[d] = 99.0f;
                const float *v2 = ix ? v + 64 : v + 64 + 13 * stride; /* by stride: the later rows start at row 13 */
                attention_v_sum(got, s, 13, v + 64, stride, ix, 0, hd, (cpu_level_t)lv);
                attention_v_sum(got, s + 13, NR - 13, v2, stride, ix ? ix + 13 : NULL, 1, hd, (cpu_level_t)lv);
                CHECK(!memcmp(got, ref, sizeof(float) * (size_t)hd));
                float one[64];
                attention_v_sum(one, s, NR, v + 64, stride, ix, 0, hd, (cpu_level_t)lv);
                CHECK(!memcmp(one, ref, sizeof(float) * (size_t)hd));
            }
        }
    }
    free(v);
}

/* attention_scores at each level equals scale * matmul_dot_f32 at that level
 * bit for bit: row counts around the 16-row block, rows by stride and by
 * index list, head sizes 32-128 (the blocked AVX-512 form) and 48 (the
 * per-row dot). The values span many magnitudes, so a different summation
 * tree would show in the last bits. */
TEST(attention_scores_all_levels) {
    enum { NR = 37, W = 4 * 128 };
    const int hds[5] = {64, 32, 96, 128, 48}, ns[6] = {1, 9, 15, 16, 17, NR};
    float *k = malloc(sizeof(float) * NR * W), q[128], got[NR + 1];
    int idx[NR];
    for (int i = 0; i < NR * W; i++) k[i] = (float)((2.0 * urand() - 1.0) * ldexp(1.0, (int)(urand() * 16) - 8));
    for (int i = 0; i < 128; i++) q[i] = (float)((2.0 * urand() - 1.0) * ldexp(1.0, (int)(urand() * 16) - 8));
    for (int p = 0; p < NR; p++) idx[p] = (p * 11 + 5) % NR;
    int compared = 0;
    for (int h = 0; h < 5; h++)
        for (int ni = 0; ni < 6; ni++)
            for (int mode = 0; mode < 2; mode++) {
                int hd = hds[h], n = ns[ni];
                const int *ix = mode ? idx : NULL;
                for (int lv = CPU_LEVEL_SCALAR; lv <= (int)cpu_detect_level(); lv++) {
                    got[n] = 12345.0f;
                    attention_scores(got, q, k + 128, n, W, ix, 0.125f, hd, (cpu_level_t)lv);
                    CHECK(got[n] == 12345.0f); /* nothing written past n */
                    for (int p = 0; p < n; p++) {
                        float want = 0.125f * matmul_dot_f32(hd, q, k + 128 + (ix ? ix[p] : p) * W, (cpu_level_t)lv);
                        if (memcmp(&want, &got[p], sizeof want)) {
                            CHECK(!"score differs from matmul_dot_f32");
                            fprintf(stderr, "  hd %d n %d mode %d level %d row %d: %.9g vs %.9g\n", hd, n, mode, lv, p,
                                    got[p], want);
                            goto done;
                        }
                        compared++;
                    }
                }
            }
done:
    CHECK(compared > 0);
    free(k);
}

int main(void) {
    RUN(quantize_q8_1_matches_definition);
    RUN(quantize_q8_0_rounds_half_even);
    RUN(dot_q4_1_q8_1_all_levels);
    RUN(dot_q8_0_q8_0_all_levels);
    RUN(dot_f32_all_levels);
    RUN(matmul_q4_1);
    RUN(matmul_q8_0);
    RUN(matmul_f32);
    RUN(matmul_rejects_bad_weights);
    RUN(rmsnorm_vs_naive);
    RUN(rope_vs_naive);
    RUN(softmax_and_swiglu);
    RUN(vexp_accuracy_and_levels_agree);
    RUN(rmsnorm_scale_is_its_definition);
    RUN(attention_vs_naive);
    RUN(round_fp16_all_levels);
    RUN(attention_v_sum_all_levels);
    RUN(attention_scores_all_levels);
    return tl_test_summary("test_kernels");
}
