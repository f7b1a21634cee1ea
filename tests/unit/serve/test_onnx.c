/* tests for the onnx serving backend: models built by make_onnx_models.py
 * with python3-onnx, predictions compared with the numpy references written
 * next to them, signatures, dtypes, errors and concurrent instances. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "serve/serve.h"

#define ORT_LIB "deps/libonnxruntime.so.1"

static char dir[64];
static struct serve_config cfg;

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/kiln-onnx-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  char cmd[256];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/unit/serve/make_onnx_models.py %s", dir);
  cr_assert_eq(system(cmd), 0, "make_onnx_models.py failed");
  serve_config_default(&cfg);
  cfg.onnx_library = ORT_LIB;
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
}

TestSuite(serve_onnx, .init = setup, .fini = teardown);

/* ---- helpers ------------------------------------------------------------- */

static const char *model_path(const char *name) {
  static char p[128];
  snprintf(p, sizeof p, "%s/%s.onnx", dir, name);
  return p;
}

static json_t *reference(const char *name) {
  char p[128];
  snprintf(p, sizeof p, "%s/%s.json", dir, name);
  json_error_t je;
  json_t *j = json_load_file(p, 0, &je);
  cr_assert_not_null(j, "%s: %s", p, je.text);
  return j;
}

static int load_opts(const char *name, const json_t *rsig, int instances, void **m,
                     struct serve_signature *sig, struct err *e) {
  struct serve_load_opts o = {.path = model_path(name),
                              .format = "onnx",
                              .registry_signature = rsig,
                              .instances = instances,
                              .cfg = &cfg,
                              .model_name = name,
                              .model_version = "1"};
  return serve_backend_onnx.load(&o, m, sig, e);
}

static void *load(const char *name, struct serve_signature *sig) {
  void *m = NULL;
  struct err e = {0};
  int rc = load_opts(name, NULL, 1, &m, sig, &e);
  cr_assert_eq(rc, 0, "load %s: %s", name, e.msg);
  cr_assert_not_null(m);
  return m;
}

static void unload(void *m, struct serve_signature *sig) {
  serve_backend_onnx.unload(m);
  serve_signature_fini(sig);
}

/* rows of numbers (a JSON matrix) as an FP32 tensor */
static struct serve_tensor f32_matrix(const char *name, const json_t *rows, size_t first,
                                      size_t n) {
  size_t c = json_array_size(json_array_get(rows, 0));
  int64_t shape[2] = {(int64_t)n, (int64_t)c};
  struct serve_tensor t;
  struct err e;
  cr_assert_eq(serve_tensor_alloc(&t, name, SERVE_FP32, shape, 2, &e), 0);
  float *f = t.data;
  for (size_t r = 0; r < n; r++)
    for (size_t k = 0; k < c; k++)
      f[r * c + k] = (float)json_number_value(json_array_get(json_array_get(rows, first + r), k));
  return t;
}

static bool near(double got, double want) {
  return got == want || fabs(got - want) <= 1e-6 * fmax(fabs(got), fabs(want));
}

/* out (FP32) equals rows first..first+n of a JSON matrix (or vector) */
static void expect_f32(const struct serve_tensor *out, const json_t *want, size_t first, size_t n) {
  const json_t *row0 = json_array_get(want, 0);
  size_t c = json_is_array(row0) ? json_array_size(row0) : 1;
  cr_assert_eq(out->dtype, SERVE_FP32, "%s is %s", out->name, serve_dtype_name(out->dtype));
  cr_assert_eq(out->ndim, json_is_array(row0) ? 2 : 1);
  cr_assert_eq(out->shape[0], (int64_t)n);
  if (out->ndim == 2) cr_assert_eq(out->shape[1], (int64_t)c);
  cr_assert_eq(out->nbytes, n * c * sizeof(float));
  const float *f = out->data;
  for (size_t r = 0; r < n; r++)
    for (size_t k = 0; k < c; k++) {
      const json_t *row = json_array_get(want, first + r);
      double w = json_number_value(json_is_array(row) ? json_array_get(row, k) : row);
      cr_assert(near(f[r * c + k], w), "%s[%zu][%zu] = %.9g, want %.9g", out->name, r, k,
                f[r * c + k], w);
    }
}

static int predict(void *m, int instance, const struct serve_tensor *in, int nin,
                   const struct serve_predict_opts *po, struct serve_tensor **out, int *nout,
                   struct err *e) {
  return serve_backend_onnx.predict(m, instance, in, nin, po, out, nout, e);
}

static void free_outputs(struct serve_tensor *out, int n) {
  for (int i = 0; i < n; i++) serve_tensor_fini(&out[i]);
  free(out);
}

static const struct serve_tensor_spec *spec(const struct serve_tensor_spec *s, int n,
                                            const char *name) {
  for (int i = 0; i < n; i++)
    if (strcmp(s[i].name, name) == 0) return &s[i];
  cr_assert_fail("no tensor named %s", name);
  return NULL;
}

static void expect_spec(const struct serve_tensor_spec *s, enum serve_dtype dt, int ndim,
                        int64_t d0, int64_t d1) {
  cr_assert_eq(s->dtype, dt, "%s is %s, want %s", s->name, serve_dtype_name(s->dtype),
               serve_dtype_name(dt));
  cr_assert_eq(s->ndim, ndim, "%s has rank %d", s->name, s->ndim);
  if (ndim > 0) cr_assert_eq(s->shape[0], d0, "%s dim 0 is %lld", s->name, (long long)s->shape[0]);
  if (ndim > 1) cr_assert_eq(s->shape[1], d1, "%s dim 1 is %lld", s->name, (long long)s->shape[1]);
}

/* element i of a V2 BYTES buffer */
static const char *v2_elem(const struct serve_tensor *t, size_t i, uint32_t *len) {
  const unsigned char *p = t->data;
  size_t off = 0;
  for (size_t k = 0;; k++) {
    cr_assert_leq(off + 4, t->nbytes, "BYTES element %zu out of range", i);
    uint32_t l = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 |
                 (uint32_t)p[off + 3] << 24;
    if (k == i) {
      cr_assert_leq(off + 4 + l, t->nbytes);
      *len = l;
      return (const char *)p + off + 4;
    }
    off += 4 + l;
  }
}

/* ---- predictions against numpy ------------------------------------------- */

Test(serve_onnx, mlp_signature_and_predictions_match_numpy) {
  struct serve_signature sig;
  void *m = load("mlp", &sig);
  cr_assert_eq(sig.ninputs, 1);
  cr_assert_eq(sig.noutputs, 1);
  cr_assert_str_eq(sig.inputs[0].name, "x");
  cr_assert_str_eq(sig.outputs[0].name, "y");
  expect_spec(&sig.inputs[0], SERVE_FP32, 2, -1, 4);
  expect_spec(&sig.outputs[0], SERVE_FP32, 2, -1, 3);
  cr_assert(sig.batched);
  cr_assert_not(sig.allow_nan);
  cr_assert_null(sig.columns);

  json_t *ref = reference("mlp");
  const json_t *x = json_object_get(ref, "x"), *y = json_object_get(ref, "y");
  size_t rows = json_array_size(x);
  cr_assert_eq(rows, 7);
  /* the whole batch, one row, and an empty batch */
  size_t firsts[] = {0, 3, 0}, counts[] = {rows, 1, 0};
  for (int c = 0; c < 3; c++) {
    struct serve_tensor in = f32_matrix("x", x, firsts[c], counts[c]);
    struct serve_tensor *out = NULL;
    int nout = 0;
    struct err e = {0};
    cr_assert_eq(predict(m, 0, &in, 1, NULL, &out, &nout, &e), 0, "%s", e.msg);
    cr_assert_eq(nout, 1);
    cr_assert_str_eq(out[0].name, "y");
    cr_assert(out[0].owned);
    expect_f32(&out[0], y, firsts[c], counts[c]);
    free_outputs(out, nout);
    serve_tensor_fini(&in);
  }

  json_t *d = serve_backend_onnx.describe(m);
  cr_assert_str_eq(json_string_value(json_object_get(d, "onnxruntime")), "1.30.0");
  cr_assert_eq(json_integer_value(json_object_get(d, "intra_op_threads")), 1);
  json_decref(d);
  struct stat sb;
  cr_assert_eq(stat(model_path("mlp"), &sb), 0);
  cr_assert_geq(serve_backend_onnx.memory(m), (uint64_t)sb.st_size * 2);
  json_decref(ref);
  unload(m, &sig);
}

Test(serve_onnx, tree_ensemble_regressor_matches_hand_walked_trees) {
  struct serve_signature sig;
  void *m = load("tree_regressor", &sig);
  expect_spec(&sig.inputs[0], SERVE_FP32, 2, -1, 5);
  expect_spec(&sig.outputs[0], SERVE_FP32, 2, -1, 2);
  cr_assert(sig.batched);
  json_t *ref = reference("tree_regressor");
  const json_t *x = json_object_get(ref, "x");
  struct serve_tensor in = f32_matrix("X", x, 0, json_array_size(x));
  struct serve_tensor *out = NULL;
  int nout = 0;
  struct err e = {0};
  cr_assert_eq(predict(m, 0, &in, 1, NULL, &out, &nout, &e), 0, "%s", e.msg);
  cr_assert_eq(nout, 1);
  cr_assert_str_eq(out[0].name, "variable");
  expect_f32(&out[0], json_object_get(ref, "y"), 0, json_array_size(x));
  free_outputs(out, nout);
  serve_tensor_fini(&in);
  json_decref(ref);
  unload(m, &sig);
}

/* each row's ZipMap object has exactly the expected keys and probabilities */
static void expect_zipmap(const struct serve_tensor *t, const json_t *want) {
  cr_assert_eq(t->dtype, SERVE_BYTES);
  cr_assert_null(t->data);
  cr_assert_eq(t->ndim, 1);
  cr_assert_eq(t->shape[0], (int64_t)json_array_size(want));
  cr_assert(json_is_array(t->json));
  cr_assert_eq(json_array_size(t->json), json_array_size(want));
  for (size_t r = 0; r < json_array_size(want); r++) {
    const json_t *got = json_array_get(t->json, r), *w = json_array_get(want, r);
    cr_assert(json_is_object(got), "row %zu is not an object", r);
    cr_assert_eq(json_object_size(got), json_object_size(w), "row %zu has %zu keys", r,
                 json_object_size(got));
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)w, k, v) {
      const json_t *g = json_object_get(got, k);
      cr_assert(json_is_real(g), "row %zu has no key '%s'", r, k);
      cr_assert(near(json_real_value(g), json_number_value(v)), "row %zu key %s: %.9g want %.9g", r,
                k, json_real_value(g), json_number_value(v));
    }
  }
}

Test(serve_onnx, tree_ensemble_classifier_labels_and_zipmap_probabilities) {
  struct serve_signature sig;
  void *m = load("tree_classifier", &sig);
  cr_assert_eq(sig.noutputs, 2);
  expect_spec(spec(sig.outputs, 2, "label"), SERVE_INT64, 1, -1, 0);
  expect_spec(spec(sig.outputs, 2, "output_probability"), SERVE_BYTES, 1, -1, 0);
  cr_assert(sig.batched);
  json_t *ref = reference("tree_classifier");
  const json_t *x = json_object_get(ref, "x"), *labels = json_object_get(ref, "label");
  size_t rows = json_array_size(x);
  cr_assert_geq(rows, 8);
  struct serve_tensor in = f32_matrix("X", x, 0, rows);
  struct serve_tensor *out = NULL;
  int nout = 0;
  struct err e = {0};

  /* default: every output, in the model's order */
  struct serve_predict_opts all = {0};
  cr_assert_eq(predict(m, 0, &in, 1, &all, &out, &nout, &e), 0, "%s", e.msg);
  cr_assert_eq(nout, 2);
  cr_assert_str_eq(out[0].name, "label");
  cr_assert_eq(out[0].dtype, SERVE_INT64);
  cr_assert_eq(out[0].shape[0], (int64_t)rows);
  for (size_t r = 0; r < rows; r++)
    cr_assert_eq(((int64_t *)out[0].data)[r], json_integer_value(json_array_get(labels, r)),
                 "row %zu", r);
  cr_assert_str_eq(out[1].name, "output_probability");
  expect_zipmap(&out[1], json_object_get(ref, "probabilities"));
  free_outputs(out, nout);

  /* proba: the probabilities alone */
  struct serve_predict_opts proba = {.proba = true};
  cr_assert_eq(predict(m, 0, &in, 1, &proba, &out, &nout, &e), 0, "%s", e.msg);
  cr_assert_eq(nout, 1);
  cr_assert_str_eq(out[0].name, "output_probability");
  expect_zipmap(&out[0], json_object_get(ref, "probabilities"));
  free_outputs(out, nout);

  /* named outputs win over proba */
  const char *names[] = {"label"};
  struct serve_predict_opts named = {.proba = true, .outputs = names, .noutputs = 1};
  cr_assert_eq(predict(m, 0, &in, 1, &named, &out, &nout, &e), 0, "%s", e.msg);
  cr_assert_eq(nout, 1);
  cr_assert_str_eq(out[0].name, "label");
  cr_assert_eq(((int64_t *)out[0].data)[0], json_integer_value(json_array_get(labels, 0)));
  free_outputs(out, nout);

  struct serve_predict_opts margin = {.margin = true};
  cr_assert_eq(predict(m, 0, &in, 1, &margin, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_null(out);
  serve_tensor_fini(&in);
  json_decref(ref);
  unload(m, &sig);
}

Test(serve_onnx, linear_classifier_string_labels_and_string_keyed_zipmap) {
  struct serve_signature sig;
  void *m = load("linear_classifier", &sig);
  expect_spec(spec(sig.outputs, 2, "label"), SERVE_BYTES, 1, -1, 0);
  expect_spec(spec(sig.outputs, 2, "probabilities"), SERVE_BYTES, 1, -1, 0);
  json_t *ref = reference("linear_classifier");
  const json_t *x = json_object_get(ref, "x"), *labels = json_object_get(ref, "label");
  size_t rows = json_array_size(x);
  cr_assert_geq(rows, 6);
  struct serve_tensor in = f32_matrix("X", x, 0, rows);
  struct serve_tensor *out = NULL;
  int nout = 0;
  struct err e = {0};
  cr_assert_eq(predict(m, 0, &in, 1, NULL, &out, &nout, &e), 0, "%s", e.msg);
  cr_assert_eq(nout, 2);
  cr_assert_str_eq(out[0].name, "label");
  cr_assert_eq(out[0].dtype, SERVE_BYTES);
  cr_assert_eq(out[0].ndim, 1);
  cr_assert_eq(out[0].shape[0], (int64_t)rows);
  size_t total = 0;
  for (size_t r = 0; r < rows; r++) {
    uint32_t len;
    const char *s = v2_elem(&out[0], r, &len);
    const char *want = json_string_value(json_array_get(labels, r));
    cr_assert_eq(len, strlen(want), "row %zu", r);
    cr_assert(memcmp(s, want, len) == 0, "row %zu: %.*s, want %s", r, (int)len, s, want);
    total += 4 + len;
  }
  cr_assert_eq(out[0].nbytes, total);
  expect_zipmap(&out[1], json_object_get(ref, "probabilities"));
  free_outputs(out, nout);
  serve_tensor_fini(&in);
  json_decref(ref);
  unload(m, &sig);
}

static struct serve_tensor hex_tensor(const json_t *d) {
  struct serve_tensor t = {0};
  str_copy(t.name, sizeof t.name, json_string_value(json_object_get(d, "name")));
  cr_assert_eq(serve_dtype_parse(json_string_value(json_object_get(d, "datatype")), &t.dtype), 0);
  const json_t *shape = json_object_get(d, "shape");
  t.ndim = (int)json_array_size(shape);
  for (int i = 0; i < t.ndim; i++)
    t.shape[i] = json_integer_value(json_array_get(shape, (size_t)i));
  const char *hex = json_string_value(json_object_get(d, "hex"));
  t.nbytes = strlen(hex) / 2;
  t.data = malloc(t.nbytes + 1);
  t.owned = true;
  cr_assert_eq(hex_decode(t.data, t.nbytes, hex), (int)t.nbytes);
  return t;
}

Test(serve_onnx, every_dtype_round_trips_exactly) {
  struct serve_signature sig;
  void *m = load("dtypes", &sig);
  json_t *ref = reference("dtypes");
  const json_t *ins = json_object_get(ref, "inputs"), *outs = json_object_get(ref, "outputs");
  int nin = (int)json_array_size(ins);
  cr_assert_eq(nin, 14);
  cr_assert_eq(sig.ninputs, nin);
  cr_assert_eq(sig.noutputs, (int)json_array_size(outs));
  cr_assert(sig.batched);
  struct serve_tensor in[14];
  /* in the signature's order, which is the graph's */
  for (int i = 0; i < nin; i++) {
    in[i] = hex_tensor(json_array_get(ins, (size_t)i));
    cr_assert_str_eq(sig.inputs[i].name, in[i].name);
    expect_spec(&sig.inputs[i], in[i].dtype, 2, -1, 2);
  }
  struct serve_tensor *out = NULL;
  int nout = 0;
  struct err e = {0};
  cr_assert_eq(predict(m, 0, in, nin, NULL, &out, &nout, &e), 0, "%s", e.msg);
  cr_assert_eq(nout, (int)json_array_size(outs));
  for (int k = 0; k < nout; k++) {
    struct serve_tensor want = hex_tensor(json_array_get(outs, (size_t)k));
    expect_spec(spec(sig.outputs, sig.noutputs, want.name), want.dtype, 2, -1, 2);
    cr_assert_str_eq(out[k].name, want.name);
    cr_assert_eq(out[k].dtype, want.dtype, "%s: %s", want.name, serve_dtype_name(out[k].dtype));
    cr_assert_eq(out[k].ndim, 2);
    cr_assert_eq(out[k].shape[0], 3);
    cr_assert_eq(out[k].shape[1], 2);
    cr_assert_eq(out[k].nbytes, want.nbytes, "%s: %zu bytes, want %zu", want.name, out[k].nbytes,
                 want.nbytes);
    cr_assert(memcmp(out[k].data, want.data, want.nbytes) == 0, "%s differs", want.name);
    serve_tensor_fini(&want);
  }
  free_outputs(out, nout);
  for (int i = 0; i < nin; i++) serve_tensor_fini(&in[i]);
  json_decref(ref);
  unload(m, &sig);
}

Test(serve_onnx, two_inputs_two_outputs_and_output_selection) {
  struct serve_signature sig;
  void *m = load("two_io", &sig);
  cr_assert_eq(sig.ninputs, 2);
  cr_assert_eq(sig.noutputs, 2);
  cr_assert_str_eq(sig.inputs[0].name, "a");
  cr_assert_str_eq(sig.inputs[1].name, "b");
  expect_spec(&sig.inputs[1], SERVE_FP32, 2, -1, 3);
  expect_spec(&sig.outputs[0], SERVE_FP32, 2, -1, 3);
  expect_spec(&sig.outputs[1], SERVE_FP32, 1, -1, 0);
  cr_assert_str_eq(sig.outputs[1].name, "dot");
  cr_assert(sig.batched);
  json_t *ref = reference("two_io");
  size_t rows = json_array_size(json_object_get(ref, "a"));
  struct serve_tensor in[2] = {f32_matrix("a", json_object_get(ref, "a"), 0, rows),
                               f32_matrix("b", json_object_get(ref, "b"), 0, rows)};
  struct serve_tensor *out = NULL;
  int nout = 0;
  struct err e = {0};
  cr_assert_eq(predict(m, 0, in, 2, NULL, &out, &nout, &e), 0, "%s", e.msg);
  cr_assert_eq(nout, 2);
  cr_assert_str_eq(out[0].name, "sum");
  expect_f32(&out[0], json_object_get(ref, "sum"), 0, rows);
  expect_f32(&out[1], json_object_get(ref, "dot"), 0, rows);
  free_outputs(out, nout);

  const char *rev[] = {"dot", "sum"};
  struct serve_predict_opts po = {.outputs = rev, .noutputs = 2};
  cr_assert_eq(predict(m, 0, in, 2, &po, &out, &nout, &e), 0, "%s", e.msg);
  cr_assert_eq(nout, 2);
  cr_assert_str_eq(out[0].name, "dot");
  expect_f32(&out[0], json_object_get(ref, "dot"), 0, rows);
  expect_f32(&out[1], json_object_get(ref, "sum"), 0, rows);
  free_outputs(out, nout);

  const char *bad[] = {"nope"};
  po = (struct serve_predict_opts){.outputs = bad, .noutputs = 1};
  cr_assert_eq(predict(m, 0, in, 2, &po, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "no output named 'nope'"), "%s", e.msg);
  const char *twice[] = {"sum", "sum"};
  po = (struct serve_predict_opts){.outputs = twice, .noutputs = 2};
  cr_assert_eq(predict(m, 0, in, 2, &po, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);
  /* no class probabilities in a model that is not a classifier */
  po = (struct serve_predict_opts){.proba = true};
  cr_assert_eq(predict(m, 0, in, 2, &po, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "probabilities"), "%s", e.msg);
  /* one input short */
  cr_assert_eq(predict(m, 0, in, 1, NULL, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "takes 2 inputs"), "%s", e.msg);
  cr_assert_null(out);
  serve_tensor_fini(&in[0]);
  serve_tensor_fini(&in[1]);
  json_decref(ref);
  unload(m, &sig);
}

Test(serve_onnx, sequence_of_tensors_becomes_json) {
  struct serve_signature sig;
  void *m = load("sequence", &sig);
  expect_spec(&sig.inputs[0], SERVE_INT64, 2, 2, 2);
  expect_spec(&sig.outputs[0], SERVE_BYTES, 1, -1, 0);
  cr_assert_not(sig.batched, "a fixed first dimension is not a batch");
  json_t *ref = reference("sequence");
  int64_t shape[2] = {2, 2}, x[4] = {1, -2, 3, 4};
  struct serve_tensor in = {
      .name = "x", .dtype = SERVE_INT64, .ndim = 2, .data = x, .nbytes = sizeof x};
  memcpy(in.shape, shape, sizeof shape);
  struct serve_tensor *out = NULL;
  int nout = 0;
  struct err e = {0};
  cr_assert_eq(predict(m, 0, &in, 1, NULL, &out, &nout, &e), 0, "%s", e.msg);
  cr_assert_eq(nout, 1);
  cr_assert_eq(out[0].shape[0], 2);
  cr_assert(json_equal(out[0].json, json_object_get(ref, "seq")), "got %s",
            json_dumps(out[0].json, JSON_COMPACT));
  free_outputs(out, nout);
  json_decref(ref);
  unload(m, &sig);
}

/* ---- registry signature -------------------------------------------------- */

Test(serve_onnx, registry_signature_names_the_columns) {
  struct serve_signature sig;
  void *m = NULL;
  struct err e = {0};
  /* MLflow stores the lists as JSON text */
  json_t *rs = json_pack(
      "{s:s}", "inputs",
      "[{\"name\": \"age\", \"type\": \"double\"}, {\"name\": \"bmi\", \"type\": \"double\"},"
      " {\"name\": \"bp\", \"type\": \"double\"}, {\"name\": \"s1\", \"type\": \"double\"},"
      " {\"name\": \"s2\", \"type\": \"double\"}]");
  cr_assert_eq(load_opts("tree_regressor", rs, 1, &m, &sig, &e), 0, "%s", e.msg);
  cr_assert_eq(sig.ncolumns, 5);
  cr_assert_str_eq(sig.columns[0], "age");
  cr_assert_str_eq(sig.columns[4], "s2");
  json_t *sj = serve_signature_json(&sig);
  cr_assert_eq(json_array_size(json_object_get(sj, "columns")), 5);
  json_decref(sj);
  unload(m, &sig);
  json_decref(rs);

  /* already parsed, but three names for five features: no columns */
  rs = json_pack("{s:[{s:s},{s:s},{s:s}]}", "inputs", "name", "a", "name", "b", "name", "c");
  cr_assert_eq(load_opts("tree_regressor", rs, 1, &m, &sig, &e), 0, "%s", e.msg);
  cr_assert_null(sig.columns);
  cr_assert_eq(sig.ncolumns, 0);
  unload(m, &sig);
  json_decref(rs);

  /* tensor-based signatures name no columns */
  rs = json_pack("{s:[{s:s,s:s}]}", "inputs", "name", "X", "type", "tensor");
  cr_assert_eq(load_opts("tree_regressor", rs, 1, &m, &sig, &e), 0, "%s", e.msg);
  cr_assert_null(sig.columns);
  unload(m, &sig);
  json_decref(rs);
}

/* ---- errors --------------------------------------------------------------- */

Test(serve_onnx, corrupt_or_missing_model_file_is_refused) {
  struct serve_signature sig;
  void *m = (void *)1;
  struct err e = {0};
  cr_assert_eq(load_opts("corrupt", NULL, 1, &m, &sig, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_null(m);
  cr_assert(strstr(e.msg, "ONNX Runtime cannot load the model: "), "%s", e.msg);
  cr_assert_eq(sig.inputs, NULL);
  cr_assert_eq(load_opts("no_such_model", NULL, 1, &m, &sig, &e), -ERR_IO);
  cr_assert(strstr(e.msg, "no_such_model.onnx"), "%s", e.msg);
}

Test(serve_onnx, inputs_kiln_cannot_feed_are_named_at_load) {
  struct serve_signature sig;
  void *m = NULL;
  struct err e = {0};
  cr_assert_eq(load_opts("float8_input", NULL, 1, &m, &sig, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_str_eq(e.msg, "input 'f8' has element type FLOAT8E4M3FN, which Kiln cannot serve");
  cr_assert_null(m);
  cr_assert_null(sig.inputs);
  cr_assert_eq(load_opts("sequence_input", NULL, 1, &m, &sig, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_str_eq(e.msg, "input 's' is of ONNX type sequence; Kiln serves tensor inputs only");
}

Test(serve_onnx, bad_inputs_give_errors_not_crashes) {
  struct serve_signature sig;
  void *m = load("mlp", &sig);
  struct serve_tensor *out = NULL;
  int nout = 0;
  struct err e = {0};
  /* five features where the model takes four: ORT's own words come back */
  float five[10] = {0};
  struct serve_tensor in = {.name = "x",
                            .dtype = SERVE_FP32,
                            .ndim = 2,
                            .shape = {2, 5},
                            .data = five,
                            .nbytes = sizeof five};
  cr_assert_eq(predict(m, 0, &in, 1, NULL, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "ONNX Runtime: ") && strstr(e.msg, "invalid dimensions"), "%s", e.msg);
  cr_assert_null(out);
  cr_assert_eq(nout, 0);
  /* wrong rank */
  in.ndim = 1;
  in.shape[0] = 10;
  cr_assert_eq(predict(m, 0, &in, 1, NULL, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "ONNX Runtime: "), "%s", e.msg);
  /* a dtype the model does not take */
  in = (struct serve_tensor){
      .name = "x", .dtype = SERVE_FP64, .ndim = 2, .shape = {1, 4}, .data = five, .nbytes = 32};
  cr_assert_eq(predict(m, 0, &in, 1, NULL, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_str_eq(e.msg, "input 'x' must be FP32, got FP64");
  /* a buffer shorter than its shape */
  in = (struct serve_tensor){.name = "x",
                             .dtype = SERVE_FP32,
                             .ndim = 2,
                             .shape = {3, 4},
                             .data = five,
                             .nbytes = sizeof five};
  cr_assert_eq(predict(m, 0, &in, 1, NULL, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "do not hold"), "%s", e.msg);
  /* a huge shape over a small buffer */
  in.shape[0] = INT64_MAX / 2;
  cr_assert_eq(predict(m, 0, &in, 1, NULL, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);
  unload(m, &sig);

  /* BYTES whose lengths run past the buffer, or leave bytes over */
  m = load("dtypes", &sig);
  json_t *ref = reference("dtypes");
  const json_t *ins = json_object_get(ref, "inputs");
  struct serve_tensor t[14];
  for (int i = 0; i < 14; i++) t[i] = hex_tensor(json_array_get(ins, (size_t)i));
  cr_assert_str_eq(t[13].name, "s");
  size_t n = t[13].nbytes;
  ((unsigned char *)t[13].data)[0] = 0xff; /* first length: 255 + ... */
  cr_assert_eq(predict(m, 0, t, 14, NULL, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "input 's'"), "%s", e.msg);
  ((unsigned char *)t[13].data)[0] = 0;
  t[13].nbytes = n - 1;
  cr_assert_eq(predict(m, 0, t, 14, NULL, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);
  t[13].shape[0] = 1 << 30;
  t[13].nbytes = n;
  cr_assert_eq(predict(m, 0, t, 14, NULL, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "cannot hold"), "%s", e.msg);
  t[13].shape[0] = 3;
  cr_assert_eq(predict(m, 0, t, 14, NULL, &out, &nout, &e), 0, "%s", e.msg);
  free_outputs(out, nout);
  for (int i = 0; i < 14; i++) serve_tensor_fini(&t[i]);
  json_decref(ref);
  unload(m, &sig);
}

/* ---- the library ----------------------------------------------------------- */

Test(serve_onnx, missing_library_is_a_clear_error) {
  cfg.onnx_library = "/nonexistent/libonnxruntime.so.1";
  struct serve_signature sig;
  void *m = NULL;
  struct err e = {0};
  cr_assert_eq(load_opts("mlp", NULL, 1, &m, &sig, &e), -ERR_INVALID_STATE);
  cr_assert_str_eq(
      e.msg,
      "ONNX Runtime library not found at /nonexistent/libonnxruntime.so.1 (set --onnx-runtime); "
      "run scripts/bootstrap");
  cr_assert_null(m);
  /* a failed open leaves nothing behind: the right path works afterwards */
  cfg.onnx_library = ORT_LIB;
  m = load("mlp", &sig);
  unload(m, &sig);
}

Test(serve_onnx, environment_names_the_library_when_config_does_not) {
  cfg.onnx_library = NULL;
  unsetenv("KILN_ONNX_RUNTIME");
  setenv("KILN_ONNXRUNTIME", "/nonexistent/from-env.so", 1);
  struct serve_signature sig;
  void *m = NULL;
  struct err e = {0};
  cr_assert_eq(load_opts("mlp", NULL, 1, &m, &sig, &e), -ERR_INVALID_STATE);
  cr_assert(strstr(e.msg, "not found at /nonexistent/from-env.so"), "%s", e.msg);
  /* the server flag's variable comes first */
  setenv("KILN_ONNXRUNTIME", ORT_LIB, 1);
  setenv("KILN_ONNX_RUNTIME", "/nonexistent/flag-env.so", 1);
  cr_assert_eq(load_opts("mlp", NULL, 1, &m, &sig, &e), -ERR_INVALID_STATE);
  cr_assert(strstr(e.msg, "not found at /nonexistent/flag-env.so"), "%s", e.msg);
  unsetenv("KILN_ONNX_RUNTIME");
  cfg.onnx_library = "";
  m = load("mlp", &sig);
  unload(m, &sig);
  unsetenv("KILN_ONNXRUNTIME");
}

/* Stand-ins for other libraries: one without the entry point, one that is
 * an ONNX Runtime too old for Kiln. */
static void make_fake(const char *name, const char *src) {
  char c[160], so[160], cmd[400];
  snprintf(c, sizeof c, "%s/%s.c", dir, name);
  snprintf(so, sizeof so, "%s/%s.so", dir, name);
  FILE *f = fopen(c, "w");
  cr_assert_not_null(f);
  fputs(src, f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "cc -shared -fPIC -o %s %s", so, c);
  cr_assert_eq(system(cmd), 0);
}

Test(serve_onnx, wrong_library_or_old_version_is_refused) {
  make_fake("fake_old", "#include <stdint.h>\n#include <stddef.h>\n"
                        "static const void *api(uint32_t v) { return NULL; }\n"
                        "static const char *ver(void) { return \"1.12.1\"; }\n"
                        "static const struct { const void *(*a)(uint32_t); const char *(*b)(void); "
                        "} base = {api, ver};\n"
                        "const void *OrtGetApiBase(void) { return &base; }\n");
  make_fake("fake_other", "int not_ort(void) { return 1; }\n");
  char p[160];
  struct serve_signature sig;
  void *m = NULL;
  struct err e = {0};
  snprintf(p, sizeof p, "%s/fake_other.so", dir);
  cfg.onnx_library = p;
  cr_assert_eq(load_opts("mlp", NULL, 1, &m, &sig, &e), -ERR_INVALID_STATE);
  cr_assert(strstr(e.msg, "fake_other.so is not an ONNX Runtime library"), "%s", e.msg);
  snprintf(p, sizeof p, "%s/fake_old.so", dir);
  cr_assert_eq(load_opts("mlp", NULL, 1, &m, &sig, &e), -ERR_INVALID_STATE);
  cr_assert(strstr(e.msg, "fake_old.so is version 1.12.1; Kiln needs 1.15 or later"), "%s", e.msg);
  cr_assert_null(m);
}

Test(serve_onnx, telemetry_is_disabled) {
  struct serve_signature sig;
  void *m = load("mlp", &sig);
  cr_assert_str_eq(getenv("ORT_DISABLE_TELEMETRY"), "1");
  char p[64];
  snprintf(p, sizeof p, "/tmp/mat-debug-%d.log", (int)getpid());
  cr_assert_neq(access(p, F_OK), 0, "%s exists: telemetry ran", p);
  unload(m, &sig);
}

Test(serve_onnx, threads_come_from_the_load_options_then_the_config) {
  struct serve_signature sig;
  void *m = NULL;
  struct err e = {0};
  cfg.onnx_threads = 3;
  cr_assert_eq(load_opts("mlp", NULL, 1, &m, &sig, &e), 0, "%s", e.msg);
  json_t *d = serve_backend_onnx.describe(m);
  cr_assert_eq(json_integer_value(json_object_get(d, "intra_op_threads")), 3);
  json_decref(d);
  unload(m, &sig);
  struct serve_load_opts o = {.path = model_path("mlp"), .instances = 1, .threads = 2, .cfg = &cfg};
  cr_assert_eq(serve_backend_onnx.load(&o, &m, &sig, &e), 0, "%s", e.msg);
  d = serve_backend_onnx.describe(m);
  cr_assert_eq(json_integer_value(json_object_get(d, "intra_op_threads")), 2);
  json_decref(d);
  unload(m, &sig);
  o.threads = 100000;
  cr_assert_eq(serve_backend_onnx.load(&o, &m, &sig, &e), -ERR_INVALID_PARAMETER_VALUE);
}

/* ---- concurrency ------------------------------------------------------------ */

struct worker {
  void *m;
  int instance;
  const json_t *x, *y;
  size_t first, rows;
  int failures, runs;
  char why[256];
};

static void *worker_main(void *arg) {
  struct worker *w = arg;
  for (int i = 0; i < 300; i++) {
    size_t first = (w->first + (size_t)i) % w->rows, n = 1 + (size_t)i % (w->rows - first);
    struct serve_tensor in = f32_matrix("x", w->x, first, n);
    struct serve_tensor *out = NULL;
    int nout = 0;
    struct err e = {0};
    if (predict(w->m, w->instance, &in, 1, NULL, &out, &nout, &e) != 0 || nout != 1 ||
        out[0].shape[0] != (int64_t)n) {
      w->failures++;
      snprintf(w->why, sizeof w->why, "%s", e.msg);
    } else {
      const float *f = out[0].data;
      for (size_t r = 0; r < n; r++)
        for (size_t k = 0; k < 3; k++)
          if (!near(f[r * 3 + k],
                    json_number_value(json_array_get(json_array_get(w->y, first + r), k)))) {
            w->failures++;
            snprintf(w->why, sizeof w->why, "row %zu col %zu", first + r, k);
          }
    }
    w->runs++;
    free_outputs(out, nout);
    serve_tensor_fini(&in);
  }
  return NULL;
}

Test(serve_onnx, two_instances_predict_concurrently) {
  struct serve_signature sig;
  void *m = NULL;
  struct err e = {0};
  cr_assert_eq(load_opts("mlp", NULL, 2, &m, &sig, &e), 0, "%s", e.msg);
  json_t *ref = reference("mlp");
  struct worker w[2];
  pthread_t th[2];
  for (int i = 0; i < 2; i++) {
    w[i] = (struct worker){.m = m,
                           .instance = i,
                           .x = json_object_get(ref, "x"),
                           .y = json_object_get(ref, "y"),
                           .first = (size_t)i * 3,
                           .rows = 7};
    cr_assert_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
  }
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(w[i].runs, 300);
    cr_assert_eq(w[i].failures, 0, "instance %d: %d failures (%s)", i, w[i].failures, w[i].why);
  }
  json_decref(ref);
  unload(m, &sig);
}
