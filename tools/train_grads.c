/* train_grads: one forward/backward pass of the LoRA trainer on a given batch,
 * printing the loss and every adapter tensor with its gradient as JSON (the
 * PyTorch gradient check in tests/peer/test_grad_torch.py reads it).
 *
 * usage: train_grads MODEL BATCH_FILE [--rank R] [--alpha A] [--targets LIST]
 *                    [--seed S] [--b-std X] [--threads T] [--level scalar|avx2|avx512] [--share-prefix 0|1]
 * BATCH_FILE: one sequence per line, "prompt ids | answer ids" (space separated).
 * --b-std X draws B ~ N-ish(0, X) (uniform with that standard deviation) so
 * that the gradient of A is not identically zero as it is at B = 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "model/model.h"
#include "model/model_extra.h"
#include "train/lora.h"
#include "train/tgraph.h"

static int die(const char *msg) {
    fprintf(stderr, "train_grads: %s\n", msg);
    return 1;
}

static cJSON *float_array(const float *x, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)x[i]));
    return a;
}

int main(int argc, char **argv) {
    if (argc < 3) return die("usage: train_grads MODEL BATCH_FILE [--rank R] [--alpha A] [--targets L] [--seed S] "
                             "[--b-std X] [--threads T] [--level L]");
    int rank = 4, threads = 1, share = 1;
    float alpha = 8.0f, b_std = 0.0f;
    const char *targets = "all", *level = NULL;
    unsigned long long seed = 1;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rank")) rank = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--alpha")) alpha = strtof(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "--targets")) targets = argv[i + 1];
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--b-std")) b_std = strtof(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--level")) level = argv[i + 1];
        else if (!strcmp(argv[i], "--share-prefix")) share = atoi(argv[i + 1]);
        else return die("unknown option");
    }
    tl_err_t err = {{0}};
    model_t *m;
    if (model_load(&m, argv[1], threads, &err)) return die(err.msg);
    if (level) {
        int lv = cpu_level_from_name(level);
        if (lv < 0) return die("bad --level");
        model_set_cpu_level(m, (cpu_level_t)lv);
    }
    unsigned mask;
    lora_t *lora;
    if (lora_targets_parse(targets, &mask, &err) ||
        lora_new(&lora, model_config(m), rank, alpha, mask, seed, true, &err))
        return die(err.msg);
    uint64_t s = seed ^ 0x5eedULL;
    for (int i = 0; i < lora->n_layer * LORA_N_TARGETS; i++) {
        lora_mat_t *mt = &lora->mats[i];
        if (!mt->a) continue;
        for (long k = 0; k < (long)mt->n_out * mt->rank; k++)
            mt->b[k] = (2.0f * lora_rand_unit(&s) - 1.0f) * b_std * 1.7320508f;
    }
    FILE *f = fopen(argv[2], "r");
    if (!f) return die("cannot open the batch file");
    int32_t *ids = malloc(sizeof(int32_t) * 65536);
    train_seq_t seqs[256];
    int n_seqs = 0, n_ids = 0, n_answer = 0;
    char line[65536];
    while (fgets(line, sizeof line, f) && n_seqs < 256) {
        train_seq_t *q = &seqs[n_seqs];
        q->tokens = ids + n_ids;
        q->n_prompt = -1;
        int n = 0;
        for (char *p = line;;) {
            while (*p == ' ' || *p == '\t') p++;
            if (*p == '|') {
                q->n_prompt = n;
                p++;
                continue;
            }
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p) break;
            ids[n_ids + n++] = (int32_t)v;
            p = end;
        }
        if (n == 0) continue;
        if (q->n_prompt < 0) q->n_prompt = n;
        q->n_tokens = n;
        n_ids += n;
        n_answer += n - q->n_prompt;
        n_seqs++;
    }
    fclose(f);
    if (!n_seqs || !n_answer) return die("no sequences with answer tokens");
    train_graph_t *g;
    if (train_graph_new(&g, m, lora, n_ids, &err)) return die(err.msg);
    train_graph_set_prefix_sharing(g, share != 0);
    double *lp = malloc(sizeof(double) * (size_t)n_seqs);
    if (train_graph_run(g, seqs, n_seqs, true, 1.0f / (float)n_answer, lp, NULL, &err)) return die(err.msg);
    double loss = 0.0;
    for (int i = 0; i < n_seqs; i++) loss -= lp[i];
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "loss", loss / n_answer);
    cJSON_AddNumberToObject(root, "n_answer", n_answer);
    cJSON_AddNumberToObject(root, "scale", lora->scale);
    cJSON *ts = cJSON_AddArrayToObject(root, "tensors");
    for (int l = 0; l < lora->n_layer; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            lora_mat_t *mt = lora_mat(lora, l, (lora_target_t)t);
            if (!mt) continue;
            for (int ab = 0; ab < 2; ab++) {
                char name[96];
                snprintf(name, sizeof name, "blk.%d.%s.weight.lora_%c", l, lora_target_tensor((lora_target_t)t),
                         ab ? 'b' : 'a');
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "name", name);
                size_t n = ab ? (size_t)mt->n_out * mt->rank : (size_t)mt->rank * mt->n_in;
                cJSON *ne = cJSON_AddArrayToObject(o, "ne");
                cJSON_AddItemToArray(ne, cJSON_CreateNumber(ab ? mt->rank : mt->n_in));
                cJSON_AddItemToArray(ne, cJSON_CreateNumber(ab ? mt->n_out : mt->rank));
                cJSON_AddItemToObject(o, "value", float_array(ab ? mt->b : mt->a, n));
                cJSON_AddItemToObject(o, "grad", float_array(ab ? mt->gb : mt->ga, n));
                cJSON_AddItemToArray(ts, o);
            }
        }
    char *txt = cJSON_PrintUnformatted(root);
    puts(txt);
    free(txt);
    cJSON_Delete(root);
    free(lp);
    free(ids);
    train_graph_free(g);
    lora_free(lora);
    model_free(m);
    return 0;
}
