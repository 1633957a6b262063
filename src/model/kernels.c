#include "model/kernels.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "model/vexp.h"
#include "quant/matmul.h"
#include "quant/types.h"

static cpu_level_t level_once(void) {
    static int level = -1;
    int l = __atomic_load_n(&level, __ATOMIC_RELAXED);
    if (l < 0) {
        l = (int)cpu_detect_level();
        __atomic_store_n(&level, l, __ATOMIC_RELAXED);
    }
    return (cpu_level_t)l;
}

/* Sum of squares in double over 8 interleaved partial sums (element i into
 * sum i % 8; each square is exact in double), combined in a fixed tree: the
 * AVX-512 form is the same operations, so the scale has the same bits at every
 * level. */
static double sumsq_ref(const float *x, int n) {
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < n; i++) a[i % 8] += (double)x[i] * (double)x[i];
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

VEXP_AVX512 static double sumsq_avx512(const float *x, int n) {
    __m512d acc = _mm512_setzero_pd();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));
        acc = _mm512_fmadd_pd(v, v, acc); /* the product is exact: one rounding, as a[k] += x * x */
    }
    double a[8];
    _mm512_storeu_pd(a, acc);
    for (; i < n; i++) a[i % 8] += (double)x[i] * (double)x[i];
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

float rmsnorm_scale(const float *x, int n, float eps) {
    double ss = level_once() == CPU_LEVEL_AVX512 ? sumsq_avx512(x, n) : sumsq_ref(x, n);
    return 1.0f / sqrtf((float)(ss / n) + eps);
}

void rmsnorm_forward(float *y, const float *x, const float *w, int n, float eps) {
    float scale = rmsnorm_scale(x, n, eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * scale * w[i];
}

void rope_table(float *cs, int pos, int n_rot, float freq_base) {
    /* theta is advanced by repeated multiplication, as llama.cpp does, so the
     * angles match its rounding */
    float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int i = 0; i < n_rot / 2; i++) {
        cs[2 * i] = cosf(theta);
        cs[2 * i + 1] = sinf(theta);
        theta *= theta_scale;
    }
}

void rope_forward(float *x, int n_heads, int head_dim, int n_rot, const float *cs, int neox) {
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (long)h * head_dim;
        for (int i = 0; i < n_rot / 2; i++) {
            int a = neox ? i : 2 * i, b = neox ? i + n_rot / 2 : 2 * i + 1;
            float c = cs[2 * i], s = cs[2 * i + 1];
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}


/* x[i] = vexp(x[i] - mx), the same bits at every level. */
VEXP_AVX512 static void exp_shift_avx512(float *x, int n, float mx) {
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, vexp_512(_mm512_sub_ps(_mm512_loadu_ps(x + i), _mm512_set1_ps(mx))));
    for (; i < n; i++) x[i] = vexp_ref(x[i] - mx);
}

VEXP_AVX2 static void exp_shift_avx2(float *x, int n, float mx) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, vexp_256(_mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(mx))));
    for (; i < n; i++) x[i] = vexp_ref(x[i] - mx);
}

void softmax_forward(float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    cpu_level_t lv = level_once();
    if (lv == CPU_LEVEL_AVX512) exp_shift_avx512(x, n, mx);
    else if (lv == CPU_LEVEL_AVX2) exp_shift_avx2(x, n, mx);
    else
        for (int i = 0; i < n; i++) x[i] = vexp_ref(x[i] - mx);
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += x[i];
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

/* g / (1 + exp(-g)) * u: a division and a product after the shared exponential. */
VEXP_AVX512 static void swiglu_avx512(float *g, const float *u, int n) {
    int i = 0;
    const __m512 one = _mm512_set1_ps(1.0f);
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_loadu_ps(g + i);
        __m512 e = vexp_512(_mm512_sub_ps(_mm512_setzero_ps(), x));
        _mm512_storeu_ps(g + i, _mm512_mul_ps(_mm512_div_ps(x, _mm512_add_ps(one, e)), _mm512_loadu_ps(u + i)));
    }
    for (; i < n; i++) g[i] = g[i] / (1.0f + vexp_ref(-g[i])) * u[i];
}

VEXP_AVX2 static void swiglu_avx2(float *g, const float *u, int n) {
    int i = 0;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 e = vexp_256(_mm256_sub_ps(_mm256_setzero_ps(), x));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) g[i] = g[i] / (1.0f + vexp_ref(-g[i])) * u[i];
}

void swiglu_forward(float *g, const float *u, int n) {
    cpu_level_t lv = level_once();
    if (lv == CPU_LEVEL_AVX512) swiglu_avx512(g, u, n);
    else if (lv == CPU_LEVEL_AVX2) swiglu_avx2(g, u, n);
    else
        for (int i = 0; i < n; i++) g[i] = g[i] / (1.0f + vexp_ref(-g[i])) * u[i];
}

#define K512 __attribute__((target("avx512f,avx512vl,f16c")))

K512 static void round_fp16_avx512(float *x, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm512_storeu_ps(x + i, _mm512_cvtph_ps(h));
    }
    for (; i < n; i++) x[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
}

void round_fp16_forward(float *x, long n, cpu_level_t level) {
    if (level == CPU_LEVEL_AVX512) {
        round_fp16_avx512(x, n);
        return;
    }
    for (long i = 0; i < n; i++) x[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
}

/* head_dim (a multiple of 16, at most 128) floats held in registers across
 * the rows; each element sees the scalar loop's operations (a product, then a
 * sum; no fused multiply-add) in the same order. NV is a constant at each call
 * site, so the accumulators stay in registers (with a run-time count they went
 * through the stack, one store-to-load wait per row and chunk). */
K512 static inline __attribute__((always_inline)) void v_sum_nv(float *out, const float *s, int n, const float *v,
                                                                long stride, const int *idx, int accumulate,
                                                                const int NV) {
    __m512 acc[8];
#pragma GCC unroll 8
    for (int c = 0; c < NV; c++) acc[c] = accumulate ? _mm512_loadu_ps(out + 16 * c) : _mm512_setzero_ps();
    for (int p = 0; p < n; p++) {
        const float *vp = v + (idx ? idx[p] : p) * stride;
        __m512 sp = _mm512_set1_ps(s[p]);
#pragma GCC unroll 8
        for (int c = 0; c < NV; c++) acc[c] = _mm512_add_ps(acc[c], _mm512_mul_ps(sp, _mm512_loadu_ps(vp + 16 * c)));
    }
#pragma GCC unroll 8
    for (int c = 0; c < NV; c++) _mm512_storeu_ps(out + 16 * c, acc[c]);
}

K512 static void v_sum_avx512(float *out, const float *s, int n, const float *v, long stride, const int *idx,
                              int accumulate, int head_dim) {
    switch (head_dim / 16) {
    case 1: v_sum_nv(out, s, n, v, stride, idx, accumulate, 1); break;
    case 2: v_sum_nv(out, s, n, v, stride, idx, accumulate, 2); break;
    case 3: v_sum_nv(out, s, n, v, stride, idx, accumulate, 3); break;
    case 4: v_sum_nv(out, s, n, v, stride, idx, accumulate, 4); break;
    case 5: v_sum_nv(out, s, n, v, stride, idx, accumulate, 5); break;
    case 6: v_sum_nv(out, s, n, v, stride, idx, accumulate, 6); break;
    case 7: v_sum_nv(out, s, n, v, stride, idx, accumulate, 7); break;
    default: v_sum_nv(out, s, n, v, stride, idx, accumulate, 8); break;
    }
}

void attention_v_sum(float *out, const float *s, int n, const float *v, long stride, const int *idx, int accumulate,
                     int head_dim, cpu_level_t level) {
    if (level == CPU_LEVEL_AVX512 && head_dim % 16 == 0 && head_dim <= 128) {
        v_sum_avx512(out, s, n, v, stride, idx, accumulate, head_dim);
        return;
    }
    if (!accumulate) memset(out, 0, sizeof(float) * (size_t)head_dim);
    for (int p = 0; p < n; p++) {
        const float *vp = v + (idx ? idx[p] : p) * stride;
        float sp = s[p];
        for (int d = 0; d < head_dim; d++) out[d] += sp * vp[d];
    }
}

/* Sixteen dot products of q with rows r[0..15] at once: per row, the two
 * chains of mm_dot_f32_avx512 (acc0 over 32-float steps at offset 0, acc1 at
 * 16, fused multiply-adds from zero), then _mm512_reduce_add_ps of their sum,
 * done for all sixteen rows by one transposed tree with the same pairs per
 * lane (x[j] + x[j+8], then + 4, then + 2, then + 1), so each score has the
 * bits of matmul_dot_f32 at CPU_LEVEL_AVX512. NC = head_dim / 32. */
K512 static inline __attribute__((always_inline)) __m512 dots16(const __m512 *qv, const float *const *r, const int NC) {
    __m512 v[16];
#pragma GCC unroll 16
    for (int k = 0; k < 16; k++) {
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(r[k] + 32 * c), qv[2 * c], a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(r[k] + 32 * c + 16), qv[2 * c + 1], a1);
        }
        v[k] = _mm512_add_ps(a0, a1);
    }
    __m512 c8[8], d4[4], e2[2];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) /* lanes j + (j + 8): rows 2i (lanes 0-7) and 2i+1 (8-15) */
        c8[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44),
                              _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xee));
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) /* + 4: one row per 128-bit quarter */
        d4[i] = _mm512_add_ps(_mm512_shuffle_f32x4(c8[2 * i], c8[2 * i + 1], 0x88),
                              _mm512_shuffle_f32x4(c8[2 * i], c8[2 * i + 1], 0xdd));
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) /* + 2 */
        e2[i] = _mm512_add_ps(_mm512_shuffle_ps(d4[2 * i], d4[2 * i + 1], 0x44),
                              _mm512_shuffle_ps(d4[2 * i], d4[2 * i + 1], 0xee));
    __m512 f = _mm512_add_ps(_mm512_shuffle_ps(e2[0], e2[1], 0x88), _mm512_shuffle_ps(e2[0], e2[1], 0xdd)); /* + 1 */
    /* lane l now holds row {0,4,8,12,1,5,9,13,2,6,10,14,3,7,11,15}[l]; the same table maps row to lane */
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), f);
}

K512 static inline __attribute__((always_inline)) void scores_nc(float *scores, const float *q, const float *k, int n,
                                                                 long stride, const int *idx, float scale,
                                                                 const int NC) {
    __m512 qv[8];
#pragma GCC unroll 8
    for (int c = 0; c < 2 * NC; c++) qv[c] = _mm512_loadu_ps(q + 16 * c);
    __m512 sc = _mm512_set1_ps(scale);
    for (int p = 0; p < n; p += 16) {
        int m = n - p < 16 ? n - p : 16; /* a short last block repeats its last row; those lanes are not stored */
        const float *r[16];
        for (int j = 0; j < 16; j++) {
            int t = p + (j < m ? j : m - 1);
            r[j] = k + (idx ? idx[t] : t) * stride;
        }
        _mm512_mask_storeu_ps(scores + p, (__mmask16)((1u << m) - 1u), _mm512_mul_ps(sc, dots16(qv, r, NC)));
    }
}

K512 static void scores_avx512(float *scores, const float *q, const float *k, int n, long stride, const int *idx,
                               float scale, int head_dim) {
    switch (head_dim / 32) {
    case 1: scores_nc(scores, q, k, n, stride, idx, scale, 1); break;
    case 2: scores_nc(scores, q, k, n, stride, idx, scale, 2); break;
    case 3: scores_nc(scores, q, k, n, stride, idx, scale, 3); break;
    default: scores_nc(scores, q, k, n, stride, idx, scale, 4); break;
    }
}

void attention_scores(float *scores, const float *q, const float *k, int n, long stride, const int *idx, float scale,
                      int head_dim, cpu_level_t level) {
    if (level == CPU_LEVEL_AVX512 && head_dim % 32 == 0 && head_dim <= 128) {
        scores_avx512(scores, q, k, n, stride, idx, scale, head_dim);
        return;
    }
    for (int p = 0; p < n; p++) scores[p] = scale * matmul_dot_f32(head_dim, q, k + (idx ? idx[p] : p) * stride, level);
}

void attention_forward(float *out, const float *q, const float *k, const float *v, int n_kv, int head_dim,
                       long stride, float scale, float *scores, int round_p16, cpu_level_t level) {
    attention_scores(scores, q, k, n_kv, stride, NULL, scale, head_dim, level);
    softmax_forward(scores, n_kv);
    if (round_p16) round_fp16_forward(scores, n_kv, level);
    attention_v_sum(out, scores, n_kv, v, stride, NULL, 0, head_dim, level);
}
