/*
 * An append-only JSON text writer into a reusable buffer: the batch statements' parameters are
 * JSON arrays of rows, and building them as jansson trees cost more CPU than the SQL itself.
 * Strings must be valid UTF-8 (decode checks every input; everything else is ours).
 */
#ifndef RECON_JSONW_H
#define RECON_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Nesting the writer supports (rows of objects holding arrays of objects need 4). */
#define JSONW_DEPTH_MAX 8

struct jsonw {
    char *buf; /* owned; NUL-terminated after every call */
    size_t len, cap;
    int depth;
    bool after_key;
    bool need_comma[JSONW_DEPTH_MAX];
};

void jsonw_init(struct jsonw *w);
void jsonw_deinit(struct jsonw *w);
/* Empties the text, keeps the memory. */
void jsonw_reset(struct jsonw *w);

/*
 * Starts another top-level value right after the previous one, without a separator: several
 * independent documents back to back in one buffer (each addressed by its offset and length).
 */
void jsonw_next_document(struct jsonw *w);

void jsonw_array_begin(struct jsonw *w);
void jsonw_array_end(struct jsonw *w);
void jsonw_object_begin(struct jsonw *w);
void jsonw_object_end(struct jsonw *w);
/* An object member's name; the next value written is its value. */
void jsonw_key(struct jsonw *w, const char *key);

void jsonw_str(struct jsonw *w, const char *s); /* NULL writes null */
void jsonw_int(struct jsonw *w, int64_t v);
void jsonw_bool(struct jsonw *w, bool v);
void jsonw_null(struct jsonw *w);
/* A value that already is JSON text (an object written by another jsonw). */
void jsonw_raw(struct jsonw *w, const char *json, size_t len);

/* Shorthands for one member. */
void jsonw_kstr(struct jsonw *w, const char *key, const char *s);
void jsonw_kint(struct jsonw *w, const char *key, int64_t v);
void jsonw_kbool(struct jsonw *w, const char *key, bool v);

/* The text so far (owned by w, valid until the next call). */
const char *jsonw_text(const struct jsonw *w);

#endif
