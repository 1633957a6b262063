/* Training products with frozen weights (see matmul_bwd.h). */
#include "train/matmul_bwd.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "quant/types.h"

/* ---- panel kernel: C[T x nr] (+)= A[T x K] . B[K x nr] ---- */

static void gemm_panel_scalar(int T, int K, const float *A, long lda, const float *B, long ldb, int nr, float *C,
                              long ldc, int accumulate) {
    for (int t = 0; t < T; t++)
        for (int j = 0; j < nr; j++) {
            float s = accumulate ? C[t * ldc + j] : 0.0f;
            for (int k = 0; k < K; k++) s = __builtin_fmaf(A[t * lda + k], B[k * ldb + j], s);
            C[t * ldc + j] = s;
        }
}

/* MR tokens x 32 columns in 2 * MR zmm accumulators; B rows loaded once per k
 * and shared by the MR broadcasts of A. */
#define AVX512_BLOCK(MR)                                                                                            \
    __attribute__((target("avx512f"))) static void blk512_##MR(int K, const float *A, long lda, const float *B,     \
                                                               long ldb, __mmask16 m0, __mmask16 m1, float *C,      \
                                                               long ldc, int accumulate) {                          \
        __m512 c0[MR], c1[MR];                                                                                      \
        _Pragma("GCC unroll 8") for (int a = 0; a < MR; a++) {                                                      \
            c0[a] = accumulate ? _mm512_maskz_loadu_ps(m0, C + a * ldc) : _mm512_setzero_ps();                      \
            c1[a] = accumulate ? _mm512_maskz_loadu_ps(m1, C + a * ldc + 16) : _mm512_setzero_ps();                 \
        }                                                                                                           \
        for (int k = 0; k < K; k++) {                                                                               \
            __m512 b0 = _mm512_maskz_loadu_ps(m0, B + k * ldb), b1 = _mm512_maskz_loadu_ps(m1, B + k * ldb + 16);   \
            _Pragma("GCC unroll 8") for (int a = 0; a < MR; a++) {                                                  \
                __m512 s = _mm512_set1_ps(A[a * lda + k]);                                                          \
                c0[a] = _mm512_fmadd_ps(s, b0, c0[a]);                                                              \
                c1[a] = _mm512_fmadd_ps(s, b1, c1[a]);                                                              \
            }                                                                                                       \
        }                                                                                                           \
        _Pragma("GCC unroll 8") for (int a = 0; a < MR; a++) {                                                      \
            _mm512_mask_storeu_ps(C + a * ldc, m0, c0[a]);                                                          \
            _mm512_mask_storeu_ps(C + a * ldc + 16, m1, c1[a]);                                                     \
        }                                                                                                           \
    }
AVX512_BLOCK(1)
AVX512_BLOCK(2)
AVX512_BLOCK(3)
AVX512_BLOCK(4)
AVX512_BLOCK(5)
AVX512_BLOCK(6)
AVX512_BLOCK(7)
AVX512_BLOCK(8)

__attribute__((target("avx512f"))) static void gemm_panel_avx512(int T, int K, const float *A, long lda,
                                                                  const float *B, long ldb, int nr, float *C, long ldc,
                                                                  int accumulate) {
    __mmask16 m0 = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? (__mmask16)0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
    int t = 0;
    for (; t + 8 <= T; t += 8) blk512_8(K, A + t * lda, lda, B, ldb, m0, m1, C + t * ldc, ldc, accumulate);
    const float *a = A + t * lda;
    float *c = C + t * ldc;
    switch (T - t) {
    case 7: blk512_7(K, a, lda, B, ldb, m0, m1, c, ldc, accumulate); break;
    case 6: blk512_6(K, a, lda, B, ldb, m0, m1, c, ldc, accumulate); break;
    case 5: blk512_5(K, a, lda, B, ldb, m0, m1, c, ldc, accumulate); break;
    case 4: blk512_4(K, a, lda, B, ldb, m0, m1, c, ldc, accumulate); break;
    case 3: blk512_3(K, a, lda, B, ldb, m0, m1, c, ldc, accumulate); break;
    case 2: blk512_2(K, a, lda, B, ldb, m0, m1, c, ldc, accumulate); break;
    case 1: blk512_1(K, a, lda, B, ldb, m0, m1, c, ldc, accumulate); break;
    default: break;
    }
}

/* AVX2: 16 columns (2 ymm) x up to 6 tokens per block, the panel in two halves. */
__attribute__((target("avx2,fma"))) static void blk256(int mr, int K, const float *A, long lda, const float *B,
                                                        long ldb, __m256i k0, __m256i k1, float *C, long ldc,
                                                        int accumulate) {
    __m256 c0[6], c1[6];
#pragma GCC unroll 6
    for (int a = 0; a < 6; a++) {
        c0[a] = accumulate && a < mr ? _mm256_maskload_ps(C + a * ldc, k0) : _mm256_setzero_ps();
        c1[a] = accumulate && a < mr ? _mm256_maskload_ps(C + a * ldc + 8, k1) : _mm256_setzero_ps();
    }
    const float *ar[6];
#pragma GCC unroll 6
    for (int a = 0; a < 6; a++) ar[a] = A + (a < mr ? a : 0) * lda;
    for (int k = 0; k < K; k++) {
        __m256 b0 = _mm256_maskload_ps(B + k * ldb, k0), b1 = _mm256_maskload_ps(B + k * ldb + 8, k1);
#pragma GCC unroll 6
        for (int a = 0; a < 6; a++) {
            __m256 s = _mm256_broadcast_ss(ar[a] + k);
            c0[a] = _mm256_fmadd_ps(s, b0, c0[a]);
            c1[a] = _mm256_fmadd_ps(s, b1, c1[a]);
        }
    }
    for (int a = 0; a < mr; a++) {
        _mm256_maskstore_ps(C + a * ldc, k0, c0[a]);
        _mm256_maskstore_ps(C + a * ldc + 8, k1, c1[a]);
    }
}

__attribute__((target("avx2,fma"))) static __m256i lanes256(int n) {
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

__attribute__((target("avx2,fma"))) static void gemm_panel_avx2(int T, int K, const float *A, long lda,
                                                                 const float *B, long ldb, int nr, float *C, long ldc,
                                                                 int accumulate) {
    for (int h = 0; h < nr; h += 16) {
        int n = nr - h < 16 ? nr - h : 16;
        __m256i k0 = lanes256(n), k1 = lanes256(n - 8);
        for (int t = 0; t < T; t += 6)
            blk256(T - t < 6 ? T - t : 6, K, A + t * lda, lda, B + h, ldb, k0, k1, C + t * ldc + h, ldc, accumulate);
    }
}

void tl_gemm_panel(int T, int K, const float *A, long lda, const float *B, long ldb, int nr, float *C, long ldc,
                   int accumulate, cpu_level_t level) {
    if (T <= 0 || nr <= 0) return;
    if (level >= CPU_LEVEL_AVX512) gemm_panel_avx512(T, K, A, lda, B, ldb, nr, C, ldc, accumulate);
    else if (level >= CPU_LEVEL_AVX2) gemm_panel_avx2(T, K, A, lda, B, ldb, nr, C, ldc, accumulate);
    else gemm_panel_scalar(T, K, A, lda, B, ldb, nr, C, ldc, accumulate);
}

/* ---- backward: dx = dy . W, columns of W split over the threads ---- */

enum { BWD_KC = 128 }; /* rows of W dequantized per block */

typedef struct {
    float *dx;
    const float *dy;
    const mm_weight_t *w;
    int n_tokens, accumulate;
    cpu_level_t level;
    int64_t blk;        /* columns per block of the type */
    size_t blk_bytes;
    int failed;
} bwd_job_t;

static void bwd_cols(void *arg, int ith, int nth) {
    bwd_job_t *j = arg;
    const mm_weight_t *w = j->w;
    long b0, b1;
    threadpool_split((long)(w->n_in / j->blk), ith, nth, &b0, &b1);
    if (b0 >= b1) return;
    long c0 = b0 * j->blk, nc = (b1 - b0) * j->blk;
    long N = w->n_in, O = w->n_out;
    float *tile = NULL;
    if (w->type != GGML_TYPE_F32) {
        tile = malloc(sizeof(float) * (size_t)(BWD_KC * nc));
        if (!tile) {
            j->failed = 1;
            return;
        }
    }
    for (long o0 = 0; o0 < O; o0 += BWD_KC) {
        int R = O - o0 < BWD_KC ? (int)(O - o0) : BWD_KC;
        const float *tp;
        long ld;
        if (w->type == GGML_TYPE_F32) {
            tp = (const float *)w->data + o0 * N + c0;
            ld = N;
        } else {
            for (int r = 0; r < R; r++) {
                const char *src = (const char *)w->data + (size_t)(o0 + r) * w->row_bytes + (size_t)b0 * j->blk_bytes;
                if (dequantize_row(w->type, src, tile + r * nc, nc, NULL)) {
                    j->failed = 1;
                    free(tile);
                    return;
                }
            }
            tp = tile;
            ld = nc;
        }
        int acc = j->accumulate || o0 > 0;
        for (long c = 0; c < nc; c += TL_GEMM_NR) {
            int nr = nc - c < TL_GEMM_NR ? (int)(nc - c) : TL_GEMM_NR;
            tl_gemm_panel(j->n_tokens, R, j->dy + o0, O, tp + c, ld, nr, j->dx + c0 + c, N, acc, j->level);
        }
    }
    free(tile);
}

int matmul_backward_input(float *dx, const float *dy, const mm_weight_t *w, int n_tokens, const mm_env_t *env,
                          int accumulate, tl_err_t *err) {
    if (w->type != GGML_TYPE_F32 && !ggml_type_can_dequantize(w->type))
        return tl_fail(err, "matmul backward: unsupported weight type %u", w->type);
    bwd_job_t j = {.dx = dx, .dy = dy, .w = w, .n_tokens = n_tokens, .accumulate = accumulate, .level = env->level};
    if (w->type == GGML_TYPE_F32) {
        j.blk = 1;
        j.blk_bytes = sizeof(float);
    } else {
        j.blk = ggml_type_block_size(w->type);
        j.blk_bytes = ggml_type_block_bytes(w->type);
        if (j.blk <= 0 || w->n_in % j.blk)
            return tl_fail(err, "matmul backward: %lld columns are not a multiple of the block size",
                           (long long)w->n_in);
    }
    if (n_tokens <= 0) return 0;
    if (env->pool) threadpool_run(env->pool, bwd_cols, &j);
    else bwd_cols(&j, 0, 1);
    if (j.failed) return tl_fail(err, "matmul backward: out of memory or bad block data");
    return 0;
}

/* ---- forward: y = x . W^T, panels of TL_GEMM_NR output rows split over the threads ---- */

enum { FWD_KC = 256 }; /* summed columns per pass over the token blocks (a 32 KiB panel block) */

typedef struct {
    float *y;
    const float *x;
    const mm_weight_t *w;
    int n_tokens;
    cpu_level_t level;
    int failed;
} fwd_job_t;

static void fwd_rows(void *arg, int ith, int nth) {
    fwd_job_t *j = arg;
    const mm_weight_t *w = j->w;
    long nb = (w->n_out + TL_GEMM_NR - 1) / TL_GEMM_NR, b0, b1;
    threadpool_split(nb, ith, nth, &b0, &b1);
    if (b0 >= b1) return;
    long N = w->n_in, O = w->n_out;
    /* rows: dequantized rows of the panel; packed: the panel transposed, N x TL_GEMM_NR */
    float *rows = w->type == GGML_TYPE_F32 ? NULL : malloc(sizeof(float) * (size_t)(TL_GEMM_NR * N));
    float *packed = malloc(sizeof(float) * (size_t)(TL_GEMM_NR * N));
    if ((w->type != GGML_TYPE_F32 && !rows) || !packed) {
        j->failed = 1;
        free(rows), free(packed);
        return;
    }
    for (long b = b0; b < b1; b++) {
        long o0 = b * TL_GEMM_NR;
        int R = O - o0 < TL_GEMM_NR ? (int)(O - o0) : TL_GEMM_NR;
        const float *src = (const float *)w->data + o0 * N;
        if (rows) {
            for (int r = 0; r < R; r++)
                if (dequantize_row(w->type, (const char *)w->data + (size_t)(o0 + r) * w->row_bytes, rows + r * N, N,
                                   NULL)) {
                    j->failed = 1;
                    free(rows), free(packed);
                    return;
                }
            src = rows;
        }
        for (long i = 0; i < N; i++) {
            float *p = packed + i * TL_GEMM_NR;
            for (int r = 0; r < R; r++) p[r] = src[r * N + i];
        }
        for (long k0 = 0; k0 < N; k0 += FWD_KC) {
            int kc = N - k0 < FWD_KC ? (int)(N - k0) : FWD_KC;
            tl_gemm_panel(j->n_tokens, kc, j->x + k0, N, packed + k0 * TL_GEMM_NR, TL_GEMM_NR, R, j->y + o0, O,
                          k0 > 0, j->level);
        }
    }
    free(rows), free(packed);
}

int matmul_forward_dequant(float *y, const float *x, const mm_weight_t *w, int n_tokens, const mm_env_t *env,
                           tl_err_t *err) {
    if (w->type != GGML_TYPE_F32 && !ggml_type_can_dequantize(w->type))
        return tl_fail(err, "matmul: unsupported weight type %u", w->type);
    if (n_tokens <= 0) return 0;
    fwd_job_t j = {.y = y, .x = x, .w = w, .n_tokens = n_tokens, .level = env->level};
    if (env->pool) threadpool_run(env->pool, fwd_rows, &j);
    else fwd_rows(&j, 0, 1);
    if (j.failed) return tl_fail(err, "matmul: out of memory or bad block data");
    return 0;
}
