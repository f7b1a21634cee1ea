/* serve/proto_stub: placeholders until the protocol parsers land (removed then). */
#include "serve.h"

int serve_v2_parse_request(const char *body, size_t len, size_t header_len, struct arena *a,
                           struct serve_request *out, struct err *e) {
  return err_set(e, ERR_INVALID_STATE, "not built yet");
}
int serve_v2_encode_response(struct buf *out, const char *model_name, const char *model_version,
                             const struct serve_request *rq, const struct serve_tensor *outputs, int noutputs,
                             size_t *header_len, struct err *e) {
  return err_set(e, ERR_INVALID_STATE, "not built yet");
}
int serve_mlflow_parse_request(const json_t *body, const struct serve_signature *sig, struct arena *a,
                               struct serve_request *out, struct err *e) {
  return err_set(e, ERR_INVALID_STATE, "not built yet");
}
json_t *serve_mlflow_encode_response(const struct serve_tensor *outputs, int noutputs) { return NULL; }
int serve_validate(const struct serve_signature *sig, struct serve_request *rq, struct arena *a, int64_t max_rows,
                   int64_t *rows, struct err *e) {
  return err_set(e, ERR_INVALID_STATE, "not built yet");
}
