/* track/sampled: chart-sized metric series that keep their peaks. The x
 * range (steps, or timestamps) is cut into buckets; each bucket keeps its
 * first and last point and its lowest and highest value, so a spike of one
 * point in a million still shows. Computed at read time in one pass over
 * the history's primary-key index (run, key, step, timestamp, value): the
 * scan reads only the index, no table rows, and nothing is kept per point
 * but the bucket it falls in. Nothing is maintained at write time, so
 * ingest pays nothing for it. */
#include "internal.h"

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

/* The run's x range for the key: steps from the index ends, timestamps by
 * a scan (they are not indexed). found false: no points. */
static int x_range(struct db_conn *c, const char *run_id, const char *key, bool by_time, int64_t *lo, int64_t *hi,
                   bool *found, struct err *e) {
  const char *sql = by_time ? "SELECT MIN(timestamp), MAX(timestamp) FROM metrics WHERE run_uuid = ? AND key = ?"
                            : "SELECT MIN(step), MAX(step) FROM metrics WHERE run_uuid = ? AND key = ?";
  struct db_stmt *s = db_prepare(c, sql, e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, run_id);
  db_bind_text(s, 2, key);
  int rc = db_step(s, e);
  *found = rc == DB_ROW && !db_col_null(s, 0);
  if (*found) {
    *lo = db_col_i64(s, 0);
    *hi = db_col_i64(s, 1);
  }
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
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
  json_t *o = json_pack("{s:s, s:o, s:I, s:I}", "key", key, "value", trk_metric_value_json(p->v, p->nan), "timestamp",
                        (json_int_t)p->ts, "step", (json_int_t)p->step);
  if (run_id) json_object_set_new(o, "run_id", json_string(run_id));
  return o;
}

/* One run: appends at most o->points points in [lo, hi] to arr. */
static int sample_run(struct db_conn *c, const char *run_id, const char *key, const struct track_sample *o, int64_t lo,
                      int64_t hi, json_t *arr, bool with_run_id, int64_t *total, struct err *e) {
  /* four points a bucket; below 4 points, one bucket a point (its highest) */
  bool one = o->points < 4;
  int64_t nb = one ? o->points : o->points / 4;
  uint64_t width = (uint64_t)(hi - lo) + 1; /* hi >= lo */
  if ((uint64_t)nb > width) nb = (int64_t)width;
  struct bucket *b = calloc((size_t)nb, sizeof *b);
  struct pt *raw = malloc((size_t)o->points * sizeof *raw); /* the series itself while it fits */
  if (!b || !raw) {
    free(b);
    free(raw);
    return err_set(e, ERR_NO_MEMORY, "out of memory for %lld buckets", (long long)nb);
  }
  /* steps: a range of the index; timestamps: the key's whole history */
  struct db_stmt *s = db_prepare(c,
                                 o->by_time ? "SELECT step, timestamp, value, is_nan FROM metrics WHERE run_uuid = ?"
                                              " AND key = ? AND timestamp BETWEEN ? AND ?"
                                              " ORDER BY step, timestamp, value, is_nan"
                                            : "SELECT step, timestamp, value, is_nan FROM metrics WHERE run_uuid = ?"
                                              " AND key = ? AND step BETWEEN ? AND ?"
                                              " ORDER BY step, timestamp, value, is_nan",
                                 e);
  int rc = -ERR_INTERNAL;
  if (!s) goto out;
  db_bind_text(s, 1, run_id);
  db_bind_text(s, 2, key);
  db_bind_i64(s, 3, lo);
  db_bind_i64(s, 4, hi);
  int64_t n = 0;
  while ((rc = db_step(s, e)) == DB_ROW) {
    struct pt p = {db_col_i64(s, 0), db_col_i64(s, 1), db_col_f64(s, 2), db_col_i64(s, 3) != 0, n};
    if (n < o->points) raw[n] = p;
    n++;
    uint64_t off = (uint64_t)(x_of(&p, o->by_time) - lo);
    int64_t k = (int64_t)((unsigned __int128)off * (uint64_t)nb / width);
    struct bucket *q = &b[k];
    if (!q->used) {
      q->used = true;
      q->first = q->last = q->lo = q->hi = p;
      continue;
    }
    if (x_of(&p, o->by_time) < x_of(&q->first, o->by_time)) q->first = p;
    if (x_of(&p, o->by_time) >= x_of(&q->last, o->by_time)) q->last = p;
    if (!p.nan && (q->lo.nan || p.v < q->lo.v)) q->lo = p;
    if (!p.nan && (q->hi.nan || p.v > q->hi.v)) q->hi = p;
  }
  db_stmt_done(s);
  if (rc < 0) goto out;
  rc = 0;
  *total += n;
  if (n <= o->points) { /* short enough: the series as it is */
    if (o->by_time) qsort(raw, (size_t)n, sizeof *raw, cmp_x_time);
    for (int64_t i = 0; i < n; i++) json_array_append_new(arr, pt_json(key, with_run_id ? run_id : NULL, &raw[i]));
    goto out;
  }
  for (int64_t k = 0; k < nb; k++) {
    if (!b[k].used) continue;
    struct pt four[4];
    int m = 0;
    if (one) {
      json_array_append_new(arr, pt_json(key, with_run_id ? run_id : NULL, &b[k].hi));
      continue;
    }
    keep(four, &m, &b[k].first);
    keep(four, &m, &b[k].lo);
    keep(four, &m, &b[k].hi);
    keep(four, &m, &b[k].last);
    qsort(four, (size_t)m, sizeof four[0], o->by_time ? cmp_x_time : cmp_seq);
    for (int i = 0; i < m; i++) json_array_append_new(arr, pt_json(key, with_run_id ? run_id : NULL, &four[i]));
  }
out:
  free(b);
  free(raw);
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
  struct trk_run r;
  int64_t lo = 0, hi = 0;
  bool found;
  if (trk_run_load(c, project_id, run_id, &r, e) || x_range(c, run_id, key, q.by_time, &lo, &hi, &found, e)) goto out;
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
    struct trk_run r;
    int64_t a, b;
    bool found;
    if (trk_run_load(c, project_id, run_ids[i], &r, e) || x_range(c, run_ids[i], key, false, &a, &b, &found, e))
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
