/* http/internal: the request and reply as the transport and the dispatch
 * core share them. Not for other rooms: they use http.h's accessors. */
#ifndef KILN_HTTP_INTERNAL_H
#define KILN_HTTP_INTERNAL_H

#include "http.h"

#include <stdatomic.h>

/* How a request reads headers and query arguments from its transport. */
struct req_transport {
  const char *(*header)(void *ctx, const char *name);
  const char *(*query)(void *ctx, const char *key);
  int (*query_all)(void *ctx, const char *key, const char **vals, int max);
  void (*client_addr)(void *ctx, char *out, size_t cap);
  /* Deferred replies (reply_defer): park the request without holding a
   * thread, and hand it back from any thread. NULL: cannot park. */
  void (*suspend)(void *ctx);
  void (*resume)(void *ctx);
};

#define REPLY_MAX_HEADERS 16

struct reply {
  int status;
  const char *ctype;
  char *body;
  size_t len;
  bool persistent; /* body is static storage */
  bool set;
  bool v2_errors;    /* /v2/ errors also carry the protocol's "error" key */
  enum err_code err; /* for the access log */
  int nheaders;
  struct {
    const char *name, *value;
  } headers[REPLY_MAX_HEADERS];
  struct arena *arena;
  struct http_live *live; /* an open-ended body (reply_live), until handed to MHD */

  /* a streamed body (reply_stream): owned until handed to the transport */
  reply_read_fn stream_read;
  void (*stream_done)(void *ctx);
  void *stream_ctx;
};

struct req {
  struct arena arena;
  struct app *app;
  struct router *router;
  struct router_match m;
  const char *method, *path;
  char id[68];
  int64_t t0_us;
  struct buf body;
  uint64_t max_body;
  bool too_large;
  json_t *json;
  bool json_done;
  struct err json_err;
  const struct req_transport *tp;
  void *tp_ctx;
  struct reply rp;
  const char *route_label; /* pattern, "static" or "unmatched" */
  struct auth_principal principal;
  char addr[64];
  /* ROUTE_STREAM_BODY: the route's state between begin and end/abort */
  bool streaming;       /* the route streams its body */
  bool stream_live;     /* begin accepted; end or abort not yet run */
  bool stream_discard;  /* answered already: drop the rest of the body */
  void *stream_state;
  uint64_t max_stream, streamed, discarded;
  bool sent; /* the reply was handed to the transport */
  _Atomic int offload; /* enum http_offload_state (ROUTE_OFFLOAD routes, deferred replies) */
  /* a deferred reply (reply_defer): run on the I/O thread once resumed */
  reply_finish_fn defer_fn;
  void *defer_ctx;
};

/* ROUTE_OFFLOAD (offload.c): the handler (or a streamed body's end) runs on
 * a worker pool while the connection is suspended; the access handler sends
 * the reply once the state is DONE. submit answers false when there is no
 * pool (the caller runs fn itself). drain waits for every job (before the
 * daemon stops: MHD must not stop with a suspended connection). */
enum http_offload_state { HTTP_OFFLOAD_NONE = 0, HTTP_OFFLOAD_RUNNING, HTTP_OFFLOAD_DONE };
struct MHD_Connection;
int http_offload_start(struct err *e);
void http_offload_drain(void);
void http_offload_stop(void);
bool http_offload_submit(struct req *rq, struct MHD_Connection *conn, void (*fn)(struct req *rq));

/* Sets method, path, id (from X-Request-Id when well formed) and matches the
 * route. */
int req_init(struct req *rq, struct app *app, struct router *r, const char *method,
             const char *path, const struct req_transport *tp, void *tp_ctx, uint64_t max_body);
void req_fini(struct req *rq);
/* Appends body bytes, flipping too_large past the limit. */
void req_body_append(struct req *rq, const char *p, size_t n);
/* Runs the handler (or 404/405/413/static) and fills rq->rp. */
void http_handle(struct req *rq);
/* Streamed bodies: begin runs the access check, the announced-length check
 * and the route's begin; true when the request was answered already (the
 * body is then discarded). chunk feeds body bytes; end (the whole body is
 * in) sets the reply. */
bool http_stream_begin(struct req *rq, uint64_t announced_len);
void http_stream_chunk(struct req *rq, const char *p, size_t n);
void http_stream_end(struct req *rq);
/* Live replies (live.c): release one not handed over (runs its done);
 * the MHD response that takes it over; end them all (shutdown) or allow
 * them again (start); the in-process dispatch reads one to its end. */
struct MHD_Connection;
struct MHD_Response;
void http_live_release(struct reply *rp);
struct MHD_Response *http_live_response(struct reply *rp, struct MHD_Connection *conn);
void http_live_close_all(void);
void http_live_open(void);
void http_live_drain_test(struct reply *rp, struct buf *out);
/* Metrics and the access log once the reply has gone out. */

void http_observe(struct req *rq, bool access_log);

#endif
