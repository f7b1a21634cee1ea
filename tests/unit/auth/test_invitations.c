/* tests for auth/invitations: listing with derived statuses and paging,
 * revocation against acceptance, lookup by token, and delivery's failure
 * modes — against a real SQLite store. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "fixture.h"

static char dir[64];
static struct db *db;
static struct auth *au;

static void setup(void) { auth_fixture_open("kiln-invadm", dir, &db, &au); }
static void teardown(void) { auth_fixture_close(dir, db, au); }

TestSuite(invite_admin, .init = setup, .fini = teardown);

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

static void user_new(char id[AUTH_ID_LEN + 1], const char *username) {
  id_random_hex(id, AUTH_ID_LEN / 2);
  sql("INSERT INTO users (id, username, email, is_admin, created_at, updated_at)"
      " VALUES ('%s', '%s', '%s@example.com', 0, 1, 1)",
      id, username, username);
}

struct inv {
  char id[AUTH_ID_LEN + 1];
  char token[AUTH_KEY_MAX];
};

static void invite(const char *org, const char *email, const char *by, struct inv *out) {
  struct err e;
  cr_assert_eq(auth_invite_create(au, org, NULL, email, "member", by, 3600, out->token, out->id, &e), 0,
               "%s", e.msg);
}

static const char *field(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* The org's invitations as "email:status" joined by spaces, newest first. */
static void summary(const char *org, const char *status, char *out, size_t cap) {
  struct auth_invite_filter f = {.status = status, .max_results = 100};
  char next[AUTH_PAGE_TOKEN_MAX];
  struct err e;
  json_t *arr = auth_invite_list(au, org, &f, next, &e);
  cr_assert_not_null(arr, "%s", e.msg);
  cr_assert_str_eq(next, "");
  size_t o = 0;
  out[0] = 0;
  for (size_t i = 0; i < json_array_size(arr); i++) {
    json_t *it = json_array_get(arr, i);
    o += (size_t)snprintf(out + o, cap - o, "%s%s:%s", i ? " " : "", field(it, "email"), field(it, "status"));
  }
  json_decref(arr);
}

struct world {
  char owner[33], joiner[33];
  struct auth_org org, other;
};

static void world_new(struct world *w) {
  user_new(w->owner, "owner");
  user_new(w->joiner, "joiner");
  struct err e;
  cr_assert_eq(auth_org_create(au, w->owner, "acme", NULL, &w->org, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_org_create(au, w->owner, "other", NULL, &w->other, &e), 0, "%s", e.msg);
}

Test(invite_admin, statuses_are_derived_and_listed_newest_first) {
  struct world w;
  world_new(&w);
  struct inv a, r, x, p;
  invite(w.org.id, "a@example.com", w.owner, &a);
  invite(w.org.id, "r@example.com", w.owner, &r);
  invite(w.org.id, "x@example.com", w.owner, &x);
  invite(w.org.id, "p@example.com", w.owner, &p);
  /* same-millisecond creations would tie: spread them out */
  sql("UPDATE invitations SET created_at = 1000 WHERE id = '%s'", a.id);
  sql("UPDATE invitations SET created_at = 2000 WHERE id = '%s'", r.id);
  sql("UPDATE invitations SET created_at = 3000 WHERE id = '%s'", x.id);
  sql("UPDATE invitations SET created_at = 4000 WHERE id = '%s'", p.id);
  struct err e;
  cr_assert_eq(auth_invite_accept(au, a.token, w.joiner, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_invite_revoke(au, w.org.id, r.id, &e), 0, "%s", e.msg);
  sql("UPDATE invitations SET expires_at = 1 WHERE id = '%s'", x.id);
  char s[512];
  summary(w.org.id, NULL, s, sizeof s);
  cr_assert_str_eq(s, "p@example.com:pending x@example.com:expired r@example.com:revoked a@example.com:accepted");
  summary(w.org.id, "pending", s, sizeof s);
  cr_assert_str_eq(s, "p@example.com:pending");
  summary(w.org.id, "expired", s, sizeof s);
  cr_assert_str_eq(s, "x@example.com:expired");
  summary(w.org.id, "revoked", s, sizeof s);
  cr_assert_str_eq(s, "r@example.com:revoked");
  summary(w.org.id, "accepted", s, sizeof s);
  cr_assert_str_eq(s, "a@example.com:accepted");
  summary(w.other.id, NULL, s, sizeof s);
  cr_assert_str_eq(s, "", "another org's invitations never show");

  json_t *got = auth_invite_get(au, w.org.id, a.id, &e);
  cr_assert_not_null(got, "%s", e.msg);
  cr_assert_str_eq(field(got, "accepted_by"), w.joiner);
  cr_assert_str_eq(field(got, "invited_by_username"), "owner");
  cr_assert_str_eq(field(got, "org_id"), w.org.id);
  cr_assert_null(json_object_get(got, "token"));
  cr_assert_null(json_object_get(got, "token_hash"));
  json_decref(got);
  cr_assert_null(auth_invite_get(au, w.other.id, a.id, &e));
  cr_assert_eq(e.code, ERR_RESOURCE_DOES_NOT_EXIST);

  json_t *bt = auth_invite_by_token(au, p.token, &e);
  cr_assert_not_null(bt, "%s", e.msg);
  cr_assert_str_eq(field(bt, "id"), p.id);
  json_decref(bt);
  cr_assert_null(auth_invite_by_token(au, "kiln_inv_nope", &e));
  cr_assert_eq(e.code, ERR_RESOURCE_DOES_NOT_EXIST);
}

Test(invite_admin, pages_follow_each_other_without_gaps_or_repeats) {
  struct world w;
  world_new(&w);
  struct inv v[7];
  char email[32];
  for (int i = 0; i < 7; i++) {
    snprintf(email, sizeof email, "u%d@example.com", i);
    invite(w.org.id, email, w.owner, &v[i]);
  }
  /* two share a creation time: the id breaks the tie */
  sql("UPDATE invitations SET created_at = 5000 WHERE org_id = '%s'", w.org.id);
  struct auth_invite_filter f = {.max_results = 3};
  char next[AUTH_PAGE_TOKEN_MAX], prev_id[33] = "ffffffffffffffffffffffffffffffff";
  int seen = 0, pages = 0;
  struct err e;
  do {
    json_t *arr = auth_invite_list(au, w.org.id, &f, next, &e);
    cr_assert_not_null(arr, "%s", e.msg);
    pages++;
    for (size_t i = 0; i < json_array_size(arr); i++, seen++) {
      const char *id = field(json_array_get(arr, i), "id");
      cr_assert_lt(strcmp(id, prev_id), 0, "ids descend across pages");
      str_copy(prev_id, sizeof prev_id, id);
    }
    json_decref(arr);
    f.page_token = next;
  } while (next[0]);
  cr_assert_eq(seen, 7);
  cr_assert_eq(pages, 3);
  f.page_token = "garbage";
  cr_assert_null(auth_invite_list(au, w.org.id, &f, next, &e));
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  f.page_token = NULL;
  f.status = "gone";
  cr_assert_null(auth_invite_list(au, w.org.id, &f, next, &e));
  f.status = NULL;
  f.max_results = 1001;
  cr_assert_null(auth_invite_list(au, w.org.id, &f, next, &e));
}

Test(invite_admin, revoke_and_accept_exclude_each_other) {
  struct world w;
  world_new(&w);
  struct inv r, a;
  invite(w.org.id, "r@example.com", w.owner, &r);
  invite(w.org.id, "a@example.com", w.owner, &a);
  struct err e;
  cr_assert_eq(auth_invite_revoke(au, w.other.id, r.id, &e), -ERR_RESOURCE_DOES_NOT_EXIST,
               "an id from another org is unknown here");
  cr_assert_eq(auth_invite_revoke(au, w.org.id, "00000000000000000000000000000000", &e),
               -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(auth_invite_revoke(au, w.org.id, r.id, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_invite_accept(au, r.token, w.joiner, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "revoked"), "%s", e.msg);
  cr_assert_eq(auth_org_role(au, w.org.id, w.joiner), ORG_ROLE_NONE);
  cr_assert_eq(auth_invite_revoke(au, w.org.id, r.id, &e), 0, "revoking twice is a no-op");

  cr_assert_eq(auth_invite_accept(au, a.token, w.joiner, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_invite_revoke(au, w.org.id, a.id, &e), -ERR_CONFLICT);
  cr_assert_eq(auth_org_role(au, w.org.id, w.joiner), ORG_ROLE_MEMBER);
}

Test(invite_admin, delivery_fails_cleanly_and_keeps_the_invitation) {
  struct world w;
  world_new(&w);
  struct inv v;
  invite(w.org.id, "bob@example.com", w.owner, &v);
  struct err e;
  cr_assert_eq(auth_invite_deliver(au, v.id, "http://kiln/invitations/accept?token=x", &e), -ERR_NOT_READY);
  struct auth_mail_opts o = {.smtp_url = "smtp://127.0.0.1:1", .from = "kiln@example.com"};
  cr_assert_eq(auth_mail_setup(au, &o, &e), 0, "%s", e.msg);
  cr_assert_eq(auth_invite_deliver(au, v.id, "http://kiln/invitations/accept?token=x\r\nBcc: y", &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_invite_deliver(au, v.id, "http://kiln/invitations/accept?token=x", &e),
               -ERR_UNAVAILABLE);
  cr_assert_null(strstr(e.msg, "token=x"), "the link never ends up in errors: %s", e.msg);
  cr_assert_eq(auth_invite_deliver(au, "00000000000000000000000000000000", "http://k/x", &e),
               -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(auth_invite_revoke(au, w.org.id, v.id, &e), 0);
  cr_assert_eq(auth_invite_deliver(au, v.id, "http://kiln/x", &e), -ERR_CONFLICT,
               "a revoked invitation is not mailed");
  char s[128];
  summary(w.org.id, NULL, s, sizeof s);
  cr_assert_str_eq(s, "bob@example.com:revoked");
}
