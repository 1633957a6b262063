/* Placeholder until the subcommand lands. */
#include "cli/cli.h"

int cmd_data(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_fail("data", "not implemented yet");
}
