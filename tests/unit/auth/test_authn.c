/* tests for auth/authn: credential headers to principals. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "fixture.h"

static char dir[64];
static struct db *db;
static struct auth *au;
static struct auth_user alice;

static void setup(void) {
  auth_fixture_open("kiln-authn", dir, &db, &au);
  struct err e;
  cr_assert_eq(auth_user_create(au, "alice", "alice@example.com", "Correct-Horse-9", false, &alice, &e), 0, "%s", e.msg);
}

static void teardown(void) { auth_fixture_close(dir, db, au); }

TestSuite(authn, .init = setup, .fini = teardown);

static const char *basic(const char *userpass, char *out, size_t cap) {
  char b64[200];
  sodium_bin2base64(b64, sizeof b64, (const unsigned char *)userpass, strlen(userpass),
                    sodium_base64_VARIANT_ORIGINAL);
  snprintf(out, cap, "Basic %s", b64);
  return out;
}

Test(authn, no_credentials_is_anonymous_not_an_error) {
  struct auth_principal p;
  struct err e;
  cr_assert_eq(auth_authenticate(au, NULL, NULL, "127.0.0.1", &p, &e), 0);
  cr_assert_eq(p.kind, AUTH_ANON);
  cr_assert_eq(auth_authorize(au, &p, AUTH_SCOPE_READ, NULL, &e), -ERR_UNAUTHENTICATED);
}

Test(authn, bearer_jwt_bearer_key_x_api_key_and_basic) {
  struct err e;
  struct auth_tokens t;
  cr_assert_eq(auth_tokens_issue(au, &alice, &t, &e), 0, "%s", e.msg);
  char hdr[2200];
  snprintf(hdr, sizeof hdr, "Bearer %s", t.access_token);
  struct auth_principal p;
  cr_assert_eq(auth_authenticate(au, hdr, NULL, NULL, &p, &e), 0, "%s", e.msg);
  cr_assert_eq(p.kind, AUTH_JWT);
  cr_assert_str_eq(p.user_id, alice.id);

  char key[AUTH_KEY_MAX];
  struct auth_api_key k;
  cr_assert_eq(auth_key_create(au, alice.id, "ci", AUTH_SCOPE_READ, NULL, 0, key, &k, &e), 0, "%s", e.msg);
  snprintf(hdr, sizeof hdr, "bearer %s", key);
  cr_assert_eq(auth_authenticate(au, hdr, NULL, NULL, &p, &e), 0, "%s", e.msg);
  cr_assert_eq(p.kind, AUTH_API_KEY);
  cr_assert_eq(p.scopes, AUTH_SCOPE_READ);
  cr_assert_eq(auth_authenticate(au, NULL, key, NULL, &p, &e), 0);
  cr_assert_str_eq(p.key_id, k.id);

  char b[256];
  cr_assert_eq(auth_authenticate(au, basic("alice:Correct-Horse-9", b, sizeof b), NULL, "10.1.1.1", &p, &e), 0, "%s", e.msg);
  cr_assert_eq(p.kind, AUTH_BASIC);
  cr_assert_str_eq(p.username, "alice");
  /* the email works as the login too */
  cr_assert_eq(auth_authenticate(au, basic("alice@example.com:Correct-Horse-9", b, sizeof b), NULL, NULL, &p, &e), 0);
}

Test(authn, bad_credentials_are_401_and_never_echoed) {
  struct auth_principal p;
  struct err e;
  const char *bad[] = {"Bearer ", "Bearer not.a.jwt", "Bearer kiln_tooshort", "Token abc", "Basic !!!",
                       "Basic YWxpY2U=" /* no colon */};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_assert_eq(auth_authenticate(au, bad[i], NULL, NULL, &p, &e), -ERR_UNAUTHENTICATED, "'%s'", bad[i]);
    cr_assert(strstr(e.msg, "not.a.jwt") == NULL && strstr(e.msg, "tooshort") == NULL, "%s", e.msg);
  }
  char b[256];
  cr_assert_eq(auth_authenticate(au, basic("alice:wrong-password-1", b, sizeof b), NULL, NULL, &p, &e), -ERR_UNAUTHENTICATED);
  cr_assert_str_eq(e.msg, "invalid username or password");
}

Test(authn, basic_is_throttled_like_a_login) {
  struct auth_principal p;
  struct err e;
  char b[256];
  for (int i = 0; i < 5; i++) auth_authenticate(au, basic("alice:wrong-password-1", b, sizeof b), NULL, NULL, &p, &e);
  cr_assert_eq(auth_authenticate(au, basic("alice:Correct-Horse-9", b, sizeof b), NULL, NULL, &p, &e), -ERR_RATE_LIMITED);
}

Test(authn, a_verified_basic_credential_is_cached_briefly) {
  struct auth_principal p;
  struct err e;
  char b[256];
  basic("alice:Correct-Horse-9", b, sizeof b);
  int64_t t0 = time_mono_us();
  cr_assert_eq(auth_authenticate(au, b, NULL, NULL, &p, &e), 0);
  int64_t first = time_mono_us() - t0;
  t0 = time_mono_us();
  for (int i = 0; i < 100; i++) cr_assert_eq(auth_authenticate(au, b, NULL, NULL, &p, &e), 0);
  int64_t hundred = time_mono_us() - t0;
  cr_assert_str_eq(p.user_id, alice.id);
  /* not a timing assertion on the machine: a cache hit must not re-run the
   * password hash, so 100 hits cost less than 100 hashes would */
  cr_assert_lt(hundred, first * 100, "100 cached checks %lld us vs one hash %lld us", (long long)hundred, (long long)first);
  /* a different password never hits the cache */
  cr_assert_eq(auth_authenticate(au, basic("alice:Correct-Horse-8", b, sizeof b), NULL, NULL, &p, &e), -ERR_UNAUTHENTICATED);
}
