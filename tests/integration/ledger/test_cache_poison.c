/*
 * A poisoned balance cache does not stay: someone with access to Redis writes a balance the
 * ledger never wrote (999,999,999,999 fen with version 9e18, the same version with another
 * balance, a key that is not a hash); the ledger's next write for the account is refused by the
 * version check, the writer reads PostgreSQL, rewrites the key with PostgreSQL's balance and
 * version and counts cache.poison_repaired. order-intake's /v1/balance answers PostgreSQL's
 * balance throughout, and nothing in PostgreSQL moves but the events.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "testlib.h"
#include "topup/redis.h"

#define POISON_BALANCE_FEN "999999999999"
#define POISON_VERSION     "9000000000000000000"

static struct tl_intake intake;
static struct redis_client *attacker;
static int events_sent;

static void cache_key(char *out, size_t len, const char *account)
{
    snprintf(out, len, "topup:balance:t-%s:%s", h_sfx(), account);
}

static int64_t pg_version(const char *account)
{
    return h_i64("SELECT balance_version FROM accounts WHERE account_id = $1", 1,
                 (const char *const[]){account});
}

/* One consume of amount_fen (negative) and the wait until PostgreSQL has it. */
static void consume(const char *account, int64_t amount_fen)
{
    char eid[UUID_STR_LEN], ref[64];
    h_event_id(eid);
    snprintf(ref, sizeof(ref), "req-poison-%d", ++events_sent);
    h_send_usage(eid, account, ref, amount_fen);
    h_wait_i64("the usage applied", "SELECT count(*) FROM account_flows WHERE account_id = $1", 1,
               (const char *const[]){account}, events_sent);
}

/* Waits until the cache holds exactly PostgreSQL's balance and version of account. */
static void wait_cache_is_truth(const char *account, const char *what)
{
    int64_t deadline = tl_now_ms() + H_WAIT_MS;
    char bal[64] = "", ver[64] = "";
    for (;;) {
        int64_t want_bal = h_balance(account), want_ver = pg_version(account);
        bool have = h_cached(account, "balance_fen", bal, sizeof(bal)) &&
                    h_cached(account, "version", ver, sizeof(ver));
        if (have && strtoll(bal, NULL, 10) == want_bal && strtoll(ver, NULL, 10) == want_ver &&
            strcmp(ver, POISON_VERSION) != 0) {
            h_step("  %s: cache {balance_fen %s, version %s} = PostgreSQL", what, bal, ver);
            return;
        }
        CHECK_MSG(tl_now_ms() < deadline,
                  "%s: the cache holds {balance_fen %s, version %s}, PostgreSQL {%lld, %lld}", what,
                  bal, ver, (long long)want_bal, (long long)want_ver);
        tl_sleep_ms(50);
    }
}

/* /v1/balance as the account's user sees it: the balance in fen. */
static int64_t api_balance(const char *token)
{
    struct tl_http_resp r;
    int status = tl_http(intake.port, "GET", "/v1/balance", token, NULL, NULL, &r, 10000);
    CHECK_MSG(status == 200, "GET /v1/balance: %d %s", status, r.body != NULL ? r.body : "");
    int64_t fen = tl_fen_parse(tl_json_str(r.json, "balance"));
    tl_http_free(&r);
    return fen;
}

static void poison(const char *account, const char *fmt, const char *a, const char *b)
{
    char key[256];
    cache_key(key, sizeof(key), account);
    struct tp_error err = {0};
    if (b != NULL) {
        CHECK_MSG(redis_command(attacker, NULL, &err, fmt, key, a, b) == TP_OK, "poison: %s",
                  err.msg);
    } else {
        CHECK_MSG(redis_command(attacker, NULL, &err, fmt, key, a) == TP_OK, "poison: %s", err.msg);
    }
}

static int64_t repaired(void)
{
    return tl_redis_counter("topup:ctr:ledger:cache.poison_repaired");
}

/* The counters are flushed about once a second: waits until the repair is counted. */
static void wait_repaired(int64_t before, const char *what)
{
    int64_t deadline = tl_now_ms() + H_WAIT_MS;
    while (repaired() < before + 1) {
        CHECK_MSG(tl_now_ms() < deadline, "%s: cache.poison_repaired did not count the repair",
                  what);
        tl_sleep_ms(100);
    }
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "ledger_cache_poison");
    char group[H_ID_MAX], account[H_ID_MAX];
    h_id(group, "ledger-poison");
    h_id(account, "poison");
    h_group_at_end(group);
    h_mark_topics();
    attacker = redis_new(NULL, 0, 500, 1000);
    struct h_proc led;
    h_ledger_start(&led, "ledger", group, NULL);
    tl_intake_start(&intake, NULL);
    tl_intake_wait_ready(&intake, H_WAIT_MS);
    char *token = tl_token(account);

    h_step("the account's first usage: cached as PostgreSQL has it");
    consume(account, -1500);
    wait_cache_is_truth(account, "first write");

    h_step("poisoned with {balance_fen %s, version %s}; the next usage repairs it",
           POISON_BALANCE_FEN, POISON_VERSION);
    int64_t before = repaired();
    poison(account, "HSET %s balance_fen %s version %s", POISON_BALANCE_FEN, POISON_VERSION);
    CHECK_MSG(api_balance(token) == h_balance(account), "the API answered the poisoned balance");
    consume(account, -250);
    wait_cache_is_truth(account, "huge version");
    CHECK_MSG(h_balance(account) == -1750, "PostgreSQL balance %lld, want -1750",
              (long long)h_balance(account));
    CHECK_MSG(api_balance(token) == -1750, "the API answered %lld, want -1750",
              (long long)api_balance(token));
    wait_repaired(before, "huge version");

    h_step("the same version as PostgreSQL with another balance: repaired on the next usage");
    char ver[32];
    snprintf(ver, sizeof(ver), "%lld", (long long)pg_version(account) + 1);
    before = repaired();
    /* One ahead of PostgreSQL, so the coming write (version + 1) is refused as "not newer". */
    poison(account, "HSET %s balance_fen %s version %s", POISON_BALANCE_FEN, ver);
    consume(account, -100);
    wait_cache_is_truth(account, "same version, other balance");
    wait_repaired(before, "same version, other balance");

    h_step("a version that is not a number, then a key that is not a hash: replaced as well");
    poison(account, "HSET %s balance_fen %s version %s", POISON_BALANCE_FEN, "9e18");
    consume(account, -100);
    wait_cache_is_truth(account, "version not a number");
    poison(account, "SET %s %s", POISON_BALANCE_FEN, NULL);
    consume(account, -100);
    wait_cache_is_truth(account, "not a hash");

    h_step("PostgreSQL moved only by the events; the API answers PostgreSQL");
    CHECK(h_balance(account) == -2050);
    h_check_chain(account);
    CHECK(api_balance(token) == -2050);
    free(token);
    redis_free(attacker);
    CHECK(h_ledger_stop(&led, SIGTERM, 30000) == 0);
    h_step("ok");
    return 0;
}
