/* serve/scan: the protocols' fast path for numeric arrays — a pre-pass over
 * a JSON body that reads the number arrays at the places a protocol names
 * (V2's inputs[i].data, MLflow's instances) straight from the text, and
 * hands jansson a copy with "[]" in their place for the rest. */
#include "proto.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* json_parse refuses deeper documents, so the pre-pass need not follow them */
#define LEX_MAX_DEPTH 64

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_delim(char c) {
  return is_ws(c) || c == ',' || c == ':' || c == '[' || c == ']' || c == '{' || c == '}' ||
         c == '"';
}

void serve_fast_init(struct serve_fast *f) {
  f->cells = f->inline_cells;
  f->cap = SERVE_FAST_INLINE_CELLS;
  serve_fast_clear(f);
}

void serve_fast_clear(struct serve_fast *f) {
  for (int i = 0; i < SERVE_FAST_SLOTS; i++) f->span[i].set = false;
  f->nset = 0;
  f->ncells = 0;
}

void serve_fast_fini(struct serve_fast *f) {
  if (f->cells != f->inline_cells) free(f->cells);
  f->cells = f->inline_cells;
}

/* ---- one array of numbers -------------------------------------------------------- */

/* Each number once, into a cell that does not depend on the dtype (known
 * only after jansson has read the rest): whole numbers exactly, decimals as
 * their digits and exponent, longer ones as strtod's double. */
static bool cell_push(struct serve_fast *f, const struct serve_num *n, const char *text,
                      size_t len) {
  if (f->ncells == f->cap) {
    size_t cap = f->cap * 2;
    struct serve_cell *c =
        f->cells == f->inline_cells ? malloc(cap * sizeof *c) : realloc(f->cells, cap * sizeof *c);
    if (!c) return false;
    if (f->cells == f->inline_cells) memcpy(c, f->cells, f->ncells * sizeof *c);
    f->cells = c;
    f->cap = cap;
  }
  struct serve_cell *c = &f->cells[f->ncells++];
  c->neg = n->neg;
  if (n->ival_ok && (!n->neg || n->ival <= (1ull << 63))) {
    c->kind = SERVE_CELL_INT;
    c->m = n->ival;
  } else if (!n->truncated) {
    c->kind = SERVE_CELL_DEC;
    c->m = n->mant;
    c->e = n->exp10;
  } else {
    double d;
    c->kind = serve_num_to_f64(n, text, len, &d) ? SERVE_CELL_HUGE : SERVE_CELL_F64;
    memcpy(&c->m, &d, 8);
  }
  return true;
}

static void dim_note(struct serve_span *sp, int depth, int64_t len) {
  if (sp->dim[depth] < 0)
    sp->dim[depth] = len;
  else if (len != sp->dim[depth] && sp->dim_bad[depth] < 0)
    sp->dim_bad[depth] = len;
}

/* p at '['. Reads a nest of numbers at most SERVE_MAX_DIMS deep into cells
 * and sp, noting how the nest is shaped so that no check needs the text
 * again; one past its closing ']', or NULL (cells as they were). */
static const char *scan_span(const char *p, const char *end, struct serve_fast *f,
                             struct serve_span *sp) {
  int depth = 1;
  int64_t open[SERVE_MAX_DIMS + 1]; /* elements so far of the array open at each depth */
  size_t first = f->ncells;
  bool want_sep = false, allow_close = true;
  sp->nested = sp->mixed = false;
  sp->num_depth = 0;
  sp->max_depth = 1;
  for (int d = 0; d <= SERVE_MAX_DIMS; d++) sp->dim[d] = sp->dim_bad[d] = -1;
  open[1] = 0;
  p++;
  for (;;) {
    while (p < end && is_ws(*p)) p++;
    if (p >= end) goto fail;
    char c = *p;
    if (want_sep) {
      if (c == ',') {
        want_sep = false;
        allow_close = false;
        p++;
        continue;
      }
      if (c != ']') goto fail;
    }
    if (c == ']') {
      if (!allow_close && !want_sep) goto fail;
      dim_note(sp, depth, open[depth]);
      p++;
      if (--depth == 0) break;
      open[depth]++;
      want_sep = true;
      continue;
    }
    if (c == '[') {
      if (depth >= SERVE_MAX_DIMS) goto fail;
      if (depth == 1 && open[1] == 0) sp->nested = true;
      open[++depth] = 0;
      if (depth > sp->max_depth) sp->max_depth = depth;
      p++;
      allow_close = true;
      continue;
    }
    struct serve_num num;
    size_t l = serve_num_scan(p, end, &num);
    if (!l || !cell_push(f, &num, p, l)) goto fail;
    if (!sp->num_depth)
      sp->num_depth = depth;
    else if (sp->num_depth != depth)
      sp->mixed = true;
    open[depth]++;
    p += l;
    want_sep = true;
  }
  sp->first = first;
  sp->count = (int64_t)(f->ncells - first);
  return p;
fail:
  f->ncells = first;
  return NULL;
}

/* ---- the pre-pass ------------------------------------------------------------------ */

/* A lexer that follows strings, objects and arrays (validating nothing:
 * jansson does) and knows, for the first few levels, which of the
 * protocol's keys each object is at and which element each array is at.
 * Where the protocol's matcher says an array at this place is wanted, the
 * array is read by scan_span. A repeated key of the protocol's, or an
 * escaped key at those levels ("\u0069nputs" is "inputs" to jansson),
 * gives up on the fast path: jansson alone then decides, last key wins. */
void serve_fast_prepass(const char *s, size_t n, const char *const *keys, int nkeys,
                        serve_fast_match match, struct serve_fast *f) {
  struct serve_lex_frame st[LEX_MAX_DEPTH];
  int d = 0;
  const char *p = s, *end = s + n;
  serve_fast_clear(f);
  while (p < end) {
    char c = *p;
    struct serve_lex_frame *top = d ? &st[d - 1] : NULL;
    if (is_ws(c) || c == ':') {
      p++;
      continue;
    }
    if (c == ',') {
      if (top && top->kind == '{') top->expect_key = true;
      p++;
      continue;
    }
    if (c == '}' || c == ']') {
      if (d) d--;
      p++;
      continue;
    }
    if (c == '"') {
      const char *q = p + 1;
      bool escaped = false;
      while (q < end && *q != '"') {
        if (*q == '\\') {
          escaped = true;
          q++;
        }
        q++;
      }
      if (q >= end) return; /* unterminated: jansson refuses it */
      if (top && top->kind == '{' && top->expect_key) {
        top->expect_key = false;
        top->key = -1;
        if (d <= SERVE_LEX_KEY_DEPTH) {
          if (escaped) {
            serve_fast_clear(f);
            return;
          }
          size_t l = (size_t)(q - p - 1);
          for (int k = 0; k < nkeys; k++)
            if (strlen(keys[k]) == l && memcmp(keys[k], p + 1, l) == 0) {
              if (top->seen & (1u << k)) {
                serve_fast_clear(f);
                return;
              }
              top->seen |= 1u << k;
              top->key = k;
              break;
            }
        }
      } else if (top && top->kind == '[') {
        top->nelem++;
      }
      p = q + 1;
      continue;
    }
    if (c == '{' || c == '[') {
      if (top && top->kind == '[') top->nelem++;
      int slot = c == '[' && top ? match(st, d) : -1;
      if (slot >= 0 && slot < SERVE_FAST_SLOTS) {
        struct serve_span *sp = &f->span[slot];
        const char *e = scan_span(p, end, f, sp);
        if (e) {
          sp->start = (size_t)(p - s);
          sp->end = (size_t)(e - s);
          if (!sp->set) f->nset++;
          sp->set = true;
          p = e;
          continue;
        }
      }
      if (d == LEX_MAX_DEPTH) return; /* too deep: jansson refuses it */
      st[d++] = (struct serve_lex_frame){c, -1, c == '{', 0, 0};
      p++;
      continue;
    }
    /* a number or literal (or garbage jansson will refuse): at least one byte */
    if (top && top->kind == '[') top->nelem++;
    p++;
    while (p < end && !is_delim(*p)) p++;
  }
}

/* The text jansson reads: the JSON with "[]" for each span (jansson walks
 * text a byte at a time through its stream layer, so what it does not see
 * costs nothing). NULL when out of memory. */
static char *fast_copy(const char *body, size_t jlen, const struct serve_fast *f, struct arena *a,
                       size_t *tlen) {
  int order[SERVE_FAST_SLOTS], n = 0;
  for (int i = 0; i < SERVE_FAST_SLOTS; i++) /* spans are kept per slot, not in text order */
    if (f->span[i].set) {
      int j = n++;
      for (; j > 0 && f->span[order[j - 1]].start > f->span[i].start; j--) order[j] = order[j - 1];
      order[j] = i;
    }
  char *copy = arena_alloc(a, jlen);
  if (!copy) return NULL;
  size_t from = 0, len = 0;
  for (int k = 0; k < n; k++) {
    const struct serve_span *sp = &f->span[order[k]];
    memcpy(copy + len, body + from, sp->start - from);
    len += sp->start - from;
    copy[len++] = '[';
    copy[len++] = ']';
    from = sp->end;
  }
  memcpy(copy + len, body + from, jlen - from);
  *tlen = len + (jlen - from);
  return copy;
}

json_t *serve_fast_parse(const char *body, size_t len, const char *const *keys, int nkeys,
                         serve_fast_match match, struct serve_fast *f, bool enabled,
                         struct arena *a, struct err *e) {
  const char *text = body;
  size_t tlen = len;
  serve_fast_clear(f);
  if (enabled) {
    serve_fast_prepass(body, len, keys, nkeys, match, f);
    if (f->nset && !(text = fast_copy(body, len, f, a, &tlen))) {
      err_set(e, ERR_NO_MEMORY, "out of memory for a %zu-byte request", len);
      return NULL;
    }
  }
  json_t *root = json_parse(text, tlen, e);
  if (!root && text != body) {
    /* positions in the message must be the body's: ask again on it */
    root = json_parse(body, len, e);
    if (root) { /* cannot happen: the spans are valid JSON values */
      json_decref(root);
      err_set(e, ERR_INTERNAL, "the number scanner and jansson disagree on this request");
      return NULL;
    }
  }
  return root;
}

/* ---- spans into tensors -------------------------------------------------------------- */

int serve_count_err(const struct serve_tensor *t, int64_t need, int64_t have, struct err *e) {
  char sh[SERVE_MAX_DIMS * 24];
  return err_set(
      e, ERR_INVALID_PARAMETER_VALUE, "input '%s': shape %s needs %lld elements, data has %lld",
      t->name, serve_shape_str(sh, sizeof sh, t->shape, t->ndim), (long long)need, (long long)have);
}

int serve_nest_err(const struct serve_tensor *t, struct err *e, int depth, size_t got) {
  char sh[SERVE_MAX_DIMS * 24];
  serve_shape_str(sh, sizeof sh, t->shape, t->ndim);
  if (depth >= t->ndim)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "input '%s': data is nested deeper than shape %s", t->name, sh);
  return err_set(
      e, ERR_INVALID_PARAMETER_VALUE,
      "input '%s': data nesting does not follow shape %s (an array at depth %d has %zu elements, "
      "dimension %d is %lld)",
      t->name, sh, depth + 1, got, depth, (long long)t->shape[depth]);
}

int serve_mix_err(const struct serve_tensor *t, struct err *e) {
  char sh[SERVE_MAX_DIMS * 24];
  return err_set(
      e, ERR_INVALID_PARAMETER_VALUE,
      "input '%s': data mixes nested arrays and values; nest it as shape %s or send it flat",
      t->name, serve_shape_str(sh, sizeof sh, t->shape, t->ndim));
}

/* The nest against t's shape: flat (one level), or nested with every
 * array at depth d holding shape[d-1] and numbers only at the last level. */
static int span_shape_check(const struct serve_tensor *t, const struct serve_span *sp,
                            struct err *e) {
  if (sp->count != serve_shape_count(t->shape, t->ndim))
    return serve_count_err(t, serve_shape_count(t->shape, t->ndim), sp->count, e);
  if (!sp->nested) return sp->max_depth > 1 ? serve_mix_err(t, e) : 0;
  if (sp->mixed) return serve_mix_err(t, e);
  if (sp->max_depth > t->ndim) return serve_nest_err(t, e, t->ndim, 0);
  for (int d = 1; d <= sp->max_depth; d++) {
    if (sp->dim[d] != t->shape[d - 1]) return serve_nest_err(t, e, d - 1, (size_t)sp->dim[d]);
    if (sp->dim_bad[d] >= 0) return serve_nest_err(t, e, d - 1, (size_t)sp->dim_bad[d]);
  }
  if (sp->num_depth && sp->num_depth != t->ndim) return serve_mix_err(t, e);
  return 0;
}

bool serve_span_shape(const struct serve_span *sp, int64_t *shape, int *ndim) {
  if (!sp->nested) {
    if (sp->max_depth > 1) return false;
    shape[0] = sp->count;
    *ndim = 1;
    return true;
  }
  if (sp->mixed || (sp->num_depth && sp->num_depth != sp->max_depth)) return false;
  for (int d = 1; d <= sp->max_depth; d++) {
    if (sp->dim_bad[d] >= 0) return false;
    shape[d - 1] = sp->dim[d];
  }
  *ndim = sp->max_depth;
  return true;
}

/* The text of the k-th number of a span, for a message. */
static void span_token(const char *body, const struct serve_span *sp, int64_t k, char *buf,
                       size_t cap) {
  const char *p = body + sp->start, *end = body + sp->end;
  for (int64_t i = 0; p < end; p++) {
    if (*p != '-' && (*p < '0' || *p > '9')) continue;
    size_t l = serve_num_skip(p, end);
    if (i++ == k) {
      snprintf(buf, cap, "%.*s%s", (int)(l > 40 ? 40 : l), p, l > 40 ? "..." : "");
      return;
    }
    p += l - 1;
  }
  snprintf(buf, cap, "?");
}

static enum serve_conv cell_store(enum serve_dtype dt, const struct serve_cell *c, void *dst) {
  double d;
  switch (c->kind) {
  case SERVE_CELL_INT:
    if (!c->neg) return serve_store_u64(dt, c->m, dst);
    return serve_store_i64(dt, c->m == (1ull << 63) ? INT64_MIN : -(int64_t)c->m, dst);
  case SERVE_CELL_DEC:
    d = serve_dec_to_f64(c->m, c->e);
    if (isinf(d)) break;
    return serve_store_f64(dt, c->neg ? -d : d, dst);
  case SERVE_CELL_F64: memcpy(&d, &c->m, 8); return serve_store_f64(dt, d, dst);
  default: break;
  }
  return dt == SERVE_BOOL    ? SERVE_CONV_NOT_BOOL
         : dt == SERVE_BYTES ? SERVE_CONV_NOT_BYTES
                             : SERVE_CONV_RANGE;
}

/* The common case without the generic dispatch: what cell_store gives in
 * FP32. */
static enum serve_conv cell_f32(const struct serve_cell *c, float *out) {
  float x;
  switch (c->kind) {
  case SERVE_CELL_INT:
    x = c->neg ? (float)(c->m == (1ull << 63) ? INT64_MIN : -(int64_t)c->m) : (float)c->m;
    break;
  case SERVE_CELL_DEC:
    if (serve_dec_to_f32(c->m, c->e, &x)) return SERVE_CONV_RANGE;
    if (c->neg) x = -x;
    break;
  case SERVE_CELL_F64: {
    double d;
    memcpy(&d, &c->m, 8);
    x = (float)d;
    if (isinf(x)) return SERVE_CONV_RANGE;
    break;
  }
  default: return SERVE_CONV_RANGE;
  }
  *out = x;
  return SERVE_CONV_OK;
}

int serve_span_convert(struct serve_tensor *t, const struct serve_fast *f, int slot,
                       const char *body, const int *colmap, struct arena *a, struct err *e) {
  const struct serve_span *sp = &f->span[slot];
  int rc = span_shape_check(t, sp, e);
  if (rc) return rc;
  int64_t count = sp->count;
  enum serve_dtype dt = t->dtype;
  size_t es = serve_dtype_size(dt), nb = (size_t)count * es;
  unsigned char *o = arena_alloc(a, nb ? nb : 1);
  if (!o) return err_set(e, ERR_NO_MEMORY, "out of memory for input '%s' (%zu bytes)", t->name, nb);
  const struct serve_cell *c = f->cells + sp->first;
  int64_t bad = -1, ncols = t->ndim == 2 ? t->shape[1] : 1;
  enum serve_conv cv = SERVE_CONV_OK;
  if (colmap && ncols > 0) { /* column j of the text is column colmap[j] of the tensor */
    for (int64_t i = 0; i < count; i++) {
      size_t at = (size_t)((i / ncols) * ncols + colmap[i % ncols]);
      if ((cv = cell_store(dt, &c[i], o + at * es)) != SERVE_CONV_OK) {
        bad = i;
        break;
      }
    }
  } else if (dt == SERVE_FP32) {
    float *out = (float *)o;
    for (int64_t i = 0; i < count; i++)
      if ((cv = cell_f32(&c[i], &out[i])) != SERVE_CONV_OK) {
        bad = i;
        break;
      }
  } else {
    for (int64_t i = 0; i < count; i++)
      if ((cv = cell_store(dt, &c[i], o + (size_t)i * es)) != SERVE_CONV_OK) {
        bad = i;
        break;
      }
  }
  if (bad >= 0) {
    char ix[96], vt[48];
    span_token(body, sp, bad, vt, sizeof vt);
    serve_index_str(ix, sizeof ix, t->shape, t->ndim, bad);
    return serve_conv_err(e, cv, t->name, ix, dt, vt);
  }
  t->data = o;
  t->nbytes = nb;
  return 0;
}
