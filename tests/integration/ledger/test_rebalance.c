/*
 * Two ledger instances in one group while events and redeliveries keep coming: a second instance
 * joins (rebalance), the first leaves with SIGTERM (rebalance again); every event applies once.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#define ACCOUNTS 20
#define EVENTS   1500
#define JOIN_AT  300
#define LEAVE_AT 1000

static char prefix[H_ID_MAX];
static char accts[ACCOUNTS][H_ID_MAX];
static int64_t expected[ACCOUNTS];
static char sent_ids[EVENTS][UUID_STR_LEN];
static int sent_acct[EVENTS];
static int64_t sent_amount[EVENTS];
static int distinct;

static void send_event(int n)
{
    int i = (n * 7) % ACCOUNTS;
    h_event_id(sent_ids[n]);
    sent_acct[n] = i;
    sent_amount[n] = -(1 + (n * 13) % 97);
    char ref[32];
    snprintf(ref, sizeof(ref), "req-%d", n);
    h_send_usage(sent_ids[n], accts[i], ref, sent_amount[n]);
    expected[i] += sent_amount[n];
    distinct++;
}

/* The same event again (a producer retry or an upstream replay). */
static void resend_event(int n)
{
    char ref[32];
    snprintf(ref, sizeof(ref), "req-%d", n);
    h_send_usage(sent_ids[n], accts[sent_acct[n]], ref, sent_amount[n]);
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "ledger_rebalance");
    char group[H_ID_MAX];
    h_id(prefix, "lr");
    h_id(group, "ledger-rebalance");
    h_group_at_end(group); /* see only what is produced from now on */
    h_mark_topics();
    for (int i = 0; i < ACCOUNTS; i++) {
        snprintf(accts[i], sizeof(accts[i]), "%.80s-%d", prefix, i);
    }
    static const char *const env[] = {"KAFKA_SESSION_TIMEOUT_MS=6000", NULL};
    struct h_proc a, b;
    h_ledger_start(&a, "ledger-a", group, env);
    srand((unsigned)time(NULL));
    for (int n = 0; n < EVENTS; n++) {
        send_event(n);
        if (n % 10 == 9) {
            resend_event(rand() % (n + 1));
        }
        if (n == JOIN_AT) {
            h_ledger_start(&b, "ledger-b", group, env);
        }
        if (n == LEAVE_AT) {
            CHECK(h_ledger_stop(&a, SIGTERM, 30000) == 0);
        }
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    h_wait_i64("every distinct event applied once",
               "SELECT count(*) FROM account_flows WHERE account_id LIKE $1 || '%'", 1,
               (const char *const[]){prefix}, distinct);
    for (int i = 0; i < ACCOUNTS; i++) {
        CHECK_MSG(h_balance(accts[i]) == expected[i], "%s: balance %lld, want %lld", accts[i],
                  (long long)h_balance(accts[i]), (long long)expected[i]);
        h_check_chain(accts[i]);
    }
    /* Usage of one account keeps its order: flows by id follow the request numbers. */
    for (int i = 0; i < ACCOUNTS; i++) {
        PGresult *r = h_sql("SELECT reference FROM account_flows WHERE account_id = $1 ORDER BY id",
                            1, (const char *const[]){accts[i]});
        int prev = -1;
        for (int j = 0; j < PQntuples(r); j++) {
            int cur = atoi(PQgetvalue(r, j, 0) + 4);
            CHECK_MSG(cur > prev, "%s: %s applied after req-%d", accts[i], PQgetvalue(r, j, 0),
                      prev);
            prev = cur;
        }
        PQclear(r);
    }
    CHECK(h_ledger_stop(&b, SIGTERM, 30000) == 0);
    CHECK(h_log_sum(&a, "ledger stopped", "applied") > 0);
    CHECK(h_log_sum(&b, "ledger stopped", "applied") > 0);
    CHECK(h_log_count(&a, "kafka partition revoked") > 0); /* a really gave partitions away */
    CHECK(h_log_count(&a, "deadlock") == 0 && h_log_count(&b, "deadlock") == 0);

    char out[8192];
    int rc = h_topupctl(out, sizeof(out), (const char *const[]){"verify", NULL});
    fprintf(stderr, "%s", out);
    CHECK(rc == 0);
    h_step("ok");
    return 0;
}
