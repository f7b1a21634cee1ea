/* http/openapi: the OpenAPI 3.1 document, generated from the route table so
 * the docs cannot drift from the code. */
#include "http.h"

#include <string.h>

static const char error_schema[] =
    "{\"type\":\"object\",\"required\":[\"error_code\",\"message\"],\"properties\":{"
    "\"error_code\":{\"type\":\"string\",\"description\":\"stable machine-readable code\"},"
    "\"message\":{\"type\":\"string\"}}}";

/* "/a/{b}/{rest*}" -> "/a/{b}/{rest}" plus its parameter list */
static json_t *path_and_params(const char *pattern, char *out, size_t cap) {
  json_t *params = json_array();
  size_t o = 0;
  for (const char *p = pattern; *p && o + 1 < cap; p++) {
    if (*p == '{') {
      const char *end = strchr(p, '}');
      if (!end) break;
      size_t n = (size_t)(end - p - 1);
      bool wild = n && p[n] == '*';
      if (wild) n--;
      char name[64];
      snprintf(name, sizeof name, "%.*s", (int)n, p + 1);
      o += (size_t)snprintf(out + o, cap - o, "{%s}", name);
      json_array_append_new(params, json_pack("{s:s, s:s, s:b, s:{s:s}, s:s}", "name", name, "in", "path",
                                              "required", 1, "schema", "type", "string", "description",
                                              wild ? "the rest of the path, may contain /" : name));
      p = end;
      if (o >= cap) o = cap - 1;
    } else {
      out[o++] = *p;
    }
  }
  out[o] = 0;
  return params;
}

static void op_id(const struct route *rt, char *out, size_t cap) {
  size_t o = 0;
  for (const char *p = rt->method; *p && o + 1 < cap; p++) out[o++] = (char)(*p | 0x20);
  for (const char *p = rt->path; *p && o + 1 < cap; p++) {
    char c = *p;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) out[o++] = c;
    else if (o && out[o - 1] != '_') out[o++] = '_';
  }
  while (o && out[o - 1] == '_') o--;
  out[o] = 0;
}

static json_t *parse_schema(const char *text, const struct route *rt, struct err *e) {
  json_error_t je;
  json_t *s = json_loads(text, 0, &je);
  if (!s) err_set(e, ERR_INTERNAL, "route %s %s has an invalid schema: %s (col %d)", rt->method, rt->path, je.text, je.column);
  return s;
}

json_t *openapi_build(const struct router *r, struct err *e) {
  json_t *paths = json_object();
  for (size_t i = 0; i < router_count(r); i++) {
    const struct route *rt = router_at(r, i);
    if (rt->flags & ROUTE_HIDDEN) continue;
    char path[512], id[256];
    json_t *params = path_and_params(rt->path, path, sizeof path);
    op_id(rt, id, sizeof id);
    json_t *item = json_object_get(paths, path);
    if (!item) {
      item = json_object();
      json_object_set_new(paths, path, item);
    }
    json_t *op = json_pack("{s:s, s:s, s:[s], s:s}", "summary", rt->summary ? rt->summary : "",
                           "operationId", id, "tags", rt->tag ? rt->tag : "misc",
                           "x-kiln-permission", perm_name(rt->perm));
    if (rt->flags & ROUTE_PROJECT_SELECTED) {
      json_object_set_new(op, "x-kiln-project", json_string("selected"));
      json_array_append_new(params, json_pack("{s:s, s:s, s:b, s:{s:s}, s:s}", "name", "X-Kiln-Project", "in", "header",
                                              "required", 0, "schema", "type", "string", "description",
                                              "the project to act in (default: the API key's project, else "
                                              "your default project)"));
    }
    if (json_array_size(params)) json_object_set(op, "parameters", params);
    json_decref(params);
    if (rt->perm != PERM_PUBLIC)
      json_object_set_new(op, "security", json_pack("[{s:[]}, {s:[]}]", "bearer", "apiKey"));
    if (rt->req_schema) {
      json_t *s = parse_schema(rt->req_schema, rt, e);
      if (!s) {
        json_decref(op);
        goto fail;
      }
      json_object_set_new(op, "requestBody", json_pack("{s:b, s:{s:{s:o}}}", "required", 1, "content",
                                                       "application/json", "schema", s));
      if (rt->flags & ROUTE_BINARY_ALT)
        json_object_set_new(json_object_get(json_object_get(op, "requestBody"), "content"), "application/octet-stream",
                            json_pack("{s:{s:s, s:s}}", "schema", "type", "string", "format", "binary"));
    }
    json_t *ok;
    if (rt->resp_schema) {
      json_t *s = parse_schema(rt->resp_schema, rt, e);
      if (!s) {
        json_decref(op);
        goto fail;
      }
      ok = json_pack("{s:s, s:{s:{s:o}}}", "description", "OK", "content",
                     rt->resp_type ? rt->resp_type : "application/json", "schema", s);
      if (ok && (rt->flags & ROUTE_BINARY_ALT))
        json_object_set_new(json_object_get(ok, "content"), "application/octet-stream",
                            json_pack("{s:{s:s, s:s}}", "schema", "type", "string", "format", "binary"));
    } else {
      ok = json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", "OK", "content",
                     rt->resp_type ? rt->resp_type : "application/octet-stream", "schema", "type",
                     "string");
    }
    json_object_set_new(op, "responses",
                        json_pack("{s:o, s:{s:s, s:{s:{s:{s:s}}}}}", "200", ok, "default",
                                  "description", "Error", "content", "application/json", "schema",
                                  "$ref", "#/components/schemas/Error"));
    char method[16];
    size_t k = 0;
    for (; rt->method[k] && k + 1 < sizeof method; k++) method[k] = (char)(rt->method[k] | 0x20);
    method[k] = 0;
    json_object_set_new(item, method, op);
  }
  json_t *err_s = json_loads(error_schema, 0, NULL);
  return json_pack(
      "{s:s, s:{s:s, s:s, s:s}, s:o, s:{s:{s:o}, s:{s:{s:s, s:s}, s:{s:s, s:s, s:s}}}}", "openapi",
      "3.1.0", "info", "title", "Kiln API", "version", KILN_VERSION, "description",
      "Kiln: experiment tracking, model registry, serving and monitoring in one binary. "
      "Every error is JSON {\"error_code\", \"message\"}.",
      "paths", paths, "components", "schemas", "Error", err_s, "securitySchemes", "bearer", "type",
      "http", "scheme", "bearer", "apiKey", "type", "apiKey", "in", "header", "name", "X-API-Key");
fail:
  json_decref(paths);
  return NULL;
}
