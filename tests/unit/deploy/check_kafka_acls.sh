#!/usr/bin/env bash
# Checks the grants deploy/production/kafka-acls.sh makes (its DRY_RUN output): every topic of
# kafka-topics.sh and its dead-letter twin written by exactly one principal, the money topics by
# the one issue 15 names, each consumer group read by its own service only, no wildcard principal
# or All operation, no password on any command line.
# Usage: check_kafka_acls.sh SOURCE_DIR
set -euo pipefail
src=$1
out=$(DRY_RUN=1 bash "$src/deploy/production/kafka-acls.sh")
fail=0
bad() {
    echo "kafka_acls: $*" >&2
    fail=1
}

# "topic principal" for every Write grant; "group principal" for every group grant.
writes=$(printf '%s\n' "$out" | awk '/--operation Write/ {
    for (i = 1; i <= NF; i++) { if ($i == "--allow-principal") p = $(i + 1); if ($i == "--topic") t = $(i + 1) }
    sub("^User:", "", p); print t, p }' | sort -u)
groups=$(printf '%s\n' "$out" | awk '/--group/ {
    for (i = 1; i <= NF; i++) { if ($i == "--allow-principal") p = $(i + 1); if ($i == "--group") g = $(i + 1) }
    sub("^User:", "", p); print g, p }' | sort -u)

writer_of() {
    printf '%s\n' "$writes" | awk -v t="$1" '$1 == t { print $2 }' | paste -sd, -
}
expect_writer() {
    local got
    got=$(writer_of "$1")
    [ "$got" = "$2" ] || bad "$1 is written by '$got', want '$2' alone"
}
expect_writer payment.matched reconciliation
expect_writer bank.statement.records statement-import
expect_writer usage.recorded gateways
# Usage refunds come from the gateways; support-approved bank payouts from topupctl's outbox rows,
# which order-intake's relay publishes (deploy/README.md): the ledger checks each payout against
# its approved refund request in PostgreSQL, whoever wrote it.
expect_writer refund.issued gateways,order-intake
expect_writer topup.requested order-intake
expect_writer account.flows ledger

# Every topic the cluster gets (kafka-topics.sh) has one writer; so has each dead-letter twin.
topics=$(sed -n '/^TOPICS=(/,/^)/p' "$src/deploy/production/kafka-topics.sh" | grep -o '"[a-z.]* ' |
    tr -d '" ')
consumed=$(sed -n '/^CONSUMED=(/,/)/p' "$src/deploy/production/kafka-topics.sh" |
    sed 's/CONSUMED=(//; s/)//' | tr ' ' '\n' | grep -E '^[a-z.]+$' || true)
[ -n "$topics" ] && [ -n "$consumed" ] || bad "cannot read the topics of kafka-topics.sh"
for t in $topics; do
    n=$(writer_of "$t" | tr ',' '\n' | grep -c . || true)
    want=1
    [ "$t" = refund.issued ] && want=2
    [ "$n" = "$want" ] || bad "$t has $n writers"
done
for t in $consumed; do
    n=$(writer_of "$t.dlq" | tr ',' '\n' | grep -c . || true)
    [ "$n" = 1 ] || bad "$t.dlq has $n writers"
done

group_readers() {
    printf '%s\n' "$groups" | awk -v g="$1" '$1 == g { print $2 }' | paste -sd, -
}
[ "$(group_readers reconciliation)" = reconciliation ] || bad "group reconciliation: $(group_readers reconciliation)"
[ "$(group_readers ledger)" = ledger ] || bad "group ledger: $(group_readers ledger)"

if printf '%s\n' "$out" | grep -qE 'User:\*|--operation All|--allow-host'; then
    bad "a wildcard principal, an All operation or a host rule"
fi
if printf '%s\n' "$out" | grep -qE 'password=[^<]'; then
    bad "a password on a command line"
fi
# Nobody but reconciliation may even be granted anything on payment.matched but Read.
if printf '%s\n' "$out" | grep -- '--topic payment.matched$' | grep -v 'User:reconciliation' |
    grep -q -- '--operation Write'; then
    bad "payment.matched writable by another principal"
fi
nw=$(printf '%s\n' "$writes" | grep -c . || true)
echo "kafka_acls: $nw topic write grants checked"
[ "$fail" = 0 ]
