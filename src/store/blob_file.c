/* store/blob_file: the local-directory object backend. Objects live at
 * DIR/ab/cd/<name>; writes go to DIR/tmp/ and become visible only through an
 * atomic rename after fsync, so a crash never leaves a partial object. */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Temp files this old were left by a crash (an active upload touches its
 * file on every write); younger ones may belong to another process. */
#define BLOB_FILE_STALE_TMP_S 3600

/* The directory leaves room for "/ab/cd/" and a 200-character name (or the
 * temp names) within PATH_MAX. */
#define BLOB_FILE_DIR_MAX (PATH_MAX - 256)

struct blob_file {
  char dir[BLOB_FILE_DIR_MAX];
};

struct blob_file_tmp {
  int fd;
  bool synced;
  char path[PATH_MAX];
};

struct blob_file_rd {
  int fd;
};

static int blob_file_errno(struct err *e, const char *what, const char *path, int errnum) {
  if (errnum == ENOSPC || errnum == EDQUOT)
    return err_set(e, ERR_UNAVAILABLE, "%s %s: %s", what, path, strerror(errnum));
  return err_set(e, ERR_IO, "%s %s: %s", what, path, strerror(errnum));
}

/* Names come from the codec layer (hex digests) but the table is generic, so
 * refuse anything that could escape the directory or break the sharding. */
static bool blob_file_name_ok(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n < 4 || n > 200 || name[0] == '.') return false;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
          c == '_' || c == '.'))
      return false;
  }
  return true;
}

static int blob_file_path(const struct blob_file *b, const char *name, char *out, size_t cap,
                          struct err *e) {
  if (!blob_file_name_ok(name)) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "bad object name");
  int n = snprintf(out, cap, "%s/%.2s/%.2s/%s", b->dir, name, name + 2, name);
  if (n < 0 || (size_t)n >= cap)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "object path too long");
  return 0;
}

/* A rename or create is durable only once the directory holding the entry is
 * fsync'd. */
static int blob_file_fsync_dir(const char *dir, struct err *e) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return blob_file_errno(e, "open directory", dir, errno);
  int rc = 0;
  if (fsync(fd) != 0 && errno != EINVAL) rc = blob_file_errno(e, "fsync directory", dir, errno);
  close(fd);
  return rc;
}

/* mkdir that tolerates a racing creator; a new entry makes the parent dirty. */
static int blob_file_mkdir(const char *path, const char *parent, struct err *e) {
  if (mkdir(path, 0750) == 0) return parent ? blob_file_fsync_dir(parent, e) : 0;
  if (errno == EEXIST) return 0;
  return blob_file_errno(e, "mkdir", path, errno);
}

static void blob_file_clean_tmp(const char *tmpdir) {
  DIR *d = opendir(tmpdir);
  if (!d) return;
  time_t now = time(NULL);
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.') continue;
    char p[PATH_MAX];
    int n = snprintf(p, sizeof p, "%s/%s", tmpdir, de->d_name);
    if (n < 0 || (size_t)n >= sizeof p) continue;
    struct stat st;
    if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) && now - st.st_mtime > BLOB_FILE_STALE_TMP_S) {
      if (unlink(p) == 0) log_info("blob_tmp_removed", "removed stale temp file %s", p);
    }
  }
  closedir(d);
}

static int blob_file_open(const char *target, void **out, struct err *e) {
  *out = NULL;
  if (!target || !*target)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "blob directory is empty");
  struct blob_file *b = calloc(1, sizeof *b);
  if (!b) return err_set(e, ERR_NO_MEMORY, NULL);
  size_t n = str_copy(b->dir, sizeof b->dir, target);
  if (n >= sizeof b->dir) {
    free(b);
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "blob directory path too long");
  }
  while (n > 1 && b->dir[n - 1] == '/') b->dir[--n] = 0;

  /* Create the directory chain for a fresh data dir ("mkdir -p"). */
  char tmp[PATH_MAX];
  str_copy(tmp, sizeof tmp, b->dir);
  for (char *s = tmp + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    if (mkdir(tmp, 0750) != 0 && errno != EEXIST) {
      int rc = blob_file_errno(e, "mkdir", tmp, errno);
      free(b);
      return rc;
    }
    *s = '/';
  }
  int rc = blob_file_mkdir(b->dir, NULL, e);
  if (rc == 0) {
    snprintf(tmp, sizeof tmp, "%s/tmp", b->dir);
    rc = blob_file_mkdir(tmp, b->dir, e);
  }
  if (rc) {
    free(b);
    return rc;
  }
  struct stat st;
  if (stat(b->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    free(b);
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "blob store %s is not a directory", target);
  }
  blob_file_clean_tmp(tmp);
  *out = b;
  return 0;
}

static void blob_file_close(void *be) { free(be); }

static int blob_file_tmp_create(void *be, void **out, struct err *e) {
  struct blob_file *b = be;
  *out = NULL;
  struct blob_file_tmp *t = calloc(1, sizeof *t);
  if (!t) return err_set(e, ERR_NO_MEMORY, NULL);
  char rnd[33];
  id_random_hex(rnd, 16);
  snprintf(t->path, sizeof t->path, "%s/tmp/%s.tmp", b->dir, rnd);
  t->fd = open(t->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (t->fd < 0) {
    int rc = blob_file_errno(e, "create", t->path, errno);
    free(t);
    return rc;
  }
  *out = t;
  return 0;
}

static int blob_file_write_all(int fd, const void *p, size_t n, off_t off, bool positional,
                               const char *path, struct err *e) {
  const char *s = p;
  while (n > 0) {
    ssize_t w = positional ? pwrite(fd, s, n, off) : write(fd, s, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return blob_file_errno(e, "write", path, errno);
    }
    s += w;
    n -= (size_t)w;
    off += w;
  }
  return 0;
}

static int blob_file_tmp_write(void *tmp, const void *p, size_t n, struct err *e) {
  struct blob_file_tmp *t = tmp;
  t->synced = false;
  return blob_file_write_all(t->fd, p, n, 0, false, t->path, e);
}

static int blob_file_tmp_seal(void *tmp, const void *head, size_t n, struct err *e) {
  struct blob_file_tmp *t = tmp;
  int rc = blob_file_write_all(t->fd, head, n, 0, true, t->path, e);
  if (rc) return rc;
  if (fsync(t->fd) != 0) return blob_file_errno(e, "fsync", t->path, errno);
  t->synced = true;
  return 0;
}

static void blob_file_tmp_abort(void *tmp) {
  struct blob_file_tmp *t = tmp;
  if (!t) return;
  close(t->fd);
  unlink(t->path);
  free(t);
}

static int blob_file_tmp_commit(void *be, void *tmp, const char *name, struct err *e) {
  struct blob_file *b = be;
  struct blob_file_tmp *t = tmp;
  char final[PATH_MAX], d1[PATH_MAX], d2[PATH_MAX];
  int rc = blob_file_path(b, name, final, sizeof final, e);
  if (rc) goto fail;
  snprintf(d1, sizeof d1, "%s/%.2s", b->dir, name);
  snprintf(d2, sizeof d2, "%s/%.2s/%.2s", b->dir, name, name + 2);
  if (!t->synced && fsync(t->fd) != 0) {
    rc = blob_file_errno(e, "fsync", t->path, errno);
    goto fail;
  }
  if ((rc = blob_file_mkdir(d1, b->dir, e)) || (rc = blob_file_mkdir(d2, d1, e))) goto fail;
  if (rename(t->path, final) != 0) {
    rc = blob_file_errno(e, "rename", final, errno);
    goto fail;
  }
  close(t->fd);
  free(t);
  return blob_file_fsync_dir(d2, e);
fail:
  blob_file_tmp_abort(t);
  return rc;
}

static int blob_file_exists(void *be, const char *name) {
  char p[PATH_MAX];
  if (blob_file_path(be, name, p, sizeof p, NULL)) return 0;
  struct stat st;
  if (stat(p, &st) == 0) return S_ISREG(st.st_mode) ? 1 : 0;
  return errno == ENOENT ? 0 : -ERR_IO;
}

static int blob_file_read_open(void *be, const char *name, void **out, struct err *e) {
  *out = NULL;
  char p[PATH_MAX];
  int rc = blob_file_path(be, name, p, sizeof p, e);
  if (rc) return rc;
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "object %s does not exist", name);
    return blob_file_errno(e, "open", p, errno);
  }
  struct blob_file_rd *r = malloc(sizeof *r);
  if (!r) {
    close(fd);
    return err_set(e, ERR_NO_MEMORY, NULL);
  }
  (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  r->fd = fd;
  *out = r;
  return 0;
}

static ssize_t blob_file_read(void *rd, void *p, size_t n, struct err *e) {
  struct blob_file_rd *r = rd;
  for (;;) {
    ssize_t got = read(r->fd, p, n);
    if (got >= 0) return got;
    if (errno != EINTR) return err_set(e, ERR_IO, "read blob object: %s", strerror(errno));
  }
}

static void blob_file_read_close(void *rd) {
  struct blob_file_rd *r = rd;
  if (!r) return;
  close(r->fd);
  free(r);
}

static int blob_file_remove(void *be, const char *name, struct err *e) {
  char p[PATH_MAX];
  int rc = blob_file_path(be, name, p, sizeof p, e);
  if (rc) return rc;
  if (unlink(p) != 0 && errno != ENOENT) return blob_file_errno(e, "unlink", p, errno);
  return 0;
}

const struct blob_backend blob_backend_file = {
    .version = BLOB_BACKEND_VERSION,
    .name = "file",
    .open = blob_file_open,
    .close = blob_file_close,
    .tmp_create = blob_file_tmp_create,
    .tmp_write = blob_file_tmp_write,
    .tmp_seal = blob_file_tmp_seal,
    .tmp_commit = blob_file_tmp_commit,
    .tmp_abort = blob_file_tmp_abort,
    .exists = blob_file_exists,
    .read_open = blob_file_read_open,
    .read = blob_file_read,
    .read_close = blob_file_read_close,
    .remove = blob_file_remove,
};
