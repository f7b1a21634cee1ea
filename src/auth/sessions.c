/* auth/sessions: browser sessions — an opaque session token that travels in
 * an HttpOnly cookie, and a CSRF token the dashboard echoes in a header on
 * every state-changing request. Both are stored only as SHA-256. */
#include "auth.h"

#include <sodium.h>
#include <string.h>

#define SESSION_PREFIX "kses_"
#define SESSION_LEN (sizeof SESSION_PREFIX - 1 + SECRET_TOKEN_DIGITS)
#define CSRF_PREFIX "kcsrf_"
#define CSRF_LEN (sizeof CSRF_PREFIX - 1 + SECRET_TOKEN_DIGITS)
/* last_seen_at is for humans (and idle reports); not on every request. */
#define SESSION_TOUCH_EVERY_MS 60000

static int errc(const struct err *e) { return (e && e->code != ERR_OK) ? -(int)e->code : -ERR_INTERNAL; }

static bool shaped(const char *s, const char *prefix, size_t len) {
  return s && strnlen(s, len + 1) == len && str_has_prefix(s, prefix) &&
         base62_valid(s + strlen(prefix), SECRET_TOKEN_DIGITS);
}

struct create_job {
  const char *user_id, *token_hash, *csrf_hash, *client_addr;
  int64_t now, expires_at;
};

static int create_fn(struct db_conn *c, void *arg, struct err *e) {
  struct create_job *j = arg;
  struct db_stmt *s = db_prepare(c, "SELECT disabled FROM users WHERE id = ?", e);
  if (!s) return errc(e);
  db_bind_text(s, 1, j->user_id);
  int rc = db_step(s, e);
  bool found = rc == DB_ROW, disabled = found && db_col_i64(s, 0) != 0;
  db_stmt_done(s);
  if (rc < 0) return rc;
  if (!found) return err_set(e, ERR_UNAUTHENTICATED, "user no longer exists");
  if (disabled) return err_set(e, ERR_UNAUTHENTICATED, "user account disabled");
  char id[AUTH_ID_LEN + 1];
  id_random_hex(id, AUTH_ID_LEN / 2);
  s = db_prepare(c,
                 "INSERT INTO sessions (id, user_id, token_hash, csrf_hash, created_at, expires_at, "
                 "last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 e);
  if (!s) return errc(e);
  db_bind_text(s, 1, id);
  db_bind_text(s, 2, j->user_id);
  db_bind_text(s, 3, j->token_hash);
  db_bind_text(s, 4, j->csrf_hash);
  db_bind_i64(s, 5, j->now);
  db_bind_i64(s, 6, j->expires_at);
  db_bind_i64(s, 7, j->now);
  rc = db_step(s, e);
  db_stmt_done(s);
  if (rc < 0) return rc;
  struct auth_audit_entry en = {.actor = j->user_id, .action = "session.create", .target = id,
                                .client_addr = j->client_addr, .outcome = "success"};
  return auth_audit_append(c, &en, e);
}

int auth_session_create(struct auth *a, const struct auth_user *u, const char *client_addr,
                        struct auth_session *out, struct err *e) {
  memset(out, 0, sizeof *out);
  char th[65], ch[65];
  secret_token_new(SESSION_PREFIX, out->token, sizeof out->token, th);
  secret_token_new(CSRF_PREFIX, out->csrf, sizeof out->csrf, ch);
  int64_t now = time_wall_ms();
  out->expires_at = now + auth_options(a)->session_ttl_s * 1000;
  struct create_job j = {.user_id = u->id, .token_hash = th, .csrf_hash = ch,
                         .client_addr = client_addr, .now = now, .expires_at = out->expires_at};
  int rc = db_write(auth_db(a), create_fn, &j, e);
  if (rc < 0) sodium_memzero(out, sizeof *out);
  return rc < 0 ? rc : 0;
}

struct touch_job {
  const char *token_hash;
  int64_t now;
};

static int touch_fn(struct db_conn *c, void *arg, struct err *e) {
  struct touch_job *j = arg;
  struct db_stmt *s = db_prepare(c,
                                 "UPDATE sessions SET last_seen_at = ? WHERE token_hash = ? AND "
                                 "last_seen_at <= ?",
                                 e);
  if (!s) return errc(e);
  db_bind_i64(s, 1, j->now);
  db_bind_text(s, 2, j->token_hash);
  db_bind_i64(s, 3, j->now - SESSION_TOUCH_EVERY_MS);
  int rc = db_step(s, e);
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

int auth_session_verify(struct auth *a, const char *token, const char *csrf, bool need_csrf,
                        struct auth_principal *p, struct err *e) {
  memset(p, 0, sizeof *p);
  if (!shaped(token, SESSION_PREFIX, SESSION_LEN))
    return err_set(e, ERR_UNAUTHENTICATED, "invalid or expired session; sign in again");
  char th[65];
  sha256_hex(token, SESSION_LEN, th);
  struct db *db = auth_db(a);
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -ERR_UNAVAILABLE;
  struct db_stmt *s = db_prepare(c,
                                 "SELECT s.token_hash, s.csrf_hash, s.expires_at, s.revoked_at, "
                                 "s.last_seen_at, u.id, u.username, u.is_admin, u.disabled "
                                 "FROM sessions s JOIN users u ON u.id = s.user_id "
                                 "WHERE s.token_hash = ?",
                                 e);
  if (!s) {
    db_reader_release(db, c);
    return errc(e);
  }
  db_bind_text(s, 1, th);
  int rc = db_step(s, e);
  bool ok = false, csrf_ok = false, disabled = false;
  int64_t last_seen = 0;
  if (rc == DB_ROW) {
    const char *stored = db_col_text(s, 0), *stored_csrf = db_col_text(s, 1);
    int64_t now = time_wall_ms();
    ok = stored && strlen(stored) == 64 && secret_eq(stored, th, 64) && db_col_i64(s, 2) > now &&
         db_col_i64(s, 3) == 0;
    if (ok && need_csrf && shaped(csrf, CSRF_PREFIX, CSRF_LEN) && stored_csrf &&
        strlen(stored_csrf) == 64) {
      char ch[65];
      sha256_hex(csrf, CSRF_LEN, ch);
      csrf_ok = secret_eq(stored_csrf, ch, 64);
    }
    last_seen = db_col_i64(s, 4);
    const char *uid = db_col_text(s, 5), *uname = db_col_text(s, 6);
    str_copy(p->user_id, sizeof p->user_id, uid ? uid : "");
    str_copy(p->username, sizeof p->username, uname ? uname : "");
    p->is_admin = db_col_i64(s, 7) != 0;
    disabled = db_col_i64(s, 8) != 0;
  }
  db_stmt_done(s);
  db_reader_release(db, c);
  if (rc < 0) return rc;
  if (!ok || disabled) {
    memset(p, 0, sizeof *p);
    return err_set(e, ERR_UNAUTHENTICATED, "invalid or expired session; sign in again");
  }
  if (need_csrf && !csrf_ok) {
    memset(p, 0, sizeof *p);
    return err_set(e, ERR_PERMISSION_DENIED,
                   "missing or wrong CSRF token: a cookie-authenticated state-changing request "
                   "needs the kiln_csrf cookie's value in the X-CSRF-Token header");
  }
  p->kind = AUTH_SESSION;
  p->scopes = AUTH_SCOPE_ALL;
  int64_t now = time_wall_ms();
  if (now - last_seen >= SESSION_TOUCH_EVERY_MS) {
    struct touch_job j = {.token_hash = th, .now = now};
    struct err te;
    if (db_write(db, touch_fn, &j, &te) < 0) log_warn("auth.session_touch_failed", "%s", te.msg);
  }
  return 0;
}

struct revoke_job {
  const char *token_hash, *client_addr;
  bool found;
};

static int revoke_fn(struct db_conn *c, void *arg, struct err *e) {
  struct revoke_job *j = arg;
  struct db_stmt *s = db_prepare(c, "SELECT id, user_id FROM sessions WHERE token_hash = ? AND revoked_at IS NULL", e);
  if (!s) return errc(e);
  db_bind_text(s, 1, j->token_hash);
  int rc = db_step(s, e);
  char id[AUTH_ID_LEN + 1] = "", uid[AUTH_ID_LEN + 1] = "";
  if (rc == DB_ROW) {
    const char *x = db_col_text(s, 0), *y = db_col_text(s, 1);
    str_copy(id, sizeof id, x ? x : "");
    str_copy(uid, sizeof uid, y ? y : "");
    j->found = true;
  }
  db_stmt_done(s);
  if (rc < 0 || !j->found) return rc < 0 ? rc : 0;
  s = db_prepare(c, "UPDATE sessions SET revoked_at = ? WHERE id = ?", e);
  if (!s) return errc(e);
  db_bind_i64(s, 1, time_wall_ms());
  db_bind_text(s, 2, id);
  rc = db_step(s, e);
  db_stmt_done(s);
  if (rc < 0) return rc;
  struct auth_audit_entry en = {.actor = uid, .action = "session.revoke", .target = id,
                                .client_addr = j->client_addr, .outcome = "success"};
  return auth_audit_append(c, &en, e);
}

int auth_session_revoke(struct auth *a, const char *token, const char *client_addr, struct err *e) {
  if (!shaped(token, SESSION_PREFIX, SESSION_LEN)) return 0; /* nothing to revoke */
  char th[65];
  sha256_hex(token, SESSION_LEN, th);
  struct revoke_job j = {.token_hash = th, .client_addr = client_addr};
  int rc = db_write(auth_db(a), revoke_fn, &j, e);
  return rc < 0 ? rc : 0;
}
