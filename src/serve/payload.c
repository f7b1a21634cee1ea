/* serve/payload: MLflow scoring-server payloads (dataframe_split,
 * dataframe_records, instances, inputs; params) mapped onto a model's
 * signature by column or input name, and the {"predictions": ...} answer. */
#include "proto.h"

#include <endian.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT_LIST "'dataframe_split', 'dataframe_records', 'instances' or 'inputs'"

/* "a, b, c" — names for a message, cut short well inside struct err */
static const char *name_list(char *buf, size_t cap, const char *const *names, int n) {
  size_t len = 0;
  buf[0] = 0;
  for (int i = 0; i < n; i++) {
    size_t l = strlen(names[i]);
    if (len + l + 8 >= cap) {
      snprintf(buf + len, cap - len, "%s...", i ? ", " : "");
      break;
    }
    len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", names[i]);
  }
  return buf;
}

struct ctx {
  const struct serve_signature *sig;
  struct arena *a;
  struct err *e;
  const char **in_names; /* sig input names */
};

static int no_mem(struct err *e) {
  return err_set(e, ERR_NO_MEMORY, "out of memory for the request");
}

/* ---- tensors from nested lists ---------------------------------------------- */

static int64_t leaf_count(const json_t *v, int depth) {
  if (!json_is_array(v)) return 1;
  if (depth > SERVE_MAX_DIMS) return -1;
  int64_t n = 0;
  for (size_t i = 0; i < json_array_size(v); i++) {
    int64_t c = leaf_count(json_array_get(v, i), depth + 1);
    if (c < 0) return -1;
    n += c;
  }
  return n;
}

/* The shape the first elements spell out: [len(v), len(v[0]), ...]. */
static int infer_shape(const json_t *v, int64_t *shape, int *ndim) {
  int nd = 0;
  while (json_is_array(v)) {
    if (nd == SERVE_MAX_DIMS) return -1;
    shape[nd++] = (int64_t)json_array_size(v);
    if (json_array_size(v) == 0) break;
    v = json_array_get(v, 0);
  }
  *ndim = nd;
  return 0;
}

/* Leaves of v, which must have exactly shape[depth..ndim). */
static bool collect(json_t *v, const int64_t *shape, int ndim, int depth, json_t **leaves,
                    int64_t *n) {
  if (depth == ndim) {
    if (json_is_array(v)) return false;
    leaves[(*n)++] = v;
    return true;
  }
  if (!json_is_array(v) || (int64_t)json_array_size(v) != shape[depth]) return false;
  for (size_t i = 0; i < json_array_size(v); i++)
    if (!collect(json_array_get(v, i), shape, ndim, depth + 1, leaves, n)) return false;
  return true;
}

/* Fits the value's rank to the input: a column of scalars [n] for an
 * input of [-1, 1] becomes [n, 1]. */
static void fit_rank(struct serve_tensor *t, const struct serve_tensor_spec *sp) {
  if (sp->ndim == t->ndim + 1 && t->ndim < SERVE_MAX_DIMS &&
      (sp->shape[sp->ndim - 1] == 1 || sp->shape[sp->ndim - 1] == -1))
    t->shape[t->ndim++] = 1;
}

static int ragged(struct ctx *c, const char *name, const int64_t *shape, int ndim) {
  char sh[SERVE_MAX_DIMS * 24];
  return err_set(c->e, ERR_INVALID_PARAMETER_VALUE,
                 "input '%s': nested lists are ragged or mix lists and values; expected shape %s "
                 "from the first "
                 "elements",
                 name, serve_shape_str(sh, sizeof sh, shape, ndim));
}

/* rows[0..n) stacked: shape [n] + the shape of rows[0]; each row is either
 * the value itself or, when by_name, an object holding it under name. */
static int stack_rows(struct ctx *c, const struct serve_tensor_spec *sp, json_t *const *rows,
                      size_t n, struct serve_tensor *t) {
  memset(t, 0, sizeof *t);
  str_copy(t->name, sizeof t->name, sp->name);
  t->dtype = sp->dtype;
  t->shape[0] = (int64_t)n;
  int rnd = 0;
  if (n && infer_shape(rows[0], t->shape + 1, &rnd))
    return err_set(c->e, ERR_INVALID_PARAMETER_VALUE,
                   "input '%s': values are nested deeper than %d levels", sp->name,
                   SERVE_MAX_DIMS - 1);
  if (rnd + 1 > SERVE_MAX_DIMS)
    return err_set(c->e, ERR_INVALID_PARAMETER_VALUE,
                   "input '%s': values are nested deeper than %d levels", sp->name,
                   SERVE_MAX_DIMS - 1);
  t->ndim = rnd + 1;
  int64_t total = 0;
  for (size_t i = 0; i < n; i++) {
    int64_t k = leaf_count(rows[i], 1);
    if (k < 0)
      return err_set(c->e, ERR_INVALID_PARAMETER_VALUE,
                     "input '%s': values are nested deeper than %d levels", sp->name,
                     SERVE_MAX_DIMS);
    total += k;
  }
  int64_t count = serve_shape_count(t->shape, t->ndim);
  if (count != total) return ragged(c, sp->name, t->shape, t->ndim);
  json_t **leaves = arena_alloc(c->a, (size_t)(count ? count : 1) * sizeof *leaves);
  if (!leaves) return no_mem(c->e);
  int64_t got = 0;
  for (size_t i = 0; i < n; i++)
    if (!collect(rows[i], t->shape, t->ndim, 1, leaves, &got))
      return ragged(c, sp->name, t->shape, t->ndim);
  fit_rank(t, sp);
  return serve_leaves_to_tensor(t, leaves, count, true, NULL, c->a, c->e);
}

/* A whole tensor given as one nested list. */
static int tensor_from_list(struct ctx *c, const struct serve_tensor_spec *sp, json_t *v,
                            struct serve_tensor *t) {
  if (!json_is_array(v))
    return err_set(c->e, ERR_INVALID_PARAMETER_VALUE, "input '%s': expected a list of values",
                   sp->name);
  size_t n = json_array_size(v);
  json_t **rows = arena_alloc(c->a, (n ? n : 1) * sizeof *rows);
  if (!rows) return no_mem(c->e);
  for (size_t i = 0; i < n; i++) rows[i] = json_array_get(v, i);
  return stack_rows(c, sp, rows, n, t);
}

/* ---- tables (models that name their columns) ------------------------------------ */

static int col_index(const struct serve_signature *sig, const char *name, int hint) {
  if (hint >= 0 && hint < sig->ncolumns && strcmp(sig->columns[hint], name) == 0) return hint;
  for (int i = 0; i < sig->ncolumns; i++)
    if (strcmp(sig->columns[i], name) == 0) return i;
  return -1;
}

static int unknown_col(struct ctx *c, const char *where, const char *name) {
  char list[160];
  return err_set(
      c->e, ERR_INVALID_PARAMETER_VALUE, "%sunknown column '%s'; the model takes: %s", where, name,
      name_list(list, sizeof list, (const char *const *)c->sig->columns, c->sig->ncolumns));
}

static int missing_col(struct ctx *c, const char *where, const char *name) {
  return err_set(c->e, ERR_INVALID_PARAMETER_VALUE, "%smissing column '%s'", where, name);
}

struct table {
  struct serve_tensor *t;
  json_t **leaves;
  int64_t rows;
  int ncols;
};

static int table_begin(struct ctx *c, struct table *tb, int64_t rows, struct serve_tensor *t) {
  const struct serve_tensor_spec *sp = &c->sig->inputs[0];
  memset(t, 0, sizeof *t);
  str_copy(t->name, sizeof t->name, sp->name);
  t->dtype = sp->dtype;
  t->ndim = 2;
  t->shape[0] = rows;
  t->shape[1] = c->sig->ncolumns;
  tb->t = t;
  tb->rows = rows;
  tb->ncols = c->sig->ncolumns;
  int64_t cells = rows * tb->ncols;
  tb->leaves = arena_alloc(c->a, (size_t)(cells > 0 ? cells : 1) * sizeof *tb->leaves);
  return tb->leaves ? 0 : no_mem(c->e);
}

static int table_end(struct ctx *c, struct table *tb) {
  struct serve_tensor *t = tb->t;
  const struct serve_tensor_spec *sp = &c->sig->inputs[0];
  int rc = serve_leaves_to_tensor(t, tb->leaves, tb->rows * tb->ncols, true,
                                  (const char *const *)c->sig->columns, c->a, c->e);
  if (!rc && sp->ndim == 1 && tb->ncols == 1) t->ndim = 1; /* a one-column model that takes [n] */
  return rc;
}

/* One record {column: value} into row r. */
static int table_record(struct ctx *c, struct table *tb, json_t *rec, int64_t r, const char *what) {
  char where[64];
  snprintf(where, sizeof where, "%s %lld: ", what, (long long)r);
  if (!json_is_object(rec))
    return err_set(c->e, ERR_INVALID_PARAMETER_VALUE,
                   "%s %lld must be an object {column: value} or a list", what, (long long)r);
  if (json_object_size(rec) != (size_t)tb->ncols) {
    const char *k;
    json_t *v;
    json_object_foreach(rec, k, v) {
      if (col_index(c->sig, k, -1) < 0) return unknown_col(c, where, k);
    }
  }
  for (int j = 0; j < tb->ncols; j++) {
    json_t *v = json_object_get(rec, c->sig->columns[j]);
    if (!v) return missing_col(c, where, c->sig->columns[j]);
    tb->leaves[r * tb->ncols + j] = v;
  }
  return 0;
}

/* One positional row [v0, v1, ...] into row r (map: request column to
 * signature column, or NULL for the signature's order). */
static int table_row(struct ctx *c, struct table *tb, json_t *row, int64_t r, const int *map,
                     int nreq, const char *what) {
  if (!json_is_array(row)) {
    if (tb->ncols == 1 && !map &&
        !json_is_object(row)) { /* a one-column row may be the bare value */
      tb->leaves[r] = row;
      return 0;
    }
    return err_set(c->e, ERR_INVALID_PARAMETER_VALUE, "%s %lld must be a list of %d values", what,
                   (long long)r, nreq);
  }
  if (json_array_size(row) != (size_t)nreq)
    return err_set(c->e, ERR_INVALID_PARAMETER_VALUE,
                   "%s %lld has %zu values; expected %d (one per column)", what, (long long)r,
                   json_array_size(row), nreq);
  for (int j = 0; j < nreq; j++)
    tb->leaves[r * tb->ncols + (map ? map[j] : j)] = json_array_get(row, (size_t)j);
  return 0;
}

/* A list of rows, each a list (positional) or an object (record). */
static int table_from_rows(struct ctx *c, json_t *rows, const char *what, struct serve_tensor *t) {
  if (!json_is_array(rows))
    return err_set(c->e, ERR_INVALID_PARAMETER_VALUE, "'%ss' must be a list of rows", what);
  size_t n = json_array_size(rows);
  /* sizes first, so the table allocated is no larger than the values sent */
  for (size_t r = 0; r < n; r++) {
    json_t *row = json_array_get(rows, r);
    size_t k = json_is_array(row)    ? json_array_size(row)
               : json_is_object(row) ? json_object_size(row)
                                     : 1;
    if (k != (size_t)c->sig->ncolumns) {
      if (json_is_object(row)) {
        char where[64];
        snprintf(where, sizeof where, "%s %zu: ", what, r);
        const char *key;
        json_t *v;
        json_object_foreach(row, key, v) {
          if (col_index(c->sig, key, -1) < 0) return unknown_col(c, where, key);
        }
        for (int j = 0; j < c->sig->ncolumns; j++)
          if (!json_object_get(row, c->sig->columns[j]))
            return missing_col(c, where, c->sig->columns[j]);
      }
      if (json_is_array(row) || c->sig->ncolumns != 1)
        return err_set(c->e, ERR_INVALID_PARAMETER_VALUE,
                       "%s %zu has %zu values; expected %d (one per column)", what, r, k,
                       c->sig->ncolumns);
    }
  }
  struct table tb;
  int rc = table_begin(c, &tb, (int64_t)n, t);
  for (size_t r = 0; r < n && !rc; r++) {
    json_t *row = json_array_get(rows, r);
    rc = json_is_object(row) ? table_record(c, &tb, row, (int64_t)r, what)
                             : table_row(c, &tb, row, (int64_t)r, NULL, c->sig->ncolumns, what);
  }
  return rc ? rc : table_end(c, &tb);
}

/* {"columns": [...], "data": [[...]], "index": [...]} */
static int table_from_split(struct ctx *c, json_t *split, struct serve_tensor *t) {
  if (!json_is_object(split))
    return err_set(c->e, ERR_INVALID_PARAMETER_VALUE,
                   "'dataframe_split' must be an object {columns, data}");
  json_t *cols = json_object_get(split, "columns"), *data = json_object_get(split, "data");
  if (!json_is_array(data))
    return err_set(c->e, ERR_INVALID_PARAMETER_VALUE,
                   "'dataframe_split.data' must be a list of rows");
  if (!cols) return table_from_rows(c, data, "row", t);
  if (!json_is_array(cols))
    return err_set(c->e, ERR_INVALID_PARAMETER_VALUE,
                   "'dataframe_split.columns' must be a list of column names");
  int nreq = (int)json_array_size(cols);
  int *map = arena_alloc(c->a, (size_t)(json_array_size(cols) + 1) * sizeof *map);
  bool *seen = arena_zalloc(c->a, (size_t)c->sig->ncolumns + 1);
  if (!map || !seen) return no_mem(c->e);
  for (size_t j = 0; j < json_array_size(cols); j++) {
    json_t *name = json_array_get(cols, j);
    if (!json_is_string(name))
      return err_set(c->e, ERR_INVALID_PARAMETER_VALUE,
                     "'dataframe_split.columns' must be a list of column names");
    int k = col_index(c->sig, json_string_value(name), (int)j);
    if (k < 0) return unknown_col(c, "", json_string_value(name));
    if (seen[k])
      return err_set(c->e, ERR_INVALID_PARAMETER_VALUE, "column '%s' appears twice",
                     json_string_value(name));
    seen[k] = true;
    map[j] = k;
  }
  for (int k = 0; k < c->sig->ncolumns; k++)
    if (!seen[k]) return missing_col(c, "", c->sig->columns[k]);
  size_t n = json_array_size(data);
  for (size_t r = 0; r < n; r++) {
    json_t *row = json_array_get(data, r);
    if (!json_is_array(row) || json_array_size(row) != (size_t)nreq)
      return err_set(c->e, ERR_INVALID_PARAMETER_VALUE,
                     "row %zu must be a list of %d values (one per column)", r, nreq);
  }
  struct table tb;
  int rc = table_begin(c, &tb, (int64_t)n, t);
  for (size_t r = 0; r < n && !rc; r++)
    rc = table_row(c, &tb, json_array_get(data, r), (int64_t)r, map, nreq, "row");
  return rc ? rc : table_end(c, &tb);
}

/* {"column": [values...], ...} */
static int table_from_columns(struct ctx *c, json_t *obj, struct serve_tensor *t) {
  const char *key;
  json_t *v;
  int64_t rows = -1;
  json_object_foreach(obj, key, v) {
    if (col_index(c->sig, key, -1) < 0) return unknown_col(c, "", key);
    if (!json_is_array(v))
      return err_set(c->e, ERR_INVALID_PARAMETER_VALUE, "column '%s' must be a list of values",
                     key);
    if (rows >= 0 && (int64_t)json_array_size(v) != rows)
      return err_set(c->e, ERR_INVALID_PARAMETER_VALUE,
                     "column '%s' has %zu values; other columns have %lld", key, json_array_size(v),
                     (long long)rows);
    rows = (int64_t)json_array_size(v);
  }
  for (int j = 0; j < c->sig->ncolumns; j++)
    if (!json_object_get(obj, c->sig->columns[j])) return missing_col(c, "", c->sig->columns[j]);
  struct table tb;
  int rc = table_begin(c, &tb, rows < 0 ? 0 : rows, t);
  for (int j = 0; j < c->sig->ncolumns && !rc; j++) {
    json_t *col = json_object_get(obj, c->sig->columns[j]);
    for (int64_t r = 0; r < tb.rows; r++)
      tb.leaves[r * tb.ncols + j] = json_array_get(col, (size_t)r);
  }
  return rc ? rc : table_end(c, &tb);
}

/* ---- models that name inputs ------------------------------------------------------ */

static int input_index(const struct serve_signature *sig, const char *name) {
  for (int i = 0; i < sig->ninputs; i++)
    if (strcmp(sig->inputs[i].name, name) == 0) return i;
  return -1;
}

static int unknown_input(struct ctx *c, const char *where, const char *name) {
  char list[160];
  return err_set(c->e, ERR_INVALID_PARAMETER_VALUE, "%sunknown input '%s'; the model takes: %s",
                 where, name, name_list(list, sizeof list, c->in_names, c->sig->ninputs));
}

static int alloc_inputs(struct ctx *c, struct serve_request *rq, int n) {
  rq->inputs = arena_zalloc(c->a, (size_t)n * sizeof *rq->inputs);
  if (!rq->inputs) return no_mem(c->e);
  rq->ninputs = n;
  return 0;
}

/* "instances": rows; a row is the single input's value or {name: value}. */
static int inputs_from_instances(struct ctx *c, json_t *list, struct serve_request *rq) {
  const struct serve_signature *sig = c->sig;
  if (!json_is_array(list))
    return err_set(c->e, ERR_INVALID_PARAMETER_VALUE, "'instances' must be a list of rows");
  size_t n = json_array_size(list);
  int rc = alloc_inputs(c, rq, sig->ninputs);
  json_t **rows = arena_alloc(c->a, (n ? n : 1) * sizeof *rows);
  if (rc || !rows) return rc ? rc : no_mem(c->e);
  for (int k = 0; k < sig->ninputs; k++) {
    const char *nm = sig->inputs[k].name;
    for (size_t r = 0; r < n; r++) {
      json_t *row = json_array_get(list, r);
      if (json_is_object(row)) {
        char where[64];
        snprintf(where, sizeof where, "instance %zu: ", r);
        if (k == 0) {
          const char *key;
          json_t *v;
          json_object_foreach(row, key, v) {
            if (input_index(sig, key) < 0) return unknown_input(c, where, key);
          }
        }
        rows[r] = json_object_get(row, nm);
        if (!rows[r])
          return err_set(c->e, ERR_INVALID_PARAMETER_VALUE, "%smissing input '%s'", where, nm);
      } else if (sig->ninputs == 1) {
        rows[r] = row;
      } else {
        return err_set(c->e, ERR_INVALID_PARAMETER_VALUE,
                       "instance %zu must be an object {input: value}; the model takes %d inputs",
                       r, sig->ninputs);
      }
    }
    if ((rc = stack_rows(c, &sig->inputs[k], rows, n, &rq->inputs[k]))) return rc;
  }
  return 0;
}

/* {"name": tensor-as-nested-list, ...} */
static int inputs_from_object(struct ctx *c, json_t *obj, struct serve_request *rq) {
  const struct serve_signature *sig = c->sig;
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    if (input_index(sig, key) < 0) return unknown_input(c, "", key);
  }
  int rc = alloc_inputs(c, rq, sig->ninputs);
  for (int k = 0; k < sig->ninputs && !rc; k++) {
    json_t *x = json_object_get(obj, sig->inputs[k].name);
    if (!x)
      return err_set(c->e, ERR_INVALID_PARAMETER_VALUE, "missing input '%s'", sig->inputs[k].name);
    rc = tensor_from_list(c, &sig->inputs[k], x, &rq->inputs[k]);
  }
  return rc;
}

/* A dataframe for a model without column names: columns that name its
 * inputs feed them (one value per row each); otherwise a one-input model
 * takes the frame as its table in the order the columns were sent. */
static int inputs_from_frame(struct ctx *c, json_t *colnames, json_t *rows, bool records,
                             struct serve_request *rq) {
  const struct serve_signature *sig = c->sig;
  size_t n = json_array_size(rows);
  bool named = true;
  int ncols = 0;
  const char *first = NULL;
  if (records) {
    for (size_t r = 0; r < n && named; r++) {
      json_t *rec = json_array_get(rows, r);
      if (!json_is_object(rec))
        return err_set(c->e, ERR_INVALID_PARAMETER_VALUE,
                       "record %zu must be an object {column: value}", r);
      const char *key;
      json_t *v;
      json_object_foreach(rec, key, v) {
        if (input_index(sig, key) < 0) {
          named = false;
          first = key;
          break;
        }
      }
    }
  } else if (colnames) {
    ncols = (int)json_array_size(colnames);
    for (int j = 0; j < ncols && named; j++) {
      json_t *nm = json_array_get(colnames, (size_t)j);
      if (!json_is_string(nm))
        return err_set(c->e, ERR_INVALID_PARAMETER_VALUE,
                       "'dataframe_split.columns' must be a list of column names");
      if (input_index(sig, json_string_value(nm)) < 0) {
        named = false;
        first = json_string_value(nm);
      }
    }
  } else {
    named = false;
  }
  if (!named) {
    if (sig->ninputs != 1) {
      if (first) return unknown_input(c, "", first);
      return err_set(c->e, ERR_INVALID_PARAMETER_VALUE,
                     "'dataframe_split' needs 'columns' naming the model's inputs");
    }
    if (records)
      return err_set(c->e, ERR_INVALID_PARAMETER_VALUE,
                     "record keys must name the model's input '%s' (the model names no columns)",
                     sig->inputs[0].name);
    /* positional table: rows as given */
    int rc = alloc_inputs(c, rq, 1);
    return rc ? rc : tensor_from_list(c, &sig->inputs[0], rows, &rq->inputs[0]);
  }
  int rc = alloc_inputs(c, rq, sig->ninputs);
  json_t **vals = arena_alloc(c->a, (n ? n : 1) * sizeof *vals);
  if (rc || !vals) return rc ? rc : no_mem(c->e);
  for (int k = 0; k < sig->ninputs; k++) {
    const char *nm = sig->inputs[k].name;
    int j = -1;
    if (!records) {
      for (int q = 0; q < ncols; q++)
        if (strcmp(json_string_value(json_array_get(colnames, (size_t)q)), nm) == 0) {
          if (j >= 0)
            return err_set(c->e, ERR_INVALID_PARAMETER_VALUE, "column '%s' appears twice", nm);
          j = q;
        }
      if (j < 0) return err_set(c->e, ERR_INVALID_PARAMETER_VALUE, "missing column '%s'", nm);
    }
    for (size_t r = 0; r < n; r++) {
      json_t *row = json_array_get(rows, r);
      if (records) {
        vals[r] = json_object_get(row, nm);
        if (!vals[r])
          return err_set(c->e, ERR_INVALID_PARAMETER_VALUE, "record %zu: missing column '%s'", r,
                         nm);
      } else {
        if (!json_is_array(row) || json_array_size(row) != (size_t)ncols)
          return err_set(c->e, ERR_INVALID_PARAMETER_VALUE,
                         "row %zu must be a list of %d values (one per column)", r, ncols);
        vals[r] = json_array_get(row, (size_t)j);
      }
    }
    if ((rc = stack_rows(c, &sig->inputs[k], vals, n, &rq->inputs[k]))) return rc;
  }
  return 0;
}

/* ---- the request -------------------------------------------------------------------- */

static int parse_params(json_t *params, struct serve_request *rq, struct err *e) {
  if (!json_is_object(params))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "'params' must be an object");
  const char *key;
  json_t *v;
  json_object_foreach(params, key, v) {
    bool *dst = strcmp(key, "predict_proba") == 0   ? &rq->popts.proba
                : strcmp(key, "output_margin") == 0 ? &rq->popts.margin
                                                    : NULL;
    if (!dst)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "unknown param '%s'; Kiln takes predict_proba and output_margin", key);
    if (!json_is_boolean(v))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "param '%s' must be true or false", key);
    *dst = json_is_true(v);
  }
  return 0;
}

/* What both entry points check first: an object with exactly one of the
 * four formats (and "params"), against a model that names its inputs. */
static int envelope(const json_t *body, const struct serve_signature *sig,
                    struct serve_request *out, const char **fmt_out, json_t **payload_out,
                    struct err *e) {
  if (!json_is_object(body))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "the request must be a JSON object with one of " FORMAT_LIST);
  if (!sig || sig->ninputs <= 0 || !sig->inputs)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "the model describes no inputs, so a scoring payload cannot be mapped onto it; "
                   "send a V2 request");
  const char *fmt = NULL, *key;
  json_t *v, *payload = NULL;
  json_object_foreach((json_t *)body, key, v) {
    if (strcmp(key, "params") == 0) continue;
    if (strcmp(key, "dataframe_split") && strcmp(key, "dataframe_records") &&
        strcmp(key, "instances") && strcmp(key, "inputs"))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "unknown key '%s'; the request takes one of " FORMAT_LIST " (and 'params')",
                     key);
    if (fmt)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "the request has both '%s' and '%s'; send exactly one of " FORMAT_LIST, fmt,
                     key);
    fmt = key;
    payload = v;
  }
  if (!fmt) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "the request needs one of " FORMAT_LIST);
  json_t *params = json_object_get(body, "params");
  int rc = params ? parse_params(params, out, e) : 0;
  if (rc) return rc;
  *fmt_out = fmt;
  *payload_out = payload;
  return 0;
}

int serve_mlflow_parse_request(const json_t *body, const struct serve_signature *sig,
                               struct arena *a, struct serve_request *out, struct err *e) {
  memset(out, 0, sizeof *out);
  const char *fmt;
  json_t *payload;
  int rc = envelope(body, sig, out, &fmt, &payload, e);
  if (rc) return rc;

  const char **names = arena_alloc(a, (size_t)sig->ninputs * sizeof *names);
  if (!names) return no_mem(e);
  for (int i = 0; i < sig->ninputs; i++) names[i] = sig->inputs[i].name;
  struct ctx c = {sig, a, e, names};
  bool table = sig->columns && sig->ncolumns > 0;

  if (table) {
    if ((rc = alloc_inputs(&c, out, 1))) return rc;
    if (strcmp(fmt, "dataframe_split") == 0)
      rc = table_from_split(&c, payload, &out->inputs[0]);
    else if (strcmp(fmt, "dataframe_records") == 0)
      rc = table_from_rows(&c, payload, "record", &out->inputs[0]);
    else if (strcmp(fmt, "instances") == 0)
      rc = table_from_rows(&c, payload, "instance", &out->inputs[0]);
    else if (json_is_object(payload))
      rc = table_from_columns(&c, payload, &out->inputs[0]);
    else
      rc = table_from_rows(&c, payload, "input", &out->inputs[0]);
    if (!rc && strcmp(fmt, "dataframe_records") == 0) {
      /* every record was an object: table_from_rows also takes lists */
      for (size_t r = 0; r < json_array_size(payload); r++)
        if (!json_is_object(json_array_get(payload, r)))
          rc = err_set(e, ERR_INVALID_PARAMETER_VALUE,
                       "record %zu must be an object {column: value}", r);
    }
  } else if (strcmp(fmt, "instances") == 0) {
    rc = inputs_from_instances(&c, payload, out);
  } else if (strcmp(fmt, "inputs") == 0) {
    if (json_is_object(payload)) {
      rc = inputs_from_object(&c, payload, out);
    } else if (sig->ninputs == 1) {
      rc = alloc_inputs(&c, out, 1);
      rc = rc ? rc : tensor_from_list(&c, &sig->inputs[0], payload, &out->inputs[0]);
    } else {
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "the model takes %d inputs; send 'inputs' as an object {input: values}",
                   sig->ninputs);
    }
  } else if (strcmp(fmt, "dataframe_split") == 0) {
    if (!json_is_object(payload) || !json_is_array(json_object_get(payload, "data")))
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "'dataframe_split' must be an object {columns, data}");
    else {
      json_t *cols = json_object_get(payload, "columns");
      if (cols && !json_is_array(cols))
        rc = err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "'dataframe_split.columns' must be a list of column names");
      else
        rc = inputs_from_frame(&c, cols, json_object_get(payload, "data"), false, out);
    }
  } else {
    if (!json_is_array(payload))
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "'dataframe_records' must be a list of objects");
    else
      rc = inputs_from_frame(&c, NULL, payload, true, out);
  }
  if (rc) {
    memset(out, 0, sizeof *out);
    return rc;
  }
  return 0;
}

/* ---- the same from the body's text ------------------------------------------------
 * The common payloads are a matrix of numbers ({"inputs": [[...], ...]},
 * "instances", dataframe_split's "data"): those are read by the numeric
 * pre-pass (scan.c) instead of jansson. Only what maps plainly is taken
 * that way (one input, a regular nest, every value converting); anything
 * else, errors included, goes the jansson way so that every message is the
 * one serve_mlflow_parse_request gives. */
static const char *const mlf_keys[] = {"instances", "inputs", "dataframe_split", "data"};
static int mlf_match(const struct serve_lex_frame *st, int depth) {
  if (st[0].kind != '{') return -1;
  if (depth == 1) return st[0].key == 0 ? 0 : st[0].key == 1 ? 1 : -1;
  if (depth == 2 && st[0].key == 2 && st[1].kind == '{' && st[1].key == 3) return 2;
  return -1;
}

#define NOT_TAKEN 1

/* dataframe_split's columns as a map onto the signature's, or NULL (with
 * *ok false when the slow path must judge them). */
static int *split_map(const struct serve_signature *sig, json_t *cols, struct arena *a, bool *ok) {
  *ok = false;
  if (!json_is_array(cols) || json_array_size(cols) != (size_t)sig->ncolumns) return NULL;
  int *map = arena_alloc(a, (size_t)sig->ncolumns * sizeof *map);
  bool *seen = arena_zalloc(a, (size_t)sig->ncolumns);
  if (!map || !seen) return NULL;
  for (int j = 0; j < sig->ncolumns; j++) {
    json_t *name = json_array_get(cols, (size_t)j);
    int k = json_is_string(name) ? col_index(sig, json_string_value(name), j) : -1;
    if (k < 0 || seen[k]) return NULL;
    seen[k] = true;
    map[j] = k;
  }
  *ok = true;
  return map;
}

static int fast_map(json_t *root, const char *body, const struct serve_signature *sig,
                    const struct serve_fast *f, struct arena *a, struct serve_request *out,
                    struct err *e) {
  const char *fmt;
  json_t *payload;
  int rc = envelope(root, sig, out, &fmt, &payload, e);
  if (rc) return rc; /* the jansson way would say the same */
  int slot = strcmp(fmt, "instances") == 0         ? 0
             : strcmp(fmt, "inputs") == 0          ? 1
             : strcmp(fmt, "dataframe_split") == 0 ? 2
                                                   : -1;
  const struct serve_tensor_spec *in0 = &sig->inputs[0];
  if (slot < 0 || !f->span[slot].set || sig->ninputs != 1 || in0->dtype == SERVE_BOOL ||
      in0->dtype == SERVE_BYTES)
    return NOT_TAKEN;
  const struct serve_span *sp = &f->span[slot];
  bool table = sig->columns && sig->ncolumns > 0;
  int *map = NULL;
  if (slot == 2) {
    if (!json_is_object(payload)) return NOT_TAKEN;
    json_t *cols = json_object_get(payload, "columns");
    if (cols && table) {
      bool ok;
      map = split_map(sig, cols, a, &ok);
      if (!ok) return NOT_TAKEN;
    } else if (cols) { /* columns naming the input feed it per row: not a matrix */
      if (!json_is_array(cols)) return NOT_TAKEN;
      bool named = json_array_size(cols) > 0;
      for (size_t j = 0; j < json_array_size(cols); j++) {
        json_t *nm = json_array_get(cols, j);
        if (!json_is_string(nm)) return NOT_TAKEN;
        named &= strcmp(json_string_value(nm), in0->name) == 0;
      }
      if (named) return NOT_TAKEN;
    }
  }
  struct serve_tensor t;
  memset(&t, 0, sizeof t);
  str_copy(t.name, sizeof t.name, in0->name);
  t.dtype = in0->dtype;
  if (!serve_span_shape(sp, t.shape, &t.ndim)) return NOT_TAKEN;
  if (table) {
    if (t.ndim != 2 || t.shape[1] != sig->ncolumns) return NOT_TAKEN;
  } else {
    fit_rank(&t, in0);
  }
  if (serve_span_convert(&t, f, slot, body, map, a, e)) return NOT_TAKEN;
  if (table && in0->ndim == 1 && sig->ncolumns == 1) t.ndim = 1; /* as table_end */
  out->inputs = arena_alloc(a, sizeof *out->inputs);
  if (!out->inputs) return no_mem(e);
  out->inputs[0] = t;
  out->ninputs = 1;
  return 0;
}

int serve_mlflow_parse_body(const char *body, size_t len, const struct serve_signature *sig,
                            struct arena *a, struct serve_request *out, struct err *e) {
  struct err spare;
  if (!e) e = &spare;
  memset(out, 0, sizeof *out);
  if (!body) len = 0;
  struct serve_fast f;
  serve_fast_init(&f);
  int rc;
  json_t *root =
      serve_fast_parse(body, len, mlf_keys, 4, mlf_match, &f, serve_v2_fast_numbers, a, e);
  if (!root) {
    rc = -(int)e->code;
  } else {
    rc = f.nset ? fast_map(root, body, sig, &f, a, out, e) : NOT_TAKEN;
    if (rc == NOT_TAKEN &&
        f.nset) { /* the tree has "[]" where the numbers were: read the body itself */
      json_decref(root);
      root = json_parse(body, len, e);
      if (!root) rc = -(int)e->code;
    }
    if (rc == NOT_TAKEN) rc = serve_mlflow_parse_request(root, sig, a, out, e);
    json_decref(root);
  }
  serve_fast_fini(&f);
  if (rc) memset(out, 0, sizeof *out);
  return rc;
}

/* ---- the response -------------------------------------------------------------------- */

struct enc {
  const struct serve_tensor *t;
  const char **bytes; /* BYTES: where each element starts */
  int64_t count;
};

static json_t *elem_json(const struct enc *en, int64_t i) {
  const struct serve_tensor *t = en->t;
  if (t->dtype == SERVE_BYTES) {
    uint32_t l;
    memcpy(&l, en->bytes[i], 4);
    return serve_json_string_n(en->bytes[i] + 4, le32toh(l));
  }
  struct serve_val v;
  serve_val_load(t->dtype, t->data, (size_t)i, &v);
  switch (v.kind) {
  case SERVE_VAL_BOOL: return json_boolean(v.b);
  case SERVE_VAL_I64: return json_integer(v.i);
  case SERVE_VAL_U64: return json_real((double)v.u); /* beyond jansson's integers */
  default:
    if (!isfinite(v.f)) return json_null(); /* JSON has no NaN or Inf */
    return json_real(t->dtype == SERVE_FP64 ? v.f : serve_f32_pretty((float)v.f));
  }
}

/* The value at dims [dim..ndim) starting at flat offset off. */
static json_t *block_json(const struct enc *en, int dim, int64_t off) {
  const struct serve_tensor *t = en->t;
  if (dim == t->ndim) return elem_json(en, off);
  json_t *arr = json_array();
  if (!arr) return NULL;
  int64_t stride = serve_shape_count(t->shape + dim + 1, t->ndim - dim - 1);
  for (int64_t i = 0; i < t->shape[dim]; i++) {
    json_t *x = block_json(en, dim + 1, off + i * stride);
    if (!x || json_array_append_new(arr, x)) {
      json_decref(arr);
      return NULL;
    }
  }
  return arr;
}

static int64_t enc_rows(const struct enc *en) {
  const struct serve_tensor *t = en->t;
  if (!t->data && t->json) return (int64_t)json_array_size(t->json);
  return t->ndim ? t->shape[0] : 1;
}

/* Row r of an output: its value (a scalar, a list, or the per-row JSON). */
static json_t *row_json(const struct enc *en, int64_t r) {
  const struct serve_tensor *t = en->t;
  if (!t->data && t->json) return json_deep_copy(json_array_get(t->json, (size_t)r));
  if (t->ndim == 0) return elem_json(en, 0);
  return block_json(en, 1, r * serve_shape_count(t->shape + 1, t->ndim - 1));
}

static bool enc_init(struct enc *en, const struct serve_tensor *t) {
  memset(en, 0, sizeof *en);
  en->t = t;
  if (!t->data && t->json) return json_is_array(t->json);
  if (t->ndim < 0 || t->ndim > SERVE_MAX_DIMS) return false;
  int64_t n = serve_shape_count(t->shape, t->ndim);
  if (n < 0 || (n > 0 && !t->data)) return false;
  en->count = n;
  if (t->dtype == SERVE_BYTES) {
    if (serve_bytes_walk(t->data, t->nbytes, n, NULL) < 0) return false;
    en->bytes = malloc((size_t)(n ? n : 1) * sizeof *en->bytes);
    if (!en->bytes) return false;
    const char *p = t->data;
    for (int64_t i = 0; i < n; i++) {
      uint32_t l;
      memcpy(&l, p, 4);
      en->bytes[i] = p;
      p += 4 + le32toh(l);
    }
    return true;
  }
  size_t es = serve_dtype_size(t->dtype);
  return es && (uint64_t)n <= t->nbytes / es;
}

json_t *serve_mlflow_encode_response(const struct serve_tensor *outputs, int noutputs) {
  if (noutputs < 0 || (noutputs && !outputs)) return NULL;
  struct enc *en = calloc((size_t)(noutputs ? noutputs : 1), sizeof *en);
  if (!en) return NULL;
  json_t *preds = NULL;
  int ok = 1;
  for (int i = 0; i < noutputs && ok; i++) ok = enc_init(&en[i], &outputs[i]);
  if (!ok) goto done;
  if (noutputs == 0) {
    preds = json_array();
  } else if (noutputs == 1) {
    const struct serve_tensor *t = &outputs[0];
    if (!t->data && t->json)
      preds = json_deep_copy(t->json);
    else
      preds = t->ndim == 0 ? elem_json(&en[0], 0) : block_json(&en[0], 0, 0);
  } else {
    int64_t rows = 0;
    for (int i = 0; i < noutputs; i++)
      if (enc_rows(&en[i]) > rows) rows = enc_rows(&en[i]);
    preds = json_array();
    for (int64_t r = 0; r < rows && preds; r++) {
      json_t *obj = json_object();
      for (int i = 0; i < noutputs && obj; i++) {
        if (r >= enc_rows(&en[i])) continue; /* an output with fewer rows says nothing there */
        json_t *x = row_json(&en[i], r);
        if (!x || json_object_set_new(obj, outputs[i].name, x)) {
          json_decref(obj);
          obj = NULL;
        }
      }
      if (!obj || json_array_append_new(preds, obj)) {
        json_decref(preds);
        preds = NULL;
      }
    }
  }
done:
  for (int i = 0; i < noutputs; i++) free(en[i].bytes);
  free(en);
  if (!preds) return NULL;
  json_t *res = json_object();
  if (!res || json_object_set_new(res, "predictions", preds)) {
    json_decref(res);
    return NULL;
  }
  return res;
}
