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
#include "train/lora.h"
#include "train/trainer.h"

#define CMD "train"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tasklm train -m BASE.gguf --train TRAIN.csv --eval EVAL.csv --out DIR [options]\n\n"
            "LoRA fine-tuning over the frozen base weights (any stored type). Each row becomes\n"
            "prompt + label continuation; the loss covers only the label tokens. Every\n"
            "--eval-every steps (and at the end) the eval rows are scored by label log-probability:\n"
            "DIR/metrics.jsonl gets one JSON line (step, epoch, train_loss, eval_loss, macro_f1,\n"
            "accuracy, per_class_f1, confusion, lr, tokens_per_s), DIR/adapter.gguf keeps the best\n"
            "adapter by macro-F1, DIR/adapter-last.gguf the latest, DIR/checkpoint.bin the state.\n\n"
            "  -m, --model PATH        base model (GGUF)\n"
            "      --task NAME         task folder tasks/NAME (default namematch)\n"
            "      --task-dir DIR      task folder path (overrides --task)\n"
            "      --train FILE.csv    training rows (task schema)\n"
            "      --eval FILE.csv     evaluation rows\n"
            "  -o, --out DIR           output folder (created)\n"
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
            "      --eval-limit N      evaluate on the first N eval rows\n"
            "      --train-limit N     use the first N training rows\n"
            "      --patience N        stop after N evaluations without a better macro-F1\n"
            "      --end-token         append EOS to the answer (and score it)\n"
            "      --seed S            initialisation, data order and dropout (default 42)\n"
            "  -t, --threads N         worker threads (default: one per core)\n"
            "      --log-every N       progress line every N steps (default 1)\n"
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

int cmd_train(int argc, char **argv) {
    enum {
        O_TASK = 256, O_TASKDIR, O_TRAIN, O_EVAL, O_RANK, O_ALPHA, O_TARGETS, O_DROPOUT, O_EPOCHS, O_MAXSTEPS, O_LR,
        O_SCHED, O_WARMUP, O_WD, O_CLIP, O_BATCH, O_MICRO, O_EVERY, O_ELIMIT, O_TLIMIT, O_PATIENCE, O_END, O_SEED,
        O_LOGEVERY, O_RESUME, O_JSON, O_STOPAFTER
    };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},      {"task", required_argument, 0, O_TASK},
        {"task-dir", required_argument, 0, O_TASKDIR}, {"train", required_argument, 0, O_TRAIN},
        {"eval", required_argument, 0, O_EVAL},     {"out", required_argument, 0, 'o'},
        {"lora-rank", required_argument, 0, O_RANK}, {"lora-alpha", required_argument, 0, O_ALPHA},
        {"lora-targets", required_argument, 0, O_TARGETS}, {"lora-dropout", required_argument, 0, O_DROPOUT},
        {"epochs", required_argument, 0, O_EPOCHS}, {"max-steps", required_argument, 0, O_MAXSTEPS},
        {"lr", required_argument, 0, O_LR},         {"schedule", required_argument, 0, O_SCHED},
        {"warmup", required_argument, 0, O_WARMUP}, {"weight-decay", required_argument, 0, O_WD},
        {"clip", required_argument, 0, O_CLIP},     {"batch", required_argument, 0, O_BATCH},
        {"micro-batch", required_argument, 0, O_MICRO}, {"eval-every", required_argument, 0, O_EVERY},
        {"eval-limit", required_argument, 0, O_ELIMIT}, {"train-limit", required_argument, 0, O_TLIMIT},
        {"patience", required_argument, 0, O_PATIENCE}, {"end-token", no_argument, 0, O_END},
        {"seed", required_argument, 0, O_SEED},     {"threads", required_argument, 0, 't'},
        {"log-every", required_argument, 0, O_LOGEVERY}, {"resume", no_argument, 0, O_RESUME},
        {"json", no_argument, 0, O_JSON},           {"stop-after", required_argument, 0, O_STOPAFTER},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    trainer_opts_t o;
    trainer_opts_default(&o);
    const char *task_name = "namematch";
    int json = 0;
    long v;
    tl_err_t err = {{0}};
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:o:t:h", opts, NULL)) != -1) {
        const char *bad = NULL;
        switch (c) {
        case 'm': o.model_path = optarg; break;
        case O_TASK: task_name = optarg; break;
        case O_TASKDIR: o.task_dir = optarg; break;
        case O_TRAIN: o.train_path = optarg; break;
        case O_EVAL: o.eval_path = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case O_RANK: if (parse_long(optarg, 1, 4096, &v)) bad = "--lora-rank"; else o.rank = (int)v; break;
        case O_ALPHA: if (parse_float(optarg, 0, 1e6, &o.alpha)) bad = "--lora-alpha"; break;
        case O_TARGETS:
            if (lora_targets_parse(optarg, &o.targets, &err)) return cli_usage_error(CMD, "%s", err.msg);
            break;
        case O_DROPOUT: if (parse_float(optarg, 0, 0.99, &o.dropout)) bad = "--lora-dropout"; break;
        case O_EPOCHS: if (parse_long(optarg, 1, 100000, &v)) bad = "--epochs"; else o.epochs = (int)v; break;
        case O_MAXSTEPS: if (parse_long(optarg, 1, 1L << 40, &o.max_steps)) bad = "--max-steps"; break;
        case O_LR: if (parse_float(optarg, 0, 10, &o.lr)) bad = "--lr"; break;
        case O_SCHED:
            if (!strcmp(optarg, "linear")) o.sched = SCHED_LINEAR;
            else if (!strcmp(optarg, "cosine")) o.sched = SCHED_COSINE;
            else if (!strcmp(optarg, "constant")) o.sched = SCHED_CONSTANT;
            else bad = "--schedule";
            break;
        case O_WARMUP: if (parse_long(optarg, 0, 1L << 40, &o.warmup_steps)) bad = "--warmup"; break;
        case O_WD: if (parse_float(optarg, 0, 10, &o.weight_decay)) bad = "--weight-decay"; break;
        case O_CLIP: if (parse_float(optarg, 0, 1e9, &o.clip)) bad = "--clip"; break;
        case O_BATCH: if (parse_long(optarg, 1, 65536, &v)) bad = "--batch"; else o.batch = (int)v; break;
        case O_MICRO: if (parse_long(optarg, 1, 1024, &v)) bad = "--micro-batch"; else o.micro_batch = (int)v; break;
        case O_EVERY: if (parse_long(optarg, 0, 1L << 30, &v)) bad = "--eval-every"; else o.eval_every = (int)v; break;
        case O_ELIMIT: if (parse_long(optarg, 1, 1L << 40, &o.eval_limit)) bad = "--eval-limit"; break;
        case O_TLIMIT: if (parse_long(optarg, 1, 1L << 40, &o.train_limit)) bad = "--train-limit"; break;
        case O_PATIENCE: if (parse_long(optarg, 0, 1L << 30, &v)) bad = "--patience"; else o.patience = (int)v; break;
        case O_END: o.end_token = true; break;
        case O_SEED: {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-') bad = "--seed";
            else o.seed = s;
            break;
        }
        case 't': if (parse_long(optarg, 1, 1024, &v)) bad = "--threads"; else o.threads = (int)v; break;
        case O_LOGEVERY: if (parse_long(optarg, 0, 1L << 30, &v)) bad = "--log-every"; else o.log_every = (int)v; break;
        case O_RESUME: o.resume = true; break;
        case O_JSON: json = 1; break;
        case O_STOPAFTER: if (parse_long(optarg, 1, 1L << 40, &o.stop_after)) bad = "--stop-after"; break;
        case 'h': usage(stdout); return CLI_OK;
        default:
            return cli_usage_error(CMD, "unknown option or missing value: %s (see tasklm train --help)",
                                   argv[optind - 1]);
        }
        if (bad) return cli_usage_error(CMD, "%s: bad value '%s'", bad, optarg);
    }
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!o.model_path) return cli_usage_error(CMD, "missing -m/--model");
    if (!o.train_path) return cli_usage_error(CMD, "missing --train");
    if (!o.eval_path) return cli_usage_error(CMD, "missing --eval");
    if (!o.out_dir) return cli_usage_error(CMD, "missing --out");
    if (o.micro_batch > o.batch) return cli_usage_error(CMD, "--micro-batch %d is larger than --batch %d", o.micro_batch, o.batch);
    char dirbuf[600];
    if (!o.task_dir) {
        snprintf(dirbuf, sizeof dirbuf, "tasks/%s", task_name);
        o.task_dir = dirbuf;
    }
    trainer_result_t res;
    if (trainer_run(&o, stderr, &res, &err)) return cli_fail(CMD, "%s", err.msg);
    if (json)
        printf("{\"steps\":%ld,\"best_step\":%ld,\"best_macro_f1\":%.6g,\"last_macro_f1\":%.6g,\"first_loss\":%.6g,"
               "\"last_loss\":%.6g,\"tokens_per_s\":%.6g,\"s_per_step\":%.6g,\"adapter\":\"%s/adapter.gguf\"}\n",
               res.steps, res.best_step, res.best_macro_f1, res.last_macro_f1, res.first_loss, res.last_loss,
               res.tokens_per_s, res.s_per_step, o.out_dir);
    return CLI_OK;
}
