/* auth/api_orgs: HTTP handlers for organizations, projects, memberships and
 * invitations. Project routes are authorized centrally through their
 * project; org routes check the caller's org role here, because an org is
 * not a project. */
#include "http/http.h"

#include <sodium.h>
#include <string.h>

static struct auth *A(struct req *rq) { return req_app(rq)->auth; }

static void audit(struct req *rq, const char *action, const char *target, const char *detail) {
  struct auth_audit_entry en = {.actor = req_actor(rq), .action = action, .target = target,
                                .client_addr = req_client_addr(rq), .request_id = req_id(rq),
                                .outcome = "success", .detail = detail};
  struct err e;
  if (auth_audit_record(req_app(rq)->db, &en, &e)) log_warn("audit.failed", "%s: %s", action, e.msg);
}

static const char *project_param(struct req *rq, bool *missing) {
  const char *id = req_param(rq, "project_id");
  if (!id || !*id) *missing = true;
  return id;
}

/* The caller's role in the org, or a reply: 404 for non-members (the org's
 * existence is not revealed), 403 below `need`. Server admins pass. */
static int org_access(struct req *rq, struct reply *rp, const char *org_id, enum org_role need) {
  const struct auth_principal *p = req_principal(rq);
  struct auth_org o;
  struct err e;
  bool exists = auth_org_get(A(rq), org_id, &o, &e) == 0;
  if (p->is_admin && exists) return 0;
  enum org_role r = exists ? auth_org_role(A(rq), org_id, p->user_id) : ORG_ROLE_NONE;
  if (r == ORG_ROLE_NONE) {
    reply_errf(rp, ERR_RESOURCE_DOES_NOT_EXIST, "organization %s does not exist", org_id);
    return -1;
  }
  if (r < need) {
    reply_errf(rp, ERR_PERMISSION_DENIED, "your role in this organization (%s) does not allow this; it needs %s",
               org_role_name(r), org_role_name(need));
    return -1;
  }
  return 0;
}

/* {user_id} in member routes takes a user id, a username or an email: the
 * id it names, or the text unchanged (the domain then answers "not found").
 * Runs after the access check, so only those who may manage members can
 * learn whether a name exists. */
static const char *user_param(struct req *rq) {
  const char *v = req_param(rq, "user_id");
  struct auth_user u;
  struct err e;
  if (!v || !*v || auth_user_get(A(rq), v, &u, &e) == 0) return v;
  if (auth_user_find(A(rq), v, &u, &e) == 0) return arena_strdup(req_arena(rq), u.id);
  return v;
}

static json_t *org_json(const struct auth_org *o) {
  json_t *j = json_pack("{s:s, s:s, s:I}", "id", o->id, "name", o->name, "created_at", (json_int_t)o->created_at);
  if (o->display_name[0]) json_object_set_new(j, "display_name", json_string(o->display_name));
  return j;
}

static json_t *project_json(const struct auth_project *p) {
  json_t *j = json_pack("{s:s, s:s, s:s, s:I}", "id", p->id, "org_id", p->org_id, "name", p->name,
                        "created_at", (json_int_t)p->created_at);
  if (p->description[0]) json_object_set_new(j, "description", json_string(p->description));
  return j;
}

static int h_orgs_list(struct req *rq, struct reply *rp) {
  struct err e;
  json_t *arr = auth_orgs_of_user(A(rq), req_principal(rq)->user_id, &e);
  return arr ? reply_json(rp, 200, json_pack("{s:o}", "orgs", arr)) : reply_err(rp, &e);
}

static int h_orgs_create(struct req *rq, struct reply *rp) {
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  struct err e;
  const char *name, *display;
  if (json_get_str(b, "name", true, &name, &e) || json_get_str(b, "display_name", false, &display, &e))
    return reply_err(rp, &e);
  struct auth_org o;
  if (auth_org_create(A(rq), req_principal(rq)->user_id, name, display, &o, &e)) return reply_err(rp, &e);
  audit(rq, "org.create", o.id, NULL);
  return reply_json(rp, 200, json_pack("{s:o}", "org", org_json(&o)));
}

static int h_org_members(struct req *rq, struct reply *rp) {
  const char *org = req_param(rq, "org_id");
  if (org_access(rq, rp, org, ORG_ROLE_MEMBER)) return 0;
  struct err e;
  json_t *arr = auth_org_members(A(rq), org, &e);
  return arr ? reply_json(rp, 200, json_pack("{s:o}", "members", arr)) : reply_err(rp, &e);
}

static int h_org_member_set(struct req *rq, struct reply *rp) {
  const char *org = req_param(rq, "org_id");
  if (org_access(rq, rp, org, ORG_ROLE_ADMIN)) return 0;
  const char *user = user_param(rq);
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  struct err e;
  const char *role_s;
  if (json_get_str(b, "role", true, &role_s, &e)) return reply_err(rp, &e);
  enum org_role role = org_role_parse(role_s);
  if (role == ORG_ROLE_NONE) return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "role must be member, admin or owner");
  const struct auth_principal *p = req_principal(rq);
  if (role == ORG_ROLE_OWNER && !p->is_admin && auth_org_role(A(rq), org, p->user_id) != ORG_ROLE_OWNER)
    return reply_errf(rp, ERR_PERMISSION_DENIED, "only owners can make owners");
  if (auth_org_member_set(A(rq), org, user, role, &e)) return reply_err(rp, &e);
  char detail[64];
  snprintf(detail, sizeof detail, "{\"role\":\"%s\"}", org_role_name(role));
  audit(rq, "org.member_set", user, detail);
  return reply_json(rp, 200, json_object());
}

static int h_org_member_remove(struct req *rq, struct reply *rp) {
  const char *org = req_param(rq, "org_id");
  if (org_access(rq, rp, org, ORG_ROLE_ADMIN)) return 0;
  const char *user = user_param(rq);
  struct err e;
  if (auth_org_member_remove(A(rq), org, user, &e)) return reply_err(rp, &e);
  audit(rq, "org.member_remove", user, NULL);
  return reply_json(rp, 200, json_object());
}

/* The base of links sent to people: --public-url, else the request's own
 * host with the scheme the server speaks. A Host header that is not a plain
 * host[:port] is not echoed into a link anyone will click. */
static const char *link_base(struct req *rq) {
  const char *pub = auth_public_url(A(rq));
  if (*pub) return pub;
  const char *host = req_header(rq, "Host");
  bool ok = host && *host && strlen(host) <= 255;
  for (const char *p = host; ok && *p; p++)
    ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
         strchr(".-:[]_", *p) != NULL;
  return arena_printf(req_arena(rq), "%s://%s", req_app(rq)->tls ? "https" : "http", ok ? host : "localhost");
}

/* Creates the invitation, then delivers it: by mail when SMTP is set up
 * (the answer then holds neither link nor token), else — or when the mail
 * could not be sent — by answering the link for the inviter to pass on.
 * The invitation is committed before any delivery, so a failed send loses
 * nothing. */
static int h_invite(struct req *rq, struct reply *rp) {
  const char *org = req_param(rq, "org_id");
  if (org_access(rq, rp, org, ORG_ROLE_ADMIN)) return 0;
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  struct err e;
  const char *email, *role, *project;
  int64_t ttl = 7 * 86400;
  if (json_get_str(b, "email", true, &email, &e) || json_get_str(b, "role", true, &role, &e) ||
      json_get_str(b, "project_id", false, &project, &e) || json_get_i64(b, "ttl_seconds", false, &ttl, &e))
    return reply_err(rp, &e);
  /* the address goes into a mail header: no line breaks or controls */
  if (auth_mail_header_check("email", email, &e)) return reply_err(rp, &e);
  char token[AUTH_KEY_MAX], id[AUTH_ID_LEN + 1];
  if (auth_invite_create(A(rq), org, project, email, role, req_principal(rq)->user_id, ttl, token, id, &e))
    return reply_err(rp, &e);
  char *link = arena_printf(req_arena(rq), "%s/invitations/accept?token=%s", link_base(rq), token);
  sodium_memzero(token, sizeof token);
  bool mailed = false;
  char delivery_error[sizeof e.msg] = "";
  if (auth_mail_enabled(A(rq))) {
    struct err me;
    mailed = auth_invite_deliver(A(rq), id, link, &me) == 0;
    if (!mailed) {
      str_copy(delivery_error, sizeof delivery_error, me.msg);
      log_warn("invitation.mail_failed", "invitation %s: %s", id, me.msg);
    }
  }
  json_t *inv = auth_invite_get(A(rq), org, id, &e);
  if (!inv) return reply_err(rp, &e);
  json_t *detail = json_pack("{s:O, s:O, s:s}", "email", json_object_get(inv, "email"), "role",
                             json_object_get(inv, "role"), "delivery", mailed ? "email" : "link");
  if (project && *project) json_object_set_new(detail, "project_id", json_string(project));
  if (delivery_error[0]) json_object_set_new(detail, "delivery_error", json_string(delivery_error));
  char *detail_s = json_emit_arena(req_arena(rq), detail, NULL);
  json_decref(detail);
  audit(rq, "invitation.create", id, detail_s);
  json_t *out = json_pack("{s:s, s:o, s:s}", "id", id, "invitation", inv, "delivery", mailed ? "email" : "link");
  if (!mailed) {
    json_object_set_new(out, "link", json_string(link));
    json_object_set_new(out, "token", json_string(strstr(link, "token=") + 6));
    if (delivery_error[0]) json_object_set_new(out, "delivery_error", json_string(delivery_error));
  }
  else
    log_info("invitation.mailed", "invitation %s mailed to the invitee", id);
  sodium_memzero(link, strlen(link));
  reply_header(rp, "Cache-Control", "no-store");
  return reply_json(rp, 200, out);
}

static int h_invitations_list(struct req *rq, struct reply *rp) {
  const char *org = req_param(rq, "org_id");
  if (org_access(rq, rp, org, ORG_ROLE_ADMIN)) return 0;
  struct auth_invite_filter f = {.status = req_query(rq, "status"),
                                 .page_token = req_query(rq, "page_token"), .max_results = 100};
  const char *v = req_query(rq, "max_results");
  int64_t n;
  if (v) {
    if (str_to_i64(v, &n) || n < 1 || n > 1000)
      return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "max_results must be between 1 and 1000");
    f.max_results = (int)n;
  }
  struct err e;
  char next[AUTH_PAGE_TOKEN_MAX];
  json_t *arr = auth_invite_list(A(rq), org, &f, next, &e);
  if (!arr) return reply_err(rp, &e);
  json_t *o = json_pack("{s:o}", "invitations", arr);
  if (next[0]) json_object_set_new(o, "next_page_token", json_string(next));
  return reply_json(rp, 200, o);
}

static int h_invitation_revoke(struct req *rq, struct reply *rp) {
  const char *org = req_param(rq, "org_id"), *id = req_param(rq, "invitation_id");
  if (org_access(rq, rp, org, ORG_ROLE_ADMIN)) return 0;
  struct err e;
  if (auth_invite_revoke(A(rq), org, id, &e)) return reply_err(rp, &e);
  audit(rq, "invitation.revoke", id, NULL);
  return reply_json(rp, 200, json_object());
}

static int h_invite_accept(struct req *rq, struct reply *rp) {
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  struct err e;
  const char *token;
  if (json_get_str(b, "token", true, &token, &e)) return reply_err(rp, &e);
  if (auth_invite_accept(A(rq), token, req_principal(rq)->user_id, &e)) return reply_err(rp, &e);
  json_t *inv = auth_invite_by_token(A(rq), token, &e);
  const char *inv_id = json_string_value(json_object_get(inv, "id"));
  char detail[80] = "";
  if (inv_id) snprintf(detail, sizeof detail, "{\"invitation_id\":\"%s\"}", inv_id);
  audit(rq, "invitation.accept", req_principal(rq)->user_id, detail[0] ? detail : NULL);
  /* what the invitation opened, so a client can switch to it */
  return reply_json(rp, 200, inv ? json_pack("{s:o}", "invitation", inv) : json_object());
}

/* POST /api/v1/invitations/preview: what an invitation offers, before
 * accepting it (the token stays unspent). The token is the credential for
 * this, as for accepting; the body keeps it out of URLs and access logs. */
static int h_invite_preview(struct req *rq, struct reply *rp) {
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  struct err e;
  const char *token;
  if (json_get_str(b, "token", true, &token, &e)) return reply_err(rp, &e);
  json_t *inv = auth_invite_by_token(A(rq), token, &e);
  if (!inv) return reply_err(rp, &e);
  struct auth_org org;
  const char *org_id = json_string_value(json_object_get(inv, "org_id"));
  if (org_id && auth_org_get(A(rq), org_id, &org, &e) == 0) {
    json_object_set_new(inv, "org_name", json_string(org.name));
    if (org.display_name[0]) json_object_set_new(inv, "org_display_name", json_string(org.display_name));
  }
  return reply_json(rp, 200, json_pack("{s:o}", "invitation", inv));
}

static int h_projects_list(struct req *rq, struct reply *rp) {
  const struct auth_principal *p = req_principal(rq);
  struct err e;
  json_t *arr = auth_projects_of_user(A(rq), p->user_id, p->is_admin && !p->project_id[0], &e);
  if (!arr) return reply_err(rp, &e);
  if (p->project_id[0]) { /* a project-restricted key sees its project only */
    for (size_t i = 0; i < json_array_size(arr);) {
      if (str_eq(json_string_value(json_object_get(json_array_get(arr, i), "id")), p->project_id)) i++;
      else json_array_remove(arr, i);
    }
  }
  return reply_json(rp, 200, json_pack("{s:o}", "projects", arr));
}

static int h_projects_create(struct req *rq, struct reply *rp) {
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  struct err e;
  const char *org, *name, *desc;
  if (json_get_str(b, "org_id", true, &org, &e) || json_get_str(b, "name", true, &name, &e) ||
      json_get_str(b, "description", false, &desc, &e))
    return reply_err(rp, &e);
  if (org_access(rq, rp, org, ORG_ROLE_ADMIN)) return 0;
  const struct auth_principal *p = req_principal(rq);
  /* a server admin outside the org creates it without becoming a member */
  bool member = auth_org_role(A(rq), org, p->user_id) != ORG_ROLE_NONE;
  struct auth_project pr;
  if (auth_project_create(A(rq), org, name, desc, member ? p->user_id : NULL, &pr, &e)) return reply_err(rp, &e);
  audit(rq, "project.create", pr.id, NULL);
  return reply_json(rp, 200, json_pack("{s:o}", "project", project_json(&pr)));
}

static int h_project_get(struct req *rq, struct reply *rp) {
  struct auth_project pr;
  struct err e;
  if (auth_project_get(A(rq), req_param(rq, "project_id"), &pr, &e)) return reply_err(rp, &e);
  const struct auth_principal *p = req_principal(rq);
  enum project_role r = auth_project_role(A(rq), pr.id, p->user_id);
  json_t *j = project_json(&pr);
  json_object_set_new(j, "role", json_string(r == PROJECT_ROLE_NONE ? "admin" : project_role_name(r)));
  return reply_json(rp, 200, json_pack("{s:o}", "project", j));
}

static int h_project_members(struct req *rq, struct reply *rp) {
  struct err e;
  json_t *arr = auth_project_members(A(rq), req_param(rq, "project_id"), &e);
  return arr ? reply_json(rp, 200, json_pack("{s:o}", "members", arr)) : reply_err(rp, &e);
}

static int h_project_member_set(struct req *rq, struct reply *rp) {
  json_t *b = req_json_object(rq, rp);
  if (!b) return 0;
  struct err e;
  const char *role_s;
  if (json_get_str(b, "role", true, &role_s, &e)) return reply_err(rp, &e);
  enum project_role role = project_role_parse(role_s);
  if (role == PROJECT_ROLE_NONE) return reply_errf(rp, ERR_INVALID_PARAMETER_VALUE, "role must be viewer, editor or admin");
  const char *user = user_param(rq);
  if (auth_project_member_set(A(rq), req_param(rq, "project_id"), user, role, &e)) return reply_err(rp, &e);
  char detail[64];
  snprintf(detail, sizeof detail, "{\"role\":\"%s\"}", project_role_name(role));
  audit(rq, "project.member_set", user, detail);
  return reply_json(rp, 200, json_object());
}

static int h_project_member_remove(struct req *rq, struct reply *rp) {
  struct err e;
  const char *user = user_param(rq);
  if (auth_project_member_remove(A(rq), req_param(rq, "project_id"), user, &e)) return reply_err(rp, &e);
  audit(rq, "project.member_remove", user, NULL);
  return reply_json(rp, 200, json_object());
}

#define S_EMPTY "{\"type\":\"object\",\"maxProperties\":0}"
#define S_ROLE_BODY "{\"type\":\"object\",\"required\":[\"role\"],\"properties\":{\"role\":{\"type\":\"string\"}}}"
#define S_ORG                                                                                      \
  "{\"type\":\"object\",\"required\":[\"id\",\"name\",\"created_at\"],\"properties\":{\"id\":{"   \
  "\"type\":\"string\"},\"name\":{\"type\":\"string\"},\"display_name\":{\"type\":\"string\"},"   \
  "\"role\":{\"enum\":[\"member\",\"admin\",\"owner\"]},\"created_at\":{\"type\":\"integer\"}}}"
#define S_PROJECT                                                                                  \
  "{\"type\":\"object\",\"required\":[\"id\",\"org_id\",\"name\",\"created_at\"],\"properties\":{" \
  "\"id\":{\"type\":\"string\"},\"org_id\":{\"type\":\"string\"},\"org_name\":{\"type\":"         \
  "\"string\"},\"name\":{\"type\":\"string\"},\"description\":{\"type\":\"string\"},\"role\":{"    \
  "\"enum\":[\"viewer\",\"editor\",\"admin\"]},\"created_at\":{\"type\":\"integer\"}}}"
#define S_MEMBERS                                                                                  \
  "{\"type\":\"object\",\"required\":[\"members\"],\"properties\":{\"members\":{\"type\":"        \
  "\"array\",\"items\":{\"type\":\"object\",\"required\":[\"user_id\",\"username\",\"role\"]}}}}"

#define S_INVITATION                                                                               \
  "{\"type\":\"object\",\"required\":[\"id\",\"email\",\"role\",\"invited_by\",\"created_at\","    \
  "\"expires_at\",\"status\"],\"properties\":{\"id\":{\"type\":\"string\"},\"org_id\":{\"type\":"     \
  "\"string\"},\"org_name\":{\"type\":\"string\"},\"email\":{\"type\":"                          \
  "\"string\"},\"role\":{\"type\":\"string\"},\"project_id\":{\"type\":\"string\"},"                \
  "\"project_name\":{\"type\":\"string\"},\"invited_by\":{\"type\":\"string\"},"                    \
  "\"invited_by_username\":{\"type\":\"string\"},\"created_at\":{\"type\":\"integer\"},"             \
  "\"expires_at\":{\"type\":\"integer\"},\"accepted_at\":{\"type\":\"integer\"},\"accepted_by\":{"    \
  "\"type\":\"string\"},\"revoked_at\":{\"type\":\"integer\"},\"status\":{\"enum\":[\"pending\","      \
  "\"accepted\",\"expired\",\"revoked\"]}}}"
/* a mailed invitation's answer carries neither the link nor the token */
#define S_INVITE_ANSWER                                                                            \
  "{\"type\":\"object\",\"required\":[\"id\",\"invitation\",\"delivery\"],\"properties\":{\"id\":{"     \
  "\"type\":\"string\"},\"invitation\":" S_INVITATION ",\"delivery\":{\"enum\":[\"email\",\"link\"]},\"link\":{\"type\":\"string\"},"        \
  "\"token\":{\"type\":\"string\"},\"delivery_error\":{\"type\":\"string\"}},\"if\":{\"properties\":{"  \
  "\"delivery\":{\"const\":\"link\"}}},\"then\":{\"required\":[\"link\",\"token\"]},\"else\":{\"not\":{" \
  "\"anyOf\":[{\"required\":[\"link\"]},{\"required\":[\"token\"]},{\"required\":[\"delivery_error\"]}]}}}"

const struct route auth_org_routes[] = {
    {"GET", "/api/v1/orgs", PERM_READ, "Your organizations and your role in each", "orgs", NULL,
     "{\"type\":\"object\",\"required\":[\"orgs\"],\"properties\":{\"orgs\":{\"type\":\"array\","
     "\"items\":" S_ORG "}}}",
     NULL, h_orgs_list, 0},
    {"POST", "/api/v1/orgs", PERM_WRITE, "Create an organization (you become its owner)", "orgs",
     "{\"type\":\"object\",\"required\":[\"name\"]}",
     "{\"type\":\"object\",\"required\":[\"org\"],\"properties\":{\"org\":" S_ORG "}}", NULL,
     h_orgs_create, 0},
    {"GET", "/api/v1/orgs/{org_id}/members", PERM_READ, "Members of an organization", "orgs", NULL,
     S_MEMBERS, NULL, h_org_members, 0},
    {"PUT", "/api/v1/orgs/{org_id}/members/{user_id}", PERM_WRITE,
     "Add a member or change their role (org admins; owners make owners)", "orgs", S_ROLE_BODY,
     S_EMPTY, NULL, h_org_member_set, 0},
    {"DELETE", "/api/v1/orgs/{org_id}/members/{user_id}", PERM_WRITE,
     "Remove a member (the last owner cannot be removed)", "orgs", NULL, S_EMPTY, NULL,
     h_org_member_remove, 0},
    {"POST", "/api/v1/orgs/{org_id}/invitations", PERM_WRITE,
     "Invite someone by email (org admins): mailed when SMTP is configured, else the single-use "
     "accept link is answered",
     "orgs",
     "{\"type\":\"object\",\"required\":[\"email\",\"role\"],\"properties\":{\"email\":{\"type\":"
     "\"string\"},\"role\":{\"type\":\"string\"},\"project_id\":{\"type\":\"string\"},\"ttl_seconds\":{"
     "\"type\":\"integer\"}}}",
     S_INVITE_ANSWER, NULL, h_invite, 0},
    {"GET", "/api/v1/orgs/{org_id}/invitations", PERM_READ,
     "An organization's invitations with their status, newest first (org admins; filters: status, "
     "max_results, page_token)",
     "orgs", NULL,
     "{\"type\":\"object\",\"required\":[\"invitations\"],\"properties\":{\"invitations\":{"
     "\"type\":\"array\",\"items\":" S_INVITATION "},\"next_page_token\":{\"type\":\"string\"}}}",
     NULL, h_invitations_list, 0},
    {"DELETE", "/api/v1/orgs/{org_id}/invitations/{invitation_id}", PERM_WRITE,
     "Revoke a pending invitation (org admins)", "orgs", NULL, S_EMPTY, NULL, h_invitation_revoke,
     0},
    {"POST", "/api/v1/invitations/accept", PERM_READ, "Accept an invitation as the signed-in user",
     "orgs", "{\"type\":\"object\",\"required\":[\"token\"]}",
     "{\"type\":\"object\",\"properties\":{\"invitation\":" S_INVITATION "}}", NULL, h_invite_accept, 0},
    {"POST", "/api/v1/invitations/preview", PERM_READ,
     "What an invitation offers (org, project, role, status) without accepting it", "orgs",
     "{\"type\":\"object\",\"required\":[\"token\"]}",
     "{\"type\":\"object\",\"required\":[\"invitation\"],\"properties\":{\"invitation\":" S_INVITATION "}}",
     NULL, h_invite_preview, 0},
    {"GET", "/api/v1/projects", PERM_READ, "Projects you can see and your role in each", "projects",
     NULL,
     "{\"type\":\"object\",\"required\":[\"projects\"],\"properties\":{\"projects\":{\"type\":"
     "\"array\",\"items\":" S_PROJECT "}}}",
     NULL, h_projects_list, 0},
    {"POST", "/api/v1/projects", PERM_WRITE, "Create a project in an organization (org admins)",
     "projects", "{\"type\":\"object\",\"required\":[\"org_id\",\"name\"]}",
     "{\"type\":\"object\",\"required\":[\"project\"],\"properties\":{\"project\":" S_PROJECT "}}",
     NULL, h_projects_create, 0},
    {"GET", "/api/v1/projects/{project_id}", PERM_READ, "A project and your role in it", "projects",
     NULL, "{\"type\":\"object\",\"required\":[\"project\"],\"properties\":{\"project\":" S_PROJECT "}}",
     NULL, h_project_get, 0, project_param},
    {"GET", "/api/v1/projects/{project_id}/members", PERM_READ, "Explicit members of a project",
     "projects", NULL, S_MEMBERS, NULL, h_project_members, 0, project_param},
    {"PUT", "/api/v1/projects/{project_id}/members/{user_id}", PERM_ADMIN,
     "Give an org member a role in the project (project admins)", "projects", S_ROLE_BODY, S_EMPTY,
     NULL, h_project_member_set, 0, project_param},
    {"DELETE", "/api/v1/projects/{project_id}/members/{user_id}", PERM_ADMIN,
     "Remove a project member (project admins)", "projects", NULL, S_EMPTY, NULL,
     h_project_member_remove, 0, project_param},
};
const size_t auth_org_routes_count = sizeof auth_org_routes / sizeof auth_org_routes[0];
