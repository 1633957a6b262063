/* Training kernels: each backward against central finite differences of its
 * forward computed in double precision, SIMD panel kernels bit-identical to their scalar
 * twins, and the AdamW / schedule formulas against hand-derived values. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels.h"
#include "quant/quantize.h"
#include "quant/types.h"
#include "tl_test.h"
#include "train/adamw.h"
#include "train/matmul_bwd.h"
#include "train/ops.h"

static unsigned long long rng = 88172645463325252ULL;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* loss = sum_i c[i] * f(x)[i]: gradient of x by finite differences of f. */
typedef void (*vec_fn)(double *y, const double *x, int n, const void *ctx);

static void fd_grad(double *g, vec_fn f, const double *x, int n, int m, const double *c, const void *ctx) {
    double *xp = malloc(sizeof(double) * n), *y = malloc(sizeof(double) * m);
    for (int i = 0; i < n; i++) {
        double h = 1e-6, lp = 0, lm = 0;
        memcpy(xp, x, sizeof(double) * n);
        xp[i] = x[i] + h;
        f(y, xp, n, ctx);
        for (int k = 0; k < m; k++) lp += c[k] * y[k];
        xp[i] = x[i] - h;
        f(y, xp, n, ctx);
        for (int k = 0; k < m; k++) lm += c[k] * y[k];
        g[i] = (lp - lm) / (2 * h);
    }
    free(xp);
    free(y);
}

static void rms_d(double *y, const double *x, int n, const void *ctx) {
    const float *w = ctx;
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + 1e-5);
    for (int i = 0; i < n; i++) y[i] = x[i] * r * w[i];
}

TEST(rmsnorm_backward_matches_finite_differences) {
    enum { N = 40 };
    float x[N], w[N], dy[N], dx[N];
    double xd[N], c[N], g[N];
    for (int i = 0; i < N; i++) x[i] = frand(), w[i] = 1 + 0.3f * frand(), dy[i] = frand(), xd[i] = x[i], c[i] = dy[i];
    rmsnorm_backward(dx, dy, x, w, N, 1e-5f, 0);
    fd_grad(g, rms_d, xd, N, N, c, w);
    for (int i = 0; i < N; i++) CHECK_NEAR(dx[i], g[i], 1e-4);
    float acc[N];
    for (int i = 0; i < N; i++) acc[i] = 1.0f;
    rmsnorm_backward(acc, dy, x, w, N, 1e-5f, 1);
    for (int i = 0; i < N; i++) CHECK_NEAR(acc[i], 1.0f + dx[i], 1e-6);
}

TEST(rope_backward_inverts_the_rotation) {
    enum { HD = 16, NH = 3 };
    float cs[HD], x[NH * HD], y[NH * HD];
    rope_table(cs, 7, HD, 10000.0f);
    for (int i = 0; i < NH * HD; i++) x[i] = y[i] = frand();
    /* a rotation's gradient is its transpose = its inverse */
    rope_forward(y, NH, HD, HD, cs, 0);
    rope_backward(y, NH, HD, HD, cs, 0);
    for (int i = 0; i < NH * HD; i++) CHECK_NEAR(y[i], x[i], 1e-6);
    /* <dy, R x> == <R^T dy, x> */
    float dy[NH * HD], rx[NH * HD];
    double a = 0, b = 0;
    for (int i = 0; i < NH * HD; i++) dy[i] = frand(), rx[i] = x[i];
    rope_forward(rx, NH, HD, HD, cs, 0);
    for (int i = 0; i < NH * HD; i++) a += (double)dy[i] * rx[i];
    rope_backward(dy, NH, HD, HD, cs, 0);
    for (int i = 0; i < NH * HD; i++) b += (double)dy[i] * x[i];
    CHECK_NEAR(a, b, 1e-5);
}

static void swiglu_g(double *y, const double *g, int n, const void *ctx) {
    const float *u = ctx;
    for (int i = 0; i < n; i++) y[i] = g[i] / (1 + exp(-g[i])) * u[i];
}

TEST(swiglu_backward_matches_finite_differences) {
    enum { N = 32 };
    float g[N], u[N], dh[N], dg[N], du[N];
    double gd[N], c[N], fd[N];
    for (int i = 0; i < N; i++) g[i] = 3 * frand(), u[i] = frand(), dh[i] = frand(), gd[i] = g[i], c[i] = dh[i];
    swiglu_backward(dg, du, dh, g, u, N);
    fd_grad(fd, swiglu_g, gd, N, N, c, u);
    for (int i = 0; i < N; i++) {
        CHECK_NEAR(dg[i], fd[i], 1e-4);
        CHECK_NEAR(du[i], dh[i] * g[i] / (1 + expf(-g[i])), 1e-6);
    }
}

enum { T = 5, HD = 8 };
typedef struct {
    int which; /* 0: q, 1: k, 2: v */
    const float *q, *k, *v;
} attn_ctx_t;

static void attn_d(double *y, const double *x, int n, const void *vctx) {
    const attn_ctx_t *c = vctx;
    double q[T * HD], k[T * HD], v[T * HD];
    for (int i = 0; i < T * HD; i++) q[i] = c->q[i], k[i] = c->k[i], v[i] = c->v[i];
    double *p = c->which == 0 ? q : c->which == 1 ? k : v;
    for (int i = 0; i < n; i++) p[i] = x[i];
    for (int i = 0; i < T; i++) {
        double s[T], mx = -1e300, sum = 0;
        for (int j = 0; j <= i; j++) {
            s[j] = 0;
            for (int d = 0; d < HD; d++) s[j] += q[i * HD + d] * k[j * HD + d];
            s[j] /= sqrt((double)HD);
            if (s[j] > mx) mx = s[j];
        }
        for (int j = 0; j <= i; j++) sum += s[j] = exp(s[j] - mx);
        for (int d = 0; d < HD; d++) {
            double o = 0;
            for (int j = 0; j <= i; j++) o += s[j] / sum * v[j * HD + d];
            y[i * HD + d] = o;
        }
    }
}

TEST(causal_attention_backward_matches_finite_differences) {
    float q[T * HD], k[T * HD], v[T * HD], out[T * HD], P[T * T], dout[T * HD];
    float dq[T * HD], dk[T * HD] = {0}, dv[T * HD] = {0}, tmp[T];
    double c[T * HD], g[T * HD], x[T * HD];
    for (int i = 0; i < T * HD; i++) q[i] = frand(), k[i] = frand(), v[i] = frand(), dout[i] = frand(), c[i] = dout[i];
    causal_attention_forward(out, P, q, k, v, T, HD, HD, HD, 1.0f / sqrtf(HD), CPU_LEVEL_SCALAR);
    for (int i = 0; i < T; i++) {
        double s = 0;
        for (int j = 0; j < T; j++) s += P[i * T + j];
        CHECK_NEAR(s, 1.0, 1e-6);
        CHECK(P[i * T + T - 1] == 0.0f || i == T - 1); /* causal */
    }
    causal_attention_backward(dq, dk, dv, dout, P, q, k, v, T, HD, HD, HD, 1.0f / sqrtf(HD), tmp, CPU_LEVEL_SCALAR);
    const float *src[3] = {q, k, v};
    float *ours[3] = {dq, dk, dv};
    for (int w = 0; w < 3; w++) {
        attn_ctx_t ctx = {w, q, k, v};
        for (int i = 0; i < T * HD; i++) x[i] = src[w][i];
        fd_grad(g, attn_d, x, T * HD, T * HD, c, &ctx);
        for (int i = 0; i < T * HD; i++) CHECK_NEAR(ours[w][i], g[i], 2e-4);
    }
}

/* The AVX-512 attention rows against the scalar twin, bit for bit: head_dim
 * 64, strided rows as in the packed batch (q rows 3 heads wide, k/v 2). */
TEST(causal_attention_simd_bit_identical_to_scalar) {
    enum { TT = 13, D = 64, QS = 3 * D, KS = 2 * D };
    static float q[TT * QS], k[TT * KS], v[TT * KS], dout[TT * QS], out[2][TT * QS], P[2][TT * TT];
    static float dq[2][TT * QS], dk[2][TT * KS], dv[2][TT * KS], tmp[TT];
    for (int i = 0; i < TT * QS; i++) q[i] = frand(), dout[i] = frand();
    for (int i = 0; i < TT * KS; i++) k[i] = frand(), v[i] = frand();
    /* every SIMD level this CPU has (AVX2, AVX-512) against the scalar form */
    for (cpu_level_t have = cpu_detect_level(), l = CPU_LEVEL_AVX2; l <= have; l++) {
        cpu_level_t lv[2] = {CPU_LEVEL_SCALAR, l};
        for (int r = 0; r < 2; r++) {
            memset(out[r], 0, sizeof out[r]), memset(dq[r], 0, sizeof dq[r]);
            memset(dk[r], 0, sizeof dk[r]), memset(dv[r], 0, sizeof dv[r]);
            causal_attention_forward(out[r] + D, P[r], q + D, k + D, v + D, TT, D, QS, KS, 0.125f, lv[r]);
            causal_attention_backward(dq[r] + D, dk[r] + D, dv[r] + D, dout + D, P[r], q + D, k + D, v + D, TT, D, QS,
                                      KS, 0.125f, tmp, lv[r]);
        }
        CHECK(memcmp(out[0], out[1], sizeof out[0]) == 0);
        CHECK(memcmp(P[0], P[1], sizeof P[0]) == 0);
        CHECK(memcmp(dq[0], dq[1], sizeof dq[0]) == 0);
        CHECK(memcmp(dk[0], dk[1], sizeof dk[0]) == 0);
        CHECK(memcmp(dv[0], dv[1], sizeof dv[0]) == 0);
    }
    /* and the scalar output is the attention: row 4 of head 1 by hand */
    double mx = -1e30, e[TT], sum = 0;
    for (int j = 0; j <= 4; j++) {
        double d = 0;
        for (int c = 0; c < D; c++) d += (double)q[4 * QS + D + c] * k[j * KS + D + c];
        e[j] = 0.125 * d;
        if (e[j] > mx) mx = e[j];
    }
    for (int j = 0; j <= 4; j++) sum += e[j] = exp(e[j] - mx);
    for (int c = 0; c < D; c += 7) {
        double o = 0;
        for (int j = 0; j <= 4; j++) o += e[j] / sum * v[j * KS + D + c];
        CHECK_NEAR(out[0][4 * QS + D + c], o, 1e-5);
    }
}

TEST(cross_entropy_gradient_is_softmax_minus_onehot) {
    enum { V = 50 };
    float z[V], dz[V];
    for (int i = 0; i < V; i++) z[i] = 4 * frand();
    double lp = cross_entropy_forward_backward(z, V, 7, dz, 0.5f);
    double lse = 0;
    for (int i = 0; i < V; i++) lse += exp((double)z[i]);
    CHECK_NEAR(lp, z[7] - log(lse), 1e-9);
    for (int i = 0; i < V; i++) CHECK_NEAR(dz[i], 0.5 * (exp(z[i]) / lse - (i == 7)), 1e-7);
    /* in place: the value is computed before the row is overwritten */
    float zz[V];
    memcpy(zz, z, sizeof z);
    CHECK_NEAR(cross_entropy_forward_backward(zz, V, 7, zz, 1.0f), lp, 1e-12);
}

/* Every transposition and beta against a double-precision product; the SIMD
 * levels and 1..3 threads bit-identical to the scalar single-thread result. */
TEST(sgemm_all_transpositions_match_naive) {
    enum { M = 37, N = 70, K = 45 };
    static float A[M * K], B[K * N], At[K * M], Bt[N * K], C[M * N], ref[M * N];
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++) A[i * K + k] = At[k * M + i] = frand();
    for (int k = 0; k < K; k++)
        for (int j = 0; j < N; j++) B[k * N + j] = Bt[j * K + k] = frand();
    static const float betas[] = {0.0f, 1.0f, 0.5f};
    cpu_level_t have = cpu_detect_level();
    int bad = 0, differ = 0;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int bi = 0; bi < 3; bi++)
                for (int run = 0; run < 5; run++) {
                    /* run 0: scalar, 1 thread; 1: the detected level; 2..4: AVX2-capped, then 2 and 3 threads */
                    cpu_level_t lv = run == 0 ? CPU_LEVEL_SCALAR
                                     : run == 2 ? (have < CPU_LEVEL_AVX2 ? have : CPU_LEVEL_AVX2)
                                                : have;
                    threadpool_t *pool = NULL;
                    tl_err_t err;
                    if (run >= 3) CHECK(threadpool_new(&pool, run - 1, &err) == 0);
                    for (int i = 0; i < M * N; i++) C[i] = 1.0f;
                    train_sgemm(pool, lv, ta, tb, M, N, K, 2.0f, ta ? At : A, ta ? M : K, tb ? Bt : B, tb ? K : N,
                                betas[bi], C, N);
                    threadpool_free(pool);
                    if (run == 0) memcpy(ref, C, sizeof C);
                    else differ += memcmp(ref, C, sizeof C) != 0;
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < N; j++) {
                            double s = 0;
                            for (int k = 0; k < K; k++) s += (double)A[i * K + k] * B[k * N + j];
                            bad += !(fabs(C[i * N + j] - (betas[bi] + 2 * s)) <= 1e-4);
                        }
                }
    CHECK(bad == 0);
    CHECK(differ == 0);
}

/* The panel kernel: every SIMD level bit-identical to the scalar FMA chain,
 * over token tails (1..19 = 2 blocks of 8 + 3), partial panels (nr 1..32),
 * strided operands and both the overwrite and accumulate forms. */
TEST(gemm_panel_simd_bit_identical_to_scalar) {
    enum { TMAX = 19, KMAX = 70, LDA = 73, LDB = 37, LDC = 41 };
    static float A[TMAX * LDA], Ap[24 * KMAX], B[KMAX * LDB], c0[TMAX * LDC], c1[TMAX * LDC], c2[TMAX * LDC];
    for (int i = 0; i < TMAX * LDA; i++) A[i] = frand();
    for (int i = 0; i < KMAX * LDB; i++) B[i] = frand();
    cpu_level_t have = cpu_detect_level();
    int bad = 0;
    for (int nt = 1; nt <= TMAX; nt += 3)
        for (int K = 1; K <= KMAX; K += 23) {
            CHECK(tl_gemm_packed_floats(nt, K) <= sizeof Ap / sizeof Ap[0]);
            memset(Ap, 0xff, sizeof Ap); /* NaN: the padding rows must be written as zeros */
            tl_gemm_pack_a(Ap, A, LDA, nt, K, 0, nt < 8 ? nt : 8); /* two calls, as two threads pack */
            if (nt > 8) tl_gemm_pack_a(Ap, A, LDA, nt, K, 8, nt);
            for (int nr = 1; nr <= TL_GEMM_NR; nr += (nr < 17 ? 5 : 3))
                for (int acc = 0; acc < 2; acc++) {
                    for (int i = 0; i < TMAX * LDC; i++) c0[i] = c1[i] = c2[i] = 0.25f * (float)(i % 13) - 1.0f;
                    long ap_ld = (long)K * TL_GEMM_MR;
                    tl_gemm_panel(nt, K, Ap, ap_ld, B, LDB, nr, c0, LDC, acc, CPU_LEVEL_SCALAR);
                    tl_gemm_panel(nt, K, Ap, ap_ld, B, LDB, nr, c1, LDC, acc,
                                  have < CPU_LEVEL_AVX2 ? have : CPU_LEVEL_AVX2);
                    tl_gemm_panel(nt, K, Ap, ap_ld, B, LDB, nr, c2, LDC, acc, have);
                    /* whole buffers compared: nothing written outside the block */
                    bad += memcmp(c0, c1, sizeof c0) != 0 || memcmp(c0, c2, sizeof c0) != 0;
                    for (int t = 0; t < nt; t++)
                        for (int j = 0; j < nr; j++) {
                            double s = acc ? 0.25 * ((t * LDC + j) % 13) - 1.0 : 0.0;
                            for (int k = 0; k < K; k++) s += (double)A[t * LDA + k] * B[k * LDB + j];
                            bad += !(fabs(c0[t * LDC + j] - s) <= 1e-4);
                        }
                }
        }
    CHECK(bad == 0);
}

/* Forward and backward products do not depend on the thread count (the sum
 * order of each element is fixed), on a shape with partial panels. */
TEST(train_products_identical_for_any_thread_count) {
    enum { NIN = 96, NOUT = 75, NT = 13 };
    static float wf[NOUT * NIN], x[NT * NIN], dy[NT * NOUT], y[3][NT * NOUT], dx[3][NT * NIN];
    for (int i = 0; i < NOUT * NIN; i++) wf[i] = frand();
    for (int i = 0; i < NT * NIN; i++) x[i] = frand();
    for (int i = 0; i < NT * NOUT; i++) dy[i] = frand();
    size_t rb = 0;
    tl_err_t err;
    CHECK(ggml_row_bytes(GGML_TYPE_Q8_0, NIN, &rb, &err) == 0);
    unsigned char *q = malloc(rb * NOUT);
    CHECK(q != NULL);
    if (!q) return;
    for (int r = 0; r < NOUT; r++) CHECK(quantize_row(GGML_TYPE_Q8_0, wf + r * NIN, q + r * rb, NIN, NULL, &err) == 0);
    for (int ty = 0; ty < 2; ty++) {
        mm_weight_t w = ty ? (mm_weight_t){.type = GGML_TYPE_Q8_0, .n_in = NIN, .n_out = NOUT, .data = q, .row_bytes = rb}
                           : (mm_weight_t){.type = GGML_TYPE_F32, .n_in = NIN, .n_out = NOUT, .data = wf,
                                           .row_bytes = sizeof(float) * NIN};
        for (int nth = 1; nth <= 3; nth++) {
            threadpool_t *pool = NULL;
            CHECK(threadpool_new(&pool, nth, &err) == 0);
            mm_env_t env = {.pool = pool, .level = cpu_detect_level()};
            CHECK(matmul_forward_dequant(y[nth - 1], x, &w, NT, &env, &err) == 0);
            CHECK(matmul_backward_input(dx[nth - 1], dy, &w, NT, &env, 0, &err) == 0);
            threadpool_free(pool);
        }
        CHECK(memcmp(y[0], y[1], sizeof y[0]) == 0 && memcmp(y[0], y[2], sizeof y[0]) == 0);
        CHECK(memcmp(dx[0], dx[1], sizeof dx[0]) == 0 && memcmp(dx[0], dx[2], sizeof dx[0]) == 0);
    }
    free(q);
}

/* The dequantized panels built once per run (mm_dq_t) give the same bits as
 * building them on the fly, for both products, any thread count, row counts
 * over several 128-row blocks with a partial panel, and a K-quant. */
TEST(dequantized_panels_built_once_same_bits) {
    const uint32_t types[2] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_K};
    const int nins[2] = {96, 512}, nouts[2] = {300, 75};
    enum { NT = 11 };
    tl_err_t err;
    for (int c = 0; c < 2; c++) {
        int NIN = nins[c], NOUT = nouts[c];
        float *wf = malloc(sizeof(float) * (size_t)(NOUT * NIN)), *x = malloc(sizeof(float) * (size_t)(NT * NIN));
        float *dy = malloc(sizeof(float) * (size_t)(NT * NOUT));
        float *y0 = malloc(sizeof(float) * (size_t)(NT * NOUT)), *y1 = malloc(sizeof(float) * (size_t)(NT * NOUT));
        float *d0 = malloc(sizeof(float) * (size_t)(NT * NIN)), *d1 = malloc(sizeof(float) * (size_t)(NT * NIN));
        for (int i = 0; i < NOUT * NIN; i++) wf[i] = frand();
        for (int i = 0; i < NT * NIN; i++) x[i] = frand();
        for (int i = 0; i < NT * NOUT; i++) dy[i] = frand();
        size_t rb = 0;
        CHECK(ggml_row_bytes(types[c], NIN, &rb, &err) == 0);
        unsigned char *q = malloc(rb * (size_t)NOUT);
        for (int r = 0; r < NOUT; r++) CHECK(quantize_row(types[c], wf + r * NIN, q + r * rb, NIN, NULL, &err) == 0);
        mm_weight_t w;
        CHECK(matmul_weight_init(&w, "w", types[c], NIN, NOUT, q, &err) == 0);
        CHECK(mm_dq_wanted(&w));
        mm_env_t env1 = {.pool = NULL, .level = cpu_detect_level()};
        CHECK(matmul_forward_dequant(y0, x, &w, NT, &env1, &err) == 0);
        CHECK(matmul_backward_input(d0, dy, &w, NT, &env1, 0, &err) == 0);
        for (int nth = 1; nth <= 3; nth++) {
            threadpool_t *pool = NULL;
            CHECK(threadpool_new(&pool, nth, &err) == 0);
            mm_dq_t dq;
            CHECK(mm_dq_build(&dq, &w, pool, &err) == 0);
            CHECK(dq.fwd != NULL && dq.bwd != NULL);
            mm_env_t env = {.pool = pool, .level = cpu_detect_level()};
            CHECK(matmul_forward_dequant_dq(y1, x, &w, &dq, NT, &env, &err) == 0);
            CHECK(matmul_backward_input_dq(d1, dy, &w, &dq, NT, &env, 0, &err) == 0);
            CHECK(memcmp(y0, y1, sizeof(float) * (size_t)(NT * NOUT)) == 0);
            CHECK(memcmp(d0, d1, sizeof(float) * (size_t)(NT * NIN)) == 0);
            mm_dq_free(&dq);
            threadpool_free(pool);
        }
        mm_weight_t f = {.type = GGML_TYPE_F32, .n_in = NIN, .n_out = NOUT, .data = wf, .row_bytes = sizeof(float) * NIN};
        CHECK(!mm_dq_wanted(&f));
        free(wf), free(x), free(dy), free(y0), free(y1), free(d0), free(d1), free(q);
    }
}

TEST(backward_input_over_q8_0_equals_dequantized_product) {
    enum { NIN = 64, NOUT = 20, NT = 3 };
    /* Q8_0 blocks: fp16 scale + 32 int8 */
    static unsigned char wq[NOUT * 2 * 34];
    static float wf[NOUT * NIN], dy[NT * NOUT], dx[NT * NIN];
    for (int r = 0; r < NOUT; r++)
        for (int b = 0; b < 2; b++) {
            unsigned char *blk = wq + (r * 2 + b) * 34;
            uint16_t d = fp32_to_fp16(0.01f * (1 + r % 3));
            memcpy(blk, &d, 2);
            for (int i = 0; i < 32; i++) {
                int8_t q = (int8_t)((r * 7 + i * 3 + b) % 255 - 127);
                blk[2 + i] = (unsigned char)q;
                wf[r * NIN + b * 32 + i] = fp16_to_fp32(d) * q;
            }
        }
    for (int i = 0; i < NT * NOUT; i++) dy[i] = frand();
    mm_weight_t w;
    tl_err_t err;
    CHECK(matmul_weight_init(&w, "w", GGML_TYPE_Q8_0, NIN, NOUT, wq, &err) == 0);
    mm_env_t env = {.pool = NULL, .level = cpu_detect_level()};
    CHECK(matmul_backward_input(dx, dy, &w, NT, &env, 0, &err) == 0);
    for (int t = 0; t < NT; t++)
        for (int i = 0; i < NIN; i++) {
            double s = 0;
            for (int o = 0; o < NOUT; o++) s += (double)dy[t * NOUT + o] * wf[o * NIN + i];
            CHECK_NEAR(dx[t * NIN + i], s, 1e-4);
        }
    static float y[NT * NOUT], x[NT * NIN];
    for (int i = 0; i < NT * NIN; i++) x[i] = frand();
    CHECK(matmul_forward_dequant(y, x, &w, NT, &env, &err) == 0);
    for (int t = 0; t < NT; t++)
        for (int o = 0; o < NOUT; o++) {
            double s = 0;
            for (int i = 0; i < NIN; i++) s += (double)x[t * NIN + i] * wf[o * NIN + i];
            CHECK_NEAR(y[t * NOUT + o], s, 1e-4);
        }
}

/* QLoRA: the input gradient (and the training forward) over every quantized
 * type we load equals the product with the F32-dequantized weights. 512
 * columns = two K-quant super-blocks, so the column split crosses blocks. */
TEST(backward_input_over_every_quantized_type_equals_dequantized_product) {
    enum { NIN = 512, NOUT = 19, NT = 3 };
    static const uint32_t types[] = {GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                                     GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0, GGML_TYPE_Q4_K,
                                     GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_IQ4_NL};
    static float src[NOUT * NIN], wf[NOUT * NIN], dy[NT * NOUT], dx[NT * NIN], x[NT * NIN], y[NT * NOUT];
    for (int i = 0; i < NOUT * NIN; i++) src[i] = frand();
    for (int i = 0; i < NT * NOUT; i++) dy[i] = frand();
    for (int i = 0; i < NT * NIN; i++) x[i] = frand();
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        uint32_t ty = types[k];
        tl_err_t err;
        size_t rb = 0;
        CHECK(ggml_row_bytes(ty, NIN, &rb, &err) == 0);
        unsigned char *q = malloc(rb * NOUT);
        CHECK(q != NULL);
        if (!q) return;
        int ok = 1;
        for (int r = 0; r < NOUT; r++) {
            ok &= quantize_row(ty, src + r * NIN, q + r * rb, NIN, NULL, &err) == 0;
            ok &= dequantize_row(ty, q + r * rb, wf + r * NIN, NIN, &err) == 0;
        }
        CHECK(ok);
        mm_weight_t w = {.type = ty, .n_in = NIN, .n_out = NOUT, .data = q, .row_bytes = rb};
        mm_env_t env = {.pool = NULL, .level = cpu_detect_level()};
        double maxd = 0, maxf = 0;
        CHECK(matmul_backward_input(dx, dy, &w, NT, &env, 0, &err) == 0);
        for (int t = 0; t < NT; t++)
            for (int i = 0; i < NIN; i++) {
                double sum = 0;
                for (int o = 0; o < NOUT; o++) sum += (double)dy[t * NOUT + o] * wf[o * NIN + i];
                if (fabs(dx[t * NIN + i] - sum) > maxd) maxd = fabs(dx[t * NIN + i] - sum);
            }
        CHECK(matmul_forward_dequant(y, x, &w, NT, &env, &err) == 0);
        for (int t = 0; t < NT; t++)
            for (int o = 0; o < NOUT; o++) {
                double sum = 0;
                for (int i = 0; i < NIN; i++) sum += (double)x[t * NIN + i] * wf[o * NIN + i];
                if (fabs(y[t * NOUT + o] - sum) > maxf) maxf = fabs(y[t * NOUT + o] - sum);
            }
        if (maxd > 1e-4 || maxf > 1e-3) printf("  type %u: max |dx err| %g, max |y err| %g\n", ty, maxd, maxf);
        CHECK(maxd <= 1e-4);
        CHECK(maxf <= 1e-3);
        free(q);
    }
}

TEST(adamw_first_step_and_schedule) {
    adamw_cfg_t cfg = {0.9f, 0.999f, 1e-8f, 0.1f};
    float p[2] = {1.0f, -2.0f}, g[2] = {0.5f, -3.0f}, m[2] = {0}, v[2] = {0};
    adamw_update(p, g, m, v, 2, &cfg, 0.01f, 1);
    /* bias-corrected first step moves by lr * sign(g) (plus decoupled decay lr*wd*p) */
    CHECK_NEAR(p[0], 1.0 - 0.01 * (1.0 + 0.1 * 1.0), 1e-6);
    CHECK_NEAR(p[1], -2.0 - 0.01 * (-1.0 + 0.1 * -2.0), 1e-6);
    CHECK_NEAR(sched_lr(SCHED_LINEAR, 1.0f, 0, 10, 2), 0.5, 1e-7);
    CHECK_NEAR(sched_lr(SCHED_LINEAR, 1.0f, 2, 10, 2), 1.0, 1e-7);
    CHECK_NEAR(sched_lr(SCHED_LINEAR, 1.0f, 6, 10, 2), 0.5, 1e-7);
    CHECK_NEAR(sched_lr(SCHED_COSINE, 1.0f, 6, 10, 2), 0.5, 1e-6);
    CHECK_NEAR(sched_lr(SCHED_COSINE, 1.0f, 4, 10, 2), 0.5 * (1 + cos(M_PI * 0.25)), 1e-6);
}

int main(void) {
    RUN(rmsnorm_backward_matches_finite_differences);
    RUN(rope_backward_inverts_the_rotation);
    RUN(swiglu_backward_matches_finite_differences);
    RUN(causal_attention_backward_matches_finite_differences);
    RUN(causal_attention_simd_bit_identical_to_scalar);
    RUN(cross_entropy_gradient_is_softmax_minus_onehot);
    RUN(sgemm_all_transpositions_match_naive);
    RUN(gemm_panel_simd_bit_identical_to_scalar);
    RUN(train_products_identical_for_any_thread_count);
    RUN(dequantized_panels_built_once_same_bits);
    RUN(backward_input_over_q8_0_equals_dequantized_product);
    RUN(backward_input_over_every_quantized_type_equals_dequantized_product);
    RUN(adamw_first_step_and_schedule);
    return tl_test_summary("test_train");
}
