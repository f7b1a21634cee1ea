/* tests for auth/users: validation, the password policy, hashing, user
 * creation with its personal org and default project, login (identical
 * failures, equal timing, throttling), password change/reset, the first-start
 * admin and external identity links. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth.h"
#include "fixture.h"

static char dir[64];
static struct db *db;
static struct auth *au;

static void setup(void) {
  auth_fixture_open("kiln-users", dir, &db, &au);
}

static void teardown(void) { auth_fixture_close(dir, db, au); }

TestSuite(users, .init = setup, .fini = teardown);
TestSuite(passwords, .init = setup, .fini = teardown);
TestSuite(login, .init = setup, .fini = teardown);
TestSuite(bootstrap, .init = setup, .fini = teardown);

/* ---- helpers: raw SQL, so these tests lean on no other file of the room ---- */

static int exec_fn(struct db_conn *c, void *arg, struct err *e) { return db_exec(c, arg, e); }

static void sql_exec(const char *sql) {
  struct err e;
  cr_assert_eq(db_write(db, exec_fn, (void *)sql, &e), 0, "%s: %s", sql, e.msg);
}

/* The first column of the first row as an integer (-1 when no row); the
 * query takes up to two text parameters. */
static int64_t q_i64(const char *sql, const char *p1, const char *p2) {
  struct err e;
  struct db_conn *c = db_reader_acquire(db, &e);
  cr_assert_not_null(c, "%s", e.msg);
  struct db_stmt *s = db_prepare(c, sql, &e);
  cr_assert_not_null(s, "%s: %s", sql, e.msg);
  if (p1) db_bind_text(s, 1, p1);
  if (p2) db_bind_text(s, 2, p2);
  int rc = db_step(s, &e);
  cr_assert_geq(rc, 0, "%s", e.msg);
  int64_t v = rc == DB_ROW ? db_col_i64(s, 0) : -1;
  db_stmt_done(s);
  db_reader_release(db, c);
  return v;
}

/* The same for text; "" when no row or NULL. */
static void q_text(const char *sql, const char *p1, const char *p2, char *out, size_t cap) {
  struct err e;
  struct db_conn *c = db_reader_acquire(db, &e);
  cr_assert_not_null(c, "%s", e.msg);
  struct db_stmt *s = db_prepare(c, sql, &e);
  cr_assert_not_null(s, "%s: %s", sql, e.msg);
  if (p1) db_bind_text(s, 1, p1);
  if (p2) db_bind_text(s, 2, p2);
  int rc = db_step(s, &e);
  cr_assert_geq(rc, 0, "%s", e.msg);
  const char *t = rc == DB_ROW ? db_col_text(s, 0) : NULL;
  str_copy(out, cap, t ? t : "");
  db_stmt_done(s);
  db_reader_release(db, c);
}

static void make_user(const char *username, const char *email, const char *password,
                      struct auth_user *u) {
  struct err e;
  cr_assert_eq(auth_user_create(au, username, email, password, false, u, &e), 0, "%s", e.msg);
}

static void policy_refuses(const char *pw, const char *msg_part) {
  struct err e;
  err_clear(&e);
  cr_assert_eq(auth_password_policy(pw, &e), -ERR_INVALID_PARAMETER_VALUE, "'%s' should fail", pw);
  cr_assert(strstr(e.msg, msg_part) != NULL, "'%s': message '%s' lacks '%s'", pw, e.msg, msg_part);
}

static void policy_accepts(const char *pw) {
  struct err e;
  err_clear(&e);
  cr_assert_eq(auth_password_policy(pw, &e), 0, "'%s' should pass: %s", pw, e.msg);
}

/* ---- users ---------------------------------------------------------------- */

Test(users, usernames_follow_the_documented_rules) {
  struct err e;
  cr_assert_eq(auth_username_check("alice", &e), 0);
  cr_assert_eq(auth_username_check("a", &e), 0);
  cr_assert_eq(auth_username_check("Bob.Smith_2-x", &e), 0, "upper case is folded, not refused");
  cr_assert_eq(auth_username_check("9lives", &e), 0);
  char max[65];
  memset(max, 'x', 64);
  max[64] = 0;
  cr_assert_eq(auth_username_check(max, &e), 0, "64 characters is the limit");
  char over[66];
  memset(over, 'x', 65);
  over[65] = 0;
  cr_assert_eq(auth_username_check(over, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "at most 64") != NULL, "%s", e.msg);
  cr_assert_eq(auth_username_check("", &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_username_check(NULL, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_username_check(".alice", &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "start with a letter or digit") != NULL, "%s", e.msg);
  cr_assert_eq(auth_username_check("-alice", &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_username_check("al ice", &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_username_check("al@ice", &e), -ERR_INVALID_PARAMETER_VALUE,
               "an '@' would make a username look like an email at login");
  cr_assert_eq(auth_username_check("al\xc3\xa9", &e), -ERR_INVALID_PARAMETER_VALUE);
}

Test(users, emails_are_checked_pragmatically) {
  struct err e;
  const char *good[] = {"a@b.co", "first.last+tag@example.com", "USER@Example.COM",
                        "o'brien@mail.example.org", "x_y-z@sub-domain.example.io"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    cr_assert_eq(auth_email_check(good[i], &e), 0, "%s: %s", good[i], e.msg);
  const struct {
    const char *email, *msg;
  } bad[] = {
      {"", "must not be empty"},
      {"plainaddress", "exactly one '@'"},
      {"a@b@c.com", "exactly one '@'"},
      {"@example.com", "before the '@'"},
      {"alice@", "domain after"},
      {"alice@localhost", "must contain a '.'"},
      {"al ice@example.com", "not allowed before"},
      {".alice@example.com", "'.'"},
      {"alice.@example.com", "'.'"},
      {"al..ice@example.com", "'.'"},
      {"alice@exa_mple.com", "only letters, digits"},
      {"alice@example..com", "empty label"},
      {"alice@-example.com", "start or end with '-'"},
      {"alice@example.com.", "empty label"},
      {"alice@10.0.0.1", "not a number"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err_clear(&e);
    cr_assert_eq(auth_email_check(bad[i].email, &e), -ERR_INVALID_PARAMETER_VALUE, "%s",
                 bad[i].email);
    cr_assert(strstr(e.msg, bad[i].msg) != NULL, "%s: '%s' lacks '%s'", bad[i].email, e.msg,
              bad[i].msg);
  }
  char local[80];
  memset(local, 'a', 65);
  snprintf(local + 65, sizeof local - 65, "@example.com");
  cr_assert_eq(auth_email_check(local, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "at most 64") != NULL, "%s", e.msg);
  char label[100];
  snprintf(label, sizeof label, "a@");
  memset(label + 2, 'b', 64);
  snprintf(label + 66, sizeof label - 66, ".com");
  cr_assert_eq(auth_email_check(label, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "at most 63") != NULL, "%s", e.msg);
  char longmail[400];
  memset(longmail, 0, sizeof longmail);
  snprintf(longmail, sizeof longmail, "a@");
  for (int i = 0; i < 5; i++) {
    size_t n = strlen(longmail);
    memset(longmail + n, 'c', 60);
    longmail[n + 60] = '.';
  }
  snprintf(longmail + strlen(longmail), sizeof longmail - strlen(longmail), "com");
  cr_assert_gt(strlen(longmail), 254);
  cr_assert_eq(auth_email_check(longmail, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "at most 254") != NULL, "%s", e.msg);
}

Test(users, create_makes_a_personal_org_and_default_project_with_memberships) {
  struct auth_user u;
  make_user("Alice", "Alice@Example.COM", "Tr0ub4dor&3x", &u);
  cr_assert_eq(strlen(u.id), 32);
  cr_assert_str_eq(u.username, "alice", "stored lower case");
  cr_assert_str_eq(u.email, "alice@example.com", "stored lower case");
  cr_assert_not(u.is_admin);
  cr_assert_not(u.must_change_password);
  cr_assert_eq(strlen(u.default_project_id), 32);
  cr_assert_gt(u.created_at, 0);

  char org_id[40], buf[64];
  q_text("SELECT org_id FROM org_members WHERE user_id = ?", u.id, NULL, org_id, sizeof org_id);
  cr_assert_eq(strlen(org_id), 32, "an org membership exists");
  q_text("SELECT role FROM org_members WHERE user_id = ? AND org_id = ?", u.id, org_id, buf,
         sizeof buf);
  cr_assert_str_eq(buf, "owner");
  q_text("SELECT name FROM orgs WHERE id = ?", org_id, NULL, buf, sizeof buf);
  cr_assert_str_eq(buf, "alice", "the personal org is named after the user");

  q_text("SELECT org_id FROM projects WHERE id = ?", u.default_project_id, NULL, buf, sizeof buf);
  cr_assert_str_eq(buf, org_id, "the default project lives in the personal org");
  q_text("SELECT name FROM projects WHERE id = ?", u.default_project_id, NULL, buf, sizeof buf);
  cr_assert_str_eq(buf, "default");
  q_text("SELECT role FROM project_members WHERE project_id = ? AND user_id = ?",
         u.default_project_id, u.id, buf, sizeof buf);
  cr_assert_str_eq(buf, "admin");
  q_text("SELECT default_project_id FROM users WHERE id = ?", u.id, NULL, buf, sizeof buf);
  cr_assert_str_eq(buf, u.default_project_id);
  cr_assert_eq(q_i64("SELECT COUNT(*) FROM org_members WHERE user_id = ?", u.id, NULL), 1);
  cr_assert_eq(q_i64("SELECT COUNT(*) FROM project_members WHERE user_id = ?", u.id, NULL), 1);

  /* the hash is argon2id, never the password */
  q_text("SELECT password_hash FROM users WHERE id = ?", u.id, NULL, buf, sizeof buf);
  cr_assert(str_has_prefix(buf, "$argon2id$"), "%s", buf);

  struct auth_user g;
  struct err e;
  cr_assert_eq(auth_user_get(au, u.id, &g, &e), 0, "%s", e.msg);
  cr_assert_str_eq(g.username, "alice");
  cr_assert_str_eq(g.email, "alice@example.com");
  cr_assert_str_eq(g.default_project_id, u.default_project_id);
  cr_assert_eq(g.created_at, u.created_at);
  cr_assert_eq(auth_user_get(au, "0123456789abcdef0123456789abcdef", &g, &e),
               -ERR_RESOURCE_DOES_NOT_EXIST);
}

Test(users, a_taken_org_name_gets_the_next_free_suffix) {
  sql_exec("INSERT INTO orgs (id, name, created_at, updated_at) VALUES"
           " ('00000000000000000000000000000001', 'bob', 0, 0),"
           " ('00000000000000000000000000000002', 'bob-2', 0, 0)");
  struct auth_user u;
  make_user("bob", NULL, "Tr0ub4dor&3x", &u);
  char buf[80];
  q_text("SELECT o.name FROM orgs o JOIN org_members m ON m.org_id = o.id WHERE m.user_id = ?",
         u.id, NULL, buf, sizeof buf);
  cr_assert_str_eq(buf, "bob-3");
  cr_assert_str_eq(u.email, "", "no email given");

  /* a 64-character name keeps the suffix within the org name limit */
  char longname[65];
  memset(longname, 'z', 64);
  longname[64] = 0;
  char sql[256];
  snprintf(sql, sizeof sql,
           "INSERT INTO orgs (id, name, created_at, updated_at) VALUES"
           " ('00000000000000000000000000000003', '%s', 0, 0)",
           longname);
  sql_exec(sql);
  make_user(longname, NULL, "Tr0ub4dor&3x", &u);
  q_text("SELECT o.name FROM orgs o JOIN org_members m ON m.org_id = o.id WHERE m.user_id = ?",
         u.id, NULL, buf, sizeof buf);
  cr_assert_eq(strlen(buf), 64, "%s", buf);
  cr_assert(strcmp(buf + 62, "-2") == 0, "%s", buf);
}

Test(users, duplicates_are_refused_naming_what_is_taken) {
  struct auth_user u;
  struct err e;
  make_user("carol", "carol@example.com", "Tr0ub4dor&3x", &u);
  cr_assert_eq(auth_user_create(au, "CAROL", "other@example.com", "Tr0ub4dor&3x", false, NULL, &e),
               -ERR_RESOURCE_ALREADY_EXISTS);
  cr_assert(strstr(e.msg, "username") != NULL && strstr(e.msg, "carol") != NULL, "%s", e.msg);
  cr_assert_eq(auth_user_create(au, "carol2", "Carol@EXAMPLE.com", "Tr0ub4dor&3x", false, NULL, &e),
               -ERR_RESOURCE_ALREADY_EXISTS);
  cr_assert(strstr(e.msg, "email") != NULL && strstr(e.msg, "carol@example.com") != NULL, "%s",
            e.msg);
  int64_t n = 0;
  cr_assert_eq(auth_user_count(au, &n, &e), 0);
  cr_assert_eq(n, 1);
  /* the failed attempts left nothing behind: the whole job rolled back */
  cr_assert_eq(q_i64("SELECT COUNT(*) FROM orgs", NULL, NULL), 1);
  cr_assert_eq(q_i64("SELECT COUNT(*) FROM projects", NULL, NULL), 1);
  /* bad input is refused before anything is written */
  cr_assert_eq(auth_user_create(au, "dave", "not-an-email", "Tr0ub4dor&3x", false, NULL, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_user_create(au, "dave", NULL, "short", false, NULL, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "at least 10") != NULL, "%s", e.msg);
  cr_assert_eq(auth_user_create(au, "-dave", NULL, "Tr0ub4dor&3x", false, NULL, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_user_count(au, &n, &e), 0);
  cr_assert_eq(n, 1);
}

Test(users, find_by_username_or_email_in_any_case) {
  struct auth_user u, f;
  struct err e;
  make_user("erin", "Erin.Smith@Example.com", "Tr0ub4dor&3x", &u);
  const char *logins[] = {"erin", "ERIN", "Erin", "erin.smith@example.com",
                          "ERIN.SMITH@EXAMPLE.COM"};
  for (size_t i = 0; i < sizeof logins / sizeof logins[0]; i++) {
    memset(&f, 0, sizeof f);
    cr_assert_eq(auth_user_find(au, logins[i], &f, &e), 0, "%s: %s", logins[i], e.msg);
    cr_assert_str_eq(f.id, u.id, "%s", logins[i]);
  }
  cr_assert_eq(auth_user_find(au, "frank", &f, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(auth_user_find(au, "", &f, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  char huge[600];
  memset(huge, 'q', sizeof huge - 1);
  huge[sizeof huge - 1] = 0;
  cr_assert_eq(auth_user_find(au, huge, &f, &e), -ERR_RESOURCE_DOES_NOT_EXIST,
               "an over-long login is nobody, not a crash");
}

Test(users, count_tracks_created_users) {
  int64_t n = -1;
  struct err e;
  cr_assert_eq(auth_user_count(au, &n, &e), 0);
  cr_assert_eq(n, 0);
  make_user("u1", NULL, "Tr0ub4dor&3x", NULL);
  make_user("u2", "u2@example.com", "Tr0ub4dor&3x", NULL);
  cr_assert_eq(auth_user_count(au, &n, &e), 0);
  cr_assert_eq(n, 2);
}

Test(users, identities_link_to_one_user_and_find_them) {
  struct auth_user a1, a2, f;
  struct err e;
  make_user("gina", NULL, "Tr0ub4dor&3x", &a1);
  make_user("hank", NULL, "Tr0ub4dor&3x", &a2);
  cr_assert_eq(auth_identity_find(au, "oidc:google", "sub-123", &f, &e),
               -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(auth_identity_link(au, a1.id, "oidc:google", "sub-123", &e), 0, "%s", e.msg);
  cr_assert_eq(auth_identity_find(au, "oidc:google", "sub-123", &f, &e), 0, "%s", e.msg);
  cr_assert_str_eq(f.id, a1.id);
  cr_assert_str_eq(f.username, "gina");
  cr_assert_eq(auth_identity_link(au, a1.id, "oidc:google", "sub-123", &e), 0,
               "linking the same pair again is harmless");
  cr_assert_eq(auth_identity_link(au, a2.id, "oidc:google", "sub-123", &e),
               -ERR_RESOURCE_ALREADY_EXISTS);
  cr_assert(strstr(e.msg, "already linked") != NULL, "%s", e.msg);
  cr_assert_eq(q_i64("SELECT COUNT(*) FROM user_identities", NULL, NULL), 1);
  /* subjects are exact: another case is another subject */
  cr_assert_eq(auth_identity_find(au, "oidc:google", "SUB-123", &f, &e),
               -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(auth_identity_link(au, a2.id, "ldap", "sub-123", &e), 0, "%s", e.msg);
  cr_assert_eq(auth_identity_find(au, "ldap", "sub-123", &f, &e), 0);
  cr_assert_str_eq(f.id, a2.id);
  cr_assert_eq(auth_identity_link(au, "0123456789abcdef0123456789abcdef", "ldap", "x", &e),
               -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(auth_identity_link(au, a1.id, "", "x", &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_identity_link(au, a1.id, "ldap", "", &e), -ERR_INVALID_PARAMETER_VALUE);
}

Test(users, an_account_without_a_password_cannot_log_in_with_one) {
  struct auth_user u;
  struct err e;
  make_user("sso", NULL, NULL, &u);
  cr_assert_eq(auth_login(au, "sso", "", NULL, NULL, NULL, &e), -ERR_UNAUTHENTICATED);
  cr_assert_eq(auth_login(au, "sso", "Tr0ub4dor&3x", NULL, NULL, NULL, &e), -ERR_UNAUTHENTICATED);
}

/* ---- passwords ------------------------------------------------------------- */

Test(passwords, the_policy_checks_each_rule_and_says_which_failed) {
  policy_refuses(NULL, "must not be empty");
  policy_refuses("", "at least 10 characters");
  policy_refuses("Abc12345!", "at least 10 characters");
  /* characters, not bytes: 9 two-byte letters are still too short */
  policy_refuses("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
                 "at least 10 characters");
  char big[300];
  memset(big, 0, sizeof big);
  for (int i = 0; i < 257; i++) big[i] = (char)("aB3"[i % 3]);
  policy_refuses(big, "at most 256 bytes");
  big[256] = 0;
  policy_accepts(big);
  policy_refuses("aaaaaaaaaaaa", "repeat a single character");
  policy_refuses("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
                 "repeat a single character");
  policy_refuses("password12", "too common");
  policy_refuses("PassWord12", "too common");
  policy_refuses("1234567890", "too common");
  policy_refuses("qwertyuiop", "too common");
  policy_refuses("abcdefghjk", "at least 2 of");
  policy_refuses("ABCDEFGHJK", "at least 2 of");
  policy_refuses("9876501234", "at least 2 of");
  policy_refuses("!@#$%^&*()_", "at least 2 of");
  policy_accepts("abcdefghj1");
  policy_accepts("correct horse battery");
  policy_accepts("ABCDEFGHJk");
  policy_accepts("\xc3\xa9t\xc3\xa9 \xc3\xa0 la plage");
}

Test(passwords, hashes_verify_only_the_right_password) {
  char h1[128], h2[128];
  struct err e;
  cr_assert_eq(auth_password_hash(au, "Tr0ub4dor&3x", h1, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_password_hash(au, "Tr0ub4dor&3x", h2, &e), 0, "%s", e.msg);
  cr_assert(str_has_prefix(h1, "$argon2id$"), "%s", h1);
  cr_assert_str_neq(h1, h2, "each hash has its own salt");
  cr_assert(strstr(h1, "Tr0ub4dor") == NULL);
  cr_assert(auth_password_check(h1, "Tr0ub4dor&3x"));
  cr_assert(auth_password_check(h2, "Tr0ub4dor&3x"));
  cr_assert_not(auth_password_check(h1, "tr0ub4dor&3x"));
  cr_assert_not(auth_password_check(h1, ""));
  cr_assert_not(auth_password_check(h1, NULL));
  cr_assert_not(auth_password_check(NULL, "Tr0ub4dor&3x"));
  cr_assert_not(auth_password_check("", "Tr0ub4dor&3x"));
  cr_assert_not(auth_password_check("not a hash", "Tr0ub4dor&3x"));
  /* the cost comes from the auth's options */
  char want[64];
  snprintf(want, sizeof want, "m=%zu,t=%llu", (size_t)crypto_pwhash_MEMLIMIT_MIN / 1024,
           (unsigned long long)crypto_pwhash_OPSLIMIT_MIN);
  cr_assert(strstr(h1, want) != NULL, "%s lacks %s", h1, want);
}

static void insert_tokens_and_session(const char *user_id) {
  char sql[512];
  snprintf(sql, sizeof sql,
           "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, created_at, expires_at)"
           " VALUES ('rt1', 'fam1', '%s', 'h1', 1, 9999999999999),"
           " ('rt2', 'fam2', '%s', 'h2', 1, 9999999999999);"
           "INSERT INTO sessions (id, user_id, token_hash, csrf_hash, created_at, expires_at,"
           " last_seen_at) VALUES ('s1', '%s', 'sh1', 'c1', 1, 9999999999999, 1)",
           user_id, user_id, user_id);
  sql_exec(sql);
}

Test(passwords, a_change_needs_the_old_password_and_revokes_tokens_and_sessions) {
  struct auth_user u, other;
  struct err e;
  make_user("ivy", NULL, "Tr0ub4dor&3x", &u);
  make_user("jack", NULL, "Tr0ub4dor&3x", &other);
  insert_tokens_and_session(u.id);
  sql_exec("INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, created_at,"
           " expires_at) SELECT 'rt-other', 'fam3', id, 'h3', 1, 9999999999999 FROM users"
           " WHERE username = 'jack'");
  sql_exec("UPDATE users SET must_change_password = 1 WHERE username = 'ivy'");

  cr_assert_eq(auth_password_change(au, u.id, "wrong-password1", "N3w-passphrase!", &e),
               -ERR_UNAUTHENTICATED);
  cr_assert_eq(
      q_i64("SELECT COUNT(*) FROM refresh_tokens WHERE revoked_at IS NOT NULL", NULL, NULL), 0,
      "a refused change revokes nothing");
  cr_assert_eq(auth_password_change(au, u.id, "Tr0ub4dor&3x", "short", &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "at least 10") != NULL, "%s", e.msg);

  int64_t before = time_wall_ms();
  cr_assert_eq(auth_password_change(au, u.id, "Tr0ub4dor&3x", "N3w-passphrase!", &e), 0, "%s",
               e.msg);
  cr_assert_eq(q_i64("SELECT COUNT(*) FROM refresh_tokens WHERE user_id = ? AND revoked_at IS NOT "
                     "NULL",
                     u.id, NULL),
               2);
  cr_assert_geq(q_i64("SELECT MIN(revoked_at) FROM refresh_tokens WHERE user_id = ?", u.id, NULL),
                before);
  cr_assert_geq(q_i64("SELECT revoked_at FROM sessions WHERE id = 's1'", NULL, NULL), before);
  cr_assert_eq(q_i64("SELECT COUNT(*) FROM refresh_tokens WHERE user_id = ? AND revoked_at IS "
                     "NULL",
                     other.id, NULL),
               1, "other users' tokens are untouched");

  struct auth_user g;
  cr_assert_eq(auth_user_get(au, u.id, &g, &e), 0);
  cr_assert_not(g.must_change_password, "changing it yourself clears the flag");
  cr_assert_eq(auth_login(au, "ivy", "Tr0ub4dor&3x", NULL, NULL, NULL, &e), -ERR_UNAUTHENTICATED);
  cr_assert_eq(auth_login(au, "ivy", "N3w-passphrase!", NULL, &g, NULL, &e), 0, "%s", e.msg);
  cr_assert_eq(
      auth_password_change(au, "0123456789abcdef0123456789abcdef", "x", "N3w-passphrase!", &e),
      -ERR_RESOURCE_DOES_NOT_EXIST);
}

Test(passwords, an_admin_reset_sets_must_change_password) {
  struct auth_user u, g;
  struct err e;
  make_user("kate", NULL, "Tr0ub4dor&3x", &u);
  insert_tokens_and_session(u.id);
  cr_assert_eq(auth_password_change(au, u.id, NULL, "password12", &e), -ERR_INVALID_PARAMETER_VALUE,
               "a reset still obeys the policy");
  cr_assert_eq(auth_password_change(au, u.id, NULL, "Temp0rary-pass", &e), 0, "%s", e.msg);
  cr_assert_eq(auth_user_get(au, u.id, &g, &e), 0);
  cr_assert(g.must_change_password);
  cr_assert_eq(q_i64("SELECT COUNT(*) FROM refresh_tokens WHERE user_id = ? AND revoked_at IS NULL",
                     u.id, NULL),
               0);
  cr_assert_eq(
      q_i64("SELECT COUNT(*) FROM sessions WHERE user_id = ? AND revoked_at IS NULL", u.id, NULL),
      0);
  cr_assert_eq(auth_login(au, "kate", "Temp0rary-pass", NULL, &g, NULL, &e), 0, "%s", e.msg);
  cr_assert(g.must_change_password, "login reports the flag so the UI can ask for a new one");
  cr_assert_eq(auth_password_change(au, u.id, "Temp0rary-pass", "Kate-chose-th1s", &e), 0, "%s",
               e.msg);
  cr_assert_eq(auth_user_get(au, u.id, &g, &e), 0);
  cr_assert_not(g.must_change_password);
  cr_assert_eq(
      auth_password_change(au, "0123456789abcdef0123456789abcdef", NULL, "Temp0rary-pass", &e),
      -ERR_RESOURCE_DOES_NOT_EXIST);
}

/* ---- login ------------------------------------------------------------------ */

Test(login, success_by_username_or_email_and_identical_failures) {
  struct auth_user u, out;
  struct err e;
  int64_t retry = -1;
  make_user("liam", "Liam@Example.com", "Tr0ub4dor&3x", &u);
  cr_assert_eq(auth_login(au, "liam", "Tr0ub4dor&3x", "10.0.0.1", &out, &retry, &e), 0, "%s",
               e.msg);
  cr_assert_str_eq(out.id, u.id);
  cr_assert_eq(retry, 0);
  memset(&out, 0, sizeof out);
  cr_assert_eq(auth_login(au, "LIAM@example.COM", "Tr0ub4dor&3x", "10.0.0.1", &out, &retry, &e), 0,
               "%s", e.msg);
  cr_assert_str_eq(out.id, u.id);

  struct err wrong, unknown, disabled;
  cr_assert_eq(auth_login(au, "liam", "Tr0ub4dor&3y", "10.0.0.1", &out, &retry, &wrong),
               -ERR_UNAUTHENTICATED);
  cr_assert_eq(auth_login(au, "nobody", "Tr0ub4dor&3x", "10.0.0.1", &out, &retry, &unknown),
               -ERR_UNAUTHENTICATED);
  cr_assert_str_eq(wrong.msg, "invalid username or password");
  cr_assert_str_eq(unknown.msg, wrong.msg, "unknown user and wrong password read the same");
  cr_assert_eq(unknown.code, wrong.code);

  sql_exec("UPDATE users SET disabled = 1 WHERE username = 'liam'");
  cr_assert_eq(auth_login(au, "liam", "Tr0ub4dor&3x", "10.0.0.1", &out, &retry, &disabled),
               -ERR_UNAUTHENTICATED, "a disabled user cannot log in even with the password");
  cr_assert_str_eq(disabled.msg, wrong.msg);
  cr_assert_eq(auth_login(au, NULL, NULL, NULL, NULL, NULL, &e), -ERR_UNAUTHENTICATED);
}

static int64_t min_of(const int64_t *v, int n) {
  int64_t m = v[0];
  for (int i = 1; i < n; i++)
    if (v[i] < m) m = v[i];
  return m;
}

Test(login, an_unknown_user_costs_the_same_time_as_a_wrong_password) {
  struct auth_user u;
  struct err e;
  make_user("mia", NULL, "Tr0ub4dor&3x", &u);
  char h[128];
  cr_assert_eq(auth_password_hash(au, "Tr0ub4dor&3x", h, &e), 0);
  /* warm both paths (first reads, the dummy hash) before measuring */
  (void)auth_login(au, "ghost-0", "Tr0ub4dor&3y", "192.0.2.1", NULL, NULL, &e);
  int64_t wrong[5], unknown[5], bare[5];
  for (int i = 0; i < 5; i++) {
    /* distinct addresses: the address counter must not throttle this test */
    char addr[32], ghost[32];
    snprintf(addr, sizeof addr, "192.0.2.%d", 10 + i);
    snprintf(ghost, sizeof ghost, "ghost-%d", i + 1);
    int64_t t0 = time_mono_us();
    cr_assert_eq(auth_login(au, "mia", "Tr0ub4dor&3y", addr, NULL, NULL, &e), -ERR_UNAUTHENTICATED);
    int64_t t1 = time_mono_us();
    cr_assert_eq(auth_login(au, ghost, "Tr0ub4dor&3y", addr, NULL, NULL, &e), -ERR_UNAUTHENTICATED);
    int64_t t2 = time_mono_us();
    cr_assert_not(auth_password_check(h, "Tr0ub4dor&3y"));
    int64_t t3 = time_mono_us();
    wrong[i] = t1 - t0;
    unknown[i] = t2 - t1;
    bare[i] = t3 - t2;
  }
  int64_t w = min_of(wrong, 5), un = min_of(unknown, 5), v = min_of(bare, 5);
  cr_assert_leq(un, 3 * w, "unknown %lld us vs wrong password %lld us", (long long)un,
                (long long)w);
  cr_assert_leq(w, 3 * un, "wrong password %lld us vs unknown %lld us", (long long)w,
                (long long)un);
  /* and the unknown-user path really spends an argon2 verify */
  cr_assert_geq(2 * un, v, "unknown %lld us vs one verify %lld us", (long long)un, (long long)v);
}

Test(login, five_failures_then_rate_limited_even_with_the_right_password) {
  struct auth_user u;
  struct err e;
  int64_t retry = -1;
  make_user("noah", "noah@example.com", "Tr0ub4dor&3x", &u);
  for (int i = 0; i < 5; i++) {
    cr_assert_eq(auth_login(au, "noah", "bad-password-1", "198.51.100.1", NULL, &retry, &e),
                 -ERR_UNAUTHENTICATED, "failure %d", i + 1);
    cr_assert_eq(retry, 0);
  }
  cr_assert_eq(auth_login(au, "noah", "Tr0ub4dor&3x", "198.51.100.1", NULL, &retry, &e),
               -ERR_RATE_LIMITED);
  cr_assert_geq(retry, 1);
  cr_assert_leq(retry, 900);
  /* the account is throttled whichever login names it, from any address */
  retry = -1;
  cr_assert_eq(auth_login(au, "NOAH@example.com", "Tr0ub4dor&3x", "203.0.113.9", NULL, &retry, &e),
               -ERR_RATE_LIMITED);
  cr_assert_geq(retry, 1);
  /* another account is not */
  make_user("olga", NULL, "Tr0ub4dor&3x", NULL);
  cr_assert_eq(auth_login(au, "olga", "Tr0ub4dor&3x", "198.51.100.1", NULL, &retry, &e), 0, "%s",
               e.msg);
}

Test(login, unknown_accounts_are_throttled_the_same_way) {
  struct err e;
  int64_t retry = 0;
  for (int i = 0; i < 5; i++)
    cr_assert_eq(auth_login(au, "Phantom", "bad-password-1", NULL, NULL, &retry, &e),
                 -ERR_UNAUTHENTICATED);
  cr_assert_eq(auth_login(au, "phantom", "bad-password-1", NULL, NULL, &retry, &e),
               -ERR_RATE_LIMITED, "backoff must not reveal whether the account exists");
  cr_assert_geq(retry, 1);
}

Test(login, a_success_resets_the_account_counter) {
  struct err e;
  int64_t retry = 0;
  make_user("pam", NULL, "Tr0ub4dor&3x", NULL);
  for (int i = 0; i < 4; i++)
    cr_assert_eq(auth_login(au, "pam", "bad-password-1", NULL, NULL, &retry, &e),
                 -ERR_UNAUTHENTICATED);
  cr_assert_eq(auth_login(au, "pam", "Tr0ub4dor&3x", NULL, NULL, &retry, &e), 0, "%s", e.msg);
  for (int i = 0; i < 4; i++)
    cr_assert_eq(auth_login(au, "pam", "bad-password-1", NULL, NULL, &retry, &e),
                 -ERR_UNAUTHENTICATED, "the count started over");
  cr_assert_eq(auth_login(au, "pam", "Tr0ub4dor&3x", NULL, NULL, &retry, &e), 0, "%s", e.msg);
}

/* ---- bootstrap ---------------------------------------------------------------- */

static void read_file(const char *path, char *out, size_t cap) {
  FILE *f = fopen(path, "r");
  cr_assert_not_null(f, "%s", path);
  size_t n = fread(out, 1, cap - 1, f);
  out[n] = 0;
  fclose(f);
}

static bool has_class(const char *s, int (*pred)(int)) {
  for (; *s; s++)
    if (pred((unsigned char)*s)) return true;
  return false;
}
static int is_lower(int c) { return c >= 'a' && c <= 'z'; }
static int is_upper(int c) { return c >= 'A' && c <= 'Z'; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }

Test(bootstrap, a_generated_admin_password_is_written_once_with_mode_0600) {
  bool created = false;
  char pw[65];
  struct err e;
  cr_assert_eq(auth_bootstrap_admin(au, NULL, dir, &created, pw, &e), 0, "%s", e.msg);
  cr_assert(created);
  cr_assert_eq(strlen(pw), 20);
  for (const char *p = pw; *p; p++)
    cr_assert(is_lower(*p) || is_upper(*p) || is_digit(*p), "%s", pw);
  cr_assert(has_class(pw, is_lower) && has_class(pw, is_upper) && has_class(pw, is_digit), "%s",
            pw);

  char path[128], content[128];
  snprintf(path, sizeof path, "%s/initial-admin-password", dir);
  struct stat st;
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
  read_file(path, content, sizeof content);
  cr_assert_str_eq(content, pw);

  struct auth_user u;
  cr_assert_eq(auth_login(au, "admin", pw, NULL, &u, NULL, &e), 0, "%s", e.msg);
  cr_assert(u.is_admin);
  cr_assert_str_eq(u.email, "");
  cr_assert_eq(strlen(u.default_project_id), 32, "the admin has a default project too");
  cr_assert_eq(q_i64("SELECT email IS NULL FROM users WHERE username = 'admin'", NULL, NULL), 1);

  /* a second start finds a user and does nothing */
  char pw2[65] = "untouched";
  cr_assert_eq(auth_bootstrap_admin(au, NULL, dir, &created, pw2, &e), 0, "%s", e.msg);
  cr_assert_not(created);
  cr_assert_str_eq(pw2, "");
  int64_t n = 0;
  cr_assert_eq(auth_user_count(au, &n, &e), 0);
  cr_assert_eq(n, 1);
  read_file(path, content, sizeof content);
  cr_assert_str_eq(content, pw, "the file is left alone");
  cr_assert_eq(auth_bootstrap_admin(au, "An0ther-secret", dir, &created, pw2, &e), 0);
  cr_assert_not(created);
}

Test(bootstrap, an_old_password_file_is_replaced_safely) {
  char path[128], content[128];
  snprintf(path, sizeof path, "%s/initial-admin-password", dir);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs("stale-from-a-wiped-database", f);
  fclose(f);
  cr_assert_eq(chmod(path, 0644), 0);
  bool created = false;
  char pw[65];
  struct err e;
  cr_assert_eq(auth_bootstrap_admin(au, "", dir, &created, pw, &e), 0, "%s", e.msg);
  cr_assert(created, "an empty env password means generate one");
  struct stat st;
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
  read_file(path, content, sizeof content);
  cr_assert_str_eq(content, pw);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "test $(ls -A %s | grep -c tmp) -eq 0", dir);
  cr_assert_eq(system(cmd), 0, "no temp file is left behind");
}

Test(bootstrap, the_env_password_is_used_and_not_written) {
  bool created = false;
  char pw[65] = "x";
  struct err e;
  cr_assert_eq(auth_bootstrap_admin(au, "Adm1n-from-env", dir, &created, pw, &e), 0, "%s", e.msg);
  cr_assert(created);
  cr_assert_str_eq(pw, "", "nothing was generated");
  char path[128];
  snprintf(path, sizeof path, "%s/initial-admin-password", dir);
  cr_assert_neq(access(path, F_OK), 0, "no password file when the operator chose it");
  struct auth_user u;
  cr_assert_eq(auth_login(au, "admin", "Adm1n-from-env", NULL, &u, NULL, &e), 0, "%s", e.msg);
  cr_assert(u.is_admin);
}

Test(bootstrap, a_weak_env_password_is_refused) {
  bool created = true;
  char pw[65];
  struct err e;
  cr_assert_eq(auth_bootstrap_admin(au, "admin", dir, &created, pw, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_not(created);
  cr_assert(strstr(e.msg, "KILN_ADMIN_PASSWORD is too weak") != NULL, "%s", e.msg);
  cr_assert(strstr(e.msg, "at least 10") != NULL, "says which rule: %s", e.msg);
  cr_assert_eq(auth_bootstrap_admin(au, "password12", dir, &created, pw, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "too common") != NULL, "%s", e.msg);
  int64_t n = -1;
  cr_assert_eq(auth_user_count(au, &n, &e), 0);
  cr_assert_eq(n, 0);
}
