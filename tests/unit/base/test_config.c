/* tests for base/config: precedence flag > env > file > default, validation. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

static struct cfg_opt opts_template[] = {
    {"listen", "KILN_T_LISTEN", CFG_STR, "127.0.0.1:8080", "addr", NULL, NULL},
    {"max-body", "KILN_T_MAX_BODY", CFG_SIZE, "32m", "size", NULL, NULL},
    {"threads", "KILN_T_THREADS", CFG_INT, "0", "n", NULL, NULL},
    {"verbose", "KILN_T_VERBOSE", CFG_BOOL, "false", "b", NULL, NULL},
};

static void fresh(struct cfg_opt *o) { memcpy(o, opts_template, sizeof opts_template); }

static const char *write_file(const char *text) {
  static char path[] = "/tmp/kiln-cfg-XXXXXX";
  str_copy(path, sizeof path, "/tmp/kiln-cfg-XXXXXX");
  int fd = mkstemp(path);
  FILE *f = fdopen(fd, "w");
  fputs(text, f);
  fclose(f);
  return path;
}

Test(config, defaults_apply) {
  struct cfg_opt o[4];
  fresh(o);
  struct cfg c;
  struct err e;
  unsetenv("KILN_CONFIG");
  cr_assert_eq(cfg_load(&c, o, 4, 0, NULL, &e), 0);
  cr_assert_str_eq(cfg_str(&c, "listen"), "127.0.0.1:8080");
  cr_assert_eq(cfg_int(&c, "max-body"), 32 << 20);
  cr_assert_not(cfg_bool(&c, "verbose"));
  cr_assert_str_eq(o[0].source, "default");
  cfg_fini(&c);
}

Test(config, flag_beats_env_beats_file) {
  struct cfg_opt o[4];
  fresh(o);
  const char *file = write_file("# comment\nlisten = 0.0.0.0:1\nmax-body = \"1k\"\nthreads = 3\n");
  setenv("KILN_T_LISTEN", "0.0.0.0:2", 1);
  setenv("KILN_T_MAX_BODY", "2k", 1);
  char cf[64];
  snprintf(cf, sizeof cf, "--config=%s", file);
  char *argv[] = {"--listen", "0.0.0.0:3", cf, "--verbose"};
  struct cfg c;
  struct err e;
  cr_assert_eq(cfg_load(&c, o, 4, 4, argv, &e), 0, "%s", e.msg);
  cr_assert_str_eq(cfg_str(&c, "listen"), "0.0.0.0:3");
  cr_assert_str_eq(o[0].source, "flag");
  cr_assert_eq(cfg_int(&c, "max-body"), 2048);
  cr_assert_str_eq(o[1].source, "env");
  cr_assert_eq(cfg_int(&c, "threads"), 3);
  cr_assert_str_eq(o[2].source, "file");
  cr_assert(cfg_bool(&c, "verbose"));
  cfg_fini(&c);
  unsetenv("KILN_T_LISTEN");
  unsetenv("KILN_T_MAX_BODY");
  remove(file);
}

Test(config, bad_values_and_unknown_flags_are_refused) {
  struct cfg_opt o[4];
  struct cfg c;
  struct err e;
  unsetenv("KILN_CONFIG");
  fresh(o);
  char *a1[] = {"--threads", "many"};
  cr_assert_lt(cfg_load(&c, o, 4, 2, a1, &e), 0);
  cr_assert(strstr(e.msg, "not an integer") != NULL, "%s", e.msg);
  cfg_fini(&c);
  fresh(o);
  char *a2[] = {"--nope", "1"};
  cr_assert_lt(cfg_load(&c, o, 4, 2, a2, &e), 0);
  cr_assert(strstr(e.msg, "unknown flag --nope") != NULL, "%s", e.msg);
  cfg_fini(&c);
  fresh(o);
  char *a3[] = {"--max-body", "12q"};
  cr_assert_lt(cfg_load(&c, o, 4, 2, a3, &e), 0);
  cfg_fini(&c);
  fresh(o);
  char *a4[] = {"--listen"};
  cr_assert_lt(cfg_load(&c, o, 4, 1, a4, &e), 0, "a flag without its value is an error");
  cfg_fini(&c);
  fresh(o);
  const char *file = write_file("listen 1\n");
  char cf[64];
  snprintf(cf, sizeof cf, "--config=%s", file);
  char *a5[] = {cf};
  cr_assert_lt(cfg_load(&c, o, 4, 1, a5, &e), 0);
  cr_assert(strstr(e.msg, ":1: expected key = value") != NULL, "%s", e.msg);
  cfg_fini(&c);
  remove(file);
}

Test(config, sizes) {
  uint64_t v;
  cr_assert_eq(cfg_parse_size("10", &v), 0);
  cr_assert_eq(v, 10);
  cr_assert_eq(cfg_parse_size("4k", &v), 0);
  cr_assert_eq(v, 4096);
  cr_assert_eq(cfg_parse_size("2GiB", &v), 0);
  cr_assert_eq(v, 2ull << 30);
  cr_assert_eq(cfg_parse_size("3mb", &v), 0);
  cr_assert_eq(v, 3ull << 20);
  cr_assert_lt(cfg_parse_size("-1", &v), 0);
  cr_assert_lt(cfg_parse_size("k", &v), 0);
  cr_assert_lt(cfg_parse_size("99999999999999999999g", &v), 0);
  cr_assert_lt(cfg_parse_size("1kx", &v), 0);
}

/* Regressions (found by fuzz_config). */
Test(config, a_long_comment_line_sets_nothing) {
  struct cfg_opt o[4];
  fresh(o);
  unsetenv("KILN_CONFIG");
  static char text[6000];
  memset(text, '#', 4100);
  str_copy(text + 4100, sizeof text - 4100, "threads = 9\n");
  const char *file = write_file(text);
  char cf[64];
  snprintf(cf, sizeof cf, "--config=%s", file);
  char *argv[] = {cf};
  struct cfg c;
  struct err e;
  cr_assert_eq(cfg_load(&c, o, 4, 1, argv, &e), 0, "%s", e.msg);
  cr_assert_eq(cfg_int(&c, "threads"), 0, "the tail of a comment is not a setting");
  cfg_fini(&c);
  remove(file);
}

Test(config, lax_numbers_are_refused) {
  uint64_t v;
  int64_t i;
  cr_assert_lt(cfg_parse_size("18446744073709551616", &v), 0);
  cr_assert_lt(cfg_parse_size("1kbb", &v), 0);
  cr_assert_eq(cfg_parse_size("1KiB", &v), 0);
  cr_assert_eq(v, 1024);
  cr_assert_lt(str_to_i64("\n1", &i), 0);
  cr_assert_lt(str_to_i64("\t5", &i), 0);
}
