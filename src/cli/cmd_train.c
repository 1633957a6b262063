/* tasklm train: LoRA fine-tuning of a GGUF model on a task's labelled rows
 * (completion-only loss on the label tokens), with periodic evaluation,
 * metrics.jsonl, best/last adapters in llama.cpp's LoRA GGUF format, early
 * stopping and resumable checkpoints. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/train_opts.h"
#include "train/lora.h"
#include "train/trainer.h"

#define CMD "train"

void train_opts_usage(FILE *out) {
    fprintf(out,
            "      --task NAME         task folder tasks/NAME (default namematch)\n"
            "      --task-dir DIR      task folder path (overrides --task)\n"
            "      --lora-rank R       adapter rank (default 16)\n"
            "      --lora-alpha A      scale = alpha / rank (default 32)\n"
            "      --lora-targets L    q,k,v,o,gate,up,down, attn, mlp or all (default q,k,v,o)\n"
            "      --lora-dropout P    dropout on the adapter input (default 0)\n"
            "      --epochs N          passes over the training rows (default 3)\n"
            "      --max-steps N       stop after N optimizer steps\n"
            "      --lr X              peak learning rate (default 2e-4)\n"
            "      --schedule S        linear, cosine or constant after warm-up (default linear)\n"
            "      --warmup N          warm-up steps (default 10%% of the steps)\n"
            "      --weight-decay X    AdamW decoupled weight decay (default 0)\n"
            "      --clip X            global gradient-norm clip, 0 = off (default 1)\n"
            "      --batch N           sequences per optimizer step (default 16)\n"
            "      --micro-batch N     sequences per forward pass; gradients accumulate (default = batch)\n"
            "      --eval-every N      steps between evaluations (default 20; 0 = only at the end)\n"
            "      --eval-delay N      no evaluation before step N (the best adapter and early\n"
            "                          stopping only consider later ones; default 0)\n"
            "      --eval-limit N      evaluate on the first N eval rows\n"
            "      --train-limit N     use the first N training rows\n"
            "      --patience N        stop after N evaluations without a better selection macro-F1\n"
            "      --end-token         append EOS to the answer (and score it)\n"
            "      --no-calibrate      do not fit the label-prior bias into the adapter (see below)\n"
            "      --seed S            initialisation, data order and dropout (default 42)\n"
            "  -t, --threads N         worker threads (default: one per core)\n"
            "      --log-every N       progress line every N steps (default 1)\n");
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: tasklm train -m BASE.gguf --train TRAIN.csv --eval EVAL.csv --out DIR [options]\n\n"
            "LoRA fine-tuning over the frozen base weights (any stored type: F32, F16, BF16, Q8_0,\n"
            "Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, IQ4_NL; QLoRA when quantized). Each row becomes\n"
            "prompt + label continuation; the loss covers only the label tokens. Every\n"
            "--eval-every steps (and at the end) the eval rows are scored by label log-probability:\n"
            "DIR/metrics.jsonl gets one JSON line (step, epoch, train_loss, eval_loss, macro_f1,\n"
            "accuracy, per_class_f1, confusion, lr, tokens_per_s, selection_f1, best), DIR/adapter.gguf\n"
            "keeps the best adapter by selection_f1 (the calibrated macro-F1, see below; the raw one\n"
            "with --no-calibrate), DIR/adapter-last.gguf the latest, DIR/checkpoint.bin the state.\n"
            "Label-prior calibration: the training rows are usually oversampled to balanced labels\n"
            "while the eval rows keep the natural mix, so each evaluation also fits one strength\n"
            "lambda in [0, 1] of the Bayes prior correction lambda * log(eval share / train share)\n"
            "per label on the eval rows (best macro-F1) and stores it in the adapters as\n"
            "tasklm.label_bias; merge, quantize and prune keep it, and eval, classify, serve and\n"
            "bench add it to the label log-probabilities (--no-calibrate: none; the metrics line\n"
            "has \"calibration\" {lambda, macro_f1, label_bias} and the biased argmax's figures as\n"
            "macro_f1_calibrated, accuracy_calibrated, per_class_f1_calibrated, confusion_calibrated).\n"
            "The best adapter and --patience go by the calibrated macro-F1, the one the adapter is\n"
            "scored with.\n"
            "Progress: a bar on a terminal, plain lines (every --log-every steps) otherwise.\n\n"
            "  -m, --model PATH        base model (GGUF)\n"
            "      --train FILE.csv    training rows (task schema)\n"
            "      --eval FILE.csv     evaluation rows\n"
            "  -o, --out DIR           output folder (created)\n");
    train_opts_usage(out);
    fprintf(out,
            "      --resume            continue from DIR/checkpoint.bin\n"
            "      --stop-after N      stop after step N as if interrupted (tests of --resume)\n"
            "      --json              print a JSON summary on stdout\n"
            "  -h, --help              this help\n");
}

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_float(const char *s, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return -1;
    *out = (float)v;
    return 0;
}

enum {
    O_TASK = 256, O_TASKDIR, O_RANK, O_ALPHA, O_TARGETS, O_DROPOUT, O_EPOCHS, O_MAXSTEPS, O_LR, O_SCHED, O_WARMUP,
    O_WD, O_CLIP, O_BATCH, O_MICRO, O_EVERY, O_ELIMIT, O_TLIMIT, O_PATIENCE, O_END, O_SEED, O_LOGEVERY, O_JSON, O_NOCAL,
    O_EDELAY
};

static const struct option shared_opts[] = {
    {"model", required_argument, 0, 'm'},          {"task", required_argument, 0, O_TASK},
    {"task-dir", required_argument, 0, O_TASKDIR}, {"lora-rank", required_argument, 0, O_RANK},
    {"lora-alpha", required_argument, 0, O_ALPHA}, {"lora-targets", required_argument, 0, O_TARGETS},
    {"lora-dropout", required_argument, 0, O_DROPOUT}, {"epochs", required_argument, 0, O_EPOCHS},
    {"max-steps", required_argument, 0, O_MAXSTEPS}, {"lr", required_argument, 0, O_LR},
    {"schedule", required_argument, 0, O_SCHED},   {"warmup", required_argument, 0, O_WARMUP},
    {"weight-decay", required_argument, 0, O_WD},  {"clip", required_argument, 0, O_CLIP},
    {"batch", required_argument, 0, O_BATCH},      {"micro-batch", required_argument, 0, O_MICRO},
    {"eval-every", required_argument, 0, O_EVERY}, {"eval-limit", required_argument, 0, O_ELIMIT},
    {"eval-delay", required_argument, 0, O_EDELAY},
    {"train-limit", required_argument, 0, O_TLIMIT}, {"patience", required_argument, 0, O_PATIENCE},
    {"end-token", no_argument, 0, O_END},          {"no-calibrate", no_argument, 0, O_NOCAL},          {"seed", required_argument, 0, O_SEED},
    {"threads", required_argument, 0, 't'},        {"log-every", required_argument, 0, O_LOGEVERY},
    {"json", no_argument, 0, O_JSON},              {"help", no_argument, 0, 'h'},
};

int train_opts_table(struct option *dst, int cap) {
    int n = (int)(sizeof shared_opts / sizeof shared_opts[0]);
    if (n > cap) n = cap;
    memcpy(dst, shared_opts, sizeof shared_opts[0] * (size_t)n);
    return n;
}

int train_opts_apply(int c, const char *arg, trainer_opts_t *o, const char **task_name, int *json, tl_err_t *err) {
    long v;
    const char *bad = NULL;
    switch (c) {
    case 'm': o->model_path = arg; break;
    case O_TASK: *task_name = arg; break;
    case O_TASKDIR: o->task_dir = arg; break;
    case O_RANK: if (parse_long(arg, 1, 4096, &v)) bad = "--lora-rank"; else o->rank = (int)v; break;
    case O_ALPHA: if (parse_float(arg, 0, 1e6, &o->alpha)) bad = "--lora-alpha"; break;
    case O_TARGETS: if (lora_targets_parse(arg, &o->targets, err)) return -1; break;
    case O_DROPOUT: if (parse_float(arg, 0, 0.99, &o->dropout)) bad = "--lora-dropout"; break;
    case O_EPOCHS: if (parse_long(arg, 1, 100000, &v)) bad = "--epochs"; else o->epochs = (int)v; break;
    case O_MAXSTEPS: if (parse_long(arg, 1, 1L << 40, &o->max_steps)) bad = "--max-steps"; break;
    case O_LR: if (parse_float(arg, 0, 10, &o->lr)) bad = "--lr"; break;
    case O_SCHED:
        if (!strcmp(arg, "linear")) o->sched = SCHED_LINEAR;
        else if (!strcmp(arg, "cosine")) o->sched = SCHED_COSINE;
        else if (!strcmp(arg, "constant")) o->sched = SCHED_CONSTANT;
        else bad = "--schedule";
        break;
    case O_WARMUP: if (parse_long(arg, 0, 1L << 40, &o->warmup_steps)) bad = "--warmup"; break;
    case O_WD: if (parse_float(arg, 0, 10, &o->weight_decay)) bad = "--weight-decay"; break;
    case O_CLIP: if (parse_float(arg, 0, 1e9, &o->clip)) bad = "--clip"; break;
    case O_BATCH: if (parse_long(arg, 1, 65536, &v)) bad = "--batch"; else o->batch = (int)v; break;
    case O_MICRO: if (parse_long(arg, 1, 1024, &v)) bad = "--micro-batch"; else o->micro_batch = (int)v; break;
    case O_EVERY: if (parse_long(arg, 0, 1L << 30, &v)) bad = "--eval-every"; else o->eval_every = (int)v; break;
    case O_EDELAY: if (parse_long(arg, 0, 1L << 40, &v)) bad = "--eval-delay"; else o->eval_delay = v; break;
    case O_ELIMIT: if (parse_long(arg, 1, 1L << 40, &o->eval_limit)) bad = "--eval-limit"; break;
    case O_TLIMIT: if (parse_long(arg, 1, 1L << 40, &o->train_limit)) bad = "--train-limit"; break;
    case O_PATIENCE: if (parse_long(arg, 0, 1L << 30, &v)) bad = "--patience"; else o->patience = (int)v; break;
    case O_END: o->end_token = true; break;
    case O_NOCAL: o->no_calibrate = true; break;
    case O_SEED: {
        char *end;
        errno = 0;
        unsigned long long sd = strtoull(arg, &end, 10);
        if (errno || end == arg || *end || arg[0] == '-') bad = "--seed";
        else o->seed = sd;
        break;
    }
    case 't': if (parse_long(arg, 1, 1024, &v)) bad = "--threads"; else o->threads = (int)v; break;
    case O_LOGEVERY: if (parse_long(arg, 0, 1L << 30, &v)) bad = "--log-every"; else o->log_every = (int)v; break;
    case O_JSON: *json = 1; break;
    default: return 0;
    }
    if (bad) {
        tl_fail(err, "%s: bad value '%s'", bad, arg);
        return -1;
    }
    return 1;
}

/* ---- progress ---- */

static void tp_on_step(void *ctx, const trainer_step_t *st) {
    train_progress_t *tp = ctx;
    if (!tp->started) {
        progress_init(&tp->p, tp->out, tp->label, "step", st->total, PROGRESS_AUTO);
        progress_start(&tp->p, st->step);
        tp->started = 1;
        return;
    }
    if (!tp->p.tty && (tp->log_every <= 0 || (st->step % tp->log_every != 0 && st->step != st->total))) {
        tp->p.done = st->step; /* keeps the ETA right for the next printed line */
        return;
    }
    progress_update(&tp->p, st->step, "epoch %.2f loss %.4f lr %.3g %.0f tok/s %.2f s/step", st->epoch, st->loss,
                    st->lr, st->tokens_per_s, st->s_per_step);
}

static void tp_on_log(void *ctx, const char *line) {
    train_progress_t *tp = ctx;
    if (tp->started) progress_log(&tp->p, "%s", line);
    else {
        fprintf(tp->out, "%s\n", line);
        fflush(tp->out);
    }
}

void train_progress_init(train_progress_t *tp, FILE *out, const char *label, int log_every) {
    memset(tp, 0, sizeof *tp);
    tp->out = out;
    tp->label = label;
    tp->log_every = log_every;
}

void train_progress_attach(train_progress_t *tp, trainer_opts_t *o) {
    o->on_step = tp_on_step;
    o->on_log = tp_on_log;
    o->hook_ctx = tp;
}

void train_progress_finish(train_progress_t *tp) {
    if (tp->started) progress_finish(&tp->p);
    tp->started = 0;
}

int cmd_train(int argc, char **argv) {
    enum { O_TRAIN = TRAIN_OPT_USER, O_EVAL, O_RESUME, O_STOPAFTER };
    struct option opts[64];
    int n = train_opts_table(opts, 56);
    const struct option own[] = {
        {"train", required_argument, 0, O_TRAIN}, {"eval", required_argument, 0, O_EVAL},
        {"out", required_argument, 0, 'o'},       {"resume", no_argument, 0, O_RESUME},
        {"stop-after", required_argument, 0, O_STOPAFTER}, {0, 0, 0, 0},
    };
    memcpy(opts + n, own, sizeof own);
    trainer_opts_t o;
    trainer_opts_default(&o);
    const char *task_name = "namematch";
    int json = 0;
    tl_err_t err = {{0}};
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:o:t:h", opts, NULL)) != -1) {
        switch (c) {
        case O_TRAIN: o.train_path = optarg; continue;
        case O_EVAL: o.eval_path = optarg; continue;
        case 'o': o.out_dir = optarg; continue;
        case O_RESUME: o.resume = true; continue;
        case O_STOPAFTER:
            if (parse_long(optarg, 1, 1L << 40, &o.stop_after))
                return cli_usage_error(CMD, "--stop-after: bad value '%s'", optarg);
            continue;
        case 'h': usage(stdout); return CLI_OK;
        default: break;
        }
        int r = c == '?' || c == ':' ? 0 : train_opts_apply(c, optarg, &o, &task_name, &json, &err);
        if (r < 0) return cli_usage_error(CMD, "%s", err.msg);
        if (r == 0)
            return cli_usage_error(CMD, "unknown option or missing value: %s (see tasklm train --help)",
                                   argv[optind - 1]);
    }
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!o.model_path) return cli_usage_error(CMD, "missing -m/--model");
    if (!o.train_path) return cli_usage_error(CMD, "missing --train");
    if (!o.eval_path) return cli_usage_error(CMD, "missing --eval");
    if (!o.out_dir) return cli_usage_error(CMD, "missing --out");
    if (o.micro_batch > o.batch) return cli_usage_error(CMD, "--micro-batch %d is larger than --batch %d", o.micro_batch, o.batch);
    char dirbuf[600];
    if (!(o.task_dir = cli_task_dir(CMD, task_name, o.task_dir, dirbuf, sizeof dirbuf))) return CLI_USAGE;
    train_progress_t tp;
    train_progress_init(&tp, stderr, "train", o.log_every);
    train_progress_attach(&tp, &o);
    trainer_result_t res;
    int rc = trainer_run(&o, stderr, &res, &err);
    train_progress_finish(&tp);
    if (rc) return cli_fail(CMD, "%s", err.msg);
    if (json)
        printf("{\"steps\":%ld,\"best_step\":%ld,\"best_macro_f1\":%.6g,\"last_macro_f1\":%.6g,"
               "\"best_macro_f1_raw\":%.6g,\"last_macro_f1_raw\":%.6g,\"selected_on\":\"%s\",\"first_loss\":%.6g,"
               "\"last_loss\":%.6g,\"tokens_per_s\":%.6g,\"s_per_step\":%.6g,\"adapter\":\"%s/adapter.gguf\"}\n",
               res.steps, res.best_step, res.best_macro_f1, res.last_macro_f1, res.best_macro_f1_raw,
               res.last_macro_f1_raw, o.no_calibrate ? "macro_f1" : "macro_f1_calibrated", res.first_loss,
               res.last_loss, res.tokens_per_s, res.s_per_step, o.out_dir);
    return CLI_OK;
}
