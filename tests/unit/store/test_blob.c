/* tests for store/blob: round trips through every codec, dedup, integrity
 * failures (flipped bytes, truncation, wrong key), refcounts, GC and the
 * GC-versus-put race, all against a real SQLite store in a temp dir. */
#include "store/store.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static char g_dir[128];
static char g_blobs[192];
static struct db *g_db;
static struct blob_store *g_bs;

static struct blob_store *open_store(const char *key, bool compress) {
  struct blob_opts o = {.master_key_hex = key, .zstd_level = 3, .compress = compress};
  struct blob_store *bs = NULL;
  struct err e;
  err_clear(&e);
  int rc = blob_open(&bs, g_blobs, g_db, &o, &e);
  cr_assert_eq(rc, 0, "blob_open: %s", e.msg);
  return bs;
}

static void setup(void) {
  cr_assert_eq(base_init(), 0);
  log_set_quiet(true);
  str_copy(g_dir, sizeof g_dir, "/tmp/kiln-test-blob-XXXXXX");
  cr_assert_not_null(mkdtemp(g_dir));
  snprintf(g_blobs, sizeof g_blobs, "file:%s/blobs", g_dir);
  char url[192];
  snprintf(url, sizeof url, "sqlite:%s/meta.db", g_dir);
  struct err e;
  err_clear(&e);
  cr_assert_eq(db_open(&g_db, url, NULL, &e), 0, "db_open: %s", e.msg);
  cr_assert_geq(db_migrate(g_db, &e), 0, "db_migrate: %s", e.msg);
  g_bs = open_store(NULL, true);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f) {
  (void)st, (void)flag, (void)f;
  return remove(p);
}

static void teardown(void) {
  blob_close(g_bs);
  g_bs = NULL;
  db_close(g_db);
  g_db = NULL;
  nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* No per-test .timeout: Criterion 2.4.1's runner leaks its timeout record
 * when timed tests overlap under --jobs, which fails the ASan run. */
TestSuite(blob, .init = setup, .fini = teardown);

/* ---- helpers ------------------------------------------------------------------- */

static void put_ok(struct blob_store *bs, const void *p, size_t n, char sha[65]) {
  struct err e;
  err_clear(&e);
  int rc = blob_put_mem(bs, p, n, sha, &e);
  cr_assert_eq(rc, 0, "blob_put_mem: %s", e.msg);
  char want[65];
  sha256_hex(p, n, want);
  cr_assert_str_eq(sha, want);
}

/* Reads a whole blob in chunks of `chunk`; out gets every byte handed out
 * (even before a failure). Returns 0 or the negative error. */
static int read_all(struct blob_store *bs, const char *sha, size_t chunk, struct buf *out,
                    struct err *e) {
  err_clear(e);
  buf_reset(out);
  struct blob_reader *r = blob_get_open(bs, sha, e);
  if (!r) {
    cr_assert_neq(e->code, ERR_OK, "blob_get_open failed without an error");
    return -(int)e->code;
  }
  uint8_t *tmp = malloc(chunk);
  cr_assert_not_null(tmp);
  ssize_t n;
  while ((n = blob_get_read(r, tmp, chunk, e)) > 0) buf_append(out, tmp, (size_t)n);
  if (n == 0) {
    /* The verified end stays the end. */
    cr_assert_eq(blob_get_read(r, tmp, chunk, e), 0);
  } else {
    /* And a failure stays a failure. */
    struct err e2;
    err_clear(&e2);
    cr_assert_eq(blob_get_read(r, tmp, chunk, &e2), n);
    cr_assert_eq(e2.code, e->code);
  }
  free(tmp);
  blob_get_close(r);
  return (int)n;
}

static void expect_roundtrip(struct blob_store *bs, const char *sha, const void *p, size_t n) {
  struct buf b;
  buf_init(&b);
  struct err e;
  size_t chunks[] = {1 + (n % 7), 4096, 100000};
  for (size_t i = 0; i < 3; i++) {
    if (chunks[i] == 1 + (n % 7) && n > 300000) continue; /* byte-wise reads of big blobs: slow */
    int rc = read_all(bs, sha, chunks[i], &b, &e);
    cr_assert_eq(rc, 0, "read %s: %s", sha, e.msg);
    cr_assert_eq(b.len, n);
    cr_assert(n == 0 || memcmp(b.data, p, n) == 0, "content differs");
  }
  buf_fini(&b);
}

static struct blob_info stat_ok(struct blob_store *bs, const char *sha) {
  struct blob_info bi;
  struct err e;
  err_clear(&e);
  cr_assert_eq(blob_stat(bs, sha, &bi, &e), 0, "blob_stat: %s", e.msg);
  return bi;
}

static void obj_path(const char *sha, char *out, size_t cap) {
  snprintf(out, cap, "%s/blobs/%.2s/%.2s/%s", g_dir, sha, sha + 2, sha);
}

static off_t file_size(const char *path) {
  struct stat st;
  cr_assert_eq(stat(path, &st), 0, "stat %s", path);
  return st.st_size;
}

static int count_files(const char *dir, bool skip_tmp) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.') continue;
    if (skip_tmp && strcmp(de->d_name, "tmp") == 0) continue;
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
    struct stat st;
    if (lstat(p, &st) != 0) continue;
    if (S_ISDIR(st.st_mode))
      n += count_files(p, false);
    else
      n++;
  }
  closedir(d);
  return n;
}

static int object_count(void) {
  char p[256];
  snprintf(p, sizeof p, "%s/blobs", g_dir);
  return count_files(p, true);
}

static int tmp_count(void) {
  char p[256];
  snprintf(p, sizeof p, "%s/blobs/tmp", g_dir);
  return count_files(p, false);
}

static int64_t row_count(void) {
  struct err e;
  struct db_conn *c = db_reader_acquire(g_db, &e);
  cr_assert_not_null(c);
  struct db_stmt *s = db_prepare(c, "SELECT COUNT(*) FROM blobs", &e);
  cr_assert_not_null(s);
  cr_assert_eq(db_step(s, &e), DB_ROW);
  int64_t n = db_col_i64(s, 0);
  db_stmt_done(s);
  db_reader_release(g_db, c);
  return n;
}

static void flip_byte(const char *path, off_t off) {
  int fd = open(path, O_RDWR);
  cr_assert_geq(fd, 0);
  uint8_t b;
  cr_assert_eq(pread(fd, &b, 1, off), 1);
  b ^= 0x40;
  cr_assert_eq(pwrite(fd, &b, 1, off), 1);
  close(fd);
}

static void *make_text(size_t n) {
  char *p = malloc(n + 64);
  cr_assert_not_null(p);
  size_t len = 0;
  for (int i = 0; len < n; i++) {
    int k = snprintf(p + len, 64, "line %d: the quick brown fox jumps over the lazy dog\n", i);
    len += (size_t)k;
  }
  return p;
}

static void *make_random(size_t n) {
  void *p = malloc(n ? n : 1);
  cr_assert_not_null(p);
  randombytes_buf(p, n);
  return p;
}

struct sha_arg {
  const char *sha;
  int64_t delta;
};

static int job_ref(struct db_conn *c, void *arg, struct err *e) { return blob_ref(c, arg, e); }
static int job_unref(struct db_conn *c, void *arg, struct err *e) { return blob_unref(c, arg, e); }
static int job_age(struct db_conn *c, void *arg, struct err *e) {
  struct sha_arg *a = arg;
  struct db_stmt *s =
      db_prepare(c, "UPDATE blobs SET last_put_at = last_put_at - ? WHERE sha256 = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, a->delta);
  db_bind_text(s, 2, a->sha);
  return db_step(s, e) < 0 ? -ERR_INTERNAL : 0;
}

static int ref(const char *sha, struct err *e) {
  err_clear(e);
  return db_write(g_db, job_ref, (void *)sha, e);
}

static void age(const char *sha, int64_t ms) {
  struct sha_arg a = {sha, ms};
  struct err e;
  cr_assert_eq(db_write(g_db, job_age, &a, &e), 0);
}

/* ---- round trips ------------------------------------------------------------- */

Test(blob, small_roundtrip) {
  char sha[65];
  put_ok(g_bs, "hello world", 11, sha);
  expect_roundtrip(g_bs, sha, "hello world", 11);
  struct blob_info bi = stat_ok(g_bs, sha);
  cr_assert_eq(bi.size, 11);
  cr_assert_str_eq(bi.codec, "raw"); /* 11 bytes do not compress */
  cr_assert_not(bi.encrypted);
  cr_assert_eq(bi.refcount, 0);
  char p[256];
  obj_path(sha, p, sizeof p);
  cr_assert_eq((uint64_t)file_size(p), bi.stored_size);
  cr_assert_eq(tmp_count(), 0);
}

Test(blob, empty_roundtrip) {
  char sha[65];
  put_ok(g_bs, "", 0, sha);
  cr_assert_str_eq(sha, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  expect_roundtrip(g_bs, sha, "", 0);
  struct blob_info bi = stat_ok(g_bs, sha);
  cr_assert_eq(bi.size, 0);
  cr_assert_str_eq(bi.codec, "raw");
  cr_assert_eq(bi.stored_size, 16);
}

Test(blob, header_format_is_stable) {
  char sha[65], p[256];
  put_ok(g_bs, "hello", 5, sha);
  obj_path(sha, p, sizeof p);
  FILE *f = fopen(p, "rb");
  cr_assert_not_null(f);
  uint8_t b[64];
  size_t n = fread(b, 1, sizeof b, f);
  fclose(f);
  cr_assert_eq(n, 21);
  cr_assert_eq(memcmp(b, "KLNB", 4), 0);
  cr_assert_eq(b[4], 1); /* format version */
  cr_assert_eq(b[5], 0); /* flags: raw, plaintext */
  cr_assert_eq(b[8], 5); /* size, little-endian */
  for (int i = 9; i < 16; i++) cr_assert_eq(b[i], 0);
  cr_assert_eq(memcmp(b + 16, "hello", 5), 0);
}

Test(blob, random_multi_mib_is_stored_raw) {
  size_t n = 5 * 1024 * 1024 + 12345;
  uint8_t *data = make_random(n);
  struct err e;
  err_clear(&e);
  struct blob_writer *w = blob_put_begin(g_bs, &e);
  cr_assert_not_null(w, "%s", e.msg);
  /* Odd write sizes cross every internal buffer boundary. */
  for (size_t off = 0; off < n;) {
    size_t k = n - off < 7777 ? n - off : 7777;
    cr_assert_eq(blob_put_write(w, data + off, k, &e), 0, "%s", e.msg);
    off += k;
  }
  char sha[65];
  cr_assert_eq(blob_put_commit(w, NULL, sha, &e), 0, "%s", e.msg);
  char want[65];
  sha256_hex(data, n, want);
  cr_assert_str_eq(sha, want);
  struct blob_info bi = stat_ok(g_bs, sha);
  cr_assert_str_eq(bi.codec, "raw");
  cr_assert_eq(bi.size, n);
  cr_assert_eq(bi.stored_size, n + 16);
  expect_roundtrip(g_bs, sha, data, n);
  cr_assert_eq(tmp_count(), 0);
  free(data);
}

Test(blob, compressible_text_uses_zstd) {
  size_t n = 3 * 1024 * 1024;
  char *text = make_text(n);
  char sha[65];
  put_ok(g_bs, text, n, sha);
  struct blob_info bi = stat_ok(g_bs, sha);
  cr_assert_str_eq(bi.codec, "zstd");
  cr_assert_eq(bi.size, n);
  cr_assert_lt(bi.stored_size, n / 4, "stored %llu of %zu", (unsigned long long)bi.stored_size, n);
  char p[256];
  obj_path(sha, p, sizeof p);
  cr_assert_eq((uint64_t)file_size(p), bi.stored_size);
  expect_roundtrip(g_bs, sha, text, n);
  free(text);
}

Test(blob, compression_boundaries) {
  /* Exactly one probe (decided at commit), one byte over (decided on write),
   * and a blob written a byte at a time. */
  size_t sizes[] = {64 * 1024, 64 * 1024 + 1, 200 * 1024};
  for (size_t i = 0; i < 3; i++) {
    char *text = make_text(sizes[i]);
    char sha[65];
    put_ok(g_bs, text, sizes[i], sha);
    cr_assert_str_eq(stat_ok(g_bs, sha).codec, "zstd");
    expect_roundtrip(g_bs, sha, text, sizes[i]);
    free(text);
  }
  char *text = make_text(3000);
  struct err e;
  struct blob_writer *w = blob_put_begin(g_bs, &e);
  for (size_t i = 0; i < 3000; i++) cr_assert_eq(blob_put_write(w, text + i, 1, &e), 0);
  char sha[65];
  cr_assert_eq(blob_put_commit(w, NULL, sha, &e), 0, "%s", e.msg);
  cr_assert_str_eq(stat_ok(g_bs, sha).codec, "zstd");
  expect_roundtrip(g_bs, sha, text, 3000);
  free(text);
}

Test(blob, codec_is_decided_from_the_first_chunk) {
  /* Random first 64 KiB, compressible rest: the probe says raw. */
  size_t n = 512 * 1024;
  char *data = make_text(n);
  randombytes_buf(data, 64 * 1024);
  char sha[65];
  put_ok(g_bs, data, n, sha);
  cr_assert_str_eq(stat_ok(g_bs, sha).codec, "raw");
  expect_roundtrip(g_bs, sha, data, n);
  free(data);
}

Test(blob, compression_can_be_turned_off) {
  struct blob_store *bs = open_store(NULL, false);
  char *text = make_text(100000);
  char sha[65];
  put_ok(bs, text, 100000, sha);
  cr_assert_str_eq(stat_ok(bs, sha).codec, "raw");
  expect_roundtrip(bs, sha, text, 100000);
  free(text);
  blob_close(bs);
}

/* ---- dedup, expected hash, abort --------------------------------------------------- */

Test(blob, identical_content_is_stored_once) {
  char *text = make_text(100000);
  char a[65], b[65];
  put_ok(g_bs, text, 100000, a);
  put_ok(g_bs, text, 100000, b);
  cr_assert_str_eq(a, b);
  cr_assert_eq(row_count(), 1);
  cr_assert_eq(object_count(), 1);
  cr_assert_eq(tmp_count(), 0);
  put_ok(g_bs, "other", 5, b);
  cr_assert_eq(row_count(), 2);
  cr_assert_eq(object_count(), 2);
  free(text);
}

Test(blob, expected_sha_mismatch_stores_nothing) {
  char other[65];
  sha256_hex("something else", 14, other);
  struct err e;
  err_clear(&e);
  struct blob_writer *w = blob_put_begin(g_bs, &e);
  cr_assert_not_null(w);
  cr_assert_eq(blob_put_write(w, "payload", 7, &e), 0);
  char sha[65] = "";
  int rc = blob_put_commit(w, other, sha, &e);
  cr_assert_eq(rc, -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  char actual[65];
  sha256_hex("payload", 7, actual);
  char msg[256];
  snprintf(msg, sizeof msg, "content SHA-256 is %s, expected %s", actual, other);
  cr_assert_str_eq(e.msg, msg);
  cr_assert_eq(row_count(), 0);
  cr_assert_eq(object_count(), 0);
  cr_assert_eq(tmp_count(), 0);

  /* A matching digest, in upper case as some clients send it, is fine. */
  char upper[65];
  for (int i = 0; i < 65; i++)
    upper[i] = (char)((actual[i] >= 'a' && actual[i] <= 'f') ? actual[i] - 32 : actual[i]);
  w = blob_put_begin(g_bs, &e);
  cr_assert_eq(blob_put_write(w, "payload", 7, &e), 0);
  cr_assert_eq(blob_put_commit(w, upper, sha, &e), 0, "%s", e.msg);
  cr_assert_str_eq(sha, actual);

  w = blob_put_begin(g_bs, &e);
  cr_assert_eq(blob_put_commit(w, "not-a-digest", sha, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(tmp_count(), 0);
}

Test(blob, abort_leaves_nothing) {
  struct err e;
  struct blob_writer *w = blob_put_begin(g_bs, &e);
  char *text = make_text(300000);
  cr_assert_eq(blob_put_write(w, text, 300000, &e), 0);
  cr_assert_eq(tmp_count(), 1);
  blob_put_abort(w);
  cr_assert_eq(tmp_count(), 0);
  cr_assert_eq(object_count(), 0);
  cr_assert_eq(row_count(), 0);
  free(text);
}

/* ---- encryption ------------------------------------------------------------------ */

Test(blob, encrypted_roundtrip) {
  struct blob_store *bs = open_store(KEY_A, true);
  /* Empty, tiny, exactly two messages (the final one full), odd-sized random,
   * compressible. */
  size_t sizes[] = {0, 5, 128 * 1024, 1000003};
  for (size_t i = 0; i < 4; i++) {
    uint8_t *data = make_random(sizes[i]);
    char sha[65];
    put_ok(bs, data, sizes[i], sha);
    struct blob_info bi = stat_ok(bs, sha);
    cr_assert(bi.encrypted);
    cr_assert_str_eq(bi.codec, "raw");
    expect_roundtrip(bs, sha, data, sizes[i]);
    free(data);
  }
  char *text = make_text(1000000);
  char sha[65];
  put_ok(bs, text, 1000000, sha);
  struct blob_info bi = stat_ok(bs, sha);
  cr_assert(bi.encrypted);
  cr_assert_str_eq(bi.codec, "zstd");
  cr_assert_lt(bi.stored_size, 1000000 / 4);
  expect_roundtrip(bs, sha, text, 1000000);
  free(text);
  cr_assert_eq(tmp_count(), 0);
  blob_close(bs);
}

Test(blob, encrypted_bytes_do_not_contain_plaintext) {
  struct blob_store *bs = open_store(KEY_A, true);
  uint8_t *data = make_random(200000);
  memcpy(data + 1000, "KILN-SECRET-MARKER-0123456789", 29);
  char sha[65], p[256];
  put_ok(bs, data, 200000, sha);
  obj_path(sha, p, sizeof p);
  FILE *f = fopen(p, "rb");
  cr_assert_not_null(f);
  uint8_t *disk = malloc(300000);
  size_t n = fread(disk, 1, 300000, f);
  fclose(f);
  cr_assert_eq(n, 16 + 24 + 200000 + 4 * 17); /* 3 full messages + 1 short */
  cr_assert_eq(disk[5], 2);                   /* flags: encrypted, raw */
  cr_assert_null(memmem(disk, n, "KILN-SECRET-MARKER", 18));
  free(disk);
  free(data);
  blob_close(bs);
}

Test(blob, wrong_key_is_data_corrupted) {
  struct blob_store *a = open_store(KEY_A, true);
  struct blob_store *b = open_store(KEY_B, true);
  char sha[65];
  put_ok(a, "top secret", 10, sha);
  struct buf out;
  buf_init(&out);
  struct err e;
  int rc = read_all(b, sha, 4096, &out, &e);
  cr_assert_eq(rc, -ERR_DATA_CORRUPTED);
  char msg[256];
  snprintf(msg, sizeof msg, "blob %s failed authentication: wrong key or tampered data", sha);
  cr_assert_str_eq(e.msg, msg);
  cr_assert_eq(out.len, 0);
  buf_fini(&out);
  blob_close(a);
  blob_close(b);
}

Test(blob, encrypted_blob_without_key_is_a_clear_error) {
  struct blob_store *a = open_store(KEY_A, true);
  char sha[65];
  put_ok(a, "top secret", 10, sha);
  struct err e;
  err_clear(&e);
  cr_assert_null(blob_get_open(g_bs, sha, &e));
  cr_assert_neq(e.code, ERR_OK);
  cr_assert(strstr(e.msg, "encrypted") && strstr(e.msg, "no master key"), "%s", e.msg);
  blob_close(a);
}

Test(blob, key_store_reads_plaintext_blobs) {
  char sha[65];
  put_ok(g_bs, "written before the key", 22, sha);
  struct blob_store *a = open_store(KEY_A, true);
  expect_roundtrip(a, sha, "written before the key", 22);
  blob_close(a);
}

Test(blob, storing_again_with_a_key_encrypts_the_plaintext_copy) {
  char sha[65], sha2[65];
  put_ok(g_bs, "written before the key", 22, sha);
  struct blob_info info;
  struct err e;
  cr_assert_eq(blob_stat(g_bs, sha, &info, &e), 0, "%s", e.msg);
  cr_assert_not(info.encrypted);
  struct blob_store *a = open_store(KEY_A, true);
  put_ok(a, "written before the key", 22, sha2);
  cr_assert_str_eq(sha, sha2);
  cr_assert_eq(blob_stat(a, sha, &info, &e), 0, "%s", e.msg);
  cr_assert(info.encrypted, "a keyed store must not dedup against a plaintext copy");
  expect_roundtrip(a, sha, "written before the key", 22);
  /* and the reverse never downgrades: a keyless put keeps the encrypted copy */
  put_ok(g_bs, "written before the key", 22, sha2);
  cr_assert_eq(blob_stat(a, sha, &info, &e), 0);
  cr_assert(info.encrypted);
  blob_close(a);
}

Test(blob, bad_master_key_is_refused) {
  const char *bad[] = {"abcd", KEY_A "00",
                       "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"};
  for (int i = 0; i < 3; i++) {
    struct blob_opts o = {.master_key_hex = bad[i], .compress = true};
    struct blob_store *bs = NULL;
    struct err e;
    cr_assert_eq(blob_open(&bs, g_blobs, g_db, &o, &e), -ERR_INVALID_PARAMETER_VALUE);
    cr_assert_null(bs);
    cr_assert_null(strstr(e.msg, bad[i]), "the key must not be echoed");
  }
  struct blob_opts o = {.zstd_level = 99, .compress = true};
  struct blob_store *bs = NULL;
  struct err e;
  cr_assert_eq(blob_open(&bs, g_blobs, g_db, &o, &e), -ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(blob_open(&bs, "s3://bucket/x", g_db, NULL, &e), -ERR_INVALID_PARAMETER_VALUE);
}

/* ---- corruption --------------------------------------------------------------- */

enum mode { M_RAW, M_ZSTD, M_ENC, M_ENC_ZSTD };

/* Puts a blob of ~300 KB in the given mode; returns its data (caller frees). */
static void *put_mode(enum mode m, struct blob_store **bs_out, char sha[65], size_t *n_out) {
  bool enc = m == M_ENC || m == M_ENC_ZSTD;
  bool text = m == M_ZSTD || m == M_ENC_ZSTD;
  size_t n = 300000;
  void *data = text ? make_text(n) : make_random(n);
  struct blob_store *bs = open_store(enc ? KEY_A : NULL, true);
  put_ok(bs, data, n, sha);
  struct blob_info bi = stat_ok(bs, sha);
  cr_assert_str_eq(bi.codec, text ? "zstd" : "raw");
  cr_assert_eq(bi.encrypted, enc);
  *bs_out = bs;
  *n_out = n;
  return data;
}

static void expect_corrupted(struct blob_store *bs, const char *sha, const void *data, size_t n,
                             bool authenticated) {
  struct buf out;
  buf_init(&out);
  struct err e;
  int rc = read_all(bs, sha, 8192, &out, &e);
  cr_assert_eq(rc, -ERR_DATA_CORRUPTED, "rc %d: %s", rc, e.msg);
  cr_assert_eq(e.code, ERR_DATA_CORRUPTED);
  cr_assert(strstr(e.msg, sha), "message names the blob: %s", e.msg);
  if (authenticated) {
    /* Encrypted blobs never hand out a byte that was not authenticated. */
    cr_assert_leq(out.len, n);
    cr_assert(out.len == 0 || memcmp(out.data, data, out.len) == 0, "bad bytes were returned");
  }
  buf_fini(&out);
}

Test(blob, flipped_byte_is_detected_in_every_mode) {
  for (int m = M_RAW; m <= M_ENC_ZSTD; m++) {
    /* Header, early payload, middle and last byte. */
    for (int where = 0; where < 4; where++) {
      struct blob_store *bs;
      char sha[65], p[256];
      size_t n;
      void *data = put_mode((enum mode)m, &bs, sha, &n);
      obj_path(sha, p, sizeof p);
      off_t size = file_size(p);
      off_t offs[] = {5, 60, size / 2, size - 1};
      flip_byte(p, offs[where]);
      expect_corrupted(bs, sha, data, n, m >= M_ENC);
      free(data);
      blob_close(bs);
      unlink(p);
    }
  }
}

Test(blob, raw_flip_reports_at_the_end_without_holding_back) {
  size_t n = 200000;
  uint8_t *data = make_random(n);
  char sha[65], p[256];
  put_ok(g_bs, data, n, sha);
  obj_path(sha, p, sizeof p);
  flip_byte(p, 16 + 100);
  struct buf out;
  buf_init(&out);
  struct err e;
  cr_assert_eq(read_all(g_bs, sha, 8192, &out, &e), -ERR_DATA_CORRUPTED);
  char msg[256];
  snprintf(msg, sizeof msg, "blob %s is corrupted: content hash mismatch", sha);
  cr_assert_str_eq(e.msg, msg);
  cr_assert_eq(out.len, n); /* every byte went out; the end is the error */
  buf_fini(&out);
  free(data);
}

Test(blob, truncation_is_detected_in_every_mode) {
  for (int m = M_RAW; m <= M_ENC_ZSTD; m++) {
    for (int where = 0; where < 4; where++) {
      struct blob_store *bs;
      char sha[65], p[256];
      size_t n;
      void *data = put_mode((enum mode)m, &bs, sha, &n);
      obj_path(sha, p, sizeof p);
      off_t size = file_size(p);
      /* Inside the header, one byte short, half, and for encrypted blobs
       * exactly after the first message (a clean message boundary). */
      off_t lens[] = {10, size - 1, size / 2, m >= M_ENC ? 40 + 64 * 1024 + 17 : size - 17};
      cr_assert_eq(truncate(p, lens[where]), 0);
      expect_corrupted(bs, sha, data, n, m >= M_ENC);
      free(data);
      blob_close(bs);
      unlink(p);
    }
  }
}

Test(blob, appended_garbage_is_detected) {
  for (int m = M_RAW; m <= M_ENC_ZSTD; m++) {
    struct blob_store *bs;
    char sha[65], p[256];
    size_t n;
    void *data = put_mode((enum mode)m, &bs, sha, &n);
    obj_path(sha, p, sizeof p);
    FILE *f = fopen(p, "ab");
    fputs("garbage", f);
    fclose(f);
    expect_corrupted(bs, sha, data, n, m >= M_ENC);
    free(data);
    blob_close(bs);
    unlink(p);
  }
}

Test(blob, unknown_and_invalid_names) {
  struct err e;
  char sha[65];
  sha256_hex("never stored", 12, sha);
  cr_assert_null(blob_get_open(g_bs, sha, &e));
  cr_assert_eq(e.code, ERR_RESOURCE_DOES_NOT_EXIST);
  struct blob_info bi;
  cr_assert_eq(blob_stat(g_bs, sha, &bi, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_null(blob_get_open(g_bs, "../../etc/passwd", &e));
  cr_assert_eq(e.code, ERR_INVALID_PARAMETER_VALUE);
  cr_assert_eq(ref(sha, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(ref("nope", &e), -ERR_INVALID_PARAMETER_VALUE);
}

/* ---- repair ----------------------------------------------------------------- */

Test(blob, put_restores_a_missing_object) {
  char sha[65], p[256];
  put_ok(g_bs, "precious", 8, sha);
  obj_path(sha, p, sizeof p);
  cr_assert_eq(unlink(p), 0);
  put_ok(g_bs, "precious", 8, sha);
  expect_roundtrip(g_bs, sha, "precious", 8);
  cr_assert_eq(row_count(), 1);
}

/* ---- refcounts and GC ---------------------------------------------------------- */

Test(blob, refcounts_and_gc) {
  char kept[65], old[65], young[65], p[256];
  put_ok(g_bs, "referenced", 10, kept);
  put_ok(g_bs, "unreferenced and old", 20, old);
  put_ok(g_bs, "unreferenced and young", 22, young);
  struct err e;
  cr_assert_eq(ref(kept, &e), 0, "%s", e.msg);
  cr_assert_eq(ref(kept, &e), 0);
  cr_assert_eq(db_write(g_db, job_unref, kept, &e), 0);
  cr_assert_eq(stat_ok(g_bs, kept).refcount, 1);
  /* Unref never goes below zero. */
  cr_assert_eq(db_write(g_db, job_unref, young, &e), 0);
  cr_assert_eq(stat_ok(g_bs, young).refcount, 0);

  age(kept, 7200 * 1000);
  age(old, 7200 * 1000);
  int removed = -1;
  cr_assert_eq(blob_gc(g_bs, 3600, &removed, &e), 0, "%s", e.msg);
  cr_assert_eq(removed, 1);
  cr_assert_eq(row_count(), 2);
  cr_assert_eq(object_count(), 2);
  obj_path(old, p, sizeof p);
  cr_assert_neq(access(p, F_OK), 0);
  cr_assert_null(blob_get_open(g_bs, old, &e));
  cr_assert_eq(e.code, ERR_RESOURCE_DOES_NOT_EXIST);
  expect_roundtrip(g_bs, kept, "referenced", 10);
  expect_roundtrip(g_bs, young, "unreferenced and young", 22);

  /* Putting it again brings it back. */
  put_ok(g_bs, "unreferenced and old", 20, old);
  expect_roundtrip(g_bs, old, "unreferenced and old", 20);

  /* Once the last reference goes, age makes it collectable. */
  cr_assert_eq(db_write(g_db, job_unref, kept, &e), 0);
  cr_assert_eq(blob_gc(g_bs, 3600, &removed, &e), 0);
  cr_assert_eq(removed, 1);
  cr_assert_eq(blob_stat(g_bs, kept, &(struct blob_info){0}, &e), -ERR_RESOURCE_DOES_NOT_EXIST);
  cr_assert_eq(blob_gc(g_bs, -1, &removed, &e), -ERR_INVALID_PARAMETER_VALUE);
}

Test(blob, gc_collects_more_than_one_batch) {
  char sha[65];
  for (int i = 0; i < 600; i++) {
    char s[32];
    int n = snprintf(s, sizeof s, "blob number %d", i);
    put_ok(g_bs, s, (size_t)n, sha);
    age(sha, 10000);
  }
  int removed = 0;
  struct err e;
  cr_assert_eq(blob_gc(g_bs, 1, &removed, &e), 0, "%s", e.msg);
  cr_assert_eq(removed, 600);
  cr_assert_eq(row_count(), 0);
  cr_assert_eq(object_count(), 0);
}

/* Every content is put WINDOW times by each thread with the collector
 * spinning at grace 0, so most puts deduplicate against an object the GC is
 * about to take, or has just taken; the last put of each window references
 * it. A put that deduplicates outside the writer would let its ref succeed on
 * a row whose object the GC already removed. */
#define RACE_THREADS 4
#define RACE_WINDOW 5
#define RACE_CONTENTS 12
#define RACE_PUTS (RACE_WINDOW * RACE_CONTENTS)

static atomic_int g_refs[RACE_CONTENTS];
static atomic_int g_puts_left;
static atomic_int g_bad;
static atomic_int g_ref_misses;

static void race_content(int i, char *out, size_t cap) {
  snprintf(out, cap,
           "racing content number %d, repeated so that zstd has something to chew on, "
           "repeated so that zstd has something to chew on",
           i);
}

static void *race_putter(void *arg) {
  intptr_t t = (intptr_t)arg;
  for (int k = 0; k < RACE_PUTS; k++) {
    int i = k / RACE_WINDOW;
    char s[256], sha[65];
    race_content(i, s, sizeof s);
    struct err e;
    if (blob_put_mem(g_bs, s, strlen(s), sha, &e) != 0) {
      atomic_fetch_add(&g_bad, 1);
      continue;
    }
    if (k % RACE_WINDOW == RACE_WINDOW - 1) {
      int rc = ref(sha, &e);
      if (rc == 0)
        atomic_fetch_add(&g_refs[i], 1);
      else if (rc == -ERR_RESOURCE_DOES_NOT_EXIST)
        atomic_fetch_add(&g_ref_misses, 1);
      else
        atomic_fetch_add(&g_bad, 1);
    }
    /* Let the object age past the 1 ms granularity of last_put_at. */
    usleep(1000 + (unsigned)((t * 397 + k * 131) % 1500));
  }
  atomic_fetch_sub(&g_puts_left, 1);
  return NULL;
}

static void *race_collector(void *arg) {
  (void)arg;
  int total = 0;
  while (atomic_load(&g_puts_left) > 0) {
    int removed = 0;
    struct err e;
    if (blob_gc(g_bs, 0, &removed, &e) != 0) atomic_fetch_add(&g_bad, 1);
    total += removed;
    usleep(200);
  }
  return (void *)(intptr_t)total;
}

Test(blob, gc_racing_puts_never_loses_a_referenced_blob) {
  atomic_store(&g_puts_left, RACE_THREADS);
  pthread_t th[RACE_THREADS], gc;
  for (intptr_t t = 0; t < RACE_THREADS; t++) pthread_create(&th[t], NULL, race_putter, (void *)t);
  pthread_create(&gc, NULL, race_collector, NULL);
  for (int t = 0; t < RACE_THREADS; t++) pthread_join(th[t], NULL);
  void *collected;
  pthread_join(gc, &collected);
  cr_assert_eq(atomic_load(&g_bad), 0);
  int referenced = 0;
  for (int i = 0; i < RACE_CONTENTS; i++) {
    char s[256], sha[65];
    race_content(i, s, sizeof s);
    sha256_hex(s, strlen(s), sha);
    int refs = atomic_load(&g_refs[i]);
    if (refs == 0) continue;
    referenced++;
    expect_roundtrip(g_bs, sha, s, strlen(s));
    cr_assert_eq(stat_ok(g_bs, sha).refcount, refs);
  }
  cr_assert_gt(referenced, 0);
  cr_assert_eq(tmp_count(), 0);
  cr_log_info("race: GC collected %d blobs, %d contents referenced, %d refs lost to the GC",
              (int)(intptr_t)collected, referenced, atomic_load(&g_ref_misses));
}

/* The exact interleaving the writer serialises: a put of existing content
 * reaches its commit, a GC of that (old, unreferenced) content is queued
 * ahead of it, then both run. The put must leave a readable object. The
 * writer is held by a job that waits for the test, so the order is fixed. */
static pthread_mutex_t g_hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_hold_cv = PTHREAD_COND_INITIALIZER;
static bool g_hold_entered, g_hold_release;

static int job_hold(struct db_conn *c, void *arg, struct err *e) {
  (void)c, (void)arg, (void)e;
  pthread_mutex_lock(&g_hold_mu);
  g_hold_entered = true;
  pthread_cond_broadcast(&g_hold_cv);
  while (!g_hold_release) pthread_cond_wait(&g_hold_cv, &g_hold_mu);
  pthread_mutex_unlock(&g_hold_mu);
  return 0;
}

static void *hold_thread(void *arg) {
  (void)arg;
  struct err e;
  db_write(g_db, job_hold, NULL, &e);
  return NULL;
}

static void *gc_thread(void *arg) {
  int *removed = arg;
  struct err e;
  if (blob_gc(g_bs, 1, removed, &e) != 0) *removed = -1;
  return NULL;
}

static void *put_thread(void *arg) {
  char sha[65];
  struct err e;
  if (blob_put_mem(g_bs, "contested", 9, sha, &e) != 0) *(int *)arg = -1;
  return NULL;
}

Test(blob, gc_queued_between_a_put_and_its_commit) {
  char sha[65];
  put_ok(g_bs, "contested", 9, sha);
  age(sha, 10000);
  pthread_t hold, gc, put;
  pthread_create(&hold, NULL, hold_thread, NULL);
  pthread_mutex_lock(&g_hold_mu);
  while (!g_hold_entered) pthread_cond_wait(&g_hold_cv, &g_hold_mu);
  pthread_mutex_unlock(&g_hold_mu);
  int removed = 0, put_rc = 0;
  pthread_create(&gc, NULL, gc_thread, &removed);
  usleep(100 * 1000); /* the GC job is queued first */
  pthread_create(&put, NULL, put_thread, &put_rc);
  usleep(100 * 1000); /* the put has written its temp and queued its commit */
  pthread_mutex_lock(&g_hold_mu);
  g_hold_release = true;
  pthread_cond_broadcast(&g_hold_cv);
  pthread_mutex_unlock(&g_hold_mu);
  pthread_join(hold, NULL);
  pthread_join(gc, NULL);
  pthread_join(put, NULL);
  cr_assert_eq(put_rc, 0);
  /* The GC forgot the row first; the put re-created it before the GC's
   * second phase, which therefore keeps the object. */
  cr_assert_eq(removed, 0, "the object a put re-adopted must not be removed");
  struct err e;
  cr_assert_eq(ref(sha, &e), 0, "%s", e.msg);
  expect_roundtrip(g_bs, sha, "contested", 9);
  cr_assert_eq(tmp_count(), 0);
}

Test(blob, zstd_output_held_back_by_small_reads_is_flushed) {
  /* Zeros shrink to a few bytes, so zstd has consumed the whole payload
   * while most of the output is still waiting for room in the caller's
   * buffer. */
  size_t n = 1024 * 1024;
  uint8_t *zeros = calloc(1, n);
  char sha[65];
  put_ok(g_bs, zeros, n, sha);
  struct blob_info bi = stat_ok(g_bs, sha);
  cr_assert_str_eq(bi.codec, "zstd");
  cr_assert_lt(bi.stored_size, 1024);
  struct buf b;
  buf_init(&b);
  struct err e;
  size_t caps[] = {1, 3, 4096, 131072, 2 * 1024 * 1024};
  for (size_t i = 0; i < 5; i++) {
    cr_assert_eq(read_all(g_bs, sha, caps[i], &b, &e), 0, "cap %zu: %s", caps[i], e.msg);
    cr_assert_eq(b.len, n);
    cr_assert_eq(memcmp(b.data, zeros, n), 0);
  }
  buf_fini(&b);
  free(zeros);
}
