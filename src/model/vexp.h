/* The forward pass's exponential: one definition, computed with the same
 * operations in the same order by the scalar, AVX2 and AVX-512 code, so every
 * level gives the same bits (libm's expf is scalar only, and a vector libm
 * rounds differently). Cephes-style: x clamped to [-87.3, 88.37],
 * n = rint(x * log2 e), r = x - n ln2 (two-part ln2, fused), a degree-5
 * polynomial for (e^r - 1 - r) / r^2, e^r = p r^2 + r + 1, times 2^n. Within
 * 2 ulp of the exact value (tests/unit/test_kernels.c). */
#ifndef TL_MODEL_VEXP_H
#define TL_MODEL_VEXP_H

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define VEXP_HI 88.3762626647949f
#define VEXP_LO -87.3365447504f
#define VEXP_LOG2E 1.44269504088896341f
#define VEXP_LN2_HI 0.693359375f
#define VEXP_LN2_LO -2.12194440e-4f
#define VEXP_P0 1.9875691500e-4f
#define VEXP_P1 1.3981999507e-3f
#define VEXP_P2 8.3334519073e-3f
#define VEXP_P3 4.1665795894e-2f
#define VEXP_P4 1.6666665459e-1f
#define VEXP_P5 5.0000001201e-1f

static inline float vexp_ref(float x) {
    if (x != x) return x;
    x = x < VEXP_LO ? VEXP_LO : x > VEXP_HI ? VEXP_HI : x;
    float n = nearbyintf(x * VEXP_LOG2E);
    float r = fmaf(n, -VEXP_LN2_HI, x);
    r = fmaf(n, -VEXP_LN2_LO, r);
    float p = VEXP_P0;
    p = fmaf(p, r, VEXP_P1);
    p = fmaf(p, r, VEXP_P2);
    p = fmaf(p, r, VEXP_P3);
    p = fmaf(p, r, VEXP_P4);
    p = fmaf(p, r, VEXP_P5);
    float y = fmaf(p, r * r, r) + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &bits, sizeof s);
    return y * s;
}

#define VEXP_AVX512 __attribute__((target("avx512f,avx512vl,fma")))
#define VEXP_AVX2 __attribute__((target("avx2,fma")))

VEXP_AVX512 static inline __m512 vexp_512(__m512 x) {
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(VEXP_LO)), _mm512_set1_ps(VEXP_HI));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(VEXP_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-VEXP_LN2_HI), xc);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(-VEXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(VEXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VEXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VEXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VEXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VEXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VEXP_P5));
    __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mask_mov_ps(_mm512_mul_ps(y, _mm512_castsi512_ps(e)), nan, x);
}

VEXP_AVX2 static inline __m256 vexp_256(__m256 x) {
    __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(VEXP_LO)), _mm256_set1_ps(VEXP_HI));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(VEXP_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-VEXP_LN2_HI), xc);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(-VEXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(VEXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VEXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VEXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VEXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VEXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VEXP_P5));
    __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_blendv_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(e)), x, nan);
}

#endif
