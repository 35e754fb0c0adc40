/* topupctl: the operators' tool; dispatches `topupctl <command> [args]` through one table. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "topup/config.h"
#include "topup/log.h"
#include "topup/redis.h"

struct topupctl_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

/* One line per subcommand; keep `topupctl --help` and the README in the same order. */
static const struct topupctl_command commands[] = {
    {"migrate", cmd_migrate, "apply the SQL migrations in name order, each once"},
    {"stats", cmd_stats, "print the Redis monitoring counters as a table"},
    {"token", cmd_token, "issue or check an API bearer token (TOKEN_SECRET)"},
    {"verify", cmd_verify, "check the ledger invariants; print every violation (exit 5 if any)"},
    {"review", cmd_review, "reconciliation review queue: list, show, match, refund, ignore"},
    {"payers", cmd_payers, "an account's verified payer names (rule 2): add, remove, list"},
    {"refund", cmd_refund, "refunds of unused paid credit: request, approve, reject, list"},
    {"payout", cmd_payout, "approved refunds into a bank payout file (pain.001 or CN CSV), once"},
    {"close", cmd_close, "close a business day: statement vs matches vs ledger (exit 1 breaks)"},
    /* Add new commands here: {"token", cmd_token, "one-line summary"}, */
};

struct topupctl_config topupctl_cfg;

static const struct config_def config_defs[] = {
    {"PG_CONNINFO", CONFIG_STR, "host=127.0.0.1 port=55432 dbname=topup user=topup", 0, 4096,
     "libpq connection string or URI", &topupctl_cfg.pg_conninfo},
    {"REDIS_HOST", CONFIG_STR, "127.0.0.1", 0, 255, "Redis host (stats)", &topupctl_cfg.redis_host},
    {"REDIS_PORT", CONFIG_INT, "56379", 1, 65535, "Redis port (stats)", &topupctl_cfg.redis_port},
    REDIS_AUTH_CONFIG_ROWS,
    {"TOPUP_MIGRATIONS_DIR", CONFIG_STR, "", 0, 4096,
     "migrations folder when --dir is not given; empty: the checkout's deploy/migrations",
     &topupctl_cfg.migrations_dir},
    {"TOPUPCTL_MIGRATE_LOCK_TIMEOUT_MS", CONFIG_INT, "5000", 10, 600000,
     "migrate: longest wait for a lock a migration needs (PostgreSQL lock_timeout); past it the "
     "file rolls back, the holder is named, exit 4",
     &topupctl_cfg.migrate_lock_timeout_ms},
    {"LEDGER_MAX_RECHARGE_FEN", CONFIG_INT, "100000000", 1, 100000000000,
     "verify: the ledger's recharge ceiling (set it as the ledger's); a flow above it is reported; "
     "review match never credits a transfer above it",
     &topupctl_cfg.max_recharge_fen},
    {"LEDGER_MAX_USAGE_FEN", CONFIG_INT, "1000000", 1, 100000000000,
     "verify: the ledger's usage ceiling (set it as the ledger's)", &topupctl_cfg.max_usage_fen},
    {"LEDGER_MAX_REFUND_FEN", CONFIG_INT, "100000000", 1, 100000000000,
     "verify: the ledger's refund ceiling, either sign (set it as the ledger's)",
     &topupctl_cfg.max_refund_fen},
    {"TOPUPCTL_CLOSE_UNMATCHED_MAX_DAYS", CONFIG_INT, "5", 0, 3650,
     "close: an unmatched credit older than this many days (value date to the closed day) is a "
     "break; younger ones are listed as unmatched funds",
     &topupctl_cfg.close_unmatched_max_days},
    {"TOPUPCTL_CLOSE_LOCK_TIMEOUT_MS", CONFIG_INT, "60000", 10, 3600000,
     "close: longest wait for another close of the same day to finish; past it exit 2",
     &topupctl_cfg.close_lock_timeout_ms},
    {"TOPUPCTL_CLOSE_PAYOUT_MAX_DAYS", CONFIG_INT, "3", 0, 3650,
     "close: a refund sent to the bank (payout file) and neither paid out nor failed after this "
     "many days is a break; younger ones are listed as outstanding payouts",
     &topupctl_cfg.close_payout_max_days},
    {0},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: topupctl <command> [options]\n"
                 "       topupctl <command> --help\n"
                 "       topupctl --help-config\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    }
    /* Command-specific codes (3 and up) live in commands.h and the README, not here. */
    fprintf(out, "\nexit codes: 0 ok, 1 failure, 2 usage; others per command (README)\n");
}

int main(int argc, char **argv)
{
    log_init("topupctl");
    if (argc < 2) {
        usage(stderr);
        return TOPUPCTL_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return TOPUPCTL_EXIT_OK;
    }
    if (strcmp(name, "--help-config") == 0) {
        config_print_table(config_defs, stdout);
        return TOPUPCTL_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, name) != 0) {
            continue;
        }
        struct tp_error err = {0};
        if (config_load(config_defs, &err) != TP_OK) {
            fprintf(stderr, "topupctl: configuration: %s\n", err.msg);
            return TOPUPCTL_EXIT_USAGE;
        }
        return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "topupctl: unknown command \"%s\"\n\n", name);
    usage(stderr);
    return TOPUPCTL_EXIT_USAGE;
}
