/* track/artifacts: the artifact proxy's bookkeeping — path rules, which
 * experiment and run a path lies under (tenancy), path -> blob rows holding
 * blob references, directory listings over flat rows, multipart uploads, and
 * permanent deletion of deleted runs and experiments. No bytes move here:
 * the HTTP side streams them through the blob store. */
#include "internal.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bound of a prefix range: no valid UTF-8 byte is 0xFF, so every path
 * starting with prefix sorts below prefix + "\xff". */
#define ART_HIGH "\xff"
/* GC works in batches so one job never holds the writer for long. */
#define ART_GC_BATCH 128

/* A malloc'd formatted string (NULL when out of memory). */
static char *art_printf(const char *fmt, ...) KILN_PRINTF(1, 2);
static char *art_printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  char *p = malloc((size_t)n + 1);
  if (!p) return NULL;
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return p;
}

/* ---- paths ------------------------------------------------------------------------ */

/* Length of the UTF-8 sequence at p (1..4), 0 when malformed. */
static size_t utf8_seq(const unsigned char *p) {
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0) n = 2, cp = c & 0x1F;
  else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F;
  else if ((c & 0xF8) == 0xF0) n = 4, cp = c & 0x07;
  else return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

int track_artifact_path_check(const char *path, bool allow_empty, struct err *e) {
  if (!path || !*path) {
    if (allow_empty) return 0;
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "An artifact path is required");
  }
  size_t len = strlen(path);
  if (len > TRACKING_ARTIFACT_PATH_MAX)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Artifact path is longer than %d bytes",
                   TRACKING_ARTIFACT_PATH_MAX);
  if (path[0] == '/')
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid artifact path: absolute paths are not allowed");
  const unsigned char *p = (const unsigned char *)path;
  for (size_t i = 0; i < len;) {
    if (p[i] < 0x20 || p[i] == 0x7F)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "Invalid artifact path: control characters are not allowed");
    if (p[i] == '\\')
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid artifact path: backslashes are not allowed");
    size_t n = utf8_seq(p + i);
    if (!n) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid artifact path: not valid UTF-8");
    i += n;
  }
  for (const char *seg = path;;) {
    const char *end = strchr(seg, '/');
    size_t n = end ? (size_t)(end - seg) : strlen(seg);
    if (n == 0)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid artifact path: empty path segment");
    if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "Invalid artifact path: '.' and '..' segments are not allowed");
    if (!end) break;
    seg = end + 1;
  }
  return 0;
}

/* Where a checked path lies: the experiment (the project's), the rest, and
 * the run when the rest starts with a run id, or the logged model when it
 * starts with models/<model_id>. */
#define ART_MODEL_ID_MAX 64
struct art_loc {
  int64_t exp;
  const char *rest; /* points into the path; "" for the experiment's root */
  char run[TRACKING_RUN_ID_LEN + 1];
  char model[ART_MODEL_ID_MAX];
};

/* "models/<id>[/...]": the model must be one of this experiment's (and the
 * project's, not deleted); "models" alone is the experiment's directory. */
static int art_locate_model(struct db_conn *c, const char *project_id, struct art_loc *out, struct err *e) {
  const char *id = out->rest + 7; /* after "models/" */
  const char *end = strchr(id, '/');
  size_t n = end ? (size_t)(end - id) : strlen(id);
  if (n == 0 || n >= sizeof out->model)
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Logged model with ID '%.*s' not found.", (int)(n < 80 ? n : 80), id);
  memcpy(out->model, id, n);
  out->model[n] = 0;
  int64_t exp = 0;
  int rc = track_model_load(c, project_id, out->model, &exp, e);
  if (rc) return rc;
  if (exp != out->exp)
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Logged model with ID '%s' not found.", out->model);
  return 0;
}

static int art_locate(struct db_conn *c, const char *project_id, const char *path,
                      struct art_loc *out, struct err *e) {
  memset(out, 0, sizeof *out);
  const char *slash = strchr(path, '/');
  char first[24];
  size_t n = slash ? (size_t)(slash - path) : strlen(path);
  if (n >= sizeof first) n = sizeof first - 1;
  memcpy(first, path, n);
  first[n] = 0;
  /* "0" is an alias in the tracking API only: artifact URIs carry real ids */
  if (!track_exp_id_parse(first, &out->exp) || out->exp == 0)
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "No Experiment with id=%s exists", first);
  struct track_exp x;
  int rc = track_exp_load(c, project_id, out->exp, first, &x, e);
  if (rc) return rc;
  out->rest = slash ? slash + 1 : "";
  if (strncmp(out->rest, "models/", 7) == 0) return art_locate_model(c, project_id, out, e);
  const char *rs = strchr(out->rest, '/');
  size_t rl = rs ? (size_t)(rs - out->rest) : strlen(out->rest);
  if (rl == TRACKING_RUN_ID_LEN) {
    char id[TRACKING_RUN_ID_LEN + 1];
    memcpy(id, out->rest, rl);
    id[rl] = 0;
    if (track_run_id_valid(id)) {
      struct track_run r;
      if ((rc = track_run_load(c, project_id, id, &r, e))) return rc;
      if (r.experiment_id != out->exp)
        return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Run with id=%s not found", id);
      memcpy(out->run, id, sizeof out->run);
    }
  }
  return 0;
}

/* ---- rows ------------------------------------------------------------------------- */

/* The row of exactly this path: DB_ROW with sha (and size), DB_DONE, or <0. */
static int art_row(struct db_conn *c, int64_t exp, const char *rest, char sha[65], uint64_t *size,
                   struct err *e) {
  struct db_stmt *s = db_prepare(c, "SELECT sha256, size FROM artifacts WHERE experiment_id = ? AND path = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, exp);
  db_bind_text(s, 2, rest);
  int rc = db_step(s, e);
  if (rc == DB_ROW) {
    if (sha) str_copy(sha, 65, db_col_text(s, 0) ? db_col_text(s, 0) : "");
    if (size) *size = (uint64_t)db_col_i64(s, 1);
  }
  db_stmt_done(s);
  return rc;
}

/* Whether some file lies under dir/ (rest + "/"). */
static int art_has_children(struct db_conn *c, int64_t exp, const char *rest, struct err *e) {
  struct db_stmt *s = db_prepare(c,
                                 "SELECT 1 FROM artifacts WHERE experiment_id = ? AND path > ? AND path < ?"
                                 " LIMIT 1",
                                 e);
  if (!s) return -ERR_INTERNAL;
  char *lo = rest[0] ? art_printf("%s/", rest) : art_printf("%s", "");
  char *hi = art_printf("%s" ART_HIGH, lo ? lo : "");
  int rc = -ERR_NO_MEMORY;
  if (lo && hi) {
    db_bind_i64(s, 1, exp);
    db_bind_text(s, 2, lo);
    db_bind_text(s, 3, hi);
    rc = db_step(s, e);
    db_stmt_done(s);
  }
  free(lo);
  free(hi);
  return rc;
}

struct put_job {
  const char *project_id, *path, *sha;
};

static int put_fn(struct db_conn *c, void *arg, struct err *e) {
  struct put_job *j = arg;
  struct art_loc l;
  int rc = art_locate(c, j->project_id, j->path, &l, e);
  if (rc) return rc;
  if (!l.rest[0])
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "An artifact path must name a file under an experiment");
  /* a file cannot also be a directory: no file may be a parent of this one */
  size_t rl = strlen(l.rest);
  char *parent = malloc(rl + 1);
  if (!parent) return err_set(e, ERR_NO_MEMORY, NULL);
  memcpy(parent, l.rest, rl + 1);
  for (char *q = parent; (q = strchr(q, '/')); q++) {
    *q = 0;
    rc = art_row(c, l.exp, parent, NULL, NULL, e);
    *q = '/';
    if (rc < 0) break;
    if (rc == DB_ROW) {
      *q = 0;
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid artifact path: '%s' is a file", parent);
      break;
    }
    rc = 0;
  }
  free(parent);
  if (rc < 0) return rc;
  if ((rc = art_has_children(c, l.exp, l.rest, e)) < 0) return rc;
  if (rc == DB_ROW)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid artifact path: '%s' is a directory", l.rest);
  struct db_stmt *s = db_prepare(c, "SELECT size FROM blobs WHERE sha256 = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, j->sha);
  rc = db_step(s, e);
  int64_t size = rc == DB_ROW ? db_col_i64(s, 0) : 0;
  db_stmt_done(s);
  if (rc < 0) return rc;
  if (rc == DB_DONE) return err_set(e, ERR_INTERNAL, "blob %s vanished before it was referenced", j->sha);
  char old[65];
  rc = art_row(c, l.exp, l.rest, old, NULL, e);
  if (rc < 0) return rc;
  bool had = rc == DB_ROW;
  if (had && str_eq(old, j->sha)) return 0; /* the same bytes again */
  if ((rc = blob_ref(c, j->sha, e))) return rc;
  if (had && (rc = blob_unref(c, old, e))) return rc;
  return track_exec(c,
                  "INSERT INTO artifacts (experiment_id, path, run_uuid, model_id, sha256, size, created_at)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (experiment_id, path) DO UPDATE SET"
                  " sha256 = excluded.sha256, size = excluded.size, created_at = excluded.created_at",
                  e, "issssii", l.exp, l.rest, l.run[0] ? l.run : NULL, l.model[0] ? l.model : NULL, j->sha,
                  size, time_wall_ms());
}

int track_artifact_put(struct db *db, const char *project_id, const char *path,
                       const char *sha256, struct err *e) {
  int rc = track_artifact_path_check(path, false, e);
  if (rc) return rc;
  struct put_job j = {project_id, path, sha256};
  return db_write(db, put_fn, &j, e);
}

int track_artifact_target_check(struct db *db, const char *project_id, const char *path,
                                struct err *e) {
  int rc = track_artifact_path_check(path, false, e);
  if (rc) return rc;
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -ERR_UNAVAILABLE;
  struct art_loc l;
  rc = art_locate(c, project_id, path, &l, e);
  db_reader_release(db, c);
  if (rc == 0 && !l.rest[0])
    rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "An artifact path must name a file under an experiment");
  return rc;
}

int track_artifact_get(struct db *db, const char *project_id, const char *path,
                       struct track_artifact *out, struct err *e) {
  int rc = track_artifact_path_check(path, false, e);
  if (rc) return rc;
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -ERR_UNAVAILABLE;
  struct art_loc l;
  rc = art_locate(c, project_id, path, &l, e);
  if (rc == 0) {
    rc = art_row(c, l.exp, l.rest, out->sha256, &out->size, e);
    if (rc == DB_DONE) rc = err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "No artifact at path '%.200s'", path);
    else if (rc == DB_ROW) rc = 0;
  }
  db_reader_release(db, c);
  return rc;
}

/* Drops rows (and their blob references) chosen by `where` over artifacts. */
static int art_drop(struct db_conn *c, const char *where, int64_t exp, const char *a,
                    const char *b, int64_t *count, struct err *e) {
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT sha256 FROM artifacts WHERE %s", where);
  struct db_stmt *s = db_prepare(c, sql, e);
  if (!s) return -ERR_INTERNAL;
  int k = 1;
  if (exp >= 0) db_bind_i64(s, k++, exp);
  if (a) db_bind_text(s, k++, a);
  if (b) db_bind_text(s, k++, b);
  int rc;
  size_t n = 0, cap = 0;
  char (*shas)[65] = NULL;
  while ((rc = db_step(s, e)) == DB_ROW) {
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      void *nv = realloc(shas, cap * sizeof *shas);
      if (!nv) {
        rc = err_set(e, ERR_NO_MEMORY, NULL);
        break;
      }
      shas = nv;
    }
    str_copy(shas[n++], 65, db_col_text(s, 0) ? db_col_text(s, 0) : "");
  }
  db_stmt_done(s);
  for (size_t i = 0; rc >= 0 && i < n; i++) rc = blob_unref(c, shas[i], e);
  free(shas);
  if (rc < 0) return rc;
  snprintf(sql, sizeof sql, "DELETE FROM artifacts WHERE %s", where);
  s = db_prepare(c, sql, e);
  if (!s) return -ERR_INTERNAL;
  k = 1;
  if (exp >= 0) db_bind_i64(s, k++, exp);
  if (a) db_bind_text(s, k++, a);
  if (b) db_bind_text(s, k++, b);
  rc = db_step(s, e);
  if (rc < 0) return rc;
  if (count) *count += (int64_t)n;
  return 0;
}

struct del_job {
  const char *project_id, *path;
  int64_t removed;
};

static int del_fn(struct db_conn *c, void *arg, struct err *e) {
  struct del_job *j = arg;
  j->removed = 0;
  struct art_loc l;
  int rc = art_locate(c, j->project_id, j->path, &l, e);
  if (rc) return rc;
  if (l.rest[0] && (rc = art_drop(c, "experiment_id = ? AND path = ?", l.exp, l.rest, NULL, &j->removed, e)))
    return rc;
  if (j->removed == 0) { /* a directory: everything under it */
    char *lo = l.rest[0] ? art_printf("%s/", l.rest) : art_printf("%s", "");
    char *hi = lo ? art_printf("%s" ART_HIGH, lo) : NULL;
    rc = lo && hi ? art_drop(c, "experiment_id = ? AND path > ? AND path < ?", l.exp, lo, hi, &j->removed, e)
                  : err_set(e, ERR_NO_MEMORY, NULL);
    free(lo);
    free(hi);
    if (rc) return rc;
  }
  if (j->removed == 0)
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "No artifact at path '%.200s'", j->path);
  return 0;
}

int track_artifact_delete(struct db *db, const char *project_id, const char *path,
                          int64_t *removed, struct err *e) {
  int rc = track_artifact_path_check(path, false, e);
  if (rc) return rc;
  struct del_job j = {project_id, path, 0};
  rc = db_write(db, del_fn, &j, e);
  if (removed) *removed = rc ? 0 : j.removed;
  return rc;
}

/* ---- listings ----------------------------------------------------------------------- */

/* FileInfo objects of the direct children of prefix ("" or ending in '/')
 * in experiment exp, in path order, skipping the first `skip` and stopping
 * after `max` (*more says whether another followed). Each directory is one
 * entry: after it the scan jumps past everything under it. `shown` is put
 * before each name ("" for bare names). */
static json_t *art_children(struct db_conn *c, int64_t exp, const char *prefix, const char *shown,
                            int64_t skip, int64_t max, bool *more, struct err *e) {
  json_t *arr = json_array();
  char *lo = art_printf("%s", prefix), *hi = art_printf("%s" ART_HIGH, prefix);
  size_t pl = strlen(prefix);
  int64_t seen = 0;
  int rc = 0;
  if (more) *more = false;
  if (!arr || !lo || !hi) {
    rc = err_set(e, ERR_NO_MEMORY, NULL);
    goto out;
  }
  for (;;) {
    struct db_stmt *s = db_prepare(c,
                                   "SELECT path, size FROM artifacts WHERE experiment_id = ? AND path > ?"
                                   " AND path < ? ORDER BY path LIMIT 1",
                                   e);
    if (!s) {
      rc = -ERR_INTERNAL;
      break;
    }
    db_bind_i64(s, 1, exp);
    db_bind_text(s, 2, lo);
    db_bind_text(s, 3, hi);
    rc = db_step(s, e);
    if (rc != DB_ROW) {
      db_stmt_done(s);
      break;
    }
    const char *path = db_col_text(s, 0);
    int64_t size = db_col_i64(s, 1);
    const char *name = path + pl;
    const char *slash = strchr(name, '/');
    size_t nl = slash ? (size_t)(slash - name) : strlen(name);
    char *next = slash ? art_printf("%.*s/" ART_HIGH, (int)(pl + nl), path) : art_printf("%s", path);
    char *label = art_printf("%s%.*s", shown, (int)nl, name);
    db_stmt_done(s);
    if (!next || !label) {
      free(next);
      free(label);
      rc = err_set(e, ERR_NO_MEMORY, NULL);
      break;
    }
    free(lo);
    lo = next;
    if (seen++ < skip) {
      free(label);
      continue;
    }
    if ((int64_t)json_array_size(arr) == max) {
      free(label);
      if (more) *more = true;
      break;
    }
    json_t *fi = slash ? json_pack("{s:s, s:b}", "path", label, "is_dir", 1)
                       : json_pack("{s:s, s:b, s:I}", "path", label, "is_dir", 0, "file_size", (json_int_t)size);
    free(label);
    if (!fi || json_array_append_new(arr, fi)) {
      rc = err_set(e, ERR_NO_MEMORY, NULL);
      break;
    }
  }
out:
  free(lo);
  free(hi);
  if (rc < 0) {
    json_decref(arr);
    return NULL;
  }
  return arr;
}

/* The project's experiments that hold artifacts, as directories. */
static json_t *art_list_experiments(struct db_conn *c, const char *project_id, struct err *e) {
  struct db_stmt *s = db_prepare(c,
                                 "SELECT x.experiment_id FROM experiments x WHERE x.project_id = ? AND"
                                 " EXISTS (SELECT 1 FROM artifacts a WHERE a.experiment_id = x.experiment_id)"
                                 " ORDER BY x.experiment_id LIMIT ?",
                                 e);
  if (!s) return NULL;
  json_t *arr = json_array();
  if (!arr) {
    err_set(e, ERR_NO_MEMORY, NULL);
    return NULL;
  }
  db_bind_text(s, 1, project_id);
  db_bind_i64(s, 2, TRACKING_ARTIFACT_LIST_MAX);
  int rc;
  while ((rc = db_step(s, e)) == DB_ROW) {
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)db_col_i64(s, 0));
    json_array_append_new(arr, json_pack("{s:s, s:b}", "path", id, "is_dir", 1));
  }
  db_stmt_done(s);
  if (rc < 0) {
    json_decref(arr);
    return NULL;
  }
  return arr;
}

json_t *track_artifact_list(struct db *db, const char *project_id, const char *dir, struct err *e) {
  if (track_artifact_path_check(dir, true, e)) return NULL;
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  json_t *arr = NULL;
  struct art_loc l;
  if (!dir || !*dir) {
    arr = art_list_experiments(c, project_id, e);
  } else if (art_locate(c, project_id, dir, &l, e) == 0) {
    char *prefix = l.rest[0] ? art_printf("%s/", l.rest) : art_printf("%s", "");
    if (!prefix) err_set(e, ERR_NO_MEMORY, NULL);
    else arr = art_children(c, l.exp, prefix, "", 0, TRACKING_ARTIFACT_LIST_MAX, NULL, e);
    free(prefix);
  }
  db_reader_release(db, c);
  return arr;
}

json_t *track_run_artifact_list(struct db *db, const char *project_id, const char *run_id,
                                const char *path, const char *page_token,
                                char next[TRACKING_PAGE_TOKEN_MAX], char **root_uri,
                                struct err *e) {
  next[0] = 0;
  *root_uri = NULL;
  int64_t offset = 0;
  if (track_artifact_path_check(path, true, e)) return NULL;
  if (page_token && *page_token && track_page_token_decode(page_token, &offset, e)) return NULL;
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  json_t *arr = NULL;
  struct track_run r;
  if (track_run_load(c, project_id, run_id, &r, e) == 0) {
    struct db_stmt *s = db_prepare(c, "SELECT artifact_uri FROM runs WHERE run_uuid = ?", e);
    if (s) {
      db_bind_text(s, 1, r.id);
      if (db_step(s, e) == DB_ROW && db_col_text(s, 0)) *root_uri = art_printf("%s", db_col_text(s, 0));
      db_stmt_done(s);
    }
    /* Only the proxy's own layout is served; a run whose root is elsewhere
     * (an experiment made with another artifact_location) lists nothing. */
    char *own = art_printf("mlflow-artifacts:/%lld/%s/artifacts", (long long)r.experiment_id, r.id);
    bool mine = own && *root_uri && str_eq(own, *root_uri);
    free(own);
    if (!mine) {
      arr = json_array();
    } else {
      bool has = path && *path;
      char *prefix = art_printf("%s/artifacts/%s%s", r.id, has ? path : "", has ? "/" : "");
      char *shown = art_printf("%s%s", has ? path : "", has ? "/" : "");
      bool more = false;
      if (prefix && shown)
        arr = art_children(c, r.experiment_id, prefix, shown, offset, TRACKING_ARTIFACT_PAGE, &more, e);
      else
        err_set(e, ERR_NO_MEMORY, NULL);
      if (arr && more) track_page_token_encode(offset + TRACKING_ARTIFACT_PAGE, next);
      free(prefix);
      free(shown);
    }
  }
  db_reader_release(db, c);
  if (!arr) {
    free(*root_uri);
    *root_uri = NULL;
  }
  return arr;
}

json_t *track_logged_model_artifact_list(struct db *db, const char *project_id, const char *model_id,
                                         const char *dir, const char *page_token,
                                         char next[TRACKING_PAGE_TOKEN_MAX], char **root_uri, struct err *e) {
  next[0] = 0;
  *root_uri = NULL;
  int64_t offset = 0;
  if (track_artifact_path_check(dir, true, e)) return NULL;
  if (page_token && *page_token && track_page_token_decode(page_token, &offset, e)) return NULL;
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  json_t *arr = NULL;
  int64_t exp;
  if (track_model_load(c, project_id, model_id, &exp, e) == 0) {
    struct db_stmt *s = db_prepare(c, "SELECT artifact_location FROM logged_models WHERE model_id = ?", e);
    if (s) {
      db_bind_text(s, 1, model_id);
      if (db_step(s, e) == DB_ROW && db_col_text(s, 0)) *root_uri = art_printf("%s", db_col_text(s, 0));
      db_stmt_done(s);
    }
    /* as for runs: only the proxy's own layout is served */
    char *own = art_printf("mlflow-artifacts:/%lld/models/%s/artifacts", (long long)exp, model_id);
    bool mine = own && *root_uri && str_eq(own, *root_uri);
    free(own);
    if (!mine) {
      arr = json_array();
    } else {
      bool has = dir && *dir;
      char *prefix = art_printf("models/%s/artifacts/%s%s", model_id, has ? dir : "", has ? "/" : "");
      char *shown = art_printf("%s%s", has ? dir : "", has ? "/" : "");
      bool more = false;
      if (prefix && shown) arr = art_children(c, exp, prefix, shown, offset, TRACKING_ARTIFACT_PAGE, &more, e);
      else err_set(e, ERR_NO_MEMORY, NULL);
      if (arr && more) track_page_token_encode(offset + TRACKING_ARTIFACT_PAGE, next);
      free(prefix);
      free(shown);
    }
  }
  db_reader_release(db, c);
  if (!arr) {
    free(*root_uri);
    *root_uri = NULL;
  }
  return arr;
}

/* ---- multipart uploads ------------------------------------------------------------- */

struct mpu_job {
  const char *project_id, *path, *upload_id, *sha;
  int64_t num_parts, part_number;
};

static int mpu_create_fn(struct db_conn *c, void *arg, struct err *e) {
  struct mpu_job *j = arg;
  struct art_loc l;
  int rc = art_locate(c, j->project_id, j->path, &l, e);
  if (rc) return rc;
  if (!l.rest[0])
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "An artifact path must name a file under an experiment");
  return track_exec(c,
                  "INSERT INTO artifact_uploads (upload_id, experiment_id, path, num_parts, created_at)"
                  " VALUES (?, ?, ?, ?, ?)",
                  e, "sisii", j->upload_id, l.exp, l.rest, j->num_parts, time_wall_ms());
}

int track_mpu_create(struct db *db, const char *project_id, const char *path, int64_t num_parts,
                     char upload_id[65], struct err *e) {
  int rc = track_artifact_path_check(path, false, e);
  if (rc) return rc;
  if (num_parts < 1 || num_parts > 10000)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "num_parts must be between 1 and 10000, got %lld",
                   (long long)num_parts);
  uint8_t raw[32];
  randombytes_buf(raw, sizeof raw);
  hex_encode(upload_id, raw, sizeof raw);
  struct mpu_job j = {.project_id = project_id, .path = path, .upload_id = upload_id, .num_parts = num_parts};
  return db_write(db, mpu_create_fn, &j, e);
}

int track_mpu_exists(struct db *db, const char *upload_id, struct err *e) {
  if (!upload_id || strlen(upload_id) != 64 || !sha256_hex_valid(upload_id))
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "No multipart upload with this id");
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -ERR_UNAVAILABLE;
  struct db_stmt *s = db_prepare(c, "SELECT 1 FROM artifact_uploads WHERE upload_id = ?", e);
  int rc = -ERR_INTERNAL;
  if (s) {
    db_bind_text(s, 1, upload_id);
    rc = db_step(s, e);
    db_stmt_done(s);
    if (rc == DB_DONE) rc = err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "No multipart upload with this id");
    else if (rc == DB_ROW) rc = 0;
  }
  db_reader_release(db, c);
  return rc;
}

static int mpu_part_fn(struct db_conn *c, void *arg, struct err *e) {
  struct mpu_job *j = arg;
  struct db_stmt *s = db_prepare(c, "SELECT num_parts FROM artifact_uploads WHERE upload_id = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, j->upload_id);
  int rc = db_step(s, e);
  int64_t num = rc == DB_ROW ? db_col_i64(s, 0) : 0;
  db_stmt_done(s);
  if (rc < 0) return rc;
  if (rc == DB_DONE) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "No multipart upload with this id");
  if (j->part_number < 1 || j->part_number > num)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "part_number must be between 1 and %lld", (long long)num);
  s = db_prepare(c, "SELECT sha256 FROM artifact_upload_parts WHERE upload_id = ? AND part_number = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, j->upload_id);
  db_bind_i64(s, 2, j->part_number);
  char old[65] = {0};
  rc = db_step(s, e);
  if (rc == DB_ROW) str_copy(old, sizeof old, db_col_text(s, 0) ? db_col_text(s, 0) : "");
  db_stmt_done(s);
  if (rc < 0) return rc;
  if ((rc = blob_ref(c, j->sha, e))) return rc;
  if (old[0] && (rc = blob_unref(c, old, e))) return rc;
  return track_exec(c,
                  "INSERT INTO artifact_upload_parts (upload_id, part_number, sha256, size)"
                  " VALUES (?, ?, ?, (SELECT size FROM blobs WHERE sha256 = ?))"
                  " ON CONFLICT (upload_id, part_number) DO UPDATE SET sha256 = excluded.sha256,"
                  " size = excluded.size",
                  e, "siss", j->upload_id, j->part_number, j->sha, j->sha);
}

int track_mpu_part_put(struct db *db, const char *upload_id, int64_t part_number,
                       const char *sha256, struct err *e) {
  struct mpu_job j = {.upload_id = upload_id, .part_number = part_number, .sha = sha256};
  return db_write(db, mpu_part_fn, &j, e);
}

/* The upload, checked against the caller's project and path. */
static int mpu_check(struct db_conn *c, const char *project_id, const char *path,
                     const char *upload_id, struct err *e) {
  struct art_loc l;
  int rc = art_locate(c, project_id, path, &l, e);
  if (rc) return rc;
  struct db_stmt *s = db_prepare(c,
                                 "SELECT 1 FROM artifact_uploads WHERE upload_id = ? AND experiment_id = ?"
                                 " AND path = ?",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, upload_id);
  db_bind_i64(s, 2, l.exp);
  db_bind_text(s, 3, l.rest);
  rc = db_step(s, e);
  db_stmt_done(s);
  if (rc == DB_DONE)
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "No multipart upload %.64s for path '%.200s'",
                   upload_id, path);
  return rc < 0 ? rc : 0;
}

int track_mpu_parts(struct db *db, const char *project_id, const char *path,
                    const char *upload_id, struct track_mpu_part **parts, int *nparts,
                    struct err *e) {
  *parts = NULL;
  *nparts = 0;
  int rc = track_artifact_path_check(path, false, e);
  if (rc) return rc;
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -ERR_UNAVAILABLE;
  if ((rc = mpu_check(c, project_id, path, upload_id, e))) goto out;
  struct db_stmt *s = db_prepare(c,
                                 "SELECT part_number, sha256, size FROM artifact_upload_parts"
                                 " WHERE upload_id = ? ORDER BY part_number",
                                 e);
  if (!s) {
    rc = -ERR_INTERNAL;
    goto out;
  }
  db_bind_text(s, 1, upload_id);
  int cap = 0;
  while ((rc = db_step(s, e)) == DB_ROW) {
    if (*nparts == cap) {
      cap = cap ? cap * 2 : 16;
      void *nv = realloc(*parts, (size_t)cap * sizeof **parts);
      if (!nv) {
        rc = err_set(e, ERR_NO_MEMORY, NULL);
        break;
      }
      *parts = nv;
    }
    struct track_mpu_part *p = &(*parts)[(*nparts)++];
    p->part_number = db_col_i64(s, 0);
    str_copy(p->sha256, sizeof p->sha256, db_col_text(s, 1) ? db_col_text(s, 1) : "");
    p->size = (uint64_t)db_col_i64(s, 2);
  }
  db_stmt_done(s);
  if (rc > 0 || rc == DB_DONE) rc = 0;
out:
  db_reader_release(db, c);
  if (rc) {
    free(*parts);
    *parts = NULL;
    *nparts = 0;
  }
  return rc;
}

/* Drops an upload's parts (their references) and the upload itself. */
static int mpu_drop(struct db_conn *c, const char *upload_id, struct err *e) {
  struct db_stmt *s = db_prepare(c, "SELECT sha256 FROM artifact_upload_parts WHERE upload_id = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, upload_id);
  int rc, n = 0, cap = 0;
  char (*shas)[65] = NULL;
  while ((rc = db_step(s, e)) == DB_ROW) {
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      void *nv = realloc(shas, (size_t)cap * sizeof *shas);
      if (!nv) {
        rc = err_set(e, ERR_NO_MEMORY, NULL);
        break;
      }
      shas = nv;
    }
    str_copy(shas[n++], 65, db_col_text(s, 0) ? db_col_text(s, 0) : "");
  }
  db_stmt_done(s);
  for (int i = 0; rc >= 0 && i < n; i++) rc = blob_unref(c, shas[i], e);
  free(shas);
  if (rc < 0) return rc;
  if ((rc = track_exec(c, "DELETE FROM artifact_upload_parts WHERE upload_id = ?", e, "s", upload_id)))
    return rc;
  return track_exec(c, "DELETE FROM artifact_uploads WHERE upload_id = ?", e, "s", upload_id);
}

static int mpu_finish_fn(struct db_conn *c, void *arg, struct err *e) {
  struct mpu_job *j = arg;
  int rc = mpu_check(c, j->project_id, j->path, j->upload_id, e);
  return rc ? rc : mpu_drop(c, j->upload_id, e);
}

int track_mpu_finish(struct db *db, const char *project_id, const char *path,
                     const char *upload_id, struct err *e) {
  int rc = track_artifact_path_check(path, false, e);
  if (rc) return rc;
  struct mpu_job j = {.project_id = project_id, .path = path, .upload_id = upload_id};
  return db_write(db, mpu_finish_fn, &j, e);
}

/* ---- permanent deletion ----------------------------------------------------------- */

struct gc_job {
  int64_t cutoff;
  struct track_gc_report *r;
  int64_t done; /* rows handled by this batch */
};

static int gc_run(struct db_conn *c, const char *run, struct gc_job *j, struct err *e) {
  int rc = art_drop(c, "run_uuid = ?", -1, run, NULL, &j->r->artifacts, e);
  static const char *const sql[] = {
      "DELETE FROM params WHERE run_uuid = ?",         "DELETE FROM tags WHERE run_uuid = ?",
      "DELETE FROM metric_chunks WHERE run_uuid = ?",      "DELETE FROM latest_metrics WHERE run_uuid = ?",
      "DELETE FROM runs WHERE run_uuid = ?",
      "DELETE FROM run_dataset_inputs WHERE run_uuid = ?", "DELETE FROM run_input_tags WHERE run_uuid = ?",
      "DELETE FROM run_model_inputs WHERE run_uuid = ?",   "DELETE FROM run_model_outputs WHERE run_uuid = ?",
  };

  for (size_t i = 0; rc == 0 && i < sizeof sql / sizeof sql[0]; i++) rc = track_exec(c, sql[i], e, "s", run);
  if (rc == 0) j->r->runs++;
  return rc;
}

static int gc_runs_fn(struct db_conn *c, void *arg, struct err *e) {
  struct gc_job *j = arg;
  j->done = 0;
  struct db_stmt *s = db_prepare(c,
                                 "SELECT run_uuid FROM runs WHERE lifecycle_stage = 'deleted'"
                                 " AND deleted_time <= ? LIMIT ?",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, j->cutoff);
  db_bind_i64(s, 2, ART_GC_BATCH);
  char ids[ART_GC_BATCH][TRACKING_RUN_ID_LEN + 1];
  int n = 0, rc;
  while ((rc = db_step(s, e)) == DB_ROW && n < ART_GC_BATCH)
    str_copy(ids[n++], sizeof ids[0], db_col_text(s, 0) ? db_col_text(s, 0) : "");
  db_stmt_done(s);
  if (rc < 0) return rc;
  for (int i = 0; i < n; i++)
    if ((rc = gc_run(c, ids[i], j, e))) return rc;
  j->done = n;
  return 0;
}

/* Deleted experiments with no runs left, their own files and tags. */
static int gc_exps_fn(struct db_conn *c, void *arg, struct err *e) {
  struct gc_job *j = arg;
  j->done = 0;
  struct db_stmt *s = db_prepare(c,
                                 "SELECT experiment_id FROM experiments x WHERE lifecycle_stage = 'deleted'"
                                 " AND last_update_time <= ? AND NOT EXISTS (SELECT 1 FROM runs r WHERE"
                                 " r.experiment_id = x.experiment_id) LIMIT ?",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, j->cutoff);
  db_bind_i64(s, 2, ART_GC_BATCH);
  int64_t ids[ART_GC_BATCH];
  int n = 0, rc;
  while ((rc = db_step(s, e)) == DB_ROW && n < ART_GC_BATCH) ids[n++] = db_col_i64(s, 0);
  db_stmt_done(s);
  if (rc < 0) return rc;
  for (int i = 0; i < n; i++) {
    if ((rc = art_drop(c, "experiment_id = ?", ids[i], NULL, NULL, &j->r->artifacts, e))) return rc;
    /* uploads in flight into it go too */
    struct db_stmt *u = db_prepare(c, "SELECT upload_id FROM artifact_uploads WHERE experiment_id = ?", e);
    if (!u) return -ERR_INTERNAL;
    db_bind_i64(u, 1, ids[i]);
    char up[65] = {0};
    while ((rc = db_step(u, e)) == DB_ROW) {
      str_copy(up, sizeof up, db_col_text(u, 0) ? db_col_text(u, 0) : "");
      break;
    }
    db_stmt_done(u);
    if (rc < 0) return rc;
    if (up[0]) {
      if ((rc = mpu_drop(c, up, e))) return rc;
      j->r->uploads++;
      i--; /* this experiment again, for its next upload */
      continue;
    }
    /* its datasets and logged models (inputs.c, models.c) */
    static const char *const owned[] = {
        "DELETE FROM run_model_outputs WHERE model_id IN (SELECT model_id FROM logged_models WHERE experiment_id = ?)",
        "DELETE FROM logged_model_params WHERE model_id IN (SELECT model_id FROM logged_models WHERE experiment_id = ?)",
        "DELETE FROM logged_model_tags WHERE model_id IN (SELECT model_id FROM logged_models WHERE experiment_id = ?)",
        "DELETE FROM logged_models WHERE experiment_id = ?",
        "DELETE FROM datasets WHERE experiment_id = ?",
    };
    for (size_t k = 0; k < sizeof owned / sizeof owned[0]; k++)
      if ((rc = track_exec(c, owned[k], e, "i", ids[i]))) return rc;
    if ((rc = track_exec(c, "DELETE FROM experiment_tags WHERE experiment_id = ?", e, "i", ids[i])) ||
        (rc = track_exec(c, "DELETE FROM experiments WHERE experiment_id = ?", e, "i", ids[i])))
      return rc;

    j->r->experiments++;
  }
  j->done = n;
  return 0;
}

/* Logged models deleted at or before the cutoff: their files (dropping
 * their blob references), params, tags, and the run outputs naming them. */
static int gc_models_fn(struct db_conn *c, void *arg, struct err *e) {
  struct gc_job *j = arg;
  j->done = 0;
  struct db_stmt *s = db_prepare(c,
                                 "SELECT model_id FROM logged_models WHERE lifecycle_stage = 'deleted'"
                                 " AND COALESCE(deleted_time, last_updated_timestamp_ms) <= ? LIMIT ?",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, j->cutoff);
  db_bind_i64(s, 2, ART_GC_BATCH);
  char ids[ART_GC_BATCH][ART_MODEL_ID_MAX];
  int n = 0, rc;
  while ((rc = db_step(s, e)) == DB_ROW && n < ART_GC_BATCH)
    str_copy(ids[n++], sizeof ids[0], db_col_text(s, 0) ? db_col_text(s, 0) : "");
  db_stmt_done(s);
  if (rc < 0) return rc;
  static const char *const sql[] = {
      "DELETE FROM logged_model_params WHERE model_id = ?", "DELETE FROM logged_model_tags WHERE model_id = ?",
      "DELETE FROM run_model_outputs WHERE model_id = ?",   "DELETE FROM logged_models WHERE model_id = ?",
  };
  for (int i = 0; i < n; i++) {
    if ((rc = art_drop(c, "model_id = ?", -1, ids[i], NULL, &j->r->artifacts, e))) return rc;
    for (size_t k = 0; k < sizeof sql / sizeof sql[0]; k++)
      if ((rc = track_exec(c, sql[k], e, "s", ids[i]))) return rc;
    j->r->models++;
  }
  j->done = n;
  return 0;
}

/* Multipart uploads abandoned before the cutoff. */
static int gc_uploads_fn(struct db_conn *c, void *arg, struct err *e) {
  struct gc_job *j = arg;
  j->done = 0;
  struct db_stmt *s = db_prepare(c, "SELECT upload_id FROM artifact_uploads WHERE created_at <= ? LIMIT ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, j->cutoff);
  db_bind_i64(s, 2, ART_GC_BATCH);
  char ids[ART_GC_BATCH][65];
  int n = 0, rc;
  while ((rc = db_step(s, e)) == DB_ROW && n < ART_GC_BATCH)
    str_copy(ids[n++], sizeof ids[0], db_col_text(s, 0) ? db_col_text(s, 0) : "");
  db_stmt_done(s);
  if (rc < 0) return rc;
  for (int i = 0; i < n; i++) {
    if ((rc = mpu_drop(c, ids[i], e))) return rc;
    j->r->uploads++;
  }
  j->done = n;
  return 0;
}

int track_purge_deleted(struct db *db, int64_t cutoff_ms, struct track_gc_report *r,
                        struct err *e) {
  memset(r, 0, sizeof *r);
  struct gc_job j = {.cutoff = cutoff_ms, .r = r};
  db_write_fn fns[] = {gc_runs_fn, gc_models_fn, gc_exps_fn, gc_uploads_fn};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    do {
      int rc = db_write(db, fns[i], &j, e);
      if (rc) return rc;
    } while (j.done == ART_GC_BATCH);
  }
  return 0;
}
