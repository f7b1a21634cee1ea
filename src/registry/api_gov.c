/* registry/api_gov: Kiln's own registry routes under /api/v1 — governance
 * settings, approval requests (the approvals inbox), comments on model
 * versions and version lineage. Thin: parse, call the domain, reply. The
 * project is the caller's selection as on the MLflow routes: a request or
 * comment of another project answers 404 like a missing one. */
#include "http/http.h"
#include "registry/api_internal.h"
#include "registry/registry.h"
#include "track/api_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct db *DB(struct req *rq) { return req_app(rq)->db; }

void reg_api_actor(struct req *rq, const char *project_id, struct registry_actor *a) {
  const struct auth_principal *p = req_principal(rq);
  struct err e;
  a->user_id = p->user_id;
  a->username = p->username[0] ? p->username : NULL;
  /* the central check itself decides who counts as the project's admin:
   * project admins, org owners/admins, server admins, and only with a
   * credential that carries the admin scope */
  a->project_admin = req_app(rq)->auth && project_id &&
                     auth_authorize(req_app(rq)->auth, p, AUTH_SCOPE_ADMIN, project_id, &e) == 0;
}

/* ---- fields ------------------------------------------------------------------------------- */

static int bad(struct reply *rp, const char *name, const char *want) {
  reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "Invalid value for parameter '%s' supplied: expected %s", name, want);
  return -1;
}

/* A string field of a JSON body (NULL when absent or null). */
static int b_str(struct reply *rp, json_t *body, const char *name, bool required, const char **out) {
  json_t *v = json_object_get(body, name);
  *out = NULL;
  if (json_is_string(v)) *out = json_string_value(v);
  else if (v && !json_is_null(v)) return bad(rp, name, "a string");
  if (required && (!*out || !**out)) {
    reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "Missing value for required parameter '%s'.", name);
    return -1;
  }
  return 0;
}

static int b_bool(struct reply *rp, json_t *body, const char *name, bool *out, bool *given) {
  json_t *v = json_object_get(body, name);
  *out = false;
  if (given) *given = false;
  if (!v || json_is_null(v)) return 0;
  if (!json_is_boolean(v)) return bad(rp, name, "true or false");
  *out = json_is_true(v);
  if (given) *given = true;
  return 0;
}

/* An optional JSON body: *out NULL when empty (every field then absent).
 * -1 with the reply set when it is not a JSON object. */
static int body_of(struct req *rq, struct reply *rp, json_t **out) {
  size_t n;
  req_body(rq, &n);
  *out = n ? req_json_object(rq, rp) : NULL;
  return n && !*out ? -1 : 0;
}

static int q_paging(struct req *rq, struct reply *rp, int64_t *max, const char **token) {
  const char *m = req_query(rq, "max_results");
  *max = 0;
  *token = req_query(rq, "page_token");
  if (m && *m && (str_to_i64(m, max) || *max < 1 || *max > REGISTRY_GOV_MAX_RESULTS)) {
    reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "max_results must be an integer between 1 and %d",
               REGISTRY_GOV_MAX_RESULTS);
    return -1;
  }
  return 0;
}

static void reply_page(struct reply *rp, const char *key, json_t *arr, const char *next, const struct err *e) {
  if (!arr) {
    reply_err(rp, e);
    return;
  }
  json_t *o = json_pack("{s:o}", key, arr);
  if (next && next[0]) json_object_set_new(o, "next_page_token", json_string(next));
  reply_json(rp, 200, o);
}

static void reply_obj(struct reply *rp, const char *key, json_t *o, const struct err *e) {
  if (o) reply_json(rp, 200, json_pack("{s:o}", key, o));
  else reply_err(rp, e);
}

/* ---- governance settings ------------------------------------------------------------------ */

static int h_settings_get(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  struct err e;
  if (proj) reply_obj(rp, "governance", registry_gov_settings_get(DB(rq), proj, &e), &e);
  return 0;
}

#define ALIASES_MAX REGISTRY_GOV_MAX_PROTECTED_ALIASES
static int h_settings_put(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  json_t *body;
  if (!proj || body_of(rq, rp, &body)) return 0;
  bool require, given;
  if (b_bool(rp, body, "require_approval_for_production", &require, &given)) return 0;
  json_t *al = json_object_get(body, "protected_aliases");
  const char *aliases[ALIASES_MAX];
  int n = -1;
  if (al && !json_is_null(al)) {
    if (!json_is_array(al)) return bad(rp, "protected_aliases", "a list of alias names"), 0;
    if (json_array_size(al) > ALIASES_MAX)
      return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "protected_aliases takes at most %d aliases", ALIASES_MAX);
    size_t i;
    json_t *v;
    n = 0;
    json_array_foreach(al, i, v) {
      if (!json_is_string(v)) return bad(rp, "protected_aliases", "a list of alias names"), 0;
      aliases[n++] = json_string_value(v);
    }
  }
  struct registry_actor who;
  reg_api_actor(rq, proj, &who);
  struct err e;
  reply_obj(rp, "governance",
            registry_gov_settings_set(DB(rq), proj, given ? &require : NULL, aliases, n, &who, &e), &e);
  return 0;
}

/* ---- approval requests -------------------------------------------------------------------- */

static int h_request_create(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  json_t *body = proj ? req_json_object(rq, rp) : NULL;
  if (!body) return 0;
  struct registry_request_new in = {0};
  json_t *v = json_object_get(body, "version");
  if (json_is_integer(v)) in.version = arena_printf(req_arena(rq), "%lld", (long long)json_integer_value(v));
  else if (b_str(rp, body, "version", true, &in.version)) return 0;
  if (b_str(rp, body, "name", true, &in.name) || b_str(rp, body, "stage", false, &in.stage) ||
      b_str(rp, body, "alias", false, &in.alias) || b_str(rp, body, "comment", false, &in.comment) ||
      b_bool(rp, body, "archive_existing_versions", &in.archive_existing, NULL))
    return 0;
  struct registry_actor who;
  reg_api_actor(rq, proj, &who);
  struct err e;
  reply_obj(rp, "approval_request", registry_request_create(DB(rq), proj, &in, &who, &e), &e);
  return 0;
}

static int h_request_list(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  int64_t max;
  const char *token, *st = req_query(rq, "state");
  enum registry_request_state state = REGISTRY_REQ_PENDING; /* the inbox */
  struct err e;
  if (q_paging(rq, rp, &max, &token)) return 0;
  if (st && *st) {
    if (!strcasecmp(st, "ALL")) state = 0;
    else if (registry_request_state_parse(st, &state, &e)) return reply_err(rp, &e);
  }
  char next[REGISTRY_PAGE_TOKEN_MAX];
  reply_page(rp, "approval_requests", registry_request_list(DB(rq), proj, state, max, token, next, &e), next, &e);
  return 0;
}

static int h_request_get(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  struct err e;
  if (proj) reply_obj(rp, "approval_request", registry_request_get(DB(rq), proj, req_param(rq, "request_id"), &e), &e);
  return 0;
}

static int decide(struct req *rq, struct reply *rp, enum registry_request_state to) {
  const char *proj = track_api_project(rq, rp);
  json_t *body;
  if (!proj) return 0;
  const char *comment;
  if (body_of(rq, rp, &body) || b_str(rp, body, "comment", false, &comment)) return 0;
  struct registry_actor who;
  reg_api_actor(rq, proj, &who);
  struct err e;
  reply_obj(rp, "approval_request",
            registry_request_decide(DB(rq), proj, req_param(rq, "request_id"), to, comment, &who, &e), &e);
  return 0;
}

static int h_approve(struct req *rq, struct reply *rp) { return decide(rq, rp, REGISTRY_REQ_APPROVED); }
static int h_reject(struct req *rq, struct reply *rp) { return decide(rq, rp, REGISTRY_REQ_REJECTED); }
static int h_cancel(struct req *rq, struct reply *rp) { return decide(rq, rp, REGISTRY_REQ_CANCELLED); }

/* ---- comments ----------------------------------------------------------------------------- */

static int h_comment_list(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  int64_t max;
  const char *token;
  if (!proj || q_paging(rq, rp, &max, &token)) return 0;
  char next[REGISTRY_PAGE_TOKEN_MAX];
  struct err e;
  json_t *arr = registry_comment_list(DB(rq), proj, req_param(rq, "name"), req_param(rq, "version"), max, token,
                                      next, &e);
  reply_page(rp, "comments", arr, next, &e);
  return 0;
}

static int h_comment_create(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  json_t *body = proj ? req_json_object(rq, rp) : NULL;
  const char *text;
  if (!body || b_str(rp, body, "body", true, &text)) return 0;
  struct registry_actor who;
  reg_api_actor(rq, proj, &who);
  struct err e;
  reply_obj(rp, "comment",
            registry_comment_create(DB(rq), proj, req_param(rq, "name"), req_param(rq, "version"), text, &who, &e),
            &e);
  return 0;
}

static int h_comment_update(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  json_t *body = proj ? req_json_object(rq, rp) : NULL;
  const char *text;
  if (!body || b_str(rp, body, "body", true, &text)) return 0;
  struct registry_actor who;
  reg_api_actor(rq, proj, &who);
  struct err e;
  reply_obj(rp, "comment",
            registry_comment_update(DB(rq), proj, req_param(rq, "name"), req_param(rq, "version"),
                                    req_param(rq, "comment_id"), text, &who, &e),
            &e);
  return 0;
}

static int h_comment_delete(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  struct registry_actor who;
  reg_api_actor(rq, proj, &who);
  struct err e;
  if (registry_comment_delete(DB(rq), proj, req_param(rq, "name"), req_param(rq, "version"),
                              req_param(rq, "comment_id"), &who, &e))
    return reply_err(rp, &e);
  return reply_json(rp, 200, json_object());
}

/* ---- lineage ------------------------------------------------------------------------------ */

static int h_lineage(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  struct err e;
  json_t *g = registry_version_lineage(DB(rq), proj, req_param(rq, "name"), req_param(rq, "version"), &e);
  if (g) reply_json(rp, 200, g);
  else reply_err(rp, &e);
  return 0;
}

/* ---- schemas ------------------------------------------------------------------------------ */
#define S_STR "{\"type\":\"string\"}"
#define S_INT "{\"type\":\"integer\"}"
#define S_BOOL "{\"type\":\"boolean\"}"
#define S_EMPTY "{\"type\":\"object\",\"maxProperties\":0}"
#define S_TOKEN ",\"next_page_token\":{\"type\":\"string\",\"minLength\":1}"
#define S_ONE(key, schema)                                                                         \
  "{\"type\":\"object\",\"required\":[\"" key "\"],\"properties\":{\"" key "\":" schema            \
  "},\"additionalProperties\":false}"
#define S_PAGE(key, schema)                                                                        \
  "{\"type\":\"object\",\"required\":[\"" key "\"],\"properties\":{\"" key "\":{\"type\":\"array\"," \
  "\"items\":" schema "}" S_TOKEN "},\"additionalProperties\":false}"
#define S_SETTINGS                                                                                 \
  "{\"type\":\"object\",\"required\":[\"require_approval_for_production\",\"protected_aliases\"],"  \
  "\"properties\":{\"require_approval_for_production\":" S_BOOL ",\"protected_aliases\":{\"type\":"  \
  "\"array\",\"items\":" S_STR "},\"updated_at\":" S_INT ",\"updated_by\":" S_STR                    \
  "},\"additionalProperties\":false}"
#define S_STATE "{\"enum\":[\"PENDING\",\"APPROVED\",\"REJECTED\",\"CANCELLED\",\"STALE\"]}"
#define S_REQUEST                                                                                  \
  "{\"type\":\"object\",\"required\":[\"id\",\"model_name\",\"version\",\"kind\",\"target\","        \
  "\"archive_existing_versions\",\"from_stage\",\"requester_id\",\"state\",\"created_at\","          \
  "\"updated_at\"],\"properties\":{\"id\":{\"type\":\"string\",\"pattern\":\"^[0-9a-f]{32}$\"},"       \
  "\"model_name\":" S_STR ",\"version\":{\"type\":\"string\",\"pattern\":\"^[1-9][0-9]*$\"},"          \
  "\"kind\":{\"enum\":[\"stage\",\"alias\"]},\"target\":" S_STR ",\"archive_existing_versions\":"      \
  S_BOOL ",\"from_stage\":" S_STR ",\"comment\":" S_STR ",\"requester_id\":" S_STR ",\"requester\":"  \
  S_STR ",\"state\":" S_STATE ",\"created_at\":" S_INT ",\"updated_at\":" S_INT ",\"decided_by\":"     \
  S_STR ",\"decided_by_name\":" S_STR ",\"decision_comment\":" S_STR "},\"additionalProperties\":false}"
#define S_COMMENT                                                                                  \
  "{\"type\":\"object\",\"required\":[\"id\",\"model_name\",\"version\",\"author_id\",\"body\","     \
  "\"created_at\",\"updated_at\"],\"properties\":{\"id\":{\"type\":\"string\",\"pattern\":"           \
  "\"^[0-9a-f]{32}$\"},\"model_name\":" S_STR ",\"version\":" S_STR ",\"author_id\":" S_STR          \
  ",\"author\":" S_STR ",\"body\":" S_STR ",\"created_at\":" S_INT ",\"updated_at\":" S_INT           \
  "},\"additionalProperties\":false}"
#define S_NODE                                                                                     \
  "{\"type\":\"object\",\"required\":[\"id\",\"type\",\"label\",\"attrs\"],\"properties\":{\"id\":"   \
  S_STR ",\"type\":{\"enum\":[\"model_version\",\"run\",\"dataset\",\"logged_model\",\"experiment\"]}," \
  "\"label\":" S_STR ",\"attrs\":{\"type\":\"object\"},\"missing\":{\"const\":true}},"                \
  "\"additionalProperties\":false}"
#define S_EDGE                                                                                     \
  "{\"type\":\"object\",\"required\":[\"from\",\"to\",\"type\"],\"properties\":{\"from\":" S_STR     \
  ",\"to\":" S_STR ",\"type\":{\"enum\":[\"produced_by\",\"consumed\",\"logged_in\","                \
  "\"registered_from\"]}},\"additionalProperties\":false}"
#define S_LINEAGE                                                                                  \
  "{\"type\":\"object\",\"required\":[\"nodes\",\"edges\"],\"properties\":{\"nodes\":{\"type\":"     \
  "\"array\",\"minItems\":1,\"items\":" S_NODE "},\"edges\":{\"type\":\"array\",\"items\":" S_EDGE   \
  "},\"truncated\":{\"const\":true}},\"additionalProperties\":false}"

#define R_SETTINGS                                                                                 \
  "{\"type\":\"object\",\"properties\":{\"require_approval_for_production\":" S_BOOL                 \
  ",\"protected_aliases\":{\"type\":\"array\",\"maxItems\":32,\"items\":" S_STR "}}}"
#define R_REQUEST                                                                                  \
  "{\"type\":\"object\",\"required\":[\"name\",\"version\"],\"properties\":{\"name\":" S_STR         \
  ",\"version\":{\"type\":[\"string\",\"integer\"]},\"stage\":" S_STR ",\"alias\":" S_STR             \
  ",\"archive_existing_versions\":" S_BOOL ",\"comment\":" S_STR "}}"
#define R_COMMENT "{\"type\":\"object\",\"properties\":{\"comment\":" S_STR "}}"
#define R_BODY "{\"type\":\"object\",\"required\":[\"body\"],\"properties\":{\"body\":" S_STR "}}"

#define SEL ROUTE_PROJECT_SELECTED, track_api_locate
#define VER "/api/v1/models/{name}/versions/{version}"

const struct route registry_gov_routes[] = {
    {"GET", "/api/v1/registry/governance", PERM_READ,
     "The selected project's registry governance (approval for Production, protected aliases)", "registry governance",
     NULL, S_ONE("governance", S_SETTINGS), NULL, h_settings_get, SEL},
    {"PUT", "/api/v1/registry/governance", PERM_ADMIN,
     "Change the selected project's registry governance (project admins); fields left out stay as they are",
     "registry governance", R_SETTINGS, S_ONE("governance", S_SETTINGS), NULL, h_settings_put, SEL},
    {"POST", "/api/v1/approvals", PERM_WRITE,
     "Ask for approval of a governed change: a version to a stage, or a (protected) alias onto a version",
     "registry governance", R_REQUEST, S_ONE("approval_request", S_REQUEST), NULL, h_request_create, SEL},
    {"GET", "/api/v1/approvals", PERM_READ,
     "The approvals inbox: the selected project's requests, newest first (state: PENDING by default, or "
     "APPROVED, REJECTED, CANCELLED, STALE, ALL; max_results <= 1000, page_token)",
     "registry governance", NULL, S_PAGE("approval_requests", S_REQUEST), NULL, h_request_list, SEL},
    {"GET", "/api/v1/approvals/{request_id}", PERM_READ, "One approval request", "registry governance", NULL,
     S_ONE("approval_request", S_REQUEST), NULL, h_request_get, SEL},
    {"POST", "/api/v1/approvals/{request_id}/approve", PERM_ADMIN,
     "Approve a pending request (project admins): the change is made in the same write", "registry governance",
     R_COMMENT, S_ONE("approval_request", S_REQUEST), NULL, h_approve, SEL},
    {"POST", "/api/v1/approvals/{request_id}/reject", PERM_ADMIN, "Reject a pending request (project admins)",
     "registry governance", R_COMMENT, S_ONE("approval_request", S_REQUEST), NULL, h_reject, SEL},
    {"POST", "/api/v1/approvals/{request_id}/cancel", PERM_WRITE, "Withdraw your own pending request",
     "registry governance", R_COMMENT, S_ONE("approval_request", S_REQUEST), NULL, h_cancel, SEL},
    {"GET", VER "/comments", PERM_READ, "Comments on a model version, oldest first (max_results, page_token)",
     "registry comments", NULL, S_PAGE("comments", S_COMMENT), NULL, h_comment_list, SEL},
    {"POST", VER "/comments", PERM_WRITE, "Comment on a model version", "registry comments", R_BODY,
     S_ONE("comment", S_COMMENT), NULL, h_comment_create, SEL},
    {"PATCH", VER "/comments/{comment_id}", PERM_WRITE, "Edit your own comment", "registry comments", R_BODY,
     S_ONE("comment", S_COMMENT), NULL, h_comment_update, SEL},
    {"DELETE", VER "/comments/{comment_id}", PERM_WRITE,
     "Delete a comment (its author, or a project admin)", "registry comments", NULL, S_EMPTY, NULL,
     h_comment_delete, SEL},
    {"GET", VER "/lineage", PERM_READ,
     "Where a model version came from: nodes (model_version, run, dataset, logged_model, experiment) and "
     "typed edges",
     "registry lineage", NULL, S_LINEAGE, NULL, h_lineage, SEL},
};
const size_t registry_gov_routes_count = sizeof registry_gov_routes / sizeof registry_gov_routes[0];
