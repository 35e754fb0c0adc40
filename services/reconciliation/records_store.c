/* statement_records: stored once by identity, locked for re-examination, states updated. */
#include "recon.h"

#include <stdlib.h>
#include <string.h>

#include "topup/copyw.h"
#include "days.h"
#include "topup/pg.h"

/* Columns of a locked record, in the order records_store_row() reads them. */
#define RECORDS_COLUMNS                                                                            \
    "r.id, r.receiving_account, r.bank_txn_id, r.value_date::text, r.amount_fen, r.currency,"      \
    " r.direction, r.reversal, r.counterparty_name_norm, r.ref_codes::text, r.event_id,"           \
    " r.counterparty_name, r.remittance_info, (extract(epoch FROM r.received_at) * 1000)::bigint"

static const char records_sql_known[] =
    "SELECT x.i FROM json_to_recordset($1::json) AS x(i int, a text, t text)"
    " JOIN statement_records r ON r.receiving_account = x.a AND r.bank_txn_id = x.t";

/*
 * New records go in with COPY (recon_records_copy_sql) under ids taken from the sequence first,
 * so that the decisions can name them without a RETURNING round of the rows.
 */
static const char records_sql_ids[] =
    "SELECT nextval('statement_records_id_seq') FROM generate_series(1, $1::int)";

static const char records_sql_copy[] =
    "COPY statement_records (id, receiving_account, bank_txn_id, id_is_fingerprint, booking_date,"
    " value_date, amount_fen, currency, direction, reversal, counterparty_name,"
    " counterparty_name_norm, counterparty_account, counterparty_bank, remittance_info,"
    " source_file, source_location, format, event_id, state, ref_codes, import_id) FROM STDIN";

/*
 * The new orders by code, one probe each (a lateral subquery kept apart by OFFSET 0: never a scan
 * of every pending order, which stale statistics can make look cheap); the records through their
 * partial indexes.
 */
static const char records_sql_lock_for_orders[] =
    "WITH o AS (SELECT t.code, t.remitter_name_norm, t.amount_fen"
    " FROM (SELECT DISTINCT value FROM json_array_elements_text($1::json)) AS n(code)"
    " CROSS JOIN LATERAL (SELECT * FROM topup_orders t WHERE t.code = n.code"
    " AND t.status = 'pending' OFFSET 0) t),"
    " c AS (SELECT r.id FROM o JOIN statement_records r ON r.state = 'unmatched'"
    " AND r.ref_codes @> ARRAY[o.code]"
    " UNION SELECT r.id FROM o JOIN statement_records r ON r.state = 'unmatched'"
    " AND r.counterparty_name_norm = o.remitter_name_norm AND r.amount_fen = o.amount_fen"
    " AND o.remitter_name_norm <> '')"
    " SELECT " RECORDS_COLUMNS " FROM statement_records r"
    " WHERE r.id IN (SELECT id FROM c) AND r.state = 'unmatched'"
    " ORDER BY r.id LIMIT $2::int FOR UPDATE OF r";

static const char records_sql_lock_unmatched[] =
    "SELECT " RECORDS_COLUMNS " FROM statement_records r"
    " WHERE r.state = 'unmatched' AND r.id > $1::bigint"
    " ORDER BY r.id LIMIT $2::int FOR UPDATE OF r SKIP LOCKED";

static const char records_sql_set_states[] =
    "UPDATE statement_records r SET state = x.s, updated_at = now()"
    " FROM json_to_recordset($1::json) AS x(i bigint, s text) WHERE r.id = x.i";

enum tp_status records_store_prepare(struct pg_conn *c, struct tp_error *err)
{
    static const struct {
        const char *name, *sql;
        int nparams;
    } stmts[] = {
        {"recon_records_known", records_sql_known, 1},
        {"recon_records_ids", records_sql_ids, 1},
        {"recon_records_lock_for_orders", records_sql_lock_for_orders, 2},
        {"recon_records_lock_unmatched", records_sql_lock_unmatched, 2},
        {"recon_records_set_states", records_sql_set_states, 1},
    };
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        enum tp_status st = pg_prepare(c, stmts[i].name, stmts[i].sql, stmts[i].nparams, err);
        if (st != TP_OK) {
            return st;
        }
    }
    return TP_OK;
}

/* Runs a statement whose one parameter is JSON text. */
static enum tp_status records_exec(struct pg_conn *c, const char *stmt, const char *json,
                                   PGresult **res, struct tp_error *err)
{
    const char *const params[1] = {json};
    return pg_exec_prepared(c, stmt, 1, params, res, err);
}

enum tp_status records_store_known(struct pg_conn *c, const char *ids, bool *dup,
                                   struct tp_error *err)
{
    PGresult *res = NULL;
    enum tp_status st = records_exec(c, "recon_records_known", ids, &res, err);
    if (st == TP_OK) {
        for (int row = 0; row < PQntuples(res); row++) {
            dup[pg_get_i64(res, row, 0)] = true;
        }
    }
    PQclear(res);
    return st;
}

enum tp_status records_store_ids(struct pg_conn *c, size_t n, int64_t *ids_out,
                                 struct tp_error *err)
{
    char count[24];
    snprintf(count, sizeof(count), "%zu", n);
    const char *const params[1] = {count};
    PGresult *res = NULL;
    enum tp_status st = pg_exec_prepared(c, "recon_records_ids", 1, params, &res, err);
    if (st == TP_OK && (size_t)PQntuples(res) != n) {
        st = error_set(err, TP_FATAL, "asked for %zu record ids, got %d", n, PQntuples(res));
    }
    for (size_t i = 0; st == TP_OK && i < n; i++) {
        ids_out[i] = pg_get_i64(res, (int)i, 0);
    }
    PQclear(res);
    return st;
}

void records_store_copy_row(struct copyw *w, int64_t id, const struct recon_record *x,
                            const char *state)
{
    copyw_int(w, id);
    copyw_str(w, x->receiving_account);
    copyw_str(w, x->bank_txn_id);
    copyw_bool(w, x->id_is_fingerprint);
    copyw_str(w, x->booking_date[0] != '\0' ? x->booking_date : NULL);
    copyw_str(w, x->value_date);
    copyw_int(w, x->amount_fen);
    copyw_str(w, x->currency);
    copyw_str(w, x->credit ? "credit" : "debit");
    copyw_bool(w, x->reversal);
    copyw_str(w, x->counterparty_name);
    copyw_str(w, x->name_norm);
    copyw_str(w, x->counterparty_account);
    copyw_str(w, x->counterparty_bank);
    copyw_str(w, x->remittance_info);
    copyw_str(w, x->source_file);
    copyw_str(w, x->source_location);
    copyw_str(w, x->format);
    copyw_str(w, x->event_id);
    copyw_str(w, state);
    /* "{TU...,TU...}": codes are upper-case alphanumerics, never quoted in an array literal. */
    char codes[MATCHER_CODES_MAX * REFCODE_STR_LEN + 3];
    size_t o = 0;
    codes[o++] = '{';
    for (int c = 0; c < x->ncodes; c++) {
        if (c > 0) {
            codes[o++] = ',';
        }
        size_t len = strlen(x->codes[c]);
        memcpy(codes + o, x->codes[c], len);
        o += len;
    }
    codes[o++] = '}';
    copyw_strn(w, codes, o);
    if (x->import_id > 0) {
        copyw_int(w, x->import_id);
    } else {
        copyw_str(w, NULL);
    }
    copyw_end_row(w);
}

enum tp_status records_store_copy(struct pg_conn *c, const struct copyw *rows, struct tp_error *err)
{
    return copyw_send(c, records_sql_copy, rows, err);
}

enum tp_status records_store_lock_for_orders(struct pg_conn *c, const char *codes, int limit,
                                             PGresult **res, struct tp_error *err)
{
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *const params[2] = {codes, lim};
    return pg_exec_prepared(c, "recon_records_lock_for_orders", 2, params, res, err);
}
enum tp_status records_store_lock_unmatched(struct pg_conn *c, int64_t after_id, int limit,
                                            PGresult **res, struct tp_error *err)
{
    char after[24], lim[16];
    snprintf(after, sizeof(after), "%lld", (long long)after_id);
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *const params[2] = {after, lim};
    return pg_exec_prepared(c, "recon_records_lock_unmatched", 2, params, res, err);
}

/* "{TU...,TU...}" (codes are upper-case alphanumerics: never quoted by PostgreSQL). */
static void records_parse_codes(const char *text, struct recon_record *r)
{
    r->ncodes = 0;
    const char *p = text[0] == '{' ? text + 1 : text;
    while (*p != '\0' && *p != '}' && r->ncodes < MATCHER_CODES_MAX) {
        size_t n = strcspn(p, ",}");
        if (n == REFCODE_LEN) {
            memcpy(r->codes[r->ncodes], p, REFCODE_LEN);
            r->codes[r->ncodes][REFCODE_LEN] = '\0';
            r->ncodes++;
        }
        p += n;
        if (*p == ',') {
            p++;
        }
    }
}

void records_store_row(const PGresult *res, int row, struct recon_record *r, int64_t *id)
{
    memset(r, 0, sizeof(*r));
    *id = pg_get_i64(res, row, 0);
    snprintf(r->receiving_account, sizeof(r->receiving_account), "%s", pg_get_str(res, row, 1));
    r->bank_txn_id = pg_get_str(res, row, 2);
    r->value_date = pg_get_str(res, row, 3);
    if (!days_parse(r->value_date, strlen(r->value_date), &r->value_day)) {
        r->value_day = 0; /* a date column always parses; 0 only keeps the struct defined */
    }
    r->amount_fen = pg_get_i64(res, row, 4);
    r->currency = pg_get_str(res, row, 5);
    r->credit = strcmp(pg_get_str(res, row, 6), "credit") == 0;
    r->reversal = strcmp(pg_get_str(res, row, 7), "t") == 0;
    snprintf(r->name_norm, sizeof(r->name_norm), "%s", pg_get_str(res, row, 8));
    records_parse_codes(pg_get_str(res, row, 9), r);
    r->event_id = pg_get_str(res, row, 10);
    r->counterparty_name = pg_get_str(res, row, 11);
    r->remittance_info = pg_get_str(res, row, 12);
    r->received_at_ms = pg_get_i64(res, row, 13);
    r->booking_date = "";
}

enum tp_status records_store_set_states(struct pg_conn *c, const char *rows, struct tp_error *err)
{
    return records_exec(c, "recon_records_set_states", rows, NULL, err);
}
