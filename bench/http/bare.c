/* The bare limit for bench/http: a libmicrohttpd server with the same daemon
 * configuration as `kiln server` and no work behind the routes, so the bench
 * can say how much of MHD's own throughput kiln keeps. */

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <microhttpd.h>

#if MHD_VERSION < 0x00097002
typedef int MHD_Result_t;
#else
typedef enum MHD_Result MHD_Result_t;
#endif

/* Bodies past this are refused; the limit only has to be generous enough that
 * no bench payload ever meets it. */
#define BODY_MAX ((size_t)64 << 20)

static const char HEALTH[] = "{\"status\":\"ok\"}";
static const char NOT_FOUND[] = "{\"error_code\":\"NOT_FOUND\",\"message\":\"no such route\"}";
static const char TOO_LARGE[] =
    "{\"error_code\":\"PAYLOAD_TOO_LARGE\",\"message\":\"body too large\"}";

struct body {
  char *buf;
  size_t len, cap;
  int too_large;
};

/* Per-request state of routes that keep none; never freed. */
static struct body no_body;

static struct MHD_Response *static_response(const char *s, size_t len) {
#if MHD_VERSION >= 0x00097701
  return MHD_create_response_from_buffer_static(len, s);
#else
  return MHD_create_response_from_buffer(len, (void *)s, MHD_RESPMEM_PERSISTENT);
#endif
}

static MHD_Result_t reply(struct MHD_Connection *c, unsigned status, struct MHD_Response *r) {
  MHD_Result_t ret;
  if (r == NULL) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static MHD_Result_t reply_static(struct MHD_Connection *c, unsigned status, const char *s,
                                 size_t len) {
  return reply(c, status, static_response(s, len));
}

static int body_append(struct body *b, const char *data, size_t n) {
  if (b->len + n > BODY_MAX) return -1;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    char *p;
    while (cap < b->len + n) cap *= 2;
    if (cap > BODY_MAX) cap = BODY_MAX;
    p = realloc(b->buf, cap);
    if (p == NULL) return -1;
    b->buf = p;
    b->cap = cap;
  }
  memcpy(b->buf + b->len, data, n);
  b->len += n;
  return 0;
}

static MHD_Result_t echo(struct MHD_Connection *c, void **con_cls, const char *upload_data,
                         size_t *upload_data_size) {
  struct body *b = *con_cls;
  if (*upload_data_size != 0) {
    if (!b->too_large && body_append(b, upload_data, *upload_data_size) != 0) b->too_large = 1;
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (b->too_large)
    return reply_static(c, 413 /* Content Too Large */, TOO_LARGE, sizeof TOO_LARGE - 1);
  if (b->len == 0) return reply_static(c, MHD_HTTP_OK, "", 0);
  {
    /* The response takes the buffer; completed() must not free it again. */
    struct MHD_Response *r =
        MHD_create_response_from_buffer_with_free_callback(b->len, b->buf, free);
    if (r == NULL) return MHD_NO;
    b->buf = NULL;
    b->len = b->cap = 0;
    return reply(c, MHD_HTTP_OK, r);
  }
}

static MHD_Result_t handler(void *cls, struct MHD_Connection *c, const char *url,
                            const char *method, const char *version, const char *upload_data,
                            size_t *upload_data_size, void **con_cls) {
  int is_echo = strcmp(url, "/api/v1/echo") == 0 && strcmp(method, "POST") == 0;
  (void)cls;
  (void)version;
  /* The first call only announces the headers. MHD 0.9.75 answers a response
   * queued here with "Connection: close", which would turn every bench request
   * into a new TCP connection, so every route answers from the second call. */
  if (*con_cls == NULL) {
    if (is_echo) {
      *con_cls = calloc(1, sizeof(struct body));
      return *con_cls != NULL ? MHD_YES : MHD_NO;
    }
    *con_cls = &no_body;
    return MHD_YES;
  }
  if (is_echo) return echo(c, con_cls, upload_data, upload_data_size);
  if (strcmp(url, "/healthz") == 0 && strcmp(method, "GET") == 0)
    return reply_static(c, MHD_HTTP_OK, HEALTH, sizeof HEALTH - 1);
  /* Drain any body of an unknown route before answering. */
  if (*upload_data_size != 0) {
    *upload_data_size = 0;
    return MHD_YES;
  }
  return reply_static(c, MHD_HTTP_NOT_FOUND, NOT_FOUND, sizeof NOT_FOUND - 1);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
  struct body *b = *con_cls;
  (void)cls;
  (void)c;
  (void)toe;
  if (b != NULL && b != &no_body) {
    free(b->buf);
    free(b);
    *con_cls = NULL;
  }
}

/* Small request/response pairs must not wait on Nagle + delayed ACK. */
static void notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe) {
  const union MHD_ConnectionInfo *ci;
  int one = 1;
  (void)cls;
  (void)socket_context;
  if (toe != MHD_CONNECTION_NOTIFY_STARTED) return;
  ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (ci != NULL) (void)setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int main(int argc, char **argv) {
  struct sockaddr_in addr;
  struct MHD_Daemon *d;
  const union MHD_DaemonInfo *info;
  sigset_t set;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned port = 0;
  int sig;
  char *end;

  if (argc > 2) {
    fprintf(stderr, "usage: %s [PORT]   (0 = any free port)\n", argv[0]);
    return 2;
  }
  if (argc == 2) {
    unsigned long p;
    errno = 0;
    p = strtoul(argv[1], &end, 10);
    if (errno != 0 || *end != '\0' || end == argv[1] || p > 65535) {
      fprintf(stderr, "bare: bad port '%s'\n", argv[1]);
      return 2;
    }
    port = (unsigned)p;
  }
  if (ncpu < 1) ncpu = 1;

  /* Block the stop signals before MHD starts its threads so that they inherit
   * the mask and only sigwait() below ever sees them. */
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  /* Keep in step with http_server_start() in src/http/server.c: the limit is
   * only a limit if MHD runs exactly as it does inside kiln. */
  d = MHD_start_daemon(
      MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO,
      (uint16_t)port, NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
      MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)ncpu, MHD_OPTION_NOTIFY_CONNECTION,
      notify_connection, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
      MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_CONNECTION_LIMIT, 4096u,
      MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
  if (d == NULL) {
    fprintf(stderr, "bare: cannot start on 127.0.0.1:%u\n", port);
    return 1;
  }
  info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  if (info != NULL && info->port != 0) port = info->port;
  printf("listening on http://127.0.0.1:%u\n", port);
  fflush(stdout);

  do {
    if (sigwait(&set, &sig) != 0) break;
  } while (sig != SIGTERM && sig != SIGINT);

  MHD_stop_daemon(d);
  return 0;
}
