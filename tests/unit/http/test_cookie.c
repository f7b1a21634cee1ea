/* tests for req_cookie: the Cookie header parser (RFC 6265 syntax), through
 * a route that echoes what it finds. */
#include <criterion/criterion.h>
#include <string.h>

#include "http/http.h"

static struct router *R;
static struct app APP;

static int h_cookie(struct req *rq, struct reply *rp) {
  char v[16];
  const char *name = req_query(rq, "name");
  if (!req_cookie(rq, name ? name : "a", v, sizeof v)) return reply_bytes(rp, 404, "text/plain", "-", 1, true);
  return reply_bytes(rp, 200, "text/plain", v, strlen(v), false);
}

static const struct route cookie_route = {"GET", "/t/cookie", PERM_PUBLIC, "echo a cookie", "test", NULL,
                                          NULL, "text/plain", h_cookie, 0, NULL};

static void setup(void) {
  metrics_reset_all();
  http_metrics_init();
  R = router_new();
  struct err e;
  cr_assert_eq(router_add(R, &cookie_route, &e), 0, "%s", e.msg);
}

static void teardown(void) {
  router_free(R);
  metrics_reset_all();
}

TestSuite(req_cookie, .init = setup, .fini = teardown);

/* The value found for `name` in `header`, or "-" when none. */
static void expect(const char *header, const char *name, const char *want) {
  char url[64], h[512];
  snprintf(url, sizeof url, "/t/cookie?name=%s", name);
  snprintf(h, sizeof h, "Cookie: %s", header);
  const char *headers[] = {h, NULL};
  struct http_test_result res;
  cr_assert_eq(http_dispatch_test(R, &APP, "GET", url, header ? headers : NULL, NULL, 0, 1024, &res), 0);
  cr_assert_str_eq(res.body.data ? res.body.data : "", want, "Cookie: %s -> %s: got %s", header, name,
                   res.body.data);
  cr_assert_eq(res.status, str_eq(want, "-") ? 404 : 200);
  buf_fini(&res.body);
}

Test(req_cookie, finds_a_pair_among_others) {
  expect("a=1", "a", "1");
  expect("x=9; a=2; b=3", "a", "2");
  expect("x=9;a=3", "a", "3");
  expect("  a=4  ; b=5", "a", "4");
  expect("b=5; a=6", "b", "5");
  expect("a=\"quoted\"", "a", "quoted");
  expect("a=", "a", "");
  expect("a=1; a=2", "a", "1"); /* the first wins, as browsers order the most specific first */
}

Test(req_cookie, names_match_exactly) {
  expect("aa=1; ba=2", "a", "-");
  expect("A=1", "a", "-");
  expect("xa=1", "a", "-");
  expect(NULL, "a", "-");
  expect("", "a", "-");
}

Test(req_cookie, malformed_or_oversized_values_are_absent) {
  expect("a", "a", "-");             /* no '=' */
  expect("a=x y", "a", "-");         /* space inside */
  expect("a=x,y", "a", "-");         /* comma */
  expect("a=x\\y", "a", "-");        /* backslash */
  expect("a=\"x", "a", "-");         /* an unbalanced quote */
  expect("a=0123456789abcdef", "a", "-"); /* 16 chars do not fit 16 bytes with the NUL */
  expect("a=0123456789abcde", "a", "0123456789abcde");
  expect("junk; ;;=; a=7", "a", "7");
}
