/*
 * PostgreSQL side of an import: the statement_imports row (by the file's SHA-256), the balance
 * continuity across files, the bank ids known to be shared, and the provenance records
 * (statement_import_records) written before anything is published.
 */
#ifndef STATEMENT_IMPORT_IMPORT_STORE_H
#define STATEMENT_IMPORT_IMPORT_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "identity.h"
#include "topup/copyw.h"
#include "topup/error.h"
#include "topup/event.h"
#include "topup/pg.h"
#include "validate.h"

enum import_state {
    IMPORT_STATE_NEW,       /* first time: a row in status 'publishing' is being inserted */
    IMPORT_STATE_RESUMED,   /* an earlier run stopped while publishing: publish again (safe) */
    IMPORT_STATE_COMPLETED, /* already imported: publish nothing */
};

#define IMPORT_STORE_TIME_MAX 64
/* Provenance rows go out in one COPY, in pieces of this many bytes. */
#define IMPORT_STORE_COPY_BYTES (256 * 1024)
/* Accounts of one file whose imports are serialised (advisory locks) and looked up. */
#define IMPORT_STORE_ACCOUNTS_MAX VALIDATE_SPANS_MAX

/* Audit of an accepted balance gap (all borrowed). */
struct import_gap_audit {
    const char *accepted_by; /* "user@host" */
    const char *reason;
};

struct import_store {
    struct pg_conn *pg; /* borrowed */
    enum import_state state;
    int64_t import_id;
    char completed_at[IMPORT_STORE_TIME_MAX];
    /* Resumed: what the first run recorded. */
    bool recorded;
    int64_t recorded_count;
    char recorded_sha256[65];
    /* Provenance rows being written (IMPORT_STATE_NEW, or a resumed import that had none). */
    struct copyw copy;
    bool copying; /* the COPY is open */
    int64_t copied;
};

/*
 * Opens the import's transaction: locks the accounts (imports of one account are serialised),
 * inserts the statement_imports row by SHA-256 ON CONFLICT DO NOTHING. A completed row: state
 * COMPLETED (completed_at set), transaction ended. A 'publishing' row: state RESUMED, with what
 * the first run recorded; transaction ended. A new row: state NEW and the transaction stays
 * open for import_store_continuity(), _shared(), _record() and _commit().
 */
enum tp_status import_store_begin(struct import_store *s, struct pg_conn *c, const char *sha256,
                                  const char *file_name, const char *format,
                                  const char *const *accounts, int naccounts,
                                  struct tp_error *err) TP_MUST_CHECK;

/*
 * Continuity (state NEW): for each span, the last imported closing of its account and currency
 * before the span opens; a different opening is reported into v as a gap (GAP_CONTINUITY). A
 * span opening on a day that an imported statement already covers is not compared. *checked
 * counts the spans compared.
 */
enum tp_status import_store_continuity(struct import_store *s, struct validator *v,
                                       uint32_t *checked, struct tp_error *err) TP_MUST_CHECK;

/*
 * Shared bank ids: the file's (found repeating in it) must not have been published alone by an
 * earlier import (TP_INVALID naming the id, the lines and that import: the file is refused);
 * they are remembered for later imports. The ones earlier imports found (for this file's
 * accounts) are marked shared in id, so this file identifies them the same way. For a resumed
 * import only the ones known when it began are marked (its first run saw those).
 */
enum tp_status import_store_shared(struct import_store *s, struct identity *id,
                                   const char *const *accounts, int naccounts,
                                   struct tp_error *err) TP_MUST_CHECK;

/* Appends one provenance row (seq from 1); sent in pieces of IMPORT_STORE_COPY_BYTES. */
enum tp_status import_store_record(struct import_store *s, int64_t seq,
                                   const uint8_t digest[EVENT_DIGEST_LEN], const struct record *r,
                                   struct tp_error *err) TP_MUST_CHECK;

/*
 * Sends the last rows and writes what the import is: record count, records_sha256, the spans,
 * the accepted gaps with their audit (gap NULL: none), the notes; then COMMIT (state NEW) or,
 * for a resumed import that recorded nothing before, the same in its own transaction.
 */
enum tp_status import_store_commit(struct import_store *s, int64_t records,
                                   const char records_sha256[65], const struct validator *v,
                                   const struct import_gap_audit *gap,
                                   struct tp_error *err) TP_MUST_CHECK;

/* Rolls back an open transaction (refused, or a failure midway). */
void import_store_abort(struct import_store *s);

/* Marks the import completed, after every record was acknowledged. */
enum tp_status import_store_complete(struct import_store *s, int64_t records,
                                     struct tp_error *err) TP_MUST_CHECK;

void import_store_deinit(struct import_store *s);

#endif
