/* cli/webhooks: `kiln webhooks list|create|delete|test` — a project's
 * registry webhooks over HTTP with the stored credentials. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "internal.h"

static const char usage[] =
    "usage: kiln webhooks list   [--project ID] [--json]\n"
    "       kiln webhooks create --url URL --events EVENT[,EVENT...] [--model NAME] [--description TEXT]\n"
    "                            [--status ACTIVE|DISABLED|TEST_MODE] [--project ID] [--json]\n"
    "       kiln webhooks delete WEBHOOK_ID [--project ID]\n"
    "       kiln webhooks test   WEBHOOK_ID [--project ID] [--json]\n";

static bool hex_id(const char *s) {
  size_t n = 0;
  for (; s[n]; n++)
    if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f'))) return false;
  return n == 32;
}

static const char *jstr(json_t *o, const char *k) {
  const char *v = json_string_value(json_object_get(o, k));
  return v ? v : "";
}

/* The project: --project, else the API key's, else the caller's default. */
static int project_of(struct cli_client *cl, const char *given, char out[33]) {
  if (given) {
    if (!hex_id(given)) {
      fprintf(stderr, "kiln: --project takes a project id (32 hex characters)\n");
      return 2;
    }
    str_copy(out, 33, given);
    return 0;
  }
  json_t *me = NULL;
  if (cli_call(cl, "GET", "/api/v1/auth/whoami", NULL, &me)) return 1;
  const char *p = jstr(json_object_get(me, "auth"), "project_id");
  if (!*p) p = jstr(json_object_get(me, "user"), "default_project_id");
  int rc = 0;
  if (!hex_id(p)) {
    fprintf(stderr, "kiln: no default project: give --project ID\n");
    rc = 1;
  } else {
    str_copy(out, 33, p);
  }
  json_decref(me);
  return rc;
}

struct opts {
  const char *project, *url, *events, *model, *description, *status, *pos;
  bool json;
};

static int parse(int argc, char **argv, struct opts *o) {
  memset(o, 0, sizeof *o);
  struct {
    const char *name;
    const char **dst;
  } defs[] = {{"--project", &o->project}, {"--url", &o->url},       {"--events", &o->events},
              {"--model", &o->model},     {"--description", &o->description}, {"--status", &o->status}};
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (str_eq(a, "--json")) {
      o->json = true;
      continue;
    }
    if (a[0] != '-') {
      if (o->pos) {
        fprintf(stderr, "kiln: unexpected argument '%s'\n%s", a, usage);
        return 2;
      }
      o->pos = a;
      continue;
    }
    size_t k = 0, nd = sizeof defs / sizeof defs[0];
    while (k < nd && !str_eq(defs[k].name, a)) k++;
    if (k == nd || i + 1 >= argc || !*argv[i + 1]) {
      fprintf(stderr, "kiln: %s '%s'\n%s", k == nd ? "unknown option" : "missing value for", a, usage);
      return 2;
    }
    *defs[k].dst = argv[++i];
  }
  return 0;
}

static int do_list(struct cli_client *cl, const char *base, const struct opts *o) {
  json_t *ans = NULL;
  if (cli_call(cl, "GET", base, NULL, &ans)) return 1;
  if (o->json) {
    cli_print_json(ans);
    json_decref(ans);
    return 0;
  }
  json_t *rows = json_array();
  json_array_append_new(rows, cli_row("ID", "URL", "EVENTS", "MODEL", "STATUS", NULL));
  size_t i;
  json_t *w;
  json_array_foreach(json_object_get(ans, "webhooks"), i, w) {
    struct buf ev;
    buf_init(&ev);
    size_t j;
    json_t *x;
    json_array_foreach(json_object_get(w, "events"), j, x) buf_printf(&ev, "%s%s", j ? "," : "", json_string_value(x));
    const char *model = jstr(w, "model_name");
    json_array_append_new(rows, cli_row(jstr(w, "id"), jstr(w, "url"), ev.data ? ev.data : "", *model ? model : "*",
                                        jstr(w, "status"), NULL));
    buf_fini(&ev);
  }
  cli_print_table(rows);
  json_decref(rows);
  json_decref(ans);
  return 0;
}

static int do_create(struct cli_client *cl, const char *base, const struct opts *o) {
  if (!o->url || !o->events) {
    fprintf(stderr, "kiln: create needs --url and --events\n%s", usage);
    return 2;
  }
  json_t *events = json_array();
  const char *p = o->events;
  while (*p) {
    size_t n = strcspn(p, ",");
    if (n) json_array_append_new(events, json_stringn(p, n));
    p += n + (p[n] == ',');
  }
  json_t *body = json_pack("{s:s, s:o}", "url", o->url, "events", events);
  if (o->model) json_object_set_new(body, "model_name", json_string(o->model));
  if (o->description) json_object_set_new(body, "description", json_string(o->description));
  if (o->status) json_object_set_new(body, "status", json_string(o->status));
  json_t *ans = NULL;
  int rc = cli_call(cl, "POST", base, body, &ans);
  json_decref(body);
  if (rc) return 1;
  if (o->json) {
    cli_print_json(ans);
  } else {
    json_t *w = json_object_get(ans, "webhook");
    printf("created webhook %s (%s) -> %s\n", jstr(w, "id"), jstr(w, "status"), jstr(w, "url"));
    printf("signing secret (shown only now; receivers verify X-Kiln-Signature with it):\n%s\n", jstr(ans, "secret"));
  }
  json_decref(ans);
  return 0;
}

static int do_delete(struct cli_client *cl, const char *base, const struct opts *o) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", base, o->pos);
  json_t *ans = NULL;
  if (cli_call(cl, "DELETE", path, NULL, &ans)) return 1;
  json_decref(ans);
  printf("deleted webhook %s\n", o->pos);
  return 0;
}

/* Queues a test event and waits (up to a minute) for its outcome. */
static int do_test(struct cli_client *cl, const char *base, const struct opts *o) {
  char path[320];
  snprintf(path, sizeof path, "%s/%s/test", base, o->pos);
  json_t *ans = NULL;
  if (cli_call(cl, "POST", path, NULL, &ans)) return 1;
  json_t *d = json_incref(json_object_get(ans, "delivery"));
  json_decref(ans);
  snprintf(path, sizeof path, "%s/%s/deliveries/%s", base, o->pos, jstr(d, "id"));
  for (int i = 0; i < 300 && str_eq(jstr(d, "state"), "PENDING"); i++) {
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ans = NULL;
    if (cli_call(cl, "GET", path, NULL, &ans)) {
      json_decref(d);
      return 1;
    }
    json_decref(d);
    d = json_incref(json_object_get(ans, "delivery"));
    json_decref(ans);
  }
  const char *state = jstr(d, "state");
  int rc = str_eq(state, "SUCCEEDED") ? 0 : 1;
  if (o->json) {
    cli_print_json(d);
  } else if (rc == 0) {
    printf("test delivery %s: SUCCEEDED (HTTP %lld)\n", jstr(d, "id"),
           (long long)json_integer_value(json_object_get(d, "last_status_code")));
  } else {
    fprintf(stderr, "kiln: test delivery %s: %s: %s\n", jstr(d, "id"), state, jstr(d, "last_error"));
  }
  json_decref(d);
  return rc;
}

int cli_webhooks(int argc, char **argv) {
  if (argc < 1 || str_eq(argv[0], "--help") || str_eq(argv[0], "-h")) {
    fputs(usage, argc < 1 ? stderr : stdout);
    return argc < 1 ? 2 : 0;
  }
  const char *sub = argv[0];
  struct opts o;
  int rc = parse(argc - 1, argv + 1, &o);
  if (rc) return rc;
  bool needs_id = str_eq(sub, "delete") || str_eq(sub, "test");
  if (!str_eq(sub, "list") && !str_eq(sub, "create") && !needs_id) {
    fprintf(stderr, "kiln: unknown webhooks command '%s'\n%s", sub, usage);
    return 2;
  }
  if (needs_id != (o.pos != NULL) || (needs_id && !hex_id(o.pos))) {
    fprintf(stderr, needs_id ? "kiln: %s takes a webhook id (32 hex characters)\n%s" : "kiln: %s takes no argument\n%s",
            sub, usage);
    return 2;
  }
  struct cli_client *cl = cli_client_open();
  if (!cl) return 1;
  char project[33], base[96];
  rc = project_of(cl, o.project, project);
  if (!rc) {
    snprintf(base, sizeof base, "/api/v1/projects/%s/webhooks", project);
    if (str_eq(sub, "list")) rc = do_list(cl, base, &o);
    else if (str_eq(sub, "create")) rc = do_create(cl, base, &o);
    else if (str_eq(sub, "delete")) rc = do_delete(cl, base, &o);
    else rc = do_test(cl, base, &o);
  }
  cli_client_close(cl);
  return rc;
}
