/* registry/xgb: the tree-model and Keras readers — XGBoost JSON, UBJSON and
 * legacy binary (num_feature, feature names, objective), LightGBM's text
 * model, and Keras HDF5 (model_config, Lambda layers that carry code). */
#include "registry/internal.h"

#include <string.h>

/* ---- XGBoost: one metadata extraction for JSON and UBJSON ---------------- */

static json_int_t str_int(const json_t *v) {
  int64_t i = 0;
  if (json_is_integer(v)) return json_integer_value(v);
  if (json_is_string(v) && str_to_i64(json_string_value(v), &i) == 0) return (json_int_t)i;
  return -1;
}

static void tree_signature(struct intake_ctx *c, json_int_t nf, json_t *names) {
  json_t *in = json_pack("{s:s, s:s, s:[i,I]}", "name", "features", "dtype", "float32", "shape",
                         -1, (json_int_t)nf);
  if (in && json_is_array(names) && json_array_size(names))
    json_object_set(in, "feature_names", names);
  json_decref(c->r->signature);
  c->r->signature = json_pack("{s:[o], s:[{s:s, s:s, s:[i]}]}", "inputs", in, "outputs", "name",
                              "prediction", "dtype", "float32", "shape", -1);
}

static int xgb_from_json(struct intake_ctx *c, json_t *root, const char *fmt, struct err *e) {
  json_t *learner = json_object_get(root, "learner");
  if (!json_is_object(learner))
    return err_set(e, ERR_UNSUPPORTED_MEDIA_TYPE,
                   "the file is a JSON document but not an XGBoost model (no \"learner\")");
  intake_set_format(c, fmt, "xgboost");
  json_t *md = c->r->metadata;
  json_t *mp = json_object_get(learner, "learner_model_param");
  json_int_t nf = str_int(json_object_get(mp, "num_feature"));
  json_int_t ncls = str_int(json_object_get(mp, "num_class"));
  if (nf >= 0) json_object_set_new(md, "num_feature", json_integer(nf));
  if (ncls >= 0) json_object_set_new(md, "num_class", json_integer(ncls));
  const char *obj = json_string_value(json_object_get(json_object_get(learner, "objective"), "name"));
  if (obj) json_object_set_new(md, "objective", json_string(obj));
  json_t *gb = json_object_get(learner, "gradient_booster");
  const char *booster = json_string_value(json_object_get(gb, "name"));
  if (booster) json_object_set_new(md, "booster", json_string(booster));
  json_int_t nt = str_int(json_object_get(
      json_object_get(json_object_get(gb, "model"), "gbtree_model_param"), "num_trees"));
  if (nt >= 0) json_object_set_new(md, "num_trees", json_integer(nt));
  json_t *names = json_object_get(learner, "feature_names");
  if (json_is_array(names) && json_array_size(names))
    json_object_set(md, "feature_names", names);
  json_t *types = json_object_get(learner, "feature_types");
  if (json_is_array(types) && json_array_size(types)) json_object_set(md, "feature_types", types);
  json_t *ver = json_object_get(root, "version");
  if (json_is_array(ver)) json_object_set(md, "xgboost_version", ver);
  if (nf < 0)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "malformed XGBoost model: learner_model_param.num_feature is missing");
  tree_signature(c, nf, names);
  return 0;
}

int intake_xgb_json(struct intake_ctx *c, const uint8_t *p, size_t n, struct err *e) {
  struct err je;
  json_t *root = json_parse((const char *)p, n, &je);
  if (!root) {
    if (intake_mem_has(p, n < 4096 ? n : 4096, "\"learner\"", NULL))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "malformed XGBoost JSON model: %s", je.msg);
    return err_set(e, ERR_UNSUPPORTED_MEDIA_TYPE,
                   "the file starts like JSON but is not a JSON document Kiln recognises");
  }
  int rc = xgb_from_json(c, root, "xgboost-json", e);
  json_decref(root);
  return rc;
}

/* ---- UBJSON (XGBoost's flavour, big-endian) to JSON ------------------------
 * Numeric typed arrays (tree arrays) are skipped rather than converted: the
 * metadata lives in small strings. Depth and element counts are bounded. */
struct ubj {
  const uint8_t *p;
  size_t n, pos;
  size_t budget; /* values still converted; skipped once spent */
  bool bad;
};

static bool ubj_need(struct ubj *u, size_t k) {
  if (u->n - u->pos < k) u->bad = true;
  return !u->bad;
}

static uint64_t be(const uint8_t *p, int k) {
  uint64_t v = 0;
  for (int i = 0; i < k; i++) v = v << 8 | p[i];
  return v;
}

static int ubj_numsize(uint8_t t) {
  switch (t) {
  case 'i': case 'U': case 'C': return 1;
  case 'I': return 2;
  case 'l': case 'd': return 4;
  case 'L': case 'D': return 8;
  case 'Z': case 'N': case 'T': case 'F': return 0;
  default: return -1;
  }
}

/* an integer of type t */
static bool ubj_int(struct ubj *u, uint8_t t, int64_t *out) {
  int k = ubj_numsize(t);
  if (k <= 0 || t == 'd' || t == 'D' || t == 'C' || !ubj_need(u, (size_t)k)) {
    u->bad = true;
    return false;
  }
  uint64_t v = be(u->p + u->pos, k);
  u->pos += (size_t)k;
  switch (t) {
  case 'i': *out = (int8_t)v; break;
  case 'U': *out = (int64_t)v; break;
  case 'I': *out = (int16_t)v; break;
  case 'l': *out = (int32_t)v; break;
  default: *out = (int64_t)v; break;
  }
  return true;
}

static bool ubj_len(struct ubj *u, size_t *out) {
  if (!ubj_need(u, 1)) return false;
  int64_t l;
  if (!ubj_int(u, u->p[u->pos++], &l) || l < 0 || (uint64_t)l > u->n - u->pos) {
    u->bad = true;
    return false;
  }
  *out = (size_t)l;
  return true;
}

static json_t *ubj_value(struct ubj *u, uint8_t t, int depth);

static json_t *ubj_container(struct ubj *u, bool obj, int depth) {
  if (depth > 32) {
    u->bad = true;
    return NULL;
  }
  uint8_t type = 0;
  int64_t count = -1;
  if (ubj_need(u, 1) && u->p[u->pos] == '$') {
    u->pos++;
    if (!ubj_need(u, 1)) return NULL;
    type = u->p[u->pos++];
    if (!ubj_need(u, 1) || u->p[u->pos] != '#') {
      u->bad = true;
      return NULL;
    }
  }
  if (ubj_need(u, 1) && u->p[u->pos] == '#') {
    u->pos++;
    if (!ubj_need(u, 1) || !ubj_int(u, u->p[u->pos++], &count) || count < 0) {
      u->bad = true;
      return NULL;
    }
  }
  /* a typed numeric array: skip its bytes in one step */
  int sz = type ? ubj_numsize(type) : -1;
  if (!obj && type && sz >= 0 && count >= 0) {
    if (sz && (uint64_t)count > (u->n - u->pos) / (uint64_t)sz) {
      u->bad = true;
      return NULL;
    }
    u->pos += (size_t)count * (size_t)sz;
    return json_null();
  }
  json_t *out = obj ? json_object() : json_array();
  for (int64_t i = 0; !u->bad && (count < 0 || i < count); i++) {
    if (count < 0) {
      if (!ubj_need(u, 1)) break;
      if (u->p[u->pos] == (obj ? '}' : ']')) {
        u->pos++;
        return out;
      }
    }
    char key[256] = "";
    if (obj) {
      size_t kl;
      if (!ubj_len(u, &kl)) break;
      size_t c = kl < sizeof key - 1 ? kl : sizeof key - 1;
      memcpy(key, u->p + u->pos, c);
      key[c] = 0;
      u->pos += kl;
    }
    uint8_t vt = type;
    if (!vt) {
      if (!ubj_need(u, 1)) break;
      vt = u->p[u->pos++];
    }
    json_t *v = ubj_value(u, vt, depth + 1);
    if (u->bad) {
      json_decref(v);
      break;
    }
    if (u->budget) {
      u->budget--;
      if (obj) json_object_set_new(out, key, v ? v : json_null());
      else json_array_append_new(out, v ? v : json_null());
    } else {
      json_decref(v);
    }
  }
  if (count < 0) u->bad = true; /* ran out before the closing bracket */
  if (u->bad) {
    json_decref(out);
    return NULL;
  }
  return out;
}

static json_t *ubj_value(struct ubj *u, uint8_t t, int depth) {
  int64_t i;
  size_t l;
  switch (t) {
  case 'Z': case 'N': return json_null();
  case 'T': return json_true();
  case 'F': return json_false();
  case 'i': case 'U': case 'I': case 'l': case 'L':
    return ubj_int(u, t, &i) ? json_integer((json_int_t)i) : NULL;
  case 'd': case 'D': {
    int k = t == 'd' ? 4 : 8;
    if (!ubj_need(u, (size_t)k)) return NULL;
    uint64_t bits = be(u->p + u->pos, k);
    u->pos += (size_t)k;
    double d;
    if (k == 4) {
      float f;
      uint32_t b32 = (uint32_t)bits;
      memcpy(&f, &b32, 4);
      d = f;
    } else {
      memcpy(&d, &bits, 8);
    }
    return json_real(d);
  }
  case 'C':
    if (!ubj_need(u, 1)) return NULL;
    return json_stringn((const char *)u->p + u->pos++, 1);
  case 'S': case 'H':
    if (!ubj_len(u, &l)) return NULL;
    u->pos += l;
    return json_stringn((const char *)u->p + u->pos - l, l);
  case '{': return ubj_container(u, true, depth);
  case '[': return ubj_container(u, false, depth);
  default: u->bad = true; return NULL;
  }
}

int intake_xgb_ubj(struct intake_ctx *c, const uint8_t *p, size_t n, struct err *e) {
  struct ubj u = {p, n, 1, 1000000, false};
  json_t *root = ubj_container(&u, true, 0);
  if (!root || u.bad) {
    json_decref(root);
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "malformed UBJSON model: truncated or bad type marker near byte %zu", u.pos);
  }
  int rc = xgb_from_json(c, root, "xgboost-ubj", e);
  json_decref(root);
  return rc;
}

/* ---- XGBoost legacy binary -------------------------------------------------
 * Optional "binf", LearnerModelParam (136 bytes: base_score, num_feature,
 * num_class, ..., major/minor version), then the objective and booster names
 * as u64-length strings. */
#define XGB_PARAM 136

static bool xgb_str(const uint8_t *p, size_t n, size_t *pos, const uint8_t **s, size_t *l) {
  if (n - *pos < 8) return false;
  uint64_t k = 0;
  for (int i = 7; i >= 0; i--) k = k << 8 | p[*pos + (size_t)i];
  *pos += 8;
  if (k == 0 || k > 64 || k > n - *pos) return false;
  *s = p + *pos;
  *l = (size_t)k;
  *pos += (size_t)k;
  for (size_t i = 0; i < k; i++)
    if ((*s)[i] < 0x20 || (*s)[i] >= 0x7f) return false;
  return true;
}

static bool xgb_bin_parse(const uint8_t *p, size_t n, uint32_t *nf, const uint8_t **obj,
                          size_t *ol, const uint8_t **gbm, size_t *gl) {
  size_t pos = n >= 4 && memcmp(p, "binf", 4) == 0 ? 4 : 0;
  if (n < pos + XGB_PARAM + 16) return false;
  const uint8_t *m = p + pos;
  *nf = (uint32_t)m[4] | (uint32_t)m[5] << 8 | (uint32_t)m[6] << 16 | (uint32_t)m[7] << 24;
  pos += XGB_PARAM;
  if (!xgb_str(p, n, &pos, obj, ol) || !xgb_str(p, n, &pos, gbm, gl)) return false;
  return (*gl == 6 && (memcmp(*gbm, "gbtree", 6) == 0)) ||
         (*gl == 8 && memcmp(*gbm, "gblinear", 8) == 0) || (*gl == 4 && memcmp(*gbm, "dart", 4) == 0);
}

bool intake_xgb_binary_probe(const uint8_t *p, size_t n) {
  uint32_t nf;
  const uint8_t *o, *g;
  size_t ol, gl;
  return xgb_bin_parse(p, n, &nf, &o, &ol, &g, &gl);
}

int intake_xgb_binary(struct intake_ctx *c, const uint8_t *p, size_t n, struct err *e) {
  uint32_t nf;
  const uint8_t *o, *g;
  size_t ol, gl;
  if (!xgb_bin_parse(p, n, &nf, &o, &ol, &g, &gl))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "malformed XGBoost binary model");
  intake_set_format(c, "xgboost-binary", "xgboost");
  json_object_set_new(c->r->metadata, "num_feature", json_integer(nf));
  json_object_set_new(c->r->metadata, "objective", json_stringn((const char *)o, ol));
  json_object_set_new(c->r->metadata, "booster", json_stringn((const char *)g, gl));
  tree_signature(c, nf, NULL);
  /* the booster's trees follow; a file cut right after the header is not a model */
  if (n - (size_t)((g + gl) - p) < 8)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "truncated XGBoost binary model");
  return 0;
}

/* ---- LightGBM text model ---------------------------------------------------- */

int intake_lightgbm(struct intake_ctx *c, const uint8_t *p, size_t n, struct err *e) {
  intake_set_format(c, "lightgbm-text", "lightgbm");
  json_t *md = c->r->metadata;
  json_int_t max_idx = -1;
  json_t *names = NULL;
  size_t pos = 0;
  /* the header: key=value lines up to the first blank line */
  for (int lines = 0; pos < n && lines < 1000; lines++) {
    const uint8_t *nl = memchr(p + pos, '\n', n - pos);
    size_t len = nl ? (size_t)(nl - (p + pos)) : n - pos;
    const char *l = (const char *)p + pos;
    pos += len + (nl ? 1 : 0);
    if (len && l[len - 1] == '\r') len--;
    if (len == 0) break;
    const char *eq = memchr(l, '=', len);
    if (!eq) continue;
    size_t kl = (size_t)(eq - l), vl = len - kl - 1;
    const char *v = eq + 1;
    char num[32];
    int64_t iv;
    if (kl == 15 && memcmp(l, "max_feature_idx", 15) == 0 && vl && vl < sizeof num) {
      memcpy(num, v, vl);
      num[vl] = 0;
      if (str_to_i64(num, &iv) == 0 && iv >= 0) max_idx = (json_int_t)iv;
    } else if (kl == 9 && memcmp(l, "num_class", 9) == 0 && vl && vl < sizeof num) {
      memcpy(num, v, vl);
      num[vl] = 0;
      if (str_to_i64(num, &iv) == 0) json_object_set_new(md, "num_class", json_integer(iv));
    } else if (kl == 9 && memcmp(l, "objective", 9) == 0) {
      json_object_set_new(md, "objective", json_stringn(v, vl < 256 ? vl : 256));
    } else if (kl == 7 && memcmp(l, "version", 7) == 0) {
      json_object_set_new(md, "version", json_stringn(v, vl < 32 ? vl : 32));
    } else if (kl == 13 && memcmp(l, "feature_names", 13) == 0 && !names) {
      names = json_array();
      size_t i = 0;
      while (i < vl && json_array_size(names) < 100000) {
        size_t j = i;
        while (j < vl && v[j] != ' ') j++;
        if (j > i) json_array_append_new(names, json_stringn(v + i, j - i));
        i = j + 1;
      }
    }
  }
  int rc = 0;
  if (max_idx < 0) {
    rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "malformed LightGBM model: no max_feature_idx");
  } else if (!intake_mem_has(p, n, "end of trees", NULL)) {
    rc = err_set(e, ERR_INVALID_PARAMETER_VALUE,
                 "truncated LightGBM model: no \"end of trees\" line");
  } else {
    json_object_set_new(md, "num_feature", json_integer(max_idx + 1));
    if (names) json_object_set(md, "feature_names", names);
    size_t trees = 0, at = 0, off = 0;
    while (trees < 1000000 && off < n && intake_mem_has(p + off, n - off, "\nTree=", &at)) {
      trees++;
      off += at + 6;
    }
    json_object_set_new(md, "num_trees", json_integer((json_int_t)trees));
    tree_signature(c, max_idx + 1, names);
  }
  json_decref(names);
  return rc;
}

/* ---- Keras HDF5 --------------------------------------------------------------
 * No HDF5 library: the superblock gives the file's end (truncation), and
 * Keras keeps its model_config JSON as a root attribute, found by its bytes. */

static bool has_lambda(const json_t *v, int depth) {
  if (depth > 64) return false;
  if (json_is_object(v)) {
    const char *cls = json_string_value(json_object_get(v, "class_name"));
    if (cls && (str_eq(cls, "Lambda") || str_eq(cls, "TFOpLambda"))) return true;
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x) if (has_lambda(x, depth + 1)) return true;
  } else if (json_is_array(v)) {
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) if (has_lambda(x, depth + 1)) return true;
  }
  return false;
}

int intake_hdf5(struct intake_ctx *c, const uint8_t *p, size_t n, size_t at, struct err *e) {
  intake_set_format(c, "hdf5", NULL);
  const uint8_t *sb = p + at;
  size_t left = n - at;
  if (left < 48) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "truncated HDF5 file");
  uint8_t ver = sb[8];
  size_t eof_off, osz;
  if (ver == 0 || ver == 1) {
    osz = sb[13];
    eof_off = 24 + (ver == 1 ? 4 : 0) + 2 * osz;
  } else if (ver == 2 || ver == 3) {
    osz = sb[9];
    eof_off = 12 + 2 * osz;
  } else {
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "HDF5 superblock version %u is unknown", ver);
  }
  if ((osz != 4 && osz != 8) || eof_off + osz > left)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "malformed HDF5 superblock");
  uint64_t eof = 0;
  for (size_t i = osz; i-- > 0;) eof = eof << 8 | sb[eof_off + i];
  if (eof > left)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "truncated HDF5 file: the superblock says %llu bytes, the file has %zu",
                   (unsigned long long)eof, left);
  size_t cfg_at;
  if (!intake_mem_has(p, n, "model_config", NULL) || !intake_mem_has(p, n, "{\"class_name\"", &cfg_at))
    return err_set(e, ERR_UNSUPPORTED_MEDIA_TYPE,
                   "an HDF5 file without a Keras model_config (weights only?): save the whole "
                   "model with model.save(path) or export ONNX");
  intake_set_format(c, "keras-hdf5", "keras");
  /* the JSON text ends at its matching brace (strings respected) */
  size_t depth = 0, i = cfg_at, lim = n - cfg_at > (64u << 20) ? cfg_at + (64u << 20) : n;
  bool in_str = false;
  for (; i < lim; i++) {
    uint8_t ch = p[i];
    if (in_str) {
      if (ch == '\\') i++;
      else if (ch == '"') in_str = false;
    } else if (ch == '"') in_str = true;
    else if (ch == '{') depth++;
    else if (ch == '}' && --depth == 0) break;
  }
  struct err je;
  json_t *cfg = i < lim ? json_parse((const char *)p + cfg_at, i + 1 - cfg_at, &je) : NULL;
  if (!cfg) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "malformed Keras model_config");
  json_t *md = c->r->metadata;
  const char *cls = json_string_value(json_object_get(cfg, "class_name"));
  if (cls) json_object_set_new(md, "class_name", json_string(cls));
  json_t *conf = json_object_get(cfg, "config");
  const char *name = json_string_value(json_object_get(conf, "name"));
  if (name) json_object_set_new(md, "name", json_string(name));
  json_t *layers = json_object_get(conf, "layers");
  if (json_is_array(layers))
    json_object_set_new(md, "layer_count", json_integer((json_int_t)json_array_size(layers)));
  int rc = 0;
  if (has_lambda(cfg, 0)) {
    json_object_set_new(md, "lambda_layers", json_true());
    if (c->o->allow_unsafe_pickle)
      c->r->unsafe = true;
    else
      rc = err_set(e, ERR_UNSAFE_MODEL,
                   "unsafe Keras model: a Lambda layer carries Python code that runs on load");
  }
  json_decref(cfg);
  return rc;
}
