/* serve/tensor: element types, tensors and signatures — the vocabulary the
 * backends, the batcher and the protocols share. */
#include "serve.h"

#include <stdlib.h>
#include <string.h>

static const struct {
  const char *name;
  size_t size;
} dtypes[] = {
#define SERVE_DTYPE_ROW(n, s, sz) {s, sz},
    SERVE_DTYPE_MAP(SERVE_DTYPE_ROW)
#undef SERVE_DTYPE_ROW
};

const char *serve_dtype_name(enum serve_dtype t) {
  return (unsigned)t < SERVE_DTYPE__COUNT ? dtypes[t].name : "UNKNOWN";
}

int serve_dtype_parse(const char *s, enum serve_dtype *out) {
  if (!s) return -1;
  for (int i = 0; i < SERVE_DTYPE__COUNT; i++)
    if (strcmp(s, dtypes[i].name) == 0) {
      *out = (enum serve_dtype)i;
      return 0;
    }
  return -1;
}

size_t serve_dtype_size(enum serve_dtype t) { return (unsigned)t < SERVE_DTYPE__COUNT ? dtypes[t].size : 0; }

int64_t serve_shape_count(const int64_t *shape, int ndim) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) return -1;
    if (shape[i] != 0 && n > INT64_MAX / shape[i]) return -1;
    n *= shape[i];
  }
  return n;
}

void serve_tensor_fini(struct serve_tensor *t) {
  if (!t) return;
  if (t->owned) free(t->data);
  if (t->json) json_decref(t->json);
  memset(t, 0, sizeof *t);
}

int serve_tensor_alloc(struct serve_tensor *t, const char *name, enum serve_dtype dt, const int64_t *shape,
                       int ndim, struct err *e) {
  memset(t, 0, sizeof *t);
  if (ndim < 0 || ndim > SERVE_MAX_DIMS) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "too many dimensions");
  size_t es = serve_dtype_size(dt);
  int64_t n = serve_shape_count(shape, ndim);
  if (!es || n < 0 || (uint64_t)n > SIZE_MAX / es)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "bad tensor shape or type");
  str_copy(t->name, sizeof t->name, name ? name : "");
  t->dtype = dt;
  t->ndim = ndim;
  memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
  t->nbytes = (size_t)n * es;
  t->data = calloc(1, t->nbytes ? t->nbytes : 1);
  if (!t->data) return err_set(e, ERR_NO_MEMORY, "out of memory for a %zu-byte tensor", t->nbytes);
  t->owned = true;
  return 0;
}

void serve_signature_fini(struct serve_signature *s) {
  if (!s) return;
  free(s->inputs);
  free(s->outputs);
  for (int i = 0; i < s->ncolumns; i++) free(s->columns[i]);
  free(s->columns);
  if (s->classes) json_decref(s->classes);
  memset(s, 0, sizeof *s);
}

static json_t *specs_json(const struct serve_tensor_spec *sp, int n) {
  json_t *a = json_array();
  for (int i = 0; a && i < n; i++) {
    json_t *shape = json_array();
    for (int d = 0; shape && d < sp[i].ndim; d++) json_array_append_new(shape, json_integer(sp[i].shape[d]));
    json_array_append_new(a, json_pack("{s:s, s:s, s:o?}", "name", sp[i].name, "datatype",
                                       serve_dtype_name(sp[i].dtype), "shape", sp[i].ndim >= 0 ? shape : json_null()));
    if (sp[i].ndim < 0) json_decref(shape);
  }
  return a;
}

json_t *serve_signature_json(const struct serve_signature *s) {
  json_t *o = json_object();
  if (!o) return NULL;
  json_object_set_new(o, "inputs", specs_json(s->inputs, s->ninputs));
  json_object_set_new(o, "outputs", specs_json(s->outputs, s->noutputs));
  if (s->columns) {
    json_t *c = json_array();
    for (int i = 0; i < s->ncolumns; i++) json_array_append_new(c, json_string(s->columns[i]));
    json_object_set_new(o, "columns", c);
  }
  if (s->classes) json_object_set(o, "classes", s->classes);
  return o;
}

void serve_config_default(struct serve_config *c) {
  memset(c, 0, sizeof *c);
  c->onnx_library = "deps/libonnxruntime.so.1";
  c->onnx_threads = 1;
  c->python = "/usr/bin/python3";
  c->python_workers = 1;
  c->worker_memory = 0;
  c->worker_cpu_s = 0;
  c->worker_timeout_ms = 30000;
  c->device = "cpu";
  c->memory_budget = 2ull << 30;
  c->max_batch_size = 32;
  c->max_queue_delay_us = 0;
  c->queue_capacity = 1024;
  c->default_timeout_us = 30 * 1000000ll;
  c->tmp_dir = "/tmp";
}

const struct serve_backend *serve_backend_for(const char *format) {
  if (!format) return NULL;
  if (strcmp(format, "onnx") == 0) return &serve_backend_onnx;
  if (str_has_prefix(format, "xgboost")) return &serve_backend_xgboost;
  if (strcmp(format, "pickle") == 0 || strcmp(format, "joblib") == 0 || strcmp(format, "torchscript") == 0)
    return &serve_backend_python;
  return NULL;
}
