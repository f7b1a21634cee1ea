/* registry/multipart: a streaming multipart/form-data reader (RFC 7578)
 * for model uploads — parts are handed on as their bytes arrive, so a
 * file part of any size passes through a buffer of a few KiB. */
#include "registry/internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { MP_PREAMBLE, MP_AFTER_DELIM, MP_HEADERS, MP_BODY, MP_DONE };

struct mp_parser {
  char delim[80]; /* "\r\n--" boundary */
  size_t dlen;
  int state;
  struct buf pend; /* bytes not yet handed on: less than a delimiter in a body */
  const struct mp_callbacks *cb;
  void *ctx;
};

/* A Content-Type parameter's value (quoted or a token) into out. */
static bool ct_param(const char *ct, const char *key, char *out, size_t cap) {
  size_t kl = strlen(key);
  for (const char *p = strchr(ct, ';'); p; p = strchr(p + 1, ';')) {
    const char *q = p + 1;
    while (*q == ' ' || *q == '\t') q++;
    if (strncasecmp(q, key, kl) || q[kl] != '=') continue;
    q += kl + 1;
    size_t n = 0;
    if (*q == '"') {
      for (q++; *q && *q != '"'; q++) {
        if (*q == '\\' && q[1]) q++;
        if (n + 1 >= cap) return false;
        out[n++] = *q;
      }
      if (*q != '"') return false;
    } else {
      for (; *q && *q != ';' && *q != ' ' && *q != '\t'; q++) {
        if (n + 1 >= cap) return false;
        out[n++] = *q;
      }
    }
    out[n] = 0;
    return true;
  }
  return false;
}

struct mp_parser *mp_parser_new(const char *content_type, const struct mp_callbacks *cb, void *ctx, struct err *e) {
  char boundary[72];
  if (!content_type || strncasecmp(content_type, "multipart/form-data", 19) ||
      !ct_param(content_type, "boundary", boundary, sizeof boundary) || !boundary[0]) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "multipart/form-data needs a boundary of 1 to 70 characters");
    return NULL;
  }
  struct mp_parser *p = calloc(1, sizeof *p);
  if (!p) {
    err_set(e, ERR_NO_MEMORY, "out of memory");
    return NULL;
  }
  p->dlen = (size_t)snprintf(p->delim, sizeof p->delim, "\r\n--%s", boundary);
  p->cb = cb;
  p->ctx = ctx;
  buf_init(&p->pend);
  /* the first delimiter has no CRLF before it: pretend it had */
  if (buf_append(&p->pend, "\r\n", 2)) {
    mp_parser_free(p);
    err_set(e, ERR_NO_MEMORY, "out of memory");
    return NULL;
  }
  return p;
}

void mp_parser_free(struct mp_parser *p) {
  if (!p) return;
  buf_fini(&p->pend);
  free(p);
}

static void consume(struct mp_parser *p, size_t n) {
  memmove(p->pend.data, p->pend.data + n, p->pend.len - n);
  p->pend.len -= n;
  p->pend.data[p->pend.len] = 0;
}

/* name="..." or filename="..." of a Content-Disposition line. */
static void cd_param(const char *line, size_t len, const char *key, char *out, size_t cap) {
  out[0] = 0;
  size_t kl = strlen(key);
  for (size_t i = 0; i + kl + 1 < len; i++) {
    if ((i == 0 || line[i - 1] == ';' || line[i - 1] == ' ' || line[i - 1] == '\t') &&
        !strncasecmp(line + i, key, kl) && line[i + kl] == '=') {
      size_t j = i + kl + 1, n = 0;
      bool quoted = j < len && line[j] == '"';
      if (quoted) j++;
      for (; j < len; j++) {
        char ch = line[j];
        if (quoted && ch == '"') break;
        if (!quoted && (ch == ';' || ch == ' ')) break;
        if (quoted && ch == '\\' && j + 1 < len) ch = line[++j];
        if (n + 1 < cap) out[n++] = ch;
      }
      out[n] = 0;
      return;
    }
  }
}

static int headers_done(struct mp_parser *p, size_t hlen, struct err *e) {
  char name[256] = "", filename[256] = "";
  bool disposition = false;
  const char *h = p->pend.data;
  for (size_t i = 0; i < hlen;) {
    const char *eol = memchr(h + i, '\n', hlen - i);
    size_t l = eol ? (size_t)(eol - (h + i)) : hlen - i;
    size_t ll = l && h[i + l - 1] == '\r' ? l - 1 : l;
    if (ll > 20 && !strncasecmp(h + i, "Content-Disposition:", 20)) {
      disposition = true;
      cd_param(h + i + 20, ll - 20, "name", name, sizeof name);
      cd_param(h + i + 20, ll - 20, "filename", filename, sizeof filename);
    }
    i += l + 1;
  }
  if (!disposition || !name[0])
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "a multipart part lacks Content-Disposition: form-data; name=...");
  return p->cb->on_part_begin(p->ctx, name, filename, e);
}

static int step(struct mp_parser *p, struct err *e) {
  for (;;) {
    char *d = p->pend.data;
    size_t n = p->pend.len;
    switch (p->state) {
    case MP_PREAMBLE: {
      char *at = n ? memmem(d, n, p->delim, p->dlen) : NULL;
      if (!at) {
        if (n >= p->dlen) consume(p, n - (p->dlen - 1));
        if (p->pend.len > MP_MAX_HEADERS) consume(p, p->pend.len - p->dlen);
        return 0;
      }
      consume(p, (size_t)(at - d) + p->dlen);
      p->state = MP_AFTER_DELIM;
      break;
    }
    case MP_AFTER_DELIM:
      if (n < 2) return 0;
      if (d[0] == '-' && d[1] == '-') {
        p->state = MP_DONE;
        break;
      }
      if (d[0] != '\r' || d[1] != '\n')
        return err_set(e, ERR_INVALID_PARAMETER_VALUE, "malformed multipart body: junk after a boundary");
      consume(p, 2);
      p->state = MP_HEADERS;
      break;
    case MP_HEADERS: {
      if (n >= 2 && d[0] == '\r' && d[1] == '\n')
        return err_set(e, ERR_INVALID_PARAMETER_VALUE, "a multipart part lacks Content-Disposition: form-data; name=...");
      char *end = n ? memmem(d, n, "\r\n\r\n", 4) : NULL;
      if (!end) {
        if (n > MP_MAX_HEADERS)
          return err_set(e, ERR_INVALID_PARAMETER_VALUE, "a multipart part's headers are longer than %d bytes", MP_MAX_HEADERS);
        return 0;
      }
      size_t hl = (size_t)(end - d);
      int rc = headers_done(p, hl, e);
      if (rc) return rc;
      consume(p, hl + 4);
      p->state = MP_BODY;
      break;
    }
    case MP_BODY: {
      char *at = n ? memmem(d, n, p->delim, p->dlen) : NULL;
      if (!at) {
        if (n >= p->dlen) {
          size_t out = n - (p->dlen - 1);
          int rc = p->cb->on_data(p->ctx, d, out, e);
          if (rc) return rc;
          consume(p, out);
        }
        return 0;
      }
      size_t out = (size_t)(at - d);
      int rc = out ? p->cb->on_data(p->ctx, d, out, e) : 0;
      if (!rc) rc = p->cb->on_part_end(p->ctx, e);
      if (rc) return rc;
      consume(p, out + p->dlen);
      p->state = MP_AFTER_DELIM;
      break;
    }
    case MP_DONE: buf_reset(&p->pend); return 0;
    }
  }
}

int mp_parser_feed(struct mp_parser *p, const char *data, size_t n, struct err *e) {
  if (p->state == MP_DONE) return 0; /* the epilogue is ignored */
  if (buf_append(&p->pend, data, n)) return err_set(e, ERR_NO_MEMORY, "out of memory");
  return step(p, e);
}

int mp_parser_finish(struct mp_parser *p, struct err *e) {
  if (p->state != MP_DONE)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "the multipart body ended before its closing boundary (truncated upload?)");
  return 0;
}
