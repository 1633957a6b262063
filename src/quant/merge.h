/* Folding a LoRA adapter into a base model: W' = W + scale * B . A for each
 * weight the adapter targets, scale = adapter.lora.alpha / rank (1 when alpha
 * is absent or 0, as llama.cpp does).
 *
 * The adapter follows llama.cpp's convention: general.type = "adapter",
 * adapter.type = "lora", general.architecture equal to the base's, and for a
 * base weight NAME of ne [n_in, n_out] the tensors NAME.lora_a of ne
 * [n_in, rank] and NAME.lora_b of ne [rank, n_out] (any type dequantize_row
 * reads, usually F32).
 *
 * The merged weights are written as F32, or re-quantized to a chosen type or
 * to the base tensor's own type; every other tensor is copied byte for byte
 * and every metadata key is kept. The output is written atomically. */
#ifndef TL_QUANT_MERGE_H
#define TL_QUANT_MERGE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

#define MERGE_TYPE_SAME UINT32_MAX /* re-quantize each weight to its base type */

typedef struct {
    uint32_t out_type; /* GGML_TYPE_F32 (default), a quantize_row type, or MERGE_TYPE_SAME */
    int n_threads;     /* <= 0: one per core */
    int adapted_set;        /* 1: adapted_type is the type of every weight the adapter changes (e.g. q8_0 over a
                               4-bit base: re-rounding W + dW to the base's 4-bit grid undoes a small dW) */
    uint32_t adapted_type;
    const char *label_bias; /* tasklm.label_bias of the output: NULL: the adapter's, else the base's;
                               "none": no key; otherwise this "label=value,..." spec (task/calib.h) */
} merge_opts_t;

typedef struct {
    int n_tensors;       /* tensors written */
    int n_merged;        /* weights the adapter changed */
    int rank;            /* largest adapter rank seen */
    float alpha, scale;
    uint64_t out_bytes;  /* size of the written file */
} merge_report_t;

/* Reads base and adapter, validates the adapter against the base (errors name
 * the file and tensor), merges and writes out_path. */
int merge_lora_file(const char *base_path, const char *adapter_path, const char *out_path, const merge_opts_t *opts,
                    merge_report_t *report, tl_err_t *err);

#endif
