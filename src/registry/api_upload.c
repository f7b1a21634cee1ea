/* registry/api_upload: the HTTP side of model uploads — a file in one
 * request (multipart/form-data or a raw body), resumable sessions, an
 * uploaded version's scan report and download, and the project's registry
 * settings. Thin: read the fields, call uploads.c, reply. Bytes stream from
 * the connection to a temp file; intake runs when the last byte is in. */
#include "http/http.h"
#include "registry/internal.h"
#include "registry/registry.h"
/* the MLflow API's project choice: uploads land where the registry API looks */
#include "track/api_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define UP_BLOCK (64u << 10)

static void upload_cfg(struct req *rq, struct registry_upload_cfg *c) {
  struct app *app = req_app(rq);
  memset(c, 0, sizeof *c);
  c->db = app->db;
  c->blobs = app->blobs;
  c->dir = arena_printf(req_arena(rq), "%s/uploads", app->data_dir && *app->data_dir ? app->data_dir : "/tmp");
  if (app->cfg) {
    c->max_size = (uint64_t)cfg_int(app->cfg, "max-model-size");
    c->session_ttl_s = cfg_int(app->cfg, "upload-session-ttl");
    c->av_fail_open = cfg_bool(app->cfg, "clamd-fail-open");
  }
  c->av = app->av;
}

static const char *who(struct req *rq) {
  const struct auth_principal *p = req_principal(rq);
  return p->username[0] ? p->username : NULL;
}

/* A refused upload: the error, plus the FAILED version when one was made. */
static int reply_refused(struct reply *rp, const struct err *e, json_t *version) {
  if (!version) return reply_err(rp, e);
  json_t *o = json_pack("{s:s, s:s, s:o}", "error_code", err_code_str(e->code), "message", e->msg, "model_version", version);
  if (!o) return reply_errf(rp, ERR_NO_MEMORY, "out of memory");
  return reply_json(rp, err_http_status(e->code), o);
}

static int reply_registered(struct reply *rp, int rc, const struct err *e, json_t *out) {
  if (rc) return reply_refused(rp, e, out);
  return reply_json(rp, 200, json_pack("{s:o}", "model_version", out));
}

/* ---- metadata from the query, headers and form fields ---------------------------------------- */

struct meta {
  const char *name, *description, *sha256;
  struct registry_kv tags[REGISTRY_MAX_TAGS + 1];
  int ntags;
};

/* "key=value" */
static int add_tag(struct req *rq, struct meta *m, const char *kv, struct err *e) {
  const char *eq = strchr(kv, '=');
  if (!eq || eq == kv) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "a tag is key=value, got '%.100s'", kv);
  if (m->ntags >= REGISTRY_MAX_TAGS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "A model version takes at most %d tags in one request", REGISTRY_MAX_TAGS);
  m->tags[m->ntags].key = arena_strndup(req_arena(rq), kv, (size_t)(eq - kv));
  m->tags[m->ntags].value = arena_strdup(req_arena(rq), eq + 1);
  if (!m->tags[m->ntags].key || !m->tags[m->ntags].value) return err_set(e, ERR_NO_MEMORY, "out of memory");
  m->ntags++;
  return 0;
}

/* tags as JSON: [{"key", "value"}] or {"key": "value"} */
static int add_tags_json(struct req *rq, struct meta *m, json_t *v, struct err *e) {
  if (json_is_object(v)) {
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
      if (!json_is_string(x)) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "tag values must be strings");
      if (m->ntags >= REGISTRY_MAX_TAGS)
        return err_set(e, ERR_INVALID_PARAMETER_VALUE, "A model version takes at most %d tags in one request", REGISTRY_MAX_TAGS);
      m->tags[m->ntags].key = arena_strdup(req_arena(rq), k);
      m->tags[m->ntags++].value = arena_strdup(req_arena(rq), json_string_value(x));
    }
    return 0;
  }
  if (!json_is_array(v)) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "tags must be a list of {key, value} or an object");
  size_t i;
  json_t *x;
  json_array_foreach(v, i, x) {
    json_t *k = json_object_get(x, "key"), *val = json_object_get(x, "value");
    if (!json_is_string(k) || (val && !json_is_string(val)))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "tags must be a list of {key, value} with string keys and values");
    if (m->ntags >= REGISTRY_MAX_TAGS)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "A model version takes at most %d tags in one request", REGISTRY_MAX_TAGS);
    m->tags[m->ntags].key = arena_strdup(req_arena(rq), json_string_value(k));
    m->tags[m->ntags++].value = arena_strdup(req_arena(rq), val ? json_string_value(val) : "");
  }
  return 0;
}

/* Query parameters first, then X-Kiln-* headers. */
static int meta_from_request(struct req *rq, struct meta *m, struct err *e) {
  memset(m, 0, sizeof *m);
  m->name = req_query(rq, "name");
  if (!m->name) m->name = req_header(rq, "X-Kiln-Model-Name");
  m->description = req_query(rq, "description");
  if (!m->description) m->description = req_header(rq, "X-Kiln-Description");
  m->sha256 = req_query(rq, "sha256");
  if (!m->sha256) m->sha256 = req_header(rq, "X-Kiln-Sha256");
  const char *tags[REGISTRY_MAX_TAGS + 1];
  int n = req_query_all(rq, "tag", tags, REGISTRY_MAX_TAGS + 1);
  if (n > REGISTRY_MAX_TAGS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "A model version takes at most %d tags in one request", REGISTRY_MAX_TAGS);
  for (int i = 0; i < n; i++) {
    int rc = add_tag(rq, m, tags[i], e);
    if (rc) return rc;
  }
  return 0;
}

static void meta_to_domain(struct req *rq, const struct meta *m, struct registry_upload_meta *out) {
  *out = (struct registry_upload_meta){.name = m->name, .description = m->description, .tags = m->tags,
                                       .ntags = m->ntags, .expected_sha256 = m->sha256, .user_id = who(rq)};
}

/* ---- POST /api/v1/models/upload ----------------------------------------------------------------- */

struct one {
  struct req *rq;
  const char *proj;
  struct registry_upload_cfg cfg;
  struct meta meta;
  struct registry_upload_file *f;
  struct mp_parser *mp;
  /* multipart: the part being read */
  bool in_file, file_seen;
  char field[64];
  struct buf value;
};

static int mp_begin(void *ctx, const char *name, const char *filename, struct err *e) {
  struct one *u = ctx;
  u->in_file = filename[0] || str_eq(name, "file");
  if (u->in_file) {
    if (u->file_seen) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "one model file per upload: a second file part was sent");
    u->file_seen = true;
    return 0;
  }
  str_copy(u->field, sizeof u->field, name);
  buf_reset(&u->value);
  return 0;
}

static int mp_data(void *ctx, const char *p, size_t n, struct err *e) {
  struct one *u = ctx;
  if (u->in_file) return registry_upload_file_write(u->f, p, n, e);
  if (u->value.len + n > MP_MAX_FIELD)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "form field '%.60s' is longer than %d bytes", u->field, MP_MAX_FIELD);
  return buf_append(&u->value, p, n) ? err_set(e, ERR_NO_MEMORY, "out of memory") : 0;
}

static int mp_end(void *ctx, struct err *e) {
  struct one *u = ctx;
  if (u->in_file) return 0;
  struct req *rq = u->rq;
  const char *v = arena_strndup(req_arena(rq), u->value.data ? u->value.data : "", u->value.len);
  if (!v) return err_set(e, ERR_NO_MEMORY, "out of memory");
  if (strlen(v) != u->value.len) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "form field '%.60s' holds a NUL byte", u->field);
  if (str_eq(u->field, "name")) u->meta.name = v;
  else if (str_eq(u->field, "description")) u->meta.description = v;
  else if (str_eq(u->field, "sha256")) u->meta.sha256 = v;
  else if (str_eq(u->field, "tag")) return add_tag(rq, &u->meta, v, e);
  else if (str_eq(u->field, "tags")) {
    json_t *j = json_parse(v, strlen(v), e);
    if (!j) return -(int)e->code;
    int rc = add_tags_json(rq, &u->meta, j, e);
    json_decref(j);
    return rc;
  }
  /* other fields are ignored, as HTML forms send buttons and the like */
  return 0;
}

static const struct mp_callbacks mp_cb = {mp_begin, mp_data, mp_end};

static void one_release(struct one *u) {
  registry_upload_file_free(u->f);
  u->f = NULL;
  mp_parser_free(u->mp);
  u->mp = NULL;
  buf_fini(&u->value);
}

static int one_begin(struct req *rq, struct reply *rp, uint64_t announced_len, void **state) {
  struct err e;
  const char *proj = track_api_project(rq, rp);
  if (!proj) return -1;
  struct one *u = arena_zalloc(req_arena(rq), sizeof *u);
  if (!u) return reply_errf(rp, ERR_NO_MEMORY, "out of memory"), -1;
  u->rq = rq;
  u->proj = proj;
  upload_cfg(rq, &u->cfg);
  buf_init(&u->value);
  if (meta_from_request(rq, &u->meta, &e)) return reply_err(rp, &e), -1;
  const char *ct = req_header(rq, "Content-Type");
  bool multipart = ct && !strncasecmp(ct, "multipart/form-data", 19);
  uint64_t max = u->cfg.max_size ? u->cfg.max_size : REGISTRY_UPLOAD_DEFAULT_MAX_SIZE;
  /* a form carries a few fields besides the file */
  uint64_t allowance = multipart ? 64u << 10 : 0;
  if (announced_len != HTTP_LEN_UNKNOWN && announced_len > max + allowance)
    return reply_errf(rp, ERR_PAYLOAD_TOO_LARGE,
                      "the model file is larger than the server's limit of %llu bytes (--max-model-size)",
                      (unsigned long long)max), -1;
  if (!multipart) {
    /* everything is known before the body: refuse bad metadata unread */
    struct registry_upload_meta m;
    meta_to_domain(rq, &u->meta, &m);
    if (registry_upload_meta_check(&m, &e)) return reply_err(rp, &e), -1;
  } else if (!(u->mp = mp_parser_new(ct, &mp_cb, u, &e))) {
    return reply_err(rp, &e), -1;
  }
  if (!(u->f = registry_upload_file_new(&u->cfg, &e))) {
    one_release(u);
    return reply_err(rp, &e), -1;
  }
  *state = u;
  return 0;
}

static int one_chunk(struct req *rq, struct reply *rp, void *state, const char *p, size_t n) {
  (void)rq;
  struct one *u = state;
  struct err e;
  int rc = u->mp ? mp_parser_feed(u->mp, p, n, &e) : registry_upload_file_write(u->f, p, n, &e);
  return rc ? (reply_err(rp, &e), -1) : 0;
}

static void one_abort(struct req *rq, void *state) {
  (void)rq;
  one_release(state);
}

static int one_end(struct req *rq, struct reply *rp, void *state) {
  struct one *u = state;
  struct err e;
  json_t *out = NULL;
  if (u->mp && mp_parser_finish(u->mp, &e)) {
    reply_err(rp, &e);
  } else if (u->mp && !u->file_seen) {
    reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "the form has no file part (send the model as a part named 'file')");
  } else {
    struct registry_upload_meta m;
    meta_to_domain(rq, &u->meta, &m);
    int rc = registry_upload_register(&u->cfg, u->proj, &m, u->f, &out, &e);
    reply_registered(rp, rc, &e, out);
  }
  one_release(u);
  return 0;
}

static const struct route_stream one_stream = {one_begin, one_chunk, one_end, one_abort};

/* ---- resumable sessions ------------------------------------------------------------------------ */

static const char *owner(struct req *rq) { return req_principal(rq)->user_id; }

static int h_session_create(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  struct err e;
  struct meta mt;
  memset(&mt, 0, sizeof mt);
  json_t *sz = json_object_get(b, "size"), *tags = json_object_get(b, "tags");
  if (json_get_str(b, "name", true, &mt.name, &e) || json_get_str(b, "description", false, &mt.description, &e) ||
      json_get_str(b, "sha256", false, &mt.sha256, &e))
    return reply_err(rp, &e);
  if (!json_is_integer(sz) || json_integer_value(sz) < 1)
    return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "size must be the file's length in bytes (a positive integer)");
  if (tags && !json_is_null(tags) && add_tags_json(rq, &mt, tags, &e)) return reply_err(rp, &e);
  struct registry_upload_cfg c;
  upload_cfg(rq, &c);
  struct registry_upload_meta m;
  meta_to_domain(rq, &mt, &m);
  m.user_id = owner(rq);
  json_t *s = registry_upload_session_create(&c, proj, &m, (uint64_t)json_integer_value(sz), &e);
  return s ? reply_json(rp, 200, json_pack("{s:o}", "upload", s)) : reply_err(rp, &e);
}

static int h_session_get(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  struct registry_upload_cfg c;
  upload_cfg(rq, &c);
  struct err e;
  json_t *s = registry_upload_session_get(&c, proj, owner(rq), req_param(rq, "upload_id"), &e);
  return s ? reply_json(rp, 200, json_pack("{s:o}", "upload", s)) : reply_err(rp, &e);
}

static int h_session_delete(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  struct registry_upload_cfg c;
  upload_cfg(rq, &c);
  struct err e;
  if (registry_upload_session_abort(&c, proj, owner(rq), req_param(rq, "upload_id"), &e)) return reply_err(rp, &e);
  return reply_json(rp, 200, json_object());
}

static int h_session_complete(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  struct registry_upload_cfg c;
  upload_cfg(rq, &c);
  struct err e;
  json_t *out = NULL;
  int rc = registry_upload_session_complete(&c, proj, owner(rq), who(rq), req_param(rq, "upload_id"), &out, &e);
  return reply_registered(rp, rc, &e, out);
}

/* Content-Range: bytes FIRST-LAST/TOTAL (TOTAL may be *). */
static int parse_content_range(const char *v, uint64_t *first, uint64_t *len, uint64_t *total, struct err *e) {
  *total = UINT64_MAX;
  char a[24], b[24], t[24];
  const char *p = v;
  if (strncasecmp(p, "bytes ", 6)) goto bad;
  p += 6;
  size_t n = strcspn(p, "-");
  if (!n || n >= sizeof a || p[n] != '-') goto bad;
  memcpy(a, p, n);
  a[n] = 0;
  p += n + 1;
  n = strcspn(p, "/");
  if (!n || n >= sizeof b || p[n] != '/') goto bad;
  memcpy(b, p, n);
  b[n] = 0;
  p += n + 1;
  if (str_copy(t, sizeof t, p) >= sizeof t) goto bad;
  uint64_t last;
  if (str_to_u64(a, first) || str_to_u64(b, &last) || last < *first) goto bad;
  if (!str_eq(t, "*") && str_to_u64(t, total)) goto bad;
  *len = last - *first + 1;
  return 0;
bad:
  return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Content-Range must be 'bytes FIRST-LAST/TOTAL', got '%.80s'", v);
}

struct chunk_state {
  struct registry_upload_chunk *ch;
};

static int chunk_begin(struct req *rq, struct reply *rp, uint64_t announced_len, void **state) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return -1;
  struct err e;
  struct registry_upload_cfg c;
  upload_cfg(rq, &c);
  /* the cfg must outlive this call: the chunk keeps a pointer to it */
  struct registry_upload_cfg *cp = arena_zalloc(req_arena(rq), sizeof *cp);
  struct chunk_state *cs = arena_zalloc(req_arena(rq), sizeof *cs);
  if (!cp || !cs) return reply_errf(rp, ERR_NO_MEMORY, "out of memory"), -1;
  *cp = c;
  const char *cr = req_header(rq, "Content-Range"), *off = req_query(rq, "offset");
  uint64_t first = 0, len = announced_len == HTTP_LEN_UNKNOWN ? UINT64_MAX : announced_len, total = UINT64_MAX;
  if (cr && *cr) {
    uint64_t clen = 0;
    if (parse_content_range(cr, &first, &clen, &total, &e)) return reply_err(rp, &e), -1;
    if (len != UINT64_MAX && clen != len)
      return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE,
                        "Content-Range says %llu bytes but the body is %llu bytes long", (unsigned long long)clen,
                        (unsigned long long)len), -1;
    len = clen;
  } else if (off && *off) {
    if (str_to_u64(off, &first)) return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "offset must be a byte offset"), -1;
  } else {
    return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "say where the chunk goes: a Content-Range header or ?offset="), -1;
  }
  if (total != UINT64_MAX) {
    json_t *s = registry_upload_session_get(cp, proj, owner(rq), req_param(rq, "upload_id"), &e);
    if (!s) return reply_err(rp, &e), -1;
    uint64_t size = (uint64_t)json_integer_value(json_object_get(s, "size"));
    json_decref(s);
    if (size != total)
      return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "Content-Range says the file has %llu bytes; the upload was created for %llu",
                        (unsigned long long)total, (unsigned long long)size), -1;
  }
  if (!(cs->ch = registry_upload_chunk_begin(cp, proj, owner(rq), req_param(rq, "upload_id"), first, len, &e)))
    return reply_err(rp, &e), -1;
  *state = cs;
  return 0;
}

static int chunk_chunk(struct req *rq, struct reply *rp, void *state, const char *p, size_t n) {
  (void)rq;
  struct chunk_state *cs = state;
  struct err e;
  return registry_upload_chunk_write(cs->ch, p, n, &e) ? (reply_err(rp, &e), -1) : 0;
}

static int chunk_end(struct req *rq, struct reply *rp, void *state) {
  (void)rq;
  struct chunk_state *cs = state;
  struct err e;
  json_t *s = registry_upload_chunk_end(cs->ch, &e);
  cs->ch = NULL;
  return s ? reply_json(rp, 200, json_pack("{s:o}", "upload", s)) : reply_err(rp, &e);
}

static void chunk_abort(struct req *rq, void *state) {
  (void)rq;
  struct chunk_state *cs = state;
  registry_upload_chunk_abort(cs->ch);
  cs->ch = NULL;
}

static const struct route_stream chunk_stream = {chunk_begin, chunk_chunk, chunk_end, chunk_abort};

/* ---- an uploaded version: scan report and download ------------------------------------------------ */

static int h_signature(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  struct err e;
  json_t *o = registry_upload_signature_set(req_app(rq)->db, proj, req_param(rq, "name"), req_param(rq, "version"),
                                            json_object_get(b, "signature"), &e);
  return o ? reply_json(rp, 200, json_pack("{s:o}", "model_version", o)) : reply_err(rp, &e);
}

static int h_scan(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  struct err e;
  json_t *o = registry_upload_answer(req_app(rq)->db, proj, req_param(rq, "name"), req_param(rq, "version"), &e);
  return o ? reply_json(rp, 200, json_pack("{s:o}", "model_version", o)) : reply_err(rp, &e);
}

struct download {
  struct blob_reader *br;
  uint64_t skip, left;
  bool to_end;
};

static ssize_t dl_read(void *ctx, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  struct download *d = ctx;
  struct err e = {0};
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
    char probe[1]; /* the end verifies the hash; a bad blob cuts the connection */
    if (blob_get_read(d->br, probe, sizeof probe, &e) != 0) goto fail;
  }
  return n;
fail:
  log_warn("model.download_failed", "%s", e.msg[0] ? e.msg : "blob shorter than recorded");
  return REPLY_STREAM_ERROR;
}

static void dl_done(void *ctx) {
  struct download *d = ctx;
  blob_get_close(d->br);
  free(d);
}

static const char *file_ext(const char *format) {
  static const char *const map[][2] = {{"onnx", ".onnx"}, {"pickle", ".pkl"}, {"joblib", ".joblib"},
                                       {"xgboost-json", ".json"}, {"xgboost-ubj", ".ubj"},
                                       {"xgboost-binary", ".bin"}, {"torchscript", ".pt"},
                                       {"keras-hdf5", ".h5"}, {"lightgbm-text", ".txt"},
                                       {"mlflow-zip", ".zip"}, {"mlflow-tar", ".tar.gz"}};
  for (size_t i = 0; format && i < sizeof map / sizeof map[0]; i++)
    if (str_eq(format, map[i][0])) return map[i][1];
  return ".bin";
}

static int h_download(struct req *rq, struct reply *rp) {
  const char *proj = track_api_project(rq, rp);
  if (!proj) return 0;
  struct err e;
  const char *name = req_param(rq, "name"), *version = req_param(rq, "version");
  char sha[65], fmt[32] = "";
  uint64_t size;
  if (registry_upload_blob(req_app(rq)->db, proj, name, version, sha, &size, &e)) return reply_err(rp, &e);
  json_t *o = registry_upload_answer(req_app(rq)->db, proj, name, version, &e);
  const char *f = o ? json_string_value(json_object_get(o, "format")) : NULL;
  if (f) str_copy(fmt, sizeof fmt, f);
  json_decref(o);
  uint64_t first = 0, last = size ? size - 1 : 0;
  enum http_range_kind k = http_range_parse(req_header(rq, "Range"), size, &first, &last);
  char v[320];
  if (k == HTTP_RANGE_UNSATISFIABLE) {
    reply_errf(rp, ERR_RANGE_NOT_SATISFIABLE, "Range %.64s is outside the file's %llu bytes", req_header(rq, "Range"),
               (unsigned long long)size);
    snprintf(v, sizeof v, "bytes */%llu", (unsigned long long)size);
    return reply_header(rp, "Content-Range", v);
  }
  struct download *d = calloc(1, sizeof *d);
  if (!d) return reply_errf(rp, ERR_NO_MEMORY, "out of memory");
  if (!(d->br = blob_get_open(req_app(rq)->blobs, sha, &e))) {
    free(d);
    return reply_err(rp, &e);
  }
  uint64_t len = k == HTTP_RANGE_OK ? last - first + 1 : size;
  d->skip = k == HTTP_RANGE_OK ? first : 0;
  d->left = len;
  d->to_end = k != HTTP_RANGE_OK || last + 1 == size;
  reply_stream(rp, k == HTTP_RANGE_OK ? 206 : 200, "application/octet-stream", len, dl_read, dl_done, d);
  snprintf(v, sizeof v, "\"%s\"", sha);
  reply_header(rp, "ETag", v);
  reply_header(rp, "Accept-Ranges", "bytes");
  reply_header(rp, "X-Content-Type-Options", "nosniff");
  reply_header(rp, "X-Kiln-Sha256", sha);
  /* a file name safe in a header whatever the model is called */
  char fname[200];
  size_t n = 0;
  for (const char *p = name; *p && n < 120; p++)
    fname[n++] = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ? *p : '_';
  fname[n] = 0;
  snprintf(v, sizeof v, "attachment; filename=\"%s-v%.20s%s\"", fname, version, file_ext(fmt));
  reply_header(rp, "Content-Disposition", v);
  if (k == HTTP_RANGE_OK) {
    snprintf(v, sizeof v, "bytes %llu-%llu/%llu", (unsigned long long)first, (unsigned long long)last,
             (unsigned long long)size);
    reply_header(rp, "Content-Range", v);
  }
  return 0;
}

/* ---- project settings ------------------------------------------------------------------------------ */

static const char *project_param(struct req *rq, bool *missing) {
  const char *id = req_param(rq, "project_id");
  if (!id || !*id) *missing = true;
  return id;
}

/* Server admins pass the central check for any id: the project must exist. */
static int project_exists(struct req *rq, struct reply *rp) {
  struct auth_project pr;
  struct err e;
  if (req_app(rq)->auth && auth_project_get(req_app(rq)->auth, req_param(rq, "project_id"), &pr, &e))
    return reply_errf(rp, ERR_RESOURCE_DOES_NOT_EXIST, "resource does not exist"), -1;
  return 0;
}

static int h_settings_get(struct req *rq, struct reply *rp) {
  if (project_exists(rq, rp)) return 0;
  struct err e;
  json_t *o = registry_settings_get(req_app(rq)->db, req_param(rq, "project_id"), &e);
  return o ? reply_json(rp, 200, json_pack("{s:o}", "settings", o)) : reply_err(rp, &e);
}

static int h_settings_put(struct req *rq, struct reply *rp) {
  if (project_exists(rq, rp)) return 0;
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  json_t *v = json_object_get(b, "allow_unsafe_pickles");
  if (!json_is_boolean(v)) return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "allow_unsafe_pickles must be true or false");
  struct err e;
  json_t *o = registry_settings_set(req_app(rq)->db, req_param(rq, "project_id"), json_is_true(v), req_actor(rq), &e);
  return o ? reply_json(rp, 200, json_pack("{s:o}", "settings", o)) : reply_err(rp, &e);
}

/* ---- routes ---------------------------------------------------------------------------------------- */
#define S_STR "{\"type\":\"string\"}"
#define S_INT0 "{\"type\":\"integer\",\"minimum\":0}"
#define S_SHA "{\"type\":\"string\",\"pattern\":\"^[0-9a-f]{64}$\"}"
#define S_EMPTY "{\"type\":\"object\",\"maxProperties\":0}"
#define S_UPLOADED                                                                                 \
  "{\"type\":\"object\",\"required\":[\"name\",\"version\",\"status\",\"source\",\"sha256\",\"size\"," \
  "\"stored\",\"unsafe\",\"scan\",\"signature\",\"prediction_url\",\"creation_timestamp\"],"          \
  "\"properties\":{\"name\":" S_STR ",\"version\":{\"type\":\"string\",\"pattern\":\"^[1-9][0-9]*$\"}," \
  "\"status\":{\"enum\":[\"PENDING_REGISTRATION\",\"FAILED_REGISTRATION\",\"READY\"]},"              \
  "\"status_message\":" S_STR ",\"source\":{\"type\":\"string\",\"pattern\":\"^kiln-upload:[0-9a-f]{64}$\"}," \
  "\"format\":" S_STR ",\"framework\":" S_STR ",\"sha256\":" S_SHA ",\"size\":" S_INT0             \
  ",\"stored\":{\"type\":\"boolean\"},\"unsafe\":{\"type\":\"boolean\"},\"scan\":{\"type\":\"object\"}," \
  "\"signature\":{\"type\":[\"object\",\"null\"]},\"prediction_url\":{\"type\":[\"string\",\"null\"]}," \
  "\"creation_timestamp\":{\"type\":\"integer\"}},\"additionalProperties\":false}"
#define S_ONE(key, schema)                                                                         \
  "{\"type\":\"object\",\"required\":[\"" key "\"],\"properties\":{\"" key "\":" schema            \
  "},\"additionalProperties\":false}"
#define S_SESSION                                                                                  \
  "{\"type\":\"object\",\"required\":[\"upload_id\",\"name\",\"size\",\"received\",\"created_at\","  \
  "\"expires_at\"],\"properties\":{\"upload_id\":{\"type\":\"string\",\"pattern\":\"^[0-9a-f]{32}$\"}," \
  "\"name\":" S_STR ",\"size\":{\"type\":\"integer\",\"minimum\":1},\"received\":" S_INT0            \
  ",\"sha256\":" S_SHA ",\"description\":" S_STR ",\"created_at\":{\"type\":\"integer\"},"           \
  "\"expires_at\":{\"type\":\"integer\"}},\"additionalProperties\":false}"
#define S_SETTINGS                                                                                 \
  "{\"type\":\"object\",\"required\":[\"project_id\",\"allow_unsafe_pickles\"],\"properties\":{"     \
  "\"project_id\":" S_STR ",\"allow_unsafe_pickles\":{\"type\":\"boolean\"},\"updated_at\":"        \
  "{\"type\":\"integer\"},\"updated_by\":" S_STR "},\"additionalProperties\":false}"
#define TAG "model uploads"
#define SEL ROUTE_PROJECT_SELECTED
#define UPL "/api/v1/models/uploads"

const struct route registry_upload_routes[] = {
    {"POST", "/api/v1/models/upload", PERM_WRITE,
     "Upload a model file as the next version of a registered model (multipart/form-data with a 'file' part "
     "and name, description, sha256, tag=k=v fields; or the raw file with ?name=&sha256=&tag=k=v or "
     "X-Kiln-Model-Name / X-Kiln-Sha256 headers); scanned before anything may load it",
     TAG, NULL, S_ONE("model_version", S_UPLOADED), NULL, NULL, SEL | ROUTE_STREAM_BODY | ROUTE_OFFLOAD, track_api_locate,
     &one_stream},
    {"POST", UPL, PERM_WRITE, "Start a resumable upload (name, size, sha256, description, tags)", TAG,
     "{\"type\":\"object\",\"required\":[\"name\",\"size\"],\"properties\":{\"name\":" S_STR
     ",\"size\":{\"type\":\"integer\",\"minimum\":1},\"sha256\":" S_STR ",\"description\":" S_STR
     ",\"tags\":{\"type\":[\"array\",\"object\"]}}}",
     S_ONE("upload", S_SESSION), NULL, h_session_create, SEL, track_api_locate, NULL},
    {"GET", UPL "/{upload_id}", PERM_WRITE, "A resumable upload: how many bytes arrived (resume from 'received')",
     TAG, NULL, S_ONE("upload", S_SESSION), NULL, h_session_get, SEL, track_api_locate, NULL},
    {"PUT", UPL "/{upload_id}", PERM_WRITE,
     "Append one chunk (Content-Range: bytes FIRST-LAST/TOTAL, or ?offset=); chunks go in order", TAG, NULL,
     S_ONE("upload", S_SESSION), NULL, NULL, SEL | ROUTE_STREAM_BODY, track_api_locate, &chunk_stream},
    {"POST", UPL "/{upload_id}/complete", PERM_WRITE,
     "Finish a resumable upload: the file is checked and registered as POST /api/v1/models/upload does", TAG,
     NULL, S_ONE("model_version", S_UPLOADED), NULL, h_session_complete, SEL | ROUTE_OFFLOAD, track_api_locate, NULL},
    {"DELETE", UPL "/{upload_id}", PERM_WRITE, "Abort a resumable upload and drop its bytes", TAG, NULL, S_EMPTY,
     NULL, h_session_delete, SEL, track_api_locate, NULL},
    {"GET", "/api/v1/models/{name}/versions/{version}/scan", PERM_READ,
     "An uploaded version's scan report, format, framework, checksum and signature", TAG, NULL,
     S_ONE("model_version", S_UPLOADED), NULL, h_scan, SEL, track_api_locate, NULL},
    {"PUT", "/api/v1/models/{name}/versions/{version}/signature", PERM_WRITE,
     "Give an uploaded version whose file declares no signature one, in MLflow's signature JSON "
     "({\"inputs\", \"outputs\", \"params\"}); it never changes afterwards", TAG,
     "{\"type\":\"object\",\"required\":[\"signature\"],\"properties\":{\"signature\":{\"type\":\"object\"}}}",
     S_ONE("model_version", S_UPLOADED), NULL, h_signature, SEL, track_api_locate, NULL},
    {"GET", "/api/v1/models/{name}/versions/{version}/download", PERM_READ,
     "Download an uploaded version's file (Range: bytes=, one range)", TAG, NULL, NULL, "application/octet-stream",
     h_download, SEL, track_api_locate, NULL},
    {"GET", "/api/v1/projects/{project_id}/registry-settings", PERM_READ,
     "The project's registry settings (allow_unsafe_pickles)", TAG, NULL, S_ONE("settings", S_SETTINGS), NULL,
     h_settings_get, 0, project_param, NULL},
    {"PUT", "/api/v1/projects/{project_id}/registry-settings", PERM_ADMIN,
     "Change the project's registry settings (project admins; audited)", TAG,
     "{\"type\":\"object\",\"required\":[\"allow_unsafe_pickles\"],\"properties\":{\"allow_unsafe_pickles\":"
     "{\"type\":\"boolean\"}}}",
     S_ONE("settings", S_SETTINGS), NULL, h_settings_put, 0, project_param, NULL},
};
const size_t registry_upload_routes_count = sizeof registry_upload_routes / sizeof registry_upload_routes[0];
