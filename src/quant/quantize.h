/* Row quantizers: fp32 rows to ggml blocks, byte-compatible with llama.cpp's
 * layouts (decoded by dequantize_row in quant/types.h).
 *
 * Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 are plain round-to-nearest with one scale
 * (and minimum) per 32 elements, the same arithmetic as llama.cpp's reference
 * quantizers. Q4_K, Q5_K, Q6_K and IQ4_NL choose their scales by a search
 * that minimises the (importance-weighted) squared reconstruction error:
 * candidate scales, a least-squares refit for each, and a final pass that
 * re-chooses each quantized sub-block scale given the super-block scale.
 * F32, F16 and BF16 are conversions (round to nearest even). */
#ifndef TL_QUANT_QUANTIZE_H
#define TL_QUANT_QUANTIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

/* True if quantize_row writes this type. */
bool quantize_type_supported(uint32_t type);
/* True if the type's quantizer uses importance weights (see quantize_row). */
bool quantize_type_uses_importance(uint32_t type);

/* Quantizes n elements (a multiple of the type's block size) of src into dst,
 * which must hold ggml_row_bytes(type, n) bytes. `importance` is NULL (every
 * element counts the same) or n non-negative weights, e.g. the mean squared
 * activation of each input column, for the search-based types; the others
 * ignore it. Fails for unsupported types, bad lengths or non-finite input. */
int quantize_row(uint32_t type, const float *src, void *dst, int64_t n, const float *importance, tl_err_t *err);

/* Type id for a name as used on the command line ("q4_k", "Q4_K", "iq4_nl", "f16"),
 * or -1 when the name is unknown or the type cannot be written. */
int quantize_type_from_name(const char *name);

#endif
