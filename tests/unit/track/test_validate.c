/* tests for track/validate: MLflow's key rules and messages, UTF-8
 * lengths, the latest-metric rule, page tokens, run ids, statuses, views
 * and generated run names. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "track/track.h"

static void key_ok(enum track_key_kind k, const char *key) {
  struct err e = {0};
  cr_assert_eq(track_key_check(k, key, &e), 0, "'%s' refused: %s", key, e.msg);
}

static void key_bad(enum track_key_kind k, const char *key, const char *fragment) {
  struct err e = {0};
  cr_assert_eq(track_key_check(k, key, &e), -ERR_INVALID_PARAMETER_VALUE, "'%s' accepted", key ? key : "(null)");
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, fragment), "'%s': message '%s' lacks '%s'", key ? key : "(null)", e.msg, fragment);
}

Test(track_validate, keys_follow_mlflow_rules) {
  key_ok(TRACKING_KEY_METRIC, "acc");
  key_ok(TRACKING_KEY_METRIC, "val/loss");
  key_ok(TRACKING_KEY_METRIC, "a.b-c_d e:f");
  key_ok(TRACKING_KEY_PARAM, "système");
  key_ok(TRACKING_KEY_TAG, "mlflow.runName");
  key_ok(TRACKING_KEY_TAG, "a/./b/c" + 4); /* "b/c" */
  key_bad(TRACKING_KEY_METRIC, NULL, "Metric name cannot be None. A key name must be provided.");
  key_bad(TRACKING_KEY_PARAM, NULL, "Parameter name cannot be None");
  key_bad(TRACKING_KEY_METRIC, "a*b", "Invalid metric name: 'a*b'. Names may only contain alphanumerics");
  key_bad(TRACKING_KEY_PARAM, "a\"b", "Invalid parameter name");
  key_bad(TRACKING_KEY_TAG, "a\tb", "Invalid tag name");
  key_bad(TRACKING_KEY_METRIC, "", "This name would resolve to '.'");
  key_bad(TRACKING_KEY_METRIC, ".", "This name would resolve to '.'");
  key_bad(TRACKING_KEY_METRIC, "/abs", "This name would resolve to '/abs'");
  key_bad(TRACKING_KEY_METRIC, "a/", "This name would resolve to 'a'");
  key_bad(TRACKING_KEY_METRIC, "a//b", "This name would resolve to 'a/b'");
  key_bad(TRACKING_KEY_METRIC, "a/./b", "This name would resolve to 'a/b'");
  key_bad(TRACKING_KEY_METRIC, "a/../b", "This name would resolve to 'b'");
  key_bad(TRACKING_KEY_METRIC, "..", "This name would resolve to '..'");
  key_bad(TRACKING_KEY_METRIC, "../x", "This name would resolve to '../x'");
  key_bad(TRACKING_KEY_METRIC, "a/../..", "This name would resolve to '..'");
}

Test(track_validate, key_length_counts_characters) {
  char k[2 * 252 + 1];
  memset(k, 'k', 250);
  k[250] = 0;
  key_ok(TRACKING_KEY_METRIC, k);
  k[250] = 'k';
  k[251] = 0;
  key_bad(TRACKING_KEY_METRIC, k, "Metric name 'kkk");
  key_bad(TRACKING_KEY_PARAM, k, "had length 251, which exceeded length limit of 250");
  key_bad(TRACKING_KEY_TAG, k, "Tag key 'kkk");
  /* 250 two-byte characters are 250 characters */
  for (int i = 0; i < 250; i++) memcpy(k + 2 * i, "\xc3\xa9", 2);
  k[500] = 0;
  key_ok(TRACKING_KEY_PARAM, k);
}

Test(track_validate, utf8_lengths_and_prefixes) {
  cr_assert_eq(track_utf8_chars(""), 0);
  cr_assert_eq(track_utf8_chars("abc"), 3);
  cr_assert_eq(track_utf8_chars("\xc3\xa9t\xc3\xa9"), 3);
  cr_assert_eq(track_utf8_chars("\xf0\x9f\x94\xa5"), 1);
  cr_assert_eq(track_utf8_prefix("\xc3\xa9t\xc3\xa9", 2), 3);
  cr_assert_eq(track_utf8_prefix("\xc3\xa9t\xc3\xa9", 3), 5);
  cr_assert_eq(track_utf8_prefix("\xc3\xa9t\xc3\xa9", 99), 5);
  cr_assert_eq(track_utf8_prefix("abc", 0), 0);
}

Test(track_validate, page_tokens_are_mlflows) {
  char t[TRACKING_PAGE_TOKEN_MAX];
  track_page_token_encode(100, t);
  cr_assert_str_eq(t, "eyJvZmZzZXQiOiAxMDB9"); /* base64('{"offset": 100}'), as MLflow writes it */
  int64_t off = -1;
  struct err e;
  cr_assert_eq(track_page_token_decode(t, &off, &e), 0, "%s", e.msg);
  cr_assert_eq(off, 100);
  track_page_token_encode(0, t);
  cr_assert_eq(track_page_token_decode(t, &off, &e), 0);
  cr_assert_eq(off, 0);
  cr_assert_eq(track_page_token_decode("%%%", &off, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_str_eq(e.msg, "Invalid page token, could not base64-decode");
  cr_assert_eq(track_page_token_decode("bm90IGpzb24=", &off, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "decoded value=not json"), "%s", e.msg);
  /* {"offset": -5} */
  cr_assert_eq(track_page_token_decode("eyJvZmZzZXQiOiAtNX0=", &off, &e), -ERR_INVALID_PARAMETER_VALUE);
  char big[200];
  memset(big, 'A', sizeof big - 1);
  big[sizeof big - 1] = 0;
  cr_assert_eq(track_page_token_decode(big, &off, &e), -ERR_INVALID_PARAMETER_VALUE);
}

Test(track_validate, run_ids_statuses_views_and_names) {
  cr_assert(track_run_id_valid("0123456789abcdef0123456789abcdef"));
  cr_assert_not(track_run_id_valid("0123456789ABCDEF0123456789abcdef"));
  cr_assert_not(track_run_id_valid("0123456789abcdef"));
  cr_assert_not(track_run_id_valid(NULL));
  enum track_status st;
  struct err e;
  cr_assert_eq(track_status_parse("FINISHED", &st, &e), 0);
  cr_assert_eq(st, TRACKING_FINISHED);
  cr_assert_eq(track_status_parse("5", &st, &e), 0);
  cr_assert_eq(st, TRACKING_KILLED);
  cr_assert_str_eq(track_status_name(TRACKING_SCHEDULED), "SCHEDULED");
  cr_assert_eq(track_status_parse("finished", &st, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(track_status_parse("0", &st, &e), -ERR_INVALID_PARAMETER_VALUE);
  enum track_view v;
  cr_assert_eq(track_view_parse("DELETED_ONLY", &v, &e), 0);
  cr_assert_eq(v, TRACKING_VIEW_DELETED);
  cr_assert_eq(track_view_parse("3", &v, &e), 0);
  cr_assert_eq(v, TRACKING_VIEW_ALL);
  cr_assert_eq(track_view_parse("4", &v, &e), -ERR_INVALID_PARAMETER_VALUE);
  char name[64];
  for (int i = 0; i < 50; i++) {
    track_run_name_generate(name);
    char *d1 = strchr(name, '-'), *d2 = d1 ? strchr(d1 + 1, '-') : NULL;
    cr_assert(d1 && d2 && d2[1] >= '0' && d2[1] <= '9', "%s", name);
    struct err ke;
    cr_assert_eq(track_key_check(TRACKING_KEY_TAG, name, &ke), 0, "%s", name);
  }
}
