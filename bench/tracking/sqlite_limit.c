/* bench/tracking/sqlite_limit: the limit kiln's tracking figures are held
 * against — the same rows written and read straight through SQLite's C API
 * (prepared statements, no HTTP, no JSON, no validation), on the schema of
 * kiln's own migration files, with the pragmas kiln's SQLite driver sets
 * (src/store/sqlite.c). Prints `name value` lines for run.sh.
 *
 *   sqlite_limit ROWS.sql CHUNKS.sql DBFILE CALLS METRICS KEYS NRUNS LATENCY_N ROUNDS
 *
 * ROWS.sql is the one-row-per-point layout (migration 0004: MLflow's, and
 * kiln's before 0008); CHUNKS.sql the current one (0004 + 0007 + 0008:
 * chunks of points, src/track/series.c).
 * (a) CALLS log-batch calls' worth of points (METRICS per call, KEYS keys,
 *     steps advancing per call): once in one transaction (the limit), once
 *     committing per call (what a sequence of durable calls costs); on the
 *     rows layout (a row per point) and on the chunk layout (a chunk row
 *     per key per call, encoded as kiln encodes it), each with the latest
 *     value per key;
 * (b) reading back one key's CALLS*METRICS points in get-history's order
 *     (chunk layout: chunk summaries from the index, then each blob);
 * (c) NRUNS runs with 5 params, 5 metrics and 2 tags each, then the search
 *     `metrics.acc > 0.5 and params.lr = '0.01'` by acc DESC, 100 runs, with
 *     each result run's info, latest metrics, params and tags read back;
 * (d) LATENCY_N single metric points, one durable transaction each (a
 *     one-point chunk and the latest value). */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static sqlite3 *db;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A whole decimal number, or -1 (the house bans atoi: no error, no bound). */
static long num(const char *s) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  return (!*s || *end || errno) ? -1 : v;
}

static void check(int rc, const char *what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    fprintf(stderr, "sqlite_limit: %s: %s\n", what, sqlite3_errmsg(db));
    exit(1);
  }
}

static void exec(const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    fprintf(stderr, "sqlite_limit: %s: %s\n", sql, msg);
    exit(1);
  }
}

static sqlite3_stmt *prep(const char *sql) {
  sqlite3_stmt *s;
  check(sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL), sql);
  return s;
}

static void run1(sqlite3_stmt *s) {
  check(sqlite3_step(s), sqlite3_sql(s));
  sqlite3_reset(s);
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static double pct(double *v, int n, double p) {
  int i = (int)ceil(p / 100.0 * n) - 1;
  return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* kiln's statements (src/track/runs.c) */
#define SQL_METRIC                                                                                 \
  "INSERT INTO metrics (run_uuid, key, value, timestamp, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)" \
  " ON CONFLICT DO NOTHING"
#define SQL_LATEST                                                                                 \
  "INSERT INTO latest_metrics (run_uuid, key, value, timestamp, step, is_nan)"                    \
  " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_uuid, key) DO UPDATE SET"                          \
  " value = excluded.value, timestamp = excluded.timestamp, step = excluded.step,"                \
  " is_nan = excluded.is_nan"                                                                     \
  " WHERE excluded.step > latest_metrics.step OR (excluded.step = latest_metrics.step"            \
  " AND (excluded.timestamp > latest_metrics.timestamp OR (excluded.timestamp ="                  \
  " latest_metrics.timestamp AND excluded.value >= latest_metrics.value)))"

static void bind_point(sqlite3_stmt *s, const char *run, const char *key, double v, int64_t ts, int64_t step) {
  sqlite3_bind_text(s, 1, run, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
  sqlite3_bind_double(s, 3, v);
  sqlite3_bind_int64(s, 4, ts);
  sqlite3_bind_int64(s, 5, step);
  sqlite3_bind_int64(s, 6, 0);
}

/* One call's points: the same keys and steps as bench/tracking/tclient. */
static void write_call(sqlite3_stmt *m, sqlite3_stmt *l, const char *run, int call_no, int metrics, int keys,
                       int64_t ts) {
  int per = metrics / keys;
  char key[16];
  for (int i = 0; i < metrics; i++) {
    int k = i / per;
    int64_t step = (int64_t)call_no * per + i % per;
    double v = 1.0 / (1.0 + (double)step * 0.001) + k * 0.01;
    if (keys == 1) snprintf(key, sizeof key, "loss");
    else snprintf(key, sizeof key, "m%d", k);
    bind_point(m, run, key, v, ts + step, step);
    run1(m);
    if (i % per == per - 1) { /* the key's latest point of this call */
      bind_point(l, run, key, v, ts + step, step);
      run1(l);
    }
  }
}

/* kiln's chunk encoding (src/track/series.c): zigzag varint deltas of step
 * and timestamp, then the value's 8 bytes */
static size_t put_varint(uint8_t *o, uint64_t u) {
  size_t n = 0;
  while (u >= 0x80) {
    o[n++] = (uint8_t)(u | 0x80);
    u >>= 7;
  }
  o[n++] = (uint8_t)u;
  return n;
}
static uint64_t zigzag(uint64_t d) { return (d << 1) ^ (uint64_t)((int64_t)d >> 63); }

struct pt {
  int64_t step, ts;
  double v;
};

#define SQL_CHUNK                                                                                             \
  "INSERT INTO metric_chunks (last_step, last_ts, last_value, last_nan, first_step, first_ts, first_value,"   \
  " first_nan, min_ts, max_ts, n, lo_step, lo_ts, lo_value, hi_step, hi_ts, hi_value, points, run_uuid, key)" \
  " VALUES (?, ?, ?, 0, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

static void put_chunk(sqlite3_stmt *s, const char *run, const char *key, const struct pt *p, int n) {
  static uint8_t enc[1 + 1024 * 28];
  size_t len = 0;
  enc[len++] = 1;
  uint64_t step = 0, ts = 0;
  int lo = 0, hi = 0;
  int64_t min_ts = p[0].ts, max_ts = p[0].ts;
  for (int i = 0; i < n; i++) {
    len += put_varint(enc + len, zigzag((uint64_t)p[i].step - step));
    len += put_varint(enc + len, zigzag((uint64_t)p[i].ts - ts));
    step = (uint64_t)p[i].step;
    ts = (uint64_t)p[i].ts;
    uint64_t bits;
    memcpy(&bits, &p[i].v, 8);
    for (int b = 0; b < 8; b++) enc[len++] = (uint8_t)(bits >> (8 * b));
    if (p[i].v < p[lo].v) lo = i;
    if (p[i].v > p[hi].v) hi = i;
    if (p[i].ts < min_ts) min_ts = p[i].ts;
    if (p[i].ts > max_ts) max_ts = p[i].ts;
  }
  int at = 1;
  const struct pt *pp[] = {&p[n - 1], &p[0]};
  for (int k = 0; k < 2; k++) {
    sqlite3_bind_int64(s, at++, pp[k]->step);
    sqlite3_bind_int64(s, at++, pp[k]->ts);
    sqlite3_bind_double(s, at++, pp[k]->v);
  }
  sqlite3_bind_int64(s, at++, min_ts);
  sqlite3_bind_int64(s, at++, max_ts);
  sqlite3_bind_int64(s, at++, n);
  const struct pt *ext[] = {&p[lo], &p[hi]};
  for (int k = 0; k < 2; k++) {
    sqlite3_bind_int64(s, at++, ext[k]->step);
    sqlite3_bind_int64(s, at++, ext[k]->ts);
    sqlite3_bind_double(s, at++, ext[k]->v);
  }
  if (n == 1) sqlite3_bind_null(s, at++);
  else sqlite3_bind_blob(s, at++, enc, (int)len, SQLITE_STATIC);
  sqlite3_bind_text(s, at++, run, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, at++, key, -1, SQLITE_STATIC);
  run1(s);
}

/* One call's points on the chunk layout: a chunk per key, the key's latest. */
static void write_call_chunks(sqlite3_stmt *ch, sqlite3_stmt *l, const char *run, int call_no, int metrics, int keys,
                              int64_t ts) {
  int per = metrics / keys;
  static struct pt p[1024];
  char key[16];
  for (int k = 0; k < keys; k++) {
    int n = 0;
    for (int i = 0; i < per; i++) {
      int64_t step = (int64_t)call_no * per + i;
      p[n++] = (struct pt){step, ts + step, 1.0 / (1.0 + (double)step * 0.001) + k * 0.01};
      if (n == 1024 || i == per - 1) {
        if (keys == 1) snprintf(key, sizeof key, "loss");
        else snprintf(key, sizeof key, "m%d", k);
        put_chunk(ch, run, key, p, n);
        if (i == per - 1) {
          bind_point(l, run, key, p[n - 1].v, p[n - 1].ts, p[n - 1].step);
          run1(l);
        }
        n = 0;
      }
    }
  }
}

static int64_t get_varint(const uint8_t **p) {
  uint64_t u = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    uint8_t b = *(*p)++;
    u |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) break;
  }
  return (int64_t)((u >> 1) ^ (uint64_t)-(int64_t)(u & 1));
}

static void insert_run(sqlite3_stmt *r, const char *id, int64_t exp, int64_t start) {
  sqlite3_bind_text(r, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(r, 2, exp);
  sqlite3_bind_int64(r, 3, start);
  run1(r);
}

static double rnd01(uint64_t *s) {
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(*s >> 11) / 9007199254740992.0;
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    perror(path);
    exit(1);
  }
  static char buf[2][1 << 20];
  static int which;
  char *schema = buf[which++ & 1];
  size_t sn = fread(schema, 1, sizeof buf[0] - 1, f);
  fclose(f);
  schema[sn] = 0;
  return schema;
}

static void open_db(const char *path, const char *schema) {
  remove(path);
  check(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL), "open");
  exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
       " PRAGMA temp_store=MEMORY; PRAGMA cache_size=-16000;");
  exec(schema);
}

static void close_db(const char *path) {
  sqlite3_close_v2(db);
  char p[4096];
  remove(path);
  snprintf(p, sizeof p, "%s-wal", path);
  remove(p);
  snprintf(p, sizeof p, "%s-shm", path);
  remove(p);
}

int main(int argc, char **argv) {
  if (argc != 10) {
    fprintf(stderr, "usage: sqlite_limit ROWS.sql CHUNKS.sql DBFILE CALLS METRICS KEYS NRUNS LATENCY_N ROUNDS\n");
    return 2;
  }
  int calls = num(argv[4]), metrics = num(argv[5]), keys = num(argv[6]), nruns = num(argv[7]);
  int lat_n = num(argv[8]), rounds = num(argv[9]);
  if (calls < 1 || metrics < 1 || keys < 1 || metrics % keys || nruns < 1 || lat_n < 1 || rounds < 1) {
    fprintf(stderr, "sqlite_limit: bad arguments\n");
    return 2;
  }
  const char *path = argv[3];
  int64_t ts = (int64_t)time(NULL) * 1000;
  printf("sqlite_version %s\n", sqlite3_libversion());
  static const char RUN_SQL[] =
      "INSERT INTO runs (run_uuid, experiment_id, project_id, name, user_id, status, start_time,"
      " lifecycle_stage, artifact_uri) VALUES (?, ?, 'p', 'run', 'bench', 'RUNNING', ?, 'active', 'file:///a')";

  /* (a) on the rows layout: a row per point */
  open_db(path, slurp(argv[1]));
  sqlite3_stmt *m = prep(SQL_METRIC), *l = prep(SQL_LATEST), *r = prep(RUN_SQL);
  insert_run(r, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1, ts);
  insert_run(r, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 1, ts);
  double t0 = now_s();
  exec("BEGIN");
  for (int c = 0; c < calls; c++) write_call(m, l, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", c, metrics, keys, ts);
  exec("COMMIT");
  double dt = now_s() - t0;
  printf("rows_ingest_one_txn_metrics_per_s %.1f\n", calls * (double)metrics / dt);
  t0 = now_s();
  for (int c = 0; c < calls; c++) {
    exec("BEGIN");
    write_call(m, l, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", c, metrics, keys, ts);
    exec("COMMIT");
  }
  dt = now_s() - t0;
  printf("rows_ingest_txn_per_call_metrics_per_s %.1f\n", calls * (double)metrics / dt);
  sqlite3_finalize(m);
  sqlite3_finalize(l);
  sqlite3_finalize(r);
  close_db(path);

  /* (a) on the chunk layout kiln writes */
  open_db(path, slurp(argv[2]));
  sqlite3_stmt *ch = prep(SQL_CHUNK);
  l = prep(SQL_LATEST);
  r = prep(RUN_SQL);
  insert_run(r, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1, ts);
  insert_run(r, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 1, ts);
  insert_run(r, "cccccccccccccccccccccccccccccccc", 1, ts);
  t0 = now_s();
  exec("BEGIN");
  for (int c = 0; c < calls; c++) write_call_chunks(ch, l, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", c, metrics, keys, ts);
  exec("COMMIT");
  dt = now_s() - t0;
  printf("ingest_one_txn_metrics_per_s %.1f\n", calls * (double)metrics / dt);
  t0 = now_s();
  for (int c = 0; c < calls; c++) {
    exec("BEGIN");
    write_call_chunks(ch, l, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", c, metrics, keys, ts);
    exec("COMMIT");
  }
  dt = now_s() - t0;
  printf("ingest_txn_per_call_metrics_per_s %.1f\n", calls * (double)metrics / dt);

  /* (b) one key with calls*metrics points, read back in get-history's order */
  exec("BEGIN");
  for (int c = 0; c < calls; c++) write_call_chunks(ch, l, "cccccccccccccccccccccccccccccccc", c, metrics, 1, ts);
  exec("COMMIT");
  sqlite3_stmt *h = prep("SELECT rowid, n FROM metric_chunks WHERE run_uuid = ? AND key = ?"
                         " ORDER BY last_step, last_ts, last_value, last_nan");
  sqlite3_stmt *hb = prep("SELECT points FROM metric_chunks WHERE rowid = ?");
  double *t = calloc((size_t)(rounds + lat_n), sizeof *t);
  long rows = 0;
  double sink = 0;
  for (int i = 0; i <= rounds; i++) {
    t0 = now_s();
    sqlite3_bind_text(h, 1, "cccccccccccccccccccccccccccccccc", -1, SQLITE_STATIC);
    sqlite3_bind_text(h, 2, "loss", -1, SQLITE_STATIC);
    rows = 0;
    while (sqlite3_step(h) == SQLITE_ROW) {
      int n = sqlite3_column_int(h, 1);
      sqlite3_bind_int64(hb, 1, sqlite3_column_int64(h, 0));
      check(sqlite3_step(hb), "chunk blob");
      const uint8_t *b = sqlite3_column_blob(hb, 0) + 1;
      int64_t step = 0, tsv = 0;
      for (int k = 0; k < n; k++) {
        step += get_varint(&b);
        tsv += get_varint(&b);
        double v;
        memcpy(&v, b, 8);
        b += 8;
        sink += v + (double)step + (double)tsv;
        rows++;
      }
      sqlite3_reset(hb);
    }
    sqlite3_reset(h);
    if (i) t[i - 1] = now_s() - t0; /* the first round warms the cache */
  }
  qsort(t, (size_t)rounds, sizeof *t, cmp_d);
  printf("history_rows %ld\nhistory_median_ms %.3f\n", rows, pct(t, rounds, 50) * 1e3);

  /* (c) runs with 5 params, 5 metrics, 2 tags each (bench/tracking/tclient's values) */
  sqlite3_stmt *pa = prep("INSERT INTO params (run_uuid, key, value) VALUES (?, ?, ?)");
  sqlite3_stmt *tg = prep("INSERT INTO tags (run_uuid, key, value) VALUES (?, ?, ?)");
  static const char *const LRS[] = {"0.01", "0.001", "0.1", "0.0001"};
  static const char *const OPTS[] = {"adam", "sgd", "rmsprop"};
  static const char *const MK[] = {"acc", "loss", "f1", "precision", "recall"};
  t0 = now_s();
  exec("BEGIN");
  for (int i = 0; i < nruns; i++) {
    char id[33], v[32];
    snprintf(id, sizeof id, "%08x%024d", (unsigned)i * 2654435761u, i);
    insert_run(r, id, 2, ts + i);
    const char *pk[] = {"lr", "optimizer", "batch_size", "epochs", "seed"};
    char pv[5][24];
    snprintf(pv[0], 24, "%s", LRS[i % 4]);
    snprintf(pv[1], 24, "%s", OPTS[i % 3]);
    snprintf(pv[2], 24, "%d", 16 << (i % 4));
    snprintf(pv[3], 24, "%d", 5 + i % 20);
    snprintf(pv[4], 24, "%d", i);
    for (int k = 0; k < 5; k++) {
      sqlite3_bind_text(pa, 1, id, -1, SQLITE_STATIC);
      sqlite3_bind_text(pa, 2, pk[k], -1, SQLITE_STATIC);
      sqlite3_bind_text(pa, 3, pv[k], -1, SQLITE_STATIC);
      run1(pa);
    }
    snprintf(v, sizeof v, "run-%d", i);
    sqlite3_bind_text(tg, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(tg, 2, "mlflow.runName", -1, SQLITE_STATIC);
    sqlite3_bind_text(tg, 3, v, -1, SQLITE_STATIC);
    run1(tg);
    sqlite3_bind_text(tg, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(tg, 2, "mlflow.user", -1, SQLITE_STATIC);
    sqlite3_bind_text(tg, 3, "bench", -1, SQLITE_STATIC);
    run1(tg);
    uint64_t s = 0x9E3779B97F4A7C15ULL ^ (uint64_t)i * 0xBF58476D1CE4E5B9ULL;
    for (int k = 0; k < 5; k++) {
      double x = rnd01(&s);
      if (k == 0 && i % 97 == 0) x = 0.75;
      struct pt one = {1, ts + i, x};
      put_chunk(ch, id, MK[k], &one, 1);
      bind_point(l, id, MK[k], x, ts + i, 1);
      if (k == 0 && i % 1009 == 0) sqlite3_bind_double(l, 3, 0), sqlite3_bind_int64(l, 6, 1);
      run1(l);
    }
  }
  exec("COMMIT");
  dt = now_s() - t0;
  printf("runs_setup_s %.3f\nruns_setup_runs_per_s %.1f\n", dt, nruns / dt);
  exec("ANALYZE");
  sqlite3_stmt *q = prep(
      "SELECT r.run_uuid FROM latest_metrics o JOIN runs r ON r.run_uuid = o.run_uuid"
      " WHERE o.key = 'acc' AND o.is_nan = 0 AND o.value > 0.5 AND r.experiment_id = 2"
      " AND r.lifecycle_stage = 'active' AND EXISTS (SELECT 1 FROM params p WHERE p.run_uuid = r.run_uuid"
      " AND p.key = 'lr' AND p.value = '0.01')"
      " ORDER BY o.value DESC, r.start_time DESC, r.run_uuid ASC LIMIT 100");
  sqlite3_stmt *qi = prep("SELECT experiment_id, name, user_id, status, start_time, end_time, artifact_uri,"
                          " lifecycle_stage FROM runs WHERE run_uuid = ?");
  sqlite3_stmt *qm = prep("SELECT key, value, timestamp, step, is_nan FROM latest_metrics WHERE run_uuid = ? ORDER BY key");
  sqlite3_stmt *qp = prep("SELECT key, value FROM params WHERE run_uuid = ? ORDER BY key");
  sqlite3_stmt *qt = prep("SELECT key, value FROM tags WHERE run_uuid = ? ORDER BY key");
  sqlite3_stmt *each[] = {qi, qm, qp, qt};
  int found = 0;
  for (int i = 0; i <= rounds; i++) {
    t0 = now_s();
    char ids[100][33];
    found = 0;
    while (sqlite3_step(q) == SQLITE_ROW && found < 100)
      snprintf(ids[found++], 33, "%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_reset(q);
    for (int k = 0; k < found; k++)
      for (int e = 0; e < 4; e++) {
        sqlite3_bind_text(each[e], 1, ids[k], -1, SQLITE_STATIC);
        while (sqlite3_step(each[e]) == SQLITE_ROW) sink += (double)sqlite3_column_bytes(each[e], 0);
        sqlite3_reset(each[e]);
      }
    if (i) t[i - 1] = now_s() - t0;
  }
  qsort(t, (size_t)rounds, sizeof *t, cmp_d);
  printf("search_runs %d\nsearch_median_ms %.3f\n", found, pct(t, rounds, 50) * 1e3);

  /* (d) one point per durable transaction */
  for (int i = 0; i < lat_n; i++) {
    t0 = now_s();
    exec("BEGIN");
    struct pt one = {i, ts + i, 1.0 / (i + 1)};
    put_chunk(ch, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "latency", &one, 1);
    bind_point(l, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "latency", 1.0 / (i + 1), ts + i, i);
    run1(l);
    exec("COMMIT");
    t[i] = now_s() - t0;
  }
  qsort(t, (size_t)lat_n, sizeof *t, cmp_d);
  printf("single_p50_ms %.4f\nsingle_p99_ms %.4f\n", pct(t, lat_n, 50) * 1e3, pct(t, lat_n, 99) * 1e3);
  if (sink == 42.4242) puts("");
  free(t);
  close_db(path);
  return 0;
}
