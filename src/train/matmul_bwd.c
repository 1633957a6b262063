/* dx = dy . W over frozen, possibly quantized weights (see matmul_bwd.h). */
#include "train/matmul_bwd.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "quant/types.h"

enum { BWD_ROWS = 16 };

static void tile_scalar(float *dx, const float *dy, const float *tile, long ld, int R, int n) {
    for (int r = 0; r < R; r++) {
        float a = dy[r];
        const float *w = tile + r * ld;
        for (int c = 0; c < n; c++) dx[c] += a * w[c];
    }
}

__attribute__((target("avx2,fma"))) static void tile_avx2(float *dx, const float *dy, const float *tile, long ld,
                                                           int R, int n) {
    int c = 0;
    for (; c + 32 <= n; c += 32) {
        __m256 a0 = _mm256_loadu_ps(dx + c), a1 = _mm256_loadu_ps(dx + c + 8);
        __m256 a2 = _mm256_loadu_ps(dx + c + 16), a3 = _mm256_loadu_ps(dx + c + 24);
        for (int r = 0; r < R; r++) {
            __m256 s = _mm256_set1_ps(dy[r]);
            const float *w = tile + r * ld + c;
            a0 = _mm256_fmadd_ps(s, _mm256_loadu_ps(w), a0);
            a1 = _mm256_fmadd_ps(s, _mm256_loadu_ps(w + 8), a1);
            a2 = _mm256_fmadd_ps(s, _mm256_loadu_ps(w + 16), a2);
            a3 = _mm256_fmadd_ps(s, _mm256_loadu_ps(w + 24), a3);
        }
        _mm256_storeu_ps(dx + c, a0);
        _mm256_storeu_ps(dx + c + 8, a1);
        _mm256_storeu_ps(dx + c + 16, a2);
        _mm256_storeu_ps(dx + c + 24, a3);
    }
    for (; c < n; c++) {
        float s = dx[c];
        for (int r = 0; r < R; r++) s = __builtin_fmaf(dy[r], tile[r * ld + c], s);
        dx[c] = s;
    }
}

__attribute__((target("avx512f"))) static void tile_avx512(float *dx, const float *dy, const float *tile, long ld,
                                                            int R, int n) {
    int c = 0;
    for (; c + 64 <= n; c += 64) {
        __m512 a0 = _mm512_loadu_ps(dx + c), a1 = _mm512_loadu_ps(dx + c + 16);
        __m512 a2 = _mm512_loadu_ps(dx + c + 32), a3 = _mm512_loadu_ps(dx + c + 48);
        for (int r = 0; r < R; r++) {
            __m512 s = _mm512_set1_ps(dy[r]);
            const float *w = tile + r * ld + c;
            a0 = _mm512_fmadd_ps(s, _mm512_loadu_ps(w), a0);
            a1 = _mm512_fmadd_ps(s, _mm512_loadu_ps(w + 16), a1);
            a2 = _mm512_fmadd_ps(s, _mm512_loadu_ps(w + 32), a2);
            a3 = _mm512_fmadd_ps(s, _mm512_loadu_ps(w + 48), a3);
        }
        _mm512_storeu_ps(dx + c, a0);
        _mm512_storeu_ps(dx + c + 16, a1);
        _mm512_storeu_ps(dx + c + 32, a2);
        _mm512_storeu_ps(dx + c + 48, a3);
    }
    for (; c < n; c += 16) {
        __mmask16 k = n - c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - c)) - 1);
        __m512 a = _mm512_maskz_loadu_ps(k, dx + c);
        for (int r = 0; r < R; r++)
            a = _mm512_fmadd_ps(_mm512_set1_ps(dy[r]), _mm512_maskz_loadu_ps(k, tile + r * ld + c), a);
        _mm512_mask_storeu_ps(dx + c, k, a);
    }
}

void matmul_bwd_tile(float *dx, const float *dy, const float *tile, long ld, int R, int n, cpu_level_t level) {
    if (level >= CPU_LEVEL_AVX512) tile_avx512(dx, dy, tile, ld, R, n);
    else if (level >= CPU_LEVEL_AVX2) tile_avx2(dx, dy, tile, ld, R, n);
    else tile_scalar(dx, dy, tile, ld, R, n);
}

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
    for (int t = 0; t < j->n_tokens; t++)
        if (!j->accumulate) memset(j->dx + t * N + c0, 0, sizeof(float) * (size_t)nc);
    float *tile = NULL;
    if (w->type != GGML_TYPE_F32) {
        tile = malloc(sizeof(float) * (size_t)(BWD_ROWS * nc));
        if (!tile) {
            j->failed = 1;
            return;
        }
    }
    for (long o0 = 0; o0 < O; o0 += BWD_ROWS) {
        int R = O - o0 < BWD_ROWS ? (int)(O - o0) : BWD_ROWS;
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
        for (int t = 0; t < j->n_tokens; t++)
            matmul_bwd_tile(j->dx + t * N + c0, j->dy + t * O + o0, tp, ld, R, (int)nc, j->level);
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
    if (env->pool) threadpool_run(env->pool, bwd_cols, &j);
    else bwd_cols(&j, 0, 1);
    if (j.failed) return tl_fail(err, "matmul backward: out of memory or bad block data");
    return 0;
}

static void fwd_tile_scalar(float *y, long ldy, const float *x, long ldx, const float *tile, long ld, int T, int R,
                            int n) {
    for (int t = 0; t < T; t++)
        for (int r = 0; r < R; r++) {
            float s = 0.0f;
            for (int i = 0; i < n; i++) s += x[t * ldx + i] * tile[r * ld + i];
            y[t * ldy + r] = s;
        }
}

/* 4 tokens x 4 rows per register block; 16-wide chunks, masked tail. */
__attribute__((target("avx512f"))) static void fwd_tile_avx512(float *y, long ldy, const float *x, long ldx,
                                                                const float *tile, long ld, int T, int R, int n) {
    int t0 = 0;
    for (; t0 < T; t0 += 4) {
        int nt = T - t0 < 4 ? T - t0 : 4;
        for (int r0 = 0; r0 < R; r0 += 4) {
            int nr = R - r0 < 4 ? R - r0 : 4;
            __m512 acc[4][4];
#pragma GCC unroll 4
            for (int a = 0; a < 4; a++)
#pragma GCC unroll 4
                for (int b = 0; b < 4; b++) acc[a][b] = _mm512_setzero_ps();
            const float *xs[4], *ws[4];
#pragma GCC unroll 4
            for (int a = 0; a < 4; a++) xs[a] = x + (t0 + (a < nt ? a : 0)) * ldx;
#pragma GCC unroll 4
            for (int b = 0; b < 4; b++) ws[b] = tile + (r0 + (b < nr ? b : 0)) * ld;
            for (int i = 0; i < n; i += 16) {
                __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
                __m512 xv[4], wv[4];
#pragma GCC unroll 4
                for (int a = 0; a < 4; a++) xv[a] = _mm512_maskz_loadu_ps(k, xs[a] + i);
#pragma GCC unroll 4
                for (int b = 0; b < 4; b++) wv[b] = _mm512_maskz_loadu_ps(k, ws[b] + i);
#pragma GCC unroll 4
                for (int a = 0; a < 4; a++)
#pragma GCC unroll 4
                    for (int b = 0; b < 4; b++) acc[a][b] = _mm512_fmadd_ps(xv[a], wv[b], acc[a][b]);
            }
            for (int a = 0; a < nt; a++)
                for (int b = 0; b < nr; b++) y[(t0 + a) * ldy + r0 + b] = _mm512_reduce_add_ps(acc[a][b]);
        }
    }
}

void matmul_fwd_tile(float *y, long ldy, const float *x, long ldx, const float *tile, long ld, int T, int R, int n,
                     cpu_level_t level) {
    if (level >= CPU_LEVEL_AVX512) fwd_tile_avx512(y, ldy, x, ldx, tile, ld, T, R, n);
    else fwd_tile_scalar(y, ldy, x, ldx, tile, ld, T, R, n);
}

typedef struct {
    float *y;
    const float *x;
    const mm_weight_t *w;
    int n_tokens;
    cpu_level_t level;
    int failed;
} fwd_job_t;

enum { FWD_ROWS = 16, FWD_TOKENS = 64 };

static void fwd_rows(void *arg, int ith, int nth) {
    fwd_job_t *j = arg;
    const mm_weight_t *w = j->w;
    long nb = (w->n_out + FWD_ROWS - 1) / FWD_ROWS, b0, b1;
    threadpool_split(nb, ith, nth, &b0, &b1);
    if (b0 >= b1) return;
    long N = w->n_in, O = w->n_out;
    float *tile = NULL;
    if (w->type != GGML_TYPE_F32 && !(tile = malloc(sizeof(float) * (size_t)(FWD_ROWS * N)))) {
        j->failed = 1;
        return;
    }
    for (long b = b0; b < b1; b++) {
        long o0 = b * FWD_ROWS;
        int R = O - o0 < FWD_ROWS ? (int)(O - o0) : FWD_ROWS;
        const float *tp = (const float *)w->data + o0 * N;
        if (tile) {
            for (int r = 0; r < R; r++)
                if (dequantize_row(w->type, (const char *)w->data + (size_t)(o0 + r) * w->row_bytes, tile + r * N, N,
                                   NULL)) {
                    j->failed = 1;
                    free(tile);
                    return;
                }
            tp = tile;
        }
        for (int t0 = 0; t0 < j->n_tokens; t0 += FWD_TOKENS) {
            int T = j->n_tokens - t0 < FWD_TOKENS ? j->n_tokens - t0 : FWD_TOKENS;
            matmul_fwd_tile(j->y + t0 * O + o0, O, j->x + t0 * N, N, tp, N, T, R, (int)N, j->level);
        }
    }
    free(tile);
}

int matmul_forward_dequant(float *y, const float *x, const mm_weight_t *w, int n_tokens, const mm_env_t *env,
                           tl_err_t *err) {
    if (w->type != GGML_TYPE_F32 && !ggml_type_can_dequantize(w->type))
        return tl_fail(err, "matmul: unsupported weight type %u", w->type);
    fwd_job_t j = {.y = y, .x = x, .w = w, .n_tokens = n_tokens, .level = env->level};
    if (env->pool) threadpool_run(env->pool, fwd_rows, &j);
    else fwd_rows(&j, 0, 1);
    if (j.failed) return tl_fail(err, "matmul: out of memory or bad block data");
    return 0;
}
