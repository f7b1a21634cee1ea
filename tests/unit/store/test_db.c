/* tests for store/db: migrations, group commit, savepoint isolation, readers. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

static char dir[64];
static char url[128];

static void setup(void) {
  log_set_quiet(true);
  str_copy(dir, sizeof dir, "/tmp/kiln-db-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  snprintf(url, sizeof url, "sqlite:%s/kiln.db", dir);
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(db, .init = setup, .fini = teardown);

static struct db *open_migrated(void) {
  struct db *db;
  struct err e;
  cr_assert_eq(db_open(&db, url, NULL, &e), 0, "%s", e.msg);
  cr_assert_geq(db_migrate(db, &e), 0, "%s", e.msg);
  return db;
}

Test(db, migrations_apply_once_and_rerun_is_a_no_op) {
  struct db *db;
  struct err e;
  cr_assert_eq(db_open(&db, url, NULL, &e), 0, "%s", e.msg);
  cr_assert_eq(db_migrations_applied(db), 0);
  int n = db_migrate(db, &e);
  cr_assert_eq(n, db_migrations_known(), "fresh store applies all: %s", e.msg);
  cr_assert_geq(n, 1);
  cr_assert_eq(db_migrate(db, &e), 0, "second run applies nothing");
  cr_assert_eq(db_migrations_applied(db), n);
  db_close(db);
  /* reopening keeps the state */
  cr_assert_eq(db_open(&db, url, NULL, &e), 0);
  cr_assert_eq(db_migrate(db, &e), 0);
  cr_assert_eq(db_migrations_applied(db), n);
  cr_assert_eq(db_check_integrity(db, &e), 0, "%s", e.msg);
  db_close(db);
}

static int bump_version(struct db_conn *c, void *arg, struct err *e) {
  (void)arg;
  return db_exec(c, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future.sql', 0)", e);
}

Test(db, a_database_from_a_newer_kiln_is_refused) {
  struct db *db = open_migrated();
  struct err e;
  cr_assert_eq(db_write(db, bump_version, NULL, &e), 0, "%s", e.msg);
  cr_assert_lt(db_migrate(db, &e), 0);
  cr_assert(strstr(e.msg, "newer than this kiln") != NULL, "%s", e.msg);
  db_close(db);
}

Test(db, bad_urls_are_refused_with_a_reason) {
  struct db *db;
  struct err e;
  cr_assert_lt(db_open(&db, "postgres://x/y", NULL, &e), 0);
  cr_assert(strstr(e.msg, "PostgreSQL") != NULL);
  cr_assert_lt(db_open(&db, "mysql://x", NULL, &e), 0);
  cr_assert_lt(db_open(&db, "sqlite:", NULL, &e), 0);
  cr_assert_lt(db_open(&db, "sqlite:/nonexistent-dir/x/kiln.db", NULL, &e), 0);
}

static int create_t(struct db_conn *c, void *arg, struct err *e) {
  (void)arg;
  return db_exec(c, "CREATE TABLE t (k BIGINT PRIMARY KEY, v TEXT NOT NULL)", e);
}

struct ins {
  int64_t k;
  const char *v;
};

static int insert_kv(struct db_conn *c, void *arg, struct err *e) {
  struct ins *in = arg;
  struct db_stmt *s = db_prepare(c, "INSERT INTO t (k, v) VALUES (?, ?)", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, in->k);
  db_bind_text(s, 2, in->v);
  int rc = db_step(s, e);
  return rc < 0 ? rc : 0;
}

struct worker {
  struct db *db;
  int base, n, ok;
};

static void *writer_thread(void *arg) {
  struct worker *w = arg;
  for (int i = 0; i < w->n; i++) {
    struct ins in = {w->base + i, "x"};
    struct err e;
    if (db_write(w->db, insert_kv, &in, &e) == 0) w->ok++;
  }
  return NULL;
}

static int64_t count_rows(struct db *db) {
  struct err e;
  struct db_conn *c = db_reader_acquire(db, &e);
  struct db_stmt *s = db_prepare(c, "SELECT COUNT(*) FROM t", &e);
  cr_assert_eq(db_step(s, &e), DB_ROW);
  int64_t n = db_col_i64(s, 0);
  db_stmt_done(s);
  db_reader_release(db, c);
  return n;
}

Test(db, concurrent_writes_are_grouped_into_fewer_commits) {
  struct db *db = open_migrated();
  struct err e;
  cr_assert_eq(db_write(db, create_t, NULL, &e), 0, "%s", e.msg);
  struct db_stats before;
  db_stats_get(db, &before);
  enum { T = 16, N = 100 };
  pthread_t th[T];
  struct worker w[T];
  for (int i = 0; i < T; i++) {
    w[i] = (struct worker){db, i * 1000, N, 0};
    pthread_create(&th[i], NULL, writer_thread, &w[i]);
  }
  for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < T; i++) cr_assert_eq(w[i].ok, N);
  struct db_stats after;
  db_stats_get(db, &after);
  uint64_t jobs = after.jobs - before.jobs, commits = after.commits - before.commits;
  cr_assert_eq(jobs, T * N);
  cr_assert_lt(commits, jobs, "group commit must batch: %llu commits for %llu jobs",
               (unsigned long long)commits, (unsigned long long)jobs);
  cr_assert_gt(after.max_group, 1);
  cr_assert_eq(count_rows(db), T * N, "every acknowledged write is there");
  db_close(db);
}

static int insert_then_fail(struct db_conn *c, void *arg, struct err *e) {
  struct ins in = {77, "doomed"};
  int rc = insert_kv(c, &in, e);
  cr_assert_eq(rc, 0);
  (void)arg;
  return err_set(e, ERR_INVALID_PARAMETER_VALUE, "validation failed after a write");
}

Test(db, a_failing_job_rolls_back_alone) {
  struct db *db = open_migrated();
  struct err e;
  cr_assert_eq(db_write(db, create_t, NULL, &e), 0);
  struct ins a = {1, "a"};
  cr_assert_eq(db_write(db, insert_kv, &a, &e), 0);
  cr_assert_eq(db_write(db, insert_then_fail, NULL, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_str_eq(e.msg, "validation failed after a write");
  cr_assert_lt(db_write(db, insert_kv, &a, &e), 0, "duplicate key");
  cr_assert_eq(e.code, ERR_RESOURCE_ALREADY_EXISTS);
  struct ins b = {2, "b"};
  cr_assert_eq(db_write(db, insert_kv, &b, &e), 0);
  cr_assert_eq(count_rows(db), 2, "the failed job left nothing behind");
  db_close(db);
}

Test(db, writes_survive_close_and_reopen) {
  struct db *db = open_migrated();
  struct err e;
  cr_assert_eq(db_write(db, create_t, NULL, &e), 0);
  for (int i = 0; i < 50; i++) {
    struct ins in = {i, "v"};
    cr_assert_eq(db_write(db, insert_kv, &in, &e), 0);
  }
  db_close(db);
  cr_assert_eq(db_open(&db, url, NULL, &e), 0);
  cr_assert_eq(count_rows(db), 50);
  cr_assert_eq(db_ping(db, &e), 0);
  db_close(db);
}

Test(db, readers_are_read_only_and_statements_are_cached) {
  struct db *db = open_migrated();
  struct err e;
  cr_assert_eq(db_write(db, create_t, NULL, &e), 0);
  struct db_conn *c = db_reader_acquire(db, &e);
  cr_assert_lt(db_exec(c, "INSERT INTO t (k, v) VALUES (5, 'no')", &e), 0, "readers cannot write");
  const char *sql = "SELECT COUNT(*) FROM t WHERE k > ?";
  struct db_stmt *s1 = db_prepare(c, sql, &e);
  db_bind_i64(s1, 1, 0);
  cr_assert_eq(db_step(s1, &e), DB_ROW);
  struct db_stmt *s2 = db_prepare(c, sql, &e);
  cr_assert_eq(s1, s2, "same SQL, same cached statement");
  cr_assert_null(db_prepare(c, "SELEC nonsense", &e));
  db_reader_release(db, c);
  db_close(db);
}

/* ---- db_context: the submitter's pointer, seen inside its own job -------- */
struct ctx_seen {
  const void *seen;
};
static int ctx_job(struct db_conn *c, void *arg, struct err *e) {
  (void)c;
  (void)e;
  ((struct ctx_seen *)arg)->seen = db_context();
  return 0;
}
struct ctx_thread {
  struct db *db;
  int tag;
  bool ok;
};
static void *ctx_thread_main(void *arg) {
  struct ctx_thread *t = arg;
  db_context_set(&t->tag);
  t->ok = true;
  for (int i = 0; i < 200; i++) {
    struct ctx_seen s = {0};
    struct err e;
    if (db_write(t->db, ctx_job, &s, &e) || s.seen != &t->tag) t->ok = false;
  }
  db_context_set(NULL);
  return NULL;
}

Test(db, write_jobs_see_their_own_submitters_context) {
  struct db *db = open_migrated();
  struct ctx_seen s = {.seen = (void *)1};
  struct err e;
  cr_assert_eq(db_write(db, ctx_job, &s, &e), 0);
  cr_assert_null(s.seen, "no context set: none seen");
  /* four threads with different contexts, their jobs grouped into shared
   * transactions: each job sees its own submitter's pointer */
  struct ctx_thread t[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    t[i] = (struct ctx_thread){.db = db, .tag = i};
    pthread_create(&th[i], NULL, ctx_thread_main, &t[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    cr_assert(t[i].ok, "thread %d saw another context", i);
  }
  cr_assert_null(db_context(), "this thread's context is untouched");
  db_close(db);
}

/* ---- the statement cache is bounded, and never drops one in use ----------- */
Test(db, statement_cache_is_bounded_and_keeps_busy_statements) {
  struct db *db = open_migrated();
  struct err e;
  struct db_conn *c = db_reader_acquire(db, &e);
  cr_assert_not_null(c);
  /* held across thousands of other prepares: must stay valid */
  struct db_stmt *held = db_prepare(c, "SELECT 4242 UNION ALL SELECT 4343", &e);
  cr_assert_not_null(held);
  cr_assert_eq(db_step(held, &e), DB_ROW);
  char sql[64];
  for (int i = 0; i < 3000; i++) {
    snprintf(sql, sizeof sql, "SELECT %d", i); /* like user-built filters: all distinct */
    struct db_stmt *s = db_prepare(c, sql, &e);
    cr_assert_not_null(s, "%s", e.msg);
    cr_assert_eq(db_step(s, &e), DB_ROW);
    cr_assert_eq(db_col_i64(s, 0), i);
    db_stmt_done(s);
    cr_assert_leq(db_conn_cached_statements(c), 300, "cache grew to %zu", db_conn_cached_statements(c));
  }
  cr_assert_eq(db_col_i64(held, 0), 4242, "the held statement kept its row");
  cr_assert_eq(db_step(held, &e), DB_ROW);
  cr_assert_eq(db_col_i64(held, 0), 4343);
  db_stmt_done(held);
  /* a hot statement survives the churn and is reused */
  struct db_stmt *a = db_prepare(c, "SELECT 7", &e);
  db_stmt_done(a);
  for (int i = 0; i < 1000; i++) {
    snprintf(sql, sizeof sql, "SELECT %d + 0", i);
    db_stmt_done(db_prepare(c, sql, &e));
    if (i % 50 == 0) cr_assert_eq(db_prepare(c, "SELECT 7", &e), a, "hot statement re-prepared");
    if (i % 50 == 0) db_stmt_done(a);
  }
  db_reader_release(db, c);
  db_close(db);
}
