#!/usr/bin/env bash
# close-alert.sh against fakes of systemctl, journalctl, logger and curl (on PATH, recording what
# they are asked): exit 1 (breaks) and exit 2 (not closed) are told apart, the failed run's output
# is kept, the webhook gets the summary as JSON, and a webhook that fails fails the alert.
#   test_close_alert.sh <close-alert.sh>
set -euo pipefail
ALERT=$(realpath "$1")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v jq >/dev/null || fail "jq is needed (deploy/install-deps.sh installs it)"
mkdir -p "$WORK/bin" "$WORK/close"
cat >"$WORK/bin/systemctl" <<'SH'
#!/bin/sh
# systemctl show -p NAME --value UNIT
case "$3" in
ExecMainStatus) echo "$FAKE_EXIT" ;;
Result) echo exit-code ;;
InvocationID) echo 0123456789abcdef0123456789abcdef ;;
esac
SH
cat >"$WORK/bin/journalctl" <<'SH'
#!/bin/sh
echo "journalctl $*" >>"$FAKE_LOG"
cat "$FAKE_JOURNAL"
SH
cat >"$WORK/bin/logger" <<'SH'
#!/bin/sh
echo "logger $*" >>"$FAKE_LOG"
SH
cat >"$WORK/bin/curl" <<'SH'
#!/bin/sh
# Keeps the --data body and the URL; FAKE_CURL_RC decides the outcome.
while [ $# -gt 0 ]; do
    case "$1" in
    --data) printf '%s' "$2" >"$FAKE_BODY"; shift 2 ;;
    --max-time | --retry | -H) shift 2 ;;
    -*) shift ;;
    *) echo "$1" >"$FAKE_URL"; shift ;;
    esac
done
exit "${FAKE_CURL_RC:-0}"
SH
chmod +x "$WORK/bin/"*
export PATH="$WORK/bin:$PATH" FAKE_LOG=$WORK/log FAKE_BODY=$WORK/body FAKE_URL=$WORK/url
export FAKE_JOURNAL=$WORK/journal TOPUP_CLOSE_DIR=$WORK/close

echo "== exit 1: the day closed with breaks; no webhook configured: the journal only"
printf '%s\n' 'close of 2026-12-06 (Asia/Shanghai, ...)' \
    'break credit_not_matched: record_id=7 bank_txn_id=T1 amount_fen=700 age_days=9' \
    'break balance_mismatch: account=a amount_fen=0 expected_fen=1' '2 breaks' >"$FAKE_JOURNAL"
FAKE_EXIT=1 TOPUP_ALERT_WEBHOOK_FILE=$WORK/none "$ALERT" topup-close.service ||
    fail "exit 1 alert failed"
grep -q 'logger -p daemon.crit -t topup-close-alert topup-close.service failed (exit 1): the close found breaks.* 2 break line(s).*break credit_not_matched: record_id=7' "$FAKE_LOG" ||
    fail "crit line for breaks: $(cat "$FAKE_LOG")"
grep -q '_SYSTEMD_INVOCATION_ID=0123456789abcdef0123456789abcdef' "$FAKE_LOG" ||
    fail "the failed run's output is not read by its invocation"
kept=$(ls "$WORK/close"/alert-topup-close.service-*.txt)
cmp -s "$kept" "$FAKE_JOURNAL" || fail "the kept output differs from the run's"
[ ! -e "$FAKE_BODY" ] || fail "a webhook was called without one configured"

echo "== exit 2: not closed; the webhook gets the JSON summary"
: >"$FAKE_LOG"
rm -f "$WORK/close"/*
echo 'topupctl close: another close of 2026-12-06 holds its lock (waited 60000 ms)' >"$FAKE_JOURNAL"
echo 'https://pager.example/hook/abc' >"$WORK/hook"
FAKE_EXIT=2 TOPUP_ALERT_WEBHOOK_FILE=$WORK/hook "$ALERT" topup-close.service ||
    fail "exit 2 alert failed"
grep -q 'failed (exit 2): the close did not run to its end.*NOT closed' "$FAKE_LOG" ||
    fail "crit line for exit 2: $(cat "$FAKE_LOG")"
[ "$(cat "$FAKE_URL")" = https://pager.example/hook/abc ] || fail "webhook URL: $(cat "$FAKE_URL")"
jq -e '.exit_code == "2" and .break_lines == 0 and .unit == "topup-close.service" and
       (.summary | test("NOT closed")) and (.first_lines | test("holds its lock")) and
       (.output | test("alert-topup-close.service-"))' "$FAKE_BODY" >/dev/null ||
    fail "webhook body: $(cat "$FAKE_BODY")"

echo "== the webhook fails: the alert unit fails too"
rc=0
FAKE_EXIT=1 FAKE_CURL_RC=22 TOPUP_ALERT_WEBHOOK_FILE=$WORK/hook "$ALERT" topup-close.service || rc=$?
[ "$rc" != 0 ] || fail "a failed webhook left the alert green"

echo "PASS"
