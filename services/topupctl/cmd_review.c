/* topupctl review: support works the reconciliation review queue (list, show, act on items). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "recon.h"
#include "topup/pg.h"

#define REVIEW_CONNECT_MS 10000

static const char review_usage[] =
    "usage: topupctl review list [--all] [--reason REASON] [--limit N]\n"
    "       topupctl review show REVIEW_ID\n"
    "       topupctl review match REVIEW_ID --order CODE --actor NAME --reason TEXT "
    "[--over-ceiling]\n"
    "       topupctl review refund REVIEW_ID --actor NAME --reason TEXT\n"
    "       topupctl review ignore REVIEW_ID --actor NAME --reason TEXT\n"
    "       topupctl review claims [--all]\n"
    "\n"
    "list    open items oldest first (--all: resolved ones too), tab-separated\n"
    "show    one item: the transfer, the order it names, every decision and action, and the\n"
    "        users' \"I have paid\" claims that fit it\n"
    "claims  users' open claims (--all: matched ones too), each with the waiting credits that\n"
    "        fit it (amount or payer name, value date within 3 days) and their review items\n"
    "match   credit the transfer to a pending order: claims it and queues the same\n"
    "        PaymentMatched as an automatic match (rule manual)\n"
    "refund  mark the transfer to be paid back to the sender (no credit)\n"
    "ignore  dismiss the transfer (no credit); for an amount_mismatch item, which is credited\n"
    "        already, acknowledge the flag\n"
    "--over-ceiling  match an above_ceiling item (the amount confirmed; audited in the decision);\n"
    "        nothing above LEDGER_MAX_RECHARGE_FEN is ever matched: refund it\n"
    "Every action is audited with --actor and --reason. Exit 1 when the item or the order does\n"
    "not exist, the item is resolved already, or the order is no longer pending.\n";

static int review_fail(const char *what, const struct tp_error *err)
{
    fprintf(stderr, "topupctl review %s: %s\n", what, err->msg);
    return err->status == TP_INVALID ? TOPUPCTL_EXIT_USAGE : TOPUPCTL_EXIT_FAILURE;
}

static bool review_parse_id(const char *s, int64_t *out)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || v <= 0) {
        return false;
    }
    *out = v;
    return true;
}

static int review_list_cmd(struct pg_conn *c, int argc, char **argv)
{
    static const struct option opts[] = {{"all", no_argument, NULL, 'a'},
                                         {"reason", required_argument, NULL, 'r'},
                                         {"limit", required_argument, NULL, 'n'},
                                         {NULL, 0, NULL, 0}};
    struct review_filter f = {.all = false, .reason = NULL, .limit = 100};
    int ch;
    while ((ch = getopt_long(argc, argv, "ar:n:", opts, NULL)) != -1) {
        int64_t n = 0;
        switch (ch) {
        case 'a':
            f.all = true;
            break;
        case 'r':
            f.reason = optarg;
            break;
        case 'n':
            if (!review_parse_id(optarg, &n) || n > REVIEW_LIST_MAX) {
                fprintf(stderr, "topupctl review list: --limit takes 1..%d\n", REVIEW_LIST_MAX);
                return TOPUPCTL_EXIT_USAGE;
            }
            f.limit = (int)n;
            break;
        default:
            fputs(review_usage, stderr);
            return TOPUPCTL_EXIT_USAGE;
        }
    }
    struct tp_error err = {0};
    if (review_list(c, &f, stdout, &err) != TP_OK) {
        return review_fail("list", &err);
    }
    return TOPUPCTL_EXIT_OK;
}

static int review_act_cmd(struct pg_conn *c, enum review_action action, int argc, char **argv)
{
    static const struct option opts[] = {{"order", required_argument, NULL, 'o'},
                                         {"actor", required_argument, NULL, 'a'},
                                         {"reason", required_argument, NULL, 'r'},
                                         {"over-ceiling", no_argument, NULL, 'c'},
                                         {NULL, 0, NULL, 0}};
    struct review_request req = {.action = action, .max_credit_fen = topupctl_cfg.max_recharge_fen};
    int ch;
    while ((ch = getopt_long(argc, argv, "o:a:r:", opts, NULL)) != -1) {
        switch (ch) {
        case 'o':
            req.order_code = optarg;
            break;
        case 'a':
            req.actor = optarg;
            break;
        case 'r':
            req.reason = optarg;
            break;
        case 'c':
            req.over_ceiling = true;
            break;
        default:
            fputs(review_usage, stderr);
            return TOPUPCTL_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc || !review_parse_id(argv[optind], &req.review_id) ||
        (action == REVIEW_MATCH) != (req.order_code != NULL) ||
        (req.over_ceiling && action != REVIEW_MATCH)) {
        fputs(review_usage, stderr);
        return TOPUPCTL_EXIT_USAGE;
    }
    char summary[512] = "";
    struct tp_error err = {0};
    if (review_apply(c, &req, summary, sizeof(summary), &err) != TP_OK) {
        return review_fail(argv[0], &err);
    }
    printf("%s\n", summary);
    return TOPUPCTL_EXIT_OK;
}

int cmd_review(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(review_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? TOPUPCTL_EXIT_USAGE : TOPUPCTL_EXIT_OK;
    }
    const char *sub = argv[1];
    enum review_action action = REVIEW_MATCH;
    bool act = true;
    if (strcmp(sub, "match") == 0) {
        action = REVIEW_MATCH;
    } else if (strcmp(sub, "refund") == 0) {
        action = REVIEW_REFUND;
    } else if (strcmp(sub, "ignore") == 0) {
        action = REVIEW_IGNORE;
    } else if (strcmp(sub, "list") == 0 || strcmp(sub, "show") == 0 || strcmp(sub, "claims") == 0) {
        act = false;
    } else {
        fprintf(stderr, "topupctl review: unknown subcommand \"%s\"\n\n%s", sub, review_usage);
        return TOPUPCTL_EXIT_USAGE;
    }
    int64_t id = 0;
    if (strcmp(sub, "show") == 0 && (argc != 3 || !review_parse_id(argv[2], &id))) {
        fputs(review_usage, stderr);
        return TOPUPCTL_EXIT_USAGE;
    }
    struct tp_error err = {0};
    struct pg_conn *c = pg_conn_new(topupctl_cfg.pg_conninfo, REVIEW_CONNECT_MS, &err);
    if (c == NULL) {
        return review_fail(sub, &err);
    }
    int code;
    /* getopt continues after the subcommand's name. */
    optind = 1;
    if (act) {
        code = review_act_cmd(c, action, argc - 1, argv + 1);
    } else if (strcmp(sub, "list") == 0) {
        code = review_list_cmd(c, argc - 1, argv + 1);
    } else if (strcmp(sub, "claims") == 0) {
        code = review_claims_cmd(c, argc - 1, argv + 1);
    } else {
        code = review_show(c, id, stdout, &err) == TP_OK ? review_claims_for_item(c, id, stdout)
                                                         : review_fail("show", &err);
    }
    pg_conn_free(c);
    return code;
}
