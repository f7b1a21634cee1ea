/* cli/track: `kiln experiments`, `kiln runs` and `kiln sync` — experiment
 * tracking from the shell over the MLflow REST API, with the stored
 * credentials. Tables for people, --json for scripts (the server's answer
 * as is). `kiln sync` replays the SDK's spool (sdk/python/kiln/spool.py
 * describes the format): one JSON record per line, replayed in order, the
 * file removed once everything went through. */
#include "cli.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "internal.h"

#define ML "/api/2.0/mlflow/"
#define MAX_OPT 16

/* ---- arguments ------------------------------------------------------------- */

struct args {
  const char *pos[8];
  int npos;
  const char *filter, *max_results, *dir;
  const char *order_by[MAX_OPT];
  int norder;
  const char *experiments[MAX_OPT];
  int nexp;
  bool json, all, deleted;
};

/* --flag VALUE / --flag=VALUE; repeated --order-by and --experiment add up. */
static int parse(int argc, char **argv, struct args *a, const char *usage) {
  memset(a, 0, sizeof *a);
  for (int i = 0; i < argc; i++) {
    const char *s = argv[i];
    if (s[0] != '-' || s[1] == 0) {
      if (a->npos >= 8) goto bad;
      a->pos[a->npos++] = s;
      continue;
    }
    if (str_eq(s, "--json")) { a->json = true; continue; }
    if (str_eq(s, "--all")) { a->all = true; continue; }
    if (str_eq(s, "--deleted")) { a->deleted = true; continue; }
    if (str_eq(s, "--help") || str_eq(s, "-h")) {
      fputs(usage, stdout);
      return 1;
    }
    const char *eq = strchr(s, '=');
    size_t n = eq ? (size_t)(eq - s) : strlen(s);
    const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
#define IS(name) (strlen(name) == n && strncmp(s, name, n) == 0)
    if (!(IS("--filter") || IS("--order-by") || IS("--max-results") || IS("--experiment") || IS("--dir"))) {
      fprintf(stderr, "kiln: unknown option '%.*s'\n%s", (int)n, s, usage);
      return 2;
    }
    if (!v) {
      fprintf(stderr, "kiln: %.*s needs a value\n%s", (int)n, s, usage);
      return 2;
    }
    if (IS("--filter")) a->filter = v;
    else if (IS("--max-results")) a->max_results = v;
    else if (IS("--dir")) a->dir = v;
    else if (IS("--order-by")) {
      if (a->norder >= MAX_OPT) goto bad;
      a->order_by[a->norder++] = v;
    } else {
      if (a->nexp >= MAX_OPT) goto bad;
      a->experiments[a->nexp++] = v;
    }
#undef IS
  }
  return 0;
bad:
  fprintf(stderr, "kiln: too many arguments\n%s", usage);
  return 2;
}

/* ---- small helpers ----------------------------------------------------------- */

static const char *jstr(json_t *o, const char *k) {
  const char *v = json_string_value(json_object_get(o, k));
  return v ? v : "";
}

static int64_t jint(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  if (json_is_integer(v)) return json_integer_value(v);
  int64_t x = 0;
  if (json_is_string(v) && str_to_i64(json_string_value(v), &x) == 0) return x;
  return 0;
}

static void fmt_time(int64_t ms, char out[32]) {
  if (ms <= 0) {
    str_copy(out, 32, "-");
    return;
  }
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm);
}

static void fmt_duration(int64_t start, int64_t end, char out[32]) {
  if (start <= 0 || end <= 0 || end < start) {
    str_copy(out, 32, "-");
    return;
  }
  double s = (double)(end - start) / 1000.0;
  if (s < 60) snprintf(out, 32, "%.1fs", s);
  else if (s < 3600) snprintf(out, 32, "%.1fm", s / 60);
  else snprintf(out, 32, "%.1fh", s / 3600);
}

static void fmt_value(json_t *v, char out[48]) {
  if (json_is_number(v)) snprintf(out, 48, "%.6g", json_number_value(v));
  else if (json_is_string(v)) str_copy(out, 48, json_string_value(v));
  else str_copy(out, 48, "");
}

/* Prints rows (a JSON array of arrays of strings) as aligned columns; the
 * first row is the header. */
static void print_table(json_t *rows) {
  size_t ncols = json_array_size(json_array_get(rows, 0));
  size_t *w = calloc(ncols ? ncols : 1, sizeof *w);
  if (!w) return;
  size_t i, j;
  json_t *row, *cell;
  json_array_foreach(rows, i, row) json_array_foreach(row, j, cell) {
    size_t n = strlen(json_string_value(cell));
    if (j < ncols && n > w[j]) w[j] = n;
  }
  json_array_foreach(rows, i, row) {
    json_array_foreach(row, j, cell) {
      if (j + 1 == ncols) printf("%s", json_string_value(cell));
      else printf("%-*s  ", (int)w[j], json_string_value(cell));
    }
    printf("\n");
  }
  free(w);
}

static json_t *row_of(const char *first, ...) {
  json_t *r = json_array();
  va_list ap;
  va_start(ap, first);
  for (const char *s = first; s; s = va_arg(ap, const char *)) json_array_append_new(r, json_string(s));
  va_end(ap);
  return r;
}

static char *escape(const char *s) {
  CURL *h = curl_easy_init();
  char *e = h ? curl_easy_escape(h, s, 0) : NULL;
  char *out = e ? strdup(e) : NULL;
  curl_free(e);
  if (h) curl_easy_cleanup(h);
  return out;
}

/* One call; 0 with *out set on 200, else the error printed and 1. */
static int call(struct cli_client *cl, const char *method, const char *path, json_t *body, json_t **out) {
  json_t *ans = NULL;
  long st = cli_client_call(cl, method, path, body, &ans);
  if (st == 200) {
    *out = ans ? ans : json_object();
    return 0;
  }
  cli_report_error(st, ans);
  json_decref(ans);
  *out = NULL;
  return 1;
}

void cli_print_table(json_t *rows) { print_table(rows); }
char *cli_escape(const char *s) { return escape(s); }
int cli_call(struct cli_client *cl, const char *method, const char *path, json_t *body, json_t **out) {
  return call(cl, method, path, body, out);
}
void cli_fmt_time(int64_t ms, char out[32]) { fmt_time(ms, out); }
json_t *cli_row(const char *first, ...) {
  json_t *r = json_array();
  va_list ap;
  va_start(ap, first);
  for (const char *s = first; s; s = va_arg(ap, const char *)) json_array_append_new(r, json_string(s));
  va_end(ap);
  return r;
}

static bool all_digits(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return false;
  return true;
}

/* An experiment given by id or name; the id into out. */
static int experiment_id(struct cli_client *cl, const char *want, char out[32]) {
  if (all_digits(want)) {
    str_copy(out, 32, want);
    return 0;
  }
  char *e = escape(want);
  if (!e) return 1;
  char path[1200];
  snprintf(path, sizeof path, ML "experiments/get-by-name?experiment_name=%s", e);
  free(e);
  json_t *ans;
  if (call(cl, "GET", path, NULL, &ans)) return 1;
  str_copy(out, 32, jstr(json_object_get(ans, "experiment"), "experiment_id"));
  json_decref(ans);
  return 0;
}

static const char *view_type(const struct args *a) {
  return a->all ? "ALL" : a->deleted ? "DELETED_ONLY" : "ACTIVE_ONLY";
}

static int max_results(const struct args *a, int64_t *out) {
  *out = 0;
  if (!a->max_results) return 0;
  if (str_to_i64(a->max_results, out) || *out < 1) {
    fprintf(stderr, "kiln: --max-results takes a positive number\n");
    return 2;
  }
  return 0;
}

static json_t *order_array(const struct args *a) {
  json_t *o = json_array();
  for (int i = 0; i < a->norder; i++) json_array_append_new(o, json_string(a->order_by[i]));
  return o;
}

/* ---- kiln experiments ---------------------------------------------------------- */

static const char EXP_USAGE[] =
    "usage: kiln experiments list [--filter EXPR] [--order-by KEY [ASC|DESC]]... [--max-results N]\n"
    "                             [--all | --deleted] [--json]\n"
    "       kiln experiments create NAME [--json]\n"
    "       kiln experiments delete ID_OR_NAME\n";

static int exp_list(struct cli_client *cl, const struct args *a) {
  int64_t mr;
  if (max_results(a, &mr)) return 2;
  json_t *req = json_pack("{s:s, s:o}", "view_type", view_type(a), "order_by", order_array(a));
  if (a->filter) json_object_set_new(req, "filter", json_string(a->filter));
  if (mr) json_object_set_new(req, "max_results", json_integer(mr));
  json_t *ans;
  int rc = call(cl, "POST", ML "experiments/search", req, &ans);
  json_decref(req);
  if (rc) return rc;
  if (a->json) {
    cli_print_json(ans);
    json_decref(ans);
    return 0;
  }
  json_t *rows = json_array();
  json_array_append_new(rows, row_of("ID", "NAME", "STAGE", "CREATED (UTC)", NULL));
  size_t i;
  json_t *x;
  json_array_foreach(json_object_get(ans, "experiments"), i, x) {
    char t[32];
    fmt_time(jint(x, "creation_time"), t);
    json_array_append_new(rows, row_of(jstr(x, "experiment_id"), jstr(x, "name"), jstr(x, "lifecycle_stage"), t, NULL));
  }
  print_table(rows);
  if (json_object_get(ans, "next_page_token"))
    fprintf(stderr, "kiln: more experiments exist; raise --max-results or narrow --filter\n");
  json_decref(rows);
  json_decref(ans);
  return 0;
}

int cli_experiments(int argc, char **argv) {
  const char *sub = argc > 0 ? argv[0] : "";
  struct args a;
  int rc = parse(argc - (argc > 0), argv + (argc > 0), &a, EXP_USAGE);
  if (rc) return rc == 1 ? 0 : rc;
  bool list = str_eq(sub, "list"), create = str_eq(sub, "create"), del = str_eq(sub, "delete");
  if (!(list && a.npos == 0) && !((create || del) && a.npos == 1)) {
    fputs(EXP_USAGE, stderr);
    return 2;
  }
  struct cli_client *cl = cli_client_open();
  if (!cl) return 1;
  json_t *ans = NULL;
  if (list) {
    rc = exp_list(cl, &a);
  } else if (create) {
    json_t *req = json_pack("{s:s}", "name", a.pos[0]);
    rc = call(cl, "POST", ML "experiments/create", req, &ans);
    json_decref(req);
    if (!rc) {
      if (a.json) cli_print_json(ans);
      else printf("created experiment %s (id %s)\n", a.pos[0], jstr(ans, "experiment_id"));
    }
  } else {
    char id[32];
    rc = experiment_id(cl, a.pos[0], id);
    if (!rc) {
      json_t *req = json_pack("{s:s}", "experiment_id", id);
      rc = call(cl, "POST", ML "experiments/delete", req, &ans);
      json_decref(req);
      if (!rc) printf("deleted experiment %s (restorable: its runs are marked deleted too)\n", id);
    }
  }
  json_decref(ans);
  cli_client_close(cl);
  return rc;
}

/* ---- kiln runs ------------------------------------------------------------------- */

static const char RUNS_USAGE[] =
    "usage: kiln runs list [--experiment ID_OR_NAME]... [--filter EXPR] [--order-by KEY [ASC|DESC]]...\n"
    "                      [--max-results N] [--all | --deleted] [--json]\n"
    "       kiln runs show RUN_ID [--json]\n"
    "       kiln runs compare RUN_ID RUN_ID... [--json]\n";

#define RUN_METRIC_COLS 6

static json_t *kv_get(json_t *items, const char *key) {
  size_t i;
  json_t *x;
  json_array_foreach(items, i, x) if (str_eq(jstr(x, "key"), key)) return json_object_get(x, "value");
  return NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted union of the keys of data.<field> over runs (at most cap; *total
 * gets the full count). Pointers into runs. */
static size_t key_union(json_t *runs, const char *field, const char **out, size_t cap, size_t *total) {
  size_t n = 0, seen = 0, i, j;
  json_t *r, *x;
  const char **all = NULL;
  json_array_foreach(runs, i, r) json_array_foreach(json_object_get(json_object_get(r, "data"), field), j, x) {
    const char *k = jstr(x, "key");
    size_t m = 0;
    while (m < seen && !str_eq(all[m], k)) m++;
    if (m < seen) continue;
    const char **grown = realloc(all, (seen + 1) * sizeof *all);
    if (!grown) break;
    all = grown;
    all[seen++] = k;
  }
  if (seen) qsort(all, seen, sizeof *all, cmp_str);
  for (; n < seen && n < cap; n++) out[n] = all[n];
  free(all);
  *total = seen;
  return n;
}

static int runs_list(struct cli_client *cl, const struct args *a) {
  int64_t mr;
  if (max_results(a, &mr)) return 2;
  json_t *ids = json_array();
  for (int i = 0; i < a->nexp; i++) {
    char id[32];
    if (experiment_id(cl, a->experiments[i], id)) {
      json_decref(ids);
      return 1;
    }
    json_array_append_new(ids, json_string(id));
  }
  if (!a->nexp) json_array_append_new(ids, json_string("0"));
  json_t *req = json_pack("{s:o, s:s, s:o}", "experiment_ids", ids, "run_view_type", view_type(a), "order_by",
                          order_array(a));
  if (a->filter) json_object_set_new(req, "filter", json_string(a->filter));
  if (mr) json_object_set_new(req, "max_results", json_integer(mr));
  json_t *ans;
  int rc = call(cl, "POST", ML "runs/search", req, &ans);
  json_decref(req);
  if (rc) return rc;
  if (a->json) {
    cli_print_json(ans);
    json_decref(ans);
    return 0;
  }
  json_t *runs = json_object_get(ans, "runs");
  const char *mkeys[RUN_METRIC_COLS];
  size_t total, nm = key_union(runs, "metrics", mkeys, RUN_METRIC_COLS, &total);
  json_t *rows = json_array(), *head = row_of("RUN ID", "NAME", "STATUS", "STARTED (UTC)", "DURATION", NULL);
  for (size_t k = 0; k < nm; k++) json_array_append_new(head, json_string(mkeys[k]));
  json_array_append_new(rows, head);
  size_t i;
  json_t *r;
  json_array_foreach(runs, i, r) {
    json_t *info = json_object_get(r, "info");
    char st[32], du[32];
    fmt_time(jint(info, "start_time"), st);
    fmt_duration(jint(info, "start_time"), jint(info, "end_time"), du);
    json_t *row = row_of(jstr(info, "run_id"), jstr(info, "run_name"), jstr(info, "status"), st, du, NULL);
    for (size_t k = 0; k < nm; k++) {
      char v[48];
      fmt_value(kv_get(json_object_get(json_object_get(r, "data"), "metrics"), mkeys[k]), v);
      json_array_append_new(row, json_string(v));
    }
    json_array_append_new(rows, row);
  }
  print_table(rows);
  if (total > nm)
    fprintf(stderr, "kiln: %zu more metric column(s) not shown; see `kiln runs show` or --json\n", total - nm);
  if (json_object_get(ans, "next_page_token"))
    fprintf(stderr, "kiln: more runs match; raise --max-results or narrow --filter\n");
  json_decref(rows);
  json_decref(ans);
  return 0;
}

static json_t *run_get(struct cli_client *cl, const char *id) {
  char path[256];
  if (strlen(id) > 64 || strspn(id, "0123456789abcdefABCDEF") != strlen(id)) {
    fprintf(stderr, "kiln: '%s' is not a run id (32 hex characters)\n", id);
    return NULL;
  }
  snprintf(path, sizeof path, ML "runs/get?run_id=%s", id);
  json_t *ans;
  if (call(cl, "GET", path, NULL, &ans)) return NULL;
  json_t *run = json_incref(json_object_get(ans, "run"));
  json_decref(ans);
  return run;
}

static void section(const char *title, json_t *items, bool values_are_metrics) {
  if (!json_array_size(items)) return;
  printf("\n%s:\n", title);
  json_t *rows = json_array();
  size_t i;
  json_t *x;
  json_array_foreach(items, i, x) {
    char v[48];
    const char *val;
    if (values_are_metrics) {
      fmt_value(json_object_get(x, "value"), v);
      val = v;
    } else {
      val = jstr(x, "value");
    }
    json_t *row = row_of("", jstr(x, "key"), val, NULL);
    if (values_are_metrics) {
      char step[32];
      snprintf(step, sizeof step, "step %lld", (long long)jint(x, "step"));
      json_array_append_new(row, json_string(step));
    }
    json_array_append_new(rows, row);
  }
  print_table(rows);
  json_decref(rows);
}

static int runs_show(struct cli_client *cl, const struct args *a) {
  json_t *run = run_get(cl, a->pos[0]);
  if (!run) return 1;
  if (a->json) {
    cli_print_json(run);
    json_decref(run);
    return 0;
  }
  json_t *info = json_object_get(run, "info"), *data = json_object_get(run, "data");
  char st[32], en[32], du[32];
  fmt_time(jint(info, "start_time"), st);
  fmt_time(jint(info, "end_time"), en);
  fmt_duration(jint(info, "start_time"), jint(info, "end_time"), du);
  json_t *rows = json_array();
  json_array_append_new(rows, row_of("run id:", jstr(info, "run_id"), NULL));
  json_array_append_new(rows, row_of("name:", jstr(info, "run_name"), NULL));
  json_array_append_new(rows, row_of("experiment:", jstr(info, "experiment_id"), NULL));
  json_array_append_new(rows, row_of("status:", jstr(info, "status"), NULL));
  json_array_append_new(rows, row_of("stage:", jstr(info, "lifecycle_stage"), NULL));
  json_array_append_new(rows, row_of("user:", jstr(info, "user_id"), NULL));
  json_array_append_new(rows, row_of("started:", st, NULL));
  json_array_append_new(rows, row_of("ended:", en, NULL));
  json_array_append_new(rows, row_of("duration:", du, NULL));
  if (*jstr(info, "artifact_uri")) json_array_append_new(rows, row_of("artifacts:", jstr(info, "artifact_uri"), NULL));
  print_table(rows);
  json_decref(rows);
  section("params", json_object_get(data, "params"), false);
  section("metrics", json_object_get(data, "metrics"), true);
  section("tags", json_object_get(data, "tags"), false);
  json_decref(run);
  return 0;
}

static int runs_compare(struct cli_client *cl, const struct args *a) {
  json_t *runs = json_array();
  for (int i = 0; i < a->npos; i++) {
    json_t *r = run_get(cl, a->pos[i]);
    if (!r) {
      json_decref(runs);
      return 1;
    }
    json_array_append_new(runs, r);
  }
  if (a->json) {
    json_t *o = json_pack("{s:O}", "runs", runs);
    cli_print_json(o);
    json_decref(o);
    json_decref(runs);
    return 0;
  }
  json_t *rows = json_array(), *head = row_of("", "KEY", NULL);
  size_t i;
  json_t *r;
  json_array_foreach(runs, i, r) json_array_append_new(head, json_string(jstr(json_object_get(r, "info"), "run_id")));
  json_array_append_new(rows, head);
  const char *fields[][2] = {{"run_name", "name"}, {"status", "status"}};
  for (size_t f = 0; f < 2; f++) {
    json_t *row = row_of("", fields[f][1], NULL);
    json_array_foreach(runs, i, r) json_array_append_new(row, json_string(jstr(json_object_get(r, "info"), fields[f][0])));
    json_array_append_new(rows, row);
  }
  size_t differ = 0;
  for (int kind = 0; kind < 2; kind++) {
    const char *field = kind ? "metrics" : "params";
    size_t total;
    key_union(runs, field, NULL, 0, &total);
    const char **keys = calloc(total ? total : 1, sizeof *keys);
    if (!keys) break;
    size_t n = key_union(runs, field, keys, total, &total);
    for (size_t k = 0; k < n; k++) {
      char label[300];
      snprintf(label, sizeof label, "%s.%s", field, keys[k]);
      json_t *row = row_of("", label, NULL);
      char first[48] = "";
      bool same = true;
      json_array_foreach(runs, i, r) {
        char v[48];
        json_t *val = kv_get(json_object_get(json_object_get(r, "data"), field), keys[k]);
        if (val) fmt_value(val, v);
        else str_copy(v, sizeof v, "-");
        if (i == 0) str_copy(first, sizeof first, v);
        else if (!str_eq(first, v)) same = false;
        json_array_append_new(row, json_string(v));
      }
      if (!same) {
        json_array_set_new(row, 0, json_string("*"));
        differ++;
      }
      json_array_append_new(rows, row);
    }
    free(keys);
  }
  print_table(rows);
  printf("\n%zu of the params and metrics differ (marked *)\n", differ);
  json_decref(rows);
  json_decref(runs);
  return 0;
}

int cli_runs(int argc, char **argv) {
  const char *sub = argc > 0 ? argv[0] : "";
  struct args a;
  int rc = parse(argc - (argc > 0), argv + (argc > 0), &a, RUNS_USAGE);
  if (rc) return rc == 1 ? 0 : rc;
  int (*fn)(struct cli_client *, const struct args *) = NULL;
  if (str_eq(sub, "list") && a.npos == 0) fn = runs_list;
  else if (str_eq(sub, "show") && a.npos == 1) fn = runs_show;
  else if (str_eq(sub, "compare") && a.npos >= 2) fn = runs_compare;
  if (!fn) {
    fputs(RUNS_USAGE, stderr);
    return 2;
  }
  struct cli_client *cl = cli_client_open();
  if (!cl) return 1;
  rc = fn(cl, &a);
  cli_client_close(cl);
  return rc;
}

/* ---- kiln sync ---------------------------------------------------------------------- */

static const char SYNC_USAGE[] = "usage: kiln sync [--dir DIR] [--json]\n";

struct binding {
  char local[40], run[40];
};

struct replay {
  struct cli_client *cl;
  struct binding *b;
  size_t nb;
  long files_done, records, metrics, skipped;
  json_t *kept; /* [{file, reason}] */
};

static const char *bound(struct replay *r, const char *local) {
  for (size_t i = 0; i < r->nb; i++)
    if (str_eq(r->b[i].local, local)) return r->b[i].run;
  return NULL;
}

static void bind_add(struct replay *r, const char *local, const char *run) {
  struct binding *g = realloc(r->b, (r->nb + 1) * sizeof *g);
  if (!g) return;
  r->b = g;
  str_copy(g[r->nb].local, sizeof g[r->nb].local, local);
  str_copy(g[r->nb].run, sizeof g[r->nb].run, run);
  r->nb++;
}

/* 0 sent; 1 refused for good (skip); -1 transient (keep the file), with
 * the reason in why. */
static int sync_send(struct replay *r, const char *method, const char *path, json_t *body, json_t **out,
                char why[256]) {
  json_t *ans = NULL;
  long st = cli_client_call(r->cl, method, path, body, &ans);
  if (out) *out = NULL;
  if (st == 200) {
    if (out) *out = ans;
    else json_decref(ans);
    return 0;
  }
  const char *code = json_string_value(json_object_get(ans, "error_code"));
  const char *msg = json_string_value(json_object_get(ans, "message"));
  if (st == 0) snprintf(why, 256, "cannot reach the server");
  else snprintf(why, 256, "%s (%ld): %s", code ? code : "HTTP_ERROR", st, msg ? msg : "");
  json_decref(ans);
  return (st == 0 || st >= 500 || st == 401 || st == 403 || st == 408 || st == 429) ? -1 : 1;
}

static int sync_experiment(struct replay *r, json_t *rec, char id[32], char why[256]) {
  const char *eid = json_string_value(json_object_get(rec, "experiment_id"));
  const char *name = json_string_value(json_object_get(rec, "experiment_name"));
  if (eid && *eid) {
    str_copy(id, 32, eid);
    return 0;
  }
  if (!name || !*name) {
    str_copy(id, 32, "0");
    return 0;
  }
  for (int attempt = 0; attempt < 2; attempt++) {
    char *e = escape(name);
    char path[1200];
    snprintf(path, sizeof path, ML "experiments/get-by-name?experiment_name=%s", e ? e : "");
    free(e);
    json_t *ans;
    int rc = sync_send(r, "GET", path, NULL, &ans, why);
    if (rc == 0) {
      str_copy(id, 32, jstr(json_object_get(ans, "experiment"), "experiment_id"));
      json_decref(ans);
      return 0;
    }
    if (rc < 0) return rc;
    json_t *req = json_pack("{s:s}", "name", name);
    rc = sync_send(r, "POST", ML "experiments/create", req, &ans, why);
    json_decref(req);
    if (rc == 0) {
      str_copy(id, 32, jstr(ans, "experiment_id"));
      json_decref(ans);
      return 0;
    }
    if (rc < 0) return rc; /* else: created meanwhile, look it up again */
  }
  return 1;
}

static int sync_create(struct replay *r, json_t *rec, char why[256]) {
  const char *local = jstr(rec, "local_id");
  if (bound(r, local)) return 0;
  char exp[32];
  int rc = sync_experiment(r, rec, exp, why);
  if (rc) return rc;
  char filter[128];
  snprintf(filter, sizeof filter, "tags.`kiln.spoolId` = '%s'", local);
  json_t *req = json_pack("{s:[s], s:s, s:s, s:i}", "experiment_ids", exp, "filter", filter, "run_view_type", "ALL",
                          "max_results", 1);
  json_t *ans;
  rc = sync_send(r, "POST", ML "runs/search", req, &ans, why);
  json_decref(req);
  if (rc) return rc;
  json_t *found = json_array_get(json_object_get(ans, "runs"), 0);
  if (found) {
    bind_add(r, local, jstr(json_object_get(found, "info"), "run_id"));
    json_decref(ans);
    return 0;
  }
  json_decref(ans);
  json_t *tags = json_array();
  const char *parent = json_string_value(json_object_get(rec, "parent_local_id"));
  size_t i;
  json_t *t;
  json_array_foreach(json_object_get(rec, "tags"), i, t) {
    if (parent && str_eq(jstr(t, "key"), "mlflow.parentRunId")) continue;
    json_array_append(tags, t);
  }
  if (parent && bound(r, parent))
    json_array_append_new(tags, json_pack("{s:s, s:s}", "key", "mlflow.parentRunId", "value", bound(r, parent)));
  req = json_pack("{s:s, s:o}", "experiment_id", exp, "tags", tags);
  const char *name = json_string_value(json_object_get(rec, "run_name"));
  if (name) json_object_set_new(req, "run_name", json_string(name));
  if (jint(rec, "start_time")) json_object_set_new(req, "start_time", json_integer(jint(rec, "start_time")));
  rc = sync_send(r, "POST", ML "runs/create", req, &ans, why);
  json_decref(req);
  if (rc) return rc;
  bind_add(r, local, jstr(json_object_get(json_object_get(ans, "run"), "info"), "run_id"));
  json_decref(ans);
  return 0;
}

static int sync_record(struct replay *r, json_t *rec, char why[256]) {
  const char *op = jstr(rec, "op");
  if (str_eq(op, "create")) return sync_create(r, rec, why);
  if (!str_eq(op, "batch") && !str_eq(op, "update")) return 0;
  const char *run = json_string_value(json_object_get(rec, "run_id"));
  if (!run || !*run) run = bound(r, jstr(rec, "local_id"));
  if (!run) {
    snprintf(why, 256, "a record of unknown local run %s", jstr(rec, "local_id"));
    return 1;
  }
  json_t *req = json_pack("{s:s}", "run_id", run);
  if (str_eq(op, "batch")) {
    const char *lists[] = {"metrics", "params", "tags"};
    for (int k = 0; k < 3; k++) {
      json_t *v = json_object_get(rec, lists[k]);
      json_object_set_new(req, lists[k], json_is_array(v) ? json_incref(v) : json_array());
    }
  } else {
    const char *keys[] = {"status", "end_time", "run_name"};
    for (int k = 0; k < 3; k++) {
      json_t *v = json_object_get(rec, keys[k]);
      if (v && !json_is_null(v)) json_object_set(req, keys[k], v);
    }
  }
  int rc = sync_send(r, "POST", str_eq(op, "batch") ? ML "runs/log-batch" : ML "runs/update", req, NULL, why);
  json_decref(req);
  return rc;
}

/* Reads the whole file through fd; NULL on error. */
static char *read_all(int fd, size_t *len) {
  struct buf b;
  buf_init(&b);
  char chunk[65536];
  ssize_t n;
  while ((n = read(fd, chunk, sizeof chunk)) > 0)
    if (buf_append(&b, chunk, (size_t)n)) {
      buf_fini(&b);
      return NULL;
    }
  if (n < 0) {
    buf_fini(&b);
    return NULL;
  }
  *len = b.len;
  return b.data ? buf_steal(&b) : strdup("");
}

static void sync_file(struct replay *r, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat sb;
  if (flock(fd, LOCK_EX) || fstat(fd, &sb) || sb.st_nlink == 0) {
    close(fd);
    return;
  }
  size_t len = 0;
  char *text = read_all(fd, &len);
  if (!text) {
    close(fd);
    return;
  }
  char why[256] = "";
  bool keep = false;
  for (char *line = text, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = 0;
    json_t *rec = json_loads(line, 0, NULL); /* a torn last line does not parse: skipped */
    if (!json_is_object(rec) || jint(rec, "v") != 1) {
      json_decref(rec);
      continue;
    }
    int rc = sync_record(r, rec, why);
    if (rc == 0) {
      const char *op = jstr(rec, "op");
      if (str_eq(op, "batch") || str_eq(op, "update") || str_eq(op, "create")) r->records++;
      if (str_eq(op, "batch")) r->metrics += (long)json_array_size(json_object_get(rec, "metrics"));
    } else if (rc > 0) {
      fprintf(stderr, "kiln: %s: the server refused a record for good, skipped: %s\n", path, why);
      r->skipped++;
    } else {
      keep = true;
    }
    json_decref(rec);
    if (keep) break;
  }
  free(text);
  if (keep) {
    json_array_append_new(r->kept, json_pack("{s:s, s:s}", "file", path, "reason", why));
  } else if (unlink(path) == 0) {
    r->files_done++;
  }
  close(fd);
}

static int spool_dir(const char *given, char *out, size_t cap) {
  const char *d = given ? given : getenv("KILN_SPOOL_DIR");
  if (d && *d) return snprintf(out, cap, "%s", d) < (int)cap ? 0 : -1;
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  if (xdg && *xdg) return snprintf(out, cap, "%s/kiln/spool", xdg) < (int)cap ? 0 : -1;
  if (!home || !*home) return -1;
  return snprintf(out, cap, "%s/.cache/kiln/spool", home) < (int)cap ? 0 : -1;
}

static bool spool_name(const char *n) {
  if (str_has_prefix(n, "local-")) n += 6;
  size_t i = 0;
  for (; n[i] && ((n[i] >= '0' && n[i] <= '9') || (n[i] >= 'a' && n[i] <= 'f')); i++) {
  }
  return i == 32 && str_eq(n + 32, ".jsonl");
}

/* The server URL this invocation talks to, as client.c finds it: KILN_URL,
 * else the credentials file's url=, else the default. */
static void server_url(char *out, size_t cap) {
  const char *v = getenv("KILN_URL");
  str_copy(out, cap, "http://127.0.0.1:8080");
  if (v && *v) {
    str_copy(out, cap, v);
  } else {
    char path[2048];
    const char *cfg = getenv("KILN_CONFIG_DIR"), *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    int n = cfg && *cfg    ? snprintf(path, sizeof path, "%s/credentials", cfg)
            : xdg && *xdg  ? snprintf(path, sizeof path, "%s/kiln/credentials", xdg)
            : home && *home ? snprintf(path, sizeof path, "%s/.config/kiln/credentials", home)
                           : -1;
    FILE *f = n > 0 && n < (int)sizeof path ? fopen(path, "r") : NULL;
    char line[1400];
    while (f && fgets(line, sizeof line, f)) {
      line[strcspn(line, "\r\n")] = 0;
      if (str_has_prefix(line, "url=")) str_copy(out, cap, line + 4);
    }
    if (f) fclose(f);
  }
  size_t n = strlen(out);
  while (n && out[n - 1] == '/') out[--n] = 0;
}

/* Whether the file's first record names another server than url. */
static bool other_server(const char *path, const char *url) {
  FILE *f = fopen(path, "r");
  if (!f) return false;
  char line[8192];
  bool other = false;
  if (fgets(line, sizeof line, f)) {
    json_t *rec = json_loads(line, JSON_DISABLE_EOF_CHECK, NULL);
    const char *u = json_string_value(json_object_get(rec, "url"));
    if (u) {
      size_t n = strlen(u);
      while (n && u[n - 1] == '/') n--;
      other = !(strlen(url) == n && strncmp(u, url, n) == 0);
    }
    json_decref(rec);
  }
  fclose(f);
  return other;
}

struct spool_file {
  char path[2400];
  time_t mtime;
};

static int cmp_file(const void *a, const void *b) {
  const struct spool_file *x = a, *y = b;
  if (x->mtime != y->mtime) return x->mtime < y->mtime ? -1 : 1;
  return strcmp(x->path, y->path);
}

int cli_sync(int argc, char **argv) {
  struct args a;
  int rc = parse(argc, argv, &a, SYNC_USAGE);
  if (rc) return rc == 1 ? 0 : rc;
  if (a.npos) {
    fputs(SYNC_USAGE, stderr);
    return 2;
  }
  char dir[2048];
  if (spool_dir(a.dir, dir, sizeof dir)) {
    fprintf(stderr, "kiln: no spool directory (set KILN_SPOOL_DIR or HOME)\n");
    return 1;
  }
  struct spool_file *files = NULL;
  size_t nf = 0;
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (!spool_name(e->d_name)) continue;
      struct spool_file *g = realloc(files, (nf + 1) * sizeof *g);
      if (!g) break;
      files = g;
      snprintf(files[nf].path, sizeof files[nf].path, "%s/%s", dir, e->d_name);
      struct stat sb;
      files[nf].mtime = stat(files[nf].path, &sb) == 0 ? sb.st_mtime : 0;
      nf++;
    }
    closedir(d);
  } else if (errno != ENOENT) {
    fprintf(stderr, "kiln: cannot read the spool directory %s: %s\n", dir, strerror(errno));
    return 1;
  }
  struct replay r = {.kept = json_array()};
  char url[1024];
  server_url(url, sizeof url);
  size_t keep_n = 0;
  for (size_t i = 0; i < nf; i++) {
    if (other_server(files[i].path, url)) fprintf(stderr, "kiln: %s is for another server; not replayed to %s\n", files[i].path, url);
    else files[keep_n++] = files[i];
  }
  bool had_files = nf > 0;
  nf = keep_n;
  if (nf) {
    qsort(files, nf, sizeof *files, cmp_file);
    r.cl = cli_client_open();
    if (!r.cl) {
      free(files);
      json_decref(r.kept);
      return 1;
    }
    for (size_t i = 0; i < nf; i++) {
      sync_file(&r, files[i].path);
      json_t *last = json_array_get(r.kept, json_array_size(r.kept) - 1);
      if (last && str_has_prefix(jstr(last, "reason"), "cannot reach")) break; /* the server is down */
    }
    cli_client_close(r.cl);
  }
  free(files);
  free(r.b);
  if (a.json) {
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:O}", "files_replayed", (json_int_t)r.files_done, "records_sent",
                          (json_int_t)r.records, "metrics_sent", (json_int_t)r.metrics, "records_skipped",
                          (json_int_t)r.skipped, "files_kept", r.kept);
    cli_print_json(o);
    json_decref(o);
  } else if (!nf) {
    printf("nothing to replay in %s%s\n", dir, had_files ? " for this server" : "");
  } else {
    printf("replayed %ld file(s): %ld records, %ld metric points", r.files_done, r.records, r.metrics);
    if (r.skipped) printf(", %ld refused records skipped", r.skipped);
    printf("\n");
  }
  size_t i;
  json_t *k;
  json_array_foreach(r.kept, i, k) fprintf(stderr, "kiln: kept %s: %s\n", jstr(k, "file"), jstr(k, "reason"));
  rc = json_array_size(r.kept) ? 1 : 0;
  json_decref(r.kept);
  return rc;
}
