/* store/db: the metadata store — a driver table, a pool of reader
 * connections, one writer thread that commits many requests' writes in one
 * transaction (group commit), and the migrations compiled into the binary. */
#include "store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STMT_CACHE 128
/* Callers may build SQL from user input (search filters), so the cache is
 * bounded: past STMT_CACHE_MAX statements, those not used in the last
 * STMT_CACHE_MAX / 2 prepares and not in use right now are finalized. */
#define STMT_CACHE_MAX 256

struct db_stmt {
  struct db_stmt *next;
  struct db_conn *conn;
  void *h;
  char *sql;
  bool busy;        /* handed out by db_prepare, not yet given back by db_stmt_done */
  uint64_t used_at; /* the connection's prepare tick when last handed out */
};

struct db_conn {
  const struct db_driver *drv;
  void *h;
  struct db_stmt *cache[STMT_CACHE];
  size_t nstmts;
  uint64_t tick;
  struct db_conn *next_free;
};

struct db_job {
  db_write_fn fn;
  void *arg;
  const void *ctx; /* the submitting thread's db_context() */
  int rc;
  bool done;
  struct err err;
  struct db_job *next;
};

struct db {
  const struct db_driver *drv;
  char *target;
  struct db_opts opts;
  /* readers */
  pthread_mutex_t rmu;
  pthread_cond_t rcv;
  struct db_conn *free_readers;
  int nreaders;
  /* writer */
  struct db_conn *wconn;
  pthread_t wthread;
  bool wstarted;
  pthread_mutex_t wmu;
  pthread_cond_t work_cv, done_cv;
  struct db_job *qhead, *qtail;
  bool stop;
  struct db_stats stats;
};

/* ---- connections and statements ------------------------------------------ */

static int conn_open(struct db *db, bool writer, struct db_conn **out, struct err *e) {
  struct db_conn *c = calloc(1, sizeof *c);
  if (!c) return err_set(e, ERR_NO_MEMORY, NULL);
  c->drv = db->drv;
  int rc = db->drv->conn_open(db->target, &db->opts, writer, &c->h, e);
  if (rc) {
    free(c);
    return rc;
  }
  *out = c;
  return 0;
}

static void conn_close(struct db_conn *c) {
  if (!c) return;
  for (int i = 0; i < STMT_CACHE; i++) {
    struct db_stmt *s = c->cache[i];
    while (s) {
      struct db_stmt *n = s->next;
      c->drv->finalize(s->h);
      free(s->sql);
      free(s);
      s = n;
    }
  }
  c->drv->conn_close(c->h);
  free(c);
}

static unsigned sql_hash(const char *s) {
  unsigned h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

static void stmt_cache_trim(struct db_conn *c) {
  uint64_t keep_after = c->tick > STMT_CACHE_MAX / 2 ? c->tick - STMT_CACHE_MAX / 2 : 0;
  for (int i = 0; i < STMT_CACHE; i++) {
    for (struct db_stmt **pp = &c->cache[i]; *pp;) {
      struct db_stmt *s = *pp;
      if (!s->busy && s->used_at < keep_after) {
        *pp = s->next;
        c->drv->finalize(s->h);
        free(s->sql);
        free(s);
        c->nstmts--;
      } else {
        pp = &s->next;
      }
    }
  }
}

size_t db_conn_cached_statements(const struct db_conn *c) { return c->nstmts; }

struct db_stmt *db_prepare(struct db_conn *c, const char *sql, struct err *e) {
  unsigned h = sql_hash(sql) % STMT_CACHE;
  c->tick++;
  for (struct db_stmt *s = c->cache[h]; s; s = s->next) {
    /* compare the text: a caller may build SQL in a reused buffer */
    if (strcmp(s->sql, sql) == 0) {
      c->drv->reset(s->h);
      s->busy = true;
      s->used_at = c->tick;
      return s;
    }
  }
  if (c->nstmts >= STMT_CACHE_MAX) stmt_cache_trim(c);
  void *st = c->drv->prepare(c->h, sql, e);
  if (!st) return NULL;
  struct db_stmt *s = calloc(1, sizeof *s);
  if (!s || !(s->sql = strdup(sql))) {
    free(s);
    c->drv->finalize(st);
    err_set(e, ERR_NO_MEMORY, NULL);
    return NULL;
  }
  s->conn = c;
  s->h = st;
  s->busy = true;
  s->used_at = c->tick;
  s->next = c->cache[h];
  c->cache[h] = s;
  c->nstmts++;
  return s;
}

int db_bind_text(struct db_stmt *s, int idx, const char *v) {
  return v ? s->conn->drv->bind_text(s->h, idx, v, strlen(v)) : s->conn->drv->bind_null(s->h, idx);
}
int db_bind_textn(struct db_stmt *s, int idx, const char *v, size_t n) {
  return s->conn->drv->bind_text(s->h, idx, v, n);
}
int db_bind_i64(struct db_stmt *s, int idx, int64_t v) { return s->conn->drv->bind_i64(s->h, idx, v); }
int db_bind_f64(struct db_stmt *s, int idx, double v) { return s->conn->drv->bind_f64(s->h, idx, v); }
int db_bind_blob(struct db_stmt *s, int idx, const void *p, size_t n) {
  return s->conn->drv->bind_blob(s->h, idx, p, n);
}
int db_bind_null(struct db_stmt *s, int idx) { return s->conn->drv->bind_null(s->h, idx); }
int db_step(struct db_stmt *s, struct err *e) { return s->conn->drv->step(s->h, e); }
void db_stmt_done(struct db_stmt *s) {
  s->conn->drv->reset(s->h);
  s->busy = false;
}
void db_stmt_reset(struct db_stmt *s) { s->conn->drv->reset(s->h); }
int64_t db_col_i64(struct db_stmt *s, int col) { return s->conn->drv->col_i64(s->h, col); }
double db_col_f64(struct db_stmt *s, int col) { return s->conn->drv->col_f64(s->h, col); }
const char *db_col_text(struct db_stmt *s, int col) { return s->conn->drv->col_text(s->h, col); }
const void *db_col_blob(struct db_stmt *s, int col, size_t *n) {
  return s->conn->drv->col_blob(s->h, col, n);
}
bool db_col_null(struct db_stmt *s, int col) { return s->conn->drv->col_null(s->h, col); }
int db_exec(struct db_conn *c, const char *sql, struct err *e) { return c->drv->exec(c->h, sql, e); }
int64_t db_changes(struct db_conn *c) { return c->drv->changes(c->h); }

/* ---- readers ------------------------------------------------------------ */

struct db_conn *db_reader_acquire(struct db *db, struct err *e) {
  pthread_mutex_lock(&db->rmu);
  for (;;) {
    struct db_conn *c = db->free_readers;
    if (c) {
      db->free_readers = c->next_free;
      pthread_mutex_unlock(&db->rmu);
      return c;
    }
    if (db->nreaders < db->opts.max_readers) {
      db->nreaders++;
      pthread_mutex_unlock(&db->rmu);
      if (conn_open(db, false, &c, e) == 0) return c;
      pthread_mutex_lock(&db->rmu);
      db->nreaders--;
      pthread_cond_signal(&db->rcv);
      pthread_mutex_unlock(&db->rmu);
      return NULL;
    }
    pthread_cond_wait(&db->rcv, &db->rmu);
  }
}

void db_reader_release(struct db *db, struct db_conn *c) {
  if (!c) return;
  pthread_mutex_lock(&db->rmu);
  c->next_free = db->free_readers;
  db->free_readers = c;
  pthread_cond_signal(&db->rcv);
  pthread_mutex_unlock(&db->rmu);
}

/* ---- the writer: group commit ------------------------------------------ *
 * Jobs queue up while a transaction commits; the next transaction takes all
 * of them (up to group_max). Each job runs in its own savepoint so one
 * failing job rolls back alone; every job is acknowledged only after the
 * COMMIT that holds it returned, which with synchronous=FULL means the WAL
 * is on disk. */

static _Thread_local const void *tl_context;
void db_context_set(const void *ctx) { tl_context = ctx; }
const void *db_context(void) { return tl_context; }

static void writer_run_batch(struct db *db, struct db_job *batch, int n) {
  struct err e;
  int rc = db_exec(db->wconn, "BEGIN IMMEDIATE", &e);
  if (rc) {
    for (struct db_job *j = batch; j; j = j->next) {
      j->rc = rc;
      j->err = e;
    }
    return;
  }
  for (struct db_job *j = batch; j; j = j->next) {
    err_clear(&j->err);
    if ((rc = db_exec(db->wconn, "SAVEPOINT kiln_job", &j->err))) {
      j->rc = rc;
      continue;
    }
    tl_context = j->ctx; /* its submitter waits in db_write, so ctx is alive */
    j->rc = j->fn(db->wconn, j->arg, &j->err);
    tl_context = NULL;
    if (j->rc < 0) {
      if (j->err.code == ERR_OK) err_set(&j->err, (enum err_code)-j->rc, NULL);
      db_exec(db->wconn, "ROLLBACK TO kiln_job", NULL);
    }
    db_exec(db->wconn, "RELEASE kiln_job", NULL);
  }
  rc = db_exec(db->wconn, "COMMIT", &e);
  if (rc) {
    db_exec(db->wconn, "ROLLBACK", NULL);
    for (struct db_job *j = batch; j; j = j->next) {
      if (j->rc >= 0) {
        j->rc = rc;
        j->err = e;
      }
    }
    log_error("db.commit_failed", "group of %d writes rolled back: %s", n, e.msg);
    return;
  }
  db->stats.commits++;
  db->stats.jobs += (uint64_t)n;
  if ((uint64_t)n > db->stats.max_group) db->stats.max_group = (uint64_t)n;
}

static void *writer_main(void *arg) {
  struct db *db = arg;
  pthread_mutex_lock(&db->wmu);
  for (;;) {
    while (!db->qhead && !db->stop) pthread_cond_wait(&db->work_cv, &db->wmu);
    if (!db->qhead && db->stop) break;
    struct db_job *batch = db->qhead, *last = batch;
    int n = 1;
    while (last->next && n < db->opts.group_max) {
      last = last->next;
      n++;
    }
    db->qhead = last->next;
    if (!db->qhead) db->qtail = NULL;
    last->next = NULL;
    pthread_mutex_unlock(&db->wmu);
    writer_run_batch(db, batch, n);
    pthread_mutex_lock(&db->wmu);
    for (struct db_job *j = batch; j;) {
      struct db_job *nx = j->next; /* the waiter may free j once done is set */
      j->done = true;
      j = nx;
    }
    pthread_cond_broadcast(&db->done_cv);
  }
  pthread_mutex_unlock(&db->wmu);
  return NULL;
}

int db_write(struct db *db, db_write_fn fn, void *arg, struct err *e) {
  struct db_job job = {.fn = fn, .arg = arg, .ctx = tl_context};
  pthread_mutex_lock(&db->wmu);
  if (db->stop) {
    pthread_mutex_unlock(&db->wmu);
    return err_set(e, ERR_UNAVAILABLE, "the store is shutting down");
  }
  if (db->qtail) db->qtail->next = &job;
  else db->qhead = &job;
  db->qtail = &job;
  pthread_cond_signal(&db->work_cv);
  while (!job.done) pthread_cond_wait(&db->done_cv, &db->wmu);
  pthread_mutex_unlock(&db->wmu);
  if (job.rc < 0 && e) *e = job.err;
  return job.rc;
}

void db_stats_get(struct db *db, struct db_stats *out) {
  pthread_mutex_lock(&db->wmu);
  *out = db->stats;
  pthread_mutex_unlock(&db->wmu);
}

/* ---- open / close -------------------------------------------------------- */

int db_open(struct db **out, const char *url, const struct db_opts *o, struct err *e) {
  const struct db_driver *drv = &db_driver_sqlite;
  const char *target = url;
  if (str_has_prefix(url, "sqlite:")) {
    target = url + 7;
    if (str_has_prefix(target, "//")) target += 2;
  } else if (str_has_prefix(url, "postgres://") || str_has_prefix(url, "postgresql://")) {
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "the PostgreSQL driver is not built into this kiln yet; use sqlite:PATH");
  } else if (strstr(url, "://")) {
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "unknown database URL scheme in '%s'", url);
  }
  if (!*target) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "database path is empty");
  struct db *db = calloc(1, sizeof *db);
  if (!db) return err_set(e, ERR_NO_MEMORY, NULL);
  db->drv = drv;
  db->target = strdup(target);
  db->opts.max_readers = o && o->max_readers > 0 ? o->max_readers : 8;
  db->opts.busy_timeout_ms = o && o->busy_timeout_ms > 0 ? o->busy_timeout_ms : 5000;
  db->opts.group_max = o && o->group_max > 0 ? o->group_max : 256;
  db->opts.synchronous_full = o ? o->synchronous_full : true;
  pthread_mutex_init(&db->rmu, NULL);
  pthread_cond_init(&db->rcv, NULL);
  pthread_mutex_init(&db->wmu, NULL);
  pthread_cond_init(&db->work_cv, NULL);
  pthread_cond_init(&db->done_cv, NULL);
  int rc = conn_open(db, true, &db->wconn, e);
  if (rc == 0) {
    rc = db_exec(db->wconn,
                 "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY,"
                 " name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
                 e);
  }
  if (rc == 0 && pthread_create(&db->wthread, NULL, writer_main, db) != 0)
    rc = err_set(e, ERR_INTERNAL, "cannot start the writer thread");
  if (rc) {
    db->wstarted = false;
    db_close(db);
    return rc;
  }
  db->wstarted = true;
  *out = db;
  return 0;
}

void db_close(struct db *db) {
  if (!db) return;
  if (db->wstarted) {
    pthread_mutex_lock(&db->wmu);
    db->stop = true;
    pthread_cond_signal(&db->work_cv);
    pthread_mutex_unlock(&db->wmu);
    pthread_join(db->wthread, NULL);
  }
  conn_close(db->wconn);
  struct db_conn *c = db->free_readers;
  while (c) {
    struct db_conn *n = c->next_free;
    conn_close(c);
    c = n;
  }
  pthread_mutex_destroy(&db->rmu);
  pthread_cond_destroy(&db->rcv);
  pthread_mutex_destroy(&db->wmu);
  pthread_cond_destroy(&db->work_cv);
  pthread_cond_destroy(&db->done_cv);
  free(db->target);
  free(db);
}

const char *db_driver_name(const struct db *db) { return db->drv->name; }

static int db_read_scalar(struct db *db, const char *sql, int64_t *out, const char **text_out,
                          char *text_buf, size_t text_cap, struct err *e) {
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -ERR_UNAVAILABLE;
  int rc = -ERR_INTERNAL;
  struct db_stmt *s = db_prepare(c, sql, e);
  if (s && (rc = db_step(s, e)) == DB_ROW) {
    if (out) *out = db_col_i64(s, 0);
    if (text_out) {
      const char *t = db_col_text(s, 0);
      str_copy(text_buf, text_cap, t ? t : "");
      *text_out = text_buf;
    }
    rc = 0;
  } else if (rc == DB_DONE) {
    rc = err_set(e, ERR_INTERNAL, "query returned no row");
  }
  if (s) db_stmt_done(s);
  db_reader_release(db, c);
  return rc;
}

int db_ping(struct db *db, struct err *e) {
  int64_t v = 0;
  return db_read_scalar(db, "SELECT 1", &v, NULL, NULL, 0, e);
}

int db_check_integrity(struct db *db, struct err *e) {
  char buf[256];
  const char *t = NULL;
  int rc = db_read_scalar(db, "PRAGMA integrity_check", NULL, &t, buf, sizeof buf, e);
  if (rc) return rc;
  if (!str_eq(t, "ok")) return err_set(e, ERR_DATA_CORRUPTED, "integrity check: %s", t);
  return 0;
}

/* ---- migrations ----------------------------------------------------------- */

struct embedded_file {
  const char *path;
  const unsigned char *data;
  size_t len;
};
extern const struct embedded_file migrations_files[];
extern const size_t migrations_files_count;

/* "/0001_name.sql" -> 1 */
static int64_t migration_version(const char *path) {
  const char *p = strrchr(path, '/');
  p = p ? p + 1 : path;
  int64_t v = 0;
  int digits = 0;
  while (*p >= '0' && *p <= '9' && digits < 9) v = v * 10 + (*p++ - '0'), digits++;
  size_t n = strlen(path);
  if (digits == 0 || *p != '_' || n < 4 || strcmp(path + n - 4, ".sql") != 0) return -1;
  return v;
}

int db_migrations_known(void) {
  int n = 0;
  for (size_t i = 0; i < migrations_files_count; i++)
    if (migration_version(migrations_files[i].path) > 0) n++;
  return n;
}

int db_migrations_applied(struct db *db) {
  int64_t n = 0;
  struct err e;
  if (db_read_scalar(db, "SELECT COUNT(*) FROM schema_migrations", &n, NULL, NULL, 0, &e)) return -1;
  return (int)n;
}

struct migration_job {
  int64_t version;
  const char *name;
  const char *sql;
};

static int migration_apply(struct db_conn *c, void *arg, struct err *e) {
  struct migration_job *m = arg;
  int rc = db_exec(c, m->sql, e);
  if (rc) return rc;
  struct db_stmt *s = db_prepare(c, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, m->version);
  db_bind_text(s, 2, m->name);
  db_bind_i64(s, 3, time_wall_ms());
  rc = db_step(s, e);
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

int db_migrate(struct db *db, struct err *e) {
  int64_t max_applied = 0;
  int rc = db_read_scalar(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &max_applied, NULL, NULL, 0, e);
  if (rc) return rc;
  int64_t max_known = 0;
  for (size_t i = 0; i < migrations_files_count; i++) {
    int64_t v = migration_version(migrations_files[i].path);
    if (v > max_known) max_known = v;
  }
  if (max_applied > max_known)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "the database is at schema version %lld, newer than this kiln knows (%lld); "
                   "upgrade kiln", (long long)max_applied, (long long)max_known);
  int applied = 0;
  /* apply in version order whatever the embedding order */
  for (int64_t want = max_applied + 1; want <= max_known; want++) {
    const struct embedded_file *f = NULL;
    for (size_t i = 0; i < migrations_files_count; i++)
      if (migration_version(migrations_files[i].path) == want) f = &migrations_files[i];
    if (!f) return err_set(e, ERR_INTERNAL, "migration %lld is missing from this build", (long long)want);
    const char *base = strrchr(f->path, '/');
    base = base ? base + 1 : f->path;
    struct migration_job m = {want, base, (const char *)f->data};
    if ((rc = db_write(db, migration_apply, &m, e))) {
      char msg[sizeof e->msg];
      str_copy(msg, sizeof msg, e ? e->msg : "");
      return err_set(e, e ? e->code : ERR_INTERNAL, "migration %s failed: %s", base, msg);
    }
    log_info("db.migrated", "applied migration %s", base);
    applied++;
  }
  return applied;
}
