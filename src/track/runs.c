/* track/runs: runs and what is logged to them — params (immutable once
 * logged), tags, the metric history and each key's latest value — plus the
 * run lifecycle. Every write of one call is one store job. */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG_RUN_NAME "mlflow.runName"
#define TAG_USER "mlflow.user"

json_t *track_kv_list_text(struct db_conn *c, const char *sql, const char *id, struct err *e);

/* ---- rows and entities ---------------------------------------------------------- */

int track_run_load(struct db_conn *c, const char *project_id, const char *run_id, struct track_run *out,
                 struct err *e) {
  struct db_stmt *s = db_prepare(c,
                                 "SELECT experiment_id, lifecycle_stage FROM runs"
                                 " WHERE run_uuid = ? AND project_id = ?",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, run_id);
  db_bind_text(s, 2, project_id);
  int rc = db_step(s, e);
  if (rc == DB_ROW) {
    str_copy(out->id, sizeof out->id, run_id);
    out->experiment_id = db_col_i64(s, 0);
    out->active = str_eq(db_col_text(s, 1), TRK_LIFECYCLE_ACTIVE);
    rc = 0;
  } else if (rc == DB_DONE) {
    rc = err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Run with id=%.64s not found", run_id ? run_id : "");
  }
  db_stmt_done(s);
  return rc;
}

int track_run_check_active(const struct track_run *r, struct err *e) {
  if (r->active) return 0;
  return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                 "The run %s must be in the 'active' state. Current state is deleted.", r->id);
}

json_t *track_metric_value_json(double v, bool is_nan) {
  if (is_nan || isnan(v)) return json_string("NaN");
  if (isinf(v)) return json_string(v > 0 ? "Infinity" : "-Infinity");
  return json_real(v);
}

json_t *track_run_info_json(struct db_conn *c, const char *run_id, struct err *e) {
  struct db_stmt *s = db_prepare(c,
                                 "SELECT experiment_id, name, user_id, status, start_time, end_time,"
                                 " artifact_uri, lifecycle_stage FROM runs WHERE run_uuid = ?",
                                 e);
  if (!s) return NULL;
  db_bind_text(s, 1, run_id);
  int rc = db_step(s, e);
  if (rc != DB_ROW) {
    db_stmt_done(s);
    if (rc == DB_DONE) err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Run with id=%.64s not found", run_id);
    return NULL;
  }
  char exp[24];
  snprintf(exp, sizeof exp, "%lld", (long long)db_col_i64(s, 0));
  json_t *o = json_pack("{s:s, s:s}", "run_uuid", run_id, "experiment_id", exp);
  const char *name = db_col_text(s, 1), *user = db_col_text(s, 2);
  if (name && *name) json_object_set_new(o, "run_name", json_string(name));
  if (user && *user) json_object_set_new(o, "user_id", json_string(user));
  json_object_set_new(o, "status", json_string(db_col_text(s, 3)));
  if (!db_col_null(s, 4)) json_object_set_new(o, "start_time", json_integer(db_col_i64(s, 4)));
  if (!db_col_null(s, 5)) json_object_set_new(o, "end_time", json_integer(db_col_i64(s, 5)));
  const char *au = db_col_text(s, 6);
  if (au && *au) json_object_set_new(o, "artifact_uri", json_string(au));
  json_object_set_new(o, "lifecycle_stage", json_string(db_col_text(s, 7)));
  json_object_set_new(o, "run_id", json_string(run_id));
  db_stmt_done(s);
  return o;
}

static json_t *latest_metrics_json(struct db_conn *c, const char *run_id, struct err *e) {
  struct db_stmt *s = db_prepare(c,
                                 "SELECT key, value, timestamp, step, is_nan FROM latest_metrics"
                                 " WHERE run_uuid = ? ORDER BY key",
                                 e);
  if (!s) return NULL;
  db_bind_text(s, 1, run_id);
  json_t *arr = json_array();
  int rc;
  while ((rc = db_step(s, e)) == DB_ROW) {
    json_array_append_new(arr, json_pack("{s:s, s:o, s:I, s:I}", "key", db_col_text(s, 0), "value",
                                         track_metric_value_json(db_col_f64(s, 1), db_col_i64(s, 4) != 0),
                                         "timestamp", (json_int_t)db_col_i64(s, 2), "step",
                                         (json_int_t)db_col_i64(s, 3)));
  }
  db_stmt_done(s);
  if (rc < 0) {
    json_decref(arr);
    return NULL;
  }
  return arr;
}

json_t *track_run_json(struct db_conn *c, const char *run_id, struct err *e) {
  json_t *info = track_run_info_json(c, run_id, e);
  if (!info) return NULL;
  json_t *metrics = latest_metrics_json(c, run_id, e);
  json_t *params = metrics ? track_kv_list_text(c, "SELECT key, value FROM params WHERE run_uuid = ? ORDER BY key",
                                              run_id, e)
                           : NULL;
  json_t *tags = params ? track_kv_list_text(c, "SELECT key, value FROM tags WHERE run_uuid = ? ORDER BY key",
                                           run_id, e)
                        : NULL;
  if (!tags) {
    json_decref(info);
    json_decref(metrics);
    json_decref(params);
    return NULL;
  }
  json_t *data = json_object();
  json_t *parts[] = {metrics, params, tags};
  const char *names[] = {"metrics", "params", "tags"};
  for (int i = 0; i < 3; i++) {
    if (json_array_size(parts[i])) json_object_set_new(data, names[i], parts[i]);
    else json_decref(parts[i]);
  }
  json_t *inputs = track_run_inputs_json(c, run_id, e);
  json_t *outputs = inputs ? track_run_outputs_json(c, run_id, e) : NULL;
  if (!outputs) {
    json_decref(info);
    json_decref(data);
    json_decref(inputs);
    return NULL;
  }
  return json_pack("{s:o, s:o, s:o, s:o}", "info", info, "data", data, "inputs", inputs, "outputs", outputs);

}

/* ---- reads -------------------------------------------------------------------------- */

json_t *track_run_get(struct db *db, const char *project_id, const char *run_id, struct err *e) {
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  struct track_run r;
  json_t *o = NULL;
  if (track_run_load(c, project_id, run_id, &r, e) == 0) o = track_run_json(c, run_id, e);
  db_reader_release(db, c);
  return o;
}

json_t *track_metric_history(struct db *db, const char *project_id, const char *run_id,
                                const char *key, int64_t max_results, const char *page_token,
                                char next[TRACKING_PAGE_TOKEN_MAX], struct err *e) {
  next[0] = 0;
  int64_t offset = 0;
  if (page_token && *page_token && track_page_token_decode(page_token, &offset, e)) return NULL;
  if (max_results < 0 || max_results > TRACKING_MAX_HISTORY_RESULTS) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE,
            "Invalid value for request parameter max_results. It must be at most %d, but got value %lld",
            TRACKING_MAX_HISTORY_RESULTS, (long long)max_results);
    return NULL;
  }
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  struct track_run r;
  json_t *arr = NULL;
  if (track_run_load(c, project_id, run_id, &r, e)) goto out;
  struct track_series_it it;
  if (track_series_open(&it, c, run_id, key, TRACK_SERIES_ALL, 0, 0, offset, e)) goto out;
  arr = json_array();
  int64_t n = 0;
  struct track_point p;
  int rc;
  while ((rc = track_series_next(&it, &p, e)) == 1) {
    if (max_results > 0 && n == max_results) {
      track_page_token_encode(offset + n, next);
      break;
    }
    json_array_append_new(arr, json_pack("{s:s, s:o, s:I, s:I}", "key", key, "value",
                                         track_metric_value_json(p.v, p.nan), "timestamp", (json_int_t)p.ts, "step",
                                         (json_int_t)p.step));
    n++;
  }
  track_series_close(&it);
  if (rc < 0) {
    json_decref(arr);
    arr = NULL;
  }
out:
  db_reader_release(db, c);
  return arr;
}

/* ---- creation ---------------------------------------------------------------------------- */

static const char *kv_find(const struct track_kv *kv, int n, const char *key) {
  for (int i = 0; i < n; i++)
    if (str_eq(kv[i].key, key)) return kv[i].value ? kv[i].value : "";
  return NULL;
}

/* Tag values longer than the limit are cut (at a character boundary), as
 * MLflow does while MLFLOW_TRUNCATE_LONG_VALUES is on, its default. */
static int tag_upsert(struct db_conn *c, const char *run_id, const char *key, const char *value,
                      struct err *e) {
  const char *v = value ? value : "";
  size_t n = track_utf8_prefix(v, TRACKING_MAX_TAG_VALUE_LEN);
  struct db_stmt *s = db_prepare(c,
                                 "INSERT INTO tags (run_uuid, key, value) VALUES (?, ?, ?)"
                                 " ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, run_id);
  db_bind_text(s, 2, key);
  db_bind_textn(s, 3, v, n);
  int rc = db_step(s, e);
  db_stmt_done(s);
  if (rc < 0) return rc;
  /* the run's name and its mlflow.runName tag are one thing */
  if (str_eq(key, TAG_RUN_NAME)) {
    s = db_prepare(c, "UPDATE runs SET name = ? WHERE run_uuid = ?", e);
    if (!s) return -ERR_INTERNAL;
    db_bind_textn(s, 1, v, n);
    db_bind_text(s, 2, run_id);
    rc = db_step(s, e);
    db_stmt_done(s);
  }
  return rc < 0 ? rc : 0;
}

struct run_create_job {
  const char *project_id;
  int64_t experiment_id;
  const char *shown, *user_id, *run_name;
  int64_t start_time;
  const struct track_kv *tags;
  int ntags;
  char run_id[TRACKING_RUN_ID_LEN + 1];
  json_t *out;
};

static int run_create_job(struct db_conn *c, void *arg, struct err *e) {
  struct run_create_job *j = arg;
  struct track_exp x;
  int rc = track_exp_load(c, j->project_id, j->experiment_id, j->shown, &x, e);
  if (rc) return rc;
  if (!x.active)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "The experiment %lld must be in the 'active' state. Current state is deleted.",
                   (long long)x.id);
  id_random_hex(j->run_id, TRACKING_RUN_ID_LEN / 2);
  char uri[1200];
  snprintf(uri, sizeof uri, "%s/%s/artifacts", x.artifact_location, j->run_id);
  rc = track_exec(c,
                "INSERT INTO runs (run_uuid, experiment_id, project_id, name, user_id, status,"
                " start_time, end_time, lifecycle_stage, artifact_uri, deleted_time)"
                " VALUES (?, ?, ?, ?, ?, 'RUNNING', ?, NULL, 'active', ?, NULL)",
                e, "sisssis", j->run_id, x.id, j->project_id, j->run_name,
                j->user_id, j->start_time, uri);
  for (int i = 0; i < j->ntags && !rc; i++) rc = tag_upsert(c, j->run_id, j->tags[i].key, j->tags[i].value, e);
  if (!rc && !kv_find(j->tags, j->ntags, TAG_RUN_NAME)) rc = tag_upsert(c, j->run_id, TAG_RUN_NAME, j->run_name, e);
  if (!rc && !kv_find(j->tags, j->ntags, TAG_USER) && j->user_id && *j->user_id)
    rc = tag_upsert(c, j->run_id, TAG_USER, j->user_id, e);
  if (rc) return rc;
  j->out = track_run_json(c, j->run_id, e);
  return j->out ? 0 : -ERR_INTERNAL;
}

static int check_tags(const struct track_kv *tags, int n, struct err *e) {
  for (int i = 0; i < n; i++) {
    int rc = track_key_check(TRACKING_KEY_TAG, tags[i].key, e);
    if (rc) return rc;
  }
  return 0;
}

json_t *track_run_create(struct db *db, const char *project_id, const struct track_run_new *in,
                            struct err *e) {
  if (check_tags(in->tags, in->ntags, e)) return NULL;
  const char *tag_name = kv_find(in->tags, in->ntags, TAG_RUN_NAME);
  const char *name = in->run_name && *in->run_name ? in->run_name : NULL;
  if (name && tag_name && !str_eq(name, tag_name)) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE,
            "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different "
            "values (run_name='%.80s', mlflow.runName='%.80s').",
            name, tag_name);
    return NULL;
  }
  char generated[64];
  if (!name && tag_name && *tag_name) name = tag_name;
  if (!name) {
    track_run_name_generate(generated);
    name = generated;
  }
  const char *exp_text = in->experiment_id && *in->experiment_id ? in->experiment_id : TRACKING_DEFAULT_EXPERIMENT_ID;
  struct run_create_job j = {.project_id = project_id, .shown = exp_text, .user_id = in->user_id,
                             .run_name = name, .start_time = in->start_time ? in->start_time : time_wall_ms(),
                             .tags = in->tags, .ntags = in->ntags};
  if (track_experiment_resolve(db, project_id, exp_text, &j.experiment_id, e)) return NULL;
  if (db_write(db, run_create_job, &j, e)) {
    json_decref(j.out);
    return NULL;
  }
  return j.out;
}

/* ---- lifecycle and updates ------------------------------------------------------------------- *
 * A run's lifecycle stage:
 *
 *      create ──> active ──delete──> deleted ──restore──> active
 *
 * delete and restore are idempotent (MLflow does not check the stage);
 * anything that logs to, tags or updates a run needs it active. Deleting
 * an experiment deletes its active runs; restoring it restores them. */
enum run_op { RUN_UPDATE, RUN_DELETE, RUN_RESTORE, RUN_TAG_DELETE };

struct run_job {
  enum run_op op;
  const char *project_id, *run_id, *key;
  const struct track_run_update *u;
  json_t *out;
};

static int run_job(struct db_conn *c, void *arg, struct err *e) {
  struct run_job *j = arg;
  struct track_run r;
  int rc = track_run_load(c, j->project_id, j->run_id, &r, e);
  if (rc) return rc;
  switch (j->op) {
  case RUN_UPDATE:
    if ((rc = track_run_check_active(&r, e))) return rc;
    if (j->u->status)
      rc = track_exec(c, "UPDATE runs SET status = ? WHERE run_uuid = ?", e, "ss",
                    track_status_name(j->u->status), j->run_id);
    if (!rc && j->u->end_time)
      rc = track_exec(c, "UPDATE runs SET end_time = ? WHERE run_uuid = ?", e, "is", j->u->end_time, j->run_id);
    if (!rc && j->u->run_name && *j->u->run_name) rc = tag_upsert(c, j->run_id, TAG_RUN_NAME, j->u->run_name, e);
    if (rc) return rc;
    j->out = track_run_info_json(c, j->run_id, e);
    return j->out ? 0 : -ERR_INTERNAL;
  case RUN_DELETE:
    return track_exec(c, "UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = ? WHERE run_uuid = ?", e,
                    "is", time_wall_ms(), j->run_id);
  case RUN_RESTORE:
    return track_exec(c, "UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL WHERE run_uuid = ?", e,
                    "s", j->run_id);
  case RUN_TAG_DELETE:
    if ((rc = track_run_check_active(&r, e))) return rc;
    if ((rc = track_exec(c, "DELETE FROM tags WHERE run_uuid = ? AND key = ?", e, "ss", j->run_id, j->key)))
      return rc;
    if (db_changes(c) == 0)
      return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "No tag with name: %.200s in run with id %s", j->key,
                     j->run_id);
    return 0;
  }
  return err_set(e, ERR_INTERNAL, "unknown run operation");
}

json_t *track_run_update(struct db *db, const char *project_id, const char *run_id,
                            const struct track_run_update *u, struct err *e) {
  if (u->end_time < 0) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "end_time must be a nonnegative long (64-bit integer)");
    return NULL;
  }
  if (u->run_name && track_utf8_chars(u->run_name) > TRACKING_MAX_TAG_VALUE_LEN) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "run_name is longer than %d characters", TRACKING_MAX_TAG_VALUE_LEN);
    return NULL;
  }
  struct run_job j = {.op = RUN_UPDATE, .project_id = project_id, .run_id = run_id, .u = u};
  if (db_write(db, run_job, &j, e)) {
    json_decref(j.out);
    return NULL;
  }
  if (u->status) track_events_status(run_id, track_status_name(u->status));
  return j.out;

}

int track_run_delete(struct db *db, const char *project_id, const char *run_id, struct err *e) {
  struct run_job j = {.op = RUN_DELETE, .project_id = project_id, .run_id = run_id};
  int rc = db_write(db, run_job, &j, e);
  if (!rc) track_events_sweep_deleted(db); /* its live streams end */
  return rc;
}

int track_run_restore(struct db *db, const char *project_id, const char *run_id, struct err *e) {
  struct run_job j = {.op = RUN_RESTORE, .project_id = project_id, .run_id = run_id};
  return db_write(db, run_job, &j, e);
}

int track_run_tag_delete(struct db *db, const char *project_id, const char *run_id,
                            const char *key, struct err *e) {
  struct run_job j = {.op = RUN_TAG_DELETE, .project_id = project_id, .run_id = run_id, .key = key};
  return db_write(db, run_job, &j, e);
}

/* ---- logging ------------------------------------------------------------------------------------ */

struct batch_job {
  const char *project_id, *run_id;
  const struct track_batch *b;
  const char **param_values;         /* truncated copies */
  const struct track_metric *sorted; /* the metrics by key, then (step, timestamp, value) */
};

/* Python's repr of a str, near enough for MLflow's message. */
static void py_repr(struct buf *o, const char *s) {
  buf_putc(o, '\'');
  for (; *s; s++) {
    if (*s == '\'' || *s == '\\') buf_putc(o, '\\');
    buf_putc(o, *s);
  }
  buf_putc(o, '\'');
}

static int log_params(struct db_conn *c, struct batch_job *j, struct err *e) {
  const struct track_batch *b = j->b;
  struct buf mismatch;
  buf_init(&mismatch);
  int nmis = 0, rc = 0;
  const char *first_old = NULL;
  int first_i = -1;
  for (int i = 0; i < b->nparams && !rc; i++) {
    struct db_stmt *s = db_prepare(c, "SELECT value FROM params WHERE run_uuid = ? AND key = ?", e);
    if (!s) {
      rc = -ERR_INTERNAL;
      break;
    }
    db_bind_text(s, 1, j->run_id);
    db_bind_text(s, 2, b->params[i].key);
    int st = db_step(s, e);
    if (st == DB_ROW) {
      const char *old = db_col_text(s, 0);
      if (!str_eq(old ? old : "", j->param_values[i])) {
        buf_puts(&mismatch, nmis ? ", {'key': " : "{'key': ");
        py_repr(&mismatch, b->params[i].key);
        buf_puts(&mismatch, ", 'old_value': ");
        py_repr(&mismatch, old ? old : "");
        buf_puts(&mismatch, ", 'new_value': ");
        py_repr(&mismatch, j->param_values[i]);
        buf_putc(&mismatch, '}');
        if (!nmis) {
          first_i = i;
          first_old = old ? strdup(old) : strdup("");
        }
        nmis++;
      }
      db_stmt_done(s);
      continue;
    }
    db_stmt_done(s);
    if (st < 0) {
      rc = st;
      break;
    }
    rc = track_exec(c, "INSERT INTO params (run_uuid, key, value) VALUES (?, ?, ?)", e, "sss", j->run_id,
                  b->params[i].key, j->param_values[i]);
  }
  if (!rc && nmis) {
    if (b->single_param)
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "Changing param values is not allowed. Param with key='%.100s' was already logged "
                   "with value='%.40s' for run ID='%s'. Attempted logging new value '%.40s'.",
                   b->params[first_i].key, first_old, j->run_id, j->param_values[first_i]);
    else
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "Changing param values is not allowed. Params were already logged='[%.120s]' for run "
                   "ID='%s'.",
                   mismatch.data ? mismatch.data : "", j->run_id);
  }
  free((void *)first_old);
  buf_fini(&mismatch);
  return rc;
}

static void bind_point(struct db_stmt *s, const char *run_id, const struct track_metric *m) {
  struct track_point p = track_point_of(m);
  db_bind_text(s, 1, run_id);
  db_bind_text(s, 2, m->key);
  db_bind_f64(s, 3, p.v);
  db_bind_i64(s, 4, p.ts);
  db_bind_i64(s, 5, p.step);
  db_bind_i64(s, 6, p.nan);
}

static int log_metrics(struct db_conn *c, struct batch_job *j, struct err *e) {
  int n = j->b->nmetrics;
  if (n == 0) return 0;
  int rc = track_series_write(c, j->run_id, j->sorted, n, e);
  /* MLflow's rule, against what is stored: step, then timestamp, then value */
  struct db_stmt *up = rc ? NULL
                          : db_prepare(c,
                                       "INSERT INTO latest_metrics (run_uuid, key, value, timestamp, step, is_nan)"
                                       " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_uuid, key) DO UPDATE SET"
                                       " value = excluded.value, timestamp = excluded.timestamp, step = excluded.step,"
                                       " is_nan = excluded.is_nan"
                                       " WHERE excluded.step > latest_metrics.step OR (excluded.step = latest_metrics.step"
                                       " AND (excluded.timestamp > latest_metrics.timestamp OR (excluded.timestamp ="
                                       " latest_metrics.timestamp AND excluded.value >= latest_metrics.value)))",
                                       e);
  if (!rc && !up) rc = -ERR_INTERNAL;
  /* a key's last point in the sorted call is its best: one upsert a key */
  for (int i = 0; i < n && !rc; i++) {
    if (i + 1 < n && str_eq(j->sorted[i + 1].key, j->sorted[i].key)) continue;
    bind_point(up, j->run_id, &j->sorted[i]);
    int st = db_step(up, e);
    db_stmt_reset(up);
    if (st < 0) rc = st;
  }
  if (up) db_stmt_done(up);
  return rc;
}

static int batch_job(struct db_conn *c, void *arg, struct err *e) {
  struct batch_job *j = arg;
  struct track_run r;
  int rc = track_run_load(c, j->project_id, j->run_id, &r, e);
  if (!rc) rc = track_run_check_active(&r, e);
  if (!rc) rc = log_params(c, j, e);
  for (int i = 0; i < j->b->ntags && !rc; i++) rc = tag_upsert(c, j->run_id, j->b->tags[i].key, j->b->tags[i].value, e);
  if (!rc) rc = log_metrics(c, j, e);
  return rc;
}

static int batch_validate(const struct track_batch *b, struct err *e) {
  struct {
    const char *what;
    int n, limit;
  } lim[] = {{"metrics", b->nmetrics, TRACKING_MAX_METRICS_PER_BATCH},
             {"params", b->nparams, TRACKING_MAX_PARAMS_PER_BATCH},
             {"tags", b->ntags, TRACKING_MAX_TAGS_PER_BATCH},
             {"metrics, params, and tags", b->nmetrics + b->nparams + b->ntags, TRACKING_MAX_ENTITIES_PER_BATCH}};
  for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++)
    if (lim[i].n > lim[i].limit)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "A batch logging request can contain at most %d %s. Got %d %s. Please split up %s "
                     "across multiple requests and try again.",
                     lim[i].limit, lim[i].what, lim[i].n, lim[i].what, lim[i].what);
  int rc;
  for (int i = 0; i < b->nmetrics; i++) {
    const struct track_metric *m = &b->metrics[i];
    if ((rc = track_key_check(TRACKING_KEY_METRIC, m->key, e))) return rc;
    if (m->timestamp < 0)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "Got invalid timestamp %lld for metric '%.200s' (value=%g). Timestamp must be a "
                     "nonnegative long (64-bit integer) ",
                     (long long)m->timestamp, m->key, m->value);
  }
  for (int i = 0; i < b->nparams; i++)
    if ((rc = track_key_check(TRACKING_KEY_PARAM, b->params[i].key, e))) return rc;
  for (int i = 0; i < b->ntags; i++)
    if ((rc = track_key_check(TRACKING_KEY_TAG, b->tags[i].key, e))) return rc;
  /* one value per param key in a call */
  for (int i = 0; i < b->nparams; i++)
    for (int k = 0; k < i; k++)
      if (str_eq(b->params[i].key, b->params[k].key))
        return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                       "Duplicate parameter keys have been submitted: ['%.200s']. Please ensure the "
                       "request contains only one param value per param key.",
                       b->params[i].key);
  return 0;
}

int track_log_batch(struct db *db, const char *project_id, const char *run_id,
                       const struct track_batch *b, struct err *e) {
  int rc = batch_validate(b, e);
  if (rc) return rc;
  const char **pv = calloc((size_t)b->nparams + 1, sizeof *pv);
  struct track_metric *sorted = malloc(((size_t)b->nmetrics + 1) * sizeof *sorted);
  if (!pv || !sorted) {
    free(pv);
    free(sorted);
    return err_set(e, ERR_NO_MEMORY, "out of memory for a batch of %d metrics", b->nmetrics);
  }
  for (int i = 0; i < b->nparams; i++) {
    const char *v = b->params[i].value ? b->params[i].value : "";
    pv[i] = strndup(v, track_utf8_prefix(v, TRACKING_MAX_PARAM_VALUE_LEN));
    if (!pv[i]) rc = err_set(e, ERR_NO_MEMORY, "out of memory");
  }
  /* sorted here, on the request's thread, so the single writer only
   * writes: each key's points are one group, its last point the latest */
  if (!rc) rc = track_series_sort(b->metrics, b->nmetrics, sorted, e);
  struct batch_job j = {.project_id = project_id, .run_id = run_id, .b = b, .param_values = pv, .sorted = sorted};
  if (!rc) rc = db_write(db, batch_job, &j, e);
  if (!rc && b->nmetrics) track_events_metrics(run_id, b->metrics, b->nmetrics); /* live subscribers */
  for (int i = 0; i < b->nparams; i++) free((void *)pv[i]);
  free(pv);
  free(sorted);
  return rc;
}
