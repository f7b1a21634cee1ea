/* track/sampled: chart-sized metric series that keep their peaks. The x
 * range (steps, or timestamps) is cut into buckets; each bucket keeps its
 * first and last point and its lowest and highest value, so a spike of one
 * point in a million still shows. Computed at read time in one pass over
 * the history's primary-key index (run, key, step, timestamp, value) — or,
 * for wide step ranges, over the write-time rollups (metric_rollups: four
 * points of every 1024-step bucket, kept by track_rollup_add in the same
 * write as the points), so a million-point chart reads about a thousand
 * rows. */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct pt {
  int64_t step, ts;
  double v;
  bool nan;
  int64_t seq; /* position in the scan, to emit in x order */
};

struct bucket {
  bool used;
  struct pt first, last, lo, hi;
};

static int64_t x_of(const struct pt *p, bool by_time) { return by_time ? p->ts : p->step; }

/* The run's x range for the key: steps from the two ends of the index
 * (one MIN and one MAX each, so SQLite seeks instead of scanning),
 * timestamps by a scan (they are not indexed). found false: no points. */
static int x_end(struct db_conn *c, const char *sql, const char *run_id, const char *key, int64_t *out, bool *found,
                 struct err *e) {
  struct db_stmt *s = db_prepare(c, sql, e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, run_id);
  db_bind_text(s, 2, key);
  int rc = db_step(s, e);
  *found = rc == DB_ROW && !db_col_null(s, 0);
  if (*found) *out = db_col_i64(s, 0);
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

static int x_range(struct db_conn *c, const char *run_id, const char *key, bool by_time, int64_t *lo, int64_t *hi,
                   bool *found, struct err *e) {
  if (by_time)
    return x_end(c, "SELECT MIN(timestamp) FROM metrics WHERE run_uuid = ? AND key = ?", run_id, key, lo, found, e) ||
                   (*found &&
                    x_end(c, "SELECT MAX(timestamp) FROM metrics WHERE run_uuid = ? AND key = ?", run_id, key, hi, found, e))
               ? -ERR_INTERNAL
               : 0;
  return x_end(c, "SELECT MIN(step) FROM metrics WHERE run_uuid = ? AND key = ?", run_id, key, lo, found, e) ||
                 (*found && x_end(c, "SELECT MAX(step) FROM metrics WHERE run_uuid = ? AND key = ?", run_id, key, hi, found, e))
             ? -ERR_INTERNAL
             : 0;
}

static void keep(struct pt *out, int *n, const struct pt *p) {
  for (int i = 0; i < *n; i++)
    if (out[i].seq == p->seq) return;
  out[(*n)++] = *p;
}

static int cmp_seq(const void *a, const void *b) {
  const struct pt *x = a, *y = b;
  return (x->seq > y->seq) - (x->seq < y->seq);
}

static int cmp_x_time(const void *a, const void *b) {
  const struct pt *x = a, *y = b;
  if (x->ts != y->ts) return (x->ts > y->ts) - (x->ts < y->ts);
  return (x->seq > y->seq) - (x->seq < y->seq);
}

static json_t *pt_json(const char *key, const char *run_id, const struct pt *p) {
  json_t *o = json_pack("{s:s, s:o, s:I, s:I}", "key", key, "value", track_metric_value_json(p->v, p->nan), "timestamp",
                        (json_int_t)p->ts, "step", (json_int_t)p->step);
  if (run_id) json_object_set_new(o, "run_id", json_string(run_id));
  return o;
}

/* ---- the bucket accumulator ------------------------------------------------------------ */

struct acc {
  const struct track_sample *o;
  int64_t lo, nb;
  uint64_t width;
  bool one; /* below 4 points: one point a bucket, its highest */
  struct bucket *b;
  struct pt *raw; /* the series itself while it fits in o->points */
  int64_t n, seq;  /* points seen (rollup rows count theirs), points fed */
};

static void acc_feed(struct acc *a, struct pt p) {
  p.seq = a->seq++;
  if (a->seq <= a->o->points) a->raw[a->seq - 1] = p;
  uint64_t off = (uint64_t)(x_of(&p, a->o->by_time) - a->lo);
  struct bucket *q = &a->b[(int64_t)((unsigned __int128)off * (uint64_t)a->nb / a->width)];
  bool t = a->o->by_time;
  if (!q->used) {
    q->used = true;
    q->first = q->last = q->lo = q->hi = p;
    return;
  }
  if (x_of(&p, t) < x_of(&q->first, t)) q->first = p;
  if (x_of(&p, t) >= x_of(&q->last, t)) q->last = p;
  if (!p.nan && (q->lo.nan || p.v < q->lo.v)) q->lo = p;
  if (!p.nan && (q->hi.nan || p.v > q->hi.v)) q->hi = p;
}

/* Raw points of [from, to] (steps, or timestamps with by_time). */
static int acc_scan(struct acc *a, struct db_conn *c, const char *run_id, const char *key, int64_t from, int64_t to,
                    struct err *e) {
  struct db_stmt *s = db_prepare(c,
                                 a->o->by_time ? "SELECT step, timestamp, value, is_nan FROM metrics WHERE run_uuid = ?"
                                                 " AND key = ? AND timestamp BETWEEN ? AND ?"
                                                 " ORDER BY step, timestamp, value, is_nan"
                                               : "SELECT step, timestamp, value, is_nan FROM metrics WHERE run_uuid = ?"
                                                 " AND key = ? AND step BETWEEN ? AND ?"
                                                 " ORDER BY step, timestamp, value, is_nan",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, run_id);
  db_bind_text(s, 2, key);
  db_bind_i64(s, 3, from);
  db_bind_i64(s, 4, to);
  int rc;
  while ((rc = db_step(s, e)) == DB_ROW) {
    acc_feed(a, (struct pt){db_col_i64(s, 0), db_col_i64(s, 1), db_col_f64(s, 2), db_col_i64(s, 3) != 0, 0});
    a->n++;
  }
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

static int cmp_step_ts(const void *x, const void *y) {
  const struct pt *p = x, *q = y;
  if (p->step != q->step) return (p->step > q->step) - (p->step < q->step);
  return (p->ts > q->ts) - (p->ts < q->ts);
}

/* Rollup rows of buckets [b0, b1]: each feeds its distinct first, last,
 * lowest and highest point, in step order. *rows_n: the points they hold. */
static int acc_rollups(struct acc *a, struct db_conn *c, const char *run_id, const char *key, int64_t b0, int64_t b1,
                       int64_t *rows_n, struct err *e) {
  struct db_stmt *s = db_prepare(c,
                                 "SELECT n, first_step, first_ts, first_value, first_nan, last_step, last_ts,"
                                 " last_value, last_nan, lo_step, lo_ts, lo_value, hi_step, hi_ts, hi_value"
                                 " FROM metric_rollups WHERE run_uuid = ? AND key = ?"
                                 " AND bucket BETWEEN ? AND ? ORDER BY bucket",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, run_id);
  db_bind_text(s, 2, key);
  db_bind_i64(s, 3, b0);
  db_bind_i64(s, 4, b1);
  int rc;
  *rows_n = 0;
  while ((rc = db_step(s, e)) == DB_ROW) {
    *rows_n += db_col_i64(s, 0);
    struct pt four[4];
    int m = 0;
    four[m++] = (struct pt){db_col_i64(s, 1), db_col_i64(s, 2), db_col_f64(s, 3), db_col_i64(s, 4) != 0, 0};
    four[m++] = (struct pt){db_col_i64(s, 5), db_col_i64(s, 6), db_col_f64(s, 7), db_col_i64(s, 8) != 0, 0};
    if (!db_col_null(s, 11)) four[m++] = (struct pt){db_col_i64(s, 9), db_col_i64(s, 10), db_col_f64(s, 11), false, 0};
    if (!db_col_null(s, 14)) four[m++] = (struct pt){db_col_i64(s, 12), db_col_i64(s, 13), db_col_f64(s, 14), false, 0};
    qsort(four, (size_t)m, sizeof four[0], cmp_step_ts);
    for (int i = 0; i < m; i++) {
      bool dup = false;
      for (int k = 0; k < i; k++)
        dup |= four[k].step == four[i].step && four[k].ts == four[i].ts && four[k].v == four[i].v &&
               four[k].nan == four[i].nan;
      if (!dup) acc_feed(a, four[i]);
    }
  }
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

static int64_t rollup_sum(struct db_conn *c, const char *run_id, const char *key, int64_t b0, int64_t b1, struct err *e) {
  struct db_stmt *s = db_prepare(c, "SELECT SUM(n) FROM metric_rollups WHERE run_uuid = ? AND key = ? AND bucket BETWEEN ? AND ?", e);
  if (!s) return -1;
  db_bind_text(s, 1, run_id);
  db_bind_text(s, 2, key);
  db_bind_i64(s, 3, b0);
  db_bind_i64(s, 4, b1);
  int rc = db_step(s, e);
  int64_t n = rc == DB_ROW && !db_col_null(s, 0) ? db_col_i64(s, 0) : 0;
  db_stmt_done(s);
  return rc < 0 ? -1 : n;
}

/* One run: appends at most o->points points in [lo, hi] to arr.
 *
 * Where each output bucket spans at least one rollup bucket (and x is the
 * step), the write-time rollups stand in for the points: each rollup row
 * offers its first, last, lowest and highest point, and those go into the
 * output buckets like raw points would. Every extreme of the range is some
 * row's extreme, so the global minimum and maximum are exact; a bucket's own
 * extremes can come from a rollup row straddling its edge. The partial
 * rollup buckets at the range's ends are read raw. Otherwise (narrow range,
 * timestamps, few points) the points themselves are scanned. */
static int sample_run(struct db_conn *c, const char *run_id, const char *key, const struct track_sample *o, int64_t lo,
                      int64_t hi, json_t *arr, bool with_run_id, int64_t *total, struct err *e) {
  struct acc a = {.o = o, .lo = lo, .one = o->points < 4};
  a.nb = a.one ? o->points : o->points / 4;
  a.width = (uint64_t)(hi - lo) + 1; /* hi >= lo */
  if ((uint64_t)a.nb > a.width) a.nb = (int64_t)a.width;
  a.b = calloc((size_t)a.nb, sizeof *a.b);
  a.raw = malloc((size_t)o->points * sizeof *a.raw);
  if (!a.b || !a.raw) {
    free(a.b);
    free(a.raw);
    return err_set(e, ERR_NO_MEMORY, "out of memory for %lld buckets", (long long)a.nb);
  }
  int rc = 0;
  /* whole rollup buckets inside [lo, hi] */
  int64_t b0 = (lo + TRK_ROLLUP_SPAN - 1) >> TRK_ROLLUP_SHIFT, b1 = ((hi + 1) >> TRK_ROLLUP_SHIFT) - 1;
  bool use_rollups = !o->by_time && a.width / (uint64_t)a.nb >= TRK_ROLLUP_SPAN && b0 <= b1;
  if (use_rollups) {
    int64_t in_rollups = rollup_sum(c, run_id, key, b0, b1, e);
    if (in_rollups < 0) rc = -ERR_INTERNAL;
    else if (in_rollups <= o->points) use_rollups = false; /* few points: read them */
  }
  if (!rc && use_rollups) {
    int64_t rows_n = 0;
    if (lo < b0 * TRK_ROLLUP_SPAN) rc = acc_scan(&a, c, run_id, key, lo, b0 * TRK_ROLLUP_SPAN - 1, e);
    if (!rc) rc = acc_rollups(&a, c, run_id, key, b0, b1, &rows_n, e);
    a.n += rows_n;
    if (!rc && (b1 + 1) * TRK_ROLLUP_SPAN <= hi) rc = acc_scan(&a, c, run_id, key, (b1 + 1) * TRK_ROLLUP_SPAN, hi, e);
  } else if (!rc) {
    rc = acc_scan(&a, c, run_id, key, lo, hi, e);
  }
  if (rc) goto out;
  *total += a.n;
  if (!use_rollups && a.n <= o->points) { /* short enough: the series as it is */
    if (o->by_time) qsort(a.raw, (size_t)a.n, sizeof *a.raw, cmp_x_time);
    for (int64_t i = 0; i < a.n; i++) json_array_append_new(arr, pt_json(key, with_run_id ? run_id : NULL, &a.raw[i]));
    goto out;
  }
  for (int64_t k = 0; k < a.nb; k++) {
    struct bucket *q = &a.b[k];
    if (!q->used) continue;
    if (a.one) {
      json_array_append_new(arr, pt_json(key, with_run_id ? run_id : NULL, &q->hi));
      continue;
    }
    struct pt four[4];
    int m = 0;
    keep(four, &m, &q->first);
    keep(four, &m, &q->lo);
    keep(four, &m, &q->hi);
    keep(four, &m, &q->last);
    qsort(four, (size_t)m, sizeof four[0], o->by_time ? cmp_x_time : cmp_seq);
    for (int i = 0; i < m; i++) json_array_append_new(arr, pt_json(key, with_run_id ? run_id : NULL, &four[i]));
  }
out:
  free(a.b);
  free(a.raw);
  return rc;
}

/* ---- write side: the rollups ------------------------------------------------------------------ */

struct rollup_sort {
  const struct track_metric *m;
};

static int cmp_key_bucket(const void *x, const void *y, void *arg) {
  const struct track_metric *m = ((struct rollup_sort *)arg)->m;
  const struct track_metric *p = &m[*(const int *)x], *q = &m[*(const int *)y];
  int k = strcmp(p->key, q->key);
  if (k) return k;
  int64_t bp = p->step >> TRK_ROLLUP_SHIFT, bq = q->step >> TRK_ROLLUP_SHIFT;
  return (bp > bq) - (bp < bq);
}

/* protobuf's doubles as the history stores them: NaN as 0 with is_nan,
 * +-inf as +-DBL_MAX */
static double stored(double v) { return isnan(v) ? 0 : isinf(v) ? (v > 0 ? DBL_MAX : -DBL_MAX) : v; }

#define CASE3(cond, a, b, c)                                                                                \
  a " = CASE WHEN " cond " THEN excluded." a " ELSE metric_rollups." a " END, " b " = CASE WHEN " cond     \
    " THEN excluded." b " ELSE metric_rollups." b " END, " c " = CASE WHEN " cond " THEN excluded." c      \
    " ELSE metric_rollups." c " END"
#define F_NEWER "(excluded.first_step < metric_rollups.first_step OR (excluded.first_step = metric_rollups.first_step AND excluded.first_ts < metric_rollups.first_ts))"
#define L_NEWER "(excluded.last_step > metric_rollups.last_step OR (excluded.last_step = metric_rollups.last_step AND excluded.last_ts >= metric_rollups.last_ts))"
#define LO_NEWER "(excluded.lo_value IS NOT NULL AND (metric_rollups.lo_value IS NULL OR excluded.lo_value < metric_rollups.lo_value))"
#define HI_NEWER "(excluded.hi_value IS NOT NULL AND (metric_rollups.hi_value IS NULL OR excluded.hi_value > metric_rollups.hi_value))"

static const char ROLLUP_UPSERT[] =
    "INSERT INTO metric_rollups (run_uuid, key, bucket, n, first_step, first_ts, first_value, first_nan, last_step,"
    " last_ts, last_value, last_nan, lo_step, lo_ts, lo_value, hi_step, hi_ts, hi_value)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (run_uuid, key, bucket) DO UPDATE SET n = metric_rollups.n + excluded.n, "
    CASE3(F_NEWER, "first_step", "first_ts", "first_value") ", "
    "first_nan = CASE WHEN " F_NEWER " THEN excluded.first_nan ELSE metric_rollups.first_nan END, "
    CASE3(L_NEWER, "last_step", "last_ts", "last_value") ", "
    "last_nan = CASE WHEN " L_NEWER " THEN excluded.last_nan ELSE metric_rollups.last_nan END, "
    CASE3(LO_NEWER, "lo_step", "lo_ts", "lo_value") ", " CASE3(HI_NEWER, "hi_step", "hi_ts", "hi_value");

static void bind_pt(struct db_stmt *s, int at, const struct track_metric *m, bool with_nan) {
  db_bind_i64(s, at, m->step);
  db_bind_i64(s, at + 1, m->timestamp);
  db_bind_f64(s, at + 2, stored(m->value));
  if (with_nan) db_bind_i64(s, at + 3, isnan(m->value));
}

int track_rollup_add(struct db_conn *c, const char *run_id, const struct track_metric *m, int n, struct err *e) {
  if (n <= 0) return 0;
  int *ord = malloc((size_t)n * sizeof *ord);
  if (!ord) return err_set(e, ERR_NO_MEMORY, "out of memory");
  for (int i = 0; i < n; i++) ord[i] = i;
  struct rollup_sort rs = {m};
  qsort_r(ord, (size_t)n, sizeof *ord, cmp_key_bucket, &rs);
  int rc = 0;
  for (int g = 0; g < n && !rc;) {
    int h = g + 1;
    while (h < n && cmp_key_bucket(&ord[g], &ord[h], &rs) == 0) h++;
    const struct track_metric *first = &m[ord[g]], *last = first, *lo = NULL, *hi = NULL;
    for (int i = g; i < h; i++) {
      const struct track_metric *p = &m[ord[i]];
      if (p->step < first->step || (p->step == first->step && p->timestamp < first->timestamp)) first = p;
      if (p->step > last->step || (p->step == last->step && p->timestamp >= last->timestamp)) last = p;
      if (isnan(p->value)) continue;
      if (!lo || stored(p->value) < stored(lo->value)) lo = p;
      if (!hi || stored(p->value) > stored(hi->value)) hi = p;
    }
    struct db_stmt *s = db_prepare(c, ROLLUP_UPSERT, e); /* cached: a lookup, not a compile */
    if (!s) {
      rc = -ERR_INTERNAL;
      break;
    }
    db_bind_text(s, 1, run_id);
    db_bind_text(s, 2, first->key);
    db_bind_i64(s, 3, first->step >> TRK_ROLLUP_SHIFT);
    db_bind_i64(s, 4, h - g);
    bind_pt(s, 5, first, true);
    bind_pt(s, 9, last, true);
    if (lo) bind_pt(s, 13, lo, false);
    else db_bind_null(s, 13), db_bind_null(s, 14), db_bind_null(s, 15);
    if (hi) bind_pt(s, 16, hi, false);
    else db_bind_null(s, 16), db_bind_null(s, 17), db_bind_null(s, 18);
    int st = db_step(s, e);
    db_stmt_done(s);
    if (st < 0) rc = st;
    g = h;
  }
  free(ord);
  return rc;
}

static int check_points(int64_t points, int64_t max, const char *name, struct err *e) {
  if (points < 1 || points > max)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s must be between 1 and %lld, got %lld", name, (long long)max,
                   (long long)points);
  return 0;
}

json_t *track_metric_sampled(struct db *db, const char *project_id, const char *run_id, const char *key,
                             const struct track_sample *o, int64_t *total, struct err *e) {
  *total = 0;
  if (check_points(o->points, TRACKING_MAX_SAMPLED_POINTS, "points", e)) return NULL;
  if (o->has_start && o->has_end && o->start > o->end) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "start (%lld) is after end (%lld)", (long long)o->start, (long long)o->end);
    return NULL;
  }
  struct track_sample q = *o;
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  json_t *arr = NULL;
  struct track_run r;
  int64_t lo = 0, hi = 0;
  bool found;
  if (track_run_load(c, project_id, run_id, &r, e) || x_range(c, run_id, key, q.by_time, &lo, &hi, &found, e)) goto out;
  arr = json_array();
  if (q.has_start && q.start > lo) lo = q.start;
  if (q.has_end && q.end < hi) hi = q.end;
  if (!found || lo > hi) goto out;
  if (sample_run(c, run_id, key, &q, lo, hi, arr, false, total, e)) {
    json_decref(arr);
    arr = NULL;
  }
out:
  db_reader_release(db, c);
  return arr;
}

json_t *track_metric_bulk_interval(struct db *db, const char *project_id, const char *const *run_ids, int nrun_ids,
                                   const char *key, const struct track_sample *o, struct err *e) {
  if (nrun_ids < 1) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "GetMetricHistoryBulkInterval request must specify at least one run_id.");
    return NULL;
  }
  if (nrun_ids > TRACKING_MAX_BULK_RUN_IDS) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE,
            "GetMetricHistoryBulkInterval request cannot specify more than %d run_ids. Received %d run_ids.",
            TRACKING_MAX_BULK_RUN_IDS, nrun_ids);
    return NULL;
  }
  if (check_points(o->points, TRACKING_MAX_BULK_INTERVAL_RESULTS, "max_results", e)) return NULL;
  if (o->has_start && o->has_end && o->start > o->end) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "end_step must be greater than start_step. Found start_step=%lld and end_step=%lld.",
            (long long)o->start, (long long)o->end);
    return NULL;
  }
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  json_t *arr = NULL;
  /* one step range for all runs, so their buckets line up on a chart */
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  for (int i = 0; i < nrun_ids; i++) {
    struct track_run r;
    int64_t a, b;
    bool found;
    if (track_run_load(c, project_id, run_ids[i], &r, e) || x_range(c, run_ids[i], key, false, &a, &b, &found, e))
      goto out;
    if (!found) continue;
    if (a < lo) lo = a;
    if (b > hi) hi = b;
  }
  arr = json_array();
  if (o->has_start && o->start > lo) lo = o->start;
  if (o->has_end && o->end < hi) hi = o->end;
  if (lo > hi) goto out;
  int64_t total = 0;
  struct track_sample q = *o;
  q.by_time = false;
  for (int i = 0; i < nrun_ids; i++)
    if (sample_run(c, run_ids[i], key, &q, lo, hi, arr, true, &total, e)) {
      json_decref(arr);
      arr = NULL;
      break;
    }
out:
  db_reader_release(db, c);
  return arr;
}
