/* statement_records: stored once by identity, locked for re-examination, states updated. */
#include "recon.h"

#include <stdlib.h>
#include <string.h>

#include "days.h"
#include "topup/pg.h"

/* Columns of a locked record, in the order records_store_row() reads them. */
#define RECORDS_COLUMNS                                                                            \
    "r.id, r.receiving_account, r.bank_txn_id, r.value_date::text, r.amount_fen, r.currency,"      \
    " r.direction, r.reversal, r.counterparty_name_norm, r.ref_codes::text, r.event_id,"           \
    " r.counterparty_name, r.remittance_info"

static const char records_sql_known[] =
    "SELECT x.i FROM json_to_recordset($1::json) AS x(i int, a text, t text)"
    " JOIN statement_records r ON r.receiving_account = x.a AND r.bank_txn_id = x.t";

/* Transport keys are short (they are repeated in every row): reconcile.c writes the same ones. */
static const char records_sql_insert[] =
    "WITH x AS (SELECT * FROM json_to_recordset($1::json) AS x(i int, a text, t text, f boolean,"
    " bd date, vd date, am bigint, cu text, di text, rv boolean, cn text, nn text, ca text, cb "
    "text,"
    " ri text, sf text, sl text, fm text, ev text, st text, rc text[])),"
    " ins AS (INSERT INTO statement_records (receiving_account, bank_txn_id, id_is_fingerprint,"
    " booking_date, value_date, amount_fen, currency, direction, reversal, counterparty_name,"
    " counterparty_name_norm, counterparty_account, counterparty_bank, remittance_info,"
    " source_file, source_location, format, event_id, state, ref_codes)"
    " SELECT a, t, f, bd, vd, am, cu, di, rv, cn, nn, ca, cb, ri, sf, sl, fm, ev, st, rc"
    " FROM x ORDER BY x.i"
    " ON CONFLICT (receiving_account, bank_txn_id) DO NOTHING"
    " RETURNING id, receiving_account AS a, bank_txn_id AS t)"
    " SELECT x.i, ins.id FROM ins JOIN x USING (a, t)";

/* The orders' pending rows are found through their partial indexes; records through theirs. */
static const char records_sql_lock_for_orders[] =
    "WITH o AS (SELECT code, remitter_name_norm, amount_fen FROM topup_orders"
    " WHERE code IN (SELECT json_array_elements_text($1::json)) AND status = 'pending'),"
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
        {"recon_records_insert", records_sql_insert, 1},
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

enum tp_status records_store_insert(struct pg_conn *c, const char *rows, int64_t *ids_out,
                                    size_t *inserted, struct tp_error *err)
{
    PGresult *res = NULL;
    *inserted = 0;
    enum tp_status st = records_exec(c, "recon_records_insert", rows, &res, err);
    if (st == TP_OK) {
        for (int row = 0; row < PQntuples(res); row++) {
            ids_out[pg_get_i64(res, row, 0)] = pg_get_i64(res, row, 1);
        }
        *inserted = (size_t)PQntuples(res);
    }
    PQclear(res);
    return st;
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
    r->booking_date = "";
}

enum tp_status records_store_set_states(struct pg_conn *c, const char *rows, struct tp_error *err)
{
    return records_exec(c, "recon_records_set_states", rows, NULL, err);
}
