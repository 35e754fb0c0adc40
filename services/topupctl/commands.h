/* topupctl subcommands: one cmd_<name>.c each, declared here, listed in main.c's table. */
#ifndef TOPUPCTL_COMMANDS_H
#define TOPUPCTL_COMMANDS_H

#include <stdint.h>
#include <stdio.h>

/* Exit codes shared by every subcommand; the README's "Exit codes" table lists them. */
enum topupctl_exit {
    TOPUPCTL_EXIT_OK = 0,
    TOPUPCTL_EXIT_FAILURE = 1,           /* could not do it: server unreachable, SQL error */
    TOPUPCTL_EXIT_USAGE = 2,             /* bad command line or configuration */
    TOPUPCTL_EXIT_MIGRATION_CHANGED = 3, /* migrate: an applied migration file was edited */
    TOPUPCTL_EXIT_LOCK_BUSY = 4,         /* migrate: a lock (migrators', a table's) not granted */
    TOPUPCTL_EXIT_VIOLATIONS = 5,        /* verify: the ledger breaks an invariant */
    /* New commands add their specific codes here (and to the README table). */
};

/* Settings from the environment, loaded by main() before a command runs (--help-config). */
struct topupctl_config {
    char *pg_conninfo;
    char *redis_host;
    int64_t redis_port;
    char *migrations_dir;            /* "" means: the checkout's deploy/migrations */
    int64_t migrate_lock_timeout_ms; /* PostgreSQL lock_timeout of migrate's statements */
    /* verify: the ledger's per-event ceilings (the ledger's settings of the same names). */
    int64_t max_recharge_fen, max_usage_fen, max_refund_fen;
    /* close: unmatched credits older than this many days are breaks; wait for the day lock. */
    int64_t close_unmatched_max_days, close_lock_timeout_ms, close_payout_max_days;
};
extern struct topupctl_config topupctl_cfg;

/*
 * A subcommand. argv[0] is the subcommand's name and argv[1..] its arguments: parse them with
 * getopt_long as usual (optind is still 1; main() does not call getopt). Every command answers
 * --help on stdout with exit 0. Returns an exit code above. Human output goes to stdout, JSON log
 * lines to stderr.
 *
 * To add a command: write cmd_<name>.c (CMake picks it up), declare it below, and add one line
 * to the `commands` table in main.c.
 */
int cmd_migrate(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_review(int argc, char **argv);
int cmd_payers(int argc, char **argv);
/* cmd_review_claims.c: `review claims` and the claims fitting a review item (`review show`). */
struct pg_conn;
int review_claims_cmd(struct pg_conn *c, int argc, char **argv);
int review_claims_for_item(struct pg_conn *c, int64_t review_id, FILE *out);
int cmd_refund(int argc, char **argv);
int cmd_payout(int argc, char **argv);
/* close: exit 0 no break, 1 breaks, 2 usage or error (its own codes, see the README). */
int cmd_close(int argc, char **argv);
/* Add new commands here, e.g. int cmd_token(int argc, char **argv); */

#endif
