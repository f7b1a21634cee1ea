/* tests for track/emit: numbers written exactly as jansson writes them
 * (the oracle is jansson itself, over edge cases and millions of random
 * doubles), and the hand-written metric history answer byte for byte equal
 * to the jansson-built one on a seeded store (NaN, +-inf, ties, paging,
 * missing keys and runs). */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store_fixture.h"
#include "track/internal.h"

static void jansson_real(double v, char *out, size_t cap) {
  json_t *j = json_real(v);
  struct buf b;
  buf_init(&b);
  cr_assert_eq(json_emit(&b, j), 0);
  snprintf(out, cap, "%s", b.data);
  buf_fini(&b);
  json_decref(j);
}

static void same_as_jansson(double v) {
  char want[64], got[TRK_FMT_REAL_MAX + 8];
  jansson_real(v, want, sizeof want);
  size_t n = track_fmt_real(got, v);
  cr_assert_eq(n, strlen(got));
  cr_assert_str_eq(got, want, "%a: got %s, jansson %s", v, got, want);
}

static uint64_t rng = 0x243F6A8885A308D3ULL;
static uint64_t next_u64(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

Test(track_emit, reals_match_jansson_on_edge_cases) {
  const double v[] = {0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 0.75, 1e-4, 1e-5, 9.9999999999999991e-5, 1e-6, 1e-7,
                      123456789.0, 1e15, 1e16, 1e17, 9007199254740993.0, 1e21, 1e22, 1e23, 1e300, DBL_MAX,
                      -DBL_MAX, DBL_MIN, 5e-324, 2.5, 0.3, 1.0 / 3, 2.0 / 3, 100.0, 1e-300, 4.35, 0.995,
                      99999999999999999.0, 0.000123456789012345678, 3.141592653589793, 12345.678};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    same_as_jansson(v[i]);
    same_as_jansson(-v[i]);
  }
  /* every power of ten and its neighbours, where log10 guesses go wrong */
  for (int p = -320; p <= 308; p++) {
    double x = pow(10, p);
    same_as_jansson(x);
    same_as_jansson(nextafter(x, 0));
    same_as_jansson(nextafter(x, INFINITY));
  }
}

Test(track_emit, reals_match_jansson_on_random_doubles) {
  for (int i = 0; i < 300000; i++) {
    /* any bit pattern (NaN and inf excluded: they never reach the formatter) */
    uint64_t u = next_u64();
    double d;
    memcpy(&d, &u, sizeof d);
    if (isfinite(d)) same_as_jansson(d);
    /* metric-like values: uniform in [0, 1) and scaled across magnitudes */
    double r = (double)(next_u64() >> 11) / 9007199254740992.0;
    same_as_jansson(r);
    same_as_jansson(r * pow(10, (int)(next_u64() % 30) - 10));
    /* few-digit decimals, where ties in the 17th digit are likeliest */
    same_as_jansson((double)(next_u64() % 100000) / 1000.0);
  }
}

Test(track_emit, integers) {
  char b[24];
  const int64_t v[] = {0, 1, -1, 9, 10, 1795442232643LL, INT64_MAX, INT64_MIN};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    char want[32];
    snprintf(want, sizeof want, "%lld", (long long)v[i]);
    track_fmt_i64(b, v[i]);
    cr_assert_str_eq(b, want);
  }
}

/* ---- the history answer against the jansson-built one ------------------------------- */
static char dir[64];
static struct db *db;
#define P1 "aaaa0000000000000000000000000001"

static void setup(void) { store_fixture_open("kiln-emit", dir, &db); }

static void teardown(void) { store_fixture_close(dir, db); }

/* What the handler sent before: {"metrics": <track_metric_history>, "next_page_token"}. */
static char *old_answer(const char *run, const char *key, int64_t max, const char *tok, int *rc) {
  struct err e;
  char next[TRACKING_PAGE_TOKEN_MAX];
  json_t *arr = track_metric_history(db, P1, run, key, max, tok, next, &e);
  if (!arr) {
    *rc = -(int)e.code;
    return strdup(e.msg);
  }
  *rc = 0;
  json_t *o = json_object();
  if (json_array_size(arr)) json_object_set_new(o, "metrics", arr);
  else json_decref(arr);
  if (next[0]) json_object_set_new(o, "next_page_token", json_string(next));
  struct buf b;
  buf_init(&b);
  cr_assert_eq(json_emit(&b, o), 0);
  json_decref(o);
  return buf_steal(&b);
}

static char *new_answer(const char *run, const char *key, int64_t max, const char *tok, int *rc) {
  struct err e;
  struct buf b;
  buf_init(&b);
  *rc = track_metric_history_write(db, P1, run, key, max, tok, &b, &e);
  if (*rc) {
    buf_fini(&b);
    return strdup(e.msg);
  }
  return buf_steal(&b);
}

static void compare(const char *run, const char *key, int64_t max, const char *tok) {
  int rc1, rc2;
  char *a = old_answer(run, key, max, tok, &rc1), *b = new_answer(run, key, max, tok, &rc2);
  cr_assert_eq(rc1, rc2, "%s / %s", a, b);
  cr_assert_str_eq(b, a, "key %s max %lld", key, (long long)max);
  free(a);
  free(b);
}

TestSuite(track_emit_history, .init = setup, .fini = teardown);

Test(track_emit_history, same_bytes_as_the_jansson_answer) {
  struct err e;
  int64_t exp;
  cr_assert_eq(track_experiment_create(db, P1, "emit", NULL, NULL, 0, &exp, &e), 0, "%s", e.msg);
  char exps[24];
  snprintf(exps, sizeof exps, "%lld", (long long)exp);
  struct track_run_new in = {.experiment_id = exps, .user_id = "t"};
  json_t *r = track_run_create(db, P1, &in, &e);
  cr_assert_not_null(r, "%s", e.msg);
  char run[40];
  str_copy(run, sizeof run, json_string_value(json_object_get(json_object_get(r, "info"), "run_id")));
  json_decref(r);
  static struct track_metric m[1000];
  const double special[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 1e-7, 1e300, 0.1, -2.5};
  for (int i = 0; i < 1000; i++) {
    double v = i < 9 ? special[i] : (double)(next_u64() >> 11) / 9007199254740992.0 * (i % 7 - 3);
    /* ties: the same step at several timestamps, and the same (step, timestamp) */
    m[i] = (struct track_metric){i % 2 ? "a key/with spaces:\xc3\xa9-x" : "loss", v, 1000 + i % 5, i / 3};
  }
  struct track_batch b = {.metrics = m, .nmetrics = 1000};
  cr_assert_eq(track_log_batch(db, P1, run, &b, &e), 0, "%s", e.msg);
  const char *keys[] = {"loss", "a key/with spaces:\xc3\xa9-x", "missing"};
  for (int k = 0; k < 3; k++) {
    compare(run, keys[k], 0, NULL);
    compare(run, keys[k], 7, NULL);
    compare(run, keys[k], 500, NULL);
    compare(run, keys[k], 501, NULL);
    compare(run, keys[k], 1000, NULL);
    char tok[TRACKING_PAGE_TOKEN_MAX];
    track_page_token_encode(493, tok);
    compare(run, keys[k], 7, tok);
    compare(run, keys[k], 0, tok);
    track_page_token_encode(5000, tok);
    compare(run, keys[k], 7, tok);
  }
  compare("ffffffffffffffffffffffffffffffff", "loss", 0, NULL); /* no such run */
  compare(run, "loss", -1, NULL);                             /* bad max_results */
  compare(run, "loss", 3, "not a token");
}
