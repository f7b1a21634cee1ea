/* tests/fuzz/fuzz_filter: the search filter parser and SQL compiler
 * (track/filter) on arbitrary bytes, with the compiled SQL prepared and
 * run against an in-memory SQLite database holding the tracking schema and
 * a few rows (NULL columns, NaN metrics, missing keys).
 *
 * Input: byte 0 picks the entity (runs, experiments, registered models,
 * model versions); the filter text runs to the first NUL byte; after it,
 * NUL-separated order_by clauses.
 *
 * Invariants (abort on violation):
 * - a refusal is INVALID_PARAMETER_VALUE, "filter: ..." / "order_by: ...",
 *   with a position between 1 and the character count + 1, in valid UTF-8;
 * - a filter that parses always compiles, deterministically; its SQL has
 *   exactly one `?` per bind, prepares, takes exactly that many parameters
 *   and runs to completion (no SQLite error, e.g. expression depth);
 * - the logic is two-valued: the rows of F, of NOT (F) and of
 *   (F) OR NOT (F) are a partition and the whole table, whatever NULLs,
 *   NaNs and missing keys the rows hold;
 * - order_by either refuses or yields SQL that prepares and runs with the
 *   filter, returning the same rows as the filter alone. */
#define FUZZ_NAME "fuzz_filter"
#include "fuzz_common.h"
#include "track/filter.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static sqlite3 *db;

static const char *setup_sql =
    "CREATE TABLE runs (run_uuid TEXT PRIMARY KEY, experiment_id INTEGER NOT NULL, project_id "
    "TEXT NOT NULL, name TEXT, user_id TEXT, status TEXT NOT NULL, start_time BIGINT, end_time "
    "BIGINT, lifecycle_stage TEXT NOT NULL DEFAULT 'active', artifact_uri TEXT, deleted_time "
    "BIGINT);"
    "CREATE TABLE latest_metrics (run_uuid TEXT NOT NULL, key TEXT NOT NULL, value REAL NOT NULL, "
    "timestamp BIGINT NOT NULL, step BIGINT NOT NULL DEFAULT 0, is_nan INTEGER NOT NULL DEFAULT "
    "0, PRIMARY KEY (run_uuid, key));"
    "CREATE TABLE params (run_uuid TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY "
    "KEY (run_uuid, key));"
    "CREATE TABLE tags (run_uuid TEXT NOT NULL, key TEXT NOT NULL, value TEXT, PRIMARY KEY "
    "(run_uuid, key));"
    "CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, project_id TEXT NOT NULL, name "
    "TEXT NOT NULL, artifact_location TEXT, lifecycle_stage TEXT NOT NULL DEFAULT 'active', "
    "creation_time BIGINT, last_update_time BIGINT);"
    "CREATE TABLE experiment_tags (experiment_id INTEGER NOT NULL, key TEXT NOT NULL, value TEXT, "
    "PRIMARY KEY (experiment_id, key));"
    /* the registry's shape (migration 0010): models by id, versions and tags by model id */
    "CREATE TABLE registered_models (id INTEGER PRIMARY KEY, name TEXT NOT NULL, creation_time "
    "BIGINT, last_updated_time BIGINT);"
    "CREATE TABLE registered_model_tags (model_id INTEGER, key TEXT, value TEXT, PRIMARY KEY "
    "(model_id, key));"
    "CREATE TABLE model_versions (model_id INTEGER, version INTEGER, name TEXT, source TEXT, "
    "run_id TEXT, creation_time BIGINT, last_updated_time BIGINT, PRIMARY KEY (model_id, version));"
    "CREATE TABLE model_version_tags (model_id INTEGER, version INTEGER, key TEXT, value TEXT, "
    "PRIMARY KEY (model_id, version, key));"
    "INSERT INTO runs VALUES ('a', 1, 'p', 'alpha', 'ann', 'FINISHED', 10, 20, 'active', "
    "'s3://x', NULL), ('b', 1, 'p', NULL, NULL, 'RUNNING', NULL, NULL, 'active', NULL, NULL),"
    " ('c', 1, 'p', 'A%_*', 'bob', 'FAILED', 10, 5, 'active', 'file:/c', NULL);"
    "INSERT INTO latest_metrics VALUES ('a', 'acc', 0.5, 1, 0, 0), ('a', 'loss', -1e308, 1, 0, "
    "0), ('b', 'acc', 0, 1, 0, 1), ('c', 'loss', 3, 1, 0, 0);"
    "INSERT INTO params VALUES ('a', 'lr', '0.1'), ('c', 'lr', 'x'), ('c', 'p', '');"
    "INSERT INTO tags VALUES ('a', 't', 'v'), ('b', 't', NULL), ('c', 'mlflow.runName', 'A');"
    "INSERT INTO experiments VALUES (1, 'p', 'Default', NULL, 'active', 1, 2), (2, 'p', 'x', "
    "NULL, 'active', NULL, NULL);"
    "INSERT INTO experiment_tags VALUES (1, 't', 'v'), (2, 't', NULL);"
    "INSERT INTO registered_models VALUES (1, 'm', 1, 2), (2, 'n', NULL, NULL);"
    "INSERT INTO registered_model_tags VALUES (1, 't', 'v');"
    "INSERT INTO model_versions VALUES (1, 1, 'm', 's3://m', 'a', 1, 1), (1, 2, 'm', NULL, NULL, "
    "NULL, NULL);"
    "INSERT INTO model_version_tags VALUES (1, 1, 't', 'v');";

static const char *const from[] = {
    [TRACK_FLT_RUNS] = "SELECT r.run_uuid FROM runs r",
    [TRACK_FLT_EXPERIMENTS] = "SELECT e.experiment_id FROM experiments e",
    [TRACK_FLT_REGISTERED_MODELS] = "SELECT m.name FROM registered_models m",
    [TRACK_FLT_MODEL_VERSIONS] = "SELECT v.name || '/' || v.version FROM model_versions v",
};
/* every row's first column, per entity: a row's bit is its index here */
static const char *const rows_of[][4] = {
    [TRACK_FLT_RUNS] = {"a", "b", "c", NULL},
    [TRACK_FLT_EXPERIMENTS] = {"1", "2", NULL},
    [TRACK_FLT_REGISTERED_MODELS] = {"m", "n", NULL},
    [TRACK_FLT_MODEL_VERSIONS] = {"m/1", "m/2", NULL},
};
static const int total_rows[] = {3, 2, 2, 2};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) abort();
  char *msg = NULL;
  if (sqlite3_exec(db, setup_sql, NULL, NULL, &msg) != SQLITE_OK) {
    fprintf(stderr, "fuzz_filter: schema: %s\n", msg);
    abort();
  }
  return 0;
}

static bool utf8_valid(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    int n = *p < 0x80 ? 0 : (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2 : (*p & 0xF8) == 0xF0 ? 3 : -1;
    if (n < 0) return false;
    p++;
    for (int i = 0; i < n; i++, p++)
      if ((*p & 0xC0) != 0x80) return false;
  }
  return true;
}

static size_t chars(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) n++;
  return n;
}

/* A refusal: the right code, prefix and a position inside the input. */
static void check_refusal(const struct err *e, const char *prefix, const char *text) {
  CHECK(e->code == ERR_INVALID_PARAMETER_VALUE, "code %d: %s", (int)e->code, e->msg);
  CHECK(strncmp(e->msg, prefix, strlen(prefix)) == 0, "prefix: %s", e->msg);
  CHECK(utf8_valid(e->msg), "message not UTF-8");
  const char *at = strstr(e->msg, ": at position ");
  if (at && text) {
    unsigned long pos = strtoul(at + 14, NULL, 10);
    CHECK(pos >= 1 && pos <= chars(text) + 1, "position %lu of %zu chars: %s", pos, chars(text),
          e->msg);
  }
}

static int count_q(const char *s) {
  int n = 0;
  /* string literals in the generated SQL are fixed ('nan', '\\', x'') and
   * hold no '?' */
  for (; *s; s++) n += *s == '?';
  return n;
}

static void bind_all(sqlite3_stmt *st, const struct track_flt_binds *b) {
  for (int i = 0; i < b->n; i++) {
    const struct track_flt_bind *v = &b->v[i];
    int rc = v->type == TRACK_FLT_BIND_TEXT
                 ? sqlite3_bind_text(st, i + 1, v->v.text.s, (int)v->v.text.len, SQLITE_STATIC)
             : v->type == TRACK_FLT_BIND_I64 ? sqlite3_bind_int64(st, i + 1, v->v.i64)
                                       : sqlite3_bind_double(st, i + 1, v->v.f64);
    CHECK(rc == SQLITE_OK, "bind %d: %s", i + 1, sqlite3_errmsg(db));
  }
}

/* Runs the filter (with the order_by when given and accepted); returns a
 * bitmask of the rows, or -1 when the filter does not parse. */
static long run_query(enum track_flt_entity ent, const char *filter, const char *const *clauses,
                      int nclauses, bool expect_parse) {
  struct track_flt *f = NULL;
  struct err e;
  int rc = track_flt_parse(filter, ent, &f, &e);
  if (rc < 0) {
    CHECK(!expect_parse, "derived filter refused: %s\n  filter: %.300s", e.msg, filter);
    CHECK(f == NULL, "out set on failure");
    check_refusal(&e, "filter: ", filter);
    return -1;
  }
  struct buf sql, sql2;
  struct track_flt_binds b, b2;
  buf_init(&sql);
  buf_init(&sql2);
  track_flt_binds_init(&b);
  track_flt_binds_init(&b2);
  buf_printf(&sql, "%s WHERE ", from[ent]);
  rc = track_flt_to_sql(f, &sql, &b, &e);
  CHECK(rc == 0, "compile failed: %s", e.msg);
  /* deterministic, one placeholder per bind */
  CHECK(track_flt_to_sql(f, &sql2, &b2, &e) == 0, "second compile failed");
  CHECK(strstr(sql.data, sql2.data) != NULL, "compile not deterministic");
  CHECK(b.n == b2.n, "bind counts differ");
  CHECK(count_q(sql2.data) == b2.n, "%d placeholders, %d binds: %.300s", count_q(sql2.data), b2.n,
        sql2.data);
  if (clauses) {
    size_t keep = sql.len;
    int keepn = b.n;
    buf_puts(&sql, " ORDER BY ");
    if (track_flt_order_by(clauses, nclauses, ent, &sql, &b, &e) < 0) {
      check_refusal(&e, "order_by: ", NULL);
      sql.len = keep;
      sql.data[keep] = 0;
      CHECK(b.n == keepn, "a refused order_by left binds behind");
    }
  }
  sqlite3_stmt *st = NULL;
  rc = sqlite3_prepare_v2(db, sql.data, (int)sql.len, &st, NULL);
  CHECK(rc == SQLITE_OK, "prepare: %s\n  filter: %.300s\n  sql: %.600s", sqlite3_errmsg(db),
        filter, sql.data);
  CHECK(sqlite3_bind_parameter_count(st) == b.n, "%d parameters, %d binds",
        sqlite3_bind_parameter_count(st), b.n);
  bind_all(st, &b);
  long mask = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *k = (const char *)sqlite3_column_text(st, 0);
    int idx = -1;
    for (int i = 0; k && rows_of[ent][i]; i++)
      if (!strcmp(rows_of[ent][i], k)) idx = i;
    CHECK(idx >= 0, "unknown row %s", k ? k : "NULL");
    CHECK(!(mask & (1L << idx)), "row returned twice: %s", k);
    mask |= 1L << idx;
  }
  CHECK(rc == SQLITE_DONE, "step: %s\n  sql: %.600s", sqlite3_errmsg(db), sql.data);
  sqlite3_finalize(st);
  buf_fini(&sql);
  buf_fini(&sql2);
  track_flt_binds_fini(&b);
  track_flt_binds_fini(&b2);
  track_flt_free(f);
  return mask;
}

static int popcount(long m) {
  int n = 0;
  for (; m; m &= m - 1) n++;
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  enum track_flt_entity ent = (enum track_flt_entity)(data[0] % 4);
  data++, size--;
  /* filter, then NUL-separated order_by clauses */
  char *copy = malloc(size + 1);
  if (!copy) return 0;
  memcpy(copy, data, size);
  copy[size] = 0;
  size_t flen = strlen(copy);
  const char *clauses[TRACK_FLT_MAX_ORDER_BY + 2];
  int nclauses = 0;
  bool have_order = flen < size;
  for (size_t i = flen + 1; i <= size && nclauses < TRACK_FLT_MAX_ORDER_BY + 2;) {
    clauses[nclauses++] = copy + i;
    i += strlen(copy + i) + 1;
  }

  long all = run_query(ent, "", NULL, 0, true);
  CHECK(popcount(all) == total_rows[ent], "empty filter: %d rows", popcount(all));
  long m = run_query(ent, copy, have_order ? clauses : NULL, nclauses, false);
  if (m >= 0 && flen < 16000) {
    /* with order_by the same rows come back */
    if (have_order) {
      long m0 = run_query(ent, copy, NULL, 0, true);
      CHECK(m0 == m, "order_by changed the rows");
    }
    /* two-valued logic: F and NOT (F) partition the rows (a blank F is
     * everything, and NOT () is no filter) */
    if (strspn(copy, " \t\r\n") == flen) {
      CHECK(m == all, "a blank filter is not everything");
      free(copy);
      return 0;
    }
    struct buf t;
    buf_init(&t);
    buf_printf(&t, "NOT (%s)", copy);
    struct track_flt *probe;
    struct err e;
    /* wrapping may pass the depth limit; only then is a refusal fine */
    if (track_flt_parse(t.data, ent, &probe, &e) == 0) {
      track_flt_free(probe);
      long n = run_query(ent, t.data, NULL, 0, true);
      CHECK((m & n) == 0, "F and NOT F overlap: %.300s", copy);
      CHECK((m | n) == all, "F or NOT F is not everything: %.300s", copy);
      buf_reset(&t);
      buf_printf(&t, "(%s) OR NOT (%s)", copy, copy);
      if (track_flt_parse(t.data, ent, &probe, &e) == 0) {
        track_flt_free(probe);
        CHECK(run_query(ent, t.data, NULL, 0, true) == all, "F OR NOT F");
      }
    } else {
      CHECK(strstr(e.msg, "nesting deeper") || strstr(e.msg, "more than") ||
                strstr(e.msg, "longer than"),
            "NOT (F) refused: %s", e.msg);
    }
    buf_fini(&t);
  }
  free(copy);
  return 0;
}
