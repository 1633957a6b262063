/* tasklm generate: greedy (default) or sampled text generation.
 * The prompt gets BOS when the tokenizer metadata asks for it; special tokens
 * in the prompt are recognised. Generation stops after -n tokens, at an
 * end-of-generation token (not printed), or when the context is full. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "model/model.h"
#include "model/model_extra.h"

#define CMD "generate"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tasklm generate [-m] MODEL PROMPT [-n N] [options]\n\n"
            "Generates up to N tokens after PROMPT (greedy unless --temp > 0).\n\n"
            "  -m, --model PATH      the model (or give it as the first argument)\n"
            "  -p, --prompt TEXT     the prompt (or give it as the next argument)\n"
            "  -f, --prompt-file F   read the prompt from F, byte for byte\n"
            "  -n, --n-predict N     tokens to generate (default 64)\n"
            "      --temp T          sampling temperature; 0 = greedy (default 0)\n"
            "      --top-k K         sample among the K most likely tokens (default 40; 0 = all)\n"
            "      --seed S          random seed for sampling (default: from the clock)\n"
            "  -t, --threads N       worker threads (default: one per core)\n"
            "  -c, --ctx N           context size (default: min(training context, 2048))\n"
            "      --json            print {\"text\",\"ids\",\"n_prompt\",\"n_gen\",\"prompt_ms\",\"gen_ms\",\n"
            "                        \"prompt_tok_s\",\"gen_tok_s\"} instead of the text\n"
            "      --timings         print timings to stderr\n"
            "  -h, --help            this help\n\n"
            "Timings: prompt_ms covers the batched prompt pass; gen_ms covers the single-token\n"
            "passes (n_gen - 1 of them: the last token is not fed back), gen_tok_s = passes / s.\n");
}

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

typedef struct {
    float logit;
    int32_t id;
} cand_t;

static int cand_cmp(const void *a, const void *b) {
    const cand_t *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id;
}

/* Top-k, temperature softmax, one draw. cand has n_vocab slots. */
static int32_t sample(const float *logits, int n_vocab, float temp, int top_k, uint64_t *rng, cand_t *cand) {
    for (int i = 0; i < n_vocab; i++) cand[i] = (cand_t){logits[i], i};
    qsort(cand, (size_t)n_vocab, sizeof *cand, cand_cmp);
    int k = top_k > 0 && top_k < n_vocab ? top_k : n_vocab;
    double sum = 0, mx = cand[0].logit;
    for (int i = 0; i < k; i++) sum += exp((cand[i].logit - mx) / temp);
    double r = (double)(rng_next(rng) >> 11) / 9007199254740992.0 * sum, acc = 0;
    for (int i = 0; i < k; i++) {
        acc += exp((cand[i].logit - mx) / temp);
        if (r < acc) return cand[i].id;
    }
    return cand[k - 1].id;
}

static char *read_file(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, fp);
        if (n < cap) break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) free(buf);
        buf = nb;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (!buf || bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int cmd_generate(int argc, char **argv) {
    enum { OPT_TEMP = 256, OPT_TOPK, OPT_SEED, OPT_JSON, OPT_TIMINGS, OPT_CPU };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},     {"prompt", required_argument, NULL, 'p'},
        {"prompt-file", required_argument, NULL, 'f'}, {"n-predict", required_argument, NULL, 'n'},
        {"temp", required_argument, NULL, OPT_TEMP},   {"top-k", required_argument, NULL, OPT_TOPK},
        {"seed", required_argument, NULL, OPT_SEED},   {"threads", required_argument, NULL, 't'},
        {"ctx", required_argument, NULL, 'c'},         {"json", no_argument, NULL, OPT_JSON},
        {"timings", no_argument, NULL, OPT_TIMINGS},   {"cpu", required_argument, NULL, OPT_CPU},
        {"help", no_argument, NULL, 'h'},              {NULL, 0, NULL, 0},
    };
    const char *model_path = NULL, *prompt = NULL, *prompt_file = NULL, *cpu = NULL;
    long n_predict = 64, top_k = 40, n_threads = 0, n_ctx = 0;
    double temp = 0.0;
    uint64_t seed = 0;
    int have_seed = 0, json = 0, timings = 0, opt;
    opterr = 0;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":m:p:f:n:t:c:h", opts, NULL)) != -1) {
        char *end;
        switch (opt) {
        case 'm': model_path = optarg; break;
        case 'p': prompt = optarg; break;
        case 'f': prompt_file = optarg; break;
        case 'n':
            if (parse_long(optarg, 0, 1L << 24, &n_predict)) return cli_usage_error(CMD, "-n: bad value '%s'", optarg);
            break;
        case OPT_TEMP:
            errno = 0;
            temp = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(temp >= 0.0) || !isfinite(temp))
                return cli_usage_error(CMD, "--temp: bad value '%s'", optarg);
            break;
        case OPT_TOPK:
            if (parse_long(optarg, 0, 1L << 30, &top_k)) return cli_usage_error(CMD, "--top-k: bad value '%s'", optarg);
            break;
        case OPT_SEED: {
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-') return cli_usage_error(CMD, "--seed: bad value '%s'", optarg);
            seed = v;
            have_seed = 1;
            break;
        }
        case 't':
            if (parse_long(optarg, 1, 1024, &n_threads)) return cli_usage_error(CMD, "--threads: bad value '%s'", optarg);
            break;
        case 'c':
            if (parse_long(optarg, 1, 1L << 24, &n_ctx)) return cli_usage_error(CMD, "--ctx: bad value '%s'", optarg);
            break;
        case OPT_JSON: json = 1; break;
        case OPT_TIMINGS: timings = 1; break;
        case OPT_CPU: cpu = optarg; break;
        case 'h': usage(stdout); return CLI_OK;
        case ':': return cli_usage_error(CMD, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error(CMD, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (!model_path && optind < argc) model_path = argv[optind++];
    if (!prompt && !prompt_file && optind < argc) prompt = argv[optind++];
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!model_path) return cli_usage_error(CMD, "no model given (-m PATH)");
    if (!prompt == !prompt_file) return cli_usage_error(CMD, "give exactly one prompt (PROMPT, --prompt or --prompt-file)");
    int level = -1;
    if (cpu && (level = cpu_level_from_name(cpu)) < 0) return cli_usage_error(CMD, "--cpu: unknown level '%s'", cpu);
    if (!have_seed) seed = (uint64_t)time(NULL);

    tl_err_t err;
    model_t *m = NULL;
    if (model_load(&m, model_path, (int)n_threads, &err)) return cli_fail(CMD, "%s", err.msg);
    if (level >= 0) model_set_cpu_level(m, (cpu_level_t)level);
    const model_config_t *cf = model_config(m);
    const tokenizer_t *tok = model_tokenizer(m);
    if (n_ctx == 0) n_ctx = cf->n_ctx_train < 2048 ? (long)cf->n_ctx_train : 2048;

    int rc = CLI_OK;
    char *text = NULL, *out_text = NULL;
    size_t text_len = 0, out_len = 0;
    int32_t *ids = NULL, *gen = NULL;
    size_t n_ids = 0;
    int n_gen = 0, n_decode = 0;
    float *logits = NULL;
    cand_t *cand = NULL;
    model_ctx_t *c = NULL;
    double prompt_ms = 0, gen_ms = 0;
    if (prompt_file) {
        if (!(text = read_file(prompt_file, &text_len))) {
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
    if (n_ids > (size_t)n_ctx) {
        rc = cli_fail(CMD, "the prompt (%zu tokens) is longer than the context of %ld tokens (--ctx)", n_ids, n_ctx);
        goto done;
    }
    logits = malloc(sizeof(float) * cf->n_vocab);
    gen = malloc(sizeof(int32_t) * (size_t)(n_predict + 1));
    cand = temp > 0 ? malloc(sizeof(cand_t) * cf->n_vocab) : NULL;
    if (!logits || !gen || (temp > 0 && !cand) || model_ctx_new(&c, m, (int)n_ctx, &err)) {
        rc = cli_fail(CMD, "%s", logits && gen ? err.msg : "out of memory");
        goto done;
    }
    double t0 = now_ms();
    if (model_eval(c, ids, (int)n_ids, logits, false, &err)) {
        rc = cli_fail(CMD, "%s", err.msg);
        goto done;
    }
    prompt_ms = now_ms() - t0;
    t0 = now_ms();
    while (n_gen < n_predict) {
        int32_t id = temp > 0 ? sample(logits, (int)cf->n_vocab, (float)temp, (int)top_k, &seed, cand)
                              : argmax(logits, (int)cf->n_vocab);
        if (tokenizer_is_eog(tok, id)) break;
        gen[n_gen++] = id;
        if (!json) {
            char buf[256];
            int nb = tokenizer_token_to_bytes(tok, id, buf, sizeof buf);
            if (nb > 0 && (size_t)nb <= sizeof buf) fwrite(buf, 1, (size_t)nb, stdout);
            fflush(stdout);
        }
        if (n_gen == n_predict || model_ctx_pos(c) >= n_ctx) break;
        if (model_eval(c, &id, 1, logits, false, &err)) {
            rc = cli_fail(CMD, "%s", err.msg);
            goto done;
        }
        n_decode++;
    }
    gen_ms = now_ms() - t0;
    double p_tps = prompt_ms > 0 ? n_ids / (prompt_ms / 1e3) : 0, g_tps = gen_ms > 0 ? n_decode / (gen_ms / 1e3) : 0;
    if (json) {
        if (tokenizer_decode(tok, gen, (size_t)n_gen, &out_text, &out_len, &err)) {
            rc = cli_fail(CMD, "%s", err.msg);
            goto done;
        }
        /* JSON must be valid UTF-8: the last tokens may end inside a character */
        char *clean = NULL;
        size_t clean_len = 0;
        if (tokenizer_utf8_sanitize(out_text, out_len, &clean, &clean_len)) {
            rc = cli_fail(CMD, "out of memory");
            goto done;
        }
        free(out_text);
        out_text = clean;
        out_len = clean_len;
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "text", out_text);
        cJSON *arr = cJSON_AddArrayToObject(root, "ids");
        for (int i = 0; i < n_gen; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(gen[i]));
        cJSON_AddNumberToObject(root, "n_prompt", (double)n_ids);
        cJSON_AddNumberToObject(root, "n_gen", n_gen);
        cJSON_AddNumberToObject(root, "n_decode", n_decode);
        cJSON_AddNumberToObject(root, "prompt_ms", prompt_ms);
        cJSON_AddNumberToObject(root, "gen_ms", gen_ms);
        cJSON_AddNumberToObject(root, "prompt_tok_s", p_tps);
        cJSON_AddNumberToObject(root, "gen_tok_s", g_tps);
        cJSON_AddNumberToObject(root, "threads", model_n_threads(m));
        char *s = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        if (!s) {
            rc = cli_fail(CMD, "out of memory");
            goto done;
        }
        printf("%s\n", s);
        free(s);
    } else {
        printf("\n");
    }
    if (timings)
        fprintf(stderr, "prompt: %zu tokens in %.2f ms (%.1f tok/s); generation: %d passes in %.2f ms (%.1f tok/s); %d threads, %s\n",
                n_ids, prompt_ms, p_tps, n_decode, gen_ms, g_tps, model_n_threads(m), cpu_level_name(model_cpu_level(m)));
done:
    model_ctx_free(c);
    free(cand);
    free(logits);
    free(gen);
    free(ids);
    free(text);
    free(out_text);
    model_free(m);
    return rc;
}
