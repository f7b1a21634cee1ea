/* cli/approvals: `kiln approvals` — the registry's approvals inbox from the
 * shell: list requests, approve or reject one with a comment. Tables for
 * people, --json for scripts (the server's answer as is). */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "internal.h"

static const char USAGE[] =
    "usage: kiln approvals list [--state STATE|ALL] [--max-results N] [--json]\n"
    "       kiln approvals approve ID [--comment TEXT] [--json]\n"
    "       kiln approvals reject ID [--comment TEXT] [--json]\n";

static const char *jstr(json_t *o, const char *k) {
  const char *v = json_string_value(json_object_get(o, k));
  return v ? v : "";
}

static int list(struct cli_client *cl, const char *state, const char *max, bool json) {
  char *st = cli_escape(state ? state : "PENDING"), *mx = max ? cli_escape(max) : NULL;
  char path[256];
  snprintf(path, sizeof path, "/api/v1/approvals?state=%s%s%s", st ? st : "", mx ? "&max_results=" : "",
           mx ? mx : "");
  free(st);
  free(mx);
  json_t *ans = NULL;
  int rc = cli_call(cl, "GET", path, NULL, &ans);
  if (rc) return rc;
  if (json) {
    cli_print_json(ans);
  } else {
    json_t *rows = json_array();
    json_array_append_new(rows, cli_row("ID", "MODEL", "VERSION", "CHANGE", "STATE", "REQUESTER", "CREATED", NULL));
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(ans, "approval_requests"), i, r) {
      char change[600], when[32];
      snprintf(change, sizeof change, "%s %.500s%s", str_eq(jstr(r, "kind"), "alias") ? "alias" : "stage",
               jstr(r, "target"), json_is_true(json_object_get(r, "archive_existing_versions")) ? " (archive)" : "");
      cli_fmt_time(json_integer_value(json_object_get(r, "created_at")), when);
      const char *who = *jstr(r, "requester") ? jstr(r, "requester") : jstr(r, "requester_id");
      json_array_append_new(rows, cli_row(jstr(r, "id"), jstr(r, "model_name"), jstr(r, "version"), change,
                                          jstr(r, "state"), who, when, NULL));
    }
    cli_print_table(rows);
    json_decref(rows);
    if (json_object_get(ans, "next_page_token")) printf("(more: raise --max-results)\n");
  }
  json_decref(ans);
  return 0;
}

int cli_approvals(int argc, char **argv) {
  const char *sub = argc > 0 ? argv[0] : "", *pos[2] = {0}, *state = NULL, *max = NULL, *comment = NULL;
  int npos = 0;
  bool json = false;
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    if (str_eq(s, "--help") || str_eq(s, "-h")) return fputs(USAGE, stdout), 0;
    if (str_eq(s, "--json")) { json = true; continue; }
    if (str_eq(s, "--state") || str_eq(s, "--max-results") || str_eq(s, "--comment")) {
      if (i + 1 >= argc) return fprintf(stderr, "kiln: %s needs a value\n%s", s, USAGE), 2;
      const char *v = argv[++i];
      if (str_eq(s, "--state")) state = v;
      else if (str_eq(s, "--max-results")) max = v;
      else comment = v;
      continue;
    }
    if (s[0] == '-' || npos >= 1) return fprintf(stderr, "kiln: unexpected argument '%s'\n%s", s, USAGE), 2;
    pos[npos++] = s;
  }
  bool decide = str_eq(sub, "approve") || str_eq(sub, "reject");
  if (!(str_eq(sub, "list") && npos == 0) && !(decide && npos == 1)) return fputs(USAGE, stderr), 2;
  int64_t mr;
  if (max && (str_to_i64(max, &mr) || mr < 1)) return fprintf(stderr, "kiln: --max-results takes a positive number\n"), 2;
  /* request ids are 32 hex characters: nothing else goes into the path */
  if (decide && (strlen(pos[0]) != 32 || strspn(pos[0], "0123456789abcdef") != 32))
    return fprintf(stderr, "kiln: '%s' is not an approval request id\n", pos[0]), 2;
  struct cli_client *cl = cli_client_open();
  if (!cl) return 1;
  int rc;
  if (!decide) {
    rc = list(cl, state, max, json);
  } else {
    char path[128];
    snprintf(path, sizeof path, "/api/v1/approvals/%s/%s", pos[0], sub);
    json_t *body = comment ? json_pack("{s:s}", "comment", comment) : json_object(), *ans = NULL;
    rc = cli_call(cl, "POST", path, body, &ans);
    json_decref(body);
    if (!rc) {
      json_t *r = json_object_get(ans, "approval_request");
      if (json) cli_print_json(ans);
      else printf("request %s is %s: %s version %s, %s %s\n", jstr(r, "id"), jstr(r, "state"), jstr(r, "model_name"),
                  jstr(r, "version"), jstr(r, "kind"), jstr(r, "target"));
    }
    json_decref(ans);
  }
  cli_client_close(cl);
  return rc;
}
