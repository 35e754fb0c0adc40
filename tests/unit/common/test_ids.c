/* Unit tests of ids.c: UUIDv7 shape and order, reference codes and their check character. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "topup/ids.h"

static void test_uuid7_shape_and_order(void **state)
{
    (void)state;
    char prev[UUID_STR_LEN] = "";
    for (int i = 0; i < 20000; i++) {
        char u[UUID_STR_LEN];
        ids_uuid7(u);
        assert_true(ids_uuid_valid(u));
        assert_int_equal(u[14], '7');               /* version */
        assert_true(strchr("89ab", u[19]) != NULL); /* variant */
        assert_true(strcmp(prev, u) < 0);           /* strictly increasing in a process */
        memcpy(prev, u, sizeof(prev));
    }
    assert_false(ids_uuid_valid("0190b3c4-aaaa-7bbb-8ccc-ddddeeeeffff0"));
    assert_false(ids_uuid_valid("0190B3C4-AAAA-7BBB-8CCC-DDDDEEEEFFFF"));
    assert_false(ids_uuid_valid("not-a-uuid"));
    assert_true(ids_uuid_valid("0190b3c4-aaaa-7bbb-8ccc-ddddeeeeffff"));
}

static const char alphabet[] = "23456789ABCDEFGHJKMNPQRSTWXYZ";

static void test_refcode_valid_and_unambiguous(void **state)
{
    (void)state;
    for (int i = 0; i < 5000; i++) {
        char c[REFCODE_STR_LEN];
        ids_refcode_new(c);
        assert_int_equal(strlen(c), REFCODE_LEN);
        assert_memory_equal(c, "TU", 2);
        assert_true(ids_refcode_valid(c));
        for (int k = 2; k < REFCODE_LEN; k++) {
            assert_non_null(strchr(alphabet, c[k]));
        }
    }
}

static void test_refcode_check_catches_typos(void **state)
{
    (void)state;
    for (int n = 0; n < 300; n++) {
        char c[REFCODE_STR_LEN];
        ids_refcode_new(c);
        /* Every single substitution is caught. */
        for (int k = 2; k < REFCODE_LEN; k++) {
            for (const char *a = alphabet; *a; a++) {
                if (*a == c[k]) {
                    continue;
                }
                char t[REFCODE_STR_LEN];
                memcpy(t, c, sizeof(t));
                t[k] = *a;
                assert_false(ids_refcode_valid(t));
            }
        }
        /* Every adjacent transposition of different characters is caught. */
        for (int k = 2; k < REFCODE_LEN - 1; k++) {
            if (c[k] == c[k + 1]) {
                continue;
            }
            char t[REFCODE_STR_LEN];
            memcpy(t, c, sizeof(t));
            t[k] = c[k + 1];
            t[k + 1] = c[k];
            assert_false(ids_refcode_valid(t));
        }
    }
    assert_false(ids_refcode_valid("TU7K3M9Q2"));
    assert_false(ids_refcode_valid("tu7k3m9q2x"));
    assert_false(ids_refcode_valid(NULL));
}

static void test_refcode_find_in_noise(void **state)
{
    (void)state;
    char c[REFCODE_STR_LEN];
    ids_refcode_new(c);
    char lower[REFCODE_STR_LEN];
    for (int i = 0; i < REFCODE_STR_LEN; i++) {
        lower[i] = (char)((c[i] >= 'A' && c[i] <= 'Z') ? c[i] - 'A' + 'a' : c[i]);
    }
    char text[256];
    char out[REFCODE_STR_LEN];

    snprintf(text, sizeof(text), "转账 %s 充值", c);
    assert_true(ids_refcode_find(text, strlen(text), out));
    assert_string_equal(out, c);

    snprintf(text, sizeof(text), "/REMI/%s thanks", lower);
    assert_true(ids_refcode_find(text, strlen(text), out));
    assert_string_equal(out, c);

    snprintf(text, sizeof(text), "ref: %.4s-%.3s %.3s", c, c + 4, c + 7);
    assert_true(ids_refcode_find(text, strlen(text), out));
    assert_string_equal(out, c);

    snprintf(text, sizeof(text), "PAYMENT%sREF", c); /* glued to other letters */
    assert_true(ids_refcode_find(text, strlen(text), out));
    assert_string_equal(out, c);

    /* A mangled code (one character wrong) is not found. */
    snprintf(text, sizeof(text), "%s", c);
    text[5] = text[5] == 'A' ? 'B' : 'A';
    assert_false(ids_refcode_find(text, strlen(text), out));

    assert_false(ids_refcode_find("no code here", 12, out));

    char two[2][REFCODE_STR_LEN];
    char d[REFCODE_STR_LEN];
    do {
        ids_refcode_new(d);
    } while (strcmp(c, d) == 0);
    snprintf(text, sizeof(text), "%s and %s and %s", c, d, c);
    assert_int_equal(ids_refcode_find_all(text, strlen(text), two, 2), 2);
    assert_string_equal(two[0], c);
    assert_string_equal(two[1], d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid7_shape_and_order),
        cmocka_unit_test(test_refcode_valid_and_unambiguous),
        cmocka_unit_test(test_refcode_check_catches_typos),
        cmocka_unit_test(test_refcode_find_in_noise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
