/* tests for the worker frames (serve/frame.c): round trips, and a decoder
 * that refuses every truncated, oversized or inconsistent length. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"

static void put_u32(char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (char)((v >> (8 * i)) & 0xff);
}

static uint32_t get_u32(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

/* A body (after the leading total length): u32 header length, header, data. */
static size_t body_of(char *out, size_t cap, const char *header, const void *data, size_t n) {
  size_t hl = strlen(header);
  cr_assert(4 + hl + n <= cap);
  put_u32(out, (uint32_t)hl);
  memcpy(out + 4, header, hl);
  if (n) memcpy(out + 4 + hl, data, n);
  return 4 + hl + n;
}

static int decode(const char *body, size_t n, json_t **h, struct serve_tensor **t, int *nt,
                  struct err *e) {
  memset(e, 0, sizeof *e);
  return serve_frame_decode(body, n, h, t, nt, e);
}

Test(serve_frame, round_trip_of_every_kind) {
  struct serve_tensor in[4];
  struct err e;
  int64_t s2[2] = {2, 3}, s1[1] = {3}, s0[1] = {0};
  cr_assert_eq(serve_tensor_alloc(&in[0], "x", SERVE_FP64, s2, 2, &e), 0);
  for (int i = 0; i < 6; i++) ((double *)in[0].data)[i] = i * 1.5 - 2;
  cr_assert_eq(serve_tensor_alloc(&in[1], "flags", SERVE_BOOL, s1, 1, &e), 0);
  ((uint8_t *)in[1].data)[1] = 1;
  /* BYTES: "ab", "", "héllo" in V2's binary form */
  static const char bytes[] = "\x02\x00\x00\x00"
                              "ab"
                              "\x00\x00\x00\x00"
                              "\x06\x00\x00\x00"
                              "h\xc3\xa9llo";
  memset(&in[2], 0, sizeof in[2]);
  str_copy(in[2].name, sizeof in[2].name, "labels");
  in[2].dtype = SERVE_BYTES;
  in[2].ndim = 1;
  in[2].shape[0] = 3;
  in[2].data = (void *)bytes;
  in[2].nbytes = sizeof bytes - 1;
  cr_assert_eq(serve_tensor_alloc(&in[3], "empty", SERVE_INT32, s0, 1, &e), 0);

  json_t *h = json_pack("{s:s, s:b}", "op", "predict", "proba", 1);
  struct buf b;
  buf_init(&b);
  buf_puts(&b, "keep"); /* encode appends */
  cr_assert_eq(serve_frame_encode(&b, h, in, 4, &e), 0, "%s", e.msg);
  cr_assert_null(json_object_get(h, "tensors"), "the caller's header is not changed");
  cr_assert_eq(memcmp(b.data, "keep", 4), 0);
  uint32_t total = get_u32(b.data + 4);
  cr_assert_eq(total, b.len - 8);

  json_t *hd;
  struct serve_tensor *t;
  int nt;
  cr_assert_eq(decode(b.data + 8, total, &hd, &t, &nt, &e), 0, "%s", e.msg);
  cr_assert_eq(nt, 4);
  cr_assert_str_eq(json_string_value(json_object_get(hd, "op")), "predict");
  cr_assert(json_is_true(json_object_get(hd, "proba")));
  for (int i = 0; i < 4; i++) {
    cr_assert_str_eq(t[i].name, in[i].name);
    cr_assert_eq(t[i].dtype, in[i].dtype);
    cr_assert_eq(t[i].ndim, in[i].ndim);
    for (int d = 0; d < in[i].ndim; d++) cr_assert_eq(t[i].shape[d], in[i].shape[d]);
    cr_assert_eq(t[i].nbytes, in[i].nbytes);
    cr_assert_not(t[i].owned);
    if (in[i].nbytes) cr_assert_eq(memcmp(t[i].data, in[i].data, in[i].nbytes), 0);
    /* pointing into the body, not copied */
    if (in[i].nbytes)
      cr_assert((char *)t[i].data >= b.data + 8 &&
                (char *)t[i].data + t[i].nbytes <= b.data + b.len);
  }
  free(t);
  json_decref(hd);
  json_decref(h);
  buf_fini(&b);
  serve_tensor_fini(&in[0]);
  serve_tensor_fini(&in[1]);
  serve_tensor_fini(&in[3]);
}

Test(serve_frame, no_tensors_and_a_header_only_frame) {
  char body[256];
  size_t n = body_of(body, sizeof body, "{\"ok\":true}", NULL, 0);
  json_t *h;
  struct serve_tensor *t;
  int nt;
  struct err e;
  cr_assert_eq(decode(body, n, &h, &t, &nt, &e), 0, "%s", e.msg);
  cr_assert_eq(nt, 0);
  cr_assert_null(t);
  cr_assert(json_is_true(json_object_get(h, "ok")));
  json_decref(h);
}

Test(serve_frame, every_truncation_is_refused) {
  struct serve_tensor in;
  struct err e;
  int64_t s[2] = {3, 2};
  cr_assert_eq(serve_tensor_alloc(&in, "x", SERVE_FP32, s, 2, &e), 0);
  json_t *h = json_object();
  struct buf b;
  buf_init(&b);
  cr_assert_eq(serve_frame_encode(&b, h, &in, 1, &e), 0);
  size_t n = b.len - 4;
  for (size_t k = 0; k < n; k++) {
    char *copy = malloc(k ? k : 1); /* exactly k bytes, so ASan sees any overread */
    memcpy(copy, b.data + 4, k);
    json_t *hd = (json_t *)1;
    struct serve_tensor *t = (struct serve_tensor *)1;
    int nt = 7;
    int rc = decode(copy, k, &hd, &t, &nt, &e);
    cr_assert_eq(rc, -ERR_INVALID_PARAMETER_VALUE, "a %zu-byte prefix of %zu was accepted", k, n);
    cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
    cr_assert(strstr(e.msg, "malformed worker frame"), "%s", e.msg);
    cr_assert_null(hd);
    cr_assert_null(t);
    cr_assert_eq(nt, 0);
    free(copy);
  }
  /* one byte more is refused too */
  buf_putc(&b, 0);
  json_t *hd;
  struct serve_tensor *t;
  int nt;
  cr_assert_eq(decode(b.data + 4, n + 1, &hd, &t, &nt, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "left over"), "%s", e.msg);
  json_decref(h);
  buf_fini(&b);
  serve_tensor_fini(&in);
}

static void expect_refused(const char *header, const void *data, size_t n, const char *what) {
  char body[4096];
  size_t len = body_of(body, sizeof body, header, data, n);
  json_t *h;
  struct serve_tensor *t;
  int nt;
  struct err e;
  int rc = decode(body, len, &h, &t, &nt, &e);
  cr_assert_eq(rc, -ERR_INVALID_PARAMETER_VALUE, "accepted: %s", header);
  cr_assert(strstr(e.msg, what), "'%s' for %s", e.msg, header);
}

Test(serve_frame, inconsistent_lengths_are_refused) {
  static const char eight[8] = {0};
  /* nbytes larger than what follows, and smaller than the shape needs */
  expect_refused(
      "{\"tensors\":[{\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":[2],\"nbytes\":16}]}", eight,
      8, "runs past the frame");
  expect_refused(
      "{\"tensors\":[{\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":[2],\"nbytes\":8}]}", eight, 8,
      "does not hold");
  /* a shape whose element count overflows */
  expect_refused("{\"tensors\":[{\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":[4294967296,"
                 "4294967296,4294967296],"
                 "\"nbytes\":0}]}",
                 NULL, 0, "overflows");
  expect_refused("{\"tensors\":[{\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":["
                 "2305843009213693952],\"nbytes\":0}]}",
                 NULL, 0, "does not hold");
  expect_refused(
      "{\"tensors\":[{\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":[-1],\"nbytes\":8}]}", eight,
      8, "bad dimension");
  expect_refused(
      "{\"tensors\":[{\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":[1],\"nbytes\":-8}]}", eight,
      8, "bad nbytes");
  expect_refused("{\"tensors\":[{\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":[1],\"nbytes\":"
                 "18446744073709551615}]}",
                 eight, 8, "malformed worker frame");
  expect_refused(
      "{\"tensors\":[{\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":[1],\"nbytes\":8.0}]}", eight,
      8, "bad nbytes");
  expect_refused("{\"tensors\":[{\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":[1,1,1,1,1,1,1,1,1]"
                 ",\"nbytes\":8}]}",
                 eight, 8, "dims");
  expect_refused(
      "{\"tensors\":[{\"name\":\"x\",\"datatype\":\"FP128\",\"shape\":[1],\"nbytes\":8}]}", eight,
      8, "unknown datatype");
  expect_refused("{\"tensors\":[{\"datatype\":\"FP64\",\"shape\":[1],\"nbytes\":8}]}", eight, 8,
                 "no usable name");
  expect_refused("{\"tensors\":{}}", NULL, 0, "not a list");
  expect_refused("{\"tensors\":[7]}", NULL, 0, "not an object");
  expect_refused("[1,2]", NULL, 0, "not a JSON object");
  expect_refused("{\"ok\":tru", NULL, 0, "header");
  expect_refused("{\"ok\":true}", eight, 8, "left over");
  /* BYTES: an element length past the data, a count the shape does not say */
  expect_refused(
      "{\"tensors\":[{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[1],\"nbytes\":8}]}",
      "\x05\x00\x00\x00"
      "abcd",
      8, "does not hold");
  expect_refused(
      "{\"tensors\":[{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[2],\"nbytes\":8}]}",
      "\x04\x00\x00\x00"
      "abcd",
      8, "does not hold");
  expect_refused(
      "{\"tensors\":[{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[1],\"nbytes\":8}]}",
      "\x02\x00\x00\x00"
      "abcd",
      8, "does not hold");
  expect_refused(
      "{\"tensors\":[{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[1],\"nbytes\":4}]}",
      "\xff\xff\xff\xff", 4, "does not hold");
  /* a name longer than SERVE_NAME_MAX allows */
  char hdr[1024];
  char longname[SERVE_NAME_MAX + 8];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  snprintf(hdr, sizeof hdr,
           "{\"tensors\":[{\"name\":\"%s\",\"datatype\":\"FP64\",\"shape\":[1],\"nbytes\":8}]}",
           longname);
  expect_refused(hdr, eight, 8, "no usable name");
}

Test(serve_frame, header_length_past_the_body_and_oversized_frames) {
  char body[64];
  size_t n = body_of(body, sizeof body, "{}", NULL, 0);
  put_u32(body, 3); /* says 3 bytes of header where 2 follow */
  json_t *h;
  struct serve_tensor *t;
  int nt;
  struct err e;
  cr_assert_eq(decode(body, n, &h, &t, &nt, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "header length runs past"), "%s", e.msg);
  put_u32(body, 0xffffffffu);
  cr_assert_eq(decode(body, n, &h, &t, &nt, &e), -ERR_INVALID_PARAMETER_VALUE);
  put_u32(body, 0);
  cr_assert_eq(decode(body, n, &h, &t, &nt, &e), -ERR_INVALID_PARAMETER_VALUE);
  /* a length over SERVE_FRAME_MAX is refused before anything is read */
  cr_assert_eq(decode(body, (size_t)SERVE_FRAME_MAX + 1, &h, &t, &nt, &e),
               -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "longer than a frame"), "%s", e.msg);
  cr_assert_eq(decode(NULL, 0, &h, &t, &nt, &e), -ERR_INVALID_PARAMETER_VALUE);
}

Test(serve_frame, encode_refuses_what_it_cannot_send) {
  struct err e;
  struct buf b;
  buf_init(&b);
  json_t *h = json_object();
  struct serve_tensor t;
  memset(&t, 0, sizeof t);
  str_copy(t.name, sizeof t.name, "x");
  t.dtype = SERVE_FP64;
  t.ndim = 1;
  t.shape[0] = 3;
  static double three[3];
  t.data = three;
  t.nbytes = 16; /* 3 doubles are 24 */
  cr_assert_eq(serve_frame_encode(&b, h, &t, 1, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "do not match"), "%s", e.msg);
  cr_assert_eq(b.len, 0);
  /* bigger than a frame may be: refused before any byte is copied */
  t.shape[0] = (int64_t)SERVE_FRAME_MAX / 8 + 1;
  t.nbytes = (size_t)t.shape[0] * 8;
  cr_assert_eq(serve_frame_encode(&b, h, &t, 1, &e), -ERR_PAYLOAD_TOO_LARGE);
  cr_assert_eq(b.len, 0);
  /* a per-row JSON tensor has no raw form */
  t.shape[0] = 3;
  t.nbytes = 24;
  t.json = json_array();
  cr_assert_eq(serve_frame_encode(&b, h, &t, 1, &e), -ERR_INVALID_PARAMETER_VALUE);
  json_decref(t.json);
  t.json = NULL;
  /* not an object header */
  json_t *arr = json_array();
  cr_assert_eq(serve_frame_encode(&b, arr, &t, 1, &e), -ERR_INTERNAL);
  json_decref(arr);
  cr_assert_eq(serve_frame_encode(&b, h, &t, 1, &e), 0);
  cr_assert_eq(get_u32(b.data), b.len - 4);
  json_decref(h);
  buf_fini(&b);
}
