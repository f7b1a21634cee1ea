/* http/request: the dispatch core — request accessors, reply builders, the
 * 404/405/413 answers, metrics and the access log. No sockets here, so
 * handlers and routing are testable in-process. */
#include "internal.h"

#include <ctype.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static struct metric_family *m_requests, *m_duration, *m_inflight;
static struct metric_series *m_inflight_s;

void http_metrics_init(void) {
  static const char *const l3[] = {"method", "route", "status"};
  static const char *const l2[] = {"method", "route"};
  m_requests = metrics_family("kiln_http_requests_total", "HTTP requests answered, by route pattern",
                              METRIC_COUNTER, 3, l3, NULL, 0);
  m_duration = metrics_family("kiln_http_request_duration_seconds",
                              "Time from the first byte of a request to its reply being queued",
                              METRIC_HISTOGRAM, 2, l2, NULL, 0);
  m_inflight = metrics_family("kiln_http_requests_in_flight", "Requests being handled now",
                              METRIC_GAUGE, 0, NULL, NULL, 0);
  m_inflight_s = metrics_series(m_inflight, NULL);
}

/* ---- request ---------------------------------------------------------------- */

static bool request_id_ok(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 64) return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.') return false;
  return true;
}

int req_init(struct req *rq, struct app *app, struct router *r, const char *method,
             const char *path, const struct req_transport *tp, void *tp_ctx, uint64_t max_body) {
  memset(rq, 0, sizeof *rq);
  arena_init(&rq->arena, 8192, 0);
  rq->app = app;
  rq->router = r;
  rq->tp = tp;
  rq->tp_ctx = tp_ctx;
  rq->max_body = max_body;
  rq->t0_us = time_mono_us();
  rq->method = arena_strdup(&rq->arena, method);
  rq->path = arena_strdup(&rq->arena, path);
  buf_init(&rq->body);
  rq->rp.arena = &rq->arena;
  rq->rp.v2_errors = str_has_prefix(path, "/v2/") || str_eq(path, "/v2");
  if (!rq->method || !rq->path) return -ERR_NO_MEMORY;
  const char *in = tp->header(tp_ctx, "X-Request-Id");
  if (request_id_ok(in)) str_copy(rq->id, sizeof rq->id, in);
  else id_request_hex(rq->id);
  router_match(r, rq->method, rq->path, &rq->m);
  rq->route_label = rq->m.route ? rq->m.route->path : "unmatched";
  if (m_inflight_s) metrics_add(m_inflight_s, 1);
  return 0;
}

static void reply_stream_release(struct reply *rp) {
  if (rp->stream_done) rp->stream_done(rp->stream_ctx);
  rp->stream_read = NULL;
  rp->stream_done = NULL;
  rp->stream_ctx = NULL;
}

void req_fini(struct req *rq) {
  if (m_inflight_s) metrics_add(m_inflight_s, -1);
  http_live_release(&rq->rp);

  if (rq->stream_live) { /* the connection went away mid-upload */
    rq->stream_live = false;
    rq->m.route->stream->abort(rq, rq->stream_state);
  }
  if (rq->defer_fn && atomic_load(&rq->offload) == HTTP_OFFLOAD_DONE) {
    /* resumed, but the client left before the answer was made: finish
     * anyway so that whatever the request held is released */
    reply_finish_fn fn = rq->defer_fn;
    rq->defer_fn = NULL;
    fn(rq, &rq->rp, rq->defer_ctx);
  }
  reply_stream_release(&rq->rp);
  if (rq->json) json_decref(rq->json);
  if (rq->rp.body && !rq->rp.persistent) free(rq->rp.body);
  buf_fini(&rq->body);
  arena_fini(&rq->arena);
}

void req_body_append(struct req *rq, const char *p, size_t n) {
  if (rq->too_large) return;
  if (rq->body.len + n > rq->max_body) {
    rq->too_large = true;
    buf_fini(&rq->body);
    return;
  }
  if (buf_append(&rq->body, p, n)) {
    rq->too_large = true; /* out of memory on a big body: refuse it, do not crash */
    buf_fini(&rq->body);
  }
}

const char *req_method(const struct req *rq) { return rq->method; }
const char *req_path(const struct req *rq) { return rq->path; }
const char *req_id(const struct req *rq) { return rq->id; }
struct arena *req_arena(struct req *rq) { return &rq->arena; }
struct app *req_app(struct req *rq) { return rq->app; }
const struct route *req_route(const struct req *rq) { return rq->m.route; }
const struct auth_principal *req_principal(const struct req *rq) { return &rq->principal; }

const char *req_client_addr(struct req *rq) {
  if (!rq->addr[0] && rq->tp->client_addr) rq->tp->client_addr(rq->tp_ctx, rq->addr, sizeof rq->addr);
  return rq->addr;
}

const char *req_actor(struct req *rq) {
  const struct auth_principal *p = &rq->principal;
  if (p->kind == AUTH_API_KEY) return arena_printf(&rq->arena, "key:%s", p->key_id);
  return p->user_id[0] ? p->user_id : NULL;
}

const char *req_param(const struct req *rq, const char *name) {
  size_t n = strlen(name);
  for (int i = 0; i < rq->m.nparams; i++) {
    if (rq->m.params[i].name_len == n && memcmp(rq->m.params[i].name, name, n) == 0)
      return arena_strndup((struct arena *)&rq->arena, rq->m.params[i].value, rq->m.params[i].value_len);
  }
  return NULL;
}

const char *req_query(const struct req *rq, const char *key) { return rq->tp->query(rq->tp_ctx, key); }
int req_query_all(const struct req *rq, const char *key, const char **vals, int max) {
  return rq->tp->query_all(rq->tp_ctx, key, vals, max);
}
const char *req_header(const struct req *rq, const char *name) { return rq->tp->header(rq->tp_ctx, name); }

/* cookie-octet per RFC 6265 4.1.1: visible ASCII without DQUOTE, comma,
 * semicolon and backslash. */
static bool cookie_octet(unsigned char c) {
  return c == 0x21 || (c >= 0x23 && c <= 0x2B) || (c >= 0x2D && c <= 0x3A) ||
         (c >= 0x3C && c <= 0x5B) || (c >= 0x5D && c <= 0x7E);
}

bool req_cookie(const struct req *rq, const char *name, char *out, size_t cap) {
  const char *h = req_header(rq, "Cookie");
  size_t nl = strlen(name);
  if (!h || cap == 0) return false;
  while (*h) {
    while (*h == ' ' || *h == '\t' || *h == ';') h++;
    const char *k = h;
    while (*h && *h != '=' && *h != ';') h++;
    size_t kl = (size_t)(h - k);
    while (kl && (k[kl - 1] == ' ' || k[kl - 1] == '\t')) kl--;
    if (*h != '=') continue; /* a pair without '=' is ignored */
    const char *v = ++h;
    while (*h && *h != ';') h++;
    size_t vl = (size_t)(h - v);
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
    if (kl != nl || memcmp(k, name, nl) != 0) continue;
    if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
      v++;
      vl -= 2;
    }
    if (vl >= cap) return false;
    for (size_t i = 0; i < vl; i++)
      if (!cookie_octet((unsigned char)v[i])) return false;
    memcpy(out, v, vl);
    out[vl] = 0;
    return true;
  }
  return false;
}

const char *req_body(const struct req *rq, size_t *len) {
  if (len) *len = rq->body.len;
  return rq->body.data ? rq->body.data : "";
}

json_t *req_json(struct req *rq, struct err *e) {
  if (!rq->json_done) {
    rq->json_done = true;
    rq->json = json_parse(rq->body.data ? rq->body.data : "", rq->body.len, &rq->json_err);
  }
  if (!rq->json && e) *e = rq->json_err;
  return rq->json;
}

json_t *req_json_object(struct req *rq, struct reply *rp) {
  struct err e;
  json_t *v = req_json(rq, &e);
  if (!v) {
    reply_err(rp, &e);
    return NULL;
  }
  if (!json_is_object(v)) {
    reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "the request body must be a JSON object");
    return NULL;
  }
  return v;
}

/* ---- replies ------------------------------------------------------------------ */

static void reply_clear_body(struct reply *rp) {
  http_live_release(rp);

  reply_stream_release(rp);
  if (rp->body && !rp->persistent) free(rp->body);
  rp->body = NULL;
  rp->len = 0;
  rp->persistent = false;
}

int reply_take(struct reply *rp, int status, const char *content_type, char *data, size_t len) {
  reply_clear_body(rp);
  rp->status = status;
  rp->ctype = content_type;
  rp->body = data;
  rp->len = len;
  rp->set = true;
  return 0;
}

int reply_bytes(struct reply *rp, int status, const char *content_type, const void *data,
                size_t len, bool persistent) {
  if (persistent) {
    reply_clear_body(rp);
    rp->status = status;
    rp->ctype = content_type;
    rp->body = (char *)data;
    rp->len = len;
    rp->persistent = true;
    rp->set = true;
    return 0;
  }
  char *p = malloc(len ? len : 1);
  if (!p) return reply_errf(rp, ERR_NO_MEMORY, "out of memory building the reply");
  if (len) memcpy(p, data, len);
  return reply_take(rp, status, content_type, p, len);
}

int reply_json(struct reply *rp, int status, json_t *body) {
  struct buf b;
  buf_init(&b);
  int rc = body ? json_emit(&b, body) : buf_puts(&b, "{}");
  json_decref(body);
  if (rc) {
    buf_fini(&b);
    /* a static reply needs no memory */
    static const char oom[] = "{\"error_code\":\"RESOURCE_EXHAUSTED\",\"message\":\"out of memory\"}";
    reply_bytes(rp, 503, "application/json", oom, sizeof oom - 1, true);
    rp->err = ERR_NO_MEMORY;
    return 0;
  }
  size_t len = b.len;
  return reply_take(rp, status, "application/json", buf_steal(&b), len);
}

int reply_err(struct reply *rp, const struct err *e) {
  enum err_code c = e && e->code != ERR_OK ? e->code : ERR_INTERNAL;
  const char *msg = e && e->msg[0] ? e->msg : err_default_msg(c);
  struct buf b;
  buf_init(&b);
  int rc = buf_puts(&b, "{\"error_code\":");
  if (!rc) rc = json_escape_buf(&b, err_code_str(c));
  if (!rc) rc = buf_puts(&b, ",\"message\":");
  if (!rc) rc = json_escape_buf(&b, msg);
  /* Open Inference Protocol clients read {"error": "..."} */
  if (!rc && rp->v2_errors) rc = buf_puts(&b, ",\"error\":");
  if (!rc && rp->v2_errors) rc = json_escape_buf(&b, msg);
  if (!rc) rc = buf_putc(&b, '}');
  if (rc) {
    buf_fini(&b);
    static const char oom[] = "{\"error_code\":\"RESOURCE_EXHAUSTED\",\"message\":\"out of memory\"}";
    reply_bytes(rp, 503, "application/json", oom, sizeof oom - 1, true);
  } else {
    size_t len = b.len;
    reply_take(rp, err_http_status(c), "application/json", buf_steal(&b), len);
  }
  rp->err = c;
  return 0;
}

int reply_errf(struct reply *rp, enum err_code c, const char *fmt, ...) {
  struct err e;
  e.code = c;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e.msg, sizeof e.msg, fmt, ap);
  va_end(ap);
  return reply_err(rp, &e);
}

int reply_header(struct reply *rp, const char *name, const char *value) {
  for (int i = 0; i < rp->nheaders; i++) {
    if (strcasecmp(rp->headers[i].name, name) == 0) {
      rp->headers[i].value = arena_strdup(rp->arena, value);
      return 0;
    }
  }
  if (rp->nheaders == REPLY_MAX_HEADERS) return -ERR_INTERNAL;
  rp->headers[rp->nheaders].name = arena_strdup(rp->arena, name);
  rp->headers[rp->nheaders].value = arena_strdup(rp->arena, value);
  rp->nheaders++;
  return 0;
}

int reply_stream(struct reply *rp, int status, const char *content_type, uint64_t len,
                 reply_read_fn read, void (*done)(void *ctx), void *ctx) {
  reply_clear_body(rp);
  rp->status = status;
  rp->ctype = content_type;
  rp->len = (size_t)len; /* for the access log; body stays NULL */
  rp->stream_read = read;
  rp->stream_done = done;
  rp->stream_ctx = ctx;
  rp->set = true;
  return 0;
}

/* ---- Range ------------------------------------------------------------------ */

static bool range_digits(const char **p, uint64_t *out) {
  const char *s = *p;
  uint64_t v = 0;
  if (*s < '0' || *s > '9') return false;
  for (; *s >= '0' && *s <= '9'; s++) {
    uint64_t d = (uint64_t)(*s - '0');
    if (v > (UINT64_MAX - d) / 10) return false; /* past 2^64: malformed */
    v = v * 10 + d;
  }
  *p = s;
  *out = v;
  return true;
}

/* RFC 9110 14.1.2: a malformed Range or one this server does not do (several
 * ranges, another unit) is ignored, which answers the whole representation;
 * only a well-formed single range that misses the content is a 416. */
enum http_range_kind http_range_parse(const char *value, uint64_t size, uint64_t *first,
                                      uint64_t *last) {
  if (!value) return HTTP_RANGE_NONE;
  const char *p = value;
  while (*p == ' ' || *p == '\t') p++;
  if (strncasecmp(p, "bytes", 5) != 0) return HTTP_RANGE_NONE;
  p += 5;
  while (*p == ' ' || *p == '\t') p++;
  if (*p++ != '=') return HTTP_RANGE_NONE;
  while (*p == ' ' || *p == '\t') p++;
  uint64_t a = 0, b = 0;
  bool suffix = false, open_end = false;
  if (*p == '-') {
    p++;
    suffix = true;
    if (!range_digits(&p, &b)) return HTTP_RANGE_NONE;
  } else {
    if (!range_digits(&p, &a) || *p++ != '-') return HTTP_RANGE_NONE;
    if (*p >= '0' && *p <= '9') {
      if (!range_digits(&p, &b)) return HTTP_RANGE_NONE;
    } else {
      open_end = true;
    }
  }
  while (*p == ' ' || *p == '\t') p++;
  if (*p) return HTTP_RANGE_NONE; /* several ranges, or trailing junk */
  if (suffix) {
    if (b == 0 || size == 0) return HTTP_RANGE_UNSATISFIABLE;
    *first = b >= size ? 0 : size - b;
    *last = size - 1;
    return HTTP_RANGE_OK;
  }
  if (!open_end && b < a) return HTTP_RANGE_NONE; /* invalid: ignored */
  if (a >= size) return HTTP_RANGE_UNSATISFIABLE;
  *first = a;
  *last = open_end || b >= size ? size - 1 : b;
  return HTTP_RANGE_OK;
}

int reply_retry_after(struct reply *rp, int64_t seconds) {
  char s[24];
  snprintf(s, sizeof s, "%lld", (long long)(seconds > 0 ? seconds : 1));
  return reply_header(rp, "Retry-After", s);
}

int reply_header_add(struct reply *rp, const char *name, const char *value) {
  if (rp->nheaders == REPLY_MAX_HEADERS) return -ERR_INTERNAL;
  rp->headers[rp->nheaders].name = arena_strdup(rp->arena, name);
  rp->headers[rp->nheaders].value = arena_strdup(rp->arena, value);
  rp->nheaders++;
  return 0;
}

/* ---- deferred replies ------------------------------------------------------------ */

struct http_deferred *reply_defer(struct req *rq, reply_finish_fn finish, void *ctx) {
  /* not from an offloaded handler (the pool resumes those), nor twice at
   * once; a finish function may park its request again */
  if (!rq->tp->suspend || !rq->tp->resume || rq->defer_fn || atomic_load(&rq->offload) == HTTP_OFFLOAD_RUNNING)
    return NULL;
  rq->defer_fn = finish;
  rq->defer_ctx = ctx;
  atomic_store(&rq->offload, HTTP_OFFLOAD_RUNNING);
  rq->tp->suspend(rq->tp_ctx);
  return (struct http_deferred *)rq;
}

void http_deferred_resume(struct http_deferred *d) {
  struct req *rq = (struct req *)d;
  /* read before DONE: once resumed the request may be finished and freed */
  const struct req_transport *tp = rq->tp;
  void *ctx = rq->tp_ctx;
  atomic_store(&rq->offload, HTTP_OFFLOAD_DONE);
  tp->resume(ctx);
}

int64_t req_start_us(const struct req *rq) { return rq->t0_us; }

/* ---- dispatch ------------------------------------------------------------------ */

static bool is_api_path(const char *p) {
  return str_has_prefix(p, "/api/") || str_eq(p, "/api") || str_has_prefix(p, "/ajax-api/") ||
         str_has_prefix(p, "/v2/") || str_eq(p, "/v2") || str_eq(p, "/metrics") ||
         str_eq(p, "/healthz") || str_eq(p, "/readyz");
}

static unsigned perm_scope(enum perm p) {
  switch (p) {
  case PERM_READ: return AUTH_SCOPE_READ;
  case PERM_WRITE: return AUTH_SCOPE_WRITE;
  case PERM_PREDICT: return AUTH_SCOPE_PREDICT;
  case PERM_ADMIN: return AUTH_SCOPE_ADMIN;
  default: return 0; /* deny by default: auth_authorize refuses 0 */
  }
}

/* Authentication, then the one central authorization check, before any
 * handler runs. Public routes still read credentials when they are sent
 * (whoami-style answers), but never refuse for them. Returns 0 to run the
 * handler, or <0 with the reply already set. */
static int http_check_access(struct req *rq, struct reply *rp) {
  const struct route *rt = rq->m.route;
  struct app *app = rq->app;
  struct err e = {0};
  memset(&rq->principal, 0, sizeof rq->principal);
  if (rt->perm == PERM_PUBLIC) return 0;
  if (!app || !app->auth) {
    reply_errf(rp, ERR_NOT_READY, "identity is not configured on this server");
    return -1;
  }
  const char *authz = req_header(rq, "Authorization"), *xkey = req_header(rq, "X-API-Key");
  char session[AUTH_KEY_MAX];
  int rc;
  /* Explicit credentials win; the dashboard's cookie is used only without
   * them, and then every state-changing request must carry the CSRF token
   * (a cross-site page can make the browser send the cookie, but it cannot
   * read the kiln_csrf cookie to echo it). */
  if ((!authz || !*authz) && (!xkey || !*xkey) &&
      req_cookie(rq, AUTH_SESSION_COOKIE, session, sizeof session)) {
    bool safe = str_eq(rq->method, "GET") || str_eq(rq->method, "HEAD") || str_eq(rq->method, "OPTIONS");
    rc = auth_session_verify(app->auth, session, req_header(rq, "X-CSRF-Token"), !safe, &rq->principal, &e);
    sodium_memzero(session, sizeof session);
  } else {
    rc = auth_authenticate(app->auth, authz, xkey, req_client_addr(rq), &rq->principal, &e);
  }
  if (rc == 0) {
    bool missing = false;
    const char *project = rt->project_of ? rt->project_of(rq, &missing) : NULL;
    if (missing && rq->principal.kind != AUTH_ANON)
      rc = err_set(&e, ERR_RESOURCE_DOES_NOT_EXIST, "resource does not exist");
    else
      rc = auth_authorize(app->auth, &rq->principal, perm_scope(rt->perm), project, &e);
  }
  if (rc == 0) return 0;
  reply_err(rp, &e);
  if (e.code == ERR_UNAUTHENTICATED)
    reply_header(rp, "WWW-Authenticate", "Bearer realm=\"kiln\", charset=\"UTF-8\"");
  if (e.code == ERR_RATE_LIMITED) reply_retry_after(rp, rq->principal.retry_after_s);
  return -1;
}

void http_handle(struct req *rq) {
  struct reply *rp = &rq->rp;
  if (rq->too_large) {
    reply_errf(rp, ERR_PAYLOAD_TOO_LARGE, "request body exceeds the limit of %llu bytes",
               (unsigned long long)rq->max_body);
  } else if (rq->m.route) {
    if (http_check_access(rq, rp) == 0) {
      /* what audit entries written by this request's store jobs record */
      struct auth_audit_ctx actx = {.actor = req_actor(rq), .client_addr = req_client_addr(rq),
                                    .request_id = rq->id};
      db_context_set(&actx);
      if (rq->m.route->fn) rq->m.route->fn(rq, rp);
      else reply_errf(rp, ERR_INTERNAL, "this endpoint takes its body streamed");
      db_context_set(NULL);
      if (!rp->set && !rq->defer_fn) reply_errf(rp, ERR_INTERNAL, "the handler produced no reply");
    }
  } else if (rq->m.path_matched) {
    reply_errf(rp, ERR_METHOD_NOT_ALLOWED, "method %s is not allowed on %s; allowed: %s",
               rq->method, rq->path, rq->m.allow);
    reply_header(rp, "Allow", rq->m.allow);
  } else if ((str_eq(rq->method, "GET") || str_eq(rq->method, "HEAD")) && !is_api_path(rq->path)) {
    rq->route_label = "static";
    static_serve(rq, rp);
  } else {
    reply_errf(rp, ERR_ENDPOINT_NOT_FOUND, "no endpoint %s %s", rq->method, rq->path);
  }
  reply_header(rp, "X-Request-Id", rq->id);
}

/* ---- streamed bodies ------------------------------------------------------------- */

static void stream_too_large(struct req *rq) {
  reply_errf(&rq->rp, ERR_PAYLOAD_TOO_LARGE, "request body exceeds the limit of %llu bytes",
             (unsigned long long)rq->max_stream);
}

static void stream_stop(struct req *rq) {
  if (rq->stream_live) {
    rq->stream_live = false;
    rq->m.route->stream->abort(rq, rq->stream_state);
  }
  rq->stream_discard = true;
  if (!rq->rp.set) reply_errf(&rq->rp, ERR_INTERNAL, "the upload handler stopped without a reply");
  reply_header(&rq->rp, "X-Request-Id", rq->id);
}

bool http_stream_begin(struct req *rq, uint64_t announced_len) {
  struct reply *rp = &rq->rp;
  rq->streaming = true;
  if (announced_len != HTTP_LEN_UNKNOWN && announced_len > rq->max_stream) {
    stream_too_large(rq);
    stream_stop(rq);
    return true;
  }
  if (http_check_access(rq, rp) != 0) {
    stream_stop(rq);
    return true;
  }
  struct auth_audit_ctx actx = {.actor = req_actor(rq), .client_addr = req_client_addr(rq),
                                .request_id = rq->id};
  db_context_set(&actx);
  rq->stream_state = NULL;
  int rc = rq->m.route->stream->begin(rq, rp, announced_len, &rq->stream_state);
  db_context_set(NULL);
  if (rc < 0) {
    stream_stop(rq);
    return true;
  }
  rq->stream_live = true;
  return false;
}

void http_stream_chunk(struct req *rq, const char *p, size_t n) {
  if (rq->stream_discard || !rq->stream_live) {
    rq->discarded += n;
    return;
  }
  if (n > rq->max_stream - rq->streamed) { /* a chunked upload past the limit */
    stream_too_large(rq);
    stream_stop(rq);
    rq->discarded += n;
    return;
  }
  rq->streamed += n;
  if (rq->m.route->stream->chunk(rq, &rq->rp, rq->stream_state, p, n) < 0) stream_stop(rq);
}

void http_stream_end(struct req *rq) {
  if (rq->stream_live) {
    struct auth_audit_ctx actx = {.actor = req_actor(rq), .client_addr = req_client_addr(rq),
                                  .request_id = rq->id};
    rq->stream_live = false;
    db_context_set(&actx);
    rq->m.route->stream->end(rq, &rq->rp, rq->stream_state);
    db_context_set(NULL);
    if (!rq->rp.set) reply_errf(&rq->rp, ERR_INTERNAL, "the upload handler produced no reply");
  } else if (!rq->rp.set) {
    reply_errf(&rq->rp, ERR_INTERNAL, "the upload was not started");
  }
  reply_header(&rq->rp, "X-Request-Id", rq->id);
}

/* Label values must come from a closed set, or a client could mint series. */
static const char *method_label(const char *m) {
  static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (str_eq(m, known[i])) return known[i];
  return "other";
}

void http_observe(struct req *rq, bool access_log) {
  int64_t us = time_mono_us() - rq->t0_us;
  char status[8];
  snprintf(status, sizeof status, "%d", rq->rp.status);
  const char *ml = method_label(rq->method);
  const char *l3[] = {ml, rq->route_label, status};
  const char *l2[] = {ml, rq->route_label};
  metrics_add(metrics_series(m_requests, l3), 1);
  metrics_observe(metrics_series(m_duration, l2), (double)us / 1e6);
  if (!access_log || (rq->m.route && (rq->m.route->flags & ROUTE_NO_ACCESS_LOG))) return;
  struct buf b;
  buf_init(&b);
  buf_printf(&b, "{\"ts\":%.3f,\"level\":\"info\",\"event\":\"http.access\",\"method\":", time_wall_s());
  json_escape_buf(&b, rq->method);
  buf_puts(&b, ",\"route\":");
  json_escape_buf(&b, rq->route_label);
  buf_puts(&b, ",\"path\":");
  json_escape_buf(&b, rq->path);
  buf_printf(&b, ",\"status\":%d,\"bytes\":%zu,\"us\":%lld,\"request_id\":\"%s\"", rq->rp.status,
             rq->rp.len, (long long)us, rq->id);
  if (rq->rp.status >= 400) buf_printf(&b, ",\"error_code\":\"%s\"", err_code_str(rq->rp.err));
  buf_putc(&b, '}');
  if (b.data) log_line_buffered(b.data, b.len);
  buf_fini(&b);
}
