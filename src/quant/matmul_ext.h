/* Matmul kernels for weight types that keep their 4/5-bit blocks at run time:
 * Q4_0, Q5_0 and IQ4_NL weights times Q8_0 activations. Each dot product has a
 * scalar reference twin; the block integer sums are exact in every variant,
 * only the fp32 accumulation order differs (see tests/unit/test_kernels_quant.c
 * for the bound). Private to src/quant/ except for the tests. */
#ifndef TL_QUANT_MATMUL_EXT_H
#define TL_QUANT_MATMUL_EXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cpu.h"
#include "quant/matmul.h"

typedef struct { uint16_t d; uint8_t qs[MM_QK / 2]; } mm_block_q4_0_t;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[MM_QK / 2]; } mm_block_q5_0_t;
typedef struct { uint16_t d; uint8_t qs[MM_QK / 2]; } mm_block_iq4_nl_t;

/* The sixteen IQ4_NL levels (llama.cpp's table). */
extern const int8_t mm_iq4_nl_levels[16];

/* True for the weight types handled here. */
bool mm_ext_supports(uint32_t type);
/* Bytes per weight row of n_in elements; 0 for other types. */
size_t mm_ext_row_bytes(uint32_t type, int64_t n_in);
/* One weight row (of `type`) times one Q8_0 activation row. */
float mm_ext_dot(uint32_t type, int64_t n, const void *w, const mm_block_q8_0_t *a, cpu_level_t level);

float matmul_dot_q4_0_q8_0(int64_t n, const mm_block_q4_0_t *w, const mm_block_q8_0_t *a, cpu_level_t level);
float matmul_dot_q5_0_q8_0(int64_t n, const mm_block_q5_0_t *w, const mm_block_q8_0_t *a, cpu_level_t level);
float matmul_dot_iq4_nl_q8_0(int64_t n, const mm_block_iq4_nl_t *w, const mm_block_q8_0_t *a, cpu_level_t level);

#endif
