/* Unit tests of names.c: the rule-2 name normalisation, with the examples from names.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "topup/names.h"

static void norm_is(const char *in, const char *want)
{
    char out[NAMES_NORM_MAX];
    struct tp_error err = {0};
    if (names_normalize(in, strlen(in), out, &err) != TP_OK) {
        fail_msg("names_normalize(\"%s\"): %s", in, err.msg);
    }
    if (strcmp(out, want) != 0) {
        fail_msg("names_normalize(\"%s\") = \"%s\", want \"%s\"", in, out, want);
    }
}

static void test_examples(void **state)
{
    (void)state;
    norm_is("张三", "张三");
    norm_is("张 三", "张三");
    norm_is("张　三", "张三"); /* ideographic space */
    norm_is("ＺＨＡＮＧ　Ｓａｎ", "zhangsan");
    norm_is("Zhang-San.", "zhangsan");
    norm_is("ZHANG SAN", "zhangsan");
    norm_is("阿依古丽·买买提", "阿依古丽买买提");
    norm_is("支付宝-张三", "张三");
    norm_is("支付宝－张三", "张三"); /* full-width hyphen */
    norm_is("财付通：李四", "李四");
    norm_is("ALIPAY-Wang Wei", "wangwei");
    norm_is("财付通", "");
    norm_is("支付宝（中国）网络技术有限公司", "");
    norm_is("支付宝科技", "支付宝科技"); /* not a prefix followed by a separator */
    norm_is("北京无量科技有限公司", "北京无量科技有限公司");
    norm_is("(北京)无量科技", "北京无量科技");
    norm_is("Müller GmbH", "müllergmbh");
    norm_is("", "");
    /* Found by fuzz_names: punctuation between a letter and a combining mark. */
    norm_is("u_\xcc\x89", "\xe1\xbb\xa7"); /* "u_" U+0309 -> U+1EE7 */
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    char out[NAMES_NORM_MAX];
    struct tp_error err = {0};
    const char bad[] = {'\xd5', '\xc5', '\xc8', '\xfd', 0}; /* GBK bytes of 张三 */
    assert_int_equal(names_normalize(bad, strlen(bad), out, &err), TP_INVALID);
    assert_string_equal(out, "");
    char big[2000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(names_normalize(big, strlen(big), out, &err), TP_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples),
        cmocka_unit_test(test_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
