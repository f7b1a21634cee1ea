/* store/sqlite: the SQLite driver — WAL, busy timeout, strict pragmas. */
#include "store.h"

#include <sqlite3.h>
#include <string.h>

static int sq_err(sqlite3 *db, int rc, struct err *e, const char *what) {
  enum err_code c = ERR_INTERNAL;
  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) c = ERR_UNAVAILABLE;
  else if (rc == SQLITE_CONSTRAINT) c = ERR_RESOURCE_ALREADY_EXISTS;
  else if (rc == SQLITE_NOMEM) c = ERR_NO_MEMORY;
  else if (rc == SQLITE_IOERR || rc == SQLITE_FULL || rc == SQLITE_CANTOPEN) c = ERR_IO;
  else if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) c = ERR_DATA_CORRUPTED;
  return err_set(e, c, "%s: %s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static int sq_open(const char *target, const struct db_opts *o, bool writer, void **out, struct err *e) {
  sqlite3 *db = NULL;
  int flags = SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READWRITE);
  int rc = sqlite3_open_v2(target, &db, flags, NULL);
  if (rc != SQLITE_OK) {
    int r = sq_err(db, rc, e, "open database");
    sqlite3_close(db);
    return r;
  }
  sqlite3_busy_timeout(db, o->busy_timeout_ms);
  sqlite3_extended_result_codes(db, 0);
  char sql[256];
  snprintf(sql, sizeof sql,
           "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=ON;"
           " PRAGMA temp_store=MEMORY; PRAGMA cache_size=-16000;%s",
           o->synchronous_full ? "FULL" : "NORMAL", writer ? "" : " PRAGMA query_only=1;");
  char *msg = NULL;
  rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    err_set(e, rc == SQLITE_NOTADB ? ERR_DATA_CORRUPTED : ERR_IO, "configure database: %s",
            msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    sqlite3_close(db);
    return -(int)(e ? e->code : ERR_IO);
  }
  *out = db;
  return 0;
}

static void sq_close(void *c) { sqlite3_close_v2(c); }

static void *sq_prepare(void *c, const char *sql, struct err *e) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v3(c, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
  if (rc != SQLITE_OK) {
    sq_err(c, rc, e, "prepare");
    return NULL;
  }
  return st;
}

static void sq_finalize(void *s) { sqlite3_finalize(s); }
static void sq_reset(void *s) {
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
}
static int sq_rc(int rc) { return rc == SQLITE_OK ? 0 : -ERR_INTERNAL; }
static int sq_bind_text(void *s, int i, const char *v, size_t n) {
  return sq_rc(sqlite3_bind_text64(s, i, v, n, SQLITE_TRANSIENT, SQLITE_UTF8));
}
static int sq_bind_i64(void *s, int i, int64_t v) { return sq_rc(sqlite3_bind_int64(s, i, v)); }
static int sq_bind_f64(void *s, int i, double v) { return sq_rc(sqlite3_bind_double(s, i, v)); }
static int sq_bind_blob(void *s, int i, const void *p, size_t n) {
  return sq_rc(sqlite3_bind_blob64(s, i, p, n, SQLITE_TRANSIENT));
}
static int sq_bind_null(void *s, int i) { return sq_rc(sqlite3_bind_null(s, i)); }

static int sq_step(void *s, struct err *e) {
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) return DB_ROW;
  if (rc == SQLITE_DONE) return DB_DONE;
  sqlite3 *db = sqlite3_db_handle(s);
  rc = sqlite3_errcode(db);
  int r = sq_err(db, rc, e, "query");
  sqlite3_reset(s);
  return r;
}

static int64_t sq_col_i64(void *s, int c) { return sqlite3_column_int64(s, c); }
static double sq_col_f64(void *s, int c) { return sqlite3_column_double(s, c); }
static const char *sq_col_text(void *s, int c) { return (const char *)sqlite3_column_text(s, c); }
static const void *sq_col_blob(void *s, int c, size_t *n) {
  const void *p = sqlite3_column_blob(s, c);
  if (n) *n = (size_t)sqlite3_column_bytes(s, c);
  return p;
}
static bool sq_col_null(void *s, int c) { return sqlite3_column_type(s, c) == SQLITE_NULL; }

static int sq_exec(void *c, const char *sql, struct err *e) {
  char *msg = NULL;
  int rc = sqlite3_exec(c, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    int r = sq_err(c, rc, e, "exec");
    if (e && msg) snprintf(e->msg, sizeof e->msg, "exec: %s", msg);
    sqlite3_free(msg);
    return r;
  }
  return 0;
}

static int64_t sq_changes(void *c) { return sqlite3_changes64(c); }

const struct db_driver db_driver_sqlite = {
    .version = DB_DRIVER_VERSION,
    .name = "sqlite",
    .conn_open = sq_open,
    .conn_close = sq_close,
    .prepare = sq_prepare,
    .finalize = sq_finalize,
    .reset = sq_reset,
    .bind_text = sq_bind_text,
    .bind_i64 = sq_bind_i64,
    .bind_f64 = sq_bind_f64,
    .bind_blob = sq_bind_blob,
    .bind_null = sq_bind_null,
    .step = sq_step,
    .col_i64 = sq_col_i64,
    .col_f64 = sq_col_f64,
    .col_text = sq_col_text,
    .col_blob = sq_col_blob,
    .col_null = sq_col_null,
    .exec = sq_exec,
    .changes = sq_changes,
};
