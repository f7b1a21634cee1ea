/* registry/mlmodel: MLflow's MLmodel file (YAML) read with libyaml's event
 * parser into JSON, so intake reads flavors and signatures with jansson.
 * Aliases are refused (no expansion bombs); depth and size are bounded. */
#include "registry/internal.h"

#include <string.h>
#include <yaml.h>

#define YAML_MAX_DEPTH 32
#define YAML_MAX_NODES 100000

struct yctx {
  yaml_parser_t p;
  size_t nodes;
  struct err *e;
  int rc;
};

static json_t *scalar(const yaml_event_t *ev) {
  const char *v = (const char *)ev->data.scalar.value;
  size_t n = ev->data.scalar.length;
  /* plain (unquoted) scalars carry YAML's core types */
  if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
    int64_t i;
    if (str_eq(v, "true") || str_eq(v, "True")) return json_true();
    if (str_eq(v, "false") || str_eq(v, "False")) return json_false();
    if (str_eq(v, "null") || str_eq(v, "~") || n == 0) return json_null();
    if (str_to_i64(v, &i) == 0) return json_integer((json_int_t)i);
  }
  json_t *s = json_stringn(v, n);
  return s ? s : json_string("");
}

static json_t *node(struct yctx *y, yaml_event_t *ev, int depth);

/* the next event as a node (consumes it) */
static json_t *next_node(struct yctx *y, int depth, bool *end) {
  yaml_event_t ev;
  *end = false;
  if (!yaml_parser_parse(&y->p, &ev)) {
    y->rc = err_set(y->e, ERR_INVALID_PARAMETER_VALUE, "MLmodel is not valid YAML: %s (line %zu)",
                    y->p.problem ? y->p.problem : "parse error", y->p.problem_mark.line + 1);
    return NULL;
  }
  if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
    *end = true;
    yaml_event_delete(&ev);
    return NULL;
  }
  json_t *v = node(y, &ev, depth);
  yaml_event_delete(&ev);
  return v;
}

static json_t *node(struct yctx *y, yaml_event_t *ev, int depth) {
  if (++y->nodes > YAML_MAX_NODES || depth > YAML_MAX_DEPTH) {
    y->rc = err_set(y->e, ERR_INVALID_PARAMETER_VALUE, "MLmodel is too large or nested too deep");
    return NULL;
  }
  bool end;
  switch (ev->type) {
  case YAML_SCALAR_EVENT: return scalar(ev);
  case YAML_ALIAS_EVENT:
    y->rc = err_set(y->e, ERR_INVALID_PARAMETER_VALUE, "MLmodel uses a YAML alias, which Kiln refuses");
    return NULL;
  case YAML_SEQUENCE_START_EVENT: {
    json_t *a = json_array();
    for (;;) {
      json_t *v = next_node(y, depth + 1, &end);
      if (end) return a;
      if (!v) break;
      json_array_append_new(a, v);
    }
    json_decref(a);
    return NULL;
  }
  case YAML_MAPPING_START_EVENT: {
    json_t *o = json_object();
    for (;;) {
      json_t *k = next_node(y, depth + 1, &end);
      if (end) return o;
      if (!k) break;
      json_t *v = next_node(y, depth + 1, &end);
      if (!v || end) {
        json_decref(k);
        if (end && !y->rc)
          y->rc = err_set(y->e, ERR_INVALID_PARAMETER_VALUE, "MLmodel mapping key without value");
        break;
      }
      char tmp[32];
      const char *key = json_string_value(k);
      if (!key) {
        if (json_is_integer(k)) snprintf(tmp, sizeof tmp, "%lld", (long long)json_integer_value(k));
        else str_copy(tmp, sizeof tmp, json_is_true(k) ? "true" : json_is_false(k) ? "false" : "null");
        key = tmp;
      }
      json_object_set_new(o, key, v);
      json_decref(k);
    }
    json_decref(o);
    return NULL;
  }
  default:
    y->rc = err_set(y->e, ERR_INVALID_PARAMETER_VALUE, "MLmodel: unexpected YAML event");
    return NULL;
  }
}

json_t *intake_yaml_to_json(const uint8_t *p, size_t n, struct err *e) {
  struct yctx y = {.e = e};
  if (!yaml_parser_initialize(&y.p)) {
    err_set(e, ERR_NO_MEMORY, "cannot start libyaml");
    return NULL;
  }
  yaml_parser_set_input_string(&y.p, p, n);
  json_t *root = NULL;
  yaml_event_t ev;
  /* STREAM_START, DOCUMENT_START, the root node */
  for (int i = 0; i < 2; i++) {
    if (!yaml_parser_parse(&y.p, &ev)) {
      err_set(e, ERR_INVALID_PARAMETER_VALUE, "MLmodel is not valid YAML: %s",
              y.p.problem ? y.p.problem : "parse error");
      yaml_parser_delete(&y.p);
      return NULL;
    }
    bool stream_end = ev.type == YAML_STREAM_END_EVENT;
    yaml_event_delete(&ev);
    if (stream_end) break;
  }
  bool end;
  root = next_node(&y, 0, &end);
  yaml_parser_delete(&y.p);
  if (!root) {
    if (!y.rc) err_set(e, ERR_INVALID_PARAMETER_VALUE, "MLmodel is empty");
    return NULL;
  }
  if (!json_is_object(root)) {
    json_decref(root);
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "MLmodel is not a YAML mapping");
    return NULL;
  }
  return root;
}
