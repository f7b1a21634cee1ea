/* auth: identity and access — users and passwords, orgs, projects and
 * roles, tokens (JWT access + rotating refresh), API keys, login throttling
 * and the hash-chained audit log. Domain code only: no HTTP types. */
#ifndef KILN_AUTH_H
#define KILN_AUTH_H

#include "base/base.h"
#include "store/store.h"

/* ---- ids, roles, scopes -------------------------------------------------- */
#define AUTH_ID_LEN 32 /* ids are 32 lowercase hex chars */

enum org_role { ORG_ROLE_NONE = 0, ORG_ROLE_MEMBER, ORG_ROLE_ADMIN, ORG_ROLE_OWNER };
enum project_role { PROJECT_ROLE_NONE = 0, PROJECT_ROLE_VIEWER, PROJECT_ROLE_EDITOR, PROJECT_ROLE_ADMIN };
const char *org_role_name(enum org_role r);         /* "owner", ... */
enum org_role org_role_parse(const char *s);         /* ORG_ROLE_NONE when unknown */
const char *project_role_name(enum project_role r); /* "viewer", ... */
enum project_role project_role_parse(const char *s);

enum auth_scope {
  AUTH_SCOPE_READ = 1u << 0,
  AUTH_SCOPE_WRITE = 1u << 1,
  AUTH_SCOPE_PREDICT = 1u << 2,
  AUTH_SCOPE_ADMIN = 1u << 3,
  AUTH_SCOPE_ALL = 0xfu,
};
/* "read,write" <-> bits; unknown names are an INVALID_PARAMETER_VALUE. */
int auth_scopes_parse(const char *csv, unsigned *out, struct err *e);
void auth_scopes_format(unsigned scopes, char *out, size_t cap);

/* Who is calling. Filled by token, key, session or basic-auth checks. */
enum auth_kind { AUTH_ANON = 0, AUTH_JWT, AUTH_API_KEY, AUTH_SESSION, AUTH_BASIC };
struct auth_principal {
  enum auth_kind kind;
  char user_id[AUTH_ID_LEN + 1];
  char username[65];
  bool is_admin;                     /* server administrator */
  unsigned scopes;                   /* AUTH_SCOPE_ALL for users; a key's scopes */
  char project_id[AUTH_ID_LEN + 1];  /* a key restricted to one project, else "" */
  char key_id[AUTH_ID_LEN + 1];      /* API key id when kind == AUTH_API_KEY */
  int64_t retry_after_s;             /* set with a RATE_LIMITED answer (Basic logins) */
};

/* ---- the room's context ----------------------------------------------- */
struct auth_opts {
  int64_t access_ttl_s;  /* JWT lifetime, default 900 */
  int64_t refresh_ttl_s; /* refresh token lifetime, default 30 days */
  int64_t session_ttl_s; /* browser session lifetime, default 7 days */
  /* argon2id cost; defaults: libsodium's INTERACTIVE limits. Tests lower them. */
  uint64_t pwhash_opslimit;
  size_t pwhash_memlimit;
  bool allow_signup;     /* self-signup (off by default) */
  /* The server's master key (KILN_MASTER_KEY): when set, new JWT signing
   * keys are stored sealed with it (XChaCha20-Poly1305). Copied; wiped by
   * auth_close. */
  bool has_master_key;
  uint8_t master_key[32];
};
struct auth;
int auth_open(struct auth **out, struct db *db, const struct auth_opts *o, struct err *e);
void auth_close(struct auth *a);
struct db *auth_db(struct auth *a);
const struct auth_opts *auth_options(const struct auth *a);

/* ---- users and passwords (users.c) ------------------------------------ */
struct auth_user {
  char id[AUTH_ID_LEN + 1];
  char username[65];
  char email[255];
  char display_name[129];
  bool is_admin;
  bool disabled;
  bool must_change_password;
  char default_project_id[AUTH_ID_LEN + 1];
  int64_t created_at;
};
/* Usernames: 1-64 of [a-z0-9._-], starting with a letter or digit, stored
 * lower case. Emails: a pragmatic RFC 5322 subset, stored lower case.
 * Passwords: at least 10 characters, not all one character class... the
 * policy's message says exactly what failed. */
int auth_username_check(const char *username, struct err *e);
int auth_email_check(const char *email, struct err *e);
int auth_password_policy(const char *password, struct err *e);
/* argon2id via crypto_pwhash_str; out holds crypto_pwhash_STRBYTES (128). */
int auth_password_hash(struct auth *a, const char *password, char out[128], struct err *e);
bool auth_password_check(const char *hash, const char *password);
/* Creates the user, their personal org (owner) and default project (admin). */
int auth_user_create(struct auth *a, const char *username, const char *email, const char *password,
                     bool is_admin, struct auth_user *out, struct err *e);
int auth_user_get(struct auth *a, const char *user_id, struct auth_user *out, struct err *e);
/* Username or email, case-insensitive. */
int auth_user_find(struct auth *a, const char *login, struct auth_user *out, struct err *e);
int auth_user_count(struct auth *a, int64_t *out, struct err *e);
/* Password login with throttling. Unknown user and wrong password give the
 * same error (UNAUTHENTICATED, "invalid username or password") and take the
 * same time; throttled attempts give RATE_LIMITED with *retry_after_s. */
int auth_login(struct auth *a, const char *login, const char *password, const char *client_addr,
               struct auth_user *out, int64_t *retry_after_s, struct err *e);
/* old_password NULL: an administrator's reset (sets must_change_password). */
int auth_password_change(struct auth *a, const char *user_id, const char *old_password,
                         const char *new_password, struct err *e);
/* On first start with no users: create `admin` with env_password or a
 * generated one, written to DATA/initial-admin-password (0600). *created
 * tells whether it happened; generated gets the password when generated. */
int auth_bootstrap_admin(struct auth *a, const char *env_password, const char *data_dir,
                         bool *created, char generated[65], struct err *e);
/* Self-signup (auth_opts.allow_signup): an ordinary user with an email;
 * PERMISSION_DENIED when turned off, RATE_LIMITED (*retry_after_s) when one
 * address signs up too often. */
int auth_signup(struct auth *a, const char *username, const char *email, const char *password,
                const char *client_addr, struct auth_user *out, int64_t *retry_after_s,
                struct err *e);
/* The seam for external identity providers (OIDC/SAML/LDAP later). */
int auth_identity_link(struct auth *a, const char *user_id, const char *provider,
                       const char *subject, struct err *e);
int auth_identity_find(struct auth *a, const char *provider, const char *subject,
                       struct auth_user *out, struct err *e);

/* ---- throttling (throttle.c): per account and per client address ------- *
 * After 5 failures in a row for an account (20 for a client address, which
 * may be shared), each further attempt must wait 2^(n-5) (2^(n-20)) seconds
 * from the last failure, capped at 15 minutes; a success resets the
 * account's counter. In memory: a restart forgets, which is acceptable for
 * backoff. */
struct auth_throttle;
struct auth_throttle *auth_throttle_new(void);
void auth_throttle_free(struct auth_throttle *t);
/* 0 when allowed, else seconds to wait. now_ms is injectable for tests. */
int64_t auth_throttle_wait(struct auth_throttle *t, const char *account, const char *addr,
                           int64_t now_ms);
void auth_throttle_failed(struct auth_throttle *t, const char *account, const char *addr,
                          int64_t now_ms);
void auth_throttle_succeeded(struct auth_throttle *t, const char *account, const char *addr);
struct auth_throttle *auth_throttle_of(struct auth *a);

/* ---- tokens (tokens.c) -------------------------------------------------- *
 * Access tokens are HS256 JWTs (libjwt) with a `kid` header naming a signing
 * key kept in `signing_keys`; rotation adds a key and retires the old one
 * after the access TTL, so nobody is logged out. Refresh tokens are opaque
 * (`kiln_rt_` + 32 random bytes, base62), stored hashed, rotated on every
 * use; presenting a used one revokes its whole family. */
struct auth_tokens {
  char access_token[2048];
  char refresh_token[96];
  int64_t expires_in; /* seconds */
};
int auth_tokens_issue(struct auth *a, const struct auth_user *u, struct auth_tokens *out,
                      struct err *e);
int auth_tokens_refresh(struct auth *a, const char *refresh_token, struct auth_tokens *out,
                        struct err *e);
/* Revokes the refresh token's family (logout). */
int auth_tokens_revoke(struct auth *a, const char *refresh_token, struct err *e);
int auth_jwt_verify(struct auth *a, const char *jwt, struct auth_principal *out, struct err *e);
int auth_signing_key_rotate(struct auth *a, char new_kid[AUTH_ID_LEN + 1], struct err *e);
/* At start: the current signing key (if any) opens with the configured
 * master key; a sealed key without the key, or with a wrong one, fails
 * here instead of on every sign-in. */
int auth_signing_key_check(struct auth *a, struct err *e);

/* ---- API keys (keys.c) --------------------------------------------------- *
 * `kiln_` + 32 random bytes in base62; shown once; stored as SHA-256. */
struct auth_api_key {
  char id[AUTH_ID_LEN + 1];
  char user_id[AUTH_ID_LEN + 1];
  char name[129];
  char prefix[16]; /* the first characters, for recognising a key in lists */
  unsigned scopes;
  char project_id[AUTH_ID_LEN + 1];
  int64_t created_at, expires_at, last_used_at, revoked_at, grace_until; /* 0 = unset */
};
#define AUTH_KEY_MAX 64
int auth_key_create(struct auth *a, const char *user_id, const char *name, unsigned scopes,
                    const char *project_id, int64_t expires_at, char key_out[AUTH_KEY_MAX],
                    struct auth_api_key *out, struct err *e);
/* Valid, unexpired, unrevoked (or within its rotation grace): fills the
 * principal and records last-used time. */
int auth_key_verify(struct auth *a, const char *key, struct auth_principal *out, struct err *e);
int auth_key_get(struct auth *a, const char *key_id, struct auth_api_key *out, struct err *e);
/* The user's keys, newest first; cap entries; returns the count or <0. */
int auth_key_list(struct auth *a, const char *user_id, struct auth_api_key *out, int cap,
                  struct err *e);
int auth_key_revoke(struct auth *a, const char *key_id, struct err *e);
/* A new key with the same name/scopes/project; the old one stays valid for
 * grace_s seconds. */
int auth_key_rotate(struct auth *a, const char *key_id, int64_t grace_s, char key_out[AUTH_KEY_MAX],
                    struct auth_api_key *out, struct err *e);

/* ---- orgs, projects, memberships, invitations (orgs.c) -------------------- */
struct auth_org {
  char id[AUTH_ID_LEN + 1];
  char name[65];
  char display_name[129];
  int64_t created_at;
};
struct auth_project {
  char id[AUTH_ID_LEN + 1];
  char org_id[AUTH_ID_LEN + 1];
  char name[65];
  char description[513];
  int64_t created_at;
};
int auth_org_create(struct auth *a, const char *owner_user_id, const char *name,
                    const char *display_name, struct auth_org *out, struct err *e);
int auth_org_get(struct auth *a, const char *org_id, struct auth_org *out, struct err *e);
int auth_org_delete(struct auth *a, const char *org_id, struct err *e);
int auth_org_member_set(struct auth *a, const char *org_id, const char *user_id,
                        enum org_role role, struct err *e);
/* Refused (CONFLICT) when it would leave the org without an owner. */
int auth_org_member_remove(struct auth *a, const char *org_id, const char *user_id, struct err *e);
enum org_role auth_org_role(struct auth *a, const char *org_id, const char *user_id);
int auth_project_create(struct auth *a, const char *org_id, const char *name,
                        const char *description, const char *creator_user_id,
                        struct auth_project *out, struct err *e);
int auth_project_get(struct auth *a, const char *project_id, struct auth_project *out,
                     struct err *e);
int auth_project_delete(struct auth *a, const char *project_id, struct err *e);
int auth_project_member_set(struct auth *a, const char *project_id, const char *user_id,
                            enum project_role role, struct err *e);
int auth_project_member_remove(struct auth *a, const char *project_id, const char *user_id,
                               struct err *e);
/* The effective role: the project membership, or admin for the org's
 * owners/admins, or viewer for plain org members; NONE otherwise. */
enum project_role auth_project_role(struct auth *a, const char *project_id, const char *user_id);
/* Listings as JSON arrays (newest first, at most 1000 entries):
 * orgs: [{id, name, display_name?, role, created_at}] of the user's orgs;
 * projects: [{id, org_id, org_name, name, description?, role, created_at}]
 * the user can see (every project when all is true: server admins);
 * members: [{user_id, username, email?, role}]. */
json_t *auth_orgs_of_user(struct auth *a, const char *user_id, struct err *e);
json_t *auth_projects_of_user(struct auth *a, const char *user_id, bool all, struct err *e);
json_t *auth_org_members(struct auth *a, const char *org_id, struct err *e);
json_t *auth_project_members(struct auth *a, const char *project_id, struct err *e);
/* Invitations: a single-use token (returned once) valid for ttl_s. */
int auth_invite_create(struct auth *a, const char *org_id, const char *project_id,
                       const char *email, const char *role, const char *invited_by,
                       int64_t ttl_s, char token_out[AUTH_KEY_MAX], char id_out[AUTH_ID_LEN + 1],
                       struct err *e);
int auth_invite_accept(struct auth *a, const char *token, const char *user_id, struct err *e);

/* ---- invitation management (invitations.c) ------------------------------- *
 * An invitation as JSON: {id, org_id, email, role, project_id?, project_name?,
 * invited_by, invited_by_username?, created_at, expires_at, accepted_at?,
 * accepted_by?, revoked_at?, status} with status pending | accepted |
 * expired | revoked (expiry is the clock passing expires_at). */
struct auth_invite_filter {
  const char *status;     /* one of the four, or NULL for all */
  const char *page_token; /* from the previous page, or NULL */
  int max_results;        /* 1..1000 */
};
#define AUTH_PAGE_TOKEN_MAX 64
/* The org's invitations, newest first; next_token gets the token of the
 * next page, or "" when this was the last. */
json_t *auth_invite_list(struct auth *a, const char *org_id, const struct auth_invite_filter *f,
                         char next_token[AUTH_PAGE_TOKEN_MAX], struct err *e);
/* One invitation of the org (RESOURCE_DOES_NOT_EXIST when it is another org's). */
json_t *auth_invite_get(struct auth *a, const char *org_id, const char *invitation_id,
                        struct err *e);
/* The invitation a token belongs to (after accepting it, say what it opened). */
json_t *auth_invite_by_token(struct auth *a, const char *token, struct err *e);
/* pending (or expired) -> revoked; revoking again is a no-op; an accepted
 * invitation is a CONFLICT (remove the member instead). */
int auth_invite_revoke(struct auth *a, const char *org_id, const char *invitation_id,
                       struct err *e);
/* Mails the invitation with its accept link (which holds the token) to the
 * invitee. Fails (UNAVAILABLE, NOT_READY without SMTP) with a message that
 * holds no secret; the invitation stays valid either way. */
int auth_invite_deliver(struct auth *a, const char *invitation_id, const char *link,
                        struct err *e);

/* ---- outgoing mail (mail.c) ---------------------------------------------- *
 * Plain-text mail over SMTP (smtp:// with STARTTLS when offered or required,
 * or smtps://) through libcurl, bounded by a timeout. */
struct auth_mail_opts {
  const char *smtp_url;   /* smtp://host:port or smtps://host:port; NULL/"" = no SMTP */
  const char *from;       /* "kiln@example.com" or "Kiln <kiln@example.com>" */
  const char *user;       /* SMTP AUTH user, or NULL */
  const char *password;   /* with user; copied and wiped on close */
  bool require_starttls;  /* smtp:// must upgrade to TLS or fail */
  int timeout_s;          /* connect and whole transaction; 0 = 10 s */
  const char *public_url; /* base of links (https://kiln.example.com); "" = from the request */
};
struct auth_mail;
/* Validates and copies the settings (call at start, before any thread:
 * it initialises libcurl). Refuses credentials inside the URL. */
int auth_mail_setup(struct auth *a, const struct auth_mail_opts *o, struct err *e);
bool auth_mail_enabled(struct auth *a);
const char *auth_public_url(struct auth *a); /* "" when not configured */
void auth_mail_free(struct auth_mail *m);
struct auth_mail **auth_mail_slot(struct auth *a); /* the room's settings (auth.c) */
/* INVALID_PARAMETER_VALUE when value holds CR, LF or another control
 * character (header injection), naming `what`. */
int auth_mail_header_check(const char *what, const char *value, struct err *e);
struct auth_mail_msg {
  const char *from, *to, *subject, *body, *message_id; /* message_id without <> */
  int64_t date_ms;
};
/* The RFC 5322 text: From, To, Subject (RFC 2047 encoded when not ASCII),
 * Date, Message-ID, MIME-Version, Content-Type text/plain; charset=utf-8,
 * then the body with CRLF line ends. Dot-stuffing is the transport's job. */
int auth_mail_build(const struct auth_mail_msg *m, struct buf *out, struct err *e);
int auth_mail_send(struct auth *a, const char *to, const char *subject, const char *body,
                   struct err *e);

/* ---- browser sessions (sessions.c) ------------------------------------------ *
 * The dashboard's sign-in: an opaque session token for an HttpOnly cookie
 * and a CSRF token (its own cookie, readable by the page) that must come
 * back in X-CSRF-Token on state-changing requests. Both stored as SHA-256;
 * sessions expire session_ttl_s after sign-in; a password change or
 * reset revokes them all. */
#define AUTH_SESSION_COOKIE "kiln_session"
#define AUTH_CSRF_COOKIE "kiln_csrf"
struct auth_session {
  char token[AUTH_KEY_MAX];
  char csrf[AUTH_KEY_MAX];
  int64_t expires_at; /* epoch ms */
};
int auth_session_create(struct auth *a, const struct auth_user *u, const char *client_addr,
                        struct auth_session *out, struct err *e);
/* need_csrf: the request changes state, so csrf must match the session's.
 * Bad/expired/revoked session: UNAUTHENTICATED; CSRF mismatch:
 * PERMISSION_DENIED. */
int auth_session_verify(struct auth *a, const char *token, const char *csrf, bool need_csrf,
                        struct auth_principal *p, struct err *e);
int auth_session_revoke(struct auth *a, const char *token, const char *client_addr, struct err *e);

/* ---- authentication (authn.c) ---------------------------------------------- *
 * From the raw header values (NULL when absent): `Authorization: Bearer`
 * with a JWT or an API key, `X-API-Key`, or `Authorization: Basic`
 * (username/password, throttled like a login). No credentials: 0 and an
 * AUTH_ANON principal; bad credentials: UNAUTHENTICATED (or RATE_LIMITED). */
int auth_authenticate(struct auth *a, const char *authorization, const char *x_api_key,
                      const char *client_addr, struct auth_principal *p, struct err *e);
/* Drops the user's remembered Basic credentials (password changes). */
void auth_basic_forget_user(const char *user_id);

/* ---- authorization: the one central check ---------------------------- *
 * need: the route's permission as scope bits (one of AUTH_SCOPE_*);
 * project_id: the resource's project or NULL for non-project routes.
 * Answers 0, or -ERR_UNAUTHENTICATED (anonymous), -ERR_PERMISSION_DENIED
 * (known but not allowed) or -ERR_RESOURCE_DOES_NOT_EXIST (a project the
 * caller may not even know about: cross-tenant access reveals nothing). */
int auth_authorize(struct auth *a, const struct auth_principal *p, unsigned need,
                   const char *project_id, struct err *e);

/* ---- audit log (audit.c) ---------------------------------------------------- *
 * Append-only; each entry's hash = SHA-256(prev_hash || canonical entry), so
 * editing or deleting any entry breaks the chain from there on. */
struct auth_audit_entry {
  const char *actor;       /* user id, "key:<id>", or NULL for anonymous */
  const char *action;      /* "auth.login", "key.create", ... */
  const char *target;      /* what it acted on, or NULL */
  const char *client_addr; /* or NULL */
  const char *request_id;  /* or NULL */
  const char *outcome;     /* "success", "failure", "denied" */
  const char *detail;      /* JSON object text without secrets, or NULL */
};
/* Who is acting, from where, in which request: set by the HTTP layer with
 * db_context_set() around each handler. auth_audit_append fills an entry's
 * missing client_addr and request_id from it, and its actor wins over the
 * entry's (an administrator revoking someone's key is the actor, not the
 * key's owner). Without a context the entry is written as given. */
struct auth_audit_ctx {
  const char *actor; /* user id or "key:<id>"; NULL when anonymous */
  const char *client_addr, *request_id;
};
/* Inside a db_write job, so the entry commits with the change it records. */
int auth_audit_append(struct db_conn *c, const struct auth_audit_entry *en, struct err *e);
/* Its own write job (for events that change nothing else, like a failed login). */
int auth_audit_record(struct db *db, const struct auth_audit_entry *en, struct err *e);
/* Walks the chain; 0 when intact, else -ERR_DATA_CORRUPTED with the first bad
 * seq in *bad_seq (and e naming it: edited, deleted or reordered). */
int auth_audit_verify(struct db *db, int64_t *checked, int64_t *bad_seq, struct err *e);
struct auth_audit_filter {
  const char *actor, *action; /* exact match, or NULL */
  int64_t since_ms, until_ms; /* 0 = open */
  int64_t after_seq;          /* paging: entries with seq below this (newest first); 0 = start */
  int max_results;            /* 1..1000 */
};
/* A JSON array of entries, newest first; *next_after gets the seq to pass
 * as after_seq for the next page, or 0 when this was the last. */
json_t *auth_audit_list(struct db *db, const struct auth_audit_filter *f, int64_t *next_after,
                        struct err *e);

#endif
