/*
 * Ledger crash: kill -9 right after the PostgreSQL commit and before any offset commit, restart,
 * and the redelivered batch changes nothing; then kill -9 at a random moment under load.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#define ACCOUNTS 5
#define FIRST    50
#define LATER    200

static char prefix[H_ID_MAX];
static char accts[ACCOUNTS][H_ID_MAX];
static int64_t expected[ACCOUNTS];
static int64_t sent_total;

/* What each account uses first: the usage every usage refund of the test gives part of back. */
#define BASE_USAGE_FEN 100000

static void send_base(int i)
{
    char eid[UUID_STR_LEN], ref[48];
    h_event_id(eid);
    snprintf(ref, sizeof(ref), "base-%d", i);
    h_send_usage(eid, accts[i], ref, -BASE_USAGE_FEN);
    expected[i] -= BASE_USAGE_FEN;
    sent_total++;
}

/* Sends one valid event for account i (usage or usage refund) and books its effect. */
static struct h_sent send_one(int i, int n)
{
    char eid[UUID_STR_LEN], ref[48];
    h_event_id(eid);
    snprintf(ref, sizeof(ref), "r-%d-%d", i, n);
    int64_t amount = 1 + (n * 37 + i * 11) % 500;
    struct h_sent s;
    if (n % 3 == 2) {
        char base[48];
        snprintf(base, sizeof(base), "base-%d", i);
        s = h_send_usage_refund(eid, accts[i], ref, amount, base);
        expected[i] += amount;
    } else {
        s = h_send_usage(eid, accts[i], ref, -amount);
        expected[i] -= amount;
    }
    sent_total++;
    return s;
}

static int64_t my_flows(void)
{
    return h_i64("SELECT count(*) FROM account_flows WHERE account_id LIKE $1 || '%'", 1,
                 (const char *const[]){prefix});
}

static void wait_all(const char *what)
{
    char sql[] = "SELECT count(*) FROM account_flows WHERE account_id LIKE $1 || '%'";
    h_wait_i64(what, sql, 1, (const char *const[]){prefix}, sent_total);
    for (int i = 0; i < ACCOUNTS; i++) {
        CHECK_MSG(h_balance(accts[i]) == expected[i], "%s: balance %lld, want %lld", accts[i],
                  (long long)h_balance(accts[i]), (long long)expected[i]);
        h_check_chain(accts[i]);
    }
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "ledger_crash");
    char group[H_ID_MAX];
    h_id(prefix, "lc");
    h_id(group, "ledger-crash");
    h_group_at_end(group); /* see only what is produced from now on */
    h_mark_topics();
    for (int i = 0; i < ACCOUNTS; i++) {
        snprintf(accts[i], sizeof(accts[i]), "%.80s-%d", prefix, i);
    }
    /* No offset reaches Kafka except at a clean close: the crash window stays open. */
    static const char *const env[] = {"KAFKA_AUTO_COMMIT_INTERVAL_MS=600000",
                                      /* a killed member leaves the group in 6 s, not 45 s */
                                      "KAFKA_SESSION_TIMEOUT_MS=6000", NULL};

    for (int i = 0; i < ACCOUNTS; i++) {
        send_base(i); /* at most ~20 refunds of <= 500 fen follow per account */
    }
    struct h_proc l1;
    h_ledger_start(&l1, "ledger-1", group, env);
    struct h_sent first[FIRST];
    for (int n = 0; n < FIRST; n++) {
        first[n] = send_one(n % ACCOUNTS, n);
    }
    wait_all("first events applied");
    h_step("kill -9 right after the commit is visible in PostgreSQL");
    CHECK(h_ledger_stop(&l1, SIGKILL, 10000) == 128 + SIGKILL);
    for (int n = 0; n < FIRST; n++) {
        int64_t c = h_committed(group, first[n].topic, first[n].partition);
        CHECK_MSG(c <= first[n].offset,
                  "offset %lld of %s/%d already committed (%lld): the "
                  "crash did not hit the window",
                  (long long)first[n].offset, first[n].topic, first[n].partition, (long long)c);
    }
    int64_t flows_before = my_flows();
    int64_t versions_before = h_i64("SELECT sum(balance_version) FROM accounts WHERE account_id "
                                    "LIKE $1 || '%'",
                                    1, (const char *const[]){prefix});

    h_step("restart: the same %d events come again and change nothing", FIRST);
    struct h_proc l2;
    h_ledger_start(&l2, "ledger-2", group, env);
    /* One event per account and topic behind the redelivered ones, in the same partitions. */
    for (int i = 0; i < ACCOUNTS; i++) {
        send_one(i, 1000);
        send_one(i, 1002);
    }
    wait_all("redelivery and sentinels");
    CHECK(my_flows() == flows_before + 2 * ACCOUNTS);
    CHECK(h_log_sum(&l2, "ledger batch committed", "duplicates") >= FIRST);
    /* Redelivered events bumped no balance version: only the sentinels' batches did. */
    int64_t versions_after = h_i64("SELECT sum(balance_version) FROM accounts WHERE account_id "
                                   "LIKE $1 || '%'",
                                   1, (const char *const[]){prefix});
    CHECK(versions_after - versions_before <= 2 * ACCOUNTS);

    h_step("kill -9 at a random moment while events keep coming");
    srand((unsigned)time(NULL));
    int kill_at = LATER / 4 + rand() % (LATER / 2);
    struct h_proc l3;
    bool restarted = false;
    for (int n = 0; n < LATER; n++) {
        send_one(n % ACCOUNTS, 2000 + n);
        if (n == kill_at) {
            CHECK(h_ledger_stop(&l2, SIGKILL, 10000) == 128 + SIGKILL);
            h_ledger_start(&l3, "ledger-3", group, env);
            restarted = true;
        }
    }
    CHECK(restarted);
    wait_all("every event once after the second crash");

    h_step("SIGTERM: exit 0, offsets committed at close");
    struct h_sent last = send_one(0, 9999);
    wait_all("last event");
    CHECK(h_ledger_stop(&l3, SIGTERM, 30000) == 0);
    CHECK(h_committed(group, last.topic, last.partition) > last.offset);

    char out[8192];
    int rc = h_topupctl(out, sizeof(out), (const char *const[]){"verify", NULL});
    fprintf(stderr, "%s", out);
    CHECK(rc == 0);
    h_step("ok");
    return 0;
}
