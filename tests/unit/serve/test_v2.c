/* tests for serve/v2: the V2 inference request (JSON and binary, every
 * datatype, nesting, coercion, every malformed shape of it) and response
 * (filtering, binary outputs, per-row JSON, NaN), with the fast number path
 * checked against jansson's. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/proto.h"

static struct arena A;
static void setup(void) { arena_init(&A, 4096, 0); }
static void teardown(void) {
  arena_fini(&A);
  serve_v2_fast_numbers = true;
}
TestSuite(serve_v2, .init = setup, .fini = teardown);

static int parse_n(const char *body, size_t len, size_t hl, struct serve_request *rq,
                   struct err *e) {
  memset(e, 0, sizeof *e);
  return serve_v2_parse_request(body, len, hl, &A, rq, e);
}
static int parse(const char *body, struct serve_request *rq, struct err *e) {
  return parse_n(body, strlen(body), 0, rq, e);
}

/* Parses body with the fast path and without; both must agree (result,
 * error code, tensors byte for byte). Returns the fast result in rq. */
static int parse_both(const char *body, struct serve_request *rq, struct err *e) {
  struct serve_request slow;
  struct err es;
  serve_v2_fast_numbers = false;
  int rs = parse(body, &slow, &es);
  serve_v2_fast_numbers = true;
  int rf = parse(body, rq, e);
  /* jansson holds no integer past int64 and no double past DBL_MAX; the
   * scanner reads the first exactly (UINT64) and calls the second out of
   * range: the only places the two may differ */
  if (rs == -ERR_MALFORMED_JSON &&
      (strstr(es.msg, "too big") || strstr(es.msg, "real number overflow"))) {
    cr_assert(rf == 0 || rf == -ERR_INVALID_PARAMETER_VALUE || (rf == rs && e->code == es.code),
              "fast %d (%s)", rf, e->msg);
    return rf;
  }
  cr_assert_eq(rf, rs, "fast %d (%s) vs jansson %d (%s) for %s", rf, e->msg, rs, es.msg, body);
  if (rf) {
    cr_assert_eq(e->code, es.code);
    return rf;
  }
  cr_assert_eq(rq->ninputs, slow.ninputs);
  for (int i = 0; i < rq->ninputs; i++) {
    const struct serve_tensor *a = &rq->inputs[i], *b = &slow.inputs[i];
    cr_assert_eq(a->nbytes, b->nbytes, "input %d: %zu vs %zu bytes", i, a->nbytes, b->nbytes);
    cr_assert(a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0,
              "input %d bytes differ for %s", i, body);
  }
  return rf;
}

#define EXPECT_ERR(body, code_, needle)                                                            \
  do {                                                                                             \
    struct serve_request rq_;                                                                      \
    struct err e_;                                                                                 \
    int rc_ = parse(body, &rq_, &e_);                                                              \
    cr_assert_eq(rc_, -(code_), "rc %d for %s (%s)", rc_, body, e_.msg);                           \
    cr_assert(strstr(e_.msg, needle) != NULL, "message '%s' lacks '%s'", e_.msg, needle);          \
  } while (0)

/* ---- every datatype, JSON ---------------------------------------------------- */

struct dt_case {
  const char *dtype, *json, *back; /* back: the response's data when it differs */
  size_t size;
  unsigned char bytes[64];
};

static const struct dt_case dt_cases[] = {
    {"BOOL", "[true,false,true]", NULL, 3, {1, 0, 1}},
    {"UINT8", "[0,255,7]", NULL, 3, {0, 255, 7}},
    {"UINT16", "[0,65535,258]", NULL, 6, {0, 0, 255, 255, 2, 1}},
    {"UINT32", "[0,4294967295,1]", NULL, 12, {0, 0, 0, 0, 255, 255, 255, 255, 1, 0, 0, 0}},
    {"UINT64", "[0,18446744073709551615,1]", NULL, 24, {0,   0,   0,   0,   0,   0,   0,   0,
                                                        255, 255, 255, 255, 255, 255, 255, 255,
                                                        1,   0,   0,   0,   0,   0,   0,   0}},
    {"INT8", "[-128,127,-1]", NULL, 3, {0x80, 0x7f, 0xff}},
    {"INT16", "[-32768,32767,-2]", NULL, 6, {0, 0x80, 0xff, 0x7f, 0xfe, 0xff}},
    {"INT32",
     "[-2147483648,2147483647,3]",
     NULL,
     12,
     {0, 0, 0, 0x80, 0xff, 0xff, 0xff, 0x7f, 3, 0, 0, 0}},
    {"INT64",
     "[-9223372036854775808,9223372036854775807,-3]",
     NULL,
     24,
     {0,    0,    0,    0,    0,    0,    0,    0x80, 0xff, 0xff, 0xff, 0xff,
      0xff, 0xff, 0xff, 0x7f, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
    /* 1/3 -> 0x3555 (0.33325195), 65504 the largest, -2 */
    {"FP16",
     "[0.3333333333333333,65504,-2]",
     "[0.33325195,65504.0,-2.0]",
     6,
     {0x55, 0x35, 0xff, 0x7b, 0x00, 0xc0}},
    /* 1.00390625 is a tie -> 1.0 (0x3f80); 3 -> 0x4040 */
    {"BF16", "[1.00390625,3,-0.5]", "[1.0,3.0,-0.5]", 6, {0x80, 0x3f, 0x40, 0x40, 0x00, 0xbf}},
    {"FP32",
     "[0.1,-2,3.5e10]",
     "[0.1,-2.0,35000000000.0]",
     12,
     {0xcd, 0xcc, 0xcc, 0x3d, 0, 0, 0, 0xc0, 0x9a, 0x62, 0x02, 0x51}},
    {"FP64", "[0.1,-2,1e300]", "[0.1,-2.0,1e+300]", 24, {0x9a, 0x99, 0x99, 0x99, 0x99, 0x99,
                                                         0xb9, 0x3f, 0,    0,    0,    0,
                                                         0,    0,    0,    0xc0, 0x9c, 0x75,
                                                         0x00, 0x88, 0x3c, 0xe4, 0x37, 0x7e}},
    {"BYTES",
     "[\"ab\",\"\",\"\\u00e9\"]",
     NULL,
     18,
     {2, 0, 0, 0, 'a', 'b', 0, 0, 0, 0, 2, 0, 0, 0, 0xc3, 0xa9}},
};

Test(serve_v2, every_datatype_json_round_trip) {
  for (size_t k = 0; k < sizeof dt_cases / sizeof *dt_cases; k++) {
    const struct dt_case *c = &dt_cases[k];
    char body[512];
    snprintf(body, sizeof body,
             "{\"id\":\"q%zu\",\"inputs\":[{\"name\":\"x\",\"shape\":[3],\"datatype\":\"%s\","
             "\"data\":%s}]}",
             k, c->dtype, c->json);
    struct serve_request rq;
    struct err e;
    cr_assert_eq(parse_both(body, &rq, &e), 0, "%s: %s", c->dtype, e.msg);
    const struct serve_tensor *t = &rq.inputs[0];
    size_t want = strcmp(c->dtype, "BYTES") == 0 ? 4 + 2 + 4 + 4 + 2 : c->size;
    cr_assert_eq(t->nbytes, want, "%s: %zu bytes", c->dtype, t->nbytes);
    cr_assert_eq(memcmp(t->data, c->bytes, want), 0, "%s bytes differ", c->dtype);
    cr_assert_eq(t->ndim, 1);
    cr_assert_eq(t->shape[0], 3);
    cr_assert_str_eq(t->name, "x");

    /* the parsed tensor as an output, in JSON */
    struct buf out;
    buf_init(&out);
    size_t hl = 99;
    cr_assert_eq(serve_v2_encode_response(&out, "m", "2", &rq, t, 1, &hl, &e), 0, "%s", e.msg);
    cr_assert_eq(hl, 0);
    char want_resp[512];
    snprintf(want_resp, sizeof want_resp,
             "{\"model_name\":\"m\",\"model_version\":\"2\",\"id\":\"q%zu\",\"outputs\":[{\"name\":"
             "\"x\",\"datatype\":"
             "\"%s\",\"shape\":[3],\"data\":%s}]}",
             k, c->dtype, c->back ? c->back : c->json);
    if (strcmp(c->dtype, "BYTES") == 0)
      snprintf(want_resp, sizeof want_resp,
               "{\"model_name\":\"m\",\"model_version\":\"2\",\"id\":\"q%zu\",\"outputs\":[{"
               "\"name\":\"x\","
               "\"datatype\":\"BYTES\",\"shape\":[3],\"data\":[\"ab\",\"\",\"\xc3\xa9\"]}]}",
               k);
    cr_assert_str_eq(out.data, want_resp);
    buf_fini(&out);
  }
}

Test(serve_v2, every_datatype_binary_round_trip) {
  for (size_t k = 0; k < sizeof dt_cases / sizeof *dt_cases; k++) {
    const struct dt_case *c = &dt_cases[k];
    size_t size = strcmp(c->dtype, "BYTES") == 0 ? 16 : c->size;
    char hdr[256];
    int hl =
        snprintf(hdr, sizeof hdr,
                 "{\"inputs\":[{\"name\":\"x\",\"shape\":[3],\"datatype\":\"%s\",\"parameters\":{"
                 "\"binary_data_size\":%zu}}],\"parameters\":{\"binary_data_output\":true}}",
                 c->dtype, size);
    /* 8 spare bytes in front so the tensor can start at any alignment */
    char *body = malloc((size_t)hl + size + 8);
    for (size_t shift = 0; shift < 8; shift += 3) {
      char *b = body + shift;
      memcpy(b, hdr, (size_t)hl);
      memcpy(b + hl, c->bytes, size);
      struct serve_request rq;
      struct err e;
      cr_assert_eq(parse_n(b, (size_t)hl + size, (size_t)hl, &rq, &e), 0, "%s: %s", c->dtype,
                   e.msg);
      const struct serve_tensor *t = &rq.inputs[0];
      cr_assert_eq(t->nbytes, size);
      cr_assert_eq(memcmp(t->data, c->bytes, size), 0);
      size_t es = serve_dtype_size(t->dtype);
      if (es > 1) cr_assert_eq((uintptr_t)t->data % es, 0, "%s data is not aligned", c->dtype);
      if (es <= 1 || ((uintptr_t)(b + hl)) % es == 0)
        cr_assert_eq(t->data, b + hl, "%s: aligned data stays in the body", c->dtype);
      cr_assert(rq.binary_all);

      struct buf out;
      buf_init(&out);
      size_t rhl = 0;
      cr_assert_eq(serve_v2_encode_response(&out, "m", NULL, &rq, t, 1, &rhl, &e), 0, "%s", e.msg);
      char want[256];
      int wl = snprintf(
          want, sizeof want,
          "{\"model_name\":\"m\",\"outputs\":[{\"name\":\"x\",\"datatype\":\"%s\",\"shape\":[3],"
          "\"parameters\":{\"binary_data_size\":%zu}}]}",
          c->dtype, size);
      cr_assert_eq(rhl, (size_t)wl, "%s: header %zu", c->dtype, rhl);
      cr_assert_eq(memcmp(out.data, want, (size_t)wl), 0, "%.*s", (int)rhl, out.data);
      cr_assert_eq(out.len, (size_t)wl + size);
      cr_assert_eq(memcmp(out.data + wl, c->bytes, size), 0);
      buf_fini(&out);
    }
    free(body);
  }
}

Test(serve_v2, nested_and_flat_data_agree) {
  static const char *bodies[] = {
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,3],\"datatype\":\"FP32\",\"data\":[1,2,3,4,5,6]}]"
      "}",
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,3],\"datatype\":\"FP32\",\"data\":[[1,2,3],[4,5,6]"
      "]}]}",
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,3],\"datatype\":\"FP32\",\"data\":[ [ 1 , 2,3 ] "
      ",[4,5, 6]] }]}",
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,3],\"datatype\":\"FP32\",\"data\":[[1,2,3],[4,5,6."
      "0]], "
      "\"parameters\":{}}]}",
  };
  float want[] = {1, 2, 3, 4, 5, 6};
  for (size_t i = 0; i < 4; i++) {
    struct serve_request rq;
    struct err e;
    cr_assert_eq(parse_both(bodies[i], &rq, &e), 0, "%s", e.msg);
    cr_assert_eq(memcmp(rq.inputs[0].data, want, sizeof want), 0, "body %zu", i);
  }
  /* 3-D nested, and a shape with a zero */
  struct serve_request rq;
  struct err e;
  cr_assert_eq(
      parse_both(
          "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,1,2],\"datatype\":\"INT32\",\"data\":[[[1,2]],"
          "[[3,4]]]}]}",
          &rq, &e),
      0, "%s", e.msg);
  cr_assert_eq(((int32_t *)rq.inputs[0].data)[3], 4);
  cr_assert_eq(
      parse_both(
          "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,0],\"datatype\":\"FP32\",\"data\":[[],[]]}]}",
          &rq, &e),
      0, "%s", e.msg);
  cr_assert_eq(rq.inputs[0].nbytes, 0);
  cr_assert_eq(
      parse_both(
          "{\"inputs\":[{\"name\":\"x\",\"shape\":[0,4],\"datatype\":\"FP32\",\"data\":[]}]}", &rq,
          &e),
      0, "%s", e.msg);
  /* a scalar: [] shape, data flat or bare */
  cr_assert_eq(
      parse_both(
          "{\"inputs\":[{\"name\":\"x\",\"shape\":[],\"datatype\":\"FP64\",\"data\":[2.5]}]}", &rq,
          &e),
      0, "%s", e.msg);
  cr_assert_eq(*(double *)rq.inputs[0].data, 2.5);
  cr_assert_eq(
      parse_both("{\"inputs\":[{\"name\":\"x\",\"shape\":[],\"datatype\":\"FP64\",\"data\":2.5}]}",
                 &rq, &e),
      0, "%s", e.msg);
  cr_assert_eq(*(double *)rq.inputs[0].data, 2.5);
}

Test(serve_v2, nesting_must_follow_the_shape) {
  struct serve_request rq;
  struct err e;
  static const struct {
    const char *data, *needle;
  } bad[] = {
      {"[[1,2],[3,4],[5,6]]",
       "input 'x': data nesting does not follow shape [2,3] (an array at depth"},
      {"[[1,2,3,4],[5,6]]", "nesting does not follow shape [2,3]"},
      {"[[1,2,3],4,5,6]", "input 'x': data "}, /* "mixes ..." or "nesting does not follow ..." */
      {"[1,2,3,[4,5,6]]", "shape [2,3] needs 6 elements, data has 6"},
      {"[[[1,2,3]],[[4,5,6]]]", "shape [2,3]"},
      {"[1,2,3,4,5]", "input 'x': shape [2,3] needs 6 elements, data has 5"},
      {"[[1,2,3],[4,5]]", "input 'x': shape [2,3] needs 6 elements, data has 5"},
      {"{\"a\":1}", "data must be an array"},
      {"7", "data must be an array"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char body[256];
    snprintf(body, sizeof body,
             "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,3],\"datatype\":\"FP32\",\"data\":%s}]}",
             bad[i].data);
    for (int fast = 0; fast < 2; fast++) {
      serve_v2_fast_numbers = fast;
      int rc = parse(body, &rq, &e);
      cr_assert_eq(rc, -ERR_INVALID_PARAMETER_VALUE, "%s (fast %d): rc %d %s", bad[i].data, fast,
                   rc, e.msg);
      /* the mixed flat case counts 7 leaves one way and refuses the mix the other */
      if (i != 3)
        cr_assert(strstr(e.msg, bad[i].needle), "%s (fast %d): '%s'", bad[i].data, fast, e.msg);
    }
  }
}

Test(serve_v2, json_values_are_coerced_by_the_rules) {
  struct serve_request rq;
  struct err e;
  /* ints into floats, whole floats into ints, exponents, -0 */
  cr_assert_eq(parse_both("{\"inputs\":[{\"name\":\"x\",\"shape\":[4],\"datatype\":\"FP32\","
                          "\"data\":[1,-0,1e2,16777217]}]}",
                          &rq, &e),
               0);
  float *f = rq.inputs[0].data;
  cr_assert(f[0] == 1 && f[1] == 0 && f[2] == 100 && f[3] == 16777216.0f);
  cr_assert_eq(parse_both("{\"inputs\":[{\"name\":\"x\",\"shape\":[3],\"datatype\":\"INT64\","
                          "\"data\":[2.0,1e3,-5E0]}]}",
                          &rq, &e),
               0, "%s", e.msg);
  int64_t *i64 = rq.inputs[0].data;
  cr_assert(i64[0] == 2 && i64[1] == 1000 && i64[2] == -5);

  static const struct {
    const char *dtype, *data, *needle;
  } bad[] = {
      {"INT32", "[1,2.5]", "input 'x' element 1: 2.5 is not a whole number, which INT32 needs"},
      {"UINT8", "[256]", "input 'x' element 0: 256 is out of range for UINT8"},
      {"UINT64", "[-1]", "input 'x' element 0: -1 is out of range for UINT64"},
      {"INT64", "[9223372036854775808]", "out of range for INT64"},
      {"INT8", "[1e300]", "out of range for INT8"},
      {"FP32", "[1e39]", "input 'x' element 0: 1e39 is out of range for FP32"},
      {"FP16", "[70000]", "70000 is out of range for FP16"},
      {"FP32", "[true]", "true is a bool; FP32 takes numbers"},
      {"FP32", "[\"1.5\"]", "a string; FP32 takes numbers"},
      {"FP32", "[null]", "null is not a value of FP32"},
      {"BOOL", "[1]", "BOOL takes true or false, not"},
      {"BOOL", "[\"true\"]", "a string; BOOL takes true or false"},
      {"BYTES", "[1]", "BYTES takes strings, not"},
      {"BYTES", "[true]", "BYTES takes strings, not true"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char body[256];
    snprintf(body, sizeof body,
             "{\"inputs\":[{\"name\":\"x\",\"shape\":[%d],\"datatype\":\"%s\",\"data\":%s}]}",
             strchr(bad[i].data, ',') ? 2 : 1, bad[i].dtype, bad[i].data);
    int rc = parse(body, &rq, &e);
    cr_assert_eq(rc, -ERR_INVALID_PARAMETER_VALUE, "%s %s: %d", bad[i].dtype, bad[i].data, rc);
    cr_assert(strstr(e.msg, bad[i].needle), "%s %s: '%s'", bad[i].dtype, bad[i].data, e.msg);
  }
  /* a 2-D position reads as [row,col] */
  EXPECT_ERR("{\"inputs\":[{\"name\":\"x\",\"shape\":[2,2],\"datatype\":\"INT32\",\"data\":[[1,2],["
             "3,4.5]]}]}",
             ERR_INVALID_PARAMETER_VALUE, "input 'x' element [1,1]: 4.5 is not a whole number");
}

Test(serve_v2, fp16_and_bf16_from_json_round_correctly) {
  struct serve_request rq;
  struct err e;
  /* numpy: float16(0.1) = 0x2e66; 1+2^-11+2^-40 rounds up (0x3c01) only when rounded once */
  cr_assert_eq(
      parse_both("{\"inputs\":[{\"name\":\"h\",\"shape\":[3],\"datatype\":\"FP16\",\"data\":[0.1,"
                 "1.0004882812509095,5.960464477539063e-08]}]}",
                 &rq, &e),
      0, "%s", e.msg);
  uint16_t *h = rq.inputs[0].data;
  cr_assert_eq(h[0], 0x2e66);
  cr_assert_eq(h[1], 0x3c01);
  cr_assert_eq(h[2], 0x0001);
  cr_assert_eq(parse_both("{\"inputs\":[{\"name\":\"b\",\"shape\":[2],\"datatype\":\"BF16\","
                          "\"data\":[1.0039062500000009,"
                          "-3.0e38]}]}",
                          &rq, &e),
               0, "%s", e.msg);
  h = rq.inputs[0].data;
  cr_assert_eq(h[0], 0x3f81, "above the tie by less than a float's ulp");
  cr_assert_eq(h[1], 0xff62);
}

Test(serve_v2, bytes_hold_any_byte) {
  struct serve_request rq;
  struct err e;
  cr_assert_eq(parse("{\"inputs\":[{\"name\":\"s\",\"shape\":[2,1],\"datatype\":\"BYTES\",\"data\":"
                     "[[\"a\\tb\"],"
                     "[\"\\\"q\\\"\"]]}]}",
                     &rq, &e),
               0, "%s", e.msg);
  const unsigned char want[] = {3, 0, 0, 0, 'a', '\t', 'b', 3, 0, 0, 0, '"', 'q', '"'};
  cr_assert_eq(rq.inputs[0].nbytes, sizeof want);
  cr_assert_eq(memcmp(rq.inputs[0].data, want, sizeof want), 0);
  /* JSON text cannot carry NUL here (the house parser refuses \u0000); the
   * binary extension can, and the JSON answer escapes it */
  cr_assert_eq(parse("{\"inputs\":[{\"name\":\"s\",\"shape\":[1],\"datatype\":\"BYTES\",\"data\":["
                     "\"a\\u0000\"]}]}",
                     &rq, &e),
               -ERR_MALFORMED_JSON);
  const char *h =
      "{\"inputs\":[{\"name\":\"s\",\"shape\":[1],\"datatype\":\"BYTES\",\"parameters\":{"
      "\"binary_data_size\":7}}]}";
  char body[256];
  size_t hl = strlen(h);
  memcpy(body, h, hl);
  memcpy(body + hl, "\3\0\0\0a\0\xff", 7);
  cr_assert_eq(parse_n(body, hl + 7, hl, &rq, &e), 0, "%s", e.msg);
  struct buf out;
  buf_init(&out);
  cr_assert_eq(serve_v2_encode_response(&out, "m", "1", NULL, rq.inputs, 1, NULL, &e), 0);
  cr_assert(strstr(out.data, "\"data\":[\"a\\u0000\\ufffd\"]"), "%s", out.data);
  buf_fini(&out);
}

/* ---- binary framing errors ------------------------------------------------------ */

static int parse_bin(const char *hdr, const void *bin, size_t nbin, struct serve_request *rq,
                     struct err *e) {
  size_t hl = strlen(hdr);
  char *b = arena_alloc(&A, hl + nbin + 1);
  memcpy(b, hdr, hl);
  if (nbin) memcpy(b + hl, bin, nbin);
  return parse_n(b, hl + nbin, hl, rq, e);
}

Test(serve_v2, binary_sizes_must_add_up) {
  struct serve_request rq;
  struct err e;
  float two[2] = {1, 2};
  const char *h2 = "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\","
                   "\"parameters\":{\"binary_data_size\":8}}]}";
  cr_assert_eq(parse_bin(h2, two, 8, &rq, &e), 0, "%s", e.msg);
  cr_assert_eq(((float *)rq.inputs[0].data)[1], 2.0f);
  /* bytes left over */
  cr_assert_eq(parse_bin(h2, "0123456789ab", 12, &rq, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "the body holds 12 bytes after the"), "%s", e.msg);
  cr_assert(strstr(e.msg, "add up to 8"), "%s", e.msg);
  /* too few */
  cr_assert_eq(parse_bin(h2, two, 4, &rq, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "input 'x': binary_data_size 8 runs past the end of the body (4 bytes of "
                          "binary data left)"),
            "%s", e.msg);
  /* size that does not match the shape */
  cr_assert_eq(
      parse_bin("{\"inputs\":[{\"name\":\"x\",\"shape\":[3],\"datatype\":\"FP32\",\"parameters\":{"
                "\"binary_data_size\":8}}]}",
                two, 8, &rq, &e),
      -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "input 'x': binary_data_size is 8 but shape [3] of FP32 takes 12 bytes"),
            "%s", e.msg);
  /* header length past the body */
  const char *j = "{\"inputs\":[]}";
  cr_assert_eq(parse_n(j, strlen(j), strlen(j) + 1, &rq, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "Inference-Header-Content-Length is 14 but the body has only 13 bytes"),
            "%s", e.msg);
  /* binary_data_size without the header */
  cr_assert_eq(parse(h2, &rq, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(
      strstr(e.msg, "has binary_data_size but the request has no Inference-Header-Content-Length"),
      "%s", e.msg);
  /* both data and binary_data_size */
  cr_assert_eq(
      parse_bin("{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1,2],"
                "\"parameters\":{\"binary_data_size\":8}}]}",
                two, 8, &rq, &e),
      -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "both data and parameters.binary_data_size"), "%s", e.msg);
  /* a bad binary_data_size */
  cr_assert_eq(
      parse_bin("{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"parameters\":{"
                "\"binary_data_size\":-8}}]}",
                two, 8, &rq, &e),
      -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "binary_data_size must be a non-negative integer"), "%s", e.msg);
  /* two binary inputs and one JSON input in between, in order */
  double d[2] = {0.5, -1};
  unsigned char mixed[8 + 16];
  memcpy(mixed, two, 8);
  memcpy(mixed + 8, d, 16);
  cr_assert_eq(
      parse_bin("{\"inputs\":[{\"name\":\"a\",\"shape\":[2],\"datatype\":\"FP32\",\"parameters\":{"
                "\"binary_data_size\":8}},{\"name\":\"j\",\"shape\":[1],\"datatype\":\"INT8\","
                "\"data\":[5]},"
                "{\"name\":\"b\",\"shape\":[1,2],\"datatype\":\"FP64\",\"parameters\":{\"binary_"
                "data_size\":16}}]}",
                mixed, sizeof mixed, &rq, &e),
      0, "%s", e.msg);
  cr_assert_eq(((double *)rq.inputs[2].data)[1], -1.0);
  cr_assert_eq(*(int8_t *)rq.inputs[1].data, 5);
  /* an empty body part is fine when nothing is binary */
  const char *only =
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}";
  cr_assert_eq(parse_n(only, strlen(only), strlen(only), &rq, &e), 0, "%s", e.msg);
}

Test(serve_v2, binary_bytes_and_bools_are_checked) {
  struct serve_request rq;
  struct err e;
  const char *h =
      "{\"inputs\":[{\"name\":\"s\",\"shape\":[2],\"datatype\":\"BYTES\",\"parameters\":{"
      "\"binary_data_size\":11}}]}";
  const unsigned char ok[] = {1, 0, 0, 0, 'a', 2, 0, 0, 0, 'b', 'c'};
  cr_assert_eq(parse_bin(h, ok, sizeof ok, &rq, &e), 0, "%s", e.msg);
  cr_assert_eq(rq.inputs[0].nbytes, 11);
  /* the second element claims 200 bytes */
  const unsigned char past[] = {1, 0, 0, 0, 'a', 200, 0, 0, 0, 'b', 'c'};
  cr_assert_eq(parse_bin(h, past, sizeof past, &rq, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "input 's': BYTES element 1 runs past its binary_data_size of 11"), "%s",
            e.msg);
  /* a length prefix cut short */
  const char *h3 =
      "{\"inputs\":[{\"name\":\"s\",\"shape\":[2],\"datatype\":\"BYTES\",\"parameters\":{"
      "\"binary_data_size\":7}}]}";
  cr_assert_eq(parse_bin(h3, ok, 7, &rq, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "BYTES element 1 runs past"), "%s", e.msg);
  /* elements that do not fill binary_data_size exactly */
  const char *h2 =
      "{\"inputs\":[{\"name\":\"s\",\"shape\":[1],\"datatype\":\"BYTES\",\"parameters\":{"
      "\"binary_data_size\":11}}]}";
  cr_assert_eq(parse_bin(h2, ok, sizeof ok, &rq, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(
      strstr(e.msg, "binary_data_size is 11 but the 1 BYTES elements of shape [1] take 5 bytes"),
      "%s", e.msg);
  /* BOOL bytes are 0 or 1 */
  const char *hb =
      "{\"inputs\":[{\"name\":\"b\",\"shape\":[3],\"datatype\":\"BOOL\",\"parameters\":{"
      "\"binary_data_size\":3}}]}";
  cr_assert_eq(parse_bin(hb, "\1\0\2", 3, &rq, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "input 'b' element 2: a BOOL byte is 0 or 1, not 2"), "%s", e.msg);
}

/* ---- the rest of the request ------------------------------------------------------ */

Test(serve_v2, malformed_requests_name_the_fault) {
  EXPECT_ERR("{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FLOAT\",\"data\":[1,2]}]}",
             ERR_INVALID_PARAMETER_VALUE, "input 'x': datatype must be one of BOOL, UINT8");
  EXPECT_ERR("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,1,1,1,1,1,1,1,1],\"datatype\":\"FP32\","
             "\"data\":[1]}]}",
             ERR_INVALID_PARAMETER_VALUE,
             "input 'x': shape has 9 dimensions; at most 8 are allowed");
  EXPECT_ERR("{\"inputs\":[{\"name\":\"x\",\"shape\":[4294967296,4294967296],\"datatype\":\"FP32\","
             "\"data\":[1]}]}",
             ERR_INVALID_PARAMETER_VALUE, "input 'x': shape [4294967296,4294967296] is too large");
  EXPECT_ERR("{\"inputs\":[{\"name\":\"x\",\"shape\":[1000000,1000000],\"datatype\":\"FP32\","
             "\"data\":[1]}]}",
             ERR_INVALID_PARAMETER_VALUE,
             "shape [1000000,1000000] needs 1000000000000 elements, data has 1");
  EXPECT_ERR("{\"inputs\":[{\"name\":\"x\",\"shape\":[2,-1],\"datatype\":\"FP32\",\"data\":[1]}]}",
             ERR_INVALID_PARAMETER_VALUE,
             "input 'x': shape dimension 1 must be a non-negative integer");
  EXPECT_ERR("{\"inputs\":[{\"name\":\"x\",\"shape\":[2.0],\"datatype\":\"FP32\",\"data\":[1,2]}]}",
             ERR_INVALID_PARAMETER_VALUE, "shape dimension 0 must be a non-negative integer");
  EXPECT_ERR("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"data\":[1,2]}]}",
             ERR_INVALID_PARAMETER_VALUE, "input 'x': shape must be an array");
  EXPECT_ERR("{\"inputs\":[{\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
             ERR_INVALID_PARAMETER_VALUE, "inputs[0] needs a non-empty string \"name\"");
  EXPECT_ERR("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\"}]}",
             ERR_INVALID_PARAMETER_VALUE, "input 'x' has no data");
  EXPECT_ERR("{\"inputs\":[]}", ERR_INVALID_PARAMETER_VALUE, "inputs must be a non-empty array");
  EXPECT_ERR("{\"inputs\":{}}", ERR_INVALID_PARAMETER_VALUE, "inputs must be a non-empty array");
  EXPECT_ERR("[1,2]", ERR_INVALID_PARAMETER_VALUE, "the inference request must be a JSON object");
  EXPECT_ERR("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]},{"
             "\"name\":\"x\","
             "\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
             ERR_INVALID_PARAMETER_VALUE, "input 'x' appears twice");
  EXPECT_ERR("{\"id\":5,\"inputs\":[]}", ERR_INVALID_PARAMETER_VALUE, "id must be a string");
  EXPECT_ERR("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1,]}]}",
             ERR_MALFORMED_JSON, "malformed JSON at line 1");
  EXPECT_ERR("", ERR_MALFORMED_JSON, "empty");
  EXPECT_ERR("{\"parameters\":{\"priority\":-1},\"inputs\":[]}", ERR_INVALID_PARAMETER_VALUE,
             "parameters.priority must be a non-negative integer");
  EXPECT_ERR("{\"parameters\":{\"timeout\":\"5\"},\"inputs\":[]}", ERR_INVALID_PARAMETER_VALUE,
             "parameters.timeout must be a non-negative integer");
  EXPECT_ERR("{\"parameters\":{\"predict_proba\":1},\"inputs\":[]}", ERR_INVALID_PARAMETER_VALUE,
             "parameters.predict_proba must be true or false");
  EXPECT_ERR("{\"outputs\":[{\"name\":\"a\"},{\"name\":\"a\"}],\"inputs\":[]}",
             ERR_INVALID_PARAMETER_VALUE, "output 'a' is requested twice");
  EXPECT_ERR("{\"outputs\":[{\"nm\":\"a\"}],\"inputs\":[]}", ERR_INVALID_PARAMETER_VALUE,
             "outputs[0] must be an object with a string \"name\"");
  char name[200];
  memset(name, 'n', 150);
  name[150] = 0;
  char body[400];
  snprintf(body, sizeof body,
           "{\"inputs\":[{\"name\":\"%s\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
           name);
  EXPECT_ERR(body, ERR_INVALID_PARAMETER_VALUE, "a name is at most 127 bytes");
  /* 65 inputs */
  struct buf b;
  buf_init(&b);
  buf_puts(&b, "{\"inputs\":[");
  for (int i = 0; i < 65; i++)
    buf_printf(&b, "%s{\"name\":\"i%d\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}",
               i ? "," : "", i);
  buf_puts(&b, "]}");
  EXPECT_ERR(b.data, ERR_INVALID_PARAMETER_VALUE,
             "the request has 65 inputs; at most 64 are allowed");
  buf_fini(&b);
}

Test(serve_v2, malformed_json_positions_are_the_bodys) {
  /* the fault sits after a fast-path array: its byte position must be the
   * body's, not the shortened copy's */
  const char *body = "{\"inputs\":[{\"name\":\"x\",\"shape\":[3],\"datatype\":\"FP32\",\"data\":[1."
                     "5,2.5,3.5]}] x}";
  struct serve_request rq;
  struct err fast, slow;
  cr_assert_eq(parse(body, &rq, &fast), -ERR_MALFORMED_JSON);
  serve_v2_fast_numbers = false;
  cr_assert_eq(parse(body, &rq, &slow), -ERR_MALFORMED_JSON);
  cr_assert_str_eq(fast.msg, slow.msg);
  cr_assert(strstr(fast.msg, "column 77 (byte 77)"), "%s", fast.msg);
}

Test(serve_v2, parameters_and_outputs) {
  struct serve_request rq;
  struct err e;
  cr_assert_eq(
      parse(
          "{\"id\":\"abc\",\"parameters\":{\"priority\":1,\"timeout\":2500,\"predict_proba\":true,"
          "\"output_margin\":false,\"binary_data_output\":true,\"custom\":\"x\"},"
          "\"outputs\":[{\"name\":\"p\"},{\"name\":\"l\",\"parameters\":{\"binary_data\":false}}],"
          "\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
          &rq, &e),
      0, "%s", e.msg);
  cr_assert_str_eq(rq.id, "abc");
  cr_assert_eq(rq.priority, 1);
  cr_assert_eq(rq.timeout_us, 2500);
  cr_assert(rq.popts.proba && !rq.popts.margin && rq.binary_all);
  cr_assert_eq(rq.noutputs, 2);
  cr_assert_str_eq(rq.outputs[0].name, "p");
  cr_assert(rq.outputs[0].binary, "binary_data_output applies to an output that says nothing");
  cr_assert(!rq.outputs[1].binary, "a per-output binary_data wins");
  cr_assert_null(rq.popts.outputs, "backends compute every output; the encoder picks");
  /* an empty outputs list means every output */
  cr_assert_eq(parse("{\"outputs\":[],\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":"
                     "\"FP32\",\"data\":[1]}]}",
                     &rq, &e),
               0);
  cr_assert_null(rq.outputs);
}

Test(serve_v2, many_numbers_every_dtype) {
  /* 3000 values (past the pre-pass's inline cells) into each numeric
   * dtype: both paths must give the same bytes or the same refusal */
  static const char *dts[] = {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16",
                              "INT32", "INT64",  "FP16",   "BF16",   "FP32", "FP64"};
  for (size_t k = 0; k < sizeof dts / sizeof *dts; k++) {
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "{\"inputs\":[{\"name\":\"x\",\"shape\":[30,100],\"datatype\":\"%s\",\"data\":[",
               dts[k]);
    unsigned r = 7;
    for (int i = 0; i < 3000; i++) {
      r = r * 1103515245u + 12345u;
      int v = (int)((r >> 8) % 120);
      if (strncmp(dts[k], "UINT", 4) == 0 || strncmp(dts[k], "INT", 3) == 0)
        buf_printf(&b, "%s%d", i ? "," : "", v);
      else
        buf_printf(&b, "%s%.17g", i ? "," : "", (v - 100) / 7.0);
    }
    buf_puts(&b, "]}]}");
    struct serve_request rq;
    struct err e;
    cr_assert_eq(parse_both(b.data, &rq, &e), 0, "%s: %s", dts[k], e.msg);
    cr_assert_eq(rq.inputs[0].nbytes, 3000 * serve_dtype_size(rq.inputs[0].dtype));
    buf_fini(&b);
  }
}

Test(serve_v2, fast_path_matches_jansson_on_tricky_documents) {
  static const char *bodies[] = {
      /* a later "data" wins, whichever path read the earlier one */
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1,2],\"data\":[3,"
      "4]}]}",
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1,2],\"data\":["
      "\"a\",4]}]}",
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[\"a\",4],"
      "\"data\":[5,6]}]}",
      /* a later "inputs" wins */
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1,2]}],"
      "\"inputs\":[{\"name\":\"y\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[7]}]}",
      /* escaped keys are what jansson sees */
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1,2],"
      "\"\\u0064ata\":[8,9]}]}",
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1,2]}],"
      "\"\\u0069nputs\":[{\"name\":"
      "\"z\",\"shape\":[1],\"datatype\":\"INT8\",\"data\":[3]}]}",
      /* strings holding brackets, quotes and keys */
      "{\"id\":\"[\\\"data\\\":[1,2]\",\"inputs\":[{\"name\":\"x]\\\"{\",\"shape\":[2],"
      "\"datatype\":\"FP64\",\"data\":["
      "1e-7,-0.0]}]}",
      /* inputs that are not objects shift the positions */
      "{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]},[9],{"
      "\"name\":\"b\"}]}",
      /* data arrays deeper than 8 levels go to jansson */
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,1,1,1,1,1,1,1],\"datatype\":\"FP32\",\"data\":[[[["
      "[[[[[1]]]]]]]]]}]}",
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,1,1,1,1,1,1,1],\"datatype\":\"FP32\",\"data\":[[[["
      "[[[[1]]]]]]]]}]}",
      /* numbers jansson refuses and the scanner must not take either */
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[01,2]}]}",
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1.,2]}]}",
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1,2,]}]}",
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1 2]}]}",
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1,2]",
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP64\",\"data\":[1e400,2]}]}",
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP64\",\"data\":[NaN,2]}]}",
      "\xef\xbb\xbf{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP64\",\"data\":[2]}]"
      "}",
      /* numbers only strtod gets right, and ones past int64 */
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[5],\"datatype\":\"FP64\",\"data\":[1."
      "00000000000000011102230246251565404236316680908203125,"
      "4.9e-324,123456789012345678901234567890,-9223372036854775808,2.2250738585072011e-308]}]}",
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[3],\"datatype\":\"FP32\",\"data\":[3."
      "4028235677973366e38,1e-50,-0]}]}",
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"INT64\",\"data\":[-"
      "9223372036854775809,1]}]}",
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"UINT8\",\"data\":[1e2,2.56e2]}]}",
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP64\",\"data\":[2]}]}\x00",
  };
  for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
    struct serve_request rq;
    struct err e;
    parse_both(bodies[i], &rq, &e);
  }
  struct serve_request rq;
  struct err e;
  cr_assert_eq(parse_both(bodies[0], &rq, &e), 0);
  cr_assert_eq(((float *)rq.inputs[0].data)[0], 3.0f);
  cr_assert_eq(parse_both(bodies[3], &rq, &e), 0);
  cr_assert_str_eq(rq.inputs[0].name, "y");
  cr_assert_eq(parse_both(bodies[4], &rq, &e), 0);
  cr_assert_eq(((float *)rq.inputs[0].data)[0], 8.0f);
}

/* ---- responses ------------------------------------------------------------------ */

Test(serve_v2, response_picks_and_orders_requested_outputs) {
  float p[4] = {0.25f, 0.75f, 0.5f, 0.5f};
  int64_t l[2] = {1, 0};
  struct serve_tensor outs[2] = {
      {.name = "probabilities",
       .dtype = SERVE_FP32,
       .ndim = 2,
       .shape = {2, 2},
       .data = p,
       .nbytes = sizeof p},
      {.name = "label",
       .dtype = SERVE_INT64,
       .ndim = 1,
       .shape = {2},
       .data = l,
       .nbytes = sizeof l},
  };
  struct serve_request rq;
  struct err e;
  cr_assert_eq(
      parse(
          "{\"outputs\":[{\"name\":\"label\"},{\"name\":\"probabilities\",\"parameters\":{\"binary_"
          "data\":"
          "true}}],\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
          &rq, &e),
      0);
  struct buf out;
  buf_init(&out);
  size_t hl = 0;
  cr_assert_eq(serve_v2_encode_response(&out, "iris", "3", &rq, outs, 2, &hl, &e), 0, "%s", e.msg);
  const char *want =
      "{\"model_name\":\"iris\",\"model_version\":\"3\",\"outputs\":[{\"name\":\"label\","
      "\"datatype\":"
      "\"INT64\",\"shape\":[2],\"data\":[1,0]},{\"name\":\"probabilities\",\"datatype\":\"FP32\","
      "\"shape\":[2,2],\"parameters\":{\"binary_data_size\":16}}]}";
  cr_assert_eq(hl, strlen(want));
  cr_assert_eq(memcmp(out.data, want, hl), 0, "%.*s", (int)hl, out.data);
  cr_assert_eq(out.len, hl + 16);
  cr_assert_eq(memcmp(out.data + hl, p, 16), 0);
  /* every output by default, in the model's order */
  buf_reset(&out);
  cr_assert_eq(serve_v2_encode_response(&out, "iris", NULL, NULL, outs, 2, &hl, &e), 0);
  cr_assert_eq(hl, 0);
  cr_assert_str_eq(
      out.data,
      "{\"model_name\":\"iris\",\"outputs\":[{\"name\":\"probabilities\",\"datatype\":\"FP32\","
      "\"shape\":[2,2],\"data\":[0.25,0.75,0.5,0.5]},{\"name\":\"label\",\"datatype\":\"INT64\","
      "\"shape\":[2],\"data\":[1,0]}]}");
  /* an output the model does not have */
  cr_assert_eq(parse("{\"outputs\":[{\"name\":\"proba\"}],\"inputs\":[{\"name\":\"x\",\"shape\":[1]"
                     ",\"datatype\":"
                     "\"FP32\",\"data\":[1]}]}",
                     &rq, &e),
               0);
  buf_reset(&out);
  cr_assert_eq(serve_v2_encode_response(&out, "iris", "3", &rq, outs, 2, &hl, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_str_eq(e.msg, "unknown output 'proba'; the model gives: probabilities, label");
  buf_fini(&out);
}

Test(serve_v2, non_finite_outputs_are_null) {
  float f[4] = {NAN, INFINITY, -INFINITY, 1.5f};
  uint16_t h[2] = {0x7e00, 0x3c00};
  struct serve_tensor outs[2] = {
      {.name = "y", .dtype = SERVE_FP32, .ndim = 1, .shape = {4}, .data = f, .nbytes = sizeof f},
      {.name = "h", .dtype = SERVE_FP16, .ndim = 1, .shape = {2}, .data = h, .nbytes = sizeof h},
  };
  struct buf out;
  buf_init(&out);
  struct err e;
  cr_assert_eq(serve_v2_encode_response(&out, "m", NULL, NULL, outs, 2, NULL, &e), 0);
  cr_assert(strstr(out.data, "\"data\":[null,null,null,1.5]"), "%s", out.data);
  cr_assert(strstr(out.data, "\"data\":[null,1.0]"), "%s", out.data);
  json_t *v = json_loads(out.data, 0, NULL);
  cr_assert_not_null(v, "the response is JSON");
  json_decref(v);
  buf_fini(&out);
}

Test(serve_v2, per_row_json_outputs_are_bytes) {
  json_t *rows = json_pack("[{s:f,s:f},{s:f,s:f}]", "0", 0.25, "1", 0.75, "0", 1.0, "1", 0.0);
  int64_t lab[2] = {1, 0};
  struct serve_tensor outs[2] = {
      {.name = "output_label",
       .dtype = SERVE_INT64,
       .ndim = 1,
       .shape = {2},
       .data = lab,
       .nbytes = sizeof lab},
      {.name = "output_probability", .dtype = SERVE_FP32, .ndim = 1, .shape = {2}, .json = rows},
  };
  struct buf out;
  buf_init(&out);
  struct err e;
  size_t hl;
  cr_assert_eq(serve_v2_encode_response(&out, "zm", NULL, NULL, outs, 2, &hl, &e), 0, "%s", e.msg);
  cr_assert(
      strstr(out.data,
             "{\"name\":\"output_probability\",\"datatype\":\"BYTES\",\"shape\":[2],\"data\":["
             "\"{\\\"0\\\":0.25,\\\"1\\\":0.75}\",\"{\\\"0\\\":1.0,\\\"1\\\":0.0}\"]}"),
      "%s", out.data);
  /* binary: the same texts, length-prefixed */
  struct serve_request rq;
  cr_assert_eq(
      parse(
          "{\"parameters\":{\"binary_data_output\":true},\"inputs\":[{\"name\":\"x\",\"shape\":[1],"
          "\"datatype\":\"FP32\",\"data\":[1]}]}",
          &rq, &e),
      0);
  buf_reset(&out);
  cr_assert_eq(serve_v2_encode_response(&out, "zm", NULL, &rq, outs, 2, &hl, &e), 0, "%s", e.msg);
  cr_assert(hl > 0);
  cr_assert(strstr(out.data,
                   "\"output_probability\",\"datatype\":\"BYTES\",\"shape\":[2],\"parameters\":{"
                   "\"binary_data_size\":44}"),
            "%.*s", (int)hl, out.data);
  const char *bin = out.data + hl + 16; /* after the labels */
  cr_assert_eq(out.len, hl + 16 + 44);
  cr_assert_eq(memcmp(bin, "\x13\0\0\0{\"0\":0.25,\"1\":0.75}", 23), 0);
  cr_assert_eq(memcmp(bin + 23, "\x11\0\0\0{\"0\":1.0,\"1\":0.0}", 21), 0);
  buf_fini(&out);
  json_decref(rows);
}

Test(serve_v2, inconsistent_outputs_are_internal_errors) {
  float f[2] = {1, 2};
  struct serve_tensor t = {
      .name = "y", .dtype = SERVE_FP32, .ndim = 1, .shape = {3}, .data = f, .nbytes = sizeof f};
  struct buf out;
  buf_init(&out);
  buf_puts(&out, "keep");
  struct err e;
  cr_assert_eq(serve_v2_encode_response(&out, "m", NULL, NULL, &t, 1, NULL, &e), -ERR_INTERNAL);
  cr_assert(strstr(e.msg, "output 'y' holds 8 bytes"), "%s", e.msg);
  cr_assert_str_eq(out.data, "keep", "nothing half-written is left behind");
  unsigned char bad[] = {9, 0, 0, 0, 'a'};
  struct serve_tensor s = {
      .name = "s", .dtype = SERVE_BYTES, .ndim = 1, .shape = {1}, .data = bad, .nbytes = 5};
  cr_assert_eq(serve_v2_encode_response(&out, "m", NULL, NULL, &s, 1, NULL, &e), -ERR_INTERNAL);
  buf_fini(&out);
}

Test(serve_v2, model_names_are_escaped) {
  float f[1] = {2};
  struct serve_tensor t = {
      .name = "y\"", .dtype = SERVE_FP32, .ndim = 1, .shape = {1}, .data = f, .nbytes = 4};
  struct buf out;
  buf_init(&out);
  struct err e;
  cr_assert_eq(serve_v2_encode_response(&out, "a\"b\xff", "v\n", NULL, &t, 1, NULL, &e), 0);
  cr_assert_str_eq(
      out.data,
      "{\"model_name\":\"a\\\"b\\ufffd\",\"model_version\":\"v\\n\",\"outputs\":[{\"name\":"
      "\"y\\\"\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[2.0]}]}");
  buf_fini(&out);
}
