/* tasklm prune: per-block importance on calibration rows (cosine change of the
 * hidden state, loss increase when skipped), importance.json, and a GGUF with
 * the K least important blocks removed; --ffn-keep N also (or only) cuts every
 * block's FFN to its N most important channels. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "io/atomic_file.h"
#include "io/gguf_prune.h"
#include "model/model.h"
#include "model/prune_ffn.h"
#include "model/prune_score.h"
#include "quant/ffn_slice.h"
#include "quant/quantize.h"
#include "task/prepare.h"
#include "task/task.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tasklm prune -m MODEL --calib FILE.csv --remove K --out OUT.gguf [options]\n"
            "       tasklm prune -m MODEL --calib FILE.csv --ffn-keep N [--remove K] --out OUT.gguf\n"
            "       tasklm prune -m MODEL --calib FILE.csv --scores-only [--importance FILE.json]\n\n"
            "Scores every block on calibration rows of the task (rendered prompts with their\n"
            "gold labels) by two measures: 1 - cosine(h_in, h_out), the change the block\n"
            "makes to the residual stream, and the increase of the mean gold-label loss when\n"
            "the block is skipped. Writes importance.json, then removes the K least important\n"
            "blocks (by --method) and writes a GGUF with the kept blocks renumbered, the\n"
            "block count updated and every other key and tensor copied unchanged.\n\n"
            "--ffn-keep N keeps the N most important FFN (MLP) channels of every block\n"
            "(the same N everywhere, so feed_forward_length stays one number and\n"
            "llama.cpp loads the file). Channel j of block l scores\n"
            "mean_tokens |silu(gate_j) * up_j| * ||ffn_down[:, j]||_2 on the calibration\n"
            "prompts. Rows of ffn_gate/ffn_up are copied whole (quantized or not); a\n"
            "quantized ffn_down, whose blocks run along the channels, is dequantized, cut\n"
            "and re-quantized to its own type (F32/F16/BF16 are cut exactly). N must be\n"
            "a multiple of ffn_down's block size (32 for q8_0/q4_x/q5_x/iq4_nl, 256 for\n"
            "k-quants) and at most feed_forward_length. --ffn-down-type TYPE writes the\n"
            "cut ffn_down as TYPE instead (e.g. q8_0 over a 4-bit model: no second 4-bit\n"
            "rounding; N must then suit TYPE's blocks). Without --remove no block is\n"
            "scored or removed (and no importance.json is written); with --remove K both\n"
            "are chosen from the unpruned model's scores and written in one file.\n\n"
            "options:\n"
            "  -m, --model PATH        GGUF model\n"
            "  --task NAME             task folder under tasks/ (default namematch)\n"
            "  --task-dir DIR          task folder path (overrides --task)\n"
            "  --calib FILE.csv        labelled calibration rows (task schema)\n"
            "  --calib-rows N          use the first N usable rows (default 16)\n"
            "  --remove K              blocks to remove (0 <= K < block count)\n"
            "  --ffn-keep N            FFN channels to keep in every block (see above)\n"
            "  --ffn-down-type TYPE    type of the cut ffn_down (default: its own type)\n"
            "  --method cosine|loss    ranking used to choose the blocks (default cosine)\n"
            "  --cosine-only           score by 1 - cos only: one pass per row instead of\n"
            "                          n_layer + 2 (loss_increase and rank_loss are null)\n"
            "  --scores-only           score and write importance.json, write no model\n"
            "  --drop LIST             remove exactly these blocks (e.g. 3,7), no scoring,\n"
            "                          no --calib needed (a choice read off importance.json)\n"
            "  --out OUT.gguf          pruned model\n"
            "  --importance FILE.json  where to write the scores (default: importance.json\n"
            "                          next to --out, or in the current folder)\n"
            "  --threads T             worker threads (default: one per core)\n"
            "  --json                  print the result as one JSON object\n\n"
            "Scoring shows progress on stderr (a bar with ETA on a terminal, plain lines\n"
            "every few seconds otherwise).\n"
            "  -h, --help              this help\n");
}

typedef struct {
    int32_t *ids;
    size_t n;
} toks_t;

static char *importance_json(const model_config_t *cf, const prune_score_t *s, const int *rank_cos,
                             const int *rank_loss, double base_loss, int n_calib, const char *method,
                             const int *removed, int k, const char *model_path, const char *out_path, int cos_only,
                             const char *ffn_js) {
    size_t cap = 4096 + (size_t)cf->n_layer * 200 + (ffn_js ? strlen(ffn_js) : 0), len = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
#define AP(...) len += (size_t)snprintf(buf + len, cap - len, __VA_ARGS__)
    AP("{\"model\":\"");
    for (const char *p = model_path; *p && len < 3000; p++) AP(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
    AP("\",\"n_layer\":%u,\"n_calib\":%d,\"base_loss\":", cf->n_layer, n_calib);
    if (cos_only) AP("null");
    else AP("%.6f", base_loss);
    AP(",\"loss_scored\":%s,\"method\":\"%s\",\"remove\":%d,\"removed\":[", cos_only ? "false" : "true", method, k);
    for (int i = 0; i < k; i++) AP("%s%d", i ? "," : "", removed[i]);
    AP("],\"out\":");
    if (out_path) {
        AP("\"");
        for (const char *p = out_path; *p && len < cap - 1200 - (size_t)cf->n_layer * 200; p++)
            AP(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
        AP("\"");
    } else {
        AP("null");
    }
    AP(",\"layers\":[");
    for (uint32_t l = 0; l < cf->n_layer; l++) {
        AP("%s{\"layer\":%u,\"cosine\":%.8f,", l ? "," : "", l, s[l].cosine);
        if (cos_only) AP("\"loss_increase\":null,\"rank_cosine\":%d,\"rank_loss\":null,", rank_cos[l]);
        else AP("\"loss_increase\":%.6f,\"rank_cosine\":%d,\"rank_loss\":%d,", s[l].loss_increase, rank_cos[l], rank_loss[l]);
        AP("\"rank\":%d}", strcmp(method, "loss") ? rank_cos[l] : rank_loss[l]);
    }
    AP("]");
    if (ffn_js) AP(",%s", ffn_js);
    AP("}\n");
#undef AP
    return buf;
}

static void print_json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", (unsigned char)*s);
        else putchar(*s);
    }
    putchar('"');
}

/* The share of a block's summed channel importance that the kept channels hold. */
static double ffn_share(const double *score, const int *kept, int n_ff, int n_keep) {
    double all = 0, k = 0;
    for (int j = 0; j < n_ff; j++) all += score[j];
    for (int i = 0; i < n_keep; i++) k += score[kept[i]];
    return all > 0 ? k / all : 1.0;
}

/* "\"n_ff\":F,\"ffn_keep\":N,\"ffn_kept_share\":[...]" over the kept blocks (source order). */
static char *ffn_json(const double *score, const int *kept, int L, int n_ff, int n_keep, const bool *keep) {
    size_t cap = 128 + (size_t)L * 24, len = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    len += (size_t)snprintf(buf, cap, "\"n_ff\":%d,\"ffn_keep\":%d,\"ffn_kept_share\":[", n_ff, n_keep);
    int first = 1;
    for (int l = 0; l < L; l++) {
        if (!keep[l]) continue;
        len += (size_t)snprintf(buf + len, cap - len, "%s%.6f", first ? "" : ",",
                                ffn_share(score + (size_t)l * n_ff, kept + (size_t)l * n_keep, n_ff, n_keep));
        first = 0;
    }
    snprintf(buf + len, cap - len, "]");
    return buf;
}

typedef struct {
    progress_t p;
    double last; /* plain mode: time of the last line */
} score_prog_t;

/* Scoring progress: every pass on a terminal (the bar throttles itself), a
 * plain line at most every 5 s otherwise, and always the last pass. */
static void score_progress(void *ctx, long done, long total) {
    score_prog_t *sp = ctx;
    double now = sp->p.clock();
    if (sp->p.tty || done == total || now - sp->last >= 5.0) {
        progress_update(&sp->p, done, NULL);
        sp->last = now;
    }
}

/* --drop LIST: remove the listed blocks without scoring. */
static int prune_drop_list(const char *model_path, const char *list, const char *out_path, int threads, int json) {
    const char *cmd = "prune";
    tl_err_t err = {{0}};
    gguf_file_t *g = NULL;
    if (gguf_open(&g, model_path, &err)) return cli_fail(cmd, "%s", err.msg);
    gguf_str_t arch;
    uint32_t L = 0;
    char key[160];
    if (gguf_get_str(g, "general.architecture", &arch, &err)) {
        gguf_close(g);
        return cli_fail(cmd, "%s", err.msg);
    }
    snprintf(key, sizeof key, "%.*s.block_count", (int)(arch.len < 100 ? arch.len : 100), arch.ptr);
    if (gguf_get_u32(g, key, &L, &err)) {
        gguf_close(g);
        return cli_fail(cmd, "%s", err.msg);
    }
    bool *keep = malloc(sizeof(bool) * (L ? L : 1));
    if (!keep) {
        gguf_close(g);
        return cli_fail(cmd, "out of memory");
    }
    for (uint32_t l = 0; l < L; l++) keep[l] = true;
    int n_drop = 0, rc = CLI_OK;
    for (const char *p = list; *p;) {
        char *end;
        long b = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',') || b < 0 || b >= (long)L) {
            rc = cli_usage_error(cmd, "--drop '%s': expected block numbers in [0, %u) separated by commas", list, L);
            break;
        }
        if (keep[b]) n_drop++;
        keep[b] = false;
        p = *end ? end + 1 : end;
    }
    (void)threads;
    if (!rc && n_drop >= (int)L) rc = cli_usage_error(cmd, "--drop would remove all %u blocks", L);
    if (!rc && gguf_prune_blocks(g, keep, L, out_path, &err)) rc = cli_fail(cmd, "%s", err.msg);
    if (!rc) {
        if (json) printf("{\"out\":\"%s\",\"n_layer\":%u,\"removed\":%d}\n", out_path, L - (uint32_t)n_drop, n_drop);
        else printf("wrote %s: %u of %u blocks kept\n", out_path, L - (uint32_t)n_drop, L);
    }
    free(keep);
    gguf_close(g);
    return rc;
}

int cmd_prune(int argc, char **argv) {
    const char *cmd = "prune";
    const char *model_path = NULL, *task_name = "namematch", *task_dir = NULL, *calib = NULL, *out_path = NULL,
               *imp_path = NULL, *method = "cosine";
    long remove = -1, calib_rows = 16, ffn_keep = 0;
    int down_type = FFN_SLICE_SAME_TYPE;
    int threads = 0, json = 0, scores_only = 0, cos_only = 0;
    const char *drop = NULL;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},  {"task", required_argument, 0, 't'},
        {"task-dir", required_argument, 0, 'T'}, {"calib", required_argument, 0, 'c'},
        {"calib-rows", required_argument, 0, 'n'}, {"remove", required_argument, 0, 'k'},
        {"method", required_argument, 0, 'M'}, {"scores-only", no_argument, 0, 's'},
        {"out", required_argument, 0, 'o'},    {"importance", required_argument, 0, 'i'},
        {"threads", required_argument, 0, 'j'}, {"json", no_argument, 0, 'J'}, {"drop", required_argument, 0, 'D'},
        {"cosine-only", no_argument, 0, 'C'},  {"ffn-keep", required_argument, 0, 'F'},
        {"ffn-down-type", required_argument, 0, 'Y'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    int ch;
    char *end;
    while ((ch = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': model_path = optarg; break;
        case 't': task_name = optarg; break;
        case 'T': task_dir = optarg; break;
        case 'c': calib = optarg; break;
        case 'n':
            calib_rows = strtol(optarg, &end, 10);
            if (*end || calib_rows <= 0) return cli_usage_error(cmd, "--calib-rows '%s': expected a positive integer", optarg);
            break;
        case 'k':
            remove = strtol(optarg, &end, 10);
            if (*end || !*optarg || remove < 0) return cli_usage_error(cmd, "--remove '%s': expected an integer >= 0", optarg);
            break;
        case 'F':
            ffn_keep = strtol(optarg, &end, 10);
            if (*end || !*optarg || ffn_keep <= 0) return cli_usage_error(cmd, "--ffn-keep '%s': expected a positive integer", optarg);
            break;
        case 'Y':
            down_type = quantize_type_from_name(optarg);
            if (down_type < 0) return cli_usage_error(cmd, "--ffn-down-type '%s': not a type tasklm can write", optarg);
            break;
        case 'M': method = optarg; break;
        case 's': scores_only = 1; break;
        case 'C': cos_only = 1; break;
        case 'o': out_path = optarg; break;
        case 'i': imp_path = optarg; break;
        case 'j':
            threads = (int)strtol(optarg, &end, 10);
            if (*end || threads <= 0) return cli_usage_error(cmd, "--threads '%s': expected a positive integer", optarg);
            break;
        case 'J': json = 1; break;
        case 'D': drop = optarg; break;
        case 'h': usage(stdout); return CLI_OK;
        default: return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!model_path) return cli_usage_error(cmd, "--model is required");
    if (drop) {
        if (ffn_keep) return cli_usage_error(cmd, "--drop does not combine with --ffn-keep (use --remove K with --calib)");
        if (scores_only || remove >= 0 || calib || cos_only)
            return cli_usage_error(cmd, "--drop excludes --remove, --calib, --cosine-only and --scores-only");
        if (!out_path) return cli_usage_error(cmd, "--out is required");
        return prune_drop_list(model_path, drop, out_path, threads, json);
    }
    if (!calib) return cli_usage_error(cmd, "--calib is required");
    if (strcmp(method, "cosine") && strcmp(method, "loss"))
        return cli_usage_error(cmd, "--method '%s': expected cosine or loss", method);
    if (cos_only && !strcmp(method, "loss")) return cli_usage_error(cmd, "--cosine-only computes no loss scores; it excludes --method loss");
    if (down_type != FFN_SLICE_SAME_TYPE && !ffn_keep) return cli_usage_error(cmd, "--ffn-down-type needs --ffn-keep");
    if (scores_only && ffn_keep) return cli_usage_error(cmd, "--scores-only scores blocks only; drop --ffn-keep");
    if (ffn_keep && remove < 0) remove = 0;
    if (scores_only) {
        if (remove > 0) return cli_usage_error(cmd, "--scores-only removes nothing; drop --remove");
        remove = 0;
    } else {
        if (remove < 0) return cli_usage_error(cmd, "--remove K is required (or --scores-only)");
        if (!out_path) return cli_usage_error(cmd, "--out is required (or --scores-only)");
    }
    char dirbuf[600], impbuf[1200];
    if (!(task_dir = cli_task_dir(cmd, task_name, task_dir, dirbuf, sizeof dirbuf))) return CLI_USAGE;
    /* with --ffn-keep and no blocks to remove, blocks are not scored */
    int score_blocks = !ffn_keep || remove > 0;
    if (!imp_path) {
        const char *slash = out_path ? strrchr(out_path, '/') : NULL;
        if (slash) snprintf(impbuf, sizeof impbuf, "%.*s/importance.json", (int)(slash - out_path), out_path);
        else snprintf(impbuf, sizeof impbuf, "importance.json");
        imp_path = impbuf;
    }
    tl_err_t err = {{0}};
    task_t *task = NULL;
    if (task_load(&task, task_dir, &err)) return cli_fail(cmd, "%s", err.msg);
    model_t *m = NULL;
    if (model_load(&m, model_path, threads, &err)) {
        task_free(task);
        return cli_fail(cmd, "%s", err.msg);
    }
    const model_config_t *cf = model_config(m);
    int L = (int)cf->n_layer, rc = CLI_OK;
    if (remove >= L) {
        model_free(m);
        task_free(task);
        return cli_usage_error(cmd, "--remove %ld: the model has %d blocks; K must be below that", remove, L);
    }
    if (ffn_keep) {
        int ck = ffn_slice_check(model_gguf(m), ffn_keep, down_type, &err);
        if (ck) {
            model_free(m);
            task_free(task);
            return ck == -2 ? cli_usage_error(cmd, "--ffn-keep %ld: %s", ffn_keep, err.msg) : cli_fail(cmd, "%s", err.msg);
        }
    }
    int F = (int)cf->n_ff, N = (int)ffn_keep;
    double *ffn_score = NULL;
    float *ffn_act = NULL;
    int *ffn_kept = NULL;
    char *ffn_js = NULL;
    prep_data_t d = {0};
    toks_t labels[TASK_MAX_LABELS] = {{0}};
    toks_t *prompts = NULL;
    prune_score_t *sc = calloc((size_t)L, sizeof *sc);
    int *order_c = calloc((size_t)L, sizeof(int)), *order_l = calloc((size_t)L, sizeof(int));
    int *rank_c = calloc((size_t)L, sizeof(int)), *rank_l = calloc((size_t)L, sizeof(int));
    int *removed = calloc((size_t)L, sizeof(int));
    bool *keep = calloc((size_t)L, sizeof(bool));
    int32_t const **pp = NULL;
    int *plen = NULL, *gold = NULL;
    char *js = NULL;
    if (!sc || !order_c || !order_l || !rank_c || !rank_l || !removed || !keep) {
        rc = cli_fail(cmd, "out of memory");
        goto done;
    }
    if (prep_load_ex(task, calib, false, &d, &err)) {
        rc = cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    int n = (int)(d.n_rows < (size_t)calib_rows ? d.n_rows : (size_t)calib_rows);
    if (n <= 0) {
        rc = cli_fail(cmd, "%s: no usable calibration rows", calib);
        goto done;
    }
    const tokenizer_t *tok = model_tokenizer(m);
    int flags = tokenizer_wants_bos(tok) ? TOK_ADD_BOS : 0;
    const int32_t *lab_ids[TASK_MAX_LABELS];
    int lab_lens[TASK_MAX_LABELS];
    for (size_t k = 0; k < task->n_labels; k++) {
        char lab[TASK_NAME_MAX + 16];
        if (task_render_label(task, k, lab, sizeof lab) < 0 ||
            tokenizer_encode(tok, lab, strlen(lab), 0, &labels[k].ids, &labels[k].n, &err) || !labels[k].n) {
            rc = cli_fail(cmd, "task %s: label %zu cannot be encoded", task->name, k);
            goto done;
        }
        lab_ids[k] = labels[k].ids;
        lab_lens[k] = (int)labels[k].n;
    }
    prompts = calloc((size_t)n, sizeof *prompts);
    pp = calloc((size_t)n, sizeof *pp);
    plen = calloc((size_t)n, sizeof *plen);
    gold = calloc((size_t)n, sizeof *gold);
    if (!prompts || !pp || !plen || !gold) {
        rc = cli_fail(cmd, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const char *fv[TASK_MAX_FIELDS];
        for (size_t k = 0; k < task->n_fields; k++) fv[k] = d.rows[i].fields[k];
        char *text;
        if (task_render_prompt(task, fv, &text, &err)) {
            rc = cli_fail(cmd, "%s:%zu: %s", calib, d.rows[i].line, err.msg);
            goto done;
        }
        int e = tokenizer_encode(tok, text, strlen(text), flags, &prompts[i].ids, &prompts[i].n, &err);
        free(text);
        if (e) {
            rc = cli_fail(cmd, "%s:%zu: %s", calib, d.rows[i].line, err.msg);
            goto done;
        }
        pp[i] = prompts[i].ids;
        plen[i] = (int)prompts[i].n;
        gold[i] = d.rows[i].label;
    }
    prune_calib_t cal = {.prompts = pp, .prompt_lens = plen, .gold = gold, .n_prompts = n,
                         .labels = lab_ids, .label_lens = lab_lens, .n_labels = (int)task->n_labels,
                         .skip_loss = cos_only};
    score_prog_t prog;
    double base = 0;
    for (int i = 0; i < L; i++) keep[i] = true;
    if (score_blocks) {
        progress_init(&prog.p, stderr, "prune", "pass", (long)n * (cos_only ? 1 : L + 2), PROGRESS_AUTO);
        prog.last = prog.p.clock();
        cal.progress = score_progress;
        cal.progress_ctx = &prog;
        int sr = prune_score_blocks(m, &cal, sc, &base, &err);
        progress_finish(&prog.p);
        if (sr) {
            rc = cli_fail(cmd, "%s", err.msg);
            goto done;
        }
        prune_rank_blocks(sc, L, 0, order_c);
        prune_rank_blocks(sc, L, 1, order_l);
        for (int i = 0; i < L; i++) {
            rank_c[order_c[i]] = i + 1;
            rank_l[order_l[i]] = i + 1;
        }
        const int *order = strcmp(method, "loss") ? order_c : order_l;
        for (int i = 0; i < remove; i++) {
            removed[i] = order[i];
            keep[order[i]] = false;
        }
        /* removed blocks listed in file order */
        for (int i = 1; i < remove; i++)
            for (int j = i; j > 0 && removed[j - 1] > removed[j]; j--) {
                int t = removed[j];
                removed[j] = removed[j - 1];
                removed[j - 1] = t;
            }
    }
    if (ffn_keep) {
        ffn_score = malloc(sizeof(double) * (size_t)L * (size_t)F);
        ffn_act = malloc(sizeof(float) * (size_t)L * (size_t)F);
        ffn_kept = malloc(sizeof(int) * (size_t)L * (size_t)N);
        if (!ffn_score || !ffn_act || !ffn_kept) {
            rc = cli_fail(cmd, "out of memory");
            goto done;
        }
        progress_init(&prog.p, stderr, "prune ffn", "pass", n, PROGRESS_AUTO);
        prog.last = prog.p.clock();
        cal.progress = score_progress;
        cal.progress_ctx = &prog;
        int sr = prune_ffn_score(m, &cal, ffn_score, ffn_act, &err);
        progress_finish(&prog.p);
        for (int l = 0; l < L && !sr; l++)
            sr = prune_ffn_select(ffn_score + (size_t)l * F, F, N, ffn_kept + (size_t)l * N, &err);
        if (sr) {
            rc = cli_fail(cmd, "%s", err.msg);
            goto done;
        }
        ffn_js = ffn_json(ffn_score, ffn_kept, L, F, N, keep);
        if (!ffn_js) {
            rc = cli_fail(cmd, "out of memory");
            goto done;
        }
    }
    if (score_blocks) {
        js = importance_json(cf, sc, rank_c, rank_l, base, n, method, removed, (int)remove, model_path,
                             scores_only ? NULL : out_path, cos_only, ffn_js);
        if (!js) {
            rc = cli_fail(cmd, "out of memory");
            goto done;
        }
        if (atomic_file_write_all(imp_path, js, strlen(js), &err)) {
            rc = cli_fail(cmd, "%s", err.msg);
            goto done;
        }
    }
    if (!scores_only) {
        int wr = ffn_keep ? ffn_slice_write(model_gguf(m), remove > 0 ? keep : NULL, ffn_kept, N, ffn_act, down_type,
                                          out_path, &err)
                          : gguf_prune_blocks(model_gguf(m), keep, (uint32_t)L, out_path, &err);
        if (wr) {
            rc = cli_fail(cmd, "%s", err.msg);
            goto done;
        }
    }
    if (json) {
        if (js) fputs(js, stdout);
        else {
            printf("{\"model\":");
            print_json_str(model_path);
            printf(",\"out\":");
            print_json_str(out_path);
            printf(",\"n_layer\":%d,\"n_calib\":%d,%s}\n", L, n, ffn_js);
        }
    } else {
        if (score_blocks) {
            if (cos_only) printf("%d calibration rows (cosine only); importance written to %s\n", n, imp_path);
            else printf("%d calibration rows, base loss %.4f; importance written to %s\n", n, base, imp_path);
            printf("block  1-cos      loss+      rank(cos) rank(loss)\n");
            for (int l = 0; l < L; l++) {
                if (cos_only) printf("%5d  %.6f  %9s  %9d %10s", l, sc[l].cosine, "-", rank_c[l], "-");
                else printf("%5d  %.6f  %+9.4f  %9d %10d", l, sc[l].cosine, sc[l].loss_increase, rank_c[l], rank_l[l]);
                printf("%s\n", keep[l] ? "" : "  removed");
            }
        }
        if (ffn_keep) {
            printf("FFN channels: %d calibration rows; %d of %d kept per block; share of the importance kept:\n", n, N, F);
            for (int l = 0; l < L; l++)
                if (keep[l]) printf("%5d  %.4f\n", l, ffn_share(ffn_score + (size_t)l * F, ffn_kept + (size_t)l * N, F, N));
        }
        if (!scores_only) {
            printf("wrote %s: %ld of %d blocks kept", out_path, L - remove, L);
            if (ffn_keep) printf(", %d of %d FFN channels each", N, F);
            printf("\n");
        }
    }
done:
    free(js);
    free(ffn_js);
    free(ffn_score);
    free(ffn_act);
    free(ffn_kept);
    if (prompts)
        for (int i = 0; i < n; i++) free(prompts[i].ids);
    for (size_t k = 0; k < TASK_MAX_LABELS; k++) free(labels[k].ids);
    free(prompts);
    free(pp);
    free(plen);
    free(gold);
    free(sc);
    free(order_c);
    free(order_l);
    free(rank_c);
    free(rank_l);
    free(removed);
    free(keep);
    prep_data_free(&d);
    model_free(m);
    task_free(task);
    return rc;
}
