/* Test tool: copies a GGUF file through the reader and writer (every key in
 * order, every tensor's bytes), for round-trip checks against llama.cpp.
 * usage: gguf_copy SRC DST */
#include <stdio.h>

#include "io/gguf.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: gguf_copy SRC DST\n");
        return 2;
    }
    gguf_file_t *f;
    tl_err_t err = {{0}};
    if (gguf_open(&f, argv[1], &err)) {
        fprintf(stderr, "gguf_copy: %s\n", err.msg);
        return 1;
    }
    gguf_writer_t *w = gguf_writer_new();
    int rc = w ? gguf_writer_copy_kv(w, f, &err) : -1;
    for (uint64_t i = 0; i < gguf_n_tensors(f) && rc == 0; i++) {
        const gguf_tensor_t *t = gguf_tensor(f, i);
        rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes, &err);
    }
    if (rc == 0) rc = gguf_writer_write(w, argv[2], &err);
    if (rc) fprintf(stderr, "gguf_copy: %s\n", w ? err.msg : "out of memory");
    gguf_writer_free(w);
    gguf_close(f);
    return rc ? 1 : 0;
}
