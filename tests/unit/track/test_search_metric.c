/* tests for runs/search ordered first by a metric, which reads
 * latest_metrics' (key, value) index in three arms (values, NaN, missing):
 * every page and page token must be what the general path (a correlated
 * lookup per run) gives, on a store seeded with ties, NaN, missing keys,
 * deleted runs and another experiment, for many filters and orders. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store_fixture.h"
#include "track/internal.h"

static char dir[64];
static struct db *db;
#define P1 "aaaa0000000000000000000000000001"

static void setup(void) {
  store_fixture_open("kiln-trks", dir, &db);
}

static void teardown(void) {
  track_search_by_metric_index = true;
  store_fixture_close(dir, db);
}

TestSuite(track_search_metric, .init = setup, .fini = teardown);

static char exp_a[24], exp_b[24];

static void seed(void) {
  struct err e;
  int64_t a, b;
  cr_assert_eq(track_experiment_create(db, P1, "a", NULL, NULL, 0, &a, &e), 0, "%s", e.msg);
  cr_assert_eq(track_experiment_create(db, P1, "b", NULL, NULL, 0, &b, &e), 0, "%s", e.msg);
  snprintf(exp_a, sizeof exp_a, "%lld", (long long)a);
  snprintf(exp_b, sizeof exp_b, "%lld", (long long)b);
  static const double accs[] = {0.5, 0.9, 0.5, NAN, 0.1, 0.9, -0.0, 0.0, 1e300, -1e-9, 0.5, NAN};
  for (int i = 0; i < 60; i++) {
    /* a few start_time ties so run_id breaks them */
    struct track_run_new in = {.experiment_id = i % 5 == 4 ? exp_b : exp_a, .user_id = "t",
                               .start_time = 1000 + i / 3};
    json_t *r = track_run_create(db, P1, &in, &e);
    cr_assert_not_null(r, "%s", e.msg);
    char id[40];
    str_copy(id, sizeof id, json_string_value(json_object_get(json_object_get(r, "info"), "run_id")));
    json_decref(r);
    struct track_metric m[3];
    int nm = 0;
    if (i % 7 != 3) m[nm++] = (struct track_metric){"acc", accs[i % 12], 5, 1}; /* some lack acc */
    if (i % 2) m[nm++] = (struct track_metric){"loss", (double)(i % 4), 5, 1};
    if (i % 9 == 0) m[nm++] = (struct track_metric){"acc", accs[(i + 1) % 12], 6, 1}; /* a later point wins */
    struct track_kv p[2] = {{"lr", i % 3 ? "0.01" : "0.1"}, {"opt", i % 2 ? "adam" : "sgd"}};
    struct track_batch tb = {.metrics = m, .nmetrics = nm, .params = p, .nparams = i % 11 == 5 ? 1 : 2};
    cr_assert_eq(track_log_batch(db, P1, id, &tb, &e), 0, "%s", e.msg);
    if (i % 13 == 6) cr_assert_eq(track_run_delete(db, P1, id, &e), 0);
  }
}

/* Every page of a search, concatenated with their tokens, as text. */
static char *all_pages(const char *filter, const char *const *order, int norder, enum track_view view, int64_t max) {
  struct buf out;
  buf_init(&out);
  const char *ids[] = {exp_a, exp_b};
  char tok[TRACKING_PAGE_TOKEN_MAX] = "";
  for (int page = 0; page < 200; page++) {
    struct track_search s = {.filter = filter, .order_by = order, .norder_by = norder, .view = view,
                             .max_results = max, .page_token = tok, .experiment_ids = ids,
                             .nexperiment_ids = 2};
    char next[TRACKING_PAGE_TOKEN_MAX];
    struct err e;
    json_t *runs = track_run_search(db, P1, &s, next, &e);
    if (!runs) {
      buf_printf(&out, "error %d %s", (int)e.code, e.msg);
      break;
    }
    size_t i;
    json_t *r;
    json_array_foreach(runs, i, r) {
      struct buf one;
      buf_init(&one);
      cr_assert_eq(json_emit(&one, r), 0);
      buf_printf(&out, "%s\n", one.data);
      buf_fini(&one);
    }
    json_decref(runs);
    buf_printf(&out, "-- page %d next '%s'\n", page, next);
    if (!next[0]) break;
    str_copy(tok, sizeof tok, next);
  }
  return buf_steal(&out);
}

static void same(const char *filter, const char *const *order, int norder, enum track_view view, int64_t max) {
  track_search_by_metric_index = false;
  char *want = all_pages(filter, order, norder, view, max);
  track_search_by_metric_index = true;
  char *got = all_pages(filter, order, norder, view, max);
  cr_assert_str_eq(got, want, "filter '%s' order '%s'%s%s view %d max %lld", filter ? filter : "", order[0],
                   norder > 1 ? ", " : "", norder > 1 ? order[1] : "", (int)view, (long long)max);
  free(want);
  free(got);
}

Test(track_search_metric, same_pages_as_the_general_path) {
  seed();
  const char *filters[] = {NULL,
                           "metrics.acc > 0.3",
                           "metrics.acc > 0.3 and params.lr = '0.01'",
                           "metrics.acc != 0.5",
                           "NOT metrics.acc > 0.2",
                           "metrics.loss >= 1 OR params.opt = 'sgd'",
                           "params.lr = '0.1'",
                           "metrics.acc IS NULL",
                           "attributes.status = 'RUNNING' and metrics.acc <= 0.5"};
  const char *orders[][2] = {{"metrics.acc DESC", NULL},
                             {"metrics.acc", NULL},
                             {"metrics.acc ASC", "params.lr DESC"},
                             {"metrics.acc DESC", "attributes.start_time ASC"},
                             {"metrics.`acc` DESC", "metrics.loss"},
                             {"metrics.nothing DESC", NULL},
                             {"metric.loss DESC", "attributes.run_id DESC"}};
  const enum track_view views[] = {TRACKING_VIEW_ACTIVE, TRACKING_VIEW_ALL, TRACKING_VIEW_DELETED};
  const int64_t maxes[] = {1, 3, 7, 100};
  for (size_t f = 0; f < sizeof filters / sizeof filters[0]; f++)
    for (size_t o = 0; o < sizeof orders / sizeof orders[0]; o++)
      for (size_t v = 0; v < 3; v++)
        for (size_t m = 0; m < 4; m++) {
          if (v && m != 1) continue; /* views once each; every page size for the default */
          same(filters[f], orders[o], orders[o][1] ? 2 : 1, views[v], maxes[m]);
        }
}

Test(track_search_metric, offsets_past_an_arm_and_errors) {
  seed();
  const char *order[] = {"metrics.acc DESC"};
  const char *ids[] = {exp_a, exp_b};
  /* a token deep in the NaN and missing arms, and past the end */
  for (int64_t off = 0; off < 70; off += 3) {
    char tok[TRACKING_PAGE_TOKEN_MAX], n1[TRACKING_PAGE_TOKEN_MAX], n2[TRACKING_PAGE_TOKEN_MAX];
    track_page_token_encode(off, tok);
    struct track_search s = {.order_by = order, .norder_by = 1, .max_results = 4, .page_token = tok,
                             .experiment_ids = ids, .nexperiment_ids = 2};
    struct err e;
    track_search_by_metric_index = false;
    json_t *a = track_run_search(db, P1, &s, n1, &e);
    track_search_by_metric_index = true;
    json_t *b = track_run_search(db, P1, &s, n2, &e);
    cr_assert(a && b);
    cr_assert(json_equal(a, b), "offset %lld", (long long)off);
    cr_assert_str_eq(n1, n2);
    json_decref(a);
    json_decref(b);
  }
  /* a bad filter or a bad later clause answers the same error */
  const char *bad[][2] = {{"metrics.acc >", "metrics.acc DESC"}, {NULL, "metrics.acc DESC"}};
  const char *order2[] = {"metrics.acc DESC", "params.lr SIDEWAYS"};
  for (int i = 0; i < 2; i++) {
    struct track_search s = {.filter = bad[i][0], .order_by = i ? order2 : order, .norder_by = i ? 2 : 1,
                             .experiment_ids = ids, .nexperiment_ids = 2};
    char next[TRACKING_PAGE_TOKEN_MAX];
    struct err e1, e2;
    track_search_by_metric_index = false;
    cr_assert_null(track_run_search(db, P1, &s, next, &e1));
    track_search_by_metric_index = true;
    cr_assert_null(track_run_search(db, P1, &s, next, &e2));
    cr_assert_eq(e1.code, e2.code);
    cr_assert_str_eq(e1.msg, e2.msg);
  }
}
