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
/* MLflow's tokens: base64 of {"offset": N}. A malformed one is an
 * INVALID_PARAMETER_VALUE. */
void track_page_token_encode(int64_t offset, char out[TRACKING_PAGE_TOKEN_MAX]);
int track_page_token_decode(const char *token, int64_t *offset, struct err *e);
/* With a snapshot bound too (runs/search: the highest runs rowid when the
 * first page was read; later pages see no run inserted since, so offsets
 * stay put while runs are being created). snap 0 = none. */
void track_page_token_encode_snap(int64_t offset, int64_t snap, char out[TRACKING_PAGE_TOKEN_MAX]);
int track_page_token_decode_snap(const char *token, int64_t *offset, int64_t *snap, struct err *e);
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

/* ---- inputs and logged models (inputs.c, models.c) ------------------------------- *
 * MLflow's limits: dataset name 500, digest 36, source 65,535, schema
 * 1,048,575, profile 16,777,215 characters; input tag key 255, value 500. */
#define TRACKING_MAX_DATASET_NAME_LEN 500
#define TRACKING_MAX_DATASET_DIGEST_LEN 36
#define TRACKING_MAX_DATASET_SOURCE_LEN 65535
#define TRACKING_MAX_DATASET_SCHEMA_LEN 1048575
#define TRACKING_MAX_DATASET_PROFILE_LEN 16777215
#define TRACKING_MAX_INPUT_TAG_KEY_LEN 255
#define TRACKING_MAX_INPUT_TAG_VALUE_LEN 500
#define TRACKING_MAX_INPUT_TAGS 100
#define TRACKING_MAX_INPUTS_PER_CALL 1000
#define TRACKING_MAX_MODEL_JSON_BYTES 1000000
struct track_dataset_input {
  const char *name, *digest, *source_type, *source, *schema, *profile;
  const struct track_kv *tags; /* input tags: mlflow.data.context, ... */
  int ntags;
};
struct track_inputs {
  const struct track_dataset_input *datasets;
  int ndatasets;
  const char *const *model_ids;
  int nmodels;
};
/* Datasets are stored once per (experiment, name, digest); a dataset logged
 * to a run twice keeps its first input (and tags), as MLflow. */
int track_log_inputs(struct db *db, const char *project_id, const char *run_id,
                     const struct track_inputs *in, struct err *e);
/* Appends the model's JSON to the run's mlflow.log-model.history tag. */
int track_log_model(struct db *db, const char *project_id, const char *run_id,
                    const char *model_json, struct err *e);

/* MLflow 3 logged models. Ids are "m-" + 32 hex; status is one of
 * LOGGED_MODEL_PENDING (on create), LOGGED_MODEL_READY,
 * LOGGED_MODEL_UPLOAD_FAILED. Objects come back as LoggedModel
 * ({"info": ..., "data": ...}). */
#define TRACKING_LOGGED_MODEL_DEFAULT_RESULTS 50
#define TRACKING_LOGGED_MODEL_MAX_RESULTS 1000
struct track_logged_model_new {
  const char *experiment_id, *name, *model_type, *source_run_id;
  const struct track_kv *params, *tags;
  int nparams, ntags;
};
json_t *track_logged_model_create(struct db *db, const char *project_id,
                                  const struct track_logged_model_new *in, struct err *e);
json_t *track_logged_model_get(struct db *db, const char *project_id, const char *model_id,
                               struct err *e);
/* status: a LoggedModelStatus name or number. */
json_t *track_logged_model_finalize(struct db *db, const char *project_id, const char *model_id,
                                    const char *status, struct err *e);
int track_logged_model_delete(struct db *db, const char *project_id, const char *model_id,
                              struct err *e);
json_t *track_logged_model_set_tags(struct db *db, const char *project_id, const char *model_id,
                                    const struct track_kv *tags, int ntags, struct err *e);
int track_logged_model_delete_tag(struct db *db, const char *project_id, const char *model_id,
                                  const char *key, struct err *e);
int track_logged_model_log_params(struct db *db, const char *project_id, const char *model_id,
                                  const struct track_kv *params, int nparams, struct err *e);
/* logged-models/search. Models of the listed experiments (all of the
 * project's when none); filter: name, model_type, source_run_id, status =
 * '...' joined by AND. order_by fields: name, model_id, model_type, status,
 * source_run_id, creation_timestamp (creation_time), last_updated_timestamp,
 * then MLflow's default (creation time DESC, model_id). Kiln stores no
 * metrics for logged models: metrics.<key> fields, dataset_name/digest and
 * any datasets are INVALID_PARAMETER_VALUE. Page tokens carry a snapshot
 * bound, so models created while paging do not shift later pages. */
#define TRACKING_LOGGED_MODEL_MAX_EXPERIMENTS 64
#define TRACKING_LOGGED_MODEL_MAX_ORDER_BY 10
struct track_lm_order {
  const char *field_name;
  bool ascending; /* MLflow's default: true */
  const char *dataset_name, *dataset_digest;
};
struct track_lm_search {
  const char *const *experiment_ids;
  int nexperiment_ids;
  const char *filter;
  const struct track_lm_order *order_by;
  int norder_by;
  int ndatasets;
  int64_t max_results; /* 0: the default (50) */
  const char *page_token;
};
json_t *track_logged_model_search(struct db *db, const char *project_id, const struct track_lm_search *q,
                                  char next[TRACKING_PAGE_TOKEN_MAX], struct err *e);

/* runs/outputs (MLflow 3's logOutputs): the models a run produced, each at
 * a step. The run must be the project's (RESOURCE_DOES_NOT_EXIST) and active
 * (INVALID_PARAMETER_VALUE); each model the project's and not deleted
 * (RESOURCE_DOES_NOT_EXIST). A model logged again keeps its first step.
 * Run objects carry them as outputs.model_outputs. */
struct track_model_output {
  const char *model_id;
  int64_t step;
};
int track_log_outputs(struct db *db, const char *project_id, const char *run_id,
                      const struct track_model_output *models, int nmodels, struct err *e);

/* listLoggedModelArtifacts: FileInfo objects directly under dir of the
 * model's artifact root (paths relative to it), one page of
 * TRACKING_ARTIFACT_PAGE; root_uri gets the model's artifact_uri (malloc'd,
 * caller frees). */
json_t *track_logged_model_artifact_list(struct db *db, const char *project_id, const char *model_id,
                                         const char *dir, const char *page_token,
                                         char next[TRACKING_PAGE_TOKEN_MAX], char **root_uri, struct err *e);

/* ---- sampled histories (sampled.c) ------------------------------------------------- *
 * A long series charted in N points: the x range is cut into buckets and
 * each keeps its first, last, lowest and highest point, so every peak and
 * trough survives. One pass over the history's primary-key index. */
#define TRACKING_MAX_BULK_RUN_IDS 100
#define TRACKING_MAX_BULK_INTERVAL_RESULTS 2500 /* per run */
#define TRACKING_MAX_SAMPLED_POINTS 100000
#define TRACKING_DEFAULT_SAMPLED_POINTS 1000
struct track_sample {
  int64_t points;          /* at most this many points (>= 4) */
  bool by_time;            /* buckets over timestamps instead of steps */
  bool has_start, has_end; /* inclusive x range */
  int64_t start, end;
};
/* Metric objects of one run's key, in x order; *total: points in range. */
json_t *track_metric_sampled(struct db *db, const char *project_id, const char *run_id,
                             const char *key, const struct track_sample *o, int64_t *total,
                             struct err *e);
/* MLflow's get-history-bulk-interval: MetricWithRunId objects of each run
 * (max_results per run), over a step range shared by all runs so their
 * buckets line up. */
json_t *track_metric_bulk_interval(struct db *db, const char *project_id,
                                   const char *const *run_ids, int nrun_ids, const char *key,
                                   const struct track_sample *o, struct err *e);

/* ---- live events (events.c) ------------------------------------------------------------ *
 * Subscribers of one run get its status and new metric points as
 * Server-Sent Events text. Writers only append to bounded buffers under a
 * short lock; a ticker thread (every TRACKING_EVENTS_FLUSH_MS) calls wake
 * for subscribers with something to send, so the writer never blocks on a
 * reader. A subscriber whose buffer overflows is dropped (counted in
 * kiln_track_events_dropped_total). */
#define TRACKING_EVENTS_FLUSH_MS 250
#define TRACKING_EVENTS_HEARTBEAT_MS 15000
#define TRACKING_EVENTS_BUFFER_BYTES (1u << 20)
struct track_sub;
/* wake(ctx) runs on the ticker thread, never after track_sub_free returned. */
struct track_sub *track_sub_new(const char *run_id, size_t max_buffered, void (*wake)(void *ctx),
                                void *ctx);
void track_sub_free(struct track_sub *s);
/* Moves pending events into out as SSE text; *end: the stream is over (the
 * run finished or was deleted, or the subscriber was dropped) once out is
 * sent. */
void track_sub_take(struct track_sub *s, struct buf *out, bool *end);
/* The status event a stream starts with; terminal statuses end it. */
void track_sub_status(struct track_sub *s, const char *status);
/* Writers: called after the write committed. */
void track_events_metrics(const char *run_id, const struct track_metric *m, int n);
void track_events_status(const char *run_id, const char *status);
/* After runs were deleted (a run, an experiment, a purge): streams of runs
 * now deleted or gone get a "deleted" event and end. */
void track_events_sweep_deleted(struct db *db);
void track_events_metrics_init(void);

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
/* Reads a log-batch body of the plain shape clients send (run_id or
 * run_uuid, metrics, params, tags; no escapes or nulls) into b and run_id,
 * allocating in a: 1. 0 when the body is anything else (or malformed), for
 * the general JSON path to read and answer (batch_json.c). */
int track_log_batch_parse(const char *body, size_t n, struct arena *a, const char **run_id, struct track_batch *b);
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

/* ---- artifacts (artifacts.c) ------------------------------------------------------ *
 * An artifact path is what follows mlflow-artifacts:/ — "<experiment_id>/<rest>"
 * — and a run's files lie under "<experiment_id>/<run_id>/artifacts/", a
 * logged model's under "<experiment_id>/models/<model_id>/artifacts/", as
 * MLflow lays them out. The experiment must be the project's (and a 32-hex
 * first segment of <rest> a run of that experiment; "models/<id>" a logged
 * model of it, not deleted), else RESOURCE_DOES_NOT_EXIST, as for a missing
 * one. Each file is a row naming
 * the blob with its bytes; the row holds one reference on that blob. */
#define TRACKING_ARTIFACT_PATH_MAX 1024  /* bytes */
#define TRACKING_ARTIFACT_LIST_MAX 10000 /* entries of one mlflow-artifacts listing */
#define TRACKING_ARTIFACT_PAGE 1000      /* entries of one artifacts/list page */
/* INVALID_PARAMETER_VALUE unless path is relative and plain: at most 1024
 * bytes of valid UTF-8 without control characters or backslashes, no empty,
 * "." or ".." segment (so no leading, trailing or doubled '/'). "" passes
 * only with allow_empty. */
int track_artifact_path_check(const char *path, bool allow_empty, struct err *e);
struct track_artifact {
  char sha256[65];
  uint64_t size;
};
/* Records path -> blob (replacing an earlier file of that path). The blob
 * must exist; its reference is taken in the same write. A path under a file,
 * or one that names a directory, is INVALID_PARAMETER_VALUE. */
int track_artifact_put(struct db *db, const char *project_id, const char *path,
                       const char *sha256, struct err *e);
/* What track_artifact_put would refuse for the path alone (bad path, not the
 * project's, the experiment's root), checked before an upload is read. */
int track_artifact_target_check(struct db *db, const char *project_id, const char *path,
                                struct err *e);
int track_artifact_get(struct db *db, const char *project_id, const char *path,
                       struct track_artifact *out, struct err *e);
/* Removes the file, or every file under the directory; *removed counts them.
 * RESOURCE_DOES_NOT_EXIST when there is none. */
int track_artifact_delete(struct db *db, const char *project_id, const char *path,
                          int64_t *removed, struct err *e);
/* FileInfo objects ({path, is_dir, file_size}) of dir's direct children:
 * path is the child's name (the mlflow-artifacts listing). "" lists the
 * project's experiments that hold artifacts; a file lists nothing. */
json_t *track_artifact_list(struct db *db, const char *project_id, const char *dir,
                            struct err *e);
/* artifacts/list of the tracking API: FileInfo objects under the run's
 * artifact root (path relative to it), one page; root_uri gets the run's
 * artifact_uri (arena of the caller: malloc'd, caller frees). */
json_t *track_run_artifact_list(struct db *db, const char *project_id, const char *run_id,
                                const char *path, const char *page_token,
                                char next[TRACKING_PAGE_TOKEN_MAX], char **root_uri,
                                struct err *e);

/* Multipart uploads (MLflow's mpu/create, complete, abort). The upload id is
 * a 64-hex-char secret: whoever holds it may PUT parts. */
int track_mpu_create(struct db *db, const char *project_id, const char *path, int64_t num_parts,
                     char upload_id[65], struct err *e);
/* RESOURCE_DOES_NOT_EXIST unless the upload is in progress. */
int track_mpu_exists(struct db *db, const char *upload_id, struct err *e);
/* The part's blob is referenced by the upload until complete or abort. */
int track_mpu_part_put(struct db *db, const char *upload_id, int64_t part_number,
                       const char *sha256, struct err *e);
/* Parts in part_number order, for the caller to concatenate. */
struct track_mpu_part {
  int64_t part_number;
  char sha256[65];
  uint64_t size;
};
int track_mpu_parts(struct db *db, const char *project_id, const char *path,
                    const char *upload_id, struct track_mpu_part **parts, int *nparts,
                    struct err *e);
/* Forgets the upload and drops the parts' references. */
int track_mpu_finish(struct db *db, const char *project_id, const char *path,
                     const char *upload_id, struct err *e);

/* Permanent deletion (`kiln admin gc`, MLflow's `mlflow gc`): runs and
 * logged models deleted at or before cutoff_ms, and deleted experiments
 * whose runs are all gone, are removed with everything logged to them;
 * their artifacts drop their blob references (the blob GC then reclaims
 * the bytes). */
struct track_gc_report {
  int64_t runs, experiments, artifacts, uploads, models;
};
int track_purge_deleted(struct db *db, int64_t cutoff_ms, struct track_gc_report *r,
                        struct err *e);

#endif
