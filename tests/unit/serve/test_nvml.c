/* tests for serve/nvml: without libnvidia-ml there are no GPU metrics and no
 * error; with a stand-in library (built here, answering like NVML) the
 * gauges show what it reports at each scrape. Real NVML is exercised only
 * on a machine with a GPU, which CI never requires. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"

static char *expose(void) {
  struct buf b;
  buf_init(&b);
  cr_assert_eq(metrics_expose(&b), 0);
  char *s = buf_steal(&b);
  return s ? s : strdup("");
}

Test(serve_nvml, an_absent_library_means_no_gpu_metrics_and_no_error) {
  metrics_reset_all();
  cr_assert_eq(setenv("KILN_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1", 1), 0);
  cr_assert_eq(serve_nvml_init(), 0);
  cr_assert_eq(serve_nvml_init(), 0, "a second call is a no-op");
  char *out = expose();
  cr_assert(strstr(out, "kiln_gpu") == NULL, "%s", out);
  free(out);
}

/* NVML's calls with fixed answers: two GPUs, settable temperature */
static const char FAKE_NVML[] =
    "typedef struct { unsigned gpu, memory; } U;\n"
    "typedef struct { unsigned long long total, free, used; } M;\n"
    "static int dev[2]; static unsigned temp = 41;\n"
    "void fake_set_temp(unsigned t) { temp = t; }\n"
    "int nvmlInit_v2(void) { extern char *getenv(const char *); return getenv(\"FAKE_NVML_FAIL\") "
    "? 9 : 0; }\n"
    "int nvmlDeviceGetCount_v2(unsigned *n) { *n = 2; return 0; }\n"
    "int nvmlDeviceGetHandleByIndex_v2(unsigned i, int **d) { *d = &dev[i]; return 0; }\n"
    "int nvmlDeviceGetUtilizationRates(int *d, U *u) { u->gpu = d == &dev[0] ? 37 : 100; u->memory "
    "= 5; return 0; }\n"
    "int nvmlDeviceGetMemoryInfo(int *d, M *m) { m->total = 85899345920ull; m->used = d == &dev[0] "
    "? 1073741824ull : "
    "3221225472ull; m->free = m->total - m->used; return 0; }\n"
    "int nvmlDeviceGetTemperature(int *d, int sensor, unsigned *t) { if (sensor != 0) return 2; *t "
    "= d == &dev[0] ? "
    "temp : temp + 10; return 0; }\n"
    "const char *nvmlErrorString(int rc) { return rc == 9 ? \"Driver Not Loaded\" : \"fake "
    "error\"; }\n";

static void build_fake(char *dir, size_t cap, char *lib, size_t libcap) {
  str_copy(dir, cap, "/tmp/kiln-nvml-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  char src[128], cmd[512];
  snprintf(src, sizeof src, "%s/fake.c", dir);
  snprintf(lib, libcap, "%s/libnvidia-ml.so.1", dir);
  FILE *f = fopen(src, "w");
  cr_assert_not_null(f);
  fputs(FAKE_NVML, f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "cc -shared -fPIC -o %s %s", lib, src);
  cr_assert_eq(system(cmd), 0, "building the stand-in NVML failed");
}

static void remove_dir(const char *dir) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
}

Test(serve_nvml, gauges_per_gpu_are_read_at_each_scrape) {
  char dir[64], lib[128];
  build_fake(dir, sizeof dir, lib, sizeof lib);
  metrics_reset_all();
  cr_assert_eq(setenv("KILN_NVML_LIBRARY", lib, 1), 0);
  cr_assert_eq(serve_nvml_init(), 2);
  cr_assert_eq(serve_nvml_init(), 2, "a second call registers nothing more");
  char *out = expose();
  static const char *const want[] = {
      "# TYPE kiln_gpu_utilization_ratio gauge\n",
      "kiln_gpu_count 2\n",
      "kiln_gpu_utilization_ratio{gpu=\"0\"} 0.37\n",
      "kiln_gpu_utilization_ratio{gpu=\"1\"} 1\n",
      "kiln_gpu_memory_used_bytes{gpu=\"0\"} 1073741824\n",
      "kiln_gpu_memory_used_bytes{gpu=\"1\"} 3221225472\n",
      "kiln_gpu_memory_total_bytes{gpu=\"1\"} 85899345920\n",
      "kiln_gpu_temperature_celsius{gpu=\"0\"} 41\n",
      "kiln_gpu_temperature_celsius{gpu=\"1\"} 51\n",
  };
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    cr_assert(strstr(out, want[i]) != NULL, "%s in\n%s", want[i], out);
  cr_assert(strstr(out, "kiln_gpu_count 2\n") < strstr(out, "kiln_gpu_utilization_ratio{"),
            "count (the refresh) first");
  free(out);

  /* the same handle the backend opened: change what the "GPU" reports */
  void *h = dlopen(lib, RTLD_NOW | RTLD_NOLOAD);
  cr_assert_not_null(h, "the library stays loaded");
  void (*set_temp)(unsigned);
  *(void **)(&set_temp) = dlsym(h, "fake_set_temp");
  cr_assert_not_null(set_temp);
  set_temp(77);
  out = expose();
  cr_assert(strstr(out, "kiln_gpu_temperature_celsius{gpu=\"0\"} 77\n") != NULL, "%s", out);
  cr_assert(strstr(out, "kiln_gpu_temperature_celsius{gpu=\"1\"} 87\n") != NULL, "%s", out);
  free(out);
  dlclose(h);
  remove_dir(dir);
}

Test(serve_nvml, a_library_without_a_driver_means_no_gpu_metrics) {
  char dir[64], lib[128];
  build_fake(dir, sizeof dir, lib, sizeof lib);
  metrics_reset_all();
  cr_assert_eq(setenv("KILN_NVML_LIBRARY", lib, 1), 0);
  cr_assert_eq(setenv("FAKE_NVML_FAIL", "1", 1), 0);
  cr_assert_eq(serve_nvml_init(), 0);
  char *out = expose();
  cr_assert(strstr(out, "kiln_gpu") == NULL, "%s", out);
  free(out);
  remove_dir(dir);
}
