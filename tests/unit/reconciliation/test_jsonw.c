/* Unit tests of jsonw.c: separators, nesting, escapes, back-to-back documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "jsonw.h"

static void test_rows(void **state)
{
    (void)state;
    struct jsonw w;
    jsonw_init(&w);
    jsonw_array_begin(&w);
    for (int i = 0; i < 2; i++) {
        jsonw_object_begin(&w);
        jsonw_kint(&w, "i", i);
        jsonw_kstr(&w, "s", "a\"b\\c\n张三\x01");
        jsonw_kstr(&w, "n", NULL);
        jsonw_kbool(&w, "b", i == 1);
        jsonw_key(&w, "codes");
        jsonw_array_begin(&w);
        jsonw_str(&w, "TU1");
        jsonw_str(&w, "TU2");
        jsonw_array_end(&w);
        jsonw_key(&w, "raw");
        jsonw_raw(&w, "{\"x\":1}", 7);
        jsonw_object_end(&w);
    }
    jsonw_array_end(&w);
    assert_string_equal(jsonw_text(&w),
                        "[{\"i\":0,\"s\":\"a\\\"b\\\\c\\u000a张三\\u0001\",\"n\":null,\"b\":false,"
                        "\"codes\":[\"TU1\",\"TU2\"],\"raw\":{\"x\":1}},"
                        "{\"i\":1,\"s\":\"a\\\"b\\\\c\\u000a张三\\u0001\",\"n\":null,\"b\":true,"
                        "\"codes\":[\"TU1\",\"TU2\"],\"raw\":{\"x\":1}}]");
    /* What PostgreSQL will parse, a JSON parser accepts. */
    json_error_t e;
    json_t *v = json_loads(jsonw_text(&w), 0, &e);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(json_array_get(v, 0), "s")),
                        "a\"b\\c\n张三\x01");
    json_decref(v);
    jsonw_reset(&w);
    jsonw_array_begin(&w);
    jsonw_array_end(&w);
    assert_string_equal(jsonw_text(&w), "[]");
    jsonw_deinit(&w);
}

static void test_documents_back_to_back(void **state)
{
    (void)state;
    struct jsonw w;
    jsonw_init(&w);
    size_t off[3], len[3];
    for (int i = 0; i < 3; i++) {
        jsonw_next_document(&w);
        off[i] = w.len;
        jsonw_object_begin(&w);
        jsonw_kint(&w, "k", i);
        jsonw_object_end(&w);
        len[i] = w.len - off[i];
    }
    assert_memory_equal(jsonw_text(&w) + off[0], "{\"k\":0}", len[0]);
    assert_memory_equal(jsonw_text(&w) + off[1], "{\"k\":1}", len[1]);
    assert_memory_equal(jsonw_text(&w) + off[2], "{\"k\":2}", len[2]);
    jsonw_deinit(&w);
}

static void test_growth(void **state)
{
    (void)state;
    struct jsonw w;
    jsonw_init(&w);
    jsonw_array_begin(&w);
    for (int i = 0; i < 100000; i++) {
        jsonw_int(&w, i);
    }
    jsonw_array_end(&w);
    json_t *v = json_loads(jsonw_text(&w), 0, NULL);
    assert_non_null(v);
    assert_int_equal(json_array_size(v), 100000);
    assert_int_equal(json_integer_value(json_array_get(v, 99999)), 99999);
    json_decref(v);
    jsonw_deinit(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_documents_back_to_back),
        cmocka_unit_test(test_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
