/* bench/tracking/tclient: the load side of bench/tracking — a small
 * HTTP/1.1 keep-alive client (plain sockets, one thread per connection)
 * that drives kiln's MLflow tracking API with exact call counts and times
 * every call. Python's clients cost more per call than the server does, so
 * they would measure themselves. Prints `name value` lines for run.sh.
 *
 *   tclient PORT AUTH ingest RUN_ID[,RUN_ID...] CALLS METRICS KEYS CONNS STEP0
 *   tclient PORT AUTH latency RUN_ID N
 *   tclient PORT AUTH get PATH ROUNDS          (GET; median, min, bytes)
 *   tclient PORT AUTH post PATH BODY ROUNDS    (POST; same)
 *   tclient PORT AUTH runs EXPERIMENT_ID NRUNS CONNS   (create + log-batch each)
 *   tclient PORT AUTH create-run EXPERIMENT_ID         (prints the run id)
 *
 * AUTH is sent as `Authorization: Bearer AUTH`. Any non-2xx answer is
 * counted in `errors` and its first body printed to stderr. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int g_port;
static const char *g_auth;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static long g_errors;
static int g_errors_shown;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A whole decimal number, or -1 (the house bans atoi: no error, no bound). */
static long num(const char *s) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  return (!*s || *end || errno) ? -1 : v;
}

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("tclient: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

/* ---- growable buffer ---------------------------------------------------- */
struct sb {
  char *p;
  size_t n, cap;
};
static void sb_need(struct sb *b, size_t more) {
  if (b->n + more + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->n + more + 1) cap *= 2;
  b->p = realloc(b->p, cap);
  if (!b->p) die("out of memory");
  b->cap = cap;
}
static void sb_add(struct sb *b, const void *p, size_t n) {
  sb_need(b, n);
  memcpy(b->p + b->n, p, n);
  b->n += n;
  b->p[b->n] = 0;
}
static void sb_printf(struct sb *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  sb_need(b, (size_t)n);
  vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  b->n += (size_t)n;
}

/* ---- one keep-alive connection ----------------------------------------- */
struct conn {
  int fd;
  struct sb in;   /* bytes read, not yet consumed */
  struct sb body; /* the last response's body */
  int status;
};

static void conn_open(struct conn *c) {
  memset(c, 0, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (c->fd < 0) die("socket: %s", strerror(errno));
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect: %s", strerror(errno));
}

static void conn_close(struct conn *c) {
  close(c->fd);
  free(c->in.p);
  free(c->body.p);
}

static void write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) die("write: %s", strerror(errno));
    p += w;
    n -= (size_t)w;
  }
}

/* Reads until c->in holds at least `want` bytes. */
static void fill(struct conn *c, size_t want) {
  while (c->in.n < want) {
    sb_need(&c->in, 65536);
    ssize_t r = read(c->fd, c->in.p + c->in.n, c->in.cap - c->in.n - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) die("connection closed by the server (%s)", r < 0 ? strerror(errno) : "EOF");
    c->in.n += (size_t)r;
    c->in.p[c->in.n] = 0;
  }
}

static void consume(struct conn *c, size_t n) {
  memmove(c->in.p, c->in.p + n, c->in.n - n);
  c->in.n -= n;
  c->in.p[c->in.n] = 0;
}

/* Index just past "\r\n\r\n", reading as needed. */
static size_t header_end(struct conn *c) {
  for (;;) {
    char *e = c->in.n ? memmem(c->in.p, c->in.n, "\r\n\r\n", 4) : NULL;
    if (e) return (size_t)(e - c->in.p) + 4;
    fill(c, c->in.n + 1);
  }
}

static void read_response(struct conn *c) {
  size_t he = header_end(c);
  c->status = (int)strtol(c->in.p + 9, NULL, 10); /* "HTTP/1.1 200" */
  long clen = -1;
  int chunked = 0;
  for (char *l = strstr(c->in.p, "\r\n"); l && l < c->in.p + he; l = strstr(l + 2, "\r\n")) {
    if (!strncasecmp(l + 2, "content-length:", 15)) clen = strtol(l + 17, NULL, 10);
    if (!strncasecmp(l + 2, "transfer-encoding:", 18) && strcasestr(l + 2, "chunked") &&
        strcasestr(l + 2, "chunked") < strstr(l + 2, "\r\n"))
      chunked = 1;
  }
  consume(c, he);
  c->body.n = 0;
  sb_need(&c->body, 0);
  c->body.p[0] = 0;
  if (chunked) {
    for (;;) {
      char *e;
      while (!(e = c->in.n ? memmem(c->in.p, c->in.n, "\r\n", 2) : NULL)) fill(c, c->in.n + 1);
      size_t sz = strtoul(c->in.p, NULL, 16);
      size_t hl = (size_t)(e - c->in.p) + 2;
      fill(c, hl + sz + 2);
      sb_add(&c->body, c->in.p + hl, sz);
      consume(c, hl + sz + 2);
      if (sz == 0) break; /* no trailers expected */
    }
  } else if (clen >= 0) {
    fill(c, (size_t)clen);
    sb_add(&c->body, c->in.p, (size_t)clen);
    consume(c, (size_t)clen);
  } else {
    die("response without a length");
  }
}

/* One request; returns its latency in seconds. */
static double call(struct conn *c, const char *method, const char *path, const char *body, size_t blen) {
  struct sb req = {0};
  sb_printf(&req,
            "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
            method, path, g_auth, blen);
  if (blen) sb_add(&req, body, blen);
  double t0 = now_s();
  write_all(c->fd, req.p, req.n);
  read_response(c);
  double dt = now_s() - t0;
  free(req.p);
  if (c->status < 200 || c->status > 299) {
    pthread_mutex_lock(&g_mu);
    g_errors++;
    if (g_errors_shown++ < 3)
      fprintf(stderr, "tclient: %s %s answered %d: %.300s\n", method, path, c->status, c->body.p);
    pthread_mutex_unlock(&g_mu);
  }
  return dt;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static double pct(double *v, int n, double p) { /* v sorted; nearest rank */
  int i = (int)ceil(p / 100.0 * n) - 1;
  return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* The string value of "field" in a JSON text (first occurrence). */
static int json_str_field(const char *js, const char *field, char *out, size_t cap) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":", field);
  const char *p = strstr(js, pat);
  if (!p) return -1;
  p += strlen(pat);
  while (*p == ' ') p++;
  if (*p != '"') return -1;
  p++;
  size_t n = 0;
  while (*p && *p != '"' && n + 1 < cap) out[n++] = *p++;
  out[n] = 0;
  return 0;
}

/* ---- ingest -------------------------------------------------------------- */

/* A log-batch body of `metrics` points: keys k0..k{keys-1}, each with
 * metrics/keys consecutive steps starting at step0 + call * (metrics/keys). */
static void batch_body(struct sb *b, const char *run_id, int call_no, int metrics, int keys, long step0,
                       int64_t ts) {
  b->n = 0;
  sb_printf(b, "{\"run_id\":\"%s\",\"metrics\":[", run_id);
  int per = metrics / keys;
  for (int i = 0; i < metrics; i++) {
    int k = i / per;
    long step = step0 + (long)call_no * per + i % per;
    double v = 1.0 / (1.0 + (double)step * 0.001) + (double)k * 0.01;
    char key[16];
    if (keys == 1) snprintf(key, sizeof key, "loss");
    else snprintf(key, sizeof key, "m%d", k);
    sb_printf(b, "%s{\"key\":\"%s\",\"value\":%.6f,\"timestamp\":%lld,\"step\":%ld}", i ? "," : "", key,
              v, (long long)ts + step, step);
  }
  sb_add(b, "]}", 2);
}

struct ingest_arg {
  const char *run_id;
  int first_call, ncalls, metrics, keys;
  long step0;
  int64_t ts;
  struct sb *bodies; /* built before the clock starts: the server is measured, not the client */
};

static pthread_barrier_t g_start;

static void *ingest_thread(void *p) {
  struct ingest_arg *a = p;
  struct conn c;
  conn_open(&c);
  pthread_barrier_wait(&g_start);
  for (int i = 0; i < a->ncalls; i++) call(&c, "POST", "/api/2.0/mlflow/runs/log-batch", a->bodies[i].p, a->bodies[i].n);
  conn_close(&c);
  return NULL;
}

static void cmd_ingest(char **av) {
  char *ids = strdup(av[0]);
  int calls = num(av[1]), metrics = num(av[2]), keys = num(av[3]), conns = num(av[4]);
  long step0 = num(av[5]);
  if (calls < 1 || metrics < 1 || keys < 1 || metrics % keys || conns < 1) die("bad ingest arguments");
  const char *run[64];
  int nrun = 0;
  for (char *s = strtok(ids, ","); s && nrun < 64; s = strtok(NULL, ",")) run[nrun++] = s;
  pthread_t th[64];
  struct ingest_arg arg[64];
  if (conns > 64) conns = 64;
  int64_t ts = (int64_t)time(NULL) * 1000;
  int done = 0;
  for (int t = 0; t < conns; t++) {
    int n = calls / conns + (t < calls % conns);
    /* one run per connection when given; calls numbered per run so steps never repeat */
    arg[t] = (struct ingest_arg){run[t % nrun], nrun > 1 ? 0 : done, n, metrics, keys, step0, ts, NULL};
    arg[t].bodies = calloc((size_t)n + 1, sizeof *arg[t].bodies);
    for (int i = 0; i < n; i++)
      batch_body(&arg[t].bodies[i], arg[t].run_id, arg[t].first_call + i, metrics, keys, step0, ts);
    done += n;
  }
  pthread_barrier_init(&g_start, NULL, (unsigned)conns + 1);
  for (int t = 0; t < conns; t++) pthread_create(&th[t], NULL, ingest_thread, &arg[t]);
  pthread_barrier_wait(&g_start); /* every connection open */
  double t0 = now_s();
  for (int t = 0; t < conns; t++) pthread_join(th[t], NULL);
  double dt = now_s() - t0;
  for (int t = 0; t < conns; t++) {
    for (int i = 0; i < arg[t].ncalls; i++) free(arg[t].bodies[i].p);
    free(arg[t].bodies);
  }
  printf("seconds %.6f\nmetrics_per_s %.1f\ncalls %d\npoints %ld\nerrors %ld\n", dt,
         (double)calls * metrics / dt, calls, (long)calls * metrics, g_errors);
}

/* ---- single log-metric latency ---------------------------------------------- */
static void cmd_latency(char **av) {
  const char *run_id = av[0];
  int n = num(av[1]);
  if (n < 1) die("bad count");
  double *lat = calloc((size_t)n, sizeof *lat);
  struct conn c;
  conn_open(&c);
  struct sb body = {0};
  int64_t ts = (int64_t)time(NULL) * 1000;
  double t0 = now_s();
  for (int i = 0; i < n; i++) {
    body.n = 0;
    sb_printf(&body, "{\"run_id\":\"%s\",\"key\":\"latency\",\"value\":%.6f,\"timestamp\":%lld,\"step\":%d}",
              run_id, 1.0 / (i + 1), (long long)ts + i, i);
    lat[i] = call(&c, "POST", "/api/2.0/mlflow/runs/log-metric", body.p, body.n);
  }
  double total = now_s() - t0;
  conn_close(&c);
  qsort(lat, (size_t)n, sizeof *lat, cmp_d);
  printf("p50_ms %.4f\np90_ms %.4f\np99_ms %.4f\nmax_ms %.4f\nmean_ms %.4f\ncalls %d\nerrors %ld\n",
         pct(lat, n, 50) * 1e3, pct(lat, n, 90) * 1e3, pct(lat, n, 99) * 1e3, lat[n - 1] * 1e3,
         total / n * 1e3, n, g_errors);
  free(body.p);
  free(lat);
}

/* ---- reads: one request, several rounds ------------------------------------ */
static void cmd_read(const char *method, const char *path, const char *body, int rounds) {
  if (rounds < 1) die("bad rounds");
  double *t = calloc((size_t)rounds, sizeof *t);
  struct conn c;
  conn_open(&c);
  size_t bytes = 0;
  call(&c, method, path, body, body ? strlen(body) : 0); /* warm: page cache, statements */
  for (int i = 0; i < rounds; i++) {
    t[i] = call(&c, method, path, body, body ? strlen(body) : 0);
    bytes = c.body.n;
  }
  /* a glimpse of the answer, for run.sh to check the result is what was asked */
  int items = 0;
  for (const char *p = c.body.p; (p = strstr(p, "\"key\":")); p++) items++;
  int runs = 0;
  for (const char *p = c.body.p; (p = strstr(p, "\"run_uuid\":")); p++) runs++;
  conn_close(&c);
  qsort(t, (size_t)rounds, sizeof *t, cmp_d);
  printf("median_ms %.3f\nmin_ms %.3f\nmax_ms %.3f\nrounds %d\nbytes %zu\nkey_fields %d\nruns %d\nerrors %ld\n",
         pct(t, rounds, 50) * 1e3, t[0] * 1e3, t[rounds - 1] * 1e3, rounds, bytes, items, runs, g_errors);
  free(t);
}

/* ---- many runs: create + one log-batch each ----------------------------------- */
struct runs_arg {
  const char *exp;
  int first, n;
};

static const char *const LRS[] = {"0.01", "0.001", "0.1", "0.0001"};
static const char *const OPTS[] = {"adam", "sgd", "rmsprop"};

static double rnd01(uint64_t *s) {
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(*s >> 11) / 9007199254740992.0;
}

static void *runs_thread(void *p) {
  struct runs_arg *a = p;
  struct conn c;
  conn_open(&c);
  struct sb body = {0};
  int64_t ts = (int64_t)time(NULL) * 1000;
  for (int i = a->first; i < a->first + a->n; i++) {
    uint64_t s = 0x9E3779B97F4A7C15ULL ^ (uint64_t)i * 0xBF58476D1CE4E5B9ULL;
    body.n = 0;
    sb_printf(&body, "{\"experiment_id\":\"%s\",\"run_name\":\"run-%d\",\"start_time\":%lld}", a->exp, i,
              (long long)ts + i);
    call(&c, "POST", "/api/2.0/mlflow/runs/create", body.p, body.n);
    char id[40];
    if (json_str_field(c.body.p, "run_id", id, sizeof id)) continue; /* counted as an error already */
    body.n = 0;
    sb_printf(&body,
              "{\"run_id\":\"%s\",\"params\":[{\"key\":\"lr\",\"value\":\"%s\"},{\"key\":\"optimizer\","
              "\"value\":\"%s\"},{\"key\":\"batch_size\",\"value\":\"%d\"},{\"key\":\"epochs\",\"value\":"
              "\"%d\"},{\"key\":\"seed\",\"value\":\"%d\"}],\"metrics\":[",
              id, LRS[i % 4], OPTS[i % 3], 16 << (i % 4), 5 + i % 20, i);
    static const char *const MK[] = {"acc", "loss", "f1", "precision", "recall"};
    for (int k = 0; k < 5; k++) {
      double v = rnd01(&s);
      /* a few ties and NaNs, as real searches meet them */
      if (k == 0 && i % 97 == 0) v = 0.75;
      if (k == 0 && i % 1009 == 0)
        sb_printf(&body, "{\"key\":\"acc\",\"value\":\"NaN\",\"timestamp\":%lld,\"step\":1}", (long long)ts + i);
      else
        sb_printf(&body, "%s{\"key\":\"%s\",\"value\":%.6f,\"timestamp\":%lld,\"step\":1}", k ? "," : "", MK[k],
                  v, (long long)ts + i);
    }
    sb_add(&body, "]}", 2);
    call(&c, "POST", "/api/2.0/mlflow/runs/log-batch", body.p, body.n);
  }
  free(body.p);
  conn_close(&c);
  return NULL;
}

static void cmd_runs(char **av) {
  const char *exp = av[0];
  int n = num(av[1]), conns = num(av[2]);
  if (n < 1 || conns < 1) die("bad runs arguments");
  if (conns > 64) conns = 64;
  pthread_t th[64];
  struct runs_arg arg[64];
  int first = 0;
  for (int t = 0; t < conns; t++) {
    int k = n / conns + (t < n % conns);
    arg[t] = (struct runs_arg){exp, first, k};
    first += k;
  }
  double t0 = now_s();
  for (int t = 0; t < conns; t++) pthread_create(&th[t], NULL, runs_thread, &arg[t]);
  for (int t = 0; t < conns; t++) pthread_join(th[t], NULL);
  double dt = now_s() - t0;
  printf("seconds %.3f\nruns %d\nruns_per_s %.1f\nerrors %ld\n", dt, n, n / dt, g_errors);
}

static void cmd_create_run(const char *exp) {
  struct conn c;
  conn_open(&c);
  char body[256];
  snprintf(body, sizeof body, "{\"experiment_id\":\"%s\"}", exp);
  call(&c, "POST", "/api/2.0/mlflow/runs/create", body, strlen(body));
  char id[40];
  if (c.status != 200 || json_str_field(c.body.p, "run_id", id, sizeof id)) die("runs/create: %s", c.body.p);
  puts(id);
  conn_close(&c);
}

int main(int argc, char **argv) {
  if (argc < 4) die("usage: tclient PORT AUTH MODE ARGS... (see the top of tclient.c)");
  g_port = num(argv[1]);
  g_auth = argv[2];
  const char *mode = argv[3];
  char **av = argv + 4;
  int ac = argc - 4;
  if (!strcmp(mode, "ingest") && ac == 6) cmd_ingest(av);
  else if (!strcmp(mode, "latency") && ac == 2) cmd_latency(av);
  else if (!strcmp(mode, "get") && ac == 2) cmd_read("GET", av[0], NULL, num(av[1]));
  else if (!strcmp(mode, "post") && ac == 3) cmd_read("POST", av[0], av[1], num(av[2]));
  else if (!strcmp(mode, "runs") && ac == 3) cmd_runs(av);
  else if (!strcmp(mode, "create-run") && ac == 1) cmd_create_run(av[0]);
  else die("unknown mode or wrong arguments: %s", mode);
  return g_errors ? 2 : 0;
}
