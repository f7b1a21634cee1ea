/* tests/fuzz/fuzz_pickle: model intake (registry_intake_inspect_mem) on
 * arbitrary bytes, seeded with real pickles and joblib files, strict and
 * with allow_unsafe_pickle. Invariants: only intake's documented errors, each
 * with a message; a refusal for safety names a listed, refused global; an
 * accepted strict scan lists no refused global; the permissive scan lists
 * the same globals and accepts what the strict one refused only for safety. */
#define FUZZ_NAME "fuzz_pickle"
#include "fuzz_common.h"
#include "registry/registry.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  log_set_quiet(true);
  return 0;
}

static bool known_rc(int rc) {
  return rc == 0 || rc == -ERR_UNSAFE_MODEL || rc == -ERR_INVALID_PARAMETER_VALUE ||
         rc == -ERR_UNSUPPORTED_MEDIA_TYPE || rc == -ERR_NO_MEMORY;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct registry_intake_opts o;
  registry_intake_opts_default(&o);
  o.max_entry_size = 64u << 20; /* keep bombs cheap under the fuzzer */
  o.max_total_size = 128u << 20;
  struct registry_intake_report strict, loose;
  struct err e = {0}, le = {0};
  int rc = registry_intake_inspect_mem(data, size, &o, &strict, &e);
  CHECK(known_rc(rc), "rc %d (%s)", rc, esc(e.msg));
  CHECK(rc == 0 || e.msg[0], "error %d without a message", rc);
  CHECK(strlen(strict.sha256) == 64 && strict.size == size, "checksum or size missing");
  size_t refused = 0;
  for (size_t i = 0; i < strict.nglobals; i++) refused += !strict.globals[i].allowed;
  if (rc == 0) CHECK(refused == 0 && !strict.unsafe, "accepted with %zu refused globals", refused);
  if (rc == -ERR_UNSAFE_MODEL && str_has_prefix(e.msg, "unsafe pickle: imports ")) {
    const char *g = e.msg + strlen("unsafe pickle: imports ");
    bool listed = false;
    for (size_t i = 0; i < strict.nglobals; i++)
      listed |= !strict.globals[i].allowed && str_has_prefix(strict.globals[i].name, g); /* the message may cut it */
    CHECK(listed, "the refused global %s is not listed as refused", esc(g));
  }
  json_t *j = registry_intake_report_json(&strict);
  CHECK(j != NULL, "report JSON failed");
  json_decref(j);

  o.allow_unsafe_pickle = true;
  int lrc = registry_intake_inspect_mem(data, size, &o, &loose, &le);
  CHECK(known_rc(lrc), "permissive rc %d", lrc);
  if (rc == -ERR_UNSAFE_MODEL && str_has_prefix(e.msg, "unsafe pickle"))
    CHECK(lrc != -ERR_UNSAFE_MODEL || !str_has_prefix(le.msg, "unsafe pickle"),
          "allow_unsafe_pickle still refuses: %s", esc(le.msg));
  if (rc == 0) {
    CHECK(lrc == 0 && !loose.unsafe, "permissive scan differs: %d", lrc);
    CHECK(loose.nglobals == strict.nglobals, "global lists differ");
    for (size_t i = 0; i < strict.nglobals; i++)
      CHECK(str_eq(loose.globals[i].name, strict.globals[i].name), "global %zu differs", i);
  }
  if (lrc == 0 && loose.unsafe) {
    bool any = false;
    for (size_t i = 0; i < loose.nglobals; i++) any |= !loose.globals[i].allowed;
    CHECK(any || str_eq(loose.format, "keras-hdf5"), "flagged unsafe with no refused global");
  }
  registry_intake_report_fini(&strict);
  registry_intake_report_fini(&loose);
  return 0;
}
