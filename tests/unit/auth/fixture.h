/* tests/unit/auth/fixture: a real store in a fresh temp dir with the auth
 * room opened on it (argon2 at its minimum cost so tests stay fast). */
#ifndef KILN_TEST_AUTH_FIXTURE_H
#define KILN_TEST_AUTH_FIXTURE_H

#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include "../store_fixture.h"
#include "auth/auth.h"

static inline void auth_fixture_open(const char *tag, char dir[64], struct db **db, struct auth **au) {
  store_fixture_open(tag, dir, db);
  struct err e;
  struct auth_opts o = {.pwhash_opslimit = crypto_pwhash_OPSLIMIT_MIN,
                        .pwhash_memlimit = crypto_pwhash_MEMLIMIT_MIN};
  cr_assert_eq(auth_open(au, *db, &o, &e), 0, "%s", e.msg);
}

static inline void auth_fixture_close(const char *dir, struct db *db, struct auth *au) {
  auth_close(au);
  store_fixture_close(dir, db);
}

#endif
