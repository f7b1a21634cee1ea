/* serve/proto: internal to the protocol files (v2.c, payload.c, validate.c,
 * number.c) — number scanning and shortest formatting, element conversion
 * with the coercion rules, FP16/BF16, and the bits of text the messages share. */
#ifndef KILN_SERVE_PROTO_H
#define KILN_SERVE_PROTO_H

#include "serve.h"

/* ---- JSON number tokens ---------------------------------------------------
 * One pass over the text gives the decimal mantissa and exponent; the
 * conversions below use them without a second look at the digits except in
 * the rare cases only strtod gets right. */
struct serve_num {
  uint64_t mant; /* the first 19 significant digits */
  int32_t exp10; /* value = mant * 10^exp10 (exactly, unless truncated) */
  bool neg;
  bool integer;   /* written without fraction or exponent */
  bool truncated; /* a nonzero digit after the 19th was dropped */
  bool ival_ok;   /* integer and |value| fits in uint64: ival holds it */
  uint64_t ival;
};
/* Scans an RFC 8259 number starting at p; its length, or 0 when p does not
 * start one. Stops at the first byte that cannot continue the number (the
 * caller checks what follows). */
size_t serve_num_scan(const char *p, const char *end, struct serve_num *n);
/* The same grammar check without the values: the length, or 0. */
size_t serve_num_skip(const char *p, const char *end);
/* The double nearest the number (ties to even), as strtod gives it; text is
 * the token serve_num_scan read. -1 when it overflows a double. */
int serve_num_to_f64(const struct serve_num *n, const char *text, size_t len, double *out);
/* m * 10^k as the nearest double (any k; inf past the range). */
double serve_dec_to_f64(uint64_t m, int k);
/* m * 10^k as the float nearest to the nearest double (what every JSON
 * client computes), mostly without computing that double; -1 when it
 * overflows a float. */
int serve_dec_to_f32(uint64_t m, int k, float *out);

/* ---- element conversion: the coercion rules in one place ----------------
 * Used by JSON parsing (V2 and MLflow) and by serve_validate's casts. */
enum serve_conv {
  SERVE_CONV_OK,
  SERVE_CONV_RANGE,     /* outside the target type's range */
  SERVE_CONV_FRACTION,  /* not a whole number, target is an integer type */
  SERVE_CONV_NONFINITE, /* NaN or Inf into an integer type */
  SERVE_CONV_NOT_BOOL,  /* a number into BOOL */
  SERVE_CONV_BOOL,      /* a bool into a number type */
  SERVE_CONV_NOT_BYTES, /* a number or bool into BYTES */
  SERVE_CONV_STRING,    /* a string into a number or BOOL */
  SERVE_CONV_NULL,      /* null where a value is needed */
  SERVE_CONV_NESTED,    /* an array or object where a value is needed */
};
enum serve_conv serve_store_i64(enum serve_dtype dt, int64_t v, void *dst);
enum serve_conv serve_store_u64(enum serve_dtype dt, uint64_t v, void *dst);
enum serve_conv serve_store_f64(enum serve_dtype dt, double v, void *dst);
enum serve_conv serve_store_bool(enum serve_dtype dt, bool v, void *dst);
/* A scanned number into dt: integers exactly (up to uint64), the rest
 * through the nearest double. */
enum serve_conv serve_store_num(enum serve_dtype dt, const struct serve_num *n, const char *text,
                                size_t len, void *dst);

/* One element of a fixed-size tensor read out for a cast. */
enum serve_val_kind { SERVE_VAL_I64, SERVE_VAL_U64, SERVE_VAL_F64, SERVE_VAL_BOOL };
struct serve_val {
  enum serve_val_kind kind;
  union {
    int64_t i;
    uint64_t u;
    double f;
    bool b;
  };
};
void serve_val_load(enum serve_dtype dt, const void *data, size_t i, struct serve_val *v);
enum serve_conv serve_val_store(enum serve_dtype dt, const struct serve_val *v, void *dst);

bool serve_dtype_is_float(enum serve_dtype t); /* FP16 BF16 FP32 FP64 */
bool serve_dtype_is_int(enum serve_dtype t);   /* UINT* INT* */

/* ---- FP16 / BF16 (round to nearest, ties to even, straight from double) -- */
uint16_t serve_f64_to_f16(double d);
uint16_t serve_f64_to_bf16(double d);
double serve_f16_to_f64(uint16_t h);
double serve_bf16_to_f64(uint16_t h);

/* ---- shortest round-trip text ----------------------------------------------
 * The fewest significant digits that read back (as a double, then rounded
 * to float for f32) to the same value; a whole value keeps a ".0". buf
 * needs SERVE_NUM_TEXT bytes; returns the length. Finite values only. */
#define SERVE_NUM_TEXT 40
size_t serve_fmt_f32(char *buf, float f);
size_t serve_fmt_f64(char *buf, double d);
size_t serve_fmt_i64(char *buf, int64_t v);
size_t serve_fmt_u64(char *buf, uint64_t v);
/* The double whose shortest text equals the float's (0.1f -> 0.1): what a
 * client reading the float's shortest text gets. */
double serve_f32_pretty(float f);

/* ---- messages ---------------------------------------------------------------
 * "[2,3]" into buf (cap >= 8); "[]" for a scalar. */
const char *serve_shape_str(char *buf, size_t cap, const int64_t *shape, int ndim);
/* "element 5" for 1-D, "element [1,2]" otherwise (0-based). */
const char *serve_index_str(char *buf, size_t cap, const int64_t *shape, int ndim, int64_t flat);
/* Fills e with "input 'NAME' ELEM: WHAT" for conversion failure c. */
int serve_conv_err(struct err *e, enum serve_conv c, const char *input, const char *elem,
                   enum serve_dtype dt, const char *value);

/* JSON string literal of n bytes (NUL and bytes that are not UTF-8 allowed:
 * the latter become U+FFFD, so the text is always valid JSON). */
int serve_json_escape_n(struct buf *b, const char *s, size_t n);
/* The same bytes as a jansson string (invalid UTF-8 replaced likewise). */
json_t *serve_json_string_n(const char *s, size_t n);

/* BYTES storage: walks count elements of V2 binary form in [p, p+n);
 * the bytes they take, or -1 when an element runs past n (*bad gets its
 * index). */
int64_t serve_bytes_walk(const char *p, size_t n, int64_t count, int64_t *bad);

/* Converts count jansson leaves (row-major) into t, whose name, dtype and
 * shape are set: data lands in arena memory. null is NaN for float types
 * when null_is_nan (MLflow); errors name the element. */
int serve_leaves_to_tensor(struct serve_tensor *t, json_t *const *leaves, int64_t count,
                           bool null_is_nan, const char *const *columns, struct arena *a,
                           struct err *e);
/* Where element flat of t is, for messages: "row 3 column 'bmi'" when
 * columns name the second dimension of a table, else serve_index_str. */
const char *serve_elem_where(char *buf, size_t cap, const struct serve_tensor *t,
                             const char *const *columns, int64_t flat);

/* ---- the fast path for numeric arrays (scan.c) ---------------------------
 * A pre-pass reads the number arrays at the places a protocol's matcher
 * names into cells, one per number, and notes how each nest is shaped;
 * jansson then reads a copy of the body with "[]" in their place. */
enum { SERVE_CELL_INT, SERVE_CELL_DEC, SERVE_CELL_F64, SERVE_CELL_HUGE };
struct serve_cell {
  uint64_t m; /* INT: |value|; DEC: digits (value m * 10^e); F64: the double's bits */
  int32_t e;
  uint8_t kind; /* HUGE: past a double */
  bool neg;
};
struct serve_span {
  size_t start, end; /* [start, end) of the array in the body */
  int64_t count;     /* numbers in it */
  size_t first;      /* its first cell */
  bool set, nested,
      mixed;     /* nested: its first value is an array; mixed: numbers at several depths */
  int num_depth; /* depth of its numbers (1: the top array), 0: none */
  int max_depth; /* of its arrays */
  int64_t dim[SERVE_MAX_DIMS + 1];     /* per depth: length of the first array closed there */
  int64_t dim_bad[SERVE_MAX_DIMS + 1]; /* per depth: the first length that differed, or -1 */
};
#define SERVE_FAST_SLOTS 64
#define SERVE_FAST_INLINE_CELLS 256
struct serve_fast { /* lives on the stack; cells past the inline ones are malloc'd */
  struct serve_span span[SERVE_FAST_SLOTS];
  int nset;
  struct serve_cell *cells;
  size_t ncells, cap;
  struct serve_cell inline_cells[SERVE_FAST_INLINE_CELLS];
};
/* What the pre-pass knows of each open container, for the matcher. */
#define SERVE_LEX_KEY_DEPTH 3 /* keys are told apart in the first 3 levels */
struct serve_lex_frame {
  char kind; /* '{' or '[' */
  int key;   /* objects: index in the protocol's keys of the key being read, or -1 */
  bool expect_key;
  unsigned seen; /* objects: the protocol's keys met so far */
  int nelem;     /* arrays: values begun so far (the current one is nelem - 1) */
};
/* At an array value inside st[depth-1]: its slot, or -1 to leave it. */
typedef int (*serve_fast_match)(const struct serve_lex_frame *st, int depth);
void serve_fast_init(struct serve_fast *f);
void serve_fast_clear(struct serve_fast *f);
void serve_fast_fini(struct serve_fast *f);
void serve_fast_prepass(const char *s, size_t n, const char *const *keys, int nkeys,
                        serve_fast_match match, struct serve_fast *f);
/* The pre-pass (when enabled), then json_parse of the rest; errors are
 * positioned in the body. A new reference, or NULL with e. */
json_t *serve_fast_parse(const char *body, size_t len, const char *const *keys, int nkeys,
                         serve_fast_match match, struct serve_fast *f, bool enabled,
                         struct arena *a, struct err *e);
/* Span slot into t (name, dtype, shape set): checks the nest against the
 * shape, converts each cell by the coercion rules into arena memory.
 * colmap (for a 2-D t): column j of the text lands in column colmap[j]. */
int serve_span_convert(struct serve_tensor *t, const struct serve_fast *f, int slot,
                       const char *body, const int *colmap, struct arena *a, struct err *e);
/* The shape a regular nest spells ([count] when flat); false when ragged
 * or mixed. */
bool serve_span_shape(const struct serve_span *sp, int64_t *shape, int *ndim);
int serve_count_err(const struct serve_tensor *t, int64_t need, int64_t have, struct err *e);
int serve_nest_err(const struct serve_tensor *t, struct err *e, int depth, size_t got);
int serve_mix_err(const struct serve_tensor *t, struct err *e);

/* Test and fuzz hook: false sends every numeric array through jansson (the
 * fast path is compared against it), for V2 and MLflow bodies alike. */
extern bool serve_v2_fast_numbers;

#endif
