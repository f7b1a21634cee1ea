/* auth/api: the identity room's HTTP handlers — token grants, logout,
 * whoami, password change, API keys, users (admin) and the audit log. Thin:
 * parse, validate, call the domain, reply. */
#include "http/http.h"

#include <sodium.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct auth *A(struct req *rq) { return req_app(rq)->auth; }

static void audit(struct req *rq, const char *actor, const char *action, const char *target,
                  const char *outcome) {
  struct auth_audit_entry en = {.actor = actor, .action = action, .target = target,
                                .client_addr = req_client_addr(rq), .request_id = req_id(rq),
                                .outcome = outcome};
  struct err e;
  if (auth_audit_record(req_app(rq)->db, &en, &e)) log_warn("audit.failed", "%s: %s", action, e.msg);
}

static json_t *scopes_json(unsigned scopes) {
  char csv[64];
  auth_scopes_format(scopes, csv, sizeof csv);
  json_t *a = json_array();
  for (char *save = NULL, *t = strtok_r(csv, ",", &save); t; t = strtok_r(NULL, ",", &save))
    json_array_append_new(a, json_string(t));
  return a;
}

static json_t *user_json(const struct auth_user *u) {
  json_t *o = json_pack("{s:s, s:s, s:b, s:b, s:I}", "id", u->id, "username", u->username, "is_admin",
                        u->is_admin, "must_change_password", u->must_change_password, "created_at",
                        (json_int_t)u->created_at);
  if (u->email[0]) json_object_set_new(o, "email", json_string(u->email));
  if (u->display_name[0]) json_object_set_new(o, "display_name", json_string(u->display_name));
  if (u->default_project_id[0]) json_object_set_new(o, "default_project_id", json_string(u->default_project_id));
  return o;
}

static json_t *key_json(const struct auth_api_key *k) {
  json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:I}", "id", k->id, "name", k->name, "prefix", k->prefix,
                        "scopes", scopes_json(k->scopes), "created_at", (json_int_t)k->created_at);
  if (k->project_id[0]) json_object_set_new(o, "project_id", json_string(k->project_id));
  if (k->expires_at) json_object_set_new(o, "expires_at", json_integer(k->expires_at));
  if (k->last_used_at) json_object_set_new(o, "last_used_at", json_integer(k->last_used_at));
  if (k->revoked_at) json_object_set_new(o, "revoked_at", json_integer(k->revoked_at));
  if (k->grace_until) json_object_set_new(o, "grace_until", json_integer(k->grace_until));
  return o;
}

static int reply_tokens(struct reply *rp, const struct auth_tokens *t) {
  reply_header(rp, "Cache-Control", "no-store");
  return reply_json(rp, 200, json_pack("{s:s, s:s, s:I, s:s}", "access_token", t->access_token,
                                       "token_type", "Bearer", "expires_in", (json_int_t)t->expires_in,
                                       "refresh_token", t->refresh_token));
}

/* The password check shared by the token grant and the browser sign-in:
 * throttled, audited; on failure the reply is set and -1 returned. */
static int password_login(struct req *rq, struct reply *rp, const char *user, const char *pw,
                          struct auth_user *u) {
  struct err e;
  int64_t retry = 0;
  if (auth_login(A(rq), user, pw, req_client_addr(rq), u, &retry, &e) == 0) {
    audit(rq, u->id, "auth.login", u->id, "success");
    return 0;
  }
  /* name the account only when it exists: a password typed into the
   * username field must never land in the audit log */
  struct auth_user known;
  struct err ignore;
  bool exists = auth_user_find(A(rq), user, &known, &ignore) == 0;
  audit(rq, NULL, "auth.login", exists ? known.id : NULL, e.code == ERR_RATE_LIMITED ? "throttled" : "failure");
  reply_err(rp, &e);
  if (e.code == ERR_RATE_LIMITED) reply_retry_after(rp, retry);
  return -1;
}

/* POST /api/v1/auth/token: the OAuth2 token-response shape for three grants. */
static int h_token(struct req *rq, struct reply *rp) {
  if (!A(rq)) return reply_errf(rp, ERR_NOT_READY, "identity is not configured on this server");
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  const char *user = json_string_value(json_object_get(b, "username"));
  const char *pw = json_string_value(json_object_get(b, "password"));
  const char *refresh = json_string_value(json_object_get(b, "refresh_token"));
  const char *key = json_string_value(json_object_get(b, "api_key"));
  int grants = (user || pw) + (refresh != NULL) + (key != NULL);
  if (grants != 1)
    return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE,
                      "send exactly one of {username, password}, {refresh_token} or {api_key}");
  struct err e;
  struct auth_tokens t;
  if (user || pw) {
    if (!user || !pw) return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "username and password go together");
    struct auth_user u;
    if (password_login(rq, rp, user, pw, &u)) return 0;
    if (auth_tokens_issue(A(rq), &u, &t, &e)) return reply_err(rp, &e);
    return reply_tokens(rp, &t);
  }
  if (refresh) {
    if (auth_tokens_refresh(A(rq), refresh, &t, &e)) {
      audit(rq, NULL, "auth.refresh", NULL, "failure");
      return reply_err(rp, &e);
    }
    struct auth_principal p;
    if (auth_jwt_verify(A(rq), t.access_token, &p, &e) == 0) audit(rq, p.user_id, "auth.refresh", p.user_id, "success");
    return reply_tokens(rp, &t);
  }
  /* An API key is already a bearer credential with its own scopes; handing
   * out a full-power JWT for it would widen them, so the key comes back as
   * the access token. */
  struct auth_principal p;
  if (auth_key_verify(A(rq), key, &p, &e)) return reply_err(rp, &e);
  struct auth_api_key k;
  if (auth_key_get(A(rq), p.key_id, &k, &e)) return reply_err(rp, &e);
  int64_t left = k.expires_at ? (k.expires_at - time_wall_ms()) / 1000 : 0;
  reply_header(rp, "Cache-Control", "no-store");
  json_t *o = json_pack("{s:s, s:s}", "access_token", key, "token_type", "Bearer");
  if (left > 0) json_object_set_new(o, "expires_in", json_integer(left));
  return reply_json(rp, 200, o);
}

static int h_logout(struct req *rq, struct reply *rp) {
  if (!A(rq)) return reply_errf(rp, ERR_NOT_READY, "identity is not configured on this server");
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  const char *refresh = json_string_value(json_object_get(b, "refresh_token"));
  if (!refresh) return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "Missing value for required parameter 'refresh_token'.");
  struct err e;
  if (auth_tokens_revoke(A(rq), refresh, &e)) return reply_err(rp, &e);
  audit(rq, NULL, "auth.logout", NULL, "success");
  return reply_json(rp, 200, json_object());
}


/* ---- browser sessions ---------------------------------------------------- */

static void set_cookies(struct req *rq, struct reply *rp, const char *token, const char *csrf,
                        int64_t max_age_s) {
  /* SameSite=Strict: the browser never attaches them to cross-site
   * requests; the session cookie is invisible to scripts (HttpOnly), the
   * CSRF cookie is read by the dashboard to echo in X-CSRF-Token. */
  const char *secure = req_app(rq)->tls ? "; Secure" : "";
  char c[256];
  snprintf(c, sizeof c, "%s=%s; Path=/; Max-Age=%lld; HttpOnly; SameSite=Strict%s", AUTH_SESSION_COOKIE,
           token, (long long)max_age_s, secure);
  reply_header_add(rp, "Set-Cookie", c);
  snprintf(c, sizeof c, "%s=%s; Path=/; Max-Age=%lld; SameSite=Strict%s", AUTH_CSRF_COOKIE, csrf,
           (long long)max_age_s, secure);
  reply_header_add(rp, "Set-Cookie", c);
  sodium_memzero(c, sizeof c);
}

static bool is_json_type(const char *ct) {
  if (!ct) return false;
  while (*ct == ' ') ct++;
  size_t n = strlen("application/json");
  return strncasecmp(ct, "application/json", n) == 0 && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

/* POST /api/v1/auth/session: the dashboard's sign-in. */
static int h_session_create(struct req *rq, struct reply *rp) {
  if (!A(rq)) return reply_errf(rp, ERR_NOT_READY, "identity is not configured on this server");
  /* A cross-site form can post urlencoded or text bodies without a CORS
   * preflight, but not application/json: requiring it stops login CSRF
   * (signing a victim's browser into the attacker's account). */
  if (!is_json_type(req_header(rq, "Content-Type")))
    return reply_errf(rp, ERR_UNSUPPORTED_MEDIA_TYPE, "sign-in takes Content-Type: application/json");
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  struct err e;
  const char *user, *pw;
  if (json_get_str(b, "username", true, &user, &e) || json_get_str(b, "password", true, &pw, &e))
    return reply_err(rp, &e);
  struct auth_user u;
  if (password_login(rq, rp, user, pw, &u)) return 0;
  struct auth_session s;
  if (auth_session_create(A(rq), &u, req_client_addr(rq), &s, &e)) return reply_err(rp, &e);
  set_cookies(rq, rp, s.token, s.csrf, auth_options(A(rq))->session_ttl_s);
  reply_header(rp, "Cache-Control", "no-store");
  reply_json(rp, 200, json_pack("{s:o, s:s, s:I}", "user", user_json(&u), "csrf_token", s.csrf,
                                "expires_at", (json_int_t)s.expires_at));
  sodium_memzero(&s, sizeof s);
  return 0;
}

/* DELETE /api/v1/auth/session: sign out of the browser session. */
static int h_session_delete(struct req *rq, struct reply *rp) {
  char token[AUTH_KEY_MAX];
  struct err e;
  if (req_principal(rq)->kind == AUTH_SESSION && req_cookie(rq, AUTH_SESSION_COOKIE, token, sizeof token)) {
    int rc = auth_session_revoke(A(rq), token, req_client_addr(rq), &e);
    sodium_memzero(token, sizeof token);
    if (rc) return reply_err(rp, &e);
  }
  set_cookies(rq, rp, "", "", 0);
  return reply_json(rp, 200, json_object());
}

static const char *kind_name(enum auth_kind k) {
  switch (k) {
  case AUTH_JWT: return "jwt";
  case AUTH_API_KEY: return "api_key";
  case AUTH_SESSION: return "session";
  case AUTH_BASIC: return "basic";
  default: return "anonymous";
  }
}

static int h_whoami(struct req *rq, struct reply *rp) {
  const struct auth_principal *p = req_principal(rq);
  struct auth_user u;
  struct err e;
  if (auth_user_get(A(rq), p->user_id, &u, &e)) return reply_err(rp, &e);
  json_t *authj = json_pack("{s:s, s:o}", "kind", kind_name(p->kind), "scopes", scopes_json(p->scopes));
  if (p->project_id[0]) json_object_set_new(authj, "project_id", json_string(p->project_id));
  if (p->key_id[0]) json_object_set_new(authj, "key_id", json_string(p->key_id));
  return reply_json(rp, 200, json_pack("{s:o, s:o}", "user", user_json(&u), "auth", authj));
}

static int h_password(struct req *rq, struct reply *rp) {
  const struct auth_principal *p = req_principal(rq);
  if (p->kind == AUTH_API_KEY)
    return reply_errf(rp, ERR_PERMISSION_DENIED, "an API key cannot change its owner's password; sign in with the password");
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  struct err e;
  const char *old_pw, *new_pw;
  if (json_get_str(b, "old_password", true, &old_pw, &e) || json_get_str(b, "new_password", true, &new_pw, &e))
    return reply_err(rp, &e);
  int rc = auth_password_change(A(rq), p->user_id, old_pw, new_pw, &e);
  audit(rq, p->user_id, "user.password_change", p->user_id, rc ? "failure" : "success");
  return rc ? reply_err(rp, &e) : reply_json(rp, 200, json_object());
}

/* ---- API keys ------------------------------------------------------------ */

static int h_keys_list(struct req *rq, struct reply *rp) {
  enum { CAP = 1000 };
  struct auth_api_key *keys = arena_alloc(req_arena(rq), CAP * sizeof *keys);
  if (!keys) return reply_errf(rp, ERR_NO_MEMORY, "out of memory");
  struct err e;
  int n = auth_key_list(A(rq), req_principal(rq)->user_id, keys, CAP, &e);
  if (n < 0) return reply_err(rp, &e);
  json_t *arr = json_array();
  for (int i = 0; i < n && i < CAP; i++) json_array_append_new(arr, key_json(&keys[i]));
  return reply_json(rp, 200, json_pack("{s:o}", "api_keys", arr));
}

static int parse_scopes(json_t *v, unsigned *out, struct err *e) {
  if (!v) {
    *out = AUTH_SCOPE_READ | AUTH_SCOPE_WRITE | AUTH_SCOPE_PREDICT;
    return 0;
  }
  if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 8)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "scopes must be a non-empty array of read, write, predict, admin");
  *out = 0;
  size_t i;
  json_t *s;
  json_array_foreach(v, i, s) {
    unsigned bit;
    if (!json_is_string(s)) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "scopes must be strings");
    int rc = auth_scopes_parse(json_string_value(s), &bit, e);
    if (rc) return rc;
    *out |= bit;
  }
  return 0;
}

static int h_keys_create(struct req *rq, struct reply *rp) {
  const struct auth_principal *p = req_principal(rq);
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  struct err e;
  const char *name, *project;
  int64_t expires_at = 0;
  unsigned scopes = 0;
  if (json_get_str(b, "name", true, &name, &e) || json_get_str(b, "project_id", false, &project, &e) ||
      json_get_i64(b, "expires_at", false, &expires_at, &e) ||
      parse_scopes(json_object_get(b, "scopes"), &scopes, &e))
    return reply_err(rp, &e);
  /* a key can mint keys no stronger than itself */
  if (p->kind == AUTH_API_KEY) {
    if ((scopes & ~p->scopes) != 0)
      return reply_errf(rp, ERR_PERMISSION_DENIED, "a key cannot create a key with scopes it does not have");
    if (p->project_id[0]) {
      if (project && strcmp(project, p->project_id) != 0)
        return reply_errf(rp, ERR_PERMISSION_DENIED, "this key is restricted to one project");
      project = p->project_id;
    }
  }
  if (project && *project && !p->is_admin) {
    if (auth_project_role(A(rq), project, p->user_id) == PROJECT_ROLE_NONE)
      return reply_errf(rp, ERR_RESOURCE_DOES_NOT_EXIST, "project %s does not exist", project);
  }
  char key[AUTH_KEY_MAX];
  struct auth_api_key k;
  if (auth_key_create(A(rq), p->user_id, name, scopes, project, expires_at, key, &k, &e)) return reply_err(rp, &e);
  reply_header(rp, "Cache-Control", "no-store");
  int rc = reply_json(rp, 200, json_pack("{s:o, s:s}", "api_key", key_json(&k), "key", key));
  sodium_memzero(key, sizeof key);
  return rc;
}

/* The key must be the caller's own (server admins may act on any). */
static int own_key(struct req *rq, struct reply *rp, struct auth_api_key *k) {
  const struct auth_principal *p = req_principal(rq);
  const char *id = req_param(rq, "key_id");
  struct err e;
  if (!id || auth_key_get(A(rq), id, k, &e) || (!p->is_admin && strcmp(k->user_id, p->user_id) != 0)) {
    reply_errf(rp, ERR_RESOURCE_DOES_NOT_EXIST, "API key %s does not exist", id ? id : "");
    return -1;
  }
  return 0;
}

static int h_keys_revoke(struct req *rq, struct reply *rp) {
  struct auth_api_key k;
  if (own_key(rq, rp, &k)) return 0;
  struct err e;
  if (auth_key_revoke(A(rq), k.id, &e)) return reply_err(rp, &e);
  return reply_json(rp, 200, json_object());
}

static int h_keys_rotate(struct req *rq, struct reply *rp) {
  struct auth_api_key k;
  if (own_key(rq, rp, &k)) return 0;
  int64_t grace = 3600;
  struct err e;
  size_t n;
  req_body(rq, &n);
  if (n) {
    json_t *b = req_json_object(rq, rp);
    if (!b) return 0;
    if (json_get_i64(b, "grace_seconds", false, &grace, &e)) return reply_err(rp, &e);
  }
  char key[AUTH_KEY_MAX];
  struct auth_api_key nk;
  if (auth_key_rotate(A(rq), k.id, grace, key, &nk, &e)) return reply_err(rp, &e);
  reply_header(rp, "Cache-Control", "no-store");
  int rc = reply_json(rp, 200, json_pack("{s:o, s:s}", "api_key", key_json(&nk), "key", key));
  sodium_memzero(key, sizeof key);
  return rc;
}

/* ---- users (server admins) ------------------------------------------------- */

static int h_users_create(struct req *rq, struct reply *rp) {
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  struct err e;
  const char *username, *email, *password;
  if (json_get_str(b, "username", true, &username, &e) || json_get_str(b, "email", false, &email, &e) ||
      json_get_str(b, "password", true, &password, &e))
    return reply_err(rp, &e);
  json_t *adm = json_object_get(b, "is_admin");
  if (adm && !json_is_boolean(adm)) return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "is_admin must be a boolean");
  struct auth_user u;
  if (auth_user_create(A(rq), username, email, password, adm && json_is_true(adm), &u, &e)) return reply_err(rp, &e);
  audit(rq, req_actor(rq), "user.create", u.id, "success");
  return reply_json(rp, 200, json_pack("{s:o}", "user", user_json(&u)));
}

/* POST /api/v1/auth/signup: public, when the server allows it. */
static int h_signup(struct req *rq, struct reply *rp) {
  if (!A(rq)) return reply_errf(rp, ERR_NOT_READY, "identity is not configured on this server");
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  struct err e;
  const char *username, *email, *password;
  /* email is required, but by the domain, so that a missing one counts
   * towards the address's sign-up throttle like any other attempt */
  if (json_get_str(b, "username", true, &username, &e) || json_get_str(b, "email", false, &email, &e) ||
      json_get_str(b, "password", true, &password, &e))
    return reply_err(rp, &e);
  struct auth_user u;
  int64_t retry = 0;
  if (auth_signup(A(rq), username, email, password, req_client_addr(rq), &u, &retry, &e)) {
    reply_err(rp, &e);
    if (e.code == ERR_RATE_LIMITED) reply_retry_after(rp, retry);
    return 0;
  }
  audit(rq, u.id, "user.signup", u.id, "success");
  return reply_json(rp, 200, json_pack("{s:o}", "user", user_json(&u)));
}

static int h_users_reset(struct req *rq, struct reply *rp) {
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  struct err e;
  const char *pw;
  const char *id = req_param(rq, "user_id");
  if (json_get_str(b, "new_password", true, &pw, &e)) return reply_err(rp, &e);
  if (auth_password_change(A(rq), id, NULL, pw, &e)) return reply_err(rp, &e);
  audit(rq, req_actor(rq), "user.password_reset", id, "success");
  return reply_json(rp, 200, json_object());
}

/* ---- audit log ------------------------------------------------------------- */

static int h_audit(struct req *rq, struct reply *rp) {
  struct auth_audit_filter f = {.actor = req_query(rq, "actor"), .action = req_query(rq, "action"),
                                .max_results = 100};
  struct err e;
  const char *v;
  int64_t n;
  if ((v = req_query(rq, "max_results"))) {
    if (str_to_i64(v, &n) || n < 1 || n > 1000)
      return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "max_results must be between 1 and 1000");
    f.max_results = (int)n;
  }
  if ((v = req_query(rq, "since")) && str_to_i64(v, &f.since_ms))
    return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "since must be epoch milliseconds");
  if ((v = req_query(rq, "until")) && str_to_i64(v, &f.until_ms))
    return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "until must be epoch milliseconds");
  if ((v = req_query(rq, "page_token")) && (str_to_i64(v, &f.after_seq) || f.after_seq < 1))
    return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "invalid page_token");
  int64_t next = 0;
  json_t *arr = auth_audit_list(req_app(rq)->db, &f, &next, &e);
  if (!arr) return reply_err(rp, &e);
  json_t *o = json_pack("{s:o}", "entries", arr);
  if (next) {
    char t[24];
    snprintf(t, sizeof t, "%lld", (long long)next);
    json_object_set_new(o, "next_page_token", json_string(t));
  }
  return reply_json(rp, 200, o);
}

/* ---- the table ---------------------------------------------------------------- */

#define S_TOKEN_REQ                                                                               \
  "{\"type\":\"object\",\"properties\":{\"username\":{\"type\":\"string\"},\"password\":{\"type\":" \
  "\"string\"},\"refresh_token\":{\"type\":\"string\"},\"api_key\":{\"type\":\"string\"}}}"
#define S_TOKEN                                                                                    \
  "{\"type\":\"object\",\"required\":[\"access_token\",\"token_type\"],\"properties\":{"         \
  "\"access_token\":{\"type\":\"string\"},\"token_type\":{\"const\":\"Bearer\"},\"expires_in\":" \
  "{\"type\":\"integer\"},\"refresh_token\":{\"type\":\"string\"}}}"
#define S_EMPTY "{\"type\":\"object\",\"maxProperties\":0}"
#define S_LOGIN_REQ                                                                                \
  "{\"type\":\"object\",\"required\":[\"username\",\"password\"],\"properties\":{\"username\":{"  \
  "\"type\":\"string\"},\"password\":{\"type\":\"string\"}}}"
#define S_SESSION                                                                                  \
  "{\"type\":\"object\",\"required\":[\"user\",\"csrf_token\",\"expires_at\"],\"properties\":{" \
  "\"user\":{\"type\":\"object\"},\"csrf_token\":{\"type\":\"string\"},\"expires_at\":{"      \
  "\"type\":\"integer\"}}}"
#define S_USER                                                                                     \
  "{\"type\":\"object\",\"required\":[\"id\",\"username\",\"is_admin\",\"created_at\"],"          \
  "\"properties\":{\"id\":{\"type\":\"string\",\"pattern\":\"^[0-9a-f]{32}$\"},\"username\":{"   \
  "\"type\":\"string\"},\"email\":{\"type\":\"string\"},\"display_name\":{\"type\":\"string\"},"   \
  "\"is_admin\":{\"type\":\"boolean\"},\"must_change_password\":{\"type\":\"boolean\"},"           \
  "\"default_project_id\":{\"type\":\"string\"},\"created_at\":{\"type\":\"integer\"}}}"
#define S_SCOPES                                                                                   \
  "{\"type\":\"array\",\"items\":{\"enum\":[\"read\",\"write\",\"predict\",\"admin\"]}}"
#define S_KEY                                                                                      \
  "{\"type\":\"object\",\"required\":[\"id\",\"name\",\"prefix\",\"scopes\",\"created_at\"],"     \
  "\"properties\":{\"id\":{\"type\":\"string\"},\"name\":{\"type\":\"string\"},\"prefix\":{"      \
  "\"type\":\"string\"},\"scopes\":" S_SCOPES ",\"project_id\":{\"type\":\"string\"},"             \
  "\"created_at\":{\"type\":\"integer\"},\"expires_at\":{\"type\":\"integer\"},"                   \
  "\"last_used_at\":{\"type\":\"integer\"},\"revoked_at\":{\"type\":\"integer\"},"                 \
  "\"grace_until\":{\"type\":\"integer\"}}}"
#define S_NEW_KEY                                                                                  \
  "{\"type\":\"object\",\"required\":[\"api_key\",\"key\"],\"properties\":{\"api_key\":" S_KEY     \
  ",\"key\":{\"type\":\"string\",\"pattern\":\"^kiln_[0-9A-Za-z]+$\"}}}"

const struct route auth_routes[] = {
    {"POST", "/api/v1/auth/token", PERM_PUBLIC,
     "Get tokens: password, refresh-token or API-key grant (OAuth2 token response)", "auth",
     S_TOKEN_REQ, S_TOKEN, NULL, h_token, 0},
    {"POST", "/api/v1/auth/session", PERM_PUBLIC,
     "Browser sign-in: sets the HttpOnly session cookie and the CSRF cookie", "auth", S_LOGIN_REQ,
     S_SESSION, NULL, h_session_create, 0},
    {"DELETE", "/api/v1/auth/session", PERM_READ, "Sign out of the browser session (clears its cookies)",
     "auth", NULL, S_EMPTY, NULL, h_session_delete, 0},
    {"POST", "/api/v1/auth/signup", PERM_PUBLIC,
     "Create your own account (only when the server runs with --allow-signup)", "auth",
     "{\"type\":\"object\",\"required\":[\"username\",\"email\",\"password\"]}",
     "{\"type\":\"object\",\"required\":[\"user\"],\"properties\":{\"user\":" S_USER "}}", NULL,
     h_signup, 0},
    {"POST", "/api/v1/auth/logout", PERM_PUBLIC, "Revoke a refresh token and its family", "auth",
     "{\"type\":\"object\",\"required\":[\"refresh_token\"]}", S_EMPTY, NULL, h_logout, 0},
    {"GET", "/api/v1/auth/whoami", PERM_READ, "The calling user and credential", "auth", NULL,
     "{\"type\":\"object\",\"required\":[\"user\",\"auth\"],\"properties\":{\"user\":" S_USER
     ",\"auth\":{\"type\":\"object\",\"required\":[\"kind\",\"scopes\"],\"properties\":{\"kind\":"
     "{\"enum\":[\"jwt\",\"api_key\",\"session\",\"basic\"]},\"scopes\":" S_SCOPES
     ",\"project_id\":{\"type\":\"string\"},\"key_id\":{\"type\":\"string\"}}}}}",
     NULL, h_whoami, 0},
    {"POST", "/api/v1/auth/password", PERM_WRITE, "Change your password (revokes your refresh tokens)",
     "auth", "{\"type\":\"object\",\"required\":[\"old_password\",\"new_password\"]}", S_EMPTY, NULL,
     h_password, 0},
    {"GET", "/api/v1/api-keys", PERM_READ, "List your API keys", "auth", NULL,
     "{\"type\":\"object\",\"required\":[\"api_keys\"],\"properties\":{\"api_keys\":{\"type\":"
     "\"array\",\"items\":" S_KEY "}}}",
     NULL, h_keys_list, 0},
    {"POST", "/api/v1/api-keys", PERM_WRITE, "Create an API key (the key is shown once)", "auth",
     "{\"type\":\"object\",\"required\":[\"name\"],\"properties\":{\"name\":{\"type\":\"string\"},"
     "\"scopes\":" S_SCOPES ",\"project_id\":{\"type\":\"string\"},\"expires_at\":{\"type\":"
     "\"integer\"}}}",
     S_NEW_KEY, NULL, h_keys_create, 0},
    {"DELETE", "/api/v1/api-keys/{key_id}", PERM_WRITE, "Revoke an API key", "auth", NULL, S_EMPTY,
     NULL, h_keys_revoke, 0},
    {"POST", "/api/v1/api-keys/{key_id}/rotate", PERM_WRITE,
     "Rotate an API key: a new key, the old one valid for a grace period", "auth",
     "{\"type\":\"object\",\"properties\":{\"grace_seconds\":{\"type\":\"integer\"}}}", S_NEW_KEY,
     NULL, h_keys_rotate, 0},
    {"POST", "/api/v1/users", PERM_ADMIN, "Create a user (server administrators)", "auth",
     "{\"type\":\"object\",\"required\":[\"username\",\"password\"]}",
     "{\"type\":\"object\",\"required\":[\"user\"],\"properties\":{\"user\":" S_USER "}}", NULL,
     h_users_create, 0},
    {"POST", "/api/v1/users/{user_id}/password", PERM_ADMIN,
     "Reset a user's password (server administrators)", "auth",
     "{\"type\":\"object\",\"required\":[\"new_password\"]}", S_EMPTY, NULL, h_users_reset, 0},
    {"GET", "/api/v1/audit", PERM_ADMIN, "The audit log, newest first (filters: actor, action, since, until)",
     "auth", NULL,
     "{\"type\":\"object\",\"required\":[\"entries\"],\"properties\":{\"entries\":{\"type\":"
     "\"array\",\"items\":{\"type\":\"object\",\"required\":[\"seq\",\"ts\",\"action\",\"outcome\"]}},"
     "\"next_page_token\":{\"type\":\"string\"}}}",
     NULL, h_audit, 0},
};
const size_t auth_routes_count = sizeof auth_routes / sizeof auth_routes[0];
