/* Append-only JSON text writer for the batch statements' parameters. */
#include "jsonw.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topup/mem.h"

#define JSONW_INITIAL_CAP 4096

void jsonw_init(struct jsonw *w)
{
    memset(w, 0, sizeof(*w));
    w->cap = JSONW_INITIAL_CAP;
    w->buf = mem_alloc(w->cap);
    w->buf[0] = '\0';
}

void jsonw_deinit(struct jsonw *w)
{
    free(w->buf);
    memset(w, 0, sizeof(*w));
}

void jsonw_reset(struct jsonw *w)
{
    w->len = 0;
    w->buf[0] = '\0';
    w->depth = 0;
    w->after_key = false;
    memset(w->need_comma, 0, sizeof(w->need_comma));
}

void jsonw_next_document(struct jsonw *w)
{
    assert(w->depth == 0);
    w->need_comma[0] = false;
    w->after_key = false;
}

static void jsonw_reserve(struct jsonw *w, size_t more)
{
    if (w->len + more + 1 > w->cap) {
        while (w->len + more + 1 > w->cap) {
            w->cap *= 2;
        }
        w->buf = mem_realloc(w->buf, w->cap);
    }
}

static void jsonw_put(struct jsonw *w, const char *s, size_t n)
{
    jsonw_reserve(w, n);
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

/* The separator before a value: a comma unless it is the first or follows its key. */
static void jsonw_value(struct jsonw *w)
{
    if (!w->after_key && w->need_comma[w->depth]) {
        jsonw_put(w, ",", 1);
    }
    w->after_key = false;
    w->need_comma[w->depth] = true;
}

static void jsonw_open(struct jsonw *w, char c)
{
    jsonw_value(w);
    jsonw_put(w, &c, 1);
    assert(w->depth + 1 < JSONW_DEPTH_MAX);
    w->depth++;
    w->need_comma[w->depth] = false;
}

static void jsonw_close(struct jsonw *w, char c)
{
    assert(w->depth > 0);
    w->depth--;
    jsonw_put(w, &c, 1);
}

void jsonw_array_begin(struct jsonw *w)
{
    jsonw_open(w, '[');
}

void jsonw_array_end(struct jsonw *w)
{
    jsonw_close(w, ']');
}

void jsonw_object_begin(struct jsonw *w)
{
    jsonw_open(w, '{');
}

void jsonw_object_end(struct jsonw *w)
{
    jsonw_close(w, '}');
}

static void jsonw_quoted(struct jsonw *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(s);
    jsonw_reserve(w, n * 6 + 2); /* worst case: every byte a \u00XX escape */
    char *o = w->buf + w->len;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = (char)*p;
        } else if (*p < 0x20) {
            *o++ = '\\';
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        } else {
            *o++ = (char)*p;
        }
    }
    *o++ = '"';
    w->len = (size_t)(o - w->buf);
    w->buf[w->len] = '\0';
}

void jsonw_key(struct jsonw *w, const char *key)
{
    if (w->need_comma[w->depth]) {
        jsonw_put(w, ",", 1);
    }
    w->need_comma[w->depth] = true;
    jsonw_quoted(w, key);
    jsonw_put(w, ":", 1);
    w->after_key = true;
}

void jsonw_str(struct jsonw *w, const char *s)
{
    if (s == NULL) {
        jsonw_null(w);
        return;
    }
    jsonw_value(w);
    jsonw_quoted(w, s);
}

void jsonw_int(struct jsonw *w, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRId64, v);
    jsonw_value(w);
    jsonw_put(w, num, (size_t)n);
}

void jsonw_bool(struct jsonw *w, bool v)
{
    jsonw_value(w);
    jsonw_put(w, v ? "true" : "false", v ? 4 : 5);
}

void jsonw_null(struct jsonw *w)
{
    jsonw_value(w);
    jsonw_put(w, "null", 4);
}

void jsonw_raw(struct jsonw *w, const char *json, size_t len)
{
    jsonw_value(w);
    jsonw_put(w, json, len);
}

void jsonw_kstr(struct jsonw *w, const char *key, const char *s)
{
    jsonw_key(w, key);
    jsonw_str(w, s);
}

void jsonw_kint(struct jsonw *w, const char *key, int64_t v)
{
    jsonw_key(w, key);
    jsonw_int(w, v);
}

void jsonw_kbool(struct jsonw *w, const char *key, bool v)
{
    jsonw_key(w, key);
    jsonw_bool(w, v);
}

const char *jsonw_text(const struct jsonw *w)
{
    return w->buf;
}
