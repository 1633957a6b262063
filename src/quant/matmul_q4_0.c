/* Q4_0 and Q5_0 weights times Q8_0 activations: scalar reference, AVX2, AVX-512 VNNI.
 * Q4_0 element j is nibble - 8; Q5_0 adds a fifth bit from qh and subtracts 16.
 * Elements 0..15 are the low nibbles of qs[0..15], elements 16..31 the high ones. */
#include "quant/matmul_ext_simd.h"
#include "quant/matmul_kernels.h"

/* Both follow the numerics of matmul_pack.h: exact block sums, one fused
 * multiply-add per block. */
static float dot_q4_0_ref(int64_t n, const mm_block_q4_0_t *w, const mm_block_q8_0_t *a) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n / MM_QK; b++) {
        int sumi = 0;
        for (int j = 0; j < MM_QK / 2; j++) {
            sumi += ((w[b].qs[j] & 0x0f) - 8) * a[b].qs[j];
            sumi += ((w[b].qs[j] >> 4) - 8) * a[b].qs[j + MM_QK / 2];
        }
        acc = fmaf(mm_fp16_to_fp32(w[b].d) * mm_fp16_to_fp32(a[b].d), (float)sumi, acc);
    }
    return acc;
}

static float dot_q5_0_ref(int64_t n, const mm_block_q5_0_t *w, const mm_block_q8_0_t *a) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n / MM_QK; b++) {
        uint32_t qh = (uint32_t)w[b].qh[0] | (uint32_t)w[b].qh[1] << 8 | (uint32_t)w[b].qh[2] << 16 |
                      (uint32_t)w[b].qh[3] << 24;
        int sumi = 0;
        for (int j = 0; j < MM_QK / 2; j++) {
            int lo = (int)((w[b].qs[j] & 0x0f) | ((qh >> j) & 1) << 4) - 16;
            int hi = (int)((w[b].qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - 16;
            sumi += lo * a[b].qs[j] + hi * a[b].qs[j + MM_QK / 2];
        }
        acc = fmaf(mm_fp16_to_fp32(w[b].d) * mm_fp16_to_fp32(a[b].d), (float)sumi, acc);
    }
    return acc;
}

EXT_AVX2 static inline __m256i expand_q4_0(const mm_block_q4_0_t *b) {
    return _mm256_sub_epi8(ext_nibbles(b->qs), _mm256_set1_epi8(8));
}

EXT_AVX2 static inline __m256i expand_q5_0(const mm_block_q5_0_t *b) {
    __m256i hi = _mm256_and_si256(ext_bits_to_bytes(b->qh), _mm256_set1_epi8(0x10));
    return _mm256_sub_epi8(_mm256_or_si256(ext_nibbles(b->qs), hi), _mm256_set1_epi8(16));
}

EXT_DEFINE_DOTS_EXACT(dot_q4_0, mm_block_q4_0_t, expand_q4_0)
EXT_DEFINE_DOTS_EXACT(dot_q5_0, mm_block_q5_0_t, expand_q5_0)

float matmul_dot_q4_0_q8_0(int64_t n, const mm_block_q4_0_t *w, const mm_block_q8_0_t *a, cpu_level_t level) {
    switch (level) {
    case CPU_LEVEL_AVX512: return dot_q4_0_avx512(n, w, a);
    case CPU_LEVEL_AVX2: return dot_q4_0_avx2(n, w, a);
    default: return dot_q4_0_ref(n, w, a);
    }
}

float matmul_dot_q5_0_q8_0(int64_t n, const mm_block_q5_0_t *w, const mm_block_q8_0_t *a, cpu_level_t level) {
    switch (level) {
    case CPU_LEVEL_AVX512: return dot_q5_0_avx512(n, w, a);
    case CPU_LEVEL_AVX2: return dot_q5_0_avx2(n, w, a);
    default: return dot_q5_0_ref(n, w, a);
    }
}
