/* tests for the python serving backend: real scikit-learn (pickle and joblib)
 * and TorchScript models made by make_py_models.py, predictions against the
 * frameworks' own, and the worker pool's isolation, crash, timeout and
 * degraded behaviour. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "serve/serve.h"

/* ---- fixtures -------------------------------------------------------------- */

static void quiet(void) { log_set_quiet(true); }
TestSuite(serve_python, .init = quiet);

#define MODELS "build/tests/py_models"

static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  struct buf b;
  buf_init(&b);
  char tmp[8192];
  size_t k;
  while ((k = fread(tmp, 1, sizeof tmp, f)) > 0) buf_append(&b, tmp, k);
  fclose(f);
  if (n) *n = b.len;
  return b.data ? buf_steal(&b) : strdup("");
}

/* The models are made once per version of make_py_models.py (its SHA-256
 * is the stamp) and shared by the tests, which run in parallel processes. */
static void models_ready(void) {
  mkdir("build", 0755);
  mkdir("build/tests", 0755);
  int lk = open("build/tests/py_models.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  cr_assert(lk >= 0);
  cr_assert_eq(flock(lk, LOCK_EX), 0);
  size_t n = 0;
  char *script = slurp("tests/unit/serve/make_py_models.py", &n);
  cr_assert_not_null(script);
  char want[65];
  sha256_hex(script, n, want);
  free(script);
  char *have = slurp(MODELS "/stamp", NULL);
  if (!have || strcmp(have, want) != 0) {
    cr_assert_eq(system("rm -rf " MODELS " " MODELS ".tmp"), 0);
    cr_assert_eq(system("/usr/bin/python3 tests/unit/serve/make_py_models.py " MODELS
                        ".tmp >/dev/null 2>&1"),
                 0, "make_py_models.py failed");
    FILE *f = fopen(MODELS ".tmp/stamp", "w");
    cr_assert_not_null(f);
    fputs(want, f);
    fclose(f);
    cr_assert_eq(rename(MODELS ".tmp", MODELS), 0);
  }
  free(have);
  flock(lk, LOCK_UN);
  close(lk);
}

static json_t *refs(void) {
  models_ready();
  json_error_t je;
  json_t *r = json_load_file(MODELS "/refs.json", 0, &je);
  cr_assert_not_null(r, "refs.json: %s", je.text);
  return r;
}

struct loaded {
  void *m;
  struct serve_signature sig;
  struct serve_config cfg;
  int rc;
  struct err e;
};

static void cfg_init(struct serve_config *c) {
  serve_config_default(c);
  c->python = "/usr/bin/python3";
}

static int load_with(struct loaded *L, const char *file, const char *fmt, int instances,
                     const json_t *regsig) {
  models_ready();
  char path[256];
  snprintf(path, sizeof path, MODELS "/%s", file);
  struct serve_load_opts o = {.path = path,
                              .format = fmt,
                              .registry_signature = regsig,
                              .instances = instances,
                              .cfg = &L->cfg,
                              .model_name = "m",
                              .model_version = file};
  memset(&L->sig, 0, sizeof L->sig);
  memset(&L->e, 0, sizeof L->e);
  L->m = NULL;
  L->rc = serve_backend_python.load(&o, &L->m, &L->sig, &L->e);
  return L->rc;
}

static void load_ok(struct loaded *L, const char *file, const char *fmt) {
  cfg_init(&L->cfg);
  load_with(L, file, fmt, 1, NULL);
  cr_assert_eq(L->rc, 0, "load %s (%s): %s", file, fmt, L->e.msg);
}

static void unload(struct loaded *L) {
  serve_backend_python.unload(L->m);
  serve_signature_fini(&L->sig);
  L->m = NULL;
}

/* rows x cols of X as a tensor (FP64, or FP32 when f32) */
static void x_tensor(struct serve_tensor *t, const json_t *X, int rows, int cols, bool f32) {
  int64_t shape[2] = {rows, cols};
  struct err e;
  cr_assert_eq(serve_tensor_alloc(t, "input", f32 ? SERVE_FP32 : SERVE_FP64, shape, 2, &e), 0);
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) {
      double v = json_real_value(json_array_get(json_array_get(X, (size_t)r), (size_t)c));
      if (f32)
        ((float *)t->data)[r * cols + c] = (float)v;
      else
        ((double *)t->data)[r * cols + c] = v;
    }
}

struct pred {
  int rc;
  struct err e;
  struct serve_tensor *out;
  int nout;
};

static void predict(struct loaded *L, int inst, const struct serve_tensor *in, int nin, bool proba,
                    bool margin, struct pred *p) {
  struct serve_predict_opts po = {.proba = proba, .margin = margin};
  memset(p, 0, sizeof *p);
  p->rc = serve_backend_python.predict(L->m, inst, in, nin, &po, &p->out, &p->nout, &p->e);
}

static void pred_fini(struct pred *p) {
  for (int i = 0; i < p->nout; i++) serve_tensor_fini(&p->out[i]);
  free(p->out);
  memset(p, 0, sizeof *p);
}

static bool close_rel(double a, double b) {
  return fabs(a - b) <= 1e-6 * fmax(fabs(a), fabs(b)) + 1e-12;
}

static double elem(const struct serve_tensor *t, size_t i) {
  switch (t->dtype) {
  case SERVE_FP64: return ((const double *)t->data)[i];
  case SERVE_FP32: return ((const float *)t->data)[i];
  case SERVE_INT64: return (double)((const int64_t *)t->data)[i];
  default: cr_assert_fail("unexpected dtype %s", serve_dtype_name(t->dtype));
  }
  return 0;
}

/* out (rows x width) equals the reference list (1-D when width is 0) */
static void expect_values(const struct serve_tensor *t, const json_t *ref, int rows, int width,
                          const char *what) {
  cr_assert_eq(t->shape[0], rows, "%s: %lld rows", what, (long long)t->shape[0]);
  cr_assert_eq(t->ndim, width ? 2 : 1, "%s: ndim %d", what, t->ndim);
  if (width) cr_assert_eq(t->shape[1], width, "%s: width %lld", what, (long long)t->shape[1]);
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < (width ? width : 1); c++) {
      const json_t *v = width ? json_array_get(json_array_get(ref, (size_t)r), (size_t)c)
                              : json_array_get(ref, (size_t)r);
      double want = json_number_value(v), got = elem(t, (size_t)(r * (width ? width : 1) + c));
      if (t->dtype == SERVE_INT64)
        cr_assert_eq((int64_t)got, json_integer_value(v), "%s[%d]: %g, want %g", what, r, got,
                     want);
      else
        cr_assert(close_rel(got, want), "%s[%d][%d]: %.17g, want %.17g", what, r, c, got, want);
    }
}

static json_t *describe(struct loaded *L) { return serve_backend_python.describe(L->m); }

static pid_t worker_pid(struct loaded *L, int i) {
  json_t *d = describe(L);
  pid_t pid = (pid_t)json_integer_value(
      json_object_get(json_array_get(json_object_get(d, "workers"), (size_t)i), "pid"));
  json_decref(d);
  return pid;
}

static int worker_restarts(struct loaded *L, int i) {
  json_t *d = describe(L);
  int n = (int)json_integer_value(
      json_object_get(json_array_get(json_object_get(d, "workers"), (size_t)i), "restarts"));
  json_decref(d);
  return n;
}

/* process state letter from /proc/<pid>/stat, 0 when gone; utime+stime too */
static char proc_state(pid_t pid, long long *ticks) {
  char p[64], buf[1024];
  snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(p, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *rp = strrchr(buf, ')');
  if (!rp) return 0;
  char st = 0;
  long long ut = 0, stt = 0;
  /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
  sscanf(rp + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld", &st, &ut, &stt);
  if (ticks) *ticks = ut + stt;
  return st;
}

/* Waits (bounded) until pid is a zombie or gone: a kill has landed. */
static void wait_dead(pid_t pid) {
  for (int i = 0; i < 2000; i++) {
    char s = proc_state(pid, NULL);
    if (s == 0 || s == 'Z' || s == 'X') return;
    usleep(5000);
  }
  cr_assert_fail("worker %d did not die", (int)pid);
}

static void expect_reaped(pid_t pid) {
  int st;
  cr_assert_eq(waitpid(pid, &st, WNOHANG), -1, "worker %d was not reaped", (int)pid);
  cr_assert_eq(errno, ECHILD);
  cr_assert_eq(kill(pid, 0), -1, "worker %d still exists", (int)pid);
}

/* ---- predictions equal the frameworks' own ---------------------------------- */

static void check_regression(const char *file, const char *fmt) {
  json_t *R = refs(), *X = json_object_get(R, "X");
  struct loaded L;
  load_ok(&L, file, fmt);
  cr_assert_eq(L.sig.ninputs, 1);
  cr_assert_str_eq(L.sig.inputs[0].name, "input");
  cr_assert_eq(L.sig.inputs[0].dtype, SERVE_FP64);
  cr_assert_eq(L.sig.inputs[0].ndim, 2);
  cr_assert_eq(L.sig.inputs[0].shape[0], -1);
  cr_assert_eq(L.sig.inputs[0].shape[1], 4);
  cr_assert_eq(L.sig.noutputs, 1);
  cr_assert_str_eq(L.sig.outputs[0].name, "predictions");
  cr_assert_eq(L.sig.outputs[0].dtype, SERVE_FP64);
  cr_assert_eq(L.sig.outputs[0].ndim, 1);
  cr_assert_null(L.sig.columns);
  cr_assert_null(L.sig.classes);
  cr_assert(L.sig.batched);
  cr_assert_not(L.sig.allow_nan);
  struct serve_tensor in;
  x_tensor(&in, X, 9, 4, false);
  struct pred p;
  predict(&L, 0, &in, 1, false, false, &p);
  cr_assert_eq(p.rc, 0, "%s", p.e.msg);
  cr_assert_eq(p.nout, 1);
  cr_assert_str_eq(p.out[0].name, "predictions");
  cr_assert_eq(p.out[0].dtype, SERVE_FP64);
  expect_values(&p.out[0], json_object_get(json_object_get(R, "lin"), "predict"), 9, 0, file);
  pred_fini(&p);
  /* a regressor has no probabilities: refused without a round trip */
  predict(&L, 0, &in, 1, true, false, &p);
  cr_assert_eq(p.rc, -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(p.e.msg, "no class probabilities"), "%s", p.e.msg);
  serve_tensor_fini(&in);
  unload(&L);
  json_decref(R);
}

Test(serve_python, linear_regression_pickle, .timeout = 120) {
  check_regression("lin.pkl", "pickle");
}
Test(serve_python, linear_regression_joblib, .timeout = 120) {
  check_regression("lin.joblib", "joblib");
}

static void check_binary(const char *file, const char *fmt) {
  json_t *R = refs(), *X = json_object_get(R, "X"), *ref = json_object_get(R, "bin");
  struct loaded L;
  load_ok(&L, file, fmt);
  cr_assert_eq(L.sig.outputs[0].dtype, SERVE_INT64, "labels are %s",
               serve_dtype_name(L.sig.outputs[0].dtype));
  cr_assert(json_equal(L.sig.classes, json_object_get(ref, "classes")));
  struct serve_tensor in;
  x_tensor(&in, X, 9, 4, false);
  struct pred p;
  predict(&L, 0, &in, 1, false, false, &p);
  cr_assert_eq(p.rc, 0, "%s", p.e.msg);
  cr_assert_eq(p.out[0].dtype, SERVE_INT64);
  expect_values(&p.out[0], json_object_get(ref, "predict"), 9, 0, "labels");
  pred_fini(&p);
  predict(&L, 0, &in, 1, true, false, &p);
  cr_assert_eq(p.rc, 0, "%s", p.e.msg);
  cr_assert_str_eq(p.out[0].name, "predictions");
  cr_assert_eq(p.out[0].dtype, SERVE_FP64);
  expect_values(&p.out[0], json_object_get(ref, "proba"), 9, 2, "proba");
  pred_fini(&p);
  predict(&L, 0, &in, 1, false, true, &p);
  cr_assert_eq(p.rc, 0, "%s", p.e.msg);
  expect_values(&p.out[0], json_object_get(ref, "margin"), 9, 0, "margin");
  pred_fini(&p);
  serve_tensor_fini(&in);
  unload(&L);
  json_decref(R);
}

Test(serve_python, logistic_binary_pickle, .timeout = 120) { check_binary("bin.pkl", "pickle"); }
Test(serve_python, logistic_binary_joblib, .timeout = 120) { check_binary("bin.joblib", "joblib"); }

static void check_multi(const char *file, const char *fmt) {
  json_t *R = refs(), *X = json_object_get(R, "X"), *ref = json_object_get(R, "multi");
  struct loaded L;
  load_ok(&L, file, fmt);
  cr_assert_eq(L.sig.outputs[0].dtype, SERVE_BYTES);
  cr_assert_eq(json_array_size(L.sig.classes), 3);
  cr_assert_str_eq(json_string_value(json_array_get(L.sig.classes, 0)), "setosa");
  cr_assert_str_eq(json_string_value(json_array_get(L.sig.classes, 2)), "virginica");
  struct serve_tensor in;
  x_tensor(&in, X, 9, 4, false);
  struct pred p;
  predict(&L, 0, &in, 1, false, false, &p);
  cr_assert_eq(p.rc, 0, "%s", p.e.msg);
  cr_assert_eq(p.out[0].dtype, SERVE_BYTES);
  cr_assert_eq(p.out[0].ndim, 1);
  cr_assert_eq(p.out[0].shape[0], 9);
  /* V2's binary BYTES form: u32 LE length, then the UTF-8 label */
  const unsigned char *b = p.out[0].data;
  size_t off = 0;
  for (int r = 0; r < 9; r++) {
    cr_assert(off + 4 <= p.out[0].nbytes);
    uint32_t l = (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 | (uint32_t)b[off + 2] << 16 |
                 (uint32_t)b[off + 3] << 24;
    off += 4;
    const char *want =
        json_string_value(json_array_get(json_object_get(ref, "predict"), (size_t)r));
    cr_assert_eq(l, strlen(want), "row %d", r);
    cr_assert_eq(memcmp(b + off, want, l), 0, "row %d: %.*s, want %s", r, (int)l, b + off, want);
    off += l;
  }
  cr_assert_eq(off, p.out[0].nbytes);
  pred_fini(&p);
  predict(&L, 0, &in, 1, true, false, &p);
  cr_assert_eq(p.rc, 0, "%s", p.e.msg);
  expect_values(&p.out[0], json_object_get(ref, "proba"), 9, 3, "proba");
  pred_fini(&p);
  serve_tensor_fini(&in);
  unload(&L);
  json_decref(R);
}

Test(serve_python, logistic_three_string_classes_pickle, .timeout = 120) {
  check_multi("multi.pkl", "pickle");
}
Test(serve_python, logistic_three_string_classes_joblib, .timeout = 120) {
  check_multi("multi.joblib", "joblib");
}

static void check_pipe(const char *name, const char *file, const char *fmt) {
  json_t *R = refs(), *X = json_object_get(R, "X"), *ref = json_object_get(R, name);
  struct loaded L;
  load_ok(&L, file, fmt);
  const json_t *cols = json_object_get(ref, "columns");
  if (json_is_array(cols)) {
    /* fit on a table: feature_names_in_ become the signature's columns */
    cr_assert_eq(L.sig.ncolumns, (int)json_array_size(cols));
    for (int i = 0; i < L.sig.ncolumns; i++)
      cr_assert_str_eq(L.sig.columns[i], json_string_value(json_array_get(cols, (size_t)i)));
  } else {
    cr_assert_null(L.sig.columns);
    cr_assert_eq(L.sig.ncolumns, 0);
  }
  cr_assert_eq(L.sig.inputs[0].shape[1], 4);
  cr_assert(json_equal(L.sig.classes, json_object_get(ref, "classes")));
  struct serve_tensor in;
  x_tensor(&in, X, 9, 4, false);
  struct pred p;
  predict(&L, 0, &in, 1, false, false, &p);
  cr_assert_eq(p.rc, 0, "%s", p.e.msg);
  expect_values(&p.out[0], json_object_get(ref, "predict"), 9, 0, "labels");
  pred_fini(&p);
  predict(&L, 0, &in, 1, true, false, &p);
  cr_assert_eq(p.rc, 0, "%s", p.e.msg);
  expect_values(&p.out[0], json_object_get(ref, "proba"), 9, 3, "proba");
  pred_fini(&p);
  serve_tensor_fini(&in);
  unload(&L);
  json_decref(R);
}

Test(serve_python, pipeline_scaler_pickle, .timeout = 120) {
  check_pipe("pipe", "pipe.pkl", "pickle");
}
Test(serve_python, pipeline_scaler_joblib, .timeout = 120) {
  check_pipe("pipe", "pipe.joblib", "joblib");
}
Test(serve_python, named_features_pickle, .timeout = 120) {
  check_pipe("named", "named.pkl", "pickle");
}
Test(serve_python, named_features_joblib, .timeout = 120) {
  check_pipe("named", "named.joblib", "joblib");
}

Test(serve_python, one_row_and_a_user_error, .timeout = 120) {
  json_t *R = refs(), *X = json_object_get(R, "X");
  struct loaded L;
  load_ok(&L, "lin.pkl", "pickle");
  pid_t pid = worker_pid(&L, 0);
  struct serve_tensor in;
  x_tensor(&in, X, 1, 3, false); /* 3 features for a 4-feature model */
  struct pred p;
  predict(&L, 0, &in, 1, false, false, &p);
  cr_assert_eq(p.rc, -ERR_INVALID_PARAMETER_VALUE, "rc %d: %s", p.rc, p.e.msg);
  cr_assert(strstr(p.e.msg, "ValueError") && strstr(p.e.msg, "features"), "%s", p.e.msg);
  pred_fini(&p);
  serve_tensor_fini(&in);
  /* the worker survived its model's exception */
  cr_assert_eq(worker_pid(&L, 0), pid);
  x_tensor(&in, X, 1, 4, false);
  predict(&L, 0, &in, 1, false, false, &p);
  cr_assert_eq(p.rc, 0, "%s", p.e.msg);
  cr_assert_eq(p.out[0].shape[0], 1);
  cr_assert(close_rel(
      ((double *)p.out[0].data)[0],
      json_real_value(json_array_get(json_object_get(json_object_get(R, "lin"), "predict"), 0))));
  pred_fini(&p);
  serve_tensor_fini(&in);
  cr_assert_eq(worker_restarts(&L, 0), 0);
  unload(&L);
  json_decref(R);
}

/* ---- TorchScript ----------------------------------------------------------- */

static bool torch_has_cuda(void) {
  return system("/usr/bin/python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() "
                "else 1)'") == 0;
}

static void check_mlp(const char *device) {
  json_t *R = refs(), *X = json_object_get(R, "X");
  struct loaded L;
  cfg_init(&L.cfg);
  L.cfg.device = device;
  L.cfg.worker_memory = 8ull << 30; /* the server's default --worker-memory holds torch */
  load_with(&L, "mlp.pt", "torchscript", 1, NULL);
  cr_assert_eq(L.rc, 0, "%s", L.e.msg);
  cr_assert_str_eq(L.sig.inputs[0].name, "input");
  cr_assert_eq(L.sig.inputs[0].dtype, SERVE_FP32);
  cr_assert_eq(L.sig.inputs[0].ndim, 2);
  cr_assert_eq(L.sig.inputs[0].shape[1], -1); /* TorchScript does not say */
  cr_assert_str_eq(L.sig.outputs[0].name, "predictions");
  cr_assert(L.sig.batched);
  json_t *d = describe(&L);
  const char *want = strcmp(device, "cuda") == 0 && torch_has_cuda() ? "cuda" : "cpu";
  cr_assert_str_eq(json_string_value(json_object_get(d, "device")), want);
  json_decref(d);
  struct serve_tensor in;
  x_tensor(&in, X, 9, 4, true);
  struct pred p;
  predict(&L, 0, &in, 1, false, false, &p);
  cr_assert_eq(p.rc, 0, "%s", p.e.msg);
  cr_assert_eq(p.nout, 1);
  cr_assert_eq(p.out[0].dtype, SERVE_FP32);
  expect_values(&p.out[0], json_object_get(json_object_get(R, "mlp"), "forward"), 9, 3, "forward");
  pred_fini(&p);
  predict(&L, 0, &in, 1, true, false, &p);
  cr_assert_eq(p.rc, -ERR_INVALID_PARAMETER_VALUE);
  pred_fini(&p);
  serve_tensor_fini(&in);
  /* a shape TorchScript refuses is the caller's error, and the worker lives on */
  pid_t pid = worker_pid(&L, 0);
  x_tensor(&in, X, 2, 3, true);
  predict(&L, 0, &in, 1, false, false, &p);
  cr_assert_eq(p.rc, -ERR_INVALID_PARAMETER_VALUE, "rc %d: %s", p.rc, p.e.msg);
  cr_assert(strstr(p.e.msg, "the model raised"), "%s", p.e.msg);
  pred_fini(&p);
  serve_tensor_fini(&in);
  cr_assert_eq(worker_pid(&L, 0), pid);
  unload(&L);
  json_decref(R);
}

Test(serve_python, torchscript_mlp, .timeout = 180) { check_mlp("cpu"); }
/* cuda where torch has it, else the worker says it runs on the CPU */
Test(serve_python, torchscript_cuda_when_available, .timeout = 180) { check_mlp("cuda"); }

Test(serve_python, torchscript_tuple_outputs, .timeout = 180) {
  json_t *R = refs(), *X = json_object_get(R, "X");
  struct loaded L;
  load_ok(&L, "two.pt", "torchscript");
  struct serve_tensor in;
  x_tensor(&in, X, 5, 4, true);
  struct pred p;
  predict(&L, 0, &in, 1, false, false, &p);
  cr_assert_eq(p.rc, 0, "%s", p.e.msg);
  cr_assert_eq(p.nout, 2);
  cr_assert_str_eq(p.out[0].name, "output_0");
  cr_assert_str_eq(p.out[1].name, "output_1");
  cr_assert_eq(p.out[0].ndim, 2);
  cr_assert_eq(p.out[1].ndim, 1);
  cr_assert_eq(p.out[1].shape[0], 5);
  const float *x = in.data, *a = p.out[0].data, *s = p.out[1].data;
  for (int r = 0; r < 5; r++) {
    float sum = 0;
    for (int c = 0; c < 4; c++) {
      cr_assert_eq(a[r * 4 + c], x[r * 4 + c] + 1.0f);
      sum += x[r * 4 + c];
    }
    cr_assert(fabsf(s[r] - sum) <= 1e-6f * fabsf(sum), "row %d: %g vs %g", r, s[r], sum);
  }
  pred_fini(&p);
  serve_tensor_fini(&in);
  unload(&L);
  json_decref(R);
}

Test(serve_python, torchscript_signature_from_the_registry, .timeout = 180) {
  json_t *R = refs(), *X = json_object_get(R, "X");
  /* MLflow's form, lists as JSON strings the way MLmodel writes them */
  json_t *reg = json_pack("{s:s, s:s}", "inputs",
                          "[{\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"float32\", "
                          "\"shape\": [-1, 4]}, \"name\": \"x\"}]",
                          "outputs",
                          "[{\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"float32\", "
                          "\"shape\": [-1, 3]}, \"name\": \"scores\"}]");
  struct loaded L;
  cfg_init(&L.cfg);
  load_with(&L, "mlp.pt", "torchscript", 1, reg);
  cr_assert_eq(L.rc, 0, "%s", L.e.msg);
  cr_assert_str_eq(L.sig.inputs[0].name, "x");
  cr_assert_eq(L.sig.inputs[0].shape[1], 4);
  cr_assert_str_eq(L.sig.outputs[0].name, "scores");
  cr_assert_eq(L.sig.outputs[0].ndim, 2);
  cr_assert_eq(L.sig.outputs[0].shape[1], 3);
  struct serve_tensor in;
  x_tensor(&in, X, 9, 4, true);
  struct pred p;
  predict(&L, 0, &in, 1, false, false, &p);
  cr_assert_eq(p.rc, 0, "%s", p.e.msg);
  cr_assert_str_eq(p.out[0].name, "scores");
  expect_values(&p.out[0], json_object_get(json_object_get(R, "mlp"), "forward"), 9, 3, "forward");
  pred_fini(&p);
  serve_tensor_fini(&in);
  unload(&L);
  json_decref(reg);
  json_decref(R);
}

Test(serve_python, columns_from_the_registry, .timeout = 120) {
  json_t *reg = json_pack("{s:[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}]}", "inputs", "type",
                          "double", "name", "a", "type", "double", "name", "b", "type", "double",
                          "name", "c", "type", "double", "name", "d");
  struct loaded L;
  cfg_init(&L.cfg);
  load_with(&L, "lin.pkl", "pickle", 1, reg);
  cr_assert_eq(L.rc, 0, "%s", L.e.msg);
  cr_assert_eq(L.sig.ncolumns, 4);
  cr_assert_str_eq(L.sig.columns[0], "a");
  cr_assert_str_eq(L.sig.columns[3], "d");
  unload(&L);
  json_decref(reg);
}

/* ---- load failures ----------------------------------------------------------- */

static void no_children_left(void) {
  int st;
  cr_assert_eq(waitpid(-1, &st, WNOHANG), -1, "a worker process was left behind");
  cr_assert_eq(errno, ECHILD);
}

Test(serve_python, load_failures_are_clear, .timeout = 120) {
  struct loaded L;
  cfg_init(&L.cfg);
  cr_assert_eq(load_with(&L, "nopredict.pkl", "pickle", 1, NULL), -ERR_INVALID_PARAMETER_VALUE,
               "%s", L.e.msg);
  cr_assert(
      strstr(L.e.msg,
             "the model could not be loaded: TypeError: the object (dict) has no predict method"),
      "%s", L.e.msg);
  cr_assert_null(L.m);
  cr_assert_eq(load_with(&L, "truncated.pkl", "pickle", 2, NULL), -ERR_INVALID_PARAMETER_VALUE,
               "%s", L.e.msg);
  cr_assert(strstr(L.e.msg, "the model could not be loaded: "), "%s", L.e.msg);
  cr_assert(strstr(L.e.msg, "Error"), "%s", L.e.msg);
  cr_assert_eq(load_with(&L, "missing.pkl", "joblib", 1, NULL), -ERR_INVALID_PARAMETER_VALUE, "%s",
               L.e.msg);
  cr_assert(strstr(L.e.msg, "FileNotFoundError"), "%s", L.e.msg);
  cr_assert_eq(load_with(&L, "lin.pkl", "onnx", 1, NULL), -ERR_INVALID_PARAMETER_VALUE);
  L.cfg.python = "/nonexistent/python3";
  cr_assert_eq(load_with(&L, "lin.pkl", "pickle", 1, NULL), -ERR_INVALID_STATE);
  cr_assert(strstr(L.e.msg, "/nonexistent/python3"), "%s", L.e.msg);
  /* an executable that is no Python interpreter */
  L.cfg.python = "/bin/false";
  cr_assert_eq(load_with(&L, "lin.pkl", "pickle", 1, NULL), -ERR_INVALID_PARAMETER_VALUE, "%s",
               L.e.msg);
  cr_assert(strstr(L.e.msg, "exited with status 1"), "%s", L.e.msg);
  /* the address-space limit holds: 64 MiB is too little to import numpy */
  cfg_init(&L.cfg);
  L.cfg.worker_memory = 64ull << 20;
  cr_assert_eq(load_with(&L, "lin.pkl", "pickle", 1, NULL), -ERR_INVALID_PARAMETER_VALUE, "%s",
               L.e.msg);
  cr_assert(strstr(L.e.msg, "the model could not be loaded"), "%s", L.e.msg);
  no_children_left();
}

/* ---- isolation ------------------------------------------------------------------ */

Test(serve_python, worker_is_isolated, .timeout = 120) {
  setenv("KILN_MASTER_KEY", "do-not-leak", 1);
  setenv("PYTHONPATH", "/tmp/evil", 1);
  struct loaded L;
  cfg_init(&L.cfg);
  L.cfg.worker_memory = 8ull << 30;
  L.cfg.worker_cpu_s = 3600;
  load_with(&L, "bin.pkl", "pickle", 1, NULL);
  cr_assert_eq(L.rc, 0, "%s", L.e.msg);
  pid_t pid = worker_pid(&L, 0);
  cr_assert_gt(pid, 0);

  /* exactly the scrubbed environment */
  char p[128];
  snprintf(p, sizeof p, "/proc/%d/environ", (int)pid);
  size_t n = 0;
  char *env = slurp(p, &n);
  cr_assert_not_null(env);
  static const char *const allowed[] = {"PATH=/usr/bin:/bin",       "LANG=C.UTF-8",
                                        "HOME=/nonexistent",        "OMP_NUM_THREADS=1",
                                        "OPENBLAS_NUM_THREADS=1",   "MKL_NUM_THREADS=1",
                                        "PYTHONDONTWRITEBYTECODE=1"};
  int seen = 0;
  for (size_t off = 0; off < n; off += strlen(env + off) + 1) {
    bool ok = false;
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
      ok = ok || strcmp(env + off, allowed[i]) == 0;
    cr_assert(ok, "unexpected variable in the worker's environment: %s", env + off);
    seen++;
  }
  cr_assert_eq(seen, 7);
  free(env);

  /* another network namespace */
  char mine[128] = "", theirs[128] = "";
  snprintf(p, sizeof p, "/proc/%d/ns/net", (int)pid);
  cr_assert_gt(readlink("/proc/self/ns/net", mine, sizeof mine - 1), 0);
  cr_assert_gt(readlink(p, theirs, sizeof theirs - 1), 0);
  cr_assert_str_neq(mine, theirs);
  json_t *d = describe(&L);
  cr_assert(json_is_true(json_object_get(d, "network_isolated")));
  cr_assert_str_eq(json_string_value(json_object_get(d, "device")), "cpu");
  json_decref(d);

  /* resource limits, its own process group, no new privileges */
  snprintf(p, sizeof p, "/proc/%d/limits", (int)pid);
  char *lim = slurp(p, NULL);
  cr_assert_not_null(lim);
  cr_assert(strstr(lim, "Max address space         8589934592           8589934592"), "%s", lim);
  cr_assert(strstr(lim, "Max cpu time              3600                 3605"), "%s", lim);
  cr_assert(strstr(lim, "Max open files            64                   64"), "%s", lim);
  cr_assert(strstr(lim, "Max core file size        0                    0"), "%s", lim);
  free(lim);
  cr_assert_eq(getpgid(pid), pid);
  snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
  char *status = slurp(p, NULL);
  cr_assert(strstr(status, "NoNewPrivs:\t1"), "%s", status);
  free(status);

  /* only the socket (3) and /dev/null on 0-2 are open */
  snprintf(p, sizeof p, "/proc/%d/fd", (int)pid);
  DIR *dir = opendir(p);
  cr_assert_not_null(dir);
  struct dirent *de;
  int fds = 0;
  while ((de = readdir(dir))) {
    if (de->d_name[0] == '.') continue;
    char link[600], target[256] = "";
    snprintf(link, sizeof link, "%s/%s", p, de->d_name);
    ssize_t k = readlink(link, target, sizeof target - 1);
    cr_assert_gt(k, 0);
    int fd = (int)strtol(de->d_name, NULL, 10);
    if (fd < 3)
      cr_assert_str_eq(target, "/dev/null", "fd %d is %s", fd, target);
    else if (fd == 3)
      cr_assert(strncmp(target, "socket:", 7) == 0, "fd 3 is %s", target);
    else
      cr_assert_fail("the worker holds fd %d (%s)", fd, target);
    fds++;
  }
  closedir(dir);
  cr_assert_eq(fds, 4);

  /* memory is the worker's resident set */
  uint64_t mem = serve_backend_python.memory(L.m);
  cr_assert_gt(mem, 10u << 20, "%llu", (unsigned long long)mem);
  cr_assert_lt(mem, 2ull << 30, "%llu", (unsigned long long)mem);

  unload(&L);
  expect_reaped(pid);
  no_children_left();
}

/* ---- crashes, timeouts, degraded ---------------------------------------------- */

struct bg {
  struct loaded *L;
  struct serve_tensor *in;
  struct pred p;
};

static void *bg_predict(void *arg) {
  struct bg *b = arg;
  predict(b->L, 0, b->in, 1, false, false, &b->p);
  return NULL;
}

/* The slow model spins when x[0][0] > 100; else it doubles x. */
static void slow_input(struct serve_tensor *t, bool spin) {
  int64_t shape[2] = {2, 2};
  struct err e;
  cr_assert_eq(serve_tensor_alloc(t, "input", SERVE_FP32, shape, 2, &e), 0);
  float *f = t->data;
  f[0] = spin ? 1000.0f : 1.5f;
  f[1] = 2.0f;
  f[2] = -3.0f;
  f[3] = 0.25f;
}

static void expect_doubled(struct loaded *L) {
  struct serve_tensor in;
  slow_input(&in, false);
  struct pred p;
  predict(L, 0, &in, 1, false, false, &p);
  cr_assert_eq(p.rc, 0, "%s", p.e.msg);
  const float *x = in.data, *y = p.out[0].data;
  for (int i = 0; i < 4; i++) cr_assert_eq(y[i], 2.0f * x[i]);
  pred_fini(&p);
  serve_tensor_fini(&in);
}

static double restarts_metric(const char *version) {
  static const char *const labels[] = {"model", "version"};
  struct metric_family *f =
      metrics_family("kiln_serve_worker_restarts_total", "x", METRIC_COUNTER, 2, labels, NULL, 0);
  const char *values[] = {"m", version};
  return metrics_value(metrics_series(f, values));
}

Test(serve_python, worker_killed_mid_request_is_restarted, .timeout = 180) {
  struct loaded L;
  load_ok(&L, "slow.pt", "torchscript");
  pid_t pid = worker_pid(&L, 0);
  long long t0 = 0, t = 0;
  cr_assert(proc_state(pid, &t0));
  struct serve_tensor in;
  slow_input(&in, true);
  struct bg b = {.L = &L, .in = &in};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, bg_predict, &b), 0);
  /* the worker burns CPU only once it is inside forward() */
  for (int i = 0; i < 6000 && proc_state(pid, &t) && t - t0 < 10; i++) usleep(5000);
  cr_assert_geq(t - t0, 10, "the worker never started the request");
  cr_assert_eq(kill(pid, SIGKILL), 0);
  pthread_join(th, NULL);
  cr_assert_eq(b.p.rc, -ERR_UNAVAILABLE, "rc %d: %s", b.p.rc, b.p.e.msg);
  cr_assert_str_eq(
      b.p.e.msg,
      "the model's worker process was killed by signal 9 (SIGKILL); it is being restarted");
  serve_tensor_fini(&in);
  expect_reaped(pid);
  /* its successor was ready before the error came back */
  json_t *d = describe(&L);
  json_t *w0 = json_array_get(json_object_get(d, "workers"), 0);
  cr_assert(json_integer_value(json_object_get(w0, "pid")) > 0 &&
            json_integer_value(json_object_get(w0, "pid")) != pid);
  cr_assert_str_eq(json_string_value(json_object_get(w0, "state")), "ready");
  cr_assert_eq(json_integer_value(json_object_get(w0, "restarts")), 1);
  json_decref(d);
  /* and the next request runs on it */
  expect_doubled(&L);
  pid_t pid2 = worker_pid(&L, 0);
  cr_assert_gt(pid2, 0);
  cr_assert_neq(pid2, pid);
  cr_assert_eq(worker_restarts(&L, 0), 1);
  cr_assert_eq(restarts_metric("slow.pt"), 1.0);
  cr_assert_not(serve_backend_python.degraded(L.m, NULL, 0));
  unload(&L);
  expect_reaped(pid2);
  no_children_left();
}

Test(serve_python, hung_worker_times_out, .timeout = 180) {
  struct loaded L;
  cfg_init(&L.cfg);
  L.cfg.worker_timeout_ms = 1500;
  load_with(&L, "slow.pt", "torchscript", 1, NULL);
  cr_assert_eq(L.rc, 0, "%s", L.e.msg);
  pid_t pid = worker_pid(&L, 0);
  struct serve_tensor in;
  slow_input(&in, true);
  struct pred p;
  predict(&L, 0, &in, 1, false, false, &p);
  cr_assert_eq(p.rc, -ERR_UNAVAILABLE, "rc %d: %s", p.rc, p.e.msg);
  cr_assert_str_eq(
      p.e.msg,
      "the model's worker process did not answer within 1500 ms and was killed; it is being "
      "restarted");
  serve_tensor_fini(&in);
  expect_reaped(pid);
  expect_doubled(&L);
  cr_assert_eq(worker_restarts(&L, 0), 1);
  unload(&L);
  no_children_left();
}

Test(serve_python, three_crashes_make_it_degraded, .timeout = 180) {
  json_t *R = refs(), *X = json_object_get(R, "X");
  struct loaded L;
  load_ok(&L, "lin.joblib", "joblib");
  struct serve_tensor in;
  x_tensor(&in, X, 3, 4, false);
  struct pred p;
  for (int k = 1; k <= 3; k++) {
    pid_t pid = worker_pid(&L, 0);
    cr_assert_gt(pid, 0);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    wait_dead(pid);
    predict(&L, 0, &in, 1, false, false, &p);
    if (k < 3) {
      /* a worker that died while idle is replaced before the request */
      cr_assert_eq(p.rc, 0, "crash %d: %s", k, p.e.msg);
      cr_assert_not(serve_backend_python.degraded(L.m, NULL, 0));
      cr_assert_eq(worker_restarts(&L, 0), k);
    } else {
      cr_assert_eq(p.rc, -ERR_UNAVAILABLE, "rc %d: %s", p.rc, p.e.msg);
      cr_assert(
          strstr(p.e.msg, "the model is degraded: its worker processes failed 3 times within 60 s"),
          "%s", p.e.msg);
    }
    expect_reaped(pid);
    pred_fini(&p);
  }
  char why[256] = "";
  cr_assert(serve_backend_python.degraded(L.m, why, sizeof why));
  cr_assert_str_eq(
      why,
      "its worker processes failed 3 times within 60 s (last: the worker was killed by signal 9 "
      "(SIGKILL))");
  /* and it stays so: requests fail fast, no worker is started */
  predict(&L, 0, &in, 1, false, false, &p);
  cr_assert_eq(p.rc, -ERR_UNAVAILABLE);
  pred_fini(&p);
  json_t *d = describe(&L);
  cr_assert(json_is_true(json_object_get(d, "degraded")));
  json_t *w0 = json_array_get(json_object_get(d, "workers"), 0);
  cr_assert(json_is_null(json_object_get(w0, "pid")));
  cr_assert_str_eq(json_string_value(json_object_get(w0, "state")), "stopped");
  json_decref(d);
  cr_assert_eq(serve_backend_python.memory(L.m), 0);
  serve_tensor_fini(&in);
  unload(&L);
  no_children_left();
  json_decref(R);
}

/* ---- several instances -------------------------------------------------------- */

struct par {
  struct loaded *L;
  int inst;
  const json_t *X, *ref;
  int fails;
};

static void *par_run(void *arg) {
  struct par *a = arg;
  struct serve_tensor in;
  x_tensor(&in, a->X, 9, 4, false);
  for (int k = 0; k < 20; k++) {
    struct pred p;
    predict(a->L, a->inst, &in, 1, true, false, &p);
    if (p.rc != 0 || p.nout != 1 || p.out[0].shape[0] != 9 || p.out[0].shape[1] != 3) a->fails++;
    for (int r = 0; p.rc == 0 && r < 9; r++)
      for (int c = 0; c < 3; c++)
        if (!close_rel(
                ((double *)p.out[0].data)[r * 3 + c],
                json_real_value(json_array_get(json_array_get(a->ref, (size_t)r), (size_t)c))))
          a->fails++;
    pred_fini(&p);
  }
  serve_tensor_fini(&in);
  return NULL;
}

Test(serve_python, instances_are_separate_workers, .timeout = 180) {
  json_t *R = refs();
  struct loaded L;
  cfg_init(&L.cfg);
  L.cfg.python_workers = 2; /* instances 0: the server's --python-workers */
  load_with(&L, "multi.pkl", "pickle", 0, NULL);
  cr_assert_eq(L.rc, 0, "%s", L.e.msg);
  pid_t a = worker_pid(&L, 0), b = worker_pid(&L, 1);
  cr_assert_gt(a, 0);
  cr_assert_gt(b, 0);
  cr_assert_neq(a, b);
  struct par pa[2];
  pthread_t th[2];
  for (int i = 0; i < 2; i++) {
    pa[i] = (struct par){&L, i, json_object_get(R, "X"),
                         json_object_get(json_object_get(R, "multi"), "proba"), 0};
    cr_assert_eq(pthread_create(&th[i], NULL, par_run, &pa[i]), 0);
  }
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  cr_assert_eq(pa[0].fails + pa[1].fails, 0);
  struct pred p;
  predict(&L, 2, NULL, 0, false, false, &p);
  cr_assert_eq(p.rc, -ERR_INTERNAL);
  uint64_t mem = serve_backend_python.memory(L.m);
  cr_assert_gt(mem, 20u << 20, "%llu", (unsigned long long)mem);
  unload(&L);
  expect_reaped(a);
  expect_reaped(b);
  no_children_left();
  json_decref(R);
}

/* ---- the CPU-time limit ---------------------------------------------------------- */

Test(serve_python, cpu_limit_kills_a_spinning_worker, .timeout = 180) {
  struct loaded L;
  cfg_init(&L.cfg);
  L.cfg.worker_cpu_s = 1; /* SIGXCPU at 1 s, SIGKILL at 6 s of CPU */
  load_with(&L, "slow.pt", "torchscript", 1, NULL);
  cr_assert_eq(L.rc, 0, "%s", L.e.msg);
  pid_t pid = worker_pid(&L, 0);
  struct serve_tensor in;
  slow_input(&in, true);
  struct pred p;
  predict(&L, 0, &in, 1, false, false, &p);
  cr_assert_eq(p.rc, -ERR_UNAVAILABLE, "rc %d: %s", p.rc, p.e.msg);
  cr_assert_str_eq(
      p.e.msg,
      "the model's worker process was killed by signal 9 (SIGKILL) at its CPU-time limit (1 s); "
      "it is being restarted");
  serve_tensor_fini(&in);
  expect_reaped(pid);
  unload(&L);
  no_children_left();
}

Test(serve_python, cpu_limit_retires_an_idle_worker_between_requests, .timeout = 300) {
  json_t *R = refs(), *X = json_object_get(R, "X");
  struct loaded L;
  cfg_init(&L.cfg);
  L.cfg.worker_cpu_s = 2;
  load_with(&L, "lin.pkl", "pickle", 1, NULL);
  cr_assert_eq(L.rc, 0, "%s", L.e.msg);
  /* big batches until the worker has used its 2 s; every request must
   * succeed across the change of worker, and none counts as a crash */
  int rows = 200000;
  struct serve_tensor in;
  int64_t shape[2] = {rows, 4};
  struct err e;
  cr_assert_eq(serve_tensor_alloc(&in, "input", SERVE_FP64, shape, 2, &e), 0);
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < 4; c++)
      ((double *)in.data)[r * 4 + c] =
          json_real_value(json_array_get(json_array_get(X, (size_t)(r % 9)), (size_t)c));
  const json_t *ref = json_object_get(json_object_get(R, "lin"), "predict");
  pid_t first = worker_pid(&L, 0);
  int k = 0;
  for (; k < 20000 && worker_restarts(&L, 0) < 1; k++) {
    struct pred p;
    predict(&L, 0, &in, 1, false, false, &p);
    cr_assert_eq(p.rc, 0, "request %d: %s", k, p.e.msg);
    cr_assert_eq(p.out[0].shape[0], rows);
    for (int r = 0; r < rows; r += 9973)
      cr_assert(close_rel(((double *)p.out[0].data)[r],
                          json_real_value(json_array_get(ref, (size_t)(r % 9)))));
    pred_fini(&p);
  }
  cr_assert_eq(worker_restarts(&L, 0), 1, "no retirement after %d requests", k);
  cr_assert_neq(worker_pid(&L, 0), first);
  cr_assert_not(serve_backend_python.degraded(L.m, NULL, 0));
  serve_tensor_fini(&in);
  unload(&L);
  expect_reaped(first);
  no_children_left();
  json_decref(R);
}

/* ---- the worker script ------------------------------------------------------------ */

extern const char serve_worker_py[];

Test(serve_python, embedded_script_is_the_source_and_a_file_works_too, .timeout = 120) {
  size_t n = 0;
  char *src = slurp("src/serve/backends/kiln_worker.py", &n);
  cr_assert_not_null(src);
  cr_assert_eq(strlen(serve_worker_py), n, "build/gen/worker_py.c is stale");
  cr_assert_eq(memcmp(serve_worker_py, src, n), 0, "build/gen/worker_py.c is stale");
  free(src);
  struct loaded L;
  cfg_init(&L.cfg);
  L.cfg.worker_script = "src/serve/backends/kiln_worker.py";
  cr_assert_eq(load_with(&L, "bin.pkl", "pickle", 1, NULL), 0, "%s", L.e.msg);
  cr_assert_eq(L.sig.outputs[0].dtype, SERVE_INT64);
  unload(&L);
  L.cfg.worker_script = "/nonexistent/kiln_worker.py";
  cr_assert_eq(load_with(&L, "bin.pkl", "pickle", 1, NULL), -ERR_INVALID_STATE);
  no_children_left();
}
