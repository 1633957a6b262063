/* Q4_K / Q6_K x Q8_K dot products: scalar reference, AVX2, AVX-512 VNNI (see matmul_k.h). */
#include "quant/matmul_k.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "quant/matmul_kernels.h"
#include "quant/types.h"

#define K_AVX2 __attribute__((target("avx2,fma,f16c")))
#define K_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

bool mm_k_supports(uint32_t type) { return type == GGML_TYPE_Q4_K || type == GGML_TYPE_Q6_K; }

size_t mm_k_row_bytes(uint32_t type, int64_t n_in) {
    size_t nb = (size_t)(n_in / MM_QK_K);
    switch (type) {
    case GGML_TYPE_Q4_K: return nb * sizeof(mm_block_q4_k_t);
    case GGML_TYPE_Q6_K: return nb * sizeof(mm_block_q6_k_t);
    default: return 0;
    }
}

void matmul_quantize_q8_k(const float *x, mm_block_q8_k_t *y, int64_t n) {
    for (int64_t b = 0; b < n / MM_QK_K; b++, x += MM_QK_K) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < MM_QK_K; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        if (amax == 0.0f) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        float iscale = -127.0f / max;
        for (int j = 0; j < MM_QK_K; j++) {
            int v = (int)nearbyintf(iscale * x[j]);
            y[b].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < MM_QK_K / 16; j++) {
            int s = 0;
            for (int i = 0; i < 16; i++) s += y[b].qs[16 * j + i];
            y[b].bsums[j] = (int16_t)s;
        }
        y[b].d = 1.0f / iscale;
    }
}

/* Six-bit scale and min of sub-block j (0..7) from the 12-byte field. */
static inline void k4_scale_min(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* The fp32 combination shared by every variant (same operations, same order). */
static inline float q4_k_combine(float sumf, const mm_block_q4_k_t *w, const mm_block_q8_k_t *a, int sumi, int summ) {
    float d = mm_fp16_to_fp32(w->d) * a->d, dmin = mm_fp16_to_fp32(w->dmin) * a->d;
    sumf += d * (float)sumi;
    return sumf - dmin * (float)summ;
}

static int q4_k_mins(const mm_block_q4_k_t *w, const mm_block_q8_k_t *a, int *sc) {
    int summ = 0;
    for (int j = 0; j < 8; j++) {
        int m;
        k4_scale_min(j, w->scales, &sc[j], &m);
        summ += m * (a->bsums[2 * j] + a->bsums[2 * j + 1]);
    }
    return summ;
}

static float dot_q4_k_ref(int64_t n, const mm_block_q4_k_t *w, const mm_block_q8_k_t *a) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / MM_QK_K; b++) {
        int sc[8], summ = q4_k_mins(&w[b], &a[b], sc), sumi = 0;
        for (int p = 0; p < 4; p++) {
            int lo = 0, hi = 0;
            for (int l = 0; l < 32; l++) {
                lo += (w[b].qs[32 * p + l] & 0x0f) * a[b].qs[64 * p + l];
                hi += (w[b].qs[32 * p + l] >> 4) * a[b].qs[64 * p + 32 + l];
            }
            sumi += sc[2 * p] * lo + sc[2 * p + 1] * hi;
        }
        sumf = q4_k_combine(sumf, &w[b], &a[b], sumi, summ);
    }
    return sumf;
}

/* Element e of a q6_K block as 0..63 (the stored value before the -32 offset). */
static inline int q6_k_value(const mm_block_q6_k_t *w, int e) {
    int h = e / 128, r = e % 128, k = r / 32, l = r % 32;
    int ql = w->ql[h * 64 + (k & 1) * 32 + l], lo = k < 2 ? ql & 0x0f : ql >> 4;
    return lo | ((w->qh[h * 32 + l] >> (2 * k)) & 3) << 4;
}

static int q6_k_offset(const mm_block_q6_k_t *w, const mm_block_q8_k_t *a) {
    int s = 0;
    for (int j = 0; j < 16; j++) s += w->scales[j] * a->bsums[j];
    return 32 * s;
}

static float dot_q6_k_ref(int64_t n, const mm_block_q6_k_t *w, const mm_block_q8_k_t *a) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / MM_QK_K; b++) {
        int isum = 0;
        for (int s = 0; s < 16; s++) {
            int t = 0;
            for (int i = 0; i < 16; i++) t += q6_k_value(&w[b], 16 * s + i) * a[b].qs[16 * s + i];
            isum += w[b].scales[s] * t;
        }
        isum -= q6_k_offset(&w[b], &a[b]);
        sumf += mm_fp16_to_fp32(w[b].d) * a[b].d * (float)isum;
    }
    return sumf;
}

K_AVX2 static inline int hsum_i32_256(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

K_AVX2 static float dot_q4_k_avx2(int64_t n, const mm_block_q4_k_t *w, const mm_block_q8_k_t *a) {
    float sumf = 0.0f;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int64_t b = 0; b < n / MM_QK_K; b++) {
        int sc[8], summ = q4_k_mins(&w[b], &a[b], sc);
        __m256i acc = _mm256_setzero_si256();
        for (int p = 0; p < 4; p++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * p));
            __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            __m256i alo = _mm256_loadu_si256((const __m256i *)(a[b].qs + 64 * p));
            __m256i ahi = _mm256_loadu_si256((const __m256i *)(a[b].qs + 64 * p + 32));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, alo), _mm256_set1_epi16((short)sc[2 * p])));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(hi, ahi), _mm256_set1_epi16((short)sc[2 * p + 1])));
        }
        sumf = q4_k_combine(sumf, &w[b], &a[b], hsum_i32_256(acc), summ);
    }
    return sumf;
}

/* VNNI: two sub-blocks (64 elements) per vpdpbusd, scaled with one vpmulld. */
K_AVX512 static float dot_q4_k_avx512(int64_t n, const mm_block_q4_k_t *w, const mm_block_q8_k_t *a) {
    float sumf = 0.0f;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int64_t b = 0; b < n / MM_QK_K; b++) {
        int sc[8], summ = q4_k_mins(&w[b], &a[b], sc);
        __m512i acc = _mm512_setzero_si512();
        for (int p = 0; p < 4; p++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * p));
            __m512i qw = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(q, m4)),
                                            _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), 1);
            __m512i qa = _mm512_loadu_si512((const void *)(a[b].qs + 64 * p));
            __m512i s = _mm512_mask_blend_epi32(0xff00, _mm512_set1_epi32(sc[2 * p]), _mm512_set1_epi32(sc[2 * p + 1]));
            acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), qw, qa), s));
        }
        sumf = q4_k_combine(sumf, &w[b], &a[b], _mm512_reduce_add_epi32(acc), summ);
    }
    return sumf;
}

K_AVX2 static float dot_q6_k_avx2(int64_t n, const mm_block_q6_k_t *w, const mm_block_q8_k_t *a) {
    float sumf = 0.0f;
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    for (int64_t b = 0; b < n / MM_QK_K; b++) {
        __m256i acc = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i qh = _mm256_loadu_si256((const __m256i *)(w[b].qh + 32 * h));
            for (int k = 0; k < 4; k++) {
                __m256i ql = _mm256_loadu_si256((const __m256i *)(w[b].ql + 64 * h + 32 * (k & 1)));
                __m256i lo = k < 2 ? _mm256_and_si256(ql, m4) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4);
                __m256i hb = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * k)), m2);
                __m256i q = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 4));
                __m256i qa = _mm256_loadu_si256((const __m256i *)(a[b].qs + 128 * h + 32 * k));
                int s0 = w[b].scales[8 * h + 2 * k], s1 = w[b].scales[8 * h + 2 * k + 1];
                __m256i s = _mm256_set_m128i(_mm_set1_epi16((short)s1), _mm_set1_epi16((short)s0));
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(q, qa), s));
            }
        }
        int isum = hsum_i32_256(acc) - q6_k_offset(&w[b], &a[b]);
        sumf += mm_fp16_to_fp32(w[b].d) * a[b].d * (float)isum;
    }
    return sumf;
}

/* VNNI: 64 elements (four 16-element sub-blocks) per vpdpbusd, scaled with one vpmulld. */
K_AVX512 static float dot_q6_k_avx512(int64_t n, const mm_block_q6_k_t *w, const mm_block_q8_k_t *a) {
    float sumf = 0.0f;
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    for (int64_t b = 0; b < n / MM_QK_K; b++) {
        __m512i acc = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            __m256i qh = _mm256_loadu_si256((const __m256i *)(w[b].qh + 32 * h));
            for (int k = 0; k < 4; k += 2) {
                __m256i q2[2];
                for (int kk = 0; kk < 2; kk++) {
                    __m256i ql = _mm256_loadu_si256((const __m256i *)(w[b].ql + 64 * h + 32 * kk));
                    __m256i lo = k < 2 ? _mm256_and_si256(ql, m4) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4);
                    __m256i hb = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * (k + kk))), m2);
                    q2[kk] = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 4));
                }
                __m512i qw = _mm512_inserti64x4(_mm512_castsi256_si512(q2[0]), q2[1], 1);
                __m512i qa = _mm512_loadu_si512((const void *)(a[b].qs + 128 * h + 32 * k));
                const int8_t *sc = w[b].scales + 8 * h + 2 * k; /* sub-blocks of 16: 4 lanes each */
                __m512i s = _mm512_setr_epi32(sc[0], sc[0], sc[0], sc[0], sc[1], sc[1], sc[1], sc[1], sc[2], sc[2],
                                              sc[2], sc[2], sc[3], sc[3], sc[3], sc[3]);
                acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), qw, qa), s));
            }
        }
        int isum = _mm512_reduce_add_epi32(acc) - q6_k_offset(&w[b], &a[b]);
        sumf += mm_fp16_to_fp32(w[b].d) * a[b].d * (float)isum;
    }
    return sumf;
}

float matmul_dot_q4_k_q8_k(int64_t n, const mm_block_q4_k_t *w, const mm_block_q8_k_t *a, cpu_level_t level) {
    switch (level) {
    case CPU_LEVEL_AVX512: return dot_q4_k_avx512(n, w, a);
    case CPU_LEVEL_AVX2: return dot_q4_k_avx2(n, w, a);
    default: return dot_q4_k_ref(n, w, a);
    }
}

float matmul_dot_q6_k_q8_k(int64_t n, const mm_block_q6_k_t *w, const mm_block_q8_k_t *a, cpu_level_t level) {
    switch (level) {
    case CPU_LEVEL_AVX512: return dot_q6_k_avx512(n, w, a);
    case CPU_LEVEL_AVX2: return dot_q6_k_avx2(n, w, a);
    default: return dot_q6_k_ref(n, w, a);
    }
}

/* ---- several tokens per weight row (AVX-512) ----
 *
 * A row's super-block is unpacked once for T tokens. The integer sums are
 * formed with vpmaddubsw (exact: |pair| <= 2 * 63 * 127) and vpdpwssd against
 * the sub-block scales as int16; any exact method gives the same integers, and
 * the fp32 steps per (row, token) are those of the single-row kernels, so each
 * result equals matmul_dot_q4_k_q8_k / matmul_dot_q6_k_q8_k bit for bit. */

/* The exact sums of 8 vectors of 16 int32 lanes. */
K_AVX512 static inline void reduce8_epi32(const __m512i *v, int *res) {
    __m512i x[4], z[2];
    for (int k = 0; k < 4; k++)
        x[k] = _mm512_add_epi32(_mm512_shuffle_i32x4(v[2 * k], v[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                                _mm512_shuffle_i32x4(v[2 * k], v[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    for (int m = 0; m < 2; m++) /* quarter q: vector 4m + q */
        z[m] = _mm512_add_epi32(_mm512_shuffle_i32x4(x[2 * m], x[2 * m + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                                _mm512_shuffle_i32x4(x[2 * m], x[2 * m + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    __m512 z0 = _mm512_castsi512_ps(z[0]), z1 = _mm512_castsi512_ps(z[1]);
    __m512i u = _mm512_add_epi32(_mm512_castps_si512(_mm512_shuffle_ps(z0, z1, _MM_SHUFFLE(1, 0, 1, 0))),
                                 _mm512_castps_si512(_mm512_shuffle_ps(z0, z1, _MM_SHUFFLE(3, 2, 3, 2))));
    __m512 uf = _mm512_castsi512_ps(u);
    __m512i f = _mm512_add_epi32(_mm512_castps_si512(_mm512_shuffle_ps(uf, uf, _MM_SHUFFLE(2, 0, 2, 0))),
                                 _mm512_castps_si512(_mm512_shuffle_ps(uf, uf, _MM_SHUFFLE(3, 1, 3, 1))));
    int tmp[16];
    _mm512_storeu_si512((void *)tmp, f);
    for (int q = 0; q < 4; q++) {
        res[q] = tmp[4 * q];
        res[4 + q] = tmp[4 * q + 1];
    }
}

/* Integer sums of one super-block against T token rows, given the unpacked
 * weights wq[4] (64 elements each) and their int16 scales s16[4]; the
 * activations of group g start at byte off[g] of each token's block. */
K_AVX512 static inline __attribute__((always_inline)) void k_block_sums(const int T, const __m512i *wq, const __m512i *s16,
                                                                     const int *off, const mm_block_q8_k_t *const *a,
                                                                     int64_t b, int *sumi) {
    __m512i acc[8];
#pragma GCC unroll 8
    for (int j = 0; j < T; j++) {
        acc[j] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
            __m512i qa = _mm512_loadu_si512((const void *)(a[j][b].qs + off[g]));
            acc[j] = _mm512_dpwssd_epi32(acc[j], _mm512_maddubs_epi16(wq[g], qa), s16[g]);
        }
    }
    if (T == 8) reduce8_epi32(acc, sumi);
    else
        for (int j = 0; j < T; j++) sumi[j] = _mm512_reduce_add_epi32(acc[j]);
}

K_AVX512 static inline __attribute__((always_inline)) void q4_k_tokens(const int T, int64_t n, const mm_block_q4_k_t *w,
                                                                    const mm_block_q8_k_t *const *a, float *out) {
    static const int off[4] = {0, 64, 128, 192};
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    float sumf[8] = {0};
    for (int64_t b = 0; b < n / MM_QK_K; b++) {
        int sc[8], mn[8], sumi[8];
        for (int j = 0; j < 8; j++) k4_scale_min(j, w[b].scales, &sc[j], &mn[j]);
        __m512i wq[4], s16[4];
        for (int p = 0; p < 4; p++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * p));
            wq[p] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(q, m4)),
                                       _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), 1);
            s16[p] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)sc[2 * p])),
                                        _mm256_set1_epi16((short)sc[2 * p + 1]), 1);
        }
        k_block_sums(T, wq, s16, off, a, b, sumi);
        int summs[8];
        if (T == 8) { /* sum_j m_j * (bsums[2j] + bsums[2j+1]) for 8 tokens: vpmaddwd, then a transposed sum */
            __m128i m8 = _mm_packs_epi32(_mm_loadu_si128((const __m128i *)mn), _mm_loadu_si128((const __m128i *)(mn + 4)));
            __m256i m16 = _mm256_set_m128i(_mm_unpackhi_epi16(m8, m8), _mm_unpacklo_epi16(m8, m8));
            __m256i pr[8];
#pragma GCC unroll 8
            for (int t = 0; t < 8; t++) pr[t] = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a[t][b].bsums), m16);
            __m256i y0 = _mm256_hadd_epi32(_mm256_hadd_epi32(pr[0], pr[1]), _mm256_hadd_epi32(pr[2], pr[3]));
            __m256i y1 = _mm256_hadd_epi32(_mm256_hadd_epi32(pr[4], pr[5]), _mm256_hadd_epi32(pr[6], pr[7]));
            __m256i z = _mm256_add_epi32(_mm256_permute2x128_si256(y0, y1, 0x20), _mm256_permute2x128_si256(y0, y1, 0x31));
            _mm256_storeu_si256((__m256i *)summs, z);
        } else {
            for (int t = 0; t < T; t++) {
                summs[t] = 0;
                for (int j = 0; j < 8; j++) summs[t] += mn[j] * (a[t][b].bsums[2 * j] + a[t][b].bsums[2 * j + 1]);
            }
        }
        /* q4_k_combine's steps, with the row's two scales converted once */
        float dw = _cvtsh_ss(w[b].d), dmw = _cvtsh_ss(w[b].dmin);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            int summ = summs[t];
            float d = dw * a[t][b].d, dmin = dmw * a[t][b].d;
            sumf[t] += d * (float)sumi[t];
            sumf[t] = sumf[t] - dmin * (float)summ;
        }
    }
    for (int t = 0; t < T; t++) out[t] = sumf[t];
}

K_AVX512 static inline __attribute__((always_inline)) void q6_k_tokens(const int T, int64_t n, const mm_block_q6_k_t *w,
                                                                    const mm_block_q8_k_t *const *a, float *out) {
    static const int off[4] = {0, 64, 128, 192};
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    const __m512i idx = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0,
                                          0, 0, 0, 0);
    float sumf[8] = {0};
    for (int64_t b = 0; b < n / MM_QK_K; b++) {
        __m512i wq[4], s16[4];
        int sumi[8];
        for (int h = 0; h < 2; h++) {
            __m256i qh = _mm256_loadu_si256((const __m256i *)(w[b].qh + 32 * h));
            for (int k = 0; k < 4; k += 2) {
                __m256i q2[2];
                for (int kk = 0; kk < 2; kk++) {
                    __m256i ql = _mm256_loadu_si256((const __m256i *)(w[b].ql + 64 * h + 32 * kk));
                    __m256i lo = k < 2 ? _mm256_and_si256(ql, m4) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4);
                    __m256i hb = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * (k + kk))), m2);
                    q2[kk] = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 4));
                }
                int g = 2 * h + k / 2;
                wq[g] = _mm512_inserti64x4(_mm512_castsi256_si512(q2[0]), q2[1], 1);
                int32_t sc4;
                memcpy(&sc4, w[b].scales + 8 * h + 2 * k, 4); /* four 16-element sub-blocks */
                s16[g] = _mm512_permutexvar_epi16(idx, _mm512_castsi128_si512(_mm_cvtepi8_epi16(_mm_cvtsi32_si128(sc4))));
            }
        }
        k_block_sums(T, wq, s16, off, a, b, sumi);
        float dw = _cvtsh_ss(w[b].d);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            int isum = sumi[t] - q6_k_offset(&w[b], &a[t][b]);
            sumf[t] += dw * a[t][b].d * (float)isum;
        }
    }
    for (int t = 0; t < T; t++) out[t] = sumf[t];
}

K_AVX512 static void k_rows_avx512(uint32_t type, const mm_weight_t *w, const void *act, size_t act_row, int n_tokens,
                                   long r0, long r1, float *out) {
    for (long r = r0; r < r1; r++) {
        const void *row = (const char *)w->data + (size_t)r * w->row_bytes;
        for (int t = 0; t < n_tokens;) {
            const mm_block_q8_k_t *a[8];
            float v[8];
            int T = n_tokens - t >= 8 ? 8 : n_tokens - t >= 4 ? 4 : 1;
            for (int j = 0; j < T; j++) a[j] = (const mm_block_q8_k_t *)((const char *)act + (size_t)(t + j) * act_row);
            if (T == 1) /* a single token: the single-row kernel is faster */
                v[0] = mm_k_dot(type, w->n_in, row, a[0], CPU_LEVEL_AVX512);
            else if (type == GGML_TYPE_Q4_K) {
                if (T == 8) q4_k_tokens(8, w->n_in, row, a, v);
                else q4_k_tokens(4, w->n_in, row, a, v);
            } else {
                if (T == 8) q6_k_tokens(8, w->n_in, row, a, v);
                else q6_k_tokens(4, w->n_in, row, a, v);
            }
            for (int j = 0; j < T; j++) out[(size_t)(t + j) * (size_t)w->n_out + (size_t)r] = v[j];
            t += T;
        }
    }
}

bool mm_k_gemm_supports(uint32_t type, int n_tokens, cpu_level_t level) {
    return mm_k_supports(type) && n_tokens > 1 && level == CPU_LEVEL_AVX512;
}

void mm_k_gemm_rows(const mm_weight_t *w, const void *act, size_t act_row, int n_tokens, long r0, long r1, float *out) {
    k_rows_avx512(w->type, w, act, act_row, n_tokens, r0, r1, out);
}

float mm_k_dot(uint32_t type, int64_t n, const void *w, const mm_block_q8_k_t *a, cpu_level_t level) {
    if (type == GGML_TYPE_Q4_K) return matmul_dot_q4_k_q8_k(n, w, a, level);
    if (type == GGML_TYPE_Q6_K) return matmul_dot_q6_k_q8_k(n, w, a, level);
    return 0.0f;
}
