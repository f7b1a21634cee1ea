/* registry/onnx: reads an ONNX ModelProto straight from the protobuf wire
 * format — versions, opsets, producer, the graph's inputs and outputs with
 * dtypes and shapes — and refuses external data that escapes the model's
 * directory. Hand-written: no Debian C library parses ONNX without
 * generated code (see docs/architecture.md). Every length is checked against
 * the bytes left and nesting is bounded. */
#include "registry/internal.h"

#include <string.h>

#define MAX_GRAPH_DEPTH 16 /* subgraphs of If/Loop/Scan inside each other */
#define MAX_IO 4096        /* inputs/outputs listed */
#define MAX_DIMS 64

struct pb {
  const uint8_t *p;
  size_t n, pos;
};

struct field {
  uint32_t num;
  uint8_t wt;
  uint64_t v;          /* varint / fixed value */
  const uint8_t *data; /* length-delimited payload */
  size_t len;
};

static bool varint(struct pb *b, uint64_t *out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (b->pos >= b->n) return false;
    uint8_t c = b->p[b->pos++];
    v |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

/* Next field; false at the end. *ok false on malformed input. */
static bool next(struct pb *b, struct field *f, bool *ok) {
  *ok = true;
  if (b->pos >= b->n) return false;
  uint64_t key;
  if (!varint(b, &key) || key >> 3 == 0 || key >> 3 > UINT32_MAX) goto bad;
  f->num = (uint32_t)(key >> 3);
  f->wt = (uint8_t)(key & 7);
  f->data = NULL;
  f->len = 0;
  switch (f->wt) {
  case 0:
    if (!varint(b, &f->v)) goto bad;
    return true;
  case 1:
    if (b->n - b->pos < 8) goto bad;
    b->pos += 8;
    return true;
  case 5:
    if (b->n - b->pos < 4) goto bad;
    b->pos += 4;
    return true;
  case 2: {
    uint64_t l;
    if (!varint(b, &l) || l > b->n - b->pos) goto bad;
    f->data = b->p + b->pos;
    f->len = (size_t)l;
    b->pos += (size_t)l;
    return true;
  }
  default: goto bad; /* groups (3, 4) are not used by ONNX */
  }
bad:
  *ok = false;
  return false;
}

static struct pb sub(const struct field *f) { return (struct pb){f->data, f->len, 0}; }

/* a string field as a JSON string (invalid UTF-8 replaced) */
static json_t *jstr(const struct field *f) {
  size_t n = f->len > 4096 ? 4096 : f->len;
  json_t *s = json_stringn((const char *)f->data, n);
  return s ? s : json_string("(not UTF-8)");
}

static const char *const elem_names[] = {
    "undefined", "float", "uint8", "int8", "uint16", "int16", "int32", "int64",
    "string", "bool", "float16", "double", "uint32", "uint64", "complex64", "complex128",
    "bfloat16", "float8e4m3fn", "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz", "uint4",
    "int4", "float4e2m1"};

static json_t *elem_name(uint64_t t) {
  if (t < sizeof elem_names / sizeof *elem_names) return json_string(elem_names[t]);
  return json_sprintf("elem_type_%llu", (unsigned long long)t);
}

struct walk {
  struct err *e;
  char bad_location[256]; /* the first location that escapes, "" when none */
  bool external;
  json_t *locations;
  bool malformed;
};

/* TensorShapeProto -> [dim, ...] with ints, symbolic names, or null */
static json_t *shape(struct walk *w, struct pb b) {
  json_t *dims = json_array();
  struct field f;
  bool ok;
  while (next(&b, &f, &ok)) {
    if (f.num != 1 || f.wt != 2) continue;
    if (json_array_size(dims) >= MAX_DIMS) break;
    struct pb d = sub(&f);
    struct field g;
    json_t *dim = NULL;
    while (next(&d, &g, &ok)) {
      if (g.num == 1 && g.wt == 0) {
        json_decref(dim);
        dim = json_integer((json_int_t)g.v);
      } else if (g.num == 2 && g.wt == 2) {
        json_decref(dim);
        dim = jstr(&g);
      }
    }
    if (!ok) w->malformed = true;
    json_array_append_new(dims, dim ? dim : json_null());
  }
  if (!ok) w->malformed = true;
  return dims;
}

/* TypeProto -> {"dtype", "shape"} or {"kind": "sequence"|"map"|...} */
static json_t *type(struct walk *w, struct pb b, int depth) {
  json_t *t = json_object();
  struct field f;
  bool ok;
  if (depth > 8) return t;
  while (next(&b, &f, &ok)) {
    if (f.wt != 2) continue;
    struct pb s = sub(&f);
    struct field g;
    if (f.num == 1 || f.num == 8) { /* tensor_type, sparse_tensor_type */
      json_object_set_new(t, "kind", json_string(f.num == 1 ? "tensor" : "sparse_tensor"));
      while (next(&s, &g, &ok)) {
        if (g.num == 1 && g.wt == 0) json_object_set_new(t, "dtype", elem_name(g.v));
        if (g.num == 2 && g.wt == 2) json_object_set_new(t, "shape", shape(w, sub(&g)));
      }
    } else if (f.num == 4 || f.num == 9) { /* sequence_type, optional_type */
      json_object_set_new(t, "kind", json_string(f.num == 4 ? "sequence" : "optional"));
      while (next(&s, &g, &ok))
        if (g.num == 1 && g.wt == 2) json_object_set_new(t, "elem", type(w, sub(&g), depth + 1));
    } else if (f.num == 5) { /* map_type */
      json_object_set_new(t, "kind", json_string("map"));
      while (next(&s, &g, &ok)) {
        if (g.num == 1 && g.wt == 0) json_object_set_new(t, "key", elem_name(g.v));
        if (g.num == 2 && g.wt == 2) json_object_set_new(t, "value", type(w, sub(&g), depth + 1));
      }
    }
    if (!ok) w->malformed = true;
  }
  if (!ok) w->malformed = true;
  return t;
}

/* ValueInfoProto -> {"name", "dtype", "shape", ...} */
static json_t *value_info(struct walk *w, struct pb b) {
  json_t *v = json_object();
  struct field f;
  bool ok;
  while (next(&b, &f, &ok)) {
    if (f.num == 1 && f.wt == 2) json_object_set_new(v, "name", jstr(&f));
    if (f.num == 2 && f.wt == 2) json_object_update_new(v, type(w, sub(&f), 0));
  }
  if (!ok) w->malformed = true;
  return v;
}

/* TensorProto: external_data entries (13: key/value) with data_location 14 */
static void tensor(struct walk *w, struct pb b) {
  struct field f;
  bool ok;
  while (next(&b, &f, &ok)) {
    if (f.num != 13 || f.wt != 2) continue;
    struct pb kv = sub(&f);
    struct field g;
    const uint8_t *k = NULL, *v = NULL;
    size_t kl = 0, vl = 0;
    while (next(&kv, &g, &ok)) {
      if (g.num == 1 && g.wt == 2) k = g.data, kl = g.len;
      if (g.num == 2 && g.wt == 2) v = g.data, vl = g.len;
    }
    if (!ok) w->malformed = true;
    if (!k || kl != 8 || memcmp(k, "location", 8) != 0) continue;
    w->external = true;
    char loc[1024];
    size_t n = vl < sizeof loc - 1 ? vl : sizeof loc - 1;
    if (v) memcpy(loc, v, n);
    loc[n] = 0;
    if (json_array_size(w->locations) < 64) json_array_append_new(w->locations, json_string(loc));
    if ((!v || memchr(v, 0, vl) || vl >= sizeof loc || !intake_path_safe(loc)) &&
        !w->bad_location[0])
      str_copy(w->bad_location, sizeof w->bad_location, loc[0] ? loc : "(empty)");
  }
  if (!ok) w->malformed = true;
}

static void graph(struct walk *w, struct pb b, int depth, json_t *inputs, json_t *outputs,
                  json_t *inits, size_t *nodes);

/* NodeProto attributes (5) hold tensors (t=5, tensors=10) and subgraphs (g=6, graphs=11) */
static void node(struct walk *w, struct pb b, int depth) {
  struct field f;
  bool ok;
  while (next(&b, &f, &ok)) {
    if (f.num != 5 || f.wt != 2) continue;
    struct pb a = sub(&f);
    struct field g;
    while (next(&a, &g, &ok)) {
      if (g.wt != 2) continue;
      if (g.num == 5 || g.num == 10) tensor(w, sub(&g));
      if (g.num == 6 || g.num == 11) {
        size_t dummy = 0;
        graph(w, sub(&g), depth + 1, NULL, NULL, NULL, &dummy);
      }
    }
    if (!ok) w->malformed = true;
  }
  if (!ok) w->malformed = true;
}

static void graph(struct walk *w, struct pb b, int depth, json_t *inputs, json_t *outputs,
                  json_t *inits, size_t *nodes) {
  if (depth > MAX_GRAPH_DEPTH) {
    w->malformed = true;
    return;
  }
  struct field f;
  bool ok;
  while (next(&b, &f, &ok)) {
    if (f.wt != 2) continue;
    switch (f.num) {
    case 1: (*nodes)++; node(w, sub(&f), depth); break;
    case 5: /* initializer: its name hides a graph input of the same name (IR < 4) */
      tensor(w, sub(&f));
      if (inits && json_object_size(inits) < 100000) {
        struct pb t = sub(&f);
        struct field g;
        while (next(&t, &g, &ok))
          if (g.num == 8 && g.wt == 2) {
            char nm[512];
            size_t n = g.len < sizeof nm - 1 ? g.len : sizeof nm - 1;
            memcpy(nm, g.data, n);
            nm[n] = 0;
            json_object_set_new(inits, nm, json_true());
          }
        ok = true;
      }
      break;
    case 15: { /* sparse_initializer: values (1) and indices (2) are tensors */
      struct pb s = sub(&f);
      struct field g;
      while (next(&s, &g, &ok))
        if ((g.num == 1 || g.num == 2) && g.wt == 2) tensor(w, sub(&g));
      break;
    }
    case 11:
      if (inputs && json_array_size(inputs) < MAX_IO)
        json_array_append_new(inputs, value_info(w, sub(&f)));
      break;
    case 12:
      if (outputs && json_array_size(outputs) < MAX_IO)
        json_array_append_new(outputs, value_info(w, sub(&f)));
      break;
    default: break;
    }
  }
  if (!ok) w->malformed = true;
}

/* A start every exporter writes: ir_version, then producer_name, graph or
 * opset_import. Such a file that does not parse is a broken ONNX model, not
 * an unknown format. */
bool intake_onnx_start(const uint8_t *p, size_t n) {
  if (n < 3 || p[0] != 0x08 || p[1] == 0 || p[1] > 32) return false;
  return p[2] == 0x12 || p[2] == 0x3a || p[2] == 0x42;
}

bool intake_onnx_probe(const uint8_t *p, size_t n) {
  /* ModelProto starts with ir_version (field 1, varint) in every exporter */
  if (n < 4 || p[0] != 0x08 || p[1] == 0 || p[1] > 32) return false;
  struct pb b = {p, n, 0};
  struct field f;
  bool ok, ir = false, g = false;
  while (next(&b, &f, &ok)) {
    if (f.num == 1 && f.wt == 0) ir = true;
    if (f.num == 7 && f.wt == 2) g = true;
  }
  return ok && ir && g;
}

int intake_onnx(struct intake_ctx *c, const uint8_t *p, size_t n, struct err *e) {
  intake_set_format(c, "onnx", "onnx");
  json_t *md = c->r->metadata;
  json_t *opsets = json_object(), *inputs = json_array(), *outputs = json_array(),
         *inits = json_object(), *props = json_object();
  struct walk w = {.e = e, .locations = json_array()};
  struct pb b = {p, n, 0};
  struct field f;
  bool ok;
  size_t nodes = 0;
  bool has_graph = false;
  while (next(&b, &f, &ok)) {
    if (f.num == 7 && f.wt == 2) has_graph = true;
    switch (f.num) {
    case 1: if (f.wt == 0) json_object_set_new(md, "ir_version", json_integer((json_int_t)f.v)); break;
    case 2: if (f.wt == 2) json_object_set_new(md, "producer_name", jstr(&f)); break;
    case 3: if (f.wt == 2) json_object_set_new(md, "producer_version", jstr(&f)); break;
    case 4: if (f.wt == 2) json_object_set_new(md, "domain", jstr(&f)); break;
    case 5: if (f.wt == 0) json_object_set_new(md, "model_version", json_integer((json_int_t)f.v)); break;
    case 7: if (f.wt == 2) graph(&w, sub(&f), 0, inputs, outputs, inits, &nodes); break;
    case 8:
      if (f.wt == 2) {
        struct pb s = sub(&f);
        struct field g;
        char dom[256] = "ai.onnx";
        json_int_t ver = 0;
        while (next(&s, &g, &ok)) {
          if (g.num == 1 && g.wt == 2 && g.len) {
            size_t k = g.len < sizeof dom - 1 ? g.len : sizeof dom - 1;
            memcpy(dom, g.data, k);
            dom[k] = 0;
          }
          if (g.num == 2 && g.wt == 0) ver = (json_int_t)g.v;
        }
        if (!ok) w.malformed = true;
        if (json_object_size(opsets) < 256) json_object_set_new(opsets, dom, json_integer(ver));
      }
      break;
    case 14:
      if (f.wt == 2 && json_object_size(props) < 256) {
        struct pb s = sub(&f);
        struct field g;
        char key[256] = "";
        json_t *val = NULL;
        while (next(&s, &g, &ok)) {
          if (g.num == 1 && g.wt == 2) {
            size_t k = g.len < sizeof key - 1 ? g.len : sizeof key - 1;
            memcpy(key, g.data, k);
            key[k] = 0;
          }
          if (g.num == 2 && g.wt == 2) {
            json_decref(val);
            val = jstr(&g);
          }
        }
        if (!ok) w.malformed = true;
        json_object_set_new(props, key, val ? val : json_string(""));
      }
      break;
    case 25: /* functions: their nodes may hold tensors with external data too */
      if (f.wt == 2) {
        struct pb s = sub(&f);
        struct field g;
        while (next(&s, &g, &ok))
          if (g.num == 7 && g.wt == 2) node(&w, sub(&g), 1);
        if (!ok) w.malformed = true;
      }
      break;
    default: break;
    }
  }
  if (!ok) w.malformed = true;
  /* graph inputs that are initializers are weights, not what callers send */
  json_t *real_in = json_array();
  size_t i;
  json_t *v;
  json_array_foreach(inputs, i, v) {
    const char *nm = json_string_value(json_object_get(v, "name"));
    if (!nm || !json_object_get(inits, nm)) json_array_append(real_in, v);
  }
  json_object_set_new(md, "opset_import", opsets);
  json_object_set_new(md, "node_count", json_integer((json_int_t)nodes));
  if (json_object_size(props)) json_object_set_new(md, "metadata_props", props);
  else json_decref(props);
  if (w.external) json_object_set_new(md, "external_data", json_incref(w.locations));
  json_decref(c->r->signature);
  c->r->signature = json_pack("{s:o, s:o}", "inputs", real_in, "outputs", outputs);
  int rc = 0;
  if (!has_graph && !w.malformed)
    rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "malformed ONNX model: no graph (truncated?)");
  else if (w.malformed)
    rc = err_set(e, ERR_INVALID_PARAMETER_VALUE,
                 "malformed ONNX model: a protobuf field runs past its message or the graph "
                 "nests deeper than %d",
                 MAX_GRAPH_DEPTH);
  else if (w.bad_location[0])
    rc = err_set(e, ERR_UNSAFE_MODEL,
                 "ONNX external data location '%.200s' is absolute or leaves the model's "
                 "directory",
                 w.bad_location);
  json_decref(w.locations);
  json_decref(inputs);
  json_decref(inits);
  return rc;
}
