/* tests for the dispatch core: real routes answered in-process, no sockets. */
#include <criterion/criterion.h>
#include <string.h>

#include "http/http.h"

static struct router *R;
static struct app APP;

static void setup(void) {
  metrics_reset_all();
  http_metrics_init();
  R = router_new();
  struct err e;
  cr_assert_eq(routes_register_all(R, &e), 0, "%s", e.msg);
  APP.started_at_ms = time_wall_ms();
}

static void teardown(void) {
  sys_fini();
  router_free(R);
  metrics_reset_all();
}

static json_t *body_json(struct http_test_result *res) {
  struct err e;
  json_t *v = json_parse(res->body.data, res->body.len, &e);
  cr_assert_not_null(v, "body is not JSON: %s", res->body.data);
  return v;
}

static void expect_error(struct http_test_result *res, int status, const char *code) {
  cr_assert_eq(res->status, status, "status %d body %s", res->status, res->body.data);
  json_t *v = body_json(res);
  cr_assert_str_eq(json_string_value(json_object_get(v, "error_code")), code);
  cr_assert(json_is_string(json_object_get(v, "message")));
  json_decref(v);
}

TestSuite(dispatch, .init = setup, .fini = teardown);

Test(dispatch, healthz_and_echo) {
  struct http_test_result res;
  cr_assert_eq(http_dispatch_test(R, &APP, "GET", "/healthz", NULL, NULL, 0, 1024, &res), 0);
  cr_assert_eq(res.status, 200);
  cr_assert_str_eq(res.body.data, "{\"status\":\"ok\"}");
  cr_assert_str_eq(res.content_type, "application/json");
  buf_fini(&res.body);
  const char *doc = "{\"a\":[1,2,{\"b\":\"\\u00e9\"}],\"n\":12345678901234}";
  cr_assert_eq(http_dispatch_test(R, &APP, "POST", "/api/v1/echo", NULL, doc, strlen(doc), 1024, &res), 0);
  cr_assert_eq(res.status, 200);
  struct err e;
  json_t *in = json_parse(doc, strlen(doc), &e), *out = body_json(&res);
  cr_assert(json_equal(in, out));
  json_decref(in);
  json_decref(out);
  buf_fini(&res.body);
}

Test(dispatch, errors_are_json_with_stable_codes) {
  struct http_test_result res;
  http_dispatch_test(R, &APP, "GET", "/api/v1/nothing", NULL, NULL, 0, 1024, &res);
  expect_error(&res, 404, "ENDPOINT_NOT_FOUND");
  buf_fini(&res.body);
  http_dispatch_test(R, &APP, "DELETE", "/healthz", NULL, NULL, 0, 1024, &res);
  expect_error(&res, 405, "METHOD_NOT_ALLOWED");
  cr_assert_str_eq(res.allow, "GET, HEAD");
  buf_fini(&res.body);
  http_dispatch_test(R, &APP, "POST", "/api/v1/echo", NULL, "{\"a\":", 5, 1024, &res);
  expect_error(&res, 400, "MALFORMED_REQUEST");
  cr_assert(strstr(res.body.data, "byte 5") != NULL, "%s", res.body.data);
  buf_fini(&res.body);
  char big[2048];
  memset(big, ' ', sizeof big);
  http_dispatch_test(R, &APP, "POST", "/api/v1/echo", NULL, big, sizeof big, 1024, &res);
  expect_error(&res, 413, "PAYLOAD_TOO_LARGE");
  buf_fini(&res.body);
}

Test(dispatch, readyz_without_store_is_not_ready) {
  struct http_test_result res;
  http_dispatch_test(R, &APP, "GET", "/readyz", NULL, NULL, 0, 1024, &res);
  expect_error(&res, 503, "NOT_READY");
  buf_fini(&res.body);
}

Test(dispatch, dashboard_fallback_and_missing_assets) {
  struct http_test_result res;
  http_dispatch_test(R, &APP, "GET", "/experiments/12", NULL, NULL, 0, 1024, &res);
  cr_assert_eq(res.status, 200);
  cr_assert(str_has_prefix(res.content_type, "text/html"));
  buf_fini(&res.body);
  http_dispatch_test(R, &APP, "GET", "/assets/missing-abc.js", NULL, NULL, 0, 1024, &res);
  expect_error(&res, 404, "RESOURCE_DOES_NOT_EXIST");
  buf_fini(&res.body);
  http_dispatch_test(R, &APP, "POST", "/experiments/12", NULL, NULL, 0, 1024, &res);
  expect_error(&res, 404, "ENDPOINT_NOT_FOUND");
  buf_fini(&res.body);
}

Test(dispatch, metrics_count_by_route_pattern) {
  struct http_test_result res;
  for (int i = 0; i < 3; i++) {
    http_dispatch_test(R, &APP, "GET", "/healthz", NULL, NULL, 0, 1024, &res);
    buf_fini(&res.body);
  }
  http_dispatch_test(R, &APP, "GET", "/api/v1/x/1", NULL, NULL, 0, 1024, &res);
  buf_fini(&res.body);
  http_dispatch_test(R, &APP, "GET", "/metrics", NULL, NULL, 0, 1024, &res);
  cr_assert_eq(res.status, 200);
  cr_assert(strstr(res.body.data, "kiln_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 3\n") != NULL, "%s", res.body.data);
  cr_assert(strstr(res.body.data, "route=\"unmatched\",status=\"404\"} 1\n") != NULL);
  cr_assert(strstr(res.body.data, "/api/v1/x/1") == NULL, "raw paths never become labels");
  buf_fini(&res.body);
}

Test(dispatch, static_content_types_and_encodings) {
  cr_assert_str_eq(static_content_type("/a/b.js"), "text/javascript; charset=utf-8");
  cr_assert_str_eq(static_content_type("/index.html"), "text/html; charset=utf-8");
  cr_assert_str_eq(static_content_type("/x.svg"), "image/svg+xml");
  cr_assert_str_eq(static_content_type("/dir.v1/file"), "application/octet-stream");
}
