/* AVX2 and AVX-512 (VNNI) variants of the matmul dot products. Compiled with
 * target attributes; called only when cpu_detect_level() reports the level.
 * Each block's integer dot product is exact; only the fp32 accumulation order
 * differs from the scalar twins in matmul.c. */
#include <immintrin.h>
#include <math.h>

#include "quant/matmul_ext_simd.h"
#include "quant/matmul_kernels.h"
#include "quant/matmul_pack.h"

#define AVX2_TARGET __attribute__((target("avx2,fma,f16c")))
#define AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

AVX2_TARGET static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2_TARGET static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

/* 16 packed nibble bytes -> 32 bytes: low nibbles first, then high nibbles. */
AVX2_TARGET static inline __m256i unpack_nibbles(const uint8_t *qs) {
    __m128i q = _mm_loadu_si128((const __m128i *)qs);
    __m128i m = _mm_set1_epi8(0x0f);
    __m128i lo = _mm_and_si128(q, m), hi = _mm_and_si128(_mm_srli_epi16(q, 4), m);
    return _mm256_set_m128i(hi, lo);
}

/* Q4_1: the exact block sum (unsigned nibbles times a), then
 * acc = fmaf(d_w * d_a, sum, acc) and acc = fmaf(m, s_a, acc) in block order,
 * the numerics of matmul_pack.h (the same bits at every level). */
AVX2_TARGET float mm_dot_q4_1_q8_1_avx2(int64_t n, const mm_block_q4_1_t *w, const mm_block_q8_1_t *a) {
    float acc = 0.0f;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < n / MM_QK; b++) {
        __m256i qw = unpack_nibbles(w[b].qs);
        __m256i qa = _mm256_loadu_si256((const __m256i *)a[b].qs);
        __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(qw, qa), ones);
        acc = fmaf(h2f(w[b].d) * h2f(a[b].d), (float)ext_hsum_epi32(p), acc);
        acc = fmaf(h2f(w[b].m), h2f(a[b].s), acc);
    }
    return acc;
}

/* Q8_0: the exact int32 sum of each block, then acc = fmaf(d_w * d_a, sum, acc)
 * in block order, the numerics of matmul_pack.h (the same bits at every level). */
AVX2_TARGET float mm_dot_q8_0_q8_0_avx2(int64_t n, const mm_block_q8_0_t *w, const mm_block_q8_0_t *a) {
    float acc = 0.0f;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < n / MM_QK; b++) {
        __m256i qw = _mm256_loadu_si256((const __m256i *)w[b].qs);
        __m256i qa = _mm256_loadu_si256((const __m256i *)a[b].qs);
        __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qa, qw)), ones);
        acc = fmaf(h2f(w[b].d) * h2f(a[b].d), (float)ext_hsum_epi32(p), acc);
    }
    return acc;
}

AVX2_TARGET float mm_dot_f32_avx2(int64_t n, const float *w, const float *a) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(a + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(a + i + 8), acc1);
    }
    float s = hsum256(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) s += w[i] * a[i];
    return s;
}

/* ---- AVX-512: two blocks per 512-bit register, vpdpbusd for the products ---- */

AVX512_TARGET float mm_dot_q4_1_q8_1_avx512(int64_t n, const mm_block_q4_1_t *w, const mm_block_q8_1_t *a) {
    return mm_dot_q4_1_q8_1_avx2(n, w, a);
}

AVX512_TARGET float mm_dot_q8_0_q8_0_avx512(int64_t n, const mm_block_q8_0_t *w, const mm_block_q8_0_t *a) {
    return mm_dot_q8_0_q8_0_avx2(n, w, a);
}

AVX512_TARGET float mm_dot_f32_avx512(int64_t n, const float *w, const float *a) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(a + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(a + i + 16), acc1);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    for (; i < n; i++) s += w[i] * a[i];
    return s;
}

/* ---- activation quantizers (bit-identical to matmul_quantize_q8_0/q8_1) ---- */

/* One block: q = round-half-even(x * id) as 32 bytes; returns sum(q). */
AVX512_TARGET static inline int quantize_block_avx512(const float *x, int8_t *qs, float *d_out) {
    __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    __m512 a = _mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1));
    float amax = _mm512_reduce_max_ps(a);
    float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
    __m512 s = _mm512_set1_ps(id);
    __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, s)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, s));
    _mm_storeu_si128((__m128i *)qs, _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128((__m128i *)(qs + 16), _mm512_cvtepi32_epi8(q1));
    *d_out = d;
    /* vector adds only: they wrap, where _mm512_reduce_add_epi32's last steps are C int additions (a NaN
     * converts to INT_MIN, and the sum of such lanes would overflow) */
    __m512i t = _mm512_add_epi32(q0, q1);
    __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(t), _mm512_extracti64x4_epi64(t, 1));
    __m128i u = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0x4e));
    u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0xb1));
    return _mm_cvtsi128_si32(u);
}

AVX512_TARGET void mm_quantize_q8_0_avx512(const float *x, mm_block_q8_0_t *y, int64_t n) {
    for (int64_t b = 0; b < n / MM_QK; b++, x += MM_QK) {
        float d;
        quantize_block_avx512(x, y[b].qs, &d);
        y[b].d = mm_fp32_to_fp16(d);
    }
}

/* Sixteen vectors to one: lane j = the max (or the int32 sum) of v[j]'s sixteen lanes. Four rounds of
 * shuffles and lane-wise operations (8 + 4 + 2 + 1) instead of sixteen horizontal reductions; max and integer
 * sums do not depend on the order, so the values are those of _mm512_reduce_max_ps / _add_epi32. The rounds
 * leave block 4k + c in lane 4c + k; the last permute puts it in lane 4k + c. */
#define REDUCE16(NAME, OP)                                                                                    \
    AVX512_TARGET static inline __m512 NAME(__m512 *v) {                                                      \
        __m512 r[8], u[4], z[2];                                                                              \
        for (int i = 0; i < 8; i++)                                                                           \
            r[i] = OP(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44), _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xee)); \
        for (int i = 0; i < 4; i++)                                                                           \
            u[i] = OP(_mm512_shuffle_f32x4(r[2 * i], r[2 * i + 1], 0x88), _mm512_shuffle_f32x4(r[2 * i], r[2 * i + 1], 0xdd)); \
        for (int i = 0; i < 2; i++)                                                                           \
            z[i] = OP(_mm512_shuffle_ps(u[2 * i], u[2 * i + 1], 0x44), _mm512_shuffle_ps(u[2 * i], u[2 * i + 1], 0xee)); \
        __m512 f = OP(_mm512_shuffle_ps(z[0], z[1], 0x88), _mm512_shuffle_ps(z[0], z[1], 0xdd));                \
        return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), f); \
    }
#define ADD_EPI32_AS_PS(a, b) _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)))
REDUCE16(reduce16_max, _mm512_max_ps)
REDUCE16(reduce16_add_epi32, ADD_EPI32_AS_PS)

/* Sixteen blocks at once, the same bytes as quantize_block_avx512 block by block; the fp16 scale rounded by F16C
 * (IEEE round-to-nearest-even, as mm_fp32_to_fp16 for finite values). Returns -1, writing nothing, if a value
 * is not finite (the caller then goes block by block, whose NaN handling is the reference's). */
AVX512_TARGET static int quantize16_side(const float *x, mm_block_q8_0_t *y, int32_t offset, mm_pack_side_t *side) {
    __m512 m[16];
    __mmask16 bad = 0;
    for (int j = 0; j < 16; j++) {
        __m512 v0 = _mm512_loadu_ps(x + 32 * j), v1 = _mm512_loadu_ps(x + 32 * j + 16);
        bad |= _mm512_cmp_ps_mask(v0, v0, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(v1, v1, _CMP_UNORD_Q);
        m[j] = _mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1));
    }
    __m512 amax = reduce16_max(m);
    if (bad || _mm512_cmp_ps_mask(amax, _mm512_set1_ps(3.4028234664e38f), _CMP_LE_OQ) != 0xffff) return -1;
    __m512 d = _mm512_div_ps(amax, _mm512_set1_ps(127.0f));
    __m512 id = _mm512_maskz_div_ps(_mm512_cmp_ps_mask(amax, _mm512_setzero_ps(), _CMP_NEQ_OQ), _mm512_set1_ps(127.0f), amax);
    __m512 acc[16];
    for (int j = 0; j < 16; j++) {
        __m512 s = _mm512_permutexvar_ps(_mm512_set1_epi32(j), id);
        __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 32 * j), s));
        __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 32 * j + 16), s));
        _mm_storeu_si128((__m128i *)y[j].qs, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(y[j].qs + 16), _mm512_cvtepi32_epi8(q1));
        acc[j] = _mm512_castsi512_ps(_mm512_add_epi32(q0, q1));
    }
    __m512i c = _mm512_mullo_epi32(_mm512_castps_si512(reduce16_add_epi32(acc)), _mm512_set1_epi32(-offset));
    __m256i h = _mm512_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    uint16_t hv[16];
    float dv[16];
    int32_t cv[16];
    _mm256_storeu_si256((__m256i *)hv, h);
    _mm512_storeu_ps(dv, _mm512_cvtph_ps(h));
    _mm512_storeu_si512(cv, c);
    for (int j = 0; j < 16; j++) {
        y[j].d = hv[j];
        side[j].d = dv[j];
        side[j].c = cv[j];
        side[j].s = 0.0f;
    }
    return 0;
}

AVX512_TARGET void mm_quantize_q8_0_side_avx512(const float *x, mm_block_q8_0_t *y, int64_t n, int32_t offset,
                                                mm_pack_side_t *side) {
    int64_t nb = n / MM_QK, b = 0;
    for (; b + 16 <= nb; b += 16, x += 16 * MM_QK)
        if (quantize16_side(x, y + b, offset, side + b)) break;
    for (; b < nb; b++, x += MM_QK) {
        float d;
        int sum = quantize_block_avx512(x, y[b].qs, &d); /* |q| <= 127: the int32 sum is the int8 sum */
        y[b].d = mm_fp32_to_fp16(d);
        side[b].d = mm_fp16_to_fp32(y[b].d);
        side[b].c = (int32_t)(0u - (uint32_t)offset * (uint32_t)sum); /* wraps (a NaN converts to INT_MIN) */
        side[b].s = 0.0f;
    }
}

AVX512_TARGET void mm_quantize_q8_1_avx512(const float *x, mm_block_q8_1_t *y, int64_t n) {
    for (int64_t b = 0; b < n / MM_QK; b++, x += MM_QK) {
        float d;
        int sum = quantize_block_avx512(x, y[b].qs, &d);
        y[b].d = mm_fp32_to_fp16(d);
        y[b].s = mm_fp32_to_fp16(d * (float)sum);
    }
}

/* AVX2: the same steps on 8-lane registers; packs saturate, but |q| <= 127. */
AVX2_TARGET static inline int quantize_block_avx2(const float *x, int8_t *qs, float *d_out) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4], m = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float amax = _mm_cvtss_f32(h);
    float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
    __m256 s = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; k++) q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], s));
    __m256i sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    /* packs interleave 128-bit lanes: restore element order with a dword permute */
    __m256i p16 = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    p16 = _mm256_permutevar8x32_epi32(p16, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)qs, p16);
    *d_out = d;
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
    return _mm_cvtsi128_si32(t);
}

AVX2_TARGET void mm_quantize_q8_0_side_avx2(const float *x, mm_block_q8_0_t *y, int64_t n, int32_t offset,
                                            mm_pack_side_t *side) {
    for (int64_t b = 0; b < n / MM_QK; b++, x += MM_QK) {
        float d;
        int sum = quantize_block_avx2(x, y[b].qs, &d);
        y[b].d = mm_fp32_to_fp16(d);
        side[b].d = mm_fp16_to_fp32(y[b].d);
        side[b].c = (int32_t)(0u - (uint32_t)offset * (uint32_t)sum); /* wraps (a NaN converts to INT_MIN) */
        side[b].s = 0.0f;
    }
}

AVX2_TARGET void mm_quantize_q8_0_avx2(const float *x, mm_block_q8_0_t *y, int64_t n) {
    for (int64_t b = 0; b < n / MM_QK; b++, x += MM_QK) {
        float d;
        quantize_block_avx2(x, y[b].qs, &d);
        y[b].d = mm_fp32_to_fp16(d);
    }
}

AVX2_TARGET void mm_quantize_q8_1_avx2(const float *x, mm_block_q8_1_t *y, int64_t n) {
    for (int64_t b = 0; b < n / MM_QK; b++, x += MM_QK) {
        float d;
        int sum = quantize_block_avx2(x, y[b].qs, &d);
        y[b].d = mm_fp32_to_fp16(d);
        y[b].s = mm_fp32_to_fp16(d * (float)sum);
    }
}
