/* tests/unit/store_fixture: a real, migrated SQLite store in a fresh temp
 * dir (and, when asked, a blob store beside it) for the rooms' unit tests;
 * closing removes the dir. */
#ifndef KILN_TEST_STORE_FIXTURE_H
#define KILN_TEST_STORE_FIXTURE_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "store/store.h"

static inline void store_fixture_open(const char *tag, char dir[64], struct db **db) {
  log_set_quiet(true);
  cr_assert_eq(base_init(), 0);
  snprintf(dir, 64, "/tmp/%s-XXXXXX", tag);
  cr_assert_not_null(mkdtemp(dir));
  char url[128];
  snprintf(url, sizeof url, "sqlite:%s/kiln.db", dir);
  struct err e;
  cr_assert_eq(db_open(db, url, NULL, &e), 0, "%s", e.msg);
  cr_assert_geq(db_migrate(*db, &e), 0, "%s", e.msg);
}

static inline void store_fixture_blobs(const char *dir, struct db *db, struct blob_store **bs) {
  char url[128];
  struct err e;
  snprintf(url, sizeof url, "file:%s/blobs", dir);
  cr_assert_eq(blob_open(bs, url, db, NULL, &e), 0, "%s", e.msg);
}

static inline void store_fixture_close(const char *dir, struct db *db) {
  db_close(db);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

#endif
