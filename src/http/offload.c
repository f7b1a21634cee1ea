/* http/offload: handlers that do long work (checking a model file, joining a
 * multipart upload's parts) run on a small worker pool instead of a
 * libmicrohttpd I/O thread, so the connections that thread serves keep being
 * answered. The connection is suspended while its handler runs and resumed
 * when the reply is ready; libmicrohttpd then calls the access handler again,
 * which sends it. Routes opt in with ROUTE_OFFLOAD. */
#include "internal.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define OFFLOAD_THREADS 2

struct job {
  struct job *next;
  struct req *rq;
  struct MHD_Connection *conn;
  void (*fn)(struct req *rq);
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER, idle_cv = PTHREAD_COND_INITIALIZER;
static struct job *head, *tail;
static int running; /* jobs taken and not finished */
static bool stopping;
static pthread_t threads[OFFLOAD_THREADS];
static int nthreads;
static struct metric_series *m_offloaded;
static int users; /* servers started and not stopped: the pool lives while any does */
static pthread_mutex_t life_mu = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&mu);
    while (!head && !stopping) pthread_cond_wait(&cv, &mu);
    if (!head) {
      pthread_mutex_unlock(&mu);
      return NULL;
    }
    struct job *j = head;
    head = j->next;
    if (!head) tail = NULL;
    running++;
    pthread_mutex_unlock(&mu);

    j->fn(j->rq);
    atomic_store(&j->rq->offload, HTTP_OFFLOAD_DONE);
    if (m_offloaded) metrics_add(m_offloaded, 1);
    MHD_resume_connection(j->conn);
    free(j);

    pthread_mutex_lock(&mu);
    running--;
    if (!head && running == 0) pthread_cond_broadcast(&idle_cv);
    pthread_mutex_unlock(&mu);
  }
}

static void pool_stop(void);

int http_offload_start(struct err *e) {
  pthread_mutex_lock(&life_mu);
  if (users++ > 0) {
    pthread_mutex_unlock(&life_mu);
    return 0;
  }
  struct metric_family *f = metrics_family("kiln_http_offloaded_total",
                                           "Requests whose handler ran on the worker pool, not an I/O thread",
                                           METRIC_COUNTER, 0, NULL, NULL, 0);
  m_offloaded = f ? metrics_series(f, NULL) : NULL;
  pthread_mutex_lock(&mu);
  stopping = false;
  pthread_mutex_unlock(&mu);
  for (nthreads = 0; nthreads < OFFLOAD_THREADS; nthreads++)
    if (pthread_create(&threads[nthreads], NULL, worker, NULL)) {
      pool_stop();
      users = 0;
      pthread_mutex_unlock(&life_mu);
      return err_set(e, ERR_INTERNAL, "cannot start the request worker pool");
    }
  pthread_mutex_unlock(&life_mu);
  return 0;
}

void http_offload_drain(void) {
  pthread_mutex_lock(&mu);
  while (head || running) pthread_cond_wait(&idle_cv, &mu);
  pthread_mutex_unlock(&mu);
}

void http_offload_stop(void) {
  pthread_mutex_lock(&life_mu);
  if (users > 0 && --users == 0) pool_stop();
  else http_offload_drain();
  pthread_mutex_unlock(&life_mu);
}

static void pool_stop(void) {
  http_offload_drain();
  pthread_mutex_lock(&mu);
  stopping = true;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  for (int i = 0; i < nthreads; i++) pthread_join(threads[i], NULL);
  nthreads = 0;
}

bool http_offload_submit(struct req *rq, struct MHD_Connection *conn, void (*fn)(struct req *rq)) {
  if (nthreads == 0) return false; /* no pool: the caller runs it in place */
  struct job *j = calloc(1, sizeof *j);
  if (!j) return false;
  *j = (struct job){NULL, rq, conn, fn};
  atomic_store(&rq->offload, HTTP_OFFLOAD_RUNNING);
  /* suspended before the job is visible, so a fast worker's resume always
   * finds a suspended connection */
  MHD_suspend_connection(conn);
  pthread_mutex_lock(&mu);
  if (tail) tail->next = j;
  else head = j;
  tail = j;
  pthread_cond_signal(&cv);
  pthread_mutex_unlock(&mu);
  return true;
}
