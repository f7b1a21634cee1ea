/* cli/models: `kiln models` — the model registry from the shell over the
 * MLflow REST API with the stored credentials: list, show, versions,
 * promote (stage transition) and alias. Tables for people, --json for
 * scripts (the server's answer as is). */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "internal.h"

#define ML "/api/2.0/mlflow/"

static const char USAGE[] =
    "usage: kiln models list [--filter EXPR] [--order-by KEY [ASC|DESC]]... [--max-results N] [--json]\n"
    "       kiln models show NAME [--json]\n"
    "       kiln models versions NAME [--max-results N] [--json]\n"
    "       kiln models promote NAME VERSION STAGE [--archive-existing] [--json]\n"
    "       kiln models alias NAME ALIAS VERSION [--json]\n"
    "       kiln models lineage NAME VERSION [--json]\n";

#define MAX_OPT 16
struct margs {
  const char *pos[4];
  int npos;
  const char *filter, *max_results;
  const char *order_by[MAX_OPT];
  int norder;
  bool json, archive;
};

static int parse(int argc, char **argv, struct margs *a) {
  memset(a, 0, sizeof *a);
  for (int i = 0; i < argc; i++) {
    const char *s = argv[i];
    if (s[0] != '-' || s[1] == 0) {
      if (a->npos >= 4) goto bad;
      a->pos[a->npos++] = s;
      continue;
    }
    if (str_eq(s, "--json")) { a->json = true; continue; }
    if (str_eq(s, "--archive-existing")) { a->archive = true; continue; }
    if (str_eq(s, "--help") || str_eq(s, "-h")) {
      fputs(USAGE, stdout);
      return 1;
    }
    const char *eq = strchr(s, '=');
    size_t n = eq ? (size_t)(eq - s) : strlen(s);
    const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
#define IS(name) (strlen(name) == n && strncmp(s, name, n) == 0)
    if (!(IS("--filter") || IS("--order-by") || IS("--max-results"))) {
      fprintf(stderr, "kiln: unknown option '%.*s'\n%s", (int)n, s, USAGE);
      return 2;
    }
    if (!v) {
      fprintf(stderr, "kiln: %.*s needs a value\n%s", (int)n, s, USAGE);
      return 2;
    }
    if (IS("--filter")) a->filter = v;
    else if (IS("--max-results")) a->max_results = v;
    else {
      if (a->norder >= MAX_OPT) goto bad;
      a->order_by[a->norder++] = v;
    }
#undef IS
  }
  return 0;
bad:
  fprintf(stderr, "kiln: too many arguments\n%s", USAGE);
  return 2;
}

static const char *jstr(json_t *o, const char *k) {
  const char *v = json_string_value(json_object_get(o, k));
  return v ? v : "";
}

static int64_t jint(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  return json_is_integer(v) ? json_integer_value(v) : 0;
}

/* "path?k=v&k=v..." with every value escaped; NULL values are left out. */
static char *query(const char *path, const char *const *kv, int n) {
  struct buf b;
  buf_init(&b);
  buf_puts(&b, path);
  char sep = '?';
  for (int i = 0; i + 1 < n; i += 2) {
    if (!kv[i + 1]) continue;
    char *e = cli_escape(kv[i + 1]);
    if (!e) {
      buf_fini(&b);
      return NULL;
    }
    buf_printf(&b, "%c%s=%s", sep, kv[i], e);
    free(e);
    sep = '&';
  }
  return buf_steal(&b);
}

static int get(struct cli_client *cl, const char *path, const char *const *kv, int n, json_t **out) {
  char *url = query(path, kv, n);
  if (!url) return fprintf(stderr, "kiln: out of memory\n"), 1;
  int rc = cli_call(cl, "GET", url, NULL, out);
  free(url);
  return rc;
}

/* "1 (Production), 3 (Staging)" */
static void latest_text(json_t *versions, char *out, size_t cap) {
  size_t n = 0, i;
  json_t *v;
  out[0] = 0;
  json_array_foreach(versions, i, v) {
    int k = snprintf(out + n, cap - n, "%sv%s %s", n ? ", " : "", jstr(v, "version"), jstr(v, "current_stage"));
    if (k < 0 || (size_t)k >= cap - n) break;
    n += (size_t)k;
  }
  if (!out[0]) str_copy(out, cap, "-");
}

static void aliases_text(json_t *aliases, char *out, size_t cap) {
  size_t n = 0, i;
  json_t *a;
  out[0] = 0;
  json_array_foreach(aliases, i, a) {
    int k = snprintf(out + n, cap - n, "%s@%s=v%s", n ? ", " : "", jstr(a, "alias"), jstr(a, "version"));
    if (k < 0 || (size_t)k >= cap - n) break;
    n += (size_t)k;
  }
  if (!out[0]) str_copy(out, cap, "-");
}

static int list(struct cli_client *cl, const struct margs *a) {
  const char *kv[2 * (3 + MAX_OPT)];
  int n = 0;
  kv[n++] = "filter", kv[n++] = a->filter;
  kv[n++] = "max_results", kv[n++] = a->max_results;
  for (int i = 0; i < a->norder; i++) kv[n++] = "order_by", kv[n++] = a->order_by[i];
  json_t *ans;
  if (get(cl, ML "registered-models/search", kv, n, &ans)) return 1;
  if (a->json) {
    cli_print_json(ans);
    json_decref(ans);
    return 0;
  }
  json_t *rows = json_array();
  json_array_append_new(rows, cli_row("NAME", "LATEST", "ALIASES", "UPDATED (UTC)", NULL));
  size_t i;
  json_t *m;
  json_array_foreach(json_object_get(ans, "registered_models"), i, m) {
    char t[32], latest[256], al[256];
    cli_fmt_time(jint(m, "last_updated_timestamp"), t);
    latest_text(json_object_get(m, "latest_versions"), latest, sizeof latest);
    aliases_text(json_object_get(m, "aliases"), al, sizeof al);
    json_array_append_new(rows, cli_row(jstr(m, "name"), latest, al, t, NULL));
  }
  cli_print_table(rows);
  if (json_object_get(ans, "next_page_token"))
    fprintf(stderr, "kiln: more models exist; raise --max-results or narrow --filter\n");
  json_decref(rows);
  json_decref(ans);
  return 0;
}

static int show(struct cli_client *cl, const struct margs *a) {
  const char *kv[] = {"name", a->pos[0]};
  json_t *ans;
  if (get(cl, ML "registered-models/get", kv, 2, &ans)) return 1;
  if (a->json) {
    cli_print_json(ans);
    json_decref(ans);
    return 0;
  }
  json_t *m = json_object_get(ans, "registered_model");
  char c[32], u[32], al[512];
  cli_fmt_time(jint(m, "creation_timestamp"), c);
  cli_fmt_time(jint(m, "last_updated_timestamp"), u);
  aliases_text(json_object_get(m, "aliases"), al, sizeof al);
  printf("name:        %s\n", jstr(m, "name"));
  printf("description: %s\n", *jstr(m, "description") ? jstr(m, "description") : "-");
  printf("created:     %s UTC\nupdated:     %s UTC\n", c, u);
  printf("aliases:     %s\n", al);
  size_t i;
  json_t *x;
  json_array_foreach(json_object_get(m, "tags"), i, x) printf("tag:         %s=%s\n", jstr(x, "key"), jstr(x, "value"));
  json_t *rows = json_array();
  json_array_append_new(rows, cli_row("VERSION", "STAGE", "STATUS", "SOURCE", NULL));
  json_array_foreach(json_object_get(m, "latest_versions"), i, x)
    json_array_append_new(rows, cli_row(jstr(x, "version"), jstr(x, "current_stage"), jstr(x, "status"),
                                        jstr(x, "source"), NULL));
  printf("\nlatest versions per stage:\n");
  cli_print_table(rows);
  json_decref(rows);
  json_decref(ans);
  return 0;
}

static int versions(struct cli_client *cl, const struct margs *a) {
  /* the name is quoted for the filter: ' doubled */
  struct buf f;
  buf_init(&f);
  buf_puts(&f, "name = '");
  for (const char *p = a->pos[0]; *p; p++) buf_append(&f, *p == '\'' ? "''" : p, *p == '\'' ? 2 : 1);
  buf_puts(&f, "'");
  const char *kv[] = {"filter", f.data, "max_results", a->max_results};
  json_t *ans;
  int rc = get(cl, ML "model-versions/search", kv, 4, &ans);
  buf_fini(&f);
  if (rc) return rc;
  if (a->json) {
    cli_print_json(ans);
    json_decref(ans);
    return 0;
  }
  json_t *vs = json_object_get(ans, "model_versions");
  if (json_array_size(vs) == 0) {
    /* no versions, or no such model: say which */
    json_t *m;
    const char *kv2[] = {"name", a->pos[0]};
    if (get(cl, ML "registered-models/get", kv2, 2, &m)) {
      json_decref(ans);
      return 1;
    }
    json_decref(m);
  }
  json_t *rows = json_array();
  json_array_append_new(rows, cli_row("VERSION", "STAGE", "STATUS", "ALIASES", "CREATED (UTC)", "RUN", NULL));
  size_t i;
  json_t *v;
  json_array_foreach(vs, i, v) {
    char t[32], al[256] = "";
    size_t n = 0, j;
    json_t *s;
    json_array_foreach(json_object_get(v, "aliases"), j, s) {
      int k = snprintf(al + n, sizeof al - n, "%s@%s", n ? "," : "", json_string_value(s));
      if (k < 0 || (size_t)k >= sizeof al - n) break;
      n += (size_t)k;
    }
    cli_fmt_time(jint(v, "creation_timestamp"), t);
    json_array_append_new(rows, cli_row(jstr(v, "version"), jstr(v, "current_stage"), jstr(v, "status"),
                                        al[0] ? al : "-", t, *jstr(v, "run_id") ? jstr(v, "run_id") : "-", NULL));
  }
  cli_print_table(rows);
  if (json_object_get(ans, "next_page_token"))
    fprintf(stderr, "kiln: more versions exist; raise --max-results\n");
  json_decref(rows);
  json_decref(ans);
  return 0;
}

/* One row per edge (FROM, EDGE, TO), then nodes no edge reaches. */
static int lineage(struct cli_client *cl, const struct margs *a) {
  char *n = cli_escape(a->pos[0]), *v = cli_escape(a->pos[1]);
  char *path = n && v ? malloc(strlen(n) + strlen(v) + 64) : NULL;
  if (path) snprintf(path, strlen(n) + strlen(v) + 64, "/api/v1/models/%s/versions/%s/lineage", n, v);
  free(n);
  free(v);
  if (!path) return fprintf(stderr, "kiln: out of memory\n"), 1;
  json_t *ans = NULL;
  int rc = cli_call(cl, "GET", path, NULL, &ans);
  free(path);
  if (rc) return rc;
  if (a->json) {
    cli_print_json(ans);
    json_decref(ans);
    return 0;
  }
  json_t *nodes = json_object_get(ans, "nodes"), *label = json_object(), *used = json_object();
  size_t i;
  json_t *x;
  json_array_foreach(nodes, i, x) {
    char text[1200];
    snprintf(text, sizeof text, "%s %.1000s%s", jstr(x, "type"), jstr(x, "label"),
             json_is_true(json_object_get(x, "missing")) ? " (missing)" : "");
    json_object_set_new(label, jstr(x, "id"), json_string(text));
  }
  json_t *rows = json_array();
  json_array_append_new(rows, cli_row("FROM", "EDGE", "TO", NULL));
  json_array_foreach(json_object_get(ans, "edges"), i, x) {
    const char *f = jstr(x, "from"), *t = jstr(x, "to");
    json_object_set_new(used, f, json_true());
    json_object_set_new(used, t, json_true());
    json_array_append_new(rows, cli_row(json_string_value(json_object_get(label, f)), jstr(x, "type"),
                                        json_string_value(json_object_get(label, t)), NULL));
  }
  json_array_foreach(nodes, i, x) {
    if (!json_object_get(used, jstr(x, "id")))
      json_array_append_new(rows, cli_row(json_string_value(json_object_get(label, jstr(x, "id"))), "-", "-", NULL));
  }
  cli_print_table(rows);
  json_decref(rows);
  json_decref(label);
  json_decref(used);
  json_decref(ans);
  return 0;
}

int cli_models(int argc, char **argv) {
  const char *sub = argc > 0 ? argv[0] : "";
  struct margs a;
  int rc = parse(argc - (argc > 0), argv + (argc > 0), &a);
  if (rc) return rc == 1 ? 0 : rc;
  int want = str_eq(sub, "list") ? 0 : str_eq(sub, "show") || str_eq(sub, "versions") ? 1
             : str_eq(sub, "lineage")                                                ? 2
             : str_eq(sub, "promote") || str_eq(sub, "alias")                        ? 3
                                                                                     : -1;
  if (want < 0 || a.npos != want) {
    fputs(USAGE, stderr);
    return 2;
  }
  if (a.max_results) {
    int64_t mr;
    if (str_to_i64(a.max_results, &mr) || mr < 1) {
      fprintf(stderr, "kiln: --max-results takes a positive number\n");
      return 2;
    }
  }
  struct cli_client *cl = cli_client_open();
  if (!cl) return 1;
  json_t *ans = NULL;
  if (str_eq(sub, "list")) {
    rc = list(cl, &a);
  } else if (str_eq(sub, "show")) {
    rc = show(cl, &a);
  } else if (str_eq(sub, "versions")) {
    rc = versions(cl, &a);
  } else if (str_eq(sub, "lineage")) {
    rc = lineage(cl, &a);
  } else if (str_eq(sub, "promote")) {
    json_t *req = json_pack("{s:s, s:s, s:s, s:b}", "name", a.pos[0], "version", a.pos[1], "stage", a.pos[2],
                            "archive_existing_versions", a.archive);
    rc = cli_call(cl, "POST", ML "model-versions/transition-stage", req, &ans);
    json_decref(req);
    if (!rc) {
      json_t *v = json_object_get(ans, "model_version");
      if (a.json) cli_print_json(ans);
      else printf("%s version %s is now in %s%s\n", a.pos[0], jstr(v, "version"), jstr(v, "current_stage"),
                  a.archive ? " (the stage's other versions were archived)" : "");
    }
  } else {
    json_t *req = json_pack("{s:s, s:s, s:s}", "name", a.pos[0], "alias", a.pos[1], "version", a.pos[2]);
    rc = cli_call(cl, "POST", ML "registered-models/alias", req, &ans);
    json_decref(req);
    if (!rc) {
      if (a.json) {
        json_t *o = json_pack("{s:s, s:s, s:s}", "name", a.pos[0], "alias", a.pos[1], "version", a.pos[2]);
        cli_print_json(o);
        json_decref(o);
      } else printf("%s@%s now points at version %s\n", a.pos[0], a.pos[1], a.pos[2]);
    }
  }
  json_decref(ans);
  cli_client_close(cl);
  return rc;
}
