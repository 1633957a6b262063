/* Batched label scoring on the default model: one pass over several inputs of
 * mixed lengths gives the labels and probabilities of classifying each input
 * alone; passes split by the token limit agree too; the full-vocabulary
 * log-probabilities agree with model/score.h on the whole prompt; labels of
 * several tokens (a trie) agree with score_labels; bad input fails only its
 * own item; model_batch_eval rejects bad tokens and parents; a pass that
 * computes only the output rows' last block equals the full pass bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "model/batch.h"
#include "model/model.h"
#include "model/score.h"
#include "quant/matmul_amx.h"
#include "quant/quantize_model.h"
#include "quant/types.h"
#include "serve/engine.h"
#include "tl_test.h"

static const char *model_path(void) {
    const char *p = getenv("TASKLM_MODEL");
    return p ? p : "models/smollm2-135m-instruct-q4_1.gguf";
}

static task_t *T, *T_MULTI;
static const char *PAIRS[][2] = {
    {"Ravi Kumar", "Rvi Kumar"}, {"Ahmed Khan", "Chen Li"}, {"Maria del Carmen Lopez Garcia", "M. Lopez"},
    {"Du Jiwoo", "Jiwoo Du"},    {"Jose", "Jos\xc3\xa9 Mar\xc3\xad" "a Fern\xc3\xa1ndez-Ortega y Castillo"},
    {"1", "-"},                  {"Ramesh Gupta", "Renuka Gupta"},
};
enum { NP = sizeof PAIRS / sizeof PAIRS[0] };

static void check_batch(task_t *t, int max_batch, int max_tokens) {
    tl_err_t err = {{0}};
    serve_engine_t *e;
    serve_engine_opts_t o = {.model_path = model_path(), .task = t, .threads = 2, .max_batch = max_batch,
                             .max_batch_tokens = max_tokens};
    CHECK_EQ_INT(serve_engine_new(&e, &o, &err), 0);
    if (!e) {
        printf("  %s\n", err.msg);
        return;
    }
    serve_item_t items[NP];
    memset(items, 0, sizeof items);
    for (int i = 0; i < NP; i++) items[i].fields = PAIRS[i];
    CHECK_EQ_INT(serve_engine_classify_many(e, items, NP, 0), 0);
    for (int i = 0; i < NP; i++) {
        double probs[TASK_MAX_LABELS], lp[TASK_MAX_LABELS];
        int label = -1;
        serve_cost_t cost;
        CHECK_EQ_INT(serve_engine_classify(e, PAIRS[i], probs, lp, &label, &cost, &err), 0);
        CHECK_EQ_INT(items[i].rc, 0);
        CHECK_EQ_INT(items[i].label, label);
        for (size_t k = 0; k < t->n_labels; k++) CHECK_NEAR(items[i].probs[k], probs[k], 1e-4);
        CHECK_EQ_INT(items[i].cost.n_evaluated, cost.n_evaluated);
        CHECK_EQ_INT(cost.prefix_fallback, 0);
        CHECK(cost.n_evaluated < cost.n_prompt);
    }
    serve_engine_free(e);
}

TEST(batch_equals_single) { check_batch(T, 16, 0); }
TEST(batch_split_by_tokens) { check_batch(T, 3, 40); }
TEST(multi_token_labels_trie) { check_batch(T_MULTI, 16, 0); }

/* The fast path's full-vocabulary log-probabilities against score_labels on
 * the whole prompt in an ordinary context. */
TEST(logprob_matches_score_labels) {
    task_t *tasks[2] = {T, T_MULTI};
    tl_err_t err = {{0}};
    model_t *m;
    CHECK_EQ_INT(model_load(&m, model_path(), 2, &err), 0);
    for (int ti = 0; ti < 2; ti++) {
        task_t *t = tasks[ti];
        serve_engine_t *e;
        serve_engine_opts_t o = {.model_path = model_path(), .task = t, .threads = 2};
        CHECK_EQ_INT(serve_engine_new(&e, &o, &err), 0);
        const tokenizer_t *tok = model_tokenizer(m);
        int32_t *lab[TASK_MAX_LABELS];
        int lens[TASK_MAX_LABELS];
        for (size_t k = 0; k < t->n_labels; k++) {
            char buf[80];
            size_t n;
            task_render_label(t, k, buf, sizeof buf);
            tokenizer_encode(tok, buf, strlen(buf), 0, &lab[k], &n, &err);
            lens[k] = (int)n;
        }
        for (int i = 0; i < 2; i++) {
            char *text;
            int32_t *ids;
            size_t n;
            task_render_prompt(t, PAIRS[i], &text, &err);
            tokenizer_encode(tok, text, strlen(text), tokenizer_wants_bos(tok) ? TOK_ADD_BOS : 0, &ids, &n, &err);
            model_ctx_t *c;
            CHECK_EQ_INT(model_ctx_new(&c, m, 256, &err), 0);
            double ref[TASK_MAX_LABELS], got[TASK_MAX_LABELS], probs[TASK_MAX_LABELS];
            CHECK_EQ_INT(score_labels(c, ids, (int)n, (const int32_t *const *)lab, lens, (int)t->n_labels, ref, &err), 0);
            int label;
            CHECK_EQ_INT(serve_engine_classify(e, PAIRS[i], probs, got, &label, NULL, &err), 0);
            for (size_t k = 0; k < t->n_labels; k++) CHECK_NEAR(got[k], ref[k], 1e-4);
            model_ctx_free(c);
            free(ids);
            free(text);
        }
        for (size_t k = 0; k < t->n_labels; k++) free(lab[k]);
        serve_engine_free(e);
    }
    model_free(m);
}

TEST(bad_item_fails_alone) {
    tl_err_t err = {{0}};
    serve_engine_t *e;
    serve_engine_opts_t o = {.model_path = model_path(), .task = T, .threads = 1, .max_field_bytes = 8};
    CHECK_EQ_INT(serve_engine_new(&e, &o, &err), 0);
    char longname[200];
    memset(longname, 'x', sizeof longname - 1);
    for (int i = 0; i < 199; i += 2) longname[i] = ' ';
    longname[199] = '\0';
    const char *bad[2] = {longname, longname};
    serve_item_t items[3];
    memset(items, 0, sizeof items);
    items[0].fields = PAIRS[0];
    items[1].fields = bad;
    items[2].fields = PAIRS[1];
    CHECK_EQ_INT(serve_engine_classify_many(e, items, 3, 0), 1);
    CHECK_EQ_INT(items[0].rc, 0);
    CHECK_EQ_INT(items[1].rc, -1);
    CHECK_CONTAINS(items[1].err.msg, "does not fit");
    CHECK_EQ_INT(items[2].rc, 0);
    serve_engine_free(e);
}

TEST(batch_eval_errors) {
    tl_err_t err = {{0}};
    model_t *m;
    CHECK_EQ_INT(model_load(&m, model_path(), 1, &err), 0);
    model_ctx_t *c;
    model_batch_t *b;
    CHECK_EQ_INT(model_ctx_new(&c, m, 4, &err), 0);
    CHECK_EQ_INT(model_batch_new(&b, m, 4, 4, 4, &err), 0);
    model_batch_tok_t bad_id[1] = {{-3, -1, 0}};
    CHECK_EQ_INT(model_batch_eval(b, c, bad_id, 1, &err), -1);
    CHECK_CONTAINS(err.msg, "out of range");
    model_batch_tok_t bad_parent[2] = {{1, -1, 0}, {2, 1, 0}};
    CHECK_EQ_INT(model_batch_eval(b, c, bad_parent, 2, &err), -1);
    CHECK_CONTAINS(err.msg, "parent");
    model_batch_tok_t bad_prefix[1] = {{1, -1, 3}}; /* the context holds no positions */
    CHECK_EQ_INT(model_batch_eval(b, c, bad_prefix, 1, &err), -1);
    CHECK_CONTAINS(err.msg, "prefix");
    model_batch_tok_t ok[5] = {{1, -1, 0}, {2, 0, 0}, {3, 1, 0}, {4, 2, 0}, {5, 3, 0}};
    CHECK_EQ_INT(model_batch_eval(b, c, ok, 5, &err), -1);
    CHECK_CONTAINS(err.msg, "exceed");
    CHECK_EQ_INT(model_batch_eval(b, c, ok, 4, &err), 0);
    int row = 4;
    float lg[8];
    CHECK_EQ_INT(model_batch_logits(b, &row, 1, NULL, lg, &err), -1);
    model_batch_free(b);
    model_ctx_free(c);
    model_free(m);
}


/* model_batch_eval_rows (last block only for the rows that need outputs)
 * gives those rows the logits of model_batch_eval bit for bit, over a cached
 * prefix, with two sequences and a branch; other rows' logits are refused. */
TEST(eval_rows_equals_full_pass) {
    tl_err_t err = {{0}};
    model_t *m;
    CHECK_EQ_INT(model_load(&m, model_path(), 2, &err), 0);
    model_ctx_t *c;
    model_batch_t *b;
    const int32_t pre[6] = {1, 504, 1234, 42, 77, 900};
    CHECK_EQ_INT(model_ctx_new(&c, m, 8, &err), 0);
    CHECK_EQ_INT(model_eval(c, pre, 6, NULL, false, &err), 0);
    CHECK_EQ_INT(model_batch_new(&b, m, 16, 8, 6, &err), 0);
    /* sequence A: 4 tokens after all 6 prefix positions; B: 3 after 5; a branch off A's second token */
    model_batch_tok_t toks[9] = {{11, -1, 6}, {12, 0, 6}, {13, 1, 6}, {14, 2, 6}, {21, -1, 5},
                                 {22, 4, 5},  {23, 5, 5}, {31, 1, 6}, {32, 7, 6}};
    int rows[4] = {3, 6, 8, 6}; /* a repeated row is computed once */
    size_t V = model_config(m)->n_vocab;
    float *full = malloc(sizeof(float) * 4 * V), *part = malloc(sizeof(float) * 4 * V);
    CHECK_EQ_INT(model_batch_eval(b, c, toks, 9, &err), 0);
    CHECK_EQ_INT(model_batch_logits(b, rows, 4, NULL, full, &err), 0);
    CHECK_EQ_INT(model_batch_eval_rows(b, c, toks, 9, rows, 4, &err), 0);
    CHECK_EQ_INT(model_batch_logits(b, rows, 4, NULL, part, &err), 0);
    CHECK(!memcmp(full, part, sizeof(float) * 4 * V));
    int other = 2;
    CHECK_EQ_INT(model_batch_logits(b, &other, 1, NULL, part, &err), -1);
    CHECK_CONTAINS(err.msg, "did not compute");
    int bad = 9;
    CHECK_EQ_INT(model_batch_eval_rows(b, c, toks, 9, &bad, 1, &err), -1);
    free(full);
    free(part);
    model_batch_free(b);
    model_ctx_free(c);
    model_free(m);
}

/* The AMX path (opts.amx, Q8_0 weights) on a Q8_0 copy of the model: one
 * pass over all inputs equals classifying each alone bit for bit; against the
 * default kernels the probabilities move by rounding only (within 0.1, the
 * spread between the default kernels' CPU levels). */
TEST(amx_engine_q8_0) {
    if (!mm_amx_available()) {
        printf("  (no AMX-INT8 on this CPU: skipped)\n");
        return;
    }
    tl_err_t err = {{0}};
    char dir[] = "/tmp/tl-amx-XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/q8_0.gguf", dir);
    quantize_opts_t qo = {.type = GGML_TYPE_Q8_0, .n_threads = 2};
    quantize_report_t rep;
    CHECK_EQ_INT(quantize_model_file(model_path(), path, &qo, &rep, &err), 0);
    quantize_report_free(&rep);
    serve_engine_t *amx, *plain;
    serve_engine_opts_t o = {.model_path = path, .task = T, .threads = 2, .amx = 1};
    CHECK_EQ_INT(serve_engine_new(&amx, &o, &err), 0);
    o.amx = 0;
    CHECK_EQ_INT(serve_engine_new(&plain, &o, &err), 0);
    serve_item_t a[NP], p[NP];
    memset(a, 0, sizeof a);
    memset(p, 0, sizeof p);
    for (int i = 0; i < NP; i++) a[i].fields = p[i].fields = PAIRS[i];
    CHECK_EQ_INT(serve_engine_classify_many(amx, a, NP, 0), 0);
    CHECK_EQ_INT(serve_engine_classify_many(plain, p, NP, 0), 0);
    double worst = 0;
    for (int i = 0; i < NP; i++) {
        double probs[TASK_MAX_LABELS];
        int label = -1;
        CHECK_EQ_INT(serve_engine_classify(amx, PAIRS[i], probs, NULL, &label, NULL, &err), 0);
        CHECK_EQ_INT(a[i].label, label);
        CHECK(!memcmp(a[i].probs, probs, sizeof(double) * T->n_labels));
        for (size_t k = 0; k < T->n_labels; k++) {
            double d = fabs(a[i].probs[k] - p[i].probs[k]);
            if (d > worst) worst = d;
        }
    }
    CHECK(worst < 0.1);
    printf("  AMX vs default kernels: largest probability difference %.2e\n", worst);
    serve_engine_free(amx);
    serve_engine_free(plain);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    if (access(model_path(), R_OK) != 0) {
        printf("model %s not found\n", model_path());
        return 1;
    }
    tl_err_t err = {{0}};
    if (task_load(&T, "tasks/namematch", &err) || task_load(&T_MULTI, "tasks/namematch", &err)) {
        printf("%s\n", err.msg);
        return 1;
    }
    /* labels of several tokens sharing prefixes: " yes indeed", " yes", " no way" */
    T_MULTI->n_labels = 3;
    snprintf(T_MULTI->labels[0], TASK_NAME_MAX, "yes indeed");
    snprintf(T_MULTI->labels[1], TASK_NAME_MAX, "yes");
    snprintf(T_MULTI->labels[2], TASK_NAME_MAX, "no way at all");
    RUN(batch_equals_single);
    RUN(batch_split_by_tokens);
    RUN(multi_token_labels_trie);
    RUN(logprob_matches_score_labels);
    RUN(bad_item_fails_alone);
    RUN(batch_eval_errors);
    RUN(eval_rows_equals_full_pass);
    RUN(amx_engine_q8_0);
    task_free(T);
    task_free(T_MULTI);
    return tl_test_summary("test_serve_batch");
}
