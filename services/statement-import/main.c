/* statement-import: the nightly bank statement import (argument parsing and wiring only). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csv_profiles.h"
#include "importer.h"
#include "text.h"
#include "topup/config.h"
#include "topup/log.h"
#include "topup/signals.h"
#include "validate.h"

/* Default bound of the producer queue (see main). */
#define STATEMENT_IMPORT_QUEUE_KBYTES   "16384"
#define STATEMENT_IMPORT_QUEUE_MESSAGES "32768"

static char *cfg_pg_conninfo;
static int64_t cfg_flush_timeout_ms;
static int64_t cfg_pg_connect_timeout_ms;
static int64_t cfg_problems_listed;
static char *cfg_spool_dir;
static int64_t cfg_xml_time_limit_s;

static const struct config_def config_defs[] = {
    {"PG_CONNINFO", CONFIG_STR, "host=127.0.0.1 port=55432 dbname=topup user=topup", 0, 4096,
     "PostgreSQL connection (statement_imports)", &cfg_pg_conninfo},
    {"IMPORT_FLUSH_TIMEOUT_MS", CONFIG_INT, "60000", 1000, 3600000,
     "how long to wait for Kafka acknowledgements (and for a full producer queue)",
     &cfg_flush_timeout_ms},
    {"IMPORT_PG_CONNECT_TIMEOUT_MS", CONFIG_INT, "10000", 100, 600000,
     "how long to retry connecting to PostgreSQL", &cfg_pg_connect_timeout_ms},
    {"IMPORT_PROBLEMS_LISTED", CONFIG_INT, "1000", 1, VALIDATE_LISTED_MAX,
     "problems printed for a rejected file (the rest are counted)", &cfg_problems_listed},
    {"IMPORT_SPOOL_DIR", CONFIG_STR, "/tmp", 1, 4096,
     "directory of the private copy of the file while it is imported (room for its size)",
     &cfg_spool_dir},
    {"IMPORT_XML_TIME_LIMIT_S", CONFIG_INT, "600", 1, 86400,
     "longest one reading of a camt file may take before it is refused", &cfg_xml_time_limit_s},
    {0},
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: statement-import [--format auto|mt940|camt|csv|csv:<profile>]\n"
            "                        [--profile-file FILE] [--account ACCOUNT] [--currency CNY]\n"
            "                        [--encoding auto|utf-8|gb18030|...] [--dry-run]\n"
            "                        [--accept-balance-gap --reason \"WHY\"] FILE\n"
            "       statement-import --list-profiles [--profile-file FILE]\n"
            "       statement-import --help-config\n"
            "Exit codes: 0 imported (or dry run clean), 1 usage, 2 invalid file (nothing\n"
            "published), 3 already imported, 4 PostgreSQL/Kafka failure, 5 interrupted,\n"
            "6 an unfinished earlier import read the file otherwise (nothing published).\n");
}

static int list_profiles(const char *profile_file)
{
    struct tp_error err;
    struct csv_profile_set *custom = NULL;
    if (profile_file != NULL) {
        custom = csv_profiles_load(profile_file, &err);
        if (custom == NULL) {
            fprintf(stderr, "statement-import: %s\n", err.msg);
            return 1;
        }
        for (int i = 0; i < custom->n; i++) {
            printf("csv:%-18s %s (from %s)\n", custom->profiles[i].name,
                   custom->profiles[i].description, profile_file);
        }
    }
    int n;
    const struct csv_profile *b = csv_profiles_builtin(&n);
    for (int i = 0; i < n; i++) {
        printf("csv:%-18s %s\n", b[i].name, b[i].description);
    }
    csv_profiles_free(custom);
    return 0;
}

/* --accept-balance-gap needs a reason a reader of the audit understands; --reason needs it. */
static bool reason_ok(const struct import_options *o)
{
    if (o->gap_reason != NULL && !o->accept_balance_gap) {
        fprintf(stderr, "statement-import: --reason goes with --accept-balance-gap\n");
        return false;
    }
    if (!o->accept_balance_gap) {
        return true;
    }
    if (o->gap_reason == NULL) {
        fprintf(stderr, "statement-import: --accept-balance-gap needs --reason \"why the gap is "
                        "accepted\" (kept with the import, with your name)\n");
        return false;
    }
    size_t n = strlen(o->gap_reason), visible = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)o->gap_reason[i];
        if (c < 0x20 || c == 0x7F) {
            fprintf(stderr, "statement-import: --reason has a control character\n");
            return false;
        }
        visible += c != ' ';
    }
    if (visible < IMPORT_REASON_MIN || n > IMPORT_REASON_MAX ||
        text_utf8_valid_prefix((const unsigned char *)o->gap_reason, n, &(bool){false}) != n) {
        fprintf(stderr,
                "statement-import: --reason must be UTF-8 text of %d to %d bytes that says why\n",
                IMPORT_REASON_MIN, IMPORT_REASON_MAX);
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},   {"profile-file", required_argument, NULL, 'p'},
        {"account", required_argument, NULL, 'a'},  {"currency", required_argument, NULL, 'c'},
        {"encoding", required_argument, NULL, 'e'}, {"dry-run", no_argument, NULL, 'n'},
        {"list-profiles", no_argument, NULL, 'L'},  {"help-config", no_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},           {"accept-balance-gap", no_argument, NULL, 'G'},
        {"reason", required_argument, NULL, 'R'},   {0, 0, 0, 0},
    };
    struct import_options o = {.format = "auto", .currency = "CNY", .out = stdout, .msg = stderr};
    bool list = false;
    int ch;
    log_init("statement-import");
    while ((ch = getopt_long(argc, argv, "f:p:a:c:e:nh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'f':
            o.format = optarg;
            break;
        case 'p':
            o.profile_file = optarg;
            break;
        case 'a':
            o.account = optarg;
            break;
        case 'c':
            o.currency = optarg;
            break;
        case 'e':
            o.encoding = optarg;
            break;
        case 'n':
            o.dry_run = true;
            break;
        case 'L':
            list = true;
            break;
        case 'G':
            o.accept_balance_gap = true;
            break;
        case 'R':
            o.gap_reason = optarg;
            break;
        case 'H':
            config_print_table(config_defs, stdout);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return IMPORT_EXIT_USAGE;
        }
    }
    if (list) {
        return list_profiles(o.profile_file);
    }
    if (optind != argc - 1) {
        usage(stderr);
        return IMPORT_EXIT_USAGE;
    }
    if (strlen(o.currency) != 3) {
        fprintf(stderr, "statement-import: --currency must be a three-letter ISO 4217 code\n");
        return IMPORT_EXIT_USAGE;
    }
    if (!reason_ok(&o)) {
        return IMPORT_EXIT_USAGE;
    }
    struct tp_error err;
    if (config_load(config_defs, &err) != TP_OK) {
        fprintf(stderr, "statement-import: %s\n", err.msg);
        return IMPORT_EXIT_USAGE;
    }
    o.path = argv[optind];
    o.pg_conninfo = cfg_pg_conninfo;
    o.flush_timeout_ms = cfg_flush_timeout_ms;
    o.pg_connect_timeout_ms = cfg_pg_connect_timeout_ms;
    o.problems_listed = (uint32_t)cfg_problems_listed;
    o.spool_dir = cfg_spool_dir;
    o.xml_time_limit_ms = cfg_xml_time_limit_s * 1000;
    o.progress = isatty(STDERR_FILENO);
    /*
     * librdkafka queues up to 1 GB by default; a million records would sit in memory while the
     * broker catches up. 16 MB keeps the broker busy and memory flat; the environment may say
     * otherwise (KAFKA_* variables pass to librdkafka).
     */
    setenv("KAFKA_QUEUE_BUFFERING_MAX_KBYTES", STATEMENT_IMPORT_QUEUE_KBYTES, 0);
    /* The byte bound counts payloads only; each queued message costs librdkafka some hundred
     * bytes more: 100,000 of them (its default) took the peak RSS to 60 MB. */
    setenv("KAFKA_QUEUE_BUFFERING_MAX_MESSAGES", STATEMENT_IMPORT_QUEUE_MESSAGES, 0);
    signals_install();
    return importer_run(&o);
}
