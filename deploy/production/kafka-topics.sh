#!/usr/bin/env bash
# Creates the production topics on a real Apache Kafka cluster (RF 3, min.insync.replicas 2).
# Not run by the tests. usage: KAFKA_BIN=/opt/kafka/bin BOOTSTRAP=kafka-1:9092 ./kafka-topics.sh
# [--command-config client.properties]
set -euo pipefail
KAFKA_BIN=${KAFKA_BIN:-/opt/kafka/bin}
BOOTSTRAP=${BOOTSTRAP:?set BOOTSTRAP to the cluster, e.g. kafka-1:9092}
DAY_MS=86400000

# topic partitions retention_days; every consumed topic also gets a .dlq twin (3 partitions, 90 d).
TOPICS=(
    "topup.requested 12 14"
    "topup.cancelled 12 14"
    "topup.expired 12 14"
    "bank.statement.records 6 30"
    "payment.matched 12 30"
    "usage.recorded 48 7"
    "refund.issued 6 30"
    "account.flows 24 30"
)
CONSUMED=(topup.requested topup.cancelled topup.expired bank.statement.records payment.matched
    usage.recorded refund.issued)

create() {
    local topic=$1 parts=$2 days=$3
    shift 3
    "$KAFKA_BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" "$@" --create --if-not-exists \
        --topic "$topic" --partitions "$parts" --replication-factor 3 \
        --config min.insync.replicas=2 --config unclean.leader.election.enable=false \
        --config retention.ms=$((days * DAY_MS))
}

for t in "${TOPICS[@]}"; do
    # shellcheck disable=SC2086
    create $t "${@}"
done
for t in "${CONSUMED[@]}"; do
    create "$t.dlq" 3 90 "${@}"
done
