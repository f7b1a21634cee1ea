/* track/search: experiments/search and runs/search — view types, order_by
 * clauses with MLflow's tie-breakers and missing-last rule, and offset page
 * tokens with a snapshot bound (so paging is consistent while experiments
 * and runs are created), all pushed into one SQL query per page. The filter and order_by
 * SQL come from the search grammar (filter.h). */
#include "internal.h"
#include "filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int track_search_limits(const struct track_search *s, int64_t *max_results, int64_t *offset,
                      struct err *e) {
  *max_results = s->max_results ? s->max_results : TRACKING_DEFAULT_SEARCH_RESULTS;
  if (*max_results < 1)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "Invalid value for request parameter max_results. It must be a positive integer, "
                   "but got value %lld",
                   (long long)*max_results);
  if (*max_results > TRACKING_MAX_SEARCH_RESULTS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "Invalid value for request parameter max_results. It must be at most %d, but got "
                   "value %lld",
                   TRACKING_MAX_SEARCH_RESULTS, (long long)*max_results);
  *offset = 0;
  if (s->page_token && *s->page_token) return track_page_token_decode(s->page_token, offset, e);
  return 0;
}

static const char *lifecycle_clause(enum track_view v) {
  switch (v) {
  case TRACKING_VIEW_DELETED: return " AND %s.lifecycle_stage = 'deleted'";
  case TRACKING_VIEW_ALL: return "";
  default: return " AND %s.lifecycle_stage = 'active'";
  }
}

/* WHERE <ours> AND <filter> ORDER BY <order_by> LIMIT ? OFFSET ?, with the
 * filter grammar's binds following ours in one list. */
static int add_filter_and_order(const struct track_search *s, enum track_flt_entity ent, struct buf *sql,
                                struct track_flt_binds *binds, int64_t limit, int64_t offset, struct err *e) {
  struct track_flt *f = NULL;
  int rc = track_flt_parse(s->filter, ent, &f, e);
  if (rc) return rc;
  if (!track_flt_is_empty(f)) {
    buf_puts(sql, " AND ");
    rc = track_flt_to_sql(f, sql, binds, e);
  }
  track_flt_free(f);
  if (!rc) {
    buf_puts(sql, " ORDER BY ");
    rc = track_flt_order_by(s->order_by, s->norder_by, ent, sql, binds, e);
  }
  if (!rc) {
    buf_puts(sql, " LIMIT ? OFFSET ?");
    rc = track_flt_bind_i64(binds, limit, e);
  }
  if (!rc) rc = track_flt_bind_i64(binds, offset, e);
  if (!rc && !sql->data) rc = err_set(e, ERR_NO_MEMORY, "out of memory building a search");
  return rc;
}

static struct db_stmt *prepare_bound(struct db_conn *c, const struct buf *sql, const struct track_flt_binds *b,
                                     struct err *e) {
  struct db_stmt *st = db_prepare(c, sql->data, e);
  if (st && track_flt_binds_apply(b, st, 1) < 0) {
    db_stmt_done(st);
    err_set(e, ERR_INTERNAL, "binding search values failed");
    return NULL;
  }
  return st;
}

/* ---- experiments ---------------------------------------------------------------------- */

/* The highest id now (sql: one MAX): the bound of a search's snapshot. Read
 * before the page's query, so a row created in between is outside it too. */
static int snapshot(struct db *db, const char *sql, int64_t *snap, struct err *e) {
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -ERR_UNAVAILABLE;
  struct db_stmt *st = db_prepare(c, sql, e);
  int rc = st ? db_step(st, e) : -ERR_INTERNAL;
  if (rc == DB_ROW) *snap = db_col_i64(st, 0);
  if (st) db_stmt_done(st);
  db_reader_release(db, c);
  return rc < 0 ? rc : 0;
}

json_t *track_experiment_search(struct db *db, const char *project_id,
                                   const struct track_search *s,
                                   char next[TRACKING_PAGE_TOKEN_MAX], struct err *e) {
  next[0] = 0;
  int64_t max, offset, def, snap = 0;
  if (track_search_limits(s, &max, &offset, e)) return NULL;
  if (s->page_token && *s->page_token && track_page_token_decode_snap(s->page_token, &offset, &snap, e))
    return NULL;
  /* the Default is listed as soon as anyone looks, as in MLflow */
  if (track_default_experiment(db, project_id, &def, e)) return NULL;
  /* ids only grow (MAX + 1), so later pages leave out experiments created
   * since the first one and offsets stay put, as for runs */
  if (snap == 0 && snapshot(db, "SELECT COALESCE(MAX(experiment_id), 0) FROM experiments", &snap, e)) return NULL;
  struct buf sql;
  struct track_flt_binds binds;
  buf_init(&sql);
  track_flt_binds_init(&binds);
  json_t *out = NULL;
  int64_t *list = NULL, n = 0;
  buf_puts(&sql, "SELECT e.experiment_id FROM experiments e WHERE e.project_id = ? AND e.experiment_id <= ?");
  buf_printf(&sql, lifecycle_clause(s->view), "e");
  if (track_flt_bind_text(&binds, project_id, strlen(project_id), e) || track_flt_bind_i64(&binds, snap, e) ||
      add_filter_and_order(s, TRACK_FLT_EXPERIMENTS, &sql, &binds, max + 1, offset, e))
    goto out;
  if (!(list = malloc((size_t)(max + 1) * sizeof *list))) {
    err_set(e, ERR_NO_MEMORY, NULL);
    goto out;
  }
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) goto out;
  struct db_stmt *st = prepare_bound(c, &sql, &binds, e);
  int rc = st ? 0 : -1;
  /* ids first: building an entity runs other statements */
  while (st && n < max + 1 && (rc = db_step(st, e)) == DB_ROW) list[n++] = db_col_i64(st, 0);
  if (st) db_stmt_done(st);
  if (rc >= 0) out = json_array();
  for (int64_t i = 0; out && i < n && i < max; i++) {
    json_t *x = track_exp_json(c, list[i], e);
    if (!x) {
      json_decref(out);
      out = NULL;
    } else {
      json_array_append_new(out, x);
    }
  }
  if (out && n > max) track_page_token_encode_snap(offset + max, snap, next);
  db_reader_release(db, c);
out:
  free(list);
  track_flt_binds_fini(&binds);
  buf_fini(&sql);
  return out;
}

/* ---- runs ------------------------------------------------------------------------------- */

/* Experiment ids are padded with repeats to a power of two, so the number of
 * distinct statements (each cached per connection) stays small. */
static int padded(int n) {
  int p = 1;
  while (p < n) p *= 2;
  return p;
}

#define MAX_SEARCH_EXPERIMENTS 64

/* ---- runs ordered first by a metric ------------------------------------------------- *
 * Ordering every run of the experiments by a correlated lookup of its
 * metric reads all of them (~1 s over 100,000 runs); the (key, value)
 * index of latest_metrics already holds them in order. The search becomes
 * three arms read one after another — runs with a non-NaN value, walked
 * down (or up) the index; runs whose value is NaN; runs without the key —
 * which is the order track_flt_order_by gives (numbers, then NaN, then
 * missing, each group by the remaining keys and the tie-breakers). A page
 * takes what it needs from each arm in turn; an offset past an arm's end
 * is carried into the next by counting that arm. CROSS JOIN keeps SQLite
 * from starting at the runs table (to PostgreSQL it is a plain join). */
enum { ARM_VALUES, ARM_NAN, ARM_MISSING, NARMS };

bool track_search_by_metric_index = true;

struct run_scope {
  const char *project_id;
  const int64_t *ids;
  int nids;
  enum track_view view;
  const struct track_flt *filter;
  const struct track_search *s;
  const char *key;
  bool asc;
  int64_t snap; /* runs.rowid bound: runs created after the first page are not seen */
};

/* One arm's SELECT (or its COUNT(*) when count) with every bind in order. */
static int arm_sql(const struct run_scope *sc, int arm, bool count, int64_t limit, int64_t offset, struct buf *sql,
                   struct track_flt_binds *binds, struct err *e) {
  int rc = 0;
  buf_puts(sql, count ? "SELECT COUNT(*)" : "SELECT r.run_uuid");
  if (arm == ARM_MISSING) {
    buf_puts(sql, " FROM runs r WHERE NOT EXISTS (SELECT 1 FROM latest_metrics c"
                  " WHERE c.run_uuid = r.run_uuid AND c.key = ?)");
  } else {
    buf_puts(sql, arm == ARM_VALUES ? " FROM latest_metrics o CROSS JOIN runs r WHERE o.key = ? AND o.is_nan = 0"
                                    : " FROM latest_metrics o CROSS JOIN runs r WHERE o.key = ? AND o.is_nan <> 0");
    buf_puts(sql, " AND r.run_uuid = o.run_uuid");
  }
  rc = track_flt_bind_text(binds, sc->key, strlen(sc->key), e);
  buf_puts(sql, " AND r.project_id = ? AND r.experiment_id IN (");
  if (!rc) rc = track_flt_bind_text(binds, sc->project_id, strlen(sc->project_id), e);
  int np = padded(sc->nids);
  for (int i = 0; i < np && !rc; i++) {
    buf_puts(sql, i ? ", ?" : "?");
    rc = track_flt_bind_i64(binds, sc->ids[i < sc->nids ? i : sc->nids - 1], e);
  }
  buf_putc(sql, ')');
  buf_printf(sql, lifecycle_clause(sc->view), "r");
  buf_puts(sql, " AND r.rowid <= ?");
  if (!rc) rc = track_flt_bind_i64(binds, sc->snap, e);
  if (!rc && !track_flt_is_empty(sc->filter)) {
    buf_puts(sql, " AND ");
    rc = track_flt_to_sql(sc->filter, sql, binds, e);
  }
  if (!rc && !count) {
    buf_puts(sql, " ORDER BY ");
    if (arm == ARM_VALUES) buf_puts(sql, sc->asc ? "o.value ASC, " : "o.value DESC, ");
    rc = track_flt_order_by(sc->s->order_by + 1, sc->s->norder_by - 1, TRACK_FLT_RUNS, sql, binds, e);
    buf_puts(sql, " LIMIT ? OFFSET ?");
    if (!rc) rc = track_flt_bind_i64(binds, limit, e);
    if (!rc) rc = track_flt_bind_i64(binds, offset, e);
  }
  if (!rc && !sql->data) rc = err_set(e, ERR_NO_MEMORY, "out of memory building a search");
  return rc;
}

/* Up to `want` run ids from position `offset` of the metric order into
 * list; *n gets how many. */
static int runs_by_metric(struct db_conn *c, const struct run_scope *sc, int64_t offset, int64_t want,
                          char (*list)[TRACKING_RUN_ID_LEN + 1], int64_t *n, struct err *e) {
  *n = 0;
  int rc = 0;
  for (int arm = 0; arm < NARMS && want > 0 && !rc; arm++) {
    struct buf sql;
    struct track_flt_binds binds;
    buf_init(&sql);
    track_flt_binds_init(&binds);
    rc = arm_sql(sc, arm, false, want, offset, &sql, &binds, e);
    struct db_stmt *st = rc ? NULL : prepare_bound(c, &sql, &binds, e);
    if (!rc && !st) rc = -ERR_INTERNAL;
    int64_t got = 0;
    int step = 0;
    while (st && got < want && (step = db_step(st, e)) == DB_ROW) {
      str_copy(list[*n + got], sizeof list[0], db_col_text(st, 0));
      got++;
    }
    if (st) db_stmt_done(st);
    if (step < 0) rc = step;
    buf_fini(&sql);
    track_flt_binds_fini(&binds);
    if (rc) break;
    *n += got;
    want -= got;
    if (offset > 0 && got > 0) {
      offset = 0;
    } else if (offset > 0 && want > 0 && arm + 1 < NARMS) {
      /* the offset lies past this arm: skip the arm's rows */
      buf_init(&sql);
      track_flt_binds_init(&binds);
      rc = arm_sql(sc, arm, true, 0, 0, &sql, &binds, e);
      st = rc ? NULL : prepare_bound(c, &sql, &binds, e);
      if (!rc && !st) rc = -ERR_INTERNAL;
      if (st) {
        step = db_step(st, e);
        if (step == DB_ROW) offset -= db_col_i64(st, 0);
        else if (step < 0) rc = step;
        db_stmt_done(st);
      }
      buf_fini(&sql);
      track_flt_binds_fini(&binds);
      if (offset < 0) offset = 0;
    }
  }
  return rc;
}

/* Run objects for the ids, in order. */
static json_t *runs_json(struct db_conn *c, char (*list)[TRACKING_RUN_ID_LEN + 1], int64_t n, struct err *e) {
  json_t *out = json_array();
  for (int64_t i = 0; out && i < n; i++) {
    json_t *x = track_run_json(c, list[i], e);
    if (!x) {
      json_decref(out);
      return NULL;
    }
    json_array_append_new(out, x);
  }
  if (!out) err_set(e, ERR_NO_MEMORY, NULL);
  return out;
}

json_t *track_run_search(struct db *db, const char *project_id, const struct track_search *s,
                            char next[TRACKING_PAGE_TOKEN_MAX], struct err *e) {
  next[0] = 0;
  int64_t max, offset, snap = 0;
  if (track_search_limits(s, &max, &offset, e)) return NULL;
  if (s->page_token && *s->page_token && track_page_token_decode_snap(s->page_token, &offset, &snap, e))
    return NULL;
  if (snap == 0 && snapshot(db, "SELECT COALESCE(MAX(rowid), 0) FROM runs", &snap, e)) return NULL;
  if (s->nexperiment_ids > MAX_SEARCH_EXPERIMENTS) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "runs/search takes at most %d experiment_ids", MAX_SEARCH_EXPERIMENTS);
    return NULL;
  }
  /* the listed experiments that exist in this project ("0": its Default);
   * others (missing, or another project's) match no runs */
  int64_t ids[MAX_SEARCH_EXPERIMENTS];
  int nids = 0;
  for (int i = 0; i < s->nexperiment_ids; i++) {
    struct err why;
    int64_t id;
    if (track_experiment_resolve(db, project_id, s->experiment_ids[i], &id, &why) == 0) {
      ids[nids++] = id;
    } else if (why.code != ERR_RESOURCE_DOES_NOT_EXIST) {
      *e = why;
      return NULL;
    }
  }
  char key[TRACK_FLT_MAX_KEY + 1];
  bool asc = false;
  int by_metric = track_flt_order_first_metric(s->order_by, s->norder_by, key, sizeof key, &asc, e);
  if (by_metric < 0) return NULL;
  if (by_metric && nids > 0 && track_search_by_metric_index) {
    /* check the filter and the order_by exactly as the general path does */
    struct buf scratch;
    struct track_flt_binds sb;
    buf_init(&scratch);
    track_flt_binds_init(&sb);
    int rc = add_filter_and_order(s, TRACK_FLT_RUNS, &scratch, &sb, max + 1, offset, e);
    buf_fini(&scratch);
    track_flt_binds_fini(&sb);
    if (rc) return NULL;
    struct track_flt *f = NULL;
    if (track_flt_parse(s->filter, TRACK_FLT_RUNS, &f, e)) return NULL;
    struct run_scope sc = {project_id, ids, nids, s->view, f, s, key, asc, snap};
    json_t *out = NULL;
    char(*list)[TRACKING_RUN_ID_LEN + 1] = malloc((size_t)(max + 1) * sizeof *list);
    struct db_conn *c = list ? db_reader_acquire(db, e) : NULL;
    if (!list) err_set(e, ERR_NO_MEMORY, NULL);
    int64_t n = 0;
    /* one read transaction: one snapshot for the page, and one WAL read
     * lock instead of one per statement (a page of 100 runs runs ~400) */
    bool txn = c && db_exec(c, "BEGIN", NULL) == 0;
    if (c && runs_by_metric(c, &sc, offset, max + 1, list, &n, e) == 0) {
      out = runs_json(c, list, n < max ? n : max, e);
      if (out && n > max) track_page_token_encode_snap(offset + max, snap, next);
    }
    if (txn) db_exec(c, "COMMIT", NULL);
    if (c) db_reader_release(db, c);
    free(list);
    track_flt_free(f);
    return out;
  }
  struct buf sql;
  struct track_flt_binds binds;
  buf_init(&sql);
  track_flt_binds_init(&binds);
  json_t *out = NULL;
  char(*list)[TRACKING_RUN_ID_LEN + 1] = NULL;
  int64_t n = 0;
  buf_puts(&sql, "SELECT r.run_uuid FROM runs r WHERE r.project_id = ? AND r.experiment_id IN (");
  int rc = track_flt_bind_text(&binds, project_id, strlen(project_id), e);
  int np = nids ? padded(nids) : 1;
  for (int i = 0; i < np && !rc; i++) {
    buf_puts(&sql, i ? ", ?" : "?");
    rc = track_flt_bind_i64(&binds, nids ? ids[i < nids ? i : nids - 1] : -1, e);
  }
  buf_putc(&sql, ')');
  buf_printf(&sql, lifecycle_clause(s->view), "r");
  buf_puts(&sql, " AND r.rowid <= ?");
  if (!rc) rc = track_flt_bind_i64(&binds, snap, e);
  /* the filter and order_by are checked even when no experiment matched */
  if (rc || add_filter_and_order(s, TRACK_FLT_RUNS, &sql, &binds, max + 1, offset, e)) goto out;
  if (nids == 0) {
    out = json_array();
    goto out;
  }
  if (!(list = malloc((size_t)(max + 1) * sizeof *list))) {
    err_set(e, ERR_NO_MEMORY, NULL);
    goto out;
  }
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) goto out;
  struct db_stmt *st = prepare_bound(c, &sql, &binds, e);
  rc = st ? 0 : -1;
  while (st && n < max + 1 && (rc = db_step(st, e)) == DB_ROW) str_copy(list[n++], sizeof list[0], db_col_text(st, 0));
  if (st) db_stmt_done(st);
  if (rc >= 0) out = json_array();
  for (int64_t i = 0; out && i < n && i < max; i++) {
    json_t *x = track_run_json(c, list[i], e);
    if (!x) {
      json_decref(out);
      out = NULL;
    } else {
      json_array_append_new(out, x);
    }
  }
  if (out && n > max) track_page_token_encode_snap(offset + max, snap, next);
  db_reader_release(db, c);
out:
  free(list);
  track_flt_binds_fini(&binds);
  buf_fini(&sql);
  return out;
}
