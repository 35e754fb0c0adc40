#!/usr/bin/env bash
# A newcomer's walk-through: plays a short story on the running system and shows every step.
#
#   bash deploy/dev.sh up      # first: the stack and the services
#   bash deploy/demo.sh        # then: the story
#
# 1. a sign-in token for a new account (topupctl token issue)
# 2. a top-up order created over HTTP (POST /v1/topup-orders): reference code and payee account
# 3. the bank statement that carries the transfer (camt.053, the code in the remarks), imported
#    with statement-import
# 4. reconciliation matches it, the ledger credits it: the order completes, the balance shows it
# 5. an API usage deduction produced to Kafka the way a gateway does (UsageRecorded, key = account)
# 6. the account's flows (GET /v1/account-flows)
#
# Needs curl, and protoc and kcat for step 5 (deploy/install-deps.sh installs the last two).
# Environment (all optional):
#   DEMO_ENV_FILE      the stack's env file (default .local/stack/env, written by dev.sh up)
#   DEMO_INTAKE_URL    order-intake (default http://127.0.0.1:$INTAKE_HTTP_PORT, port 8080)
#   DEMO_ACCOUNT       the account to use (default demo-<time>-<random>: a new one each run)
#   DEMO_AMOUNT        the top-up, CNY (default 100.00); DEMO_USAGE_FEN the deduction (1250)
#   DEMO_WAIT_S        how long to wait for each asynchronous step (default 60)
#   TOPUP_BUILD_DIR    where topupctl and statement-import are built (default build/)
set -euo pipefail

CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENV_FILE=${DEMO_ENV_FILE:-$CHECKOUT/.local/stack/env}
BUILD_DIR=${TOPUP_BUILD_DIR:-$CHECKOUT/build}
TOPUPCTL=$BUILD_DIR/services/topupctl/topupctl
IMPORT=$BUILD_DIR/services/statement-import/statement-import
PROTO_DIR=$CHECKOUT/proto
WAIT_S=${DEMO_WAIT_S:-60}
AMOUNT=${DEMO_AMOUNT:-100.00}
USAGE_FEN=${DEMO_USAGE_FEN:-1250}

bold=""
plain=""
if [ -t 1 ]; then
    bold=$(printf '\033[1m')
    plain=$(printf '\033[0m')
fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
say() { printf '   %s\n' "$*"; }
die() {
    printf 'demo: error: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------- prerequisites
[ -f "$ENV_FILE" ] || die "no stack env at $ENV_FILE: start everything first with: bash deploy/dev.sh up"
# shellcheck source=/dev/null
. "$ENV_FILE"
# Your own service settings (dev.sh gives them to the services too), e.g. INTAKE_HTTP_PORT.
if [ -z "${DEMO_ENV_FILE:-}" ] && [ -f "$CHECKOUT/.local/dev.env" ]; then
    set -a
    # shellcheck source=/dev/null
    . "$CHECKOUT/.local/dev.env"
    set +a
fi
INTAKE_URL=${DEMO_INTAKE_URL:-http://127.0.0.1:${INTAKE_HTTP_PORT:-8080}}
for tool in curl protoc kcat; do
    command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install ${tool/protoc/protobuf-compiler})"
done
[ -x "$TOPUPCTL" ] && [ -x "$IMPORT" ] || die "topupctl or statement-import not built under $BUILD_DIR"
curl -fsS "$INTAKE_URL/healthz" >/dev/null 2>&1 ||
    die "order-intake does not answer at $INTAKE_URL (bash deploy/dev.sh status)"

ACCOUNT=${DEMO_ACCOUNT:-demo-$(date +%s)-$RANDOM}
# The files of the story are kept (git-ignored), so every command shown runs again as printed
# (a second run changes nothing: the order is a replay, the statement a duplicate, the usage
# event the same event id).
WORK=$CHECKOUT/.local/demo/$ACCOUNT
mkdir -p "$WORK"
# "(set -a; . env; set +a; CMD)": a shown command with the stack's environment it needs.
ENV_PREFIX="set -a; . $ENV_FILE; set +a"

# A string field of a flat JSON object ("" when absent): enough for the API's answers here.
json_field() {
    sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" | head -n 1
}

# GET with the token; the body on stdout.
api_get() {
    curl -sS -H "Authorization: Bearer $TOKEN" "$INTAKE_URL$1"
}

# Waits until `api_get $1 | json_field $2` equals $3; prints the last value.
wait_for() {
    local path=$1 field=$2 want=$3 got="" i
    for ((i = 0; i < WAIT_S * 2; i++)); do
        got=$(api_get "$path" | json_field "$field")
        [ "$got" = "$want" ] && break
        sleep 0.5
    done
    printf '%s' "$got"
}

# ---------------------------------------------------------------- 1. token
step "1. A sign-in token for account $ACCOUNT"
say "\$ ($ENV_PREFIX; $TOPUPCTL token issue --account $ACCOUNT --ttl 1h)"
TOKEN=$("$TOPUPCTL" token issue --account "$ACCOUNT" --ttl 1h)
say "token (valid 1 h; every /v1 call sends it as 'Authorization: Bearer <token>'; the page's"
say "sign-in card takes it as it is):"
printf '%s\n' "$TOKEN"
say "balance now: $(api_get /v1/balance | json_field balance) CNY"

# ---------------------------------------------------------------- 2. order
step "2. A top-up order of $AMOUNT CNY, created over HTTP"
BODY="{\"amount\":\"$AMOUNT\",\"channel\":\"bank_transfer\",\"remitter_name\":\"张三\",\"remitter_bank\":\"中国工商银行\",\"agreement_accepted\":true}"
say "\$ curl -sS -X POST $INTAKE_URL/v1/topup-orders -H 'Authorization: Bearer $TOKEN' -H 'Content-Type: application/json' -H 'Idempotency-Key: $ACCOUNT-1' -d '$BODY'"
ORDER=$(curl -sS -X POST "$INTAKE_URL/v1/topup-orders" -H "Authorization: Bearer $TOKEN" \
    -H "Content-Type: application/json" -H "Idempotency-Key: $ACCOUNT-1" -d "$BODY")
CODE=$(printf '%s' "$ORDER" | json_field code)
[ -n "$CODE" ] || die "the order was not created: $ORDER"
PAYEE_NAME=$(printf '%s' "$ORDER" | json_field account_name)
PAYEE_BANK=$(printf '%s' "$ORDER" | json_field bank_name)
PAYEE_ACCOUNT=$(printf '%s' "$ORDER" | json_field account_number)
say "order $CODE: status $(printf '%s' "$ORDER" | json_field status), amount $(printf '%s' "$ORDER" | json_field amount) CNY"
say "pay to: $PAYEE_NAME, $PAYEE_BANK, account $PAYEE_ACCOUNT"
say "$(printf '%s' "$ORDER" | json_field instructions)"

# ---------------------------------------------------------------- 3. statement
step "3. The bank statement with the transfer arrives, and finance imports it"
TODAY=$(TZ=Asia/Shanghai date +%F)
OUR_ACCOUNT=${PAYEE_ACCOUNT// /}
TXN_ID="DEMO$(date +%s)$RANDOM"
STATEMENT=$WORK/statement-$TODAY.xml
cat >"$STATEMENT" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
<BkToCstmrStmt>
<GrpHdr><MsgId>$TXN_ID</MsgId><CreDtTm>${TODAY}T23:00:00</CreDtTm></GrpHdr>
<Stmt><Id>$TXN_ID</Id><CreDtTm>${TODAY}T23:00:00</CreDtTm>
<Acct><Id><Othr><Id>$OUR_ACCOUNT</Id></Othr></Id><Ccy>CNY</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">0.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>$TODAY</Dt></Dt></Bal>
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">$AMOUNT</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>$TODAY</Dt></Dt></Bal>
<Ntry><Amt Ccy="CNY">$AMOUNT</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
<BookgDt><Dt>$TODAY</Dt></BookgDt><ValDt><Dt>$TODAY</Dt></ValDt><AcctSvcrRef>$TXN_ID</AcctSvcrRef>
<NtryDtls><TxDtls><Refs><AcctSvcrRef>$TXN_ID</AcctSvcrRef></Refs>
<RltdPties><Dbtr><Nm>张三</Nm></Dbtr><DbtrAcct><Id><Othr><Id>6222020200112233</Id></Othr></Id></DbtrAcct></RltdPties>
<RmtInf><Ustrd>充值 $CODE</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>
</Stmt>
</BkToCstmrStmt>
</Document>
XML
say "camt.053 statement of account $OUR_ACCOUNT: one credit of $AMOUNT CNY from 张三, remarks \"充值 $CODE\""
say "\$ ($ENV_PREFIX; $IMPORT $STATEMENT)"
if ! "$IMPORT" "$STATEMENT" >"$WORK/import.out" 2>"$WORK/import.err"; then
    cat "$WORK/import.err" >&2
    die "statement-import failed"
fi
# Its summary (the JSON log lines stay out of the way).
{ grep -hv '^{' "$WORK/import.out" "$WORK/import.err" || true; } | sed 's/^/   | /'

# ---------------------------------------------------------------- 4. credited
step "4. Reconciliation matches the transfer (rule 1: the code), the ledger credits it"
STATUS=$(wait_for "/v1/topup-orders/$CODE" status completed)
[ "$STATUS" = completed ] ||
    die "order $CODE is '$STATUS' after ${WAIT_S}s (is the reconciliation worker running, and does RECON_RECEIVING_ACCOUNTS list $OUR_ACCOUNT?)"
ORDER=$(api_get "/v1/topup-orders/$CODE")
say "order $CODE: status $STATUS, credited $(printf '%s' "$ORDER" | json_field credited_amount) CNY at $(printf '%s' "$ORDER" | json_field completed_at)"
say "balance: $(api_get /v1/balance | json_field balance) CNY"

# ---------------------------------------------------------------- 5. usage
USAGE=$(printf '%d.%02d' $((USAGE_FEN / 100)) $((USAGE_FEN % 100)))
step "5. The account uses the API: a gateway produces a usage deduction of $USAGE CNY to Kafka"
# Integer fen only: "100.00" -> 10000.
[[ $AMOUNT =~ ^([0-9]+)\.([0-9][0-9])$ ]] || die "DEMO_AMOUNT must look like 100.00"
LEFT_FEN=$((10#${BASH_REMATCH[1]} * 100 + 10#${BASH_REMATCH[2]} - USAGE_FEN))
ABS_FEN=${LEFT_FEN#-}
EXPECTED=$(printf '%s%d.%02d' "$([ "$LEFT_FEN" -lt 0 ] && echo -)" $((ABS_FEN / 100)) $((ABS_FEN % 100)))
cat >"$WORK/usage.txt" <<MSG
envelope {
  event_id: "$(cat /proc/sys/kernel/random/uuid)"
  occurred_at_ms: $(date +%s%3N)
  producer: "gateway-demo"
  schema_version: 1
  account_id: "$ACCOUNT"
}
request_id: "req-$TXN_ID"
amount_fen: -$USAGE_FEN
model: "wuliang-chat"
units: 2048
MSG
say "UsageRecorded {request_id: req-$TXN_ID, amount_fen: -$USAGE_FEN}, key $ACCOUNT, topic usage.recorded"
say "\$ protoc --proto_path=$PROTO_DIR --encode=topup.v1.UsageRecorded $PROTO_DIR/topup/v1/events.proto < $WORK/usage.txt > $WORK/usage.bin"
say "\$ ($ENV_PREFIX; kcat -P -b \"\$KAFKA_BOOTSTRAP_SERVERS\" -t usage.recorded -k $ACCOUNT $WORK/usage.bin)"
protoc --proto_path="$PROTO_DIR" --encode=topup.v1.UsageRecorded "$PROTO_DIR/topup/v1/events.proto" \
    <"$WORK/usage.txt" >"$WORK/usage.bin"
kcat -P -b "$KAFKA_BOOTSTRAP_SERVERS" -t usage.recorded -k "$ACCOUNT" "$WORK/usage.bin" 2>"$WORK/kcat.err" ||
    die "kcat could not produce: $(cat "$WORK/kcat.err")"
BALANCE=$(wait_for /v1/balance balance "$EXPECTED")
[ "$BALANCE" = "$EXPECTED" ] || die "balance is $BALANCE CNY after ${WAIT_S}s, expected $EXPECTED (is the ledger running?)"
say "balance: $BALANCE CNY"

# ---------------------------------------------------------------- 6. flows
step "6. The account's flows, newest first (GET /v1/account-flows)"
FLOWS=$(api_get /v1/account-flows)
printf '   %-9s %10s %14s  %s\n' TYPE AMOUNT BALANCE_AFTER REFERENCE
printf '%s\n' "$FLOWS" | sed 's/},{/}\n{/g' | while read -r f; do
    printf '   %-9s %10s %14s  %s\n' "$(printf '%s' "$f" | json_field type)" \
        "$(printf '%s' "$f" | json_field amount)" "$(printf '%s' "$f" | json_field balance_after)" \
        "$(printf '%s' "$f" | json_field reference)"
done
printf '\n%sDone.%s Account %s: topped up %s CNY by bank transfer, used %s CNY, balance %s CNY.\n' \
    "$bold" "$plain" "$ACCOUNT" "$AMOUNT" "$USAGE" "$BALANCE"
say "More: the Top Up page at $INTAKE_URL/ (sign in with the token above), and"
say "\$ ($ENV_PREFIX; $TOPUPCTL stats)"
say "\$ ($ENV_PREFIX; $TOPUPCTL verify)"
