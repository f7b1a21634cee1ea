/* registry/api: the MLflow model-registry REST API's HTTP handlers, under
 * /api/2.0/mlflow/ and the /ajax-api/2.0/mlflow/ alias. Thin: read the
 * fields (query parameters for GET, a JSON body otherwise — a DELETE
 * without a body reads the query), pick the project the way the tracking
 * API does, call the domain, reply. */
#include "http/http.h"
#include "registry/api_internal.h"
#include "registry/registry.h"
/* the MLflow API's project choice, shared with the tracking room */
#include "track/api_internal.h"

#include <stdlib.h>
#include <string.h>

static struct db *DB(struct req *rq) { return req_app(rq)->db; }

/* ---- fields --------------------------------------------------------------------------- */
struct args {
  struct req *rq;
  struct reply *rp;
  json_t *body; /* the JSON object; NULL: query parameters */
  const char *proj;
};

static int missing(struct args *a, const char *name) {
  reply_errf(a->rp, ERR_INVALID_PARAMETER_VALUE,
             "Missing value for required parameter '%s'. See the API docs for more information about "
             "request parameters.",
             name);
  return -1;
}

static int bad(struct args *a, const char *name, const char *want) {
  reply_errf(a->rp, ERR_INVALID_PARAMETER_VALUE, "Invalid value for parameter '%s' supplied: expected %s", name, want);
  return -1;
}

/* 0 with the project chosen and the fields readable, or -1 with the reply set. */
static int args_init(struct args *a, struct req *rq, struct reply *rp) {
  memset(a, 0, sizeof *a);
  a->rq = rq;
  a->rp = rp;
  if (!(a->proj = track_api_project(rq, rp))) return -1;
  const char *m = req_method(rq);
  if (str_eq(m, "GET") || str_eq(m, "HEAD")) return 0;
  size_t n;
  req_body(rq, &n);
  if (n == 0) {
    if (str_eq(m, "DELETE")) return 0; /* clients that send DELETE fields as a query */
    a->body = json_object();
    return a->body ? 0 : (reply_errf(rp, ERR_NO_MEMORY, "out of memory"), -1);
  }
  json_t *b = req_json_object(rq, rp);
  if (!b) return -1;
  a->body = json_incref(b);
  return 0;
}

static void args_fini(struct args *a) { json_decref(a->body); }

/* A string field; "" counts as absent for required ones. Integers are
 * taken as their decimal text (version: 3 or "3"). */
static int f_str(struct args *a, const char *name, bool required, const char **out) {
  *out = NULL;
  if (!a->body) {
    *out = req_query(a->rq, name);
  } else {
    json_t *v = json_object_get(a->body, name);
    if (json_is_string(v)) *out = json_string_value(v);
    else if (json_is_integer(v)) *out = arena_printf(req_arena(a->rq), "%lld", (long long)json_integer_value(v));
    else if (v && !json_is_null(v)) return bad(a, name, "a string");
  }
  if (required && (!*out || !**out)) return missing(a, name);
  return 0;
}

static int f_bool(struct args *a, const char *name, bool *out) {
  *out = false;
  if (!a->body) {
    const char *s = req_query(a->rq, name);
    if (!s || !*s) return 0;
    if (str_eq(s, "true") || str_eq(s, "True") || str_eq(s, "1")) *out = true;
    else if (!str_eq(s, "false") && !str_eq(s, "False") && !str_eq(s, "0")) return bad(a, name, "true or false");
    return 0;
  }
  json_t *v = json_object_get(a->body, name);
  if (!v || json_is_null(v)) return 0;
  if (json_is_boolean(v)) *out = json_is_true(v);
  else if (json_is_string(v) && (str_eq(json_string_value(v), "true") || str_eq(json_string_value(v), "false")))
    *out = str_eq(json_string_value(v), "true");
  else return bad(a, name, "true or false");
  return 0;
}

static int f_i64(struct args *a, const char *name, int64_t *out, bool *given) {
  *given = false;
  const char *text = NULL;
  if (!a->body) {
    text = req_query(a->rq, name);
  } else {
    json_t *v = json_object_get(a->body, name);
    if (json_is_integer(v)) {
      *out = json_integer_value(v);
      *given = true;
      return 0;
    }
    if (json_is_string(v)) text = json_string_value(v);
    else if (v && !json_is_null(v)) return bad(a, name, "a 64-bit integer");
  }
  if (!text || !*text) return 0;
  if (str_to_i64(text, out)) return bad(a, name, "a 64-bit integer");
  *given = true;
  return 0;
}

/* A repeated string field: a JSON array, or repeated query keys. */
#define LIST_MAX 64
static int f_list(struct args *a, const char *name, const char ***out, int *n) {
  *n = 0;
  *out = arena_zalloc(req_arena(a->rq), (LIST_MAX + 1) * sizeof **out);
  if (!*out) return reply_errf(a->rp, ERR_NO_MEMORY, "out of memory"), -1;
  if (!a->body) {
    int k = req_query_all(a->rq, name, *out, LIST_MAX + 1);
    if (k > LIST_MAX) return reply_errf(a->rp, ERR_INVALID_PARAMETER_VALUE, "'%s' takes at most %d values", name, LIST_MAX), -1;
    *n = k < 0 ? 0 : k;
    return 0;
  }
  json_t *v = json_object_get(a->body, name);
  if (!v || json_is_null(v)) return 0;
  if (json_is_string(v)) {
    (*out)[(*n)++] = json_string_value(v);
    return 0;
  }
  if (!json_is_array(v)) return bad(a, name, "a list of strings");
  if (json_array_size(v) > LIST_MAX)
    return reply_errf(a->rp, ERR_INVALID_PARAMETER_VALUE, "'%s' takes at most %d values", name, LIST_MAX), -1;
  size_t i;
  json_t *x;
  json_array_foreach(v, i, x) {
    if (!json_is_string(x)) return bad(a, name, "a list of strings");
    (*out)[(*n)++] = json_string_value(x);
  }
  return 0;
}

/* [{key, value}] */
static int f_tags(struct args *a, struct registry_kv **out, int *n) {
  *out = NULL;
  *n = 0;
  json_t *v = a->body ? json_object_get(a->body, "tags") : NULL;
  if (!v || json_is_null(v)) return 0;
  if (!json_is_array(v)) return bad(a, "tags", "a list of {key, value}");
  *out = arena_zalloc(req_arena(a->rq), (json_array_size(v) + 1) * sizeof **out);
  if (!*out) return reply_errf(a->rp, ERR_NO_MEMORY, "out of memory"), -1;
  size_t i;
  json_t *x;
  json_array_foreach(v, i, x) {
    json_t *k = json_object_get(x, "key"), *val = json_object_get(x, "value");
    if (!json_is_object(x) || (k && !json_is_string(k)) || (val && !json_is_null(val) && !json_is_string(val)))
      return bad(a, "tags", "a list of {key, value} with string keys and values");
    if (!json_is_string(k)) return missing(a, "key");
    (*out)[i].key = json_string_value(k);
    (*out)[i].value = json_is_string(val) ? json_string_value(val) : NULL;
  }
  *n = (int)json_array_size(v);
  return 0;
}

static int f_search(struct args *a, struct registry_search *s) {
  memset(s, 0, sizeof *s);
  const char **order;
  bool given;
  if (f_i64(a, "max_results", &s->max_results, &given)) return -1;
  if (given && s->max_results < 1) {
    reply_errf(a->rp, ERR_INVALID_PARAMETER_VALUE,
               "Invalid value for request parameter max_results. It must be a positive integer, but got value %lld",
               (long long)s->max_results);
    return -1;
  }
  if (f_str(a, "filter", false, &s->filter) || f_str(a, "page_token", false, &s->page_token) ||
      f_list(a, "order_by", &order, &s->norder_by))
    return -1;
  s->order_by = order;
  return 0;
}

/* ---- replies ------------------------------------------------------------------------------ */

static void reply_obj(struct reply *rp, const char *key, json_t *o, const struct err *e) {
  if (o) reply_json(rp, 200, json_pack("{s:o}", key, o));
  else reply_err(rp, e);
}

static void reply_rc(struct reply *rp, int rc, const struct err *e) {
  if (rc) reply_err(rp, e);
  else reply_json(rp, 200, json_object());
}

static const char *who(struct req *rq) {
  const struct auth_principal *p = req_principal(rq);
  return p->username[0] ? p->username : NULL;
}

/* ---- registered models ----------------------------------------------------------------------- */

static int h_model_create(struct req *rq, struct reply *rp) {
  struct args a;
  const char *name, *desc;
  struct registry_kv *tags;
  int ntags;
  struct err e;
  if (args_init(&a, rq, rp)) return 0;
  if (!f_str(&a, "name", true, &name) && !f_str(&a, "description", false, &desc) && !f_tags(&a, &tags, &ntags))
    reply_obj(rp, "registered_model", registry_model_create(DB(rq), a.proj, name, desc, tags, ntags, who(rq), &e), &e);
  args_fini(&a);
  return 0;
}

static int h_model_get(struct req *rq, struct reply *rp) {
  struct args a;
  const char *name;
  struct err e;
  if (args_init(&a, rq, rp)) return 0;
  if (!f_str(&a, "name", true, &name))
    reply_obj(rp, "registered_model", registry_model_get(DB(rq), a.proj, name, &e), &e);
  args_fini(&a);
  return 0;
}

static int h_model_rename(struct req *rq, struct reply *rp) {
  struct args a;
  const char *name, *new_name;
  struct err e;
  if (args_init(&a, rq, rp)) return 0;
  if (!f_str(&a, "name", true, &name) && !f_str(&a, "new_name", true, &new_name))
    reply_obj(rp, "registered_model", registry_model_rename(DB(rq), a.proj, name, new_name, &e), &e);
  args_fini(&a);
  return 0;
}

static int h_model_update(struct req *rq, struct reply *rp) {
  struct args a;
  const char *name, *desc;
  struct err e;
  if (args_init(&a, rq, rp)) return 0;
  if (!f_str(&a, "name", true, &name) && !f_str(&a, "description", false, &desc))
    reply_obj(rp, "registered_model", registry_model_update(DB(rq), a.proj, name, desc ? desc : "", &e), &e);
  args_fini(&a);
  return 0;
}

static int h_model_delete(struct req *rq, struct reply *rp) {
  struct args a;
  const char *name;
  struct err e;
  if (args_init(&a, rq, rp)) return 0;
  if (!f_str(&a, "name", true, &name)) reply_rc(rp, registry_model_delete(DB(rq), a.proj, name, &e), &e);
  args_fini(&a);
  return 0;
}

/* A search page as MLflow writes it: the list only when not empty, the
 * token only when more follow. arr NULL: the search failed (e). */
static void search_reply(struct reply *rp, const char *key, json_t *arr, const char *next, struct err *e) {
  if (!arr) {
    reply_err(rp, e);
    return;
  }
  json_t *o = json_object();
  if (json_array_size(arr)) json_object_set_new(o, key, arr);
  else json_decref(arr);
  if (next[0]) json_object_set_new(o, "next_page_token", json_string(next));
  reply_json(rp, 200, o);
}

static int h_model_search(struct req *rq, struct reply *rp) {
  struct args a;
  struct registry_search s;
  struct err e;
  char next[REGISTRY_PAGE_TOKEN_MAX];
  if (args_init(&a, rq, rp)) return 0;
  if (!f_search(&a, &s)) {
    search_reply(rp, "registered_models", registry_model_search(DB(rq), a.proj, &s, next, &e), next, &e);
  }
  args_fini(&a);
  return 0;
}

static int h_latest_versions(struct req *rq, struct reply *rp) {
  struct args a;
  const char *name, **stages;
  int n;
  struct err e;
  if (args_init(&a, rq, rp)) return 0;
  if (!f_str(&a, "name", true, &name) && !f_list(&a, "stages", &stages, &n)) {
    json_t *arr = registry_latest_versions(DB(rq), a.proj, name, stages, n, &e);
    if (!arr) {
      reply_err(rp, &e);
    } else {
      json_t *o = json_object();
      if (json_array_size(arr)) json_object_set_new(o, "model_versions", arr);
      else json_decref(arr);
      reply_json(rp, 200, o);
    }
  }
  args_fini(&a);
  return 0;
}

static int h_model_tag_set(struct req *rq, struct reply *rp) {
  struct args a;
  const char *name, *key, *value;
  struct err e;
  if (args_init(&a, rq, rp)) return 0;
  if (!f_str(&a, "name", true, &name) && !f_str(&a, "key", true, &key) && !f_str(&a, "value", false, &value)) {
    if (!value) missing(&a, "value");
    else reply_rc(rp, registry_model_tag_set(DB(rq), a.proj, name, key, value, &e), &e);
  }
  args_fini(&a);
  return 0;
}

static int h_model_tag_delete(struct req *rq, struct reply *rp) {
  struct args a;
  const char *name, *key;
  struct err e;
  if (args_init(&a, rq, rp)) return 0;
  if (!f_str(&a, "name", true, &name) && !f_str(&a, "key", true, &key))
    reply_rc(rp, registry_model_tag_delete(DB(rq), a.proj, name, key, &e), &e);
  args_fini(&a);
  return 0;
}

static int h_alias_set(struct req *rq, struct reply *rp) {
  struct args a;
  const char *name, *alias, *version;
  struct err e;
  if (args_init(&a, rq, rp)) return 0;
  if (!f_str(&a, "name", true, &name) && !f_str(&a, "alias", true, &alias) && !f_str(&a, "version", true, &version))
  {
    struct registry_actor who; /* a protected alias may need approval */
    reg_api_actor(rq, a.proj, &who);
    reply_rc(rp, registry_alias_set_as(DB(rq), a.proj, name, alias, version, &who, &e), &e);
  }
  args_fini(&a);
  return 0;
}

static int h_alias_delete(struct req *rq, struct reply *rp) {
  struct args a;
  const char *name, *alias;
  struct err e;
  if (args_init(&a, rq, rp)) return 0;
  if (!f_str(&a, "name", true, &name) && !f_str(&a, "alias", true, &alias))
    reply_rc(rp, registry_alias_delete(DB(rq), a.proj, name, alias, &e), &e);
  args_fini(&a);
  return 0;
}

static int h_alias_get(struct req *rq, struct reply *rp) {
  struct args a;
  const char *name, *alias;
  struct err e;
  if (args_init(&a, rq, rp)) return 0;
  if (!f_str(&a, "name", true, &name) && !f_str(&a, "alias", true, &alias))
    reply_obj(rp, "model_version", registry_version_by_alias(DB(rq), a.proj, name, alias, &e), &e);
  args_fini(&a);
  return 0;
}

/* ---- model versions ------------------------------------------------------------------------------ */

static int h_version_create(struct req *rq, struct reply *rp) {
  struct args a;
  struct registry_version_new in = {.user_id = who(rq)};
  struct registry_kv *tags;
  struct err e;
  if (args_init(&a, rq, rp)) return 0;
  if (!f_str(&a, "name", true, &in.name) && !f_str(&a, "source", true, &in.source) &&
      !f_str(&a, "run_id", false, &in.run_id) && !f_str(&a, "run_link", false, &in.run_link) &&
      !f_str(&a, "description", false, &in.description) && !f_str(&a, "model_id", false, &in.model_id) &&
      !f_tags(&a, &tags, &in.ntags)) {
    in.tags = tags;
    reply_obj(rp, "model_version", registry_version_create(DB(rq), a.proj, &in, &e), &e);
  }
  args_fini(&a);
  return 0;
}

/* name and version, the two fields every version call starts with */
static int name_version(struct args *a, const char **name, const char **version) {
  return f_str(a, "name", true, name) || f_str(a, "version", true, version);
}

static int h_version_get(struct req *rq, struct reply *rp) {
  struct args a;
  const char *name, *version;
  struct err e;
  if (args_init(&a, rq, rp)) return 0;
  if (!name_version(&a, &name, &version))
    reply_obj(rp, "model_version", registry_version_get(DB(rq), a.proj, name, version, &e), &e);
  args_fini(&a);
  return 0;
}

static int h_version_update(struct req *rq, struct reply *rp) {
  struct args a;
  const char *name, *version, *desc;
  struct err e;
  if (args_init(&a, rq, rp)) return 0;
  if (!name_version(&a, &name, &version) && !f_str(&a, "description", false, &desc))
    reply_obj(rp, "model_version",
              registry_version_update(DB(rq), a.proj, name, version, desc ? desc : "", &e), &e);
  args_fini(&a);
  return 0;
}

static int h_version_delete(struct req *rq, struct reply *rp) {
  struct args a;
  const char *name, *version;
  struct err e;
  if (args_init(&a, rq, rp)) return 0;
  if (!name_version(&a, &name, &version)) reply_rc(rp, registry_version_delete(DB(rq), a.proj, name, version, &e), &e);
  args_fini(&a);
  return 0;
}

static int h_version_tag_set(struct req *rq, struct reply *rp) {
  struct args a;
  const char *name, *version, *key, *value;
  struct err e;
  if (args_init(&a, rq, rp)) return 0;
  if (!name_version(&a, &name, &version) && !f_str(&a, "key", true, &key) && !f_str(&a, "value", false, &value)) {
    if (!value) missing(&a, "value");
    else reply_rc(rp, registry_version_tag_set(DB(rq), a.proj, name, version, key, value, &e), &e);
  }
  args_fini(&a);
  return 0;
}

static int h_version_tag_delete(struct req *rq, struct reply *rp) {
  struct args a;
  const char *name, *version, *key;
  struct err e;
  if (args_init(&a, rq, rp)) return 0;
  if (!name_version(&a, &name, &version) && !f_str(&a, "key", true, &key))
    reply_rc(rp, registry_version_tag_delete(DB(rq), a.proj, name, version, key, &e), &e);
  args_fini(&a);
  return 0;
}

static int h_download_uri(struct req *rq, struct reply *rp) {
  struct args a;
  const char *name, *version;
  struct err e;
  char *uri;
  if (args_init(&a, rq, rp)) return 0;
  if (!name_version(&a, &name, &version)) {
    if (registry_version_download_uri(DB(rq), a.proj, name, version, &uri, &e)) {
      reply_err(rp, &e);
    } else {
      reply_json(rp, 200, json_pack("{s:s}", "artifact_uri", uri));
      free(uri);
    }
  }
  args_fini(&a);
  return 0;
}

static int h_transition(struct req *rq, struct reply *rp) {
  struct args a;
  const char *name, *version, *stage;
  bool archive;
  struct err e;
  if (args_init(&a, rq, rp)) return 0;
  if (!name_version(&a, &name, &version) && !f_str(&a, "stage", true, &stage) &&
      !f_bool(&a, "archive_existing_versions", &archive)) {
    struct registry_actor who; /* Production may need approval */
    reg_api_actor(rq, a.proj, &who);
    reply_obj(rp, "model_version",
              registry_version_transition_as(DB(rq), a.proj, name, version, stage, archive, &who, &e), &e);
  }
  args_fini(&a);
  return 0;
}

static int h_version_search(struct req *rq, struct reply *rp) {
  struct args a;
  struct registry_search s;
  struct err e;
  char next[REGISTRY_PAGE_TOKEN_MAX];
  if (args_init(&a, rq, rp)) return 0;
  if (!f_search(&a, &s)) {
    search_reply(rp, "model_versions", registry_version_search(DB(rq), a.proj, &s, next, &e), next, &e);
  }
  args_fini(&a);
  return 0;
}

/* ---- schemas ------------------------------------------------------------------------------------ */
#define S_STR "{\"type\":\"string\"}"
#define S_INT "{\"type\":\"integer\"}"
#define S_EMPTY "{\"type\":\"object\",\"maxProperties\":0}"
#define S_KV                                                                                       \
  "{\"type\":\"object\",\"required\":[\"key\"],\"properties\":{\"key\":" S_STR ",\"value\":" S_STR \
  "},\"additionalProperties\":false}"
#define S_KVS "{\"type\":\"array\",\"minItems\":1,\"items\":" S_KV "}"
#define S_STAGE "{\"enum\":[\"None\",\"Staging\",\"Production\",\"Archived\"]}"
#define S_VERSION                                                                                  \
  "{\"type\":\"object\",\"required\":[\"name\",\"version\",\"creation_timestamp\","                \
  "\"last_updated_timestamp\",\"current_stage\",\"source\",\"status\"],\"properties\":{"           \
  "\"name\":" S_STR ",\"version\":{\"type\":\"string\",\"pattern\":\"^[1-9][0-9]*$\"},"              \
  "\"creation_timestamp\":" S_INT ",\"last_updated_timestamp\":" S_INT ",\"user_id\":" S_STR       \
  ",\"current_stage\":" S_STAGE ",\"description\":" S_STR ",\"source\":" S_STR ",\"run_id\":" S_STR \
  ",\"status\":{\"enum\":[\"PENDING_REGISTRATION\",\"FAILED_REGISTRATION\",\"READY\"]},"            \
  "\"status_message\":" S_STR ",\"tags\":" S_KVS ",\"run_link\":" S_STR ",\"aliases\":{\"type\":"    \
  "\"array\",\"minItems\":1,\"items\":" S_STR "},\"model_id\":" S_STR "},\"additionalProperties\":false}"
#define S_ALIAS                                                                                    \
  "{\"type\":\"object\",\"required\":[\"alias\",\"version\"],\"properties\":{\"alias\":" S_STR      \
  ",\"version\":" S_STR "},\"additionalProperties\":false}"
#define S_MODEL                                                                                    \
  "{\"type\":\"object\",\"required\":[\"name\",\"creation_timestamp\",\"last_updated_timestamp\"],"  \
  "\"properties\":{\"name\":" S_STR ",\"creation_timestamp\":" S_INT ",\"last_updated_timestamp\":"  \
  S_INT ",\"user_id\":" S_STR ",\"description\":" S_STR ",\"latest_versions\":{\"type\":\"array\","  \
  "\"minItems\":1,\"items\":" S_VERSION "},\"tags\":" S_KVS ",\"aliases\":{\"type\":\"array\","       \
  "\"minItems\":1,\"items\":" S_ALIAS "}},\"additionalProperties\":false}"
#define S_ONE(key, schema)                                                                         \
  "{\"type\":\"object\",\"required\":[\"" key "\"],\"properties\":{\"" key "\":" schema            \
  "},\"additionalProperties\":false}"
#define S_TOKEN "\"next_page_token\":{\"type\":\"string\",\"minLength\":1}"
#define S_MODELS_PAGE                                                                              \
  "{\"type\":\"object\",\"properties\":{\"registered_models\":{\"type\":\"array\",\"minItems\":1,"  \
  "\"items\":" S_MODEL "}," S_TOKEN "},\"additionalProperties\":false}"
#define S_VERSIONS_PAGE                                                                            \
  "{\"type\":\"object\",\"properties\":{\"model_versions\":{\"type\":\"array\",\"minItems\":1,"     \
  "\"items\":" S_VERSION "}," S_TOKEN "},\"additionalProperties\":false}"
#define S_VERSIONS                                                                                 \
  "{\"type\":\"object\",\"properties\":{\"model_versions\":{\"type\":\"array\",\"minItems\":1,"     \
  "\"items\":" S_VERSION "}},\"additionalProperties\":false}"

#define S_REQ(req, props) "{\"type\":\"object\",\"required\":[" req "],\"properties\":{" props "}}"
#define P_I64 "{\"type\":[\"integer\",\"string\"]}"
#define P_KVS "{\"type\":\"array\",\"items\":" S_KV "}"
#define P_NAME "\"name\":" S_STR
#define P_NV "\"name\":" S_STR ",\"version\":" P_I64

/* Each route twice: the REST path and the /ajax-api alias MLflow's UI uses. */
#define MLFLOW(method, path, perm, summary, req, resp, fn)                                         \
  {method, "/api/2.0/mlflow/" path, perm, summary, "mlflow model registry", req, resp, NULL, fn,   \
   ROUTE_PROJECT_SELECTED, track_api_locate},                                                      \
  {method, "/ajax-api/2.0/mlflow/" path, perm, summary " (alias)", "mlflow model registry", req,   \
   resp, NULL, fn, ROUTE_PROJECT_SELECTED, track_api_locate}

const struct route registry_routes[] = {
    MLFLOW("POST", "registered-models/create", PERM_WRITE, "Register a model name in the selected project",
           S_REQ("\"name\"", P_NAME ",\"tags\":" P_KVS ",\"description\":" S_STR),
           S_ONE("registered_model", S_MODEL), h_model_create),
    MLFLOW("GET", "registered-models/get", PERM_READ, "A registered model (query: name)", NULL,
           S_ONE("registered_model", S_MODEL), h_model_get),
    MLFLOW("POST", "registered-models/rename", PERM_WRITE, "Rename a registered model",
           S_REQ("\"name\",\"new_name\"", P_NAME ",\"new_name\":" S_STR), S_ONE("registered_model", S_MODEL),
           h_model_rename),
    MLFLOW("PATCH", "registered-models/update", PERM_WRITE, "Change a registered model's description",
           S_REQ("\"name\"", P_NAME ",\"description\":" S_STR), S_ONE("registered_model", S_MODEL), h_model_update),
    MLFLOW("DELETE", "registered-models/delete", PERM_WRITE,
           "Delete a registered model with its versions, tags and aliases", S_REQ("\"name\"", P_NAME), S_EMPTY,
           h_model_delete),
    MLFLOW("GET", "registered-models/search", PERM_READ,
           "Search registered models (filter on name and tags, order_by, max_results <= 1000, page_token)", NULL,
           S_MODELS_PAGE, h_model_search),
    MLFLOW("POST", "registered-models/get-latest-versions", PERM_READ,
           "The newest version in each stage (stages: a subset of None, Staging, Production, Archived)",
           S_REQ("\"name\"", P_NAME ",\"stages\":{\"type\":\"array\",\"items\":" S_STR "}"), S_VERSIONS,
           h_latest_versions),
    MLFLOW("GET", "registered-models/get-latest-versions", PERM_READ,
           "The newest version in each stage (query: name, stages repeated)", NULL, S_VERSIONS, h_latest_versions),
    MLFLOW("POST", "registered-models/set-tag", PERM_WRITE, "Set a tag on a registered model",
           S_REQ("\"name\",\"key\",\"value\"", P_NAME ",\"key\":" S_STR ",\"value\":" S_STR), S_EMPTY,
           h_model_tag_set),
    MLFLOW("DELETE", "registered-models/delete-tag", PERM_WRITE, "Delete a tag of a registered model",
           S_REQ("\"name\",\"key\"", P_NAME ",\"key\":" S_STR), S_EMPTY, h_model_tag_delete),
    MLFLOW("POST", "registered-models/alias", PERM_WRITE, "Point an alias at a version (moves it if set)",
           S_REQ("\"name\",\"alias\",\"version\"", P_NV ",\"alias\":" S_STR), S_EMPTY, h_alias_set),
    MLFLOW("DELETE", "registered-models/alias", PERM_WRITE, "Remove an alias",
           S_REQ("\"name\",\"alias\"", P_NAME ",\"alias\":" S_STR), S_EMPTY, h_alias_delete),
    MLFLOW("GET", "registered-models/alias", PERM_READ, "The version an alias points at (query: name, alias)",
           NULL, S_ONE("model_version", S_VERSION), h_alias_get),
    MLFLOW("POST", "model-versions/create", PERM_WRITE,
           "Create the next version of a registered model from a run's artifacts, a logged model or remote "
           "storage",
           S_REQ("\"name\",\"source\"", P_NAME ",\"source\":" S_STR ",\"run_id\":" S_STR ",\"tags\":" P_KVS
                 ",\"run_link\":" S_STR ",\"description\":" S_STR ",\"model_id\":" S_STR),
           S_ONE("model_version", S_VERSION), h_version_create),
    MLFLOW("GET", "model-versions/get", PERM_READ, "A model version (query: name, version)", NULL,
           S_ONE("model_version", S_VERSION), h_version_get),
    MLFLOW("PATCH", "model-versions/update", PERM_WRITE, "Change a model version's description",
           S_REQ("\"name\",\"version\"", P_NV ",\"description\":" S_STR), S_ONE("model_version", S_VERSION),
           h_version_update),
    MLFLOW("DELETE", "model-versions/delete", PERM_WRITE, "Delete a model version (its number is not reused)",
           S_REQ("\"name\",\"version\"", P_NV), S_EMPTY, h_version_delete),
    MLFLOW("GET", "model-versions/search", PERM_READ,
           "Search model versions (filter on name, run_id, source_path, version_number, tags; order_by; "
           "page_token)",
           NULL, S_VERSIONS_PAGE, h_version_search),
    MLFLOW("GET", "model-versions/get-download-uri", PERM_READ,
           "Where a version's files are (query: name, version)", NULL,
           S_ONE("artifact_uri", "{\"type\":\"string\",\"minLength\":1}"), h_download_uri),
    MLFLOW("POST", "model-versions/set-tag", PERM_WRITE, "Set a tag on a model version",
           S_REQ("\"name\",\"version\",\"key\",\"value\"", P_NV ",\"key\":" S_STR ",\"value\":" S_STR), S_EMPTY,
           h_version_tag_set),
    MLFLOW("DELETE", "model-versions/delete-tag", PERM_WRITE, "Delete a tag of a model version",
           S_REQ("\"name\",\"version\",\"key\"", P_NV ",\"key\":" S_STR), S_EMPTY, h_version_tag_delete),
    MLFLOW("POST", "model-versions/transition-stage", PERM_WRITE,
           "Move a version to None, Staging, Production or Archived (archive_existing_versions archives the "
           "stage's other versions)",
           S_REQ("\"name\",\"version\",\"stage\"",
                 P_NV ",\"stage\":" S_STR ",\"archive_existing_versions\":{\"type\":[\"boolean\",\"string\"]}"),
           S_ONE("model_version", S_VERSION), h_transition),
};
const size_t registry_routes_count = sizeof registry_routes / sizeof registry_routes[0];
