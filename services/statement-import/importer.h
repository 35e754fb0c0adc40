/* One import: detect, check the whole file, then publish (or print) its records. */
#ifndef STATEMENT_IMPORT_IMPORTER_H
#define STATEMENT_IMPORT_IMPORTER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes (README "Exit codes"). */
enum import_exit {
    IMPORT_EXIT_OK = 0,          /* every record acknowledged (or the dry run found no problem) */
    IMPORT_EXIT_USAGE = 1,       /* bad arguments, unknown profile, unreadable file */
    IMPORT_EXIT_INVALID = 2,     /* the file has problems: nothing was published */
    IMPORT_EXIT_DUPLICATE = 3,   /* this file was imported before: nothing was published */
    IMPORT_EXIT_INFRA = 4,       /* PostgreSQL or Kafka failed: run it again (safe) */
    IMPORT_EXIT_INTERRUPTED = 5, /* SIGINT/SIGTERM while publishing: run it again (safe) */
    IMPORT_EXIT_CONFLICT = 6,    /* an unfinished earlier import read this file otherwise */
};

/* --reason maxima (bytes): finance says why in a sentence, not an essay. */
#define IMPORT_REASON_MIN 8
#define IMPORT_REASON_MAX 1000

struct import_options {
    const char *path;
    const char *format;       /* "auto", "mt940", "camt", "csv", "csv:<profile>" */
    const char *profile_file; /* NULL: none */
    const char *account;      /* NULL: from the file */
    const char *currency;     /* for CSV without a currency column */
    const char *encoding;     /* NULL: detect */
    bool dry_run;
    bool accept_balance_gap;   /* --accept-balance-gap: balance gaps do not refuse the file */
    const char *gap_reason;    /* --reason, required with it */
    const char *spool_dir;     /* where the private copy of the file is kept while importing */
    int64_t xml_time_limit_ms; /* a camt pass taking longer is refused */
    bool progress;             /* progress line on stderr (a terminal) */
    uint32_t problems_listed;  /* how many problems to print */
    int64_t flush_timeout_ms;
    int64_t pg_connect_timeout_ms;
    const char *pg_conninfo;
    FILE *out; /* dry-run JSON lines */
    FILE *msg; /* problems, summary */
};

/* Runs the import; returns the exit code. */
int importer_run(const struct import_options *o);

#endif
