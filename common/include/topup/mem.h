/* Allocation wrappers that abort on out-of-memory, and a per-message arena. */
#ifndef TOPUP_MEM_H
#define TOPUP_MEM_H

#include <stddef.h>

/* These never return NULL: out of memory logs and aborts. Free with free(). */
void *mem_alloc(size_t size);
void *mem_calloc(size_t n, size_t size);
void *mem_realloc(void *p, size_t size);
char *mem_strdup(const char *s);
char *mem_strndup(const char *s, size_t n);

/* Bump allocator: many small allocations freed in one call (one decoded message, one request). */
struct arena;

/* Returns a new arena; the caller owns it and frees it with arena_free(). */
struct arena *arena_new(size_t block_size);
/* Returns memory owned by the arena, aligned for any type, valid until arena_reset/arena_free. */
void *arena_alloc(struct arena *a, size_t size);
/* Copies s into the arena. */
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
/* Frees everything allocated so far but keeps the first block for reuse. */
void arena_reset(struct arena *a);
void arena_free(struct arena *a);

#endif
