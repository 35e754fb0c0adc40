/* The three statement parsers' common options and entry points; none touches Kafka or PostgreSQL.
 */
#ifndef STATEMENT_IMPORT_PARSER_H
#define STATEMENT_IMPORT_PARSER_H

#include "csv_profiles.h"
#include "input.h"
#include "record.h"

#define PARSER_FORMAT_NAME_MAX 64

struct parse_options {
    const char *account;                      /* --account, or NULL */
    const char *default_currency;             /* --currency; "CNY" when NULL */
    const char *encoding;                     /* --encoding, or NULL for detection */
    const struct csv_profile *csv_profile;    /* forced profile, or NULL to detect */
    const struct csv_profile_set *csv_custom; /* --profile-file profiles, or NULL */
    int64_t xml_time_limit_ms;                /* camt: one pass's time bound; 0 = none */
    /* Out: the format as records name it ("csv:icbc-personal", "mt940", "camt.053"). */
    char format_name[PARSER_FORMAT_NAME_MAX];
    /* Out: the encoding the text parsers decoded ("utf-8", "gb18030"). */
    char encoding_used[32];
};

/*
 * Each parser reads the whole input once and reports statements, records and problems through
 * sink. It goes on after a problem in one record so that every problem is listed; it stops early
 * only when the file cannot be read as its format (then it has reported why). Returns TP_OK when
 * it reached the end, TP_INVALID when it stopped early, TP_FATAL on an I/O error (err).
 */
enum tp_status parser_csv_run(struct input *in, struct parse_options *o,
                              const struct parse_sink *sink, struct tp_error *err) TP_MUST_CHECK;
enum tp_status parser_mt940_run(struct input *in, struct parse_options *o,
                                const struct parse_sink *sink, struct tp_error *err) TP_MUST_CHECK;
enum tp_status parser_camt_run(struct input *in, struct parse_options *o,
                               const struct parse_sink *sink, struct tp_error *err) TP_MUST_CHECK;

/*
 * The receiving account of a record: the file's (which may be masked, "1234****9876", or only
 * the last digits, "3167") checked against --account. Writes the account to use into out
 * (RECORD_ACCOUNT_MAX + 1 bytes). TP_INVALID with a message naming both when they disagree, the
 * file has none and --account is missing, or the file's is masked and --account is missing.
 */
enum tp_status account_resolve(const char *file_account, const char *cli_account, char *out,
                               struct tp_error *err) TP_MUST_CHECK;

#endif
