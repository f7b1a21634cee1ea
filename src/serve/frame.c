/* serve/frame: the length-prefixed frames the server and its Python workers
 * exchange (a JSON header and raw little-endian tensors; never pickle). The
 * decoder is a parser of outside input: a worker runs user code. */
#include "serve.h"

#include <stdlib.h>
#include <string.h>

/* More tensors than any model answers; bounds the header walk. */
#define FRAME_MAX_TENSORS 1024

static void put_u32(char *p, uint32_t v) {
  p[0] = (char)(v & 0xff);
  p[1] = (char)((v >> 8) & 0xff);
  p[2] = (char)((v >> 16) & 0xff);
  p[3] = (char)((v >> 24) & 0xff);
}

static uint32_t get_u32(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

/* A BYTES tensor's data must be exactly count elements of V2's binary form,
 * so nothing downstream walks past its end. */
static bool bytes_form_ok(const char *p, size_t n, int64_t count) {
  size_t off = 0;
  for (int64_t i = 0; i < count; i++) {
    if (n - off < 4) return false;
    uint32_t l = get_u32(p + off);
    off += 4;
    if (l > n - off) return false;
    off += l;
  }
  return off == n;
}

/* Checks that nbytes is what dtype and shape say; 0 or -1. */
static int tensor_size_ok(enum serve_dtype dt, const int64_t *shape, int ndim, const char *data,
                          size_t nbytes) {
  int64_t count = serve_shape_count(shape, ndim);
  if (count < 0) return -1;
  size_t es = serve_dtype_size(dt);
  if (dt == SERVE_BYTES)
    return data || nbytes == 0 ? (bytes_form_ok(data, nbytes, count) ? 0 : -1) : -1;
  if ((uint64_t)count > SIZE_MAX / es || (size_t)count * es != nbytes) return -1;
  return 0;
}

/* The "tensors" list describing t; data_len gets the sum of nbytes. */
static int metas_build(const struct serve_tensor *t, int nt, json_t **out, uint64_t *data_len,
                       struct err *e) {
  json_t *list = json_array();
  if (!list) return err_set(e, ERR_NO_MEMORY, "out of memory for a frame header");
  *data_len = 0;
  for (int i = 0; i < nt; i++) {
    if (t[i].json || t[i].ndim < 0 || t[i].ndim > SERVE_MAX_DIMS ||
        (unsigned)t[i].dtype >= SERVE_DTYPE__COUNT || (t[i].nbytes && !t[i].data)) {
      json_decref(list);
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "tensor '%s' cannot be sent to a worker",
                     t[i].name);
    }
    if (tensor_size_ok(t[i].dtype, t[i].shape, t[i].ndim, t[i].data, t[i].nbytes) != 0) {
      json_decref(list);
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "tensor '%s': %zu bytes do not match its %s shape", t[i].name, t[i].nbytes,
                     serve_dtype_name(t[i].dtype));
    }
    *data_len += t[i].nbytes;
    if (*data_len > SERVE_FRAME_MAX) { /* refused before anything is copied */
      json_decref(list);
      return err_set(e, ERR_PAYLOAD_TOO_LARGE, "the tensors exceed a worker frame's %u bytes",
                     SERVE_FRAME_MAX);
    }
    json_t *shape = json_array();
    for (int d = 0; shape && d < t[i].ndim; d++)
      json_array_append_new(shape, json_integer(t[i].shape[d]));
    json_t *m = shape ? json_pack("{s:s, s:s, s:o, s:I}", "name", t[i].name, "datatype",
                                  serve_dtype_name(t[i].dtype), "shape", shape, "nbytes",
                                  (json_int_t)t[i].nbytes)
                      : NULL;
    if (!m || json_array_append_new(list, m) != 0) {
      json_decref(list);
      return err_set(e, ERR_NO_MEMORY, "out of memory for a frame header");
    }
  }
  *out = list;
  return 0;
}

int serve_frame_encode(struct buf *out, const json_t *header, const struct serve_tensor *t, int nt,
                       struct err *e) {
  if (!header || !json_is_object(header))
    return err_set(e, ERR_INTERNAL, "a frame header must be a JSON object");
  if (nt < 0 || nt > FRAME_MAX_TENSORS || (nt > 0 && !t))
    return err_set(e, ERR_INTERNAL, "a frame holds 0 to %d tensors", FRAME_MAX_TENSORS);
  uint64_t data_len = 0;
  json_t *list = NULL;
  int rc = metas_build(t, nt, &list, &data_len, e);
  if (rc) return rc;
  json_t *h = json_copy((json_t *)header); /* shallow: only "tensors" is replaced */
  if (!h || json_object_set_new(h, "tensors", list) != 0) {
    if (!h) json_decref(list);
    json_decref(h);
    return err_set(e, ERR_NO_MEMORY, "out of memory for a frame header");
  }
  size_t start = out->len;
  bool oom = buf_append(out, "\0\0\0\0\0\0\0\0", 8) != 0 || json_emit(out, h) != 0;
  json_decref(h);
  size_t hlen = oom ? 0 : out->len - start - 8;
  uint64_t total = 4 + (uint64_t)hlen + data_len;
  if (!oom && total > SERVE_FRAME_MAX)
    rc = err_set(e, ERR_PAYLOAD_TOO_LARGE, "a worker frame of %llu bytes exceeds %u",
                 (unsigned long long)total, SERVE_FRAME_MAX);
  else if (oom || buf_reserve(out, (size_t)data_len) != 0)
    rc =
        err_set(e, ERR_NO_MEMORY, "out of memory for a %llu-byte frame", (unsigned long long)total);
  if (rc != 0) {
    out->len = start;
    if (out->data) out->data[start] = 0;
    return rc;
  }
  put_u32(out->data + start, (uint32_t)total);
  put_u32(out->data + start + 4, (uint32_t)hlen);
  for (int i = 0; i < nt; i++)
    if (t[i].nbytes) buf_append(out, t[i].data, t[i].nbytes); /* reserved above: cannot fail */
  return 0;
}

static int frame_bad(struct err *e, const char *what) {
  return err_set(e, ERR_INVALID_PARAMETER_VALUE, "malformed worker frame: %s", what);
}

/* One entry of the header's "tensors" list into *t (data not yet set). */
static int meta_parse(const json_t *m, int i, struct serve_tensor *t, size_t *nbytes,
                      struct err *e) {
  if (!json_is_object(m)) return frame_bad(e, "a tensors entry is not an object");
  const json_t *name = json_object_get(m, "name"), *dt = json_object_get(m, "datatype");
  const json_t *shape = json_object_get(m, "shape"), *nb = json_object_get(m, "nbytes");
  if (!json_is_string(name) || json_string_length(name) >= SERVE_NAME_MAX ||
      strlen(json_string_value(name)) != json_string_length(name))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "malformed worker frame: tensor %d has no usable name", i);
  str_copy(t->name, sizeof t->name, json_string_value(name));
  if (!json_is_string(dt) || serve_dtype_parse(json_string_value(dt), &t->dtype) != 0)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "malformed worker frame: tensor '%s' has an unknown datatype", t->name);
  if (!json_is_array(shape) || json_array_size(shape) > SERVE_MAX_DIMS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "malformed worker frame: tensor '%s' shape must list 0..%d dims", t->name,
                   SERVE_MAX_DIMS);
  t->ndim = (int)json_array_size(shape);
  for (int d = 0; d < t->ndim; d++) {
    const json_t *v = json_array_get(shape, (size_t)d);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "malformed worker frame: tensor '%s' has a bad dimension", t->name);
    t->shape[d] = json_integer_value(v);
  }
  if (serve_shape_count(t->shape, t->ndim) < 0)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "malformed worker frame: tensor '%s' shape overflows", t->name);
  if (!json_is_integer(nb) || json_integer_value(nb) < 0 ||
      (uint64_t)json_integer_value(nb) > SERVE_FRAME_MAX)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "malformed worker frame: tensor '%s' has a bad nbytes", t->name);
  *nbytes = (size_t)json_integer_value(nb);
  return 0;
}

int serve_frame_decode(const char *body, size_t n, json_t **header, struct serve_tensor **t,
                       int *nt, struct err *e) {
  *header = NULL;
  *t = NULL;
  *nt = 0;
  if (!body && n) return frame_bad(e, "no body");
  if (n > SERVE_FRAME_MAX) return frame_bad(e, "longer than a frame may be");
  if (n < 4) return frame_bad(e, "shorter than its header length");
  uint32_t hl = get_u32(body);
  if (hl > n - 4) return frame_bad(e, "the header length runs past the frame");
  struct err je = {0};
  json_t *h = json_parse(body + 4, hl, &je);
  if (!h)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "malformed worker frame: header: %s", je.msg);
  if (!json_is_object(h)) {
    json_decref(h);
    return frame_bad(e, "the header is not a JSON object");
  }
  const json_t *list = json_object_get(h, "tensors");
  size_t count = list ? json_array_size(list) : 0;
  if (list && !json_is_array(list)) {
    json_decref(h);
    return frame_bad(e, "\"tensors\" is not a list");
  }
  if (count > FRAME_MAX_TENSORS) {
    json_decref(h);
    return frame_bad(e, "too many tensors");
  }
  struct serve_tensor *ts = count ? calloc(count, sizeof *ts) : NULL;
  if (count && !ts) {
    json_decref(h);
    return err_set(e, ERR_NO_MEMORY, "out of memory for %zu tensors", count);
  }
  size_t off = 4 + (size_t)hl;
  int rc = 0;
  for (size_t i = 0; i < count && rc == 0; i++) {
    size_t nb = 0;
    rc = meta_parse(json_array_get(list, i), (int)i, &ts[i], &nb, e);
    if (rc) break;
    if (nb > n - off) {
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "malformed worker frame: tensor '%s' runs past the frame", ts[i].name);
      break;
    }
    ts[i].data = nb ? (void *)(body + off) : NULL;
    ts[i].nbytes = nb;
    ts[i].owned = false;
    if (tensor_size_ok(ts[i].dtype, ts[i].shape, ts[i].ndim, ts[i].data, nb) != 0) {
      rc = err_set(
          e, ERR_INVALID_PARAMETER_VALUE,
          "malformed worker frame: tensor '%s' has %zu bytes, which its %s shape does not hold",
          ts[i].name, nb, serve_dtype_name(ts[i].dtype));
      break;
    }
    off += nb;
  }
  if (rc == 0 && off != n) rc = frame_bad(e, "bytes left over after the last tensor");
  if (rc != 0) {
    free(ts);
    json_decref(h);
    return rc;
  }
  *header = h;
  *t = ts;
  *nt = (int)count;
  return 0;
}
