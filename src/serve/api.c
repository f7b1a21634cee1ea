/* serve/api: the prediction routes — KServe V2 (/v2/...), the simple JSON
 * predict endpoint, explicit load/unload and the loaded-models view. A
 * prediction is parsed and validated on the I/O thread, then its request is
 * parked (reply_defer) until the batcher has run it; the answer is encoded
 * back on the I/O thread. */
#include "http/http.h"
#include "serve/serve.h"
#include "track/api_internal.h"

#include <stdlib.h>
#include <string.h>

#define SERVE_DEFAULT_MAX_ROWS 100000
#define SERVE_LOAD_WAIT_MS 120000

static struct serve *SV(struct req *rq) { return req_app(rq)->serve; }

static int no_serving(struct reply *rp) {
  return reply_errf(rp, ERR_NOT_READY, "serving is not enabled on this server");
}

enum pkind { P_MLFLOW, P_V2, P_V2_META, P_V2_READY };

struct pctx {
  struct req *rq;
  struct serve_model *m;
  enum pkind kind;
  const char *name; /* as the caller named the model */
  struct http_deferred *d;
  struct serve_waiter w;
  struct serve_job job;
  struct serve_request sr;
  bool submitted;
  int rc; /* a refusal at submit time */
  struct err err;
};

/* ---- answers ------------------------------------------------------------------ */

static void release(struct pctx *c, enum err_code code) {
  if (!c->m) return;
  serve_observe_request(c->m, code, (double)(time_mono_us() - req_start_us(c->rq)) / 1e6);
  serve_job_fini(&c->job);
  serve_model_unref(c->m);
  c->m = NULL;
}

static int fail(struct pctx *c, struct reply *rp, const struct err *e) {
  reply_err(rp, e);
  if (e->code == ERR_UNAVAILABLE) reply_retry_after(rp, 1);
  if (c->m) reply_header(rp, "X-Kiln-Model-Version", serve_model_version(c->m));
  release(c, e->code);
  return 0;
}

static void timing(struct pctx *c, struct reply *rp) {
  char st[160];
  snprintf(st, sizeof st, "queue;dur=%.3f, compute;dur=%.3f, total;dur=%.3f", (double)c->job.queue_us / 1000.0,
           (double)c->job.compute_us / 1000.0, (double)(time_mono_us() - req_start_us(c->rq)) / 1000.0);
  reply_header(rp, "Server-Timing", st);
  char bs[24];
  snprintf(bs, sizeof bs, "%d", c->job.batch_rows);
  reply_header(rp, "X-Kiln-Batch-Rows", bs);
}

static void finish_predict(struct req *rq, struct reply *rp, void *ctx) {
  struct pctx *c = ctx;
  (void)rq;
  if (!c->m) return; /* released already (the client left) */
  if (c->rc) {
    fail(c, rp, &c->err);
    return;
  }
  if (c->job.status) {
    fail(c, rp, &c->job.err);
    return;
  }
  struct err e = {0};
  if (c->kind == P_MLFLOW) {
    json_t *o = serve_mlflow_encode_response(c->job.outputs, c->job.noutputs);
    if (!o) {
      err_set(&e, ERR_NO_MEMORY, "out of memory encoding the predictions");
      fail(c, rp, &e);
      return;
    }
    reply_json(rp, 200, o);
  } else {
    struct buf b;
    buf_init(&b);
    size_t hl = 0;
    if (serve_v2_encode_response(&b, c->name, serve_model_version(c->m), &c->sr, c->job.outputs, c->job.noutputs,
                                 &hl, &e)) {
      buf_fini(&b);
      fail(c, rp, &e);
      return;
    }
    size_t len = b.len;
    reply_take(rp, 200, hl ? "application/octet-stream" : "application/json", buf_steal(&b), len);
    if (hl) {
      char h[24];
      snprintf(h, sizeof h, "%zu", hl);
      reply_header(rp, "Inference-Header-Content-Length", h);
    }
  }
  reply_header(rp, "X-Kiln-Model-Version", serve_model_version(c->m));
  timing(c, rp);
  release(c, ERR_OK);
}

/* the batcher's thread: hand the request back to its I/O thread */
static void job_done(struct serve_job *j, void *ctx) {
  (void)j;
  struct pctx *c = ctx;
  http_deferred_resume(c->d);
}

/* ---- the start of a prediction ------------------------------------------------- */

static int start(struct pctx *c, struct reply *rp);

static void after_load(struct req *rq, struct reply *rp, void *ctx) {
  (void)rq;
  struct pctx *c = ctx;
  if (c->m) start(c, rp);
}

static void loaded_cb(void *ctx) {
  struct pctx *c = ctx;
  http_deferred_resume(c->d);
}

/* The model is loading: park until it is ready (or failed). */
static int wait_for_load(struct pctx *c, struct reply *rp) {
  struct err e;
  c->d = reply_defer(c->rq, after_load, c);
  if (!c->d) {
    err_set(&e, ERR_INTERNAL, "this request cannot wait for the model to load");
    return fail(c, rp, &e);
  }
  c->w = (struct serve_waiter){loaded_cb, c, NULL};
  if (!serve_model_when_ready(c->m, &c->w)) http_deferred_resume(c->d); /* it just finished */
  return 0;
}

static int64_t max_rows(struct req *rq) {
  const struct cfg *cfg = req_app(rq)->cfg;
  int64_t n = cfg && cfg_str(cfg, "serve-max-rows") ? cfg_int(cfg, "serve-max-rows") : 0;
  return n > 0 ? n : SERVE_DEFAULT_MAX_ROWS;
}

static json_t *meta_json(struct pctx *c, const struct serve_signature *sig) {
  json_t *o = serve_signature_json(sig);
  if (!o) return NULL;
  json_object_set_new(o, "name", json_string(c->name));
  json_object_set_new(o, "versions", json_pack("[s]", serve_model_version(c->m)));
  json_object_set_new(o, "platform", json_string(serve_model_platform(c->m)));
  json_object_set_new(o, "format", json_string(serve_model_format(c->m)));
  return o;
}

static int start(struct pctx *c, struct reply *rp) {
  struct err e = {0};
  struct req *rq = c->rq;
  enum serve_model_state st = serve_model_state(c->m);
  if (st == SERVE_LOADING) {
    if (c->kind == P_V2_READY) { /* readiness is answered now, not waited for */
      reply_errf(rp, ERR_NOT_READY, "model %s version %s is loading", c->name, serve_model_version(c->m));
      reply_header(rp, "X-Kiln-Model-Version", serve_model_version(c->m));
      release(c, ERR_NOT_READY);
      return 0;
    }
    return wait_for_load(c, rp);
  }
  if (serve_model_wait_ready(c->m, 0, &e)) return fail(c, rp, &e);
  const struct serve_signature *sig = serve_model_signature(c->m);
  if (!sig) {
    err_set(&e, ERR_INTERNAL, "the model has no signature");
    return fail(c, rp, &e);
  }
  if (c->kind == P_V2_META || c->kind == P_V2_READY) {
    json_t *o = c->kind == P_V2_META ? meta_json(c, sig) : json_pack("{s:s, s:b}", "name", c->name, "ready", 1);
    if (!o) {
      err_set(&e, ERR_NO_MEMORY, "out of memory");
      return fail(c, rp, &e);
    }
    reply_json(rp, 200, o);
    reply_header(rp, "X-Kiln-Model-Version", serve_model_version(c->m));
    serve_model_unref(c->m); /* not a prediction: not counted */
    c->m = NULL;
    return 0;
  }
  struct arena *a = req_arena(rq);
  size_t blen;
  const char *body = req_body(rq, &blen);
  int rc;
  memset(&c->sr, 0, sizeof c->sr);
  if (c->kind == P_V2) {
    const char *h = req_header(rq, "Inference-Header-Content-Length");
    uint64_t hl = 0;
    if (h && (str_to_u64(h, &hl) || hl > blen)) {
      err_set(&e, ERR_INVALID_PARAMETER_VALUE,
              "Inference-Header-Content-Length (%.40s) must be a byte count within the %zu-byte body", h, blen);
      return fail(c, rp, &e);
    }
    rc = serve_v2_parse_request(body ? body : "", blen, (size_t)hl, a, &c->sr, &e);
  } else {
    /* from the bytes: number matrices skip jansson (serve/scan.c) */
    rc = serve_mlflow_parse_body(body ? body : "", blen, sig, a, &c->sr, &e);
    const char *proba = req_query(rq, "proba");
    if (rc == 0 && proba && (str_eq(proba, "true") || str_eq(proba, "1"))) c->sr.popts.proba = true;
  }
  int64_t rows = 0;
  if (rc == 0) rc = serve_validate(sig, &c->sr, a, max_rows(rq), &rows, &e);
  if (rc) return fail(c, rp, &e);
  memset(&c->job, 0, sizeof c->job);
  c->job.inputs = c->sr.inputs;
  c->job.ninputs = c->sr.ninputs;
  c->job.rows = rows;
  c->job.popts = c->sr.popts;
  c->job.priority = (int)(c->sr.priority > 100 ? 100 : c->sr.priority);
  c->job.deadline_us = c->sr.timeout_us > 0 ? req_start_us(rq) + c->sr.timeout_us : 0;
  c->job.done = job_done;
  c->job.ctx = c;
  c->d = reply_defer(rq, finish_predict, c);
  if (!c->d) {
    err_set(&e, ERR_INTERNAL, "this request cannot wait for its batch");
    return fail(c, rp, &e);
  }
  c->rc = serve_submit(c->m, &c->job, &c->err);
  /* refused: the finish function answers it, as it would a failed batch */
  if (c->rc) http_deferred_resume(c->d);
  return 0;
}

static int begin(struct req *rq, struct reply *rp, enum pkind kind) {
  struct serve *s = SV(rq);
  if (!s) return no_serving(rp);
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  struct pctx *c = arena_zalloc(req_arena(rq), sizeof *c);
  if (!c) return reply_errf(rp, ERR_NO_MEMORY, "out of memory");
  c->rq = rq;
  c->kind = kind;
  c->name = req_param(rq, "name");
  const char *version = req_param(rq, "version"); /* NULL on the V2 paths without /versions/ */
  struct err e = {0};
  c->m = serve_model_get(s, proj, c->name, version, true, NULL, &e);
  if (!c->m) return reply_err(rp, &e);
  return start(c, rp);
}

static int h_predict(struct req *rq, struct reply *rp) { return begin(rq, rp, P_MLFLOW); }
static int h_infer(struct req *rq, struct reply *rp) { return begin(rq, rp, P_V2); }
static int h_model_meta(struct req *rq, struct reply *rp) { return begin(rq, rp, P_V2_META); }
static int h_model_ready(struct req *rq, struct reply *rp) { return begin(rq, rp, P_V2_READY); }

/* ---- server-level V2 routes ---------------------------------------------------------------- */

static int h_live(struct req *rq, struct reply *rp) {
  (void)rq;
  return reply_json(rp, 200, json_pack("{s:b}", "live", 1));
}

static int h_ready(struct req *rq, struct reply *rp) {
  struct app *app = req_app(rq);
  struct err e = {0};
  if (!app->serve) return no_serving(rp);
  if (db_ping(app->db, &e)) return reply_errf(rp, ERR_NOT_READY, "the metadata store is not answering: %s", e.msg);
  if (!serve_all_ready(app->serve)) return reply_errf(rp, ERR_NOT_READY, "some loaded models are not ready");
  return reply_json(rp, 200, json_pack("{s:b}", "ready", 1));
}

static int h_server_meta(struct req *rq, struct reply *rp) {
  (void)rq;
  return reply_json(rp, 200,
                    json_pack("{s:s, s:s, s:[s, s]}", "name", "kiln", "version", KILN_VERSION, "extensions",
                              "binary_tensor_data", "schedule_policy"));
}

/* ---- explicit load / unload and the models view ------------------------------------------------ */

static int settings_of(struct req *rq, struct reply *rp, struct serve_model_settings *st, bool *given) {
  memset(st, 0, sizeof *st);
  st->max_queue_delay_us = -1;
  *given = false;
  size_t n;
  req_body(rq, &n);
  if (n == 0) return 0;
  json_t *b = req_json_object(rq, rp);
  if (!b) return -1;
  static const struct {
    const char *key;
    int64_t min, max;
  } f[] = {{"max_batch_size", 1, 4096},
           {"max_queue_delay_us", 0, 10000000},
           {"queue_capacity", 1, 1000000},
           {"instances", 1, 16},
           {"priority_levels", 1, 4}};
  const char *key;
  json_t *v;
  json_object_foreach(b, key, v) {
    size_t i = 0;
    for (; i < sizeof f / sizeof *f; i++)
      if (strcmp(key, f[i].key) == 0) break;
    if (i == sizeof f / sizeof *f)
      return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE,
                        "unknown setting '%.100s'; settings are max_batch_size, max_queue_delay_us, queue_capacity, "
                        "instances, priority_levels",
                        key), -1;
    if (!json_is_integer(v) || json_integer_value(v) < f[i].min || json_integer_value(v) > f[i].max)
      return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "setting '%s' must be an integer in [%lld, %lld]", key,
                        (long long)f[i].min, (long long)f[i].max), -1;
    int64_t x = json_integer_value(v);
    switch (i) {
    case 0: st->max_batch_size = (int)x; break;
    case 1: st->max_queue_delay_us = x; break;
    case 2: st->queue_capacity = (int)x; break;
    case 3: st->instances = (int)x; break;
    default: st->priority_levels = (int)x; break;
    }
    *given = true;
  }
  return 0;
}

/* Runs on the worker pool (ROUTE_OFFLOAD): waits for the load. */
static int h_load(struct req *rq, struct reply *rp) {
  struct serve *s = SV(rq);
  if (!s) return no_serving(rp);
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  struct serve_model_settings st;
  bool given;
  if (settings_of(rq, rp, &st, &given)) return 0;
  struct err e = {0};
  const char *name = req_param(rq, "name"), *version = req_param(rq, "version");
  /* new settings take effect through a fresh load */
  if (given) {
    struct serve_model *old = serve_model_get(s, proj, name, version, false, NULL, &e);
    if (old) {
      serve_model_unref(old);
      serve_model_unload(s, proj, name, version, &e);
    }
  }
  struct serve_model *m = serve_model_get(s, proj, name, version, true, given ? &st : NULL, &e);
  if (!m) return reply_err(rp, &e);
  int rc = serve_model_wait_ready(m, SERVE_LOAD_WAIT_MS, &e);
  if (rc) {
    serve_model_unref(m);
    return reply_err(rp, &e);
  }
  json_t *o = serve_model_json(m);
  serve_model_unref(m);
  return o ? reply_json(rp, 200, o) : reply_errf(rp, ERR_NO_MEMORY, "out of memory");
}

static int h_unload(struct req *rq, struct reply *rp) {
  struct serve *s = SV(rq);
  if (!s) return no_serving(rp);
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  struct err e = {0};
  if (serve_model_unload(s, proj, req_param(rq, "name"), req_param(rq, "version"), &e)) return reply_err(rp, &e);
  return reply_json(rp, 200, json_object());
}

static int h_models(struct req *rq, struct reply *rp) {
  struct serve *s = SV(rq);
  if (!s) return no_serving(rp);
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  json_t *a = serve_models_json(s, proj);
  return a ? reply_json(rp, 200, json_pack("{s:o}", "models", a)) : reply_errf(rp, ERR_NO_MEMORY, "out of memory");
}

/* ---- the table ----------------------------------------------------------------------------------- */

#define S_STR "{\"type\":\"string\"}"
#define S_INT "{\"type\":\"integer\"}"
#define S_TMETA                                                                                           \
  "{\"type\":\"object\",\"required\":[\"name\",\"datatype\",\"shape\"],\"properties\":{\"name\":" S_STR \
  ",\"datatype\":" S_STR ",\"shape\":{\"type\":[\"array\",\"null\"],\"items\":" S_INT "}}}"
#define S_SIG                                                                                              \
  "{\"type\":\"object\",\"required\":[\"inputs\",\"outputs\"],\"properties\":{\"inputs\":{\"type\":\"array\"," \
  "\"items\":" S_TMETA "},\"outputs\":{\"type\":\"array\",\"items\":" S_TMETA "},\"columns\":{\"type\":\"array\","  \
  "\"items\":" S_STR "},\"classes\":{\"type\":\"array\"}}}"
#define S_LOADED                                                                                               \
  "{\"type\":\"object\",\"required\":[\"name\",\"version\",\"format\",\"backend\",\"state\",\"memory_bytes\"," \
  "\"loaded_at\",\"last_used_at\",\"requests\",\"errors\",\"queue_depth\",\"settings\",\"signature\"],"         \
  "\"properties\":{\"name\":" S_STR ",\"version\":" S_STR ",\"format\":" S_STR ",\"backend\":" S_STR            \
  ",\"state\":{\"enum\":[\"LOADING\",\"READY\",\"FAILED\",\"DEGRADED\",\"UNLOADING\"]},\"reason\":" S_STR       \
  ",\"memory_bytes\":" S_INT ",\"loaded_at\":" S_INT ",\"last_used_at\":" S_INT ",\"requests\":" S_INT           \
  ",\"errors\":" S_INT ",\"queue_depth\":" S_INT ",\"running\":" S_INT ",\"load_ms\":" S_INT ",\"settings\":{\"type\":\"object\"},"   \
  "\"signature\":{\"oneOf\":[{\"type\":\"null\"}," S_SIG "]},\"backend_info\":{\"type\":\"object\"}}}"
#define S_PREDICT_REQ                                                                                         \
  "{\"type\":\"object\",\"properties\":{\"dataframe_split\":{\"type\":\"object\"},\"dataframe_records\":"   \
  "{\"type\":\"array\"},\"instances\":{\"type\":\"array\"},\"inputs\":{\"type\":[\"array\",\"object\"]},"    \
  "\"params\":{\"type\":\"object\"}}}"
#define S_PREDICT_RESP "{\"type\":\"object\",\"required\":[\"predictions\"],\"properties\":{\"predictions\":{}}}"
#define S_INFER_REQ                                                                                            \
  "{\"type\":\"object\",\"required\":[\"inputs\"],\"properties\":{\"id\":" S_STR ",\"parameters\":"           \
  "{\"type\":\"object\"},\"inputs\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":"          \
  "[\"name\",\"shape\",\"datatype\"],\"properties\":{\"name\":" S_STR ",\"shape\":{\"type\":\"array\","       \
  "\"items\":" S_INT "},\"datatype\":" S_STR ",\"parameters\":{\"type\":\"object\"},\"data\":{}}}},"           \
  "\"outputs\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":[\"name\"]}}}}"
#define S_INFER_RESP                                                                                           \
  "{\"type\":\"object\",\"required\":[\"model_name\",\"outputs\"],\"properties\":{\"model_name\":" S_STR       \
  ",\"model_version\":" S_STR ",\"id\":" S_STR ",\"parameters\":{\"type\":\"object\"},\"outputs\":"            \
  "{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":[\"name\",\"datatype\",\"shape\"],"        \
  "\"properties\":{\"name\":" S_STR ",\"datatype\":" S_STR ",\"shape\":{\"type\":\"array\",\"items\":" S_INT  \
  "},\"parameters\":{\"type\":\"object\"},\"data\":{\"type\":\"array\"}}}}}}"
#define S_MODEL_META                                                                                           \
  "{\"type\":\"object\",\"required\":[\"name\",\"versions\",\"platform\",\"inputs\",\"outputs\"],"             \
  "\"properties\":{\"name\":" S_STR ",\"versions\":{\"type\":\"array\",\"items\":" S_STR "},\"platform\":"     \
  S_STR ",\"format\":" S_STR ",\"inputs\":{\"type\":\"array\",\"items\":" S_TMETA "},\"outputs\":"             \
  "{\"type\":\"array\",\"items\":" S_TMETA "},\"columns\":{\"type\":\"array\"},\"classes\":{\"type\":\"array\"}}}"
#define S_MODEL_READY                                                                                      \
  "{\"type\":\"object\",\"required\":[\"name\",\"ready\"],\"properties\":{\"name\":" S_STR ",\"ready\":" \
  "{\"type\":\"boolean\"}}}"
#define S_SETTINGS_REQ                                                                                     \
  "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"max_batch_size\":" S_INT          \
  ",\"max_queue_delay_us\":" S_INT ",\"queue_capacity\":" S_INT ",\"instances\":" S_INT                    \
  ",\"priority_levels\":" S_INT "}}"

#define TAG_V2 "inference (KServe V2)"
#define TAG "serving"
#define SEL ROUTE_PROJECT_SELECTED
#define LOC track_api_locate
#define MV "/v2/models/{name}"
#define MVV "/v2/models/{name}/versions/{version}"
#define API "/api/v1/models/{name}/versions/{version}"

const struct route serve_routes[] = {
    {"GET", "/v2/health/live", PERM_PUBLIC, "V2 server liveness", TAG_V2, NULL,
     "{\"type\":\"object\",\"required\":[\"live\"],\"properties\":{\"live\":{\"type\":\"boolean\"}}}", NULL, h_live,
     ROUTE_NO_ACCESS_LOG, NULL, NULL},
    {"GET", "/v2/health/ready", PERM_PUBLIC, "V2 server readiness: the store answers and every loaded model is ready",
     TAG_V2, NULL, "{\"type\":\"object\",\"required\":[\"ready\"],\"properties\":{\"ready\":{\"type\":\"boolean\"}}}",
     NULL, h_ready, ROUTE_NO_ACCESS_LOG, NULL, NULL},
    {"GET", "/v2", PERM_PUBLIC, "V2 server metadata (name, version, extensions)", TAG_V2, NULL,
     "{\"type\":\"object\",\"required\":[\"name\",\"version\",\"extensions\"],\"properties\":{\"name\":" S_STR
     ",\"version\":" S_STR ",\"extensions\":{\"type\":\"array\",\"items\":" S_STR "}}}",
     NULL, h_server_meta, 0, NULL, NULL},
    {"GET", MV, PERM_PREDICT, "V2 model metadata of the latest READY version (loads the model)", TAG_V2, NULL,
     S_MODEL_META, NULL, h_model_meta, SEL, LOC, NULL},
    {"GET", MVV, PERM_PREDICT, "V2 model metadata of one version (number or alias; loads the model)", TAG_V2, NULL,
     S_MODEL_META, NULL, h_model_meta, SEL, LOC, NULL},
    {"GET", MV "/ready", PERM_PREDICT, "V2 model readiness of the latest READY version (starts its load)", TAG_V2,
     NULL, S_MODEL_READY, NULL, h_model_ready, SEL, LOC, NULL},
    {"GET", MVV "/ready", PERM_PREDICT, "V2 model readiness of one version (starts its load)", TAG_V2, NULL,
     S_MODEL_READY, NULL, h_model_ready, SEL, LOC, NULL},
    {"POST", MV "/infer", PERM_PREDICT,
     "V2 inference on the latest READY version (JSON tensors, or the binary tensor extension with "
     "Inference-Header-Content-Length)",
     TAG_V2, S_INFER_REQ, S_INFER_RESP, NULL, h_infer, SEL | ROUTE_BINARY_ALT, LOC, NULL},
    {"POST", MVV "/infer", PERM_PREDICT, "V2 inference on one version (number or alias)", TAG_V2, S_INFER_REQ,
     S_INFER_RESP, NULL, h_infer, SEL | ROUTE_BINARY_ALT, LOC, NULL},
    {"POST", API "/predict", PERM_PREDICT,
     "Predict with MLflow scoring payloads (dataframe_split, dataframe_records, instances, inputs; "
     "params.predict_proba, params.output_margin); {version} is a number, 'latest' or an alias",
     TAG, S_PREDICT_REQ, S_PREDICT_RESP, NULL, h_predict, SEL, LOC, NULL},
    {"POST", API "/load", PERM_WRITE,
     "Load a version now (optional batching settings) and wait until it is ready; new settings reload it", TAG,
     S_SETTINGS_REQ, S_LOADED, NULL, h_load, SEL | ROUTE_OFFLOAD, LOC, NULL},
    {"POST", API "/unload", PERM_WRITE, "Unload a version (queued requests are refused)", TAG, NULL,
     "{\"type\":\"object\"}", NULL, h_unload, SEL | ROUTE_OFFLOAD, LOC, NULL},
    {"GET", "/api/v1/serving/models", PERM_READ, "The project's loaded models: state, memory, queue, requests",
     TAG, NULL,
     "{\"type\":\"object\",\"required\":[\"models\"],\"properties\":{\"models\":{\"type\":\"array\",\"items\":"
     S_LOADED "}}}",
     NULL, h_models, SEL, LOC, NULL},
};
const size_t serve_routes_count = sizeof serve_routes / sizeof serve_routes[0];
