/* Transactional outbox: rows written with the state change, published by a relay thread. */
#include "topup/outbox.h"

#include "topup/copyw.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "topup/counters.h"
#include "topup/kafka.h"
#include "topup/log.h"
#include "topup/mem.h"
#include "topup/pg.h"

/*
 * Rows published per cycle; the next cycle starts at once while a full batch came back. A batch's
 * delivery reports take tens of milliseconds whatever its size, so the size is the relay's
 * throughput: 500 rows a cycle published ~10,000 rows/s on the dev broker, 5000 ~38,000. The
 * batch's result holds about 0.5 KiB per row (payload as hex) while it is in flight.
 */
#define OUTBOX_BATCH_MAX 5000
/* "outbox_" + source must fit a PostgreSQL identifier (63 bytes). */
#define OUTBOX_SOURCE_MAX  48
#define OUTBOX_POLL_MS_MAX 60000
/* Connection budget of one (re)connect attempt of the relay's own session. */
#define OUTBOX_PG_CONNECT_MS 5000
/* Retry delays after a failed cycle (PostgreSQL or Kafka): doubling, capped. */
#define OUTBOX_BACKOFF_MIN_MS 100
#define OUTBOX_BACKOFF_MAX_MS 5000
/* A relay that does not hold its source's lock tries again this often. */
#define OUTBOX_LOCK_RETRY_MS 1000
/* Backlog is counted at most this often (a full count scans the unpublished index). */
#define OUTBOX_BACKLOG_COUNT_MS 1000
/*
 * Longest wait for one batch's delivery reports. librdkafka reports every message within
 * message.timeout.ms (5 min by default); past this something is wedged and the producer is
 * recreated.
 */
#define OUTBOX_DELIVERY_WAIT_MAX_MS 360000
/* After a stop request: how long the batch in hand may still take to be reported. */
#define OUTBOX_STOP_GRACE_MS 5000
/* Healthy while the last completed cycle is younger than this many poll intervals (or 5 s). */
#define OUTBOX_HEALTH_INTERVALS 5
#define OUTBOX_HEALTH_MIN_MS    5000
#define OUTBOX_DR_SLICE_MS      100
/* Advisory-lock namespace of relays (two-key form: class, hash of the source). */
#define OUTBOX_LOCK_CLASS 0x4f425831 /* "OBX1" */

struct outbox_row {
    int64_t id;
    const char *topic; /* points into the batch's PGresult */
    const char *key;
    enum tp_status status;
    bool reported;
};

/* One server session: libpq's handle and the backend pid (either alone may be reused). */
struct outbox_session {
    const PGconn *conn;
    int pid;
};

struct outbox_relay {
    char *source;
    char *conninfo; /* NULL: PG_CONNINFO */
    char channel[OUTBOX_SOURCE_MAX + 16];
    int poll_ms;
    struct counters *counters; /* not owned; may be NULL */
    int32_t lock_key;

    struct kafka_producer *producer;
    struct pg_conn *pg;
    /*
     * The server sessions that hold the lock and the LISTEN. pg.c reconnects transparently, so
     * both are checked against the current session before they are relied on.
     */
    struct outbox_session locked, listening;

    /* The batch in hand. */
    struct outbox_row rows[OUTBOX_BATCH_MAX];
    int nrows;
    int reported;
    uintptr_t gen;         /* batch generation, encoded in each message's opaque */
    bool producer_suspect; /* a fatal delivery or send: recreate before the next batch */
    char first_failure[ERROR_MSG_MAX];
    /* "{id,id,...}" of the acknowledged rows: ids of at most 20 characters and a comma each. */
    char ids[OUTBOX_BATCH_MAX * 21 + 3];

    int64_t backoff_ms;
    int64_t backlog_counted_ms;

    pthread_t thread;
    bool started;
    int wake[2]; /* self-pipe: outbox_relay_free wakes the thread's poll */
    atomic_bool stop;
    atomic_int_fast64_t last_ok_ms; /* monotonic time of the last completed cycle; 0 = never */
    atomic_int_fast64_t backlog;    /* rows unpublished as last seen; -1 = not known yet */
};

static int64_t outbox_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- writing ---- */

enum tp_status outbox_write(struct pg_conn *c, const char *source, const char *topic,
                            const char *key, const char *event_id, const void *payload, size_t len,
                            struct tp_error *err)
{
    /*
     * The row and its wake-up in one statement. NOTIFY is delivered at commit and folded into
     * one per channel per transaction, so a rolled-back write wakes nobody.
     */
    static const char sql[] =
        "WITH ins AS (INSERT INTO outbox (source, topic, kafka_key, payload, event_id)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id)"
        " SELECT pg_notify('outbox_' || $1, '') FROM ins";
    if (source == NULL || strlen(source) == 0 || strlen(source) > OUTBOX_SOURCE_MAX) {
        return error_set(err, TP_INVALID, "outbox: source must be 1..%d bytes", OUTBOX_SOURCE_MAX);
    }
    if (len > INT32_MAX) {
        return error_set(err, TP_INVALID, "outbox: payload of %zu bytes too large", len);
    }
    /* The payload goes as a binary parameter: bytea in, no escaping, no copy. */
    const char *const values[5] = {source, topic, key, payload, event_id};
    const int lengths[5] = {0, 0, 0, (int)len, 0};
    const int formats[5] = {0, 0, 0, 1, 0};
    return pg_exec_bin(c, sql, 5, values, lengths, formats, NULL, err);
}

enum tp_status outbox_write_many(struct pg_conn *c, const char *source, const char *topic,
                                 const struct outbox_event *ev, size_t n, struct tp_error *err)
{
    if (source == NULL || strlen(source) == 0 || strlen(source) > OUTBOX_SOURCE_MAX) {
        return error_set(err, TP_INVALID, "outbox: source must be 1..%d bytes", OUTBOX_SOURCE_MAX);
    }
    if (n == 0) {
        return TP_OK;
    }
    struct copyw rows;
    copyw_init(&rows);
    for (size_t i = 0; i < n; i++) {
        copyw_str(&rows, source);
        copyw_str(&rows, topic);
        copyw_str(&rows, ev[i].key);
        copyw_bytea(&rows, ev[i].payload, ev[i].len);
        copyw_str(&rows, ev[i].event_id);
        copyw_end_row(&rows);
    }
    enum tp_status st = copyw_send(
        c, "COPY outbox (source, topic, kafka_key, payload, event_id) FROM STDIN", &rows, err);
    copyw_deinit(&rows);
    if (st == TP_OK) {
        /* The wake-up, delivered at commit like outbox_write()'s. */
        char channel[OUTBOX_SOURCE_MAX + 16];
        snprintf(channel, sizeof(channel), "outbox_%s", source);
        const char *const params[1] = {channel};
        st = pg_exec(c, "SELECT pg_notify($1, '')", 1, params, NULL, err);
    }
    return st;
}

/* ---- relay: helpers ---- */

static void outbox_relay_wake(struct outbox_relay *r)
{
    char b = 1;
    /* A full pipe already wakes the thread; nothing else can fail here that matters. */
    ssize_t n = write(r->wake[1], &b, 1);
    (void)n;
}

static bool outbox_relay_stopping(struct outbox_relay *r)
{
    return atomic_load(&r->stop);
}

/*
 * Sleeps up to timeout_ms, waking early on a stop request or, when listen is set, on input from
 * PostgreSQL (a NOTIFY). Notifications themselves are drained by the next cycle.
 */
static void outbox_relay_wait(struct outbox_relay *r, int64_t timeout_ms, bool listen)
{
    struct pollfd fds[2] = {{.fd = r->wake[0], .events = POLLIN}, {.fd = -1}};
    int nfds = 1;
    if (outbox_relay_stopping(r) || timeout_ms <= 0) {
        return;
    }
    if (listen && r->pg != NULL && PQsocket(pg_conn_raw(r->pg)) >= 0) {
        /*
         * A NOTIFY that came in during the last statement already sits in libpq's queue and
         * leaves nothing to read on the socket: then there is no reason to wait at all.
         */
        PGconn *raw = pg_conn_raw(r->pg);
        PGnotify *pending = PQconsumeInput(raw) != 0 ? PQnotifies(raw) : NULL;
        if (pending != NULL) {
            PQfreemem(pending);
            return;
        }
        fds[1].fd = PQsocket(raw);
        fds[1].events = POLLIN;
        nfds = 2;
    }
    int rc = poll(fds, (nfds_t)nfds, timeout_ms > INT32_MAX ? INT32_MAX : (int)timeout_ms);
    if (rc > 0 && (fds[0].revents & POLLIN) != 0) {
        char buf[64];
        while (read(r->wake[0], buf, sizeof(buf)) > 0) {
        }
    }
    if (rc > 0 && nfds == 2 && fds[1].revents != 0) {
        PGconn *raw = pg_conn_raw(r->pg);
        if (PQconsumeInput(raw) == 0) {
            /*
             * The session is gone. The next statement reconnects; until then do not spin on a
             * socket that stays readable.
             */
            log_warn("outbox relay lost its postgres session", LF_S("source", r->source),
                     LF_S("error", PQerrorMessage(raw)));
            outbox_relay_wait(r, r->backoff_ms, false);
        }
    }
}

static void outbox_relay_backoff(struct outbox_relay *r)
{
    outbox_relay_wait(r, r->backoff_ms, false);
    r->backoff_ms =
        r->backoff_ms * 2 > OUTBOX_BACKOFF_MAX_MS ? OUTBOX_BACKOFF_MAX_MS : r->backoff_ms * 2;
}

static void outbox_relay_drain_notifies(struct outbox_relay *r)
{
    PGconn *raw = pg_conn_raw(r->pg);
    (void)PQconsumeInput(raw);
    PGnotify *n;
    while ((n = PQnotifies(raw)) != NULL) {
        PQfreemem(n);
    }
}

static void outbox_relay_set_backlog(struct outbox_relay *r, int64_t n)
{
    atomic_store(&r->backlog, n);
    if (r->counters != NULL) {
        counters_gauge(r->counters, "outbox.backlog", n);
    }
}

/* Counts unpublished rows, at most once per OUTBOX_BACKLOG_COUNT_MS. */
static void outbox_relay_count_backlog(struct outbox_relay *r)
{
    int64_t now = outbox_now_ms();
    if (r->backlog_counted_ms != 0 && now - r->backlog_counted_ms < OUTBOX_BACKLOG_COUNT_MS) {
        return;
    }
    const char *const params[1] = {r->source};
    PGresult *res = NULL;
    struct tp_error err = {0};
    if (pg_exec_prepared(r->pg, "outbox_backlog", 1, params, &res, &err) == TP_OK) {
        outbox_relay_set_backlog(r, pg_get_i64(res, 0, 0));
        r->backlog_counted_ms = now;
    }
    PQclear(res);
}

/* ---- relay: session, lock and LISTEN ---- */

static enum tp_status outbox_relay_prepare(struct outbox_relay *r, struct tp_error *err)
{
    static const struct {
        const char *name, *sql;
        int nparams;
    } stmts[] = {
        {"outbox_lock", "SELECT pg_try_advisory_lock($1::int, $2::int)", 2},
        {"outbox_select",
         "SELECT id, topic, kafka_key, payload FROM outbox"
         " WHERE source = $1 AND published_at IS NULL ORDER BY id LIMIT $2::int",
         2},
        {"outbox_mark", "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", 1},
        {"outbox_backlog", "SELECT count(*) FROM outbox WHERE source = $1 AND published_at IS NULL",
         1},
    };
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        enum tp_status st = pg_prepare(r->pg, stmts[i].name, stmts[i].sql, stmts[i].nparams, err);
        if (st != TP_OK) {
            return st;
        }
    }
    return TP_OK;
}

static enum tp_status outbox_relay_connect(struct outbox_relay *r, struct tp_error *err)
{
    if (r->pg != NULL) {
        return TP_OK;
    }
    r->pg = pg_conn_new(r->conninfo, OUTBOX_PG_CONNECT_MS, err);
    if (r->pg == NULL) {
        return TP_RETRY;
    }
    enum tp_status st = outbox_relay_prepare(r, err);
    if (st != TP_OK) {
        pg_conn_free(r->pg);
        r->pg = NULL;
    }
    return st;
}

static struct outbox_session outbox_relay_session(struct outbox_relay *r)
{
    PGconn *raw = pg_conn_raw(r->pg);
    return (struct outbox_session){.conn = raw, .pid = PQbackendPID(raw)};
}

/* True when s is the live current session (a lock or LISTEN taken in it still holds). */
static bool outbox_relay_in_session(struct outbox_relay *r, struct outbox_session s)
{
    struct outbox_session now = outbox_relay_session(r);
    return s.pid != 0 && s.conn == now.conn && s.pid == now.pid &&
           PQstatus(pg_conn_raw(r->pg)) == CONNECTION_OK;
}

static bool outbox_relay_holds_lock(struct outbox_relay *r)
{
    return outbox_relay_in_session(r, r->locked);
}

static enum tp_status outbox_relay_lock(struct outbox_relay *r, struct tp_error *err)
{
    char cls[16], key[16];
    snprintf(cls, sizeof(cls), "%d", OUTBOX_LOCK_CLASS);
    snprintf(key, sizeof(key), "%" PRId32, r->lock_key);
    const char *const params[2] = {cls, key};
    PGresult *res = NULL;
    enum tp_status st = pg_exec_prepared(r->pg, "outbox_lock", 2, params, &res, err);
    if (st == TP_OK && strcmp(pg_get_str(res, 0, 0), "t") == 0) {
        /* The statement that answered ran in the current session: the lock is held there. */
        r->locked = outbox_relay_session(r);
        log_info("outbox relay is the active publisher", LF_S("source", r->source),
                 LF_I("backend_pid", r->locked.pid));
    }
    PQclear(res);
    return st;
}

static enum tp_status outbox_relay_listen(struct outbox_relay *r, struct tp_error *err)
{
    /* LISTEN takes no parameters: the channel goes in as an escaped identifier. */
    PGconn *raw = pg_conn_raw(r->pg);
    char *ident = PQescapeIdentifier(raw, r->channel, strlen(r->channel));
    if (ident == NULL) {
        return error_set(err, TP_RETRY, "outbox: escape channel: %s", PQerrorMessage(raw));
    }
    char sql[OUTBOX_SOURCE_MAX * 2 + 32];
    snprintf(sql, sizeof(sql), "LISTEN %s", ident);
    PQfreemem(ident);
    enum tp_status st = pg_exec(r->pg, sql, 0, NULL, NULL, err);
    if (st == TP_OK) {
        r->listening = outbox_relay_session(r);
    }
    return st;
}

/* ---- relay: one batch ---- */

static void outbox_relay_on_delivery(void *ctx, void *opaque, enum tp_status status,
                                     const char *reason)
{
    struct outbox_relay *r = ctx;
    uintptr_t v = (uintptr_t)opaque;
    uintptr_t gen = v / OUTBOX_BATCH_MAX;
    int idx = (int)(v % OUTBOX_BATCH_MAX);
    if (gen != r->gen || idx >= r->nrows || r->rows[idx].reported) {
        return; /* a report of a batch already given up on */
    }
    r->rows[idx].reported = true;
    r->rows[idx].status = status;
    r->reported++;
    if (status != TP_OK) {
        if (r->first_failure[0] == '\0') {
            snprintf(r->first_failure, sizeof(r->first_failure), "%s", reason ? reason : "");
        }
        if (status == TP_FATAL) {
            r->producer_suspect = true;
        }
    }
}

static void outbox_relay_new_batch(struct outbox_relay *r)
{
    r->gen = (r->gen + 1) % (UINTPTR_MAX / OUTBOX_BATCH_MAX);
    r->nrows = 0;
    r->reported = 0;
    r->first_failure[0] = '\0';
}

/* Sends rows[0..nrows) in id order; returns how many were handed to the producer. */
static int outbox_relay_send(struct outbox_relay *r, const PGresult *res)
{
    int sent = 0;
    for (int i = 0; i < r->nrows; i++) {
        size_t len = 0;
        unsigned char *payload =
            PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 3), &len);
        if (payload == NULL) {
            snprintf(r->first_failure, sizeof(r->first_failure), "payload decode: out of memory");
            break;
        }
        void *opaque = (void *)(r->gen * OUTBOX_BATCH_MAX + (uintptr_t)i);
        struct tp_error err = {0};
        enum tp_status st;
        for (;;) {
            st = kafka_producer_send(r->producer, r->rows[i].topic, r->rows[i].key,
                                     strlen(r->rows[i].key), payload, len, opaque, &err);
            if (st != TP_RETRY || outbox_relay_stopping(r)) {
                break;
            }
            /* Local queue full: let reports drain it, then try the same row again. */
            (void)kafka_producer_poll(r->producer, OUTBOX_DR_SLICE_MS);
        }
        PQfreemem(payload);
        if (st != TP_OK) {
            snprintf(r->first_failure, sizeof(r->first_failure), "%s", err.msg);
            if (st == TP_FATAL) {
                r->producer_suspect = true;
            }
            break;
        }
        sent++;
    }
    return sent;
}

/* Serves delivery reports until all `sent` are in, bounded by the stop grace and a hard cap. */
static void outbox_relay_await(struct outbox_relay *r, int sent)
{
    int64_t hard = outbox_now_ms() + OUTBOX_DELIVERY_WAIT_MAX_MS;
    int64_t stop_deadline = 0;
    while (r->reported < sent) {
        int64_t now = outbox_now_ms();
        if (outbox_relay_stopping(r)) {
            if (stop_deadline == 0) {
                stop_deadline = now + OUTBOX_STOP_GRACE_MS;
            }
            if (now >= stop_deadline) {
                break;
            }
        }
        if (now >= hard) {
            log_error("outbox delivery reports overdue; recreating the producer",
                      LF_S("source", r->source), LF_I("unreported", sent - r->reported));
            r->producer_suspect = true;
            break;
        }
        (void)kafka_producer_poll(r->producer, OUTBOX_DR_SLICE_MS);
    }
}

/* Marks acknowledged rows published. Returns how many were acknowledged. */
static int outbox_relay_mark(struct outbox_relay *r)
{
    char *ids = r->ids;
    size_t off = 0;
    int acked = 0;
    ids[off++] = '{';
    for (int i = 0; i < r->nrows; i++) {
        if (r->rows[i].reported && r->rows[i].status == TP_OK) {
            off += (size_t)snprintf(ids + off, sizeof(r->ids) - off, "%s%" PRId64, acked ? "," : "",
                                    r->rows[i].id);
            acked++;
        }
    }
    ids[off++] = '}';
    ids[off] = '\0';
    if (acked == 0) {
        return 0;
    }
    const char *const params[1] = {ids};
    struct tp_error err = {0};
    enum tp_status st = pg_exec_prepared(r->pg, "outbox_mark", 1, params, NULL, &err);
    if (st != TP_OK) {
        /* They are on Kafka; unmarked they go out again later, and consumers dedupe. */
        log_warn("outbox rows published but not marked; they will be published again",
                 LF_S("source", r->source), LF_I("rows", acked), LF_S("error", err.msg));
    }
    if (r->counters != NULL) {
        counters_incr(r->counters, "outbox.published", acked);
    }
    return acked;
}

/*
 * One cycle as the active relay. Returns TP_OK when the batch went out whole (or there was
 * nothing), with *full set when the batch was full (more may be waiting); TP_RETRY otherwise.
 */
static enum tp_status outbox_relay_batch(struct outbox_relay *r, bool *full)
{
    *full = false;
    int64_t t_start = outbox_now_ms();
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", OUTBOX_BATCH_MAX);
    const char *const params[2] = {r->source, limit};
    PGresult *res = NULL;
    struct tp_error err = {0};
    enum tp_status st = pg_exec_prepared(r->pg, "outbox_select", 2, params, &res, &err);
    if (st != TP_OK) {
        log_warn("outbox select failed, retrying", LF_S("source", r->source),
                 LF_S("error", err.msg));
        goto out;
    }
    if (!outbox_relay_holds_lock(r)) {
        /* The session changed under the SELECT: the lock went with it; take it first. */
        log_warn("outbox relay lost its session and lock; taking the lock again",
                 LF_S("source", r->source));
        st = TP_RETRY;
        goto out;
    }
    outbox_relay_new_batch(r);
    r->nrows = PQntuples(res);
    /* What this SELECT saw is the backlog until the batch is out (a full one: at least). */
    if (r->nrows < OUTBOX_BATCH_MAX) {
        outbox_relay_set_backlog(r, r->nrows);
    } else {
        outbox_relay_count_backlog(r);
        if (atomic_load(&r->backlog) < r->nrows) {
            outbox_relay_set_backlog(r, r->nrows);
        }
    }
    if (r->nrows == 0) {
        goto out;
    }
    for (int i = 0; i < r->nrows; i++) {
        r->rows[i] = (struct outbox_row){.id = pg_get_i64(res, i, 0),
                                         .topic = pg_get_str(res, i, 1),
                                         .key = pg_get_str(res, i, 2)};
    }
    int64_t t_selected = outbox_now_ms();
    int sent = outbox_relay_send(r, res);
    int64_t t_sent = outbox_now_ms();
    outbox_relay_await(r, sent);
    int64_t t_reported = outbox_now_ms();
    int acked = outbox_relay_mark(r);
    log_debug("outbox batch published", LF_S("source", r->source), LF_I("rows", r->nrows),
              LF_I("acked", acked), LF_I("select_ms", t_selected - t_start),
              LF_I("send_ms", t_sent - t_selected), LF_I("reports_ms", t_reported - t_sent),
              LF_I("mark_ms", outbox_now_ms() - t_reported));
    if (acked < r->nrows) {
        if (r->counters != NULL) {
            counters_incr(r->counters, "outbox.delivery_failed", r->nrows - acked);
        }
        int64_t first_id = 0;
        for (int i = 0; i < r->nrows && first_id == 0; i++) {
            if (!r->rows[i].reported || r->rows[i].status != TP_OK) {
                first_id = r->rows[i].id;
            }
        }
        /* A fatal failure will not heal by itself (the row blocks its source): say it louder. */
        log_write(r->producer_suspect ? LOG_ERROR : LOG_WARN,
                  "outbox batch not fully delivered; retrying from the first unacknowledged row",
                  (const struct log_field[]){
                      LF_S("source", r->source), LF_I("rows", r->nrows), LF_I("acked", acked),
                      LF_I("sent", sent), LF_I("reported", r->reported),
                      LF_I("first_unacked_id", first_id), LF_S("reason", r->first_failure)},
                  7);
        st = TP_RETRY;
        goto out;
    }
    *full = r->nrows == OUTBOX_BATCH_MAX;
    if (!*full) {
        outbox_relay_set_backlog(r, 0);
    }
out:
    PQclear(res);
    r->nrows = 0; /* rows point into res */
    return st;
}

/* ---- relay: thread ---- */

static void outbox_relay_renew_producer(struct outbox_relay *r)
{
    struct tp_error err = {0};
    char client[OUTBOX_SOURCE_MAX + 16];
    snprintf(client, sizeof(client), "outbox-%s", r->source);
    struct kafka_producer *p = kafka_producer_new(client, outbox_relay_on_delivery, r, &err);
    if (p == NULL) {
        log_error("outbox relay cannot recreate its producer", LF_S("source", r->source),
                  LF_S("error", err.msg));
        return;
    }
    log_warn("outbox relay recreated its producer", LF_S("source", r->source));
    kafka_producer_free(r->producer);
    r->producer = p;
    r->producer_suspect = false;
}

/* One pass of the loop, including its wait for the next one. */
static void outbox_relay_cycle(struct outbox_relay *r)
{
    struct tp_error err = {0};
    enum tp_status st = outbox_relay_connect(r, &err);
    if (st != TP_OK) {
        log_warn("outbox relay cannot reach postgres, retrying", LF_S("source", r->source),
                 LF_S("error", err.msg));
        outbox_relay_backoff(r);
        return;
    }
    if (!outbox_relay_holds_lock(r)) {
        st = outbox_relay_lock(r, &err);
        if (st != TP_OK) {
            outbox_relay_backoff(r);
            return;
        }
        if (!outbox_relay_holds_lock(r)) {
            /* Another instance publishes this source; stand by and keep the gauge fresh. */
            outbox_relay_count_backlog(r);
            atomic_store(&r->last_ok_ms, outbox_now_ms());
            outbox_relay_wait(
                r, r->poll_ms > OUTBOX_LOCK_RETRY_MS ? r->poll_ms : OUTBOX_LOCK_RETRY_MS, false);
            return;
        }
    }
    if (!outbox_relay_in_session(r, r->listening) && outbox_relay_listen(r, &err) != TP_OK) {
        outbox_relay_backoff(r);
        return;
    }
    if (r->producer_suspect) {
        outbox_relay_renew_producer(r);
    }
    /* Drained before the SELECT: a NOTIFY arriving later stays readable and wakes the wait. */
    outbox_relay_drain_notifies(r);
    bool full = false;
    st = outbox_relay_batch(r, &full);
    if (st != TP_OK) {
        outbox_relay_backoff(r);
        return;
    }
    r->backoff_ms = OUTBOX_BACKOFF_MIN_MS;
    atomic_store(&r->last_ok_ms, outbox_now_ms());
    if (!full) {
        outbox_relay_wait(r, r->poll_ms, outbox_relay_in_session(r, r->listening));
    }
}

static void *outbox_relay_main(void *arg)
{
    struct outbox_relay *r = arg;
    log_info("outbox relay started", LF_S("source", r->source), LF_I("poll_ms", r->poll_ms));
    while (!outbox_relay_stopping(r)) {
        outbox_relay_cycle(r);
    }
    log_info("outbox relay stopping", LF_S("source", r->source));
    return NULL;
}

/* FNV-1a: a stable 32-bit lock key per source, the same in every instance and version. */
static int32_t outbox_lock_key(const char *source)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)source; *p != '\0'; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return (int32_t)h;
}

struct outbox_relay *outbox_relay_new(const char *source, const char *conninfo, int poll_ms,
                                      struct counters *counters, struct tp_error *err)
{
    if (source == NULL || strlen(source) == 0 || strlen(source) > OUTBOX_SOURCE_MAX) {
        error_set(err, TP_INVALID, "outbox relay: source must be 1..%d bytes", OUTBOX_SOURCE_MAX);
        return NULL;
    }
    if (poll_ms < 1 || poll_ms > OUTBOX_POLL_MS_MAX) {
        error_set(err, TP_INVALID, "outbox relay: poll_ms must be 1..%d", OUTBOX_POLL_MS_MAX);
        return NULL;
    }
    if (conninfo != NULL) {
        char *perr = NULL;
        PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
        if (opts == NULL) {
            error_set(err, TP_INVALID, "outbox relay: conninfo: %s",
                      perr != NULL ? perr : "out of memory");
            PQfreemem(perr);
            return NULL;
        }
        PQconninfoFree(opts);
    }
    struct outbox_relay *r = mem_calloc(1, sizeof(*r));
    r->source = mem_strdup(source);
    r->conninfo = conninfo != NULL ? mem_strdup(conninfo) : NULL;
    snprintf(r->channel, sizeof(r->channel), "outbox_%s", source);
    r->poll_ms = poll_ms;
    r->counters = counters;
    r->lock_key = outbox_lock_key(source);
    r->backoff_ms = OUTBOX_BACKOFF_MIN_MS;
    atomic_init(&r->stop, false);
    atomic_init(&r->last_ok_ms, 0);
    atomic_init(&r->backlog, -1);
    r->wake[0] = r->wake[1] = -1;
    if (pipe2(r->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        error_set(err, TP_FATAL, "outbox relay: pipe: %s", strerror(errno));
        goto fail;
    }
    char client[OUTBOX_SOURCE_MAX + 16];
    snprintf(client, sizeof(client), "outbox-%s", source);
    /* Created here, not in the thread, so KAFKA_* is read once, at construction. */
    r->producer = kafka_producer_new(client, outbox_relay_on_delivery, r, err);
    if (r->producer == NULL) {
        goto fail;
    }
    return r;
fail:
    outbox_relay_free(r);
    return NULL;
}

enum tp_status outbox_relay_start(struct outbox_relay *r, struct tp_error *err)
{
    if (r->started) {
        return error_set(err, TP_CONFLICT, "outbox relay %s already started", r->source);
    }
    int rc = pthread_create(&r->thread, NULL, outbox_relay_main, r);
    if (rc != 0) {
        return error_set(err, TP_FATAL, "outbox relay: pthread_create: %s", strerror(rc));
    }
    r->started = true;
    return TP_OK;
}

int outbox_relay_healthy(struct outbox_relay *r)
{
    int64_t last = atomic_load(&r->last_ok_ms);
    int64_t window = (int64_t)r->poll_ms * OUTBOX_HEALTH_INTERVALS;
    if (window < OUTBOX_HEALTH_MIN_MS) {
        window = OUTBOX_HEALTH_MIN_MS;
    }
    if (last != 0 && outbox_now_ms() - last <= window) {
        return 1;
    }
    return atomic_load(&r->backlog) == 0;
}

int64_t outbox_relay_backlog(struct outbox_relay *r)
{
    return atomic_load(&r->backlog);
}

void outbox_relay_free(struct outbox_relay *r)
{
    if (r == NULL) {
        return;
    }
    atomic_store(&r->stop, true);
    if (r->started) {
        outbox_relay_wake(r);
        pthread_join(r->thread, NULL);
    }
    /* Flushes what is still in flight (bounded); reports of an abandoned batch are ignored. */
    kafka_producer_free(r->producer);
    pg_conn_free(r->pg); /* ends the session: the lock passes to another instance */
    for (int i = 0; i < 2; i++) {
        if (r->wake[i] >= 0) {
            close(r->wake[i]);
        }
    }
    free(r->source);
    free(r->conninfo);
    free(r);
}
