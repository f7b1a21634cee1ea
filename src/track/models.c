/* track/models: MLflow 3's logged models — what `mlflow.<flavor>.log_model()`
 * creates before uploading the files and finalizes after: a model of an
 * experiment (and so of its project) with params and tags.
 *
 * Status, changed only by finalize:
 *
 *      create ──> LOGGED_MODEL_PENDING ──finalize──> LOGGED_MODEL_READY
 *                                      └─finalize──> LOGGED_MODEL_UPLOAD_FAILED
 *
 * finalize may repeat (MLflow does not refuse it); delete marks the model
 * deleted, after which it answers like a missing one. */
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const STATUS[] = {"LOGGED_MODEL_STATUS_UNSPECIFIED", "LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY",
                                     "LOGGED_MODEL_UPLOAD_FAILED"};

static int status_parse(const char *s, const char **out, struct err *e) {
  for (int i = 1; i < 4; i++) {
    char num[12];
    snprintf(num, sizeof num, "%d", i);
    if (s && (str_eq(s, STATUS[i]) || str_eq(s, num) || strcasecmp(s, STATUS[i] + 13) == 0)) {
      *out = STATUS[i];
      return 0;
    }
  }
  return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                 "Invalid value '%.40s' for parameter 'status': expected LOGGED_MODEL_PENDING, LOGGED_MODEL_READY "
                 "or LOGGED_MODEL_UPLOAD_FAILED",
                 s ? s : "");
}

static int not_found(const char *id, struct err *e) {
  return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Logged model with ID '%.80s' not found.", id ? id : "");
}

int track_model_load(struct db_conn *c, const char *project_id, const char *id, int64_t *experiment_id,
                     struct err *e) {
  struct db_stmt *s = db_prepare(c,
                                 "SELECT experiment_id FROM logged_models WHERE model_id = ? AND project_id = ?"
                                 " AND lifecycle_stage = 'active'",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, id);
  db_bind_text(s, 2, project_id);
  int rc = db_step(s, e);
  if (rc == DB_ROW && experiment_id) *experiment_id = db_col_i64(s, 0);
  db_stmt_done(s);
  if (rc < 0) return rc;
  return rc == DB_ROW ? 0 : not_found(id, e);
}

static int model_load(struct db_conn *c, const char *project_id, const char *id, struct err *e) {
  return track_model_load(c, project_id, id, NULL, e);
}

static json_t *kvs(struct db_conn *c, const char *sql, const char *id, struct err *e) {
  struct db_stmt *s = db_prepare(c, sql, e);
  if (!s) return NULL;
  db_bind_text(s, 1, id);
  json_t *arr = json_array();
  int rc;
  while ((rc = db_step(s, e)) == DB_ROW)
    json_array_append_new(arr, json_pack("{s:s, s:s}", "key", db_col_text(s, 0), "value", db_col_text(s, 1)));
  db_stmt_done(s);
  if (rc < 0) {
    json_decref(arr);
    return NULL;
  }
  return arr;
}

static json_t *model_json(struct db_conn *c, const char *id, struct err *e) {
  struct db_stmt *s = db_prepare(c,
                                 "SELECT experiment_id, name, artifact_location, creation_timestamp_ms,"
                                 " last_updated_timestamp_ms, status, model_type, source_run_id, status_message"
                                 " FROM logged_models WHERE model_id = ?",
                                 e);
  if (!s) return NULL;
  db_bind_text(s, 1, id);
  int rc = db_step(s, e);
  if (rc != DB_ROW) {
    db_stmt_done(s);
    if (rc == DB_DONE) not_found(id, e);
    return NULL;
  }
  char exp[24];
  snprintf(exp, sizeof exp, "%lld", (long long)db_col_i64(s, 0));
  json_t *info = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "model_id", id, "experiment_id", exp, "name",
                           db_col_text(s, 1), "creation_timestamp_ms", (json_int_t)db_col_i64(s, 3),
                           "last_updated_timestamp_ms", (json_int_t)db_col_i64(s, 4), "status", db_col_text(s, 5));
  const char *opt[][2] = {{"artifact_uri", db_col_text(s, 2)},
                          {"model_type", db_col_text(s, 6)},
                          {"source_run_id", db_col_text(s, 7)},
                          {"status_message", db_col_text(s, 8)}};
  for (size_t i = 0; i < sizeof opt / sizeof opt[0]; i++)
    if (opt[i][1] && *opt[i][1]) json_object_set_new(info, opt[i][0], json_string(opt[i][1]));
  db_stmt_done(s);
  json_t *tags = kvs(c, "SELECT key, value FROM logged_model_tags WHERE model_id = ? ORDER BY key", id, e);
  json_t *params = tags ? kvs(c, "SELECT key, value FROM logged_model_params WHERE model_id = ? ORDER BY key", id, e)
                        : NULL;
  if (!params) {
    json_decref(info);
    json_decref(tags);
    return NULL;
  }
  if (json_array_size(tags)) json_object_set_new(info, "tags", tags);
  else json_decref(tags);
  json_t *data = json_object();
  if (json_array_size(params)) json_object_set_new(data, "params", params);
  else json_decref(params);
  return json_pack("{s:o, s:o}", "info", info, "data", data);
}

static int check_kvs(const struct track_kv *kv, int n, enum track_key_kind kind, struct err *e) {
  if (n > TRACKING_MAX_PARAMS_PER_BATCH * 10)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "at most %d params or tags per call", TRACKING_MAX_PARAMS_PER_BATCH * 10);
  for (int i = 0; i < n; i++) {
    int rc = track_key_check(kind, kv[i].key, e);
    if (rc) return rc;
    size_t len = kv[i].value ? track_utf8_chars(kv[i].value) : 0;
    size_t lim = kind == TRACKING_KEY_PARAM ? TRACKING_MAX_PARAM_VALUE_LEN : TRACKING_MAX_TAG_VALUE_LEN;
    if (len > lim)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Value of '%.100s' is longer than %zu characters", kv[i].key, lim);
  }
  return 0;
}

static int put_kvs(struct db_conn *c, const char *table, const char *id, const struct track_kv *kv, int n,
                   struct err *e) {
  char sql[200];
  snprintf(sql, sizeof sql,
           "INSERT INTO %s (model_id, key, value) VALUES (?, ?, ?)"
           " ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
           table);
  int rc = 0;
  for (int i = 0; i < n && !rc; i++) rc = track_exec(c, sql, e, "sss", id, kv[i].key, kv[i].value ? kv[i].value : "");
  return rc;
}

/* ---- writes -------------------------------------------------------------------------- */

enum model_op { M_CREATE, M_FINALIZE, M_DELETE, M_SET_TAGS, M_DELETE_TAG, M_PARAMS };

struct model_job {
  enum model_op op;
  const char *project_id, *id, *status, *key;
  const struct track_logged_model_new *in;
  int64_t experiment_id;
  const struct track_kv *kv;
  int nkv;
  json_t *out;
};

static int touch(struct db_conn *c, const char *id, struct err *e) {
  return track_exec(c, "UPDATE logged_models SET last_updated_timestamp_ms = ? WHERE model_id = ?", e, "is",
                  time_wall_ms(), id);
}

static int model_job(struct db_conn *c, void *arg, struct err *e) {
  struct model_job *j = arg;
  int rc;
  if (j->op == M_CREATE) {
    struct track_exp x;
    if ((rc = track_exp_load(c, j->project_id, j->experiment_id, j->in->experiment_id, &x, e))) return rc;
    if (!x.active)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "The experiment %lld must be in the 'active' state. Current state is deleted.", (long long)x.id);
    if (j->in->source_run_id && *j->in->source_run_id) {
      struct track_run r;
      if ((rc = track_run_load(c, j->project_id, j->in->source_run_id, &r, e))) return rc;
    }
    char uri[1200];
    snprintf(uri, sizeof uri, "%s/models/%s/artifacts", x.artifact_location, j->id);
    int64_t now = time_wall_ms();
    rc = track_exec(c,
                  "INSERT INTO logged_models (model_id, experiment_id, project_id, name, artifact_location,"
                  " creation_timestamp_ms, last_updated_timestamp_ms, status, lifecycle_stage, model_type,"
                  " source_run_id, status_message) VALUES (?, ?, ?, ?, ?, ?, ?, 'LOGGED_MODEL_PENDING', 'active', ?, ?, NULL)",
                  e, "sisssiiss", j->id, x.id, j->project_id, j->in->name, uri, now, now,
                  j->in->model_type && *j->in->model_type ? j->in->model_type : NULL,
                  j->in->source_run_id && *j->in->source_run_id ? j->in->source_run_id : NULL);
    if (!rc) rc = put_kvs(c, "logged_model_params", j->id, j->in->params, j->in->nparams, e);
    if (!rc) rc = put_kvs(c, "logged_model_tags", j->id, j->in->tags, j->in->ntags, e);
  } else {
    if ((rc = model_load(c, j->project_id, j->id, e))) return rc;
    switch (j->op) {
    case M_FINALIZE:
      rc = track_exec(c, "UPDATE logged_models SET status = ? WHERE model_id = ?", e, "ss", j->status, j->id);
      break;
    case M_DELETE:
      rc = track_exec(c,
                      "UPDATE logged_models SET lifecycle_stage = 'deleted', deleted_time = ?,"
                      " last_updated_timestamp_ms = ? WHERE model_id = ?",
                      e, "iis", time_wall_ms(), time_wall_ms(), j->id);
      break;
    case M_SET_TAGS: rc = put_kvs(c, "logged_model_tags", j->id, j->kv, j->nkv, e); break;
    case M_PARAMS: rc = put_kvs(c, "logged_model_params", j->id, j->kv, j->nkv, e); break;
    case M_DELETE_TAG:
      rc = track_exec(c, "DELETE FROM logged_model_tags WHERE model_id = ? AND key = ?", e, "ss", j->id, j->key);
      if (!rc && db_changes(c) == 0)
        rc = err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "No tag with key '%.200s' found for logged model %s", j->key, j->id);
      break;
    default: break;
    }
    if (!rc && j->op != M_DELETE) rc = touch(c, j->id, e);
  }
  if (rc || j->op == M_DELETE || j->op == M_DELETE_TAG || j->op == M_PARAMS) return rc;
  j->out = model_json(c, j->id, e);
  return j->out ? 0 : -ERR_INTERNAL;
}

static json_t *run_job(struct db *db, struct model_job *j, struct err *e) {
  if (db_write(db, model_job, j, e)) {
    json_decref(j->out);
    return NULL;
  }
  return j->out;
}

json_t *track_logged_model_create(struct db *db, const char *project_id, const struct track_logged_model_new *in,
                                  struct err *e) {
  if (!in->experiment_id || !*in->experiment_id) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE,
            "Missing value for required parameter 'experiment_id'. See the API docs for more information about "
            "request parameters.");
    return NULL;
  }
  if (check_kvs(in->params, in->nparams, TRACKING_KEY_PARAM, e) || check_kvs(in->tags, in->ntags, TRACKING_KEY_TAG, e))
    return NULL;
  if (in->name && track_utf8_chars(in->name) > TRACKING_MAX_TAG_VALUE_LEN) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "Logged model name is longer than %d characters", TRACKING_MAX_TAG_VALUE_LEN);
    return NULL;
  }
  char id[40], generated[64];
  memcpy(id, "m-", 2);
  id_random_hex(id + 2, 16);
  struct track_logged_model_new copy = *in;
  if (!copy.name || !*copy.name) {
    track_run_name_generate(generated);
    copy.name = generated;
  }
  struct model_job j = {.op = M_CREATE, .project_id = project_id, .id = id, .in = &copy};
  if (track_experiment_resolve(db, project_id, in->experiment_id, &j.experiment_id, e)) return NULL;
  return run_job(db, &j, e);
}

json_t *track_logged_model_get(struct db *db, const char *project_id, const char *model_id, struct err *e) {
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  json_t *o = NULL;
  if (model_load(c, project_id, model_id, e) == 0) o = model_json(c, model_id, e);
  db_reader_release(db, c);
  return o;
}

json_t *track_logged_model_finalize(struct db *db, const char *project_id, const char *model_id, const char *status,
                                    struct err *e) {
  struct model_job j = {.op = M_FINALIZE, .project_id = project_id, .id = model_id};
  if (status_parse(status, &j.status, e)) return NULL;
  return run_job(db, &j, e);
}

int track_logged_model_delete(struct db *db, const char *project_id, const char *model_id, struct err *e) {
  struct model_job j = {.op = M_DELETE, .project_id = project_id, .id = model_id};
  return db_write(db, model_job, &j, e);
}

json_t *track_logged_model_set_tags(struct db *db, const char *project_id, const char *model_id,
                                    const struct track_kv *tags, int ntags, struct err *e) {
  if (check_kvs(tags, ntags, TRACKING_KEY_TAG, e)) return NULL;
  struct model_job j = {.op = M_SET_TAGS, .project_id = project_id, .id = model_id, .kv = tags, .nkv = ntags};
  return run_job(db, &j, e);
}

int track_logged_model_delete_tag(struct db *db, const char *project_id, const char *model_id, const char *key,
                                  struct err *e) {
  struct model_job j = {.op = M_DELETE_TAG, .project_id = project_id, .id = model_id, .key = key};
  return db_write(db, model_job, &j, e);
}

int track_logged_model_log_params(struct db *db, const char *project_id, const char *model_id,
                                  const struct track_kv *params, int nparams, struct err *e) {
  int rc = check_kvs(params, nparams, TRACKING_KEY_PARAM, e);
  if (rc) return rc;
  struct model_job j = {.op = M_PARAMS, .project_id = project_id, .id = model_id, .kv = params, .nkv = nparams};
  return db_write(db, model_job, &j, e);
}

/* ---- run outputs (runs/outputs) ------------------------------------------------------- *
 * The models a run produced: the run must be the project's and active, and
 * every model the project's (and not deleted), else nothing is written. */

struct outputs_job {
  const char *project_id, *run_id;
  const struct track_model_output *m;
  int n;
};

static int outputs_fn(struct db_conn *c, void *arg, struct err *e) {
  struct outputs_job *j = arg;
  struct track_run r;
  int rc = track_run_load(c, j->project_id, j->run_id, &r, e);
  if (rc || (rc = track_run_check_active(&r, e))) return rc;
  for (int i = 0; i < j->n; i++)
    if ((rc = model_load(c, j->project_id, j->m[i].model_id, e))) return rc;
  for (int i = 0; i < j->n && !rc; i++)
    rc = track_exec(c,
                    "INSERT INTO run_model_outputs (run_uuid, model_id, step) VALUES (?, ?, ?)"
                    " ON CONFLICT (run_uuid, model_id) DO NOTHING",
                    e, "ssi", r.id, j->m[i].model_id, j->m[i].step);
  return rc;
}

int track_log_outputs(struct db *db, const char *project_id, const char *run_id,
                      const struct track_model_output *models, int nmodels, struct err *e) {
  if (!run_id || !*run_id)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "Missing value for required parameter 'run_id'. See the API docs for more information about "
                   "request parameters.");
  if (nmodels < 0 || nmodels > TRACKING_MAX_INPUTS_PER_CALL)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "at most %d models per call", TRACKING_MAX_INPUTS_PER_CALL);
  for (int i = 0; i < nmodels; i++)
    if (!models[i].model_id || !*models[i].model_id)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "Missing value for required parameter 'model_id'. See the API docs for more information "
                     "about request parameters.");
  struct outputs_job j = {project_id, run_id, models, nmodels};
  return db_write(db, outputs_fn, &j, e);
}

json_t *track_run_outputs_json(struct db_conn *c, const char *run_id, struct err *e) {
  struct db_stmt *s =
      db_prepare(c, "SELECT model_id, step FROM run_model_outputs WHERE run_uuid = ? ORDER BY step, model_id", e);
  if (!s) return NULL;
  db_bind_text(s, 1, run_id);
  json_t *arr = json_array();
  int rc;
  while ((rc = db_step(s, e)) == DB_ROW)
    json_array_append_new(arr, json_pack("{s:s, s:I}", "model_id", db_col_text(s, 0), "step",
                                         (json_int_t)db_col_i64(s, 1)));
  db_stmt_done(s);
  if (rc < 0) {
    json_decref(arr);
    return NULL;
  }
  json_t *out = json_object();
  if (json_array_size(arr)) json_object_set_new(out, "model_outputs", arr);
  else json_decref(arr);
  return out;
}

/* ---- search ---------------------------------------------------------------------------- *
 * The filter is a conjunction of `<attr> = '<value>'` with attr one of
 * name, model_type, source_run_id, status (an optional "attributes."
 * prefix); that is what MLflow's client sends from log_model and
 * last_logged_model. Anything else is refused with what was expected. */
#define SEARCH_MAX_TERMS 8

struct term {
  const char *col;
  char value[512];
};

static int parse_filter(const char *f, struct term *t, int *n, struct err *e) {
  static const char *const cols[] = {"name", "model_type", "source_run_id", "status"};
  *n = 0;
  const char *p = f;
  while (p && *p) {
    while (isspace((unsigned char)*p)) p++;
    if (!*p) break;
    if (*n == SEARCH_MAX_TERMS) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "at most %d filter terms", SEARCH_MAX_TERMS);
    if (*n) {
      if (strncasecmp(p, "AND", 3) || !isspace((unsigned char)p[3]))
        return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid filter at position %d: expected AND", (int)(p - f) + 1);
      p += 3;
      while (isspace((unsigned char)*p)) p++;
    }
    const char *start = p;
    if (strncasecmp(p, "attributes.", 11) == 0) p += 11;
    const char *col = NULL;
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
      size_t l = strlen(cols[i]);
      if (strncmp(p, cols[i], l) == 0 && !isalnum((unsigned char)p[l]) && p[l] != '_') {
        col = cols[i];
        p += l;
        break;
      }
    }
    if (!col)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "Invalid filter at position %d: expected one of name, model_type, source_run_id, status",
                     (int)(start - f) + 1);
    while (isspace((unsigned char)*p)) p++;
    if (*p != '=') return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid filter at position %d: expected '='", (int)(p - f) + 1);
    p++;
    while (isspace((unsigned char)*p)) p++;
    char q = *p;
    if (q != '\'' && q != '"')
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid filter at position %d: expected a quoted string", (int)(p - f) + 1);
    const char *v = ++p;
    while (*p && *p != q) p++;
    if (!*p || (size_t)(p - v) >= sizeof t[0].value)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid filter at position %d: unterminated string", (int)(v - f));
    t[*n].col = col;
    memcpy(t[*n].value, v, (size_t)(p - v));
    t[*n].value[p - v] = 0;
    (*n)++;
    p++;
  }
  return 0;
}

/* order_by: a column of logged_models per field name (MLflow's aliases
 * too). Metrics are not stored for logged models in Kiln, so metrics.<key>
 * (and a dataset to read them on) is refused rather than ignored. */
static int order_sql(const struct track_lm_order *o, int n, struct buf *sql, struct err *e) {
  static const char *const names[][2] = {
      {"name", "name"},
      {"model_id", "model_id"},
      {"model_type", "model_type"},
      {"status", "status"},
      {"source_run_id", "source_run_id"},
      {"creation_time", "creation_timestamp_ms"},
      {"creation_timestamp", "creation_timestamp_ms"},
      {"creation_timestamp_ms", "creation_timestamp_ms"},
      {"last_updated_timestamp", "last_updated_timestamp_ms"},
      {"last_updated_timestamp_ms", "last_updated_timestamp_ms"},
  };
  if (n > TRACKING_LOGGED_MODEL_MAX_ORDER_BY)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "order_by takes at most %d fields", TRACKING_LOGGED_MODEL_MAX_ORDER_BY);
  buf_puts(sql, " ORDER BY ");
  for (int i = 0; i < n; i++) {
    const char *f = o[i].field_name;
    if (!f || !*f)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Missing value for required parameter 'order_by.field_name'");
    if (strncmp(f, "metrics.", 8) == 0)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "Invalid order_by field '%.100s': Kiln stores no metrics for logged models, so they cannot be "
                     "ordered by one",
                     f);
    if ((o[i].dataset_name && *o[i].dataset_name) || (o[i].dataset_digest && *o[i].dataset_digest))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "Invalid order_by field '%.100s': dataset_name and dataset_digest apply to metrics, which Kiln "
                     "does not store for logged models",
                     f);
    const char *col = NULL;
    for (size_t k = 0; k < sizeof names / sizeof names[0] && !col; k++)
      if (str_eq(f, names[k][0]) || (strncmp(f, "attributes.", 11) == 0 && str_eq(f + 11, names[k][0])))
        col = names[k][1];
    if (!col)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "Invalid order_by field '%.100s': expected one of name, model_id, model_type, status, "
                     "source_run_id, creation_timestamp (creation_time), last_updated_timestamp",
                     f);
    buf_printf(sql, "%s %s, ", col, o[i].ascending ? "ASC" : "DESC");
  }
  /* MLflow's default, and the tie-breaker after the caller's fields */
  buf_puts(sql, "creation_timestamp_ms DESC, model_id ASC");
  return 0;
}

/* The highest logged_models rowid now: later pages of one search see no
 * model created after its first page, so offsets stay put (as runs/search). */
static int models_snapshot(struct db_conn *c, int64_t *snap, struct err *e) {
  struct db_stmt *st = db_prepare(c, "SELECT COALESCE(MAX(rowid), 0) FROM logged_models", e);
  int rc = st ? db_step(st, e) : -ERR_INTERNAL;
  if (rc == DB_ROW) *snap = db_col_i64(st, 0);
  if (st) db_stmt_done(st);
  return rc < 0 ? rc : 0;
}

json_t *track_logged_model_search(struct db *db, const char *project_id, const struct track_lm_search *q,
                                  char next[TRACKING_PAGE_TOKEN_MAX], struct err *e) {
  next[0] = 0;
  int64_t max_results = q->max_results;
  if (max_results == 0) max_results = TRACKING_LOGGED_MODEL_DEFAULT_RESULTS;
  if (max_results < 1 || max_results > TRACKING_LOGGED_MODEL_MAX_RESULTS) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid value for max_results: it must be between 1 and %d, got %lld",
            TRACKING_LOGGED_MODEL_MAX_RESULTS, (long long)max_results);
    return NULL;
  }
  if (q->ndatasets > 0) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE,
            "Invalid value for parameter 'datasets': Kiln stores no metrics for logged models, so it cannot "
            "restrict a search to models with metrics on a dataset");
    return NULL;
  }
  int64_t offset = 0, snap = 0;
  if (q->page_token && *q->page_token && track_page_token_decode_snap(q->page_token, &offset, &snap, e)) return NULL;
  struct term terms[SEARCH_MAX_TERMS];
  int nterms;
  if (parse_filter(q->filter, terms, &nterms, e)) return NULL;
  int64_t ids[TRACKING_LOGGED_MODEL_MAX_EXPERIMENTS];
  int nexp = q->nexperiment_ids;
  if (nexp < 0 || nexp > TRACKING_LOGGED_MODEL_MAX_EXPERIMENTS) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "at most %d experiment_ids", TRACKING_LOGGED_MODEL_MAX_EXPERIMENTS);
    return NULL;
  }
  for (int i = 0; i < nexp; i++)
    if (track_experiment_resolve(db, project_id, q->experiment_ids[i], &ids[i], e)) return NULL;
  struct buf sql;
  buf_init(&sql);
  buf_puts(&sql, "SELECT model_id FROM logged_models WHERE project_id = ? AND lifecycle_stage = 'active'"
                 " AND rowid <= ?");
  if (nexp) {
    buf_puts(&sql, " AND experiment_id IN (");
    for (int i = 0; i < nexp; i++) buf_puts(&sql, i ? ", ?" : "?");
    buf_puts(&sql, ")");
  }
  for (int i = 0; i < nterms; i++) buf_printf(&sql, " AND %s = ?", terms[i].col);
  json_t *arr = NULL;
  struct db_conn *c = NULL;
  if (order_sql(q->order_by, q->norder_by, &sql, e)) goto out;
  buf_puts(&sql, " LIMIT ? OFFSET ?");
  if (!(c = db_reader_acquire(db, e))) goto out;
  if (snap == 0 && models_snapshot(c, &snap, e)) goto out;
  struct db_stmt *s = db_prepare(c, sql.data, e);
  if (!s) goto out;
  int b = 1;
  db_bind_text(s, b++, project_id);
  db_bind_i64(s, b++, snap);
  for (int i = 0; i < nexp; i++) db_bind_i64(s, b++, ids[i]);
  for (int i = 0; i < nterms; i++) db_bind_text(s, b++, terms[i].value);
  db_bind_i64(s, b++, max_results + 1);
  db_bind_i64(s, b++, offset);
  char(*found)[40] = calloc((size_t)max_results + 1, sizeof *found);
  int64_t n = 0;
  int rc = 0;
  while (found && (rc = db_step(s, e)) == DB_ROW) {
    if (n == max_results) {
      track_page_token_encode_snap(offset + n, snap, next);
      break;
    }
    str_copy(found[n++], sizeof found[0], db_col_text(s, 0));
  }
  db_stmt_done(s);
  if (!found || rc < 0) {
    if (!found) err_set(e, ERR_NO_MEMORY, "out of memory");
    free(found);
    goto out;
  }
  arr = json_array();
  for (int64_t i = 0; i < n; i++) {
    json_t *m = model_json(c, found[i], e);
    if (!m) {
      json_decref(arr);
      arr = NULL;
      break;
    }
    json_array_append_new(arr, m);
  }
  free(found);
out:
  if (c) db_reader_release(db, c);
  buf_fini(&sql);
  return arr;
}
