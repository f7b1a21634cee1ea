/* serve: the prediction path — tensors and signatures, the backends that run
 * models (serve/backends/), the model cache, the per-model dynamic batcher,
 * and the prediction protocols (KServe V2 with the binary tensor extension,
 * MLflow scoring payloads). Domain code here sees no HTTP types; api.c is
 * the thin layer that does. */
#ifndef KILN_SERVE_H
#define KILN_SERVE_H

#include "base/base.h"
#include "store/store.h"

/* ---- tensors --------------------------------------------------------------
 * Element types, in KServe V2 names. BYTES elements are stored as V2's binary
 * form everywhere inside Kiln: a 4-byte little-endian length, then that many
 * bytes, element after element. */
#define SERVE_DTYPE_MAP(X) \
  X(BOOL, "BOOL", 1)       \
  X(UINT8, "UINT8", 1)     \
  X(UINT16, "UINT16", 2)   \
  X(UINT32, "UINT32", 4)   \
  X(UINT64, "UINT64", 8)   \
  X(INT8, "INT8", 1)       \
  X(INT16, "INT16", 2)     \
  X(INT32, "INT32", 4)     \
  X(INT64, "INT64", 8)     \
  X(FP16, "FP16", 2)       \
  X(BF16, "BF16", 2)       \
  X(FP32, "FP32", 4)       \
  X(FP64, "FP64", 8)       \
  X(BYTES, "BYTES", 0)

enum serve_dtype {
#define SERVE_DTYPE_ENUM(n, s, sz) SERVE_##n,
  SERVE_DTYPE_MAP(SERVE_DTYPE_ENUM)
#undef SERVE_DTYPE_ENUM
      SERVE_DTYPE__COUNT
};
const char *serve_dtype_name(enum serve_dtype t);                /* "FP32" */
int serve_dtype_parse(const char *s, enum serve_dtype *out);     /* 0 or -1 (case-sensitive) */
size_t serve_dtype_size(enum serve_dtype t);                     /* bytes; 0 for BYTES */

#define SERVE_MAX_DIMS 8
#define SERVE_NAME_MAX 128

/* A tensor (row-major, little-endian, no padding). The first dimension is
 * the batch (rows) for every model that batches. A per-row JSON value
 * instead of numbers (ONNX ZipMap / sequence-of-map outputs: one object per
 * row) sets json to an array with shape[0] elements and leaves data NULL;
 * protocols emit it as JSON (V2: a BYTES tensor of JSON texts). */
struct serve_tensor {
  char name[SERVE_NAME_MAX];
  enum serve_dtype dtype;
  int ndim;
  int64_t shape[SERVE_MAX_DIMS];
  void *data;    /* nbytes bytes */
  size_t nbytes;
  bool owned;    /* data was malloc'd and is freed by serve_tensor_fini */
  json_t *json;  /* see above; a reference owned by the tensor */
};
/* shape's element count (product of dims; 1 for a scalar); -1 on overflow
 * or a negative dimension. */
int64_t serve_shape_count(const int64_t *shape, int ndim);
/* Frees owned data and drops json; leaves the struct zeroed. */
void serve_tensor_fini(struct serve_tensor *t);
/* Allocates owned, zeroed storage for count elements of a fixed-size dtype. */
int serve_tensor_alloc(struct serve_tensor *t, const char *name, enum serve_dtype dt, const int64_t *shape,
                       int ndim, struct err *e);

/* ---- signatures -----------------------------------------------------------
 * What a model takes and gives. A dimension of -1 is variable. A model whose
 * single input is a table (scikit-learn, XGBoost, tree-ensemble ONNX) may
 * name its columns: columns[i] is column i of input 0 (shape [-1, ncolumns]),
 * so column-keyed payloads (dataframe_split, records, dicts) map by name. */
struct serve_tensor_spec {
  char name[SERVE_NAME_MAX];
  enum serve_dtype dtype;
  int ndim; /* -1: unknown rank (accept any) */
  int64_t shape[SERVE_MAX_DIMS];
};
struct serve_signature {
  int ninputs, noutputs;
  struct serve_tensor_spec *inputs, *outputs; /* malloc'd arrays */
  int ncolumns;
  char **columns;  /* malloc'd; NULL when the model names no columns */
  json_t *classes; /* classifier labels (array) or NULL */
  bool batched;    /* every input's first dimension is the batch (-1) */
  bool allow_nan;  /* NaN in float inputs means "missing" (XGBoost); else refused */
};
void serve_signature_fini(struct serve_signature *s);
/* {"inputs": [{"name","datatype","shape"}], "outputs": [...], "columns"?:
 * [...], "classes"?: [...]} — V2 tensor_meta lists. */
json_t *serve_signature_json(const struct serve_signature *s);

struct serve_config;

/* ---- backends --------------------------------------------------------------
 * One small table per runtime (serve/backends/<name>.c). A model is loaded
 * once and served by `instances` executor threads: predict is called
 * concurrently for different instance numbers, never concurrently for the
 * same one. Backends copy nothing they do not need: inputs stay owned by the
 * caller for the call's duration only. */
#define SERVE_BACKEND_VERSION 1
#define SERVE_CAP_PROBA 1u  /* has class probabilities (opts.proba) */
#define SERVE_CAP_MARGIN 2u /* has raw margins (opts.margin) */
#define SERVE_CAP_GPU 4u

struct serve_load_opts {
  const char *path;             /* the model file (a private copy; gone after unload) */
  const char *format;           /* the registry's format: "onnx", "xgboost-json", "xgboost-ubj",
                                   "xgboost-binary", "pickle", "joblib", "torchscript" */
  const json_t *registry_signature; /* MLflow signature the registry knows, or NULL */
  int instances;                /* executor threads that will call predict (>= 1) */
  int threads;                  /* intra-op threads per instance (0: backend default) */
  const struct serve_config *cfg; /* server-wide settings */
  const char *model_name, *model_version; /* for logs and metrics labels */
};
struct serve_predict_opts {
  bool proba;  /* classifiers: class probabilities instead of labels */
  bool margin; /* raw scores before the link function */
  const char *const *outputs; /* requested output names, or NULL for all */
  int noutputs;
};
struct serve_backend {
  int version; /* SERVE_BACKEND_VERSION */
  const char *name;
  unsigned caps;
  /* Loads the model; fills sig (inputs/outputs as the runtime reports
   * them, refined by the registry's signature). *model is the backend's. */
  int (*load)(const struct serve_load_opts *o, void **model, struct serve_signature *sig, struct err *e);
  /* Runs one batch: in[i] matches sig->inputs[i] (dtype already coerced,
   * first dimension = rows of the batch). Fills *out with nout tensors
   * (malloc'd array of owned tensors; caller frees each with
   * serve_tensor_fini, then the array). Output tensors keep the batch as
   * their first dimension. */
  int (*predict)(void *model, int instance, const struct serve_tensor *in, int nin,
                 const struct serve_predict_opts *po, struct serve_tensor **out, int *nout, struct err *e);
  uint64_t (*memory)(void *model); /* resident bytes attributed to the model (estimate) */
  void (*unload)(void *model);
  /* Optional (NULL: never). True when the model keeps failing in a way a
   * retry will not fix (a worker that crashes again and again); why gets
   * the reason. The cache then marks the model DEGRADED. */
  bool (*degraded)(void *model, char *why, size_t cap);
  /* Optional: backend facts for the models view ({"workers": [{"pid",
   * "restarts"}]}, threads, ...); a new reference or NULL. */
  json_t *(*describe)(void *model);
};
extern const struct serve_backend serve_backend_onnx;
extern const struct serve_backend serve_backend_xgboost;
extern const struct serve_backend serve_backend_python;
/* The backend that serves a registry format, or NULL. */
const struct serve_backend *serve_backend_for(const char *format);

/* Server-wide serving settings (flags of `kiln server`). */
struct serve_config {
  const char *onnx_library;   /* path of libonnxruntime.so.1 */
  int onnx_threads;           /* intra-op threads per session (default 1) */
  const char *python;         /* the interpreter for workers (/usr/bin/python3) */
  const char *worker_script;  /* path of kiln_worker.py; NULL: the embedded copy */
  int python_workers;         /* processes per pickle/TorchScript model (1) */
  uint64_t worker_memory;     /* RLIMIT_AS of a worker, bytes (0: none) */
  int64_t worker_cpu_s;       /* RLIMIT_CPU of a worker (0: none) */
  int64_t worker_timeout_ms;  /* a call longer than this kills the worker (30000) */
  const char *device;         /* "cpu" or "cuda" (TorchScript) */
  uint64_t memory_budget;     /* bytes of loaded models before LRU eviction */
  int max_batch_size;         /* default per model (32) */
  int64_t max_queue_delay_us; /* default per model (0) */
  int queue_capacity;         /* default per model (1024) */
  int64_t default_timeout_us; /* a request's deadline when it names none (30 s) */
  const char *tmp_dir;        /* where model files are copied for loading */
};
void serve_config_default(struct serve_config *c);

/* ---- python worker frames (backends/python.c; exposed for tests/fuzzing) --
 * A frame: u32 LE total length of what follows, u32 LE header length, the
 * JSON header, then the raw tensor bytes the header's "tensors" list
 * describes ([{"name","datatype","shape","nbytes"}], in order). */
#define SERVE_FRAME_MAX (1u << 30)
int serve_frame_encode(struct buf *out, const json_t *header, const struct serve_tensor *t, int nt, struct err *e);
/* Parses one whole frame body (after the leading total length): *header
 * gets a new reference; tensors point into body (owned = false). */
int serve_frame_decode(const char *body, size_t n, json_t **header, struct serve_tensor **t, int *nt,
                       struct err *e);

/* ---- protocols (v2.c, payload.c) ------------------------------------------
 * Request parsing never trusts a length: every size is checked against the
 * body. Parsed tensors point into the body or into arena memory. */
struct serve_request {
  const char *id;            /* V2 "id" (echoed) or NULL */
  struct serve_tensor *inputs;
  int ninputs;
  struct serve_output_req {
    const char *name;
    bool binary;
  } *outputs;                /* requested outputs; NULL = all */
  int noutputs;
  bool binary_all;           /* parameters.binary_data_output */
  int64_t priority;          /* parameters.priority (0: default, 1: highest) */
  int64_t timeout_us;        /* parameters.timeout (0: server default) */
  struct serve_predict_opts popts;
};
#define SERVE_V2_MAX_INPUTS 64
/* KServe V2 inference request. header_len is Inference-Header-Content-Length
 * (0: the whole body is JSON). 400-class errors name the input at fault. */
int serve_v2_parse_request(const char *body, size_t len, size_t header_len, struct arena *a,
                           struct serve_request *out, struct err *e);
/* The inference response for outputs (rows already this request's). Binary
 * outputs (requested, or binary_all) go after the JSON header; *header_len
 * gets the JSON part's length when any binary part was written, else 0. */
int serve_v2_encode_response(struct buf *out, const char *model_name, const char *model_version,
                             const struct serve_request *rq, const struct serve_tensor *outputs, int noutputs,
                             size_t *header_len, struct err *e);
/* MLflow scoring payloads ({"instances"}, {"inputs"}, {"dataframe_split"},
 * {"dataframe_records"}; "params" with "predict_proba"/"output_margin")
 * mapped onto sig by name (columns or input names). */
int serve_mlflow_parse_request(const json_t *body, const struct serve_signature *sig, struct arena *a,
                               struct serve_request *out, struct err *e);
/* Added by serve-proto: the same from the body's bytes (JSON errors are
 * MALFORMED_JSON, as json_parse gives). Number matrices ({"inputs": [[...]]},
 * "instances", dataframe_split's "data") are read without jansson, the rest
 * as serve_mlflow_parse_request reads it, with the same messages. Tensors
 * are arena memory; the body need not outlive the call. */
int serve_mlflow_parse_body(const char *body, size_t len, const struct serve_signature *sig, struct arena *a,
                            struct serve_request *out, struct err *e);
/* {"predictions": ...}: one output → its rows; several → a list of
 * {name: value} objects per row. */
json_t *serve_mlflow_encode_response(const struct serve_tensor *outputs, int noutputs);
/* Matches the request's inputs to sig: reorders them as sig->inputs, casts
 * to the signature's dtypes by the documented rules (docs/serving-protocols.md), and
 * checks shapes, NaN/Inf policy and the row limit; every violation is
 * INVALID_PARAMETER_VALUE naming the input and what was expected. The
 * result replaces rq->inputs (arena memory). rows gets the batch rows. */
int serve_validate(const struct serve_signature *sig, struct serve_request *rq, struct arena *a, int64_t max_rows,
                   int64_t *rows, struct err *e);

/* ---- model cache and batcher (cache.c, batcher.c) --------------------------
 * The cache keys loaded models by (project, model name, version). Loading
 * happens on a loader thread; requests for a model still loading wait in
 * its queue. Instances are reference counted: eviction and unload wait for
 * in-flight batches. */
struct serve;
struct serve_model; /* a loaded (or loading) model version */

struct serve_model_settings {
  int max_batch_size;         /* 0: server default */
  int64_t max_queue_delay_us; /* -1: server default */
  int queue_capacity;         /* 0: server default */
  int instances;              /* 0: 1 (python: python_workers) */
  int priority_levels;        /* 0: 2 */
};
int serve_open(struct serve **out, struct db *db, struct blob_store *blobs, const struct serve_config *cfg,
               struct err *e);
/* Fails every queued request (UNAVAILABLE), stops batchers and workers. */
void serve_close(struct serve *s);

/* States of a cached model (drawn in cache.c next to its transition). */
enum serve_model_state { SERVE_LOADING, SERVE_READY, SERVE_FAILED, SERVE_DEGRADED, SERVE_UNLOADING };
const char *serve_model_state_name(enum serve_model_state st);

/* Finds the model (starting its load when absent and `load` is true).
 * version NULL or "": the latest READY version. Returns a reference
 * (serve_model_unref), or NULL with e: RESOURCE_DOES_NOT_EXIST (no such
 * model/version), INVALID_STATE (not READY in the registry, or a format
 * Kiln cannot serve), NOT_READY (not loaded and load false). */
struct serve_model *serve_model_get(struct serve *s, const char *project_id, const char *name,
                                    const char *version, bool load, const struct serve_model_settings *st,
                                    struct err *e);
void serve_model_unref(struct serve_model *m);
/* Runs w->cb(w->ctx) once, from the loader thread, when m leaves LOADING
 * (ready, failed or unloaded); answers false without calling it when m has
 * left LOADING already. w is the caller's storage until then. */
struct serve_waiter {
  void (*cb)(void *ctx);
  void *ctx;
  struct serve_waiter *next;
};
bool serve_model_when_ready(struct serve_model *m, struct serve_waiter *w);
/* Blocks until the model is READY or failed (not for I/O threads: the CLI
 * and explicit load route run it on a worker), up to timeout_ms. */
int serve_model_wait_ready(struct serve_model *m, int64_t timeout_ms, struct err *e);
int serve_model_unload(struct serve *s, const char *project_id, const char *name, const char *version,
                       struct err *e);
enum serve_model_state serve_model_state(const struct serve_model *m);
const char *serve_model_name(const struct serve_model *m);
const char *serve_model_version(const struct serve_model *m);
const char *serve_model_format(const struct serve_model *m);
const char *serve_model_platform(const struct serve_model *m); /* backend name */
/* The signature once READY (NULL before). Valid while the reference is held. */
const struct serve_signature *serve_model_signature(const struct serve_model *m);
/* {"name","version","format","backend","state","reason"?,"memory_bytes",
 * "loaded_at","last_used_at","requests","queue_depth","settings"} of every
 * cached model of the project (NULL: all projects). */
json_t *serve_models_json(struct serve *s, const char *project_id);
/* One cached model as serve_models_json lists it. */
json_t *serve_model_json(struct serve_model *m);
/* Counts one answered request of m (code ERR_OK or the error) and its
 * latency; also marks the model used. */
void serve_observe_request(struct serve_model *m, enum err_code code, double seconds);
/* Every cached model READY (V2 server readiness). */
bool serve_all_ready(struct serve *s);

/* A prediction job. done runs exactly once on a batcher (or the caller's)
 * thread: with status 0 and outputs holding this request's rows (owned by
 * the job until serve_job_free), or with status < 0 and err filled. */
struct serve_job {
  struct serve_tensor *inputs; /* validated, in signature order; must stay valid until done */
  int ninputs;
  int64_t rows;
  struct serve_predict_opts popts;
  int priority;          /* 0: default level, 1: highest */
  int64_t deadline_us;   /* time_mono_us() deadline, 0: server default from now */
  void (*done)(struct serve_job *j, void *ctx);
  void *ctx;
  /* filled by the batcher: this job's rows of each output (owned copies) */
  int status;
  struct err err;
  struct serve_tensor *outputs;
  int noutputs;
  int64_t queue_us, compute_us; /* time waited in the queue, time of its batch's predict */
  int batch_rows;               /* rows of the batch it ran in */
  /* private to the batcher */
  struct serve_job *next;
  int64_t enq_us;
};
/* Queues the job on m. 0: done will run later. < 0: refused now (queue full
 * → UNAVAILABLE with Retry-After 1, model failed → INVALID_STATE, shutting
 * down → UNAVAILABLE); done will not run. */
int serve_submit(struct serve_model *m, struct serve_job *j, struct err *e);
/* Frees the job's outputs (a job is the caller's storage). */
void serve_job_fini(struct serve_job *j);

/* Metrics families (registered at serve_open). */
void serve_metrics_init(void);
/* GPU gauges (nvml.c), once per process: when libnvidia-ml.so.1 loads
 * (dlopen; KILN_NVML_LIBRARY overrides the name) and NVML sees GPUs,
 * registers kiln_gpu_count and, labelled gpu="<index>",
 * kiln_gpu_utilization_ratio, kiln_gpu_memory_used_bytes,
 * kiln_gpu_memory_total_bytes and kiln_gpu_temperature_celsius, read from
 * NVML at each scrape. Returns the number of GPUs; 0 (nothing registered,
 * nothing logged above debug) when the library is absent. */
int serve_nvml_init(void);

#endif
