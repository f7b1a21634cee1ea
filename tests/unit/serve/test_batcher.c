/* tests for the dynamic batcher: a fake backend that doubles its input and
 * can be held inside predict, so queues fill in a known order. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/internal.h"

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_closed, in_predict;
static int batches[256], nbatches;
static int fail_next; /* the next predict fails */

static int fake_predict(void *model, int instance, const struct serve_tensor *in, int nin,
                        const struct serve_predict_opts *po, struct serve_tensor **out, int *nout, struct err *e) {
  (void)model;
  (void)instance;
  (void)nin;
  pthread_mutex_lock(&gate_mu);
  in_predict = true;
  pthread_cond_broadcast(&gate_cv);
  while (gate_closed) pthread_cond_wait(&gate_cv, &gate_mu);
  in_predict = false;
  if (nbatches < 256) batches[nbatches++] = (int)in[0].shape[0];
  bool fail = fail_next > 0;
  if (fail) fail_next--;
  pthread_mutex_unlock(&gate_mu);
  if (fail) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "fake failure");
  struct serve_tensor *o = calloc(2, sizeof *o);
  cr_assert_not_null(o);
  cr_assert_eq(serve_tensor_alloc(&o[0], "double", SERVE_FP32, in[0].shape, in[0].ndim, e), 0);
  const float *x = in[0].data;
  float *y = o[0].data;
  for (size_t i = 0; i < in[0].nbytes / 4; i++) y[i] = x[i] * (po->proba ? 3.0f : 2.0f);
  /* a BYTES output: row i says "r<value of its first element>" */
  struct buf b;
  buf_init(&b);
  for (int64_t r = 0; r < in[0].shape[0]; r++) {
    char t[32];
    int n = snprintf(t, sizeof t, "r%d", (int)x[r * in[0].shape[1]]);
    uint32_t len = (uint32_t)n;
    buf_append(&b, &len, 4);
    buf_append(&b, t, (size_t)n);
  }
  str_copy(o[1].name, sizeof o[1].name, "label");
  o[1].dtype = SERVE_BYTES;
  o[1].ndim = 1;
  o[1].shape[0] = in[0].shape[0];
  o[1].nbytes = b.len;
  o[1].data = buf_steal(&b);
  o[1].owned = true;
  *out = o;
  *nout = 2;
  return 0;
}

static const struct serve_backend fake = {SERVE_BACKEND_VERSION, "fake", 0, NULL, fake_predict, NULL, NULL, NULL, NULL};

static void gate(bool closed) {
  pthread_mutex_lock(&gate_mu);
  gate_closed = closed;
  pthread_cond_broadcast(&gate_cv);
  pthread_mutex_unlock(&gate_mu);
}

static void wait_in_predict(void) {
  pthread_mutex_lock(&gate_mu);
  while (!in_predict) pthread_cond_wait(&gate_cv, &gate_mu);
  pthread_mutex_unlock(&gate_mu);
}

static struct serve_model *model_new(int max_batch, int capacity, int instances, int64_t delay_us) {
  struct serve_model *m = calloc(1, sizeof *m);
  cr_assert_not_null(m);
  atomic_store(&m->refs, 1);
  str_copy(m->name, sizeof m->name, "fake");
  str_copy(m->version, sizeof m->version, "1");
  m->be = &fake;
  m->sig.batched = true;
  m->st = (struct serve_model_settings){max_batch, delay_us, capacity, instances, 2};
  m->default_timeout_us = 30000000;
  m->state = SERVE_READY;
  pthread_mutex_init(&m->mu, NULL);
  pthread_cond_init(&m->cv, NULL);
  pthread_cond_init(&m->ready_cv, NULL);
  nbatches = 0;
  fail_next = 0;
  gate(false);
  struct err e;
  cr_assert_eq(serve_batcher_start(m, &e), 0);
  return m;
}

static void model_free(struct serve_model *m) {
  serve_batcher_stop(m, true, "test over");
  pthread_mutex_destroy(&m->mu);
  pthread_cond_destroy(&m->cv);
  pthread_cond_destroy(&m->ready_cv);
  free(m);
}

/* a job of `rows` rows of 2 columns, values start, start+1, ... */
struct tjob {
  struct serve_job j;
  struct serve_tensor in;
  float data[64];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  int order; /* completion order */
};
static _Atomic int completed;

static void on_done(struct serve_job *j, void *ctx) {
  struct tjob *t = ctx;
  (void)j;
  pthread_mutex_lock(&t->mu);
  t->done = true;
  t->order = atomic_fetch_add(&completed, 1);
  pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
}

static void tjob_init(struct tjob *t, int rows, float start, int priority) {
  memset(t, 0, sizeof *t);
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  for (int i = 0; i < rows * 2; i++) t->data[i] = start + (float)i;
  str_copy(t->in.name, sizeof t->in.name, "x");
  t->in.dtype = SERVE_FP32;
  t->in.ndim = 2;
  t->in.shape[0] = rows;
  t->in.shape[1] = 2;
  t->in.data = t->data;
  t->in.nbytes = (size_t)rows * 2 * sizeof(float);
  t->j.inputs = &t->in;
  t->j.ninputs = 1;
  t->j.rows = rows;
  t->j.priority = priority;
  t->j.done = on_done;
  t->j.ctx = t;
}

static void tjob_wait(struct tjob *t) {
  pthread_mutex_lock(&t->mu);
  while (!t->done) pthread_cond_wait(&t->cv, &t->mu);
  pthread_mutex_unlock(&t->mu);
}

static void tjob_fini(struct tjob *t) {
  serve_job_fini(&t->j);
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->cv);
}

/* the rows a job got back are its own rows, doubled, and its own labels */
static void check_rows(struct tjob *t, float factor) {
  cr_assert_eq(t->j.status, 0, "job failed: %s", t->j.err.msg);
  cr_assert_eq(t->j.noutputs, 2);
  struct serve_tensor *o = &t->j.outputs[0];
  cr_assert_eq(o->shape[0], t->j.rows);
  cr_assert_eq(o->shape[1], 2);
  const float *y = o->data;
  for (int i = 0; i < t->j.rows * 2; i++) cr_assert_float_eq(y[i], t->data[i] * factor, 1e-6);
  struct serve_tensor *l = &t->j.outputs[1];
  cr_assert_eq(l->shape[0], t->j.rows);
  const unsigned char *p = l->data;
  size_t pos = 0;
  for (int r = 0; r < t->j.rows; r++) {
    uint32_t n;
    memcpy(&n, p + pos, 4);
    char want[32];
    snprintf(want, sizeof want, "r%d", (int)t->data[r * 2]);
    cr_assert_eq(n, strlen(want));
    cr_assert(memcmp(p + pos + 4, want, n) == 0);
    pos += 4 + n;
  }
  cr_assert_eq(pos, l->nbytes);
}

Test(serve_batcher, queued_requests_run_as_one_batch_and_get_their_own_rows) {
  struct serve_model *m = model_new(32, 100, 1, 0);
  struct err e;
  static struct tjob first, t[10];
  gate(true);
  tjob_init(&first, 1, 1000, 0);
  cr_assert_eq(serve_submit(m, &first.j, &e), 0);
  wait_in_predict(); /* the executor is held inside the first batch */
  for (int i = 0; i < 10; i++) {
    tjob_init(&t[i], 1 + i % 3, (float)(i * 10), 0);
    cr_assert_eq(serve_submit(m, &t[i].j, &e), 0);
  }
  gate(false);
  tjob_wait(&first);
  for (int i = 0; i < 10; i++) tjob_wait(&t[i]);
  check_rows(&first, 2);
  int rows = 0;
  for (int i = 0; i < 10; i++) {
    check_rows(&t[i], 2);
    rows += (int)t[i].j.rows;
  }
  for (int i = 0; i < 10; i++) cr_assert_eq(t[i].j.batch_rows, rows);
  cr_assert_eq(nbatches, 2, "batches: %d", nbatches);
  cr_assert_eq(batches[0], 1);
  cr_assert_eq(batches[1], rows); /* all ten in one predict call */
  for (int i = 0; i < 10; i++) tjob_fini(&t[i]);
  tjob_fini(&first);
  model_free(m);
}

Test(serve_batcher, a_batch_never_exceeds_max_batch_size) {
  struct serve_model *m = model_new(4, 100, 1, 0);
  struct err e;
  static struct tjob first, t[6];
  gate(true);
  tjob_init(&first, 1, 0, 0);
  cr_assert_eq(serve_submit(m, &first.j, &e), 0);
  wait_in_predict();
  for (int i = 0; i < 6; i++) {
    tjob_init(&t[i], 2, (float)(i * 4), 0); /* 2 rows each: two jobs per batch of 4 */
    cr_assert_eq(serve_submit(m, &t[i].j, &e), 0);
  }
  gate(false);
  for (int i = 0; i < 6; i++) tjob_wait(&t[i]);
  tjob_wait(&first);
  cr_assert_eq(nbatches, 4);
  for (int b = 1; b < 4; b++) cr_assert_eq(batches[b], 4);
  for (int i = 0; i < 6; i++) {
    check_rows(&t[i], 2);
    tjob_fini(&t[i]);
  }
  tjob_fini(&first);
  model_free(m);
}

Test(serve_batcher, different_options_are_not_batched_together) {
  struct serve_model *m = model_new(32, 100, 1, 0);
  struct err e;
  static struct tjob first, a, b, c;
  gate(true);
  tjob_init(&first, 1, 0, 0);
  cr_assert_eq(serve_submit(m, &first.j, &e), 0);
  wait_in_predict();
  tjob_init(&a, 1, 10, 0);
  tjob_init(&b, 1, 20, 0);
  b.j.popts.proba = true;
  tjob_init(&c, 1, 30, 0);
  cr_assert_eq(serve_submit(m, &a.j, &e), 0);
  cr_assert_eq(serve_submit(m, &b.j, &e), 0);
  cr_assert_eq(serve_submit(m, &c.j, &e), 0);
  gate(false);
  tjob_wait(&a);
  tjob_wait(&b);
  tjob_wait(&c);
  check_rows(&a, 2);
  check_rows(&b, 3); /* proba: the fake triples */
  check_rows(&c, 2);
  cr_assert_eq(nbatches, 3); /* first, then a+c, then b */
  cr_assert_eq(batches[1], 2);
  cr_assert_eq(batches[2], 1);
  tjob_fini(&a);
  tjob_fini(&b);
  tjob_fini(&c);
  tjob_fini(&first);
  model_free(m);
}

Test(serve_batcher, a_full_queue_refuses_with_unavailable) {
  struct serve_model *m = model_new(1, 3, 1, 0);
  struct err e;
  static struct tjob first, t[4];
  gate(true);
  tjob_init(&first, 1, 0, 0);
  cr_assert_eq(serve_submit(m, &first.j, &e), 0);
  wait_in_predict();
  for (int i = 0; i < 3; i++) {
    tjob_init(&t[i], 1, (float)i, 0);
    cr_assert_eq(serve_submit(m, &t[i].j, &e), 0);
  }
  tjob_init(&t[3], 1, 9, 0);
  cr_assert_eq(serve_submit(m, &t[3].j, &e), -ERR_UNAVAILABLE);
  cr_assert(strstr(e.msg, "queue") && strstr(e.msg, "full"), "%s", e.msg);
  cr_assert_eq(err_http_status(e.code), 503);
  gate(false);
  for (int i = 0; i < 3; i++) {
    tjob_wait(&t[i]);
    check_rows(&t[i], 2);
    tjob_fini(&t[i]);
  }
  tjob_wait(&first);
  tjob_fini(&first);
  tjob_fini(&t[3]);
  model_free(m);
}

Test(serve_batcher, higher_priority_is_served_first) {
  struct serve_model *m = model_new(1, 100, 1, 0); /* batches of one row: the order shows */
  struct err e;
  static struct tjob first, low[3], high[2];
  gate(true);
  tjob_init(&first, 1, 0, 0);
  cr_assert_eq(serve_submit(m, &first.j, &e), 0);
  wait_in_predict();
  atomic_store(&completed, 0);
  for (int i = 0; i < 3; i++) {
    tjob_init(&low[i], 1, (float)(10 + i), 0);
    cr_assert_eq(serve_submit(m, &low[i].j, &e), 0);
  }
  for (int i = 0; i < 2; i++) {
    tjob_init(&high[i], 1, (float)(20 + i), 1);
    cr_assert_eq(serve_submit(m, &high[i].j, &e), 0);
  }
  gate(false);
  tjob_wait(&first);
  for (int i = 0; i < 3; i++) tjob_wait(&low[i]);
  for (int i = 0; i < 2; i++) tjob_wait(&high[i]);
  /* completion order after `first` (order 0): both high ones, then the low ones in arrival order */
  cr_assert_eq(high[0].order, 1);
  cr_assert_eq(high[1].order, 2);
  cr_assert_eq(low[0].order, 3);
  cr_assert_eq(low[1].order, 4);
  cr_assert_eq(low[2].order, 5);
  for (int i = 0; i < 3; i++) tjob_fini(&low[i]);
  for (int i = 0; i < 2; i++) tjob_fini(&high[i]);
  tjob_fini(&first);
  model_free(m);
}

Test(serve_batcher, an_expired_request_fails_with_deadline_exceeded_and_is_not_run) {
  struct serve_model *m = model_new(32, 100, 1, 0);
  struct err e;
  static struct tjob first, late, ok;
  gate(true);
  tjob_init(&first, 1, 0, 0);
  cr_assert_eq(serve_submit(m, &first.j, &e), 0);
  wait_in_predict();
  tjob_init(&late, 1, 5, 0);
  late.j.deadline_us = time_mono_us() + 1000; /* 1 ms */
  tjob_init(&ok, 1, 7, 0);
  cr_assert_eq(serve_submit(m, &late.j, &e), 0);
  cr_assert_eq(serve_submit(m, &ok.j, &e), 0);
  usleep(20000); /* the deadline passes while the executor is held */
  gate(false);
  tjob_wait(&late);
  tjob_wait(&ok);
  cr_assert_eq(late.j.status, -ERR_DEADLINE_EXCEEDED);
  cr_assert_eq(err_http_status(late.j.err.code), 504);
  check_rows(&ok, 2);
  cr_assert_eq(nbatches, 2);
  cr_assert_eq(batches[1], 1); /* only `ok` ran */
  tjob_fini(&late);
  tjob_fini(&ok);
  tjob_fini(&first);
  model_free(m);
}

Test(serve_batcher, a_failed_batch_fails_each_of_its_requests) {
  struct serve_model *m = model_new(32, 100, 1, 0);
  struct err e;
  static struct tjob first, a, b, after;
  gate(true);
  tjob_init(&first, 1, 0, 0);
  cr_assert_eq(serve_submit(m, &first.j, &e), 0);
  wait_in_predict();
  pthread_mutex_lock(&gate_mu);
  fail_next = 2; /* `first` and the batch of a+b fail */
  pthread_mutex_unlock(&gate_mu);
  tjob_init(&a, 1, 1, 0);
  tjob_init(&b, 2, 3, 0);
  cr_assert_eq(serve_submit(m, &a.j, &e), 0);
  cr_assert_eq(serve_submit(m, &b.j, &e), 0);
  gate(false);
  tjob_wait(&first);
  tjob_wait(&a);
  tjob_wait(&b);
  cr_assert_eq(a.j.status, -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(b.j.status, -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_str_eq(b.j.err.msg, "fake failure");
  tjob_init(&after, 1, 4, 0);
  cr_assert_eq(serve_submit(m, &after.j, &e), 0);
  tjob_wait(&after);
  check_rows(&after, 2); /* the model keeps serving */
  tjob_fini(&a);
  tjob_fini(&b);
  tjob_fini(&after);
  tjob_fini(&first);
  model_free(m);
}

Test(serve_batcher, a_queue_delay_gathers_requests_that_arrive_apart) {
  struct serve_model *m = model_new(8, 100, 1, 200000); /* wait up to 200 ms for company */
  struct err e;
  static struct tjob t[4];
  for (int i = 0; i < 4; i++) {
    tjob_init(&t[i], 2, (float)(i * 4), 0);
    cr_assert_eq(serve_submit(m, &t[i].j, &e), 0);
    usleep(2000);
  }
  for (int i = 0; i < 4; i++) tjob_wait(&t[i]);
  /* the fourth filled the batch to max_batch_size (8 rows): one call */
  cr_assert_eq(nbatches, 1, "batches: %d", nbatches);
  cr_assert_eq(batches[0], 8);
  for (int i = 0; i < 4; i++) {
    check_rows(&t[i], 2);
    tjob_fini(&t[i]);
  }
  model_free(m);
}

Test(serve_batcher, stopping_fails_what_still_waits) {
  struct serve_model *m = model_new(1, 100, 1, 0);
  struct err e;
  static struct tjob first, t;
  gate(true);
  tjob_init(&first, 1, 0, 0);
  cr_assert_eq(serve_submit(m, &first.j, &e), 0);
  wait_in_predict();
  tjob_init(&t, 1, 1, 0);
  cr_assert_eq(serve_submit(m, &t.j, &e), 0);
  pthread_mutex_lock(&m->mu);
  m->stopping = true; /* what serve_batcher_stop does first; the held batch still finishes */
  struct err fe;
  err_set(&fe, ERR_UNAVAILABLE, "unloaded");
  serve_queue_fail_all(m, &fe);
  pthread_mutex_unlock(&m->mu);
  tjob_wait(&t);
  cr_assert_eq(t.j.status, -ERR_UNAVAILABLE);
  struct tjob refused;
  tjob_init(&refused, 1, 2, 0);
  cr_assert_eq(serve_submit(m, &refused.j, &e), -ERR_UNAVAILABLE);
  gate(false);
  tjob_wait(&first);
  check_rows(&first, 2);
  tjob_fini(&t);
  tjob_fini(&refused);
  tjob_fini(&first);
  model_free(m);
}
