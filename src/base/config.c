/* base/config: resolves options from flags, then KILN_* environment, then an
 * optional `key = value` file, then defaults — and remembers which won. */
#include "base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct cfg_opt *cfg_find(struct cfg *c, const char *name, size_t len) {
  for (size_t i = 0; i < c->n; i++)
    if (strlen(c->opts[i].name) == len && strncmp(c->opts[i].name, name, len) == 0)
      return &c->opts[i];
  return NULL;
}

static int cfg_check(const struct cfg_opt *o, const char *v, const char *src, struct err *e) {
  uint64_t u;
  int64_t i;
  switch (o->type) {
  case CFG_INT:
    if (str_to_i64(v, &i)) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s %s: '%s' is not an integer", src, o->name, v);
    break;
  case CFG_SIZE:
    if (cfg_parse_size(v, &u)) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s %s: '%s' is not a size (e.g. 10m, 2g)", src, o->name, v);
    break;
  case CFG_BOOL:
    if (!str_eq(v, "true") && !str_eq(v, "false") && !str_eq(v, "1") && !str_eq(v, "0") &&
        !str_eq(v, "yes") && !str_eq(v, "no"))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s %s: '%s' is not true/false", src, o->name, v);
    break;
  case CFG_STR:
    break;
  }
  return 0;
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = 0;
  return s;
}

static int cfg_load_file(struct cfg *c, const char *path, struct err *e) {
  FILE *f = fopen(path, "r");
  if (!f) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "cannot open config file %s", path);
  /* Whole lines, however long: with a fixed buffer the tail of a long line
   * (a comment, say) was read as a line of its own. */
  char *line = NULL;
  size_t cap = 0;
  int lineno = 0, rc = 0;
  while (getline(&line, &cap, f) >= 0) {
    lineno++;
    char *s = trim(line);
    if (!*s || *s == '#') continue;
    char *eq = strchr(s, '=');
    if (!eq) {
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s:%d: expected key = value", path, lineno);
      break;
    }
    *eq = 0;
    char *k = trim(s), *v = trim(eq + 1);
    size_t vn = strlen(v);
    if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
      v[vn - 1] = 0;
      v++;
    }
    struct cfg_opt *o = cfg_find(c, k, strlen(k));
    if (!o) {
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s:%d: unknown option '%s'", path, lineno, k);
      break;
    }
    if (str_eq(o->source, "default")) {
      if ((rc = cfg_check(o, v, "config file", e))) break;
      o->value = arena_strdup(&c->arena, v);
      o->source = "file";
    }
  }
  free(line);
  fclose(f);
  return rc;
}

int cfg_load(struct cfg *c, struct cfg_opt *opts, size_t n, int argc, char **argv, struct err *e) {
  c->opts = opts;
  c->n = n;
  arena_init(&c->arena, 4096, 0);
  for (size_t i = 0; i < n; i++) {
    opts[i].value = opts[i].dflt;
    opts[i].source = "default";
  }
  const char *file = getenv("KILN_CONFIG");
  /* flags first: they win */
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!str_has_prefix(a, "--"))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "unexpected argument '%s'", a);
    a += 2;
    const char *eq = strchr(a, '=');
    size_t klen = eq ? (size_t)(eq - a) : strlen(a);
    const char *val = eq ? eq + 1 : NULL;
    if (klen == 6 && strncmp(a, "config", 6) == 0) {
      if (!val && i + 1 < argc) val = argv[++i];
      if (!val) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "--config needs a file");
      file = val;
      continue;
    }
    struct cfg_opt *o = cfg_find(c, a, klen);
    if (!o) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "unknown flag --%.*s (see --help)", (int)klen, a);
    if (!val) {
      if (o->type == CFG_BOOL && (i + 1 >= argc || str_has_prefix(argv[i + 1], "--"))) val = "true";
      else if (i + 1 < argc) val = argv[++i];
      else return err_set(e, ERR_INVALID_PARAMETER_VALUE, "flag --%s needs a value", o->name);
    }
    int rc = cfg_check(o, val, "flag", e);
    if (rc) return rc;
    o->value = val;
    o->source = "flag";
  }
  for (size_t i = 0; i < n; i++) {
    const char *v = opts[i].env ? getenv(opts[i].env) : NULL;
    if (v && str_eq(opts[i].source, "default")) {
      int rc = cfg_check(&opts[i], v, opts[i].env, e);
      if (rc) return rc;
      opts[i].value = v;
      opts[i].source = "env";
    }
  }
  if (file && *file) return cfg_load_file(c, file, e);
  return 0;
}

void cfg_fini(struct cfg *c) { arena_fini(&c->arena); }

static const struct cfg_opt *cfg_get(const struct cfg *c, const char *name) {
  return cfg_find((struct cfg *)c, name, strlen(name));
}

const char *cfg_str(const struct cfg *c, const char *name) {
  const struct cfg_opt *o = cfg_get(c, name);
  return o ? o->value : NULL;
}

int64_t cfg_int(const struct cfg *c, const char *name) {
  const struct cfg_opt *o = cfg_get(c, name);
  int64_t v = 0;
  uint64_t u = 0;
  if (!o || !o->value) return 0;
  if (o->type == CFG_SIZE) return cfg_parse_size(o->value, &u) ? 0 : (int64_t)u;
  return str_to_i64(o->value, &v) ? 0 : v;
}

bool cfg_bool(const struct cfg *c, const char *name) {
  const char *v = cfg_str(c, name);
  return str_eq(v, "true") || str_eq(v, "1") || str_eq(v, "yes");
}

int cfg_parse_size(const char *s, uint64_t *out) {
  if (!s || s[0] < '0' || s[0] > '9') return -ERR_INVALID_PARAMETER_VALUE;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno == ERANGE) return -ERR_INVALID_PARAMETER_VALUE; /* not silently UINT64_MAX */
  uint64_t mult = 1;
  if (*end) {
    switch (*end | 0x20) {
    case 'k': mult = 1ull << 10; break;
    case 'm': mult = 1ull << 20; break;
    case 'g': mult = 1ull << 30; break;
    default: return -ERR_INVALID_PARAMETER_VALUE;
    }
    end++;
    if ((*end | 0x20) == 'i') end++; /* 10k, 10kb, 10Ki, 10KiB; not 10kbb */
    if ((*end | 0x20) == 'b') end++;
    if (*end) return -ERR_INVALID_PARAMETER_VALUE;
  }
  if (v > UINT64_MAX / mult) return -ERR_INVALID_PARAMETER_VALUE;
  *out = v * mult;
  return 0;
}

void cfg_print_help(const struct cfg_opt *opts, size_t n, void *fp) {
  FILE *f = fp;
  for (size_t i = 0; i < n; i++)
    fprintf(f, "  --%-22s %s (env %s, default %s)\n", opts[i].name, opts[i].help,
            opts[i].env ? opts[i].env : "-", opts[i].dflt && *opts[i].dflt ? opts[i].dflt : "none");
  fprintf(f, "  --%-22s %s\n", "config FILE", "read `key = value` options from FILE (env KILN_CONFIG)");
}
