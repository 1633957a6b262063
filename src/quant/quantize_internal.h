/* Private to the quantizers: little-endian stores and the per-type row functions. */
#ifndef TL_QUANT_QUANTIZE_INTERNAL_H
#define TL_QUANT_QUANTIZE_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "quant/types.h"

static inline void qz_put_half(uint8_t *p, float v) {
    uint16_t h = fp32_to_fp16(v);
    memcpy(p, &h, 2);
}

/* Rounds to nearest, ties to even: adding 1.5 * 2^23 leaves the rounded integer
 * in the low mantissa bits (exact for |v| < 2^22; larger values take lrintf). */
static inline int qz_nearest(float v) {
    if (!(fabsf(v) < 4194304.0f)) return fabsf(v) < 2e9f ? (int)lrintf(v) : (v < 0.0f ? -2000000000 : 2000000000);
    float f = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &f, 4);
    return (i & 0x007fffff) - 0x00400000;
}

static inline int qz_clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Each quantizes nb super-blocks of 256 elements; w is NULL or one weight per element. */
void quantize_q4_k(const float *x, uint8_t *y, int64_t nb, const float *w);
void quantize_q5_k(const float *x, uint8_t *y, int64_t nb, const float *w);
void quantize_q6_k(const float *x, uint8_t *y, int64_t nb, const float *w);

#endif
