/* Unit tests of config.c: defaults, bounds, required settings, booleans, KAFKA_* mapping,
 * values from NAME_FILE secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "topup/config.h"

static const char *s_host;
static int64_t s_port;
static bool s_flag;

static const struct config_def defs[] = {
    {"T_HOST", CONFIG_STR, "127.0.0.1", 0, 16, "host to bind", &s_host},
    {"T_PORT", CONFIG_INT, "8080", 1, 65535, "port", &s_port},
    {"T_FLAG", CONFIG_BOOL, "false", 0, 0, "a switch", &s_flag},
    {0},
};

static void clear_env(void)
{
    unsetenv("T_HOST");
    unsetenv("T_PORT");
    unsetenv("T_FLAG");
}

static void test_defaults(void **state)
{
    (void)state;
    clear_env();
    struct tp_error err = {0};
    assert_int_equal(config_load(defs, &err), TP_OK);
    assert_string_equal(s_host, "127.0.0.1");
    assert_int_equal(s_port, 8080);
    assert_false(s_flag);
}

static void test_overrides_and_bounds(void **state)
{
    (void)state;
    clear_env();
    struct tp_error err = {0};
    setenv("T_PORT", "9000", 1);
    setenv("T_FLAG", "true", 1);
    assert_int_equal(config_load(defs, &err), TP_OK);
    assert_int_equal(s_port, 9000);
    assert_true(s_flag);

    setenv("T_PORT", "70000", 1);
    assert_int_equal(config_load(defs, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "T_PORT"));
    assert_non_null(strstr(err.msg, "65535"));

    setenv("T_PORT", "12abc", 1);
    assert_int_equal(config_load(defs, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "not a whole number"));

    setenv("T_PORT", "80", 1);
    setenv("T_FLAG", "maybe", 1);
    assert_int_equal(config_load(defs, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "T_FLAG"));

    setenv("T_FLAG", "0", 1);
    setenv("T_HOST", "a-very-long-host-name-indeed", 1);
    assert_int_equal(config_load(defs, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "T_HOST"));
    clear_env();
}

static void test_required(void **state)
{
    (void)state;
    const char *secret = NULL;
    const struct config_def req[] = {
        {"T_SECRET", CONFIG_STR, NULL, 0, 0, "signing secret", &secret},
        {0},
    };
    unsetenv("T_SECRET");
    struct tp_error err = {0};
    assert_int_equal(config_load(req, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "T_SECRET is required"));
    setenv("T_SECRET", "s3cret", 1);
    assert_int_equal(config_load(req, &err), TP_OK);
    assert_string_equal(secret, "s3cret");
    unsetenv("T_SECRET");
}

struct seen {
    char keys[8][64];
    char vals[8][64];
    int n;
};

static int record_kv(void *ctx, const char *key, const char *value, char *errstr, size_t errlen)
{
    struct seen *s = ctx;
    if (strcmp(key, "bad.property") == 0) {
        snprintf(errstr, errlen, "No such configuration property");
        return -1;
    }
    snprintf(s->keys[s->n], 64, "%s", key);
    snprintf(s->vals[s->n], 64, "%s", value);
    s->n++;
    return 0;
}

static void test_kafka_env(void **state)
{
    (void)state;
    struct seen s = {0};
    struct tp_error err = {0};
    setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", 1);
    setenv("KAFKA_SOCKET_TIMEOUT_MS", "1000", 1);
    assert_int_equal(config_apply_kafka_env(record_kv, &s, &err), TP_OK);
    int found = 0;
    for (int i = 0; i < s.n; i++) {
        if (strcmp(s.keys[i], "bootstrap.servers") == 0) {
            assert_string_equal(s.vals[i], "127.0.0.1:9092");
            found++;
        }
        if (strcmp(s.keys[i], "socket.timeout.ms") == 0) {
            found++;
        }
    }
    assert_int_equal(found, 2);
    setenv("KAFKA_BAD_PROPERTY", "x", 1);
    assert_int_equal(config_apply_kafka_env(record_kv, &s, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "KAFKA_BAD_PROPERTY"));
    unsetenv("KAFKA_BAD_PROPERTY");
    unsetenv("KAFKA_SOCKET_TIMEOUT_MS");
}

/* Writes text to a new file of the test's own; its path goes into path. */
static void write_secret(char *path, size_t len, const char *text)
{
    snprintf(path, len, "/tmp/test_config_secret_%d_XXXXXX", (int)getpid());
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void test_file_values(void **state)
{
    (void)state;
    clear_env();
    struct tp_error err = {0};
    char path[128], longp[128];
    write_secret(path, sizeof(path), "10.0.0.7\n");
    setenv("T_HOST_FILE", path, 1);
    assert_int_equal(config_load(defs, &err), TP_OK);
    assert_string_equal(s_host, "10.0.0.7"); /* one trailing newline dropped */

    setenv("T_HOST", "127.0.0.2", 1);
    assert_int_equal(config_load(defs, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "T_HOST and T_HOST_FILE are both set"));
    unsetenv("T_HOST");

    write_secret(longp, sizeof(longp), "a-value-longer-than-sixteen\n");
    setenv("T_HOST_FILE", longp, 1);
    assert_int_equal(config_load(defs, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "holds more than 16 bytes"));

    setenv("T_HOST_FILE", "/nonexistent/secret", 1);
    assert_int_equal(config_load(defs, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "T_HOST_FILE=/nonexistent/secret cannot be read"));
    unsetenv("T_HOST_FILE");

    setenv("T_HOST_FILE", "", 1); /* empty: unset */
    assert_int_equal(config_load(defs, &err), TP_OK);
    assert_string_equal(s_host, "127.0.0.1");
    unsetenv("T_HOST_FILE");

    setenv("T_PORT_FILE", path, 1); /* not a number: the bound check applies to file values */
    assert_int_equal(config_load(defs, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "T_PORT"));
    unsetenv("T_PORT_FILE");

    write_secret(longp, sizeof(longp), "scram-pw-from-a-secret\n");
    setenv("KAFKA_SASL_PASSWORD_FILE", longp, 1);
    struct seen s = {0};
    assert_int_equal(config_apply_kafka_env(record_kv, &s, &err), TP_OK);
    int found = 0;
    for (int i = 0; i < s.n; i++) {
        if (strcmp(s.keys[i], "sasl.password") == 0) {
            assert_string_equal(s.vals[i], "scram-pw-from-a-secret");
            found++;
        }
        assert_string_not_equal(s.keys[i], "sasl.password.file");
    }
    assert_int_equal(found, 1);
    setenv("KAFKA_SASL_PASSWORD", "inline", 1);
    assert_int_equal(config_apply_kafka_env(record_kv, &s, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "both set"));
    unsetenv("KAFKA_SASL_PASSWORD");
    unsetenv("KAFKA_SASL_PASSWORD_FILE");
    unlink(path);
    unlink(longp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),    cmocka_unit_test(test_overrides_and_bounds),
        cmocka_unit_test(test_required),    cmocka_unit_test(test_kafka_env),
        cmocka_unit_test(test_file_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
