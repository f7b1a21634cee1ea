/* tests/fuzz/fuzz_frame: the Python worker frame decoder
 * (serve_frame_decode) on arbitrary bodies — a worker runs user code, so
 * its answers are outside input. Invariants: a refusal is
 * INVALID_PARAMETER_VALUE (or NO_MEMORY) with a message and nothing
 * returned; an accepted frame has an object header whose length prefix
 * lies inside the body, tensors that tile the rest of the body exactly in
 * order, each with a known datatype, at most SERVE_MAX_DIMS non-negative
 * dims, nbytes equal to count x element size (BYTES: exactly count
 * well-formed V2 elements), a NUL-terminated name; and re-encoding the
 * header and tensors gives a frame that decodes to the same tensors. */
#define FUZZ_NAME "fuzz_frame"
#include "fuzz_common.h"
#include "serve/serve.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  log_set_quiet(true);
  return 0;
}

static uint32_t u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* count elements of V2's binary BYTES form fill exactly n bytes */
static bool bytes_ok(const unsigned char *p, size_t n, int64_t count) {
  size_t off = 0;
  for (int64_t i = 0; i < count; i++) {
    if (n - off < 4) return false;
    size_t l = u32(p + off);
    off += 4;
    if (l > n - off) return false;
    off += l;
  }
  return off == n;
}

static void check_tensor(const struct serve_tensor *t, const char *body, size_t n,
                         size_t *expect_off) {
  CHECK(memchr(t->name, 0, sizeof t->name) != NULL, "name not terminated");
  CHECK((unsigned)t->dtype < SERVE_DTYPE__COUNT, "dtype %d", (int)t->dtype);
  CHECK(t->ndim >= 0 && t->ndim <= SERVE_MAX_DIMS, "ndim %d", t->ndim);
  for (int d = 0; d < t->ndim; d++)
    CHECK(t->shape[d] >= 0, "dim %d is %lld", d, (long long)t->shape[d]);
  CHECK(!t->owned && !t->json, "tensor '%s' owns memory", esc(t->name));
  int64_t count = serve_shape_count(t->shape, t->ndim);
  CHECK(count >= 0, "count overflows for '%s'", esc(t->name));
  if (t->nbytes) {
    CHECK((const char *)t->data == body + *expect_off,
          "tensor '%s' is not where the last one ended", esc(t->name));
    CHECK(t->nbytes <= n - *expect_off, "tensor '%s' runs past the body", esc(t->name));
  }
  if (t->dtype == SERVE_BYTES) {
    CHECK(bytes_ok(t->data, t->nbytes, count), "BYTES tensor '%s' malformed", esc(t->name));
  } else {
    CHECK((uint64_t)count * serve_dtype_size(t->dtype) == t->nbytes,
          "tensor '%s': %zu bytes for %lld elements", esc(t->name), t->nbytes, (long long)count);
  }
  *expect_off += t->nbytes;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *body = (const char *)data;
  json_t *h = (json_t *)1;
  struct serve_tensor *t = (struct serve_tensor *)1;
  int nt = -1;
  struct err e = {0};
  int rc = serve_frame_decode(body, size, &h, &t, &nt, &e);
  if (rc != 0) {
    CHECK(rc == -ERR_INVALID_PARAMETER_VALUE || rc == -ERR_NO_MEMORY, "rc %d", rc);
    CHECK((int)e.code == -rc, "code %d for rc %d", (int)e.code, rc);
    CHECK(e.msg[0] != 0, "refusal without a message");
    CHECK(h == NULL && t == NULL && nt == 0, "a refusal returned something");
    return 0;
  }
  CHECK(size >= 4, "accepted %zu bytes", size);
  size_t hl = u32(data);
  CHECK(hl <= size - 4, "header length %zu past %zu bytes", hl, size);
  CHECK(json_is_object(h), "header is not an object");
  CHECK(nt >= 0 && (nt == 0 || t != NULL), "nt %d", nt);
  CHECK((size_t)nt == json_array_size(json_object_get(h, "tensors")),
        "%d tensors, header lists %zu", nt, json_array_size(json_object_get(h, "tensors")));
  size_t off = 4 + hl;
  for (int i = 0; i < nt; i++) check_tensor(&t[i], body, size, &off);
  CHECK(off == size, "tensors end at %zu of %zu", off, size);

  /* round trip: what decoded encodes to a frame that decodes the same */
  struct buf b;
  buf_init(&b);
  struct err e2 = {0};
  int rc2 = serve_frame_encode(&b, h, t, nt, &e2);
  CHECK(rc2 == 0 || rc2 == -ERR_NO_MEMORY, "re-encode failed: %s", e2.msg);
  if (rc2 == 0) {
    CHECK(b.len >= 8 && u32((const unsigned char *)b.data) == b.len - 4, "bad total length");
    json_t *h2 = NULL;
    struct serve_tensor *t2 = NULL;
    int nt2 = 0;
    rc2 = serve_frame_decode(b.data + 4, b.len - 4, &h2, &t2, &nt2, &e2);
    CHECK(rc2 == 0, "re-encoded frame refused: %s", e2.msg);
    CHECK(nt2 == nt, "%d tensors after the round trip, %d before", nt2, nt);
    for (int i = 0; i < nt; i++) {
      CHECK(strcmp(t[i].name, t2[i].name) == 0 && t[i].dtype == t2[i].dtype &&
                t[i].ndim == t2[i].ndim && t[i].nbytes == t2[i].nbytes,
            "tensor %d changed", i);
      CHECK(memcmp(t[i].shape, t2[i].shape, sizeof(int64_t) * (size_t)t[i].ndim) == 0,
            "tensor %d shape changed", i);
      CHECK(t[i].nbytes == 0 || memcmp(t[i].data, t2[i].data, t[i].nbytes) == 0,
            "tensor %d bytes changed", i);
    }
    json_t *a = json_deep_copy(h), *c = json_deep_copy(h2);
    json_object_del(a, "tensors");
    json_object_del(c, "tensors");
    CHECK(json_equal(a, c), "header changed in the round trip");
    json_decref(a);
    json_decref(c);
    free(t2);
    json_decref(h2);
  }
  buf_fini(&b);
  free(t);
  json_decref(h);
  return 0;
}
