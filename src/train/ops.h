/* Training kernels: the backward twins of the forward kernels in
 * model/kernels.h, the causal attention that keeps its probabilities for the
 * backward pass, the answer-token cross-entropy and the small fp32 matrix
 * products of LoRA. All fp32; gradients of frozen weights are never formed.
 * Forward/backward pairs share a stem (rmsnorm_forward / rmsnorm_backward). */
#ifndef TL_TRAIN_OPS_H
#define TL_TRAIN_OPS_H

#include <stdint.h>

#include "core/cpu.h"
#include "core/threadpool.h"

/* dx (+)= d/dx of y = x * rms(x)^-1 * w given dy (w frozen, no gradient).
 * accumulate: add into dx instead of overwriting it. */
void rmsnorm_backward(float *dx, const float *dy, const float *x, const float *w, int n, float eps, int accumulate);

/* Inverse rotation of rope_forward (the gradient of a rotation is its transpose). */
void rope_backward(float *dx, int n_heads, int head_dim, int n_rot, const float *cs, int neox);

/* h = silu(g) * u: dg, du from dh (n elements; g, u are the forward inputs). */
void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, int n);

/* Causal self-attention over one sequence of T tokens for one query head:
 * q, k, v, out rows are `qstride` / `kvstride` / `qstride` floats apart
 * (pointing at the head's first element). P (T x T, row i = query i) receives
 * the probabilities; entries above the diagonal are set to 0. The AVX-512
 * level (head_dim a multiple of 16) is bit-identical to the scalar one: dot
 * products as 16 FMA lane chains folded pairwise, updates as one FMA each. */
void causal_attention_forward(float *out, float *P, const float *q, const float *k, const float *v, int T,
                              int head_dim, long qstride, long kvstride, float scale, cpu_level_t level);
/* Backward of one head: dq is written, dk and dv are accumulated (several query
 * heads share a kv head). tmp needs T floats. */
void causal_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *P, const float *q,
                               const float *k, const float *v, int T, int head_dim, long qstride, long kvstride,
                               float scale, float *tmp, cpu_level_t level);

/* The same for the queries at positions q0 .. T-1 only (keys and values
 * 0 .. T-1; out, q, dq, dout point at position q0's row; P has T - q0 rows of
 * T). Row i's result is bit for bit the one of the full-sequence functions: a
 * batch whose sequences share a prompt prefix evaluates the prefix once and
 * each sequence's own tokens with these (train/tgraph.c). */
void causal_attention_forward_from(float *out, float *P, const float *q, const float *k, const float *v, int q0,
                                   int T, int head_dim, long qstride, long kvstride, float scale, cpu_level_t level);
void causal_attention_backward_from(float *dq, float *dk, float *dv, const float *dout, const float *P,
                                    const float *q, const float *k, const float *v, int q0, int T, int head_dim,
                                    long qstride, long kvstride, float scale, float *tmp, cpu_level_t level);

/* Log-softmax cross-entropy of one logit row against `target` (dlogits may be
 * the logits row itself, overwritten): returns
 * log p(target). If dlogits is non-NULL it receives (softmax - onehot) * gscale. */
double cross_entropy_forward_backward(const float *logits, int n, int32_t target, float *dlogits, float gscale);

/* C[m][n] = beta * C[m][n] + alpha * sum_k op(A)[m][k] * op(B)[k][n],
 * op(A)[m][k] = ta ? A[k * lda + m] : A[m * lda + k], likewise B. Runs on the
 * panel kernel of train/matmul_bwd.h at the given SIMD level (alpha * op(A)
 * packed, op(B) transposed first when tb), tiles split over the pool's
 * threads (pool may be NULL); beta = 0 ignores C's previous contents. Each
 * element is summed in a fixed order, whatever the thread count. */
void train_sgemm(threadpool_t *pool, cpu_level_t level, int ta, int tb, int M, int N, int K, float alpha,
                 const float *A, long lda, const float *B, long ldb, float beta, float *C, long ldc);

#endif
