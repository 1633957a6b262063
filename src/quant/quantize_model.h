/* Whole-file quantization: reads a GGUF model (any type dequantize_row reads),
 * re-encodes each 2-D weight matrix in the target type and writes a new GGUF
 * file atomically, with every metadata key copied and general.file_type set.
 *
 * Type choice for each tensor, first rule that applies:
 *   1. 1-D tensors (norms, biases) are stored as F32;
 *   2. an override whose pattern matches the name (fnmatch glob; "token_embd"
 *      also matches "token_embd.weight", i.e. PATTERN or PATTERN.*);
 *   3. unless `pure`: when the target has fewer than 6 bits per weight, the
 *      token embedding and the output projection are kept at Q8_0 (llama.cpp
 *      keeps the output at Q6_K; Q8_0 is what our integer matmul runs and what
 *      the distributed models use for the embedding);
 *   4. the target type.
 * A row length that is not a multiple of the chosen type's block falls back
 * the way llama.cpp does: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and any
 * 32-block type -> F16; the tensor's record says so. */
#ifndef TL_QUANT_QUANTIZE_MODEL_H
#define TL_QUANT_QUANTIZE_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "quant/types.h"

typedef struct {
    char pattern[128];
    uint32_t type;
} quantize_override_t;

/* Per-column importance for a weight of n_in columns (NULL for none). The
 * pointer must stay valid for the duration of quantize_model_file. */
typedef const float *(*quantize_importance_fn)(void *ctx, const char *tensor_name, int64_t n_in);

typedef struct {
    uint32_t type;                         /* target ggml type */
    const quantize_override_t *overrides;  /* checked in order */
    int n_overrides;
    bool pure;                             /* skip rule 3 */
    int n_threads;                         /* <= 0: one per core */
    quantize_importance_fn importance;     /* optional (calibrated quantization) */
    void *importance_ctx;
} quantize_opts_t;

typedef struct {
    char name[128];
    uint32_t type_in, type_out;
    uint32_t type_wanted; /* before the block-size fallback */
    int64_t n_in, n_elements;
    bool fallback;     /* the chosen type did not fit the row length */
    bool importance;   /* quantized with importance weights */
    double sq_err;     /* sum of squared reconstruction error vs the input values */
    double sq_ref;     /* sum of squared input values */
} quantize_tensor_rec_t;

typedef struct {
    uint64_t in_bytes, out_bytes;   /* file sizes */
    int n_tensors;
    quantize_tensor_rec_t *tensors; /* n_tensors records, in file order */
    int count_by_type[GGML_TYPE_COUNT];
    int n_fallback;
    uint32_t file_type;             /* general.file_type written */
    double seconds;
} quantize_report_t;

/* Parses "PAT=TYPE[,PAT=TYPE...]" and appends to *ov (realloc'd, *n updated). */
int quantize_parse_overrides(const char *spec, quantize_override_t **ov, int *n, tl_err_t *err);
/* llama.cpp's general.file_type for a target type (its "mostly" ftype). */
uint32_t quantize_file_type(uint32_t type);

int quantize_model_file(const char *in_path, const char *out_path, const quantize_opts_t *opts,
                        quantize_report_t *report, tl_err_t *err);
void quantize_report_free(quantize_report_t *r);

#endif
