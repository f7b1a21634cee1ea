/* tests for auth/keys: creation, verification into a principal, revocation,
 * expiry, rotation grace, project restriction, last-used hint, storage
 * only as a hash, and the audit entries each change writes. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "fixture.h"

static char dir[64];
static struct db *db;
static struct auth *au;

#define ALICE "a11ce000000000000000000000000001"
#define BOB "b0b00000000000000000000000000002"
#define ORG "0a900000000000000000000000000003"
#define PROJ "9a0e0000000000000000000000000004"

static int exec_job(struct db_conn *c, void *arg, struct err *e) { return db_exec(c, arg, e); }

static void sql(const char *fmt, ...) KILN_PRINTF(1, 2);
static void sql(const char *fmt, ...) {
  char q[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q, sizeof q, fmt, ap);
  va_end(ap);
  struct err e;
  cr_assert_eq(db_write(db, exec_job, q, &e), 0, "%s: %s", q, e.msg);
}

/* One integer from a query on a reader. */
static int64_t sql_i64(const char *q, const char *arg) {
  struct err e;
  struct db_conn *c = db_reader_acquire(db, &e);
  cr_assert_not_null(c, "%s", e.msg);
  struct db_stmt *s = db_prepare(c, q, &e);
  cr_assert_not_null(s, "%s", e.msg);
  if (arg) db_bind_text(s, 1, arg);
  cr_assert_eq(db_step(s, &e), DB_ROW, "%s", q);
  int64_t v = db_col_i64(s, 0);
  db_stmt_done(s);
  db_reader_release(db, c);
  return v;
}

static void setup(void) {
  auth_fixture_open("kiln-keys", dir, &db, &au);
  sql("INSERT INTO users (id, username, email, is_admin, disabled, created_at, updated_at) "
      "VALUES ('" ALICE "', 'alice', 'alice@example.com', 1, 0, 1, 1)");
  sql("INSERT INTO users (id, username, email, is_admin, disabled, created_at, updated_at) "
      "VALUES ('" BOB "', 'bob', 'bob@example.com', 0, 0, 1, 1)");
  sql("INSERT INTO orgs (id, name, created_at, updated_at) VALUES ('" ORG "', 'acme', 1, 1)");
  sql("INSERT INTO projects (id, org_id, name, created_at, updated_at) VALUES ('" PROJ "', '" ORG
      "', 'fraud', 1, 1)");
}

static void teardown(void) { auth_fixture_close(dir, db, au); }

TestSuite(keys, .init = setup, .fini = teardown);

static void create(const char *user, unsigned scopes, const char *project, int64_t expires_at,
                   char key[AUTH_KEY_MAX], struct auth_api_key *k) {
  struct err e;
  cr_assert_eq(auth_key_create(au, user, "ci", scopes, project, expires_at, key, k, &e), 0, "%s",
               e.msg);
}

static void verify_fails(const char *key, const char *why) {
  struct auth_principal p;
  struct err e;
  cr_assert_eq(auth_key_verify(au, key, &p, &e), -ERR_UNAUTHENTICATED, "expected refusal: %s", why);
  cr_assert_eq(e.code, ERR_UNAUTHENTICATED);
  cr_assert_eq(p.kind, AUTH_ANON, "no principal on failure");
  if (key && *key) cr_assert_null(strstr(e.msg, key), "the message never echoes the key");
}

Test(keys, create_then_verify_fills_the_principal) {
  char key[AUTH_KEY_MAX];
  struct auth_api_key k;
  create(ALICE, AUTH_SCOPE_READ | AUTH_SCOPE_PREDICT, NULL, 0, key, &k);
  cr_assert_eq(strlen(key), 48, "kiln_ + 43 base62 digits: %s", key);
  cr_assert(str_has_prefix(key, "kiln_"));
  for (size_t i = 5; i < strlen(key); i++)
    cr_assert(strchr("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", key[i]));
  cr_assert_eq(strlen(k.prefix), 12);
  cr_assert_eq(strncmp(k.prefix, key, 12), 0);
  cr_assert_eq(strlen(k.id), 32);
  cr_assert_str_eq(k.user_id, ALICE);
  cr_assert_str_eq(k.name, "ci");
  cr_assert_eq(k.scopes, AUTH_SCOPE_READ | AUTH_SCOPE_PREDICT);
  cr_assert_str_eq(k.project_id, "");
  cr_assert_gt(k.created_at, 0);
  cr_assert_eq(k.expires_at, 0);
  cr_assert_eq(k.revoked_at, 0);

  struct auth_principal p;
  struct err e;
  cr_assert_eq(auth_key_verify(au, key, &p, &e), 0, "%s", e.msg);
  cr_assert_eq(p.kind, AUTH_API_KEY);
  cr_assert_str_eq(p.user_id, ALICE);
  cr_assert_str_eq(p.username, "alice");
  cr_assert(p.is_admin);
  cr_assert_eq(p.scopes, AUTH_SCOPE_READ | AUTH_SCOPE_PREDICT);
  cr_assert_str_eq(p.project_id, "");
  cr_assert_str_eq(p.key_id, k.id);

  /* bob's key says bob is not an administrator */
  char key2[AUTH_KEY_MAX];
  struct auth_api_key k2;
  create(BOB, AUTH_SCOPE_ALL, NULL, 0, key2, &k2);
  cr_assert_str_neq(key, key2);
  cr_assert_eq(auth_key_verify(au, key2, &p, &e), 0, "%s", e.msg);
  cr_assert_str_eq(p.username, "bob");
  cr_assert_not(p.is_admin);
  cr_assert_eq(p.scopes, AUTH_SCOPE_ALL);

  struct auth_api_key got;
  cr_assert_eq(auth_key_get(au, k.id, &got, &e), 0, "%s", e.msg);
  cr_assert_str_eq(got.prefix, k.prefix);
  cr_assert_eq(auth_key_get(au, "ffffffffffffffffffffffffffffffff", &got, &e),
               -ERR_RESOURCE_DOES_NOT_EXIST);
}

Test(keys, wrong_garbled_and_unknown_keys_are_refused) {
  char key[AUTH_KEY_MAX];
  struct auth_api_key k;
  create(ALICE, AUTH_SCOPE_READ, NULL, 0, key, &k);
  char bad[AUTH_KEY_MAX + 8];

  verify_fails(NULL, "NULL");
  verify_fails("", "empty");
  verify_fails("kiln_", "prefix only");
  verify_fails("Bearer abc", "not a key");
  snprintf(bad, sizeof bad, "%s", key);
  bad[20] = bad[20] == 'a' ? 'b' : 'a'; /* right shape, unknown key */
  verify_fails(bad, "one digit changed");
  snprintf(bad, sizeof bad, "%s", key);
  bad[30] = '!';
  verify_fails(bad, "a non-base62 character");
  snprintf(bad, sizeof bad, "%sA", key);
  verify_fails(bad, "too long");
  snprintf(bad, sizeof bad, "%.47s", key);
  verify_fails(bad, "too short");
  snprintf(bad, sizeof bad, "KILN_%s", key + 5);
  verify_fails(bad, "wrong prefix");

  struct auth_principal p;
  struct err e;
  cr_assert_eq(auth_key_verify(au, key, &p, &e), 0, "the real one still works: %s", e.msg);
}

Test(keys, bad_input_to_create_is_refused) {
  char key[AUTH_KEY_MAX];
  struct auth_api_key k;
  struct err e;
  char longname[200];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  cr_assert_eq(auth_key_create(au, ALICE, "", AUTH_SCOPE_READ, NULL, 0, key, &k, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_key_create(au, ALICE, NULL, AUTH_SCOPE_READ, NULL, 0, key, &k, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_key_create(au, ALICE, longname, AUTH_SCOPE_READ, NULL, 0, key, &k, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  longname[128] = 0;
  cr_assert_eq(auth_key_create(au, ALICE, longname, AUTH_SCOPE_READ, NULL, 0, key, &k, &e), 0,
               "128 bytes is the limit: %s", e.msg);
  cr_assert_eq(auth_key_create(au, ALICE, "a\nb", AUTH_SCOPE_READ, NULL, 0, key, &k, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_key_create(au, ALICE, "ci", 0, NULL, 0, key, &k, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_key_create(au, ALICE, "ci", 1u << 7, NULL, 0, key, &k, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(
      auth_key_create(au, ALICE, "ci", AUTH_SCOPE_READ, NULL, time_wall_ms() - 1000, key, &k, &e),
      -ERR_INVALID_PARAMETER_VALUE, "an expiry in the past");
  cr_assert_eq(auth_key_create(au, "ffffffffffffffffffffffffffffffff", "ci", AUTH_SCOPE_READ, NULL,
                               0, key, &k, &e),
               -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(auth_key_create(au, ALICE, "ci", AUTH_SCOPE_READ, "ffffffffffffffffffffffffffffffff",
                               0, key, &k, &e),
               -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert(strstr(e.msg, "project") != NULL, "%s", e.msg);
  cr_assert_eq(auth_key_create(au, ALICE, "ci", AUTH_SCOPE_READ, longname, 0, key, &k, &e),
               -ERR_INVALID_PARAMETER_VALUE, "an over-long project id");
  cr_assert_eq(sql_i64("SELECT COUNT(*) FROM api_keys", NULL), 1, "only the valid one was stored");
}

Test(keys, a_revoked_key_fails_and_revoking_twice_is_fine) {
  char key[AUTH_KEY_MAX];
  struct auth_api_key k;
  create(ALICE, AUTH_SCOPE_READ, NULL, 0, key, &k);
  struct err e;
  cr_assert_eq(auth_key_revoke(au, k.id, &e), 0, "%s", e.msg);
  verify_fails(key, "revoked");
  struct auth_principal p;
  auth_key_verify(au, key, &p, &e);
  cr_assert(strstr(e.msg, "revoked") != NULL, "%s", e.msg);
  struct auth_api_key got;
  cr_assert_eq(auth_key_get(au, k.id, &got, &e), 0);
  cr_assert_gt(got.revoked_at, 0);
  sql("UPDATE api_keys SET revoked_at = 12345 WHERE id = '%s'", k.id);
  cr_assert_eq(auth_key_revoke(au, k.id, &e), 0, "a second revoke is fine: %s", e.msg);
  cr_assert_eq(auth_key_get(au, k.id, &got, &e), 0);
  cr_assert_eq(got.revoked_at, 12345, "the first revocation time is kept");
  cr_assert_eq(auth_key_revoke(au, "ffffffffffffffffffffffffffffffff", &e),
               -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(auth_key_revoke(au, NULL, &e), -ERR_INVALID_PARAMETER_VALUE);
}

Test(keys, an_expired_key_fails) {
  char key[AUTH_KEY_MAX];
  struct auth_api_key k;
  create(ALICE, AUTH_SCOPE_READ, NULL, time_wall_ms() + 3600 * 1000, key, &k);
  struct auth_principal p;
  struct err e;
  cr_assert_eq(auth_key_verify(au, key, &p, &e), 0, "not expired yet: %s", e.msg);
  sql("UPDATE api_keys SET expires_at = %lld WHERE id = '%s'", (long long)(time_wall_ms() - 1),
      k.id);
  verify_fails(key, "expired");
  auth_key_verify(au, key, &p, &e);
  cr_assert(strstr(e.msg, "expired") != NULL, "%s", e.msg);
  /* an expired key cannot be rotated into a fresh one */
  char key2[AUTH_KEY_MAX];
  cr_assert_eq(auth_key_rotate(au, k.id, 60, key2, &k, &e), -ERR_CONFLICT);
}

Test(keys, a_disabled_user_s_keys_fail) {
  char key[AUTH_KEY_MAX];
  struct auth_api_key k;
  create(BOB, AUTH_SCOPE_READ, NULL, 0, key, &k);
  sql("UPDATE users SET disabled = 1 WHERE id = '" BOB "'");
  verify_fails(key, "disabled user");
}

Test(keys, rotation_keeps_the_old_key_for_the_grace_period_only) {
  char old_key[AUTH_KEY_MAX], new_key[AUTH_KEY_MAX];
  struct auth_api_key old, nk;
  int64_t exp = time_wall_ms() + 86400 * 1000LL;
  create(ALICE, AUTH_SCOPE_READ | AUTH_SCOPE_WRITE, PROJ, exp, old_key, &old);
  struct err e;
  cr_assert_eq(auth_key_rotate(au, old.id, 3600, new_key, &nk, &e), 0, "%s", e.msg);
  cr_assert_str_neq(new_key, old_key);
  cr_assert_str_neq(nk.id, old.id);
  cr_assert_str_eq(nk.name, old.name);
  cr_assert_eq(nk.scopes, old.scopes);
  cr_assert_str_eq(nk.project_id, PROJ);
  cr_assert_eq(nk.expires_at, exp);
  cr_assert_str_eq(nk.user_id, ALICE);

  struct auth_principal p;
  cr_assert_eq(auth_key_verify(au, new_key, &p, &e), 0, "%s", e.msg);
  cr_assert_str_eq(p.key_id, nk.id);
  cr_assert_eq(auth_key_verify(au, old_key, &p, &e), 0, "within grace: %s", e.msg);
  cr_assert_str_eq(p.key_id, old.id);
  struct auth_api_key got;
  cr_assert_eq(auth_key_get(au, old.id, &got, &e), 0);
  cr_assert_gt(got.revoked_at, 0);
  cr_assert_geq(got.grace_until, got.revoked_at + 3600 * 1000 - 5);
  cr_assert_eq(
      sql_i64("SELECT COUNT(*) FROM api_keys WHERE id = ? AND rotated_to IS NOT NULL", old.id), 1);
  /* a literal query with binds: db_prepare caches by the SQL's address */
  struct db_conn *c = db_reader_acquire(db, &e);
  struct db_stmt *s = db_prepare(c, "SELECT rotated_to FROM api_keys WHERE id = ?", &e);
  db_bind_text(s, 1, old.id);
  cr_assert_eq(db_step(s, &e), DB_ROW);
  cr_assert_str_eq(db_col_text(s, 0), nk.id, "the old key points at its successor");
  db_stmt_done(s);
  db_reader_release(db, c);

  /* a rotated key cannot be rotated again */
  char k3[AUTH_KEY_MAX];
  struct auth_api_key n3;
  cr_assert_eq(auth_key_rotate(au, old.id, 60, k3, &n3, &e), -ERR_CONFLICT);

  sql("UPDATE api_keys SET grace_until = %lld WHERE id = '%s'", (long long)(time_wall_ms() - 1),
      old.id);
  verify_fails(old_key, "grace over");
  cr_assert_eq(auth_key_verify(au, new_key, &p, &e), 0, "the new key is unaffected: %s", e.msg);

  /* grace 0: the old key stops at once; bounds */
  cr_assert_eq(auth_key_rotate(au, nk.id, 0, k3, &n3, &e), 0, "%s", e.msg);
  verify_fails(new_key, "rotated with no grace");
  cr_assert_eq(auth_key_verify(au, k3, &p, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_key_rotate(au, n3.id, -1, k3, &n3, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_key_rotate(au, n3.id, 30 * 86400 + 1, k3, &n3, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_key_rotate(au, "ffffffffffffffffffffffffffffffff", 60, k3, &n3, &e),
               -ERR_RESOURCE_DOES_NOT_EXIST);
}

Test(keys, revoking_a_key_in_its_grace_period_ends_it_at_once) {
  char old_key[AUTH_KEY_MAX], new_key[AUTH_KEY_MAX];
  struct auth_api_key old, nk;
  create(ALICE, AUTH_SCOPE_READ, NULL, 0, old_key, &old);
  struct err e;
  cr_assert_eq(auth_key_rotate(au, old.id, 3600, new_key, &nk, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_key_revoke(au, old.id, &e), 0, "%s", e.msg);
  verify_fails(old_key, "revoked during grace");
}

Test(keys, a_project_restriction_is_carried_into_the_principal) {
  char key[AUTH_KEY_MAX];
  struct auth_api_key k;
  create(BOB, AUTH_SCOPE_PREDICT, PROJ, 0, key, &k);
  cr_assert_str_eq(k.project_id, PROJ);
  struct auth_principal p;
  struct err e;
  cr_assert_eq(auth_key_verify(au, key, &p, &e), 0, "%s", e.msg);
  cr_assert_str_eq(p.project_id, PROJ);
  cr_assert_eq(p.scopes, AUTH_SCOPE_PREDICT);
  /* "" means unrestricted, like NULL */
  create(BOB, AUTH_SCOPE_PREDICT, "", 0, key, &k);
  cr_assert_str_eq(k.project_id, "");
  cr_assert_eq(sql_i64("SELECT COUNT(*) FROM api_keys WHERE id = ? AND project_id IS NULL", k.id),
               1);
}

Test(keys, last_used_is_recorded_at_most_once_a_minute) {
  char key[AUTH_KEY_MAX];
  struct auth_api_key k;
  create(ALICE, AUTH_SCOPE_READ, NULL, 0, key, &k);
  cr_assert_eq(k.last_used_at, 0);
  struct auth_principal p;
  struct err e;
  int64_t before = time_wall_ms();
  cr_assert_eq(auth_key_verify(au, key, &p, &e), 0, "%s", e.msg);
  struct auth_api_key got;
  cr_assert_eq(auth_key_get(au, k.id, &got, &e), 0);
  cr_assert_geq(got.last_used_at, before);
  cr_assert_leq(got.last_used_at, time_wall_ms());

  /* used 1 s ago: no write now */
  int64_t recent = time_wall_ms() - 1000;
  sql("UPDATE api_keys SET last_used_at = %lld WHERE id = '%s'", (long long)recent, k.id);
  struct db_stats s0, s1;
  db_stats_get(db, &s0);
  for (int i = 0; i < 5; i++) cr_assert_eq(auth_key_verify(au, key, &p, &e), 0);
  db_stats_get(db, &s1);
  cr_assert_eq(s1.jobs, s0.jobs, "verifying stays off the write path");
  cr_assert_eq(auth_key_get(au, k.id, &got, &e), 0);
  cr_assert_eq(got.last_used_at, recent);

  /* used two minutes ago: refreshed */
  sql("UPDATE api_keys SET last_used_at = %lld WHERE id = '%s'",
      (long long)(time_wall_ms() - 120000), k.id);
  before = time_wall_ms();
  cr_assert_eq(auth_key_verify(au, key, &p, &e), 0);
  cr_assert_eq(auth_key_get(au, k.id, &got, &e), 0);
  cr_assert_geq(got.last_used_at, before);
}

static bool file_contains(const char *path, const char *needle) {
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  struct buf b;
  buf_init(&b);
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) cr_assert_eq(buf_append(&b, chunk, n), 0);
  fclose(f);
  bool hit = b.len && memmem(b.data, b.len, needle, strlen(needle)) != NULL;
  buf_fini(&b);
  return hit;
}

Test(keys, the_key_is_never_stored_in_plain) {
  char key[AUTH_KEY_MAX], key2[AUTH_KEY_MAX];
  struct auth_api_key k, k2;
  create(ALICE, AUTH_SCOPE_READ, PROJ, 0, key, &k);
  struct err e;
  cr_assert_eq(auth_key_rotate(au, k.id, 60, key2, &k2, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_key_revoke(au, k2.id, &e), 0, "%s", e.msg);
  const char *secret_parts[] = {key, key + 12, key2, key2 + 12};

  /* every column of every key row and every audit row */
  struct db_conn *c = db_reader_acquire(db, &e);
  const char *tables[] = {"SELECT * FROM api_keys", "SELECT * FROM audit_log"};
  const int ncols[] = {13, 11};
  for (int t = 0; t < 2; t++) {
    struct db_stmt *s = db_prepare(c, tables[t], &e);
    cr_assert_not_null(s, "%s", e.msg);
    int rows = 0;
    while (db_step(s, &e) == DB_ROW) {
      rows++;
      for (int col = 0; col < ncols[t]; col++) {
        const char *v = db_col_text(s, col);
        for (int i = 0; v && i < 4; i++)
          cr_assert_null(strstr(v, secret_parts[i]), "%s column %d holds key text: %s", tables[t],
                         col, v);
      }
    }
    cr_assert_gt(rows, 0);
    db_stmt_done(s);
  }
  db_reader_release(db, c);
  char hash[65];
  sha256_hex(key, strlen(key), hash);
  cr_assert_eq(sql_i64("SELECT COUNT(*) FROM api_keys WHERE key_hash = ?", hash), 1,
               "stored as SHA-256 hex");

  /* and not anywhere in the database files either */
  char path[128];
  const char *files[] = {"kiln.db", "kiln.db-wal"};
  for (int f = 0; f < 2; f++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[f]);
    for (int i = 0; i < 4; i++)
      cr_assert_not(file_contains(path, secret_parts[i]), "%s holds key text", path);
  }
}

Test(keys, each_change_writes_an_audit_entry) {
  char key[AUTH_KEY_MAX], key2[AUTH_KEY_MAX];
  struct auth_api_key k, k2;
  create(BOB, AUTH_SCOPE_READ, PROJ, 0, key, &k);
  struct err e;
  cr_assert_eq(auth_key_rotate(au, k.id, 60, key2, &k2, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_key_revoke(au, k2.id, &e), 0, "%s", e.msg);

  struct auth_audit_filter f = {.max_results = 100};
  int64_t next;
  json_t *arr = auth_audit_list(db, &f, &next, &e);
  cr_assert_not_null(arr, "%s", e.msg);
  cr_assert_eq(json_array_size(arr), 3);
  const char *want_action[] = {"key.revoke", "key.rotate", "key.create"}; /* newest first */
  const char *want_target[] = {k2.id, k.id, k.id};
  for (size_t i = 0; i < 3; i++) {
    json_t *o = json_array_get(arr, i);
    cr_assert_str_eq(json_string_value(json_object_get(o, "action")), want_action[i]);
    cr_assert_str_eq(json_string_value(json_object_get(o, "target")), want_target[i]);
    cr_assert_str_eq(json_string_value(json_object_get(o, "actor")), BOB);
    cr_assert_str_eq(json_string_value(json_object_get(o, "outcome")), "success");
    cr_assert(json_is_object(json_object_get(o, "detail")));
  }
  json_t *cd = json_object_get(json_array_get(arr, 2), "detail");
  cr_assert_str_eq(json_string_value(json_object_get(cd, "name")), "ci");
  cr_assert_str_eq(json_string_value(json_object_get(cd, "scopes")), "read");
  cr_assert_str_eq(json_string_value(json_object_get(cd, "project_id")), PROJ);
  json_t *rd = json_object_get(json_array_get(arr, 1), "detail");
  cr_assert_str_eq(json_string_value(json_object_get(rd, "new_key_id")), k2.id);
  json_decref(arr);

  /* a failed change leaves no entry behind */
  cr_assert_lt(auth_key_revoke(au, "ffffffffffffffffffffffffffffffff", &e), 0);
  cr_assert_eq(sql_i64("SELECT COUNT(*) FROM audit_log", NULL), 3);
  int64_t checked, bad;
  cr_assert_eq(auth_audit_verify(db, &checked, &bad, &e), 0, "%s", e.msg);
  cr_assert_eq(checked, 3);
}

Test(keys, list_is_newest_first_and_respects_the_cap) {
  char key[AUTH_KEY_MAX];
  struct auth_api_key k[3];
  for (int i = 0; i < 3; i++) create(ALICE, AUTH_SCOPE_READ, NULL, 0, key, &k[i]);
  struct auth_api_key other;
  create(BOB, AUTH_SCOPE_READ, NULL, 0, key, &other);
  /* distinct creation times so the order is certain */
  for (int i = 0; i < 3; i++)
    sql("UPDATE api_keys SET created_at = %d WHERE id = '%s'", 1000 + i, k[i].id);
  struct auth_api_key out[8];
  struct err e;
  int n = auth_key_list(au, ALICE, out, 8, &e);
  cr_assert_eq(n, 3, "only alice's keys: %s", e.msg);
  for (int i = 0; i < 3; i++) cr_assert_str_eq(out[i].id, k[2 - i].id);
  cr_assert_eq(auth_key_list(au, ALICE, out, 2, &e), 2);
  cr_assert_str_eq(out[0].id, k[2].id);
  cr_assert_eq(auth_key_list(au, "ffffffffffffffffffffffffffffffff", out, 8, &e), 0);
  cr_assert_eq(auth_key_list(au, ALICE, out, -1, &e), -ERR_INVALID_PARAMETER_VALUE);
}
