/* tasklm serve: the classification HTTP server (src/serve/server.h). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "serve/server.h"
#include "task/task.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tasklm serve -m MODEL [--task NAME] [options]\n\n"
            "Serves label classification for a task over HTTP/1.1 (keep-alive):\n"
            "  POST /v1/classify  {\"name1\":..,\"name2\":..} | {\"pairs\":[[..,..],..]} | {\"inputs\":{FIELD:..}}\n"
            "  GET  /v1/models, /health, /ready (200 once the model is loaded), /metrics (Prometheus)\n"
            "The template's constant prefix is evaluated once; each input prefills only its\n"
            "own tokens and scores the labels. Concurrent inputs are taken in batches.\n"
            "SIGTERM/SIGINT: stop accepting, answer the requests in flight, exit 0.\n\n"
            "options:\n"
            "  -m, --model PATH        GGUF model\n"
            "  --task NAME             task folder under tasks/ (default namematch)\n"
            "  --task-dir DIR          task folder path (overrides --task)\n"
            "  --host ADDR             numeric address to bind (default 127.0.0.1)\n"
            "  --port N                port (default 8080; 0: any free port)\n"
            "  --threads N             model threads (default: one per core)\n"
            "  --max-batch N           inputs per engine batch (default 16)\n"
            "  --max-wait-ms N         under load, wait for a batch to fill after its first input (default 2)\n"
            "  --max-batch-tokens N    tokens per forward pass (default 1024; raised to fit one input)\n"
            "  --amx                   Q8_0 matmuls on the AMX-INT8 tiles where the CPU has them (faster;\n"
            "                          other rounding: probabilities move by up to ~0.1 and near-ties can\n"
            "                          flip against tasklm eval, as between --cpu levels of tasklm score)\n"
            "  --queue-size N          inputs waiting at most; beyond, 503 + Retry-After (default 256)\n"
            "  --max-body-bytes N      larger bodies get 413 (default 1048576)\n"
            "  --max-name-bytes N      longer names get 400 (default: the task's max_field_bytes)\n"
            "  --api-key-file F        require 'Authorization: Bearer <first line of F>' on\n"
            "                          /v1/* and /metrics (401 otherwise)\n"
            "  --max-connections N     concurrent connections (default 256)\n"
            "  --drain-timeout S       seconds to wait for in-flight requests at shutdown (default 30)\n"
            "  -h, --help              this help\n");
}

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int read_key(const char *path, char *key, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int ok = fgets(key, (int)cap, f) != NULL;
    fclose(f);
    if (!ok) return -1;
    size_t n = strlen(key);
    while (n && (key[n - 1] == '\n' || key[n - 1] == '\r' || key[n - 1] == ' ')) key[--n] = '\0';
    return n ? 0 : -1;
}

int cmd_serve(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"task", required_argument, 0, 't'},
        {"task-dir", required_argument, 0, 'T'},  {"host", required_argument, 0, 'H'},
        {"port", required_argument, 0, 'p'},      {"threads", required_argument, 0, 'j'},
        {"max-batch", required_argument, 0, 'b'}, {"max-wait-ms", required_argument, 0, 'w'},
        {"queue-size", required_argument, 0, 'q'}, {"max-body-bytes", required_argument, 0, 'B'},
        {"max-name-bytes", required_argument, 0, 'N'}, {"api-key-file", required_argument, 0, 'k'},
        {"max-connections", required_argument, 0, 'C'}, {"drain-timeout", required_argument, 0, 'D'},
        {"max-batch-tokens", required_argument, 0, 'K'}, {"amx", no_argument, 0, 'X'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0},
    };
    const char *cmd = "serve";
    serve_opts_t o = {.host = "127.0.0.1", .port = 8080, .max_batch = 16, .max_wait_ms = 2, .queue_size = 256,
                      .max_body_bytes = 1 << 20, .max_connections = 256};
    const char *task_name = "namematch", *task_dir = NULL, *key_file = NULL;
    long drain = 30;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":m:h", opts, NULL)) != -1) {
        long v = 0;
        const char *name = argv[optind - 1];
        switch (c) {
        case 'm': o.model_path = optarg; break;
        case 't': task_name = optarg; break;
        case 'T': task_dir = optarg; break;
        case 'H': o.host = optarg; break;
        case 'k': key_file = optarg; break;
        case 'X': o.amx = 1; break;
        case 'p': case 'j': case 'b': case 'w': case 'q': case 'B': case 'N': case 'C': case 'D': case 'K': {
            long lo = c == 'p' || c == 'w' ? 0 : 1;
            long hi = c == 'p' ? 65535 : c == 'j' ? 1024 : c == 'b' ? 1024 : c == 'w' ? 10000 : c == 'B' ? (1L << 30)
                    : c == 'D' ? 3600 : c == 'K' ? 65536 : c == 'C' ? 100000 : (1L << 24);
            if (parse_long(optarg, lo, hi, &v))
                return cli_usage_error(cmd, "%s '%s' must be an integer in %ld..%ld", name, optarg, lo, hi);
            if (c == 'p') o.port = (int)v;
            else if (c == 'j') o.threads = (int)v;
            else if (c == 'b') o.max_batch = (int)v;
            else if (c == 'w') o.max_wait_ms = (int)v;
            else if (c == 'q') o.queue_size = (size_t)v;
            else if (c == 'B') o.max_body_bytes = (size_t)v;
            else if (c == 'N') o.max_name_bytes = (size_t)v;
            else if (c == 'C') o.max_connections = (int)v;
            else if (c == 'K') o.max_batch_tokens = (int)v;
            else drain = v;
            break;
        }
        case 'h': usage(stdout); return CLI_OK;
        case ':': return cli_usage_error(cmd, "option '%s' needs a value", name);
        default: return cli_usage_error(cmd, "unknown option '%s'", name);
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!o.model_path) return cli_usage_error(cmd, "-m/--model is required");
    char dirbuf[512], key[512];
    if (!(task_dir = cli_task_dir(cmd, task_name, task_dir, dirbuf, sizeof dirbuf))) return CLI_USAGE;
    if (key_file) {
        if (read_key(key_file, key, sizeof key)) return cli_fail(cmd, "%s: cannot read an API key (first line, non-empty)", key_file);
        o.api_key = key;
    }
    tl_err_t err = {{0}};
    task_t *task;
    if (task_load(&task, task_dir, &err)) return cli_fail(cmd, "%s", err.msg);
    o.task = task;
    if (!o.max_name_bytes) o.max_name_bytes = task->max_field_bytes;
    if (o.queue_size < (size_t)o.max_batch) o.queue_size = (size_t)o.max_batch;
    /* signals are taken by this thread only: block them before any thread starts */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    serve_server_t *srv;
    if (serve_server_start(&srv, &o, &err)) {
        task_free(task);
        return cli_fail(cmd, "%s", err.msg);
    }
    fprintf(stderr, "tasklm serve: listening on http://%s%s%s:%d (task %s, model %s); loading the model\n",
            strchr(o.host, ':') ? "[" : "", o.host, strchr(o.host, ':') ? "]" : "", serve_server_port(srv), task->name,
            o.model_path);
    int rc = CLI_OK, announced = 0;
    for (;;) {
        struct timespec ts = {0, 100 * 1000000L};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM) {
            fprintf(stderr, "tasklm serve: %s: draining in-flight requests\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
            break;
        }
        int st = serve_server_state(srv, &err);
        if (st < 0) {
            rc = cli_fail(cmd, "%s", err.msg);
            break;
        }
        if (st == 1 && !announced) {
            fprintf(stderr, "tasklm serve: ready\n");
            announced = 1;
        }
    }
    serve_server_stop(srv, (double)drain);
    task_free(task);
    if (rc == CLI_OK) fprintf(stderr, "tasklm serve: stopped\n");
    return rc;
}
