/* tasklm info: a model's architecture, hyper-parameters, tensor types and
 * tokenizer, as text or (--json) one JSON object. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "io/gguf.h"
#include "quant/types.h"

static const char *const hparam_keys[] = {
    "block_count", "context_length", "embedding_length", "feed_forward_length", "attention.head_count",
    "attention.head_count_kv", "rope.freq_base", "attention.layer_norm_rms_epsilon", "rope.dimension_count",
};
static const char *const hparam_names[] = {
    "block_count", "context_length", "embedding_length", "feed_forward_length", "head_count",
    "head_count_kv", "rope_freq_base", "rms_eps", "rope_dimension_count",
};
#define N_HPARAMS (sizeof hparam_keys / sizeof hparam_keys[0])

static void usage(FILE *out) {
    fprintf(out, "usage: tasklm info [-m] MODEL [--json] [--tensors]\n\n"
                 "Prints a GGUF model's architecture, hyper-parameters, parameter count,\n"
                 "tensor types, tokenizer and file facts.\n\n"
                 "  -m, --model PATH  the model (or give it as the first argument)\n"
                 "      --json        one JSON object on stdout\n"
                 "      --tensors     also list every tensor (name, type, shape)\n"
                 "  -h, --help        this help\n");
}

/* Shortest decimal that reads back as the same float. */
static double tidy_f32(double v) {
    float f = (float)v;
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if ((float)strtod(buf, NULL) == f) return strtod(buf, NULL);
    }
    return v;
}

/* A numeric metadata value as a JSON number, or NULL if absent / not numeric. */
static cJSON *number_of(const gguf_file_t *f, const char *key) {
    const gguf_kv_t *kv = gguf_find_kv(f, key);
    if (!kv) return NULL;
    const gguf_value_t *v = &kv->value;
    switch (v->type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: case GGUF_TYPE_UINT64:
        return cJSON_CreateNumber((double)v->v.u64);
    case GGUF_TYPE_INT8: case GGUF_TYPE_INT16: case GGUF_TYPE_INT32: case GGUF_TYPE_INT64:
        return cJSON_CreateNumber((double)v->v.i64);
    case GGUF_TYPE_FLOAT32: return cJSON_CreateNumber(tidy_f32(v->v.f64));
    case GGUF_TYPE_FLOAT64: return cJSON_CreateNumber(v->v.f64);
    default: return NULL;
    }
}

static cJSON *string_of(const gguf_file_t *f, const char *key) {
    gguf_str_t s;
    if (gguf_get_str(f, key, &s, NULL)) return NULL;
    char *tmp = strndup(s.ptr, (size_t)s.len);
    cJSON *j = tmp ? cJSON_CreateString(tmp) : NULL;
    free(tmp);
    return j;
}

static void add_or_null(cJSON *obj, const char *name, cJSON *item) {
    cJSON_AddItemToObject(obj, name, item ? item : cJSON_CreateNull());
}

static cJSON *vocab_size(const gguf_file_t *f, const char *arch) {
    const gguf_value_t *arr;
    if (gguf_get_arr(f, "tokenizer.ggml.tokens", &arr, NULL) == 0) return cJSON_CreateNumber((double)arr->v.arr.n);
    char key[160];
    snprintf(key, sizeof key, "%s.vocab_size", arch);
    return number_of(f, key);
}

static cJSON *tensor_list(const gguf_file_t *f) {
    cJSON *list = cJSON_CreateArray();
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor_t *t = gguf_tensor(f, i);
        cJSON *o = cJSON_CreateObject(), *shape = cJSON_CreateArray();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "type", ggml_type_name(t->type));
        for (uint32_t d = 0; d < t->n_dims; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->ne[d]));
        cJSON_AddItemToObject(o, "shape", shape);
        cJSON_AddNumberToObject(o, "offset", (double)t->offset);
        cJSON_AddNumberToObject(o, "nbytes", (double)t->nbytes);
        cJSON_AddItemToArray(list, o);
    }
    return list;
}

/* Everything info reports, as one object (the text view is printed from it). */
static cJSON *build_report(const gguf_file_t *f, int with_tensors) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "file", gguf_path(f));
    cJSON_AddNumberToObject(r, "file_size", (double)gguf_file_size(f));
    cJSON_AddNumberToObject(r, "gguf_version", gguf_version(f));
    cJSON_AddNumberToObject(r, "alignment", (double)gguf_alignment(f));
    cJSON *arch = string_of(f, "general.architecture");
    const char *arch_s = arch ? arch->valuestring : "";
    add_or_null(r, "architecture", arch);
    add_or_null(r, "name", string_of(f, "general.name"));
    for (size_t i = 0; i < N_HPARAMS; i++) {
        char key[160];
        snprintf(key, sizeof key, "%s.%s", arch_s, hparam_keys[i]);
        add_or_null(r, hparam_names[i], number_of(f, key));
    }
    add_or_null(r, "vocab_size", vocab_size(f, arch_s));
    add_or_null(r, "tokenizer_model", string_of(f, "tokenizer.ggml.model"));
    add_or_null(r, "tokenizer_pre", string_of(f, "tokenizer.ggml.pre"));
    add_or_null(r, "file_type", number_of(f, "general.file_type"));
    uint64_t counts[GGML_TYPE_COUNT] = {0};
    double n_params = 0;
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor_t *t = gguf_tensor(f, i);
        counts[t->type]++; /* the reader rejects unknown type ids */
        n_params += (double)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    }
    cJSON_AddNumberToObject(r, "n_params", n_params);
    cJSON *types = cJSON_AddObjectToObject(r, "tensor_types");
    for (uint32_t t = 0; t < GGML_TYPE_COUNT; t++)
        if (counts[t]) cJSON_AddNumberToObject(types, ggml_type_name(t), (double)counts[t]);
    cJSON_AddNumberToObject(r, "n_tensors", (double)gguf_n_tensors(f));
    cJSON_AddNumberToObject(r, "n_kv", (double)gguf_n_kv(f));
    if (with_tensors) cJSON_AddItemToObject(r, "tensors", tensor_list(f));
    return r;
}

static void print_text(const cJSON *r) {
    for (const cJSON *it = r->child; it; it = it->next) {
        if (!strcmp(it->string, "tensors")) continue;
        printf("%-22s ", it->string);
        if (cJSON_IsString(it)) printf("%s\n", it->valuestring);
        else if (cJSON_IsNumber(it)) printf("%.10g\n", it->valuedouble);
        else if (cJSON_IsObject(it)) {
            for (const cJSON *c = it->child; c; c = c->next)
                printf("%s%s %d", c == it->child ? "" : ", ", c->string, c->valueint);
            printf("\n");
        } else printf("-\n");
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(r, "tensors");
    for (const cJSON *t = list ? list->child : NULL; t; t = t->next) {
        printf("  %-40s %-8s", cJSON_GetObjectItem(t, "name")->valuestring, cJSON_GetObjectItem(t, "type")->valuestring);
        const cJSON *shape = cJSON_GetObjectItem(t, "shape");
        for (const cJSON *d = shape->child; d; d = d->next) printf("%s%.0f", d == shape->child ? " [" : ", ", d->valuedouble);
        printf("]\n");
    }
}

int cmd_info(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'}, {"json", no_argument, NULL, 'j'},
        {"tensors", no_argument, NULL, 't'},     {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model = NULL;
    int json = 0, tensors = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'j': json = 1; break;
        case 't': tensors = 1; break;
        case 'h': usage(stdout); return CLI_OK;
        default: return cli_usage_error("info", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        if (model) return cli_usage_error("info", "model given twice ('%s' and '%s')", model, argv[optind]);
        model = argv[optind++];
    }
    if (optind < argc) return cli_usage_error("info", "unexpected argument '%s'", argv[optind]);
    if (!model) return cli_usage_error("info", "no model given");
    gguf_file_t *f;
    tl_err_t err = {{0}};
    if (gguf_open(&f, model, &err)) return cli_fail("info", "%s", err.msg);
    cJSON *r = build_report(f, tensors);
    gguf_close(f);
    if (!r) return cli_fail("info", "out of memory");
    if (json) {
        char *s = cJSON_PrintUnformatted(r);
        if (s) printf("%s\n", s);
        free(s);
    } else {
        print_text(r);
    }
    cJSON_Delete(r);
    return CLI_OK;
}
