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
 * accumulate: add into dx; otherwise overwrite. Uses env->pool, env->level
 * and env->scratch for the packed dy when it is large enough (else allocates).
 * Fails on an unsupported weight type. */
int matmul_backward_input(float *dx, const float *dy, const mm_weight_t *w, int n_tokens, const mm_env_t *env,
                          int accumulate, tl_err_t *err);

/* y[t * n_out + o] = sum_i W[o][i] * x[t * n_in + i]. Output rows are split
 * over the threads; env->scratch as above (packed x). */
int matmul_forward_dequant(float *y, const float *x, const mm_weight_t *w, int n_tokens, const mm_env_t *env,
                           tl_err_t *err);

/* A frozen weight's dequantized values laid out as the two products read
 * them, built once per training run so that no step dequantizes or
 * transposes: fwd holds, per panel of TL_GEMM_NR rows, the n_in x NR
 * transposed rows; bwd, per block of 128 rows (R of them) and per panel of NR
 * columns, R x NR values. The products read the same floats in the same
 * order as when they build the panels on the fly, so results are the same
 * bits. Costs 8 bytes per weight element; only for block types whose block
 * size is a multiple of NR (the Q and K quants), else both stay NULL. */
typedef struct {
    float *fwd, *bwd;
} mm_dq_t;
bool mm_dq_wanted(const mm_weight_t *w);
int mm_dq_build(mm_dq_t *d, const mm_weight_t *w, threadpool_t *pool, tl_err_t *err);
void mm_dq_free(mm_dq_t *d);
/* The products above reading a built mm_dq_t (NULL or empty: on the fly). */
int matmul_backward_input_dq(float *dx, const float *dy, const mm_weight_t *w, const mm_dq_t *dq, int n_tokens,
                             const mm_env_t *env, int accumulate, tl_err_t *err);
int matmul_forward_dequant_dq(float *y, const float *x, const mm_weight_t *w, const mm_dq_t *dq, int n_tokens,
                              const mm_env_t *env, tl_err_t *err);

/* Panel width of tl_gemm_panel (columns of B and C per call) and its token block. */
enum { TL_GEMM_NR = 32, TL_GEMM_MR = 8 };

/* Packs A (T x K, row stride lda) into token blocks of TL_GEMM_MR: block b
 * holds A[b * MR + a][k] at Ap[b * K * MR + k * MR + a], rows past T zero.
 * Ap holds tl_gemm_packed_floats(T, K) floats. Tokens [t0, t1) only, t0 a
 * multiple of MR (so that threads can pack disjoint blocks). */
size_t tl_gemm_packed_floats(int T, int K);
void tl_gemm_pack_a(float *Ap, const float *A, long lda, int T, int K, int t0, int t1);

/* Kernel: for t < T, j < nr (nr <= TL_GEMM_NR), with A packed by
 * tl_gemm_pack_a (Ap may point at column k0 of the packed A: Ap + k0 * MR;
 * ap_ld = floats between token blocks, MR * the packed K):
 *   C[t * ldc + j] = (accumulate ? C[t * ldc + j] : 0) + sum_{k < K} A[t][k] * B[k * ldb + j]
 * summed as fmaf(A, B, s) in ascending k. AVX-512: 8 tokens x 32 columns in
 * 16 zmm accumulators per block; AVX2: 4 x 16; scalar: the plain loop. */
void tl_gemm_panel(int T, int K, const float *Ap, long ap_ld, const float *B, long ldb, int nr, float *C, long ldc,
                   int accumulate, cpu_level_t level);

/* C[m * ldc + n] = (accumulate ? C : 0) + sum_k (alpha * A[m * sa_m + k * sa_k]) * B[k * ldb + n]
 * for m < M, n < N: A (either orientation, through its strides) is packed
 * scaled by alpha, then multiplied panel by panel; the tiles are split over
 * the pool's threads (NULL: the calling thread). Each element is one FMA
 * chain in ascending k, whatever the thread count. Fails only when out of memory. */
int tl_gemm(threadpool_t *pool, cpu_level_t level, int M, int N, int K, float alpha, const float *A, long sa_m,
            long sa_k, const float *B, long ldb, int accumulate, float *C, long ldc);

#endif
