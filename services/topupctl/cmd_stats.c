/* topupctl stats: reads the monitoring counters and gauges from Redis and prints them as a table.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "topup/counters.h"
#include "topup/mem.h"
#include "topup/redis.h"
#include "topup/signals.h"

#define STATS_ROWS_MAX           5000 /* beyond this the table is cut and says so */
#define STATS_SCAN_COUNT         1000
#define STATS_CONNECT_TIMEOUT_MS 1000
#define STATS_COMMAND_TIMEOUT_MS 5000
#define STATS_WINDOW_MINUTES     5
#define STATS_SERVICE_MAX        64
#define STATS_KEY_MAX            256

static const char stats_usage[] =
    "usage: topupctl stats [--service S] [--watch] [--interval SECONDS]\n"
    "\n"
    "Prints every counter in Redis (topup:ctr:<service>:<name>) with its total, the count in the\n"
    "current UTC minute so far (1M) and in the current minute plus the four before it (5M),\n"
    "then every gauge (topup:gauge:<service>:<name>) with its last value.\n"
    "\n"
    "  --service S         only this service\n"
    "  --watch             redraw every interval until interrupted (Ctrl-C)\n"
    "  --interval SECONDS  refresh period for --watch (default 2)\n"
    "\n"
    "Connects to REDIS_HOST:REDIS_PORT.\n";

struct stats_row {
    char service[STATS_SERVICE_MAX + 1];
    char name[COUNTERS_NAME_MAX + 1];
    long long total; /* or the gauge value */
    long long last_1m;
    long long last_5m;
};

struct stats_table {
    struct stats_row *rows;
    size_t n, cap;
    bool truncated;
};

static int stats_row_cmp(const void *a, const void *b)
{
    const struct stats_row *x = a, *y = b;
    int c = strcmp(x->service, y->service);
    return c != 0 ? c : strcmp(x->name, y->name);
}

/* Same alphabet as counter names; also keeps glob characters out of the SCAN pattern. */
static bool stats_service_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > STATS_SERVICE_MAX) {
        return false;
    }
    for (; *s != '\0'; s++) {
        bool ok = (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' ||
                  *s == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Splits "<service>:<name>" after the prefix; false for bucket keys and anything malformed. */
static bool stats_parse_key(const char *key, size_t prefix_len, struct stats_row *row)
{
    const char *rest = key + prefix_len;
    const char *colon = strchr(rest, ':');
    if (colon == NULL || strchr(colon + 1, ':') != NULL) {
        return false; /* ":m:<minute>" bucket, or not ours */
    }
    size_t slen = (size_t)(colon - rest);
    size_t nlen = strlen(colon + 1);
    if (slen == 0 || slen > STATS_SERVICE_MAX || nlen == 0 || nlen > COUNTERS_NAME_MAX) {
        return false;
    }
    memset(row, 0, sizeof(*row));
    memcpy(row->service, rest, slen);
    memcpy(row->name, colon + 1, nlen);
    return true;
}

/* SCANs pattern and adds a row per total/gauge key. */
static enum tp_status stats_scan(struct redis_client *r, const char *pattern, size_t prefix_len,
                                 struct stats_table *t, struct tp_error *err)
{
    char cursor[32] = "0";
    do {
        redisReply *rep = NULL;
        enum tp_status st = redis_command(r, &rep, err, "SCAN %s MATCH %s COUNT %d", cursor,
                                          pattern, STATS_SCAN_COUNT);
        if (st != TP_OK) {
            return st;
        }
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING ||
            rep->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(rep);
            return error_set(err, TP_FATAL, "unexpected SCAN reply");
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        const redisReply *keys = rep->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            struct stats_row row;
            if (keys->element[i]->type != REDIS_REPLY_STRING ||
                !stats_parse_key(keys->element[i]->str, prefix_len, &row)) {
                continue;
            }
            if (t->n >= STATS_ROWS_MAX) {
                t->truncated = true;
                continue;
            }
            if (t->n == t->cap) {
                t->cap = t->cap == 0 ? 64 : t->cap * 2;
                t->rows = mem_realloc(t->rows, t->cap * sizeof(*t->rows));
            }
            t->rows[t->n++] = row;
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    /* SCAN may return a key twice; sorting then dropping neighbours removes repeats. */
    if (t->n > 0) {
        qsort(t->rows, t->n, sizeof(*t->rows), stats_row_cmp);
        size_t w = 1;
        for (size_t i = 1; i < t->n; i++) {
            if (stats_row_cmp(&t->rows[i], &t->rows[w - 1]) != 0) {
                t->rows[w++] = t->rows[i];
            }
        }
        t->n = w;
    }
    return TP_OK;
}

static long long stats_reply_int(const redisReply *rep)
{
    if (rep == NULL || rep->type != REDIS_REPLY_STRING) {
        return 0;
    }
    return strtoll(rep->str, NULL, 10);
}

/* Fills totals and the minute windows of counters with one pipelined MGET per counter. */
static enum tp_status stats_fill_counters(struct redis_client *r, struct stats_table *t,
                                          struct tp_error *err)
{
    struct redis_pipeline *p = redis_pipeline_new();
    time_t now_min = time(NULL) / 60;
    enum tp_status st = TP_OK;
    for (size_t i = 0; i < t->n && st == TP_OK; i++) {
        char keys[1 + STATS_WINDOW_MINUTES][STATS_KEY_MAX];
        const char *argv[2 + STATS_WINDOW_MINUTES] = {"MGET"};
        snprintf(keys[0], STATS_KEY_MAX, COUNTERS_KEY_PREFIX "%s:%s", t->rows[i].service,
                 t->rows[i].name);
        argv[1] = keys[0];
        for (int m = 0; m < STATS_WINDOW_MINUTES; m++) {
            time_t when = (now_min - m) * 60;
            struct tm tm;
            gmtime_r(&when, &tm);
            snprintf(keys[1 + m], STATS_KEY_MAX, COUNTERS_KEY_PREFIX "%s:%s:m:%04d%02d%02d%02d%02d",
                     t->rows[i].service, t->rows[i].name, tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min);
            argv[2 + m] = keys[1 + m];
        }
        st = redis_pipeline_add_argv(p, 2 + STATS_WINDOW_MINUTES, argv, NULL);
    }
    if (st == TP_OK) {
        st = redis_pipeline_exec(r, p, err);
    }
    for (size_t i = 0; i < t->n && st == TP_OK; i++) {
        const redisReply *rep = redis_pipeline_reply(p, i);
        if (rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
            rep->elements != 1 + STATS_WINDOW_MINUTES) {
            st = error_set(err, TP_FATAL, "unexpected MGET reply");
            break;
        }
        t->rows[i].total = stats_reply_int(rep->element[0]);
        t->rows[i].last_1m = stats_reply_int(rep->element[1]);
        for (int m = 0; m < STATS_WINDOW_MINUTES; m++) {
            t->rows[i].last_5m += stats_reply_int(rep->element[1 + m]);
        }
    }
    redis_pipeline_free(p);
    return st;
}

static enum tp_status stats_fill_gauges(struct redis_client *r, struct stats_table *t,
                                        struct tp_error *err)
{
    struct redis_pipeline *p = redis_pipeline_new();
    enum tp_status st = TP_OK;
    for (size_t i = 0; i < t->n && st == TP_OK; i++) {
        char key[STATS_KEY_MAX];
        snprintf(key, sizeof(key), GAUGES_KEY_PREFIX "%s:%s", t->rows[i].service, t->rows[i].name);
        st = redis_pipeline_add(p, "GET %s", key);
    }
    if (st == TP_OK) {
        st = redis_pipeline_exec(r, p, err);
    }
    for (size_t i = 0; i < t->n && st == TP_OK; i++) {
        t->rows[i].total = stats_reply_int(redis_pipeline_reply(p, i));
    }
    redis_pipeline_free(p);
    return st;
}

static void stats_print(const struct stats_table *ctr, const struct stats_table *gauges)
{
    int ws = (int)strlen("SERVICE"), wn = (int)strlen("COUNTER");
    for (size_t i = 0; i < ctr->n; i++) {
        ws = (int)strlen(ctr->rows[i].service) > ws ? (int)strlen(ctr->rows[i].service) : ws;
        wn = (int)strlen(ctr->rows[i].name) > wn ? (int)strlen(ctr->rows[i].name) : wn;
    }
    for (size_t i = 0; i < gauges->n; i++) {
        ws = (int)strlen(gauges->rows[i].service) > ws ? (int)strlen(gauges->rows[i].service) : ws;
        wn = (int)strlen(gauges->rows[i].name) > wn ? (int)strlen(gauges->rows[i].name) : wn;
    }
    printf("%-*s  %-*s  %14s  %10s  %10s\n", ws, "SERVICE", wn, "COUNTER", "TOTAL", "1M", "5M");
    for (size_t i = 0; i < ctr->n; i++) {
        const struct stats_row *row = &ctr->rows[i];
        printf("%-*s  %-*s  %14lld  %10lld  %10lld\n", ws, row->service, wn, row->name, row->total,
               row->last_1m, row->last_5m);
    }
    if (ctr->n == 0) {
        printf("(no counters)\n");
    }
    if (gauges->n > 0) {
        printf("\n%-*s  %-*s  %14s\n", ws, "SERVICE", wn, "GAUGE", "VALUE");
        for (size_t i = 0; i < gauges->n; i++) {
            printf("%-*s  %-*s  %14lld\n", ws, gauges->rows[i].service, wn, gauges->rows[i].name,
                   gauges->rows[i].total);
        }
    }
    if (ctr->truncated || gauges->truncated) {
        printf("(cut at %d rows; use --service)\n", STATS_ROWS_MAX);
    }
}

/* One snapshot: scan, read, print. */
static enum tp_status stats_once(struct redis_client *r, const char *service, struct tp_error *err)
{
    struct stats_table ctr = {0}, gauges = {0};
    char pattern[STATS_KEY_MAX];
    snprintf(pattern, sizeof(pattern), COUNTERS_KEY_PREFIX "%s:*", service ? service : "*");
    enum tp_status st = stats_scan(r, pattern, strlen(COUNTERS_KEY_PREFIX), &ctr, err);
    if (st == TP_OK) {
        snprintf(pattern, sizeof(pattern), GAUGES_KEY_PREFIX "%s:*", service ? service : "*");
        st = stats_scan(r, pattern, strlen(GAUGES_KEY_PREFIX), &gauges, err);
    }
    if (st == TP_OK && ctr.n > 0) {
        st = stats_fill_counters(r, &ctr, err);
    }
    if (st == TP_OK && gauges.n > 0) {
        st = stats_fill_gauges(r, &gauges, err);
    }
    if (st == TP_OK) {
        stats_print(&ctr, &gauges);
    }
    free(ctr.rows);
    free(gauges.rows);
    return st;
}

static int stats_watch(struct redis_client *r, const char *service, long interval_s)
{
    bool tty = isatty(STDOUT_FILENO) == 1;
    signals_install();
    while (!signals_stop_requested()) {
        struct tp_error err = {0};
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (tty) {
            printf("\033[H\033[2J");
        }
        printf("topupctl stats  %s  redis %s  every %lds\n\n", stamp, redis_address(r), interval_s);
        if (stats_once(r, service, &err) != TP_OK) {
            /* Keep watching: Redis coming back is what an operator waits for. */
            printf("redis: %s\n", err.msg);
        }
        printf("\n");
        fflush(stdout);
        for (long i = 0; i < interval_s * 10 && !signals_stop_requested(); i++) {
            usleep(100 * 1000);
        }
    }
    return TOPUPCTL_EXIT_OK;
}

int cmd_stats(int argc, char **argv)
{
    static const struct option opts[] = {{"service", required_argument, NULL, 's'},
                                         {"watch", no_argument, NULL, 'w'},
                                         {"interval", required_argument, NULL, 'i'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *service = NULL;
    bool watch = false;
    long interval_s = 2;
    int ch;
    while ((ch = getopt_long(argc, argv, "s:wi:h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case 's':
            service = optarg;
            break;
        case 'w':
            watch = true;
            break;
        case 'i':
            interval_s = strtol(optarg, &end, 10);
            if (end == optarg || *end != '\0' || interval_s < 1 || interval_s > 3600) {
                fprintf(stderr, "topupctl stats: --interval takes 1..3600 seconds\n");
                return TOPUPCTL_EXIT_USAGE;
            }
            break;
        case 'h':
            fputs(stats_usage, stdout);
            return TOPUPCTL_EXIT_OK;
        default:
            fputs(stats_usage, stderr);
            return TOPUPCTL_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fputs(stats_usage, stderr);
        return TOPUPCTL_EXIT_USAGE;
    }
    if (service != NULL && !stats_service_ok(service)) {
        fprintf(stderr, "topupctl stats: --service takes lower-case letters, digits, '.', '_', "
                        "'-'\n");
        return TOPUPCTL_EXIT_USAGE;
    }
    struct redis_client *r = redis_new(topupctl_cfg.redis_host, (int)topupctl_cfg.redis_port,
                                       STATS_CONNECT_TIMEOUT_MS, STATS_COMMAND_TIMEOUT_MS);
    int rc = TOPUPCTL_EXIT_OK;
    if (watch) {
        rc = stats_watch(r, service, interval_s);
    } else {
        struct tp_error err = {0};
        if (stats_once(r, service, &err) != TP_OK) {
            fprintf(stderr, "topupctl stats: %s\n", err.msg);
            rc = TOPUPCTL_EXIT_FAILURE;
        }
    }
    redis_free(r);
    return rc;
}
