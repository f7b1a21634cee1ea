/* cli/predict: `kiln predict` (predictions from the shell: a JSON payload or
 * a CSV file sent in batches of rows) and `kiln serving` (the models the
 * server has loaded; load and unload), over the serving HTTP API with the
 * stored credentials. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "internal.h"

static const char PREDICT_USAGE[] = "usage: kiln predict MODEL[@VERSION] --json PAYLOAD|@FILE|- "
                                    "[--proba] [--margin] [--output json|csv]\n"
                                    "       kiln predict MODEL[@VERSION] --csv FILE|- "
                                    "[--batch-rows N] [--proba] [--margin] [--output json|csv]\n";

static const char SERVING_USAGE[] =
    "usage: kiln serving list [--json]\n"
    "       kiln serving load MODEL[@VERSION] [--max-batch-size N] [--max-queue-delay-us N]\n"
    "                         [--queue-capacity N] [--instances N] [--json]\n"
    "       kiln serving unload MODEL@VERSION\n";

#define BATCH_DEFAULT 1000
#define BATCH_MAX 100000
#define PAYLOAD_MAX (64u << 20) /* --json text, from the argument, a file or stdin */

/* ---- small pieces (exposed in internal.h for the unit tests) ------------- */

int cli_model_ref(const char *ref, char *name, size_t ncap, char *version, size_t vcap) {
  const char *at = strrchr(ref, '@');
  size_t n = at ? (size_t)(at - ref) : strlen(ref);
  const char *v = at ? at + 1 : "latest";
  if (n == 0 || n >= ncap || !*v || strlen(v) >= vcap) return -1;
  memcpy(name, ref, n);
  name[n] = 0;
  str_copy(version, vcap, v);
  return 0;
}

static const char *const PAYLOAD_KEYS[] = {"dataframe_split", "dataframe_records", "instances",
                                           "inputs"};

json_t *cli_predict_payload(const char *text, bool proba, bool margin, struct err *e) {
  json_t *v = json_parse(text, strlen(text), e);
  if (!v) return NULL;
  json_t *body = NULL;
  if (json_is_array(v)) {
    body = json_pack("{s:O}", "instances", v);
  } else if (json_is_object(v)) {
    int found = 0;
    for (size_t i = 0; i < sizeof PAYLOAD_KEYS / sizeof PAYLOAD_KEYS[0]; i++)
      found += json_object_get(v, PAYLOAD_KEYS[i]) != NULL;
    if (found != 1) {
      json_decref(v);
      err_set(
          e, ERR_INVALID_PARAMETER_VALUE,
          found
              ? "the payload has more than one of dataframe_split, dataframe_records, instances, "
                "inputs"
              : "the payload needs one of dataframe_split, dataframe_records, instances or inputs "
                "(or be a list of rows)");
      return NULL;
    }
    body = json_incref(v);
  } else {
    json_decref(v);
    err_set(e, ERR_INVALID_PARAMETER_VALUE,
            "the payload must be an MLflow scoring object or a list of rows");
    return NULL;
  }
  json_decref(v);
  if (!body) {
    err_set(e, ERR_NO_MEMORY, "out of memory");
    return NULL;
  }
  if (proba || margin) {
    json_t *params = json_object_get(body, "params");
    if (params && !json_is_object(params)) {
      json_decref(body);
      err_set(e, ERR_INVALID_PARAMETER_VALUE, "the payload's params must be an object");
      return NULL;
    }
    if (!params) {
      params = json_object();
      json_object_set_new(body, "params", params);
    }
    if (proba) json_object_set_new(params, "predict_proba", json_true());
    if (margin) json_object_set_new(params, "output_margin", json_true());
  }
  return body;
}

/* JSON's own number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool json_number_text(const char *s) {
  const char *p = s;
  if (*p == '-') p++;
  if (*p == '0')
    p++;
  else if (*p >= '1' && *p <= '9')
    while (*p >= '0' && *p <= '9') p++;
  else
    return false;
  if (*p == '.') {
    p++;
    if (!(*p >= '0' && *p <= '9')) return false;
    while (*p >= '0' && *p <= '9') p++;
  }
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '+' || *p == '-') p++;
    if (!(*p >= '0' && *p <= '9')) return false;
    while (*p >= '0' && *p <= '9') p++;
  }
  return *p == 0;
}

/* The shortest %g spelling that reads back as the same double. */
static void fmt_real(double d, char out[40]) {
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(out, 40, "%.*g", prec, d);
    if (strtod(out, NULL) == d) break;
  }
  /* a whole number stays recognisably a real number */
  if (!strpbrk(out, ".eEn")) {
    size_t n = strlen(out);
    if (n + 2 < 40) memcpy(out + n, ".0", 3);
  }
}

int cli_csv_cell_json(struct buf *out, const char *cell) {
  /* surrounding blanks are layout, not data (a quoted field keeps its own) */
  size_t n = strlen(cell);
  const char *s = cell;
  while (*s == ' ' || *s == '\t') s++, n--;
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
  char tmp[64];
  if (n == 0) return buf_puts(out, "null");
  if (n < sizeof tmp) {
    memcpy(tmp, s, n);
    tmp[n] = 0;
    /* other spellings of numbers (1., .5, +2) are normalised; NaN, the
     * usual "missing" of a CSV, becomes null; 1e999 stays text (no double
     * holds it, and the server names the column) */
    char *end = NULL;
    errno = 0;
    double d = strtod(tmp, &end);
    if (json_number_text(tmp) && isfinite(d)) return buf_puts(out, tmp);
    if (end && end != tmp && *end == 0 && !strpbrk(tmp, "xX")) {
      if (isnan(d)) return buf_puts(out, "null");
      if (isfinite(d)) {
        char r[40];
        fmt_real(d, r);
        return buf_puts(out, r);
      }
    }
  }
  return json_escape_buf(out, cell);
}

void cli_csv_init(struct cli_csv *c, FILE *f) {
  memset(c, 0, sizeof *c);
  c->f = f;
  buf_init(&c->text);
}

void cli_csv_fini(struct cli_csv *c) {
  buf_fini(&c->text);
  free(c->off);
  memset(c, 0, sizeof *c);
}

const char *cli_csv_field(const struct cli_csv *c, int i) {
  return i >= 0 && i < c->nfields ? c->text.data + c->off[i] : NULL;
}

static int csv_start_field(struct cli_csv *c, struct err *e) {
  if (c->nfields >= CLI_CSV_MAX_COLS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "line %lld: more than %d fields",
                   (long long)c->line, CLI_CSV_MAX_COLS);
  if (c->nfields == c->cap) {
    int cap = c->cap ? c->cap * 2 : 64;
    size_t *o = realloc(c->off, (size_t)cap * sizeof *o);
    if (!o) return err_set(e, ERR_NO_MEMORY, "out of memory");
    c->off = o;
    c->cap = cap;
  }
  c->off[c->nfields++] = c->text.len;
  return 0;
}

int cli_csv_next(struct cli_csv *c, struct err *e) {
  int ch, rc;
  if (c->next_line == 0) c->next_line = 1;
  /* blank lines between records are nothing */
  do {
    ch = getc(c->f);
    if (ch == '\n') c->next_line++;
  } while (ch == '\n' || ch == '\r');
  if (ch == EOF)
    return ferror(c->f) ? err_set(e, ERR_IO, "cannot read the file: %s", strerror(errno)) : 0;
  c->line = c->next_line;
  buf_reset(&c->text);
  c->nfields = 0;
  if ((rc = csv_start_field(c, e))) return rc;
  bool quoted = false, was_quoted = false;
  size_t field_start = c->text.len;
  for (;; ch = getc(c->f)) {
    if (ch == EOF) {
      if (ferror(c->f)) return err_set(e, ERR_IO, "cannot read the file: %s", strerror(errno));
      if (quoted)
        return err_set(e, ERR_INVALID_PARAMETER_VALUE, "line %lld: a quoted field is never closed",
                       (long long)c->line);
      break;
    }
    if (ch == '\n') c->next_line++;
    if (quoted) {
      if (ch == '"') {
        int nx = getc(c->f);
        if (nx != '"') {
          /* the closing quote; "" inside a quoted field is one quote */
          quoted = false;
          if (nx != EOF) ungetc(nx, c->f);
          continue;
        }
      }
    } else if (ch == ',') {
      if (buf_putc(&c->text, 0)) return err_set(e, ERR_NO_MEMORY, "out of memory");
      if ((rc = csv_start_field(c, e))) return rc;
      field_start = c->text.len;
      was_quoted = false;
      continue;
    } else if (ch == '\n') {
      break;
    } else if (ch == '\r') {
      continue;
    } else if (ch == '"' && c->text.len == field_start && !was_quoted) {
      quoted = was_quoted = true;
      continue;
    }
    if (c->text.len - field_start >= CLI_CSV_MAX_FIELD)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "line %lld: field %d is longer than %u bytes",
                     (long long)c->line, c->nfields, CLI_CSV_MAX_FIELD);
    if (buf_putc(&c->text, (char)ch)) return err_set(e, ERR_NO_MEMORY, "out of memory");
  }
  if (buf_putc(&c->text, 0)) return err_set(e, ERR_NO_MEMORY, "out of memory");
  return 1;
}

/* ---- printing predictions -------------------------------------------------- */

/* JSON with reals in their shortest round-trip spelling (jansson's would
 * print 0.1 as 0.10000000000000001). */
static void emit_json(struct buf *b, json_t *v) {
  size_t i;
  const char *k;
  json_t *x;
  char r[40];
  switch (json_typeof(v)) {
  case JSON_REAL:
    if (!isfinite(json_real_value(v))) {
      buf_puts(b, "null");
      break;
    }
    fmt_real(json_real_value(v), r);
    buf_puts(b, r);
    break;
  case JSON_ARRAY:
    buf_putc(b, '[');
    json_array_foreach(v, i, x) {
      if (i) buf_putc(b, ',');
      emit_json(b, x);
    }
    buf_putc(b, ']');
    break;
  case JSON_OBJECT:
    buf_putc(b, '{');
    i = 0;
    json_object_foreach(v, k, x) {
      if (i++) buf_putc(b, ',');
      json_escape_buf(b, k);
      buf_putc(b, ':');
      emit_json(b, x);
    }
    buf_putc(b, '}');
    break;
  default: json_emit(b, v);
  }
}

static void csv_text(struct buf *b, const char *s) {
  if (!strpbrk(s, ",\"\r\n")) {
    buf_puts(b, s);
    return;
  }
  buf_putc(b, '"');
  for (; *s; s++) buf_append(b, *s == '"' ? "\"\"" : s, *s == '"' ? 2 : 1);
  buf_putc(b, '"');
}

/* One CSV cell: numbers and words as they are, nothing for null, nested
 * values as their JSON text. */
static void csv_cell(struct buf *b, json_t *v) {
  if (json_is_string(v)) {
    csv_text(b, json_string_value(v));
  } else if (json_is_null(v)) {
  } else if (json_is_array(v) || json_is_object(v)) {
    struct buf t;
    buf_init(&t);
    emit_json(&t, v);
    csv_text(b, t.data ? t.data : "");
    buf_fini(&t);
  } else {
    emit_json(b, v);
  }
}

struct printer {
  bool csv;
  int64_t rows;    /* printed so far */
  json_t *classes; /* --proba with --output csv: the header's names */
  bool header_done;
};

/* The CSV header from the first row: "prediction" for a number, one column
 * per element of a row that is a list (the class names when known), one per
 * output of a row that is an object. */
static void csv_header(struct printer *p, json_t *row, struct buf *b) {
  if (json_is_array(row)) {
    size_t n = json_array_size(row);
    for (size_t i = 0; i < n; i++) {
      if (i) buf_putc(b, ',');
      json_t *c = json_array_size(p->classes) == n ? json_array_get(p->classes, i) : NULL;
      if (json_is_string(c))
        csv_text(b, json_string_value(c));
      else if (c && (json_is_integer(c) || json_is_real(c)))
        emit_json(b, c);
      else
        buf_printf(b, "prediction_%zu", i);
    }
  } else if (json_is_object(row)) {
    const char *k;
    json_t *x;
    size_t i = 0;
    json_object_foreach(row, k, x) {
      if (i++) buf_putc(b, ',');
      csv_text(b, k);
    }
  } else {
    buf_puts(b, "prediction");
  }
  buf_putc(b, '\n');
}

static void print_rows(struct printer *p, json_t *preds) {
  struct buf b;
  buf_init(&b);
  size_t i;
  json_t *row;
  json_array_foreach(preds, i, row) {
    if (p->csv) {
      if (!p->header_done) {
        csv_header(p, row, &b);
        p->header_done = true;
      }
      if (json_is_array(row) || json_is_object(row)) {
        size_t j = 0;
        const char *k;
        json_t *x;
        if (json_is_array(row)) {
          json_array_foreach(row, j, x) {
            if (j) buf_putc(&b, ',');
            csv_cell(&b, x);
          }
        } else {
          json_object_foreach(row, k, x) {
            if (j++) buf_putc(&b, ',');
            csv_cell(&b, x);
          }
        }
      } else {
        csv_cell(&b, row);
      }
      buf_putc(&b, '\n');
    } else {
      /* one JSON array overall, one prediction per line */
      buf_puts(&b, p->rows == 0 ? "[\n  " : ",\n  ");
      emit_json(&b, row);
    }
    p->rows++;
  }
  if (b.len) fwrite(b.data, 1, b.len, stdout);
  buf_fini(&b);
}

static void print_end(struct printer *p) {
  if (!p->csv) fputs(p->rows ? "\n]\n" : "[]\n", stdout);
  fflush(stdout);
}

/* ---- predict ------------------------------------------------------------ */

struct pargs {
  const char *pos[4];
  int npos;
  const char *json, *csv, *output, *batch_rows;
  const char *max_batch_size, *max_queue_delay_us, *queue_capacity, *instances;
  bool proba, margin, as_json;
};

static int parse(int argc, char **argv, struct pargs *a, const char *usage) {
  memset(a, 0, sizeof *a);
  for (int i = 0; i < argc; i++) {
    const char *s = argv[i];
    if (s[0] != '-' || s[1] == 0) {
      if (a->npos >= 4) {
        fprintf(stderr, "kiln: too many arguments\n%s", usage);
        return 2;
      }
      a->pos[a->npos++] = s;
      continue;
    }
    if (str_eq(s, "--proba")) {
      a->proba = true;
      continue;
    }
    if (str_eq(s, "--margin")) {
      a->margin = true;
      continue;
    }
    if (str_eq(s, "--help") || str_eq(s, "-h")) {
      fputs(usage, stdout);
      return 1;
    }
    const char *eq = strchr(s, '=');
    size_t n = eq ? (size_t)(eq - s) : strlen(s);
#define IS(name) (strlen(name) == n && strncmp(s, name, n) == 0)
    /* `kiln serving list --json` is a flag; `kiln predict --json` takes the payload */
    if (IS("--json") && usage == SERVING_USAGE && !eq) {
      a->as_json = true;
      continue;
    }
    const char **slot = IS("--json")                 ? &a->json
                        : IS("--csv")                ? &a->csv
                        : IS("--output")             ? &a->output
                        : IS("--batch-rows")         ? &a->batch_rows
                        : IS("--max-batch-size")     ? &a->max_batch_size
                        : IS("--max-queue-delay-us") ? &a->max_queue_delay_us
                        : IS("--queue-capacity")     ? &a->queue_capacity
                        : IS("--instances")          ? &a->instances
                                                     : NULL;
#undef IS
    if (!slot) {
      fprintf(stderr, "kiln: unknown option '%.*s'\n%s", (int)n, s, usage);
      return 2;
    }
    const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
    if (!v) {
      fprintf(stderr, "kiln: %.*s needs a value\n%s", (int)n, s, usage);
      return 2;
    }
    *slot = v;
  }
  return 0;
}

/* The whole of FILE or stdin ("-"), bounded. */
static char *read_all(const char *file, size_t max) {
  FILE *f = str_eq(file, "-") ? stdin : fopen(file, "rb");
  if (!f) {
    fprintf(stderr, "kiln: cannot open %s: %s\n", file, strerror(errno));
    return NULL;
  }
  struct buf b;
  buf_init(&b);
  char blk[65536];
  size_t n;
  bool ok = true;
  while ((n = fread(blk, 1, sizeof blk, f)) > 0) {
    if (b.len + n > max) {
      fprintf(stderr, "kiln: %s is larger than %zu MiB; use --csv for many rows\n", file,
              max >> 20);
      ok = false;
      break;
    }
    if (buf_append(&b, blk, n)) {
      fprintf(stderr, "kiln: out of memory\n");
      ok = false;
      break;
    }
  }
  if (ok && ferror(f)) {
    fprintf(stderr, "kiln: cannot read %s: %s\n", file, strerror(errno));
    ok = false;
  }
  if (f != stdin) fclose(f);
  if (!ok) {
    buf_fini(&b);
    return NULL;
  }
  if (!b.data && buf_puts(&b, "")) return NULL;
  return buf_steal(&b);
}

struct target {
  char name[512], version[128];
  char pinned[128]; /* the version that answered the first request */
};

static char *predict_path(const struct target *t) {
  char *n = cli_escape(t->name), *v = cli_escape(t->pinned[0] ? t->pinned : t->version);
  char *path = NULL;
  if (n && v) {
    struct buf b;
    buf_init(&b);
    if (buf_printf(&b, "/api/v1/models/%s/versions/%s/predict", n, v) == 0) path = buf_steal(&b);
    buf_fini(&b);
  }
  free(n);
  free(v);
  return path;
}

/* The class labels of the version that answered (for the CSV header of
 * --proba); NULL when the model has none or the metadata is unavailable. */
static json_t *classes_of(struct cli_client *cl, const struct target *t) {
  char *n = cli_escape(t->name), *v = cli_escape(t->pinned[0] ? t->pinned : t->version);
  json_t *ans = NULL, *classes = NULL;
  if (n && v) {
    char path[2048];
    snprintf(path, sizeof path, "/v2/models/%s/versions/%s", n, v);
    if (cli_client_call(cl, "GET", path, NULL, &ans) == 200)
      classes = json_incref(json_object_get(ans, "classes"));
  }
  json_decref(ans);
  free(n);
  free(v);
  if (!json_is_array(classes)) {
    json_decref(classes);
    return NULL;
  }
  return classes;
}

/* Sends one request body; on 200 prints its predictions (rows_sent of them
 * when known, >= 0) and pins the version. */
static int send_batch(struct cli_client *cl, struct target *t, struct printer *p, const char *body,
                      size_t n, int64_t rows_sent, int64_t first_row) {
  char *path = predict_path(t);
  if (!path) return fprintf(stderr, "kiln: out of memory\n"), 1;
  char version[128];
  json_t *ans = NULL;
  long st = cli_client_post_text(cl, path, body, n, "X-Kiln-Model-Version", version, sizeof version,
                                 &ans);
  free(path);
  if (st != 200) {
    if (st && first_row > 0)
      fprintf(stderr, "kiln: the batch from data row %lld was refused\n", (long long)first_row + 1);
    int rc = st ? cli_report_error(st, ans) : 1;
    json_decref(ans);
    return rc;
  }
  json_t *preds = json_object_get(ans, "predictions");
  if (!json_is_array(preds) || (rows_sent >= 0 && (int64_t)json_array_size(preds) != rows_sent)) {
    fprintf(stderr, "kiln: the server's answer has %s for %lld rows\n",
            json_is_array(preds) ? "another number of predictions" : "no predictions list",
            (long long)rows_sent);
    json_decref(ans);
    return 1;
  }
  /* later batches go to the version that answered the first, even when
   * "latest" or an alias moves meanwhile */
  if (!t->pinned[0] && version[0]) str_copy(t->pinned, sizeof t->pinned, version);
  if (p->csv && !p->header_done && p->classes == NULL && json_array_size(preds) > 0 &&
      json_is_array(json_array_get(preds, 0)))
    p->classes = classes_of(cl, t);
  print_rows(p, preds);
  json_decref(ans);
  return 0;
}

static void show_progress(int64_t rows, FILE *f, int64_t size) {
  off_t at = ftello(f);
  if (size > 0 && at >= 0) {
    int pct = (int)((double)at * 100.0 / (double)size);
    if (pct > 100) pct = 100;
    int bars = pct * 30 / 100;
    fprintf(stderr, "\r[%.*s%.*s] %3d%%  %lld rows ", bars, "##############################",
            30 - bars, "                              ", pct, (long long)rows);
  } else {
    fprintf(stderr, "\r%lld rows ", (long long)rows);
  }
  fflush(stderr);
}

/* A CSV file with a header row sent as dataframe_split batches. */
static int predict_csv(struct cli_client *cl, struct target *t, struct printer *p,
                       const struct pargs *a, int64_t batch) {
  FILE *f = str_eq(a->csv, "-") ? stdin : fopen(a->csv, "rb");
  if (!f) {
    fprintf(stderr, "kiln: cannot open %s: %s\n", a->csv, strerror(errno));
    return 1;
  }
  struct stat sb;
  int64_t size = fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) ? (int64_t)sb.st_size : -1;
  bool tty = isatty(STDERR_FILENO);
  struct cli_csv c;
  cli_csv_init(&c, f);
  struct err e = {0};
  struct buf head, body;
  buf_init(&head);
  buf_init(&body);
  int rc = 1, ncols = 0, got;
  if ((got = cli_csv_next(&c, &e)) <= 0) {
    fprintf(stderr, "kiln: %s: %s\n", a->csv,
            got == 0 ? "the file is empty (it needs a header row)" : e.msg);
    goto out;
  }
  ncols = c.nfields;
  /* {"dataframe_split": {"columns": [...], "data": [ — the same for every batch */
  buf_puts(&head, "{\"dataframe_split\":{\"columns\":[");
  for (int i = 0; i < ncols; i++) {
    const char *name = cli_csv_field(&c, i);
    size_t n = strlen(name);
    while (n && (name[n - 1] == ' ' || name[n - 1] == '\t')) n--;
    while (*name == ' ' || *name == '\t') name++, n = n ? n - 1 : 0;
    if (n == 0) {
      fprintf(stderr, "kiln: %s: column %d of the header row has no name\n", a->csv, i + 1);
      goto out;
    }
    char *col = strndup(name, n);
    if (!col) goto oom;
    if (i) buf_putc(&head, ',');
    json_escape_buf(&head, col);
    free(col);
  }
  buf_puts(&head, "],\"data\":[");
  const char *tail = a->proba && a->margin
                         ? "]},\"params\":{\"predict_proba\":true,\"output_margin\":true}}"
                     : a->proba  ? "]},\"params\":{\"predict_proba\":true}}"
                     : a->margin ? "]},\"params\":{\"output_margin\":true}}"
                                 : "]}}";
  int64_t rows = 0, in_batch = 0, sent = 0;
  bool progress = false;
  for (;;) {
    got = cli_csv_next(&c, &e);
    if (got < 0) {
      fprintf(stderr, "kiln: %s: %s\n", a->csv, e.msg);
      goto out;
    }
    if (got == 1) {
      if (c.nfields != ncols) {
        fprintf(stderr, "kiln: %s: line %lld has %d fields; the header has %d\n", a->csv,
                (long long)c.line, c.nfields, ncols);
        goto out;
      }
      if (in_batch == 0 && buf_append(&body, head.data, head.len)) goto oom;
      if (buf_puts(&body, in_batch ? ",[" : "[")) goto oom;
      for (int i = 0; i < ncols; i++)
        if ((i && buf_putc(&body, ',')) || cli_csv_cell_json(&body, cli_csv_field(&c, i))) goto oom;
      if (buf_putc(&body, ']')) goto oom;
      in_batch++;
      rows++;
    }
    if ((got == 0 && in_batch > 0) || in_batch == batch) {
      if (buf_puts(&body, tail)) goto oom;
      if (send_batch(cl, t, p, body.data, body.len, in_batch, sent)) {
        if (progress) fputc('\n', stderr);
        goto out;
      }
      sent += in_batch;
      in_batch = 0;
      buf_reset(&body);
      /* a bar only for files of several batches, and only for a person */
      if (tty && (progress || got == 1)) {
        progress = true;
        show_progress(sent, f, size);
      }
    }
    if (got == 0) break;
  }
  if (progress) fputc('\n', stderr);
  if (rows == 0) {
    fprintf(stderr, "kiln: %s has a header row but no data rows\n", a->csv);
    goto out;
  }
  print_end(p);
  rc = 0;
  goto out;
oom:
  fprintf(stderr, "kiln: out of memory\n");
out:
  buf_fini(&head);
  buf_fini(&body);
  cli_csv_fini(&c);
  if (f != stdin) fclose(f);
  return rc;
}

int cli_predict(int argc, char **argv) {
  struct pargs a;
  int rc = parse(argc, argv, &a, PREDICT_USAGE);
  if (rc) return rc == 1 ? 0 : rc;
  if (a.npos != 1 || (!a.json == !a.csv)) {
    fprintf(stderr, "kiln: predict needs MODEL[@VERSION] and one of --json or --csv\n%s",
            PREDICT_USAGE);
    return 2;
  }
  struct target t = {0};
  if (cli_model_ref(a.pos[0], t.name, sizeof t.name, t.version, sizeof t.version)) {
    fprintf(stderr, "kiln: '%s' is not MODEL or MODEL@VERSION\n", a.pos[0]);
    return 2;
  }
  struct printer p = {0};
  if (a.output && !str_eq(a.output, "json") && !str_eq(a.output, "csv")) {
    fprintf(stderr, "kiln: --output takes json or csv\n");
    return 2;
  }
  p.csv = str_eq(a.output, "csv");
  int64_t batch = BATCH_DEFAULT;
  if (a.batch_rows) {
    if (!a.csv) {
      fprintf(stderr, "kiln: --batch-rows goes with --csv\n");
      return 2;
    }
    if (str_to_i64(a.batch_rows, &batch) || batch < 1 || batch > BATCH_MAX) {
      fprintf(stderr, "kiln: --batch-rows takes 1 to %d\n", BATCH_MAX);
      return 2;
    }
  }
  char *text = NULL;
  json_t *payload = NULL;
  if (a.json) {
    /* --json '[...]', --json @FILE or --json - (stdin) */
    text = a.json[0] == '@'      ? read_all(a.json + 1, PAYLOAD_MAX)
           : str_eq(a.json, "-") ? read_all("-", PAYLOAD_MAX)
                                 : strdup(a.json);
    if (!text) return 1;
    struct err e = {0};
    payload = cli_predict_payload(text, a.proba, a.margin, &e);
    free(text);
    if (!payload) {
      fprintf(stderr, "kiln: --json: %s\n", e.msg);
      return 2;
    }
  }
  struct cli_client *cl = cli_client_open();
  if (!cl) {
    json_decref(payload);
    return 1;
  }
  if (payload) {
    struct buf b;
    buf_init(&b);
    rc = json_emit(&b, payload) ? (fprintf(stderr, "kiln: out of memory\n"), 1)
                                : send_batch(cl, &t, &p, b.data, b.len, -1, 0);
    if (!rc) print_end(&p);
    buf_fini(&b);
    json_decref(payload);
  } else {
    rc = predict_csv(cl, &t, &p, &a, batch);
  }
  json_decref(p.classes);
  cli_client_close(cl);
  return rc;
}

/* ---- serving ----------------------------------------------------------- */

static const char *jstr(json_t *o, const char *k) {
  const char *v = json_string_value(json_object_get(o, k));
  return v ? v : "";
}

static int64_t jint(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  return json_is_integer(v) ? json_integer_value(v)
         : json_is_real(v)  ? (int64_t)json_real_value(v)
                            : 0;
}

static void human_bytes(int64_t n, char out[32]) {
  if (n <= 0)
    str_copy(out, 32, "-");
  else if (n >= (1ll << 30))
    snprintf(out, 32, "%.1f GiB", (double)n / (double)(1ll << 30));
  else if (n >= (1ll << 20))
    snprintf(out, 32, "%.1f MiB", (double)n / (double)(1ll << 20));
  else if (n >= 1024)
    snprintf(out, 32, "%.1f KiB", (double)n / 1024.0);
  else
    snprintf(out, 32, "%lld B", (long long)n);
}

static int serving_list(struct cli_client *cl, const struct pargs *a) {
  json_t *ans = NULL;
  if (cli_call(cl, "GET", "/api/v1/serving/models", NULL, &ans)) return 1;
  if (a->as_json) {
    cli_print_json(ans);
    json_decref(ans);
    return 0;
  }
  json_t *rows = json_array();
  json_array_append_new(rows, cli_row("NAME", "VERSION", "BACKEND", "STATE", "MEMORY", "QUEUE",
                                      "REQUESTS", "ERRORS", "LAST USED (UTC)", NULL));
  size_t i;
  json_t *m;
  json_array_foreach(json_object_get(ans, "models"), i, m) {
    char mem[32], q[24], req[24], errs[24], used[32], state[400];
    human_bytes(jint(m, "memory_bytes"), mem);
    snprintf(q, sizeof q, "%lld", (long long)jint(m, "queue_depth"));
    snprintf(req, sizeof req, "%lld", (long long)jint(m, "requests"));
    snprintf(errs, sizeof errs, "%lld", (long long)jint(m, "errors"));
    cli_fmt_time(jint(m, "last_used_at"), used);
    if (*jstr(m, "reason"))
      snprintf(state, sizeof state, "%s (%.300s)", jstr(m, "state"), jstr(m, "reason"));
    else
      str_copy(state, sizeof state, jstr(m, "state"));
    json_array_append_new(rows, cli_row(jstr(m, "name"), jstr(m, "version"), jstr(m, "backend"),
                                        state, mem, q, req, errs, used, NULL));
  }
  if (json_array_size(rows) == 1)
    printf("no models are loaded in this project\n");
  else
    cli_print_table(rows);
  json_decref(rows);
  json_decref(ans);
  return 0;
}

static char *version_path(const struct target *t, const char *verb) {
  char *n = cli_escape(t->name), *v = cli_escape(t->version);
  char *path = NULL;
  if (n && v) {
    struct buf b;
    buf_init(&b);
    if (buf_printf(&b, "/api/v1/models/%s/versions/%s/%s", n, v, verb) == 0) path = buf_steal(&b);
    buf_fini(&b);
  }
  free(n);
  free(v);
  return path;
}

static int serving_load(struct cli_client *cl, const struct target *t, const struct pargs *a) {
  json_t *body = json_object();
  const struct {
    const char *flag, *key, *v;
    int64_t lo, hi;
  } opts[] = {
      {"--max-batch-size", "max_batch_size", a->max_batch_size, 1, 1 << 20},
      {"--max-queue-delay-us", "max_queue_delay_us", a->max_queue_delay_us, 0, 60000000},
      {"--queue-capacity", "queue_capacity", a->queue_capacity, 1, 1 << 24},
      {"--instances", "instances", a->instances, 1, 1024},
  };
  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
    if (!opts[i].v) continue;
    int64_t x;
    if (str_to_i64(opts[i].v, &x) || x < opts[i].lo || x > opts[i].hi) {
      fprintf(stderr, "kiln: %s takes %lld to %lld\n", opts[i].flag, (long long)opts[i].lo,
              (long long)opts[i].hi);
      json_decref(body);
      return 2;
    }
    json_object_set_new(body, opts[i].key, json_integer(x));
  }
  char *path = version_path(t, "load");
  json_t *ans = NULL;
  int rc = path ? cli_call(cl, "POST", path, body, &ans) : 1;
  free(path);
  json_decref(body);
  if (rc) return rc;
  if (a->as_json)
    cli_print_json(ans);
  else {
    char mem[32];
    human_bytes(jint(ans, "memory_bytes"), mem);
    printf("%s version %s: %s (%s, %s)\n", jstr(ans, "name"), jstr(ans, "version"),
           jstr(ans, "state"), jstr(ans, "backend"), mem);
  }
  json_decref(ans);
  return 0;
}

int cli_serving(int argc, char **argv) {
  const char *sub = argc > 0 ? argv[0] : "";
  struct pargs a;
  int rc = parse(argc - (argc > 0), argv + (argc > 0), &a, SERVING_USAGE);
  if (rc) return rc == 1 ? 0 : rc;
  bool list = str_eq(sub, "list"), load = str_eq(sub, "load"), unload = str_eq(sub, "unload");
  if ((!list && !load && !unload) || a.npos != (list ? 0 : 1) || a.json || a.csv || a.output ||
      a.batch_rows || a.proba || a.margin ||
      (!load && (a.max_batch_size || a.max_queue_delay_us || a.queue_capacity || a.instances))) {
    fputs(SERVING_USAGE, stderr);
    return 2;
  }
  struct target t = {0};
  if (!list) {
    if (cli_model_ref(a.pos[0], t.name, sizeof t.name, t.version, sizeof t.version) ||
        (unload && !strchr(a.pos[0], '@'))) {
      fprintf(stderr, "kiln: '%s' is not %s\n", a.pos[0],
              unload ? "MODEL@VERSION" : "MODEL or MODEL@VERSION");
      return 2;
    }
  }
  struct cli_client *cl = cli_client_open();
  if (!cl) return 1;
  if (list) {
    rc = serving_list(cl, &a);
  } else if (load) {
    rc = serving_load(cl, &t, &a);
  } else {
    char *path = version_path(&t, "unload");
    json_t *ans = NULL;
    rc = path ? cli_call(cl, "POST", path, NULL, &ans) : 1;
    free(path);
    if (!rc) printf("%s version %s unloaded\n", t.name, t.version);
    json_decref(ans);
  }
  cli_client_close(cl);
  return rc;
}
