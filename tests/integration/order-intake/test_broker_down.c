/*
 * Broker down: with a dev broker of its own taken down (control channel), order-intake keeps
 * accepting orders and cancels; when the broker returns, every event goes out, none lost, none
 * duplicated. Messages are given a 5 s delivery timeout so that the outage outlasts it, as a
 * minutes-long outage outlasts the default one.
 * argv: <order-intake>
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "testlib.h"

#define DOWN_S_DEFAULT 15

/* A dev broker of this test's own (tests/lib): faults on it touch no other test. */
static struct tl_broker broker;

/* One command on the broker's control channel; fails unless it answers "ok...". */
static void broker_ctl(const char *cmd)
{
    char reply[256] = "";
    CHECK_MSG(tl_broker_ctl(broker.control, cmd, reply, sizeof(reply)), "broker control \"%s\": %s",
              cmd, reply);
}

static void cancel(const struct it_service *s, const char *token, const char *code)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/cancel", code);
    struct it_resp r;
    it_call(s, "POST", path, token, NULL, NULL, NULL, NULL, &r);
    CHECK_MSG(r.status == 200, "cancel %s: %d", code, r.status);
    it_resp_free(&r);
}

static int count_kind(struct it_consumer *c, enum it_event_kind kind, const char *code)
{
    int n = 0;
    const struct it_event *ev = it_events(c, &n);
    int k = 0;
    for (int i = 0; i < n; i++) {
        k += ev[i].kind == kind && strcmp(ev[i].code, code) == 0;
    }
    return k;
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "order_intake_broker_down");
    const char *down_env = getenv("INTAKE_IT_BROKER_DOWN_S");
    int down_s = down_env != NULL ? atoi(down_env) : DOWN_S_DEFAULT;

    /* Points this process and the service started below at the private broker. */
    tl_broker_start(&broker, 1, NULL);
    struct it_consumer *cons = it_consumer_new(broker.bootstrap);

    const char *env[] = {"KAFKA_MESSAGE_TIMEOUT_MS=5000", "INTAKE_OUTBOX_POLL_MS=200", NULL};
    struct it_service svc;
    it_start(&svc, env);
    it_wait_ready(&svc);
    char acct[IT_ID_MAX], tok[TOKEN_STR_MAX];
    it_id(acct, "acct-bd");
    it_token(tok, acct, 3600);

    it_step("broker up: orders flow");
    enum { BEFORE = 10, DURING = 30, CANCELS = 5 };
    char codes[BEFORE + DURING][REFCODE_STR_LEN];
    for (int i = 0; i < BEFORE; i++) {
        it_create_ok(&svc, tok, "120", codes[i]);
    }
    CHECK(it_collect(cons, acct, BEFORE, IT_WAIT_MS) == BEFORE);

    it_step("broker down for %d s: orders and cancels still accepted", down_s);
    broker_ctl("broker-down 1");
    int64_t down_at = it_now_ms();
    for (int i = BEFORE; i < BEFORE + DURING; i++) {
        it_create_ok(&svc, tok, "130", codes[i]);
    }
    for (int i = BEFORE; i < BEFORE + CANCELS; i++) {
        cancel(&svc, tok, codes[i]);
    }
    int64_t left = down_at + down_s * 1000LL - it_now_ms();
    if (left > 0) {
        it_sleep_ms((int)left);
    }
    const char *pa[] = {acct};
    int64_t waiting =
        it_i64("SELECT count(*) FROM outbox WHERE kafka_key = $1 AND published_at IS NULL", 1, pa);
    CHECK_MSG(waiting > 0, "nothing waited for the broker: was it really down?");
    it_step("%lld events waiting in the outbox", (long long)waiting);

    it_step("broker back: every event delivered, once");
    broker_ctl("broker-up 1");
    it_wait_i64("outbox drained",
                "SELECT count(*) FROM outbox WHERE kafka_key = $1"
                " AND published_at IS NULL",
                1, pa, 0);
    int want = BEFORE + DURING + CANCELS;
    int got = it_collect(cons, acct, want, IT_WAIT_MS);
    CHECK_MSG(got >= want, "received %d of %d events", got, want);
    it_collect(cons, acct, want + 1000, 3000);
    int n = 0;
    it_events(cons, &n);
    CHECK_MSG(n == want, "%d events, want exactly %d", n, want);
    for (int i = 0; i < BEFORE + DURING; i++) {
        CHECK_MSG(count_kind(cons, IT_REQUESTED, codes[i]) == 1, "%s requested %d times", codes[i],
                  count_kind(cons, IT_REQUESTED, codes[i]));
        bool cancelled = i >= BEFORE && i < BEFORE + CANCELS;
        CHECK(count_kind(cons, IT_CANCELLED, codes[i]) == (cancelled ? 1 : 0));
    }
    CHECK(it_stop(&svc, SIGTERM) == 0);
    it_consumer_free(cons);
    tl_proc_stop(&broker.proc, SIGTERM, IT_WAIT_MS, NULL);
    it_step("ok");
    return 0;
}
