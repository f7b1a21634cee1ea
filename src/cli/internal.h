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

/* POST a JSON text of n bytes (`kiln predict`). The answer is parsed into
 * *out (may be NULL); when hname is given, that response header's value goes
 * into hval ("" when absent). 0 when the server could not be reached. */
long cli_client_post_text(struct cli_client *cl, const char *path, const char *body, size_t n,
                          const char *hname, char *hval, size_t hcap, json_t **out);

/* ---- `kiln predict` pieces (predict.c; exposed for the unit tests) -------- */
#define CLI_CSV_MAX_FIELD (1u << 20) /* bytes of one CSV field */
#define CLI_CSV_MAX_COLS 10000
/* One CSV record at a time (RFC 4180: quoted fields with "" inside, CRLF or
 * LF, a field may span lines when quoted). */
struct cli_csv {
  FILE *f;
  int64_t line;      /* line where the last record started (1-based) */
  int64_t next_line; /* line of the next character to read */
  struct buf text; /* the record's fields, each NUL-terminated */
  size_t *off;     /* start of field i in text */
  int nfields, cap;
};
void cli_csv_init(struct cli_csv *c, FILE *f);
void cli_csv_fini(struct cli_csv *c);
/* 1: a record (fields via cli_csv_field); 0: end of file; < 0: malformed or
 * too big (e says where). Blank lines are skipped. */
int cli_csv_next(struct cli_csv *c, struct err *e);
const char *cli_csv_field(const struct cli_csv *c, int i);
/* Appends one CSV cell as JSON: a number when it reads as one (JSON's own
 * spelling is copied as is), null when empty or NaN, else a string. */
int cli_csv_cell_json(struct buf *out, const char *cell);
/* The request body for `--json TEXT`: an MLflow payload as given, or a bare
 * list of rows wrapped as {"instances": ...}; proba/margin set params.
 * A new reference, or NULL with e filled. */
json_t *cli_predict_payload(const char *text, bool proba, bool margin, struct err *e);
/* Splits MODEL[@VERSION] (the last @; no version: "latest") into name and
 * version; -1 when either part is empty or too long. */
int cli_model_ref(const char *ref, char *name, size_t ncap, char *version, size_t vcap);

#endif
