/* topup_orders as the matcher sees them: statuses, and creation and expiry as local dates. */
#include "recon.h"

#include <string.h>

#include "days.h"
#include "topup/log.h"
#include "topup/pg.h"

#define ORDERS_COLUMNS                                                                             \
    "id, code, account_id, amount_fen, remitter_name_norm, status,"                                \
    " (extract(epoch FROM created_at) * 1000)::bigint,"                                            \
    " (extract(epoch FROM expires_at) * 1000)::bigint, false"

/* Rule 1 needs no payer: payer_verified is false here (reconcile takes it from the key lookup). */
static const char orders_sql_by_code[] =
    "SELECT " ORDERS_COLUMNS " FROM topup_orders"
    " WHERE code IN (SELECT json_array_elements_text($1::json))";

/*
 * One index probe per distinct name and amount: a lateral subquery kept apart (OFFSET 0, else it
 * is flattened into a plain join) cannot become a scan of every pending order, which statistics
 * gone stale after a burst of new orders make look cheap (it read 100,000 per batch). Each
 * order says whether its account owns the name (an active payer: rule 2 may credit it).
 */
static const char orders_sql_by_key[] =
    "SELECT o.id, o.code, o.account_id, o.amount_fen, o.remitter_name_norm, o.status,"
    " (extract(epoch FROM o.created_at) * 1000)::bigint,"
    " (extract(epoch FROM o.expires_at) * 1000)::bigint,"
    " EXISTS (SELECT 1 FROM account_payers p WHERE p.account_id = o.account_id"
    " AND p.name_norm = o.remitter_name_norm AND p.removed_at IS NULL)"
    " FROM (SELECT DISTINCT k.n, k.a FROM json_to_recordset($1::json) AS k(n text, a bigint)) k"
    " CROSS JOIN LATERAL (SELECT * FROM topup_orders t WHERE t.remitter_name_norm = k.n"
    " AND t.amount_fen = k.a AND t.status = 'pending' OFFSET 0) o";

enum tp_status orders_store_prepare(struct pg_conn *c, struct tp_error *err)
{
    enum tp_status st = pg_prepare(c, "recon_orders_by_code", orders_sql_by_code, 1, err);
    if (st == TP_OK) {
        st = pg_prepare(c, "recon_orders_by_key", orders_sql_by_key, 1, err);
    }
    return st;
}

enum tp_status orders_store_by_code(struct pg_conn *c, const char *codes, PGresult **res,
                                    struct tp_error *err)
{
    const char *const params[1] = {codes};
    return pg_exec_prepared(c, "recon_orders_by_code", 1, params, res, err);
}

enum tp_status orders_store_by_key(struct pg_conn *c, const char *keys, PGresult **res,
                                   struct tp_error *err)
{
    const char *const params[1] = {keys};
    return pg_exec_prepared(c, "recon_orders_by_key", 1, params, res, err);
}

void orders_store_fill(const PGresult *res, struct matcher_order *out)
{
    for (int row = 0; row < PQntuples(res); row++) {
        struct matcher_order *o = &out[row];
        memset(o, 0, sizeof(*o));
        o->id = pg_get_i64(res, row, 0);
        o->code = pg_get_str(res, row, 1);
        o->account_id = pg_get_str(res, row, 2);
        o->amount_fen = pg_get_i64(res, row, 3);
        o->name_norm = pg_get_str(res, row, 4);
        if (!matcher_order_status_parse(pg_get_str(res, row, 5), &o->status)) {
            /* The schema's CHECK lists the statuses; an unknown one is never treated as pending. */
            log_warn("order with an unknown status", LF_S("order", o->code),
                     LF_S("status", pg_get_str(res, row, 5)));
            o->status = MATCHER_ORDER_COMPLETED;
        }
        o->created_at_ms = pg_get_i64(res, row, 6);
        o->created_day = days_local_from_ms(o->created_at_ms);
        o->expires_day = days_local_from_ms(pg_get_i64(res, row, 7));
        o->payer_verified = strcmp(pg_get_str(res, row, 8), "t") == 0;
    }
}
