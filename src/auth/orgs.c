/* auth/orgs: tenancy — orgs, their projects, who belongs to which with what
 * role, and the invitations that bring people in. Every check that guards a
 * write runs inside the same db_write job as the write, so two racing
 * requests cannot both pass it (the writer runs jobs one at a time). */
#include "auth.h"

#include <sodium.h>
#include <string.h>

#define ORG_NAME_MAX 64
#define DISPLAY_NAME_MAX 128
#define DESCRIPTION_MAX 512
#define EMAIL_MAX 254
#define INVITE_TTL_MIN_S 3600
#define INVITE_TTL_MAX_S (30 * 86400)
#define INVITE_PREFIX "kiln_inv_"
#define INVITE_RANDOM_BYTES 32
#define INVITE_DIGITS 43 /* 62^43 > 2^256: every random bit survives */

/* ---- small helpers ------------------------------------------------------ */

static void col_copy(char *dst, size_t cap, struct db_stmt *s, int col) {
  const char *v = db_col_text(s, col);
  str_copy(dst, cap, v ? v : "");
}

static bool filled(const char *s) { return s && *s; }

/* Org and project names end up in URLs and CLI arguments: a slug, and not
 * starting with '-' so it can never be read as a flag. */
static int slug_check(const char *what, const char *name, struct err *e) {
  if (!filled(name)) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s must not be empty", what);
  size_t n = strlen(name);
  if (n > ORG_NAME_MAX)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s must be at most %d characters", what,
                   ORG_NAME_MAX);
  for (size_t i = 0; i < n; i++) {
    char ch = name[i];
    if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-') continue;
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "%s may contain only lowercase letters, digits and '-'", what);
  }
  if (name[0] == '-')
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s must start with a letter or digit", what);
  return 0;
}

static int text_check(const char *what, const char *s, size_t max, struct err *e) {
  if (s && strlen(s) > max)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s must be at most %zu characters", what, max);
  return 0;
}

static int id_check(const char *what, const char *id, struct err *e) {
  if (!filled(id)) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s is required", what);
  return 0;
}

/* 1 when the query (one or two text parameters) returns a row, 0 when not,
 * <0 on a database error. */
static int row_exists(struct db_conn *c, const char *sql, const char *p1, const char *p2,
                      struct err *e) {
  struct db_stmt *s = db_prepare(c, sql, e);
  if (!s) return -(int)e->code;
  db_bind_text(s, 1, p1);
  if (p2) db_bind_text(s, 2, p2);
  int rc = db_step(s, e);
  db_stmt_done(s);
  return rc < 0 ? rc : rc == DB_ROW;
}

static int user_must_exist(struct db_conn *c, const char *user_id, struct err *e) {
  int rc = row_exists(c, "SELECT 1 FROM users WHERE id = ?", user_id, NULL, e);
  if (rc < 0) return rc;
  return rc ? 0 : err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "user not found");
}

static int org_must_exist(struct db_conn *c, const char *org_id, struct err *e) {
  int rc = row_exists(c, "SELECT 1 FROM orgs WHERE id = ?", org_id, NULL, e);
  if (rc < 0) return rc;
  return rc ? 0 : err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "organization not found");
}

static int org_role_in(struct db_conn *c, const char *org_id, const char *user_id,
                       enum org_role *out, struct err *e) {
  *out = ORG_ROLE_NONE;
  struct db_stmt *s =
      db_prepare(c, "SELECT role FROM org_members WHERE org_id = ? AND user_id = ?", e);
  if (!s) return -(int)e->code;
  db_bind_text(s, 1, org_id);
  db_bind_text(s, 2, user_id);
  int rc = db_step(s, e);
  if (rc == DB_ROW) *out = org_role_parse(db_col_text(s, 0));
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

static int explicit_project_role_in(struct db_conn *c, const char *project_id, const char *user_id,
                                    enum project_role *out, struct err *e) {
  *out = PROJECT_ROLE_NONE;
  struct db_stmt *s =
      db_prepare(c, "SELECT role FROM project_members WHERE project_id = ? AND user_id = ?", e);
  if (!s) return -(int)e->code;
  db_bind_text(s, 1, project_id);
  db_bind_text(s, 2, user_id);
  int rc = db_step(s, e);
  if (rc == DB_ROW) *out = project_role_parse(db_col_text(s, 0));
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

static int owner_count(struct db_conn *c, const char *org_id, int64_t *out, struct err *e) {
  struct db_stmt *s =
      db_prepare(c, "SELECT COUNT(*) FROM org_members WHERE org_id = ? AND role = 'owner'", e);
  if (!s) return -(int)e->code;
  db_bind_text(s, 1, org_id);
  int rc = db_step(s, e);
  *out = rc == DB_ROW ? db_col_i64(s, 0) : 0;
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

/* Runs one write statement whose text parameters are given in order
 * (NULL binds NULL); i64 parameters follow the texts. */
static int exec_write(struct db_conn *c, const char *sql, const char *const *texts, int ntexts,
                      const int64_t *nums, int nnums, struct err *e) {
  struct db_stmt *s = db_prepare(c, sql, e);
  if (!s) return -(int)e->code;
  for (int i = 0; i < ntexts; i++) db_bind_text(s, i + 1, texts[i]);
  for (int i = 0; i < nnums; i++) db_bind_i64(s, ntexts + i + 1, nums[i]);
  int rc = db_step(s, e);
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

static int org_member_upsert(struct db_conn *c, const char *org_id, const char *user_id,
                             enum org_role role, struct err *e) {
  const char *t[] = {org_id, user_id, org_role_name(role)};
  int64_t now = time_wall_ms();
  return exec_write(
      c,
      "INSERT INTO org_members (org_id, user_id, role, created_at) VALUES (?, ?, ?, ?)"
      " ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
      t, 3, &now, 1, e);
}

static int project_member_upsert(struct db_conn *c, const char *project_id, const char *user_id,
                                 enum project_role role, struct err *e) {
  const char *t[] = {project_id, user_id, project_role_name(role)};
  int64_t now = time_wall_ms();
  return exec_write(
      c,
      "INSERT INTO project_members (project_id, user_id, role, created_at) VALUES (?, ?, ?, ?)"
      " ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role",
      t, 3, &now, 1, e);
}

/* The org a project belongs to: 0, RESOURCE_DOES_NOT_EXIST or a db error. */
static int project_org_in(struct db_conn *c, const char *project_id, char org_id[AUTH_ID_LEN + 1],
                          struct err *e) {
  struct db_stmt *s = db_prepare(c, "SELECT org_id FROM projects WHERE id = ?", e);
  if (!s) return -(int)e->code;
  db_bind_text(s, 1, project_id);
  int rc = db_step(s, e);
  if (rc == DB_ROW) col_copy(org_id, AUTH_ID_LEN + 1, s, 0);
  db_stmt_done(s);
  if (rc < 0) return rc;
  return rc == DB_ROW ? 0 : err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "project not found");
}

/* ---- orgs --------------------------------------------------------------- */

struct org_create_job {
  const char *owner, *name, *display_name;
  struct auth_org org;
};

static int org_create_run(struct db_conn *c, void *arg, struct err *e) {
  struct org_create_job *j = arg;
  int rc = user_must_exist(c, j->owner, e);
  if (rc) return rc;
  if ((rc = row_exists(c, "SELECT 1 FROM orgs WHERE name = ?", j->name, NULL, e)) != 0)
    return rc < 0 ? rc
                  : err_set(e, ERR_RESOURCE_ALREADY_EXISTS,
                            "an organization named '%s' already exists", j->name);
  id_random_hex(j->org.id, AUTH_ID_LEN / 2);
  str_copy(j->org.name, sizeof j->org.name, j->name);
  str_copy(j->org.display_name, sizeof j->org.display_name, j->display_name ? j->display_name : "");
  j->org.created_at = time_wall_ms();
  const char *t[] = {j->org.id, j->org.name, filled(j->display_name) ? j->display_name : NULL};
  int64_t n[] = {j->org.created_at, j->org.created_at};
  rc = exec_write(c,
                  "INSERT INTO orgs (id, name, display_name, created_at, updated_at)"
                  " VALUES (?, ?, ?, ?, ?)",
                  t, 3, n, 2, e);
  if (rc) return rc;
  return org_member_upsert(c, j->org.id, j->owner, ORG_ROLE_OWNER, e);
}

int auth_org_create(struct auth *a, const char *owner_user_id, const char *name,
                    const char *display_name, struct auth_org *out, struct err *e) {
  int rc;
  if ((rc = id_check("owner user id", owner_user_id, e)) ||
      (rc = slug_check("organization name", name, e)) ||
      (rc = text_check("display name", display_name, DISPLAY_NAME_MAX, e)))
    return rc;
  struct org_create_job j = {.owner = owner_user_id, .name = name, .display_name = display_name};
  if ((rc = db_write(auth_db(a), org_create_run, &j, e)) < 0) return rc;
  if (out) *out = j.org;
  return 0;
}

int auth_org_get(struct auth *a, const char *org_id, struct auth_org *out, struct err *e) {
  struct err local;
  if (!e) e = &local;
  int rc = id_check("organization id", org_id, e);
  if (rc) return rc;
  struct db_conn *c = db_reader_acquire(auth_db(a), e);
  if (!c) return -(int)e->code;
  struct db_stmt *s =
      db_prepare(c, "SELECT id, name, display_name, created_at FROM orgs WHERE id = ?", e);
  if (!s) {
    db_reader_release(auth_db(a), c);
    return -(int)e->code;
  }
  db_bind_text(s, 1, org_id);
  rc = db_step(s, e);
  if (rc == DB_ROW && out) {
    col_copy(out->id, sizeof out->id, s, 0);
    col_copy(out->name, sizeof out->name, s, 1);
    col_copy(out->display_name, sizeof out->display_name, s, 2);
    out->created_at = db_col_i64(s, 3);
  }
  db_stmt_done(s);
  db_reader_release(auth_db(a), c);
  if (rc < 0) return rc;
  return rc == DB_ROW ? 0 : err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "organization not found");
}

/* Users whose default project goes away get none rather than a dangling id;
 * whoever reads default_project_id picks a new one. */
static const char clear_defaults_of_org_sql[] =
    "UPDATE users SET default_project_id = NULL"
    " WHERE default_project_id IN (SELECT id FROM projects WHERE org_id = ?)";

static int org_delete_run(struct db_conn *c, void *arg, struct err *e) {
  const char *org_id = arg;
  const char *t[] = {org_id};
  int rc = exec_write(c, clear_defaults_of_org_sql, t, 1, NULL, 0, e);
  if (rc) return rc;
  /* projects, memberships, invitations and project keys go by cascade */
  if ((rc = exec_write(c, "DELETE FROM orgs WHERE id = ?", t, 1, NULL, 0, e))) return rc;
  if (db_changes(c) == 0) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "organization not found");
  return 0;
}

int auth_org_delete(struct auth *a, const char *org_id, struct err *e) {
  int rc = id_check("organization id", org_id, e);
  if (rc) return rc;
  return db_write(auth_db(a), org_delete_run, (void *)org_id, e);
}

struct member_job {
  const char *scope_id, *user_id; /* org or project id */
  int role;
};

static int org_member_set_run(struct db_conn *c, void *arg, struct err *e) {
  struct member_job *j = arg;
  int rc;
  if ((rc = org_must_exist(c, j->scope_id, e)) || (rc = user_must_exist(c, j->user_id, e)))
    return rc;
  enum org_role cur;
  if ((rc = org_role_in(c, j->scope_id, j->user_id, &cur, e))) return rc;
  if (cur == ORG_ROLE_OWNER && j->role != ORG_ROLE_OWNER) {
    int64_t owners;
    if ((rc = owner_count(c, j->scope_id, &owners, e))) return rc;
    if (owners <= 1)
      return err_set(e, ERR_CONFLICT, "an organization must keep at least one owner");
  }
  return org_member_upsert(c, j->scope_id, j->user_id, (enum org_role)j->role, e);
}

int auth_org_member_set(struct auth *a, const char *org_id, const char *user_id, enum org_role role,
                        struct err *e) {
  int rc;
  if ((rc = id_check("organization id", org_id, e)) || (rc = id_check("user id", user_id, e)))
    return rc;
  if (role < ORG_ROLE_MEMBER || role > ORG_ROLE_OWNER)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "organization role must be member, admin or owner");
  struct member_job j = {.scope_id = org_id, .user_id = user_id, .role = role};
  return db_write(auth_db(a), org_member_set_run, &j, e);
}

static int org_member_remove_run(struct db_conn *c, void *arg, struct err *e) {
  struct member_job *j = arg;
  enum org_role cur;
  int rc = org_role_in(c, j->scope_id, j->user_id, &cur, e);
  if (rc) return rc;
  if (cur == ORG_ROLE_NONE)
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "the user is not a member of this organization");
  if (cur == ORG_ROLE_OWNER) {
    int64_t owners;
    if ((rc = owner_count(c, j->scope_id, &owners, e))) return rc;
    if (owners <= 1)
      return err_set(e, ERR_CONFLICT, "an organization must keep at least one owner");
  }
  /* Project memberships exist only for org members: leaving the org leaves
   * its projects too, or the user would keep access through them. */
  const char *t[] = {j->user_id, j->scope_id};
  if ((rc = exec_write(c,
                       "DELETE FROM project_members WHERE user_id = ?"
                       " AND project_id IN (SELECT id FROM projects WHERE org_id = ?)",
                       t, 2, NULL, 0, e)))
    return rc;
  if ((rc = exec_write(c,
                       "UPDATE users SET default_project_id = NULL WHERE id = ?"
                       " AND default_project_id IN (SELECT id FROM projects WHERE org_id = ?)",
                       t, 2, NULL, 0, e)))
    return rc;
  const char *t2[] = {j->scope_id, j->user_id};
  return exec_write(c, "DELETE FROM org_members WHERE org_id = ? AND user_id = ?", t2, 2, NULL, 0,
                    e);
}

int auth_org_member_remove(struct auth *a, const char *org_id, const char *user_id, struct err *e) {
  int rc;
  if ((rc = id_check("organization id", org_id, e)) || (rc = id_check("user id", user_id, e)))
    return rc;
  struct member_job j = {.scope_id = org_id, .user_id = user_id};
  return db_write(auth_db(a), org_member_remove_run, &j, e);
}

enum org_role auth_org_role(struct auth *a, const char *org_id, const char *user_id) {
  if (!filled(org_id) || !filled(user_id)) return ORG_ROLE_NONE;
  struct err e;
  struct db_conn *c = db_reader_acquire(auth_db(a), &e);
  if (!c) return ORG_ROLE_NONE; /* deny when unsure */
  enum org_role r;
  if (org_role_in(c, org_id, user_id, &r, &e)) r = ORG_ROLE_NONE;
  db_reader_release(auth_db(a), c);
  return r;
}

/* ---- projects ----------------------------------------------------------- */

struct project_create_job {
  const char *org_id, *name, *description, *creator;
  struct auth_project p;
};

static int project_create_run(struct db_conn *c, void *arg, struct err *e) {
  struct project_create_job *j = arg;
  int rc = org_must_exist(c, j->org_id, e);
  if (rc) return rc;
  if (j->creator) {
    if ((rc = user_must_exist(c, j->creator, e))) return rc;
    enum org_role r;
    if ((rc = org_role_in(c, j->org_id, j->creator, &r, e))) return rc;
    /* keeps "project members are org members", which removal relies on */
    if (r == ORG_ROLE_NONE)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "the creator is not a member of the organization; invite them to the "
                     "organization first");
  }
  if ((rc = row_exists(c, "SELECT 1 FROM projects WHERE org_id = ? AND name = ?", j->org_id,
                       j->name, e)) != 0)
    return rc < 0 ? rc
                  : err_set(e, ERR_RESOURCE_ALREADY_EXISTS,
                            "a project named '%s' already exists in this organization", j->name);
  id_random_hex(j->p.id, AUTH_ID_LEN / 2);
  str_copy(j->p.org_id, sizeof j->p.org_id, j->org_id);
  str_copy(j->p.name, sizeof j->p.name, j->name);
  str_copy(j->p.description, sizeof j->p.description, j->description ? j->description : "");
  j->p.created_at = time_wall_ms();
  const char *t[] = {j->p.id, j->org_id, j->name, filled(j->description) ? j->description : NULL};
  int64_t n[] = {j->p.created_at, j->p.created_at};
  rc = exec_write(c,
                  "INSERT INTO projects (id, org_id, name, description, created_at, updated_at)"
                  " VALUES (?, ?, ?, ?, ?, ?)",
                  t, 4, n, 2, e);
  if (rc || !j->creator) return rc;
  return project_member_upsert(c, j->p.id, j->creator, PROJECT_ROLE_ADMIN, e);
}

int auth_project_create(struct auth *a, const char *org_id, const char *name,
                        const char *description, const char *creator_user_id,
                        struct auth_project *out, struct err *e) {
  int rc;
  if ((rc = id_check("organization id", org_id, e)) || (rc = slug_check("project name", name, e)) ||
      (rc = text_check("description", description, DESCRIPTION_MAX, e)))
    return rc;
  /* NULL creator: a project made by the system, with no explicit admin (the
   * org's owners and admins administer it anyway). */
  struct project_create_job j = {.org_id = org_id,
                                 .name = name,
                                 .description = description,
                                 .creator = filled(creator_user_id) ? creator_user_id : NULL};
  if ((rc = db_write(auth_db(a), project_create_run, &j, e)) < 0) return rc;
  if (out) *out = j.p;
  return 0;
}

int auth_project_get(struct auth *a, const char *project_id, struct auth_project *out,
                     struct err *e) {
  struct err local;
  if (!e) e = &local;
  int rc = id_check("project id", project_id, e);
  if (rc) return rc;
  struct db_conn *c = db_reader_acquire(auth_db(a), e);
  if (!c) return -(int)e->code;
  struct db_stmt *s = db_prepare(
      c, "SELECT id, org_id, name, description, created_at FROM projects WHERE id = ?", e);
  if (!s) {
    db_reader_release(auth_db(a), c);
    return -(int)e->code;
  }
  db_bind_text(s, 1, project_id);
  rc = db_step(s, e);
  if (rc == DB_ROW && out) {
    col_copy(out->id, sizeof out->id, s, 0);
    col_copy(out->org_id, sizeof out->org_id, s, 1);
    col_copy(out->name, sizeof out->name, s, 2);
    col_copy(out->description, sizeof out->description, s, 3);
    out->created_at = db_col_i64(s, 4);
  }
  db_stmt_done(s);
  db_reader_release(auth_db(a), c);
  if (rc < 0) return rc;
  return rc == DB_ROW ? 0 : err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "project not found");
}

static int project_delete_run(struct db_conn *c, void *arg, struct err *e) {
  const char *t[] = {arg};
  int rc = exec_write(c, "UPDATE users SET default_project_id = NULL WHERE default_project_id = ?",
                      t, 1, NULL, 0, e);
  if (rc) return rc;
  /* memberships, invitations and keys restricted to it go by cascade */
  if ((rc = exec_write(c, "DELETE FROM projects WHERE id = ?", t, 1, NULL, 0, e))) return rc;
  if (db_changes(c) == 0) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "project not found");
  return 0;
}

int auth_project_delete(struct auth *a, const char *project_id, struct err *e) {
  int rc = id_check("project id", project_id, e);
  if (rc) return rc;
  return db_write(auth_db(a), project_delete_run, (void *)project_id, e);
}

static int project_member_set_run(struct db_conn *c, void *arg, struct err *e) {
  struct member_job *j = arg;
  char org_id[AUTH_ID_LEN + 1];
  int rc;
  if ((rc = project_org_in(c, j->scope_id, org_id, e)) || (rc = user_must_exist(c, j->user_id, e)))
    return rc;
  enum org_role r;
  if ((rc = org_role_in(c, org_id, j->user_id, &r, e))) return rc;
  if (r == ORG_ROLE_NONE)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "the user is not a member of the project's organization; invite them to the "
                   "organization first");
  return project_member_upsert(c, j->scope_id, j->user_id, (enum project_role)j->role, e);
}

int auth_project_member_set(struct auth *a, const char *project_id, const char *user_id,
                            enum project_role role, struct err *e) {
  int rc;
  if ((rc = id_check("project id", project_id, e)) || (rc = id_check("user id", user_id, e)))
    return rc;
  if (role < PROJECT_ROLE_VIEWER || role > PROJECT_ROLE_ADMIN)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "project role must be viewer, editor or admin");
  struct member_job j = {.scope_id = project_id, .user_id = user_id, .role = role};
  return db_write(auth_db(a), project_member_set_run, &j, e);
}

static int project_member_remove_run(struct db_conn *c, void *arg, struct err *e) {
  struct member_job *j = arg;
  char org_id[AUTH_ID_LEN + 1];
  int rc = project_org_in(c, j->scope_id, org_id, e);
  if (rc) return rc;
  const char *t[] = {j->scope_id, j->user_id};
  if ((rc = exec_write(c, "DELETE FROM project_members WHERE project_id = ? AND user_id = ?", t, 2,
                       NULL, 0, e)))
    return rc;
  if (db_changes(c) == 0)
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "the user is not a member of this project");
  return 0;
}

int auth_project_member_remove(struct auth *a, const char *project_id, const char *user_id,
                               struct err *e) {
  int rc;
  if ((rc = id_check("project id", project_id, e)) || (rc = id_check("user id", user_id, e)))
    return rc;
  struct member_job j = {.scope_id = project_id, .user_id = user_id};
  return db_write(auth_db(a), project_member_remove_run, &j, e);
}

/* One query: the explicit project role and the org role, if any. The
 * effective role is the higher of the explicit one and the one the org role
 * implies (owner/admin -> admin, member -> viewer). */
enum project_role auth_project_role(struct auth *a, const char *project_id, const char *user_id) {
  if (!filled(project_id) || !filled(user_id)) return PROJECT_ROLE_NONE;
  struct err e;
  struct db_conn *c = db_reader_acquire(auth_db(a), &e);
  if (!c) return PROJECT_ROLE_NONE; /* deny when unsure */
  enum project_role r = PROJECT_ROLE_NONE;
  struct db_stmt *s = db_prepare(c,
                                 "SELECT pm.role, om.role FROM projects p"
                                 " LEFT JOIN project_members pm"
                                 "   ON pm.project_id = p.id AND pm.user_id = ?"
                                 " LEFT JOIN org_members om"
                                 "   ON om.org_id = p.org_id AND om.user_id = ?"
                                 " WHERE p.id = ?",
                                 &e);
  if (s) {
    db_bind_text(s, 1, user_id);
    db_bind_text(s, 2, user_id);
    db_bind_text(s, 3, project_id);
    if (db_step(s, &e) == DB_ROW) {
      enum project_role explicit_role = project_role_parse(db_col_text(s, 0));
      enum org_role org = org_role_parse(db_col_text(s, 1));
      enum project_role derived = org >= ORG_ROLE_ADMIN    ? PROJECT_ROLE_ADMIN
                                  : org == ORG_ROLE_MEMBER ? PROJECT_ROLE_VIEWER
                                                           : PROJECT_ROLE_NONE;
      r = explicit_role > derived ? explicit_role : derived;
    }
    db_stmt_done(s);
  }
  db_reader_release(auth_db(a), c);
  return r;
}

/* ---- invitations -------------------------------------------------------- */

/* Loose on purpose: the invitation's delivery is the real test of an
 * address; this only catches typos and garbage. */
static int invite_email_check(const char *email, struct err *e) {
  if (!filled(email)) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "email is required");
  size_t n = strlen(email);
  if (n > EMAIL_MAX)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "email must be at most %d characters",
                   EMAIL_MAX);
  const char *at = strchr(email, '@');
  if (!at || strchr(at + 1, '@') || at == email)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "email must have one '@' with a name before it");
  for (const char *p = email; *p; p++)
    if ((unsigned char)*p <= ' ' || *p == 0x7f)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "email must not contain spaces");
  const char *dot = strchr(at + 1, '.');
  if (!dot || dot == at + 1 || dot[1] == 0)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "email domain must contain a dot (like example.com)");
  return 0;
}

static void invite_token_new(char out[AUTH_KEY_MAX]) {
  _Static_assert(sizeof INVITE_PREFIX - 1 + INVITE_DIGITS < AUTH_KEY_MAX, "token too long");
  uint8_t raw[INVITE_RANDOM_BYTES];
  randombytes_buf(raw, sizeof raw);
  memcpy(out, INVITE_PREFIX, sizeof INVITE_PREFIX - 1);
  base62_encode(raw, sizeof raw, out + sizeof INVITE_PREFIX - 1, INVITE_DIGITS);
  sodium_memzero(raw, sizeof raw);
}

struct invite_create_job {
  const char *org_id, *project_id, *email, *role, *invited_by, *token_hash;
  int64_t ttl_s;
  bool owner_role; /* an org invite that makes the invitee an owner */
  char id[AUTH_ID_LEN + 1];
};

static int invite_create_run(struct db_conn *c, void *arg, struct err *e) {
  struct invite_create_job *j = arg;
  int rc = org_must_exist(c, j->org_id, e);
  if (rc) return rc;
  if (j->project_id) {
    rc = row_exists(c, "SELECT 1 FROM projects WHERE id = ? AND org_id = ?", j->project_id,
                    j->org_id, e);
    if (rc <= 0)
      return rc < 0 ? rc
                    : err_set(e, ERR_RESOURCE_DOES_NOT_EXIST,
                              "project not found in this organization");
  }
  /* Server administrators manage every org, so they may invite too. */
  struct db_stmt *s = db_prepare(c, "SELECT is_admin FROM users WHERE id = ?", e);
  if (!s) return -(int)e->code;
  db_bind_text(s, 1, j->invited_by);
  rc = db_step(s, e);
  bool server_admin = rc == DB_ROW && db_col_i64(s, 0) != 0;
  db_stmt_done(s);
  if (rc < 0) return rc;
  if (rc != DB_ROW) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "inviting user not found");
  enum org_role inviter;
  if ((rc = org_role_in(c, j->org_id, j->invited_by, &inviter, e))) return rc;
  if (!server_admin && inviter < ORG_ROLE_ADMIN)
    return err_set(e, ERR_PERMISSION_DENIED,
                   "only the organization's owners and admins may invite people");
  /* an admin handing out ownership would be a way to promote oneself */
  if (j->owner_role && !server_admin && inviter != ORG_ROLE_OWNER)
    return err_set(e, ERR_PERMISSION_DENIED, "only owners may invite new owners");
  id_random_hex(j->id, AUTH_ID_LEN / 2);
  int64_t now = time_wall_ms();
  const char *t[] = {j->id,   j->org_id,     j->project_id, j->email,
                     j->role, j->token_hash, j->invited_by};
  int64_t n[] = {now, now + j->ttl_s * 1000};
  return exec_write(c,
                    "INSERT INTO invitations (id, org_id, project_id, email, role, token_hash,"
                    " invited_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    t, 7, n, 2, e);
}

int auth_invite_create(struct auth *a, const char *org_id, const char *project_id,
                       const char *email, const char *role, const char *invited_by, int64_t ttl_s,
                       char token_out[AUTH_KEY_MAX], char id_out[AUTH_ID_LEN + 1], struct err *e) {
  int rc;
  if ((rc = id_check("organization id", org_id, e)) ||
      (rc = id_check("inviting user id", invited_by, e)) || (rc = invite_email_check(email, e)))
    return rc;
  bool for_project = filled(project_id);
  bool owner_role = false;
  if (for_project) {
    if (project_role_parse(role) == PROJECT_ROLE_NONE)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "a project invitation's role must be viewer, editor or admin");
  } else {
    enum org_role r = org_role_parse(role);
    if (r == ORG_ROLE_NONE)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "an organization invitation's role must be member, admin or owner");
    owner_role = r == ORG_ROLE_OWNER;
  }
  if (ttl_s < INVITE_TTL_MIN_S || ttl_s > INVITE_TTL_MAX_S)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "an invitation must be valid for 1 hour to 30 days (ttl_s %d..%d)",
                   INVITE_TTL_MIN_S, INVITE_TTL_MAX_S);
  char email_lc[EMAIL_MAX + 1];
  str_copy(email_lc, sizeof email_lc, email);
  for (char *p = email_lc; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + ('a' - 'A'));
  char token[AUTH_KEY_MAX], hash[65];
  invite_token_new(token);
  sha256_hex(token, strlen(token), hash);
  struct invite_create_job j = {.org_id = org_id,
                                .project_id = for_project ? project_id : NULL,
                                .email = email_lc,
                                .role = role,
                                .invited_by = invited_by,
                                .token_hash = hash,
                                .ttl_s = ttl_s,
                                .owner_role = owner_role};
  if ((rc = db_write(auth_db(a), invite_create_run, &j, e)) < 0) {
    sodium_memzero(token, sizeof token);
    return rc;
  }
  str_copy(token_out, AUTH_KEY_MAX, token);
  sodium_memzero(token, sizeof token);
  if (id_out) str_copy(id_out, AUTH_ID_LEN + 1, j.id);
  return 0;
}

struct invite_accept_job {
  const char *token_hash, *user_id;
};

/* An invitation moves once, from pending to accepted (or, elsewhere, to
 * revoked); expiry is a matter of the clock:
 *
 *   pending --accept (before expires_at)--> accepted     (terminal)
 *      |
 *      +--revoke--> revoked                              (terminal)
 *
 * Accepting grants the org role (member for a project invitation) and the
 * project role, never lowering a role the user already holds. */
static int invite_accept_run(struct db_conn *c, void *arg, struct err *e) {
  struct invite_accept_job *j = arg;
  struct db_stmt *s = db_prepare(c,
                                 "SELECT id, org_id, project_id, role, expires_at, accepted_at,"
                                 " revoked_at FROM invitations WHERE token_hash = ?",
                                 e);
  if (!s) return -(int)e->code;
  db_bind_text(s, 1, j->token_hash);
  int rc = db_step(s, e);
  char id[AUTH_ID_LEN + 1] = "", org_id[AUTH_ID_LEN + 1] = "", project_id[AUTH_ID_LEN + 1] = "";
  char role[16] = "";
  int64_t expires_at = 0;
  bool accepted = false, revoked = false;
  if (rc == DB_ROW) {
    col_copy(id, sizeof id, s, 0);
    col_copy(org_id, sizeof org_id, s, 1);
    col_copy(project_id, sizeof project_id, s, 2);
    col_copy(role, sizeof role, s, 3);
    expires_at = db_col_i64(s, 4);
    accepted = !db_col_null(s, 5);
    revoked = !db_col_null(s, 6);
  }
  db_stmt_done(s);
  if (rc < 0) return rc;
  if (rc != DB_ROW) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "invitation not found");
  if (revoked) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "this invitation was revoked");
  if (accepted)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "this invitation was already accepted");
  int64_t now = time_wall_ms();
  if (now >= expires_at) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "this invitation expired");
  if ((rc = user_must_exist(c, j->user_id, e))) return rc;

  bool for_project = project_id[0] != 0;
  enum org_role want_org = for_project ? ORG_ROLE_MEMBER : org_role_parse(role);
  enum project_role want_project = for_project ? project_role_parse(role) : PROJECT_ROLE_NONE;
  if (want_org == ORG_ROLE_NONE || (for_project && want_project == PROJECT_ROLE_NONE))
    return err_set(e, ERR_DATA_CORRUPTED, "the invitation's role '%s' is not a known role", role);

  /* the writer runs one job at a time, so the checks above cannot race; the
   * guard in WHERE keeps single use true even if that ever changes */
  s = db_prepare(c,
                 "UPDATE invitations SET accepted_at = ?, accepted_by = ?"
                 " WHERE id = ? AND accepted_at IS NULL AND revoked_at IS NULL",
                 e);
  if (!s) return -(int)e->code;
  db_bind_i64(s, 1, now);
  db_bind_text(s, 2, j->user_id);
  db_bind_text(s, 3, id);
  rc = db_step(s, e);
  db_stmt_done(s);
  if (rc < 0) return rc;
  if (db_changes(c) != 1)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "this invitation was already accepted");

  enum org_role cur_org;
  if ((rc = org_role_in(c, org_id, j->user_id, &cur_org, e))) return rc;
  if (cur_org < want_org && (rc = org_member_upsert(c, org_id, j->user_id, want_org, e))) return rc;
  if (!for_project) return 0;
  enum project_role cur_project;
  if ((rc = explicit_project_role_in(c, project_id, j->user_id, &cur_project, e))) return rc;
  if (cur_project < want_project)
    return project_member_upsert(c, project_id, j->user_id, want_project, e);
  return 0;
}

int auth_invite_accept(struct auth *a, const char *token, const char *user_id, struct err *e) {
  int rc = id_check("user id", user_id, e);
  if (rc) return rc;
  /* a malformed token is just an unknown one: no hint about the format */
  if (!filled(token) || strlen(token) >= AUTH_KEY_MAX)
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "invitation not found");
  char hash[65];
  sha256_hex(token, strlen(token), hash);
  struct invite_accept_job j = {.token_hash = hash, .user_id = user_id};
  return db_write(auth_db(a), invite_accept_run, &j, e);
}
