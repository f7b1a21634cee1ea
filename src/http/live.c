/* http/live: open-ended reply bodies (Server-Sent Events) that hold no
 * thread while idle. The body is libmicrohttpd's content-reader callback;
 * when the producer has nothing, the callback suspends the connection, and
 * http_live_wake (any thread) resumes it. On shutdown every live reply is
 * ended and resumed first: MHD must not be stopped with a suspended
 * connection. */
#include "internal.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bytes asked of the producer at a time. */
#define LIVE_BLOCK 4096
/* The in-process dispatch gives a producer this long to end its stream. */
#define LIVE_TEST_WAIT_US 5000000

struct http_live {
  struct http_live *next, *prev; /* every live reply handed to MHD */
  pthread_mutex_t mu;
  struct MHD_Connection *conn; /* set when the reply is queued */
  bool suspended, woken, closing, listed;
  reply_pull_fn pull;
  void (*done)(void *ctx);
  void *ctx;
};

static pthread_mutex_t list_mu = PTHREAD_MUTEX_INITIALIZER;
static struct http_live *lives;
static _Atomic bool closing_all;

int reply_live(struct reply *rp, int status, const char *content_type, reply_pull_fn pull, void (*done)(void *ctx),
               void *ctx, struct http_live **out) {
  struct http_live *l = calloc(1, sizeof *l);
  if (!l) {
    if (done) done(ctx);
    *out = NULL;
    return reply_errf(rp, ERR_NO_MEMORY, "out of memory");
  }
  pthread_mutex_init(&l->mu, NULL);
  l->pull = pull;
  l->done = done;
  l->ctx = ctx;
  http_live_release(rp);
  if (rp->body && !rp->persistent) free(rp->body);
  rp->body = NULL;
  rp->len = 0;
  rp->status = status;
  rp->ctype = content_type;
  rp->live = l;
  rp->set = true;
  *out = l;
  return 0;
}

static void live_destroy(struct http_live *l) {
  if (l->done) l->done(l->ctx); /* after this, no one wakes l */
  if (l->listed) {
    pthread_mutex_lock(&list_mu);
    if (l->prev) l->prev->next = l->next;
    else lives = l->next;
    if (l->next) l->next->prev = l->prev;
    pthread_mutex_unlock(&list_mu);
  }
  pthread_mutex_destroy(&l->mu);
  free(l);
}

void http_live_release(struct reply *rp) {
  if (!rp->live) return;
  struct http_live *l = rp->live;
  rp->live = NULL;
  live_destroy(l);
}

void http_live_wake(struct http_live *l) {
  pthread_mutex_lock(&l->mu);
  l->woken = true;
  if (l->suspended) {
    l->suspended = false;
    MHD_resume_connection(l->conn);
  }
  pthread_mutex_unlock(&l->mu);
}

static ssize_t live_read(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  struct http_live *l = cls;
  pthread_mutex_lock(&l->mu);
  bool closing = l->closing || atomic_load(&closing_all);
  l->woken = false;
  pthread_mutex_unlock(&l->mu);
  if (closing) return MHD_CONTENT_READER_END_OF_STREAM;
  ssize_t n = l->pull(l->ctx, buf, max);
  if (n > 0) return n;
  if (n == HTTP_LIVE_END) return MHD_CONTENT_READER_END_OF_STREAM;
  if (n < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
  /* Nothing now: park. A wake that came while pull ran resumes at once
   * (returning 0 unsuspended would leave the connection waiting). */
  pthread_mutex_lock(&l->mu);
  MHD_suspend_connection(l->conn);
  if (l->woken || l->closing || atomic_load(&closing_all)) MHD_resume_connection(l->conn);
  else l->suspended = true;
  pthread_mutex_unlock(&l->mu);
  return 0;
}

static void live_free(void *cls) { live_destroy(cls); }

struct MHD_Response *http_live_response(struct reply *rp, struct MHD_Connection *conn) {
  struct http_live *l = rp->live;
  struct MHD_Response *res = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, LIVE_BLOCK, live_read, l, live_free);
  if (!res) return NULL;
  rp->live = NULL; /* MHD owns it now: live_free runs when the reply is over */
  l->conn = conn;
  pthread_mutex_lock(&list_mu);
  l->next = lives;
  if (lives) lives->prev = l;
  lives = l;
  l->listed = true;
  pthread_mutex_unlock(&list_mu);
  return res;
}

void http_live_close_all(void) {
  atomic_store(&closing_all, true);
  pthread_mutex_lock(&list_mu);
  for (struct http_live *l = lives; l; l = l->next) {
    pthread_mutex_lock(&l->mu);
    l->closing = true;
    if (l->suspended) {
      l->suspended = false;
      MHD_resume_connection(l->conn);
    }
    pthread_mutex_unlock(&l->mu);
  }
  pthread_mutex_unlock(&list_mu);
}

void http_live_open(void) { atomic_store(&closing_all, false); }

void http_live_drain_test(struct reply *rp, struct buf *out) {
  struct http_live *l = rp->live;
  char blk[LIVE_BLOCK];
  int64_t deadline = time_mono_us() + LIVE_TEST_WAIT_US;
  while (time_mono_us() < deadline) {
    ssize_t n = l->pull(l->ctx, blk, sizeof blk);
    if (n > 0) buf_append(out, blk, (size_t)n);
    else if (n < 0) break;
    else usleep(5000);
  }
}
