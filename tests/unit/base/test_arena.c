/* tests for base/arena and base/buf: alignment, growth, limits, reset. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "base/base.h"

Test(arena, allocations_are_aligned_and_distinct) {
  struct arena a;
  arena_init(&a, 256, 0);
  char *prev = NULL;
  for (int i = 1; i < 200; i++) {
    char *p = arena_alloc(&a, (size_t)i);
    cr_assert_not_null(p);
    cr_assert_eq((uintptr_t)p % 16, 0, "allocation %d not 16-byte aligned", i);
    memset(p, i & 0xff, (size_t)i);
    if (prev) cr_assert_neq(p, prev);
    prev = p;
  }
  arena_fini(&a);
}

Test(arena, big_allocation_gets_its_own_block_and_keeps_data) {
  struct arena a;
  arena_init(&a, 1024, 0);
  char *small = arena_strdup(&a, "hello");
  char *big = arena_alloc(&a, 100000);
  cr_assert_not_null(big);
  memset(big, 'x', 100000);
  char *small2 = arena_strdup(&a, "world");
  cr_assert_str_eq(small, "hello");
  cr_assert_str_eq(small2, "world");
  cr_assert_geq(a.total, 100000 + 32);
  arena_fini(&a);
  cr_assert_eq(a.total, 0);
}

Test(arena, limit_refuses_instead_of_growing) {
  struct arena a;
  arena_init(&a, 1024, 4096);
  cr_assert_not_null(arena_alloc(&a, 3000));
  cr_assert_null(arena_alloc(&a, 2000), "allocation past the limit must fail");
  cr_assert_not_null(arena_alloc(&a, 500));
  arena_fini(&a);
}

Test(arena, printf_and_strndup) {
  struct arena a;
  arena_init(&a, 64, 0);
  cr_assert_str_eq(arena_printf(&a, "%s-%d-%.2f", "run", 42, 1.5), "run-42-1.50");
  cr_assert_str_eq(arena_strndup(&a, "abcdef", 3), "abc");
  char longer[500];
  memset(longer, 'z', sizeof longer - 1);
  longer[499] = 0;
  cr_assert_eq(strlen(arena_printf(&a, "%s", longer)), 499);
  arena_fini(&a);
}

Test(arena, reset_reuses_memory) {
  struct arena a;
  arena_init(&a, 4096, 0);
  for (int i = 0; i < 10; i++) arena_alloc(&a, 3000);
  arena_reset(&a);
  cr_assert_eq(a.total, 0);
  cr_assert_not_null(arena_alloc(&a, 100));
  arena_fini(&a);
}

Test(buf, append_printf_steal) {
  struct buf b;
  buf_init(&b);
  for (int i = 0; i < 1000; i++) cr_assert_eq(buf_printf(&b, "%d,", i), 0);
  cr_assert(str_has_prefix(b.data, "0,1,2,3,"));
  cr_assert_eq(b.data[b.len], 0);
  size_t len = b.len;
  char *s = buf_steal(&b);
  cr_assert_eq(strlen(s), len);
  cr_assert_null(b.data);
  free(s);
  buf_fini(&b);
}

Test(str, copy_truncates_and_terminates) {
  char d[4];
  cr_assert_eq(str_copy(d, sizeof d, "abcdef"), 6);
  cr_assert_str_eq(d, "abc");
}

Test(str, strict_integer_parsing) {
  int64_t v;
  uint64_t u;
  cr_assert_eq(str_to_i64("-42", &v), 0);
  cr_assert_eq(v, -42);
  cr_assert_eq(str_to_i64("9223372036854775807", &v), 0);
  cr_assert_eq(v, INT64_MAX);
  cr_assert_lt(str_to_i64("9223372036854775808", &v), 0, "overflow must be refused");
  cr_assert_lt(str_to_i64("12abc", &v), 0);
  cr_assert_lt(str_to_i64("", &v), 0);
  cr_assert_lt(str_to_i64(" 1", &v), 0);
  cr_assert_lt(str_to_u64("-1", &u), 0);
  cr_assert_eq(str_to_u64("18446744073709551615", &u), 0);
  cr_assert_eq(u, UINT64_MAX);
}

Test(err, table_maps_codes_statuses_and_messages) {
  struct err e;
  cr_assert_eq(err_set(&e, ERR_RESOURCE_DOES_NOT_EXIST, "run %s not found", "abc"), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_str_eq(e.msg, "run abc not found");
  cr_assert_str_eq(err_code_str(e.code), "RESOURCE_DOES_NOT_EXIST");
  cr_assert_eq(err_http_status(ERR_RESOURCE_DOES_NOT_EXIST), 404);
  cr_assert_eq(err_http_status(ERR_RESOURCE_ALREADY_EXISTS), 400, "MLflow answers 400 here");
  cr_assert_eq(err_http_status(ERR_PAYLOAD_TOO_LARGE), 413);
  cr_assert_eq(err_http_status(ERR_NO_MEMORY), 503, "out of memory is a 503, not a crash");
  cr_assert_str_eq(err_code_str(ERR_MALFORMED_JSON), "MALFORMED_REQUEST");
  err_set(&e, ERR_CONFLICT, NULL);
  cr_assert_str_eq(e.msg, "conflict");
  /* out-of-range codes never index past the table */
  cr_assert_str_eq(err_code_str((enum err_code)9999), "INTERNAL_ERROR");
}

Test(id, hex_and_sha256_known_answers) {
  cr_assert_eq(base_init(), 0);
  char hex[65];
  sha256_hex("abc", 3, hex);
  cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  cr_assert(sha256_hex_valid(hex));
  cr_assert_not(sha256_hex_valid("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
  struct sha256 h;
  sha256_init(&h);
  sha256_update(&h, "a", 1);
  sha256_update(&h, "bc", 2);
  uint8_t d[32];
  sha256_final(&h, d);
  char hex2[65];
  hex_encode(hex2, d, 32);
  cr_assert_str_eq(hex, hex2, "streaming and one-shot hashes must agree");
  uint8_t back[32];
  cr_assert_eq(hex_decode(back, sizeof back, hex), 32);
  cr_assert_eq(memcmp(back, d, 32), 0);
  cr_assert_eq(hex_decode(back, sizeof back, "zz"), -1);
  char id1[33], id2[33];
  id_random_hex(id1, 16);
  id_random_hex(id2, 16);
  cr_assert_eq(strlen(id1), 32);
  cr_assert_str_neq(id1, id2);
  cr_assert(secret_eq("same", "same", 4));
  cr_assert_not(secret_eq("same", "sane", 4));
}
