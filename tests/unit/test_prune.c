/* Structured pruning on the default model file: a K=0 prune gives the input's
 * logits exactly; a file with block j removed gives exactly the logits of our
 * own forward pass with block j skipped (a model view); the traced pass agrees
 * with prefix views; the pruned file keeps metadata and tensor bytes; ranking
 * order and errors; cosine-only scoring equals the cosine of full scoring,
 * leaves the loss NaN, and reports every forward pass to the progress hook. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/gguf.h"
#include "io/gguf_prune.h"
#include "model/layerwise.h"
#include "model/model.h"
#include "model/prune_score.h"
#include "tl_test.h"

static const char *model_path(void) {
    const char *p = getenv("TASKLM_MODEL");
    return p ? p : "models/smollm2-135m-instruct-q4_1.gguf";
}

static model_t *M;
static const int32_t TOKS[8] = {504, 3575, 282, 4649, 314, 1345, 30, 216};
static char tmpdir[] = "/tmp/tl_test_prune_XXXXXX";

static float *logits_of(const model_t *m) {
    const model_config_t *cf = model_config(m);
    float *lg = malloc(sizeof(float) * cf->n_vocab * 8);
    model_ctx_t *c = NULL;
    tl_err_t err = {{0}};
    if (!lg || model_ctx_new(&c, m, 16, &err) || model_eval(c, TOKS, 8, lg, true, &err)) {
        printf("  eval: %s\n", err.msg);
        free(lg);
        lg = NULL;
    }
    model_ctx_free(c);
    return lg;
}

/* Writes the model without the blocks where drop[l], loads it, returns its logits. */
static float *pruned_logits(const bool *keep, const char *name, uint32_t *n_layer_out) {
    const model_config_t *cf = model_config(M);
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    tl_err_t err = {{0}};
    if (gguf_prune_blocks(model_gguf(M), keep, cf->n_layer, path, &err)) {
        printf("  prune: %s\n", err.msg);
        return NULL;
    }
    model_t *p = NULL;
    if (model_load(&p, path, 1, &err)) {
        printf("  load: %s\n", err.msg);
        return NULL;
    }
    *n_layer_out = model_config(p)->n_layer;
    float *lg = logits_of(p);
    model_free(p);
    unlink(path);
    return lg;
}

TEST(k0_is_identity) {
    const model_config_t *cf = model_config(M);
    bool keep[256];
    for (uint32_t l = 0; l < cf->n_layer; l++) keep[l] = true;
    uint32_t nl = 0;
    float *a = logits_of(M), *b = pruned_logits(keep, "k0.gguf", &nl);
    CHECK(a && b);
    CHECK(nl == cf->n_layer);
    if (a && b) CHECK(!memcmp(a, b, sizeof(float) * cf->n_vocab * 8));
    free(a);
    free(b);
}

TEST(removed_block_equals_skipped_block) {
    const model_config_t *cf = model_config(M);
    int js[3] = {0, (int)cf->n_layer / 2, (int)cf->n_layer - 1};
    for (int r = 0; r < 3; r++) {
        bool keep[256];
        for (uint32_t l = 0; l < cf->n_layer; l++) keep[l] = (int)l != js[r];
        model_t *v = NULL;
        tl_err_t err = {{0}};
        CHECK(!model_view_new(&v, M, keep, &err));
        uint32_t nl = 0;
        float *a = v ? logits_of(v) : NULL, *b = pruned_logits(keep, "skip.gguf", &nl);
        CHECK(a && b);
        CHECK(nl == cf->n_layer - 1);
        if (a && b) CHECK(!memcmp(a, b, sizeof(float) * cf->n_vocab * 8));
        /* and skipping a block does change the output */
        float *full = logits_of(M);
        if (a && full) CHECK(memcmp(a, full, sizeof(float) * cf->n_vocab * 8) != 0);
        free(full);
        free(a);
        free(b);
        model_view_free(v);
    }
}

TEST(two_blocks_removed_renumbered) {
    const model_config_t *cf = model_config(M);
    bool keep[256];
    for (uint32_t l = 0; l < cf->n_layer; l++) keep[l] = l != 3 && l != 7;
    char path[256];
    snprintf(path, sizeof path, "%s/two.gguf", tmpdir);
    tl_err_t err = {{0}};
    CHECK(!gguf_prune_blocks(model_gguf(M), keep, cf->n_layer, path, &err));
    gguf_file_t *g = NULL;
    CHECK(!gguf_open(&g, path, &err));
    if (!g) return;
    const gguf_file_t *src = model_gguf(M);
    uint32_t bc = 0;
    CHECK(!gguf_get_u32(g, "llama.block_count", &bc, &err) && bc == cf->n_layer - 2);
    CHECK(gguf_n_kv(g) == gguf_n_kv(src));
    /* blk.3 of the pruned file is blk.4 of the source, byte for byte; blk.6 is blk.8 */
    const gguf_tensor_t *a = gguf_find_tensor(g, "blk.3.ffn_down.weight"), *b = gguf_find_tensor(src, "blk.4.ffn_down.weight");
    CHECK(a && b && a->type == b->type && a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes));
    a = gguf_find_tensor(g, "blk.6.attn_q.weight"), b = gguf_find_tensor(src, "blk.8.attn_q.weight");
    CHECK(a && b && a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes));
    char last[64];
    snprintf(last, sizeof last, "blk.%u.attn_norm.weight", cf->n_layer - 2);
    CHECK(gguf_find_tensor(g, last) == NULL);
    uint64_t per_block = 0;
    for (uint64_t i = 0; i < gguf_n_tensors(src); i++) per_block += !strncmp(gguf_tensor(src, i)->name, "blk.0.", 6);
    CHECK(per_block > 0 && gguf_n_tensors(g) == gguf_n_tensors(src) - 2 * per_block);
    const gguf_tensor_t *e1 = gguf_find_tensor(g, "token_embd.weight"), *e2 = gguf_find_tensor(src, "token_embd.weight");
    CHECK(e1 && e2 && e1->nbytes == e2->nbytes && !memcmp(e1->data, e2->data, e1->nbytes));
    gguf_close(g);
    unlink(path);
}

TEST(trace_matches_prefix_views) {
    const model_config_t *cf = model_config(M);
    size_t E = cf->n_embd, L = cf->n_layer;
    float *tr = malloc(sizeof(float) * (L + 1) * 8 * E);
    model_ctx_t *c = NULL;
    tl_err_t err = {{0}};
    CHECK(tr && !model_ctx_new(&c, M, 16, &err));
    CHECK(!model_eval_trace(c, TOKS, 8, tr, &err));
    int depths[3] = {0, 5, (int)L};
    for (int r = 0; r < 3; r++) {
        bool keep[256];
        for (size_t l = 0; l < L; l++) keep[l] = (int)l < depths[r];
        model_t *v = NULL;
        model_ctx_t *cv = NULL;
        CHECK(!model_view_new(&v, M, keep, &err));
        CHECK(!model_ctx_new(&cv, v, 16, &err));
        CHECK(!model_eval(cv, TOKS, 8, NULL, false, &err));
        const float *h = model_ctx_hidden(cv, 8);
        CHECK(h && !memcmp(h, tr + (size_t)depths[r] * 8 * E, sizeof(float) * 8 * E));
        model_ctx_free(cv);
        model_view_free(v);
    }
    /* the trace is off again: a second plain eval leaves the buffer alone */
    tr[0] = 12345.0f;
    model_ctx_truncate(c, 0);
    CHECK(!model_eval(c, TOKS, 8, NULL, false, &err));
    CHECK(tr[0] == 12345.0f);
    model_ctx_free(c);
    free(tr);
}

TEST(rank_order) {
    prune_score_t s[5] = {{0.5, 3}, {0.1, -1}, {0.3, 0.2}, {0.1, 4}, {0.9, 0.2}};
    int o[5];
    prune_rank_blocks(s, 5, 0, o);
    int want_c[5] = {1, 3, 2, 0, 4};
    CHECK(!memcmp(o, want_c, sizeof o));
    prune_rank_blocks(s, 5, 1, o);
    int want_l[5] = {1, 2, 4, 0, 3};
    CHECK(!memcmp(o, want_l, sizeof o));
}

typedef struct {
    long calls, last, total;
    int monotonic;
} prog_count_t;

static void count_progress(void *ctx, long done, long total) {
    prog_count_t *p = ctx;
    if (done != p->last + 1) p->monotonic = 0;
    p->calls++;
    p->last = done;
    p->total = total;
}

TEST(cosine_only_scores_and_progress) {
    const model_config_t *cf = model_config(M);
    int L = (int)cf->n_layer;
    const int32_t *prompts[1] = {TOKS};
    int plen[1] = {4}, gold[1] = {1};
    static const int32_t lab0[1] = {30}, lab1[1] = {216};
    const int32_t *labs[2] = {lab0, lab1};
    int llen[2] = {1, 1};
    prune_calib_t cal = {.prompts = prompts, .prompt_lens = plen, .gold = gold, .n_prompts = 1,
                         .labels = labs, .label_lens = llen, .n_labels = 2};
    prune_score_t *full = calloc((size_t)L, sizeof *full), *cos = calloc((size_t)L, sizeof *cos);
    prog_count_t pf = {.monotonic = 1}, pc = {.monotonic = 1};
    tl_err_t err = {{0}};
    double base = 0, base_c = 0;
    cal.progress = count_progress;
    cal.progress_ctx = &pf;
    CHECK(full && cos && !prune_score_blocks(M, &cal, full, &base, &err));
    CHECK(pf.monotonic && pf.calls == L + 2 && pf.last == L + 2 && pf.total == L + 2);
    cal.skip_loss = 1;
    cal.progress_ctx = &pc;
    CHECK(!prune_score_blocks(M, &cal, cos, &base_c, &err));
    CHECK(pc.monotonic && pc.calls == 1 && pc.total == 1);
    CHECK(isfinite(base) && isnan(base_c));
    int same = 1;
    for (int l = 0; l < L; l++) same &= cos[l].cosine == full[l].cosine && isnan(cos[l].loss_increase) && isfinite(full[l].loss_increase);
    CHECK(same);
    free(full);
    free(cos);
}

TEST(prune_errors) {
    const model_config_t *cf = model_config(M);
    bool keep[256] = {false};
    char path[256];
    snprintf(path, sizeof path, "%s/none.gguf", tmpdir);
    tl_err_t err = {{0}};
    CHECK(gguf_prune_blocks(model_gguf(M), keep, cf->n_layer, path, &err) != 0);
    CHECK(strstr(err.msg, "every block") != NULL);
    CHECK(access(path, F_OK) != 0);
    keep[0] = true;
    CHECK(gguf_prune_blocks(model_gguf(M), keep, cf->n_layer + 1, path, &err) != 0);
    CHECK(strstr(err.msg, "block_count") != NULL);
}

int main(void) {
    tl_err_t err = {{0}};
    if (model_load(&M, model_path(), 1, &err)) {
        printf("cannot load %s: %s\nRESULT passed=0 failed=1\n", model_path(), err.msg);
        return 1;
    }
    if (!mkdtemp(tmpdir)) {
        printf("mkdtemp failed\nRESULT passed=0 failed=1\n");
        return 1;
    }
    RUN(k0_is_identity);
    RUN(removed_block_equals_skipped_block);
    RUN(two_blocks_removed_renumbered);
    RUN(trace_matches_prefix_views);
    RUN(rank_order);
    RUN(cosine_only_scores_and_progress);
    RUN(prune_errors);
    model_free(M);
    rmdir(tmpdir);
    return tl_test_summary("test_prune");
}
