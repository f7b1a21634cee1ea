/* base/log: structured JSON-lines logging on stderr. One write(2) per line so
 * lines from many threads never interleave. */
#include "base.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static enum log_level log_min = LOG_INFO;
static bool log_quiet;

void log_set_level(enum log_level lvl) { log_min = lvl; }
void log_set_quiet(bool quiet) { log_quiet = quiet; }

enum log_level log_level_parse(const char *s, enum log_level dflt) {
  if (str_eq(s, "debug")) return LOG_DEBUG;
  if (str_eq(s, "info")) return LOG_INFO;
  if (str_eq(s, "warn")) return LOG_WARN;
  if (str_eq(s, "error")) return LOG_ERROR;
  return dflt;
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_line(const char *json_obj, size_t n) {
  if (log_quiet) return;
  char stackbuf[2048];
  if (n + 1 <= sizeof stackbuf) {
    memcpy(stackbuf, json_obj, n);
    stackbuf[n] = '\n';
    ssize_t w = write(STDERR_FILENO, stackbuf, n + 1);
    (void)w;
  } else {
    ssize_t w = write(STDERR_FILENO, json_obj, n);
    w = write(STDERR_FILENO, "\n", 1);
    (void)w;
  }
}

void log_msg(enum log_level lvl, const char *event, const char *fmt, ...) {
  if (lvl < log_min || log_quiet) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  json_t *o = json_pack("{s:f, s:s, s:s, s:s}", "ts", time_wall_s(), "level",
                        level_names[lvl], "event", event, "msg", msg);
  if (!o) return;
  struct buf b;
  buf_init(&b);
  if (json_emit(&b, o) == 0) log_line(b.data, b.len);
  buf_fini(&b);
  json_decref(o);
}
