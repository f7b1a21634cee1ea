/* base/arena: request-scoped bump allocation, freed in one go. */
#include "base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arena_block {
  struct arena_block *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
};

#define ARENA_ALIGN 16

void arena_init(struct arena *a, size_t block_size, size_t limit) {
  a->head = NULL;
  a->block_size = block_size ? block_size : 8192;
  a->total = 0;
  a->limit = limit;
}

void arena_fini(struct arena *a) {
  struct arena_block *b = a->head;
  while (b) {
    struct arena_block *n = b->next;
    free(b);
    b = n;
  }
  a->head = NULL;
  a->total = 0;
}

void arena_reset(struct arena *a) {
  struct arena_block *b = a->head;
  if (!b) return;
  /* keep the oldest block (the tail): it is the one sized by block_size */
  struct arena_block *keep = b;
  while (keep->next) keep = keep->next;
  while (b != keep) {
    struct arena_block *n = b->next;
    free(b);
    b = n;
  }
  keep->used = 0;
  a->head = keep;
  a->total = 0;
}

void *arena_alloc(struct arena *a, size_t n) {
  if (n == 0) n = 1;
  if (n > SIZE_MAX / 2) return NULL;
  size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
  if (a->limit && a->total + need > a->limit) return NULL;
  struct arena_block *b = a->head;
  if (!b || b->cap - b->used < need) {
    size_t cap = a->block_size;
    if (need > cap / 2) cap = need; /* big allocations get their own block */
    struct arena_block *nb = malloc(sizeof *nb + cap);
    if (!nb) return NULL;
    nb->used = 0;
    nb->cap = cap;
    if (b && need == cap && b->cap - b->used > 256) {
      /* keep filling the current block; slot the big one behind it */
      nb->next = b->next;
      b->next = nb;
      nb->used = need;
      a->total += need;
      return nb->data;
    }
    nb->next = b;
    a->head = nb;
    b = nb;
  }
  void *p = b->data + b->used;
  b->used += need;
  a->total += need;
  return p;
}

void *arena_zalloc(struct arena *a, size_t n) {
  void *p = arena_alloc(a, n);
  if (p) memset(p, 0, n);
  return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n) {
  char *p = arena_alloc(a, n + 1);
  if (!p) return NULL;
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

char *arena_strdup(struct arena *a, const char *s) {
  return s ? arena_strndup(a, s, strlen(s)) : NULL;
}

char *arena_printf(struct arena *a, const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *p = NULL;
  if (n >= 0 && (p = arena_alloc(a, (size_t)n + 1))) vsnprintf(p, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  return p;
}
