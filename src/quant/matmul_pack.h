/* Q8_0, Q4_0, IQ4_NL and Q4_1 weights repacked at load into groups of 16 rows, and
 * the kernels that multiply them.
 *
 * Numerics (the definition every level follows, bit for bit): for each
 * (row, token), in block order, with acc starting at 0,
 *     acc = fmaf(d_w * d_a, (float)isum_block, acc)
 * where isum_block is the exact int32 sum of the block's 32 products and d_w,
 * d_a are the weight's and the activation's fp16 block scales as fp32. This
 * is llama.cpp's scalar Q8_0 dot with the multiply-add fused, and the AMX
 * kernel's numerics (matmul_amx.h). Because the block sums are exact and the
 * fp32 steps are one chain per (row, token), the result does not depend on
 * the CPU level, the tile, the batch or the thread count: scalar, AVX2 and
 * AVX-512 give the same bits (tests/unit/test_pack.c). Q4_0 and IQ4_NL
 * follow the same definition with their integer values (nibble - 8, or the
 * IQ4_NL level of the nibble): matmul_ext.h's dot products are its scalar form.
 *
 * Layout: per group of 16 rows and per block, 16 fp32 scales (64 bytes),
 * then 8 chunks of 64 bytes; chunk k holds, for each row i of the group, the
 * block's elements 4k..4k+3 as unsigned bytes w + 128 at bytes 4i..4i+3. One
 * vpdpbusd then multiplies 4 elements of 16 rows by the same 4 activation
 * bytes (broadcast), so the 32-bit lanes are the rows and a block's sum is
 * complete after 8 of them, with no horizontal additions. The + 128 is undone
 * by starting each lane at -128 * (sum of the activation block). Rows past
 * n_out are zero (scale 0). The group holds its blocks contiguously
 * (576 bytes each, 64-byte aligned).
 *
 * 4-bit layout: 16 scales, then 4 chunks of 64 bytes; byte 4i + j of chunk kk
 * holds row i's nibbles of elements 8kk + j (low) and 8kk + 4 + j (high), so a
 * mask and a shift give the unsigned bytes of chunks 2kk and 2kk + 1 (Q4_0:
 * the nibble itself, K = 8; IQ4_NL: level + 128 by a byte shuffle, K = 128).
 *
 * Q4_1 (value d * nibble + m, Q8_1 activations): 16 scales, 16 mins, then the
 * nibble chunks; per block acc = fmaf(d_w * d_a, isum, acc) then
 * acc = fmaf(m, s_a, acc), s_a the activation block's stored d * sum(q). */
#ifndef TL_QUANT_MATMUL_PACK_H
#define TL_QUANT_MATMUL_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "core/cpu.h"
#include "quant/matmul.h"

#define MM_PACK_ROWS 16
#define MM_PACK_BLOCK_BYTES 576   /* Q8_0: 16 scales + 8 x 64 bytes */
#define MM_PACK_BLOCK_BYTES_4 320 /* Q4_0, IQ4_NL: 16 scales + 4 x 64 bytes of nibbles */

/* Per activation token and block: the scale as fp32 and -K * sum(q). */
typedef struct {
    float d;
    int32_t c;
    float s; /* Q8_1 (for Q4_1 weights): d * sum(q) as stored, else 0 */
} mm_pack_side_t;

/* True if w (Q8_0, Q4_0, IQ4_NL or Q4_1) can be packed. */
bool mm_pack_supports(const mm_weight_t *w);
/* K of the packed values w + K: 128 (Q8_0, IQ4_NL), 8 (Q4_0), 0 (Q4_1). */
int32_t mm_pack_offset(uint32_t type);
/* Bytes of w's packed copy. */
size_t mm_pack_bytes(const mm_weight_t *w);
/* Packs row groups [g0, g1) of w into dst (mm_pack_bytes, 64-byte aligned). */
void mm_pack_groups(const mm_weight_t *w, void *dst, long g0, long g1);

/* A packed copy of w (64-byte aligned, free() it), or NULL if w cannot be
 * packed or memory is short; the caller sets w->pack to it. */
void *mm_pack_alloc(const mm_weight_t *w);

/* side[b] for one Q8_0 activation row of nb blocks: the scale and -offset * sum(q). */
void mm_pack_side(const mm_block_q8_0_t *a, int64_t nb, int32_t offset, mm_pack_side_t *side);
/* The same for a Q8_1 row (Q4_1 weights: K = 0, and the stored d * sum). */
void mm_pack_side_q8_1(const mm_block_q8_1_t *a, int64_t nb, mm_pack_side_t *side);
/* matmul_quantize_q8_0 of n floats and mm_pack_side of the result in one
 * pass (the block sums come from the quantizer's registers): same bytes. */
void mm_quantize_q8_0_side_avx2(const float *x, mm_block_q8_0_t *y, int64_t n, int32_t offset, mm_pack_side_t *side);
void mm_quantize_q8_0_side_avx512(const float *x, mm_block_q8_0_t *y, int64_t n, int32_t offset, mm_pack_side_t *side);

/* out[t * w->n_out + r] for the rows of groups [g0, g1) and every token
 * t < n_tokens: act holds the Q8_0 activation rows (act_row bytes apart), side
 * their mm_pack_side rows (nb entries each). At CPU_LEVEL_SCALAR the packed
 * copy is not read (the reference over w->data). */
void mm_pack_rows(const mm_weight_t *w, const void *act, size_t act_row, const mm_pack_side_t *side, int n_tokens,
                  long g0, long g1, float *out, cpu_level_t level);

/* The definition above for one row and one activation row (plain C). */
float mm_pack_dot_ref(int64_t n_in, const mm_block_q8_0_t *w, const mm_block_q8_0_t *a);

#endif
