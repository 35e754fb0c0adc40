/* Telling the statement formats apart from the first bytes of a file. */
#ifndef STATEMENT_IMPORT_DETECT_H
#define STATEMENT_IMPORT_DETECT_H

#include <stddef.h>

/* How many leading bytes detection looks at. */
#define DETECT_HEAD_BYTES (64 * 1024)

enum stmt_format {
    FORMAT_UNKNOWN = 0,
    FORMAT_CSV,
    FORMAT_MT940, /* MT940 and MT942 */
    FORMAT_CAMT,  /* camt.052, camt.053, camt.054 */
};

/*
 * XML (after an optional byte-order mark and blanks) is camt; two or more SWIFT tag lines
 * (":20:", ":61:", ...) or a FIN header ("{1:") make MT940; anything else is tried as CSV.
 * FORMAT_UNKNOWN only for an empty file.
 */
enum stmt_format detect_format(const unsigned char *head, size_t n);

/* "csv", "mt940", "camt", "unknown". */
const char *detect_format_name(enum stmt_format f);

#endif
