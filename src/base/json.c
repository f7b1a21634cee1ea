/* base/json: jansson with the house's error reporting (position of the fault)
 * and compact emission into buffers and arenas. */
#include "base.h"

#include <string.h>

#define JSON_MAX_DEPTH 64

/* jansson allows 2048 levels; we bound recursion much lower so a hostile body
 * cannot buy deep stacks anywhere downstream. A scan outside strings is cheap. */
static long json_depth_fault(const char *s, size_t n) {
  int depth = 0;
  bool in_str = false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (in_str) {
      if (c == '\\') i++;
      else if (c == '"') in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '[' || c == '{') {
      if (++depth > JSON_MAX_DEPTH) return (long)i;
    } else if (c == ']' || c == '}') {
      depth--;
    }
  }
  return -1;
}

json_t *json_parse(const char *text, size_t n, struct err *e) {
  if (n == 0) {
    err_set(e, ERR_MALFORMED_JSON, "request body is empty; expected a JSON value");
    return NULL;
  }
  long deep = json_depth_fault(text, n);
  if (deep >= 0) {
    /* 1-based, like jansson's positions in the other message */
    err_set(e, ERR_MALFORMED_JSON, "JSON nested deeper than %d levels at byte %ld", JSON_MAX_DEPTH,
            deep + 1);
    return NULL;
  }
  json_error_t je;
  json_t *v = json_loadb(text, n, JSON_DECODE_ANY, &je);
  if (!v) {
    err_set(e, ERR_MALFORMED_JSON, "malformed JSON at line %d, column %d (byte %d): %s", je.line,
            je.column, je.position, je.text);
  }
  return v;
}

static int json_buf_cb(const char *p, size_t n, void *data) {
  return buf_append(data, p, n) ? -1 : 0;
}

int json_emit(struct buf *b, const json_t *v) {
  if (json_dump_callback(v, json_buf_cb, b, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17)))
    return -ERR_NO_MEMORY;
  return 0;
}

struct json_arena_ctx {
  struct arena *a;
  char *p;
  size_t len, cap;
};

static int json_arena_cb(const char *p, size_t n, void *data) {
  struct json_arena_ctx *c = data;
  if (c->len + n + 1 > c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 256;
    while (cap < c->len + n + 1) cap *= 2;
    char *np = arena_alloc(c->a, cap);
    if (!np) return -1;
    if (c->len) memcpy(np, c->p, c->len);
    c->p = np;
    c->cap = cap;
  }
  memcpy(c->p + c->len, p, n);
  c->len += n;
  c->p[c->len] = 0;
  return 0;
}

char *json_emit_arena(struct arena *a, const json_t *v, size_t *len_out) {
  struct json_arena_ctx c = {a, NULL, 0, 0};
  if (json_dump_callback(v, json_arena_cb, &c, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17)))
    return NULL;
  if (!c.p) c.p = arena_strdup(a, "");
  if (len_out) *len_out = c.len;
  return c.p;
}

int json_get_str(const json_t *obj, const char *key, bool required, const char **out,
                 struct err *e) {
  json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
  if (!v || json_is_null(v)) {
    *out = NULL;
    return required ? err_set(e, ERR_INVALID_PARAMETER_VALUE, "Missing value for required parameter '%s'.", key) : 0;
  }
  if (!json_is_string(v))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid value for parameter '%s': expected a string", key);
  *out = json_string_value(v);
  return 0;
}

int json_get_i64(const json_t *obj, const char *key, bool required, int64_t *out, struct err *e) {
  json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
  if (!v || json_is_null(v)) {
    return required ? err_set(e, ERR_INVALID_PARAMETER_VALUE, "Missing value for required parameter '%s'.", key) : 0;
  }
  if (json_is_integer(v)) {
    *out = json_integer_value(v);
    return 0;
  }
  /* protobuf JSON sends int64 as strings */
  if (json_is_string(v) && str_to_i64(json_string_value(v), out) == 0) return 0;
  return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid value for parameter '%s': expected an integer", key);
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0. The string's NUL stops it. */
static size_t utf8_seq_len(const unsigned char *p) {
  unsigned char c = p[0];
  if (c >= 0xc2 && c <= 0xdf) return (p[1] & 0xc0) == 0x80 ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80 ? 4 : 0;
  }
  return 0;
}

/* Bytes that are not UTF-8 (a raw path, a message cut at its buffer's end)
 * become U+FFFD: JSON text must be UTF-8, and parsers refuse it otherwise. */
int json_escape_buf(struct buf *b, const char *s) {
  int rc = buf_putc(b, '"');
  for (const unsigned char *p = (const unsigned char *)s; *p && !rc; p++) {
    unsigned char c = *p;
    if (c >= 0x80) {
      size_t n = utf8_seq_len(p);
      rc = n ? buf_append(b, p, n) : buf_puts(b, "\\ufffd");
      if (n) p += n - 1;
      continue;
    }
    if (c == '"') rc = buf_puts(b, "\\\"");
    else if (c == '\\') rc = buf_puts(b, "\\\\");
    else if (c == '\n') rc = buf_puts(b, "\\n");
    else if (c == '\r') rc = buf_puts(b, "\\r");
    else if (c == '\t') rc = buf_puts(b, "\\t");
    else if (c < 0x20 || c == 0x7f) rc = buf_printf(b, "\\u%04x", c);
    else rc = buf_putc(b, (char)c);
  }
  return rc ? rc : buf_putc(b, '"');
}
