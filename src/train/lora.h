/* LoRA adapters over the frozen projections of a Llama-family model:
 * y = W x + scale * B (A x), scale = alpha / rank. A is rank x n_in (GGUF ne
 * [n_in, rank], llama.cpp's "lora_a"), B is n_out x rank (ne [rank, n_out],
 * "lora_b"); both row-major fp32. */
#ifndef TL_TRAIN_LORA_H
#define TL_TRAIN_LORA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "model/model.h"

typedef enum {
    LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN, LORA_N_TARGETS
} lora_target_t;

typedef struct {
    int n_in, n_out, rank;
    float *a, *b;   /* rank * n_in, n_out * rank */
    float *ga, *gb; /* gradients (NULL when the adapter is not trained) */
} lora_mat_t;

typedef struct {
    char arch[32];
    int n_layer, rank;
    float alpha, scale;
    unsigned targets;  /* bit (1 << lora_target_t) per adapted projection */
    lora_mat_t *mats;  /* n_layer * LORA_N_TARGETS; a == NULL where not adapted */
    char label_bias[512]; /* tasklm.label_bias written with the adapter ("" = none; task/calib.h) */
} lora_t;

/* Short target names "q","k","v","o","gate","up","down". */
const char *lora_target_name(lora_target_t t);
/* GGUF base tensor stem: "attn_q", ..., "ffn_down". */
const char *lora_target_tensor(lora_target_t t);
/* Parses "q,k,v,o" (also "all", "attn" = q,k,v,o, "mlp" = gate,up,down). */
int lora_targets_parse(const char *s, unsigned *mask, tl_err_t *err);

/* A new adapter: A ~ U(-1/sqrt(n_in), 1/sqrt(n_in)) from a splitmix64 stream
 * seeded by `seed` (the Kaiming-uniform bound PEFT uses), B = 0. with_grads
 * allocates gradient buffers. */
int lora_new(lora_t **out, const model_config_t *cfg, int rank, float alpha, unsigned targets, uint64_t seed,
             bool with_grads, tl_err_t *err);
void lora_free(lora_t *l);
/* NULL when the projection is not adapted. */
lora_mat_t *lora_mat(const lora_t *l, int layer, lora_target_t t);
size_t lora_n_params(const lora_t *l);
void lora_zero_grads(lora_t *l);

/* Visits every parameter tensor in a fixed order (layer, target, A then B):
 * fn(ctx, param, grad, n). */
typedef void (*lora_visit_fn)(void *ctx, float *param, float *grad, size_t n);
void lora_visit(const lora_t *l, lora_visit_fn fn, void *ctx);

/* Adapter GGUF (llama.cpp's convention): general.architecture = base arch,
 * general.type = "adapter", adapter.type = "lora", adapter.lora.alpha (f32),
 * F32 tensors blk.N.<stem>.weight.lora_a / .lora_b. Written atomically. */
int lora_save_gguf(const lora_t *l, const char *path, tl_err_t *err);
/* Loads an adapter for model m, checking the architecture and every shape. */
int lora_load(lora_t **out, const char *path, const model_t *m, tl_err_t *err);

/* Folds the adapter into the model's weights in memory for inference:
 * W' = W + scale * B . A for every adapted projection, computed in fp32 in the
 * same order as `tasklm merge` (quant/merge.c), so the model then scores
 * exactly as the merged F32 file would. The adapted projections become owned
 * fp32 copies (the other weights stay as stored); threads split the rows.
 * Training must not use the model afterwards. */
int lora_merge_into_model(model_t *m, const lora_t *l, tl_err_t *err);
/* lora_load + lora_merge_into_model: the adapter is freed afterwards. */
int lora_apply_file(model_t *m, const char *path, tl_err_t *err);

/* splitmix64: the trainer's deterministic random stream. */
static inline uint64_t lora_splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
/* Uniform in [0, 1) with 24 random bits. */
static inline float lora_rand_unit(uint64_t *s) { return (float)(lora_splitmix64(s) >> 40) * (1.0f / 16777216.0f); }

#endif
