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


/* Raw bodies (client.c): model uploads and downloads. */
#include <stdio.h>
const char *cli_client_url(const struct cli_client *cl);
/* A file beside the credentials (~/.config/kiln/FILE), its folder made. */
int cli_config_path(const char *file, char *out, size_t cap);
/* PUT n bytes with extra "Name: value" headers (NULL-terminated list). */
long cli_client_put_bytes(struct cli_client *cl, const char *path, const char *const *headers,
                          const void *data, size_t n, json_t **out);
/* GET into f; on 200 sha_out gets the SHA-256 of what was written (checked
 * against the server's X-Kiln-Sha256: a mismatch answers 0); other statuses
 * leave the JSON error in *err_out. */
long cli_client_download(struct cli_client *cl, const char *path, FILE *f, char sha_out[65],
                         json_t **err_out);

#endif
