/* track/experiments: experiments and their tags within a project, the
 * lazily created per-project Default experiment that "0" names, and the
 * lifecycle (active <-> deleted, which carries the experiment's runs). */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- shared helpers ----------------------------------------------------------- */

int track_exec(struct db_conn *c, const char *sql, struct err *e, const char *fmt, ...) {
  struct db_stmt *s = db_prepare(c, sql, e);
  if (!s) return -ERR_INTERNAL;
  va_list ap;
  va_start(ap, fmt);
  for (int i = 0; fmt[i]; i++) {
    switch (fmt[i]) {
    case 's': db_bind_text(s, i + 1, va_arg(ap, const char *)); break;
    case 'i': db_bind_i64(s, i + 1, va_arg(ap, int64_t)); break;
    case 'd': db_bind_f64(s, i + 1, va_arg(ap, double)); break;
    default: db_bind_null(s, i + 1); break;
    }
  }
  va_end(ap);
  int rc = db_step(s, e);
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

bool track_exp_id_parse(const char *s, int64_t *out) {
  if (!s || !*s || strlen(s) > 18) return false;
  for (const char *p = s; *p; p++)
    if (*p < '0' || *p > '9') return false;
  return str_to_i64(s, out) == 0;
}

int track_exp_load(struct db_conn *c, const char *project_id, int64_t id, const char *shown,
                 struct track_exp *out, struct err *e) {
  struct db_stmt *s = db_prepare(c,
                                 "SELECT lifecycle_stage, artifact_location FROM experiments"
                                 " WHERE experiment_id = ? AND project_id = ?",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, id);
  db_bind_text(s, 2, project_id);
  int rc = db_step(s, e);
  if (rc == DB_ROW) {
    out->id = id;
    out->active = str_eq(db_col_text(s, 0), TRK_LIFECYCLE_ACTIVE);
    const char *al = db_col_text(s, 1);
    str_copy(out->artifact_location, sizeof out->artifact_location, al ? al : "");
    rc = 0;
  } else if (rc == DB_DONE) {
    if (shown)
      rc = err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "No Experiment with id=%s exists", shown);
    else
      rc = err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "No Experiment with id=%lld exists", (long long)id);
  }
  db_stmt_done(s);
  return rc;
}

static json_t *kv_list(struct db_conn *c, const char *sql, int64_t id, const char *text_id,
                       struct err *e) {
  struct db_stmt *s = db_prepare(c, sql, e);
  if (!s) return NULL;
  if (text_id) db_bind_text(s, 1, text_id);
  else db_bind_i64(s, 1, id);
  json_t *arr = json_array();
  int rc;
  while ((rc = db_step(s, e)) == DB_ROW) {
    const char *v = db_col_text(s, 1);
    json_t *o = json_pack("{s:s}", "key", db_col_text(s, 0));
    if (v && *v) json_object_set_new(o, "value", json_string(v));
    json_array_append_new(arr, o);
  }
  db_stmt_done(s);
  if (rc < 0) {
    json_decref(arr);
    return NULL;
  }
  return arr;
}

json_t *track_exp_json(struct db_conn *c, int64_t id, struct err *e) {
  struct db_stmt *s = db_prepare(c,
                                 "SELECT name, artifact_location, lifecycle_stage, last_update_time,"
                                 " creation_time FROM experiments WHERE experiment_id = ?",
                                 e);
  if (!s) return NULL;
  db_bind_i64(s, 1, id);
  int rc = db_step(s, e);
  if (rc != DB_ROW) {
    db_stmt_done(s);
    if (rc == DB_DONE) err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "No Experiment with id=%lld exists", (long long)id);
    return NULL;
  }
  char idtext[24];
  snprintf(idtext, sizeof idtext, "%lld", (long long)id);
  json_t *o = json_pack("{s:s, s:s}", "experiment_id", idtext, "name", db_col_text(s, 0));
  const char *al = db_col_text(s, 1);
  if (al && *al) json_object_set_new(o, "artifact_location", json_string(al));
  json_object_set_new(o, "lifecycle_stage", json_string(db_col_text(s, 2)));
  if (!db_col_null(s, 3)) json_object_set_new(o, "last_update_time", json_integer(db_col_i64(s, 3)));
  if (!db_col_null(s, 4)) json_object_set_new(o, "creation_time", json_integer(db_col_i64(s, 4)));
  db_stmt_done(s);
  json_t *tags = kv_list(c, "SELECT key, value FROM experiment_tags WHERE experiment_id = ? ORDER BY key", id,
                         NULL, e);
  if (!tags) {
    json_decref(o);
    return NULL;
  }
  if (json_array_size(tags)) json_object_set_new(o, "tags", tags);
  else json_decref(tags);
  return o;
}

/* A tag list for an Experiment/Run from a "SELECT key, value ... WHERE x = ?" (text id). */
json_t *track_kv_list_text(struct db_conn *c, const char *sql, const char *id, struct err *e);
json_t *track_kv_list_text(struct db_conn *c, const char *sql, const char *id, struct err *e) {
  return kv_list(c, sql, 0, id, e);
}

/* ---- validation ------------------------------------------------------------------ */

static int check_name(const char *name, struct err *e) {
  if (!name || !*name) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid experiment name: '%s'", name ? name : "");
  if (track_utf8_chars(name) > TRACKING_MAX_EXPERIMENT_NAME_LEN)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "Experiment name exceeds the maximum length of %d characters",
                   TRACKING_MAX_EXPERIMENT_NAME_LEN);
  return 0;
}

static int check_exp_tag(const char *key, const char *value, struct err *e) {
  int rc = track_key_check(TRACKING_KEY_TAG, key, e);
  if (rc) return rc;
  size_t n = value ? track_utf8_chars(value) : 0;
  if (n > TRACKING_MAX_EXPERIMENT_TAG_VALUE_LEN)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "Tag value '%.*s' had length %zu, which exceeded length limit of %d",
                   (int)track_utf8_prefix(value, 100), value, n, TRACKING_MAX_EXPERIMENT_TAG_VALUE_LEN);
  return 0;
}

/* ---- read helpers ----------------------------------------------------------------- */

static int default_lookup(struct db_conn *c, const char *project_id, int64_t *id, bool *found,
                          struct err *e) {
  struct db_stmt *s =
      db_prepare(c, "SELECT experiment_id FROM project_default_experiments WHERE project_id = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, project_id);
  int rc = db_step(s, e);
  *found = rc == DB_ROW;
  if (*found) *id = db_col_i64(s, 0);
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

static int name_lookup(struct db_conn *c, const char *project_id, const char *name, int64_t *id,
                       bool *found, struct err *e) {
  struct db_stmt *s =
      db_prepare(c, "SELECT experiment_id FROM experiments WHERE project_id = ? AND name = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, project_id);
  db_bind_text(s, 2, name);
  int rc = db_step(s, e);
  *found = rc == DB_ROW;
  if (*found) *id = db_col_i64(s, 0);
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

/* ---- creation ----------------------------------------------------------------------- */

/* Ids come from MAX + 1: the single writer makes that race-free, and it is
 * portable SQL (no RETURNING or last-insert-id in the driver table). */
static int exp_insert(struct db_conn *c, const char *project_id, const char *name,
                      const char *artifact_location, int64_t *id_out, struct err *e) {
  struct db_stmt *s = db_prepare(c, "SELECT COALESCE(MAX(experiment_id), 0) + 1 FROM experiments", e);
  if (!s) return -ERR_INTERNAL;
  int rc = db_step(s, e);
  int64_t id = rc == DB_ROW ? db_col_i64(s, 0) : 0;
  db_stmt_done(s);
  if (rc != DB_ROW) return rc < 0 ? rc : err_set(e, ERR_INTERNAL, "no experiment id");
  char loc[1100];
  if (artifact_location && *artifact_location) str_copy(loc, sizeof loc, artifact_location);
  else snprintf(loc, sizeof loc, "mlflow-artifacts:/%lld", (long long)id);
  int64_t now = time_wall_ms();
  rc = track_exec(c,
                "INSERT INTO experiments (experiment_id, project_id, name, artifact_location,"
                " lifecycle_stage, creation_time, last_update_time) VALUES (?, ?, ?, ?, 'active', ?, ?)",
                e, "isssii", id, project_id, name, loc, now, now);
  if (rc == 0) *id_out = id;
  return rc;
}

struct default_job {
  const char *project_id;
  int64_t id;
};

static int default_job(struct db_conn *c, void *arg, struct err *e) {
  struct default_job *j = arg;
  bool found;
  int rc = default_lookup(c, j->project_id, &j->id, &found, e);
  if (rc || found) return rc;
  /* an experiment already named Default (made by hand) becomes the Default */
  rc = name_lookup(c, j->project_id, TRACKING_DEFAULT_EXPERIMENT_NAME, &j->id, &found, e);
  if (rc) return rc;
  if (!found && (rc = exp_insert(c, j->project_id, TRACKING_DEFAULT_EXPERIMENT_NAME, NULL, &j->id, e)))
    return rc;
  return track_exec(c, "INSERT INTO project_default_experiments (project_id, experiment_id) VALUES (?, ?)",
                  e, "si", j->project_id, j->id);
}

int track_default_experiment(struct db *db, const char *project_id, int64_t *id, struct err *e) {
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -ERR_UNAVAILABLE;
  bool found = false;
  int rc = default_lookup(c, project_id, id, &found, e);
  db_reader_release(db, c);
  if (rc || found) return rc;
  struct default_job j = {.project_id = project_id};
  rc = db_write(db, default_job, &j, e);
  if (rc == 0) *id = j.id;
  return rc;
}

int track_experiment_resolve(struct db *db, const char *project_id, const char *experiment_id,
                                int64_t *id, struct err *e) {
  if (str_eq(experiment_id, TRACKING_DEFAULT_EXPERIMENT_ID))
    return track_default_experiment(db, project_id, id, e);
  int64_t n;
  if (!track_exp_id_parse(experiment_id, &n))
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "No Experiment with id=%.100s exists",
                   experiment_id ? experiment_id : "");
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -ERR_UNAVAILABLE;
  struct track_exp x;
  int rc = track_exp_load(c, project_id, n, experiment_id, &x, e);
  db_reader_release(db, c);
  if (rc == 0) *id = n;
  return rc;
}

struct create_job {
  const char *project_id, *name, *artifact_location;
  const struct track_kv *tags;
  int ntags;
  int64_t id;
};

static int create_job(struct db_conn *c, void *arg, struct err *e) {
  struct create_job *j = arg;
  bool found;
  int64_t other;
  int rc = name_lookup(c, j->project_id, j->name, &other, &found, e);
  if (rc) return rc;
  if (found)
    return err_set(e, ERR_RESOURCE_ALREADY_EXISTS, "Experiment(name=%.200s) already exists.", j->name);
  if ((rc = exp_insert(c, j->project_id, j->name, j->artifact_location, &j->id, e))) return rc;
  for (int i = 0; i < j->ntags && !rc; i++)
    rc = track_exec(c,
                  "INSERT INTO experiment_tags (experiment_id, key, value) VALUES (?, ?, ?)"
                  " ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
                  e, "iss", j->id, j->tags[i].key, j->tags[i].value ? j->tags[i].value : "");
  return rc;
}

int track_experiment_create(struct db *db, const char *project_id, const char *name,
                               const char *artifact_location, const struct track_kv *tags,
                               int ntags, int64_t *id_out, struct err *e) {
  int rc = check_name(name, e);
  if (rc) return rc;
  if (artifact_location && str_has_prefix(artifact_location, "runs:"))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "Artifact location cannot be a runs:/ URI. Given: '%.200s'", artifact_location);
  if (artifact_location && strlen(artifact_location) > 1000)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "artifact_location is longer than 1000 bytes");
  for (int i = 0; i < ntags; i++)
    if ((rc = check_exp_tag(tags[i].key, tags[i].value, e))) return rc;
  struct create_job j = {.project_id = project_id, .name = name, .artifact_location = artifact_location,
                         .tags = tags, .ntags = ntags};
  rc = db_write(db, create_job, &j, e);
  if (rc == 0) *id_out = j.id;
  return rc;
}

/* ---- reads ------------------------------------------------------------------------------ */

json_t *track_experiment_get(struct db *db, const char *project_id, const char *experiment_id,
                                struct err *e) {
  int64_t id;
  if (track_experiment_resolve(db, project_id, experiment_id, &id, e)) return NULL;
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  json_t *o = track_exp_json(c, id, e);
  db_reader_release(db, c);
  return o;
}

json_t *track_experiment_get_by_name(struct db *db, const char *project_id, const char *name,
                                        struct err *e) {
  /* the Default is made on first use, whichever way it is asked for */
  if (str_eq(name, TRACKING_DEFAULT_EXPERIMENT_NAME)) {
    int64_t id;
    if (track_default_experiment(db, project_id, &id, e)) return NULL;
  }
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  bool found;
  int64_t id = 0;
  json_t *o = NULL;
  if (name_lookup(c, project_id, name, &id, &found, e) == 0) {
    if (found) o = track_exp_json(c, id, e);
    else err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Could not find experiment with name '%.200s'", name);
  }
  db_reader_release(db, c);
  return o;
}

/* ---- changes -------------------------------------------------------------------------------- *
 * Lifecycle of an experiment (and, with it, of its runs):
 *
 *      create ──> active ──delete──> deleted ──restore──> active
 *
 * delete needs an active experiment and restore a deleted one; either way
 * round is RESOURCE_DOES_NOT_EXIST, as MLflow answers. Rename and tag
 * changes need an active experiment. The project's Default cannot be
 * deleted. */
enum exp_op { EXP_RENAME, EXP_DELETE, EXP_RESTORE, EXP_TAG_SET, EXP_TAG_DELETE };

struct exp_job {
  enum exp_op op;
  const char *project_id, *shown;
  int64_t id;
  const char *name, *key, *value;
};

static int exp_job(struct db_conn *c, void *arg, struct err *e) {
  struct exp_job *j = arg;
  struct track_exp x;
  int rc = track_exp_load(c, j->project_id, j->id, j->shown, &x, e);
  if (rc) return rc;
  int64_t now = time_wall_ms();
  switch (j->op) {
  case EXP_RENAME: {
    if (!x.active) return err_set(e, ERR_INVALID_STATE, "Cannot rename a non-active experiment.");
    bool found;
    int64_t other;
    if ((rc = name_lookup(c, j->project_id, j->name, &other, &found, e))) return rc;
    if (found && other != j->id)
      return err_set(e, ERR_RESOURCE_ALREADY_EXISTS, "Experiment(name=%.200s) already exists.", j->name);
    return track_exec(c, "UPDATE experiments SET name = ?, last_update_time = ? WHERE experiment_id = ?", e,
                    "sii", j->name, now, j->id);
  }
  case EXP_DELETE: {
    if (!x.active) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "No Experiment with id=%s exists", j->shown);
    int64_t def;
    bool found;
    if ((rc = default_lookup(c, j->project_id, &def, &found, e))) return rc;
    if (found && def == j->id)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "Cannot delete the default experiment '%s'. This is an internal experiment.",
                     TRACKING_DEFAULT_EXPERIMENT_ID);
    rc = track_exec(c,
                  "UPDATE experiments SET lifecycle_stage = 'deleted', last_update_time = ?"
                  " WHERE experiment_id = ?",
                  e, "ii", now, j->id);
    if (!rc)
      rc = track_exec(c,
                    "UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = ?"
                    " WHERE experiment_id = ? AND lifecycle_stage = 'active'",
                    e, "ii", now, j->id);
    return rc;
  }
  case EXP_RESTORE:
    if (x.active) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "No Experiment with id=%s exists", j->shown);
    rc = track_exec(c,
                  "UPDATE experiments SET lifecycle_stage = 'active', last_update_time = ?"
                  " WHERE experiment_id = ?",
                  e, "ii", now, j->id);
    /* as MLflow: every run of the experiment comes back */
    if (!rc)
      rc = track_exec(c,
                    "UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL"
                    " WHERE experiment_id = ? AND lifecycle_stage = 'deleted'",
                    e, "i", j->id);
    return rc;
  case EXP_TAG_SET:
  case EXP_TAG_DELETE:
    if (!x.active)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "The experiment %lld must be in the 'active' state. Current state is deleted.",
                     (long long)j->id);
    if (j->op == EXP_TAG_SET)
      return track_exec(c,
                      "INSERT INTO experiment_tags (experiment_id, key, value) VALUES (?, ?, ?)"
                      " ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
                      e, "iss", j->id, j->key, j->value ? j->value : "");
    if ((rc = track_exec(c, "DELETE FROM experiment_tags WHERE experiment_id = ? AND key = ?", e, "is", j->id,
                       j->key)))
      return rc;
    if (db_changes(c) == 0)
      return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "No tag with name: %.250s in experiment with id %lld",
                     j->key, (long long)j->id);
    return 0;
  }
  return err_set(e, ERR_INTERNAL, "unknown experiment operation");
}

static int exp_change(struct db *db, struct exp_job *j, const char *experiment_id, struct err *e) {
  j->shown = experiment_id ? experiment_id : "";
  int rc = track_experiment_resolve(db, j->project_id, experiment_id, &j->id, e);
  return rc ? rc : db_write(db, exp_job, j, e);
}

int track_experiment_rename(struct db *db, const char *project_id, const char *experiment_id,
                               const char *new_name, struct err *e) {
  int rc = check_name(new_name, e);
  if (rc) return rc;
  struct exp_job j = {.op = EXP_RENAME, .project_id = project_id, .name = new_name};
  return exp_change(db, &j, experiment_id, e);
}

int track_experiment_delete(struct db *db, const char *project_id, const char *experiment_id,
                               struct err *e) {
  struct exp_job j = {.op = EXP_DELETE, .project_id = project_id};
  int rc = exp_change(db, &j, experiment_id, e);
  if (!rc) track_events_sweep_deleted(db); /* its runs' live streams end */
  return rc;
}

int track_experiment_restore(struct db *db, const char *project_id, const char *experiment_id,
                                struct err *e) {
  struct exp_job j = {.op = EXP_RESTORE, .project_id = project_id};
  return exp_change(db, &j, experiment_id, e);
}

int track_experiment_tag_set(struct db *db, const char *project_id, const char *experiment_id,
                                const char *key, const char *value, struct err *e) {
  int rc = check_exp_tag(key, value, e);
  if (rc) return rc;
  struct exp_job j = {.op = EXP_TAG_SET, .project_id = project_id, .key = key, .value = value};
  return exp_change(db, &j, experiment_id, e);
}

int track_experiment_tag_delete(struct db *db, const char *project_id,
                                   const char *experiment_id, const char *key, struct err *e) {
  struct exp_job j = {.op = EXP_TAG_DELETE, .project_id = project_id, .key = key};
  return exp_change(db, &j, experiment_id, e);
}
