/* Q8_0 matrix products on the AMX-INT8 tiles, for the serving pass.
 *
 * Numerics: those of the default Q8_0 kernels (matmul_pack.h; mm_pack_dot_ref
 * is the plain-C definition): each 32-element block's products are summed
 * exactly in int32 and scaled once, for each (row, token), in block order,
 *     acc = fmaf(d_w * d_a, (float)isum_block, acc)
 * with acc starting at 0. So a token's result is the same bits with or without
 * the tiles (tests/unit/test_gemm.c checks it on CPUs that have AMX).
 *
 * A weight is used this way only if it is Q8_0 with n_in a multiple of 64
 * and n_out a multiple of 16, and only where the caller asks for it
 * (mm_env_t.amx): the same weights then always take this path, whatever the
 * token count. Activations are quantized to Q8_0 as usual, then packed in
 * groups of 16 tokens: per block, the 8 x 64-byte tile of int8 values in the
 * tiles' 4-byte interleave and the 16 tokens' scales. */
#ifndef TL_QUANT_MATMUL_AMX_H
#define TL_QUANT_MATMUL_AMX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quant/matmul.h"

#define MM_AMX_TOKENS 16 /* tokens per packed group */
#define MM_AMX_ROWS 16   /* weight rows per tile */

/* True if this CPU has AMX-INT8 and the kernel lets the process use the
 * tile registers (asked for once; thread-safe). */
bool mm_amx_available(void);
/* True if w takes the AMX path (type, shape; and mm_amx_available()). */
bool mm_amx_supports(const mm_weight_t *w);
/* Bytes of the packed activations of n_tokens rows of n_in elements. */
size_t mm_amx_panel_bytes(int64_t n_in, int n_tokens);
/* Packs token groups [g0, g1) of the Q8_0 activation rows act (act_row bytes
 * apart); slots past n_tokens are zero. */
void mm_amx_pack(int64_t n_in, const void *act, size_t act_row, int n_tokens, long g0, long g1, void *panel);
/* out[t * n_out + r] for rows [r0, r1) (multiples of MM_AMX_ROWS) and every token. */
void mm_amx_rows(const mm_weight_t *w, const void *panel, int n_tokens, long r0, long r1, float *out);

#endif
