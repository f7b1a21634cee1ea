/* tests for http/router: params, precedence, 405 with Allow, bad tables. */
#include <criterion/criterion.h>
#include <string.h>

#include "http/http.h"

static int h(struct req *rq, struct reply *rp) {
  (void)rq;
  return reply_json(rp, 200, json_object());
}

static const struct route table[] = {
    {"GET", "/api/v1/runs/{run_id}", PERM_READ, "get run", "t", NULL, NULL, NULL, h, 0},
    {"GET", "/api/v1/runs/search", PERM_READ, "search", "t", NULL, NULL, NULL, h, 0},
    {"POST", "/api/v1/runs/{run_id}", PERM_WRITE, "update", "t", NULL, NULL, NULL, h, 0},
    {"DELETE", "/api/v1/runs/{run_id}", PERM_WRITE, "delete", "t", NULL, NULL, NULL, h, 0},
    {"GET", "/api/v1/runs/{run_id}/metrics/{key}", PERM_READ, "metric", "t", NULL, NULL, NULL, h, 0},
    {"GET", "/artifacts/{path*}", PERM_READ, "artifact", "t", NULL, NULL, NULL, h, 0},
    {"GET", "/artifacts/special/{name}", PERM_READ, "special", "t", NULL, NULL, NULL, h, 0},
};

static struct router *mk(void) {
  struct router *r = router_new();
  struct err e;
  cr_assert_eq(router_add_table(r, table, sizeof table / sizeof table[0], &e), 0, "%s", e.msg);
  return r;
}

static const char *param(struct router_match *m, const char *name, char *out, size_t cap) {
  for (int i = 0; i < m->nparams; i++)
    if (m->params[i].name_len == strlen(name) && !memcmp(m->params[i].name, name, m->params[i].name_len)) {
      snprintf(out, cap, "%.*s", (int)m->params[i].value_len, m->params[i].value);
      return out;
    }
  return NULL;
}

Test(router, path_parameters_are_extracted) {
  struct router *r = mk();
  struct router_match m;
  char v[128];
  router_match(r, "GET", "/api/v1/runs/abc123/metrics/loss", &m);
  cr_assert_not_null(m.route);
  cr_assert_str_eq(m.route->summary, "metric");
  cr_assert_str_eq(param(&m, "run_id", v, sizeof v), "abc123");
  cr_assert_str_eq(param(&m, "key", v, sizeof v), "loss");
  router_free(r);
}

Test(router, literal_beats_parameter_whatever_the_order) {
  struct router *r = mk();
  struct router_match m;
  router_match(r, "GET", "/api/v1/runs/search", &m);
  cr_assert_str_eq(m.route->summary, "search");
  router_match(r, "GET", "/api/v1/runs/other", &m);
  cr_assert_str_eq(m.route->summary, "get run");
  router_match(r, "GET", "/artifacts/special/x", &m);
  cr_assert_str_eq(m.route->summary, "special", "a parameter beats the wildcard");
  router_free(r);
}

Test(router, wildcard_takes_the_rest_of_the_path) {
  struct router *r = mk();
  struct router_match m;
  char v[128];
  router_match(r, "GET", "/artifacts/a/b/c.txt", &m);
  cr_assert_str_eq(m.route->summary, "artifact");
  cr_assert_str_eq(param(&m, "path", v, sizeof v), "a/b/c.txt");
  router_match(r, "GET", "/artifacts/", &m);
  cr_assert_null(m.route, "the wildcard needs at least one character");
  router_free(r);
}

Test(router, wrong_method_gives_allow_list) {
  struct router *r = mk();
  struct router_match m;
  router_match(r, "PUT", "/api/v1/runs/abc", &m);
  cr_assert_null(m.route);
  cr_assert(m.path_matched);
  cr_assert_str_eq(m.allow, "GET, HEAD, POST, DELETE");
  router_match(r, "HEAD", "/api/v1/runs/abc", &m);
  cr_assert_not_null(m.route, "HEAD is served by GET");
  router_free(r);
}

Test(router, unknown_paths_and_partial_matches_do_not_match) {
  struct router *r = mk();
  struct router_match m;
  const char *paths[] = {"/api/v1/runs", "/api/v1/runs/", "/api/v1/runs/a/b", "/api/v1/runsx/a",
                         "api/v1/runs/a", "", "/", "/api/v1/runs//metrics/x"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    router_match(r, "GET", paths[i], &m);
    cr_assert_null(m.route, "'%s' must not match", paths[i]);
    cr_assert_not(m.path_matched, "'%s' must not count as matched", paths[i]);
  }
  router_free(r);
}

Test(router, bad_tables_are_refused) {
  struct router *r = router_new();
  struct err e;
  struct route no_perm = {"GET", "/x", PERM_NONE, "x", "t", NULL, NULL, NULL, h, 0};
  cr_assert_lt(router_add(r, &no_perm, &e), 0);
  cr_assert(strstr(e.msg, "declares no permission") != NULL, "%s", e.msg);
  struct route ok = {"GET", "/x", PERM_PUBLIC, "x", "t", NULL, NULL, NULL, h, 0};
  cr_assert_eq(router_add(r, &ok, &e), 0);
  cr_assert_lt(router_add(r, &ok, &e), 0, "duplicates are refused");
  struct route wild_mid = {"GET", "/a/{p*}/b", PERM_PUBLIC, "x", "t", NULL, NULL, NULL, h, 0};
  cr_assert_lt(router_add(r, &wild_mid, &e), 0);
  struct route rel = {"GET", "a", PERM_PUBLIC, "x", "t", NULL, NULL, NULL, h, 0};
  cr_assert_lt(router_add(r, &rel, &e), 0);
  struct route brace = {"GET", "/a{b}", PERM_PUBLIC, "x", "t", NULL, NULL, NULL, h, 0};
  cr_assert_lt(router_add(r, &brace, &e), 0);
  router_free(r);
}

Test(router, every_system_route_declares_permission_and_schema_parses) {
  struct router *r = router_new();
  struct err e;
  cr_assert_eq(routes_register_all(r, &e), 0, "%s", e.msg);
  cr_assert_geq(router_count(r), 7);
  json_t *doc = openapi_build(r, &e);
  cr_assert_not_null(doc, "%s", e.msg);
  json_t *paths = json_object_get(doc, "paths");
  cr_assert_not_null(json_object_get(paths, "/healthz"));
  json_t *op = json_object_get(json_object_get(paths, "/api/v1/echo"), "post");
  cr_assert_str_eq(json_string_value(json_object_get(op, "x-kiln-permission")), "public");
  cr_assert_not_null(json_object_get(op, "requestBody"));
  json_decref(doc);
  sys_fini();
  router_free(r);
}

Test(router, openapi_turns_wildcards_into_path_parameters) {
  struct router *r = mk();
  struct err e;
  json_t *doc = openapi_build(r, &e);
  json_t *p = json_object_get(json_object_get(doc, "paths"), "/artifacts/{path}");
  cr_assert_not_null(p);
  json_t *params = json_object_get(json_object_get(p, "get"), "parameters");
  cr_assert_str_eq(json_string_value(json_object_get(json_array_get(params, 0), "name")), "path");
  cr_assert_not_null(json_object_get(json_object_get(json_object_get(doc, "paths"), "/api/v1/runs/{run_id}"), "delete"));
  json_decref(doc);
  router_free(r);
}

Test(router, a_bad_schema_fails_the_build) {
  struct router *r = router_new();
  struct err e;
  struct route bad = {"GET", "/x", PERM_PUBLIC, "x", "t", NULL, "{not json", NULL, h, 0};
  cr_assert_eq(router_add(r, &bad, &e), 0);
  cr_assert_null(openapi_build(r, &e));
  cr_assert(strstr(e.msg, "invalid schema") != NULL, "%s", e.msg);
  router_free(r);
}

/* Regression (found by fuzz_router_json): precedence was not a total order,
 * so a route tying with its neighbour stopped the sorted insertion early. */
Test(router, precedence_is_total_whatever_the_registration_order) {
  static const struct route t[] = {
      {"GET", "/{a}/{b}", PERM_READ, "ab", "t", NULL, NULL, NULL, h, 0},
      {"GET", "/{a}", PERM_READ, "a", "t", NULL, NULL, NULL, h, 0},
      {"GET", "/{a}/lit", PERM_READ, "lit", "t", NULL, NULL, NULL, h, 0},
  };
  struct router *r = router_new();
  struct err e;
  cr_assert_eq(router_add_table(r, t, 3, &e), 0);
  struct router_match m;
  router_match(r, "GET", "/x/lit", &m);
  cr_assert_str_eq(m.route->summary, "lit");
  router_match(r, "GET", "/x/y", &m);
  cr_assert_str_eq(m.route->summary, "ab");
  router_free(r);
}
