/* Training kernels (see ops.h). */
#include "train/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/matmul_bwd.h"

void rmsnorm_backward(float *dx, const float *dy, const float *x, const float *w, int n, float eps, int accumulate) {
    double ss = 0.0, dot = 0.0;
    for (int i = 0; i < n; i++) {
        ss += (double)x[i] * x[i];
        dot += (double)dy[i] * w[i] * x[i];
    }
    /* same rounding of the scale as rmsnorm_forward */
    float r = 1.0f / sqrtf((float)(ss / n) + eps);
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

static float dot_f32(const float *a, const float *b, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

void causal_attention_forward(float *out, float *P, const float *q, const float *k, const float *v, int T,
                              int head_dim, long qstride, long kvstride, float scale) {
    for (int i = 0; i < T; i++) {
        float *p = P + (long)i * T;
        const float *qi = q + i * qstride;
        float mx = -INFINITY;
        for (int j = 0; j <= i; j++) {
            p[j] = scale * dot_f32(qi, k + j * kvstride, head_dim);
            if (p[j] > mx) mx = p[j];
        }
        double sum = 0.0;
        for (int j = 0; j <= i; j++) {
            p[j] = expf(p[j] - mx);
            sum += p[j];
        }
        float inv = (float)(1.0 / sum);
        for (int j = 0; j <= i; j++) p[j] *= inv;
        for (int j = i + 1; j < T; j++) p[j] = 0.0f;
        float *o = out + i * qstride;
        memset(o, 0, sizeof(float) * (size_t)head_dim);
        for (int j = 0; j <= i; j++) {
            const float *vj = v + j * kvstride;
            float pj = p[j];
            for (int d = 0; d < head_dim; d++) o[d] += pj * vj[d];
        }
    }
}

void causal_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *P, const float *q,
                               const float *k, const float *v, int T, int head_dim, long qstride, long kvstride,
                               float scale, float *tmp) {
    for (int i = 0; i < T; i++) {
        const float *p = P + (long)i * T;
        const float *doi = dout + i * qstride;
        /* dP[j] = dout_i . v_j; dS = P * (dP - sum_j P dP) */
        double s = 0.0;
        for (int j = 0; j <= i; j++) {
            tmp[j] = dot_f32(doi, v + j * kvstride, head_dim);
            s += (double)p[j] * tmp[j];
        }
        float sf = (float)s;
        float *dqi = dq + i * qstride;
        memset(dqi, 0, sizeof(float) * (size_t)head_dim);
        const float *qi = q + i * qstride;
        for (int j = 0; j <= i; j++) {
            float pj = p[j];
            float ds = pj * (tmp[j] - sf) * scale;
            const float *kj = k + j * kvstride;
            float *dkj = dk + j * kvstride, *dvj = dv + j * kvstride;
            for (int d = 0; d < head_dim; d++) {
                dqi[d] += ds * kj[d];
                dkj[d] += ds * qi[d];
                dvj[d] += pj * doi[d];
            }
        }
    }
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
