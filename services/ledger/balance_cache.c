/* Real-time balances in Redis for gateways: versioned writes from a thread, never in the hot path.
 */
#include "ledger.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "topup/counters.h"
#include "topup/log.h"
#include "topup/mem.h"
#include "topup/pg.h"
#include "topup/redis.h"

/*
 * The script refuses a version older than (or equal to) the one stored, so two ledger instances,
 * a retry after a timeout or a slow pipeline can never put an older balance over a newer one.
 * Versions are small integers (one per batch per account), exact in Lua's doubles. A refusal
 * returns what is stored ({0, version, balance_fen} as Redis has them, "" when absent), because
 * a version the ledger did not write (someone else with access to Redis, a huge one) would
 * otherwise hold the key forever: the writer checks it against PostgreSQL. A key that is not a
 * hash (a SET by someone else) is dropped first.
 */
static const char balance_cache_script[] =
    "local t = redis.call('TYPE', KEYS[1])['ok']\n"
    "if t ~= 'hash' and t ~= 'none' then redis.call('DEL', KEYS[1]) end\n"
    "local v = redis.call('HGET', KEYS[1], 'version')\n"
    "if v and not (tonumber(v) and tonumber(v) < tonumber(ARGV[2])) then\n"
    "  return {0, v, redis.call('HGET', KEYS[1], 'balance_fen') or ''}\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'balance_fen', ARGV[1], 'version', ARGV[2])\n"
    "if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end\n"
    "return 1\n";

/*
 * The repair: PostgreSQL's balance and version replace the key whole, only if the version stored
 * is still the one the writer saw (ARGV[4]), so a legitimate write in between is never undone.
 */
static const char balance_cache_repair_script[] =
    "local v = redis.call('HGET', KEYS[1], 'version') or ''\n"
    "if v ~= ARGV[4] then return 0 end\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('HSET', KEYS[1], 'balance_fen', ARGV[1], 'version', ARGV[2])\n"
    "if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end\n"
    "return 1\n";

static const char balance_cache_truth_sql[] =
    "SELECT balance_fen, balance_version FROM accounts WHERE account_id = $1";

#define BALANCE_CACHE_PG_CONNECT_MS 2000
/* Longest stored value the writer compares (a version or balance Redis holds). */
#define BALANCE_CACHE_STORED_MAX 64

/* Idle wake-up, to retry after a Redis outage. */
#define BALANCE_CACHE_IDLE_MS 1000

struct balance_cache_entry {
    bool used;
    int64_t balance_fen;
    int64_t version;
    char account[BALANCE_CACHE_ACCOUNT_MAX + 1];
};

/* Open addressing, no deletion: a table is emptied whole when the writer takes it. */
struct balance_cache_table {
    struct balance_cache_entry *slots;
    size_t nslots, count;
};

struct balance_cache {
    struct redis_client *redis;
    struct counters *counters;
    char *pg_conninfo;
    struct pg_conn *pg; /* the writer thread's, opened on the first refusal to check */
    size_t pending_max;
    int ttl_s;
    char key_prefix[BALANCE_CACHE_PREFIX_MAX + 1];
    char sha[41]; /* SHA1 of the script once loaded, "" before */

    pthread_mutex_t mu; /* guards pending, stop, dropped */
    pthread_cond_t cv;
    struct balance_cache_table pending; /* newest balance per account, waiting for Redis */
    struct balance_cache_table work;    /* the writer's, outside the lock */
    bool stop;
    int64_t dropped;
    bool warned_full;
    pthread_t thread;
    bool started;
};

static uint64_t balance_cache_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    }
    return h;
}

static void balance_cache_table_init(struct balance_cache_table *t, size_t max)
{
    size_t n = 16;
    while (n < max * 2) {
        n *= 2;
    }
    t->slots = mem_calloc(n, sizeof(*t->slots));
    t->nslots = n;
    t->count = 0;
}

/* Keeps the newest version per account. False when the table is full (at the named maximum). */
static bool balance_cache_table_put(struct balance_cache_table *t, size_t max, const char *account,
                                    int64_t balance_fen, int64_t version)
{
    size_t i = balance_cache_hash(account) & (t->nslots - 1);
    while (t->slots[i].used) {
        struct balance_cache_entry *e = &t->slots[i];
        if (strcmp(e->account, account) == 0) {
            if (version > e->version) {
                e->version = version;
                e->balance_fen = balance_fen;
            }
            return true;
        }
        i = (i + 1) & (t->nslots - 1);
    }
    if (t->count >= max) {
        return false;
    }
    struct balance_cache_entry *e = &t->slots[i];
    e->used = true;
    e->version = version;
    e->balance_fen = balance_fen;
    snprintf(e->account, sizeof(e->account), "%s", account);
    t->count++;
    return true;
}

static void balance_cache_table_clear(struct balance_cache_table *t)
{
    if (t->count > 0) {
        memset(t->slots, 0, t->nslots * sizeof(*t->slots));
        t->count = 0;
    }
}

/* Caller holds bc->mu. */
static void balance_cache_put_locked(struct balance_cache *bc, const char *account,
                                     int64_t balance_fen, int64_t version)
{
    if (balance_cache_table_put(&bc->pending, bc->pending_max, account, balance_fen, version)) {
        return;
    }
    bc->dropped++;
    counters_incr(bc->counters, "cache.dropped", 1);
    if (!bc->warned_full) {
        bc->warned_full = true;
        log_warn("balance cache backlog full; dropping updates until Redis catches up",
                 LF_I("pending_max", (int64_t)bc->pending_max));
    }
}

void balance_cache_put(struct balance_cache *bc, const char *account, int64_t balance_fen,
                       int64_t version)
{
    if (bc == NULL || strlen(account) > BALANCE_CACHE_ACCOUNT_MAX) {
        return;
    }
    pthread_mutex_lock(&bc->mu);
    balance_cache_put_locked(bc, account, balance_fen, version);
    pthread_cond_signal(&bc->cv);
    pthread_mutex_unlock(&bc->mu);
}

static bool balance_cache_load_script(struct balance_cache *bc)
{
    redisReply *r = NULL;
    struct tp_error err;
    if (redis_command(bc->redis, &r, &err, "SCRIPT LOAD %s", balance_cache_script) != TP_OK) {
        return false;
    }
    bool ok = r->type == REDIS_REPLY_STRING && r->len == 40;
    if (ok) {
        memcpy(bc->sha, r->str, 40);
        bc->sha[40] = '\0';
    }
    freeReplyObject(r);
    return ok;
}

/*
 * PostgreSQL's balance and version of account: TP_OK, TP_INVALID (no such account), TP_RETRY
 * (PostgreSQL cannot say now; the caller checks no further refusals of the batch, so an outage
 * costs one connect attempt per batch, not one per key).
 */
static enum tp_status balance_cache_truth(struct balance_cache *bc, const char *account,
                                          int64_t *balance_fen, int64_t *version)
{
    struct tp_error err = {0};
    if (bc->pg == NULL) {
        bc->pg = pg_conn_new(bc->pg_conninfo, BALANCE_CACHE_PG_CONNECT_MS, &err);
        if (bc->pg == NULL) {
            log_warn("balance cache cannot reach PostgreSQL to check a refused write",
                     LF_S("account", account), LF_S("error", err.msg));
            return TP_RETRY;
        }
    }
    PGresult *res = NULL;
    const char *params[] = {account};
    if (pg_exec(bc->pg, balance_cache_truth_sql, 1, params, &res, &err) != TP_OK) {
        log_warn("balance cache could not read the balance to check a refused write",
                 LF_S("account", account), LF_S("error", err.msg));
        return TP_RETRY;
    }
    enum tp_status st = PQntuples(res) == 1 ? TP_OK : TP_INVALID;
    if (st == TP_OK) {
        *balance_fen = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        *version = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
    return st;
}

/* s as a whole decimal int64; false for anything else ("9e18", "", "abc", out of range). */
static bool balance_cache_parse_i64(const char *s, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        return false;
    }
    *out = (int64_t)v;
    return true;
}

/*
 * A write was refused because Redis holds version/balance (as stored). Another ledger instance
 * ahead of this one is normal and holds PostgreSQL's value or an older one; anything PostgreSQL
 * never had (a version beyond it, the same version with another balance, a version that is not
 * a number) was written by someone else and is replaced by PostgreSQL's truth.
 */
static enum tp_status balance_cache_repair(struct balance_cache *bc,
                                           const struct balance_cache_entry *e,
                                           const redisReply *stored_v, const redisReply *stored_b)
{
    char stored_version[BALANCE_CACHE_STORED_MAX], stored_balance[BALANCE_CACHE_STORED_MAX];
    /* Longer than any number: kept unreadable ("" never parses), compared whole below. */
    snprintf(stored_version, sizeof(stored_version), "%.*s",
             stored_v->len < sizeof(stored_version) ? (int)stored_v->len : 0, stored_v->str);
    snprintf(stored_balance, sizeof(stored_balance), "%.*s",
             stored_b->len < sizeof(stored_balance) ? (int)stored_b->len : 0, stored_b->str);
    int64_t pg_balance = 0, pg_version = 0, v = 0, b = 0;
    enum tp_status truth = balance_cache_truth(bc, e->account, &pg_balance, &pg_version);
    if (truth != TP_OK) {
        return truth;
    }
    bool v_ok = balance_cache_parse_i64(stored_version, &v);
    bool b_ok = balance_cache_parse_i64(stored_balance, &b);
    if (v_ok && b_ok && v == pg_version && b == pg_balance) {
        return TP_OK; /* another instance wrote the truth already */
    }
    bool poisoned = !v_ok || !b_ok || v > pg_version || (v == pg_version && b != pg_balance);
    char key[BALANCE_CACHE_PREFIX_MAX + BALANCE_CACHE_ACCOUNT_MAX + 1];
    snprintf(key, sizeof(key), "%s%s", bc->key_prefix, e->account);
    char bal[24], ver[24], ttl[16];
    snprintf(bal, sizeof(bal), "%" PRId64, pg_balance);
    snprintf(ver, sizeof(ver), "%" PRId64, pg_version);
    snprintf(ttl, sizeof(ttl), "%d", bc->ttl_s);
    const char *argv[] = {"EVAL",       balance_cache_repair_script, "1", key, bal, ver, ttl,
                          stored_v->str};
    size_t argvlen[8];
    for (int i = 0; i < 7; i++) {
        argvlen[i] = strlen(argv[i]);
    }
    argvlen[7] = stored_v->len; /* compared byte for byte, whatever someone stored */
    redisReply *r = NULL;
    struct tp_error err = {0};
    if (redis_command_argv(bc->redis, 8, argv, argvlen, &r, &err) != TP_OK) {
        log_warn("balance cache could not rewrite a key from PostgreSQL",
                 LF_S("account", e->account), LF_S("error", err.msg));
        return TP_OK; /* Redis trouble: the writer's own retries deal with Redis */
    }
    bool written = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    if (poisoned && written) {
        counters_incr(bc->counters, "cache.poison_repaired", 1);
        log_warn("balance cache held a value PostgreSQL never had; rewritten from PostgreSQL",
                 LF_S("account", e->account), LF_S("stored_version", stored_version),
                 LF_S("stored_balance_fen", stored_balance), LF_I("version", pg_version),
                 LF_I("balance_fen", pg_balance));
    }
    return TP_OK;
}

/* After a pipeline of writes: each refused one is checked against PostgreSQL (rare: see above). */
static void balance_cache_check_refusals(struct balance_cache *bc, struct redis_pipeline *p)
{
    size_t n = 0;
    for (size_t i = 0; i < bc->work.nslots; i++) {
        const struct balance_cache_entry *e = &bc->work.slots[i];
        if (!e->used) {
            continue;
        }
        const redisReply *r = redis_pipeline_reply(p, n++);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
            r->element[1]->type != REDIS_REPLY_STRING ||
            r->element[2]->type != REDIS_REPLY_STRING) {
            continue; /* written (1), or an answer this writer does not know: nothing to check */
        }
        if (balance_cache_repair(bc, e, r->element[1], r->element[2]) == TP_RETRY) {
            break; /* PostgreSQL away: the next refused write checks again */
        }
    }
}

/* Writes bc->work in one pipeline. TP_OK, TP_RETRY (send again later) or TP_INVALID. */
static enum tp_status balance_cache_write(struct balance_cache *bc, struct redis_pipeline *p)
{
    struct tp_error err;
    if (bc->sha[0] == '\0' && !balance_cache_load_script(bc)) {
        return TP_RETRY;
    }
    redis_pipeline_reset(p);
    for (size_t i = 0; i < bc->work.nslots; i++) {
        const struct balance_cache_entry *e = &bc->work.slots[i];
        if (!e->used) {
            continue;
        }
        if (redis_pipeline_add(p, "EVALSHA %s 1 %s%s %" PRId64 " %" PRId64 " %d", bc->sha,
                               bc->key_prefix, e->account, e->balance_fen, e->version,
                               bc->ttl_s) != TP_OK) {
            return TP_INVALID;
        }
    }
    enum tp_status st = redis_pipeline_exec(bc->redis, p, &err);
    if (st == TP_INVALID && strstr(err.msg, "NOSCRIPT") != NULL) {
        /* Redis restarted and forgot the script: load it and send the whole batch again. */
        bc->sha[0] = '\0';
        return TP_RETRY;
    }
    if (st == TP_INVALID) {
        log_warn("balance cache write refused by Redis", LF_S("error", err.msg));
    }
    if (st == TP_OK) {
        balance_cache_check_refusals(bc, p);
    }
    return st;
}

static void *balance_cache_main(void *arg)
{
    struct balance_cache *bc = arg;
    struct redis_pipeline *p = redis_pipeline_new();
    pthread_mutex_lock(&bc->mu);
    for (;;) {
        while (!bc->stop && bc->pending.count == 0) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += BALANCE_CACHE_IDLE_MS / 1000;
            pthread_cond_timedwait(&bc->cv, &bc->mu, &until);
        }
        if (bc->pending.count == 0) {
            break; /* stopping with nothing left */
        }
        struct balance_cache_table t = bc->pending;
        bc->pending = bc->work;
        bc->work = t;
        bool stopping = bc->stop;
        pthread_mutex_unlock(&bc->mu);

        enum tp_status st = balance_cache_write(bc, p);
        if (st == TP_RETRY && bc->sha[0] == '\0' && !stopping) {
            st = balance_cache_write(bc, p); /* once more after a NOSCRIPT */
        }

        pthread_mutex_lock(&bc->mu);
        if (st == TP_RETRY && !stopping) {
            /* Keep what failed, unless a newer balance arrived meanwhile. */
            for (size_t i = 0; i < bc->work.nslots; i++) {
                const struct balance_cache_entry *e = &bc->work.slots[i];
                if (e->used) {
                    balance_cache_put_locked(bc, e->account, e->balance_fen, e->version);
                }
            }
            counters_incr(bc->counters, "cache.errors", 1);
        } else if (st == TP_OK) {
            bc->warned_full = false;
        }
        balance_cache_table_clear(&bc->work);
        if (stopping) {
            break; /* one attempt at stop: Redis must never hold up a shutdown */
        }
        if (st == TP_RETRY) {
            /* The client backs off by itself; wait a little so we do not spin on a dead Redis. */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 200 * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&bc->cv, &bc->mu, &until);
        }
    }
    pthread_mutex_unlock(&bc->mu);
    redis_pipeline_free(p);
    return NULL;
}

struct balance_cache *balance_cache_new(const char *host, int port, const char *key_prefix,
                                        size_t pending_max, int ttl_s, const char *pg_conninfo,
                                        struct counters *counters)
{
    struct balance_cache *bc = mem_calloc(1, sizeof(*bc));
    bc->pg_conninfo = mem_strdup(pg_conninfo);
    snprintf(bc->key_prefix, sizeof(bc->key_prefix), "%s",
             key_prefix != NULL ? key_prefix : BALANCE_CACHE_KEY_PREFIX);
    bc->redis = redis_new(host, port, 0, 0);
    bc->counters = counters;
    bc->pending_max = pending_max > 0 ? pending_max : 1;
    bc->ttl_s = ttl_s;
    pthread_mutex_init(&bc->mu, NULL);
    pthread_cond_init(&bc->cv, NULL);
    balance_cache_table_init(&bc->pending, bc->pending_max);
    balance_cache_table_init(&bc->work, bc->pending_max);
    if (pthread_create(&bc->thread, NULL, balance_cache_main, bc) == 0) {
        bc->started = true;
    } else {
        log_error("balance cache thread not started; balances are not cached");
    }
    return bc;
}

int64_t balance_cache_dropped(struct balance_cache *bc)
{
    pthread_mutex_lock(&bc->mu);
    int64_t n = bc->dropped;
    pthread_mutex_unlock(&bc->mu);
    return n;
}

void balance_cache_free(struct balance_cache *bc)
{
    if (bc == NULL) {
        return;
    }
    pthread_mutex_lock(&bc->mu);
    bc->stop = true;
    pthread_cond_signal(&bc->cv);
    pthread_mutex_unlock(&bc->mu);
    if (bc->started) {
        pthread_join(bc->thread, NULL);
    }
    redis_free(bc->redis);
    pg_conn_free(bc->pg);
    free(bc->pg_conninfo);
    free(bc->pending.slots);
    free(bc->work.slots);
    pthread_cond_destroy(&bc->cv);
    pthread_mutex_destroy(&bc->mu);
    free(bc);
}
