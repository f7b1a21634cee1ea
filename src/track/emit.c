/* track/emit: hand-written JSON for the room's big answers (a 100,000-point
 * metric history), written straight into one buffer instead of through a
 * tree of jansson values, and byte for byte what the jansson path writes
 * (numbers as JSON_REAL_PRECISION(17) prints them). */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char DIGITS2[201] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                 "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                 "8081828384858687888990919293949596979899";

/* u's decimal digits written backwards ending at end; returns the start. */
static char *u64_digits(char *end, uint64_t u) {
  while (u >= 100) {
    unsigned r = (unsigned)(u % 100);
    u /= 100;
    end -= 2;
    memcpy(end, DIGITS2 + 2 * r, 2);
  }
  if (u >= 10) {
    end -= 2;
    memcpy(end, DIGITS2 + 2 * u, 2);
  } else {
    *--end = (char)('0' + u);
  }
  return end;
}

size_t track_fmt_i64(char *out, int64_t v) {
  char tmp[24];
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  char *b = u64_digits(tmp + sizeof tmp, u);
  size_t n = (size_t)(tmp + sizeof tmp - b), k = 0;
  if (v < 0) out[k++] = '-';
  memcpy(out + k, b, n);
  k += n;
  out[k] = 0;
  return k;
}

/* jansson's touch-ups after "%.17g" (jsonp_dtostr): a ".0" when there is
 * neither '.' nor 'e', and no '+' or leading zeros in the exponent. */
static size_t jansson_fixup(char *b, size_t len) {
  if (!memchr(b, '.', len) && !memchr(b, 'e', len)) {
    b[len++] = '.';
    b[len++] = '0';
    b[len] = 0;
  }
  char *start = memchr(b, 'e', len);
  if (start) {
    start++;
    char *end = start + 1;
    if (*start == '-') start++;
    while (*end == '0') end++;
    if (end != start) {
      memmove(start, end, len - (size_t)(end - b) + 1);
      len -= (size_t)(end - start);
    }
  }
  return len;
}

static const uint64_t POW10[20] = {1ULL,
                                   10ULL,
                                   100ULL,
                                   1000ULL,
                                   10000ULL,
                                   100000ULL,
                                   1000000ULL,
                                   10000000ULL,
                                   100000000ULL,
                                   1000000000ULL,
                                   10000000000ULL,
                                   100000000000ULL,
                                   1000000000000ULL,
                                   10000000000000ULL,
                                   100000000000000ULL,
                                   1000000000000000ULL,
                                   10000000000000000ULL,
                                   100000000000000000ULL,
                                   1000000000000000000ULL,
                                   10000000000000000000ULL};

typedef unsigned __int128 u128;

/* The 17 significant digits "%.17g" prints for v > 0, as an integer in
 * [1e16, 1e17), and its decimal exponent; false when v is outside the range
 * the exact 128-bit arithmetic below covers (printf does those). printf
 * rounds the exact binary value to nearest, ties to even; so does this. */
static bool digits17(double v, uint64_t *digits, int *exp10) {
  if (!(v >= 1e-6 && v < 1e16)) return false;
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  int be = (int)((bits >> 52) & 0x7ff);
  uint64_t m = (bits & ((1ULL << 52) - 1)) | (1ULL << 52); /* normal: 1e-6 is far above subnormals */
  int e = be - 1075;                                         /* v = m * 2^e exactly */
  /* v lies in [2^(e+52), 2^(e+53)): log10 of the low end, at most one too low */
  int d = (int)floor((double)(e + 52) * 0.30102999566398119521);
  for (int tries = 0; tries < 3; tries++) {
    int k = 16 - d; /* scale so 17 digits sit left of the point */
    if (k < 0 || k > 22) return false;
    u128 p10 = (u128)POW10[k > 19 ? 19 : k];
    for (int i = 19; i < k; i++) p10 *= 10;
    u128 n = (u128)m * p10; /* < 2^53 * 10^22 < 2^127 */
    uint64_t q;
    bool up;
    if (e >= 0) {
      if (e > 10) return false;
      u128 x = n << e;
      if (x >> 64) return false;
      q = (uint64_t)x;
      up = false;
    } else {
      int sh = -e;
      if (sh >= 127) return false;
      u128 x = n >> sh;
      if (x >> 64) return false;
      q = (uint64_t)x;
      u128 rem = n - (x << sh), half = (u128)1 << (sh - 1);
      up = rem > half || (rem == half && (q & 1));
    }
    if (q < POW10[16]) { /* guessed one too high */
      d--;
      continue;
    }
    if (q >= POW10[17]) { /* one too low */
      d++;
      continue;
    }
    if (up) q++;
    if (q == POW10[17]) {
      q = POW10[16];
      d++;
    }
    *digits = q;
    *exp10 = d;
    return true;
  }
  return false;
}

size_t track_fmt_real(char *out, double v) {
  uint64_t q;
  int x;
  bool neg = signbit(v) != 0;
  double a = neg ? -v : v;
  if (!isfinite(v) || !digits17(a, &q, &x)) {
    int n = snprintf(out, TRK_FMT_REAL_MAX, "%.17g", v);
    if (n < 0 || n >= TRK_FMT_REAL_MAX - 3) { /* cannot happen for a double */
      memcpy(out, "0.0", 4);
      return 3;
    }
    return jansson_fixup(out, (size_t)n);
  }
  char dg[17];
  u64_digits(dg + 17, q); /* exactly 17 digits: q is in [1e16, 1e17) */
  int nd = 17; /* significant digits once trailing zeros go, as %g drops them */
  while (nd > 1 && dg[nd - 1] == '0') nd--;
  /* written in jansson's final form: "%.17g", then ".0" when there is no
   * point or exponent, and the exponent without '+' or leading zeros */
  size_t k = 0;
  if (neg) out[k++] = '-';
  if (x >= -4 && x < 17) { /* %f style */
    if (x >= 0) {
      memcpy(out + k, dg, (size_t)x + 1);
      k += (size_t)x + 1;
      out[k++] = '.';
      if (nd > x + 1) {
        memcpy(out + k, dg + x + 1, (size_t)(nd - x - 1));
        k += (size_t)(nd - x - 1);
      } else {
        out[k++] = '0';
      }
    } else {
      out[k++] = '0';
      out[k++] = '.';
      for (int i = 0; i < -x - 1; i++) out[k++] = '0';
      memcpy(out + k, dg, (size_t)nd);
      k += (size_t)nd;
    }
  } else { /* %e style: d.ddde-X */
    out[k++] = dg[0];
    if (nd > 1) {
      out[k++] = '.';
      memcpy(out + k, dg + 1, (size_t)nd - 1);
      k += (size_t)nd - 1;
    }
    out[k++] = 'e';
    if (x < 0) out[k++] = '-';
    int ax = x < 0 ? -x : x;
    if (ax >= 100) out[k++] = (char)('0' + ax / 100);
    if (ax >= 10) out[k++] = (char)('0' + ax / 10 % 10);
    out[k++] = (char)('0' + ax % 10);
  }
  out[k] = 0;
  return k;
}

/* ---- metric histories ------------------------------------------------------------ */

int track_history_begin(struct track_history_writer *w, struct buf *out, const char *key, struct err *e) {
  memset(w, 0, sizeof *w);
  w->out = out;
  /* the key as jansson escapes it, once for every point */
  json_t *k = json_string(key);
  struct buf kb;
  buf_init(&kb);
  int rc = k ? json_emit(&kb, k) : -ERR_NO_MEMORY;
  json_decref(k);
  if (!rc) rc = buf_puts(out, "{\"metrics\":[");
  if (!rc) rc = buf_printf(&w->prefix, "{\"key\":%s,\"value\":", kb.data);
  buf_fini(&kb);
  if (rc) return err_set(e, ERR_NO_MEMORY, "out of memory writing a metric history");
  return 0;
}

int track_history_point(struct track_history_writer *w, double value, bool is_nan, int64_t timestamp, int64_t step) {
  /* the longest point: prefix + 24 (real) + 13 + 20 + 8 + 20 + 1 */
  if (buf_reserve(w->out, w->prefix.len + 96) < 0) return -ERR_NO_MEMORY;
  char *p = w->out->data + w->out->len;
  if (w->n++) *p++ = ',';
  memcpy(p, w->prefix.data, w->prefix.len);
  p += w->prefix.len;
  if (is_nan || isnan(value)) {
    memcpy(p, "\"NaN\"", 5);
    p += 5;
  } else if (isinf(value)) {
    const char *s = value > 0 ? "\"Infinity\"" : "\"-Infinity\"";
    size_t n = strlen(s);
    memcpy(p, s, n);
    p += n;
  } else {
    p += track_fmt_real(p, value);
  }
  memcpy(p, ",\"timestamp\":", 13);
  p += 13;
  p += track_fmt_i64(p, timestamp);
  memcpy(p, ",\"step\":", 8);
  p += 8;
  p += track_fmt_i64(p, step);
  *p++ = '}';
  *p = 0;
  w->out->len = (size_t)(p - w->out->data);
  return 0;
}

int track_history_end(struct track_history_writer *w, const char *next_page_token, struct err *e) {
  int rc;
  if (w->n == 0) { /* protobuf JSON leaves an empty list out */
    w->out->len = 0;
    if (w->out->data) w->out->data[0] = 0;
    rc = buf_putc(w->out, '{');
  } else {
    rc = buf_putc(w->out, ']');
  }
  if (!rc && next_page_token && *next_page_token)
    rc = buf_printf(w->out, "%s\"next_page_token\":\"%s\"", w->n ? "," : "", next_page_token);
  if (!rc) rc = buf_putc(w->out, '}');
  buf_fini(&w->prefix);
  if (rc) return err_set(e, ERR_NO_MEMORY, "out of memory writing a metric history");
  return 0;
}

int track_metric_history_write(struct db *db, const char *project_id, const char *run_id, const char *key,
                               int64_t max_results, const char *page_token, struct buf *out, struct err *e) {
  int64_t offset = 0;
  if (page_token && *page_token && track_page_token_decode(page_token, &offset, e)) return -(int)e->code;
  if (max_results < 0 || max_results > TRACKING_MAX_HISTORY_RESULTS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "Invalid value for request parameter max_results. It must be at most %d, but got value %lld",
                   TRACKING_MAX_HISTORY_RESULTS, (long long)max_results);
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -(int)e->code;
  struct track_run r;
  int rc = track_run_load(c, project_id, run_id, &r, e);
  if (rc) goto out;
  struct track_series_it it;
  if ((rc = track_series_open(&it, c, run_id, key, TRACK_SERIES_ALL, 0, 0, offset, e))) goto out;
  struct track_history_writer w;
  if ((rc = track_history_begin(&w, out, key, e))) {
    track_series_close(&it);
    goto out;
  }
  char next[TRACKING_PAGE_TOKEN_MAX] = "";
  int64_t n = 0;
  struct track_point p;
  while ((rc = track_series_next(&it, &p, e)) == 1) {
    if (max_results > 0 && n == max_results) {
      track_page_token_encode(offset + n, next);
      break;
    }
    if (track_history_point(&w, p.v, p.nan, p.ts, p.step) < 0) {
      rc = err_set(e, ERR_NO_MEMORY, "out of memory writing a metric history");
      break;
    }
    n++;
  }
  track_series_close(&it);
  if (rc < 0) {
    buf_fini(&w.prefix);
    goto out;
  }
  rc = track_history_end(&w, next, e);
out:
  db_reader_release(db, c);
  return rc;
}
