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
