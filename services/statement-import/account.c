/* The receiving account of a statement: the file's account checked against --account. */
#include <string.h>

#include "parser.h"

/* Copies s without blanks into out; false when it does not fit. */
static bool account_compact(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; *s; s++) {
        if (*s == ' ' || *s == '\t') {
            continue;
        }
        if (o + 1 >= cap) {
            return false;
        }
        out[o++] = *s;
    }
    out[o] = '\0';
    return true;
}

/*
 * Exports that show only the last digits ("3167") or mask the middle
 * ("1234****9876"). Real account numbers have seven digits and more (US, Swiss and Nordic banks
 * have seven-digit ones): those are full accounts, not tails.
 */
#define ACCOUNT_TAIL_MAX 6

static bool account_is_partial(const char *a)
{
    return strchr(a, '*') != NULL || strlen(a) <= ACCOUNT_TAIL_MAX;
}

static bool account_partial_matches(const char *partial, const char *full)
{
    const char *first = strchr(partial, '*');
    size_t flen = strlen(full);
    if (first == NULL) {
        size_t plen = strlen(partial);
        return plen <= flen && strcmp(full + flen - plen, partial) == 0;
    }
    const char *last = strrchr(partial, '*');
    size_t pre = (size_t)(first - partial);
    size_t suf = strlen(last + 1);
    return flen > pre + suf && memcmp(full, partial, pre) == 0 &&
           strcmp(full + flen - suf, last + 1) == 0;
}

enum tp_status account_resolve(const char *file_account, const char *cli_account, char *out,
                               struct tp_error *err)
{
    char file[RECORD_ACCOUNT_MAX + 1] = "";
    char cli[RECORD_ACCOUNT_MAX + 1] = "";
    if (file_account != NULL && !account_compact(file_account, file, sizeof file)) {
        return error_set(err, TP_INVALID, "the file's account is longer than %d characters",
                         RECORD_ACCOUNT_MAX);
    }
    if (cli_account != NULL && !account_compact(cli_account, cli, sizeof cli)) {
        return error_set(err, TP_INVALID, "--account is longer than %d characters",
                         RECORD_ACCOUNT_MAX);
    }
    if (file[0] == '\0') {
        if (cli[0] == '\0') {
            return error_set(err, TP_INVALID,
                             "no receiving account: the file names none; pass --account");
        }
        strcpy(out, cli);
        return TP_OK;
    }
    if (cli[0] == '\0') {
        if (account_is_partial(file)) {
            return error_set(err, TP_INVALID,
                             "the file's account \"%s\" is masked or partial; pass the full "
                             "account with --account",
                             file);
        }
        strcpy(out, file);
        return TP_OK;
    }
    if (strcmp(file, cli) == 0 ||
        (account_is_partial(file) && account_partial_matches(file, cli))) {
        strcpy(out, cli);
        return TP_OK;
    }
    return error_set(err, TP_INVALID, "--account %s does not match the file's account \"%s\"", cli,
                     file);
}
