/* Training kernels (see ops.h). */
#include "train/ops.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels.h"
#include "train/matmul_bwd.h"

void rmsnorm_backward(float *dx, const float *dy, const float *x, const float *w, int n, float eps, int accumulate) {
    double dot = 0.0;
    for (int i = 0; i < n; i++) dot += (double)dy[i] * w[i] * x[i];
    float r = rmsnorm_scale(x, n, eps); /* the forward pass's scale, bit for bit */
    float c = (float)(dot * (double)r * r * r / n);
    for (int i = 0; i < n; i++) {
        float g = dy[i] * w[i] * r - x[i] * c;
        dx[i] = accumulate ? dx[i] + g : g;
    }
}

void rope_backward(float *dx, int n_heads, int head_dim, int n_rot, const float *cs, int neox) {
    for (int h = 0; h < n_heads; h++) {
        float *v = dx + (long)h * head_dim;
        for (int i = 0; i < n_rot / 2; i++) {
            int a = neox ? i : 2 * i, b = neox ? i + n_rot / 2 : 2 * i + 1;
            float c = cs[2 * i], s = cs[2 * i + 1];
            float y0 = v[a], y1 = v[b];
            v[a] = y0 * c + y1 * s;
            v[b] = -y0 * s + y1 * c;
        }
    }
}

void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, int n) {
    for (int i = 0; i < n; i++) {
        float sg = 1.0f / (1.0f + expf(-g[i]));
        float silu = g[i] * sg;
        du[i] = dh[i] * silu;
        dg[i] = dh[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
    }
}

/* Attention dot products and row updates. The SIMD and scalar forms compute
 * the same thing bit for bit: a dot product is 16 lane sums (lane l takes the
 * elements l, l + 16, ... as an FMA chain) folded 16 -> 8 -> 4 -> 2 -> 1 by
 * pairwise adds; an update y += a x is one FMA per element. The SIMD form
 * needs head_dim a multiple of 16 (else the scalar form runs). */
static float dot16_scalar(const float *a, const float *b, int n) {
    float l[16] = {0};
    for (int i = 0; i < n; i++) l[i % 16] = __builtin_fmaf(a[i], b[i], l[i % 16]);
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) l[i] = l[i] + l[i + w];
    return l[0];
}

static void axpy_scalar(float *y, float a, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] = __builtin_fmaf(a, x[i], y[i]);
}

__attribute__((target("avx2,fma"))) static inline float dot16_avx2(const float *a, const float *b, int n) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps(); /* lanes 0-7 and 8-15 of dot16_scalar */
    for (int i = 0; i < n; i += 16) {
        lo = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), lo);
        hi = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), hi);
    }
    __m256 s8 = _mm256_add_ps(lo, hi);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
    return _mm_cvtss_f32(s1);
}

__attribute__((target("avx2,fma"))) static inline void axpy_avx2(float *y, float a, const float *x, int n) {
    __m256 av = _mm256_set1_ps(a);
    for (int i = 0; i < n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
}

__attribute__((target("avx512f"))) static inline float dot16_avx512(const float *a, const float *b, int n) {
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1)));
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
    return _mm_cvtss_f32(s1);
}

__attribute__((target("avx512f"))) static void axpy_avx512(float *y, float a, const float *x, int n) {
    __m512 av = _mm512_set1_ps(a);
    for (int i = 0; i < n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
}

/* One attention row forward (softmax(scale q k^T) v over keys 0..i) and
 * backward, on the dot16/axpy of one level: the same code for every level. */
#define ATTN_ROWS(SFX, TARGET)                                                                                      \
    TARGET static void attn_fwd_row_##SFX(float *o, float *p, const float *qi, const float *k, const float *v,     \
                                          int i, int hd, long kvstride, float scale) {                             \
        float mx = -INFINITY;                                                                                      \
        for (int j = 0; j <= i; j++) {                                                                             \
            p[j] = scale * dot16_##SFX(qi, k + j * kvstride, hd);                                                  \
            if (p[j] > mx) mx = p[j];                                                                              \
        }                                                                                                          \
        double sum = 0.0;                                                                                          \
        for (int j = 0; j <= i; j++) {                                                                             \
            p[j] = expf(p[j] - mx);                                                                                \
            sum += p[j];                                                                                           \
        }                                                                                                          \
        float inv = (float)(1.0 / sum);                                                                            \
        for (int j = 0; j <= i; j++) p[j] *= inv;                                                                  \
        memset(o, 0, sizeof(float) * (size_t)hd);                                                                  \
        for (int j = 0; j <= i; j++) axpy_##SFX(o, p[j], v + j * kvstride, hd);                                    \
    }                                                                                                              \
    TARGET static void attn_bwd_row_##SFX(float *dqi, float *dk, float *dv, const float *doi, const float *p,     \
                                          const float *qi, const float *k, const float *v, int i, int hd,          \
                                          long kvstride, float scale, float *tmp) {                                \
        double s = 0.0;                                                                                            \
        for (int j = 0; j <= i; j++) {                                                                             \
            tmp[j] = dot16_##SFX(doi, v + j * kvstride, hd);                                                       \
            s += (double)p[j] * tmp[j];                                                                            \
        }                                                                                                          \
        float sf = (float)s;                                                                                       \
        memset(dqi, 0, sizeof(float) * (size_t)hd);                                                                \
        for (int j = 0; j <= i; j++) {                                                                             \
            float pj = p[j], ds = pj * (tmp[j] - sf) * scale;                                                      \
            axpy_##SFX(dqi, ds, k + j * kvstride, hd);                                                             \
            axpy_##SFX(dk + j * kvstride, ds, qi, hd);                                                             \
            axpy_##SFX(dv + j * kvstride, pj, doi, hd);                                                            \
        }                                                                                                          \
    }

ATTN_ROWS(scalar, )
ATTN_ROWS(avx2, __attribute__((target("avx2,fma"))))
ATTN_ROWS(avx512, __attribute__((target("avx512f"))))

/* 2: AVX-512, 1: AVX2, 0: scalar (the SIMD forms need head_dim a multiple of 16). */
static int attn_simd(cpu_level_t level, int head_dim) {
    if (head_dim <= 0 || head_dim % 16) return 0;
    return level >= CPU_LEVEL_AVX512 ? 2 : level >= CPU_LEVEL_AVX2 ? 1 : 0;
}

void causal_attention_forward_from(float *out, float *P, const float *q, const float *k, const float *v, int q0,
                                   int T, int head_dim, long qstride, long kvstride, float scale, cpu_level_t level) {
    int simd = attn_simd(level, head_dim);
    for (int i = q0; i < T; i++) {
        float *p = P + (long)(i - q0) * T;
        long r = (long)(i - q0) * qstride;
        if (simd == 2) attn_fwd_row_avx512(out + r, p, q + r, k, v, i, head_dim, kvstride, scale);
        else if (simd == 1) attn_fwd_row_avx2(out + r, p, q + r, k, v, i, head_dim, kvstride, scale);
        else attn_fwd_row_scalar(out + r, p, q + r, k, v, i, head_dim, kvstride, scale);
        for (int j = i + 1; j < T; j++) p[j] = 0.0f;
    }
}

void causal_attention_forward(float *out, float *P, const float *q, const float *k, const float *v, int T,
                              int head_dim, long qstride, long kvstride, float scale, cpu_level_t level) {
    causal_attention_forward_from(out, P, q, k, v, 0, T, head_dim, qstride, kvstride, scale, level);
}

void causal_attention_backward_from(float *dq, float *dk, float *dv, const float *dout, const float *P,
                                    const float *q, const float *k, const float *v, int q0, int T, int head_dim,
                                    long qstride, long kvstride, float scale, float *tmp, cpu_level_t level) {
    int simd = attn_simd(level, head_dim);
    for (int i = q0; i < T; i++) {
        long r = (long)(i - q0) * qstride;
        const float *p = P + (long)(i - q0) * T;
        if (simd == 2) attn_bwd_row_avx512(dq + r, dk, dv, dout + r, p, q + r, k, v, i, head_dim, kvstride, scale, tmp);
        else if (simd == 1) attn_bwd_row_avx2(dq + r, dk, dv, dout + r, p, q + r, k, v, i, head_dim, kvstride, scale, tmp);
        else attn_bwd_row_scalar(dq + r, dk, dv, dout + r, p, q + r, k, v, i, head_dim, kvstride, scale, tmp);
    }
}

void causal_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *P, const float *q,
                               const float *k, const float *v, int T, int head_dim, long qstride, long kvstride,
                               float scale, float *tmp, cpu_level_t level) {
    causal_attention_backward_from(dq, dk, dv, dout, P, q, k, v, 0, T, head_dim, qstride, kvstride, scale, tmp, level);
}

double cross_entropy_forward_backward(const float *logits, int n, int32_t target, float *dlogits, float gscale) {
    float mx = logits[0];
    for (int i = 1; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    double lse = mx + log(sum);
    double lp = (double)logits[target] - lse; /* before dlogits, which may alias logits */
    if (dlogits) {
        for (int i = 0; i < n; i++) dlogits[i] = (float)(exp((double)logits[i] - lse)) * gscale;
        dlogits[target] -= gscale;
    }
    return lp;
}

typedef struct {
    int ta, tb, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    long lda, ldb, ldc;
} sgemm_job_t;

static void sgemm_rows(void *arg, int ith, int nth) {
    const sgemm_job_t *j = arg;
    long m0, m1;
    threadpool_split(j->M, ith, nth, &m0, &m1);
    for (long m = m0; m < m1; m++) {
        float *c = j->C + m * j->ldc;
        if (j->beta == 0.0f) memset(c, 0, sizeof(float) * (size_t)j->N);
        else if (j->beta != 1.0f)
            for (int n = 0; n < j->N; n++) c[n] *= j->beta;
        if (!j->tb) {
            for (int k = 0; k < j->K; k++) {
                float a = j->alpha * (j->ta ? j->A[k * j->lda + m] : j->A[m * j->lda + k]);
                if (a == 0.0f) continue;
                const float *b = j->B + k * j->ldb;
                for (int n = 0; n < j->N; n++) c[n] += a * b[n];
            }
        } else {
            for (int n = 0; n < j->N; n++) {
                const float *b = j->B + n * j->ldb;
                float s = 0.0f;
                if (!j->ta)
                    for (int k = 0; k < j->K; k++) s += j->A[m * j->lda + k] * b[k];
                else
                    for (int k = 0; k < j->K; k++) s += j->A[k * j->lda + m] * b[k];
                c[n] += j->alpha * s;
            }
        }
    }
}

void train_sgemm(threadpool_t *pool, cpu_level_t level, int ta, int tb, int M, int N, int K, float alpha,
                 const float *A, long lda, const float *B, long ldb, float beta, float *C, long ldc) {
    if (M <= 0 || N <= 0) return;
    if (beta != 0.0f && beta != 1.0f)
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) C[m * ldc + n] *= beta;
    float *bt = NULL;
    if (tb && (bt = malloc(sizeof(float) * (size_t)K * (size_t)N)))
        for (int k = 0; k < K; k++)
            for (int n = 0; n < N; n++) bt[(long)k * N + n] = B[n * ldb + k];
    if ((!tb || bt) && !tl_gemm(pool, level, M, N, K, alpha, A, ta ? 1 : lda, ta ? lda : 1, tb ? bt : B, tb ? N : ldb,
                                beta != 0.0f, C, ldc)) {
        free(bt);
        return;
    }
    free(bt); /* out of memory: the unpacked loop */
    sgemm_job_t j = {ta, tb, M, N, K, alpha, beta == 0.0f ? 0.0f : 1.0f, A, B, C, lda, ldb, ldc};
    if (pool && M > 1) threadpool_run(pool, sgemm_rows, &j);
    else sgemm_rows(&j, 0, 1);
}
