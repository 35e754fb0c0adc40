#!/usr/bin/env bash
# Runs one integration test against the shared local stack, in a fresh database of its own.
#
#   tests/with-stack.sh <test-name> <command> [args...]
#
# Sources $TOPUP_STACK_DIR/env (written by deploy/local/stack.sh start), recreates the database
# t_<test-name> from the migrated template `topup`, points PG_CONNINFO at it (REDIS_*,
# KAFKA_BOOTSTRAP_SERVERS, DEVBROKER_CONTROL and TOPUP_PG_* stay as the stack wrote them), exports
# TOPUP_STACK_ENV, TOPUP_TEST_DB, TOPUP_BUILD_DIR, TOPUP_SOURCE_DIR and TOPUP_SAMPLES_DIR, then
# execs the command.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: tests/with-stack.sh <test-name> <command> [args...]" >&2
    exit 2
fi
test_name=$1
shift

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=$(cd "$SCRIPT_DIR/.." && pwd)
STACK_DIR=${TOPUP_STACK_DIR:-$CHECKOUT/.local/stack}
ENV_FILE=$STACK_DIR/env
# The caller's build/source/samples directories win over anything in the env file.
build_dir=${TOPUP_BUILD_DIR:-$CHECKOUT/build}
source_dir=${TOPUP_SOURCE_DIR:-$CHECKOUT}
samples_dir=${TOPUP_SAMPLES_DIR:-$CHECKOUT/../shared/samples}

# Attempts at CREATE DATABASE while something still holds the template open (0.5 s apart).
CREATE_TRIES=40

if [ ! -f "$ENV_FILE" ]; then
    echo "with-stack: no stack env at $ENV_FILE: run deploy/local/stack.sh start first" >&2
    exit 1
fi
# shellcheck source=/dev/null
. "$ENV_FILE"

# Database name: t_ + the test name in [a-z0-9_], at most 63 bytes (PostgreSQL's identifier limit);
# a long name keeps a hash of the whole name so that two long names never collide.
db=t_$(printf '%s' "$test_name" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9_' '_')
if [ ${#db} -gt 63 ]; then
    db=${db:0:54}_$(printf '%s' "$test_name" | md5sum | cut -c1-8)
fi

psql_admin() {
    PGOPTIONS='-c client_min_messages=warning' "$TOPUP_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$TOPUP_PG_ADMIN_CONNINFO" "$@"
}

# WITH (FORCE) ends sessions a previous run of this test may have left behind.
psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
created=0
for _ in $(seq 1 "$CREATE_TRIES"); do
    if out=$(psql_admin -c "CREATE DATABASE \"$db\" TEMPLATE topup" 2>&1); then
        created=1
        break
    fi
    case "$out" in
    *"is being accessed by other users"*) sleep 0.5 ;;
    *)
        echo "with-stack: CREATE DATABASE $db failed: $out" >&2
        exit 1
        ;;
    esac
done
if [ "$created" != 1 ]; then
    echo "with-stack: template database topup stayed busy; CREATE DATABASE $db gave up: $out" >&2
    exit 1
fi

export PG_CONNINFO="host=$TOPUP_PG_HOST port=$TOPUP_PG_PORT dbname=$db user=topup"
export TOPUP_STACK_ENV=$ENV_FILE
export TOPUP_TEST_DB=$db
export TOPUP_BUILD_DIR=$build_dir
export TOPUP_SOURCE_DIR=$source_dir
export TOPUP_SAMPLES_DIR=$samples_dir
exec "$@"
