/* track/inputs: what a run consumed and produced beyond metrics — dataset
 * inputs (runs/log-inputs, deduplicated per experiment by name and digest,
 * as MLflow) with their input tags, model inputs, and the
 * mlflow.log-model.history tag that runs/log-model appends to. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG_LOG_MODEL_HISTORY "mlflow.log-model.history"

static int too_long(const char *what, const char *field, size_t n, size_t limit, struct err *e) {
  return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s '%s' exceeds the maximum length of %zu characters (got %zu)",
                 what, field, limit, n);
}

static int check_len(const char *what, const char *field, const char *v, size_t limit, bool required,
                     struct err *e) {
  if (!v || !*v) {
    if (!required) return 0;
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "Missing value for required parameter '%s'. See the API docs for more information about "
                   "request parameters.",
                   field);
  }
  size_t n = track_utf8_chars(v);
  return n > limit ? too_long(what, field, n, limit, e) : 0;
}

static int inputs_validate(const struct track_inputs *in, struct err *e) {
  if (in->ndatasets > TRACKING_MAX_INPUTS_PER_CALL || in->nmodels > TRACKING_MAX_INPUTS_PER_CALL)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "A log-inputs request can contain at most %d datasets and %d models",
                   TRACKING_MAX_INPUTS_PER_CALL, TRACKING_MAX_INPUTS_PER_CALL);
  int rc;
  for (int i = 0; i < in->ndatasets; i++) {
    const struct track_dataset_input *d = &in->datasets[i];
    if ((rc = check_len("Dataset", "name", d->name, TRACKING_MAX_DATASET_NAME_LEN, true, e)) ||
        (rc = check_len("Dataset", "digest", d->digest, TRACKING_MAX_DATASET_DIGEST_LEN, true, e)) ||
        (rc = check_len("Dataset", "source_type", d->source_type, TRACKING_MAX_DATASET_NAME_LEN, true, e)) ||
        (rc = check_len("Dataset", "source", d->source, TRACKING_MAX_DATASET_SOURCE_LEN, true, e)) ||
        (rc = check_len("Dataset", "schema", d->schema, TRACKING_MAX_DATASET_SCHEMA_LEN, false, e)) ||
        (rc = check_len("Dataset", "profile", d->profile, TRACKING_MAX_DATASET_PROFILE_LEN, false, e)))
      return rc;
    if (d->ntags > TRACKING_MAX_INPUT_TAGS)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "A dataset input can carry at most %d tags", TRACKING_MAX_INPUT_TAGS);
    for (int k = 0; k < d->ntags; k++) {
      if ((rc = check_len("Input tag", "key", d->tags[k].key, TRACKING_MAX_INPUT_TAG_KEY_LEN, true, e))) return rc;
      if (!d->tags[k].value)
        return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                       "Missing value for required parameter 'value'. See the API docs for more information "
                       "about request parameters.");
      if ((rc = check_len("Input tag", "value", d->tags[k].value, TRACKING_MAX_INPUT_TAG_VALUE_LEN, false, e)))
        return rc;
    }
  }
  for (int i = 0; i < in->nmodels; i++)
    if (!in->model_ids[i] || !*in->model_ids[i])
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "Missing value for required parameter 'model_id'. See the API docs for more information "
                     "about request parameters.");
  return 0;
}

struct inputs_job {
  const char *project_id, *run_id;
  const struct track_inputs *in;
};

/* The dataset's id in the experiment, inserting it on first sight. */
static int dataset_upsert(struct db_conn *c, int64_t exp, const struct track_dataset_input *d, char id[33],
                          struct err *e) {
  struct db_stmt *s = db_prepare(c, "SELECT dataset_uuid FROM datasets WHERE experiment_id = ? AND name = ? AND digest = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, exp);
  db_bind_text(s, 2, d->name);
  db_bind_text(s, 3, d->digest);
  int rc = db_step(s, e);
  if (rc == DB_ROW) str_copy(id, 33, db_col_text(s, 0));
  db_stmt_done(s);
  if (rc < 0) return rc;
  if (rc == DB_ROW) return 0;
  id_random_hex(id, 16);
  s = db_prepare(c,
                 "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, source_type, source, schema, profile)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, id);
  db_bind_i64(s, 2, exp);
  db_bind_text(s, 3, d->name);
  db_bind_text(s, 4, d->digest);
  db_bind_text(s, 5, d->source_type);
  db_bind_text(s, 6, d->source);
  if (d->schema && *d->schema) db_bind_text(s, 7, d->schema);
  else db_bind_null(s, 7);
  if (d->profile && *d->profile) db_bind_text(s, 8, d->profile);
  else db_bind_null(s, 8);
  rc = db_step(s, e);
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

static int inputs_job(struct db_conn *c, void *arg, struct err *e) {
  struct inputs_job *j = arg;
  struct track_run r;
  int rc = track_run_load(c, j->project_id, j->run_id, &r, e);
  if (!rc) rc = track_run_check_active(&r, e);
  for (int i = 0; i < j->in->ndatasets && !rc; i++) {
    const struct track_dataset_input *d = &j->in->datasets[i];
    char id[33];
    if ((rc = dataset_upsert(c, r.experiment_id, d, id, e))) break;
    /* MLflow keeps the first input of a dataset to a run, tags and all */
    rc = track_exec(c,
                  "INSERT INTO run_dataset_inputs (run_uuid, dataset_uuid, seq) SELECT ?, ?,"
                  " COALESCE(MAX(seq), 0) + 1 FROM run_dataset_inputs WHERE run_uuid = ?"
                  " ON CONFLICT DO NOTHING",
                  e, "sss", j->run_id, id, j->run_id);
    if (rc || db_changes(c) == 0) continue;
    for (int k = 0; k < d->ntags && !rc; k++)
      rc = track_exec(c,
                    "INSERT INTO run_input_tags (run_uuid, dataset_uuid, key, value) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (run_uuid, dataset_uuid, key) DO UPDATE SET value = excluded.value",
                    e, "ssss", j->run_id, id, d->tags[k].key, d->tags[k].value);
  }
  for (int i = 0; i < j->in->nmodels && !rc; i++)
    rc = track_exec(c, "INSERT INTO run_model_inputs (run_uuid, model_id) VALUES (?, ?) ON CONFLICT DO NOTHING", e,
                  "ss", j->run_id, j->in->model_ids[i]);
  return rc;
}

int track_log_inputs(struct db *db, const char *project_id, const char *run_id, const struct track_inputs *in,
                     struct err *e) {
  int rc = inputs_validate(in, e);
  if (rc) return rc;
  struct inputs_job j = {.project_id = project_id, .run_id = run_id, .in = in};
  return db_write(db, inputs_job, &j, e);
}

/* RunInputs: {"dataset_inputs": [{"tags": [...], "dataset": {...}}], "model_inputs": [...]}
 * in logging order; empty lists left out. */
json_t *track_run_inputs_json(struct db_conn *c, const char *run_id, struct err *e) {
  json_t *out = json_object(), *dis = json_array(), *mis = json_array();
  struct db_stmt *s = db_prepare(c,
                                 "SELECT d.dataset_uuid, d.name, d.digest, d.source_type, d.source, d.schema, d.profile"
                                 " FROM run_dataset_inputs i JOIN datasets d ON d.dataset_uuid = i.dataset_uuid"
                                 " WHERE i.run_uuid = ? ORDER BY i.seq",
                                 e);
  int rc = -1;
  if (!s) goto fail;
  db_bind_text(s, 1, run_id);
  while ((rc = db_step(s, e)) == DB_ROW) {
    json_t *ds = json_pack("{s:s, s:s, s:s, s:s}", "name", db_col_text(s, 1), "digest", db_col_text(s, 2),
                           "source_type", db_col_text(s, 3), "source", db_col_text(s, 4));
    if (!db_col_null(s, 5)) json_object_set_new(ds, "schema", json_string(db_col_text(s, 5)));
    if (!db_col_null(s, 6)) json_object_set_new(ds, "profile", json_string(db_col_text(s, 6)));
    json_t *di = json_pack("{s:o}", "dataset", ds);
    json_object_set_new(di, "_id", json_string(db_col_text(s, 0))); /* dropped below */
    json_array_append_new(dis, di);
  }
  db_stmt_done(s);
  if (rc < 0) goto fail;
  size_t i;
  json_t *di;
  json_array_foreach(dis, i, di) {
    const char *id = json_string_value(json_object_get(di, "_id"));
    s = db_prepare(c, "SELECT key, value FROM run_input_tags WHERE run_uuid = ? AND dataset_uuid = ? ORDER BY key", e);
    if (!s) goto fail;
    db_bind_text(s, 1, run_id);
    db_bind_text(s, 2, id);
    json_t *tags = json_array();
    while ((rc = db_step(s, e)) == DB_ROW)
      json_array_append_new(tags, json_pack("{s:s, s:s}", "key", db_col_text(s, 0), "value", db_col_text(s, 1)));
    db_stmt_done(s);
    if (json_array_size(tags)) json_object_set_new(di, "tags", tags);
    else json_decref(tags);
    json_object_del(di, "_id");
    if (rc < 0) goto fail;
  }
  s = db_prepare(c, "SELECT model_id FROM run_model_inputs WHERE run_uuid = ? ORDER BY model_id", e);
  if (!s) goto fail;
  db_bind_text(s, 1, run_id);
  while ((rc = db_step(s, e)) == DB_ROW) json_array_append_new(mis, json_pack("{s:s}", "model_id", db_col_text(s, 0)));
  db_stmt_done(s);
  if (rc < 0) goto fail;
  if (json_array_size(dis)) json_object_set(out, "dataset_inputs", dis);
  if (json_array_size(mis)) json_object_set(out, "model_inputs", mis);
  json_decref(dis);
  json_decref(mis);
  return out;
fail:
  json_decref(out);
  json_decref(dis);
  json_decref(mis);
  return NULL;
}

/* ---- runs/log-model ------------------------------------------------------------------ *
 * MLflow appends the model's JSON (an MLmodel as a dict) to the run's
 * mlflow.log-model.history tag, a JSON list, in one read-modify-write. */
struct model_job {
  const char *project_id, *run_id;
  json_t *model;
};

static int model_job(struct db_conn *c, void *arg, struct err *e) {
  struct model_job *j = arg;
  struct track_run r;
  int rc = track_run_load(c, j->project_id, j->run_id, &r, e);
  if (!rc) rc = track_run_check_active(&r, e);
  if (rc) return rc;
  struct db_stmt *s = db_prepare(c, "SELECT value FROM tags WHERE run_uuid = ? AND key = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, j->run_id);
  db_bind_text(s, 2, TAG_LOG_MODEL_HISTORY);
  json_t *hist = NULL;
  rc = db_step(s, e);
  if (rc == DB_ROW && db_col_text(s, 0)) hist = json_loads(db_col_text(s, 0), 0, NULL);
  db_stmt_done(s);
  if (rc < 0) return rc;
  if (!json_is_array(hist)) {
    json_decref(hist);
    hist = json_array();
  }
  json_array_append(hist, j->model);
  char *text = json_dumps(hist, JSON_COMPACT | JSON_REAL_PRECISION(17));
  json_decref(hist);
  if (!text) return err_set(e, ERR_NO_MEMORY, "out of memory");
  /* the history is not cut at the tag limit: cutting would break its JSON */
  rc = track_exec(c,
                "INSERT INTO tags (run_uuid, key, value) VALUES (?, ?, ?)"
                " ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value",
                e, "sss", j->run_id, TAG_LOG_MODEL_HISTORY, text);
  free(text);
  return rc;
}

int track_log_model(struct db *db, const char *project_id, const char *run_id, const char *model_json,
                    struct err *e) {
  if (!model_json || !*model_json)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "Missing value for required parameter 'model_json'. See the API docs for more information "
                   "about request parameters.");
  if (strlen(model_json) > TRACKING_MAX_MODEL_JSON_BYTES)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "model_json is larger than %d bytes", TRACKING_MAX_MODEL_JSON_BYTES);
  json_error_t je;
  json_t *m = json_loads(model_json, JSON_REJECT_DUPLICATES, &je);
  if (!json_is_object(m)) {
    json_decref(m);
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Malformed model info. \n %.200s \n is not a valid JSON.",
                   model_json);
  }
  /* MLflow's check: the fields an MLmodel always has */
  const char *need[] = {"artifact_path", "flavors", "utc_time_created", "run_id"};
  for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
    if (!json_object_get(m, need[i])) {
      json_decref(m);
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Model json is missing mandatory fields: ['%s']", need[i]);
    }
  struct model_job j = {.project_id = project_id, .run_id = run_id, .model = m};
  int rc = db_write(db, model_job, &j, e);
  json_decref(m);
  return rc;
}
