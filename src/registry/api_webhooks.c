/* registry/api_webhooks: HTTP handlers for a project's registry webhooks
 * (/api/v1/projects/{project_id}/webhooks...). Thin: read the fields, call
 * registry/webhooks.c, reply. Project admins only, authorized centrally. */
#include "http/http.h"
#include "registry/registry.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static const char *project_param(struct req *rq, bool *missing) {
  const char *id = req_param(rq, "project_id");
  if (!id || !*id) *missing = true;
  return id;
}

static struct registry_webhooks *W(struct req *rq, struct reply *rp) {
  struct registry_webhooks *w = req_app(rq)->webhooks;
  if (!w) reply_errf(rp, ERR_NOT_READY, "webhooks are not configured on this server");
  return w;
}

static void audit(struct req *rq, const char *action, const char *target) {
  char detail[96];
  snprintf(detail, sizeof detail, "{\"project_id\":\"%.40s\"}", req_param(rq, "project_id"));
  struct auth_audit_entry en = {.actor = req_actor(rq), .action = action, .target = target,
                                .client_addr = req_client_addr(rq), .request_id = req_id(rq),
                                .outcome = "success", .detail = detail};
  struct err e;
  if (auth_audit_record(req_app(rq)->db, &en, &e)) log_warn("audit.failed", "%s: %s", action, e.msg);
}

/* A string field: absent or null leaves *out NULL; another type is refused. */
static int f_str(json_t *b, const char *name, const char **out, struct reply *rp) {
  json_t *v = json_object_get(b, name);
  *out = NULL;
  if (!v || json_is_null(v)) return 0;
  if (!json_is_string(v))
    return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "Invalid value for parameter '%s': expected a string", name),
           -1;
  *out = json_string_value(v);
  return 0;
}

/* The fields of a create or update body. */
static int fields(struct req *rq, struct reply *rp, json_t *b, struct registry_webhook_in *in, const char ***evs) {
  memset(in, 0, sizeof *in);
  if (f_str(b, "url", &in->url, rp) || f_str(b, "model_name", &in->model_name, rp) ||
      f_str(b, "description", &in->description, rp) || f_str(b, "status", &in->status, rp) ||
      f_str(b, "secret", &in->secret, rp))
    return -1;
  json_t *rot = json_object_get(b, "rotate_secret");
  if (rot && !json_is_null(rot)) {
    if (!json_is_boolean(rot))
      return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "Invalid value for parameter 'rotate_secret': expected true or false"), -1;
    in->rotate_secret = json_is_true(rot);
  }
  json_t *ev = json_object_get(b, "events");
  if (ev && !json_is_null(ev)) {
    if (!json_is_array(ev) || json_array_size(ev) > 16)
      return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "Invalid value for parameter 'events': expected a list of at most 16 event names"), -1;
    *evs = arena_zalloc(req_arena(rq), (json_array_size(ev) + 1) * sizeof **evs);
    if (!*evs) return reply_errf(rp, ERR_NO_MEMORY, "out of memory"), -1;
    size_t i;
    json_t *x;
    json_array_foreach(ev, i, x) {
      if (!json_is_string(x))
        return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "Invalid value for parameter 'events': expected strings"), -1;
      (*evs)[i] = json_string_value(x);
    }
    in->events = *evs;
    in->nevents = (int)json_array_size(ev);
    in->events_given = true;
  }
  const struct auth_principal *p = req_principal(rq);
  in->user_id = p->username[0] ? p->username : NULL;
  return 0;
}

/* {webhook, secret?}; the secret is wiped once encoded. */
static void reply_hook(struct reply *rp, json_t *hook, char *secret, const struct err *e) {
  if (!hook) {
    reply_err(rp, e);
  } else {
    json_t *o = json_pack("{s:o}", "webhook", hook);
    if (secret) json_object_set_new(o, "secret", json_string(secret));
    reply_json(rp, 200, o);
  }
  if (secret) {
    sodium_memzero(secret, strlen(secret));
    free(secret);
  }
}

static int h_create(struct req *rq, struct reply *rp) {
  struct registry_webhooks *w = W(rq, rp);
  json_t *b = w ? req_json_object(rq, rp) : NULL;
  struct registry_webhook_in in;
  const char **evs = NULL;
  if (!b || fields(rq, rp, b, &in, &evs)) return 0;
  if (in.rotate_secret) return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "rotate_secret is for updates");
  struct err e;
  char *secret = NULL;
  json_t *hook = registry_webhook_create(w, req_param(rq, "project_id"), &in, &secret, &e);
  if (hook) audit(rq, "webhook.create", json_string_value(json_object_get(hook, "id")));
  reply_hook(rp, hook, secret, &e);
  return 0;
}

static int h_get(struct req *rq, struct reply *rp) {
  struct registry_webhooks *w = W(rq, rp);
  if (!w) return 0;
  struct err e;
  json_t *hook = registry_webhook_get(w, req_param(rq, "project_id"), req_param(rq, "webhook_id"), &e);
  reply_hook(rp, hook, NULL, &e);
  return 0;
}

static int h_update(struct req *rq, struct reply *rp) {
  struct registry_webhooks *w = W(rq, rp);
  json_t *b = w ? req_json_object(rq, rp) : NULL;
  struct registry_webhook_in in;
  const char **evs = NULL;
  if (!b || fields(rq, rp, b, &in, &evs)) return 0;
  struct err e;
  char *secret = NULL;
  json_t *hook = registry_webhook_update(w, req_param(rq, "project_id"), req_param(rq, "webhook_id"), &in, &secret, &e);
  if (hook) audit(rq, in.secret || in.rotate_secret ? "webhook.update_secret" : "webhook.update", req_param(rq, "webhook_id"));
  reply_hook(rp, hook, secret, &e);
  return 0;
}

static int h_delete(struct req *rq, struct reply *rp) {
  struct registry_webhooks *w = W(rq, rp);
  if (!w) return 0;
  struct err e;
  if (registry_webhook_delete(w, req_param(rq, "project_id"), req_param(rq, "webhook_id"), &e)) return reply_err(rp, &e);
  audit(rq, "webhook.delete", req_param(rq, "webhook_id"));
  return reply_json(rp, 200, json_object());
}

static int h_test(struct req *rq, struct reply *rp) {
  struct registry_webhooks *w = W(rq, rp);
  if (!w) return 0;
  struct err e;
  json_t *d = registry_webhook_test(w, req_param(rq, "project_id"), req_param(rq, "webhook_id"), &e);
  if (!d) return reply_err(rp, &e);
  audit(rq, "webhook.test", req_param(rq, "webhook_id"));
  return reply_json(rp, 200, json_pack("{s:o}", "delivery", d));
}

static int paging(struct req *rq, struct reply *rp, int64_t *max, const char **token) {
  const char *m = req_query(rq, "max_results");
  *max = 0;
  *token = req_query(rq, "page_token");
  if (m && *m && (str_to_i64(m, max) || *max < 1))
    return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "max_results must be a positive integer"), -1;
  return 0;
}

static void reply_page(struct reply *rp, const char *key, json_t *arr, const char *next, const struct err *e) {
  if (!arr) {
    reply_err(rp, e);
    return;
  }
  json_t *o = json_pack("{s:o}", key, arr);
  if (next[0]) json_object_set_new(o, "next_page_token", json_string(next));
  reply_json(rp, 200, o);
}

static int h_list(struct req *rq, struct reply *rp) {
  struct registry_webhooks *w = W(rq, rp);
  int64_t max;
  const char *token;
  if (!w || paging(rq, rp, &max, &token)) return 0;
  struct err e;
  char next[REGISTRY_PAGE_TOKEN_MAX];
  reply_page(rp, "webhooks", registry_webhook_list(w, req_param(rq, "project_id"), max, token, next, &e), next, &e);
  return 0;
}

static int h_deliveries(struct req *rq, struct reply *rp) {
  struct registry_webhooks *w = W(rq, rp);
  int64_t max;
  const char *token;
  if (!w || paging(rq, rp, &max, &token)) return 0;
  struct err e;
  char next[REGISTRY_PAGE_TOKEN_MAX];
  json_t *arr = registry_webhook_deliveries(w, req_param(rq, "project_id"), req_param(rq, "webhook_id"), max, token,
                                            next, &e);
  reply_page(rp, "deliveries", arr, next, &e);
  return 0;
}

static int h_delivery(struct req *rq, struct reply *rp) {
  struct registry_webhooks *w = W(rq, rp);
  if (!w) return 0;
  struct err e;
  json_t *d = registry_webhook_delivery_get(w, req_param(rq, "project_id"), req_param(rq, "webhook_id"),
                                            req_param(rq, "delivery_id"), &e);
  if (!d) return reply_err(rp, &e);
  return reply_json(rp, 200, json_pack("{s:o}", "delivery", d));
}

/* ---- schemas ------------------------------------------------------------------------------------ */
#define S_STR "{\"type\":\"string\"}"
#define S_INT "{\"type\":\"integer\"}"
#define S_EVENT                                                                                    \
  "{\"enum\":[\"MODEL_VERSION_CREATED\",\"MODEL_VERSION_READY\",\"MODEL_VERSION_TRANSITIONED_STAGE\"," \
  "\"REGISTERED_MODEL_ALIAS_SET\",\"REGISTERED_MODEL_ALIAS_DELETED\"]}"
#define S_HOOK                                                                                     \
  "{\"type\":\"object\",\"required\":[\"id\",\"project_id\",\"url\",\"events\",\"status\","          \
  "\"creation_timestamp\",\"last_updated_timestamp\"],\"properties\":{\"id\":{\"type\":\"string\","  \
  "\"pattern\":\"^[0-9a-f]{32}$\"},\"project_id\":" S_STR ",\"url\":" S_STR ",\"events\":{\"type\":"  \
  "\"array\",\"minItems\":1,\"items\":" S_EVENT "},\"model_name\":" S_STR ",\"description\":" S_STR   \
  ",\"status\":{\"enum\":[\"ACTIVE\",\"DISABLED\",\"TEST_MODE\"]},\"created_by\":" S_STR             \
  ",\"creation_timestamp\":" S_INT ",\"last_updated_timestamp\":" S_INT "},\"additionalProperties\":false}"
#define S_HOOK_ANSWER                                                                              \
  "{\"type\":\"object\",\"required\":[\"webhook\"],\"properties\":{\"webhook\":" S_HOOK ",\"secret\":{" \
  "\"type\":\"string\",\"minLength\":16}},\"additionalProperties\":false}"
#define S_ATTEMPT                                                                                  \
  "{\"type\":\"object\",\"required\":[\"attempt\",\"start_timestamp\",\"duration_ms\"],\"properties\":{" \
  "\"attempt\":{\"type\":\"integer\",\"minimum\":1},\"start_timestamp\":" S_INT ",\"duration_ms\":{"   \
  "\"type\":\"integer\",\"minimum\":0},\"status_code\":" S_INT ",\"error\":" S_STR "},"                  \
  "\"additionalProperties\":false}"
#define S_DELIVERY                                                                                 \
  "{\"type\":\"object\",\"required\":[\"id\",\"webhook_id\",\"event\",\"state\",\"attempts\","        \
  "\"max_attempts\",\"creation_timestamp\",\"payload\",\"attempt_log\"],\"properties\":{\"id\":"      \
  S_STR ",\"webhook_id\":" S_STR ",\"event\":" S_STR ",\"state\":{\"enum\":[\"PENDING\","              \
  "\"SUCCEEDED\",\"FAILED\"]},\"attempts\":{\"type\":\"integer\",\"minimum\":0},\"max_attempts\":{"     \
  "\"type\":\"integer\",\"minimum\":1},\"creation_timestamp\":" S_INT ",\"next_attempt_timestamp\":"    \
  S_INT ",\"completed_timestamp\":" S_INT ",\"last_status_code\":" S_INT ",\"last_error\":" S_STR       \
  ",\"payload\":{\"type\":\"object\",\"required\":[\"event\",\"webhook_id\",\"project_id\","            \
  "\"event_timestamp\",\"data\"]},\"attempt_log\":{\"type\":\"array\",\"items\":" S_ATTEMPT "}},"         \
  "\"additionalProperties\":false}"
#define S_TOKEN "\"next_page_token\":{\"type\":\"string\",\"minLength\":1}"
#define S_BODY                                                                                     \
  "\"url\":" S_STR ",\"events\":{\"type\":\"array\",\"items\":" S_STR "},\"model_name\":" S_STR      \
  ",\"description\":" S_STR ",\"status\":" S_STR ",\"secret\":" S_STR
#define BASE "/api/v1/projects/{project_id}/webhooks"

const struct route registry_webhook_routes[] = {
    {"POST", BASE, PERM_ADMIN,
     "Create a registry webhook (project admins); the answer holds its signing secret, shown only here",
     "webhooks", "{\"type\":\"object\",\"required\":[\"url\",\"events\"],\"properties\":{" S_BODY "}}",
     S_HOOK_ANSWER, NULL, h_create, 0, project_param},
    {"GET", BASE, PERM_ADMIN, "The project's webhooks, oldest first (max_results, page_token)", "webhooks", NULL,
     "{\"type\":\"object\",\"required\":[\"webhooks\"],\"properties\":{\"webhooks\":{\"type\":\"array\","
     "\"items\":" S_HOOK "}," S_TOKEN "},\"additionalProperties\":false}",
     NULL, h_list, 0, project_param},
    {"GET", BASE "/{webhook_id}", PERM_ADMIN, "A webhook (never its secret)", "webhooks", NULL, S_HOOK_ANSWER, NULL,
     h_get, 0, project_param},
    {"PATCH", BASE "/{webhook_id}", PERM_ADMIN,
     "Change a webhook's url, events, model_name, description or status; secret sets a new secret, "
     "rotate_secret: true makes one (answered once)",
     "webhooks",
     "{\"type\":\"object\",\"properties\":{" S_BODY ",\"rotate_secret\":{\"type\":\"boolean\"}}}", S_HOOK_ANSWER,
     NULL, h_update, 0, project_param},
    {"DELETE", BASE "/{webhook_id}", PERM_ADMIN, "Delete a webhook with its queued deliveries and log", "webhooks",
     NULL, "{\"type\":\"object\",\"maxProperties\":0}", NULL, h_delete, 0, project_param},
    {"POST", BASE "/{webhook_id}/test", PERM_ADMIN,
     "Queue a TEST event for the webhook now (one attempt); poll the delivery for its outcome", "webhooks", NULL,
     "{\"type\":\"object\",\"required\":[\"delivery\"],\"properties\":{\"delivery\":" S_DELIVERY "}}", NULL, h_test,
     0, project_param},
    {"GET", BASE "/{webhook_id}/deliveries", PERM_ADMIN,
     "The webhook's delivery log, newest first, with every attempt (max_results, page_token)", "webhooks", NULL,
     "{\"type\":\"object\",\"required\":[\"deliveries\"],\"properties\":{\"deliveries\":{\"type\":\"array\","
     "\"items\":" S_DELIVERY "}," S_TOKEN "},\"additionalProperties\":false}",
     NULL, h_deliveries, 0, project_param},
    {"GET", BASE "/{webhook_id}/deliveries/{delivery_id}", PERM_ADMIN, "One delivery with its attempts", "webhooks",
     NULL, "{\"type\":\"object\",\"required\":[\"delivery\"],\"properties\":{\"delivery\":" S_DELIVERY "}}", NULL,
     h_delivery, 0, project_param},
};
const size_t registry_webhook_routes_count = sizeof registry_webhook_routes / sizeof registry_webhook_routes[0];
