/* tests for serve/number: JSON number scanning against strtod, shortest
 * round-trip formatting, FP16/BF16 rounding against an exact oracle, and
 * the coercion rules every element goes through. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/proto.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) { /* xorshift64*: deterministic, so a failure reproduces */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ull;
}

static double parse_f64(const char *s) {
  struct serve_num n;
  size_t l = serve_num_scan(s, s + strlen(s), &n);
  cr_assert_eq(l, strlen(s), "scan of '%s' stopped at %zu", s, l);
  double d = 0;
  cr_assert_eq(serve_num_to_f64(&n, s, l, &d), 0, "'%s' did not convert", s);
  return d;
}

static void agree_with_strtod(const char *s) {
  double want = strtod(s, NULL), got = parse_f64(s);
  uint64_t a, b;
  memcpy(&a, &want, 8);
  memcpy(&b, &got, 8);
  cr_assert_eq(a, b, "'%s': got %.17g, strtod says %.17g", s, got, want);
}

Test(serve_number, scan_follows_the_json_grammar) {
  static const struct {
    const char *s;
    size_t len; /* 0: not a number */
  } cases[] = {{"0", 1},     {"-0", 2},       {"01", 1},  {"1.5", 3},       {"1.", 0},
               {".5", 0},    {"-", 0},        {"+1", 0},  {"1e5", 3},       {"1E+5", 4},
               {"1e-05", 5}, {"1e", 0},       {"1e+", 0}, {"-1.25e-3,", 8}, {"12]", 2},
               {"1.2.3", 3}, {"Infinity", 0}, {"NaN", 0}, {"0x10", 1},      {"- 1", 0}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    struct serve_num n;
    const char *s = cases[i].s;
    cr_assert_eq(serve_num_scan(s, s + strlen(s), &n), cases[i].len, "scan('%s')", s);
    cr_assert_eq(serve_num_skip(s, s + strlen(s)), cases[i].len, "skip('%s')", s);
  }
}

Test(serve_number, integers_are_exact_up_to_uint64) {
  struct serve_num n;
  const char *s = "18446744073709551615";
  serve_num_scan(s, s + strlen(s), &n);
  cr_assert(n.ival_ok && n.ival == UINT64_MAX);
  s = "18446744073709551616";
  serve_num_scan(s, s + strlen(s), &n);
  cr_assert(!n.ival_ok, "2^64 does not fit");
  s = "-9223372036854775808";
  serve_num_scan(s, s + strlen(s), &n);
  cr_assert(n.ival_ok && n.neg && n.ival == (1ull << 63));
  s = "1.0";
  serve_num_scan(s, s + strlen(s), &n);
  cr_assert(!n.ival_ok && !n.integer, "a fraction is not an integer token");
}

Test(serve_number, decimal_to_double_matches_strtod) {
  static const char *edge[] = {"0",
                               "-0",
                               "0.0",
                               "1",
                               "0.1",
                               "0.3",
                               "2.2250738585072014e-308",
                               "5e-324",
                               "1.7976931348623157e308",
                               "9007199254740993",
                               "9007199254740992.5",
                               "123456789012345678901234567890",
                               "0.000000000000000000000000000001234",
                               "1e-400",
                               "4.9406564584124654e-324",
                               "1.00000000000000011102230246251565404236316680908203125",
                               "1.00000000000000011102230246251565404236316680908203124",
                               "0.038075906433423026",
                               "-0.044641636506989144",
                               "152.13348416289594",
                               "3.4028234663852886e38",
                               "1e22",
                               "1e23",
                               "8.98846567431158e307",
                               "0.1000000000000000055511151231257827021181583404541015625",
                               "7e-10",
                               "2e-308"};
  for (size_t i = 0; i < sizeof edge / sizeof *edge; i++) agree_with_strtod(edge[i]);
  /* 100,000 random decimals: random digit strings and printed doubles */
  char s[64];
  for (int i = 0; i < 100000; i++) {
    uint64_t r = rnd();
    switch (i % 4) {
    case 0: { /* any double, 17 digits */
      double d;
      do {
        uint64_t b = rnd();
        memcpy(&d, &b, 8);
      } while (!isfinite(d));
      snprintf(s, sizeof s, "%.17g", d);
      break;
    }
    case 1: /* the values clients send: 15-17 digits near 1 */
      snprintf(s, sizeof s, "%.*g", 15 + (int)(r % 3),
               ((double)(r >> 11) / 9007199254740992.0 - 0.5) * 400);
      break;
    case 2: { /* 1-25 random digits with a random exponent */
      int nd = 1 + (int)(r % 25), n = 0;
      if (r & 64) s[n++] = '-';
      s[n++] = (char)('1' + rnd() % 9);
      if (nd > 1) s[n++] = '.';
      for (int k = 1; k < nd; k++) s[n++] = (char)('0' + rnd() % 10);
      snprintf(s + n, sizeof s - (size_t)n, "e%d", (int)(rnd() % 80) - 40);
      break;
    }
    default: /* exact halfway points between doubles, and their neighbours */
      snprintf(s, sizeof s, "%llu", (unsigned long long)((r >> 8) | (1ull << 54)) | 1ull);
      break;
    }
    agree_with_strtod(s);
  }
}

/* significant digits of a printed number: "100.0" has 1, "0.0250" 2 */
Test(serve_number, decimal_to_float_matches_strtod_then_float) {
  /* decimals right at and around float midpoints (where a double that is
   * a few ulps off would round the wrong way), and ordinary ones */
  char s[64];
  int checked = 0;
  for (int i = 0; i < 300000; i++) {
    float f;
    uint32_t b = (uint32_t)rnd() & 0x7fffffffu;
    memcpy(&f, &b, 4);
    if (!isfinite(f) || f > 3e38f) continue;
    double mid = ((double)f + (double)nextafterf(f, INFINITY)) / 2;
    double pick[3] = {mid, nextafter(mid, 0), nextafter(mid, INFINITY)};
    snprintf(s, sizeof s, "%.*g", 16 + (int)(rnd() % 4), pick[i % 3]);
    if (i % 5 == 0) snprintf(s, sizeof s, "%.*g", 1 + (int)(rnd() % 19), (double)f);
    struct serve_num n;
    size_t l = serve_num_scan(s, s + strlen(s), &n);
    cr_assert_eq(l, strlen(s));
    if (n.truncated) continue;
    float got, want = (float)strtod(s, NULL);
    if (isinf(want)) {
      cr_assert_eq(serve_dec_to_f32(n.mant, n.exp10, &got), -1, "%s overflows", s);
      continue;
    }
    cr_assert_eq(serve_dec_to_f32(n.mant, n.exp10, &got), 0, "%s", s);
    uint32_t gb, wb;
    memcpy(&gb, &got, 4);
    memcpy(&wb, &want, 4);
    cr_assert_eq(gb, wb, "%s: %.9g, want %.9g", s, (double)got, (double)want);
    checked++;
  }
  cr_assert_gt(checked, 200000);
  float f;
  cr_assert_eq(serve_dec_to_f32(34028236, 31, &f), -1, "3.4028236e38 is past FLT_MAX");
  cr_assert_eq(serve_dec_to_f32(1, -46, &f), 0);
  cr_assert_eq(f, 0.0f, "1e-46 is under half the smallest subnormal");
  cr_assert_eq(serve_dec_to_f32(14, -46, &f), 0);
  cr_assert_eq(f, 1.4e-45f);
}

static int digits_of(const char *s) {
  char d[64];
  int n = 0;
  for (; *s && *s != 'e' && n < 63; s++)
    if (*s >= '0' && *s <= '9' && (n || *s != '0')) d[n++] = *s;
  while (n && d[n - 1] == '0') n--;
  return n;
}

Test(serve_number, f64_text_is_shortest_and_round_trips) {
  char buf[SERVE_NUM_TEXT], shorter[400];
  for (int i = 0; i < 100000; i++) {
    double d;
    if (i % 2) {
      uint64_t b = rnd();
      memcpy(&d, &b, 8);
      if (!isfinite(d)) continue;
    } else {
      d = ((double)(rnd() >> 11) / 9007199254740992.0 - 0.5) * pow(10, (double)(rnd() % 20) - 8);
    }
    size_t n = serve_fmt_f64(buf, d);
    cr_assert_eq(n, strlen(buf));
    double back = strtod(buf, NULL);
    cr_assert(back == d && signbit(back) == signbit(d), "%.17g printed as %s", d, buf);
    /* no shorter decimal reads back (the fallback for extreme exponents
     * prints 17 digits, so only check what the search produced) */
    int p = digits_of(buf);
    if (p > 1) {
      snprintf(shorter, sizeof shorter, "%.*g", p - 1, d);
      cr_assert(strtod(shorter, NULL) != d, "%.17g: %s has %d digits but %s also reads back", d,
                buf, p, shorter);
    }
  }
}

Test(serve_number, f32_text_is_shortest_and_round_trips) {
  char buf[SERVE_NUM_TEXT], shorter[400];
  for (int i = 0; i < 200000; i++) {
    float f;
    uint32_t b = (uint32_t)rnd();
    memcpy(&f, &b, 4);
    if (!isfinite(f)) continue;
    serve_fmt_f32(buf, f);
    float back = (float)strtod(buf, NULL), back2 = strtof(buf, NULL);
    cr_assert(back == f && signbit(back) == signbit(f), "%.9g printed as %s", (double)f, buf);
    cr_assert(back2 == f, "%.9g printed as %s, which strtof reads as %.9g", (double)f, buf,
              (double)back2);
    int p = digits_of(buf);
    if (p > 1) {
      snprintf(shorter, sizeof shorter, "%.*g", p - 1, (double)f);
      cr_assert((float)strtod(shorter, NULL) != f, "%.9g: %s but %s also reads back", (double)f,
                buf, shorter);
    }
    cr_assert_eq((float)serve_f32_pretty(f), f);
  }
}

Test(serve_number, formats_like_python_repr) {
  static const struct {
    double d;
    bool f32;
    const char *want;
  } cases[] = {{0.1, true, "0.1"},
               {1.0, true, "1.0"},
               {-2.5, true, "-2.5"},
               {100.0, false, "100.0"},
               {1e16, false, "1e+16"},
               {1e15, false, "1000000000000000.0"},
               {0.0001, false, "0.0001"},
               {0.00001, false, "1e-05"},
               {123456789.0, false, "123456789.0"},
               {0.1, false, "0.1"},
               {1.0 / 3, false, "0.3333333333333333"},
               {3.4028234663852886e18, true, "3.4028236e+18"},
               {36176152.0, true, "36176150.0"},
               {-0.0, false, "-0.0"},
               {3.4028234663852886e38, true, "3.4028235e+38"},
               {1e-45, true, "1e-45"},
               {1e-20, true, "1e-20"},
               {0.0, true, "0.0"},
               {5e-324, false, "5e-324"},
               {152.13348416289594, false, "152.13348416289594"},
               {1.7976931348623157e308, false, "1.7976931348623157e+308"}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char buf[SERVE_NUM_TEXT];
    if (cases[i].f32)
      serve_fmt_f32(buf, (float)cases[i].d);
    else
      serve_fmt_f64(buf, cases[i].d);
    cr_assert_str_eq(buf, cases[i].want, "%.17g as %s", cases[i].d, cases[i].f32 ? "f32" : "f64");
  }
  char buf[SERVE_NUM_TEXT];
  cr_assert_str_eq((serve_fmt_i64(buf, INT64_MIN), buf), "-9223372036854775808");
  cr_assert_str_eq((serve_fmt_u64(buf, UINT64_MAX), buf), "18446744073709551615");
  cr_assert_eq(serve_f32_pretty(0.1f), 0.1, "0.1f reads as the double 0.1");
}

/* The oracle: every finite non-negative value of the format, decoded
 * exactly; the nearest one (ties to the even pattern) by exact midpoints,
 * which doubles hold since both formats have far fewer bits. */
static uint16_t oracle(double d, double (*dec)(uint16_t), uint16_t maxfinite, uint16_t inf) {
  double a = fabs(d);
  uint16_t sign = signbit(d) ? 0x8000 : 0;
  int lo = 0, hi = maxfinite;
  if (a >= dec(maxfinite)) {
    double next = dec(maxfinite) + (dec(maxfinite) - dec((uint16_t)(maxfinite - 1)));
    double mid = (dec(maxfinite) + next) / 2;
    if (a < mid) return sign | maxfinite;
    return sign | inf; /* at the midpoint the even choice is the overflow */
  }
  while (hi - lo > 1) { /* dec(lo) <= a < dec(hi) */
    int m = (lo + hi) / 2;
    if (dec((uint16_t)m) <= a)
      lo = m;
    else
      hi = m;
  }
  double mid = (dec((uint16_t)lo) + dec((uint16_t)hi)) / 2;
  int pick = a < mid ? lo : a > mid ? hi : (lo % 2 == 0 ? lo : hi);
  return (uint16_t)(sign | pick);
}

Test(serve_number, fp16_rounds_once_to_nearest_even) {
  /* figures numpy gives (np.float64(v).astype(np.float16)) */
  static const struct {
    double d;
    uint16_t h;
  } np[] = {{1.0 / 3, 0x3555},
            {65504.0, 0x7bff},
            {65519.99, 0x7bff},
            {65520.0, 0x7c00},
            {1e-7, 0x0002},
            {5.960464477539063e-08, 0x0001},
            {2.9802322387695312e-08, 0x0000},
            {2.980232536792755e-08, 0x0001},
            {0.1, 0x2e66},
            {1.0004882812509095, 0x3c01},
            {-2.5, 0xc100},
            {1e5, 0x7c00},
            {-0.0, 0x8000}};
  for (size_t i = 0; i < sizeof np / sizeof *np; i++)
    cr_assert_eq(serve_f64_to_f16(np[i].d), np[i].h, "%.17g -> %04x, numpy says %04x", np[i].d,
                 serve_f64_to_f16(np[i].d), np[i].h);
  /* 1 + 2^-11 + 2^-40 is above the midpoint: going through float first
   * would land on the midpoint and round down */
  cr_assert_eq(serve_f64_to_f16(1 + ldexp(1, -11) + ldexp(1, -40)), 0x3c01);
  cr_assert_eq(serve_f64_to_f16(NAN) & 0x7e00, 0x7e00);
  cr_assert_eq(serve_f64_to_f16(-INFINITY), 0xfc00);
  for (int i = 0; i < 200000; i++) {
    double d = ((double)(rnd() >> 11) / 9007199254740992.0) * pow(2, (double)(rnd() % 44) - 28);
    if (rnd() & 1) d = -d;
    uint16_t got = serve_f64_to_f16(d), want = oracle(d, serve_f16_to_f64, 0x7bff, 0x7c00);
    cr_assert_eq(got, want, "%.17g -> %04x, want %04x", d, got, want);
    cr_assert_eq(serve_f16_to_f64(got), copysign(serve_f16_to_f64(want), d));
  }
}

Test(serve_number, bf16_rounds_once_to_nearest_even) {
  cr_assert_eq(serve_f64_to_bf16(1.0), 0x3f80);
  cr_assert_eq(serve_f64_to_bf16(1 + ldexp(1, -8)), 0x3f80, "a tie goes to the even pattern");
  cr_assert_eq(serve_f64_to_bf16(1 + ldexp(1, -8) + ldexp(1, -30)), 0x3f81,
               "above the tie, even below float's bits");
  cr_assert_eq(serve_f64_to_bf16(3.0e38), 0x7f62);
  cr_assert_eq(serve_f64_to_bf16(3.4e38), 0x7f80, "past the largest finite: Inf");
  cr_assert_eq(serve_f64_to_bf16(-1.5), 0xbfc0);
  for (int i = 0; i < 200000; i++) {
    double d = ((double)(rnd() >> 11) / 9007199254740992.0) * pow(2, (double)(rnd() % 260) - 133);
    if (rnd() & 1) d = -d;
    uint16_t got = serve_f64_to_bf16(d), want = oracle(d, serve_bf16_to_f64, 0x7f7f, 0x7f80);
    cr_assert_eq(got, want, "%.17g -> %04x, want %04x", d, got, want);
  }
}

Test(serve_number, coercion_rules) {
  unsigned char b[8];
  cr_assert_eq(serve_store_i64(SERVE_UINT8, 255, b), SERVE_CONV_OK);
  cr_assert_eq(b[0], 255);
  cr_assert_eq(serve_store_i64(SERVE_UINT8, 256, b), SERVE_CONV_RANGE);
  cr_assert_eq(serve_store_i64(SERVE_INT8, -129, b), SERVE_CONV_RANGE);
  cr_assert_eq(serve_store_i64(SERVE_UINT64, -1, b), SERVE_CONV_RANGE);
  cr_assert_eq(serve_store_u64(SERVE_INT64, 1ull << 63, b), SERVE_CONV_RANGE);
  cr_assert_eq(serve_store_u64(SERVE_UINT64, UINT64_MAX, b), SERVE_CONV_OK);
  cr_assert_eq(serve_store_f64(SERVE_INT32, 3.0, b), SERVE_CONV_OK);
  int32_t i32;
  memcpy(&i32, b, 4);
  cr_assert_eq(i32, 3);
  cr_assert_eq(serve_store_f64(SERVE_INT32, 3.5, b), SERVE_CONV_FRACTION);
  cr_assert_eq(serve_store_f64(SERVE_INT64, NAN, b), SERVE_CONV_NONFINITE);
  cr_assert_eq(serve_store_f64(SERVE_INT64, 9223372036854775808.0, b), SERVE_CONV_RANGE);
  cr_assert_eq(serve_store_f64(SERVE_UINT64, 9223372036854775808.0, b), SERVE_CONV_OK);
  cr_assert_eq(serve_store_f64(SERVE_FP32, 1e39, b), SERVE_CONV_RANGE, "finite but past FLT_MAX");
  cr_assert_eq(serve_store_f64(SERVE_FP32, INFINITY, b), SERVE_CONV_OK,
               "Inf is validation's to refuse");
  cr_assert_eq(serve_store_f64(SERVE_FP16, 70000, b), SERVE_CONV_RANGE);
  cr_assert_eq(serve_store_i64(SERVE_FP16, 65504, b), SERVE_CONV_OK);
  cr_assert_eq(serve_store_i64(SERVE_BOOL, 1, b), SERVE_CONV_NOT_BOOL);
  cr_assert_eq(serve_store_bool(SERVE_FP32, true, b), SERVE_CONV_BOOL);
  cr_assert_eq(serve_store_bool(SERVE_BOOL, true, b), SERVE_CONV_OK);
  cr_assert_eq(b[0], 1);
  cr_assert_eq(serve_store_f64(SERVE_BYTES, 1, b), SERVE_CONV_NOT_BYTES);
  /* an integer token goes to FP32 in one rounding, not through double */
  struct serve_num n;
  const char *s = "16777217";
  size_t l = serve_num_scan(s, s + strlen(s), &n);
  float f;
  cr_assert_eq(serve_store_num(SERVE_FP32, &n, s, l, &f), SERVE_CONV_OK);
  cr_assert_eq(f, 16777216.0f);
  s = "-9223372036854775809";
  l = serve_num_scan(s, s + strlen(s), &n);
  cr_assert_eq(serve_store_num(SERVE_INT64, &n, s, l, b), SERVE_CONV_RANGE);
  cr_assert_eq(serve_store_num(SERVE_FP64, &n, s, l, b), SERVE_CONV_OK);
}

Test(serve_number, json_strings_are_always_valid) {
  struct buf b;
  buf_init(&b);
  static const char raw[] = {'a', 0, '"', '\\', '\n', (char)0xff, (char)0xc3, (char)0xa9, 0x7f};
  cr_assert_eq(serve_json_escape_n(&b, raw, sizeof raw), 0);
  cr_assert_str_eq(b.data, "\"a\\u0000\\\"\\\\\\n\\ufffd\xc3\xa9\\u007f\"");
  json_error_t je;
  json_t *v = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
  cr_assert_not_null(v, "%s", je.text);
  cr_assert_eq(json_string_length(v), 11, "a NUL \" \\ \\n U+FFFD(3 bytes) e-acute(2) DEL");
  json_decref(v);
  buf_fini(&b);
  json_t *s = serve_json_string_n(raw, sizeof raw);
  cr_assert_not_null(s);
  cr_assert_eq(json_string_length(s), 11, "0xff became the 3-byte U+FFFD");
  json_decref(s);
}
