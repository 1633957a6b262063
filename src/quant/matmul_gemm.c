/* Tiled AVX-512 VNNI matrix-matrix kernels for Q4_1 and Q5_0 weights (see
 * matmul_gemm.h for the panel and the exactness argument; Q8_0, Q4_0 and
 * IQ4_NL have their own packed kernels, matmul_pack.h). */
#include "quant/matmul_gemm.h"

#include <immintrin.h>
#include <string.h>

#include "quant/matmul_ext.h"
#include "quant/matmul_ext_simd.h"
#include "quant/matmul_kernels.h"
#include "quant/types.h"

#define G512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define G_INLINE static inline __attribute__((always_inline))

#define TS MM_GEMM_TS
#ifndef GEMM_REDUCE16
#define GEMM_REDUCE16 1
#endif

G512 static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

/* One pair of 32-element blocks of one panel tile. */
typedef struct {
    int8_t qs[TS][64];     /* the two blocks' int8 values, per token slot */
    float da[TS][16];      /* activation scales: lanes 0-7 block 0, lanes 8-15 block 1 */
    int32_t corr[TS][16];  /* -K * (sum of the lane's four int8 values) */
    float s[2][TS];        /* Q8_1 only: the two blocks' d * sum(q), per slot */
} gemm_pair_t;

/* K: the offset that makes the weight values unsigned bytes (0: already unsigned). */
static int weight_offset(uint32_t type) {
    switch (type) {
    case GGML_TYPE_Q4_1: return 0;
    default: return 16; /* Q5_0 */
    }
}

bool mm_gemm_supports(uint32_t type, int64_t n_in, int n_tokens, cpu_level_t level) {
    bool t = type == GGML_TYPE_Q5_0;
    if (level == CPU_LEVEL_AVX2) return t && n_tokens > 1 && n_in >= MM_QK;
    return t && level == CPU_LEVEL_AVX512 && n_tokens > 1 && n_in >= 2 * MM_QK;
}

size_t mm_gemm_panel_bytes(int64_t n_in, int n_tokens) {
    int64_t np = n_in / MM_QK / 2;
    if (np < 1 || n_tokens < 1) return 0;
    return (size_t)((n_tokens + TS - 1) / TS) * (size_t)np * sizeof(gemm_pair_t);
}

/* ---- packing ---- */

G512 static inline __m512i join256(const void *lo, const void *hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)lo)),
                              _mm256_loadu_si256((const __m256i *)hi), 1);
}

/* Two fp16 scales -> lanes 0-7 the first, lanes 8-15 the second (exact conversions). */
G512 static inline __m512 scales_of(uint16_t lo, uint16_t hi) {
    __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)lo | (uint32_t)hi << 16)));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), _mm512_castps128_ps512(f));
}

G512 static void pack_tile(uint32_t type, int64_t np, const char *act, size_t act_row, int n_tokens, long k,
                           gemm_pair_t *dst) {
    const int K = weight_offset(type);
    const __m512i ones = _mm512_set1_epi8(1), negk = _mm512_set1_epi32(-K);
    memset(dst, 0, (size_t)np * sizeof *dst);
    for (int slot = 0; slot < TS; slot++) {
        long t = k * TS + slot;
        if (t >= n_tokens) break;
        const char *row = act + (size_t)t * act_row;
        for (int64_t p = 0; p < np; p++) {
            gemm_pair_t *P = &dst[p];
            __m512i q;
            if (type == GGML_TYPE_Q4_1) {
                const mm_block_q8_1_t *a = (const mm_block_q8_1_t *)row + 2 * p;
                q = join256(a[0].qs, a[1].qs);
                _mm512_store_ps(P->da[slot], scales_of(a[0].d, a[1].d));
                P->s[0][slot] = h2f(a[0].s);
                P->s[1][slot] = h2f(a[1].s);
            } else { /* Q8_0 activations */
                const mm_block_q8_0_t *a = (const mm_block_q8_0_t *)row + 2 * p;
                q = join256(a[0].qs, a[1].qs);
                _mm512_store_ps(P->da[slot], scales_of(a[0].d, a[1].d));
            }
            _mm512_store_si512((__m512i *)P->qs[slot], q);
            if (K) {
                __m512i sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, q);
                _mm512_store_si512((__m512i *)P->corr[slot], _mm512_mullo_epi32(sums, negk));
            }
        }
    }
}

void mm_gemm_pack(uint32_t type, int64_t n_in, const void *act, size_t act_row, int n_tokens, long k0, long k1,
                  void *panel) {
    int64_t np = n_in / MM_QK / 2;
    for (long k = k0; k < k1; k++)
        pack_tile(type, np, act, act_row, n_tokens, k, (gemm_pair_t *)panel + (size_t)k * (size_t)np);
}

/* ---- weight block pairs as unsigned bytes w + K ---- */

/* Two blocks' 16 nibble bytes each -> 64 bytes 0..15 in element order
 * (block 0 low nibbles, block 0 high nibbles, block 1 low, block 1 high). */
G512 G_INLINE __m512i nibble_pair(const uint8_t *q0, const uint8_t *q1) {
    __m256i y = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)q0)),
                                        _mm_loadu_si128((const __m128i *)q1), 1);
    __m512i v = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3), _mm512_castsi256_si512(y));
    v = _mm512_mask_srli_epi16(v, (__mmask32)0xff00ff00u, v, 4);
    return _mm512_and_si512(v, _mm512_set1_epi8(0x0f));
}

/* Block pair starting at block b of the weight row w: unsigned values, the
 * fp32 scales as in the single-row kernel, and (Q4_1) the two mins broadcast. */
G512 G_INLINE void expand_pair(const uint32_t type, const uint8_t *w, int64_t b, __m512i *wq, __m512 *dw, __m256 *m0,
                               __m256 *m1) {
    if (type == GGML_TYPE_Q4_1) {
        const mm_block_q4_1_t *x = (const mm_block_q4_1_t *)w + b;
        uint32_t dm0, dm1; /* d and m of each block, adjacent */
        memcpy(&dm0, &x[0], 4);
        memcpy(&dm1, &x[1], 4);
        __m256 f = _mm256_castps128_ps256(_mm_cvtph_ps(_mm_setr_epi32((int)dm0, (int)dm1, 0, 0))); /* d0 m0 d1 m1 */
        *wq = nibble_pair(x[0].qs, x[1].qs);
        *dw = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2),
                                    _mm512_castps256_ps512(f));
        *m0 = _mm256_permutexvar_ps(_mm256_set1_epi32(1), f);
        *m1 = _mm256_permutexvar_ps(_mm256_set1_epi32(3), f);
    } else { /* Q5_0 */
        const mm_block_q5_0_t *x = (const mm_block_q5_0_t *)w + b;
        uint32_t h0, h1;
        memcpy(&h0, x[0].qh, 4);
        memcpy(&h1, x[1].qh, 4);
        __mmask64 hb = (__mmask64)h0 | (__mmask64)h1 << 32;
        *wq = _mm512_or_si512(nibble_pair(x[0].qs, x[1].qs), _mm512_maskz_mov_epi8(hb, _mm512_set1_epi8(0x10)));
        *dw = scales_of(x[0].d, x[1].d);
    }
}

/* res[k] = _mm512_reduce_add_ps(v[k]) for 16 vectors, bit for bit: the same
 * additions as the intrinsic's tree (lanes i + i+8, then i + i+4, then
 * 0 + 2 and 1 + 3, then the last two), done for all 16 at once. */
G512 G_INLINE void reduce16(const __m512 *v, float *res) {
    __m512 x[8], z[4], u[2];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) /* [v2k lanes 0-7 + 8-15 | v2k+1 the same], as 128-bit quarters */
        x[k] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
#pragma GCC unroll 4
    for (int m = 0; m < 4; m++) /* quarter q: vector 4m + q, lanes i + i+4 */
        z[m] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * m], x[2 * m + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(x[2 * m], x[2 * m + 1], _MM_SHUFFLE(3, 1, 3, 1)));
#pragma GCC unroll 2
    for (int m = 0; m < 2; m++) /* quarter q: [0+2, 1+3] of z[2m] then of z[2m+1] */
        u[m] = _mm512_add_ps(_mm512_shuffle_ps(z[2 * m], z[2 * m + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(z[2 * m], z[2 * m + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    /* quarter q, element e: vector 4e + q */
    __m512 f = _mm512_add_ps(_mm512_shuffle_ps(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_ps(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
    float tmp[16];
    _mm512_storeu_ps(tmp, f);
#pragma GCC unroll 16
    for (int k = 0; k < 16; k++) res[k] = tmp[4 * (k % 4) + k / 4];
}

/* The single-row AVX2 kernel on the last block of an odd block count, as the AVX-512 kernels do it. */
static float tail_block(uint32_t type, const uint8_t *w, int64_t b, const char *a) {
    switch (type) {
    case GGML_TYPE_Q4_1:
        return matmul_dot_q4_1_q8_1(MM_QK, (const mm_block_q4_1_t *)w + b, (const mm_block_q8_1_t *)a + b, CPU_LEVEL_AVX2);
    default: {
        size_t bb = mm_ext_row_bytes(type, MM_QK);
        return mm_ext_dot(type, MM_QK, w + (size_t)b * bb, (const mm_block_q8_0_t *)a + b, CPU_LEVEL_AVX2);
    }
    }
}

/* ---- the R x T tile ---- */

typedef struct {
    const uint8_t *w;      /* first row of the tile */
    size_t row_bytes;
    const gemm_pair_t *pp; /* the token tile's pairs */
    int64_t np, nb;
    int slot0;             /* first slot of the tile in the panel tile */
    long r;                /* first row */
    long t0;               /* token of slot0 */
    int n_tokens;
    const char *act;
    size_t act_row;
    float *out;
    int64_t n_out;
} gemm_tile_t;

/* R rows (1..4) by T token slots (4 or 8). The fp32 steps per (row, token) are
 * those of mm_dot_*_avx512: per block pair fmadd(dw * da, cvt(p), acc), then
 * _mm512_reduce_add_ps, the AVX2 tail block, and for Q4_1 the min terms summed
 * in block order. */
G512 G_INLINE void gemm_tile(const uint32_t type, const int R, const int T, const gemm_tile_t *g) {
    const int K = weight_offset(type);
    __m512 acc[4][8];
    __m256 summ[4];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
#pragma GCC unroll 8
        for (int j = 0; j < T; j++) acc[i][j] = _mm512_setzero_ps();
        summ[i] = _mm256_setzero_ps();
    }
    for (int64_t p = 0; p < g->np; p++) {
        __m512i wq[4];
        __m512 dw[4];
        __m256 m0[4], m1[4];
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) expand_pair(type, g->w + (size_t)i * g->row_bytes, 2 * p, &wq[i], &dw[i], &m0[i], &m1[i]);
        const gemm_pair_t *P = &g->pp[p];
#pragma GCC unroll 8
        for (int j = 0; j < T; j++) {
            __m512i a = _mm512_load_si512((const __m512i *)P->qs[g->slot0 + j]);
            __m512 da = _mm512_load_ps(P->da[g->slot0 + j]);
            __m512i c = K ? _mm512_load_si512((const __m512i *)P->corr[g->slot0 + j]) : _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int i = 0; i < R; i++) {
                __m512i pr = _mm512_dpbusd_epi32(c, wq[i], a);
                acc[i][j] = _mm512_fmadd_ps(_mm512_mul_ps(dw[i], da), _mm512_cvtepi32_ps(pr), acc[i][j]);
            }
        }
        if (type == GGML_TYPE_Q4_1) {
#pragma GCC unroll 4
            for (int i = 0; i < R; i++) {
                if (T == 8) {
                    summ[i] = _mm256_add_ps(summ[i], _mm256_mul_ps(m0[i], _mm256_load_ps(P->s[0])));
                    summ[i] = _mm256_add_ps(summ[i], _mm256_mul_ps(m1[i], _mm256_load_ps(P->s[1])));
                } else {
                    __m128 s0 = _mm_loadu_ps(P->s[0] + g->slot0), s1 = _mm_loadu_ps(P->s[1] + g->slot0);
                    __m128 t = _mm256_castps256_ps128(summ[i]);
                    t = _mm_add_ps(t, _mm_mul_ps(_mm256_castps256_ps128(m0[i]), s0));
                    t = _mm_add_ps(t, _mm_mul_ps(_mm256_castps256_ps128(m1[i]), s1));
                    summ[i] = _mm256_castps128_ps256(t);
                }
            }
        }
    }
    float red[32]; /* [R][T] */
    if (GEMM_REDUCE16 && R * T == 16) {
        __m512 v[16];
#pragma GCC unroll 4
        for (int i = 0; i < R; i++)
#pragma GCC unroll 8
            for (int j = 0; j < T; j++) v[i * T + j] = acc[i][j];
        reduce16(v, red);
    } else {
#pragma GCC unroll 4
        for (int i = 0; i < R; i++)
#pragma GCC unroll 8
            for (int j = 0; j < T; j++) red[i * T + j] = _mm512_reduce_add_ps(acc[i][j]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
        float sm[8];
        _mm256_storeu_ps(sm, summ[i]);
#pragma GCC unroll 8
        for (int j = 0; j < T; j++) {
            long t = g->t0 + j;
            if (t >= g->n_tokens) break;
            float s = red[i * T + j];
            if (g->nb & 1)
                s += tail_block(type, g->w + (size_t)i * g->row_bytes, g->nb - 1, g->act + (size_t)t * g->act_row);
            if (type == GGML_TYPE_Q4_1) s += sm[j];
            g->out[(size_t)t * (size_t)g->n_out + (size_t)(g->r + i)] = s;
        }
    }
}

G512 G_INLINE void gemm_tile_r(const uint32_t type, int R, const int T, const gemm_tile_t *g) {
    switch (R) {
    case 1: gemm_tile(type, 1, T, g); break;
    case 2: gemm_tile(type, 2, T, g); break;
    case 3: gemm_tile(type, 3, T, g); break;
    default: gemm_tile(type, 4, T, g); break;
    }
}

/* Asks for weight rows [r0, r1) (clipped to the matrix) ahead of their tile:
 * a serving pass of a few dozen tokens uses each row for a microsecond, too
 * short for the hardware prefetcher to hide the wait for rows that are not in
 * L2 (the model's weights are read once per pass). */
G_INLINE void prefetch_rows(const mm_weight_t *w, long r0, long r1) {
    if (r1 > w->n_out) r1 = w->n_out;
    if (r0 >= r1) return;
    const char *p = (const char *)w->data + (size_t)r0 * w->row_bytes;
    size_t n = (size_t)(r1 - r0) * w->row_bytes;
    for (size_t o = 0; o < n; o += 64) __builtin_prefetch(p + o, 0, 3);
}

/* Rows [r0, r1) in tiles of RMAX rows, token tiles in chunks whose panel fits in L1. */
G512 G_INLINE void gemm_rows_of(const uint32_t type, const int RMAX, const int T, const mm_weight_t *w,
                                const gemm_pair_t *panel, const char *act, size_t act_row, int n_tokens, long r0,
                                long r1, float *out) {
    gemm_tile_t g = {.row_bytes = w->row_bytes, .np = w->n_in / MM_QK / 2, .nb = w->n_in / MM_QK,
                     .n_tokens = n_tokens, .act = act, .act_row = act_row, .out = out, .n_out = w->n_out};
    long n_tiles = (n_tokens + TS - 1) / TS;
    long chunk = (long)(32768 / ((size_t)g.np * sizeof(gemm_pair_t)));
    if (chunk < 1) chunk = 1;
    prefetch_rows(w, r0, r0 + 2 * RMAX);
    for (long k0 = 0; k0 < n_tiles; k0 += chunk) {
        long k1 = k0 + chunk < n_tiles ? k0 + chunk : n_tiles;
        for (long r = r0; r < r1; r += RMAX) {
            int R = r1 - r < RMAX ? (int)(r1 - r) : RMAX;
            g.r = r;
            g.w = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
            if (k0 == 0) prefetch_rows(w, r + 2 * RMAX, r + 3 * RMAX);
            for (long k = k0; k < k1; k++) {
                g.pp = panel + (size_t)k * (size_t)g.np;
                for (int s = 0; s < TS; s += T) {
                    g.slot0 = s;
                    g.t0 = k * TS + s;
                    if (g.t0 >= n_tokens) break;
                    gemm_tile_r(type, R, T, &g);
                }
            }
        }
    }
}

/* Tile shapes, measured with tools/bench_gemm (one thread, CPU time): 4 rows x 4 tokens
 * for most types; Q4_1's min terms make 2 rows x 8 tokens faster. */
G512 static void rows_q5_0(const mm_weight_t *w, const gemm_pair_t *pn, const char *a, size_t ar, int n, long r0, long r1,
                           float *out) {
    gemm_rows_of(GGML_TYPE_Q5_0, 4, 4, w, pn, a, ar, n, r0, r1, out);
}
/* ---- AVX2: one block per register, the activation rows read in place ----
 *
 * The AVX2 single-row kernels compute each block as 8 int32 lanes with
 * vpmaddubsw/vpmaddwd (|w| times a with w's sign, or the unsigned Q4_1
 * nibbles times a), then fmadd(set1(dw * da), cvt(p), acc) and one horizontal
 * sum. The tiles below do exactly that per (row, token), sharing each
 * expanded weight block across T tokens and each activation block across R rows. */

/* The block's 32 weights as signed bytes (Q4_1: the unsigned nibbles). */
EXT_AVX2 G_INLINE __m256i expand_block_avx2(const uint32_t type, const uint8_t *w, int64_t b, float *dw, float *m) {
    if (type == GGML_TYPE_Q4_1) {
        const mm_block_q4_1_t *x = (const mm_block_q4_1_t *)w + b;
        *dw = ext_h2f(x->d);
        *m = ext_h2f(x->m);
        return ext_nibbles(x->qs);
    } else { /* Q5_0 */
        const mm_block_q5_0_t *x = (const mm_block_q5_0_t *)w + b;
        *dw = ext_h2f(x->d);
        __m256i hi = _mm256_and_si256(ext_bits_to_bytes(x->qh), _mm256_set1_epi8(0x10));
        return _mm256_sub_epi8(_mm256_or_si256(ext_nibbles(x->qs), hi), _mm256_set1_epi8(16));
    }
}

typedef struct {
    const uint8_t *w;
    size_t row_bytes;
    int64_t nb;
    const char *act;
    size_t act_row;
    float *out;
    int64_t n_out;
} gemm2_t;

/* R rows (1..2) from r by T tokens (1..4) from t. */
EXT_AVX2 G_INLINE void gemm2_tile(const uint32_t type, const int R, const int T, const gemm2_t *g, long r, long t) {
    const __m256i ones = _mm256_set1_epi16(1);
    const size_t asz = type == GGML_TYPE_Q4_1 ? sizeof(mm_block_q8_1_t) : sizeof(mm_block_q8_0_t);
    __m256 acc[2][4];
    float summs[2][4];
#pragma GCC unroll 2
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int j = 0; j < T; j++) {
            acc[i][j] = _mm256_setzero_ps();
            summs[i][j] = 0.0f;
        }
    const uint8_t *w0 = g->w + (size_t)r * g->row_bytes;
    const char *a0 = g->act + (size_t)t * g->act_row;
    for (int64_t b = 0; b < g->nb; b++) {
        __m256i ws[2], wa[2];
        float dw[2], m[2] = {0, 0};
#pragma GCC unroll 2
        for (int i = 0; i < R; i++) {
            ws[i] = expand_block_avx2(type, w0 + (size_t)i * g->row_bytes, b, &dw[i], &m[i]);
            wa[i] = type == GGML_TYPE_Q4_1 ? ws[i] : _mm256_sign_epi8(ws[i], ws[i]);
        }
#pragma GCC unroll 4
        for (int j = 0; j < T; j++) {
            const char *ab = a0 + (size_t)j * g->act_row + (size_t)b * asz;
            float da = ext_h2f(*(const uint16_t *)ab);
            __m256i qa = _mm256_loadu_si256((const __m256i *)(ab + (type == GGML_TYPE_Q4_1 ? 4 : 2)));
#pragma GCC unroll 2
            for (int i = 0; i < R; i++) {
                __m256i qs = type == GGML_TYPE_Q4_1 ? qa : _mm256_sign_epi8(qa, ws[i]);
                __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(wa[i], qs), ones);
                acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(dw[i] * da), _mm256_cvtepi32_ps(p), acc[i][j]);
                if (type == GGML_TYPE_Q4_1) summs[i][j] += m[i] * ext_h2f(*(const uint16_t *)(ab + 2));
            }
        }
    }
#pragma GCC unroll 2
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            g->out[(size_t)(t + j) * (size_t)g->n_out + (size_t)(r + i)] =
                type == GGML_TYPE_Q4_1 ? ext_hsum256(acc[i][j]) + summs[i][j] : ext_hsum256(acc[i][j]);
}

EXT_AVX2 G_INLINE void gemm2_rows_of(const uint32_t type, const mm_weight_t *w, const char *act, size_t act_row,
                                     int n_tokens, long r0, long r1, float *out) {
    gemm2_t g = {.w = w->data, .row_bytes = w->row_bytes, .nb = w->n_in / MM_QK, .act = act, .act_row = act_row,
                 .out = out, .n_out = w->n_out};
    for (long r = r0; r < r1; r += 2) {
        long t = 0;
        if (r + 2 <= r1) {
            for (; t + 4 <= n_tokens; t += 4) gemm2_tile(type, 2, 4, &g, r, t);
            for (; t < n_tokens; t++) gemm2_tile(type, 2, 1, &g, r, t);
        } else {
            for (; t + 4 <= n_tokens; t += 4) gemm2_tile(type, 1, 4, &g, r, t);
            for (; t < n_tokens; t++) gemm2_tile(type, 1, 1, &g, r, t);
        }
    }
}

#define GEMM2_ROWS(NAME, TYPE)                                                                                       \
    EXT_AVX2 static void NAME(const mm_weight_t *w, const char *a, size_t ar, int n, long r0, long r1, float *out) { \
        gemm2_rows_of(TYPE, w, a, ar, n, r0, r1, out);                                                               \
    }
GEMM2_ROWS(rows2_q5_0, GGML_TYPE_Q5_0)

void mm_gemm_rows(const mm_weight_t *w, const void *panel, const void *act, size_t act_row, int n_tokens, long r0,
                  long r1, float *out, cpu_level_t level) {
    const gemm_pair_t *pn = panel;
    const char *a = act;
    if (level == CPU_LEVEL_AVX2) {
        switch (w->type) {
        case GGML_TYPE_Q5_0: rows2_q5_0(w, a, act_row, n_tokens, r0, r1, out); break;
        default: break;
        }
        return;
    }
    switch (w->type) {
    case GGML_TYPE_Q5_0: rows_q5_0(w, pn, a, act_row, n_tokens, r0, r1, out); break;
    default: break;
    }
}
