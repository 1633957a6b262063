/* Packed weights (Q8_0, Q4_0, IQ4_NL in row groups of 16) and their kernels (see matmul_pack.h). */
#include "quant/matmul_pack.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/matmul_ext.h"
#include "quant/matmul_kernels.h"
#include "quant/types.h"

#define P512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define P256 __attribute__((target("avx2,fma,f16c")))
#define P_INLINE static inline __attribute__((always_inline))

/* Formats: 0 Q8_0 (bytes w + 128), 1 Q4_0 (nibbles, value nibble - 8),
 * 2 IQ4_NL (nibbles, value = level[nibble]). */
enum { F_Q8 = 0, F_Q4_0 = 1, F_IQ4 = 2, F_Q4_1 = 3, F_Q5_0 = 4 };

/* Bytes of a group's block; offset of its value chunks; the activation block's size and values offset. */
#define BB(F) \
    ((F) == F_Q8 ? MM_PACK_BLOCK_BYTES : (F) == F_Q4_1 || (F) == F_Q5_0 ? MM_PACK_BLOCK_BYTES_4 + 64 : MM_PACK_BLOCK_BYTES_4)
#define QO(F) ((F) == F_Q4_1 ? 128 : 64)
#define AB(F) ((F) == F_Q4_1 ? sizeof(mm_block_q8_1_t) : sizeof(mm_block_q8_0_t))
#define AQ(F) ((F) == F_Q4_1 ? 4 : 2)

static int format_of(uint32_t type) {
    switch (type) {
    case GGML_TYPE_Q8_0: return F_Q8;
    case GGML_TYPE_Q4_0: return F_Q4_0;
    case GGML_TYPE_IQ4_NL: return F_IQ4;
    case GGML_TYPE_Q4_1: return F_Q4_1;
    case GGML_TYPE_Q5_0: return F_Q5_0;
    default: return -1;
    }
}

static size_t block_bytes(int f) { return BB(f); }

bool mm_pack_supports(const mm_weight_t *w) {
    return format_of(w->type) >= 0 && w->n_in >= MM_QK && w->n_in % MM_QK == 0 && w->n_out > 0;
}

int32_t mm_pack_offset(uint32_t type) {
    switch (type) {
    case GGML_TYPE_Q4_0: return 8;
    case GGML_TYPE_Q5_0: return 16;
    case GGML_TYPE_Q4_1: return 0;
    default: return 128;
    }
}

static long n_groups(const mm_weight_t *w) { return (long)((w->n_out + MM_PACK_ROWS - 1) / MM_PACK_ROWS); }

size_t mm_pack_bytes(const mm_weight_t *w) {
    return (size_t)n_groups(w) * (size_t)(w->n_in / MM_QK) * block_bytes(format_of(w->type));
}

/* Element e (0..31) of a 4-bit block's 16 nibble bytes. */
static unsigned nib(const uint8_t *qs, int e) { return e < 16 ? qs[e] & 0x0f : qs[e - 16] >> 4; }

void mm_pack_groups(const mm_weight_t *w, void *dst, long g0, long g1) {
    int64_t nb = w->n_in / MM_QK;
    int f = format_of(w->type);
    size_t bb = block_bytes(f);
    for (long g = g0; g < g1; g++) {
        uint8_t *gp = (uint8_t *)dst + (size_t)g * (size_t)nb * bb;
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *blk = gp + (size_t)b * bb;
            float d[MM_PACK_ROWS], mn[MM_PACK_ROWS];
            uint8_t *q = blk + QO(f);
            for (int i = 0; i < MM_PACK_ROWS; i++) {
                int64_t r = (int64_t)g * MM_PACK_ROWS + i;
                const uint8_t *x = r < w->n_out ? (const uint8_t *)w->data + (size_t)r * w->row_bytes : NULL;
                uint16_t dh = 0, mh = 0;
                if (f == F_Q8) {
                    const mm_block_q8_0_t *xb = x ? (const mm_block_q8_0_t *)x + b : NULL;
                    if (xb) dh = xb->d;
                    for (int k = 0; k < 8; k++) {
                        uint32_t v = 0x80808080u; /* rows past n_out: value 0 */
                        if (xb) {
                            memcpy(&v, xb->qs + 4 * k, 4);
                            v ^= 0x80808080u; /* w + 128 */
                        }
                        memcpy(q + 64 * k + 4 * i, &v, 4);
                    }
                } else {
                    /* chunk kk, byte 4i + j: low nibble element 8kk + j, high nibble element 8kk + 4 + j;
                     * rows past n_out: the nibble of value 0 (Q4_0: 8; IQ4_NL has no 0 level, the scale is 0) */
                    const uint8_t *qs = NULL;
                    uint32_t qh = 0;
                    if (x && f == F_Q5_0) {
                        const uint8_t *xb = x + (size_t)b * (6 + MM_QK / 2);
                        memcpy(&dh, xb, 2);
                        memcpy(&qh, xb + 2, 4);
                        qs = xb + 6;
                    } else if (x && f == F_Q4_1) {
                        const mm_block_q4_1_t *xb = (const mm_block_q4_1_t *)x + b;
                        dh = xb->d, mh = xb->m;
                        qs = xb->qs;
                    } else if (x) {
                        const uint8_t *xb = x + (size_t)b * (2 + MM_QK / 2);
                        memcpy(&dh, xb, 2);
                        qs = xb + 2;
                    }
                    for (int kk = 0; kk < 4; kk++)
                        for (int j = 0; j < 4; j++)
                            q[64 * kk + 4 * i + j] = qs ? (uint8_t)(nib(qs, 8 * kk + j) | nib(qs, 8 * kk + 4 + j) << 4)
                                                        : (f == F_Q4_0 ? 0x88 : 0x00);
                    if (f == F_Q5_0) /* the fifth bits: chunk k's 64-bit word, bit 4i + j = element 4k + j */
                        for (int k = 0; k < 8; k++)
                            for (int j = 0; j < 4; j++) {
                                uint8_t *pl = blk + 320 + 8 * k + (4 * i + j) / 8;
                                unsigned bit = (4 * i + j) % 8;
                                *pl = (uint8_t)((*pl & ~(1u << bit)) | ((qh >> (4 * k + j)) & 1u) << bit);
                            }
                }
                d[i] = x ? mm_fp16_to_fp32(dh) : 0.0f;
                mn[i] = x ? mm_fp16_to_fp32(mh) : 0.0f;
            }
            memcpy(blk, d, sizeof d);
            if (f == F_Q4_1) memcpy(blk + 64, mn, sizeof mn);
        }
    }
}

void *mm_pack_alloc(const mm_weight_t *w) {
    void *dst = NULL;
    if (!mm_pack_supports(w) || posix_memalign(&dst, 64, mm_pack_bytes(w)) != 0) return NULL;
    mm_pack_groups(w, dst, 0, n_groups(w));
    return dst;
}

void mm_pack_side(const mm_block_q8_0_t *a, int64_t nb, int32_t offset, mm_pack_side_t *side) {
    for (int64_t b = 0; b < nb; b++) {
        int32_t s = 0;
        for (int j = 0; j < MM_QK; j++) s += a[b].qs[j];
        side[b].d = mm_fp16_to_fp32(a[b].d);
        side[b].c = -offset * s;
        side[b].s = 0.0f;
    }
}

void mm_pack_side_q8_1(const mm_block_q8_1_t *a, int64_t nb, mm_pack_side_t *side) {
    for (int64_t b = 0; b < nb; b++) {
        side[b].d = mm_fp16_to_fp32(a[b].d);
        side[b].c = 0;
        side[b].s = mm_fp16_to_fp32(a[b].s);
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

/* The 64 weight bytes of chunk k (16 rows x elements 4k..4k+3) as unsigned w + K. */
P512 P_INLINE __m512i chunk512(const int F, const uint8_t *blk, int k) {
    if (F == F_Q8) return _mm512_load_si512((const void *)(blk + 64 + 64 * k));
    __m512i v = _mm512_load_si512((const void *)(blk + QO(F) + 64 * (k / 2)));
    __m512i n = (k & 1) ? _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0f))
                        : _mm512_and_si512(v, _mm512_set1_epi8(0x0f));
    if (F == F_IQ4) {
        __m128i lv = _mm_xor_si128(_mm_loadu_si128((const __m128i *)mm_iq4_nl_levels), _mm_set1_epi8((char)0x80));
        n = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(lv), n);
    }
    if (F == F_Q5_0) { /* nibble | fifth bit << 4 */
        uint64_t hb;
        memcpy(&hb, blk + 320 + 8 * k, 8);
        n = _mm512_or_si512(n, _mm512_maskz_mov_epi8((__mmask64)hb, _mm512_set1_epi8(0x10)));
    }
    return n;
}

P512 P_INLINE void tile512(const int F, const int G, const int T, const uint8_t *gp, size_t gstride, int64_t nb, const char *act,
                           size_t act_row, const mm_pack_side_t *side, long t0, float *out, int64_t n_out, long r0,
                           __mmask16 m0, __mmask16 m1, const uint8_t *pf, size_t pf_bytes) {
    __m512 acc[2][8];
#pragma GCC unroll 2
    for (int g = 0; g < G; g++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) acc[g][t] = _mm512_setzero_ps();
    const char *a0 = act + (size_t)t0 * act_row + AQ(F); /* the first block's int8 values */
    const mm_pack_side_t *s0 = side + (size_t)t0 * (size_t)nb;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = gp + (size_t)b * BB(F);
        if (pf) /* the next groups' share of this block's bytes, into L2 while these are multiplied */
            for (size_t o = (size_t)b * pf_bytes; o < (size_t)(b + 1) * pf_bytes; o += 64) _mm_prefetch((const char *)pf + o, _MM_HINT_T1);
        __m512i is[2][8];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            __m512i c = _mm512_set1_epi32(s0[(size_t)t * nb + b].c);
#pragma GCC unroll 2
            for (int g = 0; g < G; g++) is[g][t] = c;
        }
        const char *ab = a0 + (size_t)b * AB(F);
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            __m512i wk[2];
#pragma GCC unroll 2
            for (int g = 0; g < G; g++) wk[g] = chunk512(F, blk + (size_t)g * gstride, k);
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
            if (F == F_Q4_1) { /* the min term m * (d_a * sum(a)) */
                __m512 mw = _mm512_load_ps((const void *)(blk + (size_t)g * gstride + 64));
#pragma GCC unroll 8
                for (int t = 0; t < T; t++)
                    acc[g][t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(s0[(size_t)t * nb + b].s), acc[g][t]);
            }
        }
    }
#pragma GCC unroll 2
    for (int g = 0; g < G; g++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            _mm512_mask_storeu_ps(out + (size_t)(t0 + t) * (size_t)n_out + r0 + 16 * g, g ? m1 : m0, acc[g][t]);
}

/* A pass over ~20 tokens streams every weight from memory once: the first token tile of each group pair waits
 * for it. That tile also prefetches the next PACK_PF_GROUPS groups of the matrix into L2 (bench_engine, batch 1,
 * one thread, Zen 5: 13.7 -> 12.2 ms per pass; 2 groups ahead: 12.5; same bits). */
#ifndef PACK_PREFETCH
#define PACK_PREFETCH 1
#endif
#ifndef PACK_PF_GROUPS
#define PACK_PF_GROUPS 4
#endif
#ifndef PACK_T2
#define PACK_T2 6 /* tokens per tile of two groups (bench_gemm: 4 to 6 within noise at 20 tokens, 6 best at 64) */
#endif
#ifndef PACK_T1
#define PACK_T1 8 /* tokens per tile of one group */
#endif

/* Two groups (G = 2) or one by every token: full tiles, then the last tokens as one smaller tile. */
P512 P_INLINE void tokens512(const int F, const int G, const uint8_t *gp, size_t gstride, int64_t nb, const char *act, size_t act_row,
                             const mm_pack_side_t *side, int n_tokens, float *out, int64_t n_out, long r0,
                             __mmask16 m0, __mmask16 m1, const uint8_t *pf, size_t pf_len) {
    /* The first tile streams these groups from memory; it also prefetches pf_len bytes from pf (the matrix's
     * next groups, this thread's or the other's next chunk), spread over its blocks. */
    size_t pf_bytes = pf ? (pf_len / (size_t)nb + 63) / 64 * 64 : 0;
    const int TT = G == 2 ? PACK_T2 : PACK_T1;
    /* ceil(n / TT) tiles of nearly equal size (20 tokens: 5+5+5+5, not 6+6+6+2) */
    long nt = (n_tokens + TT - 1) / TT;
    for (long k = 0; k < nt; k++) {
        long t = k * n_tokens / nt, n = (k + 1) * n_tokens / nt - t;
        switch (n) {
#define TILE(N) \
    case N: tile512(F, G, N, gp, gstride, nb, act, act_row, side, t, out, n_out, r0, m0, m1, k ? NULL : pf, pf_bytes); break;
            TILE(1) TILE(2) TILE(3) TILE(4) TILE(5) TILE(6) TILE(7) TILE(8)
#undef TILE
        default: break;
        }
    }
}

P512 P_INLINE void rows512_of(const int F, const mm_weight_t *w, const char *act, size_t act_row, const mm_pack_side_t *side,
                         int n_tokens, long g0, long g1, float *out) {
    int64_t nb = w->n_in / MM_QK;
    size_t gstride = (size_t)nb * BB(F);
    for (long g = g0; g < g1;) {
        const uint8_t *gp = (const uint8_t *)w->pack + (size_t)g * gstride;
        long r0 = g * MM_PACK_ROWS;
        long nr = w->n_out - r0;
        __mmask16 m0 = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1u);
        int G = g + 1 < g1 ? 2 : 1;
        long gn = n_groups(w) - (g + G); /* groups of the matrix after these (this thread's or the other's next) */
        const uint8_t *pf = PACK_PREFETCH && gn > 0 ? gp + (size_t)G * gstride : NULL;
        size_t pf_len = (size_t)(gn < PACK_PF_GROUPS ? gn : PACK_PF_GROUPS) * gstride;
        if (G == 2) {
            long nr1 = nr - 16;
            __mmask16 m1 = nr1 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr1) - 1u);
            tokens512(F, 2, gp, gstride, nb, act, act_row, side, n_tokens, out, w->n_out, r0, m0, m1, pf, pf_len);
        } else {
            tokens512(F, 1, gp, gstride, nb, act, act_row, side, n_tokens, out, w->n_out, r0, m0, 0, pf, pf_len);
        }
        g += G;
    }
}

/* ---- AVX2: half a group (8 rows) by T tokens (1..4); the weights back to
 * signed bytes, |w| times a with w's sign (vpmaddubsw, vpmaddwd), the same
 * exact block sums ---- */

/* Half (8 rows) of chunk k as signed values. */
P256 P_INLINE __m256i chunk256(const int F, const uint8_t *blk, int half, int k) {
    if (F == F_Q8)
        return _mm256_xor_si256(_mm256_load_si256((const __m256i *)(blk + 64 + 64 * k + 32 * half)),
                                _mm256_set1_epi8((char)0x80));
    __m256i v = _mm256_load_si256((const __m256i *)(blk + QO(F) + 64 * (k / 2) + 32 * half));
    __m256i n = (k & 1) ? _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0f))
                        : _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
    if (F == F_Q4_1) return n; /* unsigned nibbles */
    if (F == F_Q5_0) {
        uint32_t hb;
        memcpy(&hb, blk + 320 + 8 * k + 4 * half, 4);
        __m256i v8 = _mm256_shuffle_epi8(_mm256_set1_epi32((int)hb), _mm256_setr_epi64x(0, 0x0101010101010101LL,
                                                                                       0x0202020202020202LL,
                                                                                       0x0303030303030303LL));
        const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
        __m256i hi = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v8, bit), bit), _mm256_set1_epi8(0x10));
        return _mm256_sub_epi8(_mm256_or_si256(n, hi), _mm256_set1_epi8(16));
    }
    if (F == F_Q4_0) return _mm256_sub_epi8(n, _mm256_set1_epi8(8));
    __m128i lv = _mm_loadu_si128((const __m128i *)mm_iq4_nl_levels);
    return _mm256_shuffle_epi8(_mm256_set_m128i(lv, lv), n);
}

P256 P_INLINE void tile256(const int F, const int T, const uint8_t *gp, int half, int64_t nb, const char *act, size_t act_row,
                           const mm_pack_side_t *side, long t0, float *out, int64_t n_out, long r0, int nr) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    const char *a0 = act + (size_t)t0 * act_row + AQ(F);
    const mm_pack_side_t *s0 = side + (size_t)t0 * (size_t)nb;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = gp + (size_t)b * BB(F);
        __m256i is[4];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) is[t] = _mm256_setzero_si256();
        const char *ab = a0 + (size_t)b * AB(F);
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            __m256i ws = chunk256(F, blk, half, k);
            __m256i wa = F == F_Q4_1 ? ws : _mm256_sign_epi8(ws, ws);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                __m256i av = _mm256_set1_epi32(load4(ab + (size_t)t * act_row + 4 * k));
                __m256i qa = F == F_Q4_1 ? av : _mm256_sign_epi8(av, ws);
                is[t] = _mm256_add_epi32(is[t], _mm256_madd_epi16(_mm256_maddubs_epi16(wa, qa), ones));
            }
        }
        __m256 dw = _mm256_load_ps((const float *)blk + 8 * half);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(s0[(size_t)t * nb + b].d)),
                                     _mm256_cvtepi32_ps(is[t]), acc[t]);
        if (F == F_Q4_1) {
            __m256 mw = _mm256_load_ps((const float *)(blk + 64) + 8 * half);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) acc[t] = _mm256_fmadd_ps(mw, _mm256_set1_ps(s0[(size_t)t * nb + b].s), acc[t]);
        }
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

P256 P_INLINE void rows256_of(const int F, const mm_weight_t *w, const char *act, size_t act_row, const mm_pack_side_t *side,
                         int n_tokens, long g0, long g1, float *out) {
    int64_t nb = w->n_in / MM_QK;
    for (long g = g0; g < g1; g++) {
        const uint8_t *gp = (const uint8_t *)w->pack + (size_t)g * (size_t)nb * BB(F);
        for (int half = 0; half < 2; half++) {
            long r0 = g * MM_PACK_ROWS + 8 * half;
            if (r0 >= w->n_out) break;
            int nr = w->n_out - r0 < 8 ? (int)(w->n_out - r0) : 8;
            long t = 0;
            for (; t + 4 <= n_tokens; t += 4) tile256(F, 4, gp, half, nb, act, act_row, side, t, out, w->n_out, r0, nr);
            switch (n_tokens - t) {
            case 1: tile256(F, 1, gp, half, nb, act, act_row, side, t, out, w->n_out, r0, nr); break;
            case 2: tile256(F, 2, gp, half, nb, act, act_row, side, t, out, w->n_out, r0, nr); break;
            case 3: tile256(F, 3, gp, half, nb, act, act_row, side, t, out, w->n_out, r0, nr); break;
            default: break;
            }
        }
    }
}

/* One function per format and level (the format a constant inside), indexed by F_*. */
typedef void (*rows_fn)(const mm_weight_t *w, const char *a, size_t ar, const mm_pack_side_t *s, int n, long g0,
                        long g1, float *o);
#define ROWS_FN(LEVEL, TARGET, F)                                                                                   \
    TARGET static void rows##LEVEL##_##F(const mm_weight_t *w, const char *a, size_t ar, const mm_pack_side_t *s,  \
                                        int n, long g0, long g1, float *o) {                                      \
        rows##LEVEL##_of(F, w, a, ar, s, n, g0, g1, o);                                                           \
    }
ROWS_FN(512, P512, F_Q8)
ROWS_FN(512, P512, F_Q4_0)
ROWS_FN(512, P512, F_IQ4)
ROWS_FN(512, P512, F_Q4_1)
ROWS_FN(512, P512, F_Q5_0)
ROWS_FN(256, P256, F_Q8)
ROWS_FN(256, P256, F_Q4_0)
ROWS_FN(256, P256, F_IQ4)
ROWS_FN(256, P256, F_Q4_1)
ROWS_FN(256, P256, F_Q5_0)
#undef ROWS_FN
static const rows_fn rows512[5] = {rows512_F_Q8, rows512_F_Q4_0, rows512_F_IQ4, rows512_F_Q4_1, rows512_F_Q5_0};
static const rows_fn rows256[5] = {rows256_F_Q8, rows256_F_Q4_0, rows256_F_IQ4, rows256_F_Q4_1, rows256_F_Q5_0};

void mm_pack_rows(const mm_weight_t *w, const void *act, size_t act_row, const mm_pack_side_t *side, int n_tokens,
                  long g0, long g1, float *out, cpu_level_t level) {
    int f = format_of(w->type);
    if (level == CPU_LEVEL_AVX512 && w->pack) {
        rows512[f](w, act, act_row, side, n_tokens, g0, g1, out);
    } else if (level == CPU_LEVEL_AVX2 && w->pack) {
        rows256[f](w, act, act_row, side, n_tokens, g0, g1, out);
    } else {
        long r1 = g1 * MM_PACK_ROWS < w->n_out ? g1 * MM_PACK_ROWS : (long)w->n_out;
        for (long r = g0 * MM_PACK_ROWS; r < r1; r++) {
            const void *row = (const char *)w->data + (size_t)r * w->row_bytes;
            for (int t = 0; t < n_tokens; t++) {
                const void *a = (const char *)act + (size_t)t * act_row;
                out[(size_t)t * (size_t)w->n_out + (size_t)r] =
                    f == F_Q8     ? mm_pack_dot_ref(w->n_in, row, a)
                    : f == F_Q4_1 ? matmul_dot_q4_1_q8_1(w->n_in, row, a, CPU_LEVEL_SCALAR)
                                  : mm_ext_dot(w->type, w->n_in, row, a, CPU_LEVEL_SCALAR);
            }
        }
    }
}

