/* serve/number: the numeric core of the prediction protocols — scanning JSON
 * numbers without allocating, the coercion rules every element goes
 * through, FP16/BF16 rounding, and shortest round-trip formatting. */
#include "proto.h"

#include <endian.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 10^0..10^22 are exact doubles (5^22 < 2^53): one multiply or divide by
 * them rounds once (Clinger's fast path). */
static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                             1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* x87 extended precision holds any 19-digit mantissa and 10^0..10^27
 * exactly (5^27 < 2^64), so m*10^k rounds once to 64 bits; the second
 * rounding to double is then right unless the first landed exactly on a
 * midpoint between two doubles, which the low 11 bits show. */
#if defined(__x86_64__) && LDBL_MANT_DIG == 64
#define HAVE_LD80 1
static const long double lp10[] = {1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,
                                   1e7L,  1e8L,  1e9L,  1e10L, 1e11L, 1e12L, 1e13L,
                                   1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L, 1e20L,
                                   1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L};
#define LD_MAX_POW 27

static bool ld_round(long double r, double *out) {
  uint64_t sig;
  memcpy(&sig, &r, sizeof sig); /* the 64-bit significand, explicit integer bit included */
  if ((sig & 0x7ff) == 0x400) return false;
  *out = (double)r;
  return true;
}
#else
#define HAVE_LD80 0
#endif

/* m * 10^k as the correctly rounded double, when cheap arithmetic can
 * prove it; false sends the caller to strtod. */
static bool dec_exact(uint64_t m, int k, double *out) {
  if (m == 0) {
    *out = 0.0;
    return true;
  }
  if (m <= (1ull << 53) && k >= -22 && k <= 22) {
    *out = k >= 0 ? (double)m * p10[k] : (double)m / p10[-k];
    return true;
  }
#if HAVE_LD80
  if (k >= -LD_MAX_POW && k <= LD_MAX_POW) {
    long double lm = (long double)m;
    return ld_round(k >= 0 ? lm * lp10[k] : lm / lp10[-k], out);
  }
#endif
  return false;
}

static inline bool is_digit(char c) { return (unsigned char)(c - '0') < 10; }

/* Eight ASCII bytes at a time (little-endian words): whether all are
 * digits, and their value. A byte >= 0xfa can carry into its neighbour in
 * the test, which only makes it answer "no" (that byte is no digit). */
static inline uint64_t load8(const char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return le64toh(v);
}
static inline bool digits8(uint64_t v) {
  return ((v & 0xf0f0f0f0f0f0f0f0ull) |
          (((v + 0x0606060606060606ull) & 0xf0f0f0f0f0f0f0f0ull) >> 4)) == 0x3333333333333333ull;
}
static inline uint64_t value8(uint64_t v) {
  v -= 0x3030303030303030ull;
  v = v * 10 + (v >> 8); /* pairs */
  v = (((v & 0x000000ff000000ffull) * 0x000f424000000064ull) +
       (((v >> 16) & 0x000000ff000000ffull) * 0x0000271000000001ull)) >>
      32;
  return v & 0xffffffffull;
}

size_t serve_num_scan(const char *p, const char *end, struct serve_num *n) {
  const char *s = p;
  uint64_t m = 0;
  int nd = 0; /* significant digits in m (at most 19) */
  int32_t adj = 0;
  bool trunc = false;
  n->neg = false;
  n->ival_ok = false;
  if (s < end && *s == '-') {
    n->neg = true;
    s++;
  }
  if (s >= end) return 0;
  const char *b = s;
  if (*s == '0') {
    s++;
    n->ival = 0;
    n->ival_ok = true;
  } else if (*s >= '1' && *s <= '9') {
    while (end - s >= 8 && nd <= 11 && digits8(load8(s))) {
      m = m * 100000000u + value8(load8(s));
      nd += 8;
      s += 8;
    }
    while (s < end && is_digit(*s)) {
      if (nd < 19) {
        m = m * 10 + (uint64_t)(*s - '0');
        nd++;
      } else {
        trunc |= *s != '0';
        if (adj < 100000) adj++;
      }
      s++;
    }
    size_t nint = (size_t)(s - b);
    if (nint < 20) {
      n->ival = m;
      n->ival_ok = true;
    } else if (nint == 20) { /* up to 18446744073709551615 */
      unsigned d = (unsigned)(b[19] - '0');
      if (m < 1844674407370955161ull || (m == 1844674407370955161ull && d <= 5)) {
        n->ival = m * 10 + d;
        n->ival_ok = true;
      }
    }
  } else {
    return 0;
  }
  bool integer = true;
  if (s < end && *s == '.') {
    b = ++s;
    if (m == 0)
      while (s < end && *s == '0') { /* leading zeros of a fraction are not significant */
        s++;
        if (adj > -100000) adj--;
      }
    while (end - s >= 8 && nd <= 11 && digits8(load8(s))) {
      m = m * 100000000u + value8(load8(s));
      nd += 8;
      adj -= 8;
      s += 8;
    }
    while (s < end && is_digit(*s)) {
      if (nd < 19) {
        m = m * 10 + (uint64_t)(*s - '0');
        nd++;
        adj--;
      } else {
        trunc |= *s != '0';
      }
      s++;
    }
    if (s == b) return 0;
    integer = false;
  }
  if (s < end && (*s == 'e' || *s == 'E')) {
    s++;
    bool eneg = false;
    if (s < end && (*s == '+' || *s == '-')) eneg = *s++ == '-';
    if (s >= end || !is_digit(*s)) return 0;
    integer = false;
    int32_t ev = 0;
    while (s < end && is_digit(*s)) {
      if (ev < 100000) ev = ev * 10 + (*s - '0'); /* far past any double's range: clamp */
      s++;
    }
    adj += eneg ? -ev : ev;
  }
  n->mant = m;
  n->exp10 = adj;
  n->integer = integer;
  n->truncated = trunc;
  if (!integer) n->ival_ok = false;
  return (size_t)(s - p);
}

size_t serve_num_skip(const char *p, const char *end) {
  const char *s = p;
  if (s < end && *s == '-') s++;
  if (s >= end) return 0;
  if (*s == '0') {
    s++;
  } else if (*s >= '1' && *s <= '9') {
    while (end - s >= 8 && digits8(load8(s))) s += 8;
    while (s < end && is_digit(*s)) s++;
  } else {
    return 0;
  }
  if (s < end && *s == '.') {
    const char *b = ++s;
    while (end - s >= 8 && digits8(load8(s))) s += 8;
    while (s < end && is_digit(*s)) s++;
    if (s == b) return 0;
  }
  if (s < end && (*s == 'e' || *s == 'E')) {
    s++;
    if (s < end && (*s == '+' || *s == '-')) s++;
    const char *b = s;
    while (s < end && is_digit(*s)) s++;
    if (s == b) return 0;
  }
  return (size_t)(s - p);
}

int serve_num_to_f64(const struct serve_num *n, const char *text, size_t len, double *out) {
  double d;
  if (!n->truncated && n->exp10 > -400 && n->exp10 < 400 && dec_exact(n->mant, n->exp10, &d)) {
    *out = n->neg ? -d : d;
    return 0;
  }
  if (n->mant == 0) { /* "0.000...0e99999" */
    *out = n->neg ? -0.0 : 0.0;
    return 0;
  }
  /* strtod needs a terminated copy; numbers are short except in hostile
   * input, which may cost a malloc */
  char tmp[128], *s = tmp;
  if (len >= sizeof tmp && !(s = malloc(len + 1))) return -1;
  memcpy(s, text, len);
  s[len] = 0;
  d = strtod(s, NULL);
  if (s != tmp) free(s);
  if (isinf(d)) return -1;
  *out = d;
  return 0;
}

/* ---- FP16 / BF16 ------------------------------------------------------------ */

/* Rounds d to a binary format with ebits of exponent and mbits of fraction
 * (IEEE layout, subnormals, ties to even), straight from the double's bits
 * so there is only one rounding. */
static uint16_t f64_to_small(double d, int ebits, int mbits) {
  uint64_t b;
  memcpy(&b, &d, sizeof b);
  uint32_t sign = (uint32_t)(b >> 63) << (ebits + mbits);
  int e = (int)((b >> 52) & 0x7ff);
  uint64_t f = b & ((1ull << 52) - 1);
  uint32_t expmax = (1u << ebits) - 1;
  if (e == 0x7ff) return (uint16_t)(sign | (expmax << mbits) | (f ? 1u << (mbits - 1) : 0));
  if (e == 0) return (uint16_t)sign; /* double subnormals are far below both formats' smallest */
  int bias = (1 << (ebits - 1)) - 1;
  int ue = e - 1023;
  uint64_t m = f | (1ull << 52); /* value = m * 2^(ue - 52) */
  int te = ue < 1 - bias ? 1 - bias : ue;
  int shift = 52 - mbits + (te - ue);
  if (shift > 63) return (uint16_t)sign; /* under half the smallest subnormal */
  uint64_t q = m >> shift, rem = m & ((1ull << shift) - 1), half = 1ull << (shift - 1);
  if (rem > half || (rem == half && (q & 1))) q++;
  uint32_t bits;
  if (ue < 1 - bias)
    bits = (uint32_t)q; /* subnormal; rounding up to 2^mbits lands on the smallest normal */
  else
    bits = ((uint32_t)(te + bias) << mbits) + (uint32_t)q - (1u << mbits);
  if (bits >= expmax << mbits) bits = expmax << mbits;
  return (uint16_t)(sign | bits);
}

uint16_t serve_f64_to_f16(double d) { return f64_to_small(d, 5, 10); }
uint16_t serve_f64_to_bf16(double d) { return f64_to_small(d, 8, 7); }

double serve_f16_to_f64(uint16_t h) {
  int e = (h >> 10) & 31;
  int f = h & 1023;
  double v;
  if (e == 0)
    v = ldexp(f, -24);
  else if (e == 31)
    v = f ? NAN : INFINITY;
  else
    v = ldexp(1024 + f, e - 25);
  return (h & 0x8000) ? -v : v;
}

double serve_bf16_to_f64(uint16_t h) {
  uint32_t b = (uint32_t)h << 16;
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}

static bool f16_inf(uint16_t h) { return (h & 0x7fff) == 0x7c00; }
static bool bf16_inf(uint16_t h) { return (h & 0x7fff) == 0x7f80; }

/* ---- element conversion ------------------------------------------------------ */

bool serve_dtype_is_float(enum serve_dtype t) {
  return t == SERVE_FP16 || t == SERVE_BF16 || t == SERVE_FP32 || t == SERVE_FP64;
}
bool serve_dtype_is_int(enum serve_dtype t) { return t >= SERVE_UINT8 && t <= SERVE_INT64; }

#define PUT(type, v)                                                                               \
  do {                                                                                             \
    type x_ = (type)(v);                                                                           \
    memcpy(dst, &x_, sizeof x_);                                                                   \
  } while (0)

/* Finite d into a float type; a finite value the type cannot hold is out
 * of range, while NaN and Inf pass (the NaN/Inf policy is validation's). */
static enum serve_conv store_float(enum serve_dtype dt, double d, void *dst) {
  switch (dt) {
  case SERVE_FP64: PUT(double, d); return SERVE_CONV_OK;
  case SERVE_FP32: {
    float f = (float)d;
    if (isinf(f) && isfinite(d)) return SERVE_CONV_RANGE;
    PUT(float, f);
    return SERVE_CONV_OK;
  }
  case SERVE_FP16: {
    uint16_t h = serve_f64_to_f16(d);
    if (f16_inf(h) && isfinite(d)) return SERVE_CONV_RANGE;
    PUT(uint16_t, h);
    return SERVE_CONV_OK;
  }
  case SERVE_BF16: {
    uint16_t h = serve_f64_to_bf16(d);
    if (bf16_inf(h) && isfinite(d)) return SERVE_CONV_RANGE;
    PUT(uint16_t, h);
    return SERVE_CONV_OK;
  }
  default: return SERVE_CONV_RANGE;
  }
}

enum serve_conv serve_store_i64(enum serve_dtype dt, int64_t v, void *dst) {
  switch (dt) {
  case SERVE_BOOL: return SERVE_CONV_NOT_BOOL;
  case SERVE_BYTES: return SERVE_CONV_NOT_BYTES;
  case SERVE_UINT8:
    if (v < 0 || v > UINT8_MAX) return SERVE_CONV_RANGE;
    PUT(uint8_t, v);
    return SERVE_CONV_OK;
  case SERVE_UINT16:
    if (v < 0 || v > UINT16_MAX) return SERVE_CONV_RANGE;
    PUT(uint16_t, v);
    return SERVE_CONV_OK;
  case SERVE_UINT32:
    if (v < 0 || v > (int64_t)UINT32_MAX) return SERVE_CONV_RANGE;
    PUT(uint32_t, v);
    return SERVE_CONV_OK;
  case SERVE_UINT64:
    if (v < 0) return SERVE_CONV_RANGE;
    PUT(uint64_t, v);
    return SERVE_CONV_OK;
  case SERVE_INT8:
    if (v < INT8_MIN || v > INT8_MAX) return SERVE_CONV_RANGE;
    PUT(int8_t, v);
    return SERVE_CONV_OK;
  case SERVE_INT16:
    if (v < INT16_MIN || v > INT16_MAX) return SERVE_CONV_RANGE;
    PUT(int16_t, v);
    return SERVE_CONV_OK;
  case SERVE_INT32:
    if (v < INT32_MIN || v > INT32_MAX) return SERVE_CONV_RANGE;
    PUT(int32_t, v);
    return SERVE_CONV_OK;
  case SERVE_INT64: PUT(int64_t, v); return SERVE_CONV_OK;
  case SERVE_FP32:
    PUT(float, v);
    return SERVE_CONV_OK; /* one rounding, straight from the integer */
  case SERVE_FP64: PUT(double, v); return SERVE_CONV_OK;
  default: return store_float(dt, (double)v, dst);
  }
}

enum serve_conv serve_store_u64(enum serve_dtype dt, uint64_t v, void *dst) {
  if (v <= INT64_MAX) return serve_store_i64(dt, (int64_t)v, dst);
  switch (dt) {
  case SERVE_BOOL: return SERVE_CONV_NOT_BOOL;
  case SERVE_BYTES: return SERVE_CONV_NOT_BYTES;
  case SERVE_UINT64: PUT(uint64_t, v); return SERVE_CONV_OK;
  case SERVE_FP32: PUT(float, v); return SERVE_CONV_OK;
  case SERVE_FP64: PUT(double, v); return SERVE_CONV_OK;
  case SERVE_FP16:
  case SERVE_BF16: return store_float(dt, (double)v, dst);
  default: return SERVE_CONV_RANGE;
  }
}

enum serve_conv serve_store_f64(enum serve_dtype dt, double d, void *dst) {
  if (dt == SERVE_BOOL) return SERVE_CONV_NOT_BOOL;
  if (dt == SERVE_BYTES) return SERVE_CONV_NOT_BYTES;
  if (serve_dtype_is_float(dt)) return store_float(dt, d, dst);
  if (!isfinite(d)) return SERVE_CONV_NONFINITE;
  if (d != trunc(d)) return SERVE_CONV_FRACTION;
  /* both bounds are powers of two, so the comparisons are exact */
  if (d >= -9223372036854775808.0 && d < 9223372036854775808.0)
    return serve_store_i64(dt, (int64_t)d, dst);
  if (d >= 0 && d < 18446744073709551616.0) return serve_store_u64(dt, (uint64_t)d, dst);
  return SERVE_CONV_RANGE;
}

enum serve_conv serve_store_bool(enum serve_dtype dt, bool v, void *dst) {
  if (dt == SERVE_BYTES) return SERVE_CONV_NOT_BYTES;
  if (dt != SERVE_BOOL) return SERVE_CONV_BOOL;
  PUT(uint8_t, v ? 1 : 0);
  return SERVE_CONV_OK;
}

enum serve_conv serve_store_num(enum serve_dtype dt, const struct serve_num *n, const char *text,
                                size_t len, void *dst) {
  if (dt == SERVE_BOOL) return SERVE_CONV_NOT_BOOL;
  if (dt == SERVE_BYTES) return SERVE_CONV_NOT_BYTES;
  if (n->ival_ok) {
    if (!n->neg) return serve_store_u64(dt, n->ival, dst);
    if (n->ival <= (1ull << 63))
      return serve_store_i64(dt, n->ival == (1ull << 63) ? INT64_MIN : -(int64_t)n->ival, dst);
    if (!serve_dtype_is_float(dt)) return SERVE_CONV_RANGE;
  }
  double d;
  if (serve_num_to_f64(n, text, len, &d)) return SERVE_CONV_RANGE;
  return serve_store_f64(dt, d, dst);
}

void serve_val_load(enum serve_dtype dt, const void *data, size_t i, struct serve_val *v) {
  const unsigned char *p = (const unsigned char *)data + i * serve_dtype_size(dt);
#define GET(type, field, kind_)                                                                    \
  do {                                                                                             \
    type x_;                                                                                       \
    memcpy(&x_, p, sizeof x_);                                                                     \
    v->kind = kind_;                                                                               \
    v->field = x_;                                                                                 \
  } while (0)
  switch (dt) {
  case SERVE_BOOL:
    v->kind = SERVE_VAL_BOOL;
    v->b = *p != 0;
    break;
  case SERVE_UINT8: GET(uint8_t, i, SERVE_VAL_I64); break;
  case SERVE_UINT16: GET(uint16_t, i, SERVE_VAL_I64); break;
  case SERVE_UINT32: GET(uint32_t, i, SERVE_VAL_I64); break;
  case SERVE_UINT64: GET(uint64_t, u, SERVE_VAL_U64); break;
  case SERVE_INT8: GET(int8_t, i, SERVE_VAL_I64); break;
  case SERVE_INT16: GET(int16_t, i, SERVE_VAL_I64); break;
  case SERVE_INT32: GET(int32_t, i, SERVE_VAL_I64); break;
  case SERVE_INT64: GET(int64_t, i, SERVE_VAL_I64); break;
  case SERVE_FP16: {
    uint16_t h;
    memcpy(&h, p, 2);
    v->kind = SERVE_VAL_F64;
    v->f = serve_f16_to_f64(h);
    break;
  }
  case SERVE_BF16: {
    uint16_t h;
    memcpy(&h, p, 2);
    v->kind = SERVE_VAL_F64;
    v->f = serve_bf16_to_f64(h);
    break;
  }
  case SERVE_FP32: GET(float, f, SERVE_VAL_F64); break;
  case SERVE_FP64: GET(double, f, SERVE_VAL_F64); break;
  default:
    v->kind = SERVE_VAL_I64;
    v->i = 0;
    break;
  }
#undef GET
}

enum serve_conv serve_val_store(enum serve_dtype dt, const struct serve_val *v, void *dst) {
  switch (v->kind) {
  case SERVE_VAL_I64: return serve_store_i64(dt, v->i, dst);
  case SERVE_VAL_U64: return serve_store_u64(dt, v->u, dst);
  case SERVE_VAL_F64: return serve_store_f64(dt, v->f, dst);
  default: return serve_store_bool(dt, v->b, dst);
  }
}

/* ---- shortest formatting -------------------------------------------------------- */

static size_t put_u64(char *buf, uint64_t v) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
  return n;
}

size_t serve_fmt_u64(char *buf, uint64_t v) {
  size_t n = put_u64(buf, v);
  buf[n] = 0;
  return n;
}

size_t serve_fmt_i64(char *buf, int64_t v) {
  if (v >= 0) return serve_fmt_u64(buf, (uint64_t)v);
  buf[0] = '-';
  return 1 + serve_fmt_u64(buf + 1, v == INT64_MIN ? (1ull << 63) : (uint64_t)-v);
}

/* Digits m times 10^-k, written the way Python's repr writes floats: plain
 * notation from 1e-4 up to 1e16, scientific outside, ".0" on whole values. */
static size_t put_dec(char *buf, bool neg, uint64_t m, int k) {
  while (m && m % 10 == 0) {
    m /= 10;
    k--;
  }
  char dg[24];
  size_t nd = put_u64(dg, m), n = 0;
  int e = (int)nd - 1 - k; /* exponent of the first digit */
  if (neg) buf[n++] = '-';
  if (e >= 16 || e < -4) {
    buf[n++] = dg[0];
    if (nd > 1) {
      buf[n++] = '.';
      memcpy(buf + n, dg + 1, nd - 1);
      n += nd - 1;
    }
    buf[n++] = 'e';
    buf[n++] = e < 0 ? '-' : '+';
    int ae = e < 0 ? -e : e;
    if (ae < 10) buf[n++] = '0';
    n += put_u64(buf + n, (uint64_t)ae);
  } else if (e >= 0) {
    if ((int)nd <= e + 1) {
      memcpy(buf + n, dg, nd);
      n += nd;
      for (int i = (int)nd; i <= e; i++) buf[n++] = '0';
      buf[n++] = '.';
      buf[n++] = '0';
    } else {
      memcpy(buf + n, dg, (size_t)e + 1);
      n += (size_t)e + 1;
      buf[n++] = '.';
      memcpy(buf + n, dg + e + 1, nd - (size_t)e - 1);
      n += nd - (size_t)e - 1;
    }
  } else {
    buf[n++] = '0';
    buf[n++] = '.';
    for (int i = -1; i > e; i--) buf[n++] = '0';
    memcpy(buf + n, dg, nd);
    n += nd;
  }
  buf[n] = 0;
  return n;
}

/* Rough floor(log10(a)), possibly one too low; the search below only
 * needs it to pick the scale, and it checks every candidate. */
static int est_e10(double a) {
  int e2;
  frexp(a, &e2);
  return (int)floor((e2 - 1) * 0.30102999566398120);
}

/* m * 10^k correctly rounded, always: the cheap proof when there is one,
 * else strtod on the digits (midpoint ties, exponents far from 0). */
static double dec_to_double(uint64_t m, int k) {
  double c;
  if (dec_exact(m, k, &c)) return c;
  char t[48];
  snprintf(t, sizeof t, "%llue%d", (unsigned long long)m, k);
  return strtod(t, NULL);
}

double serve_dec_to_f64(uint64_t m, int k) { return dec_to_double(m, k); }

/* For FP32 a double that is off by a couple of ulps still rounds to the
 * right float unless a float midpoint lies that close; float midpoints are
 * doubles whose low 29 bits are exactly 1 << 28, so the bits say. Outside
 * that window (and near float's subnormal and overflow edges) the exact
 * double is computed first. */
int serve_dec_to_f32(uint64_t m, int k, float *out) {
  double d;
  if (m == 0) {
    *out = 0.0f;
    return 0;
  }
  if (k >= -22 && k <= 22) {
    d = k >= 0 ? (double)m * p10[k] : (double)m / p10[-k]; /* exact double when m <= 2^53 */
    uint64_t bits;
    memcpy(&bits, &d, 8);
    int64_t dist = (int64_t)(bits & 0x1fffffff) - 0x10000000;
    if ((m <= (1ull << 53) || dist > 4 || dist < -4) && d > 2.4e-38 && d < 3.0e38) {
      *out = (float)d;
      return 0;
    }
  }
  d = dec_to_double(m, k);
  float f = (float)d;
  if (isinf(f)) return -1;
  *out = f;
  return 0;
}

/* round(a * 10^k) for the digit search: the scale need not be exact (every
 * candidate is checked), only close enough to find the nearest digits. */
static bool scale_digits(double a, int k, int p, uint64_t *m) {
  if (p <= 15 && k >= -22 && k <= 22) { /* one double rounding is close enough below 2^53 */
    double s = k >= 0 ? a * p10[k] : a / p10[-k];
    if (!(s < 9007199254740992.0)) return false;
    *m = (uint64_t)llround(s);
    return true;
  }
#if HAVE_LD80
  long double s = a;
  for (; k > LD_MAX_POW; k -= LD_MAX_POW) s *= lp10[LD_MAX_POW];
  for (; k < -LD_MAX_POW; k += LD_MAX_POW) s /= lp10[LD_MAX_POW];
  s = k >= 0 ? s * lp10[k] : s / lp10[-k];
  if (!(s < 1e19L)) return false;
  *m = (uint64_t)llroundl(s);
#else
  double s = a;
  for (; k > 22; k -= 22) s *= p10[22];
  for (; k < -22; k += 22) s /= p10[22];
  s = k >= 0 ? s * p10[k] : s / p10[-k];
  if (!(s < 1e19)) return false;
  *m = (uint64_t)llround(s);
#endif
  return true;
}

/* Whether m*10^-k is exactly the double c (then reading it as a float
 * rounds once, as strtof does, even on a midpoint). */
static bool dec_is_double(uint64_t m, int k, double c) {
  if (k <= 0) return c <= 9007199254740992.0; /* a whole number that small is exact */
  uint64_t p5 = 1;
  for (int i = 0; i < k; i++) {
    if (p5 > UINT64_MAX / 5) return false;
    p5 *= 5;
  }
  return m % p5 == 0 && m / p5 <= (1ull << 53);
}

/* p significant digits of float f (a = |f|): the candidate m*10^-k reads
 * back as f, and no double rounding can read it otherwise (a decimal that
 * rounds to exactly a midpoint between two floats is refused unless the
 * decimal is that double itself). */
static bool try_f32(double a, float fa, int e10, int p, uint64_t *m_out, int *k_out,
                    double *c_out) {
  int k = p - 1 - e10;
  uint64_t m;
  if (!scale_digits(a, k, p, &m)) return false;
  double c = dec_to_double(m, -k);
  float f2 = (float)c;
  if (f2 != fa) return false;
  if ((double)f2 != c) {
    float nb = nextafterf(f2, c > (double)f2 ? INFINITY : -INFINITY);
    if (c == ((double)f2 + (double)nb) * 0.5 && !dec_is_double(m, k, c)) return false;
  }
  *m_out = m;
  *k_out = k;
  *c_out = c;
  return true;
}

/* Shortest digits of float f: a binary search over the digit count (if p
 * digits read back, so do p+1). */
static bool shortest_f32(float f, uint64_t *m, int *k, double *c) {
  double a = fabs((double)f);
  float fa = fabsf(f);
  int e10 = est_e10(a);
  int lo = 1, hi = 9;
  bool found = false;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    uint64_t mm;
    int kk;
    double cc;
    if (try_f32(a, fa, e10, mid, &mm, &kk, &cc)) {
      *m = mm;
      *k = kk;
      *c = cc;
      found = true;
      hi = mid - 1;
    } else {
      lo = mid + 1;
    }
  }
  return found;
}

static size_t fmt_fallback(char *buf, double d, int prec) {
  int n = snprintf(buf, SERVE_NUM_TEXT - 3, "%.*g", prec, d);
  if (n < 0) n = 0;
  if (!strpbrk(buf, ".e")) {
    buf[n++] = '.';
    buf[n++] = '0';
    buf[n] = 0;
  }
  return (size_t)n;
}

size_t serve_fmt_f32(char *buf, float f) {
  if (f == 0) return (size_t)snprintf(buf, SERVE_NUM_TEXT, "%s", signbit(f) ? "-0.0" : "0.0");
  uint64_t m;
  int k;
  double c;
  if (shortest_f32(f, &m, &k, &c)) return put_dec(buf, signbit(f) != 0, m, k);
  return fmt_fallback(buf, f, 9);
}

double serve_f32_pretty(float f) {
  uint64_t m;
  int k;
  double c;
  if (f == 0 || !isfinite(f) || !shortest_f32(f, &m, &k, &c)) return f;
  return signbit(f) ? -c : c;
}

static bool try_f64(double a, int e10, int p, uint64_t *m_out, int *k_out) {
  int k = p - 1 - e10;
  uint64_t m;
  if (!scale_digits(a, k, p, &m) || dec_to_double(m, -k) != a) return false;
  *m_out = m;
  *k_out = k;
  return true;
}

size_t serve_fmt_f64(char *buf, double d) {
  if (d == 0) return (size_t)snprintf(buf, SERVE_NUM_TEXT, "%s", signbit(d) ? "-0.0" : "0.0");
  double a = fabs(d);
  int e10 = est_e10(a);
  int lo = 1, hi = 17;
  uint64_t m = 0;
  int k = 0;
  bool found = false;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    uint64_t mm;
    int kk;
    if (try_f64(a, e10, mid, &mm, &kk)) {
      m = mm;
      k = kk;
      found = true;
      hi = mid - 1;
    } else {
      lo = mid + 1;
    }
  }
  if (found) return put_dec(buf, d < 0, m, k);
  return fmt_fallback(buf, d, 17);
}

/* ---- messages and strings ------------------------------------------------------ */

const char *serve_shape_str(char *buf, size_t cap, const int64_t *shape, int ndim) {
  size_t n = 0;
  buf[n++] = '[';
  for (int i = 0; i < ndim && n + 24 < cap; i++) {
    if (i) buf[n++] = ',';
    n += serve_fmt_i64(buf + n, shape[i]);
  }
  buf[n++] = ']';
  buf[n] = 0;
  return buf;
}

const char *serve_index_str(char *buf, size_t cap, const int64_t *shape, int ndim, int64_t flat) {
  if (ndim <= 1) {
    snprintf(buf, cap, "element %lld", (long long)flat);
    return buf;
  }
  int64_t idx[SERVE_MAX_DIMS];
  for (int d = ndim - 1; d >= 0; d--) {
    int64_t dim = shape[d] > 0 ? shape[d] : 1;
    idx[d] = flat % dim;
    flat /= dim;
  }
  size_t n = (size_t)snprintf(buf, cap, "element ");
  if (n >= cap) return buf;
  serve_shape_str(buf + n, cap - n, idx, ndim);
  return buf;
}

int serve_conv_err(struct err *e, enum serve_conv c, const char *input, const char *elem,
                   enum serve_dtype dt, const char *value) {
  const char *t = serve_dtype_name(dt);
  switch (c) {
  case SERVE_CONV_RANGE:
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "input '%s' %s: %s is out of range for %s",
                   input, elem, value, t);
  case SERVE_CONV_FRACTION:
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "input '%s' %s: %s is not a whole number, which %s needs", input, elem, value,
                   t);
  case SERVE_CONV_NONFINITE:
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "input '%s' %s: %s cannot be stored in %s",
                   input, elem, value, t);
  case SERVE_CONV_NOT_BOOL:
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "input '%s' %s: BOOL takes true or false, not %s", input, elem, value);
  case SERVE_CONV_BOOL:
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "input '%s' %s: %s is a bool; %s takes numbers",
                   input, elem, value, t);
  case SERVE_CONV_NOT_BYTES:
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "input '%s' %s: BYTES takes strings, not %s",
                   input, elem, value);
  case SERVE_CONV_STRING:
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "input '%s' %s: a string; %s takes %s", input,
                   elem, t, dt == SERVE_BOOL ? "true or false" : "numbers");
  case SERVE_CONV_NULL:
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "input '%s' %s: null is not a value of %s",
                   input, elem, t);
  case SERVE_CONV_NESTED:
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "input '%s' %s: %s where a single %s value belongs", input, elem, value, t);
  default: return err_set(e, ERR_INTERNAL, "input '%s' %s: conversion failed", input, elem);
  }
}

/* Length of the well-formed UTF-8 sequence at p (at most n bytes; RFC 3629:
 * no overlongs, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n) {
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    return n >= 3 && p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    return n >= 4 && p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80 ? 4
                                                                                                : 0;
  }
  return 0;
}

int serve_json_escape_n(struct buf *b, const char *s, size_t n) {
  /* worst case 6 bytes per input byte, plus quotes */
  if (n > (SIZE_MAX - 3) / 6 || buf_reserve(b, n * 6 + 2)) return -ERR_NO_MEMORY;
  char *o = b->data + b->len;
  const unsigned char *p = (const unsigned char *)s, *end = p + n;
  static const char hex[] = "0123456789abcdef";
  *o++ = '"';
  while (p < end) {
    unsigned char c = *p;
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      *o++ = (char)c;
      p++;
      continue;
    }
    if (c >= 0x80) {
      size_t l = utf8_len(p, (size_t)(end - p));
      if (l) {
        memcpy(o, p, l);
        o += l;
        p += l;
      } else {
        memcpy(o, "\\ufffd", 6);
        o += 6;
        p++;
      }
      continue;
    }
    *o++ = '\\';
    switch (c) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '\n': *o++ = 'n'; break;
    case '\r': *o++ = 'r'; break;
    case '\t': *o++ = 't'; break;
    default:
      *o++ = 'u';
      *o++ = '0';
      *o++ = '0';
      *o++ = hex[c >> 4];
      *o++ = hex[c & 15];
    }
    p++;
  }
  *o++ = '"';
  b->len = (size_t)(o - b->data);
  b->data[b->len] = 0;
  return 0;
}

json_t *serve_json_string_n(const char *s, size_t n) {
  json_t *v = json_stringn(s, n);
  if (v) return v;
  /* not UTF-8: copy with U+FFFD for each stray byte */
  struct buf b;
  buf_init(&b);
  if (n > SIZE_MAX / 3 || buf_reserve(&b, n * 3)) return NULL;
  const unsigned char *p = (const unsigned char *)s, *end = p + n;
  while (p < end) {
    size_t l = utf8_len(p, (size_t)(end - p));
    if (l) {
      buf_append(&b, p, l);
      p += l;
    } else {
      buf_append(&b, "\xef\xbf\xbd", 3);
      p++;
    }
  }
  v = json_stringn(b.data ? b.data : "", b.len);
  buf_fini(&b);
  return v;
}

int64_t serve_bytes_walk(const char *p, size_t n, int64_t count, int64_t *bad) {
  size_t off = 0;
  for (int64_t i = 0; i < count; i++) {
    uint32_t l;
    if (n - off < 4) {
      if (bad) *bad = i;
      return -1;
    }
    memcpy(&l, p + off, 4);
    l = le32toh(l);
    off += 4;
    if (n - off < l) {
      if (bad) *bad = i;
      return -1;
    }
    off += l;
  }
  return (int64_t)off;
}
