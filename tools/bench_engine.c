/* The serving engine without the queue, the batcher or HTTP: wall time and
 * process CPU time per input for passes of B inputs (names from the task's
 * data), so that the engine's own cost can be read on a shared machine (CPU
 * time with --threads 1 does not include another process's time slices, nor
 * a thread pool waiting for a descheduled thread).
 *
 *   build/tools/bench_engine MODEL [--task-dir DIR] [--threads N] [--batch B] [--passes N] [--amx]
 *
 * Prints one line per run: inputs, passes, wall ms and CPU ms per pass and
 * per input, a checksum of the labels and a hash of the probabilities' bits
 * (equal hashes: the builds give the same answers bit for bit). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/csv.h"
#include "serve/engine.h"
#include "task/task.h"

enum { MAX_ROWS = 512 };

static double now(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* elected_name,partner_name from the first MAX_ROWS rows of a namematch-style CSV. */
static int read_pairs(const char *path, char (*names)[2][128], int *n) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[1024];
    *n = 0;
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        return -1;
    }
    while (*n < MAX_ROWS && fgets(line, sizeof line, f)) {
        char *a = line, *c1 = strchr(a, ',');
        if (!c1 || strchr(line, '"')) continue; /* quoted rows are not needed for timing */
        *c1 = '\0';
        char *b = c1 + 1, *c2 = strchr(b, ',');
        if (!c2) continue;
        *c2 = '\0';
        if (!*a || !*b || strlen(a) >= 128 || strlen(b) >= 128) continue;
        strcpy(names[*n][0], a);
        strcpy(names[*n][1], b);
        (*n)++;
    }
    fclose(f);
    return *n ? 0 : -1;
}

int main(int argc, char **argv) {
    const char *model = NULL, *task_dir = "tasks/namematch";
    int threads = 2, batch = 1, passes = 50, amx = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--task-dir") && i + 1 < argc) task_dir = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--passes") && i + 1 < argc) passes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--amx")) amx = 1;
        else if (argv[i][0] != '-' && !model) model = argv[i];
        else {
            fprintf(stderr, "usage: bench_engine MODEL [--task-dir DIR] [--threads N] [--batch B] [--passes N] [--amx]\n");
            return 2;
        }
    }
    if (!model || batch < 1 || batch > 64 || passes < 1) {
        fprintf(stderr, "usage: bench_engine MODEL [--task-dir DIR] [--threads N] [--batch B] [--passes N] [--amx]\n");
        return 2;
    }
    tl_err_t err = {{0}};
    task_t *task;
    if (task_load(&task, task_dir, &err)) {
        fprintf(stderr, "bench_engine: %s\n", err.msg);
        return 1;
    }
    static char names[MAX_ROWS][2][128];
    int n_rows;
    char data[4096];
    snprintf(data, sizeof data, "%s/data/raw.csv", task_dir);
    if (read_pairs(data, names, &n_rows)) {
        fprintf(stderr, "bench_engine: %s: no name pairs\n", data);
        return 1;
    }
    serve_engine_t *e;
    serve_engine_opts_t o = {.model_path = model, .task = task, .threads = threads, .max_batch = batch, .amx = amx};
    if (serve_engine_new(&e, &o, &err)) {
        fprintf(stderr, "bench_engine: %s\n", err.msg);
        return 1;
    }
    const char *fields[64][2];
    serve_item_t items[64];
    long sum = 0, evaluated = 0;
    uint64_t bits = 0xcbf29ce484222325ULL; /* FNV-1a over the probabilities' bits */
    double w0 = 0, c0 = 0;
    for (int p = -3; p < passes; p++) { /* three warm-up passes */
        if (p == 0) {
            w0 = now(CLOCK_MONOTONIC);
            c0 = now(CLOCK_PROCESS_CPUTIME_ID);
        }
        memset(items, 0, sizeof items);
        for (int i = 0; i < batch; i++) {
            int r = (int)(((long)(p + 3) * batch + i) % n_rows);
            fields[i][0] = names[r][0];
            fields[i][1] = names[r][1];
            items[i].fields = fields[i];
        }
        if (serve_engine_classify_many(e, items, batch, 0)) {
            fprintf(stderr, "bench_engine: a pass failed: %s\n", items[0].err.msg);
            return 1;
        }
        if (p >= 0)
            for (int i = 0; i < batch; i++) {
                sum = sum * 3 + items[i].label;
                sum %= 1000000007L;
                for (int k = 0; k < 3; k++) {
                    uint64_t u;
                    memcpy(&u, &items[i].probs[k], sizeof u);
                    bits = (bits ^ u) * 0x100000001b3ULL;
                }
                evaluated += items[i].cost.n_evaluated;
            }
    }
    double wall = now(CLOCK_MONOTONIC) - w0, cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
    long n = (long)passes * batch;
    printf("threads %d batch %d passes %d: wall %.2f ms/pass %.2f ms/input (%.1f inputs/s), cpu %.2f ms/input, "
           "%.1f tokens/input, labels %ld, probability bits %016llx\n",
           threads, batch, passes, 1e3 * wall / passes, 1e3 * wall / (double)n, (double)n / wall, 1e3 * cpu / (double)n,
           (double)evaluated / (double)n, sum, (unsigned long long)bits);
    serve_engine_free(e);
    task_free(task);
    return 0;
}
