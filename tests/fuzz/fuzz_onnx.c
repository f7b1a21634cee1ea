/* tests/fuzz/fuzz_onnx: model intake on arbitrary bytes seeded with ONNX
 * models (the hand-written protobuf reader). Invariants: only documented
 * errors, with messages; an accepted ONNX model has a signature with input
 * and output arrays, and none of its external data locations is absolute or
 * holds a `..` segment. */
#define FUZZ_NAME "fuzz_onnx"
#include "fuzz_common.h"
#include "registry/registry.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  log_set_quiet(true);
  return 0;
}

static bool escapes(const char *s) {
  if (s[0] == '/' || strchr(s, '\\')) return true;
  for (const char *p = s; (p = strstr(p, "..")) != NULL; p += 2)
    if ((p == s || p[-1] == '/') && (p[2] == 0 || p[2] == '/')) return true;
  return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct registry_intake_report r;
  struct err e = {0};
  int rc = registry_intake_inspect_mem(data, size, NULL, &r, &e);
  CHECK(rc == 0 || rc == -ERR_UNSAFE_MODEL || rc == -ERR_INVALID_PARAMETER_VALUE ||
            rc == -ERR_UNSUPPORTED_MEDIA_TYPE || rc == -ERR_NO_MEMORY,
        "rc %d (%s)", rc, esc(e.msg));
  CHECK(rc == 0 || e.msg[0], "error without a message");
  if (rc == 0 && str_eq(r.format, "onnx")) {
    CHECK(json_is_array(json_object_get(r.signature, "inputs")) &&
              json_is_array(json_object_get(r.signature, "outputs")),
          "an accepted ONNX model without a signature");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(r.metadata, "external_data"), i, v) {
      const char *loc = json_string_value(v);
      CHECK(loc && !escapes(loc), "accepted external data location %s", esc(loc ? loc : "(null)"));
    }
  }
  registry_intake_report_fini(&r);
  return 0;
}
