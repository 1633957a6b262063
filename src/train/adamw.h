/* AdamW (decoupled weight decay, bias-corrected moments), global-norm
 * gradient clipping and the learning-rate schedule (linear warm-up, then
 * linear or cosine decay to zero) for the LoRA parameters. */
#ifndef TL_TRAIN_ADAMW_H
#define TL_TRAIN_ADAMW_H

#include <stddef.h>

#include "core/err.h"
#include "train/lora.h"

typedef struct {
    float beta1, beta2, eps, weight_decay;
} adamw_cfg_t;

typedef struct {
    size_t n;       /* parameters in all */
    float *m, *v;   /* first and second moments, in lora_visit order */
    long step;      /* updates done */
} adamw_t;

int adamw_new(adamw_t **out, size_t n, tl_err_t *err);
void adamw_free(adamw_t *a);
/* One update of every adapter parameter from its gradient at learning rate lr:
 * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr (m^ / (sqrt(v^) + eps) + wd p). */
void adamw_step(adamw_t *a, const adamw_cfg_t *cfg, lora_t *l, float lr);
/* Plain update of one tensor (exposed for tests); t is the 1-based step. */
void adamw_update(float *p, const float *g, float *m, float *v, size_t n, const adamw_cfg_t *cfg, float lr, long t);

/* Global L2 norm of all adapter gradients; if max_norm > 0 and the norm
 * exceeds it, the gradients are scaled to max_norm. Returns the norm before. */
double lora_clip_grads(lora_t *l, double max_norm);

typedef enum { SCHED_LINEAR, SCHED_COSINE, SCHED_CONSTANT } sched_kind_t;
/* Learning rate at 0-based step of total: warm-up from lr/warmup to lr over
 * `warmup` steps, then decay to 0 at step total (linear or cosine). */
float sched_lr(sched_kind_t kind, float lr, long step, long total, long warmup);

#endif
