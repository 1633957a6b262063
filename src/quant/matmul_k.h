/* Q4_K and Q6_K weights times Q8_K activations (llama.cpp's 256-element
 * "K" super-blocks). Activations are quantized per 256 elements to int8 with
 * an fp32 scale and per-16 sums (bsums), exactly as llama.cpp's
 * quantize_row_q8_K_ref. Every variant computes each super-block's integer sum
 * exactly and then does the same fp32 operations in the same order, so the
 * AVX2 and AVX-512 kernels equal the scalar reference bit for bit. */
#ifndef TL_QUANT_MATMUL_K_H
#define TL_QUANT_MATMUL_K_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cpu.h"
#include "quant/matmul.h"

#define MM_QK_K 256

typedef struct { float d; int8_t qs[MM_QK_K]; int16_t bsums[MM_QK_K / 16]; } mm_block_q8_k_t;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[MM_QK_K / 2]; } mm_block_q4_k_t;
typedef struct { uint8_t ql[MM_QK_K / 2]; uint8_t qh[MM_QK_K / 4]; int8_t scales[MM_QK_K / 16]; uint16_t d; } mm_block_q6_k_t;

/* True for Q4_K and Q6_K. */
bool mm_k_supports(uint32_t type);
/* Bytes per weight row of n_in elements (a multiple of 256); 0 for other types. */
size_t mm_k_row_bytes(uint32_t type, int64_t n_in);
/* n a multiple of 256: d = -max/127 where max is the element of largest magnitude,
 * q = min(127, round-half-even(x / d)), bsums[j] = sum of q[16j .. 16j+15]. */
void matmul_quantize_q8_k(const float *x, mm_block_q8_k_t *y, int64_t n);
/* One weight row (of `type`) times one Q8_K activation row. */
float mm_k_dot(uint32_t type, int64_t n, const void *w, const mm_block_q8_k_t *a, cpu_level_t level);

/* n_tokens > 1 at CPU_LEVEL_AVX512: rows [r0, r1) of w times every Q8_K
 * activation row (act_row bytes apart), each super-block unpacked once for
 * eight tokens; out[t * n_out + r] equals mm_k_dot at that level bit for bit. */
bool mm_k_gemm_supports(uint32_t type, int n_tokens, cpu_level_t level);
void mm_k_gemm_rows(const mm_weight_t *w, const void *act, size_t act_row, int n_tokens, long r0, long r1, float *out);

float matmul_dot_q4_k_q8_k(int64_t n, const mm_block_q4_k_t *w, const mm_block_q8_k_t *a, cpu_level_t level);
float matmul_dot_q6_k_q8_k(int64_t n, const mm_block_q6_k_t *w, const mm_block_q8_k_t *a, cpu_level_t level);

#endif
