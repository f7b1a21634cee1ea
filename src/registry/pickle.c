/* registry/pickle: a pickle opcode scanner (protocols 0-5) that lists every
 * global a pickle would import, without running it, and checks each against
 * an allowlist; it also walks joblib's inline numpy arrays. */
#include "registry/internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- the allowlist -------------------------------------------------------
 * Exact names, then module prefixes (a prefix ending in '.' matches any
 * module under it). What is not here is refused: eval/exec/getattr/open,
 * os/posix/subprocess/sys/runpy/importlib, functools.partial (it wraps any
 * callable), torch.load-style helpers that unpickle again, ... */
static const char *const allow_exact[] = {
    /* numpy arrays, scalars, dtypes (numpy 1.x and 2.x module names) */
    "numpy.core.multiarray._reconstruct", "numpy.core.multiarray.scalar",
    "numpy._core.multiarray._reconstruct", "numpy._core.multiarray.scalar",
    "numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer", "numpy.ndarray",
    "numpy.dtype", "numpy.ma.core._mareconstruct", "numpy.ma.core.MaskedArray",
    "numpy.random._pickle.__randomstate_ctor", "numpy.random._pickle.__generator_ctor",
    "numpy.random._pickle.__bit_generator_ctor", "numpy.random.mtrand.RandomState",
    "numpy.bool_", "numpy.int8", "numpy.int16", "numpy.int32", "numpy.int64", "numpy.uint8",
    "numpy.uint16", "numpy.uint32", "numpy.uint64", "numpy.float16", "numpy.float32",
    "numpy.float64", "numpy.complex64", "numpy.complex128", "numpy.str_", "numpy.bytes_",
    "numpy.dtypes.Float64DType", "numpy.dtypes.Float32DType", "numpy.dtypes.Int64DType",
    "numpy.dtypes.Int32DType", "numpy.dtypes.BoolDType", "numpy.dtypes.ObjectDType",
    /* joblib's array wrappers (the bytes follow inline, scanned here) */
    "joblib.numpy_pickle.NumpyArrayWrapper", "joblib.numpy_pickle.NDArrayWrapper",
    /* torch tensors and storages (tensor data lives in separate zip entries) */
    "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_sparse_tensor", "torch._utils._rebuild_qtensor",
    "torch._tensor._rebuild_from_type_v2", "torch.Size", "torch.device",
    "torch.FloatStorage", "torch.DoubleStorage", "torch.HalfStorage", "torch.BFloat16Storage",
    "torch.LongStorage", "torch.IntStorage", "torch.ShortStorage", "torch.CharStorage",
    "torch.ByteStorage", "torch.BoolStorage", "torch.ComplexFloatStorage",
    "torch.ComplexDoubleStorage", "torch.QInt8Storage", "torch.QUInt8Storage",
    "torch.QInt32Storage", "torch.storage.UntypedStorage", "torch.storage.TypedStorage",
    "torch.float32", "torch.float64", "torch.float16", "torch.bfloat16", "torch.int64",
    "torch.int32", "torch.int16", "torch.int8", "torch.uint8", "torch.bool",
    "torch.nn.parameter.Parameter",
    /* containers and reconstruction helpers of the standard library */
    "collections.OrderedDict", "collections.defaultdict", "collections.Counter",
    "collections.deque", "copyreg._reconstructor", "copy_reg._reconstructor",
    "copyreg.__newobj__", "_codecs.encode", "datetime.datetime", "datetime.date",
    "datetime.timedelta", "decimal.Decimal",
    /* harmless builtins (Python 3 and 2 names) */
    "builtins.set", "builtins.frozenset", "builtins.slice", "builtins.complex",
    "builtins.bytearray", "builtins.object", "builtins.range", "builtins.list", "builtins.dict",
    "builtins.tuple", "builtins.int", "builtins.float", "builtins.bool", "builtins.str",
    "builtins.bytes", "__builtin__.set", "__builtin__.frozenset", "__builtin__.slice",
    "__builtin__.complex", "__builtin__.bytearray", "__builtin__.object", "__builtin__.long",
};
static const char *const allow_prefix[] = {
    "sklearn.", "xgboost.", "lightgbm.", "scipy.sparse.", "torch.jit._pickle.",
};

bool registry_pickle_global_allowed(const char *g, bool torchscript) {
  if (!g) return false;
  for (size_t i = 0; i < sizeof allow_exact / sizeof *allow_exact; i++)
    if (strcmp(g, allow_exact[i]) == 0) return true;
  for (size_t i = 0; i < sizeof allow_prefix / sizeof *allow_prefix; i++)
    if (str_has_prefix(g, allow_prefix[i])) return true;
  /* TorchScript archives name their compiled classes __torch__.*: the
   * TorchScript loader resolves them in its own compilation unit, never by
   * importing Python code. */
  return torchscript && str_has_prefix(g, "__torch__.");
}

/* ---- the symbolic stack --------------------------------------------------
 * Only what decides an import or joblib's inline array sizes is tracked:
 * strings (STACK_GLOBAL operands), ints and small tuples (shapes), dtypes and
 * the dicts holding a wrapper's state. Everything else is V_OTHER. */
enum vkind { V_OTHER, V_MARK, V_STR, V_INT, V_TUPLE, V_GLOBAL, V_INST, V_DTYPE, V_DICT };

#define TUP_KEEP 8
struct val {
  uint8_t kind;
  uint8_t first_kind;    /* tuple: kind of its first element */
  bool hasobject;        /* dtype/dict: object dtype */
  bool prod_ok;          /* tuple: every element an int; dict: shape seen */
  bool has_dtype;        /* dict */
  bool has_align;        /* dict: numpy_array_alignment_bytes is set */
  uint32_t len;          /* string length; tuple element count */
  const uint8_t *s;      /* string bytes (in the input) */
  int64_t i;             /* int value; dtype itemsize; global index (V_GLOBAL, V_INST) */
  uint64_t prod;         /* tuple/dict: product of the shape */
  int64_t elem[TUP_KEEP]; /* tuple: the first int elements */
};

#define MAX_STACK (1u << 20)
#define MAX_MARKS (1u << 16)
#define MAX_MEMO (1u << 24)
#define MAX_GLOBALS 4096
#define MAX_NAME 256
#define MAX_NESTED 4

struct scan {
  struct intake_ctx *c;
  const uint8_t *p;
  size_t n, pos;
  unsigned flags;
  const char *what;
  struct err *e;
  struct val *st;
  size_t sp, stcap;
  size_t *marks;
  size_t nmarks, markcap;
  /* the memo: an open-addressing map, so a huge LONG_BINPUT key costs one
   * slot, not a dense array up to it */
  struct val *memo;
  uint64_t *memo_keys; /* key + 1; 0 marks a free slot */
  size_t memocap, memolen;
  struct pickle_result *res;
  int nested;
};

static int bad(struct scan *s, const char *why) {
  if (s->flags & PICKLE_PROBE) return -ERR_INVALID_PARAMETER_VALUE;
  return err_set(s->e, ERR_INVALID_PARAMETER_VALUE, "malformed pickle (%s) at byte %zu: %s",
                 s->what, s->pos, why);
}

static int push(struct scan *s, const struct val *v) {
  if (s->sp == s->stcap) {
    if (s->stcap >= MAX_STACK) return bad(s, "stack deeper than 1048576");
    size_t cap = s->stcap ? s->stcap * 2 : 64;
    struct val *nst = realloc(s->st, cap * sizeof *nst);
    if (!nst) return err_set(s->e, ERR_NO_MEMORY, "out of memory scanning a pickle");
    s->st = nst;
    s->stcap = cap;
  }
  s->st[s->sp++] = *v;
  return 0;
}

static int push_kind(struct scan *s, enum vkind k) {
  struct val v;
  memset(&v, 0, sizeof v);
  v.kind = (uint8_t)k;
  return push(s, &v);
}

static size_t mark_base(const struct scan *s) { return s->nmarks ? s->marks[s->nmarks - 1] : 0; }

/* items above the current mark */
static size_t above_mark(const struct scan *s) { return s->sp - mark_base(s); }

static int pop(struct scan *s, size_t k, struct val *out) {
  if (above_mark(s) < k) return bad(s, "stack underflow");
  s->sp -= k;
  if (out) memcpy(out, s->st + s->sp, k * sizeof *out);
  return 0;
}

static int pop_mark(struct scan *s, size_t *base) {
  if (!s->nmarks) return bad(s, "no MARK on the stack");
  *base = s->marks[--s->nmarks];
  return 0;
}

static int do_mark(struct scan *s) {
  if (s->nmarks == s->markcap) {
    if (s->markcap >= MAX_MARKS) return bad(s, "more than 65536 open MARKs");
    size_t cap = s->markcap ? s->markcap * 2 : 16;
    size_t *nm = realloc(s->marks, cap * sizeof *nm);
    if (!nm) return err_set(s->e, ERR_NO_MEMORY, "out of memory scanning a pickle");
    s->marks = nm;
    s->markcap = cap;
  }
  s->marks[s->nmarks++] = s->sp;
  return 0;
}

static size_t memo_slot(const struct scan *s, uint64_t key) {
  size_t mask = s->memocap - 1, i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & mask;
  while (s->memo_keys[i] && s->memo_keys[i] != key + 1) i = (i + 1) & mask;
  return i;
}

static int memo_grow(struct scan *s) {
  size_t cap = s->memocap ? s->memocap * 2 : 64;
  struct val *nv = calloc(cap, sizeof *nv);
  uint64_t *nk = calloc(cap, sizeof *nk);
  if (!nv || !nk) {
    free(nv);
    free(nk);
    return err_set(s->e, ERR_NO_MEMORY, "out of memory scanning a pickle");
  }
  struct val *ov = s->memo;
  uint64_t *ok = s->memo_keys;
  size_t ocap = s->memocap;
  s->memo = nv;
  s->memo_keys = nk;
  s->memocap = cap;
  for (size_t i = 0; i < ocap; i++)
    if (ok[i]) {
      size_t j = memo_slot(s, ok[i] - 1);
      nk[j] = ok[i];
      nv[j] = ov[i];
    }
  free(ov);
  free(ok);
  return 0;
}

static int memo_put(struct scan *s, uint64_t key) {
  if (!s->sp || above_mark(s) == 0) return bad(s, "memo store from an empty stack");
  if (key >= UINT64_MAX - 1) return bad(s, "memo key out of range");
  if (s->memolen >= MAX_MEMO) return bad(s, "more than 16777216 memo entries");
  if ((s->memolen + 1) * 2 > s->memocap) {
    int rc = memo_grow(s);
    if (rc) return rc;
  }
  size_t i = memo_slot(s, key);
  if (!s->memo_keys[i]) s->memolen++;
  s->memo_keys[i] = key + 1;
  s->memo[i] = s->st[s->sp - 1];
  return 0;
}

static int memo_get(struct scan *s, uint64_t key) {
  if (!s->memocap || key >= UINT64_MAX - 1) return bad(s, "memo key not set");
  size_t i = memo_slot(s, key);
  if (!s->memo_keys[i]) return bad(s, "memo key not set");
  struct val v = s->memo[i];
  return push(s, &v);
}

/* ---- reading operands ---- */
static int need(struct scan *s, size_t k) {
  return s->n - s->pos < k ? bad(s, "truncated (operand runs past the end)") : 0;
}

static uint64_t le(const uint8_t *p, int k) {
  uint64_t v = 0;
  for (int i = k - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* a newline-terminated operand (protocol 0 text forms) */
static int line(struct scan *s, const uint8_t **out, size_t *len) {
  const uint8_t *nl = memchr(s->p + s->pos, '\n', s->n - s->pos);
  if (!nl) return bad(s, "truncated (text operand without newline)");
  *out = s->p + s->pos;
  *len = (size_t)(nl - *out);
  s->pos += *len + 1;
  return 0;
}

static int line_int(struct scan *s, int64_t *out) {
  const uint8_t *l;
  size_t n;
  int rc = line(s, &l, &n);
  if (rc) return rc;
  char tmp[32];
  while (n && (l[n - 1] == '\r' || l[n - 1] == 'L')) n--; /* "12L" longs */
  if (n == 0 || n >= sizeof tmp) {
    *out = 0;
    return 0; /* big or odd numbers: not a shape, not a memo key we need */
  }
  memcpy(tmp, l, n);
  tmp[n] = 0;
  if (str_eq(tmp, "00") || str_eq(tmp, "01")) { /* protocol 0 False/True */
    *out = tmp[1] - '0';
    return 0;
  }
  if (str_to_i64(tmp, out) != 0) *out = 0;
  return 0;
}

static int line_key(struct scan *s, uint64_t *key) {
  int64_t v;
  const uint8_t *l;
  size_t n;
  int rc = line(s, &l, &n);
  if (rc) return rc;
  char tmp[24];
  if (n == 0 || n >= sizeof tmp) return bad(s, "bad memo key");
  memcpy(tmp, l, n);
  tmp[n] = 0;
  if (str_to_i64(tmp, &v) != 0 || v < 0) return bad(s, "bad memo key");
  *key = (uint64_t)v;
  return 0;
}

static int push_str(struct scan *s, const uint8_t *p, size_t n) {
  struct val v;
  memset(&v, 0, sizeof v);
  v.kind = V_STR;
  v.s = p;
  v.len = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
  return push(s, &v);
}

static int push_int(struct scan *s, int64_t i) {
  struct val v;
  memset(&v, 0, sizeof v);
  v.kind = V_INT;
  v.i = i;
  return push(s, &v);
}

/* length-prefixed data: k-byte little-endian length, then the bytes */
static int counted(struct scan *s, int k, const uint8_t **out, size_t *len) {
  int rc = need(s, (size_t)k);
  if (rc) return rc;
  uint64_t l = le(s->p + s->pos, k);
  s->pos += (size_t)k;
  if (l > s->n - s->pos) return bad(s, "truncated (length runs past the end)");
  *out = s->p + s->pos;
  *len = (size_t)l;
  s->pos += (size_t)l;
  return 0;
}

/* ---- globals ---- */
static bool name_ok(const uint8_t *p, size_t n) {
  if (n == 0 || n > MAX_NAME) return false;
  for (size_t i = 0; i < n; i++)
    if (p[i] < 0x20 || p[i] >= 0x7f) return false;
  return true;
}

static int add_global(struct scan *s, const uint8_t *mod, size_t ml, const uint8_t *name,
                      size_t nl) {
  if (!name_ok(mod, ml) || !name_ok(name, nl)) return bad(s, "global with an unprintable name");
  char g[2 * MAX_NAME + 2];
  memcpy(g, mod, ml);
  g[ml] = '.';
  memcpy(g + ml + 1, name, nl);
  g[ml + 1 + nl] = 0;
  struct registry_intake_report *r = s->c->r;
  size_t idx = 0;
  while (idx < r->nglobals && strcmp(r->globals[idx].name, g) != 0) idx++;
  if (idx == r->nglobals) {
    if (r->nglobals >= MAX_GLOBALS) return bad(s, "more than 4096 distinct globals");
    struct registry_pickle_global *ng = realloc(r->globals, (r->nglobals + 1) * sizeof *ng);
    if (!ng) return err_set(s->e, ERR_NO_MEMORY, "out of memory scanning a pickle");
    r->globals = ng;
    char *dup = strdup(g);
    if (!dup) return err_set(s->e, ERR_NO_MEMORY, "out of memory scanning a pickle");
    r->globals[idx].name = dup;
    r->globals[idx].allowed =
        registry_pickle_global_allowed(g, (s->flags & PICKLE_TORCHSCRIPT) != 0);
    r->nglobals++;
  }
  if (!r->globals[idx].allowed && !s->c->first_unsafe[0])
    str_copy(s->c->first_unsafe, sizeof s->c->first_unsafe, g);
  if (str_has_prefix(g, "torch.")) s->res->torch = true;
  struct val v;
  memset(&v, 0, sizeof v);
  v.kind = V_GLOBAL;
  v.i = (int64_t)idx;
  return push(s, &v);
}

static bool global_is(const struct scan *s, const struct val *v, const char *name) {
  return (v->kind == V_GLOBAL || v->kind == V_INST) && v->i >= 0 &&
         (size_t)v->i < s->c->r->nglobals && strcmp(s->c->r->globals[v->i].name, name) == 0;
}

static bool str_is(const struct val *v, const char *lit) {
  size_t n = strlen(lit);
  return v->kind == V_STR && v->len == n && memcmp(v->s, lit, n) == 0;
}

/* numpy dtype strings as pickled by dtype.__reduce__: "f8", "i4", "b1", "O8", "U5", ... */
static void dtype_from_str(struct val *d, const struct val *str) {
  d->kind = V_DTYPE;
  d->i = 0;
  if (str->kind != V_STR || str->len < 1 || str->len > 16) return;
  char t[17];
  memcpy(t, str->s, str->len);
  t[str->len] = 0;
  const char *p = t;
  if (*p == '<' || *p == '>' || *p == '|' || *p == '=') p++;
  char k = *p++;
  int64_t n = 0;
  if (*p && str_to_i64(p, &n) != 0) n = 0;
  if (k == 'O') d->hasobject = true;
  d->i = k == 'U' ? n * 4 : n;
}

static void tuple_from(struct val *t, const struct val *items, size_t k) {
  memset(t, 0, sizeof *t);
  t->kind = V_TUPLE;
  t->len = k > UINT32_MAX ? UINT32_MAX : (uint32_t)k;
  t->prod = 1;
  t->prod_ok = true;
  if (k) {
    t->first_kind = items[0].kind;
    t->s = items[0].s;
    t->i = items[0].i; /* the first element's string/global index */
    if (items[0].kind == V_STR) t->elem[0] = items[0].len;
  }
  for (size_t j = 0; j < k; j++) {
    if (items[j].kind != V_INT || items[j].i < 0) {
      t->prod_ok = false;
      continue;
    }
    if (j < TUP_KEEP) t->elem[j] = items[j].i;
    uint64_t d = (uint64_t)items[j].i;
    if (d && t->prod > UINT64_MAX / d)
      t->prod_ok = false;
    else
      t->prod *= d;
  }
}

/* a key/value pair stored into a dict: keep joblib wrapper fields */
static void dict_set(struct val *d, const struct val *k, const struct val *v) {
  if (d->kind != V_DICT) return;
  if (str_is(k, "shape") && v->kind == V_TUPLE) {
    d->prod_ok = v->prod_ok;
    d->prod = v->prod;
  } else if (str_is(k, "dtype") && v->kind == V_DTYPE) {
    d->has_dtype = true;
    d->i = v->i;
    d->hasobject = v->hasobject;
  } else if (str_is(k, "numpy_array_alignment_bytes")) {
    d->has_align = v->kind == V_INT;
  }
}

static int scan_one(struct scan *s);

/* joblib writes a NumpyArrayWrapper's bytes right after its BUILD: a nested
 * pickle for object arrays, otherwise an optional padding byte + padding
 * and prod(shape) * itemsize raw bytes. */
static int joblib_array(struct scan *s, const struct val *state) {
  s->res->joblib = true;
  if (state->kind != V_DICT || !state->has_dtype)
    return bad(s, "joblib array wrapper without a readable dtype");
  if (state->hasobject) {
    if (s->nested >= MAX_NESTED) return bad(s, "joblib object arrays nested too deep");
    struct scan inner = {.c = s->c, .p = s->p, .n = s->n, .pos = s->pos, .flags = s->flags,
                         .what = s->what, .e = s->e, .res = s->res, .nested = s->nested + 1};
    int rc = scan_one(&inner);
    s->pos = inner.pos;
    free(inner.st);
    free(inner.marks);
    free(inner.memo);
    free(inner.memo_keys);
    return rc;
  }
  if (!state->prod_ok || state->i <= 0) return bad(s, "joblib array wrapper without a shape");
  if (state->has_align) {
    int rc = need(s, 1);
    if (rc) return rc;
    size_t pad = s->p[s->pos];
    s->pos++;
    if ((rc = need(s, pad))) return rc;
    s->pos += pad;
  }
  uint64_t item = (uint64_t)state->i;
  if (state->prod && item > UINT64_MAX / state->prod) return bad(s, "joblib array size overflows");
  uint64_t bytes = state->prod * item;
  if (bytes > s->n - s->pos) return bad(s, "truncated (joblib array data runs past the end)");
  s->pos += (size_t)bytes;
  return 0;
}

/* One opcode; *stop set on STOP. */
static int step(struct scan *s, bool *stop) {
  uint8_t op = s->p[s->pos++];
  const uint8_t *a, *b;
  size_t al, bl;
  struct val v[3], t;
  size_t base;
  int64_t iv;
  uint64_t key;
  int rc = 0;
  switch (op) {
  case '(': return do_mark(s);
  case '.': *stop = true; return 0;
  case '0': /* POP: the top item, or the mark itself when nothing is above it */
    if (above_mark(s) == 0) return pop_mark(s, &base);
    return pop(s, 1, NULL);
  case '1': /* POP_MARK */
    if ((rc = pop_mark(s, &base))) return rc;
    s->sp = base;
    return 0;
  case '2': /* DUP */
    if (above_mark(s) == 0) return bad(s, "DUP on an empty stack");
    t = s->st[s->sp - 1];
    return push(s, &t);
  case 'F': if ((rc = line(s, &a, &al))) return rc; return push_kind(s, V_OTHER);
  case 'I':
    if ((rc = line_int(s, &iv))) return rc;
    return push_int(s, iv);
  case 'L':
    if ((rc = line_int(s, &iv))) return rc;
    return push_int(s, iv);
  case 'J':
    if ((rc = need(s, 4))) return rc;
    iv = (int32_t)(uint32_t)le(s->p + s->pos, 4);
    s->pos += 4;
    return push_int(s, iv);
  case 'K':
    if ((rc = need(s, 1))) return rc;
    return push_int(s, s->p[s->pos++]);
  case 'M':
    if ((rc = need(s, 2))) return rc;
    iv = (int64_t)le(s->p + s->pos, 2);
    s->pos += 2;
    return push_int(s, iv);
  case 0x8a: /* LONG1 */
  case 0x8b: /* LONG4 */
    if ((rc = counted(s, op == 0x8a ? 1 : 4, &a, &al))) return rc;
    if (al <= 7) return push_int(s, (int64_t)le(a, (int)al));
    return push_kind(s, V_OTHER);
  case '}': return push_kind(s, V_DICT);
  case 'N': case 0x88: case 0x89: case ']': case 0x8f: return push_kind(s, V_OTHER);
  case ')': tuple_from(&t, NULL, 0); return push(s, &t);
  case 'G': if ((rc = need(s, 8))) return rc; s->pos += 8; return push_kind(s, V_OTHER);
  case 'P': if ((rc = line(s, &a, &al))) return rc; return push_kind(s, V_OTHER);
  case 'Q': /* BINPERSID: pid -> object, resolved by the loader (torch storages) */
    if ((rc = pop(s, 1, NULL))) return rc;
    return push_kind(s, V_OTHER);
  case 'R': /* REDUCE: callable(*args) */
    if ((rc = pop(s, 2, v))) return rc;
    memset(&t, 0, sizeof t);
    if (global_is(s, &v[0], "numpy.dtype") && v[1].kind == V_TUPLE && v[1].first_kind == V_STR) {
      struct val str = {.kind = V_STR, .s = v[1].s, .len = (uint32_t)v[1].elem[0]};
      dtype_from_str(&t, &str);
    } else if ((global_is(s, &v[0], "copyreg._reconstructor") ||
                global_is(s, &v[0], "copy_reg._reconstructor")) &&
               v[1].kind == V_TUPLE && v[1].first_kind == V_GLOBAL) {
      t.kind = V_INST;
      t.i = v[1].i;
    } else {
      t.kind = V_OTHER;
    }
    return push(s, &t);
  case 'S': /* STRING: a quoted repr */
    if ((rc = line(s, &a, &al))) return rc;
    while (al && a[al - 1] == '\r') al--;
    if (al < 2 || (a[0] != '\'' && a[0] != '"') || a[al - 1] != a[0])
      return bad(s, "STRING operand is not quoted");
    return push_str(s, a + 1, al - 2);
  case 'V': if ((rc = line(s, &a, &al))) return rc; return push_str(s, a, al);
  case 'T': if ((rc = counted(s, 4, &a, &al))) return rc; return push_str(s, a, al);
  case 'U': if ((rc = counted(s, 1, &a, &al))) return rc; return push_str(s, a, al);
  case 'X': if ((rc = counted(s, 4, &a, &al))) return rc; return push_str(s, a, al);
  case 0x8c: if ((rc = counted(s, 1, &a, &al))) return rc; return push_str(s, a, al);
  case 0x8d: if ((rc = counted(s, 8, &a, &al))) return rc; return push_str(s, a, al);
  case 'B': case 'C': case 0x8e: case 0x96: /* bytes: not a str, never a global operand */
    if ((rc = counted(s, op == 'C' ? 1 : op == 'B' ? 4 : 8, &a, &al))) return rc;
    return push_kind(s, V_OTHER);
  case 'a': return pop(s, 1, NULL); /* APPEND */
  case 'b': /* BUILD: state onto the object below it */
    if ((rc = pop(s, 1, v))) return rc;
    if (above_mark(s) == 0) return bad(s, "BUILD without an object");
    {
      struct val *obj = &s->st[s->sp - 1];
      if (obj->kind == V_DTYPE && v[0].kind == V_TUPLE && v[0].len >= 8 && v[0].elem[5] > 0) {
        obj->i = v[0].elem[5]; /* flexible dtypes carry their size in the state */
      }
      if (obj->kind == V_DTYPE && v[0].kind == V_TUPLE && v[0].len >= 8 &&
          (v[0].elem[7] & 1))
        obj->hasobject = true; /* NPY_ITEM_REFCOUNT: holds Python objects */
      if (obj->kind == V_INST && global_is(s, obj, "joblib.numpy_pickle.NumpyArrayWrapper"))
        return joblib_array(s, &v[0]);
    }
    return 0;
  case 'c': /* GLOBAL module\nname\n */
  case 'i': /* INST module\nname\n: pops to MARK, builds an instance */
    if ((rc = line(s, &a, &al)) || (rc = line(s, &b, &bl))) return rc;
    if (op == 'c') return add_global(s, a, al, b, bl);
    if ((rc = pop_mark(s, &base))) return rc;
    s->sp = base;
    if ((rc = add_global(s, a, al, b, bl))) return rc;
    s->st[s->sp - 1].kind = V_INST;
    return 0;
  case 0x93: /* STACK_GLOBAL: module and name from the stack */
    if ((rc = pop(s, 2, v))) return rc;
    if (v[0].kind != V_STR || v[1].kind != V_STR) {
      /* CPython refuses non-str operands; anything we cannot resolve is unsafe */
      return bad(s, "STACK_GLOBAL operands are not strings");
    }
    return add_global(s, v[0].s, v[0].len, v[1].s, v[1].len);
  case 'd': case 'l': case 't': case 0x91: /* DICT, LIST, TUPLE, FROZENSET */
    if ((rc = pop_mark(s, &base))) return rc;
    if (op == 't') {
      tuple_from(&t, s->st ? s->st + base : NULL, s->sp - base);
    } else {
      memset(&t, 0, sizeof t);
      t.kind = op == 'd' ? V_DICT : V_OTHER;
      if (op == 'd')
        for (size_t j = base; j + 1 < s->sp; j += 2) dict_set(&t, &s->st[j], &s->st[j + 1]);
    }
    s->sp = base;
    return push(s, &t);
  case 'e': case 0x90: /* APPENDS, ADDITEMS: the list or set sits below the MARK */
    if ((rc = pop_mark(s, &base))) return rc;
    if (base <= mark_base(s)) return bad(s, "APPENDS without a list below the MARK");
    s->sp = base;
    return 0;
  case 'u': /* SETITEMS */
    if ((rc = pop_mark(s, &base))) return rc;
    if (base <= mark_base(s)) return bad(s, "SETITEMS without a dict below the MARK");
    if ((s->sp - base) % 2) return bad(s, "SETITEMS with an odd number of items");
    for (size_t j = base; j + 1 < s->sp; j += 2) dict_set(&s->st[base - 1], &s->st[j], &s->st[j + 1]);
    s->sp = base;
    return 0;
  case 's': /* SETITEM */
    if ((rc = pop(s, 2, v))) return rc;
    if (above_mark(s) == 0) return bad(s, "SETITEM without a dict");
    dict_set(&s->st[s->sp - 1], &v[0], &v[1]);
    return 0;
  case 'g': if ((rc = line_key(s, &key))) return rc; return memo_get(s, key);
  case 'h': if ((rc = need(s, 1))) return rc; return memo_get(s, s->p[s->pos++]);
  case 'j':
    if ((rc = need(s, 4))) return rc;
    key = le(s->p + s->pos, 4);
    s->pos += 4;
    return memo_get(s, key);
  case 'p': if ((rc = line_key(s, &key))) return rc; return memo_put(s, key);
  case 'q': if ((rc = need(s, 1))) return rc; return memo_put(s, s->p[s->pos++]);
  case 'r':
    if ((rc = need(s, 4))) return rc;
    key = le(s->p + s->pos, 4);
    s->pos += 4;
    return memo_put(s, key);
  case 0x94: return memo_put(s, s->memolen); /* MEMOIZE: the next index */
  case 'o': /* OBJ: MARK cls args... */
    if ((rc = pop_mark(s, &base))) return rc;
    if (s->sp == base) return bad(s, "OBJ without a class");
    t = s->st[base];
    s->sp = base;
    t.kind = t.kind == V_GLOBAL ? V_INST : V_OTHER;
    return push(s, &t);
  case 0x81: /* NEWOBJ: cls.__new__(cls, *args) */
  case 0x92: /* NEWOBJ_EX: cls, args, kwargs */
    if ((rc = pop(s, op == 0x81 ? 2 : 3, v))) return rc;
    t = v[0];
    t.kind = t.kind == V_GLOBAL ? V_INST : V_OTHER;
    return push(s, &t);
  case 0x80: /* PROTO */
    if ((rc = need(s, 1))) return rc;
    if (s->p[s->pos] > 5) return bad(s, "protocol above 5");
    if (!s->res->proto) s->res->proto = s->p[s->pos];
    s->pos++;
    return 0;
  case 0x82: case 0x83: case 0x84: /* EXT1/2/4: copyreg's extension registry */
    {
      int k = op == 0x82 ? 1 : op == 0x83 ? 2 : 4;
      if ((rc = need(s, (size_t)k))) return rc;
      char code[40];
      int cl = snprintf(code, sizeof code, "%llu", (unsigned long long)le(s->p + s->pos, k));
      s->pos += (size_t)k;
      /* the registry maps codes to arbitrary imports: list it, never allow */
      return add_global(s, (const uint8_t *)"copyreg.extension", 17, (const uint8_t *)code,
                        (size_t)cl);
    }
  case 0x85: case 0x86: case 0x87: /* TUPLE1/2/3 */
    {
      size_t k = (size_t)(op - 0x84);
      if ((rc = pop(s, k, v))) return rc;
      tuple_from(&t, v, k);
      return push(s, &t);
    }
  case 0x95: /* FRAME: a length hint only */
    if ((rc = need(s, 8))) return rc;
    s->pos += 8;
    return 0;
  case 0x97: return push_kind(s, V_OTHER); /* NEXT_BUFFER */
  case 0x98: /* READONLY_BUFFER */
    if (above_mark(s) == 0) return bad(s, "READONLY_BUFFER on an empty stack");
    return 0;
  default: {
    s->pos--;
    char why[48];
    snprintf(why, sizeof why, "unknown opcode 0x%02x", op);
    return bad(s, why);
  }
  }
}

static int scan_one(struct scan *s) {
  bool stop = false;
  while (!stop) {
    if (s->pos >= s->n) return bad(s, "truncated (no STOP opcode)");
    int rc = step(s, &stop);
    if (rc) return rc;
  }
  if (s->sp != 1 || s->nmarks) return bad(s, "STOP with a stack that is not one value");
  return 0;
}

int intake_pickle_verdict(struct intake_ctx *c, struct err *e) {
  if (!c->first_unsafe[0]) return 0;
  if (c->o->allow_unsafe_pickle) {
    c->r->unsafe = true;
    return 0;
  }
  return err_set(e, ERR_UNSAFE_MODEL, "unsafe pickle: imports %s", c->first_unsafe);
}

int intake_pickle_scan(struct intake_ctx *c, const uint8_t *p, size_t n, const char *what,
                       unsigned flags, struct pickle_result *res, struct err *e) {
  memset(res, 0, sizeof *res);
  struct scan s = {.c = c, .p = p, .n = n, .flags = flags, .what = what, .e = e, .res = res};
  int rc = scan_one(&s);
  res->end = s.pos;
  free(s.st);
  free(s.marks);
  free(s.memo);
  free(s.memo_keys);
  /* a loader runs every opcode before the fault: an import seen before it
   * is what matters, so that verdict wins over "malformed" */
  if (rc == -ERR_INVALID_PARAMETER_VALUE && !(flags & PICKLE_PROBE) && c->first_unsafe[0] &&
      !c->o->allow_unsafe_pickle)
    return intake_pickle_verdict(c, e);
  if (rc) return rc;
  return intake_pickle_verdict(c, e);
}
