/* serve/internal: the cached model and the cache as cache.c and batcher.c
 * share them. Not for other rooms: they use serve.h. */
#ifndef KILN_SERVE_INTERNAL_H
#define KILN_SERVE_INTERNAL_H

#include "serve.h"

#include <pthread.h>
#include <stdatomic.h>

#define SERVE_MAX_PRIORITY 4
#define SERVE_MAX_INSTANCES 16

struct serve_model {
  _Atomic int refs;
  struct serve *s;
  struct serve_model *next; /* the cache's list */
  char project_id[64], name[256], version[24], key[360];
  char format[32], sha256[65];
  const struct serve_backend *be;
  void *bm; /* the backend's model */
  struct serve_signature sig;
  struct serve_model_settings st; /* resolved: no zero/-1 left */
  uint64_t memory;
  int64_t default_timeout_us; /* a job's deadline when it names none */

  /* everything below under mu */
  pthread_mutex_t mu;
  pthread_cond_t cv;       /* executors wait for work */
  pthread_cond_t ready_cv; /* serve_model_wait_ready waits for the load */
  enum serve_model_state state;
  char reason[512];
  int64_t failed_at_ms, loaded_at_ms, load_ms;
  struct serve_job *qhead[SERVE_MAX_PRIORITY], *qtail[SERVE_MAX_PRIORITY];
  int depth;     /* jobs queued */
  int busy;      /* executors inside predict */
  bool stopping; /* executors leave once the queue is empty */
  pthread_t exec[SERVE_MAX_INSTANCES];
  int nexec;

  _Atomic int64_t last_used_ms;
  _Atomic int64_t requests, errors;
  struct metric_series *m_batch, *m_queue, *m_depth, *m_compute, *m_latency, *m_ok;
  char file[600];  /* the working copy backends load from (kept for worker restarts) */
  json_t *rsig;    /* the registry's signature, until unload */
  struct serve_waiter *waiters; /* called when the load ends (under mu) */
};

/* batcher.c */
int serve_batcher_start(struct serve_model *m, struct err *e);
/* Stops the executors after the queue is served (or failed with `why` when
 * fail is true) and joins them. Called without m->mu held. */
void serve_batcher_stop(struct serve_model *m, bool fail, const char *why);
/* Fails every queued job with e (mu held by the caller: jobs are moved out
 * and completed after unlocking). */
void serve_queue_fail_all(struct serve_model *m, const struct err *e);
void serve_metrics_model(struct serve_model *m);

#endif
