/*
 * Benchmark of order creation: N keep-alive HTTP clients create orders as fast as the service
 * answers, for a fixed time; then pgbench runs the equivalent raw transaction (the same INSERTs:
 * idempotency key and order in one statement, the outbox row with its NOTIFY, one commit each) at
 * the same concurrency. Prints orders/s, latency percentiles, the service's peak RSS and the ratio
 * to the raw rate. Functional errors (any answer but 201) fail it; the figures are only printed.
 * argv: <order-intake>
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define BENCH_ACCOUNTS  64
#define BENCH_LAT_MAX   (4 * 1024 * 1024) /* latencies kept per run; more are counted, not kept */
#define BENCH_WARMUP_MS 1000

static struct it_service svc;
static volatile int bench_phase; /* 0 warm-up, 1 measuring, 2 stop */
static int64_t *bench_lat_us;
static long bench_nlat;
static long bench_errors;
static pthread_mutex_t bench_mu = PTHREAD_MUTEX_INITIALIZER;

struct client {
    int index;
    char tokens[BENCH_ACCOUNTS][TOKEN_STR_MAX];
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *client_main(void *p)
{
    const struct client *c = p;
    struct hc_conn *conn = hc_connect(NULL, svc.port);
    CHECK(conn != NULL);
    char auth[TOKEN_STR_MAX + 32], idem[96], body[512], amount[32];
    long n = 0;
    int64_t local[4096];
    int nlocal = 0;
    while (bench_phase != 2) {
        const char *token = c->tokens[(c->index + n) % BENCH_ACCOUNTS];
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        snprintf(idem, sizeof(idem), "Idempotency-Key: bench-%d-%ld", c->index, n);
        snprintf(amount, sizeof(amount), "%ld.%02ld", 50 + n % 1000, n % 100);
        it_body(body, sizeof(body), amount, "张三", "中国工商银行", "bench");
        const char *h[] = {auth, idem, "Content-Type: application/json", NULL};
        int measuring = bench_phase == 1;
        int64_t t0 = now_us();
        struct hc_response r;
        int rc = hc_request(conn, "POST", "/v1/topup-orders", h, body, strlen(body), &r);
        int64_t dt = now_us() - t0;
        if (rc != 0 || r.status != 201) {
            pthread_mutex_lock(&bench_mu);
            bench_errors++;
            pthread_mutex_unlock(&bench_mu);
            fprintf(stderr, "bench: request failed: rc %d status %d %s\n", rc,
                    rc == 0 ? r.status : 0, rc == 0 ? r.body : "");
            if (rc != 0) {
                hc_close(conn);
                conn = hc_connect(NULL, svc.port);
                CHECK(conn != NULL);
            }
        }
        if (rc == 0) {
            hc_response_free(&r);
        }
        if (measuring && bench_phase == 1) {
            local[nlocal++] = dt;
        }
        if (nlocal == (int)(sizeof(local) / sizeof(local[0])) || (bench_phase == 2 && nlocal)) {
            pthread_mutex_lock(&bench_mu);
            for (int i = 0; i < nlocal && bench_nlat < BENCH_LAT_MAX; i++) {
                bench_lat_us[bench_nlat++] = local[i];
            }
            pthread_mutex_unlock(&bench_mu);
            nlocal = 0;
        }
        n++;
    }
    pthread_mutex_lock(&bench_mu);
    for (int i = 0; i < nlocal && bench_nlat < BENCH_LAT_MAX; i++) {
        bench_lat_us[bench_nlat++] = local[i];
    }
    pthread_mutex_unlock(&bench_mu);
    hc_close(conn);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static long peak_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kb = atol(line + 6);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return kb;
}

/* Runs pgbench with the raw transaction; returns its tps (excluding connection time). */
static double run_pgbench(int concurrency, int seconds, double *lat_ms)
{
    char script[] = "/tmp/intake-bench-XXXXXX.sql";
    int fd = mkstemps(script, 4);
    CHECK(fd >= 0);
    static const char sql[] =
        "\\set n random(1, 1000000000000)\n"
        "\\set amt random(5000, 100000)\n"
        "BEGIN;\n"
        "WITH k AS (INSERT INTO idempotency_keys (account_id, key, request_hash, order_id)"
        " VALUES ('pgbench-' || :client_id, 'pgb-' || :n, sha256(('h' || :n)::bytea),"
        " nextval('topup_orders_id_seq')) ON CONFLICT (account_id, key) DO NOTHING"
        " RETURNING order_id),"
        " t AS (SELECT now() AS c, now() + interval '72 hours' AS e)"
        " INSERT INTO topup_orders (id, code, account_id, amount_fen, channel, remitter_name,"
        " remitter_name_norm, remitter_bank, remarks, created_at, expires_at, updated_at)"
        " SELECT k.order_id, 'PB' || :n || '-' || :client_id, 'pgbench-' || :client_id, :amt,"
        " 'bank_transfer', '张三', '张三', '中国工商银行', 'bench', t.c, t.e, t.c FROM k, t"
        " RETURNING id;\n"
        "WITH ins AS (INSERT INTO outbox (source, topic, kafka_key, payload, event_id)"
        " VALUES ('pgbench', 'topup.requested', 'pgbench-' || :client_id,"
        " decode(repeat('ab', 190), 'hex'), gen_random_uuid()::text) RETURNING id)"
        " SELECT pg_notify('outbox_pgbench', '') FROM ins;\n"
        "END;\n";
    CHECK(write(fd, sql, sizeof(sql) - 1) == (ssize_t)(sizeof(sql) - 1));
    close(fd);
    char cmd[1024];
    const char *pgbin = getenv("TOPUP_PG_BIN");
    snprintf(cmd, sizeof(cmd),
             "%s%spgbench -n -M prepared -c %d -j %d -T %d -f %s \"$PG_CONNINFO\" 2>&1",
             pgbin != NULL ? pgbin : "", pgbin != NULL ? "/" : "", concurrency,
             concurrency < 2 ? 1 : 2, seconds, script);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    char line[512];
    double tps = 0;
    *lat_ms = 0;
    while (fgets(line, sizeof(line), p) != NULL) {
        double v;
        if (sscanf(line, "tps = %lf (without initial connection time)", &v) == 1) {
            tps = v;
        }
        if (sscanf(line, "latency average = %lf ms", &v) == 1) {
            *lat_ms = v;
        }
        if (strstr(line, "error") != NULL || strstr(line, "ERROR") != NULL) {
            fputs(line, stderr);
        }
    }
    int rc = pclose(p);
    unlink(script);
    CHECK_MSG(rc == 0 && tps > 0, "pgbench failed (exit %d)", rc);
    return tps;
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "order_intake_bench");
    const char *cs = getenv("INTAKE_BENCH_CONCURRENCY");
    const char *ds = getenv("INTAKE_BENCH_SECONDS");
    int conc = cs != NULL ? atoi(cs) : 16;
    int secs = ds != NULL ? atoi(ds) : 10;
    CHECK(conc >= 1 && conc <= 1024 && secs >= 1);
    bench_lat_us = calloc(BENCH_LAT_MAX, sizeof(*bench_lat_us));

    /* Up to 1024 clients from one address, like a TLS terminator in front: no per-address limit. */
    static const char *const env[] = {"INTAKE_PER_IP_CONNECTIONS_MAX=1024", NULL};
    it_start(&svc, env);
    it_wait_ready(&svc);
    it_step("service pid %d on port %d (for profilers)", (int)it_pid(&svc), svc.port);
    static struct client clients[1024];
    char acct[IT_ID_MAX];
    for (int a = 0; a < BENCH_ACCOUNTS; a++) {
        it_token(clients[0].tokens[a], it_id(acct, "acct-bench"), 3600);
    }
    pthread_t *t = calloc((size_t)conc, sizeof(*t));
    for (int i = 0; i < conc; i++) {
        clients[i].index = i;
        if (i > 0) {
            memcpy(clients[i].tokens, clients[0].tokens, sizeof(clients[0].tokens));
        }
        pthread_create(&t[i], NULL, client_main, &clients[i]);
    }
    it_sleep_ms(BENCH_WARMUP_MS);
    bench_phase = 1;
    int64_t t0 = now_us();
    it_sleep_ms(secs * 1000);
    bench_phase = 2;
    int64_t elapsed = now_us() - t0;
    for (int i = 0; i < conc; i++) {
        pthread_join(t[i], NULL);
    }
    long rss_kb = peak_rss_kb(it_pid(&svc));
    CHECK(it_stop(&svc, SIGTERM) == 0);

    qsort(bench_lat_us, (size_t)bench_nlat, sizeof(*bench_lat_us), cmp_i64);
    double rate = (double)bench_nlat * 1e6 / (double)elapsed;
    double p50 = bench_nlat ? bench_lat_us[bench_nlat / 2] / 1000.0 : 0;
    double p99 = bench_nlat ? bench_lat_us[(long)(bench_nlat * 0.99)] / 1000.0 : 0;
    double pmax = bench_nlat ? bench_lat_us[bench_nlat - 1] / 1000.0 : 0;

    double raw_lat = 0;
    double raw = run_pgbench(conc, secs, &raw_lat);
    double ratio = raw > 0 ? rate / raw : 0;
    printf("order-intake benchmark: concurrency %d, %d s measured after %d ms warm-up\n", conc,
           secs, BENCH_WARMUP_MS);
    printf("  HTTP POST /v1/topup-orders : %ld orders, %.0f orders/s, p50 %.2f ms, p99 %.2f ms, "
           "max %.2f ms, errors %ld\n",
           bench_nlat, rate, p50, p99, pmax, bench_errors);
    printf("  service peak RSS           : %.1f MB\n", rss_kb / 1024.0);
    printf("  pgbench raw transaction    : %.0f tps, average latency %.2f ms (same INSERTs, one "
           "commit each)\n",
           raw, raw_lat);
    printf("  ratio HTTP / raw           : %.2f   [target >= 0.80: %s]\n", ratio,
           ratio >= 0.8 ? "met" : "MISSED");
    printf("  p99                        : %.2f ms [target <= 20 ms: %s]\n", p99,
           p99 <= 20.0 ? "met" : "MISSED");
    printf("  peak RSS                   : %.1f MB [target <= 64 MB: %s]\n", rss_kb / 1024.0,
           rss_kb <= 64 * 1024 ? "met" : "MISSED");
    fflush(stdout);
    CHECK_MSG(bench_errors == 0, "%ld requests were not answered 201", bench_errors);
    return 0;
}
