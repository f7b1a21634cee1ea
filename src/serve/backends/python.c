/* serve/backends/python: pickle, joblib and TorchScript models, each served by
 * a pool of isolated Python worker processes (kiln_worker.py, embedded) that
 * speak frames (serve/frame.c) over a socketpair. The server never unpickles. */
#include "serve/serve.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern const char serve_worker_py[]; /* build/gen/worker_py.c, from kiln_worker.py */

#define PY_MAX_WORKERS 64
#define PY_LOAD_TIMEOUT_MS 120000 /* importing torch on a busy machine takes seconds */
#define PY_TERM_GRACE_MS 1000
#define PY_EXIT_GRACE_MS 200 /* a worker that closed its socket should be gone by then */
#define PY_HELLO_MAX (64u << 20)
#define PY_CRASH_LIMIT 3
#define PY_CRASH_WINDOW_US (60 * 1000000ll)
#define PY_NOFILE 64

/* Only these reach a worker: the server's environment may hold secrets
 * (KILN_MASTER_KEY, cloud credentials), and one thread each keeps a pool
 * of workers from oversubscribing the cores. */
static const char *const worker_env[] = {
    "PATH=/usr/bin:/bin",     "LANG=C.UTF-8",      "HOME=/nonexistent",         "OMP_NUM_THREADS=1",
    "OPENBLAS_NUM_THREADS=1", "MKL_NUM_THREADS=1", "PYTHONDONTWRITEBYTECODE=1", NULL};

struct pyworker {
  pid_t pid; /* 0: not running (guarded by model mu: describe reads it) */
  int fd;    /* the server's end; only the predict thread of this instance uses it */
  int restarts;
  bool started;     /* ran once: the next start is a restart */
  bool starting;    /* forked, its hello not read yet (it is loading the model) */
  int net_isolated; /* 1, 0, or -1 before the first start */
};

struct pymodel {
  char *path, *format, *python, *script, *name, *version;
  const char *argv[8];
  uint64_t mem_limit;
  int64_t cpu_s, timeout_ms, load_timeout_ms;
  int n;
  struct pyworker *w;
  pthread_mutex_t mu;
  int64_t crash_at[PY_CRASH_LIMIT]; /* ring of the last crash times */
  int ncrash;
  bool degraded;
  char why[200];
  bool torch, proba, margin;
  char device[16], model_type[64], pyver[32];
  int nout; /* signature outputs, for naming what workers answer */
  char (*out_names)[SERVE_NAME_MAX];
  struct metric_series *restart_metric;
};

/* ---- spawning ----------------------------------------------------------------
 * PR_SET_PDEATHSIG fires when the *thread* that forked exits, not the
 * process, and workers are started from loader and executor threads that
 * come and go. So every fork happens on one spawner thread that lives as
 * long as the process: a worker dies with the server and not before. */
struct spawn_req {
  const char *exe;
  const char *const *argv;
  int child_fd;
  uint64_t mem_limit;
  int64_t cpu_s;
  pid_t pid;
  int err;
  bool done;
};

static pthread_mutex_t spawn_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t spawn_cv = PTHREAD_COND_INITIALIZER;
static struct spawn_req *spawn_slot;
static bool spawner_up;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* A forked copy of the server has no spawner thread. */
static void spawn_atfork_child(void) {
  pthread_mutex_init(&spawn_mu, NULL);
  pthread_cond_init(&spawn_cv, NULL);
  spawn_slot = NULL;
  spawner_up = false;
}
static void spawn_atfork_register(void) { pthread_atfork(NULL, NULL, spawn_atfork_child); }

static void close_from(int lo) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, (unsigned)lo, ~0u, 0u) == 0) return;
#endif
  struct rlimit rl;
  long hi = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? (long)rl.rlim_cur
                                                                               : 65536;
  for (long fd = lo; fd < hi; fd++) close((int)fd);
}

static void set_limit(int res, uint64_t soft, uint64_t hard) {
  struct rlimit rl = {(rlim_t)soft, (rlim_t)hard};
  setrlimit(res, &rl);
}

/* The child between fork and exec: async-signal-safe calls only (the
 * server is multithreaded). Never returns. */
static void child_exec(const struct spawn_req *r, pid_t parent) {
  setpgid(0, 0); /* its own group: a timeout kills whatever it started too */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; s++) sigaction(s, &dfl, NULL); /* ignored signals would survive exec */
  if (r->child_fd == 3) {
    if (fcntl(3, F_SETFD, 0) != 0) _exit(126);
  } else if (dup2(r->child_fd, 3) != 3) {
    _exit(126);
  }
  int nul = open("/dev/null", O_RDWR);
  if (nul < 0) _exit(126);
  for (int fd = 0; fd < 3; fd++)
    if (nul != fd) dup2(nul, fd);
  if (nul > 3) close(nul);
  close_from(4);
  if (r->mem_limit) set_limit(RLIMIT_AS, r->mem_limit, r->mem_limit);
  /* SIGXCPU at the soft limit lets the worker finish its answer and retire;
   * the hard limit a little later kills one stuck in native code. */
  if (r->cpu_s > 0) set_limit(RLIMIT_CPU, (uint64_t)r->cpu_s, (uint64_t)r->cpu_s + 5);
  set_limit(RLIMIT_NOFILE, PY_NOFILE, PY_NOFILE);
  set_limit(RLIMIT_CORE, 0, 0);
  /* No network: an empty network namespace (root may create one; others
   * through a user namespace). Where neither is allowed it goes on, and
   * describe() says network_isolated false. */
  if (unshare(CLONE_NEWNET) != 0) unshare(CLONE_NEWUSER | CLONE_NEWNET);
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  /* after unshare: a credential change clears the death signal */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(125);
  execve(r->exe, (char *const *)r->argv, (char *const *)worker_env);
  _exit(127);
}

static void *spawner_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&spawn_mu);
  for (;;) {
    while (!spawn_slot || spawn_slot->done) pthread_cond_wait(&spawn_cv, &spawn_mu);
    struct spawn_req *r = spawn_slot;
    pthread_mutex_unlock(&spawn_mu);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) child_exec(r, parent);
    r->err = pid < 0 ? errno : 0;
    if (pid > 0) setpgid(pid, pid); /* also here, so a kill right away finds the group */
    pthread_mutex_lock(&spawn_mu);
    r->pid = pid > 0 ? pid : 0;
    r->done = true;
    pthread_cond_broadcast(&spawn_cv);
  }
  return NULL;
}

static int spawn(struct spawn_req *r, struct err *e) {
  pthread_once(&atfork_once, spawn_atfork_register);
  pthread_mutex_lock(&spawn_mu);
  if (!spawner_up) {
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 * 1024);
    int rc = pthread_create(&t, &at, spawner_main, NULL);
    pthread_attr_destroy(&at);
    if (rc != 0) {
      pthread_mutex_unlock(&spawn_mu);
      return err_set(e, ERR_UNAVAILABLE, "cannot start the worker spawner thread: %s",
                     strerror(rc));
    }
    spawner_up = true;
  }
  while (spawn_slot) pthread_cond_wait(&spawn_cv, &spawn_mu);
  spawn_slot = r;
  pthread_cond_broadcast(&spawn_cv);
  while (!r->done) pthread_cond_wait(&spawn_cv, &spawn_mu);
  spawn_slot = NULL;
  pthread_cond_broadcast(&spawn_cv);
  pthread_mutex_unlock(&spawn_mu);
  if (!r->pid)
    return err_set(e, ERR_UNAVAILABLE, "cannot start a worker process: %s", strerror(r->err));
  return 0;
}

/* ---- socket I/O with a deadline --------------------------------------------- */
enum io_res { IO_OK, IO_EOF, IO_TIMEOUT, IO_ERR, IO_BIG, IO_NOMEM, IO_BAD };

static int ms_left(int64_t deadline_us) {
  int64_t left = deadline_us - time_mono_us();
  if (left <= 0) return 0;
  left = (left + 999) / 1000;
  return left > INT_MAX ? INT_MAX : (int)left;
}

static enum io_res io_wait(int fd, short ev, int64_t deadline_us) {
  for (;;) {
    int ms = ms_left(deadline_us);
    if (ms == 0) return IO_TIMEOUT;
    struct pollfd p = {fd, ev, 0};
    int r = poll(&p, 1, ms);
    if (r > 0) return IO_OK; /* ready, hung up or failed: the next call tells */
    if (r == 0) return IO_TIMEOUT;
    if (errno != EINTR) return IO_ERR;
  }
}

static enum io_res read_full(int fd, char *p, size_t n, int64_t deadline_us) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, p + got, n - got);
    if (r > 0) {
      got += (size_t)r;
    } else if (r == 0) {
      return IO_EOF;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      enum io_res w = io_wait(fd, POLLIN, deadline_us);
      if (w != IO_OK) return w;
    } else if (errno != EINTR) {
      return errno == ECONNRESET ? IO_EOF : IO_ERR;
    }
  }
  return IO_OK;
}

static enum io_res write_full(int fd, const char *p, size_t n, int64_t deadline_us) {
  size_t put = 0;
  while (put < n) {
    ssize_t r = send(fd, p + put, n - put, MSG_NOSIGNAL);
    if (r >= 0) {
      put += (size_t)r;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      enum io_res w = io_wait(fd, POLLOUT, deadline_us);
      if (w != IO_OK) return w;
    } else if (errno != EINTR) {
      return errno == EPIPE || errno == ECONNRESET ? IO_EOF : IO_ERR;
    }
  }
  return IO_OK;
}

/* One frame body (after its length) into *body (malloc'd). */
static enum io_res read_frame(int fd, size_t max, char **body, size_t *n, int64_t deadline_us) {
  char len[4];
  enum io_res r = read_full(fd, len, 4, deadline_us);
  if (r != IO_OK) return r;
  const unsigned char *u = (const unsigned char *)len;
  uint32_t l = (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
  if (l < 4 || l > max) return IO_BIG;
  char *b = malloc(l);
  if (!b) return IO_NOMEM;
  r = read_full(fd, b, l, deadline_us);
  if (r != IO_OK) {
    free(b);
    return r;
  }
  *body = b;
  *n = l;
  return IO_OK;
}

/* ---- worker lifecycle --------------------------------------------------------- */

/* How a worker ended, for messages: its wait status and the CPU time it
 * used (a SIGKILL at the hard RLIMIT_CPU looks like any other kill). */
struct ended {
  int st;
  double cpu_s;
};

static void status_text(struct ended en, int64_t cpu_limit, char *out, size_t cap) {
  int st = en.st;
  if (WIFSIGNALED(st)) {
    const char *abbr = sigabbrev_np(WTERMSIG(st));
    snprintf(out, cap, "was killed by signal %d (SIG%s)", WTERMSIG(st), abbr ? abbr : "?");
    /* the kernel kills at the hard limit (soft + 5 s); rusage reads a
     * little under the kernel's own count, hence the margin */
    if (WTERMSIG(st) == SIGXCPU ||
        (cpu_limit > 0 && WTERMSIG(st) == SIGKILL && en.cpu_s >= (double)cpu_limit + 3))
      snprintf(out + strlen(out), cap - strlen(out), " at its CPU-time limit (%lld s)",
               (long long)cpu_limit);
  } else if (WIFEXITED(st)) {
    snprintf(out, cap, "exited with status %d", WEXITSTATUS(st));
  } else {
    snprintf(out, cap, "ended (wait status %d)", st);
  }
}

/* Reaps pid; when it does not end on its own within grace_ms (0: kill at
 * once) its group is killed. */
static struct ended reap(pid_t pid, int grace_ms) {
  struct ended en = {0, 0};
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  int64_t until = time_mono_us() + (int64_t)grace_ms * 1000;
  bool done = false;
  while (grace_ms > 0 && !done) {
    pid_t r = wait4(pid, &en.st, WNOHANG, &ru);
    if (r == pid)
      done = true;
    else if (r < 0 && errno != EINTR)
      return en; /* not ours any more: nothing to wait for */
    else if (time_mono_us() >= until)
      break;
    else
      usleep(5000);
  }
  if (!done) {
    killpg(pid, SIGKILL);
    kill(pid, SIGKILL);
    while (wait4(pid, &en.st, 0, &ru) < 0)
      if (errno != EINTR) return en;
  }
  en.cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
             ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
  return en;
}

/* Closes the socket and reaps w's process; how gets the way it ended. */
static struct ended worker_stop(struct pymodel *m, struct pyworker *w, int grace_ms, char *how,
                                size_t cap) {
  pthread_mutex_lock(&m->mu);
  pid_t pid = w->pid;
  w->pid = 0;
  pthread_mutex_unlock(&m->mu);
  if (w->fd >= 0) close(w->fd);
  w->fd = -1;
  if (pid <= 0) {
    if (how) snprintf(how, cap, "was not running");
    return (struct ended){0, 0};
  }
  struct ended en = reap(pid, grace_ms);
  if (how) status_text(en, m->cpu_s, how, cap);
  return en;
}

static void crash_note(struct pymodel *m, const char *how) {
  pthread_mutex_lock(&m->mu);
  int64_t now = time_mono_us();
  m->crash_at[m->ncrash % PY_CRASH_LIMIT] = now;
  m->ncrash++;
  if (!m->degraded && m->ncrash >= PY_CRASH_LIMIT &&
      now - m->crash_at[m->ncrash % PY_CRASH_LIMIT] <= PY_CRASH_WINDOW_US) {
    m->degraded = true;
    snprintf(m->why, sizeof m->why,
             "its worker processes failed %d times within %lld s (last: the worker %s)",
             PY_CRASH_LIMIT, PY_CRASH_WINDOW_US / 1000000, how);
  }
  pthread_mutex_unlock(&m->mu);
  log_warn("serve.worker_failed", "model %s version %s: worker %s", m->name, m->version, how);
}

/* True when pid sits in a network namespace other than the server's. */
static int net_isolated(pid_t pid) {
  char p[64], mine[128], theirs[128];
  snprintf(p, sizeof p, "/proc/%d/ns/net", (int)pid);
  ssize_t a = readlink("/proc/self/ns/net", mine, sizeof mine - 1);
  ssize_t b = readlink(p, theirs, sizeof theirs - 1);
  if (a <= 0 || b <= 0) return 0;
  mine[a] = theirs[b] = 0;
  return strcmp(mine, theirs) != 0;
}

/* Forks worker i (no wait for its hello). */
static int worker_spawn(struct pymodel *m, int i, pid_t *pid, int *fd, struct err *e) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return err_set(e, errno == EMFILE || errno == ENFILE ? ERR_UNAVAILABLE : ERR_INTERNAL,
                   "cannot make a worker socket: %s", strerror(errno));
  struct spawn_req r = {.exe = m->python,
                        .argv = m->argv,
                        .child_fd = sv[1],
                        .mem_limit = m->mem_limit,
                        .cpu_s = m->cpu_s};
  int rc = spawn(&r, e);
  close(sv[1]);
  if (rc) {
    close(sv[0]);
    return rc;
  }
  int fl = fcntl(sv[0], F_GETFL);
  if (fl < 0 || fcntl(sv[0], F_SETFL, fl | O_NONBLOCK) != 0) {
    close(sv[0]);
    reap(r.pid, 0);
    return err_set(e, ERR_INTERNAL, "cannot configure a worker socket: %s", strerror(errno));
  }
  (void)i;
  *pid = r.pid;
  *fd = sv[0];
  return 0;
}

/* Waits for the hello frame of a freshly spawned worker. On success *hello
 * gets it; on failure the process is reaped and e says why. */
static int worker_hello(struct pymodel *m, pid_t pid, int fd, json_t **hello, struct err *e) {
  char *body = NULL;
  size_t n = 0;
  enum io_res r =
      read_frame(fd, PY_HELLO_MAX, &body, &n, time_mono_us() + m->load_timeout_ms * 1000);
  char how[128];
  if (r != IO_OK) {
    struct ended en = reap(pid, r == IO_EOF ? PY_EXIT_GRACE_MS : 0);
    int st = en.st;
    status_text(en, m->cpu_s, how, sizeof how);
    if (r == IO_TIMEOUT)
      return err_set(e, ERR_UNAVAILABLE,
                     "the model could not be loaded: its worker did not answer within %lld s",
                     (long long)(m->load_timeout_ms / 1000));
    if (r == IO_NOMEM) return err_set(e, ERR_NO_MEMORY, "out of memory for a worker's hello");
    if (r == IO_EOF && WIFEXITED(st) && WEXITSTATUS(st) == 127)
      return err_set(e, ERR_INTERNAL,
                     "cannot start the Python interpreter %s for the model's worker", m->python);
    if (r == IO_EOF)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                     "the model could not be loaded: its worker process %s", how);
    return err_set(e, ERR_INTERNAL, "the model's worker answered a malformed hello");
  }
  json_t *h = NULL;
  struct serve_tensor *t = NULL;
  int nt = 0;
  struct err fe = {0};
  int rc = serve_frame_decode(body, n, &h, &t, &nt, &fe);
  free(body);
  free(t);
  if (rc) {
    reap(pid, 0);
    return err_set(e, ERR_INTERNAL, "the model's worker answered a malformed hello: %s", fe.msg);
  }
  if (!json_is_true(json_object_get(h, "ok"))) {
    const char *msg = json_string_value(json_object_get(h, "error"));
    rc = err_set(e, ERR_INVALID_PARAMETER_VALUE, "the model could not be loaded: %s",
                 msg ? msg : "no reason given");
    json_decref(h);
    reap(pid, PY_TERM_GRACE_MS);
    return rc;
  }
  *hello = h;
  return 0;
}

/* Forks worker i; worker_ready reads its hello later, so load starts all
 * its workers' imports at once and a retired worker's successor loads
 * while the next request is on its way. */
static int worker_launch(struct pymodel *m, int i, struct err *e) {
  pid_t pid = 0;
  int fd = -1;
  int rc = worker_spawn(m, i, &pid, &fd, e);
  if (rc) return rc;
  struct pyworker *w = &m->w[i];
  pthread_mutex_lock(&m->mu);
  if (w->started) {
    w->restarts++;
    if (m->restart_metric) metrics_add(m->restart_metric, 1);
  }
  w->started = true;
  w->starting = true;
  w->pid = pid;
  w->fd = fd;
  pthread_mutex_unlock(&m->mu);
  return 0;
}

/* Waits for a launched worker's hello (*hello gets it when asked). On
 * failure the worker is gone (reaped) and e says why. */
static int worker_ready(struct pymodel *m, int i, json_t **hello, struct err *e) {
  struct pyworker *w = &m->w[i];
  json_t *h = NULL;
  int rc = worker_hello(m, w->pid, w->fd, &h, e);
  pthread_mutex_lock(&m->mu);
  w->starting = false;
  if (rc) {
    w->pid = 0; /* reaped by worker_hello */
  } else {
    w->net_isolated = net_isolated(w->pid);
  }
  pthread_mutex_unlock(&m->mu);
  if (rc) {
    close(w->fd);
    w->fd = -1;
    return rc;
  }
  if (hello)
    *hello = h;
  else
    json_decref(h);
  return 0;
}

/* ---- signatures ------------------------------------------------------------
 * A pickled model says little about itself; the worker's hello gives
 * n_features_in_, feature_names_in_, classes_ and (from one zero row) the
 * output types. The registry's signature (the MLflow form a user gave, or
 * an MLmodel's) refines what the model leaves open. */

static json_t *reg_list(const json_t *reg, const char *key) {
  const json_t *v = json_object_get(reg, key);
  if (json_is_array(v)) return json_incref((json_t *)v);
  if (json_is_string(v)) {
    json_t *p = json_parse(json_string_value(v), json_string_length(v), NULL);
    if (json_is_array(p)) return p;
    json_decref(p);
  }
  return NULL;
}

static int numpy_dtype(const char *s, enum serve_dtype *out) {
  static const struct {
    const char *name;
    enum serve_dtype dt;
  } map[] = {{"float64", SERVE_FP64},  {"double", SERVE_FP64},   {"float32", SERVE_FP32},
             {"float", SERVE_FP32},    {"float16", SERVE_FP16},  {"int64", SERVE_INT64},
             {"long", SERVE_INT64},    {"int32", SERVE_INT32},   {"integer", SERVE_INT32},
             {"int16", SERVE_INT16},   {"int8", SERVE_INT8},     {"uint8", SERVE_UINT8},
             {"uint16", SERVE_UINT16}, {"uint32", SERVE_UINT32}, {"uint64", SERVE_UINT64},
             {"bool", SERVE_BOOL},     {"boolean", SERVE_BOOL},  {"str", SERVE_BYTES},
             {"string", SERVE_BYTES},  {"object", SERVE_BYTES},  {"binary", SERVE_BYTES},
             {"bytes", SERVE_BYTES}};
  if (!s) return -1;
  for (size_t i = 0; i < sizeof map / sizeof *map; i++)
    if (strcmp(s, map[i].name) == 0) {
      *out = map[i].dt;
      return 0;
    }
  return serve_dtype_parse(s, out);
}

/* One registry entry as a tensor spec; *column set when it is a named
 * column of a table rather than a tensor. 0 or -1 (unusable). */
static int reg_spec(const json_t *v, struct serve_tensor_spec *sp, bool *column) {
  memset(sp, 0, sizeof *sp);
  *column = false;
  if (!json_is_object(v)) return -1;
  const char *type = json_string_value(json_object_get(v, "type"));
  const char *name = json_string_value(json_object_get(v, "name"));
  const json_t *ts = json_object_get(v, "tensor-spec");
  const json_t *src = json_is_object(ts) ? ts : v;
  const char *dt = json_string_value(json_object_get(src, "dtype"));
  if (type &&
      strcmp(type, "tensor") != 0) { /* an MLflow column spec: {"type": "double", "name": ...} */
    if (!name || numpy_dtype(type, &sp->dtype) != 0) return -1;
    *column = true;
  } else if (numpy_dtype(dt, &sp->dtype) != 0) {
    return -1;
  }
  if (name && strlen(name) >= SERVE_NAME_MAX) return -1;
  str_copy(sp->name, sizeof sp->name, name ? name : "");
  const json_t *shape = json_object_get(src, "shape");
  sp->ndim = -1;
  if (json_is_array(shape) && json_array_size(shape) <= SERVE_MAX_DIMS) {
    sp->ndim = (int)json_array_size(shape);
    for (int d = 0; d < sp->ndim; d++) {
      const json_t *x = json_array_get(shape, (size_t)d);
      sp->shape[d] = json_is_integer(x) && json_integer_value(x) >= 0 ? json_integer_value(x) : -1;
    }
  }
  return 0;
}

struct reg_view {
  int nin, nout;
  struct serve_tensor_spec in[SERVE_V2_MAX_INPUTS], out[SERVE_V2_MAX_INPUTS];
  bool in_columns; /* every input is a named column */
};

static void reg_read(const json_t *reg, struct reg_view *rv) {
  memset(rv, 0, sizeof *rv);
  if (!json_is_object(reg)) return;
  json_t *in = reg_list(reg, "inputs"), *out = reg_list(reg, "outputs");
  size_t i;
  json_t *v;
  bool cols = true, ok = in != NULL;
  json_array_foreach(in, i, v) {
    bool col;
    if (rv->nin >= SERVE_V2_MAX_INPUTS || reg_spec(v, &rv->in[rv->nin], &col) != 0) {
      ok = false;
      break;
    }
    cols = cols && col;
    rv->nin++;
  }
  if (!ok) rv->nin = 0;
  rv->in_columns = rv->nin > 0 && cols;
  ok = out != NULL;
  json_array_foreach(out, i, v) {
    bool col;
    if (rv->nout >= SERVE_V2_MAX_INPUTS || reg_spec(v, &rv->out[rv->nout], &col) != 0) {
      ok = false;
      break;
    }
    rv->nout++;
  }
  if (!ok) rv->nout = 0;
  json_decref(in);
  json_decref(out);
}

static int sig_alloc(struct serve_signature *sig, int nin, int nout, struct err *e) {
  sig->inputs = calloc((size_t)nin, sizeof *sig->inputs);
  sig->outputs = calloc((size_t)nout, sizeof *sig->outputs);
  if (!sig->inputs || !sig->outputs)
    return err_set(e, ERR_NO_MEMORY, "out of memory for a signature");
  sig->ninputs = nin;
  sig->noutputs = nout;
  return 0;
}

static int sig_columns(struct serve_signature *sig, const char *const *names, int n,
                       struct err *e) {
  sig->columns = calloc((size_t)n, sizeof *sig->columns);
  if (!sig->columns) return err_set(e, ERR_NO_MEMORY, "out of memory for column names");
  sig->ncolumns = n;
  for (int i = 0; i < n; i++)
    if (!(sig->columns[i] = strdup(names[i])))
      return err_set(e, ERR_NO_MEMORY, "out of memory for column names");
  return 0;
}

static void spec_set(struct serve_tensor_spec *sp, const char *name, enum serve_dtype dt, int ndim,
                     int64_t d0, int64_t d1) {
  memset(sp, 0, sizeof *sp);
  str_copy(sp->name, sizeof sp->name, name);
  sp->dtype = dt;
  sp->ndim = ndim;
  if (ndim > 0) sp->shape[0] = d0;
  if (ndim > 1) sp->shape[1] = d1;
}

/* The predictions' type when the probe could not tell: labels like the
 * classes, values otherwise. */
static enum serve_dtype classes_dtype(const json_t *classes) {
  if (!json_is_array(classes) || !json_array_size(classes)) return SERVE_FP64;
  bool ints = true, strs = true, bools = true;
  size_t i;
  json_t *v;
  json_array_foreach(classes, i, v) {
    ints = ints && json_is_integer(v);
    strs = strs && json_is_string(v);
    bools = bools && json_is_boolean(v);
  }
  return bools ? SERVE_BOOL : ints ? SERVE_INT64 : strs ? SERVE_BYTES : SERVE_FP64;
}

static void probe_spec(const json_t *probe, struct serve_tensor_spec *sp) {
  enum serve_dtype dt;
  const json_t *shape = json_object_get(probe, "shape");
  if (!json_is_object(probe) ||
      serve_dtype_parse(json_string_value(json_object_get(probe, "datatype")), &dt) != 0 ||
      !json_is_array(shape) || json_array_size(shape) < 1 ||
      json_array_size(shape) > SERVE_MAX_DIMS)
    return;
  sp->dtype = dt;
  sp->ndim = (int)json_array_size(shape);
  for (int d = 0; d < sp->ndim; d++) {
    const json_t *x = json_array_get(shape, (size_t)d);
    sp->shape[d] = d == 0 || !json_is_integer(x) ? -1 : json_integer_value(x);
  }
}

static int sig_sklearn(const json_t *h, const struct reg_view *rv, struct serve_signature *sig,
                       struct err *e) {
  int64_t nf = json_is_integer(json_object_get(h, "n_features_in"))
                   ? json_integer_value(json_object_get(h, "n_features_in"))
                   : -1;
  if (nf <= 0 || nf > INT32_MAX) nf = -1;
  const json_t *fn = json_object_get(h, "feature_names");
  int rc = sig_alloc(sig, 1, 1, e);
  if (rc) return rc;
  if (json_is_array(fn) && json_array_size(fn) == (size_t)nf) {
    const char **names = calloc((size_t)nf, sizeof *names);
    if (!names) return err_set(e, ERR_NO_MEMORY, "out of memory for column names");
    bool ok = true;
    for (int64_t i = 0; i < nf; i++)
      ok = ok && (names[i] = json_string_value(json_array_get(fn, (size_t)i)));
    rc = ok ? sig_columns(sig, names, (int)nf, e) : 0;
    free(names);
    if (rc) return rc;
  } else if (rv->in_columns && (nf < 0 || nf == rv->nin)) {
    const char *names[SERVE_V2_MAX_INPUTS];
    for (int i = 0; i < rv->nin; i++) names[i] = rv->in[i].name;
    if ((rc = sig_columns(sig, names, rv->nin, e))) return rc;
    nf = rv->nin;
  } else if (nf < 0 && rv->nin == 1 && rv->in[0].ndim == 2 && rv->in[0].shape[1] > 0) {
    nf = rv->in[0].shape[1];
  }
  spec_set(&sig->inputs[0], "input", SERVE_FP64, 2, -1, nf);
  const json_t *classes = json_object_get(h, "classes");
  spec_set(&sig->outputs[0], "predictions", classes_dtype(classes), 1, -1, 0);
  probe_spec(json_object_get(h, "probe_predict"), &sig->outputs[0]);
  if (json_is_array(classes)) sig->classes = json_incref((json_t *)classes);
  sig->batched = true;
  return 0;
}

static int sig_torch(const json_t *h, const struct reg_view *rv, struct serve_signature *sig,
                     struct err *e) {
  int rc;
  if (rv->nin > 0 && rv->in_columns) {
    if ((rc = sig_alloc(sig, 1, 1, e))) return rc;
    const char *names[SERVE_V2_MAX_INPUTS];
    for (int i = 0; i < rv->nin; i++) names[i] = rv->in[i].name;
    if ((rc = sig_columns(sig, names, rv->nin, e))) return rc;
    spec_set(&sig->inputs[0], "input", SERVE_FP32, 2, -1, rv->nin);
  } else if (rv->nin > 0) {
    if ((rc = sig_alloc(sig, rv->nin, 1, e))) return rc;
    for (int i = 0; i < rv->nin; i++) {
      sig->inputs[i] = rv->in[i];
      if (!sig->inputs[i].name[0]) {
        if (rv->nin == 1)
          str_copy(sig->inputs[i].name, SERVE_NAME_MAX, "input");
        else
          snprintf(sig->inputs[i].name, SERVE_NAME_MAX, "input_%d", i);
      }
    }
  } else {
    /* TorchScript keeps its argument names but not their types or shapes */
    const json_t *names = json_object_get(h, "input_names");
    size_t k = json_is_array(names) ? json_array_size(names) : 0;
    if (k > SERVE_V2_MAX_INPUTS)
      return err_set(e, ERR_INVALID_PARAMETER_VALUE, "the model takes %zu inputs", k);
    if (k <= 1) {
      if ((rc = sig_alloc(sig, 1, 1, e))) return rc;
      spec_set(&sig->inputs[0], "input", SERVE_FP32, 2, -1, -1);
    } else {
      if ((rc = sig_alloc(sig, (int)k, 1, e))) return rc;
      for (size_t i = 0; i < k; i++) {
        const char *nm = json_string_value(json_array_get(names, i));
        char def[32];
        snprintf(def, sizeof def, "input_%zu", i);
        spec_set(&sig->inputs[i], nm && strlen(nm) < SERVE_NAME_MAX ? nm : def, SERVE_FP32, -1, 0,
                 0);
      }
    }
  }
  if (rv->nout > 0) {
    free(sig->outputs);
    if (!(sig->outputs = calloc((size_t)rv->nout, sizeof *sig->outputs)))
      return err_set(e, ERR_NO_MEMORY, "out of memory for a signature");
    sig->noutputs = rv->nout;
    for (int i = 0; i < rv->nout; i++) {
      sig->outputs[i] = rv->out[i];
      if (!sig->outputs[i].name[0]) {
        if (rv->nout == 1)
          str_copy(sig->outputs[i].name, SERVE_NAME_MAX, "predictions");
        else
          snprintf(sig->outputs[i].name, SERVE_NAME_MAX, "output_%d", i);
      }
    }
  } else {
    spec_set(&sig->outputs[0], "predictions", SERVE_FP32, -1, 0, 0);
  }
  sig->batched = true;
  for (int i = 0; i < sig->ninputs; i++)
    if (sig->inputs[i].ndim < 1 || sig->inputs[i].shape[0] != -1) sig->batched = false;
  return 0;
}

/* ---- the backend -------------------------------------------------------------- */

static void model_free(struct pymodel *m) {
  if (!m) return;
  free(m->w);
  free(m->out_names);
  free(m->path);
  free(m->format);
  free(m->python);
  free(m->script);
  free(m->name);
  free(m->version);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

static void py_unload(void *model) {
  struct pymodel *m = model;
  if (!m) return;
  /* all at once, so the grace periods overlap instead of adding up */
  for (int i = 0; i < m->n; i++) {
    if (m->w[i].fd >= 0) close(m->w[i].fd); /* EOF: an idle worker exits by itself */
    m->w[i].fd = -1;
    if (m->w[i].pid > 0) killpg(m->w[i].pid, SIGTERM);
  }
  for (int i = 0; i < m->n; i++) worker_stop(m, &m->w[i], PY_TERM_GRACE_MS, NULL, 0);
  model_free(m);
}

static struct metric_series *restart_series(const struct serve_load_opts *o) {
  static const char *const labels[] = {"model", "version"};
  struct metric_family *f =
      metrics_family("kiln_serve_worker_restarts_total",
                     "Python worker processes restarted after a crash, a timeout "
                     "or their CPU-time limit",
                     METRIC_COUNTER, 2, labels, NULL, 0);
  const char *values[] = {o->model_name ? o->model_name : "",
                          o->model_version ? o->model_version : ""};
  return metrics_series(f, values);
}

static char *dup_or(const char *s, const char *dflt) { return strdup(s ? s : dflt); }

static int py_load(const struct serve_load_opts *o, void **model, struct serve_signature *sig,
                   struct err *e) {
  *model = NULL;
  if (!o || !o->path || !o->format || !o->cfg)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "the python backend needs a model file, a format and settings");
  const struct serve_config *cfg = o->cfg;
  bool torch = strcmp(o->format, "torchscript") == 0;
  if (!torch && strcmp(o->format, "pickle") != 0 && strcmp(o->format, "joblib") != 0)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE,
                   "the python backend does not serve '%.64s' models", o->format);
  const char *python = cfg->python && cfg->python[0] ? cfg->python : "/usr/bin/python3";
  if (python[0] != '/' || access(python, X_OK) != 0)
    return err_set(e, ERR_INVALID_STATE,
                   "the Python interpreter for model workers (%.200s) is not an executable "
                   "absolute path (--python)",
                   python);
  if (cfg->worker_script && access(cfg->worker_script, R_OK) != 0)
    return err_set(e, ERR_INVALID_STATE, "the worker script %.200s cannot be read",
                   cfg->worker_script);
  int n = o->instances > 0 ? o->instances : cfg->python_workers > 0 ? cfg->python_workers : 1;
  if (n > PY_MAX_WORKERS)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "at most %d worker processes per model, not %d",
                   PY_MAX_WORKERS, n);

  struct pymodel *m = calloc(1, sizeof *m);
  if (!m) return err_set(e, ERR_NO_MEMORY, "out of memory");
  pthread_mutex_init(&m->mu, NULL);
  m->w = calloc((size_t)n, sizeof *m->w);
  m->path = strdup(o->path);
  m->format = strdup(o->format);
  m->python = strdup(python);
  m->script = cfg->worker_script ? strdup(cfg->worker_script) : NULL;
  m->name = dup_or(o->model_name, "");
  m->version = dup_or(o->model_version, "");
  if (!m->w || !m->path || !m->format || !m->python || (cfg->worker_script && !m->script) ||
      !m->name || !m->version) {
    model_free(m);
    return err_set(e, ERR_NO_MEMORY, "out of memory");
  }
  m->n = n;
  for (int i = 0; i < n; i++) {
    m->w[i].fd = -1;
    m->w[i].net_isolated = -1;
  }
  m->torch = torch;
  m->mem_limit = cfg->worker_memory;
  m->cpu_s = cfg->worker_cpu_s;
  m->timeout_ms = cfg->worker_timeout_ms > 0 ? cfg->worker_timeout_ms : 30000;
  m->load_timeout_ms = m->timeout_ms > PY_LOAD_TIMEOUT_MS ? m->timeout_ms : PY_LOAD_TIMEOUT_MS;
  const char *dev = cfg->device && str_has_prefix(cfg->device, "cuda") && torch ? "cuda" : "cpu";
  int k = 0;
  m->argv[k++] = m->python;
  m->argv[k++] = "-I"; /* isolated: no PYTHON* variables, user site or script dir on sys.path */
  if (m->script) {
    m->argv[k++] = m->script;
  } else {
    m->argv[k++] = "-c";
    m->argv[k++] = serve_worker_py;
  }
  m->argv[k++] = m->path;
  m->argv[k++] = m->format;
  m->argv[k++] = dev;
  m->argv[k] = NULL;
  m->restart_metric = restart_series(o);

  /* every worker starts (imports, unpickles) at once, then all are awaited */
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) rc = worker_launch(m, i, e);
  json_t *hello = NULL;
  for (int i = 0; i < n && rc == 0; i++) {
    json_t *h = NULL;
    rc = worker_ready(m, i, &h, e);
    if (rc == 0 && !hello)
      hello = h;
    else
      json_decref(h);
  }
  if (rc == 0) {
    struct reg_view rv;
    reg_read(o->registry_signature, &rv);
    rc = torch ? sig_torch(hello, &rv, sig, e) : sig_sklearn(hello, &rv, sig, e);
    sig->allow_nan = false;
  }
  if (rc == 0) {
    m->proba = json_is_true(json_object_get(hello, "proba"));
    m->margin = json_is_true(json_object_get(hello, "margin"));
    str_copy(m->device, sizeof m->device,
             json_string_value(json_object_get(hello, "device")) ?: "cpu");
    str_copy(m->model_type, sizeof m->model_type,
             json_string_value(json_object_get(hello, "model_type")) ?: "");
    str_copy(m->pyver, sizeof m->pyver, json_string_value(json_object_get(hello, "python")) ?: "");
    m->nout = sig->noutputs;
    m->out_names = calloc((size_t)sig->noutputs, sizeof *m->out_names);
    if (!m->out_names) rc = err_set(e, ERR_NO_MEMORY, "out of memory");
    for (int i = 0; rc == 0 && i < sig->noutputs; i++)
      str_copy(m->out_names[i], SERVE_NAME_MAX, sig->outputs[i].name);
  }
  json_decref(hello);
  if (rc) {
    serve_signature_fini(sig);
    py_unload(m);
    return rc;
  }
  log_info("serve.python_loaded", "model %s version %s: %d %s worker(s) for a %s on %s", m->name,
           m->version, n, m->format, m->model_type, m->device);
  *model = m;
  return 0;
}

static bool is_degraded(struct pymodel *m, char *why, size_t cap) {
  pthread_mutex_lock(&m->mu);
  bool deg = m->degraded;
  str_copy(why, cap, m->why);
  pthread_mutex_unlock(&m->mu);
  return deg;
}

/* Makes sure worker i is up before a request: waits for one still
 * loading, replaces one that ended while idle (a crash, or a retirement at
 * its CPU-time limit, which is no crash). */
static int worker_ensure(struct pymodel *m, int i, struct err *e) {
  struct pyworker *w = &m->w[i];
  char why[sizeof m->why];
  if (w->pid > 0 && !w->starting) {
    struct pollfd p = {w->fd, POLLIN, 0};
    if (poll(&p, 1, 0) == 0) return 0;
    /* an idle worker says nothing: readable means gone (or confused) */
    char how[128];
    struct ended en = worker_stop(m, w, PY_EXIT_GRACE_MS, how, sizeof how);
    if (!(WIFEXITED(en.st) && WEXITSTATUS(en.st) == 0)) crash_note(m, how);
  }
  if (is_degraded(m, why, sizeof why))
    return err_set(e, ERR_UNAVAILABLE, "the model is degraded: %s", why);
  struct err se = {0};
  int rc = w->pid > 0 ? 0 : worker_launch(m, i, &se);
  if (rc == 0) rc = worker_ready(m, i, NULL, &se);
  if (rc) {
    char how[sizeof se.msg + 32];
    snprintf(how, sizeof how, "could not be restarted: %s", se.msg);
    crash_note(m, how);
    return err_set(e, rc == -ERR_NO_MEMORY ? ERR_NO_MEMORY : ERR_UNAVAILABLE,
                   "the model's worker process could not be restarted: %s", se.msg);
  }
  return 0;
}

/* The worker failed mid-request: kill, reap, count, and replace it before
 * the request gets why. The replacement is awaited here, on the thread
 * that owns this instance (its next request would wait for it anyway), so
 * when the error goes back the instance is ready again. */
static int worker_failed(struct pymodel *m, int i, enum io_res r, struct err *e) {
  char how[128];
  if (r == IO_TIMEOUT) {
    worker_stop(m, &m->w[i], 0, NULL, 0);
    snprintf(how, sizeof how, "did not answer within %lld ms and was killed",
             (long long)m->timeout_ms);
  } else {
    worker_stop(m, &m->w[i], r == IO_EOF ? PY_EXIT_GRACE_MS : 0, how, sizeof how);
  }
  crash_note(m, how);
  char why[sizeof m->why];
  if (!is_degraded(m, why, sizeof why)) {
    struct err le = {0};
    int rc = worker_launch(m, i, &le);
    if (rc == 0) rc = worker_ready(m, i, NULL, &le);
    if (rc) {
      char again[sizeof le.msg + 32];
      snprintf(again, sizeof again, "could not be restarted: %s", le.msg);
      crash_note(m, again);
    }
  }
  if (r == IO_NOMEM)
    return err_set(e, ERR_NO_MEMORY,
                   "out of memory for the model's answer; its worker is restarted");
  if (r == IO_BIG || r == IO_ERR || r == IO_BAD)
    return err_set(e, ERR_INTERNAL,
                   "the model's worker process broke the frame protocol and is being restarted");
  return err_set(e, ERR_UNAVAILABLE, "the model's worker process %s; it is being restarted", how);
}

static enum err_code kind_code(const char *kind) {
  if (str_eq(kind, "user")) return ERR_INVALID_PARAMETER_VALUE;
  if (str_eq(kind, "memory")) return ERR_NO_MEMORY;
  return ERR_INTERNAL;
}

static void outputs_free(struct serve_tensor *t, int n) {
  for (int i = 0; t && i < n; i++) serve_tensor_fini(&t[i]);
  free(t);
}

static int py_predict(void *model, int instance, const struct serve_tensor *in, int nin,
                      const struct serve_predict_opts *po, struct serve_tensor **out, int *nout,
                      struct err *e) {
  struct pymodel *m = model;
  *out = NULL;
  *nout = 0;
  if (!m || instance < 0 || instance >= m->n)
    return err_set(e, ERR_INTERNAL, "no worker %d for this model", instance);
  bool proba = po && po->proba, margin = po && po->margin;
  if (proba && !m->proba)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "this model (%s) gives no class probabilities",
                   m->model_type);
  if (margin && !m->margin)
    return err_set(e, ERR_INVALID_PARAMETER_VALUE, "this model (%s) gives no raw margins",
                   m->model_type);
  int rc = worker_ensure(m, instance, e);
  if (rc) return rc;

  json_t *h = json_pack("{s:s, s:b, s:b}", "op", "predict", "proba", proba, "margin", margin);
  struct buf req;
  buf_init(&req);
  rc = h ? serve_frame_encode(&req, h, in, nin, e) : err_set(e, ERR_NO_MEMORY, "out of memory");
  json_decref(h);
  if (rc) {
    buf_fini(&req);
    return rc;
  }
  struct pyworker *w = &m->w[instance];
  int64_t deadline = time_mono_us() + m->timeout_ms * 1000;
  enum io_res r = write_full(w->fd, req.data, req.len, deadline);
  buf_fini(&req);
  char *body = NULL;
  size_t n = 0;
  if (r == IO_OK) r = read_frame(w->fd, SERVE_FRAME_MAX, &body, &n, deadline);
  if (r != IO_OK) return worker_failed(m, instance, r, e);

  json_t *ah = NULL;
  struct serve_tensor *t = NULL;
  int nt = 0;
  struct err fe = {0};
  if (serve_frame_decode(body, n, &ah, &t, &nt, &fe) != 0) {
    free(body);
    worker_failed(m, instance, IO_BAD, e);
    return err_set(e, ERR_INTERNAL,
                   "the model's worker answered a malformed frame (%s); it is being restarted",
                   fe.msg);
  }
  if (json_is_true(json_object_get(ah, "retiring"))) {
    /* at its CPU-time limit: it answered and leaves; the next request
     * starts a fresh one (a restart, not a crash) */
    char how[128];
    struct ended en = worker_stop(m, w, PY_TERM_GRACE_MS, how, sizeof how);
    if (!(WIFEXITED(en.st) && WEXITSTATUS(en.st) == 0))
      crash_note(m, how);
    else
      log_info("serve.worker_retired",
               "model %s version %s: a worker reached its CPU-time limit (%lld s) and "
               "is replaced",
               m->name, m->version, (long long)m->cpu_s);
    char why[sizeof m->why];
    struct err le = {0};
    if (!is_degraded(m, why, sizeof why) && worker_launch(m, instance, &le) != 0)
      log_warn("serve.worker_restart_failed",
               "model %s version %s: %s (retried on the next request)", m->name, m->version,
               le.msg);
  }
  if (!json_is_true(json_object_get(ah, "ok"))) {
    const char *msg = json_string_value(json_object_get(ah, "error"));
    rc = err_set(e, kind_code(json_string_value(json_object_get(ah, "kind"))),
                 "the model raised %s", msg ? msg : "an error it did not describe");
    goto done;
  }
  int64_t rows = nin > 0 && in[0].ndim > 0 ? in[0].shape[0] : -1;
  struct serve_tensor *res = calloc(nt ? (size_t)nt : 1, sizeof *res);
  if (!res) {
    rc = err_set(e, ERR_NO_MEMORY, "out of memory");
    goto done;
  }
  for (int i = 0; i < nt && rc == 0; i++) {
    if (rows >= 0 && (t[i].ndim < 1 || t[i].shape[0] != rows)) {
      rc = err_set(e, ERR_INTERNAL,
                   "the model answered output '%s' with %lld row(s) for a %lld-row batch",
                   t[i].name, t[i].ndim < 1 ? 0ll : (long long)t[i].shape[0], (long long)rows);
      break;
    }
    res[i] = t[i];
    res[i].data = malloc(t[i].nbytes ? t[i].nbytes : 1);
    if (!res[i].data) {
      rc = err_set(e, ERR_NO_MEMORY, "out of memory for a %zu-byte output", t[i].nbytes);
      break;
    }
    memcpy(res[i].data, t[i].data, t[i].nbytes);
    res[i].owned = true;
    /* the signature's names, so requested outputs and protocols agree */
    if (nt == m->nout) str_copy(res[i].name, sizeof res[i].name, m->out_names[i]);
  }
  if (rc) {
    outputs_free(res, nt);
    goto done;
  }
  *out = res;
  *nout = nt;
done:
  free(t);
  json_decref(ah);
  free(body);
  return rc;
}

static uint64_t rss_of(pid_t pid) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/statm", (int)pid);
  FILE *f = fopen(p, "r");
  if (!f) return 0;
  unsigned long long size = 0, res = 0;
  int k = fscanf(f, "%llu %llu", &size, &res);
  fclose(f);
  long page = sysconf(_SC_PAGESIZE);
  return k == 2 && page > 0 ? res * (uint64_t)page : 0;
}

static uint64_t py_memory(void *model) {
  struct pymodel *m = model;
  uint64_t sum = 0;
  pthread_mutex_lock(&m->mu);
  for (int i = 0; i < m->n; i++)
    if (m->w[i].pid > 0) sum += rss_of(m->w[i].pid);
  pthread_mutex_unlock(&m->mu);
  return sum;
}

static bool py_degraded(void *model, char *why, size_t cap) {
  struct pymodel *m = model;
  pthread_mutex_lock(&m->mu);
  bool d = m->degraded;
  if (d && why && cap) str_copy(why, cap, m->why);
  pthread_mutex_unlock(&m->mu);
  return d;
}

static json_t *py_describe(void *model) {
  struct pymodel *m = model;
  json_t *ws = json_array();
  if (!ws) return NULL;
  bool isolated = true;
  pthread_mutex_lock(&m->mu);
  for (int i = 0; i < m->n; i++) {
    const struct pyworker *w = &m->w[i];
    /* no process: pid null (never 0, which kill(2) reads as "my group") */
    json_array_append_new(ws, json_pack("{s:o, s:i, s:I, s:s}", "pid",
                                        w->pid > 0 ? json_integer(w->pid) : json_null(), "restarts",
                                        w->restarts, "rss_bytes",
                                        (json_int_t)(w->pid > 0 ? rss_of(w->pid) : 0), "state",
                                        w->pid <= 0   ? "stopped"
                                        : w->starting ? "starting"
                                                      : "ready"));
    if (w->net_isolated == 0) isolated = false;
  }
  json_t *o =
      json_pack("{s:o, s:b, s:s, s:s, s:s, s:s, s:b, s:I, s:I}", "workers", ws, "network_isolated",
                isolated, "device", m->device, "format", m->format, "model_type", m->model_type,
                "python", m->pyver, "degraded", m->degraded, "timeout_ms",
                (json_int_t)m->timeout_ms, "memory_limit", (json_int_t)m->mem_limit);
  if (o && m->degraded) json_object_set_new(o, "reason", json_string(m->why));
  pthread_mutex_unlock(&m->mu);
  return o;
}

const struct serve_backend serve_backend_python = {SERVE_BACKEND_VERSION,
                                                   "python",
                                                   SERVE_CAP_PROBA | SERVE_CAP_MARGIN |
                                                       SERVE_CAP_GPU,
                                                   py_load,
                                                   py_predict,
                                                   py_memory,
                                                   py_unload,
                                                   py_degraded,
                                                   py_describe};
