/* tests for registry webhooks: the signature (known HMAC-SHA256 vectors),
 * the backoff schedule, URL and address checks, secrets sealed at rest, and
 * the outbox — registry changes queue deliveries for subscribed ACTIVE
 * webhooks in their own transaction, filtered by event and model. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store_fixture.h"
#include "registry/registry.h"

static char dir[64];
static struct db *db;
static struct registry_webhooks *wh;

#define P1 "aaaa0000000000000000000000000001"
#define P2 "bbbb0000000000000000000000000002"

static void setup(void) {
  store_fixture_open("kiln-hooks", dir, &db);
  struct err e;
  cr_assert_eq(registry_webhooks_new(&wh, db, NULL, &e), 0, "%s", e.msg);
}
static void teardown(void) {
  registry_webhooks_free(wh); /* never started: no worker, deliveries stay queued */
  store_fixture_close(dir, db);
}

TestSuite(registry_webhooks_sign);
TestSuite(registry_webhooks_rules);
TestSuite(registry_webhooks_outbox, .init = setup, .fini = teardown);

Test(registry_webhooks_sign, matches_python_hmac) {
  char sig[REGISTRY_WEBHOOK_SIG_LEN + 1];
  const char *body = "{\"event\":\"TEST\"}";
  registry_webhook_sign("whsec_test_secret_123", 21, 1700000000, body, strlen(body), sig);
  cr_assert_str_eq(sig, "sha256=ddf6db06e1972dec5d2990eccd85253546f961ef324bc959461ad0ad0cec5bb3");
  /* keys longer than the block size are hashed first, as HMAC says */
  char key[100];
  memset(key, 'k', sizeof key);
  registry_webhook_sign(key, sizeof key, 0, "", 0, sig);
  cr_assert_str_eq(sig, "sha256=243c2f8200e1d4ee892e7a7ded377a65e2beb1c64b997c54b8b0f516216d4b0f");
}

Test(registry_webhooks_sign, timestamp_and_body_both_count) {
  char a[REGISTRY_WEBHOOK_SIG_LEN + 1], b[REGISTRY_WEBHOOK_SIG_LEN + 1], c[REGISTRY_WEBHOOK_SIG_LEN + 1];
  registry_webhook_sign("secret-secret-secret", 20, 1, "x", 1, a);
  registry_webhook_sign("secret-secret-secret", 20, 2, "x", 1, b);
  registry_webhook_sign("secret-secret-secret", 20, 1, "y", 1, c);
  cr_assert_str_neq(a, b);
  cr_assert_str_neq(a, c);
}

Test(registry_webhooks_rules, backoff_doubles_up_to_the_cap) {
  cr_assert_eq(registry_webhook_backoff_ms(1, 1000, 300000), 1000);
  cr_assert_eq(registry_webhook_backoff_ms(2, 1000, 300000), 2000);
  cr_assert_eq(registry_webhook_backoff_ms(3, 1000, 300000), 4000);
  cr_assert_eq(registry_webhook_backoff_ms(9, 1000, 300000), 256000);
  cr_assert_eq(registry_webhook_backoff_ms(10, 1000, 300000), 300000);
  cr_assert_eq(registry_webhook_backoff_ms(1000, 1000, 300000), 300000); /* no overflow */
  cr_assert_eq(registry_webhook_backoff_ms(0, 50, 1000), 50);
}

Test(registry_webhooks_rules, urls) {
  struct err e;
  cr_assert_eq(registry_webhook_url_check("https://hooks.example.com/x?a=1", false, &e), 0, "%s", e.msg);
  cr_assert_eq(registry_webhook_url_check("http://127.0.0.1:8080/x", true, &e), 0, "%s", e.msg);
  const char *bad[] = {"", "ftp://x/", "file:///etc/passwd", "https://", "https://u:p@example.com/",
                       "https://example.com/#f", "https://exa mple.com/", "gopher://example.com/", "example.com"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(registry_webhook_url_check(bad[i], true, &e), -ERR_INVALID_PARAMETER_VALUE, "%s", bad[i]);
  const char *priv[] = {"http://127.0.0.1/", "http://localhost:99/", "http://a.localhost/", "http://[::1]/",
                        "http://10.0.0.1/", "http://172.16.0.1/", "http://192.168.0.1/", "http://169.254.169.254/",
                        "http://[fe80::1]/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://100.64.0.1/"};
  for (size_t i = 0; i < sizeof priv / sizeof priv[0]; i++) {
    cr_assert_eq(registry_webhook_url_check(priv[i], false, &e), -ERR_INVALID_PARAMETER_VALUE, "%s", priv[i]);
    cr_assert_eq(registry_webhook_url_check(priv[i], true, &e), 0, "%s: %s", priv[i], e.msg);
  }
  char longer[REGISTRY_WEBHOOK_MAX_URL_LEN + 32] = "https://example.com/";
  memset(longer + 20, 'a', sizeof longer - 21);
  longer[sizeof longer - 1] = 0;
  cr_assert_eq(registry_webhook_url_check(longer, true, &e), -ERR_INVALID_PARAMETER_VALUE);
}

static bool priv4(const char *s) {
  uint8_t a[4];
  cr_assert_eq(inet_pton(AF_INET, s, a), 1);
  return registry_webhook_addr_private(AF_INET, a);
}
static bool priv6(const char *s) {
  uint8_t a[16];
  cr_assert_eq(inet_pton(AF_INET6, s, a), 1);
  return registry_webhook_addr_private(AF_INET6, a);
}

Test(registry_webhooks_rules, addresses) {
  cr_assert(priv4("127.0.0.53") && priv4("10.9.8.7") && priv4("172.31.255.255") && priv4("192.168.10.1"));
  cr_assert(priv4("169.254.169.254") && priv4("0.0.0.0") && priv4("224.0.0.1") && priv4("100.127.0.1"));
  cr_assert(!priv4("8.8.8.8") && !priv4("172.32.0.1") && !priv4("100.128.0.1") && !priv4("193.168.0.1"));
  cr_assert(priv6("::1") && priv6("::") && priv6("fd00::1") && priv6("fe80::1") && priv6("ff02::1"));
  cr_assert(priv6("::ffff:10.0.0.1") && priv6("64:ff9b::7f00:1"));
  cr_assert(!priv6("2001:4860:4860::8888") && !priv6("::ffff:8.8.8.8"));
}

Test(registry_webhooks_rules, events) {
  cr_assert(registry_webhook_event_valid("MODEL_VERSION_CREATED"));
  cr_assert(registry_webhook_event_valid("REGISTERED_MODEL_ALIAS_DELETED"));
  cr_assert(!registry_webhook_event_valid("TEST"));
  cr_assert(!registry_webhook_event_valid("model_version_created"));
}

/* ---- the outbox ---- */

static char *hook(const char *project, const char *const *events, int n, const char *model, const char *status) {
  struct registry_webhook_in in = {.url = "https://example.com/h", .events = events, .nevents = n,
                                   .events_given = true, .model_name = model, .status = status};
  struct err e;
  char *secret = NULL;
  json_t *o = registry_webhook_create(wh, project, &in, &secret, &e);
  cr_assert_not_null(o, "%s", e.msg);
  cr_assert(secret && strncmp(secret, "whsec_", 6) == 0);
  free(secret);
  char *id = strdup(json_string_value(json_object_get(o, "id")));
  json_decref(o);
  return id;
}

static size_t ndeliveries(const char *project, const char *id) {
  struct err e;
  char next[REGISTRY_PAGE_TOKEN_MAX];
  json_t *arr = registry_webhook_deliveries(wh, project, id, 0, NULL, next, &e);
  cr_assert_not_null(arr, "%s", e.msg);
  size_t n = json_array_size(arr);
  json_decref(arr);
  return n;
}

static void version(const char *project, const char *name) {
  struct err e;
  json_t *m = registry_model_get(db, project, name, &e);
  if (!m) m = registry_model_create(db, project, name, NULL, NULL, 0, "tester", &e);
  cr_assert_not_null(m, "%s", e.msg);
  json_decref(m);
  struct registry_version_new in = {.name = name, .source = "s3://bucket/model"};
  json_t *v = registry_version_create(db, project, &in, &e);
  cr_assert_not_null(v, "%s", e.msg);
  json_decref(v);
}

Test(registry_webhooks_outbox, changes_queue_deliveries_for_subscribers_only) {
  const char *created[] = {"MODEL_VERSION_CREATED"}, *ready[] = {"MODEL_VERSION_READY"},
             *alias[] = {"REGISTERED_MODEL_ALIAS_SET", "REGISTERED_MODEL_ALIAS_DELETED"};
  char *all = hook(P1, created, 1, NULL, NULL);
  char *only_b = hook(P1, created, 1, "b", NULL);
  char *rd = hook(P1, ready, 1, NULL, NULL);
  char *al = hook(P1, alias, 2, NULL, NULL);
  char *off = hook(P1, created, 1, NULL, "DISABLED");
  char *test = hook(P1, created, 1, NULL, "TEST_MODE");
  char *other = hook(P2, created, 1, NULL, NULL);
  version(P1, "a");
  version(P1, "a");
  version(P1, "b");
  cr_assert_eq(ndeliveries(P1, all), 3);
  cr_assert_eq(ndeliveries(P1, only_b), 1);
  cr_assert_eq(ndeliveries(P1, rd), 3);
  cr_assert_eq(ndeliveries(P1, al), 0);
  cr_assert_eq(ndeliveries(P1, off), 0);
  cr_assert_eq(ndeliveries(P1, test), 0);
  cr_assert_eq(ndeliveries(P2, other), 0);
  struct err e;
  cr_assert_eq(registry_alias_set(db, P1, "a", "champion", "2", &e), 0, "%s", e.msg);
  cr_assert_eq(registry_alias_delete(db, P1, "a", "champion", &e), 0, "%s", e.msg);
  cr_assert_eq(registry_alias_delete(db, P1, "a", "champion", &e), 0, "%s", e.msg); /* not set: no event */
  cr_assert_eq(ndeliveries(P1, al), 2);
  /* the newest first, with the payload as it will be sent */
  char next[REGISTRY_PAGE_TOKEN_MAX];
  json_t *arr = registry_webhook_deliveries(wh, P1, al, 1, NULL, next, &e);
  cr_assert_eq(json_array_size(arr), 1);
  cr_assert_neq(next[0], 0);
  json_t *d = json_array_get(arr, 0), *p = json_object_get(d, "payload");
  cr_assert_str_eq(json_string_value(json_object_get(d, "state")), "PENDING");
  cr_assert_str_eq(json_string_value(json_object_get(p, "event")), "REGISTERED_MODEL_ALIAS_DELETED");
  json_t *data = json_object_get(p, "data");
  cr_assert_str_eq(json_string_value(json_object_get(data, "alias")), "champion");
  cr_assert_str_eq(json_string_value(json_object_get(data, "version")), "2");
  cr_assert_str_eq(json_string_value(json_object_get(data, "name")), "a");
  json_decref(arr);
  /* a failed change queues nothing */
  json_t *bad = registry_version_transition(db, P1, "a", "99", "Staging", false, &e);
  cr_assert_null(bad);
  free(all), free(only_b), free(rd), free(al), free(off), free(test), free(other);
}

Test(registry_webhooks_outbox, stage_moves_carry_both_stages) {
  const char *ev[] = {"MODEL_VERSION_TRANSITIONED_STAGE"};
  char *id = hook(P1, ev, 1, NULL, NULL);
  version(P1, "m");
  version(P1, "m");
  struct err e;
  json_t *v = registry_version_transition(db, P1, "m", "1", "production", false, &e);
  cr_assert_not_null(v, "%s", e.msg);
  json_decref(v);
  v = registry_version_transition(db, P1, "m", "2", "Production", true, &e);
  cr_assert_not_null(v, "%s", e.msg);
  json_decref(v);
  char next[REGISTRY_PAGE_TOKEN_MAX];
  json_t *arr = registry_webhook_deliveries(wh, P1, id, 0, NULL, next, &e);
  cr_assert_eq(json_array_size(arr), 3);
  int archived = 0;
  size_t i;
  json_t *d;
  json_array_foreach(arr, i, d) {
    json_t *data = json_object_get(json_object_get(d, "payload"), "data");
    const char *to = json_string_value(json_object_get(data, "to_stage"));
    if (str_eq(to, "Archived")) {
      archived++;
      cr_assert_str_eq(json_string_value(json_object_get(data, "from_stage")), "Production");
      cr_assert_str_eq(json_string_value(json_object_get(data, "version")), "1");
    } else {
      cr_assert_str_eq(to, "Production");
      cr_assert_str_eq(json_string_value(json_object_get(data, "from_stage")), "None");
    }
  }
  cr_assert_eq(archived, 1);
  json_decref(arr);
  free(id);
}

Test(registry_webhooks_outbox, secrets_are_sealed_with_a_master_key) {
  uint8_t key[32];
  memset(key, 7, sizeof key);
  struct registry_webhooks *sealed;
  struct registry_webhooks_opts o = {.master_key = key};
  struct err e;
  cr_assert_eq(registry_webhooks_new(&sealed, db, &o, &e), 0);
  const char *ev[] = {"MODEL_VERSION_CREATED"};
  struct registry_webhook_in in = {.url = "https://example.com/", .events = ev, .nevents = 1, .events_given = true,
                                   .secret = "a-secret-of-my-own-0001"};
  char *secret = NULL;
  json_t *h = registry_webhook_create(sealed, P1, &in, &secret, &e);
  cr_assert_not_null(h, "%s", e.msg);
  cr_assert_str_eq(secret, "a-secret-of-my-own-0001");
  free(secret);
  cr_assert_null(json_object_get(h, "secret"));
  json_decref(h);
  struct db_conn *c = db_reader_acquire(db, &e);
  struct db_stmt *s = db_prepare(c, "SELECT secret FROM registry_webhooks", &e);
  cr_assert_eq(db_step(s, &e), DB_ROW);
  const char *stored = db_col_text(s, 0);
  cr_assert(str_has_prefix(stored, "x1:"), "%s", stored);
  cr_assert_null(strstr(stored, "a-secret"));
  /* and not hex of the plaintext either */
  char hex[64];
  hex_encode(hex, (const uint8_t *)"a-secret", 8);
  cr_assert_null(strstr(stored, hex));
  db_stmt_done(s);
  db_reader_release(db, c);
  registry_webhooks_free(sealed);
}

Test(registry_webhooks_outbox, limits_and_lookups) {
  const char *ev[] = {"MODEL_VERSION_CREATED"};
  struct err e;
  char *secret = NULL;
  for (int i = 0; i < REGISTRY_WEBHOOKS_PER_PROJECT; i++) {
    char *id = hook(P1, ev, 1, NULL, NULL);
    free(id);
  }
  struct registry_webhook_in in = {.url = "https://example.com/", .events = ev, .nevents = 1, .events_given = true};
  cr_assert_null(registry_webhook_create(wh, P1, &in, &secret, &e));
  cr_assert_eq(e.code, ERR_RESOURCE_ALREADY_EXISTS);
  cr_assert_null(secret);
  char next[REGISTRY_PAGE_TOKEN_MAX];
  json_t *page = registry_webhook_list(wh, P1, 60, NULL, next, &e);
  cr_assert_eq(json_array_size(page), 60);
  cr_assert_str_eq(next, "60");
  json_decref(page);
  char token[REGISTRY_PAGE_TOKEN_MAX];
  str_copy(token, sizeof token, next);
  page = registry_webhook_list(wh, P1, 60, token, next, &e);
  cr_assert_eq(json_array_size(page), 40);
  cr_assert_str_eq(next, "");
  json_decref(page);
  cr_assert_null(registry_webhook_get(wh, P2, "0123456789abcdef0123456789abcdef", &e));
  cr_assert_eq(e.code, ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(registry_webhook_delete(wh, P1, "../etc", &e), -ERR_RESOURCE_DOES_NOT_EXIST);
}
