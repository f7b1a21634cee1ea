/* http/router: method + path patterns with parameters, ordered so literal
 * segments win over parameters and parameters over a trailing wildcard. */
#include "http.h"

#include <stdlib.h>
#include <string.h>

#define ROUTER_MAX_SEGS 16

enum seg_kind { SEG_WILD = 0, SEG_PARAM = 1, SEG_LIT = 2 };

struct seg {
  enum seg_kind kind;
  const char *s; /* literal text, or parameter name */
  size_t n;
};

struct compiled {
  const struct route *rt;
  int nsegs;
  struct seg segs[ROUTER_MAX_SEGS];
};

struct router {
  struct compiled *v;
  size_t n, cap;
};

const char *perm_name(enum perm p) {
  switch (p) {
  case PERM_PUBLIC: return "public";
  case PERM_READ: return "read";
  case PERM_WRITE: return "write";
  case PERM_PREDICT: return "predict";
  case PERM_ADMIN: return "admin";
  default: return "none";
  }
}

struct router *router_new(void) { return calloc(1, sizeof(struct router)); }

void router_free(struct router *r) {
  if (!r) return;
  free(r->v);
  free(r);
}

size_t router_count(const struct router *r) { return r->n; }
const struct route *router_at(const struct router *r, size_t i) { return i < r->n ? r->v[i].rt : NULL; }

static int compile(const struct route *rt, struct compiled *c, struct err *e) {
  const char *p = rt->path;
  if (!p || p[0] != '/') return err_set(e, ERR_INVALID_PARAMETER_VALUE, "route path must start with /: %s", p ? p : "(null)");
  c->rt = rt;
  c->nsegs = 0;
  p++;
  while (1) {
    const char *end = strchr(p, '/');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (c->nsegs == ROUTER_MAX_SEGS) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "too many segments: %s", rt->path);
    struct seg *s = &c->segs[c->nsegs++];
    if (n >= 2 && p[0] == '{' && p[n - 1] == '}') {
      bool wild = n >= 3 && p[n - 2] == '*';
      s->kind = wild ? SEG_WILD : SEG_PARAM;
      s->s = p + 1;
      s->n = n - 2 - (wild ? 1 : 0);
      if (s->n == 0) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "empty parameter name: %s", rt->path);
      if (wild && end) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "wildcard must be last: %s", rt->path);
    } else {
      if (memchr(p, '{', n) || memchr(p, '}', n))
        return err_set(e, ERR_INVALID_PARAMETER_VALUE, "malformed segment in %s", rt->path);
      s->kind = SEG_LIT;
      s->s = p;
      s->n = n;
    }
    if (!end) break;
    p = end + 1;
  }
  return 0;
}

/* >0 when a should be tried before b */
static int precedence(const struct compiled *a, const struct compiled *b) {
  int n = a->nsegs < b->nsegs ? a->nsegs : b->nsegs;
  for (int i = 0; i < n; i++)
    if (a->segs[i].kind != b->segs[i].kind) return (int)a->segs[i].kind - (int)b->segs[i].kind;
  /* Equal kinds as far as the shorter goes: the length decides, so this is a
   * total order and the sorted insertion in router_add stays sorted. (With 0
   * here, a route tying with its neighbour could stop the insertion early:
   * /{a}/{b}, then /{a}, then /{a}/lit left /{a}/lit behind /{a}/{b}.) */
  return a->nsegs - b->nsegs;
}

int router_add(struct router *r, const struct route *rt, struct err *e) {
  bool streams = (rt->flags & ROUTE_STREAM_BODY) != 0;
  if (streams && (!rt->stream || !rt->stream->begin || !rt->stream->chunk || !rt->stream->end ||
                  !rt->stream->abort))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "streaming route %s lacks its stream hooks", rt->path);
  if (!rt->method || (!rt->fn && !streams))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "route %s lacks method or handler", rt->path);
  if (rt->perm == PERM_NONE)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "route %s %s declares no permission", rt->method, rt->path);
  struct compiled c;
  int rc = compile(rt, &c, e);
  if (rc) return rc;
  for (size_t i = 0; i < r->n; i++)
    if (str_eq(r->v[i].rt->method, rt->method) && str_eq(r->v[i].rt->path, rt->path))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "duplicate route %s %s", rt->method, rt->path);
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 32;
    struct compiled *v = realloc(r->v, cap * sizeof *v);
    if (!v) return err_set(e, ERR_NO_MEMORY, NULL);
    r->v = v;
    r->cap = cap;
  }
  /* stable insertion: after every route of equal or higher precedence */
  size_t at = r->n;
  while (at > 0 && precedence(&c, &r->v[at - 1]) > 0) at--;
  memmove(&r->v[at + 1], &r->v[at], (r->n - at) * sizeof *r->v);
  r->v[at] = c;
  r->n++;
  return 0;
}

int router_add_table(struct router *r, const struct route *rts, size_t n, struct err *e) {
  for (size_t i = 0; i < n; i++) {
    int rc = router_add(r, &rts[i], e);
    if (rc) return rc;
  }
  return 0;
}

static bool match_path(const struct compiled *c, const char *path, struct router_match *m) {
  const char *p = path;
  if (*p != '/') return false;
  p++;
  m->nparams = 0;
  for (int i = 0; i < c->nsegs; i++) {
    const struct seg *s = &c->segs[i];
    if (!p) return false; /* pattern longer than path */
    if (s->kind == SEG_WILD) {
      if (!*p) return false; /* the rest must be non-empty */
      if (m->nparams < 8) {
        m->params[m->nparams].name = s->s;
        m->params[m->nparams].name_len = s->n;
        m->params[m->nparams].value = p;
        m->params[m->nparams].value_len = strlen(p);
        m->nparams++;
      }
      return true;
    }
    const char *end = strchr(p, '/');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (s->kind == SEG_LIT) {
      if (n != s->n || memcmp(p, s->s, n) != 0) return false;
    } else {
      if (n == 0) return false;
      if (m->nparams < 8) {
        m->params[m->nparams].name = s->s;
        m->params[m->nparams].name_len = s->n;
        m->params[m->nparams].value = p;
        m->params[m->nparams].value_len = n;
        m->nparams++;
      }
    }
    p = end ? end + 1 : NULL;
  }
  return p == NULL; /* path longer than pattern does not match */
}

static void allow_add(struct router_match *m, const char *method) {
  size_t len = strlen(m->allow);
  /* skip duplicates */
  const char *f = strstr(m->allow, method);
  size_t ml = strlen(method);
  if (f && (f == m->allow || f[-1] == ' ') && (f[ml] == ',' || f[ml] == 0)) return;
  if (len + ml + 3 >= sizeof m->allow) return;
  if (len) {
    m->allow[len++] = ',';
    m->allow[len++] = ' ';
  }
  memcpy(m->allow + len, method, ml + 1);
}

void router_match(const struct router *r, const char *method, const char *path,
                  struct router_match *m) {
  m->route = NULL;
  m->nparams = 0;
  m->path_matched = false;
  m->allow[0] = 0;
  bool head = str_eq(method, "HEAD");
  struct router_match tmp;
  for (size_t i = 0; i < r->n; i++) {
    const struct compiled *c = &r->v[i];
    if (!match_path(c, path, &tmp)) continue;
    if (str_eq(c->rt->method, method) || (head && str_eq(c->rt->method, "GET"))) {
      /* the first match in precedence order wins */
      *m = tmp;
      m->route = c->rt;
      m->path_matched = true;
      m->allow[0] = 0;
      return;
    }
    m->path_matched = true;
    allow_add(m, c->rt->method);
    if (str_eq(c->rt->method, "GET")) allow_add(m, "HEAD");
  }
}
