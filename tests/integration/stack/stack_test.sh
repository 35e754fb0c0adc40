#!/usr/bin/env bash
# Checks the local stack through the env that with-stack.sh gives every integration test.
# usage (via tests/with-stack.sh): stack_test.sh <path to topup-devbroker>
set -euo pipefail

DEVBROKER=$1
passed=0
ok() {
    echo "ok - $*"
    passed=$((passed + 1))
}
fail() {
    echo "not ok - $*"
    echo "$passed passed, 1 failed"
    exit 1
}

for v in PG_CONNINFO REDIS_HOST REDIS_PORT KAFKA_BOOTSTRAP_SERVERS DEVBROKER_CONTROL \
    TOPUP_TEST_DB TOPUP_SOURCE_DIR TOPUP_STACK_ENV; do
    [ -n "${!v:-}" ] || fail "$v is set"
done
ok "stack environment is complete"

# ------------------------------------------------------------------ PostgreSQL
psql_t() { psql -X -At -v ON_ERROR_STOP=1 "$PG_CONNINFO" "$@"; }
db=$(psql_t -c "SELECT current_database()") || fail "PostgreSQL answers at $PG_CONNINFO"
[ "$db" = "$TOPUP_TEST_DB" ] || fail "connected to the test's own database ($db != $TOPUP_TEST_DB)"
ok "PostgreSQL answers, in the test's own database $db"

# Every table some migration creates (and no later one drops) must exist in the copy.
sql_names() {
    cat "$TOPUP_SOURCE_DIR"/deploy/migrations/*.sql | { grep -ioE "$1 +[a-z0-9_.\"]+" || true; } |
        awk '{print tolower($NF)}' | tr -d '"' | sort -u
}
tables=$(sql_names 'create table( if not exists)?')
dropped=$(sql_names 'drop table( if exists)?')
tables=$(comm -23 <(echo "$tables") <(echo "$dropped") | sed '/^$/d')
count=$(echo "$tables" | grep -c . || true)
[ "$count" -ge 5 ] || fail "found the schema's tables in deploy/migrations (only $count)"
for t in $tables; do
    [ "$(psql_t -c "SELECT to_regclass('$t') IS NOT NULL")" = t ] || fail "table $t exists"
done
ok "all $count migrated tables exist"
psql_t -c "CREATE TEMP TABLE stack_probe (x int); INSERT INTO stack_probe VALUES (1)" >/dev/null ||
    fail "the test database accepts writes"
ok "the test database accepts writes"

# ------------------------------------------------------------------ Redis
rc() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"; }
[ "$(rc PING)" = PONG ] || fail "Redis answers PING at $REDIS_HOST:$REDIS_PORT"
key=stack:selftest:$$:$RANDOM
[ "$(rc SET "$key" v1 EX 60)" = OK ] && [ "$(rc GET "$key")" = v1 ] || fail "Redis stores a key"
rc DEL "$key" >/dev/null
ok "Redis answers PING and stores a key"

# ------------------------------------------------------------------ dev broker
meta=$(kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -m 10 -L) || fail "kcat -L against $KAFKA_BOOTSTRAP_SERVERS"
expect=${DEVBROKER_PARTITIONS:-4}
for base in topup.requested topup.cancelled topup.expired bank.statement.records \
    payment.matched usage.recorded refund.issued account.flows; do
    for t in "$base" "$base.dlq"; do
        n=$(echo "$meta" | sed -n "s/^ *topic \"$t\" with \([0-9]*\) partitions:.*/\1/p")
        [ -n "$n" ] || fail "topic $t is listed by kcat -L"
        if [ -z "${DEVBROKER_TOPIC_PARTITIONS:-}" ]; then
            [ "$n" = "$expect" ] || fail "topic $t has $expect partitions (has $n)"
        fi
    done
done
ok "the broker lists every topic and .dlq twin with $expect partitions"

# A produce/consume round trip on a topic of this test's own (shared topics carry others' events).
topic=stack.selftest.$$.$RANDOM
out=$("$DEVBROKER" ctl topic-create "$topic" 1) || fail "control channel creates a topic ($out)"
payload="hello-$RANDOM"
echo "$payload" | kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -P -t "$topic" -k k1 ||
    fail "kcat produces to $topic"
got=$(timeout 60 kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "$topic" -o beginning -c 1 -f '%k=%s\n' \
    2>/dev/null) || fail "kcat consumes from $topic"
[ "$got" = "k1=$payload" ] || fail "consumed what was produced ($got)"
ok "a message produced with kcat is consumed back"

# The control channel answers, and refuses what it cannot do.
[ "$("$DEVBROKER" ctl ping)" = "ok pong" ] || fail "control channel answers ping"
"$DEVBROKER" ctl rtt 1 0 >/dev/null || fail "control channel sets a broker's rtt"
set +e
"$DEVBROKER" ctl broker-down 99 >/dev/null
st=$?
set -e
[ "$st" = 1 ] || fail "control channel refuses an unknown broker (exit $st)"
ok "the control channel answers and refuses an unknown broker"

echo "$passed passed, 0 failed"
