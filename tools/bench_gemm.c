/* Micro-benchmark of matmul_forward on random weights: GOP/s (2 * n_out * n_in
 * * n_tokens per call) per weight type and level, for the matrix shapes of the
 * default model (SmolLM2-135M: 576 x 576, 576 -> 192, 576 -> 1536, 1536 -> 576).
 *
 * usage: bench_gemm [--threads N] [--tokens N] [--types q8_0,q4_1,...] [--level scalar|avx2|avx512] [--ms MS]
 *                   [--cpu-time 1] [--amx 1]
 * --amx 1: Q8_0 through the AMX-INT8 tiles (quant/matmul_amx.h) where the CPU has them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/threadpool.h"
#include "quant/matmul.h"
#include "quant/matmul_pack.h"
#include "quant/quantize.h"
#include "quant/types.h"

static int use_cpu_time, amx;

/* Wall time, or with --cpu-time the process's CPU time (steadier on a loaded machine with --threads 1). */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(use_cpu_time ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    int threads = 2, tokens = 64, ms = 300;
    const char *types = "q8_0,q4_1,q4_0,q5_0,iq4_nl,q4_k,q6_k", *lvl = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tokens")) tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--types")) types = argv[i + 1];
        else if (!strcmp(argv[i], "--level")) lvl = argv[i + 1];
        else if (!strcmp(argv[i], "--ms")) ms = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--cpu-time")) use_cpu_time = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--amx")) amx = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_gemm: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    tl_err_t err;
    threadpool_t *pool = NULL;
    if (threadpool_new(&pool, threads, &err)) {
        fprintf(stderr, "bench_gemm: %s\n", err.msg);
        return 1;
    }
    cpu_level_t level = cpu_detect_level();
    if (lvl) {
        int l = cpu_level_from_name(lvl);
        if (l < 0) {
            fprintf(stderr, "bench_gemm: unknown level %s\n", lvl);
            return 2;
        }
        level = (cpu_level_t)l;
    }
    static const int64_t shapes[][2] = {{576, 576}, {576, 192}, {576, 1536}, {1536, 576}};
    printf("threads %d, tokens %d, level %s\n", threads, tokens, cpu_level_name(level));
    char buf[256];
    snprintf(buf, sizeof buf, "%s", types);
    for (char *name = strtok(buf, ","); name; name = strtok(NULL, ",")) {
        int type_id = quantize_type_from_name(name);
        uint32_t type = (uint32_t)type_id;
        if (type_id < 0) {
            fprintf(stderr, "bench_gemm: unknown type %s\n", name);
            return 2;
        }
        double total_ops = 0, total_s = 0;
        printf("%-7s", name);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int64_t n_in = shapes[s][0], n_out = shapes[s][1];
            if (n_in % ggml_type_block_size(type)) { /* e.g. 576-wide rows for the 256-element K types */
                printf("  %4lldx%-4lld %6s", (long long)n_out, (long long)n_in, "-");
                continue;
            }
            size_t n_f = (size_t)(n_in * n_out);
            float *wf = malloc(sizeof(float) * n_f), *x = malloc(sizeof(float) * (size_t)(n_in * tokens));
            float *out = malloc(sizeof(float) * (size_t)(n_out * tokens));
            size_t row_bytes = 0;
            ggml_row_bytes(type, n_in, &row_bytes, &err);
            char *wq = malloc(row_bytes * (size_t)n_out);
            size_t sb = matmul_scratch_bytes(n_in, tokens);
            void *scratch = aligned_alloc(64, (sb + 63) & ~(size_t)63);
            unsigned st = 1;
            for (size_t i = 0; i < n_f; i++) wf[i] = (float)((st = st * 1103515245u + 12345u) >> 8) / 16777216.0f - 0.5f;
            for (size_t i = 0; i < (size_t)(n_in * tokens); i++)
                x[i] = (float)((st = st * 1103515245u + 12345u) >> 8) / 16777216.0f - 0.5f;
            mm_weight_t w;
            int bad = 0;
            for (int64_t r = 0; r < n_out && !bad; r++)
                bad = quantize_row(type, wf + r * n_in, wq + (size_t)r * row_bytes, n_in, NULL, &err);
            if (bad || matmul_weight_init(&w, "bench", type, n_in, n_out, wq, &err)) {
                fprintf(stderr, "bench_gemm: %s\n", err.msg);
                return 1;
            }
            void *pk = mm_pack_alloc(&w); /* Q8_0: packed as model_load does */
            w.pack = pk;
            mm_env_t env = {.pool = pool, .level = level, .scratch = scratch, .scratch_bytes = sb, .amx = amx != 0};
            int reps = 0;
            double t0 = now_s(), t;
            do {
                matmul_forward(out, x, &w, tokens, &env, &err);
                reps++;
            } while ((t = now_s() - t0) < ms * 1e-3);
            double ops = 2.0 * (double)n_in * (double)n_out * tokens * reps;
            printf("  %4lldx%-4lld %6.1f", (long long)n_out, (long long)n_in, ops / t * 1e-9);
            total_ops += ops / reps;
            total_s += t / reps;
            free(wf);
            free(x);
            free(out);
            free(wq);
            free(pk);
            free(scratch);
        }
        printf("   all %6.1f GOP/s\n", total_ops / total_s * 1e-9);
    }
    threadpool_free(pool);
    return 0;
}
