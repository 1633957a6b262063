/* dequantize_row for the 256-element "K" super-block formats (llama.cpp layouts). */
#include "quant/dequant_internal.h"

#define QK_K 256

/* Six-bit scale and min j (0..7) packed into the 12-byte q4_K/q5_K scale field. */
static void scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* q2_K: scales[16] (low nibble scale, high nibble min), qs[64], fp16 d, fp16 dmin. */
void dequant_q2_k(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 84) {
        const uint8_t *scales = x, *q = x + 16;
        float d = dq_half(x + 80), dmin = dq_half(x + 82);
        int is = 0;
        for (int half = 0; half < 2; half++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; part++) {
                    uint8_t sc = scales[is++];
                    float dl = d * (float)(sc & 0x0f), ml = dmin * (float)(sc >> 4);
                    for (int l = 0; l < 16; l++) *y++ = dl * (float)((q[l + 16 * part] >> shift) & 3) - ml;
                }
            }
        }
    }
}

/* q3_K: hmask[32], qs[64], scales[12] (16 six-bit scales, offset 32), fp16 d. */
void dequant_q3_k(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 110) {
        const uint8_t *hm = x, *q = x + 32, *s = x + 96;
        float d = dq_half(x + 108);
        int8_t scales[16];
        for (int j = 0; j < 16; j++) {
            int lo = j < 8 ? (s[j] & 0x0f) : (s[j - 8] >> 4);
            int hi = (s[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
            scales[j] = (int8_t)((lo | (hi << 4)) - 32);
        }
        int is = 0;
        uint8_t m = 1;
        for (int half = 0; half < 2; half++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m = (uint8_t)(m << 1)) {
                for (int part = 0; part < 2; part++) {
                    float dl = d * (float)scales[is++];
                    for (int l = 0; l < 16; l++) {
                        int k = l + 16 * part;
                        int v = ((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4);
                        *y++ = dl * (float)v;
                    }
                }
            }
        }
    }
}

/* q4_K: fp16 d, fp16 dmin, scales[12], qs[128]; 8 sub-blocks of 32 with six-bit scale and min. */
void dequant_q4_k(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 144) {
        float d = dq_half(x), dmin = dq_half(x + 2);
        const uint8_t *sc = x + 4, *q = x + 16;
        for (int j = 0; j < 8; j += 2, q += 32) {
            uint8_t s1, m1, s2, m2;
            scale_min_k4(j, sc, &s1, &m1);
            scale_min_k4(j + 1, sc, &s2, &m2);
            float d1 = d * s1, o1 = dmin * m1, d2 = d * s2, o2 = dmin * m2;
            for (int l = 0; l < 32; l++) y[l] = d1 * (float)(q[l] & 0x0f) - o1;
            for (int l = 0; l < 32; l++) y[l + 32] = d2 * (float)(q[l] >> 4) - o2;
            y += 64;
        }
    }
}

/* q5_K: as q4_K plus qh[32] holding the fifth bit of each element. */
void dequant_q5_k(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 176) {
        float d = dq_half(x), dmin = dq_half(x + 2);
        const uint8_t *sc = x + 4, *qh = x + 16, *q = x + 48;
        for (int j = 0; j < 8; j += 2, q += 32) {
            uint8_t s1, m1, s2, m2;
            scale_min_k4(j, sc, &s1, &m1);
            scale_min_k4(j + 1, sc, &s2, &m2);
            float d1 = d * s1, o1 = dmin * m1, d2 = d * s2, o2 = dmin * m2;
            uint8_t u1 = (uint8_t)(1u << j), u2 = (uint8_t)(2u << j);
            for (int l = 0; l < 32; l++) y[l] = d1 * (float)((q[l] & 0x0f) + ((qh[l] & u1) ? 16 : 0)) - o1;
            for (int l = 0; l < 32; l++) y[l + 32] = d2 * (float)((q[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - o2;
            y += 64;
        }
    }
}

/* q6_K: ql[128] low nibbles, qh[64] two high bits, int8 scales[16], fp16 d; value offset 32. */
void dequant_q6_k(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 210) {
        const uint8_t *ql = x, *qh = x + 128;
        const int8_t *sc = (const int8_t *)(x + 192);
        float d = dq_half(x + 208);
        for (int half = 0; half < 2; half++, ql += 64, qh += 32, sc += 8, y += 128) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}
