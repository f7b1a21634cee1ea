/* track/series: a metric's history stored as chunks of up to 1024 points of
 * one (run, key) (metric_chunks, migration 0008): the write path that appends,
 * merges and deduplicates points, and the reader every history view scans. */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A chunk's points are delta-encoded: per point the zigzag varint of the
 * step's and the timestamp's difference from the previous point, then the
 * stored value's 8 bytes (little-endian IEEE 754; a NaN there marks is_nan).
 * About 11 bytes a point for steps logged in order. */
#define CHUNK_FORMAT 1
#define POINT_MAX_BYTES (10 + 10 + 8)
/* A call bringing fewer than TAIL_MERGE_CALL_BELOW points of a key merges
 * them into the series' last chunk while that holds fewer than
 * TAIL_MERGE_BELOW, so a series logged one point per call still reads ~128
 * points per row; bigger calls write their points as chunks of their own. */
#define TAIL_MERGE_BELOW 128
#define TAIL_MERGE_CALL_BELOW 64

int track_point_cmp(const struct track_point *a, const struct track_point *b) {
  if (a->step != b->step) return a->step < b->step ? -1 : 1;
  if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
  if (a->v != b->v) return a->v < b->v ? -1 : 1;
  return (int)a->nan - (int)b->nan;
}

struct track_point track_point_of(const struct track_metric *m) {
  double v = m->value;
  bool nan = isnan(v);
  return (struct track_point){m->step, m->timestamp, nan ? 0 : isinf(v) ? (v > 0 ? DBL_MAX : -DBL_MAX) : v, nan};
}

/* ---- encoding ------------------------------------------------------------------------------ */

static size_t put_varint(uint8_t *o, uint64_t u) {
  size_t n = 0;
  while (u >= 0x80) {
    o[n++] = (uint8_t)(u | 0x80);
    u >>= 7;
  }
  o[n++] = (uint8_t)u;
  return n;
}

static bool get_varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
  uint64_t u = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    u |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = u;
      return true;
    }
  }
  return false;
}

/* deltas in unsigned arithmetic: wraps instead of overflowing for any
 * pair of int64 steps */
static uint64_t zigzag(uint64_t d) { return (d << 1) ^ (uint64_t)((int64_t)d >> 63); }
static uint64_t unzigzag(uint64_t u) { return (u >> 1) ^ (uint64_t)-(int64_t)(u & 1); }

static size_t chunk_encode(const struct track_point *p, int n, uint8_t *out) {
  size_t len = 0;
  out[len++] = CHUNK_FORMAT;
  uint64_t step = 0, ts = 0;
  for (int i = 0; i < n; i++) {
    len += put_varint(out + len, zigzag((uint64_t)p[i].step - step));
    len += put_varint(out + len, zigzag((uint64_t)p[i].ts - ts));
    step = (uint64_t)p[i].step;
    ts = (uint64_t)p[i].ts;
    double v = p[i].nan ? NAN : p[i].v;
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    for (int b = 0; b < 8; b++) out[len++] = (uint8_t)(bits >> (8 * b));
  }
  return len;
}


static int corrupt(struct err *e) { return err_set(e, ERR_INTERNAL, "a stored metric chunk is malformed"); }

/* blob: the chunk's points column (NULL: the one point is its summary);
 * out holds TRACK_SERIES_CHUNK_MAX points */
static int chunk_decode(const struct track_chunk *c, const void *blob, size_t blob_len, struct track_point *out,
                        struct err *e) {
  if (c->n < 1 || c->n > TRACK_SERIES_CHUNK_MAX) return corrupt(e);
  if (!blob) {
    if (c->n != 1) return corrupt(e);
    out[0] = c->first;
    return 0;
  }
  const uint8_t *p = blob, *end = p + blob_len;
  if (p == end || *p++ != CHUNK_FORMAT) return corrupt(e);
  uint64_t step = 0, ts = 0;
  for (int64_t i = 0; i < c->n; i++) {
    uint64_t ds, dt;
    if (!get_varint(&p, end, &ds) || !get_varint(&p, end, &dt) || end - p < 8) return corrupt(e);
    step += unzigzag(ds);
    ts += unzigzag(dt);
    uint64_t bits = 0;
    for (int b = 0; b < 8; b++) bits |= (uint64_t)p[b] << (8 * b);
    p += 8;
    double v;
    memcpy(&v, &bits, sizeof v);
    out[i] = (struct track_point){(int64_t)step, (int64_t)ts, isnan(v) ? 0 : v, isnan(v)};
  }
  return p == end ? 0 : corrupt(e);
}

/* A chunk's points: its blob fetched by rowid (the summaries come from the
 * covering index, the points from the table). */
static int chunk_load(struct db_conn *c, const struct track_chunk *ch, struct track_point *out, struct err *e) {
  if (ch->n == 1) return chunk_decode(ch, NULL, 0, out, e);
  struct db_stmt *s = db_prepare(c, "SELECT points FROM metric_chunks WHERE rowid = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, ch->rowid);
  int rc = db_step(s, e);
  if (rc == DB_ROW) {
    size_t len = 0;
    const void *blob = db_col_null(s, 0) ? NULL : db_col_blob(s, 0, &len);
    rc = chunk_decode(ch, blob, len, out, e);
  } else if (rc == DB_DONE) {
    rc = corrupt(e);
  }
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

/* the summary columns, in the index's order (a covering scan) */
#define CHUNK_COLS                                                                                            \
  "rowid, n, first_step, first_ts, first_value, first_nan, last_step, last_ts, last_value, last_nan, min_ts," \
  " max_ts, lo_step, lo_ts, lo_value, hi_step, hi_ts, hi_value"

static void chunk_row(struct db_stmt *s, struct track_chunk *c) {
  c->rowid = db_col_i64(s, 0);
  c->n = db_col_i64(s, 1);
  c->first = (struct track_point){db_col_i64(s, 2), db_col_i64(s, 3), db_col_f64(s, 4), db_col_i64(s, 5) != 0};
  c->last = (struct track_point){db_col_i64(s, 6), db_col_i64(s, 7), db_col_f64(s, 8), db_col_i64(s, 9) != 0};
  c->min_ts = db_col_i64(s, 10);
  c->max_ts = db_col_i64(s, 11);
  c->has_lohi = !db_col_null(s, 14);
  c->lo = (struct track_point){db_col_i64(s, 12), db_col_i64(s, 13), db_col_f64(s, 14), false};
  c->hi = (struct track_point){db_col_i64(s, 15), db_col_i64(s, 16), db_col_f64(s, 17), false};
}

/* ---- writing --------------------------------------------------------------------------------- */

struct writer {
  struct db_conn *c;
  const char *run_id;
  uint8_t *enc;             /* TRACK_SERIES_CHUNK_MAX points encoded */
  struct track_point *tail; /* TRACK_SERIES_CHUNK_MAX points */
};

static void bind_point4(struct db_stmt *s, int at, const struct track_point *p) {
  db_bind_i64(s, at, p->step);
  db_bind_i64(s, at + 1, p->ts);
  db_bind_f64(s, at + 2, p->v);
  db_bind_i64(s, at + 3, p->nan);
}

/* Writes p[0..n) (sorted, n <= TRACK_SERIES_CHUNK_MAX) as one chunk: a new
 * row, or over row `replace`. */
static int chunk_put(struct writer *w, const char *key, const struct track_point *p, int n, int64_t replace,
                     struct err *e) {
  int64_t min_ts = p[0].ts, max_ts = p[0].ts;
  const struct track_point *lo = NULL, *hi = NULL;
  for (int i = 0; i < n; i++) {
    if (p[i].ts < min_ts) min_ts = p[i].ts;
    if (p[i].ts > max_ts) max_ts = p[i].ts;
    if (p[i].nan) continue;
    if (!lo || p[i].v < lo->v) lo = &p[i];
    if (!hi || p[i].v > hi->v) hi = &p[i];
  }
  struct db_stmt *s = db_prepare(
      w->c,
      replace ? "UPDATE metric_chunks SET last_step = ?1, last_ts = ?2, last_value = ?3, last_nan = ?4,"
                " first_step = ?5, first_ts = ?6, first_value = ?7, first_nan = ?8, min_ts = ?9, max_ts = ?10,"
                " n = ?11, lo_step = ?12, lo_ts = ?13, lo_value = ?14, hi_step = ?15, hi_ts = ?16, hi_value = ?17,"
                " points = ?18 WHERE rowid = ?21"
              : "INSERT INTO metric_chunks (last_step, last_ts, last_value, last_nan, first_step, first_ts,"
                " first_value, first_nan, min_ts, max_ts, n, lo_step, lo_ts, lo_value, hi_step, hi_ts, hi_value,"
                " points, run_uuid, key)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
      e);
  if (!s) return -ERR_INTERNAL;
  bind_point4(s, 1, &p[n - 1]);
  bind_point4(s, 5, &p[0]);
  db_bind_i64(s, 9, min_ts);
  db_bind_i64(s, 10, max_ts);
  db_bind_i64(s, 11, n);
  const struct track_point *ext[2] = {lo, hi};
  for (int k = 0; k < 2; k++) {
    if (!ext[k]) {
      for (int i = 0; i < 3; i++) db_bind_null(s, 12 + 3 * k + i);
      continue;
    }
    db_bind_i64(s, 12 + 3 * k, ext[k]->step);
    db_bind_i64(s, 13 + 3 * k, ext[k]->ts);
    db_bind_f64(s, 14 + 3 * k, ext[k]->v);
  }
  if (n == 1) db_bind_null(s, 18); /* the summary columns are the point */
  else db_bind_blob(s, 18, w->enc, chunk_encode(p, n, w->enc));
  if (replace) db_bind_i64(s, 21, replace);
  else {
    db_bind_text(s, 19, w->run_id);
    db_bind_text(s, 20, key);
  }
  int rc = db_step(s, e);
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

static int chunks_put(struct writer *w, const char *key, const struct track_point *p, int64_t n, struct err *e) {
  int rc = 0;
  for (int64_t at = 0; at < n && !rc; at += TRACK_SERIES_CHUNK_MAX) {
    int64_t k = n - at < TRACK_SERIES_CHUNK_MAX ? n - at : TRACK_SERIES_CHUNK_MAX;
    rc = chunk_put(w, key, p + at, (int)k, 0, e);
  }
  return rc;
}

/* Points past the series' end: a call with few points of the key merges
 * them into a small tail chunk; otherwise they become chunks of their own.
 * All of them are new. */
static int append(struct writer *w, const char *key, const struct track_chunk *tail, const struct track_point *p,
                  int n, struct err *e) {
  if (!tail || n >= TAIL_MERGE_CALL_BELOW || tail->n >= TAIL_MERGE_BELOW) return chunks_put(w, key, p, n, e);
  int rc = chunk_load(w->c, tail, w->tail, e);
  if (rc) return rc;
  memcpy(w->tail + tail->n, p, (size_t)n * sizeof *p);
  return chunk_put(w, key, w->tail, (int)tail->n + n, tail->rowid, e);
}

/* Points at or before the series' end: every chunk whose range meets
 * [p[0], p[n-1]] is read, merged with them (an identical point is kept
 * once), deleted, and the union written back as new chunks. */
static int merge(struct writer *w, const char *key, const struct track_point *p, int n, struct err *e) {
  struct db_stmt *s = db_prepare(w->c,
                                 "SELECT " CHUNK_COLS " FROM metric_chunks WHERE run_uuid = ? AND key = ?"
                                 " AND (last_step, last_ts, last_value, last_nan) >= (?, ?, ?, ?)"
                                 " ORDER BY last_step, last_ts, last_value, last_nan",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, w->run_id);
  db_bind_text(s, 2, key);
  bind_point4(s, 3, &p[0]);
  struct track_chunk *hit = NULL;
  int64_t nhit = 0, hcap = 0, nold = 0;
  int rc;
  while ((rc = db_step(s, e)) == DB_ROW) {
    struct track_chunk c;
    chunk_row(s, &c);
    if (track_point_cmp(&c.first, &p[n - 1]) > 0) break; /* past the new points: no overlap from here on */
    if (c.n < 1 || c.n > TRACK_SERIES_CHUNK_MAX) {
      rc = corrupt(e);
      break;
    }
    if (nhit == hcap) {
      int64_t ncap = hcap ? hcap * 2 : 8;
      struct track_chunk *h2 = realloc(hit, (size_t)ncap * sizeof *hit);
      if (!h2) {
        rc = err_set(e, ERR_NO_MEMORY, "out of memory merging metric points");
        break;
      }
      hit = h2;
      hcap = ncap;
    }
    hit[nhit++] = c;
    nold += c.n;
  }
  db_stmt_done(s);
  struct track_point *old = NULL, *all = NULL;
  if (rc >= 0) {
    old = malloc((size_t)(nold + TRACK_SERIES_CHUNK_MAX) * sizeof *old);
    all = malloc((size_t)(nold + n) * sizeof *all);
    rc = old && all ? 0 : err_set(e, ERR_NO_MEMORY, "out of memory merging metric points");
  }
  int64_t at = 0;
  for (int64_t h = 0; h < nhit && !rc; h++) {
    rc = chunk_load(w->c, &hit[h], old + at, e);
    at += hit[h].n;
  }
  int64_t nall = 0;
  if (!rc) {
    int64_t i = 0, k = 0;
    while (i < nold || k < n) {
      int d = i == nold ? 1 : k == n ? -1 : track_point_cmp(&old[i], &p[k]);
      if (d <= 0) all[nall++] = old[i++];
      else all[nall++] = p[k];
      if (d >= 0) k++;
    }
  }
  for (int64_t h = 0; h < nhit && !rc; h++)
    rc = track_exec(w->c, "DELETE FROM metric_chunks WHERE rowid = ?", e, "i", hit[h].rowid);
  if (!rc) rc = chunks_put(w, key, all, nall, e);
  free(all);
  free(old);
  free(hit);
  return rc;
}

/* One key's new points, sorted and without repeats. */
static int write_key(struct writer *w, const char *key, const struct track_point *p, int n, struct err *e) {
  struct db_stmt *s = db_prepare(w->c,
                                 "SELECT " CHUNK_COLS " FROM metric_chunks WHERE run_uuid = ? AND key = ?"
                                 " ORDER BY last_step DESC, last_ts DESC, last_value DESC, last_nan DESC LIMIT 1",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, w->run_id);
  db_bind_text(s, 2, key);
  int rc = db_step(s, e);
  struct track_chunk tail;
  bool has_tail = rc == DB_ROW;
  if (has_tail) chunk_row(s, &tail);
  db_stmt_done(s);
  if (rc < 0) return rc;
  if (has_tail && track_point_cmp(&p[0], &tail.last) <= 0) return merge(w, key, p, n, e);
  return append(w, key, has_tail ? &tail : NULL, p, n, e);
}

int track_series_write(struct db_conn *c, const char *run_id, const struct track_metric *m, int n, struct err *e) {
  if (n <= 0) return 0;
  struct track_point *grp = malloc((size_t)n * sizeof *grp);
  struct writer w = {c, run_id, malloc(1 + (size_t)TRACK_SERIES_CHUNK_MAX * POINT_MAX_BYTES),
                     malloc(TRACK_SERIES_CHUNK_MAX * sizeof(struct track_point))};
  int rc = 0;
  if (!grp || !w.enc || !w.tail) {
    rc = err_set(e, ERR_NO_MEMORY, "out of memory for %d metric points", n);
    goto out;
  }
  for (int g = 0; g < n && !rc;) {
    const char *key = m[g].key;
    int k = 0, h = g;
    for (; h < n && (m[h].key == key || str_eq(m[h].key, key)); h++) {
      struct track_point p = track_point_of(&m[h]);
      if (k && track_point_cmp(&p, &grp[k - 1]) == 0) continue; /* a repeat within the call is one point */
      grp[k++] = p;
    }
    rc = write_key(&w, key, grp, k, e);
    g = h;
  }
out:
  free(grp);
  free(w.enc);
  free(w.tail);
  return rc;
}

/* ---- sorting a call's points ------------------------------------------------------------------ */

struct ranked {
  int rank, idx;
  struct track_point p;
};

static int cmp_ranked(const void *x, const void *y) {
  const struct ranked *a = x, *b = y;
  if (a->rank != b->rank) return a->rank < b->rank ? -1 : 1;
  int c = track_point_cmp(&a->p, &b->p);
  return c ? c : (a->idx > b->idx) - (a->idx < b->idx);
}

static int cmp_str_ptr(const void *x, const void *y, void *arg) {
  const char *const *keys = arg;
  return strcmp(keys[*(const int *)x], keys[*(const int *)y]);
}

/* Keys are ranked once (a small hash of the distinct ones, sorted), so the
 * sort of the points compares integers; a call already in order — the
 * usual shape — costs one pass. */
int track_series_sort(const struct track_metric *m, int n, struct track_metric *out, struct err *e) {
  if (n <= 0) return 0;
  size_t cap = 16;
  while (cap < (size_t)n * 2) cap *= 2;
  int *slot = malloc(cap * sizeof *slot), *kid = malloc((size_t)n * sizeof *kid);
  int *byname = malloc((size_t)n * sizeof *byname), *rank = malloc((size_t)n * sizeof *rank);
  const char **keys = malloc((size_t)n * sizeof *keys);
  struct ranked *r = malloc((size_t)n * sizeof *r);
  int rc = 0;
  if (!slot || !kid || !byname || !rank || !keys || !r) {
    rc = err_set(e, ERR_NO_MEMORY, "out of memory sorting %d metric points", n);
    goto out;
  }
  memset(slot, 0xff, cap * sizeof *slot);
  int nkeys = 0;
  for (int i = 0; i < n; i++) {
    if (i && (m[i].key == m[i - 1].key || str_eq(m[i].key, m[i - 1].key))) { /* runs of one key are common */
      kid[i] = kid[i - 1];
      continue;
    }
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *s = (const unsigned char *)m[i].key; *s; s++) h = (h ^ *s) * 1099511628211ULL;
    size_t at = (size_t)h & (cap - 1);
    while (slot[at] >= 0 && !str_eq(keys[slot[at]], m[i].key)) at = (at + 1) & (cap - 1);
    if (slot[at] < 0) {
      slot[at] = nkeys;
      keys[nkeys++] = m[i].key;
    }
    kid[i] = slot[at];
  }
  for (int k = 0; k < nkeys; k++) byname[k] = k;
  qsort_r(byname, (size_t)nkeys, sizeof *byname, cmp_str_ptr, keys);
  for (int k = 0; k < nkeys; k++) rank[byname[k]] = k;
  bool sorted = true;
  for (int i = 0; i < n; i++) {
    r[i] = (struct ranked){rank[kid[i]], i, track_point_of(&m[i])};
    if (i && sorted && cmp_ranked(&r[i - 1], &r[i]) > 0) sorted = false;
  }
  if (!sorted) qsort(r, (size_t)n, sizeof *r, cmp_ranked);
  for (int i = 0; i < n; i++) out[i] = m[r[i].idx];
out:
  free(slot);
  free(kid);
  free(byname);
  free(rank);
  free(keys);
  free(r);
  return rc;
}

/* ---- reading --------------------------------------------------------------------------------- */

int track_series_open(struct track_series_it *it, struct db_conn *c, const char *run_id, const char *key,
                      enum track_series_range range, int64_t from, int64_t to, int64_t skip, struct err *e) {
  static const char *const sql[] = {
      [TRACK_SERIES_ALL] = "SELECT " CHUNK_COLS " FROM metric_chunks WHERE run_uuid = ?1 AND key = ?2"
                           " ORDER BY last_step, last_ts, last_value, last_nan",
      /* chunks are disjoint and ordered, so their first steps ascend too:
       * the scan starts at the first chunk ending at or after `from` and
       * stops at the first one starting after `to` */
      [TRACK_SERIES_STEPS] = "SELECT " CHUNK_COLS " FROM metric_chunks WHERE run_uuid = ?1 AND key = ?2"
                             " AND last_step >= ?3 ORDER BY last_step, last_ts, last_value, last_nan",
      [TRACK_SERIES_TIME] = "SELECT " CHUNK_COLS " FROM metric_chunks WHERE run_uuid = ?1 AND key = ?2"
                            " AND max_ts >= ?3 AND min_ts <= ?4 ORDER BY last_step, last_ts, last_value, last_nan",
  };
  *it = (struct track_series_it){.c = c, .range = range, .from = from, .to = to, .skip = skip};
  it->pts = malloc(TRACK_SERIES_CHUNK_MAX * sizeof *it->pts);
  if (!it->pts) return err_set(e, ERR_NO_MEMORY, "out of memory reading a metric history");
  it->s = db_prepare(c, sql[range], e);
  if (!it->s) {
    free(it->pts);
    it->pts = NULL;
    return -ERR_INTERNAL;
  }
  db_bind_text(it->s, 1, run_id);
  db_bind_text(it->s, 2, key);
  if (range != TRACK_SERIES_ALL) db_bind_i64(it->s, 3, from);
  if (range == TRACK_SERIES_TIME) db_bind_i64(it->s, 4, to);
  return 0;
}

int track_series_chunk(struct track_series_it *it, struct track_chunk *ch, struct err *e) {
  if (it->done) return 0;
  int rc = db_step(it->s, e);
  if (rc != DB_ROW) {
    it->done = true;
    return rc < 0 ? rc : 0;
  }
  chunk_row(it->s, ch);
  if (it->range == TRACK_SERIES_STEPS && ch->first.step > it->to) {
    it->done = true;
    return 0;
  }
  return 1;
}

int track_series_chunk_points(struct track_series_it *it, const struct track_chunk *ch, struct err *e) {
  int rc = chunk_load(it->c, ch, it->pts, e);
  if (rc) return rc;
  it->n = (int)ch->n;
  it->i = 0;
  return 0;
}

int track_series_next(struct track_series_it *it, struct track_point *p, struct err *e) {
  for (;;) {
    while (it->i < it->n) {
      const struct track_point *q = &it->pts[it->i++];
      int64_t x = it->range == TRACK_SERIES_TIME ? q->ts : q->step;
      if (it->range != TRACK_SERIES_ALL && (x < it->from || x > it->to)) continue;
      *p = *q;
      return 1;
    }
    struct track_chunk ch;
    int rc = track_series_chunk(it, &ch, e);
    if (rc <= 0) return rc;
    if (it->skip >= ch.n) { /* whole chunks are skipped without reading their points */
      it->skip -= ch.n;
      continue;
    }
    if ((rc = track_series_chunk_points(it, &ch, e))) {
      it->done = true;
      return rc;
    }
    it->i = (int)it->skip;
    it->skip = 0;
  }
}

void track_series_close(struct track_series_it *it) {
  if (it->s) db_stmt_done(it->s);
  free(it->pts);
  *it = (struct track_series_it){0};
}

int track_series_x_range(struct db_conn *c, const char *run_id, const char *key, bool by_time, int64_t *lo,
                         int64_t *hi, bool *found, struct err *e) {
  /* steps: the first and the last chunk, each one index seek; timestamps:
   * every chunk's summary in the index (a thousandth of the points) */
  struct db_stmt *s = db_prepare(
      c,
      by_time ? "SELECT MIN(min_ts), MAX(max_ts) FROM metric_chunks WHERE run_uuid = ? AND key = ?"
              : "SELECT (SELECT first_step FROM metric_chunks WHERE run_uuid = ?1 AND key = ?2"
                " ORDER BY last_step, last_ts, last_value, last_nan LIMIT 1),"
                " (SELECT last_step FROM metric_chunks WHERE run_uuid = ?1 AND key = ?2"
                " ORDER BY last_step DESC, last_ts DESC, last_value DESC, last_nan DESC LIMIT 1)",
      e);
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

int64_t track_series_count(struct db_conn *c, const char *run_id, const char *key, bool by_time, int64_t from,
                           int64_t to, struct err *e) {
  struct db_stmt *s = db_prepare(c,
                                 by_time ? "SELECT SUM(n) FROM metric_chunks WHERE run_uuid = ? AND key = ?"
                                           " AND max_ts >= ? AND min_ts <= ?"
                                         : "SELECT SUM(n) FROM metric_chunks WHERE run_uuid = ? AND key = ?"
                                           " AND last_step >= ? AND first_step <= ?",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, run_id);
  db_bind_text(s, 2, key);
  db_bind_i64(s, 3, from);
  db_bind_i64(s, 4, to);
  int rc = db_step(s, e);
  int64_t n = rc == DB_ROW && !db_col_null(s, 0) ? db_col_i64(s, 0) : 0;
  db_stmt_done(s);
  return rc < 0 ? rc : n;
}
