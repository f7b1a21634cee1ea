/* tests/fuzz/fuzz_clamd_reply: the clamd reply parser
 * (registry_clamd_reply_parse) on arbitrary bytes, checked against a
 * reference written from clamd's reply shapes. Invariants: a verdict is only
 * given for exactly "stream: OK", "stream: <sig> FOUND" (the signature
 * printable, 1..REGISTRY_AV_SIG_MAX bytes, no surrounding space) or
 * "[stream: ]<why> ERROR"; what it copies out is exactly that part of the
 * input, printable ASCII and NUL-terminated; SIZE_LIMIT iff the reason says
 * "size limit exceeded"; anything else is MALFORMED with no text. */
#define FUZZ_NAME "fuzz_clamd_reply"
#include "fuzz_common.h"
#include "registry/registry.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  log_set_quiet(true);
  return 0;
}

static bool printable(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e) return false;
  return true;
}

static bool ends(const char *p, size_t n, const char *s) {
  size_t k = strlen(s);
  return n >= k && memcmp(p + n - k, s, k) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in = (const char *)data;
  struct registry_clamd_reply r, r2;
  memset(&r, 0x5a, sizeof r); /* garbage in: the parser must set everything it answers */
  enum registry_clamd_kind k = registry_clamd_reply_parse(in, size, &r);
  CHECK(k == r.kind, "returned %d, stored %d", (int)k, (int)r.kind);
  CHECK(k >= REGISTRY_CLAMD_MALFORMED && k <= REGISTRY_CLAMD_SIZE_LIMIT, "kind %d", (int)k);
  CHECK(memchr(r.text, 0, sizeof r.text) != NULL, "text not terminated");
  size_t tl = strlen(r.text);
  CHECK(printable(r.text, tl), "text '%s' not printable", esc(r.text));
  CHECK(registry_clamd_reply_parse(in, size, &r2) == k && str_eq(r.text, r2.text), "not deterministic");

  /* the reference */
  size_t n = size;
  if (n && (in[n - 1] == 0 || in[n - 1] == '\n')) n--;
  bool shaped = n > 0 && n <= REGISTRY_CLAMD_REPLY_MAX && printable(in, n);
  enum registry_clamd_kind want = REGISTRY_CLAMD_MALFORMED;
  if (shaped && n == 10 && memcmp(in, "stream: OK", 10) == 0) {
    want = REGISTRY_CLAMD_OK;
  } else if (shaped && ends(in, n, " FOUND")) {
    if (n >= 14 && memcmp(in, "stream: ", 8) == 0) {
      size_t sl = n - 14;
      if (sl >= 1 && sl <= REGISTRY_AV_SIG_MAX && in[8] != ' ' && in[8 + sl - 1] != ' ') want = REGISTRY_CLAMD_FOUND;
    }
  } else if (shaped && ends(in, n, " ERROR")) {
    size_t off = n - 6 >= 8 && memcmp(in, "stream: ", 8) == 0 ? 8 : 0;
    if (n - 6 > off) want = REGISTRY_CLAMD_ERROR; /* or SIZE_LIMIT, below */
  }
  if (want == REGISTRY_CLAMD_ERROR && strstr(r.text, "size limit exceeded")) want = REGISTRY_CLAMD_SIZE_LIMIT;
  CHECK(k == want, "kind %d, reference %d for '%.*s'", (int)k, (int)want, (int)(n < 200 ? n : 200), in);

  switch (k) {
  case REGISTRY_CLAMD_MALFORMED:
  case REGISTRY_CLAMD_OK: CHECK(tl == 0, "text '%s' with kind %d", esc(r.text), (int)k); break;
  case REGISTRY_CLAMD_FOUND:
    CHECK(tl == n - 14 && memcmp(r.text, in + 8, tl) == 0, "signature '%s' is not the input's", esc(r.text));
    break;
  case REGISTRY_CLAMD_ERROR:
  case REGISTRY_CLAMD_SIZE_LIMIT: {
    size_t off = n - 6 >= 8 && memcmp(in, "stream: ", 8) == 0 ? 8 : 0;
    CHECK(tl == n - 6 - off && memcmp(r.text, in + off, tl) == 0, "reason '%s' is not the input's", esc(r.text));
    CHECK((k == REGISTRY_CLAMD_SIZE_LIMIT) == (strstr(r.text, "size limit exceeded") != NULL), "size limit misread");
    break;
  }
  }
  return 0;
}
