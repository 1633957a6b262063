/* FFN-channel pruning of a GGUF file: every block keeps the same n_keep of
 * its n_ff feed-forward channels (so <arch>.feed_forward_length stays one
 * number and llama.cpp loads the file), optionally with whole blocks removed
 * as well (renumbered as in io/gguf_prune.h). Every other key and tensor is
 * copied unchanged.
 *
 *  - ffn_gate, ffn_up ([n_embd, n_ff]: one row per channel): the kept rows are
 *    copied byte for byte, quantized or not (no re-quantization).
 *  - ffn_down ([n_ff, n_embd]: its rows run along n_ff, so a quantized block
 *    mixes 32 or 256 channels): F32/F16/BF16 columns are sliced exactly; a
 *    quantized ffn_down is dequantized, its kept columns gathered and the rows
 *    re-quantized to the tensor's own type (weighted by the mean squared
 *    activation of each kept channel for the search-based types), or to
 *    down_type when one is given (e.g. q8_0 over a 4-bit model, where a
 *    second 4-bit rounding costs accuracy). When every channel is kept and no
 *    other type is asked for, its bytes are copied unchanged.
 * n_keep must be a multiple of the block size of every quantized ffn_down
 * type written (32 for Q8_0/Q4_x/Q5_x/IQ4_NL, 256 for K-quants). Atomic write. */
#define FFN_SLICE_SAME_TYPE (-1)
#ifndef TL_QUANT_FFN_SLICE_H
#define TL_QUANT_FFN_SLICE_H

#include <stdbool.h>

#include "io/gguf.h"

/* Can this file keep n_keep channels per block? 0 if so; -2 when n_keep is
 * out of (0, n_ff] or not a multiple of an ffn_down block size (bad request);
 * -1 when the file cannot be pruned (missing or misshapen FFN tensors, an
 * ffn_down type that cannot be re-encoded, other per-channel FFN tensors). */
int ffn_slice_check(const gguf_file_t *f, long n_keep, int down_type, tl_err_t *err);

/* keep_block: n_layer flags or NULL (keep all). kept: n_layer * n_keep source
 * channel indices, ascending within each block (row l for source block l).
 * act_sq: n_layer * n_ff mean squared ffn_down input per channel, or NULL.
 * down_type: a ggml type id for the cut ffn_down, or FFN_SLICE_SAME_TYPE. */
int ffn_slice_write(const gguf_file_t *src, const bool *keep_block, const int *kept, int n_keep, const float *act_sq,
                    int down_type, const char *out_path, tl_err_t *err);

#endif
