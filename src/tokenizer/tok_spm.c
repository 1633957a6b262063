/* SentencePiece-style BPE (tokenizer.ggml.model = "llama"): start from UTF-8
 * characters and repeatedly merge the adjacent pair whose concatenation is the
 * vocabulary entry with the highest score (leftmost first on ties). Pieces
 * that end up outside the vocabulary fall back to byte tokens <0xXX>. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

typedef struct {
    size_t off, len;
    int prev, next;
} spm_sym_t;

typedef struct {
    float score;
    int left, right;
    size_t size;
} spm_bigram_t;

typedef struct {
    spm_sym_t *sym;
    spm_bigram_t *heap;
    size_t n_heap, cap_heap;
} spm_ws_t;

/* Higher score first; on equal scores the leftmost pair. */
static bool spm_before(const spm_bigram_t *a, const spm_bigram_t *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int spm_push(spm_ws_t *w, spm_bigram_t b) {
    if (w->n_heap == w->cap_heap) {
        size_t cap = w->cap_heap ? w->cap_heap * 2 : 64;
        spm_bigram_t *h = realloc(w->heap, cap * sizeof *h);
        if (!h) return -1;
        w->heap = h;
        w->cap_heap = cap;
    }
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!spm_before(&b, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = b;
    return 0;
}

static spm_bigram_t spm_pop(spm_ws_t *w) {
    spm_bigram_t top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && spm_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!spm_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

static int spm_try_pair(const tokenizer_t *t, spm_ws_t *w, const char *text, int left, int right) {
    if (left < 0 || right < 0) return 0;
    const spm_sym_t *l = &w->sym[left], *r = &w->sym[right];
    /* Adjacent symbols are contiguous in the text. */
    int32_t id = hashmap_get(&t->tok_to_id, text + l->off, l->len + r->len);
    if (id < 0 || id >= t->n_vocab) return 0;
    spm_bigram_t b = {t->score[id], left, right, l->len + r->len};
    return spm_push(w, b);
}

int tok_spm_encode_fragment(const tokenizer_t *t, const char *text, size_t len, tok_ids_t *out, tl_err_t *err) {
    spm_ws_t w = {0};
    int rc = -1;
    size_t n = 0;
    w.sym = malloc((len ? len : 1) * sizeof *w.sym);
    if (!w.sym) return tl_fail(err, "out of memory");
    for (size_t off = 0; off < len;) {
        size_t cl = tok_utf8_len((uint8_t)text[off]);
        if (cl > len - off) cl = len - off;
        w.sym[n] = (spm_sym_t){off, cl, (int)n - 1, off + cl == len ? -1 : (int)n + 1};
        n++;
        off += cl;
    }
    for (size_t i = 1; i < n; i++)
        if (spm_try_pair(t, &w, text, (int)i - 1, (int)i) != 0) goto oom;
    while (w.n_heap) {
        spm_bigram_t b = spm_pop(&w);
        spm_sym_t *l = &w.sym[b.left], *r = &w.sym[b.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != b.size) continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) w.sym[r->next].prev = b.left;
        if (spm_try_pair(t, &w, text, l->prev, b.left) != 0 || spm_try_pair(t, &w, text, b.left, l->next) != 0)
            goto oom;
    }
    for (int i = n ? 0 : -1; i >= 0; i = w.sym[i].next) {
        const spm_sym_t *s = &w.sym[i];
        int32_t id = hashmap_get(&t->tok_to_id, text + s->off, s->len);
        if (id >= 0) {
            if (tok_ids_push(out, id) != 0) goto oom;
            continue;
        }
        for (size_t j = 0; j < s->len; j++) {
            int32_t bid = t->byte_token[(uint8_t)text[s->off + j]];
            if (bid < 0) {
                tl_fail(err, "tokenizer: no byte token for byte 0x%02X (vocabulary has neither <0x%02X> nor the byte itself)",
                        (uint8_t)text[s->off + j], (uint8_t)text[s->off + j]);
                goto done;
            }
            if (tok_ids_push(out, bid) != 0) goto oom;
        }
    }
    rc = 0;
    goto done;
oom:
    tl_fail(err, "out of memory");
done:
    free(w.sym);
    free(w.heap);
    return rc;
}
