/* tests for serve/validate: inputs matched to the signature by name, the
 * dtype casts, shape and row checks, the row limit and the NaN/Inf policy —
 * each refusal with the message a user reads. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "serve/proto.h"

static struct arena A;
static void setup(void) { arena_init(&A, 4096, 0); }
static void teardown(void) { arena_fini(&A); }
TestSuite(serve_validate, .init = setup, .fini = teardown);

/* a: FP32 [-1,4], b: INT64 [-1] */
static struct serve_tensor_spec two_in[] = {{"a", SERVE_FP32, 2, {-1, 4}},
                                            {"b", SERVE_INT64, 1, {-1}}};
static struct serve_tensor_spec one_out[] = {{"y", SERVE_FP32, 1, {-1}}};
static struct serve_signature two = {2, 1, two_in, one_out, 0, NULL, NULL, true, false};

static char *cols[] = {"age", "sex", "bmi"};
static struct serve_tensor_spec table_in[] = {{"X", SERVE_FP64, 2, {-1, 3}}};
static struct serve_signature table = {1, 1, table_in, one_out, 3, cols, NULL, true, false};

static void req(const char *body, struct serve_request *rq) {
  struct err e;
  cr_assert_eq(serve_v2_parse_request(body, strlen(body), 0, &A, rq, &e), 0, "%s: %s", body, e.msg);
}

static int check(const struct serve_signature *sig, const char *body, int64_t max_rows,
                 struct serve_request *rq, int64_t *rows, struct err *e) {
  req(body, rq);
  memset(e, 0, sizeof *e);
  return serve_validate(sig, rq, &A, max_rows, rows, e);
}

#define REFUSED(sig, body, max_rows, want)                                                         \
  do {                                                                                             \
    struct serve_request rq_;                                                                      \
    struct err e_;                                                                                 \
    int64_t rows_;                                                                                 \
    int rc_ = check(sig, body, max_rows, &rq_, &rows_, &e_);                                       \
    cr_assert_eq(rc_, -ERR_INVALID_PARAMETER_VALUE, "rc %d for %s", rc_, body);                    \
    cr_assert_str_eq(e_.msg, want);                                                                \
  } while (0)

#define IN(name, dt, shape, data)                                                                  \
  "{\"name\":\"" name "\",\"datatype\":\"" dt "\",\"shape\":" shape ",\"data\":" data "}"

Test(serve_validate, inputs_are_put_in_signature_order) {
  struct serve_request rq;
  struct err e;
  int64_t rows;
  cr_assert_eq(check(&two,
                     "{\"inputs\":[" IN("b", "INT64", "[2]", "[7,8]") "," IN(
                         "a", "FP32", "[2,4]", "[1,2,3,4,5,6,7,8]") "]}",
                     0, &rq, &rows, &e),
               0, "%s", e.msg);
  cr_assert_eq(rq.ninputs, 2);
  cr_assert_str_eq(rq.inputs[0].name, "a");
  cr_assert_str_eq(rq.inputs[1].name, "b");
  cr_assert_eq(((float *)rq.inputs[0].data)[7], 8.0f);
  cr_assert_eq(((int64_t *)rq.inputs[1].data)[1], 8);
  cr_assert_eq(rows, 2);
  cr_assert(!rq.inputs[0].owned && !rq.inputs[1].owned);
}

Test(serve_validate, an_input_must_carry_the_models_name) {
  /* as V2 servers do: a misnamed input is refused, naming what the model takes */
  REFUSED(&table, "{\"inputs\":[" IN("input-0", "FP64", "[1,3]", "[50,1,22.5]") "]}", 0,
          "unknown input 'input-0'; the model takes: X [FP64 -1x3]");
  struct serve_request rq;
  struct err e;
  int64_t rows;
  cr_assert_eq(check(&table, "{\"inputs\":[" IN("X", "FP64", "[1,3]", "[50,1,22.5]") "]}", 0, &rq,
                     &rows, &e),
               0, "%s", e.msg);
  cr_assert_str_eq(rq.inputs[0].name, "X");
  cr_assert_eq(rows, 1);
}

Test(serve_validate, missing_extra_and_repeated_inputs) {
  REFUSED(&two, "{\"inputs\":[" IN("a", "FP32", "[1,4]", "[1,2,3,4]") "]}", 0,
          "missing input 'b'; the model takes: a [FP32 -1x4], b [INT64 -1]");
  REFUSED(&two,
          "{\"inputs\":[" IN("a", "FP32", "[1,4]", "[1,2,3,4]") "," IN(
              "b", "INT64", "[1]", "[1]") "," IN("c", "FP32", "[1]", "[1]") "]}",
          0, "unknown input 'c'; the model takes: a [FP32 -1x4], b [INT64 -1]");
  struct serve_request rq;
  struct err e;
  req("{\"inputs\":[" IN("a", "FP32", "[1,4]", "[1,2,3,4]") "]}", &rq);
  rq.ninputs = 0;
  cr_assert_eq(serve_validate(&two, &rq, &A, 0, NULL, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_str_eq(e.msg,
                   "the request has no inputs; the model takes: a [FP32 -1x4], b [INT64 -1]");
  /* a hand-built request (MLflow, SDK) with the same name twice */
  struct serve_tensor t[2];
  req("{\"inputs\":[" IN("a", "FP32", "[1,4]", "[1,2,3,4]") "," IN("b", "INT64", "[1]", "[1]") "]}",
      &rq);
  t[0] = rq.inputs[0];
  t[1] = rq.inputs[0];
  rq.inputs = t;
  cr_assert_eq(serve_validate(&two, &rq, &A, 0, NULL, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_str_eq(e.msg, "input 'a' appears twice");
}

Test(serve_validate, dtypes_are_cast_by_the_rules) {
  struct serve_request rq;
  struct err e;
  int64_t rows;
  /* ints into FP32, and whole floats into INT64 */
  cr_assert_eq(check(&two,
                     "{\"inputs\":[" IN("a", "INT32", "[1,4]",
                                        "[1,2,3,-4]") "," IN("b", "FP64", "[1]", "[12.0]") "]}",
                     0, &rq, &rows, &e),
               0, "%s", e.msg);
  cr_assert_eq(rq.inputs[0].dtype, SERVE_FP32);
  cr_assert_eq(rq.inputs[0].nbytes, 16);
  cr_assert_eq(((float *)rq.inputs[0].data)[3], -4.0f);
  cr_assert_eq(rq.inputs[1].dtype, SERVE_INT64);
  cr_assert_eq(((int64_t *)rq.inputs[1].data)[0], 12);
  /* FP16 and BF16 widen exactly */
  cr_assert_eq(check(&two,
                     "{\"inputs\":[" IN("a", "FP16", "[1,4]", "[0.5,1,2,65504]") "," IN(
                         "b", "UINT8", "[1]", "[255]") "]}",
                     0, &rq, &rows, &e),
               0, "%s", e.msg);
  cr_assert_eq(((float *)rq.inputs[0].data)[3], 65504.0f);
  cr_assert_eq(((int64_t *)rq.inputs[1].data)[0], 255);

  REFUSED(&two,
          "{\"inputs\":[" IN("a", "FP32", "[2,4]", "[1,2,3,4,5,6,7,8]") "," IN("b", "FP64", "[2]",
                                                                               "[3,2.5]") "]}",
          0, "input 'b' row 1: 2.5 is not a whole number, which INT64 needs");
  REFUSED(&two,
          "{\"inputs\":[" IN("a", "BOOL", "[1,4]",
                             "[true,false,true,true]") "," IN("b", "INT64", "[1]", "[1]") "]}",
          0, "input 'a' is BOOL; the model takes FP32 (BOOL only from BOOL)");
  REFUSED(&two,
          "{\"inputs\":[" IN("a", "BYTES", "[1,4]",
                             "[\"1\",\"2\",\"3\",\"4\"]") "," IN("b", "INT64", "[1]", "[1]") "]}",
          0, "input 'a' is BYTES; the model takes FP32 (BYTES only from BYTES)");
  REFUSED(&two,
          "{\"inputs\":[" IN("a", "FP64", "[1,4]", "[1,2,1e300,4]") "," IN("b", "INT64", "[1]",
                                                                           "[1]") "]}",
          0, "input 'a' row 0 column 2: 1e+300 is out of range for FP32");
  REFUSED(&two,
          "{\"inputs\":[" IN("a", "FP32", "[1,4]", "[1,2,3,4]") "," IN(
              "b", "UINT64", "[1]", "[18446744073709551615]") "]}",
          0, "input 'b' row 0: 18446744073709551615 is out of range for INT64");
}

Test(serve_validate, shapes_and_rows) {
  struct serve_request rq;
  struct err e;
  int64_t rows;
  REFUSED(
      &two,
      "{\"inputs\":[" IN("a", "FP32", "[4]", "[1,2,3,4]") "," IN("b", "INT64", "[1]", "[1]") "]}",
      0, "input 'a' has shape [4]; the model takes [-1,4]");
  REFUSED(&two,
          "{\"inputs\":[" IN("a", "FP32", "[2,2]", "[1,2,3,4]") "," IN("b", "INT64", "[2]",
                                                                       "[1,2]") "]}",
          0, "input 'a' has shape [2,2]; the model takes [-1,4]");
  REFUSED(&two,
          "{\"inputs\":[" IN("a", "FP32", "[1,4]", "[1,2,3,4]") "," IN("b", "INT64", "[2]",
                                                                       "[1,2]") "]}",
          0, "inputs disagree on rows: 'a' has 1, 'b' has 2");
  REFUSED(&two,
          "{\"inputs\":[" IN("a", "FP32", "[3,4]", "[1,2,3,4,1,2,3,4,1,2,3,4]") "," IN(
              "b", "INT64", "[3]", "[1,2,3]") "]}",
          2, "batch of 3 rows exceeds the limit of 2");
  cr_assert_eq(check(&two,
                     "{\"inputs\":[" IN("a", "FP32", "[3,4]", "[1,2,3,4,1,2,3,4,1,2,3,4]") "," IN(
                         "b", "INT64", "[3]", "[1,2,3]") "]}",
                     3, &rq, &rows, &e),
               0, "%s", e.msg);
  cr_assert_eq(rows, 3);
  /* zero rows are a batch too */
  cr_assert_eq(
      check(&two,
            "{\"inputs\":[" IN("a", "FP32", "[0,4]", "[]") "," IN("b", "INT64", "[0]", "[]") "]}",
            0, &rq, &rows, &e),
      0, "%s", e.msg);
  cr_assert_eq(rows, 0);
  /* any rank, fixed dims, a model that does not batch */
  struct serve_tensor_spec any[] = {{"img", SERVE_UINT8, -1, {0}}};
  struct serve_signature s_any = {1, 1, any, one_out, 0, NULL, NULL, false, false};
  cr_assert_eq(check(&s_any, "{\"inputs\":[" IN("img", "UINT8", "[1,2,2]", "[1,2,3,4]") "]}", 0,
                     &rq, &rows, &e),
               0);
  cr_assert_eq(rows, 1, "a model that does not batch takes a request as one unit");
  struct serve_tensor_spec fixed[] = {{"img", SERVE_UINT8, 3, {-1, 2, 2}}};
  struct serve_signature s_fixed = {1, 1, fixed, one_out, 0, NULL, NULL, true, false};
  REFUSED(&s_fixed, "{\"inputs\":[" IN("img", "UINT8", "[1,4,1]", "[1,2,3,4]") "]}", 0,
          "input 'img' has shape [1,4,1]; the model takes [-1,2,2]");
  struct serve_tensor_spec scalar[] = {{"s", SERVE_FP32, -1, {0}}};
  struct serve_signature s_scalar = {1, 1, scalar, one_out, 0, NULL, NULL, true, false};
  REFUSED(&s_scalar, "{\"inputs\":[" IN("s", "FP32", "[]", "[1]") "]}", 0,
          "input 's' has no batch dimension; the model takes any shape");
}

Test(serve_validate, nan_and_inf_policy) {
  struct serve_request rq;
  struct err e;
  int64_t rows;
  /* JSON has no NaN: binary inputs carry them */
  float x[6] = {1, 2, 3, 4, NAN, 6};
  const char *h = "{\"inputs\":[{\"name\":\"X\",\"datatype\":\"FP32\",\"shape\":[2,3],"
                  "\"parameters\":{\"binary_data_size\":24}}]}";
  char body[256];
  size_t hl = strlen(h);
  memcpy(body, h, hl);
  memcpy(body + hl, x, sizeof x);
  cr_assert_eq(serve_v2_parse_request(body, hl + sizeof x, hl, &A, &rq, &e), 0, "%s", e.msg);
  struct serve_request keep = rq;
  cr_assert_eq(serve_validate(&table, &rq, &A, 0, &rows, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_str_eq(
      e.msg,
      "input 'X' row 1 column 1 ('sex') is NaN; the model does not take missing values (NaN)");
  /* XGBoost: NaN is missing, and the FP32 values become FP64 */
  struct serve_signature xgb = table;
  xgb.allow_nan = true;
  rq = keep;
  cr_assert_eq(serve_validate(&xgb, &rq, &A, 0, &rows, &e), 0, "%s", e.msg);
  cr_assert(isnan(((double *)rq.inputs[0].data)[4]));
  cr_assert_eq(((double *)rq.inputs[0].data)[5], 6.0);
  /* Inf is refused whatever the model says */
  x[4] = 2;
  x[2] = -INFINITY;
  memcpy(body + hl, x, sizeof x);
  cr_assert_eq(serve_v2_parse_request(body, hl + sizeof x, hl, &A, &rq, &e), 0);
  cr_assert_eq(serve_validate(&xgb, &rq, &A, 0, &rows, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_str_eq(e.msg,
                   "input 'X' row 0 column 2 ('bmi') is -Inf; non-finite values are refused");
  /* a NaN cast to an integer type is refused as such */
  double d[2] = {1, NAN};
  const char *hb =
      "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[1,2,3,4]},{"
      "\"name\":"
      "\"b\",\"datatype\":\"FP64\",\"shape\":[2],\"parameters\":{\"binary_data_size\":16}}]}";
  hl = strlen(hb);
  memcpy(body, hb, hl);
  memcpy(body + hl, d, sizeof d);
  cr_assert_eq(serve_v2_parse_request(body, hl + sizeof d, hl, &A, &rq, &e), 0, "%s", e.msg);
  cr_assert_eq(serve_validate(&two, &rq, &A, 0, &rows, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_str_eq(e.msg, "inputs disagree on rows: 'a' has 1, 'b' has 2");
  struct serve_tensor_spec nb[] = {{"b", SERVE_INT64, 1, {-1}}};
  struct serve_signature s_nb = {1, 1, nb, one_out, 0, NULL, NULL, true, true};
  rq.inputs++;
  rq.ninputs = 1;
  cr_assert_eq(serve_validate(&s_nb, &rq, &A, 0, &rows, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_str_eq(e.msg, "input 'b' row 1: NaN cannot be stored in INT64");
}

Test(serve_validate, nan_in_every_float_type) {
  struct serve_request rq;
  struct err e;
  int64_t rows;
  static const struct {
    const char *dt;
    unsigned char nan[8];
    size_t size;
  } types[] = {{"FP16", {0x00, 0x7e}, 2},
               {"BF16", {0xc0, 0x7f}, 2},
               {"FP32", {0, 0, 0xc0, 0x7f}, 4},
               {"FP64", {0, 0, 0, 0, 0, 0, 0xf8, 0x7f}, 8}};
  for (size_t i = 0; i < 4; i++) {
    struct serve_tensor_spec sp[] = {{"v", SERVE_FP32, 1, {-1}}};
    struct serve_signature s = {1, 1, sp, one_out, 0, NULL, NULL, true, false};
    sp[0].dtype = i == 0 ? SERVE_FP16 : i == 1 ? SERVE_BF16 : i == 2 ? SERVE_FP32 : SERVE_FP64;
    char body[256];
    int hl =
        snprintf(body, sizeof body,
                 "{\"inputs\":[{\"name\":\"v\",\"datatype\":\"%s\",\"shape\":[2],\"parameters\":{"
                 "\"binary_data_size\":%zu}}]}",
                 types[i].dt, 2 * types[i].size);
    memset(body + hl, 0, types[i].size);
    memcpy(body + hl + types[i].size, types[i].nan, types[i].size);
    cr_assert_eq(
        serve_v2_parse_request(body, (size_t)hl + 2 * types[i].size, (size_t)hl, &A, &rq, &e), 0);
    cr_assert_eq(serve_validate(&s, &rq, &A, 0, &rows, &e), -ERR_INVALID_PARAMETER_VALUE, "%s",
                 types[i].dt);
    cr_assert_str_eq(e.msg, "input 'v' row 1 is NaN; the model does not take missing values (NaN)");
  }
}

Test(serve_validate, a_model_without_a_signature_takes_what_comes) {
  struct serve_request rq;
  struct err e;
  int64_t rows;
  struct serve_signature none = {0};
  cr_assert_eq(
      check(&none, "{\"inputs\":[" IN("q", "INT8", "[5,1]", "[1,2,3,4,5]") "]}", 4, &rq, &rows, &e),
      -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_str_eq(e.msg, "batch of 5 rows exceeds the limit of 4");
  cr_assert_eq(
      check(&none, "{\"inputs\":[" IN("q", "INT8", "[5,1]", "[1,2,3,4,5]") "]}", 0, &rq, &rows, &e),
      0);
  cr_assert_eq(rows, 5);
  cr_assert_str_eq(rq.inputs[0].name, "q");
}

Test(serve_validate, data_shorter_than_the_shape_is_refused) {
  /* a hand-built tensor that lies about its size never reaches a backend */
  struct serve_request rq;
  struct err e;
  req("{\"inputs\":[" IN("X", "FP64", "[1,3]", "[1,2,3]") "]}", &rq);
  rq.inputs[0].nbytes = 16;
  cr_assert_eq(serve_validate(&table, &rq, &A, 0, NULL, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_str_eq(e.msg, "input 'X': its data is shorter than its shape");
}
