/* Structured pruning of a GGUF file: drop whole blocks (blk.N.*), renumber the
 * kept ones densely in order, set <arch>.block_count, keep every other key and
 * tensor; tensor bytes (quantized or not) are copied unchanged. */
#ifndef TL_IO_GGUF_PRUNE_H
#define TL_IO_GGUF_PRUNE_H

#include <stdbool.h>

#include "io/gguf.h"

/* keep: n_layer flags (n_layer = the file's <arch>.block_count). Atomic write. */
/* "blk.N.rest" -> N, and the offset of "rest" in *rest; -1 when the name is not a block tensor. */
long gguf_prune_block_of(const char *name, size_t *rest);

int gguf_prune_blocks(const gguf_file_t *src, const bool *keep, uint32_t n_layer, const char *out_path, tl_err_t *err);

#endif
