/* serve/v2: the KServe V2 (Open Inference Protocol) inference request and
 * response, JSON and the binary tensor extension. Numeric data arrays skip
 * jansson: a scanner finds them, jansson parses the rest, and the numbers go
 * straight from the text into the typed buffer. */
#include "proto.h"

#include <endian.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

bool serve_v2_fast_numbers = true;

#define V2_MAX_OUTPUTS 64

/* The V2 places of numeric arrays: inputs[i].data, slot i. */
static const char *const v2_keys[] = {"inputs", "data"};
static int v2_match(const struct serve_lex_frame *st, int depth) {
  if (depth != 3 || st[0].kind != '{' || st[0].key != 0 || st[1].kind != '[' || st[2].kind != '{' ||
      st[2].key != 1)
    return -1;
  return st[1].nelem - 1 < SERVE_V2_MAX_INPUTS ? st[1].nelem - 1 : -1;
}

/* ---- element conversion ------------------------------------------------------ */

static const char *json_val_text(char *buf, size_t cap, const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_INTEGER: snprintf(buf, cap, "%lld", (long long)json_integer_value(v)); break;
  case JSON_REAL: serve_fmt_f64(buf, json_real_value(v)); break;
  case JSON_TRUE: return "true";
  case JSON_FALSE: return "false";
  case JSON_NULL: return "null";
  case JSON_STRING: return "a string";
  case JSON_ARRAY: return "an array";
  default: return "an object";
  }
  return buf;
}

static enum serve_conv store_json(enum serve_dtype dt, const json_t *v, void *dst) {
  switch (json_typeof(v)) {
  case JSON_INTEGER: return serve_store_i64(dt, json_integer_value(v), dst);
  case JSON_REAL: return serve_store_f64(dt, json_real_value(v), dst);
  case JSON_TRUE: return serve_store_bool(dt, true, dst);
  case JSON_FALSE: return serve_store_bool(dt, false, dst);
  case JSON_NULL: return SERVE_CONV_NULL;
  case JSON_STRING: return dt == SERVE_BYTES ? SERVE_CONV_OK : SERVE_CONV_STRING;
  default: return SERVE_CONV_NESTED;
  }
}

const char *serve_elem_where(char *buf, size_t cap, const struct serve_tensor *t,
                             const char *const *columns, int64_t flat) {
  if (columns && t->ndim == 2 && t->shape[1] > 0) {
    snprintf(buf, cap, "row %lld column '%s'", (long long)(flat / t->shape[1]),
             columns[flat % t->shape[1]]);
    return buf;
  }
  return serve_index_str(buf, cap, t->shape, t->ndim, flat);
}

/* Converts count leaves (row-major) into t's dtype; t's name, dtype, shape
 * are set. null is NaN for float types when null_is_nan (MLflow). */
int serve_leaves_to_tensor(struct serve_tensor *t, json_t *const *leaves, int64_t count,
                           bool null_is_nan, const char *const *columns, struct arena *a,
                           struct err *e) {
  char ix[200], vt[SERVE_NUM_TEXT];
  if (t->dtype == SERVE_BYTES) {
    size_t total = 0;
    for (int64_t i = 0; i < count; i++) {
      const json_t *v = leaves[i];
      if (!json_is_string(v)) {
        serve_elem_where(ix, sizeof ix, t, columns, i);
        enum serve_conv c = json_is_null(v)                         ? SERVE_CONV_NULL
                            : json_is_array(v) || json_is_object(v) ? SERVE_CONV_NESTED
                                                                    : SERVE_CONV_NOT_BYTES;
        return serve_conv_err(e, c, t->name, ix, t->dtype, json_val_text(vt, sizeof vt, v));
      }
      size_t l = json_string_length(v);
      if (l > UINT32_MAX) {
        serve_elem_where(ix, sizeof ix, t, columns, i);
        return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                       "input '%s' %s: a BYTES element holds at most 4 GiB", t->name, ix);
      }
      total += 4 + l;
    }
    char *o = arena_alloc(a, total);
    if (!o)
      return err_set(e, ERR_NO_MEMORY, "out of memory for input '%s' (%zu bytes)", t->name, total);
    t->data = o;
    t->nbytes = total;
    for (int64_t i = 0; i < count; i++) {
      uint32_t l = (uint32_t)json_string_length(leaves[i]), le = htole32(l);
      memcpy(o, &le, 4);
      memcpy(o + 4, json_string_value(leaves[i]), l);
      o += 4 + l;
    }
    return 0;
  }
  size_t es = serve_dtype_size(t->dtype);
  size_t nb = (size_t)count * es;
  unsigned char *o = arena_alloc(a, nb ? nb : 1);
  if (!o) return err_set(e, ERR_NO_MEMORY, "out of memory for input '%s' (%zu bytes)", t->name, nb);
  t->data = o;
  t->nbytes = nb;
  for (int64_t i = 0; i < count; i++, o += es) {
    const json_t *v = leaves[i];
    enum serve_conv c;
    if (json_is_null(v) && null_is_nan && serve_dtype_is_float(t->dtype))
      c = serve_store_f64(t->dtype, NAN, o);
    else
      c = store_json(t->dtype, v, o);
    if (c != SERVE_CONV_OK) {
      serve_elem_where(ix, sizeof ix, t, columns, i);
      return serve_conv_err(e, c, t->name, ix, t->dtype, json_val_text(vt, sizeof vt, v));
    }
  }
  return 0;
}

/* ---- data from jansson ---------------------------------------------------------- */

static int64_t count_leaves(const json_t *v, int depth) {
  if (!json_is_array(v)) return 1;
  if (depth > SERVE_MAX_DIMS) return -1;
  int64_t n = 0;
  for (size_t i = 0; i < json_array_size(v); i++) {
    int64_t c = count_leaves(json_array_get(v, i), depth + 1);
    if (c < 0) return -1;
    n += c;
  }
  return n;
}

struct leaf_walk {
  const struct serve_tensor *t;
  json_t **leaves;
  int64_t n;
  struct err *e;
};

static int walk_nested(struct leaf_walk *w, json_t *v, int depth) {
  const struct serve_tensor *t = w->t;
  if (depth >= t->ndim) return serve_nest_err(t, w->e, depth, 0);
  size_t n = json_array_size(v);
  if ((int64_t)n != t->shape[depth]) return serve_nest_err(t, w->e, depth, n);
  for (size_t i = 0; i < n; i++) {
    json_t *x = json_array_get(v, i);
    if (depth + 1 < t->ndim) {
      if (!json_is_array(x)) {
        char sh[SERVE_MAX_DIMS * 24];
        return err_set(
            w->e, ERR_INVALID_PARAMETER_VALUE,
            "input '%s': data mixes nested arrays and values; nest it as shape %s or send it flat",
            t->name, serve_shape_str(sh, sizeof sh, t->shape, t->ndim));
      }
      int rc = walk_nested(w, x, depth + 1);
      if (rc) return rc;
    } else {
      if (json_is_array(x)) return serve_nest_err(t, w->e, depth + 1, json_array_size(x));
      w->leaves[w->n++] = x;
    }
  }
  return 0;
}

static int data_from_json(struct serve_tensor *t, int64_t count, json_t *data, struct arena *a,
                          struct err *e) {
  if (!json_is_array(data)) {
    if (t->ndim == 0 && !json_is_object(data))
      return serve_leaves_to_tensor(t, &data, 1, false, NULL, a, e);
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "input '%s': data must be an array", t->name);
  }
  int64_t have = count_leaves(data, 1);
  if (have < 0)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "input '%s': data is nested deeper than %d levels", t->name, SERVE_MAX_DIMS);
  if (have != count) return serve_count_err(t, count, have, e);
  json_t **leaves = arena_alloc(a, (size_t)(count ? count : 1) * sizeof *leaves);
  if (!leaves) return err_set(e, ERR_NO_MEMORY, "out of memory for input '%s'", t->name);
  size_t n = json_array_size(data);
  if (n && json_is_array(json_array_get(data, 0))) {
    struct leaf_walk w = {t, leaves, 0, e};
    int rc = walk_nested(&w, data, 0);
    if (rc) return rc;
  } else {
    for (size_t i = 0; i < n; i++) {
      json_t *x = json_array_get(data, i);
      if (json_is_array(x)) {
        char sh[SERVE_MAX_DIMS * 24];
        return err_set(
            e, ERR_INVALID_PARAMETER_VALUE,
            "input '%s': data mixes nested arrays and values; nest it as shape %s or send it flat",
            t->name, serve_shape_str(sh, sizeof sh, t->shape, t->ndim));
      }
      leaves[i] = x;
    }
  }
  return serve_leaves_to_tensor(t, leaves, count, false, NULL, a, e);
}

/* ---- the request ---------------------------------------------------------------- */

static int get_bool_param(const json_t *params, const char *key, bool *out, struct err *e) {
  json_t *v = json_object_get(params, key);
  if (!v) return 0;
  if (!json_is_boolean(v))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "parameters.%s must be true or false", key);
  *out = json_is_true(v);
  return 0;
}

static int get_nonneg_param(const json_t *params, const char *key, int64_t *out, struct err *e) {
  json_t *v = json_object_get(params, key);
  if (!v) return 0;
  if (!json_is_integer(v) || json_integer_value(v) < 0)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "parameters.%s must be a non-negative integer",
                   key);
  *out = json_integer_value(v);
  return 0;
}

static int parse_input(json_t *in, int i, struct serve_tensor *t, int64_t *bin_size,
                       struct err *e) {
  if (!json_is_object(in))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "inputs[%d] must be an object", i);
  json_t *name = json_object_get(in, "name");
  if (!json_is_string(name) || json_string_length(name) == 0)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "inputs[%d] needs a non-empty string \"name\"",
                   i);
  if (json_string_length(name) >= SERVE_NAME_MAX ||
      strlen(json_string_value(name)) != json_string_length(name))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "inputs[%d]: a name is at most %d bytes and holds no NUL", i,
                   SERVE_NAME_MAX - 1);
  str_copy(t->name, sizeof t->name, json_string_value(name));
  json_t *dt = json_object_get(in, "datatype");
  if (!json_is_string(dt) || serve_dtype_parse(json_string_value(dt), &t->dtype))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "input '%s': datatype must be one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, "
                   "INT16, INT32, "
                   "INT64, FP16, BF16, FP32, FP64, BYTES",
                   t->name);
  json_t *shape = json_object_get(in, "shape");
  if (!json_is_array(shape))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "input '%s': shape must be an array of dimensions", t->name);
  if (json_array_size(shape) > SERVE_MAX_DIMS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "input '%s': shape has %zu dimensions; at most %d are allowed", t->name,
                   json_array_size(shape), SERVE_MAX_DIMS);
  t->ndim = (int)json_array_size(shape);
  for (int d = 0; d < t->ndim; d++) {
    json_t *x = json_array_get(shape, (size_t)d);
    if (!json_is_integer(x) || json_integer_value(x) < 0)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "input '%s': shape dimension %d must be a non-negative integer", t->name, d);
    t->shape[d] = json_integer_value(x);
  }
  *bin_size = -1;
  json_t *params = json_object_get(in, "parameters");
  if (params && !json_is_object(params))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "input '%s': parameters must be an object",
                   t->name);
  json_t *bs = params ? json_object_get(params, "binary_data_size") : NULL;
  if (bs) {
    if (!json_is_integer(bs) || json_integer_value(bs) < 0)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "input '%s': parameters.binary_data_size must be a non-negative integer",
                     t->name);
    *bin_size = json_integer_value(bs);
  }
  return 0;
}

static int parse_outputs(json_t *outs, bool binary_all, struct arena *a, struct serve_request *rq,
                         struct err *e) {
  if (!json_is_array(outs))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "outputs must be an array");
  size_t n = json_array_size(outs);
  if (n == 0) return 0; /* like leaving it out: every output */
  if (n > V2_MAX_OUTPUTS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "outputs lists %zu outputs; at most %d are allowed", n, V2_MAX_OUTPUTS);
  rq->outputs = arena_zalloc(a, n * sizeof *rq->outputs);
  if (!rq->outputs) return err_set(e, ERR_NO_MEMORY, "out of memory");
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_array_get(outs, i), *name = json_object_get(o, "name");
    if (!json_is_object(o) || !json_is_string(name))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "outputs[%zu] must be an object with a string \"name\"", i);
    const char *nm = json_string_value(name);
    for (size_t j = 0; j < i; j++)
      if (strcmp(rq->outputs[j].name, nm) == 0)
        return err_set(e, ERR_INVALID_PARAMETER_VALUE, "output '%s' is requested twice", nm);
    bool bin = binary_all;
    json_t *params = json_object_get(o, "parameters");
    if (params && !json_is_object(params))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "output '%s': parameters must be an object",
                     nm);
    json_t *bd = params ? json_object_get(params, "binary_data") : NULL;
    if (bd) {
      if (!json_is_boolean(bd))
        return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                       "output '%s': parameters.binary_data must be true or false", nm);
      bin = json_is_true(bd); /* a per-output choice beats binary_data_output */
    }
    rq->outputs[i].name = arena_strdup(a, nm);
    if (!rq->outputs[i].name) return err_set(e, ERR_NO_MEMORY, "out of memory");
    rq->outputs[i].binary = bin;
  }
  rq->noutputs = (int)n;
  return 0;
}

/* One binary input: its bytes are the next binary_data_size bytes after the
 * header; they stay in the body when aligned for the type, else are copied. */
static int binary_input(struct serve_tensor *t, int64_t count, int64_t size, const char *body,
                        size_t len, size_t *cur, struct arena *a, struct err *e) {
  char sh[SERVE_MAX_DIMS * 24];
  size_t left = len - *cur;
  if ((uint64_t)size > left)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "input '%s': binary_data_size %lld runs past the end of the body (%zu bytes of "
                   "binary data left)",
                   t->name, (long long)size, left);
  const char *p = body + *cur;
  if (t->dtype == SERVE_BYTES) {
    int64_t bad = 0, used = serve_bytes_walk(p, (size_t)size, count, &bad);
    if (used < 0)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "input '%s': BYTES element %lld runs past its binary_data_size of %lld",
                     t->name, (long long)bad, (long long)size);
    if (used != size)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "input '%s': binary_data_size is %lld but the %lld BYTES elements of shape %s "
                     "take %lld bytes",
                     t->name, (long long)size, (long long)count,
                     serve_shape_str(sh, sizeof sh, t->shape, t->ndim), (long long)used);
    t->data = (void *)p;
  } else {
    size_t es = serve_dtype_size(t->dtype);
    if ((uint64_t)count > SIZE_MAX / es || (uint64_t)count * es != (uint64_t)size)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "input '%s': binary_data_size is %lld but shape %s of %s takes %llu bytes",
                     t->name, (long long)size, serve_shape_str(sh, sizeof sh, t->shape, t->ndim),
                     serve_dtype_name(t->dtype), (unsigned long long)((uint64_t)count * es));
    if (t->dtype == SERVE_BOOL)
      for (int64_t i = 0; i < size; i++)
        if ((unsigned char)p[i] > 1) {
          char ix[96];
          return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                         "input '%s' %s: a BOOL byte is 0 or 1, not %u", t->name,
                         serve_index_str(ix, sizeof ix, t->shape, t->ndim, i), (unsigned char)p[i]);
        }
    if (((uintptr_t)p & (es - 1)) == 0) {
      t->data = (void *)p;
    } else { /* consumers read FP64 as double *: give them natural alignment */
      void *c = arena_alloc(a, (size_t)size ? (size_t)size : 1);
      if (!c) return err_set(e, ERR_NO_MEMORY, "out of memory for input '%s'", t->name);
      memcpy(c, p, (size_t)size);
      t->data = c;
    }
  }
  t->nbytes = (size_t)size;
  *cur += (size_t)size;
  return 0;
}

static int parse_root(json_t *root, const char *body, size_t len, size_t header_len,
                      const struct serve_fast *fast, struct arena *a, struct serve_request *rq,
                      struct err *e) {
  if (!json_is_object(root))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "the inference request must be a JSON object");
  json_t *id = json_object_get(root, "id");
  if (id) {
    if (!json_is_string(id)) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "id must be a string");
    rq->id = arena_strndup(a, json_string_value(id), json_string_length(id));
    if (!rq->id) return err_set(e, ERR_NO_MEMORY, "out of memory");
  }
  json_t *params = json_object_get(root, "parameters");
  if (params) {
    if (!json_is_object(params))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "parameters must be an object");
    int rc;
    if ((rc = get_bool_param(params, "binary_data_output", &rq->binary_all, e)) ||
        (rc = get_nonneg_param(params, "priority", &rq->priority, e)) ||
        (rc = get_nonneg_param(params, "timeout", &rq->timeout_us, e)) ||
        (rc = get_bool_param(params, "predict_proba", &rq->popts.proba, e)) ||
        (rc = get_bool_param(params, "output_margin", &rq->popts.margin, e)))
      return rc;
  }
  json_t *outs = json_object_get(root, "outputs");
  if (outs) {
    int rc = parse_outputs(outs, rq->binary_all, a, rq, e);
    if (rc) return rc;
  }
  json_t *inputs = json_object_get(root, "inputs");
  if (!json_is_array(inputs) || json_array_size(inputs) == 0)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "inputs must be a non-empty array");
  size_t n = json_array_size(inputs);
  if (n > SERVE_V2_MAX_INPUTS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "the request has %zu inputs; at most %d are allowed", n, SERVE_V2_MAX_INPUTS);
  rq->inputs = arena_zalloc(a, n * sizeof *rq->inputs);
  if (!rq->inputs) return err_set(e, ERR_NO_MEMORY, "out of memory");
  rq->ninputs = (int)n;
  size_t cur = header_len ? header_len : len; /* where the next binary input starts */
  for (size_t i = 0; i < n; i++) {
    struct serve_tensor *t = &rq->inputs[i];
    json_t *in = json_array_get(inputs, i);
    int64_t bin_size;
    int rc = parse_input(in, (int)i, t, &bin_size, e);
    if (rc) return rc;
    for (size_t j = 0; j < i; j++)
      if (strcmp(rq->inputs[j].name, t->name) == 0)
        return err_set(e, ERR_INVALID_PARAMETER_VALUE, "input '%s' appears twice", t->name);
    int64_t count = serve_shape_count(t->shape, t->ndim);
    size_t es = serve_dtype_size(t->dtype);
    if (count < 0 || (es && (uint64_t)count > SIZE_MAX / es)) {
      char sh[SERVE_MAX_DIMS * 24];
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "input '%s': shape %s is too large", t->name,
                     serve_shape_str(sh, sizeof sh, t->shape, t->ndim));
    }
    json_t *data = json_object_get(in, "data");
    if (bin_size >= 0) {
      if (data)
        return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                       "input '%s' has both data and parameters.binary_data_size; send one",
                       t->name);
      if (!header_len)
        return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                       "input '%s' has binary_data_size but the request has no "
                       "Inference-Header-Content-Length",
                       t->name);
      rc = binary_input(t, count, bin_size, body, len, &cur, a, e);
    } else if (!data) {
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "input '%s' has no data (nor parameters.binary_data_size)", t->name);
    } else if (fast->span[i].set) {
      if (!json_is_array(data) || json_array_size(data) != 0)
        return err_set(e, ERR_INTERNAL, "input '%s': the number scanner lost its place", t->name);
      rc = serve_span_convert(t, fast, (int)i, body, NULL, a, e);
    } else {
      rc = data_from_json(t, count, data, a, e);
    }
    if (rc) return rc;
  }
  if (cur != len)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "the body holds %zu bytes after the %zu-byte JSON header but the inputs' "
                   "binary_data_size add up "
                   "to %zu",
                   len - header_len, header_len, cur - header_len);
  return 0;
}

int serve_v2_parse_request(const char *body, size_t len, size_t header_len, struct arena *a,
                           struct serve_request *out, struct err *e) {
  struct err spare;
  if (!e) e = &spare;
  memset(out, 0, sizeof *out);
  if (!body) len = 0;
  if (header_len > len)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "Inference-Header-Content-Length is %zu but the body has only %zu bytes",
                   header_len, len);
  size_t jlen = header_len ? header_len : len;
  if (jlen == 0)
    return err_set(e, ERR_MALFORMED_JSON, "request body is empty; expected a JSON object");
  struct serve_fast fast;
  serve_fast_init(&fast);
  int rc;
  json_t *root =
      serve_fast_parse(body, jlen, v2_keys, 2, v2_match, &fast, serve_v2_fast_numbers, a, e);
  if (!root) {
    rc = -(int)e->code;
  } else {
    rc = parse_root(root, body, len, header_len, &fast, a, out, e);
    json_decref(root);
  }
  serve_fast_fini(&fast);
  if (rc) memset(out, 0, sizeof *out);
  return rc;
}

/* ---- the response ---------------------------------------------------------------- */

#define ELEM_MAX 34 /* longest element text plus its comma */

/* Writes count elements of t as JSON values, comma-separated; non-finite
 * floats as null (JSON has no NaN or Inf). */
static int write_values(struct buf *b, const struct serve_tensor *t, int64_t count, struct err *e) {
  const unsigned char *p = t->data;
  size_t es = serve_dtype_size(t->dtype);
  enum serve_dtype dt = t->dtype;
  for (int64_t i0 = 0; i0 < count; i0 += 4096) {
    int64_t n = count - i0 < 4096 ? count - i0 : 4096;
    if (buf_reserve(b, (size_t)n * ELEM_MAX))
      return err_set(e, ERR_NO_MEMORY, "out of memory for the response");
    char *o = b->data + b->len;
    for (int64_t i = i0; i < i0 + n; i++) {
      if (i) *o++ = ',';
      const unsigned char *x = p + (size_t)i * es;
      switch (dt) {
      case SERVE_BOOL:
        if (*x) {
          memcpy(o, "true", 4);
          o += 4;
        } else {
          memcpy(o, "false", 5);
          o += 5;
        }
        break;
      case SERVE_FP32: {
        float f;
        memcpy(&f, x, 4);
        if (isfinite(f))
          o += serve_fmt_f32(o, f);
        else {
          memcpy(o, "null", 4);
          o += 4;
        }
        break;
      }
      case SERVE_FP64: {
        double d;
        memcpy(&d, x, 8);
        if (isfinite(d))
          o += serve_fmt_f64(o, d);
        else {
          memcpy(o, "null", 4);
          o += 4;
        }
        break;
      }
      default: {
        struct serve_val v;
        serve_val_load(dt, p, (size_t)i, &v);
        if (v.kind == SERVE_VAL_I64)
          o += serve_fmt_i64(o, v.i);
        else if (v.kind == SERVE_VAL_U64)
          o += serve_fmt_u64(o, v.u);
        else if (isfinite(v.f))
          o += serve_fmt_f32(o, (float)v.f); /* FP16/BF16 values are exact floats */
        else {
          memcpy(o, "null", 4);
          o += 4;
        }
      }
      }
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = 0;
  }
  return 0;
}

/* Elements of an output: the count the protocol will report, checked
 * against what the tensor holds (a backend bug must not read past data). */
static int out_check(const struct serve_tensor *t, int64_t *count, struct err *e) {
  if (t->ndim < 0 || t->ndim > SERVE_MAX_DIMS)
    return err_set(e, ERR_INTERNAL, "output '%s' has a bad rank", t->name);
  if (!t->data && t->json) {
    if (!json_is_array(t->json))
      return err_set(e, ERR_INTERNAL, "output '%s': per-row values are not a list", t->name);
    *count = (int64_t)json_array_size(t->json);
    return 0;
  }
  int64_t n = serve_shape_count(t->shape, t->ndim);
  if (n < 0) return err_set(e, ERR_INTERNAL, "output '%s' has a bad shape", t->name);
  if (n > 0 && !t->data) return err_set(e, ERR_INTERNAL, "output '%s' has no data", t->name);
  if (t->dtype == SERVE_BYTES) {
    if (serve_bytes_walk(t->data, t->nbytes, n, NULL) < 0)
      return err_set(e, ERR_INTERNAL, "output '%s': BYTES elements run past its data", t->name);
  } else {
    size_t es = serve_dtype_size(t->dtype);
    if (!es || (uint64_t)n > t->nbytes / es)
      return err_set(e, ERR_INTERNAL, "output '%s' holds %zu bytes, its shape needs more", t->name,
                     t->nbytes);
  }
  *count = n;
  return 0;
}

struct out_sel {
  const struct serve_tensor *t;
  bool binary;
  int64_t count;
};

static int write_shape(struct buf *b, const struct serve_tensor *t, int64_t count) {
  char sh[SERVE_MAX_DIMS * 24];
  if (!t->data && t->json) {
    int64_t one = count;
    return buf_puts(b, serve_shape_str(sh, sizeof sh, &one, 1));
  }
  return buf_puts(b, serve_shape_str(sh, sizeof sh, t->shape, t->ndim));
}

static int write_json_rows_text(struct buf *b, const struct serve_tensor *t, struct err *e) {
  struct buf tmp;
  buf_init(&tmp);
  for (size_t i = 0; i < json_array_size(t->json); i++) {
    buf_reset(&tmp);
    if (json_emit(&tmp, json_array_get(t->json, i)) || (i && buf_putc(b, ',')) ||
        serve_json_escape_n(b, tmp.data ? tmp.data : "", tmp.len)) {
      buf_fini(&tmp);
      return err_set(e, ERR_NO_MEMORY, "out of memory for the response");
    }
  }
  buf_fini(&tmp);
  return 0;
}

static int write_json_rows_binary(struct buf *b, const struct serve_tensor *t, struct err *e) {
  struct buf tmp;
  buf_init(&tmp);
  for (size_t i = 0; i < json_array_size(t->json); i++) {
    buf_reset(&tmp);
    uint32_t le;
    if (json_emit(&tmp, json_array_get(t->json, i)) || tmp.len > UINT32_MAX) goto oom;
    le = htole32((uint32_t)tmp.len);
    if (buf_append(b, &le, 4) || buf_append(b, tmp.data ? tmp.data : "", tmp.len)) goto oom;
  }
  buf_fini(&tmp);
  return 0;
oom:
  buf_fini(&tmp);
  return err_set(e, ERR_NO_MEMORY, "out of memory for the response");
}

/* The bytes a binary output takes (per-row JSON: its texts in BYTES form). */
static size_t binary_size(const struct serve_tensor *t, int64_t count) {
  if (!t->data && t->json) {
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(t->json); i++) {
      char *s = json_dumps(json_array_get(t->json, i),
                           JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
      n += 4 + (s ? strlen(s) : 0);
      free(s);
    }
    return n;
  }
  if (t->dtype == SERVE_BYTES) return (size_t)serve_bytes_walk(t->data, t->nbytes, count, NULL);
  return (size_t)count * serve_dtype_size(t->dtype);
}

int serve_v2_encode_response(struct buf *out, const char *model_name, const char *model_version,
                             const struct serve_request *rq, const struct serve_tensor *outputs,
                             int noutputs, size_t *header_len, struct err *e) {
  if (header_len) *header_len = 0;
  if (noutputs < 0 || (noutputs && !outputs))
    return err_set(e, ERR_INTERNAL, "no outputs to encode");
  int nsel = rq && rq->outputs ? rq->noutputs : noutputs;
  struct out_sel *sel = calloc((size_t)(nsel ? nsel : 1), sizeof *sel);
  if (!sel) return err_set(e, ERR_NO_MEMORY, "out of memory for the response");
  int rc = 0;
  bool any_binary = false;
  for (int i = 0; i < nsel; i++) {
    if (rq && rq->outputs) {
      const char *want = rq->outputs[i].name;
      for (int j = 0; j < noutputs && !sel[i].t; j++)
        if (strcmp(outputs[j].name, want) == 0) sel[i].t = &outputs[j];
      if (!sel[i].t) {
        struct buf names;
        buf_init(&names);
        for (int j = 0; j < noutputs; j++)
          buf_printf(&names, "%s%s", j ? ", " : "", outputs[j].name);
        rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "unknown output '%s'; the model gives: %s",
                     want, names.data ? names.data : "(nothing)");
        buf_fini(&names);
        goto done;
      }
      sel[i].binary = rq->outputs[i].binary;
    } else {
      sel[i].t = &outputs[i];
      sel[i].binary = rq && rq->binary_all;
    }
    if ((rc = out_check(sel[i].t, &sel[i].count, e))) goto done;
    any_binary |= sel[i].binary;
  }
  size_t start = out->len;
  rc = buf_puts(out, "{\"model_name\":");
  rc = rc ? rc
          : serve_json_escape_n(out, model_name ? model_name : "",
                                model_name ? strlen(model_name) : 0);
  if (!rc && model_version) {
    rc = buf_puts(out, ",\"model_version\":");
    rc = rc ? rc : serve_json_escape_n(out, model_version, strlen(model_version));
  }
  if (!rc && rq && rq->id) {
    rc = buf_puts(out, ",\"id\":");
    rc = rc ? rc : serve_json_escape_n(out, rq->id, strlen(rq->id));
  }
  rc = rc ? rc : buf_puts(out, ",\"outputs\":[");
  for (int i = 0; i < nsel && !rc; i++) {
    const struct serve_tensor *t = sel[i].t;
    bool rows_json = !t->data && t->json;
    enum serve_dtype dt = rows_json ? SERVE_BYTES : t->dtype;
    rc = buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
    rc = rc ? rc : serve_json_escape_n(out, t->name, strlen(t->name));
    rc = rc ? rc : buf_printf(out, ",\"datatype\":\"%s\",\"shape\":", serve_dtype_name(dt));
    rc = rc ? rc : write_shape(out, t, sel[i].count);
    if (rc) break;
    if (sel[i].binary) {
      rc = buf_printf(out, ",\"parameters\":{\"binary_data_size\":%zu}}",
                      binary_size(t, sel[i].count));
      continue;
    }
    rc = buf_puts(out, ",\"data\":[");
    if (rc) break;
    if (rows_json) {
      rc = write_json_rows_text(out, t, e);
    } else if (dt == SERVE_BYTES) {
      const char *p = t->data;
      for (int64_t k = 0; k < sel[i].count && !rc; k++) {
        uint32_t l;
        memcpy(&l, p, 4);
        l = le32toh(l);
        rc = (k && buf_putc(out, ',')) || serve_json_escape_n(out, p + 4, l) ? -ERR_NO_MEMORY : 0;
        p += 4 + l;
      }
    } else {
      rc = write_values(out, t, sel[i].count, e);
    }
    rc = rc ? rc : buf_puts(out, "]}");
  }
  rc = rc ? rc : buf_puts(out, "]}");
  if (rc) { /* every failure while writing is memory */
    out->len = start;
    if (out->data) out->data[start] = 0;
    rc = err_set(e, ERR_NO_MEMORY, "out of memory for the response");
    goto done;
  }
  if (any_binary) {
    size_t hl = out->len - start;
    for (int i = 0; i < nsel && !rc; i++) {
      if (!sel[i].binary) continue;
      const struct serve_tensor *t = sel[i].t;
      if (!t->data && t->json)
        rc = write_json_rows_binary(out, t, e);
      else if (buf_append(out, t->data, binary_size(t, sel[i].count)))
        rc = err_set(e, ERR_NO_MEMORY, "out of memory for the response");
    }
    if (rc) {
      out->len = start;
      if (out->data) out->data[start] = 0;
    } else if (header_len) {
      *header_len = hl;
    }
  }
done:
  free(sel);
  return rc;
}
