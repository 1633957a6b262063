/* Quantizers for the 256-element "K" super-block formats (llama.cpp layouts).
 *
 * Each sub-block's scale (and minimum) is found by a search: candidate inverse
 * scales around the one that maps the extreme element to the end of the range,
 * a weighted least-squares refit of scale (and minimum) for the integers each
 * candidate gives, then a few re-round/refit steps. The sub-block scales are
 * then quantized to 6 (Q4_K/Q5_K) or 8 (Q6_K) bits against one fp16 super-block
 * scale, and each quantized sub-block scale is re-chosen among its neighbours
 * to minimise that sub-block's error with the stored fp16 super-block scale. */
#include <float.h>

#include "quant/quantize_internal.h"

#define QK_K 256

static inline float wt(const float *w, int j) { return w ? w[j] : 1.0f; }

/* ---- asymmetric sub-blocks: x ~ s * L - m, L in 0..nmax, m >= 0 ---- */

static float asym_err(const float *x, const float *w, int n, const uint8_t *L, float s, float m) {
    float e = 0.0f;
    for (int j = 0; j < n; j++) {
        float r = s * (float)L[j] - m - x[j];
        e += wt(w, j) * r * r;
    }
    return e;
}

/* Least-squares s and m >= 0 for the given integers; returns false if degenerate. */
static bool asym_refit(const float *x, const float *w, int n, const uint8_t *L, float *s, float *m) {
    float sw = 0, sl = 0, sl2 = 0, sx = 0, sxl = 0;
    for (int j = 0; j < n; j++) {
        float wj = wt(w, j), l = L[j];
        sw += wj;
        sl += wj * l;
        sl2 += wj * l * l;
        sx += wj * x[j];
        sxl += wj * x[j] * l;
    }
    float det = sw * sl2 - sl * sl;
    if (!(det > 0.0f)) return false;
    float ss = (sw * sxl - sx * sl) / det, off = (sl2 * sx - sl * sxl) / det; /* x ~ ss * l + off */
    if (off > 0.0f) {
        off = 0.0f;
        ss = sxl / sl2;
    }
    if (!(ss > 0.0f)) return false;
    *s = ss;
    *m = -off;
    return true;
}

static void asym_round(const float *x, int n, int nmax, float is, float m, uint8_t *L) {
    for (int j = 0; j < n; j++) L[j] = (uint8_t)qz_clamp(qz_nearest(is * (x[j] + m)), 0, nmax);
}

/* Returns the scale; *m_out gets the (non-negative) minimum, L the integers. */
static float fit_asym(const float *x, const float *w, int n, int nmax, uint8_t *L, float *m_out) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    if (lo > 0.0f) lo = 0.0f;
    if (!(hi > lo)) {
        memset(L, 0, (size_t)n);
        *m_out = -lo;
        return 0.0f;
    }
    uint8_t Lt[32];
    float bs = (hi - lo) / (float)nmax, bm = -lo;
    asym_round(x, n, nmax, 1.0f / bs, bm, L);
    float best = asym_err(x, w, n, L, bs, bm);
    /* the range mapped to nmax - 6 .. nmax + 0.8: whole numbers first (exact for
     * data already on a grid), then tenths around nmax */
    for (int k = 0; k <= 14; k++) {
        float span = k <= 6 ? (float)(nmax - k) : (float)nmax - 0.8f + 0.2f * (float)(k - 7);
        float is = span / (hi - lo), s, m;
        asym_round(x, n, nmax, is, -lo, Lt);
        if (!asym_refit(x, w, n, Lt, &s, &m)) continue;
        float e = asym_err(x, w, n, Lt, s, m);
        if (e < best) {
            best = e;
            bs = s;
            bm = m;
            memcpy(L, Lt, (size_t)n);
        }
    }
    for (int it = 0; it < 3; it++) {
        float s, m;
        asym_round(x, n, nmax, 1.0f / bs, bm, Lt);
        if (!asym_refit(x, w, n, Lt, &s, &m)) break;
        float e = asym_err(x, w, n, Lt, s, m);
        if (!(e < best)) break;
        best = e;
        bs = s;
        bm = m;
        memcpy(L, Lt, (size_t)n);
    }
    *m_out = bm;
    return bs;
}

/* Quantizes one super-block's 8 sub-blocks of 32 to 6-bit scales/mins; fills
 * d/dmin (as stored, fp16), ls/lm and L (0..nmax). */
static void superblock_asym(const float *x, const float *w, int nmax, uint8_t *hdr, uint8_t *ls, uint8_t *lm,
                            uint8_t *L) {
    float sc[8], mn[8], max_sc = 0.0f, max_mn = 0.0f;
    for (int j = 0; j < 8; j++) {
        sc[j] = fit_asym(x + 32 * j, w ? w + 32 * j : NULL, 32, nmax, L + 32 * j, &mn[j]);
        if (sc[j] > max_sc) max_sc = sc[j];
        if (mn[j] > max_mn) max_mn = mn[j];
    }
    qz_put_half(hdr, max_sc / 63.0f);
    qz_put_half(hdr + 2, max_mn / 63.0f);
    uint16_t hd, hm;
    memcpy(&hd, hdr, 2);
    memcpy(&hm, hdr + 2, 2);
    float d = fp16_to_fp32(hd), dmin = fp16_to_fp32(hm);
    uint8_t Lt[32];
    for (int j = 0; j < 8; j++) {
        const float *xj = x + 32 * j, *wj = w ? w + 32 * j : NULL;
        int s0 = d > 0.0f ? qz_clamp(qz_nearest(sc[j] / d), 0, 63) : 0;
        int m0 = dmin > 0.0f ? qz_clamp(qz_nearest(mn[j] / dmin), 0, 63) : 0;
        float best = FLT_MAX;
        for (int ds = -1; ds <= 1; ds++) {
            for (int dm = -1; dm <= 1; dm++) {
                int si = s0 + ds, mi = m0 + dm;
                if (si < 0 || si > 63 || mi < 0 || mi > 63) continue;
                float s = d * (float)si, m = dmin * (float)mi;
                if (s > 0.0f) asym_round(xj, 32, nmax, 1.0f / s, m, Lt);
                else memset(Lt, 0, 32);
                float e = asym_err(xj, wj, 32, Lt, s, m);
                if (e < best) {
                    best = e;
                    ls[j] = (uint8_t)si;
                    lm[j] = (uint8_t)mi;
                    memcpy(L + 32 * j, Lt, 32);
                }
            }
        }
    }
}

/* The 12-byte field of eight 6-bit scales and eight 6-bit mins. */
static void pack_scales_k4(const uint8_t *ls, const uint8_t *lm, uint8_t *q) {
    memset(q, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            q[j] = ls[j];
            q[j + 4] = lm[j];
        } else {
            q[j + 4] = (uint8_t)((ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4));
            q[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            q[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* q4_K: fp16 d, fp16 dmin, scales[12], qs[128]. */
void quantize_q4_k(const float *x, uint8_t *y, int64_t nb, const float *w) {
    uint8_t L[QK_K], ls[8], lm[8];
    for (int64_t b = 0; b < nb; b++, x += QK_K, y += 144, w = w ? w + QK_K : NULL) {
        superblock_asym(x, w, 15, y, ls, lm, L);
        pack_scales_k4(ls, lm, y + 4);
        uint8_t *q = y + 16;
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 32; l++) q[32 * p + l] = (uint8_t)(L[64 * p + l] | (L[64 * p + 32 + l] << 4));
    }
}

/* q5_K: fp16 d, fp16 dmin, scales[12], qh[32], qs[128]. */
void quantize_q5_k(const float *x, uint8_t *y, int64_t nb, const float *w) {
    uint8_t L[QK_K], ls[8], lm[8];
    for (int64_t b = 0; b < nb; b++, x += QK_K, y += 176, w = w ? w + QK_K : NULL) {
        superblock_asym(x, w, 31, y, ls, lm, L);
        pack_scales_k4(ls, lm, y + 4);
        uint8_t *qh = y + 16, *q = y + 48;
        memset(qh, 0, 32);
        for (int p = 0; p < 4; p++) {
            for (int l = 0; l < 32; l++) {
                int a = L[64 * p + l], c = L[64 * p + 32 + l];
                q[32 * p + l] = (uint8_t)((a & 0x0f) | ((c & 0x0f) << 4));
                qh[l] |= (uint8_t)(((a >> 4) << (2 * p)) | ((c >> 4) << (2 * p + 1)));
            }
        }
    }
}

/* ---- symmetric sub-blocks (q6_K): x ~ s * L, L in -32..31 ---- */

static float sym_fit(const float *x, const float *w, int n, float is, int8_t *L, float *score) {
    float sqx = 0, sq2 = 0;
    for (int j = 0; j < n; j++) {
        L[j] = (int8_t)qz_clamp(qz_nearest(is * x[j]), -32, 31);
        float wj = wt(w, j), l = L[j];
        sqx += wj * l * x[j];
        sq2 += wj * l * l;
    }
    *score = sq2 > 0 ? sqx * sqx / sq2 : 0.0f;
    return sq2 > 0 ? sqx / sq2 : 0.0f;
}

static float fit_sym(const float *x, const float *w, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    if (amax < 1e-30f) return 0.0f;
    int8_t Lt[16];
    float best = -1.0f, bs = 0.0f;
    /* the extreme element mapped to each of the outer integers on either side,
     * and to fractional points just beyond -32 */
    for (int k = -12; k <= 16; k++) {
        float target = k <= 0 ? -32.0f - 0.25f * (float)k : (k <= 8 ? -(float)(32 - k) : (float)(39 - k));
        float sc, s = sym_fit(x, w, n, target / max, Lt, &sc);
        if (sc > best) {
            best = sc;
            bs = s;
        }
    }
    for (int it = 0; it < 3 && bs != 0.0f; it++) {
        float sc, s = sym_fit(x, w, n, 1.0f / bs, Lt, &sc);
        if (!(sc > best)) break;
        best = sc;
        bs = s;
    }
    return bs;
}

static float sym_err(const float *x, const float *w, int n, float s, int8_t *L) {
    float e = 0.0f, is = s != 0.0f ? 1.0f / s : 0.0f;
    for (int j = 0; j < n; j++) {
        L[j] = (int8_t)qz_clamp(qz_nearest(is * x[j]), -32, 31);
        float r = s * (float)L[j] - x[j];
        e += wt(w, j) * r * r;
    }
    return e;
}

/* q6_K: ql[128] low nibbles, qh[64] two high bits, int8 scales[16], fp16 d. */
void quantize_q6_k(const float *x, uint8_t *y, int64_t nb, const float *w) {
    int8_t L[QK_K], Lt[16];
    float sc[16];
    for (int64_t b = 0; b < nb; b++, x += QK_K, y += 210, w = w ? w + QK_K : NULL) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 16; j++) {
            sc[j] = fit_sym(x + 16 * j, w ? w + 16 * j : NULL, 16);
            if (fabsf(sc[j]) > amax) {
                amax = fabsf(sc[j]);
                max = sc[j];
            }
        }
        int8_t *scales = (int8_t *)(y + 192);
        qz_put_half(y + 208, amax > 0.0f ? max / -128.0f : 0.0f);
        uint16_t hd;
        memcpy(&hd, y + 208, 2);
        float d = fp16_to_fp32(hd);
        for (int j = 0; j < 16; j++) {
            const float *xj = x + 16 * j, *wj = w ? w + 16 * j : NULL;
            int s0 = d != 0.0f ? qz_clamp(qz_nearest(sc[j] / d), -128, 127) : 0;
            float best = FLT_MAX;
            for (int ds = -1; ds <= 1; ds++) {
                int si = s0 + ds;
                if (si < -128 || si > 127 || (ds != 0 && d == 0.0f)) continue;
                float e = sym_err(xj, wj, 16, d * (float)si, Lt);
                if (e < best) {
                    best = e;
                    scales[j] = (int8_t)si;
                    memcpy(L + 16 * j, Lt, 16);
                }
            }
        }
        uint8_t *ql = y, *qh = y + 128;
        for (int half = 0; half < 2; half++, ql += 64, qh += 32) {
            const int8_t *Lh = L + 128 * half;
            for (int l = 0; l < 32; l++) {
                int q1 = Lh[l] + 32, q2 = Lh[l + 32] + 32, q3 = Lh[l + 64] + 32, q4 = Lh[l + 96] + 32;
                ql[l] = (uint8_t)((q1 & 0x0f) | ((q3 & 0x0f) << 4));
                ql[l + 32] = (uint8_t)((q2 & 0x0f) | ((q4 & 0x0f) << 4));
                qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
        }
    }
}
