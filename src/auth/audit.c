/* auth/audit: the append-only, hash-chained audit log — appending inside
 * the writer's jobs, verifying the chain, and listing with filters. */
#include "auth.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Field bounds: generous for real values, small enough that one entry can
 * never bloat the table or a listing. Longer input is refused, not cut. */
#define AUDIT_ACTOR_MAX 128
#define AUDIT_ACTION_MAX 64
#define AUDIT_TARGET_MAX 256
#define AUDIT_ADDR_MAX 128
#define AUDIT_REQID_MAX 128
#define AUDIT_OUTCOME_MAX 32
#define AUDIT_DETAIL_MAX 8192
#define AUDIT_LIST_MAX 1000

static const char zero_hash[65] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* ---- the canonical form ---------------------------------------------------- *
 * hash = lowercase hex SHA-256 over
 *
 *   "kiln-audit-v1\n" F(seq) F(ts) F(actor) F(action) F(target)
 *   F(client_addr) F(request_id) F(outcome) F(detail) F(prev_hash)
 *
 * where F(NULL) = "-," and F(s) = "<decimal byte length of s>:<s>," (a
 * netstring); seq and ts are written as decimal text first. Every field
 * carries its own length, so no choice of field contents can shift bytes
 * from one field into the next ("ab"+"c" and "a"+"bc" hash differently),
 * and NULL differs from "". prev_hash is the previous entry's hash (64
 * zeros for the first), which chains the entries: editing one changes its
 * hash, and the next entry no longer points at it. The version tag lets a
 * future format coexist with entries written under this one. */
struct audit_row {
  int64_t seq, ts;
  const char *actor, *action, *target, *client_addr, *request_id, *outcome, *detail, *prev_hash;
};

static void put_field(struct sha256 *h, const char *s) {
  if (!s) {
    sha256_update(h, "-,", 2);
    return;
  }
  char len[24];
  size_t n = strlen(s);
  int k = snprintf(len, sizeof len, "%zu:", n);
  sha256_update(h, len, (size_t)k);
  sha256_update(h, s, n);
  sha256_update(h, ",", 1);
}

static void put_int(struct sha256 *h, int64_t v) {
  char num[24];
  snprintf(num, sizeof num, "%lld", (long long)v);
  put_field(h, num);
}

static void audit_hash(const struct audit_row *r, char out[65]) {
  struct sha256 h;
  uint8_t d[32];
  sha256_init(&h);
  sha256_update(&h, "kiln-audit-v1\n", 14);
  put_int(&h, r->seq);
  put_int(&h, r->ts);
  put_field(&h, r->actor);
  put_field(&h, r->action);
  put_field(&h, r->target);
  put_field(&h, r->client_addr);
  put_field(&h, r->request_id);
  put_field(&h, r->outcome);
  put_field(&h, r->detail);
  put_field(&h, r->prev_hash);
  sha256_final(&h, d);
  hex_encode(out, d, sizeof d);
}

/* ---- appending ------------------------------------------------------------ */

static int check_field(const char *name, const char *v, size_t max, bool required, struct err *e) {
  if (!v) {
    if (required) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "audit entry needs %s", name);
    return 0;
  }
  size_t n = strnlen(v, max + 1);
  if (required && n == 0)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "audit entry needs %s", name);
  if (n > max)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "audit %s is longer than %zu bytes", name, max);
  return 0;
}

static int check_entry(const struct auth_audit_entry *en, struct err *e) {
  if (!en) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "no audit entry");
  int rc;
  if ((rc = check_field("actor", en->actor, AUDIT_ACTOR_MAX, false, e)) ||
      (rc = check_field("action", en->action, AUDIT_ACTION_MAX, true, e)) ||
      (rc = check_field("target", en->target, AUDIT_TARGET_MAX, false, e)) ||
      (rc = check_field("client_addr", en->client_addr, AUDIT_ADDR_MAX, false, e)) ||
      (rc = check_field("request_id", en->request_id, AUDIT_REQID_MAX, false, e)) ||
      (rc = check_field("outcome", en->outcome, AUDIT_OUTCOME_MAX, true, e)) ||
      (rc = check_field("detail", en->detail, AUDIT_DETAIL_MAX, false, e)))
    return rc;
  if (en->detail) {
    struct err je;
    json_t *v = json_parse(en->detail, strlen(en->detail), &je);
    bool obj = v && json_is_object(v);
    json_decref(v);
    if (!obj)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "audit detail must be a JSON object%s%s",
                     v ? "" : ": ", v ? "" : je.msg);
  }
  return 0;
}

int auth_audit_append(struct db_conn *c, const struct auth_audit_entry *en, struct err *e) {
  int rc = check_entry(en, e);
  if (rc) return rc;
  /* Runs on the single writer inside the caller's job, so nobody else can
   * take the same seq between this read and the insert. */
  struct audit_row r = {.actor = en->actor,
                        .action = en->action,
                        .target = en->target,
                        .client_addr = en->client_addr,
                        .request_id = en->request_id,
                        .outcome = en->outcome,
                        .detail = en->detail};
  const struct auth_audit_ctx *ctx = db_context();
  if (ctx) {
    if (ctx->actor && *ctx->actor) r.actor = ctx->actor;
    if (!r.client_addr || !*r.client_addr) r.client_addr = ctx->client_addr;
    if (!r.request_id || !*r.request_id) r.request_id = ctx->request_id;
  }
  char prev[65];
  str_copy(prev, sizeof prev, zero_hash);
  struct db_stmt *s = db_prepare(c, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", e);
  if (!s) return -ERR_INTERNAL;
  rc = db_step(s, e);
  if (rc < 0) return rc;
  r.seq = 1;
  if (rc == DB_ROW) {
    r.seq = db_col_i64(s, 0) + 1;
    const char *h = db_col_text(s, 1);
    str_copy(prev, sizeof prev, h ? h : "");
  }
  db_stmt_done(s);
  r.prev_hash = prev;
  r.ts = time_wall_ms();
  char hash[65];
  audit_hash(&r, hash);

  s = db_prepare(c,
                 "INSERT INTO audit_log (seq, ts, actor, action, target, client_addr, request_id, "
                 "outcome, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, r.seq);
  db_bind_i64(s, 2, r.ts);
  db_bind_text(s, 3, r.actor);
  db_bind_text(s, 4, r.action);
  db_bind_text(s, 5, r.target);
  db_bind_text(s, 6, r.client_addr);
  db_bind_text(s, 7, r.request_id);
  db_bind_text(s, 8, r.outcome);
  db_bind_text(s, 9, r.detail);
  db_bind_text(s, 10, r.prev_hash);
  db_bind_text(s, 11, hash);
  rc = db_step(s, e);
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

static int record_job(struct db_conn *c, void *arg, struct err *e) {
  return auth_audit_append(c, arg, e);
}

int auth_audit_record(struct db *db, const struct auth_audit_entry *en, struct err *e) {
  /* Refuse bad input before queueing behind other writers. */
  int rc = check_entry(en, e);
  if (rc) return rc;
  return db_write(db, record_job, (void *)en, e);
}

/* ---- verifying -------------------------------------------------------------- *
 * Walks every entry in seq order and reports the first break:
 *  - a seq gap: entries were deleted ("entry after N was deleted");
 *  - a hash that does not match the entry's own fields: it was edited;
 *  - a prev_hash that does not match the previous entry's hash: an entry
 *    was deleted and the chain re-linked by hand, or rewritten wholesale.
 * What it cannot see: entries removed from the end (the remaining chain
 * is intact) or a tail rewritten by someone who recomputes every hash.
 * Both need an anchor kept outside the database — the last seq and hash,
 * which `kiln admin audit-verify` prints for an operator to record. */
int auth_audit_verify(struct db *db, int64_t *checked, int64_t *bad_seq, struct err *e) {
  int64_t n = 0, bad = 0;
  if (checked) *checked = 0;
  if (bad_seq) *bad_seq = 0;
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -ERR_UNAVAILABLE;
  struct db_stmt *s = db_prepare(c,
                                 "SELECT seq, ts, actor, action, target, client_addr, request_id, "
                                 "outcome, detail, prev_hash, hash FROM audit_log ORDER BY seq",
                                 e);
  if (!s) {
    db_reader_release(db, c);
    return -ERR_INTERNAL;
  }
  int64_t prev_seq = 0;
  char prev_hash[65];
  str_copy(prev_hash, sizeof prev_hash, zero_hash);
  int rc;
  while ((rc = db_step(s, e)) == DB_ROW) {
    struct audit_row r = {
        .seq = db_col_i64(s, 0),
        .ts = db_col_i64(s, 1),
        .actor = db_col_text(s, 2),
        .action = db_col_text(s, 3),
        .target = db_col_text(s, 4),
        .client_addr = db_col_text(s, 5),
        .request_id = db_col_text(s, 6),
        .outcome = db_col_text(s, 7),
        .detail = db_col_text(s, 8),
        .prev_hash = db_col_text(s, 9),
    };
    const char *stored = db_col_text(s, 10);
    if (r.seq != prev_seq + 1) {
      bad = prev_seq + 1;
      if (r.seq <= prev_seq)
        rc = err_set(e, ERR_DATA_CORRUPTED, "entry %lld is out of sequence", (long long)r.seq);
      else if (prev_seq == 0)
        rc = err_set(e, ERR_DATA_CORRUPTED,
                     "the first entries were deleted (the log starts at %lld)", (long long)r.seq);
      else
        rc = err_set(e, ERR_DATA_CORRUPTED, "entry after %lld was deleted (the next entry is %lld)",
                     (long long)prev_seq, (long long)r.seq);
      break;
    }
    char want[65];
    audit_hash(&r, want);
    if (!stored || strcmp(stored, want) != 0) {
      bad = r.seq;
      rc =
          err_set(e, ERR_DATA_CORRUPTED,
                  "entry %lld was edited (its hash does not match its contents)", (long long)r.seq);
      break;
    }
    if (!r.prev_hash || strcmp(r.prev_hash, prev_hash) != 0) {
      bad = r.seq;
      if (prev_seq == 0)
        rc = err_set(e, ERR_DATA_CORRUPTED,
                     "entry 1 does not start the chain (entries before it were deleted)");
      else
        rc = err_set(e, ERR_DATA_CORRUPTED,
                     "entry after %lld was deleted or rewritten (entry %lld does not chain to it)",
                     (long long)prev_seq, (long long)r.seq);
      break;
    }
    str_copy(prev_hash, sizeof prev_hash, stored);
    prev_seq = r.seq;
    n++;
  }
  db_stmt_done(s);
  db_reader_release(db, c);
  if (checked) *checked = n;
  if (bad_seq) *bad_seq = bad;
  return rc < 0 ? rc : 0;
}

/* ---- listing ------------------------------------------------------------------ *
 * Newest first. The time range is half open: since_ms <= ts < until_ms.
 * Paging is by seq, which never changes once written: a page's *next_after
 * is its last (smallest) seq, and the next page takes the entries below it,
 * so pages neither overlap nor skip entries appended in between. One static
 * statement per filter combination, so every shape is prepared once. */
#define AUDIT_LIST_COLS                                                                            \
  "SELECT seq, ts, actor, action, target, client_addr, request_id, outcome, detail FROM "          \
  "audit_log WHERE seq < ? AND ts >= ? AND ts < ?"
static const char *const list_sql[4] = {
    AUDIT_LIST_COLS " ORDER BY seq DESC LIMIT ?",
    AUDIT_LIST_COLS " AND actor = ? ORDER BY seq DESC LIMIT ?",
    AUDIT_LIST_COLS " AND action = ? ORDER BY seq DESC LIMIT ?",
    AUDIT_LIST_COLS " AND actor = ? AND action = ? ORDER BY seq DESC LIMIT ?",
};

static json_t *text_or_null(const char *s) { return s ? json_string(s) : json_null(); }

json_t *auth_audit_list(struct db *db, const struct auth_audit_filter *f, int64_t *next_after,
                        struct err *e) {
  if (next_after) *next_after = 0;
  if (!f) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "no filter");
    return NULL;
  }
  if (f->max_results < 1 || f->max_results > AUDIT_LIST_MAX) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "max_results must be between 1 and %d", AUDIT_LIST_MAX);
    return NULL;
  }
  if (f->after_seq < 0 || f->since_ms < 0 || f->until_ms < 0) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "after_seq, since and until must not be negative");
    return NULL;
  }
  if (check_field("actor filter", f->actor, AUDIT_ACTOR_MAX, false, e) ||
      check_field("action filter", f->action, AUDIT_ACTION_MAX, false, e))
    return NULL;

  json_t *arr = json_array();
  if (!arr) {
    err_set(e, ERR_NO_MEMORY, NULL);
    return NULL;
  }
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) {
    json_decref(arr);
    return NULL;
  }
  int shape = (f->actor ? 1 : 0) | (f->action ? 2 : 0);
  struct db_stmt *s = db_prepare(c, list_sql[shape], e);
  if (!s) {
    db_reader_release(db, c);
    json_decref(arr);
    return NULL;
  }
  int i = 1;
  db_bind_i64(s, i++, f->after_seq > 0 ? f->after_seq : INT64_MAX);
  db_bind_i64(s, i++, f->since_ms > 0 ? f->since_ms : INT64_MIN);
  db_bind_i64(s, i++, f->until_ms > 0 ? f->until_ms : INT64_MAX);
  if (f->actor) db_bind_text(s, i++, f->actor);
  if (f->action) db_bind_text(s, i++, f->action);
  /* one more than asked tells whether another page exists */
  db_bind_i64(s, i++, (int64_t)f->max_results + 1);

  int rc, count = 0;
  int64_t last_seq = 0;
  bool more = false;
  while ((rc = db_step(s, e)) == DB_ROW) {
    if (count == f->max_results) {
      more = true;
      break;
    }
    int64_t seq = db_col_i64(s, 0);
    const char *detail = db_col_text(s, 8);
    json_t *d = detail ? json_parse(detail, strlen(detail), NULL) : NULL;
    if (!d) d = json_null(); /* NULL, or a row edited into non-JSON: verify reports that */
    json_t *o = json_object();
    /* the _new setters take the reference even when they fail */
    int bad = !o || json_object_set_new(o, "seq", json_integer(seq)) ||
              json_object_set_new(o, "ts", json_integer(db_col_i64(s, 1))) ||
              json_object_set_new(o, "actor", text_or_null(db_col_text(s, 2))) ||
              json_object_set_new(o, "action", text_or_null(db_col_text(s, 3))) ||
              json_object_set_new(o, "target", text_or_null(db_col_text(s, 4))) ||
              json_object_set_new(o, "client_addr", text_or_null(db_col_text(s, 5))) ||
              json_object_set_new(o, "request_id", text_or_null(db_col_text(s, 6))) ||
              json_object_set_new(o, "outcome", text_or_null(db_col_text(s, 7)));
    if (bad) {
      json_decref(d);
      json_decref(o);
    } else {
      bad = json_object_set_new(o, "detail", d);
      if (bad)
        json_decref(o);
      else
        bad = json_array_append_new(arr, o);
    }
    if (bad) {
      rc = err_set(e, ERR_NO_MEMORY, NULL);
      break;
    }
    last_seq = seq;
    count++;
  }
  db_stmt_done(s);
  db_reader_release(db, c);
  if (rc < 0) {
    json_decref(arr);
    return NULL;
  }
  if (next_after && more) *next_after = last_seq;
  return arr;
}
