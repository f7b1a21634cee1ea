/* serve/nvml: GPU gauges for /metrics from NVML, reached through dlopen so
 * the binary neither links nor needs libnvidia-ml (absent: no GPU metrics). */
#include "serve.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/* The few NVML declarations Kiln calls (nvml.h is not shipped with Debian's
 * driver packages); the values are NVML's stable ABI. */
typedef struct nvml_device *nvmlDevice_t;
typedef struct {
  unsigned gpu, memory; /* percent over the last sample period */
} nvmlUtilization_t;
typedef struct {
  unsigned long long total, free, used; /* bytes */
} nvmlMemory_t;
#define NVML_SUCCESS 0
#define NVML_TEMPERATURE_GPU 0
#define NVML_MAX_GPUS 64

static struct {
  int (*init)(void);
  int (*count)(unsigned *);
  int (*handle)(unsigned, nvmlDevice_t *);
  int (*util)(nvmlDevice_t, nvmlUtilization_t *);
  int (*mem)(nvmlDevice_t, nvmlMemory_t *);
  int (*temp)(nvmlDevice_t, int, unsigned *);
  const char *(*errstr)(int);
  unsigned ngpus;
  nvmlDevice_t dev[NVML_MAX_GPUS];
  unsigned index[NVML_MAX_GPUS]; /* NVML's index, the gpu label */
  struct metric_series *util_s[NVML_MAX_GPUS], *used_s[NVML_MAX_GPUS], *total_s[NVML_MAX_GPUS],
      *temp_s[NVML_MAX_GPUS];
  pthread_mutex_t mu; /* one refresh at a time */
} nv = {.mu = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t nvml_once = PTHREAD_ONCE_INIT;
static int nvml_found;

static const char *nvml_err(int rc) { return nv.errstr ? nv.errstr(rc) : "unknown NVML error"; }

/* Registered before the per-GPU families, so /metrics calls it first and
 * the gauges it refreshes are current when they are written out: NVML is
 * read at scrape time only, with no polling thread. */
static double nvml_refresh(void *arg) {
  (void)arg;
  pthread_mutex_lock(&nv.mu);
  for (unsigned i = 0; i < nv.ngpus; i++) {
    nvmlUtilization_t u;
    nvmlMemory_t m;
    unsigned t;
    if (nv.util(nv.dev[i], &u) == NVML_SUCCESS) metrics_set(nv.util_s[i], u.gpu / 100.0);
    if (nv.mem(nv.dev[i], &m) == NVML_SUCCESS) {
      metrics_set(nv.used_s[i], (double)m.used);
      metrics_set(nv.total_s[i], (double)m.total);
    }
    if (nv.temp(nv.dev[i], NVML_TEMPERATURE_GPU, &t) == NVML_SUCCESS) metrics_set(nv.temp_s[i], t);
  }
  pthread_mutex_unlock(&nv.mu);
  return nv.ngpus;
}

static void nvml_setup(void) {
  const char *lib = getenv("KILN_NVML_LIBRARY");
  void *h = dlopen(lib && *lib ? lib : "libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *why = dlerror();
    log_msg(LOG_DEBUG, "serve.nvml", "no GPU metrics: %s",
            why ? why : "libnvidia-ml.so.1 not found");
    return;
  }
  /* POSIX's way from void * to a function pointer */
#define NVML_SYM(field, name) *(void **)(&nv.field) = dlsym(h, name)
  NVML_SYM(init, "nvmlInit_v2");
  NVML_SYM(count, "nvmlDeviceGetCount_v2");
  NVML_SYM(handle, "nvmlDeviceGetHandleByIndex_v2");
  NVML_SYM(util, "nvmlDeviceGetUtilizationRates");
  NVML_SYM(mem, "nvmlDeviceGetMemoryInfo");
  NVML_SYM(temp, "nvmlDeviceGetTemperature");
  NVML_SYM(errstr, "nvmlErrorString");
#undef NVML_SYM
  if (!nv.init || !nv.count || !nv.handle || !nv.util || !nv.mem || !nv.temp) {
    log_msg(LOG_INFO, "serve.nvml", "no GPU metrics: libnvidia-ml lacks a function Kiln calls");
    dlclose(h);
    return;
  }
  int rc = nv.init();
  unsigned n = 0;
  if (rc == NVML_SUCCESS) rc = nv.count(&n);
  if (rc != NVML_SUCCESS) {
    /* the library without a driver (a container with no GPU given to it) */
    log_msg(LOG_INFO, "serve.nvml", "no GPU metrics: %s", nvml_err(rc));
    dlclose(h);
    return;
  }
  if (n > NVML_MAX_GPUS) n = NVML_MAX_GPUS;
  for (unsigned i = 0; i < n; i++) {
    if ((rc = nv.handle(i, &nv.dev[nv.ngpus])) != NVML_SUCCESS) {
      log_msg(LOG_INFO, "serve.nvml", "GPU %u: %s", i, nvml_err(rc));
      continue;
    }
    nv.index[nv.ngpus++] = i;
  }
  if (!nv.ngpus) return; /* the library stays loaded: NVML may hold state past nvmlInit */

  metrics_func("kiln_gpu_count", "GPUs NVML reports (their gauges are read at each scrape).",
               METRIC_GAUGE, nvml_refresh, NULL);
  static const char *const lbl[] = {"gpu"};
  struct metric_family *fu =
      metrics_family("kiln_gpu_utilization_ratio",
                     "Share of the last sample period a kernel ran on the GPU (0-1).", METRIC_GAUGE,
                     1, lbl, NULL, 0);
  struct metric_family *fm = metrics_family(
      "kiln_gpu_memory_used_bytes", "GPU memory in use, bytes.", METRIC_GAUGE, 1, lbl, NULL, 0);
  struct metric_family *ft = metrics_family(
      "kiln_gpu_memory_total_bytes", "GPU memory installed, bytes.", METRIC_GAUGE, 1, lbl, NULL, 0);
  struct metric_family *fc =
      metrics_family("kiln_gpu_temperature_celsius", "GPU core temperature, degrees Celsius.",
                     METRIC_GAUGE, 1, lbl, NULL, 0);
  for (unsigned i = 0; i < nv.ngpus; i++) {
    char idx[16];
    snprintf(idx, sizeof idx, "%u", nv.index[i]);
    const char *v[] = {idx};
    nv.util_s[i] = metrics_series(fu, v);
    nv.used_s[i] = metrics_series(fm, v);
    nv.total_s[i] = metrics_series(ft, v);
    nv.temp_s[i] = metrics_series(fc, v);
  }
  nvml_refresh(NULL);
  nvml_found = (int)nv.ngpus;
  log_msg(LOG_INFO, "serve.nvml", "GPU metrics for %u GPU(s)", nv.ngpus);
}

int serve_nvml_init(void) {
  pthread_once(&nvml_once, nvml_setup);
  return nvml_found;
}
