/* tests/crash/crash: kill -9 at random moments while the group-commit writer
 * and the blob store run at full speed in a child process, then reopen the
 * store and prove that every acknowledged write survived intact, the
 * database passes its integrity check, reference counts match the rows, and
 * no temp file ever became a blob. See tests/crash/README.md.
 *
 *   build/tests/crash [ROUNDS] [SEED]     (defaults: 20 rounds, seed from the clock)
 *   KILN_CRASH_DIR=DIR keeps the data in DIR (default: a fresh /tmp dir,
 *   removed on success); KILN_CRASH_THREADS=N writer threads (default 4);
 *   KILN_CRASH_MAX_MS=N latest kill after the writers start (default 300). */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 16
#define MAX_BLOB (256 * 1024)
#define DEDUP_POOL 8 /* fixed contents every round reuses: exercises dedup + refcounts */
#define GC_GRACE_S 1
/* 64 hex: a fixed test key, never a real one */
#define TEST_KEY "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

enum mode { MODE_PLAIN = 0, MODE_ENC = 1, MODE_COUNT };
static const char *const mode_name[] = {"plain", "encrypted"};

static int g_threads = 4;
static int g_max_ms = 300; /* latest kill, ms after the writers started */
/* KILN_CRASH_SELFTEST proves the checks bite: "ack-early" acknowledges
 * before db_write returns, "torn-object" drops a truncated object into the
 * tree under a valid name; either must make the run fail. */
static const char *g_selftest = "";
static uint64_t g_run_id; /* keeps keys unique across invocations on one directory */

/* ---- small utilities ----------------------------------------------------- */

static uint64_t rng_next(uint64_t *s) {
  /* xorshift64* */
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 2685821657736338717ull;
}

static uint64_t rng_range(uint64_t *s, uint64_t lo, uint64_t hi) {
  return lo + rng_next(s) % (hi - lo + 1);
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* The value stored with key k, so a row whose v does not fit its k is a torn
 * or misplaced write. */
static void value_of(int64_t k, char out[33]) {
  char in[64], hex[65];
  int n = snprintf(in, sizeof in, "kiln-crash:%lld", (long long)k);
  sha256_hex(in, (size_t)n, hex);
  memcpy(out, hex, 32);
  out[32] = 0;
}

/* One of DEDUP_POOL fixed contents, the same in every round and process. */
static size_t pool_content(int idx, uint8_t *buf) {
  size_t n = idx == 0 ? 0 : (size_t)idx * 9973u % MAX_BLOB;
  for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)((i * 31u + (unsigned)idx * 7u) ^ (i >> 9));
  return n;
}

/* ---- the child: writers at full speed until killed ----------------------- */

struct child {
  struct db *db;
  struct blob_store *bs;
  int fd; /* acknowledgement pipe */
  int round;
  uint64_t seed;
};

struct worker {
  struct child *ch;
  int id;
  pthread_t th;
};

/* One write(2) per line: lines up to PIPE_BUF are atomic, so lines of many
 * threads never interleave, and the pipe keeps what was written when the
 * child dies. */
static void say(int fd, const char *fmt, ...) KILN_PRINTF(2, 3);
static void say(int fd, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) n = sizeof line - 1;
  ssize_t w;
  do {
    w = write(fd, line, (size_t)n);
  } while (w < 0 && errno == EINTR);
}

static void child_fail(int fd, const char *what, const struct err *e) {
  say(fd, "E %s: %s (%s)\n", what, e ? e->msg : "", e ? err_code_str(e->code) : "");
  _exit(3);
}

static int job_create_table(struct db_conn *c, void *arg, struct err *e) {
  (void)arg;
  return db_exec(c,
                 "CREATE TABLE IF NOT EXISTS crash_kv (k BIGINT PRIMARY KEY, v TEXT NOT NULL, "
                 "blob TEXT)",
                 e);
}

struct put_job {
  int64_t k;
  const char *v, *sha;
};

/* The row and its blob reference commit together or not at all. */
static int job_put(struct db_conn *c, void *arg, struct err *e) {
  struct put_job *j = arg;
  struct db_stmt *s = db_prepare(c, "INSERT INTO crash_kv (k, v, blob) VALUES (?, ?, ?)", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, j->k);
  db_bind_text(s, 2, j->v);
  db_bind_text(s, 3, j->sha);
  int rc = db_step(s, e);
  db_stmt_done(s);
  if (rc < 0) return rc;
  return blob_ref(c, j->sha, e);
}

struct del_job {
  int64_t k;
  int deleted;
};

static int job_delete(struct db_conn *c, void *arg, struct err *e) {
  struct del_job *j = arg;
  j->deleted = 0;
  struct db_stmt *s = db_prepare(c, "SELECT blob FROM crash_kv WHERE k = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, j->k);
  int rc = db_step(s, e);
  if (rc < 0) return rc;
  if (rc == DB_DONE) return 0;
  char sha[65];
  const char *t = db_col_text(s, 0);
  str_copy(sha, sizeof sha, t ? t : "");
  db_stmt_done(s);
  s = db_prepare(c, "DELETE FROM crash_kv WHERE k = ?", e);
  if (!s) return -ERR_INTERNAL;
  db_bind_i64(s, 1, j->k);
  if ((rc = db_step(s, e)) < 0) return rc;
  if ((rc = blob_unref(c, sha, e)) < 0) return rc;
  j->deleted = 1;
  return 0;
}

/* Puts a blob in random-sized pieces through the streaming writer. */
static int put_streaming(struct blob_store *bs, const uint8_t *p, size_t n, uint64_t *rng,
                         char sha[65], struct err *e) {
  struct blob_writer *w = blob_put_begin(bs, e);
  if (!w) return -ERR_INTERNAL;
  size_t off = 0;
  while (off < n) {
    size_t piece = (size_t)rng_range(rng, 1, 70000);
    if (piece > n - off) piece = n - off;
    int rc = blob_put_write(w, p + off, piece, e);
    if (rc) {
      blob_put_abort(w);
      return rc;
    }
    off += piece;
  }
  char want[65];
  sha256_hex(p, n, want);
  /* half the time also let the store check the digest */
  return blob_put_commit(w, rng_next(rng) & 1 ? want : NULL, sha, e);
}

static void *worker_main(void *arg) {
  struct worker *wk = arg;
  struct child *ch = wk->ch;
  uint64_t rng =
      ch->seed ^ ((uint64_t)wk->id * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)ch->round << 40);
  if (!rng) rng = 1;
  uint8_t *buf = malloc(MAX_BLOB);
  int64_t *mine = malloc(sizeof(int64_t) * 1024);
  int nmine = 0;
  if (!buf || !mine) {
    say(ch->fd, "E out of memory\n");
    _exit(3);
  }
  for (int64_t iter = 0;; iter++) {
    int64_t k = (int64_t)((g_run_id << 48) | ((uint64_t)ch->round << 32) |
                          ((uint64_t)wk->id << 24) | (uint64_t)iter);
    /* content: empty, small, medium or large; random (incompressible),
     * patterned (compressible) or one of the shared dedup contents */
    size_t n;
    uint64_t kind = rng_next(&rng) % 10;
    if (kind < 2) {
      n = pool_content((int)(rng_next(&rng) % DEDUP_POOL), buf);
    } else {
      uint64_t sz = rng_next(&rng) % 10;
      n = sz < 3   ? (size_t)rng_range(&rng, 0, 1024)
          : sz < 7 ? (size_t)rng_range(&rng, 1024, 32 * 1024)
                   : (size_t)rng_range(&rng, 32 * 1024, MAX_BLOB);
      if (kind < 6) {
        for (size_t i = 0; i < n; i += 8) {
          uint64_t r = rng_next(&rng);
          memcpy(buf + i, &r, n - i < 8 ? n - i : 8);
        }
      } else {
        uint64_t r = rng_next(&rng);
        for (size_t i = 0; i < n; i++)
          buf[i] = (uint8_t)("kiln crash test "[i % 16] ^ ((i / 4096 + r) & 3));
      }
    }
    char want[65], sha[65];
    sha256_hex(buf, n, want);
    struct err e;
    err_clear(&e);
    int rc = rng_next(&rng) & 1 ? blob_put_mem(ch->bs, buf, n, sha, &e)
                                : put_streaming(ch->bs, buf, n, &rng, sha, &e);
    if (rc) child_fail(ch->fd, "blob put", &e);
    if (strcmp(sha, want) != 0) {
      say(ch->fd, "E blob put returned address %s for content whose SHA-256 is %s\n", sha, want);
      _exit(3);
    }
    char v[33];
    value_of(k, v);
    struct put_job pj = {k, v, sha};
    if (str_eq(g_selftest, "ack-early")) say(ch->fd, "P %lld %s\n", (long long)k, sha);
    rc = db_write(ch->db, job_put, &pj, &e);
    if (rc == 0 && str_eq(g_selftest, "ack-early")) continue;
    if (rc == 0) {
      say(ch->fd, "P %lld %s\n", (long long)k, sha);
      if (nmine < 1024) mine[nmine++] = k;
    } else if (e.code == ERR_RESOURCE_DOES_NOT_EXIST) {
      /* the GC took the blob between put and reference (past its grace):
       * a refused write, correctly not acknowledged */
      say(ch->fd, "F %lld\n", (long long)k);
    } else {
      child_fail(ch->fd, "db_write put", &e);
    }
    /* now and then delete one of our own acknowledged rows */
    if (nmine > 0 && rng_next(&rng) % 6 == 0) {
      int i = (int)(rng_next(&rng) % (uint64_t)nmine);
      int64_t dk = mine[i];
      mine[i] = mine[--nmine];
      say(ch->fd, "X %lld\n", (long long)dk);
      struct del_job dj = {dk, 0};
      if (db_write(ch->db, job_delete, &dj, &e)) child_fail(ch->fd, "db_write delete", &e);
      if (!dj.deleted) {
        say(ch->fd, "E acknowledged row %lld was gone before its delete\n", (long long)dk);
        _exit(3);
      }
      say(ch->fd, "D %lld\n", (long long)dk);
    }
  }
  return NULL;
}

static void *gc_main(void *arg) {
  struct child *ch = arg;
  for (;;) {
    struct err e;
    int removed = 0;
    if (blob_gc(ch->bs, GC_GRACE_S, &removed, &e)) child_fail(ch->fd, "blob_gc", &e);
    sleep_ms(15);
  }
  return NULL;
}

static void child_main(const char *dir, enum mode m, int round, uint64_t seed, int fd) {
  log_set_quiet(true);
  char url[1100];
  struct err e;
  err_clear(&e);
  struct child ch = {.fd = fd, .round = round, .seed = seed};
  snprintf(url, sizeof url, "sqlite:%s/kiln.db", dir);
  if (db_open(&ch.db, url, NULL, &e)) child_fail(fd, "db_open", &e);
  if (db_migrate(ch.db, &e) < 0) child_fail(fd, "db_migrate", &e);
  struct blob_opts bo = {.master_key_hex = m == MODE_ENC ? TEST_KEY : NULL, .compress = true};
  snprintf(url, sizeof url, "file:%s/blobs", dir);
  if (blob_open(&ch.bs, url, ch.db, &bo, &e)) child_fail(fd, "blob_open", &e);
  if (db_write(ch.db, job_create_table, NULL, &e)) child_fail(fd, "create table", &e);
  if (str_eq(g_selftest, "torn-object")) {
    char p[1200];
    snprintf(p, sizeof p, "%s/blobs/00", dir);
    mkdir(p, 0750);
    snprintf(p, sizeof p, "%s/blobs/00/00", dir);
    mkdir(p, 0750);
    snprintf(p, sizeof p, "%s/blobs/00/00/0000%060d", dir, round);
    int tfd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    if (tfd >= 0) {
      ssize_t w = write(tfd, "KLNB\1\0\0\0\xff\0\0\0\0\0\0\0partial", 23);
      (void)w;
      close(tfd);
    }
  }
  say(fd, "R\n");
  struct worker wk[MAX_THREADS];
  for (int i = 0; i < g_threads; i++) {
    wk[i].ch = &ch;
    wk[i].id = i;
    if (pthread_create(&wk[i].th, NULL, worker_main, &wk[i]))
      child_fail(fd, "pthread_create", NULL);
  }
  pthread_t gc;
  if (pthread_create(&gc, NULL, gc_main, &ch)) child_fail(fd, "pthread_create", NULL);
  for (;;) pause(); /* until SIGKILL */
}

/* ---- the parent: what was acknowledged ----------------------------------- */

enum ack_state { A_NONE = 0, A_PRESENT, A_DELETED, A_DEL_PENDING };
#define SEEN 0x80

struct ack {
  int64_t k;
  uint8_t state; /* enum ack_state; | SEEN while verifying */
  char sha[65];
};

struct ackmap {
  struct ack *v;
  size_t cap, n;
};

static size_t hash_k(int64_t k) {
  uint64_t x = (uint64_t)k * 0x9e3779b97f4a7c15ull;
  return (size_t)(x ^ (x >> 29));
}

static struct ack *ack_get(struct ackmap *m, int64_t k, bool create) {
  if (create && (m->n + 1) * 2 > m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 1024;
    struct ack *v = calloc(cap, sizeof *v);
    if (!v) abort();
    for (size_t i = 0; i < m->cap; i++) {
      if (!m->v[i].state) continue;
      size_t j = hash_k(m->v[i].k) & (cap - 1);
      while (v[j].state) j = (j + 1) & (cap - 1);
      v[j] = m->v[i];
    }
    free(m->v);
    m->v = v;
    m->cap = cap;
  }
  if (!m->cap) return NULL;
  size_t j = hash_k(k) & (m->cap - 1);
  while (m->v[j].state) {
    if (m->v[j].k == k) return &m->v[j];
    j = (j + 1) & (m->cap - 1);
  }
  if (!create) return NULL;
  m->v[j].k = k;
  m->v[j].state = A_PRESENT;
  m->n++;
  return &m->v[j];
}

/* a set of 64-hex names: objects already verified byte for byte */
struct nameset {
  char (*v)[65];
  size_t cap, n;
};

static size_t hash_s(const char *s) {
  size_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static bool nameset_has(struct nameset *m, const char *s) {
  if (!m->cap) return false;
  for (size_t j = hash_s(s) & (m->cap - 1); m->v[j][0]; j = (j + 1) & (m->cap - 1))
    if (strcmp(m->v[j], s) == 0) return true;
  return false;
}

static void nameset_add(struct nameset *m, const char *s) {
  if (nameset_has(m, s)) return;
  if ((m->n + 1) * 2 > m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 1024;
    char(*v)[65] = calloc(cap, sizeof *v);
    if (!v) abort();
    for (size_t i = 0; i < m->cap; i++) {
      if (!m->v[i][0]) continue;
      size_t j = hash_s(m->v[i]) & (cap - 1);
      while (v[j][0]) j = (j + 1) & (cap - 1);
      memcpy(v[j], m->v[i], 65);
    }
    free(m->v);
    m->v = v;
    m->cap = cap;
  }
  size_t j = hash_s(s) & (m->cap - 1);
  while (m->v[j][0]) j = (j + 1) & (m->cap - 1);
  memcpy(m->v[j], s, 65);
  m->n++;
}

struct state {
  char dir[1024];
  struct ackmap acks;
  struct nameset verified; /* objects read back and hashed */
  uint64_t rounds, acked_puts, acked_dels, failed_puts, adopted, kills_before_ready;
  uint64_t dangling; /* refcount-0 rows whose object is gone (last verify) */
};

static int g_violations;
static uint64_t g_lost;

#define VIOLATION(...)                                                                             \
  do {                                                                                             \
    fprintf(stderr, "crash: VIOLATION: " __VA_ARGS__);                                             \
    fprintf(stderr, "\n");                                                                         \
    g_violations++;                                                                                \
  } while (0)

static bool hex64(const char *s) { return sha256_hex_valid(s); }

/* Reads a blob through the store and checks its content hashes to its name.
 * Returns bytes read, or -1 (after reporting) on any failure. */
static int64_t verify_blob(struct blob_store *bs, const char *sha, const char *why) {
  struct err e;
  err_clear(&e);
  struct blob_reader *r = blob_get_open(bs, sha, &e);
  if (!r) {
    VIOLATION("%s: blob %s does not open: %s (%s)", why, sha, e.msg, err_code_str(e.code));
    return -1;
  }
  static uint8_t buf[65536];
  struct sha256 h;
  sha256_init(&h);
  int64_t total = 0;
  for (;;) {
    ssize_t n = blob_get_read(r, buf, sizeof buf, &e);
    if (n < 0) {
      VIOLATION("%s: blob %s fails on read after %lld bytes: %s (%s)", why, sha, (long long)total,
                e.msg, err_code_str(e.code));
      blob_get_close(r);
      return -1;
    }
    if (n == 0) break;
    sha256_update(&h, buf, (size_t)n);
    total += n;
  }
  blob_get_close(r);
  uint8_t d[32];
  char hex[65];
  sha256_final(&h, d);
  hex_encode(hex, d, 32);
  if (strcmp(hex, sha) != 0) {
    VIOLATION("%s: blob %s reads back content whose SHA-256 is %s", why, sha, hex);
    return -1;
  }
  return total;
}

struct row {
  int64_t k;
  char v[80]; /* room to notice values longer than what was written */
  char sha[80];
};

static int cmp_sha(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* how many of the sorted shas equal sha */
static int64_t count_sorted(char **v, size_t n, const char *sha) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(v[mid], sha) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  int64_t c = 0;
  while (lo < n && strcmp(v[lo], sha) == 0) lo++, c++;
  return c;
}

/* Reopens the store after the kill and checks everything. */
static void verify(struct state *st, enum mode m, bool final) {
  struct err e;
  err_clear(&e);
  char url[1100];
  struct db *db = NULL;
  struct blob_store *bs = NULL;
  snprintf(url, sizeof url, "sqlite:%s/kiln.db", st->dir);
  if (db_open(&db, url, NULL, &e)) {
    VIOLATION("[%s] reopen: db_open: %s", mode_name[m], e.msg);
    return;
  }
  if (db_migrate(db, &e) < 0) VIOLATION("[%s] reopen: db_migrate: %s", mode_name[m], e.msg);
  if (db_check_integrity(db, &e)) VIOLATION("[%s] db_check_integrity: %s", mode_name[m], e.msg);
  struct blob_opts bo = {.master_key_hex = m == MODE_ENC ? TEST_KEY : NULL, .compress = true};
  snprintf(url, sizeof url, "file:%s/blobs", st->dir);
  if (blob_open(&bs, url, db, &bo, &e)) {
    VIOLATION("[%s] reopen: blob_open: %s", mode_name[m], e.msg);
    db_close(db);
    return;
  }
  /* the child may have died before creating its table */
  if (db_write(db, job_create_table, NULL, &e))
    VIOLATION("[%s] create table: %s", mode_name[m], e.msg);

  /* every row */
  struct row *rows = NULL;
  size_t nrows = 0, caprows = 0;
  struct db_conn *c = db_reader_acquire(db, &e);
  if (!c) {
    VIOLATION("[%s] no reader: %s", mode_name[m], e.msg);
    goto out;
  }
  struct db_stmt *s = db_prepare(c, "SELECT k, v, blob FROM crash_kv ORDER BY k", &e);
  int rc = 0;
  while (s && (rc = db_step(s, &e)) == DB_ROW) {
    if (nrows == caprows) {
      caprows = caprows ? caprows * 2 : 1024;
      rows = realloc(rows, caprows * sizeof *rows);
      if (!rows) abort();
    }
    struct row *r = &rows[nrows++];
    r->k = db_col_i64(s, 0);
    const char *t = db_col_text(s, 1);
    str_copy(r->v, sizeof r->v, t ? t : "");
    t = db_col_text(s, 2);
    str_copy(r->sha, sizeof r->sha, t ? t : "");
  }
  if (!s || rc < 0) VIOLATION("[%s] reading crash_kv: %s", mode_name[m], e.msg);
  if (s) db_stmt_done(s);

  /* rows: well formed, and consistent with the acknowledgements */
  for (size_t i = 0; i < nrows; i++) {
    struct row *r = &rows[i];
    char want[33];
    value_of(r->k, want);
    if (strcmp(r->v, want) != 0)
      VIOLATION("[%s] row %lld has v=%s, want %s (torn or misplaced write)", mode_name[m],
                (long long)r->k, r->v, want);
    if (!hex64(r->sha))
      VIOLATION("[%s] row %lld has blob '%s', not a SHA-256", mode_name[m], (long long)r->k,
                r->sha);
    struct ack *a = ack_get(&st->acks, r->k, false);
    if (!a) {
      /* committed, but the child died before acknowledging: durable from now on */
      a = ack_get(&st->acks, r->k, true);
      str_copy(a->sha, sizeof a->sha, r->sha);
      st->adopted++;
    } else if (a->state == A_DELETED) {
      VIOLATION("[%s] row %lld came back after its delete was acknowledged", mode_name[m],
                (long long)r->k);
    } else if (strcmp(a->sha, r->sha) != 0) {
      VIOLATION("[%s] row %lld references blob %s, acknowledged with %s", mode_name[m],
                (long long)r->k, r->sha, a->sha);
    }
    /* present now (a pending delete did not commit) */
    a->state = A_PRESENT | SEEN;
  }
  /* acknowledged rows that are gone */
  for (size_t i = 0; i < st->acks.cap; i++) {
    struct ack *a = &st->acks.v[i];
    if (!a->state) continue;
    if (a->state & SEEN) {
      a->state &= (uint8_t)~SEEN;
      continue;
    }
    if (a->state == A_PRESENT) {
      VIOLATION("[%s] acknowledged write %lld (blob %s) is lost", mode_name[m], (long long)a->k,
                a->sha);
      g_lost++;
      a->state = A_DELETED; /* report once */
    } else if (a->state == A_DEL_PENDING) {
      a->state = A_DELETED; /* the delete committed before the kill */
    }
  }

  /* reference counts: crash_kv is the only referrer in this store */
  {
    struct nameset refd = {0};
    char **sorted = malloc((nrows ? nrows : 1) * sizeof *sorted);
    if (!sorted) abort();
    for (size_t i = 0; i < nrows; i++) {
      if (hex64(rows[i].sha)) nameset_add(&refd, rows[i].sha); /* others reported above */
      sorted[i] = rows[i].sha;
    }
    qsort(sorted, nrows, sizeof *sorted, cmp_sha);
    s = db_prepare(c, "SELECT sha256, refcount, size, encrypted FROM blobs", &e);
    size_t nblobs = 0;
    uint64_t dangling = 0;
    while (s && (rc = db_step(s, &e)) == DB_ROW) {
      char sha[80];
      const char *t = db_col_text(s, 0);
      str_copy(sha, sizeof sha, t ? t : "");
      int64_t refc = db_col_i64(s, 1);
      bool enc = db_col_i64(s, 3) != 0;
      int64_t want = count_sorted(sorted, nrows, sha);
      if (refc == 0 && hex64(sha)) {
        /* allowed by the contract (nothing references it, the GC may take
         * it), but blob_stat still reports it: counted for the summary */
        char op[1300];
        struct stat sb;
        snprintf(op, sizeof op, "%s/blobs/%.2s/%.2s/%s", st->dir, sha, sha + 2, sha);
        if (stat(op, &sb) != 0) dangling++;
      }
      if (refc != want)
        VIOLATION("[%s] blob %s has refcount %lld, %lld rows reference it", mode_name[m], sha,
                  (long long)refc, (long long)want);
      if (enc != (m == MODE_ENC))
        VIOLATION("[%s] blob %s recorded as %sencrypted", mode_name[m], sha, enc ? "" : "not ");
      nblobs++;
    }
    if (!s || rc < 0) VIOLATION("[%s] reading blobs: %s", mode_name[m], e.msg);
    if (s) db_stmt_done(s);
    /* every referenced blob has its row */
    for (size_t i = 0; i < refd.cap; i++) {
      if (!refd.v[i][0]) continue;
      struct blob_info bi;
      if (blob_stat(bs, refd.v[i], &bi, &e)) {
        VIOLATION("[%s] referenced blob %s has no blobs row: %s", mode_name[m], refd.v[i], e.msg);
        continue;
      }
      /* read it back unless done in an earlier round (all in the last) */
      if (final || !nameset_has(&st->verified, refd.v[i])) {
        int64_t n = verify_blob(bs, refd.v[i], "referenced blob");
        if (n >= 0 && (uint64_t)n != bi.size)
          VIOLATION("[%s] blob %s read %lld bytes, its row says %llu", mode_name[m], refd.v[i],
                    (long long)n, (unsigned long long)bi.size);
        if (n >= 0) nameset_add(&st->verified, refd.v[i]);
      }
    }
    free(refd.v);
    free(sorted);
    st->dangling = dangling;
    (void)nblobs;
  }
  db_reader_release(db, c);

  /* the object tree: only shard dirs and 64-hex objects in their own shard,
   * each of which reads back to its name */
  {
    char base[1040];
    snprintf(base, sizeof base, "%s/blobs", st->dir);
    DIR *d1 = opendir(base);
    if (!d1) VIOLATION("[%s] cannot list %s", mode_name[m], base);
    struct dirent *a;
    while (d1 && (a = readdir(d1))) {
      if (a->d_name[0] == '.' || strcmp(a->d_name, "tmp") == 0) continue;
      char p1[1300];
      snprintf(p1, sizeof p1, "%s/%s", base, a->d_name);
      if (strlen(a->d_name) != 2) {
        VIOLATION("[%s] unexpected entry %s in the blob directory", mode_name[m], p1);
        continue;
      }
      DIR *d2 = opendir(p1);
      struct dirent *b;
      while (d2 && (b = readdir(d2))) {
        if (b->d_name[0] == '.') continue;
        char p2[1560];
        snprintf(p2, sizeof p2, "%s/%s", p1, b->d_name);
        DIR *d3 = strlen(b->d_name) == 2 ? opendir(p2) : NULL;
        if (!d3) {
          VIOLATION("[%s] unexpected entry %s in the blob directory", mode_name[m], p2);
          continue;
        }
        struct dirent *f;
        while ((f = readdir(d3))) {
          if (strcmp(f->d_name, ".") == 0 || strcmp(f->d_name, "..") == 0) continue;
          char want_prefix[5];
          snprintf(want_prefix, sizeof want_prefix, "%.2s%.2s", a->d_name, b->d_name);
          if (!hex64(f->d_name) || strncmp(f->d_name, want_prefix, 4) != 0) {
            VIOLATION("[%s] %s/%s is not a blob name in its shard (a temp file made visible?)",
                      mode_name[m], p2, f->d_name);
            continue;
          }
          if (final || !nameset_has(&st->verified, f->d_name)) {
            if (verify_blob(bs, f->d_name, "object") >= 0) nameset_add(&st->verified, f->d_name);
          }
        }
        closedir(d3);
      }
      if (d2) closedir(d2);
    }
    if (d1) closedir(d1);
  }
out:
  free(rows);
  blob_close(bs);
  db_close(db);
}

/* Applies one acknowledgement line from the child. */
static void on_line(struct state *st, enum mode m, const char *line, bool *ready,
                    bool *child_error) {
  long long k;
  char sha[65];
  if (line[0] == 'R') {
    *ready = true;
  } else if (line[0] == 'P' && sscanf(line, "P %lld %64s", &k, sha) == 2) {
    struct ack *a = ack_get(&st->acks, k, true);
    if (a->sha[0]) VIOLATION("[%s] key %lld acknowledged twice", mode_name[m], k);
    a->state = A_PRESENT;
    str_copy(a->sha, sizeof a->sha, sha);
    st->acked_puts++;
  } else if (line[0] == 'X' && sscanf(line, "X %lld", &k) == 1) {
    struct ack *a = ack_get(&st->acks, k, false);
    if (!a)
      VIOLATION("[%s] delete of unknown key %lld", mode_name[m], k);
    else
      a->state = A_DEL_PENDING;
  } else if (line[0] == 'D' && sscanf(line, "D %lld", &k) == 1) {
    struct ack *a = ack_get(&st->acks, k, false);
    if (a) a->state = A_DELETED;
    st->acked_dels++;
  } else if (line[0] == 'F') {
    st->failed_puts++;
  } else if (line[0] == 'E') {
    fprintf(stderr, "crash: [%s] child error: %s\n", mode_name[m], line + 2);
    *child_error = true;
  } else {
    VIOLATION("[%s] garbled acknowledgement line '%s'", mode_name[m], line);
  }
}

/* One round: start the child, kill it at a random moment, verify. */
static void round_run(struct state *st, enum mode m, int round, uint64_t *rng, bool final) {
  int pfd[2];
  if (pipe(pfd)) {
    perror("pipe");
    exit(2);
  }
  uint64_t child_seed = rng_next(rng);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(2);
  }
  if (pid == 0) {
    close(pfd[0]);
    child_main(st->dir, m, round, child_seed, pfd[1]);
    _exit(0);
  }
  close(pfd[1]);
  /* mostly: a random moment 5-300 ms after the writers started; sometimes
   * during open/migrate/recovery itself */
  bool early = rng_next(rng) % 8 == 0;
  int64_t delay_ms =
      early ? (int64_t)rng_range(rng, 0, 30) : (int64_t)rng_range(rng, 5, (uint64_t)g_max_ms);
  int64_t start = time_mono_us() / 1000, deadline = early ? start + delay_ms : -1;
  bool ready = false, child_error = false, exited = false;
  char acc[8192];
  size_t alen = 0;
  int status = 0;
  for (;;) {
    int64_t now = time_mono_us() / 1000;
    if (deadline >= 0 && now >= deadline) break;
    int wait_ms = deadline >= 0 ? (int)(deadline - now) : 1000;
    struct pollfd p = {pfd[0], POLLIN, 0};
    int pr = poll(&p, 1, wait_ms);
    if (pr < 0 && errno == EINTR) continue;
    if (pr == 0) {
      if (deadline < 0 && time_mono_us() / 1000 - start > 30000) {
        VIOLATION("[%s] round %d: the child never got ready", mode_name[m], round);
        break;
      }
      continue;
    }
    ssize_t n = read(pfd[0], acc + alen, sizeof acc - 1 - alen);
    if (n <= 0) {
      exited = true; /* EOF: the child died on its own */
      break;
    }
    alen += (size_t)n;
    char *line = acc, *nl;
    while ((nl = memchr(line, '\n', alen - (size_t)(line - acc)))) {
      *nl = 0;
      bool was_ready = ready;
      on_line(st, m, line, &ready, &child_error);
      if (ready && !was_ready && deadline < 0) deadline = time_mono_us() / 1000 + delay_ms;
      line = nl + 1;
    }
    alen -= (size_t)(line - acc);
    memmove(acc, line, alen);
  }
  if (!ready) st->kills_before_ready++;
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  /* what the child wrote before dying is still in the pipe */
  for (;;) {
    ssize_t n = read(pfd[0], acc + alen, sizeof acc - 1 - alen);
    if (n <= 0) break;
    alen += (size_t)n;
    char *line = acc, *nl;
    while ((nl = memchr(line, '\n', alen - (size_t)(line - acc)))) {
      *nl = 0;
      on_line(st, m, line, &ready, &child_error);
      line = nl + 1;
    }
    alen -= (size_t)(line - acc);
    memmove(acc, line, alen);
  }
  close(pfd[0]);
  if (alen) VIOLATION("[%s] round %d: partial acknowledgement line", mode_name[m], round);
  if (child_error)
    VIOLATION("[%s] round %d: the child failed (see above)", mode_name[m], round);
  else if (exited && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
    VIOLATION("[%s] round %d: the child died by itself (status %d)", mode_name[m], round, status);
  st->rounds++;
  verify(st, m, final);
}

static int rm_tree(const char *p) {
  struct stat sb;
  if (lstat(p, &sb)) return -1;
  if (S_ISDIR(sb.st_mode)) {
    DIR *d = opendir(p);
    struct dirent *de;
    while (d && (de = readdir(d))) {
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
      char q[4600];
      snprintf(q, sizeof q, "%s/%s", p, de->d_name);
      rm_tree(q);
    }
    if (d) closedir(d);
    return rmdir(p);
  }
  return unlink(p);
}

static size_t count_tmp(const char *dir) {
  char p[2400];
  snprintf(p, sizeof p, "%s/blobs/tmp", dir);
  DIR *d = opendir(p);
  size_t n = 0;
  struct dirent *de;
  while (d && (de = readdir(d)))
    if (de->d_name[0] != '.') n++;
  if (d) closedir(d);
  return n;
}

int main(int argc, char **argv) {
  int rounds = 20;
  uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
  int64_t iv;
  if (argc > 1 && (str_to_i64(argv[1], &iv) || iv < 1 || iv > 65535 || !(rounds = (int)iv))) {
    fprintf(stderr, "usage: %s [ROUNDS] [SEED]\n", argv[0]);
    return 2;
  }
  if (argc > 2 && str_to_u64(argv[2], &seed)) {
    fprintf(stderr, "usage: %s [ROUNDS] [SEED]\n", argv[0]);
    return 2;
  }
  const char *th = getenv("KILN_CRASH_THREADS");
  int64_t tv;
  if (th && str_to_i64(th, &tv) == 0 && tv >= 1 && tv <= MAX_THREADS) g_threads = (int)tv;
  const char *mx = getenv("KILN_CRASH_MAX_MS");
  if (mx && str_to_i64(mx, &tv) == 0 && tv >= 5 && tv <= 600000) g_max_ms = (int)tv;
  if (getenv("KILN_CRASH_SELFTEST")) g_selftest = getenv("KILN_CRASH_SELFTEST");
  if (base_init()) return 2;
  log_set_quiet(true);
  signal(SIGPIPE, SIG_IGN);

  char root[900];
  const char *keep = getenv("KILN_CRASH_DIR");
  if (keep && *keep) {
    str_copy(root, sizeof root, keep);
    mkdir(root, 0750);
  } else {
    str_copy(root, sizeof root, "/tmp/kiln-crash-XXXXXX");
    if (!mkdtemp(root)) {
      perror("mkdtemp");
      return 2;
    }
  }
  uint64_t rng = seed ? seed : 1;
  g_run_id = rng_range(&rng, 1, 32767);
  printf("crash: %d rounds, %d writer threads, seed %llu, data in %s\n", rounds, g_threads,
         (unsigned long long)seed, root);
  fflush(stdout);

  static struct state st[MODE_COUNT];
  for (int m = 0; m < MODE_COUNT; m++) {
    snprintf(st[m].dir, sizeof st[m].dir, "%s/%s", root, mode_name[m]);
    mkdir(st[m].dir, 0750);
  }
  int64_t t0 = time_mono_us();
  /* every third round encrypted; the last round of each mode reads
   * everything back, not only what is new */
  int last[MODE_COUNT] = {-1, -1};
  for (int r = 0; r < rounds; r++) last[r % 3 == 2 ? MODE_ENC : MODE_PLAIN] = r;
  for (int r = 0; r < rounds; r++) {
    enum mode m = r % 3 == 2 ? MODE_ENC : MODE_PLAIN;
    uint64_t before = st[m].acked_puts;
    int vbefore = g_violations;
    round_run(&st[m], m, r, &rng, r == last[m]);
    printf("crash: round %2d [%s] %4llu writes acknowledged, %s\n", r + 1, mode_name[m],
           (unsigned long long)(st[m].acked_puts - before),
           g_violations == vbefore ? "verified" : "VIOLATIONS");
    fflush(stdout);
  }
  uint64_t puts = 0, dels = 0, failed = 0, adopted = 0, early = 0, objects = 0, tmp = 0,
           dangling = 0;
  for (int m = 0; m < MODE_COUNT; m++) {
    puts += st[m].acked_puts;
    dels += st[m].acked_dels;
    failed += st[m].failed_puts;
    adopted += st[m].adopted;
    early += st[m].kills_before_ready;
    objects += st[m].verified.n;
    tmp += count_tmp(st[m].dir);
    dangling += st[m].dangling;
  }
  printf("crash: %d rounds, %llu acknowledged writes verified, %llu lost\n", rounds,
         (unsigned long long)puts, (unsigned long long)g_lost);
  printf("crash: also %llu acknowledged deletes, %llu unacknowledged commits adopted, %llu puts "
         "refused (blob collected first), %llu kills during startup, %llu objects read back, %llu "
         "temp files left by kills (never visible as blobs), %.1f s\n",
         (unsigned long long)dels, (unsigned long long)adopted, (unsigned long long)failed,
         (unsigned long long)early, (unsigned long long)objects, (unsigned long long)tmp,
         (double)(time_mono_us() - t0) / 1e6);
  if (dangling)
    printf(
        "crash: note: %llu unreferenced blob rows have lost their object (a kill between the GC's "
        "unlink and its commit); no reference pointed at them\n",
        (unsigned long long)dangling);
  if (g_violations) {
    printf("crash: FAILED with %d violations; data kept in %s (seed %llu)\n", g_violations, root,
           (unsigned long long)seed);
    return 1;
  }
  if (!(keep && *keep)) rm_tree(root);
  return 0;
}
