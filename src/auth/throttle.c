/* auth/throttle: login backoff per account and per client address. */
#include "auth.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define THROTTLE_SLOTS 4096   /* bounded memory whatever an attacker sends */
/* failures allowed before any wait: an address may be shared (NAT, proxies) */
#define THROTTLE_FREE_ACCOUNT 5
#define THROTTLE_FREE_ADDR 20
#define THROTTLE_MAX_WAIT_S 900
/* failures older than this are forgotten, so an address shared by many
 * users (a proxy) is not locked out for good by old typos */
#define THROTTLE_FORGET_MS (15 * 60 * 1000)

struct slot {
  uint64_t key;     /* hash of "a:" account or "c:" address; 0 = empty */
  int fails;
  int64_t last_ms;
};

struct auth_throttle {
  pthread_mutex_t mu;
  struct slot slots[THROTTLE_SLOTS];
};

struct auth_throttle *auth_throttle_new(void) {
  struct auth_throttle *t = calloc(1, sizeof *t);
  if (t) pthread_mutex_init(&t->mu, NULL);
  return t;
}

void auth_throttle_free(struct auth_throttle *t) {
  if (!t) return;
  pthread_mutex_destroy(&t->mu);
  free(t);
}

static uint64_t key_of(char kind, const char *s) {
  uint64_t h = 1469598103934665603ull ^ (uint64_t)(unsigned char)kind;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    unsigned char c = *p;
    if (c >= 'A' && c <= 'Z') c = (unsigned char)(c | 0x20); /* logins are case-insensitive */
    h = (h ^ c) * 1099511628211ull;
  }
  return h ? h : 1;
}

/* Open addressing over a small window; when full, the stalest entry goes. */
static struct slot *find(struct auth_throttle *t, uint64_t key, bool create) {
  size_t base = key % THROTTLE_SLOTS;
  struct slot *victim = NULL;
  for (size_t i = 0; i < 16; i++) {
    struct slot *s = &t->slots[(base + i) % THROTTLE_SLOTS];
    if (s->key == key) return s;
    if (s->key == 0) {
      if (!victim || victim->key != 0) victim = s;
    } else if (!victim || (victim->key != 0 && s->last_ms < victim->last_ms)) {
      victim = s;
    }
  }
  if (!create) return NULL;
  victim->key = key;
  victim->fails = 0;
  victim->last_ms = 0;
  return victim;
}

static int64_t wait_for(const struct slot *s, int free_fails, int64_t now_ms) {
  if (!s || s->fails < free_fails || now_ms - s->last_ms > THROTTLE_FORGET_MS) return 0;
  int n = s->fails - free_fails;
  int64_t wait_s = n >= 10 ? THROTTLE_MAX_WAIT_S : (int64_t)1 << n;
  if (wait_s > THROTTLE_MAX_WAIT_S) wait_s = THROTTLE_MAX_WAIT_S;
  int64_t until = s->last_ms + wait_s * 1000;
  if (now_ms >= until) return 0;
  return (until - now_ms + 999) / 1000;
}

int64_t auth_throttle_wait(struct auth_throttle *t, const char *account, const char *addr,
                           int64_t now_ms) {
  pthread_mutex_lock(&t->mu);
  int64_t w1 = account ? wait_for(find(t, key_of('a', account), false), THROTTLE_FREE_ACCOUNT, now_ms) : 0;
  int64_t w2 = addr ? wait_for(find(t, key_of('c', addr), false), THROTTLE_FREE_ADDR, now_ms) : 0;
  pthread_mutex_unlock(&t->mu);
  return w1 > w2 ? w1 : w2;
}

void auth_throttle_failed(struct auth_throttle *t, const char *account, const char *addr,
                          int64_t now_ms) {
  pthread_mutex_lock(&t->mu);
  if (account) {
    struct slot *s = find(t, key_of('a', account), true);
    if (now_ms - s->last_ms > THROTTLE_FORGET_MS) s->fails = 0;
    s->fails++;
    s->last_ms = now_ms;
  }
  if (addr) {
    struct slot *s = find(t, key_of('c', addr), true);
    if (now_ms - s->last_ms > THROTTLE_FORGET_MS) s->fails = 0;
    s->fails++;
    s->last_ms = now_ms;
  }
  pthread_mutex_unlock(&t->mu);
}

void auth_throttle_succeeded(struct auth_throttle *t, const char *account, const char *addr) {
  (void)addr; /* an address shared by many users keeps its count */
  pthread_mutex_lock(&t->mu);
  struct slot *s = account ? find(t, key_of('a', account), false) : NULL;
  if (s) {
    s->key = 0;
    s->fails = 0;
  }
  pthread_mutex_unlock(&t->mu);
}
