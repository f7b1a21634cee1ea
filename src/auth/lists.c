/* auth/lists: the listings the API and dashboard show — a user's orgs and
 * projects, and the members of an org or a project. */
#include "auth.h"

#include <string.h>

#define LIST_MAX 1000

typedef void (*row_fn)(struct db_stmt *s, json_t *arr, void *arg);

static json_t *query(struct auth *a, const char *sql, const char *p1, row_fn fn, void *arg,
                     struct err *e) {
  struct db_conn *c = db_reader_acquire(auth_db(a), e);
  if (!c) return NULL;
  json_t *arr = json_array();
  struct db_stmt *s = db_prepare(c, sql, e);
  int rc = s ? 0 : -ERR_INTERNAL;
  if (s) {
    if (p1) db_bind_text(s, 1, p1);
    while ((rc = db_step(s, e)) == DB_ROW && json_array_size(arr) < LIST_MAX) fn(s, arr, arg);
    db_stmt_done(s);
  }
  db_reader_release(auth_db(a), c);
  if (rc < 0) {
    json_decref(arr);
    return NULL;
  }
  return arr;
}

static void set_text(json_t *o, const char *k, struct db_stmt *s, int col) {
  const char *v = db_col_text(s, col);
  if (v && *v) json_object_set_new(o, k, json_string(v));
}

static void org_row(struct db_stmt *s, json_t *arr, void *arg) {
  (void)arg;
  json_t *o = json_object();
  set_text(o, "id", s, 0);
  set_text(o, "name", s, 1);
  set_text(o, "display_name", s, 2);
  set_text(o, "role", s, 3);
  json_object_set_new(o, "created_at", json_integer(db_col_i64(s, 4)));
  json_array_append_new(arr, o);
}

json_t *auth_orgs_of_user(struct auth *a, const char *user_id, struct err *e) {
  return query(a,
               "SELECT o.id, o.name, o.display_name, m.role, o.created_at FROM orgs o "
               "JOIN org_members m ON m.org_id = o.id WHERE m.user_id = ? "
               "ORDER BY o.created_at DESC, o.id",
               user_id, org_row, NULL, e);
}

static void project_row(struct db_stmt *s, json_t *arr, void *arg) {
  (void)arg;
  json_t *o = json_object();
  set_text(o, "id", s, 0);
  set_text(o, "org_id", s, 1);
  set_text(o, "org_name", s, 2);
  set_text(o, "name", s, 3);
  set_text(o, "description", s, 4);
  json_object_set_new(o, "created_at", json_integer(db_col_i64(s, 5)));
  json_array_append_new(arr, o);
}

json_t *auth_projects_of_user(struct auth *a, const char *user_id, bool all, struct err *e) {
  /* candidates: every project (admins) or those of the user's orgs, since
   * membership in a project implies membership in its org */
  json_t *arr = all ? query(a,
                            "SELECT p.id, p.org_id, o.name, p.name, p.description, p.created_at "
                            "FROM projects p JOIN orgs o ON o.id = p.org_id "
                            "ORDER BY p.created_at DESC, p.id",
                            NULL, project_row, NULL, e)
                    : query(a,
                            "SELECT p.id, p.org_id, o.name, p.name, p.description, p.created_at "
                            "FROM projects p JOIN orgs o ON o.id = p.org_id "
                            "JOIN org_members m ON m.org_id = p.org_id WHERE m.user_id = ? "
                            "ORDER BY p.created_at DESC, p.id",
                            user_id, project_row, NULL, e);
  if (!arr) return NULL;
  /* roles after the reader is released: auth_project_role takes its own */
  for (size_t i = 0; i < json_array_size(arr);) {
    json_t *o = json_array_get(arr, i);
    enum project_role r = auth_project_role(a, json_string_value(json_object_get(o, "id")), user_id);
    if (r == PROJECT_ROLE_NONE && !all) {
      json_array_remove(arr, i);
      continue;
    }
    json_object_set_new(o, "role", json_string(r == PROJECT_ROLE_NONE ? "admin" : project_role_name(r)));
    i++;
  }
  return arr;
}

static void member_row(struct db_stmt *s, json_t *arr, void *arg) {
  (void)arg;
  json_t *o = json_object();
  set_text(o, "user_id", s, 0);
  set_text(o, "username", s, 1);
  set_text(o, "email", s, 2);
  set_text(o, "role", s, 3);
  json_array_append_new(arr, o);
}

json_t *auth_org_members(struct auth *a, const char *org_id, struct err *e) {
  return query(a,
               "SELECT u.id, u.username, u.email, m.role FROM org_members m "
               "JOIN users u ON u.id = m.user_id WHERE m.org_id = ? ORDER BY u.username",
               org_id, member_row, NULL, e);
}

json_t *auth_project_members(struct auth *a, const char *project_id, struct err *e) {
  return query(a,
               "SELECT u.id, u.username, u.email, m.role FROM project_members m "
               "JOIN users u ON u.id = m.user_id WHERE m.project_id = ? ORDER BY u.username",
               project_id, member_row, NULL, e);
}
