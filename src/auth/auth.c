/* auth/auth: the room's context and the names of roles and scopes. */
#include "auth.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct auth {
  struct db *db;
  struct auth_opts o;
  struct auth_throttle *throttle;
  struct auth_mail *mail; /* SMTP and link settings (mail.c); NULL = none */
};

int auth_open(struct auth **out, struct db *db, const struct auth_opts *o, struct err *e) {
  struct auth *a = calloc(1, sizeof *a);
  if (!a) return err_set(e, ERR_NO_MEMORY, NULL);
  a->db = db;
  if (o) a->o = *o;
  if (a->o.access_ttl_s <= 0) a->o.access_ttl_s = 900;
  if (a->o.refresh_ttl_s <= 0) a->o.refresh_ttl_s = 30 * 86400;
  if (a->o.session_ttl_s <= 0) a->o.session_ttl_s = 7 * 86400;
  if (a->o.pwhash_opslimit == 0) a->o.pwhash_opslimit = crypto_pwhash_OPSLIMIT_INTERACTIVE;
  if (a->o.pwhash_memlimit == 0) a->o.pwhash_memlimit = crypto_pwhash_MEMLIMIT_INTERACTIVE;
  a->throttle = auth_throttle_new();
  if (!a->throttle) {
    free(a);
    return err_set(e, ERR_NO_MEMORY, NULL);
  }
  *out = a;
  return 0;
}

void auth_close(struct auth *a) {
  if (!a) return;
  sodium_memzero(a->o.master_key, sizeof a->o.master_key);
  auth_throttle_free(a->throttle);
  auth_mail_free(a->mail);
  free(a);
}

struct db *auth_db(struct auth *a) { return a->db; }
const struct auth_opts *auth_options(const struct auth *a) { return &a->o; }
struct auth_throttle *auth_throttle_of(struct auth *a) { return a->throttle; }
struct auth_mail **auth_mail_slot(struct auth *a) { return &a->mail; }

static const char *const org_roles[] = {"none", "member", "admin", "owner"};
static const char *const project_roles[] = {"none", "viewer", "editor", "admin"};

const char *org_role_name(enum org_role r) {
  return (unsigned)r <= ORG_ROLE_OWNER ? org_roles[r] : "none";
}
enum org_role org_role_parse(const char *s) {
  for (int i = 1; i <= ORG_ROLE_OWNER; i++)
    if (str_eq(s, org_roles[i])) return (enum org_role)i;
  return ORG_ROLE_NONE;
}
const char *project_role_name(enum project_role r) {
  return (unsigned)r <= PROJECT_ROLE_ADMIN ? project_roles[r] : "none";
}
enum project_role project_role_parse(const char *s) {
  for (int i = 1; i <= PROJECT_ROLE_ADMIN; i++)
    if (str_eq(s, project_roles[i])) return (enum project_role)i;
  return PROJECT_ROLE_NONE;
}

static const struct {
  const char *name;
  unsigned bit;
} scope_names[] = {{"read", AUTH_SCOPE_READ},
                   {"write", AUTH_SCOPE_WRITE},
                   {"predict", AUTH_SCOPE_PREDICT},
                   {"admin", AUTH_SCOPE_ADMIN}};

int auth_scopes_parse(const char *csv, unsigned *out, struct err *e) {
  *out = 0;
  if (!csv || !*csv) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "scopes must not be empty");
  const char *p = csv;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    while (n && *p == ' ') p++, n--;
    while (n && p[n - 1] == ' ') n--;
    unsigned bit = 0;
    for (size_t i = 0; i < sizeof scope_names / sizeof scope_names[0]; i++)
      if (strlen(scope_names[i].name) == n && strncmp(p, scope_names[i].name, n) == 0) bit = scope_names[i].bit;
    if (!bit)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "unknown scope '%.*s' (scopes are read, write, predict, admin)", (int)(n > 40 ? 40 : n), p);
    *out |= bit;
    if (!end) break;
    p = end + 1;
  }
  return 0;
}

void auth_scopes_format(unsigned scopes, char *out, size_t cap) {
  size_t o = 0;
  out[0] = 0;
  for (size_t i = 0; i < sizeof scope_names / sizeof scope_names[0]; i++) {
    if (!(scopes & scope_names[i].bit)) continue;
    o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, "%s%s", o ? "," : "", scope_names[i].name);
  }
}

