/* Provenance of bank records: one lookup per batch of their digests among the recorded imports. */
#include "recon.h"

#include <stdio.h>
#include <string.h>

#include "jsonw.h"
#include "topup/pg.h"

/*
 * One probe of the digest's hash index per record, only imports that are publishing or
 * completed; the same record in two imports (overlapping statements) takes the first import.
 * The probe is a subquery fenced by OFFSET 0 whose only condition is the digest; the import is
 * joined and ordered outside it. Joined inside, statistics gone stale after an import (the
 * importer writes its rows faster than autovacuum analyzes them) made the planner AND the digest
 * index with the primary key (import_id, seq), reading every row of the import per record: a
 * batch of 2000 records took 1.7 s to look up instead of 6 ms (the benchmark fell to ~1,800
 * records/s); with ORDER BY ... LIMIT on the probe it walked the primary key in order instead.
 */
static const char provenance_sql[] =
    "SELECT x.i, p.import_id FROM json_array_elements_text($1::json) WITH ORDINALITY AS x(h, i)"
    " CROSS JOIN LATERAL (SELECT q.import_id FROM (SELECT s.import_id"
    " FROM statement_import_records s WHERE s.digest = decode(x.h, 'hex') OFFSET 0) q"
    " JOIN statement_imports si ON si.id = q.import_id"
    " AND si.status IN ('publishing', 'completed') ORDER BY q.import_id LIMIT 1) p";

enum tp_status provenance_prepare(struct pg_conn *c, struct tp_error *err)
{
    return pg_prepare(c, "recon_provenance", provenance_sql, 1, err);
}

enum tp_status provenance_lookup(struct pg_conn *c, const uint8_t *const *digests, size_t n,
                                 int64_t *import_ids, struct tp_error *err)
{
    static const char hex[] = "0123456789abcdef";
    memset(import_ids, 0, n * sizeof(*import_ids));
    if (n == 0) {
        return TP_OK;
    }
    struct jsonw w;
    jsonw_init(&w);
    jsonw_array_begin(&w);
    for (size_t i = 0; i < n; i++) {
        char h[65];
        for (int b = 0; b < 32; b++) {
            h[2 * b] = hex[digests[i][b] >> 4];
            h[2 * b + 1] = hex[digests[i][b] & 15];
        }
        h[64] = '\0';
        jsonw_str(&w, h);
    }
    jsonw_array_end(&w);
    const char *const params[1] = {jsonw_text(&w)};
    PGresult *res = NULL;
    enum tp_status st = pg_exec_prepared(c, "recon_provenance", 1, params, &res, err);
    for (int row = 0; st == TP_OK && row < PQntuples(res); row++) {
        int64_t i = pg_get_i64(res, row, 0); /* ordinality: 1-based */
        if (i >= 1 && (size_t)i <= n) {
            import_ids[i - 1] = pg_get_i64(res, row, 1);
        }
    }
    PQclear(res);
    jsonw_deinit(&w);
    return st;
}
