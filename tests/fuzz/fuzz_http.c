/* tests/fuzz/fuzz_http: request dispatch end to end without sockets — the
 * real route table over a real SQLite store — plus json_parse and the JSON
 * string escaper on the same bytes. Aborts when an answer breaks the wire
 * contract (status range, JSON error shape — with "error" too under /v2 —,
 * Allow on 405, echo fidelity, bounded metric labels).
 *
 * Input: first line "METHOD URL", then "Name: value" header lines up to a
 * blank line, then the body (binary). */
#define FUZZ_NAME "fuzz_http"
#include "fuzz_common.h"
#include "http/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

#define MAX_HEADERS 16
#define MAX_BODY 4096 /* bodies above this answer 413 */

static struct router *g_router;
static struct app g_app;
static char g_dir[64];



static void cleanup(void) {
  if (g_router) router_free(g_router);
  sys_fini();
  auth_close(g_app.auth);
  if (g_app.db) db_close(g_app.db);
  const char *suffixes[] = {"/kiln.db", "/kiln.db-wal", "/kiln.db-shm", "/kiln.db-journal"};
  char p[128];
  for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
    snprintf(p, sizeof p, "%s%s", g_dir, suffixes[i]);
    unlink(p);
  }
  rmdir(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  log_set_quiet(true);
  if (base_init()) abort();
  http_metrics_init();
  metrics_process_register();
  str_copy(g_dir, sizeof g_dir, "/tmp/kiln-fuzz-http-XXXXXX");
  if (!mkdtemp(g_dir)) abort();
  char url[128];
  snprintf(url, sizeof url, "sqlite:%s/kiln.db", g_dir);
  struct err e;
  err_clear(&e);
  if (db_open(&g_app.db, url, NULL, &e) || db_migrate(g_app.db, &e) < 0) {
    fprintf(stderr, "fuzz_http: store setup failed: %s\n", e.msg);
    abort();
  }
  /* identity with the cheapest argon2 cost, so credential parsing and the
   * token grants are fuzzed too */
  struct auth_opts ao = {.pwhash_opslimit = crypto_pwhash_OPSLIMIT_MIN,
                         .pwhash_memlimit = crypto_pwhash_MEMLIMIT_MIN};
  if (auth_open(&g_app.auth, g_app.db, &ao, &e)) {
    fprintf(stderr, "fuzz_http: auth setup failed: %s\n", e.msg);
    abort();
  }
  g_router = router_new();
  if (!g_router || routes_register_all(g_router, &e)) {
    fprintf(stderr, "fuzz_http: route setup failed: %s\n", e.msg);
    abort();
  }
  g_app.started_at_ms = time_wall_ms();
  g_app.data_dir = g_dir;
  atexit(cleanup);
  return 0;
}

static bool is_api_path(const char *p) {
  return str_has_prefix(p, "/api/") || str_eq(p, "/api") || str_has_prefix(p, "/ajax-api/") ||
         str_has_prefix(p, "/v2/") || str_eq(p, "/v2") || str_eq(p, "/metrics") ||
         str_eq(p, "/healthz") || str_eq(p, "/readyz");
}

/* The error_code string must be one of the list, and the status the one the
 * list gives it. */
static int status_of_code(const char *code) {
  for (int c = 0; c < ERR__COUNT; c++)
    if (str_eq(err_code_str((enum err_code)c), code)) return err_http_status((enum err_code)c);
  return -1;
}

static int json_depth(const json_t *v) {
  int d = 0;
  if (json_is_array(v)) {
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
      int k = json_depth(x);
      if (k > d) d = k;
    }
    return d + 1;
  }
  if (json_is_object(v)) {
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x) {
      int n = json_depth(x);
      if (n > d) d = n;
    }
    return d + 1;
  }
  return 0;
}

/* json_parse agrees with jansson except for nesting deeper than 64, and
 * what it accepts survives emit + parse unchanged. */
static void check_json(const char *p, size_t n) {
  struct err e;
  err_clear(&e);
  json_t *v = json_parse(p, n, &e);
  json_error_t je;
  json_t *ref = n ? json_loadb(p, n, JSON_DECODE_ANY, &je) : NULL;
  if (v) {
    CHECK(ref != NULL, "json_parse accepted what jansson refuses");
    CHECK(json_equal(v, ref), "json_parse and jansson disagree on the value");
    struct buf b;
    buf_init(&b);
    CHECK(json_emit(&b, v) == 0, "json_emit failed");
    json_t *back = json_loadb(b.data, b.len, JSON_DECODE_ANY, &je);
    CHECK(back && json_equal(back, v), "emit/parse round trip changed the value: %s", esc(b.data));
    struct arena a;
    arena_init(&a, 1024, 0);
    size_t alen = 0;
    char *as = json_emit_arena(&a, v, &alen);
    CHECK(as && alen == b.len && memcmp(as, b.data, alen) == 0,
          "json_emit_arena differs from json_emit");
    arena_fini(&a);
    buf_fini(&b);
    json_decref(back);
    int64_t i64 = 0;
    const char *s = NULL;
    struct err ge;
    if (json_get_i64(v, "a", false, &i64, &ge) == 0 && json_is_integer(json_object_get(v, "a")))
      CHECK(i64 == json_integer_value(json_object_get(v, "a")), "json_get_i64 changed the value");
    if (json_get_str(v, "b", false, &s, &ge) == 0 && s)
      CHECK(str_eq(s, json_string_value(json_object_get(v, "b"))),
            "json_get_str changed the value");
    json_decref(v);
  } else {
    CHECK(e.code == ERR_MALFORMED_JSON, "json_parse failed with code %d", (int)e.code);
    if (ref)
      CHECK(json_depth(ref) > 64, "json_parse refused valid JSON of depth %d: %s", json_depth(ref),
            e.msg);
  }
  json_decref(ref);
}

/* json_escape_buf must produce a JSON string literal for any C string, equal
 * to the input whenever the input is valid UTF-8. */
static void check_escape(const char *s) {
  struct buf b;
  buf_init(&b);
  CHECK(json_escape_buf(&b, s) == 0, "json_escape_buf failed");
  json_error_t je;
  json_t *v = json_loadb(b.data, b.len, JSON_DECODE_ANY, &je);
  CHECK(v && json_is_string(v), "json_escape_buf produced invalid JSON (%s): %s", je.text,
        esc(b.data));
  json_t *orig = json_string(s); /* NULL when s is not valid UTF-8 */
  if (orig) CHECK(json_equal(v, orig), "json_escape_buf changed the string");
  json_decref(orig);
  json_decref(v);
  buf_fini(&b);
}

/* The value of label `name` at p (just after `name="`), unescaped into out. */
static const char *label_value(const char *p, char *out, size_t cap) {
  size_t n = 0;
  for (; *p && *p != '"'; p++) {
    if (*p == '\\' && p[1]) p++;
    if (n + 1 < cap) out[n++] = *p;
  }
  out[n] = 0;
  return p;
}

/* Labels of the HTTP metrics take values from closed sets: a route label is a
 * pattern of the table, "unmatched" or "static"; methods are a handful.
 * Anything else lets clients grow /metrics without bound. */
static void check_metric_labels(unsigned long iter) {
  struct buf mb;
  buf_init(&mb);
  CHECK(metrics_expose(&mb) == 0, "metrics_expose failed");
  char methods[16][64];
  int nm = 0;
  for (const char *p = mb.data; p && (p = strstr(p, "kiln_http_request")); p++) {
    const char *eol = strchr(p, '\n');
    const char *r = strstr(p, "route=\"");
    if (r && (!eol || r < eol)) {
      char v[512];
      label_value(r + 7, v, sizeof v);
      bool known = str_eq(v, "unmatched") || str_eq(v, "static");
      for (size_t i = 0; !known && i < router_count(g_router); i++)
        known = str_eq(v, router_at(g_router, i)->path);
      CHECK(known, "/metrics has route label '%s', not a route pattern", esc(v));
    }
    const char *m = strstr(p, "method=\"");
    if (m && (!eol || m < eol)) {
      char v[64];
      label_value(m + 8, v, sizeof v);
      bool seen = false;
      for (int i = 0; i < nm && !seen; i++) seen = str_eq(methods[i], v);
      if (!seen) {
        CHECK(nm < 16, "/metrics has more than 16 method labels after %lu requests (e.g. '%s')",
              iter, esc(v));
        str_copy(methods[nm++], sizeof methods[0], v);
      }
    }
    if (!eol) break;
    p = eol;
  }
  buf_fini(&mb);
}

static char *dup_line(const uint8_t *p, size_t n) {
  while (n && (p[n - 1] == '\r')) n--;
  char *s = malloc(n + 1);
  if (!s) abort();
  memcpy(s, p, n);
  s[n] = 0; /* an embedded NUL simply ends the string early, as in C callers */
  return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *end = data + size, *p = data;
  const uint8_t *nl = memchr(p, '\n', size);
  size_t l0 = nl ? (size_t)(nl - p) : size;
  char *line = dup_line(p, l0);
  p = nl ? nl + 1 : end;

  char *sp = strchr(line, ' ');
  const char *method = line, *url = "/";
  if (sp) {
    *sp = 0;
    url = sp + 1;
  }
  if (!*url) url = "/";
  if (!*method) method = "GET"; /* a transport never hands over an empty method */

  char *hdrs[MAX_HEADERS + 1];
  int nh = 0;
  while (p < end) {
    nl = memchr(p, '\n', (size_t)(end - p));
    size_t ln = nl ? (size_t)(nl - p) : (size_t)(end - p);
    const uint8_t *next = nl ? nl + 1 : end;
    if (ln == 0 || (ln == 1 && p[0] == '\r')) {
      p = next;
      break;
    }
    if (nh < MAX_HEADERS) hdrs[nh++] = dup_line(p, ln);
    p = next;
  }
  hdrs[nh] = NULL;
  const char *body = (const char *)p;
  size_t body_len = (size_t)(end - p);

  struct http_test_result res;
  memset(&res, 0, sizeof res);
  int rc = http_dispatch_test(g_router, &g_app, method, url, (const char *const *)hdrs, body,
                              body_len, MAX_BODY, &res);
  CHECK(rc == 0, "http_dispatch_test returned %d", rc);

  char path[4096];
  {
    const char *q = strchr(url, '?');
    size_t pl = q ? (size_t)(q - url) : strlen(url);
    if (pl >= sizeof path) pl = sizeof path - 1;
    memcpy(path, url, pl);
    path[pl] = 0;
  }
  int st = res.status;
  CHECK(st >= 200 && st <= 599, "status %d out of range for %s %s", st, esc(method), esc(url));

  bool is_json = str_has_prefix(res.content_type, "application/json");
  json_t *jb = NULL;
  if (is_json) {
    json_error_t je;
    jb = json_loadb(res.body.data ? res.body.data : "", res.body.len, JSON_DECODE_ANY, &je);
    CHECK(jb != NULL, "%s %s -> %d: JSON reply does not parse (%s): %s", esc(method), esc(path), st,
          je.text, esc(res.body.data ? res.body.data : ""));
  }
  if (st == 405) CHECK(res.allow[0] != 0, "405 without Allow for %s %s", esc(method), esc(path));
  if ((st < 200 || st > 299) && (is_api_path(path) || is_json)) {
    CHECK(is_json, "%s %s -> %d with content type '%s'", esc(method), esc(path), st,
          res.content_type);
    json_t *code = json_object_get(jb, "error_code"), *msg = json_object_get(jb, "message");
    CHECK(json_is_string(code) && json_string_length(code) > 0, "%s %s -> %d: no error_code: %s",
          esc(method), esc(path), st, esc(res.body.data ? res.body.data : ""));
    CHECK(json_is_string(msg), "%s %s -> %d: no message", esc(method), esc(path), st);
    if (str_has_prefix(path, "/v2/") || str_eq(path, "/v2"))
      CHECK(json_is_string(json_object_get(jb, "error")),
            "%s %s -> %d: a /v2 error without the protocol's \"error\" key", esc(method), esc(path),
            st);
    int want = status_of_code(json_string_value(code));
    CHECK(want == st, "%s %s: error_code %s answered with status %d (list says %d)", esc(method),
          esc(path), json_string_value(code), st, want);
  }
  /* The echo route returns exactly what json_parse makes of the body. */
  if (str_eq(method, "POST") && str_eq(path, "/api/v1/echo") && body_len <= MAX_BODY) {
    struct err e;
    json_t *want = json_parse(body, body_len, &e);
    if (st == 200) {
      CHECK(want && jb && json_equal(want, jb), "echo answered 200 with a different value");
    } else if (!want) {
      CHECK(st == 400, "echo of malformed JSON answered %d", st);
    }
    json_decref(want);
  }
  json_decref(jb);
  buf_fini(&res.body);

  check_json(body, body_len);
  check_escape(path);

  /* Whatever the requests, /metrics stays bounded: labels come from closed
   * sets (route patterns, not paths; a few methods). */
  static unsigned long iter;
  if ((++iter & 4095) == 0) check_metric_labels(iter);

  for (int i = 0; i < nh; i++) free(hdrs[i]);
  free(line);
  return 0;
}
