/* IQ4_NL weights times Q8_0 activations: scalar reference, AVX2, AVX-512 VNNI.
 * A nibble indexes a fixed table of sixteen non-uniform int8 levels; the SIMD
 * variants look the levels up with a byte shuffle. */
#include "quant/matmul_ext_simd.h"
#include "quant/matmul_kernels.h"

const int8_t mm_iq4_nl_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* The numerics of matmul_pack.h: exact block sums, one fused multiply-add per block. */
static float dot_iq4_nl_ref(int64_t n, const mm_block_iq4_nl_t *w, const mm_block_q8_0_t *a) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n / MM_QK; b++) {
        int sumi = 0;
        for (int j = 0; j < MM_QK / 2; j++) {
            sumi += mm_iq4_nl_levels[w[b].qs[j] & 0x0f] * a[b].qs[j];
            sumi += mm_iq4_nl_levels[w[b].qs[j] >> 4] * a[b].qs[j + MM_QK / 2];
        }
        acc = fmaf(mm_fp16_to_fp32(w[b].d) * mm_fp16_to_fp32(a[b].d), (float)sumi, acc);
    }
    return acc;
}

EXT_AVX2 static inline __m256i expand_iq4_nl(const mm_block_iq4_nl_t *b) {
    __m128i t = _mm_loadu_si128((const __m128i *)mm_iq4_nl_levels);
    return _mm256_shuffle_epi8(_mm256_set_m128i(t, t), ext_nibbles(b->qs));
}

EXT_DEFINE_DOTS_EXACT(dot_iq4_nl, mm_block_iq4_nl_t, expand_iq4_nl)

float matmul_dot_iq4_nl_q8_0(int64_t n, const mm_block_iq4_nl_t *w, const mm_block_q8_0_t *a, cpu_level_t level) {
    switch (level) {
    case CPU_LEVEL_AVX512: return dot_iq4_nl_avx512(n, w, a);
    case CPU_LEVEL_AVX2: return dot_iq4_nl_avx2(n, w, a);
    default: return dot_iq4_nl_ref(n, w, a);
    }
}
