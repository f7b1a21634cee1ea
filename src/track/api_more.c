/* track/api_more: the rest of the tracking API's HTTP side — MLflow's
 * get-history-bulk-interval, runs/log-inputs, runs/log-model, MLflow 3's
 * logged models and server-info — and Kiln's chart endpoints: a sampled
 * series (GET /api/v1/runs/{id}/metrics/{key}/sampled) and live updates as
 * Server-Sent Events (GET /api/v1/runs/{id}/events). Thin, like api.c. */
#include "http/http.h"
#include "track/track.h"

#include <stdlib.h>
#include <string.h>

/* The project a call acts in: api.c's choice (locator and handler view). */
const char *track_api_locate(struct req *rq, bool *missing);
const char *track_api_project(struct req *rq, struct reply *rp);

static struct db *DB(struct req *rq) { return req_app(rq)->db; }

static int reply_empty(struct reply *rp) { return reply_json(rp, 200, json_object()); }

static int missing(struct reply *rp, const char *name) {
  return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE,
                    "Missing value for required parameter '%s'. See the API docs for more information about request "
                    "parameters.",
                    name);
}

static int bad(struct reply *rp, const char *name, const char *want) {
  return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "Invalid value for parameter '%s' supplied: expected %s", name, want);
}

/* The JSON body (an empty body is an empty message); NULL with the reply
 * set. The caller json_decref's it. */
static json_t *body_of(struct req *rq, struct reply *rp) {
  size_t n;
  req_body(rq, &n);
  if (n == 0) return json_object();
  json_t *b = req_json_object(rq, rp);
  return b ? json_incref(b) : NULL;
}

/* A string field: JSON string (or integer, as its text), or absent. */
static int j_str(struct reply *rp, json_t *o, const char *name, bool required, const char **out) {
  json_t *v = json_object_get(o, name);
  *out = NULL;
  if (json_is_string(v)) *out = json_string_value(v);
  else if (v && !json_is_null(v)) return bad(rp, name, "a string"), -1;
  if (required && (!*out || !**out)) return missing(rp, name), -1;
  return 0;
}

/* int64: a number or a string of digits, from a JSON object or the query. */
static int i64_text(struct reply *rp, const char *name, const char *text, int64_t *out, bool *given) {
  if (!text || !*text) return 0;
  if (str_to_i64(text, out)) return bad(rp, name, "a 64-bit integer"), -1;
  *given = true;
  return 0;
}

static int j_i64(struct reply *rp, json_t *o, const char *name, int64_t *out, bool *given) {
  json_t *v = json_object_get(o, name);
  *given = false;
  if (!v || json_is_null(v)) return 0;
  if (json_is_integer(v)) {
    *out = json_integer_value(v);
    *given = true;
    return 0;
  }
  if (json_is_string(v)) return i64_text(rp, name, json_string_value(v), out, given);
  return bad(rp, name, "a 64-bit integer"), -1;
}

static int q_i64(struct req *rq, struct reply *rp, const char *name, int64_t *out, bool *given) {
  *given = false;
  return i64_text(rp, name, req_query(rq, name), out, given);
}

/* [{key, value}] into an arena array. */
static int j_kvs(struct req *rq, struct reply *rp, json_t *o, const char *name, struct track_kv **out, int *n) {
  json_t *v = json_object_get(o, name);
  *out = NULL;
  *n = 0;
  if (!v || json_is_null(v)) return 0;
  if (!json_is_array(v)) return bad(rp, name, "a list of {key, value}"), -1;
  *out = arena_zalloc(req_arena(rq), (json_array_size(v) + 1) * sizeof **out);
  if (!*out) return reply_errf(rp, ERR_NO_MEMORY, "out of memory"), -1;
  size_t i;
  json_t *x;
  json_array_foreach(v, i, x) {
    json_t *k = json_object_get(x, "key"), *val = json_object_get(x, "value");
    if (!json_is_object(x) || (k && !json_is_string(k)) || (val && !json_is_null(val) && !json_is_string(val)))
      return bad(rp, name, "a list of {key, value} with string keys and values"), -1;
    if (!json_is_string(k)) return missing(rp, "key"), -1;
    (*out)[i].key = json_string_value(k);
    (*out)[i].value = json_is_string(val) ? json_string_value(val) : NULL;
  }
  *n = (int)json_array_size(v);
  return 0;
}

/* run_id, or the older run_uuid */
static const char *j_run_id(struct reply *rp, json_t *o) {
  const char *id, *uuid;
  if (j_str(rp, o, "run_id", false, &id) || j_str(rp, o, "run_uuid", false, &uuid)) return NULL;
  if (id && *id) return id;
  if (uuid && *uuid) return uuid;
  missing(rp, "run_id");
  return NULL;
}

/* ---- metrics/get-history-bulk-interval -------------------------------------------------- */

static int h_bulk_interval(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  const char *ids[TRACKING_MAX_BULK_RUN_IDS + 1];
  int n = req_query_all(rq, "run_ids", ids, TRACKING_MAX_BULK_RUN_IDS + 1);
  const char *key = req_query(rq, "metric_key");
  if (!key || !*key) return missing(rp, "metric_key");
  struct track_sample o = {.points = TRACKING_MAX_BULK_INTERVAL_RESULTS};
  bool given;
  if (q_i64(rq, rp, "start_step", &o.start, &o.has_start) || q_i64(rq, rp, "end_step", &o.end, &o.has_end) ||
      q_i64(rq, rp, "max_results", &o.points, &given))
    return 0;
  struct err e;
  json_t *arr = track_metric_bulk_interval(DB(rq), proj, ids, n, key, &o, &e);
  if (!arr) return reply_err(rp, &e);
  json_t *out = json_object();
  if (json_array_size(arr)) json_object_set_new(out, "metrics", arr);
  else json_decref(arr);
  return reply_json(rp, 200, out);
}

/* ---- runs/log-inputs, runs/log-model ------------------------------------------------------ */

static int dataset_of(struct req *rq, struct reply *rp, json_t *x, struct track_dataset_input *d) {
  json_t *ds = json_object_get(x, "dataset");
  if (!json_is_object(x)) return bad(rp, "datasets", "a list of DatasetInput objects"), -1;
  if (!ds || json_is_null(ds)) return missing(rp, "dataset"), -1;
  if (!json_is_object(ds)) return bad(rp, "dataset", "a Dataset object"), -1;
  struct track_kv *tags;
  if (j_str(rp, ds, "name", true, &d->name) || j_str(rp, ds, "digest", true, &d->digest) ||
      j_str(rp, ds, "source_type", true, &d->source_type) || j_str(rp, ds, "source", true, &d->source) ||
      j_str(rp, ds, "schema", false, &d->schema) || j_str(rp, ds, "profile", false, &d->profile) ||
      j_kvs(rq, rp, x, "tags", &tags, &d->ntags))
    return -1;
  d->tags = tags;
  return 0;
}

static int h_log_inputs(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp), *id;
  json_t *b = proj ? body_of(rq, rp) : NULL;
  if (!b) return 0;
  struct track_inputs in = {0};
  if (j_str(rp, b, "run_id", true, &id)) goto out;
  json_t *ds = json_object_get(b, "datasets"), *ms = json_object_get(b, "models");
  if ((ds && !json_is_null(ds) && !json_is_array(ds)) || (ms && !json_is_null(ms) && !json_is_array(ms))) {
    bad(rp, ds && !json_is_array(ds) ? "datasets" : "models", "a list");
    goto out;
  }
  size_t nd = json_array_size(ds), nm = json_array_size(ms);
  struct track_dataset_input *d = arena_zalloc(req_arena(rq), (nd + 1) * sizeof *d);
  const char **mids = arena_zalloc(req_arena(rq), (nm + 1) * sizeof *mids);
  if (!d || !mids) {
    reply_errf(rp, ERR_NO_MEMORY, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < nd; i++)
    if (dataset_of(rq, rp, json_array_get(ds, i), &d[i])) goto out;
  for (size_t i = 0; i < nm; i++) {
    json_t *m = json_array_get(ms, i);
    if (!json_is_object(m) || j_str(rp, m, "model_id", true, &mids[i])) {
      if (!json_is_object(m)) bad(rp, "models", "a list of ModelInput objects");
      goto out;
    }
  }
  in = (struct track_inputs){.datasets = d, .ndatasets = (int)nd, .model_ids = mids, .nmodels = (int)nm};
  struct err e;
  if (track_log_inputs(DB(rq), proj, id, &in, &e)) reply_err(rp, &e);
  else reply_empty(rp);
out:
  json_decref(b);
  return 0;
}

static int h_log_model(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp), *id, *model;
  json_t *b = proj ? body_of(rq, rp) : NULL;
  if (!b) return 0;
  struct err e;
  if ((id = j_run_id(rp, b)) && !j_str(rp, b, "model_json", true, &model)) {
    if (track_log_model(DB(rq), proj, id, model, &e)) reply_err(rp, &e);
    else reply_empty(rp);
  }
  json_decref(b);
  return 0;
}

/* runs/outputs: {run_id, models: [{model_id, step}]} */
static int h_log_outputs(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp), *id;
  json_t *b = proj ? body_of(rq, rp) : NULL;
  if (!b) return 0;
  if (j_str(rp, b, "run_id", true, &id)) goto out;
  json_t *ms = json_object_get(b, "models");
  if (ms && !json_is_null(ms) && !json_is_array(ms)) {
    bad(rp, "models", "a list of ModelOutput objects");
    goto out;
  }
  size_t n = json_array_size(ms);
  if (n > TRACKING_MAX_INPUTS_PER_CALL) {
    reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "'models' takes at most %d values", TRACKING_MAX_INPUTS_PER_CALL);
    goto out;
  }
  struct track_model_output *m = arena_zalloc(req_arena(rq), (n + 1) * sizeof *m);
  if (!m) {
    reply_errf(rp, ERR_NO_MEMORY, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *x = json_array_get(ms, i);
    bool given;
    if (!json_is_object(x)) {
      bad(rp, "models", "a list of ModelOutput objects");
      goto out;
    }
    if (j_str(rp, x, "model_id", true, &m[i].model_id) || j_i64(rp, x, "step", &m[i].step, &given)) goto out;
    if (!given) {
      missing(rp, "step");
      goto out;
    }
  }
  struct err e;
  if (track_log_outputs(DB(rq), proj, id, m, (int)n, &e)) reply_err(rp, &e);
  else reply_empty(rp);
out:
  json_decref(b);
  return 0;
}

/* ---- logged models (MLflow 3) --------------------------------------------------------------- */

static int reply_model(struct reply *rp, json_t *m, struct err *e) {
  if (!m) return reply_err(rp, e);
  return reply_json(rp, 200, json_pack("{s:o}", "model", m));
}

static int h_lm_create(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  json_t *b = proj ? body_of(rq, rp) : NULL;
  if (!b) return 0;
  struct track_logged_model_new in = {0};
  struct track_kv *params, *tags;
  struct err e;
  if (!j_str(rp, b, "experiment_id", true, &in.experiment_id) && !j_str(rp, b, "name", false, &in.name) &&
      !j_str(rp, b, "model_type", false, &in.model_type) && !j_str(rp, b, "source_run_id", false, &in.source_run_id) &&
      !j_kvs(rq, rp, b, "params", &params, &in.nparams) && !j_kvs(rq, rp, b, "tags", &tags, &in.ntags)) {
    in.params = params;
    in.tags = tags;
    reply_model(rp, track_logged_model_create(DB(rq), proj, &in, &e), &e);
  }
  json_decref(b);
  return 0;
}

static int h_lm_get(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  struct err e;
  return reply_model(rp, track_logged_model_get(DB(rq), proj, req_param(rq, "model_id"), &e), &e);
}

static int h_lm_finalize(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  json_t *b = proj ? body_of(rq, rp) : NULL;
  if (!b) return 0;
  json_t *sv = json_object_get(b, "status");
  const char *status = json_is_string(sv) ? json_string_value(sv)
                       : json_is_integer(sv) ? arena_printf(req_arena(rq), "%lld", (long long)json_integer_value(sv))
                                             : NULL;
  struct err e;
  if (!status) missing(rp, "status");
  else reply_model(rp, track_logged_model_finalize(DB(rq), proj, req_param(rq, "model_id"), status, &e), &e);
  json_decref(b);
  return 0;
}

static int h_lm_delete(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  struct err e;
  if (track_logged_model_delete(DB(rq), proj, req_param(rq, "model_id"), &e)) return reply_err(rp, &e);
  return reply_empty(rp);
}

static int h_lm_set_tags(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  json_t *b = proj ? body_of(rq, rp) : NULL;
  if (!b) return 0;
  struct track_kv *tags;
  int n;
  struct err e;
  if (!j_kvs(rq, rp, b, "tags", &tags, &n))
    reply_model(rp, track_logged_model_set_tags(DB(rq), proj, req_param(rq, "model_id"), tags, n, &e), &e);
  json_decref(b);
  return 0;
}

static int h_lm_delete_tag(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  struct err e;
  if (track_logged_model_delete_tag(DB(rq), proj, req_param(rq, "model_id"), req_param(rq, "tag_key"), &e))
    return reply_err(rp, &e);
  return reply_empty(rp);
}

static int h_lm_params(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  json_t *b = proj ? body_of(rq, rp) : NULL;
  if (!b) return 0;
  struct track_kv *params;
  int n;
  struct err e;
  if (!j_kvs(rq, rp, b, "params", &params, &n)) {
    if (track_logged_model_log_params(DB(rq), proj, req_param(rq, "model_id"), params, n, &e)) reply_err(rp, &e);
    else reply_empty(rp);
  }
  json_decref(b);
  return 0;
}

/* order_by: [{field_name, ascending, dataset_name, dataset_digest}] */
static int lm_order_of(struct req *rq, struct reply *rp, json_t *v, struct track_lm_order **out, int *n) {
  *out = NULL;
  *n = 0;
  if (!v || json_is_null(v)) return 0;
  if (!json_is_array(v)) return bad(rp, "order_by", "a list of OrderBy objects"), -1;
  if (json_array_size(v) > TRACKING_LOGGED_MODEL_MAX_ORDER_BY)
    return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "'order_by' takes at most %d values",
                      TRACKING_LOGGED_MODEL_MAX_ORDER_BY),
           -1;
  *out = arena_zalloc(req_arena(rq), (json_array_size(v) + 1) * sizeof **out);
  if (!*out) return reply_errf(rp, ERR_NO_MEMORY, "out of memory"), -1;
  size_t i;
  json_t *x;
  json_array_foreach(v, i, x) {
    struct track_lm_order *o = &(*out)[i];
    if (!json_is_object(x)) return bad(rp, "order_by", "a list of OrderBy objects"), -1;
    if (j_str(rp, x, "field_name", true, &o->field_name) || j_str(rp, x, "dataset_name", false, &o->dataset_name) ||
        j_str(rp, x, "dataset_digest", false, &o->dataset_digest))
      return -1;
    json_t *asc = json_object_get(x, "ascending");
    if (asc && !json_is_null(asc) && !json_is_boolean(asc)) return bad(rp, "ascending", "a boolean"), -1;
    o->ascending = !asc || json_is_null(asc) || json_is_true(asc);
  }
  *n = (int)json_array_size(v);
  return 0;
}

static int h_lm_search(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  json_t *b = proj ? body_of(rq, rp) : NULL;
  if (!b) return 0;
  const char *ids[TRACKING_LOGGED_MODEL_MAX_EXPERIMENTS + 1];
  struct track_lm_search q = {.experiment_ids = ids};
  struct track_lm_order *order;
  bool given;
  json_t *ev = json_object_get(b, "experiment_ids"), *ds = json_object_get(b, "datasets");
  if (ev && !json_is_null(ev) && !json_is_array(ev)) {
    bad(rp, "experiment_ids", "a list of strings");
    goto out;
  }
  if (json_array_size(ev) > TRACKING_LOGGED_MODEL_MAX_EXPERIMENTS) {
    reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "'experiment_ids' takes at most %d values",
               TRACKING_LOGGED_MODEL_MAX_EXPERIMENTS);
    goto out;
  }
  for (size_t i = 0; i < json_array_size(ev); i++) {
    json_t *x = json_array_get(ev, i);
    if (!json_is_string(x)) {
      bad(rp, "experiment_ids", "a list of strings");
      goto out;
    }
    ids[q.nexperiment_ids++] = json_string_value(x);
  }
  if (ds && !json_is_null(ds) && !json_is_array(ds)) {
    bad(rp, "datasets", "a list of Dataset objects");
    goto out;
  }
  q.ndatasets = (int)(json_array_size(ds) > 1000 ? 1000 : json_array_size(ds));
  if (j_str(rp, b, "filter", false, &q.filter) || j_str(rp, b, "page_token", false, &q.page_token) ||
      j_i64(rp, b, "max_results", &q.max_results, &given) ||
      lm_order_of(rq, rp, json_object_get(b, "order_by"), &order, &q.norder_by))
    goto out;
  q.order_by = order;
  if (given && q.max_results < 1) {
    bad(rp, "max_results", "a positive integer");
    goto out;
  }
  struct err e;
  char next[TRACKING_PAGE_TOKEN_MAX];
  json_t *arr = track_logged_model_search(DB(rq), proj, &q, next, &e);
  if (!arr) {
    reply_err(rp, &e);
    goto out;
  }
  json_t *o = json_object();
  if (json_array_size(arr)) json_object_set_new(o, "models", arr);
  else json_decref(arr);
  if (next[0]) json_object_set_new(o, "next_page_token", json_string(next));
  reply_json(rp, 200, o);
out:
  json_decref(b);
  return 0;
}

/* GET logged-models/{model_id}/artifacts/directories?artifact_directory_path=&page_token= */
static int h_lm_artifacts(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  const char *dir = req_query(rq, "artifact_directory_path");
  size_t n = dir ? strlen(dir) : 0;
  if (n > 1 && dir[n - 1] == '/') dir = arena_strndup(req_arena(rq), dir, n - 1);
  struct err e;
  char next[TRACKING_PAGE_TOKEN_MAX], *root = NULL;
  json_t *files = track_logged_model_artifact_list(DB(rq), proj, req_param(rq, "model_id"), dir ? dir : "",
                                                   req_query(rq, "page_token"), next, &root, &e);
  if (!files) return reply_err(rp, &e);
  json_t *o = json_object();
  if (root && *root) json_object_set_new(o, "root_uri", json_string(root));
  free(root);
  if (json_array_size(files)) json_object_set_new(o, "files", files);
  else json_decref(files);
  if (next[0]) json_object_set_new(o, "next_page_token", json_string(next));
  return reply_json(rp, 200, o);
}

/* MLflow 3 clients ask what the server can do before some calls; Kiln has
 * no workspaces (projects play that part) and uploads through the proxy. */
static int h_server_info(struct req *rq, struct reply *rp) {
  (void)rq;
  return reply_json(rp, 200, json_pack("{s:s, s:b}", "store_type", "SqlStore", "workspaces_enabled", 0));
}

/* ---- Kiln: sampled series ----------------------------------------------------------------------- *
 * GET /api/v1/runs/{run_id}/metrics/{key}/sampled?points=N&x=step|time&start=&end=
 * The key may hold '/', so the route takes the rest of the path and the
 * last "/sampled" is cut off. */
static int h_sampled(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  const char *rest = req_param(rq, "rest");
  size_t n = rest ? strlen(rest) : 0, suffix = strlen("/sampled");
  if (n <= suffix || strcmp(rest + n - suffix, "/sampled") != 0)
    return reply_errf(rp, ERR_ENDPOINT_NOT_FOUND, "no such endpoint: use /api/v1/runs/{run_id}/metrics/{key}/sampled");
  char *key = arena_printf(req_arena(rq), "%.*s", (int)(n - suffix), rest);
  struct track_sample o = {.points = TRACKING_DEFAULT_SAMPLED_POINTS};
  bool given;
  const char *x = req_query(rq, "x");
  if (q_i64(rq, rp, "points", &o.points, &given)) return 0;
  if (!given && q_i64(rq, rp, "max_points", &o.points, &given)) return 0;
  if (q_i64(rq, rp, "start", &o.start, &o.has_start) || q_i64(rq, rp, "end", &o.end, &o.has_end)) return 0;
  if (x && *x && !str_eq(x, "step") && !str_eq(x, "time"))
    return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "x must be 'step' or 'time', got '%.40s'", x);
  o.by_time = x && str_eq(x, "time");
  struct err e;
  int64_t total;
  json_t *arr = track_metric_sampled(DB(rq), proj, req_param(rq, "run_id"), key, &o, &total, &e);
  if (!arr) return reply_err(rp, &e);
  json_t *out = json_pack("{s:s, s:s, s:I, s:I, s:b}", "key", key, "x", o.by_time ? "time" : "step", "total_points",
                          (json_int_t)total, "points", (json_int_t)json_array_size(arr), "sampled",
                          (int64_t)json_array_size(arr) < total);
  json_object_set_new(out, "metrics", arr);
  return reply_json(rp, 200, out);
}

/* ---- Kiln: live events (Server-Sent Events) -------------------------------------------------- */

struct sse {
  struct track_sub *sub;
  struct http_live *live;
  struct buf pending;
  size_t off;
  bool end;
};

static void sse_wake(void *ctx) {
  struct sse *s = ctx;
  http_live_wake(s->live);
}

static ssize_t sse_pull(void *ctx, char *buf, size_t max) {
  struct sse *s = ctx;
  if (s->off == s->pending.len) {
    if (s->end) return HTTP_LIVE_END;
    s->pending.len = 0;
    s->off = 0;
    track_sub_take(s->sub, &s->pending, &s->end);
    if (!s->pending.len) return s->end ? HTTP_LIVE_END : 0;
  }
  size_t n = s->pending.len - s->off < max ? s->pending.len - s->off : max;
  memcpy(buf, s->pending.data + s->off, n);
  s->off += n;
  return (ssize_t)n;
}

static void sse_done(void *ctx) {
  struct sse *s = ctx;
  track_sub_free(s->sub);
  buf_fini(&s->pending);
  free(s);
}

static const char *run_status(struct req *rq, const char *proj, const char *run_id, struct err *e) {
  json_t *run = track_run_get(DB(rq), proj, run_id, e);
  if (!run) return NULL;
  const char *st = json_string_value(json_object_get(json_object_get(run, "info"), "status"));
  const char *out = arena_strdup(req_arena(rq), st ? st : "RUNNING");
  json_decref(run);
  return out;
}

static int h_events(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  const char *run_id = req_param(rq, "run_id");
  struct err e;
  if (!run_status(rq, proj, run_id, &e)) return reply_err(rp, &e);
  struct sse *s = calloc(1, sizeof *s);
  if (!s) return reply_errf(rp, ERR_NO_MEMORY, "out of memory");
  buf_init(&s->pending);
  reply_live(rp, 200, "text/event-stream", sse_pull, sse_done, s, &s->live);
  if (!s->live) return 0; /* answered (503); sse_done ran */
  reply_header(rp, "Cache-Control", "no-store");
  reply_header(rp, "X-Accel-Buffering", "no");
  s->sub = track_sub_new(run_id, TRACKING_EVENTS_BUFFER_BYTES, sse_wake, s);
  if (!s->sub) return reply_errf(rp, ERR_NO_MEMORY, "out of memory"); /* drops the live reply */
  /* read after subscribing: a status change in between is not lost */
  const char *st = run_status(rq, proj, run_id, &e);
  if (!st) return reply_err(rp, &e);
  buf_puts(&s->pending, "retry: 2000\n\n");
  track_sub_status(s->sub, st);
  return 0;
}

/* ---- schemas ----------------------------------------------------------------------------------- */
#define S_STR "{\"type\":\"string\"}"
#define S_INT "{\"type\":\"integer\"}"
#define S_EMPTY "{\"type\":\"object\",\"maxProperties\":0}"
#define P_I64 "{\"type\":[\"integer\",\"string\"]}"
#define S_KV "{\"type\":\"object\",\"properties\":{\"key\":" S_STR ",\"value\":" S_STR "}}"
#define S_KVS "{\"type\":\"array\",\"minItems\":1,\"items\":" S_KV "}"
#define P_KVS "{\"type\":\"array\",\"items\":" S_KV "}"
#define S_VALUE "{\"anyOf\":[{\"type\":\"number\"},{\"enum\":[\"NaN\",\"Infinity\",\"-Infinity\"]}]}"
#define S_POINT                                                                                            \
  "{\"type\":\"object\",\"required\":[\"key\",\"value\",\"timestamp\",\"step\"],\"properties\":{\"key\":" S_STR \
  ",\"value\":" S_VALUE ",\"timestamp\":" S_INT ",\"step\":" S_INT ",\"run_id\":" S_STR "},"                 \
  "\"additionalProperties\":false}"
#define S_FILEINFO                                                                                 \
  "{\"type\":\"object\",\"required\":[\"path\",\"is_dir\"],\"properties\":{\"path\":{\"type\":"     \
  "\"string\",\"minLength\":1},\"is_dir\":{\"type\":\"boolean\"},\"file_size\":{\"type\":"          \
  "\"integer\",\"minimum\":0}},\"additionalProperties\":false}"
#define S_REQ(req, props) "{\"type\":\"object\",\"required\":[" req "],\"properties\":{" props "}}"
#define S_DATASET                                                                                             \
  "{\"type\":\"object\",\"required\":[\"name\",\"digest\",\"source_type\",\"source\"],\"properties\":{"          \
  "\"name\":" S_STR ",\"digest\":" S_STR ",\"source_type\":" S_STR ",\"source\":" S_STR ",\"schema\":" S_STR \
  ",\"profile\":" S_STR "}}"
#define S_MODEL                                                                                                  \
  "{\"type\":\"object\",\"required\":[\"info\",\"data\"],\"properties\":{\"info\":{\"type\":\"object\","         \
  "\"required\":[\"model_id\",\"experiment_id\",\"name\",\"status\",\"creation_timestamp_ms\"],\"properties\":{" \
  "\"model_id\":{\"type\":\"string\",\"pattern\":\"^m-[0-9a-f]{32}$\"},\"experiment_id\":{\"type\":\"string\","  \
  "\"pattern\":\"^[0-9]+$\"},\"name\":" S_STR ",\"creation_timestamp_ms\":" S_INT                               \
  ",\"last_updated_timestamp_ms\":" S_INT ",\"artifact_uri\":" S_STR ",\"status\":{\"enum\":["                   \
  "\"LOGGED_MODEL_PENDING\",\"LOGGED_MODEL_READY\",\"LOGGED_MODEL_UPLOAD_FAILED\"]},\"model_type\":" S_STR       \
  ",\"source_run_id\":" S_STR ",\"status_message\":" S_STR ",\"tags\":" S_KVS "},\"additionalProperties\":false}," \
  "\"data\":{\"type\":\"object\",\"properties\":{\"params\":" S_KVS "},\"additionalProperties\":false}},"         \
  "\"additionalProperties\":false}"
#define S_MODEL_REPLY "{\"type\":\"object\",\"required\":[\"model\"],\"properties\":{\"model\":" S_MODEL "},\"additionalProperties\":false}"

#define TAG "mlflow tracking"
#define SEL ROUTE_PROJECT_SELECTED
#define MLFLOW(method, path, perm, summary, req, resp, fn)                                                      \
  {method, "/api/2.0/mlflow/" path, perm, summary, TAG, req, resp, NULL, fn, SEL, track_api_locate},             \
  {method, "/ajax-api/2.0/mlflow/" path, perm, summary " (alias)", TAG, req, resp, NULL, fn, SEL, track_api_locate}

const struct route track_more_routes[] = {
    MLFLOW("GET", "metrics/get-history-bulk-interval", PERM_READ,
           "Sampled histories of one metric for up to 100 runs (query: run_ids, metric_key, start_step, end_step, "
           "max_results <= 2500 per run); each run keeps the first, last, lowest and highest point of every step bucket",
           NULL,
           "{\"type\":\"object\",\"properties\":{\"metrics\":{\"type\":\"array\",\"minItems\":1,\"items\":" S_POINT
           "}},\"additionalProperties\":false}",
           h_bulk_interval),
    MLFLOW("POST", "runs/log-inputs", PERM_WRITE,
           "Log dataset inputs (deduplicated per experiment by name and digest) and model inputs to a run",
           S_REQ("\"run_id\"", "\"run_id\":" S_STR ",\"datasets\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
                               "\"required\":[\"dataset\"],\"properties\":{\"tags\":" P_KVS ",\"dataset\":" S_DATASET
                               "}}},\"models\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":["
                               "\"model_id\"],\"properties\":{\"model_id\":" S_STR "}}}"),
           S_EMPTY, h_log_inputs),
    MLFLOW("POST", "runs/log-model", PERM_WRITE, "Append a model's MLmodel JSON to the run's mlflow.log-model.history tag",
           S_REQ("\"model_json\"", "\"run_id\":" S_STR ",\"run_uuid\":" S_STR ",\"model_json\":" S_STR), S_EMPTY,
           h_log_model),
    MLFLOW("POST", "runs/outputs", PERM_WRITE,
           "Log a run's outputs (MLflow 3 logOutputs): the logged models it produced, each at a step; shown as "
           "outputs.model_outputs of the Run",
           S_REQ("\"run_id\"", "\"run_id\":" S_STR ",\"models\":{\"type\":\"array\",\"items\":{\"type\":"
                               "\"object\",\"required\":[\"model_id\",\"step\"],\"properties\":{\"model_id\":" S_STR
                               ",\"step\":" P_I64 "}}}"),
           S_EMPTY, h_log_outputs),
    MLFLOW("POST", "logged-models", PERM_WRITE, "Create a logged model (MLflow 3, status LOGGED_MODEL_PENDING)",
           S_REQ("\"experiment_id\"", "\"experiment_id\":" S_STR ",\"name\":" S_STR ",\"model_type\":" S_STR
                                      ",\"source_run_id\":" S_STR ",\"params\":" P_KVS ",\"tags\":" P_KVS),
           S_MODEL_REPLY, h_lm_create),
    MLFLOW("GET", "logged-models/{model_id}", PERM_READ, "A logged model", NULL, S_MODEL_REPLY, h_lm_get),
    MLFLOW("PATCH", "logged-models/{model_id}", PERM_WRITE,
           "Finalize a logged model (status LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED)",
           S_REQ("\"status\"", "\"status\":{\"type\":[\"string\",\"integer\"]}"), S_MODEL_REPLY, h_lm_finalize),
    MLFLOW("DELETE", "logged-models/{model_id}", PERM_WRITE, "Delete a logged model", NULL, S_EMPTY, h_lm_delete),
    MLFLOW("POST", "logged-models/search", PERM_READ,
           "Search logged models of experiments (filter: name, model_type, source_run_id, status = '...' joined by AND; "
           "order_by: name, model_id, model_type, status, source_run_id, creation_timestamp, last_updated_timestamp, "
           "default creation time DESC; metrics.<key> and datasets are refused: Kiln stores no logged-model metrics; "
           "max_results default 50, at most 1000)",
           S_REQ("", "\"experiment_ids\":{\"type\":\"array\",\"items\":" S_STR "},\"filter\":" S_STR
                     ",\"max_results\":" P_I64 ",\"page_token\":" S_STR ",\"order_by\":{\"type\":\"array\","
                     "\"items\":{\"type\":\"object\",\"properties\":{\"field_name\":" S_STR ",\"ascending\":"
                     "{\"type\":\"boolean\"},\"dataset_name\":" S_STR ",\"dataset_digest\":" S_STR "}}},"
                     "\"datasets\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}}"),
           "{\"type\":\"object\",\"properties\":{\"models\":{\"type\":\"array\",\"minItems\":1,\"items\":" S_MODEL
           "},\"next_page_token\":{\"type\":\"string\",\"minLength\":1}},\"additionalProperties\":false}",
           h_lm_search),
    MLFLOW("PATCH", "logged-models/{model_id}/tags", PERM_WRITE, "Set tags on a logged model",
           S_REQ("\"tags\"", "\"tags\":" P_KVS), S_MODEL_REPLY, h_lm_set_tags),
    MLFLOW("DELETE", "logged-models/{model_id}/tags/{tag_key*}", PERM_WRITE, "Delete a tag of a logged model", NULL,
           S_EMPTY, h_lm_delete_tag),
    MLFLOW("GET", "logged-models/{model_id}/artifacts/directories", PERM_READ,
           "List a logged model's artifacts directly under a directory (query: artifact_directory_path, page_token; "
           "1000 a page)",
           NULL,
           "{\"type\":\"object\",\"properties\":{\"root_uri\":" S_STR ",\"files\":{\"type\":\"array\","
           "\"minItems\":1,\"items\":" S_FILEINFO "},\"next_page_token\":{\"type\":\"string\",\"minLength\":1}},"
           "\"additionalProperties\":false}",
           h_lm_artifacts),
    MLFLOW("POST", "logged-models/{model_id}/params", PERM_WRITE, "Log params of a logged model",
           S_REQ("\"params\"", "\"params\":" P_KVS), S_EMPTY, h_lm_params),
    {"GET", "/api/3.0/mlflow/server-info", PERM_PUBLIC, "What this MLflow-compatible server supports (MLflow 3)", TAG,
     NULL,
     "{\"type\":\"object\",\"required\":[\"store_type\"],\"properties\":{\"store_type\":" S_STR
     ",\"workspaces_enabled\":{\"type\":\"boolean\"}},\"additionalProperties\":false}",
     NULL, h_server_info, 0, NULL},
    {"GET", "/ajax-api/3.0/mlflow/server-info", PERM_PUBLIC, "What this server supports (alias)", TAG, NULL,
     "{\"type\":\"object\",\"required\":[\"store_type\"],\"properties\":{\"store_type\":" S_STR
     ",\"workspaces_enabled\":{\"type\":\"boolean\"}},\"additionalProperties\":false}",
     NULL, h_server_info, 0, NULL},
    {"GET", "/api/v1/runs/{run_id}/metrics/{rest*}", PERM_READ,
     "A metric series sampled for charts: GET .../metrics/{key}/sampled?points=N (default 1000, at most 100,000)"
     "&x=step|time&start=&end= keeps every bucket's first, last, lowest and highest point",
     "tracking", NULL,
     "{\"type\":\"object\",\"required\":[\"key\",\"x\",\"total_points\",\"points\",\"sampled\",\"metrics\"],"
     "\"properties\":{\"key\":" S_STR ",\"x\":{\"enum\":[\"step\",\"time\"]},\"total_points\":" S_INT
     ",\"points\":" S_INT ",\"sampled\":{\"type\":\"boolean\"},\"metrics\":{\"type\":\"array\",\"items\":" S_POINT
     "}},\"additionalProperties\":false}",
     NULL, h_sampled, SEL, track_api_locate},
    {"GET", "/api/v1/runs/{run_id}/events", PERM_READ,
     "Live updates of a run as Server-Sent Events: `status` and batched `metrics` events (at most every 250 ms), "
     "`: ping` heartbeats; ends when the run finishes",
     "tracking", NULL, NULL, "text/event-stream", h_events, SEL, track_api_locate},
};
const size_t track_more_routes_count = sizeof track_more_routes / sizeof track_more_routes[0];
