/* Subcommand entry points and shared CLI conventions: exit 0 on success,
 * 1 on a runtime failure, 2 on bad usage; errors are one line on stderr,
 * prefixed "tasklm <command>: error: ". */
#ifndef TL_CLI_H
#define TL_CLI_H

#include <stddef.h>

#include "core/err.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

typedef int (*cli_cmd_fn)(int argc, char **argv);

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_baseline(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_cv(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_pipeline(int argc, char **argv);

/* Prints "tasklm CMD: error: MSG" to stderr and returns CLI_FAIL / CLI_USAGE. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The task folder of --task NAME / --task-dir DIR: DIR when given, else tasks/NAME written into buf (NAME
 * must be a folder name, not a path). NULL after printing the usage error. */
const char *cli_task_dir(const char *cmd, const char *task_name, const char *task_dir, char *buf, size_t cap);

#endif
