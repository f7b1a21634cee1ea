/* serve/backends/onnx: models run by ONNX Runtime's prebuilt CPU library,
 * loaded with dlopen (no header ships with it, so the few API members Kiln
 * calls are declared here); ZipMap outputs become per-row JSON. */
#include "serve/serve.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the slice of the C API Kiln uses ---------------------------------------
 * Positions and conventions: ../shared/ort/ (ort_api_index.tsv). The table is
 * append-only, so a declaration that stops after the last member used is
 * valid for every later version; each position is checked below because one
 * slot off would call the wrong function. */
typedef struct OrtStatus OrtStatus;
typedef struct OrtEnv OrtEnv;
typedef struct OrtSession OrtSession;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct OrtValue OrtValue;
typedef struct OrtTypeInfo OrtTypeInfo;
typedef struct OrtTensorTypeAndShapeInfo OrtTensorTypeAndShapeInfo;
typedef struct OrtSequenceTypeInfo OrtSequenceTypeInfo;
typedef struct OrtMemoryInfo OrtMemoryInfo;
typedef struct OrtAllocator OrtAllocator;
typedef struct OrtRunOptions OrtRunOptions;
typedef void (*ort_slot)(void);

struct ort_api {
  ort_slot pad0;
  int (*GetErrorCode)(const OrtStatus *);
  const char *(*GetErrorMessage)(const OrtStatus *);
  OrtStatus *(*CreateEnv)(int level, const char *logid, OrtEnv **out);
  ort_slot pad4[3];
  OrtStatus *(*CreateSession)(const OrtEnv *, const char *path, const OrtSessionOptions *,
                              OrtSession **out);
  ort_slot pad8;
  OrtStatus *(*Run)(OrtSession *, const OrtRunOptions *, const char *const *in_names,
                    const OrtValue *const *in, size_t nin, const char *const *out_names,
                    size_t nout, OrtValue **out);
  OrtStatus *(*CreateSessionOptions)(OrtSessionOptions **out);
  ort_slot pad11[2];
  OrtStatus *(*SetSessionExecutionMode)(OrtSessionOptions *, int mode);
  ort_slot pad14[9];
  OrtStatus *(*SetSessionGraphOptimizationLevel)(OrtSessionOptions *, int level);
  OrtStatus *(*SetIntraOpNumThreads)(OrtSessionOptions *, int n);
  OrtStatus *(*SetInterOpNumThreads)(OrtSessionOptions *, int n);
  ort_slot pad26[4];
  OrtStatus *(*SessionGetInputCount)(const OrtSession *, size_t *out);
  OrtStatus *(*SessionGetOutputCount)(const OrtSession *, size_t *out);
  ort_slot pad32;
  OrtStatus *(*SessionGetInputTypeInfo)(const OrtSession *, size_t i, OrtTypeInfo **out);
  OrtStatus *(*SessionGetOutputTypeInfo)(const OrtSession *, size_t i, OrtTypeInfo **out);
  ort_slot pad35;
  OrtStatus *(*SessionGetInputName)(const OrtSession *, size_t i, OrtAllocator *, char **out);
  OrtStatus *(*SessionGetOutputName)(const OrtSession *, size_t i, OrtAllocator *, char **out);
  ort_slot pad38[10];
  OrtStatus *(*CreateTensorAsOrtValue)(OrtAllocator *, const int64_t *shape, size_t ndim, int type,
                                       OrtValue **out);
  OrtStatus *(*CreateTensorWithDataAsOrtValue)(const OrtMemoryInfo *, void *data, size_t nbytes,
                                               const int64_t *shape, size_t ndim, int type,
                                               OrtValue **out);
  ort_slot pad50;
  OrtStatus *(*GetTensorMutableData)(OrtValue *, void **out);
  ort_slot pad52;
  OrtStatus *(*GetStringTensorDataLength)(const OrtValue *, size_t *len);
  OrtStatus *(*GetStringTensorContent)(const OrtValue *, void *s, size_t s_len, size_t *offsets,
                                       size_t n);
  OrtStatus *(*CastTypeInfoToTensorInfo)(const OrtTypeInfo *,
                                         const OrtTensorTypeAndShapeInfo **out);
  OrtStatus *(*GetOnnxTypeFromTypeInfo)(const OrtTypeInfo *, int *out);
  ort_slot pad57[3];
  OrtStatus *(*GetTensorElementType)(const OrtTensorTypeAndShapeInfo *, int *out);
  OrtStatus *(*GetDimensionsCount)(const OrtTensorTypeAndShapeInfo *, size_t *out);
  OrtStatus *(*GetDimensions)(const OrtTensorTypeAndShapeInfo *, int64_t *dims, size_t n);
  ort_slot pad63;
  OrtStatus *(*GetTensorShapeElementCount)(const OrtTensorTypeAndShapeInfo *, size_t *out);
  OrtStatus *(*GetTensorTypeAndShape)(const OrtValue *, OrtTensorTypeAndShapeInfo **out);
  ort_slot pad66;
  OrtStatus *(*GetValueType)(const OrtValue *, int *out);
  ort_slot pad68;
  OrtStatus *(*CreateCpuMemoryInfo)(int alloc_type, int mem_type, OrtMemoryInfo **out);
  ort_slot pad70[6];
  OrtStatus *(*AllocatorFree)(OrtAllocator *, void *p);
  ort_slot pad77;
  OrtStatus *(*GetAllocatorWithDefaultOptions)(OrtAllocator **out);
  ort_slot pad79;
  OrtStatus *(*GetValue)(const OrtValue *, int index, OrtAllocator *, OrtValue **out);
  OrtStatus *(*GetValueCount)(const OrtValue *, size_t *out);
  ort_slot pad82[11];
  void (*ReleaseStatus)(OrtStatus *);
  ort_slot pad94;
  void (*ReleaseSession)(OrtSession *);
  void (*ReleaseValue)(OrtValue *);
  ort_slot pad97;
  void (*ReleaseTypeInfo)(OrtTypeInfo *);
  void (*ReleaseTensorTypeAndShapeInfo)(OrtTensorTypeAndShapeInfo *);
  void (*ReleaseSessionOptions)(OrtSessionOptions *);
  ort_slot pad101[3];
  OrtStatus *(*CastTypeInfoToSequenceTypeInfo)(const OrtTypeInfo *,
                                               const OrtSequenceTypeInfo **out);
  ort_slot pad105[2];
  OrtStatus *(*GetSequenceElementType)(const OrtSequenceTypeInfo *, OrtTypeInfo **out);
  ort_slot pad108[144];
  OrtStatus *(*GetResizedStringTensorElementBuffer)(OrtValue *, size_t index, size_t len,
                                                    char **buffer);
};

#define ORT_SLOT(m, i)                                                                             \
  _Static_assert(offsetof(struct ort_api, m) / sizeof(void *) == (i), #m " is slot " #i)
ORT_SLOT(GetErrorCode, 1);
ORT_SLOT(GetErrorMessage, 2);
ORT_SLOT(CreateEnv, 3);
ORT_SLOT(CreateSession, 7);
ORT_SLOT(Run, 9);
ORT_SLOT(CreateSessionOptions, 10);
ORT_SLOT(SetSessionExecutionMode, 13);
ORT_SLOT(SetSessionGraphOptimizationLevel, 23);
ORT_SLOT(SetIntraOpNumThreads, 24);
ORT_SLOT(SetInterOpNumThreads, 25);
ORT_SLOT(SessionGetInputCount, 30);
ORT_SLOT(SessionGetOutputCount, 31);
ORT_SLOT(SessionGetInputTypeInfo, 33);
ORT_SLOT(SessionGetOutputTypeInfo, 34);
ORT_SLOT(SessionGetInputName, 36);
ORT_SLOT(SessionGetOutputName, 37);
ORT_SLOT(CreateTensorAsOrtValue, 48);
ORT_SLOT(CreateTensorWithDataAsOrtValue, 49);
ORT_SLOT(GetTensorMutableData, 51);
ORT_SLOT(GetStringTensorDataLength, 53);
ORT_SLOT(GetStringTensorContent, 54);
ORT_SLOT(CastTypeInfoToTensorInfo, 55);
ORT_SLOT(GetOnnxTypeFromTypeInfo, 56);
ORT_SLOT(GetTensorElementType, 60);
ORT_SLOT(GetDimensionsCount, 61);
ORT_SLOT(GetDimensions, 62);
ORT_SLOT(GetTensorShapeElementCount, 64);
ORT_SLOT(GetTensorTypeAndShape, 65);
ORT_SLOT(GetValueType, 67);
ORT_SLOT(CreateCpuMemoryInfo, 69);
ORT_SLOT(AllocatorFree, 76);
ORT_SLOT(GetAllocatorWithDefaultOptions, 78);
ORT_SLOT(GetValue, 80);
ORT_SLOT(GetValueCount, 81);
ORT_SLOT(ReleaseStatus, 93);
ORT_SLOT(ReleaseSession, 95);
ORT_SLOT(ReleaseValue, 96);
ORT_SLOT(ReleaseTypeInfo, 98);
ORT_SLOT(ReleaseTensorTypeAndShapeInfo, 99);
ORT_SLOT(ReleaseSessionOptions, 100);
ORT_SLOT(CastTypeInfoToSequenceTypeInfo, 104);
ORT_SLOT(GetSequenceElementType, 107);
ORT_SLOT(GetResizedStringTensorElementBuffer, 252);

struct ort_api_base {
  const struct ort_api *(*GetApi)(uint32_t version);
  const char *(*GetVersionString)(void);
};

/* GetResizedStringTensorElementBuffer (strings with any bytes, copied once)
 * arrived in 1.15; nothing newer is used. */
#define ORT_API_USED 15

enum {
  ORT_LOG_FATAL = 4,
  ORT_SEQUENTIAL = 0,
  ORT_OPT_ALL = 99,
  ORT_ARENA_ALLOCATOR = 1,
  ORT_MEM_DEFAULT = 0
};
enum { ORT_TYPE_TENSOR = 1, ORT_TYPE_SEQUENCE = 2, ORT_TYPE_MAP = 3 };
enum {
  ORT_INVALID_ARGUMENT = 2,
  ORT_NO_SUCHFILE = 3,
  ORT_ENGINE_ERROR = 5,
  ORT_RUNTIME_EXCEPTION = 6,
  ORT_EP_FAIL = 11
};
enum {
  ORT_FLOAT = 1,
  ORT_UINT8,
  ORT_INT8,
  ORT_UINT16,
  ORT_INT16,
  ORT_INT32,
  ORT_INT64,
  ORT_STRING,
  ORT_BOOL,
  ORT_FLOAT16,
  ORT_DOUBLE,
  ORT_UINT32,
  ORT_UINT64,
  ORT_COMPLEX64,
  ORT_COMPLEX128,
  ORT_BFLOAT16
};

_Static_assert(ORT_STRING == 8 && ORT_FLOAT16 == 10 && ORT_BFLOAT16 == 16,
               "ORT element type values");

static const char *const ort_type_names[] = {
    "UNDEFINED",      "FLOAT",      "UINT8",          "INT8",       "UINT16",   "INT16",
    "INT32",          "INT64",      "STRING",         "BOOL",       "FLOAT16",  "DOUBLE",
    "UINT32",         "UINT64",     "COMPLEX64",      "COMPLEX128", "BFLOAT16", "FLOAT8E4M3FN",
    "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4",      "INT4",     "FLOAT4E2M1",
    "UINT2",          "INT2",       "FLOAT8E8M0"};

static const char *ort_type_name(int t) {
  return t >= 0 && (size_t)t < sizeof ort_type_names / sizeof *ort_type_names ? ort_type_names[t]
                                                                              : "unknown";
}

/* ORT element type -> Kiln dtype; -1 for types Kiln cannot carry. */
static int onnx_dtype(int t) {
  switch (t) {
  case ORT_FLOAT: return SERVE_FP32;
  case ORT_DOUBLE: return SERVE_FP64;
  case ORT_FLOAT16: return SERVE_FP16;
  case ORT_BFLOAT16: return SERVE_BF16;
  case ORT_UINT8: return SERVE_UINT8;
  case ORT_UINT16: return SERVE_UINT16;
  case ORT_UINT32: return SERVE_UINT32;
  case ORT_UINT64: return SERVE_UINT64;
  case ORT_INT8: return SERVE_INT8;
  case ORT_INT16: return SERVE_INT16;
  case ORT_INT32: return SERVE_INT32;
  case ORT_INT64: return SERVE_INT64;
  case ORT_BOOL: return SERVE_BOOL;
  case ORT_STRING: return SERVE_BYTES;
  default: return -1;
  }
}

/* ---- the process-wide runtime -------------------------------------------------
 * One library, one environment, for the life of the process: ORT cannot be
 * unloaded, and its environment owns thread pools and the logging sink. A
 * failed attempt leaves nothing behind, so a corrected path can be tried. */
static struct {
  pthread_mutex_t mu;
  const struct ort_api *api;
  OrtEnv *env;
  OrtMemoryInfo *mem;
  OrtAllocator *alloc;
  char version[32];
  char path[512];
} ort = {.mu = PTHREAD_MUTEX_INITIALIZER};

static enum err_code onnx_code(int ort_code, bool at_load) {
  if (ort_code == ORT_RUNTIME_EXCEPTION || ort_code == ORT_ENGINE_ERROR || ort_code == ORT_EP_FAIL)
    return ERR_INTERNAL;
  if (at_load) return ort_code == ORT_NO_SUCHFILE ? ERR_IO : ERR_INVALID_PARAMETER_VALUE;
  return ort_code == ORT_INVALID_ARGUMENT ? ERR_INVALID_PARAMETER_VALUE : ERR_INTERNAL;
}

/* Turns a failed call's status into e and releases it (the message belongs
 * to the status, so it is copied first). */
static int onnx_fail(const struct ort_api *api, OrtStatus *st, bool at_load, struct err *e,
                     const char *what) {
  int code = api->GetErrorCode(st);
  const char *m = api->GetErrorMessage(st);
  char msg[224];
  str_copy(msg, sizeof msg, m ? m : "no message");
  api->ReleaseStatus(st);
  return err_set(e, onnx_code(code, at_load), "%s: %s", what, msg);
}

#define ORT_CHECK(api, call, at_load, e, what)                                                     \
  do {                                                                                             \
    OrtStatus *st_ = (call);                                                                       \
    if (st_) return onnx_fail((api), st_, (at_load), (e), (what));                                 \
  } while (0)

static int onnx_version_ok(const char *v) {
  char *end;
  long major = strtol(v, &end, 10);
  if (end == v || *end != '.') return 0;
  const char *p = end + 1;
  long minor = strtol(p, &end, 10);
  if (end == p) return 0;
  return major == 1 && minor >= ORT_API_USED;
}

static int onnx_runtime_open(const struct serve_config *cfg, struct err *e) {
  const char *path = cfg && cfg->onnx_library && *cfg->onnx_library ? cfg->onnx_library : NULL;
  /* the server flag's variable first, then the name the bootstrap docs use */
  if (!path || !*path) path = getenv("KILN_ONNX_RUNTIME");
  if (!path || !*path) path = getenv("KILN_ONNXRUNTIME");
  if (!path || !*path) path = "deps/libonnxruntime.so.1";

  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    if (access(path, F_OK) != 0)
      return err_set(
          e, ERR_INVALID_STATE,
          "ONNX Runtime library not found at %s (set --onnx-runtime); run scripts/bootstrap", path);
    const char *why = dlerror();
    return err_set(e, ERR_INVALID_STATE, "cannot load the ONNX Runtime library at %s: %s", path,
                   why ? why : "unknown error");
  }
  /* Never dlclose: ORT does not support being unloaded, and a rejected
   * library costs only its mapping. */
  const struct ort_api_base *(*get_base)(void);
  *(void **)&get_base = dlsym(h, "OrtGetApiBase");
  if (!get_base)
    return err_set(e, ERR_INVALID_STATE, "%s is not an ONNX Runtime library (no OrtGetApiBase)",
                   path);
  const struct ort_api_base *base = get_base();
  if (!base || !base->GetApi || !base->GetVersionString)
    return err_set(e, ERR_INVALID_STATE, "%s: OrtGetApiBase returned no API", path);
  const char *version = base->GetVersionString();
  if (!version) version = "unknown";
  if (!onnx_version_ok(version))
    return err_set(e, ERR_INVALID_STATE,
                   "ONNX Runtime at %s is version %.40s; Kiln needs 1.%d or later (1.30 tested)",
                   path, version, ORT_API_USED);
  const struct ort_api *api = base->GetApi(ORT_API_USED);
  if (!api)
    return err_set(e, ERR_INVALID_STATE, "ONNX Runtime %.40s at %s does not offer API version %d",
                   version, path, ORT_API_USED);

  /* Telemetry is on by default in this build (files under the cache dir and
   * /tmp, an uploader thread); a self-hosted server never phones home. It
   * must be set before CreateEnv. */
  setenv("ORT_DISABLE_TELEMETRY", "1", 1);
  OrtEnv *env = NULL;
  /* FATAL only: every error also comes back as a status, and ORT's own
   * coloured lines would interleave with Kiln's JSON log. */
  ORT_CHECK(api, api->CreateEnv(ORT_LOG_FATAL, "kiln", &env), true, e, "ONNX Runtime environment");
  OrtMemoryInfo *mem = NULL;
  ORT_CHECK(api, api->CreateCpuMemoryInfo(ORT_ARENA_ALLOCATOR, ORT_MEM_DEFAULT, &mem), true, e,
            "ONNX Runtime memory info");
  OrtAllocator *alloc = NULL;
  ORT_CHECK(api, api->GetAllocatorWithDefaultOptions(&alloc), true, e, "ONNX Runtime allocator");
  /* env and mem live as long as the process: sessions may outlive any
   * single model, and ORT tears its environment down at exit itself. */
  ort.env = env;
  ort.mem = mem;
  ort.alloc = alloc;
  str_copy(ort.version, sizeof ort.version, version);
  str_copy(ort.path, sizeof ort.path, path);
  ort.api = api;
  log_info("serve.onnx_runtime", "ONNX Runtime %s loaded from %s", ort.version, ort.path);
  return 0;
}

/* The runtime, opened on first use. Later calls get the same one whatever
 * path they name: a process can hold only one ORT. */
static int onnx_runtime(const struct serve_config *cfg, const struct ort_api **api, struct err *e) {
  pthread_mutex_lock(&ort.mu);
  int rc = ort.api ? 0 : onnx_runtime_open(cfg, e);
  *api = ort.api;
  pthread_mutex_unlock(&ort.mu);
  return rc;
}

/* ---- models ------------------------------------------------------------------- */
#define ONNX_MAX_IO 4096
#define ONNX_MAX_THREADS 256

struct onnx_io {
  char *name;
  int kind;   /* ORT_TYPE_TENSOR or ORT_TYPE_SEQUENCE */
  int elem;   /* ORT element type (tensors) */
  int seq_of; /* sequences: ORT_TYPE_MAP or ORT_TYPE_TENSOR */
};

struct onnx_model {
  const struct ort_api *api;
  OrtSession *sess;
  int nin, nout;
  struct onnx_io *in, *out;
  const char **in_names, **out_names; /* views of in[i].name / out[i].name for Run */
  int label, proba;                   /* classifier outputs, -1 when not a classifier */
  int threads;
  uint64_t mem;
};

static void onnx_model_free(struct onnx_model *m) {
  if (!m) return;
  if (m->sess) m->api->ReleaseSession(m->sess);
  for (int i = 0; m->in && i < m->nin; i++) free(m->in[i].name);
  for (int i = 0; m->out && i < m->nout; i++) free(m->out[i].name);
  free(m->in);
  free(m->out);
  free(m->in_names);
  free(m->out_names);
  free(m);
}

/* The name at index i, copied out of ORT's allocator. */
static int onnx_io_name(struct onnx_model *m, bool input, size_t i, char **out, struct err *e) {
  const struct ort_api *api = m->api;
  char *n = NULL;
  ORT_CHECK(
      api,
      (input ? api->SessionGetInputName : api->SessionGetOutputName)(m->sess, i, ort.alloc, &n),
      true, e, "reading the model's names");
  size_t len = n ? strlen(n) : 0;
  int rc = 0;
  if (len == 0 || len >= SERVE_NAME_MAX)
    rc = err_set(e, ERR_INVALID_PARAMETER_VALUE,
                 "the model's %s %zu has a name of %zu bytes (1 to %d allowed)",
                 input ? "input" : "output", i, len, SERVE_NAME_MAX - 1);
  else if (!(*out = strdup(n)))
    rc = err_set(e, ERR_NO_MEMORY, "out of memory reading the model's names");
  OrtStatus *st = api->AllocatorFree(ort.alloc, n);
  if (st) api->ReleaseStatus(st);
  return rc;
}

/* Element type and shape of a tensor type into io and spec. */
static int onnx_tensor_spec(const struct ort_api *api, const OrtTypeInfo *ti, const char *role,
                            struct onnx_io *io, struct serve_tensor_spec *sp, struct err *e) {
  const OrtTensorTypeAndShapeInfo *tt = NULL;
  ORT_CHECK(api, api->CastTypeInfoToTensorInfo(ti, &tt), true, e, "reading the model's types");
  if (!tt)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s '%s' has no tensor type", role, io->name);
  int elem = 0;
  size_t nd = 0;
  ORT_CHECK(api, api->GetTensorElementType(tt, &elem), true, e, "reading the model's types");
  ORT_CHECK(api, api->GetDimensionsCount(tt, &nd), true, e, "reading the model's shapes");
  int dt = onnx_dtype(elem);
  if (dt < 0)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "%s '%s' has element type %s, which Kiln cannot serve", role, io->name,
                   ort_type_name(elem));
  if (nd > SERVE_MAX_DIMS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "%s '%s' has %zu dimensions (Kiln serves up to %d)", role, io->name, nd,
                   SERVE_MAX_DIMS);
  int64_t dims[SERVE_MAX_DIMS];
  if (nd) ORT_CHECK(api, api->GetDimensions(tt, dims, nd), true, e, "reading the model's shapes");
  io->kind = ORT_TYPE_TENSOR;
  io->elem = elem;
  sp->dtype = (enum serve_dtype)dt;
  sp->ndim = (int)nd;
  /* symbolic ("batch") and unknown dimensions both read as -1 or below */
  for (size_t d = 0; d < nd; d++) sp->shape[d] = dims[d] < 0 ? -1 : dims[d];
  return 0;
}

static int onnx_describe_io(struct onnx_model *m, bool input, int i, struct serve_tensor_spec *sp,
                            struct err *e) {
  const struct ort_api *api = m->api;
  struct onnx_io *io = input ? &m->in[i] : &m->out[i];
  const char *role = input ? "input" : "output";
  int rc = onnx_io_name(m, input, (size_t)i, &io->name, e);
  if (rc < 0) return rc;
  str_copy(sp->name, sizeof sp->name, io->name);
  OrtTypeInfo *ti = NULL;
  ORT_CHECK(api,
            (input ? api->SessionGetInputTypeInfo : api->SessionGetOutputTypeInfo)(m->sess,
                                                                                   (size_t)i, &ti),
            true, e, "reading the model's types");
  int kind = 0;
  OrtStatus *st = api->GetOnnxTypeFromTypeInfo(ti, &kind);
  if (st) {
    api->ReleaseTypeInfo(ti);
    return onnx_fail(api, st, true, e, "reading the model's types");
  }
  if (kind == ORT_TYPE_TENSOR) {
    rc = onnx_tensor_spec(api, ti, role, io, sp, e);
  } else if (kind == ORT_TYPE_SEQUENCE && !input) {
    /* ZipMap and friends: one JSON value per element (per row for ZipMap) */
    const OrtSequenceTypeInfo *sq = NULL;
    OrtTypeInfo *el = NULL;
    int ek = 0;
    if ((st = api->CastTypeInfoToSequenceTypeInfo(ti, &sq)) || !sq ||
        (st = api->GetSequenceElementType(sq, &el)) || (st = api->GetOnnxTypeFromTypeInfo(el, &ek)))
      rc = st ? onnx_fail(api, st, true, e, "reading the model's types")
              : err_set(e, ERR_INVALID_PARAMETER_VALUE, "output '%s': unreadable sequence type",
                        io->name);
    else if (ek != ORT_TYPE_MAP && ek != ORT_TYPE_TENSOR)
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "output '%s' is a sequence of neither maps nor tensors, which Kiln cannot serve",
                   io->name);
    api->ReleaseTypeInfo(el);
    io->kind = ORT_TYPE_SEQUENCE;
    io->seq_of = ek;
    sp->dtype = SERVE_BYTES;
    sp->ndim = 1;
    sp->shape[0] = -1;
  } else {
    static const char *const kinds[] = {"unknown", "tensor",        "sequence", "map",
                                        "opaque",  "sparse tensor", "optional"};
    rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s '%s' is of ONNX type %s; Kiln serves %s", role,
                 io->name, kind >= 0 && kind < 7 ? kinds[kind] : "unknown",
                 input ? "tensor inputs only" : "tensor and sequence outputs only");
  }
  api->ReleaseTypeInfo(ti);
  return rc;
}

/* Classifiers (ai.onnx.ml, skl2onnx) give two outputs: labels (INT64 or
 * STRING, one per row) and probabilities (a ZipMap sequence or an [N, C]
 * float tensor). Knowing which is which lets opts.proba pick one. */
static void onnx_find_classifier(struct onnx_model *m, const struct serve_signature *sig) {
  m->label = m->proba = -1;
  if (m->nout != 2) return;
  for (int l = 0; l < 2; l++) {
    int p = 1 - l;
    const struct serve_tensor_spec *ls = &sig->outputs[l], *ps = &sig->outputs[p];
    bool is_label = m->out[l].kind == ORT_TYPE_TENSOR &&
                    (m->out[l].elem == ORT_INT64 || m->out[l].elem == ORT_STRING) && ls->ndim == 1;
    bool is_proba = (m->out[p].kind == ORT_TYPE_SEQUENCE && m->out[p].seq_of == ORT_TYPE_MAP) ||
                    (m->out[p].kind == ORT_TYPE_TENSOR &&
                     (ps->dtype == SERVE_FP32 || ps->dtype == SERVE_FP64) && ps->ndim == 2);
    if (is_label && is_proba) {
      m->label = l;
      m->proba = p;
      return;
    }
  }
}

/* The registry's MLflow signature names the columns of a table model:
 * {"inputs": [{"name","type"}...]} (the list may arrive as JSON text). */
static int onnx_columns(const json_t *rs, struct serve_signature *sig, struct err *e) {
  if (!rs || !json_is_object(rs)) return 0;
  const json_t *cols = json_object_get(rs, "inputs");
  json_t *parsed = NULL;
  if (json_is_string(cols)) {
    struct err ignore;
    parsed = json_parse(json_string_value(cols), json_string_length(cols), &ignore);
    cols = parsed;
  }
  int rc = 0;
  size_t n = json_is_array(cols) ? json_array_size(cols) : 0;
  const struct serve_tensor_spec *in = sig->ninputs == 1 ? &sig->inputs[0] : NULL;
  bool fits = n > 0 && n <= 65536 && in && in->ndim == 2 && in->shape[0] == -1 &&
              (in->shape[1] == (int64_t)n || in->shape[1] == -1);
  for (size_t i = 0; fits && i < n; i++) {
    const json_t *c = json_array_get(cols, i);
    const char *type = json_string_value(json_object_get(c, "type"));
    /* tensor-based signatures name tensors, not columns */
    if (!json_is_string(json_object_get(c, "name")) || (type && strcmp(type, "tensor") == 0))
      fits = false;
  }
  if (fits) {
    sig->columns = calloc(n, sizeof *sig->columns);
    if (!sig->columns) rc = err_set(e, ERR_NO_MEMORY, "out of memory for the signature's columns");
    for (size_t i = 0; rc == 0 && i < n; i++) {
      sig->columns[i] = strdup(json_string_value(json_object_get(json_array_get(cols, i), "name")));
      sig->ncolumns = (int)i + 1;
      if (!sig->columns[i])
        rc = err_set(e, ERR_NO_MEMORY, "out of memory for the signature's columns");
    }
  }
  if (parsed) json_decref(parsed);
  return rc;
}

static int onnx_session(struct onnx_model *m, const char *path, struct err *e) {
  const struct ort_api *api = m->api;
  OrtSessionOptions *so = NULL;
  ORT_CHECK(api, api->CreateSessionOptions(&so), true, e, "ONNX Runtime session options");
  OrtStatus *st;
  /* One batch is one Run on one executor thread: parallelism comes from the
   * instances and the intra-op pool, never from running nodes side by side. */
  if ((st = api->SetIntraOpNumThreads(so, m->threads)) || (st = api->SetInterOpNumThreads(so, 1)) ||
      (st = api->SetSessionExecutionMode(so, ORT_SEQUENTIAL)) ||
      (st = api->SetSessionGraphOptimizationLevel(so, ORT_OPT_ALL)) ||
      (st = api->CreateSession(ort.env, path, so, &m->sess))) {
    api->ReleaseSessionOptions(so);
    return onnx_fail(api, st, true, e, "ONNX Runtime cannot load the model");
  }
  api->ReleaseSessionOptions(so);
  return 0;
}

static int onnx_load(const struct serve_load_opts *o, void **model, struct serve_signature *sig,
                     struct err *e) {
  *model = NULL;
  memset(sig, 0, sizeof *sig);
  if (!o || !o->path || !*o->path)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "no model file to load");
  const struct ort_api *api = NULL;
  int rc = onnx_runtime(o->cfg, &api, e);
  if (rc < 0) return rc;
  int threads =
      o->threads > 0 ? o->threads : (o->cfg && o->cfg->onnx_threads > 0 ? o->cfg->onnx_threads : 1);
  if (threads > ONNX_MAX_THREADS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%d intra-op threads asked for (at most %d)",
                   threads, ONNX_MAX_THREADS);
  struct stat sb;
  if (stat(o->path, &sb) != 0)
    return err_set(e, ERR_IO, "cannot read the model file %s: %s", o->path, strerror(errno));

  struct onnx_model *m = calloc(1, sizeof *m);
  if (!m) return err_set(e, ERR_NO_MEMORY, "out of memory loading the model");
  m->api = api;
  m->threads = threads;
  rc = onnx_session(m, o->path, e);
  size_t nin = 0, nout = 0;
  OrtStatus *st = NULL;
  if (rc == 0 && ((st = api->SessionGetInputCount(m->sess, &nin)) ||
                  (st = api->SessionGetOutputCount(m->sess, &nout))))
    rc = onnx_fail(api, st, true, e, "reading the model's inputs");
  if (rc == 0 && (nin > ONNX_MAX_IO || nout == 0 || nout > ONNX_MAX_IO))
    rc = err_set(e, ERR_INVALID_PARAMETER_VALUE,
                 "the model has %zu inputs and %zu outputs (1 to %d outputs allowed)", nin, nout,
                 ONNX_MAX_IO);
  if (rc == 0) {
    m->nin = sig->ninputs = (int)nin;
    m->nout = sig->noutputs = (int)nout;
    m->in = calloc(nin + 1, sizeof *m->in);
    m->out = calloc(nout, sizeof *m->out);
    m->in_names = calloc(nin + 1, sizeof *m->in_names);
    m->out_names = calloc(nout, sizeof *m->out_names);
    sig->inputs = calloc(nin + 1, sizeof *sig->inputs);
    sig->outputs = calloc(nout, sizeof *sig->outputs);
    if (!m->in || !m->out || !m->in_names || !m->out_names || !sig->inputs || !sig->outputs)
      rc = err_set(e, ERR_NO_MEMORY, "out of memory loading the model");
  }
  for (int i = 0; rc == 0 && i < m->nin; i++)
    if ((rc = onnx_describe_io(m, true, i, &sig->inputs[i], e)) == 0)
      m->in_names[i] = m->in[i].name;
  for (int i = 0; rc == 0 && i < m->nout; i++)
    if ((rc = onnx_describe_io(m, false, i, &sig->outputs[i], e)) == 0)
      m->out_names[i] = m->out[i].name;
  if (rc == 0) {
    sig->batched = m->nin > 0;
    for (int i = 0; i < m->nin; i++)
      if (sig->inputs[i].ndim < 1 || sig->inputs[i].shape[0] != -1) sig->batched = false;
    sig->allow_nan = false;
    onnx_find_classifier(m, sig);
    rc = onnx_columns(o->registry_signature, sig, e);
  }
  if (rc < 0) {
    onnx_model_free(m);
    serve_signature_fini(sig);
    return rc;
  }
  /* ORT keeps the initializers (weights) and, with ENABLE_ALL, an optimised
   * copy of the graph: about twice the file, plus arena growth per batch. */
  m->mem = (uint64_t)sb.st_size * 2 + (1u << 20);
  *model = m;
  return 0;
}

/* ---- predict ------------------------------------------------------------------ */

/* Any zero-length buffer handed to ORT must still be a valid pointer. */
static char onnx_empty[8];

/* V2's BYTES form (u32 LE length + bytes, per element) into a new ORT string
 * tensor; every length is checked against the buffer. */
static int onnx_string_input(const struct ort_api *api, const struct serve_tensor *t, OrtValue **v,
                             struct err *e) {
  int64_t count = serve_shape_count(t->shape, t->ndim);
  /* every element takes at least its 4-byte length: refuse a shape the
   * buffer cannot hold before ORT allocates that many strings */
  if (count < 0 || (uint64_t)count > t->nbytes / 4)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "input '%s': %zu bytes cannot hold %lld BYTES elements", t->name, t->nbytes,
                   (long long)count);
  ORT_CHECK(api, api->CreateTensorAsOrtValue(ort.alloc, t->shape, (size_t)t->ndim, ORT_STRING, v),
            false, e, "ONNX Runtime string tensor");
  const unsigned char *p = t->data;
  size_t off = 0;
  for (int64_t i = 0; i < count; i++) {
    if (t->nbytes - off < 4 || !p)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "input '%s': BYTES data ends inside element %lld", t->name, (long long)i);
    uint32_t len = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 |
                   (uint32_t)p[off + 3] << 24;
    off += 4;
    if (t->nbytes - off < len)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "input '%s': element %lld is %u bytes but only %zu remain", t->name,
                     (long long)i, len, t->nbytes - off);
    char *dst = NULL;
    ORT_CHECK(api, api->GetResizedStringTensorElementBuffer(*v, (size_t)i, len, &dst), false, e,
              "ONNX Runtime string tensor");
    if (len) memcpy(dst, p + off, len);
    off += len;
  }
  if (off != t->nbytes)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "input '%s': %zu bytes left after %lld BYTES elements", t->name, t->nbytes - off,
                   (long long)count);
  return 0;
}

static int onnx_input(const struct onnx_model *m, int i, const struct serve_tensor *t, OrtValue **v,
                      struct err *e) {
  const struct ort_api *api = m->api;
  enum serve_dtype want = (enum serve_dtype)onnx_dtype(m->in[i].elem);
  if (t->dtype != want)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "input '%s' must be %s, got %s", m->in[i].name,
                   serve_dtype_name(want), serve_dtype_name(t->dtype));
  if (t->ndim < 0 || t->ndim > SERVE_MAX_DIMS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "input '%s' has %d dimensions", m->in[i].name,
                   t->ndim);
  if (want == SERVE_BYTES) return onnx_string_input(api, t, v, e);
  int64_t count = serve_shape_count(t->shape, t->ndim);
  size_t es = serve_dtype_size(want);
  if (count < 0 || (uint64_t)count > SIZE_MAX / es || (size_t)count * es != t->nbytes ||
      (t->nbytes && !t->data))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "input '%s': %zu bytes do not hold a %s tensor of that shape", m->in[i].name,
                   t->nbytes, serve_dtype_name(want));
  /* ORT only reads an input it did not allocate; the cast drops const for
   * the API's sake, not to write. */
  void *data = t->nbytes ? t->data : onnx_empty;
  ORT_CHECK(api,
            api->CreateTensorWithDataAsOrtValue(ort.mem, data, t->nbytes, t->shape, (size_t)t->ndim,
                                                m->in[i].elem, v),
            false, e, "ONNX Runtime input");
  return 0;
}

static float onnx_half(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | man << 13;
  } else if (exp) {
    bits = sign | (exp + 112) << 23 | man << 13;
  } else if (man) { /* subnormal: normalise */
    int sh = 0;
    while (!(man & 0x400)) man <<= 1, sh++;
    bits = sign | (uint32_t)(113 - sh) << 23 | (man & 0x3ff) << 13;
  } else {
    bits = sign;
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

/* One element of a numeric tensor as JSON (non-finite floats become null:
 * JSON has no NaN). */
static json_t *onnx_num_json(int elem, const void *base, size_t i) {
  const char *p = base;
  double d;
  switch (elem) {
  case ORT_BOOL: return json_boolean(p[i] != 0);
  case ORT_UINT8: return json_integer(((const uint8_t *)p)[i]);
  case ORT_INT8: return json_integer(((const int8_t *)p)[i]);
  case ORT_UINT16: return json_integer(((const uint16_t *)p)[i]);
  case ORT_INT16: return json_integer(((const int16_t *)p)[i]);
  case ORT_UINT32: return json_integer(((const uint32_t *)p)[i]);
  case ORT_INT32: return json_integer(((const int32_t *)p)[i]);
  case ORT_INT64: return json_integer(((const int64_t *)p)[i]);
  case ORT_UINT64: {
    uint64_t u = ((const uint64_t *)p)[i];
    return u <= INT64_MAX ? json_integer((json_int_t)u) : json_real((double)u);
  }
  case ORT_FLOAT: d = ((const float *)p)[i]; break;
  case ORT_DOUBLE: d = ((const double *)p)[i]; break;
  case ORT_FLOAT16: d = onnx_half(((const uint16_t *)p)[i]); break;
  case ORT_BFLOAT16: {
    uint32_t bits = (uint32_t)((const uint16_t *)p)[i] << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    d = f;
    break;
  }
  default: return json_null();
  }
  json_t *r = json_real(d);
  return r ? r : json_null();
}

/* A string tensor's contents: one buffer and count + 1 offsets (the last is
 * the total), so element i is s[off[i] .. off[i+1]). */
struct onnx_strings {
  char *s;
  size_t *off;
};

static int onnx_read_strings(const struct ort_api *api, const OrtValue *v, size_t count,
                             struct onnx_strings *out, struct err *e) {
  memset(out, 0, sizeof *out);
  size_t total = 0;
  ORT_CHECK(api, api->GetStringTensorDataLength(v, &total), false, e, "reading a string output");
  if (count >= SIZE_MAX / sizeof(size_t) - 1)
    return err_set(e, ERR_NO_MEMORY, "string output too large");
  out->s = malloc(total + 1);
  out->off = malloc((count + 1) * sizeof *out->off);
  if (!out->s || !out->off) {
    free(out->s), free(out->off);
    return err_set(e, ERR_NO_MEMORY, "out of memory for a %zu-byte string output", total);
  }
  OrtStatus *st = count ? api->GetStringTensorContent(v, out->s, total, out->off, count) : NULL;
  if (st) {
    free(out->s), free(out->off);
    return onnx_fail(api, st, false, e, "reading a string output");
  }
  out->off[count] = total;
  for (size_t i = 0; i < count; i++)
    if (out->off[i] > out->off[i + 1]) {
      free(out->s), free(out->off);
      return err_set(e, ERR_INTERNAL, "ONNX Runtime returned inconsistent string offsets");
    }
  return 0;
}

/* Type, shape and element count of a tensor value. */
static int onnx_tensor_info(const struct ort_api *api, const OrtValue *v, int *elem, int *ndim,
                            int64_t *shape, size_t *count, struct err *e) {
  OrtTensorTypeAndShapeInfo *ti = NULL;
  ORT_CHECK(api, api->GetTensorTypeAndShape(v, &ti), false, e, "reading an output");
  size_t nd = 0;
  OrtStatus *st;
  int rc = 0;
  if ((st = api->GetTensorElementType(ti, elem)) || (st = api->GetDimensionsCount(ti, &nd)))
    rc = onnx_fail(api, st, false, e, "reading an output");
  else if (nd > SERVE_MAX_DIMS)
    rc = err_set(e, ERR_INTERNAL, "an output has %zu dimensions (Kiln serves up to %d)", nd,
                 SERVE_MAX_DIMS);
  else if ((nd && (st = api->GetDimensions(ti, shape, nd))) ||
           (st = api->GetTensorShapeElementCount(ti, count)))
    rc = onnx_fail(api, st, false, e, "reading an output");
  *ndim = (int)nd;
  api->ReleaseTensorTypeAndShapeInfo(ti);
  return rc;
}

/* A tensor as nested JSON arrays (scalars for rank 0); *pos walks the
 * elements in row-major order. */
static json_t *onnx_nested(int elem, const void *data, const struct onnx_strings *s,
                           const int64_t *shape, int ndim, size_t *pos) {
  if (ndim == 0) {
    size_t i = (*pos)++;
    if (elem == ORT_STRING) {
      /* JSON text must be UTF-8; other bytes are not representable */
      json_t *j = json_stringn(s->s + s->off[i], s->off[i + 1] - s->off[i]);
      return j ? j : json_null();
    }
    return onnx_num_json(elem, data, i);
  }
  json_t *a = json_array();
  for (int64_t k = 0; a && k < shape[0]; k++)
    if (json_array_append_new(a, onnx_nested(elem, data, s, shape + 1, ndim - 1, pos)) < 0) {
      json_decref(a);
      return NULL;
    }
  return a;
}

static int onnx_tensor_json(const struct ort_api *api, OrtValue *v, json_t **out, struct err *e) {
  int elem = 0, nd = 0;
  int64_t shape[SERVE_MAX_DIMS];
  size_t count = 0;
  int rc = onnx_tensor_info(api, v, &elem, &nd, shape, &count, e);
  if (rc < 0) return rc;
  struct onnx_strings s = {0};
  void *data = NULL;
  if (elem == ORT_STRING) {
    if ((rc = onnx_read_strings(api, v, count, &s, e)) < 0) return rc;
  } else if (onnx_dtype(elem) < 0) {
    return err_set(e, ERR_INTERNAL, "a sequence holds %s tensors, which Kiln cannot serve",
                   ort_type_name(elem));
  } else {
    ORT_CHECK(api, api->GetTensorMutableData(v, &data), false, e, "reading an output");
  }
  size_t pos = 0;
  *out = onnx_nested(elem, data, &s, shape, nd, &pos);
  free(s.s), free(s.off);
  return *out ? 0 : err_set(e, ERR_NO_MEMORY, "out of memory converting an output to JSON");
}

/* map<int64|string, V> as a JSON object with string keys (JSON's only kind). */
static int onnx_map_json(const struct ort_api *api, const OrtValue *map, json_t **out,
                         struct err *e) {
  OrtValue *kv[2] = {NULL, NULL};
  json_t *keys = NULL, *vals = NULL;
  OrtStatus *st;
  int rc = 0;
  if ((st = api->GetValue(map, 0, ort.alloc, &kv[0])) ||
      (st = api->GetValue(map, 1, ort.alloc, &kv[1])))
    rc = onnx_fail(api, st, false, e, "reading a map output");
  if (rc == 0) rc = onnx_tensor_json(api, kv[0], &keys, e);
  if (rc == 0) rc = onnx_tensor_json(api, kv[1], &vals, e);
  if (rc == 0 && (!json_is_array(keys) || !json_is_array(vals) ||
                  json_array_size(keys) != json_array_size(vals)))
    rc = err_set(e, ERR_INTERNAL, "a map output has keys and values of different lengths");
  json_t *obj = rc == 0 ? json_object() : NULL;
  if (rc == 0 && !obj) rc = err_set(e, ERR_NO_MEMORY, "out of memory converting a map output");
  for (size_t i = 0; rc == 0 && i < json_array_size(keys); i++) {
    json_t *k = json_array_get(keys, i);
    char num[24];
    const char *ks = json_string_value(k);
    if (json_is_integer(k)) {
      snprintf(num, sizeof num, "%lld", (long long)json_integer_value(k));
      ks = num;
    }
    if (!ks)
      rc = err_set(e, ERR_INTERNAL, "a map output has keys that are neither integers nor strings");
    else if (json_object_setn_nocheck(obj, ks, strlen(ks), json_array_get(vals, i)) < 0)
      rc = err_set(e, ERR_NO_MEMORY, "out of memory converting a map output");
  }
  json_decref(keys);
  json_decref(vals);
  api->ReleaseValue(kv[0]);
  api->ReleaseValue(kv[1]);
  if (rc < 0)
    json_decref(obj);
  else
    *out = obj;
  return rc;
}

static int onnx_sequence_output(const struct ort_api *api, OrtValue *v, struct serve_tensor *t,
                                struct err *e) {
  size_t n = 0;
  ORT_CHECK(api, api->GetValueCount(v, &n), false, e, "reading a sequence output");
  if (n > INT32_MAX) return err_set(e, ERR_INTERNAL, "a sequence output of %zu elements", n);
  json_t *arr = json_array();
  if (!arr) return err_set(e, ERR_NO_MEMORY, "out of memory converting a sequence output");
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    OrtValue *el = NULL;
    int kind = 0;
    json_t *j = NULL;
    OrtStatus *st;
    if ((st = api->GetValue(v, (int)i, ort.alloc, &el)) || (st = api->GetValueType(el, &kind)))
      rc = onnx_fail(api, st, false, e, "reading a sequence output");
    else if (kind == ORT_TYPE_MAP)
      rc = onnx_map_json(api, el, &j, e);
    else if (kind == ORT_TYPE_TENSOR)
      rc = onnx_tensor_json(api, el, &j, e);
    else
      rc = err_set(e, ERR_INTERNAL, "a sequence output holds values of ONNX type %d", kind);
    if (rc == 0 && json_array_append_new(arr, j) < 0)
      rc = err_set(e, ERR_NO_MEMORY, "out of memory");
    api->ReleaseValue(el);
  }
  if (rc < 0) {
    json_decref(arr);
    return rc;
  }
  t->dtype = SERVE_BYTES;
  t->ndim = 1;
  t->shape[0] = (int64_t)n;
  t->json = arr;
  return 0;
}

static int onnx_tensor_output(const struct ort_api *api, OrtValue *v, struct serve_tensor *t,
                              struct err *e) {
  int elem = 0, nd = 0;
  int64_t shape[SERVE_MAX_DIMS];
  size_t count = 0;
  int rc = onnx_tensor_info(api, v, &elem, &nd, shape, &count, e);
  if (rc < 0) return rc;
  int dt = onnx_dtype(elem);
  if (dt < 0)
    return err_set(e, ERR_INTERNAL, "output '%s' is %s, which Kiln cannot serve", t->name,
                   ort_type_name(elem));
  if (dt != SERVE_BYTES) {
    char name[SERVE_NAME_MAX];
    str_copy(name, sizeof name, t->name);
    if ((rc = serve_tensor_alloc(t, name, (enum serve_dtype)dt, shape, nd, e)) < 0) return rc;
    if (t->nbytes != count * serve_dtype_size((enum serve_dtype)dt))
      return err_set(e, ERR_INTERNAL, "output '%s': shape and element count disagree", name);
    void *src = NULL;
    ORT_CHECK(api, api->GetTensorMutableData(v, &src), false, e, "reading an output");
    if (t->nbytes) memcpy(t->data, src, t->nbytes);
    return 0;
  }
  struct onnx_strings s;
  if ((rc = onnx_read_strings(api, v, count, &s, e)) < 0) return rc;
  size_t total = s.off[count];
  if (total > SIZE_MAX - 4 * count - 1) rc = err_set(e, ERR_NO_MEMORY, "string output too large");
  unsigned char *d = rc == 0 ? malloc(total + 4 * count + 1) : NULL;
  if (rc == 0 && !d) rc = err_set(e, ERR_NO_MEMORY, "out of memory for a string output");
  size_t w = 0;
  for (size_t i = 0; rc == 0 && i < count; i++) {
    size_t len = s.off[i + 1] - s.off[i];
    if (len > UINT32_MAX) {
      rc = err_set(e, ERR_INTERNAL, "output '%s': a string of %zu bytes", t->name, len);
      break;
    }
    for (int b = 0; b < 4; b++) d[w++] = (unsigned char)(len >> (8 * b));
    memcpy(d + w, s.s + s.off[i], len);
    w += len;
  }
  free(s.s), free(s.off);
  if (rc < 0) {
    free(d);
    return rc;
  }
  t->dtype = SERVE_BYTES;
  t->ndim = nd;
  memcpy(t->shape, shape, (size_t)nd * sizeof *shape);
  t->data = d;
  t->nbytes = w;
  t->owned = true;
  return 0;
}

/* Which outputs to compute: the ones named, or the probabilities alone
 * (opts.proba), or all of them. */
static int onnx_pick_outputs(const struct onnx_model *m, const struct serve_predict_opts *po,
                             int *sel, int *n, struct err *e) {
  if (po && po->margin)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "ONNX models have no raw margin output");
  if (po && po->outputs && po->noutputs > 0) {
    if (po->noutputs > m->nout)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%d outputs requested; the model has %d",
                     po->noutputs, m->nout);
    for (int k = 0; k < po->noutputs; k++) {
      const char *want = po->outputs[k];
      sel[k] = -1;
      for (int i = 0; want && i < m->nout; i++)
        if (strcmp(want, m->out[i].name) == 0) sel[k] = i;
      if (sel[k] < 0)
        return err_set(e, ERR_INVALID_PARAMETER_VALUE, "the model has no output named '%.128s'",
                       want ? want : "");
      for (int j = 0; j < k; j++)
        if (sel[j] == sel[k])
          return err_set(e, ERR_INVALID_PARAMETER_VALUE, "output '%s' requested twice", want);
    }
    *n = po->noutputs;
    return 0;
  }
  if (po && po->proba) {
    if (m->proba < 0)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "this model has no class probabilities output");
    sel[0] = m->proba;
    *n = 1;
    return 0;
  }
  for (int i = 0; i < m->nout; i++) sel[i] = i;
  *n = m->nout;
  return 0;
}

static int onnx_predict(void *model, int instance, const struct serve_tensor *in, int nin,
                        const struct serve_predict_opts *po, struct serve_tensor **out, int *nout,
                        struct err *e) {
  struct onnx_model *m = model;
  const struct ort_api *api = m->api;
  *out = NULL;
  *nout = 0;
  if (nin != m->nin)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "the model takes %d inputs, got %d", m->nin,
                   nin);
  int *sel = calloc((size_t)m->nout, sizeof *sel);
  const char **names = calloc((size_t)m->nout, sizeof *names);
  OrtValue **iv = calloc((size_t)nin + 1, sizeof *iv), **ov = calloc((size_t)m->nout, sizeof *ov);
  struct serve_tensor *res = NULL;
  int n = 0, rc = 0;
  if (!sel || !names || !iv || !ov)
    rc = err_set(e, ERR_NO_MEMORY, "out of memory running the model");
  if (rc == 0) rc = onnx_pick_outputs(m, po, sel, &n, e);
  for (int i = 0; rc == 0 && i < nin; i++) rc = onnx_input(m, i, &in[i], &iv[i], e);
  for (int k = 0; rc == 0 && k < n; k++) names[k] = m->out_names[sel[k]];
  if (rc == 0) {
    OrtStatus *st = api->Run(m->sess, NULL, m->in_names, (const OrtValue *const *)iv, (size_t)nin,
                             names, (size_t)n, ov);
    if (st) rc = onnx_fail(api, st, false, e, "ONNX Runtime");
  }
  if (rc == 0 && !(res = calloc((size_t)n, sizeof *res)))
    rc = err_set(e, ERR_NO_MEMORY, "out of memory");
  for (int k = 0; rc == 0 && k < n; k++) {
    str_copy(res[k].name, sizeof res[k].name, names[k]);
    if (!ov[k])
      rc = err_set(e, ERR_INTERNAL, "ONNX Runtime returned no value for output '%s'", names[k]);
    else if (m->out[sel[k]].kind == ORT_TYPE_SEQUENCE)
      rc = onnx_sequence_output(api, ov[k], &res[k], e);
    else
      rc = onnx_tensor_output(api, ov[k], &res[k], e);
  }
  for (int i = 0; iv && i < nin; i++) api->ReleaseValue(iv[i]);
  for (int k = 0; ov && k < n; k++) api->ReleaseValue(ov[k]);
  free(sel);
  free(names);
  free(iv);
  free(ov);
  if (rc < 0) {
    for (int k = 0; res && k < n; k++) serve_tensor_fini(&res[k]);
    free(res);
    return rc;
  }
  *out = res;
  *nout = n;
  return 0;
}

static uint64_t onnx_memory(void *model) { return model ? ((struct onnx_model *)model)->mem : 0; }

static void onnx_unload(void *model) { onnx_model_free(model); }

static json_t *onnx_describe(void *model) {
  struct onnx_model *m = model;
  return json_pack("{s:s, s:i, s:i}", "onnxruntime", ort.version, "intra_op_threads",
                   m ? m->threads : 0, "api_version", ORT_API_USED);
}

const struct serve_backend serve_backend_onnx = {
    .version = SERVE_BACKEND_VERSION,
    .name = "onnx",
    .caps = SERVE_CAP_PROBA,
    .load = onnx_load,
    .predict = onnx_predict,
    .memory = onnx_memory,
    .unload = onnx_unload,
    .degraded = NULL,
    .describe = onnx_describe,
};
