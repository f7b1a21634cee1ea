/* store/blob: the content-addressed blob store's codec layer — hashing, zstd,
 * encryption at rest, the on-disk header, integrity checks on read, and the
 * `blobs` bookkeeping (refcounts, GC) — over a raw object backend.
 *
 * On-disk format (version 1), one object per blob, named by the lowercase hex
 * SHA-256 of the plaintext:
 *
 *   offset  size  field
 *   0       4     magic "KLNB"
 *   4       1     format version (1)
 *   5       1     flags: bit 0 = payload is one zstd frame (content checksum
 *                 on), bit 1 = payload is encrypted; other bits must be 0
 *   6       2     reserved, 0
 *   8       8     plaintext size, u64 little-endian
 *   16      24    only when encrypted: crypto_secretstream_xchacha20poly1305
 *                 header
 *   16|40   ...   payload
 *
 * The payload is the plaintext, or its zstd frame when compressed. When
 * encrypted, the payload (after compression) is cut into messages of 64 KiB
 * (BLOB_CHUNK); each is stored as 64 KiB + 17 bytes of secretstream
 * ciphertext; the last message is shorter or equal, carries TAG_FINAL and may
 * be empty. Every message is authenticated with the first 8 header bytes as
 * additional data, so flipping the flags is caught as tampering. The size
 * field is written last (it is known only at the end) and checked against the
 * bytes actually decoded.
 *
 * Reads stream through the same stages in reverse and hash the plaintext as
 * it goes; the call that reaches the end compares size and hash with the name
 * and fails with ERR_DATA_CORRUPTED on any mismatch, so corruption is never
 * reported as a clean end of data. Encrypted blobs additionally never release
 * a byte that has not been authenticated.
 *
 * Bookkeeping: the rename of a finished temp object into place (or dropping
 * it when the object already exists) runs inside the same db_write job that
 * upserts the `blobs` row, and GC deletes rows and objects inside db_write
 * jobs too; both therefore run on the single writer thread, so a GC can never
 * remove an object that a concurrent put has just deduplicated against. */
#include "store.h"

#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define BLOB_MAGIC "KLNB"
#define BLOB_VERSION 1
#define BLOB_F_ZSTD 0x01u
#define BLOB_F_ENC 0x02u
#define BLOB_HEAD_FIXED 16
#define BLOB_AD_LEN 8 /* magic, version, flags, reserved: authenticated */
#define BLOB_SS_HEAD crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define BLOB_SS_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define BLOB_HEAD_MAX (BLOB_HEAD_FIXED + BLOB_SS_HEAD)
/* The unit of everything streamed: the compression probe, encryption
 * messages, read buffers. Big enough to amortise syscalls and AEAD overhead,
 * small enough that thousands of concurrent transfers stay cheap. */
#define BLOB_CHUNK (64 * 1024)
/* Compression must save at least this share of the probe to be used. */
#define BLOB_MIN_SAVING_PCT 10
/* GC deletes in batches so one sweep never holds the writer for long. */
#define BLOB_GC_BATCH 256

_Static_assert(BLOB_HEAD_MAX == 40, "header layout");

struct blob_store {
  const struct blob_backend *ops;
  void *be;
  struct db *db;
  bool encrypt;
  bool compress;
  int zstd_level;
  uint8_t key[crypto_secretstream_xchacha20poly1305_KEYBYTES];
};

struct blob_writer {
  struct blob_store *bs;
  void *tmp;
  struct sha256 hash;
  uint64_t size;   /* plaintext bytes seen */
  uint64_t stored; /* bytes handed to the backend */
  bool decided;    /* header written, codec chosen */
  bool zstd;
  bool frame_done;
  bool failed; /* a write failed; the upload can only be aborted */
  uint8_t head[BLOB_HEAD_MAX];
  size_t head_len;
  uint8_t *probe; /* the first BLOB_CHUNK plaintext bytes, before the codec is chosen */
  size_t probe_len;
  ZSTD_CCtx *cctx;
  uint8_t *zout;
  size_t zout_cap;
  crypto_secretstream_xchacha20poly1305_state ss;
  uint8_t *ebuf; /* payload waiting to be sealed as one message */
  size_t elen;
  uint8_t *cbuf; /* one sealed message */
};

struct blob_reader {
  struct blob_store *bs;
  void *rd;
  char sha[65];
  struct sha256 hash;
  uint64_t expect_size;
  uint64_t got;
  uint8_t flags;
  uint8_t ad[BLOB_AD_LEN];
  ZSTD_DCtx *dctx;
  bool frame_done;
  crypto_secretstream_xchacha20poly1305_state ss;
  uint8_t *cbuf;
  uint8_t *pay; /* payload (decrypted, still compressed if zstd) */
  size_t pay_pos, pay_len;
  bool pay_eof; /* no payload after pay[pay_len] */
  bool done;    /* verified end reached */
  int fail;     /* sticky error, 0 if none */
  struct err fail_err;
};

/* ---- helpers --------------------------------------------------------------- */

static void blob_put_u64le(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t blob_get_u64le(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* The code a callee left in e, for callees (db_prepare) that report failure
 * by returning NULL. */
static int blob_errc(const struct err *e) {
  return (e && e->code != ERR_OK) ? -(int)e->code : -ERR_INTERNAL;
}

static int blob_check_sha(const char *sha, struct err *e) {
  if (!sha256_hex_valid(sha))
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "invalid blob SHA-256");
  return 0;
}

/* ---- store ----------------------------------------------------------------- */

int blob_open(struct blob_store **out, const char *url, struct db *db, const struct blob_opts *o,
              struct err *e) {
  if (!out) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "blob_open: no output");
  *out = NULL;
  if (!url || !*url) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "blob store URL is empty");
  const char *dir = url;
  if (str_has_prefix(url, "file://")) {
    dir = url + 7;
  } else if (str_has_prefix(url, "file:")) {
    dir = url + 5;
  } else {
    const char *sep = strstr(url, "://");
    if (sep) {
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "blob store URL scheme not supported: %.*s",
                     (int)(sep - url) > 32 ? 32 : (int)(sep - url), url);
    }
  }
  if (sodium_init() < 0) return err_set(e, ERR_INTERNAL, "libsodium failed to initialise");

  struct blob_store *bs = calloc(1, sizeof *bs);
  if (!bs) return err_set(e, ERR_NO_MEMORY, NULL);
  bs->db = db;
  bs->compress = o ? o->compress : true;
  bs->zstd_level = (o && o->zstd_level) ? o->zstd_level : 3;
  if (bs->zstd_level < ZSTD_minCLevel() || bs->zstd_level > ZSTD_maxCLevel()) {
    int lvl = bs->zstd_level;
    free(bs);
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "zstd level %d is out of range (%d..%d)", lvl,
                   ZSTD_minCLevel(), ZSTD_maxCLevel());
  }
  if (o && o->master_key_hex && *o->master_key_hex) {
    /* Never echo the key: it may end up in logs. */
    if (strlen(o->master_key_hex) != 2 * sizeof bs->key ||
        hex_decode(bs->key, sizeof bs->key, o->master_key_hex) != (int)sizeof bs->key) {
      sodium_memzero(bs->key, sizeof bs->key);
      free(bs);
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "master key must be 64 hex characters (32 bytes)");
    }
    bs->encrypt = true;
  }
  bs->ops = &blob_backend_file;
  if (bs->ops->version != BLOB_BACKEND_VERSION) {
    const struct blob_backend *ops = bs->ops;
    sodium_memzero(bs->key, sizeof bs->key);
    free(bs);
    return err_set(e, ERR_INTERNAL, "blob backend %s has table version %d, expected %d", ops->name,
                   ops->version, BLOB_BACKEND_VERSION);
  }
  int rc = bs->ops->open(dir, &bs->be, e);
  if (rc) {
    sodium_memzero(bs->key, sizeof bs->key);
    free(bs);
    return rc;
  }
  *out = bs;
  return 0;
}

void blob_close(struct blob_store *bs) {
  if (!bs) return;
  bs->ops->close(bs->be);
  sodium_memzero(bs->key, sizeof bs->key);
  free(bs);
}

static int blob_need_db(const struct blob_store *bs, struct err *e) {
  if (!bs->db) return err_set(e, ERR_INTERNAL, "blob store was opened without a metadata database");
  return 0;
}

/* ---- put ------------------------------------------------------------------- */

static void blob_writer_free(struct blob_writer *w) {
  if (!w) return;
  if (w->tmp) w->bs->ops->tmp_abort(w->tmp);
  ZSTD_freeCCtx(w->cctx);
  free(w->probe);
  free(w->zout);
  if (w->ebuf) sodium_memzero(w->ebuf, BLOB_CHUNK);
  free(w->ebuf);
  free(w->cbuf);
  sodium_memzero(&w->ss, sizeof w->ss);
  free(w);
}

struct blob_writer *blob_put_begin(struct blob_store *bs, struct err *e) {
  if (!bs) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "blob_put_begin: no store");
    return NULL;
  }
  struct blob_writer *w = calloc(1, sizeof *w);
  if (!w) {
    err_set(e, ERR_NO_MEMORY, NULL);
    return NULL;
  }
  w->bs = bs;
  sha256_init(&w->hash);
  w->probe = malloc(BLOB_CHUNK);
  if (bs->encrypt) {
    w->ebuf = malloc(BLOB_CHUNK);
    w->cbuf = malloc(BLOB_CHUNK + BLOB_SS_ABYTES);
  }
  if (!w->probe || (bs->encrypt && (!w->ebuf || !w->cbuf))) {
    blob_writer_free(w);
    err_set(e, ERR_NO_MEMORY, NULL);
    return NULL;
  }
  w->head_len = BLOB_HEAD_FIXED;
  if (bs->encrypt) {
    crypto_secretstream_xchacha20poly1305_init_push(&w->ss, w->head + BLOB_HEAD_FIXED, bs->key);
    w->head_len += BLOB_SS_HEAD;
  }
  if (bs->ops->tmp_create(bs->be, &w->tmp, e)) {
    w->tmp = NULL;
    blob_writer_free(w);
    return NULL;
  }
  return w;
}

static int blob_w_out(struct blob_writer *w, const void *p, size_t n, struct err *e) {
  if (n == 0) return 0;
  int rc = w->bs->ops->tmp_write(w->tmp, p, n, e);
  if (rc == 0) w->stored += n;
  return rc;
}

static int blob_w_seal(struct blob_writer *w, unsigned char tag, struct err *e) {
  unsigned long long clen = 0;
  if (crypto_secretstream_xchacha20poly1305_push(&w->ss, w->cbuf, &clen, w->ebuf, w->elen, w->head,
                                                 BLOB_AD_LEN, tag) != 0)
    return err_set(e, ERR_INTERNAL, "blob encryption failed");
  w->elen = 0;
  return blob_w_out(w, w->cbuf, (size_t)clen, e);
}

/* Payload (after compression) goes out directly or through encryption. A
 * full message is sealed only once more payload arrives, so the last message
 * can always carry TAG_FINAL without an extra empty one. */
static int blob_w_emit(struct blob_writer *w, const uint8_t *p, size_t n, struct err *e) {
  if (!w->bs->encrypt) return blob_w_out(w, p, n, e);
  while (n > 0) {
    if (w->elen == BLOB_CHUNK) {
      int rc = blob_w_seal(w, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE, e);
      if (rc) return rc;
    }
    size_t take = BLOB_CHUNK - w->elen;
    if (take > n) take = n;
    memcpy(w->ebuf + w->elen, p, take);
    w->elen += take;
    p += take;
    n -= take;
  }
  return 0;
}

static int blob_w_zstd(struct blob_writer *w, const void *p, size_t n, ZSTD_EndDirective mode,
                       struct err *e) {
  ZSTD_inBuffer in = {p, n, 0};
  for (;;) {
    ZSTD_outBuffer out = {w->zout, w->zout_cap, 0};
    size_t r = ZSTD_compressStream2(w->cctx, &out, &in, mode);
    if (ZSTD_isError(r)) return err_set(e, ERR_INTERNAL, "zstd: %s", ZSTD_getErrorName(r));
    int rc = blob_w_emit(w, w->zout, out.pos, e);
    if (rc) return rc;
    if (mode == ZSTD_e_continue ? in.pos == in.size : r == 0) break;
  }
  if (mode == ZSTD_e_end) w->frame_done = true;
  return 0;
}

/* Chooses raw or zstd from the first chunk: the probe is compressed for real
 * (flushed, or the whole frame when the blob is that small) and its output is
 * kept when it saves enough, so deciding costs no second pass. */
static int blob_w_decide(struct blob_writer *w, bool end, struct err *e) {
  struct blob_store *bs = w->bs;
  size_t zlen = 0;
  bool use = false;
  if (bs->compress && w->probe_len > 0) {
    w->cctx = ZSTD_createCCtx();
    w->zout_cap = ZSTD_compressBound(BLOB_CHUNK) + ZSTD_CStreamOutSize();
    w->zout = malloc(w->zout_cap);
    if (!w->cctx || !w->zout) return err_set(e, ERR_NO_MEMORY, NULL);
    size_t r = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, bs->zstd_level);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
    if (!ZSTD_isError(r) && end) r = ZSTD_CCtx_setPledgedSrcSize(w->cctx, w->probe_len);
    if (ZSTD_isError(r)) return err_set(e, ERR_INTERNAL, "zstd: %s", ZSTD_getErrorName(r));
    ZSTD_inBuffer in = {w->probe, w->probe_len, 0};
    ZSTD_outBuffer out = {w->zout, w->zout_cap, 0};
    do {
      r = ZSTD_compressStream2(w->cctx, &out, &in, end ? ZSTD_e_end : ZSTD_e_flush);
    } while (!ZSTD_isError(r) && r != 0 && out.pos < out.size);
    if (ZSTD_isError(r)) return err_set(e, ERR_INTERNAL, "zstd: %s", ZSTD_getErrorName(r));
    size_t limit = w->probe_len - w->probe_len * BLOB_MIN_SAVING_PCT / 100;
    zlen = out.pos;
    use = r == 0 && zlen < limit;
    if (!use) {
      ZSTD_freeCCtx(w->cctx);
      w->cctx = NULL;
      free(w->zout);
      w->zout = NULL;
    }
  }
  w->zstd = use;
  w->frame_done = use && end;
  memcpy(w->head, BLOB_MAGIC, 4);
  w->head[4] = BLOB_VERSION;
  w->head[5] = (uint8_t)((use ? BLOB_F_ZSTD : 0) | (bs->encrypt ? BLOB_F_ENC : 0));
  w->head[6] = w->head[7] = 0;
  blob_put_u64le(w->head + 8, 0); /* the real size is sealed in at the end */
  w->decided = true;
  int rc = blob_w_out(w, w->head, w->head_len, e);
  if (rc == 0)
    rc = use ? blob_w_emit(w, w->zout, zlen, e) : blob_w_emit(w, w->probe, w->probe_len, e);
  free(w->probe);
  w->probe = NULL;
  return rc;
}

static int blob_w_failed(struct blob_writer *w, int rc) {
  w->failed = true;
  return rc;
}

int blob_put_write(struct blob_writer *w, const void *p, size_t n, struct err *e) {
  if (!w) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "blob_put_write: no writer");
  if (w->failed) return err_set(e, ERR_INTERNAL, "blob upload already failed");
  if (n == 0) return 0;
  if (!p) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "blob_put_write: no data");
  sha256_update(&w->hash, p, n);
  w->size += n;
  const uint8_t *s = p;
  if (!w->decided) {
    size_t take = BLOB_CHUNK - w->probe_len;
    if (take > n) take = n;
    memcpy(w->probe + w->probe_len, s, take);
    w->probe_len += take;
    s += take;
    n -= take;
    /* A full probe waits: if nothing more comes, commit can still write the
     * whole frame with its content size. */
    if (n == 0) return 0;
    int rc = blob_w_decide(w, false, e);
    if (rc) return blob_w_failed(w, rc);
  }
  int rc = w->zstd ? blob_w_zstd(w, s, n, ZSTD_e_continue, e) : blob_w_emit(w, s, n, e);
  return rc ? blob_w_failed(w, rc) : 0;
}

void blob_put_abort(struct blob_writer *w) { blob_writer_free(w); }

struct blob_put_job {
  struct blob_store *bs;
  void *tmp; /* NULL once the job consumed it */
  const char *sha;
  uint64_t size, stored;
  bool zstd, encrypted;
};

/* Runs on the writer thread. Written to be safe to run again should the
 * writer retry a job: the temp object is consumed at most once. */
static int blob_put_job_fn(struct db_conn *c, void *arg, struct err *e) {
  struct blob_put_job *j = arg;
  const struct blob_backend *ops = j->bs->ops;
  int64_t now = time_wall_ms();
  struct db_stmt *s = db_prepare(c, "SELECT encrypted FROM blobs WHERE sha256 = ?", e);
  if (!s) return blob_errc(e);
  db_bind_text(s, 1, j->sha);
  int rc = db_step(s, e);
  if (rc < 0) return rc;
  bool row = rc == DB_ROW;
  bool row_encrypted = row && db_col_i64(s, 0) != 0;
  db_stmt_done(s);
  int have = ops->exists(j->bs->be, j->sha);
  if (have < 0) return err_set(e, ERR_IO, "cannot check blob object %s", j->sha);

  /* A store with a key never keeps plaintext it is asked to store again:
   * the encrypted copy replaces it (rename is atomic; open readers keep the
   * old file). */
  if (row && have && (row_encrypted || !j->encrypted || !j->tmp)) {
    /* Identical content is already stored: keep that object, and restart
     * its GC grace period so the caller has time to reference it. */
    s = db_prepare(c, "UPDATE blobs SET last_put_at = ? WHERE sha256 = ?", e);
    if (!s) return blob_errc(e);
    db_bind_i64(s, 1, now);
    db_bind_text(s, 2, j->sha);
    rc = db_step(s, e);
    if (rc < 0) return rc;
    if (j->tmp) {
      ops->tmp_abort(j->tmp);
      j->tmp = NULL;
    }
    return 0;
  }

  /* No row, or a row whose object went missing: ours becomes the object.
   * The row goes first so that a failed rename rolls it back with the job. */
  s = db_prepare(c,
                 "INSERT INTO blobs (sha256, size, stored_size, codec, encrypted, refcount, "
                 "created_at, last_put_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?) "
                 "ON CONFLICT (sha256) DO UPDATE SET size = excluded.size, "
                 "stored_size = excluded.stored_size, codec = excluded.codec, "
                 "encrypted = excluded.encrypted, last_put_at = excluded.last_put_at",
                 e);
  if (!s) return blob_errc(e);
  db_bind_text(s, 1, j->sha);
  db_bind_i64(s, 2, (int64_t)j->size);
  db_bind_i64(s, 3, (int64_t)j->stored);
  db_bind_text(s, 4, j->zstd ? "zstd" : "raw");
  db_bind_i64(s, 5, j->encrypted ? 1 : 0);
  db_bind_i64(s, 6, now);
  db_bind_i64(s, 7, now);
  rc = db_step(s, e);
  if (rc < 0) return rc;
  if (j->tmp) {
    void *t = j->tmp;
    j->tmp = NULL;
    return ops->tmp_commit(j->bs->be, t, j->sha, e); /* frees t either way */
  }
  if (have) return 0;
  return err_set(e, ERR_IO, "blob object %s went missing before its commit", j->sha);
}

int blob_put_commit(struct blob_writer *w, const char *expected_sha256, char sha256_hex_out[65],
                    struct err *e) {
  if (!w) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "blob_put_commit: no writer");
  int rc;
  struct blob_store *bs = w->bs;
  if (w->failed) {
    rc = err_set(e, ERR_INTERNAL, "blob upload already failed");
    goto out;
  }
  if ((rc = blob_need_db(bs, e))) goto out;
  char want[65] = {0};
  if (expected_sha256) {
    /* Clients send digests in either case; names are lowercase. */
    size_t n = strlen(expected_sha256);
    for (size_t i = 0; i < n && i < 64; i++)
      want[i] = (expected_sha256[i] >= 'A' && expected_sha256[i] <= 'F')
                    ? (char)(expected_sha256[i] - 'A' + 'a')
                    : expected_sha256[i];
    if (n != 64 || !sha256_hex_valid(want)) {
      rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "expected SHA-256 must be 64 hex characters");
      goto out;
    }
  }
  uint8_t digest[32];
  char sha[65];
  sha256_final(&w->hash, digest);
  hex_encode(sha, digest, sizeof digest);
  if (expected_sha256 && strcmp(sha, want) != 0) {
    rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "content SHA-256 is %s, expected %s", sha, want);
    goto out;
  }

  if (!w->decided)
    rc = blob_w_decide(w, true, e);
  else if (w->zstd && !w->frame_done)
    rc = blob_w_zstd(w, NULL, 0, ZSTD_e_end, e);
  else
    rc = 0;
  if (rc == 0 && bs->encrypt)
    rc = blob_w_seal(w, crypto_secretstream_xchacha20poly1305_TAG_FINAL, e);
  if (rc) goto out;
  blob_put_u64le(w->head + 8, w->size);
  if ((rc = bs->ops->tmp_seal(w->tmp, w->head, w->head_len, e))) goto out;

  struct blob_put_job job = {
      .bs = bs,
      .tmp = w->tmp,
      .sha = sha,
      .size = w->size,
      .stored = w->stored,
      .zstd = w->zstd,
      .encrypted = bs->encrypt,
  };
  w->tmp = NULL; /* the job owns it now */
  rc = db_write(bs->db, blob_put_job_fn, &job, e);
  if (job.tmp) bs->ops->tmp_abort(job.tmp);
  if (rc == 0 && sha256_hex_out) memcpy(sha256_hex_out, sha, 65);
out:
  blob_writer_free(w);
  return rc < 0 ? rc : 0;
}

int blob_put_mem(struct blob_store *bs, const void *p, size_t n, char sha256_hex_out[65],
                 struct err *e) {
  struct blob_writer *w = blob_put_begin(bs, e);
  if (!w) return blob_errc(e);
  int rc = blob_put_write(w, p, n, e);
  if (rc) {
    blob_put_abort(w);
    return rc;
  }
  return blob_put_commit(w, NULL, sha256_hex_out, e);
}

/* ---- get ------------------------------------------------------------------- */

static ssize_t blob_r_read_full(struct blob_reader *r, void *p, size_t n, struct err *e) {
  size_t got = 0;
  while (got < n) {
    ssize_t k = r->bs->ops->read(r->rd, (uint8_t *)p + got, n - got, e);
    if (k < 0) return k;
    if (k == 0) break;
    got += (size_t)k;
  }
  return (ssize_t)got;
}

static int blob_r_corrupt(struct blob_reader *r, struct err *e, const char *why) {
  return err_set(e, ERR_DATA_CORRUPTED, "blob %s is corrupted: %s", r->sha, why);
}

static int blob_r_auth_failed(struct blob_reader *r, struct err *e) {
  return err_set(e, ERR_DATA_CORRUPTED, "blob %s failed authentication: wrong key or tampered data",
                 r->sha);
}

/* Refills the payload buffer (called only when it is drained and more
 * payload may follow). An encrypted message is authenticated before any of
 * it is used. */
static int blob_r_fill(struct blob_reader *r, struct err *e) {
  r->pay_pos = r->pay_len = 0;
  if (!(r->flags & BLOB_F_ENC)) {
    ssize_t n = r->bs->ops->read(r->rd, r->pay, BLOB_CHUNK, e);
    if (n < 0) return (int)n;
    if (n == 0) r->pay_eof = true;
    r->pay_len = (size_t)n;
    return 0;
  }
  ssize_t n = blob_r_read_full(r, r->cbuf, BLOB_CHUNK + BLOB_SS_ABYTES, e);
  if (n < 0) return (int)n;
  if ((size_t)n < BLOB_SS_ABYTES) return blob_r_corrupt(r, e, "truncated");
  unsigned long long mlen = 0;
  unsigned char tag = 0;
  if (crypto_secretstream_xchacha20poly1305_pull(&r->ss, r->pay, &mlen, &tag, r->cbuf,
                                                 (unsigned long long)n, r->ad, BLOB_AD_LEN) != 0)
    return blob_r_auth_failed(r, e);
  if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) {
    uint8_t extra;
    ssize_t k = blob_r_read_full(r, &extra, 1, e);
    if (k < 0) return (int)k;
    if (k > 0) return blob_r_corrupt(r, e, "data after the final message");
    r->pay_eof = true;
  } else if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE ||
             (size_t)n != BLOB_CHUNK + BLOB_SS_ABYTES) {
    /* Only the final message may be short; a short authentic one means
     * whole messages were cut off the end. */
    return blob_r_corrupt(r, e, "truncated");
  }
  r->pay_len = (size_t)mlen;
  return 0;
}

static void blob_reader_free(struct blob_reader *r) {
  if (!r) return;
  if (r->rd) r->bs->ops->read_close(r->rd);
  ZSTD_freeDCtx(r->dctx);
  free(r->cbuf);
  if (r->pay) sodium_memzero(r->pay, BLOB_CHUNK);
  free(r->pay);
  sodium_memzero(&r->ss, sizeof r->ss);
  free(r);
}

struct blob_reader *blob_get_open(struct blob_store *bs, const char *sha256_hex, struct err *e) {
  if (!bs) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "blob_get_open: no store");
    return NULL;
  }
  if (blob_check_sha(sha256_hex, e)) return NULL;
  struct blob_reader *r = calloc(1, sizeof *r);
  if (!r) {
    err_set(e, ERR_NO_MEMORY, NULL);
    return NULL;
  }
  r->bs = bs;
  memcpy(r->sha, sha256_hex, 65);
  sha256_init(&r->hash);
  int rc = bs->ops->read_open(bs->be, sha256_hex, &r->rd, e);
  if (rc) {
    r->rd = NULL;
    if (rc == -ERR_RESOURCE_DOES_NOT_EXIST)
      err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "blob %s does not exist", sha256_hex);
    goto fail;
  }
  uint8_t head[BLOB_HEAD_MAX];
  ssize_t n = blob_r_read_full(r, head, BLOB_HEAD_FIXED, e);
  if (n < 0) goto fail;
  if (n < BLOB_HEAD_FIXED || memcmp(head, BLOB_MAGIC, 4) != 0) {
    blob_r_corrupt(r, e, "bad header");
    goto fail;
  }
  if (head[4] != BLOB_VERSION) {
    err_set(e, ERR_DATA_CORRUPTED, "blob %s has format version %u, which this build cannot read",
            r->sha, head[4]);
    goto fail;
  }
  r->flags = head[5];
  if ((r->flags & ~(BLOB_F_ZSTD | BLOB_F_ENC)) || head[6] || head[7]) {
    blob_r_corrupt(r, e, "bad header");
    goto fail;
  }
  memcpy(r->ad, head, BLOB_AD_LEN);
  r->expect_size = blob_get_u64le(head + 8);
  if (r->flags & BLOB_F_ENC) {
    if (!bs->encrypt) {
      err_set(e, ERR_INTERNAL,
              "blob %s is encrypted at rest and no master key is configured "
              "(set KILN_MASTER_KEY or a key file)",
              r->sha);
      goto fail;
    }
    n = blob_r_read_full(r, head + BLOB_HEAD_FIXED, BLOB_SS_HEAD, e);
    if (n < 0) goto fail;
    if (n < (ssize_t)BLOB_SS_HEAD) {
      blob_r_corrupt(r, e, "truncated");
      goto fail;
    }
    if (crypto_secretstream_xchacha20poly1305_init_pull(&r->ss, head + BLOB_HEAD_FIXED, bs->key) !=
        0) {
      blob_r_auth_failed(r, e);
      goto fail;
    }
    if (!(r->cbuf = malloc(BLOB_CHUNK + BLOB_SS_ABYTES))) goto oom;
  }
  if ((r->flags & BLOB_F_ZSTD) && !(r->dctx = ZSTD_createDCtx())) goto oom;
  if (!(r->pay = malloc(BLOB_CHUNK))) goto oom;
  /* Reading ahead authenticates the first message here, so a wrong key is
   * reported before the caller has committed to a response. */
  if (blob_r_fill(r, e)) goto fail;
  return r;
oom:
  err_set(e, ERR_NO_MEMORY, NULL);
fail:
  blob_reader_free(r);
  return NULL;
}

static int blob_r_finish(struct blob_reader *r, struct err *e) {
  if (r->got != r->expect_size) {
    char why[96];
    snprintf(why, sizeof why, "%llu bytes decoded, header says %llu", (unsigned long long)r->got,
             (unsigned long long)r->expect_size);
    return blob_r_corrupt(r, e, why);
  }
  uint8_t digest[32];
  char hex[65];
  sha256_final(&r->hash, digest);
  hex_encode(hex, digest, sizeof digest);
  if (strcmp(hex, r->sha) != 0) return blob_r_corrupt(r, e, "content hash mismatch");
  r->done = true;
  return 0;
}

/* Hashes bytes about to be handed out; more bytes than the header promised
 * is corruption found early, before those bytes leave. */
static int blob_r_account(struct blob_reader *r, const void *p, size_t n, struct err *e) {
  if (n > r->expect_size - r->got) return blob_r_corrupt(r, e, "more data than the header says");
  sha256_update(&r->hash, p, n);
  r->got += n;
  return 0;
}

static ssize_t blob_r_step(struct blob_reader *r, uint8_t *p, size_t cap, struct err *e) {
  for (;;) {
    if (r->pay_pos == r->pay_len && !r->pay_eof) {
      int rc = blob_r_fill(r, e);
      if (rc) return rc;
    }
    size_t avail = r->pay_len - r->pay_pos;
    if (!(r->flags & BLOB_F_ZSTD)) {
      if (avail == 0) {
        if (r->pay_eof) return blob_r_finish(r, e);
        continue;
      }
      size_t n = avail < cap ? avail : cap;
      int rc = blob_r_account(r, r->pay + r->pay_pos, n, e);
      if (rc) return rc;
      memcpy(p, r->pay + r->pay_pos, n);
      r->pay_pos += n;
      return (ssize_t)n;
    }
    if (r->frame_done) {
      if (avail > 0) return blob_r_corrupt(r, e, "data after the zstd frame");
      if (r->pay_eof) return blob_r_finish(r, e);
      continue;
    }
    /* With the payload exhausted zstd is still called: it may hold decoded
     * output that did not fit the caller's buffer last time. */
    ZSTD_inBuffer in = {r->pay + r->pay_pos, avail, 0};
    ZSTD_outBuffer out = {p, cap, 0};
    size_t z = ZSTD_decompressStream(r->dctx, &out, &in);
    if (ZSTD_isError(z)) {
      char why[96];
      snprintf(why, sizeof why, "zstd: %s", ZSTD_getErrorName(z));
      return blob_r_corrupt(r, e, why);
    }
    r->pay_pos += in.pos;
    if (z == 0) r->frame_done = true;
    if (out.pos > 0) {
      int rc = blob_r_account(r, p, out.pos, e);
      return rc ? rc : (ssize_t)out.pos;
    }
    if (!r->frame_done && avail == 0 && r->pay_eof)
      return blob_r_corrupt(r, e, "truncated zstd frame");
  }
}

ssize_t blob_get_read(struct blob_reader *r, void *p, size_t cap, struct err *e) {
  if (!r) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "blob_get_read: no reader");
  if (r->fail) {
    if (e) *e = r->fail_err;
    return -r->fail;
  }
  if (r->done) return 0;
  if (!p || cap == 0) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "blob_get_read: empty buffer");
  if (cap > SSIZE_MAX) cap = SSIZE_MAX;
  ssize_t n = blob_r_step(r, p, cap, &r->fail_err);
  if (n < 0) {
    /* Errors are final: a stream that failed its checks must not resume. */
    r->fail = (int)-n;
    if (e) *e = r->fail_err;
  }
  return n;
}

void blob_get_close(struct blob_reader *r) { blob_reader_free(r); }

/* ---- bookkeeping ------------------------------------------------------------ */

int blob_stat(struct blob_store *bs, const char *sha256_hex, struct blob_info *out, struct err *e) {
  if (!bs || !out) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "blob_stat: bad arguments");
  int rc = blob_check_sha(sha256_hex, e);
  if (rc || (rc = blob_need_db(bs, e))) return rc;
  struct db_conn *c = db_reader_acquire(bs->db, e);
  if (!c) return blob_errc(e);
  struct db_stmt *s = db_prepare(
      c, "SELECT size, stored_size, codec, encrypted, refcount FROM blobs WHERE sha256 = ?", e);
  if (!s) {
    rc = blob_errc(e);
    goto out;
  }
  db_bind_text(s, 1, sha256_hex);
  rc = db_step(s, e);
  if (rc == DB_ROW) {
    memset(out, 0, sizeof *out);
    out->size = (uint64_t)db_col_i64(s, 0);
    out->stored_size = (uint64_t)db_col_i64(s, 1);
    const char *codec = db_col_text(s, 2);
    str_copy(out->codec, sizeof out->codec, codec ? codec : "");
    out->encrypted = db_col_i64(s, 3) != 0;
    out->refcount = db_col_i64(s, 4);
    rc = 0;
  } else if (rc == DB_DONE) {
    rc = err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "blob %s does not exist", sha256_hex);
  }
  db_stmt_done(s);
out:
  db_reader_release(bs->db, c);
  return rc;
}

int blob_ref(struct db_conn *c, const char *sha256_hex, struct err *e) {
  int rc = blob_check_sha(sha256_hex, e);
  if (rc) return rc;
  struct db_stmt *s = db_prepare(c, "UPDATE blobs SET refcount = refcount + 1 WHERE sha256 = ?", e);
  if (!s) return blob_errc(e);
  db_bind_text(s, 1, sha256_hex);
  rc = db_step(s, e);
  if (rc < 0) return rc;
  if (db_changes(c) == 0)
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "blob %s does not exist", sha256_hex);
  return 0;
}

int blob_unref(struct db_conn *c, const char *sha256_hex, struct err *e) {
  int rc = blob_check_sha(sha256_hex, e);
  if (rc) return rc;
  struct db_stmt *s = db_prepare(
      c, "UPDATE blobs SET refcount = refcount - 1 WHERE sha256 = ? AND refcount > 0", e);
  if (!s) return blob_errc(e);
  db_bind_text(s, 1, sha256_hex);
  rc = db_step(s, e);
  if (rc < 0) return rc;
  if (db_changes(c) > 0) return 0;
  s = db_prepare(c, "SELECT refcount FROM blobs WHERE sha256 = ?", e);
  if (!s) return blob_errc(e);
  db_bind_text(s, 1, sha256_hex);
  rc = db_step(s, e);
  db_stmt_done(s);
  if (rc < 0) return rc;
  if (rc == DB_DONE)
    return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "blob %s does not exist", sha256_hex);
  /* An unbalanced unref is a bug elsewhere; clamping at zero keeps the
   * count meaningful and the GC able to collect the blob. */
  log_warn("blob_unref_underflow", "blob %s unreferenced below zero", sha256_hex);
  return 0;
}

struct blob_gc_job {
  struct blob_store *bs;
  int64_t cutoff_ms;
  int selected, removed;
  char (*shas)[65];
  int64_t *sizes;  /* stored bytes of each selected blob */
  uint64_t bytes;  /* stored bytes of the objects removed by this batch */
};

/* GC runs in two writer jobs per batch (rows, then objects), both on the
 * writer thread, so no put can slip between a check and a removal. An object
 * whose removal fails stays without a row; the next put of that content
 * adopts it. */
/* Phase 1: forget the rows. Committed before any object is touched, so a
 * crash can leave an object without a row (which a later put adopts), never
 * a row without its object. */
static int blob_gc_rows_fn(struct db_conn *c, void *arg, struct err *e) {
  struct blob_gc_job *j = arg;
  j->selected = 0;
  struct db_stmt *s = db_prepare(c,
                                 "SELECT sha256, stored_size FROM blobs WHERE refcount = 0 AND last_put_at < ? "
                                 "ORDER BY last_put_at LIMIT ?",
                                 e);
  if (!s) return blob_errc(e);
  db_bind_i64(s, 1, j->cutoff_ms);
  db_bind_i64(s, 2, BLOB_GC_BATCH);
  int rc;
  while ((rc = db_step(s, e)) == DB_ROW) {
    const char *sha = db_col_text(s, 0);
    if (j->selected < BLOB_GC_BATCH && sha256_hex_valid(sha)) {
      j->sizes[j->selected] = db_col_i64(s, 1);
      memcpy(j->shas[j->selected++], sha, 65);
    }
  }
  db_stmt_done(s);
  if (rc < 0) return rc;
  for (int i = 0; i < j->selected; i++) {
    s = db_prepare(c, "DELETE FROM blobs WHERE sha256 = ? AND refcount = 0", e);
    if (!s) return blob_errc(e);
    db_bind_text(s, 1, j->shas[i]);
    if ((rc = db_step(s, e)) < 0) return rc;
  }
  return 0;
}

/* Phase 2: remove the objects whose rows are still gone. A put of the same
 * content in between re-created the row and keeps its object; running on
 * the writer makes that check and the removal atomic against puts. */
static int blob_gc_objects_fn(struct db_conn *c, void *arg, struct err *e) {
  struct blob_gc_job *j = arg;
  j->removed = 0;
  j->bytes = 0;
  for (int i = 0; i < j->selected; i++) {
    struct db_stmt *s = db_prepare(c, "SELECT 1 FROM blobs WHERE sha256 = ?", e);
    if (!s) return blob_errc(e);
    db_bind_text(s, 1, j->shas[i]);
    int rc = db_step(s, e);
    db_stmt_done(s);
    if (rc < 0) return rc;
    if (rc == DB_ROW) continue;
    struct err re;
    err_clear(&re);
    if (j->bs->ops->remove(j->bs->be, j->shas[i], &re) != 0) {
      log_warn("blob_gc_remove_failed", "blob %s: %s", j->shas[i], re.msg);
      continue;
    }
    j->removed++;
    j->bytes += j->sizes[i] > 0 ? (uint64_t)j->sizes[i] : 0;
  }
  return 0;
}

int blob_gc(struct blob_store *bs, int64_t grace_s, int *removed, struct err *e) {
  struct blob_gc_report r;
  int rc = blob_gc_report(bs, grace_s, &r, e);
  if (removed) *removed = r.removed;
  return rc;
}

int blob_gc_report(struct blob_store *bs, int64_t grace_s, struct blob_gc_report *out, struct err *e) {
  memset(out, 0, sizeof *out);
  if (!bs) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "blob_gc: no store");
  if (grace_s < 0) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "GC grace period must be >= 0");
  int rc = blob_need_db(bs, e);
  if (rc) return rc;
  int64_t now = time_wall_ms();
  if (grace_s > now / 1000) return 0; /* nothing is that old; also avoids overflow */
  struct blob_gc_job job = {.bs = bs, .cutoff_ms = now - grace_s * 1000};
  job.shas = malloc(BLOB_GC_BATCH * sizeof *job.shas);
  job.sizes = malloc(BLOB_GC_BATCH * sizeof *job.sizes);
  if (!job.shas || !job.sizes) {
    free(job.shas);
    free(job.sizes);
    return err_set(e, ERR_NO_MEMORY, NULL);
  }
  int total = 0;
  for (;;) {
    rc = db_write(bs->db, blob_gc_rows_fn, &job, e);
    if (rc < 0) break;
    if (job.selected == 0) break;
    rc = db_write(bs->db, blob_gc_objects_fn, &job, e);
    if (rc < 0) break;
    total += job.removed;
    out->bytes += job.bytes;
    if (job.selected < BLOB_GC_BATCH) break;
  }
  free(job.shas);
  free(job.sizes);
  out->removed = total;
  if (total > 0) log_info("blob_gc", "removed %d unreferenced blobs", total);
  return rc < 0 ? rc : 0;
}
