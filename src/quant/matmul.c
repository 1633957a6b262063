/* Matmul dispatch, activation quantizers and the scalar reference kernels. */
#include "quant/matmul.h"

#include <math.h>
#include <stdlib.h>

#include "quant/matmul_ext.h"
#include "quant/matmul_amx.h"
#include "quant/matmul_k.h"
#include "quant/matmul_pack.h"
#include "quant/matmul_kernels.h"
#include "quant/types.h"

bool matmul_supports_type(uint32_t type) {
    return type == GGML_TYPE_F32 || type == GGML_TYPE_Q4_1 || type == GGML_TYPE_Q8_0 || mm_ext_supports(type) ||
           mm_k_supports(type);
}

static size_t row_bytes_of(uint32_t type, int64_t n_in) {
    switch (type) {
    case GGML_TYPE_F32: return (size_t)n_in * sizeof(float);
    case GGML_TYPE_Q4_1: return (size_t)(n_in / MM_QK) * sizeof(mm_block_q4_1_t);
    case GGML_TYPE_Q8_0: return (size_t)(n_in / MM_QK) * sizeof(mm_block_q8_0_t);
    default: return mm_k_supports(type) ? mm_k_row_bytes(type, n_in) : mm_ext_row_bytes(type, n_in);
    }
}

int matmul_weight_init(mm_weight_t *w, const char *name, uint32_t type, int64_t n_in, int64_t n_out,
                       const void *data, tl_err_t *err) {
    if (!matmul_supports_type(type))
        return tl_fail(err, "tensor %s: matmul does not support type id %u", name, type);
    if (n_in <= 0 || n_out <= 0 || (type != GGML_TYPE_F32 && n_in % (mm_k_supports(type) ? MM_QK_K : MM_QK) != 0))
        return tl_fail(err, "tensor %s: bad shape %lld x %lld for its type", name, (long long)n_out, (long long)n_in);
    w->type = type;
    w->n_in = n_in;
    w->n_out = n_out;
    w->data = data;
    w->row_bytes = row_bytes_of(type, n_in);
    w->pack = NULL;
    return 0;
}

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t matmul_scratch_bytes(int64_t n_in, int n_tokens) {
    /* the larger of the two activation encodings, rounded up to whole blocks,
     * then the packed kernels' side rows or the AMX panel */
    int64_t nb = (n_in + MM_QK - 1) / MM_QK, nbk = (n_in + MM_QK_K - 1) / MM_QK_K;
    size_t row = (size_t)nb * sizeof(mm_block_q8_1_t), row_k = (size_t)nbk * sizeof(mm_block_q8_k_t);
    int n = n_tokens > 0 ? n_tokens : 1;
    size_t panel = mm_amx_panel_bytes(n_in, n), side = (size_t)nb * sizeof(mm_pack_side_t) * (size_t)n;
    if (side > panel) panel = side;
    return round64((row > row_k ? row : row_k) * (size_t)n) + panel + 64;
}

/* ---- quantizers ---- */

static float block_amax(const float *x) {
    float amax = 0.0f;
    for (int j = 0; j < MM_QK; j++) {
        float v = fabsf(x[j]);
        if (v > amax) amax = v;
    }
    return amax;
}

void matmul_quantize_q8_0(const float *x, mm_block_q8_0_t *y, int64_t n) {
    for (int64_t b = 0; b < n / MM_QK; b++, x += MM_QK) {
        float amax = block_amax(x);
        float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[b].d = mm_fp32_to_fp16(d);
        for (int j = 0; j < MM_QK; j++) y[b].qs[j] = (int8_t)nearbyintf(x[j] * id);
    }
}

void matmul_quantize_q8_1(const float *x, mm_block_q8_1_t *y, int64_t n) {
    for (int64_t b = 0; b < n / MM_QK; b++, x += MM_QK) {
        float amax = block_amax(x);
        float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < MM_QK; j++) {
            int q = (int)nearbyintf(x[j] * id);
            y[b].qs[j] = (int8_t)q;
            sum += q;
        }
        y[b].d = mm_fp32_to_fp16(d);
        y[b].s = mm_fp32_to_fp16(d * (float)sum);
    }
}

void matmul_quantize_q8_0_at(const float *x, mm_block_q8_0_t *y, int64_t n, cpu_level_t level) {
    if (level == CPU_LEVEL_AVX512) mm_quantize_q8_0_avx512(x, y, n);
    else if (level == CPU_LEVEL_AVX2) mm_quantize_q8_0_avx2(x, y, n);
    else matmul_quantize_q8_0(x, y, n);
}

void matmul_quantize_q8_1_at(const float *x, mm_block_q8_1_t *y, int64_t n, cpu_level_t level) {
    if (level == CPU_LEVEL_AVX512) mm_quantize_q8_1_avx512(x, y, n);
    else if (level == CPU_LEVEL_AVX2) mm_quantize_q8_1_avx2(x, y, n);
    else matmul_quantize_q8_1(x, y, n);
}

/* ---- scalar reference kernels ---- */

/* Q4_1: the numerics of matmul_pack.h, per block the exact nibble sum
 * scaled by one fused multiply-add, then the min term by another. */
static float dot_q4_1_q8_1_ref(int64_t n, const mm_block_q4_1_t *w, const mm_block_q8_1_t *a) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n / MM_QK; b++) {
        int sumi = 0;
        for (int j = 0; j < MM_QK / 2; j++) {
            sumi += (w[b].qs[j] & 0x0f) * a[b].qs[j];
            sumi += (w[b].qs[j] >> 4) * a[b].qs[j + MM_QK / 2];
        }
        acc = fmaf(mm_fp16_to_fp32(w[b].d) * mm_fp16_to_fp32(a[b].d), (float)sumi, acc);
        acc = fmaf(mm_fp16_to_fp32(w[b].m), mm_fp16_to_fp32(a[b].s), acc);
    }
    return acc;
}

static float dot_f32_ref(int64_t n, const float *w, const float *a) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += w[i] * a[i];
    return s;
}

float matmul_dot_q4_1_q8_1(int64_t n, const mm_block_q4_1_t *w, const mm_block_q8_1_t *a, cpu_level_t level) {
    switch (level) {
    case CPU_LEVEL_AVX512: return mm_dot_q4_1_q8_1_avx512(n, w, a);
    case CPU_LEVEL_AVX2: return mm_dot_q4_1_q8_1_avx2(n, w, a);
    default: return dot_q4_1_q8_1_ref(n, w, a);
    }
}

float matmul_dot_q8_0_q8_0(int64_t n, const mm_block_q8_0_t *w, const mm_block_q8_0_t *a, cpu_level_t level) {
    switch (level) {
    case CPU_LEVEL_AVX512: return mm_dot_q8_0_q8_0_avx512(n, w, a);
    case CPU_LEVEL_AVX2: return mm_dot_q8_0_q8_0_avx2(n, w, a);
    default: return mm_pack_dot_ref(n, w, a);
    }
}

float matmul_dot_f32(int64_t n, const float *w, const float *a, cpu_level_t level) {
    switch (level) {
    case CPU_LEVEL_AVX512: return mm_dot_f32_avx512(n, w, a);
    case CPU_LEVEL_AVX2: return mm_dot_f32_avx2(n, w, a);
    default: return dot_f32_ref(n, w, a);
    }
}

/* ---- the matmul ---- */

/* One call over up to MM_MAX_MULTI weights that share the input (same type and
 * n_in): the activations are quantized once, and the weights' rows form one
 * item space that the threads take chunks of (items of `unit` rows; a
 * weight's last item may be short). */
typedef struct {
    const float *x;
    const mm_weight_t *w; /* the first weight: type and n_in of all */
    int n_tokens;
    void *act;        /* quantized activations, or NULL for F32 weights */
    size_t act_row;   /* bytes per quantized activation row */
    void *panel;      /* packed activations for the AMX tiles, or NULL */
    mm_pack_side_t *side; /* Q8_0 packed weights: per token and block, the scale and correction */
    cpu_level_t level;
    int nw, unit;
    const mm_weight_t *ws[MM_MAX_MULTI];
    float *outs[MM_MAX_MULTI];
    long start[MM_MAX_MULTI + 1]; /* first item of each weight */
} mm_job_t;

static void quantize_rows(const mm_job_t *j, long t0, long t1) {
    for (long t = t0; t < t1; t++) {
        const float *x = j->x + t * j->w->n_in;
        void *y = (char *)j->act + t * j->act_row;
        if (j->w->type == GGML_TYPE_Q4_1) matmul_quantize_q8_1_at(x, y, j->w->n_in, j->level);
        else if (mm_k_supports(j->w->type)) matmul_quantize_q8_k(x, y, j->w->n_in);
        else matmul_quantize_q8_0_at(x, y, j->w->n_in, j->level);
    }
}

static void quantize_range(void *ctx, int ith, long t0, long t1) { quantize_rows(ctx, t0, t1); }

/* Rows [r0, r1) of w for every token, one row at a time (n_tokens == 1 and the types without tiles). */
static void rows_plain(const mm_job_t *j, const mm_weight_t *w, float *out, long r0, long r1) {
    for (long r = r0; r < r1; r++) {
        const void *row = (const char *)w->data + (size_t)r * w->row_bytes;
        int t = 0;
        for (; t < j->n_tokens; t++) {
            float v;
            if (w->type == GGML_TYPE_Q4_1)
                v = matmul_dot_q4_1_q8_1(w->n_in, row, (const mm_block_q8_1_t *)((const char *)j->act + t * j->act_row), j->level);
            else if (w->type == GGML_TYPE_Q8_0)
                v = matmul_dot_q8_0_q8_0(w->n_in, row, (const mm_block_q8_0_t *)((const char *)j->act + t * j->act_row), j->level);
            else if (mm_k_supports(w->type))
                v = mm_k_dot(w->type, w->n_in, row, (const mm_block_q8_k_t *)((const char *)j->act + t * j->act_row), j->level);
            else if (w->type != GGML_TYPE_F32)
                v = mm_ext_dot(w->type, w->n_in, row, (const mm_block_q8_0_t *)((const char *)j->act + t * j->act_row), j->level);
            else
                v = matmul_dot_f32(w->n_in, row, j->x + (size_t)t * w->n_in, j->level);
            out[(size_t)t * w->n_out + r] = v;
        }
    }
}

/* AMX: quantize and pack whole groups of 16 tokens. */
static void quantize_pack_amx_range(void *ctx, int ith, long g0, long g1) {
    mm_job_t *j = ctx;
    long t1 = g1 * MM_AMX_TOKENS < j->n_tokens ? g1 * MM_AMX_TOKENS : j->n_tokens;
    quantize_rows(j, g0 * MM_AMX_TOKENS, t1);
    mm_amx_pack(j->w->n_in, j->act, j->act_row, j->n_tokens, g0, g1, j->panel);
}

/* Packed weights: quantize tokens [t0, t1) and their side rows. */
static void quantize_side_range(void *ctx, int ith, long t0, long t1) {
    mm_job_t *j = ctx;
    int64_t nb = j->w->n_in / MM_QK;
    if (j->w->type != GGML_TYPE_Q4_1 && (j->level == CPU_LEVEL_AVX512 || j->level == CPU_LEVEL_AVX2)) {
        int32_t off = mm_pack_offset(j->w->type);
        for (long t = t0; t < t1; t++) {
            const float *x = j->x + t * j->w->n_in;
            mm_block_q8_0_t *y = (mm_block_q8_0_t *)((char *)j->act + t * j->act_row);
            if (j->level == CPU_LEVEL_AVX512) mm_quantize_q8_0_side_avx512(x, y, j->w->n_in, off, j->side + t * nb);
            else mm_quantize_q8_0_side_avx2(x, y, j->w->n_in, off, j->side + t * nb);
        }
        return;
    }
    quantize_rows(j, t0, t1);
    for (long t = t0; t < t1; t++) {
        const void *a = (const char *)j->act + t * j->act_row;
        if (j->w->type == GGML_TYPE_Q4_1) mm_pack_side_q8_1(a, nb, j->side + t * nb);
        else mm_pack_side(a, nb, mm_pack_offset(j->w->type), j->side + t * nb);
    }
}

enum { KIND_PLAIN, KIND_K_GEMM, KIND_AMX, KIND_PACK };

/* Items [i0, i1) of the combined row space through one kind of kernel. */
static void rows_range(const mm_job_t *j, int kind, long i0, long i1) {
    for (int k = 0; k < j->nw; k++) {
        long a = i0 > j->start[k] ? i0 : j->start[k], b = i1 < j->start[k + 1] ? i1 : j->start[k + 1];
        if (a >= b) continue;
        const mm_weight_t *w = j->ws[k];
        long r0 = (a - j->start[k]) * j->unit, r1 = (b - j->start[k]) * j->unit;
        if (r1 > w->n_out) r1 = w->n_out;
        if (kind == KIND_PACK) {
            mm_pack_rows(w, j->act, j->act_row, j->side, j->n_tokens, a - j->start[k], b - j->start[k], j->outs[k],
                         j->level);
            continue;
        }
        if (kind == KIND_AMX) mm_amx_rows(w, j->panel, j->n_tokens, r0, r1, j->outs[k]);
        else if (kind == KIND_K_GEMM) mm_k_gemm_rows(w, j->act, j->act_row, j->n_tokens, r0, r1, j->outs[k]);
        else rows_plain(j, w, j->outs[k], r0, r1);
    }
}

static void k_gemm_range(void *ctx, int ith, long i0, long i1) { rows_range(ctx, KIND_K_GEMM, i0, i1); }
static void plain_range(void *ctx, int ith, long i0, long i1) { rows_range(ctx, KIND_PLAIN, i0, i1); }
static void amx_range(void *ctx, int ith, long i0, long i1) { rows_range(ctx, KIND_AMX, i0, i1); }
static void pack_range(void *ctx, int ith, long i0, long i1) { rows_range(ctx, KIND_PACK, i0, i1); }

/* Chunks of about an eighth of a thread's share: small enough that a thread
 * the OS has descheduled leaves little to wait for, large enough that the
 * shared counter costs nothing. */
static long grain_of(long n_items, const mm_env_t *env) {
    long g = n_items / (8L * threadpool_n_threads(env->pool));
    return g < 1 ? 1 : g;
}

static void run_rows(mm_job_t *j, int kind, const mm_env_t *env) {
    long n = j->start[j->nw];
    threadpool_range_fn fn = kind == KIND_PACK   ? pack_range
                             : kind == KIND_AMX  ? amx_range
                             : kind == KIND_K_GEMM ? k_gemm_range
                                                   : plain_range;
    threadpool_for(env->pool, n, grain_of(n, env), fn, j);
}

/* All weights (of one type) with a packed copy, at a level with packed
 * kernels (the plain rows give the same bits, only slower). */
static bool packed_all(const mm_weight_t *const *ws, int nw, cpu_level_t level) {
    if (level == CPU_LEVEL_SCALAR) return false;
    for (int k = 0; k < nw; k++)
        if (!ws[k]->pack) return false;
    return true;
}

int matmul_forward_n(float *const *outs, const float *x, const mm_weight_t *const *ws, int nw, int n_tokens,
                     const mm_env_t *env, tl_err_t *err) {
    if (nw < 1 || nw > MM_MAX_MULTI) return tl_fail(err, "matmul: %d weights in one call (1 to %d)", nw, MM_MAX_MULTI);
    const mm_weight_t *w = ws[0];
    for (int k = 1; k < nw; k++)
        if (ws[k]->type != w->type || ws[k]->n_in != w->n_in) {
            for (int i = 0; i < nw; i++)
                if (matmul_forward_n(&outs[i], x, &ws[i], 1, n_tokens, env, err)) return -1;
            return 0;
        }
    mm_job_t j = {.x = x, .w = w, .n_tokens = n_tokens, .act = NULL, .act_row = 0, .panel = NULL, .side = NULL,
                  .level = env->level, .nw = nw, .unit = 1};
    for (int k = 0; k < nw; k++) {
        j.ws[k] = ws[k];
        j.outs[k] = outs[k];
    }
    if (n_tokens <= 0) return 0;
    int kind = KIND_PLAIN;
    bool amx = env->amx;
    for (int k = 0; k < nw && amx; k++) amx = mm_amx_supports(ws[k]);
    if (amx) {
        j.act_row = (size_t)(w->n_in / MM_QK) * sizeof(mm_block_q8_0_t);
        size_t act_bytes = round64(j.act_row * (size_t)n_tokens);
        if (act_bytes + mm_amx_panel_bytes(w->n_in, n_tokens) > env->scratch_bytes)
            return tl_fail(err, "matmul: scratch of %zu bytes is too small for %d tokens of %lld", env->scratch_bytes,
                           n_tokens, (long long)w->n_in);
        j.act = env->scratch;
        j.panel = (char *)env->scratch + act_bytes;
        threadpool_for(env->pool, (n_tokens + MM_AMX_TOKENS - 1) / MM_AMX_TOKENS, 1, quantize_pack_amx_range, &j);
        kind = KIND_AMX;
        j.unit = MM_AMX_ROWS;
    } else if (packed_all(ws, nw, env->level)) {
        int64_t nb = w->n_in / MM_QK;
        j.act_row = (size_t)nb * (w->type == GGML_TYPE_Q4_1 ? sizeof(mm_block_q8_1_t) : sizeof(mm_block_q8_0_t));
        size_t act_bytes = round64(j.act_row * (size_t)n_tokens);
        if (act_bytes + (size_t)nb * sizeof(mm_pack_side_t) * (size_t)n_tokens > env->scratch_bytes)
            return tl_fail(err, "matmul: scratch of %zu bytes is too small for %d tokens of %lld", env->scratch_bytes,
                           n_tokens, (long long)w->n_in);
        j.act = env->scratch;
        j.side = (mm_pack_side_t *)((char *)env->scratch + act_bytes);
        if (n_tokens == 1) quantize_side_range(&j, 0, 0, 1);
        else threadpool_for(env->pool, n_tokens, 4, quantize_side_range, &j);
        kind = KIND_PACK;
        j.unit = MM_PACK_ROWS;
    } else if (w->type != GGML_TYPE_F32) {
        j.act_row = w->type == GGML_TYPE_Q4_1  ? (size_t)(w->n_in / MM_QK) * sizeof(mm_block_q8_1_t)
                    : mm_k_supports(w->type) ? (size_t)(w->n_in / MM_QK_K) * sizeof(mm_block_q8_k_t)
                                             : (size_t)(w->n_in / MM_QK) * sizeof(mm_block_q8_0_t);
        if (j.act_row * (size_t)n_tokens > env->scratch_bytes)
            return tl_fail(err, "matmul: scratch of %zu bytes is too small for %d tokens of %lld", env->scratch_bytes,
                           n_tokens, (long long)w->n_in);
        j.act = env->scratch;
        if (n_tokens == 1) quantize_rows(&j, 0, 1);
        else threadpool_for(env->pool, n_tokens, 4, quantize_range, &j);
        if (mm_k_gemm_supports(w->type, n_tokens, env->level)) {
            kind = KIND_K_GEMM;
        }
    }
    j.start[0] = 0;
    for (int k = 0; k < nw; k++) j.start[k + 1] = j.start[k] + (ws[k]->n_out + j.unit - 1) / j.unit;
    run_rows(&j, kind, env);
    return 0;
}

int matmul_forward(float *out, const float *x, const mm_weight_t *w, int n_tokens, const mm_env_t *env,
                   tl_err_t *err) {
    return matmul_forward_n(&out, x, &w, 1, n_tokens, env, err);
}
