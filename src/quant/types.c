/* ggml tensor type table (names, block geometry) and fp16/bf16 conversions. */
#include <string.h>

#include "quant/types.h"

typedef struct {
    const char *name;
    int64_t block;
    size_t bytes;
} type_info_t;

#define QK_K 256

/* Geometry of every id llama.cpp files may carry, so that files with types we
 * cannot dequantize still open and report correctly. Ids 31-33 and 36-38 are
 * retired in ggml and stay unknown. */
static const type_info_t type_table[GGML_TYPE_COUNT] = {
    [0] = {"f32", 1, 4},
    [1] = {"f16", 1, 2},
    [2] = {"q4_0", 32, 2 + 16},
    [3] = {"q4_1", 32, 2 + 2 + 16},
    [6] = {"q5_0", 32, 2 + 4 + 16},
    [7] = {"q5_1", 32, 2 + 2 + 4 + 16},
    [8] = {"q8_0", 32, 2 + 32},
    [9] = {"q8_1", 32, 2 + 2 + 32},
    [10] = {"q2_K", QK_K, QK_K / 16 + QK_K / 4 + 2 + 2},
    [11] = {"q3_K", QK_K, QK_K / 8 + QK_K / 4 + 12 + 2},
    [12] = {"q4_K", QK_K, 2 + 2 + 12 + QK_K / 2},
    [13] = {"q5_K", QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2},
    [14] = {"q6_K", QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2},
    [15] = {"q8_K", QK_K, 4 + QK_K + QK_K / 16 * 2},
    [16] = {"iq2_xxs", QK_K, 2 + QK_K / 8 * 2},
    [17] = {"iq2_xs", QK_K, 2 + QK_K / 8 * 2 + QK_K / 32},
    [18] = {"iq3_xxs", QK_K, 2 + 3 * QK_K / 8},
    [19] = {"iq1_s", QK_K, 2 + QK_K / 8 + QK_K / 32 * 2},
    [20] = {"iq4_nl", 32, 2 + 16},
    [21] = {"iq3_s", QK_K, 2 + QK_K / 4 + QK_K / 32 + QK_K / 8 + QK_K / 64},
    [22] = {"iq2_s", QK_K, 2 + QK_K / 4 + QK_K / 32 + QK_K / 32},
    [23] = {"iq4_xs", QK_K, 2 + 2 + QK_K / 64 + QK_K / 2},
    [24] = {"i8", 1, 1},
    [25] = {"i16", 1, 2},
    [26] = {"i32", 1, 4},
    [27] = {"i64", 1, 8},
    [28] = {"f64", 1, 8},
    [29] = {"iq1_m", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32},
    [30] = {"bf16", 1, 2},
    [34] = {"tq1_0", QK_K, (QK_K - 4 * QK_K / 64) / 5 + QK_K / 64 + 2},
    [35] = {"tq2_0", QK_K, QK_K / 4 + 2},
    [39] = {"mxfp4", 32, 1 + 16},
};

const char *ggml_type_name(uint32_t type) {
    return type < GGML_TYPE_COUNT ? type_table[type].name : NULL;
}

int64_t ggml_type_block_size(uint32_t type) {
    return type < GGML_TYPE_COUNT && type_table[type].name ? type_table[type].block : 0;
}

size_t ggml_type_block_bytes(uint32_t type) {
    return type < GGML_TYPE_COUNT && type_table[type].name ? type_table[type].bytes : 0;
}

int ggml_row_bytes(uint32_t type, int64_t n, size_t *out, tl_err_t *err) {
    int64_t bs = ggml_type_block_size(type);
    if (bs == 0) return tl_fail(err, "unknown tensor type %u", type);
    if (n < 0 || n % bs != 0)
        return tl_fail(err, "row of %lld elements is not a multiple of the %s block size %lld", (long long)n,
                       ggml_type_name(type), (long long)bs);
    uint64_t blocks = (uint64_t)(n / bs), bytes = ggml_type_block_bytes(type);
    if (blocks > SIZE_MAX / bytes) return tl_fail(err, "row of %lld %s elements is too large", (long long)n, ggml_type_name(type));
    *out = (size_t)(blocks * bytes);
    return 0;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float fp16_to_fp32(uint16_t h) {
    const uint32_t shifted_exp = 0x7c00u << 13;
    uint32_t o = (uint32_t)(h & 0x7fffu) << 13;
    uint32_t exp = shifted_exp & o;
    o += (uint32_t)(127 - 15) << 23;
    if (exp == shifted_exp) {
        o += (uint32_t)(128 - 16) << 23; /* inf or NaN */
    } else if (exp == 0) {
        o += 1u << 23; /* zero or subnormal: renormalise through the FPU */
        o = f32_bits(bits_f32(o) - bits_f32(113u << 23));
    }
    return bits_f32(o | ((uint32_t)(h & 0x8000u) << 16));
}

uint16_t fp32_to_fp16(float f) {
    const uint32_t f32_inf = 255u << 23, f16_max = (127u + 16) << 23;
    const uint32_t denorm_magic = ((127u - 15) + (23 - 10) + 1) << 23;
    uint32_t u = f32_bits(f), sign = u & 0x80000000u, o;
    u ^= sign;
    if (u >= f16_max) {
        o = u > f32_inf ? 0x7e00u : 0x7c00u;
    } else if (u < (113u << 23)) {
        o = f32_bits(bits_f32(u) + bits_f32(denorm_magic)) - denorm_magic;
    } else {
        uint32_t mant_odd = (u >> 13) & 1;
        u += ((uint32_t)(15 - 127) << 23) + 0xfffu;
        u += mant_odd;
        o = u >> 13;
    }
    return (uint16_t)(o | (sign >> 16));
}

float bf16_to_fp32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t fp32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64); /* quiet NaN */
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}
