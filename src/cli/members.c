/* cli/members: `kiln members` and `kiln invitations` — who belongs to an
 * org or a project with what role, and the invitations that bring people
 * in — over HTTP with the stored credentials. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "internal.h"

#define ID_HEX_LEN 32 /* org, project, user and invitation ids */

/* ---- arguments ------------------------------------------------------------- */

struct flagdef {
  const char *name; /* "--org" */
  const char **dst;
};

/* `--name value` and `--name=value` for the known names, positionals in
 * order; anything else is a usage error (exit 2) with the reason printed. */
static int parse_args(int argc, char **argv, const struct flagdef *defs, int ndefs, const char **pos,
                      int maxpos, int *npos, const char *usage) {
  *npos = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || a[1] == 0) {
      if (*npos >= maxpos) {
        fprintf(stderr, "kiln: unexpected argument '%s'\n%s", a, usage);
        return 2;
      }
      pos[(*npos)++] = a;
      continue;
    }
    const char *eq = strchr(a, '=');
    size_t n = eq ? (size_t)(eq - a) : strlen(a);
    int k = 0;
    while (k < ndefs && !(strlen(defs[k].name) == n && strncmp(defs[k].name, a, n) == 0)) k++;
    if (k == ndefs) {
      fprintf(stderr, "kiln: unknown option '%.*s'\n%s", (int)n, a, usage);
      return 2;
    }
    const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
    if (!v || !*v) {
      fprintf(stderr, "kiln: %s needs a value\n%s", defs[k].name, usage);
      return 2;
    }
    *defs[k].dst = v;
  }
  return 0;
}

/* Ids, usernames and emails go into URL paths: refuse anything that could
 * change the path rather than escaping it (no valid name needs it). */
static bool segment_ok(const char *what, const char *s) {
  for (const char *p = s; *p; p++) {
    char c = *p;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("._@+-", c))
      continue;
    fprintf(stderr, "kiln: %s '%s' has a character no name or id contains ('%c')\n", what, s, c);
    return false;
  }
  return *s != 0;
}

static bool is_id(const char *s) {
  size_t n = 0;
  for (; s[n]; n++)
    if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f'))) return false;
  return n == ID_HEX_LEN;
}

static const char *jstr(json_t *o, const char *k) {
  const char *v = json_string_value(json_object_get(o, k));
  return v ? v : "";
}

/* Prints the error and returns 1 unless the answer has the wanted status. */
static int expect(long st, json_t *out, long want) {
  if (st == want) return 0;
  cli_report_error(st, out);
  json_decref(out);
  return 1;
}

/* An org given by name or id: one of the caller's orgs, else (for server
 * administrators, who manage orgs they do not belong to) any 32-hex id. */
static int org_resolve(struct cli_client *cl, const char *want, char id[ID_HEX_LEN + 1],
                       char name[80]) {
  json_t *out;
  long st = cli_client_call(cl, "GET", "/api/v1/orgs", NULL, &out);
  if (expect(st, out, 200)) return 1;
  json_t *orgs = json_object_get(out, "orgs"), *o;
  size_t i;
  int rc = 1;
  json_array_foreach(orgs, i, o) {
    if (str_eq(jstr(o, "id"), want) || str_eq(jstr(o, "name"), want)) {
      str_copy(id, ID_HEX_LEN + 1, jstr(o, "id"));
      str_copy(name, 80, jstr(o, "name"));
      rc = 0;
      break;
    }
  }
  json_decref(out);
  if (rc && is_id(want)) {
    str_copy(id, ID_HEX_LEN + 1, want);
    str_copy(name, 80, want);
    rc = 0;
  }
  if (rc)
    fprintf(stderr, "kiln: you belong to no organization named '%s' (see `kiln members list --org` in "
                    "`kiln help members`; server administrators may give the org's id)\n",
            want);
  return rc;
}

/* ---- kiln members ------------------------------------------------------------ */

static const char members_usage[] =
    "usage: kiln members list   (--org ORG | --project PROJECT_ID)\n"
    "       kiln members add    (--org ORG | --project PROJECT_ID) --user USER [--role ROLE]\n"
    "       kiln members set    (--org ORG | --project PROJECT_ID) --user USER --role ROLE\n"
    "       kiln members remove (--org ORG | --project PROJECT_ID) --user USER\n";

/* The member entry naming user (id, username or email), or NULL. */
static json_t *member_find(json_t *members, const char *user) {
  json_t *m;
  size_t i;
  json_array_foreach(members, i, m) {
    if (str_eq(jstr(m, "user_id"), user) || strcasecmp(jstr(m, "username"), user) == 0 ||
        (jstr(m, "email")[0] && strcasecmp(jstr(m, "email"), user) == 0))
      return m;
  }
  return NULL;
}

static int members_get(struct cli_client *cl, const char *path, json_t **out) {
  long st = cli_client_call(cl, "GET", path, NULL, out);
  return expect(st, *out, 200);
}

int cli_members(int argc, char **argv) {
  const char *sub = argc > 0 ? argv[0] : "";
  const char *org = NULL, *project = NULL, *user = NULL, *role = NULL, *pos[1];
  int npos;
  struct flagdef defs[] = {{"--org", &org}, {"--project", &project}, {"--user", &user}, {"--role", &role}};
  bool list = str_eq(sub, "list"), add = str_eq(sub, "add"), set = str_eq(sub, "set"),
       remove = str_eq(sub, "remove");
  if (!list && !add && !set && !remove) {
    if (*sub) fprintf(stderr, "kiln: unknown members command '%s'\n", sub);
    fputs(members_usage, stderr);
    return 2;
  }
  if (parse_args(argc - 1, argv + 1, defs, 4, pos, 0, &npos, members_usage)) return 2;
  if (!org == !project) {
    fprintf(stderr, "kiln: give exactly one of --org or --project\n%s", members_usage);
    return 2;
  }
  if (!list && !user) {
    fprintf(stderr, "kiln: members %s needs --user (a username, email or user id)\n%s", sub, members_usage);
    return 2;
  }
  if (set && !role) {
    fprintf(stderr, "kiln: members set needs --role\n%s", members_usage);
    return 2;
  }
  if (list && (user || role)) {
    fprintf(stderr, "kiln: members list takes no --user or --role\n%s", members_usage);
    return 2;
  }
  if ((project && !segment_ok("project id", project)) || (user && !segment_ok("user", user)) ||
      (org && !segment_ok("organization", org)))
    return 2;
  if (add && !role) role = org ? "member" : "viewer";

  struct cli_client *cl = cli_client_open();
  if (!cl) return 1;
  char path[512], where[128], org_id[ID_HEX_LEN + 1], org_name[80];
  int rc = 1;
  if (org) {
    if (org_resolve(cl, org, org_id, org_name)) goto done;
    snprintf(path, sizeof path, "/api/v1/orgs/%s/members", org_id);
    snprintf(where, sizeof where, "the organization %s", org_name);
  } else {
    snprintf(path, sizeof path, "/api/v1/projects/%s/members", project);
    snprintf(where, sizeof where, "the project %s", project);
  }
  json_t *out = NULL;
  if (list) {
    if (members_get(cl, path, &out)) goto done;
    cli_print_json(out);
    json_decref(out);
    rc = 0;
    goto done;
  }
  char one[640];
  snprintf(one, sizeof one, "%s/%s", path, user);
  if (remove) {
    long st = cli_client_call(cl, "DELETE", one, NULL, &out);
    if (expect(st, out, 200)) goto done;
    cli_print_json(out);
    json_decref(out);
    rc = 0;
    goto done;
  }
  /* add refuses a member, set a non-member: say which verb was meant
   * rather than silently doing the other */
  if (members_get(cl, path, &out)) goto done;
  json_t *cur = member_find(json_object_get(out, "members"), user);
  if (add && cur) {
    fprintf(stderr, "kiln: %s is already a member of %s (role %s); use `kiln members set` to change the role\n",
            user, where, jstr(cur, "role"));
    json_decref(out);
    goto done;
  }
  if (set && !cur) {
    fprintf(stderr, "kiln: %s is not a member of %s; use `kiln members add`\n", user, where);
    json_decref(out);
    goto done;
  }
  json_decref(out);
  json_t *body = json_pack("{s:s}", "role", role);
  long st = cli_client_call(cl, "PUT", one, body, &out);
  json_decref(body);
  if (expect(st, out, 200)) goto done;
  json_decref(out);
  /* show the member as the server now has it */
  if (members_get(cl, path, &out)) goto done;
  cur = member_find(json_object_get(out, "members"), user);
  if (cur) cli_print_json(cur);
  json_decref(out);
  rc = 0;
done:
  cli_client_close(cl);
  return rc;
}

/* ---- kiln invitations ---------------------------------------------------------- */

static const char invitations_usage[] =
    "usage: kiln invitations create --org ORG --email EMAIL [--role ROLE] [--project PROJECT_ID] [--ttl SECONDS]\n"
    "       kiln invitations list   --org ORG [--status pending|accepted|expired|revoked]\n"
    "       kiln invitations revoke --org ORG INVITATION_ID\n"
    "       kiln invitations accept TOKEN_OR_LINK\n";

static int invitations_list(struct cli_client *cl, const char *org_id, const char *status) {
  json_t *all = json_array();
  char token[128] = "";
  int rc = 0;
  for (int pages = 0; pages < 10000; pages++) {
    char path[512];
    int n = snprintf(path, sizeof path, "/api/v1/orgs/%s/invitations?max_results=1000", org_id);
    if (status) n += snprintf(path + n, sizeof path - (size_t)n, "&status=%s", status);
    if (token[0]) snprintf(path + n, sizeof path - (size_t)n, "&page_token=%s", token);
    json_t *out;
    long st = cli_client_call(cl, "GET", path, NULL, &out);
    if (expect(st, out, 200)) {
      rc = 1;
      break;
    }
    json_array_extend(all, json_object_get(out, "invitations"));
    str_copy(token, sizeof token, jstr(out, "next_page_token"));
    json_decref(out);
    if (!token[0] || !segment_ok("page token", token)) break;
  }
  if (rc == 0) {
    json_t *o = json_pack("{s:O}", "invitations", all);
    cli_print_json(o);
    json_decref(o);
  }
  json_decref(all);
  return rc;
}

/* The token from a token or an accept link (…/invitations/accept?token=T). */
static const char *token_of(const char *arg, char *out, size_t cap) {
  const char *t = strstr(arg, "token=");
  t = t ? t + 6 : arg;
  size_t n = strcspn(t, "&# \t\r\n");
  if (n >= cap) n = cap - 1;
  memcpy(out, t, n);
  out[n] = 0;
  return out;
}

int cli_invitations(int argc, char **argv) {
  const char *sub = argc > 0 ? argv[0] : "";
  const char *org = NULL, *email = NULL, *role = NULL, *project = NULL, *ttl = NULL, *status = NULL,
             *pos[1];
  int npos;
  struct flagdef defs[] = {{"--org", &org},         {"--email", &email}, {"--role", &role},
                           {"--project", &project}, {"--ttl", &ttl},     {"--status", &status}};
  bool create = str_eq(sub, "create"), list = str_eq(sub, "list"), revoke = str_eq(sub, "revoke"),
       accept = str_eq(sub, "accept");
  if (!create && !list && !revoke && !accept) {
    if (*sub) fprintf(stderr, "kiln: unknown invitations command '%s'\n", sub);
    fputs(invitations_usage, stderr);
    return 2;
  }
  if (parse_args(argc - 1, argv + 1, defs, 6, pos, 1, &npos, invitations_usage)) return 2;
  int64_t ttl_s = 0;
  const char *why = NULL;
  if (accept) {
    if (npos != 1 || org || email || role || project || ttl || status) why = "accept takes only the token or link";
  } else if (!org) {
    why = "--org is required";
  } else if (create) {
    if (!email) why = "create needs --email";
    else if (npos || status) why = "create takes no positional argument or --status";
    else if (ttl && (str_to_i64(ttl, &ttl_s) || ttl_s <= 0)) why = "--ttl takes seconds";
  } else if (list) {
    if (npos || email || role || project || ttl) why = "list takes only --org and --status";
  } else if (npos != 1 || email || role || project || ttl || status) {
    why = "revoke takes --org and the invitation id";
  }
  if (why) {
    fprintf(stderr, "kiln: invitations %s\n%s", why, invitations_usage);
    return 2;
  }
  if ((org && !segment_ok("organization", org)) || (revoke && !segment_ok("invitation id", pos[0])) ||
      (status && !segment_ok("status", status)))
    return 2;

  struct cli_client *cl = cli_client_open();
  if (!cl) return 1;
  int rc = 1;
  char org_id[ID_HEX_LEN + 1], org_name[80], path[512];
  json_t *out = NULL;
  if (accept) {
    char token[256];
    json_t *body = json_pack("{s:s}", "token", token_of(pos[0], token, sizeof token));
    long st = cli_client_call(cl, "POST", "/api/v1/invitations/accept", body, &out);
    json_decref(body);
    memset(token, 0, sizeof token);
    if (expect(st, out, 200)) goto done;
    cli_print_json(out);
    json_decref(out);
    rc = 0;
    goto done;
  }
  if (org_resolve(cl, org, org_id, org_name)) goto done;
  if (list) {
    rc = invitations_list(cl, org_id, status);
    goto done;
  }
  if (revoke) {
    snprintf(path, sizeof path, "/api/v1/orgs/%s/invitations/%s", org_id, pos[0]);
    long st = cli_client_call(cl, "DELETE", path, NULL, &out);
    if (expect(st, out, 200)) goto done;
    cli_print_json(out);
    json_decref(out);
    rc = 0;
    goto done;
  }
  json_t *body = json_pack("{s:s, s:s}", "email", email, "role", role ? role : project ? "viewer" : "member");
  if (project) json_object_set_new(body, "project_id", json_string(project));
  if (ttl) json_object_set_new(body, "ttl_seconds", json_integer(ttl_s));
  snprintf(path, sizeof path, "/api/v1/orgs/%s/invitations", org_id);
  long st = cli_client_call(cl, "POST", path, body, &out);
  json_decref(body);
  if (expect(st, out, 200)) goto done;
  cli_print_json(out);
  if (str_eq(jstr(out, "delivery"), "link")) {
    const char *err = jstr(out, "delivery_error");
    if (*err) fprintf(stderr, "kiln: the invitation could not be mailed (%s)\n", err);
    fprintf(stderr, "kiln: pass this single-use link on to %s: %s\n", email, jstr(out, "link"));
  } else {
    fprintf(stderr, "kiln: invitation mailed to %s\n", email);
  }
  json_decref(out);
  rc = 0;
done:
  cli_client_close(cl);
  return rc;
}
