#!/usr/bin/env bash
# topupctl close against the stack's PostgreSQL: an empty day closes to zeros; a clean day exits 0
# with its CSV; every break kind planted is named with its records (exit 1); a rerun with the same
# content stores nothing; a changed closed day is caught through the hash chain (and a tampered
# stored close); two concurrent closes of one day: one stores, the other waits and finds it;
# refunds sent vs paid out, with every refund break.
#   test_close.sh <topupctl>
# The data is written with SQL: the breaks are states the services never produce on purpose.
set -euo pipefail

CTL=$(realpath "$1")
. "$(dirname "$0")/common.sh"
need_env PG_CONNINFO
CI=$PG_CONNINFO
q() { psqlq -d "$CI" -c "$1"; }

has() { grep -Eq -- "$2" "$1" || { cat "$1" >&2; fail "$3"; }; }
hasnt() { ! grep -Eq -- "$2" "$1" || { cat "$1" >&2; fail "$3"; }; }
close() { env PG_CONNINFO="$CI" "$CTL" close --by itest "$@"; }

# order CODE ACCOUNT AMOUNT STATUS
order() {
    q "INSERT INTO topup_orders (code, account_id, amount_fen, channel, remitter_name,
       remitter_name_norm, remitter_bank, status, credited_fen, expires_at)
       VALUES ('$1', '$2', $3, 'bank_transfer', 'Zhang San', 'zhangsan', 'ICBC', '$4',
       CASE WHEN '$4' = 'completed' THEN $3 END, now() + interval '1 day')"
}
# record TXN AMOUNT BOOKING_DATE STATE -> prints the record id
record() {
    q "INSERT INTO statement_records (receiving_account, bank_txn_id, value_date, booking_date,
       amount_fen, currency, direction, counterparty_name, event_id, state)
       VALUES ('6222000011112222', '$1', '$3', '$3', $2, 'CNY', 'credit', 'Zhang San',
       'ev-rec-$1', '$4') RETURNING id"
}
# decide RECORD_ID ORDER_CODE
decide() {
    q "INSERT INTO match_decisions (record_id, order_id, outcome, rule, decided_by)
       SELECT $1, id, 'matched', 'reference', 'reconciliation' FROM topup_orders WHERE code = '$2'"
}
# flow EVENT ACCOUNT TYPE AMOUNT REFERENCE CREATED_AT: appends a flow and moves the balance
flow() {
    q "INSERT INTO accounts (account_id) VALUES ('$2') ON CONFLICT DO NOTHING;
       UPDATE accounts SET balance_fen = balance_fen + ($4) WHERE account_id = '$2';
       INSERT INTO account_flows (event_id, account_id, flow_type, amount_fen, balance_after_fen,
       reference, occurred_at, created_at) SELECT '$1', '$2', '$3', $4, balance_fen, '$5',
       '$6'::timestamptz, '$6'::timestamptz FROM accounts WHERE account_id = '$2'"
}
rows_of() { q "SELECT count(*) FROM closes WHERE business_date = '$1'"; }
sha_of() { q "SELECT content_sha256 FROM closes WHERE business_date = '$1' ORDER BY id DESC LIMIT 1"; }

echo "== command line"
expect_rc 0 "$WORK/h" "$CTL" close --help
has "$WORK/h" 'closed_day_changed' "--help does not list the breaks"
expect_rc 2 "$WORK/u1" close
expect_rc 2 "$WORK/u2" close --date 2024-02-30
expect_rc 2 "$WORK/u3" close --date 2999-01-01
has "$WORK/u3.err" 'has not begun' "a future day is not refused clearly"
expect_rc 2 "$WORK/u4" close --date 2024-03-01 --no-such-option
expect_rc 2 "$WORK/u5" env PG_CONNINFO="host=127.0.0.1 port=1 dbname=x connect_timeout=1" \
    "$CTL" close --date 2024-03-01
[ "$(q 'SELECT count(*) FROM closes')" = 0 ] || fail "a refused close stored something"

echo "== a day without data closes to zeros (exit 0)"
expect_rc 0 "$WORK/d1" close --date 2024-03-01 --csv "$WORK/d1.csv"
has "$WORK/d1" '^0 breaks' "empty day: breaks line"
has "$WORK/d1" 'statement_credits +0 +0.00' "empty day: statement figure"
has "$WORK/d1" 'previous day none' "empty day: chain start"
head -n 1 "$WORK/d1.csv" | grep -qx 'date,section,kind,account,record_id,bank_txn_id,order_code,flow_id,amount_fen,expected_fen,count,age_days,opening_fen,recharge_fen,consume_fen,refund_fen,closing_fen,detail,refund_id' ||
    fail "CSV header: $(head -n 1 "$WORK/d1.csv")"
grep -qx '2024-03-01,figure,statement_credits,,,,,,0,,0,,,,,,,,' "$WORK/d1.csv" ||
    fail "empty day CSV figure row: $(cat "$WORK/d1.csv")"
[ "$(rows_of 2024-03-01)" = 1 ] || fail "empty day not stored once"
SHA1=$(sha_of 2024-03-01)

echo "== a clean day: credit matched, recharged, some usage (exit 0, CSV)"
order TUCLEAN001 acct-a 10000 completed
R1=$(record TXN-CLEAN-1 10000 2024-03-02 matched)
decide "$R1" TUCLEAN001
flow ev-a-1 acct-a recharge 10000 TUCLEAN001 '2024-03-02 10:00:00+08'
flow ev-a-2 acct-a consume -500 req-1 '2024-03-02 11:00:00+08'
# A flow on the next day: the close of 03-02 rolls the balance back to its end of day.
flow ev-a-3 acct-a consume -200 req-2 '2024-03-03 09:00:00+08'
expect_rc 0 "$WORK/d2" close --date 2024-03-02 --csv "$WORK/d2.csv"
has "$WORK/d2" '^0 breaks' "clean day has breaks"
has "$WORK/d2" "previous day $SHA1" "clean day does not chain to the day before"
grep -qx '2024-03-02,account,roll_forward,acct-a,,,,,,,,,0,10000,-500,0,9500,,' "$WORK/d2.csv" ||
    fail "clean day roll-forward row: $(cat "$WORK/d2.csv")"
grep -qx '2024-03-02,figure,statement_credits,,,,,,10000,,1,,,,,,,,' "$WORK/d2.csv" ||
    fail "clean day statement figure"
grep -qx '2024-03-02,figure,matched_records,,,,,,10000,,1,,,,,,,,' "$WORK/d2.csv" ||
    fail "clean day matched figure"
[ "$(q "SELECT prev_day_sha256 FROM closes WHERE business_date = '2024-03-02'")" = "$SHA1" ] ||
    fail "stored chain link"
[ "$(q "SELECT ca.closing_fen FROM close_accounts ca JOIN closes c ON c.id = ca.close_id
        WHERE c.business_date = '2024-03-02' AND ca.account_id = 'acct-a'")" = 9500 ] ||
    fail "close_accounts closing"
SHA2=$(sha_of 2024-03-02)

echo "== closing it again with the same content stores nothing (exit 0)"
expect_rc 0 "$WORK/d2b" close --date 2024-03-02
has "$WORK/d2b" '^unchanged' "rerun not reported unchanged"
[ "$(rows_of 2024-03-02)" = 1 ] || fail "rerun stored a row"

echo "== every break kind planted (exit 1, each named with its records)"
order TUNOTCRED1 acct-b 30000 processing
R2=$(record TXN-NOTCRED 30000 2024-03-03 matched)
decide "$R2" TUNOTCRED1
order TUWRONGAM1 acct-b 20000 completed
R3=$(record TXN-WRONGAMT 20000 2024-03-03 matched)
decide "$R3" TUWRONGAM1
flow ev-b-1 acct-b recharge 19000 TUWRONGAM1 '2024-03-03 12:00:00+08'
order TUNOREC001 acct-b 5000 completed
flow ev-b-2 acct-b recharge 5000 TUNOREC001 '2024-03-03 13:00:00+08'
R5=$(record TXN-OLD-UNM 7000 2024-02-20 unmatched)
R6=$(record TXN-NEW-UNM 8000 2024-03-03 unmatched)
q "INSERT INTO accounts (account_id, balance_fen) VALUES ('acct-c', 777)"
expect_rc 1 "$WORK/d3" close --date 2024-03-03 --csv "$WORK/d3.csv"
has "$WORK/d3" "^break matched_not_credited: account=acct-b record_id=$R2 bank_txn_id=TXN-NOTCRED order_code=TUNOTCRED1 amount_fen=30000" "matched_not_credited"
has "$WORK/d3" "^break recharge_not_as_matched: account=acct-b record_id=$R3 bank_txn_id=TXN-WRONGAMT order_code=TUWRONGAM1 flow_id=[0-9]+ amount_fen=19000 expected_fen=20000" "recharge_not_as_matched"
has "$WORK/d3" "^break recharge_without_record: account=acct-b order_code=TUNOREC001 flow_id=[0-9]+ amount_fen=5000" "recharge_without_record"
has "$WORK/d3" "^break credit_not_matched: record_id=$R5 bank_txn_id=TXN-OLD-UNM amount_fen=7000 age_days=12" "credit_not_matched"
hasnt "$WORK/d3" "^break credit_not_matched: record_id=$R6 " "a young unmatched credit is a break"
has "$WORK/d3" "record $R6 +txn TXN-NEW-UNM +80.00 +age 0 days" "young unmatched credit not in the unmatched funds section"
has "$WORK/d3" "^break balance_mismatch: account=acct-c amount_fen=0 expected_fen=777" "balance_mismatch"
has "$WORK/d3" '^5 breaks' "break count"
[ "$(grep -c '^2024-03-03,break,' "$WORK/d3.csv")" = 5 ] || fail "CSV break rows"
grep -q "^2024-03-03,break,recharge_not_as_matched,acct-b,$R3,TXN-WRONGAMT,TUWRONGAM1,[0-9]*,19000,20000," \
    "$WORK/d3.csv" || fail "CSV recharge_not_as_matched row"
[ "$(q "SELECT breaks FROM closes WHERE business_date = '2024-03-03'")" = 5 ] || fail "stored breaks"
SHA3=$(sha_of 2024-03-03)

echo "== a closed day that changed: closed_day_changed with both hashes, a new linked row"
flow ev-a-late acct-a consume -100 req-late '2024-03-02 20:00:00+08'
expect_rc 1 "$WORK/d2c" close --date 2024-03-02
SHA2B=$(sha_of 2024-03-02)
[ "$SHA2B" != "$SHA2" ] || fail "changed day kept its hash"
has "$WORK/d2c" "^break closed_day_changed: detail=close [0-9]+ stored $SHA2, now $SHA2B" "closed_day_changed with both hashes"
[ "$(rows_of 2024-03-02)" = 2 ] || fail "the changed day did not get a new row"
[ "$(q "SELECT count(*) FROM closes n JOIN closes o ON n.supersedes = o.id
        WHERE n.business_date = '2024-03-02' AND o.content_sha256 = '$SHA2'
        AND n.content_sha256 = '$SHA2B'")" = 1 ] || fail "new row not linked to the old one"
[ "$(q "SELECT count(*) FROM closes WHERE content_sha256 = '$SHA2'")" = 1 ] ||
    fail "the old close was overwritten"
# The next day's content holds the previous hash: the change runs down the chain.
expect_rc 1 "$WORK/d3b" close --date 2024-03-03
has "$WORK/d3b" "^break closed_day_changed: detail=close [0-9]+ stored $SHA3, now " "chain: next day not changed"
has "$WORK/d3b" "previous day $SHA2B" "chain: next day not linked to the new close"

echo "== history before a closed day changed: opening_mismatch; a tampered stored close"
flow ev-a-older acct-a consume -50 req-older '2024-03-01 08:00:00+08'
expect_rc 1 "$WORK/d2d" close --date 2024-03-02
has "$WORK/d2d" '^break opening_mismatch: account=acct-a amount_fen=0 expected_fen=-50' "opening_mismatch"
q "UPDATE closes SET content = content || 'x' WHERE business_date = '2024-03-01'"
expect_rc 1 "$WORK/d2e" close --date 2024-03-02
has "$WORK/d2e" '^break close_tampered: detail=close [0-9]+ of 2024-03-01' "close_tampered"

echo "== two concurrent closes of one day: one stores, the other waits and finds it"
DAYNUM=$(($(date -ud 2024-03-05 +%s) / 86400))
mkfifo "$WORK/hold"
"$PSQL" -X -q -d "$CI" <"$WORK/hold" >"$WORK/hold.out" 2>&1 &
HOLDER=$!
exec 3>"$WORK/hold"
test_cleanup() { exec 3>&- 2>/dev/null || true; kill "$HOLDER" 2>/dev/null || true; }
echo "SELECT pg_advisory_lock(1953460323, $DAYNUM);" >&3
wait_for() { # wait_for SQL WANT: polls up to 60 s
    for _ in $(seq 1 300); do
        [ "$(q "$1")" = "$2" ] && return 0
        sleep 0.2
    done
    fail "timed out waiting for: $1 = $2"
}
LOCKQ="SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1953460323
       AND objid = $DAYNUM AND objsubid = 2"
wait_for "$LOCKQ AND granted" 1
expect_rc 2 "$WORK/lt" env TOPUPCTL_CLOSE_LOCK_TIMEOUT_MS=300 PG_CONNINFO="$CI" "$CTL" close \
    --date 2024-03-05
has "$WORK/lt.err" 'another close of 2024-03-05 holds its lock' "lock timeout message"
close --date 2024-03-05 >"$WORK/k1" 2>&1 &
P1=$!
close --date 2024-03-05 >"$WORK/k2" 2>&1 &
P2=$!
wait_for "$LOCKQ AND NOT granted" 2
echo "SELECT pg_advisory_unlock(1953460323, $DAYNUM);" >&3
rc1=0 rc2=0
wait "$P1" || rc1=$?
wait "$P2" || rc2=$?
# acct-c's planted balance is a break on every day: both exit 1, neither 2.
[ "$rc1" = 1 ] && [ "$rc2" = 1 ] || { cat "$WORK/k1" "$WORK/k2" >&2; fail "concurrent exits $rc1 $rc2"; }
[ "$(cat "$WORK/k1" "$WORK/k2" | grep -c '^stored close')" = 1 ] || fail "not exactly one stored"
[ "$(cat "$WORK/k1" "$WORK/k2" | grep -c '^unchanged')" = 1 ] || fail "the other did not find it"
[ "$(rows_of 2024-03-05)" = 1 ] || fail "concurrent closes stored $(rows_of 2024-03-05) rows"

echo "== refunds sent vs paid out: figures, outstanding with age, every refund break planted"
order TUREFUND01 acct-r 50000 completed
RR=$(record TXN-REFUND-1 50000 2024-03-08 matched)
decide "$RR" TUREFUND01
flow ev-r-1 acct-r recharge 50000 TUREFUND01 '2024-03-04 09:00:00+08'
LOT=$(q "INSERT INTO credit_lots (account_id, flow_id, order_code, record_id, remitter_name,
         remitter_account, remitter_bank, paid_fen, left_fen)
         SELECT 'acct-r', id, 'TUREFUND01', $RR, 'Zhang San', '6222020000001', 'ICBC', 50000, 25000
         FROM account_flows WHERE event_id = 'ev-r-1' RETURNING id")
# refund_req REFUND_ID AMOUNT STATE RESERVE_EVENT CREATED_AT
refund_req() {
    q "INSERT INTO refund_requests (refund_id, account_id, lot_id, record_id, amount_fen, dest_name,
       dest_account, dest_bank, state, reason, requested_by, reserve_event_id, created_at)
       VALUES ('$1', 'acct-r', $LOT, $RR, $2, 'Zhang San', '6222020000001', 'ICBC', '$3',
       'itest', 'itest', NULLIF('$4', ''), '$5'::timestamptz)" >/dev/null
}
# trans REFUND_ID TO_STATE AT
trans() {
    q "INSERT INTO refund_transitions (request_id, to_state, actor, reason, created_at)
       SELECT id, '$2', 'itest', 'itest', '$3'::timestamptz FROM refund_requests
       WHERE refund_id = '$1'"
}
# A: approved, reserved, sent, paid out, all on 03-08: clean.
refund_req RFA 10000 paid_out ev-res-a '2024-03-08 09:00:00+08'
trans RFA requested '2024-03-08 09:00:00+08'
trans RFA approved '2024-03-08 09:10:00+08'
flow ev-res-a acct-r refund -10000 RFA '2024-03-08 09:11:00+08'
trans RFA sent '2024-03-08 10:00:00+08'
trans RFA paid_out '2024-03-08 15:00:00+08'
# B: sent on 03-04 and nothing since: outstanding, 4 days old, over the 3-day limit.
refund_req RFB 5000 sent ev-res-b '2024-03-04 10:00:00+08'
trans RFB requested '2024-03-04 10:00:00+08'
trans RFB approved '2024-03-04 10:01:00+08'
flow ev-res-b acct-r refund -5000 RFB '2024-03-04 10:02:00+08'
trans RFB sent '2024-03-04 11:00:00+08'
# C: failed (returned) and its credit never restored.
refund_req RFC 3000 failed ev-res-c '2024-03-08 09:00:00+08'
trans RFC requested '2024-03-08 09:00:00+08'
trans RFC approved '2024-03-08 09:20:00+08'
flow ev-res-c acct-r refund -3000 RFC '2024-03-08 09:21:00+08'
trans RFC sent '2024-03-08 11:00:00+08'
trans RFC failed '2024-03-08 16:00:00+08'
# D: paid out without ever being sent.
refund_req RFD 2000 paid_out ev-res-d '2024-03-08 09:00:00+08'
trans RFD requested '2024-03-08 09:00:00+08'
trans RFD approved '2024-03-08 09:30:00+08'
flow ev-res-d acct-r refund -2000 RFD '2024-03-08 09:31:00+08'
trans RFD paid_out '2024-03-08 12:00:00+08'
# E: sent without its reservation in the ledger (outstanding, age 0).
refund_req RFE 1000 sent ev-res-e '2024-03-08 09:00:00+08'
trans RFE requested '2024-03-08 09:00:00+08'
trans RFE approved '2024-03-08 09:40:00+08'
trans RFE sent '2024-03-08 13:00:00+08'
# F: failed, and its credit restored twice.
refund_req RFF 1500 failed ev-res-f '2024-03-08 09:00:00+08'
trans RFF requested '2024-03-08 09:00:00+08'
trans RFF approved '2024-03-08 09:50:00+08'
flow ev-res-f acct-r refund -1500 RFF '2024-03-08 09:51:00+08'
trans RFF sent '2024-03-08 10:30:00+08'
trans RFF failed '2024-03-08 14:00:00+08'
flow ev-rst-f1 acct-r refund 1500 RFF '2024-03-08 14:01:00+08'
flow ev-rst-f2 acct-r refund 1500 RFF '2024-03-08 14:02:00+08'
# G: its state says approved, its audit says only requested.
refund_req RFG 700 approved ev-res-g '2024-03-08 09:00:00+08'
trans RFG requested '2024-03-08 09:00:00+08'
# A bank payout in the ledger that is no request's reservation.
flow ev-raw-1 acct-r refund -600 payout-raw-1 '2024-03-08 17:00:00+08'
# debit TXN AMOUNT REMITTANCE: a debit booked on 03-08 -> its record id
debit() {
    q "INSERT INTO statement_records (receiving_account, bank_txn_id, value_date, booking_date,
       amount_fen, currency, direction, counterparty_name, remittance_info, event_id, state)
       VALUES ('6222000011112222', '$1', '2024-03-08', '2024-03-08', $2, 'CNY', 'debit',
       'Zhang San', '$3', 'ev-rec-$1', 'ignored') RETURNING id"
}
debit TXN-PAYOUT-A 10000 'payout rfa' >/dev/null # paid out: settled
DB=$(debit TXN-PAYOUT-B 5000 'REFUND RFB')       # still sent: the bank paid, the system waits
DX=$(debit TXN-PAYOUT-X 4200 'refund RF0000099999') # no such refund
debit TXN-FEE-1 300 'fee' >/dev/null
expect_rc 1 "$WORK/d8" close --date 2024-03-08 --csv "$WORK/d8.csv"
# figure NAME COUNT FEN: the CSV figure row
figure() {
    grep -qx "2024-03-08,figure,$1,,,,,,$3,,$2,,,,,,,," "$WORK/d8.csv" ||
        fail "figure $1: want $2 / $3 fen: $(grep ",figure,$1," "$WORK/d8.csv")"
}
figure refunds_approved 5 17500
figure refunds_sent 4 15500
figure refunds_paid_out 2 12000
figure refunds_failed 2 4500
figure refunds_restored 2 3000
figure refunds_outstanding 2 6000
grep -qx "2024-03-08,refund,outstanding,acct-r,$RR,,TUREFUND01,,5000,,,4,,,,,,,RFB" "$WORK/d8.csv" ||
    fail "outstanding RFB row: $(grep ',refund,' "$WORK/d8.csv")"
grep -qx "2024-03-08,refund,outstanding,acct-r,$RR,,TUREFUND01,,1000,,,0,,,,,,,RFE" "$WORK/d8.csv" ||
    fail "outstanding RFE row"
grep -qx "2024-03-08,refund,paid_out,acct-r,$RR,,TUREFUND01,,10000,,,,,,,,,,RFA" "$WORK/d8.csv" ||
    fail "paid_out RFA row"
has "$WORK/d8" "^  outstanding +RFB +acct-r +50.00  age 4 days" "outstanding in the table"
has "$WORK/d8" "^break refund_outstanding_too_long: account=acct-r record_id=$RR order_code=TUREFUND01 amount_fen=5000 age_days=4 .* refund_id=RFB" "outstanding_too_long"
has "$WORK/d8" "^break refund_restore_missing: account=acct-r .*amount_fen=3000 .* refund_id=RFC" "restore_missing"
has "$WORK/d8" "^break refund_paid_without_sent: account=acct-r .*amount_fen=2000 .* refund_id=RFD" "paid_without_sent"
has "$WORK/d8" "^break refund_sent_unreserved: account=acct-r .*amount_fen=1000 .* refund_id=RFE" "sent_unreserved"
has "$WORK/d8" "^break refund_restore_wrong: account=acct-r .*amount_fen=1500 expected_fen=1500 detail=restored more than once refund_id=RFF" "restore_wrong"
has "$WORK/d8" "^break refund_payout_without_request: account=acct-r flow_id=[0-9]+ amount_fen=-600 detail=bank payout payout-raw-1 names no refund request" "payout_without_request"
has "$WORK/d8" "^break refund_state_unaudited: account=acct-r .*amount_fen=700 detail=state approved, its last audited transition requested refund_id=RFG" "state_unaudited"
has "$WORK/d8" "^break refund_debit_unmatched: account=acct-r record_id=$DB bank_txn_id=TXN-PAYOUT-B order_code=TUREFUND01 amount_fen=5000 expected_fen=5000 detail=debit names refund RFB, which is sent, not paid out refund_id=RFB" "debit of a sent refund"
has "$WORK/d8" "^break refund_debit_unmatched: record_id=$DX bank_txn_id=TXN-PAYOUT-X amount_fen=4200 detail=debit names refund RF0000099999, which does not exist" "debit naming no refund"
[ "$(grep -c '^break refund_' "$WORK/d8")" = 9 ] || fail "refund breaks: $(grep '^break refund_' "$WORK/d8")"
hasnt "$WORK/d8" "refund_id=RFA" "the clean refund is a break"
[ "$(q "SELECT refunds_sent || '/' || refunds_sent_fen || ' ' || refunds_outstanding_fen
        FROM closes WHERE business_date = '2024-03-08'")" = "4/15500 6000" ] ||
    fail "stored refund figures"
# The refunds are in the hashed content: a late change to one of the day's refunds is caught.
trans RFB paid_out '2024-03-08 20:00:00+08'
expect_rc 1 "$WORK/d8b" close --date 2024-03-08
has "$WORK/d8b" "^break closed_day_changed: " "a changed refund did not change the closed day"
hasnt "$WORK/d8b" "refund_outstanding_too_long" "RFB still outstanding after it was paid out"

echo "== a day closed in the older content format (v1, before refunds) closed again"
q "UPDATE closes SET content = replace(content, 'close v2', 'close v1') WHERE business_date = '2024-03-01'"
q "UPDATE closes SET content_sha256 = encode(sha256(convert_to(content, 'UTF8')), 'hex')
   WHERE business_date = '2024-03-01'"
expect_rc 1 "$WORK/d1v" close --date 2024-03-01
has "$WORK/d1v" "^break closed_day_changed: detail=close [0-9]+ stored [0-9a-f]{64}, now [0-9a-f]{64} \(stored in an older content format" "older format not said"
hasnt "$WORK/d1v" "close_tampered" "a v1 close with its own hash is not tampered"

echo "PASS"
