/* cli/models: `kiln models` — the model registry from the shell over the
 * MLflow REST API with the stored credentials: list, show, versions,
 * promote (stage transition) and alias. Tables for people, --json for
 * scripts (the server's answer as is). */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "internal.h"

#define ML "/api/2.0/mlflow/"

static const char USAGE[] =
    "usage: kiln models list [--filter EXPR] [--order-by KEY [ASC|DESC]]... [--max-results N] [--json]\n"
    "       kiln models show NAME [--json]\n"
    "       kiln models versions NAME [--max-results N] [--json]\n"
    "       kiln models promote NAME VERSION STAGE [--archive-existing] [--json]\n"
    "       kiln models alias NAME ALIAS VERSION [--json]\n"
    "       kiln models push FILE --name NAME [--description TEXT] [--tag KEY=VALUE]... [--chunk-size BYTES] [--json]\n"
    "       kiln models download NAME VERSION [-o FILE]\n"
    "       kiln models lineage NAME VERSION [--json]\n";

#define MAX_OPT 16
struct margs {
  const char *pos[4];
  int npos;
  const char *filter, *max_results;
  const char *order_by[MAX_OPT];
  int norder;
  const char *name, *description, *output, *chunk_size;
  const char *tags[MAX_OPT * 4];
  int ntags;
  bool json, archive;
};

static int parse(int argc, char **argv, struct margs *a) {
  memset(a, 0, sizeof *a);
  for (int i = 0; i < argc; i++) {
    const char *s = argv[i];
    if (s[0] != '-' || s[1] == 0) {
      if (a->npos >= 4) goto bad;
      a->pos[a->npos++] = s;
      continue;
    }
    if (str_eq(s, "--json")) { a->json = true; continue; }
    if (str_eq(s, "--archive-existing")) { a->archive = true; continue; }
    if (str_eq(s, "--help") || str_eq(s, "-h")) {
      fputs(USAGE, stdout);
      return 1;
    }
    const char *eq = strchr(s, '=');
    size_t n = eq ? (size_t)(eq - s) : strlen(s);
    const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
#define IS(name) (strlen(name) == n && strncmp(s, name, n) == 0)
    if (!(IS("--filter") || IS("--order-by") || IS("--max-results") || IS("--name") || IS("--description") ||
          IS("--tag") || IS("-o") || IS("--output") || IS("--chunk-size"))) {
      fprintf(stderr, "kiln: unknown option '%.*s'\n%s", (int)n, s, USAGE);
      return 2;
    }
    if (!v) {
      fprintf(stderr, "kiln: %.*s needs a value\n%s", (int)n, s, USAGE);
      return 2;
    }
    if (IS("--filter")) a->filter = v;
    else if (IS("--max-results")) a->max_results = v;
    else if (IS("--name")) a->name = v;
    else if (IS("--description")) a->description = v;
    else if (IS("-o") || IS("--output")) a->output = v;
    else if (IS("--chunk-size")) a->chunk_size = v;
    else if (IS("--tag")) {
      if (a->ntags >= MAX_OPT * 4) goto bad;
      a->tags[a->ntags++] = v;
    }
    else {
      if (a->norder >= MAX_OPT) goto bad;
      a->order_by[a->norder++] = v;
    }
#undef IS
  }
  return 0;
bad:
  fprintf(stderr, "kiln: too many arguments\n%s", USAGE);
  return 2;
}

static const char *jstr(json_t *o, const char *k) {
  const char *v = json_string_value(json_object_get(o, k));
  return v ? v : "";
}

static int64_t jint(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  return json_is_integer(v) ? json_integer_value(v) : 0;
}

/* "path?k=v&k=v..." with every value escaped; NULL values are left out. */
static char *query(const char *path, const char *const *kv, int n) {
  struct buf b;
  buf_init(&b);
  buf_puts(&b, path);
  char sep = '?';
  for (int i = 0; i + 1 < n; i += 2) {
    if (!kv[i + 1]) continue;
    char *e = cli_escape(kv[i + 1]);
    if (!e) {
      buf_fini(&b);
      return NULL;
    }
    buf_printf(&b, "%c%s=%s", sep, kv[i], e);
    free(e);
    sep = '&';
  }
  return buf_steal(&b);
}

static int get(struct cli_client *cl, const char *path, const char *const *kv, int n, json_t **out) {
  char *url = query(path, kv, n);
  if (!url) return fprintf(stderr, "kiln: out of memory\n"), 1;
  int rc = cli_call(cl, "GET", url, NULL, out);
  free(url);
  return rc;
}

/* "1 (Production), 3 (Staging)" */
static void latest_text(json_t *versions, char *out, size_t cap) {
  size_t n = 0, i;
  json_t *v;
  out[0] = 0;
  json_array_foreach(versions, i, v) {
    int k = snprintf(out + n, cap - n, "%sv%s %s", n ? ", " : "", jstr(v, "version"), jstr(v, "current_stage"));
    if (k < 0 || (size_t)k >= cap - n) break;
    n += (size_t)k;
  }
  if (!out[0]) str_copy(out, cap, "-");
}

static void aliases_text(json_t *aliases, char *out, size_t cap) {
  size_t n = 0, i;
  json_t *a;
  out[0] = 0;
  json_array_foreach(aliases, i, a) {
    int k = snprintf(out + n, cap - n, "%s@%s=v%s", n ? ", " : "", jstr(a, "alias"), jstr(a, "version"));
    if (k < 0 || (size_t)k >= cap - n) break;
    n += (size_t)k;
  }
  if (!out[0]) str_copy(out, cap, "-");
}

static int list(struct cli_client *cl, const struct margs *a) {
  const char *kv[2 * (3 + MAX_OPT)];
  int n = 0;
  kv[n++] = "filter", kv[n++] = a->filter;
  kv[n++] = "max_results", kv[n++] = a->max_results;
  for (int i = 0; i < a->norder; i++) kv[n++] = "order_by", kv[n++] = a->order_by[i];
  json_t *ans;
  if (get(cl, ML "registered-models/search", kv, n, &ans)) return 1;
  if (a->json) {
    cli_print_json(ans);
    json_decref(ans);
    return 0;
  }
  json_t *rows = json_array();
  json_array_append_new(rows, cli_row("NAME", "LATEST", "ALIASES", "UPDATED (UTC)", NULL));
  size_t i;
  json_t *m;
  json_array_foreach(json_object_get(ans, "registered_models"), i, m) {
    char t[32], latest[256], al[256];
    cli_fmt_time(jint(m, "last_updated_timestamp"), t);
    latest_text(json_object_get(m, "latest_versions"), latest, sizeof latest);
    aliases_text(json_object_get(m, "aliases"), al, sizeof al);
    json_array_append_new(rows, cli_row(jstr(m, "name"), latest, al, t, NULL));
  }
  cli_print_table(rows);
  if (json_object_get(ans, "next_page_token"))
    fprintf(stderr, "kiln: more models exist; raise --max-results or narrow --filter\n");
  json_decref(rows);
  json_decref(ans);
  return 0;
}

static int show(struct cli_client *cl, const struct margs *a) {
  const char *kv[] = {"name", a->pos[0]};
  json_t *ans;
  if (get(cl, ML "registered-models/get", kv, 2, &ans)) return 1;
  if (a->json) {
    cli_print_json(ans);
    json_decref(ans);
    return 0;
  }
  json_t *m = json_object_get(ans, "registered_model");
  char c[32], u[32], al[512];
  cli_fmt_time(jint(m, "creation_timestamp"), c);
  cli_fmt_time(jint(m, "last_updated_timestamp"), u);
  aliases_text(json_object_get(m, "aliases"), al, sizeof al);
  printf("name:        %s\n", jstr(m, "name"));
  printf("description: %s\n", *jstr(m, "description") ? jstr(m, "description") : "-");
  printf("created:     %s UTC\nupdated:     %s UTC\n", c, u);
  printf("aliases:     %s\n", al);
  size_t i;
  json_t *x;
  json_array_foreach(json_object_get(m, "tags"), i, x) printf("tag:         %s=%s\n", jstr(x, "key"), jstr(x, "value"));
  json_t *rows = json_array();
  json_array_append_new(rows, cli_row("VERSION", "STAGE", "STATUS", "SOURCE", NULL));
  json_array_foreach(json_object_get(m, "latest_versions"), i, x)
    json_array_append_new(rows, cli_row(jstr(x, "version"), jstr(x, "current_stage"), jstr(x, "status"),
                                        jstr(x, "source"), NULL));
  printf("\nlatest versions per stage:\n");
  cli_print_table(rows);
  json_decref(rows);
  json_decref(ans);
  return 0;
}

static int versions(struct cli_client *cl, const struct margs *a) {
  /* the name is quoted for the filter: ' doubled */
  struct buf f;
  buf_init(&f);
  buf_puts(&f, "name = '");
  for (const char *p = a->pos[0]; *p; p++) buf_append(&f, *p == '\'' ? "''" : p, *p == '\'' ? 2 : 1);
  buf_puts(&f, "'");
  const char *kv[] = {"filter", f.data, "max_results", a->max_results};
  json_t *ans;
  int rc = get(cl, ML "model-versions/search", kv, 4, &ans);
  buf_fini(&f);
  if (rc) return rc;
  if (a->json) {
    cli_print_json(ans);
    json_decref(ans);
    return 0;
  }
  json_t *vs = json_object_get(ans, "model_versions");
  if (json_array_size(vs) == 0) {
    /* no versions, or no such model: say which */
    json_t *m;
    const char *kv2[] = {"name", a->pos[0]};
    if (get(cl, ML "registered-models/get", kv2, 2, &m)) {
      json_decref(ans);
      return 1;
    }
    json_decref(m);
  }
  json_t *rows = json_array();
  json_array_append_new(rows, cli_row("VERSION", "STAGE", "STATUS", "ALIASES", "CREATED (UTC)", "RUN", NULL));
  size_t i;
  json_t *v;
  json_array_foreach(vs, i, v) {
    char t[32], al[256] = "";
    size_t n = 0, j;
    json_t *s;
    json_array_foreach(json_object_get(v, "aliases"), j, s) {
      int k = snprintf(al + n, sizeof al - n, "%s@%s", n ? "," : "", json_string_value(s));
      if (k < 0 || (size_t)k >= sizeof al - n) break;
      n += (size_t)k;
    }
    cli_fmt_time(jint(v, "creation_timestamp"), t);
    json_array_append_new(rows, cli_row(jstr(v, "version"), jstr(v, "current_stage"), jstr(v, "status"),
                                        al[0] ? al : "-", t, *jstr(v, "run_id") ? jstr(v, "run_id") : "-", NULL));
  }
  cli_print_table(rows);
  if (json_object_get(ans, "next_page_token"))
    fprintf(stderr, "kiln: more versions exist; raise --max-results\n");
  json_decref(rows);
  json_decref(ans);
  return 0;
}

/* ---- push and download: the resumable upload API ------------------------------------------ *
 * An interrupted push is resumed by running it again: the upload id is kept
 * in ~/.config/kiln/uploads.json under the file's identity (server, model
 * name, size, SHA-256), and the server says how many bytes it already has. */

#define PUSH_STATE "uploads.json"
#define PUSH_DEFAULT_CHUNK (8u << 20)
#define PUSH_MAX_CHUNK (256u << 20)

static json_t *state_load(char path[2048]) {
  if (cli_config_path(PUSH_STATE, path, 2048)) return json_object();
  json_t *s = json_load_file(path, 0, NULL);
  if (!json_is_object(s)) {
    json_decref(s);
    s = json_object();
  }
  return s;
}

static void state_save(const char *path, json_t *s) {
  char tmp[2100];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  mode_t old = umask(077);
  int rc = json_dump_file(s, tmp, JSON_COMPACT);
  umask(old);
  if (rc || rename(tmp, path)) fprintf(stderr, "kiln: cannot save the upload state in %s\n", path);
}

static void human(uint64_t n, char out[32]) {
  if (n >= (1ull << 30)) snprintf(out, 32, "%.1f GiB", (double)n / (double)(1ull << 30));
  else if (n >= (1ull << 20)) snprintf(out, 32, "%.1f MiB", (double)n / (double)(1ull << 20));
  else if (n >= 1024) snprintf(out, 32, "%.1f KiB", (double)n / 1024.0);
  else snprintf(out, 32, "%llu B", (unsigned long long)n);
}

static void progress(uint64_t done, uint64_t total) {
  char a[32], b[32];
  human(done, a);
  human(total, b);
  int pct = total ? (int)(done * 100 / total) : 100;
  int bars = pct * 30 / 100;
  fprintf(stderr, "\r[%.*s%.*s] %3d%%  %s / %s ", bars, "##############################", 30 - bars,
          "                              ", pct, a, b);
  fflush(stderr);
}

static int file_sha(FILE *f, uint64_t *size, char out[65]) {
  struct sha256 h;
  sha256_init(&h);
  char *blk = malloc(1u << 20);
  if (!blk) return -1;
  size_t n;
  *size = 0;
  while ((n = fread(blk, 1, 1u << 20, f)) > 0) {
    sha256_update(&h, blk, n);
    *size += n;
  }
  free(blk);
  if (ferror(f)) return -1;
  uint8_t d[32];
  sha256_final(&h, d);
  hex_encode(out, d, 32);
  return 0;
}

static void print_version(json_t *v, bool as_json) {
  if (as_json) {
    cli_print_json(v);
    return;
  }
  printf("%s version %s: %s\n", jstr(v, "name"), jstr(v, "version"), jstr(v, "status"));
  printf("  format:    %s (%s)\n", jstr(v, "format"), jstr(v, "framework"));
  printf("  sha256:    %s\n  size:      %lld bytes\n", jstr(v, "sha256"), (long long)jint(v, "size"));
  if (json_is_true(json_object_get(v, "unsafe")))
    printf("  WARNING:   unsafe pickle let through by the project's setting\n");
  if (*jstr(v, "status_message")) printf("  message:   %s\n", jstr(v, "status_message"));
}

static int push(struct cli_client *cl, const struct margs *a) {
  const char *file = a->pos[0];
  uint64_t chunk = PUSH_DEFAULT_CHUNK;
  if (a->chunk_size) {
    int64_t v;
    if (str_to_i64(a->chunk_size, &v) || v < 1 || (uint64_t)v > PUSH_MAX_CHUNK) {
      fprintf(stderr, "kiln: --chunk-size takes 1 to %u bytes\n", PUSH_MAX_CHUNK);
      return 2;
    }
    chunk = (uint64_t)v;
  }
  for (int i = 0; i < a->ntags; i++)
    if (!strchr(a->tags[i], '=') || a->tags[i][0] == '=') {
      fprintf(stderr, "kiln: --tag takes KEY=VALUE, got '%s'\n", a->tags[i]);
      return 2;
    }
  FILE *f = fopen(file, "rb");
  if (!f) {
    fprintf(stderr, "kiln: cannot open %s: %s\n", file, strerror(errno));
    return 1;
  }
  uint64_t size = 0;
  char sha[65];
  if (file_sha(f, &size, sha) || size == 0) {
    fprintf(stderr, "kiln: %s: %s\n", file, size == 0 ? "the file is empty" : "cannot read it");
    fclose(f);
    return 1;
  }
  char spath[2048];
  json_t *state = state_load(spath);
  char *key = NULL;
  {
    struct buf k;
    buf_init(&k);
    buf_printf(&k, "%s|%s|%llu|%s", cli_client_url(cl), a->name, (unsigned long long)size, sha);
    key = buf_steal(&k);
  }
  int rc = 1;
  json_t *ans = NULL;
  char path[1024], *uid = NULL;
  uint64_t received = 0;
  /* a session left by an interrupted push of this very file */
  const char *known = json_string_value(json_object_get(state, key));
  if (known) {
    snprintf(path, sizeof path, "/api/v1/models/uploads/%s", known);
    long st = cli_client_call(cl, "GET", path, NULL, &ans);
    if (st == 200) {
      uid = strdup(known);
      received = (uint64_t)jint(json_object_get(ans, "upload"), "received");
      fprintf(stderr, "kiln: resuming upload %s at byte %llu\n", uid, (unsigned long long)received);
    }
    json_decref(ans);
    ans = NULL;
  }
  if (!uid) {
    json_t *tags = json_array();
    for (int i = 0; i < a->ntags; i++) {
      const char *eq = strchr(a->tags[i], '=');
      json_t *t = json_pack("{s:s%, s:s}", "key", a->tags[i], (size_t)(eq - a->tags[i]), "value", eq + 1);
      json_array_append_new(tags, t);
    }
    json_t *req = json_pack("{s:s, s:I, s:s, s:o}", "name", a->name, "size", (json_int_t)size, "sha256", sha, "tags", tags);
    if (a->description) json_object_set_new(req, "description", json_string(a->description));
    rc = cli_call(cl, "POST", "/api/v1/models/uploads", req, &ans);
    json_decref(req);
    if (rc) goto done;
    uid = strdup(jstr(json_object_get(ans, "upload"), "upload_id"));
    json_decref(ans);
    ans = NULL;
    json_object_set_new(state, key, json_string(uid));
    state_save(spath, state);
  }
  snprintf(path, sizeof path, "/api/v1/models/uploads/%s", uid);
  char *blk = malloc((size_t)chunk);
  if (!blk) goto done;
  const char *stop_env = getenv("KILN_TEST_PUSH_STOP_AFTER_CHUNKS"); /* tests simulate an interruption */
  int64_t stop_after = -1, sent_chunks = 0;
  if (stop_env && *stop_env) str_to_i64(stop_env, &stop_after);
  int retries = 0;
  progress(received, size);
  while (received < size) {
    if (stop_after >= 0 && sent_chunks >= stop_after) {
      fprintf(stderr, "\nkiln: upload interrupted; run the same command again to resume\n");
      rc = 1;
      free(blk);
      goto done;
    }
    size_t n = size - received < chunk ? (size_t)(size - received) : (size_t)chunk;
    if (fseeko(f, (off_t)received, SEEK_SET) || fread(blk, 1, n, f) != n) {
      fprintf(stderr, "\nkiln: %s changed while it was being uploaded\n", file);
      rc = 1;
      free(blk);
      goto done;
    }
    char range[128];
    snprintf(range, sizeof range, "Content-Range: bytes %llu-%llu/%llu", (unsigned long long)received,
             (unsigned long long)(received + n - 1), (unsigned long long)size);
    const char *hdrs[] = {range, NULL};
    long st = cli_client_put_bytes(cl, path, hdrs, blk, n, &ans);
    if (st == 200) {
      received = (uint64_t)jint(json_object_get(ans, "upload"), "received");
      sent_chunks++;
      retries = 0;
    } else if (st == 409 && retries++ < 3) {
      /* the server has a different count (another push, a lost answer): ask it */
      json_decref(ans);
      ans = NULL;
      if (cli_client_call(cl, "GET", path, NULL, &ans) == 200)
        received = (uint64_t)jint(json_object_get(ans, "upload"), "received");
    } else {
      fputc('\n', stderr);
      if (st) cli_report_error(st, ans);
      fprintf(stderr, "kiln: upload interrupted at byte %llu; run the same command again to resume\n",
              (unsigned long long)received);
      rc = 1;
      free(blk);
      goto done;
    }
    json_decref(ans);
    ans = NULL;
    progress(received, size);
  }
  free(blk);
  fputc('\n', stderr);
  snprintf(path, sizeof path, "/api/v1/models/uploads/%s/complete", uid);
  long st = cli_client_call(cl, "POST", path, NULL, &ans);
  if (st != 0) {
    /* registered or refused, the session is over either way */
    json_object_del(state, key);
    state_save(spath, state);
  }
  if (st == 200) {
    print_version(json_object_get(ans, "model_version"), a->json);
    rc = 0;
  } else {
    rc = cli_report_error(st, ans);
    json_t *v = json_object_get(ans, "model_version");
    if (v && !a->json) fprintf(stderr, "kiln: %s version %s is %s\n", jstr(v, "name"), jstr(v, "version"), jstr(v, "status"));
  }
done:
  json_decref(ans);
  json_decref(state);
  free(key);
  free(uid);
  fclose(f);
  return rc;
}

static int download(struct cli_client *cl, const struct margs *a) {
  char *n = cli_escape(a->pos[0]), *v = cli_escape(a->pos[1]);
  char path[2048], out[2048], tmp[2100];
  snprintf(path, sizeof path, "/api/v1/models/%s/versions/%s/download", n ? n : "", v ? v : "");
  free(n);
  free(v);
  if (a->output) str_copy(out, sizeof out, a->output);
  else {
    /* NAME-vVERSION.model, the name made safe as a file name */
    size_t k = 0;
    for (const char *p = a->pos[0]; *p && k < 200; p++)
      out[k++] = (*p == '/' || *p == '\\' || (unsigned char)*p < 0x20) ? '_' : *p;
    out[k] = 0;
    if (out[0] == '.') out[0] = '_';
    snprintf(out + k, sizeof out - k, "-v%.20s.model", a->pos[1]);
  }
  snprintf(tmp, sizeof tmp, "%s.part", out);
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    fprintf(stderr, "kiln: cannot write %s: %s\n", tmp, strerror(errno));
    return 1;
  }
  char sha[65];
  json_t *err = NULL;
  long st = cli_client_download(cl, path, f, sha, &err);
  bool ok = st == 200 && fflush(f) == 0 && fsync(fileno(f)) == 0;
  fclose(f);
  if (!ok || rename(tmp, out)) {
    unlink(tmp);
    if (st != 200 && st) cli_report_error(st, err);
    json_decref(err);
    return 1;
  }
  json_decref(err);
  printf("%s (sha256 %s)\n", out, sha);
  return 0;
}

/* One row per edge (FROM, EDGE, TO), then nodes no edge reaches. */
static int lineage(struct cli_client *cl, const struct margs *a) {
  char *n = cli_escape(a->pos[0]), *v = cli_escape(a->pos[1]);
  char *path = n && v ? malloc(strlen(n) + strlen(v) + 64) : NULL;
  if (path) snprintf(path, strlen(n) + strlen(v) + 64, "/api/v1/models/%s/versions/%s/lineage", n, v);
  free(n);
  free(v);
  if (!path) return fprintf(stderr, "kiln: out of memory\n"), 1;
  json_t *ans = NULL;
  int rc = cli_call(cl, "GET", path, NULL, &ans);
  free(path);
  if (rc) return rc;
  if (a->json) {
    cli_print_json(ans);
    json_decref(ans);
    return 0;
  }
  json_t *nodes = json_object_get(ans, "nodes"), *label = json_object(), *used = json_object();
  size_t i;
  json_t *x;
  json_array_foreach(nodes, i, x) {
    char text[1200];
    snprintf(text, sizeof text, "%s %.1000s%s", jstr(x, "type"), jstr(x, "label"),
             json_is_true(json_object_get(x, "missing")) ? " (missing)" : "");
    json_object_set_new(label, jstr(x, "id"), json_string(text));
  }
  json_t *rows = json_array();
  json_array_append_new(rows, cli_row("FROM", "EDGE", "TO", NULL));
  json_array_foreach(json_object_get(ans, "edges"), i, x) {
    const char *f = jstr(x, "from"), *t = jstr(x, "to");
    json_object_set_new(used, f, json_true());
    json_object_set_new(used, t, json_true());
    json_array_append_new(rows, cli_row(json_string_value(json_object_get(label, f)), jstr(x, "type"),
                                        json_string_value(json_object_get(label, t)), NULL));
  }
  json_array_foreach(nodes, i, x) {
    if (!json_object_get(used, jstr(x, "id")))
      json_array_append_new(rows, cli_row(json_string_value(json_object_get(label, jstr(x, "id"))), "-", "-", NULL));
  }
  cli_print_table(rows);
  json_decref(rows);
  json_decref(label);
  json_decref(used);
  json_decref(ans);
  return 0;
}

int cli_models(int argc, char **argv) {
  const char *sub = argc > 0 ? argv[0] : "";
  struct margs a;
  int rc = parse(argc - (argc > 0), argv + (argc > 0), &a);
  if (rc) return rc == 1 ? 0 : rc;
  int want = str_eq(sub, "list") ? 0 : str_eq(sub, "show") || str_eq(sub, "versions") || str_eq(sub, "push") ? 1
             : str_eq(sub, "download") || str_eq(sub, "lineage")                                       ? 2
             : str_eq(sub, "promote") || str_eq(sub, "alias")                                          ? 3
                                                                                                       : -1;
  if (want < 0 || a.npos != want) {
    fputs(USAGE, stderr);
    return 2;
  }
  if (a.max_results) {
    int64_t mr;
    if (str_to_i64(a.max_results, &mr) || mr < 1) {
      fprintf(stderr, "kiln: --max-results takes a positive number\n");
      return 2;
    }
  }
  if (str_eq(sub, "push") && (!a.name || !*a.name)) {
    fprintf(stderr, "kiln: models push needs --name NAME\n%s", USAGE);
    return 2;
  }
  struct cli_client *cl = cli_client_open();
  if (!cl) return 1;
  json_t *ans = NULL;
  if (str_eq(sub, "push")) {
    rc = push(cl, &a);
  } else if (str_eq(sub, "download")) {
    rc = download(cl, &a);
  } else if (str_eq(sub, "list")) {
    rc = list(cl, &a);
  } else if (str_eq(sub, "show")) {
    rc = show(cl, &a);
  } else if (str_eq(sub, "versions")) {
    rc = versions(cl, &a);
  } else if (str_eq(sub, "lineage")) {
    rc = lineage(cl, &a);
  } else if (str_eq(sub, "promote")) {
    json_t *req = json_pack("{s:s, s:s, s:s, s:b}", "name", a.pos[0], "version", a.pos[1], "stage", a.pos[2],
                            "archive_existing_versions", a.archive);
    rc = cli_call(cl, "POST", ML "model-versions/transition-stage", req, &ans);
    json_decref(req);
    if (!rc) {
      json_t *v = json_object_get(ans, "model_version");
      if (a.json) cli_print_json(ans);
      else printf("%s version %s is now in %s%s\n", a.pos[0], jstr(v, "version"), jstr(v, "current_stage"),
                  a.archive ? " (the stage's other versions were archived)" : "");
    }
  } else {
    json_t *req = json_pack("{s:s, s:s, s:s}", "name", a.pos[0], "alias", a.pos[1], "version", a.pos[2]);
    rc = cli_call(cl, "POST", ML "registered-models/alias", req, &ans);
    json_decref(req);
    if (!rc) {
      if (a.json) {
        json_t *o = json_pack("{s:s, s:s, s:s}", "name", a.pos[0], "alias", a.pos[1], "version", a.pos[2]);
        cli_print_json(o);
        json_decref(o);
      } else printf("%s@%s now points at version %s\n", a.pos[0], a.pos[1], a.pos[2]);
    }
  }
  json_decref(ans);
  cli_client_close(cl);
  return rc;
}
