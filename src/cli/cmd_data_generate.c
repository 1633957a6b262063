/* tasklm data generate: writes a synthetic labelled name-pair corpus. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "io/atomic_file.h"
#include "task/namegen.h"

int cmd_data_generate(int argc, char **argv);

static const char *CMD = "data generate";

static void usage(FILE *out) {
    fprintf(out,
            "usage: tasklm data generate --out FILE.csv [options]\n\n"
            "Builds labelled person-name pairs (yes / no / partial) from the name lists\n"
            "of a task folder, following TASK_DIR/LABELS.md. Same seed + same lists give\n"
            "byte-identical output. Columns: elected_name,partner_name,labeled_result,\n"
            "category,region.\n\n"
            "options:\n"
            "  --task-dir DIR   task folder holding lists/ (default tasks/namematch)\n"
            "  --rows N         number of pairs (default 1336)\n"
            "  --seed S         PRNG seed, unsigned 64-bit (default 1)\n"
            "  --mix Y,N,P      shares of yes,no,partial summing to 1 (default 0.60,0.27,0.13)\n"
            "  --out FILE       output CSV, written atomically; '-' for stdout\n"
            "  --json           print the class counts as JSON on stdout\n"
            "  -h, --help       this help\n");
}

static int parse_u64(const char *s, unsigned long long *v) {
    char *end;
    if (!s[0] || s[0] == '-') return -1;
    errno = 0;
    *v = strtoull(s, &end, 10);
    return errno || *end ? -1 : 0;
}

static int parse_mix(const char *s, namegen_mix_t *m) {
    char *end;
    double v[3];
    const char *p = s;
    for (int i = 0; i < 3; i++) {
        errno = 0;
        v[i] = strtod(p, &end);
        if (errno || end == p || v[i] < 0 || v[i] > 1) return -1;
        if (i < 2 && *end != ',') return -1;
        p = end + (i < 2);
    }
    if (*end) return -1;
    m->yes = v[0], m->no = v[1], m->partial = v[2];
    double sum = v[0] + v[1] + v[2];
    return sum < 0.99 || sum > 1.01 ? -1 : 0;
}

int cmd_data_generate(int argc, char **argv) {
    static const struct option opts[] = {
        {"task-dir", required_argument, 0, 'd'}, {"rows", required_argument, 0, 'n'},
        {"seed", required_argument, 0, 's'},     {"mix", required_argument, 0, 'x'},
        {"out", required_argument, 0, 'o'},      {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
    };
    const char *task_dir = "tasks/namematch", *out = NULL;
    namegen_opts_t o = {.rows = 1336, .seed = 1, .mix = {0.60, 0.27, 0.13}};
    int json = 0, c;
    unsigned long long v;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': task_dir = optarg; break;
        case 'n':
            if (parse_u64(optarg, &v) || v == 0 || v > 10000000)
                return cli_usage_error(CMD, "--rows must be an integer from 1 to 10000000, not '%s'", optarg);
            o.rows = (size_t)v;
            break;
        case 's':
            if (parse_u64(optarg, &v)) return cli_usage_error(CMD, "--seed must be an unsigned integer, not '%s'", optarg);
            o.seed = v;
            break;
        case 'x':
            if (parse_mix(optarg, &o.mix))
                return cli_usage_error(CMD, "--mix must be three shares yes,no,partial summing to 1, not '%s'", optarg);
            break;
        case 'o': out = optarg; break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return CLI_OK;
        case ':': return cli_usage_error(CMD, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error(CMD, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!out) return cli_usage_error(CMD, "--out FILE is required");
    if (json && !strcmp(out, "-")) return cli_usage_error(CMD, "--json cannot be combined with --out -");

    tl_err_t err = {{0}};
    namegen_lists_t *lists;
    if (namegen_lists_load(&lists, task_dir, &err)) return cli_fail(CMD, "%s", err.msg);
    namegen_stats_t st;
    int rc;
    if (!strcmp(out, "-")) {
        rc = namegen_write_csv(lists, &o, stdout, &st, &err);
        if (rc == 0 && fflush(stdout)) rc = tl_fail(&err, "stdout: write error");
    } else {
        atomic_file_t af;
        rc = atomic_file_open(&af, out, &err);
        if (rc == 0) {
            rc = namegen_write_csv(lists, &o, af.fp, &st, &err);
            if (rc == 0) {
                rc = atomic_file_commit(&af, &err);
            } else {
                atomic_file_abort(&af);
                tl_fail_prefix(&err, "%s", out);
            }
        }
    }
    namegen_lists_free(lists);
    if (rc) return cli_fail(CMD, "%s", err.msg);
    if (json)
        printf("{\"out\":\"%s\",\"rows\":%zu,\"seed\":%llu,\"yes\":%zu,\"no\":%zu,\"partial\":%zu,\"indian\":%zu}\n", out,
               o.rows, (unsigned long long)o.seed, st.yes, st.no, st.partial, st.indian);
    else if (strcmp(out, "-"))
        fprintf(stderr, "wrote %s: %zu rows (yes %zu, no %zu, partial %zu; Indian %zu)\n", out, o.rows, st.yes, st.no,
                st.partial, st.indian);
    return CLI_OK;
}
