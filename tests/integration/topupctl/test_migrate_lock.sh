#!/usr/bin/env bash
# topupctl migrate behind a long transaction: a session holds a lock on a table a migration alters;
# migrate gives up after TOPUPCTL_MIGRATE_LOCK_TIMEOUT_MS naming the holder (exit 4), leaves
# nothing of that file applied, and applies it once the holder is gone.
#   test_migrate_lock.sh <topupctl>
set -euo pipefail

CTL=$(realpath "$1")
. "$(dirname "$0")/common.sh"
need_env PG_CONNINFO TOPUP_SOURCE_DIR
MIGS=$TOPUP_SOURCE_DIR/deploy/migrations
HOLDER=tctl-holder-$SUFFIX
HOLDER_PID=
test_cleanup() {
    [ -z "${hold:-}" ] || exec {hold}>&- 2>/dev/null || true
    [ -z "$HOLDER_PID" ] || kill "$HOLDER_PID" 2>/dev/null || true
}

# A database of our own (dropped at exit) migrated to the current schema.
fresh_db_name lock
CI=$FRESH_CI
env PG_CONNINFO="$CI" "$CTL" migrate --dir "$MIGS" >"$WORK/m0" 2>"$WORK/m0.err" ||
    fail "base migrate: $(cat "$WORK/m0.err")"

# Two new files: one that needs no contended lock, and one that creates a table and then alters
# topup_orders (ACCESS EXCLUSIVE), which the holder's open transaction keeps it from getting.
cp -r "$MIGS" "$WORK/migs"
printf 'CREATE TABLE tctl_lock_free (id int PRIMARY KEY);\n' >"$WORK/migs/9970_tctl_free.sql"
printf 'CREATE TABLE tctl_lock_half (id int);\nALTER TABLE topup_orders ADD COLUMN tctl_note text;\n' \
    >"$WORK/migs/9971_tctl_alter.sql"

echo "== a session reads topup_orders and stays idle in its transaction"
mkfifo "$WORK/holder.in"
"$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$CI application_name=$HOLDER" <"$WORK/holder.in" \
    >"$WORK/holder.out" 2>&1 &
HOLDER_PID=$!
exec {hold}>"$WORK/holder.in"
printf 'BEGIN;\nSELECT count(*) FROM topup_orders;\n' >&$hold
for _ in $(seq 1 100); do
    state=$(psqlq -d "$CI" -c "SELECT state FROM pg_stat_activity WHERE application_name = '$HOLDER'")
    [ "$state" = "idle in transaction" ] && break
    sleep 0.1
done
[ "$state" = "idle in transaction" ] || fail "holder not idle in transaction (state '$state')"
holder_pid=$(psqlq -d "$CI" -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$HOLDER'")

echo "== migrate gives up after the lock timeout, names the holder, applies nothing of the file"
rc=0
t0=$(date +%s%N)
# timeout(1) only turns a hang (no lock_timeout) into a failure instead of the ctest timeout.
timeout 60 env PG_CONNINFO="$CI" TOPUPCTL_MIGRATE_LOCK_TIMEOUT_MS=1500 "$CTL" migrate \
    --dir "$WORK/migs" >"$WORK/m1" 2>"$WORK/m1.err" || rc=$?
elapsed_ms=$((($(date +%s%N) - t0) / 1000000))
cat "$WORK/m1" "$WORK/m1.err"
[ "$rc" != 124 ] || fail "migrate still waiting for the lock after 60 s"
[ "$rc" = 4 ] || fail "exit $rc, want 4 (lock not granted)"
echo "gave up after $elapsed_ms ms"
grep -q '^applied 9970_tctl_free ' "$WORK/m1" || fail "the file before the blocked one was not applied"
grep -q '9971_tctl_alter.sql: a lock it needs was not granted within 1500 ms' "$WORK/m1.err" ||
    fail "no lock timeout message naming the file and the timeout"
grep -q 'TOPUPCTL_MIGRATE_LOCK_TIMEOUT_MS' "$WORK/m1.err" || fail "the setting is not named"
grep -Eq "pid $holder_pid \\(user [^,]+, application \"$HOLDER\", client [^,]+, idle in transaction, transaction open [0-9]+ s\\) blocks the AccessExclusiveLock this migration needs on topup_orders; its last query: SELECT count\\(\\*\\) FROM topup_orders;" \
    "$WORK/m1.err" || fail "the holder (pid $holder_pid, $HOLDER) is not described"
[ "$(psqlq -d "$CI" -c "SELECT to_regclass('tctl_lock_half') IS NULL")" = t ] ||
    fail "the blocked file's first statement stayed applied"
[ "$(psqlq -d "$CI" -c "SELECT count(*) FROM information_schema.columns
        WHERE table_name = 'topup_orders' AND column_name = 'tctl_note'")" = 0 ] ||
    fail "the column was added"
[ "$(psqlq -d "$CI" -c "SELECT string_agg(version, ',' ORDER BY version)
        FROM schema_migrations WHERE version LIKE '997%'")" = 9970_tctl_free ] ||
    fail "schema_migrations should list 9970 only"
# The holder was not disturbed: its transaction is still open.
[ "$(psqlq -d "$CI" -c "SELECT state FROM pg_stat_activity WHERE pid = $holder_pid")" = \
    "idle in transaction" ] || fail "the holder's session changed"

echo "== while the holder stays, a re-run fails the same way and changes nothing"
rc=0
env PG_CONNINFO="$CI" TOPUPCTL_MIGRATE_LOCK_TIMEOUT_MS=300 "$CTL" migrate --dir "$WORK/migs" \
    >"$WORK/m2" 2>"$WORK/m2.err" || rc=$?
[ "$rc" = 4 ] || { cat "$WORK/m2" "$WORK/m2.err"; fail "second run: exit $rc, want 4"; }
grep -q '^applied' "$WORK/m2" && fail "second run applied something: $(cat "$WORK/m2")"

echo "== the holder commits; migrate applies the rest once"
printf 'COMMIT;\n\\q\n' >&$hold
exec {hold}>&-
hold=
wait "$HOLDER_PID" || fail "holder psql failed: $(cat "$WORK/holder.out")"
HOLDER_PID=
env PG_CONNINFO="$CI" TOPUPCTL_MIGRATE_LOCK_TIMEOUT_MS=1500 "$CTL" migrate --dir "$WORK/migs" \
    >"$WORK/m3" 2>"$WORK/m3.err" || { cat "$WORK/m3" "$WORK/m3.err"; fail "migrate after release"; }
cat "$WORK/m3"
grep -q '^applied 9971_tctl_alter ' "$WORK/m3" || fail "9971 not applied after the release"
grep -q '^applied 9970' "$WORK/m3" && fail "9970 applied twice"
[ "$(psqlq -d "$CI" -c "SELECT to_regclass('tctl_lock_half') IS NOT NULL")" = t ] ||
    fail "tctl_lock_half missing"
[ "$(psqlq -d "$CI" -c "SELECT count(*) FROM information_schema.columns
        WHERE table_name = 'topup_orders' AND column_name = 'tctl_note'")" = 1 ] ||
    fail "the column is missing"
env PG_CONNINFO="$CI" "$CTL" migrate --dir "$WORK/migs" >"$WORK/m4" 2>"$WORK/m4.err" ||
    fail "third run: $(cat "$WORK/m4.err")"
grep -q '^nothing to apply' "$WORK/m4" || fail "third run applied something: $(cat "$WORK/m4")"

echo "== the setting is bounded"
rc=0
env PG_CONNINFO="$CI" TOPUPCTL_MIGRATE_LOCK_TIMEOUT_MS=0 "$CTL" migrate --dir "$WORK/migs" \
    >/dev/null 2>"$WORK/m5.err" || rc=$?
[ "$rc" = 2 ] || fail "TOPUPCTL_MIGRATE_LOCK_TIMEOUT_MS=0: exit $rc, want 2"
grep -q 'TOPUPCTL_MIGRATE_LOCK_TIMEOUT_MS' "$WORK/m5.err" || fail "bad setting not named"

echo "PASS"
