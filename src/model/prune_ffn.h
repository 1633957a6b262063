/* FFN (MLP) channel importance, for structured pruning of the feed-forward
 * width. Channel j of block l is row j of ffn_gate and ffn_up and column j of
 * ffn_down: the block adds sum_j h_j * ffn_down[:, j] to the residual stream,
 * with h = silu(gate x) * up x. Its score is
 *
 *     s_lj = mean over calibration tokens of |h_j|  *  ||ffn_down[:, j]||_2
 *
 * the mean size of what removing the channel takes away from the block's
 * output (the activation alone ignores how strongly the channel is written
 * back; the weight norm alone ignores how often the task's prompts use it).
 * The mean of h_j^2 is kept as well: it weighs the re-quantization of the
 * pruned ffn_down (see quant/ffn_slice.h). */
#ifndef TL_MODEL_PRUNE_FFN_H
#define TL_MODEL_PRUNE_FFN_H

#include "io/gguf.h"
#include "model/model.h"
#include "model/prune_score.h"

/* Uses cal->prompts, prompt_lens, n_prompts and progress (one call per
 * prompt); labels are not needed. score: n_layer * n_ff (block-major);
 * act_sq: n_layer * n_ff mean squared activation, or NULL. */
int prune_ffn_score(const model_t *m, const prune_calib_t *cal, double *score, float *act_sq, tl_err_t *err);

/* The L2 norm of every column of a [n_ff, n_embd] ffn_down tensor (ne[0] =
 * n_ff): norms[j] = ||W[:, j]||_2 over the n_embd output rows. */
int prune_ffn_down_norms(const gguf_tensor_t *down, double *norms, tl_err_t *err);

/* The n_keep channels of highest score, in ascending index order (ties keep
 * the lower index). Fails when n_keep is not in (0, n_ff] or a score is not
 * finite. */
int prune_ffn_select(const double *score, int n_ff, int n_keep, int *kept, tl_err_t *err);

#endif
