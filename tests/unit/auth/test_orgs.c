/* tests for auth/orgs: orgs, projects, memberships, effective roles and
 * invitations, against a real SQLite store. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "fixture.h"

static char dir[64];
static struct db *db;
static struct auth *au;

static void setup(void) {
  auth_fixture_open("kiln-orgs", dir, &db, &au);
}

static void teardown(void) { auth_fixture_close(dir, db, au); }

TestSuite(orgs, .init = setup, .fini = teardown);
TestSuite(projects, .init = setup, .fini = teardown);
TestSuite(invites, .init = setup, .fini = teardown);

static int exec_job(struct db_conn *c, void *arg, struct err *e) { return db_exec(c, arg, e); }

/* Test-controlled SQL only (ids are hex, names are literals). */
static void sql(const char *fmt, ...) {
  char q[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q, sizeof q, fmt, ap);
  va_end(ap);
  struct err e;
  cr_assert_eq(db_write(db, exec_job, q, &e), 0, "%s: %s", q, e.msg);
}

static int64_t count(const char *fmt, ...) {
  char q[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q, sizeof q, fmt, ap);
  va_end(ap);
  struct err e;
  struct db_conn *c = db_reader_acquire(db, &e);
  cr_assert_not_null(c, "%s", e.msg);
  struct db_stmt *s = db_prepare(c, q, &e);
  cr_assert_not_null(s, "%s: %s", q, e.msg);
  cr_assert_eq(db_step(s, &e), DB_ROW, "%s", e.msg);
  int64_t n = db_col_i64(s, 0);
  db_stmt_done(s);
  db_reader_release(db, c);
  return n;
}

static void user_new(char id[AUTH_ID_LEN + 1], const char *username, bool admin) {
  id_random_hex(id, AUTH_ID_LEN / 2);
  sql("INSERT INTO users (id, username, email, is_admin, created_at, updated_at)"
      " VALUES ('%s', '%s', '%s@example.com', %d, 1, 1)",
      id, username, username, admin ? 1 : 0);
}

static void org_new(const char *owner, const char *name, struct auth_org *o) {
  struct err e;
  cr_assert_eq(auth_org_create(au, owner, name, NULL, o, &e), 0, "%s", e.msg);
}

static void project_new(const char *org, const char *name, const char *creator,
                        struct auth_project *p) {
  struct err e;
  cr_assert_eq(auth_project_create(au, org, name, NULL, creator, p, &e), 0, "%s", e.msg);
}

/* ---- orgs ---------------------------------------------------------------- */

Test(orgs, create_returns_the_org_and_makes_the_creator_its_owner) {
  char alice[33];
  user_new(alice, "alice", false);
  struct auth_org o, got;
  struct err e;
  cr_assert_eq(auth_org_create(au, alice, "acme-ml", "Acme ML", &o, &e), 0, "%s", e.msg);
  cr_assert_eq(strlen(o.id), 32);
  cr_assert_str_eq(o.name, "acme-ml");
  cr_assert_str_eq(o.display_name, "Acme ML");
  cr_assert_gt(o.created_at, 0);
  cr_assert_eq(auth_org_get(au, o.id, &got, &e), 0, "%s", e.msg);
  cr_assert_str_eq(got.id, o.id);
  cr_assert_str_eq(got.name, "acme-ml");
  cr_assert_str_eq(got.display_name, "Acme ML");
  cr_assert_eq(got.created_at, o.created_at);
  cr_assert_eq(auth_org_role(au, o.id, alice), ORG_ROLE_OWNER);
  cr_assert_eq(count("SELECT COUNT(*) FROM org_members WHERE org_id = '%s'", o.id), 1);
}

Test(orgs, a_taken_name_is_refused) {
  char alice[33], bob[33];
  user_new(alice, "alice", false);
  user_new(bob, "bob", false);
  struct auth_org o;
  org_new(alice, "acme", &o);
  struct err e;
  cr_assert_eq(auth_org_create(au, bob, "acme", NULL, NULL, &e), -ERR_RESOURCE_ALREADY_EXISTS);
  cr_assert(strstr(e.msg, "acme") != NULL, "%s", e.msg);
  cr_assert_eq(count("SELECT COUNT(*) FROM orgs"), 1);
  cr_assert_eq(auth_org_role(au, o.id, bob), ORG_ROLE_NONE, "the loser gained nothing");
}

Test(orgs, names_are_lowercase_slugs_of_1_to_64_characters) {
  char alice[33];
  user_new(alice, "alice", false);
  struct err e;
  const char *bad[] = {"", "Acme", "acme_ml", "acme ml", "-acme", "acmé", "a/b", "a.b"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_assert_eq(auth_org_create(au, alice, bad[i], NULL, NULL, &e), -ERR_INVALID_PARAMETER_VALUE,
                 "'%s' must be refused", bad[i]);
    cr_assert(strstr(e.msg, "organization name") != NULL, "%s", e.msg);
  }
  cr_assert_eq(auth_org_create(au, alice, NULL, NULL, NULL, &e), -ERR_INVALID_PARAMETER_VALUE);
  char name[70];
  memset(name, 'a', 65);
  name[65] = 0;
  cr_assert_eq(auth_org_create(au, alice, name, NULL, NULL, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "64") != NULL, "%s", e.msg);
  name[64] = 0;
  cr_assert_eq(auth_org_create(au, alice, name, NULL, NULL, &e), 0, "64 is fine: %s", e.msg);
  cr_assert_eq(auth_org_create(au, alice, "0-team-9", NULL, NULL, &e), 0, "%s", e.msg);
  char dn[140];
  memset(dn, 'x', 129);
  dn[129] = 0;
  cr_assert_eq(auth_org_create(au, alice, "long-display", dn, NULL, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  dn[128] = 0;
  cr_assert_eq(auth_org_create(au, alice, "long-display", dn, NULL, &e), 0, "%s", e.msg);
  cr_assert_eq(count("SELECT COUNT(*) FROM orgs"), 3);
}

Test(orgs, the_owner_must_exist_and_nothing_is_left_behind_when_not) {
  struct err e;
  cr_assert_eq(auth_org_create(au, "0123456789abcdef0123456789abcdef", "ghost", NULL, NULL, &e),
               -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(auth_org_create(au, NULL, "ghost", NULL, NULL, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(count("SELECT COUNT(*) FROM orgs"), 0);
  cr_assert_eq(auth_org_get(au, "0123456789abcdef0123456789abcdef", NULL, &e),
               -ERR_RESOURCE_DOES_NOT_EXIST);
}

Test(orgs, member_set_adds_and_changes_roles) {
  char alice[33], bob[33];
  user_new(alice, "alice", false);
  user_new(bob, "bob", false);
  struct auth_org o;
  org_new(alice, "acme", &o);
  struct err e;
  cr_assert_eq(auth_org_role(au, o.id, bob), ORG_ROLE_NONE);
  cr_assert_eq(auth_org_member_set(au, o.id, bob, ORG_ROLE_MEMBER, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_org_role(au, o.id, bob), ORG_ROLE_MEMBER);
  cr_assert_eq(auth_org_member_set(au, o.id, bob, ORG_ROLE_ADMIN, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_org_role(au, o.id, bob), ORG_ROLE_ADMIN);
  cr_assert_eq(auth_org_member_set(au, o.id, bob, ORG_ROLE_OWNER, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_org_role(au, o.id, bob), ORG_ROLE_OWNER);
  cr_assert_eq(count("SELECT COUNT(*) FROM org_members WHERE org_id = '%s'", o.id), 2,
               "an upsert, not a second row");
  cr_assert_eq(auth_org_member_set(au, o.id, bob, ORG_ROLE_NONE, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_org_member_set(au, o.id, bob, (enum org_role)7, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(
      auth_org_member_set(au, o.id, "ffffffffffffffffffffffffffffffff", ORG_ROLE_MEMBER, &e),
      -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert(strstr(e.msg, "user") != NULL, "%s", e.msg);
  cr_assert_eq(
      auth_org_member_set(au, "ffffffffffffffffffffffffffffffff", bob, ORG_ROLE_MEMBER, &e),
      -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert(strstr(e.msg, "organization") != NULL, "%s", e.msg);
}

Test(orgs, the_last_owner_cannot_be_demoted) {
  char alice[33], bob[33];
  user_new(alice, "alice", false);
  user_new(bob, "bob", false);
  struct auth_org o;
  org_new(alice, "acme", &o);
  struct err e;
  cr_assert_eq(auth_org_member_set(au, o.id, alice, ORG_ROLE_ADMIN, &e), -ERR_CONFLICT);
  cr_assert_str_eq(e.msg, "an organization must keep at least one owner");
  cr_assert_eq(auth_org_role(au, o.id, alice), ORG_ROLE_OWNER);
  cr_assert_eq(auth_org_member_set(au, o.id, alice, ORG_ROLE_OWNER, &e), 0,
               "re-setting owner is fine: %s", e.msg);
  /* with a second owner, one may step down; then the other is the last */
  cr_assert_eq(auth_org_member_set(au, o.id, bob, ORG_ROLE_OWNER, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_org_member_set(au, o.id, alice, ORG_ROLE_MEMBER, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_org_role(au, o.id, alice), ORG_ROLE_MEMBER);
  cr_assert_eq(auth_org_member_set(au, o.id, bob, ORG_ROLE_MEMBER, &e), -ERR_CONFLICT);
  cr_assert_eq(auth_org_role(au, o.id, bob), ORG_ROLE_OWNER);
}

Test(orgs, the_last_owner_cannot_be_removed) {
  char alice[33], bob[33];
  user_new(alice, "alice", false);
  user_new(bob, "bob", false);
  struct auth_org o;
  org_new(alice, "acme", &o);
  struct err e;
  cr_assert_eq(auth_org_member_remove(au, o.id, alice, &e), -ERR_CONFLICT);
  cr_assert_str_eq(e.msg, "an organization must keep at least one owner");
  cr_assert_eq(auth_org_role(au, o.id, alice), ORG_ROLE_OWNER);
  cr_assert_eq(auth_org_member_set(au, o.id, bob, ORG_ROLE_OWNER, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_org_member_remove(au, o.id, alice, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_org_role(au, o.id, alice), ORG_ROLE_NONE);
  cr_assert_eq(auth_org_member_remove(au, o.id, bob, &e), -ERR_CONFLICT);
  cr_assert_eq(auth_org_member_remove(au, o.id, alice, &e), -ERR_RESOURCE_DOES_NOT_EXIST,
               "no longer a member");
}

Test(orgs, removal_takes_the_projects_of_that_org_along_and_no_others) {
  char alice[33], bob[33], carol[33];
  user_new(alice, "alice", false);
  user_new(bob, "bob", false);
  user_new(carol, "carol", false);
  struct auth_org acme, other;
  org_new(alice, "acme", &acme);
  org_new(carol, "other", &other);
  struct auth_project p1, p2, q;
  project_new(acme.id, "p1", alice, &p1);
  project_new(acme.id, "p2", alice, &p2);
  project_new(other.id, "q", carol, &q);
  struct err e;
  cr_assert_eq(auth_org_member_set(au, acme.id, bob, ORG_ROLE_MEMBER, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_org_member_set(au, other.id, bob, ORG_ROLE_MEMBER, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_project_member_set(au, p1.id, bob, PROJECT_ROLE_EDITOR, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_project_member_set(au, p2.id, bob, PROJECT_ROLE_ADMIN, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_project_member_set(au, q.id, bob, PROJECT_ROLE_EDITOR, &e), 0, "%s", e.msg);
  sql("UPDATE users SET default_project_id = '%s' WHERE id = '%s'", p1.id, bob);
  cr_assert_eq(auth_org_member_remove(au, acme.id, bob, &e), 0, "%s", e.msg);
  cr_assert_eq(count("SELECT COUNT(*) FROM project_members WHERE user_id = '%s'", bob), 1);
  cr_assert_eq(auth_project_role(au, p1.id, bob), PROJECT_ROLE_NONE);
  cr_assert_eq(auth_project_role(au, p2.id, bob), PROJECT_ROLE_NONE);
  cr_assert_eq(auth_project_role(au, q.id, bob), PROJECT_ROLE_EDITOR, "other org untouched");
  cr_assert_eq(
      count("SELECT COUNT(*) FROM users WHERE id = '%s' AND default_project_id IS NULL", bob), 1,
      "no default project the user can no longer see");
}

Test(orgs, delete_takes_projects_memberships_and_invitations_along) {
  char alice[33];
  user_new(alice, "alice", false);
  struct auth_org o;
  org_new(alice, "acme", &o);
  struct auth_project p;
  project_new(o.id, "p", alice, &p);
  sql("UPDATE users SET default_project_id = '%s' WHERE id = '%s'", p.id, alice);
  char token[AUTH_KEY_MAX], id[33];
  struct err e;
  cr_assert_eq(
      auth_invite_create(au, o.id, NULL, "x@example.com", "member", alice, 3600, token, id, &e), 0,
      "%s", e.msg);
  cr_assert_eq(auth_org_delete(au, o.id, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_org_get(au, o.id, NULL, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(auth_project_get(au, p.id, NULL, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(count("SELECT COUNT(*) FROM org_members"), 0);
  cr_assert_eq(count("SELECT COUNT(*) FROM project_members"), 0);
  cr_assert_eq(count("SELECT COUNT(*) FROM invitations"), 0);
  cr_assert_eq(count("SELECT COUNT(*) FROM users WHERE default_project_id IS NULL"), 1);
  cr_assert_eq(auth_org_delete(au, o.id, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
}

/* ---- projects ------------------------------------------------------------ */

Test(projects, create_makes_the_creator_project_admin) {
  char alice[33];
  user_new(alice, "alice", false);
  struct auth_org o;
  org_new(alice, "acme", &o);
  sql("UPDATE org_members SET role = 'member' WHERE user_id = '%s'", alice);
  struct auth_project p, got;
  struct err e;
  cr_assert_eq(auth_project_create(au, o.id, "churn", "Churn model", alice, &p, &e), 0, "%s",
               e.msg);
  cr_assert_eq(strlen(p.id), 32);
  cr_assert_str_eq(p.org_id, o.id);
  cr_assert_str_eq(p.name, "churn");
  cr_assert_str_eq(p.description, "Churn model");
  cr_assert_eq(auth_project_get(au, p.id, &got, &e), 0, "%s", e.msg);
  cr_assert_str_eq(got.id, p.id);
  cr_assert_str_eq(got.org_id, o.id);
  cr_assert_str_eq(got.name, "churn");
  cr_assert_str_eq(got.description, "Churn model");
  cr_assert_eq(got.created_at, p.created_at);
  cr_assert_eq(count("SELECT COUNT(*) FROM project_members WHERE project_id = '%s' AND user_id ="
                     " '%s' AND role = 'admin'",
                     p.id, alice),
               1);
  cr_assert_eq(auth_project_role(au, p.id, alice), PROJECT_ROLE_ADMIN);
}

Test(projects, names_are_unique_within_an_org_only) {
  char alice[33], bob[33];
  user_new(alice, "alice", false);
  user_new(bob, "bob", false);
  struct auth_org acme, other;
  org_new(alice, "acme", &acme);
  org_new(bob, "other", &other);
  struct auth_project p;
  project_new(acme.id, "default", alice, &p);
  struct err e;
  cr_assert_eq(auth_project_create(au, acme.id, "default", NULL, alice, NULL, &e),
               -ERR_RESOURCE_ALREADY_EXISTS);
  cr_assert(strstr(e.msg, "default") != NULL, "%s", e.msg);
  cr_assert_eq(auth_project_create(au, other.id, "default", NULL, bob, NULL, &e), 0,
               "same name in another org: %s", e.msg);
  cr_assert_eq(count("SELECT COUNT(*) FROM projects"), 2);
}

Test(projects, names_and_descriptions_are_checked) {
  char alice[33];
  user_new(alice, "alice", false);
  struct auth_org o;
  org_new(alice, "acme", &o);
  struct err e;
  cr_assert_eq(auth_project_create(au, o.id, "Churn", NULL, alice, NULL, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "project name") != NULL, "%s", e.msg);
  cr_assert_eq(auth_project_create(au, o.id, "", NULL, alice, NULL, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  char d[600];
  memset(d, 'd', 513);
  d[513] = 0;
  cr_assert_eq(auth_project_create(au, o.id, "p", d, alice, NULL, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "512") != NULL, "%s", e.msg);
  d[512] = 0;
  struct auth_project p;
  cr_assert_eq(auth_project_create(au, o.id, "p", d, alice, &p, &e), 0, "%s", e.msg);
  cr_assert_eq(strlen(p.description), 512);
  cr_assert_eq(
      auth_project_create(au, "ffffffffffffffffffffffffffffffff", "q", NULL, alice, NULL, &e),
      -ERR_RESOURCE_DOES_NOT_EXIST);
}

Test(projects, the_creator_must_belong_to_the_org) {
  char alice[33], mallory[33];
  user_new(alice, "alice", false);
  user_new(mallory, "mallory", false);
  struct auth_org o;
  org_new(alice, "acme", &o);
  struct err e;
  cr_assert_eq(auth_project_create(au, o.id, "p", NULL, mallory, NULL, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "invite them to the organization first") != NULL, "%s", e.msg);
  cr_assert_eq(count("SELECT COUNT(*) FROM projects"), 0);
  /* no creator: a system-made project the org's admins administer */
  struct auth_project p;
  cr_assert_eq(auth_project_create(au, o.id, "p", NULL, NULL, &p, &e), 0, "%s", e.msg);
  cr_assert_eq(count("SELECT COUNT(*) FROM project_members"), 0);
  cr_assert_eq(auth_project_role(au, p.id, alice), PROJECT_ROLE_ADMIN);
}

Test(projects, members_must_belong_to_the_org_first) {
  char alice[33], bob[33];
  user_new(alice, "alice", false);
  user_new(bob, "bob", false);
  struct auth_org o;
  org_new(alice, "acme", &o);
  struct auth_project p;
  project_new(o.id, "p", alice, &p);
  struct err e;
  cr_assert_eq(auth_project_member_set(au, p.id, bob, PROJECT_ROLE_EDITOR, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "invite them to the organization first") != NULL, "%s", e.msg);
  cr_assert_eq(auth_project_role(au, p.id, bob), PROJECT_ROLE_NONE);
  cr_assert_eq(auth_org_member_set(au, o.id, bob, ORG_ROLE_MEMBER, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_project_member_set(au, p.id, bob, PROJECT_ROLE_EDITOR, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_project_role(au, p.id, bob), PROJECT_ROLE_EDITOR);
  cr_assert_eq(auth_project_member_set(au, p.id, bob, PROJECT_ROLE_NONE, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(
      auth_project_member_set(au, "ffffffffffffffffffffffffffffffff", bob, PROJECT_ROLE_EDITOR, &e),
      -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(auth_project_member_set(au, p.id, "ffffffffffffffffffffffffffffffff",
                                       PROJECT_ROLE_EDITOR, &e),
               -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(auth_project_member_remove(au, p.id, bob, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_project_member_remove(au, p.id, bob, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(auth_project_role(au, p.id, bob), PROJECT_ROLE_VIEWER, "back to org-derived");
}

Test(projects, the_effective_role_is_the_higher_of_explicit_and_org_derived) {
  char owner[33], admin[33], member[33], outsider[33];
  user_new(owner, "owner", false);
  user_new(admin, "admin1", false);
  user_new(member, "member", false);
  user_new(outsider, "outsider", false);
  struct auth_org o;
  org_new(owner, "acme", &o);
  struct auth_project p;
  project_new(o.id, "p", NULL, &p);
  struct err e;
  cr_assert_eq(auth_org_member_set(au, o.id, admin, ORG_ROLE_ADMIN, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_org_member_set(au, o.id, member, ORG_ROLE_MEMBER, &e), 0, "%s", e.msg);
  /* org-derived only */
  cr_assert_eq(auth_project_role(au, p.id, owner), PROJECT_ROLE_ADMIN);
  cr_assert_eq(auth_project_role(au, p.id, admin), PROJECT_ROLE_ADMIN);
  cr_assert_eq(auth_project_role(au, p.id, member), PROJECT_ROLE_VIEWER);
  cr_assert_eq(auth_project_role(au, p.id, outsider), PROJECT_ROLE_NONE);
  /* explicit above derived wins */
  cr_assert_eq(auth_project_member_set(au, p.id, member, PROJECT_ROLE_EDITOR, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_project_role(au, p.id, member), PROJECT_ROLE_EDITOR);
  /* explicit below derived does not lower it */
  cr_assert_eq(auth_project_member_set(au, p.id, owner, PROJECT_ROLE_VIEWER, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_project_role(au, p.id, owner), PROJECT_ROLE_ADMIN);
  cr_assert_eq(auth_project_member_set(au, p.id, admin, PROJECT_ROLE_VIEWER, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_project_role(au, p.id, admin), PROJECT_ROLE_ADMIN);
  /* unknowns */
  cr_assert_eq(auth_project_role(au, "ffffffffffffffffffffffffffffffff", owner), PROJECT_ROLE_NONE);
  cr_assert_eq(auth_project_role(au, p.id, NULL), PROJECT_ROLE_NONE);
  cr_assert_eq(auth_project_role(au, NULL, owner), PROJECT_ROLE_NONE);
  cr_assert_eq(auth_org_role(au, o.id, ""), ORG_ROLE_NONE);
}

Test(projects, delete_removes_members_and_clears_default_projects) {
  char alice[33];
  user_new(alice, "alice", false);
  struct auth_org o;
  org_new(alice, "acme", &o);
  struct auth_project p, keep;
  project_new(o.id, "p", alice, &p);
  project_new(o.id, "keep", alice, &keep);
  sql("UPDATE users SET default_project_id = '%s' WHERE id = '%s'", p.id, alice);
  struct err e;
  cr_assert_eq(auth_project_delete(au, p.id, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_project_get(au, p.id, NULL, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(auth_project_get(au, keep.id, NULL, &e), 0, "%s", e.msg);
  cr_assert_eq(count("SELECT COUNT(*) FROM project_members WHERE project_id = '%s'", p.id), 0);
  cr_assert_eq(count("SELECT COUNT(*) FROM users WHERE default_project_id IS NULL"), 1);
  cr_assert_eq(auth_project_delete(au, p.id, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
}

/* ---- invitations ------------------------------------------------------- */

static bool is_base62(const char *s) {
  for (; *s; s++)
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
      return false;
  return true;
}

Test(invites, an_owner_invites_and_the_token_is_stored_only_as_its_hash) {
  char alice[33];
  user_new(alice, "alice", false);
  struct auth_org o;
  org_new(alice, "acme", &o);
  char token[AUTH_KEY_MAX], id[33], token2[AUTH_KEY_MAX];
  struct err e;
  cr_assert_eq(
      auth_invite_create(au, o.id, NULL, "Bob@Example.COM", "member", alice, 86400, token, id, &e),
      0, "%s", e.msg);
  cr_assert(str_has_prefix(token, "kiln_inv_"), "%s", token);
  cr_assert_eq(strlen(token), 9 + 43, "%s", token);
  cr_assert(is_base62(token + 9), "%s", token);
  cr_assert_eq(strlen(id), 32);
  char hash[65];
  sha256_hex(token, strlen(token), hash);
  cr_assert_eq(count("SELECT COUNT(*) FROM invitations WHERE id = '%s' AND token_hash = '%s'"
                     " AND email = 'bob@example.com' AND role = 'member' AND project_id IS NULL"
                     " AND invited_by = '%s' AND accepted_at IS NULL",
                     id, hash, alice),
               1);
  cr_assert_eq(count("SELECT COUNT(*) FROM invitations WHERE token_hash = '%s'", token), 0);
  int64_t ttl = count("SELECT expires_at - created_at FROM invitations WHERE id = '%s'", id);
  cr_assert_eq(ttl, 86400 * 1000LL);
  cr_assert_eq(auth_invite_create(au, o.id, NULL, "bob@example.com", "member", alice, 86400, token2,
                                  NULL, &e),
               0, "%s", e.msg);
  cr_assert_str_neq(token, token2, "every token is fresh");
}

Test(invites, only_owners_and_admins_may_invite) {
  char owner[33], admin[33], member[33], outsider[33], root[33];
  user_new(owner, "owner", false);
  user_new(admin, "admin1", false);
  user_new(member, "member", false);
  user_new(outsider, "outsider", false);
  user_new(root, "root", true);
  struct auth_org o;
  org_new(owner, "acme", &o);
  struct err e;
  cr_assert_eq(auth_org_member_set(au, o.id, admin, ORG_ROLE_ADMIN, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_org_member_set(au, o.id, member, ORG_ROLE_MEMBER, &e), 0, "%s", e.msg);
  char token[AUTH_KEY_MAX], id[33];
  cr_assert_eq(
      auth_invite_create(au, o.id, NULL, "x@example.com", "member", member, 3600, token, id, &e),
      -ERR_PERMISSION_DENIED);
  cr_assert_eq(
      auth_invite_create(au, o.id, NULL, "x@example.com", "member", outsider, 3600, token, id, &e),
      -ERR_PERMISSION_DENIED);
  cr_assert_eq(
      auth_invite_create(au, o.id, NULL, "x@example.com", "admin", admin, 3600, token, id, &e), 0,
      "%s", e.msg);
  cr_assert_eq(
      auth_invite_create(au, o.id, NULL, "x@example.com", "owner", admin, 3600, token, id, &e),
      -ERR_PERMISSION_DENIED, "an admin cannot hand out ownership");
  cr_assert_eq(
      auth_invite_create(au, o.id, NULL, "x@example.com", "owner", owner, 3600, token, id, &e), 0,
      "%s", e.msg);
  cr_assert_eq(
      auth_invite_create(au, o.id, NULL, "x@example.com", "member", root, 3600, token, id, &e), 0,
      "a server admin manages every org: %s", e.msg);
  cr_assert_eq(auth_invite_create(au, o.id, NULL, "x@example.com", "member",
                                  "ffffffffffffffffffffffffffffffff", 3600, token, id, &e),
               -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(count("SELECT COUNT(*) FROM invitations"), 3);
}

Test(invites, emails_roles_and_lifetimes_are_checked) {
  char alice[33], bob[33];
  user_new(alice, "alice", false);
  user_new(bob, "bob", false);
  struct auth_org o, other;
  org_new(alice, "acme", &o);
  org_new(bob, "other", &other);
  struct auth_project p, q;
  project_new(o.id, "p", alice, &p);
  project_new(other.id, "q", bob, &q);
  char token[AUTH_KEY_MAX], id[33];
  struct err e;
  const char *bad_emails[] = {"",
                              "bob",
                              "bob@",
                              "@example.com",
                              "bob@example",
                              "bob@@example.com",
                              "b@o@example.com",
                              "bob smith@example.com",
                              "bob@.com",
                              "bob@example."};
  for (size_t i = 0; i < sizeof bad_emails / sizeof bad_emails[0]; i++)
    cr_assert_eq(
        auth_invite_create(au, o.id, NULL, bad_emails[i], "member", alice, 3600, token, id, &e),
        -ERR_INVALID_PARAMETER_VALUE, "'%s' must be refused", bad_emails[i]);
  char longmail[300];
  memset(longmail, 'a', sizeof longmail);
  memcpy(longmail + 255 - 12, "@example.com", 13); /* 255 characters */
  cr_assert_eq(strlen(longmail), 255);
  cr_assert_eq(auth_invite_create(au, o.id, NULL, longmail, "member", alice, 3600, token, id, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(
      auth_invite_create(au, o.id, NULL, longmail + 1, "member", alice, 3600, token, id, &e), 0,
      "254 is fine: %s", e.msg);
  /* roles: an org invite takes an org role, a project invite a project role */
  cr_assert_eq(
      auth_invite_create(au, o.id, NULL, "x@example.com", "editor", alice, 3600, token, id, &e),
      -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(
      auth_invite_create(au, o.id, p.id, "x@example.com", "member", alice, 3600, token, id, &e),
      -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(
      auth_invite_create(au, o.id, NULL, "x@example.com", NULL, alice, 3600, token, id, &e),
      -ERR_INVALID_PARAMETER_VALUE);
  /* lifetimes: 1 hour .. 30 days */
  cr_assert_eq(
      auth_invite_create(au, o.id, NULL, "x@example.com", "member", alice, 3599, token, id, &e),
      -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_invite_create(au, o.id, NULL, "x@example.com", "member", alice, 30 * 86400 + 1,
                                  token, id, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_invite_create(au, o.id, NULL, "x@example.com", "member", alice, 30 * 86400,
                                  token, id, &e),
               0, "%s", e.msg);
  /* a project of another org is not found from this one */
  cr_assert_eq(
      auth_invite_create(au, o.id, q.id, "x@example.com", "viewer", alice, 3600, token, id, &e),
      -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(count("SELECT COUNT(*) FROM invitations"), 2);
}

Test(invites, accept_grants_the_role_once) {
  char alice[33], bob[33], carol[33];
  user_new(alice, "alice", false);
  user_new(bob, "bob", false);
  user_new(carol, "carol", false);
  struct auth_org o;
  org_new(alice, "acme", &o);
  char token[AUTH_KEY_MAX], id[33];
  struct err e;
  cr_assert_eq(
      auth_invite_create(au, o.id, NULL, "bob@example.com", "admin", alice, 3600, token, id, &e), 0,
      "%s", e.msg);
  cr_assert_eq(auth_invite_accept(au, token, bob, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_org_role(au, o.id, bob), ORG_ROLE_ADMIN);
  cr_assert_eq(count("SELECT COUNT(*) FROM invitations WHERE id = '%s' AND accepted_by = '%s'"
                     " AND accepted_at IS NOT NULL",
                     id, bob),
               1);
  cr_assert_eq(auth_invite_accept(au, token, carol, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "already accepted") != NULL, "%s", e.msg);
  cr_assert_eq(auth_invite_accept(au, token, bob, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_org_role(au, o.id, carol), ORG_ROLE_NONE);
}

Test(invites, expired_revoked_and_unknown_tokens_are_refused) {
  char alice[33], bob[33];
  user_new(alice, "alice", false);
  user_new(bob, "bob", false);
  struct auth_org o;
  org_new(alice, "acme", &o);
  char t1[AUTH_KEY_MAX], t2[AUTH_KEY_MAX], id1[33], id2[33];
  struct err e;
  cr_assert_eq(
      auth_invite_create(au, o.id, NULL, "b@example.com", "member", alice, 3600, t1, id1, &e), 0,
      "%s", e.msg);
  cr_assert_eq(
      auth_invite_create(au, o.id, NULL, "b@example.com", "member", alice, 3600, t2, id2, &e), 0,
      "%s", e.msg);
  sql("UPDATE invitations SET expires_at = %lld WHERE id = '%s'",
      (long long)(time_wall_ms() - 1000), id1);
  cr_assert_eq(auth_invite_accept(au, t1, bob, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "expired") != NULL, "%s", e.msg);
  sql("UPDATE invitations SET revoked_at = 1 WHERE id = '%s'", id2);
  cr_assert_eq(auth_invite_accept(au, t2, bob, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "revoked") != NULL, "%s", e.msg);
  cr_assert_eq(auth_org_role(au, o.id, bob), ORG_ROLE_NONE);
  cr_assert_eq(count("SELECT COUNT(*) FROM invitations WHERE accepted_at IS NOT NULL"), 0);
  /* unknown, tampered, empty, absurdly long */
  char tampered[AUTH_KEY_MAX];
  str_copy(tampered, sizeof tampered, t1);
  tampered[20] = tampered[20] == 'a' ? 'b' : 'a';
  cr_assert_eq(auth_invite_accept(au, tampered, bob, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(auth_invite_accept(au, "kiln_inv_nope", bob, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(auth_invite_accept(au, "", bob, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(auth_invite_accept(au, NULL, bob, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  char huge[5000];
  memset(huge, 'k', sizeof huge - 1);
  huge[sizeof huge - 1] = 0;
  cr_assert_eq(auth_invite_accept(au, huge, bob, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
}

Test(invites, a_project_invite_grants_org_membership_and_the_project_role) {
  char alice[33], bob[33];
  user_new(alice, "alice", false);
  user_new(bob, "bob", false);
  struct auth_org o;
  org_new(alice, "acme", &o);
  struct auth_project p, other;
  project_new(o.id, "p", alice, &p);
  project_new(o.id, "other", alice, &other);
  char token[AUTH_KEY_MAX], id[33];
  struct err e;
  cr_assert_eq(
      auth_invite_create(au, o.id, p.id, "bob@example.com", "editor", alice, 3600, token, id, &e),
      0, "%s", e.msg);
  cr_assert_eq(auth_invite_accept(au, token, "ffffffffffffffffffffffffffffffff", &e),
               -ERR_RESOURCE_DOES_NOT_EXIST, "unknown user");
  cr_assert_eq(count("SELECT COUNT(*) FROM invitations WHERE accepted_at IS NULL"), 1,
               "a failed accept does not use the invitation up");
  cr_assert_eq(auth_invite_accept(au, token, bob, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_org_role(au, o.id, bob), ORG_ROLE_MEMBER);
  cr_assert_eq(auth_project_role(au, p.id, bob), PROJECT_ROLE_EDITOR);
  cr_assert_eq(auth_project_role(au, other.id, bob), PROJECT_ROLE_VIEWER, "org-derived");
}

Test(invites, accepting_never_lowers_a_role_already_held) {
  char alice[33], bob[33];
  user_new(alice, "alice", false);
  user_new(bob, "bob", false);
  struct auth_org o;
  org_new(alice, "acme", &o);
  struct auth_project p;
  project_new(o.id, "p", alice, &p);
  struct err e;
  cr_assert_eq(auth_org_member_set(au, o.id, bob, ORG_ROLE_ADMIN, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_project_member_set(au, p.id, bob, PROJECT_ROLE_ADMIN, &e), 0, "%s", e.msg);
  char t1[AUTH_KEY_MAX], t2[AUTH_KEY_MAX], id[33];
  cr_assert_eq(
      auth_invite_create(au, o.id, NULL, "bob@example.com", "member", alice, 3600, t1, id, &e), 0,
      "%s", e.msg);
  cr_assert_eq(
      auth_invite_create(au, o.id, p.id, "bob@example.com", "viewer", alice, 3600, t2, id, &e), 0,
      "%s", e.msg);
  cr_assert_eq(auth_invite_accept(au, t1, bob, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_invite_accept(au, t2, bob, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_org_role(au, o.id, bob), ORG_ROLE_ADMIN);
  cr_assert_eq(
      count("SELECT COUNT(*) FROM project_members WHERE user_id = '%s' AND role = 'admin'", bob),
      1);
}

struct racer {
  const char *token, *user;
  int rc;
};

static void *race_accept(void *arg) {
  struct racer *r = arg;
  struct err e;
  r->rc = auth_invite_accept(au, r->token, r->user, &e);
  return NULL;
}

Test(invites, racing_accepts_of_one_token_succeed_exactly_once) {
  char alice[33], users[8][33];
  user_new(alice, "alice", false);
  struct auth_org o;
  org_new(alice, "acme", &o);
  char token[AUTH_KEY_MAX], id[33];
  struct err e;
  cr_assert_eq(
      auth_invite_create(au, o.id, NULL, "x@example.com", "member", alice, 3600, token, id, &e), 0,
      "%s", e.msg);
  pthread_t th[8];
  struct racer r[8];
  for (int i = 0; i < 8; i++) {
    char name[24];
    snprintf(name, sizeof name, "racer%d", i);
    user_new(users[i], name, false);
    r[i] = (struct racer){.token = token, .user = users[i]};
  }
  for (int i = 0; i < 8; i++) pthread_create(&th[i], NULL, race_accept, &r[i]);
  int wins = 0;
  for (int i = 0; i < 8; i++) {
    pthread_join(th[i], NULL);
    if (r[i].rc == 0)
      wins++;
    else
      cr_assert_eq(r[i].rc, -ERR_INVALID_PARAMETER_VALUE);
  }
  cr_assert_eq(wins, 1);
  cr_assert_eq(count("SELECT COUNT(*) FROM org_members WHERE org_id = '%s'", o.id), 2);
}
