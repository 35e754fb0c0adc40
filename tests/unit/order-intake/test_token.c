/* Unit tests of token.c: issue/verify round trip, forgery, expiry, malformed input, TTL parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "topup/token.h"

static const char secret[] = "0123456789abcdef0123456789abcdef-test-secret";
#define SECRET_LEN (sizeof(secret) - 1)

static void issue(const char *account, int64_t exp, char out[TOKEN_STR_MAX])
{
    struct tp_error err = {0};
    if (token_issue(secret, SECRET_LEN, account, exp, out, TOKEN_STR_MAX, &err) != TP_OK) {
        fail_msg("token_issue(%s): %s", account, err.msg);
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    char tok[TOKEN_STR_MAX];
    issue("acct-42", 2000000000, tok);
    assert_true(strncmp(tok, "v1.", 3) == 0);
    struct token_claims c;
    struct tp_error err = {0};
    assert_int_equal(token_verify(secret, SECRET_LEN, tok, 1700000000, &c, &err), TP_OK);
    assert_string_equal(c.account, "acct-42");
    assert_int_equal(c.expires_at_s, 2000000000);
    assert_false(c.expired);

    /* Longest account id, every printable character class. */
    char acct[TOKEN_ACCOUNT_MAX + 1];
    for (int i = 0; i < TOKEN_ACCOUNT_MAX; i++) {
        acct[i] = (char)(0x21 + (i * 7) % 94);
    }
    acct[TOKEN_ACCOUNT_MAX] = '\0';
    issue(acct, 2000000000, tok);
    assert_int_equal(token_verify(secret, SECRET_LEN, tok, 1700000000, &c, &err), TP_OK);
    assert_string_equal(c.account, acct);
}

static void test_expired(void **state)
{
    (void)state;
    char tok[TOKEN_STR_MAX];
    issue("acct-1", 1700000000, tok);
    struct token_claims c;
    struct tp_error err = {0};
    assert_int_equal(token_verify(secret, SECRET_LEN, tok, 1700000000, &c, &err), TP_INVALID);
    assert_true(c.expired);
    assert_string_equal(c.account, "acct-1");
    assert_int_equal(token_verify(secret, SECRET_LEN, tok, 1699999999, &c, &err), TP_OK);
}

static void test_forgery(void **state)
{
    (void)state;
    char tok[TOKEN_STR_MAX];
    issue("acct-1", 1800000000, tok);
    struct token_claims c;
    struct tp_error err = {0};
    /* Another secret. */
    static const char other[] = "another-secret-of-at-least-32-bytes!!";
    assert_int_equal(token_verify(other, sizeof(other) - 1, tok, 1700000000, &c, &err), TP_INVALID);
    assert_false(c.expired);
    /* Every single-character change is refused. */
    size_t n = strlen(tok);
    for (size_t i = 0; i < n; i++) {
        char copy[TOKEN_STR_MAX];
        memcpy(copy, tok, n + 1);
        copy[i] = copy[i] == 'A' ? 'B' : 'A';
        assert_int_equal(token_verify(secret, SECRET_LEN, copy, 1700000000, &c, &err), TP_INVALID);
    }
    /* Account swapped for another one with the original signature. */
    char tok2[TOKEN_STR_MAX];
    issue("acct-2", 1800000000, tok2);
    char spliced[TOKEN_STR_MAX];
    const char *sig1 = strrchr(tok, '.');
    const char *sig2 = strrchr(tok2, '.');
    snprintf(spliced, sizeof(spliced), "%.*s%s", (int)(sig2 - tok2), tok2, sig1);
    assert_int_equal(token_verify(secret, SECRET_LEN, spliced, 1700000000, &c, &err), TP_INVALID);
    /* An expired-looking forgery is "unauthorized", never "expired". */
    char old[TOKEN_STR_MAX];
    snprintf(old, sizeof(old), "v1.YWNjdC0x.1000.%s", sig1 + 1);
    assert_int_equal(token_verify(secret, SECRET_LEN, old, 1700000000, &c, &err), TP_INVALID);
    assert_false(c.expired);
}

static void test_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "v1",
        "v1...",
        "v2.YWNjdC0x.1800000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1.YWNjdC0x.1800000000",
        "v1.YWNjdC0x.01800000000.AAAA",
        "v1..1800000000.AAAA",
        "v1.YWNjdC0x.18e8.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1.YWNjdC0x.1800000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.x",
        "Bearer v1.YWNjdC0x.1800000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        /* account "a b" (space) properly encoded: not a valid account id */
        "v1.YSBi.1800000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct token_claims c;
        struct tp_error err = {0};
        assert_int_equal(token_verify(secret, SECRET_LEN, bad[i], 1700000000, &c, &err),
                         TP_INVALID);
        assert_false(c.expired);
    }
    struct token_claims c;
    struct tp_error err = {0};
    assert_int_equal(token_verify(secret, SECRET_LEN, NULL, 1, &c, &err), TP_INVALID);
    char longtok[400];
    memset(longtok, 'A', sizeof(longtok) - 1);
    longtok[sizeof(longtok) - 1] = '\0';
    assert_int_equal(token_verify(secret, SECRET_LEN, longtok, 1, &c, &err), TP_INVALID);
}

static void test_issue_refuses(void **state)
{
    (void)state;
    char tok[TOKEN_STR_MAX];
    struct tp_error err = {0};
    assert_int_equal(token_issue("short", 5, "acct", 1800000000, tok, sizeof(tok), &err),
                     TP_INVALID);
    assert_int_equal(token_issue(secret, SECRET_LEN, "", 1800000000, tok, sizeof(tok), &err),
                     TP_INVALID);
    assert_int_equal(token_issue(secret, SECRET_LEN, "a b", 1800000000, tok, sizeof(tok), &err),
                     TP_INVALID);
    assert_int_equal(token_issue(secret, SECRET_LEN, "账户", 1800000000, tok, sizeof(tok), &err),
                     TP_INVALID);
    char acct[TOKEN_ACCOUNT_MAX + 2];
    memset(acct, 'x', TOKEN_ACCOUNT_MAX + 1);
    acct[TOKEN_ACCOUNT_MAX + 1] = '\0';
    assert_int_equal(token_issue(secret, SECRET_LEN, acct, 1800000000, tok, sizeof(tok), &err),
                     TP_INVALID);
    assert_int_equal(token_issue(secret, SECRET_LEN, "acct", 0, tok, sizeof(tok), &err),
                     TP_INVALID);
    /* Verification refuses a short secret too. */
    struct token_claims c;
    assert_int_equal(token_verify("short", 5, "v1.a.1.b", 1, &c, &err), TP_INVALID);
}

static void test_ttl(void **state)
{
    (void)state;
    struct tp_error err = {0};
    int64_t v = 0;
    assert_int_equal(token_parse_ttl("3600", &v, &err), TP_OK);
    assert_int_equal(v, 3600);
    assert_int_equal(token_parse_ttl("90s", &v, &err), TP_OK);
    assert_int_equal(v, 90);
    assert_int_equal(token_parse_ttl("90m", &v, &err), TP_OK);
    assert_int_equal(v, 5400);
    assert_int_equal(token_parse_ttl("24h", &v, &err), TP_OK);
    assert_int_equal(v, 86400);
    assert_int_equal(token_parse_ttl("7d", &v, &err), TP_OK);
    assert_int_equal(v, 604800);
    const char *bad[] = {"", "h", "0", "0h", "-1h", "1.5h", "24x", "367d", "1h30m", " 1h", NULL};
    for (int i = 0; bad[i] != NULL; i++) {
        v = 77;
        assert_int_equal(token_parse_ttl(bad[i], &v, &err), TP_INVALID);
        assert_int_equal(v, 77);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),    cmocka_unit_test(test_expired),
        cmocka_unit_test(test_forgery),       cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_issue_refuses), cmocka_unit_test(test_ttl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
