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

/* Which version a reference names: a version number (it must exist),
 * "latest" (the highest READY version) or an alias. out gets the number as
 * text. RESOURCE_DOES_NOT_EXIST naming what was missing. */
int registry_version_resolve(struct db *db, const char *project_id, const char *name, const char *ref,
                             char out[24], struct err *e);

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
  /* uploads.c only: source is REGISTRY_UPLOAD_SCHEME + the file's hash and
   * the version stays PENDING_REGISTRATION until intake has judged it */
  bool pending_upload;
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

/* ---- malware scanning (clamav.c) ------------------------------------------------ *
 * A virus scanner is a table of functions (curl's Curl_ssl style); uploads
 * call it after intake accepts a file, before the version may turn READY.
 * One implementation: clamd, over its INSTREAM protocol (unix socket or
 * TCP). See docs/registry.md#malware-scanning-clamav. */
#define REGISTRY_AV_OPS_VERSION 1
#define REGISTRY_AV_SIG_MAX 200     /* a signature name, bytes */
#define REGISTRY_AV_ENGINE_MAX 160  /* the engine's version text, bytes */
#define REGISTRY_AV_CAP_CHECK 1u    /* the scanner answers a readiness check */

struct registry_av_result {
  bool found;                              /* a signature matched */
  char signature[REGISTRY_AV_SIG_MAX + 1]; /* its name when found */
  char engine[REGISTRY_AV_ENGINE_MAX + 1]; /* "ClamAV 1.4.6/27000/..." */
  int64_t duration_ms;
};

struct registry_av_ops {
  int version;       /* REGISTRY_AV_OPS_VERSION */
  const char *name;  /* "clamd" */
  unsigned caps;     /* REGISTRY_AV_CAP_* */
  /* Streams the file to the scanner. 0 with *r filled (clean or found);
   * -ERR_UNAVAILABLE: the scanner is unreachable, timed out, or answered an
   * error or nonsense; -ERR_PAYLOAD_TOO_LARGE: over the scanner's own size
   * limit; -ERR_IO: the file could not be read. Thread-safe. */
  int (*scan_file)(void *self, const char *path, struct registry_av_result *r, struct err *e);
  /* Readiness: the engine's version text into engine[n]. */
  int (*check)(void *self, char *engine, size_t n, struct err *e);
  void (*free)(void *self);
};

struct registry_av;
/* Wraps an implementation (ops must outlive it); NULL on OOM or a table of
 * another version. */
struct registry_av *registry_av_new(const struct registry_av_ops *ops, void *self);
void registry_av_free(struct registry_av *av); /* NULL is a no-op */
const char *registry_av_name(const struct registry_av *av);
int registry_av_scan_file(struct registry_av *av, const char *path, struct registry_av_result *r, struct err *e);
/* A scanner without CAP_CHECK answers 0 with an empty engine. */
int registry_av_check(struct registry_av *av, char *engine, size_t n, struct err *e);

/* clamd. address: "unix:/path/to/clamd.ctl" or "tcp:HOST:PORT" ("[v6]" hosts
 * too); timeout_ms bounds one whole exchange, connect to verdict (default
 * 30000); chunk_size is the INSTREAM chunk (default 64 KiB, at most
 * 1 MiB). INVALID_PARAMETER_VALUE for a malformed address. */
struct registry_clamd_opts {
  const char *address;
  int64_t timeout_ms;
  size_t chunk_size;
};
#define REGISTRY_CLAMD_DEFAULT_TIMEOUT_MS 30000
#define REGISTRY_CLAMD_DEFAULT_CHUNK (64u << 10)
#define REGISTRY_CLAMD_MAX_CHUNK (1u << 20)
#define REGISTRY_CLAMD_REPLY_MAX 1024 /* longer replies are refused */
int registry_clamd_new(struct registry_av **out, const struct registry_clamd_opts *o, struct err *e);

/* What clamd answered (exposed for tests and the fuzzer). */
enum registry_clamd_kind {
  REGISTRY_CLAMD_MALFORMED = 0, /* not a reply we know */
  REGISTRY_CLAMD_OK,            /* "stream: OK" */
  REGISTRY_CLAMD_FOUND,         /* "stream: <Signature> FOUND" */
  REGISTRY_CLAMD_ERROR,         /* "<why> ERROR" */
  REGISTRY_CLAMD_SIZE_LIMIT,    /* "INSTREAM size limit exceeded. ERROR" (StreamMaxLength) */
};
struct registry_clamd_reply {
  enum registry_clamd_kind kind;
  char text[REGISTRY_CLAMD_REPLY_MAX + 1]; /* the signature (FOUND) or the reason (ERROR, SIZE_LIMIT) */
};
/* Parses one reply of n bytes (its NUL or newline terminator optional).
 * Only printable ASCII is accepted; a signature must be 1..REGISTRY_AV_SIG_MAX
 * bytes with no surrounding space. Returns out->kind. */
enum registry_clamd_kind registry_clamd_reply_parse(const char *buf, size_t n, struct registry_clamd_reply *out);
/* INSTREAM framing: the file open at fd, from its current offset to EOF, as
 * chunks of at most chunk bytes (4-byte big-endian length, then the bytes)
 * and a zero-length terminator, written to sock before deadline_us
 * (time_mono_us). Never holds more than one chunk. -ERR_UNAVAILABLE when
 * the socket fails or the deadline passes (EPIPE too: clamd closes early
 * past StreamMaxLength, and its reply says why), -ERR_IO for the file. */
int registry_clamd_instream(int sock, int fd, size_t chunk, int64_t deadline_us, struct err *e);

/* ---- uploaded model files (uploads.c) ---------------------------------------- *
 * A model file uploaded whole (one request) or in a resumable session
 * becomes the next version of a registered model (made when missing):
 * the bytes land in a temp file under `dir`, hashed as they arrive; the
 * version is created PENDING_REGISTRATION, intake judges the file, and the
 * version turns READY (bytes moved into the blob store, one reference per
 * version, so identical files are stored once) or FAILED_REGISTRATION
 * (nothing stored; the scan report says why). Partial bytes never reach the
 * blob store, so refused, abandoned or expired uploads leave no blob. */
#define REGISTRY_UPLOAD_SCHEME "kiln-upload:"          /* a version's source: kiln-upload:<sha256> */
#define REGISTRY_UPLOAD_DEFAULT_MAX_SIZE (2ull << 30)   /* --max-model-size */
#define REGISTRY_UPLOAD_DEFAULT_TTL_S (24 * 3600)       /* --upload-session-ttl */
#define REGISTRY_UPLOAD_ID_LEN 32                       /* hex */

struct registry_upload_cfg {
  struct db *db;
  struct blob_store *blobs;
  const char *dir;       /* partial and temp files (DATA/uploads); created when missing */
  uint64_t max_size;     /* 0: REGISTRY_UPLOAD_DEFAULT_MAX_SIZE */
  int64_t session_ttl_s; /* 0: REGISTRY_UPLOAD_DEFAULT_TTL_S; refreshed by every chunk */
  struct registry_av *av; /* NULL: no malware scan (--clamd unset) */
  bool av_fail_open;      /* scanner down: READY, marked not scanned (default: refused, 503) */
};

/* What the uploader says about the file. */
struct registry_upload_meta {
  const char *name;        /* registered model (created when missing) */
  const char *description; /* the version's (and a new model's) */
  const struct registry_kv *tags; /* version tags */
  int ntags;
  const char *expected_sha256; /* lowercase or uppercase hex, or NULL */
  const char *user_id;         /* who uploads (shown as the version's user_id) */
};
/* Refuses bad names, descriptions, tags and hashes before a byte is read. */
int registry_upload_meta_check(const struct registry_upload_meta *m, struct err *e);

/* A file being received in one request: written to a temp file, hashed as
 * it goes; PAYLOAD_TOO_LARGE once it passes max_size. _free removes the
 * temp file (after registry_upload_register, too). */
struct registry_upload_file;
struct registry_upload_file *registry_upload_file_new(const struct registry_upload_cfg *c, struct err *e);
int registry_upload_file_write(struct registry_upload_file *f, const void *p, size_t n, struct err *e);
uint64_t registry_upload_file_size(const struct registry_upload_file *f);
void registry_upload_file_free(struct registry_upload_file *f);

/* Registers the received file as a new version of m->name in the project.
 * An empty file or a hash other than expected_sha256 is refused
 * (INVALID_PARAMETER_VALUE) before anything is created. Then 0 with *out the
 * answer (registry_upload_answer's object) for a READY version; or, when
 * intake refuses the file, -ERR_UNSAFE_MODEL, -ERR_UNSUPPORTED_MEDIA_TYPE or
 * -ERR_INVALID_PARAMETER_VALUE with e naming why and *out the answer for
 * the FAILED_REGISTRATION version; other failures leave *out NULL. Unsafe
 * pickles pass (READY, flagged "unsafe") only where the project's
 * allow_unsafe_pickles setting is on. Runs intake on the calling thread. */
int registry_upload_register(const struct registry_upload_cfg *c, const char *project_id,
                             const struct registry_upload_meta *m, struct registry_upload_file *f,
                             json_t **out, struct err *e);

/* Sets the signature of an uploaded version whose file declares none, in
 * MLflow's signature JSON ({"inputs", "outputs", "params"}: lists of
 * column/tensor specs, or those lists as JSON strings as in MLmodel); kept
 * with "given_by": "user". CONFLICT when the version has one already (a
 * version's signature never changes), RESOURCE_DOES_NOT_EXIST when it was
 * not uploaded. Answers the version as registry_upload_answer. */
json_t *registry_upload_signature_set(struct db *db, const char *project_id, const char *name, const char *version,
                                      json_t *sig, struct err *e);

/* {"name", "version", "status", "status_message"?, "source", "format",
 * "framework", "sha256", "size", "stored", "unsafe", "scan", "signature"
 * (object or null), "prediction_url" (null: no serving yet),
 * "creation_timestamp"} of an uploaded version; RESOURCE_DOES_NOT_EXIST
 * for a version not made by an upload. */
json_t *registry_upload_answer(struct db *db, const char *project_id, const char *name,
                               const char *version, struct err *e);
/* The stored file of a READY uploaded version (for downloads). */
int registry_upload_blob(struct db *db, const char *project_id, const char *name, const char *version,
                         char sha256[65], uint64_t *size, struct err *e);

/* Resumable sessions, owned by the user who made them, in one project
 * (another user or project sees RESOURCE_DOES_NOT_EXIST). A session object:
 * {"upload_id", "name", "size", "received", "sha256"?, "description"?,
 * "created_at", "expires_at"}. size must be 1..max_size. */
json_t *registry_upload_session_create(const struct registry_upload_cfg *c, const char *project_id,
                                       const struct registry_upload_meta *m, uint64_t size,
                                       struct err *e);
json_t *registry_upload_session_get(const struct registry_upload_cfg *c, const char *project_id,
                                    const char *user_id, const char *upload_id, struct err *e);
/* One chunk at offset, appended only: offset must equal the bytes received
 * so far (CONFLICT otherwise, naming the offset to resume from); len (or
 * HTTP_LEN_UNKNOWN-like UINT64_MAX) the chunk's announced length, which must
 * fit the session's size. A second writer on the same session meanwhile is
 * a CONFLICT. _end commits the chunk (the bytes must be exactly len when it
 * was given) and answers the session; _abort cuts the file back. Both free
 * the chunk. */
struct registry_upload_chunk;
struct registry_upload_chunk *registry_upload_chunk_begin(const struct registry_upload_cfg *c,
                                                          const char *project_id, const char *user_id,
                                                          const char *upload_id, uint64_t offset,
                                                          uint64_t len, struct err *e);
int registry_upload_chunk_write(struct registry_upload_chunk *ch, const void *p, size_t n, struct err *e);
json_t *registry_upload_chunk_end(struct registry_upload_chunk *ch, struct err *e);
void registry_upload_chunk_abort(struct registry_upload_chunk *ch);
/* Every byte in: registers the file as registry_upload_register does
 * (user_name shown as the version's user_id) and ends the session (it
 * stays, for a retry, only after a temporary failure). */
int registry_upload_session_complete(const struct registry_upload_cfg *c, const char *project_id,
                                     const char *user_id, const char *user_name, const char *upload_id,
                                     json_t **out, struct err *e);
int registry_upload_session_abort(const struct registry_upload_cfg *c, const char *project_id,
                                  const char *user_id, const char *upload_id, struct err *e);
/* Removes sessions past their expiry with their files (and stale temp
 * files); *removed may be NULL. Called on every session create. */
int registry_upload_expire(const struct registry_upload_cfg *c, int *removed, struct err *e);

/* Per-project registry settings: {"project_id", "allow_unsafe_pickles",
 * "updated_at"?, "updated_by"?}. Setting writes an audit entry
 * (registry.settings_update) in the same transaction. */
json_t *registry_settings_get(struct db *db, const char *project_id, struct err *e);
json_t *registry_settings_set(struct db *db, const char *project_id, bool allow_unsafe_pickles,
                              const char *actor, struct err *e);
/* ---- registry webhooks (webhooks.c) ----------------------------------------------- *
 * Per-project subscriptions to registry events, delivered as HMAC-SHA256
 * signed JSON POSTs by a background worker from a durable queue, with
 * retries and a delivery log. See docs/registry.md#webhooks. */
#define REGISTRY_WEBHOOK_MAX_URL_LEN 2048
#define REGISTRY_WEBHOOK_MAX_DESCRIPTION_LEN 1000
#define REGISTRY_WEBHOOK_SECRET_MIN 16  /* a given secret's length, bytes */
#define REGISTRY_WEBHOOK_SECRET_MAX 256
#define REGISTRY_WEBHOOKS_PER_PROJECT 100
#define REGISTRY_WEBHOOK_MAX_ATTEMPTS 20 /* the most --webhook-max-attempts takes */
#define REGISTRY_WEBHOOK_PAGE_MAX 1000
#define REGISTRY_WEBHOOK_SIG_LEN (7 + 64) /* "sha256=" + hex */

/* The events (MLflow/Databricks registry webhook names; MODEL_VERSION_READY
 * is Kiln's: a version's files are in place). */
#define REGISTRY_EV_VERSION_CREATED "MODEL_VERSION_CREATED"
#define REGISTRY_EV_VERSION_READY "MODEL_VERSION_READY"
#define REGISTRY_EV_STAGE "MODEL_VERSION_TRANSITIONED_STAGE"
#define REGISTRY_EV_ALIAS_SET "REGISTERED_MODEL_ALIAS_SET"
#define REGISTRY_EV_ALIAS_DELETED "REGISTERED_MODEL_ALIAS_DELETED"
#define REGISTRY_EV_TEST "TEST"
/* Whether name is an event a webhook can subscribe to. */
bool registry_webhook_event_valid(const char *name);

struct registry_webhooks_opts {
  const uint8_t *master_key; /* 32 bytes: secrets are sealed with it; NULL stores them plain */
  int max_attempts;          /* per delivery (default 8, at most REGISTRY_WEBHOOK_MAX_ATTEMPTS) */
  int64_t backoff_ms;        /* wait after the first failed attempt, doubling (default 1000) */
  int64_t backoff_max_ms;    /* the longest wait (default 300000) */
  int64_t timeout_ms;        /* one attempt, connect included (default 10000) */
  bool allow_private;        /* loopback, private and link-local receivers (default off here;
                              * the server flag defaults on for single-machine installs) */
  int64_t log_retention_ms;  /* finished deliveries older than this are pruned (default 30 days) */
  int64_t log_keep;          /* and beyond the newest this many per webhook (default 1000) */
};
struct registry_webhooks;
/* The engine (management calls need it for sealing; the worker is started
 * separately). */
int registry_webhooks_new(struct registry_webhooks **out, struct db *db, const struct registry_webhooks_opts *o,
                          struct err *e);
/* Starts the delivery worker: PENDING deliveries left by an earlier run are
 * sent first. At most one engine's worker runs per process. */
int registry_webhooks_start(struct registry_webhooks *w, struct err *e);
/* The server's own port: deliveries to it on a loopback address are refused. */
void registry_webhooks_set_self_port(struct registry_webhooks *w, int port);
/* Stops the worker (in-flight attempts are abandoned and stay PENDING, so
 * they are retried after a restart) and frees the engine. NULL is a no-op. */
void registry_webhooks_free(struct registry_webhooks *w);

/* A webhook's fields for create and update. NULL (and events_given false)
 * leaves a field unchanged on update; "" clears model_name/description. */
struct registry_webhook_in {
  const char *url, *model_name, *description, *status, *secret, *user_id;
  const char *const *events;
  int nevents;
  bool events_given;
  bool rotate_secret; /* update: a new server-made secret */
};
/* Webhook objects: {id, project_id, url, events, model_name?, description?,
 * status, created_by?, creation_timestamp, last_updated_timestamp}; never
 * the secret. create and a rotating update put the new secret in *secret
 * (malloc'd; the only time it is shown; callers wipe and free it). */
json_t *registry_webhook_create(struct registry_webhooks *w, const char *project_id,
                                const struct registry_webhook_in *in, char **secret, struct err *e);
json_t *registry_webhook_get(struct registry_webhooks *w, const char *project_id, const char *id, struct err *e);
json_t *registry_webhook_update(struct registry_webhooks *w, const char *project_id, const char *id,
                                const struct registry_webhook_in *in, char **secret, struct err *e);
/* Removes the webhook with its deliveries and their log. */
int registry_webhook_delete(struct registry_webhooks *w, const char *project_id, const char *id, struct err *e);
/* Webhook objects of the project, oldest first; next gets the next page's
 * token or "". */
json_t *registry_webhook_list(struct registry_webhooks *w, const char *project_id, int64_t max_results,
                              const char *page_token, char next[REGISTRY_PAGE_TOKEN_MAX], struct err *e);
/* Queues a TEST event for the webhook (any status; one attempt, no retries)
 * and returns its delivery object. */
json_t *registry_webhook_test(struct registry_webhooks *w, const char *project_id, const char *id,
                              struct err *e);
/* Delivery objects: {id, webhook_id, event, state, attempts, max_attempts,
 * creation_timestamp, next_attempt_timestamp?, completed_timestamp?,
 * last_status_code?, last_error?, payload, attempt_log: [{attempt,
 * start_timestamp, duration_ms, status_code?, error?}]}, newest first. */
json_t *registry_webhook_deliveries(struct registry_webhooks *w, const char *project_id, const char *id,
                                    int64_t max_results, const char *page_token,
                                    char next[REGISTRY_PAGE_TOKEN_MAX], struct err *e);
json_t *registry_webhook_delivery_get(struct registry_webhooks *w, const char *project_id, const char *id,
                                      const char *delivery_id, struct err *e);

/* The hook the registry's transition points call inside their write (so the
 * deliveries commit with the change, or not at all): queues one delivery per
 * ACTIVE webhook of the project subscribed to the event (and to the model,
 * when it names one), and wakes the worker. model_id and version name the
 * subject (version 0: none). */
struct registry_webhook_event {
  const char *event;
  int64_t model_id, version;
  const char *from_stage, *to_stage, *alias;
};
int registry_webhooks_emit(struct db_conn *c, const char *project_id, const struct registry_webhook_event *ev,
                           struct err *e);

/* Pure parts, exposed for tests. */
/* "sha256=" + hex(HMAC-SHA256(secret, "<timestamp>.<body>")). */
void registry_webhook_sign(const char *secret, size_t secret_len, int64_t timestamp, const char *body,
                           size_t body_len, char out[REGISTRY_WEBHOOK_SIG_LEN + 1]);
/* The wait before attempt `attempt + 1` after `attempt` failed (1-based):
 * base * 2^(attempt-1), at most max. */
int64_t registry_webhook_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms);
/* http(s)://host[:port][/path], no credentials, no fragment, bounded; with
 * allow_private false, a literal loopback/private/link-local address or
 * "localhost" is refused too (names are checked again when connecting). */
int registry_webhook_url_check(const char *url, bool allow_private, struct err *e);
/* Whether an address (AF_INET/AF_INET6 bytes) is loopback, private,
 * link-local, shared, multicast or unspecified. */
bool registry_webhook_addr_private(int family, const uint8_t *addr);
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
