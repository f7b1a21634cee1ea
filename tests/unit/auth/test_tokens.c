/* tests for auth/tokens: JWT access tokens (claims, signature, alg, issuer,
 * expiry, kid), signing key rotation with its grace, and refresh token
 * rotation with reuse detection, logout and concurrency. */
#include <criterion/criterion.h>
#include <jwt.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"

static char dir[64];
static char url[128];
static struct db *db;
static struct auth *au;

static void open_auth(int64_t access_ttl_s) {
  struct err e;
  if (au) auth_close(au);
  struct auth_opts o = {.access_ttl_s = access_ttl_s,
                        .pwhash_opslimit = crypto_pwhash_OPSLIMIT_MIN,
                        .pwhash_memlimit = crypto_pwhash_MEMLIMIT_MIN};
  cr_assert_eq(auth_open(&au, db, &o, &e), 0, "%s", e.msg);
}

static void setup(void) {
  struct err e;
  log_set_quiet(true);
  cr_assert_eq(base_init(), 0);
  str_copy(dir, sizeof dir, "/tmp/kiln-tokens-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  snprintf(url, sizeof url, "sqlite:%s/kiln.db", dir);
  cr_assert_eq(db_open(&db, url, NULL, &e), 0, "%s", e.msg);
  cr_assert_geq(db_migrate(db, &e), 0, "%s", e.msg);
  au = NULL;
  open_auth(900);
}

static void teardown(void) {
  auth_close(au);
  au = NULL;
  db_close(db);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(tokens, .init = setup, .fini = teardown);
TestSuite(jwt, .init = setup, .fini = teardown);
TestSuite(signing, .init = setup, .fini = teardown);

/* ---- helpers: raw SQL through the store ------------------------------- */

static int exec_fn(struct db_conn *c, void *arg, struct err *e) { return db_exec(c, arg, e); }

static void sql(const char *fmt, ...) KILN_PRINTF(1, 2);
static void sql(const char *fmt, ...) {
  char q[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q, sizeof q, fmt, ap);
  va_end(ap);
  struct err e;
  cr_assert_eq(db_write(db, exec_fn, q, &e), 0, "%s: %s", q, e.msg);
}

static int64_t count(const char *fmt, ...) KILN_PRINTF(1, 2);
static int64_t count(const char *fmt, ...) {
  char q[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q, sizeof q, fmt, ap);
  va_end(ap);
  struct err e;
  struct db_conn *c = db_reader_acquire(db, &e);
  cr_assert_not_null(c, "%s", e.msg);
  struct db_stmt *s = db_prepare(c, q, &e);
  cr_assert_not_null(s, "%s: %s", q, e.msg);
  cr_assert_eq(db_step(s, &e), DB_ROW, "%s", q);
  int64_t v = db_col_i64(s, 0);
  db_stmt_done(s);
  db_reader_release(db, c);
  return v;
}

static void add_user(struct auth_user *u, const char *username, bool is_admin, bool disabled) {
  memset(u, 0, sizeof *u);
  id_random_hex(u->id, 16);
  str_copy(u->username, sizeof u->username, username);
  u->is_admin = is_admin;
  u->disabled = disabled;
  sql("INSERT INTO users (id, username, created_at, updated_at, is_admin, disabled) "
      "VALUES ('%s', '%s', 1, 1, %d, %d)",
      u->id, username, is_admin, disabled);
}

static void stored_secret(const char *kid, uint8_t out[32]) {
  struct err e;
  struct db_conn *c = db_reader_acquire(db, &e);
  cr_assert_not_null(c);
  struct db_stmt *s = db_prepare(c, "SELECT secret FROM signing_keys WHERE kid = ?", &e);
  cr_assert_not_null(s, "%s", e.msg);
  db_bind_text(s, 1, kid);
  cr_assert_eq(db_step(s, &e), DB_ROW, "signing key %s is stored", kid);
  const char *hex = db_col_text(s, 0);
  cr_assert_eq(strlen(hex), 64, "secrets are 32 bytes, stored as hex");
  cr_assert_eq(hex_decode(out, 32, hex), 32);
  db_stmt_done(s);
  db_reader_release(db, c);
}

static void current_kid(char kid[33]) {
  struct err e;
  struct db_conn *c = db_reader_acquire(db, &e);
  cr_assert_not_null(c);
  struct db_stmt *s = db_prepare(c, "SELECT kid FROM signing_keys WHERE retired_at IS NULL", &e);
  cr_assert_not_null(s, "%s", e.msg);
  cr_assert_eq(db_step(s, &e), DB_ROW);
  str_copy(kid, 33, db_col_text(s, 0));
  cr_assert_eq(db_step(s, &e), DB_DONE, "exactly one current key");
  db_reader_release(db, c);
}

/* One base64url segment of a token, decoded to JSON. */
static json_t *segment_json(const char *tok, int which) {
  const char *p = tok;
  for (int i = 0; i < which; i++) {
    p = strchr(p, '.');
    cr_assert_not_null(p);
    p++;
  }
  const char *end = strchr(p, '.');
  size_t n = end ? (size_t)(end - p) : strlen(p);
  unsigned char raw[2048];
  size_t rawlen;
  cr_assert_eq(sodium_base642bin(raw, sizeof raw, p, n, NULL, &rawlen, NULL,
                                 sodium_base64_VARIANT_URLSAFE_NO_PADDING),
               0);
  json_error_t je;
  json_t *j = json_loadb((const char *)raw, rawlen, 0, &je);
  cr_assert_not_null(j, "%s", je.text);
  return j;
}

static void b64url(char *out, size_t cap, const char *s) {
  sodium_bin2base64(out, cap, (const unsigned char *)s, strlen(s),
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* A token signed by the test itself with libjwt, so each claim can be
 * chosen; kid NULL leaves the header without one. */
struct craft {
  const char *kid;
  const uint8_t *key;
  jwt_alg_t alg;
  const char *iss;
  const char *sub;
  long exp;
  bool adm;
};

static void craft(const struct craft *c, char *out, size_t cap) {
  jwt_t *j;
  cr_assert_eq(jwt_new(&j), 0);
  cr_assert_eq(jwt_set_alg(j, c->alg, c->key, c->key ? 32 : 0), 0);
  if (c->kid) cr_assert_eq(jwt_add_header(j, "kid", c->kid), 0);
  if (c->iss) jwt_add_grant(j, "iss", c->iss);
  jwt_add_grant(j, "sub", c->sub);
  jwt_add_grant(j, "name", "whoever");
  jwt_add_grant_bool(j, "adm", c->adm);
  jwt_add_grant_int(j, "iat", (long)(time_wall_ms() / 1000) - 10);
  if (c->exp) jwt_add_grant_int(j, "exp", c->exp); /* 0: no exp claim */
  jwt_add_grant(j, "jti", "0123456789abcdef0123456789abcdef");
  char *t = jwt_encode_str(j);
  cr_assert_not_null(t);
  cr_assert_lt(strlen(t), cap);
  str_copy(out, cap, t);
  free(t);
  jwt_free(j);
}

static long now_s(void) { return (long)(time_wall_ms() / 1000); }

static void assert_unauth(int rc, const struct err *e, const char *tok, const char *what) {
  cr_assert_eq(rc, -ERR_UNAUTHENTICATED, "%s: rc %d (%s)", what, rc, e->msg);
  cr_assert_eq(e->code, ERR_UNAUTHENTICATED, "%s", what);
  /* the message never echoes the token (nor its signature part) */
  if (tok && strlen(tok) > 20) {
    const char *sig = strrchr(tok, '.');
    cr_assert_null(strstr(e->msg, tok), "%s: message echoes the token", what);
    if (sig && strlen(sig + 1) > 8)
      cr_assert_null(strstr(e->msg, sig + 1), "%s: message echoes the signature", what);
  }
}

/* ---- tokens ------------------------------------------------------------------ */

Test(tokens, issue_then_verify_round_trips_with_the_right_claims) {
  struct auth_user u;
  struct auth_tokens t;
  struct auth_principal p;
  struct err e;
  add_user(&u, "alice", true, false);
  cr_assert_eq(count("SELECT COUNT(*) FROM signing_keys"), 0);
  cr_assert_eq(auth_tokens_issue(au, &u, &t, &e), 0, "%s", e.msg);
  cr_assert_eq(count("SELECT COUNT(*) FROM signing_keys"), 1, "first use creates a key");
  cr_assert_eq(t.expires_in, 900);

  /* refresh token: kiln_rt_ + 43 base62 chars, stored only as a hash */
  cr_assert(str_has_prefix(t.refresh_token, "kiln_rt_"));
  cr_assert_eq(strlen(t.refresh_token), 8 + 43);
  for (const char *c = t.refresh_token + 8; *c; c++)
    cr_assert((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z'),
              "base62 only");
  char hash[65];
  sha256_hex(t.refresh_token, strlen(t.refresh_token), hash);
  cr_assert_eq(count("SELECT COUNT(*) FROM refresh_tokens WHERE token_hash = '%s' AND user_id = "
                     "'%s' AND used_at IS NULL AND revoked_at IS NULL AND expires_at > %lld",
                     hash, u.id, (long long)time_wall_ms() + 29LL * 86400 * 1000),
               1, "stored hashed, for 30 days");
  cr_assert_eq(
      count("SELECT COUNT(*) FROM refresh_tokens WHERE token_hash = '%s'", t.refresh_token), 0,
      "never stored in plain");

  /* the JWT's header and claims */
  char kid[33];
  current_kid(kid);
  json_t *h = segment_json(t.access_token, 0);
  cr_assert_str_eq(json_string_value(json_object_get(h, "alg")), "HS256");
  cr_assert_str_eq(json_string_value(json_object_get(h, "kid")), kid);
  json_decref(h);
  json_t *c = segment_json(t.access_token, 1);
  cr_assert_str_eq(json_string_value(json_object_get(c, "sub")), u.id);
  cr_assert_str_eq(json_string_value(json_object_get(c, "name")), "alice");
  cr_assert_str_eq(json_string_value(json_object_get(c, "iss")), "kiln");
  cr_assert(json_is_true(json_object_get(c, "adm")));
  json_int_t iat = json_integer_value(json_object_get(c, "iat"));
  json_int_t exp = json_integer_value(json_object_get(c, "exp"));
  cr_assert_eq(exp - iat, 900);
  cr_assert_leq(iat, now_s());
  cr_assert_geq(iat, now_s() - 5);
  cr_assert_eq(strlen(json_string_value(json_object_get(c, "jti"))), 32);
  json_decref(c);

  cr_assert_eq(auth_jwt_verify(au, t.access_token, &p, &e), 0, "%s", e.msg);
  cr_assert_eq(p.kind, AUTH_JWT);
  cr_assert_str_eq(p.user_id, u.id);
  cr_assert_str_eq(p.username, "alice");
  cr_assert(p.is_admin);
  cr_assert_eq(p.scopes, AUTH_SCOPE_ALL);
  cr_assert_str_eq(p.project_id, "");
  cr_assert_str_eq(p.key_id, "");

  /* a second login is a second family, with distinct tokens */
  struct auth_tokens t2;
  cr_assert_eq(auth_tokens_issue(au, &u, &t2, &e), 0, "%s", e.msg);
  cr_assert_str_neq(t2.refresh_token, t.refresh_token);
  cr_assert_str_neq(t2.access_token, t.access_token, "jti differs");
  cr_assert_eq(count("SELECT COUNT(DISTINCT family_id) FROM refresh_tokens"), 2,
               "two logins, two families");
  cr_assert_eq(count("SELECT COUNT(*) FROM signing_keys"), 1, "the key is reused");
}

Test(tokens, admin_rights_come_from_the_users_row_not_the_claim) {
  struct auth_user u;
  struct auth_tokens t;
  struct auth_principal p;
  struct err e;
  add_user(&u, "bob", false, false);
  u.is_admin = true; /* a caller's stale struct must not make bob an admin */
  cr_assert_eq(auth_tokens_issue(au, &u, &t, &e), 0, "%s", e.msg);
  json_t *c = segment_json(t.access_token, 1);
  cr_assert(json_is_false(json_object_get(c, "adm")), "the claim follows the row");
  json_decref(c);
  cr_assert_eq(auth_jwt_verify(au, t.access_token, &p, &e), 0, "%s", e.msg);
  cr_assert_not(p.is_admin);

  /* a validly signed token claiming adm=true still gives no admin rights */
  char kid[33], tok[2048];
  uint8_t key[32];
  current_kid(kid);
  stored_secret(kid, key);
  struct craft cf = {kid, key, JWT_ALG_HS256, "kiln", u.id, now_s() + 60, true};
  craft(&cf, tok, sizeof tok);
  cr_assert_eq(auth_jwt_verify(au, tok, &p, &e), 0, "%s", e.msg);
  cr_assert_not(p.is_admin);
  cr_assert_str_eq(p.username, "bob", "the name comes from the row too");

  /* and promotion in the row shows at once, without a new token */
  sql("UPDATE users SET is_admin = 1 WHERE id = '%s'", u.id);
  cr_assert_eq(auth_jwt_verify(au, t.access_token, &p, &e), 0, "%s", e.msg);
  cr_assert(p.is_admin);
}

Test(tokens, refresh_rotates_and_reuse_revokes_the_whole_family) {
  struct auth_user u;
  struct auth_tokens t1, t2, t3, other, x;
  struct auth_principal p;
  struct err e;
  add_user(&u, "carol", false, false);
  cr_assert_eq(auth_tokens_issue(au, &u, &t1, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_tokens_issue(au, &u, &other, &e), 0, "another login of the same user");

  cr_assert_eq(auth_tokens_refresh(au, t1.refresh_token, &t2, &e), 0, "%s", e.msg);
  cr_assert_str_neq(t2.refresh_token, t1.refresh_token, "a new refresh token every time");
  cr_assert_eq(t2.expires_in, 900);
  cr_assert_eq(auth_jwt_verify(au, t2.access_token, &p, &e), 0, "%s", e.msg);
  cr_assert_str_eq(p.user_id, u.id);
  cr_assert_str_eq(p.username, "carol");
  char h1[65], h2[65];
  sha256_hex(t1.refresh_token, strlen(t1.refresh_token), h1);
  sha256_hex(t2.refresh_token, strlen(t2.refresh_token), h2);
  cr_assert_eq(count("SELECT COUNT(*) FROM refresh_tokens a JOIN refresh_tokens b ON "
                     "a.family_id = b.family_id WHERE a.token_hash = '%s' AND b.token_hash = '%s' "
                     "AND a.used_at IS NOT NULL AND b.used_at IS NULL",
                     h1, h2),
               1, "same family; the old one is marked used");

  cr_assert_eq(auth_tokens_refresh(au, t2.refresh_token, &t3, &e), 0, "%s", e.msg);

  /* presenting t1 again: reuse */
  int rc = auth_tokens_refresh(au, t1.refresh_token, &x, &e);
  assert_unauth(rc, &e, t1.refresh_token, "reuse");
  cr_assert_str_eq(e.msg, "refresh token reuse detected; all sessions of this login were revoked");
  cr_assert_str_eq(x.refresh_token, "", "nothing is handed out on failure");
  cr_assert_str_eq(x.access_token, "");
  cr_assert_eq(count("SELECT COUNT(*) FROM refresh_tokens a JOIN refresh_tokens b ON "
                     "a.family_id = b.family_id WHERE a.token_hash = '%s' AND b.revoked_at IS NULL",
                     h1),
               0, "every token of the family is revoked");
  rc = auth_tokens_refresh(au, t3.refresh_token, &x, &e);
  assert_unauth(rc, &e, t3.refresh_token, "the newest token of the family");
  cr_assert_str_eq(e.msg, "refresh token was revoked");

  /* the user's other login is untouched */
  cr_assert_eq(auth_tokens_refresh(au, other.refresh_token, &x, &e), 0, "%s", e.msg);
}

Test(tokens, unknown_malformed_and_expired_refresh_tokens_fail) {
  struct auth_user u;
  struct auth_tokens t, x;
  struct err e;
  add_user(&u, "dave", false, false);
  assert_unauth(auth_tokens_refresh(au, NULL, &x, &e), &e, NULL, "NULL");
  assert_unauth(auth_tokens_refresh(au, "", &x, &e), &e, NULL, "empty");
  assert_unauth(auth_tokens_refresh(au, "kiln_rt_nope", &x, &e), &e, NULL, "unknown");
  cr_assert_str_eq(e.msg, "invalid refresh token");
  char longtok[1024];
  memset(longtok, 'A', sizeof longtok - 1);
  memcpy(longtok, "kiln_rt_", 8);
  longtok[sizeof longtok - 1] = 0;
  assert_unauth(auth_tokens_refresh(au, longtok, &x, &e), &e, longtok, "too long");

  cr_assert_eq(auth_tokens_issue(au, &u, &t, &e), 0, "%s", e.msg);
  char h[65];
  sha256_hex(t.refresh_token, strlen(t.refresh_token), h);
  sql("UPDATE refresh_tokens SET expires_at = %lld WHERE token_hash = '%s'",
      (long long)time_wall_ms() - 1, h);
  assert_unauth(auth_tokens_refresh(au, t.refresh_token, &x, &e), &e, t.refresh_token, "expired");
  cr_assert_str_eq(e.msg, "refresh token has expired");
  cr_assert_eq(count("SELECT COUNT(*) FROM refresh_tokens"), 1, "a failed refresh issues nothing");
}

Test(tokens, logout_revokes_the_family_and_is_idempotent) {
  struct auth_user u;
  struct auth_tokens t1, t2, x;
  struct err e;
  add_user(&u, "erin", false, false);
  cr_assert_eq(auth_tokens_issue(au, &u, &t1, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_tokens_refresh(au, t1.refresh_token, &t2, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_tokens_revoke(au, t2.refresh_token, &e), 0, "%s", e.msg);
  assert_unauth(auth_tokens_refresh(au, t2.refresh_token, &x, &e), &e, t2.refresh_token,
                "after logout");
  cr_assert_str_eq(e.msg, "refresh token was revoked");
  cr_assert_eq(count("SELECT COUNT(*) FROM refresh_tokens WHERE revoked_at IS NULL"), 0);
  cr_assert_eq(auth_tokens_revoke(au, t2.refresh_token, &e), 0, "again: still fine");
  cr_assert_eq(auth_tokens_revoke(au, t1.refresh_token, &e), 0, "an older member: fine");
  cr_assert_eq(auth_tokens_revoke(au, "kiln_rt_unknown", &e), 0, "unknown: fine");
  cr_assert_eq(auth_tokens_revoke(au, "garbage", &e), 0, "not even ours: fine");
  cr_assert_eq(auth_tokens_revoke(au, NULL, &e), -ERR_INVALID_PARAMETER_VALUE);
}

Test(tokens, disabled_or_deleted_users_lose_refresh_and_access) {
  struct auth_user u, v;
  struct auth_tokens t, tv, x;
  struct auth_principal p;
  struct err e;
  add_user(&u, "frank", false, false);
  add_user(&v, "grace", false, false);
  cr_assert_eq(auth_tokens_issue(au, &u, &t, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_tokens_issue(au, &v, &tv, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_jwt_verify(au, t.access_token, &p, &e), 0, "%s", e.msg);

  sql("UPDATE users SET disabled = 1 WHERE id = '%s'", u.id);
  assert_unauth(auth_jwt_verify(au, t.access_token, &p, &e), &e, t.access_token, "disabled access");
  cr_assert_eq(p.kind, AUTH_ANON, "no principal on failure");
  cr_assert_str_eq(p.user_id, "");
  assert_unauth(auth_tokens_refresh(au, t.refresh_token, &x, &e), &e, t.refresh_token,
                "disabled refresh");
  u.disabled = true;
  assert_unauth(auth_tokens_issue(au, &u, &x, &e), &e, NULL, "no new tokens for disabled users");
  u.disabled = false; /* a stale struct: the row still says disabled */
  assert_unauth(auth_tokens_issue(au, &u, &x, &e), &e, NULL, "the row decides");

  /* re-enabled: the untouched refresh token works again (it was never used) */
  sql("UPDATE users SET disabled = 0 WHERE id = '%s'", u.id);
  cr_assert_eq(auth_tokens_refresh(au, t.refresh_token, &x, &e), 0, "%s", e.msg);

  sql("DELETE FROM users WHERE id = '%s'", v.id);
  assert_unauth(auth_jwt_verify(au, tv.access_token, &p, &e), &e, tv.access_token, "deleted user");
  assert_unauth(auth_tokens_refresh(au, tv.refresh_token, &x, &e), &e, NULL, "deleted refresh");
}

struct racer {
  pthread_barrier_t *bar;
  const char *token;
  struct auth_tokens out;
  struct err e;
  int rc;
};

static void *race(void *arg) {
  struct racer *r = arg;
  pthread_barrier_wait(r->bar);
  r->rc = auth_tokens_refresh(au, r->token, &r->out, &r->e);
  return NULL;
}

Test(tokens, two_concurrent_refreshes_of_one_token_exactly_one_wins) {
  struct auth_user u;
  struct err e;
  add_user(&u, "heidi", false, false);
  for (int round = 0; round < 10; round++) {
    struct auth_tokens t, x;
    cr_assert_eq(auth_tokens_issue(au, &u, &t, &e), 0, "%s", e.msg);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    struct racer r[2] = {{.bar = &bar, .token = t.refresh_token},
                         {.bar = &bar, .token = t.refresh_token}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&th[i], NULL, race, &r[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    int wins = (r[0].rc == 0) + (r[1].rc == 0);
    cr_assert_eq(wins, 1, "round %d: exactly one refresh succeeds (%d, %d)", round, r[0].rc,
                 r[1].rc);
    struct racer *loser = r[0].rc == 0 ? &r[1] : &r[0];
    struct racer *winner = r[0].rc == 0 ? &r[0] : &r[1];
    cr_assert_eq(loser->rc, -ERR_UNAUTHENTICATED);
    cr_assert_str_eq(loser->e.msg,
                     "refresh token reuse detected; all sessions of this login were revoked");
    /* the second presentation is indistinguishable from a replay, so the
     * family (the winner's new refresh token included) is revoked */
    assert_unauth(auth_tokens_refresh(au, winner->out.refresh_token, &x, &e), &e, NULL,
                  "winner's successor after the race");
  }
}

/* ---- jwt ---------------------------------------------------------------------- */

/* A user, one issued token, and the current key's kid and secret. */
struct fixture {
  struct auth_user u;
  struct auth_tokens t;
  char kid[33];
  uint8_t key[32];
};

static void fixture(struct fixture *f) {
  struct err e;
  add_user(&f->u, "ivan", false, false);
  cr_assert_eq(auth_tokens_issue(au, &f->u, &f->t, &e), 0, "%s", e.msg);
  current_kid(f->kid);
  stored_secret(f->kid, f->key);
}

Test(jwt, expired_tokens_fail_and_crafting_is_sound) {
  struct fixture f;
  struct auth_principal p;
  struct err e;
  char tok[2048];
  fixture(&f);
  /* control: the crafted shape verifies when everything is right */
  struct craft good = {f.kid, f.key, JWT_ALG_HS256, "kiln", f.u.id, now_s() + 60, false};
  craft(&good, tok, sizeof tok);
  cr_assert_eq(auth_jwt_verify(au, tok, &p, &e), 0, "%s", e.msg);
  cr_assert_str_eq(p.user_id, f.u.id);

  struct craft old = good;
  old.exp = now_s() - 1;
  craft(&old, tok, sizeof tok);
  assert_unauth(auth_jwt_verify(au, tok, &p, &e), &e, tok, "expired");
  cr_assert_str_eq(e.msg, "access token has expired");
  old.exp = now_s();
  craft(&old, tok, sizeof tok);
  assert_unauth(auth_jwt_verify(au, tok, &p, &e), &e, tok, "exp == now");
  old.exp = 0;
  craft(&old, tok, sizeof tok);
  assert_unauth(auth_jwt_verify(au, tok, &p, &e), &e, tok, "no exp at all");
  cr_assert_str_eq(e.msg, "invalid access token: no expiry");
}

Test(jwt, a_short_ttl_token_expires_for_real) {
  struct auth_user u;
  struct auth_tokens t;
  struct auth_principal p;
  struct err e;
  open_auth(1);
  add_user(&u, "judy", false, false);
  cr_assert_eq(auth_tokens_issue(au, &u, &t, &e), 0, "%s", e.msg);
  cr_assert_eq(t.expires_in, 1);
  usleep(2100 * 1000);
  assert_unauth(auth_jwt_verify(au, t.access_token, &p, &e), &e, t.access_token, "after the TTL");
  cr_assert_str_eq(e.msg, "access token has expired");
}

Test(jwt, tampered_payload_or_signature_fails) {
  struct fixture f;
  struct auth_principal p;
  struct err e;
  fixture(&f);
  const char *tok = f.t.access_token;
  const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
  cr_assert(d1 && d2 && d2 > d1);

  /* payload: become someone else (an admin), keep the old signature */
  struct auth_user boss;
  add_user(&boss, "boss", true, false);
  json_t *c = segment_json(tok, 1);
  json_object_set_new(c, "sub", json_string(boss.id));
  char *payload = json_dumps(c, JSON_COMPACT);
  json_decref(c);
  char b64[1024], forged[2048];
  b64url(b64, sizeof b64, payload);
  free(payload);
  snprintf(forged, sizeof forged, "%.*s.%s%s", (int)(d1 - tok), tok, b64, d2);
  assert_unauth(auth_jwt_verify(au, forged, &p, &e), &e, forged, "tampered payload");

  /* signature: flip one character in the middle */
  char bad[2048];
  str_copy(bad, sizeof bad, tok);
  char *mid = bad + (d2 - tok) + 10;
  *mid = *mid == 'A' ? 'B' : 'A';
  assert_unauth(auth_jwt_verify(au, bad, &p, &e), &e, bad, "flipped signature");
  /* no signature at all */
  snprintf(bad, sizeof bad, "%.*s.", (int)(d2 - tok), tok);
  assert_unauth(auth_jwt_verify(au, bad, &p, &e), &e, bad, "empty signature");
  /* signed with another secret */
  uint8_t other[32];
  randombytes_buf(other, sizeof other);
  struct craft cf = {f.kid, other, JWT_ALG_HS256, "kiln", f.u.id, now_s() + 60, false};
  craft(&cf, bad, sizeof bad);
  assert_unauth(auth_jwt_verify(au, bad, &p, &e), &e, bad, "wrong secret");
  /* the untouched token still verifies */
  cr_assert_eq(auth_jwt_verify(au, tok, &p, &e), 0, "%s", e.msg);
}

Test(jwt, alg_none_and_other_algorithms_are_refused) {
  struct fixture f;
  struct auth_principal p;
  struct err e;
  fixture(&f);
  const char *tok = f.t.access_token;
  const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
  char hdr[256], b64[512], forged[2048];

  /* the classic: alg none, no signature, the genuine payload */
  const char *algs[] = {"none", "None", "NONE", "HS512", "RS256"};
  for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
    snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", algs[i], f.kid);
    b64url(b64, sizeof b64, hdr);
    snprintf(forged, sizeof forged, "%s%.*s.", b64, (int)(d2 - d1), d1);
    assert_unauth(auth_jwt_verify(au, forged, &p, &e), &e, forged, algs[i]);
    /* and with the genuine signature kept */
    snprintf(forged, sizeof forged, "%s%s", b64, d1);
    assert_unauth(auth_jwt_verify(au, forged, &p, &e), &e, forged, algs[i]);
  }
  /* libjwt's own alg=none token with our kid */
  struct craft none = {f.kid, NULL, JWT_ALG_NONE, "kiln", f.u.id, now_s() + 60, true};
  craft(&none, forged, sizeof forged);
  assert_unauth(auth_jwt_verify(au, forged, &p, &e), &e, forged, "libjwt alg none");
  /* HS512 (and HS384) with the right secret are still not HS256 */
  struct craft hs = {f.kid, f.key, JWT_ALG_HS512, "kiln", f.u.id, now_s() + 60, false};
  craft(&hs, forged, sizeof forged);
  assert_unauth(auth_jwt_verify(au, forged, &p, &e), &e, forged, "HS512");
  hs.alg = JWT_ALG_HS384;
  craft(&hs, forged, sizeof forged);
  assert_unauth(auth_jwt_verify(au, forged, &p, &e), &e, forged, "HS384");
}

Test(jwt, wrong_or_missing_issuer_fails) {
  struct fixture f;
  struct auth_principal p;
  struct err e;
  char tok[2048];
  fixture(&f);
  struct craft cf = {f.kid, f.key, JWT_ALG_HS256, "evil", f.u.id, now_s() + 60, false};
  craft(&cf, tok, sizeof tok);
  assert_unauth(auth_jwt_verify(au, tok, &p, &e), &e, tok, "wrong iss");
  cf.iss = "kilnx";
  craft(&cf, tok, sizeof tok);
  assert_unauth(auth_jwt_verify(au, tok, &p, &e), &e, tok, "iss with a suffix");
  cf.iss = NULL;
  craft(&cf, tok, sizeof tok);
  assert_unauth(auth_jwt_verify(au, tok, &p, &e), &e, tok, "no iss");
}

Test(jwt, unknown_or_missing_kid_and_bad_subjects_fail) {
  struct fixture f;
  struct auth_principal p;
  struct err e;
  char tok[2048], kid[33];
  fixture(&f);
  id_random_hex(kid, 16);
  struct craft cf = {kid, f.key, JWT_ALG_HS256, "kiln", f.u.id, now_s() + 60, false};
  craft(&cf, tok, sizeof tok);
  assert_unauth(auth_jwt_verify(au, tok, &p, &e), &e, tok, "unknown kid, right secret");
  cf.kid = NULL;
  craft(&cf, tok, sizeof tok);
  assert_unauth(auth_jwt_verify(au, tok, &p, &e), &e, tok, "no kid");
  cf.kid = "' OR 1=1 --";
  craft(&cf, tok, sizeof tok);
  assert_unauth(auth_jwt_verify(au, tok, &p, &e), &e, tok, "kid is not an id");
  cf.kid = f.kid;
  cf.sub = "0123456789abcdef0123456789abcdef"; /* well formed, no such user */
  craft(&cf, tok, sizeof tok);
  assert_unauth(auth_jwt_verify(au, tok, &p, &e), &e, tok, "no such user");
  cf.sub = "not-an-id";
  craft(&cf, tok, sizeof tok);
  assert_unauth(auth_jwt_verify(au, tok, &p, &e), &e, tok, "malformed sub");
}

Test(jwt, garbage_input_is_refused_without_echo) {
  struct fixture f;
  struct auth_principal p;
  struct err e;
  fixture(&f);
  const char *bad[] = {"",
                       "abc",
                       "a.b.c",
                       "..",
                       ".",
                       "eyJhbGciOiJIUzI1NiJ9..",
                       "%%%.%%%.%%%",
                       "eyJhbGciOiJIUzI1NiIsImtpZCI6IjEyMyJ9.e30.AAAA"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_unauth(auth_jwt_verify(au, bad[i], &p, &e), &e, bad[i], bad[i]);
  assert_unauth(auth_jwt_verify(au, NULL, &p, &e), &e, NULL, "NULL");
  static char huge[8192];
  memset(huge, 'e', sizeof huge - 1);
  assert_unauth(auth_jwt_verify(au, huge, &p, &e), &e, huge, "huge");
  /* a token with a trailing extra segment */
  char tok[2100];
  snprintf(tok, sizeof tok, "%s.x", f.t.access_token);
  assert_unauth(auth_jwt_verify(au, tok, &p, &e), &e, tok, "four segments");
}

/* ---- signing ------------------------------------------------------------------ */

Test(signing, rotation_keeps_old_tokens_valid_for_the_grace_then_not) {
  struct auth_user u;
  struct auth_tokens t1, t2;
  struct auth_principal p;
  struct err e;
  char kid1[33], kid2[33];
  add_user(&u, "kim", false, false);
  cr_assert_eq(auth_tokens_issue(au, &u, &t1, &e), 0, "%s", e.msg);
  current_kid(kid1);

  cr_assert_eq(auth_signing_key_rotate(au, kid2, &e), 0, "%s", e.msg);
  cr_assert_eq(strlen(kid2), 32);
  cr_assert_str_neq(kid1, kid2);
  char cur[33];
  current_kid(cur);
  cr_assert_str_eq(cur, kid2, "the new key is the only current one");
  cr_assert_eq(count("SELECT COUNT(*) FROM signing_keys WHERE kid = '%s' AND retired_at IS NOT "
                     "NULL AND retired_at <= %lld",
                     kid1, (long long)time_wall_ms()),
               1, "the old key is retired now");

  cr_assert_eq(auth_jwt_verify(au, t1.access_token, &p, &e), 0, "grace: %s", e.msg);
  cr_assert_eq(auth_tokens_issue(au, &u, &t2, &e), 0, "%s", e.msg);
  json_t *h = segment_json(t2.access_token, 0);
  cr_assert_str_eq(json_string_value(json_object_get(h, "kid")), kid2,
                   "new tokens use the new key");
  json_decref(h);
  h = segment_json(t1.access_token, 0);
  cr_assert_str_eq(json_string_value(json_object_get(h, "kid")), kid1);
  json_decref(h);

  /* past the grace (retired more than one access TTL ago) */
  sql("UPDATE signing_keys SET retired_at = %lld WHERE kid = '%s'",
      (long long)time_wall_ms() - 901LL * 1000, kid1);
  assert_unauth(auth_jwt_verify(au, t1.access_token, &p, &e), &e, t1.access_token, "after grace");
  cr_assert_eq(auth_jwt_verify(au, t2.access_token, &p, &e), 0, "%s", e.msg);

  /* refreshing signs with the current key as well */
  struct auth_tokens t3;
  cr_assert_eq(auth_tokens_refresh(au, t1.refresh_token, &t3, &e), 0, "%s", e.msg);
  h = segment_json(t3.access_token, 0);
  cr_assert_str_eq(json_string_value(json_object_get(h, "kid")), kid2);
  json_decref(h);
}

Test(signing, rotation_without_any_key_and_repeated_rotation) {
  struct err e;
  char k1[33], k2[33], k3[33];
  cr_assert_eq(auth_signing_key_rotate(au, k1, &e), 0, "on an empty table: %s", e.msg);
  cr_assert_eq(count("SELECT COUNT(*) FROM signing_keys"), 1);
  cr_assert_eq(auth_signing_key_rotate(au, k2, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_signing_key_rotate(au, k3, &e), 0, "%s", e.msg);
  cr_assert_eq(count("SELECT COUNT(*) FROM signing_keys WHERE retired_at IS NULL"), 1);
  cr_assert_eq(
      count("SELECT COUNT(*) FROM signing_keys WHERE retired_at IS NULL AND kid = '%s'", k3), 1);
  cr_assert_eq(count("SELECT COUNT(*) FROM signing_keys"), 3, "keys in their grace are kept");
  cr_assert_eq(count("SELECT COUNT(*) FROM signing_keys WHERE length(secret) = 64"), 3);

  /* keys past their grace are dropped by the next rotation */
  sql("UPDATE signing_keys SET retired_at = 1 WHERE kid = '%s'", k1);
  cr_assert_eq(auth_signing_key_rotate(au, NULL, &e), 0, "%s", e.msg);
  cr_assert_eq(count("SELECT COUNT(*) FROM signing_keys WHERE kid = '%s'", k1), 0,
               "retired past its grace");
  cr_assert_eq(count("SELECT COUNT(*) FROM signing_keys"), 3);

  /* a token issued now names the current key */
  struct auth_user u;
  struct auth_tokens t;
  struct auth_principal p;
  char cur[33];
  add_user(&u, "leo", false, false);
  cr_assert_eq(auth_tokens_issue(au, &u, &t, &e), 0, "%s", e.msg);
  current_kid(cur);
  json_t *h = segment_json(t.access_token, 0);
  cr_assert_str_eq(json_string_value(json_object_get(h, "kid")), cur);
  json_decref(h);
  cr_assert_eq(auth_jwt_verify(au, t.access_token, &p, &e), 0, "%s", e.msg);
}
