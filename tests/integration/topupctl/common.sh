# shellcheck shell=bash
# Shared by topupctl's shell tests (sourced): failing, the stack's variables, psql, and empty
# databases of the test's own that are dropped at exit.
#   . common.sh; need_env PG_CONNINFO ...; fresh_db_name x; CI=$FRESH_CI

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

need_env() {
    local v
    for v in "$@"; do
        [ -n "${!v:-}" ] || fail "$v is not set: run through tests/with-stack.sh (ctest does)"
    done
}

PSQL=${TOPUP_PG_BIN:-/usr/lib/postgresql/15/bin}/psql
[ -x "$PSQL" ] || PSQL=$(command -v psql) || fail "psql not found"
psqlq() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 "$@"; }

SUFFIX=$$_$RANDOM
WORK=$(mktemp -d)
COMMON_DBS=()
# Runs at exit; a test with more to clean defines test_cleanup.
common_cleanup() {
    if declare -F test_cleanup >/dev/null; then
        test_cleanup
    fi
    local db
    for db in "${COMMON_DBS[@]}"; do
        psqlq -d "$PG_CONNINFO" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap common_cleanup EXIT

# Creates an empty database tctl_<name>_<suffix>, dropped at exit, and sets FRESH_CI to its
# connection string. The test's own database is already migrated from the template; this one is
# not. PG_CONNINFO is key=value (the stack writes it so), so a later dbname= overrides the first.
# template0: nobody can be connected to it, so the copy never waits for other tests.
fresh_db_name() {
    local db=tctl_${1}_$SUFFIX
    COMMON_DBS+=("$db")
    psqlq -d "$PG_CONNINFO" -c "CREATE DATABASE $db TEMPLATE template0"
    # shellcheck disable=SC2034 # read by the test that sourced this file
    FRESH_CI="$PG_CONNINFO dbname=$db"
}

# expect_rc WANT OUTFILE cmd...: runs cmd with stdout to OUTFILE, stderr to OUTFILE.err; fails
# (showing both) unless its exit code is WANT.
expect_rc() {
    local want=$1 out=$2 rc=0
    shift 2
    "$@" >"$out" 2>"$out.err" || rc=$?
    if [ "$rc" != "$want" ]; then
        cat "$out" "$out.err" >&2
        fail "exit $rc, want $want: $*"
    fi
}
