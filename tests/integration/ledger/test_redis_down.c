/*
 * Redis down: the ledger applies, publishes and shuts down as usual (PostgreSQL stays the truth;
 * a missing cache key means "read PostgreSQL").
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define EVENTS 300

int main(int argc, char **argv)
{
    h_init(argc, argv, "ledger_redis_down");
    char prefix[H_ID_MAX], group[H_ID_MAX], account[H_ID_MAX];
    h_id(prefix, "lrd");
    h_id(group, "ledger-redis-down");
    h_group_at_end(group); /* see only what is produced from now on */
    h_mark_topics();
    snprintf(account, sizeof(account), "%.80s-a", prefix);
    /* Port 1 on loopback: connection refused at once, every time. */
    static const char *const env[] = {"REDIS_HOST=127.0.0.1", "REDIS_PORT=1", NULL};
    struct h_proc led;
    h_ledger_start(&led, "ledger", group, env);
    int64_t want = 0;
    for (int n = 0; n < EVENTS; n++) {
        char eid[UUID_STR_LEN], ref[32];
        h_event_id(eid);
        snprintf(ref, sizeof(ref), "req-%d", n);
        h_send_usage(eid, account, ref, -(n + 1));
        want -= n + 1;
    }
    h_wait_i64("every event applied with Redis down",
               "SELECT count(*) FROM account_flows WHERE account_id = $1", 1,
               (const char *const[]){account}, EVENTS);
    CHECK(h_balance(account) == want);
    h_check_chain(account);
    h_wait_i64("flows published with Redis down",
               "SELECT count(*) FROM account_flows f, ledger_flows_publisher p "
               "WHERE f.account_id = $1 AND f.id > p.published_upto",
               1, (const char *const[]){account}, 0);
    char got[64];
    CHECK(!h_cached(account, "balance_fen", got, sizeof(got))); /* the real Redis never saw it */
    CHECK(h_ledger_stop(&led, SIGTERM, 30000) == 0);
    h_step("ok");
    return 0;
}
