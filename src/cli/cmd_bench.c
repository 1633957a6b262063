/* tasklm bench: placeholder until the load generator lands. */
#include "cli/cli.h"

int cmd_bench(int argc, char **argv) {
    return cli_fail("bench", "not implemented yet");
}
