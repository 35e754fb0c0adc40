/* Allocation wrappers that abort on out-of-memory, and the bump arena. */
#include "topup/mem.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void mem_die(size_t size)
{
    /* Out of memory is not a condition callers can handle; say so once and stop. */
    fprintf(stderr, "{\"level\":\"error\",\"msg\":\"out of memory\",\"size\":%zu}\n", size);
    abort();
}

void *mem_alloc(size_t size)
{
    void *p = malloc(size == 0 ? 1 : size);
    if (p == NULL) {
        mem_die(size);
    }
    return p;
}

void *mem_calloc(size_t n, size_t size)
{
    void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
    if (p == NULL) {
        mem_die(n * size);
    }
    return p;
}

void *mem_realloc(void *p, size_t size)
{
    void *q = realloc(p, size == 0 ? 1 : size);
    if (q == NULL) {
        mem_die(size);
    }
    return q;
}

char *mem_strdup(const char *s)
{
    return mem_strndup(s, strlen(s));
}

char *mem_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = mem_alloc(len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

struct arena_block {
    struct arena_block *next;
    size_t size;
    size_t used;
    alignas(max_align_t) unsigned char data[];
};

struct arena {
    struct arena_block *head;
    size_t block_size;
};

static struct arena_block *arena_block_new(size_t size)
{
    struct arena_block *b = mem_alloc(sizeof(*b) + size);
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

struct arena *arena_new(size_t block_size)
{
    struct arena *a = mem_alloc(sizeof(*a));
    a->block_size = block_size < 256 ? 256 : block_size;
    a->head = arena_block_new(a->block_size);
    return a;
}

void *arena_alloc(struct arena *a, size_t size)
{
    const size_t align = alignof(max_align_t);
    size_t need = (size + align - 1) & ~(align - 1);
    struct arena_block *b = a->head;
    if (b->size - b->used < need) {
        size_t bs = need > a->block_size ? need : a->block_size;
        struct arena_block *nb = arena_block_new(bs);
        nb->next = b;
        a->head = nb;
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += need;
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = arena_alloc(a, len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *arena_strdup(struct arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

void arena_reset(struct arena *a)
{
    /* Keep the oldest block (the first one allocated, at the tail) and free the rest. */
    struct arena_block *b = a->head;
    while (b->next != NULL) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    b->used = 0;
    a->head = b;
}

void arena_free(struct arena *a)
{
    if (a == NULL) {
        return;
    }
    struct arena_block *b = a->head;
    while (b != NULL) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}
