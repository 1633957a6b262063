/* Additions to model.h used by the CLI, tests and benchmarks. */
#ifndef TL_MODEL_EXTRA_H
#define TL_MODEL_EXTRA_H

#include "core/cpu.h"
#include "model/model.h"

/* Forces the kernel level (tests compare levels; capped at what the CPU has). */
void model_set_cpu_level(model_t *m, cpu_level_t level);
cpu_level_t model_cpu_level(const model_t *m);
int model_n_threads(const model_t *m);
/* Tokens currently held by the context (model_ctx_pos() of them). */
const int32_t *model_ctx_tokens(const model_ctx_t *c);
int model_ctx_size(const model_ctx_t *c); /* n_ctx */
const model_t *model_ctx_model(const model_ctx_t *c);

#endif
