/* Unit tests of copyw.c: COPY text rows, separators, NULL and the escapes COPY requires. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "topup/copyw.h"

static void test_rows_and_escapes(void **state)
{
    (void)state;
    struct copyw w;
    copyw_init(&w);
    copyw_int(&w, -42);
    copyw_str(&w, "a\tb\nc\\d\re 张三");
    copyw_str(&w, NULL);
    copyw_bool(&w, true);
    copyw_end_row(&w);
    copyw_strn(&w, "{\"k\": \"x\\ny\"}tail", 13);
    copyw_null(&w);
    copyw_bool(&w, false);
    copyw_str(&w, "");
    copyw_end_row(&w);
    static const char want[] = "-42\ta\\tb\\nc\\\\d\\re 张三\t\\N\tt\n"
                               "{\"k\": \"x\\\\ny\"}\t\\N\tf\t\n";
    assert_int_equal(w.rows, 2);
    assert_int_equal(w.len, strlen(want));
    assert_memory_equal(w.buf, want, w.len);
    copyw_reset(&w);
    assert_int_equal(w.rows, 0);
    copyw_int(&w, INT64_MIN);
    copyw_end_row(&w);
    assert_int_equal(w.len, strlen("-9223372036854775808\n"));
    assert_memory_equal(w.buf, "-9223372036854775808\n", w.len);
    copyw_deinit(&w);
}

/* bytea in COPY text: the "\\x" prefix (backslash escaped), then two hex digits a byte. */
static void test_bytea(void **state)
{
    (void)state;
    struct copyw w;
    copyw_init(&w);
    static const uint8_t bytes[] = {0x00, 0x0a, 0x5c, 0xff};
    copyw_bytea(&w, bytes, sizeof(bytes));
    copyw_bytea(&w, bytes, 0);
    copyw_end_row(&w);
    static const char want[] = "\\\\x000a5cff\t\\\\x\n";
    assert_int_equal(w.len, strlen(want));
    assert_memory_equal(w.buf, want, w.len);
    copyw_deinit(&w);
}

/* A buffer that grows past its first allocation keeps every byte. */
static void test_growth(void **state)
{
    (void)state;
    struct copyw w;
    copyw_init(&w);
    char field[1000];
    memset(field, '\\', sizeof(field) - 1);
    field[sizeof(field) - 1] = '\0';
    for (int i = 0; i < 200; i++) {
        copyw_str(&w, field);
        copyw_end_row(&w);
    }
    assert_int_equal(w.rows, 200);
    assert_int_equal(w.len, 200 * (2 * 999 + 1));
    for (size_t i = 0; i < w.len; i++) {
        assert_true(w.buf[i] == '\\' || w.buf[i] == '\n');
    }
    copyw_deinit(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_and_escapes),
        cmocka_unit_test(test_bytea),
        cmocka_unit_test(test_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
