/* tests for auth/authz: the authorization matrix of auth_authorize —
 * principals x needed permission, on a project and on no project. */
#include <criterion/criterion.h>
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
  auth_fixture_open("kiln-authz", dir, &db, &au);
}

static void teardown(void) { auth_fixture_close(dir, db, au); }

TestSuite(authz, .init = setup, .fini = teardown);

static int exec_job(struct db_conn *c, void *arg, struct err *e) { return db_exec(c, arg, e); }

static void sql(const char *fmt, ...) {
  char q[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q, sizeof q, fmt, ap);
  va_end(ap);
  struct err e;
  cr_assert_eq(db_write(db, exec_job, q, &e), 0, "%s: %s", q, e.msg);
}

static void user_new(char id[AUTH_ID_LEN + 1], const char *username, bool admin) {
  id_random_hex(id, AUTH_ID_LEN / 2);
  sql("INSERT INTO users (id, username, email, is_admin, created_at, updated_at)"
      " VALUES ('%s', '%s', '%s@example.com', %d, 1, 1)",
      id, username, username, admin ? 1 : 0);
}

static struct auth_principal user_principal(const char *id, const char *name, bool admin) {
  struct auth_principal p = {.kind = AUTH_JWT, .is_admin = admin, .scopes = AUTH_SCOPE_ALL};
  str_copy(p.user_id, sizeof p.user_id, id);
  str_copy(p.username, sizeof p.username, name);
  return p;
}

static struct auth_principal key_principal(const char *id, const char *name, unsigned scopes,
                                           const char *project_id) {
  struct auth_principal p = user_principal(id, name, false);
  p.kind = AUTH_API_KEY;
  p.scopes = scopes;
  str_copy(p.project_id, sizeof p.project_id, project_id ? project_id : "");
  str_copy(p.key_id, sizeof p.key_id, "0123456789abcdef0123456789abcdef");
  return p;
}

#define OK 0
#define E401 (-ERR_UNAUTHENTICATED)
#define E403 (-ERR_PERMISSION_DENIED)
#define E404 (-ERR_RESOURCE_DOES_NOT_EXIST)

struct row {
  const char *who;
  struct auth_principal p;
  int on_project[3]; /* READ, WRITE, ADMIN */
  int no_project[3];
};

Test(authz, the_matrix_of_principals_and_permissions) {
  char owner[33], viewer[33], editor[33], padmin[33], oadmin[33], other[33], root[33], rowner[33];
  user_new(owner, "owner", false);
  user_new(rowner, "rowner", false);
  user_new(viewer, "viewer", false);
  user_new(editor, "editor", false);
  user_new(padmin, "padmin", false);
  user_new(oadmin, "oadmin", false);
  user_new(other, "other", false);
  user_new(root, "root", true);
  struct auth_org acme, rival;
  struct auth_project p, p2, q;
  struct err e;
  cr_assert_eq(auth_org_create(au, owner, "acme", NULL, &acme, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_org_create(au, rowner, "rival", NULL, &rival, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_org_member_set(au, rival.id, other, ORG_ROLE_ADMIN, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_project_create(au, acme.id, "p", NULL, owner, &p, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_project_create(au, acme.id, "p2", NULL, owner, &p2, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_project_create(au, rival.id, "q", NULL, rowner, &q, &e), 0, "%s", e.msg);
  const char *members[] = {viewer, editor, padmin};
  const enum project_role roles[] = {PROJECT_ROLE_VIEWER, PROJECT_ROLE_EDITOR, PROJECT_ROLE_ADMIN};
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(auth_org_member_set(au, acme.id, members[i], ORG_ROLE_MEMBER, &e), 0, "%s", e.msg);
    cr_assert_eq(auth_project_member_set(au, p.id, members[i], roles[i], &e), 0, "%s", e.msg);
  }
  cr_assert_eq(auth_org_member_set(au, acme.id, oadmin, ORG_ROLE_ADMIN, &e), 0, "%s", e.msg);
  /* "other" administers the rival org and its project q, and is a stranger here */
  cr_assert_eq(auth_project_role(au, q.id, other), PROJECT_ROLE_ADMIN);

  struct auth_principal anon = {.kind = AUTH_ANON};
  struct row rows[] = {
      {"anonymous", anon, {E401, E401, E401}, {E401, E401, E401}},
      {"viewer", user_principal(viewer, "viewer", false), {OK, E403, E403}, {OK, OK, E403}},
      {"editor", user_principal(editor, "editor", false), {OK, OK, E403}, {OK, OK, E403}},
      {"project admin", user_principal(padmin, "padmin", false), {OK, OK, OK}, {OK, OK, E403}},
      {"org admin", user_principal(oadmin, "oadmin", false), {OK, OK, OK}, {OK, OK, E403}},
      {"other org's admin",
       user_principal(other, "other", false),
       {E404, E404, E404},
       {OK, OK, E403}},
      {"server admin", user_principal(root, "root", true), {OK, OK, OK}, {OK, OK, OK}},
      {"read-only key (of the editor)",
       key_principal(editor, "editor", AUTH_SCOPE_READ, NULL),
       {OK, E403, E403},
       {OK, E403, E403}},
      {"key for another project (of the project admin)",
       key_principal(padmin, "padmin", AUTH_SCOPE_ALL, p2.id),
       {E404, E404, E404},
       {OK, E403, E403}},
      {"key for this project (of the project admin)",
       key_principal(padmin, "padmin", AUTH_SCOPE_ALL, p.id),
       {OK, OK, OK},
       {OK, E403, E403}},
      {"a credential with no user behind it",
       (struct auth_principal){
           .kind = AUTH_API_KEY, .user_id = "", .is_admin = true, .scopes = AUTH_SCOPE_ALL},
       {E401, E401, E401},
       {E401, E401, E401}},
  };
  const unsigned needs[] = {AUTH_SCOPE_READ, AUTH_SCOPE_WRITE, AUTH_SCOPE_ADMIN};
  const char *need_names[] = {"read", "write", "admin"};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    for (int n = 0; n < 3; n++) {
      err_clear(&e);
      int rc = auth_authorize(au, &rows[i].p, needs[n], p.id, &e);
      cr_expect_eq(rc, rows[i].on_project[n], "%s, %s on the project: got %s (%s), want %s",
                   rows[i].who, need_names[n], err_code_str((enum err_code) - rc), e.msg,
                   err_code_str((enum err_code) - rows[i].on_project[n]));
      if (rc) cr_expect_eq(e.code, (enum err_code) - rc, "e matches the return");
      err_clear(&e);
      rc = auth_authorize(au, &rows[i].p, needs[n], NULL, &e);
      cr_expect_eq(rc, rows[i].no_project[n], "%s, %s on no project: got %s (%s), want %s",
                   rows[i].who, need_names[n], err_code_str((enum err_code) - rc), e.msg,
                   err_code_str((enum err_code) - rows[i].no_project[n]));
      cr_expect_eq(auth_authorize(au, &rows[i].p, needs[n], "", &e), rows[i].no_project[n],
                   "%s: \"\" is no project", rows[i].who);
    }
  }
  cr_assert_eq(auth_authorize(au, NULL, AUTH_SCOPE_READ, p.id, &e), E401);
}

Test(authz, cross_tenant_looks_exactly_like_a_missing_project) {
  char alice[33], mallory[33], root[33];
  user_new(alice, "alice", false);
  user_new(mallory, "mallory", false);
  user_new(root, "root", true);
  struct auth_org o;
  struct auth_project p;
  struct err e1, e2;
  cr_assert_eq(auth_org_create(au, alice, "acme", NULL, &o, &e1), 0, "%s", e1.msg);
  cr_assert_eq(auth_project_create(au, o.id, "p", NULL, alice, &p, &e1), 0, "%s", e1.msg);
  struct auth_principal m = user_principal(mallory, "mallory", false);
  cr_assert_eq(auth_authorize(au, &m, AUTH_SCOPE_READ, p.id, &e1), E404);
  cr_assert_eq(auth_authorize(au, &m, AUTH_SCOPE_READ, "ffffffffffffffffffffffffffffffff", &e2),
               E404);
  cr_assert_str_eq(e1.msg, e2.msg, "the same words either way");
  /* a server admin passes; the route's own lookup answers 404 */
  struct auth_principal r = user_principal(root, "root", true);
  cr_assert_eq(auth_authorize(au, &r, AUTH_SCOPE_ADMIN, "ffffffffffffffffffffffffffffffff", &e1),
               OK);
  /* a server admin's key restricted to a project stays inside it */
  struct auth_principal rk = key_principal(root, "root", AUTH_SCOPE_ALL, p.id);
  rk.is_admin = true;
  cr_assert_eq(auth_authorize(au, &rk, AUTH_SCOPE_READ, "ffffffffffffffffffffffffffffffff", &e1),
               E404);
  cr_assert_eq(auth_authorize(au, &rk, AUTH_SCOPE_ADMIN, NULL, &e1), E403);
  cr_assert_eq(auth_authorize(au, &rk, AUTH_SCOPE_ADMIN, p.id, &e1), OK);
}

Test(authz, leaving_the_org_closes_the_project) {
  char alice[33], bob[33];
  user_new(alice, "alice", false);
  user_new(bob, "bob", false);
  struct auth_org o;
  struct auth_project p;
  struct err e;
  cr_assert_eq(auth_org_create(au, alice, "acme", NULL, &o, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_project_create(au, o.id, "p", NULL, alice, &p, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_org_member_set(au, o.id, bob, ORG_ROLE_MEMBER, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_project_member_set(au, p.id, bob, PROJECT_ROLE_ADMIN, &e), 0, "%s", e.msg);
  struct auth_principal b = user_principal(bob, "bob", false);
  struct auth_principal bk = key_principal(bob, "bob", AUTH_SCOPE_ALL, p.id);
  cr_assert_eq(auth_authorize(au, &b, AUTH_SCOPE_ADMIN, p.id, &e), OK);
  cr_assert_eq(auth_authorize(au, &bk, AUTH_SCOPE_WRITE, p.id, &e), OK);
  cr_assert_eq(auth_org_member_remove(au, o.id, bob, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_authorize(au, &b, AUTH_SCOPE_READ, p.id, &e), E404);
  cr_assert_eq(auth_authorize(au, &bk, AUTH_SCOPE_READ, p.id, &e), E404,
               "a key restricted to the project does not outlive its owner's access");
}

Test(authz, predict_needs_a_viewer_and_the_predict_scope) {
  char alice[33], vic[33];
  user_new(alice, "alice", false);
  user_new(vic, "vic", false);
  struct auth_org o;
  struct auth_project p;
  struct err e;
  cr_assert_eq(auth_org_create(au, alice, "acme", NULL, &o, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_project_create(au, o.id, "p", NULL, alice, &p, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_org_member_set(au, o.id, vic, ORG_ROLE_MEMBER, &e), 0, "%s", e.msg);
  struct auth_principal v = user_principal(vic, "vic", false);
  cr_assert_eq(auth_authorize(au, &v, AUTH_SCOPE_PREDICT, p.id, &e), OK);
  struct auth_principal pk = key_principal(vic, "vic", AUTH_SCOPE_PREDICT, p.id);
  cr_assert_eq(auth_authorize(au, &pk, AUTH_SCOPE_PREDICT, p.id, &e), OK);
  cr_assert_eq(auth_authorize(au, &pk, AUTH_SCOPE_READ, p.id, &e), E403);
  struct auth_principal rk = key_principal(vic, "vic", AUTH_SCOPE_READ, NULL);
  cr_assert_eq(auth_authorize(au, &rk, AUTH_SCOPE_PREDICT, p.id, &e), E403);
}

Test(authz, a_route_without_a_valid_permission_opens_nothing) {
  char root[33];
  user_new(root, "root", true);
  struct auth_principal r = user_principal(root, "root", true);
  struct err e;
  cr_assert_eq(auth_authorize(au, &r, 0, NULL, &e), E403);
  cr_assert(strstr(e.msg, "permission") != NULL, "%s", e.msg);
  cr_assert_eq(auth_authorize(au, &r, AUTH_SCOPE_READ | AUTH_SCOPE_WRITE, NULL, &e), E403);
  cr_assert_eq(auth_authorize(au, &r, 1u << 7, NULL, &e), E403);
  struct auth_principal anon = {.kind = AUTH_ANON};
  cr_assert_eq(auth_authorize(au, &anon, 0, NULL, &e), E403);
}
