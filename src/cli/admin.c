/* cli/admin: `kiln admin SUBVERB` — operator tasks run against a store
 * directly, without a server (for now: audit-verify). */
#include "cli.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/auth.h"
#include "track/track.h"

static int usage_error(const char *fmt, const char *arg) {
  fputs("kiln admin: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs("\n", stderr);
  const struct cli_verb *v = cli_find("admin");
  if (v) fputs(v->usage, stderr);
  return 2;
}

/* --data DIR and --db URL, as `kiln server` takes them (also from KILN_DATA
 * and KILN_DB); a config file is not read, so server-only keys in it
 * cannot make an offline check fail. */
struct store_args {
  const char *data;
  const char *db;
};

static int parse_store_args(int argc, char **argv, struct store_args *out) {
  out->data = getenv("KILN_DATA");
  out->db = getenv("KILN_DB");
  if (!out->data || !*out->data) out->data = "./data";
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char **dst = NULL;
    const char *val = NULL;
    if (str_eq(a, "--data") || str_eq(a, "--db")) {
      dst = str_eq(a, "--data") ? &out->data : &out->db;
      if (i + 1 >= argc) return usage_error("flag %s needs a value", a);
      val = argv[++i];
    } else if (str_has_prefix(a, "--data=")) {
      dst = &out->data;
      val = a + 7;
    } else if (str_has_prefix(a, "--db=")) {
      dst = &out->db;
      val = a + 5;
    } else {
      return usage_error("unexpected argument '%s'", a);
    }
    if (!*val) return usage_error("flag %s needs a value", a);
    *dst = val;
  }
  return 0;
}

/* Opens and migrates the store; refuses to create a fresh one, which would
 * "verify" an empty log in the wrong place. */
static int open_store(const struct store_args *sa, struct db **out, struct err *e) {
  char url[4200];
  const char *u = sa->db;
  if (!u || !*u) {
    if (snprintf(url, sizeof url, "sqlite:%s/kiln.db", sa->data) >= (int)sizeof url)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "data directory path too long");
    u = url;
  }
  const char *path = str_has_prefix(u, "sqlite:") ? u + 7 : (strstr(u, "://") ? NULL : u);
  struct stat st;
  if (path && stat(path, &st) != 0)
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "no Kiln store at %s: %s", path,
                   strerror(errno));
  struct db_opts o = {.max_readers = 2, .synchronous_full = true};
  int rc = db_open(out, u, &o, e);
  if (rc) return rc;
  if ((rc = db_migrate(*out, e)) < 0) {
    db_close(*out);
    *out = NULL;
    return rc;
  }
  return 0;
}

/* Entries removed from the end leave an intact, shorter chain; only a copy
 * of the last seq and hash kept elsewhere shows that, so print them. */
static void print_head(struct db *db) {
  struct err e;
  struct db_conn *c = db_reader_acquire(db, &e);
  if (!c) return;
  struct db_stmt *s =
      db_prepare(c, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", &e);
  if (s && db_step(s, &e) == DB_ROW) {
    const char *h = db_col_text(s, 1);
    printf("last entry: seq %lld, hash %s (keep a copy elsewhere to detect a truncated tail)\n",
           (long long)db_col_i64(s, 0), h ? h : "");
  }
  if (s) db_stmt_done(s);
  db_reader_release(db, c);
}

static int admin_audit_verify(int argc, char **argv) {
  struct store_args sa;
  int rc = parse_store_args(argc, argv, &sa);
  if (rc) return rc;
  struct err e = {0};
  if (base_init()) {
    fprintf(stderr, "kiln admin: cannot initialise libsodium\n");
    return 1;
  }
  log_set_quiet(true);
  struct db *db = NULL;
  if (open_store(&sa, &db, &e)) {
    fprintf(stderr, "kiln admin audit-verify: %s\n", e.msg);
    return 1;
  }
  int64_t checked = 0, bad = 0;
  rc = auth_audit_verify(db, &checked, &bad, &e);
  if (rc == 0) {
    printf("audit log intact: %lld entries\n", (long long)checked);
    print_head(db);
  } else if (e.code == ERR_DATA_CORRUPTED) {
    printf("audit log BROKEN at entry %lld: %s\n", (long long)bad, e.msg);
  } else {
    fprintf(stderr, "kiln admin audit-verify: %s\n", e.msg);
  }
  db_close(db);
  return rc == 0 ? 0 : 1;
}

/* A new JWT signing key; tokens signed with the old one stay valid for one
 * access-token lifetime, so nobody is logged out. Safe while a server runs:
 * servers read the keys from the store on every verification. */
static int admin_rotate_signing_key(int argc, char **argv) {
  struct store_args sa;
  int rc = parse_store_args(argc, argv, &sa);
  if (rc) return rc;
  struct err e = {0};
  if (base_init()) return 1;
  log_set_quiet(true);
  struct db *db = NULL;
  struct auth *a = NULL;
  char kid[AUTH_ID_LEN + 1];
  /* the server's master key, when it has one, seals the new key like the
   * server would: KILN_MASTER_KEY or KILN_MASTER_KEY_FILE */
  char hex[65];
  struct auth_opts ao = {0};
  if (cli_master_key(getenv("KILN_MASTER_KEY_FILE"), hex, &ao.has_master_key, &e) == 0 && ao.has_master_key)
    hex_decode(ao.master_key, sizeof ao.master_key, hex);
  sodium_memzero(hex, sizeof hex);
  if (e.code != ERR_OK || open_store(&sa, &db, &e) || auth_open(&a, db, &ao, &e) ||
      auth_signing_key_rotate(a, kid, &e)) {
    fprintf(stderr, "kiln admin rotate-signing-key: %s\n", e.msg);
    rc = 1;
  } else {
    struct auth_audit_entry en = {.actor = "cli", .action = "auth.signing_key_rotate", .target = kid,
                                  .outcome = "success"};
    auth_audit_record(db, &en, &e);
    printf("new signing key %s%s; tokens signed with the previous key stay valid until they expire\n", kid,
           ao.has_master_key ? " (sealed with the master key)" : "");
  }
  sodium_memzero(ao.master_key, sizeof ao.master_key);
  auth_close(a);
  if (db) db_close(db);
  return rc;
}

/* "1.5 MiB" */
static void human_bytes(uint64_t n, char *out, size_t cap) {
  static const char *const unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)n;
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, u++;
  if (u == 0) snprintf(out, cap, "%llu bytes", (unsigned long long)n);
  else snprintf(out, cap, "%.1f %s", v, unit[u]);
}

/* Permanent deletion, as MLflow's `mlflow gc`: runs and experiments in the
 * deleted stage (for at least --older-than seconds) go for good, their
 * artifacts drop their blob references, then the blob store's GC removes
 * blobs nothing references any more (put at least --grace seconds ago, so
 * an upload a running server has stored but not yet recorded survives).
 * Safe while a server runs: every change goes through the store's writer
 * and SQLite's locking. */
static int admin_gc(int argc, char **argv) {
  const char *blobs = getenv("KILN_BLOBS");
  int64_t older = 0, grace = 600;
  char **rest = calloc((size_t)argc + 1, sizeof *rest);
  int nrest = 0;
  if (!rest) return 1;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    int64_t *num = str_eq(a, "--older-than") ? &older : str_eq(a, "--grace") ? &grace : NULL;
    if (num || str_eq(a, "--blobs")) {
      if (i + 1 >= argc) {
        free(rest);
        return usage_error("flag %s needs a value", a);
      }
      const char *v = argv[++i];
      if (!num) {
        blobs = v;
      } else if (str_to_i64(v, num) || *num < 0) {
        free(rest);
        return usage_error("%s takes a number of seconds (0 or more)", a);
      }
      continue;
    }
    rest[nrest++] = argv[i];
  }
  struct store_args sa;
  int rc = parse_store_args(nrest, rest, &sa);
  free(rest);
  if (rc) return rc;
  struct err e = {0};
  if (base_init()) return 1;
  log_set_quiet(true);
  char url[4200];
  if (!blobs || !*blobs) {
    snprintf(url, sizeof url, "file:%s/blobs", sa.data);
    blobs = url;
  }
  struct db *db = NULL;
  struct blob_store *bs = NULL;
  struct track_gc_report tr;
  struct blob_gc_report br;
  rc = 1;
  if (open_store(&sa, &db, &e) || blob_open(&bs, blobs, db, NULL, &e)) goto out;
  if (track_purge_deleted(db, time_wall_ms() - older * 1000, &tr, &e)) goto out;
  if (blob_gc_report(bs, grace, &br, &e)) goto out;
  char h[32];
  human_bytes(br.bytes, h, sizeof h);
  printf("purged: %lld runs, %lld experiments, %lld artifacts, %lld multipart uploads, %lld logged models\n",
         (long long)tr.runs, (long long)tr.experiments, (long long)tr.artifacts, (long long)tr.uploads,
         (long long)tr.models);
  printf("blobs removed: %d, bytes reclaimed: %llu (%s)\n", br.removed, (unsigned long long)br.bytes, h);
  rc = 0;
out:
  if (rc) fprintf(stderr, "kiln admin gc: %s\n", e.msg);
  if (bs) blob_close(bs);
  if (db) db_close(db);
  return rc;
}

static const struct {
  const char *name;
  int (*run)(int argc, char **argv);
} admin_verbs[] = {
    {"gc", admin_gc},
    {"audit-verify", admin_audit_verify},
    {"rotate-signing-key", admin_rotate_signing_key},
};

int cli_admin(int argc, char **argv) {
  if (argc < 1) return usage_error("%s", "missing sub-command");
  if (str_eq(argv[0], "--help") || str_eq(argv[0], "-h") || str_eq(argv[0], "help")) {
    char *a[] = {"admin"};
    return cli_help(1, a);
  }
  for (size_t i = 0; i < sizeof admin_verbs / sizeof admin_verbs[0]; i++) {
    if (!str_eq(argv[0], admin_verbs[i].name)) continue;
    for (int j = 1; j < argc; j++) {
      if (str_eq(argv[j], "--help") || str_eq(argv[j], "-h")) {
        char *a[] = {"admin"};
        return cli_help(1, a);
      }
    }
    return admin_verbs[i].run(argc - 1, argv + 1);
  }
  return usage_error("unknown sub-command '%s'", argv[0]);
}
