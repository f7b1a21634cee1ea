/* tests for track/batch_json, the log-batch fast reader: whatever it
 * accepts must be valid JSON meaning exactly what jansson reads from it
 * (checked on plain bodies and on thousands of random mutations of them),
 * and anything unusual must be left to the general path. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "track/track.h"

/* jansson's reading of a body the fast reader accepted, field by field */
static void same_as_jansson(const char *body, size_t n, const char *run_id, const struct track_batch *b) {
  json_error_t je;
  json_t *o = json_loadb(body, n, JSON_DECODE_ANY, &je);
  cr_assert_not_null(o, "fast reader accepted invalid JSON: %.*s (%s)", (int)n, body, je.text);
  cr_assert(json_is_object(o));
  const char *rid = json_string_value(json_object_get(o, "run_id"));
  if (!rid || !*rid) rid = json_string_value(json_object_get(o, "run_uuid"));
  cr_assert_str_eq(run_id, rid);
  json_t *ms = json_object_get(o, "metrics");
  cr_assert_eq((size_t)b->nmetrics, json_array_size(ms));
  for (int i = 0; i < b->nmetrics; i++) {
    json_t *m = json_array_get(ms, (size_t)i);
    cr_assert_str_eq(b->metrics[i].key, json_string_value(json_object_get(m, "key")));
    json_t *v = json_object_get(m, "value");
    double want = json_is_string(v) ? (str_eq(json_string_value(v), "NaN") ? NAN
                                       : str_eq(json_string_value(v), "Infinity") ? INFINITY
                                                                                  : -INFINITY)
                                    : json_number_value(v);
    if (isnan(want)) cr_assert(isnan(b->metrics[i].value));
    else cr_assert(b->metrics[i].value == want && signbit(b->metrics[i].value) == signbit(want), "%.17g vs %.17g",
                   b->metrics[i].value, want);
    cr_assert_eq(b->metrics[i].timestamp, json_integer_value(json_object_get(m, "timestamp")));
    cr_assert_eq(b->metrics[i].step, json_integer_value(json_object_get(m, "step")));
  }
  const char *lists[] = {"params", "tags"};
  const struct track_kv *kvs[] = {b->params, b->tags};
  int ns[] = {b->nparams, b->ntags};
  for (int l = 0; l < 2; l++) {
    json_t *a = json_object_get(o, lists[l]);
    cr_assert_eq((size_t)ns[l], json_array_size(a));
    for (int i = 0; i < ns[l]; i++) {
      cr_assert_str_eq(kvs[l][i].key, json_string_value(json_object_get(json_array_get(a, (size_t)i), "key")));
      cr_assert_str_eq(kvs[l][i].value, json_string_value(json_object_get(json_array_get(a, (size_t)i), "value")));
    }
  }
  json_decref(o);
}

static int check(const char *body, size_t n) {
  struct arena a;
  arena_init(&a, 4096, 0);
  struct track_batch b;
  const char *id;
  int rc = track_log_batch_parse(body, n, &a, &id, &b);
  if (rc == 1) same_as_jansson(body, n, id, &b);
  arena_fini(&a);
  return rc;
}

static const char *const PLAIN[] = {
    "{\"run_id\":\"0123456789abcdef0123456789abcdef\",\"metrics\":[{\"key\":\"loss\",\"value\":0.5,"
    "\"timestamp\":1700000000000,\"step\":3},{\"key\":\"acc\",\"value\":\"NaN\",\"timestamp\":1,\"step\":-2},"
    "{\"key\":\"x\",\"value\":-1e-7,\"timestamp\":2},{\"key\":\"w\",\"value\":-0,\"timestamp\":2},"
    "{\"key\":\"v\",\"value\":-0.0,\"timestamp\":2},{\"key\":\"y\",\"value\":\"-Infinity\",\"timestamp\":0,"
    "\"step\":0},{\"key\":\"z\",\"value\":12345678901234567,\"timestamp\":5}],\"params\":[{\"key\":\"lr\","
    "\"value\":\"0.01\"}],\"tags\":[{\"key\":\"t\",\"value\":\"\"}]}",
    " { \"run_uuid\" : \"abc\" , \"metrics\" : [ ] , \"params\" : [ ] }\n",
    "{\"run_id\":\"\",\"run_uuid\":\"r\",\"tags\":[{\"value\":\"v\",\"key\":\"k\"}]}",
    "{\"metrics\":[{\"step\":7,\"timestamp\":9,\"value\":1E+2,\"key\":\"a b/c:d-e.f_g\"}],\"run_id\":\"r\"}",
};

Test(track_batch_json, plain_bodies_read_as_jansson_reads_them) {
  for (size_t i = 0; i < sizeof PLAIN / sizeof PLAIN[0]; i++)
    cr_assert_eq(check(PLAIN[i], strlen(PLAIN[i])), 1, "body %zu", i);
}

Test(track_batch_json, unusual_bodies_go_to_the_general_path) {
  const char *const odd[] = {
      "",
      "[]",
      "{}",                                     /* no run id: an error answer */
      "{\"run_id\":\"r\",\"extra\":1}",        /* unknown field */
      "{\"run_id\":\"r\",\"run_id\":\"s\"}",   /* duplicate */
      "{\"run_id\":\"r\\u0041\"}",             /* escape */
      "{\"run_id\":\"r\xc3\xa9\"}",            /* non-ASCII */
      "{\"run_id\":null}",
      "{\"run_id\":\"r\",\"metrics\":null}",
      "{\"run_id\":\"r\",\"metrics\":[{\"key\":\"a\",\"value\":1}]}",                       /* no timestamp */
      "{\"run_id\":\"r\",\"metrics\":[{\"key\":\"a\",\"value\":1,\"timestamp\":1.5}]}",     /* real timestamp */
      "{\"run_id\":\"r\",\"metrics\":[{\"key\":\"a\",\"value\":1,\"timestamp\":\"1\"}]}",   /* string timestamp */
      "{\"run_id\":\"r\",\"metrics\":[{\"key\":\"a\",\"value\":1e999,\"timestamp\":1}]}",   /* overflow */
      "{\"run_id\":\"r\",\"metrics\":[{\"key\":\"a\",\"value\":99999999999999999999,\"timestamp\":1}]}",
      "{\"run_id\":\"r\",\"metrics\":[{\"key\":\"a\",\"value\":\"1.5\",\"timestamp\":1}]}", /* string number */
      "{\"run_id\":\"r\",\"metrics\":[{\"key\":\"a\",\"value\":01,\"timestamp\":1}]}",      /* bad number */
      "{\"run_id\":\"r\",\"metrics\":[{\"key\":\"a\",\"value\":1,\"timestamp\":1,\"key\":\"b\"}]}",
      "{\"run_id\":\"r\",\"params\":[{\"key\":\"a\"}]}",                                     /* no value */
      "{\"run_id\":\"r\",\"params\":[{\"key\":\"a\",\"value\":null}]}",
      "{\"run_id\":\"r\",\"params\":[{\"key\":\"a\",\"value\":\"b\"},]}",                    /* trailing comma */
      "{\"run_id\":\"r\"} x",
      "{\"run_id\":\"r\"",
  };
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
    cr_assert_eq(check(odd[i], strlen(odd[i])), 0, "body %zu: %s", i, odd[i]);
  cr_assert_eq(check(NULL, 0), 0);
}

Test(track_batch_json, mutations_never_accept_what_jansson_reads_otherwise) {
  uint64_t s = 0x9E3779B97F4A7C15ULL;
  const char alphabet[] = "{}[]\":,.-+eE0123456789 \\\nabcNIfy\x01\xc3";
  char buf[1024];
  int accepted = 0;
  for (int iter = 0; iter < 60000; iter++) {
    const char *src = PLAIN[iter % (sizeof PLAIN / sizeof PLAIN[0])];
    size_t n = strlen(src);
    memcpy(buf, src, n);
    int edits = 1 + (int)(s % 3);
    for (int k = 0; k < edits; k++) {
      s = s * 6364136223846793005ULL + 1442695040888963407ULL;
      size_t at = (size_t)(s >> 33) % n;
      int what = (int)((s >> 20) % 3);
      char c = alphabet[(s >> 40) % (sizeof alphabet - 1)];
      if (what == 0) buf[at] = c;                                    /* replace */
      else if (what == 1 && n > 1) memmove(buf + at, buf + at + 1, --n - at); /* delete */
      else if (n + 1 < sizeof buf) {                                 /* insert */
        memmove(buf + at + 1, buf + at, n - at);
        buf[at] = c;
        n++;
      }
    }
    accepted += check(buf, n) == 1;
  }
  cr_assert_gt(accepted, 100, "the mutations should keep some bodies plain");
}
