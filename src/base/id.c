/* base/id: random ids, hex, SHA-256 and constant-time comparison, all on
 * libsodium so there is one vetted source of randomness and hashing. */
#include "base.h"

#include <sodium.h>
#include <string.h>

_Static_assert(sizeof(crypto_hash_sha256_state) <= sizeof(((struct sha256 *)0)->state),
               "sha256 state too small");

int base_init(void) { return sodium_init() < 0 ? -ERR_INTERNAL : 0; }

void hex_encode(char *out, const uint8_t *in, size_t n) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int hex_decode(uint8_t *out, size_t cap, const char *hex) {
  size_t n = strlen(hex);
  if (n % 2 || n / 2 > cap) return -1;
  for (size_t i = 0; i < n / 2; i++) {
    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return (int)(n / 2);
}

void id_random_hex(char *out, size_t nbytes) {
  uint8_t tmp[64];
  if (nbytes > sizeof tmp) nbytes = sizeof tmp;
  randombytes_buf(tmp, nbytes);
  hex_encode(out, tmp, nbytes);
}

void sha256_init(struct sha256 *h) { crypto_hash_sha256_init((crypto_hash_sha256_state *)h->state); }
void sha256_update(struct sha256 *h, const void *p, size_t n) {
  crypto_hash_sha256_update((crypto_hash_sha256_state *)h->state, p, n);
}
void sha256_final(struct sha256 *h, uint8_t out[32]) {
  crypto_hash_sha256_final((crypto_hash_sha256_state *)h->state, out);
}

void sha256_hex(const void *p, size_t n, char out[65]) {
  uint8_t d[32];
  crypto_hash_sha256(d, p, n);
  hex_encode(out, d, 32);
}

bool sha256_hex_valid(const char *s) {
  if (!s || strlen(s) != 64) return false;
  for (int i = 0; i < 64; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  return true;
}

bool secret_eq(const void *a, const void *b, size_t n) { return sodium_memcmp(a, b, n) == 0; }

static const char b62_digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* Repeated division of the byte string by 62. */
void base62_encode(const uint8_t *in, size_t n, char *out, size_t digits) {
  uint8_t num[128];
  if (n > sizeof num) n = sizeof num;
  memcpy(num, in, n);
  for (size_t i = digits; i-- > 0;) {
    unsigned rem = 0;
    for (size_t k = 0; k < n; k++) {
      unsigned cur = rem * 256u + num[k];
      num[k] = (uint8_t)(cur / 62u);
      rem = cur % 62u;
    }
    out[i] = b62_digits[rem];
  }
  out[digits] = 0;
  sodium_memzero(num, sizeof num);
}

bool base62_valid(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) return false;
  }
  return true;
}

size_t secret_token_new(const char *prefix, char *out, size_t cap, char hash[65]) {
  size_t pl = strlen(prefix), len = pl + SECRET_TOKEN_DIGITS;
  if (cap <= len) return 0;
  uint8_t raw[32];
  randombytes_buf(raw, sizeof raw);
  memcpy(out, prefix, pl);
  base62_encode(raw, sizeof raw, out + pl, SECRET_TOKEN_DIGITS);
  sodium_memzero(raw, sizeof raw);
  if (hash) sha256_hex(out, len, hash);
  return len;
}

/* splitmix64 over a per-thread seed: request ids need uniqueness, not
 * secrecy, and a getrandom(2) per request would show in the serving path. */
static _Thread_local uint64_t id_state[2];

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void id_request_hex(char out[33]) {
  if (id_state[1] == 0) {
    randombytes_buf(id_state, sizeof id_state);
    id_state[1] |= 1;
  }
  uint8_t b[16];
  uint64_t a = splitmix64(&id_state[0]), c = splitmix64(&id_state[0]) ^ id_state[1];
  memcpy(b, &a, 8);
  memcpy(b + 8, &c, 8);
  hex_encode(out, b, 16);
}
