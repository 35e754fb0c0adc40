#!/usr/bin/env bash
# topupctl against the stack: migrate from scratch, re-run is a no-op, an edited or failing file is
# refused, concurrent migrators do not race; stats prints counters written by the counters library.
#   test_topupctl.sh <topupctl> <counters_bump>
set -euo pipefail

CTL=$(realpath "$1")
BUMP=$(realpath "$2")
. "$(dirname "$0")/common.sh"
need_env PG_CONNINFO REDIS_HOST REDIS_PORT TOPUP_SOURCE_DIR
MIGS=$TOPUP_SOURCE_DIR/deploy/migrations

# Fresh, empty databases of our own (common.sh drops them at exit).
fresh_db_name a
CI1=$FRESH_CI
fresh_db_name b
CI2=$FRESH_CI
NFILES=$(find "$MIGS" -maxdepth 1 -name '*.sql' ! -name '.*' | wc -l)
[ "$NFILES" -ge 1 ] || fail "no migrations in $MIGS"

echo "== migrate a fresh database"
expect_rc 0 "$WORK/m1" env PG_CONNINFO="$CI1" "$CTL" migrate --dir "$MIGS"
grep -q '^applied 0001_init ' "$WORK/m1" || fail "0001_init not reported as applied: $(cat "$WORK/m1")"
[ "$(psqlq -d "$CI1" -c 'SELECT count(*) FROM schema_migrations')" = "$NFILES" ] ||
    fail "schema_migrations should have one row per file ($NFILES)"
for t in accounts topup_orders idempotency_keys outbox statement_imports statement_records \
    match_decisions review_queue account_flows; do
    [ "$(psqlq -d "$CI1" -c "SELECT to_regclass('public.$t') IS NOT NULL")" = t ] ||
        fail "table $t missing after migrate"
done
# Versions are the file names without .sql; checksums are the files' SHA-256.
(cd "$MIGS" && for f in *.sql; do echo "${f%.sql}|$(sha256sum "$f" | cut -d' ' -f1)"; done) \
    >"$WORK/want"
psqlq -d "$CI1" -c "SELECT version || '|' || checksum FROM schema_migrations ORDER BY version" \
    >"$WORK/got"
diff -u "$WORK/want" "$WORK/got" || fail "schema_migrations does not match the files"
psqlq -d "$CI1" -c "SELECT version, checksum, applied_at FROM schema_migrations ORDER BY 1" \
    >"$WORK/before"

echo "== re-run is a no-op (default folder, and TOPUP_MIGRATIONS_DIR from another cwd)"
expect_rc 0 "$WORK/m2" env PG_CONNINFO="$CI1" "$CTL" migrate
grep -q '^nothing to apply' "$WORK/m2" || fail "second run applied something: $(cat "$WORK/m2")"
expect_rc 0 "$WORK/m3" env -C / PG_CONNINFO="$CI1" TOPUP_MIGRATIONS_DIR="$MIGS" "$CTL" migrate
grep -q '^nothing to apply' "$WORK/m3" || fail "third run applied something"
psqlq -d "$CI1" -c "SELECT version, checksum, applied_at FROM schema_migrations ORDER BY 1" \
    >"$WORK/after"
diff -u "$WORK/before" "$WORK/after" || fail "re-running changed schema_migrations"
expect_rc 0 "$WORK/st" env PG_CONNINFO="$CI1" "$CTL" migrate --status --dir "$MIGS"
[ "$(grep -c ' applied ' "$WORK/st")" = "$NFILES" ] || fail "--status: $(cat "$WORK/st")"

echo "== an edited applied file is refused (exit 3), nothing changes"
cp -r "$MIGS" "$WORK/edited"
first=$(cd "$WORK/edited" && ls -- *.sql | sort | head -n 1)
echo "-- edited after it was applied" >>"$WORK/edited/$first"
expect_rc 3 "$WORK/m4" env PG_CONNINFO="$CI1" "$CTL" migrate --dir "$WORK/edited"
grep -q 'checksum' "$WORK/m4.err" || fail "edited file: no checksum message"
expect_rc 3 "$WORK/m4s" env PG_CONNINFO="$CI1" "$CTL" migrate --status --dir "$WORK/edited"
grep -q 'CHANGED' "$WORK/m4s" || fail "--status does not flag the edited file"

echo "== a new file is applied once; a failing one rolls back whole"
cp -r "$MIGS" "$WORK/more"
printf 'CREATE TABLE tctl_extra (id int PRIMARY KEY);\nINSERT INTO tctl_extra VALUES (1);\n' \
    >"$WORK/more/9990_tctl_extra.sql"
expect_rc 0 "$WORK/m5" env PG_CONNINFO="$CI1" "$CTL" migrate --dir "$WORK/more"
grep -q '^applied 9990_tctl_extra' "$WORK/m5" || fail "new file not applied"
[ "$(psqlq -d "$CI1" -c 'SELECT count(*) FROM tctl_extra')" = 1 ] || fail "tctl_extra content"
printf 'CREATE TABLE tctl_bad (id int);\nSELEC oops;\n' >"$WORK/more/9991_tctl_bad.sql"
expect_rc 1 "$WORK/m6" env PG_CONNINFO="$CI1" "$CTL" migrate --dir "$WORK/more"
grep -q '9991_tctl_bad.sql failed' "$WORK/m6.err" || fail "failing file not named"
[ "$(psqlq -d "$CI1" -c "SELECT to_regclass('tctl_bad') IS NULL")" = t ] ||
    fail "failed migration left a table behind"
[ "$(psqlq -d "$CI1" -c "SELECT count(*) FROM schema_migrations WHERE version LIKE '9991%'")" = 0 ] ||
    fail "failed migration recorded"
rm "$WORK/more/9991_tctl_bad.sql"
printf 'SELECT 1;\nCOMMIT;\n' >"$WORK/more/9992_tctl_commit.sql"
expect_rc 1 "$WORK/m7" env PG_CONNINFO="$CI1" "$CTL" migrate --dir "$WORK/more"
grep -q 'transaction control' "$WORK/m7.err" || fail "COMMIT inside a migration not reported"
[ "$(psqlq -d "$CI1" -c 'SELECT count(*) FROM schema_migrations')" = $((NFILES + 1)) ] ||
    fail "schema_migrations row count after failures"

echo "== concurrent migrators on a fresh database: all succeed, each file applied once"
pids=()
for i in 1 2 3; do
    env PG_CONNINFO="$CI2" "$CTL" migrate --dir "$MIGS" >"$WORK/c$i" 2>"$WORK/c$i.err" &
    pids+=($!)
done
for i in 0 1 2; do
    wait "${pids[$i]}" || {
        cat "$WORK/c$((i + 1))" "$WORK/c$((i + 1)).err" >&2
        fail "concurrent migrator $((i + 1)) failed"
    }
done
[ "$(cat "$WORK"/c1 "$WORK"/c2 "$WORK"/c3 | grep -c '^applied 0001_init ')" = 1 ] ||
    fail "0001_init applied more or less than once"
[ "$(psqlq -d "$CI2" -c 'SELECT count(*) FROM schema_migrations')" = "$NFILES" ] ||
    fail "concurrent: schema_migrations rows"

echo "== command line"
expect_rc 0 "$WORK/h" "$CTL" --help
grep -q 'migrate' "$WORK/h" && grep -q 'stats' "$WORK/h" || fail "--help does not list commands"
expect_rc 2 "$WORK/u1" "$CTL" no-such-command
expect_rc 2 "$WORK/u2" "$CTL" migrate --no-such-option
expect_rc 2 "$WORK/u3" "$CTL" stats --service 'BAD*'
expect_rc 0 "$WORK/h2" "$CTL" migrate --help
expect_rc 1 "$WORK/u4" env PG_CONNINFO="$CI1" "$CTL" migrate --dir "$WORK/does-not-exist"

echo "== stats shows counters written through the counters library"
SVC=itest-stats-$SUFFIX
SVC=${SVC//_/-}
"$BUMP" "$SVC" orders.created 3 outbox.backlog 42 || fail "bump 1"
"$BUMP" "$SVC" orders.created 4 || fail "bump 2"
"$BUMP" "$SVC" dlq 1 || fail "bump 3"
expect_rc 0 "$WORK/s1" "$CTL" stats --service "$SVC"
cat "$WORK/s1"
head -n 1 "$WORK/s1" | grep -Eq '^SERVICE +COUNTER +TOTAL +1M +5M$' || fail "stats header"
row=$(awk -v s="$SVC" '$1 == s && $2 == "orders.created"' "$WORK/s1")
[ -n "$row" ] || fail "no orders.created row"
set -- $row
[ "$3" = 7 ] || fail "orders.created total $3, want 7"
[ "$5" = 7 ] || fail "orders.created 5m $5, want 7 (written seconds ago)"
[ "$4" -ge 0 ] && [ "$4" -le 7 ] || fail "orders.created 1m $4"
awk -v s="$SVC" '$1 == s && $2 == "dlq" && $3 == 1 { found = 1 } END { exit !found }' \
    "$WORK/s1" || fail "no dlq row"
awk -v s="$SVC" '$1 == s && $2 == "outbox.backlog" && $3 == 42 { found = 1 } END { exit !found }' \
    "$WORK/s1" || fail "no gauge row"
# Without --service our rows are among everyone's.
expect_rc 0 "$WORK/s2" "$CTL" stats
grep -q "^$SVC  *orders.created  *7 " "$WORK/s2" || fail "unfiltered stats lacks our row"
# --watch redraws until interrupted, then exits 0.
rc=0
timeout --preserve-status -s INT 3 "$CTL" stats --watch --interval 1 --service "$SVC" \
    >"$WORK/s3" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "stats --watch exit $rc"
grep -q "orders.created" "$WORK/s3" || fail "stats --watch printed no table"
# Redis unreachable: a clear error and exit 1, quickly.
expect_rc 1 "$WORK/s4" env REDIS_PORT=1 "$CTL" stats
grep -q 'redis' "$WORK/s4.err" || fail "no Redis error message"

echo "PASS"
