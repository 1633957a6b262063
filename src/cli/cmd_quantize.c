/* tasklm quantize: re-encode a GGUF model's weight matrices in another type
 * (see quant/quantize_model.h for the per-tensor rules). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "quant/awq_calib.h"
#include "quant/quantize.h"
#include "quant/quantize_model.h"

#define CMD "quantize"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tasklm quantize [-m] IN.gguf [--out] OUT.gguf --type TYPE [options]\n\n"
            "Re-encodes every 2-D weight matrix of IN in TYPE and writes OUT (atomically),\n"
            "with all metadata copied and general.file_type set. Input tensors of any type\n"
            "tasklm can read are dequantized first; 1-D tensors (norms) are stored as f32.\n\n"
            "  -m, --model PATH           input model (or give it as the first argument)\n"
            "  -o, --out PATH             output file (or give it as the second argument)\n"
            "      --type TYPE            f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k iq4_nl\n"
            "      --type-override SPEC   PATTERN=TYPE[,PATTERN=TYPE...]; PATTERN is a glob on the\n"
            "                             tensor name, and also matches PATTERN.* (so token_embd\n"
            "                             matches token_embd.weight); first match wins; repeatable\n"
            "      --pure                 no default choices: every matrix gets TYPE (or its override)\n"
            "      --calib CSV            calibrated quantization: weight each column's error by the\n"
            "                             mean squared activation over prompts built from CSV rows\n"
            "                             (the task's columns, e.g. elected_name,partner_name)\n"
            "      --calib-rows N         rows of CSV to use (default 128)\n"
            "      --task NAME            task whose template renders the calibration prompts: the\n"
            "                             model's own task (folder under tasks/, default namematch)\n"
            "      --task-dir DIR         task folder path (overrides --task)\n"
            "      --calib-template PATH  prompt template (default: the task's template.txt)\n"
            "  -t, --threads N            worker threads (default: one per core)\n"
            "      --json                 print the summary as one JSON object\n"
            "  -h, --help                 this help\n\n"
            "Defaults: below 6 bits per weight (q4_*, q5_*, iq4_nl) token_embd and output are\n"
            "kept at q8_0 unless --pure or an override says otherwise. Rows whose length is not\n"
            "a multiple of the type's block fall back as llama.cpp does (q4_k->q5_0, q5_k->q5_1,\n"
            "q6_k->q8_0, others->f16), with a warning. Calibration affects q4_k, q5_k, q6_k and\n"
            "iq4_nl (the types whose scales are searched).\n");
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static double rel_rmse(double se, double sr) { return sr > 0.0 ? __builtin_sqrt(se / sr) : 0.0; }

static void print_text(const char *in, const char *out, const quantize_report_t *r, uint32_t type, bool calib) {
    double se = 0, sr = 0;
    for (int i = 0; i < r->n_tensors; i++) {
        se += r->tensors[i].sq_err;
        sr += r->tensors[i].sq_ref;
    }
    printf("%s -> %s\n", in, out);
    printf("type %s%s, general.file_type %u, %d tensors:", ggml_type_name(type), calib ? " (calibrated)" : "",
           r->file_type, r->n_tensors);
    for (int t = 0; t < GGML_TYPE_COUNT; t++)
        if (r->count_by_type[t]) printf(" %s %d", ggml_type_name((uint32_t)t), r->count_by_type[t]);
    printf("\nsize %.2f MiB -> %.2f MiB (%.3fx), relative RMS weight error %.5f, %.2f s\n",
           (double)r->in_bytes / 1048576.0, (double)r->out_bytes / 1048576.0,
           r->in_bytes ? (double)r->out_bytes / (double)r->in_bytes : 0.0, rel_rmse(se, sr), r->seconds);
}

static void print_json(const char *in, const char *out, const quantize_report_t *r, uint32_t type, bool calib) {
    cJSON *o = cJSON_CreateObject(), *types = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    double se = 0, sr = 0;
    cJSON_AddStringToObject(o, "input", in);
    cJSON_AddStringToObject(o, "output", out);
    cJSON_AddStringToObject(o, "type", ggml_type_name(type));
    cJSON_AddBoolToObject(o, "calibrated", calib);
    cJSON_AddNumberToObject(o, "file_type", r->file_type);
    cJSON_AddNumberToObject(o, "in_bytes", (double)r->in_bytes);
    cJSON_AddNumberToObject(o, "out_bytes", (double)r->out_bytes);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    cJSON_AddNumberToObject(o, "n_tensors", r->n_tensors);
    cJSON_AddNumberToObject(o, "n_fallback", r->n_fallback);
    for (int t = 0; t < GGML_TYPE_COUNT; t++)
        if (r->count_by_type[t]) cJSON_AddNumberToObject(types, ggml_type_name((uint32_t)t), r->count_by_type[t]);
    cJSON_AddItemToObject(o, "types", types);
    for (int i = 0; i < r->n_tensors; i++) {
        const quantize_tensor_rec_t *t = &r->tensors[i];
        cJSON *e = cJSON_CreateObject();
        se += t->sq_err;
        sr += t->sq_ref;
        cJSON_AddStringToObject(e, "name", t->name);
        cJSON_AddStringToObject(e, "type_in", ggml_type_name(t->type_in) ? ggml_type_name(t->type_in) : "?");
        cJSON_AddStringToObject(e, "type_out", ggml_type_name(t->type_out) ? ggml_type_name(t->type_out) : "?");
        cJSON_AddNumberToObject(e, "n_elements", (double)t->n_elements);
        cJSON_AddBoolToObject(e, "fallback", t->fallback);
        cJSON_AddBoolToObject(e, "importance", t->importance);
        cJSON_AddNumberToObject(e, "sq_err", t->sq_err);
        cJSON_AddNumberToObject(e, "rel_rmse", rel_rmse(t->sq_err, t->sq_ref));
        cJSON_AddItemToArray(arr, e);
    }
    cJSON_AddNumberToObject(o, "rel_rmse", rel_rmse(se, sr));
    cJSON_AddItemToObject(o, "tensors", arr);
    char *s = cJSON_PrintUnformatted(o);
    if (s) puts(s);
    free(s);
    cJSON_Delete(o);
}

int cmd_quantize(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},   {"out", required_argument, NULL, 'o'},
        {"type", required_argument, NULL, 'T'},    {"type-override", required_argument, NULL, 'O'},
        {"pure", no_argument, NULL, 'P'},          {"threads", required_argument, NULL, 't'},
        {"calib", required_argument, NULL, 'c'},   {"calib-rows", required_argument, NULL, 'r'},
        {"calib-template", required_argument, NULL, 'e'},
        {"task", required_argument, NULL, 'k'},    {"task-dir", required_argument, NULL, 'D'},
        {"json", no_argument, NULL, 'j'},          {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *in = NULL, *out = NULL, *type_name = NULL, *calib_csv = NULL, *calib_tmpl = NULL;
    const char *task_name = NULL, *task_dir = NULL;
    char dirbuf[512];
    int n_threads = 0, calib_rows = 128, json = 0, c;
    quantize_override_t *ov = NULL;
    int n_ov = 0;
    bool pure = false;
    tl_err_t err;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "m:o:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': in = optarg; break;
        case 'o': out = optarg; break;
        case 'T': type_name = optarg; break;
        case 'O':
            if (quantize_parse_overrides(optarg, &ov, &n_ov, &err)) {
                free(ov);
                return cli_usage_error(CMD, "%s", err.msg);
            }
            break;
        case 'P': pure = true; break;
        case 't':
            if (parse_int(optarg, 1, 256, &n_threads)) {
                free(ov);
                return cli_usage_error(CMD, "--threads must be an integer in 1..256, not '%s'", optarg);
            }
            break;
        case 'c': calib_csv = optarg; break;
        case 'r':
            if (parse_int(optarg, 1, 1000000, &calib_rows)) {
                free(ov);
                return cli_usage_error(CMD, "--calib-rows must be a positive integer, not '%s'", optarg);
            }
            break;
        case 'e': calib_tmpl = optarg; break;
        case 'k': task_name = optarg; break;
        case 'D': task_dir = optarg; break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); free(ov); return CLI_OK;
        default:
            free(ov);
            return cli_usage_error(CMD, "unknown or incomplete option '%s' (see --help)", argv[optind - 1]);
        }
    }
    for (; optind < argc; optind++) {
        if (!in) in = argv[optind];
        else if (!out) out = argv[optind];
        else {
            free(ov);
            return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
        }
    }
    if (!in || !out || !type_name) {
        free(ov);
        return cli_usage_error(CMD, "need an input model, an output path and --type (see --help)");
    }
    int type = quantize_type_from_name(type_name);
    if (type < 0) {
        free(ov);
        return cli_usage_error(CMD, "unknown or unwritable --type '%s'", type_name);
    }
    if (strcmp(in, out) == 0) {
        free(ov);
        return cli_usage_error(CMD, "the output must not be the input file");
    }
    if ((task_name || task_dir || calib_tmpl) && !calib_csv) {
        free(ov);
        return cli_usage_error(CMD, "%s only matters with --calib CSV", task_dir ? "--task-dir" : task_name ? "--task" : "--calib-template");
    }
    if (task_name && !(task_dir = cli_task_dir(CMD, task_name, task_dir, dirbuf, sizeof dirbuf))) {
        free(ov);
        return CLI_USAGE;
    }
    quantize_opts_t qo = {.type = (uint32_t)type, .overrides = ov, .n_overrides = n_ov, .pure = pure,
                          .n_threads = n_threads};
    calib_t *cal = NULL;
    if (calib_csv) {
        calib_opts_t co = {.model_path = in, .csv_path = calib_csv, .task_dir = task_dir, .template_path = calib_tmpl,
                           .n_rows = calib_rows, .n_threads = n_threads};
        if (calib_collect(&cal, &co, &err)) {
            free(ov);
            return cli_fail(CMD, "%s", err.msg);
        }
        qo.importance = calib_importance;
        qo.importance_ctx = cal;
        fprintf(stderr, "tasklm quantize: calibration: %d prompts, %ld tokens from %s\n", calib_n_prompts(cal),
                calib_n_tokens(cal), calib_csv);
        if (!quantize_type_uses_importance((uint32_t)type))
            fprintf(stderr, "tasklm quantize: warning: --calib has no effect on %s (round-to-nearest); it affects "
                            "q4_k, q5_k, q6_k and iq4_nl\n", ggml_type_name((uint32_t)type));
    }
    quantize_report_t rep;
    int rc = quantize_model_file(in, out, &qo, &rep, &err);
    if (rc == 0) {
        int n_q = 0;
        uint32_t q_type = 0;
        for (int i = 0; i < rep.n_tensors; i++) {
            uint32_t ti = rep.tensors[i].type_in;
            if (ti != GGML_TYPE_F32 && ti != GGML_TYPE_F16 && ti != GGML_TYPE_BF16 && rep.tensors[i].type_out != ti) {
                if (!n_q) q_type = ti;
                n_q++;
            }
        }
        if (n_q)
            fprintf(stderr, "tasklm quantize: note: %d tensor(s) of %s are already quantized (e.g. %s); they were "
                            "dequantized first, so the result carries their rounding too\n", n_q, in, ggml_type_name(q_type));
        /* one warning line per (wanted, used) pair, naming the first tensor */
        for (int i = 0; i < rep.n_tensors; i++) {
            const quantize_tensor_rec_t *t = &rep.tensors[i];
            int n = 0, first = 1;
            if (!t->fallback) continue;
            for (int k = 0; k < rep.n_tensors; k++) {
                const quantize_tensor_rec_t *u = &rep.tensors[k];
                if (!u->fallback || u->type_wanted != t->type_wanted || u->type_out != t->type_out) continue;
                if (k < i) first = 0;
                n++;
            }
            if (first)
                fprintf(stderr, "tasklm quantize: warning: %d tensor(s) (e.g. %s, rows of %lld) do not fill %s blocks; using %s\n",
                        n, t->name, (long long)t->n_in, ggml_type_name(t->type_wanted), ggml_type_name(t->type_out));
        }
        if (json) print_json(in, out, &rep, (uint32_t)type, cal != NULL);
        else print_text(in, out, &rep, (uint32_t)type, cal != NULL);
    }
    quantize_report_free(&rep);
    calib_free(cal);
    free(ov);
    return rc == 0 ? CLI_OK : cli_fail(CMD, "%s", err.msg);
}
