/* cli/client: the client verbs — login, logout, whoami, keys, projects —
 * talking to a server over HTTP (libcurl). Credentials live in
 * ~/.config/kiln/credentials (mode 0600): the server URL, and either the
 * refresh token of a login or an API key. */
#include "cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "base/base.h"
#include "internal.h"

#define BODY_MAX (8u << 20)

struct creds {
  char url[1024];
  char refresh[128];
  char api_key[128];
  char access[2048];
};

static int creds_path(char *out, size_t cap) {
  const char *cfg = getenv("KILN_CONFIG_DIR");
  if (cfg && *cfg) return snprintf(out, cap, "%s/credentials", cfg) < (int)cap ? 0 : -1;
  const char *xdg = getenv("XDG_CONFIG_HOME");
  const char *home = getenv("HOME");
  if (xdg && *xdg) return snprintf(out, cap, "%s/kiln/credentials", xdg) < (int)cap ? 0 : -1;
  if (!home || !*home) return -1;
  return snprintf(out, cap, "%s/.config/kiln/credentials", home) < (int)cap ? 0 : -1;
}

static void creds_load(struct creds *c) {
  memset(c, 0, sizeof *c);
  char path[2048];
  if (creds_path(path, sizeof path) == 0) {
    FILE *f = fopen(path, "r");
    if (f) {
      char line[1400];
      while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char *eq = strchr(line, '=');
        if (!eq) continue;
        *eq = 0;
        if (str_eq(line, "url")) str_copy(c->url, sizeof c->url, eq + 1);
        else if (str_eq(line, "refresh_token")) str_copy(c->refresh, sizeof c->refresh, eq + 1);
        else if (str_eq(line, "api_key")) str_copy(c->api_key, sizeof c->api_key, eq + 1);
      }
      fclose(f);
    }
  }
  /* the environment wins over the file */
  const char *v;
  if ((v = getenv("KILN_URL")) && *v) str_copy(c->url, sizeof c->url, v);
  if ((v = getenv("KILN_API_KEY")) && *v) {
    str_copy(c->api_key, sizeof c->api_key, v);
    c->refresh[0] = 0;
  }
  if (!c->url[0]) str_copy(c->url, sizeof c->url, "http://127.0.0.1:8080");
  size_t n = strlen(c->url);
  while (n && c->url[n - 1] == '/') c->url[--n] = 0;
}

static int mkdirs_for(const char *file) {
  char d[2048];
  str_copy(d, sizeof d, file);
  for (char *p = d + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(d, 0700) && errno != EEXIST) return -1;
    *p = '/';
  }
  return 0;
}

static int creds_save(const struct creds *c) {
  char path[2048], tmp[2100];
  if (creds_path(path, sizeof path)) return -1;
  if (mkdirs_for(path)) return -1;
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  unlink(tmp);
  mode_t old = umask(077);
  FILE *f = fopen(tmp, "w");
  umask(old);
  if (!f) return -1;
  fchmod(fileno(f), 0600);
  fprintf(f, "url=%s\n", c->url);
  if (c->refresh[0]) fprintf(f, "refresh_token=%s\n", c->refresh);
  if (c->api_key[0]) fprintf(f, "api_key=%s\n", c->api_key);
  if (fflush(f) || fsync(fileno(f))) {
    fclose(f);
    return -1;
  }
  fclose(f);
  return rename(tmp, path);
}

/* ---- HTTP ---------------------------------------------------------------- */

static size_t on_body(char *p, size_t sz, size_t n, void *arg) {
  struct buf *b = arg;
  if (b->len + sz * n > BODY_MAX || buf_append(b, p, sz * n)) return 0;
  return sz * n;
}

/* Returns the HTTP status (0 on a transport failure, with a message printed)
 * and the parsed JSON body in *out (may be NULL). */
static long http_call(const struct creds *c, const char *method, const char *path, json_t *body,
                      const char *bearer, json_t **out) {
  *out = NULL;
  CURL *h = curl_easy_init();
  if (!h) return 0;
  char url[2048];
  snprintf(url, sizeof url, "%s%s", c->url, path);
  struct buf resp;
  buf_init(&resp);
  struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
  char auth[2200];
  if (bearer && *bearer) {
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
    hdrs = curl_slist_append(hdrs, auth);
  }
  char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  if (payload) curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  if (rc == CURLE_OK) {
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (resp.len) *out = json_loadb(resp.data, resp.len, 0, NULL);
  } else {
    fprintf(stderr, "kiln: cannot reach %s: %s\n", c->url, curl_easy_strerror(rc));
  }
  free(payload);
  curl_slist_free_all(hdrs);
  memset(auth, 0, sizeof auth);
  curl_easy_cleanup(h);
  buf_fini(&resp);
  return status;
}

static int report_error(long status, json_t *body) {
  const char *code = json_string_value(json_object_get(body, "error_code"));
  const char *msg = json_string_value(json_object_get(body, "message"));
  if (status) fprintf(stderr, "kiln: %s (%ld): %s\n", code ? code : "HTTP_ERROR", status, msg ? msg : "");
  return 1;
}

/* A bearer for this invocation: the API key, or an access token from the
 * stored refresh token (which rotates, so it is saved again). */
static int authenticate(struct creds *c) {
  if (c->api_key[0]) {
    str_copy(c->access, sizeof c->access, c->api_key);
    return 0;
  }
  if (!c->refresh[0]) {
    fprintf(stderr, "kiln: not signed in; run `kiln login`\n");
    return 1;
  }
  json_t *out, *req = json_pack("{s:s}", "refresh_token", c->refresh);
  long st = http_call(c, "POST", "/api/v1/auth/token", req, NULL, &out);
  json_decref(req);
  if (st != 200) {
    if (st == 401) fprintf(stderr, "kiln: your login has expired or was revoked; run `kiln login`\n");
    else report_error(st, out);
    json_decref(out);
    return 1;
  }
  str_copy(c->access, sizeof c->access, json_string_value(json_object_get(out, "access_token")));
  str_copy(c->refresh, sizeof c->refresh, json_string_value(json_object_get(out, "refresh_token")));
  json_decref(out);
  if (creds_save(c)) {
    fprintf(stderr, "kiln: cannot save credentials\n");
    return 1;
  }
  return 0;
}

static void print_json(json_t *v) {
  char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  if (s) puts(s);
  free(s);
}

static const char *opt(int argc, char **argv, const char *name) {
  size_t n = strlen(name);
  for (int i = 0; i < argc; i++) {
    if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=') return argv[i] + n + 1;
    if (str_eq(argv[i], name) && i + 1 < argc) return argv[i + 1];
  }
  return NULL;
}

static bool flag(int argc, char **argv, const char *name) {
  for (int i = 0; i < argc; i++)
    if (str_eq(argv[i], name)) return true;
  return false;
}

static int read_secret(const char *prompt, char *out, size_t cap, bool from_stdin) {
  struct termios old, quiet;
  bool tty = !from_stdin && isatty(STDIN_FILENO);
  if (tty) {
    fprintf(stderr, "%s", prompt);
    tcgetattr(STDIN_FILENO, &old);
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  char *r = fgets(out, (int)cap, stdin);
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    fprintf(stderr, "\n");
  }
  if (!r) return -1;
  out[strcspn(out, "\r\n")] = 0;
  return 0;
}

/* ---- verbs --------------------------------------------------------------- */

int cli_login(int argc, char **argv) {
  struct creds c;
  creds_load(&c);
  const char *url = opt(argc, argv, "--url");
  if (url) str_copy(c.url, sizeof c.url, url);
  const char *key = opt(argc, argv, "--api-key");
  if (key) {
    memset(c.refresh, 0, sizeof c.refresh);
    str_copy(c.api_key, sizeof c.api_key, key);
    str_copy(c.access, sizeof c.access, key);
  } else {
    const char *user = opt(argc, argv, "--username");
    char ubuf[256], pw[512];
    if (!user) {
      fprintf(stderr, "username: ");
      if (!fgets(ubuf, sizeof ubuf, stdin)) return 2;
      ubuf[strcspn(ubuf, "\r\n")] = 0;
      user = ubuf;
    }
    if (read_secret("password: ", pw, sizeof pw, flag(argc, argv, "--password-stdin"))) return 2;
    json_t *out, *req = json_pack("{s:s, s:s}", "username", user, "password", pw);
    long st = http_call(&c, "POST", "/api/v1/auth/token", req, NULL, &out);
    json_decref(req);
    memset(pw, 0, sizeof pw);
    if (st != 200) {
      report_error(st, out);
      json_decref(out);
      return 1;
    }
    c.api_key[0] = 0;
    str_copy(c.refresh, sizeof c.refresh, json_string_value(json_object_get(out, "refresh_token")));
    str_copy(c.access, sizeof c.access, json_string_value(json_object_get(out, "access_token")));
    json_decref(out);
  }
  json_t *me;
  long st = http_call(&c, "GET", "/api/v1/auth/whoami", NULL, c.access, &me);
  if (st != 200) {
    report_error(st, me);
    json_decref(me);
    return 1;
  }
  if (creds_save(&c)) {
    fprintf(stderr, "kiln: cannot save credentials\n");
    json_decref(me);
    return 1;
  }
  printf("signed in to %s as %s\n", c.url,
         json_string_value(json_object_get(json_object_get(me, "user"), "username")));
  json_decref(me);
  return 0;
}

int cli_logout(int argc, char **argv) {
  (void)argc;
  (void)argv;
  struct creds c;
  creds_load(&c);
  if (c.refresh[0]) {
    json_t *out, *req = json_pack("{s:s}", "refresh_token", c.refresh);
    http_call(&c, "POST", "/api/v1/auth/logout", req, NULL, &out);
    json_decref(req);
    json_decref(out);
  }
  c.refresh[0] = c.api_key[0] = 0;
  if (creds_save(&c)) return 1;
  printf("signed out of %s\n", c.url);
  return 0;
}

/* GET/POST/DELETE one path with the stored credentials; prints JSON. */
static int call_print(const char *method, const char *path, json_t *body) {
  struct creds c;
  creds_load(&c);
  if (authenticate(&c)) {
    json_decref(body);
    return 1;
  }
  json_t *out;
  long st = http_call(&c, method, path, body, c.access, &out);
  json_decref(body);
  int rc = 0;
  if (st != 200) rc = report_error(st, out);
  else print_json(out);
  json_decref(out);
  return rc;
}

int cli_whoami(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return call_print("GET", "/api/v1/auth/whoami", NULL);
}

static json_t *scopes_arg(const char *csv) {
  json_t *a = json_array();
  char tmp[128];
  str_copy(tmp, sizeof tmp, csv);
  for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save))
    json_array_append_new(a, json_string(t));
  return a;
}

int cli_keys(int argc, char **argv) {
  const char *sub = argc > 0 ? argv[0] : "";
  char path[256];
  if (str_eq(sub, "list")) return call_print("GET", "/api/v1/api-keys", NULL);
  if (str_eq(sub, "create")) {
    const char *name = opt(argc - 1, argv + 1, "--name");
    if (!name) {
      fprintf(stderr, "usage: kiln keys create --name NAME [--scopes read,write] [--project ID]\n");
      return 2;
    }
    json_t *b = json_pack("{s:s}", "name", name);
    const char *scopes = opt(argc - 1, argv + 1, "--scopes");
    const char *project = opt(argc - 1, argv + 1, "--project");
    if (scopes) json_object_set_new(b, "scopes", scopes_arg(scopes));
    if (project) json_object_set_new(b, "project_id", json_string(project));
    return call_print("POST", "/api/v1/api-keys", b);
  }
  if ((str_eq(sub, "revoke") || str_eq(sub, "rotate")) && argc >= 2) {
    snprintf(path, sizeof path, "/api/v1/api-keys/%s%s", argv[1], str_eq(sub, "rotate") ? "/rotate" : "");
    if (str_eq(sub, "revoke")) return call_print("DELETE", path, NULL);
    json_t *b = json_object();
    const char *grace = opt(argc - 2, argv + 2, "--grace");
    int64_t g;
    if (grace) {
      if (str_to_i64(grace, &g)) {
        fprintf(stderr, "kiln: --grace takes seconds\n");
        json_decref(b);
        return 2;
      }
      json_object_set_new(b, "grace_seconds", json_integer(g));
    }
    return call_print("POST", path, b);
  }
  fprintf(stderr, "usage: kiln keys list | create --name N [--scopes S] [--project ID] | revoke ID | rotate ID [--grace S]\n");
  return 2;
}

int cli_projects(int argc, char **argv) {
  const char *sub = argc > 0 ? argv[0] : "";
  if (str_eq(sub, "list")) return call_print("GET", "/api/v1/projects", NULL);
  if (str_eq(sub, "create")) {
    const char *org = opt(argc - 1, argv + 1, "--org");
    const char *name = opt(argc - 1, argv + 1, "--name");
    if (!org || !name) {
      fprintf(stderr, "usage: kiln projects create --org ORG_ID --name NAME [--description TEXT]\n");
      return 2;
    }
    json_t *b = json_pack("{s:s, s:s}", "org_id", org, "name", name);
    const char *d = opt(argc - 1, argv + 1, "--description");
    if (d) json_object_set_new(b, "description", json_string(d));
    return call_print("POST", "/api/v1/projects", b);
  }
  if (str_eq(sub, "members") && argc >= 2) {
    char path[256];
    snprintf(path, sizeof path, "/api/v1/projects/%s/members", argv[1]);
    if (argc == 2) return call_print("GET", path, NULL);
    const char *user = opt(argc - 2, argv + 2, "--user");
    const char *role = opt(argc - 2, argv + 2, "--role");
    if (user && flag(argc - 2, argv + 2, "--remove")) {
      snprintf(path, sizeof path, "/api/v1/projects/%s/members/%s", argv[1], user);
      return call_print("DELETE", path, NULL);
    }
    if (user && role) {
      snprintf(path, sizeof path, "/api/v1/projects/%s/members/%s", argv[1], user);
      return call_print("PUT", path, json_pack("{s:s}", "role", role));
    }
  }
  fprintf(stderr, "usage: kiln projects list | create --org ID --name N | members PROJECT_ID [--user ID --role R | --user ID --remove]\n");
  return 2;
}

/* ---- for the other client verbs (cli/internal.h) -------------------------- */

struct cli_client {
  struct creds c;
};

struct cli_client *cli_client_open(void) {
  struct cli_client *cl = calloc(1, sizeof *cl);
  if (!cl) return NULL;
  creds_load(&cl->c);
  if (authenticate(&cl->c)) {
    cli_client_close(cl);
    return NULL;
  }
  return cl;
}

void cli_client_close(struct cli_client *cl) {
  if (!cl) return;
  memset(cl, 0, sizeof *cl); /* tokens */
  free(cl);
}

long cli_client_call(struct cli_client *cl, const char *method, const char *path, json_t *body,
                     json_t **out) {
  return http_call(&cl->c, method, path, body, cl->c.access, out);
}

int cli_report_error(long status, json_t *body) { return report_error(status, body); }

void cli_print_json(json_t *v) { print_json(v); }

/* ---- raw bodies: model uploads and downloads --------------------------------------- */

const char *cli_client_url(const struct cli_client *cl) { return cl->c.url; }

int cli_config_path(const char *file, char *out, size_t cap) {
  char creds[2048];
  if (creds_path(creds, sizeof creds)) return -1;
  char *slash = strrchr(creds, '/');
  if (!slash) return -1;
  *slash = 0;
  if (snprintf(out, cap, "%s/%s", creds, file) >= (int)cap) return -1;
  return mkdirs_for(out);
}

long cli_client_put_bytes(struct cli_client *cl, const char *path, const char *const *headers, const void *data,
                          size_t n, json_t **out) {
  *out = NULL;
  CURL *h = curl_easy_init();
  if (!h) return 0;
  char url[4096], auth[2200];
  snprintf(url, sizeof url, "%s%s", cl->c.url, path);
  struct buf resp;
  buf_init(&resp);
  struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/octet-stream");
  hdrs = curl_slist_append(hdrs, "Expect:");
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", cl->c.access);
  hdrs = curl_slist_append(hdrs, auth);
  for (int i = 0; headers && headers[i]; i++) hdrs = curl_slist_append(hdrs, headers[i]);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, data);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 600L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  if (rc == CURLE_OK) {
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (resp.len) *out = json_loadb(resp.data, resp.len, 0, NULL);
  } else {
    fprintf(stderr, "\nkiln: cannot reach %s: %s\n", cl->c.url, curl_easy_strerror(rc));
  }
  curl_slist_free_all(hdrs);
  memset(auth, 0, sizeof auth);
  curl_easy_cleanup(h);
  buf_fini(&resp);
  return status;
}

struct dl {
  FILE *f;
  struct buf err; /* the body of an error answer */
  long status;
  CURL *h;
  struct sha256 sha;
  char sha_hdr[65];
};

static size_t dl_header(char *p, size_t sz, size_t n, void *arg) {
  struct dl *d = arg;
  size_t len = sz * n;
  if (len > 15 && !strncasecmp(p, "X-Kiln-Sha256:", 14)) {
    const char *v = p + 14;
    while (*v == ' ') v++;
    size_t k = 0;
    while (k < 64 && v + k < p + len && v[k] != '\r' && v[k] != '\n') k++;
    memcpy(d->sha_hdr, v, k);
    d->sha_hdr[k] = 0;
  }
  return len;
}

static size_t dl_body(char *p, size_t sz, size_t n, void *arg) {
  struct dl *d = arg;
  if (!d->status) curl_easy_getinfo(d->h, CURLINFO_RESPONSE_CODE, &d->status);
  if (d->status != 200) return on_body(p, sz, n, &d->err);
  sha256_update(&d->sha, p, sz * n);
  return fwrite(p, sz, n, d->f) == n ? sz * n : 0;
}

long cli_client_download(struct cli_client *cl, const char *path, FILE *f, char sha_out[65], json_t **err_out) {
  *err_out = NULL;
  sha_out[0] = 0;
  struct dl d = {.f = f};
  buf_init(&d.err);
  sha256_init(&d.sha);
  d.h = curl_easy_init();
  if (!d.h) return 0;
  char url[4096], auth[2200];
  snprintf(url, sizeof url, "%s%s", cl->c.url, path);
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", cl->c.access);
  struct curl_slist *hdrs = curl_slist_append(NULL, auth);
  curl_easy_setopt(d.h, CURLOPT_URL, url);
  curl_easy_setopt(d.h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(d.h, CURLOPT_WRITEFUNCTION, dl_body);
  curl_easy_setopt(d.h, CURLOPT_WRITEDATA, &d);
  curl_easy_setopt(d.h, CURLOPT_HEADERFUNCTION, dl_header);
  curl_easy_setopt(d.h, CURLOPT_HEADERDATA, &d);
  curl_easy_setopt(d.h, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(d.h);
  long status = 0;
  if (rc == CURLE_OK) {
    curl_easy_getinfo(d.h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200 && d.err.len) *err_out = json_loadb(d.err.data, d.err.len, 0, NULL);
    if (status == 200) {
      uint8_t dg[32];
      sha256_final(&d.sha, dg);
      hex_encode(sha_out, dg, 32);
      if (d.sha_hdr[0] && !str_eq(d.sha_hdr, sha_out)) {
        fprintf(stderr, "kiln: the download's sha256 %s is not the server's %s\n", sha_out, d.sha_hdr);
        status = 0;
      }
    }
  } else {
    fprintf(stderr, "kiln: cannot download from %s: %s\n", cl->c.url, curl_easy_strerror(rc));
  }
  curl_slist_free_all(hdrs);
  memset(auth, 0, sizeof auth);
  curl_easy_cleanup(d.h);
  buf_fini(&d.err);
  return status;
}

/* ---- predictions: a prebuilt JSON text, one response header kept ---------- */

struct hdr_want {
  const char *name;
  char *val;
  size_t cap;
};

static size_t want_header(char *p, size_t sz, size_t n, void *arg) {
  struct hdr_want *w = arg;
  size_t len = sz * n, k = strlen(w->name);
  if (len > k && p[k] == ':' && !strncasecmp(p, w->name, k)) {
    const char *v = p + k + 1, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
    size_t m = (size_t)(end - v) < w->cap - 1 ? (size_t)(end - v) : w->cap - 1;
    memcpy(w->val, v, m);
    w->val[m] = 0;
  }
  return len;
}

long cli_client_post_text(struct cli_client *cl, const char *path, const char *body, size_t n, const char *hname,
                          char *hval, size_t hcap, json_t **out) {
  *out = NULL;
  if (hname && hcap) hval[0] = 0;
  CURL *h = curl_easy_init();
  if (!h) return 0;
  char url[4096], auth[2200];
  snprintf(url, sizeof url, "%s%s", cl->c.url, path);
  struct buf resp;
  buf_init(&resp);
  struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
  hdrs = curl_slist_append(hdrs, "Expect:");
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", cl->c.access);
  hdrs = curl_slist_append(hdrs, auth);
  struct hdr_want w = {hname, hval, hcap};
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
  if (hname && hcap) {
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, want_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &w);
  }
  /* a first request loads the model; a big batch may take a while */
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 300L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  if (rc == CURLE_OK) {
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (resp.len) *out = json_loadb(resp.data, resp.len, 0, NULL);
  } else if (rc == CURLE_WRITE_ERROR) {
    fprintf(stderr, "kiln: the answer from %s is larger than %u MiB; send fewer rows at a time\n", cl->c.url,
            BODY_MAX >> 20);
  } else {
    fprintf(stderr, "kiln: cannot reach %s: %s\n", cl->c.url, curl_easy_strerror(rc));
  }
  curl_slist_free_all(hdrs);
  memset(auth, 0, sizeof auth);
  curl_easy_cleanup(h);
  buf_fini(&resp);
  return status;
}
