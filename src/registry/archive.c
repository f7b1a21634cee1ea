/* registry/archive: zip and tar(.gz) model archives through libarchive —
 * path, link, size, count and compression-ratio checks on every entry, a
 * pickle scan of every *.pkl, then TorchScript / PyTorch / MLflow
 * classification — and compressed joblib streams. */
#include "registry/internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define CHUNK (64u << 10)

struct limits {
  uint64_t total;   /* uncompressed bytes so far */
  uint64_t entries;
};

static int over_ratio(struct intake_ctx *c, uint64_t total, size_t compressed, const char *what,
                      struct err *e) {
  const struct registry_intake_opts *o = c->o;
  if (o->max_ratio && total > o->ratio_min_size && total / (compressed ? compressed : 1) >= o->max_ratio)
    return err_set(e, ERR_UNSAFE_MODEL,
                   "%s expands more than %llu:1 (%llu bytes from %zu): refused as a "
                   "decompression bomb",
                   what, (unsigned long long)o->max_ratio, (unsigned long long)total, compressed);
  return 0;
}

static struct archive *open_mem(const uint8_t *p, size_t n, bool raw) {
  struct archive *a = archive_read_new();
  if (!a) return NULL;
  archive_read_support_filter_all(a);
  if (raw) {
    archive_read_support_format_tar(a);
    archive_read_support_format_raw(a);
  } else {
    archive_read_support_format_zip(a);
    archive_read_support_format_tar(a);
  }
  if (archive_read_open_memory(a, (void *)p, n) != ARCHIVE_OK) {
    archive_read_free(a);
    return NULL;
  }
  return a;
}

/* Reads the current entry's data, checking the limits; keeps it in out when
 * out is not NULL. */
static int read_entry(struct intake_ctx *c, struct archive *a, const char *name, size_t in_size,
                      struct limits *lim, struct buf *out, struct err *e) {
  const struct registry_intake_opts *o = c->o;
  char chunk[CHUNK];
  uint64_t size = 0;
  for (;;) {
    la_ssize_t got = archive_read_data(a, chunk, sizeof chunk);
    if (got == 0) break;
    if (got < 0)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "corrupt archive entry %.200s: %s", name,
                     archive_error_string(a) ? archive_error_string(a) : "read error");
    size += (uint64_t)got;
    lim->total += (uint64_t)got;
    if (o->max_entry_size && size > o->max_entry_size)
      return err_set(e, ERR_UNSAFE_MODEL, "archive entry %.200s is larger than %llu bytes", name,
                     (unsigned long long)o->max_entry_size);
    if (o->max_total_size && lim->total > o->max_total_size)
      return err_set(e, ERR_UNSAFE_MODEL, "the archive expands to more than %llu bytes",
                     (unsigned long long)o->max_total_size);
    int rc = over_ratio(c, lim->total, in_size, "the archive", e);
    if (rc) return rc;
    if (out && buf_append(out, chunk, (size_t)got) != 0)
      return err_set(e, ERR_NO_MEMORY, "out of memory reading archive entry %.200s", name);
  }
  return 0;
}

static bool ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && memcmp(s + a - b, suf, b) == 0;
}

static const char *base_name(const char *s) {
  const char *b = strrchr(s, '/');
  return b ? b + 1 : s;
}

static size_t depth_of(const char *s) {
  size_t d = 0;
  for (; *s; s++) d += *s == '/';
  return d;
}

struct pass1 {
  bool code, constants, data_pkl;
  struct buf mlmodel;
  char mlmodel_dir[512];
  bool has_mlmodel;
  size_t mlmodel_depth;
  uint64_t entries;
  bool zip;
};

/* Every entry: safe name, no links, limits; pickles scanned; MLmodel kept. */
static int pass_one(struct intake_ctx *c, const uint8_t *p, size_t n, struct pass1 *s,
                    struct err *e) {
  struct archive *a = open_mem(p, n, false);
  if (!a) return err_set(e, ERR_NO_MEMORY, "cannot start libarchive");
  struct limits lim = {0, 0};
  int rc = 0;
  struct archive_entry *ent;
  for (;;) {
    int r = archive_read_next_header(a, &ent);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "corrupt or truncated archive: %s",
                   archive_error_string(a) ? archive_error_string(a) : "unreadable header");
      break;
    }
    s->zip = archive_format(a) == ARCHIVE_FORMAT_ZIP ||
             (archive_format(a) & ARCHIVE_FORMAT_BASE_MASK) == ARCHIVE_FORMAT_ZIP;
    const char *name = archive_entry_pathname(ent);
    if (++lim.entries > c->o->max_entries) {
      rc = err_set(e, ERR_UNSAFE_MODEL, "the archive has more than %llu entries",
                   (unsigned long long)c->o->max_entries);
      break;
    }
    if (!name || !intake_path_safe(name)) {
      rc = err_set(e, ERR_UNSAFE_MODEL,
                   "archive entry '%.200s' is an absolute path or escapes the archive with '..'",
                   name ? name : "(no name)");
      break;
    }
    if (archive_entry_hardlink(ent) || archive_entry_symlink(ent) ||
        (archive_entry_filetype(ent) != AE_IFREG && archive_entry_filetype(ent) != AE_IFDIR)) {
      rc = err_set(e, ERR_UNSAFE_MODEL,
                   "archive entry '%.200s' is a link or special file; only regular files and "
                   "directories are accepted",
                   name);
      break;
    }
    if (archive_entry_is_encrypted(ent)) {
      rc = err_set(e, ERR_UNSUPPORTED_MEDIA_TYPE, "archive entry '%.200s' is encrypted", name);
      break;
    }
    const char *bn = base_name(name);
    if (strstr(name, "/code/") || str_has_prefix(name, "code/")) s->code = true;
    if (str_eq(bn, "constants.pkl")) s->constants = true;
    if (str_eq(bn, "data.pkl")) s->data_pkl = true;
    bool is_pkl = ends_with(name, ".pkl") && archive_entry_filetype(ent) == AE_IFREG;
    bool is_ml = str_eq(bn, "MLmodel") && archive_entry_filetype(ent) == AE_IFREG &&
                 (!s->has_mlmodel || depth_of(name) < s->mlmodel_depth);
    struct buf keep;
    buf_init(&keep);
    rc = read_entry(c, a, name, n, &lim, (is_pkl || is_ml) ? &keep : NULL, e);
    if (rc == 0 && is_pkl) {
      char what[300];
      snprintf(what, sizeof what, "archive entry %.200s", name);
      struct pickle_result res;
      /* the verdict waits for the whole archive (TorchScript names are
       * known only once code/ was seen) */
      rc = intake_pickle_scan(c, (const uint8_t *)(keep.data ? keep.data : ""), keep.len, what,
                              0, &res, e);
      if (rc == -ERR_UNSAFE_MODEL) rc = 0;
    }
    if (rc == 0 && is_ml) {
      if (keep.len > (1u << 20)) {
        rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "MLmodel is larger than 1 MiB");
      } else {
        buf_fini(&s->mlmodel);
        s->mlmodel = keep;
        buf_init(&keep);
        s->has_mlmodel = true;
        s->mlmodel_depth = depth_of(name);
        size_t dl = (size_t)(bn - name);
        if (dl >= sizeof s->mlmodel_dir) dl = 0;
        memcpy(s->mlmodel_dir, name, dl);
        s->mlmodel_dir[dl] = 0;
      }
    }
    buf_fini(&keep);
    if (rc) break;
  }
  s->entries = lim.entries;
  archive_read_free(a);
  return rc;
}

/* The bytes of one entry: `path` itself, or with dir set the first regular
 * file under path/ whose name ends in one of the model suffixes (or any). */
static int extract(struct intake_ctx *c, const uint8_t *p, size_t n, const char *path, bool dir,
                   struct buf *out, char *found, size_t found_cap, struct err *e) {
  struct archive *a = open_mem(p, n, false);
  if (!a) return err_set(e, ERR_NO_MEMORY, "cannot start libarchive");
  struct limits lim = {0, 0};
  struct archive_entry *ent;
  size_t pl = strlen(path);
  int rc = 1;
  while (rc == 1 && archive_read_next_header(a, &ent) == ARCHIVE_OK) {
    const char *name = archive_entry_pathname(ent);
    if (!name || archive_entry_filetype(ent) != AE_IFREG) continue;
    bool hit = dir ? (strncmp(name, path, pl) == 0 && name[pl] == '/') : str_eq(name, path);
    if (!hit) continue;
    rc = read_entry(c, a, name, n, &lim, out, e);
    if (rc == 0) str_copy(found, found_cap, name);
  }
  archive_read_free(a);
  if (rc == 1) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "MLmodel names '%.200s', which the archive lacks", path);
  return rc;
}

/* MLflow flavors in the order Kiln prefers them, with the key naming the file. */
static const struct {
  const char *flavor, *key;
  bool dir;
} flavors[] = {
    {"onnx", "data", false},       {"xgboost", "data", false},
    {"lightgbm", "data", false},   {"sklearn", "pickled_model", false},
    {"pytorch", "model_data", true}, {"keras", "data", true},
    {"tensorflow", "saved_model_dir", true},
    {"python_function", "model_path", false},
    {"python_function", "data", false},
};

static int merge_inner(struct intake_ctx *c, struct registry_intake_report *in) {
  for (size_t i = 0; i < in->nglobals; i++) {
    size_t j = 0;
    while (j < c->r->nglobals && strcmp(c->r->globals[j].name, in->globals[i].name) != 0) j++;
    if (j < c->r->nglobals) continue;
    struct registry_pickle_global *ng =
        realloc(c->r->globals, (c->r->nglobals + 1) * sizeof *ng);
    if (!ng) return -ERR_NO_MEMORY;
    c->r->globals = ng;
    c->r->globals[c->r->nglobals++] = in->globals[i];
    in->globals[i].name = NULL;
  }
  c->r->unsafe |= in->unsafe;
  return 0;
}

static int mlflow(struct intake_ctx *c, const uint8_t *p, size_t n, struct pass1 *s, bool zip,
                  struct err *e) {
  intake_set_format(c, zip ? "mlflow-zip" : "mlflow-tar", "mlflow");
  json_t *ml = intake_yaml_to_json((const uint8_t *)(s->mlmodel.data ? s->mlmodel.data : ""),
                                   s->mlmodel.len, e);
  if (!ml) return -(int)e->code;
  json_t *md = c->r->metadata, *mj = json_object();
  static const char *const keys[] = {"mlflow_version", "run_id", "model_uuid", "utc_time_created",
                                     "artifact_path", "saved_input_example_info"};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
    json_t *v = json_object_get(ml, keys[i]);
    if (v) json_object_set(mj, keys[i], v);
  }
  json_t *fl = json_object_get(ml, "flavors");
  if (!json_is_object(fl)) {
    json_decref(mj);
    json_decref(ml);
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "MLmodel has no flavors mapping");
  }
  json_t *names = json_array();
  const char *k;
  json_t *v;
  json_object_foreach(fl, k, v) json_array_append_new(names, json_string(k));
  json_object_set_new(mj, "flavors", names);
  json_object_set_new(md, "mlflow", mj);
  /* signature: inputs/outputs are JSON text inside the YAML */
  json_t *sig = json_object_get(ml, "signature");
  if (json_is_object(sig)) {
    json_t *out = json_object();
    static const char *const parts[] = {"inputs", "outputs", "params"};
    for (size_t i = 0; i < 3; i++) {
      const char *t = json_string_value(json_object_get(sig, parts[i]));
      if (!t) continue;
      struct err je;
      json_t *parsed = json_parse(t, strlen(t), &je);
      if (!parsed) {
        json_decref(out);
        json_decref(ml);
        return err_set(e, ERR_INVALID_PARAMETER_VALUE, "MLmodel signature %s is not JSON: %s",
                       parts[i], je.msg);
      }
      json_object_set_new(out, parts[i], parsed);
    }
    json_decref(c->r->signature);
    c->r->signature = out;
  }
  /* the inner model file, per the preferred flavor */
  const char *rel = NULL;
  bool dir = false;
  const char *flavor = NULL;
  for (size_t i = 0; i < sizeof flavors / sizeof *flavors && !rel; i++) {
    json_t *f = json_object_get(fl, flavors[i].flavor);
    rel = json_string_value(json_object_get(f, flavors[i].key));
    dir = flavors[i].dir;
    flavor = flavors[i].flavor;
  }
  if (!rel) {
    json_decref(ml);
    return err_set(e, ERR_UNSUPPORTED_MEDIA_TYPE,
                   "an MLflow model whose flavors name no model file Kiln can serve");
  }
  if (!intake_path_safe(rel)) {
    json_decref(ml);
    return err_set(e, ERR_UNSAFE_MODEL, "MLmodel names '%.200s', which leaves the model directory",
                   rel);
  }
  char path[1024], found[1024] = "";
  snprintf(path, sizeof path, "%s%s", s->mlmodel_dir, rel);
  while (strlen(path) > 1 && path[strlen(path) - 1] == '/') path[strlen(path) - 1] = 0;
  json_object_set_new(mj, "flavor", json_string(flavor));
  json_decref(ml);
  struct buf inner;
  buf_init(&inner);
  int rc = extract(c, p, n, path, dir, &inner, found, sizeof found, e);
  if (rc) {
    buf_fini(&inner);
    return rc;
  }
  struct registry_intake_report ir;
  registry_intake_report_init(&ir);
  struct intake_ctx ic = {.o = c->o, .r = &ir, .depth = c->depth + 1};
  char what[1100];
  snprintf(what, sizeof what, "archive entry %s", found);
  rc = intake_inspect_bytes(&ic, (const uint8_t *)(inner.data ? inner.data : ""), inner.len, what, e);
  buf_fini(&inner);
  if (merge_inner(c, &ir) != 0 && rc == 0) rc = err_set(e, ERR_NO_MEMORY, "out of memory");
  json_t *mo = json_pack("{s:s, s:s, s:s, s:O}", "path", found, "format", ir.format, "framework",
                         ir.framework, "metadata", ir.metadata);
  json_object_set_new(md, "model", mo);
  if (ir.framework[0]) intake_set_format(c, NULL, ir.framework);
  if (!c->r->signature && ir.signature) c->r->signature = json_incref(ir.signature);
  registry_intake_report_fini(&ir);
  return rc;
}

int intake_archive(struct intake_ctx *c, const uint8_t *p, size_t n, const char *what,
                   struct err *e) {
  if (c->depth >= c->o->max_depth)
    return err_set(e, ERR_UNSAFE_MODEL, "%s nests archives deeper than %d", what, c->o->max_depth);
  struct pass1 s;
  memset(&s, 0, sizeof s);
  buf_init(&s.mlmodel);
  size_t first_global = c->r->nglobals;
  int rc = pass_one(c, p, n, &s, e);
  const char *kind = s.zip ? "zip" : "tar";
  bool ts = s.code || s.constants;
  if (ts) {
    /* TorchScript's own classes are not Python imports: re-judge them */
    c->first_unsafe[0] = 0;
    for (size_t i = first_global; i < c->r->nglobals; i++) {
      c->r->globals[i].allowed = registry_pickle_global_allowed(c->r->globals[i].name, true);
      if (!c->r->globals[i].allowed && !c->first_unsafe[0])
        str_copy(c->first_unsafe, sizeof c->first_unsafe, c->r->globals[i].name);
    }
  }
  json_object_set_new(c->r->metadata, "archive_entries", json_integer((json_int_t)s.entries));
  if (rc == 0) rc = intake_pickle_verdict(c, e);
  if (rc == 0) {
    if (s.has_mlmodel) {
      rc = mlflow(c, p, n, &s, s.zip, e);
    } else if (ts) {
      intake_set_format(c, "torchscript", "pytorch");
    } else if (s.data_pkl) {
      intake_set_format(c, "pytorch-zip", "pytorch");
      rc = err_set(e, ERR_UNSUPPORTED_MEDIA_TYPE,
                   "%s is a PyTorch state_dict or pickled module (torch.save), which Kiln does "
                   "not serve: export TorchScript (torch.jit.script(model) or "
                   "torch.jit.trace(model, example), then .save(path)) or ONNX "
                   "(torch.onnx.export(model, example, path))",
                   what);
    } else {
      rc = err_set(e, ERR_UNSUPPORTED_MEDIA_TYPE,
                   "%s is a %s archive without MLmodel, TorchScript or PyTorch entries", what, kind);
    }
  }
  buf_fini(&s.mlmodel);
  return rc;
}

/* ---- compressed streams (joblib's compress=...) ---------------------------- */

static int inflate_zlib(struct intake_ctx *c, const uint8_t *p, size_t n, struct buf *out,
                        struct err *e) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit(&z) != Z_OK) return err_set(e, ERR_NO_MEMORY, "cannot start zlib");
  uint8_t chunk[CHUNK];
  int rc = 0, zr = Z_OK;
  size_t off = 0;
  while (zr != Z_STREAM_END) {
    if (z.avail_in == 0) {
      size_t k = n - off > (1u << 30) ? (1u << 30) : n - off;
      z.next_in = (Bytef *)(p + off);
      z.avail_in = (uInt)k;
      off += k;
    }
    z.next_out = chunk;
    z.avail_out = sizeof chunk;
    zr = inflate(&z, Z_NO_FLUSH);
    if (zr != Z_OK && zr != Z_STREAM_END) {
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "corrupt or truncated zlib stream");
      break;
    }
    size_t got = sizeof chunk - z.avail_out;
    if (c->o->max_entry_size && out->len + got > c->o->max_entry_size) {
      rc = err_set(e, ERR_UNSAFE_MODEL, "the zlib stream expands past %llu bytes",
                   (unsigned long long)c->o->max_entry_size);
      break;
    }
    if ((rc = over_ratio(c, out->len + got, n, "the zlib stream", e))) break;
    if (buf_append(out, chunk, got) != 0) {
      rc = err_set(e, ERR_NO_MEMORY, "out of memory decompressing");
      break;
    }
    if (zr == Z_OK && got == 0 && z.avail_in == 0 && off >= n) {
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "truncated zlib stream");
      break;
    }
  }
  inflateEnd(&z);
  return rc;
}

int intake_compressed(struct intake_ctx *c, const uint8_t *p, size_t n, const char *kind,
                      const char *what, struct err *e) {
  if (c->depth >= c->o->max_depth)
    return err_set(e, ERR_UNSAFE_MODEL, "%s nests containers deeper than %d", what, c->o->max_depth);
  struct buf out;
  buf_init(&out);
  int rc = 0;
  if (str_eq(kind, "zlib")) {
    rc = inflate_zlib(c, p, n, &out, e);
  } else {
    struct archive *a = open_mem(p, n, true);
    struct archive_entry *ent;
    if (!a || archive_read_next_header(a, &ent) != ARCHIVE_OK) {
      if (a) archive_read_free(a);
      buf_fini(&out);
      return err_set(e, ERR_UNSUPPORTED_MEDIA_TYPE,
                     "%s is %s-compressed and Kiln cannot decompress it; save joblib files "
                     "with compress=0 or compress='zlib'",
                     what, kind);
    }
    if (archive_format(a) != ARCHIVE_FORMAT_RAW) {
      archive_read_free(a);
      buf_fini(&out);
      return intake_archive(c, p, n, what, e); /* a tar inside the compression */
    }
    struct limits lim = {0, 0};
    rc = read_entry(c, a, "stream", n, &lim, &out, e);
    archive_read_free(a);
  }
  if (rc == 0) {
    if (out.len < 2 || (uint8_t)out.data[0] != 0x80) {
      rc = err_set(e, ERR_UNSUPPORTED_MEDIA_TYPE,
                   "%s is a %s-compressed stream that holds neither a tar archive nor a joblib "
                   "pickle",
                   what, kind);
    } else {
      struct intake_ctx ic = *c;
      ic.depth++;
      rc = intake_inspect_bytes(&ic, (const uint8_t *)out.data, out.len, what, e);
      c->r->unsafe |= ic.r->unsafe;
      if (str_eq(c->r->format, "pickle")) intake_set_format(c, "joblib", NULL);
      json_object_set_new(c->r->metadata, "compression", json_string(kind));
    }
  }
  buf_fini(&out);
  return rc;
}
