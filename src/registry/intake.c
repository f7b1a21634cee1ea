/* registry/intake: the entry points of model intake — the report, the
 * options, and detection by content (magic numbers and structure, never the
 * file name) that hands the bytes to each format's reader. */
#include "registry/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void registry_intake_opts_default(struct registry_intake_opts *o) {
  memset(o, 0, sizeof *o);
  o->max_file_size = 8ull << 30;
  o->max_entry_size = 4ull << 30;
  o->max_total_size = 8ull << 30;
  o->max_entries = 10000;
  o->max_ratio = 100;
  o->ratio_min_size = 1ull << 20;
  o->max_depth = 3;
}

void registry_intake_report_init(struct registry_intake_report *r) {
  memset(r, 0, sizeof *r);
  r->metadata = json_object();
}

void registry_intake_report_fini(struct registry_intake_report *r) {
  for (size_t i = 0; i < r->nglobals; i++) free(r->globals[i].name);
  free(r->globals);
  json_decref(r->metadata);
  json_decref(r->signature);
  memset(r, 0, sizeof *r);
}

json_t *registry_intake_report_json(const struct registry_intake_report *r) {
  json_t *g = json_array();
  if (!g) return NULL;
  for (size_t i = 0; i < r->nglobals; i++)
    json_array_append_new(g, json_pack("{s:s, s:b}", "name", r->globals[i].name, "allowed",
                                       (int)r->globals[i].allowed));
  return json_pack("{s:s, s:s, s:s, s:I, s:b, s:o, s:O, s:O}", "format", r->format, "framework",
                   r->framework, "sha256", r->sha256, "size", (json_int_t)r->size, "unsafe",
                   (int)r->unsafe, "globals", g, "metadata",
                   r->metadata ? r->metadata : json_null(), "signature",
                   r->signature ? r->signature : json_null());
}

void intake_set_format(struct intake_ctx *c, const char *format, const char *framework) {
  if (format) str_copy(c->r->format, sizeof c->r->format, format);
  if (framework) str_copy(c->r->framework, sizeof c->r->framework, framework);
}

bool intake_mem_has(const uint8_t *p, size_t n, const char *needle, size_t *at) {
  size_t k = strlen(needle);
  if (k == 0 || k > n) return false;
  const uint8_t *q = memmem(p, n, needle, k);
  if (q && at) *at = (size_t)(q - p);
  return q != NULL;
}

bool intake_path_safe(const char *path) {
  if (!path || !*path || path[0] == '/') return false;
  if (((path[0] | 0x20) >= 'a' && (path[0] | 0x20) <= 'z') && path[1] == ':') return false;
  for (const char *s = path; *s; s++)
    if (*s == '\\' || (unsigned char)*s < 0x20) return false;
  const char *seg = path;
  for (;;) {
    const char *end = strchr(seg, '/');
    size_t len = end ? (size_t)(end - seg) : strlen(seg);
    if (len == 2 && seg[0] == '.' && seg[1] == '.') return false;
    if (!end) break;
    seg = end + 1;
  }
  return true;
}

/* ---- detection ------------------------------------------------------------ */

static bool starts(const uint8_t *p, size_t n, const void *magic, size_t k) {
  return n >= k && memcmp(p, magic, k) == 0;
}

/* HDF5's signature sits at 0 or at a power-of-two user-block offset. */
static bool hdf5_at(const uint8_t *p, size_t n, size_t *at) {
  static const uint8_t sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  for (size_t off = 0; off + 8 <= n && off <= (1u << 20); off = off ? off * 2 : 512)
    if (memcmp(p + off, sig, 8) == 0) {
      *at = off;
      return true;
    }
  return false;
}

/* A raw pickle: PROTO for protocols 2-5; for 0 and 1 the whole stream must
 * scan cleanly (text is otherwise too easy to mistake). */
static int try_pickle(struct intake_ctx *c, const uint8_t *p, size_t n, const char *what,
                      bool certain, bool *is_pickle, struct err *e) {
  *is_pickle = false;
  struct pickle_result res;
  size_t before = c->r->nglobals;
  struct err pe;
  err_clear(&pe);
  int rc = intake_pickle_scan(c, p, n, what, certain ? 0 : PICKLE_PROBE, &res, &pe);
  if (rc == -ERR_INVALID_PARAMETER_VALUE && !certain) {
    /* not a pickle after all: forget what the probe listed */
    for (size_t i = before; i < c->r->nglobals; i++) free(c->r->globals[i].name);
    c->r->nglobals = before;
    c->first_unsafe[0] = 0;
    return 0;
  }
  *is_pickle = true;
  /* torch's legacy format and joblib object arrays: later pickles follow;
   * torch.load reads them in sequence, so they are scanned too */
  size_t off = res.end;
  for (int k = 0; rc == 0 && k < 8 && off + 2 < n && p[off] == 0x80 && p[off + 1] <= 5; k++) {
    struct pickle_result more;
    struct err me;
    int mrc = intake_pickle_scan(c, p + off, n - off, what, PICKLE_PROBE, &more, &me);
    if (mrc == -ERR_INVALID_PARAMETER_VALUE) break;
    if (mrc) {
      rc = mrc;
      pe = me;
    }
    res.torch |= more.torch;
    off += more.end;
  }
  /* a later pickle that imports something unsafe before it breaks still
   * runs that import under torch.load */
  if (rc == 0) rc = intake_pickle_verdict(c, &pe);
  json_object_set_new(c->r->metadata, "pickle_protocol", json_integer(res.proto));
  bool sk = false, xgb = false, lgb = false;
  for (size_t i = 0; i < c->r->nglobals; i++) {
    sk |= str_has_prefix(c->r->globals[i].name, "sklearn.");
    xgb |= str_has_prefix(c->r->globals[i].name, "xgboost.");
    lgb |= str_has_prefix(c->r->globals[i].name, "lightgbm.");
  }
  intake_set_format(c, res.joblib ? "joblib" : "pickle",
                    xgb ? "xgboost" : lgb ? "lightgbm" : sk ? "sklearn" : res.torch ? "pytorch"
                                                                                  : "python");
  if (rc) {
    if (e) *e = pe;
    return rc;
  }
  if (res.torch && !res.joblib && !sk)
    return err_set(e, ERR_UNSUPPORTED_MEDIA_TYPE,
                   "%s is a PyTorch pickle (torch.save of a model or state_dict), which Kiln "
                   "does not serve: export TorchScript (torch.jit.script(model) or "
                   "torch.jit.trace(model, example), then .save(path)) or ONNX "
                   "(torch.onnx.export(model, example, path))",
                   what);
  return 0;
}

static bool is_lightgbm(const uint8_t *p, size_t n) {
  return starts(p, n, "tree\nversion=", 13) || starts(p, n, "tree\r\nversion=", 14);
}

/* JSON object vs UBJSON object: UBJSON follows '{' with a type marker. */
static bool json_object_start(const uint8_t *p, size_t n, bool *ubj) {
  size_t i = 0;
  while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')) i++;
  if (i >= n || p[i] != '{') return false;
  if (i == 0 && n > 1 && strchr("$#iUIlLdDSHTFZN", p[1]) && p[1] != 0) {
    *ubj = true;
    return true;
  }
  size_t j = i + 1;
  while (j < n && (p[j] == ' ' || p[j] == '\t' || p[j] == '\r' || p[j] == '\n')) j++;
  *ubj = false;
  return j < n && (p[j] == '"' || p[j] == '}');
}

int intake_inspect_bytes(struct intake_ctx *c, const uint8_t *p, size_t n, const char *what,
                         struct err *e) {
  if (n == 0) return err_set(e, ERR_UNSUPPORTED_MEDIA_TYPE, "%s is empty", what);
  size_t at = 0;
  bool ubj = false, pk = false;
  int rc;
  /* containers and compressed streams */
  if (starts(p, n, "PK\x03\x04", 4) || starts(p, n, "PK\x05\x06", 4))
    return intake_archive(c, p, n, what, e);
  if (starts(p, n, "\x1f\x8b", 2)) return intake_compressed(c, p, n, "gzip", what, e);
  if (starts(p, n, "BZh", 3)) return intake_compressed(c, p, n, "bzip2", what, e);
  if (starts(p, n, "\xfd" "7zXZ\x00", 6)) return intake_compressed(c, p, n, "xz", what, e);
  if (starts(p, n, "\x04\x22\x4d\x18", 4)) return intake_compressed(c, p, n, "lz4", what, e);
  if (starts(p, n, "\x28\xb5\x2f\xfd", 4)) return intake_compressed(c, p, n, "zstd", what, e);
  if (n >= 2 && p[0] == 0x78 && ((p[0] << 8) | p[1]) % 31 == 0)
    return intake_compressed(c, p, n, "zlib", what, e);
  if (starts(p, n, "ZF0x", 4))
    return err_set(e, ERR_UNSUPPORTED_MEDIA_TYPE,
                   "%s is a joblib file in the pre-0.10 compressed format, which Kiln cannot "
                   "read: load it and joblib.dump it again with a current joblib",
                   what);
  if (n >= 265 && memcmp(p + 257, "ustar", 5) == 0) return intake_archive(c, p, n, what, e);
  /* single-file formats with a signature */
  if (hdf5_at(p, n, &at)) return intake_hdf5(c, p, n, at, e);
  if (is_lightgbm(p, n)) return intake_lightgbm(c, p, n, e);
  if (n >= 2 && p[0] == 0x80 && p[1] <= 5) {
    rc = try_pickle(c, p, n, what, true, &pk, e);
    return rc;
  }
  if (json_object_start(p, n, &ubj)) return ubj ? intake_xgb_ubj(c, p, n, e)
                                                 : intake_xgb_json(c, p, n, e);
  /* structure without a magic number */
  if (intake_onnx_probe(p, n) || intake_onnx_start(p, n)) return intake_onnx(c, p, n, e);
  if (intake_xgb_binary_probe(p, n)) return intake_xgb_binary(c, p, n, e);
  if ((rc = try_pickle(c, p, n, what, false, &pk, e)) != 0 || pk) return rc;
  if (starts(p, n, "\x89PNG", 4) || starts(p, n, "%PDF", 4) || starts(p, n, "\x7f" "ELF", 4))
    return err_set(e, ERR_UNSUPPORTED_MEDIA_TYPE,
                   "%s is not a model file (an image, document or executable)", what);
  return err_set(e, ERR_UNSUPPORTED_MEDIA_TYPE,
                 "%s is not a model format Kiln recognises (ONNX, XGBoost JSON/UBJSON/binary, "
                 "LightGBM text, pickle/joblib, TorchScript, Keras HDF5, MLflow zip/tar.gz)",
                 what);
}

static int inspect_top(const uint8_t *p, size_t n, const struct registry_intake_opts *o,
                       struct registry_intake_report *out, struct err *e) {
  struct registry_intake_opts dflt;
  struct err local;
  if (!e) e = &local; /* the readers may look at the code they set */
  if (!o) {
    registry_intake_opts_default(&dflt);
    o = &dflt;
  }
  out->size = n;
  if (!out->metadata) return err_set(e, ERR_NO_MEMORY, "out of memory");
  if (o->max_file_size && n > o->max_file_size)
    return err_set(e, ERR_PAYLOAD_TOO_LARGE, "the model file is %zu bytes, above the limit of %llu",
                   n, (unsigned long long)o->max_file_size);
  sha256_hex(p, n, out->sha256);
  struct intake_ctx c = {.o = o, .r = out, .depth = 0};
  return intake_inspect_bytes(&c, p, n, "the file", e);
}

int registry_intake_inspect_mem(const void *data, size_t n, const struct registry_intake_opts *o,
                                struct registry_intake_report *out, struct err *e) {
  registry_intake_report_init(out);
  return inspect_top(data, n, o, out, e);
}

int registry_intake_inspect(const char *path, const struct registry_intake_opts *o,
                            struct registry_intake_report *out, struct err *e) {
  registry_intake_report_init(out);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return err_set(e, errno == ENOENT ? ERR_RESOURCE_DOES_NOT_EXIST : ERR_IO, "cannot open %s: %s",
                   path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s is not a regular file", path);
  }
  if (st.st_size == 0) {
    close(fd);
    return inspect_top((const uint8_t *)"", 0, o, out, e);
  }
  /* mapped, not read: a multi-gigabyte model costs address space, not memory */
  void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return err_set(e, ERR_IO, "cannot map %s: %s", path, strerror(errno));
  int rc = inspect_top(m, (size_t)st.st_size, o, out, e);
  munmap(m, (size_t)st.st_size);
  return rc;
}
