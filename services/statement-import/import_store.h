/* The statement_imports table: one row per imported file, by the file's SHA-256. */
#ifndef STATEMENT_IMPORT_IMPORT_STORE_H
#define STATEMENT_IMPORT_IMPORT_STORE_H

#include <stdint.h>

#include "topup/error.h"
#include "topup/pg.h"

enum import_state {
    IMPORT_STATE_NEW,       /* first time: a row in status 'publishing' was inserted */
    IMPORT_STATE_RESUMED,   /* an earlier run stopped while publishing: publish again (safe) */
    IMPORT_STATE_COMPLETED, /* already imported: publish nothing */
};

#define IMPORT_STORE_TIME_MAX 64

/*
 * Claims the import of the file with this SHA-256 (hex). On IMPORT_STATE_COMPLETED, completed_at
 * receives when (IMPORT_STORE_TIME_MAX bytes, PostgreSQL text form).
 */
enum tp_status import_store_begin(struct pg_conn *c, const char *sha256, const char *file_name,
                                  const char *format, int64_t records, enum import_state *state,
                                  char *completed_at, struct tp_error *err) TP_MUST_CHECK;

/* Marks the import completed, after every record was acknowledged. */
enum tp_status import_store_complete(struct pg_conn *c, const char *sha256, int64_t records,
                                     struct tp_error *err) TP_MUST_CHECK;

#endif
