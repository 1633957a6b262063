/* tasklm merge: fold a LoRA adapter into a base model (see quant/merge.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "quant/merge.h"
#include "quant/quantize.h"
#include "quant/types.h"
#include "task/calib.h"

#define CMD "merge"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tasklm merge -m BASE.gguf --lora ADAPTER.gguf --out OUT.gguf [options]\n\n"
            "Folds a LoRA adapter into the base weights, W' = W + (alpha / r) * B . A, for\n"
            "every weight the adapter targets, and writes OUT atomically with every other\n"
            "tensor and all metadata (tokenizer included) copied unchanged.\n\n"
            "  -m, --model PATH        base model (or give it as the first argument)\n"
            "  -l, --lora PATH         adapter GGUF (general.type=adapter, adapter.type=lora)\n"
            "  -o, --out PATH          output file\n"
            "      --requantize TYPE   store merged weights as TYPE (q8_0, q4_0, q4_k, ...) or\n"
            "                          'same' (each weight's base type); default f32\n"
            "      --adapted-type TYPE store the weights the adapter changes as TYPE instead (e.g.\n"
            "                          q8_0 with --requantize same over a 4-bit base: rounding W + dW\n"
            "                          back to the 4-bit grid erases most of a small dW)\n"
            "      --label-bias SPEC   set the label-prior bias the output carries\n"
            "                          (tasklm.label_bias, \"yes=0.3,no=-0.1\"; none: drop it);\n"
            "                          default: the adapter's (tasklm train writes it), else the base's\n"
            "  -t, --threads N         worker threads (default: one per core)\n"
            "      --json              print the summary as one JSON object\n"
            "  -h, --help              this help\n");
}

int cmd_merge(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'}, {"lora", required_argument, NULL, 'l'},
        {"out", required_argument, NULL, 'o'},   {"requantize", required_argument, NULL, 'R'},
        {"threads", required_argument, NULL, 't'}, {"json", no_argument, NULL, 'j'},
        {"label-bias", required_argument, NULL, 'B'}, {"adapted-type", required_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    const char *base = NULL, *lora = NULL, *out = NULL, *req = NULL, *bias = NULL, *adapted = NULL;
    int n_threads = 0, json = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "m:l:o:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': base = optarg; break;
        case 'l': lora = optarg; break;
        case 'o': out = optarg; break;
        case 'R': req = optarg; break;
        case 'B': bias = optarg; break;
        case 'A': adapted = optarg; break;
        case 't': {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 1 || v > 256)
                return cli_usage_error(CMD, "--threads must be an integer in 1..256, not '%s'", optarg);
            n_threads = (int)v;
            break;
        }
        case 'j': json = 1; break;
        case 'h': usage(stdout); return CLI_OK;
        default: return cli_usage_error(CMD, "unknown or incomplete option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (optind < argc && !base) base = argv[optind++];
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!base || !lora || !out) return cli_usage_error(CMD, "need --model, --lora and --out (see --help)");
    if (!strcmp(out, base) || !strcmp(out, lora)) return cli_usage_error(CMD, "the output must not be an input file");
    merge_opts_t mo = {.out_type = GGML_TYPE_F32, .n_threads = n_threads, .label_bias = bias};
    tl_err_t berr = {0};
    if (bias && strcmp(bias, "none") && label_bias_check(bias, &berr)) return cli_usage_error(CMD, "%s", berr.msg);
    if (req && !strcmp(req, "same")) mo.out_type = MERGE_TYPE_SAME;
    else if (req) {
        int t = quantize_type_from_name(req);
        if (t < 0) return cli_usage_error(CMD, "unknown or unwritable --requantize type '%s'", req);
        mo.out_type = (uint32_t)t;
    }
    if (adapted) {
        int t = quantize_type_from_name(adapted);
        if (t < 0) return cli_usage_error(CMD, "unknown or unwritable --adapted-type '%s'", adapted);
        mo.adapted_set = 1;
        mo.adapted_type = (uint32_t)t;
    }
    merge_report_t r;
    tl_err_t err = {0};
    if (merge_lora_file(base, lora, out, &mo, &r, &err)) return cli_fail(CMD, "%s", err.msg);
    const char *tname = mo.out_type == MERGE_TYPE_SAME ? "same" : ggml_type_name(mo.out_type);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "base", base);
        cJSON_AddStringToObject(o, "lora", lora);
        cJSON_AddStringToObject(o, "output", out);
        cJSON_AddStringToObject(o, "type", tname);
        cJSON_AddNumberToObject(o, "n_tensors", r.n_tensors);
        cJSON_AddNumberToObject(o, "n_merged", r.n_merged);
        cJSON_AddNumberToObject(o, "rank", r.rank);
        cJSON_AddNumberToObject(o, "alpha", r.alpha);
        cJSON_AddNumberToObject(o, "scale", r.scale);
        cJSON_AddNumberToObject(o, "out_bytes", (double)r.out_bytes);
        char *s = cJSON_PrintUnformatted(o);
        if (s) puts(s);
        free(s);
        cJSON_Delete(o);
    } else {
        printf("merged %d of %d tensors (rank %d, alpha %g, scale %g) as %s into %s (%llu bytes)\n", r.n_merged,
               r.n_tensors, r.rank, (double)r.alpha, (double)r.scale, tname, out, (unsigned long long)r.out_bytes);
    }
    return CLI_OK;
}
