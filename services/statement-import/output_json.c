/* Dry-run output: one normalised record as one JSON object per line (jansson). */
#include "output_json.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "topup/money.h"

/* Sets a string member; false when s is not valid UTF-8 (jansson refuses it). */
static bool output_json_str(json_t *o, const char *key, const char *s)
{
    json_t *v = json_string(s);
    return v != NULL && json_object_set_new(o, key, v) == 0;
}

enum tp_status output_json_record(FILE *out, const struct record *r, const struct record_meta *m,
                                  struct tp_error *err)
{
    char amount[MONEY_STR_MAX];
    json_t *o = json_object();
    bool ok = true;
    ok = output_json_str(o, "receiving_account", r->receiving_account) && ok;
    ok = output_json_str(o, "bank_txn_id", r->bank_txn_id) && ok;
    json_object_set_new(o, "id_is_fingerprint", json_boolean(r->id_is_fingerprint));
    ok = output_json_str(o, "booking_date", r->booking_date) && ok;
    ok = output_json_str(o, "value_date", r->value_date) && ok;
    json_object_set_new(o, "amount_fen", json_integer(r->amount_fen));
    ok = output_json_str(o, "amount", money_format(r->amount_fen, amount)) && ok;
    ok = output_json_str(o, "currency", r->currency) && ok;
    ok = output_json_str(o, "direction", record_direction_name(r)) && ok;
    json_object_set_new(o, "reversal", json_boolean(r->reversal));
    ok = output_json_str(o, "counterparty_name", r->counterparty_name) && ok;
    ok = output_json_str(o, "counterparty_account", r->counterparty_account) && ok;
    ok = output_json_str(o, "counterparty_bank", r->counterparty_bank) && ok;
    ok = output_json_str(o, "remittance_info", r->remittance) && ok;
    ok = output_json_str(o, "source_file", m->source_file) && ok;
    ok = output_json_str(o, "source_location", r->location) && ok;
    ok = output_json_str(o, "format", m->format) && ok;
    ok = output_json_str(o, "import_sha256", m->sha256) && ok;
    char *s = ok ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    enum tp_status st = TP_OK;
    if (s == NULL) {
        /* Only invalid UTF-8 makes jansson refuse a string; the decoders never let it through. */
        return error_set(err, TP_FATAL, "cannot encode the record at %s as JSON", r->location);
    }
    if (fputs(s, out) == EOF || fputc('\n', out) == EOF) {
        st = error_set(err, TP_FATAL, "cannot write the output: %s", strerror(errno));
    }
    free(s);
    return st;
}
