/* tests for auth/audit: the hash chain (append, verify, tampering by SQL
 * found), listing with filters and paging, input checks, and the real
 * `kiln admin audit-verify` binary on a tampered store. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth/auth.h"

static char dir[64];
static struct db *db;

static int exec_job(struct db_conn *c, void *arg, struct err *e) { return db_exec(c, arg, e); }

static void sql(const char *q) {
  struct err e;
  cr_assert_eq(db_write(db, exec_job, (void *)q, &e), 0, "%s: %s", q, e.msg);
}

static int64_t count_rows(void) {
  struct err e;
  struct db_conn *c = db_reader_acquire(db, &e);
  struct db_stmt *s = db_prepare(c, "SELECT COUNT(*) FROM audit_log", &e);
  cr_assert_eq(db_step(s, &e), DB_ROW);
  int64_t n = db_col_i64(s, 0);
  db_stmt_done(s);
  db_reader_release(db, c);
  return n;
}

/* A fresh store per name, so one test can tamper with several. */
static void open_store(const char *name) {
  char url[160];
  snprintf(url, sizeof url, "sqlite:%s/%s", dir, name);
  struct err e;
  cr_assert_eq(db_open(&db, url, NULL, &e), 0, "%s", e.msg);
  cr_assert_geq(db_migrate(db, &e), 0, "%s", e.msg);
}

static void setup(void) {
  log_set_quiet(true);
  cr_assert_eq(base_init(), 0);
  str_copy(dir, sizeof dir, "/tmp/kiln-audit-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  db = NULL;
}

static void teardown(void) {
  if (db) db_close(db);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(audit, .init = setup, .fini = teardown);

/* n entries: actors u0/u1/u2 in turn, actions a.even/a.odd, detail {"i": i}. */
static void append_n(int n) {
  for (int i = 1; i <= n; i++) {
    char actor[8], detail[32], target[16];
    snprintf(actor, sizeof actor, "u%d", i % 3);
    snprintf(detail, sizeof detail, "{\"i\": %d}", i);
    snprintf(target, sizeof target, "t%d", i);
    struct auth_audit_entry en = {.actor = actor,
                                  .action = i % 2 ? "a.odd" : "a.even",
                                  .target = i % 5 ? target : NULL,
                                  .client_addr = "192.0.2.1",
                                  .request_id = "req",
                                  .outcome = "success",
                                  .detail = i % 7 ? detail : NULL};
    struct err e;
    cr_assert_eq(auth_audit_record(db, &en, &e), 0, "%s", e.msg);
  }
}

static void expect_intact(int64_t n) {
  int64_t checked = -1, bad = -1;
  struct err e;
  cr_assert_eq(auth_audit_verify(db, &checked, &bad, &e), 0, "%s", e.msg);
  cr_assert_eq(checked, n);
  cr_assert_eq(bad, 0);
}

static void expect_broken(int64_t at, const char *why, int64_t checked_before) {
  int64_t checked = -1, bad = -1;
  struct err e;
  cr_assert_eq(auth_audit_verify(db, &checked, &bad, &e), -ERR_DATA_CORRUPTED,
               "expected a break: %s", why);
  cr_assert_eq(e.code, ERR_DATA_CORRUPTED);
  cr_assert_eq(bad, at, "broken at %lld, want %lld: %s", (long long)bad, (long long)at, e.msg);
  cr_assert(strstr(e.msg, why) != NULL, "'%s' should say '%s'", e.msg, why);
  cr_assert_eq(checked, checked_before, "entries checked before the break");
}

Test(audit, an_untouched_chain_verifies) {
  open_store("kiln.db");
  expect_intact(0);
  append_n(20);
  expect_intact(20);
  /* the chain links: seq 1 starts from zeros, each prev_hash is the previous hash */
  struct err e;
  struct db_conn *c = db_reader_acquire(db, &e);
  struct db_stmt *s = db_prepare(c, "SELECT seq, prev_hash, hash FROM audit_log ORDER BY seq", &e);
  char prev[65] = "0000000000000000000000000000000000000000000000000000000000000000";
  int64_t want = 1;
  while (db_step(s, &e) == DB_ROW) {
    cr_assert_eq(db_col_i64(s, 0), want++);
    cr_assert_str_eq(db_col_text(s, 1), prev);
    cr_assert(sha256_hex_valid(db_col_text(s, 2)));
    str_copy(prev, sizeof prev, db_col_text(s, 2));
  }
  db_stmt_done(s);
  db_reader_release(db, c);
  cr_assert_eq(want, 21);
}

Test(audit, an_edited_field_is_found_at_its_entry) {
  /* every hashed field, including NULL <-> "" which must differ */
  const char *edits[] = {
      "UPDATE audit_log SET actor = 'mallory' WHERE seq = 8",
      "UPDATE audit_log SET action = 'a.odd' WHERE seq = 8",
      "UPDATE audit_log SET target = 'elsewhere' WHERE seq = 8",
      "UPDATE audit_log SET target = '' WHERE seq = 5", /* was NULL */
      "UPDATE audit_log SET client_addr = '10.0.0.1' WHERE seq = 8",
      "UPDATE audit_log SET request_id = NULL WHERE seq = 8",
      "UPDATE audit_log SET outcome = 'failure' WHERE seq = 8",
      "UPDATE audit_log SET detail = '{\"i\": 9}' WHERE seq = 8",
      "UPDATE audit_log SET detail = '{\"i\":8}' WHERE seq = 8", /* same JSON, other bytes */
      "UPDATE audit_log SET ts = ts + 1 WHERE seq = 8",
      "UPDATE audit_log SET hash = prev_hash WHERE seq = 8",
      "UPDATE audit_log SET prev_hash = hash WHERE seq = 8",
  };
  for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
    char name[32];
    snprintf(name, sizeof name, "edit-%zu.db", i);
    open_store(name);
    append_n(20);
    expect_intact(20);
    sql(edits[i]);
    int64_t at = strstr(edits[i], "seq = 5") ? 5 : 8;
    char why[64];
    snprintf(why, sizeof why, "entry %lld was edited", (long long)at);
    cr_log_info("%s", edits[i]);
    expect_broken(at, why, at - 1);
    db_close(db);
    db = NULL;
  }
}

Test(audit, a_deleted_middle_entry_is_found) {
  open_store("kiln.db");
  append_n(20);
  sql("DELETE FROM audit_log WHERE seq = 10");
  expect_broken(10, "entry after 9 was deleted", 9);
}

Test(audit, a_deleted_first_entry_is_found) {
  open_store("kiln.db");
  append_n(5);
  sql("DELETE FROM audit_log WHERE seq = 1");
  expect_broken(1, "first entries were deleted", 0);
}

Test(audit, a_deletion_hidden_by_renumbering_is_still_found) {
  open_store("kiln.db");
  append_n(20);
  sql("DELETE FROM audit_log WHERE seq = 10");
  sql("UPDATE audit_log SET seq = seq - 1 WHERE seq > 10");
  /* seq is hashed, so the renumbered entry no longer matches */
  expect_broken(10, "entry 10 was edited", 9);
}

Test(audit, a_deleted_entry_relinked_by_hand_is_found) {
  open_store("kiln.db");
  append_n(20);
  /* pointing 11 at 9's hash does not hide the hole: the seq gap shows first */
  sql("DELETE FROM audit_log WHERE seq = 10");
  sql("UPDATE audit_log SET prev_hash = (SELECT hash FROM audit_log WHERE seq = 9) WHERE seq = 11");
  expect_broken(10, "entry after 9 was deleted", 9);
}

/* What the chain cannot see, stated as a test so the claim stays true: cut
 * entries from the end and what remains is a valid, shorter chain. Only an
 * anchor kept elsewhere (the last seq and hash that `kiln admin
 * audit-verify` prints) reveals it. */
Test(audit, a_truncated_tail_is_not_detectable_without_an_anchor) {
  open_store("kiln.db");
  append_n(20);
  sql("DELETE FROM audit_log WHERE seq = 20");
  expect_intact(19);
  sql("DELETE FROM audit_log WHERE seq > 15");
  expect_intact(15);
  /* appending continues the shortened chain */
  append_n(1);
  expect_intact(16);
}

Test(audit, invalid_entries_are_refused_and_nothing_is_written) {
  open_store("kiln.db");
  struct err e;
  const char *bad_details[] = {"not json", "[1, 2]", "\"a string\"", "42", "", "{\"a\": 1", "null"};
  for (size_t i = 0; i < sizeof bad_details / sizeof bad_details[0]; i++) {
    struct auth_audit_entry en = {.action = "x.y", .outcome = "success", .detail = bad_details[i]};
    cr_assert_eq(auth_audit_record(db, &en, &e), -ERR_INVALID_PARAMETER_VALUE, "detail %s",
                 bad_details[i]);
    cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  }
  struct auth_audit_entry no_action = {.outcome = "success"};
  cr_assert_eq(auth_audit_record(db, &no_action, &e), -ERR_INVALID_PARAMETER_VALUE);
  struct auth_audit_entry no_outcome = {.action = "x.y"};
  cr_assert_eq(auth_audit_record(db, &no_outcome, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(auth_audit_record(db, NULL, &e), -ERR_INVALID_PARAMETER_VALUE);
  char big[400];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  struct auth_audit_entry long_target = {.action = "x.y", .outcome = "success", .target = big};
  cr_assert_eq(auth_audit_record(db, &long_target, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert(strstr(e.msg, "target") != NULL, "%s", e.msg);
  struct auth_audit_entry long_actor = {.action = "x.y", .outcome = "success", .actor = big};
  cr_assert_eq(auth_audit_record(db, &long_actor, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(count_rows(), 0);

  struct auth_audit_entry ok = {
      .action = "x.y", .outcome = "success", .detail = "{\"nested\": {\"a\": [1]}}"};
  cr_assert_eq(auth_audit_record(db, &ok, &e), 0, "%s", e.msg);
  expect_intact(1);
}

struct failing_change {
  bool fail;
};

static int change_with_audit(struct db_conn *c, void *arg, struct err *e) {
  struct failing_change *fc = arg;
  struct auth_audit_entry en = {.actor = "u1", .action = "thing.change", .outcome = "success"};
  int rc = auth_audit_append(c, &en, e);
  if (rc) return rc;
  return fc->fail ? err_set(e, ERR_CONFLICT, "the change itself failed") : 0;
}

Test(audit, an_entry_commits_or_rolls_back_with_its_change) {
  open_store("kiln.db");
  struct err e;
  struct failing_change ok = {false}, bad = {true};
  cr_assert_eq(db_write(db, change_with_audit, &ok, &e), 0, "%s", e.msg);
  cr_assert_eq(db_write(db, change_with_audit, &bad, &e), -ERR_CONFLICT);
  cr_assert_eq(db_write(db, change_with_audit, &ok, &e), 0, "%s", e.msg);
  cr_assert_eq(count_rows(), 2, "the failed change left no entry");
  expect_intact(2); /* and no gap in seq */
}

static json_t *list(const struct auth_audit_filter *f, int64_t *next) {
  struct err e;
  json_t *a = auth_audit_list(db, f, next, &e);
  cr_assert_not_null(a, "%s", e.msg);
  return a;
}

static int64_t seq_at(json_t *a, size_t i) {
  return json_integer_value(json_object_get(json_array_get(a, i), "seq"));
}

Test(audit, list_filters_by_actor_action_and_time) {
  open_store("kiln.db");
  append_n(20);
  struct auth_audit_filter f = {.max_results = 1000};
  int64_t next = -1;
  json_t *a = list(&f, &next);
  cr_assert_eq(json_array_size(a), 20);
  cr_assert_eq(next, 0, "one page holds it all");
  for (size_t i = 0; i < 20; i++) cr_assert_eq(seq_at(a, i), 20 - (int64_t)i, "newest first");
  /* the shape of one entry */
  json_t *o = json_array_get(a, 6); /* seq 14 */
  cr_assert_eq(seq_at(a, 6), 14);
  cr_assert_str_eq(json_string_value(json_object_get(o, "actor")), "u2");
  cr_assert_str_eq(json_string_value(json_object_get(o, "action")), "a.even");
  cr_assert_str_eq(json_string_value(json_object_get(o, "target")), "t14");
  cr_assert_str_eq(json_string_value(json_object_get(o, "client_addr")), "192.0.2.1");
  cr_assert_str_eq(json_string_value(json_object_get(o, "request_id")), "req");
  cr_assert_str_eq(json_string_value(json_object_get(o, "outcome")), "success");
  cr_assert(json_integer_value(json_object_get(o, "ts")) > 0);
  cr_assert(json_is_null(json_object_get(o, "detail")), "seq 14 was written without detail");
  o = json_array_get(a, 7); /* seq 13 */
  cr_assert_eq(json_integer_value(json_object_get(json_object_get(o, "detail"), "i")), 13,
               "detail is parsed JSON");
  cr_assert(json_is_null(json_object_get(json_array_get(a, 5), "target")), "seq 15 has no target");
  json_decref(a);

  f.actor = "u1"; /* seqs 1, 4, 7, 10, 13, 16, 19 */
  a = list(&f, &next);
  cr_assert_eq(json_array_size(a), 7);
  for (size_t i = 0; i < 7; i++) cr_assert_eq(seq_at(a, i), 19 - 3 * (int64_t)i);
  json_decref(a);

  f.action = "a.even"; /* and even: 4, 10, 16 */
  a = list(&f, &next);
  cr_assert_eq(json_array_size(a), 3);
  cr_assert_eq(seq_at(a, 0), 16);
  cr_assert_eq(seq_at(a, 2), 4);
  json_decref(a);

  f.actor = NULL; /* even only */
  a = list(&f, &next);
  cr_assert_eq(json_array_size(a), 10);
  json_decref(a);

  f.action = "no.such";
  a = list(&f, &next);
  cr_assert_eq(json_array_size(a), 0);
  cr_assert_eq(next, 0);
  json_decref(a);

  /* time: give entry i the time i*1000 (listing does not check the chain) */
  sql("UPDATE audit_log SET ts = seq * 1000");
  struct auth_audit_filter t = {.since_ms = 5000, .until_ms = 10000, .max_results = 100};
  a = list(&t, &next);
  cr_assert_eq(json_array_size(a), 5, "since is inclusive, until exclusive");
  cr_assert_eq(seq_at(a, 0), 9);
  cr_assert_eq(seq_at(a, 4), 5);
  json_decref(a);
  t.until_ms = 0;
  a = list(&t, &next);
  cr_assert_eq(json_array_size(a), 16, "until open");
  json_decref(a);
  t.since_ms = 0;
  t.until_ms = 3000;
  a = list(&t, &next);
  cr_assert_eq(json_array_size(a), 2, "since open");
  json_decref(a);
}

Test(audit, paging_covers_everything_once) {
  open_store("kiln.db");
  append_n(20);
  int sizes[] = {7, 10, 1, 20, 19};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    bool seen[21] = {false};
    struct auth_audit_filter f = {.max_results = sizes[k]};
    int total = 0, pages = 0;
    int64_t last = 21;
    for (;;) {
      int64_t next = -1;
      json_t *a = list(&f, &next);
      pages++;
      cr_assert_leq(json_array_size(a), (size_t)sizes[k]);
      for (size_t i = 0; i < json_array_size(a); i++) {
        int64_t s = seq_at(a, i);
        cr_assert_lt(s, last, "descending, no overlap");
        cr_assert_not(seen[s]);
        seen[s] = true;
        last = s;
        total++;
      }
      json_decref(a);
      if (!next) break;
      cr_assert_eq(next, last, "the next page starts below the last seq shown");
      f.after_seq = next;
      cr_assert_lt(pages, 30);
    }
    cr_assert_eq(total, 20, "page size %d", sizes[k]);
    cr_assert_eq(pages, (20 + sizes[k] - 1) / sizes[k], "no empty trailing page (size %d)",
                 sizes[k]);
  }
  /* two pages with a filter */
  struct auth_audit_filter f = {.action = "a.odd", .max_results = 5};
  int64_t next;
  json_t *a = list(&f, &next);
  cr_assert_eq(json_array_size(a), 5);
  cr_assert_eq(next, 11);
  json_decref(a);
  f.after_seq = next;
  a = list(&f, &next);
  cr_assert_eq(json_array_size(a), 5);
  cr_assert_eq(seq_at(a, 0), 9);
  cr_assert_eq(seq_at(a, 4), 1);
  cr_assert_eq(next, 0);
  json_decref(a);
}

Test(audit, list_bounds_are_checked) {
  open_store("kiln.db");
  struct err e;
  int64_t next;
  int bad_max[] = {0, -1, 1001};
  for (size_t i = 0; i < 3; i++) {
    struct auth_audit_filter f = {.max_results = bad_max[i]};
    cr_assert_null(auth_audit_list(db, &f, &next, &e));
    cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  }
  struct auth_audit_filter neg = {.max_results = 10, .after_seq = -5};
  cr_assert_null(auth_audit_list(db, &neg, &next, &e));
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  struct auth_audit_filter ok = {.max_results = 1000};
  json_t *a = auth_audit_list(db, &ok, &next, &e);
  cr_assert_not_null(a, "%s", e.msg);
  cr_assert_eq(json_array_size(a), 0);
  json_decref(a);
}

/* ---- the real binary ------------------------------------------------------ */
static const char *kiln_bin(void) {
  const char *b = getenv("KILN_BIN");
  if (!b || !*b) b = "build/kiln";
  if (access(b, X_OK) != 0)
    cr_assert_fail("%s is missing: build it first with `make build/kiln KILN_NO_UI=1` (or point "
                   "KILN_BIN at a kiln binary); run the tests from the repository root",
                   b);
  return b;
}

static int run_kiln(const char *args, char *out, size_t cap) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "%s %s 2>&1", kiln_bin(), args);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t n = fread(out, 1, cap - 1, p);
  out[n] = 0;
  int st = pclose(p);
  cr_assert(WIFEXITED(st), "%s did not exit normally", cmd);
  return WEXITSTATUS(st);
}

Test(audit, the_kiln_binary_reports_a_tampered_store) {
  const char *bin = kiln_bin();
  (void)bin;
  char out[4096], args[256];
  open_store("kiln.db");
  append_n(12);
  db_close(db);
  db = NULL;

  snprintf(args, sizeof args, "admin audit-verify --data %s", dir);
  cr_assert_eq(run_kiln(args, out, sizeof out), 0, "%s", out);
  cr_assert(strstr(out, "audit log intact: 12 entries") != NULL, "%s", out);
  cr_assert(strstr(out, "last entry: seq 12, hash ") != NULL, "%s", out);

  open_store("kiln.db");
  sql("UPDATE audit_log SET actor = 'mallory' WHERE seq = 4");
  db_close(db);
  db = NULL;
  cr_assert_eq(run_kiln(args, out, sizeof out), 1, "%s", out);
  cr_assert(strstr(out, "audit log BROKEN at entry 4: entry 4 was edited") != NULL, "%s", out);

  /* the same through --db, and a deletion */
  open_store("kiln.db");
  sql("UPDATE audit_log SET actor = 'u1' WHERE seq = 4");
  sql("DELETE FROM audit_log WHERE seq = 8");
  db_close(db);
  db = NULL;
  snprintf(args, sizeof args, "admin audit-verify --db sqlite:%s/kiln.db", dir);
  cr_assert_eq(run_kiln(args, out, sizeof out), 1, "%s", out);
  cr_assert(strstr(out, "audit log BROKEN at entry 8: entry after 7 was deleted") != NULL, "%s",
            out);

  /* usage errors and a missing store */
  cr_assert_eq(run_kiln("admin no-such-thing", out, sizeof out), 2, "%s", out);
  cr_assert(strstr(out, "usage: kiln admin") != NULL, "%s", out);
  cr_assert_eq(run_kiln("admin", out, sizeof out), 2, "%s", out);
  cr_assert_eq(run_kiln("admin audit-verify --bogus", out, sizeof out), 2, "%s", out);
  snprintf(args, sizeof args, "admin audit-verify --data %s/nowhere", dir);
  cr_assert_eq(run_kiln(args, out, sizeof out), 1, "%s", out);
  cr_assert(strstr(out, "no Kiln store") != NULL, "%s", out);
  cr_assert_eq(run_kiln("help admin", out, sizeof out), 0, "%s", out);
  cr_assert(strstr(out, "audit-verify") != NULL, "%s", out);
}
