/* tests for the tracking room's inputs, log-model history, logged models,
 * sampled histories (peaks kept, limits) and the live-event hub (batches,
 * terminal status, dropping a subscriber that falls behind). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store_fixture.h"
#include "track/track.h"

static char dir[64];
static struct db *db;

#define P1 "cccc0000000000000000000000000001"
#define P2 "dddd0000000000000000000000000002"

static void setup(void) {
  store_fixture_open("kiln-trkm", dir, &db);
}

static void teardown(void) {
  store_fixture_close(dir, db);
}

TestSuite(track_more, .init = setup, .fini = teardown);

static char *new_experiment(const char *project, const char *name) {
  int64_t id;
  struct err e;
  cr_assert_eq(track_experiment_create(db, project, name, NULL, NULL, 0, &id, &e), 0, "%s", e.msg);
  char *s = malloc(24);
  snprintf(s, 24, "%lld", (long long)id);
  return s;
}

static char *new_run(const char *project, const char *exp) {
  struct err e;
  struct track_run_new in = {.experiment_id = exp, .user_id = "tester"};
  json_t *run = track_run_create(db, project, &in, &e);
  cr_assert_not_null(run, "%s", e.msg);
  char *id = strdup(json_string_value(json_object_get(json_object_get(run, "info"), "run_id")));
  json_decref(run);
  return id;
}

static void log_values(const char *run, const char *key, const double *v, int n) {
  struct track_metric *m = calloc(1000, sizeof *m);
  struct err e;
  for (int i = 0; i < n; i += 1000) {
    int k = n - i < 1000 ? n - i : 1000;
    for (int j = 0; j < k; j++) m[j] = (struct track_metric){key, v[i + j], 1000 + i + j, i + j};
    struct track_batch b = {.metrics = m, .nmetrics = k};
    cr_assert_eq(track_log_batch(db, P1, run, &b, &e), 0, "%s", e.msg);
  }
  free(m);
}

Test(track_more, sampled_keeps_min_and_max_within_points) {
  char *exp = new_experiment(P1, "s"), *run = new_run(P1, exp);
  int n = 20000;
  double *v = malloc(n * sizeof *v);
  for (int i = 0; i < n; i++) v[i] = sin(i / 50.0);
  v[7777] = -99;
  v[12345] = 99;
  log_values(run, "loss", v, n);
  struct err e;
  int64_t total;
  struct track_sample o = {.points = 200};
  json_t *arr = track_metric_sampled(db, P1, run, "loss", &o, &total, &e);
  cr_assert_not_null(arr, "%s", e.msg);
  cr_assert_eq(total, n);
  cr_assert_leq(json_array_size(arr), 200);
  cr_assert_geq(json_array_size(arr), 100);
  double lo = 1e9, hi = -1e9;
  int64_t prev = -1;
  size_t i;
  json_t *p;
  json_array_foreach(arr, i, p) {
    double x = json_real_value(json_object_get(p, "value"));
    int64_t step = json_integer_value(json_object_get(p, "step"));
    cr_assert_gt(step, prev, "steps in order");
    prev = step;
    lo = x < lo ? x : lo;
    hi = x > hi ? x : hi;
  }
  cr_assert_eq(lo, -99);
  cr_assert_eq(hi, 99);
  json_decref(arr);
  /* a range shorter than the points comes back whole */
  o = (struct track_sample){.points = 100, .has_start = true, .start = 10, .has_end = true, .end = 59};
  arr = track_metric_sampled(db, P1, run, "loss", &o, &total, &e);
  cr_assert_eq(json_array_size(arr), 50);
  cr_assert_eq(total, 50);
  json_decref(arr);
  /* fewer than 4 points: one per bucket, the highest */
  o = (struct track_sample){.points = 1};
  arr = track_metric_sampled(db, P1, run, "loss", &o, &total, &e);
  cr_assert_eq(json_array_size(arr), 1);
  cr_assert_eq(json_real_value(json_object_get(json_array_get(arr, 0), "value")), 99);
  json_decref(arr);
  /* limits and tenancy */
  o = (struct track_sample){.points = 0};
  cr_assert_null(track_metric_sampled(db, P1, run, "loss", &o, &total, &e));
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  o.points = 10;
  cr_assert_null(track_metric_sampled(db, P2, run, "loss", &o, &total, &e));
  cr_assert_eq(e.code, ERR_RESOURCE_DOES_NOT_EXIST);
  free(v);
  free(exp);
  free(run);
}

Test(track_more, sampled_wide_ranges_read_the_rollups) {
  char *exp = new_experiment(P1, "r"), *run = new_run(P1, exp);
  int n = 100000;
  double *v = malloc(n * sizeof *v);
  for (int i = 0; i < n; i++) v[i] = cos(i / 300.0);
  v[4321] = -7;
  v[98765] = 8;
  v[50000] = NAN;
  log_values(run, "loss", v, n);
  log_values(run, "loss", v, 5000); /* a replayed prefix changes no extreme */
  struct err e;
  int64_t total;
  struct track_sample o = {.points = 100};
  json_t *arr = track_metric_sampled(db, P1, run, "loss", &o, &total, &e);
  cr_assert_not_null(arr, "%s", e.msg);
  cr_assert_leq(json_array_size(arr), 100);
  cr_assert_geq(json_array_size(arr), 50);
  cr_assert_geq(total, n);
  double lo = 1e9, hi = -1e9;
  int64_t prev = -1, lo_step = -1, hi_step = -1;
  size_t i;
  json_t *p;
  json_array_foreach(arr, i, p) {
    int64_t step = json_integer_value(json_object_get(p, "step"));
    cr_assert_gt(step, prev, "steps in order");
    prev = step;
    if (!json_is_number(json_object_get(p, "value"))) continue;
    double x = json_number_value(json_object_get(p, "value"));
    if (x < lo) lo = x, lo_step = step;
    if (x > hi) hi = x, hi_step = step;
  }
  cr_assert_eq(lo, -7);
  cr_assert_eq(lo_step, 4321);
  cr_assert_eq(hi, 8);
  cr_assert_eq(hi_step, 98765);
  cr_assert_eq(json_integer_value(json_object_get(json_array_get(arr, 0), "step")), 0);
  cr_assert_eq(prev, n - 1);
  json_decref(arr);
  /* a range not on rollup boundaries: its ends are read raw */
  o = (struct track_sample){.points = 40, .has_start = true, .start = 4000, .has_end = true, .end = 90001};
  arr = track_metric_sampled(db, P1, run, "loss", &o, &total, &e);
  cr_assert_leq(json_array_size(arr), 40);
  cr_assert_eq(json_integer_value(json_object_get(json_array_get(arr, 0), "step")), 4000);
  cr_assert_eq(json_integer_value(json_object_get(json_array_get(arr, json_array_size(arr) - 1), "step")), 90001);
  bool has_lo = false;
  json_array_foreach(arr, i, p) has_lo |= json_is_number(json_object_get(p, "value")) &&
                                          json_number_value(json_object_get(p, "value")) == -7;
  cr_assert(has_lo);
  json_decref(arr);
  free(v);
  free(exp);
  free(run);
}

Test(track_more, bulk_interval_per_run_with_run_ids_and_limits) {
  char *exp = new_experiment(P1, "b"), *a = new_run(P1, exp), *b = new_run(P1, exp);
  double v[3000];
  for (int i = 0; i < 3000; i++) v[i] = i % 7;
  log_values(a, "m", v, 3000);
  log_values(b, "m", v, 10);
  const char *ids[] = {a, b};
  struct err e;
  struct track_sample o = {.points = 100};
  json_t *arr = track_metric_bulk_interval(db, P1, ids, 2, "m", &o, &e);
  cr_assert_not_null(arr, "%s", e.msg);
  int na = 0, nb = 0;
  size_t i;
  json_t *p;
  json_array_foreach(arr, i, p) {
    const char *rid = json_string_value(json_object_get(p, "run_id"));
    if (str_eq(rid, a)) na++;
    else if (str_eq(rid, b)) nb++;
  }
  cr_assert_leq(na, 100);
  cr_assert_gt(na, 0);
  cr_assert_eq(nb, 10);
  json_decref(arr);
  cr_assert_null(track_metric_bulk_interval(db, P1, ids, 0, "m", &o, &e));
  o.points = TRACKING_MAX_BULK_INTERVAL_RESULTS + 1;
  cr_assert_null(track_metric_bulk_interval(db, P1, ids, 2, "m", &o, &e));
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  free(exp);
  free(a);
  free(b);
}

static json_t *inputs_of(const char *run) {
  struct err e;
  json_t *r = track_run_get(db, P1, run, &e);
  cr_assert_not_null(r, "%s", e.msg);
  json_t *in = json_incref(json_object_get(r, "inputs"));
  json_decref(r);
  return in;
}

Test(track_more, inputs_dedup_and_first_input_wins) {
  char *exp = new_experiment(P1, "i"), *a = new_run(P1, exp), *b = new_run(P1, exp);
  struct track_kv t1 = {"mlflow.data.context", "training"}, t2 = {"mlflow.data.context", "eval"};
  struct track_dataset_input d = {.name = "ds", .digest = "123", .source_type = "local", .source = "{}",
                                  .tags = &t1, .ntags = 1};
  struct track_inputs in = {.datasets = &d, .ndatasets = 1};
  struct err e;
  cr_assert_eq(track_log_inputs(db, P1, a, &in, &e), 0, "%s", e.msg);
  d.tags = &t2;
  cr_assert_eq(track_log_inputs(db, P1, a, &in, &e), 0, "%s", e.msg);
  cr_assert_eq(track_log_inputs(db, P1, b, &in, &e), 0, "%s", e.msg);
  json_t *ia = inputs_of(a), *ib = inputs_of(b);
  cr_assert_eq(json_array_size(json_object_get(ia, "dataset_inputs")), 1);
  json_t *tag = json_array_get(json_object_get(json_array_get(json_object_get(ia, "dataset_inputs"), 0), "tags"), 0);
  cr_assert_str_eq(json_string_value(json_object_get(tag, "value")), "training");
  tag = json_array_get(json_object_get(json_array_get(json_object_get(ib, "dataset_inputs"), 0), "tags"), 0);
  cr_assert_str_eq(json_string_value(json_object_get(tag, "value")), "eval");
  json_decref(ia);
  json_decref(ib);
  /* one dataset row for the experiment */
  struct db_conn *c = db_reader_acquire(db, &e);
  struct db_stmt *s = db_prepare(c, "SELECT COUNT(*) FROM datasets", &e);
  cr_assert_eq(db_step(s, &e), DB_ROW);
  cr_assert_eq(db_col_i64(s, 0), 1);
  db_stmt_done(s);
  db_reader_release(db, c);
  /* limits */
  d.digest = "0123456789012345678901234567890123456"; /* 37 */
  cr_assert_neq(track_log_inputs(db, P1, a, &in, &e), 0);
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  d.digest = "1";
  d.source = NULL;
  cr_assert_neq(track_log_inputs(db, P1, a, &in, &e), 0);
  d.source = "{}";
  cr_assert_neq(track_log_inputs(db, P2, a, &in, &e), 0);
  cr_assert_eq(e.code, ERR_RESOURCE_DOES_NOT_EXIST);
  free(exp);
  free(a);
  free(b);
}

Test(track_more, log_model_history_is_a_json_list) {
  char *exp = new_experiment(P1, "lm"), *run = new_run(P1, exp);
  const char *m = "{\"artifact_path\":\"model\",\"run_id\":\"x\",\"utc_time_created\":\"t\",\"flavors\":{}}";
  struct err e;
  cr_assert_eq(track_log_model(db, P1, run, m, &e), 0, "%s", e.msg);
  cr_assert_eq(track_log_model(db, P1, run, m, &e), 0, "%s", e.msg);
  json_t *r = track_run_get(db, P1, run, &e);
  json_t *tags = json_object_get(json_object_get(r, "data"), "tags");
  const char *hist = NULL;
  size_t i;
  json_t *t;
  json_array_foreach(tags, i, t) if (str_eq(json_string_value(json_object_get(t, "key")), "mlflow.log-model.history"))
      hist = json_string_value(json_object_get(t, "value"));
  cr_assert_not_null(hist);
  json_t *h = json_loads(hist, 0, NULL);
  cr_assert_eq(json_array_size(h), 2);
  json_decref(h);
  json_decref(r);
  cr_assert_neq(track_log_model(db, P1, run, "{\"artifact_path\":\"x\"}", &e), 0);
  cr_assert_neq(track_log_model(db, P1, run, "[1]", &e), 0);
  free(exp);
  free(run);
}

Test(track_more, logged_model_lifecycle_and_tenancy) {
  char *exp = new_experiment(P1, "models");
  struct track_kv p = {"alpha", "0.5"};
  struct track_logged_model_new in = {.experiment_id = exp, .name = "clf", .params = &p, .nparams = 1};
  struct err e;
  json_t *m = track_logged_model_create(db, P1, &in, &e);
  cr_assert_not_null(m, "%s", e.msg);
  const char *id = json_string_value(json_object_get(json_object_get(m, "info"), "model_id"));
  char mid[40];
  str_copy(mid, sizeof mid, id);
  cr_assert_eq(strlen(mid), 34);
  cr_assert_str_eq(json_string_value(json_object_get(json_object_get(m, "info"), "status")), "LOGGED_MODEL_PENDING");
  json_decref(m);
  m = track_logged_model_finalize(db, P1, mid, "LOGGED_MODEL_READY", &e);
  cr_assert_str_eq(json_string_value(json_object_get(json_object_get(m, "info"), "status")), "LOGGED_MODEL_READY");
  json_decref(m);
  cr_assert_null(track_logged_model_finalize(db, P1, mid, "NOPE", &e));
  cr_assert_null(track_logged_model_get(db, P2, mid, &e));
  cr_assert_eq(e.code, ERR_RESOURCE_DOES_NOT_EXIST);
  char next[TRACKING_PAGE_TOKEN_MAX];
  const char *ids[] = {exp};
  struct track_lm_search q = {.experiment_ids = ids, .nexperiment_ids = 1, .filter = "name = 'clf'"};
  json_t *found = track_logged_model_search(db, P1, &q, next, &e);
  cr_assert_eq(json_array_size(found), 1);
  json_decref(found);
  q = (struct track_lm_search){.filter = "name = 'other'"};
  found = track_logged_model_search(db, P1, &q, next, &e);
  cr_assert_eq(json_array_size(found), 0);
  json_decref(found);
  q = (struct track_lm_search){.filter = "name LIKE 'x'"};
  cr_assert_null(track_logged_model_search(db, P1, &q, next, &e));
  cr_assert_eq(track_logged_model_delete(db, P1, mid, &e), 0);
  cr_assert_null(track_logged_model_get(db, P1, mid, &e));
  free(exp);
}

/* ---- the live-event hub ---- */

static int wakes;
static void on_wake(void *ctx) {
  (void)ctx;
  __atomic_add_fetch(&wakes, 1, __ATOMIC_SEQ_CST);
}

Test(track_more, events_batch_points_then_end_on_terminal_status) {
  const char *run = "abababababababababababababababab";
  struct track_sub *s = track_sub_new(run, 0, on_wake, NULL);
  cr_assert_not_null(s);
  struct track_metric m[2] = {{"loss", 0.5, 10, 1}, {"loss", NAN, 11, 2}};
  track_events_metrics(run, m, 2);
  track_events_metrics("cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd", m, 1); /* another run: not ours */
  track_events_status(run, "FINISHED");
  struct buf out;
  buf_init(&out);
  bool end = false;
  track_sub_take(s, &out, &end);
  cr_assert(end);
  cr_assert_not_null(strstr(out.data, "event: metrics\ndata: {\"run_id\":\"abababababababababababababababab\","
                                      "\"metrics\":[{\"key\":\"loss\",\"value\":0.5,\"timestamp\":10,\"step\":1},"
                                      "{\"key\":\"loss\",\"value\":\"NaN\",\"timestamp\":11,\"step\":2}]}\n\n"),
                    "%s", out.data);
  cr_assert_not_null(strstr(out.data, "event: status\ndata: {\"run_id\":\"abababababababababababababababab\","
                                      "\"status\":\"FINISHED\"}\n\n"));
  cr_assert_lt(strstr(out.data, "metrics"), strstr(out.data, "status"), "points before the final status");
  /* nothing after the end */
  out.len = 0;
  track_events_metrics(run, m, 1);
  track_sub_take(s, &out, &end);
  cr_assert_eq(out.len, 0);
  buf_fini(&out);
  track_sub_free(s);
}

Test(track_more, events_subscriber_that_falls_behind_is_dropped_and_counted) {
  metrics_reset_all();
  const char *run = "efefefefefefefefefefefefefefefef";
  struct track_sub *s = track_sub_new(run, 200, on_wake, NULL);
  struct track_metric m = {"k", 1, 1, 1};
  for (int i = 0; i < 10; i++) track_events_metrics(run, &m, 1);
  struct buf out;
  buf_init(&out);
  bool end = false;
  track_sub_take(s, &out, &end);
  cr_assert(end);
  cr_assert_not_null(strstr(out.data, "event: overflow"), "%s", out.data);
  struct buf text;
  buf_init(&text);
  metrics_expose(&text);
  cr_assert_not_null(strstr(text.data, "kiln_track_events_dropped_total 1"), "%s", text.data);
  buf_fini(&text);
  buf_fini(&out);
  track_sub_free(s);
}

static int64_t count_rows(const char *sql) {
  struct err e;
  struct db_conn *c = db_reader_acquire(db, &e);
  struct db_stmt *s = db_prepare(c, sql, &e);
  cr_assert_eq(db_step(s, &e), DB_ROW);
  int64_t n = db_col_i64(s, 0);
  db_stmt_done(s);
  db_reader_release(db, c);
  return n;
}

Test(track_more, purge_removes_inputs_chunks_datasets_and_models) {
  char *exp = new_experiment(P1, "gc"), *run = new_run(P1, exp);
  double v[3] = {1, 2, 3};
  log_values(run, "m", v, 3);
  struct track_kv t = {"mlflow.data.context", "train"};
  struct track_dataset_input d = {.name = "ds", .digest = "1", .source_type = "local", .source = "{}", .tags = &t, .ntags = 1};
  const char *mid = "m-00000000000000000000000000000000";
  struct track_inputs in = {.datasets = &d, .ndatasets = 1, .model_ids = &mid, .nmodels = 1};
  struct err e;
  cr_assert_eq(track_log_inputs(db, P1, run, &in, &e), 0, "%s", e.msg);
  struct track_kv p = {"a", "1"};
  struct track_logged_model_new lm = {.experiment_id = exp, .params = &p, .nparams = 1, .tags = &p, .ntags = 1};
  json_t *m = track_logged_model_create(db, P1, &lm, &e);
  cr_assert_not_null(m, "%s", e.msg);
  json_decref(m);
  cr_assert_eq(count_rows("SELECT COUNT(*) FROM metric_chunks"), 1);
  cr_assert_eq(track_experiment_delete(db, P1, exp, &e), 0, "%s", e.msg);
  struct track_gc_report r = {0};
  cr_assert_eq(track_purge_deleted(db, time_wall_ms() + 1000, &r, &e), 0, "%s", e.msg);
  cr_assert_eq(r.runs, 1);
  cr_assert_eq(r.experiments, 1);
  const char *tables[] = {"metric_chunks", "run_dataset_inputs", "run_input_tags", "run_model_inputs", "datasets",
                          "logged_models", "logged_model_params", "logged_model_tags"};
  for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
    char sql[80];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", tables[i]);
    cr_assert_eq(count_rows(sql), 0, "%s", tables[i]);
  }
  free(exp);
  free(run);
}
