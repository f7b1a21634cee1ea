/* tests/fuzz/fuzz_mlflow_payload: the MLflow scoring payload mapper
 * (serve_mlflow_parse_request) on any JSON, against one of five signatures
 * (byte 0 picks: a named-column FP64 table, the same with INT64, one FP32
 * tensor input, two named inputs, a BYTES input); then serve_validate and
 * serve_mlflow_encode_response with the tensors as outputs.
 *
 * The same bytes also go through serve_mlflow_parse_body, with the numeric
 * fast path and without: all three must agree (result, message, tensors
 * byte for byte) wherever jansson can read the body.
 *
 * Invariants: a refusal is INVALID_PARAMETER_VALUE with a message; an
 * accepted payload gives the signature's inputs in its order, each in the
 * signature's dtype, its bytes exactly what shape and dtype say; a table's
 * tensor is [rows, ncolumns]; validation refuses only with
 * INVALID_PARAMETER_VALUE and accepts what matches the signature; the answer
 * is an object whose "predictions" list has one entry per row. */
#define FUZZ_NAME "fuzz_mlflow_payload"
#include "fuzz_common.h"
#include "serve/proto.h"

#include <math.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  log_set_quiet(true);
  return 0;
}

static char *cols[] = {"age", "sex", "bmi"};
static struct serve_tensor_spec outs[] = {{"y", SERVE_FP32, 1, {-1}}};
static struct serve_tensor_spec t_f64[] = {{"X", SERVE_FP64, 2, {-1, 3}}};
static struct serve_tensor_spec t_i64[] = {{"X", SERVE_INT64, 2, {-1, 3}}};
static struct serve_tensor_spec t_mlp[] = {{"x", SERVE_FP32, 2, {-1, 4}}};
static struct serve_tensor_spec t_two[] = {{"a", SERVE_FP32, 2, {-1, 2}},
                                           {"b", SERVE_INT64, 1, {-1}}};
static struct serve_tensor_spec t_str[] = {{"text", SERVE_BYTES, 2, {-1, 1}}};
static struct serve_signature sigs[] = {
    {1, 1, t_f64, outs, 3, cols, NULL, true, true},
    {1, 1, t_i64, outs, 3, cols, NULL, true, false},
    {1, 1, t_mlp, outs, 0, NULL, NULL, true, false},
    {2, 1, t_two, outs, 0, NULL, NULL, true, false},
    {1, 1, t_str, outs, 0, NULL, NULL, true, false},
};

static void check_tensor(const struct serve_tensor *t, const struct serve_tensor_spec *sp,
                         const char *what) {
  CHECK(strcmp(t->name, sp->name) == 0, "%s: '%s' where '%s' belongs", what, esc(t->name),
        sp->name);
  CHECK(t->dtype == sp->dtype, "%s '%s': %s, the signature says %s", what, sp->name,
        serve_dtype_name(t->dtype), serve_dtype_name(sp->dtype));
  CHECK(t->ndim >= 1 && t->ndim <= SERVE_MAX_DIMS, "%s '%s': ndim %d", what, sp->name, t->ndim);
  int64_t n = serve_shape_count(t->shape, t->ndim);
  CHECK(n >= 0, "%s '%s': bad shape", what, sp->name);
  if (t->dtype == SERVE_BYTES)
    CHECK(serve_bytes_walk(t->data, t->nbytes, n, NULL) == (int64_t)t->nbytes,
          "%s '%s': BYTES do not fill it", what, sp->name);
  else
    CHECK(t->nbytes == (size_t)n * serve_dtype_size(t->dtype),
          "%s '%s': %zu bytes for %lld elements", what, sp->name, t->nbytes, (long long)n);
  volatile unsigned char sum = 0;
  for (size_t i = 0; i < t->nbytes; i++) sum ^= ((const unsigned char *)t->data)[i];
  (void)sum;
}

static bool same_inputs(const struct serve_request *a, const struct serve_request *b) {
  if (a->ninputs != b->ninputs || a->popts.proba != b->popts.proba ||
      a->popts.margin != b->popts.margin)
    return false;
  for (int i = 0; i < a->ninputs; i++) {
    const struct serve_tensor *x = &a->inputs[i], *y = &b->inputs[i];
    if (strcmp(x->name, y->name) || x->dtype != y->dtype || x->ndim != y->ndim ||
        x->nbytes != y->nbytes)
      return false;
    for (int d = 0; d < x->ndim; d++)
      if (x->shape[d] != y->shape[d]) return false;
    if (x->nbytes && memcmp(x->data, y->data, x->nbytes)) return false;
  }
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const struct serve_signature *sig = &sigs[data[0] % (sizeof sigs / sizeof *sigs)];
  const char *text = (const char *)data + 1;
  size_t tlen = size - 1;
  struct arena a;
  arena_init(&a, 4096, 0);
  struct err e, eb[2];
  struct serve_request rb[2];
  int rcb[2];
  for (int fast = 0; fast < 2; fast++) {
    memset(&eb[fast], 0, sizeof eb[fast]);
    serve_v2_fast_numbers = fast;
    rcb[fast] = serve_mlflow_parse_body(text, tlen, sig, &a, &rb[fast], &eb[fast]);
    CHECK(rcb[fast] == 0 || rcb[fast] == -(int)eb[fast].code, "rc %d, code %d", rcb[fast],
          (int)eb[fast].code);
    CHECK(rcb[fast] == 0 || eb[fast].code == ERR_INVALID_PARAMETER_VALUE ||
              eb[fast].code == ERR_MALFORMED_JSON,
          "body refused with %s: %s", err_code_str(eb[fast].code), esc(eb[fast].msg));
  }
  serve_v2_fast_numbers = true;
  json_t *body = json_parse(text, tlen, &e);
  if (!body) {
    /* jansson refuses it: so does the body path without the fast path; with
     * it, only numbers jansson cannot hold may read differently */
    CHECK(rcb[0] == -ERR_MALFORMED_JSON && strcmp(eb[0].msg, e.msg) == 0,
          "body path: %s; json_parse: %s", esc(eb[0].msg), esc(e.msg));
    if (!strstr(e.msg, "too big") && !strstr(e.msg, "real number overflow"))
      CHECK(rcb[1] == -ERR_MALFORMED_JSON && strcmp(eb[1].msg, e.msg) == 0,
            "fast body path: %s; json_parse: %s", esc(eb[1].msg), esc(e.msg));
    arena_fini(&a);
    return 0;
  }
  struct serve_request rq;
  memset(&e, 0, sizeof e);
  int rc = serve_mlflow_parse_request(body, sig, &a, &rq, &e);
  for (int fast = 0; fast < 2; fast++) {
    CHECK(rcb[fast] == rc, "tree %d (%s), body (fast %d) %d (%s)", rc, esc(e.msg), fast, rcb[fast],
          esc(eb[fast].msg));
    if (rc)
      CHECK(strcmp(eb[fast].msg, e.msg) == 0, "tree: %s; body (fast %d): %s", esc(e.msg), fast,
            esc(eb[fast].msg));
    else
      CHECK(same_inputs(&rq, &rb[fast]), "the body path (fast %d) made other tensors", fast);
  }
  if (rc) {
    CHECK(rc == -ERR_INVALID_PARAMETER_VALUE && e.code == ERR_INVALID_PARAMETER_VALUE,
          "refused with %s: %s", err_code_str(e.code), esc(e.msg));
    CHECK(e.msg[0], "a refusal without a message");
    goto done;
  }
  CHECK(rq.ninputs == sig->ninputs, "%d inputs for a %d-input signature", rq.ninputs, sig->ninputs);
  for (int i = 0; i < rq.ninputs; i++) check_tensor(&rq.inputs[i], &sig->inputs[i], "parsed");
  if (sig->columns)
    CHECK(rq.inputs[0].ndim == 2 && rq.inputs[0].shape[1] == sig->ncolumns,
          "a table of the wrong width");

  /* answer with the inputs as outputs */
  struct serve_tensor *ts = arena_alloc(&a, (size_t)rq.ninputs * sizeof *ts);
  memcpy(ts, rq.inputs, (size_t)rq.ninputs * sizeof *ts);
  json_t *ans = serve_mlflow_encode_response(ts, rq.ninputs);
  CHECK(ans, "no answer for valid tensors");
  json_t *p = json_object_get(ans, "predictions");
  int64_t rows = ts[0].shape[0];
  for (int i = 1; i < rq.ninputs; i++)
    if (ts[i].shape[0] > rows) rows = ts[i].shape[0];
  CHECK(json_is_array(p) && (int64_t)json_array_size(p) == rows, "%zu predictions for %lld rows",
        json_array_size(p), (long long)rows);
  char *dump = json_dumps(ans, JSON_COMPACT | JSON_REAL_PRECISION(17));
  CHECK(dump, "the answer does not serialize");
  json_t *back = json_loads(dump, 0, NULL);
  CHECK(back, "the answer is not JSON: %.200s", dump);
  json_decref(back);
  free(dump);
  json_decref(ans);

  int64_t r = -1;
  int vrc = serve_validate(sig, &rq, &a, 0, &r, &e);
  if (vrc) {
    CHECK(e.code == ERR_INVALID_PARAMETER_VALUE && e.msg[0], "validate refused with %s: %s",
          err_code_str(e.code), esc(e.msg));
  } else {
    for (int i = 0; i < rq.ninputs; i++) {
      check_tensor(&rq.inputs[i], &sig->inputs[i], "validated");
      CHECK(rq.inputs[i].shape[0] == r, "rows %lld vs %lld", (long long)rq.inputs[i].shape[0],
            (long long)r);
    }
  }
done:
  arena_fini(&a);
  json_decref(body);
  return 0;
}
