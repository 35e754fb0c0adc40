/* COPY FROM STDIN rows in text format: escaping, and sending them over a connection. */
#include "topup/copyw.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topup/mem.h"
#include "topup/pg.h"

#define COPYW_INITIAL_CAP 65536

void copyw_init(struct copyw *w)
{
    memset(w, 0, sizeof(*w));
}

void copyw_deinit(struct copyw *w)
{
    free(w->buf);
    memset(w, 0, sizeof(*w));
}

void copyw_reset(struct copyw *w)
{
    w->len = 0;
    w->rows = 0;
    w->row_open = false;
}

static void copyw_reserve(struct copyw *w, size_t more)
{
    if (w->len + more <= w->cap) {
        return;
    }
    size_t cap = w->cap > 0 ? w->cap : COPYW_INITIAL_CAP;
    while (cap < w->len + more) {
        cap *= 2;
    }
    w->buf = mem_realloc(w->buf, cap);
    w->cap = cap;
}

/* The separator before a field: a tab unless it is the row's first. */
static void copyw_field(struct copyw *w)
{
    if (w->row_open) {
        copyw_reserve(w, 1);
        w->buf[w->len++] = '\t';
    }
    w->row_open = true;
}

void copyw_strn(struct copyw *w, const char *s, size_t len)
{
    copyw_field(w);
    /* Every byte escaped at most doubles. */
    copyw_reserve(w, 2 * len);
    char *o = w->buf + w->len;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        switch (ch) {
        case '\\':
            *o++ = '\\';
            *o++ = '\\';
            break;
        case '\t':
            *o++ = '\\';
            *o++ = 't';
            break;
        case '\n':
            *o++ = '\\';
            *o++ = 'n';
            break;
        case '\r':
            *o++ = '\\';
            *o++ = 'r';
            break;
        default:
            *o++ = ch;
        }
    }
    w->len = (size_t)(o - w->buf);
}

void copyw_str(struct copyw *w, const char *s)
{
    if (s == NULL) {
        copyw_null(w);
        return;
    }
    copyw_strn(w, s, strlen(s));
}

void copyw_bytea(struct copyw *w, const void *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    copyw_field(w);
    /* "\\x" in COPY text is bytea's "\x" prefix; then two hex digits a byte. */
    copyw_reserve(w, 3 + 2 * len);
    char *o = w->buf + w->len;
    *o++ = '\\';
    *o++ = '\\';
    *o++ = 'x';
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    w->len = (size_t)(o - w->buf);
}

void copyw_int(struct copyw *w, int64_t v)
{
    copyw_field(w);
    copyw_reserve(w, 24);
    w->len += (size_t)snprintf(w->buf + w->len, 24, "%" PRId64, v);
}

void copyw_bool(struct copyw *w, bool v)
{
    copyw_field(w);
    copyw_reserve(w, 1);
    w->buf[w->len++] = v ? 't' : 'f';
}

void copyw_null(struct copyw *w)
{
    copyw_field(w);
    copyw_reserve(w, 2);
    w->buf[w->len++] = '\\';
    w->buf[w->len++] = 'N';
}

void copyw_end_row(struct copyw *w)
{
    copyw_reserve(w, 1);
    w->buf[w->len++] = '\n';
    w->row_open = false;
    w->rows++;
}

/* Classifies a failed result as pg.c does its statements' (a missing SQLSTATE: the link broke). */
static enum tp_status copyw_failed(PGconn *raw, const PGresult *r, const char *copy_sql,
                                   struct tp_error *err)
{
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    enum tp_status st =
        state != NULL && PQstatus(raw) == CONNECTION_OK ? pg_classify_sqlstate(state) : TP_RETRY;
    const char *msg = r != NULL ? PQresultErrorMessage(r) : "";
    if (msg[0] == '\0') {
        msg = PQerrorMessage(raw);
    }
    /* "COPY table": the statement up to its column list. */
    int what = (int)strcspn(copy_sql, "(");
    return error_set(err, st, "%.*s: %s%s%s", what, copy_sql, state != NULL ? state : "",
                     state != NULL ? " " : "", msg);
}

enum tp_status copyw_send(struct pg_conn *c, const char *copy_sql, const struct copyw *w,
                          struct tp_error *err)
{
    if (w->rows == 0) {
        return TP_OK;
    }
    if (w->len > INT_MAX) {
        return error_set(err, TP_INVALID, "%.*s: %zu bytes of rows, more than one COPY takes",
                         (int)strcspn(copy_sql, "("), copy_sql, w->len);
    }
    PGconn *raw = pg_conn_raw(c);
    enum tp_status st = TP_OK;
    PGresult *r = PQexec(raw, copy_sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        st = copyw_failed(raw, r, copy_sql, err);
        PQclear(r);
        /* Drain whatever else the server sent before the connection is used again. */
        while ((r = PQgetResult(raw)) != NULL) {
            PQclear(r);
        }
        return st;
    }
    PQclear(r);
    if (PQputCopyData(raw, w->buf, (int)w->len) != 1 || PQputCopyEnd(raw, NULL) != 1) {
        st = error_set(err, TP_RETRY, "%.*s: send: %s", (int)strcspn(copy_sql, "("), copy_sql,
                       PQerrorMessage(raw));
    }
    /* The COPY's outcome, then the end of its results (a broken link ends them too). */
    while ((r = PQgetResult(raw)) != NULL) {
        ExecStatusType rs = PQresultStatus(r);
        if (st == TP_OK && rs != PGRES_COMMAND_OK) {
            st = rs == PGRES_COPY_IN ? error_set(err, TP_RETRY, "%.*s: still copying after the end",
                                                 (int)strcspn(copy_sql, "("), copy_sql)
                                     : copyw_failed(raw, r, copy_sql, err);
        }
        PQclear(r);
        if (rs == PGRES_COPY_IN && PQputCopyEnd(raw, "copy abandoned") != 1) {
            break; /* still in COPY and cannot end it: the link is broken, the caller rolls back */
        }
    }
    return st;
}
