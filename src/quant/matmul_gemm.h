/* Tiled matrix-matrix kernels for batched passes (n_tokens > 1).
 *
 * The activations of one call are quantized once (matmul.c) and then packed
 * into a "panel": tiles of MM_GEMM_TS token slots, and for every pair of
 * 32-element blocks the slots' 64 int8 values, their fp32 scales spread over
 * the 16 lanes, an integer correction per lane and (Q8_1) the block sums. A
 * kernel then multiplies R weight rows by T token slots at a time, unpacking
 * each weight block pair once for all T tokens and loading each token's block
 * pair once for all R rows.
 *
 * Weights (Q4_1, Q5_0) are widened to unsigned bytes w + K (K = 0 for Q4_1
 * nibbles, 16 for Q5_0) and multiplied with
 * vpdpbusd; the packed correction -K * (sum of the lane's four activations)
 * makes every 32-bit lane hold exactly the integer the single-row kernel
 * computes for it. The fp32 operations per (row, token) are then those of the
 * single-row AVX-512 kernel, in the same order, so a token's result is bit for
 * bit the same as matmul_dot_* at CPU_LEVEL_AVX512, whatever tile, batch or
 * thread count it is computed in (tests/unit/test_gemm.c). An AVX2 variant
 * (2 rows x 4 tokens, no panel) does the same for the AVX2 single-row kernels. */
#ifndef TL_QUANT_MATMUL_GEMM_H
#define TL_QUANT_MATMUL_GEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cpu.h"
#include "quant/matmul.h"

#define MM_GEMM_TS 8 /* token slots per panel tile */

/* True if the tiled kernels handle weights of this type at this level for n_tokens (> 1) tokens. */
bool mm_gemm_supports(uint32_t type, int64_t n_in, int n_tokens, cpu_level_t level);
/* Bytes of the panel for n_tokens activation rows of n_in elements (0 if n_in has fewer than two blocks). */
size_t mm_gemm_panel_bytes(int64_t n_in, int n_tokens);
/* Packs panel tiles [k0, k1) from the quantized activation rows act (act_row bytes each, n_tokens
 * rows: Q8_1 for Q4_1 weights, Q8_0 otherwise); slots past n_tokens are zero. */
void mm_gemm_pack(uint32_t type, int64_t n_in, const void *act, size_t act_row, int n_tokens, long k0, long k1,
                  void *panel);
/* out[t * w->n_out + r] for rows [r0, r1) and every token t < n_tokens. At
 * CPU_LEVEL_AVX2 the panel is not used (NULL): the AVX2 tiles read the
 * activation rows in place and equal the AVX2 single-row kernels bit for bit. */
void mm_gemm_rows(const mm_weight_t *w, const void *panel, const void *act, size_t act_row, int n_tokens, long r0,
                  long r1, float *out, cpu_level_t level);

/* Q4_K / Q6_K (matmul_k.c), n_tokens > 1 at CPU_LEVEL_AVX512: rows [r0, r1) of w
 * times every Q8_K activation row (act_row bytes apart), each super-block
 * unpacked once for eight tokens; out[t * n_out + r] equals mm_k_dot at that
 * level bit for bit. */
bool mm_k_gemm_supports(uint32_t type, int n_tokens, cpu_level_t level);
void mm_k_gemm_rows(const mm_weight_t *w, const void *act, size_t act_row, int n_tokens, long r0, long r1, float *out);

#endif
