/* http: the server (libmicrohttpd), the router and the route table, the
 * request/reply types handlers see, OpenAPI generation and the dashboard's
 * static files. Handlers never see libmicrohttpd types. */
#ifndef KILN_HTTP_H
#define KILN_HTTP_H

#include "auth/auth.h"
#include "base/base.h"
#include "store/store.h"

/* Everything a handler may reach: the composed server's parts. */
struct app {
  struct db *db;
  struct blob_store *blobs;
  struct auth *auth; /* NULL: only PERM_PUBLIC routes answer */
  const struct cfg *cfg;
  int64_t started_at_ms;
  const char *data_dir;
  bool tls; /* served over HTTPS: cookies get the Secure attribute */
  struct registry_webhooks *webhooks; /* NULL: the webhook routes answer NOT_READY */
  struct registry_av *av;             /* malware scanner for uploads; NULL: none (--clamd unset) */
  struct serve *serve;                /* the serving runtime; NULL: the prediction routes answer NOT_READY */
};

struct serve;

struct registry_webhooks;
struct registry_av;
struct req;   /* one request; lives until its reply is sent */
struct reply; /* what the handler answers */

typedef int (*route_fn)(struct req *rq, struct reply *rp);

/* Permissions a route may require. PERM_PUBLIC needs no credentials. The
 * identity issue fills in the checks; until then every route declares one so
 * the table is complete. */
enum perm { PERM_NONE = 0, PERM_PUBLIC, PERM_READ, PERM_WRITE, PERM_PREDICT, PERM_ADMIN };
const char *perm_name(enum perm p);

enum route_flags {
  ROUTE_NO_ACCESS_LOG = 1u << 0, /* probes that would flood the log */
  ROUTE_HIDDEN = 1u << 1,        /* left out of openapi.json (docs page itself) */
  /* the project is the caller's selection (key's project, X-Kiln-Project,
   * default project), not a path parameter: MLflow-API routes */
  ROUTE_PROJECT_SELECTED = 1u << 2,
  /* the body is not buffered: the route's `stream` hooks get it in chunks as
   * it arrives (uploads of any size, up to max_stream_body) */
  ROUTE_STREAM_BODY = 1u << 3,
  /* long work (checking a model file, joining upload parts): the handler
   * runs on a worker pool, not the connection's I/O thread */
  ROUTE_OFFLOAD = 1u << 4,
  /* the body and the answer may also be raw bytes (KServe V2's binary
   * tensor extension: application/octet-stream next to JSON) */
  ROUTE_BINARY_ALT = 1u << 5,
};

/* A streamed request body (ROUTE_STREAM_BODY). The central access check has
 * passed before begin runs, and begin runs before the first body byte is
 * accepted: a refused upload is never handed to the route. begin sets
 * *state (the route's own) and returns 0, or sets the reply and returns <0
 * (the body is then discarded). chunk gets the body in pieces; <0 with the
 * reply set stops the upload (abort follows). end runs once the whole body
 * is in, must set the reply and release state. abort releases state when the
 * upload stops early (limit, error, lost connection); it must not reply. */
struct route_stream {
  int (*begin)(struct req *rq, struct reply *rp, uint64_t announced_len, void **state);
  int (*chunk)(struct req *rq, struct reply *rp, void *state, const char *p, size_t n);
  int (*end)(struct req *rq, struct reply *rp, void *state);
  void (*abort)(struct req *rq, void *state);
};
/* announced_len when the client sent no Content-Length (chunked) */
#define HTTP_LEN_UNKNOWN UINT64_MAX

struct route {
  const char *method;      /* "GET", "POST", ... */
  const char *path;        /* "/api/v1/things/{id}"; a last "{name*}" takes the rest */
  enum perm perm;
  const char *summary;     /* one line for the docs */
  const char *tag;         /* OpenAPI tag */
  const char *req_schema;  /* JSON Schema text of the body, or NULL */
  const char *resp_schema; /* JSON Schema text of the 2xx body, or NULL (non-JSON) */
  const char *resp_type;   /* content type when not JSON, e.g. "text/plain" */
  route_fn fn;
  unsigned flags;
  /* The project the resource belongs to (arena string), or NULL for routes
   * not tied to one; the central check authorizes against it. A locator
   * that cannot find the resource returns NULL and sets *missing, which
   * answers 404 before the handler runs. */
  const char *(*project_of)(struct req *rq, bool *missing);
  const struct route_stream *stream; /* with ROUTE_STREAM_BODY */
};

/* ---- request accessors ---------------------------------------------------- */
const char *req_method(const struct req *rq);
const char *req_path(const struct req *rq);
const char *req_id(const struct req *rq);
const char *req_param(const struct req *rq, const char *name); /* path parameter */
const char *req_query(const struct req *rq, const char *key);  /* first value */
int req_query_all(const struct req *rq, const char *key, const char **vals, int max);
const char *req_header(const struct req *rq, const char *name);
/* The value of cookie `name` from the Cookie header (RFC 6265 syntax,
 * optional double quotes removed) copied into out; false when absent,
 * malformed or longer than cap - 1. */
bool req_cookie(const struct req *rq, const char *name, char *out, size_t cap);
const char *req_body(const struct req *rq, size_t *len);
/* Parses the body as JSON once; NULL with e filled on malformed input. The
 * value is owned by the request. */
json_t *req_json(struct req *rq, struct err *e);
/* The body as a JSON object, or NULL with the 400 reply already set. */
json_t *req_json_object(struct req *rq, struct reply *rp);
struct arena *req_arena(struct req *rq);
struct app *req_app(struct req *rq);
/* Who is calling (AUTH_ANON on public routes without credentials). */
const struct auth_principal *req_principal(const struct req *rq);
/* The peer's address as text ("127.0.0.1"), or "" when unknown. */
const char *req_client_addr(struct req *rq);
/* The id audit entries use for the caller: user id, or "key:<id>". */
const char *req_actor(struct req *rq);
const struct route *req_route(const struct req *rq);

/* ---- replies ------------------------------------------------------------- */
/* Takes ownership of body (json_decref'd after encoding). Returns 0. */
int reply_json(struct reply *rp, int status, json_t *body);
/* {"error_code": ..., "message": ...} with the code's HTTP status. Returns 0. */
int reply_err(struct reply *rp, const struct err *e);
int reply_errf(struct reply *rp, enum err_code c, const char *fmt, ...) KILN_PRINTF(3, 4);
/* Copies data unless `persistent` (static storage that outlives the reply). */
int reply_bytes(struct reply *rp, int status, const char *content_type, const void *data,
                size_t len, bool persistent);
/* Takes a malloc'd buffer (freed after sending). */
int reply_take(struct reply *rp, int status, const char *content_type, char *data, size_t len);
int reply_header(struct reply *rp, const char *name, const char *value); /* copies both */
/* Retry-After: seconds (at least 1). */
int reply_retry_after(struct reply *rp, int64_t seconds);
/* Adds another header of the same name (Set-Cookie) instead of replacing. */
int reply_header_add(struct reply *rp, const char *name, const char *value);
/* A body produced while it is sent (downloads): read(ctx, pos, buf, max)
 * returns bytes written into buf (> 0), REPLY_STREAM_END, or
 * REPLY_STREAM_ERROR (the connection is cut; the status line is already
 * out). len is the Content-Length; read is not called past it. done(ctx)
 * runs exactly once, after the last read or when the reply is dropped or
 * replaced. Returns 0. */
#define REPLY_STREAM_END ((ssize_t)-1)
#define REPLY_STREAM_ERROR ((ssize_t)-2)
typedef ssize_t (*reply_read_fn)(void *ctx, uint64_t pos, char *buf, size_t max);
int reply_stream(struct reply *rp, int status, const char *content_type, uint64_t len,
                 reply_read_fn read, void (*done)(void *ctx), void *ctx);

/* ---- deferred replies ------------------------------------------------------
 * A handler that cannot answer yet (a prediction waiting for its batch)
 * parks its request instead of holding the I/O thread: reply_defer, then
 * return. Later, from any thread, http_deferred_resume hands the request
 * back; the I/O thread then runs finish(rq, rp, ctx), which must set the
 * reply, and sends it. Exactly one resume per deferral, always (also on
 * errors: finish answers them). The request stays alive until finish has
 * run. NULL when the request cannot be parked (a ROUTE_OFFLOAD handler). */
typedef void (*reply_finish_fn)(struct req *rq, struct reply *rp, void *ctx);
struct http_deferred;
struct http_deferred *reply_defer(struct req *rq, reply_finish_fn finish, void *ctx);
void http_deferred_resume(struct http_deferred *d);
/* When the request started (time_mono_us), for Server-Timing figures. */
int64_t req_start_us(const struct req *rq);

/* ---- Range (RFC 9110 14.2), one range -------------------------------------- */
enum http_range_kind {
  HTTP_RANGE_NONE = 0,      /* absent, malformed, or several ranges: send it all (200) */
  HTTP_RANGE_OK = 1,        /* [*first, *last] inclusive: 206 */
  HTTP_RANGE_UNSATISFIABLE, /* 416 with Content-Range: bytes * / size */
};
/* Parses a Range header value ("bytes=0-99", "bytes=100-", "bytes=-N") for a
 * representation of size bytes. */
enum http_range_kind http_range_parse(const char *value, uint64_t size, uint64_t *first,
                                      uint64_t *last);

/* ---- live replies (http/live.c) -------------------------------------------
 * An open-ended body produced over time (Server-Sent Events) that holds no
 * thread while idle. pull(ctx, buf, max) returns bytes written (> 0), 0
 * when nothing is ready (the connection is parked until http_live_wake),
 * HTTP_LIVE_END or HTTP_LIVE_ERROR. done(ctx) runs exactly once, when the
 * reply is over: ended, client gone, server stopping, or never sent. *out
 * is the handle to wake it, valid until done(ctx) has returned; wake may be
 * called from any thread, any number of times. Server shutdown ends every
 * live reply. Returns 0. */
#define HTTP_LIVE_END ((ssize_t)-1)
#define HTTP_LIVE_ERROR ((ssize_t)-2)
struct http_live;
typedef ssize_t (*reply_pull_fn)(void *ctx, char *buf, size_t max);
int reply_live(struct reply *rp, int status, const char *content_type, reply_pull_fn pull,
               void (*done)(void *ctx), void *ctx, struct http_live **out);
void http_live_wake(struct http_live *l);

/* ---- router (unit-testable, no sockets) ---------------------------------- */

struct router;
struct router_match {
  const struct route *route;
  int nparams;
  struct {
    const char *name;
    size_t name_len;
    const char *value; /* points into the matched path */
    size_t value_len;
  } params[8];
  bool path_matched;      /* some route has this path (405 when route is NULL) */
  char allow[128];        /* methods allowed on this path, for 405's Allow */
};
struct router *router_new(void);
void router_free(struct router *r);
/* Fails (-ERR_INVALID_PARAMETER_VALUE) on a malformed pattern, a duplicate
 * method+path, or a route without permission. */
int router_add(struct router *r, const struct route *rt, struct err *e);
int router_add_table(struct router *r, const struct route *rts, size_t n, struct err *e);
/* Literal segments win over parameters, parameters over a trailing "*". */
void router_match(const struct router *r, const char *method, const char *path,
                  struct router_match *m);
size_t router_count(const struct router *r);
const struct route *router_at(const struct router *r, size_t i);

/* ---- OpenAPI ---------------------------------------------------------------- */
/* Builds the OpenAPI 3.1 document from the router's table; NULL and e filled
 * when a route carries a schema that is not valid JSON. */
json_t *openapi_build(const struct router *r, struct err *e);

/* ---- static files (the dashboard) ---------------------------------------- */
struct static_file {
  const char *path;
  const unsigned char *data;
  size_t len;
};
/* Finds path (or path + ".gz"/".br" when accepted); sets encoding. */
const struct static_file *static_lookup(const char *path, const char *accept_encoding,
                                        const char **encoding);
const char *static_content_type(const char *path);
/* Serves a GET for a non-API path: file, or index.html for SPA routes. */
int static_serve(struct req *rq, struct reply *rp);

/* ---- server ------------------------------------------------------------------ */
struct http_server;
struct http_opts {
  const char *listen;   /* "127.0.0.1:8080"; port 0 picks a free one */
  int threads;          /* 0 = number of CPUs */
  uint64_t max_body;    /* bytes; larger bodies answer 413 */
  uint64_t max_stream_body; /* ROUTE_STREAM_BODY routes' limit (0: 5 GiB); 413 above */
  int conn_timeout_s;   /* idle connection timeout */
  int max_conns;
  bool access_log;
  /* HTTPS: PEM text of the certificate chain and the private key (both or
   * neither); NULL serves plain HTTP. */
  const char *tls_cert_pem, *tls_key_pem;
};
int http_server_start(struct http_server **out, const struct http_opts *o, struct router *r,
                      struct app *app, struct err *e);
int http_server_port(const struct http_server *s);
/* Stops accepting, waits up to grace_ms for in-flight requests, stops. */
void http_server_stop(struct http_server *s, int grace_ms);
/* Only the first half: stops accepting and waits up to grace_ms for the
 * requests in flight (parked ones included), leaving the daemon running so
 * that whoever parked requests can still hand them back (serve_close)
 * before http_server_stop. */
void http_server_quiesce(struct http_server *s, int grace_ms);
/* In-process dispatch of one request without sockets (tests, fuzzing).
 * Headers are "Name: value" strings. out gets status and the body. */
struct http_test_result {
  int status;
  struct buf body;
  char content_type[128];
  char allow[128];
  char headers[1024]; /* every reply header, "Name: value\n" each */
  bool truncated;     /* a streamed reply body failed part way */
};
int http_dispatch_test(struct router *r, struct app *app, const char *method, const char *url,
                       const char *const *headers, const char *body, size_t body_len,
                       uint64_t max_body, struct http_test_result *out);
/* The same with streaming knobs: a ROUTE_STREAM_BODY route gets the body in
 * pieces of `chunk` bytes (0: one piece), announced as Content-Length
 * (unless the headers carry "Transfer-Encoding: chunked"). */
struct http_test_opts {
  uint64_t max_body;
  uint64_t max_stream_body; /* 0: 5 GiB */
  size_t chunk;
};
int http_dispatch_test_opts(struct router *r, struct app *app, const char *method, const char *url,
                            const char *const *headers, const char *body, size_t body_len,
                            const struct http_test_opts *o, struct http_test_result *out);
/* The streamed upload limit when none is configured. */
#define HTTP_DEFAULT_MAX_STREAM_BODY (5ull << 30)

/* ---- route tables of the rooms ---------------------------------------- */
extern const struct route sys_routes[];
extern const size_t sys_routes_count;
extern const struct route auth_routes[];
extern const size_t auth_routes_count;
extern const struct route auth_org_routes[];
extern const size_t auth_org_routes_count;
extern const struct route track_routes[];
extern const size_t track_routes_count;
extern const struct route track_more_routes[];
extern const size_t track_more_routes_count;

extern const struct route track_artifact_routes[];
extern const size_t track_artifact_routes_count;
extern const struct route registry_routes[];
extern const size_t registry_routes_count;
extern const struct route registry_upload_routes[];
extern const size_t registry_upload_routes_count;
extern const struct route registry_webhook_routes[];
extern const size_t registry_webhook_routes_count;
extern const struct route registry_gov_routes[];
extern const size_t registry_gov_routes_count;
extern const struct route serve_routes[];
extern const size_t serve_routes_count;
/* Builds the cached OpenAPI text for the system routes; sys_fini frees it. */
int sys_init(struct router *r, struct err *e);
void sys_fini(void);
/* Registers every room's routes. */
int routes_register_all(struct router *r, struct err *e);
/* Metrics families of the HTTP layer (registered once). */
void http_metrics_init(void);

#endif
