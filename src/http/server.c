/* http/server: libmicrohttpd glue — the listening socket, the thread pool,
 * body collection, reply sending and graceful shutdown. Everything above
 * the transport lives in request.c. */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Most bytes of an oversized body read and dropped before answering 413. */
#define HTTP_DISCARD_MAX (64u << 20)

struct http_server {
  struct MHD_Daemon *d;
  struct router *router;
  struct app *app;
  struct http_opts o;
  int listen_fd;
  int port;
  _Atomic int inflight;
  bool quiesced;
};

/* a request's transport context is its MHD connection */
static const char *mhd_header(void *ctx, const char *name) {
  return MHD_lookup_connection_value(ctx, MHD_HEADER_KIND, name);
}
static const char *mhd_query(void *ctx, const char *key) {
  return MHD_lookup_connection_value(ctx, MHD_GET_ARGUMENT_KIND, key);
}

struct qa_ctx {
  const char *key;
  const char **vals;
  int max, n;
};

static enum MHD_Result qa_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
  (void)kind;
  struct qa_ctx *c = cls;
  if (key && str_eq(key, c->key)) {
    if (c->n < c->max) c->vals[c->n] = value ? value : "";
    c->n++;
  }
  return MHD_YES;
}

static int mhd_query_all(void *ctx, const char *key, const char **vals, int max) {
  struct qa_ctx c = {key, vals, max, 0};
  MHD_get_connection_values(ctx, MHD_GET_ARGUMENT_KIND, qa_iter, &c);
  return c.n;
}

static void mhd_client_addr(void *ctx, char *out, size_t cap) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(ctx, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  out[0] = 0;
  if (!ci || !ci->client_addr) return;
  const struct sockaddr *sa = ci->client_addr;
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

static void mhd_suspend(void *ctx) { MHD_suspend_connection(ctx); }
static void mhd_resume(void *ctx) { MHD_resume_connection(ctx); }

static const struct req_transport mhd_transport = {mhd_header, mhd_query, mhd_query_all,
                                                   mhd_client_addr, mhd_suspend, mhd_resume};

_Static_assert(REPLY_STREAM_END == MHD_CONTENT_READER_END_OF_STREAM, "stream end marker");
_Static_assert(REPLY_STREAM_ERROR == MHD_CONTENT_READER_END_WITH_ERROR, "stream error marker");

/* Bytes a streamed reply asks its reader for at a time. */
#define HTTP_STREAM_BLOCK (64u << 10)

static enum MHD_Result send_reply(struct MHD_Connection *conn, struct req *rq) {
  struct reply *rp = &rq->rp;
  struct MHD_Response *res;
  if (rp->live) { /* an open-ended body: MHD pulls it as it comes (live.c) */
    res = http_live_response(rp, conn);
    if (!res) return MHD_NO;
    if (rp->ctype) MHD_add_response_header(res, "Content-Type", rp->ctype);
    for (int i = 0; i < rp->nheaders; i++)
      MHD_add_response_header(res, rp->headers[i].name, rp->headers[i].value);
    enum MHD_Result r = MHD_queue_response(conn, (unsigned)rp->status, res);
    MHD_destroy_response(res);
    return r;
  }

  rq->sent = true;
  if (rp->stream_read) {
    res = MHD_create_response_from_callback((uint64_t)rp->len, HTTP_STREAM_BLOCK, rp->stream_read,
                                            rp->stream_ctx, rp->stream_done);
    /* MHD calls stream_done from now on */
    if (res) rp->stream_read = NULL, rp->stream_done = NULL, rp->stream_ctx = NULL;
  } else if (rp->persistent) {
    res = MHD_create_response_from_buffer(rp->len, rp->body, MHD_RESPMEM_PERSISTENT);
  } else {
    /* MHD frees the body once sent; the request no longer owns it */
    res = MHD_create_response_from_buffer(rp->len, rp->body, MHD_RESPMEM_MUST_FREE);
    if (res) rp->body = NULL;
  }
  if (!res) return MHD_NO;
  if (rp->ctype) MHD_add_response_header(res, "Content-Type", rp->ctype);
  for (int i = 0; i < rp->nheaders; i++)
    MHD_add_response_header(res, rp->headers[i].name, rp->headers[i].value);
  enum MHD_Result r = MHD_queue_response(conn, (unsigned)rp->status, res);
  MHD_destroy_response(res);
  return r;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls) {
  (void)version;
  struct http_server *s = cls;
  struct req *rq = *con_cls;
  if (rq && atomic_load(&rq->offload) != HTTP_OFFLOAD_NONE) {
    /* resumed by the worker pool: the reply is ready (or still running) */
    *upload_size = 0;
    if (atomic_load(&rq->offload) == HTTP_OFFLOAD_RUNNING || rq->sent) return MHD_YES;
    if (rq->defer_fn) { /* a deferred reply: its answer is made here, on the I/O thread */
      reply_finish_fn fn = rq->defer_fn;
      rq->defer_fn = NULL;
      fn(rq, &rq->rp, rq->defer_ctx);
      if (rq->defer_fn) return MHD_YES; /* parked again (a model that was still loading) */
      if (!rq->rp.set) reply_errf(&rq->rp, ERR_INTERNAL, "the deferred handler produced no reply");
    }
    return send_reply(conn, rq);
  }
  if (!rq) {
    rq = malloc(sizeof *rq);
    if (!rq) return MHD_NO;
    atomic_fetch_add(&s->inflight, 1);
    if (req_init(rq, s->app, s->router, method, url, &mhd_transport, conn, s->o.max_body)) {
      req_fini(rq);
      free(rq);
      atomic_fetch_sub(&s->inflight, 1);
      return MHD_NO;
    }
    *con_cls = rq;
    rq->max_stream = s->o.max_stream_body ? s->o.max_stream_body : HTTP_DEFAULT_MAX_STREAM_BODY;
    if (rq->m.route && (rq->m.route->flags & ROUTE_STREAM_BODY)) {
      const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
      uint64_t n;
      bool have_len = cl && str_to_u64(cl, &n) == 0;
      /* access and size are checked before the first byte is accepted */
      if (!http_stream_begin(rq, have_len ? n : HTTP_LEN_UNKNOWN)) return MHD_YES;
      /* Refused. As for the 413 below: a small (or chunked) body is read
       * and dropped so that the client sees the answer and not a reset (a
       * chunked one is cut past the bound); a client waiting on
       * 100-continue never sends it. */
      const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Expect");
      if ((have_len && (n == 0 || n > HTTP_DISCARD_MAX)) ||
          (expect && strcasecmp(expect, "100-continue") == 0))
        return send_reply(conn, rq);
      return MHD_YES;
    }
    /* An announced oversized body is refused. Up to a bound we read and drop
     * it first: answering mid-upload makes the kernel reset the connection
     * and the client would see a reset, not the 413. Past the bound we
     * answer at once rather than swallow gigabytes. */
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    uint64_t n;
    if (cl && str_to_u64(cl, &n) == 0 && n > s->o.max_body) {
      rq->too_large = true;
      buf_fini(&rq->body);
      /* a client that asked `Expect: 100-continue` waits for our answer and
       * will not send the body: answer it at once */
      const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Expect");
      if (n - s->o.max_body > HTTP_DISCARD_MAX || (expect && strcasecmp(expect, "100-continue") == 0)) {
        http_handle(rq);
        return send_reply(conn, rq);
      }
    }
    return MHD_YES;
  }
  if (rq->streaming) {
    if (*upload_size) {
      size_t n = *upload_size;
      *upload_size = 0;
      if (rq->sent) return MHD_YES;
      http_stream_chunk(rq, upload, n);
      /* MHD cannot answer mid-upload; past the bound, cut the connection */
      return rq->discarded > HTTP_DISCARD_MAX ? MHD_NO : MHD_YES;
    }
    if (rq->sent) return MHD_YES;
    if ((rq->m.route->flags & ROUTE_OFFLOAD) && !rq->rp.set && http_offload_submit(rq, conn, http_stream_end))
      return MHD_YES;
    http_stream_end(rq);
    return send_reply(conn, rq);
  }
  if (*upload_size) {
    req_body_append(rq, upload, *upload_size);
    *upload_size = 0;
    return MHD_YES;
  }
  if (rq->rp.set) return MHD_YES; /* already answered (early 413) */
  if (rq->m.route && (rq->m.route->flags & ROUTE_OFFLOAD) && http_offload_submit(rq, conn, http_handle)) return MHD_YES;
  http_handle(rq);
  /* parked by reply_defer: sent when resumed */
  if (atomic_load(&rq->offload) != HTTP_OFFLOAD_NONE) return MHD_YES;
  return send_reply(conn, rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)conn;
  (void)toe;
  struct http_server *s = cls;
  struct req *rq = *con_cls;
  if (!rq) return;
  *con_cls = NULL;
  if (rq->rp.set) http_observe(rq, s->o.access_log);
  req_fini(rq);
  free(rq);
  atomic_fetch_sub(&s->inflight, 1);
}

/* Small replies must not wait for Nagle's algorithm (~40 ms with delayed ACKs). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code) {
  (void)cls;
  (void)socket_ctx;
  if (code != MHD_CONNECTION_NOTIFY_STARTED) return;
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (ci) {
    int one = 1;
    setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && msg[n - 1] == '\n') msg[--n] = 0;
  log_msg(LOG_WARN, "http.mhd", "%s", msg);
}

/* "host:port", "[v6]:port" or ":port" */
static int open_listener(const char *listen_addr, int *fd_out, int *port_out, struct err *e) {
  char host[256];
  const char *colon = strrchr(listen_addr, ':');
  if (!colon) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "listen address '%s' needs host:port", listen_addr);
  size_t hl = (size_t)(colon - listen_addr);
  if (hl >= sizeof host) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "listen host too long");
  memcpy(host, listen_addr, hl);
  host[hl] = 0;
  char *h = host;
  if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
    h[hl - 1] = 0;
    h++;
  }
  uint64_t port;
  if (str_to_u64(colon + 1, &port) || port > 65535)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "bad port in listen address '%s'", listen_addr);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
  struct addrinfo *res = NULL;
  int gai = getaddrinfo(*h ? h : NULL, colon + 1, &hints, &res);
  if (gai) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "cannot resolve '%s': %s", listen_addr, gai_strerror(gai));
  int fd = -1, saved = 0;
  for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 1024)) {
      saved = errno;
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) return err_set(e, ERR_IO, "cannot listen on %s: %s", listen_addr, strerror(saved));
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  *port_out = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  *fd_out = fd;
  return 0;
}

int http_server_start(struct http_server **out, const struct http_opts *o, struct router *r,
                      struct app *app, struct err *e) {
  struct http_server *s = calloc(1, sizeof *s);
  if (!s) return err_set(e, ERR_NO_MEMORY, NULL);
  s->o = *o;
  http_live_open();

  s->router = r;
  s->app = app;
  int threads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (threads < 1) threads = 1;
  int rc = open_listener(o->listen, &s->listen_fd, &s->port, e);
  if (rc) {
    free(s);
    return rc;
  }
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_TURBO;
  /* TLS options go in an array so that plain HTTP passes none of them. */
  struct MHD_OptionItem tls[3] = {{MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL},
                                  {MHD_OPTION_END, 0, NULL}};
  if (o->tls_cert_pem || o->tls_key_pem) {
    if (!o->tls_cert_pem || !o->tls_key_pem) {
      close(s->listen_fd);
      free(s);
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "HTTPS needs both a certificate and a key");
    }
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
      close(s->listen_fd);
      free(s);
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "this libmicrohttpd was built without TLS");
    }
    flags |= MHD_USE_TLS;
    tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)o->tls_cert_pem};
    tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)o->tls_key_pem};
  }
  s->d = MHD_start_daemon(
      flags, 0, NULL, NULL, on_access, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
      MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
      MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned)(o->conn_timeout_s > 0 ? o->conn_timeout_s : 60), MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)(o->max_conns > 0 ? o->max_conns : 4096), MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
      MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
  if (s->d && http_offload_start(e)) {
    MHD_stop_daemon(s->d);
    free(s);
    return -ERR_INTERNAL;
  }
  if (!s->d) {
    close(s->listen_fd);
    free(s);
    return err_set(e, o->tls_cert_pem ? ERR_INVALID_PARAMETER_VALUE : ERR_INTERNAL,
                   "cannot start the HTTP%s server on %s%s", o->tls_cert_pem ? "S" : "", o->listen,
                   o->tls_cert_pem ? " (is the certificate/key pair valid PEM and matching?)" : "");
  }
  *out = s;
  return 0;
}

int http_server_port(const struct http_server *s) { return s->port; }

void http_server_quiesce(struct http_server *s, int grace_ms) {
  if (!s || s->quiesced) return;
  s->quiesced = true;
  /* stop accepting first; connections already open keep being served */
  MHD_socket lfd = MHD_quiesce_daemon(s->d);
  http_live_close_all(); /* parked live replies end, so their requests finish */
  if (lfd != MHD_INVALID_SOCKET) close(lfd);
  int64_t deadline = time_mono_us() + (int64_t)grace_ms * 1000;
  while (atomic_load(&s->inflight) > 0 && time_mono_us() < deadline) usleep(2000);
}

void http_server_stop(struct http_server *s, int grace_ms) {
  if (!s) return;
  http_server_quiesce(s, grace_ms);
  int64_t deadline = time_mono_us() + (int64_t)grace_ms * 1000;
  while (atomic_load(&s->inflight) > 0 && time_mono_us() < deadline) usleep(2000);
  int left = atomic_load(&s->inflight);
  if (left > 0) log_warn("http.shutdown", "%d requests still in flight after %d ms; closing", left, grace_ms);
  http_offload_stop(); /* offloaded handlers finish and resume their connections first */
  MHD_stop_daemon(s->d);
  free(s);
}

/* ---- in-process dispatch for tests and fuzzing -------------------------- */

struct test_ctx {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool resumed;
  const char *const *headers;
  char *query; /* decoded copy: "k=v\0k2=v2\0" pairs */
  const char *keys[64];
  const char *vals[64];
  int nq;
};

static const char *t_header(void *ctx, const char *name) {
  struct test_ctx *t = ctx;
  size_t n = strlen(name);
  for (int i = 0; t->headers && t->headers[i]; i++)
    if (strncasecmp(t->headers[i], name, n) == 0 && t->headers[i][n] == ':') {
      const char *v = t->headers[i] + n + 1;
      while (*v == ' ') v++;
      return v;
    }
  return NULL;
}
static const char *t_query(void *ctx, const char *key) {
  struct test_ctx *t = ctx;
  for (int i = 0; i < t->nq; i++)
    if (str_eq(t->keys[i], key)) return t->vals[i];
  return NULL;
}
static int t_query_all(void *ctx, const char *key, const char **vals, int max) {
  struct test_ctx *t = ctx;
  int n = 0;
  for (int i = 0; i < t->nq; i++)
    if (str_eq(t->keys[i], key)) {
      if (n < max) vals[n] = t->vals[i];
      n++;
    }
  return n;
}
static void t_client_addr(void *ctx, char *out, size_t cap) {
  (void)ctx;
  str_copy(out, cap, "127.0.0.1");
}
static void t_suspend(void *ctx) { (void)ctx; }
static void t_resume(void *ctx) {
  struct test_ctx *t = ctx;
  pthread_mutex_lock(&t->mu);
  t->resumed = true;
  pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
}
static const struct req_transport test_transport = {t_header, t_query, t_query_all, t_client_addr,
                                                    t_suspend, t_resume};

int http_dispatch_test(struct router *r, struct app *app, const char *method, const char *url,
                       const char *const *headers, const char *body, size_t body_len,
                       uint64_t max_body, struct http_test_result *out) {
  struct http_test_opts o = {.max_body = max_body};
  return http_dispatch_test_opts(r, app, method, url, headers, body, body_len, &o, out);
}

/* A streamed upload fed in pieces, as the transport would. */
static void t_stream_body(struct req *rq, struct test_ctx *t, const char *body, size_t body_len,
                          size_t chunk) {
  const char *te = t_header(t, "Transfer-Encoding");
  bool chunked = te && strcasecmp(te, "chunked") == 0;
  if (!http_stream_begin(rq, chunked ? HTTP_LEN_UNKNOWN : (uint64_t)body_len)) {
    size_t step = chunk ? chunk : (body_len ? body_len : 1);
    for (size_t off = 0; off < body_len; off += step)
      http_stream_chunk(rq, body + off, body_len - off < step ? body_len - off : step);
  }
  http_stream_end(rq);
}

/* Reads a streamed reply to its end into out->body. */
static void t_stream_reply(struct reply *rp, struct http_test_result *out) {
  char *blk = malloc(HTTP_STREAM_BLOCK);
  uint64_t pos = 0, len = (uint64_t)rp->len;
  while (blk && pos < len) {
    ssize_t n = rp->stream_read(rp->stream_ctx, pos, blk, HTTP_STREAM_BLOCK);
    if (n <= 0) break;
    buf_append(&out->body, blk, (size_t)n);
    pos += (uint64_t)n;
  }
  out->truncated = pos < len;
  free(blk);
}

int http_dispatch_test_opts(struct router *r, struct app *app, const char *method, const char *url,
                            const char *const *headers, const char *body, size_t body_len,
                            const struct http_test_opts *o, struct http_test_result *out) {
  struct test_ctx t = {.headers = headers};
  pthread_mutex_init(&t.mu, NULL);
  pthread_cond_init(&t.cv, NULL);
  uint64_t max_body = o->max_body;
  const char *qm = strchr(url, '?');
  char *path = qm ? strndup(url, (size_t)(qm - url)) : strdup(url);
  if (qm) {
    t.query = strdup(qm + 1);
    char *save = NULL;
    for (char *kv = strtok_r(t.query, "&", &save); kv && t.nq < 64; kv = strtok_r(NULL, "&", &save)) {
      char *eq = strchr(kv, '=');
      if (eq) *eq = 0;
      t.keys[t.nq] = kv;
      t.vals[t.nq] = eq ? eq + 1 : "";
      t.nq++;
    }
  }
  struct req rq;
  int rc = req_init(&rq, app, r, method, path, &test_transport, &t, max_body);
  if (rc == 0) {
    rq.max_stream = o->max_stream_body ? o->max_stream_body : HTTP_DEFAULT_MAX_STREAM_BODY;
    if (rq.m.route && (rq.m.route->flags & ROUTE_STREAM_BODY)) {
      t_stream_body(&rq, &t, body, body_len, o->chunk);
    } else {
      if (body && body_len) req_body_append(&rq, body, body_len);
      http_handle(&rq);
      while (rq.defer_fn) { /* parked: wait for the resume, then finish as the I/O thread would */
        pthread_mutex_lock(&t.mu);
        while (!t.resumed) pthread_cond_wait(&t.cv, &t.mu);
        t.resumed = false;
        pthread_mutex_unlock(&t.mu);
        reply_finish_fn fn = rq.defer_fn;
        rq.defer_fn = NULL;
        fn(&rq, &rq.rp, rq.defer_ctx);
        if (!rq.defer_fn && !rq.rp.set) reply_errf(&rq.rp, ERR_INTERNAL, "the deferred handler produced no reply");
      }
    }
    http_observe(&rq, false);
    out->status = rq.rp.status;
    out->truncated = false;
    buf_init(&out->body);
    if (rq.rp.stream_read) t_stream_reply(&rq.rp, out);
    else buf_append(&out->body, rq.rp.body ? rq.rp.body : "", rq.rp.len);
    if (rq.rp.live) http_live_drain_test(&rq.rp, &out->body);
    str_copy(out->content_type, sizeof out->content_type, rq.rp.ctype ? rq.rp.ctype : "");

    out->allow[0] = 0;
    out->headers[0] = 0;
    size_t hl = 0;
    for (int i = 0; i < rq.rp.nheaders; i++) {
      if (strcasecmp(rq.rp.headers[i].name, "Allow") == 0)
        str_copy(out->allow, sizeof out->allow, rq.rp.headers[i].value);
      int k = snprintf(out->headers + hl, sizeof out->headers - hl, "%s: %s\n",
                       rq.rp.headers[i].name, rq.rp.headers[i].value);
      if (k > 0 && (size_t)k < sizeof out->headers - hl) hl += (size_t)k;
    }
  }
  req_fini(&rq);
  free(path);
  free(t.query);
  pthread_mutex_destroy(&t.mu);
  pthread_cond_destroy(&t.cv);
  return rc;
}
