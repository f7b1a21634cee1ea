/* auth/invitations: managing invitations once made — listing an org's
 * invitations with their status, revoking pending ones, and mailing the
 * accept link. Creation and acceptance, which change memberships, live in
 * orgs.c with the other membership writes. */
#include "auth.h"

#include <sodium.h>
#include <string.h>
#include <time.h>

#define INVITE_LIST_MAX 1000

static bool filled(const char *s) { return s && *s; }

static void set_text(json_t *o, const char *k, struct db_stmt *s, int col) {
  const char *v = db_col_text(s, col);
  if (v && *v) json_object_set_new(o, k, json_string(v));
}

static void set_time(json_t *o, const char *k, struct db_stmt *s, int col) {
  if (!db_col_null(s, col)) json_object_set_new(o, k, json_integer(db_col_i64(s, col)));
}

/* The columns invite_row reads, in its order. */
#define INVITE_COLUMNS                                                                             \
  "SELECT i.id, i.email, i.role, i.project_id, p.name, i.invited_by, u.username, i.created_at,"    \
  " i.expires_at, i.accepted_at, i.accepted_by, i.revoked_at, i.org_id FROM invitations i"         \
  " LEFT JOIN projects p ON p.id = i.project_id LEFT JOIN users u ON u.id = i.invited_by"

/* Status is derived, never stored: revoked and accepted are recorded
 * moments (they exclude each other, see invite_accept_run in orgs.c and
 * revoke_run below), expired is the clock passing expires_at. */
static const char *invite_status(struct db_stmt *s, int64_t now) {
  if (!db_col_null(s, 11)) return "revoked";
  if (!db_col_null(s, 9)) return "accepted";
  return now >= db_col_i64(s, 8) ? "expired" : "pending";
}

static json_t *invite_row(struct db_stmt *s, int64_t now) {
  json_t *o = json_object();
  set_text(o, "id", s, 0);
  set_text(o, "org_id", s, 12);
  set_text(o, "email", s, 1);
  set_text(o, "role", s, 2);
  set_text(o, "project_id", s, 3);
  set_text(o, "project_name", s, 4);
  set_text(o, "invited_by", s, 5);
  set_text(o, "invited_by_username", s, 6);
  set_time(o, "created_at", s, 7);
  set_time(o, "expires_at", s, 8);
  set_time(o, "accepted_at", s, 9);
  set_text(o, "accepted_by", s, 10);
  set_time(o, "revoked_at", s, 11);
  json_object_set_new(o, "status", json_string(invite_status(s, now)));
  return o;
}

/* Page tokens are "<created_at>-<id>" of the last entry shown: the list is
 * ordered by (created_at, id) descending, so the next page starts below it
 * even when invitations are added or revoked in between. */
static int page_token_parse(const char *t, int64_t *created_at, char id[AUTH_ID_LEN + 1],
                            struct err *e) {
  const char *dash = strchr(t, '-');
  char num[24];
  size_t n = dash ? (size_t)(dash - t) : 0;
  if (!dash || n == 0 || n >= sizeof num || strlen(dash + 1) != AUTH_ID_LEN)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "invalid page_token");
  memcpy(num, t, n);
  num[n] = 0;
  if (str_to_i64(num, created_at)) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "invalid page_token");
  for (const char *p = dash + 1; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "invalid page_token");
  str_copy(id, AUTH_ID_LEN + 1, dash + 1);
  return 0;
}

json_t *auth_invite_list(struct auth *a, const char *org_id, const struct auth_invite_filter *f,
                         char next_token[AUTH_PAGE_TOKEN_MAX], struct err *e) {
  /* read before next_token is cleared: callers may pass one buffer for both */
  int64_t after_created = 0;
  char after_id[AUTH_ID_LEN + 1] = "";
  bool paged = f && filled(f->page_token);
  int bad_token = paged ? page_token_parse(f->page_token, &after_created, after_id, e) : 0;
  next_token[0] = 0;
  if (bad_token) return NULL;
  if (!filled(org_id)) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "organization id is required");
    return NULL;
  }
  int max = f && f->max_results ? f->max_results : 100;
  if (max < 1 || max > INVITE_LIST_MAX) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "max_results must be between 1 and %d",
            INVITE_LIST_MAX);
    return NULL;
  }
  const char *status = f ? f->status : NULL;
  const char *status_sql = "";
  bool status_now = false;
  if (filled(status)) {
    if (str_eq(status, "pending")) {
      status_sql = " AND i.revoked_at IS NULL AND i.accepted_at IS NULL AND i.expires_at > ?";
      status_now = true;
    } else if (str_eq(status, "expired")) {
      status_sql = " AND i.revoked_at IS NULL AND i.accepted_at IS NULL AND i.expires_at <= ?";
      status_now = true;
    } else if (str_eq(status, "accepted")) {
      status_sql = " AND i.accepted_at IS NOT NULL";
    } else if (str_eq(status, "revoked")) {
      status_sql = " AND i.revoked_at IS NOT NULL";
    } else {
      err_set(e, ERR_INVALID_PARAMETER_VALUE,
              "status must be pending, accepted, expired or revoked");
      return NULL;
    }
  }

  char sql[1024];
  snprintf(sql, sizeof sql, "%s WHERE i.org_id = ?%s%s ORDER BY i.created_at DESC, i.id DESC LIMIT ?",
           INVITE_COLUMNS, status_sql,
           paged ? " AND (i.created_at < ? OR (i.created_at = ? AND i.id < ?))" : "");
  int64_t now = time_wall_ms();
  struct db_conn *c = db_reader_acquire(auth_db(a), e);
  if (!c) return NULL;
  struct db_stmt *s = db_prepare(c, sql, e);
  if (!s) {
    db_reader_release(auth_db(a), c);
    return NULL;
  }
  int k = 1;
  db_bind_text(s, k++, org_id);
  if (status_now) db_bind_i64(s, k++, now);
  if (paged) {
    db_bind_i64(s, k++, after_created);
    db_bind_i64(s, k++, after_created);
    db_bind_text(s, k++, after_id);
  }
  db_bind_i64(s, k++, max + 1); /* one more tells whether a next page exists */
  json_t *arr = json_array();
  int rc;
  int64_t last_created = 0;
  char last_id[AUTH_ID_LEN + 1] = "";
  bool more = false;
  while ((rc = db_step(s, e)) == DB_ROW) {
    if ((int)json_array_size(arr) == max) {
      more = true;
      break;
    }
    json_array_append_new(arr, invite_row(s, now));
    last_created = db_col_i64(s, 7);
    const char *id = db_col_text(s, 0);
    str_copy(last_id, sizeof last_id, id ? id : "");
  }
  db_stmt_done(s);
  db_reader_release(auth_db(a), c);
  if (rc < 0) {
    json_decref(arr);
    return NULL;
  }
  if (more) snprintf(next_token, AUTH_PAGE_TOKEN_MAX, "%lld-%s", (long long)last_created, last_id);
  return arr;
}

json_t *auth_invite_get(struct auth *a, const char *org_id, const char *invitation_id,
                        struct err *e) {
  if (!filled(org_id) || !filled(invitation_id)) {
    err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "invitation not found");
    return NULL;
  }
  struct db_conn *c = db_reader_acquire(auth_db(a), e);
  if (!c) return NULL;
  struct db_stmt *s = db_prepare(c, INVITE_COLUMNS " WHERE i.id = ? AND i.org_id = ?", e);
  if (!s) {
    db_reader_release(auth_db(a), c);
    return NULL;
  }
  db_bind_text(s, 1, invitation_id);
  db_bind_text(s, 2, org_id);
  int rc = db_step(s, e);
  json_t *o = rc == DB_ROW ? invite_row(s, time_wall_ms()) : NULL;
  db_stmt_done(s);
  db_reader_release(auth_db(a), c);
  if (rc == DB_DONE) err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "invitation not found");
  return o;
}

json_t *auth_invite_by_token(struct auth *a, const char *token, struct err *e) {
  if (!filled(token) || strlen(token) >= AUTH_KEY_MAX) {
    err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "invitation not found");
    return NULL;
  }
  char hash[65];
  sha256_hex(token, strlen(token), hash);
  struct db_conn *c = db_reader_acquire(auth_db(a), e);
  if (!c) return NULL;
  struct db_stmt *s = db_prepare(c, INVITE_COLUMNS " WHERE i.token_hash = ?", e);
  if (!s) {
    db_reader_release(auth_db(a), c);
    return NULL;
  }
  db_bind_text(s, 1, hash);
  int rc = db_step(s, e);
  json_t *o = rc == DB_ROW ? invite_row(s, time_wall_ms()) : NULL;
  db_stmt_done(s);
  db_reader_release(auth_db(a), c);
  if (rc == DB_DONE) err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "invitation not found");
  return o;
}

/* ---- revocation ----------------------------------------------------------- */

struct revoke_job {
  const char *org_id, *id;
};

/* The revoke edge of the invitation state machine drawn in orgs.c
 * (invite_accept_run): pending --revoke--> revoked. An expired invitation
 * may be revoked too (it changes nothing but the status shown); an accepted
 * one is final. The guard in WHERE keeps accept and revoke exclusive. */
static int revoke_run(struct db_conn *c, void *arg, struct err *e) {
  struct revoke_job *j = arg;
  struct db_stmt *s =
      db_prepare(c, "SELECT accepted_at, revoked_at FROM invitations WHERE id = ? AND org_id = ?", e);
  if (!s) return -(int)e->code;
  db_bind_text(s, 1, j->id);
  db_bind_text(s, 2, j->org_id);
  int rc = db_step(s, e);
  bool accepted = rc == DB_ROW && !db_col_null(s, 0);
  bool revoked = rc == DB_ROW && !db_col_null(s, 1);
  db_stmt_done(s);
  if (rc < 0) return rc;
  if (rc != DB_ROW) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "invitation not found");
  if (accepted)
    return err_set(e, ERR_CONFLICT,
                   "this invitation was already accepted; remove the member instead");
  if (revoked) return 0; /* keeps the first revocation time */
  s = db_prepare(c,
                 "UPDATE invitations SET revoked_at = ? WHERE id = ? AND accepted_at IS NULL"
                 " AND revoked_at IS NULL",
                 e);
  if (!s) return -(int)e->code;
  db_bind_i64(s, 1, time_wall_ms());
  db_bind_text(s, 2, j->id);
  rc = db_step(s, e);
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

int auth_invite_revoke(struct auth *a, const char *org_id, const char *invitation_id,
                       struct err *e) {
  if (!filled(org_id) || !filled(invitation_id))
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "invitation not found");
  struct revoke_job j = {.org_id = org_id, .id = invitation_id};
  return db_write(auth_db(a), revoke_run, &j, e);
}

/* ---- delivery ------------------------------------------------------------- */

struct invite_facts {
  char email[255], role[16], org_name[65], org_display[129], project_name[65], inviter[65];
  int64_t expires_at;
  bool pending;
};

static void copy_col(char *dst, size_t cap, struct db_stmt *s, int col) {
  const char *v = db_col_text(s, col);
  str_copy(dst, cap, v ? v : "");
}

static int invite_facts_load(struct auth *a, const char *id, struct invite_facts *f, struct err *e) {
  struct db_conn *c = db_reader_acquire(auth_db(a), e);
  if (!c) return -(int)e->code;
  struct db_stmt *s = db_prepare(
      c,
      "SELECT i.email, i.role, o.name, o.display_name, p.name, u.username, i.expires_at,"
      " i.accepted_at IS NULL AND i.revoked_at IS NULL FROM invitations i"
      " JOIN orgs o ON o.id = i.org_id LEFT JOIN projects p ON p.id = i.project_id"
      " LEFT JOIN users u ON u.id = i.invited_by WHERE i.id = ?",
      e);
  if (!s) {
    db_reader_release(auth_db(a), c);
    return -(int)e->code;
  }
  db_bind_text(s, 1, id);
  int rc = db_step(s, e);
  if (rc == DB_ROW) {
    copy_col(f->email, sizeof f->email, s, 0);
    copy_col(f->role, sizeof f->role, s, 1);
    copy_col(f->org_name, sizeof f->org_name, s, 2);
    copy_col(f->org_display, sizeof f->org_display, s, 3);
    copy_col(f->project_name, sizeof f->project_name, s, 4);
    copy_col(f->inviter, sizeof f->inviter, s, 5);
    f->expires_at = db_col_i64(s, 6);
    f->pending = db_col_i64(s, 7) != 0;
  }
  db_stmt_done(s);
  db_reader_release(auth_db(a), c);
  if (rc < 0) return rc;
  return rc == DB_ROW ? 0 : err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "invitation not found");
}

/* Display names are free text: in a mail body keep them on one line. */
static void flatten(char *s) {
  for (char *p = s; *p; p++)
    if ((unsigned char)*p < ' ' || *p == 0x7f) *p = ' ';
}

int auth_invite_deliver(struct auth *a, const char *invitation_id, const char *link,
                        struct err *e) {
  if (!auth_mail_enabled(a)) return err_set(e, ERR_NOT_READY, "no SMTP server is configured");
  struct invite_facts f = {0};
  int rc = invite_facts_load(a, invitation_id, &f, e);
  if (rc) return rc;
  if (!f.pending) return err_set(e, ERR_CONFLICT, "the invitation is no longer pending");
  if ((rc = auth_mail_header_check("invitation link", link, e))) return rc;
  flatten(f.org_display);
  char org[256];
  if (f.org_display[0] && !str_eq(f.org_display, f.org_name))
    snprintf(org, sizeof org, "\"%s\" (%s)", f.org_display, f.org_name);
  else
    snprintf(org, sizeof org, "%s", f.org_name);
  const char *who = f.inviter[0] ? f.inviter : "An administrator";
  char subject[200], when[40];
  if (f.project_name[0])
    snprintf(subject, sizeof subject, "You are invited to the project %s in %s on Kiln",
             f.project_name, f.org_name);
  else
    snprintf(subject, sizeof subject, "You are invited to join %s on Kiln", f.org_name);
  time_t t = (time_t)(f.expires_at / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  snprintf(when, sizeof when, "%04d-%02d-%02d %02d:%02d UTC", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min);
  struct buf body;
  buf_init(&body);
  if (f.project_name[0])
    rc = buf_printf(&body,
                    "Hello,\n\n%s invited you to the project %s of the organization %s on Kiln,\n"
                    "as %s.\n",
                    who, f.project_name, org, f.role);
  else
    rc = buf_printf(&body, "Hello,\n\n%s invited you to join the organization %s on Kiln,\nas %s.\n",
                    who, org, f.role);
  if (!rc)
    rc = buf_printf(&body,
                    "\nTo accept, open this link and sign in:\n\n  %s\n\n"
                    "The link works once and expires on %s.\n"
                    "If you did not expect this invitation, ignore this message.\n\n"
                    "-- \nKiln\n",
                    link, when);
  if (rc || !body.data) {
    buf_fini(&body);
    return err_set(e, ERR_NO_MEMORY, NULL);
  }
  rc = auth_mail_send(a, f.email, subject, body.data, e);
  /* the body holds the token: wipe it */
  sodium_memzero(body.data, body.len);
  buf_fini(&body);
  return rc;
}
