/* topupctl token: issue (and check) the API's bearer tokens, signed with TOKEN_SECRET. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "topup/token.h"

static void token_usage(FILE *out)
{
    fprintf(out,
            "usage: topupctl token issue --account ID [--ttl 24h]\n"
            "       topupctl token verify TOKEN\n"
            "\n"
            "issue   prints a bearer token for account ID (1..%d printable ASCII characters),\n"
            "        valid for --ttl (3600, 90m, 24h, 7d; default 24h, at most 366d).\n"
            "verify  prints the account and expiry of TOKEN, or why it is refused (exit 1).\n"
            "\n"
            "Both sign or check with TOKEN_SECRET (at least %d bytes; the local stack's env file\n"
            "exports it), the same secret order-intake verifies with.\n",
            TOKEN_ACCOUNT_MAX, TOKEN_SECRET_MIN_BYTES);
}

static const char *token_secret(void)
{
    const char *secret = getenv("TOKEN_SECRET");
    if (secret == NULL || strlen(secret) < TOKEN_SECRET_MIN_BYTES) {
        fprintf(stderr, "topupctl token: TOKEN_SECRET must be set to at least %d bytes\n",
                TOKEN_SECRET_MIN_BYTES);
        return NULL;
    }
    return secret;
}

static int token_issue_cmd(int argc, char **argv)
{
    static const struct option opts[] = {
        {"account", required_argument, NULL, 'a'},
        {"ttl", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *account = NULL;
    const char *ttl = "24h";
    int c;
    while ((c = getopt_long(argc, argv, "a:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            account = optarg;
            break;
        case 't':
            ttl = optarg;
            break;
        case 'h':
            token_usage(stdout);
            return TOPUPCTL_EXIT_OK;
        default:
            token_usage(stderr);
            return TOPUPCTL_EXIT_USAGE;
        }
    }
    if (account == NULL || optind != argc) {
        token_usage(stderr);
        return TOPUPCTL_EXIT_USAGE;
    }
    struct tp_error err = {0};
    int64_t ttl_s = 0;
    if (token_parse_ttl(ttl, &ttl_s, &err) != TP_OK) {
        fprintf(stderr, "topupctl token: %s\n", err.msg);
        return TOPUPCTL_EXIT_USAGE;
    }
    const char *secret = token_secret();
    if (secret == NULL) {
        return TOPUPCTL_EXIT_USAGE;
    }
    char tok[TOKEN_STR_MAX];
    if (token_issue(secret, strlen(secret), account, (int64_t)time(NULL) + ttl_s, tok, sizeof(tok),
                    &err) != TP_OK) {
        fprintf(stderr, "topupctl token: %s\n", err.msg);
        return TOPUPCTL_EXIT_USAGE;
    }
    printf("%s\n", tok);
    return TOPUPCTL_EXIT_OK;
}

static int token_verify_cmd(int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[1], "--help") == 0) {
        token_usage(argc == 2 ? stdout : stderr);
        return argc == 2 ? TOPUPCTL_EXIT_OK : TOPUPCTL_EXIT_USAGE;
    }
    const char *secret = token_secret();
    if (secret == NULL) {
        return TOPUPCTL_EXIT_USAGE;
    }
    struct token_claims claims;
    struct tp_error err = {0};
    enum tp_status st =
        token_verify(secret, strlen(secret), argv[1], (int64_t)time(NULL), &claims, &err);
    if (st != TP_OK) {
        printf("refused: %s\n", err.msg);
        return TOPUPCTL_EXIT_FAILURE;
    }
    char when[32];
    time_t exp = (time_t)claims.expires_at_s;
    struct tm tm;
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&exp, &tm));
    printf("account %s\nexpires %s (%" PRId64 ")\n", claims.account, when, claims.expires_at_s);
    return TOPUPCTL_EXIT_OK;
}

int cmd_token(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        token_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? TOPUPCTL_EXIT_USAGE : TOPUPCTL_EXIT_OK;
    }
    if (strcmp(argv[1], "issue") == 0) {
        return token_issue_cmd(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "verify") == 0) {
        return token_verify_cmd(argc - 1, argv + 1);
    }
    fprintf(stderr, "topupctl token: unknown subcommand \"%s\"\n", argv[1]);
    token_usage(stderr);
    return TOPUPCTL_EXIT_USAGE;
}
