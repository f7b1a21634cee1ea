/* tests for streamed request bodies (ROUTE_STREAM_BODY), streamed replies
 * and Range parsing, in-process through http_dispatch_test_opts. */
#include <criterion/criterion.h>
#include <string.h>

#include "http/http.h"

/* What the test route saw. */
static struct {
  int begins, chunks, ends, aborts;
  size_t bytes, largest;
  uint64_t announced;
  bool refuse;    /* begin refuses */
  size_t fail_at; /* chunk fails once this many bytes arrived (0: never) */
} seen;

static int t_begin(struct req *rq, struct reply *rp, uint64_t len, void **state) {
  (void)rq;
  seen.begins++;
  seen.announced = len;
  if (seen.refuse) return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "refused"), -1;
  *state = &seen;
  return 0;
}
static int t_chunk(struct req *rq, struct reply *rp, void *state, const char *p, size_t n) {
  (void)rq;
  (void)p;
  cr_assert_eq(state, &seen);
  seen.chunks++;
  seen.bytes += n;
  if (n > seen.largest) seen.largest = n;
  if (seen.fail_at && seen.bytes >= seen.fail_at) return reply_errf(rp, ERR_IO, "disk full"), -1;
  return 0;
}
static int t_end(struct req *rq, struct reply *rp, void *state) {
  (void)rq;
  cr_assert_eq(state, &seen);
  seen.ends++;
  return reply_json(rp, 200, json_pack("{s:I}", "bytes", (json_int_t)seen.bytes));
}
static void t_abort(struct req *rq, void *state) {
  (void)rq;
  cr_assert_eq(state, &seen);
  seen.aborts++;
}
static const struct route_stream t_stream = {t_begin, t_chunk, t_end, t_abort};

/* A streamed reply: bytes i % 251, produced 1000 at a time. */
static int done_calls;
static ssize_t t_read(void *ctx, uint64_t pos, char *buf, size_t max) {
  uint64_t len = *(uint64_t *)ctx;
  if (pos >= len) return REPLY_STREAM_END;
  size_t n = max < 1000 ? max : 1000;
  if (n > len - pos) n = (size_t)(len - pos);
  for (size_t i = 0; i < n; i++) buf[i] = (char)((pos + i) % 251);
  return (ssize_t)n;
}
static void t_done(void *ctx) {
  (void)ctx;
  done_calls++;
}
static uint64_t dl_len = 300000;
static int t_download(struct req *rq, struct reply *rp) {
  (void)rq;
  return reply_stream(rp, 200, "application/octet-stream", dl_len, t_read, t_done, &dl_len);
}
static int t_replaced(struct req *rq, struct reply *rp) {
  (void)rq;
  reply_stream(rp, 200, "application/octet-stream", dl_len, t_read, t_done, &dl_len);
  return reply_errf(rp, ERR_IO, "changed my mind"); /* the stream is released */
}

static const struct route routes[] = {
    {"PUT", "/t/up/{path*}", PERM_PUBLIC, "upload", "t", NULL, NULL, NULL, NULL, ROUTE_STREAM_BODY, NULL, &t_stream},
    {"PUT", "/t/private", PERM_WRITE, "upload", "t", NULL, NULL, NULL, NULL, ROUTE_STREAM_BODY, NULL, &t_stream},
    {"GET", "/t/down", PERM_PUBLIC, "download", "t", NULL, NULL, "application/octet-stream", t_download, 0, NULL, NULL},
    {"GET", "/t/replaced", PERM_PUBLIC, "download", "t", NULL, NULL, NULL, t_replaced, 0, NULL, NULL},
};

static struct router *R;
static struct app APP;

static void setup(void) {
  metrics_reset_all();
  http_metrics_init();
  R = router_new();
  struct err e;
  cr_assert_eq(router_add_table(R, routes, sizeof routes / sizeof routes[0], &e), 0, "%s", e.msg);
  memset(&seen, 0, sizeof seen);
  done_calls = 0;
}
static void teardown(void) {
  router_free(R);
  metrics_reset_all();
}
TestSuite(stream, .init = setup, .fini = teardown);

static int put(const char *url, const char *const *h, size_t len, size_t chunk, uint64_t max,
               struct http_test_result *res) {
  char *body = malloc(len ? len : 1);
  memset(body, 'x', len);
  struct http_test_opts o = {.max_body = 1024, .max_stream_body = max, .chunk = chunk};
  int rc = http_dispatch_test_opts(R, &APP, "PUT", url, h, body, len, &o, res);
  free(body);
  return rc;
}

Test(stream, body_arrives_in_chunks_past_max_body) {
  struct http_test_result res;
  cr_assert_eq(put("/t/up/a/b", NULL, 100000, 4096, 0, &res), 0);
  cr_assert_eq(res.status, 200, "%s", res.body.data);
  cr_assert_str_eq(res.body.data, "{\"bytes\":100000}");
  cr_assert_eq(seen.begins, 1);
  cr_assert_eq(seen.ends, 1);
  cr_assert_eq(seen.aborts, 0);
  cr_assert_eq(seen.chunks, 25);
  cr_assert_eq(seen.largest, 4096);
  cr_assert_eq(seen.announced, 100000);
  cr_assert(strstr(res.headers, "X-Request-Id: ") != NULL);
  buf_fini(&res.body);
}

Test(stream, empty_body_still_begins_and_ends) {
  struct http_test_result res;
  cr_assert_eq(put("/t/up/x", NULL, 0, 0, 0, &res), 0);
  cr_assert_eq(res.status, 200);
  cr_assert_eq(seen.begins, 1);
  cr_assert_eq(seen.chunks, 0);
  cr_assert_eq(seen.ends, 1);
  buf_fini(&res.body);
}

Test(stream, announced_length_over_the_limit_is_refused_before_begin) {
  struct http_test_result res;
  cr_assert_eq(put("/t/up/x", NULL, 5000, 100, 4096, &res), 0);
  cr_assert_eq(res.status, 413);
  cr_assert(strstr(res.body.data, "PAYLOAD_TOO_LARGE") != NULL);
  cr_assert_eq(seen.begins, 0);
  cr_assert_eq(seen.chunks, 0);
  buf_fini(&res.body);
}

Test(stream, chunked_body_over_the_limit_aborts_mid_stream) {
  const char *h[] = {"Transfer-Encoding: chunked", NULL};
  struct http_test_result res;
  cr_assert_eq(put("/t/up/x", h, 5000, 1000, 4096, &res), 0);
  cr_assert_eq(res.status, 413, "%s", res.body.data);
  cr_assert_eq(seen.announced, HTTP_LEN_UNKNOWN);
  cr_assert_eq(seen.begins, 1);
  cr_assert_eq(seen.chunks, 4); /* 4000 bytes accepted, the fifth piece crosses */
  cr_assert_eq(seen.aborts, 1);
  cr_assert_eq(seen.ends, 0);
  buf_fini(&res.body);
  /* exactly at the limit passes */
  memset(&seen, 0, sizeof seen);
  cr_assert_eq(put("/t/up/x", h, 4096, 1000, 4096, &res), 0);
  cr_assert_eq(res.status, 200);
  buf_fini(&res.body);
}

Test(stream, access_is_checked_before_begin) {
  struct http_test_result res;
  /* no identity configured: a PERM_WRITE route is refused, unread */
  cr_assert_eq(put("/t/private", NULL, 1000, 100, 0, &res), 0);
  cr_assert_eq(res.status, 503, "%s", res.body.data);
  cr_assert_eq(seen.begins + seen.chunks + seen.ends + seen.aborts, 0);
  buf_fini(&res.body);
}

Test(stream, begin_and_chunk_refusals) {
  struct http_test_result res;
  seen.refuse = true;
  cr_assert_eq(put("/t/up/x", NULL, 1000, 100, 0, &res), 0);
  cr_assert_eq(res.status, 400);
  cr_assert_eq(seen.chunks, 0);
  cr_assert_eq(seen.aborts, 0);
  buf_fini(&res.body);
  memset(&seen, 0, sizeof seen);
  seen.fail_at = 300;
  cr_assert_eq(put("/t/up/x", NULL, 1000, 100, 0, &res), 0);
  cr_assert_eq(res.status, 500);
  cr_assert(strstr(res.body.data, "disk full") != NULL);
  cr_assert_eq(seen.chunks, 3);
  cr_assert_eq(seen.aborts, 1);
  cr_assert_eq(seen.ends, 0);
  buf_fini(&res.body);
}

Test(stream, streamed_reply_is_read_to_its_length) {
  struct http_test_result res;
  cr_assert_eq(http_dispatch_test(R, &APP, "GET", "/t/down", NULL, NULL, 0, 1024, &res), 0);
  cr_assert_eq(res.status, 200);
  cr_assert_eq(res.body.len, 300000);
  cr_assert(!res.truncated);
  for (size_t i = 0; i < res.body.len; i++) cr_assert_eq((unsigned char)res.body.data[i], i % 251);
  cr_assert_eq(done_calls, 1);
  buf_fini(&res.body);
  /* a stream replaced by an error is released, once */
  cr_assert_eq(http_dispatch_test(R, &APP, "GET", "/t/replaced", NULL, NULL, 0, 1024, &res), 0);
  cr_assert_eq(res.status, 500);
  cr_assert_eq(done_calls, 2);
  buf_fini(&res.body);
}

Test(stream, stream_routes_need_hooks) {
  struct route bad = {"PUT", "/t/bad", PERM_PUBLIC, "x", "t", NULL, NULL, NULL, NULL, ROUTE_STREAM_BODY, NULL, NULL};
  struct err e;
  cr_assert_neq(router_add(R, &bad, &e), 0);
}

Test(stream, range_parse) {
  struct {
    const char *v;
    uint64_t size;
    enum http_range_kind k;
    uint64_t first, last;
  } cases[] = {
      {NULL, 10, HTTP_RANGE_NONE, 0, 0},
      {"bytes=0-4", 10, HTTP_RANGE_OK, 0, 4},
      {"bytes=3-", 10, HTTP_RANGE_OK, 3, 9},
      {"bytes=-3", 10, HTTP_RANGE_OK, 7, 9},
      {"bytes=-30", 10, HTTP_RANGE_OK, 0, 9},
      {"bytes=5-500", 10, HTTP_RANGE_OK, 5, 9},
      {"Bytes = 1-2 ", 10, HTTP_RANGE_OK, 1, 2},
      {"bytes=9-9", 10, HTTP_RANGE_OK, 9, 9},
      {"bytes=10-", 10, HTTP_RANGE_UNSATISFIABLE, 0, 0},
      {"bytes=10-20", 10, HTTP_RANGE_UNSATISFIABLE, 0, 0},
      {"bytes=-0", 10, HTTP_RANGE_UNSATISFIABLE, 0, 0},
      {"bytes=0-", 0, HTTP_RANGE_UNSATISFIABLE, 0, 0},
      {"bytes=-5", 0, HTTP_RANGE_UNSATISFIABLE, 0, 0},
      {"bytes=4-2", 10, HTTP_RANGE_NONE, 0, 0},
      {"bytes=0-1,3-4", 10, HTTP_RANGE_NONE, 0, 0},
      {"items=0-1", 10, HTTP_RANGE_NONE, 0, 0},
      {"bytes=", 10, HTTP_RANGE_NONE, 0, 0},
      {"bytes=-", 10, HTTP_RANGE_NONE, 0, 0},
      {"bytes=a-b", 10, HTTP_RANGE_NONE, 0, 0},
      {"bytes=1-2x", 10, HTTP_RANGE_NONE, 0, 0},
      {"bytes=+1-2", 10, HTTP_RANGE_NONE, 0, 0},
      {"bytes=99999999999999999999999-", 10, HTTP_RANGE_NONE, 0, 0},
      {"bytes=18446744073709551614-", UINT64_MAX, HTTP_RANGE_OK, 18446744073709551614ull, UINT64_MAX - 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint64_t f = 77, l = 77;
    enum http_range_kind k = http_range_parse(cases[i].v, cases[i].size, &f, &l);
    cr_assert_eq(k, cases[i].k, "case %zu (%s): kind %d", i, cases[i].v ? cases[i].v : "NULL", k);
    if (k == HTTP_RANGE_OK) {
      cr_assert_eq(f, cases[i].first, "case %zu first %llu", i, (unsigned long long)f);
      cr_assert_eq(l, cases[i].last, "case %zu last %llu", i, (unsigned long long)l);
    }
  }
}
