/* tests for the model registry against a real store: names per project,
 * version numbering that never reuses a number, the status and stage state
 * machines (archive_existing_versions), aliases following versions, latest
 * versions per stage, sources resolved and refused, and search paging with
 * a snapshot. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store_fixture.h"
#include "registry/registry.h"
#include "track/track.h"

static char dir[64];
static struct db *db;

#define P1 "aaaa0000000000000000000000000001"
#define P2 "bbbb0000000000000000000000000002"

static void setup(void) { store_fixture_open("kiln-reg", dir, &db); }
static void teardown(void) { store_fixture_close(dir, db); }

TestSuite(registry_models_store, .init = setup, .fini = teardown);
TestSuite(registry_models_versions, .init = setup, .fini = teardown);
TestSuite(registry_models_search, .init = setup, .fini = teardown);
TestSuite(registry_models_rules);

static const char *s_of(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static void model(const char *project, const char *name) {
  struct err e;
  json_t *m = registry_model_create(db, project, name, NULL, NULL, 0, "tester", &e);
  cr_assert_not_null(m, "%s", e.msg);
  json_decref(m);
}

/* A run of the project's Default experiment; its artifact URI in uri. */
static char *run_of(const char *project, char uri[256]) {
  struct err e;
  struct track_run_new in = {.experiment_id = "0", .user_id = "tester"};
  json_t *run = track_run_create(db, project, &in, &e);
  cr_assert_not_null(run, "%s", e.msg);
  json_t *info = json_object_get(run, "info");
  char *id = strdup(s_of(info, "run_id"));
  snprintf(uri, 256, "%s", s_of(info, "artifact_uri"));
  json_decref(run);
  return id;
}

static char *version(const char *project, const char *name, const char *source) {
  struct err e;
  struct registry_version_new in = {.name = name, .source = source};
  json_t *v = registry_version_create(db, project, &in, &e);
  cr_assert_not_null(v, "%s: %s", source, e.msg);
  char *out = strdup(s_of(v, "version"));
  cr_assert_str_eq(s_of(v, "status"), "READY");
  json_decref(v);
  return out;
}

static const char *stage_of(const char *project, const char *name, const char *v) {
  static char out[32];
  struct err e;
  json_t *o = registry_version_get(db, project, name, v, &e);
  cr_assert_not_null(o, "%s", e.msg);
  snprintf(out, sizeof out, "%s", s_of(o, "current_stage"));
  json_decref(o);
  return out;
}

Test(registry_models_store, names_are_per_project_and_unique_within_one) {
  struct err e;
  model(P1, "churn");
  model(P2, "churn");
  cr_assert_null(registry_model_create(db, P1, "churn", NULL, NULL, 0, NULL, &e));
  cr_assert_eq(e.code, ERR_RESOURCE_ALREADY_EXISTS);
  cr_assert_str_eq(e.msg, "Registered Model (name=churn) already exists.");
  cr_assert_eq(registry_model_delete(db, P2, "churn", &e), 0, "%s", e.msg);
  json_t *m = registry_model_get(db, P1, "churn", &e);
  cr_assert_not_null(m, "deleting P2's model left P1's: %s", e.msg);
  json_decref(m);
  cr_assert_null(registry_model_get(db, P2, "churn", &e));
  cr_assert_eq(e.code, ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_str_eq(e.msg, "Registered Model with name=churn not found");
}

Test(registry_models_store, rename_moves_versions_and_refuses_taken_names) {
  struct err e;
  model(P1, "a");
  model(P1, "b");
  free(version(P1, "a", "s3://bucket/a"));
  cr_assert_null(registry_model_rename(db, P1, "a", "b", &e));
  cr_assert_eq(e.code, ERR_RESOURCE_ALREADY_EXISTS);
  json_t *m = registry_model_rename(db, P1, "a", "c", &e);
  cr_assert_not_null(m, "%s", e.msg);
  cr_assert_str_eq(s_of(m, "name"), "c");
  json_decref(m);
  json_t *v = registry_version_get(db, P1, "c", "1", &e);
  cr_assert_not_null(v, "%s", e.msg);
  cr_assert_str_eq(s_of(v, "name"), "c");
  json_decref(v);
}

Test(registry_models_versions, numbers_grow_and_are_never_reused) {
  struct err e;
  model(P1, "m");
  char *v1 = version(P1, "m", "s3://b/1"), *v2 = version(P1, "m", "s3://b/2");
  cr_assert_str_eq(v1, "1");
  cr_assert_str_eq(v2, "2");
  cr_assert_eq(registry_version_delete(db, P1, "m", "2", &e), 0, "%s", e.msg);
  char *v3 = version(P1, "m", "s3://b/3");
  cr_assert_str_eq(v3, "3");
  cr_assert_null(registry_version_get(db, P1, "m", "2", &e));
  cr_assert_str_eq(e.msg, "Model Version (name=m, version=2) not found");
  cr_assert_null(registry_version_get(db, P1, "m", "two", &e));
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  free(v1);
  free(v2);
  free(v3);
}

Test(registry_models_versions, stages_archive_existing_and_latest_per_stage) {
  struct err e;
  model(P1, "m");
  for (int i = 0; i < 3; i++) free(version(P1, "m", "s3://b/x"));
  json_t *v = registry_version_transition(db, P1, "m", "1", "production", false, &e);
  cr_assert_not_null(v, "%s", e.msg);
  cr_assert_str_eq(s_of(v, "current_stage"), "Production");
  json_decref(v);
  json_decref(registry_version_transition(db, P1, "m", "2", "Staging", false, &e));
  v = registry_version_transition(db, P1, "m", "3", "Production", true, &e);
  cr_assert_not_null(v, "%s", e.msg);
  json_decref(v);
  cr_assert_str_eq(stage_of(P1, "m", "1"), "Archived");
  cr_assert_str_eq(stage_of(P1, "m", "2"), "Staging");
  cr_assert_str_eq(stage_of(P1, "m", "3"), "Production");
  /* only Staging and Production archive others */
  cr_assert_null(registry_version_transition(db, P1, "m", "2", "Archived", true, &e));
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  cr_assert_null(registry_version_transition(db, P1, "m", "2", "Live", false, &e));
  cr_assert_str_eq(e.msg,
                   "Invalid Model Version stage: Live. Value must be one of None, Staging, Production, Archived.");
  const char *want[] = {"Production", "archived"};
  json_t *arr = registry_latest_versions(db, P1, "m", want, 2, &e);
  cr_assert_not_null(arr, "%s", e.msg);
  cr_assert_eq(json_array_size(arr), 2);
  cr_assert_str_eq(s_of(json_array_get(arr, 0), "version"), "3");
  cr_assert_str_eq(s_of(json_array_get(arr, 1), "version"), "1");
  json_decref(arr);
  arr = registry_latest_versions(db, P1, "m", NULL, 0, &e);
  cr_assert_eq(json_array_size(arr), 3); /* Staging, Production, Archived: no version is in None */
  json_decref(arr);
}

Test(registry_models_versions, aliases_follow_versions) {
  struct err e;
  model(P1, "m");
  free(version(P1, "m", "s3://b/1"));
  free(version(P1, "m", "s3://b/2"));
  cr_assert_eq(registry_alias_set(db, P1, "m", "champion", "1", &e), 0, "%s", e.msg);
  cr_assert_eq(registry_alias_set(db, P1, "m", "champion", "2", &e), 0, "%s", e.msg);
  json_t *v = registry_version_by_alias(db, P1, "m", "champion", &e);
  cr_assert_not_null(v, "%s", e.msg);
  cr_assert_str_eq(s_of(v, "version"), "2");
  json_decref(v);
  cr_assert_neq(registry_alias_set(db, P1, "m", "x", "9", &e), 0);
  cr_assert_eq(e.code, ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_neq(registry_alias_set(db, P1, "m", "Latest", "1", &e), 0);
  cr_assert_neq(registry_alias_set(db, P1, "m", "v12", "1", &e), 0);
  cr_assert_eq(registry_alias_set(db, P1, "m", "v12a", "1", &e), 0, "%s", e.msg);
  cr_assert_eq(registry_version_delete(db, P1, "m", "2", &e), 0, "%s", e.msg);
  cr_assert_null(registry_version_by_alias(db, P1, "m", "champion", &e));
  cr_assert_eq(e.code, ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_null(registry_version_by_alias(db, P2, "m", "v12a", &e), "another project sees nothing");
}

Test(registry_models_versions, sources_must_be_the_projects_or_remote) {
  struct err e;
  char uri[256], other_uri[256];
  model(P1, "m");
  char *run = run_of(P1, uri);
  char *other = run_of(P2, other_uri);
  char src[512];
  snprintf(src, sizeof src, "runs:/%s/model", run);
  char *v = version(P1, "m", src);
  char *where;
  cr_assert_eq(registry_version_download_uri(db, P1, "m", v, &where, &e), 0, "%s", e.msg);
  char want[300];
  snprintf(want, sizeof want, "%s/model", uri);
  cr_assert_str_eq(where, want);
  free(where);
  free(v);
  snprintf(src, sizeof src, "%s/model", uri);
  free(version(P1, "m", src));
  const char *refused[] = {"/etc/passwd", "file:///etc/passwd", "relative/dir", "s3://b/../x", ""};
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    struct registry_version_new in = {.name = "m", .source = refused[i]};
    cr_assert_null(registry_version_create(db, P1, &in, &e), "%s was accepted", refused[i]);
    cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE, "%s: %s", refused[i], e.msg);
  }
  /* another project's run, by source or by run_id */
  snprintf(src, sizeof src, "%s/model", other_uri);
  struct registry_version_new in = {.name = "m", .source = src};
  cr_assert_null(registry_version_create(db, P1, &in, &e));
  cr_assert_eq(e.code, ERR_RESOURCE_DOES_NOT_EXIST, "%s", e.msg);
  struct registry_version_new in2 = {.name = "m", .source = "s3://b/m", .run_id = other};
  cr_assert_null(registry_version_create(db, P1, &in2, &e));
  cr_assert_eq(e.code, ERR_RESOURCE_DOES_NOT_EXIST, "%s", e.msg);
  free(run);
  free(other);
}

static int page_names(const char *project, const char *filter, int64_t max, const char *token, char *out, size_t cap,
                      char next[REGISTRY_PAGE_TOKEN_MAX]) {
  struct err e;
  struct registry_search s = {.filter = filter, .max_results = max, .page_token = token};
  json_t *arr = registry_model_search(db, project, &s, next, &e);
  cr_assert_not_null(arr, "%s", e.msg);
  size_t n = strlen(out);
  for (size_t i = 0; i < json_array_size(arr); i++)
    n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "," : "", s_of(json_array_get(arr, i), "name"));
  int count = (int)json_array_size(arr);
  json_decref(arr);
  return count;
}

Test(registry_models_search, pages_hold_still_while_models_are_created) {
  const char *names[] = {"d", "b", "e", "a", "c"};
  for (int i = 0; i < 5; i++) model(P1, names[i]);
  model(P2, "0-other-project");
  char out[256] = "", next[REGISTRY_PAGE_TOKEN_MAX], token[REGISTRY_PAGE_TOKEN_MAX] = "";
  int pages = 0;
  do {
    page_names(P1, NULL, 2, token[0] ? token : NULL, out, sizeof out, next);
    model(P1, pages == 0 ? "0-new" : pages == 1 ? "00-new" : "000-new"); /* would sort first */
    snprintf(token, sizeof token, "%s", next);
    pages++;
  } while (token[0] && pages < 10);
  cr_assert_str_eq(out, "a,b,c,d,e");
  cr_assert_eq(pages, 3);
  char f[256] = "";
  page_names(P1, "name LIKE '%new'", 100, NULL, f, sizeof f, next);
  cr_assert_str_eq(f, "0-new,00-new,000-new");
  cr_assert_str_eq(next, "");
}

Test(registry_models_search, limits_and_bad_tokens) {
  struct err e;
  char next[REGISTRY_PAGE_TOKEN_MAX];
  struct registry_search s = {.max_results = 1001};
  cr_assert_null(registry_model_search(db, P1, &s, next, &e));
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  struct registry_search v = {.max_results = 200001};
  cr_assert_null(registry_version_search(db, P1, &v, next, &e));
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  struct registry_search t = {.page_token = "%%%"};
  cr_assert_null(registry_model_search(db, P1, &t, next, &e));
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  struct registry_search f = {.filter = "tags.k = 'v' AND run_id = 'x'"};
  cr_assert_null(registry_model_search(db, P1, &f, next, &e));
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
}

Test(registry_models_rules, stage_names) {
  cr_assert_str_eq(registry_stage_canonical("none"), "None");
  cr_assert_str_eq(registry_stage_canonical("STAGING"), "Staging");
  cr_assert_str_eq(registry_stage_canonical("Production"), "Production");
  cr_assert_str_eq(registry_stage_canonical("archived"), "Archived");
  cr_assert_null(registry_stage_canonical("Prod"));
  cr_assert_null(registry_stage_canonical(NULL));
  cr_assert_str_eq(registry_status_name(REGISTRY_READY), "READY");
  cr_assert_str_eq(registry_status_name(REGISTRY_PENDING_REGISTRATION), "PENDING_REGISTRATION");
}
