/* tests for serve/backends/xgboost: predictions equal python3-xgboost's own
 * for every objective and file format (make_xgb_models.py writes models and
 * references), probabilities, signatures, instances on threads, bad files. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xgboost/c_api.h>

#include "serve/serve.h"

static const struct serve_backend *B = &serve_backend_xgboost;

struct fixture {
  char dir[64];
  json_t *refs;
};

static void fixture_make(struct fixture *fx, const char *models) {
  str_copy(fx->dir, sizeof fx->dir, "/tmp/kiln-xgb-XXXXXX");
  cr_assert_not_null(mkdtemp(fx->dir));
  char cmd[512];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/unit/serve/make_xgb_models.py %s %s >/dev/null",
           fx->dir, models);
  cr_assert_eq(system(cmd), 0, "make_xgb_models.py failed");
  char p[256];
  snprintf(p, sizeof p, "%s/refs.json", fx->dir);
  json_error_t je;
  fx->refs = json_load_file(p, 0, &je);
  cr_assert_not_null(fx->refs, "refs.json: %s", je.text);
}

static void fixture_free(struct fixture *fx) {
  json_decref(fx->refs);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf %s", fx->dir);
  cr_expect_eq(system(cmd), 0);
}

static json_t *ref_model(struct fixture *fx, const char *name) {
  size_t i;
  json_t *m;
  json_array_foreach(json_object_get(fx->refs, "models"), i, m) {
    if (str_eq(json_string_value(json_object_get(m, "name")), name)) return m;
  }
  cr_assert_fail("no reference model %s", name);
  return NULL;
}

/* a flat JSON list (null = NaN) as floats */
static float *ref_floats(json_t *a, size_t *n) {
  *n = json_array_size(a);
  float *f = malloc((*n ? *n : 1) * sizeof *f);
  cr_assert_not_null(f);
  for (size_t i = 0; i < *n; i++) {
    json_t *v = json_array_get(a, i);
    f[i] = json_is_null(v) ? NAN : (float)json_number_value(v);
  }
  return f;
}

struct input {
  struct serve_tensor t;
  float *x;
};

static void input_of(struct input *in, json_t *m, int64_t rows) {
  size_t n;
  in->x = ref_floats(json_object_get(m, "X"), &n);
  int64_t nf = json_integer_value(json_object_get(m, "num_feature"));
  cr_assert_eq((int64_t)n, json_integer_value(json_object_get(m, "rows")) * nf);
  if (rows < 0) rows = json_integer_value(json_object_get(m, "rows"));
  memset(&in->t, 0, sizeof in->t);
  str_copy(in->t.name, sizeof in->t.name, "input");
  in->t.dtype = SERVE_FP32;
  in->t.ndim = 2;
  in->t.shape[0] = rows;
  in->t.shape[1] = nf;
  in->t.data = in->x;
  in->t.nbytes = (size_t)rows * (size_t)nf * sizeof(float);
}

static int load(const char *path, const char *format, int instances, void **model,
                struct serve_signature *sig, struct err *e) {
  struct serve_load_opts o = {.path = path,
                              .format = format,
                              .instances = instances,
                              .model_name = "t",
                              .model_version = "1"};
  return B->load(&o, model, sig, e);
}

/* relative 1e-6, or equal (both NaN counts as equal) */
static bool close_enough(float a, float b) {
  if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
  return a == b || fabsf(a - b) <= 1e-6f * fmaxf(fabsf(a), fabsf(b));
}

static void expect_output(const struct serve_tensor *t, json_t *m, const char *key,
                          const char *what) {
  size_t n;
  float *want = ref_floats(json_object_get(m, key), &n);
  char shape_key[32];
  snprintf(shape_key, sizeof shape_key, "%s_shape", key);
  json_t *shape = json_object_get(m, shape_key);
  cr_assert_eq(t->dtype, SERVE_FP32);
  cr_assert_eq((size_t)t->ndim, json_array_size(shape), "%s: ndim %d", what, t->ndim);
  for (int d = 0; d < t->ndim; d++)
    cr_assert_eq(t->shape[d], json_integer_value(json_array_get(shape, (size_t)d)), "%s: dim %d",
                 what, d);
  cr_assert_eq(t->nbytes, n * sizeof(float), "%s", what);
  const float *got = t->data;
  for (size_t i = 0; i < n; i++)
    cr_assert(close_enough(got[i], want[i]), "%s: value %zu is %.9g, python says %.9g", what, i,
              got[i], want[i]);
  free(want);
}

static void free_outputs(struct serve_tensor *out, int nout) {
  for (int i = 0; i < nout; i++) serve_tensor_fini(&out[i]);
  free(out);
}

static const char *const FILE_KINDS[] = {"json",       "ubj",       "deprecated",
                                         "json_noext", "ubj_noext", "deprecated_noext"};
static const char *const FORMATS[] = {"xgboost-json", "xgboost-ubj", "xgboost-binary",
                                      "xgboost-json", "xgboost-ubj", "xgboost-binary"};

Test(serve_xgb, every_objective_and_file_format_answers_what_python_answers) {
  struct fixture fx;
  fixture_make(&fx, "");
  size_t mi;
  json_t *m;
  int checked = 0;
  json_array_foreach(json_object_get(fx.refs, "models"), mi, m) {
    const char *name = json_string_value(json_object_get(m, "name"));
    json_t *files = json_object_get(m, "files");
    for (size_t k = 0; k < sizeof FILE_KINDS / sizeof *FILE_KINDS; k++) {
      const char *path = json_string_value(json_object_get(files, FILE_KINDS[k]));
      if (!path) continue;
      char what[128];
      snprintf(what, sizeof what, "%s from %s", name, FILE_KINDS[k]);
      void *model;
      struct serve_signature sig;
      struct err e = {0};
      cr_assert_eq(load(path, FORMATS[k], 1, &model, &sig, &e), 0, "%s: %s", what, e.msg);
      struct input in;
      input_of(&in, m, -1);
      struct serve_tensor *out;
      int nout;
      struct serve_predict_opts po = {0};
      cr_assert_eq(B->predict(model, 0, &in.t, 1, &po, &out, &nout, &e), 0, "%s: %s", what, e.msg);
      cr_assert_eq(nout, 1);
      cr_assert_str_eq(out[0].name, "predictions");
      expect_output(&out[0], m, "pred", what);
      free_outputs(out, nout);
      po.margin = true;
      cr_assert_eq(B->predict(model, 0, &in.t, 1, &po, &out, &nout, &e), 0, "%s: %s", what, e.msg);
      snprintf(what, sizeof what, "%s from %s (margin)", name, FILE_KINDS[k]);
      expect_output(&out[0], m, "margin", what);
      free_outputs(out, nout);
      free(in.x);
      B->unload(model);
      serve_signature_fini(&sig);
      checked++;
    }
  }
  /* 8 models x 6 files + the diabetes model as JSON and without extension */
  cr_assert_eq(checked, 8 * 6 + 2);
  fixture_free(&fx);
}

Test(serve_xgb, signatures_state_features_columns_classes_and_nan_as_missing) {
  struct fixture fx;
  fixture_make(&fx, "bin softprob softmax multiout logitraw");
  static const struct {
    const char *model, *file;
    int out_ndim;
    int64_t out_cols;
    int nclasses;
    bool columns;
  } cases[] = {
      {"reg", "json", 1, 0, 0, false},
      {"bin", "json", 1, 0, 2, true},
      {"bin", "ubj_noext", 1, 0, 2, true},
      {"bin", "deprecated", 1, 0, 2, false},
      {"logitraw", "json", 1, 0, 2, false},
      {"softprob", "ubj", 2, 3, 3, false},
      {"softmax", "json", 1, 0, 3, false},
      {"multiout", "json", 2, 2, 0, false},
      {"multiout", "deprecated_noext", 2, 2, 0, false},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    json_t *m = ref_model(&fx, cases[c].model);
    const char *path =
        json_string_value(json_object_get(json_object_get(m, "files"), cases[c].file));
    void *model;
    struct serve_signature sig;
    struct err e = {0};
    cr_assert_eq(load(path, NULL, 1, &model, &sig, &e), 0, "%s: %s", path, e.msg);
    cr_assert_eq(sig.ninputs, 1);
    cr_assert_str_eq(sig.inputs[0].name, "input");
    cr_assert_eq(sig.inputs[0].dtype, SERVE_FP32);
    cr_assert_eq(sig.inputs[0].ndim, 2);
    cr_assert_eq(sig.inputs[0].shape[0], -1);
    cr_assert_eq(sig.inputs[0].shape[1], 5);
    cr_assert(sig.batched);
    cr_assert(sig.allow_nan);
    cr_assert_eq(sig.noutputs, 1);
    cr_assert_str_eq(sig.outputs[0].name, "predictions");
    cr_assert_eq(sig.outputs[0].ndim, cases[c].out_ndim, "%s", path);
    cr_assert_eq(sig.outputs[0].shape[0], -1);
    if (cases[c].out_ndim == 2) cr_assert_eq(sig.outputs[0].shape[1], cases[c].out_cols);
    if (cases[c].nclasses) {
      cr_assert_eq((int)json_array_size(sig.classes), cases[c].nclasses, "%s", path);
      for (int i = 0; i < cases[c].nclasses; i++)
        cr_assert_eq(json_integer_value(json_array_get(sig.classes, (size_t)i)), i);
    } else {
      cr_assert_null(sig.classes, "%s", path);
    }
    if (cases[c].columns) {
      cr_assert_eq(sig.ncolumns, 5);
      cr_assert_str_eq(sig.columns[0], "f_a");
      cr_assert_str_eq(sig.columns[4], "f_e");
    } else {
      cr_assert_eq(sig.ncolumns, 0, "%s", path);
      cr_assert_null(sig.columns);
    }
    json_t *d = B->describe(model);
    cr_assert_str_eq(json_string_value(json_object_get(d, "objective")),
                     json_string_value(json_object_get(m, "objective")));
    cr_assert_eq(json_integer_value(json_object_get(d, "num_feature")), 5);
    cr_assert_eq(json_integer_value(json_object_get(d, "num_class")),
                 json_integer_value(json_object_get(m, "num_class")));
    cr_assert_eq(json_integer_value(json_object_get(d, "boosters")), 1);
    json_decref(d);
    B->unload(model);
    serve_signature_fini(&sig);
  }

  /* a model without names takes them from the registry's signature when the
   * count matches: MLflow column specs, or a tensor with feature_names */
  const char *path =
      json_string_value(json_object_get(json_object_get(ref_model(&fx, "reg"), "files"), "ubj"));
  json_t *cols =
      json_pack("{s:[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}]}", "inputs", "name", "age",
                "type", "double", "name", "bmi", "type", "double", "name", "bp", "type", "double",
                "name", "s1", "type", "double", "name", "s2", "type", "double");
  json_t *tensor = json_pack("{s:[{s:s,s:[i,i],s:[s,s,s,s,s]}]}", "inputs", "name", "features",
                             "shape", -1, 5, "feature_names", "a", "b", "c", "d", "e");
  json_t *short_cols = json_pack("{s:[{s:s,s:s},{s:s,s:s}]}", "inputs", "name", "x", "type",
                                 "double", "name", "y", "type", "double");
  struct {
    json_t *rs;
    const char *first, *last;
  } regs[] = {{cols, "age", "s2"}, {tensor, "a", "e"}, {short_cols, NULL, NULL}};
  for (int r = 0; r < 3; r++) {
    struct serve_load_opts o = {
        .path = path, .format = "xgboost-ubj", .instances = 1, .registry_signature = regs[r].rs};
    void *model;
    struct serve_signature sig;
    struct err e = {0};
    cr_assert_eq(B->load(&o, &model, &sig, &e), 0, "%s", e.msg);
    if (regs[r].first) {
      cr_assert_eq(sig.ncolumns, 5);
      cr_assert_str_eq(sig.columns[0], regs[r].first);
      cr_assert_str_eq(sig.columns[4], regs[r].last);
    } else {
      cr_assert_eq(sig.ncolumns, 0,
                   "2 registry columns for 5 features are not the model's columns");
    }
    B->unload(model);
    serve_signature_fini(&sig);
    json_decref(regs[r].rs);
  }
  fixture_free(&fx);
}

static void predict_ok(void *model, json_t *m, struct serve_predict_opts *po,
                       struct serve_tensor **out) {
  struct input in;
  input_of(&in, m, -1);
  int nout;
  struct err e = {0};
  cr_assert_eq(B->predict(model, 0, &in.t, 1, po, out, &nout, &e), 0, "%s", e.msg);
  cr_assert_eq(nout, 1);
  free(in.x);
}

Test(serve_xgb, probabilities_follow_scikit_learn_and_softmax_of_margins) {
  struct fixture fx;
  fixture_make(&fx, "bin logitraw softprob softmax");
  struct serve_predict_opts proba = {.proba = true}, plain = {0};
  const char *const names[] = {"bin", "logitraw", "softprob", "softmax"};
  for (int k = 0; k < 4; k++) {
    json_t *m = ref_model(&fx, names[k]);
    const char *path = json_string_value(json_object_get(json_object_get(m, "files"), "json"));
    void *model;
    struct serve_signature sig;
    struct err e = {0};
    cr_assert_eq(load(path, "xgboost-json", 1, &model, &sig, &e), 0, "%s", e.msg);
    struct serve_tensor *p, *lab;
    predict_ok(model, m, &proba, &p);
    predict_ok(model, m, &plain, &lab);
    int64_t rows = json_integer_value(json_object_get(m, "rows"));
    int64_t k_cls = k < 2 ? 2 : 3;
    cr_assert_eq(p->ndim, 2, "%s", names[k]);
    cr_assert_eq(p->shape[0], rows);
    cr_assert_eq(p->shape[1], k_cls);
    const float *pv = p->data, *lv = lab->data;
    size_t nm;
    float *margin = ref_floats(json_object_get(m, "margin"), &nm);
    for (int64_t i = 0; i < rows; i++) {
      double sum = 0;
      int best = 0;
      for (int j = 0; j < k_cls; j++) {
        cr_assert(pv[i * k_cls + j] >= 0 && pv[i * k_cls + j] <= 1);
        sum += pv[i * k_cls + j];
        if (pv[i * k_cls + j] > pv[i * k_cls + best]) best = j;
      }
      cr_assert(fabs(sum - 1) < 1e-6, "%s row %lld sums to %.9g", names[k], (long long)i, sum);
      if (k == 0) { /* binary:logistic: [1-p, p] with p what predict answers */
        cr_assert_eq(pv[2 * i + 1], lv[i]);
        cr_assert_eq(pv[2 * i], 1.0f - lv[i]);
      } else if (k == 1) { /* binary:logitraw: p = sigmoid(margin) */
        double want = 1 / (1 + exp(-(double)margin[i]));
        cr_assert(fabs(pv[2 * i + 1] - want) <= 1e-6 * want, "row %lld: %.9g vs %.9g", (long long)i,
                  pv[2 * i + 1], want);
      } else if (k == 2) { /* multi:softprob: as predicted */
        for (int j = 0; j < 3; j++) cr_assert_eq(pv[i * 3 + j], lv[i * 3 + j]);
      } else { /* multi:softmax: argmax is the predicted label */
        cr_assert_eq((float)best, lv[i], "row %lld: argmax %d, label %g", (long long)i, best,
                     lv[i]);
      }
    }
    if (k == 3) { /* and numpy's softmax of the same margins */
      size_t n;
      float *want = ref_floats(json_object_get(m, "proba_ref"), &n);
      cr_assert_eq(n, (size_t)(rows * 3));
      for (size_t i = 0; i < n; i++)
        cr_assert(close_enough(pv[i], want[i]), "%zu: %.9g vs %.9g", i, pv[i], want[i]);
      free(want);
    }
    free(margin);
    free_outputs(p, 1);
    free_outputs(lab, 1);
    B->unload(model);
    serve_signature_fini(&sig);
  }
  fixture_free(&fx);
}

Test(serve_xgb, bad_requests_are_refused_with_a_reason) {
  struct fixture fx;
  fixture_make(&fx, "reg");
  json_t *m = ref_model(&fx, "reg");
  const char *path = json_string_value(json_object_get(json_object_get(m, "files"), "json"));
  void *model;
  struct serve_signature sig;
  struct err e = {0};
  cr_assert_eq(load(path, "xgboost-json", 2, &model, &sig, &e), 0, "%s", e.msg);
  struct input in;
  input_of(&in, m, -1);
  struct serve_tensor *out = NULL;
  int nout = 0;
  struct serve_predict_opts po = {.proba = true};
  cr_assert_eq(B->predict(model, 0, &in.t, 1, &po, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_str_eq(e.msg, "this model has no class probabilities");
  cr_assert_null(out);
  po = (struct serve_predict_opts){.proba = true, .margin = true};
  cr_assert_eq(B->predict(model, 0, &in.t, 1, &po, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);
  const char *bogus[] = {"probabilities"};
  po = (struct serve_predict_opts){.outputs = bogus, .noutputs = 1};
  cr_assert_eq(B->predict(model, 0, &in.t, 1, &po, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "probabilities") != NULL, "%s", e.msg);
  const char *good[] = {"predictions"};
  po = (struct serve_predict_opts){.outputs = good, .noutputs = 1};
  cr_assert_eq(B->predict(model, 1, &in.t, 1, &po, &out, &nout, &e), 0, "%s", e.msg);
  free_outputs(out, nout);
  po = (struct serve_predict_opts){0};
  cr_assert_eq(B->predict(model, 2, &in.t, 1, &po, &out, &nout, &e), -ERR_INTERNAL,
               "instance 2 of 2");
  struct serve_tensor bad = in.t;
  bad.shape[1] = 4;
  bad.nbytes = (size_t)bad.shape[0] * 4 * sizeof(float);
  cr_assert_eq(B->predict(model, 0, &bad, 1, &po, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "[-1, 5]") != NULL, "%s", e.msg);
  bad = in.t;
  bad.dtype = SERVE_FP64;
  cr_assert_eq(B->predict(model, 0, &bad, 1, &po, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);
  bad = in.t;
  bad.nbytes -= 4; /* a length that disagrees with the shape */
  cr_assert_eq(B->predict(model, 0, &bad, 1, &po, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(B->predict(model, 0, &in.t, 2, &po, &out, &nout, &e), -ERR_INVALID_PARAMETER_VALUE);

  /* zero rows: an empty answer, without asking libxgboost */
  bad = in.t;
  bad.shape[0] = 0;
  bad.nbytes = 0;
  cr_assert_eq(B->predict(model, 0, &bad, 1, &po, &out, &nout, &e), 0, "%s", e.msg);
  cr_assert_eq(out[0].ndim, 1);
  cr_assert_eq(out[0].shape[0], 0);
  free_outputs(out, nout);

  /* rows at an odd address (a view into a binary request body) */
  char *raw = malloc(in.t.nbytes + 1);
  memcpy(raw + 1, in.x, in.t.nbytes);
  bad = in.t;
  bad.data = raw + 1;
  cr_assert_eq(B->predict(model, 0, &bad, 1, &po, &out, &nout, &e), 0, "%s", e.msg);
  expect_output(&out[0], m, "pred", "misaligned rows");
  free_outputs(out, nout);
  free(raw);

  /* two boosters, each about the size of the file */
  struct stat st;
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_eq(B->memory(model), 2 * (uint64_t)st.st_size);
  free(in.x);
  B->unload(model);
  serve_signature_fini(&sig);
  fixture_free(&fx);
}

Test(serve_xgb, damaged_or_foreign_files_fail_with_a_clear_error) {
  struct fixture fx;
  fixture_make(&fx, "reg");
  static const struct {
    const char *file, *format, *says;
  } cases[] = {
      {"corrupt.json", "xgboost-json", "bad XGBoost model: "},
      {"truncated.ubj", "xgboost-ubj", "bad XGBoost model: "},
      {"truncated.bin", "xgboost-binary", "bad XGBoost model: "},
      {"garbage.bin", "xgboost-binary", "not an XGBoost model"},
      {"empty.json", "xgboost-json", "not an XGBoost model"},
      {"refs.json", "xgboost-json", "bad XGBoost model: "}, /* JSON, but not a model */
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", fx.dir, cases[c].file);
    void *model = (void *)1;
    struct serve_signature sig;
    struct err e = {0};
    cr_assert_eq(load(path, cases[c].format, 2, &model, &sig, &e), -ERR_INVALID_PARAMETER_VALUE,
                 "%s: %s", path, e.msg);
    cr_assert_null(model);
    cr_assert(str_has_prefix(e.msg, cases[c].says), "%s: %s", cases[c].file, e.msg);
    /* libxgboost's text, without its timestamp, source position or stack */
    cr_assert(strstr(e.msg, "Stack trace") == NULL && strchr(e.msg, '\n') == NULL &&
                  strstr(e.msg, ".cc:") == NULL,
              "%s: %s", cases[c].file, e.msg);
    cr_assert_gt(strlen(e.msg), strlen(cases[c].says) + 5, "%s: %s", cases[c].file, e.msg);
  }
  void *model;
  struct serve_signature sig;
  struct err e = {0};
  char path[256];
  snprintf(path, sizeof path, "%s/nope.json", fx.dir);
  cr_assert_eq(load(path, "xgboost-json", 1, &model, &sig, &e), -ERR_IO);
  snprintf(path, sizeof path, "%s/reg.json", fx.dir);
  cr_assert_eq(load(path, "onnx", 1, &model, &sig, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(load(fx.dir, "xgboost-json", 1, &model, &sig, &e), -ERR_IO, "a directory: %s",
               e.msg);
  fixture_free(&fx);
}

/* ---- instances on threads ---------------------------------------------------- */

struct worker {
  void *model;
  int instance;
  json_t *ref;
  int rounds;
  int wrong;
  int failed;
};

static void *worker_run(void *arg) {
  struct worker *w = arg;
  struct input in;
  input_of(&in, w->ref, -1);
  size_t n;
  float *want = ref_floats(json_object_get(w->ref, "pred"), &n);
  float *want_m = ref_floats(json_object_get(w->ref, "margin"), &n);
  for (int r = 0; r < w->rounds; r++) {
    /* alternate answers and row counts so a shared buffer would show */
    struct serve_predict_opts po = {.margin = (r + w->instance) % 2 == 1};
    int64_t rows = 1 + (r * 7 + w->instance * 13) % in.t.shape[0];
    struct serve_tensor view = in.t;
    view.shape[0] = rows;
    view.nbytes = (size_t)rows * (size_t)in.t.shape[1] * sizeof(float);
    struct serve_tensor *out;
    int nout;
    struct err e;
    if (B->predict(w->model, w->instance, &view, 1, &po, &out, &nout, &e) != 0) {
      w->failed++;
      continue;
    }
    const float *got = out[0].data;
    const float *ref = po.margin ? want_m : want;
    int64_t cols = out[0].ndim == 2 ? out[0].shape[1] : 1;
    for (int64_t i = 0; i < rows * cols; i++)
      if (!close_enough(got[i], ref[i])) {
        w->wrong++;
        break;
      }
    free_outputs(out, nout);
  }
  free(want);
  free(want_m);
  free(in.x);
  return NULL;
}

Test(serve_xgb, instances_predict_concurrently_with_the_same_answers) {
  struct fixture fx;
  fixture_make(&fx, "softprob");
  json_t *m = ref_model(&fx, "softprob");
  const char *path = json_string_value(json_object_get(json_object_get(m, "files"), "ubj"));
  void *model;
  struct serve_signature sig;
  struct err e = {0};
  cr_assert_eq(load(path, "xgboost-ubj", 2, &model, &sig, &e), 0, "%s", e.msg);
  json_t *d = B->describe(model);
  cr_assert_eq(json_integer_value(json_object_get(d, "boosters")), 2);
  json_decref(d);
  struct worker w[2] = {{model, 0, m, 300, 0, 0}, {model, 1, m, 300, 0, 0}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(w[i].failed, 0, "instance %d: %d calls failed", i, w[i].failed);
    cr_assert_eq(w[i].wrong, 0, "instance %d: %d answers differ from python's", i, w[i].wrong);
  }
  B->unload(model);
  serve_signature_fini(&sig);

  /* intra-op threads per booster, and the same answers with them */
  struct serve_load_opts o = {.path = path, .format = "xgboost-ubj", .instances = 1, .threads = 2};
  cr_assert_eq(B->load(&o, &model, &sig, &e), 0, "%s", e.msg);
  d = B->describe(model);
  cr_assert_eq(json_integer_value(json_object_get(d, "threads")), 2);
  json_decref(d);
  struct serve_tensor *out;
  predict_ok(model, m, NULL, &out);
  expect_output(&out[0], m, "pred", "softprob with 2 threads");
  free_outputs(out, 1);
  B->unload(model);
  serve_signature_fini(&sig);
  fixture_free(&fx);
}

/* ---- libxgboost's own log lines ------------------------------------------------ */

static void *warn_from_thread(void *arg) {
  const char *path = arg;
  /* the backend hooks each thread that calls it; this one has not loaded */
  void *model;
  struct serve_signature sig;
  struct err e;
  if (load(path, "xgboost-json", 1, &model, &sig, &e) != 0) return (void *)1;
  B->unload(model);
  serve_signature_fini(&sig);
  /* an unused parameter makes libxgboost warn at its next configuration */
  BoosterHandle h;
  if (XGBoosterCreate(NULL, 0, &h) != 0 || XGBoosterLoadModel(h, path) != 0 ||
      XGBoosterSetParam(h, "validate_parameters", "1") != 0 ||
      XGBoosterSetParam(h, "kiln_unused_knob", "1") != 0)
    return (void *)2;
  float x[5] = {0, 1, 2, 3, 4};
  char ai[160];
  snprintf(ai, sizeof ai,
           "{\"data\": [%lu, true], \"shape\": [1, 5], \"typestr\": \"<f4\", \"version\": 3}",
           (unsigned long)(uintptr_t)x);
  const bst_ulong *shape;
  bst_ulong dim;
  const float *r;
  int rc =
      XGBoosterPredictFromDense(h, ai,
                                "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, "
                                "\"iteration_end\": 0, \"strict_shape\": false, \"missing\": NaN, "
                                "\"cache_id\": 0}",
                                NULL, &shape, &dim, &r);
  XGBoosterFree(h);
  return rc ? (void *)3 : NULL;
}

Test(serve_xgb, libxgboost_warnings_become_kiln_log_lines) {
  struct fixture fx;
  fixture_make(&fx, "reg");
  char path[256], logp[256];
  snprintf(path, sizeof path, "%s/reg.json", fx.dir);
  snprintf(logp, sizeof logp, "%s/stderr.txt", fx.dir);
  fflush(stderr);
  int saved = dup(2);
  FILE *f = fopen(logp, "w+");
  cr_assert_not_null(f);
  dup2(fileno(f), 2);
  pthread_t th;
  void *res = (void *)9;
  cr_assert_eq(pthread_create(&th, NULL, warn_from_thread, path), 0);
  pthread_join(th, &res);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  cr_assert_null(res, "step %ld failed", (long)(intptr_t)res);
  char text[8192] = "";
  rewind(f);
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = 0;
  fclose(f);
  cr_assert(strstr(text, "kiln_unused_knob") != NULL, "the warning went nowhere: %s", text);
  /* every line is one of Kiln's JSON log lines */
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    cr_assert_eq(line[0], '{', "raw line on stderr: %s", line);
    if (strstr(line, "kiln_unused_knob"))
      cr_assert(strstr(line, "\"event\":\"serve.xgboost\"") && strstr(line, "\"level\":\"warn\""),
                "%s", line);
  }
  fixture_free(&fx);
}

/* ---- the raw call, for the benchmark's floor (printed, never asserted) ---------- */

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

Test(serve_xgb, raw_predict_on_a_100_tree_diabetes_model) {
  struct fixture fx;
  fixture_make(&fx, "diabetes");
  json_t *m = ref_model(&fx, "diabetes");
  const char *path = json_string_value(json_object_get(json_object_get(m, "files"), "json_noext"));
  void *model;
  struct serve_signature sig;
  struct err e = {0};
  cr_assert_eq(load(path, "xgboost-json", 1, &model, &sig, &e), 0, "%s", e.msg);
  cr_assert_eq(sig.inputs[0].shape[1], 10);
  struct input in;
  input_of(&in, m, -1);
  enum { N = 2000 };
  static int64_t t[N];
  for (int rows = 1; rows <= 32; rows += 31) {
    struct serve_tensor view = in.t;
    view.shape[0] = rows;
    view.nbytes = (size_t)rows * 10 * sizeof(float);
    for (int i = 0; i < N + 100; i++) {
      struct serve_tensor *out;
      int nout;
      int64_t t0 = now_ns();
      cr_assert_eq(B->predict(model, 0, &view, 1, NULL, &out, &nout, &e), 0, "%s", e.msg);
      int64_t dt = now_ns() - t0;
      if (i >= 100) t[i - 100] = dt; /* the first calls warm caches */
      if (i == 0) {
        size_t n;
        float *want = ref_floats(json_object_get(m, "pred"), &n);
        const float *got = out[0].data;
        for (int r = 0; r < rows; r++) cr_assert(close_enough(got[r], want[r]));
        free(want);
      }
      free_outputs(out, nout);
    }
    qsort(t, N, sizeof *t, cmp_i64);
    fprintf(stderr,
            "serve_xgb: raw predict, 100 trees, %2d row(s): p50 %.1f us, p99 %.1f us (%d calls)\n",
            rows, t[N / 2] / 1e3, t[N * 99 / 100] / 1e3, N);
  }
  free(in.x);
  B->unload(model);
  serve_signature_fini(&sig);
  fixture_free(&fx);
}
