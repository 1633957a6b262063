/* quantize_row: conversions, the 32-element round-to-nearest formats and IQ4_NL. */
#include "quant/quantize.h"

#include <ctype.h>
#include <float.h>

#include "quant/quantize_internal.h"

#define QK 32

/* ---- conversions ---- */

static void quantize_f16(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = fp32_to_fp16(x[i]);
        memcpy(y + 2 * i, &h, 2);
    }
}

static void quantize_bf16(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = fp32_to_bf16(x[i]);
        memcpy(y + 2 * i, &h, 2);
    }
}

/* ---- round-to-nearest 32-element formats ---- */

/* The element of largest magnitude, with its sign (the first one on ties). */
static float signed_absmax(const float *x, int n, float *amax_out) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    if (amax_out) *amax_out = amax;
    return max;
}

static void min_max(const float *x, int n, float *mn, float *mx) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

/* q8_0: d = max|x| / 127, q = round(x / d) (halves away from zero). */
static void quantize_q8_0(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += QK, y += 34) {
        float amax;
        signed_absmax(x, QK, &amax);
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        qz_put_half(y, d);
        for (int j = 0; j < QK; j++) y[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

/* q4_0: the largest-magnitude element maps to -8; q = x / d + 8 rounded, at most 15. */
static void quantize_q4_0(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += QK, y += 18) {
        float d = signed_absmax(x, QK, NULL) / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        qz_put_half(y, d);
        for (int j = 0; j < QK / 2; j++) {
            int q0 = qz_clamp((int)(x[j] * id + 8.5f), 0, 15);
            int q1 = qz_clamp((int)(x[j + QK / 2] * id + 8.5f), 0, 15);
            y[2 + j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* q4_1: d = (max - min) / 15, m = min, q = (x - min) / d rounded. */
static void quantize_q4_1(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += QK, y += 20) {
        float mn, mx;
        min_max(x, QK, &mn, &mx);
        float d = (mx - mn) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        qz_put_half(y, d);
        qz_put_half(y + 2, mn);
        for (int j = 0; j < QK / 2; j++) {
            int q0 = qz_clamp((int)((x[j] - mn) * id + 0.5f), 0, 15);
            int q1 = qz_clamp((int)((x[j + QK / 2] - mn) * id + 0.5f), 0, 15);
            y[4 + j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* Packs 32 five-bit values: low nibbles as q4, fifth bits into a little-endian u32. */
static void pack_q5(const int *q, uint8_t *qh_out, uint8_t *qs) {
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0f) | ((q[j + QK / 2] & 0x0f) << 4));
        qh |= (uint32_t)((q[j] >> 4) & 1) << j;
        qh |= (uint32_t)((q[j + QK / 2] >> 4) & 1) << (j + QK / 2);
    }
    uint8_t le[4] = {(uint8_t)qh, (uint8_t)(qh >> 8), (uint8_t)(qh >> 16), (uint8_t)(qh >> 24)};
    memcpy(qh_out, le, 4);
}

/* q5_0: the largest-magnitude element maps to -16; q = x / d + 16 rounded, at most 31. */
static void quantize_q5_0(const float *x, uint8_t *y, int64_t nb) {
    int q[QK];
    for (int64_t b = 0; b < nb; b++, x += QK, y += 22) {
        float d = signed_absmax(x, QK, NULL) / -16.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        qz_put_half(y, d);
        for (int j = 0; j < QK; j++) q[j] = qz_clamp((int)(x[j] * id + 16.5f), 0, 31);
        pack_q5(q, y + 2, y + 6);
    }
}

/* q5_1: d = (max - min) / 31, m = min. */
static void quantize_q5_1(const float *x, uint8_t *y, int64_t nb) {
    int q[QK];
    for (int64_t b = 0; b < nb; b++, x += QK, y += 24) {
        float mn, mx;
        min_max(x, QK, &mn, &mx);
        float d = (mx - mn) / 31.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        qz_put_half(y, d);
        qz_put_half(y + 2, mn);
        for (int j = 0; j < QK; j++) q[j] = qz_clamp((int)((x[j] - mn) * id + 0.5f), 0, 31);
        pack_q5(q, y + 4, y + 8);
    }
}

/* ---- iq4_nl: one scale per 32 elements, 4-bit indices into a fixed non-linear table ---- */

static const int8_t iq4nl_table[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* Nearest table index for v in table units, through a lookup on half-unit
 * buckets: every midpoint between neighbouring table values is a multiple of
 * 0.5, so the nearest value is constant within a bucket. */
#define IQ4NL_LO (-128)
#define IQ4NL_NB (2 * (114 - IQ4NL_LO))

typedef struct {
    uint8_t idx[IQ4NL_NB];
} iq4nl_lut_t;

static void iq4nl_lut_init(iq4nl_lut_t *t) {
    for (int b = 0; b < IQ4NL_NB; b++) {
        float v = (float)IQ4NL_LO + 0.5f * (float)b + 0.25f; /* bucket centre */
        int best = 0;
        for (int k = 1; k < 16; k++)
            if (fabsf(v - (float)iq4nl_table[k]) < fabsf(v - (float)iq4nl_table[best])) best = k;
        t->idx[b] = (uint8_t)best;
    }
}

static inline int iq4nl_index(const iq4nl_lut_t *t, float v) {
    float b = floorf((v - (float)IQ4NL_LO) * 2.0f);
    if (!(b >= 0.0f)) return 0;
    if (b >= (float)IQ4NL_NB) return 15;
    return t->idx[(int)b];
}

/* Assigns indices for inverse scale id and returns the least-squares scale for them;
 * *score is sum(w q x)^2 / sum(w q^2), which grows as the weighted error shrinks. */
static float iq4nl_fit(const iq4nl_lut_t *t, const float *x, const float *w, float id, uint8_t *L, float *score) {
    float sqx = 0.0f, sq2 = 0.0f;
    for (int j = 0; j < QK; j++) {
        L[j] = (uint8_t)iq4nl_index(t, x[j] * id);
        float q = iq4nl_table[L[j]], wq = (w ? w[j] : 1.0f) * q;
        sqx += wq * x[j];
        sq2 += wq * q;
    }
    *score = sq2 > 0.0f ? sqx * sqx / sq2 : 0.0f;
    return sq2 > 0.0f ? sqx / sq2 : 0.0f;
}

static void quantize_iq4_nl(const float *x, uint8_t *y, int64_t nb, const float *w) {
    uint8_t L[QK];
    iq4nl_lut_t lut;
    iq4nl_lut_init(&lut);
    for (int64_t b = 0; b < nb; b++, x += QK, y += 18, w = w ? w + QK : NULL) {
        float amax, max = signed_absmax(x, QK, &amax);
        if (amax < 1e-30f) {
            qz_put_half(y, 0.0f);
            memset(y + 2, 0x88, QK / 2);
            continue;
        }
        /* candidate scales map the extreme element near either end of the table */
        float best = -1.0f, d = 0.0f;
        for (int side = 0; side < 2; side++) {
            float end = side == 0 ? (float)iq4nl_table[0] : (float)iq4nl_table[15];
            int span = side == 0 ? 6 : 2;
            for (int t = -span; t <= span; t++) {
                float s, dt = iq4nl_fit(&lut, x, w, (end + (side == 0 ? (float)t : -(float)t)) / max, L, &s);
                if (s > best) {
                    best = s;
                    d = dt;
                }
            }
        }
        /* refine: re-assign indices for the fitted scale, refit, while it improves */
        for (int it = 0; it < 3 && d != 0.0f; it++) {
            float s, dt = iq4nl_fit(&lut, x, w, 1.0f / d, L, &s);
            if (!(s > best)) break;
            best = s;
            d = dt;
        }
        qz_put_half(y, d);
        float dh = fp16_to_fp32(fp32_to_fp16(d)), idh = dh != 0.0f ? 1.0f / dh : 0.0f;
        for (int j = 0; j < QK; j++) L[j] = (uint8_t)iq4nl_index(&lut, x[j] * idh);
        for (int j = 0; j < QK / 2; j++) y[2 + j] = (uint8_t)(L[j] | (L[j + QK / 2] << 4));
    }
}

/* ---- dispatch ---- */

bool quantize_type_supported(uint32_t type) {
    switch (type) {
    case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16: case GGML_TYPE_Q8_0: case GGML_TYPE_Q4_0:
    case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_0: case GGML_TYPE_Q5_1: case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K:
    case GGML_TYPE_Q6_K: case GGML_TYPE_IQ4_NL:
        return true;
    default:
        return false;
    }
}

bool quantize_type_uses_importance(uint32_t type) {
    return type == GGML_TYPE_Q4_K || type == GGML_TYPE_Q5_K || type == GGML_TYPE_Q6_K || type == GGML_TYPE_IQ4_NL;
}

int quantize_row(uint32_t type, const float *src, void *dst, int64_t n, const float *importance, tl_err_t *err) {
    if (!quantize_type_supported(type))
        return tl_fail(err, "quantize: cannot write type %s", ggml_type_name(type) ? ggml_type_name(type) : "(unknown)");
    int64_t bs = ggml_type_block_size(type);
    if (n <= 0 || n % bs != 0)
        return tl_fail(err, "quantize: row of %lld elements is not a multiple of the %s block size %lld", (long long)n,
                       ggml_type_name(type), (long long)bs);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(src[i])) return tl_fail(err, "quantize: element %lld is not finite", (long long)i);
    uint8_t *y = dst;
    int64_t nb = n / bs;
    switch (type) {
    case GGML_TYPE_F32: memcpy(y, src, (size_t)n * sizeof(float)); break;
    case GGML_TYPE_F16: quantize_f16(src, y, n); break;
    case GGML_TYPE_BF16: quantize_bf16(src, y, n); break;
    case GGML_TYPE_Q8_0: quantize_q8_0(src, y, nb); break;
    case GGML_TYPE_Q4_0: quantize_q4_0(src, y, nb); break;
    case GGML_TYPE_Q4_1: quantize_q4_1(src, y, nb); break;
    case GGML_TYPE_Q5_0: quantize_q5_0(src, y, nb); break;
    case GGML_TYPE_Q5_1: quantize_q5_1(src, y, nb); break;
    case GGML_TYPE_IQ4_NL: quantize_iq4_nl(src, y, nb, importance); break;
    case GGML_TYPE_Q4_K: quantize_q4_k(src, y, nb, importance); break;
    case GGML_TYPE_Q5_K: quantize_q5_k(src, y, nb, importance); break;
    case GGML_TYPE_Q6_K: quantize_q6_k(src, y, nb, importance); break;
    default: break;
    }
    return 0;
}

int quantize_type_from_name(const char *name) {
    char low[16];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof low; i++) low[i] = (char)tolower((unsigned char)name[i]);
    if (name[i]) return -1;
    low[i] = '\0';
    for (uint32_t t = 0; t < GGML_TYPE_COUNT; t++) {
        const char *tn = ggml_type_name(t);
        if (!tn || !quantize_type_supported(t)) continue;
        char tl[16];
        size_t k = 0;
        for (; tn[k] && k + 1 < sizeof tl; k++) tl[k] = (char)tolower((unsigned char)tn[k]);
        tl[k] = '\0';
        if (strcmp(tl, low) == 0) return (int)t;
    }
    return -1;
}
