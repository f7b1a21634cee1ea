/* auth/users: accounts and passwords — validation, the password policy,
 * argon2id hashing, creation with a personal org and default project,
 * throttled login, password change/reset, first-start admin bootstrap and
 * the link table for external identity providers. */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define USERNAME_MAX 64
#define EMAIL_MAX 254 /* RFC 5321 path limit; struct auth_user holds 254 + NUL */
#define EMAIL_LOCAL_MAX 64
#define EMAIL_LABEL_MAX 63
#define PASSWORD_MIN_CHARS 10
#define PASSWORD_MAX_BYTES 256
#define PROVIDER_MAX 64
#define SUBJECT_MAX 255
/* Tried org names username, username-2 ... username-N before giving up. */
#define PERSONAL_ORG_TRIES 1000
#define ADMIN_PASSWORD_LEN 20
#define ADMIN_PASSWORD_FILE "initial-admin-password"

static const char bad_login_msg[] = "invalid username or password";

/* ---- validation --------------------------------------------------------- */

static bool is_lower_alnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
static unsigned char ascii_lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

/* Lower-cases src into dst; -1 when it does not fit (callers refuse rather
 * than truncate, so two long names can never collide on a prefix). */
static int lower_into(char *dst, size_t cap, const char *src) {
  size_t n = strlen(src);
  if (n >= cap) return -1;
  for (size_t i = 0; i < n; i++) dst[i] = (char)ascii_lower((unsigned char)src[i]);
  dst[n] = 0;
  return 0;
}

int auth_username_check(const char *username, struct err *e) {
  if (!username || !*username)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "username must not be empty");
  size_t n = strlen(username);
  if (n > USERNAME_MAX)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "username must be at most %d characters",
                   USERNAME_MAX);
  if (!is_lower_alnum(ascii_lower((unsigned char)username[0])))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "username must start with a letter or digit");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = ascii_lower((unsigned char)username[i]);
    if (!is_lower_alnum(c) && c != '.' && c != '_' && c != '-')
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "username may contain only letters, digits, '.', '_' and '-'");
  }
  return 0;
}

/* Characters RFC 5322 allows unquoted in a local part (the "atext" set plus
 * dots, which get their own placement rules). Quoted local parts and IP
 * literals are left out on purpose: nobody signs up with them, and every
 * extra form is more parser to get wrong. */
static bool email_local_char(unsigned char c) {
  if (is_lower_alnum(ascii_lower(c))) return true;
  return c != 0 && strchr("!#$%&'*+/=?^_`{|}~-.", c) != NULL;
}

int auth_email_check(const char *email, struct err *e) {
  if (!email || !*email) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "email must not be empty");
  size_t n = strlen(email);
  if (n > EMAIL_MAX)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "email must be at most %d characters",
                   EMAIL_MAX);
  const char *at = strchr(email, '@');
  if (!at || strchr(at + 1, '@'))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "email must contain exactly one '@'");
  size_t local_n = (size_t)(at - email);
  if (local_n == 0)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "email needs a name before the '@'");
  if (local_n > EMAIL_LOCAL_MAX)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "the part of the email before '@' must be at most %d characters",
                   EMAIL_LOCAL_MAX);
  for (size_t i = 0; i < local_n; i++) {
    unsigned char c = (unsigned char)email[i];
    if (!email_local_char(c))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "email contains a character not allowed before the '@'");
    if (c == '.' && (i == 0 || i + 1 == local_n || email[i + 1] == '.'))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "email may not start or end its name with '.', or repeat '.'");
  }
  const char *dom = at + 1;
  if (!*dom) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "email needs a domain after the '@'");
  if (!strchr(dom, '.'))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "email domain must contain a '.'");
  const char *label = dom;
  for (;;) {
    const char *end = strchr(label, '.');
    size_t ln = end ? (size_t)(end - label) : strlen(label);
    if (ln == 0) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "email domain has an empty label");
    if (ln > EMAIL_LABEL_MAX)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "email domain labels must be at most %d characters", EMAIL_LABEL_MAX);
    bool all_digits = true;
    for (size_t i = 0; i < ln; i++) {
      unsigned char c = ascii_lower((unsigned char)label[i]);
      if (!is_lower_alnum(c) && c != '-')
        return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                       "email domain may contain only letters, digits, '-' and '.'");
      if (c < '0' || c > '9') all_digits = false;
    }
    if (label[0] == '-' || label[ln - 1] == '-')
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "email domain labels may not start or end with '-'");
    if (!end) {
      /* a numeric last label means an IP address, not a mail domain */
      if (all_digits)
        return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                       "email domain must end in a name, not a number");
      break;
    }
    label = end + 1;
  }
  return 0;
}

/* A short list: the policy's length and class rules already refuse most
 * dictionary passwords; these are the ones that slip through them and top
 * every breach list. Compared case-insensitively. */
static const char *const weak_passwords[] = {
    "password12",  "password123",   "password1234", "password1!", "passw0rd12", "1234567890",
    "12345678910", "0123456789",    "0987654321",   "qwertyuiop", "qwerty1234", "qwerty12345",
    "1q2w3e4r5t",  "1qaz2wsx3edc",  "asdfghjkl1",   "iloveyou12", "letmein123", "welcome123",
    "admin12345",  "administrator", "changeme12",   "abcdefghij", "abc1234567", "trustno1234",
    "football12",  "baseball12",    "superman12",   "monkey1234", "dragon1234", "sunshine12",
};

static bool equals_ignoring_case(const char *a, const char *b) {
  for (; *a && *b; a++, b++)
    if (ascii_lower((unsigned char)*a) != ascii_lower((unsigned char)*b)) return false;
  return *a == *b;
}

int auth_password_policy(const char *password, struct err *e) {
  if (!password) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "password must not be empty");
  size_t bytes = strlen(password);
  if (bytes > PASSWORD_MAX_BYTES)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "password must be at most %d bytes",
                   PASSWORD_MAX_BYTES);
  /* Characters, not bytes: count UTF-8 sequence starts, so a passphrase in
   * any script is measured the way its owner counts it. */
  size_t chars = 0;
  bool same = true;
  const char *first = password;
  size_t first_n = 0;
  bool lower = false, upper = false, digit = false, other = false;
  for (size_t i = 0; i < bytes;) {
    size_t n = 1;
    while (i + n < bytes && ((unsigned char)password[i + n] & 0xC0) == 0x80) n++;
    unsigned char c = (unsigned char)password[i];
    if (c >= 'a' && c <= 'z')
      lower = true;
    else if (c >= 'A' && c <= 'Z')
      upper = true;
    else if (c >= '0' && c <= '9')
      digit = true;
    else
      other = true;
    if (chars == 0)
      first_n = n;
    else if (n != first_n || memcmp(password + i, first, n) != 0)
      same = false;
    chars++;
    i += n;
  }
  if (chars < PASSWORD_MIN_CHARS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "password must be at least %d characters",
                   PASSWORD_MIN_CHARS);
  if (same)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "password must not repeat a single character");
  for (size_t i = 0; i < sizeof weak_passwords / sizeof weak_passwords[0]; i++)
    if (equals_ignoring_case(password, weak_passwords[i]))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "password is too common; choose one that is not on breach lists");
  int classes = (int)lower + (int)upper + (int)digit + (int)other;
  if (classes < 2)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "password must mix at least 2 of: lowercase letters, uppercase letters, "
                   "digits, other characters");
  return 0;
}

/* ---- hashing -------------------------------------------------------------- */

int auth_password_hash(struct auth *a, const char *password, char out[128], struct err *e) {
  const struct auth_opts *o = auth_options(a);
  if (!password) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "password must not be empty");
  /* argon2 fails only when it cannot get its working memory */
  if (crypto_pwhash_str(out, password, strlen(password), o->pwhash_opslimit, o->pwhash_memlimit) !=
      0)
    return err_set(e, ERR_NO_MEMORY, "could not hash the password (out of memory)");
  return 0;
}

bool auth_password_check(const char *hash, const char *password) {
  if (!hash || !password || !*hash) return false;
  return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

/* A hash of a random password with the auth's cost, verified when the login
 * names nobody, so an unknown user costs the same argon2 time as a wrong
 * password. Computed once per cost setting (tests use a cheaper one). */
static pthread_mutex_t dummy_mu = PTHREAD_MUTEX_INITIALIZER;
static char dummy_hash[crypto_pwhash_STRBYTES];
static uint64_t dummy_ops;
static size_t dummy_mem;

static void dummy_hash_get(struct auth *a, char out[crypto_pwhash_STRBYTES]) {
  const struct auth_opts *o = auth_options(a);
  pthread_mutex_lock(&dummy_mu);
  if (!dummy_hash[0] || dummy_ops != o->pwhash_opslimit || dummy_mem != o->pwhash_memlimit) {
    char pw[33];
    id_random_hex(pw, 16);
    if (crypto_pwhash_str(dummy_hash, pw, strlen(pw), o->pwhash_opslimit, o->pwhash_memlimit) ==
        0) {
      dummy_ops = o->pwhash_opslimit;
      dummy_mem = o->pwhash_memlimit;
    } else {
      dummy_hash[0] = 0; /* out of memory: try again next time */
    }
    sodium_memzero(pw, sizeof pw);
  }
  memcpy(out, dummy_hash, crypto_pwhash_STRBYTES);
  pthread_mutex_unlock(&dummy_mu);
}

/* ---- reading users ---------------------------------------------------------- */

#define USER_COLS                                                                                  \
  "id, username, email, display_name, is_admin, disabled, must_change_password, "                  \
  "default_project_id, created_at, password_hash"

static void user_from_row(struct db_stmt *s, struct auth_user *u, char *hash_out) {
  memset(u, 0, sizeof *u);
  const char *t;
  if ((t = db_col_text(s, 0))) str_copy(u->id, sizeof u->id, t);
  if ((t = db_col_text(s, 1))) str_copy(u->username, sizeof u->username, t);
  if ((t = db_col_text(s, 2))) str_copy(u->email, sizeof u->email, t);
  if ((t = db_col_text(s, 3))) str_copy(u->display_name, sizeof u->display_name, t);
  u->is_admin = db_col_i64(s, 4) != 0;
  u->disabled = db_col_i64(s, 5) != 0;
  u->must_change_password = db_col_i64(s, 6) != 0;
  if ((t = db_col_text(s, 7))) str_copy(u->default_project_id, sizeof u->default_project_id, t);
  u->created_at = db_col_i64(s, 8);
  if (hash_out) {
    hash_out[0] = 0;
    if ((t = db_col_text(s, 9))) str_copy(hash_out, crypto_pwhash_STRBYTES, t);
  }
}

/* One row by a column value: 1 found, 0 not found, <0 error. */
static int user_load(struct db *db, const char *sql, const char *v1, const char *v2,
                     struct auth_user *u, char *hash_out, struct err *e) {
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -(int)(e ? e->code : ERR_UNAVAILABLE);
  int rc;
  struct db_stmt *s = db_prepare(c, sql, e);
  if (!s) {
    rc = -(int)(e ? e->code : ERR_INTERNAL);
  } else {
    db_bind_text(s, 1, v1);
    if (v2) db_bind_text(s, 2, v2);
    rc = db_step(s, e);
    if (rc == DB_ROW) user_from_row(s, u, hash_out);
    db_stmt_done(s);
  }
  db_reader_release(db, c);
  return rc;
}

int auth_user_get(struct auth *a, const char *user_id, struct auth_user *out, struct err *e) {
  if (!user_id || !*user_id) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "user id is empty");
  int rc = user_load(auth_db(a), "SELECT " USER_COLS " FROM users WHERE id = ?", user_id, NULL, out,
                     NULL, e);
  if (rc < 0) return rc;
  if (rc == DB_DONE) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "user not found");
  return 0;
}

/* Looks a login (username or email) up; 1 found, 0 not, <0 error. A login
 * too long to be either is simply nobody. */
static int user_lookup(struct auth *a, const char *login, struct auth_user *u, char *hash_out,
                       struct err *e) {
  char lower[EMAIL_MAX + 1];
  if (!login || !*login || lower_into(lower, sizeof lower, login) != 0) return 0;
  return user_load(auth_db(a), "SELECT " USER_COLS " FROM users WHERE username = ? OR email = ?",
                   lower, lower, u, hash_out, e);
}

int auth_user_find(struct auth *a, const char *login, struct auth_user *out, struct err *e) {
  int rc = user_lookup(a, login, out, NULL, e);
  if (rc < 0) return rc;
  if (rc == 0) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "user not found");
  return 0;
}

int auth_user_count(struct auth *a, int64_t *out, struct err *e) {
  struct db *db = auth_db(a);
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -(int)(e ? e->code : ERR_UNAVAILABLE);
  int rc;
  struct db_stmt *s = db_prepare(c, "SELECT COUNT(*) FROM users", e);
  if (!s) {
    rc = -(int)(e ? e->code : ERR_INTERNAL);
  } else {
    rc = db_step(s, e);
    if (rc == DB_ROW) {
      *out = db_col_i64(s, 0);
      rc = 0;
    } else if (rc == DB_DONE) {
      rc = err_set(e, ERR_INTERNAL, "count of users returned no row");
    }
    db_stmt_done(s);
  }
  db_reader_release(db, c);
  return rc;
}

/* ---- creating users ------------------------------------------------------- */

/* Runs one statement that returns no rows. */
static int exec_stmt(struct db_stmt *s, struct err *e) {
  int rc = db_step(s, e);
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

/* 1 when the single-text-parameter query returns a row, 0 when not, <0. */
static int row_exists(struct db_conn *c, const char *sql, const char *v, struct err *e) {
  struct db_stmt *s = db_prepare(c, sql, e);
  if (!s) return -(int)(e ? e->code : ERR_INTERNAL);
  db_bind_text(s, 1, v);
  int rc = db_step(s, e);
  db_stmt_done(s);
  return rc < 0 ? rc : rc == DB_ROW;
}

struct create_job {
  const char *username; /* lower case, validated */
  const char *email;    /* lower case, validated, or NULL */
  const char *hash;     /* argon2 string or NULL: no password login */
  bool is_admin;
  struct auth_user *out;
};

static int create_fn(struct db_conn *c, void *arg, struct err *e) {
  struct create_job *j = arg;
  int rc = row_exists(c, "SELECT 1 FROM users WHERE username = ?", j->username, e);
  if (rc < 0) return rc;
  if (rc)
    return err_set(e, ERR_RESOURCE_ALREADY_EXISTS, "username '%s' is already taken", j->username);
  if (j->email) {
    rc = row_exists(c, "SELECT 1 FROM users WHERE email = ?", j->email, e);
    if (rc < 0) return rc;
    if (rc)
      return err_set(e, ERR_RESOURCE_ALREADY_EXISTS, "email '%s' is already registered", j->email);
  }

  /* The personal org takes the username; when an org already has that name
   * the first free username-N does, so creating a user never fails on an
   * org someone else named. The suffix replaces the tail of a long name to
   * stay within the 64-character name limit. */
  char org_name[USERNAME_MAX + 1];
  int found = 0;
  for (int i = 1; i <= PERSONAL_ORG_TRIES && !found; i++) {
    if (i == 1) {
      str_copy(org_name, sizeof org_name, j->username);
    } else {
      char suffix[16];
      int sn = snprintf(suffix, sizeof suffix, "-%d", i);
      size_t keep = strlen(j->username);
      if (keep + (size_t)sn > USERNAME_MAX) keep = USERNAME_MAX - (size_t)sn;
      snprintf(org_name, sizeof org_name, "%.*s%s", (int)keep, j->username, suffix);
    }
    rc = row_exists(c, "SELECT 1 FROM orgs WHERE name = ?", org_name, e);
    if (rc < 0) return rc;
    found = !rc;
  }
  if (!found)
    return err_set(e, ERR_CONFLICT, "no free name for the personal org of '%s'", j->username);

  char user_id[AUTH_ID_LEN + 1], org_id[AUTH_ID_LEN + 1], project_id[AUTH_ID_LEN + 1];
  id_random_hex(user_id, 16);
  id_random_hex(org_id, 16);
  id_random_hex(project_id, 16);
  int64_t now = time_wall_ms();

  struct db_stmt *s = db_prepare(
      c,
      "INSERT INTO users (id, username, email, display_name, password_hash, is_admin, disabled,"
      " must_change_password, default_project_id, created_at, updated_at)"
      " VALUES (?, ?, ?, NULL, ?, ?, 0, 0, NULL, ?, ?)",
      e);
  if (!s) return -(int)(e ? e->code : ERR_INTERNAL);
  db_bind_text(s, 1, user_id);
  db_bind_text(s, 2, j->username);
  db_bind_text(s, 3, j->email);
  db_bind_text(s, 4, j->hash);
  db_bind_i64(s, 5, j->is_admin ? 1 : 0);
  db_bind_i64(s, 6, now);
  db_bind_i64(s, 7, now);
  if ((rc = exec_stmt(s, e)) < 0) return rc;

  s = db_prepare(c,
                 "INSERT INTO orgs (id, name, display_name, created_at, updated_at)"
                 " VALUES (?, ?, ?, ?, ?)",
                 e);
  if (!s) return -(int)(e ? e->code : ERR_INTERNAL);
  db_bind_text(s, 1, org_id);
  db_bind_text(s, 2, org_name);
  db_bind_text(s, 3, j->username);
  db_bind_i64(s, 4, now);
  db_bind_i64(s, 5, now);
  if ((rc = exec_stmt(s, e)) < 0) return rc;

  s = db_prepare(
      c, "INSERT INTO org_members (org_id, user_id, role, created_at) VALUES (?, ?, ?, ?)", e);
  if (!s) return -(int)(e ? e->code : ERR_INTERNAL);
  db_bind_text(s, 1, org_id);
  db_bind_text(s, 2, user_id);
  db_bind_text(s, 3, org_role_name(ORG_ROLE_OWNER));
  db_bind_i64(s, 4, now);
  if ((rc = exec_stmt(s, e)) < 0) return rc;

  s = db_prepare(c,
                 "INSERT INTO projects (id, org_id, name, description, created_at, updated_at)"
                 " VALUES (?, ?, 'default', ?, ?, ?)",
                 e);
  if (!s) return -(int)(e ? e->code : ERR_INTERNAL);
  db_bind_text(s, 1, project_id);
  db_bind_text(s, 2, org_id);
  db_bind_text(s, 3, "Default project");
  db_bind_i64(s, 4, now);
  db_bind_i64(s, 5, now);
  if ((rc = exec_stmt(s, e)) < 0) return rc;

  s = db_prepare(
      c, "INSERT INTO project_members (project_id, user_id, role, created_at) VALUES (?, ?, ?, ?)",
      e);
  if (!s) return -(int)(e ? e->code : ERR_INTERNAL);
  db_bind_text(s, 1, project_id);
  db_bind_text(s, 2, user_id);
  db_bind_text(s, 3, project_role_name(PROJECT_ROLE_ADMIN));
  db_bind_i64(s, 4, now);
  if ((rc = exec_stmt(s, e)) < 0) return rc;

  /* set after the project exists, so the reference is never dangling */
  s = db_prepare(c, "UPDATE users SET default_project_id = ? WHERE id = ?", e);
  if (!s) return -(int)(e ? e->code : ERR_INTERNAL);
  db_bind_text(s, 1, project_id);
  db_bind_text(s, 2, user_id);
  if ((rc = exec_stmt(s, e)) < 0) return rc;

  if (j->out) {
    struct auth_user *u = j->out;
    memset(u, 0, sizeof *u);
    str_copy(u->id, sizeof u->id, user_id);
    str_copy(u->username, sizeof u->username, j->username);
    if (j->email) str_copy(u->email, sizeof u->email, j->email);
    u->is_admin = j->is_admin;
    str_copy(u->default_project_id, sizeof u->default_project_id, project_id);
    u->created_at = now;
  }
  return 0;
}

/* A NULL password makes an account that cannot log in with a password
 * (one that only signs in through a linked external identity). */
int auth_user_create(struct auth *a, const char *username, const char *email, const char *password,
                     bool is_admin, struct auth_user *out, struct err *e) {
  int rc = auth_username_check(username, e);
  if (rc < 0) return rc;
  char uname[USERNAME_MAX + 1];
  lower_into(uname, sizeof uname, username); /* fits: checked above */
  char mail[EMAIL_MAX + 1];
  bool has_email = email && *email;
  if (has_email) {
    if ((rc = auth_email_check(email, e)) < 0) return rc;
    lower_into(mail, sizeof mail, email);
  }
  /* Hashing happens here, on the caller's thread: argon2 on the writer
   * would stall every other write for its whole duration. */
  char hash[crypto_pwhash_STRBYTES];
  bool has_hash = password != NULL;
  if (has_hash) {
    if ((rc = auth_password_policy(password, e)) < 0) return rc;
    if ((rc = auth_password_hash(a, password, hash, e)) < 0) return rc;
  }
  struct create_job j = {.username = uname,
                         .email = has_email ? mail : NULL,
                         .hash = has_hash ? hash : NULL,
                         .is_admin = is_admin,
                         .out = out};
  return db_write(auth_db(a), create_fn, &j, e);
}

/* ---- login ------------------------------------------------------------------ */

int auth_login(struct auth *a, const char *login, const char *password, const char *client_addr,
               struct auth_user *out, int64_t *retry_after_s, struct err *e) {
  if (retry_after_s) *retry_after_s = 0;
  struct auth_throttle *t = auth_throttle_of(a);
  struct auth_user u;
  char hash[crypto_pwhash_STRBYTES];
  int found = user_lookup(a, login, &u, hash, e);
  if (found < 0) return found;

  /* The throttle counts per account under one name whichever login names
   * it, so alternating username and email gains no extra attempts. An
   * unknown login is throttled under its own (lower-cased) text, exactly
   * like a real one, so backoff reveals nothing either. */
  char account[EMAIL_MAX + 1];
  if (found)
    str_copy(account, sizeof account, u.username);
  else {
    /* bounded: an over-long login is nobody, throttled under its prefix */
    str_copy(account, sizeof account, login ? login : "");
    for (char *p = account; *p; p++) *p = (char)ascii_lower((unsigned char)*p);
  }

  int64_t wait = auth_throttle_wait(t, account, client_addr, time_wall_ms());
  if (wait > 0) {
    if (retry_after_s) *retry_after_s = wait;
    return err_set(e, ERR_RATE_LIMITED, "too many failed logins; retry in %lld s", (long long)wait);
  }

  bool ok;
  if (found && hash[0]) {
    ok = auth_password_check(hash, password ? password : "");
  } else {
    char dummy[crypto_pwhash_STRBYTES];
    dummy_hash_get(a, dummy);
    (void)auth_password_check(dummy, password ? password : "");
    ok = false;
  }
  sodium_memzero(hash, sizeof hash);
  if (ok && u.disabled) ok = false; /* after the verify: same time, same answer */
  if (!ok) {
    auth_throttle_failed(t, account, client_addr, time_wall_ms());
    return err_set(e, ERR_UNAUTHENTICATED, "%s", bad_login_msg);
  }
  auth_throttle_succeeded(t, account, client_addr);
  if (out) *out = u;
  return 0;
}

/* ---- password change and reset --------------------------------------------- */

struct pwchange_job {
  const char *user_id;
  const char *old_hash; /* the hash verified against, or NULL for a reset */
  const char *new_hash;
  bool must_change;
};

static int pwchange_fn(struct db_conn *c, void *arg, struct err *e) {
  struct pwchange_job *j = arg;
  int64_t now = time_wall_ms();
  /* With the old hash in the WHERE, a password changed by someone else
   * since it was verified makes this a conflict instead of a silent
   * overwrite. */
  struct db_stmt *s = db_prepare(
      c,
      j->old_hash ? "UPDATE users SET password_hash = ?, must_change_password = ?, updated_at = ?"
                    " WHERE id = ? AND password_hash = ?"
                  : "UPDATE users SET password_hash = ?, must_change_password = ?, updated_at = ?"
                    " WHERE id = ?",
      e);
  if (!s) return -(int)(e ? e->code : ERR_INTERNAL);
  db_bind_text(s, 1, j->new_hash);
  db_bind_i64(s, 2, j->must_change ? 1 : 0);
  db_bind_i64(s, 3, now);
  db_bind_text(s, 4, j->user_id);
  if (j->old_hash) db_bind_text(s, 5, j->old_hash);
  int rc = exec_stmt(s, e);
  if (rc < 0) return rc;
  if (db_changes(c) == 0)
    return j->old_hash ? err_set(e, ERR_CONFLICT, "the password was changed meanwhile; try again")
                       : err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "user not found");

  /* Whoever knew the old password may hold tokens or sessions made with
   * it: end them all. */
  static const char *const revoke[] = {
      "UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
      "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
  };
  for (size_t i = 0; i < sizeof revoke / sizeof revoke[0]; i++) {
    s = db_prepare(c, revoke[i], e);
    if (!s) return -(int)(e ? e->code : ERR_INTERNAL);
    db_bind_i64(s, 1, now);
    db_bind_text(s, 2, j->user_id);
    if ((rc = exec_stmt(s, e)) < 0) return rc;
  }
  return 0;
}

int auth_password_change(struct auth *a, const char *user_id, const char *old_password,
                         const char *new_password, struct err *e) {
  if (!user_id || !*user_id) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "user id is empty");
  struct auth_user u;
  char hash[crypto_pwhash_STRBYTES];
  int rc = user_load(auth_db(a), "SELECT " USER_COLS " FROM users WHERE id = ?", user_id, NULL, &u,
                     hash, e);
  if (rc < 0) return rc;
  if (rc == DB_DONE) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "user not found");

  if (old_password) {
    /* Guessing the current password here is the same attack as guessing it
     * at login, so it shares the account's backoff. */
    struct auth_throttle *t = auth_throttle_of(a);
    int64_t wait = auth_throttle_wait(t, u.username, NULL, time_wall_ms());
    if (wait > 0)
      return err_set(e, ERR_RATE_LIMITED, "too many failed attempts; retry in %lld s",
                     (long long)wait);
    if (!hash[0] || !auth_password_check(hash, old_password)) {
      auth_throttle_failed(t, u.username, NULL, time_wall_ms());
      return err_set(e, ERR_UNAUTHENTICATED, "the current password is incorrect");
    }
  }
  if ((rc = auth_password_policy(new_password, e)) < 0) return rc;
  char new_hash[crypto_pwhash_STRBYTES];
  if ((rc = auth_password_hash(a, new_password, new_hash, e)) < 0) return rc;
  struct pwchange_job j = {.user_id = user_id,
                           .old_hash = old_password ? hash : NULL,
                           .new_hash = new_hash,
                           .must_change = old_password == NULL};
  rc = db_write(auth_db(a), pwchange_fn, &j, e);
  if (rc == 0) auth_basic_forget_user(user_id); /* old Basic credentials stop now */
  return rc;
}

/* ---- first-start admin -------------------------------------------------------- */

/* 20 characters from [A-Za-z0-9] with each class present. Drawing again
 * when a class is missing (rather than patching one position) keeps every
 * acceptable password equally likely. */
static void generate_password(char out[ADMIN_PASSWORD_LEN + 1]) {
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  for (;;) {
    bool lower = false, upper = false, digit = false;
    for (int i = 0; i < ADMIN_PASSWORD_LEN; i++) {
      uint32_t k = randombytes_uniform(62);
      out[i] = alphabet[k];
      if (k < 26)
        lower = true;
      else if (k < 52)
        upper = true;
      else
        digit = true;
    }
    out[ADMIN_PASSWORD_LEN] = 0;
    if (lower && upper && digit) return;
  }
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Writes the file readable by its owner only. O_EXCL on a fresh file; an
 * old file (a previous bootstrap whose database was wiped) is replaced via a
 * private temp file and rename, so the secret never lands in a file someone
 * else could have opened or linked in advance. */
static int write_secret_file(const char *dir, const char *content, struct err *e) {
  char path[4096], tmp[4096];
  int n = snprintf(path, sizeof path, "%s/%s", dir, ADMIN_PASSWORD_FILE);
  if (n < 0 || (size_t)n >= sizeof path)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "data directory path is too long");
  const char *target = path;
  int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0 && errno == EEXIST) {
    char rnd[17];
    id_random_hex(rnd, 8);
    n = snprintf(tmp, sizeof tmp, "%s/.%s.%s.tmp", dir, ADMIN_PASSWORD_FILE, rnd);
    if (n < 0 || (size_t)n >= sizeof tmp)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "data directory path is too long");
    target = tmp;
    fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
  }
  if (fd < 0) return err_set(e, ERR_IO, "cannot create %s: %s", path, strerror(errno));
  int bad = write_all(fd, content, strlen(content)) != 0 || fsync(fd) != 0;
  int saved = errno;
  if (close(fd) != 0 && !bad) {
    bad = 1;
    saved = errno;
  }
  if (!bad && target != path && rename(tmp, path) != 0) {
    bad = 1;
    saved = errno;
  }
  if (bad) {
    unlink(target);
    return err_set(e, ERR_IO, "cannot write %s: %s", path, strerror(saved));
  }
  /* make the new directory entry durable too */
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
  return 0;
}

int auth_bootstrap_admin(struct auth *a, const char *env_password, const char *data_dir,
                         bool *created, char generated[65], struct err *e) {
  *created = false;
  generated[0] = 0;
  /* warm the unknown-user hash now, so the first failed login at runtime
   * does not take twice as long as the rest */
  char dummy[crypto_pwhash_STRBYTES];
  dummy_hash_get(a, dummy);

  int64_t count = 0;
  int rc = auth_user_count(a, &count, e);
  if (rc < 0) return rc;
  if (count > 0) return 0;

  bool from_env = env_password && *env_password;
  char pw[ADMIN_PASSWORD_LEN + 1];
  if (from_env) {
    struct err pe;
    if (auth_password_policy(env_password, &pe) < 0)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "KILN_ADMIN_PASSWORD is too weak: %s", pe.msg);
  } else {
    generate_password(pw);
    if (data_dir && *data_dir && (rc = write_secret_file(data_dir, pw, e)) < 0) {
      sodium_memzero(pw, sizeof pw);
      return rc;
    }
  }
  rc = auth_user_create(a, "admin", NULL, from_env ? env_password : pw, true, NULL, e);
  if (rc < 0) {
    if (!from_env && data_dir && *data_dir) {
      /* the file must never hold a password no account has */
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", data_dir, ADMIN_PASSWORD_FILE);
      unlink(path);
    }
    sodium_memzero(pw, sizeof pw);
    /* another process bootstrapped between the count and the insert */
    if (rc == -ERR_RESOURCE_ALREADY_EXISTS) {
      err_clear(e);
      return 0;
    }
    return rc;
  }
  *created = true;
  if (!from_env) str_copy(generated, 65, pw);
  sodium_memzero(pw, sizeof pw);
  return 0;
}

/* ---- external identities ------------------------------------------------------- */

struct link_job {
  const char *user_id, *provider, *subject;
};

static int link_fn(struct db_conn *c, void *arg, struct err *e) {
  struct link_job *j = arg;
  int rc = row_exists(c, "SELECT 1 FROM users WHERE id = ?", j->user_id, e);
  if (rc < 0) return rc;
  if (!rc) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "user not found");
  struct db_stmt *s =
      db_prepare(c, "SELECT user_id FROM user_identities WHERE provider = ? AND subject = ?", e);
  if (!s) return -(int)(e ? e->code : ERR_INTERNAL);
  db_bind_text(s, 1, j->provider);
  db_bind_text(s, 2, j->subject);
  rc = db_step(s, e);
  if (rc == DB_ROW) {
    bool same = str_eq(db_col_text(s, 0), j->user_id);
    db_stmt_done(s);
    if (same) return 0; /* linking twice is a no-op */
    return err_set(e, ERR_RESOURCE_ALREADY_EXISTS,
                   "this %s identity is already linked to another user", j->provider);
  }
  db_stmt_done(s);
  if (rc < 0) return rc;
  s = db_prepare(c,
                 "INSERT INTO user_identities (provider, subject, user_id, created_at)"
                 " VALUES (?, ?, ?, ?)",
                 e);
  if (!s) return -(int)(e ? e->code : ERR_INTERNAL);
  db_bind_text(s, 1, j->provider);
  db_bind_text(s, 2, j->subject);
  db_bind_text(s, 3, j->user_id);
  db_bind_i64(s, 4, time_wall_ms());
  return exec_stmt(s, e);
}

static int identity_check(const char *provider, const char *subject, struct err *e) {
  if (!provider || !*provider)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "identity provider must not be empty");
  if (strlen(provider) > PROVIDER_MAX)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "identity provider must be at most %d characters", PROVIDER_MAX);
  if (!subject || !*subject)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "identity subject must not be empty");
  if (strlen(subject) > SUBJECT_MAX)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "identity subject must be at most %d characters",
                   SUBJECT_MAX);
  return 0;
}

int auth_identity_link(struct auth *a, const char *user_id, const char *provider,
                       const char *subject, struct err *e) {
  if (!user_id || !*user_id) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "user id is empty");
  int rc = identity_check(provider, subject, e);
  if (rc < 0) return rc;
  struct link_job j = {.user_id = user_id, .provider = provider, .subject = subject};
  return db_write(auth_db(a), link_fn, &j, e);
}

int auth_identity_find(struct auth *a, const char *provider, const char *subject,
                       struct auth_user *out, struct err *e) {
  int rc = identity_check(provider, subject, e);
  if (rc < 0) return rc;
  /* subjects are compared exactly: providers treat them as opaque and
   * case-sensitive (OIDC `sub`) */
  rc = user_load(auth_db(a),
                 "SELECT u.id, u.username, u.email, u.display_name, u.is_admin, u.disabled,"
                 " u.must_change_password, u.default_project_id, u.created_at, u.password_hash"
                 " FROM user_identities i JOIN users u ON u.id = i.user_id"
                 " WHERE i.provider = ? AND i.subject = ?",
                 provider, subject, out, NULL, e);
  if (rc < 0) return rc;
  if (rc == DB_DONE) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "no user has this identity");
  return 0;
}

/* ---- self-signup --------------------------------------------------------------- */

/* Each client address may create 5 accounts freely, then waits 1, 2, 4, ...
 * seconds between sign-ups (the login throttle's curve, on its own key). */
int auth_signup(struct auth *a, const char *username, const char *email, const char *password,
                const char *client_addr, struct auth_user *out, int64_t *retry_after_s,
                struct err *e) {
  *retry_after_s = 0;
  if (!auth_options(a)->allow_signup)
    return err_set(e, ERR_PERMISSION_DENIED,
                   "self-signup is turned off on this server; ask an administrator for an "
                   "account (or start the server with --allow-signup)");
  char key[80];
  snprintf(key, sizeof key, "signup\x01%s", client_addr ? client_addr : "");
  int64_t now = time_wall_ms();
  struct auth_throttle *t = auth_throttle_of(a);
  int64_t wait = auth_throttle_wait(t, key, NULL, now);
  if (wait > 0) {
    *retry_after_s = wait;
    return err_set(e, ERR_RATE_LIMITED, "too many sign-ups from this address; retry in %lld s", (long long)wait);
  }
  /* Every attempt counts, from when it ends: the argon2 hash inside takes
   * a good part of a second and must not eat into the wait. */
  int rc = (!email || !*email)
               ? err_set(e, ERR_INVALID_PARAMETER_VALUE, "an email is required to sign up")
               : auth_user_create(a, username, email, password, false, out, e);
  auth_throttle_failed(t, key, NULL, time_wall_ms());
  return rc;
}
