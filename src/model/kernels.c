#include "model/kernels.h"

#include <math.h>
#include <string.h>

#include "quant/matmul.h"
#include "quant/types.h"

void rmsnorm_forward(float *y, const float *x, const float *w, int n, float eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(ss / n) + eps);
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

void softmax_forward(float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void swiglu_forward(float *g, const float *u, int n) {
    for (int i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void attention_forward(float *out, const float *q, const float *k, const float *v, int n_kv, int head_dim,
                       long stride, float scale, float *scores, int round_p16, cpu_level_t level) {
    for (int p = 0; p < n_kv; p++) scores[p] = scale * matmul_dot_f32(head_dim, q, k + p * stride, level);
    softmax_forward(scores, n_kv);
    if (round_p16)
        for (int p = 0; p < n_kv; p++) scores[p] = fp16_to_fp32(fp32_to_fp16(scores[p]));
    memset(out, 0, sizeof(float) * (size_t)head_dim);
    for (int p = 0; p < n_kv; p++) {
        const float *vp = v + p * stride;
        float s = scores[p];
        for (int d = 0; d < head_dim; d++) out[d] += s * vp[d];
    }
}
