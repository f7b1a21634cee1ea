/* tests for auth/throttle: exact backoff per account and per address. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"

Test(throttle, five_account_failures_are_free_then_the_wait_doubles) {
  struct auth_throttle *t = auth_throttle_new();
  int64_t now = 1000000;
  for (int i = 0; i < 5; i++) {
    cr_assert_eq(auth_throttle_wait(t, "alice", "10.0.0.1", now), 0, "attempt %d is free", i + 1);
    auth_throttle_failed(t, "alice", "10.0.0.1", now);
  }
  /* 5 failures: the next attempt waits 2^0 = 1 s after the last failure */
  cr_assert_eq(auth_throttle_wait(t, "alice", NULL, now), 1);
  cr_assert_eq(auth_throttle_wait(t, "alice", NULL, now + 999), 1);
  cr_assert_eq(auth_throttle_wait(t, "alice", NULL, now + 1000), 0);
  auth_throttle_failed(t, "alice", NULL, now + 1000); /* 6th: 2 s */
  cr_assert_eq(auth_throttle_wait(t, "alice", NULL, now + 1000), 2);
  auth_throttle_failed(t, "alice", NULL, now + 3000); /* 7th: 4 s */
  cr_assert_eq(auth_throttle_wait(t, "alice", NULL, now + 3000), 4);
  cr_assert_eq(auth_throttle_wait(t, "ALICE", NULL, now + 3000), 4, "logins are case-insensitive");
  cr_assert_eq(auth_throttle_wait(t, "bob", NULL, now + 3000), 0, "other accounts are not affected");
  auth_throttle_succeeded(t, "alice", NULL);
  cr_assert_eq(auth_throttle_wait(t, "alice", NULL, now + 3000), 0, "a success resets the account");
  auth_throttle_free(t);
}

Test(throttle, the_wait_is_capped_at_fifteen_minutes) {
  struct auth_throttle *t = auth_throttle_new();
  int64_t now = 5000;
  for (int i = 0; i < 40; i++) auth_throttle_failed(t, "carol", NULL, now);
  cr_assert_eq(auth_throttle_wait(t, "carol", NULL, now), 900);
  auth_throttle_free(t);
}

Test(throttle, an_address_gets_twenty_free_failures_across_accounts) {
  struct auth_throttle *t = auth_throttle_new();
  char acct[32];
  for (int i = 0; i < 20; i++) {
    snprintf(acct, sizeof acct, "user%d", i);
    cr_assert_eq(auth_throttle_wait(t, acct, "192.0.2.7", 0), 0);
    auth_throttle_failed(t, acct, "192.0.2.7", 0);
  }
  cr_assert_eq(auth_throttle_wait(t, "someone-new", "192.0.2.7", 0), 1, "spraying accounts from one address backs off");
  cr_assert_eq(auth_throttle_wait(t, "someone-new", "192.0.2.8", 0), 0);
  auth_throttle_succeeded(t, "user0", "192.0.2.7");
  cr_assert_eq(auth_throttle_wait(t, "someone-new", "192.0.2.7", 0), 1, "a success does not clear the address");
  auth_throttle_free(t);
}

Test(throttle, memory_is_bounded_under_a_flood_of_accounts) {
  struct auth_throttle *t = auth_throttle_new();
  char acct[32];
  for (int i = 0; i < 100000; i++) {
    snprintf(acct, sizeof acct, "flood%d", i);
    auth_throttle_failed(t, acct, NULL, i);
  }
  /* the table keeps working; a fresh account is free */
  cr_assert_eq(auth_throttle_wait(t, "fresh", NULL, 100000), 0);
  for (int i = 0; i < 6; i++) auth_throttle_failed(t, "victim", NULL, 200000);
  cr_assert_eq(auth_throttle_wait(t, "victim", NULL, 200000), 2);
  auth_throttle_free(t);
}

Test(roles_scopes, names_round_trip_and_unknowns_are_refused) {
  cr_assert_eq(org_role_parse("owner"), ORG_ROLE_OWNER);
  cr_assert_str_eq(org_role_name(ORG_ROLE_MEMBER), "member");
  cr_assert_eq(org_role_parse("root"), ORG_ROLE_NONE);
  cr_assert_eq(project_role_parse("editor"), PROJECT_ROLE_EDITOR);
  cr_assert_str_eq(project_role_name(PROJECT_ROLE_VIEWER), "viewer");
  unsigned s;
  struct err e;
  cr_assert_eq(auth_scopes_parse("read, predict", &s, &e), 0);
  cr_assert_eq(s, AUTH_SCOPE_READ | AUTH_SCOPE_PREDICT);
  char out[64];
  auth_scopes_format(AUTH_SCOPE_ALL, out, sizeof out);
  cr_assert_str_eq(out, "read,write,predict,admin");
  cr_assert_lt(auth_scopes_parse("read,sudo", &s, &e), 0);
  cr_assert(strstr(e.msg, "sudo") != NULL, "%s", e.msg);
  cr_assert_lt(auth_scopes_parse("", &s, &e), 0);
}
