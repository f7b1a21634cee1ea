/* bench/serving/stclient: the overhead probe of bench/serving — one
 * keep-alive connection posting the same body N times, timing every call
 * and collecting kiln's Server-Timing header ("queue;dur=<ms>,
 * compute;dur=<ms>, total;dur=<ms>"), so the server's own time around the
 * backend call can be told apart from the network and the client.
 *
 *   stclient PORT PATH BODY_FILE N [WARMUP]
 *
 * BENCH_AUTH_HEADER, when set, is sent as Authorization. Prints `name value`
 * lines: requests, errors, client p50/p99 (µs), and when the server sent
 * Server-Timing: timed (answers that carried it) and the medians (p50) and
 * p99 of queue, compute, total and total - compute (µs). Any non-2xx answer
 * counts in errors; its first bodies go to stderr. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CALLS 10000000L
#define MAX_BODY (64L << 20)

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("stclient: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* A whole decimal number in [lo, hi], or die (the house bans atoi: no error, no bound). */
static long num(const char *s, long lo, long hi, const char *what) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (!*s || *end || errno || v < lo || v > hi) die("%s must be a whole number in [%ld, %ld], not '%s'", what, lo, hi, s);
  return v;
}

/* ---- the connection: a read buffer that grows as needed ----------------- */
static int g_fd;
static char *g_in;
static size_t g_n, g_cap;

static void fill(size_t want) {
  while (g_n < want) {
    if (want + 1 > MAX_BODY) die("response larger than %ld bytes", MAX_BODY);
    if (g_cap < want + 65536) {
      size_t cap = g_cap ? g_cap : 65536;
      while (cap < want + 65536) cap *= 2;
      char *p = realloc(g_in, cap);
      if (!p) die("out of memory");
      g_in = p;
      g_cap = cap;
    }
    ssize_t r = read(g_fd, g_in + g_n, g_cap - g_n - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) die("connection closed by the server (%s)", r < 0 ? strerror(errno) : "EOF");
    g_n += (size_t)r;
    g_in[g_n] = 0;
  }
}

static void consume(size_t n) {
  memmove(g_in, g_in + n, g_n - n);
  g_n -= n;
  g_in[g_n] = 0;
}

static void write_all(const char *p, size_t n) {
  while (n) {
    ssize_t w = write(g_fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) die("write: %s", strerror(errno));
    p += w;
    n -= (size_t)w;
  }
}

/* The value of "<name>;dur=" in a Server-Timing header line, in µs; -1 if absent. */
static double timing(const char *line, const char *eol, const char *name) {
  size_t nl = strlen(name);
  for (const char *p = line; p && p < eol; p = strchr(p + 1, ',')) {
    const char *q = p;
    while (q < eol && (*q == ',' || *q == ' ' || *q == ':')) q++;
    if ((size_t)(eol - q) > nl + 5 && !strncasecmp(q, name, nl) && !strncasecmp(q + nl, ";dur=", 5)) {
      char *end;
      double v = strtod(q + nl + 5, &end);
      if (end == q + nl + 5 || !isfinite(v) || v < 0) return -1;
      return v * 1e3;
    }
  }
  return -1;
}

struct answer {
  int status;
  double queue_us, compute_us, total_us; /* -1 when not sent */
  const char *body;                      /* valid until the next call */
};

/* Reads one response (Content-Length framed: kiln and uvicorn both send it). */
static void read_response(struct answer *a) {
  char *e;
  for (;;) {
    e = g_n ? memmem(g_in, g_n, "\r\n\r\n", 4) : NULL;
    if (e) break;
    fill(g_n + 1);
  }
  size_t he = (size_t)(e - g_in) + 4;
  if (he < 13 || strncmp(g_in, "HTTP/1.", 7)) die("not an HTTP response: %.40s", g_in);
  a->status = (int)strtol(g_in + 9, NULL, 10);
  a->queue_us = a->compute_us = a->total_us = -1;
  long clen = -1;
  for (char *l = strstr(g_in, "\r\n"); l && l + 2 < g_in + he; l = strstr(l + 2, "\r\n")) {
    char *h = l + 2, *eol = strstr(h, "\r\n");
    if (!strncasecmp(h, "content-length:", 15)) {
      clen = strtol(h + 15, NULL, 10);
    } else if (!strncasecmp(h, "transfer-encoding:", 18)) {
      die("chunked responses are not expected");
    } else if (!strncasecmp(h, "server-timing:", 14)) {
      a->queue_us = timing(h + 14, eol, "queue");
      a->compute_us = timing(h + 14, eol, "compute");
      a->total_us = timing(h + 14, eol, "total");
    }
  }
  if (clen < 0 || clen > MAX_BODY) die("response without a usable Content-Length");
  consume(he);
  fill((size_t)clen);
  /* The body is kept in place behind a NUL until the next call consumes it. */
  static char *body;
  static size_t bcap;
  if (bcap < (size_t)clen + 1) {
    char *p = realloc(body, (size_t)clen + 1);
    if (!p) die("out of memory");
    body = p;
    bcap = (size_t)clen + 1;
  }
  memcpy(body, g_in, (size_t)clen);
  body[clen] = 0;
  a->body = body;
  consume((size_t)clen);
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
/* Nearest rank of sorted v. */
static double pct(const double *v, long n, double p) {
  long i = (long)ceil(p / 100.0 * (double)n) - 1;
  return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}
static void report(const char *name, double *v, long n) {
  if (n == 0) return;
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  printf("%s_p50_us %.1f\n%s_p99_us %.1f\n", name, pct(v, n, 50), name, pct(v, n, 99));
}

int main(int argc, char **argv) {
  if (argc < 5 || argc > 6) die("usage: stclient PORT PATH BODY_FILE N [WARMUP]");
  long port = num(argv[1], 1, 65535, "PORT");
  const char *path = argv[2];
  long n = num(argv[4], 1, MAX_CALLS, "N");
  long warm = argc > 5 ? num(argv[5], 0, MAX_CALLS, "WARMUP") : 100;
  if (strpbrk(path, " \r\n") || path[0] != '/') die("PATH must start with / and hold no spaces");
  const char *auth = getenv("BENCH_AUTH_HEADER");
  if (auth && strpbrk(auth, "\r\n")) die("BENCH_AUTH_HEADER holds a line break");

  FILE *f = fopen(argv[3], "rb");
  if (!f) die("%s: %s", argv[3], strerror(errno));
  char *body = malloc(MAX_BODY);
  if (!body) die("out of memory");
  size_t blen = fread(body, 1, MAX_BODY, f);
  if (ferror(f) || !feof(f)) die("%s: unreadable or larger than %ld bytes", argv[3], MAX_BODY);
  fclose(f);

  /* The request is built once: every call sends the same bytes. */
  size_t cap = blen + 1024 + (auth ? strlen(auth) : 0);
  char *req = malloc(cap);
  if (!req) die("out of memory");
  int hl = snprintf(req, cap,
                    "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%sContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\n\r\n",
                    path, auth && *auth ? "Authorization: " : "", auth && *auth ? auth : "",
                    auth && *auth ? "\r\n" : "", blen);
  if (hl < 0 || (size_t)hl + blen > cap) die("request too large");
  memcpy(req + hl, body, blen);
  size_t rlen = (size_t)hl + blen;
  free(body);

  g_fd = socket(AF_INET, SOCK_STREAM, 0);
  if (g_fd < 0) die("socket: %s", strerror(errno));
  int one = 1;
  setsockopt(g_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(g_fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect: %s", strerror(errno));

  double *client = calloc((size_t)n, sizeof(double)), *queue = calloc((size_t)n, sizeof(double)),
         *compute = calloc((size_t)n, sizeof(double)), *total = calloc((size_t)n, sizeof(double)),
         *over = calloc((size_t)n, sizeof(double));
  if (!client || !queue || !compute || !total || !over) die("out of memory");
  long errors = 0, timed = 0, shown = 0;
  for (long i = -warm; i < n; i++) {
    struct answer a;
    double t0 = now_us();
    write_all(req, rlen);
    read_response(&a);
    double dt = now_us() - t0;
    if (i < 0) continue;
    client[i] = dt;
    if (a.status < 200 || a.status > 299) {
      errors++;
      if (shown++ < 3) fprintf(stderr, "stclient: %s answered %d: %.300s\n", path, a.status, a.body);
      continue;
    }
    if (a.total_us >= 0 && a.compute_us >= 0) {
      queue[timed] = a.queue_us >= 0 ? a.queue_us : 0;
      compute[timed] = a.compute_us;
      total[timed] = a.total_us;
      over[timed] = a.total_us - a.compute_us;
      timed++;
    }
  }
  close(g_fd);
  printf("requests %ld\nerrors %ld\ntimed %ld\n", n, errors, timed);
  report("client", client, n);
  report("queue", queue, timed);
  report("compute", compute, timed);
  report("total", total, timed);
  report("overhead", over, timed);
  return 0;
}
