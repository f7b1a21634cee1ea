/* serve/cache: the loaded models. A model version is loaded on its first
 * request (or an explicit load) by the loader thread, kept while the memory
 * budget allows, and evicted least-recently-used first when idle. Entries
 * are reference counted: requests hold one for their whole life, so an
 * unload never frees what a request still reads. */
#include "internal.h"
#include "registry/registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* How long "latest" and aliases stay resolved before the registry is asked
 * again, and how long a failed load is remembered before a retry. */
#define SERVE_RESOLVE_TTL_MS 1000
#define SERVE_FAILED_TTL_MS 10000
#define SERVE_RESOLVE_SLOTS 256

struct resolved {
  char key[360];
  char version[24];
  int64_t at_ms;
};

struct serve {
  struct db *db;
  struct blob_store *blobs;
  struct serve_config cfg;
  char *tmp_dir;
  pthread_mutex_t mu; /* the list, the resolution table and the loader queue */
  pthread_cond_t load_cv;
  struct serve_model *models;
  struct serve_model **loadq; /* models waiting for the loader (refs held) */
  int nloadq, capq;
  bool stopping;
  pthread_t loader;
  bool loader_started;
  struct resolved resolved[SERVE_RESOLVE_SLOTS];
};

static struct metric_family *f_requests, *f_latency, *f_queue, *f_compute, *f_batch, *f_depth, *f_load;
static struct metric_series *m_hits, *m_misses, *m_evictions;
static struct serve *metrics_owner; /* the serve whose totals /metrics reports */

static const double batch_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
static const double latency_buckets[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                         0.01,    0.025,  0.05,    0.1,   0.25,   0.5,    1, 2.5, 5, 10};

static double memory_total(void *arg);
static double models_loaded(void *arg);

void serve_metrics_init(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  (void)once;
  if (f_requests) return;
  static const char *const mv[] = {"model", "version"}, *const mvc[] = {"model", "version", "code"};
  f_requests = metrics_family("kiln_serve_requests_total", "Prediction requests by model version and outcome",
                              METRIC_COUNTER, 3, mvc, NULL, 0);
  f_latency = metrics_family("kiln_serve_request_duration_seconds",
                             "Prediction requests: time from arrival to answer", METRIC_HISTOGRAM, 2, mv,
                             latency_buckets, (int)(sizeof latency_buckets / sizeof *latency_buckets));
  f_queue = metrics_family("kiln_serve_queue_wait_seconds", "Time predictions waited for their batch",
                           METRIC_HISTOGRAM, 2, mv, latency_buckets,
                           (int)(sizeof latency_buckets / sizeof *latency_buckets));
  f_compute = metrics_family("kiln_serve_compute_seconds", "Time of the backend's predict call per batch",
                             METRIC_HISTOGRAM, 2, mv, latency_buckets,
                             (int)(sizeof latency_buckets / sizeof *latency_buckets));
  f_batch = metrics_family("kiln_serve_batch_size", "Rows per batch run by the model", METRIC_HISTOGRAM, 2, mv,
                           batch_buckets, (int)(sizeof batch_buckets / sizeof *batch_buckets));
  f_depth = metrics_family("kiln_serve_queue_depth", "Requests waiting in the model's queue", METRIC_GAUGE, 2, mv,
                           NULL, 0);
  f_load = metrics_family("kiln_serve_load_seconds", "How long the model's last load took", METRIC_GAUGE, 2, mv,
                          NULL, 0);
  struct metric_family *f = metrics_family("kiln_serve_cache_hits_total",
                                           "Prediction lookups that found the model loaded or loading",
                                           METRIC_COUNTER, 0, NULL, NULL, 0);
  m_hits = f ? metrics_series(f, NULL) : NULL;
  f = metrics_family("kiln_serve_cache_misses_total", "Prediction lookups that started a model load", METRIC_COUNTER,
                     0, NULL, NULL, 0);
  m_misses = f ? metrics_series(f, NULL) : NULL;
  f = metrics_family("kiln_serve_evictions_total", "Idle models unloaded to stay within the memory budget",
                     METRIC_COUNTER, 0, NULL, NULL, 0);
  m_evictions = f ? metrics_series(f, NULL) : NULL;
  metrics_func("kiln_serve_memory_bytes", "Memory attributed to loaded models", METRIC_GAUGE, memory_total, NULL);
  metrics_func("kiln_serve_models_loaded", "Models loaded and ready", METRIC_GAUGE, models_loaded, NULL);
  serve_nvml_init(); /* GPU gauges where an NVIDIA driver is present; nothing otherwise */
}

void serve_metrics_model(struct serve_model *m) {
  const char *lv[] = {m->name, m->version};
  m->m_batch = f_batch ? metrics_series(f_batch, lv) : NULL;
  m->m_queue = f_queue ? metrics_series(f_queue, lv) : NULL;
  m->m_compute = f_compute ? metrics_series(f_compute, lv) : NULL;
  m->m_depth = f_depth ? metrics_series(f_depth, lv) : NULL;
  m->m_latency = f_latency ? metrics_series(f_latency, lv) : NULL;
  m->m_ok = f_requests ? metrics_series(f_requests, (const char *[]){m->name, m->version, "OK"}) : NULL;
}

void serve_observe_request(struct serve_model *m, enum err_code code, double seconds) {
  atomic_store(&m->last_used_ms, time_wall_ms());
  if (code == ERR_OK) {
    if (m->m_ok) metrics_add(m->m_ok, 1);
    if (m->m_latency) metrics_observe(m->m_latency, seconds);
    return;
  }
  if (f_requests) {
    const char *lv[] = {m->name, m->version, err_code_str(code)};
    struct metric_series *s = metrics_series(f_requests, lv);
    if (s) metrics_add(s, 1);
  }
}

const char *serve_model_state_name(enum serve_model_state st) {
  switch (st) {
  case SERVE_LOADING: return "LOADING";
  case SERVE_READY: return "READY";
  case SERVE_FAILED: return "FAILED";
  case SERVE_DEGRADED: return "DEGRADED";
  case SERVE_UNLOADING: return "UNLOADING";
  }
  return "UNKNOWN";
}

/* ---- references ------------------------------------------------------------ */

static void model_free(struct serve_model *m) {
  serve_signature_fini(&m->sig);
  if (m->file[0]) unlink(m->file);
  pthread_mutex_destroy(&m->mu);
  pthread_cond_destroy(&m->cv);
  pthread_cond_destroy(&m->ready_cv);
  free(m);
}

void serve_model_unref(struct serve_model *m) {
  if (m && atomic_fetch_sub(&m->refs, 1) == 1) model_free(m);
}

enum serve_model_state serve_model_state(const struct serve_model *m) {
  pthread_mutex_lock((pthread_mutex_t *)&m->mu);
  enum serve_model_state st = m->state;
  pthread_mutex_unlock((pthread_mutex_t *)&m->mu);
  return st;
}
const char *serve_model_name(const struct serve_model *m) { return m->name; }
const char *serve_model_version(const struct serve_model *m) { return m->version; }
const char *serve_model_format(const struct serve_model *m) { return m->format; }
const char *serve_model_platform(const struct serve_model *m) { return m->be ? m->be->name : ""; }
const struct serve_signature *serve_model_signature(const struct serve_model *m) {
  pthread_mutex_lock((pthread_mutex_t *)&m->mu);
  bool loaded = m->loaded_at_ms != 0;
  pthread_mutex_unlock((pthread_mutex_t *)&m->mu);
  return loaded ? &m->sig : NULL;
}

/* ---- the state machine --------------------------------------------------------
 *
 *            load ok                      backend degraded()
 *  LOADING ----------> READY -------------------------------> DEGRADED
 *     |                  |                                       |
 *     | load failed      | unload / eviction                     | unload
 *     v                  v                                       v
 *   FAILED ---------> UNLOADING (removed from the cache; freed on the last unref)
 *        retry after SERVE_FAILED_TTL_MS or an explicit load
 *
 * Every change of m->state happens in set_state, under m->mu (DEGRADED is
 * entered by the batcher, which holds m->mu too). */
static void set_state(struct serve_model *m, enum serve_model_state to, const char *reason) {
  enum serve_model_state from = m->state;
  bool ok = (from == SERVE_LOADING && (to == SERVE_READY || to == SERVE_FAILED)) || to == SERVE_UNLOADING ||
            (from == SERVE_READY && to == SERVE_DEGRADED);
  if (!ok) {
    log_warn("serve.state", "refused %s -> %s for model %s version %s", serve_model_state_name(from),
             serve_model_state_name(to), m->name, m->version);
    return;
  }
  m->state = to;
  if (reason) snprintf(m->reason, sizeof m->reason, "%s", reason);
  pthread_cond_broadcast(&m->ready_cv);
}

/* ---- open / close ---------------------------------------------------------------- */

static void *loader_main(void *arg);
static void wake_waiters(struct serve_model *m);

int serve_open(struct serve **out, struct db *db, struct blob_store *blobs, const struct serve_config *cfg,
               struct err *e) {
  struct serve *s = calloc(1, sizeof *s);
  if (!s) return err_set(e, ERR_NO_MEMORY, "out of memory");
  s->db = db;
  s->blobs = blobs;
  if (cfg) s->cfg = *cfg;
  else serve_config_default(&s->cfg);
  s->tmp_dir = strdup(s->cfg.tmp_dir && *s->cfg.tmp_dir ? s->cfg.tmp_dir : "/tmp");
  if (!s->tmp_dir) {
    free(s);
    return err_set(e, ERR_NO_MEMORY, "out of memory");
  }
  mkdir(s->tmp_dir, 0700);
  /* working copies left by a server that did not stop cleanly */
  DIR *d = opendir(s->tmp_dir);
  for (struct dirent *de; d && (de = readdir(d));)
    if (str_has_prefix(de->d_name, "model-")) {
      char p[4400];
      snprintf(p, sizeof p, "%s/%s", s->tmp_dir, de->d_name);
      unlink(p);
    }
  if (d) closedir(d);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->load_cv, NULL);
  serve_metrics_init();
  if (pthread_create(&s->loader, NULL, loader_main, s)) {
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->load_cv);
    free(s->tmp_dir);
    free(s);
    return err_set(e, ERR_INTERNAL, "cannot start the model loader thread");
  }
  s->loader_started = true;
  metrics_owner = s;
  *out = s;
  return 0;
}

static void model_unload(struct serve_model *m, const char *why);

void serve_close(struct serve *s) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  s->stopping = true;
  pthread_cond_broadcast(&s->load_cv);
  pthread_mutex_unlock(&s->mu);
  if (s->loader_started) pthread_join(s->loader, NULL);
  /* loads never started: their queued requests are answered */
  for (int i = 0; i < s->nloadq; i++) {
    struct serve_model *m = s->loadq[i];
    pthread_mutex_lock(&m->mu);
    set_state(m, SERVE_FAILED, "the server is shutting down");
    struct err e;
    err_set(&e, ERR_UNAVAILABLE, "the server is shutting down");
    serve_queue_fail_all(m, &e);
    pthread_mutex_unlock(&m->mu);
    wake_waiters(m);
    serve_model_unref(m);
  }
  free(s->loadq);
  pthread_mutex_lock(&s->mu);
  struct serve_model *all = s->models;
  s->models = NULL;
  if (metrics_owner == s) metrics_owner = NULL;
  pthread_mutex_unlock(&s->mu);
  while (all) {
    struct serve_model *n = all->next;
    model_unload(all, "the server is shutting down");
    serve_model_unref(all);
    all = n;
  }
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->load_cv);
  free(s->tmp_dir);
  free(s);
}

/* ---- lookup ------------------------------------------------------------------------ */

static uint32_t hash_str(const char *p) {
  uint32_t h = 2166136261u;
  while (*p) h = (h ^ (unsigned char)*p++) * 16777619u;
  return h;
}

/* "latest" and aliases, resolved at most once a second per model. */
static int resolve(struct serve *s, const char *project_id, const char *name, const char *ref, char out[24],
                   struct err *e) {
  if (ref && ref[0] >= '1' && ref[0] <= '9' && strspn(ref, "0123456789") == strlen(ref) && strlen(ref) < 19) {
    str_copy(out, 24, ref);
    return 0;
  }
  if (!ref || !*ref) ref = "latest";
  char key[360];
  int kn = snprintf(key, sizeof key, "%s\x1f%s\x1f%s", project_id, name, ref);
  if (kn < 0 || (size_t)kn >= sizeof key) return err_set(e, ERR_INVALID_PARAMETER_VALUE, "model name too long");
  struct resolved *r = &s->resolved[hash_str(key) % SERVE_RESOLVE_SLOTS];
  int64_t now = time_wall_ms();
  pthread_mutex_lock(&s->mu);
  if (strcmp(r->key, key) == 0 && now - r->at_ms < SERVE_RESOLVE_TTL_MS) {
    str_copy(out, 24, r->version);
    pthread_mutex_unlock(&s->mu);
    return 0;
  }
  pthread_mutex_unlock(&s->mu);
  int rc = registry_version_resolve(s->db, project_id, name, ref, out, e);
  if (rc) return rc;
  pthread_mutex_lock(&s->mu);
  str_copy(r->key, sizeof r->key, key);
  str_copy(r->version, sizeof r->version, out);
  r->at_ms = now;
  pthread_mutex_unlock(&s->mu);
  return 0;
}

static struct serve_model *find_locked(struct serve *s, const char *key, struct serve_model ***link) {
  for (struct serve_model **pp = &s->models; *pp; pp = &(*pp)->next)
    if (strcmp((*pp)->key, key) == 0) {
      if (link) *link = pp;
      return *pp;
    }
  return NULL;
}

static void settings_resolve(const struct serve *s, const struct serve_backend *be,
                             const struct serve_model_settings *in, struct serve_model_settings *out) {
  struct serve_model_settings z = {0, -1, 0, 0, 0};
  if (!in) in = &z;
  out->max_batch_size = in->max_batch_size > 0 ? in->max_batch_size : s->cfg.max_batch_size;
  if (out->max_batch_size < 1) out->max_batch_size = 1;
  out->max_queue_delay_us = in->max_queue_delay_us >= 0 ? in->max_queue_delay_us : s->cfg.max_queue_delay_us;
  out->queue_capacity = in->queue_capacity > 0 ? in->queue_capacity : s->cfg.queue_capacity;
  if (out->queue_capacity < 1) out->queue_capacity = 1;
  out->instances = in->instances > 0 ? in->instances
                                     : (be == &serve_backend_python && s->cfg.python_workers > 0 ? s->cfg.python_workers : 1);
  if (out->instances > SERVE_MAX_INSTANCES) out->instances = SERVE_MAX_INSTANCES;
  out->priority_levels = in->priority_levels > 0 ? in->priority_levels : 2;
  if (out->priority_levels > SERVE_MAX_PRIORITY) out->priority_levels = SERVE_MAX_PRIORITY;
}

/* What the registry says about the version: it must be a READY uploaded
 * file of a format a backend runs (intake has scanned it; unsafe pickles
 * are READY only where the project allows them). */
static int registry_check(struct serve *s, const char *project_id, const char *name, const char *version,
                          char format[32], char sha256[65], json_t **sig, struct err *e) {
  json_t *o = registry_upload_answer(s->db, project_id, name, version, e);
  if (!o) {
    if (e->code == ERR_RESOURCE_DOES_NOT_EXIST && strstr(e->msg, "not made from an uploaded file"))
      err_set(e, ERR_INVALID_STATE,
              "model %.200s version %.20s was registered from run artifacts, not uploaded; Kiln serves uploaded "
              "model files (kiln models push, POST /api/v1/models/upload)",
              name, version);
    return -(int)e->code;
  }
  int rc = 0;
  const char *status = json_string_value(json_object_get(o, "status"));
  const char *fmt = json_string_value(json_object_get(o, "format"));
  if (!str_eq(status, "READY") || !json_is_true(json_object_get(o, "stored")))
    rc = err_set(e, ERR_INVALID_STATE, "model %.200s version %.20s is %s, not READY: it cannot be served", name,
                 version, status ? status : "unknown");
  else if (!serve_backend_for(fmt))
    rc = err_set(e, ERR_INVALID_STATE, "model %.200s version %.20s is a %s file; Kiln serves onnx, xgboost, "
                 "pickle/joblib and torchscript models", name, version, fmt ? fmt : "unknown");
  else {
    str_copy(format, 32, fmt);
    str_copy(sha256, 65, json_string_value(json_object_get(o, "sha256")));
    json_t *sg = json_object_get(o, "signature");
    *sig = json_is_object(sg) ? json_incref(sg) : NULL;
  }
  json_decref(o);
  return rc;
}

static int enqueue_load(struct serve *s, struct serve_model *m) {
  if (s->nloadq == s->capq) {
    int cap = s->capq ? s->capq * 2 : 8;
    struct serve_model **q = realloc(s->loadq, (size_t)cap * sizeof *q);
    if (!q) return -1;
    s->loadq = q;
    s->capq = cap;
  }
  atomic_fetch_add(&m->refs, 1);
  s->loadq[s->nloadq++] = m;
  pthread_cond_signal(&s->load_cv);
  return 0;
}

struct serve_model *serve_model_get(struct serve *s, const char *project_id, const char *name,
                                    const char *version, bool load, const struct serve_model_settings *st,
                                    struct err *e) {
  char v[24], key[360];
  if (!name || !*name) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "a model name is required");
    return NULL;
  }
  if (resolve(s, project_id, name, version, v, e)) return NULL;
  int kn = snprintf(key, sizeof key, "%s\x1f%s\x1f%s", project_id, name, v);
  if (kn < 0 || (size_t)kn >= sizeof key) {
    err_set(e, ERR_INVALID_PARAMETER_VALUE, "model name too long");
    return NULL;
  }
  struct serve_model *stale = NULL;
  pthread_mutex_lock(&s->mu);
  struct serve_model **link = NULL, *m = find_locked(s, key, &link);
  if (m) {
    pthread_mutex_lock(&m->mu);
    bool retry = m->state == SERVE_FAILED && (time_wall_ms() - m->failed_at_ms > SERVE_FAILED_TTL_MS || st);
    pthread_mutex_unlock(&m->mu);
    if (retry && load) { /* a failed load is tried again after a while */
      *link = m->next;
      stale = m;
      m = NULL;
    }
  }
  if (m) {
    atomic_fetch_add(&m->refs, 1);
    pthread_mutex_unlock(&s->mu);
    if (m_hits) metrics_add(m_hits, 1);
    return m;
  }
  pthread_mutex_unlock(&s->mu);
  if (stale) serve_model_unref(stale);
  if (!load) {
    err_set(e, ERR_NOT_READY, "model %.200s version %s is not loaded", name, v);
    return NULL;
  }
  /* not cached: check with the registry before anything is made */
  char format[32], sha[65];
  json_t *rsig = NULL;
  if (registry_check(s, project_id, name, v, format, sha, &rsig, e)) return NULL;
  m = calloc(1, sizeof *m);
  if (!m) {
    json_decref(rsig);
    err_set(e, ERR_NO_MEMORY, "out of memory");
    return NULL;
  }
  m->s = s;
  str_copy(m->project_id, sizeof m->project_id, project_id);
  str_copy(m->name, sizeof m->name, name);
  str_copy(m->version, sizeof m->version, v);
  str_copy(m->key, sizeof m->key, key);
  str_copy(m->format, sizeof m->format, format);
  str_copy(m->sha256, sizeof m->sha256, sha);
  m->rsig = rsig;
  m->be = serve_backend_for(format);
  settings_resolve(s, m->be, st, &m->st);
  m->default_timeout_us = s->cfg.default_timeout_us > 0 ? s->cfg.default_timeout_us : 30000000;
  m->state = SERVE_LOADING;
  atomic_store(&m->last_used_ms, time_wall_ms());
  pthread_mutex_init(&m->mu, NULL);
  pthread_cond_init(&m->cv, NULL);
  pthread_cond_init(&m->ready_cv, NULL);
  serve_metrics_model(m);
  atomic_store(&m->refs, 2); /* the cache's and the caller's */
  pthread_mutex_lock(&s->mu);
  struct serve_model *raced = find_locked(s, key, NULL);
  if (raced || s->stopping) { /* another request made it meanwhile (or we are stopping) */
    if (raced) atomic_fetch_add(&raced->refs, 1);
    pthread_mutex_unlock(&s->mu);
    json_decref(m->rsig);
    m->rsig = NULL;
    model_free(m);
    if (!raced) err_set(e, ERR_UNAVAILABLE, "the server is shutting down");
    return raced;
  }
  m->next = s->models;
  s->models = m;
  if (enqueue_load(s, m)) {
    s->models = m->next;
    pthread_mutex_unlock(&s->mu);
    atomic_store(&m->refs, 1);
    serve_model_unref(m);
    err_set(e, ERR_NO_MEMORY, "out of memory");
    return NULL;
  }
  pthread_mutex_unlock(&s->mu);
  if (m_misses) metrics_add(m_misses, 1);
  log_info("serve.load", "loading model %s version %s (%s)", m->name, m->version, m->format);
  return m;
}

int serve_model_wait_ready(struct serve_model *m, int64_t timeout_ms, struct err *e) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t ns = (int64_t)ts.tv_nsec + (timeout_ms % 1000) * 1000000;
  ts.tv_sec += (time_t)(timeout_ms / 1000 + ns / 1000000000);
  ts.tv_nsec = (long)(ns % 1000000000);
  pthread_mutex_lock(&m->mu);
  int rc = 0;
  while (m->state == SERVE_LOADING && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&m->ready_cv, &m->mu, &ts);
  int out = 0;
  if (m->state == SERVE_LOADING)
    out = err_set(e, ERR_DEADLINE_EXCEEDED, "model %s version %s is still loading", m->name, m->version);
  else if (m->state == SERVE_FAILED)
    out = err_set(e, ERR_INVALID_STATE, "model %s version %s cannot be served: %s", m->name, m->version, m->reason);
  else if (m->state == SERVE_DEGRADED)
    out = err_set(e, ERR_UNAVAILABLE, "model %s version %s is degraded: %s", m->name, m->version, m->reason);
  else if (m->state == SERVE_UNLOADING)
    out = err_set(e, ERR_UNAVAILABLE, "model %s version %s was unloaded", m->name, m->version);
  pthread_mutex_unlock(&m->mu);
  return out;
}

bool serve_model_when_ready(struct serve_model *m, struct serve_waiter *w) {
  pthread_mutex_lock(&m->mu);
  bool waiting = m->state == SERVE_LOADING;
  if (waiting) {
    w->next = m->waiters;
    m->waiters = w;
  }
  pthread_mutex_unlock(&m->mu);
  return waiting;
}

/* The load has ended one way or another: everyone waiting hears it. */
static void wake_waiters(struct serve_model *m) {
  pthread_mutex_lock(&m->mu);
  struct serve_waiter *w = m->waiters;
  m->waiters = NULL;
  pthread_mutex_unlock(&m->mu);
  while (w) {
    struct serve_waiter *n = w->next;
    w->cb(w->ctx);
    w = n;
  }
}

/* ---- loading ------------------------------------------------------------------------- */

/* The blob, verified, copied to a private file the backend (and a
 * restarted worker) can open. */
static int materialize(struct serve *s, struct serve_model *m, struct err *e) {
  char rnd[17];
  id_random_hex(rnd, 8);
  snprintf(m->file, sizeof m->file, "%s/model-%s-%s", s->tmp_dir, m->sha256, rnd);
  int fd = open(m->file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    int er = errno;
    m->file[0] = 0;
    return err_set(e, ERR_IO, "cannot create the model's working copy in %s: %s", s->tmp_dir, strerror(er));
  }
  struct blob_reader *r = blob_get_open(s->blobs, m->sha256, e);
  int rc = r ? 0 : -(int)e->code;
  char *buf = malloc(1 << 16);
  if (!buf && rc == 0) rc = err_set(e, ERR_NO_MEMORY, "out of memory");
  while (rc == 0) {
    ssize_t n = blob_get_read(r, buf, 1 << 16, e);
    if (n < 0) rc = (int)n;
    if (n <= 0) break;
    for (ssize_t off = 0; off < n && rc == 0;) {
      ssize_t w = write(fd, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) rc = err_set(e, ERR_IO, "cannot write the model's working copy: %s", strerror(errno));
      else off += w;
    }
  }
  free(buf);
  if (r) blob_get_close(r);
  if (close(fd) && rc == 0) rc = err_set(e, ERR_IO, "cannot write the model's working copy");
  if (rc) {
    unlink(m->file);
    m->file[0] = 0;
  }
  return rc;
}

static void evict_for_budget(struct serve *s, struct serve_model *keep);

/* One synthetic request built from the signature (a row of zeros; empty
 * strings for BYTES) so the first real request does not pay for lazy
 * initialisation (ORT's allocations, a worker's first import). A model
 * whose signature is too vague for a synthetic row only gets a warning. */
static void warm_up(struct serve_model *m) {
  struct serve_tensor in[SERVE_V2_MAX_INPUTS];
  int n = m->sig.ninputs < SERVE_V2_MAX_INPUTS ? m->sig.ninputs : SERVE_V2_MAX_INPUTS;
  struct err e = {0};
  int rc = 0, made = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    const struct serve_tensor_spec *sp = &m->sig.inputs[i];
    int64_t shape[SERVE_MAX_DIMS];
    int nd = sp->ndim < 0 ? 2 : sp->ndim;
    for (int d = 0; d < nd; d++) shape[d] = sp->ndim < 0 || sp->shape[d] < 0 ? 1 : sp->shape[d];
    if (sp->dtype == SERVE_BYTES) {
      int64_t cnt = serve_shape_count(shape, nd);
      memset(&in[i], 0, sizeof in[i]);
      str_copy(in[i].name, sizeof in[i].name, sp->name);
      in[i].dtype = SERVE_BYTES;
      in[i].ndim = nd;
      memcpy(in[i].shape, shape, (size_t)nd * sizeof *shape);
      in[i].data = cnt > 0 && cnt < (1 << 20) ? calloc((size_t)cnt, 4) : NULL;
      in[i].nbytes = cnt > 0 ? (size_t)cnt * 4 : 0;
      in[i].owned = true;
      if (cnt > 0 && !in[i].data) rc = err_set(&e, ERR_NO_MEMORY, "out of memory");
    } else {
      rc = serve_tensor_alloc(&in[i], sp->name, sp->dtype, shape, nd, &e);
    }
    if (rc == 0) made++;
  }
  struct serve_tensor *out = NULL;
  int nout = 0;
  struct serve_predict_opts po = {0};
  int64_t t0 = time_mono_us();
  if (rc == 0) rc = m->be->predict(m->bm, 0, in, n, &po, &out, &nout, &e);
  for (int i = 0; i < made; i++) serve_tensor_fini(&in[i]);
  for (int i = 0; i < nout; i++) serve_tensor_fini(&out[i]);
  free(out);
  if (rc)
    log_warn("serve.warm_up", "model %s version %s: the synthetic warm-up request failed (%s); serving anyway",
             m->name, m->version, e.msg);
  else
    log_info("serve.warm_up", "model %s version %s warmed up in %lld us", m->name, m->version,
             (long long)(time_mono_us() - t0));
}

static void load_one(struct serve *s, struct serve_model *m) {
  struct err e = {0};
  int64_t t0 = time_mono_us();
  int rc = materialize(s, m, &e);
  if (rc == 0) {
    struct serve_load_opts o = {.path = m->file,
                                .format = m->format,
                                .registry_signature = m->rsig,
                                .instances = m->st.instances,
                                .threads = 0,
                                .cfg = &s->cfg,
                                .model_name = m->name,
                                .model_version = m->version};
    rc = m->be->load(&o, &m->bm, &m->sig, &e);
  }
  if (rc == 0 && m->sig.ninputs < 1)
    rc = err_set(&e, ERR_INVALID_STATE, "the model declares no inputs");
  if (rc == 0 && m->sig.ninputs > SERVE_V2_MAX_INPUTS)
    rc = err_set(&e, ERR_INVALID_STATE, "the model takes %d inputs; at most %d are served", m->sig.ninputs,
                 SERVE_V2_MAX_INPUTS);
  if (rc && m->bm) {
    m->be->unload(m->bm);
    m->bm = NULL;
  }
  if (rc == 0) warm_up(m);
  m->load_ms = (time_mono_us() - t0) / 1000;
  if (rc == 0) {
    m->memory = m->be->memory ? m->be->memory(m->bm) : 0;
    if (f_load) {
      const char *lv[] = {m->name, m->version};
      struct metric_series *ls = metrics_series(f_load, lv);
      if (ls) metrics_set(ls, (double)m->load_ms / 1000.0);
    }
    rc = serve_batcher_start(m, &e);
    if (rc) {
      m->be->unload(m->bm);
      m->bm = NULL;
    }
  }
  pthread_mutex_lock(&m->mu);
  if (m->state == SERVE_UNLOADING) { /* unloaded (or the server stopped) while it loaded */
    struct err ce;
    err_set(&ce, ERR_UNAVAILABLE, "model %s version %s was unloaded while it loaded", m->name, m->version);
    serve_queue_fail_all(m, &ce);
    pthread_mutex_unlock(&m->mu);
    if (rc == 0) {
      serve_batcher_stop(m, true, "the model was unloaded");
      m->be->unload(m->bm);
      m->bm = NULL;
    }
    wake_waiters(m);
    return;
  }
  if (rc == 0) {
    m->loaded_at_ms = time_wall_ms();
    set_state(m, SERVE_READY, NULL);
    log_info("serve.ready", "model %s version %s ready in %lld ms (%s, %llu bytes)", m->name, m->version,
             (long long)m->load_ms, m->be->name, (unsigned long long)m->memory);
  } else {
    m->failed_at_ms = time_wall_ms();
    set_state(m, SERVE_FAILED, e.msg);
    log_warn("serve.load_failed", "model %s version %s: %s", m->name, m->version, e.msg);
    struct err fe;
    err_set(&fe, ERR_INVALID_STATE, "model %s version %s cannot be served: %s", m->name, m->version, e.msg);
    serve_queue_fail_all(m, &fe);
  }
  pthread_mutex_unlock(&m->mu);
  wake_waiters(m);
  if (rc == 0) evict_for_budget(s, m);
}

static void *loader_main(void *arg) {
  struct serve *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->nloadq && !s->stopping) pthread_cond_wait(&s->load_cv, &s->mu);
    if (s->stopping) break;
    struct serve_model *m = s->loadq[0];
    memmove(s->loadq, s->loadq + 1, (size_t)(s->nloadq - 1) * sizeof *s->loadq);
    s->nloadq--;
    pthread_mutex_unlock(&s->mu);
    load_one(s, m);
    serve_model_unref(m);
    pthread_mutex_lock(&s->mu);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* ---- unloading ------------------------------------------------------------------------- */

/* The model is out of the list already: stop its executors (failing what
 * still waits) and release the runtime. Requests holding a reference keep
 * the struct alive. */
static void model_unload(struct serve_model *m, const char *why) {
  pthread_mutex_lock(&m->mu);
  bool loading = m->state == SERVE_LOADING;
  set_state(m, SERVE_UNLOADING, why);
  pthread_mutex_unlock(&m->mu);
  if (loading) return; /* the loader still owns it; it fails its queue */
  serve_batcher_stop(m, true, why);
  if (m->bm) m->be->unload(m->bm);
  m->bm = NULL;
  if (m->file[0]) {
    unlink(m->file);
    m->file[0] = 0;
  }
  json_decref(m->rsig);
  m->rsig = NULL;
}

int serve_model_unload(struct serve *s, const char *project_id, const char *name, const char *version,
                       struct err *e) {
  char v[24], key[360];
  if (resolve(s, project_id, name, version, v, e)) return -(int)e->code;
  snprintf(key, sizeof key, "%s\x1f%s\x1f%s", project_id, name, v);
  pthread_mutex_lock(&s->mu);
  struct serve_model **link = NULL, *m = find_locked(s, key, &link);
  if (m) *link = m->next;
  pthread_mutex_unlock(&s->mu);
  if (!m) return err_set(e, ERR_RESOURCE_DOES_NOT_EXIST, "model %.200s version %s is not loaded", name, v);
  log_info("serve.unload", "unloading model %s version %s", m->name, m->version);
  model_unload(m, "the model was unloaded");
  serve_model_unref(m);
  return 0;
}

/* Least recently used idle models go until the loaded ones fit the budget
 * (the one just loaded stays even when it alone is over). */
static void evict_for_budget(struct serve *s, struct serve_model *keep) {
  if (!s->cfg.memory_budget) return;
  for (;;) {
    uint64_t total = 0;
    struct serve_model *victim = NULL, **vlink = NULL;
    int64_t oldest = INT64_MAX;
    pthread_mutex_lock(&s->mu);
    for (struct serve_model **pp = &s->models; *pp; pp = &(*pp)->next) {
      struct serve_model *m = *pp;
      pthread_mutex_lock(&m->mu);
      bool ready = m->state == SERVE_READY || m->state == SERVE_DEGRADED;
      bool idle = ready && m->depth == 0 && m->busy == 0 && atomic_load(&m->refs) == 1;
      pthread_mutex_unlock(&m->mu);
      if (ready) total += m->memory;
      int64_t lu = atomic_load(&m->last_used_ms);
      if (idle && m != keep && lu < oldest) {
        oldest = lu;
        victim = m;
        vlink = pp;
      }
    }
    if (total <= s->cfg.memory_budget || !victim) {
      pthread_mutex_unlock(&s->mu);
      return;
    }
    *vlink = victim->next;
    pthread_mutex_unlock(&s->mu);
    log_info("serve.evict", "evicting model %s version %s (%llu bytes) to stay within the %llu-byte budget",
             victim->name, victim->version, (unsigned long long)victim->memory,
             (unsigned long long)s->cfg.memory_budget);
    if (m_evictions) metrics_add(m_evictions, 1);
    model_unload(victim, "evicted to stay within the memory budget");
    serve_model_unref(victim);
  }
}

/* ---- views ------------------------------------------------------------------------------- */

static json_t *model_json(struct serve_model *m) {
  pthread_mutex_lock(&m->mu);
  enum serve_model_state st = m->state;
  json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "name", m->name, "version",
                        m->version, "format", m->format, "backend", m->be ? m->be->name : "", "state",
                        serve_model_state_name(st), "memory_bytes", (json_int_t)m->memory, "loaded_at",
                        (json_int_t)m->loaded_at_ms, "last_used_at", (json_int_t)atomic_load(&m->last_used_ms),
                        "requests", (json_int_t)(m->m_ok ? metrics_value(m->m_ok) : 0), "errors",
                        (json_int_t)atomic_load(&m->errors), "queue_depth", (json_int_t)m->depth, "load_ms",
                        (json_int_t)m->load_ms);
  if (o) json_object_set_new(o, "running", json_integer(m->busy));
  if (o && m->reason[0] && st != SERVE_READY) json_object_set_new(o, "reason", json_string(m->reason));
  if (o)
    json_object_set_new(o, "settings",
                        json_pack("{s:i, s:I, s:i, s:i, s:i}", "max_batch_size", m->st.max_batch_size,
                                  "max_queue_delay_us", (json_int_t)m->st.max_queue_delay_us, "queue_capacity",
                                  m->st.queue_capacity, "instances", m->st.instances, "priority_levels",
                                  m->st.priority_levels));
  bool ready = st == SERVE_READY || st == SERVE_DEGRADED;
  pthread_mutex_unlock(&m->mu);
  if (o) json_object_set_new(o, "signature", ready ? serve_signature_json(&m->sig) : json_null());
  if (o && ready && m->be->describe && m->bm) {
    json_t *d = m->be->describe(m->bm);
    if (d) json_object_set_new(o, "backend_info", d);
  }
  return o;
}

json_t *serve_models_json(struct serve *s, const char *project_id) {
  json_t *a = json_array();
  pthread_mutex_lock(&s->mu);
  for (struct serve_model *m = s->models; a && m; m = m->next)
    if (!project_id || strcmp(project_id, m->project_id) == 0) {
      json_t *o = model_json(m);
      if (o) json_array_append_new(a, o);
    }
  pthread_mutex_unlock(&s->mu);
  return a;
}

json_t *serve_model_json(struct serve_model *m) { return model_json(m); }

bool serve_all_ready(struct serve *s) {
  bool ok = true;
  pthread_mutex_lock(&s->mu);
  for (struct serve_model *m = s->models; m; m = m->next)
    if (serve_model_state(m) != SERVE_READY) ok = false;
  pthread_mutex_unlock(&s->mu);
  return ok;
}

static double memory_total(void *arg) {
  (void)arg;
  struct serve *s = metrics_owner;
  if (!s) return 0;
  double t = 0;
  pthread_mutex_lock(&s->mu);
  for (struct serve_model *m = s->models; m; m = m->next)
    if (serve_model_state(m) == SERVE_READY) t += (double)m->memory;
  pthread_mutex_unlock(&s->mu);
  return t;
}

static double models_loaded(void *arg) {
  (void)arg;
  struct serve *s = metrics_owner;
  if (!s) return 0;
  double n = 0;
  pthread_mutex_lock(&s->mu);
  for (struct serve_model *m = s->models; m; m = m->next)
    if (serve_model_state(m) == SERVE_READY) n++;
  pthread_mutex_unlock(&s->mu);
  return n;
}
