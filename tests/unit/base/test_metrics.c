/* tests for base/metrics: exposition format, labels, histograms, threads. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "base/base.h"

static char *expose(void) {
  struct buf b;
  buf_init(&b);
  cr_assert_eq(metrics_expose(&b), 0);
  return buf_steal(&b);
}

Test(metrics, counter_with_labels_renders_help_type_and_escapes) {
  metrics_reset_all();
  const char *ln[] = {"method", "path"};
  struct metric_family *f = metrics_family("t_requests_total", "Requests\nseen \\ here", METRIC_COUNTER, 2, ln, NULL, 0);
  const char *lv[] = {"GET", "a\"b\\c\nd"};
  struct metric_series *s = metrics_series(f, lv);
  metrics_add(s, 1);
  metrics_add(s, 2);
  cr_assert_eq(metrics_series(f, lv), s, "same labels, same series");
  char *out = expose();
  cr_assert(strstr(out, "# HELP t_requests_total Requests\\nseen \\\\ here\n") != NULL, "%s", out);
  cr_assert(strstr(out, "# TYPE t_requests_total counter\n") != NULL, "%s", out);
  cr_assert(strstr(out, "t_requests_total{method=\"GET\",path=\"a\\\"b\\\\c\\nd\"} 3\n") != NULL, "%s", out);
  free(out);
  metrics_reset_all();
}

Test(metrics, histogram_is_cumulative_with_inf_sum_and_count) {
  metrics_reset_all();
  const double buckets[] = {0.1, 0.5, 1};
  const char *ln[] = {"route"};
  struct metric_family *f = metrics_family("t_latency_seconds", "Latency", METRIC_HISTOGRAM, 1, ln, buckets, 3);
  const char *lv[] = {"/x"};
  struct metric_series *s = metrics_series(f, lv);
  double obs[] = {0.05, 0.1, 0.3, 0.7, 2.0, 5.0};
  for (int i = 0; i < 6; i++) metrics_observe(s, obs[i]);
  char *out = expose();
  cr_assert(strstr(out, "t_latency_seconds_bucket{route=\"/x\",le=\"0.1\"} 2\n") != NULL, "%s", out);
  cr_assert(strstr(out, "t_latency_seconds_bucket{route=\"/x\",le=\"0.5\"} 3\n") != NULL, "%s", out);
  cr_assert(strstr(out, "t_latency_seconds_bucket{route=\"/x\",le=\"1\"} 4\n") != NULL, "%s", out);
  cr_assert(strstr(out, "t_latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 6\n") != NULL, "%s", out);
  cr_assert(strstr(out, "t_latency_seconds_sum{route=\"/x\"} 8.15\n") != NULL, "%s", out);
  cr_assert(strstr(out, "t_latency_seconds_count{route=\"/x\"} 6\n") != NULL, "%s", out);
  cr_assert_eq(metrics_value(s), 6);
  free(out);
  metrics_reset_all();
}

Test(metrics, default_bucket_labels_are_shortest_round_trip) {
  metrics_reset_all();
  struct metric_family *f = metrics_family("t_h", "h", METRIC_HISTOGRAM, 0, NULL, NULL, 0);
  metrics_observe(metrics_series(f, NULL), 0.0003);
  char *out = expose();
  cr_assert(strstr(out, "le=\"0.00025\"") != NULL, "%s", out);
  cr_assert(strstr(out, "0.00025000000000000001") == NULL, "%s", out);
  free(out);
  metrics_reset_all();
}

static double seven(void *arg) {
  (void)arg;
  return 7.5;
}

Test(metrics, gauges_and_scrape_time_functions) {
  metrics_reset_all();
  struct metric_family *g = metrics_family("t_queue_depth", "Depth", METRIC_GAUGE, 0, NULL, NULL, 0);
  struct metric_series *s = metrics_series(g, NULL);
  metrics_set(s, 10);
  metrics_add(s, -3);
  metrics_func("t_fn", "computed", METRIC_GAUGE, seven, NULL);
  char *out = expose();
  cr_assert(strstr(out, "t_queue_depth 7\n") != NULL, "%s", out);
  cr_assert(strstr(out, "# TYPE t_fn gauge\nt_fn 7.5\n") != NULL, "%s", out);
  free(out);
  metrics_reset_all();
}

static struct metric_family *race_f;
static void *hammer(void *arg) {
  (void)arg;
  const char *ln[] = {"k"};
  (void)ln;
  for (int i = 0; i < 20000; i++) {
    const char *lv[] = {i % 2 ? "odd" : "even"};
    metrics_add(metrics_series(race_f, lv), 1);
  }
  return NULL;
}

Test(metrics, concurrent_increments_are_not_lost) {
  metrics_reset_all();
  const char *ln[] = {"k"};
  race_f = metrics_family("t_race_total", "race", METRIC_COUNTER, 1, ln, NULL, 0);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, hammer, NULL);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  const char *odd[] = {"odd"}, *even[] = {"even"};
  cr_assert_eq(metrics_value(metrics_series(race_f, odd)), 40000);
  cr_assert_eq(metrics_value(metrics_series(race_f, even)), 40000);
  metrics_reset_all();
}

Test(metrics, process_metrics_are_plausible) {
  metrics_reset_all();
  metrics_process_register();
  char *out = expose();
  cr_assert(strstr(out, "# TYPE process_cpu_seconds_total counter") != NULL);
  cr_assert(strstr(out, "kiln_build_info{version=\"" KILN_VERSION "\"") != NULL, "%s", out);
  const char *rss = strstr(out, "\nprocess_resident_memory_bytes ");
  cr_assert_not_null(rss);
  double v = strtod(rss + strlen("\nprocess_resident_memory_bytes "), NULL);
  cr_assert_gt(v, 100000);
  const char *fds = strstr(out, "\nprocess_open_fds ");
  cr_assert_gt(strtod(fds + strlen("\nprocess_open_fds "), NULL), 2);
  free(out);
  metrics_reset_all();
}
