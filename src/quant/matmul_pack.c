/* Q8_0 x16 packed weights and their kernels (see matmul_pack.h). */
#include "quant/matmul_pack.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/matmul_kernels.h"
#include "quant/types.h"

#define P512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define P256 __attribute__((target("avx2,fma,f16c")))
#define P_INLINE static inline __attribute__((always_inline))

bool mm_pack_supports(const mm_weight_t *w) {
    return w->type == GGML_TYPE_Q8_0 && w->n_in >= MM_QK && w->n_in % MM_QK == 0 && w->n_out > 0;
}

static long n_groups(const mm_weight_t *w) { return (long)((w->n_out + MM_PACK_ROWS - 1) / MM_PACK_ROWS); }

size_t mm_pack_bytes(const mm_weight_t *w) {
    return (size_t)n_groups(w) * (size_t)(w->n_in / MM_QK) * MM_PACK_BLOCK_BYTES;
}

void mm_pack_groups(const mm_weight_t *w, void *dst, long g0, long g1) {
    int64_t nb = w->n_in / MM_QK;
    for (long g = g0; g < g1; g++) {
        uint8_t *gp = (uint8_t *)dst + (size_t)g * (size_t)nb * MM_PACK_BLOCK_BYTES;
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *blk = gp + (size_t)b * MM_PACK_BLOCK_BYTES;
            float d[MM_PACK_ROWS];
            uint8_t *q = blk + 64;
            for (int i = 0; i < MM_PACK_ROWS; i++) {
                int64_t r = (int64_t)g * MM_PACK_ROWS + i;
                if (r >= w->n_out) {
                    d[i] = 0.0f;
                    for (int k = 0; k < 8; k++) memset(q + 64 * k + 4 * i, 128, 4);
                    continue;
                }
                const mm_block_q8_0_t *x = (const mm_block_q8_0_t *)((const char *)w->data + (size_t)r * w->row_bytes) + b;
                d[i] = mm_fp16_to_fp32(x->d);
                for (int k = 0; k < 8; k++)
                    for (int j = 0; j < 4; j++) q[64 * k + 4 * i + j] = (uint8_t)(x->qs[4 * k + j] + 128);
            }
            memcpy(blk, d, sizeof d);
        }
    }
}

void *mm_pack_alloc(const mm_weight_t *w) {
    void *dst = NULL;
    if (!mm_pack_supports(w) || posix_memalign(&dst, 64, mm_pack_bytes(w)) != 0) return NULL;
    mm_pack_groups(w, dst, 0, n_groups(w));
    return dst;
}

void mm_pack_side(const mm_block_q8_0_t *a, int64_t nb, mm_pack_side_t *side) {
    for (int64_t b = 0; b < nb; b++) {
        int32_t s = 0;
        for (int j = 0; j < MM_QK; j++) s += a[b].qs[j];
        side[b].d = mm_fp16_to_fp32(a[b].d);
        side[b].c = -128 * s;
    }
}

float mm_pack_dot_ref(int64_t n_in, const mm_block_q8_0_t *w, const mm_block_q8_0_t *a) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n_in / MM_QK; b++) {
        int32_t s = 0;
        for (int k = 0; k < MM_QK; k++) s += (int32_t)w[b].qs[k] * a[b].qs[k];
        float d = mm_fp16_to_fp32(w[b].d) * mm_fp16_to_fp32(a[b].d);
        acc = fmaf(d, (float)s, acc);
    }
    return acc;
}

static int32_t load4(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ---- AVX-512: G groups of 16 rows (1 or 2) by T tokens (1..8) ---- */

P512 P_INLINE void tile512(const int G, const int T, const uint8_t *gp, size_t gstride, int64_t nb, const char *act,
                           size_t act_row, const mm_pack_side_t *side, long t0, float *out, int64_t n_out, long r0,
                           __mmask16 m0, __mmask16 m1) {
    __m512 acc[2][8];
#pragma GCC unroll 2
    for (int g = 0; g < G; g++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) acc[g][t] = _mm512_setzero_ps();
    const char *a0 = act + (size_t)t0 * act_row + 2; /* the first block's int8 values */
    const mm_pack_side_t *s0 = side + (size_t)t0 * (size_t)nb;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = gp + (size_t)b * MM_PACK_BLOCK_BYTES;
        __m512i is[2][8];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            __m512i c = _mm512_set1_epi32(s0[(size_t)t * nb + b].c);
#pragma GCC unroll 2
            for (int g = 0; g < G; g++) is[g][t] = c;
        }
        const char *ab = a0 + (size_t)b * sizeof(mm_block_q8_0_t);
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            __m512i wk[2];
#pragma GCC unroll 2
            for (int g = 0; g < G; g++) wk[g] = _mm512_load_si512((const void *)(blk + (size_t)g * gstride + 64 + 64 * k));
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                __m512i av = _mm512_set1_epi32(load4(ab + (size_t)t * act_row + 4 * k));
#pragma GCC unroll 2
                for (int g = 0; g < G; g++) is[g][t] = _mm512_dpbusd_epi32(is[g][t], wk[g], av);
            }
        }
#pragma GCC unroll 2
        for (int g = 0; g < G; g++) {
            __m512 dw = _mm512_load_ps((const void *)(blk + (size_t)g * gstride));
#pragma GCC unroll 8
            for (int t = 0; t < T; t++)
                acc[g][t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(s0[(size_t)t * nb + b].d)),
                                            _mm512_cvtepi32_ps(is[g][t]), acc[g][t]);
        }
    }
#pragma GCC unroll 2
    for (int g = 0; g < G; g++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            _mm512_mask_storeu_ps(out + (size_t)(t0 + t) * (size_t)n_out + r0 + 16 * g, g ? m1 : m0, acc[g][t]);
}

#ifndef PACK_T2
#define PACK_T2 6 /* tokens per tile of two groups (bench_gemm: 4 to 6 within noise at 20 tokens, 6 best at 64) */
#endif
#ifndef PACK_T1
#define PACK_T1 8 /* tokens per tile of one group */
#endif

/* Two groups (G = 2) or one by every token: full tiles, then the last tokens as one smaller tile. */
P512 P_INLINE void tokens512(const int G, const uint8_t *gp, size_t gstride, int64_t nb, const char *act, size_t act_row,
                             const mm_pack_side_t *side, int n_tokens, float *out, int64_t n_out, long r0,
                             __mmask16 m0, __mmask16 m1) {
    const int TT = G == 2 ? PACK_T2 : PACK_T1;
    long t = 0;
    for (; t + TT <= n_tokens; t += TT) tile512(G, TT, gp, gstride, nb, act, act_row, side, t, out, n_out, r0, m0, m1);
    switch (n_tokens - t) {
#define TAIL(N) \
    case N: tile512(G, N, gp, gstride, nb, act, act_row, side, t, out, n_out, r0, m0, m1); break;
    TAIL(1) TAIL(2) TAIL(3) TAIL(4) TAIL(5) TAIL(6) TAIL(7)
#undef TAIL
    default: break;
    }
}

P512 static void rows512(const mm_weight_t *w, const char *act, size_t act_row, const mm_pack_side_t *side,
                         int n_tokens, long g0, long g1, float *out) {
    int64_t nb = w->n_in / MM_QK;
    size_t gstride = (size_t)nb * MM_PACK_BLOCK_BYTES;
    for (long g = g0; g < g1;) {
        const uint8_t *gp = (const uint8_t *)w->pack + (size_t)g * gstride;
        long r0 = g * MM_PACK_ROWS;
        long nr = w->n_out - r0;
        __mmask16 m0 = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1u);
        if (g + 1 < g1) {
            long nr1 = nr - 16;
            __mmask16 m1 = nr1 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr1) - 1u);
            tokens512(2, gp, gstride, nb, act, act_row, side, n_tokens, out, w->n_out, r0, m0, m1);
            g += 2;
        } else {
            tokens512(1, gp, gstride, nb, act, act_row, side, n_tokens, out, w->n_out, r0, m0, 0);
            g += 1;
        }
    }
}

/* ---- AVX2: half a group (8 rows) by T tokens (1..4); the weights back to
 * signed bytes, |w| times a with w's sign (vpmaddubsw, vpmaddwd), the same
 * exact block sums ---- */

P256 P_INLINE void tile256(const int T, const uint8_t *gp, int half, int64_t nb, const char *act, size_t act_row,
                           const mm_pack_side_t *side, long t0, float *out, int64_t n_out, long r0, int nr) {
    const __m256i ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8((char)0x80);
    __m256 acc[4];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    const char *a0 = act + (size_t)t0 * act_row + 2;
    const mm_pack_side_t *s0 = side + (size_t)t0 * (size_t)nb;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = gp + (size_t)b * MM_PACK_BLOCK_BYTES;
        __m256i is[4];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) is[t] = _mm256_setzero_si256();
        const char *ab = a0 + (size_t)b * sizeof(mm_block_q8_0_t);
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            __m256i ws = _mm256_xor_si256(_mm256_load_si256((const __m256i *)(blk + 64 + 64 * k + 32 * half)), flip);
            __m256i wa = _mm256_sign_epi8(ws, ws);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                __m256i qa = _mm256_sign_epi8(_mm256_set1_epi32(load4(ab + (size_t)t * act_row + 4 * k)), ws);
                is[t] = _mm256_add_epi32(is[t], _mm256_madd_epi16(_mm256_maddubs_epi16(wa, qa), ones));
            }
        }
        __m256 dw = _mm256_load_ps((const float *)blk + 8 * half);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(s0[(size_t)t * nb + b].d)),
                                     _mm256_cvtepi32_ps(is[t]), acc[t]);
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        float *o = out + (size_t)(t0 + t) * (size_t)n_out + r0;
        if (nr >= 8) {
            _mm256_storeu_ps(o, acc[t]);
        } else {
            float v[8];
            _mm256_storeu_ps(v, acc[t]);
            memcpy(o, v, sizeof(float) * (size_t)nr);
        }
    }
}

P256 static void rows256(const mm_weight_t *w, const char *act, size_t act_row, const mm_pack_side_t *side,
                         int n_tokens, long g0, long g1, float *out) {
    int64_t nb = w->n_in / MM_QK;
    for (long g = g0; g < g1; g++) {
        const uint8_t *gp = (const uint8_t *)w->pack + (size_t)g * (size_t)nb * MM_PACK_BLOCK_BYTES;
        for (int half = 0; half < 2; half++) {
            long r0 = g * MM_PACK_ROWS + 8 * half;
            if (r0 >= w->n_out) break;
            int nr = w->n_out - r0 < 8 ? (int)(w->n_out - r0) : 8;
            long t = 0;
            for (; t + 4 <= n_tokens; t += 4) tile256(4, gp, half, nb, act, act_row, side, t, out, w->n_out, r0, nr);
            switch (n_tokens - t) {
            case 1: tile256(1, gp, half, nb, act, act_row, side, t, out, w->n_out, r0, nr); break;
            case 2: tile256(2, gp, half, nb, act, act_row, side, t, out, w->n_out, r0, nr); break;
            case 3: tile256(3, gp, half, nb, act, act_row, side, t, out, w->n_out, r0, nr); break;
            default: break;
            }
        }
    }
}

void mm_pack_rows(const mm_weight_t *w, const void *act, size_t act_row, const mm_pack_side_t *side, int n_tokens,
                  long g0, long g1, float *out, cpu_level_t level) {
    if (level == CPU_LEVEL_AVX512 && w->pack) {
        rows512(w, act, act_row, side, n_tokens, g0, g1, out);
    } else if (level == CPU_LEVEL_AVX2 && w->pack) {
        rows256(w, act, act_row, side, n_tokens, g0, g1, out);
    } else {
        long r1 = g1 * MM_PACK_ROWS < w->n_out ? g1 * MM_PACK_ROWS : (long)w->n_out;
        for (long r = g0 * MM_PACK_ROWS; r < r1; r++) {
            const mm_block_q8_0_t *row = (const mm_block_q8_0_t *)((const char *)w->data + (size_t)r * w->row_bytes);
            for (int t = 0; t < n_tokens; t++)
                out[(size_t)t * (size_t)w->n_out + (size_t)r] =
                    mm_pack_dot_ref(w->n_in, row, (const mm_block_q8_0_t *)((const char *)act + (size_t)t * act_row));
        }
    }
}
