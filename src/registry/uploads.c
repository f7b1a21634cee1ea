/* registry/uploads: model files uploaded to the registry — receiving the
 * bytes into a temp file, resumable sessions, turning a received file into
 * a checked version (intake, blob store, status), the files' scan reports,
 * and the per-project switch for unsafe pickles. */
#include "auth/auth.h"
#include "registry/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define UP_BLOCK (256u << 10)
#define UP_PATH_MAX 4096

static uint64_t max_size(const struct registry_upload_cfg *c) {
  return c->max_size ? c->max_size : REGISTRY_UPLOAD_DEFAULT_MAX_SIZE;
}
static int64_t ttl_ms(const struct registry_upload_cfg *c) {
  return (c->session_ttl_s > 0 ? c->session_ttl_s : REGISTRY_UPLOAD_DEFAULT_TTL_S) * 1000;
}

static int too_large(const struct registry_upload_cfg *c, struct err *e) {
  return err_set(e, ERR_PAYLOAD_TOO_LARGE, "the model file is larger than the server's limit of %llu bytes (--max-model-size)",
                 (unsigned long long)max_size(c));
}

static int ensure_dir(const struct registry_upload_cfg *c, struct err *e) {
  if (!c->dir || !*c->dir) return err_set(e, ERR_INTERNAL, "no upload directory configured");
  if (mkdir(c->dir, 0700) && errno != EEXIST)
    return err_set(e, ERR_IO, "cannot create the upload directory: %s", strerror(errno));
  return 0;
}

static int write_all(int fd, const void *p, size_t n, struct err *e) {
  const char *q = p;
  while (n) {
    ssize_t w = write(fd, q, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return err_set(e, errno == ENOSPC ? ERR_UNAVAILABLE : ERR_IO, "cannot write the upload: %s", strerror(errno));
    q += w;
    n -= (size_t)w;
  }
  return 0;
}

/* ---- metadata --------------------------------------------------------------------------- */

static bool hex64(const char *s) {
  if (!s || strlen(s) != 64) return false;
  for (const char *p = s; *p; p++)
    if (!((*p >= '0' && *p <= '9') || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'f'))) return false;
  return true;
}

int registry_upload_meta_check(const struct registry_upload_meta *m, struct err *e) {
  if (!m->name || !*m->name) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Missing value for required parameter 'name'.");
  if (strlen(m->name) > REGISTRY_MAX_NAME_LEN)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Registered model name is longer than %d characters", REGISTRY_MAX_NAME_LEN);
  for (const char *p = m->name; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Registered model name holds a control character");
  int rc = reg_description_check(m->description, e);
  if (rc) return rc;
  if (m->ntags > REGISTRY_MAX_TAGS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "A model version takes at most %d tags in one request", REGISTRY_MAX_TAGS);
  for (int i = 0; i < m->ntags; i++)
    if ((rc = reg_tag_check(m->tags[i].key, m->tags[i].value, e))) return rc;
  if (m->expected_sha256 && *m->expected_sha256 && !hex64(m->expected_sha256))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "sha256 must be 64 hex characters");
  return 0;
}

/* ---- a received file ----------------------------------------------------------------------- */

struct registry_upload_file {
  char path[UP_PATH_MAX];
  int fd;
  uint64_t size, max;
  struct sha256 h;
  bool hashed; /* h covers the whole file */
};

struct registry_upload_file *registry_upload_file_new(const struct registry_upload_cfg *c, struct err *e) {
  if (ensure_dir(c, e)) return NULL;
  struct registry_upload_file *f = calloc(1, sizeof *f);
  if (!f) {
    err_set(e, ERR_NO_MEMORY, "out of memory");
    return NULL;
  }
  char id[33];
  id_random_hex(id, 16);
  if ((size_t)snprintf(f->path, sizeof f->path, "%s/direct-%s.tmp", c->dir, id) >= sizeof f->path) {
    free(f);
    err_set(e, ERR_INTERNAL, "upload directory path too long");
    return NULL;
  }
  f->fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (f->fd < 0) {
    err_set(e, ERR_IO, "cannot create an upload file: %s", strerror(errno));
    free(f);
    return NULL;
  }
  f->max = max_size(c);
  sha256_init(&f->h);
  f->hashed = true;
  return f;
}

int registry_upload_file_write(struct registry_upload_file *f, const void *p, size_t n, struct err *e) {
  if (n > f->max || f->size > f->max - n)
    return err_set(e, ERR_PAYLOAD_TOO_LARGE, "the model file is larger than the server's limit of %llu bytes (--max-model-size)",
                   (unsigned long long)f->max);
  int rc = write_all(f->fd, p, n, e);
  if (rc) return rc;
  sha256_update(&f->h, p, n);
  f->size += n;
  return 0;
}

uint64_t registry_upload_file_size(const struct registry_upload_file *f) { return f->size; }

void registry_upload_file_free(struct registry_upload_file *f) {
  if (!f) return;
  if (f->fd >= 0) close(f->fd);
  if (f->path[0]) unlink(f->path);
  free(f);
}

/* Adopts a session's complete .part file (hashed by reading it). */
static struct registry_upload_file *file_adopt(const char *path, uint64_t max, struct err *e) {
  struct registry_upload_file *f = calloc(1, sizeof *f);
  char *blk = malloc(UP_BLOCK);
  if (!f || !blk) {
    free(f);
    free(blk);
    err_set(e, ERR_NO_MEMORY, "out of memory");
    return NULL;
  }
  str_copy(f->path, sizeof f->path, path);
  f->max = max;
  f->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (f->fd < 0) {
    err_set(e, ERR_IO, "the upload's bytes are gone: %s", strerror(errno));
    f->path[0] = 0;
    registry_upload_file_free(f);
    free(blk);
    return NULL;
  }
  sha256_init(&f->h);
  ssize_t n;
  while ((n = read(f->fd, blk, UP_BLOCK)) > 0) {
    sha256_update(&f->h, blk, (size_t)n);
    f->size += (uint64_t)n;
  }
  free(blk);
  if (n < 0) {
    err_set(e, ERR_IO, "cannot read the upload: %s", strerror(errno));
    f->path[0] = 0;
    registry_upload_file_free(f);
    return NULL;
  }
  f->hashed = true;
  return f;
}

/* Streams the file into the blob store; the blob's address must be sha. */
static int file_to_blob(struct blob_store *bs, const struct registry_upload_file *f, const char *sha, struct err *e) {
  int fd = open(f->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return err_set(e, ERR_IO, "cannot reopen the upload: %s", strerror(errno));
  char *blk = malloc(UP_BLOCK);
  struct blob_writer *w = blk ? blob_put_begin(bs, e) : NULL;
  if (!blk || !w) {
    close(fd);
    free(blk);
    return blk ? -(int)e->code : err_set(e, ERR_NO_MEMORY, "out of memory");
  }
  ssize_t n;
  int rc = 0;
  while ((n = read(fd, blk, UP_BLOCK)) > 0)
    if ((rc = blob_put_write(w, blk, (size_t)n, e))) break;
  if (!rc && n < 0) rc = err_set(e, ERR_IO, "cannot read the upload: %s", strerror(errno));
  close(fd);
  free(blk);
  if (rc) {
    blob_put_abort(w);
    return rc;
  }
  char got[65];
  return blob_put_commit(w, sha, got, e);
}

/* ---- settings ---------------------------------------------------------------------------- */

static int allow_unsafe(struct db *db, const char *project_id, bool *out, struct err *e) {
  *out = false;
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -(int)e->code;
  struct db_stmt *s = db_prepare(c, "SELECT allow_unsafe_pickles FROM registry_project_settings WHERE project_id = ?", e);
  int rc = -ERR_INTERNAL;
  if (s) {
    db_bind_text(s, 1, project_id);
    rc = db_step(s, e);
    if (rc == DB_ROW) *out = db_col_i64(s, 0) != 0;
    db_stmt_done(s);
    rc = rc < 0 ? rc : 0;
  }
  db_reader_release(db, c);
  return rc;
}

json_t *registry_settings_get(struct db *db, const char *project_id, struct err *e) {
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  json_t *o = NULL;
  struct db_stmt *s = db_prepare(
      c, "SELECT allow_unsafe_pickles, updated_at, updated_by FROM registry_project_settings WHERE project_id = ?", e);
  if (s) {
    db_bind_text(s, 1, project_id);
    int rc = db_step(s, e);
    if (rc == DB_ROW) {
      o = json_pack("{s:s, s:b, s:I}", "project_id", project_id, "allow_unsafe_pickles", db_col_i64(s, 0) != 0,
                    "updated_at", (json_int_t)db_col_i64(s, 1));
      if (o && !db_col_null(s, 2)) json_object_set_new(o, "updated_by", json_string(db_col_text(s, 2)));
    } else if (rc == DB_DONE) {
      o = json_pack("{s:s, s:b}", "project_id", project_id, "allow_unsafe_pickles", 0);
    }
    db_stmt_done(s);
    if (!o && rc >= 0) err_set(e, ERR_NO_MEMORY, "out of memory");
  }
  db_reader_release(db, c);
  return o;
}

struct settings_job {
  const char *project_id, *actor;
  bool allow;
};

static int settings_job(struct db_conn *c, void *arg, struct err *e) {
  struct settings_job *j = arg;
  int rc = reg_exec(c,
                    "INSERT INTO registry_project_settings (project_id, allow_unsafe_pickles, updated_at, updated_by)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (project_id) DO UPDATE SET"
                    " allow_unsafe_pickles = excluded.allow_unsafe_pickles, updated_at = excluded.updated_at,"
                    " updated_by = excluded.updated_by",
                    e, "siis", j->project_id, (int64_t)j->allow, time_wall_ms(), j->actor);
  if (rc) return rc;
  /* the switch lets code run on load: who flipped it must be on record */
  struct auth_audit_entry en = {.actor = j->actor, .action = "registry.settings_update", .target = j->project_id,
                                .outcome = "success",
                                .detail = j->allow ? "{\"allow_unsafe_pickles\":true}" : "{\"allow_unsafe_pickles\":false}"};
  return auth_audit_append(c, &en, e);
}

json_t *registry_settings_set(struct db *db, const char *project_id, bool allow_unsafe_pickles, const char *actor,
                              struct err *e) {
  struct settings_job j = {project_id, actor, allow_unsafe_pickles};
  if (db_write(db, settings_job, &j, e)) return NULL;
  return registry_settings_get(db, project_id, e);
}

/* ---- versions made from uploads ------------------------------------------------------------ */

int reg_files_drop(struct db_conn *c, int64_t model_id, int64_t version, struct err *e) {
  struct db_stmt *s = db_prepare(c,
                                 "SELECT sha256 FROM model_version_files WHERE model_id = ? AND (? < 0 OR version = ?)"
                                 " AND stored = 1",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, model_id);
  db_bind_i64(s, 2, version);
  db_bind_i64(s, 3, version);
  /* collect first: unref runs statements of its own on this connection */
  char(*shas)[65] = NULL;
  size_t n = 0, cap = 0;
  int rc;
  while ((rc = db_step(s, e)) == DB_ROW) {
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 8;
      void *p = realloc(shas, nc * sizeof *shas);
      if (!p) {
        rc = err_set(e, ERR_NO_MEMORY, "out of memory");
        break;
      }
      shas = p;
      cap = nc;
    }
    str_copy(shas[n++], 65, db_col_text(s, 0));
  }
  db_stmt_done(s);
  for (size_t i = 0; rc >= 0 && i < n; i++) rc = blob_unref(c, shas[i], e);
  free(shas);
  if (rc < 0) return rc;
  return reg_exec(c, "DELETE FROM model_version_files WHERE model_id = ? AND (? < 0 OR version = ?)", e, "iii",
                  model_id, version, version);
}

/* The outcome of intake, recorded with the status change in one write. */
struct judge_job {
  int64_t model_id, version;
  const char *project_id, *sha256;
  uint64_t size;
  bool stored, unsafe;
  const char *format, *framework, *scan, *signature;
  enum registry_version_status to;
  const char *message;
};

static int judge_job(struct db_conn *c, void *arg, struct err *e) {
  struct judge_job *j = arg;
  int rc = reg_exec(c,
                    "INSERT INTO model_version_files (model_id, version, project_id, sha256, size, stored, format,"
                    " framework, unsafe, scan, signature, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    e, "iissiississi", j->model_id, j->version, j->project_id, j->sha256, (int64_t)j->size,
                    (int64_t)j->stored, j->format && *j->format ? j->format : NULL,
                    j->framework && *j->framework ? j->framework : NULL, (int64_t)j->unsafe, j->scan, j->signature,
                    time_wall_ms());
  if (!rc && j->stored) rc = blob_ref(c, j->sha256, e);
  if (!rc) rc = reg_status_set(c, j->model_id, j->version, j->to, j->message, e);
  return rc;
}

/* The model (made when missing) and its new PENDING version. */
static int make_version(struct db *db, const char *project_id, const struct registry_upload_meta *m, const char *sha,
                        int64_t *model_id, int64_t *version, struct err *e) {
  json_t *mo = registry_model_create(db, project_id, m->name, m->description, NULL, 0, m->user_id, e);
  if (mo) json_decref(mo);
  else if (e->code != ERR_RESOURCE_ALREADY_EXISTS) return -(int)e->code; /* a concurrent upload made it: fine */
  char source[sizeof REGISTRY_UPLOAD_SCHEME + 65];
  snprintf(source, sizeof source, "%s%s", REGISTRY_UPLOAD_SCHEME, sha);
  struct registry_version_new in = {.name = m->name, .source = source, .description = m->description,
                                    .user_id = m->user_id, .tags = m->tags, .ntags = m->ntags,
                                    .pending_upload = true};
  json_t *v = registry_version_create(db, project_id, &in, e);
  if (!v) return -(int)e->code;
  int rc = reg_version_parse(json_string_value(json_object_get(v, "version")), version, e);
  json_decref(v);
  if (rc) return rc;
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -(int)e->code;
  struct reg_model rm;
  rc = reg_model_load(c, project_id, m->name, &rm, e);
  db_reader_release(db, c);
  *model_id = rm.id;
  return rc;
}

/* The malware scan of a file intake accepted. 0 with *out the report's
 * "malware" object (clean, or not scanned under --clamd-fail-open);
 * -ERR_UNSAFE_MODEL when a signature matched (*out says which); any other
 * error when the scanner could not judge and the server fails closed. */
static int av_scan(const struct registry_upload_cfg *c, const char *path, json_t **out, struct err *e) {
  struct registry_av_result res;
  struct err ae = {0};
  int rc = registry_av_scan_file(c->av, path, &res, &ae);
  const char *scanner = registry_av_name(c->av);
  if (rc == 0 && res.found) {
    *out = json_pack("{s:s, s:s, s:s, s:s, s:I}", "scanner", scanner, "status", "infected", "signature",
                     res.signature, "engine", res.engine, "duration_ms", (json_int_t)res.duration_ms);
    log_warn("upload.malware", "%s found %s in an uploaded model file", scanner, res.signature);
    return err_set(e, ERR_UNSAFE_MODEL, "malware: %s (found by %s)", res.signature, scanner);
  }
  if (rc == 0) {
    *out = json_pack("{s:s, s:s, s:s, s:I}", "scanner", scanner, "status", "clean", "engine", res.engine,
                     "duration_ms", (json_int_t)res.duration_ms);
    return *out ? 0 : err_set(e, ERR_NO_MEMORY, "out of memory");
  }
  if (rc == -ERR_IO || rc == -ERR_NO_MEMORY || !c->av_fail_open) {
    log_warn("upload.scan_failed", "malware scan failed, upload refused (fail closed): %s", ae.msg);
    if (rc == -ERR_PAYLOAD_TOO_LARGE || rc == -ERR_IO || rc == -ERR_NO_MEMORY) {
      *e = ae;
      return rc;
    }
    return err_set(e, ERR_UNAVAILABLE, "the malware scanner could not check the file, so it was not registered "
                   "(retry later): %s", ae.msg);
  }
  log_warn("upload.scan_skipped", "malware scan failed, upload accepted unscanned (--clamd-fail-open): %s", ae.msg);
  char why[sizeof ae.msg + 16];
  snprintf(why, sizeof why, "not scanned: %s", ae.msg);
  *out = json_pack("{s:s, s:s, s:s}", "scanner", scanner, "status", "not_scanned", "message", why);
  return *out ? 0 : err_set(e, ERR_NO_MEMORY, "out of memory");
}

static char *dumps(const json_t *v) { return v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL; }

int registry_upload_register(const struct registry_upload_cfg *c, const char *project_id,
                             const struct registry_upload_meta *m, struct registry_upload_file *f, json_t **out,
                             struct err *e) {
  *out = NULL;
  int rc = registry_upload_meta_check(m, e);
  if (rc) return rc;
  if (f->fd >= 0) {
    if (fsync(f->fd)) return err_set(e, ERR_IO, "cannot flush the upload: %s", strerror(errno));
    close(f->fd);
    f->fd = -1;
  }
  if (f->size == 0) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "the model file is empty");
  if (f->size > max_size(c)) return too_large(c, e);
  uint8_t d[32];
  char sha[65];
  sha256_final(&f->h, d);
  f->hashed = false;
  hex_encode(sha, d, 32);
  if (m->expected_sha256 && *m->expected_sha256) {
    char want[65];
    for (int i = 0; i < 64; i++) want[i] = (char)(m->expected_sha256[i] | 0x20);
    want[64] = 0;
    if (!str_eq(want, sha))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "checksum mismatch: the file received has sha256 %s, not the expected %s; nothing was registered",
                     sha, want);
  }
  bool allow;
  if ((rc = allow_unsafe(c->db, project_id, &allow, e))) return rc;

  /* Intake, then the malware scan, before anything is created: a scanner
   * that cannot answer (fail closed) must leave no version behind. Intake
   * reads the temp file, never the blob: nothing of a refused file reaches
   * the store. */
  struct registry_intake_opts o;
  registry_intake_opts_default(&o);
  o.allow_unsafe_pickle = allow;
  o.max_file_size = max_size(c);
  struct registry_intake_report r;
  struct err ie = {0};
  int irc = registry_intake_inspect(f->path, &o, &r, &ie);
  json_t *malware = NULL;
  if (irc == 0 && c->av) {
    struct err ae = {0};
    int arc = av_scan(c, f->path, &malware, &ae);
    if (arc == -ERR_UNSAFE_MODEL) {
      irc = arc;
      ie = ae;
    } else if (arc) {
      registry_intake_report_fini(&r);
      *e = ae;
      return arc;
    }
  }
  json_t *report = registry_intake_report_json(&r);
  if (report && malware) json_object_set(report, "malware", malware);
  json_decref(malware);
  int64_t model_id = 0, version = 0;
  if ((rc = make_version(c->db, project_id, m, sha, &model_id, &version, e))) {
    json_decref(report);
    registry_intake_report_fini(&r);
    return rc;
  }
  struct judge_job j = {.model_id = model_id, .version = version, .project_id = project_id, .sha256 = sha,
                        .size = f->size, .unsafe = r.unsafe, .format = r.format, .framework = r.framework};
  char *scan = dumps(report), *sig = r.signature ? dumps(r.signature) : NULL;
  j.scan = scan;
  j.signature = sig;
  int frc = 0;
  struct err fe = {0};
  if (irc == 0) {
    j.stored = true;
    j.to = REGISTRY_READY;
    frc = file_to_blob(c->blobs, f, sha, &fe);
  }
  if (irc || frc) {
    j.stored = false;
    j.to = REGISTRY_FAILED_REGISTRATION;
    j.message = irc ? ie.msg : fe.msg;
  }
  rc = db_write(c->db, judge_job, &j, e);
  free(scan);
  free(sig);
  json_decref(report);
  registry_intake_report_fini(&r);
  if (rc) return rc;
  char vtext[24];
  snprintf(vtext, sizeof vtext, "%lld", (long long)version);
  *out = registry_upload_answer(c->db, project_id, m->name, vtext, e);
  if (!*out) return -(int)e->code;
  if (irc) {
    *e = ie;
    return irc;
  }
  if (frc) {
    *e = fe;
    return frc;
  }
  return 0;
}

json_t *registry_upload_answer(struct db *db, const char *project_id, const char *name, const char *version,
                               struct err *e) {
  int64_t v;
  if (reg_version_parse(version, &v, e)) return NULL;
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  json_t *o = NULL;
  struct reg_model m;
  if (reg_model_load(c, project_id, name ? name : "", &m, e) || reg_version_exists(c, &m, v, e)) goto done;
  struct db_stmt *s = db_prepare(c,
                                 "SELECT v.status, v.status_message, v.source, v.creation_time, f.format, f.framework,"
                                 " f.sha256, f.size, f.stored, f.unsafe, f.scan, f.signature"
                                 " FROM model_versions v JOIN model_version_files f"
                                 " ON f.model_id = v.model_id AND f.version = v.version"
                                 " WHERE v.model_id = ? AND v.version = ?",
                                 e);
  if (!s) goto done;
  db_bind_i64(s, 1, m.id);
  db_bind_i64(s, 2, v);
  int rc = db_step(s, e);
  if (rc == DB_ROW) {
    json_t *scan = db_col_null(s, 10) ? NULL : json_loads(db_col_text(s, 10), 0, NULL);
    json_t *sig = db_col_null(s, 11) ? NULL : json_loads(db_col_text(s, 11), 0, NULL);
    o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s?, s:s?, s:s, s:I, s:b, s:b, s:o, s:o, s:n}", "name", m.name,
                  "version", version, "status", db_col_text(s, 0), "source", db_col_text(s, 2),
                  "creation_timestamp", (json_int_t)db_col_i64(s, 3), "format", db_col_text(s, 4), "framework",
                  db_col_text(s, 5), "sha256", db_col_text(s, 6), "size", (json_int_t)db_col_i64(s, 7), "stored",
                  db_col_i64(s, 8) != 0, "unsafe", db_col_i64(s, 9) != 0, "scan", scan ? scan : json_object(),
                  "signature", sig ? sig : json_null(), "prediction_url");
    /* every READY uploaded version is served (src/serve): this is where */
    static const char *const served[] = {"onnx", "xgboost-json", "xgboost-ubj", "xgboost-binary",
                                         "pickle", "joblib", "torchscript"};
    bool servable = false;
    for (size_t i = 0; i < sizeof served / sizeof *served; i++)
      if (str_eq(db_col_text(s, 4), served[i])) servable = true;
    if (o && servable && strcmp(db_col_text(s, 0), "READY") == 0) {
      struct buf url;
      buf_init(&url);
      buf_puts(&url, "/api/v1/models/");
      /* the name as one path segment: unreserved characters kept, the rest %XX */
      for (const unsigned char *p = (const unsigned char *)m.name; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p))
          buf_putc(&url, (char)*p);
        else
          buf_printf(&url, "%%%02X", *p);
      }
      buf_printf(&url, "/versions/%s/predict", version);
      if (url.data) json_object_set_new(o, "prediction_url", json_string(url.data));
      buf_fini(&url);
    }
    if (o && !db_col_null(s, 1)) json_object_set_new(o, "status_message", json_string(db_col_text(s, 1)));
    if (!o) err_set(e, ERR_NO_MEMORY, "out of memory");
  } else if (rc == DB_DONE) {
    err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Model Version (name=%.300s, version=%lld) was not made from an uploaded file",
            m.name, (long long)v);
  }
  db_stmt_done(s);
done:
  db_reader_release(db, c);
  return o;
}

int registry_upload_blob(struct db *db, const char *project_id, const char *name, const char *version, char sha256[65],
                         uint64_t *size, struct err *e) {
  json_t *o = registry_upload_answer(db, project_id, name, version, e);
  if (!o) return -(int)e->code;
  int rc = 0;
  if (!json_is_true(json_object_get(o, "stored")))
    rc = err_set(e, ERR_RESOURCE_DOES_NOT_EXIST,
                 "Model Version (name=%.300s, version=%.30s) holds no file: it failed registration", name, version);
  else {
    str_copy(sha256, 65, json_string_value(json_object_get(o, "sha256")));
    *size = (uint64_t)json_integer_value(json_object_get(o, "size"));
  }
  json_decref(o);
  return rc;
}

/* ---- resumable sessions ---------------------------------------------------------------------- */

/* Sessions being written or completed right now: one writer each. */
static pthread_mutex_t busy_mu = PTHREAD_MUTEX_INITIALIZER;
#define BUSY_MAX 1024
static char busy[BUSY_MAX][REGISTRY_UPLOAD_ID_LEN + 1];

static int busy_take(const char *id, struct err *e) {
  pthread_mutex_lock(&busy_mu);
  int fr = -1;
  for (int i = 0; i < BUSY_MAX; i++) {
    if (str_eq(busy[i], id)) {
      pthread_mutex_unlock(&busy_mu);
      return err_set(e, ERR_CONFLICT, "another request is writing to upload %s; retry when it has finished", id);
    }
    if (fr < 0 && !busy[i][0]) fr = i;
  }
  if (fr >= 0) str_copy(busy[fr], sizeof busy[fr], id);
  pthread_mutex_unlock(&busy_mu);
  return fr < 0 ? err_set(e, ERR_UNAVAILABLE, "too many uploads in progress; retry shortly") : 0;
}

static void busy_give(const char *id) {
  pthread_mutex_lock(&busy_mu);
  for (int i = 0; i < BUSY_MAX; i++)
    if (str_eq(busy[i], id)) busy[i][0] = 0;
  pthread_mutex_unlock(&busy_mu);
}

static bool id_valid(const char *id) {
  if (!id || strlen(id) != REGISTRY_UPLOAD_ID_LEN) return false;
  for (const char *p = id; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
  return true;
}

static int part_path(const struct registry_upload_cfg *c, const char *id, char out[UP_PATH_MAX], struct err *e) {
  if ((size_t)snprintf(out, UP_PATH_MAX, "%s/%s.part", c->dir ? c->dir : "", id) >= UP_PATH_MAX)
    return err_set(e, ERR_INTERNAL, "upload directory path too long");
  return 0;
}

struct session {
  char id[REGISTRY_UPLOAD_ID_LEN + 1];
  char name[4 * REGISTRY_MAX_NAME_LEN + 1];
  char sha256[65];
  char *description, *tags; /* malloc'd or NULL */
  uint64_t size, received;
  int64_t created_at, expires_at;
};

static void session_fini(struct session *s) {
  free(s->description);
  free(s->tags);
}

static int not_found(const char *id, struct err *e) {
  return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Upload session %.40s not found (it may have expired)", id ? id : "");
}

/* The caller's live session. */
static int session_load(struct db *db, const char *project_id, const char *user_id, const char *id, struct session *out,
                        struct err *e) {
  memset(out, 0, sizeof *out);
  if (!id_valid(id)) return not_found(id, e);
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -(int)e->code;
  struct db_stmt *s = db_prepare(c,
                                 "SELECT name, sha256, description, tags, size, received, created_at, expires_at"
                                 " FROM model_upload_sessions WHERE id = ? AND project_id = ? AND user_id = ?"
                                 " AND expires_at > ?",
                                 e);
  int rc = -ERR_INTERNAL;
  if (s) {
    db_bind_text(s, 1, id);
    db_bind_text(s, 2, project_id);
    db_bind_text(s, 3, user_id ? user_id : "");
    db_bind_i64(s, 4, time_wall_ms());
    rc = db_step(s, e);
    if (rc == DB_ROW) {
      str_copy(out->id, sizeof out->id, id);
      str_copy(out->name, sizeof out->name, db_col_text(s, 0));
      if (!db_col_null(s, 1)) str_copy(out->sha256, sizeof out->sha256, db_col_text(s, 1));
      if (!db_col_null(s, 2)) out->description = strdup(db_col_text(s, 2));
      if (!db_col_null(s, 3)) out->tags = strdup(db_col_text(s, 3));
      out->size = (uint64_t)db_col_i64(s, 4);
      out->received = (uint64_t)db_col_i64(s, 5);
      out->created_at = db_col_i64(s, 6);
      out->expires_at = db_col_i64(s, 7);
      rc = 0;
    } else if (rc == DB_DONE) {
      rc = not_found(id, e);
    }
    db_stmt_done(s);
  }
  db_reader_release(db, c);
  return rc;
}

static json_t *session_json(const struct session *s) {
  json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "upload_id", s->id, "name", s->name, "size",
                        (json_int_t)s->size, "received", (json_int_t)s->received, "created_at",
                        (json_int_t)s->created_at, "expires_at", (json_int_t)s->expires_at);
  if (o && s->sha256[0]) json_object_set_new(o, "sha256", json_string(s->sha256));
  if (o && s->description) json_object_set_new(o, "description", json_string(s->description));
  return o;
}

struct session_job {
  enum { S_CREATE, S_PROGRESS, S_DELETE } op;
  const char *id, *project_id, *user_id;
  const struct session *s;
  uint64_t from, to; /* S_PROGRESS: received moves from -> to */
  int64_t expires_at;
};

static int session_job(struct db_conn *c, void *arg, struct err *e) {
  struct session_job *j = arg;
  int64_t now = time_wall_ms();
  switch (j->op) {
  case S_CREATE:
    return reg_exec(c,
                    "INSERT INTO model_upload_sessions (id, project_id, user_id, name, description, tags, size, sha256,"
                    " received, created_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
                    e, "ssssssisiii", j->id, j->project_id, j->user_id, j->s->name, j->s->description, j->s->tags,
                    (int64_t)j->s->size, j->s->sha256[0] ? j->s->sha256 : NULL, now, now, j->expires_at);
  case S_PROGRESS: {
    int rc = reg_exec(c,
                      "UPDATE model_upload_sessions SET received = ?, updated_at = ?, expires_at = ?"
                      " WHERE id = ? AND received = ?",
                      e, "iiisi", (int64_t)j->to, now, j->expires_at, j->id, (int64_t)j->from);
    if (!rc && db_changes(c) != 1) return err_set(e, ERR_CONFLICT, "the upload changed meanwhile; GET it and resume");
    return rc;
  }
  case S_DELETE: return reg_exec(c, "DELETE FROM model_upload_sessions WHERE id = ?", e, "s", j->id);
  }
  return err_set(e, ERR_INTERNAL, "unknown session operation");
}

/* Tags as JSON text [{"key","value"}] for the session row. */
static char *tags_text(const struct registry_upload_meta *m) {
  json_t *a = json_array();
  for (int i = 0; a && i < m->ntags; i++)
    json_array_append_new(a, json_pack("{s:s, s:s}", "key", m->tags[i].key, "value",
                                       m->tags[i].value ? m->tags[i].value : ""));
  char *t = m->ntags ? dumps(a) : NULL;
  json_decref(a);
  return t;
}

json_t *registry_upload_session_create(const struct registry_upload_cfg *c, const char *project_id,
                                       const struct registry_upload_meta *m, uint64_t size, struct err *e) {
  if (registry_upload_meta_check(m, e)) return NULL;
  if (!m->user_id || !*m->user_id) {
    err_set(e, ERR_UNAUTHENTICATED, "an upload session belongs to a user");
    return NULL;
  }
  if (size == 0) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "size must be a positive number of bytes");
    return NULL;
  }
  if (size > max_size(c)) {
    too_large(c, e);
    return NULL;
  }
  if (ensure_dir(c, e) || registry_upload_expire(c, NULL, e)) return NULL;
  struct session s = {0};
  id_random_hex(s.id, REGISTRY_UPLOAD_ID_LEN / 2);
  str_copy(s.name, sizeof s.name, m->name);
  if (m->expected_sha256 && *m->expected_sha256)
    for (int i = 0; i < 65; i++) s.sha256[i] = (char)(m->expected_sha256[i] ? m->expected_sha256[i] | 0x20 : 0);
  s.description = m->description && *m->description ? strdup(m->description) : NULL;
  s.tags = tags_text(m);
  s.size = size;
  s.created_at = time_wall_ms();
  s.expires_at = s.created_at + ttl_ms(c);
  char path[UP_PATH_MAX];
  json_t *o = NULL;
  int fd = -1;
  if (part_path(c, s.id, path, e)) goto done;
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    err_set(e, ERR_IO, "cannot create the upload file: %s", strerror(errno));
    goto done;
  }
  close(fd);
  struct session_job j = {.op = S_CREATE, .id = s.id, .project_id = project_id, .user_id = m->user_id, .s = &s,
                          .expires_at = s.expires_at};
  if (db_write(c->db, session_job, &j, e)) {
    unlink(path);
    goto done;
  }
  o = session_json(&s);
  if (!o) err_set(e, ERR_NO_MEMORY, "out of memory");
done:
  session_fini(&s);
  return o;
}

json_t *registry_upload_session_get(const struct registry_upload_cfg *c, const char *project_id, const char *user_id,
                                    const char *upload_id, struct err *e) {
  struct session s;
  if (session_load(c->db, project_id, user_id, upload_id, &s, e)) return NULL;
  json_t *o = session_json(&s);
  session_fini(&s);
  if (!o) err_set(e, ERR_NO_MEMORY, "out of memory");
  return o;
}

struct registry_upload_chunk {
  const struct registry_upload_cfg *c;
  struct session s;
  int fd;
  uint64_t len, got; /* announced (UINT64_MAX: unknown), written */
};

struct registry_upload_chunk *registry_upload_chunk_begin(const struct registry_upload_cfg *c, const char *project_id,
                                                          const char *user_id, const char *upload_id, uint64_t offset,
                                                          uint64_t len, struct err *e) {
  struct registry_upload_chunk *ch = calloc(1, sizeof *ch);
  if (!ch) {
    err_set(e, ERR_NO_MEMORY, "out of memory");
    return NULL;
  }
  ch->c = c;
  ch->fd = -1;
  ch->len = len;
  if (session_load(c->db, project_id, user_id, upload_id, &ch->s, e)) {
    free(ch);
    return NULL;
  }
  if (busy_take(ch->s.id, e)) {
    session_fini(&ch->s);
    free(ch);
    return NULL;
  }
  char path[UP_PATH_MAX];
  if (offset != ch->s.received) {
    err_set(e, ERR_CONFLICT,
            "chunk starts at byte %llu but upload %s has received %llu bytes: send the chunk that starts at %llu "
            "(chunks are appended in order; GET the upload to resume)",
            (unsigned long long)offset, ch->s.id, (unsigned long long)ch->s.received,
            (unsigned long long)ch->s.received);
    goto fail;
  }
  if (len != UINT64_MAX && (len > ch->s.size || offset > ch->s.size - len)) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "chunk of %llu bytes at %llu runs past the upload's size of %llu bytes",
            (unsigned long long)len, (unsigned long long)offset, (unsigned long long)ch->s.size);
    goto fail;
  }
  if (part_path(c, ch->s.id, path, e)) goto fail;
  ch->fd = open(path, O_WRONLY | O_CLOEXEC);
  if (ch->fd < 0) {
    err_set(e, ERR_IO, "the upload's bytes are gone: %s", strerror(errno));
    goto fail;
  }
  /* bytes past `received` are from a chunk that never finished */
  if (ftruncate(ch->fd, (off_t)ch->s.received) || lseek(ch->fd, (off_t)ch->s.received, SEEK_SET) < 0) {
    err_set(e, ERR_IO, "cannot position the upload: %s", strerror(errno));
    goto fail;
  }
  return ch;
fail:
  registry_upload_chunk_abort(ch);
  return NULL;
}

int registry_upload_chunk_write(struct registry_upload_chunk *ch, const void *p, size_t n, struct err *e) {
  uint64_t room = ch->s.size - ch->s.received;
  if (n > room - ch->got || (ch->len != UINT64_MAX && n > ch->len - ch->got))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "the chunk holds more bytes than %s",
                   ch->len != UINT64_MAX && n > ch->len - ch->got ? "its Content-Range says" : "the upload's size leaves room for");
  int rc = write_all(ch->fd, p, n, e);
  if (!rc) ch->got += n;
  return rc;
}

static void chunk_free(struct registry_upload_chunk *ch) {
  if (ch->fd >= 0) close(ch->fd);
  if (ch->s.id[0]) busy_give(ch->s.id);
  session_fini(&ch->s);
  free(ch);
}

json_t *registry_upload_chunk_end(struct registry_upload_chunk *ch, struct err *e) {
  json_t *o = NULL;
  if (ch->len != UINT64_MAX && ch->got != ch->len) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "the chunk ended after %llu of the %llu bytes announced",
            (unsigned long long)ch->got, (unsigned long long)ch->len);
    registry_upload_chunk_abort(ch);
    return NULL;
  }
  if (fsync(ch->fd)) {
    err_set(e, ERR_IO, "cannot flush the upload: %s", strerror(errno));
    registry_upload_chunk_abort(ch);
    return NULL;
  }
  int64_t exp = time_wall_ms() + ttl_ms(ch->c);
  struct session_job j = {.op = S_PROGRESS, .id = ch->s.id, .from = ch->s.received, .to = ch->s.received + ch->got,
                          .expires_at = exp};
  if (db_write(ch->c->db, session_job, &j, e)) {
    registry_upload_chunk_abort(ch);
    return NULL;
  }
  ch->s.received += ch->got;
  ch->s.expires_at = exp;
  o = session_json(&ch->s);
  if (!o) err_set(e, ERR_NO_MEMORY, "out of memory");
  chunk_free(ch);
  return o;
}

void registry_upload_chunk_abort(struct registry_upload_chunk *ch) {
  if (!ch) return;
  if (ch->fd >= 0 && ch->got && ftruncate(ch->fd, (off_t)ch->s.received))
    log_warn("upload.truncate_failed", "upload %s: %s", ch->s.id, strerror(errno));
  chunk_free(ch);
}

static void session_drop(const struct registry_upload_cfg *c, const char *id) {
  struct err e;
  struct session_job j = {.op = S_DELETE, .id = id};
  if (db_write(c->db, session_job, &j, &e)) log_warn("upload.drop_failed", "upload %s: %s", id, e.msg);
  char path[UP_PATH_MAX];
  if (!part_path(c, id, path, &e)) unlink(path);
}

int registry_upload_session_complete(const struct registry_upload_cfg *c, const char *project_id, const char *user_id,
                                     const char *user_name, const char *upload_id, json_t **out, struct err *e) {
  *out = NULL;
  struct session s;
  int rc = session_load(c->db, project_id, user_id, upload_id, &s, e);
  if (rc) return rc;
  if ((rc = busy_take(s.id, e))) goto done;
  if (s.received != s.size) {
    rc = err_set(e, ERR_INVALID_STATE, "upload %s has received %llu of %llu bytes; send the rest before completing", s.id,
                 (unsigned long long)s.received, (unsigned long long)s.size);
    busy_give(s.id);
    goto done;
  }
  struct registry_kv *tags = NULL;
  json_t *tj = s.tags ? json_loads(s.tags, 0, NULL) : NULL;
  size_t nt = json_array_size(tj);
  if (nt && !(tags = calloc(nt, sizeof *tags))) {
    json_decref(tj);
    rc = err_set(e, ERR_NO_MEMORY, "out of memory");
    busy_give(s.id);
    goto done;
  }
  for (size_t i = 0; i < nt; i++) {
    tags[i].key = json_string_value(json_object_get(json_array_get(tj, i), "key"));
    tags[i].value = json_string_value(json_object_get(json_array_get(tj, i), "value"));
  }
  struct registry_upload_meta m = {.name = s.name, .description = s.description, .tags = tags, .ntags = (int)nt,
                                   .expected_sha256 = s.sha256[0] ? s.sha256 : NULL, .user_id = user_name};
  char path[UP_PATH_MAX];
  struct registry_upload_file *f = NULL;
  if (!(rc = part_path(c, s.id, path, e)) && (f = file_adopt(path, max_size(c), e))) {
    if (f->size != s.size)
      rc = err_set(e, ERR_DATA_CORRUPTED, "upload %s holds %llu bytes on disk, not %llu", s.id,
                   (unsigned long long)f->size, (unsigned long long)s.size);
    else
      rc = registry_upload_register(c, project_id, &m, f, out, e);
    f->path[0] = 0; /* session_drop removes it, once we know the session ends */
    registry_upload_file_free(f);
  } else if (!rc) {
    rc = -(int)e->code;
  }
  free(tags);
  json_decref(tj);
  busy_give(s.id);
  /* a refused or registered file ends the session; a passing failure (the
   * store busy, out of memory) leaves it for another try */
  if (rc == 0 || (e->code != ERR_UNAVAILABLE && e->code != ERR_NO_MEMORY)) session_drop(c, s.id);
done:
  session_fini(&s);
  return rc;
}

int registry_upload_session_abort(const struct registry_upload_cfg *c, const char *project_id, const char *user_id,
                                  const char *upload_id, struct err *e) {
  struct session s;
  int rc = session_load(c->db, project_id, user_id, upload_id, &s, e);
  if (rc) return rc;
  if (!(rc = busy_take(s.id, e))) {
    session_drop(c, s.id);
    busy_give(s.id);
  }
  session_fini(&s);
  return rc;
}

struct expire_job {
  int64_t now;
  char (*ids)[REGISTRY_UPLOAD_ID_LEN + 1];
  int n, cap;
};

/* Collects and deletes expired rows in one write; files go afterwards. */
static int expire_job(struct db_conn *c, void *arg, struct err *e) {
  struct expire_job *j = arg;
  struct db_stmt *s = db_prepare(c, "SELECT id FROM model_upload_sessions WHERE expires_at <= ? ORDER BY expires_at LIMIT ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, j->now);
  db_bind_i64(s, 2, j->cap);
  int rc;
  j->n = 0;
  while ((rc = db_step(s, e)) == DB_ROW && j->n < j->cap) str_copy(j->ids[j->n++], REGISTRY_UPLOAD_ID_LEN + 1, db_col_text(s, 0));
  db_stmt_done(s);
  for (int i = 0; rc >= 0 && i < j->n; i++)
    rc = reg_exec(c, "DELETE FROM model_upload_sessions WHERE id = ? AND expires_at <= ?", e, "si", j->ids[i], j->now);
  return rc < 0 ? rc : 0;
}

int registry_upload_expire(const struct registry_upload_cfg *c, int *removed, struct err *e) {
  if (removed) *removed = 0;
  char ids[64][REGISTRY_UPLOAD_ID_LEN + 1];
  struct expire_job j = {.now = time_wall_ms(), .ids = ids, .cap = 64};
  if (db_write(c->db, expire_job, &j, e)) return -(int)e->code;
  for (int i = 0; i < j.n; i++) {
    char path[UP_PATH_MAX];
    if (!part_path(c, ids[i], path, e)) unlink(path);
  }
  if (removed) *removed = j.n;
  if (j.n) log_info("upload.expired", "removed %d expired upload sessions", j.n);
  /* temp files of single-request uploads a crash left behind */
  DIR *d = c->dir ? opendir(c->dir) : NULL;
  if (!d) return 0;
  struct dirent *de;
  int64_t cutoff = (time_wall_ms() - ttl_ms(c)) / 1000;
  while ((de = readdir(d))) {
    size_t n = strlen(de->d_name);
    if (!str_has_prefix(de->d_name, "direct-") || n < 4 || strcmp(de->d_name + n - 4, ".tmp")) continue;
    char path[UP_PATH_MAX];
    struct stat st;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", c->dir, de->d_name) < sizeof path && stat(path, &st) == 0 &&
        (int64_t)st.st_mtime < cutoff)
      unlink(path);
  }
  closedir(d);
  return 0;
}

/* ---- a signature given by the user ------------------------------------------------------------ */

#define SIG_MAX_TEXT (64 * 1024)
#define SIG_MAX_ITEMS 10000

/* One of inputs/outputs/params: an array of specs (objects with a string
 * "type", and a string "name" when given), or MLflow's MLmodel form, the
 * same array as a JSON string. The array, or NULL with e set. */
static json_t *sig_part(json_t *v, const char *what, struct err *e) {
  json_t *arr = NULL;
  if (json_is_string(v)) {
    if (json_string_length(v) > SIG_MAX_TEXT) {
      err_set(e, ERR_INVALID_PARAMETER_VALUE, "signature %s is longer than %d bytes", what, SIG_MAX_TEXT);
      return NULL;
    }
    arr = json_loads(json_string_value(v), JSON_REJECT_DUPLICATES, NULL);
  } else if (json_is_array(v)) {
    arr = json_incref(v);
  }
  if (!json_is_array(arr)) {
    json_decref(arr);
    err_set(e, ERR_INVALID_PARAMETER_VALUE,
            "signature %s must be a list of column or tensor specs (or that list as a JSON string, as in MLmodel)", what);
    return NULL;
  }
  if (json_array_size(arr) > SIG_MAX_ITEMS) {
    json_decref(arr);
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "signature %s has more than %d entries", what, SIG_MAX_ITEMS);
    return NULL;
  }
  size_t i;
  json_t *x;
  json_array_foreach(arr, i, x) {
    json_t *t = json_object_get(x, "type"), *n = json_object_get(x, "name");
    if (!json_is_object(x) || !json_is_string(t) || (n && !json_is_string(n))) {
      json_decref(arr);
      err_set(e, ERR_INVALID_PARAMETER_VALUE, "signature %s[%zu] needs a string \"type\" (and a string \"name\" when named)",
              what, i);
      return NULL;
    }
  }
  return arr;
}

struct sig_job {
  int64_t model_id, version;
  const char *text;
};

static int sig_job(struct db_conn *c, void *arg, struct err *e) {
  struct sig_job *j = arg;
  int rc = reg_exec(c, "UPDATE model_version_files SET signature = ? WHERE model_id = ? AND version = ? AND signature IS NULL",
                    e, "sii", j->text, j->model_id, j->version);
  if (rc || db_changes(c) > 0) return rc;
  struct db_stmt *s = db_prepare(c, "SELECT 1 FROM model_version_files WHERE model_id = ? AND version = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, j->model_id);
  db_bind_i64(s, 2, j->version);
  int st = db_step(s, e);
  db_stmt_done(s);
  if (st < 0) return st;
  if (st == DB_ROW)
    return err_set(e, ERR_CONFLICT,
                   "this version already has a signature (declared by its file, or given before); a version's "
                   "signature does not change: upload a new version");
  return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Model Version (version=%lld) was not made from an uploaded file",
                 (long long)j->version);
}

json_t *registry_upload_signature_set(struct db *db, const char *project_id, const char *name, const char *version,
                                      json_t *sig, struct err *e) {
  int64_t v;
  if (reg_version_parse(version, &v, e)) return NULL;
  if (!json_is_object(sig) || !json_object_get(sig, "inputs")) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "signature must be an object with \"inputs\" (and \"outputs\", \"params\" when known)");
    return NULL;
  }
  const char *k;
  json_t *val;
  json_object_foreach(sig, k, val) {
    if (!str_eq(k, "inputs") && !str_eq(k, "outputs") && !str_eq(k, "params")) {
      err_set(e, ERR_INVALID_PARAMETER_VALUE, "signature takes inputs, outputs and params, not '%.64s'", k);
      return NULL;
    }
  }
  json_t *norm = json_object();
  static const char *const parts[] = {"inputs", "outputs", "params"};
  for (int i = 0; i < 3; i++) {
    json_t *p = json_object_get(sig, parts[i]);
    if (!p || json_is_null(p)) continue;
    json_t *arr = sig_part(p, parts[i], e);
    if (!arr) {
      json_decref(norm);
      return NULL;
    }
    json_object_set_new(norm, parts[i], arr);
  }
  json_object_set_new(norm, "given_by", json_string("user"));
  char *text = json_dumps(norm, JSON_COMPACT);
  json_decref(norm);
  if (!text) {
    err_set(e, ERR_NO_MEMORY, "out of memory");
    return NULL;
  }
  struct db_conn *c = db_reader_acquire(db, e);
  struct reg_model m = {0};
  int rc = c ? reg_model_load(c, project_id, name ? name : "", &m, e) : -ERR_UNAVAILABLE;
  if (!rc) rc = reg_version_exists(c, &m, v, e);
  if (c) db_reader_release(db, c);
  struct sig_job j = {m.id, v, text};
  if (!rc) rc = db_write(db, sig_job, &j, e);
  free(text);
  return rc ? NULL : registry_upload_answer(db, project_id, name, version, e);
}
