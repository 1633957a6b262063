/* The training forward and backward pass of a Llama-family model with LoRA
 * adapters: a batch of sequences (prompt + answer tokens) runs through the
 * frozen base weights (any type quant/matmul.h handles) keeping the
 * activations, the loss is the cross-entropy of the answer tokens only, and
 * the backward pass accumulates gradients into the adapter's A and B. The
 * same forward, without the backward, scores label continuations for
 * evaluation with an adapter applied. */
#ifndef TL_TRAIN_TGRAPH_H
#define TL_TRAIN_TGRAPH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "model/model.h"
#include "train/lora.h"

typedef struct {
    const int32_t *tokens;
    int n_tokens;
    int n_prompt; /* tokens[n_prompt .. n_tokens) are the answer; 1 <= n_prompt <= n_tokens */
} train_seq_t;

typedef struct train_graph train_graph_t;

/* Buffers for batches of up to max_tokens tokens in all. lora may be NULL
 * (base model only); it must outlive the graph. */
int train_graph_new(train_graph_t **out, const model_t *m, lora_t *lora, int max_tokens, tl_err_t *err);
void train_graph_free(train_graph_t *g);

/* On (the default): when every sequence of a batch starts with the same prompt
 * tokens (a task template's fixed text), those tokens are evaluated once for
 * the batch and each sequence runs only its own tokens, attending to the
 * shared keys and values; the backward pass sums the sequences' gradients of
 * the shared rows. Same losses and (up to summation order) gradients as
 * without sharing; fewer rows: about 2.5x fewer for the namematch template at
 * batch 16. Never with dropout (each sequence draws its own masks). */
void train_graph_set_prefix_sharing(train_graph_t *g, bool on);

/* Dropout on the adapters' input (PEFT's lora_dropout): probability p, masks
 * drawn from `seed` (change it every step). p = 0 turns it off. */
void train_graph_set_dropout(train_graph_t *g, float p, uint64_t seed);

/* Runs the batch. seq_logprob (optional, n_seqs): sum of log p(answer token)
 * per sequence. first_logits (optional, n_seqs * n_vocab): the logits that
 * predict each sequence's first answer token. backward: also accumulate
 * gscale * d(sum of -log p)/d(param) into the adapter's gradients (the caller
 * sets gscale = 1 / answer tokens in the batch and zeroes the gradients).
 * Sequences need n_tokens > n_prompt unless only first_logits is wanted.
 * With backward, the frozen weights multiply fp32 activations (rows dequantized
 * on the fly); without it, they go through matmul_forward exactly as inference
 * (model_eval, llama.cpp) computes them, so evaluation scores match inference. */
int train_graph_run(train_graph_t *g, const train_seq_t *seqs, int n_seqs, bool backward, float gscale,
                    double *seq_logprob, float *first_logits, tl_err_t *err);

#endif
