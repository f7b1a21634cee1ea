/* tests for model uploads' domain pieces: the streaming multipart reader fed
 * in every split, and uploads against a real store — a file becoming a READY
 * version with one blob reference, checksum mismatches and unsafe pickles
 * leaving no blob, sessions that append in order and cut back a broken
 * chunk, expiry, and the per-project switch. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../store_fixture.h"
#include "registry/internal.h"
#include "registry/registry.h"

/* ---- multipart ------------------------------------------------------------------------- */

struct seen {
  char names[8][64];
  struct buf data[8];
  int n;
  int ended;
};

static int on_begin(void *ctx, const char *name, const char *filename, struct err *e) {
  struct seen *s = ctx;
  cr_assert_lt(s->n, 8);
  snprintf(s->names[s->n], 64, "%s|%s", name, filename);
  buf_init(&s->data[s->n]);
  s->n++;
  return 0;
}
static int on_data(void *ctx, const char *p, size_t n, struct err *e) {
  struct seen *s = ctx;
  return buf_append(&s->data[s->n - 1], p, n);
}
static int on_end(void *ctx, struct err *e) {
  ((struct seen *)ctx)->ended++;
  return 0;
}
static const struct mp_callbacks cbs = {on_begin, on_data, on_end};

static const char FORM[] =
    "preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nchurn\r\n"
    "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"m.bin\"\r\n"
    "Content-Type: application/octet-stream\r\n\r\n\r\n--Xy\r\n-XyZ-not\0bin\r\n"
    "--XyZ--\r\nepilogue";

TestSuite(registry_upload_multipart);

Test(registry_upload_multipart, every_split_gives_the_same_parts) {
  size_t len = sizeof FORM - 1;
  for (size_t step = 1; step <= len; step++) {
    struct seen s = {0};
    struct err e;
    struct mp_parser *p = mp_parser_new("multipart/form-data; boundary=\"XyZ\"", &cbs, &s, &e);
    cr_assert_not_null(p);
    for (size_t off = 0; off < len; off += step)
      cr_assert_eq(mp_parser_feed(p, FORM + off, off + step > len ? len - off : step, &e), 0, "%s", e.msg);
    cr_assert_eq(mp_parser_finish(p, &e), 0, "step %zu: %s", step, e.msg);
    cr_assert_eq(s.n, 2, "step %zu", step);
    cr_assert_eq(s.ended, 2);
    cr_assert_str_eq(s.names[0], "name|");
    cr_assert_str_eq(s.names[1], "file|m.bin");
    cr_assert_eq(s.data[0].len, 5);
    cr_assert_eq(memcmp(s.data[0].data, "churn", 5), 0);
    static const char want[] = "\r\n--Xy\r\n-XyZ-not\0bin";
    cr_assert_eq(s.data[1].len, sizeof want - 1, "step %zu: %zu", step, s.data[1].len);
    cr_assert_eq(memcmp(s.data[1].data, want, sizeof want - 1), 0);
    for (int i = 0; i < s.n; i++) buf_fini(&s.data[i]);
    mp_parser_free(p);
  }
}

Test(registry_upload_multipart, refusals) {
  struct seen s = {0};
  struct err e;
  cr_assert_null(mp_parser_new("multipart/form-data", &cbs, &s, &e));
  cr_assert_null(mp_parser_new("application/json; boundary=a", &cbs, &s, &e));
  struct mp_parser *p = mp_parser_new("multipart/form-data; boundary=b", &cbs, &s, &e);
  static const char trunc[] = "--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc";
  cr_assert_eq(mp_parser_feed(p, trunc, sizeof trunc - 1, &e), 0);
  cr_assert_neq(mp_parser_finish(p, &e), 0);
  cr_assert(strstr(e.msg, "closing boundary"));
  mp_parser_free(p);
  for (int i = 0; i < s.n; i++) buf_fini(&s.data[i]);
  memset(&s, 0, sizeof s);
  p = mp_parser_new("multipart/form-data; boundary=b", &cbs, &s, &e);
  static const char nodisp[] = "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--";
  cr_assert_neq(mp_parser_feed(p, nodisp, sizeof nodisp - 1, &e), 0);
  cr_assert(strstr(e.msg, "Content-Disposition"));
  mp_parser_free(p);
  /* a header block that never ends is bounded */
  p = mp_parser_new("multipart/form-data; boundary=b", &cbs, &s, &e);
  cr_assert_eq(mp_parser_feed(p, "--b\r\n", 5, &e), 0);
  char junk[1024];
  memset(junk, 'h', sizeof junk);
  int rc = 0;
  for (int i = 0; i < 20 && !rc; i++) rc = mp_parser_feed(p, junk, sizeof junk, &e);
  cr_assert_neq(rc, 0);
  mp_parser_free(p);
}

/* ---- uploads against a store --------------------------------------------------------------- */

static char dir[64];
static struct db *db;
static struct blob_store *bs;
static struct registry_upload_cfg cfg;
static char updir[128];

#define P1 "aaaa0000000000000000000000000001"

static void setup(void) {
  store_fixture_open("kiln-upl", dir, &db);
  store_fixture_blobs(dir, db, &bs);
  snprintf(updir, sizeof updir, "%s/uploads", dir);
  cfg = (struct registry_upload_cfg){.db = db, .blobs = bs, .dir = updir, .max_size = 1 << 20};
}
static void teardown(void) {
  blob_close(bs);
  store_fixture_close(dir, db);
}

TestSuite(registry_upload_store, .init = setup, .fini = teardown);

/* protocol-2 pickles: a benign dict, and one that imports os.system */
static const char BENIGN[] = "\x80\x02}q\x00X\x01\x00\x00\x00" "aq\x01K\x01s.";
static const char EVIL[] = "\x80\x02" "cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.";

static int64_t refcount(const char *sha) {
  struct blob_info bi;
  struct err e;
  return blob_stat(bs, sha, &bi, &e) ? -1 : bi.refcount;
}

static json_t *push(const char *name, const void *p, size_t n, const char *expect, int *rc, struct err *e) {
  struct registry_upload_file *f = registry_upload_file_new(&cfg, e);
  cr_assert_not_null(f, "%s", e->msg);
  cr_assert_eq(registry_upload_file_write(f, p, n, e), 0);
  struct registry_upload_meta m = {.name = name, .expected_sha256 = expect, .user_id = "tester"};
  json_t *out = NULL;
  *rc = registry_upload_register(&cfg, P1, &m, f, &out, e);
  registry_upload_file_free(f);
  return out;
}

Test(registry_upload_store, ready_version_holds_one_reference) {
  struct err e;
  int rc;
  json_t *a = push("m", BENIGN, sizeof BENIGN - 1, NULL, &rc, &e);
  cr_assert_eq(rc, 0, "%s", e.msg);
  cr_assert_str_eq(json_string_value(json_object_get(a, "status")), "READY");
  cr_assert_str_eq(json_string_value(json_object_get(a, "format")), "pickle");
  char sha[65];
  str_copy(sha, sizeof sha, json_string_value(json_object_get(a, "sha256")));
  cr_assert_eq(refcount(sha), 1);
  json_t *b = push("m", BENIGN, sizeof BENIGN - 1, sha, &rc, &e);
  cr_assert_eq(rc, 0);
  cr_assert_str_eq(json_string_value(json_object_get(b, "version")), "2");
  cr_assert_eq(refcount(sha), 2);
  cr_assert_eq(registry_version_delete(db, P1, "m", "1", &e), 0);
  cr_assert_eq(refcount(sha), 1);
  cr_assert_eq(registry_model_delete(db, P1, "m", &e), 0);
  cr_assert_eq(refcount(sha), 0);
  json_decref(a);
  json_decref(b);
}

Test(registry_upload_store, refusals_store_nothing) {
  struct err e;
  int rc;
  json_t *o = push("m", BENIGN, sizeof BENIGN - 1, "00000000000000000000000000000000000000000000000000000000000000aa", &rc, &e);
  cr_assert_eq(rc, -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_null(o);
  cr_assert(strstr(e.msg, "checksum mismatch"));
  cr_assert_null(registry_model_get(db, P1, "m", &e)); /* nothing was made */
  o = push("m", EVIL, sizeof EVIL - 1, NULL, &rc, &e);
  cr_assert_eq(rc, -ERR_UNSAFE_MODEL);
  cr_assert(strstr(e.msg, "posix.system") || strstr(e.msg, "os.system"), "%s", e.msg);
  cr_assert_str_eq(json_string_value(json_object_get(o, "status")), "FAILED_REGISTRATION");
  cr_assert(json_is_false(json_object_get(o, "stored")));
  char sha[65];
  sha256_hex(EVIL, sizeof EVIL - 1, sha);
  cr_assert_eq(refcount(sha), -1); /* never put */
  char sha_out[65];
  uint64_t size;
  cr_assert_eq(registry_upload_blob(db, P1, "m", "1", sha_out, &size, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  json_decref(o);
  /* the project switch lets it through, flagged */
  json_t *s = registry_settings_set(db, P1, true, "tester", &e);
  cr_assert_not_null(s, "%s", e.msg);
  json_decref(s);
  o = push("m", EVIL, sizeof EVIL - 1, NULL, &rc, &e);
  cr_assert_eq(rc, 0, "%s", e.msg);
  cr_assert(json_is_true(json_object_get(o, "unsafe")));
  cr_assert_eq(refcount(sha), 1);
  json_decref(o);
  /* too large, and empty */
  o = push("m", "", 0, NULL, &rc, &e);
  cr_assert_eq(rc, -ERR_INVALID_PARAMETER_VALUE);
  struct registry_upload_file *f = registry_upload_file_new(&cfg, &e);
  static char big[(1 << 20) + 1];
  cr_assert_eq(registry_upload_file_write(f, big, sizeof big, &e), -ERR_PAYLOAD_TOO_LARGE);
  registry_upload_file_free(f);
}

Test(registry_upload_store, sessions_append_in_order_and_expire) {
  struct err e;
  struct registry_upload_meta m = {.name = "s", .user_id = "u1"};
  size_t n = sizeof BENIGN - 1;
  json_t *s = registry_upload_session_create(&cfg, P1, &m, n, &e);
  cr_assert_not_null(s, "%s", e.msg);
  char id[40];
  str_copy(id, sizeof id, json_string_value(json_object_get(s, "upload_id")));
  json_decref(s);
  /* another user, another project: not found */
  cr_assert_null(registry_upload_session_get(&cfg, P1, "u2", id, &e));
  cr_assert_eq(e.code, ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_null(registry_upload_chunk_begin(&cfg, "bbbb", "u1", id, 0, 1, &e));
  /* a chunk that breaks off is cut back */
  struct registry_upload_chunk *ch = registry_upload_chunk_begin(&cfg, P1, "u1", id, 0, 4, &e);
  cr_assert_not_null(ch, "%s", e.msg);
  cr_assert_null(registry_upload_chunk_begin(&cfg, P1, "u1", id, 0, 4, &e)); /* one writer */
  cr_assert_eq(e.code, ERR_CONFLICT);
  cr_assert_eq(registry_upload_chunk_write(ch, BENIGN, 2, &e), 0);
  registry_upload_chunk_abort(ch);
  char part[200];
  snprintf(part, sizeof part, "%s/%s.part", updir, id);
  struct stat st;
  cr_assert_eq(stat(part, &st), 0);
  cr_assert_eq(st.st_size, 0);
  ch = registry_upload_chunk_begin(&cfg, P1, "u1", id, 0, 4, &e);
  cr_assert_eq(registry_upload_chunk_write(ch, BENIGN, 4, &e), 0);
  s = registry_upload_chunk_end(ch, &e);
  cr_assert_eq(json_integer_value(json_object_get(s, "received")), 4);
  json_decref(s);
  cr_assert_null(registry_upload_chunk_begin(&cfg, P1, "u1", id, 2, 2, &e)); /* overlap */
  cr_assert_eq(e.code, ERR_CONFLICT);
  cr_assert_null(registry_upload_chunk_begin(&cfg, P1, "u1", id, 4, n, &e)); /* past the size */
  ch = registry_upload_chunk_begin(&cfg, P1, "u1", id, 4, n - 4, &e);
  cr_assert_eq(registry_upload_chunk_write(ch, BENIGN + 4, n - 4, &e), 0);
  json_decref(registry_upload_chunk_end(ch, &e));
  json_t *out = NULL;
  cr_assert_eq(registry_upload_session_complete(&cfg, P1, "u1", "user one", id, &out, &e), 0, "%s", e.msg);
  cr_assert_str_eq(json_string_value(json_object_get(out, "status")), "READY");
  json_decref(out);
  cr_assert_neq(stat(part, &st), 0); /* the session's file is gone */
  /* expiry */
  cfg.session_ttl_s = 1;
  s = registry_upload_session_create(&cfg, P1, &m, 10, &e);
  str_copy(id, sizeof id, json_string_value(json_object_get(s, "upload_id")));
  json_decref(s);
  snprintf(part, sizeof part, "%s/%s.part", updir, id);
  cr_assert_eq(stat(part, &st), 0);
  struct timespec ts = {1, 100000000};
  nanosleep(&ts, NULL);
  int removed = 0;
  cr_assert_eq(registry_upload_expire(&cfg, &removed, &e), 0);
  cr_assert_eq(removed, 1);
  cr_assert_neq(stat(part, &st), 0);
}
