/* dequantize_row: float types and the 32-element block formats (llama.cpp layouts). */
#include "quant/dequant_internal.h"

static void dequant_f32(const uint8_t *x, float *y, int64_t n) { memcpy(y, x, (size_t)n * sizeof(float)); }

static void dequant_f16(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = dq_half(x + 2 * i);
}

static void dequant_bf16(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, x + 2 * i, 2);
        y[i] = bf16_to_fp32(h);
    }
}

/* q8_0: fp16 d, 32 x int8. */
static void dequant_q8_0(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 34, y += 32) {
        float d = dq_half(x);
        const int8_t *q = (const int8_t *)(x + 2);
        for (int j = 0; j < 32; j++) y[j] = d * (float)q[j];
    }
}

/* q4_0: fp16 d, 16 bytes; low nibbles are elements 0..15, high nibbles 16..31; value (q-8)*d. */
static void dequant_q4_0(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 18, y += 32) {
        float d = dq_half(x);
        const uint8_t *q = x + 2;
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((q[j] & 0x0f) - 8);
            y[j + 16] = d * (float)((q[j] >> 4) - 8);
        }
    }
}

/* q4_1: fp16 d, fp16 m, 16 bytes of nibbles; value q*d + m. */
static void dequant_q4_1(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 20, y += 32) {
        float d = dq_half(x), m = dq_half(x + 2);
        const uint8_t *q = x + 4;
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)(q[j] & 0x0f) + m;
            y[j + 16] = d * (float)(q[j] >> 4) + m;
        }
    }
}

/* q5_0 / q5_1: the fifth bit of element j is bit j of the 32-bit qh. */
static void dequant_q5(const uint8_t *x, float *y, int64_t nb, int has_min) {
    size_t hdr = has_min ? 4 : 2, bytes = hdr + 4 + 16;
    for (int64_t b = 0; b < nb; b++, x += bytes, y += 32) {
        float d = dq_half(x), m = has_min ? dq_half(x + 2) : 0.0f;
        int off = has_min ? 0 : 16;
        uint32_t qh;
        memcpy(&qh, x + hdr, 4);
        const uint8_t *q = x + hdr + 4;
        for (int j = 0; j < 16; j++) {
            int lo = (q[j] & 0x0f) | (int)(((qh >> j) & 1) << 4);
            int hi = (q[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = d * (float)(lo - off) + m;
            y[j + 16] = d * (float)(hi - off) + m;
        }
    }
}

static const int8_t iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                        1,    13,   25,  38,  53,  69,  89,  113};

/* iq4_nl: like q4_0 but nibbles index a fixed non-linear table. */
static void dequant_iq4_nl(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 18, y += 32) {
        float d = dq_half(x);
        const uint8_t *q = x + 2;
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)iq4nl_values[q[j] & 0x0f];
            y[j + 16] = d * (float)iq4nl_values[q[j] >> 4];
        }
    }
}

bool ggml_type_can_dequantize(uint32_t type) {
    switch (type) {
    case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16:
    case GGML_TYPE_Q4_0: case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_0: case GGML_TYPE_Q5_1:
    case GGML_TYPE_Q8_0: case GGML_TYPE_IQ4_NL:
    case GGML_TYPE_Q2_K: case GGML_TYPE_Q3_K: case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: case GGML_TYPE_Q6_K:
        return true;
    default:
        return false;
    }
}

int dequantize_row(uint32_t type, const void *src, float *dst, int64_t n, tl_err_t *err) {
    size_t bytes;
    if (ggml_row_bytes(type, n, &bytes, err)) return -1;
    if (!ggml_type_can_dequantize(type))
        return tl_fail(err, "cannot dequantize tensor type %s", ggml_type_name(type));
    const uint8_t *x = src;
    int64_t nb = n / ggml_type_block_size(type);
    switch (type) {
    case GGML_TYPE_F32: dequant_f32(x, dst, n); break;
    case GGML_TYPE_F16: dequant_f16(x, dst, n); break;
    case GGML_TYPE_BF16: dequant_bf16(x, dst, n); break;
    case GGML_TYPE_Q8_0: dequant_q8_0(x, dst, nb); break;
    case GGML_TYPE_Q4_0: dequant_q4_0(x, dst, nb); break;
    case GGML_TYPE_Q4_1: dequant_q4_1(x, dst, nb); break;
    case GGML_TYPE_Q5_0: dequant_q5(x, dst, nb, 0); break;
    case GGML_TYPE_Q5_1: dequant_q5(x, dst, nb, 1); break;
    case GGML_TYPE_IQ4_NL: dequant_iq4_nl(x, dst, nb); break;
    case GGML_TYPE_Q2_K: dequant_q2_k(x, dst, nb); break;
    case GGML_TYPE_Q3_K: dequant_q3_k(x, dst, nb); break;
    case GGML_TYPE_Q4_K: dequant_q4_k(x, dst, nb); break;
    case GGML_TYPE_Q5_K: dequant_q5_k(x, dst, nb); break;
    case GGML_TYPE_Q6_K: dequant_q6_k(x, dst, nb); break;
    }
    return 0;
}
