/* Private to src/model: the model and context structures. */
#ifndef TL_MODEL_INTERNAL_H
#define TL_MODEL_INTERNAL_H

#include <pthread.h>

#include "core/threadpool.h"
#include "model/model.h"
#include "model/model_extra.h"
#include "quant/matmul.h"

typedef struct {
    float *attn_norm, *ffn_norm;
    float *bq, *bk, *bv; /* optional biases */
    mm_weight_t wq, wk, wv, wo, w_gate, w_up, w_down;
    float *owned[7];     /* fp32 copies of weights whose type the matmul lacks */
} layer_t;

struct model {
    gguf_file_t *gguf;
    tokenizer_t *tok;
    model_config_t cfg;
    threadpool_t *pool;
    cpu_level_t level;
    const gguf_tensor_t *tok_embd;
    size_t tok_embd_row_bytes;
    float *output_norm;
    mm_weight_t output;
    float *owned[1];
    layer_t *layers;
    void **packs;        /* Q8_0 weights repacked at load (matmul_pack.h) */
    int n_packs;
    /* The full output matrix (the vocabulary) is packed on first use only
     * (model_output_weight): scoring a task's labels reads a few rows
     * through a model_head_t and never needs it (~30 MiB on SmolLM2). */
    pthread_mutex_t output_lock;
    mm_weight_t output_packed; /* output with .pack set once built (.pack NULL until then); output never changes */
};

/* The output matrix, packed on the first call (thread-safe). */
const mm_weight_t *model_output_weight(const model_t *m);

/* Tokens per internal forward pass; longer inputs are processed in chunks. */
#define MODEL_UBATCH 512

struct model_ctx {
    const model_t *m;
    int n_ctx, n_pos, n_ub;
    int32_t *tokens;    /* n_ctx: the tokens in the cache */
    float *k_cache, *v_cache; /* [layer][pos][n_head_kv * head_dim] */
    /* scratch, sized for n_ub tokens */
    float *x, *xn, *q, *k, *v, *att, *o, *g, *u, *rope;
    float *scores;      /* n_threads * n_ctx */
    void *mm_scratch;
    size_t mm_scratch_bytes;
    /* optional (layerwise.c): receives the hidden state before block 0 and
     * after every block of the last chunk, (n_layer + 1) * n * n_embd floats */
    float *trace;
};

#endif
