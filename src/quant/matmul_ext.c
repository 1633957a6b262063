/* Dispatch for the weight types of matmul_ext.h. */
#include "quant/matmul_ext.h"

#include "quant/types.h"

bool mm_ext_supports(uint32_t type) {
    return type == GGML_TYPE_Q4_0 || type == GGML_TYPE_Q5_0 || type == GGML_TYPE_IQ4_NL;
}

size_t mm_ext_row_bytes(uint32_t type, int64_t n_in) {
    size_t nb = (size_t)(n_in / MM_QK);
    switch (type) {
    case GGML_TYPE_Q4_0: return nb * sizeof(mm_block_q4_0_t);
    case GGML_TYPE_Q5_0: return nb * sizeof(mm_block_q5_0_t);
    case GGML_TYPE_IQ4_NL: return nb * sizeof(mm_block_iq4_nl_t);
    default: return 0;
    }
}

float mm_ext_dot(uint32_t type, int64_t n, const void *w, const mm_block_q8_0_t *a, cpu_level_t level) {
    switch (type) {
    case GGML_TYPE_Q4_0: return matmul_dot_q4_0_q8_0(n, w, a, level);
    case GGML_TYPE_Q5_0: return matmul_dot_q5_0_q8_0(n, w, a, level);
    case GGML_TYPE_IQ4_NL: return matmul_dot_iq4_nl_q8_0(n, w, a, level);
    default: return 0.0f;
    }
}
