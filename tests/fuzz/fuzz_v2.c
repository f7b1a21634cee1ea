/* tests/fuzz/fuzz_v2: the KServe V2 request parser (serve_v2_parse_request,
 * JSON and binary), then serve_validate against a fixed signature, then
 * serve_v2_encode_response with the tensors as outputs.
 *
 * Input: byte 0 picks the mode (bit 0: binary, then bytes 1-2 are
 * Inference-Header-Content-Length, little-endian; bit 1: which signature);
 * the rest is the body.
 *
 * Invariants: a refusal is INVALID_PARAMETER_VALUE or MALFORMED_JSON with a
 * message (never INTERNAL: that is the fast number path losing its place);
 * the fast path and jansson agree (but for integers past int64 and doubles
 * past DBL_MAX, which only the scanner reads); a parsed tensor's bytes are
 * exactly what its shape and dtype say, aligned for the dtype; a validated
 * request matches the signature (names, order, dtypes, shapes, rows, no
 * NaN/Inf); an encoded response is JSON with a true binary_data_size for
 * each binary part, and parsing it back as a request gives the same
 * tensors byte for byte (where JSON can say them: finite floats, UTF-8
 * BYTES). */
#define FUZZ_NAME "fuzz_v2"
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

static struct serve_tensor_spec sig1_in[] = {{"x", SERVE_FP32, 2, {-1, 4}}};
static struct serve_tensor_spec sig2_in[] = {{"a", SERVE_FP64, 2, {-1, -1}},
                                             {"b", SERVE_INT64, 1, {-1}}};
static struct serve_tensor_spec outs[] = {{"y", SERVE_FP32, 1, {-1}}};
static struct serve_signature sigs[2] = {
    {1, 1, sig1_in, outs, 0, NULL, NULL, true, false},
    {2, 1, sig2_in, outs, 0, NULL, NULL, true, true},
};

static void check_tensor(const struct serve_tensor *t, const char *what) {
  CHECK(t->ndim >= 0 && t->ndim <= SERVE_MAX_DIMS, "%s '%s': ndim %d", what, esc(t->name), t->ndim);
  CHECK((unsigned)t->dtype < SERVE_DTYPE__COUNT, "%s: dtype %d", what, (int)t->dtype);
  CHECK(memchr(t->name, 0, sizeof t->name) && t->name[0], "%s: name empty or unterminated", what);
  CHECK(!t->owned && !t->json, "%s '%s': owned or json set", what, esc(t->name));
  int64_t count = serve_shape_count(t->shape, t->ndim);
  CHECK(count >= 0, "%s '%s': bad shape", what, esc(t->name));
  if (t->dtype == SERVE_BYTES) {
    CHECK(serve_bytes_walk(t->data, t->nbytes, count, NULL) == (int64_t)t->nbytes,
          "%s '%s': BYTES do not fill %zu", what, esc(t->name), t->nbytes);
  } else {
    size_t es = serve_dtype_size(t->dtype);
    CHECK(t->nbytes == (size_t)count * es, "%s '%s': %zu bytes for %lld elements", what,
          esc(t->name), t->nbytes, (long long)count);
    CHECK(((uintptr_t)t->data & (es - 1)) == 0, "%s '%s': data not aligned for %s", what,
          esc(t->name), serve_dtype_name(t->dtype));
  }
  /* every byte readable (ASan) */
  volatile unsigned char sum = 0;
  for (size_t i = 0; i < t->nbytes; i++) sum ^= ((const unsigned char *)t->data)[i];
  (void)sum;
}

static bool same_tensor(const struct serve_tensor *a, const struct serve_tensor *b) {
  if (a->dtype != b->dtype || a->ndim != b->ndim || a->nbytes != b->nbytes ||
      strcmp(a->name, b->name))
    return false;
  for (int d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d]) return false;
  return a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0;
}

static bool jansson_only_number(const struct err *e) {
  return e->code == ERR_MALFORMED_JSON &&
         (strstr(e->msg, "too big") || strstr(e->msg, "real number overflow"));
}

/* Whether JSON can carry t exactly: finite floats, BYTES in UTF-8 with no
 * NUL (the house parser refuses \u0000). */
static bool json_exact(const struct serve_tensor *t) {
  int64_t n = serve_shape_count(t->shape, t->ndim);
  if (t->dtype == SERVE_BYTES) {
    const char *p = t->data;
    for (int64_t i = 0; i < n; i++) {
      uint32_t l;
      memcpy(&l, p, 4);
      json_t *s = memchr(p + 4, 0, l) ? NULL : json_stringn(p + 4, l); /* NULL: not UTF-8 */
      if (!s) return false;
      json_decref(s);
      p += 4 + l;
    }
    return true;
  }
  if (!serve_dtype_is_float(t->dtype)) return true;
  for (int64_t i = 0; i < n; i++) {
    struct serve_val v;
    serve_val_load(t->dtype, t->data, (size_t)i, &v);
    if (!isfinite(v.f)) return false;
  }
  return true;
}

/* The response read back as a request: its outputs renamed inputs, the
 * binary part after the header as it is. */
static void round_trip(const struct buf *out, size_t hl, const struct serve_tensor *ts, int nt) {
  size_t jl = hl ? hl : out->len;
  json_error_t je;
  /* jansson holds no integer past int64: read those as reals here */
  json_t *resp = json_loadb(out->data, jl, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &je);
  CHECK(resp, "response JSON does not parse: %s\n  %.*s", je.text, (int)(jl < 300 ? jl : 300),
        out->data);
  json_t *o = json_object_get(resp, "outputs");
  CHECK(json_is_array(o), "response has no outputs array");
  size_t bin_total = 0, nbin = 0, i;
  json_t *x;
  json_array_foreach(o, i, x) {
    json_t *bs = json_object_get(json_object_get(x, "parameters"), "binary_data_size");
    if (bs) {
      CHECK(json_is_number(bs) && json_number_value(bs) >= 0, "binary_data_size is not a size");
      bin_total += (size_t)json_number_value(bs);
      nbin++;
    } else {
      CHECK(json_is_array(json_object_get(x, "data")),
            "an output with neither data nor binary_data_size");
    }
  }
  CHECK(jl + bin_total == out->len, "header %zu + binary_data_size %zu != %zu bytes", jl, bin_total,
        out->len);
  CHECK((nbin > 0) == (hl > 0), "header_len %zu with %zu binary outputs", hl, nbin);
  /* the request is the response's text from its outputs on: ,"outputs":[
   * cannot occur inside a JSON string (a quote there is escaped) */
  const char *key = ",\"outputs\":[";
  const char *at = memmem(out->data, jl, key, strlen(key));
  CHECK(at, "no outputs key in the response");
  struct buf b;
  buf_init(&b);
  buf_puts(&b, "{\"inputs\":");
  buf_append(&b, at + strlen(key) - 1, jl - (size_t)(at + strlen(key) - 1 - out->data));
  size_t nhl = hl ? b.len : 0;
  if (hl) buf_append(&b, out->data + hl, out->len - hl);
  struct arena a;
  arena_init(&a, 4096, 0);
  struct serve_request back;
  struct err e;
  int rc = serve_v2_parse_request(b.data, b.len, nhl, &a, &back, &e);
  bool exact = true;
  for (int k = 0; k < nt; k++) exact &= json_exact(&ts[k]);
  if (exact) {
    CHECK(rc == 0, "the response does not parse back as a request: %s", esc(e.msg));
    for (int k = 0; k < back.ninputs; k++) {
      const struct serve_tensor *orig = NULL;
      for (int j = 0; j < nt && !orig; j++)
        if (strcmp(ts[j].name, back.inputs[k].name) == 0) orig = &ts[j];
      CHECK(orig, "output '%s' came from nowhere", esc(back.inputs[k].name));
      CHECK(same_tensor(orig, &back.inputs[k]), "output '%s' (%s) changed on the way back",
            esc(orig->name), serve_dtype_name(orig->dtype));
    }
  }
  arena_fini(&a);
  buf_fini(&b);
  json_decref(resp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  unsigned mode = data[0];
  const char *body = (const char *)data + 1;
  size_t len = size - 1, hl = 0;
  if (mode & 1) {
    if (size < 3) return 0;
    hl = (size_t)data[1] | (size_t)data[2] << 8;
    body += 2;
    len -= 2;
    if (hl > len + 1) hl = len + 1; /* past the body by one: the refusal path */
  }
  const struct serve_signature *sig = &sigs[(mode >> 1) & 1];

  struct arena a;
  arena_init(&a, 4096, 0);
  struct serve_request rq, slow;
  struct err e, es;
  memset(&e, 0, sizeof e);
  serve_v2_fast_numbers = false;
  int rs = serve_v2_parse_request(body, len, hl, &a, &slow, &es);
  serve_v2_fast_numbers = true;
  int rc = serve_v2_parse_request(body, len, hl, &a, &rq, &e);
  if (rc) {
    CHECK(rc == -(int)e.code, "rc %d but code %d", rc, (int)e.code);
    CHECK(e.code == ERR_INVALID_PARAMETER_VALUE || e.code == ERR_MALFORMED_JSON,
          "refused with %s: %s", err_code_str(e.code), esc(e.msg));
    CHECK(e.msg[0], "a refusal without a message");
  }
  if (rs && jansson_only_number(&es)) {
    /* the scanner read on past what jansson could not: it may accept, or
     * refuse something further on, but not call the JSON malformed */
    CHECK(rc == 0 || e.code == ERR_INVALID_PARAMETER_VALUE || jansson_only_number(&e),
          "jansson: %s; fast path: %s", esc(es.msg), esc(e.msg));
  } else {
    CHECK(rc == rs, "fast path %d (%s), jansson %d (%s)", rc, esc(e.msg), rs, esc(es.msg));
    if (rc)
      CHECK(e.code == es.code, "fast path %s, jansson %s", err_code_str(e.code),
            err_code_str(es.code));
    for (int i = 0; !rc && i < rq.ninputs; i++)
      CHECK(same_tensor(&rq.inputs[i], &slow.inputs[i]), "input '%s' differs between the paths",
            esc(rq.inputs[i].name));
  }
  if (rc) {
    arena_fini(&a);
    return 0;
  }
  CHECK(rq.ninputs >= 1 && rq.ninputs <= SERVE_V2_MAX_INPUTS, "%d inputs", rq.ninputs);
  for (int i = 0; i < rq.ninputs; i++) {
    check_tensor(&rq.inputs[i], "parsed");
    for (int j = 0; j < i; j++)
      CHECK(strcmp(rq.inputs[i].name, rq.inputs[j].name), "input names repeat");
  }
  for (int i = 0; i < rq.noutputs; i++) CHECK(rq.outputs[i].name, "output %d has no name", i);

  /* the parsed tensors answer as outputs (before validation changes them) */
  int nt = rq.ninputs;
  struct serve_tensor *ts = arena_alloc(&a, (size_t)nt * sizeof *ts);
  memcpy(ts, rq.inputs, (size_t)nt * sizeof *ts);
  struct buf out;
  buf_init(&out);
  size_t rhl = 7;
  struct err ee;
  int erc = serve_v2_encode_response(&out, "model", "1", &rq, ts, nt, &rhl, &ee);
  if (erc) {
    CHECK(ee.code == ERR_INVALID_PARAMETER_VALUE && strstr(ee.msg, "unknown output"),
          "encode refused: %s", esc(ee.msg));
  } else {
    round_trip(&out, rhl, ts, nt);
  }
  buf_fini(&out);

  int64_t rows = -1;
  struct err ve;
  int vrc = serve_validate(sig, &rq, &a, 16, &rows, &ve);
  if (vrc) {
    CHECK(ve.code == ERR_INVALID_PARAMETER_VALUE && ve.msg[0], "validate refused with %s: %s",
          err_code_str(ve.code), esc(ve.msg));
  } else {
    CHECK(rq.ninputs == sig->ninputs, "%d inputs after validation", rq.ninputs);
    CHECK(rows >= 0 && rows <= 16, "rows %lld", (long long)rows);
    for (int j = 0; j < rq.ninputs; j++) {
      const struct serve_tensor *t = &rq.inputs[j];
      const struct serve_tensor_spec *sp = &sig->inputs[j];
      CHECK(strcmp(t->name, sp->name) == 0 && t->dtype == sp->dtype && t->ndim == sp->ndim,
            "input %d is not '%s'", j, sp->name);
      for (int d = 0; d < sp->ndim; d++)
        CHECK(sp->shape[d] < 0 || sp->shape[d] == t->shape[d], "input '%s' dim %d", sp->name, d);
      CHECK(t->shape[0] == rows, "input '%s' has %lld rows, validate said %lld", sp->name,
            (long long)t->shape[0], (long long)rows);
      check_tensor(t, "validated");
      int64_t n = serve_shape_count(t->shape, t->ndim);
      for (int64_t k = 0; serve_dtype_is_float(t->dtype) && k < n; k++) {
        struct serve_val v;
        serve_val_load(t->dtype, t->data, (size_t)k, &v);
        CHECK(!isinf(v.f) && (sig->allow_nan || !isnan(v.f)), "input '%s' kept a non-finite value",
              sp->name);
      }
    }
  }
  arena_fini(&a);
  return 0;
}
