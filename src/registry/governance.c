/* registry/governance: a project's rules for governed registry changes
 * (Production, protected aliases), the approval requests they call for and
 * their state machine, and comments on model versions. Every write records
 * an audit entry inside its own transaction. */
#include "auth/auth.h"
#include "registry/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define GOV_MAX_PENDING 1000            /* pending requests in one project */
#define GOV_MAX_COMMENTS_PER_VERSION 10000
#define GOV_SWEEP_BATCH 200

/* ---- small helpers ---------------------------------------------------------------------------- */

static void set_opt(json_t *o, const char *key, const char *v) {
  if (v && *v) json_object_set_new(o, key, json_string(v));
}

static int need_actor(const struct registry_actor *who, struct err *e) {
  if (!who || !who->user_id || !*who->user_id)
    return err_set(e, ERR_PERMISSION_DENIED, "this needs a signed-in user");
  return 0;
}

/* Writes one audit entry; detail is consumed. */
static int gov_audit(struct db_conn *c, const struct registry_actor *who, const char *action, const char *target,
                     json_t *detail, struct err *e) {
  char *text = detail ? json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(detail);
  if (detail && !text) return err_set(e, ERR_NO_MEMORY, "out of memory");
  struct auth_audit_entry en = {.actor = who ? who->user_id : NULL,
                                .action = action,
                                .target = target,
                                .outcome = "success",
                                .detail = text};
  int rc = auth_audit_append(c, &en, e);
  free(text);
  return rc;
}

/* The version's identity (seq) and stage now; RESOURCE_DOES_NOT_EXIST. */
static int version_now(struct db_conn *c, const struct reg_model *m, int64_t version, int64_t *seq,
                       char stage[32], struct err *e) {
  int rc = reg_version_exists(c, m, version, e);
  if (rc) return rc;
  struct db_stmt *s = db_prepare(c, "SELECT seq, current_stage FROM model_versions WHERE model_id = ? AND version = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, m->id);
  db_bind_i64(s, 2, version);
  rc = db_step(s, e);
  if (rc == DB_ROW) {
    *seq = db_col_i64(s, 0);
    str_copy(stage, 32, db_col_text(s, 1));
  }
  db_stmt_done(s);
  if (rc == DB_DONE) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Model Version not found");
  return rc < 0 ? rc : 0;
}

static int next_seq(struct db_conn *c, const char *table, int64_t *out, struct err *e) {
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT COALESCE(MAX(seq), 0) + 1 FROM %s", table);
  struct db_stmt *s = db_prepare(c, sql, e);
  if (!s) return -ERR_INTERNAL;
  int rc = db_step(s, e);
  *out = rc == DB_ROW ? db_col_i64(s, 0) : 0;
  db_stmt_done(s);
  return rc == DB_ROW ? 0 : (rc < 0 ? rc : err_set(e, ERR_INTERNAL, "no sequence number"));
}

static int count_of(struct db_conn *c, const char *sql, const char *fmt, const char *a, int64_t x, int64_t y,
                    int64_t *out, struct err *e) {
  struct db_stmt *s = db_prepare(c, sql, e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, a);
  if (fmt[1]) db_bind_i64(s, 2, x);
  if (fmt[1] && fmt[2]) db_bind_i64(s, 3, y);
  int rc = db_step(s, e);
  *out = rc == DB_ROW ? db_col_i64(s, 0) : 0;
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

static int page_token(const char *token, int64_t *out, struct err *e) {
  *out = 0;
  if (!token || !*token) return 0;
  if (strlen(token) > 20 || str_to_i64(token, out) || *out <= 0)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid page token");
  return 0;
}

static int page_size(int64_t max_results, int64_t *out, struct err *e) {
  if (max_results < 0 || max_results > REGISTRY_GOV_MAX_RESULTS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "max_results must be between 1 and %d", REGISTRY_GOV_MAX_RESULTS);
  *out = max_results ? max_results : REGISTRY_GOV_DEFAULT_RESULTS;
  return 0;
}

static int text_check(const char *what, const char *v, size_t max, bool required, struct err *e) {
  if (!v || !*v)
    return required ? err_set(e, ERR_INVALID_PARAMETER_VALUE, "Missing value for required parameter '%s'.", what) : 0;
  if (strlen(v) > max) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "'%s' is longer than %zu bytes", what, max);
  return 0;
}

/* ---- settings --------------------------------------------------------------------------------- */

struct gov_settings {
  bool require_production;
  json_t *aliases; /* array of strings, owned */
  int64_t updated_at;
  char updated_by[65];
};

static int settings_load(struct db_conn *c, const char *project_id, struct gov_settings *g, struct err *e) {
  memset(g, 0, sizeof *g);
  struct db_stmt *s = db_prepare(c,
                                 "SELECT require_approval_for_production, protected_aliases, updated_at, updated_by"
                                 " FROM registry_governance WHERE project_id = ?",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, project_id);
  int rc = db_step(s, e);
  if (rc == DB_ROW) {
    g->require_production = db_col_i64(s, 0) != 0;
    const char *txt = db_col_text(s, 1);
    struct err je;
    g->aliases = txt ? json_parse(txt, strlen(txt), &je) : NULL;
    g->updated_at = db_col_i64(s, 2);
    str_copy(g->updated_by, sizeof g->updated_by, db_col_null(s, 3) ? "" : db_col_text(s, 3));
  }
  db_stmt_done(s);
  if (rc < 0) return rc;
  if (!json_is_array(g->aliases)) {
    json_decref(g->aliases);
    g->aliases = json_array();
  }
  return g->aliases ? 0 : err_set(e, ERR_NO_MEMORY, "out of memory");
}

static json_t *settings_json(const struct gov_settings *g) {
  json_t *o = json_pack("{s:b, s:O}", "require_approval_for_production", g->require_production, "protected_aliases",
                        g->aliases);
  if (o && g->updated_at) json_object_set_new(o, "updated_at", json_integer(g->updated_at));
  if (o) set_opt(o, "updated_by", g->updated_by);
  return o;
}

static bool alias_protected(const struct gov_settings *g, const char *alias) {
  size_t i;
  json_t *v;
  json_array_foreach(g->aliases, i, v) {
    /* case-blind: "Champion" must not slip past a rule for "champion" */
    if (json_is_string(v) && !strcasecmp(json_string_value(v), alias)) return true;
  }
  return false;
}

json_t *registry_gov_settings_get(struct db *db, const char *project_id, struct err *e) {
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  struct gov_settings g;
  int rc = settings_load(c, project_id, &g, e);
  db_reader_release(db, c);
  if (rc) return NULL;
  json_t *o = settings_json(&g);
  json_decref(g.aliases);
  if (!o) err_set(e, ERR_NO_MEMORY, "out of memory");
  return o;
}

struct settings_job {
  const char *project_id;
  const bool *require;
  json_t *aliases; /* NULL: unchanged */
  const struct registry_actor *who;
};

static int settings_job(struct db_conn *c, void *arg, struct err *e) {
  struct settings_job *j = arg;
  struct gov_settings g;
  int rc = settings_load(c, j->project_id, &g, e);
  if (rc) return rc;
  if (j->require) g.require_production = *j->require;
  if (j->aliases) {
    json_decref(g.aliases);
    g.aliases = json_incref(j->aliases);
  }
  char *txt = json_dumps(g.aliases, JSON_COMPACT);
  int64_t now = time_wall_ms();
  rc = txt ? 0 : err_set(e, ERR_NO_MEMORY, "out of memory");
  if (!rc)
    rc = reg_exec(c,
                  "INSERT INTO registry_governance (project_id, require_approval_for_production, protected_aliases,"
                  " updated_at, updated_by) VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id) DO UPDATE SET"
                  " require_approval_for_production = excluded.require_approval_for_production,"
                  " protected_aliases = excluded.protected_aliases, updated_at = excluded.updated_at,"
                  " updated_by = excluded.updated_by",
                  e, "sisis", j->project_id, (int64_t)(g.require_production ? 1 : 0), txt, now, j->who->username);
  free(txt);
  if (!rc) {
    char target[64];
    snprintf(target, sizeof target, "project:%.40s", j->project_id);
    rc = gov_audit(c, j->who, "registry.governance.update", target,
                   json_pack("{s:b, s:O}", "require_approval_for_production", g.require_production,
                             "protected_aliases", g.aliases),
                   e);
  }
  json_decref(g.aliases);
  return rc;
}

json_t *registry_gov_settings_set(struct db *db, const char *project_id, const bool *require,
                                  const char *const *aliases, int naliases,
                                  const struct registry_actor *who, struct err *e) {
  if (need_actor(who, e)) return NULL;
  if (!who->project_admin) {
    err_set(e, ERR_PERMISSION_DENIED, "only a project admin can change the project's governance settings");
    return NULL;
  }
  struct settings_job j = {.project_id = project_id, .require = require, .who = who};
  if (naliases > REGISTRY_GOV_MAX_PROTECTED_ALIASES) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "protected_aliases takes at most %d aliases",
            REGISTRY_GOV_MAX_PROTECTED_ALIASES);
    return NULL;
  }
  if (naliases >= 0) {
    j.aliases = json_array();
    if (!j.aliases) {
      err_set(e, ERR_NO_MEMORY, "out of memory");
      return NULL;
    }
    for (int i = 0; i < naliases; i++) {
      if (reg_alias_check(aliases[i], e)) {
        json_decref(j.aliases);
        return NULL;
      }
      bool dup = false;
      size_t k;
      json_t *v;
      json_array_foreach(j.aliases, k, v) dup = dup || !strcasecmp(json_string_value(v), aliases[i]);
      if (!dup) json_array_append_new(j.aliases, json_string(aliases[i]));
    }
  }
  int rc = db_write(db, settings_job, &j, e);
  json_decref(j.aliases);
  return rc ? NULL : registry_gov_settings_get(db, project_id, e);
}

/* ---- the gate --------------------------------------------------------------------------------- */

int reg_gov_gate(struct db_conn *c, const char *project_id, const struct reg_model *m, int64_t version,
                 bool alias, const char *target, enum reg_gov_mode mode, struct err *e) {
  if (mode == REG_GOV_APPROVED) return 0; /* the approval is the audit record */
  struct gov_settings g;
  int rc = settings_load(c, project_id, &g, e);
  if (rc) return rc;
  bool governed = alias ? alias_protected(&g, target) : (g.require_production && str_eq(target, "Production"));
  json_decref(g.aliases);
  if (!governed) return 0;
  if (mode == REG_GOV_CALLER) {
    if (alias)
      return err_set(e, ERR_APPROVAL_REQUIRED,
                     "Alias '%.255s' is protected in this project: setting it needs approval. Request approval "
                     "with POST /api/v1/approvals {\"name\", \"version\", \"alias\"} (or `kiln approvals request`); "
                     "a project admin then approves it.",
                     target);
    return err_set(e, ERR_APPROVAL_REQUIRED,
                   "Moving a model version to Production needs approval in this project. Request approval with "
                   "POST /api/v1/approvals {\"name\", \"version\", \"stage\": \"Production\"} (or `kiln approvals "
                   "request`); a project admin then approves it.");
  }
  /* a project admin acting directly: allowed, and recorded as such */
  char tgt[64];
  snprintf(tgt, sizeof tgt, "model_version:%lld/%lld", (long long)m->id, (long long)version);
  return gov_audit(c, NULL, "registry.governed_change.direct", tgt,
                   json_pack("{s:s, s:I, s:s, s:s}", "model_name", m->name, "version", (json_int_t)version, "kind",
                             alias ? "alias" : "stage", "target", target),
                   e);
}

/* ---- approval requests ------------------------------------------------------------------------ */

const char *registry_request_state_name(enum registry_request_state s) {
  switch (s) {
  case REGISTRY_REQ_PENDING: return "PENDING";
  case REGISTRY_REQ_APPROVED: return "APPROVED";
  case REGISTRY_REQ_REJECTED: return "REJECTED";
  case REGISTRY_REQ_CANCELLED: return "CANCELLED";
  case REGISTRY_REQ_STALE: return "STALE";
  }
  return "UNKNOWN";
}

int registry_request_state_parse(const char *s, enum registry_request_state *out, struct err *e) {
  for (int i = REGISTRY_REQ_PENDING; i <= REGISTRY_REQ_STALE; i++)
    if (s && !strcasecmp(s, registry_request_state_name((enum registry_request_state)i))) {
      *out = (enum registry_request_state)i;
      return 0;
    }
  return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                 "Invalid approval request state '%.40s': one of PENDING, APPROVED, REJECTED, CANCELLED, STALE",
                 s ? s : "");
}

/* ---- the request state machine -----------------------------------------------------------------
 *
 *                         create
 *                           │
 *                           v
 *    ┌──────approve───── PENDING ─────reject────────┐
 *    │ (project admin;      │  │   (project admin)  │
 *    │  the change is made  │  └──cancel──┐         │
 *    │  in the same write)  │ (requester) v         v
 *    v                      │         CANCELLED   REJECTED
 * APPROVED                  │
 *                           └──version deleted, or its stage changed──> STALE
 *
 * Every state but PENDING is final. request_move is the only place a state
 * changes; it refuses any other move with INVALID_STATE and writes the
 * audit entry of the move in the same transaction. */
bool registry_request_move_legal(enum registry_request_state from, enum registry_request_state to) {
  return from == REGISTRY_REQ_PENDING && (to == REGISTRY_REQ_APPROVED || to == REGISTRY_REQ_REJECTED ||
                                          to == REGISTRY_REQ_CANCELLED || to == REGISTRY_REQ_STALE);
}

struct req_row {
  char id[REGISTRY_GOV_ID_LEN + 1];
  struct reg_model m;
  int64_t version, version_seq;
  char from_stage[32], kind[8], target[REGISTRY_MAX_ALIAS_LEN * 4 + 1];
  bool archive_existing;
  char requester_id[65];
  enum registry_request_state state;
};

static int request_load(struct db_conn *c, const char *project_id, const char *id, struct req_row *r,
                        struct err *e) {
  memset(r, 0, sizeof *r);
  if (!id || strlen(id) != REGISTRY_GOV_ID_LEN)
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Approval request '%.64s' not found", id ? id : "");
  struct db_stmt *s = db_prepare(c,
                                 "SELECT r.id, r.model_id, COALESCE(m.name, r.model_name), r.version, r.version_seq,"
                                 " r.from_stage, r.kind, r.target, r.archive_existing, r.requester_id, r.state"
                                 " FROM registry_approval_requests r LEFT JOIN registered_models m ON m.id = r.model_id"
                                 " WHERE r.id = ? AND r.project_id = ?",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, id);
  db_bind_text(s, 2, project_id);
  int rc = db_step(s, e);
  if (rc == DB_ROW) {
    str_copy(r->id, sizeof r->id, db_col_text(s, 0));
    r->m.id = db_col_i64(s, 1);
    str_copy(r->m.name, sizeof r->m.name, db_col_text(s, 2));
    r->version = db_col_i64(s, 3);
    r->version_seq = db_col_i64(s, 4);
    str_copy(r->from_stage, sizeof r->from_stage, db_col_text(s, 5));
    str_copy(r->kind, sizeof r->kind, db_col_text(s, 6));
    str_copy(r->target, sizeof r->target, db_col_text(s, 7));
    r->archive_existing = db_col_i64(s, 8) != 0;
    str_copy(r->requester_id, sizeof r->requester_id, db_col_text(s, 9));
    struct err pe;
    if (registry_request_state_parse(db_col_text(s, 10), &r->state, &pe)) r->state = 0;
  }
  db_stmt_done(s);
  if (rc == DB_DONE) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Approval request '%.64s' not found", id);
  return rc < 0 ? rc : 0;
}

static const char *const move_action[] = {
    [REGISTRY_REQ_APPROVED] = "registry.approval.approve",
    [REGISTRY_REQ_REJECTED] = "registry.approval.reject",
    [REGISTRY_REQ_CANCELLED] = "registry.approval.cancel",
    [REGISTRY_REQ_STALE] = "registry.approval.stale",
};

static int request_move(struct db_conn *c, const struct req_row *r, enum registry_request_state to,
                        const struct registry_actor *who, const char *comment, const char *why, struct err *e) {
  if (!registry_request_move_legal(r->state, to))
    return err_set(e, ERR_INVALID_STATE, "Approval request %s is %s; it cannot become %s", r->id,
                   registry_request_state_name(r->state), registry_request_state_name(to));
  int64_t now = time_wall_ms();
  bool decision = to != REGISTRY_REQ_STALE;
  int rc = reg_exec(c,
                    "UPDATE registry_approval_requests SET state = ?, updated_at = ?, decided_by = ?,"
                    " decided_by_name = ?, decision_comment = ? WHERE id = ? AND state = ?",
                    e, "sissss" "s", registry_request_state_name(to), now,
                    decision && who ? who->user_id : NULL, decision && who ? who->username : NULL,
                    comment && *comment ? comment : NULL, r->id, registry_request_state_name(r->state));
  if (!rc && db_changes(c) != 1) rc = err_set(e, ERR_CONFLICT, "Approval request %s changed meanwhile", r->id);
  if (rc) return rc;
  char target[64];
  snprintf(target, sizeof target, "approval:%s", r->id);
  json_t *d = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s}", "model_name", r->m.name, "version",
                        (json_int_t)r->version, "kind", r->kind, "target", r->target, "from",
                        registry_request_state_name(r->state), "to", registry_request_state_name(to));
  if (d && why) json_object_set_new(d, "reason", json_string(why));
  return gov_audit(c, decision ? who : NULL, move_action[to], target, d, e);
}

/* Why a pending request no longer describes its version, or NULL. */
static const char *request_staleness(struct db_conn *c, const struct req_row *r, struct err *e, int *rc) {
  int64_t seq = 0;
  char stage[32] = "";
  struct err ve;
  *rc = version_now(c, &r->m, r->version, &seq, stage, &ve);
  if (*rc == -ERR_RESOURCE_DOES_NOT_EXIST) {
    *rc = 0;
    return "the version was deleted";
  }
  if (*rc) {
    *e = ve;
    return NULL;
  }
  if (seq != r->version_seq) return "the version was deleted";
  if (!str_eq(stage, r->from_stage)) return "the version's stage changed";
  return NULL;
}

/* Pending requests of the project whose version went away or moved turn
 * STALE (bounded per call; the rest go on the next). */
static int sweep_job(struct db_conn *c, void *arg, struct err *e) {
  const char *project_id = arg;
  char ids[GOV_SWEEP_BATCH][REGISTRY_GOV_ID_LEN + 1];
  int n = 0;
  struct db_stmt *s = db_prepare(c,
                                 "SELECT r.id FROM registry_approval_requests r LEFT JOIN model_versions v"
                                 " ON v.model_id = r.model_id AND v.version = r.version WHERE r.project_id = ?"
                                 " AND r.state = 'PENDING' AND (v.seq IS NULL OR v.seq <> r.version_seq OR"
                                 " v.current_stage <> r.from_stage) ORDER BY r.seq LIMIT 200",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, project_id);
  int rc;
  while (n < GOV_SWEEP_BATCH && (rc = db_step(s, e)) == DB_ROW) str_copy(ids[n++], sizeof ids[0], db_col_text(s, 0));
  db_stmt_done(s);
  if (rc < 0) return rc;
  for (int i = 0; i < n; i++) {
    struct req_row r;
    if ((rc = request_load(c, project_id, ids[i], &r, e))) return rc;
    const char *why = request_staleness(c, &r, e, &rc);
    if (rc) return rc;
    if (why && (rc = request_move(c, &r, REGISTRY_REQ_STALE, NULL, NULL, why, e))) return rc;
  }
  return 0;
}

/* Runs the sweep only when a reader sees something to do. */
static int sweep_if_needed(struct db *db, const char *project_id, struct err *e) {
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return -(int)e->code;
  int64_t n = 0;
  int rc = count_of(c,
                    "SELECT COUNT(*) FROM registry_approval_requests r LEFT JOIN model_versions v"
                    " ON v.model_id = r.model_id AND v.version = r.version WHERE r.project_id = ?"
                    " AND r.state = 'PENDING' AND (v.seq IS NULL OR v.seq <> r.version_seq OR"
                    " v.current_stage <> r.from_stage)",
                    "s", project_id, 0, 0, &n, e);
  db_reader_release(db, c);
  if (rc || n == 0) return rc;
  return db_write(db, sweep_job, (void *)project_id, e);
}

#define REQUEST_COLS                                                                                   \
  "r.id, COALESCE(m.name, r.model_name), r.version, r.kind, r.target, r.archive_existing, r.from_stage," \
  " r.comment, r.requester_id, r.requester_name, r.state, r.created_at, r.updated_at, r.decided_by,"   \
  " r.decided_by_name, r.decision_comment, r.seq"
#define REQUEST_FROM                                                                                   \
  " FROM registry_approval_requests r LEFT JOIN registered_models m ON m.id = r.model_id"

static json_t *request_json_row(struct db_stmt *s) {
  char v[24];
  snprintf(v, sizeof v, "%lld", (long long)db_col_i64(s, 2));
  json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:I, s:I}", "id", db_col_text(s, 0),
                        "model_name", db_col_text(s, 1), "version", v, "kind", db_col_text(s, 3), "target",
                        db_col_text(s, 4), "archive_existing_versions", db_col_i64(s, 5) != 0, "from_stage",
                        db_col_text(s, 6), "requester_id", db_col_text(s, 8), "state", db_col_text(s, 10),
                        "created_at", (json_int_t)db_col_i64(s, 11), "updated_at", (json_int_t)db_col_i64(s, 12));
  if (!o) return NULL;
  if (!db_col_null(s, 7)) set_opt(o, "comment", db_col_text(s, 7));
  if (!db_col_null(s, 9)) set_opt(o, "requester", db_col_text(s, 9));
  if (!db_col_null(s, 13)) set_opt(o, "decided_by", db_col_text(s, 13));
  if (!db_col_null(s, 14)) set_opt(o, "decided_by_name", db_col_text(s, 14));
  if (!db_col_null(s, 15)) set_opt(o, "decision_comment", db_col_text(s, 15));
  return o;
}

static json_t *request_read(struct db *db, const char *project_id, const char *id, struct err *e) {
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  json_t *o = NULL;
  struct db_stmt *s = db_prepare(c, "SELECT " REQUEST_COLS REQUEST_FROM " WHERE r.id = ? AND r.project_id = ?", e);
  if (s) {
    db_bind_text(s, 1, id);
    db_bind_text(s, 2, project_id);
    int rc = db_step(s, e);
    if (rc == DB_ROW && !(o = request_json_row(s))) err_set(e, ERR_NO_MEMORY, "out of memory");
    if (rc == DB_DONE) err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Approval request '%.64s' not found", id);
    db_stmt_done(s);
  }
  db_reader_release(db, c);
  return o;
}

struct request_job {
  const char *project_id;
  const struct registry_request_new *in;
  const char *stage; /* canonical */
  int64_t version;
  const struct registry_actor *who;
  char id[REGISTRY_GOV_ID_LEN + 1]; /* out (create) */
  enum registry_request_state to;   /* decide */
  const char *decide_id, *comment;
  bool went_stale;                  /* out (decide) */
  char why[64];
};

static int create_job(struct db_conn *c, void *arg, struct err *e) {
  struct request_job *j = arg;
  const struct registry_request_new *in = j->in;
  struct reg_model m;
  int64_t vseq, seq, n;
  char stage[32];
  int rc = reg_model_load(c, j->project_id, in->name, &m, e);
  if (rc || (rc = version_now(c, &m, j->version, &vseq, stage, e))) return rc;
  const char *kind = j->stage ? "stage" : "alias", *target = j->stage ? j->stage : in->alias;
  if (j->stage && str_eq(stage, j->stage))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Model version %lld of '%.300s' is already in %s",
                   (long long)j->version, m.name, stage);
  if ((rc = count_of(c,
                     "SELECT COUNT(*) FROM registry_approval_requests WHERE project_id = ? AND state = 'PENDING'",
                     "s", j->project_id, 0, 0, &n, e)))
    return rc;
  if (n >= GOV_MAX_PENDING)
    return err_set(e, ERR_CONFLICT, "This project already has %d pending approval requests; decide some first",
                   GOV_MAX_PENDING);
  struct db_stmt *s = db_prepare(c,
                                 "SELECT id FROM registry_approval_requests WHERE model_id = ? AND version = ?"
                                 " AND kind = ? AND target = ? AND state = 'PENDING'",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, m.id);
  db_bind_i64(s, 2, j->version);
  db_bind_text(s, 3, kind);
  db_bind_text(s, 4, target);
  rc = db_step(s, e);
  char other[REGISTRY_GOV_ID_LEN + 1] = "";
  if (rc == DB_ROW) str_copy(other, sizeof other, db_col_text(s, 0));
  db_stmt_done(s);
  if (rc < 0) return rc;
  if (other[0])
    return err_set(e, ERR_CONFLICT, "An approval request for this change is already pending: %s", other);
  if ((rc = next_seq(c, "registry_approval_requests", &seq, e))) return rc;
  id_random_hex(j->id, REGISTRY_GOV_ID_LEN / 2);
  int64_t now = time_wall_ms();
  rc = reg_exec(c,
                "INSERT INTO registry_approval_requests (id, seq, project_id, model_id, model_name, version,"
                " version_seq, from_stage, kind, target, archive_existing, comment, requester_id, requester_name,"
                " state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', ?, ?)",
                e, "sisisiisssisssii", j->id, seq, j->project_id, m.id, m.name, j->version, vseq, stage, kind, target,
                (int64_t)(in->archive_existing ? 1 : 0), in->comment && *in->comment ? in->comment : NULL,
                j->who->user_id, j->who->username, now, now);
  if (rc) return rc;
  char tgt[64];
  snprintf(tgt, sizeof tgt, "approval:%s", j->id);
  return gov_audit(c, j->who, "registry.approval.request", tgt,
                   json_pack("{s:s, s:I, s:s, s:s, s:b}", "model_name", m.name, "version", (json_int_t)j->version,
                             "kind", kind, "target", target, "archive_existing_versions", in->archive_existing),
                   e);
}

json_t *registry_request_create(struct db *db, const char *project_id, const struct registry_request_new *in,
                                const struct registry_actor *who, struct err *e) {
  struct request_job j = {.project_id = project_id, .in = in, .who = who};
  if (need_actor(who, e) || text_check("name", in->name, 4 * REGISTRY_MAX_NAME_LEN, true, e) ||
      reg_version_parse(in->version, &j.version, e) ||
      text_check("comment", in->comment, REGISTRY_GOV_MAX_COMMENT_LEN, false, e))
    return NULL;
  bool has_stage = in->stage && *in->stage, has_alias = in->alias && *in->alias;
  if (has_stage == has_alias) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "An approval request names exactly one of 'stage' and 'alias'");
    return NULL;
  }
  if (has_stage) {
    if (!(j.stage = registry_stage_canonical(in->stage))) {
      err_set(e, ERR_INVALID_PARAMETER_VALUE,
              "Invalid Model Version stage: %.100s. Value must be one of None, Staging, Production, Archived.",
              in->stage);
      return NULL;
    }
    if (in->archive_existing && !str_eq(j.stage, "Staging") && !str_eq(j.stage, "Production")) {
      err_set(e, ERR_INVALID_PARAMETER_VALUE,
              "archive_existing_versions needs an Active stage (Staging, Production), not '%s'", j.stage);
      return NULL;
    }
  } else {
    if (reg_alias_check(in->alias, e)) return NULL;
    if (in->archive_existing) {
      err_set(e, ERR_INVALID_PARAMETER_VALUE, "archive_existing_versions applies to stage requests only");
      return NULL;
    }
  }
  if (db_write(db, create_job, &j, e)) return NULL;
  return request_read(db, project_id, j.id, e);
}

json_t *registry_request_get(struct db *db, const char *project_id, const char *id, struct err *e) {
  if (!id || strlen(id) != REGISTRY_GOV_ID_LEN) {
    err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Approval request '%.64s' not found", id ? id : "");
    return NULL;
  }
  if (sweep_if_needed(db, project_id, e)) return NULL;
  return request_read(db, project_id, id, e);
}

json_t *registry_request_list(struct db *db, const char *project_id, enum registry_request_state state,
                              int64_t max_results, const char *token, char next[REGISTRY_PAGE_TOKEN_MAX],
                              struct err *e) {
  int64_t max = 0, below = 0;
  next[0] = 0;
  if (page_size(max_results, &max, e) || page_token(token, &below, e) || sweep_if_needed(db, project_id, e))
    return NULL;
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  struct db_stmt *s = db_prepare(c,
                                 "SELECT " REQUEST_COLS REQUEST_FROM " WHERE r.project_id = ? AND (? = '' OR r.state = ?)"
                                 " AND (? = 0 OR r.seq < ?) ORDER BY r.seq DESC LIMIT ?",
                                 e);
  json_t *arr = s ? json_array() : NULL;
  if (s) {
    const char *st = state ? registry_request_state_name(state) : "";
    db_bind_text(s, 1, project_id);
    db_bind_text(s, 2, st);
    db_bind_text(s, 3, st);
    db_bind_i64(s, 4, below);
    db_bind_i64(s, 5, below);
    db_bind_i64(s, 6, max + 1);
    int rc = 0, n = 0;
    int64_t last = 0;
    while (arr && (rc = db_step(s, e)) == DB_ROW) {
      if (n == max) {
        snprintf(next, REGISTRY_PAGE_TOKEN_MAX, "%lld", (long long)last);
        break;
      }
      json_t *o = request_json_row(s);
      last = db_col_i64(s, 16);
      if (!o || json_array_append_new(arr, o)) {
        json_decref(arr);
        arr = NULL;
        err_set(e, ERR_NO_MEMORY, "out of memory");
      }
      n++;
    }
    if (rc < 0) {
      json_decref(arr);
      arr = NULL;
    }
    db_stmt_done(s);
  }
  db_reader_release(db, c);
  return arr;
}

static int decide_job(struct db_conn *c, void *arg, struct err *e) {
  struct request_job *j = arg;
  struct req_row r;
  int rc = request_load(c, j->project_id, j->decide_id, &r, e);
  if (rc) return rc;
  if (j->to == REGISTRY_REQ_CANCELLED && !str_eq(j->who->user_id, r.requester_id))
    return err_set(e, ERR_PERMISSION_DENIED, "Only the user who asked can cancel approval request %s", r.id);
  if ((j->to == REGISTRY_REQ_APPROVED || j->to == REGISTRY_REQ_REJECTED) && !j->who->project_admin)
    return err_set(e, ERR_PERMISSION_DENIED, "Only a project admin can approve or reject approval requests");
  if (r.state == REGISTRY_REQ_PENDING) {
    const char *why = request_staleness(c, &r, e, &rc);
    if (rc) return rc;
    if (why) {
      str_copy(j->why, sizeof j->why, why);
      j->went_stale = true;
      return request_move(c, &r, REGISTRY_REQ_STALE, NULL, NULL, why, e);
    }
  }
  if ((rc = request_move(c, &r, j->to, j->who, j->comment, NULL, e))) return rc;
  if (j->to != REGISTRY_REQ_APPROVED) return 0;
  /* the change itself, by the same functions the MLflow calls use, in this
   * transaction: if it fails, the approval is not recorded either */
  int64_t now = time_wall_ms();
  if (str_eq(r.kind, "alias")) return reg_alias_set(c, j->project_id, &r.m, r.target, r.version, now, REG_GOV_APPROVED, e);
  return reg_stage_set(c, j->project_id, &r.m, r.version, r.target, r.archive_existing, now, REG_GOV_APPROVED, e);
}

json_t *registry_request_decide(struct db *db, const char *project_id, const char *id,
                                enum registry_request_state to, const char *comment,
                                const struct registry_actor *who, struct err *e) {
  struct request_job j = {.project_id = project_id, .who = who, .to = to, .decide_id = id, .comment = comment};
  if (need_actor(who, e) || text_check("comment", comment, REGISTRY_GOV_MAX_COMMENT_LEN, false, e)) return NULL;
  if (to != REGISTRY_REQ_APPROVED && to != REGISTRY_REQ_REJECTED && to != REGISTRY_REQ_CANCELLED) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "A decision is APPROVED, REJECTED or CANCELLED");
    return NULL;
  }
  if (db_write(db, decide_job, &j, e)) return NULL;
  if (j.went_stale) {
    err_set(e, ERR_CONFLICT, "Approval request %s is STALE: %s since it was made; ask again if the change is "
            "still wanted", id, j.why);
    return NULL;
  }
  return request_read(db, project_id, id, e);
}

/* ---- comments on model versions --------------------------------------------------------------- */

enum comment_op { C_CREATE, C_UPDATE, C_DELETE };

struct comment_job {
  enum comment_op op;
  const char *project_id, *name, *body, *comment_id;
  int64_t version;
  const struct registry_actor *who;
  char id[REGISTRY_GOV_ID_LEN + 1];
};

#define COMMENT_COLS "c.id, c.version, c.author_id, c.author_name, c.body, c.created_at, c.updated_at, c.seq"

static json_t *comment_json_row(struct db_stmt *s, const char *model_name) {
  char v[24];
  snprintf(v, sizeof v, "%lld", (long long)db_col_i64(s, 1));
  json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "id", db_col_text(s, 0), "model_name", model_name,
                        "version", v, "author_id", db_col_text(s, 2), "body", db_col_text(s, 4), "created_at",
                        (json_int_t)db_col_i64(s, 5), "updated_at", (json_int_t)db_col_i64(s, 6));
  if (o && !db_col_null(s, 3)) set_opt(o, "author", db_col_text(s, 3));
  return o;
}

static int comment_job(struct db_conn *c, void *arg, struct err *e) {
  struct comment_job *j = arg;
  struct reg_model m;
  int64_t vseq, n;
  char stage[32];
  int rc = reg_model_load(c, j->project_id, j->name, &m, e);
  if (rc || (rc = version_now(c, &m, j->version, &vseq, stage, e))) return rc;
  int64_t now = time_wall_ms();
  char target[64];
  if (j->op == C_CREATE) {
    if ((rc = count_of(c, "SELECT COUNT(*) FROM registry_version_comments WHERE project_id = ? AND model_id = ?"
                          " AND version = ?", "sii", j->project_id, m.id, j->version, &n, e)))
      return rc;
    if (n >= GOV_MAX_COMMENTS_PER_VERSION)
      return err_set(e, ERR_CONFLICT, "A model version holds at most %d comments", GOV_MAX_COMMENTS_PER_VERSION);
    int64_t seq;
    if ((rc = next_seq(c, "registry_version_comments", &seq, e))) return rc;
    id_random_hex(j->id, REGISTRY_GOV_ID_LEN / 2);
    rc = reg_exec(c,
                  "INSERT INTO registry_version_comments (id, seq, project_id, model_id, version, version_seq,"
                  " author_id, author_name, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  e, "sisiiisssii", j->id, seq, j->project_id, m.id, j->version, vseq, j->who->user_id,
                  j->who->username, j->body, now, now);
    snprintf(target, sizeof target, "comment:%s", j->id);
    return rc ? rc
              : gov_audit(c, j->who, "registry.comment.create", target,
                          json_pack("{s:s, s:I, s:I}", "model_name", m.name, "version", (json_int_t)j->version,
                                    "length", (json_int_t)strlen(j->body)),
                          e);
  }
  /* edit or delete: the comment must be on this very version */
  struct db_stmt *s = db_prepare(c,
                                 "SELECT author_id FROM registry_version_comments WHERE id = ? AND project_id = ?"
                                 " AND model_id = ? AND version = ? AND version_seq = ?",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, j->comment_id);
  db_bind_text(s, 2, j->project_id);
  db_bind_i64(s, 3, m.id);
  db_bind_i64(s, 4, j->version);
  db_bind_i64(s, 5, vseq);
  rc = db_step(s, e);
  char author[65] = "";
  if (rc == DB_ROW) str_copy(author, sizeof author, db_col_text(s, 0));
  db_stmt_done(s);
  if (rc == DB_DONE)
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Comment '%.64s' not found on this model version", j->comment_id);
  if (rc < 0) return rc;
  bool own = str_eq(author, j->who->user_id);
  snprintf(target, sizeof target, "comment:%.40s", j->comment_id);
  if (j->op == C_UPDATE) {
    if (!own) return err_set(e, ERR_PERMISSION_DENIED, "Only a comment's author can edit it");
    rc = reg_exec(c, "UPDATE registry_version_comments SET body = ?, updated_at = ? WHERE id = ?", e, "sis", j->body,
                  now, j->comment_id);
    return rc ? rc
              : gov_audit(c, j->who, "registry.comment.update", target,
                          json_pack("{s:s, s:I, s:I}", "model_name", m.name, "version", (json_int_t)j->version,
                                    "length", (json_int_t)strlen(j->body)),
                          e);
  }
  if (!own && !j->who->project_admin)
    return err_set(e, ERR_PERMISSION_DENIED, "Only a comment's author or a project admin can delete it");
  rc = reg_exec(c, "DELETE FROM registry_version_comments WHERE id = ?", e, "s", j->comment_id);
  return rc ? rc
            : gov_audit(c, j->who, "registry.comment.delete", target,
                        json_pack("{s:s, s:I, s:s, s:b}", "model_name", m.name, "version", (json_int_t)j->version,
                                  "author_id", author, "by_author", own),
                        e);
}

static json_t *comment_read(struct db *db, const char *project_id, const char *name, const char *id, struct err *e) {
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  json_t *o = NULL;
  struct db_stmt *s =
      db_prepare(c, "SELECT " COMMENT_COLS " FROM registry_version_comments c WHERE c.id = ? AND c.project_id = ?", e);
  if (s) {
    db_bind_text(s, 1, id);
    db_bind_text(s, 2, project_id);
    int rc = db_step(s, e);
    if (rc == DB_ROW && !(o = comment_json_row(s, name))) err_set(e, ERR_NO_MEMORY, "out of memory");
    if (rc == DB_DONE) err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Comment '%.64s' not found", id);
    db_stmt_done(s);
  }
  db_reader_release(db, c);
  return o;
}

static int comment_args(struct comment_job *j, const char *version, bool body, struct err *e) {
  if (need_actor(j->who, e) || text_check("name", j->name, 4 * REGISTRY_MAX_NAME_LEN, true, e) ||
      reg_version_parse(version, &j->version, e))
    return -1;
  if (body && text_check("body", j->body, REGISTRY_COMMENT_MAX_LEN, true, e)) return -1;
  if (j->op != C_CREATE && (!j->comment_id || strlen(j->comment_id) != REGISTRY_GOV_ID_LEN))
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Comment '%.64s' not found on this model version",
                   j->comment_id ? j->comment_id : "");
  return 0;
}

json_t *registry_comment_create(struct db *db, const char *project_id, const char *name, const char *version,
                                const char *body, const struct registry_actor *who, struct err *e) {
  struct comment_job j = {.op = C_CREATE, .project_id = project_id, .name = name, .body = body, .who = who};
  if (comment_args(&j, version, true, e) || db_write(db, comment_job, &j, e)) return NULL;
  return comment_read(db, project_id, name, j.id, e);
}

json_t *registry_comment_update(struct db *db, const char *project_id, const char *name, const char *version,
                                const char *comment_id, const char *body, const struct registry_actor *who,
                                struct err *e) {
  struct comment_job j = {
      .op = C_UPDATE, .project_id = project_id, .name = name, .body = body, .comment_id = comment_id, .who = who};
  if (comment_args(&j, version, true, e) || db_write(db, comment_job, &j, e)) return NULL;
  return comment_read(db, project_id, name, comment_id, e);
}

int registry_comment_delete(struct db *db, const char *project_id, const char *name, const char *version,
                            const char *comment_id, const struct registry_actor *who, struct err *e) {
  struct comment_job j = {.op = C_DELETE, .project_id = project_id, .name = name, .comment_id = comment_id, .who = who};
  if (comment_args(&j, version, false, e)) return -(int)e->code;
  return db_write(db, comment_job, &j, e);
}

json_t *registry_comment_list(struct db *db, const char *project_id, const char *name, const char *version,
                              int64_t max_results, const char *token, char next[REGISTRY_PAGE_TOKEN_MAX],
                              struct err *e) {
  int64_t max = 0, after = 0, v = 0, vseq = 0;
  char stage[32];
  next[0] = 0;
  if (text_check("name", name, 4 * REGISTRY_MAX_NAME_LEN, true, e) || reg_version_parse(version, &v, e) ||
      page_size(max_results, &max, e) || page_token(token, &after, e))
    return NULL;
  struct db_conn *c = db_reader_acquire(db, e);
  if (!c) return NULL;
  struct reg_model m;
  json_t *arr = NULL;
  if (reg_model_load(c, project_id, name, &m, e) || version_now(c, &m, v, &vseq, stage, e)) goto out;
  struct db_stmt *s = db_prepare(c,
                                 "SELECT " COMMENT_COLS " FROM registry_version_comments c WHERE c.project_id = ?"
                                 " AND c.model_id = ? AND c.version = ? AND c.version_seq = ? AND c.seq > ?"
                                 " ORDER BY c.seq LIMIT ?",
                                 e);
  if (!s) goto out;
  db_bind_text(s, 1, project_id);
  db_bind_i64(s, 2, m.id);
  db_bind_i64(s, 3, v);
  db_bind_i64(s, 4, vseq);
  db_bind_i64(s, 5, after);
  db_bind_i64(s, 6, max + 1);
  arr = json_array();
  int rc = 0, n = 0;
  int64_t last = 0;
  while (arr && (rc = db_step(s, e)) == DB_ROW) {
    if (n == max) {
      snprintf(next, REGISTRY_PAGE_TOKEN_MAX, "%lld", (long long)last);
      break;
    }
    json_t *o = comment_json_row(s, m.name);
    last = db_col_i64(s, 7);
    if (!o || json_array_append_new(arr, o)) {
      json_decref(arr);
      arr = NULL;
      err_set(e, ERR_NO_MEMORY, "out of memory");
    }
    n++;
  }
  if (rc < 0) {
    json_decref(arr);
    arr = NULL;
  }
  db_stmt_done(s);
out:
  db_reader_release(db, c);
  return arr;
}
