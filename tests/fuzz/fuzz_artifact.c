/* tests/fuzz/fuzz_artifact: the artifact proxy's parsers — the path rules
 * (track_artifact_path_check) and the Range header (http_range_parse) —
 * against references written here from their contracts.
 *
 * Input: byte 0 picks the parser (even: path, odd: Range); for Range, the
 * next 8 bytes are the representation's size (little-endian, folded to
 * small sizes half of the time so ranges hit it), the rest is the header
 * value up to the first NUL. */
#define FUZZ_NAME "fuzz_artifact"
#include "fuzz_common.h"
#include "http/http.h"
#include "track/track.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Reference: strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
static bool ref_utf8(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned char c = s[i];
    size_t k;
    uint32_t cp, min;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      k = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      k = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      k = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (i + k > n) return false;
    for (size_t j = 1; j < k; j++) {
      if ((s[i + j] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += k;
  }
  return true;
}

/* Reference: the documented path contract, by splitting on '/'. */
static bool ref_path_ok(const char *p) {
  size_t n = strlen(p);
  if (n == 0 || n > TRACKING_ARTIFACT_PATH_MAX) return false;
  if (!ref_utf8((const unsigned char *)p, n)) return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)p[i] < 0x20 || p[i] == 0x7F || p[i] == '\\') return false;
  char *copy = strdup(p);
  bool ok = true;
  size_t start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && copy[i] != '/') continue;
    size_t len = i - start;
    if (len == 0 || (len == 1 && copy[start] == '.') ||
        (len == 2 && copy[start] == '.' && copy[start + 1] == '.'))
      ok = false;
    start = i + 1;
  }
  free(copy);
  return ok;
}

static void fuzz_path(const uint8_t *d, size_t n) {
  char *p = malloc(n + 1);
  memcpy(p, d, n);
  p[n] = 0;
  struct err e;
  err_clear(&e);
  int rc = track_artifact_path_check(p, false, &e);
  bool want = ref_path_ok(p);
  CHECK((rc == 0) == want, "path '%.200s': check says %d, reference says %d", p, rc, want);
  if (rc) CHECK(e.code == ERR_INVALID_PARAMETER_VALUE && e.msg[0], "refusal without a 400 message");
  if (rc == 0) CHECK(!strstr(p, "/../") && strncmp(p, "../", 3) != 0 && p[0] != '/', "traversal accepted");
  free(p);
}

/* Reference for one "bytes=" range, written from RFC 9110 14.1.2 / 14.1.1. */
static bool digits(const char **s, uint64_t *v) {
  const char *p = *s;
  if (*p < '0' || *p > '9') return false;
  __uint128_t x = 0;
  while (*p >= '0' && *p <= '9') {
    x = x * 10 + (unsigned)(*p++ - '0');
    if (x > UINT64_MAX) return false;
  }
  *v = (uint64_t)x;
  *s = p;
  return true;
}

static enum http_range_kind ref_range(const char *v, uint64_t size, uint64_t *f, uint64_t *l) {
  const char *p = v;
  while (*p == ' ' || *p == '\t') p++;
  if (strncasecmp(p, "bytes", 5)) return HTTP_RANGE_NONE;
  p += 5;
  while (*p == ' ' || *p == '\t') p++;
  if (*p++ != '=') return HTTP_RANGE_NONE;
  while (*p == ' ' || *p == '\t') p++;
  uint64_t a, b;
  if (*p == '-') {
    p++;
    if (!digits(&p, &b)) return HTTP_RANGE_NONE;
    while (*p == ' ' || *p == '\t') p++;
    if (*p) return HTTP_RANGE_NONE;
    if (b == 0 || size == 0) return HTTP_RANGE_UNSATISFIABLE;
    *f = b > size ? 0 : size - b;
    *l = size - 1;
    return HTTP_RANGE_OK;
  }
  if (!digits(&p, &a) || *p++ != '-') return HTTP_RANGE_NONE;
  bool open = !(*p >= '0' && *p <= '9');
  if (!open && !digits(&p, &b)) return HTTP_RANGE_NONE;
  while (*p == ' ' || *p == '\t') p++;
  if (*p) return HTTP_RANGE_NONE;
  if (!open && b < a) return HTTP_RANGE_NONE;
  if (a >= size) return HTTP_RANGE_UNSATISFIABLE;
  *f = a;
  *l = open || b >= size - 1 ? size - 1 : b;
  return HTTP_RANGE_OK;
}

static void fuzz_range(const uint8_t *d, size_t n) {
  if (n < 9) return;
  uint64_t size = 0;
  for (int i = 0; i < 8; i++) size |= (uint64_t)d[1 + i] << (8 * i);
  if (d[0] & 2) size %= 4096;
  size_t vl = n - 9;
  char *v = malloc(vl + 1);
  memcpy(v, d + 9, vl);
  v[vl] = 0;
  uint64_t f = 0, l = 0, rf = 0, rl = 0;
  enum http_range_kind k = http_range_parse(v, size, &f, &l);
  enum http_range_kind rk = ref_range(v, size, &rf, &rl);
  CHECK(k == rk, "Range '%.100s' size %llu: kind %d, reference %d", v, (unsigned long long)size, k, rk);
  if (k == HTTP_RANGE_OK) {
    CHECK(f == rf && l == rl, "Range '%.100s': %llu-%llu, reference %llu-%llu", v, (unsigned long long)f,
          (unsigned long long)l, (unsigned long long)rf, (unsigned long long)rl);
    CHECK(f <= l && l < size, "range outside the representation");
  }
  free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  if (n == 0) return 0;
  if (d[0] & 1) fuzz_range(d, n);
  else fuzz_path(d + 1, strnlen((const char *)d + 1, n - 1));
  return 0;
}
