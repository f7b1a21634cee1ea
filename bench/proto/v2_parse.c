/* bench/proto/v2_parse: microseconds per V2 request parse (JSON and binary),
 * per validate and per response encode, with and without the fast number
 * path — the figures the serving bar rests on. Build and run:
 *   make build/bench/v2_parse && build/bench/v2_parse */
#include "serve/proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); /* CPU time: the cores are shared */
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* rows x cols FP32 values as Python's json.dumps writes doubles (17 digits
 * at most, shortest round trip) */
static char *make_body(int rows, int cols, bool nested, size_t *len) {
  struct buf b;
  buf_init(&b);
  buf_printf(&b,
             "{\"id\":\"r1\",\"inputs\":[{\"name\":\"x\",\"shape\":[%d,%d],\"datatype\":\"FP32\","
             "\"data\":[",
             rows, cols);
  unsigned s = 12345;
  for (int r = 0; r < rows; r++) {
    if (nested) buf_puts(&b, r ? ",[" : "[");
    for (int c = 0; c < cols; c++) {
      s = s * 1103515245u + 12345u;
      double v = ((double)(s >> 8) / 16777216.0 - 0.5) * 0.2;
      char t[SERVE_NUM_TEXT];
      serve_fmt_f64(t, v);
      buf_printf(&b, "%s%s", (c || (!nested && r)) ? "," : "", t);
    }
    if (nested) buf_puts(&b, "]");
  }
  buf_puts(&b, "]}]}");
  *len = b.len;
  return buf_steal(&b);
}

static double bench_parse(const char *body, size_t len, size_t hl, int iters) {
  struct arena a;
  arena_init(&a, 64 * 1024, 0);
  double t0 = now_s();
  for (int i = 0; i < iters; i++) {
    struct serve_request rq;
    struct err e;
    if (serve_v2_parse_request(body, len, hl, &a, &rq, &e)) {
      fprintf(stderr, "parse failed: %s\n", e.msg);
      exit(1);
    }
    arena_reset(&a);
  }
  double us = (now_s() - t0) / iters * 1e6;
  arena_fini(&a);
  return us;
}

/* {"inputs": [[10 numbers], ...]}: the MLflow body the serving benchmark sends */
static void bench_mlflow(int rows, int iters) {
  struct buf b;
  buf_init(&b);
  buf_puts(&b, "{\"inputs\":[");
  unsigned s = 777;
  for (int r = 0; r < rows; r++) {
    buf_puts(&b, r ? ",[" : "[");
    for (int c = 0; c < 10; c++) {
      s = s * 1103515245u + 12345u;
      char t[SERVE_NUM_TEXT];
      serve_fmt_f32(t, (float)(((double)(s >> 8) / 16777216.0 - 0.5) * 0.2));
      buf_printf(&b, "%s%s", c ? "," : "", t);
    }
    buf_puts(&b, "]");
  }
  buf_puts(&b, "]}");
  struct serve_tensor_spec in = {"input", SERVE_FP32, 2, {-1, 10}},
                           outspec = {"y", SERVE_FP32, 1, {-1}};
  struct serve_signature sig = {1, 1, &in, &outspec, 0, NULL, NULL, true, false};
  struct arena a;
  arena_init(&a, 64 * 1024, 0);
  struct serve_request rq;
  struct err e;
  double t0 = now_s();
  for (int i = 0; i < iters; i++) {
    if (serve_mlflow_parse_body(b.data, b.len, &sig, &a, &rq, &e)) {
      fprintf(stderr, "mlflow: %s\n", e.msg);
      exit(1);
    }
    arena_reset(&a);
  }
  double fast = (now_s() - t0) / iters * 1e6;
  int slow_iters = iters / 4 + 1;
  t0 = now_s();
  for (int i = 0; i < slow_iters; i++) {
    json_t *j = json_parse(b.data, b.len, &e);
    serve_mlflow_parse_request(j, &sig, &a, &rq, &e);
    json_decref(j);
    arena_reset(&a);
  }
  double slow = (now_s() - t0) / slow_iters * 1e6;
  printf(
      "MLflow {\"inputs\": %dx10} (%zu bytes): body fast path %.2f us, json_parse + tree %.2f us\n",
      rows, b.len, fast, slow);
  arena_fini(&a);
  buf_fini(&b);
}

int main(int argc, char **argv) {
  int iters = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 20000;
  static const int shapes[][2] = {{1, 10}, {32, 10}};
  for (int k = 0; k < 2; k++) {
    int rows = shapes[k][0], cols = shapes[k][1];
    size_t len;
    char *body = make_body(rows, cols, false, &len);
    serve_v2_fast_numbers = true;
    double fast = bench_parse(body, len, 0, iters);
    serve_v2_fast_numbers = false;
    double slow = bench_parse(body, len, 0, iters / 4 + 1);
    serve_v2_fast_numbers = true;
    size_t nlen;
    char *nb = make_body(rows, cols, true, &nlen);
    double nested = bench_parse(nb, nlen, 0, iters);
    printf("%dx%d FP32 JSON (%zu bytes): fast path %.2f us/parse, jansson only %.2f us/parse, "
           "nested fast %.2f us\n",
           rows, cols, len, fast, slow, nested);

    /* the same tensor in binary */
    struct buf bb;
    buf_init(&bb);
    buf_printf(
        &bb,
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[%d,%d],\"datatype\":\"FP32\",\"parameters\":{"
        "\"binary_data_size\":%d}}]}",
        rows, cols, rows * cols * 4);
    size_t hl = bb.len;
    for (int i = 0; i < rows * cols; i++) {
      float f = (float)i * 0.25f;
      buf_append(&bb, &f, 4);
    }
    printf("%dx%d FP32 binary: %.2f us/parse\n", rows, cols,
           bench_parse(bb.data, bb.len, hl, iters));

    /* validate (no cast: the request already has the model's dtype) and
     * encode of a [rows] FP32 output, each timed over a loop */
    struct arena a;
    arena_init(&a, 64 * 1024, 0);
    struct serve_tensor_spec in = {"x", SERVE_FP32, 2, {-1, cols}},
                             outspec = {"y", SERVE_FP32, 1, {-1}};
    struct serve_signature sig = {1, 1, &in, &outspec, 0, NULL, NULL, true, false};
    struct serve_request rq;
    struct err e;
    float *y = malloc((size_t)rows * 4);
    for (int i = 0; i < rows; i++) y[i] = 150.0f + (float)i * 0.37f;
    struct serve_tensor out = {.name = "y",
                               .dtype = SERVE_FP32,
                               .ndim = 1,
                               .shape = {rows},
                               .data = y,
                               .nbytes = (size_t)rows * 4};
    struct buf ob;
    buf_init(&ob);
    serve_v2_parse_request(body, len, 0, &a, &rq, &e);
    struct serve_tensor *parsed = rq.inputs;
    struct arena va; /* validation's memory, reset per call as a request's would be */
    arena_init(&va, 64 * 1024, 0);
    int64_t r;
    double t0 = now_s();
    for (int i = 0; i < iters; i++) {
      rq.inputs = parsed;
      rq.ninputs = 1;
      arena_reset(&va);
      if (serve_validate(&sig, &rq, &va, 1024, &r, &e)) {
        fprintf(stderr, "validate: %s\n", e.msg);
        return 1;
      }
    }
    double tv = (now_s() - t0) / iters * 1e6;
    t0 = now_s();
    for (int i = 0; i < iters; i++) {
      size_t hlen;
      buf_reset(&ob);
      serve_v2_encode_response(&ob, "m", "1", &rq, &out, 1, &hlen, &e);
    }
    double te = (now_s() - t0) / iters * 1e6;
    printf("%dx%d: validate %.2f us, encode [%d] FP32 response %.2f us (%zu bytes)\n", rows, cols,
           tv, rows, te, ob.len);
    buf_fini(&ob);
    buf_fini(&bb);
    arena_fini(&va);
    arena_fini(&a);
    free(y);
    free(body);
    free(nb);
  }
  bench_mlflow(1, iters);
  bench_mlflow(32, iters);
  return 0;
}
