/* Element-wise and per-row kernels of the forward pass (plain C; the matmuls,
 * which take nearly all the time, are in quant/matmul.h). */
#ifndef TL_MODEL_KERNELS_H
#define TL_MODEL_KERNELS_H

#include <stdint.h>

#include "core/cpu.h"
#include "core/threadpool.h"

/* Chunk of (token, head) attention items for threadpool_for: about an eighth
 * of a thread's share. */
static inline long attn_grain(long n_items, const threadpool_t *pool) {
    long g = n_items / (8L * threadpool_n_threads(pool));
    return g < 1 ? 1 : g;
}

/* 1 / sqrt(mean(x^2) + eps), the sum of squares in double (8 interleaved
 * partial sums in a fixed order: the same bits at every CPU level). */
float rmsnorm_scale(const float *x, int n, float eps);
/* y = x * rmsnorm_scale(x) * w, n elements. */
void rmsnorm_forward(float *y, const float *x, const float *w, int n, float eps);

/* Rotation tables for one position: cs[2*i] = cos(theta_i), cs[2*i+1] = sin(theta_i),
 * theta_i = pos * base^(-2i/n_rot), i < n_rot/2. */
void rope_table(float *cs, int pos, int n_rot, float freq_base);
/* Rotates the first n_rot dims of each of n_heads vectors of head_dim floats.
 * neox = false: adjacent pairs (x[2i], x[2i+1]) (llama); true: (x[i], x[i+n_rot/2]). */
void rope_forward(float *x, int n_heads, int head_dim, int n_rot, const float *cs, int neox);

/* In-place softmax of n floats (max-subtracted, exponential of model/vexp.h,
 * sum in double; the same bits at every CPU level). */
void softmax_forward(float *x, int n);

/* g[i] = silu(g[i]) * u[i] = g / (1 + vexp(-g)) * u (model/vexp.h; the same
 * bits at every CPU level). */
void swiglu_forward(float *g, const float *u, int n);

/* One head of causal attention for a query at position n_kv - 1:
 * out = softmax(scale * K q) V over the n_kv cached rows. k and v point at the
 * head's first element of row 0; consecutive rows are `stride` floats apart.
 * scores needs n_kv floats. round_p16: round the probabilities to fp16 before
 * weighting V (llama.cpp multiplies an F16 V cache by fp16 probabilities). */
void attention_forward(float *out, const float *q, const float *k, const float *v, int n_kv, int head_dim,
                       long stride, float scale, float *scores, int round_p16, cpu_level_t level);

/* x[i] = fp16_to_fp32(fp32_to_fp16(x[i])) (round to nearest even); at
 * CPU_LEVEL_AVX512 with the F16C instructions, the same bits for every
 * non-NaN value. */
void round_fp16_forward(float *x, long n, cpu_level_t level);

/* scores[p] = scale * (q . row_p) for p < n, rows as attention_v_sum reads
 * them (stride, optional idx); each dot product has matmul_dot_f32's bits at
 * the level (AVX-512 computes sixteen rows at once with the same operations). */
void attention_scores(float *scores, const float *q, const float *k, int n, long stride, const int *idx, float scale,
                      int head_dim, cpu_level_t level);

/* out[d] (+)= sum over p < n, in order, of s[p] * row_p[d], d < head_dim, with
 * row_p = v + p * stride, or v + idx[p] * stride when idx is given;
 * accumulate = 0 starts from zero. Every level gives the plain loop's bits
 * (a product, then a sum, per element and row). */
void attention_v_sum(float *out, const float *s, int n, const float *v, long stride, const int *idx, int accumulate,
                     int head_dim, cpu_level_t level);

#endif
