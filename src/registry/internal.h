/* registry/internal: what the room's files share — intake's inspection
 * context and each format's entry point, and the model store's row loaders
 * and entity builders (models.c, versions.c). Not part of the public header. */
#ifndef KILN_REGISTRY_INTERNAL_H
#define KILN_REGISTRY_INTERNAL_H

#include "registry/registry.h"

#include <stdint.h>

/* One inspection: options, the report being filled, how deep in nested
 * containers we are, and the first unsafe global seen (the error names it). */
struct intake_ctx {
  const struct registry_intake_opts *o;
  struct registry_intake_report *r;
  int depth;
  char first_unsafe[2 * 256 + 2]; /* module.name, each part at most 256 */
};

/* Sets format and framework (either may be NULL to leave it). */
void intake_set_format(struct intake_ctx *c, const char *format, const char *framework);
/* Inspects bytes at the current depth: detection by content, then the
 * format's reader. `what` names the bytes in messages ("the file",
 * "archive entry model/model.pkl"). */
int intake_inspect_bytes(struct intake_ctx *c, const uint8_t *p, size_t n, const char *what,
                         struct err *e);

/* ---- pickle.c ---- */
#define PICKLE_TORCHSCRIPT 1u /* TorchScript's own classes (__torch__.*) are not imports */
#define PICKLE_PROBE 2u       /* detection: malformed input is "not a pickle", quietly */
struct pickle_result {
  size_t end;   /* offset just past STOP */
  int proto;    /* from PROTO, 0 when absent */
  bool joblib;  /* held joblib NumpyArrayWrapper arrays (data inline) */
  bool torch;   /* imported torch.* globals */
};
/* Scans one pickle (and joblib's inline arrays) without running it: every
 * global is added to the report. Returns 0, -ERR_INVALID_PARAMETER_VALUE
 * for malformed input, or -ERR_UNSAFE_MODEL after scanning the whole
 * pickle when a global is outside the allowlist (0 with r->unsafe set when
 * the options let it through). */
int intake_pickle_scan(struct intake_ctx *c, const uint8_t *p, size_t n, const char *what,
                       unsigned flags, struct pickle_result *res, struct err *e);
/* After scanning: the error for the first unsafe global, or 0. */
int intake_pickle_verdict(struct intake_ctx *c, struct err *e);

/* ---- archive.c: zip and tar(.gz), compressed joblib streams ---- */
int intake_archive(struct intake_ctx *c, const uint8_t *p, size_t n, const char *what,
                   struct err *e);
/* A compressed stream (gzip, bz2, xz, lzma, lz4, zlib) that is not an
 * archive: decompressed under the limits and inspected as a joblib pickle. */
int intake_compressed(struct intake_ctx *c, const uint8_t *p, size_t n, const char *kind,
                      const char *what, struct err *e);

/* ---- mlmodel.c: MLflow's MLmodel (YAML) into JSON ---- */
json_t *intake_yaml_to_json(const uint8_t *p, size_t n, struct err *e);

/* ---- onnx.c ---- */
/* Whether p looks like an ONNX ModelProto (parses, has ir_version and a graph). */
bool intake_onnx_probe(const uint8_t *p, size_t n);
bool intake_onnx_start(const uint8_t *p, size_t n); /* begins like one; then malformed is 400 */
int intake_onnx(struct intake_ctx *c, const uint8_t *p, size_t n, struct err *e);

/* ---- xgb.c: XGBoost (JSON, UBJSON, legacy binary), LightGBM text, Keras HDF5 ---- */
bool intake_xgb_binary_probe(const uint8_t *p, size_t n);
int intake_xgb_json(struct intake_ctx *c, const uint8_t *p, size_t n, struct err *e);
int intake_xgb_ubj(struct intake_ctx *c, const uint8_t *p, size_t n, struct err *e);
int intake_xgb_binary(struct intake_ctx *c, const uint8_t *p, size_t n, struct err *e);
int intake_lightgbm(struct intake_ctx *c, const uint8_t *p, size_t n, struct err *e);
int intake_hdf5(struct intake_ctx *c, const uint8_t *p, size_t n, size_t sig_at, struct err *e);

/* small shared helpers (intake.c) */
bool intake_mem_has(const uint8_t *p, size_t n, const char *needle, size_t *at);
/* A relative archive path with no absolute start, no `..` segment, no
 * backslash or control character. */
bool intake_path_safe(const char *path);

/* ---- the model store (models.c, versions.c) ---- */
struct reg_model {
  int64_t id;
  char name[4 * REGISTRY_MAX_NAME_LEN + 1];
};
/* RESOURCE_DOES_NOT_EXIST "Registered Model with name=<name> not found". */
int reg_model_load(struct db_conn *c, const char *project_id, const char *name, struct reg_model *out,
                   struct err *e);
/* A RegisteredModel object (latest_versions, tags, aliases). */
json_t *reg_model_json(struct db_conn *c, int64_t model_id, struct err *e);
/* A ModelVersion object (tags, aliases). */
json_t *reg_version_json(struct db_conn *c, int64_t model_id, int64_t version, struct err *e);
/* The version text as a positive number; INVALID_PARAMETER_VALUE otherwise. */
int reg_version_parse(const char *text, int64_t *out, struct err *e);
/* RESOURCE_DOES_NOT_EXIST "Model Version (name=<n>, version=<v>) not found". */
int reg_version_exists(struct db_conn *c, const struct reg_model *m, int64_t version, struct err *e);
/* One statement with binds from fmt ('s' text, 'i' int64, anything else
 * NULL), no rows expected. */
int reg_exec(struct db_conn *c, const char *sql, struct err *e, const char *fmt, ...);
/* Bumps the model's last_updated_time (a version or alias changed). */
int reg_model_touch(struct db_conn *c, int64_t model_id, int64_t now, struct err *e);
/* Tag checks shared by models and versions. */
int reg_tag_check(const char *key, const char *value, struct err *e);
int reg_description_check(const char *d, struct err *e);
/* Runs a search: <select> (two key columns; binds the project and the
 * snapshot bound) AND <filter> ORDER BY <order_by> LIMIT max+1, and builds
 * the objects of the first max rows. */
struct reg_search_plan {
  int ent;              /* enum track_flt_entity */
  const char *select;   /* "SELECT m.id FROM registered_models m WHERE m.project_id = ? AND m.id <= ?" */
  const char *snap_sql; /* the snapshot bound now */
  int64_t dflt, cap;
};
json_t *reg_search(struct db *db, const char *project_id, const struct registry_search *s,
                   const struct reg_search_plan *p, char next[REGISTRY_PAGE_TOKEN_MAX], struct err *e);

/* The one status transition (versions.c; the state machine is drawn there). */
int reg_status_set(struct db_conn *c, int64_t model_id, int64_t version, enum registry_version_status to,
                   const char *message, struct err *e);
/* Drops what uploads.c recorded for a version (version -1: every version of
 * the model) and the blob references it held; inside a write job. */
int reg_files_drop(struct db_conn *c, int64_t model_id, int64_t version, struct err *e);

/* ---- multipart.c: multipart/form-data, streamed ---- */
#define MP_MAX_FIELD 65536 /* one non-file field's value */
#define MP_MAX_HEADERS 8192 /* one part's header block */
struct mp_parser;
/* Called for each part's bytes: on_part_begin with the part's form name and
 * filename ("" when none), then on_data in pieces, then on_part_end. A
 * non-zero return stops parsing with that code (e filled by the callback). */
struct mp_callbacks {
  int (*on_part_begin)(void *ctx, const char *name, const char *filename, struct err *e);
  int (*on_data)(void *ctx, const char *p, size_t n, struct err *e);
  int (*on_part_end)(void *ctx, struct err *e);
};
/* boundary from the Content-Type parameter (1-70 chars); NULL with e set. */
struct mp_parser *mp_parser_new(const char *content_type, const struct mp_callbacks *cb, void *ctx,
                                struct err *e);
void mp_parser_free(struct mp_parser *p);
int mp_parser_feed(struct mp_parser *p, const char *data, size_t n, struct err *e);
/* After the last byte: 0 when the closing boundary was seen. */
int mp_parser_finish(struct mp_parser *p, struct err *e);
/* ---- governance hooks (governance.c; the stage and alias functions) ---- */
/* How a governed change is being made: by a caller who needs approval, by
 * a project admin (allowed, audited as a direct change), or as the effect
 * of an approved request. */
enum reg_gov_mode { REG_GOV_CALLER = 0, REG_GOV_ADMIN, REG_GOV_APPROVED };
/* The one check: 0 when the change may go ahead, APPROVAL_REQUIRED when the
 * project's rules ask for an approved request. alias: target is an alias
 * name, else a canonical stage. */
int reg_gov_gate(struct db_conn *c, const char *project_id, const struct reg_model *m, int64_t version,
                 bool alias, const char *target, enum reg_gov_mode mode, struct err *e);
/* The single stage (versions.c) and alias (models.c) transition functions. */
int reg_stage_set(struct db_conn *c, const char *project_id, const struct reg_model *m, int64_t version,
                  const char *stage, bool archive_existing, int64_t now, enum reg_gov_mode mode, struct err *e);
int reg_alias_set(struct db_conn *c, const char *project_id, const struct reg_model *m, const char *alias,
                  int64_t version, int64_t now, enum reg_gov_mode mode, struct err *e);
/* MLflow's alias name rule (models.c). */
int reg_alias_check(const char *alias, struct err *e);

#endif
