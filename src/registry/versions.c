/* registry/versions: model versions of a registered model — numbering,
 * where a version's files come from (its source), its status and stage
 * state machines, tags, and version search. */
#include "registry/internal.h"
#include "track/filter.h"
#include "track/track.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *registry_status_name(enum registry_version_status s) {
  switch (s) {
  case REGISTRY_PENDING_REGISTRATION: return "PENDING_REGISTRATION";
  case REGISTRY_FAILED_REGISTRATION: return "FAILED_REGISTRATION";
  case REGISTRY_READY: return "READY";
  }
  return "UNKNOWN";
}

/* The project a model belongs to (for the webhook hook in status_set,
 * which is called with ids only); "" when unknown. */
static const char *project_of_model(struct db_conn *c, int64_t model_id, char pid[64]) {
  pid[0] = 0;
  struct db_stmt *s = db_prepare(c, "SELECT project_id FROM registered_models WHERE id = ?", NULL);
  if (!s) return pid;
  db_bind_i64(s, 1, model_id);
  if (db_step(s, NULL) == DB_ROW) str_copy(pid, 64, db_col_text(s, 0));
  db_stmt_done(s);
  return pid;
}

/* ---- the status state machine ----------------------------------------------------------------
 *
 *                  create
 *                    │
 *                    v
 *        PENDING_REGISTRATION ──files in place──> READY
 *                    │
 *                    └──────────upload failed───> FAILED_REGISTRATION
 *
 * READY and FAILED_REGISTRATION are final. A version whose source already
 * holds its files (a run's artifacts, a logged model, remote storage) passes
 * through PENDING_REGISTRATION to READY inside the write that creates it;
 * an uploaded file's version (uploads.c) stays pending while intake scans
 * the bytes, then moves to READY (stored) or FAILED_REGISTRATION (refused,
 * with the reason as status_message). reg_status_set is the only place a
 * status changes; any other move is refused with INVALID_STATE. */
int reg_status_set(struct db_conn *c, int64_t model_id, int64_t version, enum registry_version_status to,
                   const char *message, struct err *e) {
  struct db_stmt *s = db_prepare(c, "SELECT status FROM model_versions WHERE model_id = ? AND version = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, model_id);
  db_bind_i64(s, 2, version);
  int rc = db_step(s, e);
  char from[32] = "";
  if (rc == DB_ROW) str_copy(from, sizeof from, db_col_text(s, 0));
  db_stmt_done(s);
  if (rc == DB_DONE) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Model Version not found");
  if (rc < 0) return rc;
  bool legal = str_eq(from, registry_status_name(REGISTRY_PENDING_REGISTRATION)) &&
               (to == REGISTRY_READY || to == REGISTRY_FAILED_REGISTRATION);
  if (!legal)
    return err_set(e, ERR_INVALID_STATE, "Model version status cannot change from %s to %s", from,
                   registry_status_name(to));
  int rc2 = reg_exec(c, "UPDATE model_versions SET status = ?, status_message = ? WHERE model_id = ? AND version = ?", e,
                     "ssii", registry_status_name(to), message && *message ? message : NULL, model_id, version);
  if (rc2 || to != REGISTRY_READY) return rc2;
  struct registry_webhook_event ev = {.event = REGISTRY_EV_VERSION_READY, .model_id = model_id, .version = version};
  char pid[64];
  return registry_webhooks_emit(c, project_of_model(c, model_id, pid), &ev, e);
}

/* ---- the stage state machine ------------------------------------------------------------------
 *
 *          ┌──────────────────────────────────────────┐
 *          v                                          │
 *        None <──> Staging <──> Production ──> Archived
 *          ^          ^  \________________________^   │
 *          └──────────┴────────────────────────────────┘
 *
 * Any stage may move to any other (MLflow allows every move, the same stage
 * included; it only bumps last_updated_timestamp). With archive_existing the
 * target must be Staging or Production, and the model's other versions in
 * that stage move to Archived in the same write. reg_stage_set is the only
 * place a stage changes; moving to Production may need an approved request
 * (reg_gov_gate). */
static int emit_archived(struct db_conn *c, const char *project_id, const struct reg_model *m, int64_t version,
                         const char *stage, struct err *e) {
  struct db_stmt *s = db_prepare(c,
                                 "SELECT version FROM model_versions WHERE model_id = ? AND current_stage = ?"
                                 " AND version <> ? ORDER BY version",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, m->id);
  db_bind_text(s, 2, stage);
  db_bind_i64(s, 3, version);
  int rc;
  while ((rc = db_step(s, e)) == DB_ROW) {
    struct registry_webhook_event ev = {.event = REGISTRY_EV_STAGE, .model_id = m->id, .version = db_col_i64(s, 0),
                                        .from_stage = stage, .to_stage = "Archived"};
    if ((rc = registry_webhooks_emit(c, project_id, &ev, e))) break;
  }
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

int reg_stage_set(struct db_conn *c, const char *project_id, const struct reg_model *m, int64_t version,
                  const char *stage, bool archive_existing, int64_t now, enum reg_gov_mode mode, struct err *e) {
  int rc = reg_version_exists(c, m, version, e);
  if (rc) return rc;
  /* the project's approval rules (governance.c) */
  if ((rc = reg_gov_gate(c, project_id, m, version, false, stage, mode, e))) return rc;
  char from[16] = "";
  struct db_stmt *q = db_prepare(c, "SELECT current_stage FROM model_versions WHERE model_id = ? AND version = ?", e);
  if (!q) return -ERR_INTERNAL;
  db_bind_i64(q, 1, m->id);
  db_bind_i64(q, 2, version);
  if (db_step(q, e) == DB_ROW) str_copy(from, sizeof from, db_col_text(q, 0));
  db_stmt_done(q);
  if (archive_existing && !str_eq(stage, "Staging") && !str_eq(stage, "Production"))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "Model version transition cannot archive existing model versions because '%s' is not an "
                   "Active stage. Valid stages are Staging, Production",
                   stage);
  /* the versions archive_existing moves get their own events */
  if (archive_existing && (rc = emit_archived(c, project_id, m, version, stage, e))) return rc;
  if (archive_existing &&
      (rc = reg_exec(c,
                     "UPDATE model_versions SET current_stage = 'Archived', last_updated_time = ?"
                     " WHERE model_id = ? AND current_stage = ? AND version <> ?",
                     e, "iisi", now, m->id, stage, version)))
    return rc;
  rc = reg_exec(c,
                "UPDATE model_versions SET current_stage = ?, last_updated_time = ? WHERE model_id = ? AND version = ?",
                e, "siii", stage, now, m->id, version);
  if (!rc) rc = reg_model_touch(c, m->id, now, e);
  struct registry_webhook_event ev = {.event = REGISTRY_EV_STAGE, .model_id = m->id, .version = version,
                                      .from_stage = from, .to_stage = stage};
  return rc ? rc : registry_webhooks_emit(c, project_id, &ev, e);
}

/* ---- sources ---------------------------------------------------------------------------------- */

static bool has_dotdot(const char *p) {
  for (const char *s = p; (s = strstr(s, "..")); s += 2) {
    bool start = s == p || s[-1] == '/';
    bool end = s[2] == 0 || s[2] == '/';
    if (start && end) return true;
  }
  return false;
}

/* A URI scheme of two or more characters ("C:" is a Windows drive). */
static size_t scheme_len(const char *s) {
  size_t n = 0;
  if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) return 0;
  while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '+' ||
         s[n] == '-' || s[n] == '.')
    n++;
  return s[n] == ':' && n >= 2 ? n : 0;
}

/* Checks the source belongs to this project and says where its files are
 * (*where, malloc'd). */
static int source_resolve(struct db *db, const char *project_id, const char *source, char **where, struct err *e) {
  *where = NULL;
  if (!source || !*source)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Missing value for required parameter 'source'.");
  if (strlen(source) > REGISTRY_MAX_SOURCE_LEN)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Model version source is longer than %d bytes",
                   REGISTRY_MAX_SOURCE_LEN);
  for (const char *p = source; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid model version source: control characters or '\\'");
  if (has_dotdot(source))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "Invalid model version source: '%.300s'. A source cannot contain '..' path segments.", source);
  if (str_has_prefix(source, "runs:/")) {
    /* runs:/<run_id>[/<path>] */
    const char *id = source + 6;
    while (*id == '/') id++;
    size_t n = strcspn(id, "/");
    char run_id[TRACKING_RUN_ID_LEN + 1];
    if (n == 0 || n > TRACKING_RUN_ID_LEN)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid model version source: '%.300s'. Expected runs:/<run_id>/<path>",
                     source);
    memcpy(run_id, id, n);
    run_id[n] = 0;
    json_t *run = track_run_get(db, project_id, run_id, e);
    if (!run) return -(int)e->code;
    const char *root = json_string_value(json_object_get(json_object_get(run, "info"), "artifact_uri"));
    struct buf b;
    buf_init(&b);
    buf_puts(&b, root ? root : "");
    if (id[n] && id[n + 1]) buf_printf(&b, "/%s", id + n + 1);
    json_decref(run);
    *where = buf_steal(&b);
    return *where ? 0 : err_set(e, ERR_NO_MEMORY, "out of memory");
  }
  if (str_has_prefix(source, "mlflow-artifacts:/")) {
    const char *path = source + strlen("mlflow-artifacts:/");
    int rc = track_artifact_target_check(db, project_id, path, e);
    if (rc) return rc;
    *where = strdup(source);
    return *where ? 0 : err_set(e, ERR_NO_MEMORY, "out of memory");
  }
  if (!strncasecmp(source, REGISTRY_UPLOAD_SCHEME, strlen(REGISTRY_UPLOAD_SCHEME)))
    /* the scheme names bytes of the blob store: only an upload may claim them,
     * or a caller could register another project's file by its hash */
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "Invalid model version source: '%.300s'. %s sources are made by uploads "
                   "(POST /api/v1/models/upload), not given.",
                   source, REGISTRY_UPLOAD_SCHEME);
  if (str_has_prefix(source, "models:/")) {
    /* MLflow 3: models:/<logged model id> */
    const char *id = source + 8;
    if (!str_has_prefix(id, "m-") || strchr(id, '/'))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "Invalid model version source: '%.300s'. Expected models:/<logged model id>", source);
    json_t *lm = track_logged_model_get(db, project_id, id, e);
    if (!lm) return -(int)e->code;
    const char *loc = json_string_value(json_object_get(json_object_get(lm, "info"), "artifact_uri"));
    *where = strdup(loc && *loc ? loc : source);
    json_decref(lm);
    return *where ? 0 : err_set(e, ERR_NO_MEMORY, "out of memory");
  }
  size_t sl = scheme_len(source);
  if (sl && !(sl == 4 && !strncasecmp(source, "file", 4))) {
    *where = strdup(source); /* remote storage Kiln does not own: taken as given */
    return *where ? 0 : err_set(e, ERR_NO_MEMORY, "out of memory");
  }
  /* a path on the server's own disk would let a caller register (and later
   * serve) any file the server can read */
  return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                 "Invalid model version source: '%.300s'. To use a local path as a model version source, the "
                 "run_id request parameter has to be specified and the local path has to be contained within "
                 "the artifact directory of the run specified by the run_id.",
                 source);
}

/* ---- changes ---------------------------------------------------------------------------------- */

enum version_op { V_CREATE, V_UPDATE, V_DELETE, V_TAG_SET, V_TAG_DELETE, V_STAGE };

struct version_job {
  enum version_op op;
  const char *project_id, *name;
  const struct registry_version_new *in;
  const char *where;
  int64_t version; /* in, or out for V_CREATE */
  const char *description, *key, *value, *stage;
  bool archive_existing;
  enum reg_gov_mode gov;
  int64_t model_id; /* out */
};

static int version_job(struct db_conn *c, void *arg, struct err *e) {
  struct version_job *j = arg;
  int64_t now = time_wall_ms();
  struct reg_model m;
  int rc = reg_model_load(c, j->project_id, j->name, &m, e);
  if (rc) return rc;
  j->model_id = m.id;
  switch (j->op) {
  case V_CREATE: {
    const struct registry_version_new *in = j->in;
    struct db_stmt *s = db_prepare(c,
                                   "SELECT r.last_version + 1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM model_versions)"
                                   " FROM registered_models r WHERE r.id = ?",
                                   e);
    if (!s) return -ERR_INTERNAL;
    db_bind_i64(s, 1, m.id);
    rc = db_step(s, e);
    int64_t v = rc == DB_ROW ? db_col_i64(s, 0) : 0, seq = rc == DB_ROW ? db_col_i64(s, 1) : 0;
    db_stmt_done(s);
    if (rc != DB_ROW) return rc < 0 ? rc : err_set(e, ERR_INTERNAL, "no version number");
    j->version = v;
    rc = reg_exec(c,
                  "INSERT INTO model_versions (model_id, version, seq, project_id, name, creation_time,"
                  " last_updated_time, user_id, current_stage, description, source, storage_location, run_id,"
                  " run_link, model_id_ref, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'None', ?, ?, ?, ?, ?, ?, ?)",
                  e, "iiissiissssssss", m.id, v, seq, j->project_id, m.name, now, now,
                  in->user_id && *in->user_id ? in->user_id : NULL,
                  in->description && *in->description ? in->description : NULL, in->source, j->where,
                  in->run_id && *in->run_id ? in->run_id : NULL, in->run_link && *in->run_link ? in->run_link : NULL,
                  in->model_id && *in->model_id ? in->model_id : NULL,
                  registry_status_name(REGISTRY_PENDING_REGISTRATION));
    for (int i = 0; i < in->ntags && !rc; i++)
      rc = reg_exec(c,
                    "INSERT INTO model_version_tags (model_id, version, key, value) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (model_id, version, key) DO UPDATE SET value = excluded.value",
                    e, "iiss", m.id, v, in->tags[i].key, in->tags[i].value ? in->tags[i].value : "");
    if (!rc)
      rc = reg_exec(c, "UPDATE registered_models SET last_version = ?, last_updated_time = ? WHERE id = ?", e, "iii", v,
                    now, m.id);
    struct registry_webhook_event ev = {.event = REGISTRY_EV_VERSION_CREATED, .model_id = m.id, .version = v};
    if (!rc) rc = registry_webhooks_emit(c, j->project_id, &ev, e);
    /* the files are already where source says */
    if (!rc && !in->pending_upload) rc = reg_status_set(c, m.id, v, REGISTRY_READY, NULL, e);
    return rc;
  }
  case V_UPDATE:
    if ((rc = reg_version_exists(c, &m, j->version, e))) return rc;
    return reg_exec(c,
                    "UPDATE model_versions SET description = ?, last_updated_time = ? WHERE model_id = ? AND version = ?",
                    e, "siii", j->description && *j->description ? j->description : NULL, now, m.id, j->version);
  case V_DELETE:
    if ((rc = reg_version_exists(c, &m, j->version, e))) return rc;
    rc = reg_exec(c, "DELETE FROM model_version_tags WHERE model_id = ? AND version = ?", e, "ii", m.id, j->version);
    if (!rc)
      rc = reg_exec(c, "DELETE FROM registered_model_aliases WHERE model_id = ? AND version = ?", e, "ii", m.id,
                    j->version);
    if (!rc) rc = reg_exec(c, "DELETE FROM model_versions WHERE model_id = ? AND version = ?", e, "ii", m.id, j->version);
    if (!rc) rc = reg_files_drop(c, m.id, j->version, e); /* an uploaded file's blob reference */
    return rc ? rc : reg_model_touch(c, m.id, now, e);
  case V_TAG_SET:
    if ((rc = reg_version_exists(c, &m, j->version, e))) return rc;
    return reg_exec(c,
                    "INSERT INTO model_version_tags (model_id, version, key, value) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (model_id, version, key) DO UPDATE SET value = excluded.value",
                    e, "iiss", m.id, j->version, j->key, j->value ? j->value : "");
  case V_TAG_DELETE:
    if ((rc = reg_version_exists(c, &m, j->version, e))) return rc;
    /* a tag that is not set is a no-op, as MLflow's SQL store */
    return reg_exec(c, "DELETE FROM model_version_tags WHERE model_id = ? AND version = ? AND key = ?", e, "iis",
                    m.id, j->version, j->key);
  case V_STAGE: return reg_stage_set(c, j->project_id, &m, j->version, j->stage, j->archive_existing, now, j->gov, e);
  }
  return err_set(e, ERR_INTERNAL, "unknown model version operation");
}

static int check_model_name(const char *name, struct err *e) {
  if (!name || !*name) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Missing value for required parameter 'name'.");
  if (strlen(name) > 4 * REGISTRY_MAX_NAME_LEN)
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Registered Model with name=%.300s... not found", name);
  return 0;
}

/* Runs the job; with want, reads the version back. */
static json_t *version_change(struct db *db, struct version_job *j, bool want, struct err *e) {
  if (check_model_name(j->name, e) || db_write(db, version_job, j, e)) return NULL;
  if (!want) return json_true();
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  json_t *o = reg_version_json(c, j->model_id, j->version, e);
  db_reader_release(db, c);
  return o;
}

static int status_of(json_t *o, struct err *e) {
  if (!o) return -(int)e->code;
  json_decref(o);
  return 0;
}

json_t *registry_version_create(struct db *db, const char *project_id,
                                const struct registry_version_new *in, struct err *e) {
  if (check_model_name(in->name, e) || reg_description_check(in->description, e)) return NULL;
  if (in->ntags > REGISTRY_MAX_TAGS) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "A model version takes at most %d tags in one request", REGISTRY_MAX_TAGS);
    return NULL;
  }
  for (int i = 0; i < in->ntags; i++)
    if (reg_tag_check(in->tags[i].key, in->tags[i].value, e)) return NULL;
  if (in->run_link && strlen(in->run_link) > REGISTRY_MAX_RUN_LINK_LEN) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "run_link is longer than %d bytes", REGISTRY_MAX_RUN_LINK_LEN);
    return NULL;
  }
  if (in->model_id && strlen(in->model_id) > REGISTRY_MAX_MODEL_ID_LEN) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "model_id is longer than %d bytes", REGISTRY_MAX_MODEL_ID_LEN);
    return NULL;
  }
  /* the model must exist before sources are looked at: a missing model is
   * the answer MLflow gives first */
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  struct reg_model m;
  int rc = reg_model_load(c, project_id, in->name, &m, e);
  db_reader_release(db, c);
  if (rc) return NULL;
  if (in->run_id && *in->run_id) {
    json_t *run = track_run_get(db, project_id, in->run_id, e);
    if (!run) return NULL;
    json_decref(run);
  }
  if (in->model_id && *in->model_id) {
    json_t *lm = track_logged_model_get(db, project_id, in->model_id, e);
    if (!lm) return NULL;
    json_decref(lm);
  }
  char *where;
  if (in->pending_upload) {
    /* uploads.c made the source from the stored file's hash */
    if (!in->source || !str_has_prefix(in->source, REGISTRY_UPLOAD_SCHEME)) {
      err_set(e, ERR_INTERNAL, "an upload's version needs an upload source");
      return NULL;
    }
    where = strdup(in->source);
    if (!where) {
      err_set(e, ERR_NO_MEMORY, "out of memory");
      return NULL;
    }
  } else if (source_resolve(db, project_id, in->source, &where, e)) {
    return NULL;
  }
  struct version_job j = {.op = V_CREATE, .project_id = project_id, .name = in->name, .in = in, .where = where};
  json_t *o = version_change(db, &j, true, e);
  free(where);
  return o;
}

json_t *registry_version_get(struct db *db, const char *project_id, const char *name,
                             const char *version, struct err *e) {
  int64_t v;
  if (check_model_name(name, e) || reg_version_parse(version, &v, e)) return NULL;
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  struct reg_model m;
  json_t *o = NULL;
  if (reg_model_load(c, project_id, name, &m, e) == 0 && reg_version_exists(c, &m, v, e) == 0)
    o = reg_version_json(c, m.id, v, e);
  db_reader_release(db, c);
  return o;
}

json_t *registry_version_update(struct db *db, const char *project_id, const char *name,
                                const char *version, const char *description, struct err *e) {
  struct version_job j = {.op = V_UPDATE, .project_id = project_id, .name = name, .description = description};
  if (reg_version_parse(version, &j.version, e) || reg_description_check(description, e)) return NULL;
  if (!description) return registry_version_get(db, project_id, name, version, e);
  return version_change(db, &j, true, e);
}

int registry_version_delete(struct db *db, const char *project_id, const char *name,
                            const char *version, struct err *e) {
  struct version_job j = {.op = V_DELETE, .project_id = project_id, .name = name};
  int rc = reg_version_parse(version, &j.version, e);
  return rc ? rc : status_of(version_change(db, &j, false, e), e);
}

int registry_version_tag_set(struct db *db, const char *project_id, const char *name,
                             const char *version, const char *key, const char *value, struct err *e) {
  struct version_job j = {.op = V_TAG_SET, .project_id = project_id, .name = name, .key = key, .value = value};
  int rc = reg_version_parse(version, &j.version, e);
  if (rc || (rc = reg_tag_check(key, value, e))) return rc;
  return status_of(version_change(db, &j, false, e), e);
}

int registry_version_tag_delete(struct db *db, const char *project_id, const char *name,
                                const char *version, const char *key, struct err *e) {
  struct version_job j = {.op = V_TAG_DELETE, .project_id = project_id, .name = name, .key = key};
  int rc = reg_version_parse(version, &j.version, e);
  if (rc || (rc = track_key_check(TRACKING_KEY_TAG, key, e))) return rc;
  return status_of(version_change(db, &j, false, e), e);
}

int registry_version_download_uri(struct db *db, const char *project_id, const char *name,
                                  const char *version, char **uri, struct err *e) {
  int64_t v;
  *uri = NULL;
  int rc = check_model_name(name, e);
  if (rc || (rc = reg_version_parse(version, &v, e))) return rc;
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -ERR_UNAVAILABLE;
  struct reg_model m;
  if ((rc = reg_model_load(c, project_id, name, &m, e)) == 0 && (rc = reg_version_exists(c, &m, v, e)) == 0) {
    struct db_stmt *s =
        db_prepare(c, "SELECT storage_location FROM model_versions WHERE model_id = ? AND version = ?", e);
    rc = -ERR_INTERNAL;
    if (s) {
      db_bind_i64(s, 1, m.id);
      db_bind_i64(s, 2, v);
      rc = db_step(s, e);
      if (rc == DB_ROW) {
        *uri = strdup(db_col_text(s, 0));
        rc = *uri ? 0 : err_set(e, ERR_NO_MEMORY, "out of memory");
      } else if (rc == DB_DONE) {
        rc = err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Model Version not found");
      }
      db_stmt_done(s);
    }
  }
  db_reader_release(db, c);
  return rc;
}

json_t *registry_version_transition(struct db *db, const char *project_id, const char *name,
                                    const char *version, const char *stage, bool archive_existing,
                                    struct err *e) {
  return registry_version_transition_as(db, project_id, name, version, stage, archive_existing, NULL, e);
}

json_t *registry_version_transition_as(struct db *db, const char *project_id, const char *name,
                                       const char *version, const char *stage, bool archive_existing,
                                       const struct registry_actor *who, struct err *e) {
  struct version_job j = {.op = V_STAGE, .project_id = project_id, .name = name,
                          .archive_existing = archive_existing,
                          .gov = who && who->project_admin ? REG_GOV_ADMIN : REG_GOV_CALLER};
  if (reg_version_parse(version, &j.version, e)) return NULL;
  j.stage = registry_stage_canonical(stage);
  if (!j.stage) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE,
            "Invalid Model Version stage: %.100s. Value must be one of None, Staging, Production, Archived.",
            stage ? stage : "");
    return NULL;
  }
  return version_change(db, &j, true, e);
}

json_t *registry_version_search(struct db *db, const char *project_id,
                                const struct registry_search *s, char next[REGISTRY_PAGE_TOKEN_MAX],
                                struct err *e) {
  static const struct reg_search_plan plan = {
      .ent = TRACK_FLT_MODEL_VERSIONS,
      .select = "SELECT v.model_id, v.version FROM model_versions v WHERE v.project_id = ? AND v.seq <= ?",
      .snap_sql = "SELECT COALESCE(MAX(seq), 0) FROM model_versions",
      .dflt = REGISTRY_VERSIONS_DEFAULT_RESULTS,
      .cap = REGISTRY_VERSIONS_MAX_RESULTS,
  };
  return reg_search(db, project_id, s, &plan, next, e);
}
