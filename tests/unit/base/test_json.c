/* tests for base/json: fault positions, depth bound, compact emission. */
#include <criterion/criterion.h>
#include <string.h>

#include "base/base.h"

Test(json, parses_valid_documents) {
  struct err e = {0};
  const char *doc = "{\"a\": [1, 2.5, \"x\"], \"b\": {\"c\": null}}";
  json_t *v = json_parse(doc, strlen(doc), &e);
  cr_assert_not_null(v);
  cr_assert_eq(json_integer_value(json_array_get(json_object_get(v, "a"), 0)), 1);
  json_decref(v);
}

Test(json, reports_line_column_and_byte_of_the_fault) {
  struct err e = {0};
  const char *doc = "{\n  \"a\": 1,\n  \"b\": tru\n}";
  json_t *v = json_parse(doc, strlen(doc), &e);
  cr_assert_null(v);
  cr_assert_eq(e.code, ERR_MALFORMED_JSON);
  cr_assert(strstr(e.msg, "line 3") != NULL, "message was: %s", e.msg);
  cr_assert(strstr(e.msg, "column") != NULL, "message was: %s", e.msg);
  cr_assert(strstr(e.msg, "byte") != NULL, "message was: %s", e.msg);
}

Test(json, empty_body_is_an_error) {
  struct err e = {0};
  cr_assert_null(json_parse("", 0, &e));
  cr_assert_eq(e.code, ERR_MALFORMED_JSON);
  cr_assert(strstr(e.msg, "empty") != NULL);
}

Test(json, nesting_is_bounded) {
  struct err e = {0};
  char deep[200];
  memset(deep, '[', 100);
  memset(deep + 100, ']', 100);
  cr_assert_null(json_parse(deep, sizeof deep, &e));
  cr_assert(strstr(e.msg, "nested deeper than 64") != NULL, "message was: %s", e.msg);
  /* brackets inside strings do not count */
  char ok[300];
  size_t n = 0;
  ok[n++] = '"';
  for (int i = 0; i < 100; i++) ok[n++] = '[';
  ok[n++] = '"';
  json_t *v = json_parse(ok, n, &e);
  cr_assert_not_null(v, "%s", e.msg);
  json_decref(v);
  /* 64 levels are fine */
  char edge[128];
  memset(edge, '[', 64);
  memset(edge + 64, ']', 64);
  v = json_parse(edge, sizeof edge, &e);
  cr_assert_not_null(v);
  json_decref(v);
}

Test(json, emit_is_compact_and_round_trips) {
  json_t *v = json_pack("{s:s, s:[i,f], s:b}", "k", "v\"q\n", "n", 12, 0.1, "t", 1);
  struct buf b;
  buf_init(&b);
  cr_assert_eq(json_emit(&b, v), 0);
  cr_assert_null(strchr(b.data, ' '), "compact output has no spaces: %s", b.data);
  struct err e;
  json_t *back = json_parse(b.data, b.len, &e);
  cr_assert(json_equal(v, back));
  cr_assert_eq(json_real_value(json_array_get(json_object_get(back, "n"), 1)), 0.1,
               "doubles must round-trip exactly");
  struct arena a;
  arena_init(&a, 64, 0);
  size_t len;
  char *s = json_emit_arena(&a, v, &len);
  cr_assert_str_eq(s, b.data);
  cr_assert_eq(len, b.len);
  arena_fini(&a);
  buf_fini(&b);
  json_decref(v);
  json_decref(back);
}

Test(json, escape_and_typed_getters) {
  struct buf b;
  buf_init(&b);
  json_escape_buf(&b, "a\"b\\c\n\x01");
  cr_assert_str_eq(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");
  buf_fini(&b);
  struct err e;
  json_t *o = json_pack("{s:s, s:i, s:s, s:s}", "name", "x", "n", 5, "big", "123456789012", "bad", "1x");
  const char *s;
  int64_t i;
  cr_assert_eq(json_get_str(o, "name", true, &s, &e), 0);
  cr_assert_str_eq(s, "x");
  cr_assert_lt(json_get_str(o, "missing", true, &s, &e), 0);
  cr_assert(strstr(e.msg, "missing") != NULL);
  cr_assert_eq(json_get_str(o, "missing", false, &s, &e), 0);
  cr_assert_null(s);
  cr_assert_lt(json_get_str(o, "n", true, &s, &e), 0, "a number is not a string");
  cr_assert_eq(json_get_i64(o, "n", true, &i, &e), 0);
  cr_assert_eq(i, 5);
  cr_assert_eq(json_get_i64(o, "big", true, &i, &e), 0, "int64 as string (protobuf JSON)");
  cr_assert_eq(i, 123456789012LL);
  cr_assert_lt(json_get_i64(o, "bad", true, &i, &e), 0);
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  json_decref(o);
}

/* Regression (found by fuzz_http): raw bytes from a path made error bodies
 * that no JSON parser accepts. */
Test(json, escape_always_produces_valid_utf8_json) {
  struct buf b;
  buf_init(&b);
  json_escape_buf(&b, "a\x86z \xc3\xa9 \xe2\x82");
  struct err e;
  json_t *v = json_parse(b.data, b.len, &e);
  cr_assert_not_null(v, "%s: %s", b.data, e.msg);
  cr_assert_str_eq(json_string_value(v), "a\xef\xbf\xbdz \xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd");
  json_decref(v);
  buf_fini(&b);
}
