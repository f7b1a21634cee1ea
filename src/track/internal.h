/* track/internal: what the room's files share — row loaders scoped by
 * project, the entity builders (protobuf-JSON shape) and small SQL helpers.
 * Not part of the public header. */
#ifndef KILN_TRACKING_INTERNAL_H
#define KILN_TRACKING_INTERNAL_H

#include "track.h"

#define TRK_LIFECYCLE_ACTIVE "active"
#define TRK_LIFECYCLE_DELETED "deleted"

struct track_exp {
  int64_t id;
  bool active;
  char artifact_location[1024];
};

struct track_run {
  char id[TRACKING_RUN_ID_LEN + 1];
  int64_t experiment_id;
  bool active;
};

/* Decimal experiment ids only ("0" is resolved before this). */
bool track_exp_id_parse(const char *s, int64_t *out);
/* RESOURCE_DOES_NOT_EXIST "No Experiment with id=<shown> exists" when the
 * project has no such experiment. */
int track_exp_load(struct db_conn *c, const char *project_id, int64_t id, const char *shown,
                 struct track_exp *out, struct err *e);
/* An Experiment object with its tags. */
json_t *track_exp_json(struct db_conn *c, int64_t id, struct err *e);
/* RESOURCE_DOES_NOT_EXIST "Run with id=<id> not found". */
int track_run_load(struct db_conn *c, const char *project_id, const char *run_id, struct track_run *out,
                 struct err *e);
/* INVALID_PARAMETER_VALUE unless the run is active (MLflow's wording). */
int track_run_check_active(const struct track_run *r, struct err *e);
/* A Run object (info, data with latest metrics, params and tags, inputs). */
json_t *track_run_json(struct db_conn *c, const char *run_id, struct err *e);
/* RESOURCE_DOES_NOT_EXIST unless the logged model is the project's and not
 * deleted; experiment_id (may be NULL) gets its experiment (models.c). */
int track_model_load(struct db_conn *c, const char *project_id, const char *id, int64_t *experiment_id,
                     struct err *e);
/* RunOutputs of a run: {"model_outputs": [...]}, or {} (models.c). */
json_t *track_run_outputs_json(struct db_conn *c, const char *run_id, struct err *e);
/* RunInputs of a run (inputs.c). */
json_t *track_run_inputs_json(struct db_conn *c, const char *run_id, struct err *e);
/* A RunInfo object. */
json_t *track_run_info_json(struct db_conn *c, const char *run_id, struct err *e);
/* The metric history (series.c): chunks of up to TRACK_SERIES_CHUNK_MAX
 * points of one (run, key), disjoint and ordered by (step, timestamp,
 * value, is_nan). A point as stored: NaN as 0 with nan, +-inf as +-DBL_MAX. */
#define TRACK_SERIES_CHUNK_MAX 1024
struct track_point {
  int64_t step, ts;
  double v;
  bool nan;
};
int track_point_cmp(const struct track_point *a, const struct track_point *b);
struct track_point track_point_of(const struct track_metric *m);
/* A chunk's summary, read from the index without its points. */
struct track_chunk {
  int64_t rowid, n, min_ts, max_ts;
  struct track_point first, last; /* in the order above */
  struct track_point lo, hi;      /* lowest and highest value; unset when !has_lohi (all NaN) */
  bool has_lohi;
};
/* A call's points sorted by key, then point (what track_series_write takes). */
int track_series_sort(const struct track_metric *m, int n, struct track_metric *out, struct err *e);
/* Stores a call's points, sorted by track_series_sort; an identical point
 * already stored, or repeated in the call, is kept once. */
int track_series_write(struct db_conn *c, const char *run_id, const struct track_metric *sorted, int n, struct err *e);
/* Reads a series in order, point by point (track_series_next) or chunk by
 * chunk (track_series_chunk, then track_series_chunk_points for the points
 * of one, left in it->pts[0..it->n)): all of it (after `skip` points), or
 * what meets [from, to] in steps or timestamps (points outside it are
 * skipped by track_series_next, not by the chunk calls). */
enum track_series_range { TRACK_SERIES_ALL, TRACK_SERIES_STEPS, TRACK_SERIES_TIME };
struct track_series_it {
  struct db_conn *c;
  struct db_stmt *s;
  enum track_series_range range;
  int64_t from, to, skip;
  struct track_point *pts; /* the current chunk's points */
  int n, i;
  bool done;
};
int track_series_open(struct track_series_it *it, struct db_conn *c, const char *run_id, const char *key,
                      enum track_series_range range, int64_t from, int64_t to, int64_t skip, struct err *e);
/* 1: *p is the next point; 0: no more; <0: an error. */
int track_series_next(struct track_series_it *it, struct track_point *p, struct err *e);
/* 1: *ch is the next chunk; 0: no more; <0: an error. */
int track_series_chunk(struct track_series_it *it, struct track_chunk *ch, struct err *e);
int track_series_chunk_points(struct track_series_it *it, const struct track_chunk *ch, struct err *e);
void track_series_close(struct track_series_it *it);
/* The series' lowest and highest step (or timestamp); found false: no points. */
int track_series_x_range(struct db_conn *c, const char *run_id, const char *key, bool by_time, int64_t *lo,
                         int64_t *hi, bool *found, struct err *e);
/* Points in the chunks that meet [from, to] (at least the points in it), or <0. */
int64_t track_series_count(struct db_conn *c, const char *run_id, const char *key, bool by_time, int64_t from,
                           int64_t to, struct err *e);
/* Metric value as protobuf JSON writes doubles ("NaN" for NaN). */

json_t *track_metric_value_json(double v, bool is_nan);

/* Numbers as jansson's JSON_REAL_PRECISION(17) writes them (emit.c); out
 * holds at least TRK_FMT_REAL_MAX / 24 bytes. Return the length written. */
#define TRK_FMT_REAL_MAX 32
size_t track_fmt_real(char *out, double v);
size_t track_fmt_i64(char *out, int64_t v);
/* A GetMetricHistory answer written point by point into out (emit.c). */
struct track_history_writer {
  struct buf *out;
  struct buf prefix; /* {"key":<key>,"value": */
  int64_t n;
};
int track_history_begin(struct track_history_writer *w, struct buf *out, const char *key, struct err *e);
int track_history_point(struct track_history_writer *w, double value, bool is_nan, int64_t timestamp, int64_t step);
int track_history_end(struct track_history_writer *w, const char *next_page_token, struct err *e);

/* One statement with a few binds, no rows expected. */
int track_exec(struct db_conn *c, const char *sql, struct err *e, const char *fmt, ...);

/* Runs searches ordered first by a metric read latest_metrics' (key, value)
 * index (search.c); false takes the general path (tests compare the two). */
extern bool track_search_by_metric_index;

/* Experiment search's and run search's SQL pieces (search.c). */
int track_search_limits(const struct track_search *s, int64_t *max_results, int64_t *offset,
                      struct err *e);

#endif
