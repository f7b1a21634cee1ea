/* base/err: the one error list turned into lookups, and struct err helpers. */
#include "base.h"

#include <stdio.h>
#include <string.h>

static const struct {
  const char *code;
  int status;
  const char *msg;
} err_table[] = {
#define KILN_ERR_ROW(name, code, status, msg) {code, status, msg},
    KILN_ERR_MAP(KILN_ERR_ROW)
#undef KILN_ERR_ROW
};

static enum err_code err_clamp(enum err_code c) {
  return ((unsigned)c < ERR__COUNT) ? c : ERR_INTERNAL;
}

const char *err_code_str(enum err_code c) { return err_table[err_clamp(c)].code; }
int err_http_status(enum err_code c) { return err_table[err_clamp(c)].status; }
const char *err_default_msg(enum err_code c) { return err_table[err_clamp(c)].msg; }

int err_set(struct err *e, enum err_code c, const char *fmt, ...) {
  if (e) {
    e->code = err_clamp(c);
    if (fmt) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(e->msg, sizeof e->msg, fmt, ap);
      va_end(ap);
    } else {
      str_copy(e->msg, sizeof e->msg, err_default_msg(c));
    }
  }
  return -(int)err_clamp(c);
}

void err_clear(struct err *e) {
  if (e) {
    e->code = ERR_OK;
    e->msg[0] = 0;
  }
}
