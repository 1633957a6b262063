/* tasklm tokenize: the token ids of a text (one line, space-separated), or
 * with --json the ids and vocabulary pieces; --jsonl tokenizes many texts in
 * one process (one JSON string per input line, one JSON object per output line). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "io/gguf.h"
#include "tokenizer/tokenizer.h"

#define CMD "tokenize"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tasklm tokenize [-m] MODEL [TEXT] [options]\n\n"
            "Prints the token ids of TEXT on one line, separated by spaces.\n\n"
            "  -m, --model PATH  the model (or give it as the first argument)\n"
            "  -f, --file PATH   read the text from a file ('-' for standard input)\n"
            "      --bos         prepend the BOS token (default: no BOS)\n"
            "      --special     recognise control tokens such as <|im_start|> in the text\n"
            "      --no-special  treat control tokens as plain text (default; user-defined\n"
            "                    tokens are always recognised, as llama.cpp does).\n"
            "                    These match llama_cpp.Llama.tokenize(special=True/False).\n"
            "      --json        print {\"ids\":[...],\"pieces\":[...]} (pieces = vocabulary strings)\n"
            "      --jsonl       batch mode: each input line (from --file, or standard input)\n"
            "                    is a JSON string or {\"text\": ...}; prints one line per input:\n"
            "                    {\"ids\":[...],\"decoded\":\"...\"} (decoded = the ids decoded back)\n"
            "  -h, --help        this help\n\n"
            "The text must be valid UTF-8; anything else is an error.\n");
}

static char *read_all(FILE *fp, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, fp)) > 0) {
        n += got;
        if (n + 1 == cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                return NULL;
            }
            buf = b;
            cap *= 2;
        }
    }
    if (ferror(fp)) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static cJSON *ids_array(const int32_t *ids, size_t n) {
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
    return arr;
}

static int print_json(const tokenizer_t *tok, const int32_t *ids, size_t n) {
    cJSON *root = cJSON_CreateObject();
    cJSON *pieces = cJSON_CreateArray();
    if (!root || !pieces) return -1;
    cJSON_AddItemToObject(root, "ids", ids_array(ids, n));
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *p = tokenizer_piece(tok, ids[i], &len);
        char *s = strndup(p ? p : "", p ? len : 0);
        cJSON_AddItemToArray(pieces, cJSON_CreateString(s ? s : ""));
        free(s);
    }
    cJSON_AddItemToObject(root, "pieces", pieces);
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!out) return -1;
    puts(out);
    free(out);
    return 0;
}

/* One JSON text per line in, one JSON object per line out. */
static int run_jsonl(const tokenizer_t *tok, char *input, size_t len, int flags) {
    size_t line_no = 0;
    char *p = input, *end = input + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *eol = nl ? nl : end;
        *eol = 0;
        line_no++;
        char *line = p;
        p = nl ? nl + 1 : end;
        if (line[0] == 0 || (line[0] == '\r' && line[1] == 0)) continue;
        cJSON *j = cJSON_Parse(line);
        cJSON *txt = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "text") : j;
        if (!cJSON_IsString(txt)) {
            cJSON_Delete(j);
            return cli_fail(CMD, "input line %zu: expected a JSON string or {\"text\": string}", line_no);
        }
        const char *text = txt->valuestring;
        size_t tlen = strlen(text);
        size_t bad = tokenizer_utf8_check(text, tlen);
        if (bad != tlen) {
            cJSON_Delete(j);
            return cli_fail(CMD, "input line %zu: text is not valid UTF-8 (byte %zu)", line_no, bad);
        }
        int32_t *ids;
        size_t n;
        char *dec = NULL;
        tl_err_t err;
        if (tokenizer_encode(tok, text, tlen, flags, &ids, &n, &err) != 0 ||
            tokenizer_decode(tok, ids, n, &dec, NULL, &err) != 0) {
            cJSON_Delete(j);
            return cli_fail(CMD, "input line %zu: %s", line_no, err.msg);
        }
        cJSON_Delete(j);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "ids", ids_array(ids, n));
        cJSON_AddItemToObject(o, "decoded", cJSON_CreateString(dec));
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        free(ids);
        free(dec);
        if (!s) return cli_fail(CMD, "out of memory");
        puts(s);
        free(s);
    }
    return CLI_OK;
}

int cmd_tokenize(int argc, char **argv) {
    enum { OPT_BOS = 256, OPT_SPECIAL, OPT_NO_SPECIAL, OPT_JSON, OPT_JSONL };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},      {"file", required_argument, NULL, 'f'},
        {"bos", no_argument, NULL, OPT_BOS},          {"special", no_argument, NULL, OPT_SPECIAL},
        {"no-special", no_argument, NULL, OPT_NO_SPECIAL}, {"json", no_argument, NULL, OPT_JSON},
        {"jsonl", no_argument, NULL, OPT_JSONL},      {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *file = NULL;
    int flags = 0;
    bool json = false, jsonl = false;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":m:f:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'f': file = optarg; break;
        case OPT_BOS: flags |= TOK_ADD_BOS; break;
        case OPT_SPECIAL: flags |= TOK_PARSE_SPECIAL; break;
        case OPT_NO_SPECIAL: flags &= ~TOK_PARSE_SPECIAL; break;
        case OPT_JSON: json = true; break;
        case OPT_JSONL: jsonl = true; break;
        case 'h': usage(stdout); return CLI_OK;
        case ':': return cli_usage_error(CMD, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error(CMD, "unknown option '%s'", argv[optind - 1]);
        }
    }
    int pos = optind;
    if (!model) {
        if (pos >= argc) return cli_usage_error(CMD, "no model given");
        model = argv[pos++];
    }
    const char *text_arg = NULL;
    if (pos < argc) text_arg = argv[pos++];
    if (pos < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[pos]);
    if (text_arg && file) return cli_usage_error(CMD, "give the text as an argument or with --file, not both");
    if (jsonl && text_arg) return cli_usage_error(CMD, "--jsonl reads lines from --file or standard input");
    if (jsonl && json) return cli_usage_error(CMD, "--json and --jsonl do not go together");
    if (!jsonl && !text_arg && !file) return cli_usage_error(CMD, "no text given (TEXT or --file)");

    char *text = NULL;
    size_t len = 0;
    if (text_arg) {
        text = strdup(text_arg);
        len = strlen(text_arg);
        if (!text) return cli_fail(CMD, "out of memory");
    } else {
        const char *src = file ? file : "-";
        FILE *fp = strcmp(src, "-") ? fopen(src, "rb") : stdin;
        if (!fp) return cli_fail(CMD, "cannot open '%s': %m", src);
        text = read_all(fp, &len);
        if (fp != stdin) fclose(fp);
        if (!text) return cli_fail(CMD, "cannot read '%s'", src);
    }

    gguf_file_t *f = NULL;
    tokenizer_t *tok = NULL;
    tl_err_t err;
    int rc = CLI_FAIL;
    if (gguf_open(&f, model, &err) != 0 || tokenizer_load(&tok, f, &err) != 0) {
        rc = cli_fail(CMD, "%s", err.msg);
        goto done;
    }
    if (jsonl) {
        rc = run_jsonl(tok, text, len, flags);
        goto done;
    }
    size_t bad = tokenizer_utf8_check(text, len);
    if (bad != len) {
        rc = cli_fail(CMD, "%s is not valid UTF-8 (byte %zu)", text_arg ? "the text" : file, bad);
        goto done;
    }
    int32_t *ids;
    size_t n;
    if (tokenizer_encode(tok, text, len, flags, &ids, &n, &err) != 0) {
        rc = cli_fail(CMD, "%s", err.msg);
        goto done;
    }
    if (json) {
        if (print_json(tok, ids, n) != 0) rc = cli_fail(CMD, "out of memory");
        else rc = CLI_OK;
    } else {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", (int)ids[i]);
        putchar('\n');
        rc = CLI_OK;
    }
    free(ids);
done:
    if (fflush(stdout) != 0 && rc == CLI_OK) rc = cli_fail(CMD, "cannot write the output");
    tokenizer_free(tok);
    gguf_close(f);
    free(text);
    return rc;
}
