/* store: the metadata database (SQLite now, PostgreSQL later behind the same
 * driver table), its migrations, the group-commit writer, and the
 * content-addressed blob store. */
#ifndef KILN_STORE_H
#define KILN_STORE_H

#include "base/base.h"

#include <stdio.h>
#include <sys/types.h>

/* ---- metadata database ---------------------------------------------------- */
struct db;      /* the store: driver, reader pool, writer thread */
struct db_conn; /* one connection, used by one thread at a time */
struct db_stmt; /* a prepared statement, cached per connection */

struct db_opts {
  int max_readers;      /* reader connections kept open (default 8) */
  int busy_timeout_ms;  /* default 5000 */
  int group_max;        /* most jobs committed in one transaction (default 256) */
  bool synchronous_full; /* fsync the WAL on every commit (default true) */
};

/* url: "sqlite:PATH" or a bare path. Does not migrate. */
int db_open(struct db **out, const char *url, const struct db_opts *opts, struct err *e);
/* Drains queued writes, stops the writer, closes every connection. */
void db_close(struct db *db);
/* Applies the migrations compiled into the binary that are not applied yet,
 * each in its own transaction; returns how many it applied or <0. */
int db_migrate(struct db *db, struct err *e);
int db_migrations_applied(struct db *db);  /* rows in schema_migrations */
int db_migrations_known(void);            /* migrations compiled in */
const char *db_driver_name(const struct db *db);
/* Cheap round trip for /readyz. */
int db_ping(struct db *db, struct err *e);

/* Reads run on a pooled connection of their own. */
struct db_conn *db_reader_acquire(struct db *db, struct err *e);
void db_reader_release(struct db *db, struct db_conn *c);

/* Writes: fn runs on the single writer thread inside a savepoint of a shared
 * transaction (group commit). db_write returns after that transaction is
 * durable, with fn's result; if fn fails only its own savepoint is rolled
 * back. fn must not block on anything but the database. */
typedef int (*db_write_fn)(struct db_conn *c, void *arg, struct err *e);
int db_write(struct db *db, db_write_fn fn, void *arg, struct err *e);
/* A per-thread pointer for request-scoped metadata (who is calling, from
 * where, which request id) that write jobs can read: inside fn,
 * db_context() returns what the thread that called db_write had set.
 * Opaque to the store; the caller keeps it alive while it is set. */
void db_context_set(const void *ctx);
const void *db_context(void);
/* Counters for tests and metrics. */
struct db_stats {
  uint64_t commits;   /* transactions committed by the writer */
  uint64_t jobs;      /* write jobs run */
  uint64_t max_group; /* largest group seen */
};
void db_stats_get(struct db *db, struct db_stats *out);

/* Statements. SQL uses `?` placeholders and portable SQL (see
 * docs/architecture.md for the SQLite-only constructs we allow). A cached
 * statement comes back reset with bindings cleared. Indexes are 1-based for
 * binds and 0-based for columns, as in SQLite. */
enum { DB_DONE = 0, DB_ROW = 1 };
struct db_stmt *db_prepare(struct db_conn *c, const char *sql, struct err *e);
int db_bind_text(struct db_stmt *s, int idx, const char *v); /* NULL binds NULL */
int db_bind_textn(struct db_stmt *s, int idx, const char *v, size_t n);
int db_bind_i64(struct db_stmt *s, int idx, int64_t v);
int db_bind_f64(struct db_stmt *s, int idx, double v);
int db_bind_blob(struct db_stmt *s, int idx, const void *p, size_t n);
int db_bind_null(struct db_stmt *s, int idx);
int db_step(struct db_stmt *s, struct err *e); /* DB_ROW, DB_DONE or <0 */
void db_stmt_done(struct db_stmt *s);         /* reset early */
/* Ready for another step with fresh binds, still handed out (the cache
 * never evicts it): a loop of inserts binds and steps one statement
 * without a cache lookup per row. End with db_stmt_done. */
void db_stmt_reset(struct db_stmt *s);
int64_t db_col_i64(struct db_stmt *s, int col);
double db_col_f64(struct db_stmt *s, int col);
const char *db_col_text(struct db_stmt *s, int col); /* valid until next step */
const void *db_col_blob(struct db_stmt *s, int col, size_t *n);
bool db_col_null(struct db_stmt *s, int col);
/* Statements cached on this connection (bounded; for tests). */
size_t db_conn_cached_statements(const struct db_conn *c);
int db_exec(struct db_conn *c, const char *sql, struct err *e); /* no rows, may hold many statements */
int64_t db_changes(struct db_conn *c);
/* Runs `PRAGMA integrity_check` (or the driver's equivalent); 0 when ok. */
int db_check_integrity(struct db *db, struct err *e);

/* The driver table: what a database backend provides. Version bumps when the
 * table changes shape. */
#define DB_DRIVER_VERSION 1
struct db_driver {
  int version;
  const char *name;
  int (*conn_open)(const char *target, const struct db_opts *o, bool writer, void **out, struct err *e);
  void (*conn_close)(void *conn);
  void *(*prepare)(void *conn, const char *sql, struct err *e);
  void (*finalize)(void *stmt);
  void (*reset)(void *stmt);
  int (*bind_text)(void *stmt, int idx, const char *v, size_t n);
  int (*bind_i64)(void *stmt, int idx, int64_t v);
  int (*bind_f64)(void *stmt, int idx, double v);
  int (*bind_blob)(void *stmt, int idx, const void *p, size_t n);
  int (*bind_null)(void *stmt, int idx);
  int (*step)(void *stmt, struct err *e);
  int64_t (*col_i64)(void *stmt, int col);
  double (*col_f64)(void *stmt, int col);
  const char *(*col_text)(void *stmt, int col);
  const void *(*col_blob)(void *stmt, int col, size_t *n);
  bool (*col_null)(void *stmt, int col);
  int (*exec)(void *conn, const char *sql, struct err *e);
  int64_t (*changes)(void *conn);
};
extern const struct db_driver db_driver_sqlite;

/* ---- blob store ----------------------------------------------------------- *
 * Content addressed by the SHA-256 of the plaintext. On disk each blob is a
 * small header + payload (raw or zstd, optionally XChaCha20-Poly1305
 * secretstream). Reads verify the hash, so corruption is reported as
 * ERR_DATA_CORRUPTED and never returned as data. */
struct blob_store;
struct blob_writer;
struct blob_reader;

struct blob_opts {
  const char *master_key_hex; /* 64 hex chars = 32-byte key, or NULL: no encryption */
  int zstd_level;             /* default 3 */
  bool compress;              /* zstd where it pays; a NULL opts means true, a zeroed struct false */
};

/* url: "file:DIR" or a bare directory. db records the blobs (refcounts, GC). */
int blob_open(struct blob_store **out, const char *url, struct db *db, const struct blob_opts *o,
              struct err *e);
void blob_close(struct blob_store *bs);

struct blob_writer *blob_put_begin(struct blob_store *bs, struct err *e);
int blob_put_write(struct blob_writer *w, const void *p, size_t n, struct err *e);
/* Finishes the blob: sha256_hex_out gets the address. If expected_sha256 is
 * given and differs, nothing is stored and ERR_INVALID_PARAMETER_VALUE is
 * returned. The writer is freed in every case. */
int blob_put_commit(struct blob_writer *w, const char *expected_sha256, char sha256_hex_out[65],
                    struct err *e);
void blob_put_abort(struct blob_writer *w);
/* One-shot convenience. */
int blob_put_mem(struct blob_store *bs, const void *p, size_t n, char sha256_hex_out[65], struct err *e);

struct blob_info {
  uint64_t size;        /* plaintext bytes */
  uint64_t stored_size; /* bytes on disk */
  char codec[8];        /* "raw" or "zstd" */
  bool encrypted;
  int64_t refcount;
};
int blob_stat(struct blob_store *bs, const char *sha256_hex, struct blob_info *out, struct err *e);
struct blob_reader *blob_get_open(struct blob_store *bs, const char *sha256_hex, struct err *e);
/* Returns bytes read, 0 at the verified end, or <0 (ERR_DATA_CORRUPTED on a
 * failed integrity check). */
ssize_t blob_get_read(struct blob_reader *r, void *p, size_t cap, struct err *e);
void blob_get_close(struct blob_reader *r);

/* Reference counts live in the metadata store; call from inside a db_write
 * job so they commit with the row that holds the reference. */
int blob_ref(struct db_conn *c, const char *sha256_hex, struct err *e);
int blob_unref(struct db_conn *c, const char *sha256_hex, struct err *e);
/* Removes blobs with no references whose last put is older than grace_s.
 * Safe against concurrent puts: both run on the writer. */
int blob_gc(struct blob_store *bs, int64_t grace_s, int *removed, struct err *e);
/* The same, saying how much it reclaimed (bytes as stored on disk). */
struct blob_gc_report {
  int removed;
  uint64_t bytes;
};
int blob_gc_report(struct blob_store *bs, int64_t grace_s, struct blob_gc_report *out, struct err *e);

/* The object backend table (file now, S3 later): raw named objects, no
 * knowledge of hashing, compression or encryption. */
#define BLOB_BACKEND_VERSION 1
struct blob_backend {
  int version;
  const char *name;
  int (*open)(const char *target, void **out, struct err *e);
  void (*close)(void *be);
  /* A temporary object that becomes `name` on commit (atomic, durable). */
  int (*tmp_create)(void *be, void **tmp, struct err *e);
  int (*tmp_write)(void *tmp, const void *p, size_t n, struct err *e);
  /* Rewrites the first n bytes already written (a header whose size field is
   * known only at the end) and makes the content durable, so that tmp_commit,
   * which runs on the db writer thread, is only the rename. */
  int (*tmp_seal)(void *tmp, const void *head, size_t n, struct err *e);
  int (*tmp_commit)(void *be, void *tmp, const char *name, struct err *e); /* frees tmp */
  void (*tmp_abort)(void *tmp);                                             /* frees tmp */
  int (*exists)(void *be, const char *name);
  int (*read_open)(void *be, const char *name, void **rd, struct err *e);
  ssize_t (*read)(void *rd, void *p, size_t n, struct err *e);
  void (*read_close)(void *rd);
  int (*remove)(void *be, const char *name, struct err *e);
};
extern const struct blob_backend blob_backend_file;

#endif
