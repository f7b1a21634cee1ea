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
/* RunInputs of a run (inputs.c). */
json_t *track_run_inputs_json(struct db_conn *c, const char *run_id, struct err *e);
/* A RunInfo object. */
json_t *track_run_info_json(struct db_conn *c, const char *run_id, struct err *e);
/* Write-time rollups of the metric history (sampled.c): 1024-step buckets
 * (step >> 10, an arithmetic shift in C and SQL alike), merged in the same
 * store write as the points. */
#define TRK_ROLLUP_SHIFT 10
#define TRK_ROLLUP_SPAN ((int64_t)1 << TRK_ROLLUP_SHIFT)
int track_rollup_add(struct db_conn *c, const char *run_id, const struct track_metric *m, int n, struct err *e);
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
