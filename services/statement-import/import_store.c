/* PostgreSQL side of an import: its row, continuity, shared ids, provenance records. */
#include "import_store.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topup/mem.h"
#include "topup/money.h"

/* Advisory lock class of statement-import (the second key is hashtext(account)). */
#define IMPORT_STORE_LOCK_CLASS "7301"

static void import_store_i64(int64_t v, char out[24])
{
    snprintf(out, 24, "%" PRId64, v);
}

static int import_store_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Imports of one account take turns (sorted, so two files of the same accounts never deadlock). */
static enum tp_status import_store_lock(struct import_store *s, const char *const *accounts,
                                        int naccounts, struct tp_error *err)
{
    const char *sorted[IMPORT_STORE_ACCOUNTS_MAX];
    int n = naccounts < IMPORT_STORE_ACCOUNTS_MAX ? naccounts : IMPORT_STORE_ACCOUNTS_MAX;
    memcpy(sorted, accounts, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, import_store_cmp);
    for (int i = 0; i < n; i++) {
        const char *p[] = {sorted[i]};
        enum tp_status st = pg_exec(
            s->pg, "SELECT pg_advisory_xact_lock(" IMPORT_STORE_LOCK_CLASS ", hashtext($1))", 1, p,
            NULL, err);
        if (st != TP_OK) {
            return st;
        }
    }
    return TP_OK;
}

/* The existing row of sha256: its id, status, completion time and what it recorded. */
static enum tp_status import_store_existing(struct import_store *s, const char *sha256,
                                            struct tp_error *err)
{
    const char *sel[] = {sha256};
    PGresult *r = NULL;
    enum tp_status st =
        pg_exec(s->pg,
                "SELECT id, status, coalesce(to_char(completed_at AT TIME ZONE 'UTC', "
                "'YYYY-MM-DD HH24:MI:SS') || ' UTC', ''), coalesce(records_sha256, ''), "
                "record_count FROM statement_imports WHERE sha256 = $1",
                1, sel, &r, err);
    if (st != TP_OK) {
        return st;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        return error_set(err, TP_RETRY, "statement_imports row for %s vanished", sha256);
    }
    s->import_id = pg_get_i64(r, 0, 0);
    s->state = strcmp(pg_get_str(r, 0, 1), "completed") == 0 ? IMPORT_STATE_COMPLETED
                                                             : IMPORT_STATE_RESUMED;
    snprintf(s->completed_at, sizeof s->completed_at, "%s", pg_get_str(r, 0, 2));
    snprintf(s->recorded_sha256, sizeof s->recorded_sha256, "%s", pg_get_str(r, 0, 3));
    s->recorded = s->recorded_sha256[0] != '\0';
    s->recorded_count = pg_get_i64(r, 0, 4);
    PQclear(r);
    return TP_OK;
}

enum tp_status import_store_begin(struct import_store *s, struct pg_conn *c, const char *sha256,
                                  const char *file_name, const char *format,
                                  const char *const *accounts, int naccounts, struct tp_error *err)
{
    memset(s, 0, sizeof *s);
    s->pg = c;
    copyw_init(&s->copy);
    enum tp_status st = pg_begin(c, err);
    if (st != TP_OK) {
        return st;
    }
    st = import_store_lock(s, accounts, naccounts, err);
    if (st != TP_OK) {
        goto fail;
    }
    const char *ins[] = {sha256, file_name, format};
    PGresult *r = NULL;
    /* ON CONFLICT DO NOTHING: a second run (or a concurrent one) falls through to the SELECT. */
    st =
        pg_exec(c,
                "INSERT INTO statement_imports (sha256, file_name, format, record_count, status) "
                "VALUES ($1, $2, $3, 0, 'publishing') ON CONFLICT (sha256) DO NOTHING RETURNING id",
                3, ins, &r, err);
    if (st != TP_OK) {
        goto fail;
    }
    if (PQntuples(r) == 1) {
        s->state = IMPORT_STATE_NEW;
        s->import_id = pg_get_i64(r, 0, 0);
        PQclear(r);
        return TP_OK; /* the transaction stays open until import_store_commit() */
    }
    PQclear(r);
    st = import_store_existing(s, sha256, err);
    if (st != TP_OK) {
        goto fail;
    }
    if (s->state == IMPORT_STATE_RESUMED && !s->recorded) {
        /* Begun by an importer that recorded no provenance: record it now, once. */
        char id[24];
        import_store_i64(s->import_id, id);
        const char *p[] = {id};
        st = pg_exec(c, "SELECT 1 FROM statement_import_records WHERE import_id = $1 LIMIT 1", 1, p,
                     &r, err);
        if (st != TP_OK) {
            goto fail;
        }
        bool any = PQntuples(r) > 0;
        PQclear(r);
        if (any) {
            st = error_set(err, TP_FATAL,
                           "import %" PRId64 " has provenance records but no records_sha256",
                           s->import_id);
            goto fail;
        }
        return TP_OK; /* recorded in this transaction */
    }
    return pg_commit(c, err);
fail:
    pg_rollback(c);
    return st;
}

/* True when an imported span of (account, currency) opens before date and closes after it. */
static enum tp_status import_store_overlaps(struct import_store *s, const struct validate_span *sp,
                                            bool *overlap, struct tp_error *err)
{
    const char *p[] = {sp->account, sp->currency, sp->opening_date};
    PGresult *r = NULL;
    enum tp_status st = pg_exec(s->pg,
                                "SELECT 1 FROM statement_import_balances WHERE receiving_account = "
                                "$1 AND currency = $2 AND opening_date < $3::date AND "
                                "closing_date > $3::date LIMIT 1",
                                3, p, &r, err);
    if (st != TP_OK) {
        return st;
    }
    *overlap = PQntuples(r) > 0;
    PQclear(r);
    return TP_OK;
}

enum tp_status import_store_continuity(struct import_store *s, struct validator *v,
                                       uint32_t *checked, struct tp_error *err)
{
    const struct validate_span *spans;
    uint32_t n = validator_spans(v, &spans);
    *checked = 0;
    for (uint32_t i = 0; i < n; i++) {
        const struct validate_span *sp = &spans[i];
        if (sp->opening_date[0] == '\0') {
            continue;
        }
        bool overlap;
        enum tp_status st = import_store_overlaps(s, sp, &overlap, err);
        if (st != TP_OK) {
            return st;
        }
        if (overlap) {
            continue; /* the day is inside a span already imported: nothing to compare with */
        }
        /*
         * The import before: the latest closing on or before this opening, of a span that opened
         * earlier (a span opening the same day is this statement again, or an overlapping one).
         */
        const char *p[] = {sp->account, sp->currency, sp->opening_date};
        PGresult *r = NULL;
        st = pg_exec(s->pg,
                     "SELECT b.closing_fen, to_char(b.closing_date, 'YYYY-MM-DD'), i.file_name "
                     "FROM statement_import_balances b JOIN statement_imports i ON i.id = "
                     "b.import_id WHERE b.receiving_account = $1 AND b.currency = $2 AND "
                     "b.closing_date <= $3::date AND b.opening_date < $3::date "
                     "ORDER BY b.closing_date DESC, b.import_id DESC LIMIT 1",
                     3, p, &r, err);
        if (st != TP_OK) {
            return st;
        }
        if (PQntuples(r) == 1) {
            (*checked)++;
            int64_t before = pg_get_i64(r, 0, 0);
            if (before != sp->opening_fen) {
                struct validate_gap g = {.kind = GAP_CONTINUITY,
                                         .line = sp->opening_line,
                                         .expected_fen = before,
                                         .stated_fen = sp->opening_fen,
                                         .gap_fen = sp->opening_fen - before};
                snprintf(g.statement, sizeof g.statement, "%s", sp->statement);
                snprintf(g.account, sizeof g.account, "%s", sp->account);
                snprintf(g.currency, sizeof g.currency, "%s", sp->currency);
                snprintf(g.previous, sizeof g.previous, "%s of %s", pg_get_str(r, 0, 1),
                         pg_get_str(r, 0, 2));
                validator_report_gap(v, &g);
            }
        }
        PQclear(r);
    }
    return TP_OK;
}

/* An earlier import that published (account, id) as one record's identity: its id and file. */
static enum tp_status import_store_published_alone(struct import_store *s,
                                                   const struct identity_shared *e, bool *found,
                                                   char *file, size_t cap, struct tp_error *err)
{
    char id[24];
    import_store_i64(s->import_id, id);
    const char *p[] = {e->account, e->bank_txn_id, id};
    PGresult *r = NULL;
    enum tp_status st = pg_exec(s->pg,
                                "SELECT i.id, i.file_name FROM statement_import_records r JOIN "
                                "statement_imports i ON i.id = r.import_id WHERE "
                                "r.receiving_account = $1 AND r.bank_txn_id = $2 AND "
                                "r.bank_txn_id NOT LIKE 'fp:%' AND r.import_id <> $3::bigint "
                                "LIMIT 1",
                                3, p, &r, err);
    if (st != TP_OK) {
        return st;
    }
    *found = PQntuples(r) > 0;
    if (*found) {
        snprintf(file, cap, "import %s (%s)", pg_get_str(r, 0, 0), pg_get_str(r, 0, 1));
    }
    PQclear(r);
    return TP_OK;
}

enum tp_status import_store_shared(struct import_store *s, struct identity *id,
                                   const char *const *accounts, int naccounts, struct tp_error *err)
{
    const struct identity_shared *list;
    uint32_t nfile = identity_shared_list(id, &list);
    char import_id[24];
    import_store_i64(s->import_id, import_id);
    enum tp_status st;
    for (uint32_t i = 0; s->state == IMPORT_STATE_NEW && i < nfile; i++) {
        bool found = false;
        char where[512];
        st = import_store_published_alone(s, &list[i], &found, where, sizeof where, err);
        if (st != TP_OK) {
            return st;
        }
        if (found) {
            return error_set(err, TP_INVALID,
                             "bank transaction id \"%s\" of account %s repeats in this file "
                             "(lines %u and %u) for different transactions, but %s published it "
                             "as the id of one transaction: which of these that one is cannot be "
                             "told, so nothing is published; reconcile these transactions by hand",
                             list[i].bank_txn_id, list[i].account, list[i].first_line,
                             list[i].second_line, where);
        }
        const char *p[] = {list[i].account, list[i].bank_txn_id, import_id};
        st = pg_exec(s->pg,
                     "INSERT INTO statement_shared_ids (receiving_account, bank_txn_id, "
                     "first_import_id) VALUES ($1, $2, $3::bigint) ON CONFLICT DO NOTHING",
                     3, p, NULL, err);
        if (st != TP_OK) {
            return st;
        }
    }
    /* Those earlier imports found: only the ones known when this import began. */
    for (int a = 0; a < naccounts; a++) {
        const char *p[] = {accounts[a], import_id};
        PGresult *r = NULL;
        st = pg_exec(s->pg,
                     "SELECT bank_txn_id FROM statement_shared_ids WHERE receiving_account = $1 "
                     "AND first_import_id < $2::bigint ORDER BY bank_txn_id",
                     2, p, &r, err);
        if (st != TP_OK) {
            return st;
        }
        for (int row = 0; row < PQntuples(r); row++) {
            if (!identity_mark_shared(id, accounts[a], pg_get_str(r, row, 0))) {
                PQclear(r);
                return error_set(err, TP_INVALID,
                                 "more than %d bank transaction ids of account %s are known to "
                                 "repeat; this importer cannot hold them all",
                                 IDENTITY_SHARED_MAX, accounts[a]);
            }
        }
        PQclear(r);
    }
    return TP_OK;
}

#define IMPORT_STORE_COPY_SQL                                                                      \
    "COPY statement_import_records (import_id, seq, digest, receiving_account, bank_txn_id, "      \
    "amount_fen) FROM STDIN"

/* A failed COPY's message and class from its result. */
static enum tp_status import_store_copy_failed(PGconn *raw, PGresult *r, struct tp_error *err)
{
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(raw);
    return error_set(err, pg_classify_sqlstate(state), "COPY statement_import_records: %.*s",
                     (int)strcspn(msg, "\n"), msg);
}

/*
 * The rows go out in one COPY that stays open for the whole pass, in pieces of
 * IMPORT_STORE_COPY_BYTES: PostgreSQL inserts them while the file is read on (a full socket
 * buffer is the backpressure), instead of the reading waiting for every batch's end.
 */
static enum tp_status import_store_flush(struct import_store *s, struct tp_error *err)
{
    PGconn *raw = pg_conn_raw(s->pg);
    if (!s->copying) {
        PGresult *r = PQexec(raw, IMPORT_STORE_COPY_SQL);
        if (PQresultStatus(r) != PGRES_COPY_IN) {
            enum tp_status st = import_store_copy_failed(raw, r, err);
            PQclear(r);
            while ((r = PQgetResult(raw)) != NULL) {
                PQclear(r);
            }
            return st;
        }
        PQclear(r);
        s->copying = true;
    }
    if (s->copy.len > 0 && PQputCopyData(raw, s->copy.buf, (int)s->copy.len) != 1) {
        return error_set(err, TP_RETRY, "COPY statement_import_records: send: %s",
                         PQerrorMessage(raw));
    }
    copyw_reset(&s->copy);
    return TP_OK;
}

/* Ends the open COPY: abandon NULL ends it, else it is cancelled with that reason. */
static enum tp_status import_store_copy_end(struct import_store *s, const char *abandon,
                                            struct tp_error *err)
{
    PGconn *raw = pg_conn_raw(s->pg);
    enum tp_status st = TP_OK;
    if (!s->copying) {
        return TP_OK;
    }
    s->copying = false;
    if (PQputCopyEnd(raw, abandon) != 1) {
        st =
            error_set(err, TP_RETRY, "COPY statement_import_records: end: %s", PQerrorMessage(raw));
    }
    PGresult *r;
    while ((r = PQgetResult(raw)) != NULL) {
        ExecStatusType rs = PQresultStatus(r);
        if (st == TP_OK && abandon == NULL && rs != PGRES_COMMAND_OK) {
            st = import_store_copy_failed(raw, r, err);
        }
        PQclear(r);
        if (rs == PGRES_COPY_IN && PQputCopyEnd(raw, "abandoned") != 1) {
            break; /* the link is broken: the caller rolls back */
        }
    }
    return st;
}

enum tp_status import_store_record(struct import_store *s, int64_t seq,
                                   const uint8_t digest[EVENT_DIGEST_LEN], const struct record *r,
                                   struct tp_error *err)
{
    struct copyw *w = &s->copy;
    copyw_int(w, s->import_id);
    copyw_int(w, seq);
    copyw_bytea(w, digest, EVENT_DIGEST_LEN);
    copyw_str(w, r->receiving_account);
    copyw_str(w, r->bank_txn_id);
    copyw_int(w, r->amount_fen);
    copyw_end_row(w);
    s->copied++;
    if (w->len >= IMPORT_STORE_COPY_BYTES) {
        return import_store_flush(s, err);
    }
    return TP_OK;
}

static json_t *import_store_gaps_json(const struct validator *v)
{
    const struct validate_gap *gaps;
    uint32_t n = validator_gaps(v, &gaps);
    json_t *a = json_array();
    for (uint32_t i = 0; i < n; i++) {
        const struct validate_gap *g = &gaps[i];
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "kind",
                              validate_gap_kind_name(g->kind), "statement", g->statement, "account",
                              g->account, "currency", g->currency, "line", (json_int_t)g->line,
                              "expected_fen", (json_int_t)g->expected_fen, "stated_fen",
                              (json_int_t)g->stated_fen, "gap_fen", (json_int_t)g->gap_fen);
        if (g->previous[0] != '\0') {
            json_object_set_new(o, "previous", json_string(g->previous));
        }
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *import_store_notes_json(const struct validator *v)
{
    const struct validate_note *notes;
    uint32_t n = validator_notes(v, &notes);
    json_t *a = json_array();
    for (uint32_t i = 0; i < n; i++) {
        json_array_append_new(a, json_pack("{s:s, s:I, s:I}", "what", notes[i].what, "count",
                                           (json_int_t)notes[i].count, "first_line",
                                           (json_int_t)notes[i].first_line));
    }
    return a;
}

/* The spans of this import: what the next file of each account must open with. */
static enum tp_status import_store_spans(struct import_store *s, const struct validator *v,
                                         struct tp_error *err)
{
    const struct validate_span *spans;
    uint32_t n = validator_spans(v, &spans);
    char id[24], open[24], close[24];
    import_store_i64(s->import_id, id);
    for (uint32_t i = 0; i < n; i++) {
        const struct validate_span *sp = &spans[i];
        if (sp->opening_date[0] == '\0' || sp->closing_date[0] == '\0') {
            continue;
        }
        import_store_i64(sp->opening_fen, open);
        import_store_i64(sp->closing_fen, close);
        const char *p[] = {id,   sp->account,      sp->currency,     sp->statement,
                           open, sp->opening_date, sp->closing_date, close};
        enum tp_status st =
            pg_exec(s->pg,
                    "INSERT INTO statement_import_balances (import_id, receiving_account, "
                    "currency, statement, opening_fen, opening_date, closing_date, closing_fen) "
                    "VALUES ($1::bigint, $2, $3, $4, $5::bigint, $6::date, $7::date, $8::bigint)",
                    8, p, NULL, err);
        if (st != TP_OK) {
            return st;
        }
    }
    return TP_OK;
}

enum tp_status import_store_commit(struct import_store *s, int64_t records,
                                   const char records_sha256[65], const struct validator *v,
                                   const struct import_gap_audit *gap, struct tp_error *err)
{
    enum tp_status st = TP_OK;
    char *gaps = NULL, *notes = NULL;
    if (s->copy.rows > 0 || s->copying) {
        st = import_store_flush(s, err);
        if (st == TP_OK) {
            st = import_store_copy_end(s, NULL, err);
        }
        if (st != TP_OK) {
            goto fail;
        }
    }
    if (s->copied != records) {
        st = error_set(err, TP_FATAL, "%" PRId64 " provenance records for %" PRId64 " records",
                       s->copied, records);
        goto fail;
    }
    char id[24], count[24];
    import_store_i64(s->import_id, id);
    import_store_i64(records, count);
    if (s->state == IMPORT_STATE_NEW) {
        st = import_store_spans(s, v, err);
        if (st != TP_OK) {
            goto fail;
        }
        json_t *nj = import_store_notes_json(v);
        notes = json_array_size(nj) > 0 ? json_dumps(nj, JSON_COMPACT) : NULL;
        json_decref(nj);
        if (gap != NULL) {
            json_t *gj = import_store_gaps_json(v);
            gaps = json_dumps(gj, JSON_COMPACT);
            json_decref(gj);
        }
    }
    const char *p[] = {id,
                       count,
                       records_sha256,
                       gaps,
                       gap != NULL ? gap->accepted_by : NULL,
                       gap != NULL ? gap->reason : NULL,
                       notes};
    /* gap_accepted_* are set only with the gaps (the CHECK holds them together). */
    st = pg_exec(s->pg,
                 "UPDATE statement_imports SET record_count = $2::integer, records_sha256 = $3, "
                 "balance_gaps = coalesce($4::jsonb, balance_gaps), gap_accepted_by = "
                 "coalesce($5, gap_accepted_by), gap_accepted_role = CASE WHEN $4 IS NULL THEN "
                 "gap_accepted_role ELSE session_user END, gap_accepted_at = CASE WHEN $4 IS "
                 "NULL THEN gap_accepted_at ELSE now() END, gap_reason = coalesce($6, "
                 "gap_reason), notes = coalesce($7::jsonb, notes) WHERE id = $1::bigint",
                 7, p, NULL, err);
    if (st != TP_OK) {
        goto fail;
    }
    st = pg_commit(s->pg, err);
    free(gaps);
    free(notes);
    return st;
fail:
    free(gaps);
    free(notes);
    import_store_abort(s);
    return st;
}

void import_store_abort(struct import_store *s)
{
    if (s->pg != NULL) {
        struct tp_error ignored;
        (void)import_store_copy_end(s, "import abandoned", &ignored);
        pg_rollback(s->pg);
    }
}

enum tp_status import_store_complete(struct import_store *s, int64_t records, struct tp_error *err)
{
    char id[24], count[24];
    import_store_i64(s->import_id, id);
    import_store_i64(records, count);
    const char *params[] = {id, count};
    PGresult *r = NULL;
    enum tp_status st = pg_exec(s->pg,
                                "UPDATE statement_imports SET status = 'completed', "
                                "completed_at = now(), record_count = $2::integer "
                                "WHERE id = $1::bigint",
                                2, params, &r, err);
    if (st != TP_OK) {
        return st;
    }
    bool updated = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (!updated) {
        return error_set(err, TP_RETRY, "statement_imports row %s not found", id);
    }
    return TP_OK;
}

void import_store_deinit(struct import_store *s)
{
    copyw_deinit(&s->copy);
}
