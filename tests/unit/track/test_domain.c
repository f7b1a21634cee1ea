/* tests for the tracking room against a real store: the per-project
 * Default experiment, tenancy, lifecycle carrying runs, the latest-metric
 * rule across calls, history order, param immutability (all-or-nothing
 * batches) and search paging. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store_fixture.h"
#include "track/track.h"

static char dir[64];
static struct db *db;

#define P1 "aaaa0000000000000000000000000001"
#define P2 "bbbb0000000000000000000000000002"

static void setup(void) {
  store_fixture_open("kiln-trk", dir, &db);
}

static void teardown(void) {
  store_fixture_close(dir, db);
}

TestSuite(track_domain, .init = setup, .fini = teardown);

static const char *str(json_t *o, const char *path1, const char *path2) {
  json_t *v = json_object_get(o, path1);
  if (path2) v = json_object_get(v, path2);
  return json_string_value(v);
}

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
  char *id = strdup(str(json_object_get(run, "info"), "run_id", NULL));
  json_decref(run);
  return id;
}

Test(track_domain, default_experiment_is_lazy_and_per_project) {
  int64_t a, a2, b;
  struct err e;
  cr_assert_eq(track_default_experiment(db, P1, &a, &e), 0, "%s", e.msg);
  cr_assert_eq(track_default_experiment(db, P1, &a2, &e), 0);
  cr_assert_eq(a, a2);
  cr_assert_eq(track_experiment_resolve(db, P2, "0", &b, &e), 0);
  cr_assert_neq(a, b);
  json_t *x = track_experiment_get(db, P1, "0", &e);
  cr_assert_str_eq(str(x, "name", NULL), "Default");
  json_decref(x);
  cr_assert_eq(track_experiment_delete(db, P1, "0", &e), -ERR_INVALID_PARAMETER_VALUE);
  /* an experiment named Default made by hand becomes the Default */
  char *own = new_experiment("cccc0000000000000000000000000003", "Default");
  int64_t c, own_id;
  cr_assert_eq(track_default_experiment(db, "cccc0000000000000000000000000003", &c, &e), 0);
  cr_assert_eq(str_to_i64(own, &own_id), 0);
  cr_assert_eq(c, own_id);
  free(own);
}

Test(track_domain, projects_are_isolated) {
  char *exp = new_experiment(P1, "mine");
  char *run = new_run(P1, exp);
  struct err e;
  cr_assert_null(track_experiment_get(db, P2, exp, &e));
  cr_assert_eq(e.code, ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_null(track_experiment_get_by_name(db, P2, "mine", &e));
  cr_assert_null(track_run_get(db, P2, run, &e));
  cr_assert_eq(e.code, ERR_RESOURCE_DOES_NOT_EXIST);
  struct track_kv t = {"k", "v"};
  struct track_batch b = {.tags = &t, .ntags = 1};
  cr_assert_eq(track_log_batch(db, P2, run, &b, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(track_run_delete(db, P2, run, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(track_experiment_delete(db, P2, exp, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  /* names are per project */
  char *again = new_experiment(P2, "mine");
  cr_assert_str_neq(again, exp);
  int64_t id;
  cr_assert_eq(track_experiment_create(db, P1, "mine", NULL, NULL, 0, &id, &e), -ERR_RESOURCE_ALREADY_EXISTS);
  const char *ids[] = {exp};
  struct track_search s = {.experiment_ids = ids, .nexperiment_ids = 1};
  char next[TRACKING_PAGE_TOKEN_MAX];
  json_t *found = track_run_search(db, P2, &s, next, &e);
  cr_assert_eq(json_array_size(found), 0);
  json_decref(found);
  found = track_run_search(db, P1, &s, next, &e);
  cr_assert_eq(json_array_size(found), 1);
  json_decref(found);
  free(exp);
  free(run);
  free(again);
}

Test(track_domain, deleting_an_experiment_carries_its_runs) {
  char *exp = new_experiment(P1, "life");
  char *r1 = new_run(P1, exp), *r2 = new_run(P1, exp);
  struct err e;
  cr_assert_eq(track_experiment_delete(db, P1, exp, &e), 0, "%s", e.msg);
  json_t *run = track_run_get(db, P1, r1, &e);
  cr_assert_str_eq(str(run, "info", "lifecycle_stage"), "deleted");
  json_decref(run);
  cr_assert_eq(track_experiment_delete(db, P1, exp, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(track_experiment_rename(db, P1, exp, "x", &e), -ERR_INVALID_STATE);
  struct track_run_new in = {.experiment_id = exp};
  cr_assert_null(track_run_create(db, P1, &in, &e));
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(track_experiment_restore(db, P1, exp, &e), 0, "%s", e.msg);
  cr_assert_eq(track_experiment_restore(db, P1, exp, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  run = track_run_get(db, P1, r2, &e);
  cr_assert_str_eq(str(run, "info", "lifecycle_stage"), "active");
  json_decref(run);
  free(exp);
  free(r1);
  free(r2);
}

static json_t *latest(const char *run_id, const char *key) {
  struct err e;
  json_t *run = track_run_get(db, P1, run_id, &e);
  cr_assert_not_null(run, "%s", e.msg);
  json_t *ms = json_object_get(json_object_get(run, "data"), "metrics");
  size_t i;
  json_t *m;
  json_array_foreach(ms, i, m) {
    if (str_eq(json_string_value(json_object_get(m, "key")), key)) {
      json_incref(m);
      json_decref(run);
      return m;
    }
  }
  json_decref(run);
  return NULL;
}

static void log_metric(const char *run, const char *key, double v, int64_t ts, int64_t step) {
  struct track_metric m = {key, v, ts, step};
  struct track_batch b = {.metrics = &m, .nmetrics = 1};
  struct err e;
  cr_assert_eq(track_log_batch(db, P1, run, &b, &e), 0, "%s", e.msg);
}

Test(track_domain, latest_metric_across_calls_and_history_order) {
  char *exp = new_experiment(P1, "metrics");
  char *run = new_run(P1, exp);
  log_metric(run, "m", 1.0, 100, 5);
  log_metric(run, "m", 9.0, 999, 4); /* lower step: history only */
  log_metric(run, "m", 2.0, 50, 5);  /* same step, earlier: history only */
  log_metric(run, "m", 3.0, 100, 5); /* same step and time, higher value: latest */
  json_t *l = latest(run, "m");
  cr_assert_eq(json_real_value(json_object_get(l, "value")), 3.0);
  json_decref(l);
  log_metric(run, "n", NAN, 1, 0);
  l = latest(run, "n");
  cr_assert_str_eq(json_string_value(json_object_get(l, "value")), "NaN");
  json_decref(l);
  log_metric(run, "n", -1.0, 1, 0); /* NaN counts as 0 for the tie-break */
  l = latest(run, "n");
  cr_assert_str_eq(json_string_value(json_object_get(l, "value")), "NaN");
  json_decref(l);

  struct err e;
  char next[TRACKING_PAGE_TOKEN_MAX];
  json_t *h = track_metric_history(db, P1, run, "m", 0, NULL, next, &e);
  cr_assert_eq(json_array_size(h), 4);
  int64_t steps[] = {4, 5, 5, 5}, ts[] = {999, 50, 100, 100};
  for (size_t i = 0; i < 4; i++) {
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(h, i), "step")), steps[i]);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(h, i), "timestamp")), ts[i]);
  }
  cr_assert_str_eq(next, "");
  json_decref(h);
  h = track_metric_history(db, P1, run, "m", 3, NULL, next, &e);
  cr_assert_eq(json_array_size(h), 3);
  cr_assert_str_neq(next, "");
  json_decref(h);
  char tok[TRACKING_PAGE_TOKEN_MAX];
  str_copy(tok, sizeof tok, next);
  h = track_metric_history(db, P1, run, "m", 3, tok, next, &e);
  cr_assert_eq(json_array_size(h), 1);
  cr_assert_str_eq(next, "");
  json_decref(h);
  free(exp);
  free(run);
}

Test(track_domain, params_are_immutable_and_batches_all_or_nothing) {
  char *exp = new_experiment(P1, "params");
  char *run = new_run(P1, exp);
  struct err e;
  struct track_kv p = {"lr", "0.1"};
  struct track_batch one = {.params = &p, .nparams = 1, .single_param = true};
  cr_assert_eq(track_log_batch(db, P1, run, &one, &e), 0, "%s", e.msg);
  cr_assert_eq(track_log_batch(db, P1, run, &one, &e), 0, "the same value again is fine");
  p.value = "0.2";
  cr_assert_eq(track_log_batch(db, P1, run, &one, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "Param with key='lr' was already logged with value='0.1'"), "%s", e.msg);
  struct track_metric m = {"after", 1.0, 1, 0};
  struct track_batch both = {.params = &p, .nparams = 1, .metrics = &m, .nmetrics = 1};
  cr_assert_eq(track_log_batch(db, P1, run, &both, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "Params were already logged='[{'key': 'lr', 'old_value': '0.1', 'new_value': '0.2'}]'"),
            "%s", e.msg);
  json_t *l = latest(run, "after");
  cr_assert_null(l, "the failed batch logged its metric");
  char next[TRACKING_PAGE_TOKEN_MAX];
  json_t *h = track_metric_history(db, P1, run, "after", 0, NULL, next, &e);
  cr_assert_eq(json_array_size(h), 0);
  json_decref(h);
  /* limits are checked before anything is written */
  struct track_metric *many = calloc(1001, sizeof *many);
  for (int i = 0; i < 1001; i++) many[i] = (struct track_metric){"k", i, i, i};
  struct track_batch big = {.metrics = many, .nmetrics = 1001};
  cr_assert_eq(track_log_batch(db, P1, run, &big, &e), -ERR_INVALID_PARAMETER_VALUE);
  big.nmetrics = 1000;
  cr_assert_eq(track_log_batch(db, P1, run, &big, &e), 0, "%s", e.msg);
  l = latest(run, "k");
  cr_assert_eq(json_integer_value(json_object_get(l, "step")), 999);
  json_decref(l);
  free(many);
  free(exp);
  free(run);
}

Test(track_domain, run_search_pages_in_start_time_order) {
  char *exp = new_experiment(P1, "search");
  char ids[5][TRACKING_RUN_ID_LEN + 1];
  struct err e;
  for (int i = 0; i < 5; i++) {
    struct track_run_new in = {.experiment_id = exp, .start_time = 1000 + i};
    json_t *run = track_run_create(db, P1, &in, &e);
    cr_assert_not_null(run, "%s", e.msg);
    str_copy(ids[i], sizeof ids[i], str(json_object_get(run, "info"), "run_id", NULL));
    json_decref(run);
  }
  const char *exps[] = {exp};
  struct track_search s = {.experiment_ids = exps, .nexperiment_ids = 1, .max_results = 2};
  char next[TRACKING_PAGE_TOKEN_MAX], tok[TRACKING_PAGE_TOKEN_MAX];
  int seen = 0;
  do {
    json_t *page = track_run_search(db, P1, &s, next, &e);
    cr_assert_not_null(page, "%s", e.msg);
    size_t i;
    json_t *r;
    json_array_foreach(page, i, r) {
      cr_assert_str_eq(str(json_object_get(r, "info"), "run_id", NULL), ids[4 - seen]);
      seen++;
    }
    json_decref(page);
    str_copy(tok, sizeof tok, next);
    s.page_token = tok;
  } while (next[0]);
  cr_assert_eq(seen, 5);
  s.max_results = 50001;
  cr_assert_null(track_run_search(db, P1, &s, next, &e));
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  free(exp);
}
