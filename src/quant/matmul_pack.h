/* Q8_0 weights repacked at load into groups of 16 rows ("x16"), and the
 * kernels that multiply them.
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
 * AVX-512 give the same bits (tests/unit/test_pack.c).
 *
 * Layout: per group of 16 rows and per block, 16 fp32 scales (64 bytes),
 * then 8 chunks of 64 bytes; chunk k holds, for each row i of the group, the
 * block's elements 4k..4k+3 as unsigned bytes w + 128 at bytes 4i..4i+3. One
 * vpdpbusd then multiplies 4 elements of 16 rows by the same 4 activation
 * bytes (broadcast), so the 32-bit lanes are the rows and a block's sum is
 * complete after 8 of them, with no horizontal additions. The + 128 is undone
 * by starting each lane at -128 * (sum of the activation block). Rows past
 * n_out are zero (scale 0). The group holds its blocks contiguously
 * (576 bytes each, 64-byte aligned). */
#ifndef TL_QUANT_MATMUL_PACK_H
#define TL_QUANT_MATMUL_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "core/cpu.h"
#include "quant/matmul.h"

#define MM_PACK_ROWS 16
#define MM_PACK_BLOCK_BYTES 576 /* 16 scales + 8 x 64 bytes */

/* Per activation token and block: the scale as fp32 and -128 * sum(q). */
typedef struct {
    float d;
    int32_t c;
} mm_pack_side_t;

/* True if w (Q8_0) can be packed. */
bool mm_pack_supports(const mm_weight_t *w);
/* Bytes of w's packed copy. */
size_t mm_pack_bytes(const mm_weight_t *w);
/* Packs row groups [g0, g1) of w into dst (mm_pack_bytes, 64-byte aligned). */
void mm_pack_groups(const mm_weight_t *w, void *dst, long g0, long g1);

/* A packed copy of w (64-byte aligned, free() it), or NULL if w cannot be
 * packed or memory is short; the caller sets w->pack to it. */
void *mm_pack_alloc(const mm_weight_t *w);

/* side[b] for one Q8_0 activation row of nb blocks. */
void mm_pack_side(const mm_block_q8_0_t *a, int64_t nb, mm_pack_side_t *side);

/* out[t * w->n_out + r] for the rows of groups [g0, g1) and every token
 * t < n_tokens: act holds the Q8_0 activation rows (act_row bytes apart), side
 * their mm_pack_side rows (nb entries each). At CPU_LEVEL_SCALAR the packed
 * copy is not read (the reference over w->data). */
void mm_pack_rows(const mm_weight_t *w, const void *act, size_t act_row, const mm_pack_side_t *side, int n_tokens,
                  long g0, long g1, float *out, cpu_level_t level);

/* The definition above for one row and one activation row (plain C). */
float mm_pack_dot_ref(int64_t n_in, const mm_block_q8_0_t *w, const mm_block_q8_0_t *a);

#endif
