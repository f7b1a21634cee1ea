/* registry: registered models and their versions; this header so far holds
 * model intake — recognising an uploaded model file by its content, scanning
 * it for code it would run on load, and reading its metadata and signature.
 * Domain code only: no HTTP, no database. */
#ifndef KILN_REGISTRY_H
#define KILN_REGISTRY_H

#include "base/base.h"

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

#endif
