/* Training products with frozen weights (see matmul_bwd.h). */
#include "train/matmul_bwd.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "quant/types.h"

/* ---- panel kernel: C[T x nr] (+)= A[T x K] . B[K x nr], A packed ---- */

size_t tl_gemm_packed_floats(int T, int K) {
    return (size_t)((T + TL_GEMM_MR - 1) / TL_GEMM_MR) * TL_GEMM_MR * (size_t)(K > 0 ? K : 0);
}

void tl_gemm_pack_a(float *Ap, const float *A, long lda, int T, int K, int t0, int t1) {
    for (int b = t0 / TL_GEMM_MR; b * TL_GEMM_MR < t1; b++) {
        float *p = Ap + (size_t)b * K * TL_GEMM_MR;
        int n = T - b * TL_GEMM_MR < TL_GEMM_MR ? T - b * TL_GEMM_MR : TL_GEMM_MR;
        const float *a = A + (long)b * TL_GEMM_MR * lda;
        if (n < TL_GEMM_MR) memset(p, 0, sizeof(float) * (size_t)K * TL_GEMM_MR);
        for (int r = 0; r < n; r++)
            for (int k = 0; k < K; k++) p[k * TL_GEMM_MR + r] = a[r * lda + k];
    }
}

static void gemm_panel_scalar(int T, int K, const float *Ap, long ap_ld, const float *B, long ldb, int nr, float *C,
                              long ldc, int accumulate) {
    for (int t = 0; t < T; t++) {
        const float *a = Ap + (t / TL_GEMM_MR) * ap_ld + t % TL_GEMM_MR;
        for (int j = 0; j < nr; j++) {
            float s = accumulate ? C[t * ldc + j] : 0.0f;
            for (int k = 0; k < K; k++) s = __builtin_fmaf(a[k * TL_GEMM_MR], B[k * ldb + j], s);
            C[t * ldc + j] = s;
        }
    }
}

/* One block of 8 packed tokens x 32 columns, all rows and columns valid:
 * unmasked loads and stores, one A pointer. */
__attribute__((target("avx512f"))) static void blk512_full(int K, const float *ap, const float *B, long ldb,
                                                            float *C, long ldc, int accumulate) {
    __m512 c0[8], c1[8];
#pragma GCC unroll 8
    for (int a = 0; a < 8; a++) {
        c0[a] = accumulate ? _mm512_loadu_ps(C + a * ldc) : _mm512_setzero_ps();
        c1[a] = accumulate ? _mm512_loadu_ps(C + a * ldc + 16) : _mm512_setzero_ps();
    }
    for (int k = 0; k < K; k++, ap += 8, B += ldb) {
        __m512 b0 = _mm512_loadu_ps(B), b1 = _mm512_loadu_ps(B + 16);
#pragma GCC unroll 8
        for (int a = 0; a < 8; a++) {
            __m512 s = _mm512_set1_ps(ap[a]);
            c0[a] = _mm512_fmadd_ps(s, b0, c0[a]);
            c1[a] = _mm512_fmadd_ps(s, b1, c1[a]);
        }
    }
#pragma GCC unroll 8
    for (int a = 0; a < 8; a++) {
        _mm512_storeu_ps(C + a * ldc, c0[a]);
        _mm512_storeu_ps(C + a * ldc + 16, c1[a]);
    }
}

/* Partial block: mr < 8 rows stored and/or nr < 32 columns (masked). The
 * padded rows of the packed A are zero. */
__attribute__((target("avx512f"))) static void blk512_part(int mr, int K, const float *ap, const float *B, long ldb,
                                                            __mmask16 m0, __mmask16 m1, float *C, long ldc,
                                                            int accumulate) {
    __m512 c0[8], c1[8];
#pragma GCC unroll 8
    for (int a = 0; a < 8; a++) {
        c0[a] = accumulate && a < mr ? _mm512_maskz_loadu_ps(m0, C + a * ldc) : _mm512_setzero_ps();
        c1[a] = accumulate && a < mr ? _mm512_maskz_loadu_ps(m1, C + a * ldc + 16) : _mm512_setzero_ps();
    }
    for (int k = 0; k < K; k++, ap += 8, B += ldb) {
        __m512 b0 = _mm512_maskz_loadu_ps(m0, B), b1 = _mm512_maskz_loadu_ps(m1, B + 16);
#pragma GCC unroll 8
        for (int a = 0; a < 8; a++) {
            __m512 s = _mm512_set1_ps(ap[a]);
            c0[a] = _mm512_fmadd_ps(s, b0, c0[a]);
            c1[a] = _mm512_fmadd_ps(s, b1, c1[a]);
        }
    }
    for (int a = 0; a < mr; a++) {
        _mm512_mask_storeu_ps(C + a * ldc, m0, c0[a]);
        _mm512_mask_storeu_ps(C + a * ldc + 16, m1, c1[a]);
    }
}

__attribute__((target("avx512f"))) static void gemm_panel_avx512(int T, int K, const float *Ap, long ap_ld,
                                                                  const float *B, long ldb, int nr, float *C, long ldc,
                                                                  int accumulate) {
    __mmask16 m0 = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? (__mmask16)0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
    for (int t = 0; t < T; t += 8) {
        int mr = T - t < 8 ? T - t : 8;
        const float *ap = Ap + (t / 8) * ap_ld;
        if (mr == 8 && nr == 32) blk512_full(K, ap, B, ldb, C + t * ldc, ldc, accumulate);
        else blk512_part(mr, K, ap, B, ldb, m0, m1, C + t * ldc, ldc, accumulate);
    }
}

/* AVX2: 4 packed tokens (half a block) x 16 columns (2 ymm) per pass. */
__attribute__((target("avx2,fma"))) static void blk256(int mr, int K, const float *ap, const float *B, long ldb,
                                                        __m256i k0, __m256i k1, float *C, long ldc, int accumulate) {
    __m256 c0[4], c1[4];
#pragma GCC unroll 4
    for (int a = 0; a < 4; a++) {
        c0[a] = accumulate && a < mr ? _mm256_maskload_ps(C + a * ldc, k0) : _mm256_setzero_ps();
        c1[a] = accumulate && a < mr ? _mm256_maskload_ps(C + a * ldc + 8, k1) : _mm256_setzero_ps();
    }
    for (int k = 0; k < K; k++, ap += 8, B += ldb) {
        __m256 b0 = _mm256_maskload_ps(B, k0), b1 = _mm256_maskload_ps(B + 8, k1);
#pragma GCC unroll 4
        for (int a = 0; a < 4; a++) {
            __m256 s = _mm256_broadcast_ss(ap + a);
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

__attribute__((target("avx2,fma"))) static void gemm_panel_avx2(int T, int K, const float *Ap, long ap_ld,
                                                                 const float *B, long ldb, int nr, float *C, long ldc,
                                                                 int accumulate) {
    for (int h = 0; h < nr; h += 16) {
        int n = nr - h < 16 ? nr - h : 16;
        __m256i k0 = lanes256(n), k1 = lanes256(n - 8);
        for (int t = 0; t < T; t += 4) {
            int mr = T - t < 4 ? T - t : 4;
            blk256(mr, K, Ap + (t / 8) * ap_ld + t % 8, B + h, ldb, k0, k1, C + t * ldc + h, ldc, accumulate);
        }
    }
}

void tl_gemm_panel(int T, int K, const float *Ap, long ap_ld, const float *B, long ldb, int nr, float *C, long ldc,
                   int accumulate, cpu_level_t level) {
    if (T <= 0 || nr <= 0) return;
    if (level >= CPU_LEVEL_AVX512) gemm_panel_avx512(T, K, Ap, ap_ld, B, ldb, nr, C, ldc, accumulate);
    else if (level >= CPU_LEVEL_AVX2) gemm_panel_avx2(T, K, Ap, ap_ld, B, ldb, nr, C, ldc, accumulate);
    else gemm_panel_scalar(T, K, Ap, ap_ld, B, ldb, nr, C, ldc, accumulate);
}

/* Packed copy of alpha * A for one product, A[t][k] = A[t * sa_t + k * sa_k]:
 * env->scratch when large enough, else allocated (*owned set). Packed by the
 * threads, token blocks split. */
typedef struct {
    float *Ap;
    const float *A;
    long sa_t, sa_k;
    float alpha;
    int T, K;
} pack_job_t;

static void pack_strided(const pack_job_t *j, int b) {
    float *p = j->Ap + (size_t)b * j->K * TL_GEMM_MR;
    int n = j->T - b * TL_GEMM_MR < TL_GEMM_MR ? j->T - b * TL_GEMM_MR : TL_GEMM_MR;
    const float *a = j->A + (long)b * TL_GEMM_MR * j->sa_t;
    if (n < TL_GEMM_MR) memset(p, 0, sizeof(float) * (size_t)j->K * TL_GEMM_MR);
    if (j->sa_t == 1) /* transposed source: 8 consecutive floats per k */
        for (int k = 0; k < j->K; k++)
            for (int r = 0; r < n; r++) p[k * TL_GEMM_MR + r] = j->alpha * a[k * j->sa_k + r];
    else
        for (int r = 0; r < n; r++)
            for (int k = 0; k < j->K; k++) p[k * TL_GEMM_MR + r] = j->alpha * a[r * j->sa_t + k * j->sa_k];
}

static void pack_blocks(void *arg, int ith, int nth) {
    pack_job_t *j = arg;
    long b0, b1;
    threadpool_split((j->T + TL_GEMM_MR - 1) / TL_GEMM_MR, ith, nth, &b0, &b1);
    if (b0 >= b1) return;
    if (j->alpha == 1.0f && j->sa_k == 1) {
        int t1 = (int)(b1 * TL_GEMM_MR) < j->T ? (int)(b1 * TL_GEMM_MR) : j->T;
        tl_gemm_pack_a(j->Ap, j->A, j->sa_t, j->T, j->K, (int)(b0 * TL_GEMM_MR), t1);
    } else
        for (long b = b0; b < b1; b++) pack_strided(j, (int)b);
}

static float *pack_a_strided(const float *A, long sa_t, long sa_k, float alpha, int T, int K, threadpool_t *pool,
                             void *scratch, size_t scratch_bytes, float **owned) {
    size_t n = tl_gemm_packed_floats(T, K);
    float *Ap = NULL;
    *owned = NULL;
    if (scratch && scratch_bytes >= n * sizeof(float)) Ap = scratch;
    else if (!(Ap = *owned = malloc(sizeof(float) * (n ? n : 1)))) return NULL;
    pack_job_t j = {Ap, A, sa_t, sa_k, alpha, T, K};
    if (pool && (size_t)T * (size_t)K >= 4096) threadpool_run(pool, pack_blocks, &j);
    else pack_blocks(&j, 0, 1);
    return Ap;
}

static float *pack_a(const float *A, int T, int K, const mm_env_t *env, float **owned) {
    return pack_a_strided(A, K, 1, 1.0f, T, K, env->pool, env->scratch, env->scratch_bytes, owned);
}

/* General product over packed A: the grid of (8-row block, 32-column panel)
 * tiles is split over the threads, by panels when there are enough of them,
 * else by row blocks. */
typedef struct {
    const float *Ap, *B;
    float *C;
    long ldb, ldc;
    int M, N, K, accumulate;
    cpu_level_t level;
} gemm_job_t;

static void gemm_tiles(void *arg, int ith, int nth) {
    const gemm_job_t *j = arg;
    long np = (j->N + TL_GEMM_NR - 1) / TL_GEMM_NR, nb = (j->M + TL_GEMM_MR - 1) / TL_GEMM_MR, lo, hi;
    long ap_ld = (long)j->K * TL_GEMM_MR;
    if (np >= 2L * nth) {
        threadpool_split(np, ith, nth, &lo, &hi);
        for (long p = lo; p < hi; p++) {
            int nr = j->N - p * TL_GEMM_NR < TL_GEMM_NR ? (int)(j->N - p * TL_GEMM_NR) : TL_GEMM_NR;
            tl_gemm_panel(j->M, j->K, j->Ap, ap_ld, j->B + p * TL_GEMM_NR, j->ldb, nr, j->C + p * TL_GEMM_NR, j->ldc,
                          j->accumulate, j->level);
        }
    } else {
        threadpool_split(nb, ith, nth, &lo, &hi);
        if (lo >= hi) return;
        int m0 = (int)(lo * TL_GEMM_MR), m1 = (int)(hi * TL_GEMM_MR) < j->M ? (int)(hi * TL_GEMM_MR) : j->M;
        for (long p = 0; p < np; p++) {
            int nr = j->N - p * TL_GEMM_NR < TL_GEMM_NR ? (int)(j->N - p * TL_GEMM_NR) : TL_GEMM_NR;
            tl_gemm_panel(m1 - m0, j->K, j->Ap + lo * ap_ld, ap_ld, j->B + p * TL_GEMM_NR, j->ldb, nr,
                          j->C + (long)m0 * j->ldc + p * TL_GEMM_NR, j->ldc, j->accumulate, j->level);
        }
    }
}

int tl_gemm(threadpool_t *pool, cpu_level_t level, int M, int N, int K, float alpha, const float *A, long sa_m,
            long sa_k, const float *B, long ldb, int accumulate, float *C, long ldc) {
    if (M <= 0 || N <= 0) return 0;
    float *owned;
    const float *Ap = pack_a_strided(A, sa_m, sa_k, alpha, M, K, pool, NULL, 0, &owned);
    if (!Ap) return -1;
    gemm_job_t j = {Ap, B, C, ldb, ldc, M, N, K, accumulate, level};
    if (pool && (long)M * N * K >= 65536) threadpool_run(pool, gemm_tiles, &j);
    else gemm_tiles(&j, 0, 1);
    free(owned);
    return 0;
}

/* ---- backward: dx = dy . W, columns of W split over the threads ---- */

enum { BWD_KC = 128 }; /* rows of W dequantized per block */

typedef struct {
    float *dx;
    const float *dyp; /* dy packed (tl_gemm_pack_a), K = n_out */
    const mm_weight_t *w;
    const mm_dq_t *dq; /* the weight's panels built once, or NULL */
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
    long N = w->n_in, O = w->n_out, np = (nc + TL_GEMM_NR - 1) / TL_GEMM_NR;
    /* tile: BWD_KC dequantized rows x nc; panels: the same in np panels of TL_GEMM_NR columns */
    float *tile = NULL, *panels = NULL;
    const float *cached = j->dq ? j->dq->bwd : NULL;
    long np_all = (N + TL_GEMM_NR - 1) / TL_GEMM_NR;
    if (w->type != GGML_TYPE_F32 && !cached) {
        tile = malloc(sizeof(float) * (size_t)(BWD_KC * nc));
        panels = malloc(sizeof(float) * (size_t)(BWD_KC * np * TL_GEMM_NR));
        if (!tile || !panels) {
            j->failed = 1;
            free(tile), free(panels);
            return;
        }
    }
    long ap_ld = (long)O * TL_GEMM_MR;
    for (long o0 = 0; o0 < O; o0 += BWD_KC) {
        int R = O - o0 < BWD_KC ? (int)(O - o0) : BWD_KC;
        if (tile)
            for (int r = 0; r < R; r++) {
                const char *src = (const char *)w->data + (size_t)(o0 + r) * w->row_bytes + (size_t)b0 * j->blk_bytes;
                if (dequantize_row(w->type, src, tile + r * nc, nc, NULL)) {
                    j->failed = 1;
                    free(tile), free(panels);
                    return;
                }
                for (long p = 0; p < np; p++) {
                    long n = nc - p * TL_GEMM_NR < TL_GEMM_NR ? nc - p * TL_GEMM_NR : TL_GEMM_NR;
                    memcpy(panels + (p * R + r) * TL_GEMM_NR, tile + r * nc + p * TL_GEMM_NR, sizeof(float) * (size_t)n);
                }
            }
        int acc = j->accumulate || o0 > 0;
        for (long p = 0; p < np; p++) {
            int nr = nc - p * TL_GEMM_NR < TL_GEMM_NR ? (int)(nc - p * TL_GEMM_NR) : TL_GEMM_NR;
            const float *B = cached ? cached + o0 * np_all * TL_GEMM_NR + (c0 / TL_GEMM_NR + p) * R * TL_GEMM_NR
                             : tile ? panels + p * R * TL_GEMM_NR
                                    : (const float *)w->data + o0 * N + c0 + p * TL_GEMM_NR;
            long ldb = cached || tile ? TL_GEMM_NR : N;
            tl_gemm_panel(j->n_tokens, R, j->dyp + o0 * TL_GEMM_MR, ap_ld, B, ldb, nr, j->dx + c0 + p * TL_GEMM_NR, N,
                          acc, j->level);
        }
    }
    free(tile), free(panels);
}

int matmul_backward_input(float *dx, const float *dy, const mm_weight_t *w, int n_tokens, const mm_env_t *env,
                          int accumulate, tl_err_t *err) {
    return matmul_backward_input_dq(dx, dy, w, NULL, n_tokens, env, accumulate, err);
}

int matmul_backward_input_dq(float *dx, const float *dy, const mm_weight_t *w, const mm_dq_t *dq, int n_tokens,
                             const mm_env_t *env, int accumulate, tl_err_t *err) {
    if (w->type != GGML_TYPE_F32 && !ggml_type_can_dequantize(w->type))
        return tl_fail(err, "matmul backward: unsupported weight type %u", w->type);
    bwd_job_t j = {.dx = dx, .w = w, .dq = dq && dq->bwd ? dq : NULL, .n_tokens = n_tokens, .accumulate = accumulate,
                   .level = env->level};
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
    float *owned;
    if (!(j.dyp = pack_a(dy, n_tokens, (int)w->n_out, env, &owned)))
        return tl_fail(err, "matmul backward: out of memory");
    if (env->pool) threadpool_run(env->pool, bwd_cols, &j);
    else bwd_cols(&j, 0, 1);
    free(owned);
    if (j.failed) return tl_fail(err, "matmul backward: out of memory or bad block data");
    return 0;
}

/* ---- forward: y = x . W^T, panels of TL_GEMM_NR output rows split over the threads ---- */

enum { FWD_KC = 256 }; /* summed columns per pass over the token blocks (a 32 KiB panel block) */

typedef struct {
    float *y;
    const float *xp; /* x packed (tl_gemm_pack_a), K = n_in */
    const mm_weight_t *w;
    const mm_dq_t *dq; /* the weight's panels built once, or NULL */
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
    const float *cached = j->dq ? j->dq->fwd : NULL;
    /* rows: dequantized rows of the panel; packed: the panel transposed, N x TL_GEMM_NR */
    float *rows = w->type == GGML_TYPE_F32 || cached ? NULL : malloc(sizeof(float) * (size_t)(TL_GEMM_NR * N));
    float *packed = cached ? NULL : malloc(sizeof(float) * (size_t)(TL_GEMM_NR * N));
    if (!cached && ((w->type != GGML_TYPE_F32 && !rows) || !packed)) {
        j->failed = 1;
        free(rows), free(packed);
        return;
    }
    for (long b = b0; b < b1; b++) {
        long o0 = b * TL_GEMM_NR;
        int R = O - o0 < TL_GEMM_NR ? (int)(O - o0) : TL_GEMM_NR;
        if (cached) {
            const float *pb = cached + b * N * TL_GEMM_NR;
            for (long k0 = 0; k0 < N; k0 += FWD_KC) {
                int kc = N - k0 < FWD_KC ? (int)(N - k0) : FWD_KC;
                tl_gemm_panel(j->n_tokens, kc, j->xp + k0 * TL_GEMM_MR, N * TL_GEMM_MR, pb + k0 * TL_GEMM_NR,
                              TL_GEMM_NR, R, j->y + o0, O, k0 > 0, j->level);
            }
            continue;
        }
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
            tl_gemm_panel(j->n_tokens, kc, j->xp + k0 * TL_GEMM_MR, N * TL_GEMM_MR, packed + k0 * TL_GEMM_NR,
                          TL_GEMM_NR, R, j->y + o0, O, k0 > 0, j->level);
        }
    }
    free(rows), free(packed);
}

int matmul_forward_dequant(float *y, const float *x, const mm_weight_t *w, int n_tokens, const mm_env_t *env,
                           tl_err_t *err) {
    return matmul_forward_dequant_dq(y, x, w, NULL, n_tokens, env, err);
}

int matmul_forward_dequant_dq(float *y, const float *x, const mm_weight_t *w, const mm_dq_t *dq, int n_tokens,
                              const mm_env_t *env, tl_err_t *err) {
    if (w->type != GGML_TYPE_F32 && !ggml_type_can_dequantize(w->type))
        return tl_fail(err, "matmul: unsupported weight type %u", w->type);
    if (n_tokens <= 0) return 0;
    fwd_job_t j = {.y = y, .w = w, .dq = dq && dq->fwd ? dq : NULL, .n_tokens = n_tokens, .level = env->level};
    float *owned;
    if (!(j.xp = pack_a(x, n_tokens, (int)w->n_in, env, &owned))) return tl_fail(err, "matmul: out of memory");
    if (env->pool) threadpool_run(env->pool, fwd_rows, &j);
    else fwd_rows(&j, 0, 1);
    free(owned);
    if (j.failed) return tl_fail(err, "matmul: out of memory or bad block data");
    return 0;
}

/* ---- dequantized panels built once ---- */

typedef struct {
    const mm_weight_t *w;
    mm_dq_t *d;
    int failed;
} dq_job_t;

/* Row blocks [b0, b1) of BWD_KC rows: dequantize, then write both layouts. */
static void dq_range(void *ctx, int ith, long b0, long b1) {
    dq_job_t *j = ctx;
    const mm_weight_t *w = j->w;
    long N = w->n_in, O = w->n_out, np_all = (N + TL_GEMM_NR - 1) / TL_GEMM_NR;
    float *row = malloc(sizeof(float) * (size_t)N);
    if (!row) {
        j->failed = 1;
        return;
    }
    for (long ob = b0; ob < b1; ob++) {
        long o0 = ob * BWD_KC;
        long R = O - o0 < BWD_KC ? O - o0 : BWD_KC;
        for (long r = 0; r < R; r++) {
            long o = o0 + r;
            if (dequantize_row(w->type, (const char *)w->data + (size_t)o * w->row_bytes, row, N, NULL)) {
                j->failed = 1;
                free(row);
                return;
            }
            /* forward: panel o / NR, element (i, o % NR) */
            float *fp = j->d->fwd + (o / TL_GEMM_NR) * N * TL_GEMM_NR + o % TL_GEMM_NR;
            for (long i = 0; i < N; i++) fp[i * TL_GEMM_NR] = row[i];
            /* backward: row block o0 (R rows), panel p, row r */
            float *bp = j->d->bwd + o0 * np_all * TL_GEMM_NR + r * TL_GEMM_NR;
            for (long p = 0; p < np_all; p++) {
                long n = N - p * TL_GEMM_NR < TL_GEMM_NR ? N - p * TL_GEMM_NR : TL_GEMM_NR;
                memcpy(bp + p * R * TL_GEMM_NR, row + p * TL_GEMM_NR, sizeof(float) * (size_t)n);
            }
        }
    }
    free(row);
}

bool mm_dq_wanted(const mm_weight_t *w) {
    if (w->type == GGML_TYPE_F32 || !ggml_type_can_dequantize(w->type)) return false;
    int64_t blk = ggml_type_block_size(w->type);
    return blk > 0 && blk % TL_GEMM_NR == 0 && w->n_in % blk == 0;
}

int mm_dq_build(mm_dq_t *d, const mm_weight_t *w, threadpool_t *pool, tl_err_t *err) {
    d->fwd = d->bwd = NULL;
    if (!mm_dq_wanted(w)) return 0;
    long N = w->n_in, O = w->n_out, np_all = (N + TL_GEMM_NR - 1) / TL_GEMM_NR;
    size_t nf = (size_t)((O + TL_GEMM_NR - 1) / TL_GEMM_NR) * (size_t)N * TL_GEMM_NR;
    size_t nbw = (size_t)O * (size_t)np_all * TL_GEMM_NR;
    d->fwd = calloc(nf, sizeof(float));
    d->bwd = calloc(nbw, sizeof(float));
    if (!d->fwd || !d->bwd) {
        mm_dq_free(d);
        return tl_fail(err, "training: out of memory for the dequantized weights (%zu MiB)",
                       (nf + nbw) * sizeof(float) >> 20);
    }
    dq_job_t j = {.w = w, .d = d};
    threadpool_for(pool, (O + BWD_KC - 1) / BWD_KC, 1, dq_range, &j);
    if (j.failed) {
        mm_dq_free(d);
        return tl_fail(err, "training: cannot dequantize a %lld x %lld weight", (long long)O, (long long)N);
    }
    return 0;
}

void mm_dq_free(mm_dq_t *d) {
    free(d->fwd);
    free(d->bwd);
    d->fwd = d->bwd = NULL;
}
