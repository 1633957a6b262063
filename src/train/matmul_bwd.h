/* Gradient with respect to the input of a frozen weight: dx = dy . W for the
 * weight of quant/matmul.h in whatever type it is stored (F32, Q4_1, Q8_0).
 * Blocks of rows are dequantized on the fly into a small fp32 tile; the
 * columns are split over the threads (each output element is summed by one
 * thread in a fixed order, so results do not depend on timing). */
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

/* Kernel: dx[c] += sum_{r < R} dy[r] * tile[r * ld + c] for c < n. */
void matmul_bwd_tile(float *dx, const float *dy, const float *tile, long ld, int R, int n, cpu_level_t level);

#endif

/* Training forward over the same weights: y[t * n_out + o] = sum_i W[o][i] *
 * x[t * n_in + i], with W's rows dequantized to fp32 in blocks and fp32
 * activations (no activation quantization, unlike matmul_forward). Output rows
 * are split over the threads. */
int matmul_forward_dequant(float *y, const float *x, const mm_weight_t *w, int n_tokens, const mm_env_t *env,
                           tl_err_t *err);

/* Kernel: y[t * ldy + r] = sum_{i < n} x[t * ldx + i] * tile[r * ld + i] for t < T, r < R. */
void matmul_fwd_tile(float *y, long ldy, const float *x, long ldx, const float *tile, long ld, int T, int R, int n,
                     cpu_level_t level);
