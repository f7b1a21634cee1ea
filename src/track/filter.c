/* track/filter: the search filter language — a recursive-descent parser
 * with character positions in its errors, and a compiler to SQLite WHERE and
 * ORDER BY fragments whose values all travel as `?` binds. */
#include "track/filter.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- what can be searched ------------------------------------------------- */

enum kind { K_ATTR, K_METRIC, K_PARAM, K_TAG };
enum vtype { VT_STR, VT_NUM };

enum op {
  OP_EQ,
  OP_NE,
  OP_LT,
  OP_LE,
  OP_GT,
  OP_GE,
  OP_LIKE,
  OP_ILIKE,
  OP_NOT_LIKE,
  OP_NOT_ILIKE,
  OP_IN,
  OP_NOT_IN,
  OP_BETWEEN,
  OP_NOT_BETWEEN,
  OP_IS_NULL,
  OP_IS_NOT_NULL,
};
#define B(o) (1u << (o))
/* MLflow's comparators per type, plus Kiln's NOT LIKE, BETWEEN and IS NULL. */
#define OPS_STR                                                                                    \
  (B(OP_EQ) | B(OP_NE) | B(OP_LIKE) | B(OP_ILIKE) | B(OP_NOT_LIKE) | B(OP_NOT_ILIKE) |             \
   B(OP_IS_NULL) | B(OP_IS_NOT_NULL))
#define OPS_IN (B(OP_IN) | B(OP_NOT_IN))
#define OPS_NUM                                                                                    \
  (B(OP_EQ) | B(OP_NE) | B(OP_LT) | B(OP_LE) | B(OP_GT) | B(OP_GE) | B(OP_BETWEEN) |               \
   B(OP_NOT_BETWEEN) | B(OP_IS_NULL) | B(OP_IS_NOT_NULL))

struct attr_def {
  const char *name;  /* as written in a filter (exact case, as MLflow) */
  const char *canon; /* the key duplicates and tie-breakers compare */
  const char *col;   /* SQL column, qualified by the outer alias */
  enum vtype type;
  unsigned ops;  /* 0: order_by only */
  bool nullable; /* guard comparisons so NOT stays a complement */
  bool listed;   /* named in "valid keys are ..." */
};

static const struct attr_def run_attrs[] = {
    {"run_id", "run_id", "r.run_uuid", VT_STR, OPS_STR | OPS_IN, false, true},
    {"run_name", "run_name", "r.name", VT_STR, OPS_STR, true, true},
    {"run name", "run_name", "r.name", VT_STR, OPS_STR, true, false},
    {"Run name", "run_name", "r.name", VT_STR, OPS_STR, true, false},
    {"Run Name", "run_name", "r.name", VT_STR, OPS_STR, true, false},
    {"user_id", "user_id", "r.user_id", VT_STR, OPS_STR, true, true},
    {"status", "status", "r.status", VT_STR, OPS_STR, true, true},
    {"artifact_uri", "artifact_uri", "r.artifact_uri", VT_STR, OPS_STR, true, true},
    {"start_time", "start_time", "r.start_time", VT_NUM, OPS_NUM, true, true},
    {"created", "start_time", "r.start_time", VT_NUM, OPS_NUM, true, true},
    {"Created", "start_time", "r.start_time", VT_NUM, OPS_NUM, true, false},
    {"end_time", "end_time", "r.end_time", VT_NUM, OPS_NUM, true, true},
    {NULL, NULL, NULL, 0, 0, false, false},
};
static const struct attr_def exp_attrs[] = {
    {"name", "name", "e.name", VT_STR, OPS_STR, true, true},
    {"creation_time", "creation_time", "e.creation_time", VT_NUM, OPS_NUM, true, true},
    {"last_update_time", "last_update_time", "e.last_update_time", VT_NUM, OPS_NUM, true, true},
    {"experiment_id", "experiment_id", "e.experiment_id", VT_NUM, 0, false, true},
    {NULL, NULL, NULL, 0, 0, false, false},
};
static const struct attr_def model_attrs[] = {
    {"name", "name", "m.name", VT_STR, OPS_STR, false, true},
    {"timestamp", "last_updated_timestamp", "m.last_updated_time", VT_NUM, 0, true, true},
    /* MLflow's SQL store refuses it; its in-memory filter class lists it, and
     * ordering by age is what a registry listing wants */
    {"creation_timestamp", "creation_timestamp", "m.creation_time", VT_NUM, 0, true, true},
    {"last_updated_timestamp", "last_updated_timestamp", "m.last_updated_time", VT_NUM, 0, true,
     true},
    {NULL, NULL, NULL, 0, 0, false, false},
};
static const struct attr_def version_attrs[] = {
    {"name", "name", "v.name", VT_STR, OPS_STR, false, true},
    {"run_id", "run_id", "v.run_id", VT_STR, OPS_STR | OPS_IN, true, true},
    {"source_path", "source_path", "v.source", VT_STR, OPS_STR, true, true},
    {"version_number", "version_number", "v.version", VT_NUM, OPS_NUM, false, true},
    {"creation_timestamp", "creation_timestamp", "v.creation_time", VT_NUM, 0, true, true},
    {"last_updated_timestamp", "last_updated_timestamp", "v.last_updated_time", VT_NUM, 0, true,
     true},
    {NULL, NULL, NULL, 0, 0, false, false},
};

/* Per entity: attributes, and the child tables keyed to the outer row
 * (registry tables: migration 0010). */
struct ent_def {
  const char *what; /* "run", "experiment", ... */
  const struct attr_def *attrs;
  const char *metric_tbl, *param_tbl, *tag_tbl; /* NULL: not searchable */
  const char *corr;                             /* child alias `c` to the outer row */
  const char *prefixes;                         /* for "valid values are" */
};
static const struct ent_def ents[] = {
    [TRACK_FLT_RUNS] = {"run", run_attrs, "latest_metrics", "params", "tags", "c.run_uuid = r.run_uuid",
                  "'metrics', 'params', 'tags', 'attributes', 'datasets'"},
    [TRACK_FLT_EXPERIMENTS] = {"experiment", exp_attrs, NULL, NULL, "experiment_tags",
                         "c.experiment_id = e.experiment_id", "'attributes', 'tags'"},
    [TRACK_FLT_REGISTERED_MODELS] = {"registered model", model_attrs, NULL, NULL,
                               "registered_model_tags", "c.model_id = m.id", "'attributes', 'tags'"},
    [TRACK_FLT_MODEL_VERSIONS] = {"model version", version_attrs, NULL, NULL, "model_version_tags",
                            "c.model_id = v.model_id AND c.version = v.version", "'attributes', 'tags'"},
};

static const struct ent_def *ent_def(enum track_flt_entity ent) {
  return (unsigned)ent < sizeof ents / sizeof ents[0] ? &ents[ent] : &ents[TRACK_FLT_RUNS];
}

/* ---- the tree --------------------------------------------------------------- */

struct value {
  bool is_str;
  char *s; /* strings: decoded, NUL-terminated */
  size_t len;
  bool is_int; /* numbers: an integer literal that fits int64 */
  int64_t i;
  double d;
};

enum node_kind { N_AND, N_OR, N_NOT, N_CMP };
struct node {
  enum node_kind kind;
  int n; /* AND/OR: kids; NOT: 1 */
  struct node **kids;
  /* N_CMP */
  enum kind ek;
  const struct attr_def *attr;
  char *key;
  size_t keylen;
  enum op op;
  int nvals;
  struct value *vals;
};

struct track_flt {
  enum track_flt_entity ent;
  struct arena arena;
  struct node *root; /* NULL: matches everything */
};

/* ---- bind list ---------------------------------------------------------------- */

void track_flt_binds_init(struct track_flt_binds *b) { memset(b, 0, sizeof *b); }

void track_flt_binds_fini(struct track_flt_binds *b) {
  for (int i = 0; i < b->n; i++)
    if (b->v[i].type == TRACK_FLT_BIND_TEXT) free(b->v[i].v.text.s);
  free(b->v);
  memset(b, 0, sizeof *b);
}

static struct track_flt_bind *bind_push(struct track_flt_binds *b, struct err *e) {
  if (b->n >= TRACK_FLT_MAX_BINDS) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "filter: more than %d values to bind", TRACK_FLT_MAX_BINDS);
    return NULL;
  }
  if (b->n == b->cap) {
    int cap = b->cap ? b->cap * 2 : 16;
    struct track_flt_bind *v = realloc(b->v, (size_t)cap * sizeof *v);
    if (!v) {
      err_set(e, ERR_NO_MEMORY, "out of memory");
      return NULL;
    }
    b->v = v;
    b->cap = cap;
  }
  return &b->v[b->n];
}

int track_flt_bind_text(struct track_flt_binds *b, const char *s, size_t len, struct err *e) {
  struct err local;
  if (!e) e = &local;
  struct track_flt_bind *x = bind_push(b, e);
  if (!x) return -(int)e->code;
  char *copy = malloc(len + 1);
  if (!copy) return err_set(e, ERR_NO_MEMORY, "out of memory");
  if (len) memcpy(copy, s, len);
  copy[len] = 0;
  x->type = TRACK_FLT_BIND_TEXT;
  x->v.text.s = copy;
  x->v.text.len = len;
  b->n++;
  return 0;
}

int track_flt_bind_i64(struct track_flt_binds *b, int64_t v, struct err *e) {
  struct err local;
  if (!e) e = &local;
  struct track_flt_bind *x = bind_push(b, e);
  if (!x) return -(int)e->code;
  x->type = TRACK_FLT_BIND_I64;
  x->v.i64 = v;
  b->n++;
  return 0;
}

int track_flt_bind_f64(struct track_flt_binds *b, double v, struct err *e) {
  struct err local;
  if (!e) e = &local;
  struct track_flt_bind *x = bind_push(b, e);
  if (!x) return -(int)e->code;
  x->type = TRACK_FLT_BIND_F64;
  x->v.f64 = v;
  b->n++;
  return 0;
}

int track_flt_binds_apply(const struct track_flt_binds *b, struct db_stmt *s, int first) {
  for (int i = 0; i < b->n; i++) {
    const struct track_flt_bind *x = &b->v[i];
    int rc;
    switch (x->type) {
    case TRACK_FLT_BIND_TEXT: rc = db_bind_textn(s, first + i, x->v.text.s, x->v.text.len); break;
    case TRACK_FLT_BIND_I64: rc = db_bind_i64(s, first + i, x->v.i64); break;
    default: rc = db_bind_f64(s, first + i, x->v.f64); break;
    }
    if (rc < 0) return rc;
  }
  return first + b->n;
}

/* ---- the parser ------------------------------------------------------------- */

struct parser {
  const char *s;
  size_t len, pos;
  enum track_flt_entity ent;
  const struct ent_def *def;
  struct arena *a;
  struct err *e;
  const char *prefix; /* "filter" or "order_by: clause N '...'" */
  bool order_by;      /* identifiers for order_by: order-only keys, no tags on non-runs */
  int depth, terms, binds;
  bool failed;
};

/* 1-based character position of byte offset off. */
static size_t char_pos(const struct parser *p, size_t off) {
  size_t n = 0;
  for (size_t i = 0; i < off && i < p->len; i++)
    if (((unsigned char)p->s[i] & 0xC0) != 0x80) n++;
  return n + 1;
}

static bool is_word_start(int c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
static bool is_word(int c) { return is_word_start(c) || (c >= '0' && c <= '9'); }
/* Unquoted keys after `prefix.`: MLflow's key characters (word, '.', '/',
 * '-', ' ' is excluded, ':') and any non-ASCII byte. */
static bool is_key(int c) {
  return is_word(c) || c == '.' || c == '/' || c == '-' || c == ':' || c >= 0x80;
}
static bool is_ws(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int peekc(const struct parser *p) {
  return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}
static int peekc_at(const struct parser *p, size_t off) {
  return off < p->len ? (unsigned char)p->s[off] : -1;
}
static void skip_ws(struct parser *p) {
  while (p->pos < p->len && is_ws((unsigned char)p->s[p->pos])) p->pos++;
}

/* The token at off for "found ...": a word, a string literal with its
 * quotes, a run of operator characters, or one character; cut at 32 bytes on
 * a character boundary, control bytes as \xNN. */
static void describe(const struct parser *p, size_t off, char *out, size_t cap) {
  if (off >= p->len) {
    str_copy(out, cap, "end of input");
    return;
  }
  size_t end = off;
  int c = peekc_at(p, off);
  bool quoted = false;
  if (is_ws(c)) {
    str_copy(out, cap, "whitespace");
    return;
  }
  if (c == '\'' || c == '"' || c == '`') {
    quoted = true;
    end = off + 1;
    while (end < p->len && p->s[end] != (char)c) end++;
    if (end < p->len) end++;
  } else if (is_key(c)) {
    while (end < p->len && is_key((unsigned char)p->s[end])) end++;
  } else if (c == '=' || c == '!' || c == '<' || c == '>') {
    while (end < p->len && strchr("=!<>", p->s[end])) end++;
  } else {
    end = off + 1;
    while (end < p->len && ((unsigned char)p->s[end] & 0xC0) == 0x80) end++;
  }
  bool cut = false;
  if (end - off > 32) {
    end = off + 32;
    while (end > off && ((unsigned char)p->s[end] & 0xC0) == 0x80) end--;
    cut = true;
  }
  size_t n = 0;
  if (!quoted && n + 1 < cap) out[n++] = '\'';
  for (size_t i = off; i < end;) {
    unsigned char ch = (unsigned char)p->s[i];
    size_t clen = 1;
    while (i + clen < end && ((unsigned char)p->s[i + clen] & 0xC0) == 0x80) clen++;
    size_t need = (ch < 0x20 || ch == 0x7f) ? 4 : clen;
    if (n + need + 5 >= cap) { /* room for "...'" and the NUL */
      cut = true;
      break;
    }
    if (ch < 0x20 || ch == 0x7f)
      n += (size_t)snprintf(out + n, cap - n, "\\x%02x", ch);
    else
      memcpy(out + n, p->s + i, clen), n += clen;
    i += clen;
  }
  if (cut && n + 4 < cap) {
    memcpy(out + n, "...", 3);
    n += 3;
  }
  if (!quoted && n + 1 < cap) out[n++] = '\'';
  out[n] = 0;
}

static int perr(struct parser *p, size_t off, const char *fmt, ...) KILN_PRINTF(3, 4);
/* Fills e with msg cut to fit struct err on a UTF-8 character boundary, so
 * the message stays valid UTF-8 (it goes into a JSON reply). */
static int err_utf8(struct err *e, enum err_code code, const char *msg) {
  char cut[sizeof e->msg];
  size_t n = strlen(msg);
  if (n >= sizeof cut) {
    n = sizeof cut - 1;
    while (n > 0 && ((unsigned char)msg[n] & 0xC0) == 0x80) n--;
  }
  memcpy(cut, msg, n);
  cut[n] = 0;
  return err_set(e, code, "%s", cut);
}

static int perr(struct parser *p, size_t off, const char *fmt, ...) {
  if (p->failed) return -ERR_INVALID_PARAMETER_VALUE;
  char what[512], full[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  p->failed = true;
  snprintf(full, sizeof full, "%s: at position %zu: %s", p->prefix, char_pos(p, off), what);
  return err_utf8(p->e, ERR_INVALID_PARAMETER_VALUE, full);
}

static int nomem(struct parser *p) {
  p->failed = true;
  return err_set(p->e, ERR_NO_MEMORY, "out of memory parsing %s", p->prefix);
}

/* Case-insensitive keyword at the cursor, followed by a non-word character. */
static bool kw_at(const struct parser *p, size_t off, const char *kw) {
  size_t n = strlen(kw);
  if (off + n > p->len || strncasecmp(p->s + off, kw, n) != 0) return false;
  return !is_key(peekc_at(p, off + n));
}
static bool kw_take(struct parser *p, const char *kw) {
  if (!kw_at(p, p->pos, kw)) return false;
  p->pos += strlen(kw);
  skip_ws(p);
  return true;
}

/* Validates UTF-8 (the positions count characters, and messages quote the
 * input); refuses NUL bytes inside the given length. */
static int check_utf8(struct parser *p) {
  const unsigned char *s = (const unsigned char *)p->s;
  size_t i = 0;
  while (i < p->len) {
    unsigned c = s[i];
    size_t n;
    unsigned min;
    if (c == 0) return perr(p, i, "NUL character in input");
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) n = 1, min = 0x80, c &= 0x1F;
    else if ((c & 0xF0) == 0xE0) n = 2, min = 0x800, c &= 0x0F;
    else if ((c & 0xF8) == 0xF0) n = 3, min = 0x10000, c &= 0x07;
    else
      return perr(p, i, "invalid UTF-8");
    for (size_t k = 1; k <= n; k++) {
      if (i + k >= p->len || (s[i + k] & 0xC0) != 0x80) return perr(p, i, "invalid UTF-8");
      c = (c << 6) | (s[i + k] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return perr(p, i, "invalid UTF-8");
    i += n + 1;
  }
  return 0;
}

/* A quoted string at the cursor (', " or `), decoded: the quote doubled, or
 * (not for backticks) backslash + quote / backslash + backslash, stand for
 * themselves; any other backslash is kept as written. */
static int read_quoted(struct parser *p, char **out, size_t *outlen) {
  size_t start = p->pos;
  char q = p->s[p->pos++];
  struct buf b;
  buf_init(&b);
  for (;;) {
    if (p->pos >= p->len) {
      buf_fini(&b);
      return perr(p, start, "unterminated %s starting here",
                  q == '`' ? "backtick-quoted name" : "string literal");
    }
    char c = p->s[p->pos];
    if (c == q) {
      if (peekc_at(p, p->pos + 1) == (unsigned char)q) {
        if (buf_putc(&b, q) < 0) goto oom;
        p->pos += 2;
        continue;
      }
      p->pos++;
      break;
    }
    if (c == '\\' && q != '`' &&
        (peekc_at(p, p->pos + 1) == (unsigned char)q || peekc_at(p, p->pos + 1) == '\\')) {
      if (buf_putc(&b, p->s[p->pos + 1]) < 0) goto oom;
      p->pos += 2;
      continue;
    }
    if (buf_putc(&b, c) < 0) goto oom;
    p->pos++;
  }
  *outlen = b.len;
  *out = arena_strndup(p->a, b.data ? b.data : "", b.len);
  buf_fini(&b);
  if (!*out) return nomem(p);
  return 0;
oom:
  buf_fini(&b);
  return nomem(p);
}

static const char *kind_word(enum kind k) {
  switch (k) {
  case K_METRIC: return "metric";
  case K_PARAM: return "param";
  case K_TAG: return "tag";
  default: return "attribute";
  }
}

/* The key in messages, cut to 40 bytes on a character boundary. */
static const char *short_key(const char *k, char *out, size_t cap) {
  size_t n = strlen(k);
  if (n <= 40) {
    str_copy(out, cap, k);
    return out;
  }
  size_t end = 40;
  while (end > 0 && ((unsigned char)k[end] & 0xC0) == 0x80) end--;
  snprintf(out, cap, "%.*s...", (int)end, k);
  return out;
}

static int valid_keys(const struct ent_def *d, bool order_by, char *out, size_t cap) {
  size_t n = 0;
  out[0] = 0;
  for (const struct attr_def *a = d->attrs; a->name; a++) {
    if (!a->listed || (!order_by && !a->ops)) continue;
    int w = snprintf(out + n, cap - n, "%s'%s'", n ? ", " : "", a->name);
    if (w < 0 || (size_t)w >= cap - n) break;
    n += (size_t)w;
  }
  return 0;
}

struct ident {
  size_t pos;
  enum kind ek;
  const struct attr_def *attr;
  char *key;
  size_t keylen;
};

static int read_segment(struct parser *p, char **out, size_t *len, bool *quoted) {
  int c = peekc(p);
  *quoted = false;
  if (c == '`' || c == '"') {
    *quoted = true;
    return read_quoted(p, out, len);
  }
  size_t st = p->pos;
  while (p->pos < p->len && is_word((unsigned char)p->s[p->pos])) p->pos++;
  *len = p->pos - st;
  *out = arena_strndup(p->a, p->s + st, *len);
  return *out ? 0 : nomem(p);
}

static int parse_ident(struct parser *p, struct ident *id) {
  char found[64], kbuf[64];
  memset(id, 0, sizeof *id);
  id->pos = p->pos;
  int c = peekc(p);
  if (!(c == '`' || c == '"' || is_word_start(c))) {
    describe(p, p->pos, found, sizeof found);
    return perr(p, p->pos,
                "expected an identifier (metrics.<key>, params.<key>, tags.<key> or an "
                "attribute), found %s",
                found);
  }
  char *seg;
  size_t seglen;
  bool quoted;
  if (read_segment(p, &seg, &seglen, &quoted) < 0) return -1;
  if (peekc(p) == '.') {
    size_t ent_pos = id->pos;
    p->pos++;
    char lower[16];
    size_t n = seglen < sizeof lower - 1 ? seglen : sizeof lower - 1;
    for (size_t i = 0; i < n; i++)
      lower[i] = (char)((seg[i] >= 'A' && seg[i] <= 'Z') ? seg[i] + 32 : seg[i]);
    lower[n] = 0;
    bool fits = seglen < sizeof lower - 1 && strlen(seg) == seglen;
    bool runs = p->ent == TRACK_FLT_RUNS;
    if (fits && (!strcmp(lower, "metric") || !strcmp(lower, "metrics")) && runs)
      id->ek = K_METRIC;
    else if (fits && runs &&
             (!strcmp(lower, "param") || !strcmp(lower, "params") ||
              !strcmp(lower, "parameter") || !strcmp(lower, "parameters")))
      id->ek = K_PARAM;
    else if (fits && (!strcmp(lower, "tag") || !strcmp(lower, "tags")))
      id->ek = K_TAG;
    else if (fits && (!strcmp(lower, "attribute") || !strcmp(lower, "attributes") ||
                      !strcmp(lower, "attr") || (runs && !strcmp(lower, "run"))))
      id->ek = K_ATTR;
    else if (fits && runs && (!strcmp(lower, "dataset") || !strcmp(lower, "datasets")))
      return perr(p, ent_pos, "dataset filters (datasets.name, datasets.digest, "
                              "datasets.context) are not supported yet");
    else
      return perr(p, ent_pos, "invalid entity type '%s'. Valid values are %s",
                  short_key(seg, kbuf, sizeof kbuf), p->def->prefixes);
    c = peekc(p);
    if (c == '`' || c == '"') {
      if (read_quoted(p, &id->key, &id->keylen) < 0) return -1;
    } else {
      size_t st = p->pos;
      while (p->pos < p->len && is_key((unsigned char)p->s[p->pos])) p->pos++;
      id->keylen = p->pos - st;
      if (id->keylen == 0) {
        describe(p, p->pos, found, sizeof found);
        return perr(p, p->pos, "expected a key after '%.*s.', found %s", (int)seglen, seg, found);
      }
      id->key = arena_strndup(p->a, p->s + st, id->keylen);
      if (!id->key) return nomem(p);
    }
    if (id->keylen == 0) return perr(p, ent_pos, "empty key");
  } else {
    id->ek = K_ATTR;
    id->key = seg;
    id->keylen = seglen;
    if (seglen == 0) return perr(p, id->pos, "empty key");
  }
  if (id->keylen > TRACK_FLT_MAX_KEY)
    return perr(p, id->pos, "key longer than %d bytes", TRACK_FLT_MAX_KEY);
  if (memchr(id->key, 0, id->keylen)) return perr(p, id->pos, "NUL character in key");
  if (id->ek == K_TAG && p->order_by && p->ent != TRACK_FLT_RUNS)
    return perr(p, id->pos, "invalid order_by entity: tag");
  if (id->ek == K_ATTR) {
    for (const struct attr_def *a = p->def->attrs; a->name; a++) {
      if (strcmp(a->name, id->key) == 0 && (a->ops || p->order_by)) {
        id->attr = a;
        return 0;
      }
    }
    char keys[200];
    valid_keys(p->def, p->order_by, keys, sizeof keys);
    return perr(p, id->pos, "invalid attribute key '%s' specified. Valid keys are %s",
                short_key(id->key, kbuf, sizeof kbuf), keys);
  }
  return 0;
}

static const char *ops_list(const struct ident *id) {
  if (id->ek == K_METRIC || (id->attr && id->attr->type == VT_NUM))
    return "=, !=, <, <=, >, >=, BETWEEN, IS NULL, IS NOT NULL";
  if (id->attr && (id->attr->ops & OPS_IN))
    return "=, !=, LIKE, ILIKE, IN, NOT IN, IS NULL, IS NOT NULL";
  return "=, !=, LIKE, ILIKE, IS NULL, IS NOT NULL";
}

static unsigned ops_allowed(const struct ident *id) {
  if (id->ek == K_METRIC) return OPS_NUM;
  if (id->ek == K_ATTR) return id->attr->ops;
  return OPS_STR;
}

#define CMP_EXPECTED "a comparator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN)"

static int parse_op(struct parser *p, enum op *op, char *opname, size_t cap) {
  char found[64];
  size_t st = p->pos;
  int c = peekc(p), c2 = peekc_at(p, p->pos + 1);
  if (c == '=') {
    *op = OP_EQ;
    p->pos++;
  } else if (c == '!' && c2 == '=') {
    *op = OP_NE;
    p->pos += 2;
  } else if (c == '<' && c2 == '>') {
    *op = OP_NE;
    p->pos += 2;
  } else if (c == '<' && c2 == '=') {
    *op = OP_LE;
    p->pos += 2;
  } else if (c == '<') {
    *op = OP_LT;
    p->pos++;
  } else if (c == '>' && c2 == '=') {
    *op = OP_GE;
    p->pos += 2;
  } else if (c == '>') {
    *op = OP_GT;
    p->pos++;
  } else if (kw_take(p, "LIKE")) {
    *op = OP_LIKE;
  } else if (kw_take(p, "ILIKE")) {
    *op = OP_ILIKE;
  } else if (kw_take(p, "IN")) {
    *op = OP_IN;
  } else if (kw_take(p, "BETWEEN")) {
    *op = OP_BETWEEN;
  } else if (kw_take(p, "IS")) {
    if (kw_take(p, "NULL")) {
      *op = OP_IS_NULL;
    } else if (kw_take(p, "NOT") && kw_take(p, "NULL")) {
      *op = OP_IS_NOT_NULL;
    } else {
      describe(p, p->pos, found, sizeof found);
      return perr(p, p->pos, "expected NULL or NOT NULL after IS, found %s", found);
    }
  } else if (kw_take(p, "NOT")) {
    if (kw_take(p, "LIKE")) *op = OP_NOT_LIKE;
    else if (kw_take(p, "ILIKE")) *op = OP_NOT_ILIKE;
    else if (kw_take(p, "IN")) *op = OP_NOT_IN;
    else if (kw_take(p, "BETWEEN")) *op = OP_NOT_BETWEEN;
    else {
      describe(p, p->pos, found, sizeof found);
      return perr(p, p->pos, "expected LIKE, ILIKE, IN or BETWEEN after NOT, found %s", found);
    }
  } else {
    describe(p, st, found, sizeof found);
    return perr(p, st, "expected " CMP_EXPECTED ", found %s", found);
  }
  /* the comparator as written, whitespace folded, for messages */
  size_t n = 0;
  bool sp = false;
  for (size_t i = st; i < p->pos && n + 2 < cap; i++) {
    char ch = p->s[i];
    if (is_ws((unsigned char)ch)) {
      sp = true;
      continue;
    }
    if (sp && n) opname[n++] = ' ';
    sp = false;
    opname[n++] = (char)((ch >= 'a' && ch <= 'z') ? ch - 32 : ch);
  }
  opname[n] = 0;
  skip_ws(p);
  return 0;
}

static const char *lhs_name(const struct ident *id, char *out, size_t cap) {
  char k[64];
  snprintf(out, cap, "%s '%s'", kind_word(id->ek), short_key(id->key, k, sizeof k));
  return out;
}

/* One literal: a quoted string or a number. */
static int parse_value(struct parser *p, const struct ident *id, struct value *v) {
  char found[64], lhs[96];
  bool want_num = id->ek == K_METRIC || (id->attr && id->attr->type == VT_NUM);
  size_t st = p->pos;
  int c = peekc(p);
  memset(v, 0, sizeof *v);
  if (c == '\'' || c == '"') {
    if (want_num) {
      describe(p, st, found, sizeof found);
      return perr(p, st, "expected numeric value type for %s, found %s",
                  lhs_name(id, lhs, sizeof lhs), found);
    }
    v->is_str = true;
    if (read_quoted(p, &v->s, &v->len) < 0) return -1;
    if (memchr(v->s, 0, v->len)) return perr(p, st, "NUL character in string");
    skip_ws(p);
    return 0;
  }
  size_t i = p->pos;
  if (peekc_at(p, i) == '-' || peekc_at(p, i) == '+') i++;
  size_t digits = 0;
  bool is_int = true;
  while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9') i++, digits++;
  if (peekc_at(p, i) == '.') {
    is_int = false;
    i++;
    while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9') i++, digits++;
  }
  if (digits && (peekc_at(p, i) == 'e' || peekc_at(p, i) == 'E')) {
    size_t j = i + 1;
    if (peekc_at(p, j) == '+' || peekc_at(p, j) == '-') j++;
    size_t ed = 0;
    while (j < p->len && p->s[j] >= '0' && p->s[j] <= '9') j++, ed++;
    if (ed) {
      is_int = false;
      i = j;
    }
  }
  if (!digits || is_key(peekc_at(p, i))) {
    describe(p, st, found, sizeof found);
    if (want_num)
      return perr(p, st, "expected numeric value type for %s, found %s",
                  lhs_name(id, lhs, sizeof lhs), found);
    return perr(p, st, "expected a quoted string value for %s (e.g. 'my-value'), found %s",
                lhs_name(id, lhs, sizeof lhs), found);
  }
  if (!want_num) {
    describe(p, st, found, sizeof found);
    return perr(p, st, "expected a quoted string value for %s (e.g. 'my-value'), found %s",
                lhs_name(id, lhs, sizeof lhs), found);
  }
  size_t n = i - st;
  if (n > 400) return perr(p, st, "number literal too long");
  char tmp[401];
  memcpy(tmp, p->s + st, n);
  tmp[n] = 0;
  errno = 0;
  v->d = strtod(tmp, NULL);
  if (is_int) {
    errno = 0;
    char *end;
    long long ll = strtoll(tmp, &end, 10);
    if (errno == 0 && *end == 0) {
      v->is_int = true;
      v->i = ll;
    }
  }
  p->pos = i;
  skip_ws(p);
  return 0;
}

static struct node *new_node(struct parser *p, enum node_kind k) {
  struct node *n = arena_zalloc(p->a, sizeof *n);
  if (!n) nomem(p);
  else n->kind = k;
  return n;
}

static int parse_comparison(struct parser *p, struct node **out) {
  struct ident id;
  char opname[32], lhs[96], found[64];
  if (parse_ident(p, &id) < 0) return -1;
  skip_ws(p);
  size_t op_pos = p->pos;
  enum op op = OP_EQ;
  if (parse_op(p, &op, opname, sizeof opname) < 0) return -1;
  if (!(ops_allowed(&id) & B(op)))
    return perr(p, op_pos, "invalid comparator '%s' for %s; expected one of %s", opname,
                lhs_name(&id, lhs, sizeof lhs), ops_list(&id));
  if (++p->terms > TRACK_FLT_MAX_TERMS)
    return perr(p, id.pos, "more than %d comparisons", TRACK_FLT_MAX_TERMS);
  struct node *n = new_node(p, N_CMP);
  if (!n) return -1;
  n->ek = id.ek;
  n->attr = id.attr;
  n->key = id.key;
  n->keylen = id.keylen;
  n->op = op;
  int nkey = id.ek == K_ATTR ? 0 : 1;
  if (op == OP_IS_NULL || op == OP_IS_NOT_NULL) {
    n->nvals = 0;
  } else if (op == OP_IN || op == OP_NOT_IN) {
    if (peekc(p) != '(') {
      describe(p, p->pos, found, sizeof found);
      return perr(p, p->pos, "expected '(' to open the %s list, found %s", opname, found);
    }
    p->pos++;
    skip_ws(p);
    int cap = 4;
    n->vals = arena_alloc(p->a, (size_t)cap * sizeof *n->vals);
    if (!n->vals) return nomem(p);
    for (;;) {
      if (n->nvals == cap) {
        struct value *nv = arena_alloc(p->a, (size_t)cap * 2 * sizeof *nv);
        if (!nv) return nomem(p);
        memcpy(nv, n->vals, (size_t)cap * sizeof *nv);
        n->vals = nv;
        cap *= 2;
      }
      size_t vpos = p->pos;
      if (p->binds + nkey + n->nvals + 1 > TRACK_FLT_MAX_FILTER_BINDS)
        return perr(p, vpos, "more than %d values in one filter", TRACK_FLT_MAX_FILTER_BINDS);
      if (parse_value(p, &id, &n->vals[n->nvals]) < 0) return -1;
      n->nvals++;
      if (peekc(p) == ',') {
        p->pos++;
        skip_ws(p);
        continue;
      }
      if (peekc(p) == ')') {
        p->pos++;
        skip_ws(p);
        break;
      }
      describe(p, p->pos, found, sizeof found);
      return perr(p, p->pos, "expected ',' or ')' in the %s list, found %s", opname, found);
    }
  } else if (op == OP_BETWEEN || op == OP_NOT_BETWEEN) {
    n->vals = arena_alloc(p->a, 2 * sizeof *n->vals);
    if (!n->vals) return nomem(p);
    if (parse_value(p, &id, &n->vals[0]) < 0) return -1;
    if (!kw_take(p, "AND")) {
      describe(p, p->pos, found, sizeof found);
      return perr(p, p->pos, "expected AND in %s ... AND ..., found %s", opname, found);
    }
    if (parse_value(p, &id, &n->vals[1]) < 0) return -1;
    n->nvals = 2;
  } else {
    n->vals = arena_alloc(p->a, sizeof *n->vals);
    if (!n->vals) return nomem(p);
    if (parse_value(p, &id, &n->vals[0]) < 0) return -1;
    n->nvals = 1;
  }
  p->binds += nkey + n->nvals;
  if (p->binds > TRACK_FLT_MAX_FILTER_BINDS)
    return perr(p, id.pos, "more than %d values in one filter", TRACK_FLT_MAX_FILTER_BINDS);
  *out = n;
  return 0;
}

static int parse_or(struct parser *p, struct node **out);

static int parse_unary(struct parser *p, struct node **out) {
  char found[64];
  size_t st = p->pos;
  if (kw_at(p, p->pos, "NOT")) {
    if (++p->depth > TRACK_FLT_MAX_DEPTH)
      return perr(p, st, "nesting deeper than %d levels", TRACK_FLT_MAX_DEPTH);
    kw_take(p, "NOT");
    struct node *n = new_node(p, N_NOT), *kid;
    if (!n) return -1;
    if (parse_unary(p, &kid) < 0) return -1;
    n->n = 1;
    n->kids = arena_alloc(p->a, sizeof *n->kids);
    if (!n->kids) return nomem(p);
    n->kids[0] = kid;
    p->depth--;
    *out = n;
    return 0;
  }
  if (peekc(p) == '(') {
    if (++p->depth > TRACK_FLT_MAX_DEPTH)
      return perr(p, st, "nesting deeper than %d levels", TRACK_FLT_MAX_DEPTH);
    p->pos++;
    skip_ws(p);
    if (parse_or(p, out) < 0) return -1;
    if (peekc(p) != ')') {
      describe(p, p->pos, found, sizeof found);
      return perr(p, p->pos, "expected AND, OR or ')' to close the '(' at position %zu, found %s",
                  char_pos(p, st), found);
    }
    p->pos++;
    skip_ws(p);
    p->depth--;
    return 0;
  }
  return parse_comparison(p, out);
}

/* AND and OR lists: kids collected in a heap vector, then kept in the arena. */
static int parse_list(struct parser *p, struct node **out, bool is_or) {
  struct node **v = NULL, *kid;
  int n = 0, cap = 0;
  for (;;) {
    int rc = is_or ? parse_list(p, &kid, false) : parse_unary(p, &kid);
    if (rc < 0) goto fail;
    if (n == cap) {
      int nc = cap ? cap * 2 : 4;
      struct node **nv = realloc(v, (size_t)nc * sizeof *nv);
      if (!nv) {
        nomem(p);
        goto fail;
      }
      v = nv;
      cap = nc;
    }
    v[n++] = kid;
    if (!kw_take(p, is_or ? "OR" : "AND")) break;
  }
  if (n == 1) {
    *out = v[0];
  } else {
    struct node *node = new_node(p, is_or ? N_OR : N_AND);
    if (!node) goto fail;
    node->kids = arena_alloc(p->a, (size_t)n * sizeof *node->kids);
    if (!node->kids) {
      nomem(p);
      goto fail;
    }
    memcpy(node->kids, v, (size_t)n * sizeof *v);
    node->n = n;
    *out = node;
  }
  free(v);
  return 0;
fail:
  free(v);
  return -1;
}

static int parse_or(struct parser *p, struct node **out) { return parse_list(p, out, true); }

static void parser_init(struct parser *p, const char *text, size_t len, enum track_flt_entity ent,
                        struct arena *a, struct err *e, const char *prefix) {
  memset(p, 0, sizeof *p);
  p->s = text;
  p->len = len;
  p->ent = ent;
  p->def = ent_def(ent);
  p->a = a;
  p->e = e;
  p->prefix = prefix;
}

int track_flt_parse(const char *text, enum track_flt_entity ent, struct track_flt **out, struct err *e) {
  struct err local;
  if (!e) e = &local;
  *out = NULL;
  if ((unsigned)ent > TRACK_FLT_MODEL_VERSIONS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "filter: unknown entity");
  size_t len = text ? strlen(text) : 0;
  if (len > TRACK_FLT_MAX_TEXT)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "filter: longer than %d bytes", TRACK_FLT_MAX_TEXT);
  struct track_flt *f = calloc(1, sizeof *f);
  if (!f) return err_set(e, ERR_NO_MEMORY, "out of memory parsing filter");
  f->ent = ent;
  arena_init(&f->arena, 4096, 0);
  struct parser p;
  parser_init(&p, text ? text : "", len, ent, &f->arena, e, "filter");
  if (check_utf8(&p) < 0) goto fail;
  skip_ws(&p);
  if (p.pos < p.len) {
    if (parse_or(&p, &f->root) < 0) goto fail;
    if (p.pos < p.len) {
      char found[64];
      describe(&p, p.pos, found, sizeof found);
      if (peekc(&p) == ')')
        perr(&p, p.pos, "unmatched ')'");
      else
        perr(&p, p.pos, "expected AND, OR or end of input, found %s", found);
      goto fail;
    }
  }
  *out = f;
  return 0;
fail:
  track_flt_free(f);
  return -(int)e->code;
}

void track_flt_free(struct track_flt *f) {
  if (!f) return;
  arena_fini(&f->arena);
  free(f);
}

bool track_flt_is_empty(const struct track_flt *f) { return !f || !f->root; }
enum track_flt_entity track_flt_entity_of(const struct track_flt *f) { return f ? f->ent : TRACK_FLT_RUNS; }

/* ---- SQL --------------------------------------------------------------------- */

struct cc {
  struct buf *sql;
  struct track_flt_binds *binds;
  const struct ent_def *def;
  struct err *e;
  int rc;
};

static void put(struct cc *c, const char *s) {
  if (c->rc == 0 && buf_puts(c->sql, s) < 0) c->rc = err_set(c->e, ERR_NO_MEMORY, "out of memory");
}

static void bind_text(struct cc *c, const char *s, size_t n) {
  if (c->rc == 0) c->rc = track_flt_bind_text(c->binds, s, n, c->e);
}

static void bind_num(struct cc *c, const struct value *v, bool as_double) {
  if (c->rc) return;
  if (v->is_int && !as_double)
    c->rc = track_flt_bind_i64(c->binds, v->i, c->e);
  else
    c->rc = track_flt_bind_f64(c->binds, v->d, c->e);
}

/* LIKE patterns: '%' any run, '_' one character; a backslash before '%',
 * '_' or a backslash makes that character literal, and is itself literal
 * before anything else (so Windows paths need no doubling). Case-sensitive LIKE becomes GLOB
 * (SQLite's LIKE folds ASCII case unless a connection-wide pragma says
 * otherwise), ILIKE becomes lower(x) LIKE lower(?) ESCAPE '\'. */
static int like_translate(const char *pat, size_t n, bool glob, struct buf *out) {
  for (size_t i = 0; i < n; i++) {
    char ch = pat[i];
    int rc = 0;
    if (ch == '\\' && i + 1 < n && (pat[i + 1] == '%' || pat[i + 1] == '_' || pat[i + 1] == '\\')) {
      /* an escaped wildcard or backslash: that character, literally */
      char lc = pat[++i];
      rc = glob ? buf_putc(out, lc) : buf_printf(out, "\\%c", lc);
    } else if (ch == '%') {
      rc = buf_putc(out, glob ? '*' : '%');
    } else if (ch == '_') {
      rc = buf_putc(out, glob ? '?' : '_');
    } else if (glob && (ch == '*' || ch == '?' || ch == '[')) {
      rc = buf_printf(out, "[%c]", ch);
    } else if (!glob && ch == '\\') {
      rc = buf_puts(out, "\\\\");
    } else {
      rc = buf_putc(out, ch);
    }
    if (rc < 0) return rc;
  }
  if (!out->data && buf_reserve(out, 1) < 0) return -ERR_NO_MEMORY;
  return 0;
}

static void bind_pattern(struct cc *c, const struct value *v, bool glob) {
  if (c->rc) return;
  struct buf b;
  buf_init(&b);
  if (like_translate(v->s, v->len, glob, &b) < 0)
    c->rc = err_set(c->e, ERR_NO_MEMORY, "out of memory");
  else
    bind_text(c, b.data, b.len);
  buf_fini(&b);
}

/* `x op ?...` for one column expression and one comparison; binds follow. */
static void emit_cond(struct cc *c, const char *x, const struct node *n, bool as_double) {
  static const char *const sym[] = {[OP_EQ] = "=",  [OP_NE] = "<>", [OP_LT] = "<",
                                    [OP_LE] = "<=", [OP_GT] = ">",  [OP_GE] = ">="};
  const struct value *v = n->vals;
  switch (n->op) {
  case OP_EQ:
  case OP_NE:
  case OP_LT:
  case OP_LE:
  case OP_GT:
  case OP_GE:
    put(c, x);
    put(c, " ");
    put(c, sym[n->op]);
    put(c, " ?");
    if (v->is_str)
      bind_text(c, v->s, v->len);
    else
      bind_num(c, v, as_double);
    break;
  case OP_LIKE:
  case OP_NOT_LIKE:
    put(c, n->op == OP_NOT_LIKE ? "NOT (" : "(");
    put(c, x);
    put(c, " GLOB ?)");
    bind_pattern(c, v, true);
    break;
  case OP_ILIKE:
  case OP_NOT_ILIKE:
    put(c, n->op == OP_NOT_ILIKE ? "NOT (lower(" : "(lower(");
    put(c, x);
    put(c, ") LIKE lower(?) ESCAPE '\\')");
    bind_pattern(c, v, false);
    break;
  case OP_IN:
  case OP_NOT_IN:
    put(c, x);
    put(c, n->op == OP_IN ? " IN (" : " NOT IN (");
    for (int i = 0; i < n->nvals; i++) {
      put(c, i ? ", ?" : "?");
      if (n->vals[i].is_str)
        bind_text(c, n->vals[i].s, n->vals[i].len);
      else
        bind_num(c, &n->vals[i], as_double);
    }
    put(c, ")");
    break;
  case OP_BETWEEN:
  case OP_NOT_BETWEEN:
    put(c, x);
    put(c, n->op == OP_BETWEEN ? " BETWEEN ? AND ?" : " NOT BETWEEN ? AND ?");
    bind_num(c, &v[0], as_double);
    bind_num(c, &v[1], as_double);
    break;
  case OP_IS_NULL: put(c, x), put(c, " IS NULL"); break;
  case OP_IS_NOT_NULL: put(c, x), put(c, " IS NOT NULL"); break;
  }
}

static void emit_cmp(struct cc *c, const struct node *n) {
  if (n->ek == K_ATTR) {
    const struct attr_def *a = n->attr;
    /* A NULL column makes `x op ?` NULL, and NOT NULL is NULL too: guard it
     * so every condition is true or false and NOT is a complement. */
    bool guard = a->nullable && n->op != OP_IS_NULL && n->op != OP_IS_NOT_NULL;
    put(c, "(");
    if (guard) {
      put(c, a->col);
      put(c, " IS NOT NULL AND ");
    }
    emit_cond(c, a->col, n, false);
    put(c, ")");
    return;
  }
  const char *tbl = n->ek == K_METRIC ? c->def->metric_tbl
                    : n->ek == K_PARAM ? c->def->param_tbl
                                       : c->def->tag_tbl;
  put(c, n->op == OP_IS_NULL ? "NOT EXISTS (SELECT 1 FROM " : "EXISTS (SELECT 1 FROM ");
  put(c, tbl);
  put(c, " c WHERE ");
  put(c, c->def->corr);
  put(c, " AND c.key = ?");
  bind_text(c, n->key, n->keylen);
  if (n->op != OP_IS_NULL && n->op != OP_IS_NOT_NULL) {
    put(c, " AND ");
    if (n->ek == K_METRIC) {
      /* A NaN latest value fails every comparison but != and NOT BETWEEN
       * (IEEE), whatever the value column holds for it. */
      bool nan_true = n->op == OP_NE || n->op == OP_NOT_BETWEEN;
      put(c, nan_true ? "(c.is_nan <> 0 OR " : "(c.is_nan = 0 AND ");
      emit_cond(c, "c.value", n, true);
      put(c, ")");
    } else {
      emit_cond(c, "c.value", n, false);
    }
  }
  put(c, ")");
}

static void emit_node(struct cc *c, const struct node *n);

/* Long AND/OR chains as a balanced tree, so SQLite's expression depth limit
 * (1000) is never reached by a wide filter. */
static void emit_chain(struct cc *c, struct node *const *kids, int n, const char *op) {
  if (n == 1) {
    emit_node(c, kids[0]);
    return;
  }
  int half = n / 2;
  put(c, "(");
  emit_chain(c, kids, half, op);
  put(c, op);
  emit_chain(c, kids + half, n - half, op);
  put(c, ")");
}

static void emit_node(struct cc *c, const struct node *n) {
  if (c->rc) return;
  switch (n->kind) {
  case N_AND: emit_chain(c, n->kids, n->n, " AND "); break;
  case N_OR: emit_chain(c, n->kids, n->n, " OR "); break;
  case N_NOT:
    put(c, "(NOT ");
    emit_node(c, n->kids[0]);
    put(c, ")");
    break;
  case N_CMP: emit_cmp(c, n); break;
  }
}

int track_flt_to_sql(const struct track_flt *f, struct buf *sql, struct track_flt_binds *binds, struct err *e) {
  struct err local;
  if (!e) e = &local;
  struct cc c = {sql, binds, ent_def(track_flt_entity_of(f)), e, 0};
  if (track_flt_is_empty(f)) {
    put(&c, "(1=1)");
    return c.rc;
  }
  put(&c, "(");
  emit_node(&c, f->root);
  put(&c, ")");
  return c.rc;
}

/* ---- order_by ------------------------------------------------------------------ */

struct okey {
  enum kind ek;
  const struct attr_def *attr;
  char *key;
  size_t keylen;
  bool asc;
};

static bool okey_same(const struct okey *a, const struct okey *b) {
  if (a->ek != b->ek) return false;
  if (a->ek == K_ATTR) return strcmp(a->attr->canon, b->attr->canon) == 0;
  return a->keylen == b->keylen && memcmp(a->key, b->key, a->keylen) == 0;
}

static const struct attr_def *attr_by_canon(const struct ent_def *d, const char *canon) {
  for (const struct attr_def *a = d->attrs; a->name; a++)
    if (!strcmp(a->canon, canon)) return a;
  return NULL;
}

static bool given(const struct okey *keys, int n, const char *canon) {
  for (int i = 0; i < n; i++)
    if (keys[i].ek == K_ATTR && !strcmp(keys[i].attr->canon, canon)) return true;
  return false;
}

static void emit_order_key(struct cc *c, const struct okey *k, bool nulls_last) {
  if (k->ek == K_ATTR) {
    put(c, k->attr->col);
    put(c, k->asc ? " ASC" : " DESC");
    if (nulls_last) put(c, " NULLS LAST");
    return;
  }
  const char *tbl = k->ek == K_METRIC ? c->def->metric_tbl
                    : k->ek == K_PARAM ? c->def->param_tbl
                                       : c->def->tag_tbl;
  if (k->ek == K_METRIC) {
    /* One lookup per row: SQLite orders numbers < text < blob, so numbers
     * (negated for DESC) come first, then NaN as the text 'nan', then runs
     * without the metric as an empty blob — MLflow's order both ways. */
    put(c, "COALESCE((SELECT CASE WHEN c.is_nan <> 0 THEN 'nan' ELSE ");
    put(c, k->asc ? "c.value" : "-c.value");
    put(c, " END FROM ");
  } else {
    put(c, "(SELECT c.value FROM ");
  }
  put(c, tbl);
  put(c, " c WHERE ");
  put(c, c->def->corr);
  put(c, " AND c.key = ?)");
  bind_text(c, k->key, k->keylen);
  if (k->ek == K_METRIC)
    put(c, ", x'') ASC");
  else
    put(c, k->asc ? " ASC NULLS LAST" : " DESC NULLS LAST");
}

static int parse_order_clause(const char *clause, int idx, enum track_flt_entity ent, struct arena *a,
                              struct okey *k, struct err *e) {
  char prefix[96], snip[48];
  size_t len = clause ? strlen(clause) : 0;
  struct parser p;
  snprintf(prefix, sizeof prefix, "order_by: invalid order_by clause %d", idx + 1);
  parser_init(&p, clause ? clause : "", len, ent, a, e, prefix);
  if (len > TRACK_FLT_MAX_KEY + 64)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s: longer than %d bytes", prefix,
                   TRACK_FLT_MAX_KEY + 64);
  if (check_utf8(&p) < 0) return -ERR_INVALID_PARAMETER_VALUE;
  size_t sn = len > 32 ? 32 : len;
  while (sn > 0 && sn < len && ((unsigned char)clause[sn] & 0xC0) == 0x80) sn--;
  snprintf(snip, sizeof snip, "%.*s%s", (int)sn, clause ? clause : "", sn < len ? "..." : "");
  for (char *q = snip; *q; q++)
    if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = ' ';
  snprintf(prefix, sizeof prefix, "order_by: invalid order_by clause %d '%s'", idx + 1, snip);
  parser_init(&p, clause ? clause : "", len, ent, a, e, prefix);
  p.order_by = true;
  skip_ws(&p);
  struct ident id;
  if (parse_ident(&p, &id) < 0) return -(int)e->code;
  skip_ws(&p);
  k->ek = id.ek;
  k->attr = id.attr;
  k->key = id.key;
  k->keylen = id.keylen;
  k->asc = true;
  if (kw_take(&p, "ASC"))
    k->asc = true;
  else if (kw_take(&p, "DESC"))
    k->asc = false;
  if (p.pos < p.len) {
    char found[64];
    describe(&p, p.pos, found, sizeof found);
    return perr(&p, p.pos, "invalid ordering key: expected ASC or DESC, found %s", found);
  }
  return 0;
}

int track_flt_order_by(const char *const *clauses, int n, enum track_flt_entity ent, struct buf *sql,
                 struct track_flt_binds *binds, struct err *e) {
  struct err local;
  if (!e) e = &local;
  if ((unsigned)ent > TRACK_FLT_MODEL_VERSIONS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "order_by: unknown entity");
  if (n < 0) n = 0;
  if (n > TRACK_FLT_MAX_ORDER_BY)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "order_by: more than %d clauses",
                   TRACK_FLT_MAX_ORDER_BY);
  const struct ent_def *d = ent_def(ent);
  struct okey keys[TRACK_FLT_MAX_ORDER_BY];
  struct arena a;
  arena_init(&a, 1024, 0);
  int rc = 0;
  for (int i = 0; i < n; i++) {
    rc = parse_order_clause(clauses[i], i, ent, &a, &keys[i], e);
    if (rc < 0) goto out;
    /* MLflow refuses a key given twice for runs and registered models */
    if (ent == TRACK_FLT_RUNS || ent == TRACK_FLT_REGISTERED_MODELS) {
      for (int j = 0; j < i; j++) {
        if (okey_same(&keys[i], &keys[j])) {
          char kb[64];
          rc = err_set(e, ERR_INVALID_PARAMETER_VALUE,
                       "order_by: `order_by` contains duplicate fields: %s '%s' is given twice",
                       kind_word(keys[i].ek), short_key(keys[i].key, kb, sizeof kb));
          goto out;
        }
      }
    }
  }
  struct cc c = {sql, binds, d, e, 0};
  for (int i = 0; i < n; i++) {
    if (i) put(&c, ", ");
    emit_order_key(&c, &keys[i], ent == TRACK_FLT_RUNS);
  }
  /* MLflow's tie-breakers, each unless its key was given */
  static const struct {
    enum track_flt_entity ent;
    const char *canon;
    bool asc;
  } ties[] = {
      {TRACK_FLT_RUNS, "start_time", false},      {TRACK_FLT_RUNS, "run_id", true},
      {TRACK_FLT_EXPERIMENTS, "experiment_id", false}, {TRACK_FLT_REGISTERED_MODELS, "name", true},
      {TRACK_FLT_MODEL_VERSIONS, "name", true},   {TRACK_FLT_MODEL_VERSIONS, "version_number", false},
  };
  if (ent == TRACK_FLT_EXPERIMENTS && n == 0) {
    put(&c, "e.creation_time DESC, e.experiment_id ASC");
  } else {
    bool first = n == 0;
    for (size_t t = 0; t < sizeof ties / sizeof ties[0]; t++) {
      if (ties[t].ent != ent) continue;
      /* runs always end with run_id ASC, as MLflow does */
      bool always = ent == TRACK_FLT_RUNS && !strcmp(ties[t].canon, "run_id");
      if (!always && given(keys, n, ties[t].canon)) continue;
      struct okey tb = {K_ATTR, attr_by_canon(d, ties[t].canon), NULL, 0, ties[t].asc};
      if (!first) put(&c, ", ");
      first = false;
      emit_order_key(&c, &tb, false);
    }
  }
  rc = c.rc;
out:
  arena_fini(&a);
  return rc;
}

int track_flt_order_first_metric(const char *const *clauses, int n, char *key, size_t cap, bool *asc,
                                 struct err *e) {
  struct err local;
  if (!e) e = &local;
  if (n < 1 || !clauses) return 0;
  struct arena a;
  arena_init(&a, 1024, 0);
  struct okey k;
  int rc = parse_order_clause(clauses[0], 0, TRACK_FLT_RUNS, &a, &k, e);
  if (rc >= 0) {
    rc = 0;
    if (k.ek == K_METRIC && k.keylen < cap && !memchr(k.key, 0, k.keylen)) {
      memcpy(key, k.key, k.keylen);
      key[k.keylen] = 0;
      *asc = k.asc;
      rc = 1;
    }
  }
  arena_fini(&a);
  return rc;
}
