/* The one matrix-multiply interface of the forward pass.
 *
 * A weight is a row-major matrix of n_out rows by n_in columns in one of the
 * ggml block types (F32, Q4_1, Q8_0, Q4_0, Q5_0, IQ4_NL, Q4_K, Q6_K). For quantized weights the activations
 * are first quantized to 8 bits per 32-element block (Q8_1 for Q4_1 weights,
 * Q8_0 for the other 32-element types, Q8_K per 256 for Q4_K/Q6_K) and the block dot products are integer, as llama.cpp
 * computes them; F32 weights use an fp32 dot product.
 *
 * Every kernel has a scalar reference twin; the level argument selects the
 * SIMD variant (see core/cpu.h), tests compare them. The 32-element types
 * (Q8_0, Q4_0, Q5_0, IQ4_NL, Q4_1) sum each block exactly in int32 and scale it
 * with one fused multiply-add per block, the same bits at every level; weights
 * with a packed copy (w->pack, made by model_load: matmul_pack.h) go through
 * kernels that multiply 16 rows by several tokens at once. Q4_K/Q6_K have their
 * own tiled kernels (matmul_k.h). A token's result never depends on the batch
 * it is in. */
#ifndef TL_QUANT_MATMUL_H
#define TL_QUANT_MATMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cpu.h"
#include "core/err.h"
#include "core/threadpool.h"

typedef struct {
    uint32_t type;    /* ggml_type_t (matmul_supports_type) */
    int64_t n_in;     /* elements per row (ne[0]) */
    int64_t n_out;    /* rows (ne[1]) */
    const void *data; /* n_out rows of row_bytes each */
    size_t row_bytes;
    const void *pack; /* the rows repacked in groups of 16 (matmul_pack.h), or NULL */
} mm_weight_t;

typedef struct {
    threadpool_t *pool; /* NULL: run on the calling thread */
    cpu_level_t level;
    void *scratch;      /* at least matmul_scratch_bytes(...) bytes, 64-byte aligned */
    size_t scratch_bytes;
    bool amx;           /* Q8_0 weights that qualify go through matmul_amx.h (other numerics) */
} mm_env_t;

/* True if matmul_forward handles weights of this type directly. */
bool matmul_supports_type(uint32_t type);
/* Fills w for a weight of the given type and shape; fails naming `name` when the
 * type is unsupported or n_in is not a multiple of the block size. */
int matmul_weight_init(mm_weight_t *w, const char *name, uint32_t type, int64_t n_in, int64_t n_out,
                       const void *data, tl_err_t *err);
/* Scratch needed to multiply n_tokens activation rows of n_in elements. */
size_t matmul_scratch_bytes(int64_t n_in, int n_tokens);

/* out[t * n_out + r] = sum_i W[r][i] * x[t * n_in + i] for t < n_tokens.
 * Fails only if env->scratch is too small. */
int matmul_forward(float *out, const float *x, const mm_weight_t *w, int n_tokens, const mm_env_t *env,
                   tl_err_t *err);
/* outs[k] = ws[k] x for k < nw (1..MM_MAX_MULTI) in one call: weights of one
 * type and n_in share one quantization of x and one dispatch (q/k/v,
 * gate/up); every output equals matmul_forward's bit for bit. Weights of
 * mixed types or widths are multiplied one by one. */
#define MM_MAX_MULTI 4
int matmul_forward_n(float *const *outs, const float *x, const mm_weight_t *const *ws, int nw, int n_tokens,
                     const mm_env_t *env, tl_err_t *err);

/* ---- building blocks, exposed for tests ---- */
#define MM_QK 32
typedef struct { uint16_t d, m; uint8_t qs[MM_QK / 2]; } mm_block_q4_1_t;
typedef struct { uint16_t d; int8_t qs[MM_QK]; } mm_block_q8_0_t;
typedef struct { uint16_t d, s; int8_t qs[MM_QK]; } mm_block_q8_1_t;

/* Activation quantizers (n a multiple of 32): d = max|x| / 127 stored as fp16,
 * q = round-half-even(x * 127 / max|x|); Q8_1 also stores s = d * sum(q). */
void matmul_quantize_q8_0(const float *x, mm_block_q8_0_t *y, int64_t n);
void matmul_quantize_q8_1(const float *x, mm_block_q8_1_t *y, int64_t n);
/* The same at a SIMD level: identical bytes for finite inputs (max is exact,
 * x * id is the same fp32 product, the conversion rounds half to even). */
void matmul_quantize_q8_0_at(const float *x, mm_block_q8_0_t *y, int64_t n, cpu_level_t level);
void matmul_quantize_q8_1_at(const float *x, mm_block_q8_1_t *y, int64_t n, cpu_level_t level);

/* Dot products of one weight row with one quantized activation row. */
float matmul_dot_q4_1_q8_1(int64_t n, const mm_block_q4_1_t *w, const mm_block_q8_1_t *a, cpu_level_t level);
float matmul_dot_q8_0_q8_0(int64_t n, const mm_block_q8_0_t *w, const mm_block_q8_0_t *a, cpu_level_t level);
float matmul_dot_f32(int64_t n, const float *w, const float *a, cpu_level_t level);

#endif
