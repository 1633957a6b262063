/* Private to the dequantizers: little-endian loads and per-type row functions. */
#ifndef TL_QUANT_DEQUANT_INTERNAL_H
#define TL_QUANT_DEQUANT_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "quant/types.h"

static inline float dq_half(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return fp16_to_fp32(h);
}

/* Each takes nb blocks of its type and writes nb * block_size floats. */
void dequant_q2_k(const uint8_t *x, float *y, int64_t nb);
void dequant_q3_k(const uint8_t *x, float *y, int64_t nb);
void dequant_q4_k(const uint8_t *x, float *y, int64_t nb);
void dequant_q5_k(const uint8_t *x, float *y, int64_t nb);
void dequant_q6_k(const uint8_t *x, float *y, int64_t nb);

#endif
