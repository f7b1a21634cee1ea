/* tests/fuzz/fuzz_common: what every harness shares — CHECK, which names the
 * harness (FUZZ_NAME, defined before including this) and aborts with the
 * failed invariant, and esc() for printing fuzzed bytes in messages. */
#ifndef KILN_FUZZ_COMMON_H
#define KILN_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>

#ifndef FUZZ_NAME
#error "define FUZZ_NAME before including fuzz_common.h"
#endif

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, FUZZ_NAME ": invariant failed: %s\n  ", #cond);                              \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fprintf(stderr, "\n");                                                                       \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

/* s with control and non-ASCII bytes as \xNN, for messages (rotating buffers) */
static inline const char *esc(const char *s) {
  static char bufs[4][512];
  static int which;
  char *o = bufs[which++ & 3];
  size_t n = 0;
  for (; *s && n + 5 < 512; s++) {
    unsigned char c = (unsigned char)*s;
    if (c >= 0x20 && c < 0x7f)
      o[n++] = (char)c;
    else
      n += (size_t)snprintf(o + n, 512 - n, "\\x%02x", c);
  }
  o[n] = 0;
  return o;
}

#endif
