/* track/sampled: chart-sized metric series that keep their peaks. The x
 * range (steps, or timestamps) is cut into buckets; each bucket keeps its
 * first and last point and its lowest and highest value, so a spike of one
 * point in a million still shows. Computed at read time in one pass over
 * the history's chunks (series.c), whose summaries stand in for their
 * points where a chunk falls inside one bucket, so a million-point chart
 * reads about a thousand index entries. */
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

static int x_range(struct db_conn *c, const char *run_id, const char *key, bool by_time, int64_t *lo, int64_t *hi,
                   bool *found, struct err *e) {
  return track_series_x_range(c, run_id, key, by_time, lo, hi, found, e);
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
  unsigned __int128 width;
  bool one; /* below 4 points: one point a bucket, its highest */
  struct bucket *b;
  struct pt *raw; /* the series itself while it fits in o->points */
  int64_t n, seq;  /* points seen (summarized chunks count theirs), points fed */
};

/* x in [lo, hi]; unsigned arithmetic: the range may span all of int64 */
static int64_t bucket_of(const struct acc *a, int64_t x) {
  return (int64_t)((unsigned __int128)((uint64_t)x - (uint64_t)a->lo) * (uint64_t)a->nb / a->width);
}

static void acc_feed(struct acc *a, struct pt p) {
  p.seq = a->seq++;
  if (a->seq <= a->o->points) a->raw[a->seq - 1] = p;
  struct bucket *q = &a->b[bucket_of(a, x_of(&p, a->o->by_time))];
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

static void feed_point(struct acc *a, const struct track_point *p) {
  acc_feed(a, (struct pt){p->step, p->ts, p->v, p->nan, 0});
}

/* A chunk stands in for its points when they all fall in one output bucket
 * and its summary holds that bucket's candidates: its first and last point
 * (by step; on the time axis only when its timestamps ascend with the steps,
 * so they are also its earliest and latest) and its lowest and highest
 * value. */
static bool summarizes(const struct acc *a, const struct track_chunk *ch, int64_t lo, int64_t hi) {
  if (ch->n <= 4) return false; /* as cheap to read */
  int64_t x0 = a->o->by_time ? ch->min_ts : ch->first.step, x1 = a->o->by_time ? ch->max_ts : ch->last.step;
  if (x0 < lo || x1 > hi || bucket_of(a, x0) != bucket_of(a, x1)) return false;
  return !a->o->by_time || (ch->first.ts == ch->min_ts && ch->last.ts == ch->max_ts);
}

static void feed_summary(struct acc *a, const struct track_chunk *ch) {
  struct track_point four[4] = {ch->first, ch->lo, ch->hi, ch->last};
  int m = ch->has_lohi ? 4 : 2;
  if (!ch->has_lohi) four[1] = ch->last;
  /* in x order (lo and hi lie between first and last), each point once */
  if (m == 4 && track_point_cmp(&four[1], &four[2]) > 0) {
    struct track_point t = four[1];
    four[1] = four[2];
    four[2] = t;
  }
  for (int i = 0; i < m; i++) {
    bool dup = false;
    for (int k = 0; k < i; k++) dup |= track_point_cmp(&four[k], &four[i]) == 0;
    if (!dup) feed_point(a, &four[i]);
  }
}

/* One run: appends at most o->points points in [lo, hi] to arr.
 *
 * The chunks meeting [lo, hi] are read in order. When the range holds more
 * points than asked for, a chunk lying inside one output bucket feeds its
 * summary (first, last, lowest, highest) instead of its points: every
 * bucket's extremes are some chunk's extremes, so peaks are exact, and a
 * million-point chart reads about a thousand index entries. Other chunks
 * (straddling a bucket edge or the range's ends) are read point by point. */
static int sample_run(struct db_conn *c, const char *run_id, const char *key, const struct track_sample *o, int64_t lo,
                      int64_t hi, json_t *arr, bool with_run_id, int64_t *total, struct err *e) {
  struct acc a = {.o = o, .lo = lo, .one = o->points < 4};
  a.nb = a.one ? o->points : o->points / 4;
  a.width = (unsigned __int128)((uint64_t)hi - (uint64_t)lo) + 1; /* hi >= lo */
  if ((unsigned __int128)a.nb > a.width) a.nb = (int64_t)a.width;
  int64_t in_range = track_series_count(c, run_id, key, o->by_time, lo, hi, e);
  if (in_range < 0) return (int)in_range;
  a.b = calloc((size_t)a.nb, sizeof *a.b);
  a.raw = malloc((size_t)o->points * sizeof *a.raw);
  if (!a.b || !a.raw) {
    free(a.b);
    free(a.raw);
    return err_set(e, ERR_NO_MEMORY, "out of memory for %lld buckets", (long long)a.nb);
  }
  bool may_summarize = in_range > o->points, summarized = false;
  struct track_series_it it;
  int rc = track_series_open(&it, c, run_id, key, o->by_time ? TRACK_SERIES_TIME : TRACK_SERIES_STEPS, lo, hi, 0, e);
  if (rc) goto out;
  struct track_chunk ch;
  while ((rc = track_series_chunk(&it, &ch, e)) == 1) {
    if (may_summarize && summarizes(&a, &ch, lo, hi)) {
      feed_summary(&a, &ch);
      a.n += ch.n;
      summarized = true;
      continue;
    }
    if ((rc = track_series_chunk_points(&it, &ch, e))) break;
    for (int i = 0; i < it.n; i++) {
      const struct track_point *p = &it.pts[i];
      int64_t x = o->by_time ? p->ts : p->step;
      if (x < lo || x > hi) continue;
      feed_point(&a, p);
      a.n++;
    }
  }
  track_series_close(&it);
  if (rc < 0) goto out;
  rc = 0;
  *total += a.n;
  if (!summarized && a.n <= o->points) { /* short enough: the series as it is */
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
