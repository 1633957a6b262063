/* tasklm score: log-probability of each label continuation after a prompt,
 * printed as one JSON object {"labels":{...},"argmax":"..."}.
 *
 * The prompt (--prompt TEXT or --prompt-file F) is used byte for byte: a
 * trailing newline in the file is part of the prompt. BOS is prepended when the
 * model's tokenizer metadata asks for it; special tokens in the prompt text
 * (e.g. chat-template markers) are recognised. Labels are given literally,
 * comma-separated, leading spaces included, and tokenized on their own.
 *
 * Hidden test mode: --dump-logits IDS --out FILE reads one prompt per line of
 * IDS (token ids separated by spaces, used as given) and writes the logits of
 * each prompt's last position as n_vocab little-endian floats per line. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "model/model.h"
#include "model/model_extra.h"
#include "model/score.h"
#include "train/lora.h"

#define CMD "score"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tasklm score [-m] MODEL (--prompt TEXT | --prompt-file F) --labels L1,L2,... [options]\n\n"
            "Prints {\"labels\":{\"L1\":logprob,...},\"argmax\":\"L\"}: the summed log-probability of\n"
            "each label's tokens after the prompt. The prompt is evaluated once; every label\n"
            "continues from the cached prompt.\n\n"
            "  -m, --model PATH       the model (or give it as the first argument)\n"
            "  -p, --prompt TEXT      the prompt text\n"
            "  -f, --prompt-file F    read the prompt from F, byte for byte (a final newline is kept)\n"
            "  -l, --labels L1,L2,... labels, taken literally (leading spaces count: \" yes, no\")\n"
            "  -t, --threads N        worker threads (default: one per core)\n"
            "  -c, --ctx N            context size (default: min(training context, 2048))\n"
            "      --lora ADAPTER     apply a LoRA adapter (folded into fp32 weights in memory)\n"
            "      --json             JSON output (the default and only format)\n"
            "  -h, --help             this help\n\n"
            "BOS is added when the model's tokenizer metadata asks for it; special tokens in\n"
            "the prompt (chat-template markers) are recognised, labels are plain text.\n");
}

static int read_file(const char *path, char **out, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) break;
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (n < cap) break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
        }
        buf = nb;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (!buf || bad) {
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int dump_logits(model_t *m, const char *ids_path, const char *out_path, int n_ctx) {
    FILE *in = fopen(ids_path, "r");
    if (!in) return cli_fail(CMD, "%s: %s", ids_path, strerror(errno));
    FILE *out = fopen(out_path, "wb");
    if (!out) {
        fclose(in);
        return cli_fail(CMD, "%s: %s", out_path, strerror(errno));
    }
    int n_vocab = (int)model_config(m)->n_vocab, rc = CLI_OK;
    model_ctx_t *c = NULL;
    tl_err_t err;
    float *logits = malloc(sizeof(float) * (size_t)n_vocab);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n_ctx);
    char *line = NULL;
    size_t cap = 0;
    if (!logits || !ids || model_ctx_new(&c, m, n_ctx, &err)) {
        rc = cli_fail(CMD, "%s", logits && ids ? err.msg : "out of memory");
        goto done;
    }
    for (int row = 1; getline(&line, &cap, in) > 0; row++) {
        int n = 0;
        for (char *s = line, *end;; s = end) {
            long v = strtol(s, &end, 10);
            if (end == s) break;
            if (n == n_ctx) {
                rc = cli_fail(CMD, "%s line %d: more than %d tokens", ids_path, row, n_ctx);
                goto done;
            }
            ids[n++] = (int32_t)v;
        }
        if (n == 0) continue;
        model_ctx_truncate(c, 0);
        if (model_eval(c, ids, n, logits, false, &err)) {
            rc = cli_fail(CMD, "%s line %d: %s", ids_path, row, err.msg);
            goto done;
        }
        if (fwrite(logits, sizeof(float), (size_t)n_vocab, out) != (size_t)n_vocab) {
            rc = cli_fail(CMD, "%s: write failed", out_path);
            goto done;
        }
    }
done:
    if (fclose(out) != 0 && rc == CLI_OK) rc = cli_fail(CMD, "%s: write failed", out_path);
    fclose(in);
    free(line);
    free(ids);
    free(logits);
    model_ctx_free(c);
    return rc;
}

typedef struct {
    char **text;
    int32_t **ids;
    int *lens;
    int n;
} labels_t;

static void labels_free(labels_t *l) {
    for (int i = 0; i < l->n; i++) {
        free(l->text[i]);
        free(l->ids[i]);
    }
    free(l->text);
    free(l->ids);
    free(l->lens);
}

/* Splits on commas, keeping every byte of each label. */
static int labels_split(labels_t *l, const char *spec) {
    int n = 1;
    for (const char *p = spec; *p; p++) n += *p == ',';
    l->text = calloc((size_t)n, sizeof *l->text);
    l->ids = calloc((size_t)n, sizeof *l->ids);
    l->lens = calloc((size_t)n, sizeof *l->lens);
    if (!l->text || !l->ids || !l->lens) return -1;
    const char *s = spec;
    for (int i = 0; i < n; i++) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        l->text[i] = strndup(s, len);
        l->n = i + 1;
        if (!l->text[i]) return -1;
        s = e ? e + 1 : s + len;
    }
    return 0;
}

int cmd_score(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},      {"prompt", required_argument, NULL, 'p'},
        {"prompt-file", required_argument, NULL, 'f'}, {"labels", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 't'},    {"ctx", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},             {"help", no_argument, NULL, 'h'},
        {"dump-logits", required_argument, NULL, 'D'}, {"out", required_argument, NULL, 'O'},
        {"cpu", required_argument, NULL, 'C'},        {"lora", required_argument, NULL, 'L'},
        {NULL, 0, NULL, 0},
    };
    const char *model_path = NULL, *prompt = NULL, *prompt_file = NULL, *label_spec = NULL;
    const char *dump_ids = NULL, *dump_out = NULL, *cpu = NULL, *lora = NULL;
    int n_threads = 0, n_ctx = 0, opt;
    opterr = 0;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":m:p:f:l:t:c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'm': model_path = optarg; break;
        case 'p': prompt = optarg; break;
        case 'f': prompt_file = optarg; break;
        case 'l': label_spec = optarg; break;
        case 't':
            if (parse_int(optarg, 1, 1024, &n_threads)) return cli_usage_error(CMD, "--threads: bad value '%s'", optarg);
            break;
        case 'c':
            if (parse_int(optarg, 1, 1 << 24, &n_ctx)) return cli_usage_error(CMD, "--ctx: bad value '%s'", optarg);
            break;
        case 'j': break;
        case 'D': dump_ids = optarg; break;
        case 'O': dump_out = optarg; break;
        case 'C': cpu = optarg; break;
        case 'L': lora = optarg; break;
        case 'h': usage(stdout); return CLI_OK;
        case ':': return cli_usage_error(CMD, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error(CMD, "unknown option '%s'", argv[optind - 1]);
        }
    }
    int npos = argc - optind;
    if (!model_path && npos > 0) {
        model_path = argv[optind++];
        npos--;
    }
    if (npos > 0) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!model_path) return cli_usage_error(CMD, "no model given (-m PATH)");
    if (dump_ids && !dump_out) return cli_usage_error(CMD, "--dump-logits needs --out FILE");
    if (!dump_ids) {
        if (!prompt == !prompt_file) return cli_usage_error(CMD, "give exactly one of --prompt and --prompt-file");
        if (!label_spec) return cli_usage_error(CMD, "no labels given (--labels L1,L2,...)");
    }
    int level = -1;
    if (cpu && (level = cpu_level_from_name(cpu)) < 0) return cli_usage_error(CMD, "--cpu: unknown level '%s'", cpu);

    tl_err_t err;
    model_t *m = NULL;
    if (model_load(&m, model_path, n_threads, &err)) return cli_fail(CMD, "%s", err.msg);
    if (lora && lora_apply_file(m, lora, &err)) {
        model_free(m);
        return cli_fail(CMD, "%s", err.msg);
    }
    if (level >= 0) model_set_cpu_level(m, (cpu_level_t)level);
    if (n_ctx == 0) n_ctx = model_config(m)->n_ctx_train < 2048 ? (int)model_config(m)->n_ctx_train : 2048;
    if (dump_ids) {
        int rc = dump_logits(m, dump_ids, dump_out, n_ctx);
        model_free(m);
        return rc;
    }

    int rc = CLI_OK;
    char *text = NULL;
    size_t text_len = 0;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    labels_t labels = {0};
    double *lp = NULL;
    model_ctx_t *c = NULL;
    cJSON *root = NULL;
    const tokenizer_t *tok = model_tokenizer(m);
    if (prompt_file) {
        if (read_file(prompt_file, &text, &text_len)) {
            rc = cli_fail(CMD, "%s: cannot read: %s", prompt_file, strerror(errno));
            goto done;
        }
    } else {
        text = strdup(prompt);
        text_len = strlen(prompt);
    }
    int flags = TOK_PARSE_SPECIAL | (tokenizer_wants_bos(tok) ? TOK_ADD_BOS : 0);
    if (tokenizer_encode(tok, text, text_len, flags, &ids, &n_ids, &err)) {
        rc = cli_fail(CMD, "prompt: %s", err.msg);
        goto done;
    }
    if (n_ids == 0) {
        rc = cli_fail(CMD, "the prompt is empty (no tokens)");
        goto done;
    }
    if (labels_split(&labels, label_spec)) {
        rc = cli_fail(CMD, "out of memory");
        goto done;
    }
    for (int i = 0; i < labels.n; i++) {
        size_t n = 0;
        if (labels.text[i][0] == '\0') {
            rc = cli_usage_error(CMD, "label %d is empty", i + 1);
            goto done;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(labels.text[i], labels.text[j])) {
                rc = cli_usage_error(CMD, "label '%s' is given twice", labels.text[i]);
                goto done;
            }
        if (tokenizer_encode(tok, labels.text[i], strlen(labels.text[i]), 0, &labels.ids[i], &n, &err)) {
            rc = cli_fail(CMD, "label '%s': %s", labels.text[i], err.msg);
            goto done;
        }
        labels.lens[i] = (int)n;
    }
    if ((size_t)n_ctx < n_ids + 1) {
        rc = cli_fail(CMD, "the prompt (%zu tokens) does not fit in the context of %d tokens (--ctx)", n_ids, n_ctx);
        goto done;
    }
    lp = calloc((size_t)labels.n, sizeof *lp);
    if (!lp || model_ctx_new(&c, m, n_ctx, &err)) {
        rc = cli_fail(CMD, "%s", lp ? err.msg : "out of memory");
        goto done;
    }
    if (score_labels(c, ids, (int)n_ids, (const int32_t *const *)labels.ids, labels.lens, labels.n, lp, &err)) {
        rc = cli_fail(CMD, "%s", err.msg);
        goto done;
    }
    root = cJSON_CreateObject();
    cJSON *obj = cJSON_AddObjectToObject(root, "labels");
    int best = 0;
    for (int i = 0; i < labels.n; i++) {
        cJSON_AddItemToObject(obj, labels.text[i], cJSON_CreateNumber(lp[i]));
        if (lp[i] > lp[best]) best = i;
    }
    cJSON_AddStringToObject(root, "argmax", labels.text[best]);
    char *s = cJSON_PrintUnformatted(root);
    if (!s) {
        rc = cli_fail(CMD, "out of memory");
        goto done;
    }
    printf("%s\n", s);
    free(s);
done:
    cJSON_Delete(root);
    model_ctx_free(c);
    free(lp);
    labels_free(&labels);
    free(ids);
    free(text);
    model_free(m);
    return rc;
}
