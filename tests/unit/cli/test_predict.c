/* tests for cli/predict: the CSV reader, how CSV cells become JSON, how a
 * --json payload is recognised, and MODEL@VERSION splitting. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "cli/internal.h"

static FILE *text_file(const char *s) {
  FILE *f = fmemopen((void *)s, strlen(s), "r");
  cr_assert_not_null(f);
  return f;
}

/* Every record of s as "a|b|c" lines, "!" and the message on an error. */
static void records(const char *s, char *out, size_t cap) {
  FILE *f = text_file(s);
  struct cli_csv c;
  cli_csv_init(&c, f);
  struct err e = {0};
  size_t n = 0;
  out[0] = 0;
  int rc;
  while ((rc = cli_csv_next(&c, &e)) == 1) {
    for (int i = 0; i < c.nfields; i++)
      n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? "|" : "", cli_csv_field(&c, i));
    n += (size_t)snprintf(out + n, cap - n, "@%lld\n", (long long)c.line);
  }
  if (rc < 0) snprintf(out + n, cap - n, "!%s", e.msg);
  cli_csv_fini(&c);
  fclose(f);
}

Test(cli_predict_csv, plain_quoted_and_crlf_records) {
  char out[512];
  records("a,b,c\n1,2.5,x\r\n\"q,1\",\"say \"\"hi\"\"\",\n", out, sizeof out);
  cr_assert_str_eq(out, "a|b|c@1\n1|2.5|x@2\nq,1|say \"hi\"|@3\n");
}

Test(cli_predict_csv, quoted_newlines_and_blank_lines_keep_line_numbers) {
  char out[512];
  records("h1,h2\n\n\"two\nlines\",2\n\n3,4", out, sizeof out);
  /* the record after a field spanning lines 3-4 starts on line 6 */
  cr_assert_str_eq(out, "h1|h2@1\ntwo\nlines|2@3\n3|4@6\n");
}

Test(cli_predict_csv, empty_fields_and_a_last_line_without_newline) {
  char out[256];
  records(",\n,,\nx", out, sizeof out);
  cr_assert_str_eq(out, "|@1\n||@2\nx@3\n");
}

Test(cli_predict_csv, unclosed_quote_is_an_error_naming_the_line) {
  char out[256];
  records("a,b\n1,\"open\n", out, sizeof out);
  cr_assert(strstr(out, "!line 2: a quoted field is never closed") != NULL, "got: %s", out);
}

Test(cli_predict_csv, fields_and_columns_are_bounded) {
  size_t n = CLI_CSV_MAX_FIELD + 10;
  char *big = malloc(n + 1);
  cr_assert_not_null(big);
  memset(big, 'x', n);
  big[n] = 0;
  char out[256];
  records(big, out, sizeof out);
  cr_assert(strstr(out, "!line 1: field 1 is longer than") != NULL, "got: %s", out);
  free(big);
  size_t m = (size_t)CLI_CSV_MAX_COLS + 5;
  char *wide = malloc(m + 1);
  cr_assert_not_null(wide);
  memset(wide, ',', m);
  wide[m] = 0;
  records(wide, out, sizeof out);
  cr_assert(strstr(out, "more than 10000 fields") != NULL, "got: %s", out);
  free(wide);
}

Test(cli_predict_csv, empty_file_has_no_record) {
  char out[64];
  records("", out, sizeof out);
  cr_assert_str_eq(out, "");
  records("\n\r\n", out, sizeof out);
  cr_assert_str_eq(out, "");
}

static void cell(const char *in, const char *want) {
  struct buf b;
  buf_init(&b);
  cr_assert_eq(cli_csv_cell_json(&b, in), 0);
  cr_assert_str_eq(b.data, want, "cell '%s' gave %s, wanted %s", in, b.data, want);
  buf_fini(&b);
}

Test(cli_predict_csv, cells_become_json_numbers_nulls_or_strings) {
  cell("3", "3");
  cell("-0.25", "-0.25");
  cell("6.02e23", "6.02e23");
  cell("0.1000000000000000055511151231257827",
       "0.1000000000000000055511151231257827"); /* copied as written */
  cell(" 7 ", "7");
  cell("1.", "1.0");
  cell(".5", "0.5");
  cell("+2", "2.0");
  cell("007", "7.0");
  cell("", "null");
  cell("   ", "null");
  cell("NaN", "null");
  cell("nan", "null");
  cell("inf", "\"inf\"");
  cell("1e999", "\"1e999\"");
  cell("0x10", "\"0x10\"");
  cell("-0x1p3", "\"-0x1p3\"");
  cell("1e-400", "1e-400");
  cell("red", "\"red\"");
  cell("say \"hi\"\n", "\"say \\\"hi\\\"\\n\"");
}

static json_t *payload(const char *text, bool proba, bool margin, struct err *e) {
  return cli_predict_payload(text, proba, margin, e);
}

Test(cli_predict_payload, a_bare_list_is_sent_as_instances) {
  struct err e = {0};
  json_t *p = payload("[[1, 2], [3, 4]]", false, false, &e);
  cr_assert_not_null(p, "%s", e.msg);
  json_t *want = json_loads("{\"instances\": [[1, 2], [3, 4]]}", 0, NULL);
  cr_assert(json_equal(p, want));
  json_decref(want);
  json_decref(p);
}

Test(cli_predict_payload, mlflow_payloads_go_as_given_with_params_added) {
  struct err e = {0};
  json_t *p = payload(
      "{\"dataframe_split\": {\"columns\": [\"a\"], \"data\": [[1]]}, \"params\": {\"x\": 1}}",
      true, true, &e);
  cr_assert_not_null(p, "%s", e.msg);
  json_t *params = json_object_get(p, "params");
  cr_assert(json_is_true(json_object_get(params, "predict_proba")));
  cr_assert(json_is_true(json_object_get(params, "output_margin")));
  cr_assert_eq(json_integer_value(json_object_get(params, "x")), 1);
  cr_assert_not_null(json_object_get(p, "dataframe_split"));
  json_decref(p);
  for (const char *k = "dataframe_records\0instances\0inputs\0"; *k; k += strlen(k) + 1) {
    char doc[128];
    snprintf(doc, sizeof doc, "{\"%s\": [[1]]}", k);
    p = payload(doc, false, false, &e);
    cr_assert_not_null(p, "%s: %s", k, e.msg);
    cr_assert_null(json_object_get(p, "params"), "no params unless asked");
    json_decref(p);
  }
}

Test(cli_predict_payload, refuses_what_is_not_a_payload) {
  struct err e = {0};
  cr_assert_null(payload("{\"rows\": [[1]]}", false, false, &e));
  cr_assert(strstr(e.msg, "needs one of dataframe_split") != NULL, "%s", e.msg);
  cr_assert_null(payload("{\"instances\": [1], \"inputs\": [1]}", false, false, &e));
  cr_assert(strstr(e.msg, "more than one") != NULL, "%s", e.msg);
  cr_assert_null(payload("42", false, false, &e));
  cr_assert(strstr(e.msg, "list of rows") != NULL, "%s", e.msg);
  cr_assert_null(payload("[1, 2", false, false, &e));
  cr_assert_eq(e.code, ERR_MALFORMED_JSON);
  cr_assert_null(payload("{\"instances\": [1], \"params\": 3}", true, false, &e));
  cr_assert(strstr(e.msg, "params must be an object") != NULL, "%s", e.msg);
}

Test(cli_predict_ref, model_and_version) {
  char n[64], v[32];
  cr_assert_eq(cli_model_ref("churn", n, sizeof n, v, sizeof v), 0);
  cr_assert_str_eq(n, "churn");
  cr_assert_str_eq(v, "latest");
  cr_assert_eq(cli_model_ref("churn@3", n, sizeof n, v, sizeof v), 0);
  cr_assert_str_eq(v, "3");
  cr_assert_eq(cli_model_ref("team@x@champion", n, sizeof n, v, sizeof v), 0);
  cr_assert_str_eq(n, "team@x");
  cr_assert_str_eq(v, "champion");
  cr_assert_eq(cli_model_ref("@3", n, sizeof n, v, sizeof v), -1);
  cr_assert_eq(cli_model_ref("churn@", n, sizeof n, v, sizeof v), -1);
  cr_assert_eq(
      cli_model_ref("a-name-longer-than-the-buffer-allows-for-sure-yes-indeed-quite-long-x", n,
                    sizeof n, v, sizeof v),
      -1);
}
