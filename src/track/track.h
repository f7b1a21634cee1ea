/* tracking: experiments, runs, params, metrics and tags — MLflow's tracking
 * model, every row scoped to a project. Domain code only: no HTTP types.
 * Entities come back as jansson values already in MLflow's protobuf-JSON
 * shape (unset and empty fields left out), so api.c only moves them. */
#ifndef KILN_TRACK_H
#define KILN_TRACK_H

#include "base/base.h"
#include "store/store.h"

/* ---- limits (MLflow's newest code; see docs/tracking.md) ----------------- */
#define TRACKING_MAX_METRICS_PER_BATCH 1000
#define TRACKING_MAX_PARAMS_PER_BATCH 100
#define TRACKING_MAX_TAGS_PER_BATCH 100
#define TRACKING_MAX_ENTITIES_PER_BATCH 1000
#define TRACKING_MAX_BATCH_REQUEST_BYTES 1000000
#define TRACKING_MAX_KEY_LEN 250           /* metric, param and tag keys (characters) */
#define TRACKING_MAX_PARAM_VALUE_LEN 6000  /* longer values are truncated, as MLflow does */
#define TRACKING_MAX_TAG_VALUE_LEN 8000    /* longer values are truncated */
#define TRACKING_MAX_EXPERIMENT_NAME_LEN 500
#define TRACKING_MAX_EXPERIMENT_TAG_KEY_LEN 250
#define TRACKING_MAX_EXPERIMENT_TAG_VALUE_LEN 5000 /* refused, not truncated */
#define TRACKING_MAX_SEARCH_RESULTS 50000
#define TRACKING_DEFAULT_SEARCH_RESULTS 1000
#define TRACKING_MAX_HISTORY_RESULTS 1000000
#define TRACKING_RUN_ID_LEN 32
#define TRACKING_PAGE_TOKEN_MAX 64
/* "0" names the caller's project's Default experiment (created on first use). */
#define TRACKING_DEFAULT_EXPERIMENT_ID "0"
#define TRACKING_DEFAULT_EXPERIMENT_NAME "Default"

enum track_view { TRACKING_VIEW_ACTIVE = 1, TRACKING_VIEW_DELETED = 2, TRACKING_VIEW_ALL = 3 };
/* "ACTIVE_ONLY" | "DELETED_ONLY" | "ALL" or their numbers 1..3. */
int track_view_parse(const char *s, enum track_view *out, struct err *e);

enum track_status {
  TRACKING_RUNNING = 1,
  TRACKING_SCHEDULED = 2,
  TRACKING_FINISHED = 3,
  TRACKING_FAILED = 4,
  TRACKING_KILLED = 5,
};
const char *track_status_name(enum track_status s);
/* Names ("FINISHED") or numbers ("3"). */
int track_status_parse(const char *s, enum track_status *out, struct err *e);

struct track_kv {
  const char *key, *value;
};
struct track_metric {
  const char *key;
  double value; /* NaN allowed; +-inf are stored as +-DBL_MAX, as MLflow does */
  int64_t timestamp, step;
};

/* ---- validation (validate.c) ----------------------------------------------- */
enum track_key_kind { TRACKING_KEY_METRIC, TRACKING_KEY_PARAM, TRACKING_KEY_TAG };
/* MLflow's key rules: present, at most 250 characters, only [/\w.\- :]
 * (\w: letters, digits, underscore, and any non-ASCII character), and
 * path-normal (no leading '/', no '..', no '//', no trailing '/', not '.'). */
int track_key_check(enum track_key_kind k, const char *key, struct err *e);
/* Characters (UTF-8 code points) in s, and the bytes of its first n characters. */
size_t track_utf8_chars(const char *s);
size_t track_utf8_prefix(const char *s, size_t n);
/* Whether point a replaces b as the latest value of its key: a higher step,
 * then a later timestamp, then a value at least as high (NaN compares as 0,
 * the value MLflow stores for it). */
bool track_metric_supersedes(const struct track_metric *a, const struct track_metric *b);
/* MLflow's tokens: base64 of {"offset": N}. A malformed one is an
 * INVALID_PARAMETER_VALUE. */
void track_page_token_encode(int64_t offset, char out[TRACKING_PAGE_TOKEN_MAX]);
int track_page_token_decode(const char *token, int64_t *offset, struct err *e);
/* 32 lowercase hex characters. */
bool track_run_id_valid(const char *s);
/* A fresh MLflow-style run name, "adjective-noun-123". */
void track_run_name_generate(char out[64]);

/* ---- experiments (experiments.c) --------------------------------------------- *
 * Every call names the project it acts in; an experiment of another project
 * answers exactly like a missing one (RESOURCE_DOES_NOT_EXIST). experiment_id
 * is the decimal text of the id, or "0" for the project's Default. */
int track_default_experiment(struct db *db, const char *project_id, int64_t *id, struct err *e);
/* The experiment's numeric id within the project (any lifecycle stage). */
int track_experiment_resolve(struct db *db, const char *project_id, const char *experiment_id,
                                int64_t *id, struct err *e);
int track_experiment_create(struct db *db, const char *project_id, const char *name,
                               const char *artifact_location, const struct track_kv *tags,
                               int ntags, int64_t *id_out, struct err *e);
/* An Experiment object. */
json_t *track_experiment_get(struct db *db, const char *project_id, const char *experiment_id,
                                struct err *e);
json_t *track_experiment_get_by_name(struct db *db, const char *project_id, const char *name,
                                        struct err *e);
/* Renaming is refused for a deleted experiment (INVALID_STATE as MLflow). */
int track_experiment_rename(struct db *db, const char *project_id, const char *experiment_id,
                               const char *new_name, struct err *e);
/* Deleting marks the experiment and its runs deleted (the Default cannot be
 * deleted); restoring brings both back. */
int track_experiment_delete(struct db *db, const char *project_id, const char *experiment_id,
                               struct err *e);
int track_experiment_restore(struct db *db, const char *project_id, const char *experiment_id,
                                struct err *e);
int track_experiment_tag_set(struct db *db, const char *project_id, const char *experiment_id,
                                const char *key, const char *value, struct err *e);
int track_experiment_tag_delete(struct db *db, const char *project_id,
                                   const char *experiment_id, const char *key, struct err *e);

/* ---- search (search.c) ---------------------------------------------------------- */
struct track_search {
  const char *filter;              /* NULL or "" for everything */
  const char *const *order_by;     /* "<key> [ASC|DESC]" clauses */
  int norder_by;
  enum track_view view;         /* 0 = ACTIVE_ONLY */
  int64_t max_results;             /* 0 = the default (1000) */
  const char *page_token;          /* NULL or "" for the first page */
  const char *const *experiment_ids; /* runs only */
  int nexperiment_ids;
};
/* Experiment objects, one page; next gets the next page's token or "". */
json_t *track_experiment_search(struct db *db, const char *project_id,
                                   const struct track_search *s,
                                   char next[TRACKING_PAGE_TOKEN_MAX], struct err *e);
/* Run objects of the listed experiments (of this project), one page. */
json_t *track_run_search(struct db *db, const char *project_id, const struct track_search *s,
                            char next[TRACKING_PAGE_TOKEN_MAX], struct err *e);

/* ---- runs (runs.c) ---------------------------------------------------------------- */
struct track_run_new {
  const char *experiment_id; /* NULL or "" means "0" */
  const char *user_id;       /* who the run is by (MLflow's user_id) */
  const char *run_name;      /* NULL: the mlflow.runName tag, else generated */
  int64_t start_time;        /* 0: now */
  const struct track_kv *tags;
  int ntags;
};
/* A Run object. mlflow.runName is set to the run's name and mlflow.user to
 * user_id when the caller did not send it. */
json_t *track_run_create(struct db *db, const char *project_id, const struct track_run_new *in,
                            struct err *e);
json_t *track_run_get(struct db *db, const char *project_id, const char *run_id, struct err *e);
struct track_run_update {
  enum track_status status; /* 0: unchanged */
  int64_t end_time;            /* 0: unchanged */
  const char *run_name;        /* NULL or "": unchanged */
};
/* A RunInfo object after the update. */
json_t *track_run_update(struct db *db, const char *project_id, const char *run_id,
                            const struct track_run_update *u, struct err *e);
int track_run_delete(struct db *db, const char *project_id, const char *run_id, struct err *e);
int track_run_restore(struct db *db, const char *project_id, const char *run_id, struct err *e);
int track_run_tag_delete(struct db *db, const char *project_id, const char *run_id,
                            const char *key, struct err *e);
/* Metrics, params and tags of one call, validated then written in one store
 * job (all or nothing). A param already logged with another value is an
 * INVALID_PARAMETER_VALUE; single_param picks log-parameter's wording of
 * that message over log-batch's. */
struct track_batch {
  const struct track_metric *metrics;
  int nmetrics;
  const struct track_kv *params;
  int nparams;
  const struct track_kv *tags;
  int ntags;
  bool single_param;
};
int track_log_batch(struct db *db, const char *project_id, const char *run_id,
                       const struct track_batch *b, struct err *e);
/* Metric objects of one key in (step, timestamp) order; max_results 0: all
 * of them in one page. */
json_t *track_metric_history(struct db *db, const char *project_id, const char *run_id,
                                const char *key, int64_t max_results, const char *page_token,
                                char next[TRACKING_PAGE_TOKEN_MAX], struct err *e);
/* The same page as a whole GetMetricHistory response body written into out
 * ({"metrics":[...],"next_page_token":...}, empty parts left out) without a
 * value per point: what the HTTP handler sends (emit.c). */
int track_metric_history_write(struct db *db, const char *project_id, const char *run_id, const char *key,
                               int64_t max_results, const char *page_token, struct buf *out, struct err *e);

#endif
