/*
 * Rows for COPY ... FROM STDIN (text format) built in a reusable buffer and sent in one go:
 * reconciliation's records and decisions and outbox_write_many()'s rows go in this way, which
 * costs PostgreSQL far less per row than an INSERT ... SELECT over a JSON parameter (no JSON to
 * parse, multi-row heap inserts).
 */
#ifndef TOPUP_COPYW_H
#define TOPUP_COPYW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "topup/error.h"

struct pg_conn;

struct copyw {
    char *buf; /* owned */
    size_t len, cap;
    size_t rows;
    bool row_open; /* a field was written since the last copyw_end_row() */
};

void copyw_init(struct copyw *w);
void copyw_deinit(struct copyw *w);
/* Empties the rows, keeps the memory. */
void copyw_reset(struct copyw *w);

/* The next field of the current row. s NULL writes NULL (\N); text is escaped as COPY wants. */
void copyw_str(struct copyw *w, const char *s);
/* A field of len bytes (not NUL-terminated), escaped. */
void copyw_strn(struct copyw *w, const char *s, size_t len);
/* len bytes as a bytea field (hex format). */
void copyw_bytea(struct copyw *w, const void *p, size_t len);
void copyw_int(struct copyw *w, int64_t v);
void copyw_bool(struct copyw *w, bool v);
void copyw_null(struct copyw *w);
/* Ends the current row. */
void copyw_end_row(struct copyw *w);

/*
 * Runs copy_sql ("COPY table (columns) FROM STDIN") with w's rows on c, in the caller's
 * transaction. Errors are classified as pg.h's statements are (TP_DUPLICATE for a unique
 * violation, TP_INVALID for a value PostgreSQL refuses, TP_RETRY for a lost connection, ...);
 * the transaction is then aborted and must be rolled back. Nothing is sent for no rows.
 */
enum tp_status copyw_send(struct pg_conn *c, const char *copy_sql, const struct copyw *w,
                          struct tp_error *err) TP_MUST_CHECK;

#endif
