/* track/filter: MLflow's search filter language (a strict subset of what
 * is accepted here; Kiln adds OR, NOT, parentheses, BETWEEN and IS [NOT]
 * NULL) parsed by recursive descent and compiled to a SQL WHERE fragment
 * with `?` placeholders, plus MLflow's order_by clauses. docs/search.md is
 * the user-facing grammar. No HTTP types here: callers get a struct err. */
#ifndef KILN_TRACKING_FILTER_H
#define KILN_TRACKING_FILTER_H

#include "base/base.h"
#include "store/store.h"

/* Which search the filter belongs to; it decides the identifiers allowed,
 * their types and the tables the SQL names.
 *
 * The SQL refers to the outer row by a fixed alias, so the caller's query
 * must name it so (SELECT ... FROM runs r WHERE ... AND (<fragment>)):
 *
 *   TRACK_FLT_RUNS               runs r(run_uuid, experiment_id, project_id, name,
 *                          user_id, status, start_time, end_time,
 *                          lifecycle_stage, artifact_uri, deleted_time);
 *                          latest_metrics(run_uuid, key, value, timestamp,
 *                          step, is_nan), params(run_uuid, key, value),
 *                          tags(run_uuid, key, value)
 *   TRACK_FLT_EXPERIMENTS        experiments e(experiment_id, name, creation_time,
 *                          last_update_time, ...);
 *                          experiment_tags(experiment_id, key, value)
 *   TRACK_FLT_REGISTERED_MODELS  registered_models m(id, name, creation_time,
 *                          last_updated_time, ...);
 *                          registered_model_tags(model_id, key, value)
 *   TRACK_FLT_MODEL_VERSIONS     model_versions v(model_id, version, name, source,
 *                          run_id, creation_time, last_updated_time, ...);
 *                          model_version_tags(model_id, version, key, value)
 *
 * (the registry's tables are migration 0010's). Metric/param/tag conditions become correlated EXISTS subqueries on
 * (run_uuid, key), so an index on (run_uuid, key) serves them. */
enum track_flt_entity { TRACK_FLT_RUNS, TRACK_FLT_EXPERIMENTS, TRACK_FLT_REGISTERED_MODELS, TRACK_FLT_MODEL_VERSIONS };

/* Limits: longer or deeper input is refused with INVALID_PARAMETER_VALUE. */
#define TRACK_FLT_MAX_TEXT (64 * 1024) /* bytes of filter text */
#define TRACK_FLT_MAX_DEPTH 64         /* nested parentheses / NOT */
#define TRACK_FLT_MAX_TERMS 1024       /* comparisons in one filter */
#define TRACK_FLT_MAX_FILTER_BINDS 4096 /* values one filter may bind (IN lists included) */
#define TRACK_FLT_MAX_BINDS 8192       /* entries in one struct track_flt_binds */
#define TRACK_FLT_MAX_ORDER_BY 16      /* order_by clauses */
#define TRACK_FLT_MAX_KEY 1024         /* bytes of one identifier key */

/* ---- bind list -------------------------------------------------------------
 * The values the generated SQL's `?` placeholders stand for, in order. The
 * list owns copies of its text values. A caller composing a bigger query may
 * push its own values with track_flt_bind_* so one list covers the whole
 * statement. */
enum track_flt_bind_type { TRACK_FLT_BIND_TEXT, TRACK_FLT_BIND_I64, TRACK_FLT_BIND_F64 };
struct track_flt_bind {
  enum track_flt_bind_type type;
  union {
    struct {
      char *s; /* NUL-terminated, owned */
      size_t len;
    } text;
    int64_t i64;
    double f64;
  } v;
};
struct track_flt_binds {
  struct track_flt_bind *v;
  int n, cap;
};
void track_flt_binds_init(struct track_flt_binds *b);
void track_flt_binds_fini(struct track_flt_binds *b); /* frees the values; b can be reused after init */
/* 0, or -ERR_NO_MEMORY / -ERR_INVALID_PARAMETER_VALUE past TRACK_FLT_MAX_BINDS. */
int track_flt_bind_text(struct track_flt_binds *b, const char *s, size_t len, struct err *e);
int track_flt_bind_i64(struct track_flt_binds *b, int64_t v, struct err *e);
int track_flt_bind_f64(struct track_flt_binds *b, double v, struct err *e);
/* Binds every value to s, the first at 1-based index `first`; returns the
 * next free index, or <0 when a bind fails. */
int track_flt_binds_apply(const struct track_flt_binds *b, struct db_stmt *s, int first);

/* ---- filters -------------------------------------------------------------- */
struct track_flt; /* a parsed filter (opaque, heap; track_flt_free) */

/* Parses text (NULL, empty or blank: matches everything). On a bad filter
 * returns -ERR_INVALID_PARAMETER_VALUE with e->msg like
 *   filter: at position 17: expected a comparator (=, !=, <, <=, >, >=,
 *   LIKE, ILIKE, IN, NOT IN), found 'foo'
 * where the position counts characters (UTF-8 code points) from 1.
 * -ERR_NO_MEMORY when allocation fails. */
int track_flt_parse(const char *text, enum track_flt_entity ent, struct track_flt **out, struct err *e);
void track_flt_free(struct track_flt *f);
bool track_flt_is_empty(const struct track_flt *f); /* true when it matches everything */
enum track_flt_entity track_flt_entity_of(const struct track_flt *f);

/* Appends the WHERE fragment for f to sql (a parenthesised boolean
 * expression; `1=1` when f is empty) and its values to binds, in
 * placeholder order. Never splices a value into the SQL. A filter that
 * parsed always compiles; the only failures are -ERR_NO_MEMORY and the
 * TRACK_FLT_MAX_BINDS bound (INVALID_PARAMETER_VALUE). */
int track_flt_to_sql(const struct track_flt *f, struct buf *sql, struct track_flt_binds *binds, struct err *e);

/* ---- order_by -------------------------------------------------------------
 * Parses n MLflow order_by clauses (`metrics.acc DESC`, `attributes.start_time`,
 * "params.`my key` asc", ...; ASC is the default) and appends the ORDER BY
 * expression list (without the keyword) to sql, with MLflow's behaviour:
 *   runs:        rows lacking a metric/param/tag or with a NULL attribute sort
 *                last in both directions; a NaN metric after every number and
 *                before missing; then `start_time DESC` (unless start_time was
 *                given) and `run_id ASC` as tie-breakers; no clauses means
 *                `start_time DESC, run_id ASC`.
 *   experiments: keys name, experiment_id, creation_time, last_update_time;
 *                none means `creation_time DESC, experiment_id ASC`; else
 *                `experiment_id DESC` is appended unless it was given.
 *   registered models: name, timestamp / last_updated_timestamp,
 *                creation_timestamp; tie-breaker `name ASC`.
 *   model versions: name, version_number, creation_timestamp,
 *                last_updated_timestamp; tie-breakers `name ASC`, `version DESC`.
 * A key given twice, an unknown key, a bad direction or more than
 * TRACK_FLT_MAX_ORDER_BY clauses answers -ERR_INVALID_PARAMETER_VALUE naming the
 * clause and position. Its binds (keys) follow the filter's: compile the
 * filter first, then the order_by, into the same list. */
int track_flt_order_by(const char *const *clauses, int n, enum track_flt_entity ent, struct buf *sql,
                 struct track_flt_binds *binds, struct err *e);

/* Whether a runs search is ordered first by a metric: 1 with its key
 * (NUL-terminated, at most cap-1 bytes, else 0) and direction, 0 when not
 * (no clauses, or an attribute, param or tag first), <0 when the first
 * clause is malformed (the error track_flt_order_by gives). A search that
 * is can be driven from latest_metrics' (key, value) index instead of
 * computing the key for every run: its rows in order are the runs with a
 * non-NaN value by value, then those with NaN, then those without the key,
 * each group ordered by the remaining clauses and the tie-breakers, which
 * track_flt_order_by(clauses + 1, n - 1, ...) writes (search.c). */
int track_flt_order_first_metric(const char *const *clauses, int n, char *key, size_t cap, bool *asc,
                                 struct err *e);

#endif
