/* tests/unit/auth/fixture: a real store in a fresh temp dir with the auth
 * room opened on it (argon2 at its minimum cost so tests stay fast). */
#ifndef KILN_TEST_AUTH_FIXTURE_H
#define KILN_TEST_AUTH_FIXTURE_H

#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include "auth/auth.h"

static inline void auth_fixture_open(const char *tag, char dir[64], struct db **db, struct auth **au) {
  log_set_quiet(true);
  cr_assert_eq(base_init(), 0);
  snprintf(dir, 64, "/tmp/%s-XXXXXX", tag);
  cr_assert_not_null(mkdtemp(dir));
  char url[128];
  snprintf(url, sizeof url, "sqlite:%s/kiln.db", dir);
  struct err e;
  cr_assert_eq(db_open(db, url, NULL, &e), 0, "%s", e.msg);
  cr_assert_geq(db_migrate(*db, &e), 0, "%s", e.msg);
  struct auth_opts o = {.pwhash_opslimit = crypto_pwhash_OPSLIMIT_MIN,
                        .pwhash_memlimit = crypto_pwhash_MEMLIMIT_MIN};
  cr_assert_eq(auth_open(au, *db, &o, &e), 0, "%s", e.msg);
}

static inline void auth_fixture_close(const char *dir, struct db *db, struct auth *au) {
  auth_close(au);
  db_close(db);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

#endif
