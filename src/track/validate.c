/* track/validate: MLflow's input rules — key syntax and lengths, run ids,
 * statuses and view types, the latest-metric rule and page tokens. Pure
 * functions, so the unit tests pin MLflow's wording and edge cases. */
#include "track.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

int track_view_parse(const char *s, enum track_view *out, struct err *e) {
  static const char *const names[] = {NULL, "ACTIVE_ONLY", "DELETED_ONLY", "ALL"};
  for (int i = 1; i <= 3; i++) {
    char num[2] = {(char)('0' + i), 0};
    if (str_eq(s, names[i]) || str_eq(s, num)) {
      *out = (enum track_view)i;
      return 0;
    }
  }
  return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                 "Invalid view type '%s': expected ACTIVE_ONLY, DELETED_ONLY or ALL", s ? s : "");
}

static const char *const status_names[] = {NULL, "RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"};

const char *track_status_name(enum track_status s) {
  return s >= TRACKING_RUNNING && s <= TRACKING_KILLED ? status_names[s] : "RUNNING";
}

int track_status_parse(const char *s, enum track_status *out, struct err *e) {
  for (int i = 1; i <= 5; i++) {
    char num[2] = {(char)('0' + i), 0};
    if (str_eq(s, status_names[i]) || str_eq(s, num)) {
      *out = (enum track_status)i;
      return 0;
    }
  }
  return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                 "Invalid run status '%s': expected RUNNING, SCHEDULED, FINISHED, FAILED or KILLED",
                 s ? s : "");
}

/* ---- keys ------------------------------------------------------------------ */

size_t track_utf8_chars(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) n++;
  return n;
}

size_t track_utf8_prefix(const char *s, size_t n) {
  size_t i = 0, chars = 0;
  for (; s[i]; i++) {
    if (((unsigned char)s[i] & 0xC0) != 0x80) {
      if (chars == n) break;
      chars++;
    }
  }
  return i;
}

/* \w in Python 3 regexes is Unicode-aware; every non-ASCII character is
 * taken as a word character here (a superset: MLflow would refuse a few
 * symbols such as U+20AC). */
static bool key_char_ok(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80 ||
         strchr("_/.- :", c) != NULL;
}

/* posixpath.normpath, for the "would resolve to" message and the check. */
static void normpath(const char *p, char *out, size_t cap) {
  size_t o = 0;
  int lead = 0;
  while (p[lead] == '/') lead++;
  lead = lead == 2 ? 2 : lead > 0 ? 1 : 0;
  for (int i = 0; i < lead && o + 1 < cap; i++) out[o++] = '/';
  size_t base = o;
  int depth = 0; /* components we may pop */
  const char *s = p;
  while (*s) {
    while (*s == '/') s++;
    if (!*s) break;
    const char *t = s;
    while (*t && *t != '/') t++;
    size_t n = (size_t)(t - s);
    if (n == 1 && s[0] == '.') {
      /* skip */
    } else if (n == 2 && s[0] == '.' && s[1] == '.' && (depth > 0 || lead)) {
      if (depth > 0) {
        while (o > base && out[o - 1] != '/') o--;
        if (o > base) o--;
        depth--;
      }
    } else {
      if (o > base && o + 1 < cap) out[o++] = '/';
      for (size_t i = 0; i < n && o + 1 < cap; i++) out[o++] = s[i];
      if (!(n == 2 && s[0] == '.' && s[1] == '.')) depth++;
    }
    s = t;
  }
  if (o == 0 && cap > 1) out[o++] = '.';
  out[o] = 0;
}

int track_key_check(enum track_key_kind k, const char *key, struct err *e) {
  static const char *const what[] = {"metric", "parameter", "tag"};
  static const char *const what_cap[] = {"Metric", "Parameter", "Tag"};
  static const char *const len_what[] = {"Metric name", "Param key", "Tag key"};
  if (!key)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "%s name cannot be None. A key name must be provided.",
                   what_cap[k]);
  for (const char *p = key; *p; p++)
    if (!key_char_ok((unsigned char)*p))
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "Invalid %s name: '%.200s'. Names may only contain alphanumerics, underscores "
                     "(_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/).",
                     what[k], key);
  char norm[TRACKING_MAX_KEY_LEN * 4 + 8];
  size_t n = strlen(key);
  if (n < sizeof norm) {
    normpath(key, norm, sizeof norm);
    if (strcmp(norm, key) != 0 || str_eq(norm, ".") || str_has_prefix(norm, "..") || norm[0] == '/')
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "Invalid %s name: '%.200s'. Names may be treated as files in certain cases, and "
                     "must not resolve to other names when treated as such. This name would resolve "
                     "to '%.200s'",
                     what[k], key, norm);
  }
  size_t chars = track_utf8_chars(key);
  if (chars > TRACKING_MAX_KEY_LEN)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "%s '%.*s' had length %zu, which exceeded length limit of %d", len_what[k],
                   (int)track_utf8_prefix(key, 100), key, chars, TRACKING_MAX_KEY_LEN);
  return 0;
}

bool track_run_id_valid(const char *s) {
  if (!s || strlen(s) != TRACKING_RUN_ID_LEN) return false;
  for (; *s; s++)
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return false;
  return true;
}

/* ---- page tokens ------------------------------------------------------------------ */

void track_page_token_encode_snap(int64_t offset, int64_t snap, char out[TRACKING_PAGE_TOKEN_MAX]) {
  char json[80];
  int n = snap > 0 ? snprintf(json, sizeof json, "{\"offset\": %lld, \"snap\": %lld}", (long long)offset,
                              (long long)snap)
                   : snprintf(json, sizeof json, "{\"offset\": %lld}", (long long)offset);
  sodium_bin2base64(out, TRACKING_PAGE_TOKEN_MAX, (const unsigned char *)json, (size_t)n,
                    sodium_base64_VARIANT_ORIGINAL);
}

void track_page_token_encode(int64_t offset, char out[TRACKING_PAGE_TOKEN_MAX]) {
  track_page_token_encode_snap(offset, 0, out);
}

int track_page_token_decode_snap(const char *token, int64_t *offset, int64_t *snap, struct err *e) {
  unsigned char raw[TRACKING_PAGE_TOKEN_MAX];
  size_t n = 0;
  size_t tl = strlen(token);
  if (snap) *snap = 0;
  if (tl >= TRACKING_PAGE_TOKEN_MAX ||
      sodium_base642bin(raw, sizeof raw - 1, token, tl, NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid page token, could not base64-decode");
  raw[n] = 0;
  json_error_t je;
  json_t *v = json_loadb((const char *)raw, n, 0, &je);
  json_t *o = json_object_get(v, "offset"), *sn = json_object_get(v, "snap");
  int rc = 0;
  if (!json_is_integer(o) || json_integer_value(o) < 0 || (sn && (!json_is_integer(sn) || json_integer_value(sn) < 1)))
    rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "Invalid page token, decoded value=%.*s", (int)n,
                 (const char *)raw);
  else {
    *offset = json_integer_value(o);
    if (snap && sn) *snap = json_integer_value(sn);
  }
  json_decref(v);
  return rc;
}

int track_page_token_decode(const char *token, int64_t *offset, struct err *e) {
  return track_page_token_decode_snap(token, offset, NULL, e);
}

/* ---- run names ------------------------------------------------------------------------ */

void track_run_name_generate(char out[64]) {
  static const char *const adj[] = {
      "able",   "agile",  "amber",  "ample",  "bold",   "brave",  "bright", "brisk",  "calm",
      "clever", "crisp",  "dapper", "eager",  "fair",   "fast",   "fleet",  "gentle", "glad",
      "grand",  "honest", "humble", "jolly",  "keen",   "kind",   "lucid",  "lucky",  "merry",
      "mild",   "nimble", "noble",  "placid", "polite", "proud",  "quick",  "quiet",  "rare",
      "rustic", "serene", "sharp",  "shy",    "silent", "sleek",  "smooth", "steady", "sunny",
      "swift",  "tidy",   "upbeat", "vivid",  "warm",   "wise",   "witty",  "zealous"};
  static const char *const noun[] = {
      "ant",   "bat",    "bear",   "bee",   "bird",  "boar",  "cat",   "colt",  "crab",
      "crane", "deer",   "doe",    "dove",  "duck",  "eel",   "elk",   "finch", "fish",
      "fox",   "frog",   "goat",   "gull",  "hare",  "hawk",  "hen",   "heron", "horse",
      "jay",   "koi",    "lamb",   "lark",  "lynx",  "mink",  "mole",  "moth",  "mouse",
      "newt",  "owl",    "ox",     "panda", "pig",   "ram",   "robin", "seal",  "shark",
      "sheep", "shrew",  "skunk",  "slug",  "snail", "squid", "stork", "swan",  "toad",
      "trout", "turtle", "whale",  "wolf",  "worm",  "wren",  "yak",   "zebra"};
  uint32_t a = randombytes_uniform(sizeof adj / sizeof adj[0]);
  uint32_t b = randombytes_uniform(sizeof noun / sizeof noun[0]);
  snprintf(out, 64, "%s-%s-%u", adj[a], noun[b], (unsigned)randombytes_uniform(1000));
}
