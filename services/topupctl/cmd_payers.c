/* topupctl payers: the payer names an account owns (rule 2 of reconciliation), audited. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "recon.h"
#include "topup/pg.h"

#define PAYERS_CONNECT_MS 10000

static const char payers_usage[] =
    "usage: topupctl payers add ACCOUNT NAME --reason TEXT [--by WHO]\n"
    "       topupctl payers remove ACCOUNT NAME --reason TEXT [--by WHO]\n"
    "       topupctl payers list [ACCOUNT] [--all]\n"
    "\n"
    "add     make NAME (as the bank shows the payer; compared normalised) a verified payer of\n"
    "        ACCOUNT: reconciliation's rule 2 (name and amount, no reference code) credits an\n"
    "        order of ACCOUNT only for a transfer from a verified payer\n"
    "remove  stop that (the row is kept, stamped with who, when and why)\n"
    "list    active payers (--all: removed ones too), tab-separated\n"
    "WHO defaults to $USER. Exit 1 when the payer exists already (add) or does not (remove).\n";

static int payers_fail(const char *what, const struct tp_error *err)
{
    fprintf(stderr, "topupctl payers %s: %s\n", what, err->msg);
    return err->status == TP_INVALID ? TOPUPCTL_EXIT_USAGE : TOPUPCTL_EXIT_FAILURE;
}

/* add/remove: ACCOUNT NAME --reason TEXT [--by WHO] into *p. False on a usage error. */
static bool payers_parse_change(int argc, char **argv, struct payer_change *p)
{
    static const struct option opts[] = {{"reason", required_argument, NULL, 'r'},
                                         {"by", required_argument, NULL, 'b'},
                                         {NULL, 0, NULL, 0}};
    memset(p, 0, sizeof(*p));
    p->by = getenv("USER");
    int ch;
    while ((ch = getopt_long(argc, argv, "r:b:", opts, NULL)) != -1) {
        if (ch == 'r') {
            p->reason = optarg;
        } else if (ch == 'b') {
            p->by = optarg;
        } else {
            return false;
        }
    }
    if (optind + 2 != argc || p->reason == NULL) {
        return false;
    }
    p->account_id = argv[optind];
    p->display_name = argv[optind + 1];
    return true;
}

static int payers_change_cmd(struct pg_conn *c, bool add, int argc, char **argv)
{
    struct payer_change p;
    if (!payers_parse_change(argc, argv, &p)) {
        fprintf(stderr, "%s", payers_usage);
        return TOPUPCTL_EXIT_USAGE;
    }
    if (p.by == NULL || p.by[0] == '\0') {
        fprintf(stderr, "topupctl payers %s: --by is needed ($USER is not set)\n", argv[0]);
        return TOPUPCTL_EXIT_USAGE;
    }
    struct tp_error err = {0};
    int64_t id = 0;
    enum tp_status st = add ? payers_add(c, &p, &id, &err) : payers_remove(c, &p, &err);
    if (st != TP_OK) {
        return payers_fail(argv[0], &err);
    }
    if (add) {
        printf("payer %s added to account %s (id %lld) by %s\n", p.display_name, p.account_id,
               (long long)id, p.by);
    } else {
        printf("payer %s removed from account %s by %s\n", p.display_name, p.account_id, p.by);
    }
    return TOPUPCTL_EXIT_OK;
}

static int payers_list_cmd(struct pg_conn *c, int argc, char **argv)
{
    static const struct option opts[] = {{"all", no_argument, NULL, 'a'}, {NULL, 0, NULL, 0}};
    bool all = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "a", opts, NULL)) != -1) {
        if (ch != 'a') {
            fprintf(stderr, "%s", payers_usage);
            return TOPUPCTL_EXIT_USAGE;
        }
        all = true;
    }
    if (argc - optind > 1) {
        fprintf(stderr, "%s", payers_usage);
        return TOPUPCTL_EXIT_USAGE;
    }
    struct tp_error err = {0};
    if (payers_list(c, optind < argc ? argv[optind] : NULL, all, stdout, &err) != TP_OK) {
        return payers_fail("list", &err);
    }
    return TOPUPCTL_EXIT_OK;
}

int cmd_payers(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fprintf(argc < 2 ? stderr : stdout, "%s", payers_usage);
        return argc < 2 ? TOPUPCTL_EXIT_USAGE : TOPUPCTL_EXIT_OK;
    }
    const char *sub = argv[1];
    bool add = strcmp(sub, "add") == 0;
    if (!add && strcmp(sub, "remove") != 0 && strcmp(sub, "list") != 0) {
        fprintf(stderr, "topupctl payers: unknown subcommand %s\n%s", sub, payers_usage);
        return TOPUPCTL_EXIT_USAGE;
    }
    struct tp_error err = {0};
    struct pg_conn *c = pg_conn_new(topupctl_cfg.pg_conninfo, PAYERS_CONNECT_MS, &err);
    if (c == NULL) {
        fprintf(stderr, "topupctl payers: cannot connect to PostgreSQL: %s\n", err.msg);
        return TOPUPCTL_EXIT_FAILURE;
    }
    int code = strcmp(sub, "list") == 0 ? payers_list_cmd(c, argc - 1, argv + 1)
                                        : payers_change_cmd(c, add, argc - 1, argv + 1);
    pg_conn_free(c);
    return code;
}
