/* The pipeline runner (see run.h). Stages run as child processes of the
 * tasklm binary: each subcommand keeps its own argument checks, progress
 * display and memory, a crash or kill of one stage cannot corrupt the runner's
 * state, and the manifests record exactly the command that ran. */
#include "pipeline/run.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "io/atomic_file.h"
#include "io/gguf.h"
#include "pipeline/sha256.h"

#define MAXARG 80

/* snprintf for paths: recipe values are at most 400 bytes, so 1 KiB buffers hold every path. */
static void xsnprintf(char *dst, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void xsnprintf(char *dst, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}
#define PATHN 1024

typedef struct {
    char *v[MAXARG];
    int n;
} argv_t;

static void arg_add(argv_t *a, const char *s) {
    if (a->n < MAXARG - 1) a->v[a->n++] = strdup(s);
    a->v[a->n] = NULL;
}

static void arg_free(argv_t *a) {
    for (int i = 0; i < a->n; i++) free(a->v[i]);
    a->n = 0;
}

/* A model file and the variant name of the last eval stage that scored it. */
typedef struct {
    char path[PATHN];
    char variant[64];
} model_var_t;

/* Chain state handed from stage to stage. */
typedef struct {
    char train[PATHN], val[PATHN], test[PATHN];
    char model[PATHN], type[32], adapter[PATHN];
    char final_model[PATHN];
    char stage_model[RECIPE_MAX_STAGES][PATHN]; /* model written by stage i ("" if none) */
    char stage_type[RECIPE_MAX_STAGES][32];     /* and its type */
    model_var_t mv[2 * RECIPE_MAX_STAGES];
    int n_mv;
    char bench_variant[64]; /* variant of the model the current bench stage measures */
    char results[RECIPE_MAX_STAGES][PATHN]; /* result files the report reads, one per stage at most */
    int n_results;
} chain_t;

static const char *mv_get(const chain_t *c, const char *path) {
    for (int i = 0; i < c->n_mv; i++)
        if (!strcmp(c->mv[i].path, path)) return c->mv[i].variant;
    return "";
}

static void mv_set(chain_t *c, const char *path, const char *variant) {
    int i = 0;
    while (i < c->n_mv && strcmp(c->mv[i].path, path)) i++;
    if (i == c->n_mv) {
        if (c->n_mv == (int)(sizeof c->mv / sizeof c->mv[0])) return;
        c->n_mv++;
    }
    xsnprintf(c->mv[i].path, PATHN, "%s", path);
    xsnprintf(c->mv[i].variant, sizeof c->mv[i].variant, "%.63s", variant);
}

typedef struct {
    char path[PATHN];
    char hex[65];
} hash_ent_t;

typedef struct {
    hash_ent_t *e;
    int n;
} hash_cache_t;

static int hash_get(hash_cache_t *c, const char *path, char hex[65], tl_err_t *err) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->e[i].path, path)) {
            memcpy(hex, c->e[i].hex, 65);
            return 0;
        }
    if (sha256_file(path, hex, err)) return -1;
    hash_ent_t *ne = realloc(c->e, (size_t)(c->n + 1) * sizeof *ne);
    if (!ne) return tl_fail(err, "out of memory");
    c->e = ne;
    xsnprintf(c->e[c->n].path, PATHN, "%s", path);
    memcpy(c->e[c->n].hex, hex, 65);
    c->n++;
    return 0;
}

static void hash_forget(hash_cache_t *c, const char *path) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->e[i].path, path)) c->e[i] = c->e[--c->n];
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void iso_now(char buf[32]) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int mkdirs(const char *path, tl_err_t *err) {
    char buf[PATHN];
    xsnprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0777) && errno != EEXIST) return tl_fail(err, "%s: cannot create: %s", buf, strerror(errno));
            *p = '/';
        }
    if (mkdir(buf, 0777) && errno != EEXIST) return tl_fail(err, "%s: cannot create: %s", buf, strerror(errno));
    return 0;
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static long long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s) s[n] = '\0';
    fclose(f);
    return s;
}

static int write_json(const char *path, const cJSON *j, tl_err_t *err) {
    char *s = cJSON_Print(j);
    if (!s) return tl_fail(err, "out of memory");
    size_t n = strlen(s);
    s[n] = '\n';
    int rc = atomic_file_write_all(path, s, n + 1, err);
    free(s);
    return rc;
}

/* Runs exe with args; stdout to out_path when given (atomically, on success). */
static int run_child(const char *exe, argv_t *a, const char *out_path, FILE *log, tl_err_t *err) {
    char tmp[PATHN + 16] = "";
    if (out_path) xsnprintf(tmp, sizeof tmp, "%s.part", out_path);
    fprintf(log, "  $ tasklm");
    for (int i = 1; i < a->n; i++) fprintf(log, " %s", a->v[i]);
    fprintf(log, "%s%s\n", out_path ? " > " : "", out_path ? out_path : "");
    fflush(log);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return tl_fail(err, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (out_path) {
            int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
            if (fd < 0) _exit(126);
            dup2(fd, 1);
            close(fd);
        } else {
            dup2(2, 1); /* stage text goes with the progress lines */
        }
        execv(exe, a->v);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return tl_fail(err, "waitpid: %s", strerror(errno));
    if (WIFSIGNALED(st)) return tl_fail(err, "'tasklm %s' was killed by signal %d", a->v[1], WTERMSIG(st));
    if (WEXITSTATUS(st) != 0) {
        if (out_path) unlink(tmp);
        return tl_fail(err, "'tasklm %s' failed with exit status %d (its error is above)", a->v[1], WEXITSTATUS(st));
    }
    if (out_path && rename(tmp, out_path)) return tl_fail(err, "%s: rename: %s", out_path, strerror(errno));
    return 0;
}

/* Whether `tasklm CMD --help` succeeds (the subcommand is built in). */
static int have_command(const char *exe, const char *cmd) {
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(exe, exe, cmd, "--help", (char *)NULL);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0) return 0;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int copy_file(const char *src, const char *dst, tl_err_t *err) {
    FILE *f = fopen(src, "rb");
    if (!f) return tl_fail(err, "%s: cannot open: %s", src, strerror(errno));
    atomic_file_t af;
    if (atomic_file_open(&af, dst, err)) {
        fclose(f);
        return -1;
    }
    char *buf = malloc(1 << 20);
    size_t n;
    int rc = buf ? 0 : tl_fail(err, "out of memory");
    while (!rc && (n = fread(buf, 1, 1 << 20, f)) > 0) rc = atomic_file_write(&af, buf, n, err);
    if (!rc && ferror(f)) rc = tl_fail(err, "%s: read error", src);
    free(buf);
    fclose(f);
    if (rc) {
        atomic_file_abort(&af);
        return -1;
    }
    return atomic_file_commit(&af, err);
}

/* Writes the first `rows` data lines of src (plus the header) to dst. */
static int head_csv(const char *src, const char *dst, long rows, tl_err_t *err) {
    FILE *f = fopen(src, "rb");
    if (!f) return tl_fail(err, "%s: cannot open: %s", src, strerror(errno));
    atomic_file_t af;
    if (atomic_file_open(&af, dst, err)) {
        fclose(f);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long k = 0;
    int rc = 0;
    while (!rc && k <= rows && (n = getline(&line, &cap, f)) > 0) {
        rc = atomic_file_write(&af, line, (size_t)n, err);
        k++;
    }
    free(line);
    fclose(f);
    if (rc) {
        atomic_file_abort(&af);
        return -1;
    }
    return atomic_file_commit(&af, err);
}

typedef struct {
    const recipe_t *r;
    const pipeline_opts_t *o;
    char run_dir[PATHN];
    char task_dir[PATHN];
    char threads[16];
    hash_cache_t hc;
    chain_t ch;
    cJSON *run_stages;
} runner_t;

static const char *kv_or(const recipe_stage_t *s, const char *k, const char *def) {
    const char *v = recipe_get(s, k);
    return v ? v : def;
}

/* Settings object: the stage's keys plus the run-wide ones that change its result. */
static cJSON *stage_settings(const runner_t *R, const recipe_stage_t *s) {
    cJSON *j = cJSON_CreateObject();
    for (int i = 0; i < s->n_kv; i++) cJSON_AddStringToObject(j, s->kv[i].key, s->kv[i].val);
    cJSON_AddStringToObject(j, "task_dir", R->task_dir);
    if (!strcmp(s->kind, "prune") && !recipe_get(s, "drop")) cJSON_AddStringToObject(j, "threads", R->threads);
    if (!strcmp(s->kind, "bench") && !recipe_get(s, "variant") && R->ch.bench_variant[0])
        cJSON_AddStringToObject(j, "variant", R->ch.bench_variant);
    if (!strcmp(s->kind, "train") || !strcmp(s->kind, "prepare")) {
        char seed[32];
        xsnprintf(seed, sizeof seed, "%ld", R->r->seed);
        if (!recipe_get(s, "seed")) cJSON_AddStringToObject(j, "seed", seed);
        if (!strcmp(s->kind, "train")) cJSON_AddStringToObject(j, "threads", R->threads);
    }
    return j;
}

static void sub(char *dst, const char *dir, const char *file) { xsnprintf(dst, PATHN, "%s/%s", dir, file); }

/* Fills the stage's input paths and, after a run or skip, the chain state. */
typedef struct {
    char inputs[RECIPE_MAX_STAGES + 4][PATHN];
    int n_inputs;
    char outputs[6][PATHN];
    int n_outputs;
} io_t;

static void plan_io(runner_t *R, const recipe_stage_t *s, const char *dir, io_t *io) {
    chain_t *c = &R->ch;
    memset(io, 0, sizeof *io);
    const char *k = s->kind;
    int idx = (int)(s - R->r->stages);
    const char *in = recipe_get(s, "input");
    if (in) /* start from an earlier stage's model (validated by recipe_load) */
        for (int j = 0; j < idx; j++)
            if (!strcmp(R->r->stages[j].name, in) && c->stage_model[j][0]) {
                xsnprintf(c->model, PATHN, "%s", c->stage_model[j]);
                xsnprintf(c->type, sizeof c->type, "%s", c->stage_type[j]);
            }
    if (!strcmp(k, "prepare")) {
        xsnprintf(io->inputs[io->n_inputs++], PATHN, "%s", R->r->data);
        sub(io->outputs[io->n_outputs++], dir, "summary.json");
        sub(io->outputs[io->n_outputs++], dir, "test.csv");
        double v = atof(kv_or(s, "val_split", "0.1"));
        if (v > 0) {
            sub(io->outputs[io->n_outputs++], dir, "val/train.csv");
            sub(io->outputs[io->n_outputs++], dir, "val/test.csv");
            sub(c->train, dir, "val/train.csv");
            sub(c->val, dir, "val/test.csv");
        } else {
            sub(io->outputs[io->n_outputs++], dir, "train.csv");
            sub(c->train, dir, "train.csv");
            sub(c->val, dir, "test.csv");
        }
        sub(c->test, dir, "test.csv");
    } else if (!strcmp(k, "baseline")) {
        xsnprintf(io->inputs[io->n_inputs++], PATHN, "%s", c->train);
        xsnprintf(io->inputs[io->n_inputs++], PATHN, "%s", c->test);
        sub(io->outputs[io->n_outputs++], dir, "baseline.json");
    } else if (!strcmp(k, "eval")) {
        xsnprintf(io->inputs[io->n_inputs++], PATHN, "%s", c->model);
        xsnprintf(io->inputs[io->n_inputs++], PATHN, "%s", !strcmp(kv_or(s, "data", "test"), "val") ? c->val : c->test);
        sub(io->outputs[io->n_outputs++], dir, "eval.json");
        sub(io->outputs[io->n_outputs++], dir, "predictions.csv");
        mv_set(c, c->model, kv_or(s, "variant", s->name));
    } else if (!strcmp(k, "train")) {
        xsnprintf(io->inputs[io->n_inputs++], PATHN, "%s", c->model);
        xsnprintf(io->inputs[io->n_inputs++], PATHN, "%s", c->train);
        xsnprintf(io->inputs[io->n_inputs++], PATHN, "%s", c->val);
        sub(io->outputs[io->n_outputs++], dir, "metrics.jsonl");
        sub(io->outputs[io->n_outputs++], dir, "train.json");
        sub(c->adapter, dir, !strcmp(kv_or(s, "adapter", "best"), "last") ? "adapter-last.gguf" : "adapter.gguf");
        xsnprintf(io->outputs[io->n_outputs++], PATHN, "%s", c->adapter);
    } else if (!strcmp(k, "merge")) {
        xsnprintf(io->inputs[io->n_inputs++], PATHN, "%s", c->model);
        xsnprintf(io->inputs[io->n_inputs++], PATHN, "%s", c->adapter);
        sub(io->outputs[io->n_outputs++], dir, "model.gguf");
        xsnprintf(c->model, PATHN, "%s", io->outputs[0]);
        const char *t = kv_or(s, "type", "f32");
        if (strcmp(t, "same")) xsnprintf(c->type, sizeof c->type, "%s", t);
    } else if (!strcmp(k, "quantize")) {
        xsnprintf(io->inputs[io->n_inputs++], PATHN, "%s", c->model);
        sub(io->outputs[io->n_outputs++], dir, "model.gguf");
        xsnprintf(c->model, PATHN, "%s", io->outputs[0]);
        xsnprintf(c->type, sizeof c->type, "%s", kv_or(s, "type", "q8_0"));
    } else if (!strcmp(k, "prune")) {
        xsnprintf(io->inputs[io->n_inputs++], PATHN, "%s", c->model);
        sub(io->outputs[io->n_outputs++], dir, "model.gguf");
        if (!recipe_get(s, "drop")) { /* scored on the train split */
            xsnprintf(io->inputs[io->n_inputs++], PATHN, "%s", c->train);
            if (recipe_get(s, "remove")) sub(io->outputs[io->n_outputs++], dir, "importance.json"); /* not for FFN channels alone */
        }
        xsnprintf(c->model, PATHN, "%s", io->outputs[0]); /* same tensor types: c->type stays */
    } else if (!strcmp(k, "export")) {
        xsnprintf(io->inputs[io->n_inputs++], PATHN, "%s", c->model);
        xsnprintf(io->outputs[io->n_outputs++], PATHN, "%s/final-%s.gguf", R->run_dir, c->type);
        xsnprintf(c->final_model, PATHN, "%s", io->outputs[0]);
        mv_set(c, c->final_model, mv_get(c, c->model));
    } else if (!strcmp(k, "bench")) {
        /* the exported model if there is one, else (or with input = STAGE) the current model */
        xsnprintf(io->inputs[io->n_inputs++], PATHN, "%s", c->final_model[0] && !in ? c->final_model : c->model);
        sub(io->outputs[io->n_outputs++], dir, "bench.json");
        xsnprintf(c->bench_variant, sizeof c->bench_variant, "%s", kv_or(s, "variant", mv_get(c, io->inputs[0])));
    } else if (!strcmp(k, "report")) {
        /* every result file of the stages before it (those that exist: a bench
         * marked skipped leaves none), so a changed result re-writes the report */
        for (int i = 0; i < c->n_results; i++)
            if (file_exists(c->results[i])) xsnprintf(io->inputs[io->n_inputs++], PATHN, "%s", c->results[i]);
        xsnprintf(io->outputs[io->n_outputs++], PATHN, "%s/report/index.html", R->run_dir);
    }
    /* the file tasklm report reads from this stage */
    const char *res = NULL;
    if (!strcmp(k, "prepare") || !strcmp(k, "baseline") || !strcmp(k, "eval") || !strcmp(k, "train") || !strcmp(k, "bench"))
        res = io->outputs[0]; /* summary.json, baseline.json, eval.json, metrics.jsonl, bench.json */
    else if (!strcmp(k, "prune") && io->n_outputs > 1)
        res = io->outputs[1]; /* importance.json */
    if (res && c->n_results < RECIPE_MAX_STAGES) xsnprintf(c->results[c->n_results++], PATHN, "%s", res);
    if (!strcmp(k, "merge") || !strcmp(k, "quantize") || !strcmp(k, "prune")) {
        xsnprintf(c->stage_model[idx], PATHN, "%s", c->model);
        xsnprintf(c->stage_type[idx], sizeof c->stage_type[idx], "%s", c->type);
    }
}

/* <arch>.NAME (block_count, feed_forward_length) of a GGUF file, or -1. */
static int gguf_arch_u32(const char *path, const char *name) {
    tl_err_t e;
    gguf_file_t *g = NULL;
    if (gguf_open(&g, path, &e)) return -1;
    gguf_str_t arch;
    uint32_t n = 0;
    char key[160];
    int rc = -1;
    if (!gguf_get_str(g, "general.architecture", &arch, &e)) {
        snprintf(key, sizeof key, "%.*s.%s", (int)(arch.len < 100 ? arch.len : 100), arch.ptr, name);
        if (!gguf_get_u32(g, key, &n, &e)) rc = (int)n;
    }
    gguf_close(g);
    return rc;
}

static int gguf_blocks(const char *path) { return gguf_arch_u32(path, "block_count"); }

/* Adds the variant, the model path, its size and block count to the JSON object in path. */
static int annotate_json(const char *path, const char *variant, const char *model, tl_err_t *err) {
    char *txt = read_text(path);
    cJSON *j = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return tl_fail(err, "%s: the stage did not print one JSON object", path);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(j, "variant");
    if (variant && *variant) cJSON_AddStringToObject(j, "variant", variant);
    cJSON_AddStringToObject(j, "model_path", model);
    cJSON_AddNumberToObject(j, "model_bytes", (double)file_size(model));
    int nb = gguf_blocks(model);
    if (nb > 0) cJSON_AddNumberToObject(j, "n_layer", nb);
    int rc = write_json(path, j, err);
    cJSON_Delete(j);
    return rc;
}

static void add_flag(argv_t *a, const recipe_stage_t *s, const char *key, const char *flag) {
    const char *v = recipe_get(s, key);
    if (v) {
        arg_add(a, flag);
        arg_add(a, v);
    }
}

/* Runs the stage's commands. Returns 0, -1 on failure, 1 when skipped (command missing). */
static int exec_stage(runner_t *R, const recipe_stage_t *s, const char *dir, const io_t *io, int resume, char *why,
                      tl_err_t *err) {
    const char *exe = R->o->exe;
    FILE *log = R->o->out;
    chain_t *c = &R->ch;
    argv_t a = {0};
    char p1[PATHN], p2[PATHN];
    int rc = 0;
#define START(cmd) (arg_free(&a), arg_add(&a, exe), arg_add(&a, cmd))
    if (!strcmp(s->kind, "prepare")) {
        const char *in = R->r->data;
        long rows = atol(kv_or(s, "rows", "0"));
        if (rows > 0) {
            sub(p1, dir, "input.csv");
            if (head_csv(in, p1, rows, err)) return -1;
            in = p1;
        }
        char seed[32];
        xsnprintf(seed, sizeof seed, "%ld", R->r->seed);
        START("data");
        arg_add(&a, "prepare");
        arg_add(&a, "--in"), arg_add(&a, in), arg_add(&a, "--out-dir"), arg_add(&a, dir);
        arg_add(&a, "--split"), arg_add(&a, kv_or(s, "split", "0.9"));
        arg_add(&a, "--seed"), arg_add(&a, kv_or(s, "seed", seed));
        arg_add(&a, "--task-dir"), arg_add(&a, R->task_dir), arg_add(&a, "--quiet");
        bool swap = atoi(kv_or(s, "swap", "0")) != 0;
        if (swap) arg_add(&a, "--swap");
        rc = run_child(exe, &a, NULL, log, err);
        double v = atof(kv_or(s, "val_split", "0.1"));
        if (!rc && v > 0) {
            char split[32];
            xsnprintf(split, sizeof split, "%.6g", 1.0 - v);
            sub(p1, dir, "train.csv");
            sub(p2, dir, "val");
            START("data");
            arg_add(&a, "prepare");
            arg_add(&a, "--in"), arg_add(&a, p1), arg_add(&a, "--out-dir"), arg_add(&a, p2);
            arg_add(&a, "--split"), arg_add(&a, split);
            arg_add(&a, "--seed"), arg_add(&a, kv_or(s, "seed", seed));
            arg_add(&a, "--task-dir"), arg_add(&a, R->task_dir), arg_add(&a, "--quiet");
            if (swap) arg_add(&a, "--swap"); /* the reversed copies of the first pass deduplicate away */
            rc = run_child(exe, &a, NULL, log, err);
        }
    } else if (!strcmp(s->kind, "baseline")) {
        sub(p1, dir, "baseline-settings.json");
        START("baseline");
        arg_add(&a, "--task-dir"), arg_add(&a, R->task_dir), arg_add(&a, "--train"), arg_add(&a, c->train);
        arg_add(&a, "--save"), arg_add(&a, p1);
        rc = run_child(exe, &a, "/dev/null", log, err);
        if (!rc) {
            START("baseline");
            arg_add(&a, "--task-dir"), arg_add(&a, R->task_dir), arg_add(&a, "--data"), arg_add(&a, c->test);
            arg_add(&a, "--settings"), arg_add(&a, p1), arg_add(&a, "--json");
            rc = run_child(exe, &a, io->outputs[0], log, err);
        }
    } else if (!strcmp(s->kind, "eval")) {
        sub(p1, dir, "eval-raw.json");
        START("eval");
        arg_add(&a, "-m"), arg_add(&a, io->inputs[0]), arg_add(&a, "--task-dir"), arg_add(&a, R->task_dir);
        arg_add(&a, "--data"), arg_add(&a, io->inputs[1]), arg_add(&a, "--json");
        arg_add(&a, "--predictions-out"), arg_add(&a, io->outputs[1]);
        add_flag(&a, s, "limit", "--limit");
        if (R->r->threads) arg_add(&a, "--threads"), arg_add(&a, R->threads);
        rc = run_child(exe, &a, p1, log, err);
        if (!rc) {
            char *txt = read_text(p1);
            cJSON *j = txt ? cJSON_Parse(txt) : NULL;
            free(txt);
            if (!j) rc = tl_fail(err, "%s: tasklm eval --json did not print one JSON object", p1);
            else {
                cJSON_AddStringToObject(j, "variant", kv_or(s, "variant", s->name));
                cJSON_AddStringToObject(j, "model_path", io->inputs[0]);
                cJSON_AddNumberToObject(j, "model_bytes", (double)file_size(io->inputs[0]));
                int nb = gguf_blocks(io->inputs[0]);
                if (nb > 0) cJSON_AddNumberToObject(j, "n_layer", nb);
                rc = write_json(io->outputs[0], j, err);
                cJSON_Delete(j);
                unlink(p1);
            }
        }
    } else if (!strcmp(s->kind, "train")) {
        static const char *const map[][2] = {
            {"rank", "--lora-rank"},   {"alpha", "--lora-alpha"},   {"targets", "--lora-targets"},
            {"dropout", "--lora-dropout"}, {"epochs", "--epochs"},   {"max_steps", "--max-steps"},
            {"lr", "--lr"},            {"schedule", "--schedule"},   {"warmup", "--warmup"},
            {"weight_decay", "--weight-decay"}, {"clip", "--clip"},  {"batch", "--batch"},
            {"micro_batch", "--micro-batch"}, {"eval_every", "--eval-every"}, {"eval_delay", "--eval-delay"},
            {"eval_limit", "--eval-limit"},
            {"train_limit", "--train-limit"}, {"patience", "--patience"}, {"seed", "--seed"},
        };
        START("train");
        arg_add(&a, "-m"), arg_add(&a, io->inputs[0]), arg_add(&a, "--task-dir"), arg_add(&a, R->task_dir);
        arg_add(&a, "--train"), arg_add(&a, io->inputs[1]), arg_add(&a, "--eval"), arg_add(&a, io->inputs[2]);
        arg_add(&a, "--out"), arg_add(&a, dir);
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) add_flag(&a, s, map[i][0], map[i][1]);
        if (!recipe_get(s, "seed")) {
            char seed[32];
            xsnprintf(seed, sizeof seed, "%ld", R->r->seed);
            arg_add(&a, "--seed"), arg_add(&a, seed);
        }
        if (R->r->threads) arg_add(&a, "--threads"), arg_add(&a, R->threads);
        if (resume) arg_add(&a, "--resume");
        arg_add(&a, "--json");
        rc = run_child(exe, &a, io->outputs[1], log, err);
    } else if (!strcmp(s->kind, "merge")) {
        START("merge");
        arg_add(&a, "-m"), arg_add(&a, io->inputs[0]), arg_add(&a, "--lora"), arg_add(&a, io->inputs[1]);
        arg_add(&a, "--out"), arg_add(&a, io->outputs[0]);
        const char *t = kv_or(s, "type", "f32");
        if (strcmp(t, "f32")) arg_add(&a, "--requantize"), arg_add(&a, t);
        if (R->r->threads) arg_add(&a, "--threads"), arg_add(&a, R->threads);
        rc = run_child(exe, &a, NULL, log, err);
    } else if (!strcmp(s->kind, "prune")) {
        START("prune");
        arg_add(&a, "-m"), arg_add(&a, io->inputs[0]), arg_add(&a, "--task-dir"), arg_add(&a, R->task_dir);
        arg_add(&a, "--out"), arg_add(&a, io->outputs[0]);
        if (recipe_get(s, "drop")) {
            add_flag(&a, s, "drop", "--drop");
        } else {
            arg_add(&a, "--calib"), arg_add(&a, io->inputs[1]);
            add_flag(&a, s, "remove", "--remove");
            add_flag(&a, s, "calib_rows", "--calib-rows");
            add_flag(&a, s, "method", "--method");
            if (!strcmp(kv_or(s, "cosine_only", "0"), "1")) arg_add(&a, "--cosine-only");
            add_flag(&a, s, "ffn_keep", "--ffn-keep");
            add_flag(&a, s, "ffn_down_type", "--ffn-down-type");
            if (io->n_outputs > 1) arg_add(&a, "--importance"), arg_add(&a, io->outputs[1]);
        }
        if (R->r->threads) arg_add(&a, "--threads"), arg_add(&a, R->threads);
        sub(p1, dir, "prune.txt"); /* the per-block table; the summary names the removed blocks */
        rc = run_child(exe, &a, p1, log, err);
    } else if (!strcmp(s->kind, "quantize")) {
        START("quantize");
        arg_add(&a, io->inputs[0]), arg_add(&a, io->outputs[0]);
        arg_add(&a, "--type"), arg_add(&a, kv_or(s, "type", "q8_0"));
        if (R->r->threads) arg_add(&a, "--threads"), arg_add(&a, R->threads);
        rc = run_child(exe, &a, NULL, log, err);
    } else if (!strcmp(s->kind, "export")) {
        fprintf(log, "  copy %s -> %s\n", io->inputs[0], io->outputs[0]);
        rc = copy_file(io->inputs[0], io->outputs[0], err);
    } else if (!strcmp(s->kind, "bench") || !strcmp(s->kind, "report")) {
        if (!have_command(exe, s->kind)) {
            xsnprintf(why, 200, "'tasklm %s' is not available in this build", s->kind);
            arg_free(&a);
            return 1;
        }
        START(s->kind);
        if (!strcmp(s->kind, "bench")) {
            arg_add(&a, "-m"), arg_add(&a, io->inputs[0]), arg_add(&a, "--task-dir"), arg_add(&a, R->task_dir);
            add_flag(&a, s, "duration", "--duration");
            add_flag(&a, s, "concurrency", "--concurrency");
            add_flag(&a, s, "target_qps", "--target-qps");
            add_flag(&a, s, "sla_ms", "--sla-ms");
            if (R->r->threads) arg_add(&a, "--threads"), arg_add(&a, R->threads);
            arg_add(&a, "--json");
            rc = run_child(exe, &a, io->outputs[0], log, err);
            if (!rc) rc = annotate_json(io->outputs[0], c->bench_variant, io->inputs[0], err);
        } else {
            arg_add(&a, R->run_dir);
            rc = run_child(exe, &a, NULL, log, err);
        }
    }
#undef START
    arg_free(&a);
    return rc;
}

static cJSON *load_manifest(const char *dir) {
    char p[PATHN];
    sub(p, dir, "manifest.json");
    char *t = read_text(p);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    return j;
}

static const char *jstr(const cJSON *j, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static cJSON *make_manifest(const recipe_stage_t *s, const cJSON *inputs, const cJSON *settings, const char *status,
                            const char *started) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "stage", s->name);
    cJSON_AddStringToObject(m, "kind", s->kind);
    cJSON_AddItemToObject(m, "inputs", cJSON_Duplicate(inputs, 1));
    cJSON_AddItemToObject(m, "settings", cJSON_Duplicate(settings, 1));
    cJSON_AddStringToObject(m, "version", PIPELINE_VERSION);
    cJSON_AddStringToObject(m, "status", status);
    cJSON_AddStringToObject(m, "started", started);
    return m;
}

int pipeline_find_stage(const recipe_t *r, const char *sel) {
    char *end;
    long k = strtol(sel, &end, 10);
    if (*sel && !*end && k >= 1 && k <= r->n_stages) return (int)k - 1;
    for (int i = 0; i < r->n_stages; i++)
        if (!strcmp(r->stages[i].name, sel)) return i;
    int found = -1;
    for (int i = 0; i < r->n_stages; i++)
        if (!strcmp(r->stages[i].kind, sel)) {
            if (found >= 0) return -2; /* ambiguous */
            found = i;
        }
    return found;
}

static int write_run_json(runner_t *R, tl_err_t *err) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "recipe", R->r->path);
    cJSON_AddStringToObject(j, "name", R->r->name);
    cJSON_AddItemToObject(j, "stages", cJSON_Duplicate(R->run_stages, 1));
    if (R->ch.final_model[0] && file_exists(R->ch.final_model)) cJSON_AddStringToObject(j, "final_model", R->ch.final_model);
    else cJSON_AddNullToObject(j, "final_model");
    char p[PATHN];
    sub(p, R->run_dir, "run.json");
    int rc = write_json(p, j, err);
    cJSON_Delete(j);
    return rc;
}

static cJSON *read_json_file(const char *path) {
    char *t = read_text(path);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    return j;
}

/* The summary ends every run, also a failed one: stage table with macro-F1 per
 * evaluated variant, blocks removed per prune stage, QPS per bench, then the
 * final model and the report. */
static void print_summary(runner_t *R, double total_s, int failed) {
    FILE *out = R->o->out;
    cJSON *st;
    const char *failed_at = "";
    cJSON_ArrayForEach(st, R->run_stages) if (!strcmp(jstr(st, "status"), "failed")) failed_at = jstr(st, "dir");
    fprintf(out, "\n== summary: %s (%.0f s)%s%s%s\n", R->r->name, total_s, failed ? ", FAILED" : "", *failed_at ? " at stage " : "",
            failed_at);
    cJSON_ArrayForEach(st, R->run_stages) {
        const cJSON *sec = cJSON_GetObjectItemCaseSensitive(st, "seconds");
        fprintf(out, "  %-28s %-8s %7.1f s", jstr(st, "dir"), jstr(st, "status"), cJSON_IsNumber(sec) ? sec->valuedouble : 0.0);
        if (!strcmp(jstr(st, "kind"), "eval") || !strcmp(jstr(st, "kind"), "baseline")) {
            char p[PATHN];
            xsnprintf(p, sizeof p, "%s/%s/%s.json", R->run_dir, jstr(st, "dir"), !strcmp(jstr(st, "kind"), "eval") ? "eval" : "baseline");
            char *t = read_text(p);
            cJSON *j = t ? cJSON_Parse(t) : NULL;
            free(t);
            const cJSON *f1 = cJSON_GetObjectItemCaseSensitive(j, "macro_f1");
            if (cJSON_IsNumber(f1))
                fprintf(out, "   macro-F1 %.4f  %s", f1->valuedouble, j && cJSON_GetObjectItem(j, "variant") ? jstr(j, "variant") : "baseline");
            cJSON_Delete(j);
        } else if (!strcmp(jstr(st, "kind"), "prune")) {
            char p[PATHN];
            xsnprintf(p, sizeof p, "%s/%s/importance.json", R->run_dir, jstr(st, "dir"));
            cJSON *j = read_json_file(p);
            const cJSON *rm = cJSON_GetObjectItemCaseSensitive(j, "removed"), *x;
            const cJSON *nl = cJSON_GetObjectItemCaseSensitive(j, "n_layer");
            if (cJSON_IsArray(rm) && cJSON_IsNumber(nl)) {
                fprintf(out, "   %d of %d blocks kept, removed", (int)nl->valuedouble - cJSON_GetArraySize(rm), (int)nl->valuedouble);
                cJSON_ArrayForEach(x, rm) if (cJSON_IsNumber(x)) fprintf(out, " %d", x->valueint);
            }
            const cJSON *fk = cJSON_GetObjectItemCaseSensitive(j, "ffn_keep"), *nf = cJSON_GetObjectItemCaseSensitive(j, "n_ff");
            if (cJSON_IsNumber(fk) && cJSON_IsNumber(nf)) {
                fprintf(out, ", %d of %d FFN channels", fk->valueint, nf->valueint);
            } else if (!j) { /* FFN channels alone: no importance.json */
                xsnprintf(p, sizeof p, "%s/%s/model.gguf", R->run_dir, jstr(st, "dir"));
                int ff = gguf_arch_u32(p, "feed_forward_length");
                if (ff > 0) fprintf(out, "   FFN %d channels per block", ff);
            }
            cJSON_Delete(j);
        } else if (!strcmp(jstr(st, "kind"), "bench")) {
            char p[PATHN];
            xsnprintf(p, sizeof p, "%s/%s/bench.json", R->run_dir, jstr(st, "dir"));
            cJSON *j = read_json_file(p);
            const cJSON *cap = cJSON_GetObjectItemCaseSensitive(j, "capacity");
            const cJSON *q = cJSON_GetObjectItemCaseSensitive(cap, "qps_per_instance");
            if (cJSON_IsNumber(q)) fprintf(out, "   %.1f QPS within the SLA  %s", q->valuedouble, jstr(j, "variant"));
            cJSON_Delete(j);
        }
        fputc('\n', out);
    }
    int report_done = 0;
    cJSON_ArrayForEach(st, R->run_stages) report_done |= !strcmp(jstr(st, "kind"), "report") && !strcmp(jstr(st, "status"), "done");
    fprintf(out, "final model: %s\n", R->ch.final_model[0] && file_exists(R->ch.final_model) ? R->ch.final_model
                                       : failed ? "(none: the run stopped before its export stage)"
                                                : "(none: the recipe has no export stage)");
    char rep[PATHN];
    xsnprintf(rep, sizeof rep, "%s/report/index.html", R->run_dir);
    fprintf(out, "report:      %s\n", report_done && file_exists(rep) ? rep
                                       : failed ? "(not written: the run stopped before its report stage)"
                                                : "(not written: no report stage ran)");
}

int pipeline_run(const recipe_t *r, const pipeline_opts_t *o, tl_err_t *err) {
    runner_t R = {.r = r, .o = o};
    xsnprintf(R.run_dir, sizeof R.run_dir, "%s/%s", r->runs_dir, r->name);
    xsnprintf(R.task_dir, sizeof R.task_dir, "%s", r->task_dir); /* resolved by recipe_load */
    xsnprintf(R.threads, sizeof R.threads, "%d", r->threads);
    xsnprintf(R.ch.model, PATHN, "%s", r->model);
    xsnprintf(R.ch.type, sizeof R.ch.type, "base");
    int from = -1;
    if (o->from) {
        from = pipeline_find_stage(r, o->from);
        if (from == -2) return tl_fail(err, "--from '%s' names several stages of that kind; give the stage name or number", o->from);
        if (from < 0) return tl_fail(err, "--from '%s' is not a stage of %s", o->from, r->path);
    }
    FILE *out = o->out;
    if (o->dry_run) {
        fprintf(out, "recipe %s: run %s, model %s, data %s, task %s\n", r->path, R.run_dir, r->model, r->data, R.task_dir);
        for (int i = 0; i < r->n_stages; i++) {
            const recipe_stage_t *s = &r->stages[i];
            char dir[PATHN];
            xsnprintf(dir, sizeof dir, "%s/%02d-%s", R.run_dir, i + 1, s->name);
            cJSON *m = load_manifest(dir);
            const char *st = (from >= 0 && i >= from) ? "will run (--from)"
                             : m && !strcmp(jstr(m, "status"), "done") ? "done (skipped if inputs are unchanged)"
                                                                        : "will run";
            fprintf(out, "  %02d-%-24s %-9s %s", i + 1, s->name, s->kind, st);
            for (int k = 0; k < s->n_kv; k++) fprintf(out, "%s%s=%s", k ? " " : "  [", s->kv[k].key, s->kv[k].val);
            fprintf(out, "%s\n", s->n_kv ? "]" : "");
            cJSON_Delete(m);
        }
        return 0;
    }
    if (!file_exists(r->model)) return tl_fail(err, "%s: model %s not found (run scripts/fetch-model.sh)", r->path, r->model);
    if (!file_exists(r->data)) return tl_fail(err, "%s: data %s not found", r->path, r->data);
    if (mkdirs(R.run_dir, err)) return -1;
    R.run_stages = cJSON_CreateArray();
    double t_all = now_s();
    int rc = 0;
    for (int i = 0; i < r->n_stages && !rc; i++) {
        const recipe_stage_t *s = &r->stages[i];
        char dname[128], dir[PATHN];
        xsnprintf(dname, sizeof dname, "%02d-%s", i + 1, s->name);
        xsnprintf(dir, sizeof dir, "%s/%s", R.run_dir, dname);
        io_t io;
        plan_io(&R, s, dir, &io);
        cJSON *settings = stage_settings(&R, s);
        cJSON *inputs = cJSON_CreateObject();
        for (int k = 0; k < io.n_inputs && !rc; k++) {
            char hex[65];
            if (hash_get(&R.hc, io.inputs[k], hex, err)) {
                tl_fail_prefix(err, "stage %s: input", dname);
                rc = -1;
            } else {
                cJSON_AddStringToObject(inputs, io.inputs[k], hex);
            }
        }
        cJSON *old = rc ? NULL : load_manifest(dir);
        int same = old && !strcmp(jstr(old, "version"), PIPELINE_VERSION) &&
                   cJSON_Compare(cJSON_GetObjectItemCaseSensitive(old, "settings"), settings, 1) &&
                   cJSON_Compare(cJSON_GetObjectItemCaseSensitive(old, "inputs"), inputs, 1);
        int done = same && (!strcmp(jstr(old, "status"), "done") || !strcmp(jstr(old, "status"), "skipped"));
        for (int k = 0; done && k < io.n_outputs; k++)
            if (!strcmp(jstr(old, "status"), "done") && !file_exists(io.outputs[k])) done = 0;
        int forced = from >= 0 && i >= from;
        double secs = 0;
        const char *status = "done";
        if (!rc && done && !forced) {
            status = strcmp(jstr(old, "status"), "skipped") ? "done" : "skipped";
            const cJSON *sec = cJSON_GetObjectItemCaseSensitive(old, "seconds");
            secs = cJSON_IsNumber(sec) ? sec->valuedouble : 0;
            fprintf(out, "[%d/%d] %s: up to date, skipped\n", i + 1, r->n_stages, dname);
        } else if (!rc) {
            int resume = same && !strcmp(jstr(old, "status"), "running") && !strcmp(s->kind, "train") && !forced;
            if (resume) {
                char ck[PATHN];
                sub(ck, dir, "checkpoint.bin");
                resume = file_exists(ck);
            }
            fprintf(out, "[%d/%d] %s (%s)%s\n", i + 1, r->n_stages, dname, s->kind, resume ? ": resuming from its checkpoint" : "");
            fflush(out);
            char started[32], finished[32], why[200] = "";
            iso_now(started);
            cJSON *m = make_manifest(s, inputs, settings, "running", started);
            char mp[PATHN];
            sub(mp, dir, "manifest.json");
            if (mkdirs(dir, err) || write_json(mp, m, err)) rc = -1;
            cJSON_Delete(m);
            for (int k = 0; k < io.n_outputs; k++) hash_forget(&R.hc, io.outputs[k]);
            double t0 = now_s();
            int st = rc ? -1 : exec_stage(&R, s, dir, &io, resume, why, err);
            secs = now_s() - t0;
            if (st < 0) {
                tl_fail_prefix(err, "stage %s", dname);
                rc = -1;
                status = "failed";
            } else {
                status = st == 1 ? "skipped" : "done";
                if (st == 1) fprintf(out, "  skipped: %s\n", why);
                iso_now(finished);
                m = make_manifest(s, inputs, settings, status, started);
                cJSON_AddStringToObject(m, "finished", finished);
                cJSON_AddNumberToObject(m, "seconds", secs);
                cJSON *outs = cJSON_AddArrayToObject(m, "outputs");
                for (int k = 0; k < io.n_outputs && st == 0; k++) cJSON_AddItemToArray(outs, cJSON_CreateString(io.outputs[k]));
                if (st == 1) cJSON_AddStringToObject(m, "reason", why);
                if (write_json(mp, m, err)) rc = -1;
                cJSON_Delete(m);
                fprintf(out, "  %s in %.1f s\n", status, secs);
            }
        }
        cJSON_Delete(old);
        cJSON_Delete(settings);
        cJSON_Delete(inputs);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "dir", dname);
        cJSON_AddStringToObject(e, "kind", s->kind);
        cJSON_AddStringToObject(e, "status", rc ? "failed" : status);
        cJSON_AddNumberToObject(e, "seconds", secs);
        cJSON_AddItemToArray(R.run_stages, e);
        tl_err_t e2;
        if (write_run_json(&R, rc ? &e2 : err) && !rc) rc = -1;
    }
    print_summary(&R, now_s() - t_all, rc != 0);
    cJSON_Delete(R.run_stages);
    free(R.hc.e);
    return rc;
}
