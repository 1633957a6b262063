/* ggml tensor types: ids, block geometry and dequantization to fp32.
 * Block layouts are llama.cpp's, byte for byte. */
#ifndef TL_QUANT_TYPES_H
#define TL_QUANT_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef enum {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_Q8_K = 15,
    GGML_TYPE_IQ4_NL = 20,
    GGML_TYPE_BF16 = 30,
    GGML_TYPE_COUNT = 40,
} ggml_type_t;

/* Name ("q4_1"), or NULL for an unknown id. */
const char *ggml_type_name(uint32_t type);
/* Elements per block and bytes per block; 0 for unknown ids. */
int64_t ggml_type_block_size(uint32_t type);
size_t ggml_type_block_bytes(uint32_t type);
/* Bytes for a row of n elements; fails if n is not a multiple of the block size or the type is unknown. */
int ggml_row_bytes(uint32_t type, int64_t n, size_t *out, tl_err_t *err);
/* True if dequantize_row handles the type. */
bool ggml_type_can_dequantize(uint32_t type);
/* Dequantizes n elements (a multiple of the block size) starting at a block boundary. */
int dequantize_row(uint32_t type, const void *src, float *dst, int64_t n, tl_err_t *err);

/* IEEE half and bfloat16 conversions (round-to-nearest-even on the way down). */
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);

#endif
