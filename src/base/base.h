/* base: the room with no domain knowledge — errors, arenas, buffers, JSON
 * helpers, logging, time, ids, hashing, configuration and the metrics
 * registry every other room builds on. */
#ifndef KILN_BASE_H
#define KILN_BASE_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KILN_VERSION "0.1.0"
/* The git commit the binary was built from (generated at build time, so a
 * new commit relinks without recompiling everything). */
extern const char kiln_commit[];

#if defined(__GNUC__)
#define KILN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define KILN_PRINTF(a, b)
#endif

/* ---- errors ------------------------------------------------------------
 * The one error list. Each entry: enum suffix, stable error_code string (the
 * wire contract; MLflow's names where MLflow has one), HTTP status, default
 * message. Functions return 0 or -ERR_x and fill a struct err. */
#define KILN_ERR_MAP(X)                                                                  \
  X(OK, "OK", 200, "ok")                                                                 \
  X(INVALID_PARAMETER_VALUE, "INVALID_PARAMETER_VALUE", 400, "invalid parameter value")  \
  X(BAD_REQUEST, "BAD_REQUEST", 400, "bad request")                                      \
  X(MALFORMED_JSON, "MALFORMED_REQUEST", 400, "request body is not valid JSON")           \
  X(RESOURCE_ALREADY_EXISTS, "RESOURCE_ALREADY_EXISTS", 400, "resource already exists")  \
  X(INVALID_STATE, "INVALID_STATE", 400, "the resource is not in a state that allows this") \
  X(UNAUTHENTICATED, "UNAUTHENTICATED", 401, "authentication required")                  \
  X(PERMISSION_DENIED, "PERMISSION_DENIED", 403, "permission denied")                    \
  X(RESOURCE_DOES_NOT_EXIST, "RESOURCE_DOES_NOT_EXIST", 404, "resource does not exist")  \
  X(ENDPOINT_NOT_FOUND, "ENDPOINT_NOT_FOUND", 404, "no such endpoint")                   \
  X(METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", 405, "method not allowed")                 \
  X(CONFLICT, "CONFLICT", 409, "conflict")                                               \
  X(APPROVAL_REQUIRED, "APPROVAL_REQUIRED", 409, "this change needs an approved request") \
  X(PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", 413, "request body too large")               \
  X(UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE", 415, "unsupported media type")     \
  X(RANGE_NOT_SATISFIABLE, "RANGE_NOT_SATISFIABLE", 416, "range not satisfiable")        \
  X(UNSAFE_MODEL, "UNSAFE_MODEL", 422, "the model file failed its safety scan")          \
  X(RATE_LIMITED, "REQUEST_LIMIT_EXCEEDED", 429, "too many requests")                    \
  X(INTERNAL, "INTERNAL_ERROR", 500, "internal error")                                   \
  X(IO, "IO_ERROR", 500, "input/output error")                                           \
  X(DATA_CORRUPTED, "DATA_CORRUPTED", 500, "stored data failed its integrity check")     \
  X(NO_MEMORY, "RESOURCE_EXHAUSTED", 503, "out of memory")                               \
  X(UNAVAILABLE, "TEMPORARILY_UNAVAILABLE", 503, "temporarily unavailable")              \
  X(NOT_READY, "NOT_READY", 503, "not ready")                                            \
  X(DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", 504, "deadline exceeded")

enum err_code {
#define KILN_ERR_ENUM(name, code, status, msg) ERR_##name,
  KILN_ERR_MAP(KILN_ERR_ENUM)
#undef KILN_ERR_ENUM
      ERR__COUNT
};

struct err {
  enum err_code code;
  char msg[256];
};

const char *err_code_str(enum err_code c); /* stable wire string */
int err_http_status(enum err_code c);
const char *err_default_msg(enum err_code c);
/* Fills e (may be NULL) and returns -code, so `return err_set(...)` reads well. */
int err_set(struct err *e, enum err_code c, const char *fmt, ...) KILN_PRINTF(3, 4);
void err_clear(struct err *e);

/* ---- arena ---------------------------------------------------------------
 * Bump allocator for request-scoped memory; freed all at once, never
 * piecemeal. Allocation failure returns NULL (callers answer 503). */
struct arena_block;
struct arena {
  struct arena_block *head;
  size_t block_size;
  size_t total; /* bytes handed out, for limits and tests */
  size_t limit; /* 0 = unlimited */
};
void arena_init(struct arena *a, size_t block_size, size_t limit);
void arena_fini(struct arena *a);
void arena_reset(struct arena *a); /* keep the first block, drop the rest */
void *arena_alloc(struct arena *a, size_t n);
void *arena_zalloc(struct arena *a, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...) KILN_PRINTF(2, 3);

/* ---- growable byte buffer (heap) ----------------------------------------- */
struct buf {
  char *data; /* always NUL-terminated when non-NULL */
  size_t len;
  size_t cap;
};
void buf_init(struct buf *b);
void buf_fini(struct buf *b);
int buf_reserve(struct buf *b, size_t extra); /* 0 or -ERR_NO_MEMORY */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) KILN_PRINTF(2, 3);
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
char *buf_steal(struct buf *b); /* caller frees; buffer is reset */
void buf_reset(struct buf *b);

/* Bounded, always-terminating string copy; returns strlen(src). */
size_t str_copy(char *dst, size_t cap, const char *src);
/* Strict decimal parse of the whole string; 0 or -ERR_INVALID_PARAMETER_VALUE. */
int str_to_i64(const char *s, int64_t *out);
int str_to_u64(const char *s, uint64_t *out);
bool str_eq(const char *a, const char *b); /* NULL-safe */
bool str_has_prefix(const char *s, const char *prefix);

/* ---- JSON ---------------------------------------------------------------- */
/* Parses n bytes; on failure fills e with ERR_MALFORMED_JSON naming line,
 * column and byte position. Rejects nesting deeper than 64 levels. */
json_t *json_parse(const char *text, size_t n, struct err *e);
/* Compact encoding appended to b; 0 or negative error. */
int json_emit(struct buf *b, const json_t *v);
/* Compact encoding into the arena (NUL-terminated). */
char *json_emit_arena(struct arena *a, const json_t *v, size_t *len_out);
/* Appends s as a JSON string literal (quotes included), escaping as needed. */
int json_escape_buf(struct buf *b, const char *s);
/* Typed getters that produce INVALID_PARAMETER_VALUE naming the field. */
int json_get_str(const json_t *obj, const char *key, bool required, const char **out, struct err *e);
int json_get_i64(const json_t *obj, const char *key, bool required, int64_t *out, struct err *e);

/* ---- logging: JSON lines on stderr --------------------------------------- */
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
void log_set_level(enum log_level lvl);
void log_set_quiet(bool quiet);
enum log_level log_level_parse(const char *s, enum log_level dflt);
void log_msg(enum log_level lvl, const char *event, const char *fmt, ...) KILN_PRINTF(3, 4);
/* Writes one pre-formatted JSON object line (no trailing newline needed). */
void log_line(const char *json_obj, size_t n);
/* The same for high-rate lines (the access log): collected per thread and
 * written in batches at least every 100 ms, so a busy server makes one
 * write(2) per batch instead of one per request. */
void log_line_buffered(const char *json_obj, size_t n);
/* Writes out every buffered line now (shutdown, tests). */
void log_flush(void);
#define log_info(ev, ...) log_msg(LOG_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_msg(LOG_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...) log_msg(LOG_ERROR, ev, __VA_ARGS__)

/* ---- time ------------------------------------------------------------------ */
int64_t time_wall_ms(void);
int64_t time_mono_us(void);
double time_wall_s(void);

/* ---- ids and hashing ------------------------------------------------------ */
int base_init(void); /* libsodium init; call once at start */
void id_random_hex(char *out, size_t nbytes); /* out gets 2*nbytes hex + NUL */
/* 32 hex chars, unique and unpredictable enough for correlation ids (not
 * secrets): a per-thread generator seeded from the CSPRNG, no syscall. */
void id_request_hex(char out[33]);
void hex_encode(char *out, const uint8_t *in, size_t n);
int hex_decode(uint8_t *out, size_t cap, const char *hex); /* bytes or -1 */
struct sha256 {
  uint8_t state[128]; /* crypto_hash_sha256_state, opaque here */
};
void sha256_init(struct sha256 *h);
void sha256_update(struct sha256 *h, const void *p, size_t n);
void sha256_final(struct sha256 *h, uint8_t out[32]);
void sha256_hex(const void *p, size_t n, char out[65]);
bool sha256_hex_valid(const char *s); /* 64 lowercase hex */
bool secret_eq(const void *a, const void *b, size_t n); /* constant time */
/* Big-endian bytes as exactly `digits` base62 digits (0-9A-Za-z), most
 * significant first, zero padded; out gets digits + NUL. digits must be
 * enough for n bytes (43 for 32). */
void base62_encode(const uint8_t *in, size_t n, char *out, size_t digits);
bool base62_valid(const char *s, size_t n); /* n chars, all base62 */
/* A bearer secret: prefix + 32 CSPRNG bytes in base62 (43 digits), and the
 * SHA-256 hex that is all the store keeps. Returns the length, or 0 when
 * cap is too small. */
#define SECRET_TOKEN_DIGITS 43
size_t secret_token_new(const char *prefix, char *out, size_t cap, char hash[65]);

/* ---- configuration: flags > KILN_* environment > config file > default ----
 * A table of options; the config file holds `key = value` lines with the
 * same keys as the long flags. */
enum cfg_type { CFG_STR, CFG_INT, CFG_BOOL, CFG_SIZE };
struct cfg_opt {
  const char *name; /* long flag without dashes, e.g. "listen" */
  const char *env;  /* e.g. "KILN_LISTEN" */
  enum cfg_type type;
  const char *dflt;
  const char *help;
  const char *value; /* resolved (owned by the cfg) */
  const char *source; /* "flag", "env", "file", "default" */
};
struct cfg {
  struct cfg_opt *opts;
  size_t n;
  struct arena arena;
};
/* Resolves every option. argv holds only this subcommand's flags
 * (`--name value` or `--name=value`; bools also as bare `--name`).
 * `--config FILE` or KILN_CONFIG names the file. */
int cfg_load(struct cfg *c, struct cfg_opt *opts, size_t n, int argc, char **argv, struct err *e);
void cfg_fini(struct cfg *c);
const char *cfg_str(const struct cfg *c, const char *name);
int64_t cfg_int(const struct cfg *c, const char *name);
bool cfg_bool(const struct cfg *c, const char *name);
/* Sizes accept suffixes k, m, g (powers of 1024). */
int cfg_parse_size(const char *s, uint64_t *out);
void cfg_print_help(const struct cfg_opt *opts, size_t n, void *fp);

/* ---- metrics registry (Prometheus text exposition 0.0.4) ------------------
 * Families are registered once at start; series are found by label values
 * and updated with atomics, so hot paths take a lock only on first use. */
enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };
struct metric_family;
struct metric_series;
struct metric_family *metrics_family(const char *name, const char *help, enum metric_type t,
                                     int nlabels, const char *const *label_names,
                                     const double *buckets, int nbuckets);
/* Finds or creates the series for these label values (nlabels strings). */
struct metric_series *metrics_series(struct metric_family *f, const char *const *label_values);
void metrics_add(struct metric_series *s, double v); /* counter/gauge */
void metrics_set(struct metric_series *s, double v); /* gauge */
void metrics_observe(struct metric_series *s, double v); /* histogram */
double metrics_value(const struct metric_series *s);
/* Unlabelled values computed at scrape time (process metrics, queue depths). */
typedef double (*metrics_collect_fn)(void *arg);
void metrics_func(const char *name, const char *help, enum metric_type t, metrics_collect_fn fn,
                  void *arg);
int metrics_expose(struct buf *out);
/* process_* metrics and kiln_build_info. */
void metrics_process_register(void);
void metrics_reset_all(void); /* tests only: drop every family */
extern const double metrics_default_buckets[];
extern const int metrics_default_nbuckets;

#endif
