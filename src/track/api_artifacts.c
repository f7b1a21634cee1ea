/* track/api_artifacts: the artifact proxy's HTTP side — MLflow's
 * mlflow-artifacts service (streamed upload, ranged download, list, delete,
 * multipart upload) and the tracking API's artifacts/list. Bytes stream
 * between the connection and the blob store in pieces; no artifact is ever
 * held whole in memory. */
#include "track/api_internal.h"
#include "track/track.h"

#include <stdlib.h>
#include <string.h>

#define ART_BLOCK (64u << 10)

static struct app *APP(struct req *rq) { return req_app(rq); }

static int reply_empty(struct reply *rp) { return reply_json(rp, 200, json_object()); }

/* ---- upload: PUT .../artifacts/{path*} ----------------------------------------------- */

struct upload {
  const char *project, *path;
  const char *upload_id; /* multipart part: the upload and the part number */
  int64_t part_number;
  struct blob_writer *w;
};

/* Refuses before a byte is read: bad path, another project's experiment. */
static int up_begin(struct req *rq, struct reply *rp, uint64_t announced_len, void **state) {
  (void)announced_len;
  struct err e;
  const char *proj = track_api_project(rq, rp);
  if (!proj) return -1;
  const char *path = req_param(rq, "path");
  if (track_artifact_target_check(APP(rq)->db, proj, path, &e)) return reply_err(rp, &e), -1;
  struct upload *u = arena_zalloc(req_arena(rq), sizeof *u);
  if (!u) return reply_errf(rp, ERR_NO_MEMORY, "out of memory"), -1;
  u->project = proj;
  u->path = path;
  if (!(u->w = blob_put_begin(APP(rq)->blobs, &e))) return reply_err(rp, &e), -1;
  *state = u;
  return 0;
}

static int up_chunk(struct req *rq, struct reply *rp, void *state, const char *p, size_t n) {
  (void)rq;
  struct upload *u = state;
  struct err e;
  if (blob_put_write(u->w, p, n, &e)) return reply_err(rp, &e), -1;
  return 0;
}

static void up_abort(struct req *rq, void *state) {
  (void)rq;
  struct upload *u = state;
  if (u->w) blob_put_abort(u->w);
  u->w = NULL;
}

/* Commits the blob; sha gets its address. */
static int up_commit(struct upload *u, struct reply *rp, char sha[65]) {
  struct err e;
  struct blob_writer *w = u->w;
  u->w = NULL;
  if (blob_put_commit(w, NULL, sha, &e)) return reply_err(rp, &e), -1;
  return 0;
}

static int up_end(struct req *rq, struct reply *rp, void *state) {
  struct upload *u = state;
  struct err e;
  char sha[65];
  if (up_commit(u, rp, sha)) return 0;
  if (track_artifact_put(APP(rq)->db, u->project, u->path, sha, &e)) return reply_err(rp, &e);
  char etag[70];
  snprintf(etag, sizeof etag, "\"%s\"", sha);
  reply_empty(rp);
  return reply_header(rp, "ETag", etag);
}

static const struct route_stream upload_stream = {up_begin, up_chunk, up_end, up_abort};

/* ---- download: GET .../artifacts/{path*} ------------------------------------------ */

struct download {
  struct blob_reader *br;
  uint64_t skip; /* bytes before the range, read and dropped */
  uint64_t left; /* bytes of the range still to send */
  bool to_end;   /* the range reaches the end: verify the whole blob */
};

static ssize_t dl_read(void *ctx, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  struct download *d = ctx;
  struct err e;
  /* A range inside the blob: the codec (zstd, encryption) is a stream, so
   * the bytes before it are decoded and dropped. */
  while (d->skip > 0) {
    ssize_t n = blob_get_read(d->br, buf, d->skip < max ? (size_t)d->skip : max, &e);
    if (n <= 0) goto fail;
    d->skip -= (uint64_t)n;
  }
  if (d->left == 0) return REPLY_STREAM_END;
  if (max > d->left) max = (size_t)d->left;
  ssize_t n = blob_get_read(d->br, buf, max, &e);
  if (n <= 0) goto fail;
  d->left -= (uint64_t)n;
  if (d->left == 0 && d->to_end) {
    /* the call that reaches the end verifies size and hash; a failure cuts
     * the connection before the last bytes, so the client sees it */
    char probe[1];
    if (blob_get_read(d->br, probe, sizeof probe, &e) != 0) goto fail;
  }
  return n;
fail:
  log_warn("artifact.download_failed", "%s", e.msg[0] ? e.msg : "blob shorter than recorded");
  return REPLY_STREAM_ERROR;
}

static void dl_done(void *ctx) {
  struct download *d = ctx;
  blob_get_close(d->br);
  free(d);
}

static int h_download(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  struct track_artifact a;
  struct err e;
  if (track_artifact_get(APP(rq)->db, proj, req_param(rq, "path"), &a, &e)) return reply_err(rp, &e);
  uint64_t first = 0, last = a.size ? a.size - 1 : 0;
  enum http_range_kind k = http_range_parse(req_header(rq, "Range"), a.size, &first, &last);
  char v[96];
  if (k == HTTP_RANGE_UNSATISFIABLE) {
    reply_errf(rp, ERR_RANGE_NOT_SATISFIABLE, "Range %.64s is outside the artifact's %llu bytes",
               req_header(rq, "Range"), (unsigned long long)a.size);
    snprintf(v, sizeof v, "bytes */%llu", (unsigned long long)a.size);
    return reply_header(rp, "Content-Range", v);
  }
  struct download *d = calloc(1, sizeof *d);
  if (!d) return reply_errf(rp, ERR_NO_MEMORY, "out of memory");
  if (!(d->br = blob_get_open(APP(rq)->blobs, a.sha256, &e))) {
    free(d);
    return reply_err(rp, &e);
  }
  uint64_t len = k == HTTP_RANGE_OK ? last - first + 1 : a.size;
  d->skip = k == HTTP_RANGE_OK ? first : 0;
  d->left = len;
  d->to_end = k != HTTP_RANGE_OK || last + 1 == a.size;
  reply_stream(rp, k == HTTP_RANGE_OK ? 206 : 200, "application/octet-stream", len, dl_read, dl_done, d);
  snprintf(v, sizeof v, "\"%s\"", a.sha256);
  reply_header(rp, "ETag", v);
  reply_header(rp, "Accept-Ranges", "bytes");
  reply_header(rp, "X-Content-Type-Options", "nosniff");
  if (k == HTTP_RANGE_OK) {
    snprintf(v, sizeof v, "bytes %llu-%llu/%llu", (unsigned long long)first, (unsigned long long)last,
             (unsigned long long)a.size);
    reply_header(rp, "Content-Range", v);
  }
  return 0;
}

/* ---- delete and list ---------------------------------------------------------------- */

static int h_delete(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  struct err e;
  int64_t n;
  if (track_artifact_delete(APP(rq)->db, proj, req_param(rq, "path"), &n, &e)) return reply_err(rp, &e);
  return reply_empty(rp);
}

/* A listing path may end in one '/'. */
static const char *dir_arg(struct req *rq, const char *v) {
  if (!v) return "";
  size_t n = strlen(v);
  if (n > 1 && v[n - 1] == '/') return arena_strndup(req_arena(rq), v, n - 1);
  return v;
}

static int h_list(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  struct err e;
  json_t *files = track_artifact_list(APP(rq)->db, proj, dir_arg(rq, req_query(rq, "path")), &e);
  if (!files) return reply_err(rp, &e);
  json_t *o = json_object();
  if (json_array_size(files)) json_object_set_new(o, "files", files);
  else json_decref(files);
  return reply_json(rp, 200, o);
}

static int h_run_list(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  const char *run = req_query(rq, "run_id");
  if (!run || !*run) run = req_query(rq, "run_uuid");
  if (!run || !*run)
    return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE,
                      "Missing value for required parameter 'run_id'. See the API docs for more "
                      "information about request parameters.");
  struct err e;
  char next[TRACKING_PAGE_TOKEN_MAX], *root = NULL;
  json_t *files = track_run_artifact_list(APP(rq)->db, proj, run, dir_arg(rq, req_query(rq, "path")),
                                          req_query(rq, "page_token"), next, &root, &e);
  if (!files) return reply_err(rp, &e);
  json_t *o = json_object();
  if (root && *root) json_object_set_new(o, "root_uri", json_string(root));
  free(root);
  if (json_array_size(files)) json_object_set_new(o, "files", files);
  else json_decref(files);
  if (next[0]) json_object_set_new(o, "next_page_token", json_string(next));
  return reply_json(rp, 200, o);
}

/* ---- multipart upload ---------------------------------------------------------------- *
 * MLflow's flow: create answers one credential (a URL) per part; the client
 * PUTs each part to its URL without credentials and keeps the ETag; complete
 * lists the parts with their ETags. The URLs carry the upload id, a 256-bit
 * secret, as a presigned URL carries its signature. */

/* --public-url, else the request's own host (when it is a plain host[:port]). */
static const char *url_base(struct req *rq) {
  const char *pub = APP(rq)->auth ? auth_public_url(APP(rq)->auth) : "";
  if (pub && *pub) return pub;
  const char *host = req_header(rq, "Host");
  bool ok = host && *host && strlen(host) <= 255;
  for (const char *p = host; ok && *p; p++)
    ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
         strchr(".-:[]_", *p) != NULL;
  return arena_printf(req_arena(rq), "%s://%s", APP(rq)->tls ? "https" : "http", ok ? host : "localhost");
}

static int h_mpu_create(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  json_t *np = json_object_get(b, "num_parts");
  int64_t num = 0;
  if (json_is_integer(np)) num = json_integer_value(np);
  else if (!json_is_string(np) || str_to_i64(json_string_value(np), &num))
    return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "num_parts must be an integer");
  struct err e;
  char id[65];
  const char *path = req_param(rq, "path");
  if (track_mpu_create(APP(rq)->db, proj, path, num, id, &e)) return reply_err(rp, &e);
  const char *base = url_base(rq);
  json_t *creds = json_array();
  for (int64_t i = 1; creds && i <= num; i++)
    json_array_append_new(creds, json_pack("{s:s, s:I, s:{}}", "url",
                                           arena_printf(req_arena(rq), "%s/api/2.0/mlflow-artifacts/mpu/parts/%s/%lld",
                                                        base, id, (long long)i),
                                           "part_number", (json_int_t)i, "headers"));
  return reply_json(rp, 200, json_pack("{s:s, s:o}", "upload_id", id, "credentials", creds));
}

static int part_begin(struct req *rq, struct reply *rp, uint64_t announced_len, void **state) {
  (void)announced_len;
  struct err e;
  const char *id = req_param(rq, "upload_id"), *pn = req_param(rq, "part_number");
  int64_t n;
  if (!pn || str_to_i64(pn, &n) || n < 1)
    return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "part_number must be a positive integer"), -1;
  if (track_mpu_exists(APP(rq)->db, id, &e)) return reply_err(rp, &e), -1;
  struct upload *u = arena_zalloc(req_arena(rq), sizeof *u);
  if (!u) return reply_errf(rp, ERR_NO_MEMORY, "out of memory"), -1;
  u->upload_id = id;
  u->part_number = n;
  if (!(u->w = blob_put_begin(APP(rq)->blobs, &e))) return reply_err(rp, &e), -1;
  *state = u;
  return 0;
}

static int part_end(struct req *rq, struct reply *rp, void *state) {
  struct upload *u = state;
  struct err e;
  char sha[65];
  if (up_commit(u, rp, sha)) return 0;
  if (track_mpu_part_put(APP(rq)->db, u->upload_id, u->part_number, sha, &e)) return reply_err(rp, &e);
  char etag[70];
  snprintf(etag, sizeof etag, "\"%s\"", sha);
  reply_empty(rp);
  return reply_header(rp, "ETag", etag);
}

static const struct route_stream part_stream = {part_begin, up_chunk, part_end, up_abort};

/* ETags as S3 and Kiln send them, quoted, or bare. */
static bool etag_eq(const char *given, const char *sha) {
  size_t n = strlen(given);
  if (n == 66 && given[0] == '"' && given[65] == '"') return strncmp(given + 1, sha, 64) == 0;
  return str_eq(given, sha);
}

/* Concatenates the listed parts into one blob, server side, streaming. */
static int mpu_concat(struct req *rq, const struct track_mpu_part *parts, json_t *listed,
                      int nstored, char sha[65], struct err *e) {
  struct blob_writer *w = blob_put_begin(APP(rq)->blobs, e);
  if (!w) return -1;
  char *blk = malloc(ART_BLOCK);
  int rc = blk ? 0 : err_set(e, ERR_NO_MEMORY, NULL);
  size_t i;
  json_t *x;
  int64_t prev = 0;
  json_array_foreach(listed, i, x) {
    if (rc) break;
    json_t *pn = json_object_get(x, "part_number"), *et = json_object_get(x, "etag");
    int64_t n = json_is_integer(pn) ? json_integer_value(pn) : 0;
    if (n <= prev) {
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "parts must be listed by increasing part_number");
      break;
    }
    prev = n;
    const struct track_mpu_part *p = NULL;
    for (int k = 0; k < nstored; k++)
      if (parts[k].part_number == n) p = &parts[k];
    if (!p) {
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "part %lld was not uploaded", (long long)n);
      break;
    }
    if (json_is_string(et) && !etag_eq(json_string_value(et), p->sha256)) {
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "part %lld: the etag does not match", (long long)n);
      break;
    }
    struct blob_reader *r = blob_get_open(APP(rq)->blobs, p->sha256, e);
    if (!r) {
      rc = -1;
      break;
    }
    ssize_t got;
    while ((got = blob_get_read(r, blk, ART_BLOCK, e)) > 0)
      if ((rc = blob_put_write(w, blk, (size_t)got, e))) break;
    if (got < 0) rc = -1;
    blob_get_close(r);
  }
  free(blk);
  if (rc) {
    blob_put_abort(w);
    return -1;
  }
  return blob_put_commit(w, NULL, sha, e) ? -1 : 0;
}

static int h_mpu_complete(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  const char *path = req_param(rq, "path");
  json_t *id = json_object_get(b, "upload_id"), *listed = json_object_get(b, "parts");
  if (!json_is_string(id)) return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "upload_id is required");
  if (!json_is_array(listed) || json_array_size(listed) == 0)
    return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "parts must list the uploaded parts");
  struct err e;
  struct track_mpu_part *parts;
  int n;
  if (track_mpu_parts(APP(rq)->db, proj, path, json_string_value(id), &parts, &n, &e)) return reply_err(rp, &e);
  char sha[65];
  int rc = mpu_concat(rq, parts, listed, n, sha, &e);
  free(parts);
  if (rc) return reply_err(rp, &e);
  /* the file's reference is taken before the parts' go, so shared bytes stay */
  if (track_artifact_put(APP(rq)->db, proj, path, sha, &e) ||
      track_mpu_finish(APP(rq)->db, proj, path, json_string_value(id), &e))
    return reply_err(rp, &e);
  return reply_empty(rp);
}

static int h_mpu_abort(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  json_t *id = json_object_get(b, "upload_id");
  if (!json_is_string(id)) return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "upload_id is required");
  struct err e;
  if (track_mpu_finish(APP(rq)->db, proj, req_param(rq, "path"), json_string_value(id), &e))
    return reply_err(rp, &e);
  return reply_empty(rp);
}

/* ---- routes ---------------------------------------------------------------------------- */
#define S_EMPTY "{\"type\":\"object\",\"maxProperties\":0}"
#define S_FILEINFO                                                                                 \
  "{\"type\":\"object\",\"required\":[\"path\",\"is_dir\"],\"properties\":{\"path\":{\"type\":"     \
  "\"string\",\"minLength\":1},\"is_dir\":{\"type\":\"boolean\"},\"file_size\":{\"type\":"          \
  "\"integer\",\"minimum\":0}},\"additionalProperties\":false}"
#define S_FILES "\"files\":{\"type\":\"array\",\"minItems\":1,\"items\":" S_FILEINFO "}"
#define ART "/api/2.0/mlflow-artifacts/"
#define TAG "mlflow artifacts"
#define SEL ROUTE_PROJECT_SELECTED

const struct route track_artifact_routes[] = {
    {"PUT", ART "artifacts/{path*}", PERM_WRITE,
     "Upload an artifact (streamed; path: <experiment_id>/<run_id>/artifacts/<file>)", TAG, NULL, S_EMPTY,
     NULL, NULL, SEL | ROUTE_STREAM_BODY, track_api_locate, &upload_stream},
    {"GET", ART "artifacts/{path*}", PERM_READ, "Download an artifact (Range: bytes=, one range)", TAG, NULL,
     NULL, "application/octet-stream", h_download, SEL, track_api_locate, NULL},
    {"DELETE", ART "artifacts/{path*}", PERM_WRITE, "Delete an artifact, or a directory of them", TAG, NULL,
     S_EMPTY, NULL, h_delete, SEL, track_api_locate, NULL},
    {"GET", ART "artifacts", PERM_READ, "List the artifacts directly under a path (query: path)", TAG, NULL,
     "{\"type\":\"object\",\"properties\":{" S_FILES "},\"additionalProperties\":false}", NULL, h_list, SEL,
     track_api_locate, NULL},
    {"POST", ART "mpu/create/{path*}", PERM_WRITE, "Start a multipart upload (num_parts)", TAG,
     "{\"type\":\"object\",\"required\":[\"num_parts\"],\"properties\":{\"path\":{\"type\":\"string\"},"
     "\"num_parts\":{\"type\":[\"integer\",\"string\"]}}}",
     "{\"type\":\"object\",\"required\":[\"upload_id\",\"credentials\"],\"properties\":{\"upload_id\":"
     "{\"type\":\"string\",\"pattern\":\"^[0-9a-f]{64}$\"},\"credentials\":{\"type\":\"array\",\"items\":"
     "{\"type\":\"object\",\"required\":[\"url\",\"part_number\"],\"properties\":{\"url\":{\"type\":"
     "\"string\"},\"part_number\":{\"type\":\"integer\"},\"headers\":{\"type\":\"object\"}}}}},"
     "\"additionalProperties\":false}",
     NULL, h_mpu_create, SEL, track_api_locate, NULL},
    {"PUT", ART "mpu/parts/{upload_id}/{part_number}", PERM_PUBLIC,
     "Upload one part (the URL create answered; the upload id is its credential)", TAG, NULL, S_EMPTY, NULL,
     NULL, ROUTE_STREAM_BODY, NULL, &part_stream},
    {"POST", ART "mpu/complete/{path*}", PERM_WRITE, "Complete a multipart upload (upload_id, parts)", TAG,
     "{\"type\":\"object\",\"required\":[\"upload_id\",\"parts\"],\"properties\":{\"path\":{\"type\":"
     "\"string\"},\"upload_id\":{\"type\":\"string\"},\"parts\":{\"type\":\"array\",\"items\":{\"type\":"
     "\"object\",\"properties\":{\"part_number\":{\"type\":\"integer\"},\"etag\":{\"type\":\"string\"},"
     "\"url\":{\"type\":\"string\"}}}}}}",
     S_EMPTY, NULL, h_mpu_complete, SEL | ROUTE_OFFLOAD, track_api_locate, NULL},
    {"POST", ART "mpu/abort/{path*}", PERM_WRITE, "Abort a multipart upload (upload_id)", TAG,
     "{\"type\":\"object\",\"required\":[\"upload_id\"],\"properties\":{\"path\":{\"type\":\"string\"},"
     "\"upload_id\":{\"type\":\"string\"}}}",
     S_EMPTY, NULL, h_mpu_abort, SEL, track_api_locate, NULL},
    {"GET", "/api/2.0/mlflow/artifacts/list", PERM_READ,
     "List a run's artifacts (query: run_id, path, page_token)", "mlflow tracking", NULL,
     "{\"type\":\"object\",\"properties\":{\"root_uri\":{\"type\":\"string\"}," S_FILES
     ",\"next_page_token\":{\"type\":\"string\",\"minLength\":1}},\"additionalProperties\":false}",
     NULL, h_run_list, SEL, track_api_locate, NULL},
    {"GET", "/ajax-api/2.0/mlflow/artifacts/list", PERM_READ, "List a run's artifacts (alias)",
     "mlflow tracking", NULL,
     "{\"type\":\"object\",\"properties\":{\"root_uri\":{\"type\":\"string\"}," S_FILES
     ",\"next_page_token\":{\"type\":\"string\",\"minLength\":1}},\"additionalProperties\":false}",
     NULL, h_run_list, SEL, track_api_locate, NULL},
};
const size_t track_artifact_routes_count = sizeof track_artifact_routes / sizeof track_artifact_routes[0];
