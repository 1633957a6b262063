/* Activation capture for calibration: a forward pass identical in arithmetic
 * to model_eval that hands the input of every weight matrix to a callback.
 * Kept apart from forward.c so the serving hot path carries no hook. */
#ifndef TL_MODEL_CAPTURE_H
#define TL_MODEL_CAPTURE_H

#include "model/model.h"

/* Which matrices read an activation: q/k/v share ATTN_IN, gate/up share FFN_IN. */
typedef enum { CAPTURE_ATTN_IN = 0, CAPTURE_ATTN_OUT = 1, CAPTURE_FFN_IN = 2, CAPTURE_FFN_DOWN = 3, CAPTURE_N_SLOTS = 4 } capture_slot_t;

/* x holds n rows of dim floats (row-major, one per token). Return non-zero to stop. */
typedef int (*capture_fn)(void *ud, int layer, capture_slot_t slot, const float *x, int n, int dim);

/* Names of the weight tensors reading a slot ("attn_q", "attn_k", "attn_v" for ATTN_IN, ...). */
int capture_slot_tensors(capture_slot_t slot, const char *names[3]);

/* Appends n tokens like model_eval (no logits) and calls fn for every layer
 * and slot of every internal chunk. */
int model_capture_eval(model_ctx_t *c, const int32_t *tokens, int n, capture_fn fn, void *ud, tl_err_t *err);

#endif
