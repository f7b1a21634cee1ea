/* tests for serve/payload: the MLflow scoring payloads mapped onto
 * signatures (by column for tables, by input name otherwise), their
 * refusals, and the {"predictions": ...} answer. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "serve/proto.h"

static struct arena A;
static void setup(void) { arena_init(&A, 4096, 0); }
static void teardown(void) {
  arena_fini(&A);
  serve_v2_fast_numbers = true;
}
TestSuite(serve_payload, .init = setup, .fini = teardown);

static struct serve_tensor_spec one_out[] = {{"y", SERVE_FP32, 1, {-1}}};
static char *cols[] = {"age", "sex", "bmi"};
static struct serve_tensor_spec table_in[] = {{"X", SERVE_FP64, 2, {-1, 3}}};
static struct serve_signature table = {1, 1, table_in, one_out, 3, cols, NULL, true, false};
static struct serve_tensor_spec int_in[] = {{"X", SERVE_INT64, 2, {-1, 3}}};
static struct serve_signature int_table = {1, 1, int_in, one_out, 3, cols, NULL, true, false};
static struct serve_tensor_spec mlp_in[] = {{"x", SERVE_FP32, 2, {-1, 4}}};
static struct serve_signature mlp = {1, 1, mlp_in, one_out, 0, NULL, NULL, true, false};
static struct serve_tensor_spec multi_in[] = {{"a", SERVE_FP32, 2, {-1, 2}},
                                              {"b", SERVE_INT64, 1, {-1}}};
static struct serve_signature multi = {2, 1, multi_in, one_out, 0, NULL, NULL, true, false};

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

/* Parses body three ways — the jansson tree, the body's text with the
 * numeric fast path, and without it — which must agree to the byte and the
 * message; returns the first. */
static int mlf(const struct serve_signature *sig, const char *body, struct serve_request *rq,
               struct err *e) {
  json_error_t je;
  json_t *v = json_loads(body, 0, &je);
  cr_assert_not_null(v, "test body: %s", je.text);
  memset(e, 0, sizeof *e);
  int rc = serve_mlflow_parse_request(v, sig, &A, rq, e);
  json_decref(v);
  for (int fast = 0; fast < 2; fast++) {
    struct serve_request rb;
    struct err eb;
    memset(&eb, 0, sizeof eb);
    serve_v2_fast_numbers = fast;
    int rcb = serve_mlflow_parse_body(body, strlen(body), sig, &A, &rb, &eb);
    serve_v2_fast_numbers = true;
    cr_assert_eq(rcb, rc, "%s (fast %d): %d (%s) vs %d (%s)", body, fast, rcb, eb.msg, rc, e->msg);
    if (rc)
      cr_assert_str_eq(eb.msg, e->msg, "%s (fast %d)", body, fast);
    else
      cr_assert(same_inputs(rq, &rb), "%s (fast %d): the tensors differ", body, fast);
  }
  return rc;
}

static void expect_f64(const struct serve_tensor *t, int64_t r, int64_t c, const double *want,
                       size_t n) {
  cr_assert_eq(t->dtype, SERVE_FP64);
  cr_assert_eq(t->ndim, 2);
  cr_assert(t->shape[0] == r && t->shape[1] == c, "shape [%lld,%lld]", (long long)t->shape[0],
            (long long)t->shape[1]);
  cr_assert_eq(t->nbytes, n * 8);
  for (size_t i = 0; i < n; i++) cr_assert_eq(((double *)t->data)[i], want[i], "element %zu", i);
}

#define REFUSED(sig, body, want)                                                                   \
  do {                                                                                             \
    struct serve_request rq_;                                                                      \
    struct err e_;                                                                                 \
    int rc_ = mlf(sig, body, &rq_, &e_);                                                           \
    cr_assert_eq(rc_, -ERR_INVALID_PARAMETER_VALUE, "rc %d for %s", rc_, body);                    \
    cr_assert_str_eq(e_.msg, want);                                                                \
  } while (0)

static const double two_rows[] = {50, 1, 22.5, 40, 0, 30};

Test(serve_payload, every_format_maps_columns_by_name) {
  static const char *bodies[] = {
      "{\"dataframe_split\":{\"columns\":[\"bmi\",\"age\",\"sex\"],\"data\":[[22.5,50,1],[30,40,0]]"
      ",\"index\":[7,8]}}",
      "{\"dataframe_split\":{\"columns\":[\"age\",\"sex\",\"bmi\"],\"data\":[[50,1,22.5],[40,0,30]]"
      "}}",
      "{\"dataframe_split\":{\"data\":[[50,1,22.5],[40,0,30]]}}",
      "{\"dataframe_records\":[{\"sex\":1,\"bmi\":22.5,\"age\":50},{\"age\":40,\"sex\":0,\"bmi\":"
      "30}]}",
      "{\"instances\":[[50,1,22.5],{\"bmi\":30,\"age\":40,\"sex\":0}]}",
      "{\"inputs\":[[50,1,22.5],[40,0,30]]}",
      "{\"inputs\":{\"bmi\":[22.5,30],\"sex\":[1,0],\"age\":[50,40]}}",
      "{\"inputs\":[{\"age\":50,\"sex\":1,\"bmi\":22.5},{\"age\":40,\"sex\":0,\"bmi\":30}],"
      "\"params\":{}}",
  };
  for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
    struct serve_request rq;
    struct err e;
    cr_assert_eq(mlf(&table, bodies[i], &rq, &e), 0, "%s: %s", bodies[i], e.msg);
    cr_assert_eq(rq.ninputs, 1);
    cr_assert_str_eq(rq.inputs[0].name, "X");
    expect_f64(&rq.inputs[0], 2, 3, two_rows, 6);
    /* and what the parser made passes validation untouched */
    int64_t rows;
    cr_assert_eq(serve_validate(&table, &rq, &A, 0, &rows, &e), 0, "%s", e.msg);
    cr_assert_eq(rows, 2);
  }
}

Test(serve_payload, number_matrices_skip_jansson) {
  /* the bodies the fast path takes, with what it must make of them */
  struct serve_request rq;
  struct err e;
  const char *big =
      "{\"inputs\":[[0.038075906433423026,0.05068011873981862,0.061696206518688734,0."
      "0218723855140367,"
      "-0.04422349842444599,-0.03482076283769895,-0.04340084565202491,-0.002592261998183278,"
      "0.019907486170462722,-0.01764612515980379]]}";
  struct serve_tensor_spec diab[] = {{"input", SERVE_FP32, 2, {-1, 10}}};
  struct serve_signature s_diab = {1, 1, diab, one_out, 0, NULL, NULL, true, false};
  cr_assert_eq(mlf(&s_diab, big, &rq, &e), 0, "%s", e.msg);
  cr_assert(rq.inputs[0].shape[0] == 1 && rq.inputs[0].shape[1] == 10);
  cr_assert_eq(((float *)rq.inputs[0].data)[0], (float)0.038075906433423026);
  cr_assert_eq(((float *)rq.inputs[0].data)[9], (float)-0.01764612515980379);
  /* a table whose split columns come in another order */
  cr_assert_eq(mlf(&table,
                   "{\"dataframe_split\":{\"columns\":[\"bmi\",\"age\",\"sex\"],\"data\":[[22.5,50,"
                   "1],[30,40,0]]}}",
                   &rq, &e),
               0, "%s", e.msg);
  expect_f64(&rq.inputs[0], 2, 3, two_rows, 6);
  /* and the ones it leaves to jansson, which must still answer the same */
  static const char *left[] = {
      "{\"inputs\":[[50,1,22.5],[40,0]]}",                            /* ragged */
      "{\"inputs\":[[50,1,22.5],[40,0,null]]}",                       /* null is NaN */
      "{\"instances\":[[50,1,2.5],[1,2,3]],\"instances\":[[1,2,3]]}", /* repeated key: the last */
      "{\"dataframe_split\":{\"columns\":[\"bmi\",\"age\",\"bmi\"],\"data\":[[1,2,3]]}}",
      "{\"inputs\":[]}",
  };
  for (size_t i = 0; i < sizeof left / sizeof *left; i++) mlf(&table, left[i], &rq, &e);
  /* past a double: jansson's refusal, as the tree parser's caller would get */
  const char *huge = "{\"instances\":[[50,1,2.5e400]]}";
  cr_assert_eq(serve_mlflow_parse_body(huge, strlen(huge), &table, &A, &rq, &e),
               -ERR_MALFORMED_JSON);
  cr_assert(strstr(e.msg, "real number overflow"), "%s", e.msg);
  cr_assert_eq(serve_mlflow_parse_body("", 0, &table, &A, &rq, &e), -ERR_MALFORMED_JSON);
  cr_assert_eq(mlf(&int_table, "{\"inputs\":[[1,2,3.5]]}", &rq, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_str_eq(e.msg,
                   "input 'X' row 0 column 'bmi': 3.5 is not a whole number, which INT64 needs");
}

Test(serve_payload, params_set_the_predict_options) {
  struct serve_request rq;
  struct err e;
  cr_assert_eq(
      mlf(&table,
          "{\"params\":{\"predict_proba\":true,\"output_margin\":false},\"inputs\":[[1,2,3]]}", &rq,
          &e),
      0, "%s", e.msg);
  cr_assert(rq.popts.proba && !rq.popts.margin);
  REFUSED(&table, "{\"params\":{\"predict_proba\":\"yes\"},\"inputs\":[[1,2,3]]}",
          "param 'predict_proba' must be true or false");
  REFUSED(&table, "{\"params\":{\"temperature\":0.5},\"inputs\":[[1,2,3]]}",
          "unknown param 'temperature'; Kiln takes predict_proba and output_margin");
  REFUSED(&table, "{\"params\":[1],\"inputs\":[[1,2,3]]}", "'params' must be an object");
}

Test(serve_payload, exactly_one_format) {
  REFUSED(
      &table, "{}",
      "the request needs one of 'dataframe_split', 'dataframe_records', 'instances' or 'inputs'");
  REFUSED(
      &table, "{\"params\":{}}",
      "the request needs one of 'dataframe_split', 'dataframe_records', 'instances' or 'inputs'");
  REFUSED(&table, "{\"instances\":[[1,2,3]],\"inputs\":[[1,2,3]]}",
          "the request has both 'instances' and 'inputs'; send exactly one of 'dataframe_split', "
          "'dataframe_records', "
          "'instances' or 'inputs'");
  REFUSED(&table, "{\"data\":[[1,2,3]]}",
          "unknown key 'data'; the request takes one of 'dataframe_split', 'dataframe_records', "
          "'instances' or 'inputs' "
          "(and 'params')");
  REFUSED(&table, "[[1,2,3]]",
          "the request must be a JSON object with one of 'dataframe_split', 'dataframe_records', "
          "'instances' or 'inputs'");
  struct serve_signature none = {0};
  REFUSED(&none, "{\"inputs\":[[1]]}",
          "the model describes no inputs, so a scoring payload cannot be mapped onto it; send a V2 "
          "request");
}

Test(serve_payload, column_errors_name_the_column) {
  REFUSED(&table, "{\"dataframe_split\":{\"columns\":[\"age\",\"sex\"],\"data\":[[50,1]]}}",
          "missing column 'bmi'");
  REFUSED(&table,
          "{\"dataframe_split\":{\"columns\":[\"age\",\"sex\",\"weight\"],\"data\":[[50,1,80]]}}",
          "unknown column 'weight'; the model takes: age, sex, bmi");
  REFUSED(&table,
          "{\"dataframe_split\":{\"columns\":[\"age\",\"age\",\"bmi\"],\"data\":[[50,1,80]]}}",
          "column 'age' appears twice");
  REFUSED(
      &table,
      "{\"dataframe_split\":{\"columns\":[\"age\",\"sex\",\"bmi\"],\"data\":[[50,1,80],[1,2]]}}",
      "row 1 must be a list of 3 values (one per column)");
  REFUSED(&table, "{\"dataframe_split\":{\"columns\":\"age\",\"data\":[[50,1,80]]}}",
          "'dataframe_split.columns' must be a list of column names");
  REFUSED(&table, "{\"dataframe_split\":{\"columns\":[\"age\",\"sex\",\"bmi\"]}}",
          "'dataframe_split.data' must be a list of rows");
  REFUSED(&table, "{\"dataframe_records\":[{\"age\":50,\"bmi\":22}]}",
          "record 0: missing column 'sex'");
  REFUSED(&table,
          "{\"dataframe_records\":[{\"age\":50,\"sex\":1,\"bmi\":22},{\"age\":5,\"sex\":1,\"bmi\":"
          "2,\"zip\":9}]}",
          "record 1: unknown column 'zip'; the model takes: age, sex, bmi");
  REFUSED(&table, "{\"dataframe_records\":[[50,1,22]]}",
          "record 0 must be an object {column: value}");
  REFUSED(&table, "{\"instances\":[[50,1]]}",
          "instance 0 has 2 values; expected 3 (one per column)");
  REFUSED(&table, "{\"inputs\":{\"age\":[1,2],\"sex\":[1],\"bmi\":[3,4]}}",
          "column 'sex' has 1 values; other columns have 2");
  REFUSED(&table, "{\"inputs\":{\"age\":[1],\"sex\":[1]}}", "missing column 'bmi'");
  REFUSED(&table, "{\"inputs\":{\"age\":[1],\"sex\":[1],\"bmi\":[2],\"x\":[1]}}",
          "unknown column 'x'; the model takes: age, sex, bmi");
}

Test(serve_payload, values_follow_the_column_dtype) {
  struct serve_request rq;
  struct err e;
  /* null in a float column is NaN: validation then applies the policy */
  cr_assert_eq(
      mlf(&table,
          "{\"dataframe_split\":{\"columns\":[\"age\",\"sex\",\"bmi\"],\"data\":[[50,null,22.5]]}}",
          &rq, &e),
      0, "%s", e.msg);
  cr_assert(isnan(((double *)rq.inputs[0].data)[1]));
  int64_t rows;
  struct serve_request keep = rq;
  cr_assert_eq(serve_validate(&table, &rq, &A, 0, &rows, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_str_eq(
      e.msg,
      "input 'X' row 0 column 1 ('sex') is NaN; the model does not take missing values (NaN)");
  struct serve_signature xgb = table;
  xgb.allow_nan = true;
  rq = keep;
  cr_assert_eq(serve_validate(&xgb, &rq, &A, 0, &rows, &e), 0, "%s", e.msg);

  REFUSED(&int_table,
          "{\"dataframe_split\":{\"columns\":[\"age\",\"sex\",\"bmi\"],\"data\":[[50,null,22]]}}",
          "input 'X' row 0 column 'sex': null is not a value of INT64");
  REFUSED(&int_table,
          "{\"dataframe_split\":{\"columns\":[\"age\",\"sex\",\"bmi\"],\"data\":[[50,1,22.5]]}}",
          "input 'X' row 0 column 'bmi': 22.5 is not a whole number, which INT64 needs");
  REFUSED(&table, "{\"dataframe_records\":[{\"age\":50,\"sex\":\"F\",\"bmi\":22}]}",
          "input 'X' row 0 column 'sex': a string; FP64 takes numbers");
  REFUSED(&table, "{\"instances\":[[50,[1],22]]}",
          "input 'X' row 0 column 'sex': an array where a single FP64 value belongs");
}

Test(serve_payload, tensors_for_models_without_columns) {
  struct serve_request rq;
  struct err e;
  const float want[] = {1, 2, 3, 4, 5, 6, 7, 8};
  static const char *bodies[] = {
      "{\"instances\":[[1,2,3,4],[5,6,7,8]]}",
      "{\"instances\":[{\"x\":[1,2,3,4]},{\"x\":[5,6,7,8]}]}",
      "{\"inputs\":[[1,2,3,4],[5,6,7,8]]}",
      "{\"inputs\":{\"x\":[[1,2,3,4],[5,6,7,8]]}}",
      /* columns that do not name the input: a positional table */
      "{\"dataframe_split\":{\"columns\":[\"f0\",\"f1\",\"f2\",\"f3\"],\"data\":[[1,2,3,4],[5,6,7,"
      "8]]}}",
      "{\"dataframe_split\":{\"data\":[[1,2,3,4],[5,6,7,8]]}}",
  };
  for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
    cr_assert_eq(mlf(&mlp, bodies[i], &rq, &e), 0, "%s: %s", bodies[i], e.msg);
    const struct serve_tensor *t = &rq.inputs[0];
    cr_assert_eq(t->dtype, SERVE_FP32);
    cr_assert(t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 4, "%s", bodies[i]);
    cr_assert_eq(memcmp(t->data, want, sizeof want), 0);
  }
  REFUSED(&mlp, "{\"instances\":[[1,2,3,4],[5,6]]}",
          "input 'x': nested lists are ragged or mix lists and values; expected shape [2,4] from "
          "the first elements");
  REFUSED(&mlp, "{\"inputs\":[[1,2,3,4],5]}",
          "input 'x': nested lists are ragged or mix lists and values; expected shape [2,4] from "
          "the first elements");
  REFUSED(&mlp, "{\"inputs\":{\"y\":[[1,2,3,4]]}}", "unknown input 'y'; the model takes: x");
  REFUSED(&mlp, "{\"dataframe_records\":[{\"a\":1}]}",
          "record keys must name the model's input 'x' (the model names no columns)");
  /* a column of scalars for an input of [-1,1] */
  struct serve_tensor_spec col[] = {{"v", SERVE_INT32, 2, {-1, 1}}};
  struct serve_signature s_col = {1, 1, col, one_out, 0, NULL, NULL, true, false};
  cr_assert_eq(mlf(&s_col, "{\"instances\":[3,4,5]}", &rq, &e), 0, "%s", e.msg);
  cr_assert(rq.inputs[0].ndim == 2 && rq.inputs[0].shape[0] == 3 && rq.inputs[0].shape[1] == 1);
  cr_assert_eq(((int32_t *)rq.inputs[0].data)[2], 5);
}

Test(serve_payload, named_inputs) {
  struct serve_request rq;
  struct err e;
  static const char *bodies[] = {
      "{\"instances\":[{\"a\":[1,2],\"b\":3},{\"b\":5,\"a\":[3,4]}]}",
      "{\"inputs\":{\"b\":[3,5],\"a\":[[1,2],[3,4]]}}",
      "{\"dataframe_split\":{\"columns\":[\"b\",\"a\"],\"data\":[[3,[1,2]],[5,[3,4]]]}}",
      "{\"dataframe_records\":[{\"a\":[1,2],\"b\":3},{\"a\":[3,4],\"b\":5}]}",
  };
  for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
    cr_assert_eq(mlf(&multi, bodies[i], &rq, &e), 0, "%s: %s", bodies[i], e.msg);
    cr_assert_eq(rq.ninputs, 2);
    cr_assert_str_eq(rq.inputs[0].name, "a");
    cr_assert(rq.inputs[0].shape[0] == 2 && rq.inputs[0].shape[1] == 2);
    cr_assert_eq(((float *)rq.inputs[0].data)[3], 4.0f);
    cr_assert_eq(rq.inputs[1].dtype, SERVE_INT64);
    cr_assert(rq.inputs[1].ndim == 1 && rq.inputs[1].shape[0] == 2);
    cr_assert_eq(((int64_t *)rq.inputs[1].data)[1], 5);
    int64_t rows;
    cr_assert_eq(serve_validate(&multi, &rq, &A, 0, &rows, &e), 0, "%s", e.msg);
  }
  REFUSED(&multi, "{\"instances\":[{\"a\":[1,2]}]}", "instance 0: missing input 'b'");
  REFUSED(&multi, "{\"instances\":[{\"a\":[1,2],\"b\":1,\"c\":2}]}",
          "instance 0: unknown input 'c'; the model takes: a, b");
  REFUSED(&multi, "{\"instances\":[[1,2]]}",
          "instance 0 must be an object {input: value}; the model takes 2 inputs");
  REFUSED(&multi, "{\"inputs\":[[1,2]]}",
          "the model takes 2 inputs; send 'inputs' as an object {input: values}");
  REFUSED(&multi, "{\"inputs\":{\"a\":[[1,2]]}}", "missing input 'b'");
  REFUSED(&multi, "{\"dataframe_split\":{\"columns\":[\"a\"],\"data\":[[[1,2]]]}}",
          "missing column 'b'");
  REFUSED(&multi, "{\"dataframe_split\":{\"columns\":[\"a\",\"q\"],\"data\":[[[1,2],1]]}}",
          "unknown input 'q'; the model takes: a, b");
}

/* ---- the answer -------------------------------------------------------------------- */

static char *dump(json_t *v) {
  cr_assert_not_null(v);
  char *s = json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(17));
  json_decref(v);
  return s;
}

Test(serve_payload, one_output_gives_its_rows) {
  float y[3] = {0.1f, 2.0f, NAN};
  struct serve_tensor t = {
      .name = "y", .dtype = SERVE_FP32, .ndim = 1, .shape = {3}, .data = y, .nbytes = sizeof y};
  json_t *v = serve_mlflow_encode_response(&t, 1);
  json_t *p = json_object_get(v, "predictions");
  cr_assert_eq(json_array_size(p), 3);
  cr_assert_eq(json_real_value(json_array_get(p, 0)), 0.1,
               "0.1f answers as the 0.1 a client reads");
  cr_assert(json_is_null(json_array_get(p, 2)), "NaN is null");
  json_decref(v);

  int64_t k[4] = {1, 2, 3, 4};
  struct serve_tensor m = {
      .name = "p", .dtype = SERVE_INT64, .ndim = 2, .shape = {2, 2}, .data = k, .nbytes = sizeof k};
  char *s = dump(serve_mlflow_encode_response(&m, 1));
  cr_assert_str_eq(s, "{\"predictions\":[[1,2],[3,4]]}");
  free(s);

  unsigned char by[] = {1, 0, 0, 0, 'a', 2, 0, 0, 0, 0xc3, 0xa9};
  struct serve_tensor b = {
      .name = "l", .dtype = SERVE_BYTES, .ndim = 1, .shape = {2}, .data = by, .nbytes = sizeof by};
  s = dump(serve_mlflow_encode_response(&b, 1));
  cr_assert_str_eq(s, "{\"predictions\":[\"a\",\"\xc3\xa9\"]}");
  free(s);

  json_t *rows = json_pack("[{s:f},{s:f}]", "a", 0.5, "b", 1.0);
  struct serve_tensor z = {
      .name = "prob", .dtype = SERVE_FP32, .ndim = 1, .shape = {2}, .json = rows};
  s = dump(serve_mlflow_encode_response(&z, 1));
  cr_assert_str_eq(s, "{\"predictions\":[{\"a\":0.5},{\"b\":1.0}]}");
  free(s);
  json_decref(rows);

  uint64_t big = UINT64_MAX;
  struct serve_tensor u = {
      .name = "u", .dtype = SERVE_UINT64, .ndim = 0, .data = &big, .nbytes = 8};
  v = serve_mlflow_encode_response(&u, 1);
  cr_assert(json_is_real(json_object_get(v, "predictions")), "past int64: a real");
  json_decref(v);
  bool flags[2] = {true, false};
  struct serve_tensor bl = {
      .name = "f", .dtype = SERVE_BOOL, .ndim = 1, .shape = {2}, .data = flags, .nbytes = 2};
  s = dump(serve_mlflow_encode_response(&bl, 1));
  cr_assert_str_eq(s, "{\"predictions\":[true,false]}");
  free(s);
}

Test(serve_payload, several_outputs_give_objects_per_row) {
  int64_t lab[2] = {1, 0};
  float pr[4] = {0.25f, 0.75f, 1, 0};
  struct serve_tensor outs[2] = {
      {.name = "label",
       .dtype = SERVE_INT64,
       .ndim = 1,
       .shape = {2},
       .data = lab,
       .nbytes = sizeof lab},
      {.name = "proba",
       .dtype = SERVE_FP32,
       .ndim = 2,
       .shape = {2, 2},
       .data = pr,
       .nbytes = sizeof pr},
  };
  char *s = dump(serve_mlflow_encode_response(outs, 2));
  cr_assert_str_eq(
      s,
      "{\"predictions\":[{\"label\":1,\"proba\":[0.25,0.75]},{\"label\":0,\"proba\":[1.0,0.0]}]}");
  free(s);
  s = dump(serve_mlflow_encode_response(outs, 0));
  cr_assert_str_eq(s, "{\"predictions\":[]}");
  free(s);
  /* an output whose bytes do not cover its shape */
  outs[1].nbytes = 8;
  cr_assert_null(serve_mlflow_encode_response(outs, 2));
}
