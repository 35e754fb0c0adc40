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

KIND=${TOPUP_KAFKA:-devbroker}
case "$KIND" in
kafka) broker_vars="TOPUP_KAFKA_PID_FILE TOPUP_KAFKA_LIBS" ;;
devbroker) broker_vars=DEVBROKER_CONTROL ;;
*) fail "TOPUP_KAFKA is kafka or devbroker (is '$KIND')" ;;
esac
for v in PG_CONNINFO REDIS_HOST REDIS_PORT KAFKA_BOOTSTRAP_SERVERS $broker_vars \
    TOPUP_TEST_DB TOPUP_SOURCE_DIR TOPUP_STACK_ENV; do
    [ -n "${!v:-}" ] || fail "$v is set"
done
ok "stack environment is complete (broker: $KIND)"

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
[ "$KIND" = kafka ] && expect=${TOPUP_KAFKA_PARTITIONS:-4}
for base in topup.requested topup.cancelled topup.expired bank.statement.records \
    payment.matched usage.recorded refund.issued account.flows; do
    for t in "$base" "$base.dlq"; do
        n=$(echo "$meta" | sed -n "s/^ *topic \"$t\" with \([0-9]*\) partitions:.*/\1/p")
        [ -n "$n" ] || fail "topic $t is listed by kcat -L"
        if [ "$KIND" = kafka ] || [ -z "${DEVBROKER_TOPIC_PARTITIONS:-}" ]; then
            [ "$n" = "$expect" ] || fail "topic $t has $expect partitions (has $n)"
        fi
    done
done
ok "the broker lists every topic and .dlq twin with $expect partitions"

# A produce/consume round trip on a topic of this test's own (shared topics carry others' events).
topic=stack.selftest.$$.$RANDOM
if [ "$KIND" = kafka ]; then
    out=$(java -cp "$TOPUP_KAFKA_LIBS/*" -Dlog4j.configuration=file:/dev/null \
        "$TOPUP_SOURCE_DIR/deploy/kafka/StackTopics.java" "$KAFKA_BOOTSTRAP_SERVERS" "$topic=1" 2>&1) ||
        fail "StackTopics creates a topic ($out)"
else
    out=$("$DEVBROKER" ctl topic-create "$topic" 1) || fail "control channel creates a topic ($out)"
fi
payload="hello-$RANDOM"
echo "$payload" | kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -P -t "$topic" -k k1 ||
    fail "kcat produces to $topic"
got=$(timeout 60 kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "$topic" -o beginning -c 1 -f '%k=%s\n' \
    2>/dev/null) || fail "kcat consumes from $topic"
[ "$got" = "k1=$payload" ] || fail "consumed what was produced ($got)"
ok "a message produced with kcat is consumed back"

if [ "$KIND" = kafka ]; then
    # Apache Kafka: the process the pid file names is the broker, and it creates no topic by
    # itself (every topic is created with its partition count; a typo must fail, not appear).
    pid=$(cat "$TOPUP_KAFKA_PID_FILE") || fail "the Kafka pid file is readable"
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q ' kafka.Kafka ' ||
        fail "pid $pid in $TOPUP_KAFKA_PID_FILE is the Kafka broker"
    ok "the Kafka broker runs as pid $pid"
    missing=stack.no-such-topic.$$.$RANDOM
    set +e
    perr=$(echo x | timeout 60 kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -P -t "$missing" \
        -X message.timeout.ms=5000 2>&1)
    set -e
    meta=$(kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -m 10 -L -t "$missing" 2>&1 || true)
    echo "$meta" | grep -q "topic \"$missing\" with [1-9]" &&
        fail "producing to an unknown topic does not create it ($meta)"
    echo "$perr" | grep -qi 'unknown\|not.*exist\|not available\|timed out' ||
        fail "producing to an unknown topic fails with a clear error ($perr)"
    ok "an unknown topic is refused, not created (auto.create.topics.enable=false)"
    echo "$passed passed, 0 failed"
    exit 0
fi

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
