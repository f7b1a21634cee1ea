/* tests for track/filter: the search grammar (quoting, backticks, types,
 * IN, LIKE/ILIKE, precedence, BETWEEN, every error with its position,
 * limits) and the SQL it compiles to, executed against a real in-memory
 * SQLite database with the tracking schema. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "track/filter.h"

/* ---- helpers ---------------------------------------------------------------- */

/* Parses (must succeed) and compiles; returns the SQL, fills binds. */
static char *compile(const char *text, enum track_flt_entity ent, struct track_flt_binds *b) {
  struct track_flt *f = NULL;
  struct err e;
  int rc = track_flt_parse(text, ent, &f, &e);
  cr_assert_eq(rc, 0, "parse of [%s] failed: %s", text, e.msg);
  struct buf sql;
  buf_init(&sql);
  cr_assert_eq(track_flt_to_sql(f, &sql, b, &e), 0, "%s", e.msg);
  track_flt_free(f);
  return buf_steal(&sql);
}

/* Parses text, which must fail, and returns the message (static). */
static const char *parse_error(const char *text, enum track_flt_entity ent) {
  static struct err e;
  struct track_flt *f = (struct track_flt *)1;
  int rc = track_flt_parse(text, ent, &f, &e);
  cr_assert_lt(rc, 0, "[%s] parsed but should not", text);
  cr_assert_null(f);
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE, "[%s]: %s", text, e.msg);
  return e.msg;
}

#define ERR_IS(text, ent, want)                                                                    \
  do {                                                                                             \
    const char *got_ = parse_error(text, ent);                                                     \
    cr_expect_str_eq(got_, want, "filter [%s]", text);                                             \
  } while (0)

static const char *order_error(const char *const *clauses, int n, enum track_flt_entity ent) {
  static struct err e;
  struct buf sql;
  struct track_flt_binds b;
  buf_init(&sql);
  track_flt_binds_init(&b);
  int rc = track_flt_order_by(clauses, n, ent, &sql, &b, &e);
  buf_fini(&sql);
  track_flt_binds_fini(&b);
  cr_assert_lt(rc, 0, "order_by [%s] accepted", n ? clauses[0] : "");
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  return e.msg;
}

/* ---- parsing ----------------------------------------------------------------- */

TestSuite(filter_parse);

Test(filter_parse, empty_and_blank_match_everything) {
  const char *inputs[] = {NULL, "", "   ", "\t\n\r "};
  for (size_t i = 0; i < 4; i++) {
    struct track_flt *f;
    struct err e;
    cr_assert_eq(track_flt_parse(inputs[i], TRACK_FLT_RUNS, &f, &e), 0);
    cr_expect(track_flt_is_empty(f));
    struct buf sql;
    struct track_flt_binds b;
    buf_init(&sql);
    track_flt_binds_init(&b);
    cr_assert_eq(track_flt_to_sql(f, &sql, &b, &e), 0);
    cr_expect_str_eq(sql.data, "(1=1)");
    cr_expect_eq(b.n, 0);
    buf_fini(&sql);
    track_flt_binds_fini(&b);
    track_flt_free(f);
  }
}

Test(filter_parse, string_quoting_and_escapes) {
  struct {
    const char *filter, *value;
  } cases[] = {
      {"params.p = 'abc'", "abc"},
      {"params.p = \"abc\"", "abc"},
      {"params.p = 'it''s'", "it's"},
      {"params.p = 'it\\'s'", "it's"},
      {"params.p = \"say \"\"hi\"\"\"", "say \"hi\""},
      {"params.p = \"a'b\"", "a'b"},
      {"params.p = 'a\"b'", "a\"b"},
      {"params.p = 'back\\\\slash'", "back\\slash"},
      {"params.p = 'C:\\Users'", "C:\\Users"},
      {"params.p = ''", ""},
      {"params.p = 'AND OR NOT ( )'", "AND OR NOT ( )"},
      {"params.p = 'héllo wörld'", "héllo wörld"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct track_flt_binds b;
    track_flt_binds_init(&b);
    char *sql = compile(cases[i].filter, TRACK_FLT_RUNS, &b);
    cr_assert_eq(b.n, 2, "%s", cases[i].filter);
    cr_expect_eq(b.v[1].type, TRACK_FLT_BIND_TEXT);
    cr_expect_str_eq(b.v[1].v.text.s, cases[i].value, "%s", cases[i].filter);
    cr_expect_eq(b.v[1].v.text.len, strlen(cases[i].value));
    free(sql);
    track_flt_binds_fini(&b);
  }
}

Test(filter_parse, identifiers_prefixes_backticks_and_dotted_keys) {
  struct {
    const char *filter, *key;
  } cases[] = {
      {"metrics.acc > 1", "acc"},
      {"metric.acc > 1", "acc"},
      {"METRICS.acc > 1", "acc"},
      {"metrics.`f1 score` > 1", "f1 score"},
      {"metrics.\"f1 score\" > 1", "f1 score"},
      {"`metrics`.`f1 score` > 1", "f1 score"},
      {"metrics.`a``b` > 1", "a`b"},
      {"metrics.system/cpu_utilization_percentage > 1", "system/cpu_utilization_percentage"},
      {"metrics.val-loss:2 > 1", "val-loss:2"},
      {"tags.mlflow.source.name = 'x'", "mlflow.source.name"},
      {"tags.\"mlflow.source.name\" = 'x'", "mlflow.source.name"},
      {"tag.t = 'x'", "t"},
      {"params.lr = 'x'", "lr"},
      {"param.lr = 'x'", "lr"},
      {"parameter.lr = 'x'", "lr"},
      {"parameters.lr = 'x'", "lr"},
      {"metrics.ünïcode > 1", "ünïcode"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct track_flt_binds b;
    track_flt_binds_init(&b);
    char *sql = compile(cases[i].filter, TRACK_FLT_RUNS, &b);
    cr_assert_geq(b.n, 1);
    cr_expect_eq(b.v[0].type, TRACK_FLT_BIND_TEXT);
    cr_expect_str_eq(b.v[0].v.text.s, cases[i].key, "%s", cases[i].filter);
    free(sql);
    track_flt_binds_fini(&b);
  }
}

Test(filter_parse, attribute_spellings_and_aliases) {
  struct {
    const char *filter, *col;
  } cases[] = {
      {"run_id = 'a'", "r.run_uuid = ?"},
      {"attributes.run_id = 'a'", "r.run_uuid = ?"},
      {"attribute.run_id = 'a'", "r.run_uuid = ?"},
      {"attr.run_id = 'a'", "r.run_uuid = ?"},
      {"run.run_id = 'a'", "r.run_uuid = ?"},
      {"attributes.run_name = 'a'", "r.name = ?"},
      {"attributes.`Run name` = 'a'", "r.name = ?"},
      {"`Run Name` = 'a'", "r.name = ?"},
      {"attributes.\"run name\" = 'a'", "r.name = ?"},
      {"status = 'FINISHED'", "r.status = ?"},
      {"user_id = 'u'", "r.user_id = ?"},
      {"artifact_uri LIKE 's3://%'", "r.artifact_uri GLOB ?"},
      {"start_time > 5", "r.start_time > ?"},
      {"created > 5", "r.start_time > ?"},
      {"attributes.Created > 5", "r.start_time > ?"},
      {"end_time <= 5", "r.end_time <= ?"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct track_flt_binds b;
    track_flt_binds_init(&b);
    char *sql = compile(cases[i].filter, TRACK_FLT_RUNS, &b);
    cr_expect(strstr(sql, cases[i].col) != NULL, "%s -> %s", cases[i].filter, sql);
    free(sql);
    track_flt_binds_fini(&b);
  }
}

Test(filter_parse, numbers_bind_with_their_type) {
  struct {
    const char *filter;
    enum track_flt_bind_type type;
    int64_t i;
    double d;
  } cases[] = {
      {"metrics.m = 1", TRACK_FLT_BIND_F64, 0, 1.0},
      {"metrics.m = -2", TRACK_FLT_BIND_F64, 0, -2.0},
      {"metrics.m = 0.25", TRACK_FLT_BIND_F64, 0, 0.25},
      {"metrics.m = .5", TRACK_FLT_BIND_F64, 0, 0.5},
      {"metrics.m = 5.", TRACK_FLT_BIND_F64, 0, 5.0},
      {"metrics.m = 1e3", TRACK_FLT_BIND_F64, 0, 1000.0},
      {"metrics.m = -1.5E-2", TRACK_FLT_BIND_F64, 0, -0.015},
      {"metrics.m = +7", TRACK_FLT_BIND_F64, 0, 7.0},
      {"start_time = 1700000000000", TRACK_FLT_BIND_I64, 1700000000000LL, 0},
      {"start_time = -3", TRACK_FLT_BIND_I64, -3, 0},
      {"start_time = 1.5", TRACK_FLT_BIND_F64, 0, 1.5},
      {"start_time = 1e2", TRACK_FLT_BIND_F64, 0, 100.0},
      {"start_time = 99999999999999999999", TRACK_FLT_BIND_F64, 0, 1e20},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct track_flt_binds b;
    track_flt_binds_init(&b);
    char *sql = compile(cases[i].filter, TRACK_FLT_RUNS, &b);
    const struct track_flt_bind *v = &b.v[b.n - 1];
    cr_expect_eq(v->type, cases[i].type, "%s", cases[i].filter);
    if (v->type == TRACK_FLT_BIND_I64)
      cr_expect_eq(v->v.i64, cases[i].i, "%s", cases[i].filter);
    else
      cr_expect_float_eq(v->v.f64, cases[i].d, 1e-9 * (1 + (cases[i].d < 0 ? -cases[i].d : cases[i].d)),
                         "%s", cases[i].filter);
    free(sql);
    track_flt_binds_fini(&b);
  }
}

Test(filter_parse, keywords_are_case_insensitive) {
  const char *ok[] = {
      "metrics.a > 1 and metrics.b < 2",
      "metrics.a > 1 AnD metrics.b < 2",
      "params.p like 'x%'",
      "params.p iLiKe 'x%'",
      "run_id in ('a')",
      "run_id not in ('a')",
      "run_id NOT   IN('a')",
      "metrics.a > 1 or not metrics.b < 2",
      "metrics.a between 1 and 2",
      "metrics.a NOT BETWEEN 1 AND 2",
      "params.p is null",
      "params.p IS NOT NULL",
      "params.p not like 'a'",
      "params.p NOT ILIKE 'a'",
      "metrics.a>1 AND(metrics.b<2)",
      "metrics.a <> 1",
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    struct track_flt *f;
    struct err e;
    cr_expect_eq(track_flt_parse(ok[i], TRACK_FLT_RUNS, &f, &e), 0, "[%s]: %s", ok[i], e.msg);
    track_flt_free(f);
  }
}

Test(filter_parse, precedence_and_over_or_not_tightest) {
  struct track_flt_binds b;
  track_flt_binds_init(&b);
  char *sql = compile("status = 'A' OR status = 'B' AND status = 'C'", TRACK_FLT_RUNS, &b);
  /* A OR (B AND C) */
  cr_expect_str_eq(sql, "(((r.status IS NOT NULL AND r.status = ?) OR ((r.status IS NOT NULL AND "
                        "r.status = ?) AND (r.status IS NOT NULL AND r.status = ?))))");
  free(sql);
  track_flt_binds_fini(&b);
  track_flt_binds_init(&b);
  sql = compile("NOT status = 'A' AND status = 'B'", TRACK_FLT_RUNS, &b);
  cr_expect_str_eq(sql, "(((NOT (r.status IS NOT NULL AND r.status = ?)) AND (r.status IS NOT "
                        "NULL AND r.status = ?)))");
  free(sql);
  track_flt_binds_fini(&b);
  track_flt_binds_init(&b);
  sql = compile("(status = 'A' OR status = 'B') AND status = 'C'", TRACK_FLT_RUNS, &b);
  cr_expect_str_eq(sql, "((((r.status IS NOT NULL AND r.status = ?) OR (r.status IS NOT NULL AND "
                        "r.status = ?)) AND (r.status IS NOT NULL AND r.status = ?)))");
  cr_expect_eq(b.n, 3);
  free(sql);
  track_flt_binds_fini(&b);
}

Test(filter_parse, like_patterns_translate_to_glob_and_escaped_like) {
  struct {
    const char *filter, *bound;
  } cases[] = {
      {"params.p LIKE 'a%b_c'", "a*b?c"},
      {"params.p LIKE 'a\\%b\\_c'", "a%b_c"},
      {"params.p LIKE '*?[x]'", "[*][?][[]x]"},
      {"params.p LIKE 'end\\'", "end'"}, /* \' is the quote: the literal goes on */
      {"params.p LIKE 'tail\\\\'", "tail\\"},
      {"params.p LIKE '\\é'", "\\é"},
      {"params.p ILIKE 'a%b_c'", "a%b_c"},
      {"params.p ILIKE 'a\\%b\\_c'", "a\\%b\\_c"},
      {"params.p ILIKE '100\\\\%'", "100\\%"},
      {"params.p LIKE 'C:\\Users\\%'", "C:\\Users%"},
      {"params.p ILIKE 'C:\\U%'", "C:\\\\U%"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct track_flt *f;
    struct err e;
    int rc = track_flt_parse(cases[i].filter, TRACK_FLT_RUNS, &f, &e);
    if (i == 3) { /* 'end\' never closes */
      cr_expect_lt(rc, 0);
      continue;
    }
    cr_assert_eq(rc, 0, "%s: %s", cases[i].filter, e.msg);
    struct buf sql;
    struct track_flt_binds b;
    buf_init(&sql);
    track_flt_binds_init(&b);
    cr_assert_eq(track_flt_to_sql(f, &sql, &b, &e), 0);
    cr_expect_str_eq(b.v[1].v.text.s, cases[i].bound, "%s", cases[i].filter);
    buf_fini(&sql);
    track_flt_binds_fini(&b);
    track_flt_free(f);
  }
}

Test(filter_parse, malformed_inputs_name_position_and_expectation) {
  ERR_IS("metrics.acc > 0.5 AND foo", TRACK_FLT_RUNS,
         "filter: at position 23: invalid attribute key 'foo' specified. Valid keys are 'run_id', "
         "'run_name', 'user_id', 'status', 'artifact_uri', 'start_time', 'created', 'end_time'");
  ERR_IS("metrics.acc foo 0.5", TRACK_FLT_RUNS,
         "filter: at position 13: expected a comparator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, "
         "NOT IN), found 'foo'");
  ERR_IS("metrics.acc", TRACK_FLT_RUNS,
         "filter: at position 12: expected a comparator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, "
         "NOT IN), found end of input");
  ERR_IS("metrics.acc == 1", TRACK_FLT_RUNS,
         "filter: at position 14: expected numeric value type for metric 'acc', found '='");
  ERR_IS("metrics.acc > 0.5 foo", TRACK_FLT_RUNS,
         "filter: at position 19: expected AND, OR or end of input, found 'foo'");
  ERR_IS("metrics.acc > '0.5'", TRACK_FLT_RUNS,
         "filter: at position 15: expected numeric value type for metric 'acc', found '0.5'");
  ERR_IS("metrics.acc > abc", TRACK_FLT_RUNS,
         "filter: at position 15: expected numeric value type for metric 'acc', found 'abc'");
  ERR_IS("metrics.acc > 1.2.3", TRACK_FLT_RUNS,
         "filter: at position 15: expected numeric value type for metric 'acc', found '1.2.3'");
  ERR_IS("metrics.acc > 1e", TRACK_FLT_RUNS,
         "filter: at position 15: expected numeric value type for metric 'acc', found '1e'");
  ERR_IS("params.lr = 0.01", TRACK_FLT_RUNS,
         "filter: at position 13: expected a quoted string value for param 'lr' (e.g. "
         "'my-value'), found '0.01'");
  ERR_IS("status = FINISHED", TRACK_FLT_RUNS,
         "filter: at position 10: expected a quoted string value for attribute 'status' (e.g. "
         "'my-value'), found 'FINISHED'");
  ERR_IS("start_time > 'yesterday'", TRACK_FLT_RUNS,
         "filter: at position 14: expected numeric value type for attribute 'start_time', found "
         "'yesterday'");
  ERR_IS("params.lr = 'abc", TRACK_FLT_RUNS,
         "filter: at position 13: unterminated string literal starting here");
  ERR_IS("metrics.`acc > 1", TRACK_FLT_RUNS,
         "filter: at position 9: unterminated backtick-quoted name starting here");
  ERR_IS("metrics.acc LIKE 'x'", TRACK_FLT_RUNS,
         "filter: at position 13: invalid comparator 'LIKE' for metric 'acc'; expected one of =, "
         "!=, <, <=, >, >=, BETWEEN, IS NULL, IS NOT NULL");
  ERR_IS("params.lr > '1'", TRACK_FLT_RUNS,
         "filter: at position 11: invalid comparator '>' for param 'lr'; expected one of =, !=, "
         "LIKE, ILIKE, IS NULL, IS NOT NULL");
  ERR_IS("tags.t IN ('a')", TRACK_FLT_RUNS,
         "filter: at position 8: invalid comparator 'IN' for tag 't'; expected one of =, !=, LIKE, "
         "ILIKE, IS NULL, IS NOT NULL");
  ERR_IS("status not in ('a')", TRACK_FLT_RUNS,
         "filter: at position 8: invalid comparator 'NOT IN' for attribute 'status'; expected one "
         "of =, !=, LIKE, ILIKE, IS NULL, IS NOT NULL");
  ERR_IS("run_id IN 'a'", TRACK_FLT_RUNS,
         "filter: at position 11: expected '(' to open the IN list, found 'a'");
  ERR_IS("run_id IN ()", TRACK_FLT_RUNS,
         "filter: at position 12: expected a quoted string value for attribute 'run_id' (e.g. "
         "'my-value'), found ')'");
  ERR_IS("run_id IN ('a' 'b')", TRACK_FLT_RUNS,
         "filter: at position 16: expected ',' or ')' in the IN list, found 'b'");
  ERR_IS("run_id IN ('a',)", TRACK_FLT_RUNS,
         "filter: at position 16: expected a quoted string value for attribute 'run_id' (e.g. "
         "'my-value'), found ')'");
  ERR_IS("run_id IN ('a'", TRACK_FLT_RUNS,
         "filter: at position 15: expected ',' or ')' in the IN list, found end of input");
  ERR_IS("run_id NOT 'a'", TRACK_FLT_RUNS,
         "filter: at position 12: expected LIKE, ILIKE, IN or BETWEEN after NOT, found 'a'");
  ERR_IS("params.p IS 'a'", TRACK_FLT_RUNS,
         "filter: at position 13: expected NULL or NOT NULL after IS, found 'a'");
  ERR_IS("metrics.a BETWEEN 1 OR 2", TRACK_FLT_RUNS,
         "filter: at position 21: expected AND in BETWEEN ... AND ..., found 'OR'");
  ERR_IS("metrics.a BETWEEN 1 AND", TRACK_FLT_RUNS,
         "filter: at position 24: expected numeric value type for metric 'a', found end of input");
  ERR_IS("(metrics.a > 1", TRACK_FLT_RUNS,
         "filter: at position 15: expected AND, OR or ')' to close the '(' at position 1, found "
         "end of input");
  ERR_IS("metrics.a > 1)", TRACK_FLT_RUNS, "filter: at position 14: unmatched ')'");
  ERR_IS("()", TRACK_FLT_RUNS,
         "filter: at position 2: expected an identifier (metrics.<key>, params.<key>, tags.<key> "
         "or an attribute), found ')'");
  ERR_IS("metrics.a > 1 AND", TRACK_FLT_RUNS,
         "filter: at position 18: expected an identifier (metrics.<key>, params.<key>, tags.<key> "
         "or an attribute), found end of input");
  ERR_IS("metrics.a > 1 AND AND metrics.b > 1", TRACK_FLT_RUNS,
         "filter: at position 19: invalid attribute key 'AND' specified. Valid keys are "
         "'run_id', 'run_name', 'user_id', 'status', 'artifact_uri', 'start_time', 'created', "
         "'end_time'");
  ERR_IS("NOT", TRACK_FLT_RUNS,
         "filter: at position 4: expected an identifier (metrics.<key>, params.<key>, tags.<key> "
         "or an attribute), found end of input");
  ERR_IS("'a' = 'a'", TRACK_FLT_RUNS,
         "filter: at position 1: expected an identifier (metrics.<key>, params.<key>, tags.<key> "
         "or an attribute), found 'a'");
  ERR_IS("metrics. > 1", TRACK_FLT_RUNS, "filter: at position 9: expected a key after 'metrics.', found whitespace");
  ERR_IS("metrics.`` > 1", TRACK_FLT_RUNS, "filter: at position 1: empty key");
  ERR_IS("foo.bar = 'x'", TRACK_FLT_RUNS,
         "filter: at position 1: invalid entity type 'foo'. Valid values are 'metrics', 'params', "
         "'tags', 'attributes', 'datasets'");
  ERR_IS("datasets.name = 'x'", TRACK_FLT_RUNS,
         "filter: at position 1: dataset filters (datasets.name, datasets.digest, "
         "datasets.context) are not supported yet");
  ERR_IS("metrics.acc > 1 ; DROP TABLE runs", TRACK_FLT_RUNS,
         "filter: at position 17: expected AND, OR or end of input, found ';'");
  ERR_IS("metrics.é > 1 AND tags.x = 'y' @", TRACK_FLT_RUNS,
         "filter: at position 32: expected AND, OR or end of input, found '@'");
  ERR_IS("params.p = 'a' \x01", TRACK_FLT_RUNS,
         "filter: at position 16: expected AND, OR or end of input, found '\\x01'");
  ERR_IS("params.p = 'a\xff'", TRACK_FLT_RUNS, "filter: at position 14: invalid UTF-8");
  ERR_IS("params.p = 'a' AND \xc3", TRACK_FLT_RUNS, "filter: at position 20: invalid UTF-8");
  /* experiments, registered models, model versions */
  ERR_IS("metrics.acc > 1", TRACK_FLT_EXPERIMENTS,
         "filter: at position 1: invalid entity type 'metrics'. Valid values are 'attributes', "
         "'tags'");
  ERR_IS("params.p = 'a'", TRACK_FLT_REGISTERED_MODELS,
         "filter: at position 1: invalid entity type 'params'. Valid values are 'attributes', "
         "'tags'");
  ERR_IS("run.name = 'a'", TRACK_FLT_EXPERIMENTS,
         "filter: at position 1: invalid entity type 'run'. Valid values are 'attributes', "
         "'tags'");
  ERR_IS("experiment_id = 1", TRACK_FLT_EXPERIMENTS,
         "filter: at position 1: invalid attribute key 'experiment_id' specified. Valid keys are "
         "'name', 'creation_time', 'last_update_time'");
  ERR_IS("creation_timestamp > 1", TRACK_FLT_REGISTERED_MODELS,
         "filter: at position 1: invalid attribute key 'creation_timestamp' specified. Valid keys "
         "are 'name'");
  ERR_IS("name IN ('a')", TRACK_FLT_MODEL_VERSIONS,
         "filter: at position 6: invalid comparator 'IN' for attribute 'name'; expected one of =, "
         "!=, LIKE, ILIKE, IS NULL, IS NOT NULL");
  ERR_IS("version_number = '1'", TRACK_FLT_MODEL_VERSIONS,
         "filter: at position 18: expected numeric value type for attribute 'version_number', "
         "found '1'");
}

Test(filter_parse, long_found_tokens_are_cut) {
  char text[200];
  snprintf(text, sizeof text, "metrics.acc %s 1", "abcdefghijabcdefghijabcdefghijabcdefghij");
  const char *msg = parse_error(text, TRACK_FLT_RUNS);
  cr_expect_str_eq(msg, "filter: at position 13: expected a comparator (=, !=, <, <=, >, >=, "
                        "LIKE, ILIKE, IN, NOT IN), found 'abcdefghijabcdefghijabcdefghijab...'");
}

static bool utf8_ok(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    int n = *p < 0x80 ? 0 : (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2 : (*p & 0xF8) == 0xF0 ? 3 : -1;
    if (n < 0) return false;
    for (p++; n > 0; n--, p++)
      if ((*p & 0xC0) != 0x80) return false;
  }
  return true;
}

/* found by fuzz_filter: escaped control bytes filled the quote of the found
 * token, which was then cut inside a multi-byte character */
Test(filter_parse, messages_stay_utf8_when_cut) {
  const char *msg = parse_error("attributes.run_id'NOT] IN\n\n \n\n\n\n\n\n\n\n%s\x06\xc3\xaf ",
                                TRACK_FLT_RUNS);
  cr_expect(utf8_ok(msg), "%s", msg);
  cr_expect(strstr(msg, "found 'NOT] IN\\x0a\\x0a \\x0a") != NULL, "%s", msg);
  const char *c[] = {"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9 x"};
  const char *m2 = order_error(c, 1, TRACK_FLT_RUNS);
  cr_expect(utf8_ok(m2), "%s", m2);
  char big[300];
  memset(big, 0, sizeof big);
  memcpy(big, "attributes.`", 12);
  for (int i = 0; i < 60; i++) memcpy(big + 12 + 2 * i, "\xc3\xa9", 2);
  memcpy(big + 132, "` DESC", 6);
  const char *c2[] = {big};
  const char *m3 = order_error(c2, 1, TRACK_FLT_RUNS);
  cr_expect(utf8_ok(m3), "%s", m3);
  cr_expect_leq(strlen(m3), 255);
}

Test(filter_parse, limits_length_depth_terms_values) {
  /* length */
  size_t n = TRACK_FLT_MAX_TEXT + 1;
  char *big = malloc(n + 1);
  memset(big, ' ', n);
  big[n] = 0;
  cr_expect_str_eq(parse_error(big, TRACK_FLT_RUNS), "filter: longer than 65536 bytes");
  free(big);

  /* depth: 64 parentheses are fine, 65 are not */
  struct buf b;
  buf_init(&b);
  for (int i = 0; i < TRACK_FLT_MAX_DEPTH; i++) buf_putc(&b, '(');
  buf_puts(&b, "metrics.a > 1");
  for (int i = 0; i < TRACK_FLT_MAX_DEPTH; i++) buf_putc(&b, ')');
  struct track_flt *f;
  struct err e;
  cr_expect_eq(track_flt_parse(b.data, TRACK_FLT_RUNS, &f, &e), 0, "%s", e.msg);
  track_flt_free(f);
  buf_reset(&b);
  for (int i = 0; i <= TRACK_FLT_MAX_DEPTH; i++) buf_putc(&b, '(');
  buf_puts(&b, "metrics.a > 1");
  cr_expect_str_eq(parse_error(b.data, TRACK_FLT_RUNS),
                   "filter: at position 65: nesting deeper than 64 levels");
  buf_reset(&b);
  for (int i = 0; i <= TRACK_FLT_MAX_DEPTH; i++) buf_puts(&b, "NOT ");
  buf_puts(&b, "metrics.a > 1");
  cr_expect_str_eq(parse_error(b.data, TRACK_FLT_RUNS),
                   "filter: at position 257: nesting deeper than 64 levels");

  /* comparisons */
  buf_reset(&b);
  for (int i = 0; i < TRACK_FLT_MAX_TERMS; i++) buf_printf(&b, "%sm=1", i ? " OR " : "");
  cr_expect_str_eq(parse_error(b.data, TRACK_FLT_RUNS),
                   "filter: at position 1: invalid attribute key 'm' specified. Valid keys are "
                   "'run_id', 'run_name', 'user_id', 'status', 'artifact_uri', 'start_time', "
                   "'created', 'end_time'");
  buf_reset(&b);
  for (int i = 0; i < TRACK_FLT_MAX_TERMS; i++) buf_printf(&b, "%sstart_time=%d", i ? " OR " : "", i);
  cr_expect_eq(track_flt_parse(b.data, TRACK_FLT_RUNS, &f, &e), 0, "%s", e.msg);
  track_flt_free(f);
  size_t at = b.len + 5;
  buf_puts(&b, " OR start_time=1");
  char want[128];
  snprintf(want, sizeof want, "filter: at position %zu: more than 1024 comparisons", at);
  cr_expect_str_eq(parse_error(b.data, TRACK_FLT_RUNS), want);

  /* values in one IN list */
  buf_reset(&b);
  buf_puts(&b, "run_id IN (");
  for (int i = 0; i < TRACK_FLT_MAX_FILTER_BINDS; i++) buf_printf(&b, "%s'%d'", i ? "," : "", i);
  buf_puts(&b, ")");
  cr_expect_eq(track_flt_parse(b.data, TRACK_FLT_RUNS, &f, &e), 0, "%s", e.msg);
  track_flt_free(f);
  b.len--;
  at = b.len + 2;
  buf_puts(&b, ",'x')");
  snprintf(want, sizeof want, "filter: at position %zu: more than 4096 values in one filter", at);
  cr_expect_str_eq(parse_error(b.data, TRACK_FLT_RUNS), want);
  buf_fini(&b);

  /* key length */
  buf_init(&b);
  buf_puts(&b, "params.");
  for (int i = 0; i <= TRACK_FLT_MAX_KEY; i++) buf_putc(&b, 'k');
  buf_puts(&b, " = 'v'");
  cr_expect_str_eq(parse_error(b.data, TRACK_FLT_RUNS), "filter: at position 1: key longer than 1024 bytes");
  buf_fini(&b);
}

Test(filter_parse, wide_filters_compile_to_shallow_sql) {
  /* 1024 ORed comparisons must prepare in SQLite (expression depth 1000) */
  struct buf t;
  buf_init(&t);
  for (int i = 0; i < TRACK_FLT_MAX_TERMS; i++) buf_printf(&t, "%sstart_time=%d", i ? " or " : "", i);
  struct track_flt_binds b;
  track_flt_binds_init(&b);
  char *sql = compile(t.data, TRACK_FLT_RUNS, &b);
  cr_expect_eq(b.n, TRACK_FLT_MAX_TERMS);
  sqlite3 *db;
  cr_assert_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
  cr_assert_eq(sqlite3_exec(db, "CREATE TABLE runs(run_uuid, start_time, name)", 0, 0, 0), 0);
  struct buf q;
  buf_init(&q);
  buf_printf(&q, "SELECT r.run_uuid FROM runs r WHERE %s", sql);
  sqlite3_stmt *st;
  cr_expect_eq(sqlite3_prepare_v2(db, q.data, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  sqlite3_close(db);
  buf_fini(&q);
  buf_fini(&t);
  free(sql);
  track_flt_binds_fini(&b);
}

Test(filter_parse, entity_kinds_and_errors_without_err) {
  struct track_flt *f;
  cr_expect_eq(track_flt_parse("name = 'x'", TRACK_FLT_EXPERIMENTS, &f, NULL), 0);
  cr_expect_eq(track_flt_entity_of(f), TRACK_FLT_EXPERIMENTS);
  cr_expect_not(track_flt_is_empty(f));
  track_flt_free(f);
  cr_expect_eq(track_flt_parse("bad", TRACK_FLT_EXPERIMENTS, &f, NULL), -ERR_INVALID_PARAMETER_VALUE);
  cr_expect_null(f);
  track_flt_free(NULL);
}

/* ---- order_by parsing ----------------------------------------------------------- */

static char *order_sql(const char *const *clauses, int n, enum track_flt_entity ent,
                       struct track_flt_binds *b) {
  struct buf sql;
  struct err e;
  buf_init(&sql);
  cr_assert_eq(track_flt_order_by(clauses, n, ent, &sql, b, &e), 0, "%s", e.msg);
  return buf_steal(&sql);
}

Test(filter_parse, order_by_sql_and_tie_breakers) {
  struct track_flt_binds b;
  track_flt_binds_init(&b);
  char *s = order_sql(NULL, 0, TRACK_FLT_RUNS, &b);
  cr_expect_str_eq(s, "r.start_time DESC, r.run_uuid ASC");
  free(s);
  const char *c1[] = {"attributes.start_time ASC"};
  s = order_sql(c1, 1, TRACK_FLT_RUNS, &b);
  cr_expect_str_eq(s, "r.start_time ASC NULLS LAST, r.run_uuid ASC");
  free(s);
  const char *c2[] = {"  created desc  ", "run_name"};
  s = order_sql(c2, 2, TRACK_FLT_RUNS, &b);
  cr_expect_str_eq(s, "r.start_time DESC NULLS LAST, r.name ASC NULLS LAST, r.run_uuid ASC");
  free(s);
  const char *c3[] = {"params.`my key` DESC"};
  s = order_sql(c3, 1, TRACK_FLT_RUNS, &b);
  cr_expect_str_eq(s, "(SELECT c.value FROM params c WHERE c.run_uuid = r.run_uuid AND c.key = "
                      "?) DESC NULLS LAST, r.start_time DESC, r.run_uuid ASC");
  cr_expect_str_eq(b.v[b.n - 1].v.text.s, "my key");
  free(s);
  s = order_sql(NULL, 0, TRACK_FLT_EXPERIMENTS, &b);
  cr_expect_str_eq(s, "e.creation_time DESC, e.experiment_id ASC");
  free(s);
  const char *c4[] = {"name"};
  s = order_sql(c4, 1, TRACK_FLT_EXPERIMENTS, &b);
  cr_expect_str_eq(s, "e.name ASC, e.experiment_id DESC");
  free(s);
  const char *c5[] = {"experiment_id asc", "attribute.last_update_time DESC"};
  s = order_sql(c5, 2, TRACK_FLT_EXPERIMENTS, &b);
  cr_expect_str_eq(s, "e.experiment_id ASC, e.last_update_time DESC");
  free(s);
  s = order_sql(NULL, 0, TRACK_FLT_REGISTERED_MODELS, &b);
  cr_expect_str_eq(s, "m.name ASC");
  free(s);
  const char *c6[] = {"timestamp DESC"};
  s = order_sql(c6, 1, TRACK_FLT_REGISTERED_MODELS, &b);
  cr_expect_str_eq(s, "m.last_updated_time DESC, m.name ASC");
  free(s);
  s = order_sql(NULL, 0, TRACK_FLT_MODEL_VERSIONS, &b);
  cr_expect_str_eq(s, "v.name ASC, v.version DESC");
  free(s);
  const char *c7[] = {"creation_timestamp DESC"};
  s = order_sql(c7, 1, TRACK_FLT_MODEL_VERSIONS, &b);
  cr_expect_str_eq(s, "v.creation_time DESC, v.name ASC, v.version DESC");
  free(s);
  track_flt_binds_fini(&b);
}

Test(filter_parse, order_by_errors) {
  const char *a[] = {"metrics.acc UP"};
  cr_expect_str_eq(order_error(a, 1, TRACK_FLT_RUNS),
                   "order_by: invalid order_by clause 1 'metrics.acc UP': at position 13: invalid "
                   "ordering key: expected ASC or DESC, found 'UP'");
  const char *b[] = {"metrics.acc", "foo DESC"};
  cr_expect_str_eq(order_error(b, 2, TRACK_FLT_RUNS),
                   "order_by: invalid order_by clause 2 'foo DESC': at position 1: invalid "
                   "attribute key 'foo' specified. Valid keys are 'run_id', 'run_name', 'user_id', "
                   "'status', 'artifact_uri', 'start_time', 'created', 'end_time'");
  const char *c[] = {""};
  cr_expect_str_eq(order_error(c, 1, TRACK_FLT_RUNS),
                   "order_by: invalid order_by clause 1 '': at position 1: expected an identifier "
                   "(metrics.<key>, params.<key>, tags.<key> or an attribute), found end of input");
  const char *d[] = {"metrics.acc DESC", "metrics.`acc` ASC"};
  cr_expect_str_eq(order_error(d, 2, TRACK_FLT_RUNS),
                   "order_by: `order_by` contains duplicate fields: metric 'acc' is given twice");
  const char *d2[] = {"start_time", "created DESC"};
  cr_expect_str_eq(order_error(d2, 2, TRACK_FLT_RUNS),
                   "order_by: `order_by` contains duplicate fields: attribute 'created' is given "
                   "twice");
  const char *d3[] = {"timestamp", "last_updated_timestamp"};
  order_error(d3, 2, TRACK_FLT_REGISTERED_MODELS);
  const char *e1[] = {"tags.t"};
  cr_expect_str_eq(order_error(e1, 1, TRACK_FLT_EXPERIMENTS),
                   "order_by: invalid order_by clause 1 'tags.t': at position 1: invalid order_by "
                   "entity: tag");
  const char *e2[] = {"version_number"};
  cr_expect_str_eq(order_error(e2, 1, TRACK_FLT_REGISTERED_MODELS),
                   "order_by: invalid order_by clause 1 'version_number': at position 1: "
                   "invalid attribute key 'version_number' specified. Valid keys are 'name', "
                   "'timestamp', 'creation_timestamp', 'last_updated_timestamp'");
  const char *e3[] = {"metrics.acc DESC ASC"};
  order_error(e3, 1, TRACK_FLT_RUNS);
  const char *e4[] = {"metrics.acc DESC, params.x"};
  cr_expect_str_eq(order_error(e4, 1, TRACK_FLT_RUNS),
                   "order_by: invalid order_by clause 1 'metrics.acc DESC, params.x': at position "
                   "17: invalid ordering key: expected ASC or DESC, found ','");
  /* found by fuzz_filter: the clause was quoted into the message before its
   * UTF-8 was checked */
  const char *u[] = {"params.lr AS\x8c\x93" "art_time"};
  cr_expect_str_eq(order_error(u, 1, TRACK_FLT_RUNS),
                   "order_by: invalid order_by clause 1: at position 13: invalid UTF-8");
  const char *many[TRACK_FLT_MAX_ORDER_BY + 1];
  for (int i = 0; i <= TRACK_FLT_MAX_ORDER_BY; i++) many[i] = "metrics.a";
  cr_expect_str_eq(order_error(many, TRACK_FLT_MAX_ORDER_BY + 1, TRACK_FLT_RUNS),
                   "order_by: more than 16 clauses");
  /* duplicates are MLflow's rule for runs and registered models only */
  const char *dup[] = {"name", "name DESC"};
  struct track_flt_binds bb;
  track_flt_binds_init(&bb);
  free(order_sql(dup, 2, TRACK_FLT_EXPERIMENTS, &bb));
  track_flt_binds_fini(&bb);
}

Test(filter_parse, bind_list_bound) {
  struct track_flt_binds b;
  struct err e;
  track_flt_binds_init(&b);
  for (int i = 0; i < TRACK_FLT_MAX_BINDS; i++) cr_assert_eq(track_flt_bind_i64(&b, i, &e), 0);
  cr_expect_eq(track_flt_bind_text(&b, "x", 1, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_expect_eq(track_flt_bind_f64(&b, 1, NULL), -ERR_INVALID_PARAMETER_VALUE);
  cr_expect_eq(b.n, TRACK_FLT_MAX_BINDS);
  track_flt_binds_fini(&b);
  cr_expect_eq(b.n, 0);
}

/* ---- executing the SQL ------------------------------------------------------------ */

static sqlite3 *db;

static const char *schema =
    "CREATE TABLE runs (run_uuid TEXT PRIMARY KEY, experiment_id INTEGER NOT NULL, project_id "
    "TEXT NOT NULL, name TEXT, user_id TEXT, status TEXT NOT NULL, start_time BIGINT, end_time "
    "BIGINT, lifecycle_stage TEXT NOT NULL DEFAULT 'active', artifact_uri TEXT, deleted_time "
    "BIGINT);"
    "CREATE TABLE latest_metrics (run_uuid TEXT NOT NULL, key TEXT NOT NULL, value REAL NOT NULL, "
    "timestamp BIGINT NOT NULL, step BIGINT NOT NULL DEFAULT 0, is_nan INTEGER NOT NULL DEFAULT "
    "0, PRIMARY KEY (run_uuid, key));"
    "CREATE TABLE params (run_uuid TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY "
    "KEY (run_uuid, key));"
    "CREATE TABLE tags (run_uuid TEXT NOT NULL, key TEXT NOT NULL, value TEXT, PRIMARY KEY "
    "(run_uuid, key));"
    "CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, project_id TEXT NOT NULL, name "
    "TEXT NOT NULL, artifact_location TEXT, lifecycle_stage TEXT NOT NULL DEFAULT 'active', "
    "creation_time BIGINT, last_update_time BIGINT);"
    "CREATE TABLE experiment_tags (experiment_id INTEGER NOT NULL, key TEXT NOT NULL, value TEXT, "
    "PRIMARY KEY (experiment_id, key));"
    "CREATE TABLE registered_models (id INTEGER PRIMARY KEY, name TEXT, creation_time BIGINT, "
    "last_updated_time BIGINT);"
    "CREATE TABLE registered_model_tags (model_id INTEGER, key TEXT, value TEXT, PRIMARY KEY "
    "(model_id, key));"
    "CREATE TABLE model_versions (model_id INTEGER, name TEXT, version INTEGER, source TEXT, "
    "run_id TEXT, creation_time BIGINT, last_updated_time BIGINT, PRIMARY KEY (model_id, "
    "version));"
    "CREATE TABLE model_version_tags (model_id INTEGER, version INTEGER, key TEXT, value TEXT, "
    "PRIMARY KEY (model_id, version, key));";

/* r1..r6: a handful of runs covering numbers, NaN, missing keys, case,
 * wildcards in values, NULL attributes and ties. */
static const char *data =
    "INSERT INTO runs (run_uuid, experiment_id, project_id, name, user_id, status, start_time, "
    "end_time, artifact_uri) VALUES"
    " ('r1', 1, 'p', 'alpha', 'ann', 'FINISHED', 1000, 2000, 's3://b/r1'),"
    " ('r2', 1, 'p', 'Beta', 'bob', 'RUNNING', 2000, NULL, 's3://b/r2'),"
    " ('r3', 1, 'p', 'gamma', 'ann', 'FAILED', 3000, 3500, 'file:///x/r3'),"
    " ('r4', 1, 'p', NULL, 'bob', 'FINISHED', 1500, 1600, NULL),"
    " ('r5', 1, 'p', 'delta', 'Ann', 'FINISHED', 3000, 4000, 's3://b/r5'),"
    " ('r6', 1, 'p', 'ALPHA*', 'cy', 'KILLED', NULL, NULL, 's3://b/r6');"
    "INSERT INTO latest_metrics (run_uuid, key, value, timestamp, step, is_nan) VALUES"
    " ('r1', 'acc', 0.9, 1, 0, 0), ('r1', 'loss', 0.1, 1, 0, 0),"
    " ('r2', 'acc', 0.5, 1, 0, 0),"
    " ('r3', 'acc', 0, 1, 0, 1), ('r3', 'loss', 0.3, 1, 0, 0),"
    " ('r5', 'acc', 0.7, 1, 0, 0), ('r5', 'f1 score', -2.5, 1, 0, 0),"
    " ('r6', 'acc', 1e308, 1, 0, 0);"
    "INSERT INTO params (run_uuid, key, value) VALUES"
    " ('r1', 'lr', '0.01'), ('r1', 'opt', 'adam'),"
    " ('r2', 'lr', '0.1'), ('r2', 'opt', 'Adam'),"
    " ('r3', 'lr', '0.01'),"
    " ('r4', 'opt', 'sgd'),"
    " ('r5', 'lr', '1e-3'), ('r5', 'opt', 'ADAMW'),"
    " ('r6', 'lr', 'a_b'), ('r6', 'opt', 'a%b');"
    "INSERT INTO tags (run_uuid, key, value) VALUES"
    " ('r1', 'my key', 'Hello World'), ('r1', 'mlflow.source.name', 'train.py'),"
    " ('r2', 'my key', 'hello_world'),"
    " ('r3', 'pct', '100%'), ('r3', 'my key', 'HELLO*WORLD'),"
    " ('r4', 'pct', '100'), ('r4', 'path', 'C:\\Users'),"
    " ('r5', 'note', 'it''s [x]');"
    "INSERT INTO experiments (experiment_id, project_id, name, creation_time, last_update_time) "
    "VALUES (1, 'p', 'Default', 100, 500), (2, 'p', 'churn-model', 200, 200),"
    " (3, 'p', 'Churn_v2', 200, 900), (4, 'p', 'vision', NULL, NULL);"
    "INSERT INTO experiment_tags VALUES (2, 'team', 'growth'), (3, 'team', 'Growth'),"
    " (4, 'team', 'cv');"
    "INSERT INTO registered_models VALUES (1, 'churn', 1, 50), (2, 'vision', 2, 40),"
    " (3, 'Churn2', 3, 40);"
    "INSERT INTO registered_model_tags VALUES (1, 'owner', 'ann'), (2, 'owner', 'bob');"
    "INSERT INTO model_versions VALUES (1, 'churn', 1, 's3://m/1', 'r1', 10, 10),"
    " (1, 'churn', 2, 's3://m/2', 'r2', 20, 20), (2, 'vision', 1, 'file:/v/1', 'r3', 30, 30),"
    " (2, 'vision', 2, 'file:/v/2', NULL, 40, 40);"
    "INSERT INTO model_version_tags VALUES (1, 2, 'stage', 'prod'), (2, 1, 'stage', 'dev');";

static void db_setup(void) {
  cr_assert_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
  char *msg = NULL;
  cr_assert_eq(sqlite3_exec(db, schema, NULL, NULL, &msg), SQLITE_OK, "%s", msg);
  cr_assert_eq(sqlite3_exec(db, data, NULL, NULL, &msg), SQLITE_OK, "%s", msg);
}

static void db_teardown(void) { sqlite3_close(db); }

TestSuite(filter_sql, .init = db_setup, .fini = db_teardown);

static void bind_all(sqlite3_stmt *st, const struct track_flt_binds *b) {
  for (int i = 0; i < b->n; i++) {
    const struct track_flt_bind *v = &b->v[i];
    int rc = v->type == TRACK_FLT_BIND_TEXT
                 ? sqlite3_bind_text(st, i + 1, v->v.text.s, (int)v->v.text.len, SQLITE_STATIC)
             : v->type == TRACK_FLT_BIND_I64 ? sqlite3_bind_int64(st, i + 1, v->v.i64)
                                       : sqlite3_bind_double(st, i + 1, v->v.f64);
    cr_assert_eq(rc, SQLITE_OK);
  }
}

static const char *const select_of[] = {
    [TRACK_FLT_RUNS] = "SELECT r.run_uuid FROM runs r",
    [TRACK_FLT_EXPERIMENTS] = "SELECT e.name FROM experiments e",
    [TRACK_FLT_REGISTERED_MODELS] = "SELECT m.name FROM registered_models m",
    [TRACK_FLT_MODEL_VERSIONS] = "SELECT v.name || '/' || v.version FROM model_versions v",
};
static const char *const default_order[] = {
    [TRACK_FLT_RUNS] = "r.run_uuid",
    [TRACK_FLT_EXPERIMENTS] = "e.name",
    [TRACK_FLT_REGISTERED_MODELS] = "m.name",
    [TRACK_FLT_MODEL_VERSIONS] = "v.name, v.version",
};

/* Runs the filter (and order_by, or a fixed order when clauses is NULL)
 * and returns the first column of every row, comma-separated (static). */
static const char *query(enum track_flt_entity ent, const char *filter, const char *const *clauses,
                         int nclauses) {
  static char out[1024];
  struct track_flt *f;
  struct err e;
  cr_assert_eq(track_flt_parse(filter, ent, &f, &e), 0, "[%s]: %s", filter, e.msg);
  struct buf sql;
  struct track_flt_binds b;
  buf_init(&sql);
  track_flt_binds_init(&b);
  buf_printf(&sql, "%s WHERE ", select_of[ent]);
  cr_assert_eq(track_flt_to_sql(f, &sql, &b, &e), 0, "%s", e.msg);
  buf_puts(&sql, " ORDER BY ");
  if (clauses)
    cr_assert_eq(track_flt_order_by(clauses, nclauses, ent, &sql, &b, &e), 0, "%s", e.msg);
  else
    buf_puts(&sql, default_order[ent]);
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_prepare_v2(db, sql.data, -1, &st, NULL), SQLITE_OK, "%s\n%s",
               sqlite3_errmsg(db), sql.data);
  bind_all(st, &b);
  size_t n = 0;
  out[0] = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *v = (const char *)sqlite3_column_text(st, 0);
    n += (size_t)snprintf(out + n, sizeof out - n, "%s%s", n ? "," : "", v ? v : "NULL");
  }
  cr_assert_eq(rc, SQLITE_DONE, "%s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  buf_fini(&sql);
  track_flt_binds_fini(&b);
  track_flt_free(f);
  return out;
}

#define RUNS_ARE(filter, want) cr_expect_str_eq(query(TRACK_FLT_RUNS, filter, NULL, 0), want, "%s", filter)

Test(filter_sql, metrics_compare_numerically_with_latest_value) {
  RUNS_ARE("", "r1,r2,r3,r4,r5,r6");
  RUNS_ARE("metrics.acc > 0.5", "r1,r5,r6");
  RUNS_ARE("metrics.acc >= 0.5", "r1,r2,r5,r6");
  RUNS_ARE("metrics.acc < 0.7", "r2"); /* NaN (r3) is not < 0.7; r4 has no acc */
  RUNS_ARE("metrics.acc <= 0.7", "r2,r5");
  RUNS_ARE("metrics.acc = 0.9", "r1");
  RUNS_ARE("metrics.acc = 0", ""); /* r3's NaN is stored as 0 but is not 0 */
  RUNS_ARE("metrics.acc != 0.9", "r2,r3,r5,r6"); /* only runs that have acc */
  RUNS_ARE("metrics.acc > 1e300", "r6");
  RUNS_ARE("metrics.`f1 score` < -2", "r5");
  RUNS_ARE("metrics.\"f1 score\" = -2.5", "r5");
  RUNS_ARE("metrics.loss < 1", "r1,r3");
  RUNS_ARE("metrics.missing > -1e308", "");
  RUNS_ARE("metrics.acc = 9", "");
  /* 10 is not < 9 as it would be as text */
  RUNS_ARE("metrics.acc > 0.10", "r1,r2,r5,r6");
}

Test(filter_sql, params_and_tags_compare_as_strings) {
  RUNS_ARE("params.lr = '0.01'", "r1,r3");
  RUNS_ARE("params.lr = \"0.01\"", "r1,r3");
  RUNS_ARE("params.lr = '0.010'", ""); /* strings, not numbers */
  RUNS_ARE("params.lr != '0.01'", "r2,r5,r6"); /* r4 has no lr: MLflow leaves it out */
  RUNS_ARE("params.opt = 'adam'", "r1"); /* case-sensitive */
  RUNS_ARE("tags.`my key` = 'Hello World'", "r1");
  RUNS_ARE("tags.mlflow.source.name = 'train.py'", "r1");
  RUNS_ARE("tags.\"mlflow.source.name\" = 'train.py'", "r1");
  RUNS_ARE("tags.note = 'it''s [x]'", "r5");
  RUNS_ARE("tags.note = \"it's [x]\"", "r5");
  RUNS_ARE("tags.path = 'C:\\Users'", "r4");
  RUNS_ARE("tags.pct = '100%'", "r3"); /* = never treats % as a wildcard */
}

Test(filter_sql, like_is_case_sensitive_ilike_is_not) {
  RUNS_ARE("params.opt LIKE 'adam%'", "r1");
  RUNS_ARE("params.opt LIKE 'Adam'", "r2");
  RUNS_ARE("params.opt LIKE 'ADAM_'", "r5");
  RUNS_ARE("params.opt ILIKE 'adam%'", "r1,r2,r5");
  RUNS_ARE("params.opt ILIKE 'ADAM'", "r1,r2");
  RUNS_ARE("params.opt ILIKE '_dam'", "r1,r2");
  RUNS_ARE("params.opt LIKE '%'", "r1,r2,r4,r5,r6");
  RUNS_ARE("params.opt LIKE ''", "");
  /* escaping: \% and \_ are literal */
  RUNS_ARE("params.opt LIKE 'a\\%b'", "r6");
  RUNS_ARE("params.opt LIKE 'a%b'", "r6");
  RUNS_ARE("params.lr LIKE 'a\\_b'", "r6");
  RUNS_ARE("params.lr LIKE '0\\_01'", "");
  RUNS_ARE("params.lr LIKE '0_01'", "r1,r3");
  RUNS_ARE("params.lr ILIKE '0\\_01'", "");
  RUNS_ARE("params.lr ILIKE 'A\\_B'", "r6");
  RUNS_ARE("tags.pct LIKE '100\\%'", "r3");
  RUNS_ARE("tags.pct LIKE '100%'", "r3,r4");
  RUNS_ARE("tags.pct ILIKE '100\\%'", "r3");
  /* GLOB metacharacters in a LIKE pattern are plain characters */
  RUNS_ARE("tags.`my key` LIKE 'HELLO*WORLD'", "r3");
  RUNS_ARE("tags.`my key` LIKE 'HELLO?WORLD'", "");
  RUNS_ARE("tags.`my key` LIKE 'hello_world'", "r2");
  RUNS_ARE("tags.`my key` ILIKE 'hello_world'", "r1,r2,r3");
  RUNS_ARE("tags.`my key` ILIKE 'hello\\_world'", "r2");
  RUNS_ARE("tags.note LIKE '%[x]'", "r5");
  RUNS_ARE("tags.note LIKE '%[x'", "");
  RUNS_ARE("tags.path LIKE 'C:\\Users'", "r4");      /* \U: a literal backslash */
  RUNS_ARE("tags.path LIKE 'C:\\\\Users'", "r4");  /* \\ in the literal is one \ */
  RUNS_ARE("tags.path ILIKE 'c:\\users'", "r4");
  RUNS_ARE("tags.path LIKE 'C:\\\\\\\\%'", "r4"); /* \\ escaped for LIKE */
  RUNS_ARE("tags.path LIKE 'C:\\\\%'", "");          /* \% is a literal % */
  /* NOT LIKE keeps MLflow's != rule: only runs with the key */
  RUNS_ARE("params.opt NOT LIKE 'a%'", "r2,r4,r5");
  RUNS_ARE("params.opt NOT ILIKE 'a%'", "r4");
  /* attributes */
  RUNS_ARE("run_name LIKE 'ALPHA%'", "r6");
  RUNS_ARE("run_name ILIKE 'alpha%'", "r1,r6");
  RUNS_ARE("run_name LIKE 'ALPHA*'", "r6");
  RUNS_ARE("artifact_uri LIKE 's3://%'", "r1,r2,r5,r6");
  RUNS_ARE("user_id ILIKE 'ANN'", "r1,r3,r5");
}

Test(filter_sql, attributes_strings_numbers_and_nulls) {
  RUNS_ARE("status = 'FINISHED'", "r1,r4,r5");
  RUNS_ARE("attributes.status != 'FINISHED'", "r2,r3,r6");
  RUNS_ARE("run_id = 'r2'", "r2");
  RUNS_ARE("attributes.run_name = 'alpha'", "r1");
  RUNS_ARE("`Run name` = 'Beta'", "r2");
  RUNS_ARE("run_name != 'alpha'", "r2,r3,r5,r6"); /* r4's NULL name is not != */
  RUNS_ARE("start_time > 1500", "r2,r3,r5");
  RUNS_ARE("created >= 1500", "r2,r3,r4,r5");
  RUNS_ARE("start_time = 3000", "r3,r5");
  RUNS_ARE("start_time != 3000", "r1,r2,r4");
  RUNS_ARE("end_time < 3000", "r1,r4");
  RUNS_ARE("end_time IS NULL", "r2,r6");
  RUNS_ARE("end_time IS NOT NULL", "r1,r3,r4,r5");
  RUNS_ARE("start_time < 1500.5", "r1,r4");
  RUNS_ARE("user_id = 'ann'", "r1,r3");
}

Test(filter_sql, in_lists_on_run_id) {
  RUNS_ARE("run_id IN ('r1', 'r3', 'nope')", "r1,r3");
  RUNS_ARE("attributes.run_id IN (\"r2\")", "r2");
  RUNS_ARE("run_id NOT IN ('r1', 'r3')", "r2,r4,r5,r6");
  RUNS_ARE("run_id IN ('r1','r2') AND metrics.acc > 0.6", "r1");
}

Test(filter_sql, and_or_not_parentheses) {
  RUNS_ARE("metrics.acc > 0.5 AND params.lr = '0.01'", "r1");
  RUNS_ARE("metrics.acc > 0.5 and params.lr = '0.01'", "r1");
  RUNS_ARE("params.lr = '0.1' OR params.opt = 'sgd'", "r2,r4");
  /* AND binds tighter than OR */
  RUNS_ARE("status = 'RUNNING' OR status = 'FINISHED' AND metrics.acc > 0.8", "r1,r2");
  RUNS_ARE("(status = 'RUNNING' OR status = 'FINISHED') AND metrics.acc > 0.8", "r1");
  /* NOT is a complement: it includes runs without the key */
  RUNS_ARE("NOT params.lr = '0.01'", "r2,r4,r5,r6");
  RUNS_ARE("NOT metrics.acc > 0.5", "r2,r3,r4");
  /* ... and of attribute comparisons against NULL columns too */
  RUNS_ARE("NOT end_time < 3000", "r2,r3,r5,r6");
  RUNS_ARE("NOT run_name = 'alpha'", "r2,r3,r4,r5,r6");
  RUNS_ARE("NOT NOT metrics.acc > 0.5", "r1,r5,r6");
  RUNS_ARE("NOT (metrics.acc > 0.5 OR params.opt = 'sgd')", "r2,r3");
  RUNS_ARE("((((metrics.acc > 0.5))))", "r1,r5,r6");
  RUNS_ARE("metrics.acc > 0.5 AND (params.lr = '0.01' OR params.lr = '1e-3') AND NOT "
           "tags.`my key` = 'x'",
           "r1,r5");
  RUNS_ARE("params.lr IS NULL", "r4");
  RUNS_ARE("params.lr IS NOT NULL", "r1,r2,r3,r5,r6");
  RUNS_ARE("metrics.acc IS NULL OR metrics.loss IS NOT NULL", "r1,r3,r4");
  RUNS_ARE("tags.`my key` IS NOT NULL AND NOT tags.`my key` ILIKE 'hello%'", "");
  RUNS_ARE("tags.`my key` IS NOT NULL AND NOT tags.`my key` LIKE 'hello%'", "r1,r3");
}

Test(filter_sql, between_is_inclusive) {
  RUNS_ARE("metrics.acc BETWEEN 0.5 AND 0.9", "r1,r2,r5");
  RUNS_ARE("metrics.acc BETWEEN 0.6 AND 0.8 OR params.opt = 'sgd'", "r4,r5");
  RUNS_ARE("metrics.acc NOT BETWEEN 0.6 AND 0.8", "r1,r2,r3,r6"); /* NaN is not between */
  RUNS_ARE("start_time BETWEEN 1000 AND 2000", "r1,r2,r4");
  RUNS_ARE("start_time BETWEEN 1000 AND 2000 AND metrics.acc > 0.6", "r1");
  RUNS_ARE("metrics.acc BETWEEN 0.9 AND 0.5", "");
}

Test(filter_sql, injection_attempts_stay_values) {
  RUNS_ARE("params.lr = ''' OR 1=1 --'", "");
  RUNS_ARE("tags.`x') OR 1=1 --` = 'a'", "");
  RUNS_ARE("run_id IN ('r1'')--', 'r2')", "r2");
}

#define ORDER_IS(want, ...)                                                                        \
  do {                                                                                             \
    const char *cl_[] = {__VA_ARGS__};                                                             \
    cr_expect_str_eq(query(TRACK_FLT_RUNS, "", cl_, (int)(sizeof cl_ / sizeof cl_[0])), want, "%s",     \
                     cl_[0]);                                                                      \
  } while (0)

Test(filter_sql, order_by_metrics_nan_then_missing_last_both_ways) {
  /* acc: r1 .9, r2 .5, r3 NaN, r5 .7, r6 1e308; r4 none */
  ORDER_IS("r2,r5,r1,r6,r3,r4", "metrics.acc");
  ORDER_IS("r2,r5,r1,r6,r3,r4", "metrics.acc ASC");
  ORDER_IS("r6,r1,r5,r2,r3,r4", "metrics.acc DESC");
  ORDER_IS("r6,r1,r5,r2,r3,r4", "metrics.`acc` desc");
  /* runs without loss keep the tie-breakers: start_time DESC, run_id ASC */
  ORDER_IS("r1,r3,r5,r2,r4,r6", "metrics.loss ASC");
  ORDER_IS("r3,r1,r5,r2,r4,r6", "metrics.loss DESC");
}

Test(filter_sql, order_by_params_tags_attributes_and_ties) {
  /* no order_by: start_time DESC (NULL last), then run_id */
  cr_expect_str_eq(query(TRACK_FLT_RUNS, "", NULL, 0), "r1,r2,r3,r4,r5,r6");
  const char *none[1];
  cr_expect_str_eq(query(TRACK_FLT_RUNS, "", none, 0), "r3,r5,r2,r4,r1,r6");
  /* lr: r1 0.01, r2 0.1, r3 0.01, r5 1e-3, r6 a_b; r4 none: as strings */
  ORDER_IS("r3,r1,r2,r5,r6,r4", "params.lr");
  ORDER_IS("r6,r5,r2,r3,r1,r4", "params.lr DESC");
  ORDER_IS("r2,r1,r3,r5,r4,r6", "tags.`my key` DESC");
  ORDER_IS("r1,r4,r2,r3,r5,r6", "attributes.start_time ASC");
  ORDER_IS("r3,r5,r2,r4,r1,r6", "start_time DESC");
  ORDER_IS("r4,r1,r3,r5,r2,r6", "end_time");
  ORDER_IS("r5,r3,r1,r4,r2,r6", "end_time DESC");
  ORDER_IS("r6,r2,r1,r5,r3,r4", "run_name");
  ORDER_IS("r3,r5,r1,r2,r6,r4", "run_name DESC");
  ORDER_IS("r1,r2,r3,r4,r5,r6", "run_id");
  ORDER_IS("r6,r5,r4,r3,r2,r1", "run_id DESC");
  ORDER_IS("r5,r1,r3,r2,r4,r6", "user_id", "metrics.acc DESC");
  ORDER_IS("r5,r3,r1,r2,r4,r6", "user_id", "start_time DESC");
  cr_expect_str_eq(query(TRACK_FLT_RUNS, "metrics.acc > 0.5", (const char *[]){"metrics.acc DESC"}, 1),
                   "r6,r1,r5");
}

Test(filter_sql, experiments) {
  cr_expect_str_eq(query(TRACK_FLT_EXPERIMENTS, "name = 'Default'", NULL, 0), "Default");
  cr_expect_str_eq(query(TRACK_FLT_EXPERIMENTS, "name LIKE 'churn%'", NULL, 0), "churn-model");
  cr_expect_str_eq(query(TRACK_FLT_EXPERIMENTS, "attribute.name ILIKE 'churn%'", NULL, 0),
                   "Churn_v2,churn-model");
  cr_expect_str_eq(query(TRACK_FLT_EXPERIMENTS, "creation_time >= 200", NULL, 0),
                   "Churn_v2,churn-model");
  cr_expect_str_eq(query(TRACK_FLT_EXPERIMENTS, "last_update_time > 400 AND name != 'Default'", NULL, 0),
                   "Churn_v2");
  cr_expect_str_eq(query(TRACK_FLT_EXPERIMENTS, "tags.team = 'growth'", NULL, 0), "churn-model");
  cr_expect_str_eq(query(TRACK_FLT_EXPERIMENTS, "tags.team ILIKE 'growth' OR tags.team = 'cv'", NULL, 0),
                   "Churn_v2,churn-model,vision");
  cr_expect_str_eq(query(TRACK_FLT_EXPERIMENTS, "tags.team != 'cv'", NULL, 0), "Churn_v2,churn-model");
  cr_expect_str_eq(query(TRACK_FLT_EXPERIMENTS, "NOT tags.team = 'cv'", NULL, 0),
                   "Churn_v2,Default,churn-model");
  const char *none[1];
  cr_expect_str_eq(query(TRACK_FLT_EXPERIMENTS, "", none, 0), "churn-model,Churn_v2,Default,vision");
  cr_expect_str_eq(query(TRACK_FLT_EXPERIMENTS, "", (const char *[]){"creation_time ASC"}, 1),
                   "vision,Default,Churn_v2,churn-model");
  cr_expect_str_eq(query(TRACK_FLT_EXPERIMENTS, "", (const char *[]){"name DESC"}, 1),
                   "vision,churn-model,Default,Churn_v2");
}

Test(filter_sql, registered_models_and_versions) {
  cr_expect_str_eq(query(TRACK_FLT_REGISTERED_MODELS, "name = 'churn'", NULL, 0), "churn");
  cr_expect_str_eq(query(TRACK_FLT_REGISTERED_MODELS, "name ILIKE 'churn%'", NULL, 0), "Churn2,churn");
  cr_expect_str_eq(query(TRACK_FLT_REGISTERED_MODELS, "tags.owner = 'bob'", NULL, 0), "vision");
  const char *none[1];
  cr_expect_str_eq(query(TRACK_FLT_REGISTERED_MODELS, "", none, 0), "Churn2,churn,vision");
  cr_expect_str_eq(query(TRACK_FLT_REGISTERED_MODELS, "", (const char *[]){"timestamp DESC"}, 1),
                   "churn,Churn2,vision");
  cr_expect_str_eq(query(TRACK_FLT_REGISTERED_MODELS, "", (const char *[]){"creation_timestamp DESC"}, 1),
                   "Churn2,vision,churn");
  cr_expect_str_eq(query(TRACK_FLT_MODEL_VERSIONS, "name = 'churn'", NULL, 0), "churn/1,churn/2");
  cr_expect_str_eq(query(TRACK_FLT_MODEL_VERSIONS, "run_id IN ('r1', 'r3')", NULL, 0),
                   "churn/1,vision/1");
  cr_expect_str_eq(query(TRACK_FLT_MODEL_VERSIONS, "run_id != 'r1'", NULL, 0), "churn/2,vision/1");
  cr_expect_str_eq(query(TRACK_FLT_MODEL_VERSIONS, "version_number >= 2", NULL, 0), "churn/2,vision/2");
  cr_expect_str_eq(query(TRACK_FLT_MODEL_VERSIONS, "source_path LIKE 'file:%'", NULL, 0),
                   "vision/1,vision/2");
  cr_expect_str_eq(query(TRACK_FLT_MODEL_VERSIONS, "tags.stage = 'prod'", NULL, 0), "churn/2");
  cr_expect_str_eq(query(TRACK_FLT_MODEL_VERSIONS, "", none, 0), "churn/2,churn/1,vision/2,vision/1");
  cr_expect_str_eq(
      query(TRACK_FLT_MODEL_VERSIONS, "", (const char *[]){"last_updated_timestamp DESC"}, 1),
      "vision/2,vision/1,churn/2,churn/1");
}
