/* base/buf: growable heap buffers and the few string helpers the house uses
 * instead of the unsafe libc ones. */
#include "base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b) {
  b->data = NULL;
  b->len = b->cap = 0;
}

void buf_fini(struct buf *b) {
  free(b->data);
  buf_init(b);
}

void buf_reset(struct buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = 0;
}

int buf_reserve(struct buf *b, size_t extra) {
  if (extra > SIZE_MAX - b->len - 1) return -ERR_NO_MEMORY;
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  char *p = realloc(b->data, cap);
  if (!p) return -ERR_NO_MEMORY;
  b->data = p;
  b->cap = cap;
  return 0;
}

int buf_append(struct buf *b, const void *p, size_t n) {
  int rc = buf_reserve(b, n);
  if (rc) return rc;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = 0;
  return 0;
}

int buf_puts(struct buf *b, const char *s) { return buf_append(b, s, strlen(s)); }
int buf_putc(struct buf *b, char c) { return buf_append(b, &c, 1); }

int buf_vprintf(struct buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  char tmp[256];
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  int rc = 0;
  if (n < 0) {
    rc = -ERR_INTERNAL;
  } else if ((size_t)n < sizeof tmp) {
    rc = buf_append(b, tmp, (size_t)n);
  } else if (!(rc = buf_reserve(b, (size_t)n))) {
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    b->len += (size_t)n;
  }
  va_end(ap2);
  return rc;
}

int buf_printf(struct buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

char *buf_steal(struct buf *b) {
  char *p = b->data;
  if (!p) p = calloc(1, 1);
  buf_init(b);
  return p;
}

size_t str_copy(char *dst, size_t cap, const char *src) {
  size_t n = strlen(src);
  if (cap) {
    size_t m = n < cap - 1 ? n : cap - 1;
    memcpy(dst, src, m);
    dst[m] = 0;
  }
  return n;
}

int str_to_i64(const char *s, int64_t *out) {
  /* strtoll skips leading whitespace ("\t5", "\n5"); a strict parse must not */
  if (!s || !(*s == '-' || (*s >= '0' && *s <= '9'))) return -ERR_INVALID_PARAMETER_VALUE;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || end == s || s[0] == ' ' || s[0] == '+') return -ERR_INVALID_PARAMETER_VALUE;
  *out = (int64_t)v;
  return 0;
}

int str_to_u64(const char *s, uint64_t *out) {
  if (!s || s[0] < '0' || s[0] > '9') return -ERR_INVALID_PARAMETER_VALUE;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end) return -ERR_INVALID_PARAMETER_VALUE;
  *out = (uint64_t)v;
  return 0;
}

bool str_eq(const char *a, const char *b) {
  if (!a || !b) return a == b;
  return strcmp(a, b) == 0;
}

bool str_has_prefix(const char *s, const char *prefix) {
  return s && strncmp(s, prefix, strlen(prefix)) == 0;
}
