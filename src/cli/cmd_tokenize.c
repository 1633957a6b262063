/* Placeholder until the subcommand lands. */
#include "cli/cli.h"

int cmd_tokenize(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_fail("tokenize", "not implemented yet");
}
