/* Dry-run output: one normalised record as one JSON object per line (jansson). */
#ifndef STATEMENT_IMPORT_OUTPUT_JSON_H
#define STATEMENT_IMPORT_OUTPUT_JSON_H

#include <stdio.h>

#include "record.h"
#include "topup/error.h"

/*
 * Writes r as {"receiving_account":..., "bank_txn_id":..., "amount_fen":..., ...} and a newline.
 * Field names are those of topup.v1.BankStatementRecord. TP_FATAL when out fails.
 */
enum tp_status output_json_record(FILE *out, const struct record *r, const struct record_meta *m,
                                  struct tp_error *err) TP_MUST_CHECK;

#endif
