#!/usr/bin/env bash
# Runs the Top Up page's browser test: starts order-intake, reconciliation and ledger on the stack,
# issues tokens, installs playwright-core into the build dir and drives Debian's Chromium.
#
#   tests/with-stack.sh browser_topup_page tests/browser/run.sh     (what ctest runs)
#
# Needs the stack env of tests/with-stack.sh (PG_CONNINFO, REDIS_*, KAFKA_BOOTSTRAP_SERVERS,
# TOPUP_BUILD_DIR, TOPUP_SOURCE_DIR), the built services, /usr/bin/chromium, node, npm and kcat.
# Screenshots of every view go to tests/browser/screenshots (git-ignored, for review); service logs
# to $TOPUP_BUILD_DIR/browser/logs.
set -euo pipefail

die() {
    printf 'browser-test: error: %s\n' "$*" >&2
    exit 1
}
say() { printf 'browser-test: %s\n' "$*"; }

for v in PG_CONNINFO REDIS_HOST REDIS_PORT KAFKA_BOOTSTRAP_SERVERS TOPUP_BUILD_DIR TOPUP_SOURCE_DIR; do
    [ -n "${!v:-}" ] || die "$v is not set: run through tests/with-stack.sh (ctest -R browser)"
done

SRC=$(cd "$TOPUP_SOURCE_DIR" && pwd)
BUILD=$(cd "$TOPUP_BUILD_DIR" && pwd)
HERE=$SRC/tests/browser
WORK=$BUILD/browser
NPM_DIR=$WORK/npm
SHOTS=$HERE/screenshots
LOGS=$WORK/logs
RUN=$WORK/run
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
READY_TIMEOUT_S=60

INTAKE=$BUILD/services/order-intake/order-intake
RECON=$BUILD/services/reconciliation/reconciliation
LEDGER=$BUILD/services/ledger/ledger
IMPORT=$BUILD/services/statement-import/statement-import
TOPUPCTL=$BUILD/services/topupctl/topupctl

# Missing pieces fail the test loudly: a browser test that skips would prove nothing.
for b in "$INTAKE" "$RECON" "$LEDGER" "$IMPORT" "$TOPUPCTL"; do
    [ -x "$b" ] || die "$b is not built (cmake --build $BUILD)"
done
[ -x "$CHROMIUM" ] || die "$CHROMIUM is missing: apt-get install chromium (deploy/install-deps.sh)"
command -v node >/dev/null || die "node is missing: apt-get install nodejs npm"
command -v npm >/dev/null || die "npm is missing: apt-get install npm"
command -v kcat >/dev/null || die "kcat is missing: apt-get install kcat"

rm -rf "$SHOTS" "$LOGS" "$RUN"
mkdir -p "$NPM_DIR" "$SHOTS" "$LOGS" "$RUN"

# ---------------------------------------------------------------- playwright-core
# Installed from the lock file into the build dir (never into the source tree), again only when
# the lock file changed.
if ! cmp -s "$HERE/package-lock.json" "$NPM_DIR/package-lock.json" ||
    [ ! -d "$NPM_DIR/node_modules/playwright-core" ]; then
    say "installing playwright-core (npm ci) into $NPM_DIR"
    cp "$HERE/package.json" "$HERE/package-lock.json" "$NPM_DIR/"
    (cd "$NPM_DIR" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error) ||
        die "npm ci failed in $NPM_DIR"
fi

# ---------------------------------------------------------------- services
SUFFIX=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
ACCOUNT=browser-$SUFFIX
# A payee account of this run only: the shared topics carry other tests' statements too.
PAYEE_NUMBER="6214 8301 $(printf '%04d %04d' $((16#${SUFFIX:0:4} % 10000)) $((16#${SUFFIX:4:4} % 10000)))"
PAYEE_BANK="招商银行上海分行"
PAYEE_NAME="上海无量智能科技有限公司"
# Where the page sends a user whose payment needs support ({code}: the order's reference code).
SUPPORT_URL="https://support.wuliang.example/ticket?topic=top-up&order={code}"
# A signing secret of this run; topupctl issues the tokens with it.
export TOKEN_SECRET
TOKEN_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')

pids=()
cleanup() {
    local rc=$?
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "$rc" != 0 ]; then
        for f in "$LOGS"/*.log; do
            [ -f "$f" ] || continue
            echo "----- last lines of $f"
            tail -n 40 "$f"
        done
    fi
    exit "$rc"
}
trap cleanup EXIT

start() {
    local name=$1
    shift
    "$@" >"$LOGS/$name.log" 2>&1 &
    pids+=($!)
    say "started $name (pid $!)"
}

# order-intake binds a free port and writes it to a file. The workers use consumer groups of this
# run only, starting at the end of each topic: the topics are shared with the other tests, whose
# history is none of this test's business (and would only add dead letters to theirs).
start order-intake env \
    INTAKE_HTTP_PORT=0 \
    INTAKE_PORT_FILE="$RUN/intake.port" \
    INTAKE_WEB_DIR="$SRC/services/order-intake/web" \
    INTAKE_PAYEE_BANK_NAME="$PAYEE_BANK" \
    INTAKE_PAYEE_ACCOUNT_NAME="$PAYEE_NAME" \
    INTAKE_PAYEE_ACCOUNT_NUMBER="$PAYEE_NUMBER" \
    INTAKE_SUPPORT_URL="$SUPPORT_URL" \
    "$INTAKE"
start reconciliation env \
    KAFKA_AUTO_OFFSET_RESET=latest \
    RECON_RECEIVING_ACCOUNTS="${PAYEE_NUMBER// /}" \
    RECON_GROUP="recon-browser-$SUFFIX" \
    "$RECON"
start ledger env \
    KAFKA_AUTO_OFFSET_RESET=latest \
    LEDGER_GROUP="ledger-browser-$SUFFIX" \
    "$LEDGER"

check_running() {
    for pid in "${pids[@]}"; do
        kill -0 "$pid" 2>/dev/null || die "a service exited during start-up (pid $pid)"
    done
}
deadline=$((SECONDS + READY_TIMEOUT_S))
until [ -s "$RUN/intake.port" ]; do
    check_running
    [ $SECONDS -lt $deadline ] || die "order-intake wrote no port file after ${READY_TIMEOUT_S}s"
    sleep 0.2
done
BASE_URL=http://127.0.0.1:$(cat "$RUN/intake.port")
say "waiting for $BASE_URL/readyz"
until node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$BASE_URL/readyz"; do
    check_running
    [ $SECONDS -lt $deadline ] || die "order-intake not ready after ${READY_TIMEOUT_S}s"
    sleep 0.2
done

# "latest" means: nothing produced before the workers hold their partitions reaches them.
for w in reconciliation ledger; do
    until grep -q '"msg":"kafka partition assigned"' "$LOGS/$w.log"; do
        check_running
        [ $SECONDS -lt $deadline ] || die "$w got no Kafka partitions after ${READY_TIMEOUT_S}s"
        sleep 0.2
    done
done

TOKEN=$("$TOPUPCTL" token issue --account "$ACCOUNT" --ttl 1h)
SHORT_TOKEN=$("$TOPUPCTL" token issue --account "$ACCOUNT" --ttl 1s)

say "running the browser test (screenshots in $SHOTS)"
cd "$WORK"
TOPUP_BASE_URL=$BASE_URL \
    TOPUP_TOKEN=$TOKEN \
    TOPUP_SHORT_TOKEN=$SHORT_TOKEN \
    TOPUP_ACCOUNT=$ACCOUNT \
    TOPUP_PAYEE_BANK=$PAYEE_BANK \
    TOPUP_PAYEE_NAME=$PAYEE_NAME \
    TOPUP_PAYEE_NUMBER=$PAYEE_NUMBER \
    TOPUP_SUPPORT_URL=$SUPPORT_URL \
    TOPUP_SCREENSHOT_DIR=$SHOTS \
    TOPUP_WORK_DIR=$RUN \
    TOPUP_STATEMENT_IMPORT=$IMPORT \
    CHROMIUM=$CHROMIUM \
    NODE_PATH=$NPM_DIR/node_modules \
    node --test --test-reporter=spec "$HERE/topup_page.test.js"
say "screenshots: $SHOTS"
