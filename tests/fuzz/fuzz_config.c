/* tests/fuzz/fuzz_config: the config-file parser (through cfg_load and a
 * real file) against a reference written here from its contract, and the
 * number parsers config values go through (cfg_parse_size, str_to_i64,
 * str_to_u64) against strict references.
 *
 * The contract the reference encodes: one `key = value` per line, blank
 * lines and lines starting with '#' ignored, spaces and tabs around key and
 * value dropped, one pair of surrounding double quotes dropped, unknown keys
 * and ill-typed values refused with an error; a line is read whole or the
 * file is refused, never cut in two. */
#define FUZZ_NAME "fuzz_config"
#include "fuzz_common.h"
#include "base/base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* The parser reads lines into a 4096-byte buffer; longer lines must be read
 * whole or refused. */
#define LINE_LIMIT 4094

static const struct cfg_opt opts_template[] = {
    {"listen", "KILN_FUZZ_LISTEN", CFG_STR, "127.0.0.1:8080", "listen address", NULL, NULL},
    {"threads", "KILN_FUZZ_THREADS", CFG_INT, "0", "I/O threads", NULL, NULL},
    {"max-body", "KILN_FUZZ_MAX_BODY", CFG_SIZE, "64m", "largest request body", NULL, NULL},
    {"access-log", "KILN_FUZZ_ACCESS_LOG", CFG_BOOL, "false", "log every request", NULL, NULL},
    {"data", "KILN_FUZZ_DATA", CFG_STR, "", "data directory", NULL, NULL},
    {"a", "KILN_FUZZ_A", CFG_INT, "1", "a one-letter key", NULL, NULL},
};
#define NOPTS (sizeof opts_template / sizeof opts_template[0])


static char g_path[64];

static void cleanup(void) { unlink(g_path); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  log_set_quiet(true);
  unsetenv("KILN_CONFIG");
  for (size_t i = 0; i < NOPTS; i++) unsetenv(opts_template[i].env);
  str_copy(g_path, sizeof g_path, "/tmp/kiln-fuzz-config-XXXXXX");
  int fd = mkstemp(g_path);
  if (fd < 0) abort();
  close(fd);
  atexit(cleanup);
  return 0;
}

/* ---- strict references ------------------------------------------------------ */

static bool all_digits(const char *s, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

/* decimal digits into u64, false on overflow */
static bool digits_u64(const char *s, size_t n, uint64_t *out) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t d = (uint64_t)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

/* "123" or "-123", nothing else, in range */
static bool ref_i64(const char *s, int64_t *out) {
  bool neg = s[0] == '-';
  const char *d = s + (neg ? 1 : 0);
  size_t n = strlen(d);
  uint64_t u;
  if (!all_digits(d, n) || !digits_u64(d, n, &u)) return false;
  if (neg ? u > (uint64_t)INT64_MAX + 1 : u > (uint64_t)INT64_MAX) return false;
  *out = neg ? (int64_t)(0 - u) : (int64_t)u;
  return true;
}

static bool ref_u64(const char *s, uint64_t *out) {
  size_t n = strlen(s);
  return all_digits(s, n) && digits_u64(s, n, out);
}

/* digits, then optionally k|m|g (any case) optionally followed by "b", "i"
 * or "ib" (any case; 10k, 10kb, 10Ki, 10KiB): powers of 1024; overflow is an
 * error */
static bool ref_size(const char *s, uint64_t *out) {
  size_t n = 0;
  while (s[n] >= '0' && s[n] <= '9') n++;
  uint64_t v;
  if (n == 0 || !digits_u64(s, n, &v)) return false;
  const char *p = s + n;
  uint64_t mult = 1;
  if (*p) {
    switch (*p | 0x20) {
    case 'k': mult = 1ull << 10; break;
    case 'm': mult = 1ull << 20; break;
    case 'g': mult = 1ull << 30; break;
    default: return false;
    }
    p++;
    if ((p[0] | 0x20) == 'i') p++;
    if ((p[0] | 0x20) == 'b') p++;
    if (*p) return false;
  }
  if (v > UINT64_MAX / mult) return false;
  *out = v * mult;
  return true;
}

static bool ref_check(enum cfg_type t, const char *v) {
  int64_t i;
  uint64_t u;
  switch (t) {
  case CFG_INT: return ref_i64(v, &i);
  case CFG_SIZE: return ref_size(v, &u);
  case CFG_BOOL:
    return str_eq(v, "true") || str_eq(v, "false") || str_eq(v, "1") || str_eq(v, "0") ||
           str_eq(v, "yes") || str_eq(v, "no");
  case CFG_STR: return true;
  }
  return false;
}

/* ---- reference config parser ------------------------------------------------ */

struct ref_val {
  char *value; /* NULL: default */
};

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
    s[--n] = 0;
  return s;
}

/* Returns true when the file is acceptable; vals gets what it sets. */
static bool ref_parse(const uint8_t *data, size_t size, struct ref_val *vals, bool *too_long) {
  *too_long = false;
  const uint8_t *p = data, *end = data + size;
  bool ok = true;
  while (p < end) {
    const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
    size_t ln = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (ln > LINE_LIMIT) *too_long = true;
    char *line = malloc(ln + 1);
    if (!line) abort();
    memcpy(line, p, ln);
    line[ln] = 0; /* bytes after a NUL are lost, as with any C string reader */
    p = nl ? nl + 1 : end;
    if (!ok) {
      free(line);
      continue; /* keep scanning for over-long lines */
    }
    char *s = trim(line);
    if (*s && *s != '#') {
      char *eq = strchr(s, '=');
      if (!eq) {
        ok = false;
      } else {
        *eq = 0;
        char *k = trim(s), *v = trim(eq + 1);
        size_t vn = strlen(v);
        if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
          v[vn - 1] = 0;
          v++;
        }
        size_t i = 0;
        while (i < NOPTS && !str_eq(opts_template[i].name, k)) i++;
        if (i == NOPTS)
          ok = false;
        else if (!vals[i].value) {
          if (!ref_check(opts_template[i].type, v))
            ok = false;
          else if (!(vals[i].value = strdup(v)))
            abort();
        }
      }
    }
    free(line);
  }
  return ok;
}

static void check_numbers(const uint8_t *data, size_t size) {
  char s[80];
  size_t n = size < sizeof s - 1 ? size : sizeof s - 1;
  memcpy(s, data, n);
  s[n] = 0;
  uint64_t u = 0, ru = 0;
  int64_t i = 0, ri = 0;

  int rc = cfg_parse_size(s, &u);
  bool ok = ref_size(s, &ru);
  CHECK((rc == 0) == ok, "cfg_parse_size(\"%s\") %s, the reference %s", esc(s),
        rc ? "fails" : "accepts", ok ? "accepts" : "refuses");
  if (ok)
    CHECK(u == ru, "cfg_parse_size(\"%s\") = %llu, want %llu", esc(s), (unsigned long long)u,
          (unsigned long long)ru);

  rc = str_to_i64(s, &i);
  ok = ref_i64(s, &ri);
  CHECK((rc == 0) == ok, "str_to_i64(\"%s\") %s, the reference %s", esc(s),
        rc ? "fails" : "accepts", ok ? "accepts" : "refuses");
  if (ok) CHECK(i == ri, "str_to_i64(\"%s\") = %lld", esc(s), (long long)i);

  rc = str_to_u64(s, &u);
  ok = ref_u64(s, &ru);
  CHECK((rc == 0) == ok, "str_to_u64(\"%s\") %s, the reference %s", esc(s),
        rc ? "fails" : "accepts", ok ? "accepts" : "refuses");
  if (ok) CHECK(u == ru, "str_to_u64(\"%s\") = %llu", esc(s), (unsigned long long)u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_numbers(data, size);

  FILE *f = fopen(g_path, "wb");
  if (!f) abort();
  if (size && fwrite(data, 1, size, f) != size) abort();
  fclose(f);

  struct cfg_opt opts[NOPTS];
  memcpy(opts, opts_template, sizeof opts);
  struct cfg c;
  char arg0[] = "--config";
  char *argv[] = {arg0, g_path, NULL};
  struct err e;
  err_clear(&e);
  int rc = cfg_load(&c, opts, NOPTS, 2, argv, &e);

  struct ref_val vals[NOPTS];
  memset(vals, 0, sizeof vals);
  bool too_long;
  bool ok = ref_parse(data, size, vals, &too_long);

  /* a file with an over-long line may be refused outright */
  if (!(too_long && rc != 0)) {
    CHECK((rc == 0) == ok, "cfg_load %s (%s), the reference %s%s", rc ? "failed" : "succeeded",
          esc(e.msg), ok ? "accepts" : "refuses",
          too_long ? " (the file has a line longer than 4094 bytes)" : "");
    if (rc == 0) {
      CHECK(e.code == ERR_OK, "success with an error set");
      for (size_t i = 0; i < NOPTS; i++) {
        const char *want = vals[i].value ? vals[i].value : opts_template[i].dflt;
        const char *want_src = vals[i].value ? "file" : "default";
        CHECK(str_eq(opts[i].value, want), "option %s = '%s', want '%s'", opts[i].name,
              esc(opts[i].value ? opts[i].value : "(null)"), esc(want));
        CHECK(str_eq(opts[i].source, want_src), "option %s from %s, want %s", opts[i].name,
              opts[i].source, want_src);
      }
    }
  }
  if (rc == 0) {
    /* the typed getters agree with the strict parsers on every value */
    for (size_t i = 0; i < NOPTS; i++) {
      const char *v = cfg_str(&c, opts[i].name);
      CHECK(v && ref_check(opts[i].type, v), "option %s holds an ill-typed value '%s'",
            opts[i].name, v ? v : "(null)");
      if (opts[i].type == CFG_INT) {
        int64_t want = 0;
        ref_i64(v, &want);
        CHECK(cfg_int(&c, opts[i].name) == want, "cfg_int(%s) differs from the value",
              opts[i].name);
      } else if (opts[i].type == CFG_SIZE) {
        uint64_t want = 0;
        ref_size(v, &want);
        CHECK(cfg_int(&c, opts[i].name) == (int64_t)want, "cfg_int(%s) differs from the size",
              opts[i].name);
      }
    }
    (void)cfg_bool(&c, "access-log");
  } else {
    CHECK(e.code == ERR_INVALID_PARAMETER_VALUE, "failure with code %d", (int)e.code);
    CHECK(e.msg[0] != 0, "failure without a message");
  }
  cfg_fini(&c);
  for (size_t i = 0; i < NOPTS; i++) free(vals[i].value);
  return 0;
}
