/* cli/internal: what the client verbs share — an authenticated connection
 * to the server from the stored credentials (client.c). Not for other rooms. */
#ifndef KILN_CLI_INTERNAL_H
#define KILN_CLI_INTERNAL_H

#include "base/base.h"

struct cli_client;
/* Loads the credentials and gets a bearer (refreshing a login token, which
 * is saved again); NULL with the reason printed on stderr. */
struct cli_client *cli_client_open(void);
void cli_client_close(struct cli_client *cl);
/* One request; returns the HTTP status (0 when the server could not be
 * reached, with a message printed) and the parsed JSON answer in *out (may
 * be NULL; caller decrefs). body is not consumed. */
long cli_client_call(struct cli_client *cl, const char *method, const char *path, json_t *body,
                     json_t **out);
/* `kiln: CODE (status): message` on stderr; returns 1. */
int cli_report_error(long status, json_t *body);
void cli_print_json(json_t *v);

/* Table output and calls shared by the client verbs (track.c). */
/* rows: a JSON array of arrays of strings, the first the header. */
void cli_print_table(json_t *rows);
/* A row of strings, NULL-terminated. */
json_t *cli_row(const char *first, ...);
/* A query-string escape of s (malloc'd), or NULL. */
char *cli_escape(const char *s);
/* One call; 0 with *out set on 200, else the error printed and 1. */
int cli_call(struct cli_client *cl, const char *method, const char *path, json_t *body, json_t **out);
/* "YYYY-MM-DD HH:MM:SS" (UTC) of epoch ms, "-" when unset. */
void cli_fmt_time(int64_t ms, char out[32]);

#endif
