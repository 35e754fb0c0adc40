/* Unit tests of log.c: every line is one valid JSON object with the service and the fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "topup/log.h"

/* Runs fn with stderr redirected to a pipe and returns what it wrote (caller frees). */
static char *capture(void (*fn)(void))
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    char *buf = calloc(1, 65536);
    ssize_t n = read(fds[0], buf, 65535);
    assert_true(n >= 0);
    close(fds[0]);
    return buf;
}

static void write_lines(void)
{
    log_init("test-svc");
    log_info("order created", LF_S("order", "TU7K3M9Q2X"), LF_I("amount_fen", 10000));
    log_warn("quote \" backslash \\ newline \n tab \t and 中文", LF_S("k\"ey", "v\x01"));
    log_debug("not shown at info");
    log_error("no fields");
}

static void test_json_lines(void **state)
{
    (void)state;
    unsetenv("LOG_LEVEL");
    char *out = capture(write_lines);
    int lines = 0;
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        if (o == NULL) {
            fail_msg("not JSON: %s (%s)", line, jerr.text);
        }
        assert_string_equal(json_string_value(json_object_get(o, "service")), "test-svc");
        assert_non_null(json_object_get(o, "ts"));
        if (lines == 0) {
            assert_string_equal(json_string_value(json_object_get(o, "level")), "info");
            assert_string_equal(json_string_value(json_object_get(o, "order")), "TU7K3M9Q2X");
            assert_int_equal(json_integer_value(json_object_get(o, "amount_fen")), 10000);
        } else if (lines == 1) {
            assert_string_equal(json_string_value(json_object_get(o, "msg")),
                                "quote \" backslash \\ newline \n tab \t and 中文");
            assert_string_equal(json_string_value(json_object_get(o, "k\"ey")), "v\x01");
        } else {
            assert_string_equal(json_string_value(json_object_get(o, "level")), "error");
        }
        json_decref(o);
        lines++;
    }
    assert_int_equal(lines, 3); /* the debug line is filtered at the default level */
    free(out);
}

static void write_long(void)
{
    log_init("test-svc");
    char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_info("long", LF_S("a", big), LF_S("b", big), LF_S("c", big), LF_I("n", 1));
}

static void test_long_line_stays_json(void **state)
{
    (void)state;
    char *out = capture(write_long);
    json_error_t jerr;
    json_t *o = json_loads(out, JSON_DISABLE_EOF_CHECK, &jerr);
    if (o == NULL) {
        fail_msg("long line not JSON: %s", jerr.text);
    }
    json_decref(o);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_lines),
        cmocka_unit_test(test_long_line_stays_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
