/* Block removal for GGUF files (see gguf_prune.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf_prune.h"

long gguf_prune_block_of(const char *name, size_t *rest) {
    if (strncmp(name, "blk.", 4)) return -1;
    const char *p = name + 4;
    if (*p < '0' || *p > '9') return -1;
    char *end;
    long n = strtol(p, &end, 10);
    if (*end != '.') return -1;
    *rest = (size_t)(end + 1 - name);
    return n;
}

int gguf_prune_blocks(const gguf_file_t *src, const bool *keep, uint32_t n_layer, const char *out_path, tl_err_t *err) {
    gguf_str_t arch;
    if (gguf_get_str(src, "general.architecture", &arch, err)) return -1;
    char key[160];
    snprintf(key, sizeof key, "%.*s.block_count", (int)(arch.len < 100 ? arch.len : 100), arch.ptr);
    uint32_t file_layers;
    if (gguf_get_u32(src, key, &file_layers, err)) return -1;
    if (file_layers != n_layer)
        return tl_fail(err, "%s: %s is %u, expected %u", gguf_path(src), key, file_layers, n_layer);
    int *new_index = malloc(sizeof(int) * (n_layer ? n_layer : 1));
    if (!new_index) return tl_fail(err, "prune: out of memory");
    uint32_t kept = 0;
    for (uint32_t l = 0; l < n_layer; l++) new_index[l] = keep[l] ? (int)kept++ : -1;
    int rc = 0;
    if (!kept) rc = tl_fail(err, "prune: every block would be removed");
    gguf_writer_t *w = rc ? NULL : gguf_writer_new();
    if (!rc && !w) rc = tl_fail(err, "prune: out of memory");
    if (!rc && gguf_find_kv(src, "general.alignment")) rc = gguf_writer_set_alignment(w, gguf_alignment(src), err);
    if (!rc) rc = gguf_writer_copy_kv(w, src, err);
    if (!rc) rc = gguf_writer_set_u32(w, key, kept, err);
    for (uint64_t i = 0; i < gguf_n_tensors(src) && !rc; i++) {
        const gguf_tensor_t *t = gguf_tensor(src, i);
        size_t rest = 0;
        long b = gguf_prune_block_of(t->name, &rest);
        char name[160];
        if (b < 0) {
            snprintf(name, sizeof name, "%s", t->name);
        } else if ((uint64_t)b >= n_layer) {
            rc = tl_fail(err, "%s: tensor %s: block %ld beyond %s = %u", gguf_path(src), t->name, b, key, n_layer);
            break;
        } else if (new_index[b] < 0) {
            continue;
        } else {
            snprintf(name, sizeof name, "blk.%d.%s", new_index[b], t->name + rest);
        }
        rc = gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->nbytes, err);
    }
    if (!rc) rc = gguf_writer_write(w, out_path, err);
    gguf_writer_free(w);
    free(new_index);
    return rc;
}
