/* serve/batcher: the dynamic batcher of one loaded model. Requests wait in
 * per-priority FIFO queues; each executor thread (one per instance) takes as
 * many compatible requests as fit max_batch_size, runs them as one predict
 * call and hands every request its own rows. With max_queue_delay_us > 0 a
 * batch that is not full waits at most that long for company (Triton's
 * semantics, shared/kserve-v2). HTTP threads never wait here: done callbacks
 * resume their parked requests. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Priority 1 is the highest level; 0 (no priority given) and anything past
 * the last level go to the last one, so callers can only raise a request. */
static int level_of(const struct serve_model *m, int priority) {
  int n = m->st.priority_levels;
  if (priority <= 0 || priority > n) return n - 1;
  return priority - 1;
}

static int64_t deadline_of(const struct serve_model *m, const struct serve_job *j) {
  return j->deadline_us ? j->deadline_us : j->enq_us + m->default_timeout_us;
}

int serve_submit(struct serve_model *m, struct serve_job *j, struct err *e) {
  j->next = NULL;
  j->status = 0;
  j->outputs = NULL;
  j->noutputs = 0;
  j->enq_us = time_mono_us();
  pthread_mutex_lock(&m->mu);
  int rc = 0;
  if (m->stopping || m->state == SERVE_UNLOADING)
    rc = err_set(e, ERR_UNAVAILABLE, "model %s version %s is being unloaded; retry", m->name, m->version);
  else if (m->state == SERVE_FAILED)
    rc = err_set(e, ERR_INVALID_STATE, "model %s version %s cannot be served: %s", m->name, m->version, m->reason);
  else if (m->state == SERVE_DEGRADED)
    rc = err_set(e, ERR_UNAVAILABLE, "model %s version %s is degraded: %s", m->name, m->version, m->reason);
  else if (m->depth >= m->st.queue_capacity)
    rc = err_set(e, ERR_UNAVAILABLE, "the queue of model %s version %s is full (%d requests waiting); retry later",
                 m->name, m->version, m->depth);
  if (rc == 0) {
    int l = level_of(m, j->priority);
    if (m->qtail[l]) m->qtail[l]->next = j;
    else m->qhead[l] = j;
    m->qtail[l] = j;
    m->depth++;
    if (m->m_depth) metrics_set(m->m_depth, m->depth);
    pthread_cond_signal(&m->cv);
  }
  pthread_mutex_unlock(&m->mu);
  return rc;
}

void serve_job_fini(struct serve_job *j) {
  for (int i = 0; i < j->noutputs; i++) serve_tensor_fini(&j->outputs[i]);
  free(j->outputs);
  j->outputs = NULL;
  j->noutputs = 0;
}

static void job_fail(struct serve_job *j, const struct err *e) {
  j->status = -(int)e->code;
  j->err = *e;
  j->done(j, j->ctx);
}

void serve_queue_fail_all(struct serve_model *m, const struct err *e) {
  struct serve_job *all = NULL, **tail = &all;
  for (int l = 0; l < SERVE_MAX_PRIORITY; l++) {
    *tail = m->qhead[l];
    while (*tail) tail = &(*tail)->next;
    m->qhead[l] = m->qtail[l] = NULL;
  }
  m->depth = 0;
  if (m->m_depth) metrics_set(m->m_depth, 0);
  /* the callbacks resume requests; they must not run under the lock, but
   * the jobs are ours now: finish them after unlocking */
  pthread_mutex_unlock(&m->mu);
  while (all) {
    struct serve_job *n = all->next;
    job_fail(all, e);
    all = n;
  }
  pthread_mutex_lock(&m->mu);
}

/* Two requests can share a batch when they ask the same of the model and
 * their inputs differ only in rows. */
static bool compatible(const struct serve_job *a, const struct serve_job *b) {
  if (a->ninputs != b->ninputs || a->popts.proba != b->popts.proba || a->popts.margin != b->popts.margin ||
      a->popts.noutputs != b->popts.noutputs)
    return false;
  for (int i = 0; i < a->popts.noutputs; i++)
    if (!str_eq(a->popts.outputs[i], b->popts.outputs[i])) return false;
  for (int i = 0; i < a->ninputs; i++) {
    const struct serve_tensor *x = &a->inputs[i], *y = &b->inputs[i];
    if (x->dtype != y->dtype || x->ndim != y->ndim || x->ndim < 1) return false;
    for (int d = 1; d < x->ndim; d++)
      if (x->shape[d] != y->shape[d]) return false;
  }
  return true;
}

/* Takes the next batch off the queues (mu held): the oldest job of the
 * highest non-empty level, then every compatible job that still fits, in
 * level and arrival order. Expired jobs met on the way are moved to
 * *expired. Returns the batch's rows. */
static int64_t take_batch(struct serve_model *m, struct serve_job **batch, int *nbatch, int cap,
                          struct serve_job **expired, int64_t now) {
  int64_t rows = 0;
  *nbatch = 0;
  struct serve_job *first = NULL;
  for (int l = 0; l < m->st.priority_levels; l++) {
    struct serve_job **pp = &m->qhead[l], *prev = NULL;
    while (*pp && *nbatch < cap) {
      struct serve_job *j = *pp;
      bool expired_now = deadline_of(m, j) <= now;
      bool take = !expired_now && (!first || (m->sig.batched && compatible(first, j) &&
                                              rows + j->rows <= m->st.max_batch_size));
      if (expired_now || take) {
        *pp = j->next;
        if (m->qtail[l] == j) m->qtail[l] = prev;
        m->depth--;
        if (expired_now) {
          j->next = *expired;
          *expired = j;
          continue;
        }
        j->next = NULL;
        if (!first) first = j;
        batch[(*nbatch)++] = j;
        rows += j->rows;
        if (!m->sig.batched) return rows;
        continue;
      }
      prev = j;
      pp = &j->next;
    }
  }
  return rows;
}

static int64_t queued_rows(const struct serve_model *m) {
  int64_t r = 0;
  for (int l = 0; l < m->st.priority_levels; l++)
    for (const struct serve_job *j = m->qhead[l]; j; j = j->next) r += j->rows;
  return r;
}

static int64_t oldest_enq(const struct serve_model *m) {
  int64_t t = INT64_MAX;
  for (int l = 0; l < m->st.priority_levels; l++)
    if (m->qhead[l] && m->qhead[l]->enq_us < t) t = m->qhead[l]->enq_us;
  return t;
}

/* Rows [row0, row0 + rows) of a batch output, as an owned tensor. An
 * output that does not carry the batch as its first dimension is given
 * whole to every request. */
static int slice_rows(const struct serve_tensor *src, int64_t total, int64_t row0, int64_t rows,
                      struct serve_tensor *dst, struct err *e) {
  memset(dst, 0, sizeof *dst);
  memcpy(dst->name, src->name, sizeof dst->name);
  dst->dtype = src->dtype;
  dst->ndim = src->ndim;
  memcpy(dst->shape, src->shape, sizeof dst->shape);
  bool batched = src->ndim >= 1 && src->shape[0] == total;
  if (src->json) {
    if (!batched || !json_is_array(src->json) || (int64_t)json_array_size(src->json) != total) {
      dst->json = json_incref(src->json);
      return 0;
    }
    dst->json = json_array();
    for (int64_t r = row0; dst->json && r < row0 + rows; r++)
      json_array_append(dst->json, json_array_get(src->json, (size_t)r));
    dst->shape[0] = rows;
    return dst->json ? 0 : err_set(e, ERR_NO_MEMORY, "out of memory");
  }
  size_t off = 0, len = src->nbytes;
  if (batched && total > 0) {
    dst->shape[0] = rows;
    if (src->dtype == SERVE_BYTES) {
      /* variable-length elements: walk to the row boundaries */
      int64_t per_row = serve_shape_count(src->shape + 1, src->ndim - 1);
      if (per_row < 0) return err_set(e, ERR_INTERNAL, "bad output shape");
      const unsigned char *p = src->data;
      size_t pos = 0, start = 0;
      int64_t first = row0 * per_row, last = (row0 + rows) * per_row;
      for (int64_t i = 0; i < last; i++) {
        if (i == first) start = pos;
        if (pos + 4 > src->nbytes) return err_set(e, ERR_INTERNAL, "malformed BYTES output");
        uint32_t n = (uint32_t)p[pos] | (uint32_t)p[pos + 1] << 8 | (uint32_t)p[pos + 2] << 16 | (uint32_t)p[pos + 3] << 24;
        pos += 4;
        if (n > src->nbytes - pos) return err_set(e, ERR_INTERNAL, "malformed BYTES output");
        pos += n;
      }
      if (first == last) start = pos;
      off = start;
      len = pos - start;
    } else {
      size_t row_bytes = src->nbytes / (size_t)total;
      off = (size_t)row0 * row_bytes;
      len = (size_t)rows * row_bytes;
    }
  }
  dst->data = malloc(len ? len : 1);
  if (!dst->data) return err_set(e, ERR_NO_MEMORY, "out of memory for a %zu-byte output", len);
  if (len) memcpy(dst->data, (const char *)src->data + off, len);
  dst->nbytes = len;
  dst->owned = true;
  return 0;
}

/* The batch's inputs: the one request's own when alone, else each input's
 * rows concatenated in batch order. */
static int join_inputs(struct serve_job **b, int n, int64_t rows, struct serve_tensor *in, struct err *e) {
  int nin = b[0]->ninputs;
  for (int i = 0; i < nin; i++) {
    in[i] = b[0]->inputs[i];
    in[i].owned = false;
    in[i].json = NULL;
    if (n == 1) continue;
    size_t total = 0;
    for (int k = 0; k < n; k++) total += b[k]->inputs[i].nbytes;
    char *p = malloc(total ? total : 1);
    if (!p) {
      for (int x = 0; x < i; x++) serve_tensor_fini(&in[x]);
      return err_set(e, ERR_NO_MEMORY, "out of memory for a batch of %lld rows", (long long)rows);
    }
    size_t off = 0;
    for (int k = 0; k < n; k++) {
      if (b[k]->inputs[i].nbytes) memcpy(p + off, b[k]->inputs[i].data, b[k]->inputs[i].nbytes);
      off += b[k]->inputs[i].nbytes;
    }
    in[i].data = p;
    in[i].nbytes = total;
    in[i].owned = true;
    in[i].shape[0] = rows;
  }
  return 0;
}

static void run_batch(struct serve_model *m, int instance, struct serve_job **b, int n, int64_t rows) {
  struct err e = {0};
  struct serve_tensor in[SERVE_V2_MAX_INPUTS];
  struct serve_tensor *out = NULL;
  int nout = 0;
  int64_t t0 = time_mono_us();
  int rc = b[0]->ninputs > SERVE_V2_MAX_INPUTS ? err_set(&e, ERR_INVALID_PARAMETER_VALUE, "too many inputs")
                                               : join_inputs(b, n, rows, in, &e);
  if (rc == 0) {
    rc = m->be->predict(m->bm, instance, in, b[0]->ninputs, &b[0]->popts, &out, &nout, &e);
    for (int i = 0; i < b[0]->ninputs; i++)
      if (in[i].owned) serve_tensor_fini(&in[i]);
  }
  int64_t t1 = time_mono_us();
  if (m->m_batch) metrics_observe(m->m_batch, (double)rows);
  if (m->m_compute) metrics_observe(m->m_compute, (double)(t1 - t0) / 1e6);
  if (rc && e.code == ERR_OK) err_set(&e, ERR_INTERNAL, "the backend failed without saying why");
  int64_t row0 = 0;
  for (int k = 0; k < n; k++) {
    struct serve_job *j = b[k];
    j->queue_us = t0 - j->enq_us;
    j->compute_us = t1 - t0;
    j->batch_rows = (int)rows;
    if (m->m_queue) metrics_observe(m->m_queue, (double)j->queue_us / 1e6);
    struct err je = e;
    int jrc = rc;
    if (jrc == 0) {
      j->outputs = calloc((size_t)(nout ? nout : 1), sizeof *j->outputs);
      if (!j->outputs) jrc = err_set(&je, ERR_NO_MEMORY, "out of memory");
      for (int o = 0; jrc == 0 && o < nout; o++) {
        jrc = slice_rows(&out[o], rows, row0, j->rows, &j->outputs[o], &je);
        if (jrc == 0) j->noutputs = o + 1;
      }
      if (jrc) serve_job_fini(j);
    }
    row0 += j->rows;
    if (jrc) {
      atomic_fetch_add(&m->errors, 1);
      job_fail(j, &je);
    } else {
      j->status = 0;
      j->done(j, j->ctx);
    }
  }
  for (int o = 0; o < nout; o++) serve_tensor_fini(&out[o]);
  free(out);
}

struct exec_arg {
  struct serve_model *m;
  int instance;
};

static void *executor(void *arg) {
  struct exec_arg a = *(struct exec_arg *)arg;
  free(arg);
  struct serve_model *m = a.m;
  int cap = m->sig.batched ? m->st.max_batch_size : 1;
  struct serve_job **batch = calloc((size_t)cap, sizeof *batch);
  if (!batch) return NULL;
  pthread_mutex_lock(&m->mu);
  for (;;) {
    while (m->depth == 0 && !m->stopping) pthread_cond_wait(&m->cv, &m->mu);
    if (m->depth == 0 && m->stopping) break;
    /* a batch that is not full may wait a little for company */
    if (m->st.max_queue_delay_us > 0 && m->sig.batched && !m->stopping) {
      for (;;) {
        int64_t until = oldest_enq(m) + m->st.max_queue_delay_us, now = time_mono_us();
        if (m->stopping || m->depth == 0 || now >= until || queued_rows(m) >= m->st.max_batch_size) break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + (until - now) * 1000;
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&m->cv, &m->mu, &ts);
      }
      if (m->depth == 0) continue;
    }
    struct serve_job *expired = NULL;
    int n = 0;
    int64_t rows = take_batch(m, batch, &n, cap, &expired, time_mono_us());
    if (m->m_depth) metrics_set(m->m_depth, m->depth);
    if (n) m->busy++;
    pthread_mutex_unlock(&m->mu);
    while (expired) {
      struct serve_job *nx = expired->next;
      struct err e;
      err_set(&e, ERR_DEADLINE_EXCEEDED, "the request waited past its deadline in the queue of model %s version %s",
              m->name, m->version);
      atomic_fetch_add(&m->errors, 1);
      job_fail(expired, &e);
      expired = nx;
    }
    if (n) run_batch(m, a.instance, batch, n, rows);
    pthread_mutex_lock(&m->mu);
    if (n) m->busy--;
    /* the backend may have given up on itself (a worker that keeps dying) */
    if (n && m->be->degraded && m->state == SERVE_READY) {
      char why[400] = "";
      if (m->be->degraded(m->bm, why, sizeof why)) {
        m->state = SERVE_DEGRADED;
        snprintf(m->reason, sizeof m->reason, "%s", why[0] ? why : "the backend reports it is degraded");
        log_warn("serve.degraded", "model %s version %s: %s", m->name, m->version, m->reason);
        struct err e;
        err_set(&e, ERR_UNAVAILABLE, "model %s version %s is degraded: %s", m->name, m->version, m->reason);
        serve_queue_fail_all(m, &e);
      }
    }
  }
  pthread_mutex_unlock(&m->mu);
  free(batch);
  return NULL;
}

int serve_batcher_start(struct serve_model *m, struct err *e) {
  int n = m->st.instances;
  if (n < 1) n = 1;
  if (n > SERVE_MAX_INSTANCES) n = SERVE_MAX_INSTANCES;
  for (int i = 0; i < n; i++) {
    struct exec_arg *a = malloc(sizeof *a);
    if (a) *a = (struct exec_arg){m, i};
    if (!a || pthread_create(&m->exec[i], NULL, executor, a)) {
      free(a);
      pthread_mutex_lock(&m->mu);
      m->nexec = i;
      pthread_mutex_unlock(&m->mu);
      serve_batcher_stop(m, true, "the model's executor threads could not start");
      return err_set(e, ERR_INTERNAL, "cannot start the executor threads of model %s", m->name);
    }
  }
  pthread_mutex_lock(&m->mu);
  m->nexec = n;
  pthread_mutex_unlock(&m->mu);
  return 0;
}

void serve_batcher_stop(struct serve_model *m, bool fail, const char *why) {
  pthread_mutex_lock(&m->mu);
  m->stopping = true;
  if (fail) {
    struct err e;
    err_set(&e, ERR_UNAVAILABLE, "model %s version %s: %s", m->name, m->version, why ? why : "unloaded");
    serve_queue_fail_all(m, &e);
  }
  pthread_cond_broadcast(&m->cv);
  int n = m->nexec;
  m->nexec = 0;
  pthread_mutex_unlock(&m->mu);
  for (int i = 0; i < n; i++) pthread_join(m->exec[i], NULL);
}
