/* cli: the kiln subcommands — the server and the client verbs — each a
 * function main.c dispatches to, with its help text. */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include "base/base.h"

struct cli_verb {
  const char *name;
  const char *summary;
  const char *usage; /* full help text for `kiln help VERB` */
  int (*run)(int argc, char **argv);
};

extern const struct cli_verb cli_verbs[];
extern const int cli_verbs_count;
const struct cli_verb *cli_find(const char *name);
int cli_server(int argc, char **argv);
/* The master key from KILN_MASTER_KEY, or from file when given (never a
 * flag's value): 64 lowercase hex chars into out; *have false when none. */
int cli_master_key(const char *file, char out[65], bool *have, struct err *e);
int cli_version(int argc, char **argv);
int cli_help(int argc, char **argv);
int cli_admin(int argc, char **argv);
int cli_login(int argc, char **argv);
int cli_logout(int argc, char **argv);
int cli_whoami(int argc, char **argv);
int cli_keys(int argc, char **argv);
int cli_projects(int argc, char **argv);
int cli_members(int argc, char **argv);
int cli_invitations(int argc, char **argv);
int cli_experiments(int argc, char **argv);
int cli_runs(int argc, char **argv);
int cli_sync(int argc, char **argv);
int cli_models(int argc, char **argv);
int cli_webhooks(int argc, char **argv);
int cli_approvals(int argc, char **argv);
int cli_predict(int argc, char **argv);
int cli_serving(int argc, char **argv);

#endif
