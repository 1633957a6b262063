/* Products with frozen, possibly quantized weights for training:
 *   forward  y  = x . W^T   (matmul_forward_dequant)
 *   backward dx = dy . W    (matmul_backward_input)
 * for the weight of quant/matmul.h in whatever type it is stored (F32, F16,
 * BF16, Q4_x, Q5_x, Q8_0, K-quants, IQ4_NL). Rows are dequantized to fp32 on
 * the fly (fp32 activations, no activation quantization, unlike
 * matmul_forward) into small blocks, and multiplied by one register-blocked
 * panel kernel (tl_gemm_panel). Every output element is one FMA chain in
 * ascending order of the summed index, whatever the blocking, the thread
 * count or the SIMD level, so results are deterministic and the SIMD kernels
 * are bit-identical to the scalar one. */
#ifndef TL_TRAIN_MATMUL_BWD_H
#define TL_TRAIN_MATMUL_BWD_H

#include "core/cpu.h"
#include "core/err.h"
#include "quant/matmul.h"

/* dx[t * n_in + i] (+)= sum_o dy[t * n_out + o] * W[o][i], t < n_tokens.
 * accumulate: add into dx; otherwise overwrite. Uses env->pool and env->level
 * (env->scratch is not used). Fails on an unsupported weight type. */
int matmul_backward_input(float *dx, const float *dy, const mm_weight_t *w, int n_tokens, const mm_env_t *env,
                          int accumulate, tl_err_t *err);

/* y[t * n_out + o] = sum_i W[o][i] * x[t * n_in + i]. Output rows are split
 * over the threads. */
int matmul_forward_dequant(float *y, const float *x, const mm_weight_t *w, int n_tokens, const mm_env_t *env,
                           tl_err_t *err);

/* Panel width of tl_gemm_panel (columns of B and C per call). */
enum { TL_GEMM_NR = 32 };

/* Kernel: for t < T, j < nr (nr <= TL_GEMM_NR):
 *   C[t * ldc + j] = (accumulate ? C[t * ldc + j] : 0) + sum_{k < K} A[t * lda + k] * B[k * ldb + j]
 * summed as fmaf(A, B, s) in ascending k. Tokens are register-blocked by 8
 * (AVX-512: 8 x 32 accumulators), the B rows are read nr wide. */
void tl_gemm_panel(int T, int K, const float *A, long lda, const float *B, long ldb, int nr, float *C, long ldc,
                   int accumulate, cpu_level_t level);

#endif
