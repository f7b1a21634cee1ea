/* track/api: the MLflow tracking REST API's HTTP handlers, under
 * /api/2.0/mlflow/ and the /ajax-api/2.0/mlflow/ alias. Thin: read the
 * fields (query parameters for GET, a JSON body for POST; int64 as numbers
 * or strings; unknown fields ignored), pick the project, call the domain,
 * reply. Every route's project is the caller's selected one (see locate). */
#include "http/http.h"
#include "track/track.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static struct db *DB(struct req *rq) { return req_app(rq)->db; }

/* ---- the project a call acts in ------------------------------------------------- *
 * A key restricted to a project acts in it; otherwise the X-Kiln-Project
 * header names the project, else the user's default project. An
 * X-Kiln-Project that differs from a restricted key's project is passed on
 * as is, so the central check answers 404 for it. The route table's
 * locator, so the central check authorizes this project before the handler
 * runs; "" when there is none (the handler then says so). */
static const char *locate(struct req *rq, bool *missing) {
  (void)missing;
  const struct auth_principal *p = req_principal(rq);
  if (p->kind == AUTH_ANON || !p->user_id[0]) return NULL;
  const char *h = req_header(rq, "X-Kiln-Project");
  if (h && *h) return h;
  if (p->project_id[0]) return arena_strdup(req_arena(rq), p->project_id);
  struct auth_user u;
  struct err e;
  if (req_app(rq)->auth && auth_user_get(req_app(rq)->auth, p->user_id, &u, &e) == 0 && u.default_project_id[0])
    return arena_strdup(req_arena(rq), u.default_project_id);
  return "";
}

/* The handler's view of the same choice; NULL with the reply set. Server
 * administrators pass the central check for any project id, so theirs is
 * checked for existence here. */
static const char *project(struct req *rq, struct reply *rp) {
  const char *p = locate(rq, NULL);
  if (!p || !*p) {
    reply_errf(rp, ERR_INVALID_PARAMETER_VALUE,
               "No project is selected: send the X-Kiln-Project header with a project id (this "
               "account has no default project)");
    return NULL;
  }
  if (req_principal(rq)->is_admin) {
    struct auth_project pr;
    struct err e;
    if (auth_project_get(req_app(rq)->auth, p, &pr, &e)) {
      reply_errf(rp, ERR_RESOURCE_DOES_NOT_EXIST, "resource does not exist");
      return NULL;
    }
  }
  return p;
}

/* ---- fields --------------------------------------------------------------------- */
struct args {
  struct req *rq;
  struct reply *rp;
  json_t *body; /* POST: the JSON object; GET: NULL (query parameters) */
};

static int missing(struct args *a, const char *name) {
  reply_errf(a->rp, ERR_INVALID_PARAMETER_VALUE,
             "Missing value for required parameter '%s'. See the API docs for more information about "
             "request parameters.",
             name);
  return -1;
}

static const char *json_type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "dict";
  case JSON_ARRAY: return "list";
  case JSON_STRING: return "str";
  case JSON_INTEGER: return "int";
  case JSON_REAL: return "float";
  default: return "bool";
  }
}

static int bad_type(struct args *a, const char *name, const json_t *v) {
  char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  reply_errf(a->rp, ERR_INVALID_PARAMETER_VALUE,
             "Invalid value %.100s for parameter '%s' supplied. Hint: Value was of type '%s'. See the API "
             "docs for more information about request parameters.",
             text ? text : "?", name, json_type_name(v));
  free(text);
  return -1;
}

/* A string field; "" counts as absent for required ones (protobuf cannot
 * tell them apart). Numbers are taken as their decimal text. */
static int f_str(struct args *a, const char *name, bool required, const char **out) {
  *out = NULL;
  if (!a->body) {
    *out = req_query(a->rq, name);
  } else {
    json_t *v = json_object_get(a->body, name);
    if (json_is_string(v)) *out = json_string_value(v);
    else if (json_is_integer(v)) *out = arena_printf(req_arena(a->rq), "%lld", (long long)json_integer_value(v));
    else if (v && !json_is_null(v)) return bad_type(a, name, v);
  }
  if (required && (!*out || !**out)) return missing(a, name);
  return 0;
}

/* An int64 field: a JSON integer, or a string of one. */
static int f_i64(struct args *a, const char *name, bool required, int64_t *out, bool *given) {
  if (given) *given = false;
  const char *text = NULL;
  if (!a->body) {
    text = req_query(a->rq, name);
  } else {
    json_t *v = json_object_get(a->body, name);
    if (json_is_integer(v)) {
      *out = json_integer_value(v);
      if (given) *given = true;
      return 0;
    }
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) && fabs(json_real_value(v)) < 9e18) {
      *out = (int64_t)json_real_value(v);
      if (given) *given = true;
      return 0;
    }
    if (json_is_string(v)) text = json_string_value(v);
    else if (v && !json_is_null(v)) return bad_type(a, name, v);
  }
  if (!text || !*text) return required ? missing(a, name) : 0;
  if (str_to_i64(text, out)) {
    reply_errf(a->rp, ERR_INVALID_PARAMETER_VALUE,
               "Invalid value '%.100s' for parameter '%s' supplied: expected a 64-bit integer", text, name);
    return -1;
  }
  if (given) *given = true;
  return 0;
}

/* A repeated string field: a JSON array, or repeated query keys. */
#define LIST_MAX 64
static int f_list(struct args *a, const char *name, const char ***out, int *n) {
  *n = 0;
  *out = arena_zalloc(req_arena(a->rq), LIST_MAX * sizeof **out);
  if (!*out) return reply_errf(a->rp, ERR_NO_MEMORY, "out of memory"), -1;
  if (!a->body) {
    int k = req_query_all(a->rq, name, *out, LIST_MAX);
    if (k > LIST_MAX) {
      reply_errf(a->rp, ERR_INVALID_PARAMETER_VALUE, "'%s' takes at most %d values", name, LIST_MAX);
      return -1;
    }
    *n = k < 0 ? 0 : k;
    return 0;
  }
  json_t *v = json_object_get(a->body, name);
  if (!v || json_is_null(v)) return 0;
  if (json_is_string(v)) { /* a single value where a list was expected: take it */
    (*out)[(*n)++] = json_string_value(v);
    return 0;
  }
  if (!json_is_array(v)) return bad_type(a, name, v);
  if (json_array_size(v) > LIST_MAX) {
    reply_errf(a->rp, ERR_INVALID_PARAMETER_VALUE, "'%s' takes at most %d values", name, LIST_MAX);
    return -1;
  }
  size_t i;
  json_t *x;
  json_array_foreach(v, i, x) {
    if (json_is_string(x)) (*out)[(*n)++] = json_string_value(x);
    else if (json_is_integer(x))
      (*out)[(*n)++] = arena_printf(req_arena(a->rq), "%lld", (long long)json_integer_value(x));
    else return bad_type(a, name, x);
  }
  return 0;
}

/* run_id, or the older run_uuid. */
static int f_run_id(struct args *a, const char **out) {
  if (f_str(a, "run_id", false, out)) return -1;
  if (*out && **out) return 0;
  if (f_str(a, "run_uuid", false, out)) return -1;
  if (*out && **out) return 0;
  return missing(a, "run_id");
}

static int args_init(struct args *a, struct req *rq, struct reply *rp) {
  a->rq = rq;
  a->rp = rp;
  a->body = NULL;
  if (str_eq(req_method(rq), "GET") || str_eq(req_method(rq), "HEAD")) return 0;
  size_t n;
  req_body(rq, &n);
  if (n == 0) { /* an empty POST body is an empty message */
    a->body = json_object();
    return a->body ? 0 : (reply_errf(rp, ERR_NO_MEMORY, "out of memory"), -1);
  }
  a->body = req_json_object(rq, rp);
  if (a->body) json_incref(a->body);
  return a->body ? 0 : -1;
}

static void args_fini(struct args *a) { json_decref(a->body); }

static int view_of(struct args *a, const char *name, enum track_view *v) {
  *v = TRACKING_VIEW_ACTIVE;
  const char *s;
  if (a->body && json_is_integer(json_object_get(a->body, name))) {
    s = arena_printf(req_arena(a->rq), "%lld", (long long)json_integer_value(json_object_get(a->body, name)));
  } else if (f_str(a, name, false, &s)) {
    return -1;
  }
  if (!s || !*s) return 0;
  struct err e;
  if (track_view_parse(s, v, &e)) return reply_err(a->rp, &e), -1;
  return 0;
}

/* Metric values: protobuf JSON writes doubles as numbers, or as the strings
 * "NaN", "Infinity" and "-Infinity". */
static int metric_value(struct args *a, const char *name, const json_t *v, double *out) {
  if (json_is_number(v)) {
    *out = json_number_value(v);
    return 0;
  }
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    if (str_eq(s, "NaN")) *out = NAN;
    else if (str_eq(s, "Infinity")) *out = INFINITY;
    else if (str_eq(s, "-Infinity")) *out = -INFINITY;
    else {
      char *end;
      *out = strtod(s, &end);
      if (!*s || *end || isnan(*out)) goto bad;
    }
    return 0;
  }
bad:
  if (!v || json_is_null(v)) return missing(a, name);
  reply_errf(a->rp, ERR_INVALID_PARAMETER_VALUE,
             "Got invalid value for metric '%s'. Please specify value as a valid double (64-bit floating "
             "point)",
             name);
  return -1;
}

static int reply_empty(struct reply *rp) { return reply_json(rp, 200, json_object()); }

static void set_nonempty_array(json_t *o, const char *key, json_t *arr) {
  if (json_array_size(arr)) json_object_set_new(o, key, arr);
  else json_decref(arr);
}

/* ---- experiments -------------------------------------------------------------------- */

static int kv_list(struct args *a, const char *name, struct track_kv **out, int *n) {
  *n = 0;
  *out = NULL;
  json_t *v = a->body ? json_object_get(a->body, name) : NULL;
  if (!v || json_is_null(v)) return 0;
  if (!json_is_array(v)) return bad_type(a, name, v);
  *out = arena_zalloc(req_arena(a->rq), (json_array_size(v) + 1) * sizeof **out);
  if (!*out) return reply_errf(a->rp, ERR_NO_MEMORY, "out of memory"), -1;
  size_t i;
  json_t *x;
  json_array_foreach(v, i, x) {
    if (!json_is_object(x)) return bad_type(a, name, x);
    json_t *k = json_object_get(x, "key"), *val = json_object_get(x, "value");
    if (k && !json_is_string(k)) return bad_type(a, "key", k);
    if (val && !json_is_null(val) && !json_is_string(val)) return bad_type(a, "value", val);
    (*out)[i].key = json_string_value(k);
    (*out)[i].value = json_is_string(val) ? json_string_value(val) : NULL;
  }
  *n = (int)json_array_size(v);
  return 0;
}

static int h_exp_create(struct req *rq, struct reply *rp) {
  const char *proj = project(rq, rp), *name, *loc;
  struct args a;
  if (!proj || args_init(&a, rq, rp)) return 0;
  struct track_kv *tags;
  int ntags;
  int64_t id;
  struct err e;
  if (!f_str(&a, "name", true, &name) && !f_str(&a, "artifact_location", false, &loc) &&
      !kv_list(&a, "tags", &tags, &ntags)) {
    if (track_experiment_create(DB(rq), proj, name, loc, tags, ntags, &id, &e)) reply_err(rp, &e);
    else reply_json(rp, 200, json_pack("{s:s}", "experiment_id", arena_printf(req_arena(rq), "%lld", (long long)id)));
  }
  args_fini(&a);
  return 0;
}

static int h_exp_get(struct req *rq, struct reply *rp) {
  const char *proj = project(rq, rp), *id;
  struct args a;
  if (!proj || args_init(&a, rq, rp)) return 0;
  struct err e;
  if (!f_str(&a, "experiment_id", true, &id)) {
    json_t *x = track_experiment_get(DB(rq), proj, id, &e);
    if (x) reply_json(rp, 200, json_pack("{s:o}", "experiment", x));
    else reply_err(rp, &e);
  }
  args_fini(&a);
  return 0;
}

static int h_exp_get_by_name(struct req *rq, struct reply *rp) {
  const char *proj = project(rq, rp), *name;
  struct args a;
  if (!proj || args_init(&a, rq, rp)) return 0;
  struct err e;
  if (!f_str(&a, "experiment_name", true, &name)) {
    json_t *x = track_experiment_get_by_name(DB(rq), proj, name, &e);
    if (x) reply_json(rp, 200, json_pack("{s:o}", "experiment", x));
    else reply_err(rp, &e);
  }
  args_fini(&a);
  return 0;
}

static int h_exp_update(struct req *rq, struct reply *rp) {
  const char *proj = project(rq, rp), *id, *name;
  struct args a;
  if (!proj || args_init(&a, rq, rp)) return 0;
  struct err e;
  if (!f_str(&a, "experiment_id", true, &id) && !f_str(&a, "new_name", true, &name)) {
    if (track_experiment_rename(DB(rq), proj, id, name, &e)) reply_err(rp, &e);
    else reply_empty(rp);
  }
  args_fini(&a);
  return 0;
}

static int exp_lifecycle(struct req *rq, struct reply *rp, bool restore) {
  const char *proj = project(rq, rp), *id;
  struct args a;
  if (!proj || args_init(&a, rq, rp)) return 0;
  struct err e;
  if (!f_str(&a, "experiment_id", true, &id)) {
    int rc = restore ? track_experiment_restore(DB(rq), proj, id, &e)
                     : track_experiment_delete(DB(rq), proj, id, &e);
    if (rc) reply_err(rp, &e);
    else reply_empty(rp);
  }
  args_fini(&a);
  return 0;
}
static int h_exp_delete(struct req *rq, struct reply *rp) { return exp_lifecycle(rq, rp, false); }
static int h_exp_restore(struct req *rq, struct reply *rp) { return exp_lifecycle(rq, rp, true); }

static int h_exp_tag_set(struct req *rq, struct reply *rp) {
  const char *proj = project(rq, rp), *id, *key, *value;
  struct args a;
  if (!proj || args_init(&a, rq, rp)) return 0;
  struct err e;
  if (!f_str(&a, "experiment_id", true, &id) && !f_str(&a, "key", true, &key) &&
      !f_str(&a, "value", false, &value)) {
    if (!value) missing(&a, "value");
    else if (track_experiment_tag_set(DB(rq), proj, id, key, value, &e)) reply_err(rp, &e);
    else reply_empty(rp);
  }
  args_fini(&a);
  return 0;
}

static int h_exp_tag_delete(struct req *rq, struct reply *rp) {
  const char *proj = project(rq, rp), *id, *key;
  struct args a;
  if (!proj || args_init(&a, rq, rp)) return 0;
  struct err e;
  if (!f_str(&a, "experiment_id", true, &id) && !f_str(&a, "key", true, &key)) {
    if (track_experiment_tag_delete(DB(rq), proj, id, key, &e)) reply_err(rp, &e);
    else reply_empty(rp);
  }
  args_fini(&a);
  return 0;
}

/* max_results absent means the default; given, it must be positive (an
 * explicit 0 is not taken as "the default"). */
static int search_common(struct args *a, struct track_search *s, const char *view_field) {
  memset(s, 0, sizeof *s);
  const char **order;
  bool given;
  if (f_i64(a, "max_results", false, &s->max_results, &given)) return -1;
  if (given && s->max_results < 1) {
    reply_errf(a->rp, ERR_INVALID_PARAMETER_VALUE,
               "Invalid value for request parameter max_results. It must be a positive integer, but got "
               "value %lld",
               (long long)s->max_results);
    return -1;
  }
  return f_str(a, "page_token", false, &s->page_token) || f_str(a, "filter", false, &s->filter) ||
         f_list(a, "order_by", &order, &s->norder_by) || (s->order_by = order, view_of(a, view_field, &s->view));
}

static int h_exp_search(struct req *rq, struct reply *rp) {
  const char *proj = project(rq, rp);
  struct args a;
  if (!proj || args_init(&a, rq, rp)) return 0;
  struct track_search s;
  struct err e;
  char next[TRACKING_PAGE_TOKEN_MAX];
  if (!search_common(&a, &s, "view_type")) {
    json_t *arr = track_experiment_search(DB(rq), proj, &s, next, &e);
    if (!arr) {
      reply_err(rp, &e);
    } else {
      json_t *o = json_object();
      set_nonempty_array(o, "experiments", arr);
      if (next[0]) json_object_set_new(o, "next_page_token", json_string(next));
      reply_json(rp, 200, o);
    }
  }
  args_fini(&a);
  return 0;
}

/* ---- runs ------------------------------------------------------------------------------- */

static int h_run_create(struct req *rq, struct reply *rp) {
  const char *proj = project(rq, rp);
  struct args a;
  if (!proj || args_init(&a, rq, rp)) return 0;
  struct track_run_new in = {0};
  struct track_kv *tags;
  struct err e;
  if (!f_str(&a, "experiment_id", false, &in.experiment_id) && !f_str(&a, "user_id", false, &in.user_id) &&
      !f_str(&a, "run_name", false, &in.run_name) && !f_i64(&a, "start_time", false, &in.start_time, NULL) &&
      !kv_list(&a, "tags", &tags, &in.ntags)) {
    in.tags = tags;
    if (!in.user_id || !*in.user_id) in.user_id = req_principal(rq)->username;
    json_t *run = track_run_create(DB(rq), proj, &in, &e);
    if (run) reply_json(rp, 200, json_pack("{s:o}", "run", run));
    else reply_err(rp, &e);
  }
  args_fini(&a);
  return 0;
}

static int h_run_get(struct req *rq, struct reply *rp) {
  const char *proj = project(rq, rp), *id;
  struct args a;
  if (!proj || args_init(&a, rq, rp)) return 0;
  struct err e;
  if (!f_run_id(&a, &id)) {
    json_t *run = track_run_get(DB(rq), proj, id, &e);
    if (run) reply_json(rp, 200, json_pack("{s:o}", "run", run));
    else reply_err(rp, &e);
  }
  args_fini(&a);
  return 0;
}

static int h_run_update(struct req *rq, struct reply *rp) {
  const char *proj = project(rq, rp), *id, *status;
  struct args a;
  if (!proj || args_init(&a, rq, rp)) return 0;
  struct track_run_update u = {0};
  struct err e;
  if (!f_run_id(&a, &id) && !f_i64(&a, "end_time", false, &u.end_time, NULL) &&
      !f_str(&a, "run_name", false, &u.run_name)) {
    json_t *sv = a.body ? json_object_get(a.body, "status") : NULL;
    status = json_is_integer(sv) ? arena_printf(req_arena(rq), "%lld", (long long)json_integer_value(sv))
             : json_is_string(sv) ? json_string_value(sv)
                                  : NULL;
    if (sv && !json_is_null(sv) && !status) {
      bad_type(&a, "status", sv);
    } else if (status && track_status_parse(status, &u.status, &e)) {
      reply_err(rp, &e);
    } else {
      json_t *info = track_run_update(DB(rq), proj, id, &u, &e);
      if (info) reply_json(rp, 200, json_pack("{s:o}", "run_info", info));
      else reply_err(rp, &e);
    }
  }
  args_fini(&a);
  return 0;
}

static int run_lifecycle(struct req *rq, struct reply *rp, bool restore) {
  const char *proj = project(rq, rp), *id;
  struct args a;
  if (!proj || args_init(&a, rq, rp)) return 0;
  struct err e;
  if (!f_str(&a, "run_id", true, &id)) {
    int rc = restore ? track_run_restore(DB(rq), proj, id, &e) : track_run_delete(DB(rq), proj, id, &e);
    if (rc) reply_err(rp, &e);
    else reply_empty(rp);
  }
  args_fini(&a);
  return 0;
}
static int h_run_delete(struct req *rq, struct reply *rp) { return run_lifecycle(rq, rp, false); }
static int h_run_restore(struct req *rq, struct reply *rp) { return run_lifecycle(rq, rp, true); }

static int log_one(struct req *rq, struct reply *rp, struct track_batch *b, const char *proj,
                   const char *run_id) {
  struct err e;
  if (track_log_batch(DB(rq), proj, run_id, b, &e)) return reply_err(rp, &e);
  return reply_empty(rp);
}

static int h_run_set_tag(struct req *rq, struct reply *rp) {
  const char *proj = project(rq, rp), *id;
  struct args a;
  if (!proj || args_init(&a, rq, rp)) return 0;
  struct track_kv kv;
  if (!f_run_id(&a, &id) && !f_str(&a, "key", true, &kv.key) && !f_str(&a, "value", false, &kv.value)) {
    if (!kv.value) missing(&a, "value");
    else log_one(rq, rp, &(struct track_batch){.tags = &kv, .ntags = 1}, proj, id);
  }
  args_fini(&a);
  return 0;
}

static int h_run_delete_tag(struct req *rq, struct reply *rp) {
  const char *proj = project(rq, rp), *id, *key;
  struct args a;
  if (!proj || args_init(&a, rq, rp)) return 0;
  struct err e;
  if (!f_str(&a, "run_id", true, &id) && !f_str(&a, "key", true, &key)) {
    if (track_run_tag_delete(DB(rq), proj, id, key, &e)) reply_err(rp, &e);
    else reply_empty(rp);
  }
  args_fini(&a);
  return 0;
}

static int h_log_metric(struct req *rq, struct reply *rp) {
  const char *proj = project(rq, rp), *id;
  struct args a;
  if (!proj || args_init(&a, rq, rp)) return 0;
  struct track_metric m = {0};
  if (!f_run_id(&a, &id) && !f_str(&a, "key", true, &m.key) &&
      !metric_value(&a, "value", json_object_get(a.body, "value"), &m.value) &&
      !f_i64(&a, "timestamp", true, &m.timestamp, NULL) && !f_i64(&a, "step", false, &m.step, NULL))
    log_one(rq, rp, &(struct track_batch){.metrics = &m, .nmetrics = 1}, proj, id);
  args_fini(&a);
  return 0;
}

static int h_log_param(struct req *rq, struct reply *rp) {
  const char *proj = project(rq, rp), *id;
  struct args a;
  if (!proj || args_init(&a, rq, rp)) return 0;
  struct track_kv kv;
  if (!f_run_id(&a, &id) && !f_str(&a, "key", true, &kv.key) && !f_str(&a, "value", false, &kv.value)) {
    if (!kv.value) missing(&a, "value");
    else log_one(rq, rp, &(struct track_batch){.params = &kv, .nparams = 1, .single_param = true}, proj, id);
  }
  args_fini(&a);
  return 0;
}

static int h_log_batch(struct req *rq, struct reply *rp) {
  const char *proj = project(rq, rp), *id;
  size_t len;
  req_body(rq, &len);
  if (proj && len > TRACKING_MAX_BATCH_REQUEST_BYTES)
    return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE,
                      "Batched logging API requests must be at most %d bytes, got a request of size %zu.",
                      TRACKING_MAX_BATCH_REQUEST_BYTES, len);
  /* the plain shape every client sends is read without jansson values */
  struct track_batch fast;
  if (proj && track_log_batch_parse(req_body(rq, &len), len, req_arena(rq), &id, &fast) == 1)
    return log_one(rq, rp, &fast, proj, id), 0;
  struct args a;
  if (!proj || args_init(&a, rq, rp)) return 0;
  struct track_batch b = {0};
  struct track_kv *params, *tags;
  if (f_run_id(&a, &id) || kv_list(&a, "params", &params, &b.nparams) || kv_list(&a, "tags", &tags, &b.ntags))
    goto out;
  b.params = params;
  b.tags = tags;
  json_t *ms = json_object_get(a.body, "metrics");
  if (ms && !json_is_null(ms)) {
    if (!json_is_array(ms)) {
      bad_type(&a, "metrics", ms);
      goto out;
    }
    size_t n = json_array_size(ms);
    struct track_metric *m = arena_zalloc(req_arena(rq), (n + 1) * sizeof *m);
    if (!m) {
      reply_errf(rp, ERR_NO_MEMORY, "out of memory");
      goto out;
    }
    size_t i;
    json_t *x;
    json_array_foreach(ms, i, x) {
      if (!json_is_object(x)) {
        bad_type(&a, "metrics", x);
        goto out;
      }
      struct args sub = {.rq = rq, .rp = rp, .body = x};
      if (f_str(&sub, "key", false, &m[i].key) || metric_value(&sub, "value", json_object_get(x, "value"), &m[i].value) ||
          f_i64(&sub, "timestamp", true, &m[i].timestamp, NULL) || f_i64(&sub, "step", false, &m[i].step, NULL))
        goto out;
    }
    b.metrics = m;
    b.nmetrics = (int)n;
  }
  log_one(rq, rp, &b, proj, id);
out:
  args_fini(&a);
  return 0;
}

static int h_metric_history(struct req *rq, struct reply *rp) {
  const char *proj = project(rq, rp), *id, *key, *token;
  struct args a;
  if (!proj || args_init(&a, rq, rp)) return 0;
  int64_t max = 0;
  struct err e;
  if (!f_run_id(&a, &id) && !f_str(&a, "metric_key", true, &key) && !f_str(&a, "page_token", false, &token) &&
      !f_i64(&a, "max_results", false, &max, NULL)) {
    /* written straight into the reply: a 100,000-point history as jansson
     * values costs several times the read */
    struct buf b;
    buf_init(&b);
    if (track_metric_history_write(DB(rq), proj, id, key, max, token, &b, &e)) {
      buf_fini(&b);
      reply_err(rp, &e);
    } else {
      size_t len = b.len;
      reply_take(rp, 200, "application/json", buf_steal(&b), len);
    }
  }
  args_fini(&a);
  return 0;
}

static int h_run_search(struct req *rq, struct reply *rp) {
  const char *proj = project(rq, rp);
  struct args a;
  if (!proj || args_init(&a, rq, rp)) return 0;
  struct track_search s;
  const char **ids;
  struct err e;
  char next[TRACKING_PAGE_TOKEN_MAX];
  if (!search_common(&a, &s, "run_view_type") && !f_list(&a, "experiment_ids", &ids, &s.nexperiment_ids)) {
    s.experiment_ids = ids;
    json_t *arr = track_run_search(DB(rq), proj, &s, next, &e);
    if (!arr) {
      reply_err(rp, &e);
    } else {
      json_t *o = json_object();
      set_nonempty_array(o, "runs", arr);
      if (next[0]) json_object_set_new(o, "next_page_token", json_string(next));
      reply_json(rp, 200, o);
    }
  }
  args_fini(&a);
  return 0;
}

/* ---- schemas ------------------------------------------------------------------------------ */
#define S_STR "{\"type\":\"string\"}"
#define S_INT "{\"type\":\"integer\"}"
#define S_EMPTY "{\"type\":\"object\",\"maxProperties\":0}"
#define S_KV                                                                                       \
  "{\"type\":\"object\",\"required\":[\"key\"],\"properties\":{\"key\":" S_STR ",\"value\":" S_STR \
  "},\"additionalProperties\":false}"
#define S_KVS "{\"type\":\"array\",\"minItems\":1,\"items\":" S_KV "}"
#define S_EXPERIMENT                                                                               \
  "{\"type\":\"object\",\"required\":[\"experiment_id\",\"name\",\"lifecycle_stage\"],"            \
  "\"properties\":{\"experiment_id\":{\"type\":\"string\",\"pattern\":\"^[0-9]+$\"},\"name\":"     \
  S_STR ",\"artifact_location\":" S_STR ",\"lifecycle_stage\":{\"enum\":[\"active\",\"deleted\"]}," \
  "\"last_update_time\":" S_INT ",\"creation_time\":" S_INT ",\"tags\":" S_KVS                      \
  "},\"additionalProperties\":false}"
#define S_METRIC                                                                                   \
  "{\"type\":\"object\",\"required\":[\"key\",\"value\",\"timestamp\",\"step\"],\"properties\":{"  \
  "\"key\":" S_STR ",\"value\":{\"anyOf\":[{\"type\":\"number\"},{\"enum\":[\"NaN\",\"Infinity\","  \
  "\"-Infinity\"]}]},\"timestamp\":" S_INT ",\"step\":" S_INT "},\"additionalProperties\":false}"
#define S_RUN_INFO                                                                                 \
  "{\"type\":\"object\",\"required\":[\"run_id\",\"run_uuid\",\"experiment_id\",\"status\","       \
  "\"lifecycle_stage\"],\"properties\":{\"run_id\":{\"type\":\"string\",\"pattern\":"              \
  "\"^[0-9a-f]{32}$\"},\"run_uuid\":{\"type\":\"string\",\"pattern\":\"^[0-9a-f]{32}$\"},"          \
  "\"run_name\":" S_STR ",\"experiment_id\":{\"type\":\"string\",\"pattern\":\"^[0-9]+$\"},"        \
  "\"user_id\":" S_STR ",\"status\":{\"enum\":[\"RUNNING\",\"SCHEDULED\",\"FINISHED\",\"FAILED\","   \
  "\"KILLED\"]},\"start_time\":" S_INT ",\"end_time\":" S_INT ",\"artifact_uri\":" S_STR            \
  ",\"lifecycle_stage\":{\"enum\":[\"active\",\"deleted\"]}},\"additionalProperties\":false}"
#define S_RUN                                                                                      \
  "{\"type\":\"object\",\"required\":[\"info\",\"data\"],\"properties\":{\"info\":" S_RUN_INFO     \
  ",\"data\":{\"type\":\"object\",\"properties\":{\"metrics\":{\"type\":\"array\",\"minItems\":1,"  \
  "\"items\":" S_METRIC "},\"params\":" S_KVS ",\"tags\":" S_KVS "},\"additionalProperties\":false}," \
  "\"inputs\":{\"type\":\"object\"},\"outputs\":{\"type\":\"object\",\"properties\":{\"model_outputs\":" \
  "{\"type\":\"array\",\"minItems\":1,\"items\":{\"type\":\"object\",\"required\":[\"model_id\",\"step\"]," \
  "\"properties\":{\"model_id\":" S_STR ",\"step\":" S_INT "},\"additionalProperties\":false}}},"          \
  "\"additionalProperties\":false}},\"additionalProperties\":false}"
#define S_TOKEN "\"next_page_token\":{\"type\":\"string\",\"minLength\":1}"

#define S_REQ(req, props) "{\"type\":\"object\",\"required\":[" req "],\"properties\":{" props "}}"
#define P_RUN_ID "\"run_id\":" S_STR ",\"run_uuid\":" S_STR
#define P_I64 "{\"type\":[\"integer\",\"string\"]}"
#define P_KVS "{\"type\":\"array\",\"items\":" S_KV "}"

/* Each route twice: the REST path and the /ajax-api alias MLflow's UI uses. */
#define MLFLOW(method, path, perm, summary, req, resp, fn)                                         \
  {method, "/api/2.0/mlflow/" path, perm, summary, "mlflow tracking", req, resp, NULL, fn,         \
   ROUTE_PROJECT_SELECTED, locate},                                                                \
  {method, "/ajax-api/2.0/mlflow/" path, perm, summary " (alias)", "mlflow tracking", req, resp,   \
   NULL, fn, ROUTE_PROJECT_SELECTED, locate}

const struct route track_routes[] = {
    MLFLOW("POST", "experiments/create", PERM_WRITE, "Create an experiment in the selected project",
           S_REQ("\"name\"", "\"name\":" S_STR ",\"artifact_location\":" S_STR ",\"tags\":" P_KVS),
           "{\"type\":\"object\",\"required\":[\"experiment_id\"],\"properties\":{\"experiment_id\":"
           "{\"type\":\"string\",\"pattern\":\"^[0-9]+$\"}},\"additionalProperties\":false}",
           h_exp_create),
    MLFLOW("GET", "experiments/get", PERM_READ,
           "An experiment by id (query: experiment_id; \"0\" is the project's Default)", NULL,
           "{\"type\":\"object\",\"required\":[\"experiment\"],\"properties\":{\"experiment\":" S_EXPERIMENT
           "},\"additionalProperties\":false}",
           h_exp_get),
    MLFLOW("GET", "experiments/get-by-name", PERM_READ, "An experiment by name (query: experiment_name)",
           NULL,
           "{\"type\":\"object\",\"required\":[\"experiment\"],\"properties\":{\"experiment\":" S_EXPERIMENT
           "},\"additionalProperties\":false}",
           h_exp_get_by_name),
    MLFLOW("POST", "experiments/update", PERM_WRITE, "Rename an experiment",
           S_REQ("\"experiment_id\",\"new_name\"", "\"experiment_id\":" S_STR ",\"new_name\":" S_STR), S_EMPTY,
           h_exp_update),
    MLFLOW("POST", "experiments/delete", PERM_WRITE, "Delete an experiment and its runs (restorable)",
           S_REQ("\"experiment_id\"", "\"experiment_id\":" S_STR), S_EMPTY, h_exp_delete),
    MLFLOW("POST", "experiments/restore", PERM_WRITE, "Restore a deleted experiment and its runs",
           S_REQ("\"experiment_id\"", "\"experiment_id\":" S_STR), S_EMPTY, h_exp_restore),
    MLFLOW("POST", "experiments/set-experiment-tag", PERM_WRITE, "Set a tag on an experiment",
           S_REQ("\"experiment_id\",\"key\",\"value\"",
                 "\"experiment_id\":" S_STR ",\"key\":" S_STR ",\"value\":" S_STR),
           S_EMPTY, h_exp_tag_set),
    MLFLOW("POST", "experiments/delete-experiment-tag", PERM_WRITE, "Delete a tag of an experiment",
           S_REQ("\"experiment_id\",\"key\"", "\"experiment_id\":" S_STR ",\"key\":" S_STR), S_EMPTY,
           h_exp_tag_delete),
    MLFLOW("POST", "experiments/search", PERM_READ,
           "Search the selected project's experiments (max_results, page_token, order_by, view_type)",
           S_REQ("", "\"max_results\":" P_I64 ",\"page_token\":" S_STR ",\"filter\":" S_STR
                     ",\"order_by\":{\"type\":\"array\",\"items\":" S_STR "},\"view_type\":{}"),
           "{\"type\":\"object\",\"properties\":{\"experiments\":{\"type\":\"array\",\"minItems\":1,"
           "\"items\":" S_EXPERIMENT "}," S_TOKEN "},\"additionalProperties\":false}",
           h_exp_search),
    MLFLOW("GET", "experiments/search", PERM_READ,
           "Search experiments with query parameters (order_by repeated)", NULL,
           "{\"type\":\"object\",\"properties\":{\"experiments\":{\"type\":\"array\",\"minItems\":1,"
           "\"items\":" S_EXPERIMENT "}," S_TOKEN "},\"additionalProperties\":false}",
           h_exp_search),
    MLFLOW("POST", "runs/create", PERM_WRITE, "Create a run (experiment_id \"0\" or absent: the Default)",
           S_REQ("", "\"experiment_id\":" S_STR ",\"user_id\":" S_STR ",\"run_name\":" S_STR
                     ",\"start_time\":" P_I64 ",\"tags\":" P_KVS),
           "{\"type\":\"object\",\"required\":[\"run\"],\"properties\":{\"run\":" S_RUN
           "},\"additionalProperties\":false}",
           h_run_create),
    MLFLOW("GET", "runs/get", PERM_READ, "A run with its latest metrics, params and tags (query: run_id)",
           NULL,
           "{\"type\":\"object\",\"required\":[\"run\"],\"properties\":{\"run\":" S_RUN
           "},\"additionalProperties\":false}",
           h_run_get),
    MLFLOW("POST", "runs/update", PERM_WRITE, "Update a run's status, end time or name",
           S_REQ("", P_RUN_ID ",\"status\":{},\"end_time\":" P_I64 ",\"run_name\":" S_STR),
           "{\"type\":\"object\",\"required\":[\"run_info\"],\"properties\":{\"run_info\":" S_RUN_INFO
           "},\"additionalProperties\":false}",
           h_run_update),
    MLFLOW("POST", "runs/delete", PERM_WRITE, "Delete a run (restorable)",
           S_REQ("\"run_id\"", "\"run_id\":" S_STR), S_EMPTY, h_run_delete),
    MLFLOW("POST", "runs/restore", PERM_WRITE, "Restore a deleted run", S_REQ("\"run_id\"", "\"run_id\":" S_STR),
           S_EMPTY, h_run_restore),
    MLFLOW("POST", "runs/set-tag", PERM_WRITE, "Set a tag on a run",
           S_REQ("\"key\",\"value\"", P_RUN_ID ",\"key\":" S_STR ",\"value\":" S_STR), S_EMPTY, h_run_set_tag),
    MLFLOW("POST", "runs/delete-tag", PERM_WRITE, "Delete a tag of a run",
           S_REQ("\"run_id\",\"key\"", "\"run_id\":" S_STR ",\"key\":" S_STR), S_EMPTY, h_run_delete_tag),
    MLFLOW("POST", "runs/log-metric", PERM_WRITE, "Log one metric point",
           S_REQ("\"key\",\"value\",\"timestamp\"", P_RUN_ID ",\"key\":" S_STR
                 ",\"value\":{\"type\":[\"number\",\"string\"]},\"timestamp\":" P_I64 ",\"step\":" P_I64),
           S_EMPTY, h_log_metric),
    MLFLOW("POST", "runs/log-parameter", PERM_WRITE, "Log a param (immutable once logged)",
           S_REQ("\"key\",\"value\"", P_RUN_ID ",\"key\":" S_STR ",\"value\":" S_STR), S_EMPTY, h_log_param),
    MLFLOW("POST", "runs/log-batch", PERM_WRITE,
           "Log up to 1000 metrics, 100 params and 100 tags (1000 in all) in one write",
           S_REQ("\"run_id\"", "\"run_id\":" S_STR ",\"metrics\":{\"type\":\"array\"},\"params\":" P_KVS
                               ",\"tags\":" P_KVS),
           S_EMPTY, h_log_batch),
    MLFLOW("POST", "runs/search", PERM_READ,
           "Search runs of experiments (experiment_ids, max_results, page_token, order_by, run_view_type)",
           S_REQ("", "\"experiment_ids\":{\"type\":\"array\",\"items\":" S_STR "},\"filter\":" S_STR
                     ",\"run_view_type\":{},\"max_results\":" P_I64 ",\"order_by\":{\"type\":\"array\","
                     "\"items\":" S_STR "},\"page_token\":" S_STR),
           "{\"type\":\"object\",\"properties\":{\"runs\":{\"type\":\"array\",\"minItems\":1,\"items\":" S_RUN
           "}," S_TOKEN "},\"additionalProperties\":false}",
           h_run_search),
    MLFLOW("GET", "metrics/get-history", PERM_READ,
           "A metric's full history in (step, timestamp) order (query: run_id, metric_key, max_results, "
           "page_token)",
           NULL,
           "{\"type\":\"object\",\"properties\":{\"metrics\":{\"type\":\"array\",\"minItems\":1,\"items\":" S_METRIC
           "}," S_TOKEN "},\"additionalProperties\":false}",
           h_metric_history),
};
const size_t track_routes_count = sizeof track_routes / sizeof track_routes[0];

/* The project choice, for the room's other route files (api_artifacts.c). */
const char *track_api_locate(struct req *rq, bool *missing) { return locate(rq, missing); }
const char *track_api_project(struct req *rq, struct reply *rp) { return project(rq, rp); }
