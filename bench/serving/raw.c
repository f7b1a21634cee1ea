/* bench/serving/raw: the limit of bench/serving — kiln's XGBoost backend
 * called in-process with no HTTP, no queue and no batcher, timed call by
 * call; then the same rows through the in-process request path: the JSON
 * body parsed, validated against the signature, predicted and the answer
 * encoded, first all in the calling thread, then with the prediction handed
 * to the model's batcher and waited for, as the server does (the whole
 * path but HTTP).
 *
 *   serve_raw MODEL_FILE FORMAT ROWS_JSON [CALLS]
 *
 * ROWS_JSON is an MLflow {"inputs": [[...], ...]} body (bench/serving/train.py
 * writes predict-32.json); its first row and all its rows are timed. Prints
 * `name value` lines for run.sh: p50/p99 in µs of each figure, and the first
 * and last predictions so run.sh can check them against the framework's. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The batcher's model struct, as its unit tests build one: a bench that
 * breaks when it changes is better than one that measures something else. */
#include "serve/internal.h"

#define MAX_FILE (64L << 20)
#define MAX_CALLS 10000000L
#define MAX_ROWS 4096
#define WARMUP 1000

static int fail(const char *what, const struct err *e) {
  fprintf(stderr, "serve_raw: %s: %s (%s)\n", what, e ? e->msg : "", e ? err_code_str(e->code) : "");
  return 1;
}

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
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
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  printf("%s_p50_us %.2f\n%s_p99_us %.2f\n", name, pct(v, n, 50), name, pct(v, n, 99));
  fflush(stdout);
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "serve_raw: %s: %s\n", path, strerror(errno));
    return NULL;
  }
  char *p = malloc(MAX_FILE + 1);
  size_t n = p ? fread(p, 1, MAX_FILE, f) : 0;
  bool bad = !p || ferror(f) || !feof(f);
  fclose(f);
  if (bad) {
    fprintf(stderr, "serve_raw: %s: unreadable or larger than %ld bytes\n", path, MAX_FILE);
    free(p);
    return NULL;
  }
  p[n] = 0;
  *len = n;
  return p;
}

static void free_outputs(struct serve_tensor *out, int nout) {
  for (int i = 0; i < nout; i++) serve_tensor_fini(&out[i]);
  free(out);
}

static double out_value(const struct serve_tensor *t, int64_t i) {
  if (t->dtype == SERVE_FP32) return ((const float *)t->data)[i];
  if (t->dtype == SERVE_FP64) return ((const double *)t->data)[i];
  return NAN;
}

/* The body of `rows` rows of x (ncol wide) as an MLflow or a V2 JSON text. */
static int body_text(struct buf *b, bool v2, const float *x, int64_t rows, int64_t ncol) {
  buf_reset(b);
  int rc = v2 ? buf_printf(b, "{\"inputs\":[{\"name\":\"input\",\"shape\":[%lld,%lld],\"datatype\":\"FP32\",\"data\":[",
                           (long long)rows, (long long)ncol)
              : buf_puts(b, "{\"inputs\":[");
  for (int64_t r = 0; rc == 0 && r < rows; r++) {
    if (!v2) rc = buf_puts(b, r ? ",[" : "[");
    for (int64_t c = 0; rc == 0 && c < ncol; c++)
      rc = buf_printf(b, "%s%.9g", (c || (v2 && r)) ? "," : "", (double)x[r * ncol + c]);
    if (rc == 0 && !v2) rc = buf_putc(b, ']');
  }
  if (rc == 0) rc = buf_puts(b, v2 ? "]}]}" : "]}");
  return rc;
}

/* A job's completion, waited for by the calling thread (the server parks
 * the request and its I/O thread picks it up the same way). */
struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
};
static void job_done(struct serve_job *j, void *ctx) {
  struct waiter *w = ctx;
  (void)j;
  pthread_mutex_lock(&w->mu);
  w->done = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* One request: parse, validate, predict (in this thread, or through m's
 * batcher when m is given), encode. */
static int request(bool v2, const struct serve_backend *be, void *model, struct serve_model *m,
                   const struct serve_signature *sig, const struct buf *body, struct arena *a, struct buf *resp,
                   int64_t *rows_out, struct err *e) {
  struct serve_request rq;
  memset(&rq, 0, sizeof rq);
  int rc;
  arena_reset(a);
  buf_reset(resp);
  if (v2) {
    rc = serve_v2_parse_request(body->data, body->len, 0, a, &rq, e);
  } else {
    /* as the predict route reads its body (numeric fast path, else jansson) */
    rc = serve_mlflow_parse_body(body->data, body->len, sig, a, &rq, e);
  }
  int64_t rows = 0;
  if (rc == 0) rc = serve_validate(sig, &rq, a, MAX_ROWS, &rows, e);
  struct serve_tensor *out = NULL;
  int nout = 0;
  struct serve_job job;
  memset(&job, 0, sizeof job);
  if (rc == 0 && m) {
    static struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
    w.done = false;
    job.inputs = rq.inputs;
    job.ninputs = rq.ninputs;
    job.rows = rows;
    job.popts = rq.popts;
    job.done = job_done;
    job.ctx = &w;
    rc = serve_submit(m, &job, e);
    if (rc == 0) {
      pthread_mutex_lock(&w.mu);
      while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
      pthread_mutex_unlock(&w.mu);
      rc = job.status;
      if (rc < 0) *e = job.err;
      out = job.outputs;
      nout = job.noutputs;
    }
  } else if (rc == 0) {
    rc = be->predict(model, 0, rq.inputs, rq.ninputs, &rq.popts, &out, &nout, e);
  }
  if (rc == 0 && v2) {
    size_t hl = 0;
    rc = serve_v2_encode_response(resp, "bench", "1", &rq, out, nout, &hl, e);
  } else if (rc == 0) {
    json_t *j = serve_mlflow_encode_response(out, nout);
    rc = j ? json_emit(resp, j) : err_set(e, ERR_NO_MEMORY, "encoding the answer");
    json_decref(j);
  }
  if (m) serve_job_fini(&job);
  else free_outputs(out, nout);
  *rows_out = rows;
  return rc;
}

/* The loaded model behind a batcher of its own, with the server's default
 * settings and one executor, as the cache would set it up. */
static struct serve_model *batcher_new(const struct serve_backend *be, void *model, const struct serve_signature *sig,
                                       const struct serve_config *cfg, struct err *e) {
  struct serve_model *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  atomic_store(&m->refs, 1);
  str_copy(m->name, sizeof m->name, "bench");
  str_copy(m->version, sizeof m->version, "1");
  m->be = be;
  m->bm = model;
  m->sig = *sig;
  m->st = (struct serve_model_settings){cfg->max_batch_size, cfg->max_queue_delay_us, cfg->queue_capacity, 1, 2};
  m->default_timeout_us = cfg->default_timeout_us;
  m->state = SERVE_READY;
  pthread_mutex_init(&m->mu, NULL);
  pthread_cond_init(&m->cv, NULL);
  pthread_cond_init(&m->ready_cv, NULL);
  if (serve_batcher_start(m, e) < 0) {
    free(m);
    return NULL;
  }
  return m;
}

static void batcher_free(struct serve_model *m) {
  serve_batcher_stop(m, true, "bench over");
  pthread_mutex_destroy(&m->mu);
  pthread_cond_destroy(&m->cv);
  pthread_cond_destroy(&m->ready_cv);
  free(m);
}

int main(int argc, char **argv) {
  if (argc < 4 || argc > 5) {
    fprintf(stderr, "usage: serve_raw MODEL_FILE FORMAT ROWS_JSON [CALLS]\n");
    return 2;
  }
  int64_t calls = 100000;
  if (argc > 4 && (str_to_i64(argv[4], &calls) < 0 || calls < 1 || calls > MAX_CALLS)) {
    fprintf(stderr, "serve_raw: CALLS must be a whole number in [1, %ld]\n", MAX_CALLS);
    return 2;
  }
  struct err e;
  err_clear(&e);
  log_set_quiet(true);

  /* the rows, as float32 (what the model computes in) */
  size_t len = 0;
  char *text = read_file(argv[3], &len);
  if (!text) return 1;
  json_t *doc = json_parse(text, len, &e);
  free(text);
  if (!doc) return fail(argv[3], &e);
  json_t *rowsj = json_object_get(doc, "inputs");
  size_t nrows = json_is_array(rowsj) ? json_array_size(rowsj) : 0;
  size_t ncol = nrows ? json_array_size(json_array_get(rowsj, 0)) : 0;
  if (nrows == 0 || nrows > MAX_ROWS || ncol == 0 || ncol > 4096) {
    fprintf(stderr, "serve_raw: %s: expected {\"inputs\": [[numbers], ...]} of 1..%d rows\n", argv[3], MAX_ROWS);
    return 1;
  }
  float *x = calloc(nrows * ncol, sizeof *x);
  if (!x) return fail("rows", NULL);
  for (size_t r = 0; r < nrows; r++) {
    json_t *row = json_array_get(rowsj, r);
    if (json_array_size(row) != ncol) {
      fprintf(stderr, "serve_raw: row %zu has %zu values, not %zu\n", r, json_array_size(row), ncol);
      return 1;
    }
    for (size_t c = 0; c < ncol; c++) {
      json_t *v = json_array_get(row, c);
      if (!json_is_number(v)) {
        fprintf(stderr, "serve_raw: row %zu, column %zu is not a number\n", r, c);
        return 1;
      }
      x[r * ncol + c] = (float)json_number_value(v);
    }
  }
  json_decref(doc);

  /* the model, loaded the way the cache loads it */
  const struct serve_backend *be = serve_backend_for(argv[2]);
  if (!be) {
    fprintf(stderr, "serve_raw: no backend serves format '%s'\n", argv[2]);
    return 1;
  }
  struct serve_config cfg;
  serve_config_default(&cfg);
  struct serve_load_opts lo = {.path = argv[1], .format = argv[2], .instances = 1, .cfg = &cfg,
                               .model_name = "bench", .model_version = "1"};
  struct serve_signature sig;
  memset(&sig, 0, sizeof sig);
  void *model = NULL;
  double t0 = now_us();
  if (be->load(&lo, &model, &sig, &e) < 0) return fail("loading the model", &e);
  printf("backend %s\nload_ms %.2f\n", be->name, (now_us() - t0) / 1e3);

  double *lat = calloc((size_t)calls, sizeof *lat);
  if (!lat) return fail("timings", NULL);
  struct serve_predict_opts po;
  memset(&po, 0, sizeof po);
  int64_t row_counts[2] = {1, (int64_t)nrows};
  int nfig = nrows > 1 ? 2 : 1;

  /* (1) the backend call alone */
  for (int f = 0; f < nfig; f++) {
    int64_t n = row_counts[f];
    struct serve_tensor in;
    memset(&in, 0, sizeof in);
    str_copy(in.name, sizeof in.name, sig.ninputs > 0 ? sig.inputs[0].name : "input");
    in.dtype = SERVE_FP32;
    in.ndim = 2;
    in.shape[0] = n;
    in.shape[1] = (int64_t)ncol;
    in.data = x;
    in.nbytes = (size_t)n * ncol * sizeof *x;
    for (int64_t i = -WARMUP; i < calls; i++) {
      struct serve_tensor *out = NULL;
      int nout = 0;
      double s = now_us();
      int rc = be->predict(model, 0, &in, 1, &po, &out, &nout, &e);
      double d = now_us() - s;
      if (rc < 0) return fail("predict", &e);
      if (i == 0) {
        if (nout < 1 || out[0].ndim < 1 || out[0].shape[0] != n) {
          fprintf(stderr, "serve_raw: predict answered %d outputs, the first not %lld rows\n", nout, (long long)n);
          return 1;
        }
        printf("pred_%lld_first %.9g\npred_%lld_last %.9g\n", (long long)n, out_value(&out[0], 0), (long long)n,
               out_value(&out[0], serve_shape_count(out[0].shape, out[0].ndim) - 1));
      }
      free_outputs(out, nout);
      if (i >= 0) lat[i] = d;
    }
    char name[64];
    snprintf(name, sizeof name, "backend_%lld", (long long)n);
    report(name, lat, calls);
  }

  /* (2) the request path in-process: what the server does per request
   * around the backend call, minus HTTP; in the calling thread, then
   * through the batcher. Skipped (with the reason) while the protocol
   * functions are placeholders. */
  struct arena a;
  arena_init(&a, 64 << 10, 0);
  struct buf body, resp;
  buf_init(&body);
  buf_init(&resp);
  int64_t rows = 0;
  if (body_text(&body, false, x, 1, (int64_t)ncol) < 0) return fail("building a body", NULL);
  bool have_protocol = request(false, be, model, NULL, &sig, &body, &a, &resp, &rows, &e) == 0;
  printf("protocol_path %s\n", have_protocol ? "yes" : "no");
  if (!have_protocol) fprintf(stderr, "serve_raw: no in-process request path in this build: %s\n", e.msg);
  struct serve_model *m = NULL;
  if (have_protocol && !(m = batcher_new(be, model, &sig, &cfg, &e))) return fail("starting a batcher", &e);
  for (int via = 0; have_protocol && via < 2; via++) {
    for (int v2 = 0; v2 < 2; v2++) {
      for (int f = 0; f < nfig; f++) {
        int64_t n = row_counts[f];
        if (body_text(&body, v2, x, n, (int64_t)ncol) < 0) return fail("building a body", NULL);
        for (int64_t i = -WARMUP; i < calls; i++) {
          double s = now_us();
          int rc = request(v2, be, model, via ? m : NULL, &sig, &body, &a, &resp, &rows, &e);
          double d = now_us() - s;
          if (rc < 0) return fail(v2 ? "V2 request" : "MLflow request", &e);
          if (i >= 0) lat[i] = d;
        }
        if (rows != n) {
          fprintf(stderr, "serve_raw: the request path saw %lld rows, not %lld\n", (long long)rows, (long long)n);
          return 1;
        }
        char name[64];
        snprintf(name, sizeof name, "%s_%s_%lld", via ? "batcher" : "inline", v2 ? "v2" : "mlflow", (long long)n);
        report(name, lat, calls);
      }
    }
  }
  if (m) {
    /* the batcher's copy of the signature is ours */
    memset(&m->sig, 0, sizeof m->sig);
    batcher_free(m);
  }
  buf_fini(&body);
  buf_fini(&resp);
  arena_fini(&a);

  be->unload(model);
  serve_signature_fini(&sig);
  free(lat);
  free(x);
  return 0;
}
