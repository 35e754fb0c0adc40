/* deploy/demo.sh against the services started for it: the walk-through works and tells the truth.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

/* The demo's defaults: 100.00 CNY topped up, 12.50 used. */
#define DEMO_TOPUP_FEN 10000
#define DEMO_USAGE_FEN 1250

int main(void)
{
    tl_init("e2e_demo");
    /* Topics of its own: the demo's events must not reach the services of other tests. */
    tl_kafka_private_start();
    /* Static: the harness kills them at exit, after main's frame is gone. */
    static struct tl_proc ledger, recon;
    static struct tl_intake intake;
    tl_worker_start(&ledger, "ledger", "ledger", NULL);
    tl_worker_start(&recon, "reconciliation", "reconciliation", NULL);
    tl_intake_start(&intake, NULL);

    /* The env file the demo reads in place of .local/stack/env. */
    char env_file[TL_PATH_MAX], env_text[8192], url[128], acct[TL_ID_MAX], script[TL_PATH_MAX];
    snprintf(env_file, sizeof(env_file), "%s/demo.env", tl_logdir());
    snprintf(env_text, sizeof(env_text),
             "export PG_CONNINFO='%s'\nexport REDIS_HOST='%s'\nexport REDIS_PORT='%s'\n"
             "export KAFKA_BOOTSTRAP_SERVERS='%s'\nexport TOKEN_SECRET='%s'\n",
             tl_env("PG_CONNINFO"), tl_env("REDIS_HOST"), tl_env("REDIS_PORT"),
             tl_env("KAFKA_BOOTSTRAP_SERVERS"), tl_env("TOKEN_SECRET"));
    tl_write_file(env_file, env_text, strlen(env_text));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", intake.port);
    tl_id(acct, "demo");
    snprintf(script, sizeof(script), "%s/deploy/demo.sh", tl_env("TOPUP_SOURCE_DIR"));

    char e_env[TL_PATH_MAX + 32], e_url[160], e_acct[TL_ID_MAX + 32];
    snprintf(e_env, sizeof(e_env), "DEMO_ENV_FILE=%s", env_file);
    snprintf(e_url, sizeof(e_url), "DEMO_INTAKE_URL=%s", url);
    snprintf(e_acct, sizeof(e_acct), "DEMO_ACCOUNT=%s", acct);
    const char *env[] = {e_env, e_url, e_acct, "DEMO_WAIT_S=90", NULL};
    const char *argv[] = {"/bin/bash", script, NULL};
    char *out = NULL;
    int64_t t0 = tl_now_ms();
    int rc = tl_run("demo", argv, env, &out, 240000);
    fprintf(stderr, "---- deploy/demo.sh printed:\n%s---- (%.1f s)\n", out,
            (tl_now_ms() - t0) / 1000.0);
    TL_CHECK_MSG(rc == 0, "deploy/demo.sh exited %d; its stderr is in %s/demo.log", rc,
                 tl_logdir());

    /* Every step is shown, and what it shows is what the system holds. */
    static const char *const steps[] = {"== 1.", "== 2.", "== 3.", "== 4.",
                                        "== 5.", "== 6.", "Done."};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        TL_CHECK_MSG(strstr(out, steps[i]) != NULL, "the demo did not show step \"%s\"", steps[i]);
    }
    const char *p[1] = {acct};
    int64_t balance = tl_pg_i64("SELECT balance_fen FROM accounts WHERE account_id = $1", 1, p);
    TL_CHECK_MSG(balance == DEMO_TOPUP_FEN - DEMO_USAGE_FEN,
                 "balance of %s is %" PRId64 " fen, want %d", acct, balance,
                 DEMO_TOPUP_FEN - DEMO_USAGE_FEN);
    int64_t n = tl_pg_i64("SELECT count(*) FROM account_flows WHERE account_id = $1 AND "
                          "((flow_type = 'recharge' AND amount_fen = 10000) OR "
                          "(flow_type = 'consume' AND amount_fen = -1250))",
                          1, p);
    TL_CHECK_MSG(n == 2, "%s has %" PRId64 " of the 2 flows the demo shows", acct, n);
    n = tl_pg_i64("SELECT count(*) FROM topup_orders WHERE account_id = $1 AND status = "
                  "'completed' AND credited_fen = 10000",
                  1, p);
    TL_CHECK_MSG(n == 1, "%s has %" PRId64 " completed orders, want 1", acct, n);
    TL_CHECK_MSG(strstr(out, "balance: 87.50 CNY") != NULL && strstr(out, "recharge") != NULL &&
                     strstr(out, "consume") != NULL && strstr(out, "-12.50") != NULL,
                 "the demo's printout does not show the final balance and both flows");
    char *vout = NULL;
    rc = tl_verify(&vout);
    TL_CHECK_MSG(rc == 0, "topupctl verify after the demo: exit %d\n%s", rc, vout);
    free(vout);
    free(out);
    tl_step("PASS: deploy/demo.sh played every step; balance 87.50 CNY and both flows are in "
            "PostgreSQL");
    return 0;
}
