/* track/events: live updates of running runs. Writers append new points to
 * each subscriber's bounded buffer under one short lock (nothing when no
 * one listens: an atomic count is checked first); a ticker thread, started
 * with the first subscriber, wakes subscribers with something to send at
 * most every TRACKING_EVENTS_FLUSH_MS, so points go out in batches, and
 * sends a heartbeat comment after TRACKING_EVENTS_HEARTBEAT_MS of silence.
 * A subscriber that falls TRACKING_EVENTS_BUFFER_BYTES behind is dropped
 * (its stream ends with an "overflow" event) and counted. */
#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct track_sub {
  struct track_sub *next, *prev;
  char run_id[TRACKING_RUN_ID_LEN + 1];
  size_t max_buffered;
  struct buf points; /* metric objects, comma separated */
  char status[16];   /* a status event to send, or "" */
  bool ended;        /* a terminal status is queued: end after it */
  bool deleted;      /* the run was deleted: say so and end */
  bool dropped;
  bool due;          /* something new since the last wake */
  int64_t last_sent_ms, last_wake_ms;
  void (*wake)(void *ctx);
  void *ctx;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct track_sub *subs;
static _Atomic int nsubs;
static pthread_once_t ticker_once = PTHREAD_ONCE_INIT;
static struct metric_series *m_dropped, *m_subscribers;
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void metrics_setup(void) {
  struct metric_family *f = metrics_family("kiln_track_events_dropped_total",
                                           "Live-update subscribers dropped for falling behind (buffer full)",
                                           METRIC_COUNTER, 0, NULL, NULL, 0);
  struct metric_family *g = metrics_family("kiln_track_events_subscribers", "Open live-update (SSE) streams",
                                           METRIC_GAUGE, 0, NULL, NULL, 0);
  m_dropped = f ? metrics_series(f, NULL) : NULL;
  m_subscribers = g ? metrics_series(g, NULL) : NULL;
}

void track_events_metrics_init(void) { pthread_once(&metrics_once, metrics_setup); }

static bool terminal(const char *status) {
  return str_eq(status, "FINISHED") || str_eq(status, "FAILED") || str_eq(status, "KILLED");
}

static void *ticker(void *arg) {
  (void)arg;
  for (;;) {
    usleep(TRACKING_EVENTS_FLUSH_MS * 1000);
    int64_t now = time_mono_us() / 1000;
    pthread_mutex_lock(&mu);
    for (struct track_sub *s = subs; s; s = s->next) {
      bool beat = now - s->last_wake_ms >= TRACKING_EVENTS_HEARTBEAT_MS;
      if (s->due || beat) {
        s->due = false;
        s->last_wake_ms = now;
        s->wake(s->ctx);
      }
    }
    pthread_mutex_unlock(&mu);
  }
  return NULL;
}

static void ticker_start(void) {
  pthread_t t;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &a, ticker, NULL)) log_warn("track.events", "cannot start the live-update ticker");
  pthread_attr_destroy(&a);
}

struct track_sub *track_sub_new(const char *run_id, size_t max_buffered, void (*wake)(void *ctx), void *ctx) {
  track_events_metrics_init();
  pthread_once(&ticker_once, ticker_start);
  struct track_sub *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  str_copy(s->run_id, sizeof s->run_id, run_id);
  s->max_buffered = max_buffered ? max_buffered : TRACKING_EVENTS_BUFFER_BYTES;
  buf_init(&s->points);
  s->wake = wake;
  s->ctx = ctx;
  s->last_sent_ms = s->last_wake_ms = time_mono_us() / 1000;
  pthread_mutex_lock(&mu);
  s->next = subs;
  if (subs) subs->prev = s;
  subs = s;
  atomic_fetch_add(&nsubs, 1);
  pthread_mutex_unlock(&mu);
  if (m_subscribers) metrics_add(m_subscribers, 1);
  return s;
}

void track_sub_free(struct track_sub *s) {
  if (!s) return;
  pthread_mutex_lock(&mu);
  if (s->prev) s->prev->next = s->next;
  else subs = s->next;
  if (s->next) s->next->prev = s->prev;
  atomic_fetch_sub(&nsubs, 1);
  pthread_mutex_unlock(&mu);
  if (m_subscribers) metrics_add(m_subscribers, -1);
  buf_fini(&s->points);
  free(s);
}

/* under mu */
static void set_status(struct track_sub *s, const char *status) {
  if (s->ended || s->dropped) return;
  str_copy(s->status, sizeof s->status, status);
  if (terminal(status)) s->ended = true;
  s->due = true;
}

void track_sub_status(struct track_sub *s, const char *status) {
  pthread_mutex_lock(&mu);
  set_status(s, status);
  pthread_mutex_unlock(&mu);
}

void track_sub_take(struct track_sub *s, struct buf *out, bool *end) {
  pthread_mutex_lock(&mu);
  int64_t now = time_mono_us() / 1000;
  size_t before = out->len;
  if (s->dropped) {
    buf_puts(out, "event: overflow\ndata: {\"reason\":\"the client fell behind; reconnect and reload the history\"}\n\n");
    *end = true;
  } else if (s->deleted) {
    buf_printf(out, "event: deleted\ndata: {\"run_id\":\"%s\"}\n\n", s->run_id);
    *end = true;
  } else {
    if (s->points.len) {
      buf_printf(out, "event: metrics\ndata: {\"run_id\":\"%s\",\"metrics\":[", s->run_id);
      buf_append(out, s->points.data, s->points.len);
      buf_puts(out, "]}\n\n");
      s->points.len = 0;
    }
    if (s->status[0]) {
      buf_printf(out, "event: status\ndata: {\"run_id\":\"%s\",\"status\":\"%s\"}\n\n", s->run_id, s->status);
      s->status[0] = 0;
    }
    *end = s->ended;
    if (out->len == before && now - s->last_sent_ms >= TRACKING_EVENTS_HEARTBEAT_MS) buf_puts(out, ": ping\n\n");
  }
  if (out->len != before) s->last_sent_ms = now;
  pthread_mutex_unlock(&mu);
}

void track_events_metrics(const char *run_id, const struct track_metric *m, int n) {
  if (atomic_load(&nsubs) == 0 || n <= 0) return;
  /* formatted once, outside the lock, then copied to each subscriber */
  struct buf text;
  buf_init(&text);
  for (int i = 0; i < n; i++) {
    struct track_point p = track_point_of(&m[i]); /* NaN and +-inf as the history answers them */
    json_t *v = track_metric_value_json(p.v, p.nan);
    char *vs = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    json_decref(v);
    json_t *k = json_string(m[i].key);
    char *ks = json_dumps(k, JSON_ENCODE_ANY);
    json_decref(k);
    if (vs && ks)
      buf_printf(&text, "%s{\"key\":%s,\"value\":%s,\"timestamp\":%lld,\"step\":%lld}", i ? "," : "", ks, vs,
                 (long long)m[i].timestamp, (long long)m[i].step);
    free(vs);
    free(ks);
  }
  pthread_mutex_lock(&mu);
  for (struct track_sub *s = subs; s; s = s->next) {
    if (!str_eq(s->run_id, run_id) || s->ended || s->dropped) continue;
    if (s->points.len + text.len + 1 > s->max_buffered) {
      s->dropped = true;
      s->due = true;
      buf_fini(&s->points);
      buf_init(&s->points);
      if (m_dropped) metrics_add(m_dropped, 1);
      continue;
    }
    if (s->points.len) buf_putc(&s->points, ',');
    buf_append(&s->points, text.data, text.len);
    s->due = true;
  }
  pthread_mutex_unlock(&mu);
  buf_fini(&text);
}

void track_events_status(const char *run_id, const char *status) {
  if (atomic_load(&nsubs) == 0) return;
  pthread_mutex_lock(&mu);
  for (struct track_sub *s = subs; s; s = s->next)
    if (str_eq(s->run_id, run_id)) set_status(s, status);
  pthread_mutex_unlock(&mu);
}

void track_events_sweep_deleted(struct db *db) {
  if (atomic_load(&nsubs) == 0) return;
  /* the subscribed run ids are copied out, so no lock is held across the
   * database reads */
  pthread_mutex_lock(&mu);
  int n = 0;
  for (struct track_sub *s = subs; s; s = s->next) n++;
  char(*ids)[TRACKING_RUN_ID_LEN + 1] = n ? calloc((size_t)n, sizeof *ids) : NULL;
  int k = 0;
  for (struct track_sub *s = subs; s && ids; s = s->next)
    if (!s->ended && !s->dropped && !s->deleted) str_copy(ids[k++], sizeof ids[0], s->run_id);
  pthread_mutex_unlock(&mu);
  if (!ids) return;
  struct err e;
  struct db_conn *c = db_reader_acquire(db, &e);
  for (int i = 0; c && i < k; i++) {
    struct db_stmt *st = db_prepare(c, "SELECT lifecycle_stage FROM runs WHERE run_uuid = ?", &e);
    if (!st) break;
    db_bind_text(st, 1, ids[i]);
    int rc = db_step(st, &e);
    bool gone = rc == DB_DONE || (rc == DB_ROW && str_eq(db_col_text(st, 0), TRK_LIFECYCLE_DELETED));
    db_stmt_done(st);
    if (!gone) ids[i][0] = 0;
  }
  if (c) db_reader_release(db, c);
  pthread_mutex_lock(&mu);
  for (struct track_sub *s = subs; s; s = s->next)
    for (int i = 0; i < k; i++)
      if (ids[i][0] && str_eq(ids[i], s->run_id) && !s->dropped) {
        s->deleted = true;
        s->due = true;
      }
  pthread_mutex_unlock(&mu);
  free(ids);
}
