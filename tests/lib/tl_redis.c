/* Redis for the tests: reads of the balance cache and the monitoring counters. */
#include "testlib.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A fresh connection per call: Redis may be stopped and restarted under a chaos test. */
static redisContext *tl_redis_connect(void)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(tl_env("REDIS_HOST"), atoi(tl_env("REDIS_PORT")), tv);
    if (c == NULL || c->err != 0) {
        if (c != NULL) {
            redisFree(c);
        }
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

bool tl_redis_hget(const char *key, const char *field, char *out, size_t len)
{
    redisContext *c = tl_redis_connect();
    TL_CHECK_MSG(c != NULL, "Redis at %s:%s does not answer", tl_env("REDIS_HOST"),
                 tl_env("REDIS_PORT"));
    redisReply *r = redisCommand(c, "HGET %s %s", key, field);
    bool found = r != NULL && r->type == REDIS_REPLY_STRING;
    if (found) {
        snprintf(out, len, "%s", r->str);
    }
    if (r != NULL) {
        freeReplyObject(r);
    }
    redisFree(c);
    return found;
}

int64_t tl_redis_counter(const char *key)
{
    redisContext *c = tl_redis_connect();
    TL_CHECK_MSG(c != NULL, "Redis at %s:%s does not answer", tl_env("REDIS_HOST"),
                 tl_env("REDIS_PORT"));
    redisReply *r = redisCommand(c, "GET %s", key);
    int64_t v = 0;
    if (r != NULL && r->type == REDIS_REPLY_STRING) {
        v = strtoll(r->str, NULL, 10);
    }
    if (r != NULL) {
        freeReplyObject(r);
    }
    redisFree(c);
    return v;
}

int tl_redis_keys(const char *pattern, char (*out)[TL_ID_MAX * 2], int max)
{
    redisContext *c = tl_redis_connect();
    TL_CHECK_MSG(c != NULL, "Redis at %s:%s does not answer", tl_env("REDIS_HOST"),
                 tl_env("REDIS_PORT"));
    int n = 0;
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        TL_CHECK_MSG(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2,
                     "Redis SCAN failed");
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements && n < max; i++) {
            snprintf(out[n++], TL_ID_MAX * 2, "%s", r->element[1]->element[i]->str);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    redisFree(c);
    return n;
}
