#!/usr/bin/env bash
# Kafka identities and ACLs for production: one SCRAM-SHA-512 principal per service, each topic
# written by its one producer, each consumer group read by its one service. Run after
# kafka-topics.sh, as an admin principal (super.users), against a cluster with
# authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer and
# allow.everyone.if.no.acl.found=false, so that what is not granted here is refused.
#
#   KAFKA_BIN=/opt/kafka/bin BOOTSTRAP=kafka-1:9092 SECRETS_DIR=/etc/topup/kafka-secrets \
#       ./kafka-acls.sh --command-config admin.properties
#
# SECRETS_DIR holds one file per principal (<principal>.password, mode 0400), the password its
# service reads through KAFKA_SASL_PASSWORD_FILE. DRY_RUN=1 prints the commands instead of running
# them, without any password (tests/unit/deploy/check_kafka_acls.sh checks the grants that way). Re-running is harmless: SCRAM credentials are replaced, ACLs are a set.
set -euo pipefail
KAFKA_BIN=${KAFKA_BIN:-/opt/kafka/bin}
BOOTSTRAP=${BOOTSTRAP:-}
SECRETS_DIR=${SECRETS_DIR:-}
DRY_RUN=${DRY_RUN:-0}
if [ "$DRY_RUN" != 1 ]; then
    : "${BOOTSTRAP:?set BOOTSTRAP to the cluster, e.g. kafka-1:9092}"
    : "${SECRETS_DIR:?set SECRETS_DIR to the folder of <principal>.password files}"
fi
BOOTSTRAP=${BOOTSTRAP:-kafka-1:9092}

# principal: the service that uses it (KAFKA_SASL_USERNAME of that service).
PRINCIPALS=(order-intake reconciliation ledger statement-import gateways topupctl)

# topic writer: the only principal allowed to produce to the topic. A dead-letter topic is
# written by the service that consumes its original.
WRITERS=(
    "topup.requested order-intake"
    "topup.cancelled order-intake"
    "topup.expired order-intake"
    "bank.statement.records statement-import"
    "payment.matched reconciliation"
    "usage.recorded gateways"
    "refund.issued gateways"
    "refund.issued order-intake"
    "account.flows ledger"
    "topup.requested.dlq reconciliation"
    "topup.cancelled.dlq reconciliation"
    "topup.expired.dlq reconciliation"
    "bank.statement.records.dlq reconciliation"
    "payment.matched.dlq ledger"
    "usage.recorded.dlq ledger"
    "refund.issued.dlq ledger"
)

# principal group topics...: the consumer group (RECON_GROUP, LEDGER_GROUP, the gateways' own)
# and what it reads. topupctl reads the dead-letter topics (inspection), in groups topupctl-*.
READERS=(
    "reconciliation reconciliation topup.requested topup.cancelled topup.expired bank.statement.records"
    "ledger ledger payment.matched usage.recorded refund.issued"
    "gateways gateways account.flows"
    "topupctl topupctl- topup.requested.dlq topup.cancelled.dlq topup.expired.dlq bank.statement.records.dlq payment.matched.dlq usage.recorded.dlq refund.issued.dlq"
)

run() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '%s\n' "$*"
    else
        "$@"
    fi
}

# A properties file holding the principal's SCRAM credential (mode 0600, removed at exit), so
# that the password never stands on a command line (ps, shell history, audit logs). In a file the
# value goes without the brackets --add-config needs; passwords are hex or base64 (no commas).
scram_file() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '<file with SCRAM-SHA-512=iterations=8192,password=<secret>>'
        return
    fi
    local f="$SECRETS_DIR/$1.password"
    [ -r "$f" ] || {
        echo "kafka-acls: $f is missing: one password file per principal" >&2
        exit 1
    }
    local out="$WORK/$1.properties"
    (umask 077 && printf 'SCRAM-SHA-512=iterations=8192,password=%s\n' "$(tr -d '\n' <"$f")" >"$out")
    printf '%s' "$out"
}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

configs() {
    run "$KAFKA_BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" "$@"
}
acls() {
    run "$KAFKA_BIN/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" "$@"
}

for p in "${PRINCIPALS[@]}"; do
    configs "$@" --alter --entity-type users --entity-name "$p" --add-config-file "$(scram_file "$p")"
done

for w in "${WRITERS[@]}"; do
    read -r topic principal <<<"$w"
    # Idempotent producers (every service's) need Write on the topic, IdempotentWrite on the
    # cluster (implied by Write since Kafka 3.0, granted for older brokers), Describe to look it up.
    acls "$@" --add --allow-principal "User:$principal" --operation Write --operation Describe \
        --topic "$topic"
done
for p in order-intake reconciliation ledger statement-import gateways; do
    acls "$@" --add --allow-principal "User:$p" --operation IdempotentWrite --cluster
done

for r in "${READERS[@]}"; do
    read -r principal group topics <<<"$r"
    pattern=()
    if [ "${group: -1}" = - ]; then
        pattern=(--resource-pattern-type prefixed)
    fi
    acls "$@" --add --allow-principal "User:$principal" --operation Read --operation Describe \
        --group "$group" "${pattern[@]}"
    for t in $topics; do
        acls "$@" --add --allow-principal "User:$principal" --operation Read --operation Describe \
            --topic "$t"
    done
done
