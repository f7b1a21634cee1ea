/* kiln: one binary — subcommand dispatch only. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int main(int argc, char **argv) {
  if (argc < 2) {
    cli_help(0, NULL);
    return 2;
  }
  const char *verb = argv[1];
  if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0) return cli_help(argc - 2, argv + 2);
  if (strcmp(verb, "--version") == 0) return cli_version(0, NULL);
  const struct cli_verb *v = cli_find(verb);
  if (!v) {
    fprintf(stderr, "kiln: unknown command '%s'; run `kiln help` for the list\n", verb);
    return 2;
  }
  return v->run(argc - 2, argv + 2);
}
