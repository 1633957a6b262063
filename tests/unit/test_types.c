/* Tensor types: geometry, fp16/bf16 conversions against hand-checked values,
 * and dequantization of hand-built blocks against values computed here from
 * the published block layouts. */
#include <stdint.h>
#include <stdlib.h>

#include "quant/types.h"
#include "tl_test.h"

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

TEST(test_geometry) {
    CHECK_STR(ggml_type_name(GGML_TYPE_Q4_1), "q4_1");
    CHECK_STR(ggml_type_name(GGML_TYPE_Q6_K), "q6_K");
    CHECK(ggml_type_name(4) == NULL);
    CHECK(ggml_type_name(1000) == NULL);
    CHECK_EQ_INT(ggml_type_block_size(GGML_TYPE_Q8_0), 32);
    CHECK_EQ_INT(ggml_type_block_bytes(GGML_TYPE_Q8_0), 34);
    CHECK_EQ_INT(ggml_type_block_bytes(GGML_TYPE_Q4_0), 18);
    CHECK_EQ_INT(ggml_type_block_bytes(GGML_TYPE_Q4_1), 20);
    CHECK_EQ_INT(ggml_type_block_bytes(GGML_TYPE_Q5_0), 22);
    CHECK_EQ_INT(ggml_type_block_bytes(GGML_TYPE_Q5_1), 24);
    CHECK_EQ_INT(ggml_type_block_bytes(GGML_TYPE_Q2_K), 84);
    CHECK_EQ_INT(ggml_type_block_bytes(GGML_TYPE_Q3_K), 110);
    CHECK_EQ_INT(ggml_type_block_bytes(GGML_TYPE_Q4_K), 144);
    CHECK_EQ_INT(ggml_type_block_bytes(GGML_TYPE_Q5_K), 176);
    CHECK_EQ_INT(ggml_type_block_bytes(GGML_TYPE_Q6_K), 210);
    CHECK_EQ_INT(ggml_type_block_bytes(GGML_TYPE_Q8_K), 292);
    CHECK_EQ_INT(ggml_type_block_size(GGML_TYPE_Q4_K), 256);
    CHECK_EQ_INT(ggml_type_block_size(GGML_TYPE_BF16), 1);
    CHECK_EQ_INT(ggml_type_block_size(5), 0);
    size_t rb = 0;
    tl_err_t err = {{0}};
    CHECK_EQ_INT(ggml_row_bytes(GGML_TYPE_Q4_1, 576, &rb, &err), 0);
    CHECK_EQ_INT(rb, 18 * 20);
    CHECK_EQ_INT(ggml_row_bytes(GGML_TYPE_F16, 7, &rb, &err), 0);
    CHECK_EQ_INT(rb, 14);
    CHECK_EQ_INT(ggml_row_bytes(GGML_TYPE_Q4_K, 576, &rb, &err), -1);
    CHECK_CONTAINS(err.msg, "q4_K");
    CHECK_EQ_INT(ggml_row_bytes(77, 32, &rb, &err), -1);
    CHECK_CONTAINS(err.msg, "77");
}

TEST(test_fp16_to_fp32) {
    CHECK(fp16_to_fp32(0x3c00) == 1.0f);
    CHECK(fp16_to_fp32(0xc000) == -2.0f);
    CHECK(fp16_to_fp32(0x7bff) == 65504.0f);
    CHECK(fp16_to_fp32(0x3555) == 0.333251953125f);
    CHECK(fp16_to_fp32(0x0001) == ldexpf(1.0f, -24)); /* smallest subnormal */
    CHECK(fp16_to_fp32(0x03ff) == 1023.0f * ldexpf(1.0f, -24)); /* largest subnormal */
    CHECK(fp16_to_fp32(0x0400) == ldexpf(1.0f, -14)); /* smallest normal */
    CHECK(fp16_to_fp32(0x8001) == -ldexpf(1.0f, -24));
    CHECK_EQ_INT(bits(fp16_to_fp32(0x8000)), 0x80000000u);
    CHECK(isinf(fp16_to_fp32(0x7c00)) && fp16_to_fp32(0x7c00) > 0);
    CHECK(isinf(fp16_to_fp32(0xfc00)) && fp16_to_fp32(0xfc00) < 0);
    CHECK(isnan(fp16_to_fp32(0x7e00)));
    CHECK(isnan(fp16_to_fp32(0x7c01)));
}

TEST(test_fp32_to_fp16) {
    CHECK_EQ_INT(fp32_to_fp16(1.0f), 0x3c00);
    CHECK_EQ_INT(fp32_to_fp16(-2.0f), 0xc000);
    CHECK_EQ_INT(fp32_to_fp16(65504.0f), 0x7bff);
    CHECK_EQ_INT(fp32_to_fp16(65519.0f), 0x7bff);  /* below the midpoint to 65536 */
    CHECK_EQ_INT(fp32_to_fp16(65520.0f), 0x7c00);  /* midpoint, ties to even = overflow */
    CHECK_EQ_INT(fp32_to_fp16(1e6f), 0x7c00);
    CHECK_EQ_INT(fp32_to_fp16(-1e6f), 0xfc00);
    CHECK_EQ_INT(fp32_to_fp16(-0.0f), 0x8000);
    CHECK_EQ_INT(fp32_to_fp16(1e-8f), 0x0000);     /* under half the smallest subnormal */
    CHECK_EQ_INT(fp32_to_fp16(3e-8f), 0x0001);     /* over half of it */
    CHECK_EQ_INT(fp32_to_fp16(ldexpf(1.0f, -25)), 0x0000);        /* tie 0 / 1 ulp: even */
    CHECK_EQ_INT(fp32_to_fp16(3.0f * ldexpf(1.0f, -25)), 0x0002); /* tie 1 / 2 ulp: even */
    CHECK_EQ_INT(fp32_to_fp16(1.0f + ldexpf(1.0f, -11)), 0x3c00); /* tie: down to even */
    CHECK_EQ_INT(fp32_to_fp16(1.0f + 3.0f * ldexpf(1.0f, -11)), 0x3c02); /* tie: up to even */
    CHECK_EQ_INT(fp32_to_fp16(1.0f + ldexpf(1.0f, -11) + ldexpf(1.0f, -20)), 0x3c01);
    CHECK_EQ_INT(fp32_to_fp16(INFINITY), 0x7c00);
    uint16_t n = fp32_to_fp16(NAN);
    CHECK((n & 0x7c00) == 0x7c00 && (n & 0x03ff) != 0);
    /* every non-NaN half survives a round trip through fp32 */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;
        if (fp32_to_fp16(fp16_to_fp32((uint16_t)h)) != h) bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(test_bf16) {
    CHECK(bf16_to_fp32(0x3f80) == 1.0f);
    CHECK(bf16_to_fp32(0xc040) == -3.0f);
    CHECK_EQ_INT(fp32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ_INT(fp32_to_bf16(from_bits(0x3f808000)), 0x3f80); /* tie: down to even */
    CHECK_EQ_INT(fp32_to_bf16(from_bits(0x3f818000)), 0x3f82); /* tie: up to even */
    CHECK_EQ_INT(fp32_to_bf16(from_bits(0x3f808001)), 0x3f81);
    CHECK_EQ_INT(fp32_to_bf16(INFINITY), 0x7f80);
    CHECK_EQ_INT(fp32_to_bf16(from_bits(0x7f7fffff)), 0x7f80); /* rounds to infinity */
    uint16_t n = fp32_to_bf16(from_bits(0x7f800001)); /* signalling NaN stays NaN */
    CHECK(isnan(bf16_to_fp32(n)));
    CHECK(isinf(bf16_to_fp32(0xff80)) && bf16_to_fp32(0xff80) < 0);
}

TEST(test_dequant_float_types) {
    float src[3] = {1.5f, -2.25f, 1e-3f}, out[3];
    tl_err_t err = {{0}};
    CHECK_EQ_INT(dequantize_row(GGML_TYPE_F32, src, out, 3, &err), 0);
    CHECK(out[0] == 1.5f && out[1] == -2.25f && out[2] == 1e-3f);
    uint8_t h[6];
    put16(h, 0x3c00); put16(h + 2, 0xc000); put16(h + 4, 0x0001);
    CHECK_EQ_INT(dequantize_row(GGML_TYPE_F16, h, out, 3, &err), 0);
    CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == ldexpf(1.0f, -24));
    put16(h, 0x3f80); put16(h + 2, 0xc040); put16(h + 4, 0x4049);
    CHECK_EQ_INT(dequantize_row(GGML_TYPE_BF16, h, out, 3, &err), 0);
    CHECK(out[0] == 1.0f && out[1] == -3.0f && out[2] == 3.140625f);
}

TEST(test_dequant_q8_0_q4_0_q4_1) {
    uint8_t b[40];
    float y[32];
    tl_err_t err = {{0}};
    put16(b, 0x3800); /* d = 0.5 */
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)(j - 16);
    CHECK_EQ_INT(dequantize_row(GGML_TYPE_Q8_0, b, y, 32, &err), 0);
    for (int j = 0; j < 32; j++) CHECK(y[j] == 0.5f * (float)(j - 16));

    put16(b, 0x4000); /* d = 2 */
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)((j & 0xf) | ((15 - j) << 4));
    CHECK_EQ_INT(dequantize_row(GGML_TYPE_Q4_0, b, y, 32, &err), 0);
    for (int j = 0; j < 16; j++) {
        CHECK(y[j] == 2.0f * (float)(j - 8));
        CHECK(y[j + 16] == 2.0f * (float)(15 - j - 8));
    }

    put16(b, 0x3400); put16(b + 2, 0xbc00); /* d = 0.25, m = -1 */
    for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)(((j * 7) & 0xf) | ((j ^ 5) << 4));
    CHECK_EQ_INT(dequantize_row(GGML_TYPE_Q4_1, b, y, 32, &err), 0);
    for (int j = 0; j < 16; j++) {
        CHECK(y[j] == 0.25f * (float)((j * 7) & 0xf) - 1.0f);
        CHECK(y[j + 16] == 0.25f * (float)(j ^ 5) - 1.0f);
    }
    CHECK_EQ_INT(dequantize_row(GGML_TYPE_Q4_1, b, y, 31, &err), -1);
    CHECK_CONTAINS(err.msg, "31");
}

TEST(test_dequant_q5_iq4nl) {
    uint8_t b[24];
    float y[32];
    tl_err_t err = {{0}};
    uint32_t qh = 0xA5C30F96u;
    put16(b, 0x3c00); /* q5_0: d = 1 */
    memcpy(b + 2, &qh, 4);
    for (int j = 0; j < 16; j++) b[6 + j] = (uint8_t)(j | ((15 - j) << 4));
    CHECK_EQ_INT(dequantize_row(GGML_TYPE_Q5_0, b, y, 32, &err), 0);
    for (int j = 0; j < 16; j++) {
        CHECK(y[j] == (float)((j | (int)(((qh >> j) & 1) << 4)) - 16));
        CHECK(y[j + 16] == (float)(((15 - j) | (int)(((qh >> (j + 16)) & 1) << 4)) - 16));
    }
    put16(b, 0x3800); put16(b + 2, 0x3c00); /* q5_1: d = 0.5, m = 1 */
    memcpy(b + 4, &qh, 4);
    for (int j = 0; j < 16; j++) b[8 + j] = (uint8_t)(j | ((15 - j) << 4));
    CHECK_EQ_INT(dequantize_row(GGML_TYPE_Q5_1, b, y, 32, &err), 0);
    for (int j = 0; j < 16; j++) {
        CHECK(y[j] == 0.5f * (float)(j | (int)(((qh >> j) & 1) << 4)) + 1.0f);
        CHECK(y[j + 16] == 0.5f * (float)((15 - j) | (int)(((qh >> (j + 16)) & 1) << 4)) + 1.0f);
    }
    static const int table[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    put16(b, 0x4000); /* iq4_nl: d = 2 */
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(j | ((15 - j) << 4));
    CHECK_EQ_INT(dequantize_row(GGML_TYPE_IQ4_NL, b, y, 32, &err), 0);
    for (int j = 0; j < 16; j++) {
        CHECK(y[j] == 2.0f * (float)table[j]);
        CHECK(y[j + 16] == 2.0f * (float)table[15 - j]);
    }
}

/* q4_K: 8 sub-blocks of 32; sub-block s has 6-bit scale sc[s] and min mn[s]. */
TEST(test_dequant_q4_k) {
    uint8_t b[144] = {0};
    int sc[8], mn[8], q[256];
    for (int s = 0; s < 8; s++) {
        sc[s] = s < 4 ? 3 + s : 40 + s; /* high sub-blocks need the upper two bits */
        mn[s] = s < 4 ? 60 - s : 17 + 5 * s;
    }
    for (int i = 0; i < 256; i++) q[i] = (i * 11 + i / 7) & 15;
    put16(b, 0x3800); put16(b + 2, 0x3400); /* d = 0.5, dmin = 0.25 */
    uint8_t *s12 = b + 4;
    for (int j = 0; j < 4; j++) {
        s12[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        s12[j + 4] = (uint8_t)((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
        s12[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
    }
    for (int i = 0; i < 256; i++) { /* sub-blocks 2k and 2k+1 share bytes 32k..32k+31 */
        int s = i / 32, l = i % 32, byte = 16 + (s / 2) * 32 + l;
        b[byte] |= (uint8_t)(s % 2 ? q[i] << 4 : q[i]);
    }
    float y[256];
    tl_err_t err = {{0}};
    CHECK_EQ_INT(dequantize_row(GGML_TYPE_Q4_K, b, y, 256, &err), 0);
    int bad = 0;
    for (int i = 0; i < 256; i++)
        if (y[i] != 0.5f * (float)sc[i / 32] * (float)q[i] - 0.25f * (float)mn[i / 32]) bad++;
    CHECK_EQ_INT(bad, 0);
}

/* q6_K: 16 groups of 16 with int8 scales; 6-bit values offset by 32. */
TEST(test_dequant_q6_k) {
    uint8_t b[210] = {0};
    int q[256], sc[16];
    for (int g = 0; g < 16; g++) sc[g] = (g % 2 ? -1 : 1) * (g + 1) * 7;
    for (int i = 0; i < 256; i++) q[i] = (i * 37 + 5) & 63;
    for (int i = 0; i < 256; i++) {
        int h = i / 128, r = i % 128, quarter = r / 32, l = r % 32;
        int ql = h * 64 + (quarter % 2) * 32 + l;
        b[ql] |= (uint8_t)(quarter < 2 ? (q[i] & 15) : (q[i] & 15) << 4);
        b[128 + h * 32 + l] |= (uint8_t)((q[i] >> 4) << (2 * quarter));
    }
    for (int g = 0; g < 16; g++) b[192 + g] = (uint8_t)(int8_t)sc[g];
    put16(b + 208, 0x3400); /* d = 0.25 */
    float y[256];
    tl_err_t err = {{0}};
    CHECK_EQ_INT(dequantize_row(GGML_TYPE_Q6_K, b, y, 256, &err), 0);
    int bad = 0;
    for (int i = 0; i < 256; i++) /* element i is in 16-group i/16 */
        if (y[i] != 0.25f * (float)sc[i / 16] * (float)(q[i] - 32)) bad++;
    CHECK_EQ_INT(bad, 0);
}

TEST(test_dequant_rejects) {
    tl_err_t err = {{0}};
    float y[256];
    uint8_t b[300] = {0};
    CHECK_EQ_INT(dequantize_row(GGML_TYPE_Q8_K, b, y, 256, &err), -1);
    CHECK_CONTAINS(err.msg, "q8_K");
    CHECK_EQ_INT(dequantize_row(99, b, y, 32, &err), -1);
    CHECK(!ggml_type_can_dequantize(GGML_TYPE_Q8_1));
    CHECK(ggml_type_can_dequantize(GGML_TYPE_Q6_K));
}

int main(void) {
    RUN(test_geometry);
    RUN(test_fp16_to_fp32);
    RUN(test_fp32_to_fp16);
    RUN(test_bf16);
    RUN(test_dequant_float_types);
    RUN(test_dequant_q8_0_q4_0_q4_1);
    RUN(test_dequant_q5_iq4nl);
    RUN(test_dequant_q4_k);
    RUN(test_dequant_q6_k);
    RUN(test_dequant_rejects);
    return tl_test_summary("test_types");
}
