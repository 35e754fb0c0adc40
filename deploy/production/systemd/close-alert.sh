#!/bin/sh
# Raises the alert for a failed run of the nightly close (topup-close-alert@.service, started by
# topup-close.service's OnFailure=). Usage: close-alert.sh <failed unit>
#   exit 1 of topupctl close: the day closed WITH breaks (finance: read the breaks, the CSV);
#   exit 2: the day was NOT closed (usage, database, lock: SRE: fix and run the unit again);
#   anything else (a signal, a timeout): not closed either.
# It writes a crit journal line, keeps the failed run's output in
# $TOPUP_CLOSE_DIR/alert-<unit>-<UTC time>.txt, and POSTs a JSON summary to the URL in
# $TOPUP_ALERT_WEBHOOK_FILE when that file exists (needs curl and jq). Exit non-zero when the
# webhook could not be told, so this unit fails visibly too.
set -eu
unit=${1:?usage: close-alert.sh <failed unit>}
dir=${TOPUP_CLOSE_DIR:-/var/lib/topup/close}
code=$(systemctl show -p ExecMainStatus --value "$unit" 2>/dev/null || echo "?")
result=$(systemctl show -p Result --value "$unit" 2>/dev/null || echo "?")
inv=$(systemctl show -p InvocationID --value "$unit" 2>/dev/null || echo "")
case "$code" in
1) what="the close found breaks: the day is closed and stored, its breaks need finance" ;;
2) what="the close did not run to its end (usage, database or lock): the day is NOT closed; fix and start the unit again" ;;
*) what="the close ended with result $result, exit $code: the day is NOT closed; start the unit again" ;;
esac
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="$dir/alert-$unit-$stamp.txt"
# The failed run's own output (its invocation), else the unit's last lines.
if [ -n "$inv" ]; then
    journalctl -o cat "_SYSTEMD_INVOCATION_ID=$inv" >"$out" 2>&1 || true
else
    journalctl -o cat -u "$unit" -n 500 >"$out" 2>&1 || true
fi
breaks=$(grep -c '^break ' "$out" || true)
first=$(grep -m 5 '^break \|^topupctl close: ' "$out" || true)
logger -p daemon.crit -t topup-close-alert \
    "$unit failed (exit $code): $what; $breaks break line(s); output in $out; $(echo "$first" | head -n 1)"
hook_file=${TOPUP_ALERT_WEBHOOK_FILE:-}
if [ -n "$hook_file" ] && [ -s "$hook_file" ]; then
    body=$(jq -n --arg unit "$unit" --arg code "$code" --arg what "$what" --arg host "$(hostname)" \
        --arg breaks "$breaks" --arg first "$first" --arg file "$out" \
        '{summary: ("topup nightly close failed on " + $host + ": " + $what), unit: $unit,
          exit_code: $code, break_lines: ($breaks | tonumber), first_lines: $first, output: $file}')
    curl -fsS --max-time 20 --retry 3 -H 'Content-Type: application/json' --data "$body" \
        "$(cat "$hook_file")" >/dev/null
fi
