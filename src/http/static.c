/* http/static: the dashboard's built files, embedded in the binary — content
 * types, long caching for hashed assets, precompressed variants, and the
 * single-page-app fallback to index.html. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct embedded_file {
  const char *path;
  const unsigned char *data;
  size_t len;
};
extern const struct embedded_file ui_files[];
extern const size_t ui_files_count;

static const struct static_file *find(const char *path) {
  for (size_t i = 0; i < ui_files_count; i++)
    if (strcmp(ui_files[i].path, path) == 0) return (const struct static_file *)&ui_files[i];
  return NULL;
}

/* true when `tok` appears as a coding in an Accept-Encoding value (q=0 refuses) */
static bool accepts(const char *ae, const char *tok) {
  if (!ae) return false;
  size_t n = strlen(tok);
  for (const char *p = ae; (p = strstr(p, tok)); p += n) {
    bool start = p == ae || p[-1] == ' ' || p[-1] == ',';
    bool end = p[n] == 0 || p[n] == ',' || p[n] == ';' || p[n] == ' ';
    if (!start || !end) continue;
    const char *q = p + n;
    while (*q == ' ') q++;
    if (*q == ';') {
      const char *comma = strchr(q, ',');
      const char *qv = strstr(q, "q=");
      if (qv && (!comma || qv < comma) && strtod(qv + 2, NULL) <= 0) return false;
    }
    return true;
  }
  return false;
}

const struct static_file *static_lookup(const char *path, const char *ae, const char **encoding) {
  *encoding = NULL;
  const struct static_file *f = find(path);
  if (!f) return NULL;
  char alt[512];
  if (accepts(ae, "br")) {
    snprintf(alt, sizeof alt, "%s.br", path);
    const struct static_file *c = find(alt);
    if (c) {
      *encoding = "br";
      return c;
    }
  }
  if (accepts(ae, "gzip")) {
    snprintf(alt, sizeof alt, "%s.gz", path);
    const struct static_file *c = find(alt);
    if (c) {
      *encoding = "gzip";
      return c;
    }
  }
  return f;
}

const char *static_content_type(const char *path) {
  static const struct {
    const char *ext, *type;
  } types[] = {
      {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
      {".json", "application/json"}, {".svg", "image/svg+xml"}, {".png", "image/png"},
      {".ico", "image/x-icon"}, {".woff2", "font/woff2"}, {".woff", "font/woff"},
      {".txt", "text/plain; charset=utf-8"}, {".map", "application/json"},
      {".webp", "image/webp"}, {".jpg", "image/jpeg"},
  };
  const char *dot = strrchr(path, '.');
  const char *slash = strrchr(path, '/');
  if (dot && (!slash || dot > slash))
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
      if (strcmp(dot, types[i].ext) == 0) return types[i].type;
  return "application/octet-stream";
}

static const char not_built[] =
    "<!doctype html><html><head><meta charset=utf-8><title>Kiln</title></head><body>"
    "<h1>Kiln</h1><p>The dashboard was not built into this binary. Run <code>make</code> "
    "with Node.js available, or use the API: <a href=\"/api/docs\">/api/docs</a>.</p></body></html>";

int static_serve(struct req *rq, struct reply *rp) {
  const char *path = req_path(rq);
  if (str_eq(path, "/")) path = "/index.html";
  const char *enc = NULL;
  const char *ae = req_header(rq, "Accept-Encoding");
  const struct static_file *f = strstr(path, "..") ? NULL : static_lookup(path, ae, &enc);
  if (!f) {
    /* a missing asset is a 404; any other path is a dashboard route */
    const char *slash = strrchr(path, '/');
    bool has_ext = slash && strchr(slash, '.');
    if (has_ext && !str_eq(path, "/index.html"))
      return reply_errf(rp, ERR_RESOURCE_DOES_NOT_EXIST, "no such file %s", path);
    path = "/index.html";
    f = static_lookup(path, ae, &enc);
    if (!f) {
      reply_bytes(rp, 200, "text/html; charset=utf-8", not_built, sizeof not_built - 1, true);
      return reply_header(rp, "Cache-Control", "no-cache");
    }
  }
  reply_bytes(rp, 200, static_content_type(path), f->data, f->len, true);
  reply_header(rp, "Cache-Control", str_has_prefix(path, "/assets/")
                                        ? "public, max-age=31536000, immutable"
                                        : "no-cache");
  reply_header(rp, "Vary", "Accept-Encoding");
  reply_header(rp, "X-Content-Type-Options", "nosniff");
  if (enc) reply_header(rp, "Content-Encoding", enc);
  return 0;
}
