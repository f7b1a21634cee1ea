/* base/metrics: the registry behind /metrics — counters, gauges and
 * histograms with labels, rendered in Prometheus text exposition 0.0.4.
 * Values are atomics so the hot path locks only to find a series. */
#include "base.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define METRIC_MAX_LABELS 8
#define METRIC_MAX_BUCKETS 32
#define SERIES_HASH 128

const double metrics_default_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                          0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5,
                                          5,      10};
const int metrics_default_nbuckets = sizeof metrics_default_buckets / sizeof metrics_default_buckets[0];

struct metric_series {
  struct metric_series *next; /* hash chain */
  struct metric_series *order; /* creation order, for stable output */
  uint64_t hash;
  char **values;
  _Atomic uint64_t bits;     /* counter/gauge value as double bits; histogram sum */
  _Atomic uint64_t count;    /* histogram */
  _Atomic uint64_t *buckets; /* histogram, non-cumulative */
  const struct metric_family *fam;
};

struct metric_family {
  struct metric_family *next;
  char *name, *help;
  enum metric_type type;
  int nlabels;
  char *labels[METRIC_MAX_LABELS];
  int nbuckets;
  double buckets[METRIC_MAX_BUCKETS];
  pthread_mutex_t mu;
  struct metric_series *table[SERIES_HASH];
  struct metric_series *first, *last;
  metrics_collect_fn fn; /* set for scrape-time values */
  void *fn_arg;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct metric_family *reg_head, *reg_tail;

static double bits_to_d(uint64_t b) {
  double d;
  memcpy(&d, &b, sizeof d);
  return d;
}
static uint64_t d_to_bits(double d) {
  uint64_t b;
  memcpy(&b, &d, sizeof b);
  return b;
}

static void atomic_add_double(_Atomic uint64_t *p, double v) {
  uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(p, &old, d_to_bits(bits_to_d(old) + v),
                                                memory_order_relaxed, memory_order_relaxed)) {
  }
}

static void reg_append(struct metric_family *f) {
  pthread_mutex_lock(&reg_mu);
  if (reg_tail) reg_tail->next = f;
  else reg_head = f;
  reg_tail = f;
  pthread_mutex_unlock(&reg_mu);
}

static struct metric_family *reg_find(const char *name) {
  for (struct metric_family *f = reg_head; f; f = f->next)
    if (strcmp(f->name, name) == 0) return f;
  return NULL;
}

struct metric_family *metrics_family(const char *name, const char *help, enum metric_type t,
                                     int nlabels, const char *const *label_names,
                                     const double *buckets, int nbuckets) {
  pthread_mutex_lock(&reg_mu);
  struct metric_family *existing = reg_find(name);
  pthread_mutex_unlock(&reg_mu);
  if (existing) return existing; /* registering twice is idempotent */
  if (nlabels > METRIC_MAX_LABELS || nbuckets > METRIC_MAX_BUCKETS) return NULL;
  struct metric_family *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->name = strdup(name);
  f->help = strdup(help);
  f->type = t;
  f->nlabels = nlabels;
  for (int i = 0; i < nlabels; i++) f->labels[i] = strdup(label_names[i]);
  if (t == METRIC_HISTOGRAM) {
    if (!buckets) {
      buckets = metrics_default_buckets;
      nbuckets = metrics_default_nbuckets;
    }
    f->nbuckets = nbuckets;
    memcpy(f->buckets, buckets, sizeof(double) * (size_t)nbuckets);
  }
  pthread_mutex_init(&f->mu, NULL);
  reg_append(f);
  return f;
}

void metrics_func(const char *name, const char *help, enum metric_type t, metrics_collect_fn fn,
                  void *arg) {
  struct metric_family *f = metrics_family(name, help, t == METRIC_HISTOGRAM ? METRIC_GAUGE : t, 0,
                                           NULL, NULL, 0);
  if (f) {
    f->fn = fn;
    f->fn_arg = arg;
  }
}

static uint64_t labels_hash(int n, const char *const *v) {
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < n; i++) {
    for (const unsigned char *p = (const unsigned char *)v[i]; *p; p++) h = (h ^ *p) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
  }
  return h;
}

struct metric_series *metrics_series(struct metric_family *f, const char *const *values) {
  if (!f) return NULL;
  uint64_t h = labels_hash(f->nlabels, values);
  pthread_mutex_lock(&f->mu);
  struct metric_series *s = f->table[h % SERIES_HASH];
  for (; s; s = s->next) {
    if (s->hash != h) continue;
    int i = 0;
    while (i < f->nlabels && strcmp(s->values[i], values[i]) == 0) i++;
    if (i == f->nlabels) break;
  }
  if (!s && (s = calloc(1, sizeof *s))) {
    s->hash = h;
    s->fam = f;
    s->values = calloc((size_t)f->nlabels + 1, sizeof(char *));
    for (int i = 0; i < f->nlabels; i++) s->values[i] = strdup(values[i]);
    if (f->type == METRIC_HISTOGRAM) s->buckets = calloc((size_t)f->nbuckets, sizeof(uint64_t));
    s->next = f->table[h % SERIES_HASH];
    f->table[h % SERIES_HASH] = s;
    if (f->last) f->last->order = s;
    else f->first = s;
    f->last = s;
  }
  pthread_mutex_unlock(&f->mu);
  return s;
}

void metrics_add(struct metric_series *s, double v) {
  if (s) atomic_add_double(&s->bits, v);
}

void metrics_set(struct metric_series *s, double v) {
  if (s) atomic_store_explicit(&s->bits, d_to_bits(v), memory_order_relaxed);
}

void metrics_observe(struct metric_series *s, double v) {
  if (!s || !s->buckets) return;
  const struct metric_family *f = s->fam;
  int i = 0;
  while (i < f->nbuckets && v > f->buckets[i]) i++;
  if (i < f->nbuckets) atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
  atomic_add_double(&s->bits, v);
}

double metrics_value(const struct metric_series *s) {
  if (!s) return 0;
  if (s->buckets) return (double)atomic_load(&((struct metric_series *)s)->count);
  return bits_to_d(atomic_load(&((struct metric_series *)s)->bits));
}

static int put_num(struct buf *b, double v) {
  if (isnan(v)) return buf_puts(b, "NaN");
  if (isinf(v)) return buf_puts(b, v > 0 ? "+Inf" : "-Inf");
  if (v == (double)(int64_t)v && fabs(v) < 9e15) return buf_printf(b, "%lld", (long long)v);
  /* shortest form that reads back exactly: 0.00025, not 0.00025000000000000001 */
  char tmp[40];
  for (int prec = 6; prec <= 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*g", prec, v);
    if (strtod(tmp, NULL) == v) break;
  }
  return buf_puts(b, tmp);
}

static int put_escaped(struct buf *b, const char *s, bool help) {
  int rc = 0;
  for (; *s && !rc; s++) {
    if (*s == '\\') rc = buf_puts(b, "\\\\");
    else if (*s == '\n') rc = buf_puts(b, "\\n");
    else if (*s == '"' && !help) rc = buf_puts(b, "\\\"");
    else rc = buf_putc(b, *s);
  }
  return rc;
}

/* name{a="x",b="y"[,le="..."]} */
static int put_labels(struct buf *b, const struct metric_family *f, const struct metric_series *s,
                      const char *le) {
  if (f->nlabels == 0 && !le) return 0;
  int rc = buf_putc(b, '{');
  for (int i = 0; i < f->nlabels && !rc; i++) {
    rc = buf_printf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
    if (!rc) rc = put_escaped(b, s->values[i], false);
    if (!rc) rc = buf_putc(b, '"');
  }
  if (le && !rc) rc = buf_printf(b, "%sle=\"%s\"", f->nlabels ? "," : "", le);
  return rc ? rc : buf_putc(b, '}');
}

static const char *type_name(enum metric_type t) {
  return t == METRIC_COUNTER ? "counter" : t == METRIC_GAUGE ? "gauge" : "histogram";
}

int metrics_expose(struct buf *b) {
  pthread_mutex_lock(&reg_mu);
  struct metric_family *head = reg_head;
  pthread_mutex_unlock(&reg_mu);
  int rc = 0;
  /* families are only appended, so walking without the registry lock is safe */
  for (struct metric_family *f = head; f && !rc; f = f->next) {
    rc = buf_printf(b, "# HELP %s ", f->name);
    if (!rc) rc = put_escaped(b, f->help, true);
    if (!rc) rc = buf_printf(b, "\n# TYPE %s %s\n", f->name, type_name(f->type));
    if (rc) break;
    if (f->fn) {
      rc = buf_printf(b, "%s ", f->name);
      if (!rc) rc = put_num(b, f->fn(f->fn_arg));
      if (!rc) rc = buf_putc(b, '\n');
      continue;
    }
    pthread_mutex_lock(&f->mu);
    for (struct metric_series *s = f->first; s && !rc; s = s->order) {
      if (f->type != METRIC_HISTOGRAM) {
        rc = buf_puts(b, f->name);
        if (!rc) rc = put_labels(b, f, s, NULL);
        if (!rc) rc = buf_putc(b, ' ');
        if (!rc) rc = put_num(b, bits_to_d(atomic_load(&s->bits)));
        if (!rc) rc = buf_putc(b, '\n');
        continue;
      }
      uint64_t cum = 0;
      for (int i = 0; i <= f->nbuckets && !rc; i++) {
        char le[40];
        if (i < f->nbuckets) {
          cum += atomic_load(&s->buckets[i]);
          struct buf tmp;
          buf_init(&tmp);
          put_num(&tmp, f->buckets[i]);
          str_copy(le, sizeof le, tmp.data ? tmp.data : "0");
          buf_fini(&tmp);
        } else {
          str_copy(le, sizeof le, "+Inf");
        }
        /* +Inf is the total count, which is read separately; keep it >= cum */
        uint64_t v = i < f->nbuckets ? cum : atomic_load(&s->count);
        if (v < cum) v = cum;
        rc = buf_printf(b, "%s_bucket", f->name);
        if (!rc) rc = put_labels(b, f, s, le);
        if (!rc) rc = buf_printf(b, " %llu\n", (unsigned long long)v);
      }
      if (!rc) rc = buf_printf(b, "%s_sum", f->name);
      if (!rc) rc = put_labels(b, f, s, NULL);
      if (!rc) rc = buf_putc(b, ' ');
      if (!rc) rc = put_num(b, bits_to_d(atomic_load(&s->bits)));
      if (!rc) rc = buf_printf(b, "\n%s_count", f->name);
      if (!rc) rc = put_labels(b, f, s, NULL);
      if (!rc) rc = buf_printf(b, " %llu\n", (unsigned long long)atomic_load(&s->count));
    }
    pthread_mutex_unlock(&f->mu);
  }
  return rc;
}

void metrics_reset_all(void) {
  pthread_mutex_lock(&reg_mu);
  struct metric_family *f = reg_head;
  reg_head = reg_tail = NULL;
  pthread_mutex_unlock(&reg_mu);
  while (f) {
    struct metric_family *nf = f->next;
    struct metric_series *s = f->first;
    while (s) {
      struct metric_series *ns = s->order;
      for (int i = 0; i < f->nlabels; i++) free(s->values[i]);
      free(s->values);
      free(s->buckets);
      free(s);
      s = ns;
    }
    for (int i = 0; i < f->nlabels; i++) free(f->labels[i]);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->mu);
    free(f);
    f = nf;
  }
}

/* ---- process metrics, read from /proc at scrape time ---------------------- */
#include <dirent.h>
#include <stdio.h>
#include <unistd.h>

static double process_start_s;

static int proc_stat_fields(unsigned long *utime, unsigned long *stime, long *rss_pages) {
  FILE *f = fopen("/proc/self/stat", "r");
  if (!f) return -1;
  char line[1024];
  size_t n = fread(line, 1, sizeof line - 1, f);
  fclose(f);
  line[n] = 0;
  /* the command name may hold spaces: start after its closing paren */
  char *p = strrchr(line, ')');
  if (!p) return -1;
  /* fields after ')' start at field 3 (state) */
  int field = 2;
  char *save = NULL;
  for (char *tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
    field++;
    if (field == 14) *utime = strtoul(tok, NULL, 10);
    else if (field == 15) *stime = strtoul(tok, NULL, 10);
    else if (field == 24) {
      *rss_pages = strtol(tok, NULL, 10);
      return 0;
    }
  }
  return -1;
}

static double m_cpu(void *arg) {
  (void)arg;
  unsigned long u = 0, s = 0;
  long rss = 0;
  if (proc_stat_fields(&u, &s, &rss)) return 0;
  return (double)(u + s) / (double)sysconf(_SC_CLK_TCK);
}

static double m_rss(void *arg) {
  (void)arg;
  unsigned long u = 0, s = 0;
  long rss = 0;
  if (proc_stat_fields(&u, &s, &rss)) return 0;
  return (double)rss * (double)sysconf(_SC_PAGESIZE);
}

static double m_fds(void *arg) {
  (void)arg;
  DIR *d = opendir("/proc/self/fd");
  if (!d) return 0;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)))
    if (de->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the directory handle itself */
}

static double m_start(void *arg) {
  (void)arg;
  return process_start_s;
}

void metrics_process_register(void) {
  if (process_start_s == 0) process_start_s = time_wall_s();
  metrics_func("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
               METRIC_COUNTER, m_cpu, NULL);
  metrics_func("process_resident_memory_bytes", "Resident memory size in bytes.", METRIC_GAUGE, m_rss, NULL);
  metrics_func("process_open_fds", "Number of open file descriptors.", METRIC_GAUGE, m_fds, NULL);
  metrics_func("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
               METRIC_GAUGE, m_start, NULL);
  static const char *const bl[] = {"version", "commit"};
  static const char *const bv[] = {KILN_VERSION, kiln_commit};
  struct metric_family *bi = metrics_family("kiln_build_info", "Kiln build information; always 1.",
                                            METRIC_GAUGE, 2, bl, NULL, 0);
  metrics_set(metrics_series(bi, bv), 1);
}
