/* auth/keys: API keys — creation (shown once, stored as SHA-256),
 * verification into a principal, listing, revocation and rotation with a
 * grace period. Every change commits together with its audit entry. */
#include "auth.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define KEY_PREFIX "kiln_"
#define KEY_PREFIX_LEN 5
#define KEY_BYTES 32
/* 62^43 > 2^256, so 43 base62 digits hold any 32 bytes; fixed width makes
 * the length part of the format check. */
#define KEY_DIGITS 43
#define KEY_LEN (KEY_PREFIX_LEN + KEY_DIGITS)
#define KEY_SHOWN_PREFIX 12 /* "kiln_" + 7 digits: enough to tell keys apart in a list */
#define KEY_NAME_MAX 128
#define KEY_GRACE_MAX_S (30 * 86400)
/* last_used_at is a hint for humans; writing it on every request would put
 * every authenticated call on the write path. */
#define KEY_TOUCH_EVERY_MS 60000

/* Shape only; says nothing about whether such a key exists. */
static bool key_well_formed(const char *key) {
  if (!key || strnlen(key, KEY_LEN + 1) != KEY_LEN || !str_has_prefix(key, KEY_PREFIX))
    return false;
  return base62_valid(key + KEY_PREFIX_LEN, KEY_DIGITS);
}

static void key_generate(char key[AUTH_KEY_MAX], char hash[65]) {
  _Static_assert(KEY_DIGITS == SECRET_TOKEN_DIGITS && KEY_LEN < AUTH_KEY_MAX, "key shape");
  secret_token_new(KEY_PREFIX, key, AUTH_KEY_MAX, hash);
}

/* ---- rows ------------------------------------------------------------------ */
#define KEY_COLS                                                                                   \
  "id, user_id, name, prefix, scopes, project_id, created_at, expires_at, last_used_at, "          \
  "revoked_at, grace_until"

static const char *col_str(struct db_stmt *s, int col) {
  const char *v = db_col_text(s, col);
  return v ? v : "";
}

static int key_from_row(struct db_stmt *s, struct auth_api_key *k, struct err *e) {
  memset(k, 0, sizeof *k);
  str_copy(k->id, sizeof k->id, col_str(s, 0));
  str_copy(k->user_id, sizeof k->user_id, col_str(s, 1));
  str_copy(k->name, sizeof k->name, col_str(s, 2));
  str_copy(k->prefix, sizeof k->prefix, col_str(s, 3));
  if (auth_scopes_parse(col_str(s, 4), &k->scopes, NULL))
    return err_set(e, ERR_DATA_CORRUPTED, "API key %s has unreadable scopes", k->id);
  str_copy(k->project_id, sizeof k->project_id, col_str(s, 5));
  k->created_at = db_col_i64(s, 6);
  k->expires_at = db_col_i64(s, 7); /* NULL reads as 0 = unset */
  k->last_used_at = db_col_i64(s, 8);
  k->revoked_at = db_col_i64(s, 9);
  k->grace_until = db_col_i64(s, 10);
  return 0;
}

/* Reads one key by id on c (a reader, or the writer inside a job). */
static int key_load(struct db_conn *c, const char *key_id, struct auth_api_key *out,
                    struct err *e) {
  struct db_stmt *s = db_prepare(c, "SELECT " KEY_COLS " FROM api_keys WHERE id = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, key_id);
  int rc = db_step(s, e);
  if (rc == DB_ROW)
    rc = key_from_row(s, out, e);
  else if (rc == DB_DONE)
    rc = err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "no API key with id '%s'", key_id);
  db_stmt_done(s);
  return rc;
}

static int check_id(const char *what, const char *id, struct err *e) {
  if (!id || !*id) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s is required", what);
  if (strnlen(id, AUTH_ID_LEN + 1) > AUTH_ID_LEN)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s is longer than %d characters", what,
                   AUTH_ID_LEN);
  return 0;
}

static int exists(struct db_conn *c, const char *sql, const char *id, bool *out, struct err *e) {
  struct db_stmt *s = db_prepare(c, sql, e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, id);
  int rc = db_step(s, e);
  db_stmt_done(s);
  if (rc < 0) return rc;
  *out = rc == DB_ROW;
  return 0;
}

/* The detail object never holds the key or its hash. */
static int key_audit(struct db_conn *c, const char *action, const char *actor, const char *target,
                     json_t *detail, struct err *e) {
  struct buf b;
  buf_init(&b);
  int rc = detail ? json_emit(&b, detail) : 0;
  json_decref(detail);
  if (rc || (detail && !b.data)) {
    buf_fini(&b);
    return err_set(e, ERR_NO_MEMORY, NULL);
  }
  struct auth_audit_entry en = {
      .actor = actor, .action = action, .target = target, .outcome = "success", .detail = b.data};
  rc = auth_audit_append(c, &en, e);
  buf_fini(&b);
  return rc;
}

/* ---- create and rotate ------------------------------------------------------ */
struct key_job {
  /* the new key */
  const char *user_id, *name, *project_id; /* project_id NULL: unrestricted */
  unsigned scopes;
  int64_t expires_at;
  const char *hash, *prefix;
  /* rotation: the key being replaced */
  const char *old_id;
  int64_t grace_s;
  struct auth_api_key *out;
};

static int key_insert(struct db_conn *c, struct key_job *j, struct err *e) {
  bool found;
  int rc = exists(c, "SELECT 1 FROM users WHERE id = ?", j->user_id, &found, e);
  if (rc) return rc;
  if (!found) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "no user with id '%s'", j->user_id);
  if (j->project_id) {
    if ((rc = exists(c, "SELECT 1 FROM projects WHERE id = ?", j->project_id, &found, e)))
      return rc;
    if (!found)
      return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "no project with id '%s'", j->project_id);
  }
  struct auth_api_key *k = j->out;
  memset(k, 0, sizeof *k);
  id_random_hex(k->id, AUTH_ID_LEN / 2);
  str_copy(k->user_id, sizeof k->user_id, j->user_id);
  str_copy(k->name, sizeof k->name, j->name);
  str_copy(k->prefix, sizeof k->prefix, j->prefix);
  str_copy(k->project_id, sizeof k->project_id, j->project_id ? j->project_id : "");
  k->scopes = j->scopes;
  k->created_at = time_wall_ms();
  k->expires_at = j->expires_at;
  char scopes[64];
  auth_scopes_format(j->scopes, scopes, sizeof scopes);

  struct db_stmt *s =
      db_prepare(c,
                 "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, scopes, "
                 "project_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, k->id);
  db_bind_text(s, 2, k->user_id);
  db_bind_text(s, 3, k->name);
  db_bind_text(s, 4, k->prefix);
  db_bind_text(s, 5, j->hash);
  db_bind_text(s, 6, scopes);
  db_bind_text(s, 7, j->project_id);
  db_bind_i64(s, 8, k->created_at);
  if (k->expires_at)
    db_bind_i64(s, 9, k->expires_at);
  else
    db_bind_null(s, 9);
  rc = db_step(s, e);
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

static int create_job(struct db_conn *c, void *arg, struct err *e) {
  struct key_job *j = arg;
  int rc = key_insert(c, j, e);
  if (rc) return rc;
  char scopes[64];
  auth_scopes_format(j->scopes, scopes, sizeof scopes);
  json_t *d = json_pack("{s:s, s:s, s:s?, s:I}", "name", j->name, "scopes", scopes, "project_id",
                        j->project_id, "expires_at", (json_int_t)j->expires_at);
  if (!d) return err_set(e, ERR_NO_MEMORY, NULL);
  return key_audit(c, "key.create", j->user_id, j->out->id, d, e);
}

static int check_name(const char *name, struct err *e) {
  size_t n = name ? strnlen(name, KEY_NAME_MAX + 1) : 0;
  if (n == 0) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "an API key needs a name");
  if (n > KEY_NAME_MAX)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "API key name is longer than %d bytes",
                   KEY_NAME_MAX);
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "API key name must not contain control characters");
  return 0;
}

int auth_key_create(struct auth *a, const char *user_id, const char *name, unsigned scopes,
                    const char *project_id, int64_t expires_at, char key_out[AUTH_KEY_MAX],
                    struct auth_api_key *out, struct err *e) {
  int rc;
  if (!key_out) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "no room for the new key");
  if ((rc = check_id("user_id", user_id, e)) || (rc = check_name(name, e))) return rc;
  if (scopes == 0 || (scopes & ~(unsigned)AUTH_SCOPE_ALL))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "an API key needs at least one known scope");
  if (project_id && !*project_id) project_id = NULL;
  if (project_id && (rc = check_id("project_id", project_id, e))) return rc;
  if (expires_at < 0 || (expires_at > 0 && expires_at <= time_wall_ms()))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "expires_at must be in the future (or 0 for never)");

  char key[AUTH_KEY_MAX], hash[65], prefix[KEY_SHOWN_PREFIX + 1];
  key_generate(key, hash);
  str_copy(prefix, sizeof prefix, key); /* truncation is the point here */
  struct auth_api_key tmp;
  struct key_job j = {.user_id = user_id,
                      .name = name,
                      .project_id = project_id,
                      .scopes = scopes,
                      .expires_at = expires_at,
                      .hash = hash,
                      .prefix = prefix,
                      .out = out ? out : &tmp};
  rc = db_write(auth_db(a), create_job, &j, e);
  if (rc == 0) str_copy(key_out, AUTH_KEY_MAX, key);
  sodium_memzero(key, sizeof key);
  return rc < 0 ? rc : 0;
}

static int rotate_job(struct db_conn *c, void *arg, struct err *e) {
  struct key_job *j = arg;
  struct auth_api_key old;
  int rc = key_load(c, j->old_id, &old, e);
  if (rc) return rc;
  int64_t now = time_wall_ms();
  if (old.revoked_at)
    return err_set(e, ERR_CONFLICT, "API key %s is revoked (or already rotated); create a new key",
                   old.id);
  if (old.expires_at && old.expires_at <= now)
    return err_set(e, ERR_CONFLICT, "API key %s has expired; create a new key", old.id);
  char name[sizeof old.name];
  str_copy(name, sizeof name, old.name);
  j->user_id = old.user_id;
  j->name = name;
  j->project_id = old.project_id[0] ? old.project_id : NULL;
  j->scopes = old.scopes;
  j->expires_at = old.expires_at;
  if ((rc = key_insert(c, j, e))) return rc;

  struct db_stmt *s = db_prepare(
      c, "UPDATE api_keys SET revoked_at = ?, rotated_to = ?, grace_until = ? WHERE id = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, now);
  db_bind_text(s, 2, j->out->id);
  db_bind_i64(s, 3, now + j->grace_s * 1000);
  db_bind_text(s, 4, old.id);
  rc = db_step(s, e);
  db_stmt_done(s);
  if (rc < 0) return rc;
  json_t *d = json_pack("{s:s, s:I}", "new_key_id", j->out->id, "grace_s", (json_int_t)j->grace_s);
  if (!d) return err_set(e, ERR_NO_MEMORY, NULL);
  return key_audit(c, "key.rotate", old.user_id, old.id, d, e);
}

int auth_key_rotate(struct auth *a, const char *key_id, int64_t grace_s, char key_out[AUTH_KEY_MAX],
                    struct auth_api_key *out, struct err *e) {
  int rc = check_id("key_id", key_id, e);
  if (rc) return rc;
  if (!key_out) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "no room for the new key");
  if (grace_s < 0 || grace_s > KEY_GRACE_MAX_S)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "grace period must be 0 to %d seconds (30 days)",
                   KEY_GRACE_MAX_S);
  char key[AUTH_KEY_MAX], hash[65], prefix[KEY_SHOWN_PREFIX + 1];
  key_generate(key, hash);
  str_copy(prefix, sizeof prefix, key);
  struct auth_api_key tmp;
  struct key_job j = {.old_id = key_id,
                      .grace_s = grace_s,
                      .hash = hash,
                      .prefix = prefix,
                      .out = out ? out : &tmp};
  rc = db_write(auth_db(a), rotate_job, &j, e);
  if (rc == 0) str_copy(key_out, AUTH_KEY_MAX, key);
  sodium_memzero(key, sizeof key);
  return rc < 0 ? rc : 0;
}

/* ---- revoke ------------------------------------------------------------------- */
static int revoke_job(struct db_conn *c, void *arg, struct err *e) {
  const char *key_id = arg;
  struct auth_api_key k;
  int rc = key_load(c, key_id, &k, e);
  if (rc) return rc;
  /* Keeps the first revocation time; ends a rotation grace period at once. */
  struct db_stmt *s =
      db_prepare(c, "UPDATE api_keys SET revoked_at = ?, grace_until = NULL WHERE id = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, k.revoked_at ? k.revoked_at : time_wall_ms());
  db_bind_text(s, 2, k.id);
  rc = db_step(s, e);
  db_stmt_done(s);
  if (rc < 0) return rc;
  json_t *d = json_pack("{s:s, s:b}", "name", k.name, "already_revoked", k.revoked_at != 0);
  if (!d) return err_set(e, ERR_NO_MEMORY, NULL);
  /* The signature carries no acting user, so the entry names the key's
   * owner; the request layer's own entry names who asked. */
  return key_audit(c, "key.revoke", k.user_id, k.id, d, e);
}

int auth_key_revoke(struct auth *a, const char *key_id, struct err *e) {
  int rc = check_id("key_id", key_id, e);
  if (rc) return rc;
  return db_write(auth_db(a), revoke_job, (void *)key_id, e);
}

/* ---- read ------------------------------------------------------------------------ */
int auth_key_get(struct auth *a, const char *key_id, struct auth_api_key *out, struct err *e) {
  int rc = check_id("key_id", key_id, e);
  if (rc) return rc;
  struct db *db = auth_db(a);
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -ERR_UNAVAILABLE;
  rc = key_load(c, key_id, out, e);
  db_reader_release(db, c);
  return rc;
}

/* Newest first; keys created in the same millisecond come in id order. */
int auth_key_list(struct auth *a, const char *user_id, struct auth_api_key *out, int cap,
                  struct err *e) {
  int rc = check_id("user_id", user_id, e);
  if (rc) return rc;
  if (cap < 0 || (cap > 0 && !out))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "bad list capacity");
  if (cap == 0) return 0;
  struct db *db = auth_db(a);
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -ERR_UNAVAILABLE;
  struct db_stmt *s =
      db_prepare(c,
                 "SELECT " KEY_COLS
                 " FROM api_keys WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
                 e);
  if (!s) {
    db_reader_release(db, c);
    return -ERR_INTERNAL;
  }
  db_bind_text(s, 1, user_id);
  db_bind_i64(s, 2, cap);
  int n = 0;
  while ((rc = db_step(s, e)) == DB_ROW && n < cap) {
    if ((rc = key_from_row(s, &out[n], e))) break;
    n++;
  }
  db_stmt_done(s);
  db_reader_release(db, c);
  return rc < 0 ? rc : n;
}

/* ---- verify -------------------------------------------------------------------------- */
static int touch_job(struct db_conn *c, void *arg, struct err *e) {
  const struct auth_api_key *k = arg;
  /* The condition repeats the caller's check on the writer, so concurrent
   * verifications of one key write at most once per interval. */
  struct db_stmt *s = db_prepare(c,
                                 "UPDATE api_keys SET last_used_at = ? WHERE id = ? AND "
                                 "(last_used_at IS NULL OR last_used_at <= ?)",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, k->last_used_at);
  db_bind_text(s, 2, k->id);
  db_bind_i64(s, 3, k->last_used_at - KEY_TOUCH_EVERY_MS);
  int rc = db_step(s, e);
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

int auth_key_verify(struct auth *a, const char *key, struct auth_principal *out, struct err *e) {
  if (out) memset(out, 0, sizeof *out);
  /* The cheap shape check first: garbage never reaches the database. */
  if (!key_well_formed(key)) return err_set(e, ERR_UNAUTHENTICATED, "invalid API key");
  char hash[65];
  sha256_hex(key, KEY_LEN, hash);

  struct db *db = auth_db(a);
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -ERR_UNAVAILABLE;
  struct db_stmt *s =
      db_prepare(c,
                 "SELECT k.id, k.user_id, k.name, k.prefix, k.scopes, k.project_id, "
                 "k.created_at, k.expires_at, k.last_used_at, k.revoked_at, "
                 "k.grace_until, k.key_hash, u.username, u.is_admin, u.disabled "
                 "FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?",
                 e);
  if (!s) {
    db_reader_release(db, c);
    return -ERR_INTERNAL;
  }
  db_bind_text(s, 1, hash);
  struct auth_api_key k;
  char username[sizeof out->username] = "";
  bool is_admin = false, disabled = false, match = false, found = false;
  int rc = db_step(s, e);
  if (rc == DB_ROW) {
    found = true;
    const char *stored = db_col_text(s, 11);
    /* the index found it; the constant-time compare keeps the decision
     * itself free of an early-exit timing signal */
    match = stored && strlen(stored) == 64 && secret_eq(stored, hash, 64);
    rc = key_from_row(s, &k, e);
    str_copy(username, sizeof username, col_str(s, 12));
    is_admin = db_col_i64(s, 13) != 0;
    disabled = db_col_i64(s, 14) != 0;
  }
  db_stmt_done(s);
  db_reader_release(db, c);
  if (rc < 0) return rc;
  if (!found || !match) return err_set(e, ERR_UNAUTHENTICATED, "invalid API key");

  int64_t now = time_wall_ms();
  bool in_grace = k.grace_until && now < k.grace_until;
  if (k.revoked_at && !in_grace) return err_set(e, ERR_UNAUTHENTICATED, "API key revoked");
  if (k.expires_at && now >= k.expires_at)
    return err_set(e, ERR_UNAUTHENTICATED, "API key expired");
  if (disabled) return err_set(e, ERR_UNAUTHENTICATED, "user account disabled");

  if (out) {
    out->kind = AUTH_API_KEY;
    str_copy(out->user_id, sizeof out->user_id, k.user_id);
    str_copy(out->username, sizeof out->username, username);
    out->is_admin = is_admin;
    out->scopes = k.scopes;
    str_copy(out->project_id, sizeof out->project_id, k.project_id);
    str_copy(out->key_id, sizeof out->key_id, k.id);
  }
  if (!k.last_used_at || now - k.last_used_at >= KEY_TOUCH_EVERY_MS) {
    k.last_used_at = now;
    struct err te;
    /* a failed hint must not turn a valid key away */
    if (db_write(db, touch_job, &k, &te) < 0)
      log_warn("auth.key_touch_failed", "key %s: %s", k.id, te.msg);
  }
  return 0;
}
