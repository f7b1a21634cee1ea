/* tests for MLflow 3 logged models beyond their lifecycle: run outputs,
 * search order and paging with a snapshot bound, the model artifact
 * layout with its tenancy, and purging a deleted model's files. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store_fixture.h"
#include "track/track.h"

static char dir[64];
static struct db *db;
static struct blob_store *bs;

#define P1 "aaaa0000000000000000000000000011"
#define P2 "bbbb0000000000000000000000000022"

static void setup(void) {
  store_fixture_open("kiln-lm", dir, &db);
  store_fixture_blobs(dir, db, &bs);
}

static void teardown(void) {
  blob_close(bs);
  store_fixture_close(dir, db);
}

TestSuite(track_logged_models_more, .init = setup, .fini = teardown);

static void new_exp(const char *project, const char *name, char out[24]) {
  int64_t id;
  struct err e;
  cr_assert_eq(track_experiment_create(db, project, name, NULL, NULL, 0, &id, &e), 0, "%s", e.msg);
  snprintf(out, 24, "%lld", (long long)id);
}

static char *new_run(const char *project, const char *exp) {
  struct err e;
  struct track_run_new in = {.experiment_id = exp, .user_id = "t"};
  json_t *run = track_run_create(db, project, &in, &e);
  cr_assert_not_null(run, "%s", e.msg);
  char *rid = strdup(json_string_value(json_object_get(json_object_get(run, "info"), "run_id")));
  json_decref(run);
  return rid;
}

static char *new_model(const char *project, const char *exp, const char *name) {
  struct err e;
  struct track_logged_model_new in = {.experiment_id = exp, .name = name};
  json_t *m = track_logged_model_create(db, project, &in, &e);
  cr_assert_not_null(m, "%s", e.msg);
  char *id = strdup(json_string_value(json_object_get(json_object_get(m, "info"), "model_id")));
  json_decref(m);
  return id;
}

static int64_t refs(const char *sha) {
  struct blob_info bi;
  struct err e;
  cr_assert_eq(blob_stat(bs, sha, &bi, &e), 0, "%s", e.msg);
  return bi.refcount;
}

Test(track_logged_models_more, outputs_are_checked_and_shown_in_the_run) {
  char exp[24], other[24];
  new_exp(P1, "out", exp);
  new_exp(P2, "theirs", other);
  char *rid = new_run(P1, exp), *mid = new_model(P1, exp, "m"), *foreign = new_model(P2, other, "x");
  struct err e;
  struct track_model_output o[] = {{mid, 7}};
  cr_assert_eq(track_log_outputs(db, P1, rid, o, 1, &e), 0, "%s", e.msg);
  cr_assert_eq(track_log_outputs(db, P1, rid, o, 1, &e), 0, "%s", e.msg); /* again: kept once */
  json_t *run = track_run_get(db, P1, rid, &e);
  cr_assert_not_null(run);
  char *s = json_dumps(json_object_get(run, "outputs"), JSON_COMPACT | JSON_SORT_KEYS);
  char want[200];
  snprintf(want, sizeof want, "{\"model_outputs\":[{\"model_id\":\"%s\",\"step\":7}]}", mid);
  cr_assert_str_eq(s, want);
  free(s);
  json_decref(run);
  /* another project's model, a missing one, another project's run */
  struct track_model_output bad[] = {{foreign, 1}};
  cr_assert_eq(track_log_outputs(db, P1, rid, bad, 1, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  bad[0].model_id = "m-00000000000000000000000000000000";
  cr_assert_eq(track_log_outputs(db, P1, rid, bad, 1, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(track_log_outputs(db, P2, rid, o, 1, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  bad[0].model_id = "";
  cr_assert_eq(track_log_outputs(db, P1, rid, bad, 1, &e), -ERR_INVALID_PARAMETER_VALUE);
  /* a deleted run takes no more writes */
  cr_assert_eq(track_run_delete(db, P1, rid, &e), 0);
  cr_assert_eq(track_log_outputs(db, P1, rid, o, 1, &e), -ERR_INVALID_PARAMETER_VALUE);
  /* a run without outputs shows an empty RunOutputs */
  char *r2 = new_run(P1, exp);
  run = track_run_get(db, P1, r2, &e);
  cr_assert_eq(json_object_size(json_object_get(run, "outputs")), 0);
  cr_assert_not_null(json_object_get(run, "outputs"));
  json_decref(run);
  free(r2);
  free(rid);
  free(mid);
  free(foreign);
}

static char *names_of(json_t *models) {
  static char out[512];
  out[0] = 0;
  size_t i;
  json_t *m;
  json_array_foreach(models, i, m) {
    const char *n = json_string_value(json_object_get(json_object_get(m, "info"), "name"));
    size_t l = strlen(out);
    snprintf(out + l, sizeof out - l, "%s,", n);
  }
  return out;
}

Test(track_logged_models_more, search_orders_pages_and_refuses_metrics) {
  char exp[24];
  new_exp(P1, "order", exp);
  const char *names[] = {"b", "a", "c"};
  char *ids[3];
  for (int i = 0; i < 3; i++) ids[i] = new_model(P1, exp, names[i]);
  const char *eids[] = {exp};
  struct track_lm_order asc = {.field_name = "name", .ascending = true};
  struct track_lm_search q = {.experiment_ids = eids, .nexperiment_ids = 1, .order_by = &asc, .norder_by = 1};
  char next[TRACKING_PAGE_TOKEN_MAX];
  struct err e;
  json_t *r = track_logged_model_search(db, P1, &q, next, &e);
  cr_assert_not_null(r, "%s", e.msg);
  cr_assert_str_eq(names_of(r), "a,b,c,");
  json_decref(r);
  asc.ascending = false;
  r = track_logged_model_search(db, P1, &q, next, &e);
  cr_assert_str_eq(names_of(r), "c,b,a,");
  json_decref(r);
  /* paging: a model created between pages does not shift the next page */
  asc.ascending = true;
  q.max_results = 2;
  r = track_logged_model_search(db, P1, &q, next, &e);
  cr_assert_str_eq(names_of(r), "a,b,");
  cr_assert(next[0]);
  json_decref(r);
  char *late = new_model(P1, exp, "0-first-by-name");
  char tok[TRACKING_PAGE_TOKEN_MAX];
  memcpy(tok, next, sizeof tok);
  q.page_token = tok;
  r = track_logged_model_search(db, P1, &q, next, &e);
  cr_assert_not_null(r, "%s", e.msg);
  cr_assert_str_eq(names_of(r), "c,");
  cr_assert_eq(next[0], 0);
  json_decref(r);
  /* metrics are not stored for logged models: refused, never ignored */
  q = (struct track_lm_search){.order_by = &asc, .norder_by = 1};
  asc.field_name = "metrics.acc";
  cr_assert_null(track_logged_model_search(db, P1, &q, next, &e));
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  asc.field_name = "nope";
  cr_assert_null(track_logged_model_search(db, P1, &q, next, &e));
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  asc = (struct track_lm_order){.field_name = "name", .dataset_name = "d"};
  cr_assert_null(track_logged_model_search(db, P1, &q, next, &e));
  q = (struct track_lm_search){.ndatasets = 1};
  cr_assert_null(track_logged_model_search(db, P1, &q, next, &e));
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  /* default: newest first; creation_time is an alias */
  asc = (struct track_lm_order){.field_name = "creation_time", .ascending = false};
  q = (struct track_lm_search){.experiment_ids = eids, .nexperiment_ids = 1, .order_by = &asc, .norder_by = 1};
  r = track_logged_model_search(db, P1, &q, next, &e);
  cr_assert_not_null(r, "%s", e.msg);
  cr_assert_eq(json_array_size(r), 4);
  json_decref(r);
  for (int i = 0; i < 3; i++) free(ids[i]);
  free(late);
}

Test(track_logged_models_more, artifacts_under_a_model_and_purge_frees_them) {
  char exp[24], other[24], p[256], sha[65], shared[65];
  new_exp(P1, "arts", exp);
  new_exp(P1, "arts2", other);
  char *mid = new_model(P1, exp, "m");
  struct err e;
  snprintf(p, sizeof p, "%s/models/%s/artifacts/MLmodel", exp, mid);
  cr_assert_eq(blob_put_mem(bs, "flavors: {}", 11, sha, &e), 0);
  cr_assert_eq(track_artifact_put(db, P1, p, sha, &e), 0, "%s", e.msg);
  snprintf(p, sizeof p, "%s/models/%s/artifacts/data/model.pkl", exp, mid);
  cr_assert_eq(blob_put_mem(bs, "weights", 7, shared, &e), 0);
  cr_assert_eq(track_artifact_put(db, P1, p, shared, &e), 0, "%s", e.msg);
  /* the same bytes elsewhere keep theirs */
  snprintf(p, sizeof p, "%s/keep.pkl", exp);
  cr_assert_eq(track_artifact_put(db, P1, p, shared, &e), 0, "%s", e.msg);
  cr_assert_eq(refs(shared), 2);
  /* tenancy: another project, another experiment, a missing model */
  snprintf(p, sizeof p, "%s/models/%s/artifacts/x", exp, mid);
  cr_assert_eq(track_artifact_target_check(db, P2, p, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  snprintf(p, sizeof p, "%s/models/%s/artifacts/x", other, mid);
  cr_assert_eq(track_artifact_target_check(db, P1, p, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  snprintf(p, sizeof p, "%s/models/m-00000000000000000000000000000000/artifacts/x", exp);
  cr_assert_eq(track_artifact_target_check(db, P1, p, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  /* the listing, relative to the model's root */
  char next[TRACKING_PAGE_TOKEN_MAX], *root = NULL;
  json_t *files = track_logged_model_artifact_list(db, P1, mid, "", NULL, next, &root, &e);
  cr_assert_not_null(files, "%s", e.msg);
  char *s = json_dumps(files, JSON_COMPACT | JSON_SORT_KEYS);
  cr_assert_str_eq(s, "[{\"file_size\":11,\"is_dir\":false,\"path\":\"MLmodel\"},{\"is_dir\":true,\"path\":\"data\"}]");
  free(s);
  char want[200];
  snprintf(want, sizeof want, "mlflow-artifacts:/%s/models/%s/artifacts", exp, mid);
  cr_assert_str_eq(root, want);
  free(root);
  json_decref(files);
  files = track_logged_model_artifact_list(db, P1, mid, "data", NULL, next, &root, &e);
  s = json_dumps(files, JSON_COMPACT | JSON_SORT_KEYS);
  cr_assert_str_eq(s, "[{\"file_size\":7,\"is_dir\":false,\"path\":\"data/model.pkl\"}]");
  free(s);
  free(root);
  json_decref(files);
  cr_assert_null(track_logged_model_artifact_list(db, P2, mid, "", NULL, next, &root, &e));
  cr_assert_eq(e.code, ERR_RESOURCE_DOES_NOT_EXIST);
  /* delete, then purge: the model's references go, shared bytes stay */
  cr_assert_eq(track_logged_model_delete(db, P1, mid, &e), 0);
  struct track_gc_report r;
  cr_assert_eq(track_purge_deleted(db, time_wall_ms() - 60000, &r, &e), 0);
  cr_assert_eq(r.models, 0); /* deleted too recently */
  cr_assert_eq(track_purge_deleted(db, time_wall_ms() + 1000, &r, &e), 0, "%s", e.msg);
  cr_assert_eq(r.models, 1);
  cr_assert_eq(r.artifacts, 2);
  cr_assert_eq(refs(sha), 0);
  cr_assert_eq(refs(shared), 1);
  free(mid);
}
