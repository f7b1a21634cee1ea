/* serve/backends/xgboost: placeholder until the backend lands (refuses to load). */
#include "serve/serve.h"

static int load(const struct serve_load_opts *o, void **model, struct serve_signature *sig, struct err *e) {
  return err_set(e, ERR_INVALID_STATE, "the xgboost backend is not available in this build");
}
const struct serve_backend serve_backend_xgboost = {SERVE_BACKEND_VERSION, "xgboost", 0, load, NULL, NULL, NULL, NULL, NULL};
