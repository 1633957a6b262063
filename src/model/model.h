/* Llama-family model: configuration from GGUF metadata, weights, forward pass
 * with a KV cache. Hyper-parameters come from the file, never from constants. */
#ifndef TL_MODEL_H
#define TL_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "io/gguf.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    char arch[32];          /* general.architecture */
    uint32_t n_vocab;
    uint32_t n_ctx_train;
    uint32_t n_embd;
    uint32_t n_ff;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim;      /* n_embd / n_head unless the file says otherwise */
    uint32_t n_rot;         /* rope dimension count */
    float rope_freq_base;
    float rms_eps;
    bool tied_output;       /* output projection shares token_embd */
    uint64_t n_params;
} model_config_t;

typedef struct model model_t;
typedef struct model_ctx model_ctx_t;

/* Loads a GGUF model file (weights memory-mapped). n_threads <= 0 means one per core. */
int model_load(model_t **out, const char *path, int n_threads, tl_err_t *err);
void model_free(model_t *m);
const model_config_t *model_config(const model_t *m);
const tokenizer_t *model_tokenizer(const model_t *m);
const gguf_file_t *model_gguf(const model_t *m);

/* One sequence's state: KV cache for n_ctx positions plus scratch buffers. */
int model_ctx_new(model_ctx_t **out, const model_t *m, int n_ctx, tl_err_t *err);
void model_ctx_free(model_ctx_t *c);
int model_ctx_pos(const model_ctx_t *c);          /* tokens already in the cache */
void model_ctx_truncate(model_ctx_t *c, int n_pos); /* keep the first n_pos positions */

/* Appends n tokens at the current position in one batched pass. If logits is
 * non-NULL it receives n_vocab floats for the last token, or n*n_vocab floats
 * (one row per token) when all_logits is true. Fails (without changing the
 * cache) if the tokens would exceed n_ctx or an id is out of range. */
int model_eval(model_ctx_t *c, const int32_t *tokens, int n, float *logits, bool all_logits, tl_err_t *err);

#endif
