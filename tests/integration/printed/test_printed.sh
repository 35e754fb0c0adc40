#!/usr/bin/env bash
# The commands the project prints for a newcomer run as printed, against the test's stack:
#  - `deploy/dev.sh token` (the end of `dev.sh up`): the token it prints signs in, and each line
#    it shows after "$ " runs and answers (the curl gets the demo account's balance);
#  - proto/README.md: the UsageRecorded produced from the shell reaches the ledger, and the
#    read-back command decodes that account's flow from its partition (the README's first line,
#    `. .local/stack/env`, is the only one left out: the test's stack env is loaded already).
#   test_printed.sh ORDER_INTAKE LEDGER
set -euo pipefail
INTAKE=$1
LEDGER=$2
SRC=${TOPUP_SOURCE_DIR:?run through tests/with-stack.sh (ctest does)}
: "${TOPUP_STACK_ENV:?}" "${PG_CONNINFO:?}" "${KAFKA_BOOTSTRAP_SERVERS:?}"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    for f in "$WORK"/*.log; do
        [ -f "$f" ] && { echo "---- $f" >&2; tail -n 20 "$f" >&2; }
    done
    exit 1
}

# ---- dev.sh token
INTAKE_PORT_FILE=$WORK/port INTAKE_HTTP_PORT=0 "$INTAKE" >"$WORK/intake.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 600); do
    [ -s "$WORK/port" ] && break
    sleep 0.1
done
[ -s "$WORK/port" ] || fail "order-intake did not start"
PORT=$(cat "$WORK/port")
echo "INTAKE_HTTP_PORT=$PORT" >"$WORK/dev.env"
TOPUP_DEV_STACK_ENV=$TOPUP_STACK_ENV TOPUP_DEV_ENV=$WORK/dev.env \
    bash "$SRC/deploy/dev.sh" token >"$WORK/token.out" 2>&1 || fail "dev.sh token: $(cat "$WORK/token.out")"
cat "$WORK/token.out"
grep -q "the Top Up page: http://127.0.0.1:$PORT/\$" "$WORK/token.out" || fail "no page address"
TOKEN=$(grep -E '^v1\.[A-Za-z0-9_-]+\.[0-9]+\.[A-Za-z0-9_-]+$' "$WORK/token.out") ||
    fail "no whole token on a line of its own"
curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/balance" |
    grep -q '"account_id":"acct-demo"' || fail "the printed token does not sign in as acct-demo"
n=0
while IFS= read -r line; do
    cmd=${line#  \$ }
    out=$(cd "$WORK" && bash -c "$cmd" 2>&1) || fail "printed command failed: $cmd: $out"
    case $cmd in
    curl*) [[ $out == *'"balance":"0.00"'* ]] || fail "the printed curl answered: $out" ;;
    *token\ issue*) [[ $out == v1.* ]] || fail "the printed token command printed: $out" ;;
    esac
    n=$((n + 1))
done < <(grep '^  \$ ' "$WORK/token.out")
[ "$n" -ge 2 ] || fail "dev.sh token showed $n commands"

# ---- proto/README.md: produce a usage, read its flow back
LEDGER_GROUP=ledger-printed-$$ "$LEDGER" >"$WORK/ledger.log" 2>&1 &
PIDS+=($!)
block() { # the n-th ```sh block of the README's section "$1"
    awk -v sec="$1" -v want="$2" '
        /^## / { in_sec = index($0, sec) > 0 }
        in_sec && /^```sh$/ { n++; on = (n == want); next }
        /^```$/ { on = 0 }
        on { print }' "$SRC/proto/README.md"
}
ln -s "$SRC/proto" "$WORK/proto"
produce=$(block 'Producing a `UsageRecorded`' 1 | grep -v '^\. \.local/stack/env')
readback=$(block 'Producing a `UsageRecorded`' 2)
[ -n "$produce" ] && [ -n "$readback" ] || fail "README blocks not found"
(cd "$WORK" && bash -euo pipefail -c "$produce") >"$WORK/produce.out" 2>&1 ||
    fail "the README's produce block failed: $(cat "$WORK/produce.out")"
decoded=""
for _ in $(seq 1 120); do
    decoded=$(cd "$WORK" && bash -o pipefail -c "$readback" 2>/dev/null) || decoded=""
    [[ $decoded == *req-0001* ]] && break
    sleep 0.5
done
echo "$decoded"
[[ $decoded == *'account_id: "acct-demo"'* && $decoded == *req-0001* && $decoded == *-125* ]] ||
    fail "the README's read-back did not decode acct-demo's flow: $decoded"
echo "ok"
