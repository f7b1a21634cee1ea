/* auth/tokens: short-lived HS256 access tokens (JWT, `kid`-keyed signing keys
 * that rotate without logging anyone out) and opaque refresh tokens that
 * rotate on every use, with reuse detection per login family. */
#include "auth.h"

#include <errno.h>
#include <jwt.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_ISSUER "kiln"
#define REFRESH_PREFIX "kiln_rt_"
#define SECRET_BYTES 32
/* Far above anything we issue (ours are ~400 bytes); bounds the work an
 * attacker can make us do before the signature check. */
#define JWT_MAX_LEN 4096
#define JWT_HEADER_MAX_B64 512
/* Presented refresh tokens longer than this cannot be ours. */
#define REFRESH_MAX_LEN 256

/* Signing keys are read from the store on every use, through the caller's
 * connection: one indexed row, and no per-process cache that could miss a
 * rotation done by another server process sharing the database. */
struct skey {
  char kid[AUTH_ID_LEN + 1];
  uint8_t secret[SECRET_BYTES];
};

/* The code a callee left in e, for callees (db_prepare) that report failure
 * by returning NULL. */
static int tok_errc(const struct err *e) {
  return (e && e->code != ERR_OK) ? -(int)e->code : -ERR_INTERNAL;
}

static bool is_id(const char *s) {
  if (!s) return false;
  size_t i = 0;
  for (; s[i]; i++) {
    if (i >= AUTH_ID_LEN) return false;
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return i == AUTH_ID_LEN;
}

/* A fresh refresh token and the hash we store for it. */
static void refresh_new(char token[96], char hash[65]) {
  secret_token_new(REFRESH_PREFIX, token, 96, hash);
}

/* ---- signing keys ------------------------------------------------------ */

/* Stored form of a secret: 64 hex chars, or with a master key
 * "x1:" + hex(nonce || XChaCha20-Poly1305(secret, ad = kid)); binding the
 * kid means a sealed secret copied onto another row does not open. */
#define SEALED_PREFIX "x1:"
#define SEALED_BYTES (crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + SECRET_BYTES + \
                      crypto_aead_xchacha20poly1305_ietf_ABYTES)
#define STORED_MAX (sizeof SEALED_PREFIX - 1 + 2 * SEALED_BYTES + 1)

static void secret_seal(const struct auth_opts *o, const char *kid, const uint8_t secret[SECRET_BYTES],
                        char out[STORED_MAX]) {
  if (!o->has_master_key) {
    hex_encode(out, secret, SECRET_BYTES);
    return;
  }
  uint8_t buf[SEALED_BYTES];
  const size_t nb = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
  randombytes_buf(buf, nb);
  crypto_aead_xchacha20poly1305_ietf_encrypt(buf + nb, NULL, secret, SECRET_BYTES, (const uint8_t *)kid,
                                             strlen(kid), NULL, buf, o->master_key);
  memcpy(out, SEALED_PREFIX, sizeof SEALED_PREFIX - 1);
  hex_encode(out + sizeof SEALED_PREFIX - 1, buf, sizeof buf);
}

static int secret_open(const struct auth_opts *o, const char *kid, const char *text,
                       uint8_t out[SECRET_BYTES], struct err *e) {
  if (text && str_has_prefix(text, SEALED_PREFIX)) {
    uint8_t buf[SEALED_BYTES];
    const size_t nb = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    const char *hex = text + sizeof SEALED_PREFIX - 1;
    if (strlen(hex) != 2 * SEALED_BYTES || hex_decode(buf, sizeof buf, hex) != (int)sizeof buf)
      return err_set(e, ERR_DATA_CORRUPTED, "a stored token signing key is malformed");
    if (!o->has_master_key)
      return err_set(e, ERR_NOT_READY,
                     "token signing keys are sealed with a master key: start the server with the "
                     "same KILN_MASTER_KEY (or --master-key-file)");
    unsigned long long n = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &n, NULL, buf + nb, sizeof buf - nb,
                                                   (const uint8_t *)kid, strlen(kid), buf,
                                                   o->master_key) != 0 ||
        n != SECRET_BYTES)
      return err_set(e, ERR_DATA_CORRUPTED,
                     "a token signing key does not open with this master key (wrong key, or the "
                     "row was altered)");
    return 0;
  }
  /* plain hex: written before a master key was configured */
  if (!text || strlen(text) != 2 * SECRET_BYTES || hex_decode(out, SECRET_BYTES, text) != SECRET_BYTES)
    return err_set(e, ERR_DATA_CORRUPTED, "a stored token signing key is malformed");
  return 0;
}

/* Inserts a new current key, sealed when a master key is configured. */
static int key_insert(struct db_conn *c, const struct auth_opts *o, int64_t now, struct skey *out,
                      struct err *e) {
  char hex[STORED_MAX];
  id_random_hex(out->kid, AUTH_ID_LEN / 2);
  randombytes_buf(out->secret, SECRET_BYTES);
  secret_seal(o, out->kid, out->secret, hex);
  struct db_stmt *s =
      db_prepare(c, "INSERT INTO signing_keys (kid, secret, created_at) VALUES (?, ?, ?)", e);
  if (!s) {
    sodium_memzero(hex, sizeof hex);
    return tok_errc(e);
  }
  db_bind_text(s, 1, out->kid);
  db_bind_text(s, 2, hex);
  db_bind_i64(s, 3, now);
  int rc = db_step(s, e);
  db_stmt_done(s); /* drops the bound copy of the secret */
  sodium_memzero(hex, sizeof hex);
  return rc < 0 ? rc : 0;
}

/* The key new tokens are signed with; on a writer connection with create
 * set, the first one is made when none exists (first start). */
static int key_current(struct db_conn *c, const struct auth_opts *o, bool create, int64_t now,
                       struct skey *out, struct err *e) {
  struct db_stmt *s = db_prepare(c,
                                 "SELECT kid, secret FROM signing_keys WHERE retired_at IS NULL "
                                 "ORDER BY created_at DESC, kid DESC LIMIT 1",
                                 e);
  if (!s) return tok_errc(e);
  int rc = db_step(s, e);
  if (rc < 0) return rc;
  if (rc == DB_ROW) {
    const char *kid = db_col_text(s, 0);
    if (!is_id(kid)) {
      db_stmt_done(s);
      return err_set(e, ERR_DATA_CORRUPTED, "a stored token signing key id is malformed");
    }
    str_copy(out->kid, sizeof out->kid, kid);
    rc = secret_open(o, out->kid, db_col_text(s, 1), out->secret, e);
    db_stmt_done(s);
    return rc;
  }
  db_stmt_done(s);
  if (!create) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "no token signing key exists yet");
  return key_insert(c, o, now, out, e);
}

/* ---- access tokens ------------------------------------------------------ */

static int jwt_sign(const struct skey *k, const char *user_id, const char *username, bool adm,
                    int64_t now_ms, int64_t ttl_s, char *out, size_t cap, struct err *e) {
  jwt_t *j = NULL;
  char jti[AUTH_ID_LEN + 1];
  id_random_hex(jti, AUTH_ID_LEN / 2);
  long iat = (long)(now_ms / 1000);
  if (jwt_new(&j) != 0) return err_set(e, ERR_NO_MEMORY, "cannot create an access token");
  int rc = jwt_set_alg(j, JWT_ALG_HS256, k->secret, SECRET_BYTES);
  rc = rc ? rc : jwt_add_header(j, "kid", k->kid);
  rc = rc ? rc : jwt_add_grant(j, "iss", TOKEN_ISSUER);
  rc = rc ? rc : jwt_add_grant(j, "sub", user_id);
  rc = rc ? rc : jwt_add_grant(j, "name", username);
  rc = rc ? rc : jwt_add_grant_bool(j, "adm", adm ? 1 : 0);
  rc = rc ? rc : jwt_add_grant_int(j, "iat", iat);
  rc = rc ? rc : jwt_add_grant_int(j, "exp", iat + (long)ttl_s);
  rc = rc ? rc : jwt_add_grant(j, "jti", jti);
  char *tok = rc ? NULL : jwt_encode_str(j);
  jwt_free(j); /* scrubs its copy of the key */
  if (!tok) return err_set(e, ERR_NO_MEMORY, "cannot encode an access token");
  size_t n = strlen(tok);
  if (n >= cap) {
    free(tok);
    return err_set(e, ERR_INTERNAL, "access token does not fit its buffer");
  }
  memcpy(out, tok, n + 1);
  free(tok);
  return 0;
}

/* The header's kid, read before any key is known. Only HS256 is accepted:
 * alg=none and the other algorithms are refused here and again after the
 * signature check. */
static int jwt_header_kid(const char *tok, char kid[AUTH_ID_LEN + 1]) {
  const char *dot = strchr(tok, '.');
  if (!dot || dot == tok || dot - tok > JWT_HEADER_MAX_B64) return -1;
  unsigned char raw[JWT_HEADER_MAX_B64];
  size_t rawlen = 0;
  if (sodium_base642bin(raw, sizeof raw, tok, (size_t)(dot - tok), NULL, &rawlen, NULL,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
    return -1;
  json_error_t je;
  json_t *h = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, &je);
  if (!h) return -1;
  int rc = -1;
  const char *alg = json_string_value(json_object_get(h, "alg"));
  const char *k = json_string_value(json_object_get(h, "kid"));
  if (json_is_object(h) && str_eq(alg, "HS256") && is_id(k)) {
    str_copy(kid, AUTH_ID_LEN + 1, k);
    rc = 0;
  }
  json_decref(h);
  return rc;
}

/* Messages for a bad presented token say which check failed (clients and
 * operators need that) but never echo any part of the token. */
static int jwt_invalid(struct err *e, const char *why) {
  return err_set(e, ERR_UNAUTHENTICATED, "invalid access token: %s", why);
}

int auth_jwt_verify(struct auth *a, const char *jwt, struct auth_principal *out, struct err *e) {
  memset(out, 0, sizeof *out);
  if (!jwt || !*jwt) return err_set(e, ERR_UNAUTHENTICATED, "missing access token");
  if (strnlen(jwt, JWT_MAX_LEN + 1) > JWT_MAX_LEN) return jwt_invalid(e, "too long");
  char kid[AUTH_ID_LEN + 1];
  if (jwt_header_kid(jwt, kid) < 0) return jwt_invalid(e, "malformed header");

  int64_t now = time_wall_ms();
  int64_t ttl_ms = auth_options(a)->access_ttl_s * 1000;
  struct db *db = auth_db(a);
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return tok_errc(e);
  uint8_t secret[SECRET_BYTES];
  jwt_t *j = NULL;
  int rc;

  struct db_stmt *s = db_prepare(c, "SELECT secret, retired_at FROM signing_keys WHERE kid = ?", e);
  if (!s) {
    rc = tok_errc(e);
    goto done;
  }
  db_bind_text(s, 1, kid);
  if ((rc = db_step(s, e)) < 0) goto done;
  /* A retired key keeps verifying for one access TTL after its retirement:
   * every token it signed has expired by then. */
  if (rc != DB_ROW || (!db_col_null(s, 1) && db_col_i64(s, 1) + ttl_ms <= now)) {
    db_stmt_done(s);
    rc = jwt_invalid(e, "unknown or retired signing key");
    goto done;
  }
  rc = secret_open(auth_options(a), kid, db_col_text(s, 0), secret, e);
  db_stmt_done(s);
  if (rc < 0) goto done;

  if (jwt_decode(&j, jwt, secret, SECRET_BYTES) != 0 || !j) {
    j = NULL;
    rc = jwt_invalid(e, "bad signature or encoding");
    goto done;
  }
  if (jwt_get_alg(j) != JWT_ALG_HS256) {
    rc = jwt_invalid(e, "unsupported algorithm");
    goto done;
  }
  if (!str_eq(jwt_get_grant(j, "iss"), TOKEN_ISSUER)) {
    rc = jwt_invalid(e, "wrong issuer");
    goto done;
  }
  errno = 0;
  long exp = jwt_get_grant_int(j, "exp");
  if (errno != 0) {
    rc = jwt_invalid(e, "no expiry");
    goto done;
  }
  if ((int64_t)exp <= now / 1000) {
    rc = err_set(e, ERR_UNAUTHENTICATED, "access token has expired");
    goto done;
  }
  const char *sub = jwt_get_grant(j, "sub");
  if (!is_id(sub)) {
    rc = jwt_invalid(e, "bad subject");
    goto done;
  }

  /* The user may have been disabled or deleted since the token was issued;
   * admin rights come from the row too, never from the claim. */
  s = db_prepare(c, "SELECT username, is_admin, disabled FROM users WHERE id = ?", e);
  if (!s) {
    rc = tok_errc(e);
    goto done;
  }
  db_bind_text(s, 1, sub);
  if ((rc = db_step(s, e)) < 0) goto done;
  if (rc != DB_ROW || db_col_i64(s, 2) != 0) {
    db_stmt_done(s);
    rc = err_set(e, ERR_UNAUTHENTICATED, "access token's user is disabled or no longer exists");
    goto done;
  }
  out->kind = AUTH_JWT;
  str_copy(out->user_id, sizeof out->user_id, sub);
  const char *uname = db_col_text(s, 0);
  str_copy(out->username, sizeof out->username, uname ? uname : "");
  out->is_admin = db_col_i64(s, 1) != 0;
  out->scopes = AUTH_SCOPE_ALL;
  db_stmt_done(s);
  rc = 0;

done:
  if (j) jwt_free(j);
  sodium_memzero(secret, sizeof secret);
  db_reader_release(db, c);
  if (rc < 0) memset(out, 0, sizeof *out);
  return rc < 0 ? rc : 0;
}

/* ---- refresh tokens and issuing ------------------------------------------ */

static int refresh_insert(struct db_conn *c, const char *family, const char *user_id,
                          const char *hash, int64_t now, int64_t expires, struct err *e) {
  char id[AUTH_ID_LEN + 1];
  id_random_hex(id, AUTH_ID_LEN / 2);
  struct db_stmt *s = db_prepare(c,
                                 "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, "
                                 "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                                 e);
  if (!s) return tok_errc(e);
  db_bind_text(s, 1, id);
  db_bind_text(s, 2, family);
  db_bind_text(s, 3, user_id);
  db_bind_text(s, 4, hash);
  db_bind_i64(s, 5, now);
  db_bind_i64(s, 6, expires);
  int rc = db_step(s, e);
  return rc < 0 ? rc : 0;
}

/* What both jobs learn about the user: found, and not disabled. */
struct user_row {
  bool found;
  char username[65];
  bool is_admin;
  bool disabled;
};

static int user_read(struct db_conn *c, const char *user_id, struct user_row *u, struct err *e) {
  memset(u, 0, sizeof *u);
  struct db_stmt *s =
      db_prepare(c, "SELECT username, is_admin, disabled FROM users WHERE id = ?", e);
  if (!s) return tok_errc(e);
  db_bind_text(s, 1, user_id);
  int rc = db_step(s, e);
  if (rc < 0) return rc;
  if (rc == DB_ROW) {
    const char *n = db_col_text(s, 0);
    u->found = true;
    str_copy(u->username, sizeof u->username, n ? n : "");
    u->is_admin = db_col_i64(s, 1) != 0;
    u->disabled = db_col_i64(s, 2) != 0;
  }
  db_stmt_done(s);
  return 0;
}

/* Signs inside the job, so that a failure to sign rolls the refresh token
 * change back with it instead of leaving a rotated family with no token. */
static int sign_for(struct db_conn *c, const struct auth_opts *o, const char *user_id,
                    const struct user_row *u, int64_t now, struct auth_tokens *out, struct err *e) {
  struct skey k;
  int rc = key_current(c, o, true, now, &k, e);
  if (rc == 0)
    rc = jwt_sign(&k, user_id, u->username, u->is_admin, now, o->access_ttl_s, out->access_token,
                  sizeof out->access_token, e);
  sodium_memzero(&k, sizeof k);
  out->expires_in = o->access_ttl_s;
  return rc;
}

struct issue_job {
  const struct auth_opts *o;
  const char *user_id;
  const char *refresh_hash;
  struct auth_tokens *out;
};

static int issue_fn(struct db_conn *c, void *arg, struct err *e) {
  struct issue_job *j = arg;
  int64_t now = time_wall_ms();
  struct user_row u;
  int rc = user_read(c, j->user_id, &u, e);
  if (rc < 0) return rc;
  if (!u.found) return err_set(e, ERR_UNAUTHENTICATED, "user no longer exists");
  if (u.disabled) return err_set(e, ERR_UNAUTHENTICATED, "user is disabled");
  char family[AUTH_ID_LEN + 1];
  id_random_hex(family, AUTH_ID_LEN / 2);
  rc = refresh_insert(c, family, j->user_id, j->refresh_hash, now, now + j->o->refresh_ttl_s * 1000,
                      e);
  if (rc < 0) return rc;
  return sign_for(c, j->o, j->user_id, &u, now, j->out, e);
}

int auth_tokens_issue(struct auth *a, const struct auth_user *u, struct auth_tokens *out,
                      struct err *e) {
  memset(out, 0, sizeof *out);
  if (!u || !is_id(u->id)) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "invalid user id");
  if (u->disabled) return err_set(e, ERR_UNAUTHENTICATED, "user is disabled");
  char hash[65];
  refresh_new(out->refresh_token, hash);
  struct issue_job j = {.o = auth_options(a), .user_id = u->id, .refresh_hash = hash, .out = out};
  int rc = db_write(auth_db(a), issue_fn, &j, e);
  if (rc < 0) {
    sodium_memzero(out, sizeof *out);
    return rc;
  }
  return 0;
}

/* A refresh token's life (rows in refresh_tokens):
 *
 *   issued --(presented once)--> used  (a successor is issued in the family)
 *     |                           |
 *     |                           +--(presented again: reuse)--> family revoked
 *     +--(logout, or reuse of any member)--> revoked
 *     +--(expires_at passes)--> expired
 *
 * Only an issued, unexpired, unrevoked token refreshes. The whole transition
 * happens in one write job, so two concurrent presentations of one token are
 * serialized: the first rotates it, the second is reuse. */
enum refresh_outcome { RF_OK, RF_UNKNOWN, RF_REVOKED, RF_EXPIRED, RF_REUSED, RF_USER };

struct refresh_job {
  const struct auth_opts *o;
  const char *hash, *new_hash;
  struct auth_tokens *out;
  enum refresh_outcome outcome;
};

static int family_revoke(struct db_conn *c, const char *family, int64_t now, struct err *e) {
  struct db_stmt *s = db_prepare(
      c, "UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL", e);
  if (!s) return tok_errc(e);
  db_bind_i64(s, 1, now);
  db_bind_text(s, 2, family);
  int rc = db_step(s, e);
  return rc < 0 ? rc : 0;
}

static int refresh_fn(struct db_conn *c, void *arg, struct err *e) {
  struct refresh_job *j = arg;
  int64_t now = time_wall_ms();
  struct db_stmt *s = db_prepare(c,
                                 "SELECT id, family_id, user_id, expires_at, used_at, revoked_at "
                                 "FROM refresh_tokens WHERE token_hash = ?",
                                 e);
  if (!s) return tok_errc(e);
  db_bind_text(s, 1, j->hash);
  int rc = db_step(s, e);
  if (rc < 0) return rc;
  if (rc != DB_ROW) {
    j->outcome = RF_UNKNOWN;
    return 0;
  }
  char id[AUTH_ID_LEN + 1], family[AUTH_ID_LEN + 1], user_id[AUTH_ID_LEN + 1];
  const char *t;
  str_copy(id, sizeof id, (t = db_col_text(s, 0)) ? t : "");
  str_copy(family, sizeof family, (t = db_col_text(s, 1)) ? t : "");
  str_copy(user_id, sizeof user_id, (t = db_col_text(s, 2)) ? t : "");
  int64_t expires_at = db_col_i64(s, 3);
  bool used = !db_col_null(s, 4), revoked = !db_col_null(s, 5);
  db_stmt_done(s);

  if (revoked) {
    j->outcome = RF_REVOKED;
    return 0;
  }
  if (expires_at <= now) {
    j->outcome = RF_EXPIRED;
    return 0;
  }
  if (used) {
    /* Someone holds a token that was already rotated away: the thief or
     * the owner, we cannot tell which, so the whole login ends. Returning
     * 0 commits the revocation; the caller reports the failure. */
    j->outcome = RF_REUSED;
    return family_revoke(c, family, now, e);
  }
  struct user_row u;
  if ((rc = user_read(c, user_id, &u, e)) < 0) return rc;
  if (!u.found || u.disabled) {
    j->outcome = RF_USER;
    return 0;
  }
  s = db_prepare(c, "UPDATE refresh_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL", e);
  if (!s) return tok_errc(e);
  db_bind_i64(s, 1, now);
  db_bind_text(s, 2, id);
  if ((rc = db_step(s, e)) < 0) return rc;
  if (db_changes(c) != 1) return err_set(e, ERR_CONFLICT, "refresh token was used concurrently");
  /* Each successor lives refresh_ttl_s from its own issue: a login that
   * keeps being used stays signed in. */
  rc = refresh_insert(c, family, user_id, j->new_hash, now, now + j->o->refresh_ttl_s * 1000, e);
  if (rc < 0) return rc;
  if ((rc = sign_for(c, j->o, user_id, &u, now, j->out, e)) < 0) return rc;
  j->outcome = RF_OK;
  return 0;
}

static bool refresh_plausible(const char *token) {
  return token && str_has_prefix(token, REFRESH_PREFIX) &&
         strnlen(token, REFRESH_MAX_LEN + 1) <= REFRESH_MAX_LEN;
}

int auth_tokens_refresh(struct auth *a, const char *refresh_token, struct auth_tokens *out,
                        struct err *e) {
  memset(out, 0, sizeof *out);
  if (!refresh_plausible(refresh_token))
    return err_set(e, ERR_UNAUTHENTICATED, "invalid refresh token");
  char hash[65], new_hash[65];
  sha256_hex(refresh_token, strlen(refresh_token), hash);
  refresh_new(out->refresh_token, new_hash);
  struct refresh_job j = {
      .o = auth_options(a), .hash = hash, .new_hash = new_hash, .out = out, .outcome = RF_UNKNOWN};
  int rc = db_write(auth_db(a), refresh_fn, &j, e);
  if (rc == 0) {
    switch (j.outcome) {
    case RF_OK: return 0;
    case RF_UNKNOWN: rc = err_set(e, ERR_UNAUTHENTICATED, "invalid refresh token"); break;
    case RF_REVOKED: rc = err_set(e, ERR_UNAUTHENTICATED, "refresh token was revoked"); break;
    case RF_EXPIRED: rc = err_set(e, ERR_UNAUTHENTICATED, "refresh token has expired"); break;
    case RF_REUSED:
      rc = err_set(e, ERR_UNAUTHENTICATED,
                   "refresh token reuse detected; all sessions of this login were revoked");
      break;
    case RF_USER:
      rc = err_set(e, ERR_UNAUTHENTICATED, "refresh token's user is disabled or no longer exists");
      break;
    }
  }
  sodium_memzero(out, sizeof *out);
  return rc;
}

struct revoke_job {
  const char *hash;
};

static int revoke_fn(struct db_conn *c, void *arg, struct err *e) {
  struct revoke_job *j = arg;
  struct db_stmt *s = db_prepare(c, "SELECT family_id FROM refresh_tokens WHERE token_hash = ?", e);
  if (!s) return tok_errc(e);
  db_bind_text(s, 1, j->hash);
  int rc = db_step(s, e);
  if (rc < 0) return rc;
  if (rc != DB_ROW) return 0; /* unknown: nothing to log out of */
  char family[AUTH_ID_LEN + 1];
  const char *f = db_col_text(s, 0);
  str_copy(family, sizeof family, f ? f : "");
  db_stmt_done(s);
  return family_revoke(c, family, time_wall_ms(), e);
}

int auth_tokens_revoke(struct auth *a, const char *refresh_token, struct err *e) {
  if (!refresh_token || !*refresh_token)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "refresh_token is required");
  /* Logout is idempotent: a token that cannot be ours is simply not found. */
  if (!refresh_plausible(refresh_token)) return 0;
  char hash[65];
  sha256_hex(refresh_token, strlen(refresh_token), hash);
  struct revoke_job j = {.hash = hash};
  return db_write(auth_db(a), revoke_fn, &j, e);
}

/* ---- start-up check ----------------------------------------------------------- */

int auth_signing_key_check(struct auth *a, struct err *e) {
  struct db *db = auth_db(a);
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return tok_errc(e);
  struct skey k;
  struct err ke = {0};
  int rc = key_current(c, auth_options(a), false, time_wall_ms(), &k, &ke);
  db_reader_release(db, c);
  sodium_memzero(&k, sizeof k);
  if (rc < 0 && ke.code == ERR_RESOURCE_DOES_NOT_EXIST) return 0; /* first start: the first sign-in makes one */
  if (rc < 0 && e) *e = ke;
  return rc < 0 ? rc : 0;
}

/* ---- rotation -------------------------------------------------------------- */

struct rotate_job {
  const struct auth_opts *o;
  int64_t ttl_ms;
  struct skey k;
};

static int rotate_fn(struct db_conn *c, void *arg, struct err *e) {
  struct rotate_job *j = arg;
  int64_t now = time_wall_ms();
  /* Keys past their grace can never verify again: drop them so secrets do
   * not pile up. */
  struct db_stmt *s =
      db_prepare(c, "DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at <= ?", e);
  if (!s) return tok_errc(e);
  db_bind_i64(s, 1, now - j->ttl_ms);
  int rc = db_step(s, e);
  if (rc < 0) return rc;
  s = db_prepare(c, "UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL", e);
  if (!s) return tok_errc(e);
  db_bind_i64(s, 1, now);
  if ((rc = db_step(s, e)) < 0) return rc;
  return key_insert(c, j->o, now, &j->k, e);
}

int auth_signing_key_rotate(struct auth *a, char new_kid[AUTH_ID_LEN + 1], struct err *e) {
  struct rotate_job j = {.o = auth_options(a), .ttl_ms = auth_options(a)->access_ttl_s * 1000};
  int rc = db_write(auth_db(a), rotate_fn, &j, e);
  if (rc == 0 && new_kid) str_copy(new_kid, AUTH_ID_LEN + 1, j.k.kid);
  sodium_memzero(&j.k, sizeof j.k);
  return rc < 0 ? rc : 0;
}
