/* Test tool: prints a GGUF file's header, keys and tensor table, or the first
 * N dequantized values of one tensor, as plain text for the peer tests.
 * usage: gguf_dump FILE                 (header, keys, tensors)
 *        gguf_dump FILE TENSOR [N]      (first N values, default all, one per line, %.9g) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "quant/types.h"

static void print_tables(const gguf_file_t *f) {
    printf("version %u\nalignment %" PRIu64 "\ndata_offset %" PRIu64 "\nn_kv %" PRIu64 "\nn_tensors %" PRIu64 "\n",
           gguf_version(f), gguf_alignment(f), gguf_data_offset(f), gguf_n_kv(f), gguf_n_tensors(f));
    for (uint64_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv_t *kv = gguf_kv(f, i);
        printf("kv %.*s %u\n", (int)kv->key.len, kv->key.ptr, kv->value.type);
    }
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor_t *t = gguf_tensor(f, i);
        printf("tensor %s %s %u %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRIu64 " %" PRIu64 "\n", t->name,
               ggml_type_name(t->type), t->n_dims, t->ne[0], t->ne[1], t->ne[2], t->ne[3], t->offset, t->nbytes);
    }
}

static int print_values(const gguf_file_t *f, const char *name, int64_t n) {
    const gguf_tensor_t *t = gguf_find_tensor(f, name);
    if (!t) {
        fprintf(stderr, "gguf_dump: no tensor '%s'\n", name);
        return 1;
    }
    int64_t total = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    if (n < 0 || n > total) n = total;
    int64_t rows = (n + t->ne[0] - 1) / t->ne[0];
    float *buf = malloc((size_t)(rows * t->ne[0]) * sizeof *buf);
    size_t row_bytes;
    tl_err_t err = {{0}};
    if (!buf || ggml_row_bytes(t->type, t->ne[0], &row_bytes, &err)) {
        fprintf(stderr, "gguf_dump: %s\n", buf ? err.msg : "out of memory");
        free(buf);
        return 1;
    }
    for (int64_t r = 0; r < rows; r++) {
        if (dequantize_row(t->type, (const uint8_t *)t->data + r * row_bytes, buf + r * t->ne[0], t->ne[0], &err)) {
            fprintf(stderr, "gguf_dump: tensor '%s': %s\n", name, err.msg);
            free(buf);
            return 1;
        }
    }
    for (int64_t i = 0; i < n; i++) printf("%.9g\n", buf[i]);
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: gguf_dump FILE [TENSOR [N]]\n");
        return 2;
    }
    gguf_file_t *f;
    tl_err_t err = {{0}};
    if (gguf_open(&f, argv[1], &err)) {
        fprintf(stderr, "gguf_dump: %s\n", err.msg);
        return 1;
    }
    int rc = 0;
    if (argc == 2) print_tables(f);
    else rc = print_values(f, argv[2], argc == 4 ? strtoll(argv[3], NULL, 10) : -1);
    gguf_close(f);
    return rc;
}
