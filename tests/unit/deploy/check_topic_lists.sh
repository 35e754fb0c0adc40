#!/usr/bin/env bash
# The dev broker's built-in topics (services/dev-broker/cluster.c) and their default partition
# count (DEVBROKER_PARTITIONS) agree with deploy/kafka/topics.list, which the real brokers of the
# local stack and of deploy/local/kafka-cluster.sh are created from: same names, same counts.
set -euo pipefail
SRC=${1:?usage: check_topic_lists.sh SOURCE_DIR}
CLUSTER_C=$SRC/services/dev-broker/cluster.c
LIST=$SRC/deploy/kafka/topics.list
fail() {
    printf 'check_topic_lists: FAIL: %s\n' "$*" >&2
    exit 1
}

# The string literals of the cluster_builtin_topics array.
mock=$(sed -n '/cluster_builtin_topics\[\] = {/,/};/p' "$CLUSTER_C" | grep -o '"[^"]*"' | tr -d '"' |
    sort)
[ -n "$mock" ] || fail "no cluster_builtin_topics array in $CLUSTER_C"
real=$(awk '$1 !~ /^#/ && NF == 2 {print $1}' "$LIST" | sort)
[ -n "$real" ] || fail "no topics in $LIST"
if [ "$mock" != "$real" ]; then
    diff <(echo "$mock") <(echo "$real") >&2 || true
    fail "the dev broker's topics (<) and topics.list (>) differ"
fi
# The dev broker gives every built-in topic DEVBROKER_PARTITIONS (default below) partitions.
def=$(sed -n 's/.*{"DEVBROKER_PARTITIONS", CONFIG_INT, "\([0-9]*\)".*/\1/p' \
    "$SRC/services/dev-broker/main.c" | head -1)
[ -n "$def" ] || fail "no DEVBROKER_PARTITIONS default in services/dev-broker/main.c"
bad=$(awk -v d="$def" '$1 !~ /^#/ && NF == 2 && $2 != d {print $1 "=" $2}' "$LIST")
[ -z "$bad" ] || fail "topics.list counts differ from the dev broker's default $def: $bad"
printf 'check_topic_lists: ok: %d topics, %s partitions each, in both lists\n' \
    "$(echo "$real" | wc -l)" "$def"
