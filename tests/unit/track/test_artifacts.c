/* tests for the artifact bookkeeping against a real store and blob store:
 * path rules, tenancy, references taken and dropped (replace, delete,
 * purge), directory listings over flat rows, multipart uploads. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store_fixture.h"
#include "track/track.h"

static char dir[64];
static struct db *db;
static struct blob_store *bs;

#define P1 "aaaa0000000000000000000000000001"
#define P2 "bbbb0000000000000000000000000002"

static void setup(void) {
  store_fixture_open("kiln-art", dir, &db);
  store_fixture_blobs(dir, db, &bs);
}

static void teardown(void) {
  blob_close(bs);
  store_fixture_close(dir, db);
}

TestSuite(track_artifacts, .init = setup, .fini = teardown);

Test(track_artifacts, path_rules) {
  static const char *const ok[] = {"1/a", "1/abc/artifacts/model/MLmodel", "1/with space/ünïcode.txt",
                                   "1/a..b/.hidden/x.", "1/:colon"};
  static const char *const bad[] = {"/1/a", "1//a", "1/a/", "1/./a", "1/../a", "..", "1/a\\b",
                                    "1/a\x01", "1/a\x7f", "1/\xff", "1/\xc0\xaf", "1/\xed\xa0\x80", ".", ""};
  struct err e;
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    cr_assert_eq(track_artifact_path_check(ok[i], false, &e), 0, "%s: %s", ok[i], e.msg);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_assert_eq(track_artifact_path_check(bad[i], false, &e), -ERR_INVALID_PARAMETER_VALUE, "%s", bad[i]);
    cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  }
  cr_assert_eq(track_artifact_path_check("", true, &e), 0);
  char longp[TRACKING_ARTIFACT_PATH_MAX + 2];
  memset(longp, 'a', sizeof longp - 1);
  longp[sizeof longp - 1] = 0;
  cr_assert_neq(track_artifact_path_check(longp, false, &e), 0);
  longp[TRACKING_ARTIFACT_PATH_MAX] = 0;
  cr_assert_eq(track_artifact_path_check(longp, false, &e), 0);
}

static char *run_in(const char *project, char exp_out[24]) {
  int64_t id;
  struct err e;
  char name[32];
  static int n;
  snprintf(name, sizeof name, "exp%d", ++n);
  cr_assert_eq(track_experiment_create(db, project, name, NULL, NULL, 0, &id, &e), 0, "%s", e.msg);
  snprintf(exp_out, 24, "%lld", (long long)id);
  struct track_run_new in = {.experiment_id = exp_out, .user_id = "t"};
  json_t *run = track_run_create(db, project, &in, &e);
  cr_assert_not_null(run, "%s", e.msg);
  char *rid = strdup(json_string_value(json_object_get(json_object_get(run, "info"), "run_id")));
  json_decref(run);
  return rid;
}

static void put(const char *project, const char *path, const char *content, char sha[65]) {
  struct err e;
  cr_assert_eq(blob_put_mem(bs, content, strlen(content), sha, &e), 0, "%s", e.msg);
  cr_assert_eq(track_artifact_put(db, project, path, sha, &e), 0, "%s: %s", path, e.msg);
}

static int64_t refs(const char *sha) {
  struct blob_info bi;
  struct err e;
  cr_assert_eq(blob_stat(bs, sha, &bi, &e), 0, "%s", e.msg);
  return bi.refcount;
}

static char *list_text(const char *project, const char *d) {
  struct err e;
  json_t *v = track_artifact_list(db, project, d, &e);
  cr_assert_not_null(v, "%s", e.msg);
  char *s = json_dumps(v, JSON_COMPACT);
  json_decref(v);
  return s;
}

Test(track_artifacts, put_get_list_delete_and_references) {
  char exp[24], p[256], sha1[65], sha2[65], sha3[65];
  char *rid = run_in(P1, exp);
  struct err e;
  snprintf(p, sizeof p, "%s/%s/artifacts/model/w.bin", exp, rid);
  put(P1, p, "weights", sha1);
  cr_assert_eq(refs(sha1), 1);
  snprintf(p, sizeof p, "%s/%s/artifacts/model/copy.bin", exp, rid);
  put(P1, p, "weights", sha2); /* same bytes: one blob, two references */
  cr_assert_str_eq(sha1, sha2);
  cr_assert_eq(refs(sha1), 2);
  put(P1, p, "weights", sha2); /* the same file again changes nothing */
  cr_assert_eq(refs(sha1), 2);
  put(P1, p, "other", sha3); /* replaced: the old reference goes */
  cr_assert_eq(refs(sha1), 1);
  cr_assert_eq(refs(sha3), 1);
  snprintf(p, sizeof p, "%s/%s/artifacts/a.txt", exp, rid);
  put(P1, p, "a", sha2);

  struct track_artifact a;
  snprintf(p, sizeof p, "%s/%s/artifacts/model/copy.bin", exp, rid);
  cr_assert_eq(track_artifact_get(db, P1, p, &a, &e), 0, "%s", e.msg);
  cr_assert_str_eq(a.sha256, sha3);
  cr_assert_eq(a.size, 5);
  /* another project: as missing */
  cr_assert_eq(track_artifact_get(db, P2, p, &a, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(track_artifact_put(db, P2, p, sha3, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(track_artifact_target_check(db, P2, p, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_null(track_artifact_list(db, P2, exp, &e));

  snprintf(p, sizeof p, "%s/%s/artifacts", exp, rid);
  char *s = list_text(P1, p);
  cr_assert_str_eq(s, "[{\"path\":\"a.txt\",\"is_dir\":false,\"file_size\":1},{\"path\":\"model\",\"is_dir\":true}]");
  free(s);
  s = list_text(P2, "");
  cr_assert_str_eq(s, "[]");
  free(s);

  /* tracking's list: relative to the run's root */
  char next[TRACKING_PAGE_TOKEN_MAX], *root;
  json_t *v = track_run_artifact_list(db, P1, rid, "model", NULL, next, &root, &e);
  cr_assert_not_null(v, "%s", e.msg);
  s = json_dumps(v, JSON_COMPACT);
  cr_assert_str_eq(s, "[{\"path\":\"model/copy.bin\",\"is_dir\":false,\"file_size\":5},"
                      "{\"path\":\"model/w.bin\",\"is_dir\":false,\"file_size\":7}]");
  cr_assert_str_eq(next, "");
  char want[128];
  snprintf(want, sizeof want, "mlflow-artifacts:/%s/%s/artifacts", exp, rid);
  cr_assert_str_eq(root, want);
  free(s);
  free(root);
  json_decref(v);

  /* deleting a directory drops every reference under it */
  int64_t n;
  snprintf(p, sizeof p, "%s/%s/artifacts/model", exp, rid);
  cr_assert_eq(track_artifact_delete(db, P1, p, &n, &e), 0, "%s", e.msg);
  cr_assert_eq(n, 2);
  cr_assert_eq(refs(sha1), 0);
  cr_assert_eq(refs(sha3), 0);
  cr_assert_eq(track_artifact_delete(db, P1, p, &n, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  free(rid);
}

Test(track_artifacts, purge_deleted_runs_and_experiments) {
  char exp[24], p[256], sha[65], keep[65];
  char *rid = run_in(P1, exp);
  struct err e;
  snprintf(p, sizeof p, "%s/%s/artifacts/x", exp, rid);
  put(P1, p, "gone soon", sha);
  snprintf(p, sizeof p, "%s/other/y", exp);
  put(P1, p, "experiment level", keep);
  struct track_gc_report r;
  cr_assert_eq(track_purge_deleted(db, time_wall_ms() + 1000, &r, &e), 0, "%s", e.msg);
  cr_assert_eq(r.runs + r.experiments + r.artifacts, 0);
  cr_assert_eq(track_run_delete(db, P1, rid, &e), 0);
  cr_assert_eq(track_purge_deleted(db, time_wall_ms() - 60000, &r, &e), 0);
  cr_assert_eq(r.runs, 0); /* deleted too recently */
  cr_assert_eq(track_purge_deleted(db, time_wall_ms() + 1000, &r, &e), 0);
  cr_assert_eq(r.runs, 1);
  cr_assert_eq(r.artifacts, 1);
  cr_assert_eq(refs(sha), 0);
  cr_assert_eq(refs(keep), 1);
  json_t *run = track_run_get(db, P1, rid, &e);
  cr_assert_null(run);
  cr_assert_eq(track_experiment_delete(db, P1, exp, &e), 0, "%s", e.msg);
  cr_assert_eq(track_purge_deleted(db, time_wall_ms() + 1000, &r, &e), 0);
  cr_assert_eq(r.experiments, 1);
  cr_assert_eq(r.artifacts, 1);
  cr_assert_eq(refs(keep), 0);
  int removed;
  cr_assert_eq(blob_gc(bs, 0, &removed, &e), 0);
  free(rid);
}

Test(track_artifacts, multipart_parts_are_referenced_until_finished) {
  char exp[24], p[256], s1[65], s2[65], id[65];
  char *rid = run_in(P1, exp);
  struct err e;
  snprintf(p, sizeof p, "%s/%s/artifacts/big.bin", exp, rid);
  cr_assert_eq(track_mpu_create(db, P1, p, 2, id, &e), 0, "%s", e.msg);
  cr_assert_eq(strlen(id), 64);
  cr_assert_eq(track_mpu_exists(db, id, &e), 0);
  cr_assert_eq(blob_put_mem(bs, "part1", 5, s1, &e), 0);
  cr_assert_eq(blob_put_mem(bs, "part2", 5, s2, &e), 0);
  cr_assert_eq(track_mpu_part_put(db, id, 2, s2, &e), 0, "%s", e.msg);
  cr_assert_eq(track_mpu_part_put(db, id, 1, s1, &e), 0, "%s", e.msg);
  cr_assert_eq(track_mpu_part_put(db, id, 3, s1, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(refs(s1), 1);
  struct track_mpu_part *parts;
  int n;
  cr_assert_eq(track_mpu_parts(db, P2, p, id, &parts, &n, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(track_mpu_parts(db, P1, p, id, &parts, &n, &e), 0, "%s", e.msg);
  cr_assert_eq(n, 2);
  cr_assert_eq(parts[0].part_number, 1);
  cr_assert_str_eq(parts[1].sha256, s2);
  cr_assert_eq(parts[1].size, 5);
  free(parts);
  cr_assert_eq(track_mpu_finish(db, P1, p, id, &e), 0, "%s", e.msg);
  cr_assert_eq(refs(s1), 0);
  cr_assert_eq(refs(s2), 0);
  cr_assert_eq(track_mpu_exists(db, id, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(track_mpu_create(db, P1, p, 0, id, &e), -ERR_INVALID_PARAMETER_VALUE);
  free(rid);
}
