/* Private to the matmul: per-level kernel variants and fp16 helpers. */
#ifndef TL_QUANT_MATMUL_KERNELS_H
#define TL_QUANT_MATMUL_KERNELS_H

#include <string.h>

#include "quant/matmul.h"

static inline float mm_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Round to nearest even, like the hardware conversion. */
static inline uint16_t mm_fp32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* overflow to inf */
    if (ax < 0x38800000u) { /* subnormal half or zero */
        if (ax < 0x33000000u) return (uint16_t)sign;
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t half = m >> shift, rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = ((ax - 0x38000000u) >> 13), rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float mm_dot_q4_1_q8_1_avx2(int64_t n, const mm_block_q4_1_t *w, const mm_block_q8_1_t *a);
float mm_dot_q8_0_q8_0_avx2(int64_t n, const mm_block_q8_0_t *w, const mm_block_q8_0_t *a);
float mm_dot_f32_avx2(int64_t n, const float *w, const float *a);
float mm_dot_q4_1_q8_1_avx512(int64_t n, const mm_block_q4_1_t *w, const mm_block_q8_1_t *a);
float mm_dot_q8_0_q8_0_avx512(int64_t n, const mm_block_q8_0_t *w, const mm_block_q8_0_t *a);
float mm_dot_f32_avx512(int64_t n, const float *w, const float *a);
void mm_quantize_q8_0_avx2(const float *x, mm_block_q8_0_t *y, int64_t n);
void mm_quantize_q8_1_avx2(const float *x, mm_block_q8_1_t *y, int64_t n);
void mm_quantize_q8_0_avx512(const float *x, mm_block_q8_0_t *y, int64_t n);
void mm_quantize_q8_1_avx512(const float *x, mm_block_q8_1_t *y, int64_t n);

#endif
