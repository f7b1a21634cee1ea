/* auth/authn: who is calling — turns the credential headers of a request
 * into a principal. Accepts `Authorization: Bearer <JWT or API key>` (so
 * MLflow's MLFLOW_TRACKING_TOKEN works), `X-API-Key: <key>`, and HTTP Basic
 * with username/password (MLFLOW_TRACKING_USERNAME/PASSWORD). */
#include "auth.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <strings.h>

/* MLflow clients send Basic credentials on every request, and each argon2id
 * check costs ~64 MiB and tens of milliseconds. A verified credential is
 * remembered for 30 s under a keyed hash (never the password itself), so a
 * burst of requests pays once. A password change drops them
 * right away (auth_basic_forget_user). */
#define BASIC_CACHE 64
#define BASIC_CACHE_MS 30000
struct basic_entry {
  uint8_t mac[32];
  int64_t expires_ms;
  struct auth_principal p;
};
static pthread_mutex_t basic_mu = PTHREAD_MUTEX_INITIALIZER;
static struct basic_entry basic_cache[BASIC_CACHE];
static uint8_t basic_key[crypto_auth_hmacsha256_KEYBYTES];
static pthread_once_t basic_once = PTHREAD_ONCE_INIT;

static void basic_init(void) { randombytes_buf(basic_key, sizeof basic_key); }

void auth_basic_forget_user(const char *user_id) {
  pthread_mutex_lock(&basic_mu);
  for (int i = 0; i < BASIC_CACHE; i++)
    if (strcmp(basic_cache[i].p.user_id, user_id) == 0) basic_cache[i].expires_ms = 0;
  pthread_mutex_unlock(&basic_mu);
}

/* keyed by the store too, so two auth instances in one process never share */
static void basic_mac(const struct auth *a, const char *b64, uint8_t out[32]) {
  pthread_once(&basic_once, basic_init);
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, basic_key, sizeof basic_key);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)&a, sizeof a);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)b64, strlen(b64));
  crypto_auth_hmacsha256_final(&st, out);
}

static bool basic_cached(const uint8_t mac[32], struct auth_principal *p) {
  int64_t now = time_wall_ms();
  bool hit = false;
  pthread_mutex_lock(&basic_mu);
  for (int i = 0; i < BASIC_CACHE && !hit; i++) {
    struct basic_entry *b = &basic_cache[i];
    if (b->expires_ms > now && sodium_memcmp(b->mac, mac, 32) == 0) {
      *p = b->p;
      hit = true;
    }
  }
  pthread_mutex_unlock(&basic_mu);
  return hit;
}

static void basic_remember(const uint8_t mac[32], const struct auth_principal *p) {
  int64_t now = time_wall_ms();
  pthread_mutex_lock(&basic_mu);
  struct basic_entry *slot = &basic_cache[0];
  for (int i = 0; i < BASIC_CACHE; i++)
    if (basic_cache[i].expires_ms < slot->expires_ms) slot = &basic_cache[i];
  memcpy(slot->mac, mac, 32);
  slot->expires_ms = now + BASIC_CACHE_MS;
  slot->p = *p;
  pthread_mutex_unlock(&basic_mu);
}

static bool is_api_key(const char *s) { return str_has_prefix(s, "kiln_") && !str_has_prefix(s, "kiln_rt_"); }

static int basic_login(struct auth *a, const char *b64, const char *client_addr,
                       struct auth_principal *p, struct err *e) {
  uint8_t mac[32];
  basic_mac(a, b64, mac);
  if (basic_cached(mac, p)) return 0;
  unsigned char raw[512];
  size_t n = 0;
  if (strlen(b64) > 680 ||
      sodium_base642bin(raw, sizeof raw - 1, b64, strlen(b64), " ", &n, NULL,
                        sodium_base64_VARIANT_ORIGINAL) != 0)
    return err_set(e, ERR_UNAUTHENTICATED, "malformed Basic credentials");
  raw[n] = 0;
  char *colon = memchr(raw, ':', n);
  if (!colon || memchr(raw, 0, n)) return err_set(e, ERR_UNAUTHENTICATED, "malformed Basic credentials");
  *colon = 0;
  struct auth_user u;
  int64_t retry = 0;
  int rc = auth_login(a, (const char *)raw, colon + 1, client_addr, &u, &retry, e);
  sodium_memzero(raw, sizeof raw);
  if (rc == -ERR_RATE_LIMITED) p->retry_after_s = retry > 0 ? retry : 1;
  if (rc) return rc;
  memset(p, 0, sizeof *p);
  p->kind = AUTH_BASIC;
  str_copy(p->user_id, sizeof p->user_id, u.id);
  str_copy(p->username, sizeof p->username, u.username);
  p->is_admin = u.is_admin;
  p->scopes = AUTH_SCOPE_ALL;
  basic_remember(mac, p);
  return 0;
}

int auth_authenticate(struct auth *a, const char *authorization, const char *x_api_key,
                      const char *client_addr, struct auth_principal *p, struct err *e) {
  memset(p, 0, sizeof *p);
  p->kind = AUTH_ANON;
  if (x_api_key && *x_api_key) return auth_key_verify(a, x_api_key, p, e);
  if (!authorization || !*authorization) return 0; /* anonymous */
  if (strncasecmp(authorization, "Bearer ", 7) == 0) {
    const char *tok = authorization + 7;
    while (*tok == ' ') tok++;
    if (!*tok) return err_set(e, ERR_UNAUTHENTICATED, "empty bearer token");
    return is_api_key(tok) ? auth_key_verify(a, tok, p, e) : auth_jwt_verify(a, tok, p, e);
  }
  if (strncasecmp(authorization, "Basic ", 6) == 0) return basic_login(a, authorization + 6, client_addr, p, e);
  return err_set(e, ERR_UNAUTHENTICATED, "unsupported Authorization scheme (use Bearer or Basic)");
}
