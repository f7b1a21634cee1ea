/* registry/models: registered models of a project — create, rename,
 * describe, tag, alias, delete — their RegisteredModel objects, and the
 * search both models and versions page through. */
#include "registry/internal.h"
#include "track/filter.h"
#include "track/track.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- shared helpers ---------------------------------------------------------------- */

int reg_exec(struct db_conn *c, const char *sql, struct err *e, const char *fmt, ...) {
  struct db_stmt *s = db_prepare(c, sql, e);
  if (!s) return -ERR_INTERNAL;
  va_list ap;
  va_start(ap, fmt);
  for (int i = 0; fmt[i]; i++) {
    switch (fmt[i]) {
    case 's': db_bind_text(s, i + 1, va_arg(ap, const char *)); break;
    case 'i': db_bind_i64(s, i + 1, va_arg(ap, int64_t)); break;
    default: db_bind_null(s, i + 1); break;
    }
  }
  va_end(ap);
  int rc = db_step(s, e);
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

int reg_model_touch(struct db_conn *c, int64_t model_id, int64_t now, struct err *e) {
  return reg_exec(c, "UPDATE registered_models SET last_updated_time = ? WHERE id = ?", e, "ii", now, model_id);
}

int reg_model_load(struct db_conn *c, const char *project_id, const char *name, struct reg_model *out,
                   struct err *e) {
  struct db_stmt *s = db_prepare(c, "SELECT id, name FROM registered_models WHERE project_id = ? AND name = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, project_id);
  db_bind_text(s, 2, name);
  int rc = db_step(s, e);
  if (rc == DB_ROW) {
    out->id = db_col_i64(s, 0);
    str_copy(out->name, sizeof out->name, db_col_text(s, 1));
    rc = 0;
  } else if (rc == DB_DONE) {
    rc = err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Registered Model with name=%.300s not found", name ? name : "");
  }
  db_stmt_done(s);
  return rc;
}

int reg_version_parse(const char *text, int64_t *out, struct err *e) {
  if (!text || str_to_i64(text, out) || *out < 1)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Model version must be an integer, got '%.100s'",
                   text ? text : "");
  return 0;
}

int reg_version_exists(struct db_conn *c, const struct reg_model *m, int64_t version, struct err *e) {
  struct db_stmt *s = db_prepare(c, "SELECT 1 FROM model_versions WHERE model_id = ? AND version = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, m->id);
  db_bind_i64(s, 2, version);
  int rc = db_step(s, e);
  db_stmt_done(s);
  if (rc == DB_ROW) return 0;
  if (rc == DB_DONE)
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Model Version (name=%.300s, version=%lld) not found", m->name,
                   (long long)version);
  return rc;
}

/* ---- validation ------------------------------------------------------------------------ */

static int check_name(const char *name, const char *field, struct err *e) {
  if (!name || !*name)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Missing value for required parameter '%s'.", field);
  size_t n = track_utf8_chars(name);
  if (n > REGISTRY_MAX_NAME_LEN)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "Registered model name '%.*s...' had length %zu, which exceeded length limit of %d",
                   (int)track_utf8_prefix(name, 50), name, n, REGISTRY_MAX_NAME_LEN);
  /* '/' and ':' would make models:/<name>/<version> URIs ambiguous (MLflow 3) */
  for (const char *p = name; *p; p++) {
    if (*p == '/' || *p == ':')
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "Invalid model name ('%.300s') provided. Model name cannot contain the following "
                     "characters: '/', ':'.",
                     name);
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "Invalid model name provided. Model name cannot contain control characters.");
  }
  return 0;
}

int reg_tag_check(const char *key, const char *value, struct err *e) {
  int rc = track_key_check(TRACKING_KEY_TAG, key, e);
  if (rc) return rc;
  size_t n = value ? track_utf8_chars(value) : 0;
  if (n > REGISTRY_MAX_TAG_VALUE_LEN)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Tag value '%.*s...' had length %zu, which exceeded length limit of %d",
                   (int)track_utf8_prefix(value, 50), value, n, REGISTRY_MAX_TAG_VALUE_LEN);
  return 0;
}

int reg_description_check(const char *d, struct err *e) {
  size_t n = d ? track_utf8_chars(d) : 0;
  if (n > REGISTRY_MAX_DESCRIPTION_LEN)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Description had length %zu, which exceeded length limit of %d",
                   n, REGISTRY_MAX_DESCRIPTION_LEN);
  return 0;
}

/* MLflow's alias rule: [\w-]+ (\w includes any non-ASCII letter), at most
 * 255 characters; "latest" and v<digits> are reserved because models:/
 * URIs already give them a meaning. */
static int check_alias(const char *alias, struct err *e) {
  if (!alias || !*alias)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Missing value for required parameter 'alias'.");
  if (track_utf8_chars(alias) > REGISTRY_MAX_ALIAS_LEN)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Alias name exceeds the maximum length of %d characters",
                   REGISTRY_MAX_ALIAS_LEN);
  for (const unsigned char *p = (const unsigned char *)alias; *p; p++) {
    bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-' || *p >= 0x80;
    if (!ok)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "Invalid alias name: '%.300s'. Names may only contain alphanumerics, underscores "
                     "(_), and dashes (-).",
                     alias);
  }
  if (!strcasecmp(alias, "latest"))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "'latest' alias name (case insensitive) is reserved.");
  if ((alias[0] == 'v' || alias[0] == 'V') && alias[1]) {
    const char *p = alias + 1;
    while (*p >= '0' && *p <= '9') p++;
    if (!*p)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "Version alias name '%.300s' is reserved. Please use a different alias name.", alias);
  }
  return 0;
}

/* ---- stages ------------------------------------------------------------------------------ */

static const char *const STAGES[] = {"None", "Staging", "Production", "Archived"};

const char *registry_stage_canonical(const char *s) {
  for (size_t i = 0; s && i < sizeof STAGES / sizeof STAGES[0]; i++)
    if (!strcasecmp(s, STAGES[i])) return STAGES[i];
  return NULL;
}

/* ---- objects ------------------------------------------------------------------------------- */

static void set_str(json_t *o, const char *key, const char *v) {
  if (v && *v) json_object_set_new(o, key, json_string(v));
}

static void set_nonempty(json_t *o, const char *key, json_t *arr) {
  if (json_array_size(arr)) json_object_set_new(o, key, arr);
  else json_decref(arr);
}

/* The highest version in each stage, in STAGES order (only the stages
 * marked in want[]). */
static json_t *latest_of(struct db_conn *c, int64_t model_id, const bool want[4], struct err *e) {
  int64_t v[4] = {0, 0, 0, 0};
  for (int i = 0; i < 4; i++) {
    if (!want[i]) continue;
    struct db_stmt *s =
        db_prepare(c, "SELECT MAX(version) FROM model_versions WHERE model_id = ? AND current_stage = ?", e);
    if (!s) return NULL;
    db_bind_i64(s, 1, model_id);
    db_bind_text(s, 2, STAGES[i]);
    int rc = db_step(s, e);
    if (rc == DB_ROW && !db_col_null(s, 0)) v[i] = db_col_i64(s, 0);
    db_stmt_done(s);
    if (rc < 0) return NULL;
  }
  json_t *arr = json_array();
  for (int i = 0; i < 4 && arr; i++) {
    if (!v[i]) continue;
    json_t *mv = reg_version_json(c, model_id, v[i], e);
    if (!mv) {
      json_decref(arr);
      return NULL;
    }
    json_array_append_new(arr, mv);
  }
  return arr;
}

static json_t *tags_of(struct db_conn *c, const char *sql, int64_t id, int64_t version, struct err *e) {
  struct db_stmt *s = db_prepare(c, sql, e);
  if (!s) return NULL;
  db_bind_i64(s, 1, id);
  if (version) db_bind_i64(s, 2, version);
  json_t *arr = json_array();
  int rc;
  while ((rc = db_step(s, e)) == DB_ROW) {
    json_t *o = json_pack("{s:s}", "key", db_col_text(s, 0));
    set_str(o, "value", db_col_text(s, 1));
    json_array_append_new(arr, o);
  }
  db_stmt_done(s);
  if (rc < 0) {
    json_decref(arr);
    return NULL;
  }
  return arr;
}

json_t *reg_model_json(struct db_conn *c, int64_t model_id, struct err *e) {
  struct db_stmt *s = db_prepare(c,
                                 "SELECT name, creation_time, last_updated_time, user_id, description"
                                 " FROM registered_models WHERE id = ?",
                                 e);
  if (!s) return NULL;
  db_bind_i64(s, 1, model_id);
  int rc = db_step(s, e);
  if (rc != DB_ROW) {
    db_stmt_done(s);
    if (rc == DB_DONE) err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Registered Model not found");
    return NULL;
  }
  json_t *o = json_pack("{s:s, s:I, s:I}", "name", db_col_text(s, 0), "creation_timestamp",
                        (json_int_t)db_col_i64(s, 1), "last_updated_timestamp", (json_int_t)db_col_i64(s, 2));
  set_str(o, "user_id", db_col_text(s, 3));
  set_str(o, "description", db_col_text(s, 4));
  db_stmt_done(s);
  static const bool all[4] = {true, true, true, true};
  json_t *latest = latest_of(c, model_id, all, e);
  json_t *tags = tags_of(c, "SELECT key, value FROM registered_model_tags WHERE model_id = ? ORDER BY key", model_id,
                         0, e);
  json_t *aliases = json_array();
  struct db_stmt *a = db_prepare(c,
                                 "SELECT alias, version FROM registered_model_aliases WHERE model_id = ?"
                                 " ORDER BY alias",
                                 e);
  rc = -1;
  if (a) {
    db_bind_i64(a, 1, model_id);
    while ((rc = db_step(a, e)) == DB_ROW) {
      char v[24];
      snprintf(v, sizeof v, "%lld", (long long)db_col_i64(a, 1));
      json_array_append_new(aliases, json_pack("{s:s, s:s}", "alias", db_col_text(a, 0), "version", v));
    }
    db_stmt_done(a);
  }
  if (!latest || !tags || rc < 0) {
    json_decref(latest);
    json_decref(tags);
    json_decref(aliases);
    json_decref(o);
    return NULL;
  }
  set_nonempty(o, "latest_versions", latest);
  set_nonempty(o, "tags", tags);
  set_nonempty(o, "aliases", aliases);
  return o;
}

json_t *reg_version_json(struct db_conn *c, int64_t model_id, int64_t version, struct err *e) {
  struct db_stmt *s = db_prepare(c,
                                 "SELECT name, creation_time, last_updated_time, user_id, current_stage,"
                                 " description, source, run_id, status, status_message, run_link, model_id_ref"
                                 " FROM model_versions WHERE model_id = ? AND version = ?",
                                 e);
  if (!s) return NULL;
  db_bind_i64(s, 1, model_id);
  db_bind_i64(s, 2, version);
  int rc = db_step(s, e);
  if (rc != DB_ROW) {
    db_stmt_done(s);
    if (rc == DB_DONE) err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Model Version (version=%lld) not found", (long long)version);
    return NULL;
  }
  char v[24];
  snprintf(v, sizeof v, "%lld", (long long)version);
  json_t *o = json_pack("{s:s, s:s, s:I, s:I}", "name", db_col_text(s, 0), "version", v, "creation_timestamp",
                        (json_int_t)db_col_i64(s, 1), "last_updated_timestamp", (json_int_t)db_col_i64(s, 2));
  set_str(o, "user_id", db_col_text(s, 3));
  set_str(o, "current_stage", db_col_text(s, 4));
  set_str(o, "description", db_col_text(s, 5));
  set_str(o, "source", db_col_text(s, 6));
  set_str(o, "run_id", db_col_text(s, 7));
  set_str(o, "status", db_col_text(s, 8));
  set_str(o, "status_message", db_col_text(s, 9));
  set_str(o, "run_link", db_col_text(s, 10));
  set_str(o, "model_id", db_col_text(s, 11));
  db_stmt_done(s);
  json_t *tags = tags_of(c, "SELECT key, value FROM model_version_tags WHERE model_id = ? AND version = ? ORDER BY key",
                         model_id, version, e);
  json_t *aliases = json_array();
  struct db_stmt *a = db_prepare(c,
                                 "SELECT alias FROM registered_model_aliases WHERE model_id = ? AND version = ?"
                                 " ORDER BY alias",
                                 e);
  rc = -1;
  if (a) {
    db_bind_i64(a, 1, model_id);
    db_bind_i64(a, 2, version);
    while ((rc = db_step(a, e)) == DB_ROW) json_array_append_new(aliases, json_string(db_col_text(a, 0)));
    db_stmt_done(a);
  }
  if (!tags || rc < 0) {
    json_decref(tags);
    json_decref(aliases);
    json_decref(o);
    return NULL;
  }
  set_nonempty(o, "tags", tags);
  set_nonempty(o, "aliases", aliases);
  return o;
}

/* ---- reads ----------------------------------------------------------------------------------- */

/* Loads the model by name and builds the object on one reader. */
static json_t *model_read(struct db *db, const char *project_id, const char *name, struct err *e) {
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  struct reg_model m;
  json_t *o = NULL;
  if (reg_model_load(c, project_id, name, &m, e) == 0) o = reg_model_json(c, m.id, e);
  db_reader_release(db, c);
  return o;
}

json_t *registry_model_get(struct db *db, const char *project_id, const char *name, struct err *e) {
  if (check_name(name, "name", e)) return NULL;
  return model_read(db, project_id, name, e);
}

json_t *registry_latest_versions(struct db *db, const char *project_id, const char *name,
                                 const char *const *stages, int nstages, struct err *e) {
  bool want[4] = {nstages == 0, nstages == 0, nstages == 0, nstages == 0};
  for (int i = 0; i < nstages; i++) {
    const char *st = registry_stage_canonical(stages[i]);
    if (!st) {
      err_set(e, ERR_INVALID_PARAMETER_VALUE,
              "Invalid Model Version stage: %.100s. Value must be one of None, Staging, Production, Archived.",
              stages[i] ? stages[i] : "");
      return NULL;
    }
    for (int k = 0; k < 4; k++)
      if (STAGES[k] == st) want[k] = true;
  }
  if (check_name(name, "name", e)) return NULL;
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  struct reg_model m;
  json_t *arr = NULL;
  if (reg_model_load(c, project_id, name, &m, e) == 0) arr = latest_of(c, m.id, want, e);
  db_reader_release(db, c);
  return arr;
}

json_t *registry_version_by_alias(struct db *db, const char *project_id, const char *name,
                                  const char *alias, struct err *e) {
  if (check_name(name, "name", e)) return NULL;
  if (!alias || !*alias) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "Missing value for required parameter 'alias'.");
    return NULL;
  }
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  struct reg_model m;
  json_t *o = NULL;
  if (reg_model_load(c, project_id, name, &m, e) == 0) {
    struct db_stmt *s =
        db_prepare(c, "SELECT version FROM registered_model_aliases WHERE model_id = ? AND alias = ?", e);
    if (s) {
      db_bind_i64(s, 1, m.id);
      db_bind_text(s, 2, alias);
      int rc = db_step(s, e);
      int64_t v = rc == DB_ROW ? db_col_i64(s, 0) : 0;
      db_stmt_done(s);
      if (rc == DB_ROW) o = reg_version_json(c, m.id, v, e);
      else if (rc == DB_DONE)
        err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Registered model alias %.300s not found.", alias);
    }
  }
  db_reader_release(db, c);
  return o;
}

int registry_version_resolve(struct db *db, const char *project_id, const char *name, const char *ref,
                             char out[24], struct err *e) {
  if (check_name(name, "name", e)) return -(int)e->code;
  if (!ref || !*ref) ref = "latest";
  bool number = ref[0] >= '0' && ref[0] <= '9';
  int64_t v = 0;
  if (number && reg_version_parse(ref, &v, e)) return -(int)e->code;
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -(int)e->code;
  struct reg_model m;
  int rc = reg_model_load(c, project_id, name, &m, e);
  if (rc == 0 && number) {
    rc = reg_version_exists(c, &m, v, e);
  } else if (rc == 0) {
    bool latest = strcmp(ref, "latest") == 0;
    struct db_stmt *s = db_prepare(c,
                                   latest ? "SELECT MAX(version) FROM model_versions WHERE model_id = ? AND status = 'READY'"
                                          : "SELECT version FROM registered_model_aliases WHERE model_id = ? AND alias = ?",
                                   e);
    if (!s) rc = -(int)e->code;
    else {
      db_bind_i64(s, 1, m.id);
      if (!latest) db_bind_text(s, 2, ref);
      int st = db_step(s, e);
      if (st == DB_ROW && !db_col_null(s, 0)) v = db_col_i64(s, 0);
      else if (st >= 0)
        rc = latest ? err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Registered model %.300s has no READY version", m.name)
                    : err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Registered model alias %.300s not found.", ref);
      else rc = st;
      db_stmt_done(s);
    }
  }
  db_reader_release(db, c);
  if (rc == 0) snprintf(out, 24, "%lld", (long long)v);
  return rc;
}

/* ---- changes ------------------------------------------------------------------------------------ */

enum model_op { M_CREATE, M_RENAME, M_UPDATE, M_DELETE, M_TAG_SET, M_TAG_DELETE, M_ALIAS_SET, M_ALIAS_DELETE };

struct model_job {
  enum model_op op;
  const char *project_id, *name, *new_name, *description, *user_id, *key, *value, *alias;
  const struct registry_kv *tags;
  int ntags;
  int64_t version;
  enum reg_gov_mode gov;
  int64_t id; /* out: the model acted on */
};

/* The version an alias points at, 0 when unset. */
static int64_t alias_version(struct db_conn *c, int64_t model_id, const char *alias) {
  struct db_stmt *s = db_prepare(c, "SELECT version FROM registered_model_aliases WHERE model_id = ? AND alias = ?", NULL);
  if (!s) return 0;
  db_bind_i64(s, 1, model_id);
  db_bind_text(s, 2, alias);
  int64_t v = db_step(s, NULL) == DB_ROW ? db_col_i64(s, 0) : 0;
  db_stmt_done(s);
  return v;
}

static int alias_event(struct db_conn *c, const char *project_id, const char *event, int64_t model_id,
                       int64_t version, const char *alias, struct err *e) {
  struct registry_webhook_event ev = {.event = event, .model_id = model_id, .version = version, .alias = alias};
  return registry_webhooks_emit(c, project_id, &ev, e);
}

/* The one place an alias is pointed at a version; a protected alias may
 * need an approved request (reg_gov_gate); webhooks hear of it in the same
 * write. */
int reg_alias_set(struct db_conn *c, const char *project_id, const struct reg_model *m, const char *alias,
                  int64_t version, int64_t now, enum reg_gov_mode mode, struct err *e) {
  int rc = reg_version_exists(c, m, version, e);
  if (rc || (rc = reg_gov_gate(c, project_id, m, version, true, alias, mode, e))) return rc;
  rc = reg_exec(c,
                "INSERT INTO registered_model_aliases (model_id, alias, version) VALUES (?, ?, ?)"
                " ON CONFLICT (model_id, alias) DO UPDATE SET version = excluded.version",
                e, "isi", m->id, alias, version);
  if (!rc) rc = reg_model_touch(c, m->id, now, e);
  return rc ? rc : alias_event(c, project_id, REGISTRY_EV_ALIAS_SET, m->id, version, alias, e);
}

static int model_job(struct db_conn *c, void *arg, struct err *e) {
  struct model_job *j = arg;
  int64_t now = time_wall_ms();
  struct reg_model m;
  int rc;
  if (j->op == M_CREATE) {
    rc = reg_model_load(c, j->project_id, j->name, &m, e);
    if (rc == 0)
      return err_set(e, ERR_RESOURCE_ALREADY_EXISTS, "Registered Model (name=%.300s) already exists.", j->name);
    if (rc != -ERR_RESOURCE_DOES_NOT_EXIST) return rc;
    struct db_stmt *s = db_prepare(c, "SELECT COALESCE(MAX(id), 0) + 1 FROM registered_models", e);
    if (!s) return -ERR_INTERNAL;
    rc = db_step(s, e);
    j->id = rc == DB_ROW ? db_col_i64(s, 0) : 0;
    db_stmt_done(s);
    if (rc != DB_ROW) return rc < 0 ? rc : err_set(e, ERR_INTERNAL, "no model id");
    rc = reg_exec(c,
                  "INSERT INTO registered_models (id, project_id, name, description, user_id, creation_time,"
                  " last_updated_time) VALUES (?, ?, ?, ?, ?, ?, ?)",
                  e, "issssii", j->id, j->project_id, j->name, j->description && *j->description ? j->description : NULL,
                  j->user_id && *j->user_id ? j->user_id : NULL, now, now);
    for (int i = 0; i < j->ntags && !rc; i++)
      rc = reg_exec(c,
                    "INSERT INTO registered_model_tags (model_id, key, value) VALUES (?, ?, ?)"
                    " ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
                    e, "iss", j->id, j->tags[i].key, j->tags[i].value ? j->tags[i].value : "");
    return rc;
  }
  if ((rc = reg_model_load(c, j->project_id, j->name, &m, e))) return rc;
  j->id = m.id;
  switch (j->op) {
  case M_RENAME: {
    struct reg_model other;
    rc = reg_model_load(c, j->project_id, j->new_name, &other, e);
    if (rc == 0 && other.id != m.id)
      return err_set(e, ERR_RESOURCE_ALREADY_EXISTS, "Registered Model (name=%.300s) already exists.", j->new_name);
    if (rc && rc != -ERR_RESOURCE_DOES_NOT_EXIST) return rc;
    rc = reg_exec(c, "UPDATE registered_models SET name = ?, last_updated_time = ? WHERE id = ?", e, "sii",
                  j->new_name, now, m.id);
    if (!rc) rc = reg_exec(c, "UPDATE model_versions SET name = ? WHERE model_id = ?", e, "si", j->new_name, m.id);
    return rc;
  }
  case M_UPDATE:
    return reg_exec(c, "UPDATE registered_models SET description = ?, last_updated_time = ? WHERE id = ?", e, "sii",
                    j->description && *j->description ? j->description : NULL, now, m.id);
  case M_DELETE:
    rc = reg_files_drop(c, m.id, -1, e); /* uploaded files' blob references */
    if (!rc) rc = reg_exec(c, "DELETE FROM model_version_tags WHERE model_id = ?", e, "i", m.id);
    if (!rc) rc = reg_exec(c, "DELETE FROM model_versions WHERE model_id = ?", e, "i", m.id);
    if (!rc) rc = reg_exec(c, "DELETE FROM registered_model_aliases WHERE model_id = ?", e, "i", m.id);
    if (!rc) rc = reg_exec(c, "DELETE FROM registered_model_tags WHERE model_id = ?", e, "i", m.id);
    if (!rc) rc = reg_exec(c, "DELETE FROM registered_models WHERE id = ?", e, "i", m.id);
    return rc;
  case M_TAG_SET:
    return reg_exec(c,
                    "INSERT INTO registered_model_tags (model_id, key, value) VALUES (?, ?, ?)"
                    " ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
                    e, "iss", m.id, j->key, j->value ? j->value : "");
  case M_TAG_DELETE:
    /* a tag that is not set is a no-op, as MLflow's SQL store */
    return reg_exec(c, "DELETE FROM registered_model_tags WHERE model_id = ? AND key = ?", e, "is", m.id, j->key);
  case M_ALIAS_SET: return reg_alias_set(c, j->project_id, &m, j->alias, j->version, now, j->gov, e);
  case M_ALIAS_DELETE: {
    int64_t was = alias_version(c, m.id, j->alias);
    /* deleting an alias that is not set is a no-op, as MLflow */
    rc = reg_exec(c, "DELETE FROM registered_model_aliases WHERE model_id = ? AND alias = ?", e, "is", m.id, j->alias);
    if (!rc && db_changes(c) > 0) {
      rc = reg_model_touch(c, m.id, now, e);
      if (!rc) rc = alias_event(c, j->project_id, REGISTRY_EV_ALIAS_DELETED, m.id, was, j->alias, e);
    }
    return rc;
  }
  default: break;
  }
  return err_set(e, ERR_INTERNAL, "unknown registered model operation");
}

/* Runs the job, then reads the model back (by id: a rename changed its name). */
static json_t *model_change(struct db *db, struct model_job *j, bool want_object, struct err *e) {
  if (db_write(db, model_job, j, e)) return NULL;
  if (!want_object) return json_true();
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  json_t *o = reg_model_json(c, j->id, e);
  db_reader_release(db, c);
  return o;
}

static int done(json_t *o) {
  if (!o) return -1;
  json_decref(o);
  return 0;
}

json_t *registry_model_create(struct db *db, const char *project_id, const char *name,
                              const char *description, const struct registry_kv *tags, int ntags,
                              const char *user_id, struct err *e) {
  if (check_name(name, "name", e) || reg_description_check(description, e)) return NULL;
  if (ntags > REGISTRY_MAX_TAGS) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "A registered model takes at most %d tags in one request", REGISTRY_MAX_TAGS);
    return NULL;
  }
  for (int i = 0; i < ntags; i++)
    if (reg_tag_check(tags[i].key, tags[i].value, e)) return NULL;
  struct model_job j = {.op = M_CREATE, .project_id = project_id, .name = name, .description = description,
                        .user_id = user_id, .tags = tags, .ntags = ntags};
  return model_change(db, &j, true, e);
}

json_t *registry_model_rename(struct db *db, const char *project_id, const char *name,
                              const char *new_name, struct err *e) {
  if (check_name(name, "name", e) || check_name(new_name, "new_name", e)) return NULL;
  struct model_job j = {.op = M_RENAME, .project_id = project_id, .name = name, .new_name = new_name};
  return model_change(db, &j, true, e);
}

json_t *registry_model_update(struct db *db, const char *project_id, const char *name,
                              const char *description, struct err *e) {
  if (check_name(name, "name", e) || reg_description_check(description, e)) return NULL;
  if (!description) return registry_model_get(db, project_id, name, e);
  struct model_job j = {.op = M_UPDATE, .project_id = project_id, .name = name, .description = description};
  return model_change(db, &j, true, e);
}

int registry_model_delete(struct db *db, const char *project_id, const char *name, struct err *e) {
  if (check_name(name, "name", e)) return -ERR_INVALID_PARAMETER_VALUE;
  struct model_job j = {.op = M_DELETE, .project_id = project_id, .name = name};
  return done(model_change(db, &j, false, e)) ? -(int)e->code : 0;
}

int registry_model_tag_set(struct db *db, const char *project_id, const char *name, const char *key,
                           const char *value, struct err *e) {
  int rc = check_name(name, "name", e);
  if (rc || (rc = reg_tag_check(key, value, e))) return rc;
  struct model_job j = {.op = M_TAG_SET, .project_id = project_id, .name = name, .key = key, .value = value};
  return done(model_change(db, &j, false, e)) ? -(int)e->code : 0;
}

int registry_model_tag_delete(struct db *db, const char *project_id, const char *name,
                              const char *key, struct err *e) {
  int rc = check_name(name, "name", e);
  if (rc || (rc = track_key_check(TRACKING_KEY_TAG, key, e))) return rc;
  struct model_job j = {.op = M_TAG_DELETE, .project_id = project_id, .name = name, .key = key};
  return done(model_change(db, &j, false, e)) ? -(int)e->code : 0;
}

int registry_alias_set(struct db *db, const char *project_id, const char *name, const char *alias,
                       const char *version, struct err *e) {
  return registry_alias_set_as(db, project_id, name, alias, version, NULL, e);
}

int reg_alias_check(const char *alias, struct err *e) { return check_alias(alias, e); }

int registry_alias_set_as(struct db *db, const char *project_id, const char *name, const char *alias,
                          const char *version, const struct registry_actor *who, struct err *e) {
  int64_t v;
  int rc = check_name(name, "name", e);
  if (rc || (rc = check_alias(alias, e)) || (rc = reg_version_parse(version, &v, e))) return rc;
  struct model_job j = {.op = M_ALIAS_SET, .project_id = project_id, .name = name, .alias = alias, .version = v,
                        .gov = who && who->project_admin ? REG_GOV_ADMIN : REG_GOV_CALLER};
  return done(model_change(db, &j, false, e)) ? -(int)e->code : 0;
}

int registry_alias_delete(struct db *db, const char *project_id, const char *name,
                          const char *alias, struct err *e) {
  int rc = check_name(name, "name", e);
  if (rc || (rc = check_alias(alias, e))) return rc;
  struct model_job j = {.op = M_ALIAS_DELETE, .project_id = project_id, .name = name, .alias = alias};
  return done(model_change(db, &j, false, e)) ? -(int)e->code : 0;
}

/* ---- search -------------------------------------------------------------------------------------- */

json_t *reg_search(struct db *db, const char *project_id, const struct registry_search *s,
                   const struct reg_search_plan *p, char next[REGISTRY_PAGE_TOKEN_MAX], struct err *e) {
  next[0] = 0;
  int64_t max = s->max_results ? s->max_results : p->dflt, offset = 0, snap = 0;
  if (max < 1) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE,
            "Invalid value for request parameter max_results. It must be a positive integer, but got value %lld",
            (long long)max);
    return NULL;
  }
  if (max > p->cap) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE,
            "Invalid value for request parameter max_results. It must be at most %lld, but got value %lld",
            (long long)p->cap, (long long)max);
    return NULL;
  }
  if (s->page_token && *s->page_token && track_page_token_decode_snap(s->page_token, &offset, &snap, e)) return NULL;
  struct track_flt *f = NULL;
  if (track_flt_parse(s->filter, (enum track_flt_entity)p->ent, &f, e)) return NULL;
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) {
    track_flt_free(f);
    return NULL;
  }
  json_t *out = NULL;
  struct buf sql;
  struct track_flt_binds binds;
  buf_init(&sql);
  track_flt_binds_init(&binds);
  if (snap == 0) {
    struct db_stmt *st = db_prepare(c, p->snap_sql, e);
    int rc = st ? db_step(st, e) : -1;
    if (rc == DB_ROW) snap = db_col_i64(st, 0);
    if (st) db_stmt_done(st);
    if (rc != DB_ROW) goto fin;
    if (snap == 0) snap = 1; /* nothing yet: a bound that still says "snapshot taken" */
  }
  buf_puts(&sql, p->select);
  buf_puts(&sql, " AND ");
  if (track_flt_bind_text(&binds, project_id, strlen(project_id), e) || track_flt_bind_i64(&binds, snap, e) ||
      track_flt_to_sql(f, &sql, &binds, e))
    goto fin;
  buf_puts(&sql, " ORDER BY ");
  if (track_flt_order_by(s->order_by, s->norder_by, (enum track_flt_entity)p->ent, &sql, &binds, e)) goto fin;
  buf_puts(&sql, " LIMIT ? OFFSET ?");
  if (track_flt_bind_i64(&binds, max + 1, e) || track_flt_bind_i64(&binds, offset, e)) goto fin;
  if (!sql.data) {
    err_set(e, ERR_NO_MEMORY, "out of memory");
    goto fin;
  }
  struct db_stmt *st = db_prepare(c, sql.data, e);
  if (!st) goto fin;
  if (track_flt_binds_apply(&binds, st, 1) < 0) {
    db_stmt_done(st);
    err_set(e, ERR_INTERNAL, "search: binding failed");
    goto fin;
  }
  /* ids first, objects after: building an object runs other statements */
  int64_t (*keys)[2] = calloc((size_t)max + 1, sizeof *keys);
  if (!keys) {
    db_stmt_done(st);
    err_set(e, ERR_NO_MEMORY, "out of memory");
    goto fin;
  }
  int64_t n = 0;
  int rc;
  while ((rc = db_step(st, e)) == DB_ROW && n <= max) {
    keys[n][0] = db_col_i64(st, 0);
    keys[n][1] = db_col_i64(st, 1);
    n++;
  }
  db_stmt_done(st);
  if (rc < 0) {
    free(keys);
    goto fin;
  }
  out = json_array();
  for (int64_t i = 0; i < n && i < max; i++) {
    json_t *o = p->ent == TRACK_FLT_REGISTERED_MODELS ? reg_model_json(c, keys[i][0], e)
                                                      : reg_version_json(c, keys[i][0], keys[i][1], e);
    if (!o) {
      json_decref(out);
      out = NULL;
      break;
    }
    json_array_append_new(out, o);
  }
  free(keys);
  if (out && n > max) track_page_token_encode_snap(offset + max, snap, next);
fin:
  db_reader_release(db, c);
  buf_fini(&sql);
  track_flt_binds_fini(&binds);
  track_flt_free(f);
  return out;
}

json_t *registry_model_search(struct db *db, const char *project_id, const struct registry_search *s,
                              char next[REGISTRY_PAGE_TOKEN_MAX], struct err *e) {
  static const struct reg_search_plan plan = {
      .ent = TRACK_FLT_REGISTERED_MODELS,
      .select = "SELECT m.id, 0 FROM registered_models m WHERE m.project_id = ? AND m.id <= ?",
      .snap_sql = "SELECT COALESCE(MAX(id), 0) FROM registered_models",
      .dflt = REGISTRY_MODELS_DEFAULT_RESULTS,
      .cap = REGISTRY_MODELS_MAX_RESULTS,
  };
  return reg_search(db, project_id, s, &plan, next, e);
}
