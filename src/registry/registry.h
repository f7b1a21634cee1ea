/* registry: registered models and their versions (MLflow's model
 * registry, every model scoped to a project), and model intake —
 * recognising an uploaded model file by its content, scanning it for code
 * it would run on load, and reading its metadata and signature. Domain code
 * only: no HTTP types. Intake needs no database. */
#ifndef KILN_REGISTRY_H
#define KILN_REGISTRY_H

#include "base/base.h"
#include "store/store.h"

/* Limits and choices for one inspection; registry_intake_opts_default fills
 * the defaults documented in docs/models-intake.md. */
struct registry_intake_opts {
  bool allow_unsafe_pickle;   /* list and flag unsafe globals instead of refusing */
  uint64_t max_file_size;     /* the file itself (default 8 GiB) */
  uint64_t max_entry_size;    /* one archive entry or decompressed stream, uncompressed (4 GiB) */
  uint64_t max_total_size;    /* all entries of an archive together, uncompressed (8 GiB) */
  uint64_t max_entries;       /* entries in one archive (10000) */
  uint64_t max_ratio;         /* uncompressed:compressed above this is a bomb (100) */
  uint64_t ratio_min_size;    /* ... once the uncompressed total passes this (1 MiB) */
  int max_depth;              /* nested containers (MLflow zip -> torch zip ...) (3) */
};
void registry_intake_opts_default(struct registry_intake_opts *o);

/* One global a pickle imports ("module.name") and whether the allowlist
 * accepts it. */
struct registry_pickle_global {
  char *name;
  bool allowed;
};

/* What intake found. Filled as far as inspection got, also on failure (the
 * globals of a refused pickle are listed), so callers always call _fini. */
struct registry_intake_report {
  char format[32];    /* "onnx", "xgboost-json", "pickle", "joblib", "torchscript", ... */
  char framework[32]; /* "onnx", "xgboost", "sklearn", "pytorch", "keras", "lightgbm", ... */
  char sha256[65];    /* of the file as given */
  uint64_t size;
  bool unsafe;        /* an unsafe global was let through by allow_unsafe_pickle */
  struct registry_pickle_global *globals; /* every pickle in the file, deduplicated */
  size_t nglobals;
  json_t *metadata;   /* object: format-specific facts (never NULL after init) */
  json_t *signature;  /* {"inputs": [...], "outputs": [...]} or NULL when unknown */
};

void registry_intake_report_init(struct registry_intake_report *r);
void registry_intake_report_fini(struct registry_intake_report *r);

/* Inspects the file at path (o may be NULL for the defaults). Returns 0, or
 * -ERR_UNSUPPORTED_MEDIA_TYPE (415: not a format Kiln serves; the message
 * says what was recognised), -ERR_UNSAFE_MODEL (422: a pickle imports
 * something outside the allowlist, an archive escapes its root or is a
 * bomb), -ERR_INVALID_PARAMETER_VALUE (a recognised format that is
 * truncated or malformed), -ERR_PAYLOAD_TOO_LARGE, -ERR_IO, -ERR_NO_MEMORY.
 * out is initialised here. */
int registry_intake_inspect(const char *path, const struct registry_intake_opts *o,
                            struct registry_intake_report *out, struct err *e);
/* The same over bytes already in memory (an upload buffer, a fuzzer). */
int registry_intake_inspect_mem(const void *data, size_t n, const struct registry_intake_opts *o,
                                struct registry_intake_report *out, struct err *e);

/* {"format", "framework", "sha256", "size", "unsafe", "globals": [{"name",
 * "allowed"}], "metadata", "signature"}; a new reference, NULL on OOM. */
json_t *registry_intake_report_json(const struct registry_intake_report *r);

/* Whether the pickle allowlist accepts "module.name" (exposed for tests and
 * docs). torchscript also accepts TorchScript's own classes (__torch__.*). */
bool registry_pickle_global_allowed(const char *global, bool torchscript);

/* ---- registered models and versions (models.c, versions.c) ------------------ *
 * Every call names the project it acts in; a model of another project
 * answers exactly like a missing one (RESOURCE_DOES_NOT_EXIST "Registered
 * Model with name=X not found"). Objects come back as jansson values in
 * MLflow's protobuf-JSON shape (RegisteredModel, ModelVersion; unset and
 * empty fields left out). Versions are named by their decimal text ("3"). */
#define REGISTRY_MAX_NAME_LEN 256         /* registered model name (characters) */
#define REGISTRY_MAX_TAG_KEY_LEN 250
#define REGISTRY_MAX_TAG_VALUE_LEN 100000 /* refused, not truncated */
#define REGISTRY_MAX_TAGS 100             /* tags given with one create */
#define REGISTRY_MAX_DESCRIPTION_LEN 5000
#define REGISTRY_MAX_SOURCE_LEN 500
#define REGISTRY_MAX_RUN_LINK_LEN 500
#define REGISTRY_MAX_ALIAS_LEN 255
#define REGISTRY_MAX_MODEL_ID_LEN 256
#define REGISTRY_MODELS_DEFAULT_RESULTS 100
#define REGISTRY_MODELS_MAX_RESULTS 1000
#define REGISTRY_VERSIONS_DEFAULT_RESULTS 200000 /* the proto's default, and the cap */
#define REGISTRY_VERSIONS_MAX_RESULTS 200000
#define REGISTRY_PAGE_TOKEN_MAX 64

struct registry_kv {
  const char *key, *value;
};

/* Stages: "None", "Staging", "Production", "Archived". The canonical
 * spelling of s (any case), or NULL when it is none of them. */
const char *registry_stage_canonical(const char *s);
/* A version's status (MLflow's ModelVersionStatus); see versions.c for the
 * transitions. */
enum registry_version_status {
  REGISTRY_PENDING_REGISTRATION = 1,
  REGISTRY_FAILED_REGISTRATION = 2,
  REGISTRY_READY = 3,
};
const char *registry_status_name(enum registry_version_status s);

/* Registered models. user_id: who is acting (shown as the model's user_id). */
json_t *registry_model_create(struct db *db, const char *project_id, const char *name,
                              const char *description, const struct registry_kv *tags, int ntags,
                              const char *user_id, struct err *e);
json_t *registry_model_get(struct db *db, const char *project_id, const char *name, struct err *e);
/* RESOURCE_ALREADY_EXISTS when new_name is taken in the project. */
json_t *registry_model_rename(struct db *db, const char *project_id, const char *name,
                              const char *new_name, struct err *e);
/* description NULL: unchanged; "" clears it. */
json_t *registry_model_update(struct db *db, const char *project_id, const char *name,
                              const char *description, struct err *e);
/* The model, its versions, tags and aliases. */
int registry_model_delete(struct db *db, const char *project_id, const char *name, struct err *e);
int registry_model_tag_set(struct db *db, const char *project_id, const char *name, const char *key,
                           const char *value, struct err *e);
int registry_model_tag_delete(struct db *db, const char *project_id, const char *name,
                              const char *key, struct err *e);

struct registry_search {
  const char *filter;          /* NULL or "": everything */
  const char *const *order_by; /* "<key> [ASC|DESC]" */
  int norder_by;
  int64_t max_results;         /* 0: the default */
  const char *page_token;      /* NULL or "": the first page */
};
/* RegisteredModel objects, one page; next gets the next page's token or ""
 * (a token only when more rows exist). Tokens carry a snapshot bound:
 * models created after the first page are not seen by later pages. */
json_t *registry_model_search(struct db *db, const char *project_id, const struct registry_search *s,
                              char next[REGISTRY_PAGE_TOKEN_MAX], struct err *e);
/* ModelVersion objects: the highest version in each stage asked for (all
 * four when nstages is 0), in None, Staging, Production, Archived order. */
json_t *registry_latest_versions(struct db *db, const char *project_id, const char *name,
                                 const char *const *stages, int nstages, struct err *e);

/* Aliases: alias -> version of one model; setting an alias moves it. */
int registry_alias_set(struct db *db, const char *project_id, const char *name, const char *alias,
                       const char *version, struct err *e);
int registry_alias_delete(struct db *db, const char *project_id, const char *name,
                          const char *alias, struct err *e);
json_t *registry_version_by_alias(struct db *db, const char *project_id, const char *name,
                                  const char *alias, struct err *e);

/* Model versions. source must be something Kiln can serve the version
 * from: runs:/<run_id>/<path> or mlflow-artifacts:/<experiment>/... naming
 * this project's experiment and run, models:/<logged model id>, or a remote
 * URI (s3://, gs://, https://, ...); a local path is refused as MLflow
 * refuses it. run_id, when given, must be a run of this project. */
struct registry_version_new {
  const char *name, *source, *run_id, *run_link, *description, *model_id, *user_id;
  const struct registry_kv *tags;
  int ntags;
};
json_t *registry_version_create(struct db *db, const char *project_id,
                                const struct registry_version_new *in, struct err *e);
json_t *registry_version_get(struct db *db, const char *project_id, const char *name,
                             const char *version, struct err *e);
json_t *registry_version_update(struct db *db, const char *project_id, const char *name,
                                const char *version, const char *description, struct err *e);
/* Removes the version with its tags and the aliases that named it. */
int registry_version_delete(struct db *db, const char *project_id, const char *name,
                            const char *version, struct err *e);
int registry_version_tag_set(struct db *db, const char *project_id, const char *name,
                             const char *version, const char *key, const char *value, struct err *e);
int registry_version_tag_delete(struct db *db, const char *project_id, const char *name,
                                const char *version, const char *key, struct err *e);
/* The version's source (where its files are); *uri is malloc'd. */
int registry_version_download_uri(struct db *db, const char *project_id, const char *name,
                                  const char *version, char **uri, struct err *e);
/* Moves the version to stage (any case); with archive_existing, the model's
 * other versions in that stage go to Archived (only for Staging and
 * Production, as MLflow). */
json_t *registry_version_transition(struct db *db, const char *project_id, const char *name,
                                    const char *version, const char *stage, bool archive_existing,
                                    struct err *e);
/* ModelVersion objects, one page (filter on name, run_id, source_path,
 * version_number, tags.<key>). */
json_t *registry_version_search(struct db *db, const char *project_id,
                                const struct registry_search *s, char next[REGISTRY_PAGE_TOKEN_MAX],
                                struct err *e);

/* ---- governance, approvals, comments (governance.c) ---------------------------------- *
 * A project may require approval for moving a version to Production and
 * for pointing a protected alias (say "champion") at a version. With that
 * on, the MLflow calls refuse a caller who is not a project admin with
 * APPROVAL_REQUIRED (409) and a message saying how to ask; the caller opens
 * an approval request, a project admin approves (the change is then made by
 * the same stage/alias function, in the same write) or rejects it, and the
 * requester may cancel. Project admins (and server admins) make governed
 * changes directly: they are the approvers, and the direct change is
 * audited as such. Every change here writes an audit entry in its own
 * transaction. See docs/registry.md. */
#define REGISTRY_GOV_MAX_PROTECTED_ALIASES 32
#define REGISTRY_GOV_MAX_COMMENT_LEN 4000 /* request and decision comments (bytes) */
#define REGISTRY_COMMENT_MAX_LEN 10000    /* a comment on a model version (bytes) */
#define REGISTRY_GOV_DEFAULT_RESULTS 100
#define REGISTRY_GOV_MAX_RESULTS 1000
#define REGISTRY_GOV_ID_LEN 32            /* request and comment ids: 32 hex characters */

/* Who acts: a user (id and display name) and whether the central check
 * found them an admin of the project (the HTTP layer decides; domain code
 * never sees roles). */
struct registry_actor {
  const char *user_id;
  const char *username;
  bool project_admin;
};

/* {"require_approval_for_production": bool, "protected_aliases": [...],
 * "updated_at"?, "updated_by"?}; the defaults when never set. */
json_t *registry_gov_settings_get(struct db *db, const char *project_id, struct err *e);
/* require NULL: unchanged; naliases < 0: unchanged (aliases checked like
 * MLflow's alias names, deduplicated). Returns the settings as _get. */
json_t *registry_gov_settings_set(struct db *db, const char *project_id, const bool *require,
                                  const char *const *aliases, int naliases,
                                  const struct registry_actor *who, struct err *e);

/* The MLflow transition-stage and set-alias calls under the project's
 * rules (registry_version_transition and registry_alias_set act as a
 * caller who is no project admin). */
json_t *registry_version_transition_as(struct db *db, const char *project_id, const char *name,
                                       const char *version, const char *stage, bool archive_existing,
                                       const struct registry_actor *who, struct err *e);
int registry_alias_set_as(struct db *db, const char *project_id, const char *name, const char *alias,
                          const char *version, const struct registry_actor *who, struct err *e);

enum registry_request_state {
  REGISTRY_REQ_PENDING = 1,
  REGISTRY_REQ_APPROVED,
  REGISTRY_REQ_REJECTED,
  REGISTRY_REQ_CANCELLED,
  REGISTRY_REQ_STALE,
};
const char *registry_request_state_name(enum registry_request_state s);
/* 0 when s names a state (any case), else INVALID_PARAMETER_VALUE. */
int registry_request_state_parse(const char *s, enum registry_request_state *out, struct err *e);
/* The request state machine's edges (governance.c draws them). */
bool registry_request_move_legal(enum registry_request_state from, enum registry_request_state to);

/* Exactly one of stage and alias. */
struct registry_request_new {
  const char *name, *version, *stage, *alias, *comment;
  bool archive_existing;
};
/* An approval request: {id, model_name, version, kind: stage|alias, target,
 * archive_existing_versions, from_stage, comment?, requester_id,
 * requester?, state, created_at, updated_at, decided_by?, decided_by_name?,
 * decision_comment?}. */
json_t *registry_request_create(struct db *db, const char *project_id, const struct registry_request_new *in,
                                const struct registry_actor *who, struct err *e);
json_t *registry_request_get(struct db *db, const char *project_id, const char *id, struct err *e);
/* Newest first; state REGISTRY_REQ_PENDING for the inbox, 0 for all. Pending
 * requests whose version was deleted or changed stage turn STALE first. */
json_t *registry_request_list(struct db *db, const char *project_id, enum registry_request_state state,
                              int64_t max_results, const char *page_token,
                              char next[REGISTRY_PAGE_TOKEN_MAX], struct err *e);
/* to: APPROVED or REJECTED (the caller must be a project admin) or
 * CANCELLED (the requester). A PENDING request whose version changed
 * meanwhile becomes STALE and the call answers CONFLICT. The request as
 * it ends up. */
json_t *registry_request_decide(struct db *db, const char *project_id, const char *id,
                                enum registry_request_state to, const char *comment,
                                const struct registry_actor *who, struct err *e);

/* Comments on a model version: {id, model_name, version, author_id,
 * author?, body, created_at, updated_at}, oldest first. Only the author
 * edits; the author or a project admin deletes. */
json_t *registry_comment_create(struct db *db, const char *project_id, const char *name,
                                const char *version, const char *body, const struct registry_actor *who,
                                struct err *e);
json_t *registry_comment_list(struct db *db, const char *project_id, const char *name, const char *version,
                              int64_t max_results, const char *page_token,
                              char next[REGISTRY_PAGE_TOKEN_MAX], struct err *e);
json_t *registry_comment_update(struct db *db, const char *project_id, const char *name,
                                const char *version, const char *comment_id, const char *body,
                                const struct registry_actor *who, struct err *e);
int registry_comment_delete(struct db *db, const char *project_id, const char *name, const char *version,
                            const char *comment_id, const struct registry_actor *who, struct err *e);

/* ---- lineage (lineage.c) ------------------------------------------------------------ *
 * Where a version came from, as a graph: {"nodes": [{id, type, label,
 * attrs, missing?}], "edges": [{from, to, type}], "truncated"?}. Node
 * types: model_version, run, dataset, logged_model, experiment; edge
 * types: produced_by, consumed, logged_in, registered_from (the
 * vocabulary is in docs/registry.md; later rooms add theirs). A run,
 * logged model or experiment that no longer exists is a node with
 * "missing": true, never an error. */
#define REGISTRY_LINEAGE_MAX_DATASETS 500
json_t *registry_version_lineage(struct db *db, const char *project_id, const char *name,
                                 const char *version, struct err *e);

#endif
