#!/usr/bin/env bash
# Developer entry point: start everything locally, run every test, stop, show status.
#
#   deploy/dev.sh up       install missing packages, build (Release) into build/, start the local
#                          stack (.local/stack; its Kafka with SCRAM and ACLs, each service its
#                          own principal) and every service that is built, in the background
#   deploy/dev.sh down     stop the services, then the stack
#   deploy/dev.sh status   the stack's and the services' state
#   deploy/dev.sh token [ACCOUNT]
#                          a sign-in token for ACCOUNT (default acct-demo, valid 24 h), the page's
#                          address and a curl that uses it (up ends with this)
#   deploy/dev.sh test     install missing packages, build (Debug) into build/, check formatting,
#                          run the unit, integration and chaos tests (ctest starts a stack of
#                          its own on free ports), then all of them again built with ASan+UBSan
#                          into build-asan/ (TOPUP_TEST_SANITIZE=0 skips that pass); non-zero
#                          exit if anything failed
#
# Logs and pid files of the services: .local/logs/<service>.log, .local/run/<service>.pid.
# The services get the stack's env file, then .local/dev.env if it exists (your own settings).
set -euo pipefail

CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$CHECKOUT"

BUILD_DIR=$CHECKOUT/build
LOCAL_DIR=$CHECKOUT/.local
# The account `up` and `token` sign in as.
DEMO_ACCOUNT=acct-demo
# Your own settings for the services (git-ignored); TOPUP_DEV_ENV names another file.
DEV_ENV=${TOPUP_DEV_ENV:-$LOCAL_DIR/dev.env}
LOG_DIR=$LOCAL_DIR/logs
RUN_DIR=$LOCAL_DIR/run
STACK_SH=$CHECKOUT/deploy/local/stack.sh
JOBS=${TOPUP_JOBS:-2}
# Started in this order, stopped in reverse; a service that is not built yet is skipped.
SERVICES=(ledger reconciliation order-intake)
# Seconds a service gets to finish its batch after SIGTERM before it is killed.
STOP_GRACE_S=20

say() { printf 'dev: %s\n' "$*"; }
die() {
    printf 'dev: error: %s\n' "$*" >&2
    exit 1
}

build() {
    local type=$1 dir=$2
    shift 2
    cmake -S "$CHECKOUT" -B "$dir" -DCMAKE_BUILD_TYPE="$type" "$@"
    cmake --build "$dir" -j "$JOBS"
}

# The service's executable: build/services/<name>/<name> or .../topup-<name>.
service_bin() {
    local name=$1 c
    for c in "$BUILD_DIR/services/$name/$name" "$BUILD_DIR/services/$name/topup-$name" \
        "$BUILD_DIR/services/$name/topup_$name"; do
        if [ -f "$c" ] && [ -x "$c" ]; then
            echo "$c"
            return 0
        fi
    done
    return 1
}

service_pid() {
    local pid
    pid=$(cat "$RUN_DIR/$1.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# "http://127.0.0.1:PORT" for every *HTTP_PORT setting in the service's configuration table.
service_urls() {
    local bin=$1 var def
    "$bin" --help-config 2>/dev/null | sed -n 's/^| `\([A-Z_]*HTTP_PORT\)` | `\([0-9]*\)`.*/\1 \2/p' |
        while read -r var def; do
            echo "http://127.0.0.1:${!var:-$def}"
        done || true
}

service_start() {
    local name=$1 bin pid
    if ! bin=$(service_bin "$name"); then
        say "$name: not built yet (no executable under build/services/$name/), skipped"
        return 0
    fi
    if pid=$(service_pid "$name"); then
        say "$name: already running (pid $pid); 'deploy/dev.sh down' then 'up' to restart it"
        return 0
    fi
    mkdir -p "$LOG_DIR" "$RUN_DIR"
    (
        set -a
        # shellcheck source=/dev/null
        . "$STACK_ENV"
        # Your own settings for the services (git-ignored), e.g. RECON_RECEIVING_ACCOUNTS=...
        if [ -f "$DEV_ENV" ]; then
            # shellcheck source=/dev/null
            . "$DEV_ENV"
        fi
        # Kafka with SCRAM (the default of `up`): the service's own principal and password.
        if [ -n "${TOPUP_KAFKA_SECRETS_DIR:-}" ] && [ -z "${KAFKA_SASL_USERNAME:-}" ]; then
            KAFKA_SASL_USERNAME=$name
            KAFKA_SASL_PASSWORD_FILE=$TOPUP_KAFKA_SECRETS_DIR/$name.password
        fi
        set +a
        exec setsid "$bin" </dev/null >>"$LOG_DIR/$name.log" 2>&1
    ) &
    pid=$!
    echo "$pid" >"$RUN_DIR/$name.pid"
    sleep 1
    if ! kill -0 "$pid" 2>/dev/null; then
        tail -n 10 "$LOG_DIR/$name.log" >&2 || true
        say "$name: exited at start; log: $LOG_DIR/$name.log"
        rm -f "$RUN_DIR/$name.pid"
        return 1
    fi
    say "$name: running (pid $pid), log $LOG_DIR/$name.log $(service_urls "$bin" | tr '\n' ' ')"
}

service_stop() {
    local name=$1 pid i
    if ! pid=$(service_pid "$name"); then
        rm -f "$RUN_DIR/$name.pid"
        return 0
    fi
    kill -TERM "$pid"
    for i in $(seq 1 $((STOP_GRACE_S * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name (pid $pid) still running after ${STOP_GRACE_S} s of SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$RUN_DIR/$name.pid"
    say "$name: stopped"
}

cmd_up() {
    bash "$CHECKOUT/deploy/install-deps.sh"
    build Release "$BUILD_DIR"
    # Kafka authenticates every service as its own principal, with the production ACLs.
    TOPUP_KAFKA_AUTH=${TOPUP_KAFKA_AUTH:-scram} TOPUP_BUILD_DIR=$BUILD_DIR \
        TOPUP_STACK_DIR=$LOCAL_DIR/stack bash "$STACK_SH" start
    STACK_ENV=$LOCAL_DIR/stack/env
    local s failed=()
    for s in "${SERVICES[@]}"; do
        service_start "$s" || failed+=("$s")
    done
    if [ ${#failed[@]} -gt 0 ]; then
        die "did not start: ${failed[*]} (settings of your own go in $DEV_ENV)"
    fi
    say "everything is up; stop with: bash $CHECKOUT/deploy/dev.sh down"
    say "the stack's environment, for the commands of the READMEs:"
    printf '  $ %s\n' "set -a; . $STACK_ENV; set +a"
    cmd_token "$DEMO_ACCOUNT"
}

# order-intake's address as the services see it (INTAKE_HTTP_PORT from .local/dev.env, or 8080).
intake_url() {
    (
        set -a
        # shellcheck source=/dev/null
        . "$STACK_ENV"
        if [ -f "$DEV_ENV" ]; then
            # shellcheck source=/dev/null
            . "$DEV_ENV"
        fi
        echo "http://127.0.0.1:${INTAKE_HTTP_PORT:-8080}"
    )
}

# A ready sign-in token and the commands that use it, each line after "$ " runnable as printed.
cmd_token() {
    local account=${1:-$DEMO_ACCOUNT} token url
    local topupctl=${TOPUP_BUILD_DIR:-$BUILD_DIR}/services/topupctl/topupctl
    # TOPUP_DEV_STACK_ENV: another stack's env file (the test of these commands uses its own).
    STACK_ENV=${TOPUP_DEV_STACK_ENV:-${STACK_ENV:-$LOCAL_DIR/stack/env}}
    [ -f "$STACK_ENV" ] || die "no stack env at $STACK_ENV: run 'bash deploy/dev.sh up' first"
    [ -x "$topupctl" ] || die "topupctl is not built at $topupctl: run 'bash deploy/dev.sh up' first"
    token=$( (
        set -a
        # shellcheck source=/dev/null
        . "$STACK_ENV"
        set +a
        "$topupctl" token issue --account "$account" --ttl 24h
    )) || die "topupctl token issue failed"
    url=$(intake_url)
    say "the Top Up page: $url/"
    say "sign in as account $account with this token (valid 24 h; paste it into the page's sign-in card):"
    printf '%s\n' "$token"
    say "the API with it, as a gateway would call it:"
    printf '  $ %s\n' "curl -sS -H 'Authorization: Bearer $token' $url/v1/balance"
    say "a token for another account (any id of 1..64 printable characters):"
    printf '  $ %s\n' "(set -a; . $STACK_ENV; $topupctl token issue --account acct-2 --ttl 24h)"
}

cmd_down() {
    local i
    for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
        service_stop "${SERVICES[$i]}"
    done
    TOPUP_STACK_DIR=$LOCAL_DIR/stack bash "$STACK_SH" stop
}

cmd_status() {
    local s pid rc=0
    TOPUP_STACK_DIR=$LOCAL_DIR/stack bash "$STACK_SH" status || rc=$?
    for s in "${SERVICES[@]}"; do
        if pid=$(service_pid "$s"); then
            say "$s: running (pid $pid), log $LOG_DIR/$s.log"
        elif service_bin "$s" >/dev/null; then
            say "$s: stopped"
        else
            say "$s: not built"
        fi
    done
    return "$rc"
}

cmd_test() {
    bash "$CHECKOUT/deploy/install-deps.sh"
    build Debug "$BUILD_DIR"
    local rc=0
    # Formatting (.clang-format) is checked, and reported, but the tests run either way.
    cmake --build "$BUILD_DIR" --target format-check || {
        rc=1
        say "formatting differs from .clang-format: run 'cmake --build build --target format'"
    }
    # The chaos run (label chaos) at its bounded CI size; longer runs by hand: tests/fault/e2e/README.md.
    (cd "$BUILD_DIR" && ctest --output-on-failure -j "$JOBS" -L 'unit|integration|chaos') || rc=$?
    # The whole suite again with AddressSanitizer and UndefinedBehaviorSanitizer (fuzz_smoke
    # already runs under them). TOPUP_TEST_SANITIZE=0 skips this pass for a quick local run.
    if [ "${TOPUP_TEST_SANITIZE:-1}" = 1 ]; then
        build Debug "$CHECKOUT/build-asan" -DTOPUP_SANITIZE=ON
        (cd "$CHECKOUT/build-asan" &&
            ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
                ctest --output-on-failure -j "$JOBS" -L 'unit|integration|chaos' -E fuzz_smoke) || rc=$?
    fi
    return "$rc"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
token) cmd_token "${2:-}" ;;
test) cmd_test ;;
*)
    sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
