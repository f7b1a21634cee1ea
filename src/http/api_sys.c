/* http/api_sys: the system routes — health, readiness, metrics, server
 * info, the JSON echo used by benchmarks, and the API description. */
#include "internal.h"

#include <string.h>

static char *openapi_text;
static size_t openapi_len;

/* The description is also served one tag at a time (?tag=...): Swagger UI
 * 5 stops rendering a document past ~140 operations, so the docs page shows
 * one area at a time, picked from the full document's top-level tags. */
#define OPENAPI_MAX_TAGS 32
static struct {
  char *name, *text;
  size_t len;
} by_tag[OPENAPI_MAX_TAGS];
static int ntags;

static const char *op_tag(json_t *op) { return json_string_value(json_array_get(json_object_get(op, "tags"), 0)); }

static char *emit(json_t *doc, size_t *len) {
  struct buf b;
  buf_init(&b);
  if (json_emit(&b, doc)) {
    buf_fini(&b);
    return NULL;
  }
  *len = b.len;
  return buf_steal(&b);
}

static void tags_free(void) {
  for (int i = 0; i < ntags; i++) {
    free(by_tag[i].name);
    free(by_tag[i].text);
  }
  ntags = 0;
}

/* the document with only the operations tagged `tag` */
static json_t *only_tag(json_t *doc, const char *tag) {
  json_t *d = json_deep_copy(doc), *paths = json_object_get(d, "paths"), *item;
  json_object_del(d, "tags");
  const char *path;
  void *tmp;
  json_object_foreach_safe(paths, tmp, path, item) {
    const char *m;
    json_t *op;
    void *t2;
    json_object_foreach_safe(item, t2, m, op) {
      if (!str_eq(op_tag(op) ? op_tag(op) : "", tag)) json_object_del(item, m);
    }
    if (json_object_size(item) == 0) json_object_del(paths, path);
  }
  return d;
}

int sys_init(struct router *r, struct err *e) {
  json_t *doc = openapi_build(r, e);
  if (!doc) return -ERR_INTERNAL;
  tags_free();
  /* the tags in order of first use, listed at the top level */
  json_t *tags = json_array(), *item;
  const char *path;
  json_object_foreach(json_object_get(doc, "paths"), path, item) {
    const char *m;
    json_t *op;
    json_object_foreach(item, m, op) {
      const char *t = op_tag(op);
      bool seen = false;
      for (int i = 0; t && i < ntags; i++) seen |= str_eq(by_tag[i].name, t);
      if (!t || seen || ntags == OPENAPI_MAX_TAGS) continue;
      by_tag[ntags++].name = strdup(t);
      json_array_append_new(tags, json_pack("{s:s}", "name", t));
    }
  }
  json_object_set_new(doc, "tags", tags);
  int rc = 0;
  for (int i = 0; i < ntags && !rc; i++) {
    json_t *d = by_tag[i].name ? only_tag(doc, by_tag[i].name) : NULL;
    by_tag[i].text = d ? emit(d, &by_tag[i].len) : NULL;
    json_decref(d);
    if (!by_tag[i].text) rc = -ERR_NO_MEMORY;
  }
  size_t len = 0;
  char *text = rc ? NULL : emit(doc, &len);
  json_decref(doc);
  if (!text) {
    tags_free();
    return err_set(e, ERR_NO_MEMORY, NULL);
  }
  free(openapi_text);
  openapi_len = len;
  openapi_text = text;
  return 0;
}

void sys_fini(void) {
  free(openapi_text);
  openapi_text = NULL;
  tags_free();
}

static int h_healthz(struct req *rq, struct reply *rp) {
  (void)rq;
  static const char ok[] = "{\"status\":\"ok\"}";
  return reply_bytes(rp, 200, "application/json", ok, sizeof ok - 1, true);
}

static int h_readyz(struct req *rq, struct reply *rp) {
  struct app *app = req_app(rq);
  struct err e;
  if (!app->db) return reply_errf(rp, ERR_NOT_READY, "the metadata store is not open");
  if (db_ping(app->db, &e)) return reply_errf(rp, ERR_NOT_READY, "metadata store unreachable: %s", e.msg);
  int applied = db_migrations_applied(app->db), known = db_migrations_known();
  if (applied < known)
    return reply_errf(rp, ERR_NOT_READY, "migrations applied: %d of %d", applied, known);
  return reply_json(rp, 200, json_pack("{s:s, s:{s:s, s:i}}", "status", "ready", "checks", "store",
                                       "ok", "migrations", applied));
}

static int h_metrics(struct req *rq, struct reply *rp) {
  (void)rq;
  struct buf b;
  buf_init(&b);
  if (metrics_expose(&b)) {
    buf_fini(&b);
    return reply_errf(rp, ERR_NO_MEMORY, "out of memory rendering metrics");
  }
  size_t n = b.len;
  return reply_take(rp, 200, "text/plain; version=0.0.4; charset=utf-8", buf_steal(&b), n);
}

static int h_server_info(struct req *rq, struct reply *rp) {
  struct app *app = req_app(rq);
  int64_t now = time_wall_ms();
  return reply_json(rp, 200,
                    json_pack("{s:s, s:s, s:s, s:I, s:f, s:{s:s, s:i}}", "name", "kiln", "version",
                              KILN_VERSION, "commit", kiln_commit, "started_at_ms",
                              (json_int_t)app->started_at_ms, "uptime_s",
                              (double)(now - app->started_at_ms) / 1000.0, "store", "driver",
                              app->db ? db_driver_name(app->db) : "none", "migrations",
                              app->db ? db_migrations_applied(app->db) : 0));
}

static int h_echo(struct req *rq, struct reply *rp) {
  struct err e;
  json_t *v = req_json(rq, &e);
  if (!v) return reply_err(rp, &e);
  return reply_json(rp, 200, json_incref(v));
}

static int h_openapi(struct req *rq, struct reply *rp) {
  if (!openapi_text) return reply_errf(rp, ERR_NOT_READY, "the API description is not built");
  const char *tag = req_query(rq, "tag");
  if (!tag) return reply_bytes(rp, 200, "application/json", openapi_text, openapi_len, true);
  for (int i = 0; i < ntags; i++)
    if (str_eq(by_tag[i].name, tag)) return reply_bytes(rp, 200, "application/json", by_tag[i].text, by_tag[i].len, true);
  return reply_errf(rp, ERR_RESOURCE_DOES_NOT_EXIST, "no operations are tagged '%.100s'; the document's top-level tags list them",
                    tag);
}

/* The docs page loads Swagger UI's bundle from the dashboard's embedded
 * files when the build shipped it, and says where the JSON is otherwise. */
static const char docs_html[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>Kiln API</title>"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    "<link rel=\"stylesheet\" href=\"/api-docs/swagger-ui.css\"></head><body>"
    "<div id=\"swagger-ui\"><p style=\"font-family:sans-serif;padding:1em\">Loading the API "
    "reference&hellip; The raw description is at <a href=\"/api/openapi.json\">/api/openapi.json</a>."
    "</p></div><script src=\"/api-docs/swagger-ui-bundle.js\"></script>"
    "<script src=\"/api-docs/swagger-ui-standalone-preset.js\"></script>"
    "<script src=\"/api-docs/init.js\"></script></body></html>";

static int h_docs(struct req *rq, struct reply *rp) {
  (void)rq;
  reply_bytes(rp, 200, "text/html; charset=utf-8", docs_html, sizeof docs_html - 1, true);
  return reply_header(rp, "Cache-Control", "no-cache");
}

#define S_HEALTH "{\"type\":\"object\",\"required\":[\"status\"],\"properties\":{\"status\":{\"const\":\"ok\"}}}"
#define S_READY                                                                                  \
  "{\"type\":\"object\",\"required\":[\"status\",\"checks\"],\"properties\":{\"status\":{\"const\":" \
  "\"ready\"},\"checks\":{\"type\":\"object\",\"required\":[\"store\",\"migrations\"],"             \
  "\"properties\":{\"store\":{\"type\":\"string\"},\"migrations\":{\"type\":\"integer\"}}}}}"
#define S_INFO                                                                                     \
  "{\"type\":\"object\",\"required\":[\"name\",\"version\",\"commit\",\"started_at_ms\","           \
  "\"uptime_s\",\"store\"],\"properties\":{\"name\":{\"type\":\"string\"},\"version\":{\"type\":"  \
  "\"string\"},\"commit\":{\"type\":\"string\"},\"started_at_ms\":{\"type\":\"integer\"},"          \
  "\"uptime_s\":{\"type\":\"number\"},\"store\":{\"type\":\"object\",\"required\":[\"driver\","     \
  "\"migrations\"],\"properties\":{\"driver\":{\"type\":\"string\"},\"migrations\":{\"type\":"      \
  "\"integer\"}}}}}"
#define S_ANY "{}"
#define S_OPENAPI "{\"type\":\"object\",\"required\":[\"openapi\",\"paths\",\"info\"]}"

const struct route sys_routes[] = {
    {"GET", "/healthz", PERM_PUBLIC, "Liveness: the process is up", "system", NULL, S_HEALTH, NULL,
     h_healthz, ROUTE_NO_ACCESS_LOG},
    {"GET", "/readyz", PERM_PUBLIC, "Readiness: store reachable and migrations applied", "system",
     NULL, S_READY, NULL, h_readyz, ROUTE_NO_ACCESS_LOG},
    {"GET", "/metrics", PERM_PUBLIC, "Prometheus metrics (text exposition format 0.0.4)", "system",
     NULL, NULL, "text/plain", h_metrics, ROUTE_NO_ACCESS_LOG},
    {"GET", "/api/v1/server-info", PERM_PUBLIC, "Server name, version, commit and uptime", "system",
     NULL, S_INFO, NULL, h_server_info, 0},
    {"POST", "/api/v1/echo", PERM_PUBLIC, "Echo a JSON body back (diagnostics and benchmarks)",
     "system", S_ANY, S_ANY, NULL, h_echo, 0},
    {"GET", "/api/openapi.json", PERM_PUBLIC,
     "This API description (OpenAPI 3.1); query tag=<one of the top-level tags>: only that area's operations",
     "system", NULL,
     S_OPENAPI, NULL, h_openapi, 0},
    {"GET", "/api/docs", PERM_PUBLIC, "Interactive API reference (HTML)", "system", NULL, NULL,
     "text/html", h_docs, 0},
};
const size_t sys_routes_count = sizeof sys_routes / sizeof sys_routes[0];
