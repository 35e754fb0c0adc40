/*
 * Redis authentication against a redis-server of the test's own (requirepass for the default user
 * and an ACL user "ledger"): without a password, or with a wrong one, the client is refused with
 * an error naming REDIS_PASSWORD/REDIS_USERNAME (never the password) and writes nothing; with it,
 * commands and pipelines work and keep working across a reconnect (AUTH on every connect); a
 * service (topupctl stats, the counters library) does the same from its config table.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "topup/counters.h"
#include "topup/redis.h"

#define AUTH_DEFAULT_PASSWORD "default-pw-Hh3k9"
#define AUTH_USER             "ledger"
#define AUTH_USER_PASSWORD    "ledger-pw-Qx72m"
#define AUTH_WRONG_PASSWORD   "not-the-pw-Zr81c"

static struct tl_proc redis_proc;
static int redis_port;

/* A raw hiredis connection as the default user with its password: the test's own view. */
static redisContext *admin(void)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
    TL_CHECK_MSG(c != NULL && c->err == 0, "cannot connect to the test's redis on %d", redis_port);
    redisReply *r = redisCommand(c, "AUTH %s", AUTH_DEFAULT_PASSWORD);
    TL_CHECK_MSG(r != NULL && r->type == REDIS_REPLY_STATUS, "admin AUTH failed");
    freeReplyObject(r);
    return c;
}

static bool admin_exists(const char *key)
{
    redisContext *c = admin();
    redisReply *r = redisCommand(c, "EXISTS %s", key);
    TL_CHECK(r != NULL && r->type == REDIS_REPLY_INTEGER);
    bool yes = r->integer == 1;
    freeReplyObject(r);
    redisFree(c);
    return yes;
}

static void start_redis(void)
{
    redis_port = tl_free_port();
    char port[16], dir[TL_PATH_MAX];
    snprintf(port, sizeof(port), "%d", redis_port);
    snprintf(dir, sizeof(dir), "%s", tl_logdir());
    const char *argv[] = {"/usr/bin/redis-server",
                          "--port",
                          port,
                          "--bind",
                          "127.0.0.1",
                          "--dir",
                          dir,
                          "--save",
                          "",
                          "--appendonly",
                          "no",
                          "--requirepass",
                          AUTH_DEFAULT_PASSWORD,
                          "--user",
                          AUTH_USER,
                          "on",
                          ">" AUTH_USER_PASSWORD,
                          "~topup:*",
                          "+@all",
                          NULL};
    tl_proc_start(&redis_proc, "redis-server", argv, NULL);
    int64_t deadline = tl_now_ms() + 10000;
    for (;;) {
        tl_proc_check_alive(&redis_proc);
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
        bool up = c != NULL && c->err == 0;
        redisFree(c);
        if (up) {
            break;
        }
        TL_CHECK_MSG(tl_now_ms() < deadline, "the test's redis-server did not start");
        tl_sleep_ms(50);
    }
}

static void set_credentials(const char *user, const char *password)
{
    if (user != NULL) {
        setenv("REDIS_USERNAME", user, 1);
    } else {
        unsetenv("REDIS_USERNAME");
    }
    if (password != NULL) {
        setenv("REDIS_PASSWORD", password, 1);
    } else {
        unsetenv("REDIS_PASSWORD");
    }
}

/* One SET through the library with the credentials in the environment now. */
static enum tp_status try_set(const char *key, struct tp_error *err)
{
    struct redis_client *r = redis_new("127.0.0.1", redis_port, 500, 1000);
    enum tp_status st = redis_command(r, NULL, err, "SET %s %s", key, "1");
    redis_free(r);
    return st;
}

static void test_refused(void)
{
    struct tp_error err = {0};
    char key[TL_ID_MAX + 16];
    snprintf(key, sizeof(key), "topup:auth:%s:none", tl_sfx());

    tl_step("no password: refused, the error says which variables to set, nothing written");
    set_credentials(NULL, NULL);
    enum tp_status st = try_set(key, &err);
    tl_step("  %s", err.msg);
    TL_CHECK_MSG(st == TP_RETRY, "a client without the password got status %d", st);
    TL_CHECK_MSG(strstr(err.msg, "REDIS_PASSWORD") != NULL, "unclear error: %s", err.msg);
    TL_CHECK(!admin_exists(key));

    tl_step("a wrong password for the ACL user: refused naming the user, never the password");
    set_credentials(AUTH_USER, AUTH_WRONG_PASSWORD);
    st = try_set(key, &err);
    tl_step("  %s", err.msg);
    TL_CHECK_MSG(st == TP_RETRY, "a wrong password got status %d", st);
    TL_CHECK_MSG(strstr(err.msg, "AUTH refused for user \"" AUTH_USER "\"") != NULL &&
                     strstr(err.msg, "WRONGPASS") != NULL,
                 "unclear error: %s", err.msg);
    TL_CHECK_MSG(strstr(err.msg, AUTH_WRONG_PASSWORD) == NULL, "the password is in the error");
    TL_CHECK(!admin_exists(key));

    tl_step("the ACL user's password for the default user: refused too");
    set_credentials(NULL, AUTH_USER_PASSWORD);
    st = try_set(key, &err);
    TL_CHECK_MSG(st == TP_RETRY && strstr(err.msg, "AUTH refused for the default user") != NULL,
                 "default user with the wrong password: %d %s", st, err.msg);
    TL_CHECK(!admin_exists(key));
}

static void test_accepted(void)
{
    struct tp_error err = {0};
    char key[TL_ID_MAX + 16];

    tl_step("the default user's password (requirepass): works");
    set_credentials(NULL, AUTH_DEFAULT_PASSWORD);
    snprintf(key, sizeof(key), "topup:auth:%s:default", tl_sfx());
    TL_CHECK_MSG(try_set(key, &err) == TP_OK, "requirepass: %s", err.msg);
    TL_CHECK(admin_exists(key));

    tl_step("the ACL user: commands and a pipeline work, and again after a reconnect");
    set_credentials(AUTH_USER, AUTH_USER_PASSWORD);
    struct redis_client *r = redis_new("127.0.0.1", redis_port, 500, 1000);
    snprintf(key, sizeof(key), "topup:auth:%s:acl", tl_sfx());
    TL_CHECK_MSG(redis_command(r, NULL, &err, "SET %s 1", key) == TP_OK, "ACL user: %s", err.msg);
    TL_CHECK(admin_exists(key));
    /* The server drops every connection of the user; the next call reconnects and must AUTH. */
    redisContext *a = admin();
    redisReply *k = redisCommand(a, "CLIENT KILL USER %s", AUTH_USER);
    TL_CHECK_MSG(k != NULL && k->type == REDIS_REPLY_INTEGER && k->integer >= 1,
                 "CLIENT KILL found no connection of the user");
    freeReplyObject(k);
    redisFree(a);
    enum tp_status st = redis_command(r, NULL, &err, "SET %s 2", key);
    TL_CHECK_MSG(st == TP_RETRY, "the killed connection answered: %d", st);
    int64_t deadline = tl_now_ms() + 5000;
    struct redis_pipeline *p = redis_pipeline_new();
    TL_CHECK(redis_pipeline_add(p, "SET %s 3", key) == TP_OK);
    TL_CHECK(redis_pipeline_add(p, "GET %s", key) == TP_OK);
    while ((st = redis_pipeline_exec(r, p, &err)) == TP_RETRY && tl_now_ms() < deadline) {
        tl_sleep_ms(50); /* the client backs off after the drop */
    }
    TL_CHECK_MSG(st == TP_OK, "after the reconnect: %s", err.msg);
    const redisReply *got = redis_pipeline_reply(p, 1);
    TL_CHECK(got != NULL && got->type == REDIS_REPLY_STRING && strcmp(got->str, "3") == 0);
    redis_pipeline_free(p);

    tl_step("the ACL user is held to its keys (~topup:*): a key outside is refused");
    st = redis_command(r, NULL, &err, "SET other:%s 1", tl_sfx());
    TL_CHECK_MSG(st == TP_INVALID && strstr(err.msg, "NOPERM") != NULL, "outside key: %d %s", st,
                 err.msg);
    redis_free(r);

    tl_step("the counters library (every service's counters) with the ACL user");
    char svc[TL_ID_MAX];
    tl_id(svc, "authsvc");
    struct counters *c = counters_new(svc, "127.0.0.1", redis_port);
    counters_incr(c, "auth.checked", 3);
    counters_flush(c);
    counters_free(c);
    char ctr[TL_ID_MAX + 64];
    snprintf(ctr, sizeof(ctr), "topup:ctr:%s:auth.checked", svc);
    TL_CHECK_MSG(admin_exists(ctr), "the counter %s was not written", ctr);
}

/* topupctl stats as an operator runs it: from its config table, as REDIS_* in the environment. */
static void test_service(void)
{
    char port[32];
    snprintf(port, sizeof(port), "REDIS_PORT=%d", redis_port);
    const char *argv[] = {tl_bin("topupctl"), "stats", NULL};
    char *out = NULL;

    tl_step("topupctl stats without the password: exit 1, stderr names REDIS_PASSWORD");
    const char *none[] = {"REDIS_HOST=127.0.0.1", port, "REDIS_USERNAME=", "REDIS_PASSWORD=", NULL};
    int rc = tl_run("topupctl-nopass", argv, none, &out, 20000);
    free(out);
    TL_CHECK_MSG(rc != 0, "topupctl stats without a password exited 0");
    char log[TL_PATH_MAX];
    snprintf(log, sizeof(log), "%s/topupctl-nopass.log", tl_logdir());
    char *err = tl_read_file(log, NULL);
    TL_CHECK_MSG(err != NULL && strstr(err, "REDIS_PASSWORD") != NULL, "stderr: %s",
                 err != NULL ? err : "(none)");
    free(err);

    tl_step("topupctl stats with the ACL user: exit 0, the counter listed");
    const char *with[] = {"REDIS_HOST=127.0.0.1", port, "REDIS_USERNAME=" AUTH_USER,
                          "REDIS_PASSWORD=" AUTH_USER_PASSWORD, NULL};
    rc = tl_run("topupctl-acl", argv, with, &out, 20000);
    TL_CHECK_MSG(rc == 0, "topupctl stats with the password exited %d", rc);
    TL_CHECK_MSG(out != NULL && strstr(out, "auth.checked") != NULL, "stats: %s",
                 out != NULL ? out : "");
    free(out);
}

int main(void)
{
    tl_init("redis_auth");
    start_redis();
    test_refused();
    test_accepted();
    test_service();
    tl_proc_stop(&redis_proc, SIGTERM, 10000, NULL);
    printf("redis_auth: ok\n");
    return 0;
}
