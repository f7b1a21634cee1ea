/* track/batch_json: a one-pass reader for log-batch bodies of the plain
 * shape every client sends, straight into a struct track_batch. Parsing
 * 1000 metrics into jansson values (an object, four members and their
 * strings each) cost about as much as writing them to SQLite; this reads
 * them without building anything. Anything it is not sure of — other
 * fields, escapes, non-ASCII, nulls, duplicate fields, numbers jansson
 * would refuse, malformed JSON — it leaves to the general path, so what a
 * body means and every error answer stay the general path's. */
#include "track/track.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct rd {
  const char *p, *end;
  struct arena *a;
};

static void ws(struct rd *r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}

static bool lit(struct rd *r, char c) {
  ws(r);
  if (r->p < r->end && *r->p == c) {
    r->p++;
    return true;
  }
  return false;
}

/* A string of printable ASCII without escapes; its bytes and length. */
static bool plain_str(struct rd *r, const char **s, size_t *n) {
  ws(r);
  if (r->p >= r->end || *r->p != '"') return false;
  const char *b = ++r->p;
  while (r->p < r->end && *r->p != '"') {
    unsigned char c = (unsigned char)*r->p;
    if (c == '\\' || c < 0x20 || c >= 0x7f) return false;
    r->p++;
  }
  if (r->p >= r->end) return false;
  *s = b;
  *n = (size_t)(r->p - b);
  r->p++;
  return true;
}

static const char *plain_copy(struct rd *r) {
  const char *s;
  size_t n;
  if (!plain_str(r, &s, &n)) return NULL;
  return arena_strndup(r->a, s, n);
}

/* The field name of the next member, matched against names[]; -1 otherwise. */
static int field(struct rd *r, const char *const *names, int nnames) {
  const char *s;
  size_t n;
  if (!plain_str(r, &s, &n) || !lit(r, ':')) return -1;
  for (int i = 0; i < nnames; i++)
    if (strlen(names[i]) == n && !memcmp(names[i], s, n)) return i;
  return -1;
}

/* A JSON number token (strict grammar); is_int when it has no fraction or exponent. */
static bool number_token(struct rd *r, const char **b, size_t *n, bool *is_int) {
  ws(r);
  const char *p = r->p, *s = p;
  *is_int = true;
  if (p < r->end && *p == '-') p++;
  if (p >= r->end || *p < '0' || *p > '9') return false;
  if (*p == '0') p++;
  else
    while (p < r->end && *p >= '0' && *p <= '9') p++;
  if (p < r->end && *p == '.') {
    *is_int = false;
    p++;
    if (p >= r->end || *p < '0' || *p > '9') return false;
    while (p < r->end && *p >= '0' && *p <= '9') p++;
  }
  if (p < r->end && (*p == 'e' || *p == 'E')) {
    *is_int = false;
    p++;
    if (p < r->end && (*p == '+' || *p == '-')) p++;
    if (p >= r->end || *p < '0' || *p > '9') return false;
    while (p < r->end && *p >= '0' && *p <= '9') p++;
  }
  *b = s;
  *n = (size_t)(p - s);
  r->p = p;
  return *n < 64;
}

/* An integer jansson reads as a json_integer (at most 18 digits, so no overflow). */
static bool int64_token(struct rd *r, int64_t *out) {
  const char *b;
  size_t n;
  bool is_int;
  if (!number_token(r, &b, &n, &is_int) || !is_int || n > 18) return false;
  int64_t v = 0;
  size_t i = b[0] == '-';
  for (; i < n; i++) v = v * 10 + (b[i] - '0');
  *out = b[0] == '-' ? -v : v;
  return true;
}

/* A metric value: a number, or one of protobuf JSON's "NaN", "Infinity", "-Infinity". */
static bool value_token(struct rd *r, double *out) {
  ws(r);
  if (r->p < r->end && *r->p == '"') {
    const char *s;
    size_t n;
    if (!plain_str(r, &s, &n)) return false;
    if (n == 3 && !memcmp(s, "NaN", 3)) *out = NAN;
    else if (n == 8 && !memcmp(s, "Infinity", 8)) *out = INFINITY;
    else if (n == 9 && !memcmp(s, "-Infinity", 9)) *out = -INFINITY;
    else return false;
    return true;
  }
  const char *b;
  size_t n;
  bool is_int;
  if (!number_token(r, &b, &n, &is_int)) return false;
  if (is_int) { /* jansson holds it as an integer: -0 is 0 */
    if (n > 18) return false; /* its integer range, decided there */
    int64_t v = 0;
    for (size_t i = b[0] == '-'; i < n; i++) v = v * 10 + (b[i] - '0');
    *out = (double)(b[0] == '-' ? -v : v);
    return true;
  }
  char tmp[64];
  memcpy(tmp, b, n);
  tmp[n] = 0;
  errno = 0;
  *out = strtod(tmp, NULL);
  return isfinite(*out); /* jansson refuses an overflowing real */
}

static const char *const METRIC_FIELDS[] = {"key", "value", "timestamp", "step"};
static const char *const KV_FIELDS[] = {"key", "value"};

static bool metric(struct rd *r, struct track_metric *m) {
  if (!lit(r, '{')) return false;
  unsigned seen = 0;
  if (lit(r, '}')) return false; /* no key: the general path says so */
  do {
    int f = field(r, METRIC_FIELDS, 4);
    if (f < 0 || (seen & (1u << f))) return false;
    seen |= 1u << f;
    switch (f) {
    case 0:
      if (!(m->key = plain_copy(r))) return false;
      break;
    case 1:
      if (!value_token(r, &m->value)) return false;
      break;
    case 2:
      if (!int64_token(r, &m->timestamp)) return false;
      break;
    case 3:
      if (!int64_token(r, &m->step)) return false;
      break;
    }
  } while (lit(r, ','));
  /* key, value and timestamp are required (their absence is an error answer) */
  return lit(r, '}') && (seen & 7u) == 7u;
}

static bool kv(struct rd *r, struct track_kv *x) {
  if (!lit(r, '{')) return false;
  unsigned seen = 0;
  if (lit(r, '}')) return false;
  do {
    int f = field(r, KV_FIELDS, 2);
    if (f < 0 || (seen & (1u << f))) return false;
    seen |= 1u << f;
    const char *s = plain_copy(r);
    if (!s) return false;
    if (f == 0) x->key = s;
    else x->value = s;
  } while (lit(r, ','));
  return lit(r, '}') && seen == 3u;
}

/* An array of objects read by one_fn into items of `size` bytes, at most max. */
static bool list(struct rd *r, void **out, int *n, size_t size, size_t max, bool (*one)(struct rd *, void *)) {
  if (!lit(r, '[')) return false;
  /* room for max items, zeroed one by one as they are read: zeroing all
   * of it up front cost more than parsing a 1000-metric call */
  char *items = arena_alloc(r->a, (max + 1) * size);
  if (!items) return false;
  *out = items;
  *n = 0;
  if (lit(r, ']')) return true;
  do {
    if ((size_t)*n >= max) return false;
    memset(items + (size_t)*n * size, 0, size);
    if (!one(r, items + (size_t)*n * size)) return false;
    (*n)++;
  } while (lit(r, ','));
  return lit(r, ']');
}

static bool one_metric(struct rd *r, void *m) { return metric(r, m); }
static bool one_kv(struct rd *r, void *x) { return kv(r, x); }

static const char *const TOP_FIELDS[] = {"run_id", "run_uuid", "metrics", "params", "tags"};

int track_log_batch_parse(const char *body, size_t n, struct arena *a, const char **run_id, struct track_batch *b) {
  struct rd r = {body, body + n, a};
  memset(b, 0, sizeof *b);
  *run_id = NULL;
  const char *ids[2] = {NULL, NULL};
  if (!body || !lit(&r, '{')) return 0;
  /* the smallest metric or key/value object is 22 bytes: more cannot fit */
  size_t max = n / 22 + 1;
  unsigned seen = 0;
  if (!lit(&r, '}')) {
    do {
      int f = field(&r, TOP_FIELDS, 5);
      if (f < 0 || (seen & (1u << f))) return 0;
      seen |= 1u << f;
      void *items;
      switch (f) {
      case 0:
      case 1:
        if (!(ids[f] = plain_copy(&r))) return 0;
        break;
      case 2:
        if (!list(&r, &items, &b->nmetrics, sizeof(struct track_metric), max, one_metric)) return 0;
        b->metrics = items;
        break;
      case 3:
        if (!list(&r, &items, &b->nparams, sizeof(struct track_kv), max, one_kv)) return 0;
        b->params = items;
        break;
      case 4:
        if (!list(&r, &items, &b->ntags, sizeof(struct track_kv), max, one_kv)) return 0;
        b->tags = items;
        break;
      }
    } while (lit(&r, ','));
    if (!lit(&r, '}')) return 0;
  }
  ws(&r);
  if (r.p != r.end) return 0;
  /* run_id, else the older run_uuid; neither is an error answer */
  *run_id = ids[0] && *ids[0] ? ids[0] : ids[1] && *ids[1] ? ids[1] : NULL;
  if (!*run_id) return 0;
  return 1;
}
