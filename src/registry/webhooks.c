/* registry/webhooks: per-project webhooks on registry events — management,
 * the outbox the registry's transition points write into, and the worker
 * that signs and delivers queued events with retries and keeps their log. */
#include "registry/internal.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define HOOK_ID_BYTES 16 /* 32 hex chars */
#define HOOK_MAX_EVENTS 8
#define FLIGHT_MAX 16    /* deliveries in flight at once */
#define IDLE_POLL_MS 5000 /* the worker looks at the queue at least this often */
#define PRUNE_EVERY_MS 60000
#define ERROR_MAX 300    /* stored error text */
#define SECRET_PREFIX "whsec_"

static const char *const EVENTS[] = {REGISTRY_EV_VERSION_CREATED, REGISTRY_EV_VERSION_READY, REGISTRY_EV_STAGE,
                                     REGISTRY_EV_ALIAS_SET, REGISTRY_EV_ALIAS_DELETED};
#define NEVENTS (sizeof EVENTS / sizeof EVENTS[0])

bool registry_webhook_event_valid(const char *name) {
  for (size_t i = 0; i < NEVENTS; i++)
    if (str_eq(name, EVENTS[i])) return true;
  return false;
}

struct registry_webhooks {
  struct db *db;
  struct registry_webhooks_opts o;
  uint8_t key[32];
  bool have_key;
  _Atomic int self_port;
  CURLM *multi;
  pthread_t thread;
  bool started;
  atomic_bool stop;
  atomic_bool woken; /* an event was queued since the worker last looked */
};

/* The running worker, for the emit hook (which runs on the db writer and
 * has no engine at hand). Guarded so a wake never touches a freed handle. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct registry_webhooks *g_worker;

/* ---- pure parts --------------------------------------------------------------------------------- */

void registry_webhook_sign(const char *secret, size_t secret_len, int64_t timestamp, const char *body,
                           size_t body_len, char out[REGISTRY_WEBHOOK_SIG_LEN + 1]) {
  crypto_auth_hmacsha256_state st;
  uint8_t mac[crypto_auth_hmacsha256_BYTES];
  char ts[24];
  int n = snprintf(ts, sizeof ts, "%lld.", (long long)timestamp);
  crypto_auth_hmacsha256_init(&st, (const uint8_t *)secret, secret_len);
  crypto_auth_hmacsha256_update(&st, (const uint8_t *)ts, (size_t)n);
  crypto_auth_hmacsha256_update(&st, (const uint8_t *)body, body_len);
  crypto_auth_hmacsha256_final(&st, mac);
  sodium_memzero(&st, sizeof st);
  memcpy(out, "sha256=", 7);
  hex_encode(out + 7, mac, sizeof mac);
}

int64_t registry_webhook_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms) {
  if (attempt < 1) attempt = 1;
  if (base_ms < 0) base_ms = 0;
  int64_t d = base_ms;
  for (int i = 1; i < attempt && d < max_ms; i++) d *= 2;
  return d > max_ms ? max_ms : d;
}

bool registry_webhook_addr_private(int family, const uint8_t *a) {
  if (family == AF_INET) {
    if (a[0] == 0 || a[0] == 10 || a[0] == 127 || a[0] >= 224) return true; /* this net, private, loopback, multicast, reserved */
    if (a[0] == 100 && (a[1] & 0xc0) == 64) return true;                    /* 100.64/10 shared (CGNAT) */
    if (a[0] == 169 && a[1] == 254) return true;                           /* link-local, cloud metadata */
    if (a[0] == 172 && (a[1] & 0xf0) == 16) return true;                   /* 172.16/12 */
    if (a[0] == 192 && a[1] == 168) return true;
    if (a[0] == 192 && a[1] == 0 && a[2] == 0) return true;                /* IETF protocol assignments */
    if (a[0] == 198 && (a[1] & 0xfe) == 18) return true;                   /* benchmarking */
    return false;
  }
  if (family == AF_INET6) {
    static const uint8_t zero[16];
    if (!memcmp(a, zero, 15) && (a[15] == 0 || a[15] == 1)) return true; /* :: and ::1 */
    if ((a[0] & 0xfe) == 0xfc) return true;                              /* unique local */
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return true;              /* link-local */
    if (a[0] == 0xff) return true;                                       /* multicast */
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
    if (!memcmp(a, mapped, 12) || !memcmp(a, nat64, 12)) return registry_webhook_addr_private(AF_INET, a + 12);
    return false;
  }
  return true; /* anything else is not a public internet address */
}

int registry_webhook_url_check(const char *url, bool allow_private, struct err *e) {
  if (!url || !*url) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Missing value for required parameter 'url'.");
  size_t n = strlen(url);
  if (n > REGISTRY_WEBHOOK_MAX_URL_LEN)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "url is longer than %d bytes", REGISTRY_WEBHOOK_MAX_URL_LEN);
  for (const unsigned char *p = (const unsigned char *)url; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "url must be printable ASCII without spaces");
  if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "url must start with http:// or https://");
  CURLU *u = curl_url();
  if (!u) return err_set(e, ERR_NO_MEMORY, "out of memory");
  int rc = 0;
  char *host = NULL, *user = NULL, *pw = NULL, *frag = NULL;
  if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK || curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
      !host || !*host) {
    rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "url is not a valid http(s) URL with a host");
    goto out;
  }
  if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK || curl_url_get(u, CURLUPART_PASSWORD, &pw, 0) == CURLUE_OK) {
    /* they would be stored and shown in the clear; the signature authenticates */
    rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "url must not carry a user name or password");
    goto out;
  }
  if (curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
    rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "url must not carry a #fragment");
    goto out;
  }
  if (!allow_private) {
    uint8_t a[16];
    char h[256];
    size_t hl = str_copy(h, sizeof h, host);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
      memmove(h, h + 1, hl - 2);
      h[hl - 2] = 0;
    }
    bool priv = !strcasecmp(h, "localhost") || (hl > 10 && !strcasecmp(h + strlen(h) - 10, ".localhost"));
    if (inet_pton(AF_INET, h, a) == 1) priv = priv || registry_webhook_addr_private(AF_INET, a);
    else if (inet_pton(AF_INET6, h, a) == 1) priv = priv || registry_webhook_addr_private(AF_INET6, a);
    if (priv)
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "url points at a loopback, private or link-local address, which this server refuses "
                   "(--webhook-allow-private)");
  }
out:
  curl_free(host);
  curl_free(user);
  curl_free(pw);
  curl_free(frag);
  curl_url_cleanup(u);
  return rc;
}

/* ---- secrets at rest ---------------------------------------------------------------------------
 * HMAC needs the raw secret, so it is sealed, not hashed: with a master key
 * "x1:" + hex(nonce || XChaCha20-Poly1305(secret, ad = webhook id)) (a
 * sealed secret copied onto another webhook's row does not open), without
 * one "p1:" + hex(secret). */
#define NB crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define AB crypto_aead_xchacha20poly1305_ietf_ABYTES
#define STORED_MAX (3 + 2 * (NB + REGISTRY_WEBHOOK_SECRET_MAX + AB) + 1)

static void secret_seal(const struct registry_webhooks *w, const char *id, const char *secret,
                        char out[STORED_MAX]) {
  size_t n = strlen(secret);
  if (!w->have_key) {
    memcpy(out, "p1:", 3);
    hex_encode(out + 3, (const uint8_t *)secret, n);
    return;
  }
  uint8_t buf[NB + REGISTRY_WEBHOOK_SECRET_MAX + AB];
  randombytes_buf(buf, NB);
  crypto_aead_xchacha20poly1305_ietf_encrypt(buf + NB, NULL, (const uint8_t *)secret, n, (const uint8_t *)id,
                                             strlen(id), NULL, buf, w->key);
  memcpy(out, "x1:", 3);
  hex_encode(out + 3, buf, NB + n + AB);
  sodium_memzero(buf, sizeof buf);
}

/* out gets the secret (NUL-terminated), *n its length. */
static int secret_open(const struct registry_webhooks *w, const char *id, const char *stored,
                       char out[REGISTRY_WEBHOOK_SECRET_MAX + 1], size_t *n, struct err *e) {
  uint8_t buf[NB + REGISTRY_WEBHOOK_SECRET_MAX + AB];
  size_t hl = stored ? strlen(stored) : 0;
  if (hl < 3 || (hl - 3) % 2 || (hl - 3) / 2 > sizeof buf) return err_set(e, ERR_DATA_CORRUPTED, "stored webhook secret is malformed");
  int k = hex_decode(buf, sizeof buf, stored + 3);
  if (k < 0) return err_set(e, ERR_DATA_CORRUPTED, "stored webhook secret is malformed");
  if (str_has_prefix(stored, "p1:") && k <= REGISTRY_WEBHOOK_SECRET_MAX) {
    memcpy(out, buf, (size_t)k);
    out[k] = 0;
    *n = (size_t)k;
    return 0;
  }
  if (!str_has_prefix(stored, "x1:") || (size_t)k < NB + AB)
    return err_set(e, ERR_DATA_CORRUPTED, "stored webhook secret is malformed");
  if (!w->have_key)
    return err_set(e, ERR_NOT_READY, "the webhook secret is sealed with a master key: start the server with the "
                                     "same KILN_MASTER_KEY (or --master-key-file)");
  unsigned long long m = 0;
  int bad = crypto_aead_xchacha20poly1305_ietf_decrypt((uint8_t *)out, &m, NULL, buf + NB, (size_t)k - NB,
                                                       (const uint8_t *)id, strlen(id), buf, w->key);
  sodium_memzero(buf, sizeof buf);
  if (bad) return err_set(e, ERR_DATA_CORRUPTED, "the webhook secret does not open with this master key");
  out[m] = 0;
  *n = (size_t)m;
  return 0;
}

static int secret_check(const char *s, struct err *e) {
  size_t n = strlen(s);
  if (n < REGISTRY_WEBHOOK_SECRET_MIN || n > REGISTRY_WEBHOOK_SECRET_MAX)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "secret must be %d to %d characters", REGISTRY_WEBHOOK_SECRET_MIN,
                   REGISTRY_WEBHOOK_SECRET_MAX);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "secret must be printable ASCII without spaces");
  return 0;
}

/* ---- the engine --------------------------------------------------------------------------------- */

int registry_webhooks_new(struct registry_webhooks **out, struct db *db, const struct registry_webhooks_opts *o,
                          struct err *e) {
  *out = NULL;
  struct registry_webhooks *w = calloc(1, sizeof *w);
  if (!w) return err_set(e, ERR_NO_MEMORY, "out of memory");
  w->db = db;
  if (o) w->o = *o;
  w->o.master_key = NULL;
  if (o && o->master_key) {
    memcpy(w->key, o->master_key, sizeof w->key);
    w->have_key = true;
  }
  if (w->o.max_attempts <= 0) w->o.max_attempts = 8;
  if (w->o.max_attempts > REGISTRY_WEBHOOK_MAX_ATTEMPTS) w->o.max_attempts = REGISTRY_WEBHOOK_MAX_ATTEMPTS;
  if (w->o.backoff_ms <= 0) w->o.backoff_ms = 1000;
  if (w->o.backoff_max_ms <= 0) w->o.backoff_max_ms = 300000;
  if (w->o.timeout_ms <= 0) w->o.timeout_ms = 10000;
  if (w->o.log_retention_ms <= 0) w->o.log_retention_ms = 30LL * 24 * 3600 * 1000;
  if (w->o.log_keep <= 0) w->o.log_keep = 1000;
  *out = w;
  return 0;
}

void registry_webhooks_set_self_port(struct registry_webhooks *w, int port) {
  if (w) atomic_store(&w->self_port, port);
}

static void wake(void) {
  pthread_mutex_lock(&g_lock);
  if (g_worker) {
    atomic_store(&g_worker->woken, true);
    curl_multi_wakeup(g_worker->multi);
  }
  pthread_mutex_unlock(&g_lock);
}

static int max_attempts_now(void) {
  pthread_mutex_lock(&g_lock);
  int n = g_worker ? g_worker->o.max_attempts : 8;
  pthread_mutex_unlock(&g_lock);
  return n;
}

/* ---- rows ----------------------------------------------------------------------------------------- */

static int hook_id_check(const char *id, struct err *e) {
  size_t n = id ? strlen(id) : 0;
  bool ok = n == 2 * HOOK_ID_BYTES;
  for (size_t i = 0; ok && i < n; i++) ok = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
  if (!ok) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Webhook %.80s not found", id ? id : "");
  return 0;
}

#define HOOK_COLS "id, project_id, url, events, model_name, description, status, created_by, creation_time, last_updated_time"

static json_t *hook_json(struct db_stmt *s) {
  json_t *o = json_object();
  json_object_set_new(o, "id", json_string(db_col_text(s, 0)));
  json_object_set_new(o, "project_id", json_string(db_col_text(s, 1)));
  json_object_set_new(o, "url", json_string(db_col_text(s, 2)));
  json_t *ev = json_array();
  const char *p = db_col_text(s, 3);
  while (p && *p) {
    size_t k = strcspn(p, ",");
    json_array_append_new(ev, json_stringn(p, k));
    p += k + (p[k] == ',');
  }
  json_object_set_new(o, "events", ev);
  if (!db_col_null(s, 4)) json_object_set_new(o, "model_name", json_string(db_col_text(s, 4)));
  if (!db_col_null(s, 5)) json_object_set_new(o, "description", json_string(db_col_text(s, 5)));
  json_object_set_new(o, "status", json_string(db_col_text(s, 6)));
  if (!db_col_null(s, 7)) json_object_set_new(o, "created_by", json_string(db_col_text(s, 7)));
  json_object_set_new(o, "creation_timestamp", json_integer(db_col_i64(s, 8)));
  json_object_set_new(o, "last_updated_timestamp", json_integer(db_col_i64(s, 9)));
  return o;
}

static json_t *hook_load(struct db_conn *c, const char *project_id, const char *id, struct err *e) {
  if (hook_id_check(id, e)) return NULL;
  struct db_stmt *s = db_prepare(c, "SELECT " HOOK_COLS " FROM registry_webhooks WHERE project_id = ? AND id = ?", e);
  if (!s) return NULL;
  db_bind_text(s, 1, project_id);
  db_bind_text(s, 2, id);
  int rc = db_step(s, e);
  json_t *o = rc == DB_ROW ? hook_json(s) : NULL;
  db_stmt_done(s);
  if (rc == DB_DONE) err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Webhook %s not found", id);
  return o;
}

static json_t *read_hook(struct registry_webhooks *w, const char *project_id, const char *id, struct err *e) {
  struct db_conn *c = db_reader_acquire(w->db, e);
  if (!c) return NULL;
  json_t *o = hook_load(c, project_id, id, e);
  db_reader_release(w->db, c);
  return o;
}

/* ---- validation of a create/update ---------------------------------------------------------------- */

static const char *status_canonical(const char *s) {
  static const char *const ok[] = {"ACTIVE", "DISABLED", "TEST_MODE"};
  for (int i = 0; i < 3; i++)
    if (s && !strcasecmp(s, ok[i])) return ok[i];
  return NULL;
}

/* events as stored ("A,B"), deduplicated, in the canonical order. */
static int events_text(const struct registry_webhook_in *in, char *out, size_t cap, struct err *e) {
  if (in->nevents < 1)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "events must name at least one of MODEL_VERSION_CREATED, "
                                                   "MODEL_VERSION_READY, MODEL_VERSION_TRANSITIONED_STAGE, "
                                                   "REGISTERED_MODEL_ALIAS_SET, REGISTERED_MODEL_ALIAS_DELETED");
  bool want[NEVENTS] = {0};
  for (int i = 0; i < in->nevents; i++) {
    size_t k = 0;
    while (k < NEVENTS && !str_eq(in->events[i], EVENTS[k])) k++;
    if (k == NEVENTS)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Unknown webhook event '%.100s'", in->events[i] ? in->events[i] : "");
    want[k] = true;
  }
  out[0] = 0;
  size_t n = 0;
  for (size_t k = 0; k < NEVENTS; k++)
    if (want[k]) n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "," : "", EVENTS[k]);
  return 0;
}

static int fields_check(struct registry_webhooks *w, const struct registry_webhook_in *in, struct err *e) {
  if (in->url && registry_webhook_url_check(in->url, w->o.allow_private, e)) return -(int)e->code;
  if (in->status && !status_canonical(in->status))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "status must be ACTIVE, DISABLED or TEST_MODE");
  if (in->description && strlen(in->description) > REGISTRY_WEBHOOK_MAX_DESCRIPTION_LEN)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "description is longer than %d bytes",
                   REGISTRY_WEBHOOK_MAX_DESCRIPTION_LEN);
  if (in->model_name && strlen(in->model_name) > 4 * REGISTRY_MAX_NAME_LEN)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "model_name is longer than %d bytes", 4 * REGISTRY_MAX_NAME_LEN);
  if (in->secret && secret_check(in->secret, e)) return -(int)e->code;
  if (in->secret && in->rotate_secret)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "give either secret or rotate_secret, not both");
  return 0;
}

/* ---- management ------------------------------------------------------------------------------------ */

struct hook_job {
  const char *project_id, *id;
  const struct registry_webhook_in *in;
  const char *events;      /* stored form, or NULL: unchanged */
  const char *stored;      /* sealed secret, or NULL: unchanged */
  bool create, del;
};

static int hook_job(struct db_conn *c, void *arg, struct err *e) {
  struct hook_job *j = arg;
  const struct registry_webhook_in *in = j->in;
  int64_t now = time_wall_ms();
  if (j->create) {
    struct db_stmt *s = db_prepare(c, "SELECT COUNT(*) FROM registry_webhooks WHERE project_id = ?", e);
    if (!s) return -ERR_INTERNAL;
    db_bind_text(s, 1, j->project_id);
    int rc = db_step(s, e);
    int64_t n = rc == DB_ROW ? db_col_i64(s, 0) : 0;
    db_stmt_done(s);
    if (rc < 0) return rc;
    if (n >= REGISTRY_WEBHOOKS_PER_PROJECT)
      return err_set(e, ERR_RESOURCE_ALREADY_EXISTS, "a project has at most %d webhooks", REGISTRY_WEBHOOKS_PER_PROJECT);
    return reg_exec(c,
                    "INSERT INTO registry_webhooks (id, project_id, url, events, model_name, description, status,"
                    " secret, created_by, creation_time, last_updated_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    e, "sssssssssii", j->id, j->project_id, in->url, j->events,
                    in->model_name && *in->model_name ? in->model_name : NULL,
                    in->description && *in->description ? in->description : NULL,
                    in->status ? status_canonical(in->status) : "ACTIVE", j->stored,
                    in->user_id && *in->user_id ? in->user_id : NULL, now, now);
  }
  json_t *cur = hook_load(c, j->project_id, j->id, e);
  if (!cur) return -(int)e->code;
  json_decref(cur);
  int rc = 0;
  if (j->del) {
    rc = reg_exec(c,
                  "DELETE FROM registry_webhook_attempts WHERE delivery_seq IN"
                  " (SELECT seq FROM registry_webhook_deliveries WHERE webhook_id = ?)",
                  e, "s", j->id);
    if (!rc) rc = reg_exec(c, "DELETE FROM registry_webhook_deliveries WHERE webhook_id = ?", e, "s", j->id);
    if (!rc) rc = reg_exec(c, "DELETE FROM registry_webhooks WHERE id = ?", e, "s", j->id);
    return rc;
  }
  if (in->url) rc = reg_exec(c, "UPDATE registry_webhooks SET url = ? WHERE id = ?", e, "ss", in->url, j->id);
  if (!rc && j->events) rc = reg_exec(c, "UPDATE registry_webhooks SET events = ? WHERE id = ?", e, "ss", j->events, j->id);
  if (!rc && in->model_name)
    rc = reg_exec(c, "UPDATE registry_webhooks SET model_name = ? WHERE id = ?", e, "ss",
                  *in->model_name ? in->model_name : NULL, j->id);
  if (!rc && in->description)
    rc = reg_exec(c, "UPDATE registry_webhooks SET description = ? WHERE id = ?", e, "ss",
                  *in->description ? in->description : NULL, j->id);
  if (!rc && in->status)
    rc = reg_exec(c, "UPDATE registry_webhooks SET status = ? WHERE id = ?", e, "ss", status_canonical(in->status), j->id);
  if (!rc && j->stored) rc = reg_exec(c, "UPDATE registry_webhooks SET secret = ? WHERE id = ?", e, "ss", j->stored, j->id);
  if (!rc) rc = reg_exec(c, "UPDATE registry_webhooks SET last_updated_time = ? WHERE id = ?", e, "is", now, j->id);
  return rc;
}

/* The secret to use (given or made), sealed into stored; *shown gets a copy. */
static int secret_prepare(struct registry_webhooks *w, const char *id, const char *given, char stored[STORED_MAX],
                          char **shown, struct err *e) {
  char made[64];
  const char *s = given;
  if (!s) {
    if (!secret_token_new(SECRET_PREFIX, made, sizeof made, NULL)) return err_set(e, ERR_INTERNAL, "no secret");
    s = made;
  }
  secret_seal(w, id, s, stored);
  *shown = strdup(s);
  sodium_memzero(made, sizeof made);
  return *shown ? 0 : err_set(e, ERR_NO_MEMORY, "out of memory");
}

static void wipe_free(char **p) {
  if (*p) {
    sodium_memzero(*p, strlen(*p));
    free(*p);
    *p = NULL;
  }
}

json_t *registry_webhook_create(struct registry_webhooks *w, const char *project_id,
                                const struct registry_webhook_in *in, char **secret, struct err *e) {
  *secret = NULL;
  char events[512], id[2 * HOOK_ID_BYTES + 1], stored[STORED_MAX];
  if (!in->url) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "Missing value for required parameter 'url'.");
    return NULL;
  }
  if (!in->events_given) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "Missing value for required parameter 'events'.");
    return NULL;
  }
  if (fields_check(w, in, e) || events_text(in, events, sizeof events, e)) return NULL;
  id_random_hex(id, HOOK_ID_BYTES);
  if (secret_prepare(w, id, in->secret, stored, secret, e)) return NULL;
  struct hook_job j = {.project_id = project_id, .id = id, .in = in, .events = events, .stored = stored, .create = true};
  int rc = db_write(w->db, hook_job, &j, e);
  sodium_memzero(stored, sizeof stored);
  json_t *o = rc ? NULL : read_hook(w, project_id, id, e);
  if (!o) wipe_free(secret);
  return o;
}

json_t *registry_webhook_get(struct registry_webhooks *w, const char *project_id, const char *id, struct err *e) {
  return read_hook(w, project_id, id, e);
}

json_t *registry_webhook_update(struct registry_webhooks *w, const char *project_id, const char *id,
                                const struct registry_webhook_in *in, char **secret, struct err *e) {
  *secret = NULL;
  char events[512], stored[STORED_MAX];
  if (hook_id_check(id, e) || fields_check(w, in, e)) return NULL;
  if (in->events_given && events_text(in, events, sizeof events, e)) return NULL;
  if ((in->secret || in->rotate_secret) && secret_prepare(w, id, in->secret, stored, secret, e)) return NULL;
  /* a given secret is not echoed back: the caller has it */
  if (in->secret) wipe_free(secret);
  struct hook_job j = {.project_id = project_id, .id = id, .in = in, .events = in->events_given ? events : NULL,
                       .stored = in->secret || in->rotate_secret ? stored : NULL};
  int rc = db_write(w->db, hook_job, &j, e);
  sodium_memzero(stored, sizeof stored);
  json_t *o = rc ? NULL : read_hook(w, project_id, id, e);
  if (!o) wipe_free(secret);
  return o;
}

int registry_webhook_delete(struct registry_webhooks *w, const char *project_id, const char *id, struct err *e) {
  static const struct registry_webhook_in none;
  if (hook_id_check(id, e)) return -(int)e->code;
  struct hook_job j = {.project_id = project_id, .id = id, .in = &none, .del = true};
  return db_write(w->db, hook_job, &j, e);
}

static int64_t page_bounds(int64_t max_results, struct err *e) {
  if (max_results < 0 || max_results > REGISTRY_WEBHOOK_PAGE_MAX)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "max_results must be between 1 and %d", REGISTRY_WEBHOOK_PAGE_MAX);
  return max_results ? max_results : 100;
}

static int token_parse(const char *t, int64_t *out, struct err *e) {
  *out = 0;
  if (!t || !*t) return 0;
  if (strlen(t) > 20 || str_to_i64(t, out) || *out < 0)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid page token");
  return 0;
}

json_t *registry_webhook_list(struct registry_webhooks *w, const char *project_id, int64_t max_results,
                              const char *page_token, char next[REGISTRY_PAGE_TOKEN_MAX], struct err *e) {
  next[0] = 0;
  int64_t max = page_bounds(max_results, e), off;
  if (max < 0 || token_parse(page_token, &off, e)) return NULL;
  struct db_conn *c = db_reader_acquire(w->db, e);
  if (!c) return NULL;
  struct db_stmt *s = db_prepare(c,
                                 "SELECT " HOOK_COLS " FROM registry_webhooks WHERE project_id = ?"
                                 " ORDER BY creation_time, id LIMIT ? OFFSET ?",
                                 e);
  json_t *arr = s ? json_array() : NULL;
  if (s) {
    db_bind_text(s, 1, project_id);
    db_bind_i64(s, 2, max + 1);
    db_bind_i64(s, 3, off);
    int rc, n = 0;
    while ((rc = db_step(s, e)) == DB_ROW) {
      if (n++ == max) {
        snprintf(next, REGISTRY_PAGE_TOKEN_MAX, "%lld", (long long)(off + max));
        break;
      }
      json_array_append_new(arr, hook_json(s));
    }
    db_stmt_done(s);
    if (rc < 0) json_decref(arr), arr = NULL;
  }
  db_reader_release(w->db, c);
  return arr;
}

/* ---- deliveries: the outbox --------------------------------------------------------------------- */

#define DELIVERY_COLS                                                                              \
  "d.seq, d.id, d.webhook_id, d.event, d.state, d.attempts, d.max_attempts, d.creation_time,"     \
  " d.next_attempt_time, d.completed_time, d.last_status_code, d.last_error, d.payload"

static json_t *delivery_json(struct db_conn *c, struct db_stmt *s, struct err *e) {
  json_t *o = json_object();
  int64_t seq = db_col_i64(s, 0);
  const char *state = db_col_text(s, 4);
  json_object_set_new(o, "id", json_string(db_col_text(s, 1)));
  json_object_set_new(o, "webhook_id", json_string(db_col_text(s, 2)));
  json_object_set_new(o, "event", json_string(db_col_text(s, 3)));
  json_object_set_new(o, "state", json_string(state));
  json_object_set_new(o, "attempts", json_integer(db_col_i64(s, 5)));
  json_object_set_new(o, "max_attempts", json_integer(db_col_i64(s, 6)));
  json_object_set_new(o, "creation_timestamp", json_integer(db_col_i64(s, 7)));
  if (str_eq(state, "PENDING")) json_object_set_new(o, "next_attempt_timestamp", json_integer(db_col_i64(s, 8)));
  if (!db_col_null(s, 9)) json_object_set_new(o, "completed_timestamp", json_integer(db_col_i64(s, 9)));
  if (!db_col_null(s, 10)) json_object_set_new(o, "last_status_code", json_integer(db_col_i64(s, 10)));
  if (!db_col_null(s, 11)) json_object_set_new(o, "last_error", json_string(db_col_text(s, 11)));
  const char *p = db_col_text(s, 12);
  json_t *payload = p ? json_parse(p, strlen(p), NULL) : NULL;
  json_object_set_new(o, "payload", payload ? payload : json_object());
  json_t *log = json_array();
  struct db_stmt *a = db_prepare(c,
                                 "SELECT attempt, start_time, duration_ms, status_code, error FROM"
                                 " registry_webhook_attempts WHERE delivery_seq = ? ORDER BY attempt",
                                 e);
  if (a) {
    db_bind_i64(a, 1, seq);
    while (db_step(a, e) == DB_ROW) {
      json_t *x = json_pack("{s:I, s:I, s:I}", "attempt", (json_int_t)db_col_i64(a, 0), "start_timestamp",
                            (json_int_t)db_col_i64(a, 1), "duration_ms", (json_int_t)db_col_i64(a, 2));
      if (!db_col_null(a, 3)) json_object_set_new(x, "status_code", json_integer(db_col_i64(a, 3)));
      if (!db_col_null(a, 4)) json_object_set_new(x, "error", json_string(db_col_text(a, 4)));
      json_array_append_new(log, x);
    }
    db_stmt_done(a);
  }
  json_object_set_new(o, "attempt_log", log);
  return o;
}

json_t *registry_webhook_deliveries(struct registry_webhooks *w, const char *project_id, const char *id,
                                    int64_t max_results, const char *page_token,
                                    char next[REGISTRY_PAGE_TOKEN_MAX], struct err *e) {
  next[0] = 0;
  int64_t max = page_bounds(max_results, e), before;
  if (max < 0 || token_parse(page_token, &before, e)) return NULL;
  struct db_conn *c = db_reader_acquire(w->db, e);
  if (!c) return NULL;
  json_t *arr = NULL, *hook = hook_load(c, project_id, id, e);
  struct db_stmt *s = hook ? db_prepare(c,
                                        "SELECT " DELIVERY_COLS " FROM registry_webhook_deliveries d"
                                        " WHERE d.webhook_id = ? AND d.seq < ? ORDER BY d.seq DESC LIMIT ?",
                                        e)
                           : NULL;
  json_decref(hook);
  if (s) {
    arr = json_array();
    db_bind_text(s, 1, id);
    db_bind_i64(s, 2, before ? before : INT64_MAX);
    db_bind_i64(s, 3, max + 1);
    int rc, n = 0;
    int64_t last = 0;
    while ((rc = db_step(s, e)) == DB_ROW) {
      if (n++ == max) {
        snprintf(next, REGISTRY_PAGE_TOKEN_MAX, "%lld", (long long)last);
        break;
      }
      last = db_col_i64(s, 0);
      json_array_append_new(arr, delivery_json(c, s, e));
    }
    db_stmt_done(s);
    if (rc < 0) json_decref(arr), arr = NULL;
  }
  db_reader_release(w->db, c);
  return arr;
}

static json_t *delivery_load(struct db_conn *c, const char *project_id, const char *hook_id, const char *did,
                             struct err *e) {
  if (hook_id_check(did, e)) {
    err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Delivery %.80s not found", did ? did : "");
    return NULL;
  }
  struct db_stmt *s = db_prepare(c,
                                 "SELECT " DELIVERY_COLS " FROM registry_webhook_deliveries d"
                                 " WHERE d.project_id = ? AND d.webhook_id = ? AND d.id = ?",
                                 e);
  if (!s) return NULL;
  db_bind_text(s, 1, project_id);
  db_bind_text(s, 2, hook_id);
  db_bind_text(s, 3, did);
  int rc = db_step(s, e);
  json_t *o = rc == DB_ROW ? delivery_json(c, s, e) : NULL;
  db_stmt_done(s);
  if (rc == DB_DONE) err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "Delivery %s not found", did);
  return o;
}

json_t *registry_webhook_delivery_get(struct registry_webhooks *w, const char *project_id, const char *id,
                                      const char *delivery_id, struct err *e) {
  struct db_conn *c = db_reader_acquire(w->db, e);
  if (!c) return NULL;
  json_t *o = NULL, *hook = hook_load(c, project_id, id, e);
  if (hook) o = delivery_load(c, project_id, id, delivery_id, e);
  json_decref(hook);
  db_reader_release(w->db, c);
  return o;
}

/* Queues one delivery of payload_data for a webhook. */
static int enqueue(struct db_conn *c, const char *project_id, const char *hook_id, const char *event, json_t *data,
                   int max_attempts, int64_t now, char did[2 * HOOK_ID_BYTES + 1], struct err *e) {
  id_random_hex(did, HOOK_ID_BYTES);
  json_t *body = json_pack("{s:s, s:s, s:s, s:I, s:O}", "event", event, "webhook_id", hook_id, "project_id",
                           project_id, "event_timestamp", (json_int_t)now, "data", data);
  struct buf b;
  buf_init(&b);
  int rc = body && json_emit(&b, body) == 0 ? 0 : err_set(e, ERR_NO_MEMORY, "out of memory");
  json_decref(body);
  if (!rc)
    rc = reg_exec(c,
                  "INSERT INTO registry_webhook_deliveries (seq, id, webhook_id, project_id, event, payload, state,"
                  " attempts, max_attempts, next_attempt_time, creation_time) VALUES ((SELECT COALESCE(MAX(seq), 0) + 1"
                  " FROM registry_webhook_deliveries), ?, ?, ?, ?, ?, 'PENDING', 0, ?, ?, ?)",
                  e, "sssssiii", did, hook_id, project_id, event, b.data, (int64_t)max_attempts, now, now);
  buf_fini(&b);
  return rc;
}

static bool events_has(const char *list, const char *ev) {
  size_t n = strlen(ev);
  for (const char *p = list; p && *p;) {
    size_t k = strcspn(p, ",");
    if (k == n && !strncmp(p, ev, n)) return true;
    p += k + (p[k] == ',');
  }
  return false;
}

/* The event's data: the model's name, and the version's fields when it names one. */
static json_t *event_data(struct db_conn *c, const struct registry_webhook_event *ev, struct err *e) {
  json_t *d = json_object();
  struct db_stmt *s = db_prepare(c, "SELECT name FROM registered_models WHERE id = ?", e);
  if (!s) return json_decref(d), NULL;
  db_bind_i64(s, 1, ev->model_id);
  if (db_step(s, e) == DB_ROW) json_object_set_new(d, "name", json_string(db_col_text(s, 0)));
  db_stmt_done(s);
  if (ev->version > 0) {
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)ev->version);
    json_object_set_new(d, "version", json_string(v));
    s = db_prepare(c,
                   "SELECT run_id, source, status, current_stage, user_id FROM model_versions"
                   " WHERE model_id = ? AND version = ?",
                   e);
    if (!s) return json_decref(d), NULL;
    db_bind_i64(s, 1, ev->model_id);
    db_bind_i64(s, 2, ev->version);
    if (db_step(s, e) == DB_ROW) {
      if (!db_col_null(s, 0)) json_object_set_new(d, "run_id", json_string(db_col_text(s, 0)));
      json_object_set_new(d, "source", json_string(db_col_text(s, 1)));
      json_object_set_new(d, "status", json_string(db_col_text(s, 2)));
      json_object_set_new(d, "current_stage", json_string(db_col_text(s, 3)));
      if (!db_col_null(s, 4)) json_object_set_new(d, "user_id", json_string(db_col_text(s, 4)));
    }
    db_stmt_done(s);
  }
  if (ev->from_stage) json_object_set_new(d, "from_stage", json_string(ev->from_stage));
  if (ev->to_stage) json_object_set_new(d, "to_stage", json_string(ev->to_stage));
  /* archived siblings are announced before their row moves */
  if (ev->to_stage) json_object_set_new(d, "current_stage", json_string(ev->to_stage));
  if (ev->alias) json_object_set_new(d, "alias", json_string(ev->alias));
  return d;
}

int registry_webhooks_emit(struct db_conn *c, const char *project_id, const struct registry_webhook_event *ev,
                           struct err *e) {
  /* the subscribers first: most projects have none, and then nothing else is read */
  struct db_stmt *s = db_prepare(c,
                                 "SELECT id, events, model_name FROM registry_webhooks WHERE project_id = ?"
                                 " AND status = 'ACTIVE' ORDER BY creation_time, id",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, project_id);
  char ids[REGISTRY_WEBHOOKS_PER_PROJECT][2 * HOOK_ID_BYTES + 1];
  char *filters[REGISTRY_WEBHOOKS_PER_PROJECT]; /* model name, or NULL: every model */
  int n = 0, rc = 0;
  while (n < REGISTRY_WEBHOOKS_PER_PROJECT && (rc = db_step(s, e)) == DB_ROW) {
    if (!events_has(db_col_text(s, 1), ev->event)) continue;
    str_copy(ids[n], sizeof ids[n], db_col_text(s, 0));
    filters[n] = db_col_null(s, 2) ? NULL : strdup(db_col_text(s, 2));
    if (!db_col_null(s, 2) && !filters[n]) {
      rc = err_set(e, ERR_NO_MEMORY, "out of memory");
      break;
    }
    n++;
  }
  db_stmt_done(s);
  if (rc < 0) {
    for (int i = 0; i < n; i++) free(filters[i]);
    return rc;
  }
  rc = 0;
  if (n > 0) {
    json_t *data = event_data(c, ev, e);
    const char *name = data ? json_string_value(json_object_get(data, "name")) : NULL;
    int64_t now = time_wall_ms();
    int max = max_attempts_now();
    bool queued = false;
    if (!data) rc = -(int)e->code;
    for (int i = 0; i < n && !rc; i++) {
      if (filters[i] && !str_eq(filters[i], name)) continue;
      char did[2 * HOOK_ID_BYTES + 1];
      rc = enqueue(c, project_id, ids[i], ev->event, data, max, now, did, e);
      queued = true;
    }
    json_decref(data);
    if (!rc && queued) wake();
  }
  for (int i = 0; i < n; i++) free(filters[i]);
  return rc;
}

struct test_job {
  const char *project_id, *id;
  char did[2 * HOOK_ID_BYTES + 1];
};

static int test_job(struct db_conn *c, void *arg, struct err *e) {
  struct test_job *j = arg;
  json_t *hook = hook_load(c, j->project_id, j->id, e);
  if (!hook) return -(int)e->code;
  json_decref(hook);
  json_t *data = json_pack("{s:s}", "message", "This is a test event from Kiln.");
  int rc = enqueue(c, j->project_id, j->id, REGISTRY_EV_TEST, data, 1, time_wall_ms(), j->did, e);
  json_decref(data);
  return rc;
}

json_t *registry_webhook_test(struct registry_webhooks *w, const char *project_id, const char *id,
                              struct err *e) {
  struct test_job j = {.project_id = project_id, .id = id};
  if (hook_id_check(id, e) || db_write(w->db, test_job, &j, e)) return NULL;
  wake();
  return registry_webhook_delivery_get(w, project_id, id, j.did, e);
}

/* ---- the worker ----------------------------------------------------------------------------------
 *
 * A delivery's states (the worker's record job is the only place they change):
 *
 *   PENDING ──2xx──────────────────────────────────────────> SUCCEEDED
 *      │  └─failure, attempts < max: next_attempt_time = now + backoff ─┐
 *      │                                                              (stays PENDING)
 *      └─failure with attempts == max, or webhook DISABLED ──────────> FAILED
 *
 * Claims run as write jobs: they are ordered after the job that queued the
 * event, so a wake from inside that job never reads before its commit. An
 * attempt cut short by shutdown or a crash is not recorded and is made again
 * after a restart: delivery is at least once (receivers dedupe on
 * X-Kiln-Delivery). */

struct flight {
  CURL *h;
  struct curl_slist *headers;
  char *body;
  int64_t seq;
  int attempt, max_attempts;
  int64_t start_ms, start_us;
  char err[CURL_ERROR_SIZE];
  char refused[160]; /* why the connect was refused, when it was */
  struct registry_webhooks *w;
};

struct claim {
  int64_t seq;
  char id[2 * HOOK_ID_BYTES + 1], hook[2 * HOOK_ID_BYTES + 1], event[48];
  char *url, *payload, *secret_stored, *status;
  int attempts, max_attempts;
};

struct claim_job {
  int64_t now;
  const int64_t *skip; /* seqs in flight */
  int nskip, max;
  struct claim *out;
  int n;
  int64_t next_due; /* the earliest PENDING next_attempt_time not claimed, or 0 */
};

static int claim_job(struct db_conn *c, void *arg, struct err *e) {
  struct claim_job *j = arg;
  j->n = 0;
  j->next_due = 0;
  struct db_stmt *s = db_prepare(c,
                                 "SELECT d.seq, d.id, d.webhook_id, d.event, d.payload, d.attempts, d.max_attempts,"
                                 " h.url, h.secret, h.status, d.next_attempt_time FROM registry_webhook_deliveries d"
                                 " LEFT JOIN registry_webhooks h ON h.id = d.webhook_id"
                                 " WHERE d.state = 'PENDING' ORDER BY d.next_attempt_time, d.seq LIMIT ?",
                                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, j->max + j->nskip + 1);
  int rc;
  while ((rc = db_step(s, e)) == DB_ROW) {
    int64_t seq = db_col_i64(s, 0), due = db_col_i64(s, 10);
    bool busy = false;
    for (int i = 0; i < j->nskip; i++) busy = busy || j->skip[i] == seq;
    if (busy) continue;
    if (due > j->now || j->n == j->max) {
      if (!j->next_due || due < j->next_due) j->next_due = due;
      if (due > j->now) break;
      continue;
    }
    struct claim *cl = &j->out[j->n++];
    memset(cl, 0, sizeof *cl);
    cl->seq = seq;
    str_copy(cl->id, sizeof cl->id, db_col_text(s, 1));
    str_copy(cl->hook, sizeof cl->hook, db_col_text(s, 2));
    str_copy(cl->event, sizeof cl->event, db_col_text(s, 3));
    cl->payload = strdup(db_col_text(s, 4) ? db_col_text(s, 4) : "{}");
    cl->attempts = (int)db_col_i64(s, 5);
    cl->max_attempts = (int)db_col_i64(s, 6);
    if (!db_col_null(s, 7)) {
      cl->url = strdup(db_col_text(s, 7));
      cl->secret_stored = strdup(db_col_text(s, 8));
      cl->status = strdup(db_col_text(s, 9));
    }
  }
  db_stmt_done(s);
  return rc < 0 ? rc : 0;
}

static void claim_fini(struct claim *cl) {
  free(cl->url);
  free(cl->payload);
  if (cl->secret_stored) sodium_memzero(cl->secret_stored, strlen(cl->secret_stored));
  free(cl->secret_stored);
  free(cl->status);
}

struct record_job {
  int64_t seq, start_ms, duration_ms, now;
  int attempt, max_attempts;
  long status; /* 0: no answer */
  const char *error;
  bool final_fail; /* no more attempts whatever happened (webhook disabled or gone) */
  const struct registry_webhooks_opts *o;
};

static int record_job(struct db_conn *c, void *arg, struct err *e) {
  struct record_job *j = arg;
  struct db_stmt *s = db_prepare(c, "SELECT webhook_id FROM registry_webhook_deliveries WHERE seq = ? AND state = 'PENDING'", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, j->seq);
  int rc = db_step(s, e);
  char hook[2 * HOOK_ID_BYTES + 1] = "";
  if (rc == DB_ROW) str_copy(hook, sizeof hook, db_col_text(s, 0));
  db_stmt_done(s);
  if (rc != DB_ROW) return rc < 0 ? rc : 0; /* deleted with its webhook meanwhile */
  bool ok = j->status >= 200 && j->status < 300 && !j->final_fail;
  bool last = ok || j->final_fail || j->attempt >= j->max_attempts;
  const char *state = ok ? "SUCCEEDED" : last ? "FAILED" : "PENDING";
  /* status codes and errors are NULL when absent: bound by hand */
  s = db_prepare(c,
                 "INSERT INTO registry_webhook_attempts (delivery_seq, attempt, start_time, duration_ms, status_code,"
                 " error) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_seq, attempt) DO NOTHING",
                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, j->seq);
  db_bind_i64(s, 2, j->attempt);
  db_bind_i64(s, 3, j->start_ms);
  db_bind_i64(s, 4, j->duration_ms);
  if (j->status) db_bind_i64(s, 5, j->status);
  else db_bind_null(s, 5);
  db_bind_text(s, 6, j->error);
  rc = db_step(s, e);
  db_stmt_done(s);
  if (rc < 0) return rc;
  int64_t next = j->now + registry_webhook_backoff_ms(j->attempt, j->o->backoff_ms, j->o->backoff_max_ms);
  s = db_prepare(c,
                 "UPDATE registry_webhook_deliveries SET state = ?, attempts = ?, next_attempt_time = ?,"
                 " completed_time = ?, last_status_code = ?, last_error = ? WHERE seq = ?",
                 e);
  if (!s) return -ERR_INTERNAL;
  db_bind_text(s, 1, state);
  db_bind_i64(s, 2, j->attempt);
  db_bind_i64(s, 3, next);
  if (last) db_bind_i64(s, 4, j->now);
  else db_bind_null(s, 4);
  if (j->status) db_bind_i64(s, 5, j->status);
  else db_bind_null(s, 5);
  db_bind_text(s, 6, j->error);
  db_bind_i64(s, 7, j->seq);
  rc = db_step(s, e);
  db_stmt_done(s);
  if (rc < 0) return rc;
  rc = 0;
  if (rc || !last) return rc;
  /* the log keeps the newest log_keep finished deliveries of each webhook */
  rc = reg_exec(c,
                "DELETE FROM registry_webhook_attempts WHERE delivery_seq IN (SELECT seq FROM registry_webhook_deliveries"
                " WHERE webhook_id = ? AND state <> 'PENDING' ORDER BY seq DESC LIMIT -1 OFFSET ?)",
                e, "si", hook, j->o->log_keep);
  if (!rc)
    rc = reg_exec(c,
                  "DELETE FROM registry_webhook_deliveries WHERE seq IN (SELECT seq FROM registry_webhook_deliveries"
                  " WHERE webhook_id = ? AND state <> 'PENDING' ORDER BY seq DESC LIMIT -1 OFFSET ?)",
                  e, "si", hook, j->o->log_keep);
  return rc;
}

struct prune_job {
  int64_t before;
};

static int prune_job(struct db_conn *c, void *arg, struct err *e) {
  struct prune_job *j = arg;
  int rc = reg_exec(c,
                    "DELETE FROM registry_webhook_attempts WHERE delivery_seq IN (SELECT seq FROM"
                    " registry_webhook_deliveries WHERE state <> 'PENDING' AND completed_time < ?)",
                    e, "i", j->before);
  if (!rc)
    rc = reg_exec(c, "DELETE FROM registry_webhook_deliveries WHERE state <> 'PENDING' AND completed_time < ?", e, "i",
                  j->before);
  return rc;
}

static void record(struct registry_webhooks *w, int64_t seq, int attempt, int max_attempts, int64_t start_ms,
                   int64_t dur_ms, long status, const char *error, bool final_fail) {
  struct record_job j = {.seq = seq, .start_ms = start_ms, .duration_ms = dur_ms, .now = time_wall_ms(),
                         .attempt = attempt, .max_attempts = max_attempts, .status = status, .error = error,
                         .final_fail = final_fail, .o = &w->o};
  struct err e;
  if (db_write(w->db, record_job, &j, &e)) log_warn("webhooks.record_failed", "delivery %lld: %s", (long long)seq, e.msg);
}

static size_t discard_body(char *p, size_t size, size_t n, void *ud) {
  (void)p;
  (void)ud;
  return size * n; /* the answer's body is not kept: only its status counts */
}

/* Every connection is checked against the address it really goes to, so a
 * name that resolves (or rebinds) to a private address is caught too. */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a) {
  struct flight *f = ud;
  const uint8_t *bytes = NULL;
  int port = 0;
  if (a->family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)&a->addr;
    bytes = (const uint8_t *)&in->sin_addr;
    port = ntohs(in->sin_port);
  } else if (a->family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->addr;
    bytes = (const uint8_t *)&in6->sin6_addr;
    port = ntohs(in6->sin6_port);
  }
  if (!bytes) {
    snprintf(f->refused, sizeof f->refused, "refused: not an IP address");
    return CURL_SOCKET_BAD;
  }
  bool loop4 = a->family == AF_INET && bytes[0] == 127;
  static const uint8_t lo6[16] = {[15] = 1};
  bool loop6 = a->family == AF_INET6 && !memcmp(bytes, lo6, 16);
  int self = atomic_load(&f->w->self_port);
  if ((loop4 || loop6) && self && port == self) {
    snprintf(f->refused, sizeof f->refused, "refused: the URL points at this Kiln server itself");
    return CURL_SOCKET_BAD;
  }
  if (!f->w->o.allow_private && registry_webhook_addr_private(a->family, bytes)) {
    snprintf(f->refused, sizeof f->refused,
             "refused: the receiver's address is loopback, private or link-local (--webhook-allow-private)");
    return CURL_SOCKET_BAD;
  }
  (void)purpose;
  return socket(a->family, a->socktype, a->protocol);
}

static void flight_free(struct flight *f) {
  if (!f) return;
  if (f->h) curl_easy_cleanup(f->h);
  curl_slist_free_all(f->headers);
  free(f->body);
  free(f);
}

/* Starts one attempt; false when it could not start (recorded already). */
static struct flight *attempt_start(struct registry_webhooks *w, struct claim *cl) {
  int attempt = cl->attempts + 1;
  int64_t start = time_wall_ms();
  if (!cl->url) { /* the delete removes a webhook's rows too; never leave one looping */
    record(w, cl->seq, attempt, cl->max_attempts, start, 0, 0, "webhook was deleted", true);
    return NULL;
  }
  if (str_eq(cl->status, "DISABLED") && !str_eq(cl->event, REGISTRY_EV_TEST)) {
    record(w, cl->seq, attempt, cl->max_attempts, start, 0, 0, "webhook is disabled", true);
    return NULL;
  }
  char secret[REGISTRY_WEBHOOK_SECRET_MAX + 1];
  size_t sn = 0;
  struct err e;
  if (secret_open(w, cl->hook, cl->secret_stored, secret, &sn, &e)) {
    record(w, cl->seq, attempt, cl->max_attempts, start, 0, 0, e.msg, false);
    return NULL;
  }
  struct flight *f = calloc(1, sizeof *f);
  if (!f) {
    sodium_memzero(secret, sizeof secret);
    return NULL;
  }
  f->w = w;
  f->seq = cl->seq;
  f->attempt = attempt;
  f->max_attempts = cl->max_attempts;
  f->start_ms = start;
  f->start_us = time_mono_us();
  f->body = cl->payload;
  cl->payload = NULL;
  int64_t ts = start / 1000;
  char sig[REGISTRY_WEBHOOK_SIG_LEN + 1], line[160];
  registry_webhook_sign(secret, sn, ts, f->body, strlen(f->body), sig);
  sodium_memzero(secret, sizeof secret);
  struct curl_slist *hs = NULL;
  hs = curl_slist_append(hs, "Content-Type: application/json");
  hs = curl_slist_append(hs, "User-Agent: Kiln-Webhooks/" KILN_VERSION);
  hs = curl_slist_append(hs, "Expect:");
  snprintf(line, sizeof line, "X-Kiln-Event: %s", cl->event);
  hs = curl_slist_append(hs, line);
  snprintf(line, sizeof line, "X-Kiln-Delivery: %s", cl->id);
  hs = curl_slist_append(hs, line);
  snprintf(line, sizeof line, "X-Kiln-Webhook-Id: %s", cl->hook);
  hs = curl_slist_append(hs, line);
  snprintf(line, sizeof line, "X-Kiln-Timestamp: %lld", (long long)ts);
  hs = curl_slist_append(hs, line);
  snprintf(line, sizeof line, "X-Kiln-Signature: %s", sig);
  hs = curl_slist_append(hs, line);
  f->headers = hs;
  CURL *h = curl_easy_init();
  f->h = h;
  if (!h || !hs) {
    record(w, cl->seq, attempt, cl->max_attempts, start, 0, 0, "out of memory", false);
    flight_free(f);
    return NULL;
  }
  curl_easy_setopt(h, CURLOPT_URL, cl->url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* a redirect could lead anywhere */
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");       /* the address check must see the real peer */
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, f->body);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(f->body));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)w->o.timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)w->o.timeout_ms);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_body);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, f->err);
  curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, f);
  curl_easy_setopt(h, CURLOPT_PRIVATE, f);
  if (curl_multi_add_handle(w->multi, h) != CURLM_OK) {
    record(w, cl->seq, attempt, cl->max_attempts, start, 0, 0, "could not start the request", false);
    flight_free(f);
    return NULL;
  }
  return f;
}

static void attempt_done(struct registry_webhooks *w, struct flight *f, CURLcode res) {
  long status = 0;
  char error[ERROR_MAX + 1] = "";
  if (res == CURLE_OK) {
    curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status >= 300) snprintf(error, sizeof error, "the receiver answered HTTP %ld", status);
  } else if (f->refused[0]) {
    str_copy(error, sizeof error, f->refused);
  } else if (res == CURLE_OPERATION_TIMEDOUT) {
    snprintf(error, sizeof error, "timed out after %lld ms", (long long)w->o.timeout_ms);
  } else {
    snprintf(error, sizeof error, "%s", f->err[0] ? f->err : curl_easy_strerror(res));
  }
  int64_t dur = (time_mono_us() - f->start_us) / 1000;
  record(w, f->seq, f->attempt, f->max_attempts, f->start_ms, dur, status, error[0] ? error : NULL, false);
  if (error[0]) log_info("webhooks.attempt_failed", "delivery seq %lld attempt %d/%d: %s", (long long)f->seq,
                         f->attempt, f->max_attempts, error);
}

static void *worker(void *arg) {
  struct registry_webhooks *w = arg;
  struct flight *fl[FLIGHT_MAX] = {0};
  int nfl = 0;
  int64_t next_due = 1, last_prune = 0; /* look at the queue at once: earlier runs may have left work */
  while (!atomic_load(&w->stop)) {
    int64_t now = time_wall_ms();
    bool woken = atomic_exchange(&w->woken, false);
    if (nfl < FLIGHT_MAX && (woken || (next_due && next_due <= now))) {
      struct claim cl[FLIGHT_MAX];
      int64_t skip[FLIGHT_MAX];
      for (int i = 0; i < nfl; i++) skip[i] = fl[i]->seq;
      struct claim_job j = {.now = now, .skip = skip, .nskip = nfl, .max = FLIGHT_MAX - nfl, .out = cl};
      struct err e;
      if (db_write(w->db, claim_job, &j, &e)) {
        log_warn("webhooks.claim_failed", "%s", e.msg);
        j.n = 0;
        j.next_due = now + 1000;
      }
      next_due = j.next_due;
      for (int i = 0; i < j.n; i++) {
        struct flight *f = attempt_start(w, &cl[i]);
        if (f) fl[nfl++] = f;
        else next_due = now; /* recorded without sending: look again */
        claim_fini(&cl[i]);
      }
    }
    int running = 0;
    curl_multi_perform(w->multi, &running);
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(w->multi, &left))) {
      if (m->msg != CURLMSG_DONE) continue;
      struct flight *f = NULL;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&f);
      CURLcode res = m->data.result;
      curl_multi_remove_handle(w->multi, m->easy_handle);
      attempt_done(w, f, res);
      for (int i = 0; i < nfl; i++)
        if (fl[i] == f) fl[i] = fl[--nfl];
      flight_free(f);
      if (!next_due || next_due > time_wall_ms()) next_due = time_wall_ms(); /* a retry may be due, room freed */
    }
    now = time_wall_ms();
    if (now - last_prune >= PRUNE_EVERY_MS) {
      struct prune_job pj = {.before = now - w->o.log_retention_ms};
      struct err e;
      if (db_write(w->db, prune_job, &pj, &e)) log_warn("webhooks.prune_failed", "%s", e.msg);
      last_prune = now;
    }
    int64_t wait = IDLE_POLL_MS;
    if (next_due && nfl < FLIGHT_MAX) wait = next_due > now ? next_due - now : 0;
    if (wait > IDLE_POLL_MS) wait = IDLE_POLL_MS;
    if (wait == 0 && nfl == 0 && !atomic_load(&w->woken)) {
      /* due now: loop straight round */
    } else {
      curl_multi_poll(w->multi, NULL, 0, (int)(wait > 0 ? wait : 1), NULL);
    }
    if (!next_due) next_due = time_wall_ms() + 30000; /* a safety net: events wake the worker */
  }
  /* shutdown: abandoned attempts stay PENDING and are made after a restart */
  for (int i = 0; i < nfl; i++) {
    curl_multi_remove_handle(w->multi, fl[i]->h);
    flight_free(fl[i]);
  }
  return NULL;
}

int registry_webhooks_start(struct registry_webhooks *w, struct err *e) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return err_set(e, ERR_INTERNAL, "cannot initialise libcurl");
  w->multi = curl_multi_init();
  if (!w->multi) {
    curl_global_cleanup();
    return err_set(e, ERR_NO_MEMORY, "cannot create the webhook worker");
  }
  pthread_mutex_lock(&g_lock);
  if (g_worker) {
    pthread_mutex_unlock(&g_lock);
    curl_multi_cleanup(w->multi);
    w->multi = NULL;
    curl_global_cleanup();
    return err_set(e, ERR_INVALID_STATE, "a webhook worker is already running");
  }
  g_worker = w;
  pthread_mutex_unlock(&g_lock);
  if (pthread_create(&w->thread, NULL, worker, w)) {
    pthread_mutex_lock(&g_lock);
    g_worker = NULL;
    pthread_mutex_unlock(&g_lock);
    curl_multi_cleanup(w->multi);
    w->multi = NULL;
    curl_global_cleanup();
    return err_set(e, ERR_INTERNAL, "cannot start the webhook worker");
  }
  w->started = true;
  return 0;
}

void registry_webhooks_free(struct registry_webhooks *w) {
  if (!w) return;
  if (w->started) {
    atomic_store(&w->stop, true);
    pthread_mutex_lock(&g_lock);
    curl_multi_wakeup(w->multi);
    g_worker = NULL; /* no more wakes from the emit hook */
    pthread_mutex_unlock(&g_lock);
    pthread_join(w->thread, NULL);
    curl_multi_cleanup(w->multi);
    curl_global_cleanup();
  }
  sodium_memzero(w->key, sizeof w->key);
  free(w);
}
