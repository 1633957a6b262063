/* Shared SIMD pieces of the Q8_0-activation kernels in matmul_q4_0.c and
 * matmul_iq4_nl.c: each weight format expands one block to 32 signed bytes,
 * and these helpers do the signed int8 dot product with its per-block scale. */
#ifndef TL_QUANT_MATMUL_EXT_SIMD_H
#define TL_QUANT_MATMUL_EXT_SIMD_H

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "quant/matmul_ext.h"

#define EXT_AVX2 __attribute__((target("avx2,fma,f16c")))
#define EXT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

EXT_AVX2 static inline float ext_hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

EXT_AVX2 static inline float ext_h2f(uint16_t h) { return _cvtsh_ss(h); }

/* 16 nibble bytes -> 32 bytes 0..15: low nibbles (elements 0..15), then high nibbles. */
EXT_AVX2 static inline __m256i ext_nibbles(const uint8_t *qs) {
    __m128i q = _mm_loadu_si128((const __m128i *)qs);
    __m128i m = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m));
}

/* 32 bits -> 32 bytes, 0xff where bit j of the little-endian word is set. */
EXT_AVX2 static inline __m256i ext_bits_to_bytes(const uint8_t *p) {
    uint32_t x;
    memcpy(&x, p, 4);
    __m256i v = _mm256_set1_epi32((int)x);
    const __m256i pick = _mm256_setr_epi64x(0, 0x0101010101010101LL, 0x0202020202020202LL, 0x0303030303030303LL);
    v = _mm256_shuffle_epi8(v, pick); /* byte j holds source byte j / 8 */
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

/* 8 int32 partial sums of the signed products qw[i] * qa[i]; exact (|qw|, |qa| <= 127). */
EXT_AVX2 static inline __m256i ext_dot_i8_avx2(__m256i qw, __m256i qa) {
    __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qa, qw));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

EXT_AVX2 static inline __m256i ext_load_q8(const mm_block_q8_0_t *a) {
    return _mm256_loadu_si256((const __m256i *)a->qs);
}

/* The per-level loops, given an expander EXPAND(block pointer) -> __m256i of
 * signed bytes, with the numerics of matmul_pack.h: each block's exact int32
 * sum, then acc = fmaf(d_w * d_a, sum, acc) in block order; both levels give
 * the scalar reference's bits. */
EXT_AVX2 static inline int32_t ext_hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

#define EXT_DEFINE_DOTS_EXACT(NAME, BLOCK_T, EXPAND)                                                           \
    EXT_AVX2 static float NAME##_avx2(int64_t n, const BLOCK_T *w, const mm_block_q8_0_t *a) {              \
        float acc = 0.0f;                                                                                      \
        for (int64_t b = 0; b < n / MM_QK; b++) {                                                              \
            int32_t s = ext_hsum_epi32(ext_dot_i8_avx2(EXPAND(&w[b]), ext_load_q8(&a[b])));                    \
            acc = fmaf(ext_h2f(w[b].d) * ext_h2f(a[b].d), (float)s, acc);                                      \
        }                                                                                                      \
        return acc;                                                                                            \
    }                                                                                                          \
    EXT_AVX512 static float NAME##_avx512(int64_t n, const BLOCK_T *w, const mm_block_q8_0_t *a) {          \
        return NAME##_avx2(n, w, a);                                                                           \
    }

#endif
