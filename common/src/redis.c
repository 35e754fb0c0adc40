/* Thin best-effort hiredis client: bounded timeouts, reconnect with backoff, commands, pipelines.
 */
#include "topup/redis.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "topup/log.h"
#include "topup/mem.h"

#define REDIS_ADDR_MAX 300

const char *redis_config_username = NULL;
const char *redis_config_password = NULL;

struct redis_client {
    pthread_mutex_t mu;
    char *host;
    int port;
    char *username; /* NULL: AUTH <password> (or none) */
    char *password; /* NULL: no AUTH */
    char addr[REDIS_ADDR_MAX];
    int connect_timeout_ms;
    int command_timeout_ms;
    redisContext *ctx;   /* NULL when not connected */
    int64_t retry_at_ms; /* monotonic time before which no connect is attempted */
    int backoff_ms;      /* next backoff after a failure */
    bool down;           /* an outage was logged; log the recovery once */
};

struct redis_cmd {
    char *buf;
    size_t len;
};

struct redis_pipeline {
    struct redis_cmd *cmds;
    size_t n, cap;
    redisReply **replies; /* n entries once executed, NULL entries when not read */
    size_t nreplies;
};

static int64_t redis_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval redis_tv(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

/*
 * hiredis writes with write(2), so a peer that closed the socket raises SIGPIPE, which kills a
 * process that has not ignored it (tests, command-line tools). Like libpq, block SIGPIPE in this
 * thread around network I/O and swallow one that we caused.
 */
struct redis_sigpipe {
    sigset_t old_mask;
    bool was_pending;
};

static void redis_sigpipe_block(struct redis_sigpipe *s)
{
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &s->old_mask);
    sigemptyset(&pending);
    sigpending(&pending);
    s->was_pending = sigismember(&pending, SIGPIPE) == 1;
}

static void redis_sigpipe_unblock(struct redis_sigpipe *s)
{
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    if (!s->was_pending && sigismember(&pending, SIGPIPE) == 1) {
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &s->old_mask, NULL);
}

struct redis_client *redis_new(const char *host, int port, int connect_timeout_ms,
                               int command_timeout_ms)
{
    struct redis_client *r = mem_calloc(1, sizeof(*r));
    if (host == NULL || host[0] == '\0') {
        host = getenv("REDIS_HOST");
    }
    if (host == NULL || host[0] == '\0') {
        host = REDIS_DEFAULT_HOST;
    }
    if (port <= 0) {
        const char *env = getenv("REDIS_PORT");
        long p = env != NULL ? strtol(env, NULL, 10) : 0;
        port = (p > 0 && p <= 65535) ? (int)p : REDIS_DEFAULT_PORT;
    }
    r->host = mem_strdup(host);
    r->port = port;
    const char *user = redis_config_username ? redis_config_username : getenv("REDIS_USERNAME");
    const char *pass = redis_config_password ? redis_config_password : getenv("REDIS_PASSWORD");
    if (pass != NULL && pass[0] != '\0') {
        r->password = mem_strdup(pass);
        r->username = user != NULL && user[0] != '\0' ? mem_strdup(user) : NULL;
    }
    snprintf(r->addr, sizeof(r->addr), "%s:%d", host, port);
    r->connect_timeout_ms =
        connect_timeout_ms > 0 ? connect_timeout_ms : REDIS_CONNECT_TIMEOUT_MS_DEFAULT;
    r->command_timeout_ms =
        command_timeout_ms > 0 ? command_timeout_ms : REDIS_COMMAND_TIMEOUT_MS_DEFAULT;
    r->backoff_ms = REDIS_BACKOFF_MIN_MS;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void redis_free(struct redis_client *r)
{
    if (r == NULL) {
        return;
    }
    if (r->ctx != NULL) {
        redisFree(r->ctx);
    }
    pthread_mutex_destroy(&r->mu);
    free(r->host);
    free(r->username);
    if (r->password != NULL) {
        explicit_bzero(r->password, strlen(r->password));
    }
    free(r->password);
    free(r);
}

const char *redis_address(const struct redis_client *r)
{
    return r->addr;
}

/* Drops the connection and schedules the next connect attempt. Called with r->mu held. */
static enum tp_status redis_fail(struct redis_client *r, const char *what, struct tp_error *err)
{
    char why[256];
    snprintf(why, sizeof(why), "%s", what);
    if (r->ctx != NULL) {
        if (r->ctx->err == REDIS_ERR_IO &&
            strcmp(r->ctx->errstr, "Resource temporarily unavailable") == 0) {
            /* hiredis reports an expired socket timeout as EAGAIN. */
            snprintf(why, sizeof(why), "%s: no answer within %d ms", what, r->command_timeout_ms);
        } else if (r->ctx->err != 0 && r->ctx->errstr[0] != '\0') {
            snprintf(why, sizeof(why), "%s: %s", what, r->ctx->errstr);
        }
        redisFree(r->ctx);
        r->ctx = NULL;
    }
    int backoff_ms = r->backoff_ms;
    r->retry_at_ms = redis_now_ms() + backoff_ms;
    r->backoff_ms = backoff_ms * 2 > REDIS_BACKOFF_MAX_MS ? REDIS_BACKOFF_MAX_MS : backoff_ms * 2;
    if (!r->down) {
        /* One line per outage, not one per call: a dead Redis must not flood the logs. */
        log_warn("redis unavailable, backing off", LF_S("addr", r->addr), LF_S("error", why),
                 LF_I("backoff_ms", backoff_ms));
        r->down = true;
    }
    return error_set(err, TP_RETRY, "redis %s: %s", r->addr, why);
}

/*
 * Sends AUTH on a fresh connection. The password goes only to Redis, never into a log or err.
 * Called with r->mu held.
 */
static enum tp_status redis_auth(struct redis_client *r, struct tp_error *err)
{
    if (r->password == NULL) {
        return TP_OK;
    }
    const char *argv[3];
    int argc = 0;
    argv[argc++] = "AUTH";
    if (r->username != NULL) {
        argv[argc++] = r->username;
    }
    argv[argc++] = r->password;
    redisReply *reply = redisCommandArgv(r->ctx, argc, argv, NULL);
    if (reply == NULL) {
        return redis_fail(r, "AUTH", err);
    }
    enum tp_status st = TP_OK;
    if (reply->type == REDIS_REPLY_ERROR) {
        char what[320];
        snprintf(what, sizeof(what),
                 "AUTH refused for %s%s%s (check REDIS_USERNAME and REDIS_PASSWORD): %.*s",
                 r->username != NULL ? "user \"" : "the default user",
                 r->username != NULL ? r->username : "", r->username != NULL ? "\"" : "",
                 (int)(reply->len > 120 ? 120 : reply->len), reply->str);
        st = redis_fail(r, what, err);
    }
    freeReplyObject(reply);
    return st;
}

/* Called with r->mu held. */
static enum tp_status redis_ensure(struct redis_client *r, struct tp_error *err)
{
    if (r->ctx != NULL) {
        return TP_OK;
    }
    if (redis_now_ms() < r->retry_at_ms) {
        return error_set(err, TP_RETRY, "redis %s unavailable (backing off)", r->addr);
    }
    r->ctx = redisConnectWithTimeout(r->host, r->port, redis_tv(r->connect_timeout_ms));
    if (r->ctx == NULL) {
        return redis_fail(r, "connect: out of memory", err);
    }
    if (r->ctx->err != 0) {
        return redis_fail(r, "connect", err);
    }
    if (redisSetTimeout(r->ctx, redis_tv(r->command_timeout_ms)) != REDIS_OK) {
        return redis_fail(r, "set timeout", err);
    }
    /* Keepalive failure is harmless: the command timeout still bounds every call. */
    (void)redisEnableKeepAlive(r->ctx);
    if (redis_auth(r, err) != TP_OK) {
        return TP_RETRY;
    }
    r->backoff_ms = REDIS_BACKOFF_MIN_MS;
    if (r->down) {
        log_info("redis reachable again", LF_S("addr", r->addr));
        r->down = false;
    }
    return TP_OK;
}

enum tp_status redis_connect(struct redis_client *r, struct tp_error *err)
{
    struct redis_sigpipe sp;
    pthread_mutex_lock(&r->mu);
    redis_sigpipe_block(&sp);
    enum tp_status st = redis_ensure(r, err);
    redis_sigpipe_unblock(&sp);
    pthread_mutex_unlock(&r->mu);
    return st;
}

bool redis_connected(struct redis_client *r)
{
    pthread_mutex_lock(&r->mu);
    bool up = r->ctx != NULL;
    pthread_mutex_unlock(&r->mu);
    return up;
}

#define REDIS_NOAUTH_WHAT                                                                          \
    "Redis asks for a password this process was not given (set REDIS_PASSWORD, and "               \
    "REDIS_USERNAME for an ACL user)"

/* NOAUTH: the server wants AUTH first; like a refused AUTH, an outage until configured. */
static bool redis_is_noauth(const redisReply *reply)
{
    return reply->len >= 6 && strncmp(reply->str, "NOAUTH", 6) == 0;
}

/* Takes ownership of reply. Called with r->mu held. */
static enum tp_status redis_take_reply(struct redis_client *r, redisReply *reply, redisReply **out,
                                       struct tp_error *err)
{
    if (reply == NULL) {
        return redis_fail(r, "command", err);
    }
    if (reply->type == REDIS_REPLY_ERROR && redis_is_noauth(reply)) {
        freeReplyObject(reply);
        return redis_fail(r, REDIS_NOAUTH_WHAT, err);
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        enum tp_status st =
            error_set(err, TP_INVALID, "redis %s: %.*s", r->addr, (int)reply->len, reply->str);
        freeReplyObject(reply);
        return st;
    }
    if (out != NULL) {
        *out = reply;
    } else {
        freeReplyObject(reply);
    }
    return TP_OK;
}

enum tp_status redis_command(struct redis_client *r, redisReply **reply, struct tp_error *err,
                             const char *fmt, ...)
{
    struct redis_sigpipe sp;
    if (reply != NULL) {
        *reply = NULL;
    }
    pthread_mutex_lock(&r->mu);
    redis_sigpipe_block(&sp);
    enum tp_status st = redis_ensure(r, err);
    if (st == TP_OK) {
        va_list ap;
        va_start(ap, fmt);
        redisReply *rep = redisvCommand(r->ctx, fmt, ap);
        va_end(ap);
        st = redis_take_reply(r, rep, reply, err);
    }
    redis_sigpipe_unblock(&sp);
    pthread_mutex_unlock(&r->mu);
    return st;
}

enum tp_status redis_command_argv(struct redis_client *r, int argc, const char *const *argv,
                                  const size_t *argvlen, redisReply **reply, struct tp_error *err)
{
    struct redis_sigpipe sp;
    if (reply != NULL) {
        *reply = NULL;
    }
    pthread_mutex_lock(&r->mu);
    redis_sigpipe_block(&sp);
    enum tp_status st = redis_ensure(r, err);
    if (st == TP_OK) {
        /* hiredis takes const char ** but only reads the vector. */
        redisReply *rep = redisCommandArgv(r->ctx, argc, (const char **)argv, argvlen);
        st = redis_take_reply(r, rep, reply, err);
    }
    redis_sigpipe_unblock(&sp);
    pthread_mutex_unlock(&r->mu);
    return st;
}

struct redis_pipeline *redis_pipeline_new(void)
{
    return mem_calloc(1, sizeof(struct redis_pipeline));
}

static void redis_pipeline_clear_replies(struct redis_pipeline *p)
{
    for (size_t i = 0; i < p->nreplies; i++) {
        if (p->replies[i] != NULL) {
            freeReplyObject(p->replies[i]);
        }
    }
    free(p->replies);
    p->replies = NULL;
    p->nreplies = 0;
}

void redis_pipeline_reset(struct redis_pipeline *p)
{
    redis_pipeline_clear_replies(p);
    for (size_t i = 0; i < p->n; i++) {
        redisFreeCommand(p->cmds[i].buf);
    }
    p->n = 0;
}

void redis_pipeline_free(struct redis_pipeline *p)
{
    if (p == NULL) {
        return;
    }
    redis_pipeline_reset(p);
    free(p->cmds);
    free(p);
}

static enum tp_status redis_pipeline_push(struct redis_pipeline *p, char *buf, int len)
{
    if (len < 0) {
        return TP_INVALID;
    }
    if (p->n == p->cap) {
        p->cap = p->cap == 0 ? 16 : p->cap * 2;
        p->cmds = mem_realloc(p->cmds, p->cap * sizeof(*p->cmds));
    }
    p->cmds[p->n].buf = buf;
    p->cmds[p->n].len = (size_t)len;
    p->n++;
    return TP_OK;
}

enum tp_status redis_pipeline_add(struct redis_pipeline *p, const char *fmt, ...)
{
    if (p->n >= REDIS_PIPELINE_MAX) {
        return TP_INVALID;
    }
    char *buf = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&buf, fmt, ap);
    va_end(ap);
    return redis_pipeline_push(p, buf, len);
}

enum tp_status redis_pipeline_add_argv(struct redis_pipeline *p, int argc, const char *const *argv,
                                       const size_t *argvlen)
{
    if (p->n >= REDIS_PIPELINE_MAX) {
        return TP_INVALID;
    }
    char *buf = NULL;
    int len = redisFormatCommandArgv(&buf, argc, (const char **)argv, argvlen);
    return redis_pipeline_push(p, buf, len);
}

size_t redis_pipeline_len(const struct redis_pipeline *p)
{
    return p->n;
}

const redisReply *redis_pipeline_reply(const struct redis_pipeline *p, size_t i)
{
    return i < p->nreplies ? p->replies[i] : NULL;
}

/* Called with r->mu held and a connection open. */
static enum tp_status redis_pipeline_run(struct redis_client *r, struct redis_pipeline *p,
                                         struct tp_error *err)
{
    for (size_t i = 0; i < p->n; i++) {
        if (redisAppendFormattedCommand(r->ctx, p->cmds[i].buf, p->cmds[i].len) != REDIS_OK) {
            return redis_fail(r, "pipeline append", err);
        }
    }
    enum tp_status st = TP_OK;
    for (size_t i = 0; i < p->n; i++) {
        void *reply = NULL;
        if (redisGetReply(r->ctx, &reply) != REDIS_OK || reply == NULL) {
            return redis_fail(r, "pipeline", err);
        }
        p->replies[i] = reply;
        if (p->replies[i]->type == REDIS_REPLY_ERROR && redis_is_noauth(p->replies[i])) {
            return redis_fail(r, REDIS_NOAUTH_WHAT, err);
        }
        if (p->replies[i]->type == REDIS_REPLY_ERROR && st == TP_OK) {
            st = error_set(err, TP_INVALID, "redis %s: command %zu: %.*s", r->addr, i,
                           (int)p->replies[i]->len, p->replies[i]->str);
        }
    }
    return st;
}

enum tp_status redis_pipeline_exec(struct redis_client *r, struct redis_pipeline *p,
                                   struct tp_error *err)
{
    struct redis_sigpipe sp;
    redis_pipeline_clear_replies(p);
    if (p->n == 0) {
        return TP_OK;
    }
    p->replies = mem_calloc(p->n, sizeof(*p->replies));
    p->nreplies = p->n;
    pthread_mutex_lock(&r->mu);
    redis_sigpipe_block(&sp);
    enum tp_status st = redis_ensure(r, err);
    if (st == TP_OK) {
        st = redis_pipeline_run(r, p, err);
    }
    redis_sigpipe_unblock(&sp);
    pthread_mutex_unlock(&r->mu);
    return st;
}
