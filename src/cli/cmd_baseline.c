/* Placeholder until the subcommand lands. */
#include "cli/cli.h"

int cmd_baseline(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_fail("baseline", "not implemented yet");
}
