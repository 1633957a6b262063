/* Model load and forward pass on the default model file: configuration read
 * from the file's own metadata, KV-cache correctness (chunked evaluation equals
 * one pass, truncation), thread-count determinism, kernel levels, label scoring
 * against log-softmax computed here, and errors (context overflow, bad ids,
 * unsupported architecture, missing tensors). */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "io/gguf.h"
#include "model/model.h"
#include "model/model_extra.h"
#include "model/model_internal.h"
#include "model/score.h"
#include "tl_test.h"

static const char *model_path(void) {
    const char *p = getenv("TASKLM_MODEL");
    return p ? p : "models/smollm2-135m-instruct-q4_1.gguf";
}

static model_t *M1, *M2; /* 1 and 2 threads */
static const int32_t TOKS[10] = {504, 3575, 282, 4649, 314, 1345, 30, 216, 5248, 28};

TEST(config_from_metadata) {
    const model_config_t *c = model_config(M1);
    const gguf_file_t *f = model_gguf(M1);
    uint32_t v;
    CHECK_STR(c->arch, "llama");
    gguf_get_u32(f, "llama.block_count", &v, NULL);
    CHECK_EQ_INT(c->n_layer, v);
    gguf_get_u32(f, "llama.embedding_length", &v, NULL);
    CHECK_EQ_INT(c->n_embd, v);
    gguf_get_u32(f, "llama.feed_forward_length", &v, NULL);
    CHECK_EQ_INT(c->n_ff, v);
    gguf_get_u32(f, "llama.attention.head_count", &v, NULL);
    CHECK_EQ_INT(c->n_head, v);
    CHECK_EQ_INT(c->head_dim, c->n_embd / c->n_head);
    gguf_get_u32(f, "llama.attention.head_count_kv", &v, NULL);
    CHECK_EQ_INT(c->n_head_kv, v);
    float fv;
    gguf_get_f32(f, "llama.rope.freq_base", &fv, NULL);
    CHECK(c->rope_freq_base == fv);
    gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &fv, NULL);
    CHECK(c->rms_eps == fv);
    const gguf_value_t *arr;
    gguf_get_arr(f, "tokenizer.ggml.tokens", &arr, NULL);
    CHECK_EQ_INT(c->n_vocab, arr->v.arr.n);
    CHECK(c->tied_output == (gguf_find_tensor(f, "output.weight") == NULL));
    /* parameter count = sum of tensor element counts (tied output counted once) */
    uint64_t n = 0;
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor_t *t = gguf_tensor(f, i);
        n += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    }
    CHECK_EQ_INT(c->n_params, n);
}

static int eval_all(model_t *m, const int32_t *t, int n, float *logits, int chunk, int n_ctx) {
    model_ctx_t *c;
    tl_err_t err;
    if (model_ctx_new(&c, m, n_ctx, &err)) return -1;
    int nv = (int)model_config(m)->n_vocab, rc = 0;
    for (int i = 0; i < n && rc == 0; i += chunk) {
        int k = n - i < chunk ? n - i : chunk;
        rc = model_eval(c, t + i, k, logits + (size_t)i * nv, true, &err);
    }
    model_ctx_free(c);
    return rc;
}

TEST(chunked_equals_one_pass) {
    int nv = (int)model_config(M1)->n_vocab;
    float *a = malloc(sizeof(float) * (size_t)nv * 10), *b = malloc(sizeof(float) * (size_t)nv * 10);
    CHECK_EQ_INT(eval_all(M2, TOKS, 10, a, 10, 64), 0);
    CHECK_EQ_INT(eval_all(M2, TOKS, 10, b, 3, 64), 0); /* 3+3+3+1: batched and single-token passes */
    CHECK(memcmp(a, b, sizeof(float) * (size_t)nv * 10) == 0);
    /* last-only logits equal the last row of all-logits */
    model_ctx_t *c;
    tl_err_t err;
    model_ctx_new(&c, M2, 64, &err);
    float *last = malloc(sizeof(float) * (size_t)nv);
    CHECK_EQ_INT(model_eval(c, TOKS, 10, last, false, &err), 0);
    CHECK(memcmp(last, a + (size_t)9 * nv, sizeof(float) * (size_t)nv) == 0);
    CHECK_EQ_INT(model_ctx_pos(c), 10);
    /* truncate to 6 and re-evaluate the same tail: same logits */
    model_ctx_truncate(c, 6);
    CHECK_EQ_INT(model_ctx_pos(c), 6);
    CHECK_EQ_INT(model_eval(c, TOKS + 6, 4, last, false, &err), 0);
    CHECK(memcmp(last, a + (size_t)9 * nv, sizeof(float) * (size_t)nv) == 0);
    /* a different token at position 6 changes the logits after it */
    int32_t other[4] = {TOKS[7], TOKS[7], TOKS[8], TOKS[9]};
    model_ctx_truncate(c, 6);
    CHECK_EQ_INT(model_eval(c, other, 4, last, false, &err), 0);
    CHECK(memcmp(last, a + (size_t)9 * nv, sizeof(float) * (size_t)nv) != 0);
    model_ctx_free(c);
    free(last);
    free(a);
    free(b);
}

TEST(threads_are_deterministic) {
    int nv = (int)model_config(M1)->n_vocab;
    float *a = malloc(sizeof(float) * (size_t)nv * 6), *b = malloc(sizeof(float) * (size_t)nv * 6);
    CHECK_EQ_INT(model_n_threads(M1), 1);
    CHECK_EQ_INT(model_n_threads(M2), 2);
    CHECK_EQ_INT(eval_all(M1, TOKS, 6, a, 6, 16), 0);
    CHECK_EQ_INT(eval_all(M2, TOKS, 6, b, 6, 16), 0);
    CHECK(memcmp(a, b, sizeof(float) * (size_t)nv * 6) == 0);
    free(a);
    free(b);
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

TEST(kernel_levels_agree) {
    int nv = (int)model_config(M1)->n_vocab;
    float *a = malloc(sizeof(float) * (size_t)nv * 5), *b = malloc(sizeof(float) * (size_t)nv * 5);
    cpu_level_t best = model_cpu_level(M2);
    CHECK_EQ_INT(eval_all(M2, TOKS, 5, a, 5, 8), 0);
    model_set_cpu_level(M2, CPU_LEVEL_SCALAR);
    CHECK_EQ_INT(model_cpu_level(M2), CPU_LEVEL_SCALAR);
    CHECK_EQ_INT(eval_all(M2, TOKS, 5, b, 5, 8), 0);
    model_set_cpu_level(M2, best);
    for (int t = 0; t < 5; t++) {
        const float *x = a + (size_t)t * nv, *y = b + (size_t)t * nv;
        double dot = 0, nx = 0, ny = 0;
        for (int i = 0; i < nv; i++) {
            dot += (double)x[i] * y[i];
            nx += (double)x[i] * x[i];
            ny += (double)y[i] * y[i];
        }
        CHECK(dot / sqrt(nx * ny) > 0.995);
        int ia = argmax(x, nv), ib = argmax(y, nv);
        CHECK(ia == ib || fabsf(x[ia] - x[ib]) < 0.5f);
    }
    free(a);
    free(b);
}

static double log_softmax_ref(const float *x, int n, int id) {
    double mx = x[0], s = 0;
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < n; i++) s += exp(x[i] - mx);
    return x[id] - mx - log(s);
}

TEST(score_labels_vs_full_eval) {
    int nv = (int)model_config(M2)->n_vocab;
    const int32_t lab0[1] = {5248}, lab1[3] = {216, 30, 28};
    const int32_t *labels[2] = {lab0, lab1};
    int lens[2] = {1, 3};
    double lp[2];
    model_ctx_t *c;
    tl_err_t err;
    CHECK_EQ_INT(model_ctx_new(&c, M2, 32, &err), 0);
    CHECK_EQ_INT(score_labels(c, TOKS, 6, labels, lens, 2, lp, &err), 0);
    CHECK_EQ_INT(model_ctx_pos(c), 6);
    /* reference: prompt + label in one pass, all logits */
    float *all = malloc(sizeof(float) * (size_t)nv * 9);
    int32_t seq[9];
    memcpy(seq, TOKS, sizeof(int32_t) * 6);
    seq[6] = lab0[0];
    CHECK_EQ_INT(eval_all(M2, seq, 7, all, 7, 32), 0);
    CHECK_NEAR(lp[0], log_softmax_ref(all + (size_t)5 * nv, nv, lab0[0]), 1e-5);
    memcpy(seq + 6, lab1, sizeof lab1);
    CHECK_EQ_INT(eval_all(M2, seq, 9, all, 9, 32), 0);
    double want = 0;
    for (int j = 0; j < 3; j++) want += log_softmax_ref(all + (size_t)(5 + j) * nv, nv, lab1[j]);
    CHECK_NEAR(lp[1], want, 1e-4);
    CHECK(lp[1] < lp[0] + 50 && lp[0] < 0 && lp[1] < 0);
    /* scoring again from the cached prompt gives the same numbers */
    double lp2[2];
    CHECK_EQ_INT(score_labels(c, TOKS, 6, labels, lens, 2, lp2, &err), 0);
    CHECK(lp2[0] == lp[0] && lp2[1] == lp[1]);
    /* errors */
    int32_t bad[1] = {-3};
    const int32_t *bl[1] = {bad};
    int bl_len[1] = {1};
    CHECK_EQ_INT(score_labels(c, TOKS, 6, bl, bl_len, 1, lp, &err), -1);
    CHECK_CONTAINS(err.msg, "out of range");
    CHECK_EQ_INT(score_labels(c, TOKS, 0, labels, lens, 2, lp, &err), -1);
    CHECK_CONTAINS(err.msg, "no tokens");
    free(all);
    model_ctx_free(c);
}

/* The vocabulary matrix is packed on the first pass that asks for full
 * logits, not at load: the server's label-only head never needs it. Same
 * bits either way. */
TEST(output_packed_on_first_use) {
    model_t *m;
    tl_err_t err;
    CHECK_EQ_INT(model_load(&m, model_path(), 1, &err), 0);
    if (!m) return;
    CHECK(m->output_packed.pack == NULL && m->output.pack == NULL && m->layers[0].wq.pack != NULL);
    model_ctx_t *c;
    CHECK_EQ_INT(model_ctx_new(&c, m, 32, &err), 0);
    CHECK_EQ_INT(model_eval(c, TOKS, 6, NULL, false, &err), 0); /* no logits: the output matrix is not read */
    CHECK(m->output_packed.pack == NULL);
    int nv = (int)model_config(m)->n_vocab;
    float *a = malloc(sizeof(float) * (size_t)nv * 10), *b = malloc(sizeof(float) * (size_t)nv * 10);
    CHECK_EQ_INT(eval_all(M1, TOKS, 10, a, 10, 32), 0); /* M1: packed by earlier tests */
    CHECK(M1->output_packed.pack != NULL && model_output_weight(M1)->pack == M1->output_packed.pack);
    bool unpacked_first = m->output_packed.pack == NULL;
    CHECK_EQ_INT(eval_all(m, TOKS, 10, b, 10, 32), 0);
    CHECK(unpacked_first && m->output_packed.pack != NULL && m->output.pack == NULL);
    CHECK(memcmp(a, b, sizeof(float) * (size_t)nv * 10) == 0);
    free(a);
    free(b);
    model_ctx_free(c);
    model_free(m);
}

TEST(eval_errors) {
    model_ctx_t *c;
    tl_err_t err;
    CHECK_EQ_INT(model_ctx_new(&c, M1, 8, &err), 0);
    CHECK_EQ_INT(model_eval(c, TOKS, 9, NULL, false, &err), -1);
    CHECK_CONTAINS(err.msg, "do not fit in the context");
    CHECK_EQ_INT(model_ctx_pos(c), 0);
    CHECK_EQ_INT(model_eval(c, TOKS, 5, NULL, false, &err), 0);
    CHECK_EQ_INT(model_eval(c, TOKS, 4, NULL, false, &err), -1);
    CHECK_CONTAINS(err.msg, "5 of 8 positions");
    CHECK_EQ_INT(model_ctx_pos(c), 5);
    int32_t bad[2] = {1, 999999};
    CHECK_EQ_INT(model_eval(c, bad, 2, NULL, false, &err), -1);
    CHECK_CONTAINS(err.msg, "id 999999");
    CHECK_EQ_INT(model_ctx_pos(c), 5);
    model_ctx_free(c);
    CHECK_EQ_INT(model_ctx_new(&c, M1, 0, &err), -1);
    CHECK_CONTAINS(err.msg, "context size 0");
    CHECK(c == NULL);
}

static int write_fake(const char *path, const char *arch, int with_meta) {
    gguf_writer_t *w = gguf_writer_new();
    tl_err_t err;
    int rc = gguf_writer_set_str(w, "general.architecture", arch, &err);
    char key[64];
    if (with_meta) {
        const char *k[] = {"block_count", "embedding_length", "feed_forward_length", "attention.head_count"};
        uint32_t v[] = {1, 64, 128, 2};
        for (int i = 0; i < 4; i++) {
            snprintf(key, sizeof key, "%s.%s", arch, k[i]);
            rc |= gguf_writer_set_u32(w, key, v[i], &err);
        }
        snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
        rc |= gguf_writer_set_f32(w, key, 1e-5f, &err);
        snprintf(key, sizeof key, "%s.vocab_size", arch);
        rc |= gguf_writer_set_u32(w, key, 100, &err);
    }
    rc |= gguf_writer_write(w, path, &err);
    gguf_writer_free(w);
    return rc;
}

TEST(load_errors) {
    model_t *m;
    tl_err_t err;
    char path[] = "/tmp/tl_test_model_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK_EQ_INT(write_fake(path, "gpt2", 1), 0);
    CHECK_EQ_INT(model_load(&m, path, 1, &err), -1);
    CHECK_CONTAINS(err.msg, "unsupported architecture 'gpt2'");
    CHECK_EQ_INT(write_fake(path, "llama", 0), 0);
    CHECK_EQ_INT(model_load(&m, path, 1, &err), -1);
    CHECK_CONTAINS(err.msg, "llama.block_count");
    CHECK_EQ_INT(write_fake(path, "llama", 1), 0);
    CHECK_EQ_INT(model_load(&m, path, 1, &err), -1);
    CHECK_CONTAINS(err.msg, "tensor token_embd.weight: missing");
    unlink(path);
    CHECK_EQ_INT(model_load(&m, "/nonexistent/model.gguf", 1, &err), -1);
    CHECK_CONTAINS(err.msg, "/nonexistent/model.gguf");
}

int main(void) {
    tl_err_t err;
    if (model_load(&M1, model_path(), 1, &err) || model_load(&M2, model_path(), 2, &err)) {
        printf("cannot load %s: %s\n", model_path(), err.msg);
        printf("RESULT passed=0 failed=1\n");
        return 1;
    }
    RUN(config_from_metadata);
    RUN(chunked_equals_one_pass);
    RUN(threads_are_deterministic);
    RUN(kernel_levels_agree);
    RUN(score_labels_vs_full_eval);
    RUN(output_packed_on_first_use);
    RUN(eval_errors);
    RUN(load_errors);
    model_free(M1);
    model_free(M2);
    return tl_test_summary("test_model");
}
