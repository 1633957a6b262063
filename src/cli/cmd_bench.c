/* tasklm bench: closed-loop serving load test. For each concurrency level,
 * that many client threads each submit one input, wait for its answer and
 * submit the next, for --duration seconds, through the same request queue and
 * batching worker as tasklm serve (engine called directly, no HTTP). Reports
 * QPS, latency percentiles, mean batch size, RSS, requests/s per core and the
 * instances and monthly cost for a target QPS under a latency SLA. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "core/cpu.h"
#include "io/csv.h"
#include "quant/matmul_amx.h"
#include "serve/engine.h"
#include "serve/queue.h"
#include "serve/request.h"
#include "task/task.h"

enum { MAX_LEVELS = 16, MAX_INPUTS = 4096, HOURS_PER_MONTH = 730 };

static void usage(FILE *out) {
    fprintf(out,
            "usage: tasklm bench -m MODEL [--task NAME] [options]\n\n"
            "Closed-loop load test of the serving engine: for each concurrency level N,\n"
            "N clients each send one input and wait for its answer, for --duration seconds,\n"
            "through the request queue and dynamic batcher of tasklm serve (no HTTP).\n"
            "Inputs cycle through the task's data rows. Reports QPS, p50/p90/p99 latency,\n"
            "mean batch size, RSS at start/end, requests/s per core, and the instances and\n"
            "monthly cost needed for --target-qps under --sla-ms (from the best level whose\n"
            "p99 meets the SLA).\n\n"
            "options:\n"
            "  -m, --model PATH        GGUF model\n"
            "  --task NAME             task folder under tasks/ (default namematch)\n"
            "  --task-dir DIR          task folder path (overrides --task)\n"
            "  --data FILE.csv         input rows (default: TASK_DIR/data/raw.csv)\n"
            "  --concurrency LIST      comma-separated client counts (default 1,4,16)\n"
            "  --duration S            seconds per level (default 10)\n"
            "  --warmup S              seconds of load before each level's measurement (default 1)\n"
            "  --threads N             model threads (default: one per core)\n"
            "  --max-batch N           inputs per pass (default 16)\n"
            "  --max-wait-ms N         batch fill wait under load (default 2)\n"
            "  --target-qps Q          for the instance count (default 100)\n"
            "  --sla-ms MS             latency SLA on p99 (default 800)\n"
            "  --price-per-hour USD    one instance like this machine (default 0.10: on-demand\n"
            "                          price of a 2-vCPU compute VM, e.g. GCP c2d-highcpu-2)\n"
            "  --json                  one JSON document (schema in docs/SERVING.md)\n"
            "  --amx                   Q8_0 matmuls on the AMX-INT8 tiles (see serve --help)\n"
            "  -h, --help              this help\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double rss_mib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
    fclose(f);
    return (double)res * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

/* One request in flight: a client waits on it. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, rc;
    const char *const *fields;
} req_t;

typedef struct {
    serve_queue_t q;
    serve_engine_t *e;
    int max_batch, max_wait_ms;
    atomic_ulong batches, batch_items;
} bench_t;

static void *worker_main(void *arg) {
    bench_t *b = arg;
    void **batch = calloc((size_t)b->max_batch, sizeof *batch);
    serve_item_t *work = calloc((size_t)b->max_batch, sizeof *work);
    for (;;) {
        size_t n = serve_queue_pop_batch(&b->q, batch, (size_t)b->max_batch, b->max_wait_ms);
        if (!n) break;
        for (size_t i = 0; i < n; i++) work[i].fields = ((req_t *)batch[i])->fields;
        serve_engine_classify_many(b->e, work, (int)n, 0);
        atomic_fetch_add(&b->batches, 1);
        atomic_fetch_add(&b->batch_items, n);
        for (size_t i = 0; i < n; i++) {
            req_t *r = batch[i];
            pthread_mutex_lock(&r->mu);
            r->rc = work[i].rc;
            r->done = 1;
            pthread_cond_signal(&r->cv);
            pthread_mutex_unlock(&r->mu);
        }
    }
    free(batch);
    free(work);
    return NULL;
}

typedef struct {
    bench_t *b;
    const char *const (*inputs)[TASK_MAX_FIELDS];
    size_t n_inputs, next;
    double t_measure, t_end, t_last; /* t_last: the last measured completion */
    double *lat;
    size_t n_lat, cap_lat;
    unsigned long errors;
    req_t r;
} client_t;

static void *client_main(void *arg) {
    client_t *c = arg;
    for (;;) {
        double t0 = now_s();
        /* every client completes at least one measured request, however slow */
        if (t0 >= c->t_end && (c->n_lat || c->errors)) break;
        c->r.done = 0;
        c->r.fields = c->inputs[c->next++ % c->n_inputs];
        void *p = &c->r;
        if (serve_queue_push(&c->b->q, &p, 1)) {
            c->errors++;
            continue;
        }
        pthread_mutex_lock(&c->r.mu);
        while (!c->r.done) pthread_cond_wait(&c->r.cv, &c->r.mu);
        pthread_mutex_unlock(&c->r.mu);
        double t1 = now_s();
        if (t0 < c->t_measure) continue;
        if (t1 > c->t_last) c->t_last = t1;
        if (c->r.rc) c->errors++;
        else if (c->n_lat < c->cap_lat) c->lat[c->n_lat++] = t1 - t0;
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p) {
    if (!n) return NAN;
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    return v[i ? i - 1 : 0];
}

typedef struct {
    int concurrency;
    double qps, p50, p90, p99, mean_ms, mean_batch, rss_start, rss_end, per_core;
    unsigned long requests, errors;
} level_t;

static int run_level(bench_t *b, int conc, double warmup, double duration, const char *const (*inputs)[TASK_MAX_FIELDS],
                     size_t n_inputs, int cores, level_t *L) {
    client_t *cl = calloc((size_t)conc, sizeof *cl);
    pthread_t *th = calloc((size_t)conc, sizeof *th);
    size_t cap = (size_t)(duration * 20000) + 1024;
    if (!cl || !th) return -1;
    double t0 = now_s();
    L->concurrency = conc;
    L->rss_start = rss_mib();
    unsigned long b0 = 0, i0 = 0;
    for (int i = 0; i < conc; i++) {
        cl[i].b = b;
        cl[i].inputs = inputs;
        cl[i].n_inputs = n_inputs;
        cl[i].next = (size_t)i * 7919u;
        cl[i].t_measure = t0 + warmup;
        cl[i].t_end = t0 + warmup + duration;
        cl[i].cap_lat = cap / (size_t)conc + 256;
        cl[i].lat = malloc(cl[i].cap_lat * sizeof(double));
        pthread_mutex_init(&cl[i].r.mu, NULL);
        pthread_cond_init(&cl[i].r.cv, NULL);
        if (!cl[i].lat || pthread_create(&th[i], NULL, client_main, &cl[i])) return -1;
    }
    while (now_s() < t0 + warmup) usleep(1000);
    b0 = atomic_load(&b->batches);
    i0 = atomic_load(&b->batch_items);
    for (int i = 0; i < conc; i++) pthread_join(th[i], NULL);
    double t_last = t0 + warmup;
    for (int i = 0; i < conc; i++)
        if (cl[i].t_last > t_last) t_last = cl[i].t_last;
    double elapsed = t_last - (t0 + warmup);
    unsigned long nb = atomic_load(&b->batches) - b0, ni = atomic_load(&b->batch_items) - i0;
    size_t total = 0;
    L->errors = 0;
    for (int i = 0; i < conc; i++) total += cl[i].n_lat, L->errors += cl[i].errors;
    double *all = malloc((total ? total : 1) * sizeof *all), sum = 0;
    size_t k = 0;
    for (int i = 0; i < conc; i++)
        for (size_t j = 0; j < cl[i].n_lat; j++) sum += all[k++] = cl[i].lat[j];
    qsort(all, total, sizeof *all, cmp_double);
    L->requests = total;
    L->qps = elapsed > 0 ? (double)total / elapsed : 0;
    L->p50 = 1e3 * pct(all, total, 50);
    L->p90 = 1e3 * pct(all, total, 90);
    L->p99 = 1e3 * pct(all, total, 99);
    L->mean_ms = total ? 1e3 * sum / (double)total : NAN;
    L->mean_batch = nb ? (double)ni / (double)nb : 0;
    L->rss_end = rss_mib();
    L->per_core = L->qps / cores;
    free(all);
    for (int i = 0; i < conc; i++) {
        free(cl[i].lat);
        pthread_mutex_destroy(&cl[i].r.mu);
        pthread_cond_destroy(&cl[i].r.cv);
    }
    free(cl);
    free(th);
    return 0;
}

static int parse_levels(const char *s, int *lv, int *n) {
    *n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1024 || *n == MAX_LEVELS) return -1;
        lv[(*n)++] = (int)v;
        if (*end == ',') end++;
        else if (*end) return -1;
        s = end;
    }
    return *n ? 0 : -1;
}

static int parse_num(const char *s, double lo, double hi, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

/* Loads up to MAX_INPUTS rows of the task's fields (values checked as the server does). */
static int load_inputs(const task_t *t, const char *path, char ***store, const char *(**rows)[TASK_MAX_FIELDS],
                       size_t *n, tl_err_t *err) {
    csv_reader_t *r;
    if (csv_open(&r, path, err)) return -1;
    int col[TASK_MAX_FIELDS];
    for (size_t k = 0; k < t->n_fields; k++)
        if ((col[k] = csv_column_index(r, t->field_columns[k])) < 0) {
            csv_close(r);
            return tl_fail(err, "%s: missing column '%s'", path, t->field_columns[k]);
        }
    *store = calloc(MAX_INPUTS * TASK_MAX_FIELDS, sizeof **store);
    *rows = calloc(MAX_INPUTS, sizeof **rows);
    *n = 0;
    if (!*store || !*rows) {
        csv_close(r);
        return tl_fail(err, "out of memory");
    }
    while (*n < MAX_INPUTS) {
        csv_row_t row;
        int st = csv_next(r, &row, err);
        if (st == CSV_EOF) break;
        if (st == CSV_BAD_ROW) continue;
        if (st != CSV_ROW) {
            csv_close(r);
            return -1;
        }
        char why[128];
        int ok = 1;
        for (size_t k = 0; k < t->n_fields && ok; k++) {
            char *v = serve_value_check(row.fields[col[k]], t->max_field_bytes, why, sizeof why);
            if (!v || !((*store)[*n * TASK_MAX_FIELDS + k] = strdup(v))) ok = 0;
            else (*rows)[*n][k] = (*store)[*n * TASK_MAX_FIELDS + k];
        }
        if (ok) (*n)++;
    }
    csv_close(r);
    if (!*n) return tl_fail(err, "%s: no usable rows", path);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},       {"task", required_argument, 0, 't'},
        {"task-dir", required_argument, 0, 'T'},    {"data", required_argument, 0, 'd'},
        {"concurrency", required_argument, 0, 'c'}, {"duration", required_argument, 0, 'D'},
        {"warmup", required_argument, 0, 'W'},      {"threads", required_argument, 0, 'j'},
        {"max-batch", required_argument, 0, 'b'},   {"max-wait-ms", required_argument, 0, 'w'},
        {"target-qps", required_argument, 0, 'Q'},  {"sla-ms", required_argument, 0, 'S'},
        {"price-per-hour", required_argument, 0, 'P'}, {"json", no_argument, 0, 'J'},
        {"amx", no_argument, 0, 'X'},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0},
    };
    const char *cmd = "bench";
    const char *model = NULL, *task_name = "namematch", *task_dir = NULL, *data = NULL;
    int levels[MAX_LEVELS] = {1, 4, 16}, n_levels = 3, json = 0, amx = 0;
    double duration = 10, warmup = 1, threads = 0, max_batch = 16, max_wait = 2, target = 100, sla = 800, price = 0.10;
    optind = 1;
    opterr = 0;
    int c;
    int li = -1;
    while ((c = getopt_long(argc, argv, ":m:h", opts, &li)) != -1) {
        char name[48];
        snprintf(name, sizeof name, "--%s", li >= 0 ? opts[li].name : "");
        if (li < 0) snprintf(name, sizeof name, "%s", argv[optind - 1]);
        li = -1;
        int bad = 0;
        switch (c) {
        case 'm': model = optarg; break;
        case 't': task_name = optarg; break;
        case 'T': task_dir = optarg; break;
        case 'd': data = optarg; break;
        case 'c':
            if (parse_levels(optarg, levels, &n_levels))
                return cli_usage_error(cmd, "--concurrency '%s' must be a comma-separated list of 1..1024 (at most %d)", optarg, MAX_LEVELS);
            break;
        case 'D': bad = parse_num(optarg, 0.1, 86400, &duration); break;
        case 'W': bad = parse_num(optarg, 0, 3600, &warmup); break;
        case 'j': bad = parse_num(optarg, 1, 1024, &threads) || threads != floor(threads); break;
        case 'b': bad = parse_num(optarg, 1, 1024, &max_batch) || max_batch != floor(max_batch); break;
        case 'w': bad = parse_num(optarg, 0, 10000, &max_wait) || max_wait != floor(max_wait); break;
        case 'Q': bad = parse_num(optarg, 1e-6, 1e9, &target); break;
        case 'S': bad = parse_num(optarg, 1e-3, 1e7, &sla); break;
        case 'P': bad = parse_num(optarg, 0, 1e6, &price); break;
        case 'J': json = 1; break;
        case 'X': amx = 1; break;
        case 'h': usage(stdout); return CLI_OK;
        case ':': return cli_usage_error(cmd, "option '%s' needs a value", name);
        default: return cli_usage_error(cmd, "unknown option '%s'", name);
        }
        if (bad) return cli_usage_error(cmd, "%s '%s' is not a valid value", name, optarg);
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!model) return cli_usage_error(cmd, "-m/--model is required");
    char dirbuf[512], databuf[600];
    if (!(task_dir = cli_task_dir(cmd, task_name, task_dir, dirbuf, sizeof dirbuf))) return CLI_USAGE;
    if (!data) {
        snprintf(databuf, sizeof databuf, "%s/data/raw.csv", task_dir);
        data = databuf;
    }
    tl_err_t err = {{0}};
    task_t *task = NULL;
    char **store = NULL;
    const char *(*rows)[TASK_MAX_FIELDS] = NULL;
    size_t n_inputs = 0;
    bench_t b;
    memset(&b, 0, sizeof b);
    int rc = CLI_FAIL, q_ok = 0, w_ok = 0;
    pthread_t worker;
    if (task_load(&task, task_dir, &err)) return cli_fail(cmd, "%s", err.msg);
    if (load_inputs(task, data, &store, &rows, &n_inputs, &err)) {
        cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    double rss0 = rss_mib();
    serve_engine_opts_t eo = {.model_path = model, .task = task, .threads = (int)threads, .max_batch = (int)max_batch,
                              .amx = amx};
    if (serve_engine_new(&b.e, &eo, &err)) {
        cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    b.max_batch = (int)max_batch;
    b.max_wait_ms = (int)max_wait;
    if (serve_queue_init(&b.q, 4096, &err)) {
        cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    q_ok = 1;
    if (pthread_create(&worker, NULL, worker_main, &b)) {
        cli_fail(cmd, "cannot start the worker thread");
        goto done;
    }
    w_ok = 1;
    int cores = cpu_n_cores(), eng_threads = serve_engine_threads(b.e);
    if (eng_threads < cores) cores = eng_threads;
    level_t L[MAX_LEVELS];
    progress_t prog; /* on stderr, also with --json: a bar on a terminal, a line per level otherwise */
    progress_init(&prog, stderr, "bench", "level", n_levels, PROGRESS_AUTO);
    for (int i = 0; i < n_levels; i++) {
        if (!prog.tty) fprintf(stderr, "bench: concurrency %d for %.1f s...\n", levels[i], duration);
        if (run_level(&b, levels[i], warmup, duration, (const char *const(*)[TASK_MAX_FIELDS])rows, n_inputs, cores, &L[i])) {
            progress_finish(&prog);
            cli_fail(cmd, "out of memory or threads");
            goto done;
        }
        progress_update(&prog, i + 1, "concurrency %d: %.1f QPS, p99 %.1f ms", levels[i], L[i].qps, isnan(L[i].p99) ? 0 : L[i].p99);
    }
    progress_finish(&prog);
    /* the best level whose p99 meets the SLA sizes the fleet */
    int best = -1;
    for (int i = 0; i < n_levels; i++)
        if (L[i].requests && !L[i].errors && L[i].p99 <= sla && (best < 0 || L[i].qps > L[best].qps)) best = i;
    double instances = best >= 0 ? ceil(target / L[best].qps) : NAN;
    double monthly = instances * price * HOURS_PER_MONTH;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", serve_engine_model_name(b.e));
        cJSON_AddStringToObject(o, "task", task->name);
        cJSON_AddStringToObject(o, "mode", "engine");
        cJSON_AddNumberToObject(o, "threads", eng_threads);
        cJSON_AddNumberToObject(o, "cores", cores);
        cJSON_AddNumberToObject(o, "max_batch", max_batch);
        cJSON_AddNumberToObject(o, "max_wait_ms", max_wait);
        cJSON_AddBoolToObject(o, "amx", amx && mm_amx_available());
        cJSON_AddNumberToObject(o, "duration_s", duration);
        cJSON_AddNumberToObject(o, "prefix_tokens", serve_engine_prefix_tokens(b.e));
        cJSON_AddNumberToObject(o, "rss_mib_before_load", rss0);
        cJSON *arr = cJSON_AddArrayToObject(o, "levels");
        for (int i = 0; i < n_levels; i++) {
            cJSON *l = cJSON_CreateObject();
            cJSON_AddNumberToObject(l, "concurrency", L[i].concurrency);
            cJSON_AddNumberToObject(l, "requests", (double)L[i].requests);
            cJSON_AddNumberToObject(l, "errors", (double)L[i].errors);
            cJSON_AddNumberToObject(l, "qps", L[i].qps);
            cJSON_AddNumberToObject(l, "qps_per_core", L[i].per_core);
            cJSON_AddNumberToObject(l, "latency_ms_mean", isnan(L[i].mean_ms) ? 0 : L[i].mean_ms);
            cJSON_AddNumberToObject(l, "latency_ms_p50", isnan(L[i].p50) ? 0 : L[i].p50);
            cJSON_AddNumberToObject(l, "latency_ms_p90", isnan(L[i].p90) ? 0 : L[i].p90);
            cJSON_AddNumberToObject(l, "latency_ms_p99", isnan(L[i].p99) ? 0 : L[i].p99);
            cJSON_AddNumberToObject(l, "mean_batch", L[i].mean_batch);
            cJSON_AddNumberToObject(l, "rss_mib_start", L[i].rss_start);
            cJSON_AddNumberToObject(l, "rss_mib_end", L[i].rss_end);
            cJSON_AddItemToArray(arr, l);
        }
        cJSON *cost = cJSON_AddObjectToObject(o, "capacity");
        cJSON_AddNumberToObject(cost, "target_qps", target);
        cJSON_AddNumberToObject(cost, "sla_ms", sla);
        cJSON_AddNumberToObject(cost, "price_per_hour", price);
        if (best >= 0) {
            cJSON_AddNumberToObject(cost, "sizing_concurrency", L[best].concurrency);
            cJSON_AddNumberToObject(cost, "qps_per_instance", L[best].qps);
            cJSON_AddNumberToObject(cost, "instances", instances);
            cJSON_AddNumberToObject(cost, "monthly_usd", monthly);
        } else {
            cJSON_AddNullToObject(cost, "sizing_concurrency");
            cJSON_AddNullToObject(cost, "qps_per_instance");
            cJSON_AddNullToObject(cost, "instances");
            cJSON_AddNullToObject(cost, "monthly_usd");
        }
        char *txt = cJSON_PrintUnformatted(o);
        if (txt) printf("%s\n", txt);
        free(txt);
        cJSON_Delete(o);
    } else {
        printf("model %s, task %s, %d threads, max batch %d, max wait %d ms, %.1f s per level%s\n",
               serve_engine_model_name(b.e), task->name, eng_threads, (int)max_batch, (int)max_wait, duration,
               amx && mm_amx_available() ? ", AMX" : "");
        printf("%6s %9s %9s %8s %8s %8s %8s %7s %9s %9s %7s\n", "conc", "requests", "QPS", "QPS/core", "p50 ms",
               "p90 ms", "p99 ms", "batch", "RSS0 MiB", "RSS1 MiB", "errors");
        for (int i = 0; i < n_levels; i++)
            printf("%6d %9lu %9.1f %8.1f %8.2f %8.2f %8.2f %7.2f %9.1f %9.1f %7lu\n", L[i].concurrency, L[i].requests,
                   L[i].qps, L[i].per_core, L[i].p50, L[i].p90, L[i].p99, L[i].mean_batch, L[i].rss_start,
                   L[i].rss_end, L[i].errors);
        if (best >= 0)
            printf("%.0f QPS under a %.0f ms p99 SLA: %.0f instance(s) x $%.2f/h = $%.0f/month (sized at concurrency %d, %.1f QPS each)\n",
                   target, sla, instances, price, monthly, L[best].concurrency, L[best].qps);
        else
            printf("%.0f QPS under a %.0f ms p99 SLA: no level met the SLA\n", target, sla);
    }
    rc = CLI_OK;
done:
    if (q_ok) serve_queue_close(&b.q);
    if (w_ok) pthread_join(worker, NULL);
    if (q_ok) serve_queue_destroy(&b.q);
    serve_engine_free(b.e);
    if (store)
        for (size_t i = 0; i < MAX_INPUTS * TASK_MAX_FIELDS; i++) free(store[i]);
    free(store);
    free(rows);
    task_free(task);
    return rc;
}
