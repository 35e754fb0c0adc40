/* Monitoring counters in Redis: buffered, aggregated, flushed in one pipeline, never blocking. */
#include "topup/counters.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "topup/log.h"
#include "topup/mem.h"
#include "topup/redis.h"

#define COUNTERS_CONNECT_TIMEOUT_MS 100
#define COUNTERS_COMMAND_TIMEOUT_MS 200
/* Open addressing without deletion: the whole table is emptied at once by a flush. */
#define COUNTERS_SLOTS        (COUNTERS_BUFFER_MAX * 2)
#define COUNTERS_SERVICE_MAX  64
#define COUNTERS_DROPPED_NAME "counters.dropped"
/* prefix + service + ':' + name + ":m:YYYYMMDDHHMM" */
#define COUNTERS_KEY_MAX                                                                           \
    (sizeof(COUNTERS_KEY_PREFIX) + COUNTERS_SERVICE_MAX + COUNTERS_NAME_MAX + 32)

struct counters_entry {
    bool used;
    bool gauge;
    int64_t minute; /* UTC minutes since the epoch at increment time; 0 for gauges */
    int64_t value;  /* sum of increments, or the last gauge value */
    char name[COUNTERS_NAME_MAX + 1];
};

struct counters {
    char service[COUNTERS_SERVICE_MAX + 1];
    struct redis_client *redis;
    pthread_mutex_t mu; /* guards everything below */
    struct counters_entry *slots;
    size_t count;
    int64_t dropped;            /* total, for counters_dropped() */
    int64_t dropped_unreported; /* not yet added to the "counters.dropped" counter in Redis */
    bool warned_full;
    bool warned_name;
};

/* Lower-case letters, digits, '.', '_' and '-': the key scheme uses ':' as separator. */
static bool counters_name_ok(const char *name)
{
    size_t n = 0;
    for (const char *p = name; *p != '\0'; p++, n++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
                  ch == '-';
        if (!ok || n >= COUNTERS_NAME_MAX) {
            return false;
        }
    }
    return n > 0;
}

struct counters *counters_new(const char *service, const char *host, int port)
{
    struct counters *c = mem_calloc(1, sizeof(*c));
    if (service == NULL || service[0] == '\0') {
        service = "unknown";
    }
    size_t i = 0;
    for (; service[i] != '\0' && i < COUNTERS_SERVICE_MAX; i++) {
        char ch = service[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
                  ch == '-';
        /* A service name is ours, not input; still never let it break the key scheme. */
        c->service[i] = ok ? ch : (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : '_';
    }
    c->service[i] = '\0';
    c->redis = redis_new(host, port, COUNTERS_CONNECT_TIMEOUT_MS, COUNTERS_COMMAND_TIMEOUT_MS);
    c->slots = mem_calloc(COUNTERS_SLOTS, sizeof(*c->slots));
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static uint64_t counters_hash(const char *name, int64_t minute, bool gauge)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = name; *p != '\0'; p++) {
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    }
    h = (h ^ (uint64_t)minute) * 1099511628211ULL;
    h = (h ^ (gauge ? 1u : 0u)) * 1099511628211ULL;
    return h;
}

/*
 * Finds or creates the entry for (name, minute, gauge); *created tells which. NULL when the
 * buffer holds COUNTERS_BUFFER_MAX entries already. Called with c->mu held.
 */
static struct counters_entry *counters_slot(struct counters *c, const char *name, int64_t minute,
                                            bool gauge, bool *created)
{
    *created = false;
    size_t i = counters_hash(name, minute, gauge) % COUNTERS_SLOTS;
    for (;;) {
        struct counters_entry *e = &c->slots[i];
        if (!e->used) {
            if (c->count >= COUNTERS_BUFFER_MAX) {
                return NULL;
            }
            e->used = true;
            e->gauge = gauge;
            e->minute = minute;
            e->value = 0;
            snprintf(e->name, sizeof(e->name), "%s", name);
            c->count++;
            *created = true;
            return e;
        }
        if (e->minute == minute && e->gauge == gauge && strcmp(e->name, name) == 0) {
            return e;
        }
        i = (i + 1) % COUNTERS_SLOTS;
    }
}

/* Called with c->mu held. */
static void counters_drop(struct counters *c, int64_t n)
{
    c->dropped += n;
    c->dropped_unreported += n;
}

/* Returns false when the buffer is full. Called with c->mu held. */
static bool counters_put(struct counters *c, const char *name, int64_t minute, bool gauge,
                         int64_t value)
{
    bool created;
    struct counters_entry *e = counters_slot(c, name, minute, gauge, &created);
    if (e == NULL) {
        return false;
    }
    e->value = gauge ? value : e->value + value;
    return true;
}

static void counters_update(struct counters *c, const char *name, bool gauge, int64_t value)
{
    if (c == NULL) {
        return;
    }
    int64_t minute = gauge ? 0 : (int64_t)(time(NULL) / 60);
    bool bad_name = !counters_name_ok(name);
    bool flushed = false;
    pthread_mutex_lock(&c->mu);
    while (!bad_name && !counters_put(c, name, minute, gauge, value)) {
        /*
         * Full. Flush inline only over a connection that is already open, so the cost is at most
         * one command timeout; otherwise (or if that did not help) drop and count.
         */
        if (flushed || !redis_connected(c->redis)) {
            counters_drop(c, 1);
            if (!c->warned_full) {
                c->warned_full = true;
                log_warn("counter buffer full, dropping updates until the next flush",
                         LF_S("service", c->service), LF_I("buffer_max", COUNTERS_BUFFER_MAX));
            }
            break;
        }
        pthread_mutex_unlock(&c->mu);
        counters_flush(c);
        flushed = true;
        pthread_mutex_lock(&c->mu);
    }
    if (bad_name) {
        counters_drop(c, 1);
        if (!c->warned_name) {
            c->warned_name = true;
            log_warn("invalid counter name, update dropped", LF_S("service", c->service),
                     LF_S("counter", name));
        }
    }
    pthread_mutex_unlock(&c->mu);
}

void counters_incr(struct counters *c, const char *name, int64_t by)
{
    counters_update(c, name, false, by);
}

void counters_gauge(struct counters *c, const char *name, int64_t value)
{
    counters_update(c, name, true, value);
}

int64_t counters_dropped(struct counters *c)
{
    pthread_mutex_lock(&c->mu);
    int64_t n = c->dropped;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* Moves the buffered entries into a new array; returns how many. Called with c->mu held. */
static size_t counters_take(struct counters *c, struct counters_entry **out)
{
    struct counters_entry *snap = mem_alloc((c->count + 1) * sizeof(*snap));
    size_t n = 0;
    for (size_t i = 0; i < COUNTERS_SLOTS && n < c->count; i++) {
        if (c->slots[i].used) {
            snap[n++] = c->slots[i];
            c->slots[i].used = false;
        }
    }
    c->count = 0;
    c->warned_full = false;
    *out = snap;
    return n;
}

/*
 * Puts entries that were never sent back into the buffer, so a short outage loses nothing.
 * A newer gauge value already buffered wins over the old one. Called with c->mu held.
 */
static void counters_restore(struct counters *c, const struct counters_entry *snap, size_t n,
                             int64_t dropped_unsent)
{
    for (size_t i = 0; i < n; i++) {
        const struct counters_entry *e = &snap[i];
        if (e->gauge) {
            bool created;
            struct counters_entry *cur = counters_slot(c, e->name, 0, true, &created);
            if (cur == NULL) {
                counters_drop(c, 1);
            } else if (created) {
                cur->value = e->value;
            }
        } else if (!counters_put(c, e->name, e->minute, false, e->value)) {
            counters_drop(c, 1);
        }
    }
    c->dropped_unreported += dropped_unsent;
}

static void counters_bucket_key(char *buf, size_t len, const char *service, const char *name,
                                int64_t minute)
{
    time_t t = (time_t)(minute * 60);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, len, COUNTERS_KEY_PREFIX "%s:%s:m:%04d%02d%02d%02d%02d", service, name,
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min);
}

/* Queues the commands for one entry. Formatting our own keys cannot fail. */
static void counters_queue(struct redis_pipeline *p, const char *service,
                           const struct counters_entry *e)
{
    char key[COUNTERS_KEY_MAX];
    enum tp_status st = TP_OK;
    if (e->gauge) {
        snprintf(key, sizeof(key), GAUGES_KEY_PREFIX "%s:%s", service, e->name);
        st = redis_pipeline_add(p, "SET %s %lld", key, (long long)e->value);
    } else {
        snprintf(key, sizeof(key), COUNTERS_KEY_PREFIX "%s:%s", service, e->name);
        st = redis_pipeline_add(p, "INCRBY %s %lld", key, (long long)e->value);
        counters_bucket_key(key, sizeof(key), service, e->name, e->minute);
        if (st == TP_OK) {
            st = redis_pipeline_add(p, "INCRBY %s %lld", key, (long long)e->value);
        }
        if (st == TP_OK) {
            st = redis_pipeline_add(p, "EXPIRE %s %d", key, COUNTERS_BUCKET_TTL_S);
        }
    }
    if (st != TP_OK) {
        log_warn("counter update could not be queued", LF_S("counter", e->name));
    }
}

void counters_flush(struct counters *c)
{
    if (c == NULL) {
        return;
    }
    struct counters_entry *snap = NULL;
    struct tp_error err = {0};
    pthread_mutex_lock(&c->mu);
    if (c->count == 0 && c->dropped_unreported == 0) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    size_t n = counters_take(c, &snap);
    int64_t dropped = c->dropped_unreported;
    c->dropped_unreported = 0;
    pthread_mutex_unlock(&c->mu);

    /* Connect first (free while backing off): if that fails nothing was sent, so keep it all. */
    if (redis_connect(c->redis, &err) != TP_OK) {
        pthread_mutex_lock(&c->mu);
        counters_restore(c, snap, n, dropped);
        pthread_mutex_unlock(&c->mu);
        goto out;
    }
    struct redis_pipeline *p = redis_pipeline_new();
    for (size_t i = 0; i < n; i++) {
        counters_queue(p, c->service, &snap[i]);
    }
    if (dropped > 0) {
        struct counters_entry d = {
            .used = true, .minute = (int64_t)(time(NULL) / 60), .value = dropped};
        snprintf(d.name, sizeof(d.name), "%s", COUNTERS_DROPPED_NAME);
        counters_queue(p, c->service, &d);
    }
    enum tp_status st = redis_pipeline_exec(c->redis, p, &err);
    redis_pipeline_free(p);
    if (st != TP_OK) {
        /* Sent but not confirmed: some may have been applied, so re-sending could count twice. */
        pthread_mutex_lock(&c->mu);
        counters_drop(c, (int64_t)n);
        pthread_mutex_unlock(&c->mu);
        log_debug("counter flush failed", LF_S("service", c->service), LF_S("error", err.msg),
                  LF_I("entries", (int64_t)n));
    }
out:
    free(snap);
}

void counters_free(struct counters *c)
{
    if (c == NULL) {
        return;
    }
    counters_flush(c);
    redis_free(c->redis);
    pthread_mutex_destroy(&c->mu);
    free(c->slots);
    free(c);
}
