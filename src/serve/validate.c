/* serve/validate: a parsed request against the model's signature — inputs
 * matched by name, dtypes cast by the coercion rules (docs/serving-protocols.md),
 * shapes, rows, the row limit and the NaN/Inf policy. */
#include "proto.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* "a [FP32 -1x4], b [INT64 any shape]" */
static const char *spec_list(char *buf, size_t cap, const struct serve_signature *sig) {
  size_t n = 0;
  buf[0] = 0;
  for (int i = 0; i < sig->ninputs && n + 1 < cap; i++) {
    const struct serve_tensor_spec *sp = &sig->inputs[i];
    char dims[SERVE_MAX_DIMS * 24];
    size_t dn = 0;
    dims[0] = 0;
    if (sp->ndim < 0) {
      snprintf(dims, sizeof dims, "any shape");
    } else if (sp->ndim == 0) {
      snprintf(dims, sizeof dims, "scalar");
    } else {
      for (int d = 0; d < sp->ndim; d++) {
        if (d) dims[dn++] = 'x';
        dn += serve_fmt_i64(dims + dn, sp->shape[d]);
      }
    }
    int w = snprintf(buf + n, cap - n, "%s%s [%s %s]", i ? ", " : "", sp->name,
                     serve_dtype_name(sp->dtype), dims);
    if (w < 0 || (size_t)w >= cap - n) {
      if (cap > 4) memcpy(buf + cap - 4, "...", 4);
      break;
    }
    n += (size_t)w;
  }
  return buf;
}

static const char *spec_shape(char *buf, size_t cap, const struct serve_tensor_spec *sp) {
  if (sp->ndim < 0) {
    snprintf(buf, cap, "any shape");
    return buf;
  }
  return serve_shape_str(buf, cap, sp->shape, sp->ndim);
}

static bool class_ok(enum serve_dtype from, enum serve_dtype to) {
  if (from == to) return true;
  if (from == SERVE_BYTES || to == SERVE_BYTES) return false;
  if (from == SERVE_BOOL || to == SERVE_BOOL) return false;
  return true;
}

/* Where element i of t is, in the words of the NaN/Inf messages. */
static const char *where(char *buf, size_t cap, const struct serve_signature *sig, int input,
                         const struct serve_tensor *t, int64_t i) {
  if (sig && sig->batched && t->ndim == 1) {
    snprintf(buf, cap, "row %lld", (long long)i);
  } else if (sig && sig->batched && t->ndim == 2 && t->shape[1] > 0) {
    int64_t col = i % t->shape[1];
    int n =
        snprintf(buf, cap, "row %lld column %lld", (long long)(i / t->shape[1]), (long long)col);
    if (input == 0 && sig->columns && sig->ncolumns == t->shape[1] && n > 0 && (size_t)n < cap)
      snprintf(buf + n, cap - (size_t)n, " ('%s')", sig->columns[col]);
  } else {
    serve_index_str(buf, cap, t->shape, t->ndim, i);
  }
  return buf;
}

static const char *val_text(char *buf, const struct serve_val *v) {
  switch (v->kind) {
  case SERVE_VAL_I64: serve_fmt_i64(buf, v->i); break;
  case SERVE_VAL_U64: serve_fmt_u64(buf, v->u); break;
  case SERVE_VAL_BOOL: return v->b ? "true" : "false";
  default:
    if (isnan(v->f)) return "NaN";
    if (isinf(v->f)) return v->f < 0 ? "-Inf" : "Inf";
    serve_fmt_f64(buf, v->f);
  }
  return buf;
}

/* Casts t (count elements) to dt in arena memory, element by element
 * through the same rules the JSON parsers use. */
static int cast(const struct serve_signature *sig, int input, struct serve_tensor *t,
                enum serve_dtype dt, int64_t count, struct arena *a, struct err *e) {
  size_t es = serve_dtype_size(dt), nb = (size_t)count * es;
  unsigned char *o = arena_alloc(a, nb ? nb : 1);
  if (!o)
    return err_set(e, ERR_NO_MEMORY, "out of memory casting input '%s' to %s", t->name,
                   serve_dtype_name(dt));
  for (int64_t i = 0; i < count; i++) {
    struct serve_val v;
    serve_val_load(t->dtype, t->data, (size_t)i, &v);
    enum serve_conv c = serve_val_store(dt, &v, o + (size_t)i * es);
    if (c != SERVE_CONV_OK) {
      char w[200], vt[SERVE_NUM_TEXT];
      return serve_conv_err(e, c, t->name, where(w, sizeof w, sig, input, t, i), dt,
                            val_text(vt, &v));
    }
  }
  t->data = o;
  t->nbytes = (size_t)count * es;
  t->dtype = dt;
  return 0;
}

/* First NaN or Inf in a float tensor, or -1. */
static int64_t first_nonfinite(const struct serve_tensor *t, int64_t count, bool nan_ok,
                               bool *is_nan, int *sign) {
  const unsigned char *p = t->data;
  for (int64_t i = 0; i < count; i++) {
    double v;
    switch (t->dtype) {
    case SERVE_FP32: {
      uint32_t b;
      memcpy(&b, p + i * 4, 4);
      if ((b & 0x7f800000u) != 0x7f800000u) continue;
      float f;
      memcpy(&f, &b, 4);
      v = f;
      break;
    }
    case SERVE_FP64: {
      uint64_t b;
      memcpy(&b, p + i * 8, 8);
      if ((b & 0x7ff0000000000000ull) != 0x7ff0000000000000ull) continue;
      memcpy(&v, &b, 8);
      break;
    }
    case SERVE_FP16: {
      uint16_t h;
      memcpy(&h, p + i * 2, 2);
      if ((h & 0x7c00) != 0x7c00) continue;
      v = serve_f16_to_f64(h);
      break;
    }
    case SERVE_BF16: {
      uint16_t h;
      memcpy(&h, p + i * 2, 2);
      if ((h & 0x7f80) != 0x7f80) continue;
      v = serve_bf16_to_f64(h);
      break;
    }
    default: return -1;
    }
    if (isnan(v) && nan_ok) continue;
    *is_nan = isnan(v);
    *sign = v < 0 ? -1 : 1;
    return i;
  }
  return -1;
}

/* Checks one input against its spec (NULL: no signature) and casts it. */
static int check_input(const struct serve_signature *sig, int j, struct serve_tensor *t,
                       struct arena *a, struct err *e) {
  const struct serve_tensor_spec *sp = sig && j < sig->ninputs ? &sig->inputs[j] : NULL;
  char sh[SERVE_MAX_DIMS * 24], want[SERVE_MAX_DIMS * 24];
  if (t->ndim < 0 || t->ndim > SERVE_MAX_DIMS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "input '%s' has a bad rank", t->name);
  int64_t count = serve_shape_count(t->shape, t->ndim);
  if (count < 0)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "input '%s' has a bad shape", t->name);
  /* never trust a tensor's bytes to match its shape */
  if (t->dtype == SERVE_BYTES) {
    if (count && (!t->data || serve_bytes_walk(t->data, t->nbytes, count, NULL) < 0))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "input '%s': its BYTES data is shorter than its shape", t->name);
  } else {
    size_t es = serve_dtype_size(t->dtype);
    if (!es || (count && !t->data) || (uint64_t)count > t->nbytes / es)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "input '%s': its data is shorter than its shape", t->name);
  }
  if (sp) {
    if (!class_ok(t->dtype, sp->dtype))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "input '%s' is %s; the model takes %s%s",
                     t->name, serve_dtype_name(t->dtype), serve_dtype_name(sp->dtype),
                     sp->dtype == SERVE_BYTES || t->dtype == SERVE_BYTES
                         ? " (BYTES only from BYTES)"
                         : " (BOOL only from BOOL)");
    bool ok = sp->ndim < 0 || sp->ndim == t->ndim;
    for (int d = 0; ok && sp->ndim > 0 && d < sp->ndim; d++)
      ok = sp->shape[d] < 0 || sp->shape[d] == t->shape[d];
    if (!ok)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "input '%s' has shape %s; the model takes %s",
                     t->name, serve_shape_str(sh, sizeof sh, t->shape, t->ndim),
                     spec_shape(want, sizeof want, sp));
    if (sig->batched && t->ndim == 0)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "input '%s' has no batch dimension; the model takes %s", t->name,
                     spec_shape(want, sizeof want, sp));
  }
  return 0;
}

static int finish_input(const struct serve_signature *sig, int j, struct serve_tensor *t,
                        bool nan_ok, struct arena *a, struct err *e) {
  const struct serve_tensor_spec *sp = sig && j < sig->ninputs ? &sig->inputs[j] : NULL;
  int64_t count = serve_shape_count(t->shape, t->ndim);
  if (sp && t->dtype != sp->dtype) {
    int rc = cast(sig, j, t, sp->dtype, count, a, e);
    if (rc) return rc;
  }
  if (!serve_dtype_is_float(t->dtype)) return 0;
  bool is_nan = false;
  int sign = 1;
  int64_t bad = first_nonfinite(t, count, nan_ok, &is_nan, &sign);
  if (bad < 0) return 0;
  char w[200];
  where(w, sizeof w, sig, j, t, bad);
  if (is_nan)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "input '%s' %s is NaN; the model does not take missing values (NaN)", t->name,
                   w);
  return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                 "input '%s' %s is %s; non-finite values are refused", t->name, w,
                 sign < 0 ? "-Inf" : "Inf");
}

int serve_validate(const struct serve_signature *sig, struct serve_request *rq, struct arena *a,
                   int64_t max_rows, int64_t *rows, struct err *e) {
  char list[200];
  if (rows) *rows = 0;
  bool have_sig = sig && sig->ninputs > 0 && sig->inputs;
  if (!rq->inputs || rq->ninputs <= 0) {
    if (have_sig)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "the request has no inputs; the model takes: %s",
                     spec_list(list, sizeof list, sig));
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "the request has no inputs");
  }
  for (int i = 0; i < rq->ninputs; i++)
    for (int k = 0; k < i; k++)
      if (strcmp(rq->inputs[i].name, rq->inputs[k].name) == 0)
        return err_set(e, ERR_INVALID_PARAMETER_VALUE, "input '%s' appears twice",
                       rq->inputs[i].name);

  int n = have_sig ? sig->ninputs : rq->ninputs;
  int map[SERVE_V2_MAX_INPUTS];
  if (n > SERVE_V2_MAX_INPUTS || rq->ninputs > SERVE_V2_MAX_INPUTS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "at most %d inputs are allowed",
                   SERVE_V2_MAX_INPUTS);
  /* names must match, as V2 servers require (the MLflow payload parser
   * names what it builds after the signature) */
  if (!have_sig) {
    for (int i = 0; i < n; i++) map[i] = i;
  } else {
    for (int i = 0; i < rq->ninputs; i++) {
      int j = 0;
      while (j < sig->ninputs && strcmp(sig->inputs[j].name, rq->inputs[i].name) != 0) j++;
      if (j == sig->ninputs)
        return err_set(e, ERR_INVALID_PARAMETER_VALUE, "unknown input '%s'; the model takes: %s",
                       rq->inputs[i].name, spec_list(list, sizeof list, sig));
    }
    for (int j = 0; j < sig->ninputs; j++) {
      map[j] = -1;
      for (int i = 0; i < rq->ninputs && map[j] < 0; i++)
        if (strcmp(sig->inputs[j].name, rq->inputs[i].name) == 0) map[j] = i;
      if (map[j] < 0)
        return err_set(e, ERR_INVALID_PARAMETER_VALUE, "missing input '%s'; the model takes: %s",
                       sig->inputs[j].name, spec_list(list, sizeof list, sig));
    }
  }

  struct serve_tensor *out = arena_alloc(a, (size_t)n * sizeof *out);
  if (!out) return err_set(e, ERR_NO_MEMORY, "out of memory");
  const struct serve_signature *s = have_sig ? sig : NULL;
  for (int j = 0; j < n; j++) {
    out[j] = rq->inputs[map[j]];
    out[j].owned = false; /* the request's memory, never the callee's to free */
    out[j].json = NULL;
    if (have_sig) str_copy(out[j].name, sizeof out[j].name, sig->inputs[j].name);
    int rc = check_input(s, j, &out[j], a, e);
    if (rc) return rc;
  }
  /* rows: the first dimension, the same for every input of a batched model */
  int64_t r = 1;
  bool batched = have_sig ? sig->batched : out[0].ndim > 0;
  if (batched) {
    r = out[0].ndim > 0 ? out[0].shape[0] : 1;
    for (int j = 1; j < n; j++) {
      int64_t rj = out[j].ndim > 0 ? out[j].shape[0] : 1;
      if (rj != r)
        return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                       "inputs disagree on rows: '%s' has %lld, '%s' has %lld", out[0].name,
                       (long long)r, out[j].name, (long long)rj);
    }
    if (max_rows > 0 && r > max_rows)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "batch of %lld rows exceeds the limit of %lld",
                     (long long)r, (long long)max_rows);
  }
  for (int j = 0; j < n; j++) {
    int rc = finish_input(s, j, &out[j], sig && sig->allow_nan, a, e);
    if (rc) return rc;
  }
  rq->inputs = out;
  rq->ninputs = n;
  if (rows) *rows = r;
  return 0;
}
