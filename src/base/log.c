/* base/log: structured JSON-lines logging on stderr. One write(2) per line so
 * lines from many threads never interleave. */
#include "base.h"

#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static enum log_level log_min = LOG_INFO;
static bool log_quiet;

void log_set_level(enum log_level lvl) { log_min = lvl; }
void log_set_quiet(bool quiet) { log_quiet = quiet; }

enum log_level log_level_parse(const char *s, enum log_level dflt) {
  if (str_eq(s, "debug")) return LOG_DEBUG;
  if (str_eq(s, "info")) return LOG_INFO;
  if (str_eq(s, "warn")) return LOG_WARN;
  if (str_eq(s, "error")) return LOG_ERROR;
  return dflt;
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_line(const char *json_obj, size_t n) {
  if (log_quiet) return;
  char stackbuf[2048];
  if (n + 1 <= sizeof stackbuf) {
    memcpy(stackbuf, json_obj, n);
    stackbuf[n] = '\n';
    ssize_t w = write(STDERR_FILENO, stackbuf, n + 1);
    (void)w;
  } else {
    ssize_t w = write(STDERR_FILENO, json_obj, n);
    w = write(STDERR_FILENO, "\n", 1);
    (void)w;
  }
}

void log_msg(enum log_level lvl, const char *event, const char *fmt, ...) {
  if (lvl < log_min || log_quiet) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  json_t *o = json_pack("{s:f, s:s, s:s, s:s}", "ts", time_wall_s(), "level",
                        level_names[lvl], "event", event, "msg", msg);
  if (!o) return;
  struct buf b;
  buf_init(&b);
  if (json_emit(&b, o) == 0) log_line(b.data, b.len);
  buf_fini(&b);
  json_decref(o);
}

/* ---- batched lines ---------------------------------------------------------- */

#define LOG_TBUF (32 * 1024)

struct log_tbuf {
  pthread_mutex_t mu; /* uncontended but for the flusher */
  struct log_tbuf *next;
  size_t len;
  char data[LOG_TBUF];
};

static pthread_mutex_t tbuf_mu = PTHREAD_MUTEX_INITIALIZER;
static struct log_tbuf *tbuf_head;
static _Thread_local struct log_tbuf *tbuf_mine;
static pthread_once_t flusher_once = PTHREAD_ONCE_INIT;

static void tbuf_flush_locked(struct log_tbuf *t) {
  size_t off = 0;
  while (off < t->len) {
    ssize_t w = write(STDERR_FILENO, t->data + off, t->len - off);
    if (w <= 0) break; /* a broken stderr must not wedge the server */
    off += (size_t)w;
  }
  t->len = 0;
}

void log_flush(void) {
  pthread_mutex_lock(&tbuf_mu);
  for (struct log_tbuf *t = tbuf_head; t; t = t->next) {
    pthread_mutex_lock(&t->mu);
    tbuf_flush_locked(t);
    pthread_mutex_unlock(&t->mu);
  }
  pthread_mutex_unlock(&tbuf_mu);
}

static void *flusher_main(void *arg) {
  (void)arg;
  for (;;) {
    usleep(100000);
    log_flush();
  }
  return NULL;
}

static void flusher_start(void) {
  pthread_t th;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&at, 64 * 1024);
  /* created from a server thread, so it inherits the mask that keeps
   * SIGINT/SIGTERM for the main thread */
  (void)pthread_create(&th, &at, flusher_main, NULL);
  pthread_attr_destroy(&at);
}

void log_line_buffered(const char *json_obj, size_t n) {
  if (log_quiet) return;
  if (!tbuf_mine) {
    struct log_tbuf *t = calloc(1, sizeof *t);
    if (!t) {
      log_line(json_obj, n);
      return;
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_mutex_lock(&tbuf_mu);
    t->next = tbuf_head;
    tbuf_head = t;
    pthread_mutex_unlock(&tbuf_mu);
    tbuf_mine = t;
    pthread_once(&flusher_once, flusher_start);
  }
  struct log_tbuf *t = tbuf_mine;
  if (n + 1 > LOG_TBUF) {
    log_line(json_obj, n);
    return;
  }
  pthread_mutex_lock(&t->mu);
  if (t->len + n + 1 > LOG_TBUF) tbuf_flush_locked(t);
  memcpy(t->data + t->len, json_obj, n);
  t->data[t->len + n] = '\n';
  t->len += n + 1;
  pthread_mutex_unlock(&t->mu);
}
