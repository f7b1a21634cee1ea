/* tests/unit/track/test_series: the chunked metric history — appends,
 * tail merges, out-of-order merges, deduplication, paging across chunks,
 * one-point (migrated) chunks and a damaged chunk. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store_fixture.h"
#include "track/internal.h"

static char dir[64];
static struct db *db;

#define P1 "eeee0000000000000000000000000001"

static void setup(void) { store_fixture_open("kiln-trks", dir, &db); }
static void teardown(void) { store_fixture_close(dir, db); }

TestSuite(track_series, .init = setup, .fini = teardown);

static char *new_run(void) {
  static int nexp;
  struct err e;
  int64_t id;
  char name[32];
  snprintf(name, sizeof name, "series-%d", nexp++);
  cr_assert_eq(track_experiment_create(db, P1, name, NULL, NULL, 0, &id, &e), 0, "%s", e.msg);
  char exp[24];
  snprintf(exp, sizeof exp, "%lld", (long long)id);
  struct track_run_new in = {.experiment_id = exp, .user_id = "tester"};
  json_t *run = track_run_create(db, P1, &in, &e);
  cr_assert_not_null(run, "%s", e.msg);
  char *rid = strdup(json_string_value(json_object_get(json_object_get(run, "info"), "run_id")));
  json_decref(run);
  return rid;
}

static void log_points(const char *run, const struct track_metric *m, int n) {
  struct err e;
  struct track_batch b = {.metrics = (struct track_metric *)m, .nmetrics = n};
  cr_assert_eq(track_log_batch(db, P1, run, &b, &e), 0, "%s", e.msg);
}

static int64_t scalar(const char *sql, const char *run) {
  struct err e;
  struct db_conn *c = db_reader_acquire(db, &e);
  struct db_stmt *s = db_prepare(c, sql, &e);
  cr_assert_not_null(s, "%s", e.msg);
  if (run) db_bind_text(s, 1, run);
  cr_assert_eq(db_step(s, &e), DB_ROW, "%s", e.msg);
  int64_t n = db_col_i64(s, 0);
  db_stmt_done(s);
  db_reader_release(db, c);
  return n;
}

static int64_t chunks(const char *run) {
  return scalar("SELECT COUNT(*) FROM metric_chunks WHERE run_uuid = ?", run);
}

/* the whole history of key through the API, one page */
static json_t *history(const char *run, const char *key) {
  struct err e;
  char next[TRACKING_PAGE_TOKEN_MAX];
  json_t *h = track_metric_history(db, P1, run, key, 0, NULL, next, &e);
  cr_assert_not_null(h, "%s", e.msg);
  cr_assert_str_empty(next);
  return h;
}

static int64_t step_at(json_t *h, size_t i) { return json_integer_value(json_object_get(json_array_get(h, i), "step")); }
static double value_at(json_t *h, size_t i) { return json_number_value(json_object_get(json_array_get(h, i), "value")); }

Test(track_series, batches_in_order_append_a_few_chunks) {
  char *run = new_run();
  struct track_metric m[100];
  for (int call = 0; call < 100; call++) {
    for (int i = 0; i < 100; i++) m[i] = (struct track_metric){"loss", (call * 100 + i) * 0.5, 1000 + call, call * 100 + i};
    log_points(run, m, 100);
  }
  json_t *h = history(run, "loss");
  cr_assert_eq(json_array_size(h), 10000);
  for (size_t i = 0; i < 10000; i++) {
    cr_assert_eq(step_at(h, i), (int64_t)i);
    cr_assert_float_eq(value_at(h, i), i * 0.5, 1e-12);
  }
  json_decref(h);
  /* a call's 100 points of the key are one row: 100 rows, not 10,000 */
  cr_assert_eq(chunks(run), 100);
  cr_assert_eq(scalar("SELECT SUM(n) FROM metric_chunks WHERE run_uuid = ?", run), 10000);
  free(run);
}

Test(track_series, small_calls_fill_the_tail_chunk) {
  char *run = new_run();
  for (int i = 0; i < 300; i++) {
    struct track_metric m = {"acc", i, 5000 + i, i};
    log_points(run, &m, 1);
  }
  cr_assert_eq(chunks(run), 3); /* 128 + 128 + 44 */
  struct track_metric few[63];
  for (int i = 0; i < 63; i++) few[i] = (struct track_metric){"acc", i, 9000 + i, 300 + i};
  log_points(run, few, 63); /* fewer than 64: into the 44-point tail */
  cr_assert_eq(chunks(run), 3);
  for (int i = 0; i < 63; i++) few[i] = (struct track_metric){"acc", i, 9000 + i, 363 + i};
  log_points(run, few, 63); /* the tail holds 107 < 128: merged again, 170 */
  cr_assert_eq(chunks(run), 3);
  struct track_metric one = {"acc", 1, 1, 426};
  log_points(run, &one, 1); /* a full tail: a new chunk */
  cr_assert_eq(chunks(run), 4);
  cr_assert_eq(scalar("SELECT MAX(n) FROM metric_chunks WHERE run_uuid = ?", run), 170);
  json_t *h = history(run, "acc");
  cr_assert_eq(json_array_size(h), 427);
  for (size_t i = 0; i < 427; i++) cr_assert_eq(step_at(h, i), (int64_t)i);
  json_decref(h);
  free(run);
}

Test(track_series, out_of_order_points_merge_and_repeats_are_kept_once) {
  char *run = new_run();
  struct track_metric m[1000];
  for (int i = 0; i < 1000; i++) m[i] = (struct track_metric){"x", i, 7, 2 * i}; /* even steps */
  log_points(run, m, 1000);
  for (int i = 0; i < 1000; i++) m[i] = (struct track_metric){"x", i, 7, 2 * (999 - i) + 1}; /* odd, descending */
  log_points(run, m, 1000);
  for (int i = 0; i < 1000; i++) m[i] = (struct track_metric){"x", i, 7, 2 * i}; /* the first call again */
  log_points(run, m, 1000);
  json_t *h = history(run, "x");
  cr_assert_eq(json_array_size(h), 2000);
  for (size_t i = 0; i < 2000; i++) cr_assert_eq(step_at(h, i), (int64_t)i);
  json_decref(h);
  cr_assert_eq(chunks(run), 2); /* 1024 + 976 */
  /* a replayed call adds nothing */
  cr_assert_eq(scalar("SELECT SUM(n) FROM metric_chunks WHERE run_uuid = ?", run), 2000);
  cr_assert_eq(scalar("SELECT MAX(n) FROM metric_chunks WHERE run_uuid = ?", run), TRACK_SERIES_CHUNK_MAX);
  free(run);
}

Test(track_series, a_point_inside_an_old_range_and_different_values_at_one_step) {
  char *run = new_run();
  struct track_metric m[3] = {{"k", 1, 10, 0}, {"k", 3, 30, 2}, {"k", 1, 10, 0}};
  log_points(run, m, 3); /* the repeat within the call is one point */
  struct track_metric mid[2] = {{"k", 2, 20, 1}, {"k", 1.5, 10, 0}}; /* into the gap; same step+time, other value */
  log_points(run, mid, 2);
  json_t *h = history(run, "k");
  cr_assert_eq(json_array_size(h), 4);
  double want_v[] = {1, 1.5, 2, 3};
  int64_t want_s[] = {0, 0, 1, 2};
  for (size_t i = 0; i < 4; i++) {
    cr_assert_eq(step_at(h, i), want_s[i]);
    cr_assert_float_eq(value_at(h, i), want_v[i], 1e-12);
  }
  json_decref(h);
  cr_assert_eq(chunks(run), 1);
  free(run);
}

Test(track_series, nan_infinities_and_extreme_steps_round_trip) {
  char *run = new_run();
  struct track_metric m[6] = {
      {"v", NAN, 0, INT64_MIN}, {"v", INFINITY, INT64_MAX, -1}, {"v", -INFINITY, 1, 0},
      {"v", -0.0, 2, 1},        {"v", 1e-300, 3, INT64_MAX},    {"v", -2.5, 4, 2},
  };
  log_points(run, m, 6);
  json_t *h = history(run, "v");
  cr_assert_eq(json_array_size(h), 6);
  cr_assert_eq(step_at(h, 0), INT64_MIN);
  cr_assert_str_eq(json_string_value(json_object_get(json_array_get(h, 0), "value")), "NaN");
  cr_assert_eq(step_at(h, 1), -1);
  cr_assert_eq(json_integer_value(json_object_get(json_array_get(h, 1), "timestamp")), INT64_MAX);
  cr_assert_eq(value_at(h, 1), DBL_MAX);
  cr_assert_eq(value_at(h, 2), -DBL_MAX);
  cr_assert_eq(value_at(h, 3), 0);
  cr_assert_eq(value_at(h, 4), -2.5);
  cr_assert_eq(step_at(h, 5), INT64_MAX);
  cr_assert_eq(value_at(h, 5), 1e-300);
  json_decref(h);
  free(run);
}

Test(track_series, pages_cross_chunk_boundaries) {
  char *run = new_run();
  struct track_metric m[1000];
  for (int call = 0; call < 3; call++) {
    for (int i = 0; i < 1000; i++) m[i] = (struct track_metric){"p", i, 1, call * 1000 + i};
    log_points(run, m, 1000);
  }
  struct err e;
  char token[TRACKING_PAGE_TOKEN_MAX] = "", next[TRACKING_PAGE_TOKEN_MAX];
  int64_t seen = 0;
  int pages = 0;
  do {
    json_t *h = track_metric_history(db, P1, run, "p", 700, token, next, &e);
    cr_assert_not_null(h, "%s", e.msg);
    for (size_t i = 0; i < json_array_size(h); i++) cr_assert_eq(step_at(h, i), seen++);
    json_decref(h);
    memcpy(token, next, sizeof token);
    pages++;
  } while (token[0]);
  cr_assert_eq(seen, 3000);
  cr_assert_eq(pages, 5);
  free(run);
}

struct sql_job {
  const char *sql;
};

static int sql_job(struct db_conn *c, void *arg, struct err *e) { return db_exec(c, ((struct sql_job *)arg)->sql, e); }

static void write_sql(const char *sql) {
  struct err e;
  struct sql_job j = {sql};
  cr_assert_eq(db_write(db, sql_job, &j, &e), 0, "%s", e.msg);
}

Test(track_series, one_point_chunks_as_the_migration_leaves_them) {
  char *run = new_run();
  char sql[1024];
  for (int i = 0; i < 5; i++) {
    snprintf(sql, sizeof sql,
             "INSERT INTO metric_chunks (run_uuid, key, last_step, last_ts, last_value, last_nan, first_step, first_ts,"
             " first_value, first_nan, min_ts, max_ts, n, points) VALUES ('%s', 'old', %d, 9, %d.25, 0, %d, 9, %d.25,"
             " 0, 9, 9, 1, NULL)",
             run, i * 2, i, i * 2, i);
    write_sql(sql);
  }
  struct track_metric m[3] = {{"old", 7, 9, 3}, {"old", 0.25, 9, 0}, {"old", 100, 9, 50}}; /* between, a repeat, after */
  log_points(run, m, 3);
  json_t *h = history(run, "old");
  cr_assert_eq(json_array_size(h), 7);
  int64_t want[] = {0, 2, 3, 4, 6, 8, 50};
  for (size_t i = 0; i < 7; i++) cr_assert_eq(step_at(h, i), want[i]);
  json_decref(h);
  free(run);
}

Test(track_series, a_damaged_chunk_is_an_error_not_a_crash) {
  char *run = new_run();
  struct track_metric m[4] = {{"d", 1, 1, 1}, {"d", 2, 2, 2}, {"d", 3, 3, 3}, {"d", 4, 4, 4}};
  log_points(run, m, 4);
  write_sql("UPDATE metric_chunks SET points = x'01ffffffffffffffffffffff'");
  struct err e;
  char next[TRACKING_PAGE_TOKEN_MAX];
  cr_assert_null(track_metric_history(db, P1, run, "d", 0, NULL, next, &e));
  cr_assert_eq(e.code, ERR_INTERNAL);
  write_sql("UPDATE metric_chunks SET n = 5000");
  cr_assert_null(track_metric_history(db, P1, run, "d", 0, NULL, next, &e));
  free(run);
}

Test(track_series, ranges_read_only_the_chunks_they_need) {
  char *run = new_run();
  struct track_metric m[1000];
  for (int call = 0; call < 5; call++) {
    for (int i = 0; i < 1000; i++) m[i] = (struct track_metric){"r", i, 100000 - (call * 1000 + i), call * 1000 + i};
    log_points(run, m, 1000);
  }
  struct err e;
  struct db_conn *c = db_reader_acquire(db, &e);
  struct track_series_it it;
  struct track_point p;
  cr_assert_eq(track_series_open(&it, c, run, "r", TRACK_SERIES_STEPS, 2500, 2509, 0, &e), 0, "%s", e.msg);
  int64_t n = 0;
  while (track_series_next(&it, &p, &e) == 1) cr_assert_eq(p.step, 2500 + n++);
  track_series_close(&it);
  cr_assert_eq(n, 10);
  /* timestamps fall as steps rise: the time range is [96000, 96004] = steps 4000..3996 */
  cr_assert_eq(track_series_open(&it, c, run, "r", TRACK_SERIES_TIME, 96000, 96004, 0, &e), 0, "%s", e.msg);
  n = 0;
  while (track_series_next(&it, &p, &e) == 1) cr_assert_eq(p.step, 3996 + n++);
  track_series_close(&it);
  cr_assert_eq(n, 5);
  int64_t lo, hi;
  bool found;
  cr_assert_eq(track_series_x_range(c, run, "r", false, &lo, &hi, &found, &e), 0);
  cr_assert(found);
  cr_assert_eq(lo, 0);
  cr_assert_eq(hi, 4999);
  cr_assert_eq(track_series_x_range(c, run, "r", true, &lo, &hi, &found, &e), 0);
  cr_assert_eq(lo, 95001);
  cr_assert_eq(hi, 100000);
  cr_assert_eq(track_series_x_range(c, run, "none", true, &lo, &hi, &found, &e), 0);
  cr_assert_not(found);
  db_reader_release(db, c);
  free(run);
}

Test(track_series, a_call_is_sorted_by_key_then_point) {
  struct track_metric in[6] = {{"b", 1, 5, 2}, {"a", 2, 5, 9}, {"b", 3, 5, 1}, {"a", 4, 5, 3}, {"b", 5, 4, 1}, {"a", 6, 5, 3}};
  struct track_metric out[6];
  struct err e;
  cr_assert_eq(track_series_sort(in, 6, out, &e), 0);
  const char *keys[] = {"a", "a", "a", "b", "b", "b"};
  double vals[] = {4, 6, 2, 5, 3, 1}; /* a: steps 3, 3, 9 (value breaks the tie); b: (1, ts 4), (1, ts 5), 2 */
  for (int i = 0; i < 6; i++) {
    cr_assert_str_eq(out[i].key, keys[i]);
    cr_assert_eq(out[i].value, vals[i], "at %d: %g", i, out[i].value);
  }
  /* already in order: the same, untouched */
  struct track_metric again[6];
  cr_assert_eq(track_series_sort(out, 6, again, &e), 0);
  cr_assert_eq(memcmp(out, again, sizeof out), 0);
}

Test(track_series, charts_over_the_whole_int64_range_and_over_time) {
  char *run = new_run();
  struct track_metric ends[2] = {{"wide", 1, 1, INT64_MIN}, {"wide", 2, 2, INT64_MAX}};
  log_points(run, ends, 2);
  struct err e;
  int64_t total = 0;
  struct track_sample o = {.points = 8};
  json_t *arr = track_metric_sampled(db, P1, run, "wide", &o, &total, &e);
  cr_assert_not_null(arr, "%s", e.msg);
  cr_assert_eq(json_array_size(arr), 2);
  cr_assert_eq(total, 2);
  json_decref(arr);
  /* 20,000 points over time with one spike: a 100-point chart by time reads
   * chunk summaries and still shows it */
  struct track_metric m[1000];
  for (int call = 0; call < 20; call++) {
    for (int i = 0; i < 1000; i++) {
      int k = call * 1000 + i;
      m[i] = (struct track_metric){"t", k == 12345 ? 1e6 : (k % 7), 1000000 + 10 * k, k};
    }
    log_points(run, m, 1000);
  }
  o = (struct track_sample){.points = 100, .by_time = true};
  arr = track_metric_sampled(db, P1, run, "t", &o, &total, &e);
  cr_assert_not_null(arr, "%s", e.msg);
  cr_assert_leq(json_array_size(arr), 100);
  cr_assert_eq(total, 20000);
  bool spike = false;
  int64_t prev = INT64_MIN;
  for (size_t i = 0; i < json_array_size(arr); i++) {
    json_t *p = json_array_get(arr, i);
    int64_t ts = json_integer_value(json_object_get(p, "timestamp"));
    cr_assert_geq(ts, prev);
    prev = ts;
    spike |= json_number_value(json_object_get(p, "value")) == 1e6;
  }
  cr_assert(spike);
  json_decref(arr);
  free(run);
}

/* the run's latest value of key, as runs/get shows it */
static double latest(const char *run, const char *key) {
  struct err e;
  json_t *r = track_run_get(db, P1, run, &e);
  cr_assert_not_null(r, "%s", e.msg);
  json_t *ms = json_object_get(json_object_get(r, "data"), "metrics");
  double v = NAN;
  for (size_t i = 0; i < json_array_size(ms); i++)
    if (!strcmp(json_string_value(json_object_get(json_array_get(ms, i), "key")), key))
      v = json_number_value(json_object_get(json_array_get(ms, i), "value"));
  json_decref(r);
  return v;
}

Test(track_series, the_latest_value_follows_mlflows_rule_within_and_across_calls) {
  char *run = new_run();
  struct {
    struct track_metric first, second;
    double want;
    const char *why;
  } cases[] = {
      {{"a", 99, 99, 1}, {"a", 0, 1, 2}, 0, "a higher step wins whatever the time and value"},
      {{"b", 0, 1, 2}, {"b", 99, 99, 1}, 0, "a lower step never replaces"},
      {{"c", 5, 10, 1}, {"c", 0, 20, 1}, 0, "same step: the later timestamp wins"},
      {{"d", 3, 10, 1}, {"d", 7, 10, 1}, 7, "same step and time: the higher value wins"},
      {{"e", 7, 10, 1}, {"e", 3, 10, 1}, 7, "... whichever came first"},
      {{"f", 0.5, 10, 1}, {"f", NAN, 10, 1}, 0.5, "NaN compares as 0"},
      {{"g", -1, 10, -1}, {"g", -2, 10, -2}, -1, "negative steps order too"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    log_points(run, &cases[i].first, 1);
    log_points(run, &cases[i].second, 1);
    cr_assert_eq(latest(run, cases[i].first.key), cases[i].want, "across calls: %s", cases[i].why);
  }
  char *run2 = new_run();
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct track_metric both[2] = {cases[i].first, cases[i].second};
    log_points(run2, both, 2);
    cr_assert_eq(latest(run2, cases[i].first.key), cases[i].want, "in one call: %s", cases[i].why);
  }
  free(run);
  free(run2);
}
