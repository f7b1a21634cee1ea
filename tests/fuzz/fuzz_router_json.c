/* tests/fuzz/fuzz_router_json: the router against a reference matcher written
 * here from its contract (literal segments beat parameters, parameters beat a
 * trailing wildcard, the first registered wins a tie, 405s name every method
 * of the path), on route tables and requests both taken from the input; and
 * json_parse on the whole input.
 *
 * Input lines: "R METHOD PATTERN" adds a route (before the first request),
 * "METHOD PATH" is a request against the table built so far. */
#define FUZZ_NAME "fuzz_router_json"
#include "fuzz_common.h"
#include "http/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROUTES 24
#define MAX_REQS 16
#define MAX_SEGS 16 /* the router's limit */



enum kind { K_WILD = 0, K_PARAM = 1, K_LIT = 2 };
struct rseg {
  enum kind k;
  const char *s;
  size_t n;
};
struct rroute {
  struct route rt; /* what the router holds a pointer to */
  char *method, *pattern;
  int nsegs;
  struct rseg segs[MAX_SEGS + 1];
  int order; /* registration order among accepted routes */
};

/* Route tables hold standard methods; a request may carry anything. */
static const char *const route_methods[] = {"GET",    "POST", "PUT",    "PATCH",
                                            "DELETE", "HEAD", "OPTIONS"};

static int h_dummy(struct req *rq, struct reply *rp) {
  (void)rq;
  return reply_errf(rp, ERR_INTERNAL, "never called");
}

/* The pattern grammar as documented: "/seg/seg", "{name}" a parameter,
 * a last "{name*}" the rest; braces anywhere else are malformed. Returns
 * false for what the router must refuse. */
static bool ref_compile(struct rroute *r) {
  const char *p = r->pattern;
  if (p[0] != '/') return false;
  p++;
  r->nsegs = 0;
  for (;;) {
    const char *end = strchr(p, '/');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (r->nsegs == MAX_SEGS) return false;
    struct rseg *s = &r->segs[r->nsegs++];
    if (n >= 2 && p[0] == '{' && p[n - 1] == '}') {
      bool wild = n >= 3 && p[n - 2] == '*';
      s->k = wild ? K_WILD : K_PARAM;
      s->s = p + 1;
      s->n = n - 2 - (wild ? 1 : 0);
      if (s->n == 0) return false;
      if (wild && end) return false;
      /* braces inside a name ("{a{b}") are part of the name */
    } else {
      if (memchr(p, '{', n) || memchr(p, '}', n)) return false;
      s->k = K_LIT;
      s->s = p;
      s->n = n;
    }
    if (!end) break;
    p = end + 1;
  }
  return true;
}

struct rparams {
  int n;
  const char *v[MAX_SEGS];
  size_t vn[MAX_SEGS];
};

static bool ref_match(const struct rroute *r, const char *path, struct rparams *pr) {
  if (path[0] != '/') return false;
  const char *p = path + 1;
  pr->n = 0;
  for (int i = 0; i < r->nsegs; i++) {
    const struct rseg *s = &r->segs[i];
    if (!p) return false;
    if (s->k == K_WILD) {
      if (!*p) return false;
      pr->v[pr->n] = p;
      pr->vn[pr->n++] = strlen(p);
      return true;
    }
    const char *end = strchr(p, '/');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (s->k == K_LIT) {
      if (n != s->n || memcmp(p, s->s, n) != 0) return false;
    } else {
      if (n == 0) return false;
      pr->v[pr->n] = p;
      pr->vn[pr->n++] = n;
    }
    p = end ? end + 1 : NULL;
  }
  return p == NULL;
}

/* >0 when a is more specific than b: the first segment where the kinds
 * differ decides. Two routes that match one path and tie here have the same
 * kinds all along, so registration order decides between them. */
static int ref_specific(const struct rroute *a, const struct rroute *b) {
  int n = a->nsegs < b->nsegs ? a->nsegs : b->nsegs;
  for (int i = 0; i < n; i++)
    if (a->segs[i].k != b->segs[i].k) return (int)a->segs[i].k - (int)b->segs[i].k;
  return 0;
}

static bool method_ok(const char *route_m, const char *m) {
  return str_eq(route_m, m) || (str_eq(m, "HEAD") && str_eq(route_m, "GET"));
}

/* "GET, HEAD" -> set membership */
static bool allow_has(const char *allow, const char *m) {
  size_t n = strlen(m);
  for (const char *p = allow; *p;) {
    const char *c = strstr(p, ", ");
    size_t len = c ? (size_t)(c - p) : strlen(p);
    if (len == n && memcmp(p, m, n) == 0) return true;
    if (!c) break;
    p = c + 2;
  }
  return false;
}

static int allow_count(const char *allow) {
  if (!*allow) return 0;
  int n = 1;
  for (const char *p = allow; (p = strstr(p, ", ")); p += 2) n++;
  return n;
}

static char *dup_n(const char *p, size_t n) {
  char *s = malloc(n + 1);
  if (!s) abort();
  memcpy(s, p, n);
  s[n] = 0;
  return s;
}

static void check_request(struct router *router, struct rroute *rs, int nr, const char *method,
                          const char *path) {
  struct router_match m;
  memset(&m, 0xAB, sizeof m);
  router_match(router, method, path, &m);

  /* reference */
  const struct rroute *best = NULL;
  struct rparams best_p = {0};
  bool any = false;
  const char *ms[MAX_ROUTES + 1];
  int nms = 0;
  for (int i = 0; i < nr; i++) {
    struct rparams pr;
    if (rs[i].order < 0 || !ref_match(&rs[i], path, &pr)) continue;
    any = true;
    bool dup = false;
    for (int j = 0; j < nms; j++) dup |= str_eq(ms[j], rs[i].method);
    if (!dup) ms[nms++] = rs[i].method;
    if (!method_ok(rs[i].method, method)) continue;
    int c = best ? ref_specific(&rs[i], best) : 1;
    if (c > 0 || (c == 0 && rs[i].order < best->order)) {
      best = &rs[i];
      best_p = pr;
    }
  }

  if (best) {
    CHECK(m.route == &best->rt, "%s %s: router chose %s %s, the contract says %s %s", esc(method),
          esc(path), m.route ? m.route->method : "(none)", m.route ? m.route->path : "",
          best->method, best->pattern);
    CHECK(m.path_matched, "%s %s: matched but path_matched is false", esc(method), esc(path));
    int want_n = best_p.n < 8 ? best_p.n : 8;
    CHECK(m.nparams == want_n, "%s %s: %d params, want %d", esc(method), esc(path), m.nparams,
          want_n);
    int pi = 0;
    for (int i = 0; i < best->nsegs && pi < want_n; i++) {
      if (best->segs[i].k == K_LIT) continue;
      CHECK(m.params[pi].name_len == best->segs[i].n &&
                memcmp(m.params[pi].name, best->segs[i].s, best->segs[i].n) == 0,
            "%s %s: param %d has the wrong name", esc(method), esc(path), pi);
      CHECK(m.params[pi].value == best_p.v[pi] && m.params[pi].value_len == best_p.vn[pi],
            "%s %s: param %d has the wrong value", esc(method), esc(path), pi);
      pi++;
    }
    return;
  }
  CHECK(m.route == NULL, "%s %s: router chose %s %s, no route should match", esc(method), esc(path),
        m.route->method, m.route->path);
  CHECK(m.path_matched == any, "%s %s: path_matched %d, want %d", esc(method), esc(path),
        m.path_matched, any);
  CHECK(memchr(m.allow, 0, sizeof m.allow) != NULL, "Allow not terminated");
  if (!any) {
    CHECK(m.allow[0] == 0, "%s %s: Allow '%s' on an unknown path", esc(method), esc(path), m.allow);
    return;
  }
  CHECK(m.allow[0] != 0, "%s %s: 405 with an empty Allow", esc(method), esc(path));
  /* every method named must be allowed, each once; all of them when they fit */
  size_t total = 0;
  bool has_get = false, has_head = false;
  for (int j = 0; j < nms; j++) {
    total += strlen(ms[j]) + 2;
    has_get |= str_eq(ms[j], "GET");
    has_head |= str_eq(ms[j], "HEAD");
  }
  int want = nms + (has_get && !has_head ? 1 : 0);
  if (has_get && !has_head) total += 6;
  int got = allow_count(m.allow);
  for (const char *p = m.allow; *p;) {
    const char *c = strstr(p, ", ");
    size_t len = c ? (size_t)(c - p) : strlen(p);
    char one[128];
    snprintf(one, sizeof one, "%.*s", (int)len, p);
    bool known = str_eq(one, "HEAD") && has_get;
    for (int j = 0; j < nms; j++) known |= str_eq(one, ms[j]);
    CHECK(known, "%s %s: Allow '%s' names %s, which the path does not have", esc(method), esc(path),
          m.allow, one);
    if (!c) break;
    p = c + 2;
  }
  if (total < sizeof m.allow) {
    CHECK(got == want, "%s %s: Allow '%s' has %d methods, want %d", esc(method), esc(path), m.allow,
          got, want);
    for (int j = 0; j < nms; j++)
      CHECK(allow_has(m.allow, ms[j]), "%s %s: Allow '%s' lacks %s", esc(method), esc(path),
            m.allow, ms[j]);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  log_set_quiet(true);
  /* the whole input as JSON: parse must not crash, and what it accepts
   * must round-trip */
  {
    struct err e;
    json_t *v = json_parse((const char *)data, size, &e);
    if (v) {
      struct buf b;
      buf_init(&b);
      CHECK(json_emit(&b, v) == 0, "emit failed");
      json_t *back = json_parse(b.data, b.len, &e);
      CHECK(back && json_equal(back, v), "round trip changed the value");
      json_decref(back);
      buf_fini(&b);
      json_decref(v);
    }
  }

  struct rroute rs[MAX_ROUTES];
  int nr = 0, accepted = 0, nreq = 0;
  struct router *router = router_new();
  if (!router) abort();
  const char *p = (const char *)data, *end = p + size;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t ln = nl ? (size_t)(nl - p) : (size_t)(end - p);
    char *line = dup_n(p, ln);
    p = nl ? nl + 1 : end;
    size_t l = strlen(line);
    if (l && line[l - 1] == '\r') line[--l] = 0;
    if (line[0] == 'R' && line[1] == ' ' && nreq == 0) {
      char *sp = strchr(line + 2, ' ');
      if (nr < MAX_ROUTES && sp) {
        struct rroute *r = &rs[nr];
        memset(r, 0, sizeof *r);
        r->method = dup_n(line + 2, (size_t)(sp - line - 2));
        bool std = false;
        for (size_t i = 0; i < sizeof route_methods / sizeof *route_methods; i++)
          std |= str_eq(r->method, route_methods[i]);
        if (!std) {
          const char *m = route_methods[(unsigned char)r->method[0] %
                                        (sizeof route_methods / sizeof *route_methods)];
          free(r->method);
          r->method = strdup(m);
          if (!r->method) abort();
        }
        r->pattern = strdup(sp + 1);
        if (!r->pattern) abort();
        r->rt.method = r->method;
        r->rt.path = r->pattern;
        r->rt.perm = PERM_PUBLIC;
        r->rt.fn = h_dummy;
        bool ok = ref_compile(r);
        bool dup = false;
        for (int i = 0; i < nr; i++)
          dup |= rs[i].order >= 0 && str_eq(rs[i].method, r->method) &&
                 str_eq(rs[i].pattern, r->pattern);
        struct err e;
        err_clear(&e);
        int rc = router_add(router, &r->rt, &e);
        if (ok && !dup) {
          CHECK(rc == 0, "router refused %s %s: %s", r->method, r->pattern, e.msg);
        } else {
          CHECK(rc != 0, "router accepted %s %s (%s)", r->method, r->pattern,
                dup ? "a duplicate" : "malformed");
        }
        r->order = rc == 0 ? accepted++ : -1;
        nr++;
      }
    } else if (nreq < MAX_REQS) {
      char *sp = strchr(line, ' ');
      const char *method = line, *path = "/";
      if (sp) {
        *sp = 0;
        path = sp + 1;
      }
      check_request(router, rs, nr, method, path);
      nreq++;
    }
    free(line);
  }
  CHECK(router_count(router) == (size_t)accepted, "router holds %zu routes, %d were accepted",
        router_count(router), accepted);
  router_free(router);
  for (int i = 0; i < nr; i++) {
    free(rs[i].method);
    free(rs[i].pattern);
  }
  return 0;
}
