/* serve/backends/xgboost: XGBoost models (JSON, UBJSON, legacy binary) through
 * libxgboost's C API — in-place prediction from the caller's dense FP32 rows,
 * NaN as missing, transformed output, margins and class probabilities. */
#include "serve/serve.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xgboost/c_api.h>

/* A model file bigger than this is refused before reading it into memory. */
#define XGB_FILE_MAX (4ull << 30)
#define XGB_MAX_INSTANCES 256
#define XGB_MAX_OUTPUTS 1000000 /* classes or targets */

enum xgb_kind {
  XGB_REGRESSION, /* anything without class probabilities */
  XGB_LOGISTIC,   /* binary:logistic: output is P(class 1) */
  XGB_LOGITRAW,   /* binary:logitraw: output is the margin */
  XGB_HINGE,      /* binary:hinge: 0/1 labels, no probabilities */
  XGB_SOFTPROB,   /* multi:softprob: [n, k] probabilities */
  XGB_SOFTMAX,    /* multi:softmax: labels; probabilities from the margins */
};

struct xgb_model {
  int nboosters;
  BoosterHandle *boosters; /* one per instance: a booster keeps per-call state */
  DMatrixHandle *proxies;  /* one per instance: reusing it saves ~18 us a call */
  enum xgb_kind kind;
  /* gblinear has no in-place prediction, and dart's sums its trees in
   * another order than predict(DMatrix) (1e-5 apart near zero): their rows
   * go through a DMatrix, as Python's Booster.predict does */
  bool via_dmatrix;
  char objective[64];
  int64_t num_feature, num_class, num_target;
  double base_score;
  int64_t out_cols;    /* columns of the default output (0: one value per row) */
  int64_t margin_cols; /* columns of the margin output (0: one per row) */
  uint64_t file_bytes;
  int threads;
  json_t *feature_types; /* ["q", "c", ...] when the model states them */
};

/* ---- log and error routing ------------------------------------------------
 * libxgboost keeps its log callback per thread (a thread-local registry in
 * 1.7), so every thread that calls into it hooks itself first; otherwise
 * its warnings land on stderr as raw text between Kiln's JSON lines. */

/* libxgboost's text reads "[12:00:00] WARNING: /src/x.cc:123: \nmessage
 * \nStack trace: ..."; readers need the message. */
static const char *xgb_strip(const char *m, size_t *len) {
  const char *p = m;
  if (*p == '[') {
    const char *rb = strchr(p, ']');
    if (rb) p = rb + 1;
  }
  while (*p == ' ') p++;
  for (int part = 0; part < 2; part++) { /* "WARNING: ", then "file.cc:123: " */
    const char *colon = strstr(p, ": ");
    size_t k = colon ? (size_t)(colon - p) : 0;
    if (!colon || memchr(p, ' ', k) || memchr(p, '\n', k)) break;
    bool level = k > 0 && strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == k;
    if (!level && !memchr(p, ':', k)) break;
    p = colon + 2;
  }
  while (*p == ' ' || *p == '\n' || *p == '\r') p++;
  const char *end = strstr(p, "Stack trace");
  size_t n = end ? (size_t)(end - p) : strlen(p);
  while (n && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' ')) n--;
  *len = n;
  return p;
}

static void xgb_log_cb(const char *msg) {
  if (!msg) return;
  size_t n;
  const char *p = xgb_strip(msg, &n);
  log_msg(LOG_WARN, "serve.xgboost", "%.*s", (int)(n > 900 ? 900 : n), p);
}

static _Thread_local bool xgb_log_hooked;
static void xgb_hook_log(void) {
  if (xgb_log_hooked) return;
  XGBRegisterLogCallback(xgb_log_cb);
  xgb_log_hooked = true;
}

/* what failed, then the first line of libxgboost's reason */
static int xgb_fail(struct err *e, enum err_code code, const char *what) {
  const char *m = XGBGetLastError();
  size_t n;
  const char *p = xgb_strip(m && *m ? m : "unknown error", &n);
  n = strcspn(p, "\n") < n ? strcspn(p, "\n") : n;
  while (n && p[n - 1] == ' ') n--;
  return err_set(e, code, "%s: %.*s", what, (int)(n > 200 ? 200 : n), n ? p : "unknown error");
}

/* ---- loading -------------------------------------------------------------- */

/* The legacy binary layout: optional "binf", 136 bytes of learner parameters,
 * then the objective and booster names as u64-length strings. Checked before
 * libxgboost sees the bytes, since its reader trusts those lengths (a random
 * file would have it allocate whatever the bytes say). */
#define XGB_LEGACY_PARAM 136
static bool xgb_legacy_str(const uint8_t *p, size_t n, size_t *pos, size_t *len) {
  if (n - *pos < 8) return false;
  uint64_t k = 0;
  for (int i = 7; i >= 0; i--) k = k << 8 | p[*pos + (size_t)i];
  *pos += 8;
  if (k == 0 || k > 64 || k > n - *pos) return false;
  for (size_t i = 0; i < k; i++)
    if (p[*pos + i] < 0x20 || p[*pos + i] >= 0x7f) return false;
  *len = (size_t)k;
  *pos += (size_t)k;
  return true;
}

static bool xgb_legacy_ok(const uint8_t *p, size_t n) {
  size_t pos = n >= 4 && memcmp(p, "binf", 4) == 0 ? 4 : 0;
  if (n < pos + XGB_LEGACY_PARAM + 16) return false;
  pos += XGB_LEGACY_PARAM;
  size_t ol, gl;
  if (!xgb_legacy_str(p, n, &pos, &ol) || !xgb_legacy_str(p, n, &pos, &gl)) return false;
  const char *g = (const char *)p + pos - gl;
  return (gl == 6 && memcmp(g, "gbtree", 6) == 0) || (gl == 8 && memcmp(g, "gblinear", 8) == 0) ||
         (gl == 4 && memcmp(g, "dart", 4) == 0);
}

static int xgb_read_file(const char *path, uint8_t **out, size_t *n, struct err *e) {
  FILE *f = fopen(path, "rb");
  if (!f) return err_set(e, ERR_IO, "cannot open the model file: %s", strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return err_set(e, ERR_IO, "the model file is not a regular file");
  }
  if ((uint64_t)st.st_size > XGB_FILE_MAX) {
    fclose(f);
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "the model file is too large (%lld bytes; at most %llu)", (long long)st.st_size,
                   (unsigned long long)XGB_FILE_MAX);
  }
  size_t sz = (size_t)st.st_size;
  uint8_t *p = malloc(sz ? sz : 1);
  if (!p) {
    fclose(f);
    return err_set(e, ERR_NO_MEMORY, "out of memory reading a %zu-byte model", sz);
  }
  size_t got = sz ? fread(p, 1, sz, f) : 0;
  fclose(f);
  if (got != sz) {
    free(p);
    return err_set(e, ERR_IO, "short read of the model file");
  }
  *out = p;
  *n = sz;
  return 0;
}

static json_t *xgb_cfg_get(json_t *root, const char *a, const char *b, const char *c) {
  json_t *v = json_object_get(root, a);
  if (b) v = json_object_get(v, b);
  if (c) v = json_object_get(v, c);
  return v;
}

/* learner_model_param values are strings ("3", "5E-1"). */
static int64_t xgb_cfg_int(json_t *v, int64_t dflt) {
  int64_t i;
  if (json_is_integer(v)) return json_integer_value(v);
  if (json_is_string(v) && str_to_i64(json_string_value(v), &i) == 0) return i;
  return dflt;
}

static double xgb_cfg_double(json_t *v, double dflt) {
  if (json_is_number(v)) return json_number_value(v);
  if (!json_is_string(v)) return dflt;
  const char *s = json_string_value(v);
  char *end;
  double d = strtod(s, &end);
  return end != s && *end == 0 ? d : dflt;
}

/* Objective, classes, targets and base_score from the learner's saved
 * configuration (the only place libxgboost states them). */
static int xgb_read_config(struct xgb_model *m, BoosterHandle h, struct err *e) {
  bst_ulong len = 0;
  const char *cfg = NULL;
  if (XGBoosterSaveJsonConfig(h, &len, &cfg) != 0)
    return xgb_fail(e, ERR_INVALID_PARAMETER_VALUE, "bad XGBoost model");
  struct err je;
  json_t *root = json_parse(cfg, (size_t)len, &je);
  if (!root) return err_set(e, ERR_INTERNAL, "libxgboost's configuration is not JSON: %s", je.msg);
  const char *obj = json_string_value(xgb_cfg_get(root, "learner", "objective", "name"));
  const char *gbm = json_string_value(xgb_cfg_get(root, "learner", "gradient_booster", "name"));
  m->via_dmatrix = str_eq(gbm, "gblinear") || str_eq(gbm, "dart");
  str_copy(m->objective, sizeof m->objective, obj ? obj : "");
  json_t *mp = xgb_cfg_get(root, "learner", "learner_model_param", NULL);
  m->num_class = xgb_cfg_int(json_object_get(mp, "num_class"), 0);
  m->num_target = xgb_cfg_int(json_object_get(mp, "num_target"), 1);
  m->base_score = xgb_cfg_double(json_object_get(mp, "base_score"), 0.5);
  json_decref(root);
  if (!obj)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "bad XGBoost model: its configuration names no objective");
  if (m->num_class < 0 || m->num_class > XGB_MAX_OUTPUTS || m->num_target < 1 ||
      m->num_target > XGB_MAX_OUTPUTS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "bad XGBoost model: num_class %lld, num_target %lld", (long long)m->num_class,
                   (long long)m->num_target);

  bool multi = str_has_prefix(m->objective, "multi:");
  if (multi && m->num_class < 2)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "bad XGBoost model: %s with num_class %lld",
                   m->objective, (long long)m->num_class);
  if (str_eq(m->objective, "binary:logistic"))
    m->kind = XGB_LOGISTIC;
  else if (str_eq(m->objective, "binary:logitraw"))
    m->kind = XGB_LOGITRAW;
  else if (str_eq(m->objective, "binary:hinge"))
    m->kind = XGB_HINGE;
  else if (str_eq(m->objective, "multi:softprob"))
    m->kind = XGB_SOFTPROB;
  else if (str_eq(m->objective, "multi:softmax"))
    m->kind = XGB_SOFTMAX;
  else
    m->kind = XGB_REGRESSION;
  if (multi) {
    m->margin_cols = m->num_class;
    m->out_cols = m->kind == XGB_SOFTPROB ? m->num_class : 0;
  } else if (m->num_target > 1) {
    m->margin_cols = m->out_cols = m->num_target;
  } else {
    m->margin_cols = m->out_cols = 0;
  }
  return 0;
}

/* Column names: the booster's own feature names, else the registry's
 * signature when it names exactly num_feature columns (MLflow column specs
 * [{"name","type"}...], or one tensor input carrying "feature_names"). */
static int xgb_columns(const struct serve_load_opts *o, BoosterHandle h, int64_t nf,
                       struct serve_signature *sig, json_t **types_out, struct err *e) {
  bst_ulong n = 0;
  const char **names = NULL;
  if (XGBoosterGetStrFeatureInfo(h, "feature_type", &n, &names) == 0 && n > 0 && (int64_t)n == nf) {
    json_t *t = json_array();
    for (bst_ulong i = 0; t && i < n; i++)
      json_array_append_new(t, json_string(names[i] ? names[i] : ""));
    *types_out = t;
  }
  n = 0;
  names = NULL;
  json_t *reg = NULL;
  if (XGBoosterGetStrFeatureInfo(h, "feature_name", &n, &names) != 0 || (int64_t)n != nf) {
    n = 0;
    json_t *in = o->registry_signature ? json_object_get(o->registry_signature, "inputs") : NULL;
    json_t *fn =
        json_array_size(in) == 1 ? json_object_get(json_array_get(in, 0), "feature_names") : NULL;
    if (json_is_array(fn) && (int64_t)json_array_size(fn) == nf) {
      reg = fn;
    } else if (json_is_array(in) && (int64_t)json_array_size(in) == nf) {
      reg = in;
      size_t i;
      json_t *c;
      json_array_foreach(in, i, c) {
        /* MLflow column specs always carry a type; tensor specs do not count */
        const char *ty = json_string_value(json_object_get(c, "type"));
        if (!json_is_string(json_object_get(c, "name")) || !ty || str_eq(ty, "tensor")) reg = NULL;
      }
    }
    if (!reg) return 0;
  }
  if (nf == 0) return 0;
  sig->columns = calloc((size_t)nf, sizeof *sig->columns);
  if (!sig->columns) return err_set(e, ERR_NO_MEMORY, "out of memory");
  sig->ncolumns = (int)nf;
  for (int64_t i = 0; i < nf; i++) {
    const char *s;
    if (reg) {
      json_t *c = json_array_get(reg, (size_t)i);
      s = json_is_string(c) ? json_string_value(c) : json_string_value(json_object_get(c, "name"));
    } else {
      s = names[i];
    }
    sig->columns[i] = strdup(s ? s : "");
    if (!sig->columns[i]) return err_set(e, ERR_NO_MEMORY, "out of memory");
  }
  return 0;
}

static void xgb_free(struct xgb_model *m) {
  if (!m) return;
  for (int i = 0; i < m->nboosters; i++) {
    if (m->boosters[i]) XGBoosterFree(m->boosters[i]);
    if (m->proxies[i]) XGDMatrixFree(m->proxies[i]);
  }
  free(m->boosters);
  free(m->proxies);
  json_decref(m->feature_types);
  free(m);
}

static int xgb_signature(const struct serve_load_opts *o, struct xgb_model *m,
                         struct serve_signature *sig, struct err *e) {
  memset(sig, 0, sizeof *sig);
  sig->inputs = calloc(1, sizeof *sig->inputs);
  sig->outputs = calloc(1, sizeof *sig->outputs);
  if (!sig->inputs || !sig->outputs) return err_set(e, ERR_NO_MEMORY, "out of memory");
  sig->ninputs = sig->noutputs = 1;
  struct serve_tensor_spec *in = &sig->inputs[0], *out = &sig->outputs[0];
  str_copy(in->name, sizeof in->name, "input");
  in->dtype = SERVE_FP32;
  in->ndim = 2;
  in->shape[0] = -1;
  in->shape[1] = m->num_feature;
  str_copy(out->name, sizeof out->name, "predictions");
  out->dtype = SERVE_FP32;
  out->ndim = m->out_cols ? 2 : 1;
  out->shape[0] = -1;
  out->shape[1] = m->out_cols;
  sig->batched = true;
  sig->allow_nan = true;
  int64_t ncls = m->kind == XGB_SOFTPROB || m->kind == XGB_SOFTMAX   ? m->num_class
                 : (m->kind != XGB_REGRESSION && m->num_target == 1) ? 2
                                                                     : 0;
  if (ncls) {
    sig->classes = json_array();
    for (int64_t i = 0; sig->classes && i < ncls; i++)
      if (json_array_append_new(sig->classes, json_integer((json_int_t)i)))
        return err_set(e, ERR_NO_MEMORY, "out of memory");
    if (!sig->classes) return err_set(e, ERR_NO_MEMORY, "out of memory");
  }
  return 0;
}

static int xgb_load(const struct serve_load_opts *o, void **model, struct serve_signature *sig,
                    struct err *e) {
  *model = NULL;
  memset(sig, 0, sizeof *sig);
  if (!o || !o->path) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "no model file to load");
  if (o->format && !str_eq(o->format, "xgboost-json") && !str_eq(o->format, "xgboost-ubj") &&
      !str_eq(o->format, "xgboost-binary"))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "the xgboost backend does not load '%.64s' models", o->format);
  int n = o->instances > 0 ? o->instances : 1;
  if (n > XGB_MAX_INSTANCES)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "at most %d instances per model",
                   XGB_MAX_INSTANCES);
  if (o->threads < 0 || o->threads > 1024)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "bad thread count %d", o->threads);
  xgb_hook_log();

  uint8_t *bytes = NULL;
  size_t nbytes = 0;
  int rc = xgb_read_file(o->path, &bytes, &nbytes, e);
  if (rc) return rc;
  /* libxgboost reads JSON when the bytes start with {", UBJSON when {
   * and a type letter, else the legacy binary; a model too short for any
   * of them is refused here (its reader looks at two bytes unchecked). */
  bool legacy = !(nbytes >= 2 && bytes[0] == '{');
  if (nbytes < 2 || (legacy && !xgb_legacy_ok(bytes, nbytes))) {
    free(bytes);
    return err_set(
        e, ERR_INVALID_PARAMETER_VALUE,
        "not an XGBoost model: the file is neither JSON, UBJSON nor XGBoost's binary format");
  }

  struct xgb_model *m = calloc(1, sizeof *m);
  if (m) {
    m->boosters = calloc((size_t)n, sizeof *m->boosters);
    m->proxies = calloc((size_t)n, sizeof *m->proxies);
  }
  if (!m || !m->boosters || !m->proxies) {
    free(bytes);
    xgb_free(m);
    return err_set(e, ERR_NO_MEMORY, "out of memory");
  }
  m->file_bytes = nbytes;
  m->threads = o->threads > 0 ? o->threads : 1;
  char nthread[16];
  snprintf(nthread, sizeof nthread, "%d", m->threads);
  for (int i = 0; i < n && !rc; i++) {
    if (XGBoosterCreate(NULL, 0, &m->boosters[i]) != 0) {
      rc = xgb_fail(e, ERR_INTERNAL, "cannot create an XGBoost booster");
      break;
    }
    m->nboosters = i + 1;
    if (XGProxyDMatrixCreate(&m->proxies[i]) != 0)
      rc = xgb_fail(e, ERR_INTERNAL, "cannot create an XGBoost proxy matrix");
    else if (XGBoosterLoadModelFromBuffer(m->boosters[i], bytes, (bst_ulong)nbytes) != 0)
      rc = xgb_fail(e, ERR_INVALID_PARAMETER_VALUE, "bad XGBoost model");
    /* after loading: the model's saved configuration would override it */
    else if (XGBoosterSetParam(m->boosters[i], "nthread", nthread) != 0)
      rc = xgb_fail(e, ERR_INTERNAL, "cannot set XGBoost threads");
  }
  free(bytes);
  bst_ulong nf = 0;
  if (!rc && XGBoosterGetNumFeature(m->boosters[0], &nf) != 0)
    rc = xgb_fail(e, ERR_INVALID_PARAMETER_VALUE, "bad XGBoost model");
  if (!rc && (nf == 0 || nf > (1u << 24)))
    rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "bad XGBoost model: %llu features",
                 (unsigned long long)nf);
  m->num_feature = (int64_t)nf;
  if (!rc) rc = xgb_read_config(m, m->boosters[0], e);
  if (!rc) rc = xgb_signature(o, m, sig, e);
  if (!rc) rc = xgb_columns(o, m->boosters[0], m->num_feature, sig, &m->feature_types, e);
  if (rc) {
    serve_signature_fini(sig);
    xgb_free(m);
    return rc;
  }
  log_msg(LOG_DEBUG, "serve.xgboost", "loaded %s/%s: %s, %lld features, %d boosters",
          o->model_name ? o->model_name : "?", o->model_version ? o->model_version : "?",
          m->objective, (long long)m->num_feature, m->nboosters);
  *model = m;
  return 0;
}

/* ---- prediction ------------------------------------------------------------ */

/* One call into libxgboost; *res points into the booster's own storage
 * (valid until its next call), checked to hold rows * cols values. */
static int xgb_call(struct xgb_model *m, int instance, const float *x, int64_t rows, bool margin,
                    int64_t cols, const float **res, struct err *e) {
  static const char cfg_value[] =
      "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, "
      "\"strict_shape\": false, \"missing\": NaN, \"cache_id\": 0}";
  static const char cfg_margin[] =
      "{\"type\": 1, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, "
      "\"strict_shape\": false, \"missing\": NaN, \"cache_id\": 0}";
  char ai[192];
  snprintf(ai, sizeof ai,
           "{\"data\": [%" PRIuPTR ", true], \"shape\": [%" PRId64 ", %" PRId64
           "], \"strides\": null, \"typestr\": \"<f4\", \"version\": 3}",
           (uintptr_t)x, rows, m->num_feature);
  const bst_ulong *shape = NULL;
  bst_ulong dim = 0;
  *res = NULL;
  if (m->via_dmatrix) {
    /* "missing" belongs to the matrix here; the prediction config ignores it */
    DMatrixHandle d;
    if (XGDMatrixCreateFromDense(ai, "{\"missing\": NaN, \"nthread\": 1}", &d) != 0)
      return xgb_fail(e, ERR_INVALID_PARAMETER_VALUE, "XGBoost prediction failed");
    int rc = XGBoosterPredictFromDMatrix(m->boosters[instance], d, margin ? cfg_margin : cfg_value,
                                         &shape, &dim, res);
    XGDMatrixFree(d); /* the result lives in the booster, not the matrix */
    if (rc != 0) return xgb_fail(e, ERR_INVALID_PARAMETER_VALUE, "XGBoost prediction failed");
  } else if (XGBoosterPredictFromDense(m->boosters[instance], ai, margin ? cfg_margin : cfg_value,
                                       m->proxies[instance], &shape, &dim, res) != 0) {
    return xgb_fail(e, ERR_INVALID_PARAMETER_VALUE, "XGBoost prediction failed");
  }
  uint64_t got = 1;
  for (bst_ulong i = 0; i < dim; i++) got *= shape[i];
  uint64_t want = (uint64_t)rows * (uint64_t)(cols ? cols : 1);
  if (!*res || got != want)
    return err_set(e, ERR_INTERNAL, "libxgboost returned %llu values for %lld rows (expected %llu)",
                   (unsigned long long)got, (long long)rows, (unsigned long long)want);
  return 0;
}

static int xgb_predict(void *model, int instance, const struct serve_tensor *in, int nin,
                       const struct serve_predict_opts *po, struct serve_tensor **out, int *nout,
                       struct err *e) {
  struct xgb_model *m = model;
  *out = NULL;
  *nout = 0;
  if (!m || instance < 0 || instance >= m->nboosters)
    return err_set(e, ERR_INTERNAL, "no XGBoost booster for instance %d", instance);
  static const struct serve_predict_opts none = {0};
  if (!po) po = &none;
  for (int i = 0; i < po->noutputs; i++)
    if (!po->outputs || !str_eq(po->outputs[i], "predictions"))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "the model has no output '%.64s' (it has \"predictions\")",
                     po->outputs ? po->outputs[i] : "");
  if (nin != 1 || !in)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "an XGBoost model takes one input, not %d", nin);
  if (in->dtype != SERVE_FP32 || in->ndim != 2 || in->shape[1] != m->num_feature ||
      in->shape[0] < 0)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "input \"%.64s\" must be FP32 with shape [-1, %lld]", in->name,
                   (long long)m->num_feature);
  int64_t rows = in->shape[0];
  if ((uint64_t)rows > SIZE_MAX / sizeof(float) / (uint64_t)m->num_feature ||
      in->nbytes != (size_t)rows * (size_t)m->num_feature * sizeof(float) || (rows && !in->data))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "input \"%.64s\" holds %zu bytes, not %lld rows of %lld FP32", in->name,
                   in->nbytes, (long long)rows, (long long)m->num_feature);
  if (po->proba && po->margin)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "ask for probabilities or margins, not both");
  bool multilabel = m->kind == XGB_LOGISTIC && m->num_target > 1;
  if (po->proba && (m->kind == XGB_REGRESSION || m->kind == XGB_HINGE))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "this model has no class probabilities");

  /* what to ask libxgboost for, and the answer's columns */
  bool margin = po->margin || (po->proba && m->kind == XGB_SOFTMAX);
  int64_t cols = margin ? m->margin_cols : m->out_cols;
  int64_t out_cols = cols;
  if (po->proba)
    out_cols = m->kind == XGB_SOFTPROB || m->kind == XGB_SOFTMAX ? m->num_class
               : multilabel                                      ? m->num_target
                                                                 : 2;

  struct serve_tensor *t = calloc(1, sizeof *t);
  if (!t) return err_set(e, ERR_NO_MEMORY, "out of memory");
  int64_t shape[2] = {rows, out_cols};
  int rc = serve_tensor_alloc(t, "predictions", SERVE_FP32, shape, out_cols ? 2 : 1, e);
  if (rc) {
    free(t);
    return rc;
  }
  if (rows == 0) goto done;

  xgb_hook_log();
  /* libxgboost reads floats in place: a view into a binary request body may
   * sit at any offset, so such rows are copied to aligned memory first */
  const float *x = in->data;
  float *aligned = NULL;
  if ((uintptr_t)x % _Alignof(float)) {
    aligned = malloc(in->nbytes);
    if (!aligned) {
      serve_tensor_fini(t);
      free(t);
      return err_set(e, ERR_NO_MEMORY, "out of memory");
    }
    memcpy(aligned, in->data, in->nbytes);
    x = aligned;
  }
  const float *r;
  rc = xgb_call(m, instance, x, rows, margin, cols, &r, e);
  free(aligned);
  if (rc) {
    serve_tensor_fini(t);
    free(t);
    return rc;
  }
  float *o = t->data;
  if (!po->proba || m->kind == XGB_SOFTPROB || multilabel) {
    memcpy(o, r, t->nbytes);
  } else if (m->kind == XGB_LOGISTIC || m->kind == XGB_LOGITRAW) {
    /* [1-p, p], as scikit-learn's XGBClassifier.predict_proba answers */
    for (int64_t i = 0; i < rows; i++) {
      float p = m->kind == XGB_LOGISTIC ? r[i] : (float)(1.0 / (1.0 + exp(-(double)r[i])));
      o[2 * i] = 1.0f - p;
      o[2 * i + 1] = p;
    }
  } else { /* multi:softmax: its probabilities are the softmax of the margins */
    int64_t k = m->num_class;
    for (int64_t i = 0; i < rows; i++) {
      const float *z = r + i * k;
      double mx = z[0], sum = 0;
      for (int64_t j = 1; j < k; j++)
        if (z[j] > mx) mx = z[j];
      for (int64_t j = 0; j < k; j++) sum += exp((double)z[j] - mx);
      for (int64_t j = 0; j < k; j++) o[i * k + j] = (float)(exp((double)z[j] - mx) / sum);
    }
  }
done:
  *out = t;
  *nout = 1;
  return 0;
}

/* ---- the rest of the table ------------------------------------------------ */

static uint64_t xgb_memory(void *model) {
  struct xgb_model *m = model;
  /* the serialized size per booster: trees in memory are close to the
   * UBJSON size and smaller than the JSON text, so this errs high */
  return m ? m->file_bytes * (uint64_t)m->nboosters : 0;
}

static void xgb_unload(void *model) { xgb_free(model); }

static json_t *xgb_describe(void *model) {
  struct xgb_model *m = model;
  if (!m) return NULL;
  json_t *d =
      json_pack("{s:s, s:I, s:I, s:I, s:f, s:i, s:i}", "objective", m->objective, "num_feature",
                (json_int_t)m->num_feature, "num_class", (json_int_t)m->num_class, "num_target",
                (json_int_t)m->num_target, "base_score", m->base_score, "boosters", m->nboosters,
                "threads", m->threads);
  if (d && m->feature_types) json_object_set(d, "feature_types", m->feature_types);
  return d;
}

const struct serve_backend serve_backend_xgboost = {
    .version = SERVE_BACKEND_VERSION,
    .name = "xgboost",
    .caps = SERVE_CAP_PROBA | SERVE_CAP_MARGIN,
    .load = xgb_load,
    .predict = xgb_predict,
    .memory = xgb_memory,
    .unload = xgb_unload,
    .degraded = NULL,
    .describe = xgb_describe,
};
