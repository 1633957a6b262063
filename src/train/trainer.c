/* The LoRA trainer loop (see trainer.h). */
#include "train/trainer.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "io/atomic_file.h"
#include "io/csv.h"
#include "model/model.h"
#include "task/calib.h"
#include "task/metrics.h"
#include "task/task.h"
#include "train/lora.h"
#include "train/ops.h"
#include "train/tgraph.h"

void trainer_opts_default(trainer_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->rank = 16;
    o->alpha = 32.0f;
    o->targets = 0xfu;
    o->epochs = 3;
    o->lr = 2e-4f;
    o->weight_decay = 0.0f;
    o->clip = 1.0f;
    o->warmup_steps = -1;
    o->sched = SCHED_LINEAR;
    o->batch = 16;
    o->eval_every = 20;
    o->eval_limit = -1;
    o->train_limit = -1;
    o->seed = 42;
    o->log_every = 1;
}

typedef struct {
    int32_t *prompt;
    int n_prompt, label;
} example_t;

typedef struct {
    example_t *ex;
    long n;
} dataset_t;

static void dataset_free(dataset_t *d) {
    for (long i = 0; i < d->n; i++) free(d->ex[i].prompt);
    free(d->ex);
    memset(d, 0, sizeof *d);
}

static int norm_label(const task_t *t, const char *s) {
    char buf[TASK_NAME_MAX];
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
    if (n >= sizeof buf) return -1;
    for (size_t i = 0; i < n; i++) buf[i] = (char)tolower((unsigned char)s[i]);
    buf[n] = '\0';
    return task_label_index(t, buf);
}

/* Reads labelled rows: renders and tokenizes each prompt. */
static int load_rows(dataset_t *d, const char *path, const task_t *task, const tokenizer_t *tok, long limit,
                     tl_err_t *err) {
    memset(d, 0, sizeof *d);
    csv_reader_t *r;
    if (csv_open(&r, path, err)) return -1;
    int cols[TASK_MAX_FIELDS], lc = csv_column_index(r, task->label_column);
    for (size_t i = 0; i < task->n_fields; i++)
        if ((cols[i] = csv_column_index(r, task->field_columns[i])) < 0) {
            csv_close(r);
            return tl_fail(err, "%s: missing column '%s'", path, task->field_columns[i]);
        }
    if (lc < 0) {
        csv_close(r);
        return tl_fail(err, "%s: missing column '%s'", path, task->label_column);
    }
    int flags = TOK_PARSE_SPECIAL | (tokenizer_wants_bos(tok) ? TOK_ADD_BOS : 0);
    long cap = 0;
    int rc = -1;
    for (;;) {
        if (limit >= 0 && d->n >= limit) break;
        csv_row_t row;
        int st = csv_next(r, &row, err);
        if (st == CSV_EOF) break;
        if (st != CSV_ROW) goto done;
        const char *fields[TASK_MAX_FIELDS];
        for (size_t i = 0; i < task->n_fields; i++) {
            fields[i] = row.fields[cols[i]];
            if (strlen(fields[i]) > task->max_field_bytes) {
                tl_fail(err, "%s:%zu: field '%s' is longer than %zu bytes", path, row.line, task->field_columns[i],
                        task->max_field_bytes);
                goto done;
            }
        }
        int lab = norm_label(task, row.fields[lc]);
        if (lab < 0) {
            tl_fail(err, "%s:%zu: label '%s' is not one of the task's labels", path, row.line, row.fields[lc]);
            goto done;
        }
        char *text;
        if (task_render_prompt(task, fields, &text, err)) {
            tl_fail_prefix(err, "%s:%zu", path, row.line);
            goto done;
        }
        if (d->n == cap) {
            cap = cap ? cap * 2 : 256;
            example_t *nx = realloc(d->ex, sizeof *nx * (size_t)cap);
            if (!nx) {
                free(text);
                tl_fail(err, "%s: out of memory", path);
                goto done;
            }
            d->ex = nx;
        }
        example_t *e = &d->ex[d->n];
        size_t n;
        int bad = tokenizer_encode(tok, text, strlen(text), flags, &e->prompt, &n, err);
        free(text);
        if (bad) {
            tl_fail_prefix(err, "%s:%zu", path, row.line);
            goto done;
        }
        if (n == 0) {
            free(e->prompt);
            tl_fail(err, "%s:%zu: the prompt has no tokens", path, row.line);
            goto done;
        }
        e->n_prompt = (int)n;
        e->label = lab;
        d->n++;
    }
    if (d->n == 0) {
        tl_fail(err, "%s: no data rows", path);
        goto done;
    }
    rc = 0;
done:
    csv_close(r);
    if (rc) dataset_free(d);
    return rc;
}

typedef struct {
    const trainer_opts_t *o;
    FILE *progress;
    model_t *m;
    task_t *task;
    lora_t *lora;
    adamw_t *opt;
    train_graph_t *g;
    dataset_t train, eval;
    int n_labels;
    size_t train_counts[TASK_MAX_LABELS]; /* training rows per label (after any oversampling) */
    int32_t *label_ids[TASK_MAX_LABELS];
    int label_len[TASK_MAX_LABELS];
    int single_token; /* every label is one token (and no end token): one pass per eval row */
    int32_t eos;
    int max_tokens;
    long *order;
    int32_t *seq_buf;
    train_seq_t *seqs;
    int seq_cap;
    float *first_logits;
    char *metrics;  /* metrics.jsonl contents */
    size_t metrics_len;
    char path_buf[1024];
} trainer_t;

static const char *out_path(trainer_t *t, const char *name) {
    snprintf(t->path_buf, sizeof t->path_buf, "%s/%s", t->o->out_dir, name);
    return t->path_buf;
}

static int answer_len(const trainer_t *t, int label) { return t->label_len[label] + (t->o->end_token ? 1 : 0); }

/* Builds sequence `k` of the batch: prompt + label tokens (+ EOS) into buf. */
static void make_seq(trainer_t *t, train_seq_t *s, int32_t *buf, const example_t *e, int label, int with_end) {
    memcpy(buf, e->prompt, sizeof(int32_t) * (size_t)e->n_prompt);
    memcpy(buf + e->n_prompt, t->label_ids[label], sizeof(int32_t) * (size_t)t->label_len[label]);
    int n = e->n_prompt + t->label_len[label];
    if (with_end) buf[n++] = t->eos;
    s->tokens = buf;
    s->n_tokens = n;
    s->n_prompt = e->n_prompt;
}

static void shuffle(long *order, long n, uint64_t seed, long epoch) {
    uint64_t s = seed ^ (0xa5a5a5a5ULL + (uint64_t)epoch * 0x9e3779b97f4a7c15ULL);
    for (long i = 0; i < n; i++) order[i] = i;
    for (long i = n - 1; i > 0; i--) {
        long j = (long)(lora_splitmix64(&s) % (uint64_t)(i + 1));
        long tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
}

typedef struct {
    metrics_t mt;
    double loss;
    int *gold, *pred;
    double *lp; /* n * n_labels */
    long n;
} eval_out_t;

static void eval_out_free(eval_out_t *e) {
    free(e->gold);
    free(e->pred);
    free(e->lp);
    memset(e, 0, sizeof *e);
}

static int evaluate(trainer_t *t, eval_out_t *out, tl_err_t *err) {
    long n = t->eval.n;
    if (t->o->eval_limit >= 0 && t->o->eval_limit < n) n = t->o->eval_limit;
    memset(out, 0, sizeof *out);
    out->n = n;
    out->gold = malloc(sizeof(int) * (size_t)n);
    out->pred = malloc(sizeof(int) * (size_t)n);
    out->lp = malloc(sizeof(double) * (size_t)n * t->n_labels);
    double *slp = malloc(sizeof(double) * (size_t)t->seq_cap);
    if (!out->gold || !out->pred || !out->lp || !slp) {
        free(slp);
        return tl_fail(err, "evaluation: out of memory");
    }
    int mb = t->o->micro_batch;
    long V = model_config(t->m)->n_vocab;
    train_graph_set_dropout(t->g, 0.0f, 0);
    for (long i = 0; i < n;) {
        int ns = 0, ntok = 0;
        long rows = 0;
        int per = t->single_token ? 1 : t->n_labels;
        while (i + rows < n && (rows + 1) * per <= (t->single_token ? mb : t->seq_cap)) {
            const example_t *e = &t->eval.ex[i + rows];
            int need = 0;
            for (int l = 0; l < per; l++) need += e->n_prompt + (t->single_token ? 1 : answer_len(t, l));
            if (ntok + need > t->max_tokens && rows > 0) break;
            for (int l = 0; l < per; l++) {
                make_seq(t, &t->seqs[ns], t->seq_buf + ntok, e, l, !t->single_token && t->o->end_token);
                if (t->single_token) t->seqs[ns].n_tokens = e->n_prompt + 1;
                ntok += t->seqs[ns].n_tokens;
                ns++;
            }
            rows++;
        }
        if (train_graph_run(t->g, t->seqs, ns, false, 0.0f, slp, t->single_token ? t->first_logits : NULL, err)) {
            free(slp);
            return tl_fail_prefix(err, "evaluation row %ld", i + 1);
        }
        for (long r = 0; r < rows; r++) {
            double *lp = out->lp + (i + r) * t->n_labels;
            for (int l = 0; l < t->n_labels; l++)
                lp[l] = t->single_token ? cross_entropy_forward_backward(t->first_logits + r * V, (int)V,
                                                                         t->label_ids[l][0], NULL, 0.0f)
                                        : slp[r * t->n_labels + l];
            int best = 0;
            for (int l = 1; l < t->n_labels; l++)
                if (lp[l] > lp[best]) best = l;
            out->gold[i + r] = t->eval.ex[i + r].label;
            out->pred[i + r] = best;
            out->loss -= lp[out->gold[i + r]];
        }
        i += rows;
    }
    free(slp);
    out->loss /= (double)(n ? n : 1);
    return metrics_compute(out->gold, out->pred, (size_t)n, (size_t)t->n_labels, &out->mt, err);
}

static int append_metrics(trainer_t *t, const char *line, tl_err_t *err) {
    size_t n = strlen(line);
    char *nb = realloc(t->metrics, t->metrics_len + n + 2);
    if (!nb) return tl_fail(err, "metrics: out of memory");
    t->metrics = nb;
    memcpy(t->metrics + t->metrics_len, line, n);
    t->metrics_len += n;
    t->metrics[t->metrics_len++] = '\n';
    t->metrics[t->metrics_len] = '\0';
    return atomic_file_write_all(out_path(t, "metrics.jsonl"), t->metrics, t->metrics_len, err);
}

static int write_predictions(trainer_t *t, const eval_out_t *e, long step, tl_err_t *err) {
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) return tl_fail(err, "predictions: out of memory");
    for (long i = 0; i < e->n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "row", (double)i);
        cJSON_AddNumberToObject(o, "step", (double)step);
        cJSON_AddStringToObject(o, "gold", t->task->labels[e->gold[i]]);
        cJSON_AddStringToObject(o, "pred", t->task->labels[e->pred[i]]);
        cJSON *lp = cJSON_AddObjectToObject(o, "logprobs");
        for (int l = 0; l < t->n_labels; l++) cJSON_AddNumberToObject(lp, t->task->labels[l], e->lp[i * t->n_labels + l]);
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        size_t n = s ? strlen(s) : 0;
        if (s && len + n + 2 > cap) {
            while (len + n + 2 > cap) cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(s);
                s = NULL;
            } else buf = nb;
        }
        if (!s) {
            free(buf);
            return tl_fail(err, "predictions: out of memory");
        }
        memcpy(buf + len, s, n);
        len += n;
        buf[len++] = '\n';
        free(s);
    }
    int rc = atomic_file_write_all(out_path(t, "predictions-last.jsonl"), buf, len, err);
    free(buf);
    return rc;
}

/* ---- checkpoint: LoRA parameters, optimizer moments, counters ---- */

/* Version 2: best_f1 is the selection figure (calibrated macro-F1 when the
 * run calibrates, recorded in select_calibrated); version 1 held the raw one. */
typedef struct {
    char magic[8];
    uint32_t version, rank;
    uint64_t n_params, seed, n_train, targets;
    int64_t step, best_step, adam_step;
    double best_f1, loss_sum;
    int64_t loss_count, bad_evals, batch, select_calibrated;
    double best_f1_raw;
} ckpt_head_t;

typedef struct {
    float *dst;
    size_t off;
    int load;
} flat_ctx_t;

static void flat_copy(void *arg, float *p, float *g, size_t n) {
    (void)g;
    flat_ctx_t *c = arg;
    if (c->load) memcpy(p, c->dst + c->off, n * sizeof(float));
    else memcpy(c->dst + c->off, p, n * sizeof(float));
    c->off += n;
}

typedef struct {
    long step, best_step, bad_evals, loss_count;
    double best_f1, best_f1_raw, loss_sum; /* best_f1: the selection figure */
} train_state_t;

static int save_checkpoint(trainer_t *t, const train_state_t *s, tl_err_t *err) {
    size_t np = t->opt->n;
    ckpt_head_t h = {.magic = "TLCKPT1", .version = 2, .rank = (uint32_t)t->lora->rank, .n_params = np,
                     .seed = t->o->seed, .n_train = (uint64_t)t->train.n, .targets = t->lora->targets,
                     .step = s->step, .best_step = s->best_step, .adam_step = t->opt->step, .best_f1 = s->best_f1,
                     .loss_sum = s->loss_sum, .loss_count = s->loss_count, .bad_evals = s->bad_evals,
                     .batch = t->o->batch, .select_calibrated = !t->o->no_calibrate,
                     .best_f1_raw = s->best_f1_raw};
    float *p = malloc(sizeof(float) * (np ? np : 1));
    if (!p) return tl_fail(err, "checkpoint: out of memory");
    flat_ctx_t c = {p, 0, 0};
    lora_visit(t->lora, flat_copy, &c);
    atomic_file_t af;
    int rc = -1;
    if (atomic_file_open(&af, out_path(t, "checkpoint.bin"), err)) goto done;
    if (atomic_file_write(&af, &h, sizeof h, err) || atomic_file_write(&af, p, np * sizeof(float), err) ||
        atomic_file_write(&af, t->opt->m, np * sizeof(float), err) ||
        atomic_file_write(&af, t->opt->v, np * sizeof(float), err)) {
        atomic_file_abort(&af);
        goto done;
    }
    rc = atomic_file_commit(&af, err);
done:
    free(p);
    return rc;
}

static int load_checkpoint(trainer_t *t, train_state_t *s, tl_err_t *err) {
    const char *path = out_path(t, "checkpoint.bin");
    FILE *f = fopen(path, "rb");
    if (!f) return tl_fail(err, "%s: %s (nothing to resume)", path, strerror(errno));
    ckpt_head_t h;
    size_t np = t->opt->n;
    float *p = malloc(sizeof(float) * (np ? np : 1));
    int rc = -1;
    if (!p) {
        tl_fail(err, "checkpoint: out of memory");
        goto done;
    }
    if (fread(&h, sizeof h, 1, f) != 1 || memcmp(h.magic, "TLCKPT1", 8) || h.version < 1 || h.version > 2) {
        tl_fail(err, "%s: not a tasklm checkpoint", path);
        goto done;
    }
    if (h.version == 1) {
        tl_fail(err, "%s: written by an older tasklm that selected the best adapter on the uncalibrated macro-F1; "
                     "start the run again without --resume", path);
        goto done;
    }
    if (h.select_calibrated != !t->o->no_calibrate) {
        tl_fail(err, "%s: written %s --no-calibrate (the best adapter is selected on the %s macro-F1); resume with "
                     "the same setting", path, h.select_calibrated ? "without" : "with",
                h.select_calibrated ? "calibrated" : "uncalibrated");
        goto done;
    }
    if (h.n_params != np || h.rank != (uint32_t)t->lora->rank || h.targets != t->lora->targets ||
        h.seed != t->o->seed || h.n_train != (uint64_t)t->train.n || h.batch != t->o->batch) {
        tl_fail(err, "%s: written with other settings (rank, targets, seed, batch or training rows differ)", path);
        goto done;
    }
    if (fread(p, sizeof(float), np, f) != np || fread(t->opt->m, sizeof(float), np, f) != np ||
        fread(t->opt->v, sizeof(float), np, f) != np) {
        tl_fail(err, "%s: truncated", path);
        goto done;
    }
    flat_ctx_t c = {p, 0, 1};
    lora_visit(t->lora, flat_copy, &c);
    t->opt->step = h.adam_step;
    s->step = h.step, s->best_step = h.best_step, s->best_f1 = h.best_f1, s->best_f1_raw = h.best_f1_raw;
    s->loss_sum = h.loss_sum, s->loss_count = h.loss_count, s->bad_evals = h.bad_evals;
    rc = 0;
done:
    free(p);
    fclose(f);
    return rc;
}

/* Keeps the metrics lines of steps up to `step` (a resumed run rewrites later ones). */
static int reload_metrics(trainer_t *t, long step, tl_err_t *err) {
    FILE *f = fopen(out_path(t, "metrics.jsonl"), "r");
    if (!f) return 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n') line[n - 1] = '\0';
        cJSON *o = cJSON_Parse(line);
        const cJSON *st = o ? cJSON_GetObjectItemCaseSensitive(o, "step") : NULL;
        if (st && cJSON_IsNumber(st) && st->valuedouble <= (double)step) {
            size_t len = strlen(line);
            char *nb = realloc(t->metrics, t->metrics_len + len + 2);
            if (!nb) rc = tl_fail(err, "metrics: out of memory");
            else {
                t->metrics = nb;
                memcpy(t->metrics + t->metrics_len, line, len);
                t->metrics_len += len;
                t->metrics[t->metrics_len++] = '\n';
                t->metrics[t->metrics_len] = '\0';
            }
        }
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    return rc;
}

/* An information line: to the on_log hook, else to the progress stream. */
static void __attribute__((format(printf, 2, 3))) tlog(trainer_t *t, const char *fmt, ...) {
    if (!t->o->on_log && !t->progress) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (t->o->on_log) t->o->on_log(t->o->hook_ctx, line);
    else {
        fprintf(t->progress, "%s\n", line);
        fflush(t->progress);
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int setup(trainer_t *t, tl_err_t *err) {
    const trainer_opts_t *o = t->o;
    if (mkdir(o->out_dir, 0777) && errno != EEXIST) return tl_fail(err, "%s: %s", o->out_dir, strerror(errno));
    if (task_load(&t->task, o->task_dir, err)) return -1;
    if (model_load(&t->m, o->model_path, o->threads, err)) return -1;
    const tokenizer_t *tok = model_tokenizer(t->m);
    t->n_labels = (int)t->task->n_labels;
    t->eos = tokenizer_eos(tok);
    if (o->end_token && t->eos < 0) return tl_fail(err, "%s: --end-token: the vocabulary has no EOS", o->model_path);
    t->single_token = !o->end_token;
    for (int l = 0; l < t->n_labels; l++) {
        char buf[TASK_NAME_MAX + 16];
        int n = task_render_label(t->task, (size_t)l, buf, sizeof buf);
        size_t nt;
        if (n < 0 || tokenizer_encode(tok, buf, (size_t)n, 0, &t->label_ids[l], &nt, err))
            return tl_fail(err, "task %s: label '%s' cannot be tokenized", t->task->name, t->task->labels[l]);
        if (nt == 0) return tl_fail(err, "task %s: label '%s' has no tokens", t->task->name, t->task->labels[l]);
        t->label_len[l] = (int)nt;
        if (nt != 1) t->single_token = 0;
    }
    if (load_rows(&t->train, o->train_path, t->task, tok, o->train_limit, err) ||
        load_rows(&t->eval, o->eval_path, t->task, tok, o->eval_limit, err))
        return -1;
    for (long i = 0; i < t->train.n; i++) t->train_counts[t->train.ex[i].label]++;
    int max_ans = 0, max_prompt = 0;
    for (int l = 0; l < t->n_labels; l++)
        if (answer_len(t, l) > max_ans) max_ans = answer_len(t, l);
    for (long i = 0; i < t->train.n; i++)
        if (t->train.ex[i].n_prompt > max_prompt) max_prompt = t->train.ex[i].n_prompt;
    for (long i = 0; i < t->eval.n; i++)
        if (t->eval.ex[i].n_prompt > max_prompt) max_prompt = t->eval.ex[i].n_prompt;
    int max_len = max_prompt + max_ans;
    int n_ctx = (int)model_config(t->m)->n_ctx_train;
    if (max_len > n_ctx) return tl_fail(err, "a prompt plus its answer has %d tokens, more than the model's context of %d", max_len, n_ctx);
    t->seq_cap = o->micro_batch > t->n_labels ? o->micro_batch : t->n_labels;
    t->max_tokens = max_len * t->seq_cap;
    t->seq_buf = malloc(sizeof(int32_t) * (size_t)t->max_tokens);
    t->seqs = malloc(sizeof *t->seqs * (size_t)t->seq_cap);
    t->order = malloc(sizeof(long) * (size_t)t->train.n);
    t->first_logits = malloc(sizeof(float) * (size_t)o->micro_batch * model_config(t->m)->n_vocab);
    if (!t->seq_buf || !t->seqs || !t->order || !t->first_logits) return tl_fail(err, "trainer: out of memory");
    if (lora_new(&t->lora, model_config(t->m), o->rank, o->alpha, o->targets, o->seed, true, err) ||
        adamw_new(&t->opt, lora_n_params(t->lora), err) ||
        train_graph_new(&t->g, t->m, t->lora, t->max_tokens, err))
        return -1;
    return 0;
}

static void teardown(trainer_t *t) {
    train_graph_free(t->g);
    adamw_free(t->opt);
    lora_free(t->lora);
    dataset_free(&t->train);
    dataset_free(&t->eval);
    for (int l = 0; l < TASK_MAX_LABELS; l++) free(t->label_ids[l]);
    free(t->seq_buf);
    free(t->seqs);
    free(t->order);
    free(t->first_logits);
    free(t->metrics);
    model_free(t->m);
    task_free(t->task);
}

static void add_per_class(trainer_t *t, cJSON *o, const char *f1_key, const char *conf_key, const metrics_t *mt) {
    cJSON *f1 = cJSON_AddObjectToObject(o, f1_key);
    for (int l = 0; l < t->n_labels; l++) cJSON_AddNumberToObject(f1, t->task->labels[l], mt->f1[l]);
    cJSON *conf = cJSON_AddArrayToObject(o, conf_key);
    for (int g = 0; g < t->n_labels; g++) {
        cJSON *row = cJSON_CreateArray();
        for (int p = 0; p < t->n_labels; p++) cJSON_AddItemToArray(row, cJSON_CreateNumber((double)mt->confusion[g][p]));
        cJSON_AddItemToArray(conf, row);
    }
}

/* One evaluation record. The uncalibrated figures keep their names (macro_f1,
 * accuracy, per_class_f1, confusion); with calibration the figures of the
 * biased argmax follow as *_calibrated. selection_f1 is the figure the best
 * adapter and early stopping go by (the calibrated macro-F1 when calibrating:
 * the one the adapter is scored with). */
static char *metrics_line(trainer_t *t, const eval_out_t *e, const label_calib_t *cal, const metrics_t *mcal,
                          long step, double epoch, double train_loss, float lr, double tps, int is_best) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", (double)step);
    cJSON_AddNumberToObject(o, "epoch", epoch);
    if (isnan(train_loss)) cJSON_AddNullToObject(o, "train_loss");
    else cJSON_AddNumberToObject(o, "train_loss", train_loss);
    cJSON_AddNumberToObject(o, "eval_loss", e->loss);
    cJSON_AddNumberToObject(o, "macro_f1", e->mt.macro_f1);
    cJSON_AddNumberToObject(o, "accuracy", e->mt.accuracy);
    add_per_class(t, o, "per_class_f1", "confusion", &e->mt);
    if (cal) {
        cJSON_AddNumberToObject(o, "macro_f1_calibrated", mcal->macro_f1);
        cJSON_AddNumberToObject(o, "accuracy_calibrated", mcal->accuracy);
        add_per_class(t, o, "per_class_f1_calibrated", "confusion_calibrated", mcal);
    }
    cJSON_AddNumberToObject(o, "selection_f1", cal ? mcal->macro_f1 : e->mt.macro_f1);
    cJSON *labs = cJSON_AddArrayToObject(o, "labels");
    for (int l = 0; l < t->n_labels; l++) cJSON_AddItemToArray(labs, cJSON_CreateString(t->task->labels[l]));
    cJSON_AddNumberToObject(o, "n_eval", (double)e->n);
    if (cal) {
        char b[512];
        label_bias_format(t->task, cal->bias, b, sizeof b);
        cJSON *c = cJSON_AddObjectToObject(o, "calibration");
        cJSON_AddNumberToObject(c, "lambda", cal->lambda);
        cJSON_AddNumberToObject(c, "macro_f1", cal->macro_f1);
        cJSON_AddStringToObject(c, "label_bias", b);
    }
    cJSON_AddNumberToObject(o, "lr", lr);
    cJSON_AddNumberToObject(o, "tokens_per_s", tps);
    cJSON_AddBoolToObject(o, "best", is_best);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Fits the label-prior bias on the evaluation rows (task/calib.h), stores it
 * in the adapter's metadata and computes the metrics of the biased argmax. */
static int eval_calibrate(trainer_t *t, const eval_out_t *e, label_calib_t *cal, metrics_t *mcal, tl_err_t *err) {
    size_t ec[TASK_MAX_LABELS] = {0};
    for (long i = 0; i < e->n; i++) ec[e->gold[i]]++;
    if (label_calib_fit(e->lp, e->gold, (size_t)e->n, (size_t)t->n_labels, t->train_counts, ec, cal, err)) return -1;
    label_bias_format(t->task, cal->bias, t->lora->label_bias, sizeof t->lora->label_bias);
    int *pred = malloc(sizeof(int) * (size_t)(e->n ? e->n : 1));
    if (!pred) return tl_fail(err, "calibration: out of memory");
    for (long i = 0; i < e->n; i++) pred[i] = label_bias_argmax(e->lp + i * t->n_labels, cal->bias, (size_t)t->n_labels);
    int rc = metrics_compute(e->gold, pred, (size_t)e->n, (size_t)t->n_labels, mcal, err);
    free(pred);
    return rc;
}

static int train_loop(trainer_t *t, trainer_result_t *res, tl_err_t *err) {
    const trainer_opts_t *o = t->o;
    long n = t->train.n, steps_per_epoch = (n + o->batch - 1) / o->batch;
    long total = steps_per_epoch * o->epochs;
    if (o->max_steps > 0 && o->max_steps < total) total = o->max_steps;
    long warmup = o->warmup_steps >= 0 ? o->warmup_steps : total / 10;
    adamw_cfg_t acfg = {0.9f, 0.999f, 1e-8f, o->weight_decay};
    train_state_t s = {.best_f1 = -1.0, .best_f1_raw = -1.0, .best_step = -1};
    if (o->resume) {
        if (load_checkpoint(t, &s, err) || reload_metrics(t, s.step, err)) return -1;
        tlog(t, "train: resumed at step %ld of %ld", s.step, total);
    } else {
        if (atomic_file_write_all(out_path(t, "metrics.jsonl"), "", 0, err)) return -1;
    }
    long cur_epoch = -1;
    double log_secs = 0, log_tokens = 0, run_secs = 0, run_tokens = 0, all_secs = 0, all_tokens = 0;
    long run_steps = 0;
    float lr = 0.0f;
    memset(res, 0, sizeof *res);
    res->first_loss = NAN;
    if (o->on_step) {
        trainer_step_t st = {.step = s.step, .total = total, .epoch = (double)s.step / steps_per_epoch,
                             .loss = NAN, .lr = NAN};
        o->on_step(o->hook_ctx, &st);
    }
    while (s.step < total) {
        long epoch = s.step / steps_per_epoch, in_epoch = s.step % steps_per_epoch;
        if (epoch != cur_epoch) {
            shuffle(t->order, n, o->seed, epoch);
            cur_epoch = epoch;
        }
        double step_t0 = now_s();
        long b0 = in_epoch * o->batch, b1 = b0 + o->batch < n ? b0 + o->batch : n;
        int n_ans = 0, n_tok = 0;
        for (long i = b0; i < b1; i++) n_ans += answer_len(t, t->train.ex[t->order[i]].label);
        lora_zero_grads(t->lora);
        double step_loss = 0.0;
        for (long mb0 = b0; mb0 < b1; mb0 += o->micro_batch) {
            long mb1 = mb0 + o->micro_batch < b1 ? mb0 + o->micro_batch : b1;
            int ns = 0, ntok = 0;
            for (long i = mb0; i < mb1; i++) {
                const example_t *e = &t->train.ex[t->order[i]];
                make_seq(t, &t->seqs[ns], t->seq_buf + ntok, e, e->label, o->end_token);
                ntok += t->seqs[ns++].n_tokens;
            }
            uint64_t ds = o->seed ^ ((uint64_t)s.step * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)(mb0 - b0) << 32);
            train_graph_set_dropout(t->g, o->dropout, lora_splitmix64(&ds));
            double lp[1024];
            double *slp = ns <= 1024 ? lp : NULL;
            if (train_graph_run(t->g, t->seqs, ns, true, 1.0f / (float)n_ans, slp, NULL, err))
                return tl_fail_prefix(err, "step %ld", s.step + 1);
            for (int i = 0; slp && i < ns; i++) step_loss -= slp[i];
            n_tok += ntok;
        }
        step_loss /= n_ans;
        lora_clip_grads(t->lora, o->clip);
        lr = sched_lr(o->sched, o->lr, s.step, total, warmup);
        adamw_step(t->opt, &acfg, t->lora, lr);
        s.step++;
        run_steps++;
        double step_dt = now_s() - step_t0;
        log_secs += step_dt, run_secs += step_dt, all_secs += step_dt;
        all_tokens += n_tok;
        s.loss_sum += step_loss;
        s.loss_count++;
        if (isnan(res->first_loss)) res->first_loss = step_loss;
        res->last_loss = step_loss;
        log_tokens += n_tok;
        run_tokens += n_tok;
        if (o->on_step) {
            trainer_step_t st = {.step = s.step, .total = total, .epoch = (double)s.step / steps_per_epoch,
                                 .loss = step_loss, .lr = lr, .tokens_per_s = step_dt > 0 ? n_tok / step_dt : 0.0,
                                 .s_per_step = step_dt};
            o->on_step(o->hook_ctx, &st);
        } else if (t->progress && o->log_every > 0 && (s.step % o->log_every == 0 || s.step == total)) {
            fprintf(t->progress, "train: step %ld/%ld epoch %.2f loss %.4f lr %.3g %.0f tok/s %.2f s/step\n", s.step,
                    total, (double)s.step / steps_per_epoch, step_loss, lr, log_secs > 0 ? log_tokens / log_secs : 0.0,
                    log_secs / (o->log_every > 0 ? o->log_every : 1));
            fflush(t->progress);
        }
        if (o->log_every > 0 && (s.step % o->log_every == 0 || s.step == total)) {
            log_secs = 0;
            log_tokens = 0;
        }
        int do_eval = (o->eval_every > 0 && s.step % o->eval_every == 0 && s.step >= o->eval_delay) || s.step == total;
        if (!do_eval) continue;
        double tps = run_secs > 0 ? run_tokens / run_secs : 0.0;
        eval_out_t e;
        if (evaluate(t, &e, err)) {
            eval_out_free(&e);
            return -1;
        }
        double train_loss = s.loss_count ? s.loss_sum / s.loss_count : NAN;
        /* the label-prior bias for this adapter, fitted on the evaluation rows (task/calib.h) */
        label_calib_t cal;
        metrics_t mcal;
        int calibrated = !o->no_calibrate && e.n > 0;
        if (calibrated && eval_calibrate(t, &e, &cal, &mcal, err)) {
            eval_out_free(&e);
            return -1;
        }
        /* select and stop on the macro-F1 the adapter will be scored with */
        double sel_f1 = calibrated ? mcal.macro_f1 : e.mt.macro_f1;
        int better = sel_f1 > s.best_f1;
        char *line = metrics_line(t, &e, calibrated ? &cal : NULL, &mcal, s.step, (double)s.step / steps_per_epoch,
                                  train_loss, lr, tps, better);
        int bad = !line || append_metrics(t, line, err) || write_predictions(t, &e, s.step, err);
        free(line);
        if (!bad && better) {
            s.best_f1 = sel_f1;
            s.best_f1_raw = e.mt.macro_f1;
            s.best_step = s.step;
            s.bad_evals = 0;
            bad = lora_save_gguf(t->lora, out_path(t, "adapter.gguf"), err);
        } else if (!bad) {
            s.bad_evals++;
        }
        if (!bad) bad = lora_save_gguf(t->lora, out_path(t, "adapter-last.gguf"), err);
        tlog(t, "eval: step %ld train_loss %.4f eval_loss %.4f macro_f1 %.4f accuracy %.4f%s", s.step, train_loss,
             e.loss, e.mt.macro_f1, e.mt.accuracy, better && !calibrated ? " (best)" : "");
        if (calibrated)
            tlog(t, "eval: step %ld label-prior bias %s (lambda %.3g): macro_f1 %.4f accuracy %.4f%s", s.step,
                 t->lora->label_bias, cal.lambda, mcal.macro_f1, mcal.accuracy, better ? " (best)" : "");
        res->last_macro_f1 = sel_f1;
        res->last_macro_f1_raw = e.mt.macro_f1;
        eval_out_free(&e);
        s.loss_sum = 0.0;
        s.loss_count = 0;
        if (!bad) bad = save_checkpoint(t, &s, err);
        if (bad) return -1;
        run_secs = 0;
        run_tokens = 0;
        if (o->stop_after > 0 && s.step >= o->stop_after) break;
        if (o->patience > 0 && s.bad_evals >= o->patience && s.step < total) {
            tlog(t, "train: early stop at step %ld (no better %smacro-F1 in %ld evaluations)", s.step,
                 o->no_calibrate ? "" : "calibrated ", s.bad_evals);
            break;
        }
    }
    res->steps = s.step;
    res->best_step = s.best_step;
    res->best_macro_f1 = s.best_f1;
    res->best_macro_f1_raw = s.best_f1_raw;
    res->tokens_per_s = all_secs > 0 ? all_tokens / all_secs : 0.0;
    res->s_per_step = run_steps ? all_secs / run_steps : 0.0;
    return 0;
}

int trainer_run(const trainer_opts_t *opts, FILE *progress, trainer_result_t *res, tl_err_t *err) {
    trainer_opts_t oo = *opts, *o = &oo;
    if (o->batch <= 0 || o->rank <= 0 || o->epochs <= 0)
        return tl_fail(err, "batch, rank and epochs must be positive");
    if (o->micro_batch <= 0 || o->micro_batch > o->batch) o->micro_batch = o->batch;
    if (o->micro_batch > 1024) return tl_fail(err, "micro-batch %d: at most 1024", o->micro_batch);
    trainer_t t;
    memset(&t, 0, sizeof t);
    t.o = o;
    t.progress = progress;
    int rc = setup(&t, err);
    if (rc == 0) rc = train_loop(&t, res, err);
    teardown(&t);
    return rc;
}
