/* tests for live replies (http/live.c) through the in-process dispatch: a
 * producer's bytes in order, parking on 0, wakes from another thread, and
 * done running exactly once whether the reply is sent, replaced or dropped. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "http/http.h"

struct producer {
  int step, dones, pulls_empty;
  struct http_live *live;
};
static struct producer P;

static ssize_t pull(void *ctx, char *buf, size_t max) {
  struct producer *p = ctx;
  static const char *const parts[] = {"data: one\n\n", NULL, "data: two\n\n"};
  if (p->step == 3) return HTTP_LIVE_END;
  const char *s = parts[p->step++];
  if (!s) { /* nothing this time: the transport parks */
    p->pulls_empty++;
    return 0;
  }
  size_t n = strlen(s) < max ? strlen(s) : max;
  memcpy(buf, s, n);
  return (ssize_t)n;
}

static void done(void *ctx) { ((struct producer *)ctx)->dones++; }

static int h_live(struct req *rq, struct reply *rp) {
  (void)rq;
  reply_live(rp, 200, "text/event-stream", pull, done, &P, &P.live);
  http_live_wake(P.live); /* before it is sent: harmless */
  reply_header(rp, "Cache-Control", "no-store");
  return 0;
}

static int h_replaced(struct req *rq, struct reply *rp) {
  (void)rq;
  struct http_live *l;
  reply_live(rp, 200, "text/event-stream", pull, done, &P, &l);
  return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "changed my mind"); /* drops the live body */
}

static const struct route routes[] = {
    {"GET", "/live", PERM_PUBLIC, "live", "t", NULL, NULL, "text/event-stream", h_live, 0, NULL},
    {"GET", "/replaced", PERM_PUBLIC, "replaced", "t", NULL, NULL, NULL, h_replaced, 0, NULL},
};

static struct router *R;
static struct app APP;

static void setup(void) {
  memset(&P, 0, sizeof P);
  R = router_new();
  struct err e;
  cr_assert_eq(router_add_table(R, routes, 2, &e), 0, "%s", e.msg);
}

static void teardown(void) { router_free(R); }

TestSuite(http_live, .init = setup, .fini = teardown);

Test(http_live, body_in_order_and_done_once) {
  struct http_test_result res;
  cr_assert_eq(http_dispatch_test(R, &APP, "GET", "/live", NULL, NULL, 0, 1024, &res), 0);
  cr_assert_eq(res.status, 200);
  cr_assert_str_eq(res.content_type, "text/event-stream");
  cr_assert_eq(res.body.len, strlen("data: one\n\ndata: two\n\n"));
  cr_assert(memcmp(res.body.data, "data: one\n\ndata: two\n\n", res.body.len) == 0);
  cr_assert_eq(P.pulls_empty, 1);
  cr_assert_eq(P.dones, 1);
  buf_fini(&res.body);
}

Test(http_live, replaced_reply_releases_the_producer) {
  struct http_test_result res;
  cr_assert_eq(http_dispatch_test(R, &APP, "GET", "/replaced", NULL, NULL, 0, 1024, &res), 0);
  cr_assert_eq(res.status, 400);
  cr_assert_eq(P.dones, 1);
  cr_assert_eq(P.step, 0);
  buf_fini(&res.body);
}
