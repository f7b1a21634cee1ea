/* tests for registry governance against a real store: the approval request
 * state machine (every edge, every refused move), the gate in the stage and
 * alias functions, approvals performing the change, staleness, and the
 * audit entries each move writes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store_fixture.h"
#include "auth/auth.h"
#include "registry/registry.h"

static char dir[64];
static struct db *db;

#define P1 "aaaa0000000000000000000000000001"
#define P2 "bbbb0000000000000000000000000002"

static const struct registry_actor editor = {"eeee0000000000000000000000000001", "eve", false};
static const struct registry_actor admin = {"adad0000000000000000000000000001", "ada", true};

static void setup(void) {
  store_fixture_open("kiln-gov", dir, &db);
  struct err e;
  json_t *m = registry_model_create(db, P1, "churn", NULL, NULL, 0, "t", &e);
  cr_assert_not_null(m, "%s", e.msg);
  json_decref(m);
  for (int i = 0; i < 2; i++) {
    struct registry_version_new in = {.name = "churn", .source = "s3://b/churn"};
    json_t *v = registry_version_create(db, P1, &in, &e);
    cr_assert_not_null(v, "%s", e.msg);
    json_decref(v);
  }
  const char *aliases[] = {"champion"};
  bool on = true;
  json_t *g = registry_gov_settings_set(db, P1, &on, aliases, 1, &admin, &e);
  cr_assert_not_null(g, "%s", e.msg);
  json_decref(g);
}
static void teardown(void) { store_fixture_close(dir, db); }

TestSuite(registry_gov_states);
TestSuite(registry_gov_store, .init = setup, .fini = teardown);

static const char *s_of(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static char *request(const char *version, const char *stage, const char *alias, bool archive) {
  struct err e;
  struct registry_request_new in = {.name = "churn", .version = version, .stage = stage, .alias = alias,
                                    .archive_existing = archive, .comment = "please"};
  json_t *r = registry_request_create(db, P1, &in, &editor, &e);
  cr_assert_not_null(r, "%s", e.msg);
  cr_assert_str_eq(s_of(r, "state"), "PENDING");
  char *id = strdup(s_of(r, "id"));
  json_decref(r);
  return id;
}

static const char *stage_of(const char *version) {
  static char out[32];
  struct err e;
  json_t *v = registry_version_get(db, P1, "churn", version, &e);
  cr_assert_not_null(v, "%s", e.msg);
  snprintf(out, sizeof out, "%s", s_of(v, "current_stage"));
  json_decref(v);
  return out;
}

static int64_t audit_count(const char *action) {
  struct err e;
  struct auth_audit_filter f = {.action = action, .max_results = 1000};
  int64_t next;
  json_t *arr = auth_audit_list(db, &f, &next, &e);
  cr_assert_not_null(arr, "%s", e.msg);
  int64_t n = (int64_t)json_array_size(arr);
  json_decref(arr);
  return n;
}

Test(registry_gov_states, only_pending_moves_and_only_to_a_final_state) {
  enum registry_request_state all[] = {REGISTRY_REQ_PENDING, REGISTRY_REQ_APPROVED, REGISTRY_REQ_REJECTED,
                                       REGISTRY_REQ_CANCELLED, REGISTRY_REQ_STALE};
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 5; j++) {
      bool want = all[i] == REGISTRY_REQ_PENDING && all[j] != REGISTRY_REQ_PENDING;
      cr_assert_eq(registry_request_move_legal(all[i], all[j]), want, "%s -> %s",
                   registry_request_state_name(all[i]), registry_request_state_name(all[j]));
    }
  enum registry_request_state s;
  struct err e;
  cr_assert_eq(registry_request_state_parse("stale", &s, &e), 0);
  cr_assert_eq(s, REGISTRY_REQ_STALE);
  cr_assert_eq(registry_request_state_parse("DONE", &s, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(err_http_status(ERR_APPROVAL_REQUIRED), 409);
  cr_assert_str_eq(err_code_str(ERR_APPROVAL_REQUIRED), "APPROVAL_REQUIRED");
}

Test(registry_gov_store, the_gate_refuses_callers_and_lets_admins_through) {
  struct err e;
  cr_assert_null(registry_version_transition_as(db, P1, "churn", "1", "production", false, &editor, &e));
  cr_assert_eq(e.code, ERR_APPROVAL_REQUIRED);
  cr_assert_not_null(strstr(e.msg, "approval"), "%s", e.msg);
  /* the plain MLflow call acts as a caller who is no admin */
  cr_assert_null(registry_version_transition(db, P1, "churn", "1", "Production", false, &e));
  cr_assert_eq(e.code, ERR_APPROVAL_REQUIRED);
  cr_assert_eq(registry_alias_set(db, P1, "churn", "Champion", "1", &e), -ERR_APPROVAL_REQUIRED);
  cr_assert_eq(registry_alias_set(db, P1, "churn", "other", "1", &e), 0, "%s", e.msg);
  cr_assert_str_eq(stage_of("1"), "None");
  json_t *v = registry_version_transition_as(db, P1, "churn", "1", "Production", false, &admin, &e);
  cr_assert_not_null(v, "%s", e.msg);
  json_decref(v);
  cr_assert_eq(registry_alias_set_as(db, P1, "churn", "champion", "1", &admin, &e), 0, "%s", e.msg);
  cr_assert_eq(audit_count("registry.governed_change.direct"), 2);
  /* another project has no rules */
  json_t *m = registry_model_create(db, P2, "churn", NULL, NULL, 0, "t", &e);
  json_decref(m);
  struct registry_version_new in = {.name = "churn", .source = "s3://b/x"};
  json_decref(registry_version_create(db, P2, &in, &e));
  v = registry_version_transition(db, P2, "churn", "1", "Production", false, &e);
  cr_assert_not_null(v, "%s", e.msg);
  json_decref(v);
}

Test(registry_gov_store, approve_performs_the_change_and_final_states_stay_final) {
  struct err e;
  json_decref(registry_version_transition_as(db, P1, "churn", "1", "Production", false, &admin, &e));
  char *id = request("2", "Production", NULL, true);
  cr_assert_null(registry_request_decide(db, P1, id, REGISTRY_REQ_APPROVED, NULL, &editor, &e));
  cr_assert_eq(e.code, ERR_PERMISSION_DENIED);
  json_t *r = registry_request_decide(db, P1, id, REGISTRY_REQ_APPROVED, "ok", &admin, &e);
  cr_assert_not_null(r, "%s", e.msg);
  cr_assert_str_eq(s_of(r, "state"), "APPROVED");
  json_decref(r);
  cr_assert_str_eq(stage_of("2"), "Production");
  cr_assert_str_eq(stage_of("1"), "Archived");
  enum registry_request_state again[] = {REGISTRY_REQ_APPROVED, REGISTRY_REQ_REJECTED};
  for (int i = 0; i < 2; i++) {
    cr_assert_null(registry_request_decide(db, P1, id, again[i], NULL, &admin, &e));
    cr_assert_eq(e.code, ERR_INVALID_STATE, "%s", e.msg);
  }
  cr_assert_null(registry_request_decide(db, P1, id, REGISTRY_REQ_CANCELLED, NULL, &editor, &e));
  cr_assert_eq(e.code, ERR_INVALID_STATE);
  /* STALE is never a decision */
  cr_assert_null(registry_request_decide(db, P1, id, REGISTRY_REQ_STALE, NULL, &admin, &e));
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(audit_count("registry.approval.request"), 1);
  cr_assert_eq(audit_count("registry.approval.approve"), 1);
  /* another project cannot reach it */
  cr_assert_null(registry_request_get(db, P2, id, &e));
  cr_assert_eq(e.code, ERR_RESOURCE_DOES_NOT_EXIST);
  free(id);
}

Test(registry_gov_store, reject_and_cancel) {
  struct err e;
  char *a = request("1", NULL, "champion", false), *b = request("1", "Production", NULL, false);
  json_t *r = registry_request_decide(db, P1, a, REGISTRY_REQ_REJECTED, "no", &admin, &e);
  cr_assert_not_null(r, "%s", e.msg);
  cr_assert_str_eq(s_of(r, "state"), "REJECTED");
  json_decref(r);
  cr_assert_null(registry_version_by_alias(db, P1, "churn", "champion", &e));
  cr_assert_null(registry_request_decide(db, P1, b, REGISTRY_REQ_CANCELLED, NULL, &admin, &e));
  cr_assert_eq(e.code, ERR_PERMISSION_DENIED); /* only the requester cancels */
  r = registry_request_decide(db, P1, b, REGISTRY_REQ_CANCELLED, NULL, &editor, &e);
  cr_assert_not_null(r, "%s", e.msg);
  cr_assert_str_eq(s_of(r, "state"), "CANCELLED");
  json_decref(r);
  cr_assert_str_eq(stage_of("1"), "None");
  free(a);
  free(b);
}

Test(registry_gov_store, requests_go_stale_when_their_version_moves_or_goes) {
  struct err e;
  char *a = request("1", "Production", NULL, false), *b = request("2", NULL, "champion", false);
  json_decref(registry_version_transition(db, P1, "churn", "1", "Staging", false, &e));
  char next[REGISTRY_PAGE_TOKEN_MAX];
  json_t *arr = registry_request_list(db, P1, REGISTRY_REQ_STALE, 0, NULL, next, &e);
  cr_assert_not_null(arr, "%s", e.msg);
  cr_assert_eq(json_array_size(arr), 1);
  cr_assert_str_eq(s_of(json_array_get(arr, 0), "id"), a);
  json_decref(arr);
  cr_assert_eq(registry_version_delete(db, P1, "churn", "2", &e), 0, "%s", e.msg);
  /* deciding notices first: the request ends STALE, the call says so */
  cr_assert_null(registry_request_decide(db, P1, b, REGISTRY_REQ_APPROVED, NULL, &admin, &e));
  cr_assert_eq(e.code, ERR_CONFLICT);
  cr_assert_not_null(strstr(e.msg, "STALE"), "%s", e.msg);
  json_t *r = registry_request_get(db, P1, b, &e);
  cr_assert_str_eq(s_of(r, "state"), "STALE");
  json_decref(r);
  cr_assert_eq(audit_count("registry.approval.stale"), 2);
  arr = registry_request_list(db, P1, REGISTRY_REQ_PENDING, 0, NULL, next, &e);
  cr_assert_eq(json_array_size(arr), 0);
  json_decref(arr);
  free(a);
  free(b);
}
