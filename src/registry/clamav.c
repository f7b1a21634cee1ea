/* registry/clamav: malware scanning of uploaded model files — the scanner
 * table and its one implementation, a clamd client speaking INSTREAM over
 * a unix or TCP socket with every wait bounded by one deadline. */
#include "registry/registry.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- the scanner table ------------------------------------------------------------------- */

struct registry_av {
  const struct registry_av_ops *ops;
  void *self;
};

struct registry_av *registry_av_new(const struct registry_av_ops *ops, void *self) {
  if (!ops || ops->version != REGISTRY_AV_OPS_VERSION || !ops->scan_file) return NULL;
  struct registry_av *av = calloc(1, sizeof *av);
  if (!av) return NULL;
  av->ops = ops;
  av->self = self;
  return av;
}

void registry_av_free(struct registry_av *av) {
  if (!av) return;
  if (av->ops->free) av->ops->free(av->self);
  free(av);
}

const char *registry_av_name(const struct registry_av *av) { return av && av->ops->name ? av->ops->name : "scanner"; }

int registry_av_scan_file(struct registry_av *av, const char *path, struct registry_av_result *r, struct err *e) {
  memset(r, 0, sizeof *r);
  return av->ops->scan_file(av->self, path, r, e);
}

int registry_av_check(struct registry_av *av, char *engine, size_t n, struct err *e) {
  if (n) engine[0] = 0;
  if (!(av->ops->caps & REGISTRY_AV_CAP_CHECK) || !av->ops->check) return 0;
  return av->ops->check(av->self, engine, n, e);
}

/* ---- clamd replies ------------------------------------------------------------------------- */

static bool ends_with(const char *s, size_t n, const char *suffix) {
  size_t k = strlen(suffix);
  return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

enum registry_clamd_kind registry_clamd_reply_parse(const char *buf, size_t n, struct registry_clamd_reply *out) {
  out->kind = REGISTRY_CLAMD_MALFORMED;
  out->text[0] = 0;
  /* one terminator: NUL in z-mode, newline in n-mode */
  if (n && (buf[n - 1] == 0 || buf[n - 1] == '\n')) n--;
  if (n == 0 || n > REGISTRY_CLAMD_REPLY_MAX) return out->kind;
  /* the text lands in error messages and JSON: printable ASCII only */
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] > 0x7e) return out->kind;
  static const char stream[] = "stream: ";
  const size_t sl = sizeof stream - 1;
  if (n == sl + 2 && memcmp(buf, "stream: OK", n) == 0) {
    out->kind = REGISTRY_CLAMD_OK;
    return out->kind;
  }
  if (ends_with(buf, n, " FOUND")) {
    if (n < sl || memcmp(buf, stream, sl)) return out->kind;
    const char *sig = buf + sl;
    size_t k = n - sl - 6;
    if (k == 0 || k > REGISTRY_AV_SIG_MAX || sig[0] == ' ' || sig[k - 1] == ' ') return out->kind;
    memcpy(out->text, sig, k);
    out->text[k] = 0;
    out->kind = REGISTRY_CLAMD_FOUND;
    return out->kind;
  }
  if (ends_with(buf, n, " ERROR")) {
    const char *why = buf;
    size_t k = n - 6;
    if (k >= sl && memcmp(why, stream, sl) == 0) {
      why += sl;
      k -= sl;
    }
    if (k == 0) return out->kind;
    memcpy(out->text, why, k);
    out->text[k] = 0;
    /* clamd's wording when a stream passes StreamMaxLength */
    out->kind = strstr(out->text, "size limit exceeded") ? REGISTRY_CLAMD_SIZE_LIMIT : REGISTRY_CLAMD_ERROR;
    return out->kind;
  }
  return out->kind;
}

/* ---- bounded socket I/O ------------------------------------------------------------------- */

static int wait_fd(int fd, short ev, int64_t deadline_us, const char *what, struct err *e) {
  for (;;) {
    int64_t left = deadline_us - time_mono_us();
    if (left <= 0) return err_set(e, ERR_UNAVAILABLE, "clamd timed out (%s)", what);
    struct pollfd p = {.fd = fd, .events = ev};
    int r = poll(&p, 1, (int)((left + 999) / 1000));
    if (r > 0) return 0;
    if (r < 0 && errno != EINTR) return err_set(e, ERR_UNAVAILABLE, "clamd: poll: %s", strerror(errno));
  }
}

static int send_all(int sock, const void *p, size_t n, int64_t deadline_us, struct err *e) {
  const char *q = p;
  while (n) {
    ssize_t w = send(sock, q, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      q += w;
      n -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int rc = wait_fd(sock, POLLOUT, deadline_us, "sending", e);
      if (rc) return rc;
      continue;
    }
    return err_set(e, ERR_UNAVAILABLE, "clamd: send: %s", w < 0 ? strerror(errno) : "connection closed");
  }
  return 0;
}

int registry_clamd_instream(int sock, int fd, size_t chunk, int64_t deadline_us, struct err *e) {
  if (chunk == 0 || chunk > REGISTRY_CLAMD_MAX_CHUNK) chunk = REGISTRY_CLAMD_DEFAULT_CHUNK;
  uint8_t *buf = malloc(4 + chunk);
  if (!buf) return err_set(e, ERR_NO_MEMORY, "out of memory");
  int rc = 0;
  for (;;) {
    /* fill the chunk (a short read is not the end) */
    size_t got = 0;
    while (got < chunk) {
      ssize_t r = read(fd, buf + 4 + got, chunk - got);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        rc = err_set(e, ERR_IO, "cannot read the model file for the malware scan: %s", strerror(errno));
        goto done;
      }
      if (r == 0) break;
      got += (size_t)r;
    }
    buf[0] = (uint8_t)(got >> 24);
    buf[1] = (uint8_t)(got >> 16);
    buf[2] = (uint8_t)(got >> 8);
    buf[3] = (uint8_t)got;
    if ((rc = send_all(sock, buf, 4 + got, deadline_us, e))) goto done;
    if (got == 0) break; /* that was the terminator */
  }
done:
  free(buf);
  return rc;
}

/* ---- clamd: address, connection, commands ----------------------------------------------------- */

struct clamd {
  bool unix_sock;
  char path[sizeof ((struct sockaddr_un *)0)->sun_path];
  char host[256], port[8];
  int64_t timeout_ms;
  size_t chunk;
};

static int parse_address(struct clamd *c, const char *a, struct err *e) {
  if (!a || !*a) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "--clamd needs an address: unix:/path or tcp:HOST:PORT");
  if (str_has_prefix(a, "unix:")) {
    const char *p = a + 5;
    if (p[0] != '/') return err_set(e, ERR_INVALID_PARAMETER_VALUE, "--clamd unix: needs an absolute socket path, got '%.200s'", p);
    if (str_copy(c->path, sizeof c->path, p) >= sizeof c->path)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "--clamd socket path is longer than %zu bytes", sizeof c->path - 1);
    c->unix_sock = true;
    return 0;
  }
  if (str_has_prefix(a, "tcp:")) {
    const char *h = a + 4, *colon, *hend;
    if (h[0] == '[') {
      hend = strchr(h, ']');
      if (!hend || hend[1] != ':') goto bad;
      colon = hend + 1;
      h++;
    } else {
      colon = strrchr(h, ':');
      if (!colon) goto bad;
      hend = colon;
    }
    size_t hl = (size_t)(hend - h);
    int64_t port;
    if (hl == 0 || hl >= sizeof c->host || (memchr(h, ':', hl) && a[4] != '[') || str_to_i64(colon + 1, &port) ||
        port < 1 || port > 65535)
      goto bad;
    memcpy(c->host, h, hl);
    c->host[hl] = 0;
    snprintf(c->port, sizeof c->port, "%d", (int)port);
    return 0;
  }
bad:
  return err_set(e, ERR_INVALID_PARAMETER_VALUE, "--clamd must be unix:/path or tcp:HOST:PORT, got '%.200s'", a);
}

/* A non-blocking socket connected before the deadline, or -1. */
static int connect_to(const struct clamd *c, int64_t deadline_us, struct err *e) {
  int fd = -1;
  if (c->unix_sock) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, c->path, strlen(c->path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return err_set(e, ERR_UNAVAILABLE, "clamd: socket: %s", strerror(errno)), -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) return fd;
    if (errno != EINPROGRESS && errno != EAGAIN) {
      err_set(e, ERR_UNAVAILABLE, "clamd: connect: %s", strerror(errno));
      close(fd);
      return -1;
    }
  } else {
    /* getaddrinfo has no timeout of its own: give an address or a name in /etc/hosts */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(c->host, c->port, &hints, &res);
    if (g) return err_set(e, ERR_UNAVAILABLE, "clamd: cannot resolve %.200s: %s", c->host, gai_strerror(g)), -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
      fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
      if (fd < 0) continue;
      if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) break;
      close(fd);
      fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) return err_set(e, ERR_UNAVAILABLE, "clamd: connect: %s", strerror(errno)), -1;
  }
  if (wait_fd(fd, POLLOUT, deadline_us, "connecting", e)) {
    close(fd);
    return -1;
  }
  int soerr = 0;
  socklen_t sl = sizeof soerr;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr) {
    err_set(e, ERR_UNAVAILABLE, "clamd: connect: %s", strerror(soerr ? soerr : errno));
    close(fd);
    return -1;
  }
  return fd;
}

/* One NUL-terminated reply, at most REGISTRY_CLAMD_REPLY_MAX bytes; *n
 * excludes the NUL. */
static int read_reply(int fd, char *buf, size_t *n, int64_t deadline_us, struct err *e) {
  size_t got = 0;
  for (;;) {
    if (got == REGISTRY_CLAMD_REPLY_MAX + 1)
      return err_set(e, ERR_UNAVAILABLE, "clamd: reply longer than %d bytes", REGISTRY_CLAMD_REPLY_MAX);
    ssize_t r = recv(fd, buf + got, REGISTRY_CLAMD_REPLY_MAX + 1 - got, MSG_DONTWAIT);
    if (r > 0) {
      char *z = memchr(buf + got, 0, (size_t)r);
      got += (size_t)r;
      if (z) {
        *n = (size_t)(z - buf);
        return 0;
      }
      continue;
    }
    if (r == 0) {
      if (!got) return err_set(e, ERR_UNAVAILABLE, "clamd closed the connection without a reply");
      *n = got; /* n-mode style, or cut: the parser judges */
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return err_set(e, ERR_UNAVAILABLE, "clamd: recv: %s", strerror(errno));
    int rc = wait_fd(fd, POLLIN, deadline_us, "waiting for the reply", e);
    if (rc) return rc;
  }
}

/* A short command ("zPING", "zVERSION") and its reply. */
static int command(const struct clamd *c, const char *cmd, char *reply, size_t *n, struct err *e) {
  int64_t deadline = time_mono_us() + c->timeout_ms * 1000;
  int fd = connect_to(c, deadline, e);
  if (fd < 0) return -(int)e->code;
  int rc = send_all(fd, cmd, strlen(cmd) + 1, deadline, e);
  if (!rc) rc = read_reply(fd, reply, n, deadline, e);
  close(fd);
  return rc;
}

/* "ClamAV 1.4.6/27000/Mon ..." as text fit for a report. */
static int engine_version(const struct clamd *c, char *out, size_t cap, struct err *e) {
  char buf[REGISTRY_CLAMD_REPLY_MAX + 1];
  size_t n = 0;
  int rc = command(c, "zVERSION", buf, &n, e);
  if (rc) return rc;
  if (n && buf[n - 1] == '\n') n--;
  bool ok = n > 0;
  for (size_t i = 0; i < n; i++) ok &= (unsigned char)buf[i] >= 0x20 && (unsigned char)buf[i] <= 0x7e;
  if (!ok || !str_has_prefix(buf, "ClamAV ")) return err_set(e, ERR_UNAVAILABLE, "clamd answered VERSION with nonsense");
  buf[n] = 0;
  str_copy(out, cap, buf);
  return 0;
}

static int clamd_check(void *self, char *engine, size_t n, struct err *e) {
  const struct clamd *c = self;
  char buf[REGISTRY_CLAMD_REPLY_MAX + 1];
  size_t len = 0;
  int rc = command(c, "zPING", buf, &len, e);
  if (rc) return rc;
  if (len != 4 || memcmp(buf, "PONG", 4)) return err_set(e, ERR_UNAVAILABLE, "clamd did not answer PING with PONG");
  return engine_version(c, engine, n, e);
}

static int clamd_scan_file(void *self, const char *path, struct registry_av_result *r, struct err *e) {
  const struct clamd *c = self;
  int64_t t0 = time_mono_us();
  /* the version first: a report names the engine (and its database) that judged */
  int rc = engine_version(c, r->engine, sizeof r->engine, e);
  if (rc) return rc;
  int file = open(path, O_RDONLY | O_CLOEXEC);
  if (file < 0) return err_set(e, ERR_IO, "cannot open the model file for the malware scan: %s", strerror(errno));
  int64_t deadline = t0 + c->timeout_ms * 1000;
  int sock = connect_to(c, deadline, e);
  if (sock < 0) {
    close(file);
    return -(int)e->code;
  }
  static const char cmd[] = "zINSTREAM";
  rc = send_all(sock, cmd, sizeof cmd, deadline, e);
  struct err se = {0};
  int src = rc ? rc : registry_clamd_instream(sock, file, c->chunk, deadline, &se);
  close(file);
  /* past StreamMaxLength clamd stops reading, answers and closes, so a failed
   * send still has a reply worth reading */
  char buf[REGISTRY_CLAMD_REPLY_MAX + 1];
  size_t n = 0;
  struct err re = {0};
  if (rc || src == -ERR_IO || src == -ERR_NO_MEMORY) {
    close(sock);
    if (src && !rc) *e = se;
    return src;
  }
  int rrc = read_reply(sock, buf, &n, deadline, &re);
  close(sock);
  if (rrc) {
    *e = src ? se : re;
    return src ? src : rrc;
  }
  struct registry_clamd_reply rep;
  r->duration_ms = (time_mono_us() - t0) / 1000;
  switch (registry_clamd_reply_parse(buf, n, &rep)) {
  case REGISTRY_CLAMD_OK:
    if (src) break; /* "OK" for a stream that never ended is not a verdict */
    r->found = false;
    return 0;
  case REGISTRY_CLAMD_FOUND:
    /* a match before the whole file was sent is still a match */
    r->found = true;
    str_copy(r->signature, sizeof r->signature, rep.text);
    return 0;
  case REGISTRY_CLAMD_SIZE_LIMIT:
    return err_set(e, ERR_PAYLOAD_TOO_LARGE,
                   "the model file is larger than clamd accepts for a scan (its StreamMaxLength): %.200s", rep.text);
  case REGISTRY_CLAMD_ERROR: return err_set(e, ERR_UNAVAILABLE, "clamd could not scan the file: %.300s", rep.text);
  case REGISTRY_CLAMD_MALFORMED: return err_set(e, ERR_UNAVAILABLE, "clamd answered something that is not a scan result");
  }
  if (src) {
    *e = se;
    return src;
  }
  return err_set(e, ERR_UNAVAILABLE, "clamd answered before the file was sent");
}

static void clamd_free(void *self) { free(self); }

static const struct registry_av_ops clamd_ops = {
    .version = REGISTRY_AV_OPS_VERSION,
    .name = "clamd",
    .caps = REGISTRY_AV_CAP_CHECK,
    .scan_file = clamd_scan_file,
    .check = clamd_check,
    .free = clamd_free,
};

int registry_clamd_new(struct registry_av **out, const struct registry_clamd_opts *o, struct err *e) {
  *out = NULL;
  struct clamd *c = calloc(1, sizeof *c);
  if (!c) return err_set(e, ERR_NO_MEMORY, "out of memory");
  int rc = parse_address(c, o->address, e);
  if (rc) {
    free(c);
    return rc;
  }
  c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : REGISTRY_CLAMD_DEFAULT_TIMEOUT_MS;
  c->chunk = o->chunk_size > 0 && o->chunk_size <= REGISTRY_CLAMD_MAX_CHUNK ? o->chunk_size : REGISTRY_CLAMD_DEFAULT_CHUNK;
  if (!(*out = registry_av_new(&clamd_ops, c))) {
    free(c);
    return err_set(e, ERR_NO_MEMORY, "out of memory");
  }
  return 0;
}
